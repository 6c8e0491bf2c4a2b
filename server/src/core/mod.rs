//! The server's core: every connection's protocol state, the rooms, the write queues, the
//! timers and every policy, with no socket and no clock. In the manner of quinn-proto, it is
//! driven by calls and answers with outputs.
//!
//! The shell (`event_loop.rs`) calls, in each turn of its loop:
//!
//! 1. [`Core::handle_timeout`] with the time, once, before anything else;
//! 2. for each readiness event: [`Core::handle_accept`] for a new socket (its key is the
//!    socket's token), [`Core::take_pending`] then [`Core::handle_read`] for bytes read,
//!    [`Core::handle_eof`] for the end of a peer's stream, [`Core::handle_writable`],
//!    [`Core::handle_error`];
//! 3. [`Core::flush_next`] once, at the end of the turn: the queues of the next few
//!    connections in the flush queue are written, each with one vectored write of all its
//!    frames (corking); the rest wait for the next turns, so that new messages are read
//!    between slices of a long pass instead of after it;
//! 4. [`Core::poll_output`] after every call, until `None`, carrying out what it says (watch for
//!    writability, shut down writing, close a socket). Keys are reused, so outputs are carried
//!    out before the next accept.
//!
//! It then sleeps until [`Core::poll_timeout`]. [`Core::handle_shutdown`] starts a graceful
//! shutdown; [`Core::is_finished`] says when the shell may exit.
//!
//! Time is [`Millis`] since the shell started, passed in. Nothing here imports `mio` or
//! `std::net`; the simulation tests (`tests.rs`) and the fuzz target drive it with in-memory
//! sockets on virtual time.

mod bus;
mod clock;
mod config;
mod connection;
mod metrics;
mod rate_limit;
mod room;
mod routes;
mod write_queue;

#[cfg(test)]
mod tests;

use std::collections::VecDeque;
use std::fmt::Write as _;
use std::io::{self, IoSlice, Write};
use std::rc::Rc;
use std::time::Duration;

use log::debug;
use protocol::close::{encode_payload, CloseCode};
use protocol::deflate::{Deflater, Inflater};
use protocol::frame::{OpCode, Role};
use protocol::http::{parse_request, Limits};
use protocol::message::{Decoder, Event, Incoming};
use protocol::{Error, Status};
use slab::Slab;

pub use bus::{BusConfig, BusMetrics, BusOutput, Link};
pub use clock::{Millis, Tick, MAX_DURATION, TICK};
pub use config::{Config, Mode, RateLimitPolicy, SlowConsumer};
pub use connection::{Connection, Flags, Phase};
pub use metrics::{Gauges, Metrics, ProcessStats};
pub use rate_limit::RateLimit;
pub use room::{HistoryLimits, Rooms, Seat};
pub use routes::target_path;
pub use write_queue::{frame_once, Flushed, WriteQueue};

use crate::logging::push_json_string;
use rate_limit::TokenBucket;
use routes::{route, write_answer, Context, Decision};

/// Timers (handshake, heartbeat, idle, close, message, slow consumers) are checked this often.
pub const SWEEP_EVERY: Duration = Duration::from_millis(100);
/// The longest a graceful shutdown waits for clients to answer our close.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(3);
/// Sockets of the metrics port that may be in their handshake at once.
const MAX_METRICS_HANDSHAKES: usize = 64;
/// Rooms listed at most by `GET /rooms`.
const MAX_ROOMS_LISTED: usize = 1000;

/// What the shell must do for the core. Carry these out in order, before the next accept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Output {
    /// Watch the socket for writability (`on`), or stop watching.
    Writable {
        /// The socket's key.
        key: usize,
        /// Whether to watch.
        on: bool,
    },
    /// Everything we had to send is sent: shut down the write side (a FIN), keep reading.
    ShutdownWrite(usize),
    /// Close the socket and forget the key; the core has forgotten it already.
    Close(usize),
}

/// Where an accepted socket came in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Accepted {
    /// On the `--metrics-listen` port: only `/metrics` and `/healthz` are served there.
    pub metrics_port: bool,
    /// From a `--trusted-proxy` address: its `X-Forwarded-For` names the client.
    pub trusted_proxy: bool,
}

/// What a decoder event asks of the core, decided while the event still borrows the read
/// buffer, carried out once it does not.
enum Action {
    Nothing,
    Relay(Rc<[u8]>),
    Reply(Rc<[u8]>),
    PeerClosed(CloseCode),
    Fail(Error),
    Limited,
    OverBudget,
}

/// The server's state. See the [module docs](self) for the order of calls.
pub struct Core {
    config: Config,
    connections: Slab<Connection>,
    rooms: Rooms,
    metrics: Metrics,
    /// Connections with frames queued since their last write, in the order they got them.
    flush_queue: VecDeque<usize>,
    /// Connections found too slow during a broadcast, closed after it.
    too_slow: Vec<usize>,
    outputs: VecDeque<Output>,
    welcome: Option<Rc<[u8]>>,
    now: Millis,
    next_sweep: Millis,
    shutdown_deadline: Option<Millis>,
    /// WebSocket connections open or closing (what `--max-connections` limits).
    websockets: usize,
    /// Sockets of the main port still in their HTTP head (what `--max-handshakes` limits).
    handshakes: usize,
    /// Sockets of the metrics port still in their HTTP head.
    metrics_handshakes: usize,
    /// Bytes held for messages and heads in progress, all connections, except the one being
    /// read right now (it is counted again when its read is done).
    assembly_bytes: usize,
    /// The connection whose bytes are being handled, if any.
    reading: Option<usize>,
    next_id: u64,
    /// The one inflater: every peer compresses without context takeover, so messages from any
    /// connection inflate with it, reset each time (RFC 7692 §7.2.2).
    inflater: Inflater,
    /// Where a compressed message is inflated.
    inflated: Vec<u8>,
    /// Deflaters by window (bits 8 to 15), made when a peer with that window first needs one:
    /// each broadcast is compressed once per window in use (almost always just 15).
    deflaters: [Option<Deflater>; 8],
    /// Set when a data message completes during a read, so a message that begins right after
    /// gets its own deadline.
    message_completed: bool,
    /// Reads the process's figures for `/metrics` (the shell's; the core reads no system).
    process_stats: Option<Box<dyn FnMut() -> ProcessStats>>,
    /// The Redis pub/sub bus, when `--redis` is given (see `bus.rs`).
    bus: Option<Box<bus::Bus>>,
}

