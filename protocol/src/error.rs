//! The one error type of the crate: every variant names the rule of RFC 6455 (or HTTP/1.1)
//! that the input broke, and knows the close code or HTTP status that answers it.

use std::fmt;

use crate::close::CloseCode;

/// A broken rule. Small, `Copy` and comparable, so callers can match on it and count it.
///
/// Frame and message errors map to a close code ([`Error::close_code`]); handshake errors map
/// to an HTTP status ([`Error::http_status`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Error {
    // --- the opening handshake, RFC 6455 §4 and HTTP/1.1 ---
    /// The request or response head is longer than the configured limit (431).
    HeadTooLarge,
    /// More header lines than the parser accepts (431).
    TooManyHeaders,
    /// The request line is not `METHOD SP target SP HTTP/x.y` (400).
    InvalidRequestLine,
    /// The status line is not `HTTP/1.1 SP code SP reason`.
    InvalidStatusLine,
    /// A header line has no colon, an empty or non-token name, or a control character (400).
    InvalidHeader,
    /// A line of the head ends in a bare LF instead of CRLF (RFC 9112 §2.2) (400).
    BareLineFeed,
    /// The request method is not `GET` (§4.2.1 item 1) (405).
    MethodNotGet,
    /// The request is not HTTP/1.1 or later (§4.2.1 item 1) (400).
    UnsupportedHttpVersion,
    /// There is no `Host` header (§4.2.1 item 2) (400).
    MissingHost,
    /// There is no `Upgrade` header whose token list holds `websocket` (§4.2.1 item 3) (400).
    MissingUpgradeWebSocket,
    /// There is no `Connection` header whose token list holds `Upgrade` (§4.2.1 item 4) (400).
    MissingConnectionUpgrade,
    /// `Sec-WebSocket-Key` is missing, or does not decode from base64 to 16 bytes (§4.2.1 item 5) (400).
    InvalidKey,
    /// `Sec-WebSocket-Version` is missing or not 13 (§4.2.1 item 6); answered with 426 and
    /// `Sec-WebSocket-Version: 13` (§4.4).
    UnsupportedVersion,
    /// The server answered with a status other than 101 (§4.1, client side).
    UnexpectedStatus(u16),
    /// The server's `Sec-WebSocket-Accept` is missing or does not match the key (§4.1, client side).
    InvalidAccept,
    /// The server selected a subprotocol the client did not offer (§4.1, client side).
    UnofferedSubprotocol,
    /// A URL that is not `ws://host[:port][/path]` (§3).
    InvalidUrl,
    /// A `wss://` URL: TLS is not supported by this crate's users yet.
    TlsNotSupported,
    /// The server answered with an extension the client did not offer (§4.1 item 5, §9.1).
    UnofferedExtension,
    /// The server's permessage-deflate answer breaks RFC 7692 §5 or §7.1: an unknown,
    /// duplicate or invalid parameter, or a window the offer did not allow (client side).
    InvalidDeflateResponse,

    // --- framing, RFC 6455 §5 ---
    /// A client sent a frame without a mask (§5.1) (1002).
    UnmaskedFrameFromClient,
    /// A server sent a masked frame (§5.1) (1002).
    MaskedFrameFromServer,
    /// RSV1, RSV2 or RSV3 is set and no extension was negotiated (§5.2) (1002).
    ReservedBitsSet,
    /// An opcode of the reserved ranges 0x3-0x7 or 0xB-0xF (§5.2) (1002).
    ReservedOpCode(u8),
    /// A control frame without FIN (§5.5) (1002).
    FragmentedControlFrame,
    /// A control frame with a payload over 125 bytes (§5.5) (1002).
    ControlFrameTooLong,
    /// A 64-bit payload length with its most significant bit set (§5.2) (1002).
    PayloadLengthTopBitSet,
    /// A continuation frame with no fragmented message to continue (§5.4) (1002).
    UnexpectedContinuation,
    /// A new text or binary frame while a fragmented message is unfinished (§5.4) (1002).
    ExpectedContinuation,
    /// A message larger than the configured maximum, refused before it is buffered (§7.4.1) (1009).
    /// For a compressed message, the inflated size counts, checked while inflating (RFC 7692 §8.1).
    MessageTooBig,
    /// RSV1 on a control frame: control frames are never compressed (RFC 7692 §6.1) (1002).
    CompressedControlFrame,
    /// RSV1 on a continuation frame: only a message's first frame carries it (RFC 7692 §6.1) (1002).
    CompressedContinuation,

    // --- close frames, RFC 6455 §5.5.1 and §7.4 ---
    /// A close frame whose payload is exactly one byte: a code needs two (§5.5.1) (1002).
    CloseFrameOneByte,
    /// A close code that may not be sent on the wire (§7.4.1, §7.4.2) (1002).
    InvalidCloseCode(u16),
    /// A close reason that is not UTF-8 (§5.5.1) (1007).
    InvalidUtf8InCloseReason,

    // --- payload data, RFC 6455 §8.1 ---
    /// A text message that is not UTF-8 (§8.1) (1007).
    InvalidUtf8,
    /// A compressed message that does not inflate (RFC 7692 §7.2.2) (1007).
    InvalidCompressedData,
}

