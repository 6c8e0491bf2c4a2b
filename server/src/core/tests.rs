//! Simulation tests of the core: in-memory sockets, virtual time, no sleeps. Each test drives
//! [`Core`] through the simulated shell in `tests/sim.rs`, which checks the core's invariants
//! and deadlines after every call, and asserts what clients see at exact instants. Sweeps run
//! every 100 ms on a grid (the simulated shell wakes exactly when `poll_timeout` asks), so a
//! timer of N ms set at a sweep fires at that sweep plus N ms, not a tick later.

use std::time::Duration;

use protocol::frame::OpCode;

use super::{
    Accepted, Config, Core, Flags, Millis, Output, Phase, RateLimit, RateLimitPolicy, SlowConsumer,
    SWEEP_EVERY, TICK,
};

// Shared with the fuzz crate, where these items are its public API.
#[allow(unreachable_pub)]
mod sim;

use sim::{Received, Sim, UNLIMITED};

fn ms(value: u64) -> Millis {
    Millis(value)
}

/// A plain HTTP request that the server answers and closes.
fn get(path: &str) -> Vec<u8> {
    format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n").into_bytes()
}

fn no_rate_limit() -> RateLimit {
    RateLimit { rate: 0, burst: 0 }
}

// --- heartbeat, idle, handshake and close timeouts ---

#[test]
fn a_silent_client_is_pinged_after_the_ping_interval_and_a_pong_keeps_it_alive() {
    let mut sim = Sim::new(Config::default(), ms(0));
    let client = sim.open("/room");

    sim.advance_to(ms(29_999));
    assert_eq!(sim.socket(client).pings(), 0, "no ping before 30 s");
    sim.advance_to(ms(30_000));
    assert_eq!(sim.socket(client).pings(), 1, "a ping at 30 s");

    // Answered a second later: the next ping comes 30 s after the pong, and the idle timeout
    // (75 s after the last byte heard) never comes while pings are answered.
    sim.advance_to(ms(31_000));
    sim.send_frame(client, true, OpCode::Pong, b"");
    sim.turn();
    sim.advance_to(ms(60_999));
    assert_eq!(sim.socket(client).pings(), 1);
    sim.advance_to(ms(61_000));
    assert_eq!(sim.socket(client).pings(), 2);
    // Each ping answered within the second of the 1 s steps it shows up in: at 62 s, then at
    // once (the steps fall on the sweeps that ping), so pings at 92 s, 122 s, ... 392 s.
    let mut answered = 1;
    while sim.now < ms(400_000) {
        sim.advance(Duration::from_secs(1));
        if sim.socket(client).pings() > answered {
            answered += 1;
            sim.send_frame(client, true, OpCode::Pong, b"");
            sim.turn();
        }
    }
    assert_eq!(sim.socket(client).pings(), 2 + 11);
    assert_eq!(answered, 13);
    assert_eq!(sim.phase(client), Some(Phase::Open));
    assert_eq!(sim.socket(client).close(), None);
    assert_eq!(sim.core.metrics().timeouts, 0);
}

#[test]
fn a_client_silent_for_the_idle_timeout_gets_1001_idle_timeout_and_is_closed_at_the_close_deadline()
{
    let mut sim = Sim::new(Config::default(), ms(0));
    let client = sim.open("/room");

    sim.advance_to(ms(74_999));
    assert_eq!(sim.phase(client), Some(Phase::Open));
    assert_eq!(
        sim.socket(client).pings(),
        1,
        "the heartbeat went unanswered"
    );
    sim.advance_to(ms(75_000));
    assert_eq!(sim.phase(client), Some(Phase::Closing));
    assert_eq!(
        sim.socket(client).close(),
        Some((Some(1001), "idle timeout"))
    );

    // It never answers our close: the socket goes at the close deadline, 5 s later.
    sim.advance_to(ms(79_999));
    assert!(sim.socket(client).is_open());
    sim.advance_to(ms(80_000));
    assert_eq!(sim.socket(client).closed_at, Some(ms(80_000)));
    assert_eq!(
        sim.core.metrics().timeouts,
        2,
        "idle, then the close deadline"
    );
    assert_eq!(sim.core.connection_count(), 0);
}

