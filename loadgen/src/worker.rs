//! One worker thread: a `mio::Poll` loop over its share of the clients. It connects them on
//! the ramp, sends the probes its senders owe on the schedule, and records every delivery into
//! its own histograms, so the hot path takes no lock; the main thread merges them at the end.

use std::collections::BTreeMap;
use std::io::{self, Read};
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hdrhistogram::Histogram;
use std::os::fd::AsRawFd;

use mio::unix::SourceFd;
use mio::{Events, Interest, Poll, Token};
use protocol::close::CloseCode;
use protocol::frame::OpCode;
use protocol::handshake::client::ClientHandshake;
use protocol::message::Event;
use protocol::Status;
use timerfd::{ClockId, SetTimeFlags, TimerFd, TimerState};

use crate::client::{start_connect, Client, State};
use crate::probe::{Probe, PROBE_HEADER_LEN};
use crate::schedule::{Clock, Schedule};

const READ_BUFFER_LEN: usize = 256 * 1024;
/// The token of the worker's timer; client tokens are their index.
const TIMER: Token = Token(usize::MAX);
/// The loop wakes at least this often to check the stop flag and timeouts.
const HOUSEKEEPING_NS: u64 = 10_000_000;
/// Handshake responses longer than this are refused.
const MAX_RESPONSE_HEAD: usize = 16 * 1024;

/// A new histogram of microseconds, 3 significant figures, up to an hour.
pub fn new_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 3_600_000_000, 3).expect("valid histogram bounds")
}

/// What kind of run this is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunKind {
    /// Senders broadcast; everyone measures.
    Fanout,
    /// Everyone sends; each measures its own echo.
    Echo,
    /// Connect and hold; nothing is sent.
    Connect,
}

/// Everything a worker needs to know about the run; shared read-only.
#[derive(Debug)]
pub struct Plan {
    /// The kind of run.
    pub kind: RunKind,
    /// Where to connect.
    pub address: SocketAddr,
    /// The `Host` header.
    pub host_header: String,
    /// The request target of each room.
    pub room_targets: Vec<String>,
    /// Extra request headers.
    pub headers: Vec<(String, String)>,
    /// Subprotocols to offer.
    pub subprotocols: Vec<String>,
    /// Sent by each client right after its handshake.
    pub first_message: Option<String>,
    /// Local addresses to connect from, in turn.
    pub source_ips: Vec<IpAddr>,
    /// Connections per second during the ramp, all workers together.
    pub connect_rate: f64,
    /// A connection not open after this long has failed.
    pub connect_timeout_ns: u64,
    /// Number of worker threads.
    pub threads: usize,
    /// Probe payload size.
    pub payload: usize,
    /// Binary frames instead of text.
    pub binary: bool,
    /// Newline-framed text over plain TCP instead of WebSocket.
    pub raw: bool,
    /// Identifies this run's probes.
    pub run_id: u32,
    /// Messages per second, all senders together.
    pub rate: f64,
    /// Number of senders.
    pub senders: u32,
    /// Seconds of warmup, then of measurement.
    pub warmup_s: f64,
    /// Seconds of measurement.
    pub duration_s: f64,
}

/// Counters and signals shared between the workers and the main thread.
#[derive(Debug)]
pub struct Shared {
    /// The one clock.
    pub clock: Clock,
    /// Clients whose handshake completed.
    pub connected: AtomicU64,
    /// Clients that failed to connect or to handshake.
    pub failed: AtomicU64,
    /// Clients that were open and then lost their connection.
    pub disconnected: AtomicU64,
    /// Probes sent.
    pub sent: AtomicU64,
    /// Probe deliveries received.
    pub received: AtomicU64,
    /// Intended time of the first message; 0 until the main thread starts the run.
    pub start_ns: AtomicU64,
    /// Set by the main thread when the run is over.
    pub stop: AtomicBool,
    /// Deliveries recorded since start, merged by each worker about once a second.
    pub progress: Mutex<Histogram<u64>>,
}

