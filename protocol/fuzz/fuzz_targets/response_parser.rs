//! The client's handshake entry point: check a server's answer to a fixed request.
#![no_main]

use libfuzzer_sys::fuzz_target;
use protocol::handshake::client::ClientHandshake;
use protocol::Status;

fuzz_target!(|data: &[u8]| {
    let client = ClientHandshake {
        host: "127.0.0.1:8080",
        target: "/",
        key: *b"the sample nonce",
        protocols: &["chat"],
        extra_headers: &[],
    };
    if let Ok(Status::Complete(accepted)) = client.read_response(data) {
        assert!(accepted.head_len <= data.len());
    }
});
