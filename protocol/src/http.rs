//! The HTTP/1.1 heads around the opening handshake (RFC 6455 §4.1, §4.2; RFC 9112): parse a
//! request or response head out of a byte slice, and write simple responses.
//!
//! Like `httparse`, the caller owns the buffer and the results borrow from it. Running out of
//! input is [`Status::Partial`] and consumes nothing; a head longer than the limit is
//! [`Error::HeadTooLarge`] whether or not it is complete, so a peer cannot make us buffer more.

use crate::{Error, Status};

/// Bounds on what a head may make us hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// The longest head, request line and headers and the blank line, in bytes (431 beyond).
    pub max_head_len: usize,
    /// The most header lines (431 beyond).
    pub max_headers: usize,
}

impl Default for Limits {
    /// 8 KiB and 100 headers, as common HTTP servers allow.
    fn default() -> Self {
        Limits {
            max_head_len: 8 * 1024,
            max_headers: 100,
        }
    }
}

/// One header line: a case-insensitive name and its value with surrounding white space cut.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header<'a> {
    /// The name as it was sent; compare with [`str::eq_ignore_ascii_case`].
    pub name: &'a str,
    /// The value; HTTP allows bytes that are not UTF-8 here.
    pub value: &'a [u8],
}

/// The header lines of a request or response, with lookups that follow HTTP's rules.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Headers<'a>(pub Vec<Header<'a>>);

impl<'a> Headers<'a> {
    /// The value of the first header called `name` (case-insensitive).
    pub fn get(&self, name: &str) -> Option<&'a [u8]> {
        self.0
            .iter()
            .find(|header| header.name.eq_ignore_ascii_case(name))
            .map(|header| header.value)
    }

    /// The value of the first header called `name`, if it is UTF-8.
    pub fn get_str(&self, name: &str) -> Option<&'a str> {
        self.get(name)
            .and_then(|value| std::str::from_utf8(value).ok())
    }

    /// How many header lines are called `name`.
    pub fn count(&self, name: &str) -> usize {
        self.0
            .iter()
            .filter(|header| header.name.eq_ignore_ascii_case(name))
            .count()
    }

    /// The comma-separated elements of every header called `name`, trimmed, empty ones
    /// skipped (RFC 9110 §5.6.1: a list may be split over several lines).
    pub fn list(&self, name: &'a str) -> impl Iterator<Item = &'a str> + '_ {
        self.0
            .iter()
            .filter(move |header| header.name.eq_ignore_ascii_case(name))
            .filter_map(|header| std::str::from_utf8(header.value).ok())
            .flat_map(|value| value.split(','))
            .map(str::trim)
            .filter(|element| !element.is_empty())
    }

    /// Whether the list header `name` holds `token` (case-insensitive), e.g.
    /// `Connection: keep-alive, Upgrade` holds `upgrade`.
    pub fn has_token(&self, name: &'a str, token: &str) -> bool {
        self.list(name)
            .any(|element| element.eq_ignore_ascii_case(token))
    }

    /// Iterates over every header line.
    pub fn iter(&self) -> impl Iterator<Item = &Header<'a>> {
        self.0.iter()
    }
}

/// A parsed request head.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request<'a> {
    /// The method, e.g. `GET`.
    pub method: &'a str,
    /// The request target as sent, e.g. `/chat?x=1`.
    pub target: &'a str,
    /// The minor version of HTTP/1.x.
    pub minor_version: u8,
    /// The header lines.
    pub headers: Headers<'a>,
    /// The length of the head in bytes, blank line included: the body or the frames start here.
    pub head_len: usize,
}

impl<'a> Request<'a> {
    /// The target without its query string.
    pub fn path(&self) -> &'a str {
        self.target.split(['?', '#']).next().unwrap_or("")
    }
}

/// A parsed response head.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response<'a> {
    /// The minor version of HTTP/1.x.
    pub minor_version: u8,
    /// The status code.
    pub status: u16,
    /// The reason phrase.
    pub reason: &'a str,
    /// The header lines.
    pub headers: Headers<'a>,
    /// The length of the head in bytes, blank line included: the frames start here.
    pub head_len: usize,
}

