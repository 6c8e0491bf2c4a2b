//! The shell of one worker thread: a `mio::Poll` loop and a timerfd over its share of the
//! clients. It owns the sockets and the clock; everything a client does with the bytes
//! (handshake, frames, probes, accounting) is in the client core (`client.rs`). It connects the
//! clients on the ramp, sends the probes its senders owe on the schedule, and keeps its own
//! measurements, so the hot path takes no lock; the main thread merges them at the end.

use std::io;
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hdrhistogram::Histogram;
use mio::unix::SourceFd;
use mio::{Events, Interest, Poll, Token};
use protocol::close::CloseCode;
use timerfd::{ClockId, SetTimeFlags, TimerFd, TimerState};

use crate::client::{Client, State, MAX_RESPONSE_HEAD};
use crate::compression::Codec;
use crate::measurements::{Judge, Measurements, ReceiverRecord, Window};
use crate::plan::{Plan, RunKind};
use crate::probe::Probe;
use crate::ramp::Membership;
use crate::schedule::{Clock, Schedule};
use crate::transport::{describe, start_connect, Stream};

const READ_BUFFER_LEN: usize = 256 * 1024;
/// The token of the worker's timer; client tokens are their index.
const TIMER: Token = Token(usize::MAX);
/// The loop wakes at least this often to check the stop flag and timeouts.
const HOUSEKEEPING_NS: u64 = 10_000_000;
/// A receiver that left waits this long for the server's close frame, then closes anyway.
const CLOSE_ANSWER_TIMEOUT_NS: u64 = 2_000_000_000;

/// When a client is meant to connect.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Planned {
    /// On the connect ramp before the run (every client, or the senders with a connection
    /// ramp).
    BeforeTheRun,
    /// During the run, at these times (`--connection-stages`).
    During(Membership),
    /// Never: the connection ramp never reaches it.
    Never,
}

pub(crate) use crate::measurements::new_histogram;

/// Counters and signals shared between the workers and the main thread.
#[derive(Debug)]
pub(crate) struct Shared {
    /// The one clock.
    pub clock: Clock,
    /// Clients whose handshake completed.
    pub connected: AtomicU64,
    /// Clients that failed to connect or to handshake.
    pub failed: AtomicU64,
    /// Clients that were open and then lost their connection.
    pub disconnected: AtomicU64,
    /// Receivers that left as planned (`--connection-stages`).
    pub left: AtomicU64,
    /// Probes sent.
    pub sent: AtomicU64,
    /// Probe deliveries received.
    pub received: AtomicU64,
    /// Intended time of the first message; 0 until the main thread starts the run.
    pub start_ns: AtomicU64,
    /// No message intended at or after this time is sent (set on SIGINT/SIGTERM).
    pub halt_ns: AtomicU64,
    /// Set by the main thread when the run is over.
    pub stop: AtomicBool,
    /// Deliveries recorded since start, merged by each worker about once a second.
    pub progress: Mutex<Histogram<u64>>,
}

impl Shared {
    /// Connections open now: connected, less those lost and those that left as planned.
    pub(crate) fn open(&self) -> u64 {
        let connected = self.connected.load(Ordering::Relaxed);
        let gone = self.disconnected.load(Ordering::Relaxed) + self.left.load(Ordering::Relaxed);
        connected.saturating_sub(gone)
    }
}

/// The shell's side of one client: its socket (and TLS session).
#[derive(Debug, Default)]
struct Connection {
    stream: Option<Stream>,
    /// When TCP connected (for the TLS handshake time).
    tcp_connected_ns: u64,
    /// Whether `WRITABLE` interest is registered (something is left to write).
    writable_registered: bool,
    /// When it sent its close frame on leaving as planned (0: it has not).
    closing_since_ns: u64,
}