/// What a worker measured.
#[derive(Debug)]
pub struct WorkerResult {
    /// Delivery latency in the measured window (µs).
    pub delivery: Histogram<u64>,
    /// Delivery latency during the warmup (µs).
    pub delivery_warmup: Histogram<u64>,
    /// Connect start to 101 received (µs).
    pub handshake: Histogram<u64>,
    /// How late each probe left compared to its intended time (µs).
    pub send_lag: Histogram<u64>,
    /// Per message number: unique deliveries seen by this worker's clients.
    pub arrivals: Vec<u32>,
    /// Per message number: the latest arrival at this worker's clients (ns).
    pub last_arrival_ns: Vec<u64>,
    /// Per sender index: messages it sent.
    pub sent_by_sender: BTreeMap<u32, u64>,
    /// Per room: clients open when sending started.
    pub room_members_at_start: BTreeMap<u32, u64>,
    /// Unique probe deliveries.
    pub received: u64,
    /// Deliveries of a (receiver, sender, sequence) already seen.
    pub duplicates: u64,
    /// Deliveries with a sequence lower than one already seen from the same sender.
    pub out_of_order: u64,
    /// Messages that were not probes (a welcome text, a join notice).
    pub non_probe: u64,
    /// Probes of another run, or in echo mode another client's.
    pub foreign: u64,
    /// Deliveries of a sender's own probes to itself.
    pub self_deliveries: u64,
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
}

impl WorkerResult {
    fn new() -> Self {
        WorkerResult {
            delivery: new_histogram(),
            delivery_warmup: new_histogram(),
            handshake: new_histogram(),
            send_lag: new_histogram(),
            arrivals: Vec::new(),
            last_arrival_ns: Vec::new(),
            sent_by_sender: BTreeMap::new(),
            room_members_at_start: BTreeMap::new(),
            received: 0,
            duplicates: 0,
            out_of_order: 0,
            non_probe: 0,
            foreign: 0,
            self_deliveries: 0,
            failures: BTreeMap::new(),
            close_codes: BTreeMap::new(),
            protocol_errors: BTreeMap::new(),
            disconnects: BTreeMap::new(),
            open_at_end: 0,
        }
    }
}

/// One worker's loop state.
pub struct Worker {
    index: usize,
    plan: Arc<Plan>,
    shared: Arc<Shared>,
    poll: Poll,
    /// Wakes the loop at the next send's intended time with nanosecond resolution; a poll
    /// timeout alone is rounded up to whole milliseconds, which would make sends late.
    timer: TimerFd,
    /// The instant the timer is armed for (0: not armed).
    timer_armed_ns: u64,
    clients: Vec<Client>,
    senders: Vec<usize>,
    read_buffer: Vec<u8>,
    result: WorkerResult,
    progress: Histogram<u64>,
    schedule: Option<Schedule>,
    next_to_connect: usize,
    ramp_start_ns: u64,
    /// When connection timeouts are next checked.
    next_timeout_check_ns: u64,
    /// Counters already added to the shared totals.
    published_sent: u64,
    published_received: u64,
    sent: u64,
}

impl Worker {
    /// A worker for the clients whose global numbers are given.
    pub fn new(
        index: usize,
        plan: Arc<Plan>,
        shared: Arc<Shared>,
        ids: Vec<u32>,
    ) -> io::Result<Self> {
        let rooms = plan.room_targets.len() as u32;
        let clients: Vec<Client> = ids
            .iter()
            .map(|&id| {
                let sender = match plan.kind {
                    RunKind::Fanout => (id < plan.senders).then_some(id),
                    RunKind::Echo => Some(id),
                    RunKind::Connect => None,
                };
                let seed = (u64::from(plan.run_id) << 32) | u64::from(id);
                Client::new(id, id % rooms, sender, seed)
            })
            .collect();
        let senders = clients
            .iter()
            .enumerate()
            .filter(|(_, client)| client.sender.is_some())
            .map(|(index, _)| index)
            .collect();
        let poll = Poll::new()?;
        let timer = TimerFd::new_custom(ClockId::Monotonic, true, true)?;
        poll.registry()
            .register(&mut SourceFd(&timer.as_raw_fd()), TIMER, Interest::READABLE)?;
        Ok(Worker {
            index,
            poll,
            timer,
            timer_armed_ns: 0,
            ramp_start_ns: shared.clock.now_ns(),
            plan,
            shared,
            clients,
            senders,
            read_buffer: vec![0; READ_BUFFER_LEN + MAX_RESPONSE_HEAD],
            result: WorkerResult::new(),
            progress: new_histogram(),
            schedule: None,
            next_to_connect: 0,
            next_timeout_check_ns: 0,
            published_sent: 0,
            published_received: 0,
            sent: 0,
        })
    }

