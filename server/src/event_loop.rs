//! The event loop: one thread, one `mio::Poll`, every connection in a `slab::Slab` whose key is
//! its `mio::Token`. This file is the data path; read it top to bottom:
//!
//! 1. [`EventLoop::accept`]: accept until `WouldBlock`. Out of file descriptors, accepting
//!    pauses for a moment (never a busy loop) while existing connections keep being served.
//! 2. [`EventLoop::on_readable`]: read until `WouldBlock` into the **one read buffer the loop
//!    owns**, within a byte budget per connection per turn so a flooding client cannot starve
//!    the rest (a connection over budget is read again next turn). A connection keeps bytes of
//!    its own only when a handshake or a frame header is cut by the end of a read.
//! 3. [`EventLoop::on_handshake_bytes`] and [`EventLoop::on_frame_bytes`]: the `protocol`
//!    crate turns bytes into a request head or into events.
//! 4. [`EventLoop::broadcast`]: a chat message is **framed once** into an `Rc<[u8]>`; every
//!    member of the room gets a handle to the same bytes in its write queue.
//! 5. [`EventLoop::flush_scheduled`]: writes are **corked**. During a turn queues only grow; at
//!    the end of the turn each connection with something queued is flushed once with
//!    `write_vectored`. `WRITABLE` interest is registered only while a queue stays non-empty.
//! 6. A queue over `--max-queued-bytes` triggers the slow-consumer policy: close with 1008, or
//!    drop (counted). Memory per client stays bounded whatever it does.

use std::io::{self, Read};
use std::net::{Shutdown, SocketAddr};
use std::rc::Rc;
use std::time::{Duration, Instant};

use log::{debug, info, warn};
use mio::net::TcpListener;
use mio::{Events, Interest, Poll, Token};
use protocol::close::{encode_payload, CloseCode};
use protocol::frame::{OpCode, Role};
use protocol::handshake::server::{
    is_upgrade_attempt, validate_request, write_accept, write_refusal,
};
use protocol::http::{parse_request, write_response, Limits, Request};
use protocol::message::{Decoder, Event};
use protocol::{Error, Status};
use signal_hook::consts::{SIGINT, SIGTERM};
use signal_hook_mio::v1_0::Signals;
use slab::Slab;

use crate::cli::{Args, Mode, SlowConsumer};
use crate::connection::{Connection, Phase};
use crate::metrics::Metrics;
use crate::page::CHAT_PAGE;
use crate::room::Rooms;
use crate::write_queue::frame_once;

const LISTENER: Token = Token(usize::MAX - 1);
const SIGNALS: Token = Token(usize::MAX - 2);

/// Room for one large read beyond the bytes a connection may have kept.
const READ_BUFFER_LEN: usize = 64 * 1024;
/// Bytes read from one connection in one turn before the others get their go.
const READ_BUDGET_PER_TURN: usize = 256 * 1024;
/// The loop's clock counts ticks of 10 ms: coarse enough for a `u32` per timestamp.
const TICK: Duration = Duration::from_millis(10);
/// Timers (handshake, heartbeat, idle, close) are checked this often.
const SWEEP_EVERY: Duration = Duration::from_millis(100);
/// How long accepting pauses when the process is out of file descriptors.
const ACCEPT_PAUSE: Duration = Duration::from_millis(100);
/// The longest a graceful shutdown waits for clients to answer our close.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(3);

/// What the loop does with a parsed request head.
enum Decision {
    Upgrade {
        room: String,
        response: Vec<u8>,
    },
    Respond {
        status: u16,
        response: Vec<u8>,
        handshake: bool,
    },
    Metrics,
}

/// What the loop does with one event from a connection's decoder, decided while the event
/// still borrows the read buffer, carried out once it does not.
enum Action {
    Nothing,
    Broadcast(Rc<[u8]>),
    Echo(Rc<[u8]>),
    Reply(Rc<[u8]>),
    PeerClosed(CloseCode),
    Fail(Error),
}

