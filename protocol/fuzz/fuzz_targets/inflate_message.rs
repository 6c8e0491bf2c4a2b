//! The permessage-deflate receive path: frames through `Decoder::decode_incoming` with the
//! extension negotiated, compressed messages inflated with one shared `Inflater`, as a server
//! or a client (the first byte picks the role and the read size: `protocol_fuzz`). Must never
//! panic, never buffer more than its limits, and never inflate past the message limit.
#![no_main]

use libfuzzer_sys::fuzz_target;
use protocol::deflate::Inflater;
use protocol::message::{Decoder, Incoming};
use protocol_fuzz::{feed, split_input, Decoded};

const MAX_MESSAGE: usize = 64 * 1024;

fuzz_target!(|data: &[u8]| {
    let Some((role, read_size, data)) = split_input(data) else {
        return;
    };
    let mut decoder = Decoder::new(role, MAX_MESSAGE).with_deflate(true);
    let mut inflater = Inflater::new();
    let mut inflated = Vec::new();
    // A compressed message may pass the limit by a little before it is inflated.
    let max_buffered = MAX_MESSAGE + MAX_MESSAGE / 64 + 64;
    feed(
        &mut decoder,
        data,
        read_size,
        max_buffered,
        |decoder, bytes| match decoder.decode_incoming(bytes) {
            Ok((consumed, None)) => Decoded::Waiting(consumed),
            Ok((consumed, Some(Incoming::Event(_)))) => Decoded::Event(consumed),
            Ok((consumed, Some(Incoming::Compressed(message)))) => {
                match message.inflate(&mut inflater, MAX_MESSAGE, &mut inflated) {
                    Ok(event) => {
                        assert!(event.data().is_some_and(|data| data.len() <= MAX_MESSAGE));
                    }
                    Err(error) => {
                        assert!(error.close_code().is_some());
                        return Decoded::Failed;
                    }
                }
                // Room for one byte past the limit at most, plus the first chunk.
                assert!(inflated.capacity() <= 2 * MAX_MESSAGE + 4096);
                Decoded::Event(consumed)
            }
            Err(error) => {
                assert!(error.close_code().is_some());
                Decoded::Failed
            }
        },
    );
});
