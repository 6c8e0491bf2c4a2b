//! The TLS peer of `make bench`: `tungstenite_broadcast` (tokio-tungstenite with
//! `tokio::sync::broadcast`, a writer task per client that feeds every waiting message and
//! flushes once) behind tokio-rustls, the way its users serve wss://. rustls with the `ring`
//! provider, TLS 1.2 and 1.3, ALPN `http/1.1`; rustls's default buffering.
//!
//! A receiver that falls more than `CAPACITY` messages behind loses the oldest ones
//! (`RecvError::Lagged`): that is this design's slow-consumer policy.
//!
//! Usage: tungstenite_tls_broadcast PORT CERT.pem KEY.pem

use std::process::exit;
use std::sync::Arc;

use futures_util::{SinkExt, StreamExt};
use tokio::net::TcpListener;
use tokio::sync::broadcast;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::rustls::ServerConfig;
use tokio_rustls::TlsAcceptor;
use tokio_tungstenite::tungstenite::Message;

const CAPACITY: usize = 65536;

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
    let (room, _) = broadcast::channel::<Message>(CAPACITY);
    loop {
        let Ok((stream, _)) = listener.accept().await else { continue };
        let _ = stream.set_nodelay(true);
        let room = room.clone();
        let acceptor = acceptor.clone();
        tokio::spawn(async move {
            let Ok(tls) = acceptor.accept(stream).await else { return };
            let Ok(socket) = tokio_tungstenite::accept_async(tls).await else { return };
            let (mut sink, mut source) = socket.split();
            let mut inbox = room.subscribe();
            let writer = tokio::spawn(async move {
                loop {
                    let first = match inbox.recv().await {
                        Ok(message) => message,
                        Err(broadcast::error::RecvError::Lagged(_)) => continue,
                        Err(broadcast::error::RecvError::Closed) => break,
                    };
                    if sink.feed(first).await.is_err() {
                        break;
                    }
                    loop {
                        match inbox.try_recv() {
                            Ok(message) => {
                                if sink.feed(message).await.is_err() {
                                    return;
                                }
                            }
                            Err(broadcast::error::TryRecvError::Lagged(_)) => continue,
                            Err(_) => break,
                        }
                    }
                    if sink.flush().await.is_err() {
                        break;
                    }
                }
            });
            while let Some(Ok(message)) = source.next().await {
                if message.is_text() || message.is_binary() {
                    let _ = room.send(message);
                } else if message.is_close() {
                    break;
                }
            }
            writer.abort();
        });
    }
}
