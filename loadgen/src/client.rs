//! One client connection: connect, handshake, send probes, decode deliveries.
//!
//! Deliveries are parsed straight from the worker's read buffer: a probe is read in place and
//! recorded; nothing is allocated per message.

use std::io::{self, Write};
use std::net::SocketAddr;

use mio::net::TcpStream;
use protocol::close::{encode_payload, CloseCode};
use protocol::frame::{encode_frame, encode_header, OpCode, Role, MAX_HEADER_LEN};
use protocol::handshake::client::ClientHandshake;
use protocol::mask::apply_mask;
use protocol::message::Decoder;
use socket2::{Domain, Protocol, Socket, Type};

use crate::probe::Probe;

/// Where a client is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// Not started yet (waiting for its turn in the connect ramp).
    Waiting,
    /// TCP connect under way since this time.
    Connecting { since_ns: u64 },
    /// Upgrade request sent at this time (connect began at `since_ns`).
    Handshaking { since_ns: u64 },
    /// The WebSocket is open.
    Open,
    /// Gone: failed, closed by the server, or closed by us at the end.
    Closed,
}

/// One connection and what it has seen.
#[derive(Debug)]
pub struct Client {
    /// Global client number.
    pub id: u32,
    /// The room it is in.
    pub room: u32,
    /// Its sender index, if it sends.
    pub sender: Option<u32>,
    /// Where it is in its life.
    pub state: State,
    /// The socket, while there is one.
    pub socket: Option<TcpStream>,
    /// Receive side of the protocol.
    pub decoder: Decoder,
    /// Bytes of a cut response head or frame, kept until the next read.
    pub pending: Vec<u8>,
    /// Bytes to send that the socket has not taken yet.
    pub outgoing: Vec<u8>,
    /// Whether `WRITABLE` interest is registered for `outgoing`.
    pub writable_registered: bool,
    /// This sender's next message number `k`.
    pub next_k: u64,
    /// Per sender: 1 + the highest sequence number received (0: none yet).
    pub highest: Vec<u32>,
    /// Whether it was open when sending started (its deliveries are expected).
    pub open_at_start: bool,
    /// State of the mask generator.
    rng: u64,
    /// The nonce behind its `Sec-WebSocket-Key`.
    pub key: [u8; 16],
}

impl Client {
    /// A client not yet started.
    pub fn new(id: u32, room: u32, sender: Option<u32>, seed: u64) -> Self {
        let mut client = Client {
            id,
            room,
            sender,
            state: State::Waiting,
            socket: None,
            decoder: Decoder::new(Role::Client, 64 << 20),
            pending: Vec::new(),
            outgoing: Vec::new(),
            writable_registered: false,
            next_k: 0,
            highest: Vec::new(),
            open_at_start: false,
            rng: seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1,
            key: [0; 16],
        };
        let first = client.next_random().to_le_bytes();
        let second = client.next_random().to_le_bytes();
        client.key[..8].copy_from_slice(&first);
        client.key[8..].copy_from_slice(&second);
        client
    }

    /// xorshift64*: masking keys need not be secret from a load generator's own server under
    /// test, but they must vary (RFC 6455 §5.3); this is fast and allocation-free.
    fn next_random(&mut self) -> u64 {
        self.rng ^= self.rng >> 12;
        self.rng ^= self.rng << 25;
        self.rng ^= self.rng >> 27;
        self.rng.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn next_mask(&mut self) -> [u8; 4] {
        (self.next_random() as u32).to_le_bytes()
    }

    /// Queues the upgrade request.
    pub fn queue_handshake(&mut self, handshake: &ClientHandshake<'_>) {
        handshake.write_request(&mut self.outgoing);
    }

    /// Queues a probe message of `payload_len` bytes, framed and masked in place.
    pub fn queue_probe(&mut self, probe: &Probe, payload_len: usize, binary: bool) {
        let mask = self.next_mask();
        let opcode = if binary { OpCode::Binary } else { OpCode::Text };
        let mut header = [0u8; MAX_HEADER_LEN];
        let header_len = encode_header(&mut header, true, opcode, payload_len as u64, Some(mask));
        self.outgoing.extend_from_slice(&header[..header_len]);
        let start = self.outgoing.len();
        self.outgoing.resize(start + payload_len, 0);
        probe.write(&mut self.outgoing[start..]);
        apply_mask(&mut self.outgoing[start..], mask, 0);
    }

    /// Queues a probe as one newline-terminated line of `payload_len` bytes (raw TCP mode).
    pub fn queue_line(&mut self, probe: &Probe, payload_len: usize) {
        let start = self.outgoing.len();
        self.outgoing.resize(start + payload_len, 0);
        probe.write(&mut self.outgoing[start..start + payload_len - 1]);
        self.outgoing[start + payload_len - 1] = b'\n';
    }

    /// Queues a whole frame.
    pub fn queue_frame(&mut self, opcode: OpCode, payload: &[u8]) {
        let mask = self.next_mask();
        encode_frame(&mut self.outgoing, true, opcode, payload, Some(mask));
    }

    /// Queues a close frame.
    pub fn queue_close(&mut self, code: CloseCode) {
        let mut payload = Vec::with_capacity(2);
        encode_payload(&mut payload, code, "");
        self.queue_frame(OpCode::Close, &payload);
    }

    /// Writes what is queued. Returns whether everything went out.
    pub fn flush(&mut self) -> io::Result<bool> {
        let Some(socket) = self.socket.as_mut() else {
            self.outgoing.clear();
            return Ok(true);
        };
        let mut written = 0;
        while written < self.outgoing.len() {
            match socket.write(&self.outgoing[written..]) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(count) => written += count,
                Err(error) if error.kind() == io::ErrorKind::Interrupted => continue,
                Err(error) if error.kind() == io::ErrorKind::WouldBlock => break,
                Err(error) => return Err(error),
            }
        }
        self.outgoing.drain(..written);
        if self.outgoing.is_empty() && self.outgoing.capacity() > 64 * 1024 {
            self.outgoing = Vec::new();
        }
        Ok(self.outgoing.is_empty())
    }
}

/// Starts a non-blocking connect to `address`, from `source` if given.
pub fn start_connect(
    address: SocketAddr,
    source: Option<std::net::IpAddr>,
) -> io::Result<TcpStream> {
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
