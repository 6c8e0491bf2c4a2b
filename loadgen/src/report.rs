//! Merging the workers' measurements into one report: settling every receiver's accounting,
//! completion latency, messages not sent, honest rates, undelivered messages as latency lower
//! bounds, and the verdict. How it is written out is in `table.rs` and `json_output.rs`.

use std::collections::BTreeMap;

use hdrhistogram::Histogram;

use crate::accounting::{Owed, Tally};
use crate::measurements::{new_histogram, Measurements, ReceiverRecord, Window, MAX_INTERVALS};
use crate::plan::RunKind;
use crate::schedule::Schedule;
use crate::threshold::{self, Distribution, Figures, Statistic, Threshold};
use crate::verdict::{self, Facts};

/// Receivers with an anomaly listed one by one in the JSON; the sums count them all.
const MAX_LISTED_RECEIVERS: usize = 100;

/// What the run was asked to do, for the report's header.
#[derive(Debug, Clone)]
pub(crate) struct RunDescription {
    /// fanout, echo or connect.
    pub kind: RunKind,
    /// The URLs as given.
    pub urls: Vec<String>,
    /// Clients asked for.
    pub clients: u32,
    /// Senders of this process (of all merged processes in a merged report).
    pub senders: u32,
    /// The run's senders this report covers, as ranges `[first, end)`: one for a process,
    /// one per process for a merged report.
    pub sender_ranges: Vec<(u32, u32)>,
    /// Senders of the whole run (all processes).
    pub total_senders: u32,
    /// The run id the probes carry.
    pub run_id: u32,
    /// `--start-at`, when given.
    pub start_at_unix_ms: Option<u64>,
    /// Reports merged into this one (0: a single process's own report).
    pub merged_reports: usize,
    /// The schedule's shape, for `loadgen merge`.
    pub shape: Option<crate::schedule::Shape>,
    /// Messages per second, all senders together (with --stages: the peak).
    pub rate: f64,
    /// Payload bytes.
    pub payload: usize,
    /// The message template, if one was given.
    pub message_template: Option<String>,
    /// Binary frames.
    pub binary: bool,
    /// permessage-deflate offered.
    pub compress: bool,
    /// What a message's arrival time is: `kernel` (receive timestamps) or `read`.
    pub arrival: String,
    /// Seconds measured.
    pub duration_s: f64,
    /// Seconds of warmup.
    pub warmup_s: f64,
    /// `--stages`, as given.
    pub stages: Option<String>,
    /// `--connection-stages`, as given.
    pub connection_stages: Option<String>,
    /// `--interval` in seconds, when a time series was asked for.
    pub interval_s: Option<f64>,
    /// `--csv` file.
    pub csv: Option<std::path::PathBuf>,
    /// Seconds of drain (fanout, echo) or hold (connect).
    pub after_s: f64,
    /// Worker threads.
    pub threads: usize,
    /// Rooms.
    pub rooms: u32,
    /// Whether senders receive their own messages: `Some` when stated on the command line.
    pub expect_self: Option<bool>,
    /// Declared one process of several (`--total-senders`): the JSON carries the `merge`
    /// section.
    pub multi_process: bool,
    /// The command line, as given.
    pub command_line: Vec<String>,
    /// When the run started, milliseconds since the Unix epoch.
    pub started_unix_ms: u64,
    /// Pass/fail criteria.
    pub thresholds: Vec<Threshold>,
    /// Whether an invalid run fails the exit status.
    pub fail_on_invalid: bool,
}

/// CPU and memory seen during the measured window.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Resources {
    /// Seconds of wall time the samples span.
    pub wall_s: f64,
    /// CPU seconds this process used.
    pub loadgen_cpu_s: f64,
    /// CPU seconds the server used, when its pid was given.
    pub server_cpu_s: Option<f64>,
    /// The server's largest RSS seen, bytes.
    pub server_rss_max: Option<u64>,
    /// The server's process was given and is gone at the end.
    pub server_exited: bool,
}