impl Core {
    /// A core with no connections, its clock at zero.
    pub fn new(config: Config) -> Self {
        let history = config.history;
        let welcome = config
            .welcome
            .as_deref()
            .map(|text| frame_once(OpCode::Text, text.as_bytes()));
        Core {
            config,
            connections: Slab::new(),
            rooms: Rooms::with_history(history),
            metrics: Metrics::default(),
            flush_queue: VecDeque::new(),
            too_slow: Vec::new(),
            outputs: VecDeque::new(),
            welcome,
            now: Millis(0),
            next_sweep: Millis(0).after(SWEEP_EVERY),
            shutdown_deadline: None,
            websockets: 0,
            handshakes: 0,
            metrics_handshakes: 0,
            assembly_bytes: 0,
            reading: None,
            next_id: 1,
            inflater: Inflater::new(),
            inflated: Vec::new(),
            deflaters: Default::default(),
            message_completed: false,
            process_stats: None,
            bus: None,
        }
    }

    // --- inputs ---

    /// A socket was accepted. Returns its key (the shell's token for it), or `None` when it
    /// must be closed at once: too many sockets are in their handshake, or we are shutting down.
    pub fn handle_accept(&mut self, now: Millis, accepted: Accepted) -> Option<usize> {
        self.now = now;
        if self.shutdown_deadline.is_some() {
            return None;
        }
        self.metrics.connections_accepted += 1;
        // The metrics port has a small budget of its own, so an operator can still look while
        // silent sockets hold every handshake slot of the main port.
        let (in_handshake, limit) = if accepted.metrics_port {
            (self.metrics_handshakes, MAX_METRICS_HANDSHAKES)
        } else {
            (self.handshakes, self.config.max_handshakes)
        };
        if in_handshake >= limit {
            self.metrics.handshake_limit_refusals += 1;
            return None;
        }
        let tick = now.tick();
        let id = self.next_id;
        self.next_id += 1;
        let mut connection = Connection::new(
            id,
            Decoder::new(Role::Server, self.config.max_message_size),
            TokenBucket::new(self.config.rate_limit, now),
            tick,
            tick.after(self.config.handshake_timeout),
        );
        connection
            .flags
            .set(Flags::METRICS_PORT, accepted.metrics_port);
        connection
            .flags
            .set(Flags::FROM_TRUSTED_PROXY, accepted.trusted_proxy);
        if accepted.metrics_port {
            self.metrics_handshakes += 1;
        } else {
            self.handshakes += 1;
        }
        Some(self.connections.insert(connection))
    }

    /// The id of a connection, unique for the life of the process (keys are reused).
    pub fn connection_id(&self, key: usize) -> Option<u64> {
        self.connections.get(key).map(|connection| connection.id)
    }

    /// Whether a connection is there and wants more read (its peer has not finished sending).
    pub fn wants_read(&self, key: usize) -> bool {
        self.connections
            .get(key)
            .is_some_and(|connection| !connection.flags.has(Flags::PEER_DONE))
    }

    /// Copies the bytes a connection kept from its last read (a cut head or frame header) to
    /// the front of `buffer` and returns how many; read new bytes after them. `None` when the
    /// connection is gone or wants nothing more read (its peer finished sending).
    pub fn take_pending(&mut self, key: usize, buffer: &mut [u8]) -> Option<usize> {
        if !self.wants_read(key) {
            return None;
        }
        let connection = self.connections.get(key)?;
        let kept = connection.pending.as_slice();
        buffer[..kept.len()].copy_from_slice(kept);
        Some(kept.len())
    }

    /// Bytes arrived: `buffer[..kept]` are the kept bytes [`Core::take_pending`] put there,
    /// the rest is new. Decodes them, answers, broadcasts. The buffer is scratch space (frames
    /// are unmasked in place).
    pub fn handle_read(&mut self, key: usize, buffer: &mut [u8], kept: usize, now: Millis) {
        self.now = now;
        let Some(connection) = self.connections.get_mut(key) else {
            return;
        };
        let tick = now.tick();
        self.metrics.bytes_read += (buffer.len() - kept) as u64;
        if tick.since(connection.last_heard) >= clock::ticks(rate_limit::QUIET_RESET) {
            connection.bucket = TokenBucket::new(self.config.rate_limit, now);
        }
        connection.bucket.refill(self.config.rate_limit, now);
        connection.last_heard = tick;
        connection.flags.set(Flags::PING_OUTSTANDING, false);
        let phase = connection.phase;
        let was_idle = connection.decoder.is_idle();
        self.assembly_bytes -= connection.assembly_bytes();
        self.reading = Some(key);
        self.message_completed = false;
        match phase {
            Phase::Handshake => self.on_head_bytes(key, buffer),
            Phase::Open | Phase::Closing => self.on_frame_bytes(key, buffer, 0),
            Phase::Draining => {} // thrown away, see Phase::Draining
        }
        self.reading = None;
        if let Some(connection) = self.connections.get_mut(key) {
            self.assembly_bytes += connection.assembly_bytes();
            // A message in progress that began in this read (after an idle decoder, or after a
            // message that completed in this read) gets the full message timeout.
            if connection.phase == Phase::Open
                && !connection.decoder.is_idle()
                && (was_idle || self.message_completed)
            {
                connection.deadline = tick.after(self.config.message_timeout);
            }
        }
        self.close_slow_consumers();
    }

    /// The peer finished sending (a read returned 0). What it asked for is still answered:
    /// the connection is closed once its queue is flushed (or at the close deadline).
    pub fn handle_eof(&mut self, key: usize, now: Millis) {
        self.now = now;
        let Some(connection) = self.connections.get_mut(key) else {
            return;
        };
        connection.flags.set(Flags::PEER_DONE, true);
        debug!(
            "connection #{}: peer finished sending ({:?})",
            connection.id, connection.phase
        );
        match connection.phase {
            Phase::Handshake => {
                // A head that never completed: nothing to answer.
                self.close(key);
            }
            Phase::Open => {
                // No close frame came: an abnormal closure (RFC 6455 §7.1.5, 1006). Send
                // what is queued, then close; no more broadcasts.
                self.finish(key, None);
            }
            Phase::Closing => self.finish(key, None),
            Phase::Draining => self.close_if_done(key),
        }
    }

    /// A read or write on the socket failed: close it now.
    pub fn handle_error(&mut self, key: usize) {
        self.close(key);
    }