#[test]
fn a_socket_that_sends_half_a_head_is_closed_at_the_handshake_deadline() {
    let mut sim = Sim::new(Config::default(), ms(0));
    sim.advance_to(ms(50));
    let client = sim.connect().unwrap();
    let request = sim.upgrade_request(client, "/room");
    sim.send(client, &request[..request.len() / 2]);
    sim.turn();

    // Accepted at 50 ms: the deadline is 10,050 ms, found by the sweep at 10,100 ms (within
    // one sweep of it), and not a moment before the deadline.
    sim.advance_to(ms(10_049));
    assert_eq!(sim.phase(client), Some(Phase::Handshake));
    sim.advance_to(ms(10_100));
    let closed_at = sim.socket(client).closed_at.expect("closed");
    assert!(closed_at >= ms(10_050) && closed_at <= ms(10_050).after(SWEEP_EVERY));
    assert_eq!(closed_at, ms(10_100));
    assert_eq!(sim.socket(client).written, 0, "nothing is answered");
    assert_eq!(sim.core.metrics().timeouts, 1);
}

#[test]
fn a_head_trickled_one_byte_a_second_never_outlives_the_handshake_timeout() {
    let mut sim = Sim::new(Config::default(), ms(0));
    let client = sim.connect().unwrap();
    let request = sim.upgrade_request(client, "/room");
    for (second, byte) in request.iter().enumerate() {
        if !sim.socket(client).is_open() {
            break;
        }
        sim.advance_to(ms(second as u64 * 1000));
        sim.send(client, &[*byte]);
        sim.turn();
    }
    assert_eq!(sim.socket(client).closed_at, Some(ms(10_000)));
    assert_eq!(sim.socket(client).status, None);
    assert_eq!(sim.core.metrics().handshakes_completed, 0);
}

#[test]
fn our_close_unanswered_closes_the_socket_at_the_close_deadline_and_an_answer_closes_it_at_once() {
    let config = Config {
        ping_interval: Duration::from_millis(500),
        idle_timeout: Duration::from_secs(1),
        close_timeout: Duration::from_secs(2),
        ..Config::default()
    };
    let mut sim = Sim::new(config, ms(0));
    let silent = sim.open("/room");
    let answering = sim.open("/room");

    sim.advance_to(ms(1_000));
    for client in [silent, answering] {
        assert_eq!(sim.phase(client), Some(Phase::Closing));
        assert_eq!(
            sim.socket(client).close(),
            Some((Some(1001), "idle timeout"))
        );
    }
    // The answering client echoes the close and ends its stream: gone in that turn.
    sim.advance_to(ms(1_300));
    sim.send_close(answering, 1001, "");
    sim.send_eof(answering);
    sim.turn();
    assert_eq!(sim.socket(answering).closed_at, Some(ms(1_300)));

    sim.advance_to(ms(2_999));
    assert_eq!(sim.phase(silent), Some(Phase::Closing));
    sim.advance_to(ms(3_000));
    assert_eq!(sim.socket(silent).closed_at, Some(ms(3_000)));
}

// --- slow consumers ---

/// A room of a sender and a reader whose socket takes nothing once it is open; messages of
/// 10 KiB against a 64 KiB mark (hard cap 256 KiB).
fn slow_reader_room(policy: SlowConsumer) -> (Sim, usize, usize) {
    let config = Config {
        max_message_size: 16 * 1024,
        max_queued_bytes: 64 * 1024,
        slow_consumer: policy,
        rate_limit: no_rate_limit(),
        ..Config::default()
    };
    assert_eq!(config.hard_queue_cap(), 256 * 1024);
    let mut sim = Sim::new(config, ms(0));
    let sender = sim.open("/room");
    let reader = sim.open("/room");
    sim.socket_mut(reader).accepts_per_turn = 0;
    (sim, sender, reader)
}

fn send_messages(sim: &mut Sim, sender: usize, count: usize, tag: &str) {
    for index in 0..count {
        let text = format!("{tag} {index:>5} {}", "x".repeat(10 * 1024 - 12));
        sim.send_text(sender, &text);
    }
}