    /// Runs until the main thread says stop; returns what was measured.
    pub fn run(mut self) -> WorkerResult {
        let mut events = Events::with_capacity(4096);
        let mut next_progress_ns = 0;
        let tracked = if self.plan.kind == RunKind::Connect {
            0
        } else {
            ((self.plan.warmup_s + self.plan.duration_s) * self.plan.rate).floor() as usize
        };
        self.result.arrivals = vec![0; tracked];
        self.result.last_arrival_ns = vec![0; tracked];
        loop {
            let now = self.shared.clock.now_ns();
            if self.shared.stop.load(Ordering::Relaxed) {
                break;
            }
            self.connect_due(now);
            self.check_timeouts(now);
            if self.schedule.is_none() {
                let start_ns = self.shared.start_ns.load(Ordering::Acquire);
                if start_ns != 0 {
                    self.begin_sending(start_ns);
                }
            }
            let next_send = self.send_due(now);
            if now >= next_progress_ns {
                self.publish_progress();
                next_progress_ns = now + 500_000_000;
            }

            let mut wake_ns = now + HOUSEKEEPING_NS;
            if let Some(next_send) = next_send {
                wake_ns = wake_ns.min(next_send);
            }
            if let Some(next_connect) = self.next_connect_ns() {
                wake_ns = wake_ns.min(next_connect);
            }
            let now = self.shared.clock.now_ns();
            if wake_ns < now + HOUSEKEEPING_NS && wake_ns != self.timer_armed_ns {
                let delay = Duration::from_nanos(wake_ns.saturating_sub(now).max(1));
                self.timer
                    .set_state(TimerState::Oneshot(delay), SetTimeFlags::Default);
                self.timer_armed_ns = wake_ns;
            }
            let timeout = Duration::from_nanos(HOUSEKEEPING_NS);
            if let Err(error) = self.poll.poll(&mut events, Some(timeout)) {
                if error.kind() != io::ErrorKind::Interrupted {
                    eprintln!("loadgen: worker {}: poll failed: {error}", self.index);
                    break;
                }
            }
            // Sends first: a probe due now must not wait behind the deliveries just read.
            let now = self.shared.clock.now_ns();
            self.send_due(now);
            for (position, event) in events.iter().enumerate() {
                // A batch can hold thousands of deliveries; a probe that falls due meanwhile
                // leaves after at most 64 of them, not after the whole batch.
                if position % 64 == 63 {
                    let now = self.shared.clock.now_ns();
                    self.send_due(now);
                }
                if event.token() == TIMER {
                    self.timer.read();
                    self.timer_armed_ns = 0;
                    continue;
                }
                let index = event.token().0;
                if index >= self.clients.len() {
                    continue;
                }
                if event.is_writable() {
                    self.on_writable(index);
                }
                if event.is_readable() || event.is_read_closed() || event.is_error() {
                    let may_stop_short = !event.is_read_closed() && !event.is_error();
                    self.on_readable(index, may_stop_short);
                }
            }
        }
        self.finish()
    }

    fn next_connect_ns(&self) -> Option<u64> {
        (self.next_to_connect < self.clients.len())
            .then(|| self.connect_time_ns(self.next_to_connect))
    }

    /// The ramp: this worker's `local`-th client connects at this time.
    fn connect_time_ns(&self, local: usize) -> u64 {
        let per_worker_rate = self.plan.connect_rate / self.plan.threads as f64;
        self.ramp_start_ns + (local as f64 / per_worker_rate * 1e9) as u64
    }

    fn connect_due(&mut self, now: u64) {
        while self.next_to_connect < self.clients.len()
            && self.connect_time_ns(self.next_to_connect) <= now
        {
            let index = self.next_to_connect;
            self.next_to_connect += 1;
            let source = (!self.plan.source_ips.is_empty()).then(|| {
                self.plan.source_ips[self.clients[index].id as usize % self.plan.source_ips.len()]
            });
            match start_connect(self.plan.address, source) {
                Ok(mut socket) => {
                    if let Err(error) = self.poll.registry().register(
                        &mut socket,
                        Token(index),
                        Interest::READABLE | Interest::WRITABLE,
                    ) {
                        self.fail(index, format!("register: {error}"));
                        continue;
                    }
                    let client = &mut self.clients[index];
                    client.socket = Some(socket);
                    client.writable_registered = true;
                    client.state = State::Connecting { since_ns: now };
                }
                Err(error) => self.fail(index, format!("connect: {}", describe(&error))),
            }
        }
    }

