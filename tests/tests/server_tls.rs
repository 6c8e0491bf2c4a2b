//! The server over TLS (`--tls-cert`, `--tls-key`): `wss://` and `https://` with real clients
//! (Python `websockets` with an `ssl` context, and rustls), bad input on the TLS port, the
//! handshake timeout around the TLS handshake, certificate reload on SIGHUP, and start-up
//! errors. Every test makes its own certificate with `openssl` in a temporary directory.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use integration_tests::chatters::Chatters;
use integration_tests::tls::{
    client_config, client_hello, connect_tls, https_get, metric, trusting, TempDir,
    TestCertificate, TlsClient,
};
use integration_tests::{read_until_closed, run_to_exit, Received, Server, WAIT};
use protocol::close::CloseCode;
use rustls::ClientConfig;

/// A TLS record's content type for an alert (RFC 8446 section 5.1).
const ALERT_RECORD: u8 = 21;

fn workspace() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Asserts that `bytes` are nothing but TLS alert records: what a TLS server may answer to a
/// client that does not speak TLS. Never an HTTP response in plain text.
fn assert_only_alerts(bytes: &[u8], what: &str) {
    let mut rest = bytes;
    while !rest.is_empty() {
        assert!(
            rest.len() >= 5 && rest[0] == ALERT_RECORD && rest[1] == 3,
            "{what}: the server answered with something other than a TLS alert: {:?}",
            String::from_utf8_lossy(bytes)
        );
        let length = u16::from_be_bytes([rest[3], rest[4]]) as usize;
        assert!(rest.len() >= 5 + length, "{what}: a cut alert record");
        rest = &rest[5 + length..];
    }
}

/// A TLS server on a certificate of its own, and a client configuration that trusts it.
struct TlsServer {
    server: Server,
    config: Arc<ClientConfig>,
    certificate: TestCertificate,
}

impl TlsServer {
    fn start(args: &[&str]) -> TlsServer {
        let certificate = TestCertificate::make("server");
        let server = Server::start_tls(&certificate.cert, &certificate.key, args);
        let config = trusting(&certificate);
        TlsServer {
            server,
            config,
            certificate,
        }
    }
}

#[test]
fn python_websockets_clients_chat_in_rooms_over_wss() {
    let TlsServer {
        server,
        certificate,
        ..
    } = TlsServer::start(&[]);
    let python = workspace().join(".venv/bin/python");
    assert!(
        python.exists(),
        "{} is missing: run scripts/python-venv.sh (make test does)",
        python.display()
    );
    let mut child = Command::new(&python)
        .arg(workspace().join("tests/python/tls_chat.py"))
        .arg("--address")
        .arg(server.address.to_string())
        .arg("--ca")
        .arg(&certificate.cert)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the venv's python starts");
    // The script has a 20 s deadline of its own; this one only catches a stuck interpreter.
    let deadline = Instant::now() + Duration::from_secs(40);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            break child.wait().unwrap();
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut stdout = String::new();
    let mut stderr = String::new();
    child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut stdout)
        .unwrap();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    assert!(
        status.success() && stdout.contains("tls_chat: ok"),
        "tls_chat.py failed ({status}):\n{stdout}\n{stderr}"
    );
}

#[test]
fn plain_text_requests_on_the_tls_port_get_an_alert_and_a_close_at_once_and_are_counted() {
    // A handshake timeout far beyond the read timeout: a close seen here is the answer to the
    // plain text itself, not a timer.
    let TlsServer { server, config, .. } = TlsServer::start(&["--handshake-timeout", "60s"]);
    let requests = [
        "GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".to_owned(),
        format!(
            "GET /room HTTP/1.1\r\nHost: {}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
            server.address
        ),
    ];
    for request in &requests {
        let mut socket = TcpStream::connect(server.address).unwrap();
        socket.set_read_timeout(Some(WAIT)).unwrap();
        socket.write_all(request.as_bytes()).unwrap();
        let answer = read_until_closed(&mut socket);
        assert_only_alerts(&answer, request.lines().next().unwrap());
    }
    assert_eq!(
        metric(server.address, &config, "ws_tls_failures_total"),
        2.0
    );
    // The port still serves TLS after them.
    let response = https_get(server.address, &config, "/healthz");
    assert_eq!(response.status, 200);
}