#[test]
fn a_reader_that_stays_over_the_mark_for_the_slow_consumer_timeout_is_closed_with_1008() {
    let (mut sim, sender, reader) = slow_reader_room(SlowConsumer::Close);
    // 70 KiB at 1,000 ms: over the 64 KiB mark after that turn's flush, under the hard cap.
    sim.advance_to(ms(1_000));
    send_messages(&mut sim, sender, 7, "burst");
    sim.turn();
    assert!(sim.queued(reader) > 64 * 1024);

    sim.advance_to(ms(5_999));
    assert_eq!(sim.phase(reader), Some(Phase::Open));
    sim.advance_to(ms(6_000));
    assert_eq!(sim.phase(reader), Some(Phase::Closing));
    assert_eq!(sim.core.metrics().slow_consumer_closes, 1);

    // When it reads at last, it finds our close and none of what it could not take.
    sim.socket_mut(reader).accepts_per_turn = UNLIMITED;
    sim.advance_to(ms(6_100));
    assert_eq!(sim.socket(reader).messages(), 0);
    assert_eq!(
        sim.socket(reader).close(),
        Some((Some(1008), "slow consumer: write queue not draining"))
    );
    assert_eq!(sim.phase(sender), Some(Phase::Open));
    assert_eq!(sim.socket(sender).messages(), 7);
}

#[test]
fn a_reader_past_the_hard_cap_after_a_flush_is_closed_with_1008_in_that_turn() {
    let (mut sim, sender, reader) = slow_reader_room(SlowConsumer::Close);
    sim.advance_to(ms(1_000));
    send_messages(&mut sim, sender, 30, "burst"); // 300 KiB, over the 256 KiB hard cap
    sim.turn();
    assert_eq!(sim.phase(reader), Some(Phase::Closing));
    assert_eq!(sim.core.metrics().slow_consumer_closes, 1);
    assert_eq!(sim.socket(sender).messages(), 30);
    // Its memory is bounded: the queue holds our close frame only.
    assert!(sim.queued(reader) < 200);
}

#[test]
fn under_drop_a_reader_past_the_hard_cap_loses_messages_counted_and_stays_connected() {
    let (mut sim, sender, reader) = slow_reader_room(SlowConsumer::Drop);
    sim.advance_to(ms(1_000));
    send_messages(&mut sim, sender, 30, "burst");
    sim.turn();
    assert_eq!(sim.phase(reader), Some(Phase::Open));
    assert_eq!(sim.core.metrics().messages_dropped, 30);
    assert_eq!(sim.queued(reader), 0);

    // It reads again: what comes next reaches it.
    sim.socket_mut(reader).accepts_per_turn = UNLIMITED;
    sim.advance_to(ms(2_000));
    send_messages(&mut sim, sender, 2, "later");
    sim.turn();
    assert_eq!(sim.socket(reader).messages(), 2);
    assert!(sim.socket(reader).texts()[0].starts_with("later     0"));
    assert_eq!(sim.phase(reader), Some(Phase::Open));
    assert_eq!(sim.core.metrics().slow_consumer_closes, 0);
}

#[test]
fn under_drop_a_reader_over_the_mark_for_the_slow_consumer_timeout_loses_new_messages_only() {
    let (mut sim, sender, reader) = slow_reader_room(SlowConsumer::Drop);
    sim.advance_to(ms(1_000));
    send_messages(&mut sim, sender, 7, "burst"); // over the mark since 1,000 ms
    sim.turn();
    for second in 2..=8 {
        // One message a second: queued until 6,000 ms (5 s over the mark), dropped after.
        sim.advance_to(ms(second * 1000));
        send_messages(&mut sim, sender, 1, &format!("second{second}"));
        sim.turn();
    }
    assert_eq!(sim.core.metrics().messages_dropped, 3, "at 6, 7 and 8 s");
    sim.socket_mut(reader).accepts_per_turn = UNLIMITED;
    sim.advance_to(ms(8_100));
    assert_eq!(sim.socket(reader).messages(), 7 + 4);
    sim.advance_to(ms(9_000));
    send_messages(&mut sim, sender, 1, "after");
    sim.turn();
    assert_eq!(sim.socket(reader).messages(), 7 + 4 + 1);
    assert!(sim.socket(reader).texts()[11].starts_with("after"));
    assert_eq!(sim.phase(reader), Some(Phase::Open));
}

#[test]
fn a_reader_that_ends_its_stream_in_the_turn_of_a_burst_holds_no_more_than_the_hard_cap() {
    let (mut sim, sender, reader) = slow_reader_room(SlowConsumer::Close);
    sim.advance_to(ms(1_000));
    send_messages(&mut sim, sender, 30, "burst"); // 300 KiB, over the 256 KiB hard cap
    sim.send_eof(reader); // read after the sender's bytes, in the same turn
    sim.turn(); // the simulated shell panics on a queue over its cap after the flush
    assert!(sim.queued(reader) <= 256 * 1024 + 16 * 1024 + 14);
}

