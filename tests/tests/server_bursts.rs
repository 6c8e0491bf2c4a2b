//! Bursts against the real server (issue 18, defect 1): a reader is slow when its queue does
//! not drain, not when one turn of the loop queued a lot for it. Every reader here reads all
//! the time, in its own thread; none may be closed and none may lose a message, under either
//! slow-consumer policy. A client that never reads is still closed, with memory bounded.

use std::collections::BTreeSet;
use std::thread::JoinHandle;

use integration_tests::{wait_until, Client, Received, Server, WAIT};
use protocol::frame::{encode_frame, OpCode};

const KIB: usize = 1024;
const MIB: usize = 1024 * KIB;

/// Gives each client to a thread that reads `count` messages (answering pings) and hands the
/// client back with what it got; a reader that waits [`WAIT`] in vain stops and says so.
fn read_in_threads(clients: Vec<Client>, count: usize) -> Vec<JoinHandle<(Client, Vec<Received>)>> {
    clients
        .into_iter()
        .map(|mut client| {
            std::thread::spawn(move || {
                let mut got = Vec::with_capacity(count);
                while got.len() < count {
                    match client.recv_timeout(WAIT) {
                        None => {
                            got.push(Received::Close(None, NOTHING_WITHIN_THE_WAIT.into()));
                            break;
                        }
                        Some(Received::Ping(payload)) => {
                            client.send_frame(true, OpCode::Pong, &payload)
                        }
                        Some(Received::Pong(_)) => {}
                        Some(received) => {
                            let done = matches!(received, Received::Close(..) | Received::Eof);
                            got.push(received);
                            if done {
                                break;
                            }
                        }
                    }
                }
                (client, got)
            })
        })
        .collect()
}

/// Stands in a reader's list for a wait that ended with nothing received (not a real close).
const NOTHING_WITHIN_THE_WAIT: &str = "(nothing received within the wait)";

fn join(handles: Vec<JoinHandle<(Client, Vec<Received>)>>) -> Vec<(Client, Vec<Received>)> {
    handles
        .into_iter()
        .map(|handle| handle.join().expect("a reader thread"))
        .collect()
}

/// A short, printable account of what a reader got (payloads of kilobytes are not printed).
fn describe(received: &[Received]) -> Vec<String> {
    received
        .iter()
        .map(|item| match item {
            Received::Binary(bytes) => format!("binary of {} bytes", bytes.len()),
            Received::Text(text) if text.len() > 40 => format!("text of {} bytes", text.len()),
            other => format!("{other:?}"),
        })
        .collect()
}

/// Both frames in one `write` call.
fn two_messages_in_one_write(big: &[u8], small: &str) -> Vec<u8> {
    let mut wire = Vec::new();
    encode_frame(&mut wire, true, OpCode::Binary, big, Some([7, 1, 9, 4]));
    encode_frame(
        &mut wire,
        true,
        OpCode::Text,
        small.as_bytes(),
        Some([3, 8, 2, 6]),
    );
    wire
}

fn assert_nobody_was_closed_or_dropped(server: &Server, members: usize) {
    assert_eq!(server.metric("ws_slow_consumer_closes_total"), 0.0);
    assert_eq!(server.metric("ws_messages_dropped_total"), 0.0);
    assert_eq!(server.metric("ws_connections"), members as f64);
}

/// A member sends a 1 MiB message (the default `--max-message-size`) and a 1-byte message in
/// one write, three times; 20 readers and the sender each get all six.
fn one_write_of_a_max_size_and_a_1_byte_message(policy: &[&str]) {
    let server = Server::start(policy);
    let big: Vec<u8> = (0..MIB).map(|index| (index % 251) as u8).collect();
    let mut readers: Vec<Client> = (0..20)
        .map(|_| Client::connect(server.address, "/burst"))
        .collect();
    let mut sender = Client::connect(server.address, "/burst");
    for run in 0..3 {
        let small = format!("{run}");
        let threads = read_in_threads(readers, 2);
        sender.send_raw(&two_messages_in_one_write(&big, &small));
        let expected = vec![Received::Binary(big.clone()), Received::Text(small.clone())];
        assert_eq!(sender.recv_message(), expected[0]);
        assert_eq!(sender.recv_message(), expected[1]);
        readers = Vec::new();
        for (index, (client, got)) in join(threads).into_iter().enumerate() {
            assert!(
                got == expected,
                "run {run}: reader {index} got {:?}",
                describe(&got)
            );
            readers.push(client);
        }
    }
    assert_nobody_was_closed_or_dropped(&server, 21);
}

