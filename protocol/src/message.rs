//! Message assembly (RFC 6455 §5.4, §5.5, §7): frames in, messages and control events out.
//!
//! [`Decoder`] is the receive side of one connection, in either role. It is fed the bytes the
//! caller read and hands back one [`Event`] at a time:
//!
//! - An unfragmented data frame that is whole in the input is unmasked **in place** and handed
//!   back as a slice of the caller's buffer: no copy.
//! - A fragmented message, or a frame cut by the end of the input, is unmasked and appended to
//!   the decoder's own buffer as its bytes arrive. The maximum message size is checked against
//!   the lengths announced in the headers **before** a byte is buffered (1009), and a text
//!   message's UTF-8 is checked as each byte arrives, so an invalid sequence is found at once
//!   (1007), not when the message ends.
//! - Control frames may come between the fragments of a message (§5.4) and are returned as
//!   they come. A control frame cut by the end of the input is left unconsumed (at most 131
//!   bytes), like a cut frame header.
//!
//! - With permessage-deflate negotiated ([`Decoder::with_deflate`], RFC 7692), a message whose
//!   first frame has RSV1 is not inflated here: [`Decoder::decode_incoming`] hands back its
//!   compressed payload ([`Incoming::Compressed`]), lent from the input when it came whole in
//!   one frame and assembled otherwise, and the caller inflates it with the
//!   [`Inflater`] it owns ([`CompressedMessage::inflate`]). The
//!   decoder keeps no compression state: one inflater serves a whole event loop.
//!
//! The caller's loop: call [`Decoder::decode`] (or [`Decoder::decode_incoming`]) on the
//! unconsumed bytes until it returns no event; keep the unconsumed rest (a cut header or
//! control frame) for the next read.

use crate::close::CloseFrame;
use crate::deflate::Inflater;
use crate::frame::{decode_header_with, FrameHeader, OpCode, Role};
use crate::mask::apply_mask;
use crate::utf8::Validator;
use crate::{utf8, Error, Status};

/// One thing a peer said.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event<'a> {
    /// A complete text message, checked to be UTF-8 (§5.6).
    Text(&'a str),
    /// A complete binary message (§5.6).
    Binary(&'a [u8]),
    /// A ping (§5.5.2): answer with a pong carrying the same payload.
    Ping(&'a [u8]),
    /// A pong (§5.5.3).
    Pong(&'a [u8]),
    /// A close frame (§5.5.1), its payload checked. The decoder ignores everything after it.
    Close(CloseFrame<'a>),
}

impl<'a> Event<'a> {
    /// The payload of a data message (text or binary), `None` for control frames.
    pub fn data(&self) -> Option<&'a [u8]> {
        match *self {
            Event::Text(text) => Some(text.as_bytes()),
            Event::Binary(bytes) => Some(bytes),
            Event::Ping(_) | Event::Pong(_) | Event::Close(_) => None,
        }
    }
}

/// What [`Decoder::decode_incoming`] hands back: an [`Event`] the decoder could finish itself,
/// or a compressed message for the caller's inflater.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Incoming<'a> {
    /// An uncompressed message or a control frame, checked like [`Decoder::decode`] checks them.
    Event(Event<'a>),
    /// A message compressed with permessage-deflate (RSV1 on its first frame, RFC 7692 §6).
    Compressed(CompressedMessage<'a>),
}

/// A whole data message compressed with permessage-deflate, not yet inflated (RFC 7692 §7.2.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CompressedMessage<'a> {
    /// Whether the first frame's opcode was text (otherwise binary).
    pub is_text: bool,
    /// The payload as it travelled, every fragment's in order, without the `00 00 ff ff` tail.
    pub payload: &'a [u8],
}

impl CompressedMessage<'_> {
    /// The opcode of the message's first frame: [`OpCode::Text`] or [`OpCode::Binary`].
    pub fn opcode(&self) -> OpCode {
        if self.is_text {
            OpCode::Text
        } else {
            OpCode::Binary
        }
    }

    /// Inflates the message into `out` (cleared first) with the caller's `inflater` and returns
    /// it as the [`Event`] an uncompressed message would have been: `max_size` bounds the
    /// inflated size while inflating ([`Error::MessageTooBig`], 1009), a text message is then
    /// checked to be UTF-8 ([`Error::InvalidUtf8`], 1007), and data that does not inflate is
    /// [`Error::InvalidCompressedData`] (1007).
    pub fn inflate<'o>(
        &self,
        inflater: &mut Inflater,
        max_size: usize,
        out: &'o mut Vec<u8>,
    ) -> Result<Event<'o>, Error> {
        out.clear();
        inflater.inflate(self.payload, max_size, out)?;
        if self.is_text {
            Ok(Event::Text(
                utf8::validate(out).map_err(|_| Error::InvalidUtf8)?,
            ))
        } else {
            Ok(Event::Binary(out))
        }
    }
}

/// The most compressed bytes a message may take before it is inflated: DEFLATE of data that
/// does not compress is slightly larger than the data (5 bytes a stored block), so allow a
/// margin over the inflated limit, which is checked while inflating.
fn compressed_limit(max_message_size: usize) -> usize {
    max_message_size
        .saturating_add(max_message_size / 64)
        .saturating_add(64)
}

