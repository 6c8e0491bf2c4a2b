//! Log lines on stderr, as text for people or as JSON objects (one per line) for collectors.

use std::io::Write;

use crate::cli::LogFormat;

/// Sets up the logger: level from `RUST_LOG` (default `info`), lines in `format`.
pub fn init(format: LogFormat) {
    let mut builder =
        env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info"));
    if format == LogFormat::Json {
        builder.format(|out, record| {
            let mut line = String::with_capacity(128);
            line.push_str("{\"ts\":");
            push_json_string(&mut line, &out.timestamp_millis().to_string());
            line.push_str(",\"level\":");
            push_json_string(&mut line, record.level().as_str());
            line.push_str(",\"target\":");
            push_json_string(&mut line, record.target());
            line.push_str(",\"msg\":");
            push_json_string(&mut line, &record.args().to_string());
            line.push('}');
            writeln!(out, "{line}")
        });
    }
    builder.init();
}

/// Appends `text` as a JSON string (RFC 8259 §7).
pub fn push_json_string(out: &mut String, text: &str) {
    out.push('"');
    for character in text.chars() {
        match character {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            character if (character as u32) < 0x20 => {
                out.push_str(&format!("\\u{:04x}", character as u32));
            }
            character => out.push(character),
        }
    }
    out.push('"');
}

#[cfg(test)]
mod tests {
    #[test]
    fn json_strings_escape_quotes_backslashes_and_control_characters() {
        let mut out = String::new();
        super::push_json_string(&mut out, "a\"b\\c\nd\u{1}é");
        assert_eq!(out, r#""a\"b\\c\nd\u0001é""#);
    }
}
