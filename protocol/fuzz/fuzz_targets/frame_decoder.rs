//! The frame decoder (`Decoder::decode`) as a server or a client: the first byte picks the role
//! and the size of the reads the input is cut into, as a socket would (`protocol_fuzz`). Must
//! never panic, and must never buffer more than its message limit.
#![no_main]

use libfuzzer_sys::fuzz_target;
use protocol::message::Decoder;
use protocol_fuzz::{feed, split_input, Decoded};

const MAX_MESSAGE: usize = 64 * 1024;

fuzz_target!(|data: &[u8]| {
    let Some((role, read_size, data)) = split_input(data) else {
        return;
    };
    let mut decoder = Decoder::new(role, MAX_MESSAGE);
    feed(
        &mut decoder,
        data,
        read_size,
        MAX_MESSAGE,
        |decoder, bytes| match decoder.decode(bytes) {
            Ok((consumed, Some(_))) => Decoded::Event(consumed),
            Ok((consumed, None)) => Decoded::Waiting(consumed),
            Err(error) => {
                assert!(error.close_code().is_some());
                Decoded::Failed
            }
        },
    );
});