/// Parses a request head from the front of `buf`.
pub fn parse_request<'a>(buf: &'a [u8], limits: Limits) -> Result<Status<Request<'a>>, Error> {
    check_method_prefix(buf)?;
    let Some((head, head_len)) = find_head(buf, limits)? else {
        return Ok(Status::Partial);
    };
    let (first_line, header_lines) = split_first_line(head);
    let mut parts = first_line.splitn(3, |&b| b == b' ');
    let (Some(method), Some(target), Some(version)) = (parts.next(), parts.next(), parts.next())
    else {
        return Err(Error::InvalidRequestLine);
    };
    if method.is_empty() || !method.iter().all(|&b| is_token_byte(b)) {
        return Err(Error::InvalidRequestLine);
    }
    if target.is_empty() || !target.iter().all(|&b| b.is_ascii_graphic()) {
        return Err(Error::InvalidRequestLine);
    }
    let minor_version = parse_version(version).ok_or(Error::InvalidRequestLine)?;
    Ok(Status::Complete(Request {
        method: ascii(method),
        target: ascii(target),
        minor_version,
        headers: parse_headers(header_lines, limits)?,
        head_len,
    }))
}

/// Parses a response head from the front of `buf`.
pub fn parse_response<'a>(buf: &'a [u8], limits: Limits) -> Result<Status<Response<'a>>, Error> {
    let Some((head, head_len)) = find_head(buf, limits)? else {
        return Ok(Status::Partial);
    };
    let (first_line, header_lines) = split_first_line(head);
    let mut parts = first_line.splitn(3, |&b| b == b' ');
    let (Some(version), Some(code)) = (parts.next(), parts.next()) else {
        return Err(Error::InvalidStatusLine);
    };
    let minor_version = parse_version(version).ok_or(Error::InvalidStatusLine)?;
    if code.len() != 3 || !code.iter().all(u8::is_ascii_digit) {
        return Err(Error::InvalidStatusLine);
    }
    let status = ascii(code).parse().map_err(|_| Error::InvalidStatusLine)?;
    let reason =
        std::str::from_utf8(parts.next().unwrap_or(b"")).map_err(|_| Error::InvalidStatusLine)?;
    Ok(Status::Complete(Response {
        minor_version,
        status,
        reason,
        headers: parse_headers(header_lines, limits)?,
        head_len,
    }))
}

/// The standard reason phrase of the statuses this crate's users send.
pub fn reason_phrase(status: u16) -> &'static str {
    match status {
        101 => "Switching Protocols",
        200 => "OK",
        400 => "Bad Request",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        426 => "Upgrade Required",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        503 => "Service Unavailable",
        _ => "Unknown",
    }
}

/// Writes a complete response with a body and `Connection: close`.
pub fn write_response(
    out: &mut Vec<u8>,
    status: u16,
    extra_headers: &[(&str, &str)],
    content_type: &str,
    body: &[u8],
) {
    out.extend_from_slice(format!("HTTP/1.1 {status} {}\r\n", reason_phrase(status)).as_bytes());
    for (name, value) in extra_headers {
        out.extend_from_slice(format!("{name}: {value}\r\n").as_bytes());
    }
    out.extend_from_slice(
        format!(
            "Content-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            body.len()
        )
        .as_bytes(),
    );
    out.extend_from_slice(body);
}

/// Refuses early a request whose first bytes cannot start a method, so that garbage is
/// answered at once rather than held until the head limit.
fn check_method_prefix(buf: &[u8]) -> Result<(), Error> {
    for &byte in buf.iter().take(32) {
        if byte == b' ' {
            return Ok(());
        }
        if !is_token_byte(byte) {
            return Err(Error::InvalidRequestLine);
        }
    }
    if buf.len() >= 32 {
        return Err(Error::InvalidRequestLine);
    }
    Ok(())
}

