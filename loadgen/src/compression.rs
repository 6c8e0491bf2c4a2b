//! permessage-deflate (RFC 7692) on the loadgen's side: what a worker owns once for all its
//! clients. The offer is a browser's (`permessage-deflate; client_max_window_bits`); what comes
//! back compressed is inflated, and probes go out compressed as a browser's messages do.
//!
//! Per worker, not per client: one inflater for every server that compresses each message on
//! its own (`server_no_context_takeover`), one deflater per window size (the client compresses
//! each message on its own, whatever the server allows), and the scratch buffers. A client
//! whose server takes over context keeps an inflater of its own (`client.rs`).

use protocol::deflate::{Deflater, Inflater, MAX_WINDOW_BITS, MIN_WINDOW_BITS};

/// A worker's compression state and scratch space.
#[derive(Debug, Default)]
pub(crate) struct Codec {
    /// Inflates messages of servers that do not take over context.
    pub inflater: Inflater,
    /// Where a message is inflated to.
    pub inflated: Vec<u8>,
    /// A message before it is compressed.
    pub plain: Vec<u8>,
    /// A message after it is compressed.
    pub compressed: Vec<u8>,
    /// Deflaters by window bits (index = bits), made when first needed.
    deflaters: Vec<Option<Deflater>>,
}

impl Codec {
    /// Compresses `self.plain` into `self.compressed` (tail removed, RFC 7692 §7.2.1) with a
    /// window of at most `2^window_bits` bytes.
    pub(crate) fn compress_plain(&mut self, window_bits: u8) {
        let bits = window_bits.clamp(MIN_WINDOW_BITS, MAX_WINDOW_BITS) as usize;
        if self.deflaters.len() <= bits {
            self.deflaters.resize_with(bits + 1, || None);
        }
        let deflater = self.deflaters[bits].get_or_insert_with(|| Deflater::new(bits as u8));
        self.compressed.clear();
        deflater.compress(&self.plain, &mut self.compressed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_is_compressed_inflates_back_at_every_window() {
        let mut codec = Codec::default();
        for bits in [8, 9, 12, 15] {
            codec.plain.clear();
            codec.plain.extend_from_slice(
                b"LG1 00000001 00000002 0000000000000003 0000000000000004 ........",
            );
            codec.compress_plain(bits);
            let mut out = Vec::new();
            codec
                .inflater
                .inflate(&codec.compressed, 1 << 20, &mut out)
                .unwrap();
            assert_eq!(out, codec.plain, "window {bits}");
        }
    }
}