#[test]
fn healthz_the_page_and_metrics_are_served_over_https_with_tls_1_2_and_1_3_and_alpn_http_1_1() {
    let TlsServer {
        server,
        config,
        certificate,
    } = TlsServer::start(&[]);
    for (version, expected) in [
        (&rustls::version::TLS13, rustls::ProtocolVersion::TLSv1_3),
        (&rustls::version::TLS12, rustls::ProtocolVersion::TLSv1_2),
    ] {
        let one_version = client_config(&[certificate.der()], &[version]);
        let stream = connect_tls(server.address, &one_version).expect("the TLS handshake succeeds");
        assert_eq!(stream.conn.protocol_version(), Some(expected));
        assert_eq!(stream.conn.alpn_protocol(), Some(&b"http/1.1"[..]));
        assert_eq!(
            stream.conn.peer_certificates().unwrap()[0].as_ref(),
            certificate.der().as_ref()
        );
        drop(stream);

        let health = https_get(server.address, &one_version, "/healthz");
        assert_eq!(health.status, 200, "{}", health.head);
        assert_eq!(String::from_utf8_lossy(&health.body).trim(), "ok");
        assert!(
            health.closed_with_close_notify,
            "{expected:?}: the response ended without close_notify"
        );

        let page = https_get(server.address, &one_version, "/");
        assert_eq!(page.status, 200, "{}", page.head);
        let page_text = String::from_utf8_lossy(&page.body);
        assert!(page_text.contains("location.protocol === \"https:\" ? \"wss://\""));
    }
    assert!(metric(server.address, &config, "ws_open_sockets") >= 1.0);
    assert_eq!(
        metric(server.address, &config, "ws_tls_failures_total"),
        0.0
    );
}

#[test]
fn a_websocket_upgrade_over_tls_echoes_and_its_close_handshake_ends_with_close_notify() {
    let TlsServer { server, config, .. } =
        TlsServer::start(&["--mode", "echo", "--max-message-size", "4194304"]);
    let mut client = TlsClient::connect_wss(server.address, &config, "/echo");
    client.send_text("hello over tls");
    assert_eq!(
        client.recv_message(),
        Received::Text("hello over tls".into())
    );
    // Larger than rustls's 64 KiB outgoing cap and many 16 KiB records: all of it comes back.
    let large: String = (0..1_000_000)
        .map(|index| char::from(b'a' + (index % 26) as u8))
        .collect();
    client.send_text(&large);
    assert_eq!(client.recv_message(), Received::Text(large));
    client.send_close(CloseCode(1000), "done");
    assert!(
        matches!(client.recv_message(), Received::Close(Some(1000), _)),
        "the server did not answer the close frame with 1000"
    );
    assert!(
        client.ended_with_close_notify(),
        "the server closed the TCP connection without close_notify"
    );
}

#[test]
fn the_handshake_timeout_covers_the_tls_handshake() {
    let TlsServer { server, config, .. } = TlsServer::start(&["--handshake-timeout", "1s"]);
    // Silent from the start.
    let mut silent = TcpStream::connect(server.address).unwrap();
    // Half a ClientHello, then silence.
    let hello = client_hello(server.address, &config);
    let mut half_hello = TcpStream::connect(server.address).unwrap();
    half_hello.write_all(&hello[..hello.len() / 2]).unwrap();
    // The TLS handshake done, and not one byte of HTTP.
    let mut tls_only = connect_tls(server.address, &config).expect("the TLS handshake succeeds");
    for socket in [&mut silent, &mut half_hello] {
        socket.set_read_timeout(Some(WAIT)).unwrap();
        let answer = read_until_closed(socket);
        assert_only_alerts(&answer, "a silent or half TLS handshake");
    }
    let answer = read_until_closed(&mut tls_only);
    assert!(
        answer.is_empty(),
        "the server sent plaintext to a client that never asked: {:?}",
        String::from_utf8_lossy(&answer)
    );
    assert_eq!(metric(server.address, &config, "ws_timeouts_total"), 3.0);
}

