//! What the decoder fuzz targets share: how an input's first byte picks the role and the read
//! size, and the read loop of a socket's caller, which keeps only the unconsumed bytes (a cut
//! frame header or control frame) between reads and checks that they stay that small.

use protocol::frame::Role;
use protocol::message::Decoder;

/// The most a caller keeps between reads: a cut header (14 bytes at most) or control frame
/// (125 bytes of payload at most), RFC 6455 §5.2 and §5.5.
const MAX_KEPT: usize = 14 + 125;

/// The first byte of an input: its low bit picks the role (0 a server, 1 a client), the rest
/// the size of the reads the other bytes are cut into.
pub fn split_input(data: &[u8]) -> Option<(Role, usize, &[u8])> {
    let (&first, rest) = data.split_first()?;
    let role = if first & 1 == 0 {
        Role::Server
    } else {
        Role::Client
    };
    Some((role, usize::from(first >> 1).max(1), rest))
}

/// What one decode did.
pub enum Decoded {
    /// `consumed` bytes, and an event or message (decode again at once).
    Event(usize),
    /// `consumed` bytes and nothing complete: the rest waits for the next read.
    Waiting(usize),
    /// A protocol error, checked by the target: the connection would be closed here.
    Failed,
}

/// Feeds `data` to `decoder` in reads of `read_size` bytes, calling `decode_once` until it
/// waits for more; stops at the first failure. After every read, asserts that the caller keeps
/// no more than a cut frame and that the decoder holds at most `max_buffered` bytes.
pub fn feed(
    decoder: &mut Decoder,
    data: &[u8],
    read_size: usize,
    max_buffered: usize,
    mut decode_once: impl FnMut(&mut Decoder, &mut [u8]) -> Decoded,
) {
    let mut pending = Vec::new();
    for read in data.chunks(read_size) {
        pending.extend_from_slice(read);
        let mut start = 0;
        loop {
            match decode_once(decoder, &mut pending[start..]) {
                Decoded::Event(consumed) => start += consumed,
                Decoded::Waiting(consumed) => {
                    start += consumed;
                    break;
                }
                Decoded::Failed => return,
            }
        }
        pending.drain(..start);
        assert!(pending.len() <= MAX_KEPT);
        assert!(decoder.buffered_len() <= max_buffered);
    }
}
