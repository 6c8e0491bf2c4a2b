//! The report as a person reads it, on stdout: each subcommand in its own words, ending with
//! the thresholds and the verdict line.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use hdrhistogram::Histogram;

use crate::plan::RunKind;
use crate::report::Report;
use crate::verdict;

const LABEL: usize = 18;

impl Report {
    /// The human-readable table.
    pub(crate) fn table(&self) -> String {
        let mut out = String::new();
        self.write_header(&mut out);
        let failed: u64 = self.failures.values().sum();
        line(
            &mut out,
            "connections",
            format!(
                "{} ok, {} failed{}",
                self.connected,
                failed,
                reasons(&self.failures)
            ),
        );
        let handshake_quantiles: &[f64] = if self.run.kind == RunKind::Connect {
            &[0.5, 0.9, 0.99, 0.999]
        } else {
            &[0.5, 0.99]
        };
        line(
            &mut out,
            "handshake",
            percentiles(&self.handshake, handshake_quantiles),
        );
        if !self.tls_handshake.is_empty() {
            line(
                &mut out,
                "  of which TLS",
                percentiles(&self.tls_handshake, handshake_quantiles),
            );
            line(
                &mut out,
                "  and upgrade",
                percentiles(&self.upgrade, handshake_quantiles),
            );
        }
        match self.run.kind {
            RunKind::Fanout => self.write_fanout(&mut out),
            RunKind::Echo => self.write_echo(&mut out),
            RunKind::Connect => {}
        }
        for (number, figures) in self.per_url.iter().enumerate() {
            let mut text = format!(
                "{}: {} ok, {} failed, {} lost while open; handshake {}",
                figures.url,
                figures.connected,
                figures.failed,
                figures.disconnected,
                percentiles(&figures.handshake, &[0.99])
            );
            if self.run.kind.sends() {
                let _ = write!(
                    text,
                    "; received {} of {}, lost {}, duplicated {}; latency {}",
                    figures.tally.received,
                    figures.tally.expected,
                    figures.tally.lost,
                    figures.tally.duplicated,
                    percentiles(&figures.delivery, &[0.5, 0.99])
                );
            }
            line(&mut out, &format!("url {}", number + 1), text);
        }
        let still = if self.run.kind == RunKind::Connect {
            "still open after the hold"
        } else {
            "still open at the end"
        };
        line(
            &mut out,
            "connections",
            format!(
                "{} {still}; lost while open: {}{}{}",
                self.open_at_end,
                self.disconnects.values().sum::<u64>(),
                reasons(&self.disconnects),
                if self.run.connection_stages.is_some() {
                    format!("; left as planned (1000): {}", self.left_as_planned)
                } else {
                    String::new()
                }
            ),
        );
        if !self.close_codes.is_empty() {
            let codes: Vec<String> = self
                .close_codes
                .iter()
                .map(|(code, count)| format!("{code} x{count}"))
                .collect();
            line(&mut out, "close codes", codes.join(", "));
        }
        if !self.protocol_errors.is_empty() {
            line(
                &mut out,
                "server errors",
                reasons(&self.protocol_errors)
                    .trim_start_matches([' ', '('])
                    .trim_end_matches(')')
                    .to_owned(),
            );
        }
        if let Some(interval_s) = self.run.interval_s {
            let worst = self
                .intervals
                .iter()
                .filter_map(|row| row.p99_us.map(|p99| (p99, row.start_s)))
                .max_by_key(|(p99, _)| *p99);
            let mut text = format!(
                "{} rows of {interval_s}s (in the JSON{})",
                self.intervals.len(),
                if self.run.csv.is_some() {
                    " and --csv"
                } else {
                    ""
                }
            );
            if let Some((p99, at)) = worst {
                let _ = write!(text, "; worst interval p99 {} at {at:.0}s", format_us(p99));
            }
            line(&mut out, "time series", text);
        }
        self.write_bytes(&mut out);
        self.write_cpu(&mut out);
        if !self.thresholds.is_empty() {
            let parts: Vec<String> = self
                .thresholds
                .iter()
                .map(|outcome| {
                    format!(
                        "{}: {} ({})",
                        outcome.text,
                        if outcome.passed { "passed" } else { "CROSSED" },
                        outcome.actual
                    )
                })
                .collect();
            line(&mut out, "thresholds", parts.join("; "));
        }
        line(&mut out, "verdict", verdict::line(&self.invalid_reasons));
        out
    }