/// The server: its socket, its connections, its rooms and its counters.
pub struct EventLoop {
    poll: Poll,
    listener: TcpListener,
    signals: Signals,
    args: Args,
    connections: Slab<Connection>,
    rooms: Rooms,
    metrics: Metrics,
    /// The one read buffer: every socket is read into it.
    read_buffer: Vec<u8>,
    /// Connections with something queued this turn.
    flush_list: Vec<usize>,
    /// Connections that used their read budget and must be read again next turn.
    read_again: Vec<usize>,
    /// Connections found too slow during a broadcast, closed after it.
    too_slow: Vec<usize>,
    welcome: Option<Rc<[u8]>>,
    started: Instant,
    now: u32,
    accept_paused_until: Option<u32>,
    shutdown_deadline: Option<u32>,
}

impl EventLoop {
    /// Binds the listening socket and sets up signal handling.
    pub fn bind(args: Args) -> io::Result<Self> {
        let poll = Poll::new()?;
        let mut listener = TcpListener::bind(args.listen)?;
        poll.registry()
            .register(&mut listener, LISTENER, Interest::READABLE)?;
        let mut signals = Signals::new([SIGINT, SIGTERM])?;
        poll.registry()
            .register(&mut signals, SIGNALS, Interest::READABLE)?;
        let welcome = args
            .welcome
            .as_deref()
            .map(|text| frame_once(OpCode::Text, text.as_bytes()));
        Ok(EventLoop {
            poll,
            listener,
            signals,
            read_buffer: vec![0; READ_BUFFER_LEN + args.max_request_size],
            args,
            connections: Slab::new(),
            rooms: Rooms::default(),
            metrics: Metrics::default(),
            flush_list: Vec::new(),
            read_again: Vec::new(),
            too_slow: Vec::new(),
            welcome,
            started: Instant::now(),
            now: 0,
            accept_paused_until: None,
            shutdown_deadline: None,
        })
    }

    /// The address the server listens on (useful with port 0).
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Runs until a signal asks it to stop and the clients have had their close.
    pub fn run(mut self) -> io::Result<()> {
        let mut events = Events::with_capacity(1024);
        let mut next_sweep = ticks(SWEEP_EVERY);
        loop {
            let timeout = if self.read_again.is_empty() {
                let until_sweep = next_sweep.saturating_sub(self.now);
                TICK * until_sweep.max(1)
            } else {
                Duration::ZERO
            };
            match self.poll.poll(&mut events, Some(timeout)) {
                Ok(()) => {}
                Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
                Err(error) => return Err(error),
            }
            self.now = self.clock();

            for key in std::mem::take(&mut self.read_again) {
                self.on_readable(key, false);
            }
            for event in events.iter() {
                match event.token() {
                    LISTENER => self.accept(),
                    SIGNALS => self.on_signal(),
                    Token(key) => {
                        if event.is_readable() || event.is_read_closed() || event.is_error() {
                            let may_stop_short = !event.is_read_closed() && !event.is_error();
                            self.on_readable(key, may_stop_short);
                        }
                        if event.is_writable() {
                            self.schedule_flush(key);
                        }
                    }
                }
            }
            if self
                .accept_paused_until
                .is_some_and(|until| self.now >= until)
            {
                self.accept_paused_until = None;
                self.accept();
            }
            if self.now >= next_sweep {
                self.sweep_timers();
                next_sweep = self.now + ticks(SWEEP_EVERY);
            }
            self.flush_scheduled();

            if let Some(deadline) = self.shutdown_deadline {
                if self.connections.is_empty() || self.now >= deadline {
                    info!(
                        "shut down with {} connection(s) still open",
                        self.connections.len()
                    );
                    return Ok(());
                }
            }
        }
    }

    fn clock(&self) -> u32 {
        (self.started.elapsed().as_millis() / TICK.as_millis()) as u32
    }

    // --- 1. accept ---