/// When the run's phases ended, on the run's clock.
#[derive(Debug, Clone, Default)]
pub(crate) struct Timeline {
    /// Connections open at the end of each interval of the time series (sampled by the main
    /// thread).
    pub open_by_interval: Vec<u64>,
    /// The send schedule, when the run sent anything.
    pub schedule: Option<Schedule>,
    /// No message intended at or after this time was sent (an interrupt); `None`: the whole
    /// schedule was due.
    pub halted_ns: Option<u64>,
    /// When the workers were stopped: deliveries still missing then are undelivered.
    pub stopped_ns: u64,
    /// SIGINT or SIGTERM stopped the run.
    pub interrupted: bool,
}

/// The figures of one URL, when a run has several.
#[derive(Debug)]
pub(crate) struct UrlFigures {
    /// The URL.
    pub url: String,
    /// Its clients whose handshake completed.
    pub connected: u64,
    /// Its clients that never opened.
    pub failed: u64,
    /// Its clients lost while open.
    pub disconnected: u64,
    /// Accounting of its receivers.
    pub tally: Tally,
    /// Delivery latency at its receivers (µs).
    pub delivery: Histogram<u64>,
    /// Handshake latency of its clients (µs).
    pub handshake: Histogram<u64>,
}

/// Bytes that crossed the connections, as frames and as message payloads.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Bytes {
    /// Connections that agreed to permessage-deflate.
    pub compressed_connections: u64,
    /// Frame bytes read (after TLS decryption).
    pub wire_received: u64,
    /// Data message bytes received, after inflation.
    pub payload_received: u64,
    /// Frame bytes written (before TLS encryption).
    pub wire_sent: u64,
    /// Probe message bytes sent, before compression.
    pub payload_sent: u64,
}

/// One row of the time series.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct IntervalRow {
    /// Start and end of the interval, seconds from the schedule's start.
    pub start_s: f64,
    /// End of the interval.
    pub end_s: f64,
    /// Messages the schedule asked for with an intended time in the interval.
    pub scheduled: u64,
    /// Of those, sent.
    pub sent: u64,
    /// First copies that arrived in the interval.
    pub delivered: u64,
    /// Deliveries of messages intended in the interval that never came (known at the end).
    pub lost: u64,
    /// Latency of the interval's deliveries (µs); `None` when there were none.
    pub p50_us: Option<u64>,
    /// p99 of the interval.
    pub p99_us: Option<u64>,
    /// Max of the interval.
    pub max_us: Option<u64>,
    /// Connections open at the interval's end, when sampled.
    pub open_connections: Option<u64>,
}

/// What a report keeps beyond its figures so that `loadgen merge` can combine it with the
/// reports of other processes of the same run exactly.
#[derive(Debug, Default)]
pub(crate) struct MergeData {
    /// Messages sent per sender (the run's sender numbers).
    pub sent_by_sender: BTreeMap<u32, u64>,
    /// Every receiver's counts.
    pub receivers: Vec<ReceiverRecord>,
    /// Per message number: first copies at receivers owed it.
    pub arrivals: Vec<u64>,
    /// Per message number: the latest such arrival (ns on the run's clock).
    pub last_arrival_ns: Vec<u64>,
    /// The latest measured first copy (ns on the run's clock).
    pub last_delivery_ns: u64,
    /// Deliveries of senders' own probes to themselves.
    pub self_deliveries: u64,
    /// Latency of each interval's deliveries (µs, 2 significant figures).
    pub interval_latency: Vec<Histogram<u64>>,
}

