//! `wss://` and `https://`: rustls as a transport in the shell. The core never knows: it gets
//! plaintext in and hands plaintext frames out; encryption is per receiver, framing is still
//! once per broadcast.
//!
//! **Memory.** rustls's *unbuffered* API runs the handshake: the connection owns no buffers,
//! the loop does. Every TLS socket is read into one loop-owned buffer and every record is
//! encrypted into another ([`TlsBuffers`]); a connection keeps bytes of its own only while they
//! wait: the tail of a record that has not fully arrived, or records the socket would not take
//! yet. Once a TLS 1.3 handshake is over, rustls hands the traffic keys over and its
//! connection is dropped: `records.rs` seals and opens the records from then on, keeping only
//! the keys (about 1.4 KB, against 3.3 KB for rustls's connection and 7.5 KB for its buffered
//! one). TLS 1.2 connections stay with rustls to the end.
//!
//! **Corking survives encryption.** The frames queued for a connection since its last write are
//! gathered (up to [`RECORD_BATCH`] bytes at a time) and encrypted in one call, which makes records
//! of up to 16 KiB (RFC 8446 section 5.1), and the records leave in one `write`. What the socket does
//! not take stays with the connection (at most one batch) and nothing more is encrypted until it
//! is gone: the rest stays in the core's queue, where the slow-consumer policy sees it.
//!
//! The crypto provider is *ring*: it builds with a C compiler alone (no cmake, no nasm, no Go),
//! which is what a fresh machine has, and it is rustls's long-standing default.

use std::io::{self, IoSlice, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::server::{ServerConfig, UnbufferedServerConnection};
use rustls::unbuffered::{ConnectionState, EncodeError, EncryptError, UnbufferedStatus};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

use records::RecordLayer;

mod records;

/// Plaintext encrypted per call, and so the most ciphertext a connection keeps waiting for its
/// socket: 64 KiB, four full records.
pub const RECORD_BATCH: usize = 64 * 1024;
/// Ciphertext read from a socket per call.
const READ_CHUNK: usize = 64 * 1024;
/// Room for a batch's record headers, tags and padding (each record adds at most 5 + 256).
const RECORD_OVERHEAD: usize = 4 * 1024;

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
        let connection = UnbufferedServerConnection::new(self.config.clone())
            .map_err(|error| io::Error::other(error.to_string()))?;
        Ok(Box::new(TlsSession::new(connection)))
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
    // A session cache would cost memory per client, and without one tickets resume nothing.
    config.session_storage = Arc::new(rustls::server::NoServerSessionStorage {});
    config.send_tls13_tickets = 0;
    // TLS 1.3 records after the handshake are ours (records.rs): rustls hands over the keys.
    config.enable_secret_extraction = true;
    Ok(Arc::new(config))
}

/// The buffers every TLS connection borrows in turn: owned by the loop, one set per process.
pub struct TlsBuffers {
    /// Ciphertext read from a socket, after the bytes the connection kept.
    incoming: Vec<u8>,
    /// Plaintext gathered from the core's queue for one encryption.
    plaintext: Vec<u8>,
    /// Records encrypted for one write.
    outgoing: Vec<u8>,
}

impl TlsBuffers {
    /// The loop's buffers: about 200 KiB when the port speaks TLS, whatever the number of
    /// connections; none when it does not.
    pub fn new(tls: bool) -> Self {
        if !tls {
            return TlsBuffers {
                incoming: Vec::new(),
                plaintext: Vec::new(),
                outgoing: Vec::new(),
            };
        }
        TlsBuffers {
            incoming: vec![0; READ_CHUNK],
            plaintext: Vec::with_capacity(RECORD_BATCH),
            outgoing: vec![0; RECORD_BATCH + RECORD_OVERHEAD],
        }
    }
}

/// One connection's TLS state, kept by the shell beside its socket.
pub struct TlsSession {
    state: State,
    /// Ciphertext received but not processed yet: the start of a record still arriving (empty,
    /// and without an allocation, most of the time).
    incoming: Vec<u8>,
    /// Records made but not yet taken by the socket; `outgoing[outgoing_sent..]` is what waits.
    outgoing: Vec<u8>,
    outgoing_sent: usize,
    /// A TLS error happened: only the alert that says so may still go out.
    failed: bool,
    /// The peer's close_notify arrived and has not been reported yet.
    peer_closed: bool,
    /// Whether the core asked to watch for writability (its queue is not empty).
    pub core_wants_writable: bool,
    /// Whether writability is watched for now.
    pub writable_registered: bool,
    /// The core asked to shut down writing while records were still waiting: do it once they
    /// are out.
    pub shutdown_pending: bool,
}