    fn check_timeouts(&mut self, now: u64) {
        // Connections are checked only during the ramp and shortly after, and at most once
        // per housekeeping interval: a loop turn can be a few microseconds, and this scans
        // every client.
        if self.shared.start_ns.load(Ordering::Relaxed) != 0 && self.schedule.is_some() {
            return;
        }
        if now < self.next_timeout_check_ns {
            return;
        }
        self.next_timeout_check_ns = now + HOUSEKEEPING_NS;
        for index in 0..self.clients.len() {
            let since = match self.clients[index].state {
                State::Connecting { since_ns } | State::Handshaking { since_ns } => since_ns,
                _ => continue,
            };
            if now.saturating_sub(since) > self.plan.connect_timeout_ns {
                let stage = match self.clients[index].state {
                    State::Connecting { .. } => "connect: timed out",
                    _ => "handshake: timed out",
                };
                self.fail(index, stage.to_owned());
            }
        }
    }

    fn begin_sending(&mut self, start_ns: u64) {
        self.schedule = Some(Schedule::new(
            start_ns,
            self.plan.rate,
            self.plan.senders,
            self.plan.warmup_s,
            self.plan.duration_s,
        ));
        for client in &mut self.clients {
            if client.state == State::Open {
                client.open_at_start = true;
                *self
                    .result
                    .room_members_at_start
                    .entry(client.room)
                    .or_default() += 1;
            }
        }
    }

    /// Sends every probe that is due; returns when the next one is due.
    fn send_due(&mut self, now: u64) -> Option<u64> {
        let schedule = self.schedule?;
        if self.plan.kind == RunKind::Connect {
            return None;
        }
        let mut next_due: Option<u64> = None;
        for position in 0..self.senders.len() {
            let index = self.senders[position];
            let client = &mut self.clients[index];
            if client.state != State::Open || !client.open_at_start {
                continue;
            }
            let sender = client.sender.expect("senders have an index");
            let mut queued = false;
            loop {
                let n = schedule.message_number(sender, client.next_k);
                if n >= schedule.total_messages {
                    break;
                }
                let intended_ns = schedule.intended_ns(n);
                if intended_ns > now {
                    next_due = Some(next_due.map_or(intended_ns, |due| due.min(intended_ns)));
                    break;
                }
                let probe = Probe {
                    run: self.plan.run_id,
                    sender,
                    sequence: client.next_k,
                    intended_ns,
                };
                if self.plan.raw {
                    client.queue_line(&probe, self.plan.payload);
                } else {
                    client.queue_probe(&probe, self.plan.payload, self.plan.binary);
                }
                client.next_k += 1;
                queued = true;
                let lag_us = now.saturating_sub(intended_ns) / 1000;
                self.result.send_lag.saturating_record(lag_us.max(1));
                *self.result.sent_by_sender.entry(sender).or_default() += 1;
                self.sent += 1;
            }
            if queued {
                self.flush(index);
            }
        }
        next_due
    }

    /// Adds what this worker counted since last time to the shared totals: a lock or an
    /// atomic about twice a second, never per message.
    fn publish_progress(&mut self) {
        self.shared
            .sent
            .fetch_add(self.sent - self.published_sent, Ordering::Relaxed);
        self.published_sent = self.sent;
        self.shared.received.fetch_add(
            self.result.received - self.published_received,
            Ordering::Relaxed,
        );
        self.published_received = self.result.received;
        if !self.progress.is_empty() {
            if let Ok(mut shared) = self.shared.progress.lock() {
                let _ = shared.add(&self.progress);
            }
            self.progress.reset();
        }
    }