/// One worker's loop state.
pub(crate) struct Worker {
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
    connections: Vec<Connection>,
    senders: Vec<usize>,
    /// When each client is meant to connect.
    planned: Vec<Planned>,
    /// Clients that leave during the run, by leave time (ns from the schedule's start).
    leave_order: Vec<(u64, usize)>,
    next_to_leave: usize,
    read_buffer: Vec<u8>,
    measurements: Measurements,
    /// permessage-deflate state shared by this worker's clients.
    codec: Codec,
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
    pub(crate) fn new(
        index: usize,
        plan: Arc<Plan>,
        shared: Arc<Shared>,
        ids: Vec<u32>,
    ) -> io::Result<Self> {
        let rooms = plan.rooms.max(1);
        let clients: Vec<Client> = ids
            .iter()
            .map(|&local| {
                // Clients are numbered from --sender-base, so that the senders of several
                // processes sharing one schedule are told apart.
                let id = plan.sender_base + local;
                let sender = match plan.kind {
                    RunKind::Fanout => (local < plan.senders).then_some(id),
                    RunKind::Echo => Some(id),
                    RunKind::Connect => None,
                };
                let seed = (u64::from(plan.run_id) << 32) | u64::from(id);
                Client::for_plan(&plan, id, id % rooms, sender, seed)
            })
            .collect();
        let senders = clients
            .iter()
            .enumerate()
            .filter(|(_, client)| client.sender.is_some())
            .map(|(index, _)| index)
            .collect();
        let planned: Vec<Planned> = clients
            .iter()
            .map(|client| {
                let (Some(ramp), None) = (&plan.connection_ramp, client.sender) else {
                    return Planned::BeforeTheRun;
                };
                let receiver = client.id - plan.sender_base - plan.senders;
                ramp.membership(receiver)
                    .map_or(Planned::Never, Planned::During)
            })
            .collect();
        let mut clients = clients;
        for (client, planned) in clients.iter_mut().zip(&planned) {
            if let Planned::During(membership) = planned {
                client.leave_ns = membership.leave_s.map(|leave_s| (leave_s * 1e9) as u64);
            }
        }
        let mut leave_order: Vec<(u64, usize)> = planned
            .iter()
            .enumerate()
            .filter_map(|(index, _)| Some((clients[index].leave_ns?, index)))
            .collect();
        leave_order.sort_unstable();
        let poll = Poll::new()?;
        let timer = TimerFd::new_custom(ClockId::Monotonic, true, true)?;
        poll.registry()
            .register(&mut SourceFd(&timer.as_raw_fd()), TIMER, Interest::READABLE)?;
        let tracked = if plan.kind.sends() {
            plan.shape.total_messages() as usize
        } else {
            0
        };
        let plan_targets = plan.targets.len();
        let interval_ns = plan.interval_ns;
        Ok(Worker {
            index,
            poll,
            timer,
            timer_armed_ns: 0,
            ramp_start_ns: shared.clock.now_ns(),
            connections: clients.iter().map(|_| Connection::default()).collect(),
            plan,
            shared,
            clients,
            senders,
            planned,
            leave_order,
            next_to_leave: 0,
            read_buffer: vec![0; READ_BUFFER_LEN + MAX_RESPONSE_HEAD],
            measurements: Measurements {
                interval_ns,
                ..Measurements::tracking(tracked, plan_targets)
            },
            codec: Codec::default(),
            schedule: None,
            next_to_connect: 0,
            next_timeout_check_ns: 0,
            published_sent: 0,
            published_received: 0,
            sent: 0,
        })
    }

