//! The client's side of the opening handshake (RFC 6455 §4.1): write the upgrade request, then
//! check the server's answer and hand back the bytes after it, which are already frames.
//!
//! ```
//! use protocol::deflate::DeflateOffer;
//! use protocol::handshake::client::ClientHandshake;
//! use protocol::Status;
//!
//! // The 16 key bytes must be random for each connection (§4.1): they come from the caller.
//! let handshake = ClientHandshake::new("server.example.com", "/chat", *b"the sample nonce");
//! let offer = DeflateOffer::browser();
//! let mut request = Vec::new();
//! handshake.write_request_with_deflate(&mut request, &offer);
//! assert!(request.starts_with(b"GET /chat HTTP/1.1\r\nHost: server.example.com\r\n"));
//!
//! // ... send `request`, read until the answer is complete ...
//! let answer = b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\
//!     Connection: Upgrade\r\nSec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\
//!     Sec-WebSocket-Extensions: permessage-deflate; server_no_context_takeover\r\n\r\n\x81\x02hi";
//! assert_eq!(handshake.read_response_with_deflate(&answer[..20], &offer), Ok(Status::Partial));
//! let Status::Complete(accepted) = handshake.read_response_with_deflate(answer, &offer).unwrap() else {
//!     unreachable!("the answer is complete")
//! };
//! assert!(accepted.deflate.unwrap().server_no_context_takeover);
//! assert_eq!(&answer[accepted.head_len..], b"\x81\x02hi"); // already frames
//! ```

use crate::deflate::{DeflateOffer, DeflateParameters};
use crate::extensions::{self, HEADER_NAME as EXTENSIONS_HEADER};
use crate::http::{parse_response, Limits};
use crate::{Error, Status};

use super::{accept_value, key_from_bytes, WEBSOCKET_VERSION};

/// What a client asks for. The key's 16 bytes come from the caller: this crate has no
/// randomness of its own (§4.1 wants them random for each connection).
#[derive(Debug, Clone)]
pub struct ClientHandshake<'a> {
    /// The `Host` header: the URL's host, with its port when it is not 80.
    pub host: &'a str,
    /// The request target: path and query.
    pub target: &'a str,
    /// The nonce behind `Sec-WebSocket-Key`.
    pub key: [u8; 16],
    /// Subprotocols to offer, in order of preference (`Sec-WebSocket-Protocol`).
    pub protocols: &'a [&'a str],
    /// Any other header, e.g. `Origin` or `Authorization`.
    pub extra_headers: &'a [(&'a str, &'a str)],
}

/// A server's 101 that passed every check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Accepted<'b> {
    /// The subprotocol the server selected, if any; always one that was offered.
    pub protocol: Option<&'b str>,
    /// The permessage-deflate parameters in force, when it was offered and the server accepted
    /// (RFC 7692): tell the decoder ([`Decoder::with_deflate`]) and compress with them.
    ///
    /// [`Decoder::with_deflate`]: crate::message::Decoder::with_deflate
    pub deflate: Option<DeflateParameters>,
    /// The length of the response head: the bytes from here on are frames.
    pub head_len: usize,
}

/// What a client checks the server's answer against: only what its request offered (§4.1).
///
/// A client with many connections keeps each connection's key and builds this when the
/// answer arrives, with no request (and no dummy request) at hand.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExpectedResponse<'a> {
    /// The nonce behind the request's `Sec-WebSocket-Key`.
    pub key: [u8; 16],
    /// The subprotocols the request offered.
    pub protocols: &'a [&'a str],
    /// The permessage-deflate offer the request made, if any. Without one, an answer that
    /// names any extension fails the handshake (§4.1 item 5).
    pub deflate: Option<DeflateOffer>,
}

impl ExpectedResponse<'static> {
    /// Expects an answer to a request with `key` that offered no subprotocol or extension.
    pub fn new(key: [u8; 16]) -> Self {
        ExpectedResponse {
            key,
            protocols: &[],
            deflate: None,
        }
    }
}

impl ExpectedResponse<'_> {
    /// Checks the server's answer (§4.1, "the client MUST validate the server's response"):
    /// status 101, `Upgrade: websocket`, `Connection: Upgrade`, the accept value, a
    /// subprotocol only if one was offered, and an extension only if one was offered, with
    /// parameters RFC 7692 allows. `Partial` until the head is complete; the bytes at
    /// `head_len` and after are frames.
    pub fn read_response<'b>(&self, buf: &'b [u8]) -> Result<Status<Accepted<'b>>, Error> {
        let response = match parse_response(buf, Limits::default())? {
            Status::Partial => return Ok(Status::Partial),
            Status::Complete(response) => response,
        };
        if response.status != 101 {
            return Err(Error::UnexpectedStatus(response.status));
        }
        let headers = &response.headers;
        if !headers.has_token("upgrade", "websocket") {
            return Err(Error::MissingUpgradeWebSocket);
        }
        if !headers.has_token("connection", "upgrade") {
            return Err(Error::MissingConnectionUpgrade);
        }
        let expected_accept = accept_value(key_from_bytes(self.key).as_bytes());
        if headers.get("sec-websocket-accept") != Some(expected_accept.as_bytes()) {
            return Err(Error::InvalidAccept);
        }
        let protocol = headers.get_str("sec-websocket-protocol");
        if let Some(selected) = protocol {
            if !self.protocols.contains(&selected) {
                return Err(Error::UnofferedSubprotocol);
            }
        }
        let answered = extensions::parse_headers(headers);
        let deflate = match &self.deflate {
            Some(offer) => offer.check_response(&answered)?,
            None if answered.is_empty() => None,
            None => return Err(Error::UnofferedExtension),
        };
        Ok(Status::Complete(Accepted {
            protocol,
            deflate,
            head_len: response.head_len,
        }))
    }
}