    fn accept(&mut self) {
        if self.shutdown_deadline.is_some() || self.accept_paused_until.is_some() {
            return;
        }
        loop {
            match self.listener.accept() {
                Ok((mut socket, peer)) => {
                    self.metrics.connections_accepted += 1;
                    // Frames are corked by the loop already; Nagle would only add delay.
                    let _ = socket.set_nodelay(true);
                    let entry = self.connections.vacant_entry();
                    let key = entry.key();
                    if let Err(error) =
                        self.poll
                            .registry()
                            .register(&mut socket, Token(key), Interest::READABLE)
                    {
                        warn!("cannot register a socket from {peer}: {error}");
                        continue;
                    }
                    let deadline = self.now + ticks(self.args.handshake_timeout);
                    let decoder = Decoder::new(Role::Server, self.args.max_message_size);
                    entry.insert(Connection::new(socket, decoder, self.now, deadline));
                    debug!("accepted {peer} as connection {key}");
                }
                Err(error) if error.kind() == io::ErrorKind::WouldBlock => return,
                Err(error) if error.kind() == io::ErrorKind::Interrupted => continue,
                Err(error) if is_out_of_descriptors(&error) => {
                    self.metrics.accept_fd_exhausted += 1;
                    warn!(
                        "accept: {error}; serving the {} open connection(s), accepting again in {} ms",
                        self.connections.len(),
                        ACCEPT_PAUSE.as_millis()
                    );
                    self.accept_paused_until = Some(self.now + ticks(ACCEPT_PAUSE));
                    return;
                }
                Err(error) => {
                    // ECONNABORTED and the like concern one connection, not the listener.
                    debug!("accept: {error}");
                }
            }
        }
    }

    // --- 2. read ---

    /// Reads a connection until `WouldBlock`, its budget, or (when `may_stop_short`) a short
    /// read. A read that returns less than the buffer holds took everything the TCP socket had,
    /// and new bytes raise a new edge; skipping the read that would say `WouldBlock` saves a
    /// system call per message. Not when the event says the peer closed its side: then the
    /// end of stream must be read now, as no further edge will announce it.
    fn on_readable(&mut self, key: usize, may_stop_short: bool) {
        let mut budget = READ_BUDGET_PER_TURN;
        loop {
            let Some(connection) = self.connections.get_mut(key) else {
                return;
            };
            let kept = connection.pending.as_slice().len();
            self.read_buffer[..kept].copy_from_slice(connection.pending.as_slice());
            match connection.socket.read(&mut self.read_buffer[kept..]) {
                Ok(0) => {
                    debug!("connection {key}: peer closed the tcp connection");
                    self.remove(key);
                    return;
                }
                Ok(read) => {
                    self.metrics.bytes_read += read as u64;
                    connection.last_heard = self.now;
                    connection.ping_outstanding = false;
                    match connection.phase {
                        Phase::Handshake => self.on_handshake_bytes(key, kept + read),
                        Phase::Open | Phase::Closing => self.on_frame_bytes(key, 0, kept + read),
                        Phase::Draining { .. } => {} // thrown away, see Phase::Draining
                    }
                    let short = kept + read < self.read_buffer.len();
                    budget = budget.saturating_sub(read);
                    if may_stop_short && short {
                        return;
                    }
                    if budget == 0 {
                        if self.connections.contains(key) {
                            self.read_again.push(key);
                        }
                        return;
                    }
                }
                Err(error) if error.kind() == io::ErrorKind::WouldBlock => return,
                Err(error) if error.kind() == io::ErrorKind::Interrupted => continue,
                Err(error) => {
                    debug!("connection {key}: read: {error}");
                    self.remove(key);
                    return;
                }
            }
        }
    }

    // --- 3. bytes to requests and events ---

