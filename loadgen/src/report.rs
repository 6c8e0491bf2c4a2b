//! Merging the workers' measurements into one report, and writing it: a table on stdout,
//! JSON, and HdrHistogram's percentile distribution (`.hgrm`).

use std::collections::BTreeMap;
use std::fmt::Write as _;

use hdrhistogram::Histogram;
use serde_json::{json, Value};

use crate::accounting::{Owed, Tally};
use crate::measurements::{new_histogram, Measurements, ReceiverRecord};
use crate::plan::RunKind;
use crate::schedule::Schedule;

/// Receivers with an anomaly listed one by one in the JSON; the sums count them all.
const MAX_LISTED_RECEIVERS: usize = 100;

/// What the run was asked to do, for the report's header.
#[derive(Debug, Clone)]
pub struct RunDescription {
    /// fanout, echo or connect.
    pub kind: RunKind,
    /// The URL as given.
    pub url: String,
    /// Clients asked for.
    pub clients: u32,
    /// Senders.
    pub senders: u32,
    /// Messages per second, all senders together.
    pub rate: f64,
    /// Payload bytes.
    pub payload: usize,
    /// Binary frames.
    pub binary: bool,
    /// Seconds measured.
    pub duration_s: f64,
    /// Seconds of warmup.
    pub warmup_s: f64,
    /// Worker threads.
    pub threads: usize,
    /// Rooms.
    pub rooms: u32,
    /// Whether senders receive their own messages: `Some` when stated on the command line.
    pub expect_self: Option<bool>,
}

/// CPU and memory seen during the measured window.
#[derive(Debug, Clone, Copy, Default)]
pub struct Resources {
    /// Seconds of wall time the samples span.
    pub wall_s: f64,
    /// CPU seconds this process used.
    pub loadgen_cpu_s: f64,
    /// CPU seconds the server used, when its pid was given.
    pub server_cpu_s: Option<f64>,
    /// The server's largest RSS seen, bytes.
    pub server_rss_max: Option<u64>,
}

/// Every figure of a run.
#[derive(Debug)]
pub struct Report {
    /// What was asked.
    pub run: RunDescription,
    /// Clients whose handshake completed.
    pub connected: u64,
    /// Failed connections by reason.
    pub failures: BTreeMap<String, u64>,
    /// Handshake latency (µs).
    pub handshake: Histogram<u64>,
    /// Probes sent in the measured window.
    pub sent: u64,
    /// Probes sent in the warmup.
    pub sent_warmup: u64,
    /// Deliveries expected in the measured window.
    pub expected: u64,
    /// Unique deliveries received in the measured window.
    pub received: u64,
    /// Expected deliveries that never came.
    pub lost: u64,
    /// Deliveries beyond what was expected (to the wrong room, or to a sender not expected to
    /// get its own message).
    pub unexpected: u64,
    /// Copies after the first, however late.
    pub duplicates: u64,
    /// Deliveries out of order.
    pub out_of_order: u64,
    /// Messages that were not probes.
    pub non_probe: u64,
    /// Messages that carried more than one probe.
    pub multi_probe: u64,
    /// Receivers settled.
    pub receivers: u64,
    /// Receivers that lost at least one delivery.
    pub receivers_with_loss: u64,
    /// The first receivers with an anomaly, and their tallies.
    pub anomalies: Vec<(u32, Tally)>,
    /// Probes of another run or client.
    pub foreign: u64,
    /// Whether senders get their own messages, and whether that was detected or stated.
    pub self_echo: bool,
    /// How `self_echo` was decided.
    pub self_echo_source: &'static str,
    /// Delivery latency, measured window (µs).
    pub delivery: Histogram<u64>,
    /// Delivery latency, warmup (µs).
    pub delivery_warmup: Histogram<u64>,
    /// Completion latency: last receiver of each message (µs).
    pub completion: Histogram<u64>,
    /// Messages that did not reach every receiver.
    pub incomplete: u64,
    /// Lateness of sends against the schedule (µs).
    pub send_lag: Histogram<u64>,
    /// Close codes the server sent.
    pub close_codes: BTreeMap<u16, u64>,
    /// Rules the server broke.
    pub protocol_errors: BTreeMap<String, u64>,
    /// Open connections lost, by reason.
    pub disconnects: BTreeMap<String, u64>,
    /// Clients still open at the end.
    pub open_at_end: u64,
    /// CPU and memory.
    pub resources: Resources,
    /// Reasons to doubt the figures.
    pub warnings: Vec<String>,
}

