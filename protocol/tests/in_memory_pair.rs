//! A client and a server from this crate talk to each other in memory, with no sockets: the
//! handshake, messages both ways, a ping, and the closing handshake; then the same with
//! permessage-deflate negotiated and compressed messages both ways.

mod support;

use protocol::close::{encode_payload, CloseCode};
use protocol::deflate::{DeflateOffer, Deflater, ServerDeflateConfig};
use protocol::frame::{encode_frame, encode_frame_with_rsv1, OpCode, Role};
use protocol::handshake::client::ClientHandshake;
use protocol::handshake::server::{
    validate_request, write_accept, write_accept_with_deflate, Upgrade,
};
use protocol::http::{parse_request, Limits};
use protocol::message::CloseState;
use support::{fragments, Receiver, Said};

/// Everything `wire` holds, read at once; `wire` is left empty.
fn drain(receiver: &mut Receiver, wire: &mut Vec<u8>) -> Vec<Said> {
    receiver.receive(&std::mem::take(wire))
}

/// The server's side of the opening handshake: the client's request in `to_server` parsed and
/// validated (RFC 6455 §4.2.1), and the length of its head.
fn read_upgrade(to_server: &[u8]) -> (usize, Upgrade<'_>) {
    let request = parse_request(to_server, Limits::default())
        .unwrap()
        .complete()
        .unwrap();
    (request.head_len, validate_request(&request).unwrap())
}

/// Appends a close frame of `code` and `reason` (RFC 6455 §5.5.1).
fn close_frame(wire: &mut Vec<u8>, code: CloseCode, reason: &str, mask: Option<[u8; 4]>) {
    let mut payload = Vec::new();
    encode_payload(&mut payload, code, reason);
    encode_frame(wire, true, OpCode::Close, &payload, mask);
}

#[test]
fn client_and_server_handshake_exchange_messages_and_close_in_memory() {
    // Client -> server: the upgrade request, with a first frame right behind it.
    let client = ClientHandshake {
        host: "127.0.0.1:9",
        target: "/room",
        key: [7; 16],
        protocols: &["chat"],
        extra_headers: &[],
    };
    let mut to_server = Vec::new();
    client.write_request(&mut to_server);
    encode_frame(
        &mut to_server,
        true,
        OpCode::Text,
        b"early",
        Some([1, 2, 3, 4]),
    );

    let (head_len, upgrade) = read_upgrade(&to_server);
    assert_eq!(upgrade.path, "/room");
    assert_eq!(upgrade.protocols, ["chat"]);
    let mut to_client = Vec::new();
    write_accept(&mut to_client, &upgrade, Some("chat"), &[]);
    to_server.drain(..head_len);

    // Server -> client: the 101, with a frame right behind it.
    encode_frame(&mut to_client, true, OpCode::Binary, &[0, 1, 2], None);
    let accepted = client
        .read_response(&to_client)
        .unwrap()
        .complete()
        .unwrap();
    assert_eq!(accepted.protocol, Some("chat"));
    to_client.drain(..accepted.head_len);

    let mut server = Receiver::new(Role::Server);
    let mut client_receiver = Receiver::new(Role::Client);
    assert_eq!(
        drain(&mut server, &mut to_server),
        [Said::Text("early".into())]
    );
    assert_eq!(
        drain(&mut client_receiver, &mut to_client),
        [Said::Binary(vec![0, 1, 2])]
    );

    // A fragmented message and a ping from the client, then its close.
    encode_frame(
        &mut to_server,
        false,
        OpCode::Text,
        "frag".as_bytes(),
        Some([9, 9, 9, 9]),
    );
    encode_frame(&mut to_server, true, OpCode::Ping, b"p", Some([5, 5, 5, 5]));
    encode_frame(
        &mut to_server,
        true,
        OpCode::Continuation,
        "ment".as_bytes(),
        Some([8, 8, 8, 8]),
    );
    close_frame(
        &mut to_server,
        CloseCode::GOING_AWAY,
        "leaving",
        Some([4, 3, 2, 1]),
    );
    client_receiver.decoder.close_sent();
    assert_eq!(
        drain(&mut server, &mut to_server),
        [
            Said::Ping(b"p".to_vec()),
            Said::Text("fragment".into()),
            Said::Close(Some(1001))
        ]
    );

    // The server echoes the code, and both sides end up closed.
    assert_eq!(server.decoder.close_state(), CloseState::CloseReceived);
    close_frame(&mut to_client, CloseCode::GOING_AWAY, "", None);
    server.decoder.close_sent();
    assert_eq!(server.decoder.close_state(), CloseState::Closed);
    assert_eq!(
        drain(&mut client_receiver, &mut to_client),
        [Said::Close(Some(1001))]
    );
    assert_eq!(client_receiver.decoder.close_state(), CloseState::Closed);
}

