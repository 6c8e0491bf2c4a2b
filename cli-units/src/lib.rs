//! Units on the command line, parsed one way for every binary of the workspace: durations
//! such as `30s`, `500ms`, `2m`, `1h`, or a bare number of seconds. Errors are short messages
//! that name the text given, ready for clap to print after the option's name.
#![forbid(unsafe_code)]

use std::time::Duration;

/// Parses `30s`, `500ms`, `2m`, `1h`, or a number of seconds (`7`, `0.5`). Refuses negative,
/// unknown units and durations too long to represent.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let (number, unit) = match text.find(|c: char| !c.is_ascii_digit() && c != '.') {
        Some(index) => text.split_at(index),
        None => (text, "s"),
    };
    let value: f64 = number
        .parse()
        .map_err(|_| format!("`{text}` is not a duration (try 30s, 500ms, 2m)"))?;
    let seconds = match unit {
        "ms" => value / 1000.0,
        "s" => value,
        "m" => value * 60.0,
        "h" => value * 3600.0,
        _ => {
            return Err(format!(
                "`{text}`: unknown unit `{unit}` (use ms, s, m or h)"
            ))
        }
    };
    Duration::try_from_secs_f64(seconds).map_err(|_| format!("`{text}` is not a duration"))
}

/// [`parse_duration`], refusing more than `max`, which the message names as `max_text`
/// (e.g. `7 days (168h)`).
pub fn parse_duration_at_most(
    text: &str,
    max: Duration,
    max_text: &str,
) -> Result<Duration, String> {
    let duration = parse_duration(text)?;
    if duration > max {
        return Err(format!("`{}`: at most {max_text}", text.trim()));
    }
    Ok(duration)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_take_units_or_seconds() {
        for (text, expected) in [
            ("30s", Duration::from_secs(30)),
            ("500ms", Duration::from_millis(500)),
            ("2m", Duration::from_secs(120)),
            ("1h", Duration::from_secs(3600)),
            ("7", Duration::from_secs(7)),
            ("0.25s", Duration::from_millis(250)),
            (" 10s ", Duration::from_secs(10)),
            ("0s", Duration::ZERO),
        ] {
            assert_eq!(parse_duration(text), Ok(expected), "{text}");
        }
    }

    #[test]
    fn bad_durations_say_what_is_wrong_and_never_panic() {
        for (text, says) in [
            ("soon", "not a duration"),
            ("", "not a duration"),
            ("5 parsecs", "unknown unit"),
            ("3d", "unknown unit"),
            ("1e400", "unknown unit"),
            ("-5s", "not a duration"),
            ("1.2.3s", "not a duration"),
            ("99999999999999999999999", "not a duration"),
            ("99999999999999999999999h", "not a duration"),
        ] {
            let error = parse_duration(text).unwrap_err();
            assert!(error.contains(says), "{text}: {error}");
        }
    }

    #[test]
    fn a_bound_is_inclusive_and_named_in_the_message() {
        let week = Duration::from_secs(7 * 24 * 3600);
        assert_eq!(
            parse_duration_at_most("168h", week, "7 days (168h)"),
            Ok(week)
        );
        assert_eq!(
            parse_duration_at_most("169h", week, "7 days (168h)"),
            Err("`169h`: at most 7 days (168h)".to_owned())
        );
        assert!(parse_duration_at_most("soon", week, "7 days").is_err());
    }
}
