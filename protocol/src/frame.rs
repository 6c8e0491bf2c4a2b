//! Frame headers (RFC 6455 §5.2): decode from a buffer that may hold a partial frame, several
//! frames or a frame cut anywhere; encode into a caller's buffer.
//!
//! ```text
//!  0                   1                   2                   3
//!  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//! +-+-+-+-+-------+-+-------------+-------------------------------+
//! |F|R|R|R| opcode|M| Payload len |    Extended payload length    |
//! |I|S|S|S|  (4)  |A|     (7)     |             (16/64)           |
//! |N|V|V|V|       |S|             |   (if payload len==126/127)   |
//! | |1|2|3|       |K|             |                               |
//! +-+-+-+-+-------+-+-------------+ - - - - - - - - - - - - - - - +
//! |     Extended payload length continued, if payload len == 127  |
//! + - - - - - - - - - - - - - - - +-------------------------------+
//! |                               |Masking-key, if MASK set to 1  |
//! +-------------------------------+-------------------------------+
//! ```
//!
//! Encoding, as each role sends (RFC 6455 §5.7's examples):
//!
//! ```
//! use protocol::frame::{encode_frame, encode_header, OpCode, MAX_HEADER_LEN};
//!
//! // A server's frames are not masked: the same bytes can go to every receiver.
//! let mut wire = Vec::new();
//! encode_frame(&mut wire, true, OpCode::Text, b"Hello", None);
//! assert_eq!(wire, [0x81, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f]);
//!
//! // A client masks every frame with a key it draws at random for each frame (§5.3).
//! wire.clear();
//! encode_frame(&mut wire, true, OpCode::Text, b"Hello", Some([0x37, 0xfa, 0x21, 0x3d]));
//! assert_eq!(wire, [0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58]);
//!
//! // A fragmented message: FIN only on the last fragment, continuations after the first.
//! wire.clear();
//! encode_frame(&mut wire, false, OpCode::Text, b"Hel", None);
//! encode_frame(&mut wire, true, OpCode::Continuation, b"lo", None);
//! assert_eq!(wire, [0x01, 0x03, 0x48, 0x65, 0x6c, 0x80, 0x02, 0x6c, 0x6f]);
//!
//! // Only the header, for a payload that is written from elsewhere (e.g. `write_vectored`).
//! let mut header = [0u8; MAX_HEADER_LEN];
//! let len = encode_header(&mut header, true, OpCode::Binary, 65536, None);
//! assert_eq!(header[..len], [0x82, 0x7f, 0, 0, 0, 0, 0, 1, 0, 0]);
//! ```
//!
//! A message compressed with permessage-deflate carries RSV1 on its first frame:
//! [`encode_compressed_frame`], or [`Deflater::encode_frame`](crate::deflate::Deflater::encode_frame).

use crate::{mask, Error, Status};

/// The longest frame header: 2 bytes, 8 of extended length, 4 of masking key.
pub const MAX_HEADER_LEN: usize = 14;

/// The largest payload a control frame may carry (§5.5).
pub const MAX_CONTROL_PAYLOAD: usize = 125;

/// Which end of the connection this endpoint is. It decides the masking rule (§5.1): a client
/// masks every frame it sends and a server masks none.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Accepts masked frames, sends unmasked ones.
    Server,
    /// Accepts unmasked frames, sends masked ones.
    Client,
}

/// A frame's opcode (§5.2, §11.8). The reserved values 0x3-0x7 and 0xB-0xF are refused when
/// decoding ([`Error::ReservedOpCode`]), so they have no variant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OpCode {
    /// 0x0: continues a fragmented message (§5.4).
    Continuation,
    /// 0x1: the first frame of a text message (§5.6).
    Text,
    /// 0x2: the first frame of a binary message (§5.6).
    Binary,
    /// 0x8: close (§5.5.1).
    Close,
    /// 0x9: ping (§5.5.2).
    Ping,
    /// 0xA: pong (§5.5.3).
    Pong,
}

impl OpCode {
    /// Decodes the low four bits of a frame's first byte.
    pub fn from_u8(value: u8) -> Result<OpCode, Error> {
        Ok(match value {
            0x0 => OpCode::Continuation,
            0x1 => OpCode::Text,
            0x2 => OpCode::Binary,
            0x8 => OpCode::Close,
            0x9 => OpCode::Ping,
            0xA => OpCode::Pong,
            other => return Err(Error::ReservedOpCode(other)),
        })
    }

    /// The value on the wire.
    pub fn as_u8(self) -> u8 {
        match self {
            OpCode::Continuation => 0x0,
            OpCode::Text => 0x1,
            OpCode::Binary => 0x2,
            OpCode::Close => 0x8,
            OpCode::Ping => 0x9,
            OpCode::Pong => 0xA,
        }
    }