/// Every figure of a run.
#[derive(Debug)]
pub(crate) struct Report {
    /// What was asked.
    pub run: RunDescription,
    /// How the run went in time.
    pub timeline: Timeline,
    /// Clients whose handshake completed.
    pub connected: u64,
    /// Failed connections by reason.
    pub failures: BTreeMap<String, u64>,
    /// Handshake latency: connect start to 101, TLS included (µs).
    pub handshake: Histogram<u64>,
    /// TLS handshake alone, `wss://` (µs).
    pub tls_handshake: Histogram<u64>,
    /// WebSocket upgrade alone: request sent to 101 (µs).
    pub upgrade: Histogram<u64>,
    /// Messages the schedule asked for in the measured window (until an interrupt).
    pub scheduled: u64,
    /// Probes sent in the measured window.
    pub sent: u64,
    /// Probes sent in the warmup.
    pub sent_warmup: u64,
    /// Scheduled messages no sender sent (its client was not open, or was lost).
    pub not_sent: u64,
    /// Senders that did not send all they were scheduled to.
    pub senders_lost: u64,
    /// The accounting, summed over receivers.
    pub tally: Tally,
    /// Messages that were not probes.
    pub non_probe: u64,
    /// Messages that carried more than one probe.
    pub multi_probe: u64,
    /// Probes of another run or client.
    pub foreign: u64,
    /// First copies of messages from senders of other processes of the run (settled by
    /// `loadgen merge`).
    pub other_process_deliveries: u64,
    /// First copies of messages intended while their receiver was joining or leaving (outside
    /// its membership window): neither owed nor unexpected.
    pub outside_membership: u64,
    /// Receivers that left as planned (`--connection-stages`), closing with 1000.
    pub left_as_planned: u64,
    /// Receivers settled.
    pub receivers: u64,
    /// Receivers that lost at least one delivery.
    pub receivers_with_loss: u64,
    /// The first receivers with an anomaly, and their tallies.
    pub anomalies: Vec<(u32, Tally)>,
    /// Whether senders get their own messages.
    pub self_echo: bool,
    /// How `self_echo` was decided.
    pub self_echo_source: &'static str,
    /// Delivery latency, measured window (µs).
    pub delivery: Histogram<u64>,
    /// Delivery latency with every undelivered delivery at its lower bound: the time it had
    /// waited when the run stopped (µs).
    pub delivery_with_undelivered: Histogram<u64>,
    /// Deliveries owed and missing at the end (what `delivery_with_undelivered` adds).
    pub undelivered: u64,
    /// Delivery latency, warmup (µs).
    pub delivery_warmup: Histogram<u64>,
    /// Completion latency: last receiver of each message (µs).
    pub completion: Histogram<u64>,
    /// Messages that did not reach every receiver.
    pub incomplete: u64,
    /// Lateness of sends against the schedule (µs).
    pub send_lag: Histogram<u64>,
    /// Seconds from the first measured intended send to the last delivery (or the end of the
    /// schedule, whichever is later): what deliveries/s divides by.
    pub delivery_elapsed_s: f64,
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
    /// Why the figures cannot be trusted; empty when the run is valid.
    pub invalid_reasons: Vec<String>,
    /// Each threshold and whether it held.
    pub thresholds: Vec<threshold::Outcome>,
    /// Per URL, when there are several (empty otherwise).
    pub per_url: Vec<UrlFigures>,
    /// Bytes on the wire and in payloads.
    pub bytes: Bytes,
    /// The time series, when `--interval` or `--csv` asked for it.
    pub intervals: Vec<IntervalRow>,
    /// What `loadgen merge` needs.
    pub merge_data: MergeData,
}