    /// Runs until the main thread says stop; returns what was measured.
    pub(crate) fn run(mut self) -> Measurements {
        let mut events = Events::with_capacity(4096);
        let mut next_progress_ns = 0;
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
            let next_leave = self.leave_due(now);
            if now >= next_progress_ns {
                self.publish_progress();
                next_progress_ns = now + 500_000_000;
            }

            let mut wake_ns = now + HOUSEKEEPING_NS;
            if let Some(next_send) = next_send {
                wake_ns = wake_ns.min(next_send);
            }
            for next in [self.next_connect_ns(), next_leave].into_iter().flatten() {
                wake_ns = wake_ns.min(next);
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
        self.connect_time_ns(self.next_to_connect)
    }

    /// When this worker's `local`-th client connects: on the connect ramp before the run, or
    /// when the connection ramp wants it (clients are in that order); `None`: not known yet
    /// (sending has not started), or never.
    fn connect_time_ns(&self, local: usize) -> Option<u64> {
        match self.planned.get(local)? {
            Planned::BeforeTheRun => {
                let per_worker_rate = self.plan.connect_rate / self.plan.threads as f64;
                Some(self.ramp_start_ns + (local as f64 / per_worker_rate * 1e9) as u64)
            }
            Planned::During(membership) => self
                .schedule
                .map(|schedule| schedule.start_ns + (membership.join_s * 1e9) as u64),
            Planned::Never => None,
        }
    }

    fn connect_due(&mut self, now: u64) {
        while self
            .connect_time_ns(self.next_to_connect)
            .is_some_and(|time| time <= now)
        {
            let index = self.next_to_connect;
            self.next_to_connect += 1;
            let source = (!self.plan.source_ips.is_empty()).then(|| {
                self.plan.source_ips[self.clients[index].id as usize % self.plan.source_ips.len()]
            });
            let address = self.plan.targets[self.clients[index].target].address;
            match start_connect(address, source, self.plan.kernel_timestamps) {
                Ok(mut socket) => {
                    if let Err(error) = self.poll.registry().register(
                        &mut socket,
                        Token(index),
                        Interest::READABLE | Interest::WRITABLE,
                    ) {
                        self.fail(index, format!("register: {error}"));
                        continue;
                    }
                    self.connections[index] = Connection {
                        stream: Some(Stream::new(socket, self.plan.kernel_timestamps)),
                        tcp_connected_ns: 0,
                        writable_registered: true,
                        closing_since_ns: 0,
                    };
                    self.clients[index].start_connecting(now);
                }
                Err(error) => self.fail(index, format!("connect: {}", describe(&error))),
            }
        }
    }

    fn check_timeouts(&mut self, now: u64) {
        // Connections are checked only during the ramp and shortly after (or all along with a
        // connection ramp), and at most once per housekeeping interval: a loop turn can be a
        // few microseconds, and this scans every client.
        if self.schedule.is_some() && self.plan.connection_ramp.is_none() {
            return;
        }
        if now < self.next_timeout_check_ns {
            return;
        }
        self.next_timeout_check_ns = now + HOUSEKEEPING_NS;
        for index in 0..self.clients.len() {
            let closing_since = self.connections[index].closing_since_ns;
            if closing_since != 0 && now >= closing_since + CLOSE_ANSWER_TIMEOUT_NS {
                self.lose(index, "close not answered".to_owned());
                continue;
            }
            if let Some(stage) = self.clients[index].timed_out(&self.plan, now) {
                let in_tls = self.connections[index]
                    .stream
                    .as_ref()
                    .is_some_and(Stream::is_tls_handshaking);
                let stage = if in_tls { "tls: timed out" } else { stage };
                self.fail(index, stage.to_owned());
            }
        }
    }

    fn begin_sending(&mut self, start_ns: u64) {
        self.schedule = Some(Schedule::new(
            start_ns,
            self.plan.shape,
            self.plan.total_senders,
            self.plan.warmup_s,
        ));
        for client in &mut self.clients {
            if client.state == State::Open {
                client.open_at_start = true;
                client.window = Some(Window::of_member(None, client.leave_ns));
            }
        }
    }

    /// Receivers whose time to leave came close with 1000 and wait for the server's close
    /// (RFC 6455 §7.1.2); returns when the next one leaves.
    fn leave_due(&mut self, now: u64) -> Option<u64> {
        let schedule = self.schedule?;
        while let Some(&(leave_ns, index)) = self.leave_order.get(self.next_to_leave) {
            let due = schedule.start_ns + leave_ns;
            if due > now {
                return Some(due);
            }
            self.next_to_leave += 1;
            if self.clients[index].state == State::Open && !self.plan.raw {
                self.clients[index].queue_close(CloseCode::NORMAL);
                self.connections[index].closing_since_ns = now.max(1);
                self.flush(index);
            } else if self.clients[index].state == State::Open {
                // Raw TCP has no closing handshake: the receiver just goes.
                self.connections[index].closing_since_ns = now.max(1);
                self.lose(index, "left".to_owned());
            } else if self.clients[index].state != State::Closed {
                // Its connect took longer than its whole membership: a failure, not a member.
                self.fail(index, "still connecting when due to leave".to_owned());
            }
        }
        None
    }

    /// Sends every probe that is due; returns when the next one is due.
    fn send_due(&mut self, now: u64) -> Option<u64> {
        let schedule = self.schedule?;
        if !self.plan.kind.sends() {
            return None;
        }
        let halt_ns = self.shared.halt_ns.load(Ordering::Relaxed);
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
                if intended_ns >= halt_ns {
                    break;
                }
                if intended_ns > now {
                    next_due = Some(next_due.map_or(intended_ns, |due| due.min(intended_ns)));
                    break;
                }
                let probe = Probe {
                    run: self.plan.run_id,
                    sender,
                    sequence: client.next_k,
                    intended_ns: intended_ns - schedule.start_ns,
                };
                let message_len = client.queue_probe(
                    &probe,
                    self.plan.payload,
                    self.plan.binary,
                    self.plan.raw,
                    &mut self.codec,
                );
                self.measurements.payload_bytes_sent += message_len as u64;
                client.next_k += 1;
                queued = true;
                let lag_us = now.saturating_sub(intended_ns) / 1000;
                self.measurements.send_lag.saturating_record(lag_us.max(1));
                *self.measurements.sent_by_sender.entry(sender).or_default() += 1;
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
            self.measurements.received - self.published_received,
            Ordering::Relaxed,
        );
        self.published_received = self.measurements.received;
        if let Some(fresh) = self.measurements.take_progress() {
            if let Ok(mut shared) = self.shared.progress.lock() {
                let _ = shared.add(&fresh);
            }
        }
    }

