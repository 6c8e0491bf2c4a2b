//! The server's handshake entry point: parse a request head, validate it as an upgrade, and
//! write whatever answer follows. Must never panic; `Partial` must consume nothing.
#![no_main]

use libfuzzer_sys::fuzz_target;
use protocol::handshake::server::{validate_request, write_accept, write_error};
use protocol::http::{parse_request, Limits};
use protocol::Status;

fuzz_target!(|data: &[u8]| {
    let limits = Limits {
        max_head_len: 4096,
        max_headers: 64,
    };
    let mut out = Vec::new();
    match parse_request(data, limits) {
        Ok(Status::Complete(request)) => {
            assert!(request.head_len <= data.len());
            match validate_request(&request) {
                Ok(upgrade) => {
                    write_accept(&mut out, &upgrade, upgrade.protocols.first().copied(), &[])
                }
                Err(error) => write_error(&mut out, error),
            }
        }
        Ok(Status::Partial) => assert!(data.len() < limits.max_head_len),
        Err(error) => {
            assert!(error.http_status().is_some());
            write_error(&mut out, error);
        }
    }
});
