//! The permessage-deflate receive path: frames through `Decoder::decode_incoming` with the
//! extension negotiated, compressed messages inflated with one shared `Inflater`, as a server
//! or a client (the first byte's low bit picks the role, the rest of it the read size). Must
//! never panic, never buffer more than its limits, and never inflate past the message limit.
#![no_main]

use libfuzzer_sys::fuzz_target;
use protocol::deflate::Inflater;
use protocol::frame::Role;
use protocol::message::{Decoder, Incoming};

const MAX_MESSAGE: usize = 64 * 1024;

fuzz_target!(|data: &[u8]| {
    let Some((&first, data)) = data.split_first() else {
        return;
    };
    let role = if first & 1 == 0 {
        Role::Server
    } else {
        Role::Client
    };
    let read_size = usize::from(first >> 1).max(1);
    let mut decoder = Decoder::new(role, MAX_MESSAGE).with_deflate(true);
    let mut inflater = Inflater::new();
    let mut inflated = Vec::new();
    let mut pending = Vec::new();
    for read in data.chunks(read_size) {
        pending.extend_from_slice(read);
        let mut start = 0;
        loop {
            match decoder.decode_incoming(&mut pending[start..]) {
                Ok((consumed, incoming)) => {
                    start += consumed;
                    match incoming {
                        None => break,
                        Some(Incoming::Event(_)) => {}
                        Some(Incoming::Compressed(message)) => {
                            match message.inflate(&mut inflater, MAX_MESSAGE, &mut inflated) {
                                Ok(event) => {
                                    assert!(event
                                        .data()
                                        .is_some_and(|data| data.len() <= MAX_MESSAGE));
                                }
                                Err(error) => {
                                    assert!(error.close_code().is_some());
                                    return;
                                }
                            }
                            // Room for one byte past the limit at most, plus the first chunk.
                            assert!(inflated.capacity() <= 2 * MAX_MESSAGE + 4096);
                        }
                    }
                }
                Err(error) => {
                    assert!(error.close_code().is_some());
                    return;
                }
            }
        }
        pending.drain(..start);
        assert!(pending.len() <= 14 + 125);
        assert!(decoder.buffered_len() <= MAX_MESSAGE + MAX_MESSAGE / 64 + 64);
    }
});
