//! Compressing a message (RFC 7692 §7.2.1): every message on its own (no context takeover),
//! flushed with a sync flush whose `00 00 ff ff` tail is then removed, framed with RSV1.

use flate2::{Compress, Compression, FlushCompress};

use crate::frame::{encode_compressed_frame, OpCode};

use super::{MAX_WINDOW_BITS, MIN_WINDOW_BITS, TAIL};

/// The compression level when none is given. Level 1 (zlib-rs's fastest) compressed ~300-byte
/// JSON chat messages about three times faster than level 6 for 0.35 of the size instead of
/// 0.32 (`cargo bench -p fanout-websocket`); a server pays it on every message it sends.
pub const DEFAULT_LEVEL: u32 = 1;

/// A raw DEFLATE compressor for permessage-deflate messages.
///
/// It compresses each message on its own: the output never refers to an earlier message, so
/// it is valid for any receiver whose agreed window is at least [`Deflater::window_bits`],
/// whether or not that receiver asked for `server_no_context_takeover`. An event loop owns one
/// per window size in use (usually one, 15) and shares the frames it makes.
pub struct Deflater {
    compress: Compress,
    window_bits: u8,
}

impl std::fmt::Debug for Deflater {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Deflater")
            .field("window_bits", &self.window_bits)
            .finish_non_exhaustive()
    }
}

impl Deflater {
    /// A deflater at the default level whose output fits a window of 2^`window_bits` bytes
    /// (8 to 15, clamped), the value agreed in `*_max_window_bits`.
    pub fn new(window_bits: u8) -> Self {
        Self::with_level(window_bits, DEFAULT_LEVEL)
    }

    /// The same at a zlib compression level from 0 (stored) to 9 (best).
    ///
    /// zlib has no raw deflate with a 256-byte window (`window_bits` 8) and uses 512 bytes
    /// instead. That output is still valid for a peer that asked for 256: zlib never emits a
    /// distance beyond its window less the 262-byte lookahead, that is 250 bytes for a
    /// 512-byte window. A test inflates it with a strict 256-byte window to prove it.
    pub fn with_level(window_bits: u8, level: u32) -> Self {
        let window_bits = window_bits.clamp(MIN_WINDOW_BITS, MAX_WINDOW_BITS);
        let zlib_window_bits = window_bits.max(9);
        Deflater {
            compress: Compress::new_with_window_bits(
                Compression::new(level.min(9)),
                false,
                zlib_window_bits,
            ),
            window_bits,
        }
    }

    /// The window the output fits, as agreed (8 to 15).
    pub fn window_bits(&self) -> u8 {
        self.window_bits
    }

    /// Compresses `message` on its own and appends the payload as it goes on the wire, the
    /// tail removed (§7.2.1), to `out`. An empty message becomes the single byte `00`
    /// (§7.2.3.6).
    pub fn compress(&mut self, message: &[u8], out: &mut Vec<u8>) {
        self.compress.reset();
        let start = out.len();
        // zlib's worst case is a little over the input; a sync flush adds at most a few bytes.
        out.reserve(message.len() + message.len() / 64 + 16);
        let mut offset = 0;
        loop {
            let in_before = self.compress.total_in();
            // With a deflater of our own and in-memory buffers the only failure is a bug in
            // zlib; a panic there is better than a corrupt frame.
            self.compress
                .compress_vec(&message[offset..], out, FlushCompress::Sync)
                .expect("deflate into memory cannot fail");
            offset += (self.compress.total_in() - in_before) as usize;
            if offset == message.len() && out.len() < out.capacity() {
                break;
            }
            out.reserve(out.capacity().max(64));
        }
        if out[start..].ends_with(&TAIL) {
            out.truncate(out.len() - TAIL.len());
        }
    }