/// Who protects the records.
enum State {
    /// rustls: the handshake, and the whole of a TLS 1.2 connection.
    Rustls(Box<UnbufferedServerConnection>),
    /// TLS 1.3 once the handshake is over: [`RecordLayer`], holding only the keys.
    Records(Box<RecordLayer>),
    /// Never seen between calls: only while rustls hands over.
    HandingOver,
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

/// Where [`TlsSession::drive`] stopped.
enum Stop {
    /// The records received so far are used up (or the handshake needs more of them).
    NeedMore,
    /// Application data may be encrypted now: [`TlsSession::drive`] ran `encrypt`.
    Encrypted(usize),
}

impl TlsSession {
    fn new(connection: UnbufferedServerConnection) -> Self {
        TlsSession {
            state: State::Rustls(Box::new(connection)),
            incoming: Vec::new(),
            outgoing: Vec::new(),
            outgoing_sent: 0,
            failed: false,
            peer_closed: false,
            core_wants_writable: false,
            writable_registered: false,
            shutdown_pending: false,
        }
    }

    /// Reads ciphertext from the socket once and decrypts every whole record in it: the
    /// plaintext is appended to `plaintext`, handshake records are written back at once. A TLS
    /// error (a plain HTTP request on the TLS port, a bad record) sends the alert that says so
    /// and is returned: close the connection. The peer's close_notify is reported by
    /// [`TlsSession::take_peer_closed`].
    pub fn read_records(
        &mut self,
        socket: &mut (impl Read + Write),
        buffers: &mut TlsBuffers,
        plaintext: &mut Vec<u8>,
    ) -> io::Result<TlsRead> {
        if self.failed {
            return Err(io::ErrorKind::BrokenPipe.into());
        }
        let kept = self.incoming.len();
        if buffers.incoming.len() < kept + READ_CHUNK {
            buffers.incoming.resize(kept + READ_CHUNK, 0);
        }
        buffers.incoming[..kept].copy_from_slice(&self.incoming);
        let read = match socket.read(&mut buffers.incoming[kept..kept + READ_CHUNK]) {
            Ok(0) => return Ok(TlsRead::Eof),
            Ok(read) => read,
            Err(error) if error.kind() == io::ErrorKind::WouldBlock => {
                return Ok(TlsRead::WouldBlock)
            }
            Err(error) => return Err(error),
        };
        let received = &mut buffers.incoming[..kept + read];
        let outcome = self.process(received, plaintext, &mut buffers.outgoing);
        // Handshake messages, key updates and the alert of a failure go out now.
        let written = self.write_backlog(socket);
        let processed = outcome?;
        written?;
        let rest = &buffers.incoming[processed..kept + read];
        if rest.is_empty() {
            self.incoming = Vec::new();
        } else {
            self.incoming.clear();
            self.incoming.extend_from_slice(rest);
        }
        Ok(TlsRead::Progress(read))
    }

    /// Opens or processes the records in `received`; returns how many bytes are used up.
    fn process(
        &mut self,
        received: &mut [u8],
        plaintext: &mut Vec<u8>,
        scratch: &mut Vec<u8>,
    ) -> io::Result<usize> {
        let mut processed = 0;
        if let State::Rustls(connection) = &self.state {
            // While the handshake lasts, rustls gets one more record at a time, so that the
            // hand-over comes right after the client's Finished: a record behind it (a
            // KeyUpdate) must reach the record layer, not rustls, whose answer to it would be
            // lost in the hand-over.
            let handshaking = connection.is_handshaking();
            let mut end = 0;
            loop {
                end = if handshaking {
                    next_record_end(received, end)
                } else {
                    received.len()
                };
                let (used, _) =
                    self.drive(&mut received[processed..end], plaintext, None, scratch)?;
                processed += used;
                self.hand_over_if_done();
                if self.failed {
                    return Err(io::Error::other(
                        "rustls did not hand over the TLS 1.3 keys",
                    ));
                }
                if end == received.len() || matches!(self.state, State::Records(_)) {
                    break;
                }
            }
            if !matches!(self.state, State::Records(_)) || self.peer_closed {
                return Ok(processed);
            }
        }
        let State::Records(layer) = &mut self.state else {
            return Ok(processed);
        };
        match layer.open(&mut received[processed..], plaintext) {
            Ok(opened) => {
                self.peer_closed |= opened.peer_closed;
                Ok(processed + opened.consumed)
            }
            Err(error) => {
                self.failed = true;
                if let Some(description) = error.alert() {
                    let _ = layer.seal_alert(description, &mut self.outgoing);
                }
                Err(io::Error::new(io::ErrorKind::InvalidData, error))
            }
        }
    }