    fn on_writable(&mut self, index: usize) {
        if let State::Connecting { .. } = self.clients[index].state {
            let Some(stream) = self.connections[index].stream.as_mut() else {
                return;
            };
            if stream.tls.is_some() {
                // The TLS handshake is under way: send what it has to say.
                if let Err(error) = stream.flush_tls() {
                    self.fail(index, format!("tls: {}", describe(&error)));
                }
                return;
            }
            let socket = &stream.socket;
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
            let now = self.shared.clock.now_ns();
            let target = &self.plan.targets[self.clients[index].target];
            if let (Some(config), Some(name)) = (&self.plan.tls, &target.server_name) {
                self.connections[index].tcp_connected_ns = now;
                let stream = self.connections[index].stream.as_mut().expect("checked");
                let started = stream
                    .start_tls(config.clone(), name.clone())
                    .and_then(|()| stream.flush_tls());
                if let Err(error) = started {
                    self.fail(index, format!("tls: {}", describe(&error)));
                }
                return;
            }
            self.open_transport(index, now);
            return;
        }
        self.flush(index);
    }

    /// The transport (TCP, and TLS if any) is up: the client starts its handshake.
    fn open_transport(&mut self, index: usize, now: u64) {
        let judge = self.judge();
        let client = &mut self.clients[index];
        client.handle_connected(&self.plan, now, &judge, &mut self.measurements);
        if client.state == State::Open {
            self.shared.connected.fetch_add(1, Ordering::Relaxed);
        }
        self.flush(index);
    }

