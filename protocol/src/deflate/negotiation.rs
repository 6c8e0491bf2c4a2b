//! Negotiating permessage-deflate (RFC 7692 §5, §7.1): the client's offers, the server's pick
//! and answer, and the client's check of that answer.
//!
//! A server that cannot or will not take an offer **declines** it (§5: unknown, duplicate or
//! invalid parameters), which means it tries the next offer and, when none is left, answers
//! without the extension: never a failed handshake. A client that gets an answer it did not ask
//! for, or one that breaks §7.1, **fails** the connection ([`Error::InvalidDeflateResponse`]).

use std::fmt::Write as _;

use crate::extensions::{Extension, MalformedExtension, Parameter};
use crate::frame::Role;
use crate::Error;

use super::{EXTENSION_NAME, MAX_WINDOW_BITS, MIN_WINDOW_BITS};

const SERVER_NO_CONTEXT_TAKEOVER: &str = "server_no_context_takeover";
const CLIENT_NO_CONTEXT_TAKEOVER: &str = "client_no_context_takeover";
const SERVER_MAX_WINDOW_BITS: &str = "server_max_window_bits";
const CLIENT_MAX_WINDOW_BITS: &str = "client_max_window_bits";

/// `client_max_window_bits` in an offer (§7.1.2.2): absent, present without a value (the
/// client can take a limit from the server), or a limit the client sets itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ClientMaxWindowBits {
    /// Not offered: the server must not send the parameter back.
    Absent,
    /// Offered without a value: the server may answer with a limit.
    #[default]
    WithoutValue,
    /// The client will use a window of at most 2^n bytes, whatever the answer.
    Value(u8),
}

/// One permessage-deflate offer (§7.1): what a client asks for. A client writes it with
/// [`DeflateOffer::header_value`]; a server reads it with [`DeflateOffer::from_extension`].
///
/// The default is what browsers send: `permessage-deflate; client_max_window_bits`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct DeflateOffer {
    /// Asks the server to compress every message on its own (§7.1.1.1).
    pub server_no_context_takeover: bool,
    /// Tells the server that the client compresses every message on its own (§7.1.1.2).
    pub client_no_context_takeover: bool,
    /// Asks the server to use a window of at most 2^n bytes (§7.1.2.1).
    pub server_max_window_bits: Option<u8>,
    /// See [`ClientMaxWindowBits`] (§7.1.2.2).
    pub client_max_window_bits: ClientMaxWindowBits,
}

/// Why a server declined an offer (§5), for logs and tests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decline {
    /// The element is not permessage-deflate, or does not follow the grammar of RFC 6455 §9.1.
    NotPermessageDeflate,
    /// A parameter §7.1 does not define for an offer.
    UnknownParameter,
    /// A parameter given twice.
    DuplicateParameter,
    /// A value where none is allowed, none where one is needed, or window bits outside 8..=15.
    InvalidValue,
}

impl DeflateOffer {
    /// The offer a browser makes: `permessage-deflate; client_max_window_bits`.
    pub fn browser() -> Self {
        DeflateOffer::default()
    }

    /// `permessage-deflate; client_no_context_takeover; client_max_window_bits`: the browser's
    /// offer plus what this crate's [`Deflater`](super::Deflater) does anyway (every message on
    /// its own), said out loud so that a server can serve every such client with one inflater.
    /// Some servers accept only offers that say it (Autobahn's cases 13.2, 13.5 and 13.6).
    pub fn without_client_context_takeover() -> Self {
        DeflateOffer {
            client_no_context_takeover: true,
            ..DeflateOffer::default()
        }
    }

    /// The `Sec-WebSocket-Extensions` value of this offer (§7.1).
    pub fn header_value(&self) -> String {
        let mut value = String::from(EXTENSION_NAME);
        if self.server_no_context_takeover {
            value.push_str("; ");
            value.push_str(SERVER_NO_CONTEXT_TAKEOVER);
        }
        if self.client_no_context_takeover {
            value.push_str("; ");
            value.push_str(CLIENT_NO_CONTEXT_TAKEOVER);
        }
        if let Some(bits) = self.server_max_window_bits {
            let _ = write!(value, "; {SERVER_MAX_WINDOW_BITS}={bits}");
        }
        match self.client_max_window_bits {
            ClientMaxWindowBits::Absent => {}
            ClientMaxWindowBits::WithoutValue => {
                value.push_str("; ");
                value.push_str(CLIENT_MAX_WINDOW_BITS);
            }
            ClientMaxWindowBits::Value(bits) => {
                let _ = write!(value, "; {CLIENT_MAX_WINDOW_BITS}={bits}");
            }
        }
        value
    }

