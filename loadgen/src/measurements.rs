//! What one worker measures, and how one delivered message is recorded: every probe in it is
//! found, judged by its receiver's book (`accounting.rs`), and its latency goes into the
//! histograms. No clock and no socket here: the time of arrival is given.

use std::collections::BTreeMap;

use hdrhistogram::Histogram;

use crate::accounting::{ReceiverBook, ReceiverCounts, Verdict};
use crate::probe::Probes;
use crate::schedule::Schedule;

/// A new histogram of microseconds, 3 significant figures, up to an hour.
pub(crate) fn new_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 3_600_000_000, 3).expect("valid histogram bounds")
}

/// What deliveries are judged against: the schedule (once sending started) and the run.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Judge {
    /// The send schedule; `None` before sending starts (no probe of ours can exist then).
    pub schedule: Option<Schedule>,
    /// Echo run: a client expects only its own probes.
    pub echo: bool,
    /// This run's probes carry this id.
    pub run_id: u32,
    /// Rooms: sender `s` sends into room `s % rooms`.
    pub rooms: u32,
    /// Whether senders get their own messages, when stated.
    pub expect_self: Option<bool>,
}

/// The messages a receiver is owed: those intended in `[from_ns, until_ns)`, offsets from
/// the schedule's start. A receiver open when sending started is owed the whole run; one that
/// joins later (`--connection-stages`, or a late handshake) from [`JOIN_GRACE_NS`] after its
/// handshake completed; one that leaves as planned until [`LEAVE_GRACE_NS`] before it leaves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Window {
    /// The first intended time owed.
    pub from_ns: u64,
    /// The first intended time no longer owed (`u64::MAX`: the end of the run).
    pub until_ns: u64,
}

/// A server may put a client in its room a little after sending the 101 (after a join
/// message, or on its next loop turn): messages intended this soon after the handshake
/// completed are not owed to a receiver that joined during the run.
pub(crate) const JOIN_GRACE_NS: u64 = 100_000_000;
/// A message intended this soon before a receiver's planned leave may reach the server after
/// its close frame: it is not owed.
pub(crate) const LEAVE_GRACE_NS: u64 = 100_000_000;

impl Window {
    /// Owed every message of the run.
    pub(crate) const WHOLE_RUN: Window = Window {
        from_ns: 0,
        until_ns: u64::MAX,
    };

    /// The window of a receiver whose handshake completed at `joined_ns` (`None`: before
    /// sending started) and that leaves at `leave_ns`, if it does; offsets from the
    /// schedule's start.
    pub(crate) fn of_member(joined_ns: Option<u64>, leave_ns: Option<u64>) -> Window {
        let from_ns = joined_ns.map_or(0, |joined| joined.saturating_add(JOIN_GRACE_NS));
        let until_ns = leave_ns.map_or(u64::MAX, |leave| leave.saturating_sub(LEAVE_GRACE_NS));
        Window {
            from_ns,
            until_ns: until_ns.max(from_ns),
        }
    }

    /// Whether a message intended at `offset_ns` is owed.
    pub(crate) fn contains(&self, offset_ns: u64) -> bool {
        (self.from_ns..self.until_ns).contains(&offset_ns)
    }
}

#[cfg(test)]
impl Judge {
    /// A fanout run of `run_id`: 1,000 messages a second for a second from time 0, two
    /// senders, one room.
    pub(crate) fn for_tests(run_id: u32) -> Judge {
        Judge {
            schedule: Some(Schedule::new(
                0,
                crate::schedule::Shape::constant(1000.0, 1.0),
                2,
                0.0,
            )),
            echo: false,
            run_id,
            rooms: 1,
            expect_self: None,
        }
    }
}

/// Who a receiver is, as far as what it is owed goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ReceiverIdentity {
    /// Its sender index, if it sends.
    pub own_sender: Option<u32>,
    /// Its room.
    pub room: u32,
    /// Which target (URL) it is connected to.
    pub target: usize,
    /// The messages owed to it; `None`: none (it never opened while messages were sent).
    pub window: Option<Window>,
}

