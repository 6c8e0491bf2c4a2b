//! RFC 6455 (the WebSocket protocol) written by hand and sans-IO.
//!
//! Bytes in, events and bytes out: this crate never touches a socket, a clock or a random
//! number generator. Whatever needs one (a client's `Sec-WebSocket-Key`, its masking keys) is
//! supplied by the caller. Both roles are served: a server decodes masked client frames and
//! writes unmasked ones; a client does the opposite.
//!
//! The pieces, one concept a module, named as the RFC names them:
//!
//! | module | RFC 6455 | what it does |
//! | --- | --- | --- |
//! | [`http`] | §4.1, §4.2.1 | parse an HTTP/1.1 request or response head, `Partial` until complete |
//! | [`handshake`] | §4 | validate an upgrade request, build the 101 and error responses (server); build the request and check the 101 (client) |
//! | [`url`] | §3 | parse a `ws://` URL |
//! | [`frame`] | §5.2 | decode and encode frame headers |
//! | [`mask`] | §5.3 | XOR a payload with its masking key |
//! | [`message`] | §5.4, §5.5, §7 | assemble frames into messages and control events, enforce every rule |
//! | [`close`] | §5.5.1, §7.4 | close codes and close frame payloads |
//! | [`utf8`] | §8.1 | incremental, fail-fast UTF-8 validation |
//! | [`extensions`] | §9.1 | parse `Sec-WebSocket-Extensions`: several lines, several offers, quoted values |
//! | [`deflate`] | RFC 7692 | permessage-deflate: negotiation, and a deflater and inflater the caller owns |
//!
//! A server's receive path in a few lines:
//!
//! ```
//! use protocol::message::{Decoder, Event};
//! use protocol::frame::{Role, OpCode, encode_frame};
//!
//! // A masked text frame "Hi" as a client sends it.
//! let mut wire = Vec::new();
//! encode_frame(&mut wire, true, OpCode::Text, b"Hi", Some([1, 2, 3, 4]));
//!
//! let wire_len = wire.len();
//! let mut decoder = Decoder::new(Role::Server, 1 << 20);
//! let (consumed, event) = decoder.decode(&mut wire).unwrap();
//! assert_eq!(consumed, wire_len);
//! match event {
//!     Some(Event::Text(text)) => assert_eq!(text, "Hi"),
//!     other => panic!("unexpected {other:?}"),
//! }
//! ```
#![deny(missing_docs)]
#![forbid(unsafe_code)]

pub mod close;
pub mod deflate;
mod error;
pub mod extensions;
pub mod frame;
pub mod handshake;
pub mod http;
pub mod mask;
pub mod message;
pub mod url;
pub mod utf8;

pub use error::Error;

/// The README's examples, compiled and run as doctests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;

/// The outcome of parsing input that may be incomplete.
///
/// Running out of input is not an error: it is [`Status::Partial`], and the caller calls again
/// with more bytes. Nothing is consumed by a `Partial` result.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status<T> {
    /// A complete value was parsed.
    Complete(T),
    /// The input ends before the value does; call again with more bytes.
    Partial,
}

impl<T> Status<T> {
    /// Whether this is [`Status::Partial`].
    pub fn is_partial(&self) -> bool {
        matches!(self, Status::Partial)
    }

    /// The complete value, or `None` when partial.
    pub fn complete(self) -> Option<T> {
        match self {
            Status::Complete(value) => Some(value),
            Status::Partial => None,
        }
    }
}
