//! Per-client text: the placeholders `{room}`, `{client}` and `{sender}` in `--first-message`,
//! `--message` and `--header` values, and the message template whose `{probe}` is replaced by
//! each probe (for servers with a protocol of their own, e.g.
//! `{"type":"say","room":"lobby","text":"{probe}"}`).

/// Who a client is, for filling placeholders.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Placeholders {
    /// `{room}`: the room number.
    pub room: u32,
    /// `{client}`: the global client number.
    pub client: u32,
    /// `{sender}`: the sender index; empty for a client that does not send.
    pub sender: Option<u32>,
}

impl Placeholders {
    /// `text` with every placeholder replaced.
    pub(crate) fn fill(&self, text: &str) -> String {
        if !text.contains('{') {
            return text.to_owned();
        }
        text.replace("{room}", &self.room.to_string())
            .replace("{client}", &self.client.to_string())
            .replace(
                "{sender}",
                &self
                    .sender
                    .map(|sender| sender.to_string())
                    .unwrap_or_default(),
            )
    }
}

/// A message template: the text before and after its one `{probe}`, placeholders unfilled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct MessageTemplate {
    before: String,
    after: String,
}

/// The text around the probe for one sender, placeholders filled.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Envelope {
    /// Bytes before the probe.
    pub before: Box<[u8]>,
    /// Bytes after the probe.
    pub after: Box<[u8]>,
}

impl MessageTemplate {
    /// Parses a template; it must hold `{probe}` exactly once.
    pub(crate) fn parse(text: &str) -> Result<MessageTemplate, String> {
        match text.matches("{probe}").count() {
            1 => {}
            0 => return Err("the message template needs a {probe} placeholder".into()),
            _ => return Err("the message template may hold {probe} only once".into()),
        }
        let (before, after) = text.split_once("{probe}").expect("counted once");
        Ok(MessageTemplate {
            before: before.to_owned(),
            after: after.to_owned(),
        })
    }

    /// The envelope of one sender.
    pub(crate) fn envelope(&self, who: &Placeholders) -> Envelope {
        Envelope {
            before: who.fill(&self.before).into_bytes().into_boxed_slice(),
            after: who.fill(&self.after).into_bytes().into_boxed_slice(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const WHO: Placeholders = Placeholders {
        room: 3,
        client: 17,
        sender: Some(2),
    };

    #[test]
    fn placeholders_are_filled_wherever_they_are() {
        assert_eq!(
            WHO.fill(r#"{"join":"room{room}","user":"u{client}","as":"{sender}"}"#),
            r#"{"join":"room3","user":"u17","as":"2"}"#
        );
        assert_eq!(WHO.fill("Bearer token-{client}"), "Bearer token-17");
        assert_eq!(WHO.fill("no placeholders"), "no placeholders");
        let listener = Placeholders {
            sender: None,
            ..WHO
        };
        assert_eq!(listener.fill("[{sender}]"), "[]");
    }

    #[test]
    fn a_template_splits_around_its_probe_and_fills_per_sender() {
        let template =
            MessageTemplate::parse(r#"{"type":"say","room":"r{room}","text":"{probe}"}"#).unwrap();
        let envelope = template.envelope(&WHO);
        assert_eq!(&*envelope.before, br#"{"type":"say","room":"r3","text":""#);
        assert_eq!(&*envelope.after, br#""}"#);
    }

    #[test]
    fn a_template_needs_exactly_one_probe() {
        assert!(MessageTemplate::parse("hello").is_err());
        assert!(MessageTemplate::parse("{probe}{probe}").is_err());
        assert!(MessageTemplate::parse("{probe}").is_ok());
    }
}