/// The receiving client, as far as recording is concerned.
#[derive(Debug)]
pub(crate) struct Receiver<'a> {
    /// Who it is.
    pub identity: ReceiverIdentity,
    /// What it has seen.
    pub book: &'a mut ReceiverBook,
}

/// One receiver's book, handed to the main thread at the end for settling.
#[derive(Debug)]
pub(crate) struct ReceiverRecord {
    /// Global client number.
    pub client: u32,
    /// Who it is.
    pub identity: ReceiverIdentity,
    /// What it saw, reduced to what settling needs.
    pub counts: ReceiverCounts,
}

/// Most intervals a time series keeps; deliveries after the last are in the last.
pub(crate) const MAX_INTERVALS: usize = 10_000;

/// What a worker measured in one interval of the time series, by arrival time.
#[derive(Debug)]
pub(crate) struct IntervalMeasurements {
    /// First copies that arrived in the interval (warmup included).
    pub delivered: u64,
    /// Their latency (µs), 2 significant figures: enough for a plot, small for long runs.
    pub latency: Histogram<u64>,
}

impl Default for IntervalMeasurements {
    fn default() -> Self {
        IntervalMeasurements {
            delivered: 0,
            latency: Histogram::new(2).expect("2 significant figures are valid"),
        }
    }
}

/// What a worker measured of the clients of one target (URL), when there are several.
#[derive(Debug)]
pub(crate) struct TargetMeasurements {
    /// Delivery latency at this target's clients, measured window (µs).
    pub delivery: Histogram<u64>,
    /// Handshake latency of this target's clients (µs).
    pub handshake: Histogram<u64>,
    /// This target's clients that failed to connect.
    pub failed: u64,
    /// This target's clients lost while open.
    pub disconnected: u64,
}

impl Default for TargetMeasurements {
    fn default() -> Self {
        TargetMeasurements {
            delivery: new_histogram(),
            handshake: new_histogram(),
            failed: 0,
            disconnected: 0,
        }
    }
}

/// What a worker measured.
#[derive(Debug)]
pub(crate) struct Measurements {
    /// Delivery latency in the measured window (µs).
    pub delivery: Histogram<u64>,
    /// Delivery latency during the warmup (µs).
    pub delivery_warmup: Histogram<u64>,
    /// Connect start to 101 received, TCP, TLS and upgrade together (µs).
    pub handshake: Histogram<u64>,
    /// TCP connected to TLS handshake done, `wss://` only (µs).
    pub tls_handshake: Histogram<u64>,
    /// Upgrade request sent to 101 received: the WebSocket handshake alone (µs).
    pub upgrade: Histogram<u64>,
    /// How late each probe left compared to its intended time (µs).
    pub send_lag: Histogram<u64>,
    /// `delivery` as it was when the progress line last took the deliveries since (see
    /// [`Measurements::take_progress`]): not a second histogram to record every delivery in.
    pub progress_taken: Histogram<u64>,
    /// Per message number: first copies at receivers it was owed to, in this worker.
    pub arrivals: Vec<u32>,
    /// Per message number: the latest such arrival (ns).
    pub last_arrival_ns: Vec<u64>,
    /// Per sender index: messages it sent.
    pub sent_by_sender: BTreeMap<u32, u64>,
    /// First copies of probes received (measured window).
    pub received: u64,
    /// When the latest of them arrived (ns).
    pub last_delivery_ns: u64,
    /// Messages that carried no probe (a welcome text, a join notice).
    pub non_probe: u64,
    /// Messages that carried more than one probe (a server that batches).
    pub multi_probe: u64,
    /// Probes of another run, or in echo runs another client's.
    pub foreign: u64,
    /// Deliveries of a sender's own probes to itself.
    pub self_deliveries: u64,
    /// First copies of messages intended outside their receiver's membership window.
    pub outside_membership: u64,
    /// Receivers that left as planned (`--connection-stages`).
    pub left: u64,
    /// Failed connections, by reason.
    pub failures: BTreeMap<String, u64>,
    /// Close codes received from the server.
    pub close_codes: BTreeMap<u16, u64>,
    /// Rules the server broke (masked frames, bad UTF-8 ...), by rule.
    pub protocol_errors: BTreeMap<String, u64>,
    /// Open connections lost before the end (server closed, reset).
    pub disconnects: BTreeMap<String, u64>,
    /// Clients still open at the end.
    pub open_at_end: u64,
    /// Connections that agreed to permessage-deflate.
    pub compressed_connections: u64,
    /// Bytes read from the server: frames as they travel (after TLS decryption).
    pub wire_bytes_received: u64,
    /// Bytes of the data messages received, after inflation.
    pub payload_bytes_received: u64,
    /// Bytes written to the server: frames as they travel (before TLS encryption).
    pub wire_bytes_sent: u64,
    /// Bytes of the probe messages sent, before compression.
    pub payload_bytes_sent: u64,
    /// Every receiver's book, filled at the end.
    pub receivers: Vec<ReceiverRecord>,
    /// Per target (URL), when there is more than one.
    pub per_target: Vec<TargetMeasurements>,
    /// The time series' interval (0: none).
    pub interval_ns: u64,
    /// Per interval from the schedule's start, by arrival time.
    pub intervals: Vec<IntervalMeasurements>,
}