    /// Reads one element of a client's `Sec-WebSocket-Extensions` as a permessage-deflate
    /// offer, or says why a server must decline it (§5).
    pub fn from_extension(extension: &Extension<'_>) -> Result<DeflateOffer, Decline> {
        if !extension.name.eq_ignore_ascii_case(EXTENSION_NAME) {
            return Err(Decline::NotPermessageDeflate);
        }
        let mut offer = DeflateOffer {
            client_max_window_bits: ClientMaxWindowBits::Absent,
            ..DeflateOffer::default()
        };
        let mut seen = Seen::default();
        for parameter in &extension.parameters {
            let name = parameter.name.to_ascii_lowercase();
            match name.as_str() {
                SERVER_NO_CONTEXT_TAKEOVER => {
                    seen.once(0)?;
                    no_value(parameter)?;
                    offer.server_no_context_takeover = true;
                }
                CLIENT_NO_CONTEXT_TAKEOVER => {
                    seen.once(1)?;
                    no_value(parameter)?;
                    offer.client_no_context_takeover = true;
                }
                SERVER_MAX_WINDOW_BITS => {
                    seen.once(2)?;
                    offer.server_max_window_bits = Some(window_bits(parameter)?);
                }
                CLIENT_MAX_WINDOW_BITS => {
                    seen.once(3)?;
                    offer.client_max_window_bits = match parameter.value {
                        None => ClientMaxWindowBits::WithoutValue,
                        Some(_) => ClientMaxWindowBits::Value(window_bits(parameter)?),
                    };
                }
                _ => return Err(Decline::UnknownParameter),
            }
        }
        Ok(offer)
    }