    /// Appends a whole compressed message as one frame (FIN and RSV1 set) to `out`: the header
    /// of `opcode`, then the compressed payload, masked when a `mask` is given (client role).
    /// A server frames a broadcast once with this and shares the bytes.
    pub fn encode_frame(
        &mut self,
        out: &mut Vec<u8>,
        opcode: OpCode,
        message: &[u8],
        mask: Option<[u8; 4]>,
    ) {
        let mut payload = Vec::new();
        self.compress(message, &mut payload);
        encode_compressed_frame(out, opcode, &payload, mask);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::deflate::Inflater;

    fn compressed(deflater: &mut Deflater, message: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        deflater.compress(message, &mut out);
        out
    }

    #[test]
    fn compresses_hello_as_rfc_7692_shows() {
        // §7.2.3.1 and §7.2.3.6.
        let mut deflater = Deflater::new(15);
        assert_eq!(
            compressed(&mut deflater, b"Hello"),
            [0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00]
        );
        assert_eq!(compressed(&mut deflater, b""), [0x00]);
        // No context is carried over: the second "Hello" is the same bytes as the first.
        assert_eq!(
            compressed(&mut deflater, b"Hello"),
            [0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00]
        );
    }

    #[test]
    fn output_round_trips_at_every_window_and_level() {
        let text: Vec<u8> = (0..3_000u32)
            .flat_map(|i| format!("{{\"user\":\"u{}\",\"seq\":{i}}}", i % 37).into_bytes())
            .collect();
        let mut inflater = Inflater::new();
        for window_bits in 8..=15 {
            for level in [0, 1, 6, 9] {
                let mut deflater = Deflater::with_level(window_bits, level);
                let payload = compressed(&mut deflater, &text);
                if level > 0 {
                    assert!(payload.len() < text.len() / 2, "{window_bits} {level}");
                }
                let mut out = Vec::new();
                inflater.inflate(&payload, text.len(), &mut out).unwrap();
                assert_eq!(out, text, "window {window_bits} level {level}");
            }
        }
    }

    #[test]
    fn output_never_refers_further_back_than_the_agreed_window() {
        // Repeats 300 bytes apart: a 512-byte window could refer back to them, a 256-byte
        // window must not. The text repeats at many distances for the larger windows.
        let block: Vec<u8> = (0..300u32).map(|i| (i * 7 % 251) as u8).collect();
        let mut message: Vec<u8> = block.iter().cycle().take(30_000).copied().collect();
        message.extend((0..4000u32).flat_map(|i| format!("{{\"n\":{}}}", i % 1500).into_bytes()));
        for window_bits in 8..=15 {
            for level in [1, 2, 4, 6, 9] {
                let mut deflater = Deflater::with_level(window_bits, level);
                assert_eq!(deflater.window_bits(), window_bits);
                let payload = compressed(&mut deflater, &message);
                let (inflated, longest) = reference_inflate::inflate(&payload).unwrap();
                assert_eq!(inflated, message, "window {window_bits} level {level}");
                assert!(
                    longest <= 1 << window_bits,
                    "window {window_bits} level {level}: a distance of {longest}"
                );
            }
        }
        // The check has teeth: a 2^15 window's output refers 300 bytes back.
        let wide = compressed(&mut Deflater::new(15), &message);
        assert!(reference_inflate::inflate(&wide).unwrap().1 > 256);
    }

    /// A plain, slow DEFLATE decoder (RFC 1951) written for this test: it reports the longest
    /// back-reference distance, which zlib's inflaters do not check against small windows.
    mod reference_inflate {
        const LENGTH_BASE: [usize; 29] = [
            3, 4, 5, 6, 7, 8, 9, 10, 11, 13, 15, 17, 19, 23, 27, 31, 35, 43, 51, 59, 67, 83, 99,
            115, 131, 163, 195, 227, 258,
        ];
        const LENGTH_EXTRA: [u32; 29] = [
            0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3, 4, 4, 4, 4, 5, 5, 5, 5, 0,
        ];
        const DISTANCE_BASE: [usize; 30] = [
            1, 2, 3, 4, 5, 7, 9, 13, 17, 25, 33, 49, 65, 97, 129, 193, 257, 385, 513, 769, 1025,
            1537, 2049, 3073, 4097, 6145, 8193, 12289, 16385, 24577,
        ];
        const DISTANCE_EXTRA: [u32; 30] = [
            0, 0, 0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7, 8, 8, 9, 9, 10, 10, 11, 11, 12,
            12, 13, 13,
        ];
        /// §3.2.7: the order code length code lengths are sent in.
        const CODE_LENGTH_ORDER: [usize; 19] = [
            16, 17, 18, 0, 8, 7, 9, 6, 10, 5, 11, 4, 12, 3, 13, 2, 14, 1, 15,
        ];

        struct Bits<'a> {
            data: &'a [u8],
            bit: usize,
        }

        impl Bits<'_> {
            fn read(&mut self, count: u32) -> Result<usize, String> {
                let mut value = 0;
                for i in 0..count {
                    let byte = *self.data.get(self.bit / 8).ok_or("out of input")?;
                    value |= usize::from((byte >> (self.bit % 8)) & 1) << i;
                    self.bit += 1;
                }
                Ok(value)
            }
        }

        /// A canonical Huffman code (§3.2.2): how many codes of each length, and the symbols
        /// in code order.
        struct Code {
            counts: [usize; 16],
            symbols: Vec<usize>,
        }