#[test]
fn client_and_server_negotiate_deflate_and_exchange_compressed_messages_in_memory() {
    let client = ClientHandshake::new("127.0.0.1:9", "/room", [3; 16]);
    let offer = DeflateOffer::browser();
    let mut to_server = Vec::new();
    client.write_request_with_deflate(&mut to_server, &offer);

    let (head_len, upgrade) = read_upgrade(&to_server);
    let server_agreed = upgrade
        .negotiate_deflate(&ServerDeflateConfig::default())
        .expect("the browser offer is acceptable");
    let mut to_client = Vec::new();
    write_accept_with_deflate(&mut to_client, &upgrade, None, Some(&server_agreed), &[]);
    to_server.drain(..head_len);

    let accepted = client
        .read_response_with_deflate(&to_client, &offer)
        .unwrap()
        .complete()
        .unwrap();
    let client_agreed = accepted.deflate.expect("the server accepted");
    assert_eq!(client_agreed, server_agreed);
    to_client.drain(..accepted.head_len);
    // The server answered both no-context-takeover parameters: nobody needs an inflater of
    // its own for this peer.
    assert!(!client_agreed.peer_takes_over_context(Role::Client));
    assert!(!server_agreed.peer_takes_over_context(Role::Server));

    let mut server_receiver = Receiver::with_deflate(Role::Server);
    let mut client_receiver = Receiver::with_deflate(Role::Client);
    let mut server_deflater = Deflater::new(server_agreed.window_bits_for(Role::Server));
    let mut client_deflater = Deflater::new(client_agreed.window_bits_for(Role::Client));

    // Client -> server: a compressed text in one frame, a compressed binary in three
    // fragments with a ping between them, and a plain text.
    let chat = r#"{"room":"lobby","user":"ada","text":"hello, hello, hello"}"#;
    client_deflater.encode_frame(
        &mut to_server,
        OpCode::Text,
        chat.as_bytes(),
        Some([1, 2, 3, 4]),
    );
    let binary: Vec<u8> = (0..3000u32).map(|i| (i % 7) as u8).collect();
    let mut compressed = Vec::new();
    client_deflater.compress(&binary, &mut compressed);
    let thirds = [compressed.len() / 3, 2 * compressed.len() / 3];
    for fragment in fragments(OpCode::Binary, &compressed, &thirds) {
        let (fin, rsv1, opcode) = (fragment.fin, fragment.first, fragment.opcode);
        let key = Some([fragment.payload.len() as u8, 9, 9, 9]);
        encode_frame_with_rsv1(&mut to_server, fin, rsv1, opcode, fragment.payload, key);
        if fragment.first {
            encode_frame(&mut to_server, true, OpCode::Ping, b"p", Some([5, 5, 5, 5]));
        }
    }
    encode_frame(
        &mut to_server,
        true,
        OpCode::Text,
        b"plain",
        Some([6, 6, 6, 6]),
    );
    assert_eq!(
        drain(&mut server_receiver, &mut to_server),
        [
            Said::Text(chat.into()),
            Said::Ping(b"p".to_vec()),
            Said::Binary(binary.clone()),
            Said::Text("plain".into()),
        ]
    );

    // Server -> client: one broadcast frame, compressed once, sent twice as the same bytes.
    let mut broadcast = Vec::new();
    server_deflater.encode_frame(&mut broadcast, OpCode::Text, chat.as_bytes(), None);
    assert!(broadcast.len() < chat.len());
    to_client.extend_from_slice(&broadcast);
    to_client.extend_from_slice(&broadcast);
    assert_eq!(
        drain(&mut client_receiver, &mut to_client),
        [Said::Text(chat.into()), Said::Text(chat.into())]
    );

    // The closing handshake is not compressed.
    close_frame(&mut to_server, CloseCode::NORMAL, "", Some([4, 3, 2, 1]));
    assert_eq!(
        drain(&mut server_receiver, &mut to_server),
        [Said::Close(Some(1000))]
    );
}