    /// Close, ping and pong are control frames (§5.5): opcodes with the high bit set.
    pub fn is_control(self) -> bool {
        self.as_u8() & 0x8 != 0
    }
}

/// A decoded frame header (§5.2). The payload follows it on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameHeader {
    /// FIN: this is the final fragment of a message.
    pub fin: bool,
    /// RSV1: with permessage-deflate negotiated, "Per-Message Compressed" on the first frame of
    /// a message (RFC 7692 §6). Only [`decode_header_with`] lets it through.
    pub rsv1: bool,
    /// The opcode.
    pub opcode: OpCode,
    /// The masking key, present on every client frame (§5.3).
    pub mask: Option<[u8; 4]>,
    /// The payload length in bytes.
    pub payload_len: u64,
    /// How many bytes the header took on the wire (2 to 14).
    pub header_len: usize,
}

/// Decodes one frame header from the front of `buf`, as received by `role`.
///
/// Returns [`Status::Partial`] when `buf` ends inside the header (nothing is consumed), and an
/// error as soon as the bytes present break a rule of §5.2 or §5.5: reserved bits, reserved
/// opcodes, fragmented or long control frames, a 64-bit length with its top bit set, or a mask
/// bit that does not fit the sender's role.
pub fn decode_header(buf: &[u8], role: Role) -> Result<Status<FrameHeader>, Error> {
    decode_header_with(buf, role, false)
}

/// [`decode_header`] on a connection that may have negotiated permessage-deflate: when
/// `permessage_deflate` is true, RSV1 is allowed on the first frame of a data message
/// (RFC 7692 §6) and refused on a control frame ([`Error::CompressedControlFrame`]) or a
/// continuation frame ([`Error::CompressedContinuation`]). RSV2 and RSV3 are always refused.
pub fn decode_header_with(
    buf: &[u8],
    role: Role,
    permessage_deflate: bool,
) -> Result<Status<FrameHeader>, Error> {
    let Some(&first) = buf.first() else {
        return Ok(Status::Partial);
    };
    let rsv1 = first & 0x40 != 0;
    if first & 0x30 != 0 || (rsv1 && !permessage_deflate) {
        return Err(Error::ReservedBitsSet);
    }
    let fin = first & 0x80 != 0;
    let opcode = OpCode::from_u8(first & 0x0F)?;
    if opcode.is_control() && !fin {
        return Err(Error::FragmentedControlFrame);
    }
    if rsv1 && opcode.is_control() {
        return Err(Error::CompressedControlFrame);
    }
    if rsv1 && opcode == OpCode::Continuation {
        return Err(Error::CompressedContinuation);
    }
    let Some(&second) = buf.get(1) else {
        return Ok(Status::Partial);
    };
    let masked = second & 0x80 != 0;
    match (role, masked) {
        (Role::Server, false) => return Err(Error::UnmaskedFrameFromClient),
        (Role::Client, true) => return Err(Error::MaskedFrameFromServer),
        _ => {}
    }
    let (payload_len, mut header_len) = match second & 0x7F {
        126 => {
            let Some(bytes) = buf.get(2..4) else {
                return Ok(Status::Partial);
            };
            (u64::from(u16::from_be_bytes([bytes[0], bytes[1]])), 4)
        }
        127 => {
            let Some(bytes) = buf.get(2..10) else {
                return Ok(Status::Partial);
            };
            let mut word = [0u8; 8];
            word.copy_from_slice(bytes);
            let len = u64::from_be_bytes(word);
            if len >> 63 != 0 {
                return Err(Error::PayloadLengthTopBitSet);
            }
            (len, 10)
        }
        short => (u64::from(short), 2),
    };
    if opcode.is_control() && payload_len > MAX_CONTROL_PAYLOAD as u64 {
        return Err(Error::ControlFrameTooLong);
    }
    let mask = if masked {
        let Some(bytes) = buf.get(header_len..header_len + 4) else {
            return Ok(Status::Partial);
        };
        header_len += 4;
        Some([bytes[0], bytes[1], bytes[2], bytes[3]])
    } else {
        None
    };
    Ok(Status::Complete(FrameHeader {
        fin,
        rsv1,
        opcode,
        mask,
        payload_len,
        header_len,
    }))
}

