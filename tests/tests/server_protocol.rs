//! The server's protocol duties: pings, close codes for broken rules, heartbeats, timeouts,
//! slow consumers and graceful shutdown.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use integration_tests::{wait_until, Client, Received, Server};
use protocol::frame::OpCode;

#[test]
fn a_ping_gets_a_pong_with_the_same_payload() {
    let server = Server::start(&[]);
    let mut client = Client::connect(server.address, "/");
    client.send_frame(true, OpCode::Ping, b"are you there");
    assert_eq!(client.recv(), Received::Pong(b"are you there".to_vec()));
}

#[test]
fn an_oversize_message_gets_1009() {
    let server = Server::start(&["--max-message-size", "1000"]);
    let mut client = Client::connect(server.address, "/");
    client.send_frame(true, OpCode::Binary, &[0; 1001]);
    assert!(matches!(
        client.recv_message(),
        Received::Close(Some(1009), _)
    ));
    assert_eq!(client.recv(), Received::Eof);
    assert_eq!(
        server.metric("ws_protocol_errors_total{code=\"1009\"}"),
        1.0
    );
}

#[test]
fn a_fragmented_message_growing_past_the_limit_gets_1009() {
    let server = Server::start(&["--max-message-size", "1000"]);
    let mut client = Client::connect(server.address, "/");
    client.send_frame(false, OpCode::Binary, &[0; 600]);
    client.send_frame(true, OpCode::Continuation, &[0; 600]);
    assert!(matches!(
        client.recv_message(),
        Received::Close(Some(1009), _)
    ));
}

#[test]
fn invalid_utf8_gets_1007() {
    let server = Server::start(&[]);
    let mut client = Client::connect(server.address, "/");
    client.send_frame(true, OpCode::Text, b"caf\xc3");
    assert!(matches!(
        client.recv_message(),
        Received::Close(Some(1007), _)
    ));
}

#[test]
fn an_unmasked_client_frame_gets_1002_with_the_rule_as_reason() {
    let server = Server::start(&[]);
    let mut client = Client::connect(server.address, "/");
    client.send_raw(b"\x81\x02hi");
    assert_eq!(
        client.recv_message(),
        Received::Close(Some(1002), "client frame is not masked".into())
    );
}

#[test]
fn a_frame_cut_across_many_writes_is_assembled() {
    let server = Server::start(&["--mode", "echo"]);
    let mut client = Client::connect(server.address, "/");
    let mut wire = Vec::new();
    protocol::frame::encode_frame(
        &mut wire,
        true,
        OpCode::Text,
        "slowly, κόσμε".as_bytes(),
        Some([9, 8, 7, 6]),
    );
    for byte in wire {
        client.send_raw(&[byte]);
        std::thread::sleep(Duration::from_millis(2));
    }
    assert_eq!(
        client.recv_message(),
        Received::Text("slowly, κόσμε".into())
    );
}

#[test]
fn a_silent_connection_gets_a_heartbeat_ping_then_is_closed_when_idle() {
    let server = Server::start(&["--ping-interval", "200ms", "--idle-timeout", "1s"]);
    let mut client = Client::connect(server.address, "/");
    assert_eq!(client.recv(), Received::Ping(vec![]));
    // Not answering: the idle timeout closes it with 1001.
    assert_eq!(
        client.recv(),
        Received::Close(Some(1001), "idle timeout".into())
    );
}

/// Regression: when a client answered a close the server had started, the server sent a
/// second close frame before closing.
#[test]
fn a_server_initiated_close_ends_without_a_second_close_frame() {
    let server = Server::start(&["--ping-interval", "10s", "--idle-timeout", "500ms"]);
    let mut client = Client::connect(server.address, "/");
    assert_eq!(
        client.recv(),
        Received::Close(Some(1001), "idle timeout".into())
    );
    client.send_close(protocol::close::CloseCode::GOING_AWAY, "");
    assert_eq!(
        client.bytes_until_eof(),
        b"",
        "nothing may follow the close handshake"
    );
}