impl Default for Measurements {
    fn default() -> Self {
        Measurements {
            delivery: new_histogram(),
            delivery_warmup: new_histogram(),
            handshake: new_histogram(),
            tls_handshake: new_histogram(),
            upgrade: new_histogram(),
            send_lag: new_histogram(),
            progress_taken: new_histogram(),
            arrivals: Vec::new(),
            last_arrival_ns: Vec::new(),
            sent_by_sender: BTreeMap::new(),
            received: 0,
            last_delivery_ns: 0,
            non_probe: 0,
            multi_probe: 0,
            foreign: 0,
            self_deliveries: 0,
            outside_membership: 0,
            left: 0,
            failures: BTreeMap::new(),
            close_codes: BTreeMap::new(),
            protocol_errors: BTreeMap::new(),
            disconnects: BTreeMap::new(),
            open_at_end: 0,
            compressed_connections: 0,
            wire_bytes_received: 0,
            payload_bytes_received: 0,
            wire_bytes_sent: 0,
            payload_bytes_sent: 0,
            receivers: Vec::new(),
            per_target: Vec::new(),
            interval_ns: 0,
            intervals: Vec::new(),
        }
    }
}

impl Measurements {
    /// Measurements that track completion for `messages` scheduled messages, broken down
    /// per target when there are several.
    pub(crate) fn tracking(messages: usize, targets: usize) -> Self {
        let per_target = if targets > 1 {
            (0..targets)
                .map(|_| TargetMeasurements::default())
                .collect()
        } else {
            Vec::new()
        };
        Measurements {
            arrivals: vec![0; messages],
            last_arrival_ns: vec![0; messages],
            per_target,
            ..Measurements::default()
        }
    }

    /// The measured deliveries' latency since the last call (`None`: there were none), for
    /// the progress line: `delivery` less what it held then, the same counts as recording
    /// each delivery twice would give, for a subtraction twice a second.
    pub(crate) fn take_progress(&mut self) -> Option<Histogram<u64>> {
        if self.delivery.len() == self.progress_taken.len() {
            return None;
        }
        let mut fresh = self.delivery.clone();
        let subtracted = fresh.subtract(&self.progress_taken);
        self.progress_taken.clone_from(&self.delivery);
        subtracted.ok().map(|()| fresh)
    }

    /// Records one delivered message (text, binary, or one line in raw mode) that arrived at
    /// `now`: every probe in it, wherever it is.
    pub(crate) fn record_message(
        &mut self,
        judge: &Judge,
        receiver: &mut Receiver<'_>,
        message: &[u8],
        now: u64,
    ) {
        let mut probes = 0u32;
        for probe in Probes::new(message) {
            probes += 1;
            self.record_probe(judge, receiver, probe, now);
        }
        match probes {
            0 => self.non_probe += 1,
            1 => {}
            _ => self.multi_probe += 1,
        }
    }

