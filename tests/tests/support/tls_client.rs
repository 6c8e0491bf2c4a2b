//! The client side of the TLS tests: test certificates made with `openssl` in a temporary
//! directory, a rustls (ring) client that trusts exactly those certificates, HTTPS requests,
//! and a blocking WebSocket client over TLS speaking through the `protocol` crate.
//!
//! Every socket read has a timeout, so a server that stops answering fails a test; it does not
//! hang it.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use integration_tests::{receive, Received, WAIT};
use protocol::close::{encode_payload, CloseCode};
use protocol::frame::{encode_frame, OpCode, Role};
use protocol::handshake::client::ClientHandshake;
use protocol::message::Decoder;
use protocol::Status;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{verify_tls12_signature, verify_tls13_signature, CryptoProvider};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{
    ClientConfig, ClientConnection, DigitallySignedStruct, SignatureScheme, StreamOwned,
    SupportedProtocolVersion,
};

/// A TLS stream over a blocking socket.
pub(crate) type TlsStream = StreamOwned<ClientConnection, TcpStream>;

/// A directory of its own under the system's temporary directory, removed on drop.
pub(crate) struct TempDir {
    /// Its path.
    pub path: PathBuf,
}

impl TempDir {
    /// Creates a fresh, empty directory.
    pub(crate) fn new() -> TempDir {
        static COUNTER: AtomicU32 = AtomicU32::new(0);
        let path = std::env::temp_dir().join(format!(
            "fanout-tls-test-{}-{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).unwrap();
        TempDir { path }
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

/// A self-signed certificate for 127.0.0.1 and localhost, and its key, as PEM files.
pub(crate) struct TestCertificate {
    /// The certificate (PEM).
    pub cert: PathBuf,
    /// The private key (PEM, PKCS#8).
    pub key: PathBuf,
}

impl TestCertificate {
    /// Makes a new P-256 key and a certificate valid for two days with the project's one
    /// `openssl` line, into `dir` as `NAME-cert.pem` and `NAME-key.pem`.
    pub(crate) fn make(dir: &Path, name: &str) -> TestCertificate {
        let cert = dir.join(format!("{name}-cert.pem"));
        let key = dir.join(format!("{name}-key.pem"));
        let output = Command::new("openssl")
            .args(["req", "-x509", "-newkey", "ec", "-pkeyopt"])
            .args(["ec_paramgen_curve:prime256v1", "-nodes", "-days", "2"])
            .args(["-subj", "/CN=localhost"])
            .args(["-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost"])
            .arg("-keyout")
            .arg(&key)
            .arg("-out")
            .arg(&cert)
            .output()
            .expect("openssl runs (apt-get install openssl)");
        assert!(
            output.status.success(),
            "openssl req failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        TestCertificate { cert, key }
    }

    /// The certificate's DER bytes, as a server presents them.
    pub(crate) fn der(&self) -> CertificateDer<'static> {
        CertificateDer::from_pem_file(&self.cert).expect("the test certificate is PEM")
    }
}

/// Accepts exactly the certificates it was given (compared byte for byte), and checks the
/// handshake's signature with the certificate's key. The test certificates are self-signed
/// with `CA:TRUE` (what `openssl req -x509` makes), which WebPKI refuses as an end entity, so
/// a browser-style chain check does not apply; pinning is the stricter check anyway.
#[derive(Debug)]
struct PinnedCertificates {
    trusted: Vec<CertificateDer<'static>>,
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for PinnedCertificates {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        if self
            .trusted
            .iter()
            .any(|trusted| trusted.as_ref() == end_entity.as_ref())
        {
            Ok(ServerCertVerified::assertion())
        } else {
            Err(rustls::Error::InvalidCertificate(
                rustls::CertificateError::UnknownIssuer,
            ))
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        signature: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(
            message,
            cert,
            signature,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        signature: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(
            message,
            cert,
            signature,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// A client configuration that trusts exactly `trusted`, speaks the given TLS versions and
/// offers ALPN `http/1.1`.
pub(crate) fn client_config(
    trusted: &[CertificateDer<'static>],
    versions: &[&'static SupportedProtocolVersion],
) -> Arc<ClientConfig> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let verifier = PinnedCertificates {
        trusted: trusted.to_vec(),
        provider: provider.clone(),
    };
    let mut config = ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(versions)
        .expect("the ring provider supports these versions")
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(verifier))
        .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Arc::new(config)
}

/// A client configuration for one certificate, TLS 1.2 and 1.3.
pub(crate) fn trusting(certificate: &TestCertificate) -> Arc<ClientConfig> {
    client_config(
        &[certificate.der()],
        &[&rustls::version::TLS13, &rustls::version::TLS12],
    )
}

/// Connects and completes the TLS handshake (and nothing more).
pub(crate) fn connect_tls(
    address: SocketAddr,
    config: &Arc<ClientConfig>,
) -> std::io::Result<TlsStream> {
    let mut socket = TcpStream::connect(address)?;
    socket.set_read_timeout(Some(WAIT))?;
    socket.set_write_timeout(Some(WAIT))?;
    socket.set_nodelay(true)?;
    let name = ServerName::IpAddress(address.ip().into());
    let mut connection = ClientConnection::new(config.clone(), name)
        .map_err(|error| std::io::Error::other(error.to_string()))?;
    while connection.is_handshaking() {
        connection.complete_io(&mut socket)?;
    }
    Ok(StreamOwned::new(connection, socket))
}

/// The bytes of a ClientHello for `address`, as a client's first flight on the wire.
pub(crate) fn client_hello(address: SocketAddr, config: &Arc<ClientConfig>) -> Vec<u8> {
    let name = ServerName::IpAddress(address.ip().into());
    let mut connection = ClientConnection::new(config.clone(), name).unwrap();
    let mut hello = Vec::new();
    while connection.wants_write() {
        connection.write_tls(&mut hello).unwrap();
    }
    hello
}

/// An HTTPS response, and how the connection ended.
#[derive(Debug)]
pub(crate) struct HttpsResponse {
    /// The status code.
    pub status: u16,
    /// The head, as text.
    pub head: String,
    /// The body.
    pub body: Vec<u8>,
    /// Whether the server ended with close_notify (and not a bare TCP close).
    pub closed_with_close_notify: bool,
}

/// Sends `request` over a new TLS connection and reads until the server closes.
pub(crate) fn https_request(
    address: SocketAddr,
    config: &Arc<ClientConfig>,
    request: &str,
) -> HttpsResponse {
    let mut stream = connect_tls(address, config).expect("the TLS handshake succeeds");
    stream.write_all(request.as_bytes()).unwrap();
    stream.flush().unwrap();
    let mut response = Vec::new();
    let mut chunk = [0u8; 16384];
    let closed_with_close_notify = loop {
        match stream.read(&mut chunk) {
            Ok(0) => break true,
            Ok(read) => response.extend_from_slice(&chunk[..read]),
            Err(error) if error.kind() == std::io::ErrorKind::UnexpectedEof => break false,
            Err(error) => panic!("reading the HTTPS response failed: {error}"),
        }
    };
    let head_end = response
        .windows(4)
        .position(|window| window == b"\r\n\r\n")
        .unwrap_or_else(|| panic!("no http head in {:?}", String::from_utf8_lossy(&response)));
    let head = String::from_utf8_lossy(&response[..head_end]).into_owned();
    let status = head.split(' ').nth(1).unwrap().parse().unwrap();
    HttpsResponse {
        status,
        head,
        body: response[head_end + 4..].to_vec(),
        closed_with_close_notify,
    }
}

/// One metric from `GET /metrics` over HTTPS (0 when absent).
pub(crate) fn metric(address: SocketAddr, config: &Arc<ClientConfig>, name: &str) -> f64 {
    let response = https_request(
        address,
        config,
        "GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n",
    );
    assert_eq!(response.status, 200, "{}", response.head);
    String::from_utf8(response.body)
        .unwrap()
        .lines()
        .filter(|line| !line.starts_with('#'))
        .filter_map(|line| line.rsplit_once(' '))
        .find(|(metric, _)| *metric == name)
        .map_or(0.0, |(_, value)| value.parse().unwrap())
}

/// A blocking WebSocket client over TLS.
pub(crate) struct TlsClient {
    /// The TLS stream.
    pub stream: TlsStream,
    decoder: Decoder,
    buffer: Vec<u8>,
    mask_counter: u32,
}

impl TlsClient {
    /// Connects over TLS and completes the WebSocket handshake for `path`.
    pub(crate) fn connect(
        address: SocketAddr,
        config: &Arc<ClientConfig>,
        path: &str,
    ) -> TlsClient {
        let mut stream = connect_tls(address, config).expect("the TLS handshake succeeds");
        let host = address.to_string();
        let handshake = ClientHandshake {
            host: &host,
            target: path,
            key: *b"0123456789abcdef",
            protocols: &[],
            extra_headers: &[],
        };
        let mut request = Vec::new();
        handshake.write_request(&mut request);
        stream.write_all(&request).unwrap();
        stream.flush().unwrap();
        let mut buffer = Vec::new();
        let mut chunk = [0u8; 4096];
        loop {
            let read = stream.read(&mut chunk).expect("the 101 response arrives");
            assert!(read > 0, "server closed during the WebSocket handshake");
            buffer.extend_from_slice(&chunk[..read]);
            match handshake.read_response(&buffer).expect("a 101 response") {
                Status::Partial => continue,
                Status::Complete(accepted) => {
                    buffer.drain(..accepted.head_len);
                    return TlsClient {
                        stream,
                        decoder: Decoder::new(Role::Client, 64 << 20),
                        buffer,
                        mask_counter: 1,
                    };
                }
            }
        }
    }

    /// The certificate the server presented, as DER.
    pub(crate) fn peer_certificate(&self) -> Vec<u8> {
        self.stream.conn.peer_certificates().expect("a certificate")[0].to_vec()
    }

    /// Sends one frame.
    pub(crate) fn send_frame(&mut self, fin: bool, opcode: OpCode, payload: &[u8]) {
        self.mask_counter = self
            .mask_counter
            .wrapping_mul(2_654_435_761)
            .wrapping_add(1);
        let mut wire = Vec::new();
        encode_frame(
            &mut wire,
            fin,
            opcode,
            payload,
            Some(self.mask_counter.to_le_bytes()),
        );
        self.stream.write_all(&wire).unwrap();
        self.stream.flush().unwrap();
    }

    /// Sends a text message.
    pub(crate) fn send_text(&mut self, text: &str) {
        self.send_frame(true, OpCode::Text, text.as_bytes());
    }

    /// Sends a close frame.
    pub(crate) fn send_close(&mut self, code: CloseCode, reason: &str) {
        let mut payload = Vec::new();
        encode_payload(&mut payload, code, reason);
        self.send_frame(true, OpCode::Close, &payload);
    }

    /// The next message, skipping pongs and answering pings; panics after [`WAIT`] of silence.
    pub(crate) fn recv_message(&mut self) -> Received {
        loop {
            match self.recv_timeout(WAIT).expect("a message within the wait") {
                Received::Ping(payload) => self.send_frame(true, OpCode::Pong, &payload),
                Received::Pong(_) => continue,
                other => return other,
            }
        }
    }

    /// The next thing received, or `None` after `timeout` of silence. [`Received::Eof`] when
    /// the connection ended; [`TlsClient::ended_with_close_notify`] says how.
    pub(crate) fn recv_timeout(&mut self, timeout: Duration) -> Option<Received> {
        self.stream.sock.set_read_timeout(Some(timeout)).unwrap();
        let received = self.recv_inner();
        self.stream.sock.set_read_timeout(Some(WAIT)).unwrap();
        received
    }

    fn recv_inner(&mut self) -> Option<Received> {
        receive(&mut self.decoder, &mut self.buffer, &mut self.stream)
    }

    /// After the close handshake: reads to the end and says whether the server ended its TLS
    /// stream with close_notify (`Ok(0)` from rustls) rather than a bare TCP close.
    pub(crate) fn ended_with_close_notify(&mut self) -> bool {
        let mut chunk = [0u8; 4096];
        loop {
            match self.stream.read(&mut chunk) {
                Ok(0) => return true,
                Ok(_) => continue,
                Err(error) if error.kind() == std::io::ErrorKind::UnexpectedEof => return false,
                Err(error) => panic!("the connection did not end cleanly: {error}"),
            }
        }
    }
}

/// Reads a socket until the server closes it; returns what came. Panics when the server keeps
/// it open past [`WAIT`]: a hang is what these tests look for.
pub(crate) fn read_until_closed(stream: &mut impl Read) -> Vec<u8> {
    let mut all = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        match stream.read(&mut chunk) {
            Ok(0) => return all,
            Ok(read) => all.extend_from_slice(&chunk[..read]),
            Err(error)
                if matches!(
                    error.kind(),
                    std::io::ErrorKind::ConnectionReset
                        | std::io::ErrorKind::UnexpectedEof
                        // rustls writes what is pending before it reads: the server is gone.
                        | std::io::ErrorKind::BrokenPipe
                ) =>
            {
                return all
            }
            Err(error) => panic!("the server did not close the connection: {error}"),
        }
    }
}
