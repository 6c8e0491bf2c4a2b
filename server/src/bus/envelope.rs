//! How a chat message travels between nodes: the payload of a `PUBLISH`, tagged with the
//! node that sent it (so it ignores its own echo), the room, and the WebSocket opcode.
//!
//! ```text
//! byte 0      version (1)
//! bytes 1-8   node id, big-endian u64
//! byte 9      opcode: 0x1 text, 0x2 binary (RFC 6455 §5.2)
//! bytes 10-11 room name length, big-endian u16
//! ...         room name (UTF-8), then the message payload to the end
//! ```
//!
//! The channel is [`channel_name`] of the room; the room is repeated inside so that a message
//! can be checked against the channel it came on.

use protocol::frame::OpCode;

const VERSION: u8 = 1;
/// Bytes before the room name.
pub const HEADER_LEN: usize = 12;
/// Every room's channel starts with this.
pub const CHANNEL_PREFIX: &str = "fanout:room:";

/// The Redis channel of a room.
pub fn channel_name(room: &str) -> Vec<u8> {
    let mut channel = Vec::with_capacity(CHANNEL_PREFIX.len() + room.len());
    channel.extend_from_slice(CHANNEL_PREFIX.as_bytes());
    channel.extend_from_slice(room.as_bytes());
    channel
}

/// The room a channel belongs to, if it is one of ours.
pub fn room_of_channel(channel: &[u8]) -> Option<&str> {
    std::str::from_utf8(channel.strip_prefix(CHANNEL_PREFIX.as_bytes())?).ok()
}

/// A decoded message from the bus, borrowing its bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Envelope<'a> {
    /// The node that published it.
    pub node_id: u64,
    /// Text or binary.
    pub opcode: OpCode,
    /// The room it was sent in.
    pub room: &'a str,
    /// The message.
    pub payload: &'a [u8],
}

impl<'a> Envelope<'a> {
    /// The envelope's length for a room and payload.
    pub fn encoded_len(room: &str, payload: &[u8]) -> usize {
        HEADER_LEN + room.len() + payload.len()
    }

    /// Appends the envelope to `out`. Room names are bounded by `--max-target-length`
    /// (at most 1 MiB); a name past 64 KiB is cut, and the receiver drops what does not match.
    pub fn encode(&self, out: &mut Vec<u8>) {
        let room = &self.room.as_bytes()[..self.room.len().min(u16::MAX as usize)];
        out.push(VERSION);
        out.extend_from_slice(&self.node_id.to_be_bytes());
        out.push(self.opcode.as_u8());
        out.extend_from_slice(&(room.len() as u16).to_be_bytes());
        out.extend_from_slice(room);
        out.extend_from_slice(self.payload);
    }

    /// Reads an envelope; `None` for anything that is not one (another version, a control
    /// opcode, a cut header, a room that is not UTF-8, text that is not UTF-8).
    pub fn decode(bytes: &'a [u8]) -> Option<Envelope<'a>> {
        if bytes.len() < HEADER_LEN || bytes[0] != VERSION {
            return None;
        }
        let node_id = u64::from_be_bytes(bytes[1..9].try_into().ok()?);
        let opcode = match OpCode::from_u8(bytes[9]) {
            Ok(opcode @ (OpCode::Text | OpCode::Binary)) => opcode,
            _ => return None,
        };
        let room_len = usize::from(u16::from_be_bytes([bytes[10], bytes[11]]));
        let room = bytes.get(HEADER_LEN..HEADER_LEN + room_len)?;
        let room = std::str::from_utf8(room).ok()?;
        let payload = &bytes[HEADER_LEN + room_len..];
        if opcode == OpCode::Text && std::str::from_utf8(payload).is_err() {
            return None;
        }
        Some(Envelope {
            node_id,
            opcode,
            room,
            payload,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_envelope_round_trips() {
        let envelope = Envelope {
            node_id: 0x0102_0304_0506_0708,
            opcode: OpCode::Binary,
            room: "/rust",
            payload: &[0, 255, 7],
        };
        let mut out = Vec::new();
        envelope.encode(&mut out);
        assert_eq!(out.len(), Envelope::encoded_len("/rust", &[0, 255, 7]));
        assert_eq!(&out[..12], &[1, 1, 2, 3, 4, 5, 6, 7, 8, 2, 0, 5]);
        assert_eq!(Envelope::decode(&out), Some(envelope));
    }

    #[test]
    fn what_is_not_an_envelope_is_refused() {
        let mut good = Vec::new();
        Envelope {
            node_id: 1,
            opcode: OpCode::Text,
            room: "/",
            payload: b"hi",
        }
        .encode(&mut good);
        for cut in 0..HEADER_LEN + 1 {
            assert_eq!(Envelope::decode(&good[..cut]), None, "cut at {cut}");
        }
        let mut other_version = good.clone();
        other_version[0] = 2;
        assert_eq!(Envelope::decode(&other_version), None);
        let mut ping = good.clone();
        ping[9] = 0x9;
        assert_eq!(Envelope::decode(&ping), None);
        let mut bad_text = good.clone();
        bad_text.push(0xff);
        assert_eq!(Envelope::decode(&bad_text), None);
    }

    #[test]
    fn channels_are_named_after_rooms() {
        assert_eq!(channel_name("/a"), b"fanout:room:/a");
        assert_eq!(room_of_channel(b"fanout:room:/a"), Some("/a"));
        assert_eq!(room_of_channel(b"other"), None);
    }
}
