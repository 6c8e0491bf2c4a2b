//! The report as files: JSON (every field described in `docs/loadgen-output.md`) and
//! HdrHistogram's percentile distribution (`.hgrm`, values in milliseconds).

use std::collections::BTreeMap;
use std::fmt::Write as _;

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use hdrhistogram::serialization::{Serializer as _, V2Serializer};
use hdrhistogram::Histogram;
use serde_json::{json, Map, Value};

use crate::accounting::Tally;
use crate::packed;
use crate::plan::RunKind;
use crate::report::{Report, UrlFigures};

/// The JSON layout's version: raised when a field changes meaning or goes away.
pub(crate) const SCHEMA_VERSION: u64 = 4;

impl Report {
    /// Every figure as JSON.
    pub(crate) fn json(&self) -> Value {
        let run = &self.run;
        let sends = run.kind.sends();
        let mut run_json = json!({
            "kind": run.kind.name(),
            "url": run.urls.join(" "),
            "urls": run.urls,
            "clients": run.clients,
            "threads": run.threads,
            "run_id": format!("{:08x}", run.run_id),
            "merged_reports": run.merged_reports,
        });
        let fields = run_json.as_object_mut().expect("an object");
        if sends {
            fields.insert("rate_per_s".into(), json!(run.rate));
            fields.insert("payload_bytes".into(), json!(run.payload));
            fields.insert("message_template".into(), json!(run.message_template));
            fields.insert("binary".into(), json!(run.binary));
            fields.insert("compress".into(), json!(run.compress));
            fields.insert("arrival".into(), json!(run.arrival));
            fields.insert("duration_s".into(), json!(run.duration_s));
            fields.insert("stages".into(), json!(run.stages));
            fields.insert("warmup_s".into(), json!(run.warmup_s));
            fields.insert("drain_s".into(), json!(run.after_s));
        } else {
            fields.insert("hold_s".into(), json!(run.after_s));
        }
        if run.kind == RunKind::Fanout {
            fields.insert("senders".into(), json!(run.senders));
            fields.insert("sender_ranges".into(), json!(run.sender_ranges));
            fields.insert("total_senders".into(), json!(run.total_senders));
            fields.insert("rooms".into(), json!(run.rooms));
            fields.insert("connection_stages".into(), json!(run.connection_stages));
        }
        let mut out = Map::new();
        out.insert("schema_version".into(), json!(SCHEMA_VERSION));
        out.insert(
            "loadgen".into(),
            json!({
                "version": env!("CARGO_PKG_VERSION"),
                "command_line": run.command_line,
                "started_at_unix_ms": run.started_unix_ms,
                "started_at": utc_timestamp(run.started_unix_ms),
            }),
        );
        out.insert("interrupted".into(), json!(self.timeline.interrupted));
        out.insert(
            "verdict".into(),
            json!({ "valid": self.is_valid(), "reasons": self.invalid_reasons }),
        );
        out.insert(
            "thresholds".into(),
            Value::Array(
                self.thresholds
                    .iter()
                    .map(|outcome| {
                        json!({
                            "threshold": outcome.text,
                            "passed": outcome.passed,
                            "actual": outcome.actual,
                        })
                    })
                    .collect(),
            ),
        );
        out.insert("exit_code".into(), json!(self.exit_code()));
        out.insert("run".into(), run_json);
        out.insert(
            "connections".into(),
            json!({
                "ok": self.connected,
                "failed": self.failures.values().sum::<u64>(),
                "failures": self.failures,
                "open_at_end": self.open_at_end,
                "lost_while_open": self.disconnects,
                "left_as_planned": self.left_as_planned,
                "close_codes": self.close_codes.iter().map(|(code, count)| (code.to_string(), *count)).collect::<BTreeMap<_, _>>(),
            }),
        );
        out.insert("handshake_us".into(), histogram_json(&self.handshake));
        out.insert(
            "bytes".into(),
            json!({
                "compressed_connections": self.bytes.compressed_connections,
                "received_wire": self.bytes.wire_received,
                "received_payload": self.bytes.payload_received,
                "sent_wire": self.bytes.wire_sent,
                "sent_payload": self.bytes.payload_sent,
            }),
        );
        out.insert(
            "tls_handshake_us".into(),
            histogram_json(&self.tls_handshake),
        );
        out.insert("upgrade_us".into(), histogram_json(&self.upgrade));
        if sends {
            self.insert_sending(&mut out);
        }
        if !self.per_url.is_empty() {
            let per_url = self
                .per_url
                .iter()
                .map(|figures| self.url_json(figures))
                .collect();
            out.insert("per_url".into(), Value::Array(per_url));
        }
        out.insert("server_protocol_errors".into(), json!(self.protocol_errors));
        out.insert(
            "resources".into(),
            json!({
                "wall_s": self.resources.wall_s,
                "loadgen_cpu_s": self.resources.loadgen_cpu_s,
                "server_cpu_s": self.resources.server_cpu_s,
                "server_rss_max_bytes": self.resources.server_rss_max,
                "server_exited": self.resources.server_exited,
            }),
        );
        if sends && self.run.multi_process {
            out.insert("merge".into(), self.merge_json());
        }
        // Kept under its old name for readers of schema 1: the verdict's reasons.
        out.insert("warnings".into(), json!(self.invalid_reasons));
        Value::Object(out)
    }

