//! `wss://`: TLS with SNI and ALPN http/1.1, trust from `--ca-file` or `--insecure`, the TLS
//! handshake reported apart. The server is `fake_server` behind a TLS terminator, with a
//! certificate made in the test by a CA made in the test.

mod loadgen_support;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use integration_tests::{binary, Server};
use loadgen_support::{fake, number, stderr, temp_dir, Run};
use rcgen::{BasicConstraints, CertificateParams, IsCa, KeyPair};

/// A CA, and a certificate for localhost and 127.0.0.1 that it signed, as PEM files.
fn certificates(dir: &Path) {
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca_key = KeyPair::generate().unwrap();
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let leaf_key = KeyPair::generate().unwrap();
    let leaf = CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()])
        .unwrap()
        .signed_by(&leaf_key, &ca, &ca_key)
        .unwrap();
    std::fs::write(dir.join("ca.pem"), ca.pem()).unwrap();
    std::fs::write(dir.join("cert.pem"), leaf.pem()).unwrap();
    std::fs::write(dir.join("key.pem"), leaf_key.serialize_pem()).unwrap();
}

/// `fake_server` behind the TLS terminator; returns both (the backend must outlive the proxy).
fn tls_server(dir: &Path) -> (Server, Server) {
    let backend = fake(&[]);
    let proxy = Server::start_with(
        Command::new(binary("fake_tls_proxy")),
        &[
            "--cert",
            dir.join("cert.pem").to_str().unwrap(),
            "--key",
            dir.join("key.pem").to_str().unwrap(),
            "--backend",
            &backend.address.to_string(),
        ],
    );
    (backend, proxy)
}

#[test]
fn a_wss_run_trusting_a_ca_file_sends_sni_and_alpn_and_loses_nothing() {
    let dir = temp_dir();
    certificates(&dir);
    let (_backend, proxy) = tls_server(&dir);
    let url = format!("wss://localhost:{}/", proxy.address.port());
    let (output, json) = Run::fanout(&url)
        .arg("--ca-file", dir.join("ca.pem").to_str().unwrap())
        .clients(10)
        .senders(2)
        .rate(100)
        .duration("1s")
        .run();
    let _ = std::fs::remove_dir_all(&dir);
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(number(&json, &["connections", "ok"]), 10);
    assert_eq!(number(&json, &["deliveries", "expected"]), 100 * 10);
    assert_eq!(number(&json, &["deliveries", "lost"]), 0);
    assert_eq!(number(&json, &["tls_handshake_us", "count"]), 10);
    assert_eq!(number(&json, &["upgrade_us", "count"]), 10);
    // The handshake as a whole includes the TLS part.
    assert!(number(&json, &["handshake_us", "max"]) >= number(&json, &["tls_handshake_us", "min"]));
    let table = String::from_utf8_lossy(&output.stdout);
    assert!(table.contains("  of which TLS"), "{table}");
    // Every session carried the host name (SNI) and agreed on http/1.1 (ALPN).
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut sessions = Vec::new();
    while sessions.len() < 10 && Instant::now() < deadline {
        if let Ok(line) = proxy.log.recv_timeout(Duration::from_millis(200)) {
            if line.starts_with("tls session") {
                sessions.push(line);
            }
        }
    }
    assert_eq!(sessions.len(), 10, "{sessions:?}");
    assert!(
        sessions
            .iter()
            .all(|line| line == "tls session: sni localhost alpn http/1.1"),
        "{sessions:?}"
    );
}

#[test]
fn insecure_accepts_a_certificate_no_root_vouches_for() {
    let dir = temp_dir();
    certificates(&dir);
    let (_backend, proxy) = tls_server(&dir);
    let url = format!("wss://127.0.0.1:{}/", proxy.address.port());
    let (output, json) = Run::echo(&url)
        .flag("--insecure")
        .clients(5)
        .rate(50)
        .duration("1s")
        .run();
    let _ = std::fs::remove_dir_all(&dir);
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(number(&json, &["deliveries", "received"]), 50);
}

#[test]
fn an_untrusted_certificate_fails_every_connection_with_a_clear_reason() {
    let dir = temp_dir();
    certificates(&dir);
    let (_backend, proxy) = tls_server(&dir);
    let url = format!("wss://localhost:{}/", proxy.address.port());
    let (output, _) = Run::connect(&url).clients(3).arg("--hold", "100ms").run();
    let _ = std::fs::remove_dir_all(&dir);
    assert_eq!(output.status.code(), Some(1));
    let message = stderr(&output);
    assert!(
        message.contains("no client could connect")
            && message.contains("tls: invalid peer certificate"),
        "{message}"
    );
}
