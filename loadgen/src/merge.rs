//! `loadgen merge A.json B.json ...`: several loadgen processes, one run. Each process's
//! `--json` carries what merging needs (`merge` in the JSON): histograms in HdrHistogram's V2
//! form, so that they merge exactly; messages sent per sender; every receiver's counts per
//! sender; per message the arrivals and the last arrival, as offsets from the schedule's start
//! (the processes shared it with `--start-at`); per URL its histograms; per interval its
//! latency histogram. The merged report is settled by the same code as a single process's, so
//! it says what one process of the same total size would have said, per URL and per interval
//! too.

use std::collections::BTreeMap;
use std::path::Path;

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use hdrhistogram::serialization::Deserializer;
use hdrhistogram::Histogram;
use serde_json::Value;

use crate::accounting::ReceiverCounts;
use crate::cli::{FailOn, MergeArgs};
use crate::measurements::{
    IntervalMeasurements, Measurements, ReceiverIdentity, ReceiverRecord, TargetMeasurements,
    Window,
};
use crate::plan::RunKind;
use crate::report::{Report, Resources, RunDescription, Timeline};
use crate::schedule::{Schedule, Shape};
use crate::{limits, packed, verdict};

/// Runs `loadgen merge`; returns the exit status.
pub(crate) fn run(args: MergeArgs, command_line: Vec<String>) -> Result<u8, (u8, String)> {
    let usage = |message: String| (verdict::EXIT_USAGE, message);
    for (option, path) in [
        ("--json", &args.json),
        ("--hgrm", &args.hgrm),
        ("--csv", &args.csv),
    ] {
        if let Some(path) = path {
            limits::check_output(option, path).map_err(usage)?;
        }
    }
    let reports: Vec<Value> = args
        .reports
        .iter()
        .map(|path| read(path))
        .collect::<Result<_, _>>()
        .map_err(usage)?;
    let report = merge(&reports, &args, command_line).map_err(usage)?;
    if args.csv.is_some() && report.run.interval_s.is_none() {
        return Err(usage(
            "--csv: the reports have no intervals to merge (run each process with the same --interval)".into(),
        ));
    }
    print!("{}", report.table());
    let failed = |message: String| (verdict::EXIT_RUN_FAILED, message);
    if let Some(path) = &args.json {
        std::fs::write(path, report.json_text())
            .map_err(|error| failed(format!("cannot write {}: {error}", path.display())))?;
    }
    if let Some(path) = &args.hgrm {
        std::fs::write(path, report.hgrm())
            .map_err(|error| failed(format!("cannot write {}: {error}", path.display())))?;
    }
    if let Some(path) = &args.csv {
        std::fs::write(path, report.csv())
            .map_err(|error| failed(format!("cannot write {}: {error}", path.display())))?;
    }
    Ok(report.exit_code())
}

fn read(path: &Path) -> Result<Value, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|error| format!("cannot read {}: {error}", path.display()))?;
    let json: Value = serde_json::from_str(&text)
        .map_err(|error| format!("{}: not JSON: {error}", path.display()))?;
    if json["merge"].is_null() {
        return Err(format!(
            "{}: no `merge` section (a fanout or echo report of loadgen schema 3 or later, run with --total-senders as one process of several)",
            path.display()
        ));
    }
    Ok(json)
}

