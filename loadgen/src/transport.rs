//! The shell's transports: opening TCP connections, TLS over them for `wss://`, the kernel's
//! receive timestamps, and naming socket errors the way the report does.
//!
//! **Arrival time.** With `--arrival kernel` (the default) every socket has `SO_TIMESTAMPNS`
//! on, and each read is a `recvmsg` that also returns when the kernel received the last of
//! the bytes it hands over. A message's arrival is that time for the read that completed it:
//! when the bytes reached the client's machine, not when this one thread got round to that
//! socket among a thousand (real clients each have their own). It is never earlier than the
//! message's last byte arrived: a read's timestamp is that of its newest segment, and TLS
//! plaintext is dated by the socket read that brought its record or a later one.

use std::io::{self, IoSliceMut, Read, Write};
use std::net::{IpAddr, SocketAddr};
use std::os::fd::AsRawFd;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use mio::net::TcpStream;
use nix::sys::socket::{recvmsg, setsockopt, sockopt, ControlMessageOwned, MsgFlags};
use nix::sys::time::TimeSpec;
use rustls::pki_types::ServerName;
use rustls::{ClientConfig, ClientConnection};
use socket2::{Domain, Protocol, Socket, Type};

/// A kernel timestamp further back than this is taken for a step of the wall clock, and the
/// read's own time is used instead (later, so never a smaller latency).
const MAX_TIMESTAMP_AGE_NS: u64 = 10_000_000_000;

/// Starts a non-blocking connect to `address`, from `source` if given; `timestamps` asks the
/// kernel for receive timestamps ([`Stream::arrival_ns`]).
pub(crate) fn start_connect(
    address: SocketAddr,
    source: Option<IpAddr>,
    timestamps: bool,
) -> io::Result<TcpStream> {
    let socket = Socket::new(
        Domain::for_address(address),
        Type::STREAM,
        Some(Protocol::TCP),
    )?;
    socket.set_nonblocking(true)?;
    socket.set_nodelay(true)?;
    if timestamps {
        setsockopt(&socket, sockopt::ReceiveTimestampns, &true)
            .map_err(|error| io::Error::other(format!("SO_TIMESTAMPNS: {error}")))?;
    }
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
    /// Receive timestamps: where `recvmsg` puts its control message (no capacity: plain
    /// reads).
    control: Vec<u8>,
    /// The kernel's receive time of the newest bytes read, wall clock, ns since the epoch
    /// (0: none yet).
    received_ns: u64,
}

impl Stream {
    /// A plain stream over a socket (TLS, if any, starts with [`Stream::start_tls`]);
    /// `timestamps`: the socket was opened with them, and reads collect them.
    pub(crate) fn new(socket: TcpStream, timestamps: bool) -> Self {
        Stream {
            socket,
            tls: None,
            control: if timestamps {
                nix::cmsg_space!(TimeSpec)
            } else {
                Vec::new()
            },
            received_ns: 0,
        }
    }

