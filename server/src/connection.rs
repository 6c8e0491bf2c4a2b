//! One socket's state: where it is in its life (HTTP head, open WebSocket, closing), the bytes
//! it keeps between reads, its write queue and its timers.
//!
//! The struct is kept small (104 bytes) because the server holds one per socket: at 10,000
//! idle connections every byte here is 10 KB. An idle open connection owns no heap buffer: `pending` is empty unless a handshake or a
//! frame header was cut by the end of a read, the decoder holds bytes only while a message is
//! cut, and the write queue frees its array once flushed.

use mio::net::TcpStream;
use protocol::message::Decoder;

use crate::room::Membership;
use crate::write_queue::WriteQueue;

/// Where a connection is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Reading the HTTP request head; dropped at the handshake deadline.
    Handshake,
    /// The WebSocket is open.
    Open,
    /// We sent a close frame and wait for the peer's; data it sends meanwhile is ignored.
    /// Dropped at the close deadline.
    Closing,
    /// The last bytes we will send are queued (an HTTP answer, a close reply, or the close that
    /// fails the connection). Once they are flushed the write side is shut down and whatever
    /// the peer still sends is read and thrown away until it closes or the deadline passes, so
    /// the kernel does not reset the connection over our last bytes.
    Draining {
        /// Whether `shutdown(Write)` was done.
        write_shut: bool,
    },
}

impl Phase {
    /// Whether this connection takes broadcasts.
    pub fn is_open(&self) -> bool {
        *self == Phase::Open
    }

    /// Whether the WebSocket handshake completed (open or closing, not yet draining).
    pub fn is_websocket(&self) -> bool {
        matches!(self, Phase::Open | Phase::Closing)
    }
}

/// Bytes kept between reads when a handshake or a frame header is cut by the end of a read.
/// A thin pointer (8 bytes) that owns no heap memory when there are none.
#[derive(Debug, Default)]
// The box is the point: a thin 8-byte pointer in every connection instead of a 24-byte `Vec`
// (or a 16-byte boxed slice); the rare cut read pays one more allocation.
#[allow(clippy::box_collection)]
pub struct Pending(Option<Box<Vec<u8>>>);

impl Pending {
    /// The bytes kept.
    pub fn as_slice(&self) -> &[u8] {
        self.0.as_deref().map_or(&[], Vec::as_slice)
    }

    /// Keeps these bytes instead of the ones kept before; none frees the buffer.
    pub fn set(&mut self, bytes: &[u8]) {
        if bytes.is_empty() {
            self.0 = None;
        } else {
            let buffer = self.0.get_or_insert_with(Box::default);
            buffer.clear();
            buffer.extend_from_slice(bytes);
        }
    }
}

/// A socket and everything the loop knows about it. It lives in the loop's slab; its key is
/// its `mio::Token`.
#[derive(Debug)]
pub struct Connection {
    /// The socket.
    pub socket: TcpStream,
    /// Where it is in its life.
    pub phase: Phase,
    /// The receive side of the WebSocket (used once the phase is open or closing). It holds no
    /// heap memory between messages.
    pub decoder: Decoder,
    /// Frames waiting to be written.
    pub write_queue: WriteQueue,
    /// Bytes of a cut handshake or frame header, kept until the next read.
    pub pending: Pending,
    /// Its room, once the handshake put it in one.
    pub membership: Option<Membership>,
    /// When we last heard from the peer, in loop ticks.
    pub last_heard: u32,
    /// When the current phase times out, in loop ticks (handshake, closing, draining).
    pub deadline: u32,
    /// Whether a heartbeat ping is out since we last heard from the peer.
    pub ping_outstanding: bool,
    /// Whether it is in the loop's list of queues to flush this turn.
    pub flush_scheduled: bool,
    /// Whether `WRITABLE` interest is registered (only while a flush left bytes behind).
    pub writable_registered: bool,
}

impl Connection {
    /// A connection just accepted.
    pub fn new(socket: TcpStream, decoder: Decoder, now: u32, handshake_deadline: u32) -> Self {
        Connection {
            socket,
            phase: Phase::Handshake,
            decoder,
            write_queue: WriteQueue::default(),
            pending: Pending::default(),
            membership: None,
            last_heard: now,
            deadline: handshake_deadline,
            ping_outstanding: false,
            flush_scheduled: false,
            writable_registered: false,
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_connection_fits_in_104_bytes() {
        // 10,000 idle connections at ~128 bytes each (with the slab's tag and the room's
        // member list) is the budget; this keeps the struct from growing unnoticed.
        // mio's TcpStream carries an extra 8-byte registry check in debug builds.
        let limit = if cfg!(debug_assertions) { 112 } else { 104 };
        let size = std::mem::size_of::<super::Connection>();
        assert!(size <= limit, "Connection is {size} bytes");
    }
}
