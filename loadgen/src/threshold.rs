//! `--threshold` expressions, as k6 writes them: `p99<50ms`, `lost==0`, `lost<0.1%`,
//! `completion_p99<=200ms`, `deliveries_per_s>=100000`. A run that crosses one exits with
//! [`crate::verdict::EXIT_THRESHOLD`].
//!
//! `METRIC OP VALUE`, OP one of `<`, `<=`, `>`, `>=`, `==`, `!=`:
//! - latency: `p50`, `p90`, `p99`, `p99.9` (any `pN`), `max`, `mean`, of the delivery latency
//!   (round trip in echo runs), or prefixed `completion_` or `handshake_`; VALUE takes `us`,
//!   `ms` or `s`, ms when none is given. Deliveries still missing at the end count at their
//!   lower bound, so an overloaded server cannot pass a latency threshold by losing messages.
//! - counts: `lost`, `duplicated`, `out_of_order`, `unexpected`, `received`, `expected`,
//!   `not_sent`, `failed` (connections), `disconnected`; `%` after VALUE compares the count as a
//!   percentage of `expected` (of the clients for connection counts).
//! - rate: `deliveries_per_s`.

use std::fmt;

/// A comparison.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Comparison {
    /// `<`
    Below,
    /// `<=`
    AtMost,
    /// `>`
    Above,
    /// `>=`
    AtLeast,
    /// `==`
    Equal,
    /// `!=`
    NotEqual,
}

impl Comparison {
    fn holds(self, left: f64, right: f64) -> bool {
        match self {
            Comparison::Below => left < right,
            Comparison::AtMost => left <= right,
            Comparison::Above => left > right,
            Comparison::AtLeast => left >= right,
            Comparison::Equal => left == right,
            Comparison::NotEqual => left != right,
        }
    }

    fn symbol(self) -> &'static str {
        match self {
            Comparison::Below => "<",
            Comparison::AtMost => "<=",
            Comparison::Above => ">",
            Comparison::AtLeast => ">=",
            Comparison::Equal => "==",
            Comparison::NotEqual => "!=",
        }
    }
}

/// Which latency distribution.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Distribution {
    /// Delivery latency (round trip in echo runs).
    Delivery,
    /// Completion latency.
    Completion,
    /// Handshake latency.
    Handshake,
}

/// Which figure of a distribution.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Statistic {
    /// A quantile, 0 to 1.
    Quantile(f64),
    /// The largest value.
    Max,
    /// The mean.
    Mean,
}

/// What a threshold looks at.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Metric {
    /// A latency figure, in microseconds.
    Latency(Distribution, Statistic),
    /// A count (`lost`, `failed` ...), by name.
    Count(&'static str),
    /// Deliveries per second.
    Rate,
}

const COUNTS: &[&str] = &[
    "lost",
    "duplicated",
    "out_of_order",
    "unexpected",
    "received",
    "expected",
    "not_sent",
    "failed",
    "disconnected",
];

/// One parsed `--threshold`.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Threshold {
    /// As written.
    pub text: String,
    /// What it looks at.
    pub metric: Metric,
    /// How it compares.
    pub comparison: Comparison,
    /// The bound: µs for latencies, a count, a percentage, or deliveries per second.
    pub value: f64,
    /// Whether the bound is a percentage of the total (`lost<0.1%`).
    pub percent: bool,
}

/// The figures a threshold is checked against.
pub(crate) trait Figures {
    /// A latency figure in µs; `None` when nothing was measured.
    fn latency_us(&self, distribution: Distribution, statistic: Statistic) -> Option<f64>;
    /// A count, and the total it is a part of (for `%`).
    fn count(&self, name: &str) -> (u64, u64);
    /// Deliveries per second.
    fn rate(&self) -> f64;
}

/// Whether a threshold held, with the figure it saw.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Outcome {
    /// The threshold as written.
    pub text: String,
    /// Whether it held.
    pub passed: bool,
    /// The figure seen, in the threshold's unit, for the report.
    pub actual: String,
}

impl Threshold {
    /// Parses `METRIC OP VALUE`.
    pub(crate) fn parse(text: &str) -> Result<Threshold, String> {
        let compact: String = text.chars().filter(|c| !c.is_whitespace()).collect();
        let position = compact
            .find(['<', '>', '=', '!'])
            .ok_or_else(|| format!("`{text}`: a threshold is METRIC OP VALUE, e.g. p99<50ms"))?;
        let (name, rest) = compact.split_at(position);
        let (comparison, value) = [
            ("<=", Comparison::AtMost),
            (">=", Comparison::AtLeast),
            ("==", Comparison::Equal),
            ("!=", Comparison::NotEqual),
            ("<", Comparison::Below),
            (">", Comparison::Above),
        ]
        .iter()
        .find_map(|(symbol, comparison)| rest.strip_prefix(symbol).map(|v| (*comparison, v)))
        .ok_or_else(|| format!("`{text}`: unknown comparison (use < <= > >= == !=)"))?;
        let metric = parse_metric(name).ok_or_else(|| {
            format!(
                "`{text}`: unknown metric `{name}` (latency: p50, p99, p99.9, max, mean, optionally completion_ or handshake_; counts: {}; rate: deliveries_per_s)",
                COUNTS.join(", ")
            )
        })?;
        let bad_value = || format!("`{text}`: `{value}` is not a value for {name}");
        let (number, unit) = split_unit(value);
        let number: f64 = number.parse().map_err(|_| bad_value())?;
        if !number.is_finite() {
            return Err(bad_value());
        }
        let (value, percent) = match (&metric, unit) {
            (Metric::Latency(..), "" | "ms") => (number * 1e3, false),
            (Metric::Latency(..), "us" | "µs") => (number, false),
            (Metric::Latency(..), "s") => (number * 1e6, false),
            (Metric::Count(_), "") | (Metric::Rate, "") => (number, false),
            (Metric::Count(_), "%") => (number, true),
            _ => return Err(bad_value()),
        };
        Ok(Threshold {
            text: text.to_owned(),
            metric,
            comparison,
            value,
            percent,
        })
    }