/// Where the closing handshake stands (§7.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CloseState {
    /// Neither side has sent a close frame.
    Open,
    /// We sent a close frame (the caller said so with [`Decoder::close_sent`]); data frames the
    /// peer still sends are ignored until its close arrives.
    CloseSent,
    /// The peer's close frame arrived and we have not answered it yet.
    CloseReceived,
    /// Both close frames have crossed: the TCP connection can be closed.
    Closed,
}

impl CloseState {
    /// Whether a close frame has been sent or received.
    pub fn is_closing(self) -> bool {
        self != CloseState::Open
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum MessageKind {
    Text,
    Binary,
}

/// A data frame whose header is consumed and whose payload is still arriving.
#[derive(Debug, Clone, Copy)]
struct FrameInProgress {
    fin: bool,
    mask: Option<[u8; 4]>,
    remaining: u64,
    /// Position within the payload, to keep the masking key aligned across reads.
    offset: usize,
}

/// The receive side of one WebSocket connection. See the [module docs](self) for the contract.
///
/// Small on purpose (16 bytes): a server keeps one per connection, and between messages it
/// owns no heap memory. The state of a message in progress lives in a box that exists only
/// while a message or a frame is cut. With permessage-deflate it holds one more flag and no
/// compression state.
#[derive(Debug)]
pub struct Decoder {
    role: Role,
    close_state: CloseState,
    /// The last event borrowed the assembly buffer; free it at the next call.
    release_assembly: bool,
    /// permessage-deflate was negotiated: RSV1 marks a compressed message (RFC 7692 §6).
    deflate: bool,
    /// `u32` keeps the decoder at 16 bytes (a server holds one per connection); `u32::MAX`
    /// (any limit from 4 GiB - 1 up) means no limit.
    max_message_size: u32,
    assembly: Option<Box<Assembly>>,
}

/// A message being put together from fragments, or a frame whose payload is still arriving.
#[derive(Debug)]
struct Assembly {
    /// The kind of the fragmented (or cut) message, if one is in progress.
    message: Option<MessageKind>,
    /// The message in progress is compressed: its bytes are DEFLATE data, not text.
    compressed: bool,
    frame: Option<FrameInProgress>,
    /// The message assembled so far.
    bytes: Vec<u8>,
    utf8: Validator,
}

impl Decoder {
    /// A decoder for an endpoint of `role` that refuses messages over `max_message_size` bytes.
    pub fn new(role: Role, max_message_size: usize) -> Self {
        Decoder {
            role,
            close_state: CloseState::Open,
            release_assembly: false,
            deflate: false,
            max_message_size: max_message_size.min(u32::MAX as usize) as u32,
            assembly: None,
        }
    }

    /// The same decoder on a connection where permessage-deflate was (`true`) or was not
    /// negotiated (RFC 7692). With it, drive the decoder with [`Decoder::decode_incoming`]:
    /// [`Decoder::decode`] has no way to hand back a compressed message and refuses RSV1 as if
    /// nothing had been negotiated.
    pub fn with_deflate(mut self, negotiated: bool) -> Self {
        self.deflate = negotiated;
        self
    }

    /// Whether permessage-deflate was negotiated on this connection.
    pub fn deflate(&self) -> bool {
        self.deflate
    }

    /// The largest message accepted, in bytes (`usize::MAX`: no limit).
    pub fn max_message_size(&self) -> usize {
        match self.max_message_size {
            u32::MAX => usize::MAX,
            limit => limit as usize,
        }
    }

    /// Where the closing handshake stands.
    pub fn close_state(&self) -> CloseState {
        self.close_state
    }

    /// Tells the decoder that we sent a close frame: from now on the peer's data frames are
    /// ignored (§5.5.1), and its close frame completes the handshake.
    pub fn close_sent(&mut self) {
        self.close_state = match self.close_state {
            CloseState::Open => CloseState::CloseSent,
            CloseState::CloseReceived | CloseState::Closed => CloseState::Closed,
            CloseState::CloseSent => CloseState::CloseSent,
        };
    }

    /// Whether the decoder holds no bytes of a message: between messages it owns no heap memory.
    pub fn is_idle(&self) -> bool {
        self.assembly.is_none()
    }

    /// Bytes of message payload held right now.
    pub fn buffered_len(&self) -> usize {
        self.assembly
            .as_ref()
            .map_or(0, |assembly| assembly.bytes.len())
    }

    /// Decodes from `input`, returning how many bytes were consumed and at most one event.
    ///
    /// Data frame payloads are unmasked in place, which is why `input` is `&mut`. `None`
    /// means more input is needed: the unconsumed bytes (`input[consumed..]`, a cut frame
    /// header or control frame) must be passed again, with more appended. After a close frame,
    /// all input is consumed and ignored. An error names the rule that was broken; answer it
    /// with [`Error::close_code`] and stop reading.
    pub fn decode<'a>(
        &'a mut self,
        input: &'a mut [u8],
    ) -> Result<(usize, Option<Event<'a>>), Error> {
        match self.decode_any(input, false)? {
            (consumed, None) => Ok((consumed, None)),
            (consumed, Some(Incoming::Event(event))) => Ok((consumed, Some(event))),
            // RSV1 is refused when `decode_any` is told not to hand back compressed messages.
            (_, Some(Incoming::Compressed(_))) => Err(Error::ReservedBitsSet),
        }
    }

    /// [`Decoder::decode`] for a connection that may have negotiated permessage-deflate
    /// ([`Decoder::with_deflate`]): the same contract, and a message whose first frame has RSV1
    /// comes back as [`Incoming::Compressed`], its compressed payload whole, for the caller to
    /// inflate ([`CompressedMessage::inflate`]). RSV1 on a control or continuation frame, or
    /// without the extension negotiated, is an error (1002). The compressed payload may exceed
    /// the message size limit by a small margin (DEFLATE of random data is a little larger than
    /// the data); the inflated size is the one the limit is for.
    pub fn decode_incoming<'a>(
        &'a mut self,
        input: &'a mut [u8],
    ) -> Result<(usize, Option<Incoming<'a>>), Error> {
        self.decode_any(input, true)
    }