#[test]
fn a_one_mebibyte_message_and_a_one_byte_message_in_one_read_reach_twenty_readers_who_read() {
    for read_budget in [UNLIMITED, 256 * 1024] {
        let mut sim = Sim::new(Config::default(), ms(0));
        sim.read_budget = read_budget;
        let sender = sim.open("/room");
        let readers: Vec<usize> = (0..20).map(|_| sim.open("/room")).collect();
        for &reader in &readers {
            sim.socket_mut(reader).accepts_per_turn = 256 * 1024;
        }
        let big: Vec<u8> = (0..1 << 20).map(|index| (index % 251) as u8).collect();
        let mut bytes = sim.socket_mut(sender).frame(true, OpCode::Binary, &big);
        bytes.extend(sim.socket_mut(sender).frame(true, OpCode::Binary, b"!"));
        sim.advance_to(ms(1_000));
        sim.send(sender, &bytes);
        sim.advance_to(ms(3_000));
        for &reader in &readers {
            assert_eq!(sim.phase(reader), Some(Phase::Open), "budget {read_budget}");
            assert_eq!(
                sim.socket(reader).received,
                [
                    Received::Binary(big.clone()),
                    Received::Binary(b"!".to_vec())
                ]
            );
        }
        assert_eq!(sim.core.metrics().slow_consumer_closes, 0);
        assert_eq!(sim.core.metrics().messages_dropped, 0);
    }
}

#[test]
fn bursts_that_complete_in_one_turn_close_no_reader_that_reads() {
    // Two 600 KB messages in one turn to readers taking 64 KiB a turn (over the mark for a
    // while), and twelve senders of three 100 KiB messages each in one turn.
    let cases: [(usize, usize, usize); 2] = [(1, 2, 600_000), (12, 3, 100 * 1024)];
    for (senders, per_sender, size) in cases {
        let mut sim = Sim::new(Config::default(), ms(0));
        let sending: Vec<usize> = (0..senders).map(|_| sim.open("/room")).collect();
        let readers: Vec<usize> = (0..5).map(|_| sim.open("/room")).collect();
        for &reader in &readers {
            sim.socket_mut(reader).accepts_per_turn =
                if senders == 1 { 64 * 1024 } else { 256 * 1024 };
        }
        sim.advance_to(ms(1_000));
        for &sender in &sending {
            for index in 0..per_sender {
                let payload = vec![b'a' + index as u8; size];
                sim.send_frame(sender, true, OpCode::Binary, &payload);
            }
        }
        sim.turn();
        assert!(sim.queued(readers[0]) > Config::default().max_queued_bytes);
        sim.advance_to(ms(5_000));
        for &reader in &readers {
            assert_eq!(sim.phase(reader), Some(Phase::Open));
            assert_eq!(sim.socket(reader).messages(), senders * per_sender);
            assert_eq!(sim.queued(reader), 0);
        }
        assert_eq!(sim.core.metrics().slow_consumer_closes, 0);
    }
}

// --- shutdown ---

#[test]
fn shutdown_sends_1001_to_everyone_and_finishes_at_the_grace_deadline() {
    let mut sim = Sim::new(Config::default(), ms(0));
    let clients: Vec<usize> = (0..3).map(|_| sim.open("/room")).collect();
    let half = sim.connect().unwrap();
    sim.send(half, b"GET /room HTTP/1.1\r\n");
    sim.turn();

    sim.advance_to(ms(1_000));
    sim.shutdown();
    assert_eq!(sim.socket(half).closed_at, Some(ms(1_000)));
    assert_eq!(sim.connect(), None, "no accepts once shutting down");
    sim.turn();
    for &client in &clients {
        assert_eq!(
            sim.socket(client).close(),
            Some((Some(1001), "server shutting down"))
        );
    }
    // Two answer; the third never does. The grace is min(close timeout, 3 s).
    sim.advance_to(ms(1_200));
    for &client in &clients[..2] {
        sim.send_close(client, 1001, "");
        sim.send_eof(client);
    }
    sim.turn();
    assert!(!sim.socket(clients[0]).is_open() && !sim.socket(clients[1]).is_open());
    sim.advance_to(ms(3_999));
    assert!(!sim.core.is_finished());
    sim.advance_to(ms(4_000));
    assert!(sim.core.is_finished());
}

