//! Hostile clients against the real server. Each case runs beside well-behaved clients that
//! keep chatting through it ([`Chatters`]); a case passes only if those lose no message, the
//! hostile sockets get the answer the rules name, and the server's RSS stays under the bound
//! the case states.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use integration_tests::chatters::Chatters;
use integration_tests::{binary, read_until_closed, wait_until, Client, Received, Server};
use protocol::frame::{encode_frame, OpCode};

const MIB: u64 = 1 << 20;

/// Three clients chatting in room `/chatters` beside the hostile ones (see [`Chatters`]).
fn start_chatters(address: SocketAddr) -> Chatters {
    Chatters::start(
        (0..3)
            .map(|_| Client::connect(address, "/chatters"))
            .collect(),
    )
}

/// What [`Chatters::finish`] asks of them: hostile load may slow them down, not stop them.
const CHATTED_AT_LEAST: u64 = 11;

fn assert_rss_grew_less_than(server: &Server, before: u64, bound: u64, what: &str) {
    let growth = server.rss_bytes().saturating_sub(before);
    assert!(
        growth < bound,
        "{what}: RSS grew by {growth} bytes, over the bound of {bound}"
    );
}

fn reset(stream: TcpStream) {
    socket2::SockRef::from(&stream)
        .set_linger(Some(Duration::ZERO))
        .unwrap();
    drop(stream); // SO_LINGER 0: close sends RST
}

#[test]
fn slowloris_handshakes_are_dropped_at_the_handshake_timeout_while_others_chat() {
    let server = Server::start(&["--handshake-timeout", "2s"]);
    let rss = server.rss_bytes();
    let chatters = start_chatters(server.address);
    let mut sockets: Vec<TcpStream> = (0..1000)
        .map(|_| TcpStream::connect(server.address).unwrap())
        .collect();
    let request = b"GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n";
    // One byte per second from each of 1,000 sockets.
    for byte in request.iter().take(4) {
        for socket in &mut sockets {
            let _ = socket.write_all(&[*byte]);
        }
        std::thread::sleep(Duration::from_secs(1));
    }
    wait_until("the server dropped all 1,000", || {
        server.metric("ws_timeouts_total") >= 1000.0
    });
    for socket in sockets.iter_mut().take(10) {
        socket
            .set_read_timeout(Some(Duration::from_secs(15)))
            .unwrap();
        assert!(read_until_closed(socket).is_empty());
    }
    chatters.finish(CHATTED_AT_LEAST);
    assert_rss_grew_less_than(&server, rss, 4 * MIB, "1,000 slow handshakes");
}

#[test]
fn silent_sockets_and_half_frames_are_dropped_by_their_timeouts() {
    let server = Server::start(&[
        "--handshake-timeout",
        "1s",
        "--ping-interval",
        "500ms",
        "--idle-timeout",
        "2s",
    ]);
    let rss = server.rss_bytes();
    let chatters = start_chatters(server.address);
    let silent: Vec<TcpStream> = (0..100)
        .map(|_| TcpStream::connect(server.address).unwrap())
        .collect();
    let mut half_frames: Vec<Client> = (0..100)
        .map(|_| Client::connect(server.address, "/half"))
        .collect();
    for client in &mut half_frames {
        client.send_raw(&[0x81, 0xfe, 0x10]); // a 16-bit length, cut after its first byte
    }
    wait_until("silent sockets and half frames were dropped", || {
        server.metric("ws_timeouts_total") >= 200.0
    });
    // Three chatters, and the socket asking for /metrics.
    wait_until("only the chatters remain", || {
        server.metric("ws_open_sockets") <= 4.0
    });
    drop(silent);
    chatters.finish(CHATTED_AT_LEAST);
    assert_rss_grew_less_than(&server, rss, 4 * MIB, "200 silent sockets");
}

#[test]
fn garbage_and_oversize_requests_get_http_errors_while_others_chat() {
    let server = Server::start(&[]);
    let rss = server.rss_bytes();
    let chatters = start_chatters(server.address);
    let status =
        |request: &[u8]| integration_tests::http_request_bytes(server.address, request).status;
    assert_eq!(
        status(&[0xde, 0xad, 0xbe, 0xef, 0x00, 0x01, 0x02, 0x03]),
        400
    );
    assert_eq!(status(b"\r\n\r\n"), 400);
    assert_eq!(status(b"HELLO WORLD HOW ARE YOU\r\n\r\n"), 400);
    assert_eq!(status(b"GET /nothing.txt HTTP/1.1\r\nHost: x\r\n\r\n"), 404);
    let mut huge_header = b"GET / HTTP/1.1\r\nHost: x\r\nX-Big: ".to_vec();
    huge_header.extend(std::iter::repeat_n(b'a', 1 << 20));
    huge_header.extend_from_slice(b"\r\n\r\n");
    assert_eq!(status(&huge_header), 431);
    let mut many_headers = b"GET / HTTP/1.1\r\nHost: x\r\n".to_vec();
    for index in 0..10_000 {
        many_headers.extend_from_slice(format!("X-{index}: y\r\n").as_bytes());
    }
    many_headers.extend_from_slice(b"\r\n");
    assert_eq!(status(&many_headers), 431);
    chatters.finish(CHATTED_AT_LEAST);
    assert_rss_grew_less_than(&server, rss, 4 * MIB, "garbage requests");
}

