//! Incremental, fail-fast UTF-8 validation for text messages (RFC 6455 §8.1, RFC 3629 §4).
//!
//! A text message may arrive in many frames, and a frame in many reads. [`Validator`] is fed
//! the bytes as they come and reports an invalid sequence as soon as the byte that makes it
//! invalid arrives, even in the middle of a frame. A sequence cut at the end of a chunk is only
//! an error if the message ends there ([`Validator::finish`]).

/// The input is not UTF-8.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InvalidUtf8;

/// Checks a complete byte string (a close reason, an unfragmented text message).
pub fn validate(bytes: &[u8]) -> Result<&str, InvalidUtf8> {
    std::str::from_utf8(bytes).map_err(|_| InvalidUtf8)
}

/// The state of a UTF-8 check across chunks: how many continuation bytes the current
/// sequence still needs, and the range the next one must fall in (RFC 3629 §4 narrows the
/// second byte after 0xE0, 0xED, 0xF0 and 0xF4).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Validator {
    needed: u8,
    lower: u8,
    upper: u8,
}

impl Default for Validator {
    fn default() -> Self {
        Self::new()
    }
}

impl Validator {
    /// A validator at the start of a message.
    pub const fn new() -> Self {
        Validator {
            needed: 0,
            lower: 0x80,
            upper: 0xBF,
        }
    }

    /// Whether the bytes fed so far end on a character boundary.
    pub fn is_complete(&self) -> bool {
        self.needed == 0
    }

    /// Feeds the next chunk. Fails as soon as a byte cannot continue any valid sequence.
    pub fn feed(&mut self, mut bytes: &[u8]) -> Result<(), InvalidUtf8> {
        // Finish a sequence cut by the previous chunk, one byte at a time.
        while self.needed > 0 {
            let Some((&byte, rest)) = bytes.split_first() else {
                return Ok(());
            };
            self.step(byte)?;
            bytes = rest;
        }
        // On a character boundary: let the standard library's fast validator do the bulk.
        match std::str::from_utf8(bytes) {
            Ok(_) => Ok(()),
            Err(error) => {
                if error.error_len().is_some() {
                    return Err(InvalidUtf8);
                }
                // The chunk ends inside a sequence that is valid so far: remember where it is.
                for &byte in &bytes[error.valid_up_to()..] {
                    self.step(byte)?;
                }
                Ok(())
            }
        }
    }

    /// Ends the message: an unfinished sequence is an error.
    pub fn finish(&mut self) -> Result<(), InvalidUtf8> {
        let complete = self.is_complete();
        *self = Validator::new();
        if complete {
            Ok(())
        } else {
            Err(InvalidUtf8)
        }
    }

    fn step(&mut self, byte: u8) -> Result<(), InvalidUtf8> {
        if self.needed > 0 {
            if byte < self.lower || byte > self.upper {
                return Err(InvalidUtf8);
            }
            self.needed -= 1;
            self.lower = 0x80;
            self.upper = 0xBF;
            return Ok(());
        }
        let (needed, lower, upper) = match byte {
            0x00..=0x7F => (0, 0x80, 0xBF),
            0xC2..=0xDF => (1, 0x80, 0xBF),
            0xE0 => (2, 0xA0, 0xBF),
            0xE1..=0xEC | 0xEE..=0xEF => (2, 0x80, 0xBF),
            0xED => (2, 0x80, 0x9F), // no UTF-16 surrogates
            0xF0 => (3, 0x90, 0xBF),
            0xF1..=0xF3 => (3, 0x80, 0xBF),
            0xF4 => (3, 0x80, 0x8F), // nothing above U+10FFFF
            _ => return Err(InvalidUtf8),
        };
        self.needed = needed;
        self.lower = lower;
        self.upper = upper;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn feed_in_chunks(bytes: &[u8], chunk: usize) -> Result<(), InvalidUtf8> {
        let mut validator = Validator::new();
        for piece in bytes.chunks(chunk.max(1)) {
            validator.feed(piece)?;
        }
        validator.finish()
    }

    #[test]
    fn agrees_with_the_standard_library_for_every_chunk_size() {
        let samples: &[&[u8]] = &[
            b"",
            b"hello",
            "κόσμε".as_bytes(),
            "Hello-µ@ßöäüàá-UTF-8!!".as_bytes(),
            "\u{10FFFF}\u{FFFF}\u{800}\u{80}".as_bytes(),
            b"\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5\xed\xa0\x80edited", // surrogate
            b"\xf4\x90\x80\x80",                                               // above U+10FFFF
            b"\xc0\xaf",                                                       // overlong
            b"\xe0\x80\xaf",                                                   // overlong
            b"\xf0\x80\x80\xaf",                                               // overlong
            b"\xce\xba\xe1",                                                   // truncated
            b"\xff",
            b"\x80",
        ];
        for sample in samples {
            let expected = std::str::from_utf8(sample).is_ok();
            for chunk in 1..=sample.len().max(1) {
                assert_eq!(
                    feed_in_chunks(sample, chunk).is_ok(),
                    expected,
                    "{sample:x?} in chunks of {chunk}"
                );
            }
        }
    }

    #[test]
    fn fails_as_soon_as_the_invalid_byte_arrives() {
        // Autobahn 6.4.1: "κόσμε" then 0xF4 0x90 (above U+10FFFF), then more.
        let mut validator = Validator::new();
        validator.feed("κόσμε".as_bytes()).unwrap();
        validator.feed(&[0xF4]).unwrap();
        assert_eq!(validator.feed(&[0x90]), Err(InvalidUtf8));
    }

    #[test]
    fn a_sequence_cut_at_the_end_of_the_message_is_invalid() {
        let mut validator = Validator::new();
        validator.feed(&[0xE2, 0x82]).unwrap();
        assert!(!validator.is_complete());
        assert_eq!(validator.finish(), Err(InvalidUtf8));
    }

    #[test]
    fn every_byte_value_after_each_lead_byte_matches_the_standard_library() {
        for lead in 0x80u8..=0xFF {
            for second in 0x00u8..=0xFF {
                let bytes = [lead, second, 0x80, 0x80];
                for len in 1..=4 {
                    let sample = &bytes[..len];
                    let expected = std::str::from_utf8(sample).is_ok();
                    assert_eq!(feed_in_chunks(sample, 1).is_ok(), expected, "{sample:x?}");
                }
            }
        }
    }
}