    /// The socket can take more bytes: its queue is written when its turn in the flush queue
    /// comes.
    pub fn handle_writable(&mut self, key: usize) {
        if let Some(connection) = self.connections.get_mut(key) {
            mark_for_flush(connection, key, &mut self.flush_queue);
        }
    }

    /// The time passed: runs the timers when they are due.
    pub fn handle_timeout(&mut self, now: Millis) {
        self.now = now;
        if now >= self.next_sweep {
            self.sweep_timers();
            self.next_sweep = now.after(SWEEP_EVERY);
        }
        self.bus_timeout(now); // bus hook
    }

    /// When the shell should call [`Core::handle_timeout`] next.
    pub fn poll_timeout(&self) -> Millis {
        let timeout = match self.shutdown_deadline {
            Some(deadline) => deadline.min(self.next_sweep),
            None => self.next_sweep,
        };
        // bus hook: its retry and connect timers.
        self.bus_poll_timeout()
            .map_or(timeout, |bus| bus.min(timeout))
    }

    /// Starts a graceful shutdown: every open WebSocket gets a close with 1001, sockets in
    /// their handshake are closed, no more accepts.
    pub fn handle_shutdown(&mut self, now: Millis) {
        self.now = now;
        if self.shutdown_deadline.is_some() {
            return;
        }
        let grace = self.config.close_timeout.min(SHUTDOWN_GRACE);
        self.shutdown_deadline = Some(now.after(grace));
        let keys: Vec<usize> = self.connections.iter().map(|(key, _)| key).collect();
        for key in keys {
            match self.connections[key].phase {
                Phase::Open => self.start_close(key, CloseCode::GOING_AWAY, "server shutting down"),
                Phase::Handshake => self.close(key),
                Phase::Closing | Phase::Draining => {}
            }
        }
    }

    /// Whether a shutdown is done: every connection gone, or the grace period over.
    pub fn is_finished(&self) -> bool {
        self.shutdown_deadline
            .is_some_and(|deadline| self.connections.is_empty() || self.now >= deadline)
    }

    /// Whether a shutdown has started.
    pub fn is_shutting_down(&self) -> bool {
        self.shutdown_deadline.is_some()
    }

    /// Where the `process_*` lines of `/metrics` come from: called when `/metrics` is asked.
    pub fn set_process_stats_source(&mut self, source: Box<dyn FnMut() -> ProcessStats>) {
        self.process_stats = Some(source);
    }

    /// A TLS session failed (bad records, a plain request on the TLS port): counted.
    pub fn note_tls_failure(&mut self) {
        self.metrics.tls_failures += 1;
    }

    /// The shell could not accept for lack of file descriptors (counted in `/metrics`).
    pub fn note_accept_fd_exhausted(&mut self) {
        self.metrics.accept_fd_exhausted += 1;
    }

