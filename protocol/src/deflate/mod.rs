//! The permessage-deflate extension (RFC 7692): negotiation, and the compressor and
//! decompressor a caller owns.
//!
//! | module | RFC 7692 | what it does |
//! | --- | --- | --- |
//! | [`negotiation`] | §5, §7.1 | offers, the server's choice and answer, the client's check of that answer |
//! | [`deflater`] | §7.2.1 | compress one message on its own, strip the `00 00 ff ff` tail, frame it with RSV1 |
//! | [`inflater`] | §7.2.2 | put the tail back and inflate, bounded by the message size limit |
//!
//! There is **no compression state per connection** in this crate. The [`Decoder`] only
//! reports that a message is compressed (RSV1 on its first frame, §6) and hands over its
//! payload, assembled if it was fragmented: the caller inflates it with an [`Inflater`] it owns,
//! one for a whole event loop when the peers agreed not to take over context
//! (`client_no_context_takeover` on a server). Likewise a [`Deflater`] compresses every message
//! on its own, so one compressed frame is valid for every peer that negotiated the extension
//! with a window at least as large: a broadcast is compressed once and shared.
//!
//! A server in a few lines:
//!
//! ```
//! use protocol::deflate::{Deflater, Inflater, ServerDeflateConfig};
//! use protocol::frame::{encode_compressed_frame, OpCode, Role};
//! use protocol::message::{Decoder, Event, Incoming};
//!
//! // The client offered `permessage-deflate; client_max_window_bits` (found in its request's
//! // headers by `Upgrade::negotiate_deflate`); the server agrees, and says so in its 101.
//! let offer = protocol::extensions::parse_list("permessage-deflate; client_max_window_bits");
//! let agreed = ServerDeflateConfig::default().accept(&offer).expect("acceptable offer");
//! assert_eq!(
//!     agreed.header_value(),
//!     "permessage-deflate; server_no_context_takeover; client_no_context_takeover"
//! );
//!
//! // Once per event loop, not per connection:
//! let mut inflater = Inflater::new();
//! let mut deflater = Deflater::new(agreed.window_bits_for(Role::Server));
//!
//! // A client's compressed "Hello" (RFC 7692 §7.2.3.1), masked.
//! let mut wire = Vec::new();
//! encode_compressed_frame(&mut wire, OpCode::Text, &[0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00], Some([1, 2, 3, 4]));
//!
//! let mut decoder = Decoder::new(Role::Server, 1 << 20).with_deflate(true);
//! let mut inflated = Vec::new();
//! let (_, incoming) = decoder.decode_incoming(&mut wire).unwrap();
//! let event = match incoming {
//!     Some(Incoming::Compressed(message)) => message.inflate(&mut inflater, 1 << 20, &mut inflated).unwrap(),
//!     Some(Incoming::Event(event)) => event,
//!     None => unreachable!("the frame is whole"),
//! };
//! assert_eq!(event, Event::Text("Hello"));
//!
//! // The answer, compressed once: these bytes can go to every receiver that negotiated it.
//! let mut frame = Vec::new();
//! deflater.encode_frame(&mut frame, OpCode::Text, b"Hello", None);
//! assert_eq!(frame, [0xc1, 0x07, 0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00]);
//! ```
//!
//! [`Decoder`]: crate::message::Decoder

pub mod deflater;
pub mod inflater;
pub mod negotiation;

pub use deflater::Deflater;
pub use inflater::Inflater;
pub use negotiation::{ClientMaxWindowBits, DeflateOffer, DeflateParameters, ServerDeflateConfig};

/// The extension's token in `Sec-WebSocket-Extensions` (§7).
pub const EXTENSION_NAME: &str = "permessage-deflate";

/// The empty stored block a sync flush ends with: removed by the sender (§7.2.1), put back by
/// the receiver (§7.2.2).
pub const TAIL: [u8; 4] = [0x00, 0x00, 0xff, 0xff];

/// The smallest and largest LZ77 window, as a power of two (§7.1.2).
pub const MIN_WINDOW_BITS: u8 = 8;
/// See [`MIN_WINDOW_BITS`]: 32 KiB, the default when nothing limits it.
pub const MAX_WINDOW_BITS: u8 = 15;