    /// When the bytes of the last read arrived, on the loadgen's clock (`now_ns` reads that
    /// clock): the kernel's receive timestamp when the read had one, the clock's time
    /// otherwise. The wall clock is read first and the loadgen's clock after it, so the time
    /// between the two readings can only make the arrival later, never earlier.
    pub(crate) fn arrival_ns(&self, now_ns: impl FnOnce() -> u64) -> u64 {
        if self.received_ns == 0 {
            return now_ns();
        }
        let wall_ns = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |since| since.as_nanos() as u64);
        let now_ns = now_ns();
        match wall_ns.checked_sub(self.received_ns) {
            Some(age) if age <= MAX_TIMESTAMP_AGE_NS => now_ns.saturating_sub(age),
            _ => now_ns,
        }
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
        let mut socket = TimestampedSocket {
            socket: &self.socket,
            control: &mut self.control,
            received_ns: &mut self.received_ns,
        };
        let Some(tls) = self.tls.as_mut() else {
            return socket.read(buffer);
        };
        loop {
            match tls.reader().read(buffer) {
                Ok(read) => return Ok(read),
                Err(error) if error.kind() == io::ErrorKind::UnexpectedEof => return Ok(0),
                Err(error) if error.kind() == io::ErrorKind::WouldBlock => {}
                Err(error) => return Err(error),
            }
            match tls.read_tls(&mut socket) {
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

/// A socket read with `recvmsg` when receive timestamps are on, keeping the newest.
struct TimestampedSocket<'a> {
    socket: &'a TcpStream,
    control: &'a mut Vec<u8>,
    received_ns: &'a mut u64,
}

impl Read for TimestampedSocket<'_> {
    fn read(&mut self, buffer: &mut [u8]) -> io::Result<usize> {
        if self.control.capacity() == 0 {
            let mut socket: &TcpStream = self.socket;
            return socket.read(buffer);
        }
        let mut slices = [IoSliceMut::new(buffer)];
        let message = recvmsg::<()>(
            self.socket.as_raw_fd(),
            &mut slices,
            Some(&mut *self.control),
            MsgFlags::empty(),
        )
        .map_err(io::Error::from)?;
        if message.bytes > 0 {
            // A read without a timestamp (or with its control message cut short) is dated by
            // the read itself, never by an earlier read's timestamp.
            *self.received_ns = 0;
            if let Ok(messages) = message.cmsgs() {
                for control in messages {
                    if let ControlMessageOwned::ScmTimestampns(time) = control {
                        *self.received_ns = (time.tv_sec() as u64)
                            .saturating_mul(1_000_000_000)
                            .saturating_add(time.tv_nsec() as u64);
                    }
                }
            }
        }
        Ok(message.bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;
    use std::time::{Duration, Instant};

    /// A connected pair on loopback: our stream (opened as the worker opens it) and the
    /// server's end.
    fn pair(timestamps: bool) -> (Stream, std::net::TcpStream) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let socket = start_connect(listener.local_addr().unwrap(), None, timestamps).unwrap();
        let (server, _) = listener.accept().unwrap();
        (Stream::new(socket, timestamps), server)
    }

    /// Reads until something comes (the socket is non-blocking).
    fn read_some(stream: &mut Stream, buffer: &mut [u8]) -> usize {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            match stream.read(buffer) {
                Ok(read) => return read,
                Err(error) if error.kind() == io::ErrorKind::WouldBlock => {
                    assert!(Instant::now() < deadline, "nothing arrived");
                    std::thread::sleep(Duration::from_millis(1));
                }
                Err(error) => panic!("read: {error}"),
            }
        }
    }

    #[test]
    fn bytes_that_waited_in_the_kernel_are_dated_when_they_arrived_not_when_read() {
        let (mut stream, mut server) = pair(true);
        let clock = Instant::now();
        server.write_all(b"hello").unwrap();
        let mut buffer = [0u8; 64];
        assert_eq!(read_some(&mut stream, &mut buffer), 5);
        // Then bytes that sit in the socket for 50 ms before the read.
        server.write_all(b"again").unwrap();
        std::thread::sleep(Duration::from_millis(50));
        assert_eq!(read_some(&mut stream, &mut buffer), 5);
        let now_ns = clock.elapsed().as_nanos() as u64;
        let waited = now_ns - stream.arrival_ns(|| now_ns);
        assert!(
            waited >= 50_000_000,
            "the read came 50 ms after the bytes, but they are dated {waited} ns before it"
        );
    }

    #[test]
    fn without_timestamps_the_arrival_is_the_read() {
        let (mut stream, mut server) = pair(false);
        server.write_all(b"hello").unwrap();
        std::thread::sleep(Duration::from_millis(20));
        let mut buffer = [0u8; 64];
        assert_eq!(read_some(&mut stream, &mut buffer), 5);
        assert_eq!(stream.arrival_ns(|| 123_456_789), 123_456_789);
    }

    #[test]
    fn a_read_that_brings_no_timestamp_is_dated_by_the_read_not_by_an_earlier_one() {
        let (mut stream, mut server) = pair(true);
        server.write_all(b"first").unwrap();
        let mut buffer = [0u8; 64];
        assert_eq!(read_some(&mut stream, &mut buffer), 5);
        assert_ne!(
            stream.arrival_ns(|| u64::MAX / 2),
            u64::MAX / 2,
            "timestamped"
        );
        // The kernel stops timestamping: the next read's bytes have none.
        setsockopt(&stream.socket, sockopt::ReceiveTimestampns, &false).unwrap();
        server.write_all(b"second").unwrap();
        std::thread::sleep(Duration::from_millis(20));
        assert_eq!(read_some(&mut stream, &mut buffer), 6);
        assert_eq!(stream.arrival_ns(|| 123_456_789), 123_456_789);
    }
}
