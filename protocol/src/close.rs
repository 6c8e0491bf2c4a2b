//! Close codes and close frame payloads (RFC 6455 §5.5.1, §7.4).

use crate::{utf8, Error};

/// A close status code (RFC 6455 §7.4). A newtype over `u16`, because the wire may carry any
/// value and only some are valid to send.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CloseCode(pub u16);

impl CloseCode {
    /// 1000: normal closure (§7.4.1).
    pub const NORMAL: CloseCode = CloseCode(1000);
    /// 1001: the endpoint is going away, e.g. a server shutting down (§7.4.1).
    pub const GOING_AWAY: CloseCode = CloseCode(1001);
    /// 1002: the peer broke the protocol (§7.4.1).
    pub const PROTOCOL_ERROR: CloseCode = CloseCode(1002);
    /// 1003: a kind of data the endpoint cannot accept (§7.4.1).
    pub const UNSUPPORTED_DATA: CloseCode = CloseCode(1003);
    /// 1005: no code was present; never sent on the wire (§7.4.1).
    pub const NO_STATUS: CloseCode = CloseCode(1005);
    /// 1006: closed without a close frame; never sent on the wire (§7.4.1).
    pub const ABNORMAL: CloseCode = CloseCode(1006);
    /// 1007: a message's data was not consistent with its type, e.g. text not UTF-8 (§7.4.1).
    pub const INVALID_PAYLOAD: CloseCode = CloseCode(1007);
    /// 1008: a message violated the endpoint's policy, e.g. a client too slow to read (§7.4.1).
    pub const POLICY_VIOLATION: CloseCode = CloseCode(1008);
    /// 1009: a message too big to process (§7.4.1).
    pub const MESSAGE_TOO_BIG: CloseCode = CloseCode(1009);
    /// 1010: the client expected an extension the server did not negotiate (§7.4.1).
    pub const MANDATORY_EXTENSION: CloseCode = CloseCode(1010);
    /// 1011: the server hit an unexpected condition (§7.4.1).
    pub const INTERNAL_ERROR: CloseCode = CloseCode(1011);
    /// 1012: the service is restarting (IANA registry).
    pub const SERVICE_RESTART: CloseCode = CloseCode(1012);
    /// 1013: try again later (IANA registry).
    pub const TRY_AGAIN_LATER: CloseCode = CloseCode(1013);

    /// Whether this code may appear in a close frame on the wire (§7.4.1, §7.4.2).
    ///
    /// 1000-1003 and 1007-1014 are defined (1012-1014 by the IANA registry); 3000-4999 are for
    /// libraries, frameworks and applications. Below 1000, 1004-1006, 1015 (reserved for
    /// "TLS failure") and the rest of 1016-2999 and 5000 and up may not be sent.
    pub fn is_sendable(self) -> bool {
        matches!(self.0, 1000..=1003 | 1007..=1014 | 3000..=4999)
    }
}

impl From<CloseCode> for u16 {
    fn from(code: CloseCode) -> u16 {
        code.0
    }
}

/// A parsed close frame payload (§5.5.1): a code and a UTF-8 reason, both optional on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CloseFrame<'a> {
    /// The code, or `None` when the payload was empty (the code is then read as 1005).
    pub code: Option<CloseCode>,
    /// The reason, possibly empty.
    pub reason: &'a str,
}

impl<'a> CloseFrame<'a> {
    /// Parses and checks a close frame's (unmasked) payload (§5.5.1, §7.4).
    ///
    /// An empty payload is valid and carries no code. One byte is an error (a code needs two);
    /// a code that may not be sent is [`Error::InvalidCloseCode`]; a reason that is not UTF-8 is
    /// [`Error::InvalidUtf8InCloseReason`].
    pub fn parse(payload: &'a [u8]) -> Result<Self, Error> {
        match payload {
            [] => Ok(CloseFrame {
                code: None,
                reason: "",
            }),
            [_] => Err(Error::CloseFrameOneByte),
            [high, low, reason @ ..] => {
                let code = CloseCode(u16::from_be_bytes([*high, *low]));
                if !code.is_sendable() {
                    return Err(Error::InvalidCloseCode(code.0));
                }
                let reason = utf8::validate(reason).map_err(|_| Error::InvalidUtf8InCloseReason)?;
                Ok(CloseFrame {
                    code: Some(code),
                    reason,
                })
            }
        }
    }