/// Merges reports of one run into one report.
fn merge(reports: &[Value], args: &MergeArgs, command_line: Vec<String>) -> Result<Report, String> {
    let first = &reports[0];
    let run_id = first["merge"]["run_id"].clone();
    let shape_json = first["merge"]["shape"].clone();
    for (index, report) in reports.iter().enumerate() {
        let merge = &report["merge"];
        if merge["run_id"] != run_id {
            return Err(format!(
                "report {} has run id {} and report 1 has {}: they are not one run (give every process the same --run-id)",
                index + 1,
                merge["run_id"],
                run_id
            ));
        }
        if merge["shape"] != shape_json
            || merge["total_senders"] != first["merge"]["total_senders"]
            || merge["start_at_unix_ms"] != first["merge"]["start_at_unix_ms"]
            || report["run"]["kind"] != first["run"]["kind"]
        {
            return Err(format!(
                "report {} has another schedule than report 1 (same --rate or --stages, --duration, --warmup, --total-senders, --start-at and subcommand for every process)",
                index + 1
            ));
        }
    }
    let kind = match first["run"]["kind"].as_str() {
        Some("fanout") => RunKind::Fanout,
        Some("echo") => RunKind::Echo,
        other => return Err(format!("cannot merge {other:?} reports")),
    };
    let points: Vec<(f64, f64)> = shape_json["points"]
        .as_array()
        .ok_or("no schedule in the report")?
        .iter()
        .map(|point| {
            (
                point[0].as_f64().unwrap_or(0.0),
                point[1].as_f64().unwrap_or(0.0),
            )
        })
        .collect();
    let shape = Shape::from_points(shape_json["first_rate"].as_f64().unwrap_or(0.0), &points);
    let warmup_s = shape_json["warmup_s"].as_f64().unwrap_or(0.0);
    let total_senders = number(&first["merge"]["total_senders"]) as u32;
    // Every process's schedule starts at offset 0 of the merged timeline.
    let schedule = Schedule::new(0, shape, total_senders, warmup_s);

    // Per URL: every URL of every report, in the order first seen; figures matched by URL.
    let mut urls: Vec<String> = Vec::new();
    for report in reports {
        for entry in report["merge"]["per_url"].as_array().into_iter().flatten() {
            let url = entry["url"].as_str().unwrap_or("").to_owned();
            if !urls.contains(&url) {
                urls.push(url);
            }
        }
    }
    // Intervals: the processes share the schedule's start (`--start-at`), so interval `i` is
    // the same stretch of wall-clock time in each; merged when all have the same length.
    let interval_lengths: Vec<Option<f64>> = reports
        .iter()
        .map(|report| report["merge"]["intervals"]["interval_s"].as_f64())
        .collect();
    let interval_s = match interval_lengths[0] {
        Some(length) if interval_lengths.iter().all(|other| *other == Some(length)) => Some(length),
        None if interval_lengths.iter().all(Option::is_none) => None,
        _ => {
            eprintln!("loadgen merge: the reports have different --interval lengths (or some none): intervals not merged");
            None
        }
    };
    let interval_ns = interval_s.map_or(0, |seconds| (seconds * 1e9).round() as u64);
    let mut open_by_interval: Vec<u64> = Vec::new();

    let mut measurements = Vec::new();
    let mut sender_ranges = Vec::new();
    let mut clients = 0;
    let mut threads = 0;
    let mut resources = Resources::default();
    let mut stopped_ns = 0;
    let mut interrupted = false;
    let mut halted_ns: Option<u64> = None;
    for report in reports {
        let merge = &report["merge"];
        for range in merge["sender_ranges"].as_array().into_iter().flatten() {
            sender_ranges.push((number(&range[0]) as u32, number(&range[1]) as u32));
        }
        clients += number(&report["run"]["clients"]);
        threads += number(&report["run"]["threads"]) as usize;
        resources.wall_s = resources.wall_s.max(float(&report["resources"]["wall_s"]));
        resources.loadgen_cpu_s += float(&report["resources"]["loadgen_cpu_s"]);
        stopped_ns = stopped_ns.max(number(&merge["stopped_offset_ns"]));
        interrupted |= report["interrupted"].as_bool().unwrap_or(false);
        if let Some(halt) = merge["halted_offset_ns"].as_u64() {
            halted_ns = Some(halted_ns.map_or(halt, |earlier: u64| earlier.min(halt)));
        }
        if interval_ns > 0 {
            let open = packed::unpack(
                merge["intervals"]["open_connections_packed"]
                    .as_str()
                    .unwrap_or(""),
            )
            .map_err(|error| format!("intervals.open_connections_packed: {error}"))?;
            // An interval counts only where every process sampled it.
            let first_report = measurements.is_empty();
            if first_report {
                open_by_interval = open;
            } else {
                open_by_interval.truncate(open.len());
                for (sum, count) in open_by_interval.iter_mut().zip(open) {
                    *sum += count;
                }
            }
        }
        measurements.push(measurements_of(report, &urls, interval_ns)?);
    }
    sender_ranges.sort_unstable();
    let description = RunDescription {
        kind,
        urls,
        clients: clients as u32,
        senders: sender_ranges.iter().map(|(first, end)| end - first).sum(),
        sender_ranges,
        total_senders,
        run_id: u32::from_str_radix(run_id.as_str().unwrap_or("0"), 16).unwrap_or(0),
        start_at_unix_ms: first["merge"]["start_at_unix_ms"].as_u64(),
        merged_reports: reports.len(),
        shape: Some(shape),
        rate: float(&first["run"]["rate_per_s"]),
        payload: number(&first["run"]["payload_bytes"]) as usize,
        message_template: first["run"]["message_template"].as_str().map(str::to_owned),
        binary: first["run"]["binary"].as_bool().unwrap_or(false),
        compress: first["run"]["compress"].as_bool().unwrap_or(false),
        // Reports before schema 4 timed arrivals by the read.
        arrival: first["run"]["arrival"]
            .as_str()
            .unwrap_or("read")
            .to_owned(),
        duration_s: float(&first["run"]["duration_s"]),
        warmup_s,
        stages: first["run"]["stages"].as_str().map(str::to_owned),
        connection_stages: first["run"]["connection_stages"]
            .as_str()
            .map(str::to_owned),
        interval_s,
        csv: args.csv.clone(),
        after_s: float(&first["run"]["drain_s"]),
        threads,
        rooms: number(&first["run"]["rooms"]).max(1) as u32,
        expect_self: match first["deliveries"]["self_echo_source"].as_str() {
            Some("stated") => first["deliveries"]["self_echo"].as_bool(),
            _ => None,
        },
        command_line,
        started_unix_ms: reports
            .iter()
            .filter_map(|report| report["loadgen"]["started_at_unix_ms"].as_u64())
            .min()
            .unwrap_or(0),
        multi_process: true,
        thresholds: args.thresholds.clone(),
        fail_on_invalid: args.fail_on == Some(FailOn::Invalid),
    };
    let timeline = Timeline {
        open_by_interval,
        schedule: Some(schedule),
        halted_ns,
        stopped_ns,
        interrupted,
    };
    Ok(Report::merge(
        description,
        timeline,
        measurements,
        resources,
    ))
}

