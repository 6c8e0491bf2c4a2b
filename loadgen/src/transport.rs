//! The shell's transports: opening TCP connections, TLS over them for `wss://`, and naming
//! socket errors the way the report does.

use std::io::{self, Read, Write};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use mio::net::TcpStream;
use rustls::pki_types::ServerName;
use rustls::{ClientConfig, ClientConnection};
use socket2::{Domain, Protocol, Socket, Type};

/// Starts a non-blocking connect to `address`, from `source` if given.
pub(crate) fn start_connect(address: SocketAddr, source: Option<IpAddr>) -> io::Result<TcpStream> {
    let socket = Socket::new(
        Domain::for_address(address),
        Type::STREAM,
        Some(Protocol::TCP),
    )?;
    socket.set_nonblocking(true)?;
    socket.set_nodelay(true)?;
    if let Some(ip) = source {
        socket.bind(&SocketAddr::new(ip, 0).into())?;
    }
    match socket.connect(&address.into()) {
        Ok(()) => {}
        Err(error)
            if error.raw_os_error() == Some(115) // EINPROGRESS
                || error.kind() == io::ErrorKind::WouldBlock => {}
        Err(error) => return Err(error),
    }
    Ok(TcpStream::from_std(std::net::TcpStream::from(socket)))
}

/// A socket error in the report's words.
pub(crate) fn describe(error: &io::Error) -> String {
    match error.kind() {
        io::ErrorKind::ConnectionRefused => "connection refused".to_owned(),
        io::ErrorKind::ConnectionReset => "connection reset".to_owned(),
        io::ErrorKind::TimedOut => "timed out".to_owned(),
        io::ErrorKind::AddrNotAvailable => "no local port or address available".to_owned(),
        _ => error.to_string(),
    }
}

/// TLS records a connection may hold unsent before it stops taking plaintext: the same
/// back-pressure a socket's send buffer gives a plain connection.
const TLS_BUFFER_LIMIT: usize = 256 * 1024;

/// A connection's byte stream: plain TCP, or TLS over it. Reads and writes are of plaintext;
/// TLS records go to and from the socket underneath as they must.
#[derive(Debug)]
pub(crate) struct Stream {
    /// The socket.
    pub socket: TcpStream,
    /// The TLS session, once TCP is connected on a `wss://` target.
    pub tls: Option<Box<ClientConnection>>,
}

impl Stream {
    /// A plain stream over a socket (TLS, if any, starts with [`Stream::start_tls`]).
    pub(crate) fn new(socket: TcpStream) -> Self {
        Stream { socket, tls: None }
    }

    /// Starts the TLS handshake: the ClientHello is queued; [`Stream::flush_tls`] sends it.
    pub(crate) fn start_tls(
        &mut self,
        config: Arc<ClientConfig>,
        server_name: ServerName<'static>,
    ) -> io::Result<()> {
        let mut tls = ClientConnection::new(config, server_name)
            .map_err(|error| io::Error::other(format!("tls: {error}")))?;
        tls.set_buffer_limit(Some(TLS_BUFFER_LIMIT));
        self.tls = Some(Box::new(tls));
        Ok(())
    }

    /// Whether a TLS handshake is under way.
    pub(crate) fn is_tls_handshaking(&self) -> bool {
        self.tls.as_ref().is_some_and(|tls| tls.is_handshaking())
    }

    /// Reads plaintext into `buffer`. `Ok(0)`: the peer closed; `WouldBlock`: nothing now.
    /// With TLS, records are read from the socket and decrypted as needed.
    pub(crate) fn read(&mut self, buffer: &mut [u8]) -> io::Result<usize> {
        let Some(tls) = self.tls.as_mut() else {
            return self.socket.read(buffer);
        };
        loop {
            match tls.reader().read(buffer) {
                Ok(read) => return Ok(read),
                Err(error) if error.kind() == io::ErrorKind::UnexpectedEof => return Ok(0),
                Err(error) if error.kind() == io::ErrorKind::WouldBlock => {}
                Err(error) => return Err(error),
            }
            match tls.read_tls(&mut self.socket) {
                Ok(0) => return Ok(0),
                Ok(_) => {
                    tls.process_new_packets()
                        .map_err(|error| io::Error::other(format!("tls: {error}")))?;
                }
                Err(error) => return Err(error),
            }
        }
    }

    /// Writes plaintext; returns how much was taken (0 when the socket or the TLS buffer is
    /// full).
    pub(crate) fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        let Some(tls) = self.tls.as_mut() else {
            return match self.socket.write(data) {
                Ok(0) if !data.is_empty() => Err(io::ErrorKind::WriteZero.into()),
                Err(error) if error.kind() == io::ErrorKind::WouldBlock => Ok(0),
                other => other,
            };
        };
        let taken = tls.writer().write(data)?;
        self.flush_tls()?;
        Ok(taken)
    }

    /// Sends the TLS records waiting; returns whether none are left.
    pub(crate) fn flush_tls(&mut self) -> io::Result<bool> {
        let Some(tls) = self.tls.as_mut() else {
            return Ok(true);
        };
        while tls.wants_write() {
            match tls.write_tls(&mut self.socket) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(_) => {}
                Err(error) if error.kind() == io::ErrorKind::WouldBlock => return Ok(false),
                Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
                Err(error) => return Err(error),
            }
        }
        Ok(true)
    }
}