#[test]
fn a_1_mib_and_a_1_byte_message_in_one_write_reach_all_20_readers_and_close_none() {
    one_write_of_a_max_size_and_a_1_byte_message(&[]);
}

#[test]
fn a_1_mib_and_a_1_byte_message_in_one_write_lose_nothing_under_the_drop_policy() {
    one_write_of_a_max_size_and_a_1_byte_message(&["--slow-consumer", "drop"]);
}

/// Two members each send a 600 KB message; both complete in one loop turn (all but the last
/// byte of each is sent first, and held by the server, then the two last bytes back to back).
fn two_600_kb_messages_completing_in_one_turn(policy: &[&str]) {
    let server = Server::start(policy);
    let readers: Vec<Client> = (0..5)
        .map(|_| Client::connect(server.address, "/two"))
        .collect();
    let mut senders: Vec<Client> = (0..2)
        .map(|_| Client::connect(server.address, "/two"))
        .collect();
    let payloads: Vec<Vec<u8>> = (0..2u8)
        .map(|sender| vec![b'a' + sender; 600_000])
        .collect();
    let wires: Vec<Vec<u8>> = payloads
        .iter()
        .map(|payload| {
            let mut wire = Vec::new();
            encode_frame(&mut wire, true, OpCode::Binary, payload, Some([5, 6, 7, 8]));
            wire
        })
        .collect();
    let threads = read_in_threads(readers, 2);
    for (sender, wire) in senders.iter_mut().zip(&wires) {
        sender.send_raw(&wire[..wire.len() - 1]);
    }
    wait_until("the server holds both messages but their last byte", || {
        server.metric("ws_assembly_bytes") >= 2.0 * 599_000.0
    });
    for (sender, wire) in senders.iter_mut().zip(&wires) {
        sender.send_raw(&wire[wire.len() - 1..]);
    }
    let sender_threads = read_in_threads(senders, 2);
    let expected: BTreeSet<Vec<u8>> = payloads.iter().cloned().collect();
    let mut everyone = join(threads);
    everyone.extend(join(sender_threads));
    for (index, (_, got)) in everyone.iter().enumerate() {
        let messages: BTreeSet<Vec<u8>> = got
            .iter()
            .filter_map(|item| match item {
                Received::Binary(bytes) => Some(bytes.clone()),
                _ => None,
            })
            .collect();
        assert!(
            messages == expected,
            "member {index} got {:?}",
            describe(got)
        );
    }
    assert_nobody_was_closed_or_dropped(&server, 7);
}

#[test]
fn two_600_kb_messages_completing_in_one_turn_close_no_reader() {
    two_600_kb_messages_completing_in_one_turn(&[]);
}

#[test]
fn two_600_kb_messages_completing_in_one_turn_lose_nothing_under_the_drop_policy() {
    two_600_kb_messages_completing_in_one_turn(&["--slow-consumer", "drop"]);
}

/// Twelve members, each in its own thread with no coordination, send three 100 KiB messages
/// and then read; five members only read. Everyone gets all 36 messages.
fn twelve_unsynchronised_senders(policy: &[&str]) {
    let server = Server::start(policy);
    let readers: Vec<Client> = (0..5)
        .map(|_| Client::connect(server.address, "/twelve"))
        .collect();
    let senders: Vec<Client> = (0..12)
        .map(|_| Client::connect(server.address, "/twelve"))
        .collect();
    let message = |sender: usize, index: usize| {
        let mut text = format!("sender {sender} message {index} ");
        let padding = 100 * KIB - text.len();
        text.push_str(&"m".repeat(padding));
        text
    };
    let expected: BTreeSet<String> = (0..12)
        .flat_map(|sender| (0..3).map(move |index| message(sender, index)))
        .collect();
    let reader_threads = read_in_threads(readers, 36);
    let sender_threads: Vec<JoinHandle<(Client, Vec<Received>)>> = senders
        .into_iter()
        .enumerate()
        .map(|(sender, mut client)| {
            std::thread::spawn(move || {
                for index in 0..3 {
                    client.send_text(&message(sender, index));
                }
                read_in_threads(vec![client], 36)
                    .pop()
                    .unwrap()
                    .join()
                    .expect("a reader thread")
            })
        })
        .collect();
    let mut everyone = join(reader_threads);
    everyone.extend(join(sender_threads));
    for (index, (_, got)) in everyone.iter().enumerate() {
        let texts: BTreeSet<String> = got
            .iter()
            .filter_map(|item| match item {
                Received::Text(text) => Some(text.clone()),
                _ => None,
            })
            .collect();
        assert!(
            texts == expected && got.len() == 36,
            "member {index} got {:?}",
            describe(got)
        );
    }
    assert_nobody_was_closed_or_dropped(&server, 17);
}