    /// The JSON as written to `--json`: pretty-printed for people, except the `merge` section,
    /// which is for `loadgen merge` and goes last on one line.
    pub(crate) fn json_text(&self) -> String {
        let mut json = self.json();
        let merge = json
            .as_object_mut()
            .and_then(|fields| fields.remove("merge"));
        let text = serde_json::to_string_pretty(&json).expect("json of plain values");
        match (merge, text.strip_suffix("\n}")) {
            (Some(merge), Some(fields)) => format!("{fields},\n  \"merge\": {merge}\n}}\n"),
            _ => text + "\n",
        }
    }

    /// What `loadgen merge` needs to combine this report with others of the same run:
    /// histograms losslessly (HdrHistogram V2 serialized, base64), per-receiver counts, per
    /// message arrivals, times as offsets from the schedule's start. The big arrays are packed
    /// (`packed.rs`).
    fn merge_json(&self) -> Value {
        let data = &self.merge_data;
        let start_ns = self
            .timeline
            .schedule
            .map_or(0, |schedule| schedule.start_ns);
        let offset = |ns: u64| ns.saturating_sub(start_ns);
        let (first_rate, points) = self
            .run
            .shape
            .map(|shape| shape.points())
            .unwrap_or_default();
        let receivers = data.receivers.iter().flat_map(|record| {
            let counts = &record.counts;
            [
                u64::from(record.client),
                u64::from(record.identity.room),
                record.identity.target as u64,
                u64::from(record.identity.window.is_some()),
                record.identity.window.map_or(0, |window| window.from_ns),
                record.identity.window.map_or(0, |window| window.until_ns),
                record
                    .identity
                    .own_sender
                    .map_or(0, |sender| u64::from(sender) + 1),
                counts.duplicated,
                counts.out_of_order,
                counts.measured.len() as u64,
            ]
            .into_iter()
            .chain(counts.measured.iter().copied())
        });
        let last_arrivals =
            data.last_arrival_ns
                .iter()
                .map(|&last| if last == 0 { 0 } else { offset(last).max(1) });
        json!({
            "run_id": format!("{:08x}", self.run.run_id),
            "sender_ranges": self.run.sender_ranges,
            "total_senders": self.run.total_senders,
            "start_at_unix_ms": self.run.start_at_unix_ms,
            "shape": { "first_rate": first_rate, "points": points, "warmup_s": self.run.warmup_s },
            "histograms": {
                "delivery": serialized(&self.delivery),
                "delivery_warmup": serialized(&self.delivery_warmup),
                "handshake": serialized(&self.handshake),
                "tls_handshake": serialized(&self.tls_handshake),
                "upgrade": serialized(&self.upgrade),
                "send_lag": serialized(&self.send_lag),
            },
            "sent_by_sender_packed": packed::pack(data.sent_by_sender.iter().flat_map(|(&sender, &count)| [u64::from(sender), count])),
            "receivers": data.receivers.len(),
            "receivers_packed": packed::pack(receivers),
            "arrivals_packed": packed::pack(data.arrivals.iter().copied()),
            "last_arrival_offset_ns_packed": packed::pack(last_arrivals),
            "last_delivery_offset_ns": offset(data.last_delivery_ns),
            "stopped_offset_ns": offset(self.timeline.stopped_ns),
            "halted_offset_ns": self.timeline.halted_ns.map(offset),
            "self_deliveries": data.self_deliveries,
            "non_probe_messages": self.non_probe,
            "multi_probe_messages": self.multi_probe,
            "foreign_probes": self.foreign,
            "open_at_end": self.open_at_end,
            "outside_membership": self.outside_membership,
            "left_as_planned": self.left_as_planned,
            "per_url": self.per_url_merge_json(),
            "intervals": self.run.interval_s.map(|interval_s| json!({
                "interval_s": interval_s,
                "delivered_packed": packed::pack(self.intervals.iter().map(|row| row.delivered)),
                "open_connections_packed": packed::pack(self.timeline.open_by_interval.iter().copied()),
                "latency": data.interval_latency.iter().map(serialized).collect::<Vec<_>>(),
            })),
        })
    }