    fn on_handshake_bytes(&mut self, key: usize, len: usize) {
        let limits = Limits {
            max_head_len: self.args.max_request_size,
            max_headers: 100,
        };
        let (head_len, decision) = match parse_request(&self.read_buffer[..len], limits) {
            Ok(Status::Partial) => {
                self.connections[key].pending.set(&self.read_buffer[..len]);
                return;
            }
            Ok(Status::Complete(request)) => (
                request.head_len,
                route(&request, &self.args, self.connections.len()),
            ),
            Err(error) => {
                let mut response = Vec::new();
                write_refusal(
                    &mut response,
                    error.http_status().unwrap_or(400),
                    &error.to_string(),
                );
                (
                    len,
                    Decision::Respond {
                        status: error.http_status().unwrap_or(400),
                        response,
                        handshake: true,
                    },
                )
            }
        };
        let connection = &mut self.connections[key];
        connection.pending.set(&[]);
        match decision {
            Decision::Upgrade { room, response } => {
                self.metrics.handshakes_completed += 1;
                connection.phase = Phase::Open;
                connection.write_queue.push(response.into());
                if let Some(welcome) = &self.welcome {
                    connection.write_queue.push(welcome.clone());
                }
                if self.args.mode == Mode::Chat {
                    connection.membership = Some(self.rooms.join(&room, key));
                }
                debug!("connection {key}: websocket open in room {room}");
                self.schedule_flush(key);
                if head_len < len {
                    // Frames sent right behind the handshake, in the same read.
                    self.on_frame_bytes(key, head_len, len);
                }
            }
            Decision::Respond {
                status,
                response,
                handshake,
            } => {
                let counter = if handshake {
                    &mut self.metrics.handshakes_refused
                } else {
                    &mut self.metrics.http_responses
                };
                *counter.entry(status).or_default() += 1;
                self.finish(key, Some(response.into()));
            }
            Decision::Metrics => {
                let websockets = self
                    .connections
                    .iter()
                    .filter(|(_, c)| c.phase.is_websocket())
                    .count();
                let body =
                    self.metrics
                        .render(self.connections.len(), websockets, self.rooms.len());
                let mut response = Vec::new();
                write_response(
                    &mut response,
                    200,
                    &[],
                    "text/plain; version=0.0.4",
                    body.as_bytes(),
                );
                *self.metrics.http_responses.entry(200).or_default() += 1;
                self.finish(key, Some(response.into()));
            }
        }
    }

    fn on_frame_bytes(&mut self, key: usize, mut start: usize, len: usize) {
        loop {
            let Some(connection) = self.connections.get_mut(key) else {
                return;
            };
            let open = match connection.phase {
                Phase::Open => true,
                Phase::Closing => false,
                _ => return,
            };
            let action = match connection.decoder.decode(&mut self.read_buffer[start..len]) {
                Ok((consumed, event)) => {
                    start += consumed;
                    match event {
                        None => {
                            connection.pending.set(&self.read_buffer[start..len]);
                            return;
                        }
                        Some(event) => decide(event, open, self.args.mode, &mut self.metrics),
                    }
                }
                Err(error) => Action::Fail(error),
            };
            match action {
                Action::Nothing => {}
                Action::Broadcast(frame) => self.broadcast(key, frame),
                Action::Echo(frame) => {
                    if self.enqueue(key, frame) {
                        self.metrics.frames_delivered += 1;
                    }
                    self.close_slow_consumers();
                }
                Action::Reply(frame) => {
                    self.enqueue(key, frame);
                    self.close_slow_consumers();
                }
                Action::PeerClosed(code) if open => {
                    debug!(
                        "connection {key}: closed by peer with {}, echoing it",
                        code.0
                    );
                    self.finish(key, Some(close_frame(code, "")));
                }
                Action::PeerClosed(code) => {
                    // The peer answered our close: both close frames have crossed (§7.1.2),
                    // nothing more is sent.
                    debug!("connection {key}: close handshake complete ({})", code.0);
                    self.finish(key, None);
                }
                Action::Fail(error) => {
                    let code = error.close_code().unwrap_or(CloseCode::PROTOCOL_ERROR);
                    debug!("connection {key}: {error}, closing with {}", code.0);
                    *self.metrics.protocol_errors.entry(code.0).or_default() += 1;
                    self.finish(key, Some(close_frame(code, &error.to_string())));
                }
            }
        }
    }

    // --- 4. broadcast: frame once, share the bytes ---

