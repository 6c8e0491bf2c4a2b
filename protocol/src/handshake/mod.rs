//! The opening handshake (RFC 6455 §4): [`server`] validates an upgrade request and writes the
//! answer; [`client`] writes the request and checks the answer. Both share the accept value.

pub mod client;
pub mod server;

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;

/// The GUID that §1.3 appends to the client's key before hashing.
pub const WEBSOCKET_GUID: &str = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

/// The only protocol version this crate speaks (§4.1, §4.4).
pub const WEBSOCKET_VERSION: &str = "13";

/// `Sec-WebSocket-Accept` for a `Sec-WebSocket-Key` (§4.2.2 item 5.4): the base64 of the
/// SHA-1 of the key (as sent, in base64) followed by [`WEBSOCKET_GUID`].
pub fn accept_value(key: &[u8]) -> String {
    let mut sha1 = sha1_smol::Sha1::new();
    sha1.update(key);
    sha1.update(WEBSOCKET_GUID.as_bytes());
    BASE64.encode(sha1.digest().bytes())
}

/// Encodes 16 random bytes chosen by the caller as a `Sec-WebSocket-Key` (§4.1).
pub fn key_from_bytes(nonce: [u8; 16]) -> String {
    BASE64.encode(nonce)
}

/// Whether `key` is base64 that decodes to exactly 16 bytes (§4.2.1 item 5).
pub fn is_valid_key(key: &[u8]) -> bool {
    key.len() == 24 && BASE64.decode(key).is_ok_and(|bytes| bytes.len() == 16)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accept_value_matches_the_rfc_example() {
        // RFC 6455 §1.3.
        assert_eq!(
            accept_value(b"dGhlIHNhbXBsZSBub25jZQ=="),
            "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
        );
    }

    #[test]
    fn key_must_decode_to_sixteen_bytes() {
        assert!(is_valid_key(b"dGhlIHNhbXBsZSBub25jZQ=="));
        assert!(!is_valid_key(b"dGhlIHNhbXBsZQ=="));
        assert!(!is_valid_key(b"not base64 at all!!!!!!!"));
        assert!(!is_valid_key(b""));
        assert_eq!(
            key_from_bytes(*b"the sample nonce"),
            "dGhlIHNhbXBsZSBub25jZQ=="
        );
    }
}