    /// Per URL, what merging needs to give per-URL figures: with one URL, the totals are its.
    fn per_url_merge_json(&self) -> Vec<Value> {
        if self.per_url.is_empty() {
            let url = self.run.urls.first().cloned().unwrap_or_default();
            return vec![json!({
                "url": url,
                "delivery": serialized(&self.delivery),
                "handshake": serialized(&self.handshake),
                "failed": self.failures.values().sum::<u64>(),
                "disconnected": self.disconnects.values().sum::<u64>(),
            })];
        }
        self.per_url
            .iter()
            .map(|figures| {
                json!({
                    "url": figures.url,
                    "delivery": serialized(&figures.delivery),
                    "handshake": serialized(&figures.handshake),
                    "failed": figures.failed,
                    "disconnected": figures.disconnected,
                })
            })
            .collect()
    }

    fn url_json(&self, figures: &UrlFigures) -> Value {
        let mut entry = json!({
            "url": figures.url,
            "connections_ok": figures.connected,
            "connections_failed": figures.failed,
            "lost_while_open": figures.disconnected,
            "handshake_us": histogram_json(&figures.handshake),
        });
        if self.run.kind.sends() {
            let fields = entry.as_object_mut().expect("an object");
            let tally = &figures.tally;
            fields.insert("deliveries".into(), Value::Object(tally_json(tally)));
            fields.insert(
                "delivery_latency_us".into(),
                histogram_json(&figures.delivery),
            );
        }
        entry
    }

    fn insert_sending(&self, out: &mut Map<String, Value>) {
        out.insert(
            "messages".into(),
            json!({
                "scheduled": self.scheduled,
                "sent": self.sent,
                "sent_warmup": self.sent_warmup,
                "not_sent": self.not_sent,
                "senders_lost": self.senders_lost,
            }),
        );
        let mut deliveries = tally_json(&self.tally);
        deliveries.extend(json_fields(json!({
            "undelivered_at_end": self.undelivered,
            "non_probe_messages": self.non_probe,
            "multi_probe_messages": self.multi_probe,
            "foreign_probes": self.foreign,
            "from_other_processes": self.other_process_deliveries,
            "outside_membership": self.outside_membership,
            "per_second": self.deliveries_per_second(),
            "elapsed_s": self.delivery_elapsed_s,
            "receivers": self.receivers,
            "receivers_with_loss": self.receivers_with_loss,
            "per_receiver": self.anomalies.iter().map(|(client, tally)| {
                let mut entry = json_fields(json!({ "client": client }));
                entry.extend(tally_json(tally));
                entry
            }).collect::<Vec<_>>(),
        })));
        if self.run.kind == RunKind::Fanout {
            deliveries.insert("self_echo".into(), json!(self.self_echo));
            deliveries.insert("self_echo_source".into(), json!(self.self_echo_source));
        }
        out.insert("deliveries".into(), Value::Object(deliveries));
        out.insert("delivery_latency_us".into(), histogram_json(&self.delivery));
        let mut bounded = histogram_json(&self.delivery_with_undelivered);
        if let Some(fields) = bounded.as_object_mut() {
            fields.insert("undelivered".into(), json!(self.undelivered));
        }
        out.insert("delivery_latency_with_undelivered_us".into(), bounded);
        out.insert(
            "warmup_delivery_latency_us".into(),
            histogram_json(&self.delivery_warmup),
        );
        if self.run.kind == RunKind::Fanout {
            out.insert(
                "completion_latency_us".into(),
                histogram_json(&self.completion),
            );
            out.insert("incomplete_messages".into(), json!(self.incomplete));
        }
        out.insert("send_lag_us".into(), histogram_json(&self.send_lag));
        if let Some(interval_s) = self.run.interval_s {
            out.insert(
                "intervals".into(),
                json!({
                    "interval_s": interval_s,
                    "rows": self.intervals.iter().map(|row| json!({
                        "start_s": row.start_s,
                        "end_s": row.end_s,
                        "scheduled": row.scheduled,
                        "sent": row.sent,
                        "delivered": row.delivered,
                        "lost": row.lost,
                        "p50_us": row.p50_us,
                        "p99_us": row.p99_us,
                        "max_us": row.max_us,
                        "open_connections": row.open_connections,
                    })).collect::<Vec<_>>(),
                }),
            );
        }
    }