    /// Writes what the client queued; keeps `WRITABLE` interest only while some is left.
    fn flush(&mut self, index: usize) {
        let client = &mut self.clients[index];
        let connection = &mut self.connections[index];
        let Some(stream) = connection.stream.as_mut() else {
            let len = client.outgoing().len();
            client.consume_outgoing(len);
            return;
        };
        let mut written = 0;
        let outgoing = client.outgoing();
        let mut failure = None;
        while written < outgoing.len() {
            match stream.write(&outgoing[written..]) {
                Ok(0) => break,
                Ok(count) => written += count,
                Err(error) if error.kind() == io::ErrorKind::Interrupted => continue,
                Err(error) => {
                    failure = Some(error);
                    break;
                }
            }
        }
        client.consume_outgoing(written);
        self.measurements.wire_bytes_sent += written as u64;
        let tls_flushed = match stream.flush_tls() {
            Ok(all) => all,
            Err(error) => {
                failure.get_or_insert(error);
                false
            }
        };
        if let Some(error) = failure {
            self.lose(index, format!("write: {}", describe(&error)));
            return;
        }
        let want_writable = !client.outgoing().is_empty() || !tls_flushed;
        if want_writable != connection.writable_registered {
            let interest = if want_writable {
                Interest::READABLE | Interest::WRITABLE
            } else {
                Interest::READABLE
            };
            let _ = self
                .poll
                .registry()
                .reregister(&mut stream.socket, Token(index), interest);
            connection.writable_registered = want_writable;
        }
    }

    /// Reads until `WouldBlock`, or until a short read when `may_stop_short` (see the server's
    /// `on_readable` for why that is safe, and why not when the peer closed its side).
    fn on_readable(&mut self, index: usize, may_stop_short: bool) {
        loop {
            let state = self.clients[index].state;
            let Some(stream) = self.connections[index].stream.as_mut() else {
                return;
            };
            match state {
                State::Waiting | State::Closed => return,
                State::Connecting { .. } if stream.tls.is_none() => {
                    // A refused connect shows up as readable with an error.
                    if let Ok(Some(error)) | Err(error) = stream.socket.take_error() {
                        self.fail(index, format!("connect: {}", describe(&error)));
                    }
                    return;
                }
                State::Connecting { .. } => {
                    self.continue_tls_handshake(index);
                    return;
                }
                State::Handshaking { .. } | State::Open => {}
            }
            // Read after the room the kept bytes need; they go in front once something came.
            let kept = self.clients[index].pending_len();
            match stream.read(&mut self.read_buffer[kept..]) {
                Ok(0) => {
                    let reason = if matches!(state, State::Handshaking { .. }) {
                        "handshake: server closed the connection"
                    } else {
                        "server closed the tcp connection"
                    };
                    self.lose(index, reason.to_owned());
                    return;
                }
                Ok(read) => {
                    self.measurements.wire_bytes_received += read as u64;
                    let now = stream.arrival_ns(|| self.shared.clock.now_ns());
                    self.clients[index].take_pending(&mut self.read_buffer[..kept]);
                    let len = kept + read;
                    let short = len < self.read_buffer.len();
                    if !self.on_bytes(index, len, now) || (may_stop_short && short) {
                        return;
                    }
                }
                Err(error) if error.kind() == io::ErrorKind::WouldBlock => {
                    // TLS may have records to answer (key updates, alerts).
                    let flushed = self.connections[index]
                        .stream
                        .as_mut()
                        .map(Stream::flush_tls);
                    if let Some(Err(error)) = flushed {
                        self.lose(index, format!("write: {}", describe(&error)));
                    }
                    return;
                }
                Err(error) if error.kind() == io::ErrorKind::Interrupted => continue,
                Err(error) => {
                    self.lose(index, format!("read: {}", describe(&error)));
                    return;
                }
            }
        }
    }

    /// Feeds the TLS handshake what arrived; when it completes, the WebSocket handshake starts.
    fn continue_tls_handshake(&mut self, index: usize) {
        let Some(stream) = self.connections[index].stream.as_mut() else {
            return;
        };
        let result = match stream.read(&mut self.read_buffer) {
            Ok(0) => Err("tls: server closed the connection".to_owned()),
            Ok(_) => Err("tls: data before the handshake finished".to_owned()),
            Err(error) if error.kind() == io::ErrorKind::WouldBlock => Ok(()),
            Err(error) => Err(format!(
                "tls: {}",
                describe(&error).trim_start_matches("tls: ")
            )),
        };
        let result = result.and_then(|()| {
            stream
                .flush_tls()
                .map_err(|error| format!("tls: {}", describe(&error)))
        });
        if let Err(reason) = result {
            self.fail(index, reason);
            return;
        }
        if !stream.is_tls_handshaking() {
            let now = self.shared.clock.now_ns();
            let took_us =
                (now.saturating_sub(self.connections[index].tcp_connected_ns) / 1000).max(1);
            self.measurements.tls_handshake.saturating_record(took_us);
            self.open_transport(index, now);
        }
    }

