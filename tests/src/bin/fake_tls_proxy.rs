//! A TLS terminator for tests of `wss://`: accepts TLS with the given certificate and relays
//! the plaintext both ways to a backend (`fake_server` or `server`). It logs, per connection,
//! the server name the client sent (SNI) and the ALPN protocol agreed, so a test can check
//! them. Threads and blocking sockets with short timeouts: simple enough to be obviously right.
//!
//! ```text
//! fake_tls_proxy --listen 127.0.0.1:0 --cert CERT.pem --key KEY.pem --backend HOST:PORT
//! ```

use std::io::{self, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::{ServerConfig, ServerConnection, StreamOwned};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let option = |name: &str| {
        args.iter()
            .position(|arg| arg == name)
            .and_then(|index| args.get(index + 1))
            .cloned()
            .unwrap_or_else(|| {
                eprintln!("fake_tls_proxy: {name} is required");
                std::process::exit(2)
            })
    };
    let listen = option("--listen");
    let backend = option("--backend");
    let certificates: Vec<CertificateDer<'static>> =
        CertificateDer::pem_file_iter(option("--cert"))
            .expect("the certificate file opens")
            .collect::<Result<_, _>>()
            .expect("certificates in PEM");
    let key = PrivateKeyDer::from_pem_file(option("--key")).expect("a private key in PEM");
    let mut config =
        ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .expect("default versions")
            .with_no_client_auth()
            .with_single_cert(certificates, key)
            .expect("a usable certificate and key");
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    let config = Arc::new(config);
    let listener = TcpListener::bind(&listen).expect("bind");
    eprintln!(
        "listening on ws://{}/ (TLS only: connect with wss://)",
        listener.local_addr().unwrap()
    );
    for stream in listener.incoming().map_while(Result::ok) {
        let config = config.clone();
        let backend = backend.clone();
        std::thread::spawn(move || {
            if let Err(error) = relay(stream, config, &backend) {
                eprintln!("connection ended: {error}");
            }
        });
    }
}

fn relay(client: TcpStream, config: Arc<ServerConfig>, backend: &str) -> io::Result<()> {
    let pause = Some(Duration::from_millis(2));
    client.set_nodelay(true)?;
    client.set_read_timeout(pause)?;
    let connection = ServerConnection::new(config).map_err(io::Error::other)?;
    let mut tls = StreamOwned::new(connection, client);
    while tls.conn.is_handshaking() {
        match tls.conn.complete_io(&mut tls.sock) {
            Ok(_) => {}
            Err(error) if would_block(&error) => {}
            Err(error) => return Err(error),
        }
    }
    eprintln!(
        "tls session: sni {} alpn {}",
        tls.conn.server_name().unwrap_or("-"),
        tls.conn
            .alpn_protocol()
            .map_or("-".to_owned(), |alpn| String::from_utf8_lossy(alpn)
                .into_owned())
    );
    let mut server = TcpStream::connect(backend)?;
    server.set_nodelay(true)?;
    server.set_read_timeout(pause)?;
    let mut buffer = vec![0u8; 64 * 1024];
    loop {
        match tls.read(&mut buffer) {
            Ok(0) => break,
            Ok(read) => server.write_all(&buffer[..read])?,
            Err(error) if would_block(&error) => {}
            Err(error) => return Err(error),
        }
        match server.read(&mut buffer) {
            Ok(0) => break,
            Ok(read) => {
                tls.write_all(&buffer[..read])?;
                tls.flush()?;
            }
            Err(error) if would_block(&error) => {}
            Err(error) => return Err(error),
        }
    }
    tls.conn.send_close_notify();
    let _ = tls.conn.complete_io(&mut tls.sock);
    let _ = server.shutdown(Shutdown::Both);
    Ok(())
}

fn would_block(error: &io::Error) -> bool {
    matches!(
        error.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
    )
}