impl Report {
    /// Merges the workers' results and settles every receiver's accounting.
    pub fn merge(
        run: RunDescription,
        schedule: Option<Schedule>,
        results: Vec<Measurements>,
        resources: Resources,
    ) -> Report {
        let mut handshake = new_histogram();
        let mut delivery = new_histogram();
        let mut delivery_warmup = new_histogram();
        let mut send_lag = new_histogram();
        let mut failures = BTreeMap::new();
        let mut close_codes = BTreeMap::new();
        let mut protocol_errors = BTreeMap::new();
        let mut disconnects = BTreeMap::new();
        let mut sent_by_sender: BTreeMap<u32, u64> = BTreeMap::new();
        let tracked = results.iter().map(|r| r.arrivals.len()).max().unwrap_or(0);
        let mut arrivals = vec![0u64; tracked];
        let mut last_arrival = vec![0u64; tracked];
        let (mut non_probe, mut multi_probe, mut foreign) = (0, 0, 0);
        let (mut self_deliveries, mut open_at_end, mut connected) = (0, 0, 0);
        let mut receivers = Vec::new();
        for result in results {
            let _ = handshake.add(&result.handshake);
            let _ = delivery.add(&result.delivery);
            let _ = delivery_warmup.add(&result.delivery_warmup);
            let _ = send_lag.add(&result.send_lag);
            merge_counts(&mut failures, &result.failures);
            merge_counts(&mut close_codes, &result.close_codes);
            merge_counts(&mut protocol_errors, &result.protocol_errors);
            merge_counts(&mut disconnects, &result.disconnects);
            merge_counts(&mut sent_by_sender, &result.sent_by_sender);
            for (n, (&count, &last)) in result
                .arrivals
                .iter()
                .zip(&result.last_arrival_ns)
                .enumerate()
            {
                arrivals[n] += u64::from(count);
                last_arrival[n] = last_arrival[n].max(last);
            }
            non_probe += result.non_probe;
            multi_probe += result.multi_probe;
            foreign += result.foreign;
            self_deliveries += result.self_deliveries;
            open_at_end += result.open_at_end;
            connected += result.handshake.len();
            receivers.extend(result.receivers);
        }
        let (self_echo, self_echo_source) = match (run.kind, run.expect_self) {
            (RunKind::Echo, _) => (true, "echo run"),
            (_, Some(stated)) => (stated, "stated"),
            (_, None) => (self_deliveries > 0, "detected"),
        };
        let rooms = run.rooms.max(1);

        // Messages each sender sent in the measured window, and who they were owed to.
        let mut sent_measured: BTreeMap<u32, u64> = BTreeMap::new();
        let (mut sent, mut sent_warmup) = (0, 0);
        if let Some(schedule) = schedule {
            for (&sender, &count) in &sent_by_sender {
                for k in 0..count {
                    if schedule.is_warmup(schedule.message_number(sender, k)) {
                        sent_warmup += 1;
                    } else {
                        sent += 1;
                        *sent_measured.entry(sender).or_default() += 1;
                    }
                }
            }
        }
        let owes = |record: &ReceiverRecord, sender: u32| -> bool {
            record.owed
                && match run.kind {
                    RunKind::Echo => record.own_sender == Some(sender),
                    _ => {
                        sender % rooms == record.room
                            && (self_echo || record.own_sender != Some(sender))
                    }
                }
        };
        let mut tally = Tally::default();
        let mut anomalies = Vec::new();
        let mut receivers_with_loss = 0u64;
        let mut receivers_per_sender: BTreeMap<u32, u64> = BTreeMap::new();
        for record in &receivers {
            let owed: Vec<Owed> = sent_measured
                .iter()
                .filter(|(&sender, _)| owes(record, sender))
                .map(|(&sender, &messages)| Owed {
                    sender: if run.kind == RunKind::Echo { 0 } else { sender },
                    messages,
                })
                .collect();
            for (&sender, _) in sent_by_sender.iter().filter(|(&s, _)| owes(record, s)) {
                *receivers_per_sender.entry(sender).or_default() += 1;
            }
            let own = record.book.settle(&owed);
            tally.add(&own);
            if own.lost > 0 {
                receivers_with_loss += 1;
            }
            if own.has_anomaly() && anomalies.len() < MAX_LISTED_RECEIVERS {
                anomalies.push((record.client, own));
            }
        }

        let mut completion = new_histogram();
        let mut incomplete = 0;
        if let Some(schedule) = schedule {
            for (&sender, &count) in &sent_by_sender {
                let owed_to = receivers_per_sender.get(&sender).copied().unwrap_or(0);
                for k in 0..count {
                    let n = schedule.message_number(sender, k);
                    if schedule.is_warmup(n) || owed_to == 0 {
                        continue;
                    }
                    let got = arrivals.get(n as usize).copied().unwrap_or(0);
                    if got >= owed_to {
                        let latency =
                            last_arrival[n as usize].saturating_sub(schedule.intended_ns(n)) / 1000;
                        completion.saturating_record(latency.max(1));
                    } else {
                        incomplete += 1;
                    }
                }
            }
        }

        let mut report = Report {
            run,
            connected,
            failures,
            handshake,
            sent,
            sent_warmup,
            expected: tally.expected,
            received: tally.received,
            lost: tally.lost,
            unexpected: tally.unexpected,
            duplicates: tally.duplicated,
            out_of_order: tally.out_of_order,
            non_probe,
            multi_probe,
            foreign,
            receivers: receivers.len() as u64,
            receivers_with_loss,
            anomalies,
            self_echo,
            self_echo_source,
            delivery,
            delivery_warmup,
            completion,
            incomplete,
            send_lag,
            close_codes,
            protocol_errors,
            disconnects,
            open_at_end,
            resources,
            warnings: Vec::new(),
        };
        report.warnings = report.find_warnings();
        report
    }