/// Finds the blank line that ends the head. Returns the head without it and the length with it.
fn find_head(buf: &[u8], limits: Limits) -> Result<Option<(&[u8], usize)>, Error> {
    let searched = &buf[..buf.len().min(limits.max_head_len)];
    let end = searched.windows(4).position(|window| window == b"\r\n\r\n");
    // A bare LF would make us wait for a CRLF CRLF that never comes: refuse it at once.
    let checked = end.map_or(searched, |end| &searched[..end + 4]);
    let bare_lf = checked
        .iter()
        .enumerate()
        .any(|(index, &byte)| byte == b'\n' && (index == 0 || checked[index - 1] != b'\r'));
    if bare_lf {
        return Err(Error::BareLineFeed);
    }
    match end {
        Some(end) => Ok(Some((&buf[..end + 2], end + 4))),
        None if buf.len() >= limits.max_head_len => Err(Error::HeadTooLarge),
        None => Ok(None),
    }
}

fn split_first_line(head: &[u8]) -> (&[u8], &[u8]) {
    let end = head
        .windows(2)
        .position(|window| window == b"\r\n")
        .unwrap_or(head.len());
    (&head[..end], &head[(end + 2).min(head.len())..])
}

fn parse_version(version: &[u8]) -> Option<u8> {
    match version {
        [b'H', b'T', b'T', b'P', b'/', b'1', b'.', minor] if minor.is_ascii_digit() => {
            Some(minor - b'0')
        }
        _ => None,
    }
}

fn parse_headers(lines: &[u8], limits: Limits) -> Result<Headers<'_>, Error> {
    let mut headers = Vec::new();
    for line in lines.split(|&b| b == b'\n') {
        let Some(line) = line.strip_suffix(b"\r") else {
            if line.is_empty() {
                continue;
            }
            return Err(Error::InvalidHeader);
        };
        if headers.len() == limits.max_headers {
            return Err(Error::TooManyHeaders);
        }
        let colon = line
            .iter()
            .position(|&b| b == b':')
            .ok_or(Error::InvalidHeader)?;
        let name = &line[..colon];
        if name.is_empty() || !name.iter().all(|&b| is_token_byte(b)) {
            // Also refuses obsolete line folding: a continuation line starts with white space.
            return Err(Error::InvalidHeader);
        }
        let value = line[colon + 1..].trim_ascii();
        if value.iter().any(|&b| b != b'\t' && (b < 0x20 || b == 0x7f)) {
            return Err(Error::InvalidHeader);
        }
        headers.push(Header {
            name: ascii(name),
            value,
        });
    }
    Ok(Headers(headers))
}

/// RFC 9110 §5.6.2: `tchar`.
pub(crate) fn is_token_byte(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&byte)
}

/// Bytes already checked to be ASCII.
fn ascii(bytes: &[u8]) -> &str {
    std::str::from_utf8(bytes).unwrap_or("")
}

#[cfg(test)]
mod tests {
    use super::*;

    const REQUEST: &[u8] = b"GET /chat?room=1 HTTP/1.1\r\nHost: server.example.com\r\nUpgrade: websocket\r\nConnection: keep-alive, Upgrade\r\nX-Empty:\r\nSec-WebSocket-Protocol: chat\r\nSec-WebSocket-Protocol: superchat, , v2\r\n\r\n";

    #[test]
    fn parses_a_request_head_and_looks_up_headers_case_insensitively() {
        let request = parse_request(REQUEST, Limits::default())
            .unwrap()
            .complete()
            .unwrap();
        assert_eq!(request.method, "GET");
        assert_eq!(request.target, "/chat?room=1");
        assert_eq!(request.path(), "/chat");
        assert_eq!(request.minor_version, 1);
        assert_eq!(request.head_len, REQUEST.len());
        assert_eq!(request.headers.get_str("host"), Some("server.example.com"));
        assert_eq!(request.headers.get("x-empty"), Some(&b""[..]));
        assert!(request.headers.has_token("connection", "upgrade"));
        let protocols: Vec<_> = request.headers.list("sec-websocket-protocol").collect();
        assert_eq!(protocols, ["chat", "superchat", "v2"]);
    }