#[test]
fn a_pong_keeps_a_connection_alive() {
    let server = Server::start(&["--ping-interval", "200ms", "--idle-timeout", "700ms"]);
    let mut client = Client::connect(server.address, "/");
    let until = Instant::now() + Duration::from_millis(1500);
    while Instant::now() < until {
        match client.recv_timeout(Duration::from_millis(100)) {
            Some(Received::Ping(payload)) => client.send_frame(true, OpCode::Pong, &payload),
            Some(other) => panic!("unexpected {other:?}"),
            None => {}
        }
    }
    assert_eq!(server.metric("ws_connections"), 1.0);
}

#[test]
fn a_handshake_that_does_not_complete_in_time_is_dropped() {
    let server = Server::start(&["--handshake-timeout", "300ms"]);
    let mut socket = TcpStream::connect(server.address).unwrap();
    socket
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    socket.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n").unwrap();
    // The server closes it (a read of 0), long before the read timeout would say otherwise.
    let mut buffer = [0u8; 16];
    match socket.read(&mut buffer) {
        Ok(0) => {}
        other => panic!("expected the server to close the socket, got {other:?}"),
    }
    assert_eq!(server.metric("ws_timeouts_total"), 1.0);
}

#[test]
fn a_client_that_never_reads_is_closed_with_1008_while_the_others_keep_receiving() {
    let cap = 64 * 1024;
    // The sender sends as fast as echoes come back: no rate limit for it.
    let server = Server::start(&[
        "--max-queued-bytes",
        &cap.to_string(),
        "--max-message-rate",
        "0",
    ]);
    let mut sender = Client::connect(server.address, "/");
    let mut reader = Client::connect(server.address, "/");
    // Never read, and keep the kernel's buffers for it small so the server's queue fills.
    let stalled: Vec<Client> = (0..4)
        .map(|_| Client::connect(server.address, "/"))
        .collect();
    wait_until("six connected", || server.metric("ws_connections") == 6.0);
    let rss_before = server.rss_bytes();
    // 400 messages of 32 KiB: 12.8 MiB per stalled client, more than loopback's kernel
    // buffers (4 MiB of send buffer at most here) can hide.
    let text = "x".repeat(32 * 1024);
    for _ in 0..400 {
        sender.send_text(&text);
        assert_eq!(sender.recv_message(), Received::Text(text.clone()));
        assert_eq!(reader.recv_message(), Received::Text(text.clone()));
    }
    wait_until("the stalled clients were closed", || {
        server.metric("ws_slow_consumer_closes_total") == 4.0
    });
    // Had the server buffered what the stalled clients did not read, it would hold 51 MiB.
    // It holds at most the cap (and one message) per stalled client.
    let growth = server.rss_bytes().saturating_sub(rss_before);
    assert!(
        growth < 4 * (cap as u64 + 32 * 1024) + (2 << 20),
        "rss grew by {growth}"
    );
    drop(stalled);
}

#[test]
fn under_the_drop_policy_a_slow_client_loses_messages_counted_and_stays_connected() {
    let cap = 64 * 1024;
    let server = Server::start(&[
        "--max-queued-bytes",
        &cap.to_string(),
        "--slow-consumer",
        "drop",
        "--max-message-rate",
        "0",
    ]);
    let mut sender = Client::connect(server.address, "/");
    let _stalled = Client::connect(server.address, "/");
    wait_until("two connected", || server.metric("ws_connections") == 2.0);
    let text = "y".repeat(32 * 1024);
    for _ in 0..400 {
        sender.send_text(&text);
        assert_eq!(sender.recv_message(), Received::Text(text.clone()));
    }
    wait_until("messages were dropped", || {
        server.metric("ws_messages_dropped_total") > 0.0
    });
    assert_eq!(server.metric("ws_connections"), 2.0);
    assert_eq!(server.metric("ws_slow_consumer_closes_total"), 0.0);
}

#[test]
fn sigterm_sends_1001_to_every_client_and_exits_0() {
    let mut server = Server::start(&[]);
    let mut clients: Vec<Client> = (0..3)
        .map(|_| Client::connect(server.address, "/"))
        .collect();
    wait_until("three connected", || server.metric("ws_connections") == 3.0);
    server.signal("TERM");
    for client in &mut clients {
        assert_eq!(
            client.recv(),
            Received::Close(Some(1001), "server shutting down".into())
        );
        client.send_close(protocol::close::CloseCode::GOING_AWAY, "");
    }
    assert_eq!(server.wait_exit(), Some(0));
}