    fn on_writable(&mut self, index: usize) {
        let client = &mut self.clients[index];
        match client.state {
            State::Connecting { since_ns } => {
                let Some(socket) = client.socket.as_ref() else {
                    return;
                };
                match socket.take_error() {
                    Ok(Some(error)) | Err(error) => {
                        self.fail(index, format!("connect: {}", describe(&error)));
                        return;
                    }
                    Ok(None) => {}
                }
                match socket.peer_addr() {
                    Ok(_) => {}
                    Err(error) if error.kind() == io::ErrorKind::NotConnected => return,
                    Err(error) => {
                        self.fail(index, format!("connect: {}", describe(&error)));
                        return;
                    }
                }
                if self.plan.raw {
                    // No handshake: the connection is open once TCP is.
                    let now = self.shared.clock.now_ns();
                    self.result
                        .handshake
                        .saturating_record((now.saturating_sub(since_ns) / 1000).max(1));
                    self.shared.connected.fetch_add(1, Ordering::Relaxed);
                    client.state = State::Open;
                    self.flush(index);
                    return;
                }
                let target = &self.plan.room_targets[client.room as usize];
                let protocols: Vec<&str> =
                    self.plan.subprotocols.iter().map(String::as_str).collect();
                let headers: Vec<(&str, &str)> = self
                    .plan
                    .headers
                    .iter()
                    .map(|(n, v)| (n.as_str(), v.as_str()))
                    .collect();
                let handshake = ClientHandshake {
                    host: &self.plan.host_header,
                    target,
                    key: client.key,
                    protocols: &protocols,
                    extra_headers: &headers,
                };
                client.queue_handshake(&handshake);
                client.state = State::Handshaking { since_ns };
                self.flush(index);
            }
            _ => self.flush(index),
        }
    }

    fn flush(&mut self, index: usize) {
        let client = &mut self.clients[index];
        match client.flush() {
            Ok(all_written) => {
                let want_writable = !all_written;
                if want_writable != client.writable_registered {
                    if let Some(socket) = client.socket.as_mut() {
                        let interest = if want_writable {
                            Interest::READABLE | Interest::WRITABLE
                        } else {
                            Interest::READABLE
                        };
                        let _ = self
                            .poll
                            .registry()
                            .reregister(socket, Token(index), interest);
                    }
                    client.writable_registered = want_writable;
                }
            }
            Err(error) => self.lose(index, format!("write: {}", describe(&error))),
        }
    }

    /// Reads until `WouldBlock`, or until a short read when `may_stop_short` (see the server's
    /// `on_readable` for why that is safe, and why not when the peer closed its side).
    fn on_readable(&mut self, index: usize, may_stop_short: bool) {
        loop {
            let client = &mut self.clients[index];
            if matches!(
                client.state,
                State::Waiting | State::Closed | State::Connecting { .. }
            ) {
                if !matches!(client.state, State::Connecting { .. }) {
                    return;
                }
                // A refused connect shows up as readable with an error.
                if let Some(Ok(Some(error)) | Err(error)) =
                    client.socket.as_ref().map(|socket| socket.take_error())
                {
                    self.fail(index, format!("connect: {}", describe(&error)));
                }
                return;
            }
            let Some(socket) = client.socket.as_mut() else {
                return;
            };
            let kept = client.pending.len();
            self.read_buffer[..kept].copy_from_slice(&client.pending);
            match socket.read(&mut self.read_buffer[kept..]) {
                Ok(0) => {
                    let reason = if matches!(client.state, State::Handshaking { .. }) {
                        "handshake: server closed the connection"
                    } else {
                        "server closed the tcp connection"
                    };
                    self.lose(index, reason.to_owned());
                    return;
                }
                Ok(read) => {
                    let now = self.shared.clock.now_ns();
                    let short = kept + read < self.read_buffer.len();
                    self.on_bytes(index, kept + read, now);
                    if may_stop_short && short {
                        return;
                    }
                }
                Err(error) if error.kind() == io::ErrorKind::WouldBlock => return,
                Err(error) if error.kind() == io::ErrorKind::Interrupted => continue,
                Err(error) => {
                    self.lose(index, format!("read: {}", describe(&error)));
                    return;
                }
            }
        }
    }

