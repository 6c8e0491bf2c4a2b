//! The client's side of the opening handshake (RFC 6455 §4.1): write the upgrade request, then
//! check the server's answer and hand back the bytes after it, which are already frames.

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
    /// The length of the response head: the bytes from here on are frames.
    pub head_len: usize,
}

impl ClientHandshake<'_> {
    /// Appends the upgrade request (§4.1) to `out`.
    pub fn write_request(&self, out: &mut Vec<u8>) {
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
        for (name, value) in self.extra_headers {
            out.extend_from_slice(format!("{name}: {value}\r\n").as_bytes());
        }
        out.extend_from_slice(b"\r\n");
    }

    /// The `Sec-WebSocket-Accept` value a correct server answers with.
    pub fn expected_accept(&self) -> String {
        accept_value(key_from_bytes(self.key).as_bytes())
    }

    /// Checks the server's answer (§4.1, "the client MUST validate the server's response"):
    /// status 101, `Upgrade: websocket`, `Connection: Upgrade`, the accept value, and a
    /// subprotocol only if one was offered. `Partial` until the head is complete; the bytes at
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
        if headers.get("sec-websocket-accept") != Some(self.expected_accept().as_bytes()) {
            return Err(Error::InvalidAccept);
        }
        let protocol = headers.get_str("sec-websocket-protocol");
        if let Some(selected) = protocol {
            if !self.protocols.contains(&selected) {
                return Err(Error::UnofferedSubprotocol);
            }
        }
        Ok(Status::Complete(Accepted {
            protocol,
            head_len: response.head_len,
        }))
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