    fn write_header(&self, out: &mut String) {
        let run = &self.run;
        let _ = write!(
            out,
            "loadgen {}: {}, {} clients",
            run.kind.name(),
            run.urls.join(" "),
            run.clients
        );
        let format = if run.binary { "binary" } else { "text" };
        match run.kind {
            RunKind::Fanout => {
                let _ = write!(
                    out,
                    ", {} sender(s), {}, {} B {format}, {}s measured (+{}s warmup)",
                    run.senders,
                    rate_text(run),
                    run.payload,
                    run.duration_s,
                    run.warmup_s
                );
            }
            RunKind::Echo => {
                let _ = write!(
                    out,
                    ", {} in all, {} B {format}, {}s measured (+{}s warmup)",
                    rate_text(run),
                    run.payload,
                    run.duration_s,
                    run.warmup_s
                );
            }
            RunKind::Connect => {
                let _ = write!(out, ", held {}s", run.after_s);
            }
        }
        if run.compress {
            let _ = write!(out, ", permessage-deflate offered");
        }
        if let Some(template) = &run.message_template {
            let _ = write!(out, ", message {template}");
        }
        let _ = write!(out, ", {} thread(s)", run.threads);
        if run.kind == RunKind::Fanout {
            let _ = write!(out, ", {} room(s)", run.rooms);
        }
        if self.run.merged_reports > 0 {
            let _ = write!(
                out,
                ", merged from {} reports of run {:08x}",
                self.run.merged_reports, self.run.run_id
            );
        }
        if self.timeline.interrupted {
            let _ = write!(out, " [interrupted]");
        }
        out.push('\n');
    }

    fn write_messages(&self, out: &mut String) {
        line(
            out,
            "messages",
            format!(
                "scheduled {}, sent {} (+{} warmup), not sent {}; schedule lag {}",
                self.scheduled,
                self.sent,
                self.sent_warmup,
                self.not_sent,
                percentiles(&self.send_lag, &[0.99])
            ),
        );
    }

    fn write_undelivered(&self, out: &mut String, label: &str, what: &str) {
        if self.undelivered == 0 {
            return;
        }
        let histogram = &self.delivery_with_undelivered;
        let parts: Vec<String> = [0.5, 0.9, 0.99, 0.999]
            .iter()
            .map(|&q| {
                let with = histogram.value_at_quantile(q);
                let without = if self.delivery.is_empty() {
                    0
                } else {
                    self.delivery.value_at_quantile(q)
                };
                let sign = if with > without { "> " } else { "" };
                format!("p{} {sign}{}", trim_quantile(q), format_us(with))
            })
            .collect();
        line(
            out,
            label,
            format!(
                "{} ({} {what} still missing at the end, counted at the time they had waited)",
                parts.join("  "),
                self.undelivered
            ),
        );
    }

    fn write_fanout(&self, out: &mut String) {
        let tally = &self.tally;
        self.write_messages(out);
        line(
            out,
            "deliveries",
            format!(
                "expected {}, received {}, lost {}, duplicated {}, out of order {}, unexpected {}",
                tally.expected,
                tally.received,
                tally.lost,
                tally.duplicated,
                tally.out_of_order,
                tally.unexpected
            ),
        );
        line(
            out,
            "",
            format!(
                "{:.0} deliveries/s over {:.2}s; senders get their own messages: {} ({}); non-probe messages {}, messages with several probes {}, foreign probes {}",
                self.deliveries_per_second(),
                self.delivery_elapsed_s,
                if self.self_echo { "yes" } else { "no" },
                self.self_echo_source,
                self.non_probe,
                self.multi_probe,
                self.foreign
            ),
        );
        if self.outside_membership > 0 {
            line(
                out,
                "",
                format!(
                    "{} deliveries of messages sent while their receiver was joining or leaving: not owed, not counted",
                    self.outside_membership
                ),
            );
        }
        if self.other_process_deliveries > 0 {
            line(
                out,
                "",
                format!(
                    "{} deliveries from senders of the run's other processes: settled by loadgen merge",
                    self.other_process_deliveries
                ),
            );
        }
        self.write_receivers(out);
        line(
            out,
            "delivery latency",
            format!(
                "{}  (arrival: {})",
                percentiles(&self.delivery, &[0.5, 0.9, 0.99, 0.999]),
                match self.run.arrival.as_str() {
                    "kernel" => "kernel receive time",
                    _ => "read by loadgen",
                }
            ),
        );
        self.write_undelivered(out, "with undelivered", "deliveries");
        line(
            out,
            "completion",
            format!(
                "{}; incomplete messages {}",
                percentiles(&self.completion, &[0.5, 0.99]),
                self.incomplete
            ),
        );
        if !self.delivery_warmup.is_empty() {
            line(
                out,
                "warmup latency",
                format!(
                    "{} (discarded)",
                    percentiles(&self.delivery_warmup, &[0.5, 0.99])
                ),
            );
        }
    }

    fn write_receivers(&self, out: &mut String) {
        let worst = self
            .anomalies
            .iter()
            .max_by_key(|(_, tally)| tally.lost + tally.duplicated + tally.unexpected);
        if let Some((client, worst)) = worst {
            line(
                out,
                "per receiver",
                format!(
                    "{} of {} receivers lost deliveries; e.g. client {client}: lost {}, duplicated {}, out of order {}, unexpected {}",
                    self.receivers_with_loss,
                    self.receivers,
                    worst.lost,
                    worst.duplicated,
                    worst.out_of_order,
                    worst.unexpected
                ),
            );
        }
    }

