//! The probe message: who sent it, which one it is, and when it was *meant* to be sent.
//!
//! ```text
//! LG1 <run:8 hex> <sender:8 hex> <sequence:16 hex> <intended send ns:16 hex> ....padding
//! ```
//!
//! Text, so that it passes through servers that only relay text; fixed width, so that parsing
//! is a few table lookups. The run id tells this run's probes from another loadgen's.

/// Bytes before the padding.
pub const PROBE_HEADER_LEN: usize = 56;

const MARKER: &[u8; 4] = b"LG1 ";

/// What a probe says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Probe {
    /// The run that sent it.
    pub run: u32,
    /// The sending client's sender index.
    pub sender: u32,
    /// The sender's message number, from 0.
    pub sequence: u64,
    /// When it was meant to be sent, in nanoseconds of the run's clock.
    pub intended_ns: u64,
}

impl Probe {
    /// Writes the probe into `out`, padded with `.` to `out.len()` (at least
    /// [`PROBE_HEADER_LEN`]).
    pub fn write(&self, out: &mut [u8]) {
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
    pub fn read(message: &[u8]) -> Option<Probe> {
        if message.len() < PROBE_HEADER_LEN || &message[..4] != MARKER {
            return None;
        }
        Some(Probe {
            run: read_hex(&message[4..12])? as u32,
            sender: read_hex(&message[13..21])? as u32,
            sequence: read_hex(&message[22..38])?,
            intended_ns: read_hex(&message[39..55])?,
        })
    }
}

fn write_hex(out: &mut [u8], mut value: u64) {
    for byte in out.iter_mut().rev() {
        *byte = b"0123456789abcdef"[(value & 0xf) as usize];
        value >>= 4;
    }
}

fn read_hex(digits: &[u8]) -> Option<u64> {
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
