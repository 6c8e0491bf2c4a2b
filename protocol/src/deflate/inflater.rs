//! Decompressing a message (RFC 7692 §7.2.2): put back the `00 00 ff ff` tail the sender
//! removed and inflate, refusing as soon as the output passes the message size limit.

use flate2::{Decompress, FlushDecompress, Status};

use crate::Error;

use super::{MAX_WINDOW_BITS, TAIL};

/// The first output allocation for a message; it grows geometrically from there, never past
/// the limit by more than one byte.
const FIRST_OUTPUT_CHUNK: usize = 4 * 1024;

/// A raw DEFLATE decompressor for permessage-deflate messages.
///
/// Made with [`Inflater::new`], it forgets everything between messages, so **one inflater
/// serves every connection** whose peer agreed to `*_no_context_takeover`: an event loop owns
/// one. Made with [`Inflater::with_context_takeover`], it keeps the LZ77 window from one
/// message to the next (§7.2.3.2), as a peer that takes over context needs; such an inflater
/// belongs to that one peer.
pub struct Inflater {
    decompress: Decompress,
    context_takeover: bool,
    /// The last message ended the DEFLATE stream (a block with BFINAL set, §7.2.3.4): the next
    /// one starts a new stream even with context takeover.
    stream_ended: bool,
}

impl std::fmt::Debug for Inflater {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Inflater")
            .field("context_takeover", &self.context_takeover)
            .finish_non_exhaustive()
    }
}

impl Default for Inflater {
    fn default() -> Self {
        Self::new()
    }
}

impl Inflater {
    /// An inflater for peers that compress every message on its own. Its window is the
    /// largest (2^15), so it inflates whatever window the peer used.
    pub fn new() -> Self {
        Inflater {
            decompress: Decompress::new(false),
            context_takeover: false,
            stream_ended: false,
        }
    }

    /// An inflater for one peer that takes over context, with the window that peer may use
    /// (8 to 15, [`DeflateParameters::window_bits_for`](super::DeflateParameters::window_bits_for)
    /// of the peer's role).
    pub fn with_context_takeover(window_bits: u8) -> Self {
        // zlib's smallest raw window is 2^9; a larger window inflates a smaller one's output.
        let window_bits = window_bits.clamp(9, MAX_WINDOW_BITS);
        Inflater {
            decompress: Decompress::new_with_window_bits(false, window_bits),
            context_takeover: true,
            stream_ended: false,
        }
    }

    /// Whether this inflater keeps its window between messages.
    pub fn takes_over_context(&self) -> bool {
        self.context_takeover
    }

    /// Inflates one message's payload (as received: without the tail) and appends it to `out`.
    ///
    /// The output is checked against `max_size` while it is produced: a payload that inflates
    /// to more is refused with [`Error::MessageTooBig`] (1009) once `max_size + 1` bytes
    /// exist, so a small frame cannot make us allocate a gigabyte. A payload that is not valid
    /// DEFLATE is [`Error::InvalidCompressedData`] (1007). After an error, an inflater with
    /// context takeover is unusable (the connection is failing anyway); one without is fine.
    pub fn inflate(
        &mut self,
        compressed: &[u8],
        max_size: usize,
        out: &mut Vec<u8>,
    ) -> Result<(), Error> {
        if !self.context_takeover || self.stream_ended {
            self.decompress.reset(false);
            self.stream_ended = false;
        }
        let start = out.len();
        for part in [compressed, &TAIL[..]] {
            let mut offset = 0;
            loop {
                let produced = out.len() - start;
                if produced > max_size {
                    return Err(Error::MessageTooBig);
                }
                if out.len() == out.capacity() {
                    // Room for one byte past the limit at most: that byte proves the excess.
                    let allowance = (max_size - produced).saturating_add(1);
                    let remaining_input = part.len() - offset;
                    let grow = FIRST_OUTPUT_CHUNK
                        .max(produced)
                        .max(remaining_input.saturating_mul(4))
                        .min(allowance);
                    out.reserve_exact(grow);
                }
                let in_before = self.decompress.total_in();
                let out_before = out.len();
                let status = self
                    .decompress
                    .decompress_vec(&part[offset..], out, FlushDecompress::Sync)
                    .map_err(|_| Error::InvalidCompressedData)?;
                let consumed = (self.decompress.total_in() - in_before) as usize;
                offset += consumed;
                if status == Status::StreamEnd {
                    // A final block ends the message; what follows it (the tail) is not data.
                    self.stream_ended = true;
                    return check_size(out.len() - start, max_size);
                }
                let output_full = out.len() == out.capacity();
                if offset == part.len() && !output_full {
                    // All input taken and room left over: nothing is pending inside zlib.
                    break;
                }
                if consumed == 0 && out.len() == out_before && !output_full {
                    // No progress with input and room: the stream is stuck, not merely long.
                    return Err(Error::InvalidCompressedData);
                }
            }
        }
        check_size(out.len() - start, max_size)
    }
}