        impl Code {
            fn new(lengths: &[usize]) -> Code {
                let mut counts = [0; 16];
                for &length in lengths {
                    counts[length] += 1;
                }
                counts[0] = 0;
                let mut symbols = Vec::new();
                for length in 1..16 {
                    for (symbol, &symbol_length) in lengths.iter().enumerate() {
                        if symbol_length == length {
                            symbols.push(symbol);
                        }
                    }
                }
                Code { counts, symbols }
            }

            fn decode(&self, bits: &mut Bits<'_>) -> Result<usize, String> {
                let (mut code, mut first, mut index) = (0, 0, 0);
                for length in 1..16 {
                    code |= bits.read(1)?;
                    let count = self.counts[length];
                    if code < first + count {
                        return Ok(self.symbols[index + code - first]);
                    }
                    index += count;
                    first = (first + count) << 1;
                    code <<= 1;
                }
                Err("bad code".into())
            }
        }

        /// Inflates raw DEFLATE data (with the sync-flush tail put back) and returns it with
        /// the longest distance any back-reference used.
        pub(super) fn inflate(payload: &[u8]) -> Result<(Vec<u8>, usize), String> {
            let mut data = payload.to_vec();
            data.extend_from_slice(&super::TAIL);
            let mut bits = Bits {
                data: &data,
                bit: 0,
            };
            let mut out = Vec::new();
            let mut longest = 0;
            loop {
                if bits.bit + 3 > data.len() * 8 {
                    return Ok((out, longest));
                }
                let last = bits.read(1)? == 1;
                let (literals, distances) = match bits.read(2)? {
                    0 => {
                        bits.bit = bits.bit.div_ceil(8) * 8;
                        let len = bits.read(16)?;
                        bits.read(16)?;
                        for _ in 0..len {
                            out.push(bits.read(8)? as u8);
                        }
                        if last {
                            return Ok((out, longest));
                        }
                        continue;
                    }
                    1 => {
                        let mut lengths = vec![8; 144];
                        lengths.extend([9; 112]);
                        lengths.extend([7; 24]);
                        lengths.extend([8; 8]);
                        (Code::new(&lengths), Code::new(&[5; 30]))
                    }
                    2 => {
                        let literal_count = bits.read(5)? + 257;
                        let distance_count = bits.read(5)? + 1;
                        let code_length_count = bits.read(4)? + 4;
                        let mut code_lengths = [0; 19];
                        for &symbol in &CODE_LENGTH_ORDER[..code_length_count] {
                            code_lengths[symbol] = bits.read(3)?;
                        }
                        let code_length_code = Code::new(&code_lengths);
                        let mut lengths = Vec::new();
                        while lengths.len() < literal_count + distance_count {
                            match code_length_code.decode(&mut bits)? {
                                length @ 0..=15 => lengths.push(length),
                                16 => {
                                    let previous = *lengths.last().ok_or("repeat first")?;
                                    let times = 3 + bits.read(2)?;
                                    lengths.extend(std::iter::repeat_n(previous, times));
                                }
                                17 => {
                                    let times = 3 + bits.read(3)?;
                                    lengths.extend(std::iter::repeat_n(0, times));
                                }
                                _ => {
                                    let times = 11 + bits.read(7)?;
                                    lengths.extend(std::iter::repeat_n(0, times));
                                }
                            }
                        }
                        (
                            Code::new(&lengths[..literal_count]),
                            Code::new(&lengths[literal_count..]),
                        )
                    }
                    _ => return Err("reserved block type".into()),
                };
                loop {
                    let symbol = literals.decode(&mut bits)?;
                    if symbol < 256 {
                        out.push(symbol as u8);
                        continue;
                    }
                    if symbol == 256 {
                        break;
                    }
                    let index = symbol - 257;
                    let length = LENGTH_BASE[index] + bits.read(LENGTH_EXTRA[index])?;
                    let index = distances.decode(&mut bits)?;
                    let distance = DISTANCE_BASE[index] + bits.read(DISTANCE_EXTRA[index])?;
                    if distance > out.len() {
                        return Err("distance before the start".into());
                    }
                    longest = longest.max(distance);
                    for _ in 0..length {
                        out.push(out[out.len() - distance]);
                    }
                }
                if last {
                    return Ok((out, longest));
                }
            }
        }
    }

    #[test]
    fn encode_frame_sets_fin_and_rsv1() {
        let mut frame = Vec::new();
        Deflater::new(15).encode_frame(&mut frame, OpCode::Text, b"Hello", None);
        // §7.2.3.1: "0xc1 0x07 0xf2 0x48 0xcd 0xc9 0xc9 0x07 0x00".
        assert_eq!(
            frame,
            [0xc1, 0x07, 0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00]
        );
    }
}