    /// Once a TLS 1.3 handshake is over, rustls's connection gives way to a [`RecordLayer`]
    /// with its keys (rustls's state and queues, about 2 KB, are freed). TLS 1.2 stays with
    /// rustls.
    fn hand_over_if_done(&mut self) {
        let State::Rustls(connection) = &self.state else {
            return;
        };
        if connection.is_handshaking()
            || connection.protocol_version() != Some(rustls::ProtocolVersion::TLSv1_3)
            || self.peer_closed
        {
            return;
        }
        let State::Rustls(connection) = std::mem::replace(&mut self.state, State::HandingOver)
        else {
            return;
        };
        match connection.dangerous_into_kernel_connection() {
            Ok((secrets, kernel)) => match RecordLayer::new(secrets, kernel) {
                Some(layer) => self.state = State::Records(Box::new(layer)),
                None => self.failed = true,
            },
            Err(_) => self.failed = true,
        }
    }

    /// Whether application data may flow both ways.
    #[cfg(test)]
    fn handshake_is_over(&self) -> bool {
        match &self.state {
            State::Rustls(connection) => !connection.is_handshaking(),
            State::Records(_) => true,
            State::HandingOver => false,
        }
    }

    /// Whether the peer's close_notify arrived since the last call: it sends nothing more.
    pub fn take_peer_closed(&mut self) -> bool {
        std::mem::take(&mut self.peer_closed)
    }

