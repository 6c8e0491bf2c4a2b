//! The client side of the TLS tests: test certificates made with `openssl` in a temporary
//! directory, a rustls (ring) client that trusts exactly those certificates, HTTPS requests,
//! and the blocking WebSocket [`Client`] over TLS.
//!
//! Every socket read has a timeout, so a server that stops answering fails a test; it does not
//! hang it.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;

use crate::{Client, ClientStream, HttpResponse, WAIT};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{verify_tls12_signature, verify_tls13_signature, CryptoProvider};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{
    ClientConfig, ClientConnection, DigitallySignedStruct, SignatureScheme, StreamOwned,
    SupportedProtocolVersion,
};

/// A TLS stream over a blocking socket.
pub type TlsStream = StreamOwned<ClientConnection, TcpStream>;

/// A directory of its own under the system's temporary directory, removed on drop.
pub struct TempDir {
    /// Its path.
    pub path: PathBuf,
}

impl TempDir {
    /// Creates a fresh, empty directory.
    pub fn create() -> TempDir {
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

/// A self-signed certificate for 127.0.0.1 and localhost, and its key, as PEM files in a
/// directory of their own, removed with them.
pub struct TestCertificate {
    /// The directory: a test may put other files beside the two.
    pub dir: TempDir,
    /// The certificate (PEM).
    pub cert: PathBuf,
    /// The private key (PEM, PKCS#8).
    pub key: PathBuf,
}

impl TestCertificate {
    /// Makes a new P-256 key and a certificate valid for two days with the project's one
    /// `openssl` line, as `NAME-cert.pem` and `NAME-key.pem` in a new directory.
    pub fn make(name: &str) -> TestCertificate {
        let dir = TempDir::create();
        let cert = dir.path.join(format!("{name}-cert.pem"));
        let key = dir.path.join(format!("{name}-key.pem"));
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
        TestCertificate { dir, cert, key }
    }

    /// The certificate's DER bytes, as a server presents them.
    pub fn der(&self) -> CertificateDer<'static> {
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
pub fn client_config(
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
pub fn trusting(certificate: &TestCertificate) -> Arc<ClientConfig> {
    client_config(
        &[certificate.der()],
        &[&rustls::version::TLS13, &rustls::version::TLS12],
    )
}

/// Connects and completes the TLS handshake (and nothing more).
pub fn connect_tls(address: SocketAddr, config: &Arc<ClientConfig>) -> std::io::Result<TlsStream> {
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
pub fn client_hello(address: SocketAddr, config: &Arc<ClientConfig>) -> Vec<u8> {
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
pub struct HttpsResponse {
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
pub fn https_request(
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
    let HttpResponse { status, head, body } = HttpResponse::parse(&response);
    HttpsResponse {
        status,
        head,
        body,
        closed_with_close_notify,
    }
}

/// `GET path` over a new TLS connection.
pub fn https_get(address: SocketAddr, config: &Arc<ClientConfig>, path: &str) -> HttpsResponse {
    https_request(
        address,
        config,
        &format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"),
    )
}

/// One metric from `GET /metrics` over HTTPS (0 when absent).
pub fn metric(address: SocketAddr, config: &Arc<ClientConfig>, name: &str) -> f64 {
    let response = https_get(address, config, "/metrics");
    assert_eq!(response.status, 200, "{}", response.head);
    String::from_utf8(response.body)
        .unwrap()
        .lines()
        .filter(|line| !line.starts_with('#'))
        .filter_map(|line| line.rsplit_once(' '))
        .find(|(metric, _)| *metric == name)
        .map_or(0.0, |(_, value)| value.parse().unwrap())
}

impl ClientStream for TlsStream {
    fn socket(&self) -> &TcpStream {
        &self.sock
    }
}

/// A blocking WebSocket client over TLS.
pub type TlsClient = Client<TlsStream>;

impl Client<TlsStream> {
    /// Connects over TLS and completes the WebSocket handshake for `path`.
    pub fn connect_wss(address: SocketAddr, config: &Arc<ClientConfig>, path: &str) -> TlsClient {
        let stream = connect_tls(address, config).expect("the TLS handshake succeeds");
        Client::handshake(stream, address, path, &[]).expect("a 101 response")
    }

    /// The certificate the server presented, as DER.
    pub fn peer_certificate(&self) -> Vec<u8> {
        self.stream.conn.peer_certificates().expect("a certificate")[0].to_vec()
    }

    /// After the close handshake: reads to the end and says whether the server ended its TLS
    /// stream with close_notify (`Ok(0)` from rustls) rather than a bare TCP close.
    pub fn ended_with_close_notify(&mut self) -> bool {
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