    fn find_warnings(&self) -> Vec<String> {
        let mut warnings = Vec::new();
        let resources = &self.resources;
        if resources.wall_s > 0.0 {
            let busy = resources.loadgen_cpu_s / resources.wall_s;
            if busy > 0.9 * self.run.threads as f64 {
                warnings.push(format!(
                    "the loadgen used {:.0}% of its {} thread(s): it may be the bottleneck, not the server",
                    busy * 100.0,
                    self.run.threads
                ));
            }
        }
        if !self.send_lag.is_empty() && self.run.kind != RunKind::Connect {
            let lag_p99 = self.send_lag.value_at_quantile(0.99);
            if lag_p99 > 5_000 {
                warnings.push(format!(
                    "the send schedule fell behind (lag p99 {}): the loadgen could not keep its own schedule; latencies include that lag",
                    format_us(lag_p99)
                ));
            }
        }
        warnings
    }

    /// Deliveries received per second of the measured window.
    pub fn deliveries_per_second(&self) -> f64 {
        if self.run.duration_s > 0.0 {
            self.received as f64 / self.run.duration_s
        } else {
            0.0
        }
    }

    /// The human-readable table.
    pub fn table(&self) -> String {
        let run = &self.run;
        let mut out = String::new();
        let kind = run.kind.name();
        let _ = write!(out, "loadgen {kind}: {}, {} clients", run.url, run.clients);
        if run.kind != RunKind::Connect {
            let _ = write!(
                out,
                ", {} sender(s), {} msg/s, {} B {}, {}s measured (+{}s warmup)",
                run.senders,
                run.rate,
                run.payload,
                if run.binary { "binary" } else { "text" },
                run.duration_s,
                run.warmup_s
            );
        }
        let _ = writeln!(out, ", {} thread(s), {} room(s)", run.threads, run.rooms);
        let failed: u64 = self.failures.values().sum();
        let _ = writeln!(
            out,
            "{:<18}{} ok, {} failed{}",
            "connections",
            self.connected,
            failed,
            reasons(&self.failures)
        );
        let _ = writeln!(
            out,
            "{:<18}{}",
            "handshake",
            percentiles(&self.handshake, &[0.5, 0.99], true)
        );
        if run.kind != RunKind::Connect {
            let _ = writeln!(
                out,
                "{:<18}{} measured, {} warmup; schedule lag {}",
                "messages sent",
                self.sent,
                self.sent_warmup,
                percentiles(&self.send_lag, &[0.99], true)
            );
            let _ = writeln!(
                out,
                "{:<18}expected {}, received {}, lost {}, duplicated {}, out of order {}, unexpected {}",
                "deliveries", self.expected, self.received, self.lost, self.duplicates, self.out_of_order, self.unexpected
            );
            let _ = writeln!(
                out,
                "{:<18}{:.0} deliveries/s; senders get their own messages: {} ({}); non-probe messages {}, messages with several probes {}, foreign probes {}",
                "",
                self.deliveries_per_second(),
                if self.self_echo { "yes" } else { "no" },
                self.self_echo_source,
                self.non_probe,
                self.multi_probe,
                self.foreign
            );
            if let Some((client, worst)) = self
                .anomalies
                .iter()
                .max_by_key(|(_, t)| t.lost + t.duplicated + t.unexpected)
            {
                let _ = writeln!(
                    out,
                    "{:<18}{} of {} receivers lost deliveries; e.g. client {client}: lost {}, duplicated {}, out of order {}, unexpected {}",
                    "per receiver",
                    self.receivers_with_loss,
                    self.receivers,
                    worst.lost,
                    worst.duplicated,
                    worst.out_of_order,
                    worst.unexpected
                );
            }
            let _ = writeln!(
                out,
                "{:<18}{}",
                "delivery latency",
                percentiles(&self.delivery, &[0.5, 0.9, 0.99, 0.999], true)
            );
            if run.kind == RunKind::Fanout {
                let _ = writeln!(
                    out,
                    "{:<18}{}; incomplete messages {}",
                    "completion",
                    percentiles(&self.completion, &[0.5, 0.99], true),
                    self.incomplete
                );
            }
            if !self.delivery_warmup.is_empty() {
                let _ = writeln!(
                    out,
                    "{:<18}{} (discarded)",
                    "warmup latency",
                    percentiles(&self.delivery_warmup, &[0.5, 0.99], true)
                );
            }
        }
        let _ = writeln!(
            out,
            "{:<18}{} still open at the end; lost while open: {}{}",
            "connections",
            self.open_at_end,
            self.disconnects.values().sum::<u64>(),
            reasons(&self.disconnects)
        );
        if !self.close_codes.is_empty() {
            let codes: Vec<String> = self
                .close_codes
                .iter()
                .map(|(code, count)| format!("{code} x{count}"))
                .collect();
            let _ = writeln!(out, "{:<18}{}", "close codes", codes.join(", "));
        }
        if !self.protocol_errors.is_empty() {
            let _ = writeln!(
                out,
                "{:<18}{}",
                "server errors",
                reasons(&self.protocol_errors)
                    .trim_start_matches([' ', '('])
                    .trim_end_matches(')')
            );
        }
        let resources = &self.resources;
        if resources.wall_s > 0.0 {
            let deliveries = self.received.max(1) as f64;
            let _ = write!(
                out,
                "{:<18}loadgen {:.0}% of a core ({:.2} µs per delivery)",
                "cpu",
                resources.loadgen_cpu_s / resources.wall_s * 100.0,
                resources.loadgen_cpu_s / deliveries * 1e6
            );
            if let Some(server_cpu) = resources.server_cpu_s {
                let _ = write!(
                    out,
                    "; server {:.0}% of a core ({:.2} µs per delivery)",
                    server_cpu / resources.wall_s * 100.0,
                    server_cpu / deliveries * 1e6
                );
            }
            if let Some(rss) = resources.server_rss_max {
                let _ = write!(
                    out,
                    ", server rss max {:.1} MiB",
                    rss as f64 / (1 << 20) as f64
                );
            }
            let _ = writeln!(out);
        }
        for warning in &self.warnings {
            let _ = writeln!(out, "warning: {warning}");
        }
        out
    }