/// A histogram from its HdrHistogram V2 serialized form in base64.
fn histogram_of(value: &Value, what: &str) -> Result<Histogram<u64>, String> {
    let bytes = BASE64
        .decode(value.as_str().unwrap_or(""))
        .map_err(|error| format!("histogram {what}: {error}"))?;
    Deserializer::new()
        .deserialize(&mut &bytes[..])
        .map_err(|error| format!("histogram {what}: {error:?}"))
}

/// One process's report as the measurements a worker would have handed over, its per-URL
/// figures placed at the merged report's `urls` and its intervals (when `interval_ns` is not
/// 0) as measured.
fn measurements_of(
    report: &Value,
    urls: &[String],
    interval_ns: u64,
) -> Result<Measurements, String> {
    let merge = &report["merge"];
    let histogram = |name: &str| histogram_of(&merge["histograms"][name], name);
    let packed = |name: &str| -> Result<Vec<u64>, String> {
        packed::unpack(merge[name].as_str().unwrap_or(""))
            .map_err(|error| format!("{name}: {error}"))
    };
    let mut receivers = receivers_of(&packed("receivers_packed")?)
        .ok_or("receivers_packed: the rows are cut off")?;
    // This report's URL number `i` is the merged report's `url_index[i]`.
    let mut url_index = Vec::new();
    let mut per_target: Vec<TargetMeasurements> = if urls.len() > 1 {
        urls.iter().map(|_| TargetMeasurements::default()).collect()
    } else {
        Vec::new()
    };
    for entry in merge["per_url"].as_array().into_iter().flatten() {
        let url = entry["url"].as_str().unwrap_or("");
        let index = urls.iter().position(|known| known == url).unwrap_or(0);
        url_index.push(index);
        if let Some(target) = per_target.get_mut(index) {
            let _ = target
                .delivery
                .add(histogram_of(&entry["delivery"], "per_url.delivery")?);
            let _ = target
                .handshake
                .add(histogram_of(&entry["handshake"], "per_url.handshake")?);
            target.failed += number(&entry["failed"]);
            target.disconnected += number(&entry["disconnected"]);
        }
    }
    for record in &mut receivers {
        record.identity.target = url_index.get(record.identity.target).copied().unwrap_or(0);
    }
    let mut intervals = Vec::new();
    if interval_ns > 0 {
        let delivered = packed::unpack(
            merge["intervals"]["delivered_packed"]
                .as_str()
                .unwrap_or(""),
        )
        .map_err(|error| format!("intervals.delivered_packed: {error}"))?;
        let latency = merge["intervals"]["latency"].as_array();
        for (index, delivered) in delivered.into_iter().enumerate() {
            let latency = latency
                .and_then(|all| all.get(index))
                .unwrap_or(&Value::Null);
            intervals.push(IntervalMeasurements {
                delivered,
                latency: histogram_of(latency, "intervals.latency")?,
            });
        }
    }
    if receivers.len() as u64 != number(&merge["receivers"]) {
        return Err("receivers_packed: not as many receivers as the report says".into());
    }
    let sent_by_sender = packed("sent_by_sender_packed")?
        .chunks_exact(2)
        .map(|pair| (pair[0] as u32, pair[1]))
        .collect();
    let counts = |value: &Value| -> BTreeMap<String, u64> {
        value
            .as_object()
            .into_iter()
            .flatten()
            .map(|(key, count)| (key.clone(), number(count)))
            .collect()
    };
    Ok(Measurements {
        delivery: histogram("delivery")?,
        delivery_warmup: histogram("delivery_warmup")?,
        handshake: histogram("handshake")?,
        tls_handshake: histogram("tls_handshake")?,
        upgrade: histogram("upgrade")?,
        send_lag: histogram("send_lag")?,
        arrivals: packed("arrivals_packed")?
            .into_iter()
            .map(|count| count.min(u64::from(u32::MAX)) as u32)
            .collect(),
        last_arrival_ns: packed("last_arrival_offset_ns_packed")?,
        sent_by_sender,
        last_delivery_ns: number(&merge["last_delivery_offset_ns"]),
        non_probe: number(&merge["non_probe_messages"]),
        multi_probe: number(&merge["multi_probe_messages"]),
        foreign: number(&merge["foreign_probes"]),
        self_deliveries: number(&merge["self_deliveries"]),
        failures: counts(&report["connections"]["failures"]),
        close_codes: counts(&report["connections"]["close_codes"])
            .into_iter()
            .filter_map(|(code, count)| Some((code.parse().ok()?, count)))
            .collect(),
        protocol_errors: counts(&report["server_protocol_errors"]),
        disconnects: counts(&report["connections"]["lost_while_open"]),
        open_at_end: number(&merge["open_at_end"]),
        outside_membership: number(&merge["outside_membership"]),
        left: number(&merge["left_as_planned"]),
        compressed_connections: number(&report["bytes"]["compressed_connections"]),
        wire_bytes_received: number(&report["bytes"]["received_wire"]),
        payload_bytes_received: number(&report["bytes"]["received_payload"]),
        wire_bytes_sent: number(&report["bytes"]["sent_wire"]),
        payload_bytes_sent: number(&report["bytes"]["sent_payload"]),
        receivers,
        per_target,
        interval_ns,
        intervals,
        ..Measurements::default()
    })
}