impl Error {
    /// The close code that answers this error on an open connection (§7.4.1), or `None` for
    /// errors of the opening handshake, which happen before there is a WebSocket to close.
    pub fn close_code(self) -> Option<CloseCode> {
        use Error::*;
        match self {
            UnmaskedFrameFromClient
            | MaskedFrameFromServer
            | ReservedBitsSet
            | ReservedOpCode(_)
            | FragmentedControlFrame
            | ControlFrameTooLong
            | PayloadLengthTopBitSet
            | UnexpectedContinuation
            | ExpectedContinuation
            | CloseFrameOneByte
            | InvalidCloseCode(_)
            | CompressedControlFrame
            | CompressedContinuation => Some(CloseCode::PROTOCOL_ERROR),
            InvalidUtf8 | InvalidUtf8InCloseReason | InvalidCompressedData => {
                Some(CloseCode::INVALID_PAYLOAD)
            }
            MessageTooBig => Some(CloseCode::MESSAGE_TOO_BIG),
            _ => None,
        }
    }

    /// The HTTP status a server answers this handshake error with, or `None` for errors that
    /// happen after the handshake or on the client side.
    pub fn http_status(self) -> Option<u16> {
        use Error::*;
        match self {
            HeadTooLarge | TooManyHeaders => Some(431),
            InvalidRequestLine
            | InvalidHeader
            | BareLineFeed
            | UnsupportedHttpVersion
            | MissingHost
            | MissingUpgradeWebSocket
            | MissingConnectionUpgrade
            | InvalidKey => Some(400),
            MethodNotGet => Some(405),
            UnsupportedVersion => Some(426),
            _ => None,
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use Error::*;
        match *self {
            HeadTooLarge => f.write_str("http head too large"),
            TooManyHeaders => f.write_str("too many http headers"),
            InvalidRequestLine => f.write_str("invalid http request line"),
            InvalidStatusLine => f.write_str("invalid http status line"),
            InvalidHeader => f.write_str("invalid http header line"),
            BareLineFeed => f.write_str("a line of the http head ends in a bare LF, not CRLF"),
            MethodNotGet => f.write_str("websocket handshake method is not GET"),
            UnsupportedHttpVersion => f.write_str("websocket handshake needs HTTP/1.1"),
            MissingHost => f.write_str("missing Host header"),
            MissingUpgradeWebSocket => f.write_str("missing `Upgrade: websocket` header"),
            MissingConnectionUpgrade => f.write_str("missing `Connection: Upgrade` header"),
            InvalidKey => f.write_str("Sec-WebSocket-Key is not 16 bytes in base64"),
            UnsupportedVersion => f.write_str("Sec-WebSocket-Version is not 13"),
            UnexpectedStatus(code) => write!(f, "server answered {code} instead of 101"),
            InvalidAccept => f.write_str("Sec-WebSocket-Accept does not match the key"),
            UnofferedSubprotocol => {
                f.write_str("server selected a subprotocol that was not offered")
            }
            InvalidUrl => f.write_str("invalid websocket url (expected ws://host[:port][/path])"),
            TlsNotSupported => f.write_str("wss:// (TLS) is not supported yet"),
            UnofferedExtension => {
                f.write_str("server answered with an extension that was not offered")
            }
            InvalidDeflateResponse => {
                f.write_str("server's permessage-deflate answer is invalid (RFC 7692 section 7.1)")
            }
            UnmaskedFrameFromClient => f.write_str("client frame is not masked"),
            MaskedFrameFromServer => f.write_str("server frame is masked"),
            ReservedBitsSet => f.write_str("reserved bits set without an extension"),
            ReservedOpCode(op) => write!(f, "reserved opcode {op:#x}"),
            FragmentedControlFrame => f.write_str("fragmented control frame"),
            ControlFrameTooLong => f.write_str("control frame payload over 125 bytes"),
            PayloadLengthTopBitSet => f.write_str("64-bit payload length has its top bit set"),
            UnexpectedContinuation => f.write_str("continuation frame with nothing to continue"),
            ExpectedContinuation => f.write_str("new data frame inside a fragmented message"),
            MessageTooBig => f.write_str("message too big"),
            CompressedControlFrame => f.write_str("compressed (RSV1) control frame"),
            CompressedContinuation => f.write_str("RSV1 set on a continuation frame"),
            CloseFrameOneByte => f.write_str("close frame payload of one byte"),
            InvalidCloseCode(code) => write!(f, "close code {code} may not be sent"),
            InvalidUtf8InCloseReason => f.write_str("close reason is not utf-8"),
            InvalidUtf8 => f.write_str("text message is not utf-8"),
            InvalidCompressedData => f.write_str("compressed message does not inflate"),
        }
    }
}

impl std::error::Error for Error {}