#[test]
fn huge_frame_announcements_are_refused_without_allocating_them() {
    let server = Server::start(&[]);
    let rss = server.rss_bytes();
    let chatters = start_chatters(server.address);
    // 2^63 - 1 bytes announced: more than the 1 MiB limit -> 1009, decided from the header.
    let mut client = Client::connect(server.address, "/");
    client.send_raw(&[
        0x82, 0xff, 0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 1, 2, 3, 4,
    ]);
    assert!(matches!(
        client.recv_message(),
        Received::Close(Some(1009), _)
    ));
    // The top bit of a 64-bit length may not be set -> 1002.
    let mut client = Client::connect(server.address, "/");
    client.send_raw(&[0x82, 0xff, 0x80, 0, 0, 0, 0, 0, 0, 0, 1, 2, 3, 4]);
    assert!(matches!(
        client.recv_message(),
        Received::Close(Some(1002), _)
    ));
    // 16 MiB announced, a little sent, then nothing -> 1009 at once.
    let mut client = Client::connect(server.address, "/");
    client.send_raw(&[0x82, 0xff, 0, 0, 0, 0, 1, 0, 0, 0, 1, 2, 3, 4, 9, 9, 9]);
    assert!(matches!(
        client.recv_message(),
        Received::Close(Some(1009), _)
    ));
    // A message that grows past the limit fragment by fragment -> 1009 before it is kept.
    let mut client = Client::connect(server.address, "/");
    client.send_frame(false, OpCode::Binary, &vec![0; 512 * 1024]);
    client.send_frame(false, OpCode::Continuation, &vec![0; 512 * 1024]);
    client.send_frame(false, OpCode::Continuation, &vec![0; 512 * 1024]);
    assert!(matches!(
        client.recv_message(),
        Received::Close(Some(1009), _)
    ));
    chatters.finish(CHATTED_AT_LEAST);
    assert_rss_grew_less_than(&server, rss, 4 * MIB, "huge announcements");
}

#[test]
fn a_thousand_clients_that_never_read_are_closed_with_1008_and_memory_stays_under_the_caps() {
    let cap: u64 = 64 * 1024;
    let message: u64 = 64 * 1024;
    let server = Server::start(&["--max-queued-bytes", &cap.to_string()]);
    let rss = server.rss_bytes();
    // The stalled clients are in the broadcast room; the chatters are in their own.
    let stalled: Vec<Client> = (0..1000)
        .map(|_| Client::connect_stalled(server.address, "/big"))
        .collect();
    let mut sender = Client::connect(server.address, "/big");
    let chatters = start_chatters(server.address);
    wait_until("everyone connected", || {
        server.metric("ws_connections") == 1004.0
    });
    let payload = vec![b'z'; message as usize];
    let text = String::from_utf8(payload).unwrap();
    for _ in 0..40 {
        sender.send_text(&text);
        assert_eq!(sender.recv_message(), Received::Text(text.clone()));
    }
    wait_until("the stalled clients were closed with 1008", || {
        server.metric("ws_slow_consumer_closes_total") == 1000.0
    });
    // 40 x 64 KiB to 1,000 clients is 2.5 GiB had it been buffered.
    assert_rss_grew_less_than(
        &server,
        rss,
        1000 * (cap + message) + 16 * MIB,
        "1,000 stalled clients",
    );
    chatters.finish(CHATTED_AT_LEAST);
    drop(stalled);
}

