//! The server's side of the opening handshake (RFC 6455 §4.2): check an upgrade request, write
//! the 101 that accepts it or the HTTP error that refuses it.
//!
//! ```
//! use protocol::handshake::server::{is_upgrade_attempt, validate_request, write_accept, write_error};
//! use protocol::http::{parse_request, Limits};
//! use protocol::Status;
//!
//! // RFC 6455 §1.3's request, with the client's first frame already behind it.
//! let mut input = b"GET /chat HTTP/1.1\r\nHost: server.example.com\r\nUpgrade: websocket\r\n\
//!     Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
//!     Origin: http://example.com\r\nSec-WebSocket-Protocol: chat, superchat\r\n\
//!     Sec-WebSocket-Version: 13\r\n\r\n".to_vec();
//! input.extend_from_slice(&[0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58]);
//!
//! // Running out of input is not an error: keep reading until the head is complete.
//! assert_eq!(parse_request(&input[..40], Limits::default()), Ok(Status::Partial));
//! let Status::Complete(request) = parse_request(&input, Limits::default()).unwrap() else {
//!     unreachable!("the head is complete")
//! };
//! assert!(is_upgrade_attempt(&request)); // otherwise: plain HTTP, serve it some other way
//!
//! let mut response = Vec::new();
//! match validate_request(&request) {
//!     Ok(upgrade) => {
//!         assert_eq!(upgrade.path, "/chat");
//!         let protocol = upgrade.protocols.iter().find(|offered| **offered == "chat").copied();
//!         write_accept(&mut response, &upgrade, protocol, &[]);
//!     }
//!     // 400, 405, 426 or 431, with a one-line reason; then close the connection.
//!     Err(error) => write_error(&mut response, error),
//! }
//! assert!(response.starts_with(b"HTTP/1.1 101 Switching Protocols\r\n"));
//! // The bytes after the head are already frames: hand them to a `Decoder`.
//! assert_eq!(input.len() - request.head_len, 11);
//! ```

use crate::deflate::{DeflateParameters, ServerDeflateConfig};
use crate::extensions::{self, HEADER_NAME as EXTENSIONS_HEADER};
use crate::http::{reason_phrase, Headers, Request};
use crate::Error;

use super::{accept_value, is_valid_key, WEBSOCKET_VERSION};

/// A request that passed every check of §4.2.1: what a server needs to decide whether to
/// accept it (path, origin, subprotocols, any other header) and to answer it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Upgrade<'a> {
    /// The request target without its query: a chat server's room.
    pub path: &'a str,
    /// The full request target, query included.
    pub target: &'a str,
    /// The `Host` header.
    pub host: &'a str,
    /// The `Origin` header, sent by browsers (§4.2.1 item 7, §10.2).
    pub origin: Option<&'a str>,
    /// `Sec-WebSocket-Key`, as sent.
    pub key: &'a str,
    /// The subprotocols offered in `Sec-WebSocket-Protocol`, in order of preference.
    pub protocols: Vec<&'a str>,
    /// Every header, for whatever else the caller wants to look at.
    pub headers: Headers<'a>,
}

impl Upgrade<'_> {
    /// Reads the client's permessage-deflate offers (RFC 7692 §5: every
    /// `Sec-WebSocket-Extensions` line, every offer in order, quoted values) and returns the
    /// parameters of the first one `config` accepts, declining invalid ones; `None` when there
    /// is nothing to accept. Pass the result to [`write_accept_with_deflate`] so the 101 says
    /// so, and tell the connection's decoder ([`Decoder::with_deflate`]).
    ///
    /// [`Decoder::with_deflate`]: crate::message::Decoder::with_deflate
    pub fn negotiate_deflate(&self, config: &ServerDeflateConfig) -> Option<DeflateParameters> {
        if !config.enabled {
            return None;
        }
        config.accept(&extensions::parse_headers(&self.headers))
    }
}

