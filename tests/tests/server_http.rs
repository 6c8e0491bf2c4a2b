//! Plain HTTP on the server's port, and handshakes it must refuse.

use integration_tests::{http_request, http_request_bytes, wait_until, Client, Server};

const UPGRADE: &str = "GET /chat HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n";

fn upgrade_with(extra: &str) -> String {
    format!("{UPGRADE}{extra}\r\n")
}

#[test]
fn get_slash_serves_the_chat_page() {
    let server = Server::start(&[]);
    let response = http_request(server.address, "GET / HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(response.status, 200);
    assert!(response.head.contains("text/html"));
    let page = String::from_utf8(response.body).unwrap();
    assert!(page.contains("<html") && page.contains("new WebSocket("));
}

#[test]
fn get_metrics_serves_the_counters_in_prometheus_text() {
    let server = Server::start(&[]);
    let _client = Client::connect(server.address, "/");
    let response = http_request(server.address, "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(response.status, 200);
    let body = String::from_utf8(response.body).unwrap();
    for name in [
        "ws_connections 1",
        "ws_connections_total 1",
        "ws_rooms 1",
        "# TYPE ws_messages_received_total counter",
        "ws_frames_delivered_total",
        "ws_bytes_written_total",
        "ws_write_calls_total",
        "ws_slow_consumer_closes_total",
        "ws_messages_dropped_total",
        "ws_protocol_errors_total",
    ] {
        assert!(body.contains(name), "missing {name} in\n{body}");
    }
}

#[test]
fn an_unknown_path_gets_404_and_another_method_gets_405() {
    let server = Server::start(&[]);
    assert_eq!(
        http_request(
            server.address,
            "GET /favicon.ico HTTP/1.1\r\nHost: x\r\n\r\n"
        )
        .status,
        404
    );
    let response = http_request(
        server.address,
        "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n",
    );
    assert_eq!(response.status, 405);
    assert!(response.head.contains("Allow: GET"));
}

#[test]
fn a_bad_handshake_gets_400() {
    let server = Server::start(&[]);
    let missing_key =
        UPGRADE.replace("Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n", "") + "\r\n";
    let response = http_request(server.address, &missing_key);
    assert_eq!(response.status, 400);
    assert!(String::from_utf8_lossy(&response.body).contains("Sec-WebSocket-Key"));
    assert_eq!(
        http_request_bytes(server.address, b"\x16\x03\x01\x00\xa5\x01\x00\x00").status,
        400
    );
}

#[test]
fn a_wrong_version_gets_426_with_the_supported_version() {
    let server = Server::start(&[]);
    let request = UPGRADE.replace("Version: 13", "Version: 8") + "\r\n";
    let response = http_request(server.address, &request);
    assert_eq!(response.status, 426);
    assert!(response.head.contains("Sec-WebSocket-Version: 13"));
}

#[test]
fn an_oversize_request_gets_431() {
    let server = Server::start(&[]);
    let request = upgrade_with(&format!("X-Padding: {}\r\n", "a".repeat(9000)));
    assert_eq!(http_request(server.address, &request).status, 431);
}

#[test]
fn a_disallowed_origin_gets_403_and_an_allowed_one_connects() {
    let server = Server::start(&["--allowed-origin", "http://good.example"]);
    let response = http_request(
        server.address,
        &upgrade_with("Origin: http://evil.example\r\n"),
    );
    assert_eq!(response.status, 403);
    let response = http_request(server.address, &upgrade_with(""));
    assert_eq!(response.status, 403, "no Origin at all is refused too");
    assert!(
        Client::connect_with(server.address, "/", &[("Origin", "http://good.example")]).is_ok()
    );
}

#[test]
fn too_many_connections_get_503() {
    let server = Server::start(&["--max-connections", "2"]);
    let _first = Client::connect(server.address, "/");
    let _second = Client::connect(server.address, "/");
    wait_until("two connected", || server.metric("ws_connections") == 2.0);
    let refused = Client::connect_with(server.address, "/", &[]).err();
    assert_eq!(refused, Some(protocol::Error::UnexpectedStatus(503)));
}
