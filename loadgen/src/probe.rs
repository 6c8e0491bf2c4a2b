//! The probe message: who sent it, which one it is, and when it was *meant* to be sent.
//!
//! ```text
//! LG1 <run:8 hex> <sender:8 hex> <sequence:16 hex> <intended send ns:16 hex> ....padding
//! ```
//!
//! Text, so that it passes through servers that only relay text; fixed width, so that parsing
//! is a few word operations. The run id tells this run's probes from another loadgen's.
//!
//! Every character of a probe (letters, hex digits, spaces, dots) passes JSON escaping and most
//! envelopes untouched, so [`Probes`] finds probes anywhere in a message: at its start, inside
//! `{"text":"..."}`, several in one message separated by newlines or simply concatenated, in
//! text or binary messages. Finding them allocates nothing.

/// Bytes before the padding.
pub(crate) const PROBE_HEADER_LEN: usize = 56;

const MARKER: &[u8; 4] = b"LG1 ";

/// What a probe says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Probe {
    /// The run that sent it.
    pub run: u32,
    /// The sending client's sender index.
    pub sender: u32,
    /// The sender's message number, from 0.
    pub sequence: u64,
    /// When it was meant to be sent, in nanoseconds from the schedule's start (shared by
    /// every process of a run that was started with the same `--start-at`).
    pub intended_ns: u64,
}

impl Probe {
    /// Writes the probe into `out`, padded with `.` to `out.len()` (at least
    /// [`PROBE_HEADER_LEN`]).
    pub(crate) fn write(&self, out: &mut [u8]) {
        debug_assert!(out.len() >= PROBE_HEADER_LEN);
        out[..4].copy_from_slice(MARKER);
        write_hex(&mut out[4..12], u64::from(self.run));
        out[12] = b' ';
        write_hex(&mut out[13..21], u64::from(self.sender));
        out[21] = b' ';
        write_hex(&mut out[22..38], self.sequence);
        out[38] = b' ';
        write_hex(&mut out[39..55], self.intended_ns);
        out[55] = b' ';
        out[PROBE_HEADER_LEN..].fill(b'.');
    }

    /// Reads a probe, or `None` if the message is not one (a welcome text, a join notice).
    pub(crate) fn read(message: &[u8]) -> Option<Probe> {
        if message.len() < PROBE_HEADER_LEN || &message[..4] != MARKER {
            return None;
        }
        let eight = |at: usize| {
            let mut digits = [0u8; 8];
            digits.copy_from_slice(&message[at..at + 8]);
            read_hex8(digits)
        };
        let (run, bad_run) = eight(4);
        let (sender, bad_sender) = eight(13);
        let (sequence_high, bad_sequence_high) = eight(22);
        let (sequence_low, bad_sequence_low) = eight(30);
        let (intended_high, bad_intended_high) = eight(39);
        let (intended_low, bad_intended_low) = eight(47);
        let bad = bad_run
            | bad_sender
            | bad_sequence_high
            | bad_sequence_low
            | bad_intended_high
            | bad_intended_low;
        if bad != 0 || message[12] != b' ' || message[21] != b' ' || message[38] != b' ' {
            return None;
        }
        Some(Probe {
            run: run as u32,
            sender: sender as u32,
            sequence: sequence_high << 32 | sequence_low,
            intended_ns: intended_high << 32 | intended_low,
        })
    }
}

/// Every probe in a message, in order, wherever it is. Bytes that look like the marker but do
/// not hold a well-formed probe are skipped.
#[derive(Debug, Clone)]
pub(crate) struct Probes<'a> {
    message: &'a [u8],
    position: usize,
}

impl<'a> Probes<'a> {
    /// The probes of `message`.
    pub(crate) fn new(message: &'a [u8]) -> Self {
        Probes {
            message,
            position: 0,
        }
    }
}

impl Iterator for Probes<'_> {
    type Item = Probe;

    fn next(&mut self) -> Option<Probe> {
        let message = self.message;
        while self.position + PROBE_HEADER_LEN <= message.len() {
            let rest = &message[self.position..message.len() - PROBE_HEADER_LEN + 1];
            let offset = rest.iter().position(|&byte| byte == MARKER[0])?;
            let start = self.position + offset;
            match Probe::read(&message[start..]) {
                Some(probe) => {
                    self.position = start + PROBE_HEADER_LEN;
                    return Some(probe);
                }
                None => self.position = start + 1,
            }
        }
        None
    }
}

fn write_hex(out: &mut [u8], mut value: u64) {
    for byte in out.iter_mut().rev() {
        *byte = b"0123456789abcdef"[(value & 0xf) as usize];
        value >>= 4;
    }
}