/// Encodes a frame header into `out` and returns its length (2 to 14 bytes), using the
/// shortest length form (§5.2). Pass a `mask` for the client role and `None` for the server
/// role; the payload itself is not touched.
pub fn encode_header(
    out: &mut [u8; MAX_HEADER_LEN],
    fin: bool,
    opcode: OpCode,
    payload_len: u64,
    mask: Option<[u8; 4]>,
) -> usize {
    encode_header_with_rsv1(out, fin, false, opcode, payload_len, mask)
}

/// [`encode_header`] with RSV1: set it on the first frame of a message compressed with
/// permessage-deflate (RFC 7692 §6), and on no other frame.
pub fn encode_header_with_rsv1(
    out: &mut [u8; MAX_HEADER_LEN],
    fin: bool,
    rsv1: bool,
    opcode: OpCode,
    payload_len: u64,
    mask: Option<[u8; 4]>,
) -> usize {
    out[0] = (u8::from(fin) << 7) | (u8::from(rsv1) << 6) | opcode.as_u8();
    let mask_bit = if mask.is_some() { 0x80 } else { 0 };
    let mut len = if payload_len < 126 {
        out[1] = mask_bit | payload_len as u8;
        2
    } else if payload_len <= u64::from(u16::MAX) {
        out[1] = mask_bit | 126;
        out[2..4].copy_from_slice(&(payload_len as u16).to_be_bytes());
        4
    } else {
        out[1] = mask_bit | 127;
        out[2..10].copy_from_slice(&payload_len.to_be_bytes());
        10
    };
    if let Some(key) = mask {
        out[len..len + 4].copy_from_slice(&key);
        len += 4;
    }
    len
}

/// Appends a whole frame, header and payload, to `out`; masks the payload's copy when a `mask`
/// is given (client role). A server frames a broadcast once with this and shares the bytes.
pub fn encode_frame(
    out: &mut Vec<u8>,
    fin: bool,
    opcode: OpCode,
    payload: &[u8],
    mask: Option<[u8; 4]>,
) {
    encode_frame_with_rsv1(out, fin, false, opcode, payload, mask);
}

/// Appends a whole message already compressed with permessage-deflate as one frame: FIN and
/// RSV1 set (RFC 7692 §6), then `compressed` (the payload without its `00 00 ff ff` tail, as
/// [`Deflater::compress`](crate::deflate::Deflater::compress) makes it). A server compresses
/// a broadcast once, frames it once with this, and shares the bytes with every receiver that
/// negotiated the extension.
pub fn encode_compressed_frame(
    out: &mut Vec<u8>,
    opcode: OpCode,
    compressed: &[u8],
    mask: Option<[u8; 4]>,
) {
    encode_frame_with_rsv1(out, true, true, opcode, compressed, mask);
}