impl Report {
    /// Merges the workers' results and settles every receiver's accounting.
    pub(crate) fn merge(
        run: RunDescription,
        timeline: Timeline,
        results: Vec<Measurements>,
        resources: Resources,
    ) -> Report {
        let mut handshake = new_histogram();
        let mut tls_handshake = new_histogram();
        let mut upgrade = new_histogram();
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
        let (mut outside_membership, mut left_as_planned) = (0, 0);
        let mut last_delivery_ns = 0;
        let mut receivers = Vec::new();
        let mut per_url: Vec<UrlFigures> = if run.urls.len() > 1 {
            run.urls
                .iter()
                .map(|url| UrlFigures {
                    url: url.clone(),
                    connected: 0,
                    failed: 0,
                    disconnected: 0,
                    tally: Tally::default(),
                    delivery: new_histogram(),
                    handshake: new_histogram(),
                })
                .collect()
        } else {
            Vec::new()
        };
        let mut bytes = Bytes::default();
        let interval_ns = (run.interval_s.unwrap_or(0.0) * 1e9) as u64;
        let mut interval_latency: Vec<Histogram<u64>> = Vec::new();
        let mut rows: Vec<IntervalRow> = Vec::new();
        if let (Some(schedule), true) = (timeline.schedule, interval_ns > 0) {
            let span = timeline.stopped_ns.saturating_sub(schedule.start_ns);
            let count = (span.div_ceil(interval_ns) as usize).clamp(1, MAX_INTERVALS);
            rows = (0..count)
                .map(|index| IntervalRow {
                    start_s: (index as u64 * interval_ns) as f64 / 1e9,
                    end_s: ((index as u64 + 1) * interval_ns) as f64 / 1e9,
                    open_connections: timeline.open_by_interval.get(index).copied(),
                    ..IntervalRow::default()
                })
                .collect();
            interval_latency = (0..count)
                .map(|_| Histogram::new(2).expect("2 significant figures are valid"))
                .collect();
        }
        let interval_of = |intended_ns: u64| -> Option<usize> {
            let schedule = timeline.schedule?;
            (interval_ns > 0).then(|| {
                ((intended_ns.saturating_sub(schedule.start_ns) / interval_ns) as usize)
                    .min(MAX_INTERVALS - 1)
            })
        };
        for result in results {
            for (index, measured) in result.intervals.iter().enumerate() {
                if let (Some(row), Some(latency)) =
                    (rows.get_mut(index), interval_latency.get_mut(index))
                {
                    row.delivered += measured.delivered;
                    let _ = latency.add(&measured.latency);
                }
            }
            bytes.compressed_connections += result.compressed_connections;
            bytes.wire_received += result.wire_bytes_received;
            bytes.payload_received += result.payload_bytes_received;
            bytes.wire_sent += result.wire_bytes_sent;
            bytes.payload_sent += result.payload_bytes_sent;
            for (figures, measured) in per_url.iter_mut().zip(&result.per_target) {
                let _ = figures.delivery.add(&measured.delivery);
                let _ = figures.handshake.add(&measured.handshake);
                figures.connected += measured.handshake.len();
                figures.failed += measured.failed;
                figures.disconnected += measured.disconnected;
            }
            let _ = handshake.add(&result.handshake);
            let _ = tls_handshake.add(&result.tls_handshake);
            let _ = upgrade.add(&result.upgrade);
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
            outside_membership += result.outside_membership;
            left_as_planned += result.left;
            open_at_end += result.open_at_end;
            connected += result.handshake.len();
            last_delivery_ns = last_delivery_ns.max(result.last_delivery_ns);
            receivers.extend(result.receivers);
        }
        let (self_echo, self_echo_source) = match (run.kind, run.expect_self) {
            (RunKind::Echo, _) => (true, "echo run"),
            (_, Some(stated)) => (stated, "stated"),
            (_, None) => (self_deliveries > 0, "detected"),
        };
        let rooms = run.rooms.max(1);

        // What each sender was scheduled to send and sent in the measured window.
        let mut sent_measured: BTreeMap<u32, u64> = BTreeMap::new();
        let (mut scheduled, mut sent, mut sent_warmup, mut not_sent, mut senders_lost) =
            (0, 0, 0, 0, 0);
        if let Some(schedule) = timeline.schedule {
            let own_senders = run
                .sender_ranges
                .iter()
                .flat_map(|&(first, end)| first..end.min(schedule.senders));
            for sender in own_senders {
                let sent_by_it = sent_by_sender.get(&sender).copied().unwrap_or(0);
                let (mut due, mut sent_here) = (0, 0);
                for k in 0.. {
                    let n = schedule.message_number(sender, k);
                    if n >= schedule.total_messages
                        || timeline
                            .halted_ns
                            .is_some_and(|halt| schedule.intended_ns(n) >= halt)
                    {
                        break;
                    }
                    if let Some(row) =
                        interval_of(schedule.intended_ns(n)).and_then(|index| rows.get_mut(index))
                    {
                        row.scheduled += 1;
                        row.sent += u64::from(k < sent_by_it);
                    }
                    if schedule.is_warmup(n) {
                        if k < sent_by_it {
                            sent_warmup += 1;
                        }
                        continue;
                    }
                    due += 1;
                    if k < sent_by_it {
                        sent_here += 1;
                    }
                }
                scheduled += due;
                sent += sent_here;
                not_sent += due - sent_here;
                if sent_here < due {
                    senders_lost += 1;
                }
                if sent_here > 0 {
                    sent_measured.insert(sender, sent_here);
                }
            }
        }
        let owes = |record: &ReceiverRecord, sender: u32| -> bool {
            record.identity.window.is_some()
                && match run.kind {
                    RunKind::Echo => record.identity.own_sender == Some(sender),
                    _ => {
                        sender % rooms == record.identity.room
                            && (self_echo || record.identity.own_sender != Some(sender))
                    }
                }
        };
        let mut tally = Tally::default();
        let mut anomalies = Vec::new();
        let mut receivers_with_loss = 0u64;
        // The messages of `sender` that a receiver with `window` is owed: those sent in the
        // measured window (a prefix of its messages is the warmup) and intended in `window`.
        let owed_messages = |sender: u32, measured: u64, window: Window| -> u64 {
            let Some(schedule) = timeline.schedule else {
                return 0;
            };
            if window == Window::WHOLE_RUN {
                return measured;
            }
            let sent = sent_by_sender.get(&sender).copied().unwrap_or(0);
            let from = schedule
                .first_at_or_after(sender, sent, window.from_ns)
                .max(sent - measured);
            let until = schedule.first_at_or_after(sender, sent, window.until_ns);
            until.saturating_sub(from)
        };
        let mut other_process_deliveries = 0u64;
        for record in &receivers {
            let owed: Vec<Owed> = sent_measured
                .iter()
                .filter(|(&sender, _)| owes(record, sender))
                .map(|(&sender, &measured)| Owed {
                    sender: if run.kind == RunKind::Echo { 0 } else { sender },
                    messages: record
                        .identity
                        .window
                        .map_or(0, |window| owed_messages(sender, measured, window)),
                })
                .collect();
            // First copies from senders of other processes of the run are theirs to settle
            // (`loadgen merge`): neither owed nor unexpected here.
            let is_other_process = |slot: usize| {
                run.kind != RunKind::Echo
                    && (slot as u32) < run.total_senders
                    && !run
                        .sender_ranges
                        .iter()
                        .any(|&(first, end)| (first..end).contains(&(slot as u32)))
            };
            let own = if record
                .counts
                .measured
                .iter()
                .enumerate()
                .any(|(slot, &count)| count > 0 && is_other_process(slot))
            {
                let mut counts = record.counts.clone();
                for (slot, count) in counts.measured.iter_mut().enumerate() {
                    if is_other_process(slot) {
                        other_process_deliveries += *count;
                        *count = 0;
                    }
                }
                counts.settle(&owed)
            } else {
                record.counts.settle(&owed)
            };
            tally.add(&own);
            if let Some(figures) = per_url.get_mut(record.identity.target) {
                figures.tally.add(&own);
            }
            if own.lost > 0 {
                receivers_with_loss += 1;
            }
            if own.has_anomaly() && anomalies.len() < MAX_LISTED_RECEIVERS {
                anomalies.push((record.client, own));
            }
        }

        // Completion per message, and each missing delivery at its lower bound.
        let mut completion = new_histogram();
        let mut delivery_with_undelivered = delivery.clone();
        let (mut incomplete, mut undelivered) = (0, 0);
        let mut delivery_elapsed_s = 0.0;
        if let Some(schedule) = timeline.schedule {
            for (&sender, &count) in &sent_by_sender {
                // How many receivers each message is owed to: those whose window holds its
                // intended time, found by sweeping the windows' edges in time order.
                let (mut froms, mut untils): (Vec<u64>, Vec<u64>) = receivers
                    .iter()
                    .filter(|record| owes(record, sender))
                    .filter_map(|record| record.identity.window)
                    .map(|window| (window.from_ns, window.until_ns))
                    .unzip();
                froms.sort_unstable();
                untils.sort_unstable();
                let (mut joined, mut gone) = (0, 0);
                for k in 0..count {
                    let n = schedule.message_number(sender, k);
                    let intended = schedule.intended_ns(n);
                    let offset = intended - schedule.start_ns;
                    joined += froms[joined..].partition_point(|&from| from <= offset);
                    gone += untils[gone..].partition_point(|&until| until <= offset);
                    let owed_to = (joined - gone) as u64;
                    if schedule.is_warmup(n) || owed_to == 0 {
                        continue;
                    }
                    let got = arrivals.get(n as usize).copied().unwrap_or(0);
                    if got >= owed_to {
                        let latency = last_arrival[n as usize].saturating_sub(intended) / 1000;
                        completion.saturating_record(latency.max(1));
                    } else {
                        incomplete += 1;
                        let missing = owed_to - got;
                        let waited_us = timeline.stopped_ns.saturating_sub(intended) / 1000;
                        let _ = delivery_with_undelivered.record_n(
                            waited_us.clamp(1, delivery_with_undelivered.high()),
                            missing,
                        );
                        undelivered += missing;
                        if let Some(row) = interval_of(intended).and_then(|i| rows.get_mut(i)) {
                            row.lost += missing;
                        }
                    }
                }
            }
            let schedule_end = timeline
                .halted_ns
                .map_or(schedule.end_ns(), |halt| halt.min(schedule.end_ns()));
            let end = last_delivery_ns.max(schedule_end);
            delivery_elapsed_s = end.saturating_sub(schedule.measure_from_ns) as f64 / 1e9;
        }

        let mut report = Report {
            run,
            timeline,
            connected,
            failures,
            handshake,
            tls_handshake,
            upgrade,
            scheduled,
            sent,
            sent_warmup,
            not_sent,
            senders_lost,
            tally,
            non_probe,
            multi_probe,
            foreign,
            other_process_deliveries,
            outside_membership,
            left_as_planned,
            receivers: receivers.len() as u64,
            receivers_with_loss,
            anomalies,
            self_echo,
            self_echo_source,
            delivery,
            delivery_with_undelivered,
            undelivered,
            delivery_warmup,
            completion,
            incomplete,
            send_lag,
            delivery_elapsed_s,
            close_codes,
            protocol_errors,
            disconnects,
            open_at_end,
            resources,
            invalid_reasons: Vec::new(),
            thresholds: Vec::new(),
            per_url,
            bytes,
            intervals: rows,
            merge_data: MergeData {
                sent_by_sender,
                receivers,
                arrivals,
                last_arrival_ns: last_arrival,
                last_delivery_ns,
                self_deliveries,
                interval_latency,
            },
        };
        for (row, latency) in report
            .intervals
            .iter_mut()
            .zip(&report.merge_data.interval_latency)
        {
            if !latency.is_empty() {
                row.p50_us = Some(latency.value_at_quantile(0.5));
                row.p99_us = Some(latency.value_at_quantile(0.99));
                row.max_us = Some(latency.max());
            }
        }
        report.invalid_reasons = verdict::reasons(&report.facts());
        report.thresholds = report
            .run
            .thresholds
            .iter()
            .map(|threshold| threshold.check(&report))
            .collect();
        report
    }