    /// Checks a server's answer to this offer (§5, §7.1) from every element of the response's
    /// `Sec-WebSocket-Extensions`: `Ok(None)` when the server declined (no extension in the
    /// answer), the parameters in force when it accepted, and an error the client must fail
    /// the connection with otherwise.
    pub fn check_response(
        &self,
        elements: &[Result<Extension<'_>, MalformedExtension>],
    ) -> Result<Option<DeflateParameters>, Error> {
        let extension = match elements {
            [] => return Ok(None),
            [Ok(extension)] => extension,
            [Err(MalformedExtension)] => return Err(Error::InvalidDeflateResponse),
            // One extension was offered: anything more was not (RFC 6455 §4.1 item 5).
            _ => return Err(Error::UnofferedExtension),
        };
        if !extension.name.eq_ignore_ascii_case(EXTENSION_NAME) {
            return Err(Error::UnofferedExtension);
        }
        let mut agreed = DeflateParameters::default();
        let mut seen = Seen::default();
        let invalid = |_| Error::InvalidDeflateResponse;
        for parameter in &extension.parameters {
            let name = parameter.name.to_ascii_lowercase();
            match name.as_str() {
                SERVER_NO_CONTEXT_TAKEOVER => {
                    seen.once(0).map_err(invalid)?;
                    no_value(parameter).map_err(invalid)?;
                    agreed.server_no_context_takeover = true;
                }
                CLIENT_NO_CONTEXT_TAKEOVER => {
                    seen.once(1).map_err(invalid)?;
                    no_value(parameter).map_err(invalid)?;
                    agreed.client_no_context_takeover = true;
                }
                SERVER_MAX_WINDOW_BITS => {
                    seen.once(2).map_err(invalid)?;
                    let bits = window_bits(parameter).map_err(invalid)?;
                    // §7.1.2.1: "the same or smaller value as the offer".
                    if self
                        .server_max_window_bits
                        .is_some_and(|offered| bits > offered)
                    {
                        return Err(Error::InvalidDeflateResponse);
                    }
                    agreed.server_max_window_bits = Some(bits);
                }
                CLIENT_MAX_WINDOW_BITS => {
                    seen.once(3).map_err(invalid)?;
                    let bits = window_bits(parameter).map_err(invalid)?;
                    match self.client_max_window_bits {
                        // §7.1.2.2: never in an answer to an offer without it.
                        ClientMaxWindowBits::Absent => return Err(Error::InvalidDeflateResponse),
                        ClientMaxWindowBits::Value(offered) if bits > offered => {
                            return Err(Error::InvalidDeflateResponse)
                        }
                        _ => {}
                    }
                    agreed.client_max_window_bits = Some(bits);
                }
                _ => return Err(Error::InvalidDeflateResponse),
            }
        }
        // What the client promised in its offer holds whatever the answer says.
        agreed.client_no_context_takeover |= self.client_no_context_takeover;
        if let ClientMaxWindowBits::Value(offered) = self.client_max_window_bits {
            let limit = agreed.client_max_window_bits.unwrap_or(MAX_WINDOW_BITS);
            agreed.client_max_window_bits = Some(limit.min(offered));
        }
        Ok(Some(agreed))
    }
}

/// Which parameters were seen, to decline or refuse duplicates (§5).
#[derive(Default)]
struct Seen([bool; 4]);

impl Seen {
    fn once(&mut self, index: usize) -> Result<(), Decline> {
        if std::mem::replace(&mut self.0[index], true) {
            return Err(Decline::DuplicateParameter);
        }
        Ok(())
    }
}

fn no_value(parameter: &Parameter<'_>) -> Result<(), Decline> {
    match parameter.value {
        None => Ok(()),
        Some(_) => Err(Decline::InvalidValue),
    }
}

/// §7.1.2: "a decimal integer value without leading zeros between 8 to 15, inclusive".
fn window_bits(parameter: &Parameter<'_>) -> Result<u8, Decline> {
    let value = parameter.value.as_deref().ok_or(Decline::InvalidValue)?;
    match value.as_bytes() {
        [digit @ b'8'..=b'9'] => Ok(digit - b'0'),
        [b'1', digit @ b'0'..=b'5'] => Ok(10 + digit - b'0'),
        _ => Err(Decline::InvalidValue),
    }
}

/// The parameters in force on a connection (§7.1): what the server's answer says, and on a
/// client, narrowed by what the client's own offer promised.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct DeflateParameters {
    /// The server compresses every message on its own (§7.1.1.1).
    pub server_no_context_takeover: bool,
    /// The client compresses every message on its own (§7.1.1.2).
    pub client_no_context_takeover: bool,
    /// The server's window is at most 2^n bytes; `None` is 2^15 (§7.1.2.1).
    pub server_max_window_bits: Option<u8>,
    /// The client's window is at most 2^n bytes; `None` is 2^15 (§7.1.2.2).
    pub client_max_window_bits: Option<u8>,
}

impl DeflateParameters {
    /// The `Sec-WebSocket-Extensions` value of the server's answer (§7.1): the same parameters
    /// in the same order as an offer, `client_max_window_bits` always with its value.
    pub fn header_value(&self) -> String {
        DeflateOffer {
            server_no_context_takeover: self.server_no_context_takeover,
            client_no_context_takeover: self.client_no_context_takeover,
            server_max_window_bits: self.server_max_window_bits,
            client_max_window_bits: self
                .client_max_window_bits
                .map_or(ClientMaxWindowBits::Absent, ClientMaxWindowBits::Value),
        }
        .header_value()
    }

    /// The largest window the endpoint in `role` may compress with, as a power of two: build
    /// its [`Deflater`](super::Deflater) with it.
    pub fn window_bits_for(&self, role: Role) -> u8 {
        match role {
            Role::Server => self.server_max_window_bits,
            Role::Client => self.client_max_window_bits,
        }
        .unwrap_or(MAX_WINDOW_BITS)
    }

    /// Whether the peer of the endpoint in `role` may carry its LZ77 window from one message to
    /// the next (§7.1.1). If it may, the endpoint needs an inflater of its own for that peer
    /// ([`Inflater::with_context_takeover`](super::Inflater::with_context_takeover)); if not,
    /// one shared [`Inflater`](super::Inflater) serves every such peer.
    pub fn peer_takes_over_context(&self, role: Role) -> bool {
        match role {
            Role::Server => !self.client_no_context_takeover,
            Role::Client => !self.server_no_context_takeover,
        }
    }
}