    /// The time series as CSV: one header line, one row per interval.
    pub(crate) fn csv(&self) -> String {
        let mut out = String::from(
            "start_s,end_s,scheduled,sent,delivered,lost,p50_us,p99_us,max_us,open_connections\n",
        );
        let cell = |value: Option<u64>| value.map_or(String::new(), |v| v.to_string());
        for row in &self.intervals {
            let _ = writeln!(
                out,
                "{:.3},{:.3},{},{},{},{},{},{},{},{}",
                row.start_s,
                row.end_s,
                row.scheduled,
                row.sent,
                row.delivered,
                row.lost,
                cell(row.p50_us),
                cell(row.p99_us),
                cell(row.max_us),
                cell(row.open_connections)
            );
        }
        out
    }

    /// The `.hgrm` file: delivery latency (round trip in echo runs), handshake latency in
    /// connect runs.
    pub(crate) fn hgrm(&self) -> String {
        if self.run.kind.sends() {
            hgrm(&self.delivery)
        } else {
            hgrm(&self.handshake)
        }
    }
}

/// A receiver's (or a sum of receivers') accounting.
fn tally_json(tally: &Tally) -> Map<String, Value> {
    json_fields(json!({
        "expected": tally.expected,
        "received": tally.received,
        "lost": tally.lost,
        "duplicated": tally.duplicated,
        "out_of_order": tally.out_of_order,
        "unexpected": tally.unexpected,
    }))
}

/// The fields of a JSON object made with `json!({...})`.
fn json_fields(object: Value) -> Map<String, Value> {
    match object {
        Value::Object(fields) => fields,
        _ => Map::new(),
    }
}

/// A histogram in HdrHistogram's V2 serialized form, base64.
fn serialized(histogram: &Histogram<u64>) -> String {
    let mut bytes = Vec::new();
    V2Serializer::new()
        .serialize(histogram, &mut bytes)
        .expect("serializing into memory cannot fail");
    BASE64.encode(bytes)
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

/// `2026-12-02T04:44:16.123Z` from milliseconds since the Unix epoch (proleptic Gregorian,
/// days to civil date after Howard Hinnant's published algorithm).
pub(crate) fn utc_timestamp(unix_ms: u64) -> String {
    let days = (unix_ms / 86_400_000) as i64;
    let ms_of_day = unix_ms % 86_400_000;
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let day_of_era = z.rem_euclid(146_097);
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_index = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * month_index + 2) / 5 + 1;
    let month = if month_index < 10 {
        month_index + 3
    } else {
        month_index - 9
    };
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        ms_of_day / 3_600_000,
        ms_of_day / 60_000 % 60,
        ms_of_day / 1000 % 60,
        ms_of_day % 1000
    )
}

/// HdrHistogram's standard percentile distribution output, values in milliseconds.
pub(crate) fn hgrm(histogram: &Histogram<u64>) -> String {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_are_utc_iso_8601() {
        assert_eq!(utc_timestamp(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(utc_timestamp(951_782_400_000), "2000-02-29T00:00:00.000Z");
        assert_eq!(utc_timestamp(1_796_186_656_123), "2026-12-02T04:44:16.123Z");
    }
}