    /// Hands `len` bytes of the read buffer to the client; returns whether it is still there.
    fn on_bytes(&mut self, index: usize, len: usize, now: u64) -> bool {
        let judge = self.judge();
        let client = &mut self.clients[index];
        let was_handshaking = matches!(client.state, State::Handshaking { .. });
        let result = client.handle_input(
            &mut self.read_buffer[..len],
            now,
            &self.plan,
            &judge,
            &mut self.measurements,
            &mut self.codec,
        );
        if was_handshaking && client.state == State::Open {
            self.shared.connected.fetch_add(1, Ordering::Relaxed);
        }
        self.flush(index);
        match result {
            Ok(()) => true,
            Err(ending) => {
                self.lose(index, ending.reason);
                false
            }
        }
    }

    /// What deliveries are judged against right now.
    fn judge(&self) -> Judge {
        Judge {
            schedule: self.schedule,
            echo: self.plan.kind == RunKind::Echo,
            run_id: self.plan.run_id,
            rooms: self.plan.rooms,
            expect_self: self.plan.expect_self,
        }
    }

    /// Marks a client closed and lets go of its socket and buffers.
    fn close_client(&mut self, index: usize) {
        self.clients[index].close();
        if let Some(mut stream) = self.connections[index].stream.take() {
            let _ = self.poll.registry().deregister(&mut stream.socket);
        }
    }

    /// A client that never opened.
    fn fail(&mut self, index: usize, reason: String) {
        if self.clients[index].state == State::Closed {
            return;
        }
        self.close_client(index);
        let target = self.clients[index].target;
        if let Some(per_target) = self.measurements.per_target.get_mut(target) {
            per_target.failed += 1;
        }
        *self.measurements.failures.entry(reason).or_default() += 1;
        self.shared.failed.fetch_add(1, Ordering::Relaxed);
    }

    /// A client that was open and is gone (or one still connecting, which then failed).
    fn lose(&mut self, index: usize, reason: String) {
        if self.clients[index].state != State::Open {
            self.fail(index, reason);
            return;
        }
        self.close_client(index);
        if self.connections[index].closing_since_ns != 0 {
            // It left as planned: the server's close (or no answer) ends it, not a loss.
            self.connections[index].closing_since_ns = 0;
            self.measurements.left += 1;
            self.shared.left.fetch_add(1, Ordering::Relaxed);
            return;
        }
        if !self.shared.stop.load(Ordering::Relaxed) {
            let target = self.clients[index].target;
            if let Some(per_target) = self.measurements.per_target.get_mut(target) {
                per_target.disconnected += 1;
            }
            *self.measurements.disconnects.entry(reason).or_default() += 1;
            self.shared.disconnected.fetch_add(1, Ordering::Relaxed);
        }
    }

    fn finish(mut self) -> Measurements {
        self.publish_progress();
        for index in 0..self.clients.len() {
            if self.connections[index].closing_since_ns != 0 {
                // Left as planned; the server's close had not come yet.
                self.measurements.left += 1;
                continue;
            }
            if self.clients[index].state == State::Open {
                self.measurements.open_at_end += 1;
                if !self.plan.raw {
                    self.clients[index].queue_close(CloseCode::NORMAL);
                    self.flush(index);
                }
            }
        }
        let mut measurements = self.measurements;
        measurements.receivers = self
            .clients
            .into_iter()
            .map(|client| ReceiverRecord {
                client: client.id,
                identity: client.identity(),
                counts: client.book.counts(),
            })
            .collect();
        measurements
    }
}