/// Receivers from their packed rows: client, room, URL number, whether it is owed anything (0/1), the
/// window of intended times owed (from, until), own sender + 1 (0: none), duplicated, out of
/// order, the number of sender slots, first copies per slot. `None` when the rows are cut off.
fn receivers_of(values: &[u64]) -> Option<Vec<ReceiverRecord>> {
    let mut receivers = Vec::new();
    let mut rest = values;
    while !rest.is_empty() {
        let (head, tail) = rest.split_at_checked(10)?;
        let (measured, tail) = tail.split_at_checked(usize::try_from(head[9]).ok()?)?;
        receivers.push(ReceiverRecord {
            client: head[0] as u32,
            identity: ReceiverIdentity {
                room: head[1] as u32,
                target: head[2] as usize,
                window: (head[3] != 0).then_some(Window {
                    from_ns: head[4],
                    until_ns: head[5].max(head[4]),
                }),
                own_sender: head[6].checked_sub(1).map(|sender| sender as u32),
            },
            counts: ReceiverCounts {
                duplicated: head[7],
                out_of_order: head[8],
                measured: measured.to_vec(),
            },
        });
        rest = tail;
    }
    Some(receivers)
}

fn number(value: &Value) -> u64 {
    value.as_u64().unwrap_or(0)
}

fn float(value: &Value) -> f64 {
    value.as_f64().unwrap_or(0.0)
}