#[test]
fn shutdown_finishes_as_soon_as_every_client_has_answered() {
    let mut sim = Sim::new(Config::default(), ms(0));
    let clients: Vec<usize> = (0..3).map(|_| sim.open("/room")).collect();
    sim.advance_to(ms(1_000));
    sim.shutdown();
    sim.turn();
    assert!(!sim.core.is_finished());
    sim.advance_to(ms(1_500));
    for &client in &clients {
        sim.send_close(client, 1001, "");
        sim.send_eof(client);
    }
    sim.turn();
    assert_eq!(sim.core.connection_count(), 0);
    assert!(sim.core.is_finished());
}

// --- the flood ---

/// A room of one flooder (1,000 messages a turn) and five chatters (one each a turn), for ten
/// turns 100 ms apart under the default rate limit (100 a second, bursts of 100).
fn flood(policy: RateLimitPolicy) -> (Sim, usize, Vec<usize>) {
    let config = Config {
        rate_limit_policy: policy,
        ..Config::default()
    };
    let mut sim = Sim::new(config, ms(0));
    let flooder = sim.open("/room");
    let chatters: Vec<usize> = (0..5).map(|_| sim.open("/room")).collect();
    for turn in 1..=10u64 {
        sim.advance_to(ms(turn * 100));
        if sim.socket(flooder).is_open() && !sim.socket(flooder).client_done {
            let mut bytes = Vec::new();
            for index in 0..1000 {
                let text = format!("flood {turn}.{index}");
                bytes.extend(
                    sim.socket_mut(flooder)
                        .frame(true, OpCode::Text, text.as_bytes()),
                );
            }
            sim.send(flooder, &bytes);
        }
        for (number, &chatter) in chatters.iter().enumerate() {
            sim.send_text(chatter, &format!("chat {turn}.{number}"));
        }
        sim.turn();
    }
    (sim, flooder, chatters)
}

fn assert_chatters_lost_nothing(sim: &Sim, chatters: &[usize]) {
    let expected: Vec<String> = (1..=10)
        .flat_map(|turn| (0..chatters.len()).map(move |number| format!("chat {turn}.{number}")))
        .collect();
    for &chatter in chatters {
        assert_eq!(sim.phase(chatter), Some(Phase::Open));
        let chat: Vec<&str> = sim
            .socket(chatter)
            .texts()
            .into_iter()
            .filter(|text| text.starts_with("chat"))
            .collect();
        assert_eq!(chat, expected);
    }
}

#[test]
fn a_flooder_is_closed_with_1008_rate_limit_and_the_chatters_lose_nothing() {
    let (sim, flooder, chatters) = flood(RateLimitPolicy::Close);
    let (code, reason) = sim
        .socket(flooder)
        .close()
        .expect("the flooder got a close");
    assert_eq!(code, Some(1008));
    assert!(reason.contains("rate limit"), "reason: {reason}");
    assert_eq!(sim.core.metrics().rate_limited_closes, 1);
    assert_chatters_lost_nothing(&sim, &chatters);
    // Its burst of 100 went out before the limit bit.
    let flood_seen = sim
        .socket(chatters[0])
        .texts()
        .iter()
        .filter(|text| text.starts_with("flood"))
        .count();
    assert_eq!(flood_seen, 100);
}

#[test]
fn under_drop_a_flooder_is_throttled_to_the_rate_with_drops_counted_and_the_chatters_lose_nothing()
{
    let (sim, flooder, chatters) = flood(RateLimitPolicy::Drop);
    assert_eq!(sim.phase(flooder), Some(Phase::Open));
    // A full bucket of 100 at 100 ms, then 10 a turn (100 a second) for nine turns.
    let passed = 100 + 9 * 10;
    assert_eq!(sim.core.metrics().rate_limited_dropped, 10_000 - passed);
    assert_chatters_lost_nothing(&sim, &chatters);
    for &chatter in &chatters {
        let flood_seen = sim
            .socket(chatter)
            .texts()
            .iter()
            .filter(|text| text.starts_with("flood"))
            .count();
        assert_eq!(flood_seen as u64, passed);
    }
    assert_eq!(sim.core.metrics().rate_limited_closes, 0);
}