    fn broadcast(&mut self, sender: usize, frame: Rc<[u8]>) {
        let Some(membership) = self.connections[sender].membership else {
            return;
        };
        let skip_sender = self.args.no_echo_to_sender;
        for &member in self.rooms.members(membership.room) {
            let member = member as usize;
            if skip_sender && member == sender {
                continue;
            }
            let connection = &mut self.connections[member];
            if !connection.phase.is_open() {
                continue;
            }
            let queued = offer(
                connection,
                member,
                frame.clone(),
                &self.args,
                &mut self.metrics,
                &mut self.too_slow,
                &mut self.flush_list,
            );
            if queued {
                self.metrics.frames_delivered += 1;
            }
        }
        self.close_slow_consumers();
    }

    /// Queues a frame for one connection under the cap; see [`offer`].
    fn enqueue(&mut self, key: usize, frame: Rc<[u8]>) -> bool {
        let Some(connection) = self.connections.get_mut(key) else {
            return false;
        };
        offer(
            connection,
            key,
            frame,
            &self.args,
            &mut self.metrics,
            &mut self.too_slow,
            &mut self.flush_list,
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
            debug!("connection {key}: too slow, closing with 1008");
            self.start_close(
                key,
                CloseCode::POLICY_VIOLATION,
                "slow consumer: write queue full",
            );
        }
    }

    // --- 5. cork: one write_vectored per connection per turn ---

    fn schedule_flush(&mut self, key: usize) {
        if let Some(connection) = self.connections.get_mut(key) {
            mark_for_flush(connection, key, &mut self.flush_list);
        }
    }