/// Three TLS clients chatting in room `/chatters` beside the slow ones (see [`Chatters`]).
fn start_chatters(address: SocketAddr, config: &Arc<ClientConfig>) -> Chatters {
    Chatters::start(
        (0..3)
            .map(|_| TlsClient::connect_wss(address, config, "/chatters"))
            .collect(),
    )
}

#[test]
fn slowloris_over_tls_is_dropped_at_the_handshake_timeout_while_others_chat() {
    let TlsServer { server, config, .. } = TlsServer::start(&["--handshake-timeout", "1s"]);
    let chatters = start_chatters(server.address, &config);
    // TLS handshakes completed, then the HTTP head one byte at a time, one record per byte.
    let mut slow: Vec<_> = (0..50)
        .map(|_| connect_tls(server.address, &config).expect("the TLS handshake succeeds"))
        .collect();
    let head = b"GET /chatters HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n";
    for byte in head.iter().take(8) {
        for stream in &mut slow {
            let _ = stream.write_all(&[*byte]).and_then(|()| stream.flush());
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    for stream in &mut slow {
        let answer = read_until_closed(stream);
        assert!(
            answer.is_empty(),
            "a slow client got an answer: {:?}",
            String::from_utf8_lossy(&answer)
        );
    }
    assert_eq!(metric(server.address, &config, "ws_timeouts_total"), 50.0);
    chatters.finish(20);
}

#[test]
fn sighup_loads_a_new_certificate_for_new_connections_and_open_ones_keep_working() {
    let first = TestCertificate::make("first");
    let second = TestCertificate::make("second");
    let (first_der, second_der) = (first.der(), second.der());
    // The server reads these two paths; their content changes under it.
    let dir = TempDir::create();
    let (cert_path, key_path) = (dir.path.join("cert.pem"), dir.path.join("key.pem"));
    std::fs::copy(&first.cert, &cert_path).unwrap();
    std::fs::copy(&first.key, &key_path).unwrap();
    let server = Server::start_tls(&cert_path, &key_path, &[]);
    let config = client_config(
        &[first_der.clone(), second_der.clone()],
        &[&rustls::version::TLS13, &rustls::version::TLS12],
    );
    let mut before = TlsClient::connect_wss(server.address, &config, "/reload");
    assert_eq!(before.peer_certificate(), first_der.to_vec());

    std::fs::write(&cert_path, std::fs::read(&second.cert).unwrap()).unwrap();
    std::fs::write(&key_path, std::fs::read(&second.key).unwrap()).unwrap();
    server.signal("HUP");
    server.wait_for_log("TLS certificate and key reloaded");

    let mut after = TlsClient::connect_wss(server.address, &config, "/reload");
    assert_eq!(after.peer_certificate(), second_der.to_vec());
    assert_ne!(first_der.as_ref(), second_der.as_ref());
    // The connection from before the reload is in the same room as the new one, both ways.
    before.send_text("from before the reload");
    for client in [&mut before, &mut after] {
        assert_eq!(
            client.recv_message(),
            Received::Text("from before the reload".into())
        );
    }
    after.send_text("from after the reload");
    for client in [&mut before, &mut after] {
        assert_eq!(
            client.recv_message(),
            Received::Text("from after the reload".into())
        );
    }
    // And HTTPS on a new connection presents the new certificate too.
    let only_second = client_config(
        &[second_der],
        &[&rustls::version::TLS13, &rustls::version::TLS12],
    );
    let health = https_get(server.address, &only_second, "/healthz");
    assert_eq!(health.status, 200);
}

#[test]
fn a_reload_of_a_broken_file_keeps_the_old_certificate_and_says_which_file() {
    let TlsServer {
        server,
        config,
        certificate,
    } = TlsServer::start(&[]);
    let der = certificate.der();
    let mut open = TlsClient::connect_wss(server.address, &config, "/kept");
    std::fs::write(&certificate.cert, "not a certificate\n").unwrap();
    server.signal("HUP");
    let line = server.wait_for_log("TLS reload failed");
    assert!(
        line.contains(&certificate.cert.display().to_string()),
        "the warning does not name the file: {line}"
    );
    // New connections still get the old certificate (from memory), old ones keep working.
    let mut new = TlsClient::connect_wss(server.address, &config, "/kept");
    assert_eq!(new.peer_certificate(), der.to_vec());
    open.send_text("still here");
    assert_eq!(new.recv_message(), Received::Text("still here".into()));
    assert_eq!(open.recv_message(), Received::Text("still here".into()));
}

/// Starts the server with these TLS files and asserts it exits with 2 and a message that names
/// each of `named`.
fn assert_start_refused(cert: &std::path::Path, key: &std::path::Path, named: &[&std::path::Path]) {
    let (cert, key) = (cert.to_str().unwrap(), key.to_str().unwrap());
    let (code, stderr) = run_to_exit(
        "server",
        &[
            "--listen",
            "127.0.0.1:0",
            "--tls-cert",
            cert,
            "--tls-key",
            key,
        ],
    );
    assert_eq!(code, Some(2), "stderr: {stderr}");
    for path in named {
        assert!(
            stderr.contains(&path.display().to_string()),
            "the message does not name {}: {stderr}",
            path.display()
        );
    }
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(!stderr.contains("listening on"), "{stderr}");
}

#[test]
fn a_key_that_does_not_match_the_certificate_is_refused_at_start_with_exit_2() {
    let first = TestCertificate::make("first");
    let second = TestCertificate::make("second");
    assert_start_refused(&first.cert, &second.key, &[&first.cert, &second.key]);
}

#[test]
fn a_missing_certificate_or_key_file_is_refused_at_start_with_exit_2_naming_it() {
    let certificate = TestCertificate::make("server");
    let dir = &certificate.dir;
    let missing = dir.path.join("missing.pem");
    assert_start_refused(&missing, &certificate.key, &[&missing]);
    assert_start_refused(&certificate.cert, &missing, &[&missing]);
    // A directory where a file should be cannot be read either.
    assert_start_refused(&dir.path, &certificate.key, &[&dir.path]);
}

#[test]
fn a_file_without_a_pem_block_is_refused_at_start_with_exit_2_naming_it() {
    let certificate = TestCertificate::make("server");
    let not_pem = certificate.dir.path.join("not-pem.txt");
    std::fs::write(&not_pem, "this file holds no PEM block at all\n").unwrap();
    assert_start_refused(&not_pem, &certificate.key, &[&not_pem]);
    assert_start_refused(&certificate.cert, &not_pem, &[&not_pem]);
    // A key file that holds only a certificate has no key block.
    assert_start_refused(&certificate.cert, &certificate.cert, &[&certificate.cert]);
}

#[test]
fn tls_cert_without_tls_key_and_the_reverse_are_usage_errors() {
    let certificate = TestCertificate::make("server");
    for (given, missing) in [
        (
            ["--tls-cert", certificate.cert.to_str().unwrap()],
            "--tls-key",
        ),
        (
            ["--tls-key", certificate.key.to_str().unwrap()],
            "--tls-cert",
        ),
    ] {
        let (code, stderr) =
            run_to_exit("server", &["--listen", "127.0.0.1:0", given[0], given[1]]);
        assert_eq!(code, Some(2), "{given:?}: {stderr}");
        assert!(stderr.contains(missing), "{given:?}: {stderr}");
        assert!(stderr.contains("Usage"), "{given:?}: {stderr}");
    }
}