/// The value of 8 or 16 lowercase hex digits, or `None` if any byte is not one.
#[cfg(test)]
fn read_hex(digits: &[u8]) -> Option<u64> {
    digits.chunks_exact(8).try_fold(0u64, |value, eight| {
        let (eight, bad) = read_hex8(eight.try_into().ok()?);
        (bad == 0).then_some(value << 32 | eight)
    })
}

/// The value of 8 lowercase hex digits, and a word that is not 0 if any byte is not one (the
/// value is then meaningless): the 8 bytes are checked and converted together, as the bytes of
/// one `u64` (first digit in the lowest byte). No branch, so that a probe's six fields are
/// judged by one.
fn read_hex8(digits: [u8; 8]) -> (u64, u64) {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = ONES * 0x80;
    let x = u64::from_le_bytes(digits);
    // If every byte is below 0x80 (else `x & HIGH` says it is bad), adding up to 0x7f to each
    // carries into no other byte: bit 7 of a byte of `at_least(low)` says the byte is `low`
    // or more, of `above(high)` that it is more than `high`.
    let at_least = |low: u8| x.wrapping_add(ONES * u64::from(0x80 - low));
    let above = |high: u8| x.wrapping_add(ONES * u64::from(0x7f - high));
    let decimal = at_least(b'0') & !above(b'9') & HIGH;
    let letter = at_least(b'a') & !above(b'f') & HIGH;
    let bad = (x & HIGH) | (HIGH & !(decimal | letter));
    // '0'..'9' end in 0..9, 'a'..'f' in 1..6: add 9 to letters. Then pack the nibbles: each
    // multiplication adds a field, shifted up by its width, to the next field up (no two
    // overlap), which then holds the pair, first digits on top; the shift brings it down.
    let nibbles = (x & (ONES * 0x0f)) + (letter >> 7) * 9;
    let bytes = (nibbles.wrapping_mul(1 + (16 << 8)) >> 8) & 0x00ff_00ff_00ff_00ff;
    let halves = (bytes.wrapping_mul(1 + (256 << 16)) >> 16) & 0x0000_ffff_0000_ffff;
    (halves.wrapping_mul(1 + (65_536 << 32)) >> 32, bad)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_probe_reads_back_what_was_written_at_any_payload_size() {
        let probe = Probe {
            run: 0xdead_beef,
            sender: 7,
            sequence: 123_456_789,
            intended_ns: u64::MAX - 5,
        };
        for size in [PROBE_HEADER_LEN, 64, 1000] {
            let mut buffer = vec![0u8; size];
            probe.write(&mut buffer);
            assert!(std::str::from_utf8(&buffer).is_ok());
            assert_eq!(Probe::read(&buffer), Some(probe));
        }
    }

    fn probe(sender: u32, sequence: u64) -> Probe {
        Probe {
            run: 0x1234_5678,
            sender,
            sequence,
            intended_ns: 1_000_000 + sequence,
        }
    }

    fn written(probe: Probe, len: usize) -> Vec<u8> {
        let mut buffer = vec![0u8; len];
        probe.write(&mut buffer);
        buffer
    }

    fn found(message: &[u8]) -> Vec<Probe> {
        Probes::new(message).collect()
    }

    #[test]
    fn a_message_that_is_one_probe_holds_one() {
        assert_eq!(found(&written(probe(1, 2), 64)), vec![probe(1, 2)]);
        assert_eq!(
            found(&written(probe(1, 2), PROBE_HEADER_LEN)),
            vec![probe(1, 2)]
        );
    }

    #[test]
    fn probes_separated_by_newlines_are_all_found() {
        let mut message = written(probe(1, 0), 64);
        for sequence in 1..5 {
            message.push(b'\n');
            message.extend_from_slice(&written(probe(1, sequence), 64));
        }
        assert_eq!(
            found(&message),
            (0..5).map(|k| probe(1, k)).collect::<Vec<_>>()
        );
    }

    #[test]
    fn probes_simply_concatenated_are_all_found() {
        let mut message = Vec::new();
        for sequence in 0..3 {
            message.extend_from_slice(&written(probe(2, sequence), PROBE_HEADER_LEN));
        }
        message.extend_from_slice(&written(probe(3, 9), 70));
        assert_eq!(
            found(&message),
            vec![probe(2, 0), probe(2, 1), probe(2, 2), probe(3, 9)]
        );
    }

    #[test]
    fn a_probe_inside_a_json_envelope_is_found() {
        let text = String::from_utf8(written(probe(4, 5), 64)).unwrap();
        let envelope = format!(r#"{{"type":"chat","user":"LG1 fan","text":"{text}"}}"#);
        assert_eq!(found(envelope.as_bytes()), vec![probe(4, 5)]);
        // JSON inside a JSON string: the probe's characters survive escaping.
        let escaped = serde_json::to_string(&envelope).unwrap();
        let outer = format!(r#"{{"data":{escaped}}}"#);
        assert_eq!(found(outer.as_bytes()), vec![probe(4, 5)]);
    }

    #[test]
    fn probes_in_binary_messages_among_other_bytes_are_found() {
        let mut message = vec![0u8, 0xff, b'L', b'G', 0x80];
        message.extend_from_slice(&written(probe(6, 7), 60));
        message.extend_from_slice(&[0xfe, b'L', b'G', b'1', b' ', 0]);
        message.extend_from_slice(&written(probe(6, 8), 56));
        assert_eq!(found(&message), vec![probe(6, 7), probe(6, 8)]);
    }

    #[test]
    fn a_probe_cut_short_is_not_found() {
        let message = written(probe(1, 1), 64);
        for cut in 0..PROBE_HEADER_LEN {
            assert!(found(&message[..cut]).is_empty(), "cut at {cut}");
        }
    }

    /// The digit-by-digit reading `read_hex` replaced, to check it against.
    fn read_hex_plainly(digits: &[u8]) -> Option<u64> {
        let mut value = 0u64;
        for &digit in digits {
            let nibble = match digit {
                b'0'..=b'9' => digit - b'0',
                b'a'..=b'f' => digit - b'a' + 10,
                _ => return None,
            };
            value = (value << 4) | u64::from(nibble);
        }
        Some(value)
    }

    #[test]
    fn hex_reads_as_digit_by_digit_whatever_the_bytes() {
        let mut bases: Vec<Vec<u8>> = vec![
            b"0123456789abcdef".to_vec(),
            b"fedcba9876543210".to_vec(),
            b"0000000000000000".to_vec(),
            b"ffffffffffffffff".to_vec(),
            b"9a9a9a9a09af90fa".to_vec(),
        ];
        let mut state = 0x9e37_79b9_7f4a_7c15u64;
        let mut random = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        for _ in 0..200 {
            let mut base = vec![0u8; 16];
            write_hex(&mut base, random());
            bases.push(base);
        }
        // Several bytes off at once, around the edges of the digit ranges.
        let edges = b"/09:`af{gAF\x7f\x80\xff\x00";
        for _ in 0..100_000 {
            let mut eight = [0u8; 8];
            let choice = random();
            for (at, byte) in eight.iter_mut().enumerate() {
                *byte = edges[(choice >> (at * 4)) as usize % edges.len()];
            }
            assert_eq!(read_hex(&eight), read_hex_plainly(&eight), "{eight:?}");
        }
        for base in &bases {
            for len in [8, 16] {
                let digits = &base[..len];
                assert_eq!(read_hex(digits), read_hex_plainly(digits));
                assert!(read_hex(digits).is_some());
                // Every byte value in every place: only the 16 digits read.
                for at in 0..len {
                    for byte in 0..=255u8 {
                        let mut changed = digits.to_vec();
                        changed[at] = byte;
                        assert_eq!(
                            read_hex(&changed),
                            read_hex_plainly(&changed),
                            "{changed:?}"
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn a_probe_with_any_byte_changed_reads_as_digit_by_digit() {
        let plainly = |message: &[u8]| -> Option<Probe> {
            if message.len() < PROBE_HEADER_LEN || &message[..4] != MARKER {
                return None;
            }
            Some(Probe {
                run: read_hex_plainly(&message[4..12])? as u32,
                sender: read_hex_plainly(&message[13..21])? as u32,
                sequence: read_hex_plainly(&message[22..38])?,
                intended_ns: read_hex_plainly(&message[39..55])?,
            })
            .filter(|_| message[12] == b' ' && message[21] == b' ' && message[38] == b' ')
        };
        let message = written(
            Probe {
                run: 0x89ab_cdef,
                sender: 0x0123_4567,
                sequence: 0xfedc_ba98_7654_3210,
                intended_ns: 0x0f1e_2d3c_4b5a_6978,
            },
            64,
        );
        for at in 0..message.len() {
            for byte in 0..=255u8 {
                let mut changed = message.clone();
                changed[at] = byte;
                assert_eq!(Probe::read(&changed), plainly(&changed), "{at}: {byte}");
            }
        }
    }

    #[test]
    fn other_messages_are_not_probes() {
        assert_eq!(Probe::read(b"welcome to the room"), None);
        assert_eq!(Probe::read(&[b'x'; 64]), None);
        let mut buffer = [0u8; 64];
        Probe {
            run: 1,
            sender: 2,
            sequence: 3,
            intended_ns: 4,
        }
        .write(&mut buffer);
        buffer[30] = b'z';
        assert_eq!(Probe::read(&buffer), None);
    }
}
