//! The HTTP rules of issue 18 (defect 7) against the real server: `Host` (RFC 9112 §3.2),
//! request-target forms (RFC 9112 §3.2), a duplicated `Sec-WebSocket-Key` (RFC 6455 §4.2.1),
//! `Expect: 100-continue` (RFC 9110 §10.1.1), `HEAD` (RFC 9110 §9.3.2), `/healthz`, `/rooms`.

use std::io::{Read, Write};
use std::net::TcpStream;

use integration_tests::{http_request, wait_until, Client, Received, Server, WAIT};
use serde_json::Value;

const KEY: &str = "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n";

fn upgrade(target: &str, headers: &str) -> String {
    format!("GET {target} HTTP/1.1\r\n{headers}Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n\r\n")
}

/// Everything the server sends for `request`, until it closes or `until` has arrived.
fn raw_exchange(server: &Server, request: &[u8], until: &[u8]) -> Vec<u8> {
    let mut stream = TcpStream::connect(server.address).unwrap();
    stream.set_read_timeout(Some(WAIT)).unwrap();
    stream.write_all(request).unwrap();
    let mut answer = Vec::new();
    let mut chunk = [0u8; 4096];
    while !answer.windows(until.len()).any(|window| window == until) {
        match stream.read(&mut chunk) {
            Ok(0) => break,
            Ok(read) => answer.extend_from_slice(&chunk[..read]),
            Err(error) => panic!("no answer: {error}; so far {answer:?}"),
        }
    }
    answer
}

#[test]
fn an_http_1_1_request_without_host_gets_400() {
    let server = Server::start(&[]);
    let response = http_request(server.address, "GET / HTTP/1.1\r\n\r\n");
    assert_eq!(response.status, 400);
    assert!(String::from_utf8_lossy(&response.body).contains("Host"));
    let response = http_request(server.address, &upgrade("/room", KEY));
    assert_eq!(response.status, 400);
    // HTTP/1.0 has no Host requirement.
    assert_eq!(
        http_request(server.address, "GET / HTTP/1.0\r\n\r\n").status,
        200
    );
}

#[test]
fn a_request_with_two_host_headers_gets_400() {
    let server = Server::start(&[]);
    let response = http_request(
        server.address,
        "GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
    );
    assert_eq!(response.status, 400);
    assert!(String::from_utf8_lossy(&response.body).contains("more than one Host"));
    let response = http_request(
        server.address,
        &upgrade("/room", &format!("Host: a\r\nHost: b\r\n{KEY}")),
    );
    assert_eq!(response.status, 400);
}

#[test]
fn an_absolute_form_upgrade_lands_in_the_room_of_its_path() {
    let server = Server::start(&[]);
    let mut by_path = Client::connect(server.address, "/room");
    let mut absolute = Client::connect(server.address, "http://127.0.0.1/room");
    absolute.send_text("from the absolute form");
    let text = Received::Text("from the absolute form".into());
    assert_eq!(by_path.recv_message(), text);
    assert_eq!(absolute.recv_message(), text);
    by_path.send_text("back");
    assert_eq!(absolute.recv_message(), Received::Text("back".into()));
    let rooms = http_request(server.address, "GET /rooms HTTP/1.1\r\nHost: x\r\n\r\n");
    let rooms: Value = serde_json::from_slice(&rooms.body).unwrap();
    assert_eq!(rooms["total_rooms"], 1, "{rooms}");
    assert_eq!(rooms["rooms"][0]["name"], "/room", "{rooms}");
    // A plain absolute-form GET is served too, not 404.
    let page = http_request(
        server.address,
        "GET http://127.0.0.1/room HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n",
    );
    assert_eq!(page.status, 200);
}

#[test]
fn upgrade_targets_that_are_not_paths_get_400() {
    let server = Server::start(&[]);
    for target in ["*", "room", "?q", "http:///room"] {
        let response = http_request(
            server.address,
            &upgrade(target, &format!("Host: x\r\n{KEY}")),
        );
        assert_eq!(response.status, 400, "target {target:?}");
    }
    wait_until("no room was made", || server.metric("ws_rooms") == 0.0);
}

#[test]
fn a_duplicated_sec_websocket_key_gets_400_that_says_so() {
    let server = Server::start(&[]);
    let response = http_request(
        server.address,
        &upgrade("/room", &format!("Host: x\r\n{KEY}{KEY}")),
    );
    assert_eq!(response.status, 400);
    let body = String::from_utf8_lossy(&response.body);
    assert!(
        body.contains("more than one Sec-WebSocket-Key"),
        "the body says: {body}"
    );
}

#[test]
fn expect_100_continue_gets_an_interim_100_then_the_answer() {
    let server = Server::start(&[]);
    let answer = raw_exchange(
        &server,
        upgrade(
            "/room",
            &format!("Host: x\r\nExpect: 100-continue\r\n{KEY}"),
        )
        .as_bytes(),
        b"Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n",
    );
    let text = String::from_utf8_lossy(&answer);
    assert!(
        text.starts_with("HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 101 "),
        "{text}"
    );
    let answer = raw_exchange(
        &server,
        b"GET /healthz HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\n\r\n",
        b"ok\n",
    );
    let text = String::from_utf8_lossy(&answer);
    assert!(
        text.starts_with("HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 "),
        "{text}"
    );
}

#[test]
fn head_of_the_page_gets_200_and_no_body() {
    let server = Server::start(&[]);
    let head = http_request(server.address, "HEAD / HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(head.status, 200);
    assert!(head.body.is_empty(), "{} body bytes", head.body.len());
    let get = http_request(server.address, "GET / HTTP/1.1\r\nHost: x\r\n\r\n");
    let length = |head: &str| {
        head.lines()
            .find_map(|line| line.strip_prefix("Content-Length: "))
            .map(str::to_owned)
    };
    // HEAD says what GET would carry (RFC 9110 §9.3.2).
    assert_eq!(length(&head.head), length(&get.head));
    assert_eq!(length(&get.head), Some(get.body.len().to_string()));
}

#[test]
fn healthz_says_ok() {
    let server = Server::start(&[]);
    let response = http_request(server.address, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(response.status, 200);
    assert_eq!(response.body, b"ok\n");
}

#[test]
fn rooms_lists_each_room_with_its_member_count_as_json() {
    let server = Server::start(&[]);
    let _a: Vec<Client> = (0..2)
        .map(|_| Client::connect(server.address, "/a"))
        .collect();
    let _b = Client::connect(server.address, "/b");
    let response = http_request(server.address, "GET /rooms HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(response.status, 200);
    assert!(
        response.head.contains("application/json"),
        "{}",
        response.head
    );
    let rooms: Value = serde_json::from_slice(&response.body).unwrap();
    assert_eq!(
        rooms["rooms"],
        serde_json::json!([{"name": "/a", "members": 2}, {"name": "/b", "members": 1}]),
        "{rooms}"
    );
    assert_eq!(rooms["total_rooms"], 2);
}

#[test]

fn a_head_with_bare_lf_line_endings_gets_400_at_once() {
    // A handshake timeout far beyond the test's wait: only an answer on the head itself passes.
    let server = Server::start(&["--handshake-timeout", "60s"]);
    let response = http_request(server.address, "GET / HTTP/1.1\nHost: x\n\n");
    assert_eq!(response.status, 400);
    let response = http_request(
        server.address,
        "GET /room HTTP/1.1\nHost: x\nUpgrade: websocket\nConnection: Upgrade\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\nSec-WebSocket-Version: 13\n\n",
    );
    assert_eq!(response.status, 400);
}