    /// What the verdict is decided from.
    fn facts(&self) -> Facts {
        let disconnected: u64 = self.disconnects.values().sum();
        let sends = self.run.kind.sends();
        Facts {
            clients: u64::from(self.run.clients),
            failed: self.failures.values().sum(),
            senders_lost: self.senders_lost,
            not_sent: self.not_sent,
            lag_p99_us: (sends && !self.send_lag.is_empty())
                .then(|| self.send_lag.value_at_quantile(0.99)),
            busy: if self.resources.wall_s > 0.0 {
                self.resources.loadgen_cpu_s / self.resources.wall_s
            } else {
                0.0
            },
            threads: self.run.threads,
            measured: if sends {
                self.tally.received
            } else {
                self.connected
            },
            server_gone: self.resources.server_exited
                || (self.connected > 0 && disconnected >= self.connected),
            interrupted: self.timeline.interrupted,
        }
    }

    /// Whether the figures can be trusted.
    pub(crate) fn is_valid(&self) -> bool {
        self.invalid_reasons.is_empty()
    }

    /// Whether any threshold was crossed.
    pub(crate) fn thresholds_crossed(&self) -> bool {
        self.thresholds.iter().any(|outcome| !outcome.passed)
    }

    /// The exit status this run earns.
    pub(crate) fn exit_code(&self) -> u8 {
        verdict::exit_code(
            !self.is_valid(),
            self.run.fail_on_invalid,
            self.thresholds_crossed(),
            self.timeline.interrupted,
        )
    }