    fn on_bytes(&mut self, index: usize, len: usize, now: u64) {
        let mut start = 0;
        if let State::Handshaking { since_ns } = self.clients[index].state {
            let client = &self.clients[index];
            let protocols: Vec<&str> = self.plan.subprotocols.iter().map(String::as_str).collect();
            let handshake = ClientHandshake {
                host: &self.plan.host_header,
                target: "",
                key: client.key,
                protocols: &protocols,
                extra_headers: &[],
            };
            match handshake.read_response(&self.read_buffer[..len]) {
                Ok(Status::Partial) => {
                    if len > MAX_RESPONSE_HEAD {
                        self.fail(index, "handshake: response head too large".to_owned());
                    } else {
                        let client = &mut self.clients[index];
                        client.pending.clear();
                        client.pending.extend_from_slice(&self.read_buffer[..len]);
                    }
                    return;
                }
                Ok(Status::Complete(accepted)) => start = accepted.head_len,
                Err(error) => {
                    let reason = match error {
                        protocol::Error::UnexpectedStatus(status) => {
                            format!("handshake: HTTP {status}")
                        }
                        other => format!("handshake: {other}"),
                    };
                    self.fail(index, reason);
                    return;
                }
            }
            let latency_us = now.saturating_sub(since_ns) / 1000;
            self.result.handshake.saturating_record(latency_us.max(1));
            self.shared.connected.fetch_add(1, Ordering::Relaxed);
            let client = &mut self.clients[index];
            client.state = State::Open;
            if let Some(text) = &self.plan.first_message {
                client.queue_frame(OpCode::Text, text.as_bytes());
                self.flush(index);
            }
        }
        self.on_frames(index, start, len, now);
    }

    /// Raw mode: every complete line is one message; a cut line waits for the next read.
    fn on_lines(&mut self, index: usize, len: usize, now: u64) {
        let expect = self.expectations();
        let client = &mut self.clients[index];
        let mut start = 0;
        while let Some(end) = self.read_buffer[start..len]
            .iter()
            .position(|&b| b == b'\n')
        {
            record(
                &mut self.result,
                &mut self.progress,
                &mut client.highest,
                client.sender,
                &self.read_buffer[start..start + end],
                now,
                expect,
            );
            start += end + 1;
        }
        client.pending.clear();
        client
            .pending
            .extend_from_slice(&self.read_buffer[start..len]);
        if client.pending.len() > 1 << 20 {
            self.lose(index, "a line longer than 1 MiB".to_owned());
        }
    }

    fn on_frames(&mut self, index: usize, mut start: usize, len: usize, now: u64) {
        if self.plan.raw {
            self.on_lines(index, len, now);
            return;
        }
        let expect = self.expectations();
        loop {
            let client = &mut self.clients[index];
            let Client {
                decoder,
                pending,
                highest,
                sender: own_sender,
                ..
            } = client;
            let decoded = decoder.decode(&mut self.read_buffer[start..len]);
            let mut reply: Option<(OpCode, Vec<u8>)> = None;
            let mut closed_with: Option<u16> = None;
            match decoded {
                Ok((consumed, event)) => {
                    start += consumed;
                    let Some(event) = event else {
                        pending.clear();
                        pending.extend_from_slice(&self.read_buffer[start..len]);
                        if pending.is_empty() && pending.capacity() > 4096 {
                            *pending = Vec::new();
                        }
                        return;
                    };
                    match event {
                        Event::Text(_) | Event::Binary(_) => record(
                            &mut self.result,
                            &mut self.progress,
                            highest,
                            *own_sender,
                            event.data().expect("text and binary events carry data"),
                            now,
                            expect,
                        ),
                        Event::Ping(payload) => reply = Some((OpCode::Pong, payload.to_vec())),
                        Event::Pong(_) => {}
                        Event::Close(close) => {
                            closed_with = Some(close.code.map_or(1005, |code| code.0));
                        }
                    }
                }
                Err(error) => {
                    *self
                        .result
                        .protocol_errors
                        .entry(error.to_string())
                        .or_default() += 1;
                    let code = error.close_code().unwrap_or(CloseCode::PROTOCOL_ERROR);
                    self.clients[index].queue_close(code);
                    self.flush(index);
                    self.lose(index, format!("server broke a rule: {error}"));
                    return;
                }
            }
            if let Some((opcode, payload)) = reply {
                self.clients[index].queue_frame(opcode, &payload);
                self.flush(index);
            }
            if let Some(code) = closed_with {
                *self.result.close_codes.entry(code).or_default() += 1;
                let reply_code = if code == 1005 {
                    CloseCode::NORMAL
                } else {
                    CloseCode(code)
                };
                self.clients[index].queue_close(reply_code);
                self.flush(index);
                self.lose(index, format!("closed by server with {code}"));
                return;
            }
        }
    }

