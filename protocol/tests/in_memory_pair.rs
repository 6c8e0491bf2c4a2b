//! A client and a server from this crate talk to each other in memory, with no sockets: the
//! handshake, messages both ways, a ping, and the closing handshake.

use protocol::close::{encode_payload, CloseCode};
use protocol::frame::{encode_frame, OpCode, Role};
use protocol::handshake::client::ClientHandshake;
use protocol::handshake::server::{validate_request, write_accept};
use protocol::http::{parse_request, Limits};
use protocol::message::{CloseState, Decoder, Event};

#[derive(Debug, PartialEq)]
enum Said {
    Text(String),
    Binary(Vec<u8>),
    Ping(Vec<u8>),
    Close(Option<u16>),
}

fn drain(decoder: &mut Decoder, wire: &mut Vec<u8>) -> Vec<Said> {
    let mut said = Vec::new();
    let mut start = 0;
    loop {
        let (consumed, event) = decoder.decode(&mut wire[start..]).expect("valid frames");
        start += consumed;
        match event {
            Some(Event::Text(text)) => said.push(Said::Text(text.to_owned())),
            Some(Event::Binary(bytes)) => said.push(Said::Binary(bytes.to_vec())),
            Some(Event::Ping(bytes)) => said.push(Said::Ping(bytes.to_vec())),
            Some(Event::Pong(_)) => {}
            Some(Event::Close(close)) => said.push(Said::Close(close.code.map(|code| code.0))),
            None => break,
        }
    }
    wire.drain(..start);
    said
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

    let request = parse_request(&to_server, Limits::default())
        .unwrap()
        .complete()
        .unwrap();
    let head_len = request.head_len;
    let upgrade = validate_request(&request).unwrap();
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

    let mut server = Decoder::new(Role::Server, 1 << 20);
    let mut client_decoder = Decoder::new(Role::Client, 1 << 20);
    assert_eq!(
        drain(&mut server, &mut to_server),
        [Said::Text("early".into())]
    );
    assert_eq!(
        drain(&mut client_decoder, &mut to_client),
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
    let mut close = Vec::new();
    encode_payload(&mut close, CloseCode::GOING_AWAY, "leaving");
    encode_frame(
        &mut to_server,
        true,
        OpCode::Close,
        &close,
        Some([4, 3, 2, 1]),
    );
    client_decoder.close_sent();
    assert_eq!(
        drain(&mut server, &mut to_server),
        [
            Said::Ping(b"p".to_vec()),
            Said::Text("fragment".into()),
            Said::Close(Some(1001))
        ]
    );

    // The server echoes the code, and both sides end up closed.
    assert_eq!(server.close_state(), CloseState::CloseReceived);
    let mut reply = Vec::new();
    encode_payload(&mut reply, CloseCode::GOING_AWAY, "");
    encode_frame(&mut to_client, true, OpCode::Close, &reply, None);
    server.close_sent();
    assert_eq!(server.close_state(), CloseState::Closed);
    assert_eq!(
        drain(&mut client_decoder, &mut to_client),
        [Said::Close(Some(1001))]
    );
    assert_eq!(client_decoder.close_state(), CloseState::Closed);
}