#[test]
fn a_client_that_breaks_the_protocol_after_our_close_gets_no_second_close_frame() {
    let mut sim = Sim::new(Config::default(), ms(0));
    let client = sim.open("/room");
    sim.advance_to(ms(1_000));
    sim.shutdown();
    sim.turn();
    assert_eq!(
        sim.socket(client).close(),
        Some((Some(1001), "server shutting down"))
    );
    // A continuation frame with no message begun: a protocol error (1002) in any phase.
    sim.send_frame(client, true, OpCode::Continuation, b"late");
    sim.turn(); // the simulated shell panics on a byte written after the server's close
    let closes = sim
        .socket(client)
        .received
        .iter()
        .filter(|received| matches!(received, Received::Close(..)))
        .count();
    assert_eq!(closes, 1);
    sim.advance(Duration::from_secs(5));
    assert!(!sim.socket(client).is_open());
}

// --- half-closed peers ---

#[test]
fn a_request_followed_at_once_by_the_end_of_stream_is_answered_then_shut_down_and_closed() {
    let mut sim = Sim::new(Config::default(), ms(0));
    let client = sim.connect().unwrap();
    sim.send(client, &get("/"));
    sim.send_eof(client);
    sim.turn();
    let socket = sim.socket(client);
    assert_eq!(socket.status, Some(200));
    assert_eq!(socket.body, crate::page::CHAT_PAGE.as_bytes());
    assert_eq!(socket.write_shut_at, Some(ms(0)));
    assert_eq!(socket.closed_at, Some(ms(0)));
}

#[test]
fn an_upgrade_and_a_message_followed_at_once_by_the_end_of_stream_get_their_answers() {
    let mut sim = Sim::new(Config::default(), ms(0));
    let client = sim.connect().unwrap();
    let mut bytes = sim.upgrade_request(client, "/room");
    bytes.extend(sim.socket_mut(client).frame(true, OpCode::Text, b"hello"));
    sim.send(client, &bytes);
    sim.send_eof(client);
    sim.turn();
    let socket = sim.socket(client);
    assert_eq!(socket.status, Some(101));
    assert_eq!(socket.received, [Received::Text("hello".into())]);
    assert_eq!(socket.write_shut_at, Some(ms(0)));
    assert_eq!(socket.closed_at, Some(ms(0)));
}

#[test]
fn a_close_frame_followed_at_once_by_the_end_of_stream_is_answered_then_closed() {
    let mut sim = Sim::new(Config::default(), ms(0));
    let client = sim.open("/room");
    sim.advance_to(ms(500));
    sim.send_close(client, 1000, "bye");
    sim.send_eof(client);
    sim.turn();
    let socket = sim.socket(client);
    assert_eq!(socket.close(), Some((Some(1000), "")));
    assert_eq!(socket.write_shut_at, Some(ms(500)));
    assert_eq!(socket.closed_at, Some(ms(500)));
}

// --- memory held for messages in progress ---

#[test]
fn the_connection_that_would_pass_the_assembly_budget_gets_1009_and_the_memory_returns() {
    let config = Config {
        max_message_size: 4096,
        max_assembly_bytes: 10_000,
        ..Config::default()
    };
    let mut sim = Sim::new(config, ms(0));
    let clients: Vec<usize> = (0..5).map(|_| sim.open("/room")).collect();
    sim.advance_to(ms(100));
    for &client in &clients {
        sim.send_frame(client, false, OpCode::Text, &[b'a'; 3000]);
        sim.turn();
    }
    assert_eq!(sim.core.assembly_bytes(), 9000);
    for &client in &clients[..3] {
        assert_eq!(sim.phase(client), Some(Phase::Open));
    }
    for &client in &clients[3..] {
        assert_eq!(
            sim.socket(client).close().map(|close| close.0),
            Some(Some(1009))
        );
    }
    assert_eq!(sim.core.metrics().assembly_budget_closes, 2);

    // The three finish their messages: delivered, and the memory is given back.
    for &client in &clients[..3] {
        sim.send_frame(client, true, OpCode::Continuation, b"!");
    }
    sim.turn();
    assert_eq!(sim.core.assembly_bytes(), 0);
    assert_eq!(sim.socket(clients[0]).messages(), 3);

    // Parked again, then everyone leaves: nothing stays accounted.
    for &client in &clients[..3] {
        sim.send_frame(client, false, OpCode::Text, &[b'b'; 2000]);
    }
    sim.turn();
    assert_eq!(sim.core.assembly_bytes(), 6000);
    for &client in &clients {
        if sim.socket(client).is_open() {
            sim.send_eof(client);
        }
    }
    sim.advance(Duration::from_secs(10));
    assert_eq!(sim.core.connection_count(), 0);
    assert_eq!(sim.core.assembly_bytes(), 0);
}