    /// Encrypts as much of `slices` as one batch holds, in as few records as fit, and writes
    /// the records out; again while the socket takes everything. Returns the plaintext bytes
    /// taken; `WouldBlock` when records from before still wait for the socket (the caller's
    /// queue keeps the rest).
    pub fn write_plaintext(
        &mut self,
        socket: &mut impl Write,
        slices: &[IoSlice<'_>],
        buffers: &mut TlsBuffers,
    ) -> io::Result<usize> {
        if self.failed {
            return Err(io::ErrorKind::BrokenPipe.into());
        }
        if !self.write_backlog(socket)? {
            return Err(io::ErrorKind::WouldBlock.into());
        }
        let mut taken = 0;
        loop {
            buffers.plaintext.clear();
            gather(slices, taken, RECORD_BATCH, &mut buffers.plaintext);
            if buffers.plaintext.is_empty() {
                break;
            }
            let Some(length) = self.encrypt(&buffers.plaintext, &mut buffers.outgoing)? else {
                // No application data before the handshake is over (the core writes only
                // after a request, which comes after it).
                break;
            };
            taken += buffers.plaintext.len();
            if !self.send(socket, &buffers.outgoing[..length])? {
                break;
            }
        }
        if taken == 0 {
            return Err(io::ErrorKind::WouldBlock.into());
        }
        Ok(taken)
    }

    /// Encrypts `plaintext` into records at the start of `records`; returns their length, or
    /// `None` while the handshake is not over.
    fn encrypt(&mut self, plaintext: &[u8], records: &mut Vec<u8>) -> io::Result<Option<usize>> {
        if let State::Records(layer) = &mut self.state {
            records.clear();
            layer
                .seal(plaintext, records)
                .map_err(|error| io::Error::other(error.to_string()))?;
            return Ok(Some(records.len()));
        }
        if records.len() < RECORD_BATCH + RECORD_OVERHEAD {
            records.resize(RECORD_BATCH + RECORD_OVERHEAD, 0);
        }
        let mut incoming = std::mem::take(&mut self.incoming);
        let outcome = self.drive(&mut incoming, &mut Vec::new(), Some(plaintext), records);
        if let Ok((processed, _)) = &outcome {
            incoming.drain(..*processed);
        }
        self.incoming = incoming;
        Ok(match outcome?.1 {
            Stop::Encrypted(length) => Some(length),
            Stop::NeedMore => None,
        })
    }

    /// Writes the records waiting for the socket until it is full. Returns whether all left.
    pub fn write_backlog(&mut self, socket: &mut impl Write) -> io::Result<bool> {
        self.outgoing_sent += write_until_full(socket, &self.outgoing[self.outgoing_sent..])?;
        if self.has_backlog() {
            return Ok(false);
        }
        // Nothing waits: give the memory back.
        self.outgoing = Vec::new();
        self.outgoing_sent = 0;
        Ok(true)
    }

    /// Whether records wait for the socket.
    pub fn has_backlog(&self) -> bool {
        self.outgoing_sent < self.outgoing.len()
    }

    /// Queues a close_notify alert (sent by the next [`TlsSession::write_backlog`]). Before the
    /// handshake is over there is no alert to send: the TCP shutdown says it.
    pub fn send_close_notify(&mut self, buffers: &mut TlsBuffers) {
        if self.failed {
            return;
        }
        match &mut self.state {
            State::Records(layer) => {
                let _ = layer.seal_close_notify(&mut self.outgoing);
            }
            State::Rustls(connection) if !connection.is_handshaking() => {
                let mut incoming = std::mem::take(&mut self.incoming);
                let UnbufferedStatus { discard, state } =
                    connection.process_tls_records(&mut incoming);
                if let Ok(ConnectionState::WriteTraffic(mut traffic)) = state {
                    if buffers.outgoing.len() < RECORD_OVERHEAD {
                        buffers.outgoing.resize(RECORD_OVERHEAD, 0);
                    }
                    if let Ok(length) = traffic.queue_close_notify(&mut buffers.outgoing) {
                        self.outgoing.extend_from_slice(&buffers.outgoing[..length]);
                    }
                }
                incoming.drain(..discard);
                self.incoming = incoming;
            }
            _ => {}
        }
    }

    /// Writes `records` to the socket, keeping what it does not take. Returns whether all left.
    fn send(&mut self, socket: &mut impl Write, records: &[u8]) -> io::Result<bool> {
        // Handshake records made meanwhile (a key update) go first.
        if !self.write_backlog(socket)? {
            self.outgoing.extend_from_slice(records);
            return Ok(false);
        }
        let sent = write_until_full(socket, records)?;
        if sent < records.len() {
            self.outgoing.extend_from_slice(&records[sent..]);
            return Ok(false);
        }
        Ok(true)
    }

    /// Runs rustls's state machine over `received` until it needs more bytes or may encrypt:
    /// decrypted application data is appended to `plaintext`, handshake records (and alerts)
    /// to the backlog; with `encrypt`, that plaintext is encrypted into `records` once
    /// application data may be sent. Returns how many bytes of `received` are used up (the rest
    /// is the start of a record still arriving) and where it stopped.
    fn drive(
        &mut self,
        received: &mut [u8],
        plaintext: &mut Vec<u8>,
        mut encrypt: Option<&[u8]>,
        records: &mut Vec<u8>,
    ) -> io::Result<(usize, Stop)> {
        let State::Rustls(connection) = &mut self.state else {
            return Ok((0, Stop::NeedMore));
        };
        let mut processed = 0;
        loop {
            let mut record_discard = 0;
            let UnbufferedStatus { discard, state } =
                connection.process_tls_records(&mut received[processed..]);
            let state = match state {
                Ok(state) => state,
                Err(error) => {
                    // The alert that says why is queued in rustls: take it out before closing.
                    self.failed = true;
                    take_alerts(connection, &mut self.outgoing);
                    return Err(io::Error::new(io::ErrorKind::InvalidData, error));
                }
            };
            let stop = match state {
                ConnectionState::ReadTraffic(mut traffic) => {
                    while let Some(record) = traffic.next_record() {
                        let record = record.map_err(|error| {
                            self.failed = true;
                            io::Error::new(io::ErrorKind::InvalidData, error)
                        })?;
                        plaintext.extend_from_slice(record.payload);
                        record_discard += record.discard;
                    }
                    None
                }
                ConnectionState::EncodeTlsData(mut handshake) => {
                    encode_into(&mut self.outgoing, |space| handshake.encode(space))?;
                    None
                }
                ConnectionState::TransmitTlsData(transmit) => {
                    // The records are in the backlog, which the caller writes before anything
                    // else: as good as sent.
                    transmit.done();
                    None
                }
                // close_notify: nothing after it is read (rustls ignores the rest).
                ConnectionState::PeerClosed | ConnectionState::Closed => {
                    self.peer_closed = true;
                    return Ok((received.len(), Stop::NeedMore));
                }
                ConnectionState::BlockedHandshake => Some(Stop::NeedMore),
                ConnectionState::WriteTraffic(mut traffic) => match encrypt.take() {
                    None => Some(Stop::NeedMore),
                    Some(data) => {
                        let length = loop {
                            match traffic.encrypt(data, records) {
                                Ok(length) => break length,
                                Err(EncryptError::InsufficientSize(size)) => {
                                    records.resize(size.required_size, 0)
                                }
                                Err(error) => return Err(io::Error::other(error.to_string())),
                            }
                        };
                        Some(Stop::Encrypted(length))
                    }
                },
                // Early data is off (max_early_data_size is 0): none can arrive; the state
                // enum is non-exhaustive.
                _ => Some(Stop::NeedMore),
            };
            processed += discard + record_discard;
            if let Some(stop) = stop {
                return Ok((processed, stop));
            }
        }
    }
}

/// Writes `bytes` until they are all out or the socket is full; returns how many left.
fn write_until_full(socket: &mut impl Write, bytes: &[u8]) -> io::Result<usize> {
    let mut written = 0;
    while written < bytes.len() {
        match socket.write(&bytes[written..]) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(more) => written += more,
            Err(error) if error.kind() == io::ErrorKind::WouldBlock => break,
            Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
            Err(error) => return Err(error),
        }
    }
    Ok(written)
}

/// Where the record starting at `start` ends (RFC 8446 section 5.1: a 5-byte header whose
/// last two bytes are the length), or the end of `received` when it has not fully arrived.
fn next_record_end(received: &[u8], start: usize) -> usize {
    match received.get(start..start + 5) {
        Some(header) => {
            let end = start + 5 + usize::from(u16::from_be_bytes([header[3], header[4]]));
            end.min(received.len())
        }
        None => received.len(),
    }
}

/// After a TLS error, moves the alert rustls queued into the backlog. No bytes are offered:
/// the ones that failed must not be read twice.
fn take_alerts(connection: &mut UnbufferedServerConnection, backlog: &mut Vec<u8>) {
    for _ in 0..4 {
        let UnbufferedStatus { state, .. } = connection.process_tls_records(&mut []);
        match state {
            Ok(ConnectionState::EncodeTlsData(mut alert)) => {
                if encode_into(backlog, |space| alert.encode(space)).is_err() {
                    return;
                }
            }
            Ok(ConnectionState::TransmitTlsData(transmit)) => transmit.done(),
            _ => return,
        }
    }
}

/// Appends what `encode` writes to `backlog`, growing it as rustls asks.
fn encode_into(
    backlog: &mut Vec<u8>,
    mut encode: impl FnMut(&mut [u8]) -> Result<usize, EncodeError>,
) -> io::Result<()> {
    let start = backlog.len();
    let mut room = 1024;
    loop {
        backlog.resize(start + room, 0);
        match encode(&mut backlog[start..]) {
            Ok(length) => {
                backlog.truncate(start + length);
                return Ok(());
            }
            Err(EncodeError::InsufficientSize(size)) => room = size.required_size,
            Err(error) => {
                backlog.truncate(start);
                return Err(io::Error::other(error.to_string()));
            }
        }
    }
}

/// Copies up to `limit` bytes of `slices`, after the first `skip`, to the end of `into`.
fn gather(slices: &[IoSlice<'_>], mut skip: usize, limit: usize, into: &mut Vec<u8>) {
    for slice in slices {
        if skip >= slice.len() {
            skip -= slice.len();
            continue;
        }
        let room = limit - into.len();
        let part = &slice[skip..];
        into.extend_from_slice(&part[..part.len().min(room)]);
        skip = 0;
        if into.len() == limit {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rustls::pki_types::ServerName;
    use rustls::{ClientConfig, ClientConnection, RootCertStore};

    /// A socket in memory: reads take what the test put in `inbound` (at most `read_limit`
    /// bytes at a time), writes take at most `write_room` bytes in all.
    struct FakeSocket {
        inbound: Vec<u8>,
        read_limit: usize,
        outbound: Vec<u8>,
        write_room: usize,
    }

    impl FakeSocket {
        fn new() -> Self {
            FakeSocket {
                inbound: Vec::new(),
                read_limit: usize::MAX,
                outbound: Vec::new(),
                write_room: usize::MAX,
            }
        }
    }

    impl Read for FakeSocket {
        fn read(&mut self, buffer: &mut [u8]) -> io::Result<usize> {
            if self.inbound.is_empty() {
                return Err(io::ErrorKind::WouldBlock.into());
            }
            let length = self.inbound.len().min(buffer.len()).min(self.read_limit);
            buffer[..length].copy_from_slice(&self.inbound[..length]);
            self.inbound.drain(..length);
            Ok(length)
        }
    }

    impl Write for FakeSocket {
        fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
            if self.write_room == 0 {
                return Err(io::ErrorKind::WouldBlock.into());
            }
            let length = bytes.len().min(self.write_room);
            self.write_room -= length;
            self.outbound.extend_from_slice(&bytes[..length]);
            Ok(length)
        }

        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    /// An acceptor with a new self-signed certificate for "localhost", and the certificate.
    fn acceptor() -> (TlsAcceptor, CertificateDer<'static>) {
        let certified = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
        let directory = std::env::temp_dir().join(format!(
            "fanout-tls-unit-{}-{:?}",
            std::process::id(),
            std::thread::current().id()
        ));
        std::fs::create_dir_all(&directory).unwrap();
        let (cert_path, key_path) = (directory.join("cert.pem"), directory.join("key.pem"));
        std::fs::write(&cert_path, certified.cert.pem()).unwrap();
        std::fs::write(&key_path, certified.key_pair.serialize_pem()).unwrap();
        let acceptor = TlsAcceptor::load(&cert_path, &key_path).unwrap();
        std::fs::remove_dir_all(&directory).unwrap();
        (acceptor, certified.cert.der().clone())
    }

    /// A server session and a rustls client that trusts it, over a [`FakeSocket`].
    struct Pair {
        session: Box<TlsSession>,
        client: ClientConnection,
        socket: FakeSocket,
        buffers: TlsBuffers,
        /// Plaintext the server decrypted so far.
        received: Vec<u8>,
    }

    impl Pair {
        fn new() -> Self {
            Self::with_versions(rustls::DEFAULT_VERSIONS)
        }

        /// A pair whose client has sent its Finished (not yet read by the server).
        fn until_clients_finished(versions: &[&'static rustls::SupportedProtocolVersion]) -> Self {
            let (acceptor, certificate) = acceptor();
            let mut roots = RootCertStore::empty();
            roots.add(certificate).unwrap();
            let provider = Arc::new(rustls::crypto::ring::default_provider());
            let config = ClientConfig::builder_with_provider(provider)
                .with_protocol_versions(versions)
                .unwrap()
                .with_root_certificates(roots)
                .with_no_client_auth();
            let client =
                ClientConnection::new(Arc::new(config), ServerName::try_from("localhost").unwrap())
                    .unwrap();
            let mut pair = Pair {
                session: acceptor.session().unwrap(),
                client,
                socket: FakeSocket::new(),
                buffers: TlsBuffers::new(true),
                received: Vec::new(),
            };
            while pair.client.is_handshaking() {
                pair.client_to_server().unwrap();
                pair.server_to_client();
            }
            pair
        }

        /// A pair whose handshake is over on both sides.
        fn with_versions(versions: &[&'static rustls::SupportedProtocolVersion]) -> Self {
            let mut pair = Self::until_clients_finished(versions);
            pair.client_to_server().unwrap();
            assert!(pair.session.handshake_is_over());
            pair
        }

        /// Moves what the client wrote into the server, read by read.
        fn client_to_server(&mut self) -> io::Result<()> {
            while self.client.wants_write() {
                self.client.write_tls(&mut self.socket.inbound).unwrap();
            }
            while !self.socket.inbound.is_empty() {
                self.session.read_records(
                    &mut self.socket,
                    &mut self.buffers,
                    &mut self.received,
                )?;
            }
            Ok(())
        }

        /// Moves what the server wrote into the client; returns the plaintext it decrypted.
        fn server_to_client(&mut self) -> Vec<u8> {
            let mut records = &std::mem::take(&mut self.socket.outbound)[..];
            let mut plaintext = Vec::new();
            while !records.is_empty() {
                self.client.read_tls(&mut records).unwrap();
                self.client.process_new_packets().unwrap();
                match self.client.reader().read_to_end(&mut plaintext) {
                    Ok(_) => {}
                    Err(error) if error.kind() == io::ErrorKind::WouldBlock => {}
                    Err(error) => panic!("{error}"),
                }
            }
            plaintext
        }

        fn holds_no_buffers(&self) -> bool {
            self.session.incoming.capacity() == 0 && self.session.outgoing.capacity() == 0
        }
    }

    #[test]
    fn an_idle_connection_holds_no_buffers_after_the_handshake_and_a_round_trip() {
        let mut pair = Pair::new();
        assert!(pair.holds_no_buffers());
        pair.client
            .writer()
            .write_all(b"GET / HTTP/1.1\r\n\r\n")
            .unwrap();
        pair.client_to_server().unwrap();
        assert_eq!(pair.received, b"GET / HTTP/1.1\r\n\r\n");
        let answer = [
            IoSlice::new(b"HTTP/1.1 101 "),
            IoSlice::new(b"Switching\r\n\r\n"),
        ];
        let taken = pair
            .session
            .write_plaintext(&mut pair.socket, &answer, &mut pair.buffers)
            .unwrap();
        assert_eq!(taken, 26);
        assert_eq!(pair.server_to_client(), b"HTTP/1.1 101 Switching\r\n\r\n");
        assert!(pair.holds_no_buffers());
    }

    #[test]
    fn records_arriving_a_byte_at_a_time_are_decrypted_whole_and_only_their_start_is_kept() {
        let mut pair = Pair::new();
        pair.socket.read_limit = 1;
        let message = vec![b'x'; 3000];
        pair.client.writer().write_all(&message).unwrap();
        while pair.client.wants_write() {
            pair.client.write_tls(&mut pair.socket.inbound).unwrap();
        }
        let mut most_kept = 0;
        while !pair.socket.inbound.is_empty() {
            pair.session
                .read_records(&mut pair.socket, &mut pair.buffers, &mut pair.received)
                .unwrap();
            most_kept = most_kept.max(pair.session.incoming.len());
        }
        assert_eq!(pair.received, message);
        // One record of 3,000 bytes plus its header and tag, less its last byte.
        assert!(most_kept > 3000 && most_kept < 3100, "kept {most_kept}");
        assert!(pair.holds_no_buffers());
    }

    #[test]
    fn a_full_socket_keeps_one_batch_of_records_and_the_rest_stays_with_the_caller() {
        let mut pair = Pair::new();
        let message: Vec<u8> = (0..300_000).map(|index| index as u8).collect();
        pair.socket.write_room = 10_000;
        let taken = pair
            .session
            .write_plaintext(
                &mut pair.socket,
                &[IoSlice::new(&message)],
                &mut pair.buffers,
            )
            .unwrap();
        // Records for one batch were made; the socket took 10,000 bytes of them.
        assert_eq!(taken, RECORD_BATCH);
        assert!(pair.session.has_backlog());
        let waiting = pair.session.outgoing.len() - pair.session.outgoing_sent;
        assert!(waiting > RECORD_BATCH - 10_000 && waiting < RECORD_BATCH + RECORD_OVERHEAD);
        // Nothing more is encrypted while records wait.
        let again = pair.session.write_plaintext(
            &mut pair.socket,
            &[IoSlice::new(&message[taken..])],
            &mut pair.buffers,
        );
        assert_eq!(again.unwrap_err().kind(), io::ErrorKind::WouldBlock);
        // The socket drains: the rest goes out in order and the backlog's memory is returned.
        pair.socket.write_room = usize::MAX;
        assert!(pair.session.write_backlog(&mut pair.socket).unwrap());
        let rest = pair
            .session
            .write_plaintext(
                &mut pair.socket,
                &[IoSlice::new(&message[taken..])],
                &mut pair.buffers,
            )
            .unwrap();
        assert_eq!(taken + rest, message.len());
        assert_eq!(pair.server_to_client(), message);
        assert!(pair.holds_no_buffers());
    }

    #[test]
    fn plain_text_on_the_tls_port_is_an_error_answered_with_an_alert() {
        let (acceptor, _) = acceptor();
        let mut session = acceptor.session().unwrap();
        let mut socket = FakeSocket::new();
        socket.inbound = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n".to_vec();
        let error = session
            .read_records(&mut socket, &mut TlsBuffers::new(true), &mut Vec::new())
            .unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::InvalidData);
        // An alert record (content type 21), then nothing more is written.
        assert_eq!(socket.outbound[0], 21, "{:?}", socket.outbound);
        let write = session.write_plaintext(
            &mut socket,
            &[IoSlice::new(b"late")],
            &mut TlsBuffers::new(true),
        );
        assert!(write.is_err());
    }

    /// The client's plaintext goes through the server and back.
    fn round_trip(pair: &mut Pair, message: &[u8]) {
        pair.received.clear();
        pair.client.writer().write_all(message).unwrap();
        pair.client_to_server().unwrap();
        assert_eq!(pair.received, message);
        let taken = pair
            .session
            .write_plaintext(
                &mut pair.socket,
                &[IoSlice::new(message)],
                &mut pair.buffers,
            )
            .unwrap();
        assert_eq!(taken, message.len());
        assert_eq!(pair.server_to_client(), message);
    }

    #[test]
    fn a_tls_1_3_connection_is_handed_to_the_record_layer_and_tls_1_2_stays_with_rustls() {
        let mut pair = Pair::new();
        assert!(matches!(pair.session.state, State::Records(_)));
        round_trip(&mut pair, b"over TLS 1.3");
        let mut pair = Pair::with_versions(&[&rustls::version::TLS12]);
        assert!(matches!(pair.session.state, State::Rustls(_)));
        round_trip(&mut pair, b"over TLS 1.2");
        assert!(pair.holds_no_buffers());
    }

    #[test]
    fn the_record_layer_follows_the_clients_key_updates_and_answers_a_requested_one() {
        let mut pair = Pair::new();
        for round in 0..3 {
            // rustls asks the peer to update too (update_requested).
            pair.client.refresh_traffic_keys().unwrap();
            round_trip(&mut pair, format!("after key update {round}").as_bytes());
        }
    }

    #[test]
    fn a_key_update_in_the_same_read_as_the_clients_finished_is_answered_after_the_hand_over() {
        let mut pair = Pair::until_clients_finished(rustls::DEFAULT_VERSIONS);
        pair.client.refresh_traffic_keys().unwrap();
        pair.client
            .writer()
            .write_all(b"right behind Finished")
            .unwrap();
        // Finished, the KeyUpdate and the data arrive in one read.
        pair.client_to_server().unwrap();
        assert_eq!(pair.received, b"right behind Finished");
        assert!(matches!(pair.session.state, State::Records(_)));
        round_trip(&mut pair, b"and the client still reads us");
    }

    #[test]
    fn many_key_update_requests_get_one_answer_before_the_next_data_and_a_flood_is_refused() {
        let mut pair = Pair::new();
        for _ in 0..10 {
            pair.client.refresh_traffic_keys().unwrap();
        }
        pair.client_to_server().unwrap();
        // Nothing is sent back for them by itself: the answer waits for our next data.
        assert!(pair.socket.outbound.is_empty());
        round_trip(&mut pair, b"after ten key updates");
        let State::Records(layer) = &pair.session.state else {
            panic!("not handed over");
        };
        // One KeyUpdate of ours, then one record of data under the new key.
        assert_eq!(layer.sealing_sequence(), 1);
        for _ in 0..40 {
            pair.client.refresh_traffic_keys().unwrap();
        }
        let error = pair.client_to_server().unwrap_err();
        assert!(
            error.to_string().contains("without application data"),
            "{error}"
        );
    }

    #[test]
    fn the_sending_key_is_renewed_at_its_limit_and_the_client_follows() {
        let mut pair = Pair::new();
        let State::Records(layer) = &mut pair.session.state else {
            panic!("not handed over");
        };
        layer.set_sealing_limit(3);
        // 60 KB is four records: a key update before the fourth, another in the next round.
        let message: Vec<u8> = (0..60_000).map(|index| (index % 251) as u8).collect();
        round_trip(&mut pair, &message);
        round_trip(&mut pair, &message);
        round_trip(&mut pair, b"and after");
        // Nine records were sealed; without the renewals the count would be 9.
        let State::Records(layer) = &pair.session.state else {
            panic!("not handed over");
        };
        assert!(layer.sealing_sequence() <= 3);
    }

    #[test]
    fn a_damaged_record_is_refused_with_bad_record_mac_and_nothing_more_is_read() {
        let mut pair = Pair::new();
        pair.client.writer().write_all(b"hello").unwrap();
        while pair.client.wants_write() {
            pair.client.write_tls(&mut pair.socket.inbound).unwrap();
        }
        let last = pair.socket.inbound.len() - 1;
        pair.socket.inbound[last] ^= 1;
        let error = pair
            .session
            .read_records(&mut pair.socket, &mut pair.buffers, &mut pair.received)
            .unwrap_err();
        assert!(error.to_string().contains("bad_record_mac"), "{error}");
        assert!(pair.received.is_empty());
        // The client reads the alert: bad_record_mac.
        let mut records = &std::mem::take(&mut pair.socket.outbound)[..];
        pair.client.read_tls(&mut records).unwrap();
        let alert = pair.client.process_new_packets().unwrap_err();
        assert!(format!("{alert:?}").contains("BadRecordMac"), "{alert:?}");
    }

    #[test]
    fn the_clients_close_notify_is_reported_once_and_the_server_may_still_answer() {
        let mut pair = Pair::new();
        pair.client.writer().write_all(b"last words").unwrap();
        pair.client.send_close_notify();
        pair.client_to_server().unwrap();
        assert_eq!(pair.received, b"last words");
        assert!(pair.session.take_peer_closed());
        assert!(!pair.session.take_peer_closed());
        let taken = pair
            .session
            .write_plaintext(&mut pair.socket, &[IoSlice::new(b"bye")], &mut pair.buffers)
            .unwrap();
        assert_eq!(taken, 3);
        pair.session.send_close_notify(&mut pair.buffers);
        assert!(pair.session.write_backlog(&mut pair.socket).unwrap());
        assert_eq!(pair.server_to_client(), b"bye");
    }

    #[test]
    fn garbage_after_the_handshake_is_refused_with_an_alert_and_never_panics() {
        let mut pair = Pair::new();
        // A small xorshift generator: the same inputs every run.
        let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut next = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        let State::Records(layer) = &mut pair.session.state else {
            panic!("not handed over");
        };
        for _ in 0..2_000 {
            let length = (next() % 600) as usize;
            let mut garbage: Vec<u8> = (0..length).map(|_| next() as u8).collect();
            // Half the time, a header that claims an application-data record.
            if length >= 5 && next() % 2 == 0 {
                garbage[0] = 23;
                garbage[3] = (next() % 3) as u8;
            }
            match layer.open(&mut garbage, &mut Vec::new()) {
                Ok(opened) => assert!(opened.consumed == 0 && !opened.peer_closed),
                Err(error) => assert!(
                    error.alert().is_some() || matches!(error, records::RecordError::PeerAlert(_))
                ),
            }
        }
    }

    #[test]
    fn gather_takes_the_slices_after_the_skipped_bytes_up_to_the_limit() {
        let slices = [
            IoSlice::new(b"abc"),
            IoSlice::new(b"defg"),
            IoSlice::new(b"hi"),
        ];
        let mut into = Vec::new();
        gather(&slices, 2, 5, &mut into);
        assert_eq!(into, b"cdefg");
        into.clear();
        gather(&slices, 7, 100, &mut into);
        assert_eq!(into, b"hi");
        into.clear();
        gather(&slices, 9, 100, &mut into);
        assert!(into.is_empty());
    }
}
