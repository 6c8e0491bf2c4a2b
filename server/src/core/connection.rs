//! One connection's state in the core: where it is in its life (HTTP head, open WebSocket,
//! closing, draining), the bytes it keeps between reads, its write queue, its timers and its
//! rate limit. No socket: the shell holds that, under the same key.
//!
//! The struct is kept to 104 bytes because the server holds one per socket: at 10,000 idle
//! connections every byte here is 10 KB. An idle open connection owns no heap buffer:
//! `pending` is empty unless a handshake or a frame header was cut by the end of a read, the
//! decoder holds bytes only while a message is cut, and the write queue frees its array once
//! flushed.

use protocol::message::Decoder;

use super::clock::Tick;
use super::rate_limit::TokenBucket;
use super::room::Seat;
use super::write_queue::WriteQueue;

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
    Draining,
}

impl Phase {
    /// Whether this connection takes broadcasts.
    pub fn is_open(self) -> bool {
        self == Phase::Open
    }

    /// Whether the WebSocket handshake completed (open or closing, not yet draining).
    pub fn is_websocket(self) -> bool {
        matches!(self, Phase::Open | Phase::Closing)
    }
}

/// Yes-or-no facts about a connection, packed in one byte.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Flags(u8);

impl Flags {
    /// A heartbeat ping is out since we last heard from the peer.
    pub const PING_OUTSTANDING: u8 = 1;
    /// It is in the list of queues to flush this turn.
    pub const FLUSH_SCHEDULED: u8 = 1 << 1;
    /// The shell was told to watch for writability (a flush left bytes behind).
    pub const WANTS_WRITABLE: u8 = 1 << 2;
    /// After its last flush its queue was still over `--max-queued-bytes` (since
    /// [`Connection::over_mark_since`]).
    pub const OVER_MARK: u8 = 1 << 3;
    /// The peer shut down its sending side (end of stream): answer what was asked, then close.
    pub const PEER_DONE: u8 = 1 << 4;
    /// Our write side is shut down (draining, everything sent).
    pub const WRITE_SHUT: u8 = 1 << 5;
    /// It came in on the metrics listener: only `/metrics` and `/healthz` are served.
    pub const METRICS_PORT: u8 = 1 << 6;
    /// It came from a trusted proxy: its `X-Forwarded-For` names the client.
    pub const FROM_TRUSTED_PROXY: u8 = 1 << 7;

    /// Whether `flag` is set.
    pub fn has(self, flag: u8) -> bool {
        self.0 & flag != 0
    }

    /// Sets or clears `flag`.
    pub fn set(&mut self, flag: u8, on: bool) {
        if on {
            self.0 |= flag;
        } else {
            self.0 &= !flag;
        }
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

    /// How many bytes are kept.
    pub fn len(&self) -> usize {
        self.as_slice().len()
    }

    /// Whether no bytes are kept.
    pub fn is_empty(&self) -> bool {
        self.0.is_none()
    }

    /// Keeps these bytes instead of the ones kept before; none frees the buffer. The buffer is
    /// exactly as large as what it keeps, so a head that is still short holds little.
    pub fn set(&mut self, bytes: &[u8]) {
        if bytes.is_empty() {
            self.0 = None;
        } else {
            let buffer = self.0.get_or_insert_with(Box::default);
            buffer.clear();
            buffer.shrink_to(bytes.len());
            buffer.extend_from_slice(bytes);
        }
    }
}

/// Everything the core knows about one socket. It lives in the core's slab; its key is the
/// shell's token for the socket.
#[derive(Debug)]
pub struct Connection {
    /// The receive side of the WebSocket (used once the phase is open or closing). It holds no
    /// heap memory between messages.
    pub decoder: Decoder,
    /// Frames waiting to be written.
    pub write_queue: WriteQueue,
    /// Bytes of a cut handshake or frame header, kept until the next read.
    pub pending: Pending,
    /// An id unique for the life of the process, for logs (slab keys are reused).
    pub id: u64,
    /// Its room, once the handshake put it in one.
    pub seat: Seat,
    /// When we last heard from the peer.
    pub last_heard: Tick,
    /// When the current phase times out (handshake, closing, draining), or, while open, when
    /// a message cut into fragments must be complete.
    pub deadline: Tick,
    /// Its inbound message rate limit.
    pub bucket: TokenBucket,
    /// Since when its queue has stayed over `--max-queued-bytes` after flushing (the low 16
    /// bits of the tick; meaningful while [`Flags::OVER_MARK`] is set, and checked every sweep,
    /// long before it can wrap).
    pub over_mark_since: u16,
    /// Where it is in its life.
    pub phase: Phase,
    /// Yes-or-no facts, see [`Flags`].
    pub flags: Flags,
    /// The window (bits, 8 to 15) of permessage-deflate when it was agreed, 0 when not: which
    /// of a broadcast's shared frames this connection gets.
    pub deflate_window_bits: u8,
}

impl Connection {
    /// A connection just accepted.
    pub fn new(
        id: u64,
        decoder: Decoder,
        bucket: TokenBucket,
        now: Tick,
        handshake_deadline: Tick,
    ) -> Self {
        Connection {
            decoder,
            write_queue: WriteQueue::default(),
            pending: Pending::default(),
            id,
            seat: Seat::NONE,
            last_heard: now,
            deadline: handshake_deadline,
            bucket,
            over_mark_since: 0,
            phase: Phase::Handshake,
            flags: Flags::default(),
            deflate_window_bits: 0,
        }
    }

    /// Bytes this connection holds for messages and heads in progress: what counts against the
    /// server-wide assembly budget.
    pub fn assembly_bytes(&self) -> usize {
        self.decoder.buffered_len() + self.pending.len()
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_connection_fits_in_104_bytes() {
        // 10,000 idle connections at ~128 bytes each (with the slab's tag, the shell's socket
        // and the room's member list) is the budget; this keeps the struct from growing
        // unnoticed.
        let size = size_of::<super::Connection>();
        assert!(size <= 104, "Connection is {size} bytes");
    }

    #[test]
    fn pending_bytes_are_kept_in_a_buffer_of_their_own_size() {
        let mut pending = super::Pending::default();
        pending.set(&[1; 8000]);
        pending.set(&[2; 10]);
        assert_eq!(pending.as_slice(), &[2; 10]);
        assert!(pending.0.as_ref().unwrap().capacity() < 100);
        pending.set(&[]);
        assert!(pending.is_empty());
    }
}
