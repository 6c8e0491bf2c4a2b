//! The chat and echo modes of the real `server`, over real sockets.

use std::time::Duration;

use integration_tests::{wait_until, Client, Received, Server};
use protocol::close::CloseCode;
use protocol::frame::OpCode;

const QUIET: Duration = Duration::from_millis(300);

#[test]
fn a_message_reaches_every_member_of_its_room_and_no_one_in_another_room() {
    let server = Server::start(&[]);
    let mut alice = Client::connect(server.address, "/rust");
    let mut bob = Client::connect(server.address, "/rust");
    let mut carol = Client::connect(server.address, "/go");
    wait_until("three members joined", || {
        server.metric("ws_connections") == 3.0
    });

    alice.send_text("hello rust");
    assert_eq!(alice.recv_message(), Received::Text("hello rust".into()));
    assert_eq!(bob.recv_message(), Received::Text("hello rust".into()));
    assert_eq!(carol.recv_timeout(QUIET), None);
    assert_eq!(server.metric("ws_rooms"), 2.0);
}

#[test]
fn binary_messages_keep_their_opcode_and_bytes() {
    let server = Server::start(&[]);
    let mut alice = Client::connect(server.address, "/");
    let mut bob = Client::connect(server.address, "/");
    wait_until("two members joined", || {
        server.metric("ws_connections") == 2.0
    });
    let payload: Vec<u8> = (0..=255).collect();
    alice.send_frame(true, OpCode::Binary, &payload);
    assert_eq!(bob.recv_message(), Received::Binary(payload));
}

#[test]
fn fragmented_messages_are_relayed_whole() {
    let server = Server::start(&[]);
    let mut alice = Client::connect(server.address, "/");
    let mut bob = Client::connect(server.address, "/");
    wait_until("two members joined", || {
        server.metric("ws_connections") == 2.0
    });
    alice.send_frame(false, OpCode::Text, b"frag");
    alice.send_frame(false, OpCode::Continuation, b"men");
    alice.send_frame(true, OpCode::Continuation, b"ted");
    assert_eq!(bob.recv_message(), Received::Text("fragmented".into()));
}

#[test]
fn the_sender_is_left_out_with_no_echo_to_sender() {
    let server = Server::start(&["--no-echo-to-sender"]);
    let mut alice = Client::connect(server.address, "/");
    let mut bob = Client::connect(server.address, "/");
    wait_until("two members joined", || {
        server.metric("ws_connections") == 2.0
    });
    alice.send_text("not to myself");
    assert_eq!(bob.recv_message(), Received::Text("not to myself".into()));
    assert_eq!(alice.recv_timeout(QUIET), None);
}

#[test]
fn echo_mode_returns_every_message_to_its_sender_only() {
    let server = Server::start(&["--mode", "echo"]);
    let mut alice = Client::connect(server.address, "/");
    let mut bob = Client::connect(server.address, "/");
    alice.send_text("mine");
    assert_eq!(alice.recv_message(), Received::Text("mine".into()));
    assert_eq!(bob.recv_timeout(QUIET), None);
}

#[test]
fn new_members_get_the_welcome_text() {
    let server = Server::start(&["--welcome", "welcome to the room"]);
    let mut alice = Client::connect(server.address, "/");
    assert_eq!(
        alice.recv_message(),
        Received::Text("welcome to the room".into())
    );
}

#[test]
fn a_member_that_disconnects_is_gone_from_the_next_broadcast() {
    let server = Server::start(&[]);
    let mut alice = Client::connect(server.address, "/");
    let bob = Client::connect(server.address, "/");
    let mut carol = Client::connect(server.address, "/");
    wait_until("three members joined", || {
        server.metric("ws_connections") == 3.0
    });
    drop(bob); // no close frame: the TCP connection just goes away
    wait_until("bob left", || server.metric("ws_connections") == 2.0);
    alice.send_text("after bob");
    assert_eq!(alice.recv_message(), Received::Text("after bob".into()));
    assert_eq!(carol.recv_message(), Received::Text("after bob".into()));
    // Nothing was written toward bob's socket after it went away.
    assert_eq!(server.metric("ws_frames_delivered_total"), 2.0);
}

#[test]
fn a_close_from_the_client_is_answered_with_the_same_code_and_the_member_leaves() {
    let server = Server::start(&[]);
    let mut alice = Client::connect(server.address, "/");
    alice.send_close(CloseCode(4001), "bye");
    assert_eq!(alice.recv(), Received::Close(Some(4001), String::new()));
    assert_eq!(alice.recv(), Received::Eof);
    wait_until("alice left", || server.metric("ws_connections") == 0.0);
}

#[test]
fn a_close_without_a_code_is_answered_with_1000() {
    let server = Server::start(&[]);
    let mut alice = Client::connect(server.address, "/");
    alice.send_frame(true, OpCode::Close, b"");
    assert_eq!(alice.recv(), Received::Close(Some(1000), String::new()));
}

#[test]
fn broadcasts_made_in_one_turn_leave_in_one_write_call_per_receiver() {
    let server = Server::start(&[]);
    let mut sender = Client::connect(server.address, "/");
    let mut receivers: Vec<Client> = (0..5)
        .map(|_| Client::connect(server.address, "/"))
        .collect();
    wait_until("six members joined", || {
        server.metric("ws_connections") == 6.0
    });
    let calls_before = server.metric("ws_write_calls_total");
    let frames_before = server.metric("ws_frames_delivered_total");
    // 50 messages in one TCP write: the server reads them in one turn and corks the output.
    let mut burst = Vec::new();
    for index in 0..50 {
        protocol::frame::encode_frame(
            &mut burst,
            true,
            OpCode::Text,
            format!("m{index}").as_bytes(),
            Some([1, 2, 3, 4]),
        );
    }
    sender.send_raw(&burst);
    for receiver in receivers.iter_mut().chain(std::iter::once(&mut sender)) {
        for index in 0..50 {
            assert_eq!(receiver.recv_message(), Received::Text(format!("m{index}")));
        }
    }
    let calls = server.metric("ws_write_calls_total") - calls_before;
    let frames = server.metric("ws_frames_delivered_total") - frames_before;
    assert_eq!(frames, 300.0);
    // One write per receiver per turn: far fewer calls than frames.
    assert!(calls <= 30.0, "{frames} frames took {calls} write calls");
}