    fn record_probe(
        &mut self,
        judge: &Judge,
        receiver: &mut Receiver<'_>,
        probe: crate::probe::Probe,
        now: u64,
    ) {
        let Some(schedule) = judge.schedule else {
            self.foreign += 1;
            return;
        };
        let own = receiver.identity.own_sender == Some(probe.sender);
        if probe.run != judge.run_id || (judge.echo && !own) || probe.sender >= schedule.senders {
            self.foreign += 1;
            return;
        }
        let n = schedule.message_number(probe.sender, probe.sequence);
        if probe.sequence >= schedule.total_messages || n >= schedule.total_messages {
            self.foreign += 1;
            return;
        }
        if own {
            self.self_deliveries += 1;
        }
        let measured = !schedule.is_warmup(n);
        let slot = if judge.echo { 0 } else { probe.sender as usize };
        let outside = receiver
            .identity
            .window
            .is_some_and(|window| !window.contains(probe.intended_ns));
        let verdict = receiver
            .book
            .record(slot, probe.sequence, measured && !outside);
        if verdict == Verdict::Duplicate {
            return;
        }
        if outside {
            // Sent while the receiver was joining or leaving: neither owed nor unexpected.
            self.outside_membership += u64::from(measured);
            return;
        }
        // The probe carries its intended time from the schedule's start, so that processes
        // sharing a schedule (`--start-at`) read each other's probes on their own clocks.
        let intended_ns = schedule.start_ns + probe.intended_ns;
        let latency_us = (now.saturating_sub(intended_ns) / 1000).max(1);
        if let Some(index) = now
            .saturating_sub(schedule.start_ns)
            .checked_div(self.interval_ns)
        {
            let index = (index as usize).min(MAX_INTERVALS - 1);
            if self.intervals.len() <= index {
                self.intervals
                    .resize_with(index + 1, IntervalMeasurements::default);
            }
            let interval = &mut self.intervals[index];
            interval.delivered += 1;
            // `record`, not `saturating_record`: clamping would stop this histogram growing.
            let _ = interval.latency.record(latency_us);
        }
        if measured {
            self.delivery.saturating_record(latency_us);
            if let Some(per_target) = self.per_target.get_mut(receiver.identity.target) {
                per_target.delivery.saturating_record(latency_us);
            }
            self.received += 1;
            self.last_delivery_ns = self.last_delivery_ns.max(now);
        } else {
            self.delivery_warmup.saturating_record(latency_us);
        }
        let owed_here = receiver.identity.window.is_some()
            && (judge.echo || probe.sender % judge.rooms.max(1) == receiver.identity.room)
            && !(own && judge.expect_self == Some(false));
        if owed_here {
            if let Some(count) = self.arrivals.get_mut(n as usize) {
                *count += 1;
                let last = &mut self.last_arrival_ns[n as usize];
                *last = (*last).max(now);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::probe::Probe;

    fn judge() -> Judge {
        Judge::for_tests(7)
    }

    /// A receiver in room 0 that sends nothing, owed what `window` holds.
    fn receiver_of(book: &mut ReceiverBook, window: Window) -> Receiver<'_> {
        Receiver {
            identity: ReceiverIdentity {
                own_sender: None,
                room: 0,
                target: 0,
                window: Some(window),
            },
            book,
        }
    }

    fn probe_bytes(run: u32, sender: u32, sequence: u64) -> Vec<u8> {
        let mut bytes = vec![0u8; 64];
        Probe {
            run,
            sender,
            sequence,
            intended_ns: 1_000,
        }
        .write(&mut bytes);
        bytes
    }

    #[test]
    fn a_batched_message_records_each_probe_and_counts_the_batch() {
        let mut measurements = Measurements::tracking(1000, 1);
        let mut book = ReceiverBook::default();
        let mut receiver = receiver_of(&mut book, Window::WHOLE_RUN);
        let mut message = probe_bytes(7, 0, 0);
        message.push(b'\n');
        message.extend_from_slice(&probe_bytes(7, 1, 0));
        measurements.record_message(&judge(), &mut receiver, &message, 2_000_000);
        measurements.record_message(&judge(), &mut receiver, b"hello", 2_000_000);
        measurements.record_message(&judge(), &mut receiver, &probe_bytes(8, 0, 1), 2_000_000);
        measurements.record_message(&judge(), &mut receiver, &probe_bytes(7, 0, 0), 2_000_000);
        assert_eq!(measurements.received, 2);
        assert_eq!(measurements.multi_probe, 1);
        assert_eq!(measurements.non_probe, 1);
        assert_eq!(measurements.foreign, 1);
        assert_eq!(measurements.delivery.len(), 2);
        assert_eq!(measurements.arrivals[0..2], [1, 1]);
        assert_eq!(book.settle(&[]).duplicated, 1);
    }

    #[test]
    fn a_receiver_is_owed_only_what_was_sent_while_it_was_a_member() {
        // Joined 200 ms into the run, leaves at 600 ms: owed 300 ms to 500 ms.
        let window = Window::of_member(Some(200_000_000), Some(600_000_000));
        assert_eq!(
            (window.from_ns, window.until_ns),
            (300_000_000, 500_000_000)
        );
        assert_eq!(Window::of_member(None, None), Window::WHOLE_RUN);
        let mut measurements = Measurements::tracking(1000, 1);
        let mut book = ReceiverBook::default();
        let mut receiver = receiver_of(&mut book, window);
        let judge = judge();
        for (sequence, intended_ns) in [(0, 250_000_000), (1, 300_000_000), (2, 550_000_000)] {
            let mut bytes = vec![0u8; 64];
            Probe {
                run: 7,
                sender: 0,
                sequence,
                intended_ns,
            }
            .write(&mut bytes);
            measurements.record_message(&judge, &mut receiver, &bytes, 700_000_000);
            measurements.record_message(&judge, &mut receiver, &bytes, 700_000_000);
        }
        assert_eq!(measurements.outside_membership, 2);
        assert_eq!(measurements.received, 1);
        assert_eq!(measurements.arrivals.iter().sum::<u32>(), 1);
        // A second copy is a duplicate wherever the first one was.
        let tally = book.settle(&[crate::accounting::Owed {
            sender: 0,
            messages: 1,
        }]);
        assert_eq!(
            (tally.received, tally.unexpected, tally.duplicated),
            (1, 0, 3)
        );
    }

    #[test]
    fn probes_beyond_the_schedule_are_foreign_not_an_allocation() {
        let mut measurements = Measurements::tracking(1000, 1);
        let mut book = ReceiverBook::default();
        let mut receiver = receiver_of(&mut book, Window::WHOLE_RUN);
        let bytes = probe_bytes(7, 0, u64::MAX / 2);
        measurements.record_message(&judge(), &mut receiver, &bytes, 1);
        let bytes = probe_bytes(7, 99, 0);
        measurements.record_message(&judge(), &mut receiver, &bytes, 1);
        assert_eq!(measurements.foreign, 2);
        assert_eq!(measurements.received, 0);
    }

    #[test]
    fn the_progress_taken_is_what_was_measured_since() {
        let schedule = Schedule::new(0, crate::schedule::Shape::constant(1000.0, 1.0), 2, 0.3);
        let judge = Judge {
            schedule: Some(schedule),
            ..judge()
        };
        let mut measurements = Measurements::tracking(1000, 1);
        let mut book = ReceiverBook::default();
        let mut receiver = receiver_of(&mut book, Window::WHOLE_RUN);
        let mut since = new_histogram();
        let mut state = 0x1234_5678_9abc_def1u64;
        assert!(measurements.take_progress().is_none());
        for n in 0..1000 {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            let (sender, sequence) = ((n % 2) as u32, n / 2);
            let intended_ns = schedule.intended_ns(n);
            // From 1 µs to over an hour late, mostly a few hundred µs.
            let late_ns = match state % 100 {
                0 => state % 5_000_000_000_000,
                1 => 0,
                _ => state % 2_000_000,
            };
            let mut bytes = vec![0u8; 64];
            Probe {
                run: 7,
                sender,
                sequence,
                intended_ns,
            }
            .write(&mut bytes);
            let now = intended_ns + late_ns;
            measurements.record_message(&judge, &mut receiver, &bytes, now);
            if !schedule.is_warmup(n) {
                since.saturating_record((late_ns / 1000).max(1));
            }
            if state.is_multiple_of(37) || n == 999 {
                let taken = measurements.take_progress();
                let recorded = |histogram: &Histogram<u64>| {
                    let counts: Vec<(u64, u64)> = histogram
                        .iter_recorded()
                        .map(|value| (value.value_iterated_to(), value.count_at_value()))
                        .collect();
                    (histogram.len(), counts, histogram.value_at_quantile(0.99))
                };
                match taken {
                    Some(taken) => assert_eq!(recorded(&taken), recorded(&since), "at {n}"),
                    None => assert!(since.is_empty(), "at {n}"),
                }
                since.reset();
            }
        }
        assert!(measurements.take_progress().is_none());
        assert_eq!(measurements.received, 700);
    }

    /// A cost harness, not a check: 1,000 receivers get every message of 10 senders in
    /// order (1,000 messages a second, the first 0.2 s warmup), 1,000,000 deliveries through
    /// `record_message`. Count what the deliveries cost, not the setup:
    ///
    /// ```text
    /// cargo test --release -p loadgen --no-run
    /// valgrind --tool=callgrind --cache-sim=yes --D1=32768,8,64 --LL=1048576,16,64 \
    ///     --toggle-collect='*deliver_for_callgrind*' \
    ///     target/release/deps/loadgen-HASH --ignored --exact \
    ///     measurements::tests::fanout_deliveries_for_callgrind
    /// ```
    ///
    /// and divide the totals by 1,000,000 (the LL given is this machine's per-core L2: the
    /// shared L3 is everyone's). The progress line's `take_progress`, twice a second, is not
    /// in it.
    #[test]
    #[ignore = "a cost harness: run it under callgrind, see its doc"]
    fn fanout_deliveries_for_callgrind() {
        const RECEIVERS: usize = 1_000;
        const SENDERS: u32 = 10;
        const MESSAGES: u64 = 1_000;
        let schedule = Schedule::new(
            0,
            crate::schedule::Shape::constant(1000.0, 2.0),
            SENDERS,
            0.2,
        );
        let judge = Judge {
            schedule: Some(schedule),
            echo: false,
            run_id: 7,
            rooms: 1,
            expect_self: None,
        };
        let messages: Vec<(Vec<u8>, u64)> = (0..MESSAGES)
            .map(|n| {
                let intended_ns = schedule.intended_ns(n) - schedule.start_ns;
                let mut bytes = vec![0u8; 64];
                Probe {
                    run: 7,
                    sender: (n % u64::from(SENDERS)) as u32,
                    sequence: n / u64::from(SENDERS),
                    intended_ns,
                }
                .write(&mut bytes);
                (bytes, intended_ns)
            })
            .collect();
        let mut measurements = Measurements::tracking(schedule.total_messages as usize, 1);
        let mut books: Vec<ReceiverBook> =
            (0..RECEIVERS).map(|_| ReceiverBook::default()).collect();
        deliver_for_callgrind(&judge, &mut measurements, &mut books, &messages);
        let deliveries = RECEIVERS as u64 * MESSAGES;
        assert_eq!(
            measurements.received + measurements.delivery_warmup.len(),
            deliveries
        );
        assert_eq!(measurements.received, RECEIVERS as u64 * 800);
    }

    /// Every message to every receiver, latencies spread over 150 µs to 550 µs.
    #[inline(never)]
    fn deliver_for_callgrind(
        judge: &Judge,
        measurements: &mut Measurements,
        books: &mut [ReceiverBook],
        messages: &[(Vec<u8>, u64)],
    ) {
        for (bytes, intended_ns) in messages {
            for (index, book) in books.iter_mut().enumerate() {
                let now = intended_ns + 150_000 + (index as u64 * 7_919) % 400_000;
                let mut receiver = receiver_of(book, Window::WHOLE_RUN);
                measurements.record_message(judge, &mut receiver, bytes, now);
            }
        }
    }
}