    #[test]
    fn every_truncated_prefix_of_a_request_is_partial() {
        for cut in 0..REQUEST.len() {
            assert_eq!(
                parse_request(&REQUEST[..cut], Limits::default()),
                Ok(Status::Partial),
                "cut at {cut}"
            );
        }
    }

    #[test]
    fn bytes_after_the_head_are_not_part_of_it() {
        let mut input = REQUEST.to_vec();
        input.extend_from_slice(b"\x81\x80....");
        let request = parse_request(&input, Limits::default())
            .unwrap()
            .complete()
            .unwrap();
        assert_eq!(request.head_len, REQUEST.len());
    }

    #[test]
    fn a_head_over_the_limit_is_too_large_even_when_incomplete() {
        let limits = Limits {
            max_head_len: 64,
            max_headers: 100,
        };
        let mut input = b"GET / HTTP/1.1\r\nX-Long: ".to_vec();
        input.resize(64, b'a');
        assert_eq!(parse_request(&input, limits), Err(Error::HeadTooLarge));
        assert_eq!(Error::HeadTooLarge.http_status(), Some(431));
    }

    #[test]
    fn too_many_headers_is_refused() {
        let mut input = b"GET / HTTP/1.1\r\n".to_vec();
        for i in 0..101 {
            input.extend_from_slice(format!("X-{i}: 1\r\n").as_bytes());
        }
        input.extend_from_slice(b"\r\n");
        assert_eq!(
            parse_request(&input, Limits::default()),
            Err(Error::TooManyHeaders)
        );
    }

    #[test]
    fn malformed_requests_are_bad_requests() {
        let cases: &[(&[u8], Error)] = &[
            (b"\x16\x03\x01\x02\x00\x01", Error::InvalidRequestLine), // a TLS ClientHello
            (b"GET\r\n\r\n", Error::InvalidRequestLine),
            (b"GET / HTTP/2\r\n\r\n", Error::InvalidRequestLine),
            (b"GET / FTP/1.1\r\n\r\n", Error::InvalidRequestLine),
            (
                b"GET / HTTP/1.1\r\nNo colon here\r\n\r\n",
                Error::InvalidHeader,
            ),
            (
                b"GET / HTTP/1.1\r\nHost: a\r\n folded\r\n\r\n",
                Error::InvalidHeader,
            ),
            (
                b"GET / HTTP/1.1\r\nBad\x01: a\r\n\r\n",
                Error::InvalidHeader,
            ),
            (b"GET / HTTP/1.1\r\nX: a\x00b\r\n\r\n", Error::InvalidHeader),
            (b"GET / HTTP/1.1\r\nX: a\nY: b\r\n\r\n", Error::BareLineFeed),
            // Refused at once, not left waiting for a CRLF CRLF that never comes.
            (b"GET / HTTP/1.1\nHost: a\n\n", Error::BareLineFeed),
            (b"GET / HTTP/1.1\nHost: a\n", Error::BareLineFeed),
        ];
        for (input, error) in cases {
            assert_eq!(
                parse_request(input, Limits::default()),
                Err(*error),
                "{}",
                String::from_utf8_lossy(input)
            );
            assert_eq!(error.http_status(), Some(400));
        }
    }

    #[test]
    fn parses_a_response_head() {
        let input = b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n\x81\x00";
        let response = parse_response(input, Limits::default())
            .unwrap()
            .complete()
            .unwrap();
        assert_eq!(response.status, 101);
        assert_eq!(response.reason, "Switching Protocols");
        assert_eq!(response.head_len, input.len() - 2);
        for cut in 0..response.head_len {
            assert_eq!(
                parse_response(&input[..cut], Limits::default()),
                Ok(Status::Partial)
            );
        }
    }

    #[test]
    fn writes_a_response_with_length_and_close() {
        let mut out = Vec::new();
        write_response(&mut out, 404, &[], "text/plain", b"no such page\n");
        let text = String::from_utf8(out).unwrap();
        assert!(text.starts_with("HTTP/1.1 404 Not Found\r\n"));
        assert!(text.contains("Content-Length: 13\r\n"));
        assert!(text.contains("Connection: close\r\n"));
        assert!(text.ends_with("\r\n\r\nno such page\n"));
    }
}