/// What a server accepts (§7.1). It always answers `server_no_context_takeover`, because its
/// [`Deflater`](super::Deflater) compresses every message on its own: that is what lets one
/// compressed frame go to every receiver.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServerDeflateConfig {
    /// Whether to accept permessage-deflate at all; when off, every offer is declined.
    pub enabled: bool,
    /// Answer `client_no_context_takeover`, so that clients compress every message on its own
    /// and one [`Inflater`](super::Inflater) serves every connection. Default on; with it off,
    /// a server needs an inflater per connection that takes over context.
    pub client_no_context_takeover: bool,
    /// The largest window the server compresses with (8 to 15). Below 15 the answer carries
    /// `server_max_window_bits` (§7.1.2.1 allows it even when not offered).
    pub max_window_bits: u8,
}

impl Default for ServerDeflateConfig {
    fn default() -> Self {
        ServerDeflateConfig {
            enabled: true,
            client_no_context_takeover: true,
            max_window_bits: MAX_WINDOW_BITS,
        }
    }
}

impl ServerDeflateConfig {
    /// A configuration that declines every offer.
    pub fn disabled() -> Self {
        ServerDeflateConfig {
            enabled: false,
            ..ServerDeflateConfig::default()
        }
    }

    /// Picks the first offer this server can take from the client's
    /// `Sec-WebSocket-Extensions` elements, in order, declining the others (§5), and returns
    /// the parameters of the answer; `None` when every offer is declined.
    pub fn accept(
        &self,
        elements: &[Result<Extension<'_>, MalformedExtension>],
    ) -> Option<DeflateParameters> {
        if !self.enabled {
            return None;
        }
        elements
            .iter()
            .filter_map(|element| element.as_ref().ok())
            .filter_map(|extension| DeflateOffer::from_extension(extension).ok())
            .find_map(|offer| self.accept_offer(&offer))
    }

    /// The answer to one valid offer, or `None` if this server declines it.
    pub fn accept_offer(&self, offer: &DeflateOffer) -> Option<DeflateParameters> {
        if !self.enabled {
            return None;
        }
        let own_limit = self.max_window_bits.clamp(MIN_WINDOW_BITS, MAX_WINDOW_BITS);
        let server_max_window_bits = match offer.server_max_window_bits {
            // The same or smaller (§7.1.2.1). 8 is honoured: see `Deflater::new`.
            Some(requested) => Some(requested.min(own_limit)),
            None if own_limit < MAX_WINDOW_BITS => Some(own_limit),
            None => None,
        };
        Some(DeflateParameters {
            server_no_context_takeover: true,
            client_no_context_takeover: self.client_no_context_takeover
                || offer.client_no_context_takeover,
            server_max_window_bits,
            // Our inflater takes any window up to 2^15: no need to ask for less (§7.1.2.2).
            client_max_window_bits: None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::extensions::parse_list;

    fn offer(value: &str) -> Result<DeflateOffer, Decline> {
        let list = parse_list(value);
        assert_eq!(list.len(), 1, "{value}");
        DeflateOffer::from_extension(list[0].as_ref().expect(value))
    }

    #[test]
    fn offers_are_read_or_declined_as_section_5_says() {
        use ClientMaxWindowBits::*;
        let accepted: &[(&str, DeflateOffer)] = &[
            (
                "permessage-deflate",
                DeflateOffer {
                    client_max_window_bits: Absent,
                    ..DeflateOffer::default()
                },
            ),
            ("permessage-deflate; client_max_window_bits", DeflateOffer::default()),
            (
                "PerMessage-Deflate; Server_No_Context_Takeover; client_no_context_takeover; server_max_window_bits=10; client_max_window_bits=8",
                DeflateOffer {
                    server_no_context_takeover: true,
                    client_no_context_takeover: true,
                    server_max_window_bits: Some(10),
                    client_max_window_bits: Value(8),
                },
            ),
            (
                r#"permessage-deflate; server_max_window_bits="15""#,
                DeflateOffer {
                    server_max_window_bits: Some(15),
                    client_max_window_bits: Absent,
                    ..DeflateOffer::default()
                },
            ),
        ];
        for (value, expected) in accepted {
            assert_eq!(offer(value), Ok(*expected), "{value}");
        }
        let declined: &[(&str, Decline)] = &[
            ("x-webkit-deflate-frame", Decline::NotPermessageDeflate),
            ("permessage-deflate; foo", Decline::UnknownParameter),
            ("permessage-deflate; mux=1", Decline::UnknownParameter),
            (
                "permessage-deflate; server_no_context_takeover; server_no_context_takeover",
                Decline::DuplicateParameter,
            ),
            (
                "permessage-deflate; client_max_window_bits; client_max_window_bits=10",
                Decline::DuplicateParameter,
            ),
            (
                "permessage-deflate; server_no_context_takeover=1",
                Decline::InvalidValue,
            ),
            (
                "permessage-deflate; server_max_window_bits",
                Decline::InvalidValue,
            ),
            (
                "permessage-deflate; server_max_window_bits=7",
                Decline::InvalidValue,
            ),
            (
                "permessage-deflate; server_max_window_bits=16",
                Decline::InvalidValue,
            ),
            (
                "permessage-deflate; server_max_window_bits=010",
                Decline::InvalidValue,
            ),
            (
                "permessage-deflate; server_max_window_bits=+9",
                Decline::InvalidValue,
            ),
            (
                "permessage-deflate; client_max_window_bits=0",
                Decline::InvalidValue,
            ),
            (
                r#"permessage-deflate; client_max_window_bits="1""#,
                Decline::InvalidValue,
            ),
        ];
        for (value, why) in declined {
            assert_eq!(offer(value), Err(*why), "{value}");
        }
    }

    #[test]
    fn the_server_takes_the_first_acceptable_offer_and_declines_the_rest() {
        let config = ServerDeflateConfig::default();
        let cases: &[(&str, Option<&str>)] = &[
            (
                "permessage-deflate; client_max_window_bits",
                Some("permessage-deflate; server_no_context_takeover; client_no_context_takeover"),
            ),
            // RFC 7692 §7.1.3's offer with a fallback.
            (
                "permessage-deflate; client_max_window_bits; server_max_window_bits=10, permessage-deflate; client_max_window_bits",
                Some("permessage-deflate; server_no_context_takeover; client_no_context_takeover; server_max_window_bits=10"),
            ),
            (
                "permessage-deflate; foo, permessage-deflate; server_max_window_bits=8",
                Some("permessage-deflate; server_no_context_takeover; client_no_context_takeover; server_max_window_bits=8"),
            ),
            (
                "x-webkit-deflate-frame, permessage-deflate; server_max_window_bits=\"9\"",
                Some("permessage-deflate; server_no_context_takeover; client_no_context_takeover; server_max_window_bits=9"),
            ),
            ("permessage-deflate; server_max_window_bits=99", None),
            ("permessage-deflate; a=\"b c\", permessage-deflate; a", None),
            ("x-webkit-deflate-frame", None),
            ("", None),
        ];
        for (value, answer) in cases {
            let agreed = config.accept(&parse_list(value));
            assert_eq!(
                agreed.map(|agreed| agreed.header_value()).as_deref(),
                *answer,
                "{value}"
            );
        }
        assert_eq!(
            ServerDeflateConfig::disabled().accept(&parse_list("permessage-deflate")),
            None
        );
    }

    #[test]
    fn a_server_window_limit_is_answered_even_when_not_offered() {
        let config = ServerDeflateConfig {
            max_window_bits: 12,
            ..ServerDeflateConfig::default()
        };
        let agreed = config.accept(&parse_list("permessage-deflate")).unwrap();
        assert_eq!(agreed.server_max_window_bits, Some(12));
        assert_eq!(agreed.window_bits_for(Role::Server), 12);
        let agreed = config
            .accept(&parse_list("permessage-deflate; server_max_window_bits=9"))
            .unwrap();
        assert_eq!(agreed.window_bits_for(Role::Server), 9);
        assert!(!agreed.peer_takes_over_context(Role::Server));
        assert!(!agreed.peer_takes_over_context(Role::Client));
    }

    #[test]
    fn the_client_writes_the_browser_offer() {
        assert_eq!(
            DeflateOffer::browser().header_value(),
            "permessage-deflate; client_max_window_bits"
        );
        assert_eq!(
            DeflateOffer::without_client_context_takeover().header_value(),
            "permessage-deflate; client_no_context_takeover; client_max_window_bits"
        );
        let offer = DeflateOffer {
            server_no_context_takeover: true,
            client_no_context_takeover: true,
            server_max_window_bits: Some(10),
            client_max_window_bits: ClientMaxWindowBits::Value(9),
        };
        assert_eq!(
            offer.header_value(),
            "permessage-deflate; server_no_context_takeover; client_no_context_takeover; server_max_window_bits=10; client_max_window_bits=9"
        );
        assert_eq!(
            DeflateOffer::from_extension(&parse_list(&offer.header_value())[0].clone().unwrap()),
            Ok(offer)
        );
    }

    #[test]
    fn the_client_checks_the_answer_and_fails_on_a_bad_one() {
        let browser = DeflateOffer::browser();
        let limited = DeflateOffer {
            server_max_window_bits: Some(10),
            client_max_window_bits: ClientMaxWindowBits::Absent,
            ..DeflateOffer::default()
        };
        let good: &[(DeflateOffer, &str, DeflateParameters)] = &[
            (browser, "", DeflateParameters::default()),
            (
                browser,
                "permessage-deflate; server_no_context_takeover; client_no_context_takeover",
                DeflateParameters {
                    server_no_context_takeover: true,
                    client_no_context_takeover: true,
                    ..DeflateParameters::default()
                },
            ),
            (
                browser,
                "permessage-deflate; client_max_window_bits=8",
                DeflateParameters {
                    client_max_window_bits: Some(8),
                    ..DeflateParameters::default()
                },
            ),
            (
                limited,
                "permessage-deflate; server_max_window_bits=\"9\"",
                DeflateParameters {
                    server_max_window_bits: Some(9),
                    ..DeflateParameters::default()
                },
            ),
        ];
        for (offer, answer, expected) in good {
            let checked = offer.check_response(&parse_list(answer));
            let expected = (!answer.is_empty()).then_some(*expected);
            assert_eq!(checked, Ok(expected), "{answer}");
        }
        let bad: &[(DeflateOffer, &str, Error)] = &[
            (browser, "x-webkit-deflate-frame", Error::UnofferedExtension),
            (
                browser,
                "permessage-deflate, permessage-deflate",
                Error::UnofferedExtension,
            ),
            (
                browser,
                "permessage-deflate; foo",
                Error::InvalidDeflateResponse,
            ),
            (
                browser,
                "permessage-deflate; server_no_context_takeover; server_no_context_takeover",
                Error::InvalidDeflateResponse,
            ),
            (
                browser,
                "permessage-deflate; client_no_context_takeover=yes",
                Error::InvalidDeflateResponse,
            ),
            (
                browser,
                "permessage-deflate; client_max_window_bits",
                Error::InvalidDeflateResponse,
            ),
            (
                browser,
                "permessage-deflate; server_max_window_bits=16",
                Error::InvalidDeflateResponse,
            ),
            (
                limited,
                "permessage-deflate; server_max_window_bits=11",
                Error::InvalidDeflateResponse,
            ),
            (
                limited,
                "permessage-deflate; client_max_window_bits=10",
                Error::InvalidDeflateResponse,
            ),
            (
                browser,
                "permessage-deflate; x=\"",
                Error::InvalidDeflateResponse,
            ),
        ];
        for (offer, answer, error) in bad {
            assert_eq!(
                offer.check_response(&parse_list(answer)),
                Err(*error),
                "{answer}"
            );
        }
    }

    #[test]
    fn what_the_client_promised_in_its_offer_holds_after_the_answer() {
        let offer = DeflateOffer {
            client_no_context_takeover: true,
            client_max_window_bits: ClientMaxWindowBits::Value(10),
            ..DeflateOffer::default()
        };
        let agreed = offer
            .check_response(&parse_list("permessage-deflate"))
            .unwrap()
            .unwrap();
        assert_eq!(agreed.window_bits_for(Role::Client), 10);
        assert!(agreed.client_no_context_takeover);
        assert!(agreed.peer_takes_over_context(Role::Client));
    }
}