    /// What deliveries are judged against right now.
    fn expectations(&self) -> Expectations {
        Expectations {
            schedule: self.schedule,
            echo: self.plan.kind == RunKind::Echo,
            run_id: self.plan.run_id,
            senders: self.plan.senders as usize,
        }
    }

    /// Marks a client closed and lets go of its socket and buffers.
    fn close_client(&mut self, index: usize) {
        let client = &mut self.clients[index];
        client.state = State::Closed;
        if let Some(mut socket) = client.socket.take() {
            let _ = self.poll.registry().deregister(&mut socket);
        }
        client.pending = Vec::new();
        client.outgoing = Vec::new();
    }

    /// A client that never opened.
    fn fail(&mut self, index: usize, reason: String) {
        if self.clients[index].state == State::Closed {
            return;
        }
        self.close_client(index);
        *self.result.failures.entry(reason).or_default() += 1;
        self.shared.failed.fetch_add(1, Ordering::Relaxed);
    }

    /// A client that was open and is gone (or one still connecting, which then failed).
    fn lose(&mut self, index: usize, reason: String) {
        if self.clients[index].state != State::Open {
            self.fail(index, reason);
            return;
        }
        self.close_client(index);
        if !self.shared.stop.load(Ordering::Relaxed) {
            *self.result.disconnects.entry(reason).or_default() += 1;
            self.shared.disconnected.fetch_add(1, Ordering::Relaxed);
        }
    }

    fn finish(mut self) -> WorkerResult {
        self.publish_progress();
        for index in 0..self.clients.len() {
            if self.clients[index].state == State::Open {
                self.result.open_at_end += 1;
                if !self.plan.raw {
                    self.clients[index].queue_close(CloseCode::NORMAL);
                    self.flush(index);
                }
            }
        }
        self.result
    }
}

/// What a delivery is judged against: the schedule (once sending started) and this run's id.
#[derive(Debug, Clone, Copy)]
struct Expectations {
    schedule: Option<Schedule>,
    echo: bool,
    run_id: u32,
    senders: usize,
}

/// Records one delivered message: latency, accounting, completion.
fn record(
    result: &mut WorkerResult,
    progress: &mut Histogram<u64>,
    highest: &mut Vec<u32>,
    own_sender: Option<u32>,
    message: &[u8],
    now: u64,
    expect: Expectations,
) {
    let Expectations {
        schedule,
        echo,
        run_id,
        senders,
    } = expect;
    let Some(probe) = Probe::read(message) else {
        result.non_probe += 1;
        return;
    };
    let Some(schedule) = schedule else {
        result.foreign += 1;
        return;
    };
    if probe.run != run_id
        || (echo && own_sender != Some(probe.sender))
        || message.len() < PROBE_HEADER_LEN
    {
        result.foreign += 1;
        return;
    }
    if own_sender == Some(probe.sender) {
        result.self_deliveries += 1;
    }
    // Duplicate and order checks, per (receiver, sender).
    let slot = if echo { 0 } else { probe.sender as usize };
    if highest.len() <= slot {
        highest.resize(if echo { 1 } else { senders.max(slot + 1) }, 0);
    }
    let seen = highest[slot];
    let this = probe.sequence as u32 + 1;
    if this == seen {
        result.duplicates += 1;
        return;
    }
    if this < seen {
        result.out_of_order += 1;
    } else {
        highest[slot] = this;
    }
    let latency_us = (now.saturating_sub(probe.intended_ns) / 1000).max(1);
    let n = schedule.message_number(probe.sender, probe.sequence);
    if schedule.is_warmup(n) {
        result.delivery_warmup.saturating_record(latency_us);
    } else {
        result.delivery.saturating_record(latency_us);
        progress.saturating_record(latency_us);
    }
    result.received += 1;
    if let Some(count) = result.arrivals.get_mut(n as usize) {
        *count += 1;
        let last = &mut result.last_arrival_ns[n as usize];
        *last = (*last).max(now);
    }
}

fn describe(error: &io::Error) -> String {
    match error.kind() {
        io::ErrorKind::ConnectionRefused => "connection refused".to_owned(),
        io::ErrorKind::ConnectionReset => "connection reset".to_owned(),
        io::ErrorKind::TimedOut => "timed out".to_owned(),
        io::ErrorKind::AddrNotAvailable => "no local port or address available".to_owned(),
        _ => error.to_string(),
    }
}