    /// Every figure as JSON.
    pub fn json(&self) -> Value {
        let run = &self.run;
        json!({
            "run": {
                "kind": run.kind.name(),
                "url": run.url,
                "clients": run.clients,
                "senders": run.senders,
                "rate_per_s": run.rate,
                "payload_bytes": run.payload,
                "binary": run.binary,
                "duration_s": run.duration_s,
                "warmup_s": run.warmup_s,
                "threads": run.threads,
                "rooms": run.rooms,
            },
            "connections": {
                "ok": self.connected,
                "failed": self.failures.values().sum::<u64>(),
                "failures": self.failures,
                "open_at_end": self.open_at_end,
                "lost_while_open": self.disconnects,
                "close_codes": self.close_codes.iter().map(|(code, count)| (code.to_string(), *count)).collect::<BTreeMap<_, _>>(),
            },
            "handshake_us": histogram_json(&self.handshake),
            "messages": { "sent": self.sent, "sent_warmup": self.sent_warmup },
            "deliveries": {
                "expected": self.expected,
                "received": self.received,
                "lost": self.lost,
                "duplicated": self.duplicates,
                "out_of_order": self.out_of_order,
                "unexpected": self.unexpected,
                "non_probe_messages": self.non_probe,
                "multi_probe_messages": self.multi_probe,
                "receivers": self.receivers,
                "receivers_with_loss": self.receivers_with_loss,
                "per_receiver": self.anomalies.iter().map(|(client, tally)| json!({
                    "client": client,
                    "expected": tally.expected,
                    "received": tally.received,
                    "lost": tally.lost,
                    "duplicated": tally.duplicated,
                    "out_of_order": tally.out_of_order,
                    "unexpected": tally.unexpected,
                })).collect::<Vec<_>>(),
                "foreign_probes": self.foreign,
                "per_second": self.deliveries_per_second(),
                "self_echo": self.self_echo,
                "self_echo_source": self.self_echo_source,
            },
            "delivery_latency_us": histogram_json(&self.delivery),
            "warmup_delivery_latency_us": histogram_json(&self.delivery_warmup),
            "completion_latency_us": histogram_json(&self.completion),
            "incomplete_messages": self.incomplete,
            "send_lag_us": histogram_json(&self.send_lag),
            "server_protocol_errors": self.protocol_errors,
            "resources": {
                "wall_s": self.resources.wall_s,
                "loadgen_cpu_s": self.resources.loadgen_cpu_s,
                "server_cpu_s": self.resources.server_cpu_s,
                "server_rss_max_bytes": self.resources.server_rss_max,
            },
            "warnings": self.warnings,
        })
    }
}

