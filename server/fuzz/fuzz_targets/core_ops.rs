//! The server core driven by arbitrary sequences of operations on in-memory sockets and
//! virtual time (see `server_fuzz::ops`). After each operation the core's invariants, the
//! server's byte stream to every client, the queue caps and every deadline are checked; at the
//! end everything must be closed and the assembly memory given back. Any broken rule panics.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    server_fuzz::ops::run(data);
});