fn check_size(size: usize, max_size: usize) -> Result<(), Error> {
    if size > max_size {
        Err(Error::MessageTooBig)
    } else {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn inflate(inflater: &mut Inflater, payload: &[u8], max: usize) -> Result<Vec<u8>, Error> {
        let mut out = Vec::new();
        inflater.inflate(payload, max, &mut out).map(|()| out)
    }

    /// RFC 7692 §7.2.3: each payload as it travels (tail removed) inflates to "Hello".
    #[test]
    fn inflates_the_rfc_examples() {
        let cases: &[(&str, &[u8])] = &[
            (
                "7.2.3.1 compressed",
                &[0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00],
            ),
            (
                "7.2.3.3 no compression",
                &[
                    0x00, 0x05, 0x00, 0xfa, 0xff, 0x48, 0x65, 0x6c, 0x6c, 0x6f, 0x00,
                ],
            ),
            (
                "7.2.3.4 bfinal",
                &[0xf3, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00, 0x00],
            ),
            (
                "7.2.3.5 two blocks",
                &[
                    0xf2, 0x48, 0x05, 0x00, 0x00, 0x00, 0xff, 0xff, 0xca, 0xc9, 0xc9, 0x07, 0x00,
                ],
            ),
        ];
        let mut inflater = Inflater::new();
        for (name, payload) in cases {
            assert_eq!(
                inflate(&mut inflater, payload, 1024).as_deref(),
                Ok(&b"Hello"[..]),
                "{name}"
            );
        }
        // §7.2.3.6: an empty message is one empty stored block, tail removed.
        assert_eq!(inflate(&mut inflater, &[0x00], 1024), Ok(vec![]));
    }

    #[test]
    fn context_takeover_keeps_the_window_between_messages() {
        // §7.2.3.2: the second "Hello" refers back into the first message.
        let first = [0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00];
        let second = [0xf2, 0x00, 0x11, 0x00, 0x00];
        let mut keeping = Inflater::with_context_takeover(15);
        assert!(keeping.takes_over_context());
        assert_eq!(inflate(&mut keeping, &first, 64).unwrap(), b"Hello");
        assert_eq!(inflate(&mut keeping, &second, 64).unwrap(), b"Hello");
        // Without the window the back reference points before the start.
        let mut fresh = Inflater::new();
        assert_eq!(inflate(&mut fresh, &first, 64).unwrap(), b"Hello");
        assert_eq!(
            inflate(&mut fresh, &second, 64),
            Err(Error::InvalidCompressedData)
        );
    }

    #[test]
    fn a_message_ending_the_stream_makes_the_next_one_start_a_new_stream() {
        let mut keeping = Inflater::with_context_takeover(15);
        let bfinal = [0xf3, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00, 0x00];
        assert_eq!(inflate(&mut keeping, &bfinal, 64).unwrap(), b"Hello");
        let plain = [0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00];
        assert_eq!(inflate(&mut keeping, &plain, 64).unwrap(), b"Hello");
    }

    #[test]
    fn output_past_the_limit_is_refused_without_allocating_it() {
        // 1 MiB of zeros compresses to about a kilobyte; allow 64 KiB.
        let mut deflater = super::super::Deflater::with_level(15, 9);
        let mut payload = Vec::new();
        deflater.compress(&vec![0u8; 1 << 20], &mut payload);
        assert!(payload.len() < 2048, "{}", payload.len());
        let mut out = Vec::new();
        let mut inflater = Inflater::new();
        assert_eq!(
            inflater.inflate(&payload, 64 * 1024, &mut out),
            Err(Error::MessageTooBig)
        );
        assert!(out.capacity() <= 64 * 1024 + 1, "{}", out.capacity());
        // The same inflater goes on to the next message as if nothing happened.
        assert_eq!(
            inflate(
                &mut inflater,
                &[0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00],
                5
            )
            .unwrap(),
            b"Hello"
        );
        // Exactly at the limit is fine.
        assert_eq!(
            inflate(&mut inflater, &payload, 1 << 20).map(|out| out.len()),
            Ok(1 << 20)
        );
        assert_eq!(
            inflate(&mut inflater, &payload, (1 << 20) - 1),
            Err(Error::MessageTooBig)
        );
    }

    #[test]
    fn invalid_deflate_data_is_refused() {
        let mut inflater = Inflater::new();
        for bad in [
            &[0xff, 0xff, 0xff][..],
            &[0x07],
            &[0x00, 0x05, 0x00, 0x00, 0x00],
        ] {
            assert_eq!(
                inflate(&mut inflater, bad, 1024),
                Err(Error::InvalidCompressedData),
                "{bad:02x?}"
            );
        }
        assert_eq!(
            Error::InvalidCompressedData.close_code(),
            Some(crate::close::CloseCode::INVALID_PAYLOAD)
        );
    }

    #[test]
    fn output_is_appended_after_what_the_buffer_holds() {
        let mut out = b"prefix:".to_vec();
        Inflater::new()
            .inflate(&[0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00], 5, &mut out)
            .unwrap();
        assert_eq!(out, b"prefix:Hello");
    }
}