#[test]
fn twelve_unsynchronised_senders_of_three_100_kib_messages_close_no_reader() {
    twelve_unsynchronised_senders(&[]);
}

#[test]
fn twelve_unsynchronised_senders_of_three_100_kib_messages_lose_nothing_under_the_drop_policy() {
    twelve_unsynchronised_senders(&["--slow-consumer", "drop"]);
}

#[test]
fn in_echo_mode_a_1_mib_and_a_1_byte_message_in_one_write_come_back_and_the_sender_stays_open() {
    let server = Server::start(&["--mode", "echo"]);
    let big: Vec<u8> = (0..MIB).map(|index| (index % 253) as u8).collect();
    let mut sender = Client::connect(server.address, "/");
    for run in 0..3 {
        let small = format!("{run}");
        sender.send_raw(&two_messages_in_one_write(&big, &small));
        assert_eq!(sender.recv_message(), Received::Binary(big.clone()));
        assert_eq!(sender.recv_message(), Received::Text(small));
    }
    sender.send_text("still open");
    assert_eq!(sender.recv_message(), Received::Text("still open".into()));
    assert_nobody_was_closed_or_dropped(&server, 1);
}

#[test]
fn clients_that_never_read_are_still_closed_with_1008_and_memory_stays_bounded() {
    let message = 64 * KIB;
    let mark = 64 * KIB;
    let server = Server::start(&[
        "--max-message-size",
        &message.to_string(),
        "--max-queued-bytes",
        &mark.to_string(),
    ]);
    let rss = server.rss_bytes();
    let mut stalled: Vec<Client> = (0..50)
        .map(|_| Client::connect_stalled(server.address, "/stalled"))
        .collect();
    let mut sender = Client::connect(server.address, "/stalled");
    let text = "s".repeat(message);
    // 60 x 64 KiB: 3.75 MiB for each of 50 clients, 187 MiB had it all been kept (the kernel
    // takes about 2.5 MiB of it for each before the server's queue fills). Under the default
    // rate limit's burst of 100.
    for _ in 0..60 {
        sender.send_text(&text);
        assert_eq!(sender.recv_message(), Received::Text(text.clone()));
    }

    wait_until(
        "every client that never read was closed as a slow consumer",
        || server.metric("ws_slow_consumer_closes_total") == 50.0,
    );
    // The hard cap is max(4 x mark, mark + 2 x message) = 192 KiB; one turn's broadcasts may
    // come on top of it.
    let hard_cap = (4 * mark).max(mark + 2 * message) as u64;
    let growth = server.rss_bytes().saturating_sub(rss);
    let bound = 50 * (hard_cap + message as u64) + 16 * MIB as u64;
    eprintln!(
        "50 clients that never read, 60 x 64 KiB broadcast: RSS +{} KiB (bound {} KiB)",
        growth / 1024,
        bound / 1024
    );
    assert!(
        growth < bound,
        "50 clients that never read: RSS grew by {growth} bytes, over {bound}"
    );
    // What it says when they do read at last: the messages that fitted, then 1008.
    for client in stalled.iter_mut().take(5) {
        let close = loop {
            match client.recv_message() {
                Received::Text(got) => assert_eq!(got, text),
                other => break other,
            }
        };
        match close {
            Received::Close(Some(1008), reason) => {
                assert!(reason.contains("slow consumer"), "{reason}")
            }
            other => panic!("expected a close with 1008, got {other:?}"),
        }
    }
    // The sender read everything and is still there.
    sender.send_text("after");
    assert_eq!(sender.recv_message(), Received::Text("after".into()));
}
