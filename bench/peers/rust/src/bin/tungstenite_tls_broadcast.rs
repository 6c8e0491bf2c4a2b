//! The TLS peer of `make bench`: `tungstenite_broadcast` (tokio-tungstenite with
//! `tokio::sync::broadcast`, a writer task per client that feeds every waiting message and
//! flushes once: `bench_peers::broadcast_room`) behind tokio-rustls, the way its users serve
//! wss://. rustls with the `ring` provider, TLS 1.2 and 1.3, ALPN `http/1.1`; rustls's default
//! buffering.
//!
//! Usage: tungstenite_tls_broadcast PORT CERT.pem KEY.pem

use std::process::exit;
use std::sync::Arc;

use bench_peers::broadcast_room;
use tokio::net::TcpListener;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::rustls::ServerConfig;
use tokio_rustls::TlsAcceptor;

fn usage(problem: &str) -> ! {
    eprintln!("tungstenite_tls_broadcast: {problem}");
    eprintln!("usage: tungstenite_tls_broadcast PORT CERT.pem KEY.pem");
    exit(2);
}

fn tls_config(cert_path: &str, key_path: &str) -> ServerConfig {
    let chain: Vec<CertificateDer<'static>> = match CertificateDer::pem_file_iter(cert_path) {
        Ok(certificates) => certificates
            .collect::<Result<_, _>>()
            .unwrap_or_else(|error| usage(&format!("{cert_path}: {error}"))),
        Err(error) => usage(&format!("{cert_path}: {error}")),
    };
    if chain.is_empty() {
        usage(&format!("{cert_path}: no certificate in it"));
    }
    let key = PrivateKeyDer::from_pem_file(key_path).unwrap_or_else(|error| usage(&format!("{key_path}: {error}")));
    let provider = Arc::new(tokio_rustls::rustls::crypto::ring::default_provider());
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap_or_else(|error| usage(&format!("TLS versions: {error}")))
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .unwrap_or_else(|error| usage(&format!("certificate and key: {error}")));
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    config
}

#[tokio::main]
async fn main() {
    let arguments: Vec<String> = std::env::args().skip(1).collect();
    let [port, cert_path, key_path] = arguments.as_slice() else { usage("three arguments are needed") };
    let port: u16 = port.parse().unwrap_or_else(|_| usage(&format!("{port} is not a port")));
    let acceptor = TlsAcceptor::from(Arc::new(tls_config(cert_path, key_path)));
    let listener = TcpListener::bind(("127.0.0.1", port)).await.unwrap_or_else(|error| usage(&format!("bind: {error}")));
    eprintln!(
        "listening on wss://{}/ (tokio-tungstenite, tokio-rustls with ring, tokio::sync::broadcast)",
        listener.local_addr().unwrap()
    );
    let room = broadcast_room::room();
    loop {
        let Ok((stream, _)) = listener.accept().await else { continue };
        let _ = stream.set_nodelay(true);
        let room = room.clone();
        let acceptor = acceptor.clone();
        tokio::spawn(async move {
            let Ok(tls) = acceptor.accept(stream).await else { return };
            broadcast_room::serve_client(tls, room).await;
        });
    }
}
