//! The frame decoder (`Decoder::decode`) as a server or a client: the first byte's low bit picks
//! the role (as in `inflate_message`), the rest of it the size of the reads the input is cut
//! into, as a socket would. Must never panic, and must never buffer more than its message limit.
#![no_main]

use libfuzzer_sys::fuzz_target;
use protocol::frame::Role;
use protocol::message::Decoder;

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
    let mut decoder = Decoder::new(role, MAX_MESSAGE);
    let mut pending = Vec::new();
    for read in data.chunks(read_size) {
        pending.extend_from_slice(read);
        let mut start = 0;
        loop {
            match decoder.decode(&mut pending[start..]) {
                Ok((consumed, event)) => {
                    start += consumed;
                    if event.is_none() {
                        break;
                    }
                }
                Err(error) => {
                    assert!(error.close_code().is_some());
                    return;
                }
            }
        }
        pending.drain(..start);
        // What the caller keeps is at most a cut header or control frame.
        assert!(pending.len() <= 14 + 125);
        assert!(decoder.buffered_len() <= MAX_MESSAGE);
    }
});