    /// Deliveries received per second of the real time deliveries took: from the first
    /// measured intended send to the last delivery, or to the end of the schedule if that is
    /// later. A server that falls behind is not credited with the offered rate.
    pub(crate) fn deliveries_per_second(&self) -> f64 {
        if self.delivery_elapsed_s > 0.0 {
            self.tally.received as f64 / self.delivery_elapsed_s
        } else {
            0.0
        }
    }

    /// The histogram a latency figure is read from; delivery figures count undelivered
    /// deliveries at their lower bound.
    fn distribution(&self, distribution: Distribution) -> &Histogram<u64> {
        match distribution {
            Distribution::Delivery => &self.delivery_with_undelivered,
            Distribution::Completion => &self.completion,
            Distribution::Handshake => &self.handshake,
        }
    }
}

impl Figures for Report {
    fn latency_us(&self, distribution: Distribution, statistic: Statistic) -> Option<f64> {
        let histogram = self.distribution(distribution);
        if histogram.is_empty() {
            return None;
        }
        Some(match statistic {
            Statistic::Quantile(quantile) => histogram.value_at_quantile(quantile) as f64,
            Statistic::Max => histogram.max() as f64,
            Statistic::Mean => histogram.mean(),
        })
    }

    fn count(&self, name: &str) -> (u64, u64) {
        let clients = u64::from(self.run.clients);
        let expected = self.tally.expected;
        match name {
            "lost" => (self.tally.lost, expected),
            "duplicated" => (self.tally.duplicated, expected),
            "out_of_order" => (self.tally.out_of_order, expected),
            "unexpected" => (self.tally.unexpected, expected),
            "received" => (self.tally.received, expected),
            "expected" => (expected, expected),
            "not_sent" => (self.not_sent, self.scheduled),
            "failed" => (self.failures.values().sum(), clients),
            "disconnected" => (self.disconnects.values().sum(), clients),
            _ => (0, 0),
        }
    }

    fn rate(&self) -> f64 {
        self.deliveries_per_second()
    }
}

fn merge_counts<K: Ord + Clone>(into: &mut BTreeMap<K, u64>, from: &BTreeMap<K, u64>) {
    for (key, count) in from {
        *into.entry(key.clone()).or_default() += count;
    }
}