/// Whether a request asks for a WebSocket at all (`Upgrade: websocket`). A server uses this to
/// route: plain HTTP requests go elsewhere, upgrade attempts go to [`validate_request`].
pub fn is_upgrade_attempt(request: &Request<'_>) -> bool {
    request.headers.has_token("upgrade", "websocket")
        || request.headers.get("sec-websocket-key").is_some()
}

/// Checks an upgrade request against §4.2.1: `GET`, HTTP/1.1 or later, `Host`,
/// `Upgrade: websocket`, `Connection: Upgrade`, a `Sec-WebSocket-Key` of 16 bytes and
/// `Sec-WebSocket-Version: 13`. Every failure is an [`Error`] with its HTTP status.
pub fn validate_request<'a>(request: &Request<'a>) -> Result<Upgrade<'a>, Error> {
    if request.method != "GET" {
        return Err(Error::MethodNotGet);
    }
    if request.minor_version < 1 {
        return Err(Error::UnsupportedHttpVersion);
    }
    let headers = &request.headers;
    let host = match headers.get_str("host") {
        Some(host) if !host.is_empty() && headers.count("host") == 1 => host,
        _ => return Err(Error::MissingHost),
    };
    if !headers.has_token("upgrade", "websocket") {
        return Err(Error::MissingUpgradeWebSocket);
    }
    if !headers.has_token("connection", "upgrade") {
        return Err(Error::MissingConnectionUpgrade);
    }
    if headers.get("sec-websocket-version") != Some(WEBSOCKET_VERSION.as_bytes())
        || headers.count("sec-websocket-version") != 1
    {
        return Err(Error::UnsupportedVersion);
    }
    let key = match headers.get_str("sec-websocket-key") {
        Some(key) if is_valid_key(key.as_bytes()) && headers.count("sec-websocket-key") == 1 => key,
        _ => return Err(Error::InvalidKey),
    };
    Ok(Upgrade {
        path: request.path(),
        target: request.target,
        host,
        origin: headers.get_str("origin"),
        key,
        protocols: headers.list("sec-websocket-protocol").collect(),
        headers: headers.clone(),
    })
}

/// Writes the 101 response that accepts `upgrade` (§4.2.2 item 5), selecting `protocol` (which
/// must be one the client offered) and adding any `extra_headers`.
pub fn write_accept(
    out: &mut Vec<u8>,
    upgrade: &Upgrade<'_>,
    protocol: Option<&str>,
    extra_headers: &[(&str, &str)],
) {
    write_accept_with_deflate(out, upgrade, protocol, None, extra_headers);
}

