//! The `Sec-WebSocket-Extensions` header (RFC 6455 §9.1): a list of extensions, each a token
//! followed by `;`-separated parameters `name[=value]`, where a value is a token or a quoted
//! string whose unescaped content is a token.
//!
//! ```text
//! Sec-WebSocket-Extensions = extension-list
//! extension-list = 1#extension
//! extension = extension-token *( ";" extension-param )
//! extension-param = token [ "=" (token | quoted-string) ]
//! ```
//!
//! The list may be split over several header lines (RFC 9110 §5.3). One element that does not
//! follow the grammar does not spoil the others: it is reported as [`MalformedExtension`] and
//! the parse goes on after the next comma outside a quoted string. What an extension's
//! parameters mean is the business of the extension ([`crate::deflate`]).

use std::borrow::Cow;

use crate::http::{is_token_byte, Headers};

/// The header's name, as §11.3.2 registers it.
pub const HEADER_NAME: &str = "Sec-WebSocket-Extensions";

/// One element of the list: an extension and its parameters, in the order sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Extension<'a> {
    /// The extension token, e.g. `permessage-deflate`. Compare with
    /// [`str::eq_ignore_ascii_case`]: tokens are case-insensitive.
    pub name: &'a str,
    /// The parameters, duplicates included: what a duplicate means is for the extension to say.
    pub parameters: Vec<Parameter<'a>>,
}

/// One `name[=value]` parameter of an extension.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Parameter<'a> {
    /// The parameter's name.
    pub name: &'a str,
    /// The value, unquoted and unescaped; `None` for a parameter sent without `=`.
    pub value: Option<Cow<'a, str>>,
}

/// An element of the list that does not follow the grammar of §9.1.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MalformedExtension;

/// Every element of every `Sec-WebSocket-Extensions` header line, in order.
pub fn parse_headers<'a>(headers: &Headers<'a>) -> Vec<Result<Extension<'a>, MalformedExtension>> {
    let mut elements = Vec::new();
    for header in headers.iter() {
        if !header.name.eq_ignore_ascii_case(HEADER_NAME) {
            continue;
        }
        match std::str::from_utf8(header.value) {
            Ok(value) => elements.extend(parse_list(value)),
            Err(_) => elements.push(Err(MalformedExtension)),
        }
    }
    elements
}

/// The elements of one header value. Empty elements (`a, , b`) are skipped, as RFC 9110 §5.6.1
/// asks of a recipient.
pub fn parse_list(value: &str) -> Vec<Result<Extension<'_>, MalformedExtension>> {
    let mut elements = Vec::new();
    let mut cursor = Cursor { text: value, at: 0 };
    loop {
        cursor.skip_white_space();
        if cursor.at_end() {
            return elements;
        }
        if cursor.eat(b',') {
            continue;
        }
        match cursor.extension() {
            Ok(extension) => elements.push(Ok(extension)),
            Err(malformed) => {
                elements.push(Err(malformed));
                cursor.skip_to_next_element();
            }
        }
    }
}

/// A position in a header value.
struct Cursor<'a> {
    text: &'a str,
    at: usize,
}

impl<'a> Cursor<'a> {
    fn at_end(&self) -> bool {
        self.at >= self.text.len()
    }

    fn peek(&self) -> Option<u8> {
        self.text.as_bytes().get(self.at).copied()
    }

    fn eat(&mut self, byte: u8) -> bool {
        if self.peek() == Some(byte) {
            self.at += 1;
            true
        } else {
            false
        }
    }