impl<'a> ClientHandshake<'a> {
    /// A request for `target` on `host` with the key nonce `key`, offering no subprotocol and
    /// adding no header; set the public fields for more.
    pub fn new(host: &'a str, target: &'a str, key: [u8; 16]) -> Self {
        ClientHandshake {
            host,
            target,
            key,
            protocols: &[],
            extra_headers: &[],
        }
    }
}

impl ClientHandshake<'_> {
    /// Appends the upgrade request (§4.1) to `out`.
    pub fn write_request(&self, out: &mut Vec<u8>) {
        self.write(out, None);
    }

    /// Appends the upgrade request with a permessage-deflate offer in
    /// `Sec-WebSocket-Extensions` (RFC 7692 §5); check the answer with
    /// [`ClientHandshake::read_response_with_deflate`] and the same offer.
    pub fn write_request_with_deflate(&self, out: &mut Vec<u8>, offer: &DeflateOffer) {
        self.write(out, Some(offer));
    }

    fn write(&self, out: &mut Vec<u8>, offer: Option<&DeflateOffer>) {
        let key = key_from_bytes(self.key);
        out.extend_from_slice(
            format!(
                "GET {} HTTP/1.1\r\nHost: {}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: {WEBSOCKET_VERSION}\r\n",
                self.target, self.host
            )
            .as_bytes(),
        );
        if !self.protocols.is_empty() {
            out.extend_from_slice(
                format!("Sec-WebSocket-Protocol: {}\r\n", self.protocols.join(", ")).as_bytes(),
            );
        }
        if let Some(offer) = offer {
            out.extend_from_slice(
                format!("{EXTENSIONS_HEADER}: {}\r\n", offer.header_value()).as_bytes(),
            );
        }
        for (name, value) in self.extra_headers {
            out.extend_from_slice(format!("{name}: {value}\r\n").as_bytes());
        }
        out.extend_from_slice(b"\r\n");
    }

    /// The `Sec-WebSocket-Accept` value a correct server answers with.
    pub fn expected_accept(&self) -> String {
        accept_value(key_from_bytes(self.key).as_bytes())
    }

    /// Checks the server's answer to [`ClientHandshake::write_request`] (see
    /// [`ExpectedResponse::read_response`]): no extension was offered, so an answer that
    /// names one fails. `Partial` until the head is complete; the bytes at `head_len` and after
    /// are frames.
    pub fn read_response<'b>(&self, buf: &'b [u8]) -> Result<Status<Accepted<'b>>, Error> {
        self.expected_response(None).read_response(buf)
    }

    /// Checks the server's answer to [`ClientHandshake::write_request_with_deflate`] with the
    /// same `offer`: [`Accepted::deflate`] says what was agreed, and an answer RFC 7692 does
    /// not allow fails ([`Error::InvalidDeflateResponse`], [`Error::UnofferedExtension`]).
    pub fn read_response_with_deflate<'b>(
        &self,
        buf: &'b [u8],
        offer: &DeflateOffer,
    ) -> Result<Status<Accepted<'b>>, Error> {
        self.expected_response(Some(*offer)).read_response(buf)
    }

    /// What the answer to this request must be, for [`ExpectedResponse::read_response`].
    pub fn expected_response(&self, deflate: Option<DeflateOffer>) -> ExpectedResponse<'_> {
        ExpectedResponse {
            key: self.key,
            protocols: self.protocols,
            deflate,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const RFC_RESPONSE: &[u8] = b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\nSec-WebSocket-Protocol: chat\r\n\r\n";

    fn rfc_client() -> ClientHandshake<'static> {
        ClientHandshake {
            host: "server.example.com",
            target: "/chat",
            key: *b"the sample nonce",
            protocols: &["chat", "superchat"],
            extra_headers: &[("Origin", "http://example.com")],
        }
    }

    #[test]
    fn writes_the_rfc_example_request() {
        let mut out = Vec::new();
        rfc_client().write_request(&mut out);
        let text = String::from_utf8(out).unwrap();
        assert!(text.starts_with("GET /chat HTTP/1.1\r\nHost: server.example.com\r\n"));
        assert!(text.contains("Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"));
        assert!(text.contains("Sec-WebSocket-Version: 13\r\n"));
        assert!(text.contains("Sec-WebSocket-Protocol: chat, superchat\r\n"));
        assert!(text.contains("Origin: http://example.com\r\n"));
    }

    #[test]
    fn accepts_the_rfc_example_response_and_hands_back_the_frames_after_it() {
        let mut input = RFC_RESPONSE.to_vec();
        input.extend_from_slice(b"\x81\x02hi");
        let accepted = rfc_client()
            .read_response(&input)
            .unwrap()
            .complete()
            .unwrap();
        assert_eq!(accepted.protocol, Some("chat"));
        assert_eq!(&input[accepted.head_len..], b"\x81\x02hi");
    }

    #[test]
    fn every_truncated_prefix_of_the_response_is_partial() {
        for cut in 0..RFC_RESPONSE.len() {
            assert_eq!(
                rfc_client().read_response(&RFC_RESPONSE[..cut]),
                Ok(Status::Partial)
            );
        }
    }

    #[test]
    fn a_status_other_than_101_is_refused() {
        let input = b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n";
        assert_eq!(
            rfc_client().read_response(input),
            Err(Error::UnexpectedStatus(404))
        );
    }

    #[test]
    fn a_wrong_accept_value_is_refused() {
        let text = String::from_utf8(RFC_RESPONSE.to_vec()).unwrap().replace(
            "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=",
            "AAAAAAAAAAAAAAAAAAAAAAAAAAA=",
        );
        assert_eq!(
            rfc_client().read_response(text.as_bytes()),
            Err(Error::InvalidAccept)
        );
    }

    #[test]
    fn a_subprotocol_that_was_not_offered_is_refused() {
        let text = String::from_utf8(RFC_RESPONSE.to_vec())
            .unwrap()
            .replace("Protocol: chat", "Protocol: mqtt");
        assert_eq!(
            rfc_client().read_response(text.as_bytes()),
            Err(Error::UnofferedSubprotocol)
        );
    }

    #[test]
    fn the_answer_can_be_checked_from_the_key_alone() {
        let handshake = ClientHandshake::new("server.example.com", "/chat", *b"the sample nonce");
        let mut request = Vec::new();
        handshake.write_request(&mut request);
        let text = String::from_utf8(request).unwrap();
        assert!(!text.contains("Sec-WebSocket-Protocol"));
        assert!(!text.contains("Sec-WebSocket-Extensions"));
        let answer = String::from_utf8(RFC_RESPONSE.to_vec())
            .unwrap()
            .replace("Sec-WebSocket-Protocol: chat\r\n", "");
        let accepted = ExpectedResponse::new(*b"the sample nonce")
            .read_response(answer.as_bytes())
            .unwrap()
            .complete()
            .unwrap();
        assert_eq!(accepted.protocol, None);
        assert_eq!(accepted.deflate, None);
    }

    #[test]
    fn an_extension_that_was_not_offered_is_refused() {
        let text = String::from_utf8(RFC_RESPONSE.to_vec()).unwrap().replace(
            "\r\n\r\n",
            "\r\nSec-WebSocket-Extensions: permessage-deflate\r\n\r\n",
        );
        assert_eq!(
            rfc_client().read_response(text.as_bytes()),
            Err(Error::UnofferedExtension)
        );
    }

    #[test]
    fn a_deflate_offer_is_written_and_its_answer_checked() {
        let offer = DeflateOffer::browser();
        let mut out = Vec::new();
        rfc_client().write_request_with_deflate(&mut out, &offer);
        let text = String::from_utf8(out).unwrap();
        assert!(text.contains(
            "\r\nSec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n"
        ));
        let answer = |extensions: &str| {
            String::from_utf8(RFC_RESPONSE.to_vec())
                .unwrap()
                .replace("\r\n\r\n", &format!("\r\n{extensions}\r\n"))
        };
        let declined = answer("");
        let accepted = rfc_client()
            .read_response_with_deflate(declined.as_bytes(), &offer)
            .unwrap()
            .complete()
            .unwrap();
        assert_eq!(accepted.deflate, None);
        let agreed =
            answer("Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits=9\r\n");
        let accepted = rfc_client()
            .read_response_with_deflate(agreed.as_bytes(), &offer)
            .unwrap()
            .complete()
            .unwrap();
        assert_eq!(accepted.deflate.unwrap().client_max_window_bits, Some(9));
        let invalid =
            answer("Sec-WebSocket-Extensions: permessage-deflate; server_max_window_bits=7\r\n");
        assert_eq!(
            rfc_client().read_response_with_deflate(invalid.as_bytes(), &offer),
            Err(Error::InvalidDeflateResponse)
        );
    }

    #[test]
    fn a_response_without_upgrade_headers_is_refused() {
        let text = String::from_utf8(RFC_RESPONSE.to_vec())
            .unwrap()
            .replace("Upgrade: websocket\r\n", "");
        assert_eq!(
            rfc_client().read_response(text.as_bytes()),
            Err(Error::MissingUpgradeWebSocket)
        );
    }
}