/// [`write_accept`] that also answers the permessage-deflate offer the server accepted
/// ([`Upgrade::negotiate_deflate`]) with `Sec-WebSocket-Extensions` (RFC 7692 §5); `None`
/// answers without the extension.
///
/// ```
/// use protocol::deflate::ServerDeflateConfig;
/// use protocol::handshake::server::{validate_request, write_accept_with_deflate};
/// use protocol::http::{parse_request, Limits};
///
/// let request = b"GET /chat HTTP/1.1\r\nHost: example.com\r\nUpgrade: websocket\r\n\
///     Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
///     Sec-WebSocket-Version: 13\r\n\
///     Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n\r\n";
/// let request = parse_request(request, Limits::default()).unwrap().complete().unwrap();
/// let upgrade = validate_request(&request).unwrap();
/// let deflate = upgrade.negotiate_deflate(&ServerDeflateConfig::default());
///
/// let mut response = Vec::new();
/// write_accept_with_deflate(&mut response, &upgrade, None, deflate.as_ref(), &[]);
/// let response = String::from_utf8(response).unwrap();
/// assert!(response.contains("Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"));
/// assert!(response.contains("Sec-WebSocket-Extensions: permessage-deflate; \
///     server_no_context_takeover; client_no_context_takeover\r\n"));
/// ```
pub fn write_accept_with_deflate(
    out: &mut Vec<u8>,
    upgrade: &Upgrade<'_>,
    protocol: Option<&str>,
    deflate: Option<&DeflateParameters>,
    extra_headers: &[(&str, &str)],
) {
    out.extend_from_slice(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: ");
    out.extend_from_slice(accept_value(upgrade.key.as_bytes()).as_bytes());
    out.extend_from_slice(b"\r\n");
    if let Some(protocol) = protocol {
        out.extend_from_slice(format!("Sec-WebSocket-Protocol: {protocol}\r\n").as_bytes());
    }
    if let Some(deflate) = deflate {
        out.extend_from_slice(
            format!("{EXTENSIONS_HEADER}: {}\r\n", deflate.header_value()).as_bytes(),
        );
    }
    for (name, value) in extra_headers {
        out.extend_from_slice(format!("{name}: {value}\r\n").as_bytes());
    }
    out.extend_from_slice(b"\r\n");
}

/// Writes the HTTP response that refuses a handshake with `status`, with a one-line body that
/// says why. A 426 carries `Sec-WebSocket-Version: 13` (§4.4); a 405 carries `Allow: GET`.
pub fn write_refusal(out: &mut Vec<u8>, status: u16, why: &str) {
    let body = format!("{status} {}: {why}\n", reason_phrase(status));
    let mut extra: Vec<(&str, &str)> = Vec::new();
    if status == 426 {
        extra.push(("Sec-WebSocket-Version", WEBSOCKET_VERSION));
    }
    if status == 405 {
        extra.push(("Allow", "GET"));
    }
    crate::http::write_response(
        out,
        status,
        &extra,
        "text/plain; charset=utf-8",
        body.as_bytes(),
    );
}

/// Writes the refusal for a handshake [`Error`]: its HTTP status and its message.
pub fn write_error(out: &mut Vec<u8>, error: Error) {
    write_refusal(out, error.http_status().unwrap_or(400), &error.to_string());
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::{parse_request, Limits};

    const RFC_REQUEST: &str = "GET /chat HTTP/1.1\r\nHost: server.example.com\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nOrigin: http://example.com\r\nSec-WebSocket-Protocol: chat, superchat\r\nSec-WebSocket-Version: 13\r\n\r\n";

    fn validate(text: &str) -> Result<Upgrade<'_>, Error> {
        let request = parse_request(text.as_bytes(), Limits::default())
            .unwrap()
            .complete()
            .unwrap();
        validate_request(&request)
    }

    fn with(header: &str, replacement: &str) -> String {
        let mut lines: Vec<String> = RFC_REQUEST.split("\r\n").map(str::to_owned).collect();
        let index = lines
            .iter()
            .position(|line| {
                line.to_ascii_lowercase()
                    .starts_with(&header.to_ascii_lowercase())
            })
            .unwrap();
        if replacement.is_empty() {
            lines.remove(index);
        } else {
            lines[index] = replacement.to_owned();
        }
        lines.join("\r\n")
    }

    #[test]
    fn accepts_the_rfc_example_request_and_exposes_its_fields() {
        let upgrade = validate(RFC_REQUEST).unwrap();
        assert_eq!(upgrade.path, "/chat");
        assert_eq!(upgrade.host, "server.example.com");
        assert_eq!(upgrade.origin, Some("http://example.com"));
        assert_eq!(upgrade.protocols, ["chat", "superchat"]);
        let mut out = Vec::new();
        write_accept(&mut out, &upgrade, Some("chat"), &[]);
        let text = String::from_utf8(out).unwrap();
        assert!(text.starts_with("HTTP/1.1 101 Switching Protocols\r\n"));
        assert!(text.contains("Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"));
        assert!(text.contains("Sec-WebSocket-Protocol: chat\r\n"));
        assert!(text.ends_with("\r\n\r\n"));
    }

    #[test]
    fn header_names_and_tokens_are_case_insensitive_and_lists() {
        let text = RFC_REQUEST
            .replace("Upgrade: websocket", "upgrade: WebSocket")
            .replace("Connection: Upgrade", "CONNECTION: keep-alive,upgrade");
        assert!(validate(&text).is_ok());
    }

    #[test]
    fn a_method_other_than_get_is_refused_with_405() {
        let text = RFC_REQUEST.replacen("GET", "POST", 1);
        assert_eq!(validate(&text), Err(Error::MethodNotGet));
        assert_eq!(Error::MethodNotGet.http_status(), Some(405));
    }

    #[test]
    fn http_1_0_is_refused() {
        let text = RFC_REQUEST.replacen("HTTP/1.1", "HTTP/1.0", 1);
        assert_eq!(validate(&text), Err(Error::UnsupportedHttpVersion));
    }

    #[test]
    fn a_missing_host_is_refused_with_400() {
        assert_eq!(validate(&with("host:", "")), Err(Error::MissingHost));
    }

    #[test]
    fn a_missing_upgrade_websocket_is_refused_with_400() {
        assert_eq!(
            validate(&with("upgrade:", "Upgrade: h2c")),
            Err(Error::MissingUpgradeWebSocket)
        );
    }

    #[test]
    fn a_missing_connection_upgrade_is_refused_with_400() {
        assert_eq!(
            validate(&with("connection:", "Connection: keep-alive")),
            Err(Error::MissingConnectionUpgrade)
        );
    }

    #[test]
    fn a_key_that_is_not_sixteen_bytes_is_refused_with_400() {
        for bad in [
            "Sec-WebSocket-Key: dGhlIHNhbXBsZQ==",
            "Sec-WebSocket-Key: !!!",
            "",
        ] {
            assert_eq!(
                validate(&with("sec-websocket-key:", bad)),
                Err(Error::InvalidKey),
                "{bad}"
            );
        }
        assert_eq!(Error::InvalidKey.http_status(), Some(400));
    }

    #[test]
    fn a_version_other_than_13_gets_426_with_the_supported_version() {
        for bad in ["Sec-WebSocket-Version: 8", "Sec-WebSocket-Version: 14", ""] {
            assert_eq!(
                validate(&with("sec-websocket-version:", bad)),
                Err(Error::UnsupportedVersion),
                "{bad}"
            );
        }
        let mut out = Vec::new();
        write_error(&mut out, Error::UnsupportedVersion);
        let text = String::from_utf8(out).unwrap();
        assert!(text.starts_with("HTTP/1.1 426 Upgrade Required\r\n"));
        assert!(text.contains("Sec-WebSocket-Version: 13\r\n"));
    }

    #[test]
    fn a_deflate_offer_is_answered_in_the_101() {
        let text = RFC_REQUEST.replace(
            "Sec-WebSocket-Version: 13\r\n",
            "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Extensions: permessage-deflate; foo\r\nsec-websocket-extensions: permessage-deflate; server_max_window_bits=10; client_max_window_bits\r\n",
        );
        let upgrade = validate(&text).unwrap();
        let agreed = upgrade.negotiate_deflate(&ServerDeflateConfig::default());
        assert_eq!(agreed.unwrap().server_max_window_bits, Some(10));
        let mut out = Vec::new();
        write_accept_with_deflate(&mut out, &upgrade, None, agreed.as_ref(), &[]);
        let text = String::from_utf8(out).unwrap();
        assert!(text.contains("\r\nSec-WebSocket-Extensions: permessage-deflate; server_no_context_takeover; client_no_context_takeover; server_max_window_bits=10\r\n"));
        assert!(text.ends_with("\r\n\r\n"));
        assert_eq!(
            upgrade.negotiate_deflate(&ServerDeflateConfig::disabled()),
            None
        );
        // Without an offer there is nothing to negotiate.
        assert_eq!(
            validate(RFC_REQUEST)
                .unwrap()
                .negotiate_deflate(&ServerDeflateConfig::default()),
            None
        );
    }

    #[test]
    fn refusals_carry_their_status_and_reason() {
        let mut out = Vec::new();
        write_error(&mut out, Error::HeadTooLarge);
        let text = String::from_utf8(out).unwrap();
        assert!(text.starts_with("HTTP/1.1 431 Request Header Fields Too Large\r\n"));
        assert!(text.ends_with("http head too large\n"));
    }
}