/// [`encode_frame`] with RSV1: a message compressed with permessage-deflate and sent in
/// fragments sets it on its first frame and on no other (RFC 7692 §6); the payloads are the
/// pieces of the compressed message. [`encode_compressed_frame`] is the one-frame case.
pub fn encode_frame_with_rsv1(
    out: &mut Vec<u8>,
    fin: bool,
    rsv1: bool,
    opcode: OpCode,
    payload: &[u8],
    mask: Option<[u8; 4]>,
) {
    let mut header = [0u8; MAX_HEADER_LEN];
    let header_len =
        encode_header_with_rsv1(&mut header, fin, rsv1, opcode, payload.len() as u64, mask);
    out.reserve(header_len + payload.len());
    out.extend_from_slice(&header[..header_len]);
    let start = out.len();
    out.extend_from_slice(payload);
    if let Some(key) = mask {
        mask::apply_mask(&mut out[start..], key, 0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(text: &str) -> Vec<u8> {
        let digits: Vec<u8> = text.bytes().filter(|b| b.is_ascii_hexdigit()).collect();
        digits
            .chunks(2)
            .map(|pair| u8::from_str_radix(std::str::from_utf8(pair).unwrap(), 16).unwrap())
            .collect()
    }

    /// FIN, opcode, mask, payload length, header length.
    type Decoded = (bool, OpCode, Option<[u8; 4]>, u64, usize);

    struct Case {
        name: &'static str,
        role: Role,
        bytes: &'static str,
        expected: Result<Decoded, Error>,
    }

    const MASK: [u8; 4] = [0x37, 0xfa, 0x21, 0x3d];

    fn cases() -> Vec<Case> {
        use OpCode::*;
        vec![
            Case {
                name: "rfc unmasked hello",
                role: Role::Client,
                bytes: "81 05 48 65 6c 6c 6f",
                expected: Ok((true, Text, None, 5, 2)),
            },
            Case {
                name: "rfc masked hello",
                role: Role::Server,
                bytes: "81 85 37 fa 21 3d 7f 9f 4d 51 58",
                expected: Ok((true, Text, Some(MASK), 5, 6)),
            },
            Case {
                name: "rfc first fragment",
                role: Role::Client,
                bytes: "01 03 48 65 6c",
                expected: Ok((false, Text, None, 3, 2)),
            },
            Case {
                name: "rfc last fragment",
                role: Role::Client,
                bytes: "80 02 6c 6f",
                expected: Ok((true, Continuation, None, 2, 2)),
            },
            Case {
                name: "rfc ping",
                role: Role::Client,
                bytes: "89 05 48 65 6c 6c 6f",
                expected: Ok((true, Ping, None, 5, 2)),
            },
            Case {
                name: "rfc masked pong",
                role: Role::Server,
                bytes: "8a 85 37 fa 21 3d 7f 9f 4d 51 58",
                expected: Ok((true, Pong, Some(MASK), 5, 6)),
            },
            Case {
                name: "rfc 256 bytes binary, 16-bit length",
                role: Role::Client,
                bytes: "82 7E 01 00",
                expected: Ok((true, Binary, None, 256, 4)),
            },
            Case {
                name: "rfc 64KiB binary, 64-bit length",
                role: Role::Client,
                bytes: "82 7F 00 00 00 00 00 01 00 00",
                expected: Ok((true, Binary, None, 65536, 10)),
            },
            Case {
                name: "masked 64-bit length",
                role: Role::Server,
                bytes: "82 FF 00 00 00 00 00 01 00 00 37 fa 21 3d",
                expected: Ok((true, Binary, Some(MASK), 65536, 14)),
            },
            Case {
                name: "close, empty",
                role: Role::Client,
                bytes: "88 00",
                expected: Ok((true, Close, None, 0, 2)),
            },
            Case {
                name: "control frame of 125 bytes",
                role: Role::Client,
                bytes: "89 7d",
                expected: Ok((true, Ping, None, 125, 2)),
            },
            Case {
                name: "unmasked frame from client",
                role: Role::Server,
                bytes: "81 05 48 65 6c 6c 6f",
                expected: Err(Error::UnmaskedFrameFromClient),
            },
            Case {
                name: "masked frame from server",
                role: Role::Client,
                bytes: "81 85 37 fa 21 3d",
                expected: Err(Error::MaskedFrameFromServer),
            },
            Case {
                name: "rsv1 set",
                role: Role::Client,
                bytes: "c1 00",
                expected: Err(Error::ReservedBitsSet),
            },
            Case {
                name: "rsv2 set",
                role: Role::Client,
                bytes: "a1 00",
                expected: Err(Error::ReservedBitsSet),
            },
            Case {
                name: "rsv3 set",
                role: Role::Client,
                bytes: "91 00",
                expected: Err(Error::ReservedBitsSet),
            },
            Case {
                name: "reserved data opcode 3",
                role: Role::Client,
                bytes: "83 00",
                expected: Err(Error::ReservedOpCode(3)),
            },
            Case {
                name: "reserved data opcode 7",
                role: Role::Client,
                bytes: "87 00",
                expected: Err(Error::ReservedOpCode(7)),
            },
            Case {
                name: "reserved control opcode b",
                role: Role::Client,
                bytes: "8b 00",
                expected: Err(Error::ReservedOpCode(0xb)),
            },
            Case {
                name: "reserved control opcode f",
                role: Role::Client,
                bytes: "8f 00",
                expected: Err(Error::ReservedOpCode(0xf)),
            },
            Case {
                name: "fragmented ping",
                role: Role::Client,
                bytes: "09 00",
                expected: Err(Error::FragmentedControlFrame),
            },
            Case {
                name: "fragmented close",
                role: Role::Client,
                bytes: "08 00",
                expected: Err(Error::FragmentedControlFrame),
            },
            Case {
                name: "ping of 126 bytes",
                role: Role::Client,
                bytes: "89 7e 00 7e",
                expected: Err(Error::ControlFrameTooLong),
            },
            Case {
                name: "close of 2^16 bytes",
                role: Role::Client,
                bytes: "88 7f 00 00 00 00 00 01 00 00",
                expected: Err(Error::ControlFrameTooLong),
            },
            Case {
                name: "64-bit length with top bit",
                role: Role::Client,
                bytes: "82 7f 80 00 00 00 00 00 00 00",
                expected: Err(Error::PayloadLengthTopBitSet),
            },
            Case {
                name: "64-bit length 2^63-1",
                role: Role::Client,
                bytes: "82 7f 7f ff ff ff ff ff ff ff",
                expected: Ok((true, Binary, None, (1 << 63) - 1, 10)),
            },
        ]
    }

    #[test]
    fn decodes_the_table_of_frame_headers() {
        for case in cases() {
            let bytes = hex(case.bytes);
            let got = decode_header(&bytes, case.role).map(|status| {
                let header = status.complete().expect(case.name);
                (
                    header.fin,
                    header.opcode,
                    header.mask,
                    header.payload_len,
                    header.header_len,
                )
            });
            assert_eq!(got, case.expected, "{}", case.name);
        }
    }

    #[test]
    fn every_truncated_prefix_of_a_valid_header_is_partial() {
        for case in cases().into_iter().filter(|case| case.expected.is_ok()) {
            let bytes = hex(case.bytes);
            let header_len = case.expected.unwrap().4;
            for cut in 0..header_len {
                assert_eq!(
                    decode_header(&bytes[..cut], case.role),
                    Ok(Status::Partial),
                    "{} cut at {cut}",
                    case.name
                );
            }
        }
    }

    #[test]
    fn encoding_uses_the_shortest_length_form_and_decodes_back() {
        for (len, header_len) in [
            (0u64, 2),
            (125, 2),
            (126, 4),
            (65535, 4),
            (65536, 10),
            (1 << 40, 10),
        ] {
            for mask in [None, Some(MASK)] {
                let mut out = [0u8; MAX_HEADER_LEN];
                let written = encode_header(&mut out, true, OpCode::Binary, len, mask);
                assert_eq!(written, header_len + if mask.is_some() { 4 } else { 0 });
                let role = if mask.is_some() {
                    Role::Server
                } else {
                    Role::Client
                };
                let header = decode_header(&out[..written], role)
                    .unwrap()
                    .complete()
                    .unwrap();
                assert_eq!(header.payload_len, len);
                assert_eq!(header.mask, mask);
                assert_eq!(header.header_len, written);
            }
        }
    }

    #[test]
    fn encode_frame_matches_the_rfc_examples() {
        let mut out = Vec::new();
        encode_frame(&mut out, true, OpCode::Text, b"Hello", None);
        assert_eq!(out, hex("81 05 48 65 6c 6c 6f"));
        out.clear();
        encode_frame(&mut out, true, OpCode::Text, b"Hello", Some(MASK));
        assert_eq!(out, hex("81 85 37 fa 21 3d 7f 9f 4d 51 58"));
    }

    #[test]
    fn rsv1_passes_only_where_permessage_deflate_allows_it() {
        let cases: &[(&str, bool, Result<bool, Error>)] = &[
            ("c1 05", true, Ok(true)),
            ("c2 05", true, Ok(true)),
            ("41 05", true, Ok(true)),
            ("81 05", true, Ok(false)),
            ("c1 05", false, Err(Error::ReservedBitsSet)),
            ("e1 05", true, Err(Error::ReservedBitsSet)),
            ("d1 05", true, Err(Error::ReservedBitsSet)),
            ("c0 05", true, Err(Error::CompressedContinuation)),
            ("c9 00", true, Err(Error::CompressedControlFrame)),
            ("ca 00", true, Err(Error::CompressedControlFrame)),
            ("c8 00", true, Err(Error::CompressedControlFrame)),
        ];
        for (bytes, negotiated, expected) in cases {
            let got = decode_header_with(&hex(bytes), Role::Client, *negotiated)
                .map(|status| status.complete().unwrap().rsv1);
            assert_eq!(got, *expected, "{bytes} negotiated {negotiated}");
        }
    }

    #[test]
    fn compressed_frames_carry_rsv1_on_the_first_frame_only() {
        let mut out = Vec::new();
        encode_compressed_frame(&mut out, OpCode::Text, &hex("f2 48 cd c9 c9 07 00"), None);
        // RFC 7692 §7.2.3.1.
        assert_eq!(out, hex("c1 07 f2 48 cd c9 c9 07 00"));
        let mut header = [0u8; MAX_HEADER_LEN];
        let len = encode_header_with_rsv1(&mut header, false, true, OpCode::Text, 3, None);
        assert_eq!(header[..len], hex("41 03"));
        let len = encode_header_with_rsv1(&mut header, true, false, OpCode::Continuation, 4, None);
        assert_eq!(header[..len], hex("80 04"));
        // The same two fragments as whole frames, the second masked.
        let mut out = Vec::new();
        encode_frame_with_rsv1(&mut out, false, true, OpCode::Text, &hex("f2 48 cd"), None);
        let key = Some([1, 2, 3, 4]);
        encode_frame_with_rsv1(&mut out, true, false, OpCode::Continuation, &[1; 4], key);
        assert_eq!(out, hex("41 03 f2 48 cd 80 84 01 02 03 04 00 03 02 05"));
    }
}