#[test]
fn a_fragmented_message_kept_alive_by_empty_continuations_is_closed_with_1008_at_the_message_timeout(
) {
    let mut sim = Sim::new(Config::default(), ms(0));
    let client = sim.open("/room");
    sim.advance_to(ms(1_000));
    sim.send_frame(client, false, OpCode::Text, b"part");
    sim.turn();
    for second in [11, 21, 31, 41, 51] {
        sim.advance_to(ms(second * 1000));
        sim.send_frame(client, false, OpCode::Continuation, b"");
        sim.turn();
    }
    sim.advance_to(ms(60_999));
    assert_eq!(sim.phase(client), Some(Phase::Open));
    sim.advance_to(ms(61_000));
    assert_eq!(
        sim.socket(client).close(),
        Some((
            Some(1008),
            "message not complete within the message timeout"
        ))
    );
    assert_eq!(
        sim.socket(client).pings(),
        0,
        "it was never silent for 30 s"
    );
    assert_eq!(sim.core.metrics().message_timeouts, 1);
    assert_eq!(sim.core.assembly_bytes(), 0);
}

#[test]
fn fragmented_messages_sent_back_to_back_each_get_the_full_message_timeout() {
    // Each message takes 10 s; the end of one and the start of the next arrive in one read.
    let mut sim = Sim::new(Config::default(), ms(0));
    let client = sim.open("/room");
    sim.advance_to(ms(1_000));
    sim.send_frame(client, false, OpCode::Text, b"first");
    sim.turn();
    for second in (11..=121).step_by(10) {
        sim.advance_to(ms(second * 1000));
        sim.send_frame(client, true, OpCode::Continuation, b" end");
        sim.send_frame(client, false, OpCode::Text, b"next");
        sim.turn();
    }
    assert_eq!(sim.phase(client), Some(Phase::Open));
    assert_eq!(sim.socket(client).messages(), 12);
    assert_eq!(sim.core.metrics().message_timeouts, 0);
}

// --- sockets in their handshake ---

#[test]
fn silent_sockets_fill_the_handshake_limit_but_not_the_websocket_limit() {
    let config = Config {
        max_handshakes: 2,
        max_connections: 10,
        ..Config::default()
    };
    let mut sim = Sim::new(config, ms(0));
    let first = sim.connect().unwrap();
    let _second = sim.connect().unwrap();
    assert_eq!(
        sim.connect(),
        None,
        "a third socket in its handshake is refused"
    );
    assert_eq!(sim.core.metrics().handshake_limit_refusals, 1);

    // One of them upgrades: it counts as open now, not as a handshake.
    let request = sim.upgrade_request(first, "/room");
    sim.send(first, &request);
    sim.turn();
    assert_eq!(sim.socket(first).status, Some(101));
    let real = sim.open("/room");
    assert_eq!(sim.phase(real), Some(Phase::Open));
    let _third_silent = sim.connect().unwrap();
    assert_eq!(sim.connect(), None);
    assert_eq!(sim.core.metrics().handshake_limit_refusals, 2);
}

// --- the clock ---

#[test]
fn pings_and_timeouts_still_fire_when_the_tick_counter_wraps() {
    // The 10 ms tick counter wraps at 2^32 ticks: 15 s after this start.
    let wrap = (1u64 << 32) * TICK.as_millis() as u64;
    let start = wrap - 15_000;
    let mut sim = Sim::new(Config::default(), ms(start));
    let client = sim.open("/room");
    sim.advance_to(ms(start + 5_000));
    let half = sim.connect().unwrap();
    sim.send(half, b"GET /room HTTP/1.1\r\n");
    sim.turn();

    // Accepted 10 s before the wrap: its handshake deadline is tick 0.
    sim.advance_to(ms(wrap - 1));
    assert!(sim.socket(half).is_open());
    sim.advance_to(ms(wrap));
    assert_eq!(sim.socket(half).closed_at, Some(ms(wrap)));

    sim.advance_to(ms(start + 29_999));
    assert_eq!(sim.socket(client).pings(), 0);
    sim.advance_to(ms(start + 30_000));
    assert_eq!(sim.socket(client).pings(), 1);
    sim.advance_to(ms(start + 74_999));
    assert_eq!(sim.phase(client), Some(Phase::Open));
    sim.advance_to(ms(start + 75_000));
    assert_eq!(
        sim.socket(client).close(),
        Some((Some(1001), "idle timeout"))
    );
    sim.advance_to(ms(start + 80_000));
    assert_eq!(sim.socket(client).closed_at, Some(ms(start + 80_000)));
}