    fn flush_scheduled(&mut self) {
        let mut keys = std::mem::take(&mut self.flush_list);
        for &key in &keys {
            let Some(connection) = self.connections.get_mut(key) else {
                continue;
            };
            connection.flush_scheduled = false;
            match connection.write_queue.flush(&mut connection.socket) {
                Ok(flushed) => {
                    self.metrics.bytes_written += flushed.bytes as u64;
                    self.metrics.write_calls += flushed.write_calls as u64;
                }
                Err(error) => {
                    debug!("connection {key}: write: {error}");
                    self.remove(key);
                    continue;
                }
            }
            let registry = self.poll.registry();
            if connection.write_queue.is_empty() {
                connection.write_queue.shrink_if_empty();
                if connection.writable_registered {
                    connection.writable_registered = false;
                    let _ =
                        registry.reregister(&mut connection.socket, Token(key), Interest::READABLE);
                }
                if let Phase::Draining { write_shut } = &mut connection.phase {
                    if !*write_shut {
                        *write_shut = true;
                        let _ = connection.socket.shutdown(Shutdown::Write);
                    }
                }
            } else if !connection.writable_registered {
                connection.writable_registered = true;
                let _ = registry.reregister(
                    &mut connection.socket,
                    Token(key),
                    Interest::READABLE | Interest::WRITABLE,
                );
            }
        }
        keys.clear();
        if self.flush_list.is_empty() {
            self.flush_list = keys;
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
        connection.deadline = self.now + ticks(self.args.close_timeout);
        connection.write_queue.push(close_frame(code, reason));
        self.leave_room(key);
        self.schedule_flush(key);
    }

    /// Queues the last bytes this connection gets, if any, then drains it (see
    /// [`Phase::Draining`]).
    fn finish(&mut self, key: usize, last: Option<Rc<[u8]>>) {
        let Some(connection) = self.connections.get_mut(key) else {
            return;
        };
        connection.phase = Phase::Draining { write_shut: false };
        connection.deadline = self.now + ticks(self.args.close_timeout);
        if let Some(last) = last {
            connection.write_queue.push(last);
        }
        connection.pending.set(&[]);
        self.leave_room(key);
        self.schedule_flush(key);
    }

    fn leave_room(&mut self, key: usize) {
        let Some(membership) = self.connections[key].membership.take() else {
            return;
        };
        if let Some((moved, index)) = self.rooms.leave(membership) {
            if let Some(moved) = self.connections[moved].membership.as_mut() {
                moved.index = index;
            }
        }
    }

    fn remove(&mut self, key: usize) {
        if !self.connections.contains(key) {
            return;
        }
        self.leave_room(key);
        let mut connection = self.connections.remove(key);
        let _ = self.poll.registry().deregister(&mut connection.socket);
    }

    // --- timers ---

    fn sweep_timers(&mut self) {
        let ping_after = ticks(self.args.ping_interval);
        let idle_after = ticks(self.args.idle_timeout);
        let mut expired = Vec::new();
        let mut idle = Vec::new();
        let mut ping = Vec::new();
        for (key, connection) in self.connections.iter_mut() {
            match connection.phase {
                Phase::Open => {
                    let silent = self.now.saturating_sub(connection.last_heard);
                    if silent >= idle_after {
                        idle.push(key);
                    } else if silent >= ping_after && !connection.ping_outstanding {
                        connection.ping_outstanding = true;
                        ping.push(key);
                    }
                }
                Phase::Handshake | Phase::Closing | Phase::Draining { .. } => {
                    if self.now >= connection.deadline {
                        expired.push(key);
                    }
                }
            }
        }
        if !ping.is_empty() {
            let frame = frame_once(OpCode::Ping, b"");
            for key in ping {
                self.enqueue(key, frame.clone());
            }
            self.close_slow_consumers();
        }
        for key in idle {
            debug!("connection {key}: idle, closing");
            self.metrics.timeouts += 1;
            self.start_close(key, CloseCode::GOING_AWAY, "idle timeout");
        }
        for key in expired {
            debug!("connection {key}: timed out");
            self.metrics.timeouts += 1;
            self.remove(key);
        }
    }

    // --- signals ---

    fn on_signal(&mut self) {
        let received: Vec<i32> = self.signals.pending().collect();
        if received.is_empty() {
            return;
        }
        if self.shutdown_deadline.is_some() {
            info!("second signal: exiting now");
            std::process::exit(0);
        }
        info!(
            "signal {}: closing {} connection(s) with 1001",
            received[0],
            self.connections.len()
        );
        let _ = self.poll.registry().deregister(&mut self.listener);
        let grace = self.args.close_timeout.min(SHUTDOWN_GRACE);
        self.shutdown_deadline = Some(self.now + ticks(grace));
        let keys: Vec<usize> = self.connections.iter().map(|(key, _)| key).collect();
        for key in keys {
            match self.connections[key].phase {
                Phase::Open => self.start_close(key, CloseCode::GOING_AWAY, "server shutting down"),
                Phase::Handshake => self.remove(key),
                Phase::Closing | Phase::Draining { .. } => {}
            }
        }
    }
}

/// Decides what a decoder event asks of the loop; frames the bytes to send while the payload
/// is still borrowed from the read buffer.
fn decide(event: Event<'_>, open: bool, mode: Mode, metrics: &mut Metrics) -> Action {
    match event {
        Event::Text(text) if open => {
            metrics.messages_received += 1;
            relay(mode, frame_once(OpCode::Text, text.as_bytes()))
        }
        Event::Binary(bytes) if open => {
            metrics.messages_received += 1;
            relay(mode, frame_once(OpCode::Binary, bytes))
        }
        Event::Ping(payload) if open => Action::Reply(frame_once(OpCode::Pong, payload)),
        Event::Close(close) => Action::PeerClosed(close.reply_code()),
        Event::Text(_) | Event::Binary(_) | Event::Ping(_) | Event::Pong(_) => Action::Nothing,
    }
}

fn relay(mode: Mode, frame: Rc<[u8]>) -> Action {
    match mode {
        Mode::Chat => Action::Broadcast(frame),
        Mode::Echo => Action::Echo(frame),
    }
}

/// Decides what answers a complete request head.
fn route(request: &Request<'_>, args: &Args, open_sockets: usize) -> Decision {
    let refuse = |status: u16, why: &str| {
        let mut response = Vec::new();
        write_refusal(&mut response, status, why);
        Decision::Respond {
            status,
            response,
            handshake: true,
        }
    };
    if is_upgrade_attempt(request) {
        let upgrade = match validate_request(request) {
            Ok(upgrade) => upgrade,
            Err(error) => return refuse(error.http_status().unwrap_or(400), &error.to_string()),
        };
        if !args.allowed_origin.is_empty()
            && !upgrade.origin.is_some_and(|origin| {
                args.allowed_origin
                    .iter()
                    .any(|allowed| allowed.eq_ignore_ascii_case(origin))
            })
        {
            return refuse(403, "origin not allowed");
        }
        if open_sockets > args.max_connections {
            return refuse(503, "server at its connection limit");
        }
        let mut response = Vec::new();
        write_accept(&mut response, &upgrade, None, &[]);
        return Decision::Upgrade {
            room: upgrade.path.to_owned(),
            response,
        };
    }
    let mut response = Vec::new();
    let status = if request.method != "GET" {
        write_response(
            &mut response,
            405,
            &[("Allow", "GET")],
            "text/plain; charset=utf-8",
            b"405 Method Not Allowed\n",
        );
        405
    } else if request.path() == "/metrics" {
        return Decision::Metrics;
    } else if !args.no_page && is_room_path(request.path()) {
        write_response(
            &mut response,
            200,
            &[("Cache-Control", "no-cache")],
            "text/html; charset=utf-8",
            CHAT_PAGE.as_bytes(),
        );
        200
    } else {
        write_response(
            &mut response,
            404,
            &[],
            "text/plain; charset=utf-8",
            b"404 Not Found\n",
        );
        404
    };
    Decision::Respond {
        status,
        response,
        handshake: false,
    }
}

/// The chat page is served on every path a room could have: `/`, `/rust`, `/a/b`. Paths that
/// look like files (`/favicon.ico`) are not rooms.
fn is_room_path(path: &str) -> bool {
    path.starts_with('/') && !path.rsplit('/').next().unwrap_or("").contains('.')
}

/// Queues a frame for one connection under the queue cap and schedules its flush. When it
/// does not fit, the slow-consumer policy applies: the message is counted as dropped, or the
/// connection is marked too slow (closed by [`EventLoop::close_slow_consumers`] once the
/// caller is done iterating). Returns whether the frame was queued.
///
/// A free function over the loop's parts, so that a broadcast can call it while it borrows
/// the room's member list.
fn offer(
    connection: &mut Connection,
    key: usize,
    frame: Rc<[u8]>,
    args: &Args,
    metrics: &mut Metrics,
    too_slow: &mut Vec<usize>,
    flush_list: &mut Vec<usize>,
) -> bool {
    if over_cap(connection, &frame, args.max_queued_bytes) {
        match args.slow_consumer {
            SlowConsumer::Drop => metrics.messages_dropped += 1,
            SlowConsumer::Close => too_slow.push(key),
        }
        return false;
    }
    connection.write_queue.push(frame);
    mark_for_flush(connection, key, flush_list);
    true
}

/// Puts a connection in this turn's flush list, once.
fn mark_for_flush(connection: &mut Connection, key: usize, flush_list: &mut Vec<usize>) {
    if !connection.flush_scheduled {
        connection.flush_scheduled = true;
        flush_list.push(key);
    }
}

/// Whether queuing `frame` would take the connection's queue past the cap. An empty queue
/// always takes one frame, so a message as large as the cap (or larger, up to the maximum
/// message size) can still be delivered: a queue holds at most cap + one message.
fn over_cap(connection: &Connection, frame: &[u8], cap: usize) -> bool {
    let queued = connection.write_queue.queued_bytes();
    queued > 0 && queued + frame.len() > cap
}

fn close_frame(code: CloseCode, reason: &str) -> Rc<[u8]> {
    let mut payload = Vec::with_capacity(125);
    encode_payload(&mut payload, code, reason);
    frame_once(OpCode::Close, &payload)
}

fn ticks(duration: Duration) -> u32 {
    (duration.as_millis() / TICK.as_millis()).clamp(1, u32::MAX as u128) as u32
}

fn is_out_of_descriptors(error: &io::Error) -> bool {
    // EMFILE, ENFILE, ENOBUFS, ENOMEM: the process or the system is out of a resource.
    matches!(error.raw_os_error(), Some(24 | 23 | 105 | 12))
}