    /// The code an endpoint echoes when it answers this close (§5.5.1): the same code, or 1000
    /// when the peer sent none.
    pub fn reply_code(&self) -> CloseCode {
        self.code.unwrap_or(CloseCode::NORMAL)
    }
}

/// Writes a close frame payload: the code in network byte order, then the reason, cut to fit
/// the 125 bytes of a control frame at a character boundary (§5.5, §5.5.1).
pub fn encode_payload(out: &mut Vec<u8>, code: CloseCode, reason: &str) {
    let mut end = reason.len().min(123);
    while !reason.is_char_boundary(end) {
        end -= 1;
    }
    out.extend_from_slice(&code.0.to_be_bytes());
    out.extend_from_slice(&reason.as_bytes()[..end]);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_close_payload_has_no_code_and_is_answered_with_1000() {
        let frame = CloseFrame::parse(&[]).unwrap();
        assert_eq!(frame.code, None);
        assert_eq!(frame.reply_code(), CloseCode::NORMAL);
    }

    #[test]
    fn close_payload_of_one_byte_is_a_protocol_error() {
        assert_eq!(CloseFrame::parse(&[0x03]), Err(Error::CloseFrameOneByte));
        assert_eq!(
            Error::CloseFrameOneByte.close_code(),
            Some(CloseCode::PROTOCOL_ERROR)
        );
    }

    #[test]
    fn close_codes_that_may_not_be_sent_are_protocol_errors() {
        for code in [
            0u16, 999, 1004, 1005, 1006, 1015, 1016, 1100, 2000, 2999, 5000, 65535,
        ] {
            let payload = code.to_be_bytes();
            assert_eq!(
                CloseFrame::parse(&payload),
                Err(Error::InvalidCloseCode(code)),
                "code {code}"
            );
        }
    }

    #[test]
    fn close_codes_that_may_be_sent_are_accepted_and_echoed() {
        for code in [
            1000u16, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 3000, 3999, 4000, 4999,
        ] {
            let payload = code.to_be_bytes();
            let frame = CloseFrame::parse(&payload).unwrap();
            assert_eq!(frame.reply_code(), CloseCode(code));
        }
    }

    #[test]
    fn close_reason_that_is_not_utf8_is_invalid_payload() {
        let payload = [0x03, 0xe8, b'o', 0xff];
        assert_eq!(
            CloseFrame::parse(&payload),
            Err(Error::InvalidUtf8InCloseReason)
        );
        assert_eq!(
            Error::InvalidUtf8InCloseReason.close_code(),
            Some(CloseCode::INVALID_PAYLOAD)
        );
    }

    #[test]
    fn close_reason_is_returned() {
        let frame = CloseFrame::parse(b"\x03\xe8bye").unwrap();
        assert_eq!(frame.code, Some(CloseCode::NORMAL));
        assert_eq!(frame.reason, "bye");
    }

    #[test]
    fn encoded_reason_is_cut_at_a_character_boundary_to_fit_a_control_frame() {
        let reason = "é".repeat(100); // 200 bytes
        let mut out = Vec::new();
        encode_payload(&mut out, CloseCode::GOING_AWAY, &reason);
        assert!(out.len() <= 125);
        let frame = CloseFrame::parse(&out).unwrap();
        assert_eq!(frame.code, Some(CloseCode::GOING_AWAY));
        assert_eq!(frame.reason.len(), 122);
    }
}