    fn decode_any<'a>(
        &'a mut self,
        input: &'a mut [u8],
        compressed_allowed: bool,
    ) -> Result<(usize, Option<Incoming<'a>>), Error> {
        let permessage_deflate = self.deflate && compressed_allowed;
        if self.release_assembly {
            self.release_assembly = false;
            self.assembly = None;
        }
        if matches!(
            self.close_state,
            CloseState::CloseReceived | CloseState::Closed
        ) {
            return Ok((input.len(), None));
        }
        let mut consumed = 0;
        loop {
            let discard = self.close_state == CloseState::CloseSent;
            if let Some(assembly) = self.assembly.as_deref_mut() {
                if let Some(frame) = assembly.frame.as_mut() {
                    let available = (input.len() - consumed).min(frame.remaining as usize);
                    let chunk = &mut input[consumed..consumed + available];
                    consumed += available;
                    frame.remaining -= available as u64;
                    if !discard {
                        if let Some(key) = frame.mask {
                            apply_mask(chunk, key, frame.offset);
                        }
                        if assembly.message == Some(MessageKind::Text) && !assembly.compressed {
                            assembly.utf8.feed(chunk).map_err(|_| Error::InvalidUtf8)?;
                        }
                        assembly.bytes.extend_from_slice(chunk);
                    }
                    frame.offset += available;
                    if frame.remaining > 0 {
                        return Ok((consumed, None));
                    }
                    let fin = frame.fin;
                    assembly.frame = None;
                    if fin {
                        match (assembly.message.take(), discard) {
                            (Some(kind), false) => {
                                // The event borrows the assembly: free it at the next call.
                                self.release_assembly = true;
                                return Ok((consumed, Some(self.finish_assembled(kind)?)));
                            }
                            _ => self.assembly = None,
                        }
                    }
                    continue;
                }
            }

            let available = input.len() - consumed;
            let header =
                match decode_header_with(&input[consumed..], self.role, permessage_deflate)? {
                    Status::Partial => return Ok((consumed, None)),
                    Status::Complete(header) => header,
                };
            if header.opcode.is_control() {
                let total = header.header_len + header.payload_len as usize;
                if available < total {
                    return Ok((consumed, None));
                }
                let payload = &mut input[consumed + header.header_len..consumed + total];
                consumed += total;
                if let Some(key) = header.mask {
                    apply_mask(payload, key, 0);
                }
                let event = match header.opcode {
                    OpCode::Ping => Event::Ping(payload),
                    OpCode::Pong => Event::Pong(payload),
                    _ => {
                        let close = CloseFrame::parse(payload)?;
                        self.close_state = match self.close_state {
                            CloseState::Open => CloseState::CloseReceived,
                            _ => CloseState::Closed,
                        };
                        self.assembly = None;
                        Event::Close(close)
                    }
                };
                return Ok((consumed, Some(Incoming::Event(event))));
            }

            let in_progress = self.assembly.as_ref().and_then(|assembly| assembly.message);
            let compressed = match in_progress {
                Some(_) => self
                    .assembly
                    .as_ref()
                    .is_some_and(|assembly| assembly.compressed),
                None => header.rsv1,
            };
            let kind = self.start_data_frame(&header, in_progress, compressed)?;
            let whole = header.header_len as u64 + header.payload_len <= available as u64;
            if header.fin && in_progress.is_none() && whole && !discard {
                // The fast path: one frame, one message, all here. Unmask in place and lend it.
                let total = header.header_len + header.payload_len as usize;
                let payload = &mut input[consumed + header.header_len..consumed + total];
                consumed += total;
                if let Some(key) = header.mask {
                    apply_mask(payload, key, 0);
                }
                if compressed {
                    let message = CompressedMessage {
                        is_text: kind == MessageKind::Text,
                        payload,
                    };
                    return Ok((consumed, Some(Incoming::Compressed(message))));
                }
                let event = match kind {
                    MessageKind::Text => {
                        Event::Text(utf8::validate(payload).map_err(|_| Error::InvalidUtf8)?)
                    }
                    MessageKind::Binary => Event::Binary(payload),
                };
                return Ok((consumed, Some(Incoming::Event(event))));
            }
            consumed += header.header_len;
            let assembly = self.assembly.get_or_insert_with(|| {
                Box::new(Assembly {
                    message: None,
                    compressed: false,
                    frame: None,
                    bytes: Vec::new(),
                    utf8: Validator::new(),
                })
            });
            if header.opcode != OpCode::Continuation {
                assembly.message = Some(kind);
                assembly.compressed = compressed;
                assembly.utf8 = Validator::new();
            }
            assembly.frame = Some(FrameInProgress {
                fin: header.fin,
                mask: header.mask,
                remaining: header.payload_len,
                offset: 0,
            });
        }
    }

    /// Checks a data frame header against the fragmentation rules (§5.4) and the size limit,
    /// and returns the kind of message it belongs to.
    fn start_data_frame(
        &self,
        header: &FrameHeader,
        in_progress: Option<MessageKind>,
        compressed: bool,
    ) -> Result<MessageKind, Error> {
        let kind = match (header.opcode, in_progress) {
            (OpCode::Continuation, Some(kind)) => kind,
            (OpCode::Continuation, None) => return Err(Error::UnexpectedContinuation),
            (_, Some(_)) => return Err(Error::ExpectedContinuation),
            (OpCode::Text, None) => MessageKind::Text,
            (_, None) => MessageKind::Binary,
        };
        let limit = if compressed {
            compressed_limit(self.max_message_size())
        } else {
            self.max_message_size()
        };
        let total = self.buffered_len() as u64 + header.payload_len;
        if total > limit as u64 {
            return Err(Error::MessageTooBig);
        }
        Ok(kind)
    }

    fn finish_assembled(&mut self, kind: MessageKind) -> Result<Incoming<'_>, Error> {
        let assembly = self
            .assembly
            .as_deref_mut()
            .expect("a finished message has an assembly");
        if assembly.compressed {
            return Ok(Incoming::Compressed(CompressedMessage {
                is_text: kind == MessageKind::Text,
                payload: &assembly.bytes,
            }));
        }
        match kind {
            MessageKind::Binary => Ok(Incoming::Event(Event::Binary(&assembly.bytes))),
            MessageKind::Text => {
                assembly.utf8.finish().map_err(|_| Error::InvalidUtf8)?;
                let text = utf8::validate(&assembly.bytes).map_err(|_| Error::InvalidUtf8)?;
                Ok(Incoming::Event(Event::Text(text)))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::close::CloseCode;
    use crate::frame::encode_frame;

    const KEY: [u8; 4] = [0xa1, 0xb2, 0xc3, 0xd4];

    /// What a decoder said, owned, so that a test can collect a whole conversation.
    #[derive(Debug, Clone, PartialEq, Eq)]
    enum Owned {
        Text(String),
        Binary(Vec<u8>),
        Ping(Vec<u8>),
        Pong(Vec<u8>),
        Close(Option<u16>, String),
        Error(Error),
    }

    fn own(event: Event<'_>) -> Owned {
        match event {
            Event::Text(text) => Owned::Text(text.to_owned()),
            Event::Binary(bytes) => Owned::Binary(bytes.to_vec()),
            Event::Ping(bytes) => Owned::Ping(bytes.to_vec()),
            Event::Pong(bytes) => Owned::Pong(bytes.to_vec()),
            Event::Close(close) => Owned::Close(close.code.map(|c| c.0), close.reason.to_owned()),
        }
    }

    /// Feeds `wire` to a decoder in reads of `read_size` bytes, keeping unconsumed bytes as a
    /// caller does, and returns every event and the first error.
    fn decode_all(decoder: &mut Decoder, wire: &[u8], read_size: usize) -> Vec<Owned> {
        let mut events = Vec::new();
        let mut pending: Vec<u8> = Vec::new();
        for read in wire.chunks(read_size.max(1)) {
            pending.extend_from_slice(read);
            let mut start = 0;
            loop {
                match decoder.decode(&mut pending[start..]) {
                    Ok((consumed, event)) => {
                        start += consumed;
                        match event {
                            Some(event) => events.push(own(event)),
                            None => break,
                        }
                    }
                    Err(error) => {
                        events.push(Owned::Error(error));
                        return events;
                    }
                }
            }
            pending.drain(..start);
        }
        events
    }

    fn client_frame(wire: &mut Vec<u8>, fin: bool, opcode: OpCode, payload: &[u8]) {
        encode_frame(wire, fin, opcode, payload, Some(KEY));
    }

    fn raw(first: u8, payload: &[u8]) -> Vec<u8> {
        // A masked client frame with a hand-made first byte, for the rule-breaking cases.
        let mut wire = vec![first, 0x80 | payload.len() as u8];
        wire.extend_from_slice(&KEY);
        let start = wire.len();
        wire.extend_from_slice(payload);
        apply_mask(&mut wire[start..], KEY, 0);
        wire
    }

    fn server_decoder() -> Decoder {
        Decoder::new(Role::Server, 1024)
    }

    #[test]
    fn a_whole_unfragmented_message_is_lent_from_the_input_without_copy() {
        let mut wire = Vec::new();
        client_frame(&mut wire, true, OpCode::Binary, b"payload");
        let mut decoder = server_decoder();
        let input_range = wire.as_ptr_range();
        let (consumed, event) = decoder.decode(&mut wire).unwrap();
        assert_eq!(consumed, 13);
        let Some(Event::Binary(payload)) = event else {
            panic!("{event:?}")
        };
        assert_eq!(payload, b"payload");
        assert!(input_range.contains(&payload.as_ptr()));
        assert!(decoder.is_idle());
    }

    #[test]
    fn fragmented_messages_are_assembled_at_every_read_size() {
        let mut wire = Vec::new();
        client_frame(&mut wire, false, OpCode::Text, "Hel".as_bytes());
        client_frame(&mut wire, false, OpCode::Continuation, b"");
        client_frame(
            &mut wire,
            true,
            OpCode::Continuation,
            "lo, κόσμε".as_bytes(),
        );
        client_frame(&mut wire, true, OpCode::Binary, &[0u8; 300]);
        for read_size in 1..=wire.len() {
            let mut decoder = server_decoder();
            let events = decode_all(&mut decoder, &wire, read_size);
            assert_eq!(
                events,
                [
                    Owned::Text("Hello, κόσμε".into()),
                    Owned::Binary(vec![0; 300])
                ],
                "read size {read_size}"
            );
            assert!(decoder.is_idle());
        }
    }

    #[test]
    fn control_frames_may_come_between_fragments() {
        let mut wire = Vec::new();
        client_frame(&mut wire, false, OpCode::Text, b"frag");
        client_frame(&mut wire, true, OpCode::Ping, b"are you there");
        client_frame(&mut wire, true, OpCode::Pong, b"");
        client_frame(&mut wire, true, OpCode::Continuation, b"ment");
        for read_size in [1, 3, 7, wire.len()] {
            let events = decode_all(&mut server_decoder(), &wire, read_size);
            assert_eq!(
                events,
                [
                    Owned::Ping(b"are you there".to_vec()),
                    Owned::Pong(vec![]),
                    Owned::Text("fragment".into())
                ]
            );
        }
    }

    #[test]
    fn a_continuation_with_nothing_to_continue_is_a_protocol_error() {
        let mut wire = Vec::new();
        client_frame(&mut wire, true, OpCode::Continuation, b"x");
        let events = decode_all(&mut server_decoder(), &wire, 64);
        assert_eq!(events, [Owned::Error(Error::UnexpectedContinuation)]);
        assert_eq!(
            Error::UnexpectedContinuation.close_code(),
            Some(CloseCode::PROTOCOL_ERROR)
        );
    }

    #[test]
    fn a_new_data_frame_inside_a_fragmented_message_is_a_protocol_error() {
        let mut wire = Vec::new();
        client_frame(&mut wire, false, OpCode::Text, b"a");
        client_frame(&mut wire, true, OpCode::Binary, b"b");
        let events = decode_all(&mut server_decoder(), &wire, 64);
        assert_eq!(events, [Owned::Error(Error::ExpectedContinuation)]);
    }

    #[test]
    fn a_message_over_the_limit_is_refused_from_its_header_before_buffering() {
        // 2000 bytes announced, only the header sent: the error comes before any payload.
        let mut header = [0u8; crate::frame::MAX_HEADER_LEN];
        let len = crate::frame::encode_header(&mut header, true, OpCode::Binary, 2000, Some(KEY));
        let mut decoder = server_decoder();
        assert_eq!(
            decoder.decode(&mut header[..len]).unwrap_err(),
            Error::MessageTooBig
        );
        assert_eq!(decoder.buffered_len(), 0);
        assert_eq!(
            Error::MessageTooBig.close_code(),
            Some(CloseCode::MESSAGE_TOO_BIG)
        );
    }

    #[test]
    fn a_fragmented_message_growing_past_the_limit_is_refused_before_the_last_fragment_is_kept() {
        let mut wire = Vec::new();
        client_frame(&mut wire, false, OpCode::Binary, &[7; 400]);
        client_frame(&mut wire, false, OpCode::Continuation, &[7; 400]);
        client_frame(&mut wire, false, OpCode::Continuation, &[7; 400]);
        let mut decoder = server_decoder();
        let events = decode_all(&mut decoder, &wire, wire.len());
        assert_eq!(events, [Owned::Error(Error::MessageTooBig)]);
        assert!(decoder.buffered_len() <= 800);
    }

    #[test]
    fn a_2_pow_63_announcement_is_refused_without_allocating() {
        let mut wire = vec![
            0x82, 0xff, 0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 1, 2, 3, 4,
        ];
        let mut decoder = Decoder::new(Role::Server, usize::MAX);
        // With no limit the header is accepted, and nothing is reserved for the announced size.
        assert_eq!(decoder.decode(&mut wire).unwrap(), (14, None));
        assert_eq!(decoder.buffered_len(), 0);
    }

    #[test]
    fn invalid_utf8_is_found_in_the_middle_of_a_frame() {
        // Autobahn 6.4.3: one frame whose invalid bytes arrive before the frame is complete.
        let mut payload = "κόσμε".as_bytes().to_vec();
        payload.extend_from_slice(&[0xf4, 0x90, 0x80, 0x80]);
        payload.extend_from_slice(b"edited");
        let mut wire = Vec::new();
        client_frame(&mut wire, true, OpCode::Text, &payload);
        let invalid_at = 6 + "κόσμε".len() + 2; // header, valid text, 0xF4 0x90
        let mut decoder = server_decoder();
        assert_eq!(
            decoder
                .decode(&mut wire[..invalid_at - 1].to_vec())
                .unwrap()
                .1,
            None
        );
        let mut rest = wire[invalid_at - 1..invalid_at].to_vec();
        assert_eq!(decoder.decode(&mut rest).unwrap_err(), Error::InvalidUtf8);
    }

    #[test]
    fn invalid_utf8_is_found_in_the_fragment_that_carries_it() {
        // Autobahn 6.4.1: the second of three fragments makes the text invalid.
        let mut first = Vec::new();
        client_frame(&mut first, false, OpCode::Text, "κόσμε".as_bytes());
        let mut second = Vec::new();
        client_frame(
            &mut second,
            false,
            OpCode::Continuation,
            &[0xf4, 0x90, 0x80, 0x80],
        );
        let mut decoder = server_decoder();
        assert_eq!(decoder.decode(&mut first).unwrap().1, None);
        assert_eq!(decoder.decode(&mut second).unwrap_err(), Error::InvalidUtf8);
        assert_eq!(
            Error::InvalidUtf8.close_code(),
            Some(CloseCode::INVALID_PAYLOAD)
        );
    }

    #[test]
    fn text_that_ends_inside_a_character_is_invalid() {
        let mut wire = Vec::new();
        client_frame(&mut wire, false, OpCode::Text, &[0xe2, 0x82]);
        client_frame(&mut wire, true, OpCode::Continuation, b"");
        assert_eq!(
            decode_all(&mut server_decoder(), &wire, 64),
            [Owned::Error(Error::InvalidUtf8)]
        );
    }

    #[test]
    fn frames_break_the_rules_table() {
        let cases: &[(&str, Vec<u8>, Error)] = &[
            ("rsv1", raw(0xc1, b""), Error::ReservedBitsSet),
            ("opcode 3", raw(0x83, b""), Error::ReservedOpCode(3)),
            ("opcode 0xb", raw(0x8b, b""), Error::ReservedOpCode(0xb)),
            (
                "fragmented ping",
                raw(0x09, b""),
                Error::FragmentedControlFrame,
            ),
            (
                "close with one byte",
                raw(0x88, &[3]),
                Error::CloseFrameOneByte,
            ),
            (
                "close code 1005",
                raw(0x88, &[0x03, 0xed]),
                Error::InvalidCloseCode(1005),
            ),
            (
                "close code 999",
                raw(0x88, &[0x03, 0xe7]),
                Error::InvalidCloseCode(999),
            ),
            (
                "close reason not utf8",
                raw(0x88, &[0x03, 0xe8, 0xff]),
                Error::InvalidUtf8InCloseReason,
            ),
            ("text not utf8", raw(0x81, &[0xff]), Error::InvalidUtf8),
            ("unmasked", vec![0x81, 0x00], Error::UnmaskedFrameFromClient),
        ];
        for (name, wire, error) in cases {
            assert_eq!(
                decode_all(&mut server_decoder(), wire, 64),
                [Owned::Error(*error)],
                "{name}"
            );
        }
    }

    #[test]
    fn a_client_refuses_masked_frames_from_the_server() {
        let mut wire = Vec::new();
        client_frame(&mut wire, true, OpCode::Text, b"x");
        let mut decoder = Decoder::new(Role::Client, 1024);
        assert_eq!(
            decode_all(&mut decoder, &wire, 64),
            [Owned::Error(Error::MaskedFrameFromServer)]
        );
    }

    #[test]
    fn a_close_is_reported_and_everything_after_it_is_ignored() {
        let mut wire = Vec::new();
        let mut payload = Vec::new();
        crate::close::encode_payload(&mut payload, CloseCode(4000), "bye");
        client_frame(&mut wire, true, OpCode::Close, &payload);
        client_frame(&mut wire, true, OpCode::Text, b"too late");
        let mut decoder = server_decoder();
        assert_eq!(
            decode_all(&mut decoder, &wire, 64),
            [Owned::Close(Some(4000), "bye".into())]
        );
        assert_eq!(decoder.close_state(), CloseState::CloseReceived);
        decoder.close_sent();
        assert_eq!(decoder.close_state(), CloseState::Closed);
    }

    #[test]
    fn after_we_send_a_close_data_frames_are_ignored_until_the_peer_closes() {
        let mut wire = Vec::new();
        client_frame(&mut wire, true, OpCode::Text, b"ignored");
        client_frame(&mut wire, false, OpCode::Binary, b"also");
        client_frame(&mut wire, true, OpCode::Continuation, b"ignored");
        client_frame(&mut wire, true, OpCode::Close, &[]);
        for read_size in [1, 5, wire.len()] {
            let mut decoder = server_decoder();
            decoder.close_sent();
            assert_eq!(
                decode_all(&mut decoder, &wire, read_size),
                [Owned::Close(None, String::new())]
            );
            assert_eq!(decoder.close_state(), CloseState::Closed);
        }
    }

    #[test]
    fn only_data_messages_have_data() {
        assert_eq!(Event::Text("hi").data(), Some(&b"hi"[..]));
        assert_eq!(Event::Binary(&[1, 2]).data(), Some(&[1u8, 2][..]));
        assert_eq!(Event::Ping(b"p").data(), None);
        assert_eq!(Event::Pong(b"p").data(), None);
    }

    #[test]
    fn a_cut_control_frame_is_left_unconsumed() {
        let mut wire = Vec::new();
        client_frame(&mut wire, true, OpCode::Ping, b"12345");
        let mut decoder = server_decoder();
        for cut in 0..wire.len() {
            let mut prefix = wire[..cut].to_vec();
            assert_eq!(
                decoder.decode(&mut prefix).unwrap(),
                (0, None),
                "cut at {cut}"
            );
        }
    }

    #[test]
    fn the_assembly_buffer_is_freed_after_a_fragmented_message() {
        let mut wire = Vec::new();
        client_frame(&mut wire, false, OpCode::Binary, &[1; 100]);
        client_frame(&mut wire, true, OpCode::Continuation, &[2; 100]);
        let mut decoder = server_decoder();
        decode_all(&mut decoder, &wire, wire.len());
        let mut nothing = [];
        decoder.decode(&mut nothing).unwrap();
        assert!(decoder.is_idle());
    }

    /// Like [`decode_all`], through `decode_incoming` on a decoder with permessage-deflate,
    /// inflating compressed messages with one shared inflater.
    fn decode_all_inflating(
        decoder: &mut Decoder,
        inflater: &mut Inflater,
        wire: &[u8],
        read_size: usize,
    ) -> Vec<Owned> {
        let mut events = Vec::new();
        let mut pending: Vec<u8> = Vec::new();
        let mut inflated = Vec::new();
        for read in wire.chunks(read_size.max(1)) {
            pending.extend_from_slice(read);
            let mut start = 0;
            loop {
                let event = match decoder.decode_incoming(&mut pending[start..]) {
                    Ok((consumed, incoming)) => {
                        start += consumed;
                        match incoming {
                            None => break,
                            Some(Incoming::Event(event)) => Ok(own(event)),
                            Some(Incoming::Compressed(message)) => {
                                message.inflate(inflater, 1024, &mut inflated).map(own)
                            }
                        }
                    }
                    Err(error) => Err(error),
                };
                match event {
                    Ok(event) => events.push(event),
                    Err(error) => {
                        events.push(Owned::Error(error));
                        return events;
                    }
                }
            }
            pending.drain(..start);
        }
        events
    }

    fn deflate_decoder() -> Decoder {
        server_decoder().with_deflate(true)
    }

    fn compressed_frame(wire: &mut Vec<u8>, fin: bool, rsv1: bool, opcode: OpCode, payload: &[u8]) {
        crate::frame::encode_frame_with_rsv1(wire, fin, rsv1, opcode, payload, Some(KEY));
    }

    /// RFC 7692 §7.2.3.1: "Hello" compressed, as one frame and as two fragments.
    const HELLO: [u8; 7] = [0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00];

    #[test]
    fn a_whole_compressed_frame_is_lent_from_the_input_still_compressed() {
        let mut wire = Vec::new();
        compressed_frame(&mut wire, true, true, OpCode::Text, &HELLO);
        let input_range = wire.as_ptr_range();
        let mut decoder = deflate_decoder();
        let (consumed, incoming) = decoder.decode_incoming(&mut wire).unwrap();
        assert_eq!(consumed, 6 + HELLO.len());
        let Some(Incoming::Compressed(message)) = incoming else {
            panic!("{incoming:?}")
        };
        assert!(message.is_text);
        assert_eq!(message.opcode(), OpCode::Text);
        assert_eq!(message.payload, HELLO);
        assert!(input_range.contains(&message.payload.as_ptr()));
        let mut out = Vec::new();
        assert_eq!(
            message.inflate(&mut Inflater::new(), 1024, &mut out),
            Ok(Event::Text("Hello"))
        );
        assert!(decoder.is_idle());
    }

    #[test]
    fn compressed_fragmented_messages_are_assembled_at_every_read_size() {
        let mut wire = Vec::new();
        // §7.2.3.1's fragments: "0x41 0x03 0xf2 0x48 0xcd" and "0x80 0x04 0xc9 0xc9 0x07 0x00".
        compressed_frame(&mut wire, false, true, OpCode::Text, &HELLO[..3]);
        client_frame(&mut wire, true, OpCode::Ping, b"between");
        compressed_frame(&mut wire, true, false, OpCode::Continuation, &HELLO[3..]);
        // An uncompressed message still works on the same connection.
        client_frame(&mut wire, true, OpCode::Binary, b"plain");
        // And a compressed binary message of one stored block (§7.2.3.3).
        compressed_frame(
            &mut wire,
            true,
            true,
            OpCode::Binary,
            &[
                0x00, 0x05, 0x00, 0xfa, 0xff, 0x48, 0x65, 0x6c, 0x6c, 0x6f, 0x00,
            ],
        );
        let mut inflater = Inflater::new();
        for read_size in 1..=wire.len() {
            let mut decoder = deflate_decoder();
            let events = decode_all_inflating(&mut decoder, &mut inflater, &wire, read_size);
            assert_eq!(
                events,
                [
                    Owned::Ping(b"between".to_vec()),
                    Owned::Text("Hello".into()),
                    Owned::Binary(b"plain".to_vec()),
                    Owned::Binary(b"Hello".to_vec()),
                ],
                "read size {read_size}"
            );
            assert!(decoder.is_idle());
        }
    }

    #[test]
    fn rsv1_rules_table() {
        let cases: &[(&str, bool, Vec<u8>, Error)] = &[
            (
                "rsv1 without the extension",
                false,
                raw(0xc1, &HELLO),
                Error::ReservedBitsSet,
            ),
            (
                "rsv1 on a ping",
                true,
                raw(0xc9, b""),
                Error::CompressedControlFrame,
            ),
            (
                "rsv1 on a close",
                true,
                raw(0xc8, b""),
                Error::CompressedControlFrame,
            ),
            (
                "rsv2 with the extension",
                true,
                raw(0xa1, b""),
                Error::ReservedBitsSet,
            ),
            (
                "rsv3 with the extension",
                true,
                raw(0x91, b""),
                Error::ReservedBitsSet,
            ),
            (
                "rsv1 on a continuation",
                true,
                [raw(0x41, &HELLO[..3]), raw(0xc0, &HELLO[3..])].concat(),
                Error::CompressedContinuation,
            ),
            (
                "rsv1 on a lone continuation",
                true,
                raw(0xc0, b""),
                Error::CompressedContinuation,
            ),
        ];
        let mut inflater = Inflater::new();
        for (name, negotiated, wire, error) in cases {
            let mut decoder = server_decoder().with_deflate(*negotiated);
            assert_eq!(
                decode_all_inflating(&mut decoder, &mut inflater, wire, 64),
                [Owned::Error(*error)],
                "{name}"
            );
            assert_eq!(
                error.close_code(),
                Some(CloseCode::PROTOCOL_ERROR),
                "{name}"
            );
        }
    }

    #[test]
    fn decode_refuses_rsv1_even_with_the_extension_negotiated() {
        // `decode` cannot hand back a compressed message, so it treats RSV1 as unexpected.
        let mut wire = raw(0xc1, &HELLO);
        let mut decoder = deflate_decoder();
        assert!(decoder.deflate());
        assert_eq!(
            decoder.decode(&mut wire).unwrap_err(),
            Error::ReservedBitsSet
        );
    }

    #[test]
    fn a_tiny_frame_that_inflates_past_the_limit_is_message_too_big() {
        // 64 KiB of one byte compresses to a few hundred bytes; the limit is 1 KiB.
        let mut payload = Vec::new();
        crate::deflate::Deflater::new(15).compress(&[b'a'; 64 * 1024], &mut payload);
        assert!(payload.len() < 1024);
        let mut wire = Vec::new();
        compressed_frame(&mut wire, true, true, OpCode::Text, &payload);
        let mut decoder = deflate_decoder();
        let (_, incoming) = decoder.decode_incoming(&mut wire).unwrap();
        let Some(Incoming::Compressed(message)) = incoming else {
            panic!("{incoming:?}")
        };
        let mut out = Vec::new();
        assert_eq!(
            message.inflate(&mut Inflater::new(), 1024, &mut out),
            Err(Error::MessageTooBig)
        );
        assert!(out.capacity() <= 1025, "{}", out.capacity());
    }

    #[test]
    fn compressed_bytes_are_bounded_before_inflating() {
        // The compressed form may exceed the limit a little (stored blocks), not much.
        let mut wire = Vec::new();
        compressed_frame(&mut wire, false, true, OpCode::Binary, &[0; 1000]);
        compressed_frame(&mut wire, false, false, OpCode::Continuation, &[0; 100]);
        let mut inflater = Inflater::new();
        let mut decoder = deflate_decoder();
        assert_eq!(
            decode_all_inflating(&mut decoder, &mut inflater, &wire, wire.len()),
            []
        );
        compressed_frame(&mut wire, true, false, OpCode::Continuation, &[0; 100]);
        let mut decoder = deflate_decoder();
        assert_eq!(
            decode_all_inflating(&mut decoder, &mut inflater, &wire, wire.len()),
            [Owned::Error(Error::MessageTooBig)]
        );
    }

    #[test]
    fn compressed_text_that_is_not_utf8_is_invalid_payload() {
        let mut payload = Vec::new();
        crate::deflate::Deflater::new(15).compress(&[b'o', b'k', 0xff, 0xfe], &mut payload);
        let mut wire = Vec::new();
        compressed_frame(&mut wire, true, true, OpCode::Text, &payload);
        let mut inflater = Inflater::new();
        assert_eq!(
            decode_all_inflating(&mut deflate_decoder(), &mut inflater, &wire, 64),
            [Owned::Error(Error::InvalidUtf8)]
        );
    }

    #[test]
    fn the_decoder_fits_in_16_bytes_with_the_extension_flag() {
        // One per connection: permessage-deflate adds a flag, not compression state, and the
        // size limit is a u32.
        assert!(size_of::<Decoder>() <= 16);
        assert!(deflate_decoder().is_idle());
    }
}