    fn skip_white_space(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t')) {
            self.at += 1;
        }
    }

    fn token(&mut self) -> Result<&'a str, MalformedExtension> {
        let start = self.at;
        while self.peek().is_some_and(is_token_byte) {
            self.at += 1;
        }
        if self.at == start {
            return Err(MalformedExtension);
        }
        Ok(&self.text[start..self.at])
    }

    /// A quoted string (RFC 9110 §5.6.4) whose content, unescaped, must be a token (§9.1).
    fn quoted_token(&mut self) -> Result<Cow<'a, str>, MalformedExtension> {
        debug_assert_eq!(self.peek(), Some(b'"'));
        self.at += 1;
        let start = self.at;
        let mut escaped: Option<String> = None;
        loop {
            let Some(byte) = self.peek() else {
                return Err(MalformedExtension);
            };
            self.at += 1;
            match byte {
                b'"' => break,
                b'\\' => {
                    let Some(next) = self.peek() else {
                        return Err(MalformedExtension);
                    };
                    self.at += 1;
                    escaped
                        .get_or_insert_with(|| self.text[start..self.at - 2].to_owned())
                        .push(char::from(next));
                }
                _ => {
                    if let Some(escaped) = escaped.as_mut() {
                        escaped.push(char::from(byte));
                    }
                }
            }
        }
        let value = match escaped {
            Some(escaped) => Cow::Owned(escaped),
            None => Cow::Borrowed(&self.text[start..self.at - 1]),
        };
        if value.is_empty() || !value.bytes().all(is_token_byte) {
            return Err(MalformedExtension);
        }
        Ok(value)
    }

    fn extension(&mut self) -> Result<Extension<'a>, MalformedExtension> {
        let name = self.token()?;
        let mut parameters = Vec::new();
        loop {
            self.skip_white_space();
            match self.peek() {
                None | Some(b',') => return Ok(Extension { name, parameters }),
                Some(b';') => self.at += 1,
                Some(_) => return Err(MalformedExtension),
            }
            self.skip_white_space();
            let parameter_name = self.token()?;
            self.skip_white_space();
            let value = if self.eat(b'=') {
                self.skip_white_space();
                Some(if self.peek() == Some(b'"') {
                    self.quoted_token()?
                } else {
                    Cow::Borrowed(self.token()?)
                })
            } else {
                None
            };
            parameters.push(Parameter {
                name: parameter_name,
                value,
            });
        }
    }

    /// After a malformed element: on to the comma that ends it, quoted strings skipped whole.
    fn skip_to_next_element(&mut self) {
        let mut quoted = false;
        while let Some(byte) = self.peek() {
            self.at += 1;
            match byte {
                b'"' => quoted = !quoted,
                b'\\' if quoted => self.at += 1,
                b',' if !quoted => return,
                _ => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parameter<'a>(name: &'a str, value: Option<&'a str>) -> Parameter<'a> {
        Parameter {
            name,
            value: value.map(Cow::Borrowed),
        }
    }

    #[test]
    fn parses_several_extensions_with_parameters_in_order() {
        let list = parse_list(
            "permessage-deflate; client_max_window_bits; server_max_window_bits=10, permessage-deflate;client_max_window_bits ,x-webkit-deflate-frame",
        );
        assert_eq!(
            list,
            [
                Ok(Extension {
                    name: "permessage-deflate",
                    parameters: vec![
                        parameter("client_max_window_bits", None),
                        parameter("server_max_window_bits", Some("10")),
                    ],
                }),
                Ok(Extension {
                    name: "permessage-deflate",
                    parameters: vec![parameter("client_max_window_bits", None)],
                }),
                Ok(Extension {
                    name: "x-webkit-deflate-frame",
                    parameters: vec![],
                }),
            ]
        );
    }

    #[test]
    fn quoted_values_are_unquoted_and_unescaped() {
        let list = parse_list(
            r#"permessage-deflate; server_max_window_bits="10"; client_max_window_bits = "1\2""#,
        );
        let extension = list[0].clone().unwrap();
        assert_eq!(extension.parameters[0].value.as_deref(), Some("10"));
        assert_eq!(extension.parameters[1].value.as_deref(), Some("12"));
    }

    #[test]
    fn a_malformed_element_is_reported_and_the_next_one_still_parses() {
        let cases: &[(&str, usize)] = &[
            (r#"permessage-deflate; a="b c", foo"#, 1),
            (r#"permessage-deflate; a="", foo"#, 1),
            (r#"permessage-deflate; a="x,y", foo"#, 1),
            (r#"permessage-deflate; a="unterminated, foo"#, 0),
            ("permessage-deflate; =1, foo", 1),
            ("permessage-deflate; a=, foo", 1),
            ("permessage-deflate a, foo", 1),
            ("permessage-deflate; a=1 2, foo", 1),
            ("permessage-deflate;, foo", 1),
            ("(comment), foo", 1),
        ];
        for (value, good_after) in cases {
            let list = parse_list(value);
            assert_eq!(list[0], Err(MalformedExtension), "{value}");
            assert_eq!(list.len() - 1, *good_after, "{value}: {list:?}");
            if *good_after == 1 {
                assert_eq!(list[1].as_ref().unwrap().name, "foo", "{value}");
            }
        }
    }

    #[test]
    fn empty_elements_are_skipped() {
        assert_eq!(parse_list(" , ,a,, ").len(), 1);
        assert!(parse_list("").is_empty());
    }

    #[test]
    fn every_header_line_is_read() {
        let head = b"GET / HTTP/1.1\r\nSec-WebSocket-Extensions: a; x=1\r\nHost: h\r\nsec-websocket-extensions: b, c\r\n\r\n";
        let request = crate::http::parse_request(head, crate::http::Limits::default())
            .unwrap()
            .complete()
            .unwrap();
        let names: Vec<&str> = parse_headers(&request.headers)
            .into_iter()
            .map(|element| element.unwrap().name)
            .collect();
        assert_eq!(names, ["a", "b", "c"]);
    }
}