#[test]
fn resets_mid_handshake_mid_frame_and_mid_write_leave_the_others_chatting() {
    let server = Server::start(&["--max-queued-bytes", "10000000"]);
    let rss = server.rss_bytes();
    let chatters = start_chatters(server.address);
    for _ in 0..50 {
        let mut mid_handshake = TcpStream::connect(server.address).unwrap();
        mid_handshake
            .write_all(b"GET / HTTP/1.1\r\nHost: x\r\nUpgr")
            .unwrap();
        reset(mid_handshake);

        let mut mid_frame = Client::connect(server.address, "/resets");
        mid_frame.send_raw(&[0x81, 0x8a, 1, 2, 3, 4, b'h', b'a']);
        reset(mid_frame.stream);

        let closes_rudely = Client::connect(server.address, "/resets");
        drop(closes_rudely); // FIN without a close frame
    }
    // Mid-write: a client that does not read while a lot is queued for it, then resets.
    let stalled = Client::connect_stalled(server.address, "/write");
    let mut sender = Client::connect(server.address, "/write");
    let text = "w".repeat(256 * 1024);
    for _ in 0..30 {
        sender.send_text(&text);
        assert_eq!(sender.recv_message(), Received::Text(text.clone()));
    }
    reset(stalled.stream);
    sender.send_text("still here");
    assert_eq!(sender.recv_message(), Received::Text("still here".into()));
    // Three chatters, the sender, and the socket asking for /metrics.
    wait_until("the reset sockets are gone", || {
        server.metric("ws_open_sockets") <= 5.0
    });
    chatters.finish(CHATTED_AT_LEAST);
    assert_rss_grew_less_than(&server, rss, 16 * MIB, "resets");
}

#[test]
fn a_ping_flood_and_a_fast_sender_do_not_starve_the_others() {
    let server = Server::start(&[]);
    let chatters = start_chatters(server.address);
    let stop = Arc::new(AtomicBool::new(false));
    let mut floods = Vec::new();
    for opcode in [OpCode::Ping, OpCode::Text] {
        let stop = stop.clone();
        let mut client = Client::connect(server.address, "/flood");
        floods.push(std::thread::spawn(move || {
            let mut burst = Vec::new();
            for _ in 0..256 {
                encode_frame(
                    &mut burst,
                    true,
                    opcode,
                    b"flood flood flood",
                    Some([1, 2, 3, 4]),
                );
            }
            let mut sent = 0u64;
            // Writes until stopped, or until the server closes the flooder (full queue: 1008).
            while !stop.load(Ordering::Relaxed) && client.stream.write_all(&burst).is_ok() {
                sent += 256;
            }
            sent
        }));
    }
    std::thread::sleep(Duration::from_secs(3));
    stop.store(true, Ordering::Relaxed);
    let flooded: u64 = floods.into_iter().map(|flood| flood.join().unwrap()).sum();
    let report = chatters.finish(CHATTED_AT_LEAST);
    assert!(flooded > 10_000, "the flooders sent only {flooded} frames");
    // `finish` asserts that every chatter got every message in order and none was closed;
    // how long they waited is a figure for the bench (the flood row), not a test threshold.
    eprintln!(
        "worst chat round trip beside the flood: {:?} ({} messages)",
        report.worst_latency, report.sent
    );
    // The text flooder went over the message rate limit and was closed for it.
    assert!(server.metric("ws_rate_limited_closes_total") >= 1.0);
}

#[test]
fn out_of_file_descriptors_the_server_keeps_serving_does_not_spin_and_accepts_again() {
    let mut command = Command::new("sh");
    command.args([
        "-c",
        "ulimit -n 64 && exec \"$0\" \"$@\"",
        binary("server").to_str().unwrap(),
    ]);
    let server = Server::start_with(command, &[]);
    let chatters = start_chatters(server.address);
    // Fill every descriptor the server has left, and then some. A connection past the limit
    // waits in the listen backlog: its upgrade gets no answer.
    let upgrade = "GET /fill HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n";
    let mut fillers: Vec<TcpStream> = Vec::new();
    let mut unanswered = 0;
    for _ in 0..70 {
        let mut stream = TcpStream::connect(server.address).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_millis(200)))
            .unwrap();
        stream.write_all(upgrade.as_bytes()).unwrap();
        let mut answer = [0u8; 12];
        match stream.read_exact(&mut answer) {
            Ok(()) if &answer == b"HTTP/1.1 101" => fillers.push(stream),
            _ => unanswered += 1,
        }
    }
    assert!(unanswered > 0, "the descriptor limit was never reached");
    // Not spinning: over one second the server uses a fraction of a core.
    let cpu_before = cpu_seconds(server.pid());
    std::thread::sleep(Duration::from_secs(1));
    let cpu_used = cpu_seconds(server.pid()) - cpu_before;
    assert!(
        cpu_used < 0.5,
        "the server used {cpu_used} s of CPU in 1 s while out of descriptors"
    );
    // Once connections close, it accepts again.
    drop(fillers);
    std::thread::sleep(Duration::from_millis(500));
    let mut late = Client::connect(server.address, "/late");
    late.send_text("accepted again");
    assert_eq!(late.recv_message(), Received::Text("accepted again".into()));
    assert!(server.metric("ws_accept_fd_exhausted_total") > 0.0);
    chatters.finish(CHATTED_AT_LEAST);
}

fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let fields: Vec<&str> = stat[stat.rfind(')').unwrap() + 2..]
        .split_whitespace()
        .collect();
    let ticks: f64 = fields[11].parse::<f64>().unwrap() + fields[12].parse::<f64>().unwrap();
    ticks / 100.0
}
