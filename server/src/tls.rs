//! `wss://` and `https://`: rustls as a transport in the shell. The core never knows: it gets
//! plaintext in and hands plaintext frames out; encryption is per receiver, framing is still
//! once per broadcast.
//!
//! Corking survives encryption: the frames queued for a connection in one turn reach rustls in
//! one vectored write, which it packs into as few records as fit (up to 16 KiB each), and the
//! records leave in one `writev`. rustls's own outgoing buffer is capped (64 KiB): past it a
//! write takes nothing and the rest stays in the core's queue, where the slow-consumer policy
//! sees it.
//!
//! The crypto provider is *ring*: it builds with a C compiler alone (no cmake, no nasm, no Go),
//! which is what a fresh machine has, and it is rustls's long-standing default.

use std::io::{self, IoSlice, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::server::ServerConfig;
use rustls::ServerConnection;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

/// The certificate and key files, and the rustls configuration made from them.
pub struct TlsAcceptor {
    cert_path: PathBuf,
    key_path: PathBuf,
    config: Arc<ServerConfig>,
}

impl TlsAcceptor {
    /// Loads the certificate chain and private key (PEM). The error says which file and why.
    pub fn load(cert_path: &Path, key_path: &Path) -> Result<Self, String> {
        Ok(TlsAcceptor {
            cert_path: cert_path.to_owned(),
            key_path: key_path.to_owned(),
            config: server_config(cert_path, key_path)?,
        })
    }

    /// Reads the files again (SIGHUP): new connections use the new certificate, open ones keep
    /// theirs. On error the old configuration stays.
    pub fn reload(&mut self) -> Result<(), String> {
        self.config = server_config(&self.cert_path, &self.key_path)?;
        Ok(())
    }

    /// A TLS session for a socket just accepted.
    pub fn session(&self) -> io::Result<Box<TlsSession>> {
        let connection = ServerConnection::new(self.config.clone())
            .map_err(|error| io::Error::other(error.to_string()))?;
        Ok(Box::new(TlsSession {
            connection,
            core_wants_writable: false,
            writable_registered: false,
            shutdown_pending: false,
        }))
    }
}

fn server_config(cert_path: &Path, key_path: &Path) -> Result<Arc<ServerConfig>, String> {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert_path)
        .map_err(|error| format!("--tls-cert {}: {error}", cert_path.display()))?
        .collect::<Result<_, _>>()
        .map_err(|error| format!("--tls-cert {}: {error}", cert_path.display()))?;
    if certs.is_empty() {
        return Err(format!(
            "--tls-cert {}: no CERTIFICATE block in the file",
            cert_path.display()
        ));
    }
    let key = PrivateKeyDer::from_pem_file(key_path)
        .map_err(|error| format!("--tls-key {}: {error}", key_path.display()))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|error| format!("TLS versions: {error}"))?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|error| {
            format!(
                "--tls-cert {} with --tls-key {}: {error}",
                cert_path.display(),
                key_path.display()
            )
        })?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    // Tickets cost nothing per connection; a session cache would cost memory per client.
    config.session_storage = Arc::new(rustls::server::NoServerSessionStorage {});
    Ok(Arc::new(config))
}

/// One connection's TLS state, kept by the shell beside its socket.
pub struct TlsSession {
    connection: ServerConnection,
    /// Whether the core asked to watch for writability (its queue is not empty).
    pub core_wants_writable: bool,
    /// Whether writability is watched for now.
    pub writable_registered: bool,
    /// The core asked to shut down writing while records were still waiting: do it once they
    /// are out.
    pub shutdown_pending: bool,
}

/// What reading a TLS socket gave.
#[derive(Debug, PartialEq, Eq)]
pub enum TlsRead {
    /// Ciphertext was taken in (and possibly plaintext made available).
    Progress(usize),
    /// The socket has no more bytes now.
    WouldBlock,
    /// The peer closed the TCP connection.
    Eof,
}

impl TlsSession {
    /// Reads ciphertext from the socket and decrypts it. A TLS error (a plain HTTP request on
    /// the TLS port, a bad record) queues an alert, which [`TlsSession::write_records`] sends,
    /// and is returned: close the connection after sending it.
    pub fn read_records(&mut self, socket: &mut impl Read) -> io::Result<TlsRead> {
        let outcome = match self.connection.read_tls(socket) {
            Ok(0) => TlsRead::Eof,
            Ok(read) => TlsRead::Progress(read),
            Err(error) if error.kind() == io::ErrorKind::WouldBlock => TlsRead::WouldBlock,
            Err(error) => return Err(error),
        };
        self.connection
            .process_new_packets()
            .map_err(|error| io::Error::new(io::ErrorKind::InvalidData, error))?;
        Ok(outcome)
    }

    /// Moves decrypted bytes into `buffer`: `Ok(0)` when the peer sent close_notify,
    /// `WouldBlock` when there are none now.
    pub fn read_plaintext(&mut self, buffer: &mut [u8]) -> io::Result<usize> {
        self.connection.reader().read(buffer)
    }

    /// Encrypts as much of `slices` as rustls's capped buffer takes, in as few records as fit,
    /// and writes the records out. Returns the plaintext bytes taken; `WouldBlock` when records
    /// from before still wait for the socket (the caller's queue keeps the rest).
    pub fn write_plaintext(
        &mut self,
        socket: &mut impl Write,
        slices: &[IoSlice<'_>],
    ) -> io::Result<usize> {
        if !self.write_records(socket)? {
            return Err(io::ErrorKind::WouldBlock.into());
        }
        let offered: usize = slices.iter().map(|slice| slice.len()).sum();
        let mut taken = self.connection.writer().write_vectored(slices)?;
        // rustls's cap cut the batch while the socket still takes bytes: keep going, because
        // an edge-triggered poll would never say "writable" again for a socket that is not full.
        while self.write_records(socket)? && taken < offered {
            let rest = remaining(slices, taken);
            let more = self.connection.writer().write_vectored(&rest)?;
            if more == 0 {
                break;
            }
            taken += more;
        }
        if taken == 0 {
            return Err(io::ErrorKind::WouldBlock.into());
        }
        Ok(taken)
    }

    /// Writes the records waiting in rustls until the socket is full. Returns whether all left.
    pub fn write_records(&mut self, socket: &mut impl Write) -> io::Result<bool> {
        while self.connection.wants_write() {
            match self.connection.write_tls(socket) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(_) => {}
                Err(error) if error.kind() == io::ErrorKind::WouldBlock => return Ok(false),
                Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
                Err(error) => return Err(error),
            }
        }
        Ok(true)
    }

    /// Whether records wait for the socket.
    pub fn has_backlog(&self) -> bool {
        self.connection.wants_write()
    }

    /// Queues a close_notify alert (sent by the next [`TlsSession::write_records`]).
    pub fn send_close_notify(&mut self) {
        self.connection.send_close_notify();
    }

    /// Whether the TLS handshake is still going on.
    pub fn is_handshaking(&self) -> bool {
        self.connection.is_handshaking()
    }
}

/// The slices after the first `skip` bytes.
fn remaining<'a>(slices: &'a [IoSlice<'a>], mut skip: usize) -> Vec<IoSlice<'a>> {
    let mut rest = Vec::with_capacity(slices.len());
    for slice in slices {
        if skip >= slice.len() {
            skip -= slice.len();
        } else {
            rest.push(IoSlice::new(&slice[skip..]));
            skip = 0;
        }
    }
    rest
}
