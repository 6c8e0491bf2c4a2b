//! The compact form of the big arrays in a report's `merge` section (per receiver, per message,
//! per sender): unsigned LEB128 varints, compressed with raw DEFLATE (RFC 1951) as
//! permessage-deflate sends a message (RFC 7692 §7.2.1: the `00 00 ff ff` tail removed), in
//! base64. A 1,000-client run's books, a million counts that are mostly alike, shrink to a few
//! kilobytes; a pretty-printed JSON array of them was 800,000 lines.

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use protocol::deflate::{Deflater, Inflater, MAX_WINDOW_BITS};

/// The most bytes a packed array may inflate to (a bound, not a size anyone reaches: 50
/// million messages at 10 bytes each is half of it).
const MAX_UNPACKED_BYTES: usize = 1 << 30;

/// Packs unsigned numbers.
pub(crate) fn pack(values: impl IntoIterator<Item = u64>) -> String {
    let mut bytes = Vec::new();
    for mut value in values {
        loop {
            let low = (value & 0x7f) as u8;
            value >>= 7;
            if value == 0 {
                bytes.push(low);
                break;
            }
            bytes.push(low | 0x80);
        }
    }
    let mut compressed = Vec::new();
    Deflater::new(MAX_WINDOW_BITS).compress(&bytes, &mut compressed);
    BASE64.encode(compressed)
}

/// Unpacks what [`pack`] made; an error says what is wrong with the text.
pub(crate) fn unpack(text: &str) -> Result<Vec<u64>, String> {
    let compressed = BASE64
        .decode(text)
        .map_err(|error| format!("not base64: {error}"))?;
    let mut bytes = Vec::new();
    Inflater::new()
        .inflate(&compressed, MAX_UNPACKED_BYTES, &mut bytes)
        .map_err(|error| format!("not DEFLATE data: {error}"))?;
    let mut values = Vec::new();
    let (mut value, mut shift) = (0u64, 0u32);
    for byte in bytes {
        if shift > 63 || (shift == 63 && byte & 0x7f > 1) {
            return Err("a number longer than 64 bits".into());
        }
        value |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            values.push(value);
            (value, shift) = (0, 0);
        } else {
            shift += 7;
        }
    }
    if shift != 0 {
        return Err("the last number is cut off".into());
    }
    Ok(values)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_come_back_as_they_went() {
        let values = [
            0,
            1,
            127,
            128,
            300,
            16_383,
            16_384,
            u64::from(u32::MAX),
            u64::MAX,
        ];
        assert_eq!(unpack(&pack(values)).unwrap(), values);
        assert_eq!(unpack(&pack([])).unwrap(), Vec::<u64>::new());
    }

    #[test]
    fn alike_rows_pack_small() {
        let rows = (0..1_000).flat_map(|_| std::iter::repeat_n(8, 1_000));
        assert!(pack(rows).len() < 20_000);
    }

    #[test]
    fn bad_text_is_an_error_not_a_panic() {
        assert!(unpack("not base64!").unwrap_err().contains("base64"));
        assert!(unpack(&BASE64.encode([0xff, 0xff])).is_err());
        let mut cut = Vec::new();
        Deflater::new(MAX_WINDOW_BITS).compress(&[0x80], &mut cut);
        assert!(unpack(&BASE64.encode(cut)).unwrap_err().contains("cut off"));
        let mut long = Vec::new();
        Deflater::new(MAX_WINDOW_BITS).compress(&[0xff; 11], &mut long);
        assert!(unpack(&BASE64.encode(long))
            .unwrap_err()
            .contains("64 bits"));
    }
}