fn merge_counts<K: Ord + Clone>(into: &mut BTreeMap<K, u64>, from: &BTreeMap<K, u64>) {
    for (key, count) in from {
        *into.entry(key.clone()).or_default() += count;
    }
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

/// Formats a microsecond value with a unit that suits it.
pub fn format_us(us: u64) -> String {
    if us < 1_000 {
        format!("{us} µs")
    } else if us < 1_000_000 {
        format!("{:.2} ms", us as f64 / 1e3)
    } else {
        format!("{:.2} s", us as f64 / 1e6)
    }
}

fn percentiles(histogram: &Histogram<u64>, quantiles: &[f64], with_max: bool) -> String {
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
    if with_max {
        parts.push(format!("max {}", format_us(histogram.max())));
    }
    parts.join("  ")
}

fn trim_quantile(quantile: f64) -> String {
    let text = format!("{}", quantile * 100.0);
    text.trim_end_matches(".0").to_owned()
}

fn histogram_json(histogram: &Histogram<u64>) -> Value {
    if histogram.is_empty() {
        return json!({ "count": 0 });
    }
    json!({
        "count": histogram.len(),
        "min": histogram.min(),
        "mean": histogram.mean(),
        "p50": histogram.value_at_quantile(0.5),
        "p90": histogram.value_at_quantile(0.9),
        "p99": histogram.value_at_quantile(0.99),
        "p99_9": histogram.value_at_quantile(0.999),
        "max": histogram.max(),
    })
}

/// HdrHistogram's standard percentile distribution output, values in milliseconds.
pub fn hgrm(histogram: &Histogram<u64>) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:>12} {:>14} {:>10} {:>14}\n",
        "Value", "Percentile", "TotalCount", "1/(1-Percentile)"
    );
    let mut total = 0u64;
    for step in histogram.iter_quantiles(5) {
        total += step.count_since_last_iteration();
        let quantile = step.quantile_iterated_to();
        let value_ms = step.value_iterated_to() as f64 / 1000.0;
        if quantile < 1.0 {
            let _ = writeln!(
                out,
                "{value_ms:>12.3} {quantile:>14.12} {total:>10} {:>14.2}",
                1.0 / (1.0 - quantile)
            );
        } else {
            let _ = writeln!(out, "{value_ms:>12.3} {quantile:>14.12} {total:>10}");
        }
    }
    let _ = writeln!(
        out,
        "#[Mean    = {:>12.3}, StdDeviation   = {:>12.3}]",
        histogram.mean() / 1000.0,
        histogram.stdev() / 1000.0
    );
    let _ = writeln!(
        out,
        "#[Max     = {:>12.3}, Total count    = {:>12}]",
        histogram.max() as f64 / 1000.0,
        histogram.len()
    );
    let _ = writeln!(
        out,
        "#[Buckets = {:>12}, SubBuckets     = {:>12}]",
        histogram.buckets(),
        histogram.distinct_values()
    );
    out
}