// --- what the simulated shell itself relies on ---

#[test]
fn the_core_answers_http_requests_and_closes_after_the_answer() {
    let mut sim = Sim::new(Config::default(), ms(0));
    let client = sim.connect().unwrap();
    sim.send(client, &get("/healthz"));
    sim.turn();
    assert_eq!(sim.socket(client).status, Some(200));
    assert_eq!(sim.socket(client).body, b"ok\n");
    assert_eq!(sim.socket(client).write_shut_at, Some(ms(0)));
    // It waits for the client's end of stream, then closes.
    assert!(sim.socket(client).is_open());
    sim.send_eof(client);
    sim.advance_to(ms(100));
    assert_eq!(sim.socket(client).closed_at, Some(ms(100)));
}

/// A sender and four readers in one room, every socket taking all it is given; from now on
/// the flush writes two connections per turn, as the shell's slice of its pass does.
fn room_flushed_two_at_a_time() -> (Sim, usize, Vec<usize>) {
    let config = Config {
        rate_limit: no_rate_limit(),
        ..Config::default()
    };
    let mut sim = Sim::new(config, ms(0));
    let sender = sim.open("/room");
    let readers = (0..4).map(|_| sim.open("/room")).collect();
    sim.flush_slice = 2;
    (sim, sender, readers)
}

#[test]
fn a_message_read_during_a_pass_leaves_with_the_frames_of_the_connections_not_yet_written() {
    let (mut sim, sender, readers) = room_flushed_two_at_a_time();
    let writes_before = sim.core.metrics().write_calls;
    sim.send_text(sender, "first");
    sim.turn(); // "first" is queued for all five; the sender and reader 0 are written
    assert_eq!(sim.socket(readers[0]).texts(), ["first"]);
    assert!(sim.socket(readers[1]).texts().is_empty());

    sim.send_text(sender, "second");
    sim.turn(); // read between slices: readers 1 and 2 get both messages in one write each
    for &reader in &readers[1..3] {
        assert_eq!(sim.socket(reader).texts(), ["first", "second"]);
    }
    assert_eq!(
        sim.socket(readers[0]).texts(),
        ["first"],
        "it waits at the back"
    );
    sim.turn(); // reader 3, then the sender, queued again after their first write
    sim.turn(); // reader 0
    for &reader in &readers {
        assert_eq!(sim.socket(reader).texts(), ["first", "second"]);
    }
    // Two messages for five connections: the ones written after the second arrived got both
    // at once, so 7 writes, not 10.
    assert_eq!(sim.core.metrics().write_calls - writes_before, 7);
    assert_eq!(sim.core.flush_queue_len(), 0);
}

#[test]
fn a_connection_is_written_once_per_pass_whatever_it_is_sent_meanwhile() {
    let (mut sim, sender, readers) = room_flushed_two_at_a_time();
    let writes_before = sim.core.metrics().write_calls;
    for index in 0..3 {
        sim.send_text(sender, &format!("message {index}"));
        sim.turn();
    }
    // Three turns, two writes each: every connection written once, reader 3 last, with all
    // three messages.
    assert_eq!(sim.core.metrics().write_calls - writes_before, 6);
    assert_eq!(sim.socket(readers[3]).messages(), 3);
    sim.turn();
    sim.turn();
    for &reader in &readers {
        assert_eq!(sim.socket(reader).messages(), 3);
    }
}

#[test]
fn a_reader_past_the_hard_cap_is_closed_with_1008_at_its_write_when_the_pass_is_sliced() {
    let (mut sim, sender, reader) = slow_reader_room(SlowConsumer::Close);
    sim.flush_slice = 1;
    sim.advance_to(ms(1_000));
    send_messages(&mut sim, sender, 30, "burst"); // 300 KiB, over the 256 KiB hard cap
    sim.turn(); // the sender's own copy: first in the queue
    assert_eq!(sim.phase(reader), Some(Phase::Open), "not yet its turn");
    sim.turn();
    assert_eq!(sim.phase(reader), Some(Phase::Closing));
    assert_eq!(sim.core.metrics().slow_consumer_closes, 1);
    assert!(
        sim.queued(reader) < 200,
        "its queue holds our close frame only"
    );
}