    /// Checks the threshold against a run's figures. A latency threshold on a run that
    /// measured nothing fails.
    pub(crate) fn check(&self, figures: &dyn Figures) -> Outcome {
        let (actual, shown) = match &self.metric {
            Metric::Latency(distribution, statistic) => {
                match figures.latency_us(*distribution, *statistic) {
                    Some(us) => (Some(us), format!("{:.3} ms", us / 1e3)),
                    None => (None, "nothing measured".to_owned()),
                }
            }
            Metric::Count(name) => {
                let (count, total) = figures.count(name);
                if self.percent {
                    let share = if total == 0 {
                        0.0
                    } else {
                        count as f64 * 100.0 / total as f64
                    };
                    (Some(share), format!("{share:.4}% ({count} of {total})"))
                } else {
                    (Some(count as f64), count.to_string())
                }
            }
            Metric::Rate => {
                let rate = figures.rate();
                (Some(rate), format!("{rate:.0}/s"))
            }
        };
        Outcome {
            text: self.text.clone(),
            passed: actual.is_some_and(|actual| self.comparison.holds(actual, self.value)),
            actual: shown,
        }
    }
}

impl fmt::Display for Threshold {
    fn fmt(&self, out: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(out, "{} ({})", self.text, self.comparison.symbol())
    }
}

fn parse_metric(name: &str) -> Option<Metric> {
    if name == "deliveries_per_s" {
        return Some(Metric::Rate);
    }
    if let Some(count) = COUNTS.iter().find(|count| **count == name) {
        return Some(Metric::Count(count));
    }
    let (distribution, statistic) = if let Some(rest) = name.strip_prefix("completion_") {
        (Distribution::Completion, rest)
    } else if let Some(rest) = name.strip_prefix("handshake_") {
        (Distribution::Handshake, rest)
    } else {
        (
            Distribution::Delivery,
            name.strip_prefix("delivery_").unwrap_or(name),
        )
    };
    let statistic = match statistic {
        "max" => Statistic::Max,
        "mean" => Statistic::Mean,
        _ => {
            let percent: f64 = statistic.strip_prefix('p')?.parse().ok()?;
            if !(0.0..=100.0).contains(&percent) {
                return None;
            }
            Statistic::Quantile(percent / 100.0)
        }
    };
    Some(Metric::Latency(distribution, statistic))
}

fn split_unit(value: &str) -> (&str, &str) {
    let end = value
        .find(|c: char| !(c.is_ascii_digit() || c == '.' || c == '-' || c == '+' || c == 'e'))
        .unwrap_or(value.len());
    value.split_at(end)
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Fixed;

    impl Figures for Fixed {
        fn latency_us(&self, distribution: Distribution, statistic: Statistic) -> Option<f64> {
            match (distribution, statistic) {
                (Distribution::Delivery, Statistic::Quantile(0.99)) => Some(40_000.0),
                (Distribution::Delivery, Statistic::Max) => Some(90_000.0),
                (Distribution::Completion, Statistic::Quantile(_)) => Some(120_000.0),
                (Distribution::Handshake, _) => None,
                _ => Some(1_000.0),
            }
        }
        fn count(&self, name: &str) -> (u64, u64) {
            match name {
                "lost" => (5, 10_000),
                "failed" => (0, 100),
                _ => (0, 10_000),
            }
        }
        fn rate(&self) -> f64 {
            2_000.0
        }
    }

    #[test]
    fn thresholds_parse_and_check() {
        for (text, passes) in [
            ("p99<50ms", true),
            ("p99 < 30ms", false),
            ("p99<=40000us", true),
            ("p99<0.05s", true),
            ("p99<50", true),
            ("max<80ms", false),
            ("completion_p99<100ms", false),
            ("completion_p99.9<200ms", true),
            ("delivery_p50<2ms", true),
            ("lost==0", false),
            ("lost<=5", true),
            ("lost<0.1%", true),
            ("lost<0.01%", false),
            ("failed==0", true),
            ("duplicated!=0", false),
            ("deliveries_per_s>=1000", true),
            ("deliveries_per_s>5000", false),
            // Nothing measured: a latency threshold cannot pass.
            ("handshake_p99<1s", false),
        ] {
            let threshold = Threshold::parse(text).unwrap_or_else(|e| panic!("{text}: {e}"));
            assert_eq!(threshold.check(&Fixed).passed, passes, "{text}");
        }
    }

    #[test]
    fn bad_thresholds_say_what_is_wrong() {
        for (text, says) in [
            ("p99", "METRIC OP VALUE"),
            ("p99=<5ms", "comparison"),
            ("speed<5", "unknown metric"),
            ("p101<5ms", "unknown metric"),
            ("p99<fast", "not a value"),
            ("lost<5ms", "not a value"),
            ("p99<5%", "not a value"),
        ] {
            let error = Threshold::parse(text).unwrap_err();
            assert!(error.contains(says), "{text}: {error}");
        }
    }
}