    fn write_echo(&self, out: &mut String) {
        let tally = &self.tally;
        self.write_messages(out);
        line(
            out,
            "round trips",
            format!(
                "answered {} of {}, lost {}, duplicated {}, out of order {}; {:.0} answers/s over {:.2}s; non-probe messages {}, foreign probes {}",
                tally.received,
                tally.expected,
                tally.lost,
                tally.duplicated,
                tally.out_of_order,
                self.deliveries_per_second(),
                self.delivery_elapsed_s,
                self.non_probe,
                self.foreign
            ),
        );
        self.write_receivers(out);
        line(
            out,
            "round-trip time",
            percentiles(&self.delivery, &[0.5, 0.9, 0.99, 0.999]),
        );
        self.write_undelivered(out, "with unanswered", "answers");
    }

    fn write_bytes(&self, out: &mut String) {
        let bytes = &self.bytes;
        if !self.run.kind.sends() {
            return;
        }
        let ratio = |wire: u64, payload: u64| {
            if payload == 0 {
                String::new()
            } else {
                format!(" ({:.0}%)", wire as f64 * 100.0 / payload as f64)
            }
        };
        let mut text = format!(
            "received {} on the wire for {} of payload{}; sent {} for {}{}",
            format_bytes(bytes.wire_received),
            format_bytes(bytes.payload_received),
            ratio(bytes.wire_received, bytes.payload_received),
            format_bytes(bytes.wire_sent),
            format_bytes(bytes.payload_sent),
            ratio(bytes.wire_sent, bytes.payload_sent),
        );
        if self.run.compress {
            let _ = write!(
                text,
                "; permessage-deflate agreed on {} of {} connections",
                bytes.compressed_connections, self.connected
            );
        }
        line(out, "bytes", text);
    }

    fn write_cpu(&self, out: &mut String) {
        let resources = &self.resources;
        if resources.wall_s <= 0.0 {
            return;
        }
        let per = |cpu_s: f64| -> String {
            if self.run.kind.sends() {
                format!(
                    " ({:.2} µs per delivery)",
                    cpu_s / self.tally.received.max(1) as f64 * 1e6
                )
            } else {
                String::new()
            }
        };
        let mut text = format!(
            "loadgen {:.0}% of a core{}",
            resources.loadgen_cpu_s / resources.wall_s * 100.0,
            per(resources.loadgen_cpu_s)
        );
        if let Some(server_cpu) = resources.server_cpu_s {
            let _ = write!(
                text,
                "; server {:.0}% of a core{}",
                server_cpu / resources.wall_s * 100.0,
                per(server_cpu)
            );
        }
        if let Some(rss) = resources.server_rss_max {
            let _ = write!(
                text,
                ", server rss max {:.1} MiB",
                rss as f64 / (1 << 20) as f64
            );
        }
        line(out, "cpu", text);
    }
}

fn rate_text(run: &crate::report::RunDescription) -> String {
    match &run.stages {
        Some(stages) => format!("stages {stages} (peak {} msg/s)", run.rate),
        None => format!("{} msg/s", run.rate),
    }
}

fn line(out: &mut String, label: &str, text: String) {
    let _ = writeln!(out, "{label:<LABEL$}{text}");
}

fn reasons(counts: &BTreeMap<String, u64>) -> String {
    if counts.is_empty() {
        return String::new();
    }
    let parts: Vec<String> = counts
        .iter()
        .map(|(reason, count)| format!("{reason}: {count}"))
        .collect();
    format!(" ({})", parts.join(", "))
}

/// Formats a byte count with a unit that suits it.
fn format_bytes(bytes: u64) -> String {
    if bytes < 10 * 1024 {
        format!("{bytes} B")
    } else if bytes < 10 << 20 {
        format!("{:.1} KiB", bytes as f64 / 1024.0)
    } else {
        format!("{:.1} MiB", bytes as f64 / (1 << 20) as f64)
    }
}

/// Formats a microsecond value with a unit that suits it.
pub(crate) fn format_us(us: u64) -> String {
    if us < 1_000 {
        format!("{us} µs")
    } else if us < 1_000_000 {
        format!("{:.2} ms", us as f64 / 1e3)
    } else {
        format!("{:.2} s", us as f64 / 1e6)
    }
}

/// `p50 1.2 ms  p99 3.4 ms  max 5.6 ms`, or `no samples`.
pub(crate) fn percentiles(histogram: &Histogram<u64>, quantiles: &[f64]) -> String {
    if histogram.is_empty() {
        return "no samples".to_owned();
    }
    let mut parts: Vec<String> = quantiles
        .iter()
        .map(|&q| {
            format!(
                "p{} {}",
                trim_quantile(q),
                format_us(histogram.value_at_quantile(q))
            )
        })
        .collect();
    parts.push(format!("max {}", format_us(histogram.max())));
    parts.join("  ")
}

fn trim_quantile(quantile: f64) -> String {
    let text = format!("{}", quantile * 100.0);
    text.trim_end_matches(".0").to_owned()
}
