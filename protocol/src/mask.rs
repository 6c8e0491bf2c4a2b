//! Masking (RFC 6455 §5.3): XOR of the payload with a 4-byte key, repeated.
//!
//! [`apply_mask`] is the fast path, eight bytes at a time on `u64` words (safe code that the
//! compiler vectorises); [`apply_mask_bytewise`] is the definition, kept to test the fast path
//! against. Both take the payload's `offset` within the frame, so that a payload that arrives in
//! pieces can be unmasked piece by piece.

/// XORs `buf` with `key`, as the bytes at `offset..offset + buf.len()` of a frame's payload.
pub fn apply_mask(buf: &mut [u8], key: [u8; 4], offset: usize) {
    let key = rotate_key(key, offset);
    let mut chunks = buf.chunks_exact_mut(8);
    let word_key = u64::from_ne_bytes([
        key[0], key[1], key[2], key[3], key[0], key[1], key[2], key[3],
    ]);
    for chunk in &mut chunks {
        let mut word = [0u8; 8];
        word.copy_from_slice(chunk);
        let masked = u64::from_ne_bytes(word) ^ word_key;
        chunk.copy_from_slice(&masked.to_ne_bytes());
    }
    // The tail starts at a multiple of 8 from the rotated start, so the key lines up again.
    for (index, byte) in chunks.into_remainder().iter_mut().enumerate() {
        *byte ^= key[index & 3];
    }
}

/// The definition of §5.3, one byte at a time: `transformed[i] = original[i] ^ key[i % 4]`.
pub fn apply_mask_bytewise(buf: &mut [u8], key: [u8; 4], offset: usize) {
    for (index, byte) in buf.iter_mut().enumerate() {
        *byte ^= key[(offset + index) & 3];
    }
}

fn rotate_key(key: [u8; 4], offset: usize) -> [u8; 4] {
    let mut rotated = key;
    rotated.rotate_left(offset & 3);
    rotated
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fast_path_matches_bytewise_at_every_length_alignment_and_offset() {
        let key = [0x37, 0xfa, 0x21, 0x3d];
        let source: Vec<u8> = (0..200u32).map(|i| (i * 7 + 3) as u8).collect();
        for length in 0..=130 {
            for alignment in 0..16 {
                for offset in 0..4 {
                    let mut fast = source[alignment..alignment + length].to_vec();
                    let mut slow = fast.clone();
                    // Unmask in place inside a larger buffer so the slice really is misaligned.
                    let mut backing = source.clone();
                    apply_mask(&mut backing[alignment..alignment + length], key, offset);
                    apply_mask(&mut fast, key, offset);
                    apply_mask_bytewise(&mut slow, key, offset);
                    assert_eq!(fast, slow, "length {length} offset {offset}");
                    assert_eq!(
                        &backing[alignment..alignment + length],
                        &slow[..],
                        "length {length} alignment {alignment} offset {offset}"
                    );
                }
            }
        }
    }

    #[test]
    fn masking_twice_restores_the_payload() {
        let original = b"Hello, WebSocket".to_vec();
        let mut data = original.clone();
        apply_mask(&mut data, [1, 2, 3, 4], 0);
        assert_ne!(data, original);
        apply_mask(&mut data, [1, 2, 3, 4], 0);
        assert_eq!(data, original);
    }

    #[test]
    fn rfc_example_masked_hello() {
        // RFC 6455 §5.7: "Hello" masked with 37 fa 21 3d.
        let mut data = b"Hello".to_vec();
        apply_mask(&mut data, [0x37, 0xfa, 0x21, 0x3d], 0);
        assert_eq!(data, [0x7f, 0x9f, 0x4d, 0x51, 0x58]);
    }

    #[test]
    fn unmasking_in_pieces_equals_unmasking_at_once() {
        let key = [9, 8, 7, 6];
        let original: Vec<u8> = (0..100).collect();
        let mut whole = original.clone();
        apply_mask(&mut whole, key, 0);
        for cut in 0..original.len() {
            let mut pieces = original.clone();
            let (first, second) = pieces.split_at_mut(cut);
            apply_mask(first, key, 0);
            apply_mask(second, key, cut);
            assert_eq!(pieces, whole, "cut at {cut}");
        }
    }
}