    /// Writes every queue that has grown since it was last written: one `write` call per
    /// connection with all its frames (corking). `write(key, slices)` is the shell's vectored
    /// write to that key's socket; it returns what the socket took, `WouldBlock` when it takes
    /// nothing. The same as [`Core::flush_next`] with no limit.
    pub fn flush(&mut self, write: impl FnMut(usize, &[IoSlice<'_>]) -> io::Result<usize>) {
        self.flush_next(usize::MAX, write);
    }

    /// Writes the queues of at most `limit` connections, the ones waiting longest first: the
    /// shell's flush pass, a slice per turn, so that a message read while a pass is under way
    /// joins the queues of the connections not yet written and leaves with the frames already
    /// there, instead of waiting for the pass to end. Each connection still gets one `write`
    /// call with everything queued for it; one that grows after its write waits at the back.
    /// Returns how many entries of the flush queue were taken (see [`Core::flush_queue_len`]).
    pub fn flush_next(
        &mut self,
        limit: usize,
        mut write: impl FnMut(usize, &[IoSlice<'_>]) -> io::Result<usize>,
    ) -> usize {
        // Only what is queued now: a connection queued again during this call waits its turn.
        let taken = self.flush_queue.len().min(limit);
        for _ in 0..taken {
            let Some(key) = self.flush_queue.pop_front() else {
                break;
            };
            let Some(connection) = self.connections.get_mut(key) else {
                continue;
            };
            // Not scheduled: the entry of a connection that closed, its key since reused.
            if !connection.flags.has(Flags::FLUSH_SCHEDULED) {
                continue;
            }
            connection.flags.set(Flags::FLUSH_SCHEDULED, false);
            if connection.flags.has(Flags::WRITE_SHUT) {
                continue;
            }
            let mut socket = KeyedWriter {
                key,
                write: &mut write,
            };
            match connection.write_queue.flush(&mut socket) {
                Ok(flushed) => {
                    self.metrics.bytes_written += flushed.bytes as u64;
                    self.metrics.write_calls += flushed.write_calls as u64;
                }
                Err(error) => {
                    debug!("connection #{}: write: {error}", connection.id);
                    self.close(key);
                    continue;
                }
            }
            self.after_flush(key);
        }
        self.close_slow_consumers();
        taken
    }

    /// Entries in the flush queue: connections waiting for their write (and, until their turn
    /// comes, the entries of connections that closed meanwhile).
    pub fn flush_queue_len(&self) -> usize {
        self.flush_queue.len()
    }

    /// The next thing the shell must do, in order.
    pub fn poll_output(&mut self) -> Option<Output> {
        self.outputs.pop_front()
    }

    // --- what the tests, the fuzzer and /metrics look at ---

    /// The counters.
    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// A connection's state.
    pub fn connection(&self, key: usize) -> Option<&Connection> {
        self.connections.get(key)
    }

    /// How many sockets the core knows.
    pub fn connection_count(&self) -> usize {
        self.connections.len()
    }

    /// The rooms.
    pub fn rooms(&self) -> &Rooms {
        &self.rooms
    }

    /// The configuration.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Bytes held for messages and heads in progress, all connections.
    pub fn assembly_bytes(&self) -> usize {
        self.assembly_bytes
    }

    /// Checks the core's invariants, for tests and the fuzzer: every seat matches its room's
    /// member list, the counts match the phases, the assembly budget is kept, no queue is
    /// over its hard cap plus one message, nothing is queued after both close frames.
    pub fn check_invariants(&self) -> Result<(), String> {
        let mut websockets = 0;
        let mut handshakes = 0;
        let mut metrics_handshakes = 0;
        let mut assembly = 0;
        let mut seated = 0;
        for (key, connection) in self.connections.iter() {
            match connection.phase {
                Phase::Handshake if connection.flags.has(Flags::METRICS_PORT) => {
                    metrics_handshakes += 1
                }
                Phase::Handshake => handshakes += 1,
                Phase::Open | Phase::Closing => websockets += 1,
                Phase::Draining => {}
            }
            assembly += connection.assembly_bytes();
            if let Some(seat) = connection.seat.get() {
                seated += 1;
                if connection.phase != Phase::Open {
                    return Err(format!(
                        "connection {key} is {:?} but in a room",
                        connection.phase
                    ));
                }
                if self.rooms.members(seat.room).get(seat.index as usize) != Some(&(key as u32)) {
                    return Err(format!("connection {key}'s seat {seat:?} is not its own"));
                }
            }
            let cap = self.config.hard_queue_cap() + self.config.max_message_size + 16;
            if connection.write_queue.queued_bytes() > cap
                && !connection.flags.has(Flags::FLUSH_SCHEDULED)
            {
                return Err(format!(
                    "connection {key} holds {} queued bytes after a flush, over {cap}",
                    connection.write_queue.queued_bytes()
                ));
            }
            if connection.decoder.close_state() == protocol::message::CloseState::Closed
                && connection.phase != Phase::Draining
            {
                return Err(format!(
                    "connection {key} closed both ways but {:?}",
                    connection.phase
                ));
            }
        }
        let members: usize = self.rooms.counts().map(|(_, count)| count).sum();
        if members != seated {
            return Err(format!(
                "{members} room members but {seated} seated connections"
            ));
        }
        if websockets != self.websockets
            || handshakes != self.handshakes
            || metrics_handshakes != self.metrics_handshakes
        {
            return Err(format!(
                "counted {} websockets and {} handshakes, found {websockets} and {handshakes}",
                self.websockets, self.handshakes
            ));
        }
        if self.reading.is_none() && assembly != self.assembly_bytes {
            return Err(format!(
                "assembly bytes counted {} but held {assembly}",
                self.assembly_bytes
            ));
        }
        Ok(())
    }

    // --- bytes to requests ---

    fn on_head_bytes(&mut self, key: usize, buffer: &mut [u8]) {
        let limits = Limits {
            max_head_len: self.config.max_request_size,
            max_headers: 100,
        };
        let context = Context {
            metrics_port: self.connections[key].flags.has(Flags::METRICS_PORT),
            open_websockets: self.websockets,
        };
        let (head_len, decision, forwarded_for) = match parse_request(buffer, limits) {
            Ok(Status::Partial) => {
                let connection = &mut self.connections[key];
                if self.assembly_bytes + buffer.len() > self.config.max_assembly_bytes {
                    self.metrics.assembly_budget_closes += 1;
                    debug!(
                        "connection #{}: head over the assembly budget",
                        connection.id
                    );
                    self.refuse_head(key, 503, "the server is holding too many request heads");
                } else {
                    connection.pending.set(buffer);
                }
                return;
            }
            Ok(Status::Complete(request)) => {
                let forwarded_for = if self.connections[key].flags.has(Flags::FROM_TRUSTED_PROXY) {
                    request
                        .headers
                        .get_str("x-forwarded-for")
                        .map(|value| value.split(',').next().unwrap_or("").trim().to_owned())
                } else {
                    None
                };
                (
                    request.head_len,
                    route(&request, &self.config, context),
                    forwarded_for,
                )
            }
            Err(error) => {
                let status = error.http_status().unwrap_or(400);
                self.refuse_head(key, status, &error.to_string());
                return;
            }
        };
        self.leave_handshake(key);
        let connection = &mut self.connections[key];
        connection.pending.set(&[]);
        let id = connection.id;
        match decision {
            Decision::Upgrade {
                room,
                response,
                deflate_window_bits,
            } => {
                self.metrics.handshakes_completed += 1;
                self.websockets += 1;
                connection.phase = Phase::Open;
                if let Some(bits) = deflate_window_bits {
                    self.metrics.deflate_negotiated += 1;
                    connection.deflate_window_bits = bits;
                    let decoder =
                        std::mem::replace(&mut connection.decoder, Decoder::new(Role::Server, 0));
                    connection.decoder = decoder.with_deflate(true);
                }
                connection.deadline = self.now.tick();
                connection.write_queue.push(response.into());
                if let Some(welcome) = &self.welcome {
                    connection.write_queue.push(welcome.clone());
                }
                if self.config.mode == Mode::Chat {
                    let joined = self.rooms.join(&room, key);
                    connection.seat = joined.seat;
                    // What was said lately, before anything live: the shared frames themselves.
                    for frame in self.rooms.history(joined.seat.room) {
                        connection.write_queue.push(frame.clone());
                        self.metrics.history_frames_sent += 1;
                    }
                    if self.config.presence {
                        self.announce(joined.seat.room, "join");
                    }
                }
                let connection = &mut self.connections[key];
                match forwarded_for {
                    Some(client) => debug!("connection #{id}: websocket open in room {room} (client {client}, via a trusted proxy)"),
                    None => debug!("connection #{id}: websocket open in room {room}"),
                }
                mark_for_flush(connection, key, &mut self.flush_queue);
                if let Some(seat) = self.connections[key].seat.get() {
                    self.bus_room_joined(seat); // bus hook: first local member subscribes
                }
                if head_len < buffer.len() {
                    // Frames sent right behind the handshake, in the same read.
                    self.on_frame_bytes(key, buffer, head_len);
                }
            }
            Decision::Respond {
                status,
                response,
                refuses_upgrade,
            } => {
                let counter = if refuses_upgrade {
                    &mut self.metrics.handshakes_refused
                } else {
                    &mut self.metrics.http_responses
                };
                *counter.entry(status).or_default() += 1;
                debug!("connection #{id}: answered {status}");
                self.finish(key, Some(response.into()));
            }
            Decision::Metrics { head_only } => {
                let process = self.process_stats.as_mut().map(|source| source());
                let mut body = self.metrics.render(self.gauges(), process);
                self.render_bus_metrics(&mut body); // bus hook
                self.answer_ok(key, "text/plain; version=0.0.4", body.as_bytes(), head_only);
            }
            Decision::Rooms { head_only } => {
                let body = self.rooms_json();
                self.answer_ok(key, "application/json", body.as_bytes(), head_only);
            }
        }
    }

    /// Answers 200 with a body the core made (counters, rooms), then closes.
    fn answer_ok(&mut self, key: usize, content_type: &str, body: &[u8], head_only: bool) {
        let mut response = Vec::new();
        write_answer(
            &mut response,
            200,
            &[("Cache-Control", "no-cache")],
            content_type,
            body,
            head_only,
        );
        *self.metrics.http_responses.entry(200).or_default() += 1;
        self.finish(key, Some(response.into()));
    }

    /// Answers a head that cannot be served with an error status, then closes.
    fn refuse_head(&mut self, key: usize, status: u16, why: &str) {
        let mut response = Vec::new();
        protocol::handshake::server::write_refusal(&mut response, status, why);
        *self.metrics.handshakes_refused.entry(status).or_default() += 1;
        self.leave_handshake(key);
        self.connections[key].pending.set(&[]);
        self.finish(key, Some(response.into()));
    }

    /// One socket fewer in its handshake, on the port it came in on.
    fn uncount_handshake(&mut self, key: usize) {
        if self.connections[key].flags.has(Flags::METRICS_PORT) {
            self.metrics_handshakes -= 1;
        } else {
            self.handshakes -= 1;
        }
    }

    fn leave_handshake(&mut self, key: usize) {
        if self.connections[key].phase == Phase::Handshake {
            self.uncount_handshake(key);
            // Draining until the answer is out; `finish` or the upgrade sets the phase.
            self.connections[key].phase = Phase::Draining;
        }
    }

    fn gauges(&self) -> Gauges {
        Gauges {
            open_sockets: self.connections.len(),
            websockets: self.websockets,
            handshakes: self.handshakes,
            rooms: self.rooms.len(),
            assembly_bytes: self.assembly_bytes,
            history_bytes: self.rooms.history_size().0,
            history_messages: self.rooms.history_size().1,
        }
    }

    /// `{"rooms":[{"name":"/","members":3},...],"total_rooms":N}`, sorted by name, capped.
    fn rooms_json(&self) -> String {
        let mut rooms: Vec<(&str, usize)> = self.rooms.counts().collect();
        rooms.sort_unstable();
        let mut out = String::from("{\"rooms\":[");
        for (index, (name, members)) in rooms.iter().take(MAX_ROOMS_LISTED).enumerate() {
            if index > 0 {
                out.push(',');
            }
            out.push_str("{\"name\":");
            push_json_string(&mut out, name);
            let _ = write!(out, ",\"members\":{members}}}");
        }
        let _ = writeln!(
            out,
            "],\"total_rooms\":{},\"listed\":{}}}",
            rooms.len(),
            rooms.len().min(MAX_ROOMS_LISTED)
        );
        out
    }

    // --- bytes to events ---

    fn on_frame_bytes(&mut self, key: usize, buffer: &mut [u8], mut start: usize) {
        let len = buffer.len();
        loop {
            let Some(connection) = self.connections.get_mut(key) else {
                return;
            };
            let open = match connection.phase {
                Phase::Open => true,
                Phase::Closing => false,
                _ => return,
            };
            let max_message_size = self.config.max_message_size;
            let action = match connection.decoder.decode_incoming(&mut buffer[start..len]) {
                Ok((consumed, incoming)) => {
                    start += consumed;
                    let event = match incoming {
                        Some(Incoming::Compressed(message)) => {
                            self.metrics.messages_inflated += 1;
                            match message.inflate(
                                &mut self.inflater,
                                max_message_size,
                                &mut self.inflated,
                            ) {
                                Ok(event) => Ok(Some(event)),
                                Err(error) => Err(error),
                            }
                        }
                        Some(Incoming::Event(event)) => Ok(Some(event)),
                        None => Ok(None),
                    };
                    match event {
                        Err(error) => Action::Fail(error),
                        Ok(None) => {
                            connection.pending.set(&buffer[start..len]);
                            if self.assembly_bytes + connection.assembly_bytes()
                                > self.config.max_assembly_bytes
                            {
                                Action::OverBudget
                            } else {
                                return;
                            }
                        }
                        Ok(Some(event)) => {
                            if event.data().is_some() {
                                self.message_completed = true;
                            }
                            decide(
                                event,
                                open,
                                &self.config,
                                &mut connection.bucket,
                                self.now,
                                &mut self.metrics,
                            )
                        }
                    }
                }
                Err(error) => Action::Fail(error),
            };
            match action {
                Action::Nothing => {}
                Action::Relay(frame) => match self.config.mode {
                    Mode::Chat => {
                        self.bus_publish(key, &frame); // bus hook: once, for the other nodes
                        self.broadcast(key, frame)
                    }
                    Mode::Echo => {
                        if self.enqueue(key, frame, true) {
                            self.metrics.frames_delivered += 1;
                        }
                    }
                },
                Action::Reply(frame) => {
                    self.enqueue(key, frame, false);
                }
                Action::PeerClosed(code) if open => {
                    debug!(
                        "connection #{}: closed by peer with {}, echoing it",
                        self.connections[key].id, code.0
                    );
                    self.finish(key, Some(close_frame(code, "")));
                    return;
                }
                Action::PeerClosed(code) => {
                    // The peer answered our close: both close frames have crossed (§7.1.2),
                    // nothing more is sent.
                    debug!(
                        "connection #{}: close handshake complete ({})",
                        self.connections[key].id, code.0
                    );
                    self.finish(key, None);
                    return;
                }
                Action::Limited => {
                    self.metrics.rate_limited_closes += 1;
                    let reason = format!(
                        "rate limit: more than {} messages per second",
                        self.config.rate_limit.rate
                    );
                    self.fail_logged(key, CloseCode::POLICY_VIOLATION, &reason);
                    return;
                }
                Action::OverBudget => {
                    self.metrics.assembly_budget_closes += 1;
                    self.fail_logged(
                        key,
                        CloseCode::MESSAGE_TOO_BIG,
                        "message too big for the server's free assembly memory",
                    );
                    return;
                }
                Action::Fail(error) => {
                    let code = error.close_code().unwrap_or(CloseCode::PROTOCOL_ERROR);
                    debug!(
                        "connection #{}: {error}, closing with {}",
                        self.connections[key].id, code.0
                    );
                    *self.metrics.protocol_errors.entry(code.0).or_default() += 1;
                    self.fail(key, code, &error.to_string());
                    return;
                }
            }
        }
    }

    // --- broadcast: frame once, share the bytes ---

    /// A chat message from `sender` to its room, kept in the room's history.
    fn broadcast(&mut self, sender: usize, frame: Rc<[u8]>) {
        let Some(seat) = self.connections[sender].seat.get() else {
            return;
        };
        let skip = (!self.config.echo_to_sender).then_some(sender);
        self.broadcast_to_room(seat.room, &frame, skip);
        self.rooms.record(seat.room, &frame);
    }

    /// Queues one frame for every member of a room (but `skip`): framed once, compressed at most
    /// once per deflate window, shared.
    fn broadcast_to_room(&mut self, room: u32, frame: &Rc<[u8]>, skip: Option<usize>) {
        let hard_cap = self.config.hard_queue_cap();
        let mut compressed = SharedFrames::new(frame, self.config.compression_threshold);
        for &member in self.rooms.members(room) {
            let member = member as usize;
            if skip == Some(member) {
                continue;
            }
            let connection = &mut self.connections[member];
            let frame = compressed.for_window(
                connection.deflate_window_bits,
                frame,
                &mut self.deflaters,
                &mut self.metrics,
            );
            let queued = offer(
                connection,
                member,
                frame,
                self.now,
                &self.config,
                hard_cap,
                &mut self.metrics,
                &mut self.too_slow,
                &mut self.flush_queue,
            );
            if queued {
                self.metrics.frames_delivered += 1;
            }
        }
    }

    /// Queues a frame for one connection under its caps; see [`offer`]. A data message
    /// (`compressible`) is compressed for a peer that negotiated permessage-deflate.
    fn enqueue(&mut self, key: usize, frame: Rc<[u8]>, compressible: bool) -> bool {
        let hard_cap = self.config.hard_queue_cap();
        let Some(connection) = self.connections.get_mut(key) else {
            return false;
        };
        let frame = if compressible {
            SharedFrames::new(&frame, self.config.compression_threshold).for_window(
                connection.deflate_window_bits,
                &frame,
                &mut self.deflaters,
                &mut self.metrics,
            )
        } else {
            frame
        };
        offer(
            connection,
            key,
            frame,
            self.now,
            &self.config,
            hard_cap,
            &mut self.metrics,
            &mut self.too_slow,
            &mut self.flush_queue,
        )
    }

    fn close_slow_consumers(&mut self) {
        while let Some(key) = self.too_slow.pop() {
            let Some(connection) = self.connections.get_mut(key) else {
                continue;
            };
            if !connection.phase.is_open() {
                continue;
            }
            self.metrics.slow_consumer_closes += 1;
            // What it could not read is dropped; a frame already begun is finished.
            connection.write_queue.discard_unstarted();
            debug!("connection #{}: too slow, closing with 1008", connection.id);
            self.start_close(
                key,
                CloseCode::POLICY_VIOLATION,
                "slow consumer: write queue not draining",
            );
        }
    }

    // --- after a flush ---

    fn after_flush(&mut self, key: usize) {
        let tick = self.now.tick();
        let connection = &mut self.connections[key];
        let queued = connection.write_queue.queued_bytes();
        // Judge a reader after trying to write to it, not by one pass's burst: a queue that
        // stays over the mark for the slow-consumer timeout, or passes the hard cap, is slow.
        if queued > self.config.max_queued_bytes {
            if !connection.flags.has(Flags::OVER_MARK) {
                connection.flags.set(Flags::OVER_MARK, true);
                connection.over_mark_since = tick.0 as u16;
            }
        } else {
            connection.flags.set(Flags::OVER_MARK, false);
        }
        if connection.write_queue.is_empty() {
            connection.write_queue.shrink_if_empty();
            if connection.flags.has(Flags::WANTS_WRITABLE) {
                connection.flags.set(Flags::WANTS_WRITABLE, false);
                self.outputs.push_back(Output::Writable { key, on: false });
            }
            if connection.phase == Phase::Draining {
                if !connection.flags.has(Flags::WRITE_SHUT) {
                    connection.flags.set(Flags::WRITE_SHUT, true);
                    self.outputs.push_back(Output::ShutdownWrite(key));
                }
                self.close_if_done(key);
            }
        } else if !connection.flags.has(Flags::WANTS_WRITABLE) {
            connection.flags.set(Flags::WANTS_WRITABLE, true);
            self.outputs.push_back(Output::Writable { key, on: true });
        }
        if let Some(connection) = self.connections.get_mut(key) {
            if connection.phase.is_open()
                && connection.write_queue.queued_bytes() > self.config.hard_queue_cap()
            {
                match self.config.slow_consumer {
                    SlowConsumer::Close => self.too_slow.push(key),
                    SlowConsumer::Drop => {
                        let dropped = connection.write_queue.discard_unstarted();
                        self.metrics.messages_dropped += dropped as u64;
                    }
                }
            }
        }
    }

    /// A draining connection whose peer is done and whose answers are all out is closed.
    fn close_if_done(&mut self, key: usize) {
        let Some(connection) = self.connections.get(key) else {
            return;
        };
        if connection.phase == Phase::Draining
            && connection.flags.has(Flags::PEER_DONE)
            && connection.write_queue.is_empty()
        {
            self.close(key);
        }
    }

    // --- closing ---

    /// Sends our close frame and waits for the peer's (server-initiated close: shutdown, idle,
    /// slow consumer). The connection leaves its room at once.
    fn start_close(&mut self, key: usize, code: CloseCode, reason: &str) {
        let Some(connection) = self.connections.get_mut(key) else {
            return;
        };
        if connection.phase != Phase::Open {
            return;
        }
        connection.decoder.close_sent();
        connection.phase = Phase::Closing;
        connection.deadline = self.now.tick().after(self.config.close_timeout);
        if connection.write_queue.queued_bytes() > self.config.hard_queue_cap() {
            let dropped = connection.write_queue.discard_unstarted();
            self.metrics.messages_dropped += dropped as u64;
        }
        connection.write_queue.push(close_frame(code, reason));
        mark_for_flush(connection, key, &mut self.flush_queue);
        self.leave_room(key);
    }

    /// Fails the connection: our close frame with `code` is the last thing it gets, unless our
    /// close is out already (RFC 6455 allows one close frame per side): then it just drains.
    /// [`Core::fail`], saying why in the debug log.
    fn fail_logged(&mut self, key: usize, code: CloseCode, reason: &str) {
        if let Some(connection) = self.connections.get(key) {
            debug!(
                "connection #{}: {reason}, closing with {}",
                connection.id, code.0
            );
        }
        self.fail(key, code, reason);
    }

    fn fail(&mut self, key: usize, code: CloseCode, reason: &str) {
        let Some(connection) = self.connections.get_mut(key) else {
            return;
        };
        if connection.phase == Phase::Closing {
            self.finish(key, None);
            return;
        }
        connection.decoder.close_sent();
        self.finish(key, Some(close_frame(code, reason)));
    }

    /// Queues the last bytes this connection gets, if any, then drains it (see
    /// [`Phase::Draining`]).
    fn finish(&mut self, key: usize, last: Option<Rc<[u8]>>) {
        let Some(connection) = self.connections.get_mut(key) else {
            return;
        };
        if connection.phase.is_websocket() {
            self.websockets -= 1;
        }
        if connection.phase == Phase::Handshake {
            self.uncount_handshake(key);
        }
        let connection = &mut self.connections[key];
        connection.phase = Phase::Draining;
        connection.deadline = self.now.tick().after(self.config.close_timeout);
        // No more broadcasts come to a draining connection, but one turn's burst may already be
        // queued: past the hard cap it is dropped, so a queue never holds more than the cap and
        // its last bytes.
        if connection.write_queue.queued_bytes() > self.config.hard_queue_cap() {
            let dropped = connection.write_queue.discard_unstarted();
            self.metrics.messages_dropped += dropped as u64;
        }
        if let Some(last) = last {
            connection.write_queue.push(last);
        }
        if self.reading != Some(key) {
            self.assembly_bytes -= connection.assembly_bytes();
        }
        connection.pending.set(&[]);
        connection.decoder = Decoder::new(Role::Server, 0);
        connection.decoder.close_sent();
        if self.reading != Some(key) {
            self.assembly_bytes += connection.assembly_bytes();
        }
        mark_for_flush(connection, key, &mut self.flush_queue);
        self.leave_room(key);
        self.close_if_done(key);
    }

    fn leave_room(&mut self, key: usize) {
        let seat = std::mem::replace(&mut self.connections[key].seat, Seat::NONE);
        let Some(seat) = seat.get() else {
            return;
        };
        self.bus_room_leaving(seat); // bus hook: last local member unsubscribes
        let left = self.rooms.leave(seat, self.now.tick());
        if let Some((moved, index)) = left.moved {
            self.connections[moved].seat.index = index;
        }
        if self.config.presence && !left.last_member {
            self.announce(seat.room, "leave");
        }
    }

    /// A presence notice to a room (`--presence`): JSON text, framed once, not kept in history.
    fn announce(&mut self, room: u32, event: &str) {
        let Some(name) = self.rooms.name(room) else {
            return;
        };
        let mut text = String::with_capacity(64 + name.len());
        text.push_str("{\"type\":\"presence\",\"event\":\"");
        text.push_str(event);
        text.push_str("\",\"room\":");
        push_json_string(&mut text, name);
        let _ = write!(text, ",\"members\":{}}}", self.rooms.members(room).len());
        let frame = frame_once(OpCode::Text, text.as_bytes());
        self.broadcast_to_room(room, &frame, None);
    }

    /// Forgets a connection and tells the shell to close its socket.
    fn close(&mut self, key: usize) {
        if !self.connections.contains(key) {
            return;
        }
        self.leave_room(key);
        if self.connections[key].phase == Phase::Handshake {
            self.uncount_handshake(key);
        }
        let connection = self.connections.remove(key);
        match connection.phase {
            Phase::Handshake => {}
            Phase::Open | Phase::Closing => self.websockets -= 1,
            Phase::Draining => {}
        }
        if self.reading != Some(key) {
            self.assembly_bytes -= connection.assembly_bytes();
        }
        self.outputs.push_back(Output::Close(key));
    }

    // --- timers ---

    fn sweep_timers(&mut self) {
        let tick = self.now.tick();
        self.rooms.expire(tick);
        let ping_after = clock::ticks(self.config.ping_interval);
        let idle_after = clock::ticks(self.config.idle_timeout);
        let mut expired = Vec::new();
        let mut idle = Vec::new();
        let mut ping = Vec::new();
        let mut unfinished = Vec::new();
        for (key, connection) in self.connections.iter_mut() {
            match connection.phase {
                Phase::Open => {
                    let silent = tick.since(connection.last_heard);
                    if !connection.decoder.is_idle() && tick.reached(connection.deadline) {
                        unfinished.push(key);
                    } else if silent >= idle_after {
                        idle.push(key);
                    } else if silent >= ping_after && !connection.flags.has(Flags::PING_OUTSTANDING)
                    {
                        connection.flags.set(Flags::PING_OUTSTANDING, true);
                        ping.push(key);
                    }
                    // Under `drop`, new frames are refused while it stays over (see `offer`).
                    if self.config.slow_consumer == SlowConsumer::Close
                        && over_mark_too_long(connection, self.now, &self.config)
                    {
                        self.too_slow.push(key);
                    }
                }
                Phase::Handshake | Phase::Closing | Phase::Draining => {
                    if tick.reached(connection.deadline) {
                        expired.push(key);
                    }
                }
            }
        }
        self.close_slow_consumers();
        if !ping.is_empty() {
            let frame = frame_once(OpCode::Ping, b"");
            for key in ping {
                self.enqueue(key, frame.clone(), false);
            }
            self.close_slow_consumers();
        }
        for key in unfinished {
            self.metrics.message_timeouts += 1;
            self.fail_logged(
                key,
                CloseCode::POLICY_VIOLATION,
                "message not complete within the message timeout",
            );
        }
        for key in idle {
            debug!("connection #{}: idle, closing", self.connections[key].id);
            self.metrics.timeouts += 1;
            self.start_close(key, CloseCode::GOING_AWAY, "idle timeout");
        }
        for key in expired {
            debug!(
                "connection #{}: timed out ({:?})",
                self.connections[key].id, self.connections[key].phase
            );
            self.metrics.timeouts += 1;
            self.close(key);
        }
    }
}

/// Decides what a decoder event asks of the core; frames the bytes to send while the payload
/// is still borrowed from the read buffer.
fn decide(
    event: Event<'_>,
    open: bool,
    config: &Config,
    bucket: &mut TokenBucket,
    now: Millis,
    metrics: &mut Metrics,
) -> Action {
    match event {
        Event::Text(_) | Event::Binary(_) if open => {
            metrics.messages_received += 1;
            if !bucket.take(config.rate_limit, now) {
                return match config.rate_limit_policy {
                    RateLimitPolicy::Close => Action::Limited,
                    RateLimitPolicy::Drop => {
                        metrics.rate_limited_dropped += 1;
                        Action::Nothing
                    }
                };
            }
            let frame = match event {
                Event::Text(text) => frame_once(OpCode::Text, text.as_bytes()),
                Event::Binary(bytes) => frame_once(OpCode::Binary, bytes),
                _ => unreachable!("matched above"),
            };
            Action::Relay(frame)
        }
        Event::Ping(payload) if open => Action::Reply(frame_once(OpCode::Pong, payload)),
        Event::Close(close) => Action::PeerClosed(close.reply_code()),
        Event::Text(_) | Event::Binary(_) | Event::Ping(_) | Event::Pong(_) => Action::Nothing,
    }
}

/// Queues a frame for one connection and schedules its flush, unless the connection does not
/// keep up: after a flush that could not empty it, its queue is past the hard cap, or has
/// stayed over `--max-queued-bytes` for the slow-consumer timeout. Then the slow-consumer
/// policy applies: the message is counted as dropped, or the connection is marked too slow
/// (closed by [`Core::close_slow_consumers`] once the caller is done iterating). A burst that
/// arrives before the connection's next write is always queued: it is judged after that write.
///
/// A free function over the core's parts, so that a broadcast can call it while it borrows
/// the room's member list.
#[allow(clippy::too_many_arguments)]
fn offer(
    connection: &mut Connection,
    key: usize,
    frame: Rc<[u8]>,
    now: Millis,
    config: &Config,
    hard_cap: usize,
    metrics: &mut Metrics,
    too_slow: &mut Vec<usize>,
    flush_queue: &mut VecDeque<usize>,
) -> bool {
    if !connection.phase.is_open() {
        return false;
    }
    let behind = connection.flags.has(Flags::WANTS_WRITABLE)
        && (connection.write_queue.queued_bytes() + frame.len() > hard_cap
            || over_mark_too_long(connection, now, config));
    if behind {
        match config.slow_consumer {
            SlowConsumer::Drop => metrics.messages_dropped += 1,
            SlowConsumer::Close => too_slow.push(key),
        }
        return false;
    }
    connection.write_queue.push(frame);
    mark_for_flush(connection, key, flush_queue);
    true
}

/// The frames of one message for every receiver: the plain frame, and, made on first need, one
/// compressed frame per deflate window in use. Each is built once and shared (`Rc`).
struct SharedFrames {
    /// Whether the message is big enough to compress and is a data message.
    compressible: bool,
    compressed: [Option<Rc<[u8]>>; 8],
}

impl SharedFrames {
    fn new(plain: &[u8], threshold: usize) -> Self {
        let (opcode, payload) = split_server_frame(plain);
        SharedFrames {
            compressible: matches!(opcode, OpCode::Text | OpCode::Binary)
                && payload.len() >= threshold,
            compressed: Default::default(),
        }
    }

    /// The frame for a receiver whose deflate window is `window_bits` (0: not negotiated).
    fn for_window(
        &mut self,
        window_bits: u8,
        plain: &Rc<[u8]>,
        deflaters: &mut [Option<Deflater>; 8],
        metrics: &mut Metrics,
    ) -> Rc<[u8]> {
        if window_bits == 0 || !self.compressible {
            return plain.clone();
        }
        let slot = usize::from(window_bits.clamp(8, 15) - 8);
        self.compressed[slot]
            .get_or_insert_with(|| {
                let (opcode, payload) = split_server_frame(plain);
                let deflater =
                    deflaters[slot].get_or_insert_with(|| Deflater::new(window_bits.clamp(8, 15)));
                let mut frame = Vec::with_capacity(payload.len() / 2 + 16);
                deflater.encode_frame(&mut frame, opcode, payload, None);
                metrics.frames_compressed += 1;
                metrics.compression_input_bytes += payload.len() as u64;
                metrics.compression_output_bytes += frame.len() as u64;
                frame.into()
            })
            .clone()
    }
}

/// The opcode and payload of an unmasked, unfragmented frame this core built.
fn split_server_frame(frame: &[u8]) -> (OpCode, &[u8]) {
    let opcode = OpCode::from_u8(frame[0] & 0x0f).unwrap_or(OpCode::Binary);
    let header_len = match frame[1] & 0x7f {
        126 => 4,
        127 => 10,
        _ => 2,
    };
    (opcode, &frame[header_len..])
}

/// Whether a connection's queue has stayed over `--max-queued-bytes` for the slow-consumer
/// timeout, judged after flushes.
fn over_mark_too_long(connection: &Connection, now: Millis, config: &Config) -> bool {
    if !connection.flags.has(Flags::OVER_MARK) {
        return false;
    }
    let over_for = (now.tick().0 as u16).wrapping_sub(connection.over_mark_since);
    u32::from(over_for) >= slow_consumer_ticks(config)
}

/// The slow-consumer timeout in ticks, kept within what a 16-bit tick stamp measures.
fn slow_consumer_ticks(config: &Config) -> u32 {
    clock::ticks(config.slow_consumer_timeout).min(u32::from(u16::MAX) / 2)
}

/// Puts a connection at the back of the flush queue, unless it is there already.
fn mark_for_flush(connection: &mut Connection, key: usize, flush_queue: &mut VecDeque<usize>) {
    if !connection.flags.has(Flags::FLUSH_SCHEDULED) {
        connection.flags.set(Flags::FLUSH_SCHEDULED, true);
        flush_queue.push_back(key);
    }
}

fn close_frame(code: CloseCode, reason: &str) -> Rc<[u8]> {
    let mut payload = Vec::with_capacity(125);
    encode_payload(&mut payload, code, reason);
    frame_once(OpCode::Close, &payload)
}

/// The shell's vectored write to one key's socket, as an `io::Write` for the write queue.
struct KeyedWriter<'a, F> {
    key: usize,
    write: &'a mut F,
}

impl<F: FnMut(usize, &[IoSlice<'_>]) -> io::Result<usize>> Write for KeyedWriter<'_, F> {
    fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        (self.write)(self.key, &[IoSlice::new(bytes)])
    }

    fn write_vectored(&mut self, slices: &[IoSlice<'_>]) -> io::Result<usize> {
        (self.write)(self.key, slices)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}
