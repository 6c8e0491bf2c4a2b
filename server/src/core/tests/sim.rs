//! A simulated shell around the core: in-memory sockets, virtual time, and a client's view of
//! each socket, decoded with the `protocol` crate. It does what `event_loop.rs` does (time,
//! then reads, then writability, then one flush per turn, outputs carried out after every
//! call) without a system call, and checks after every step that the core keeps its promises.
//!
//! Shared by the simulation tests (`core/tests.rs`), the core fuzz target (`server/fuzz`) and
//! its seed replay (`server/tests/core_ops.rs`), which include this file with `#[path]`. The
//! includer brings the core's types into scope for it (`crate::core::*` inside the server,
//! `server::core::*` outside), hence `use super::..` below.
//!
//! What the checks hold the core to, besides [`Core::check_invariants`]:
//!
//! - a socket is written to only while the core knows it, and never after `ShutdownWrite`;
//! - what the server writes parses: an HTTP answer no longer than its `Content-Length`, or a
//!   101 followed by valid unmasked frames, and nothing at all after the server's close frame;
//! - after a flush, no queue holds more than its hard cap plus one message;
//! - a socket in its handshake is gone by the handshake deadline, a closing or draining one by
//!   the close deadline, and an open one silent for the idle timeout is closing (each plus one
//!   sweep and one tick of rounding).

// Each includer uses a part of it: the tests drive clients by hand, the fuzzer by operations.
#![allow(dead_code)]

use std::collections::HashMap;
use std::io::{self, IoSlice};
use std::time::Duration;

use protocol::close::{encode_payload, CloseCode, CloseFrame};
use protocol::frame::{encode_frame, OpCode, Role};
use protocol::handshake::client::ClientHandshake;
use protocol::http::{parse_response, Limits};
use protocol::message::{Decoder, Event};
use protocol::Status;

use super::{Accepted, Config, Core, Flags, Millis, Output, Phase, SWEEP_EVERY, TICK};

/// The shell's read buffer beyond the kept bytes, as in `event_loop.rs`.
pub const READ_BUFFER_LEN: usize = 64 * 1024;

/// A socket that takes whatever it is given.
pub const UNLIMITED: usize = usize::MAX;

/// A client, by the order it connected in (never reused, unlike the core's keys).
pub type ClientId = usize;

/// Something the client decoded from what the server wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Received {
    /// A text message.
    Text(String),
    /// A binary message.
    Binary(Vec<u8>),
    /// A ping, with its payload.
    Ping(Vec<u8>),
    /// A pong, with its payload.
    Pong(Vec<u8>),
    /// A close frame: its code (if any) and reason.
    Close(Option<u16>, String),
}

/// What the server's byte stream to one client has been so far.
#[derive(Debug)]
enum Stream {
    /// Waiting for a complete response head.
    Head,
    /// A 101 came: frames follow.
    Frames(Decoder),
    /// Another status came: its body follows, at most `Content-Length` bytes.
    Body { content_length: usize },
}

/// One in-memory socket and the client at its other end.
#[derive(Debug)]
pub struct Socket {
    /// The core's key for it while the core knows it.
    pub key: usize,
    /// When it was accepted.
    pub accepted_at: Millis,
    /// Bytes the client sent that the server has not read yet.
    pub inbound: Vec<u8>,
    /// The client shut down its sending side after `inbound`.
    pub client_done: bool,
    /// The server has read that end of stream (`handle_eof` was called).
    pub eof_delivered: bool,
    /// Bytes the socket takes in each turn: the room its kernel buffer has, the client reading
    /// it empty between turns. [`UNLIMITED`] takes everything, 0 nothing.
    pub accepts_per_turn: usize,
    /// Bytes it still takes this turn.
    pub room: usize,
    /// The core asked to be told when it is writable.
    pub watching_writable: bool,
    /// When the core asked to shut down its write side.
    pub write_shut_at: Option<Millis>,
    /// When the core closed it.
    pub closed_at: Option<Millis>,
    /// When the server last read bytes from it.
    pub last_read_at: Millis,
    /// Bytes the server wrote to it, in all.
    pub written: usize,
    /// The status of the server's answer, once a complete head arrived (after any 100).
    pub status: Option<u16>,
    /// The body of an answer other than 101.
    pub body: Vec<u8>,
    /// What the client decoded, in order.
    pub received: Vec<Received>,
    /// When the server's close frame arrived.
    pub close_received_at: Option<Millis>,
    /// The phase the core last said it was in, and since when (for the deadline checks).
    observed: Option<(Phase, Millis)>,
    /// When the current fragmented message was first seen in progress.
    /// When the check first saw a message in progress, and how many messages the client had
    /// received then: a message completing (echoed back to its sender) starts the clock again,
    /// as a message sent right behind another begins anew.
    message_seen_at: Option<(Millis, usize)>,
    stream: Stream,
    unparsed: Vec<u8>,
    next_mask: u32,
}

impl Socket {
    fn new(key: usize, now: Millis) -> Self {
        Socket {
            key,
            accepted_at: now,
            inbound: Vec::new(),
            client_done: false,
            eof_delivered: false,
            accepts_per_turn: UNLIMITED,
            room: UNLIMITED,
            watching_writable: false,
            write_shut_at: None,
            closed_at: None,
            last_read_at: now,
            written: 0,
            status: None,
            body: Vec::new(),
            received: Vec::new(),
            close_received_at: None,
            observed: Some((Phase::Handshake, now)),
            message_seen_at: None,
            stream: Stream::Head,
            unparsed: Vec::new(),
            next_mask: 0x5eed_0001,
        }
    }

    /// Whether the core still knows this socket.
    pub fn is_open(&self) -> bool {
        self.closed_at.is_none()
    }

    /// The text messages received, in order.
    pub fn texts(&self) -> Vec<&str> {
        self.received
            .iter()
            .filter_map(|received| match received {
                Received::Text(text) => Some(text.as_str()),
                _ => None,
            })
            .collect()
    }

    /// How many data messages (text or binary) were received.
    pub fn messages(&self) -> usize {
        self.received
            .iter()
            .filter(|received| matches!(received, Received::Text(_) | Received::Binary(_)))
            .count()
    }

    /// How many pings were received.
    pub fn pings(&self) -> usize {
        self.received
            .iter()
            .filter(|received| matches!(received, Received::Ping(_)))
            .count()
    }

    /// The server's close frame, if one arrived.
    pub fn close(&self) -> Option<(Option<u16>, &str)> {
        self.received.iter().find_map(|received| match received {
            Received::Close(code, reason) => Some((*code, reason.as_str())),
            _ => None,
        })
    }

    /// A masked frame as a client sends it (RFC 6455 §5.3), with a fresh masking key.
    pub fn frame(&mut self, fin: bool, opcode: OpCode, payload: &[u8]) -> Vec<u8> {
        self.next_mask = self.next_mask.wrapping_mul(0x9e37_79b9).wrapping_add(1);
        let mut out = Vec::with_capacity(payload.len() + 14);
        encode_frame(
            &mut out,
            fin,
            opcode,
            payload,
            Some(self.next_mask.to_be_bytes()),
        );
        out
    }

    /// A masked close frame with a code and reason.
    pub fn close_frame(&mut self, code: u16, reason: &str) -> Vec<u8> {
        let mut payload = Vec::new();
        encode_payload(&mut payload, CloseCode(code), reason);
        self.frame(true, OpCode::Close, &payload)
    }

    /// Takes bytes the server wrote, as the client would read them.
    fn absorb(&mut self, bytes: &[u8], now: Millis) -> Result<(), String> {
        self.written += bytes.len();
        if self.close_received_at.is_some() {
            return Err(format!(
                "{} bytes written after the server's close frame",
                bytes.len()
            ));
        }
        self.unparsed.extend_from_slice(bytes);
        loop {
            match &mut self.stream {
                Stream::Head => {
                    let response = match parse_response(&self.unparsed, Limits::default()) {
                        Ok(Status::Partial) => return Ok(()),
                        Ok(Status::Complete(response)) => response,
                        Err(error) => return Err(format!("the server's head: {error}")),
                    };
                    let head_len = response.head_len;
                    let status = response.status;
                    let content_length = response
                        .headers
                        .get_str("content-length")
                        .and_then(|value| value.trim().parse::<usize>().ok());
                    self.unparsed.drain(..head_len);
                    match status {
                        100 => continue,
                        101 => {
                            self.status = Some(101);
                            self.stream = Stream::Frames(Decoder::new(Role::Client, 1 << 30));
                        }
                        _ => {
                            self.status = Some(status);
                            let Some(content_length) = content_length else {
                                return Err(format!("a {status} answer without Content-Length"));
                            };
                            self.stream = Stream::Body { content_length };
                        }
                    }
                }
                Stream::Body { content_length } => {
                    self.body.append(&mut self.unparsed);
                    if self.body.len() > *content_length {
                        return Err(format!(
                            "an answer body of {} bytes, more than its Content-Length {content_length}",
                            self.body.len()
                        ));
                    }
                    return Ok(());
                }
                Stream::Frames(decoder) => {
                    let mut start = 0;
                    let mut closed = false;
                    loop {
                        let (consumed, event) = decoder
                            .decode(&mut self.unparsed[start..])
                            .map_err(|error| format!("the server's frames: {error}"))?;
                        start += consumed;
                        let Some(event) = event else {
                            break;
                        };
                        let received = match event {
                            Event::Text(text) => Received::Text(text.to_owned()),
                            Event::Binary(bytes) => Received::Binary(bytes.to_vec()),
                            Event::Ping(bytes) => Received::Ping(bytes.to_vec()),
                            Event::Pong(bytes) => Received::Pong(bytes.to_vec()),
                            Event::Close(CloseFrame { code, reason }) => {
                                closed = true;
                                Received::Close(code.map(|code| code.0), reason.to_owned())
                            }
                        };
                        self.received.push(received);
                        if closed {
                            break;
                        }
                    }
                    if closed {
                        self.close_received_at = Some(now);
                        if start < self.unparsed.len() {
                            return Err(format!(
                                "{} bytes written after the server's close frame",
                                self.unparsed.len() - start
                            ));
                        }
                    }
                    self.unparsed.drain(..start);
                    return Ok(());
                }
            }
        }
    }
}

/// The simulated shell: a core, its sockets, and the time.
pub struct Sim {
    /// The core under test.
    pub core: Core,
    /// The time of the current turn.
    pub now: Millis,
    /// Every socket ever accepted, by [`ClientId`].
    pub sockets: Vec<Socket>,
    /// Bytes read from one connection in one turn before the others get their go.
    pub read_budget: usize,
    /// Connections written per flush, as the shell's slice of its pass ([`UNLIMITED`]: every
    /// connection with frames queued).
    pub flush_slice: usize,
    by_key: HashMap<usize, ClientId>,
    read_buffer: Vec<u8>,
    /// Accepts the core refused.
    pub refused: usize,
}

impl Sim {
    /// A core with `config`, its clock starting at `start`.
    pub fn new(config: Config, start: Millis) -> Sim {
        let read_buffer = vec![0; READ_BUFFER_LEN + config.max_request_size];
        let mut sim = Sim {
            core: Core::new(config),
            now: start,
            sockets: Vec::new(),
            read_budget: UNLIMITED,
            flush_slice: UNLIMITED,
            by_key: HashMap::new(),
            read_buffer,
            refused: 0,
        };
        sim.core.handle_timeout(start);
        sim.apply_outputs();
        sim.check();
        sim
    }

    /// The configuration of the core.
    pub fn config(&self) -> &Config {
        self.core.config()
    }

    /// A socket by client.
    pub fn socket(&self, id: ClientId) -> &Socket {
        &self.sockets[id]
    }

    /// A socket by client, to change.
    pub fn socket_mut(&mut self, id: ClientId) -> &mut Socket {
        &mut self.sockets[id]
    }

    /// The client using a core key right now.
    pub fn client_of(&self, key: usize) -> Option<ClientId> {
        self.by_key.get(&key).copied()
    }

    /// The clients whose sockets the core still knows.
    pub fn open_clients(&self) -> Vec<ClientId> {
        let mut clients: Vec<ClientId> = self.by_key.values().copied().collect();
        clients.sort_unstable();
        clients
    }

    /// The core's phase for a client's connection, `None` once closed.
    pub fn phase(&self, id: ClientId) -> Option<Phase> {
        let socket = &self.sockets[id];
        if !socket.is_open() {
            return None;
        }
        self.core
            .connection(socket.key)
            .map(|connection| connection.phase)
    }

    /// Bytes queued for a client, 0 once closed.
    pub fn queued(&self, id: ClientId) -> usize {
        let socket = &self.sockets[id];
        if !socket.is_open() {
            return 0;
        }
        self.core
            .connection(socket.key)
            .map_or(0, |connection| connection.write_queue.queued_bytes())
    }

    // --- the shell's side ---

    /// A new socket on the main port; `None` when the core refuses it.
    pub fn connect(&mut self) -> Option<ClientId> {
        self.connect_with(Accepted::default())
    }

    /// A new socket, from where `accepted` says.
    pub fn connect_with(&mut self, accepted: Accepted) -> Option<ClientId> {
        let key = self.core.handle_accept(self.now, accepted);
        self.apply_outputs();
        let Some(key) = key else {
            self.refused += 1;
            self.check();
            return None;
        };
        if let Some(&other) = self.by_key.get(&key) {
            panic!("the core gave key {key} again while client {other} still holds it");
        }
        let id = self.sockets.len();
        self.sockets.push(Socket::new(key, self.now));
        self.by_key.insert(key, id);
        self.check();
        Some(id)
    }

    /// The client sends bytes; the server reads them in the next turn (or at [`Sim::read`]).
    pub fn send(&mut self, id: ClientId, bytes: &[u8]) {
        let socket = &mut self.sockets[id];
        assert!(
            !socket.client_done,
            "client {id} sends after its end of stream"
        );
        socket.inbound.extend_from_slice(bytes);
    }

    /// The client shuts down its sending side after what it sent.
    pub fn send_eof(&mut self, id: ClientId) {
        self.sockets[id].client_done = true;
    }

    /// Reads a socket now, as the shell does on a readable event: until nothing is left, the
    /// read budget is spent, or the core wants no more; then the end of stream, if it came.
    pub fn read(&mut self, id: ClientId) {
        let mut budget = self.read_budget;
        loop {
            let socket = &self.sockets[id];
            if !socket.is_open() {
                return;
            }
            let key = socket.key;
            let Some(kept) = self.core.take_pending(key, &mut self.read_buffer) else {
                return;
            };
            let socket = &mut self.sockets[id];
            if socket.inbound.is_empty() {
                if socket.client_done && !socket.eof_delivered {
                    socket.eof_delivered = true;
                    self.core.handle_eof(key, self.now);
                    self.apply_outputs();
                    self.check();
                }
                return;
            }
            let room = (self.read_buffer.len() - kept).min(budget);
            let count = socket.inbound.len().min(room);
            self.read_buffer[kept..kept + count].copy_from_slice(&socket.inbound[..count]);
            socket.inbound.drain(..count);
            socket.last_read_at = self.now;
            self.core
                .handle_read(key, &mut self.read_buffer[..kept + count], kept, self.now);
            self.apply_outputs();
            self.check();
            budget -= count.min(budget);
            if budget == 0 {
                return;
            }
        }
    }

    /// The socket failed (a reset): the shell tells the core.
    pub fn fail(&mut self, id: ClientId) {
        let socket = &self.sockets[id];
        if socket.is_open() {
            self.core.handle_error(socket.key);
            self.apply_outputs();
            self.check();
        }
    }

    /// A writability event for a socket, whether or not the core watches it (spurious events
    /// happen).
    pub fn writable(&mut self, id: ClientId) {
        let socket = &self.sockets[id];
        if socket.is_open() {
            self.core.handle_writable(socket.key);
            self.apply_outputs();
            self.check();
        }
    }

    /// The start of a turn at the current time: timers, then every socket's kernel buffer is
    /// as empty as its client keeps it.
    pub fn begin_turn(&mut self) {
        self.core.handle_timeout(self.now);
        self.apply_outputs();
        for socket in &mut self.sockets {
            socket.room = socket.accepts_per_turn;
        }
        self.check();
    }

    /// Reads every socket with bytes or an end of stream waiting, oldest client first.
    pub fn read_all(&mut self) {
        for id in 0..self.sockets.len() {
            let socket = &self.sockets[id];
            if socket.is_open()
                && (!socket.inbound.is_empty() || (socket.client_done && !socket.eof_delivered))
            {
                self.read(id);
            }
        }
    }

    /// Writability events for the sockets the core watches and that have room, then the
    /// turn's flush.
    pub fn end_turn(&mut self) {
        for id in 0..self.sockets.len() {
            let socket = &self.sockets[id];
            if socket.is_open() && socket.watching_writable && socket.room > 0 {
                self.core.handle_writable(socket.key);
                self.apply_outputs();
            }
        }
        self.flush();
    }

    /// One turn of the loop at the current time.
    pub fn turn(&mut self) {
        self.begin_turn();
        self.read_all();
        self.end_turn();
    }

    /// Moves the time on to `until`, with a turn at every timer the core asks for on the way
    /// and one at `until`, as a shell woken by nothing but its timers does.
    pub fn advance_to(&mut self, until: Millis) {
        assert!(until >= self.now, "time goes forward");
        loop {
            // After a graceful shutdown's deadline, `poll_timeout` stays at that past instant
            // (the real shell has exited by then): step a sweep at a time instead.
            let mut wake = self.core.poll_timeout();
            if wake <= self.now {
                wake = self.now.after(SWEEP_EVERY);
            }
            self.now = wake.min(until);
            self.turn();
            if self.now >= until {
                return;
            }
        }
    }

    /// Moves the time on by `duration`; see [`Sim::advance_to`].
    pub fn advance(&mut self, duration: Duration) {
        self.advance_to(self.now.after(duration));
    }

    /// The turn's flush: the queues of the next [`Sim::flush_slice`] connections waiting for
    /// their write are written into their sockets, as far as each socket takes it.
    pub fn flush(&mut self) {
        let now = self.now;
        let sockets = &mut self.sockets;
        let by_key = &self.by_key;
        let mut broken = None;
        self.core
            .flush_next(self.flush_slice, |key, slices: &[IoSlice<'_>]| {
                let Some(&id) = by_key.get(&key) else {
                    broken = Some(format!("write to key {key}, which the core closed"));
                    return Err(io::ErrorKind::NotConnected.into());
                };
                let socket = &mut sockets[id];
                if socket.write_shut_at.is_some() {
                    broken = Some(format!("write to client {id} after ShutdownWrite"));
                    return Err(io::ErrorKind::BrokenPipe.into());
                }
                if socket.room == 0 {
                    return Err(io::ErrorKind::WouldBlock.into());
                }
                let mut taken = 0;
                for slice in slices {
                    let take = slice.len().min(socket.room - taken);
                    if let Err(error) = socket.absorb(&slice[..take], now) {
                        broken.get_or_insert(format!("client {id}: {error}"));
                    }
                    taken += take;
                    if taken == socket.room {
                        break;
                    }
                }
                if socket.room != UNLIMITED {
                    socket.room -= taken;
                }
                Ok(taken)
            });
        if let Some(broken) = broken {
            panic!("at {} ms: {broken}", self.now.0);
        }
        self.apply_outputs();
        let config = self.core.config();
        let cap = config.hard_queue_cap() + config.max_message_size + 14;
        for (&key, &id) in &self.by_key {
            // Connections still waiting for their slice of the pass are judged at their write.
            let queued = self
                .core
                .connection(key)
                .filter(|connection| !connection.flags.has(Flags::FLUSH_SCHEDULED))
                .map_or(0, |connection| connection.write_queue.queued_bytes());
            assert!(
                queued <= cap,
                "at {} ms: client {id} holds {queued} queued bytes after its write, over {cap}",
                self.now.0
            );
        }
        self.check();
    }

    /// Starts the core's graceful shutdown.
    pub fn shutdown(&mut self) {
        self.core.handle_shutdown(self.now);
        self.apply_outputs();
        self.check();
    }

    /// Carries out the core's outputs, as the shell does after every call.
    pub fn apply_outputs(&mut self) {
        while let Some(output) = self.core.poll_output() {
            let key = match output {
                Output::Writable { key, .. } | Output::ShutdownWrite(key) | Output::Close(key) => {
                    key
                }
            };
            let Some(&id) = self.by_key.get(&key) else {
                panic!(
                    "at {} ms: {output:?} for key {key}, which no socket holds",
                    self.now.0
                );
            };
            let socket = &mut self.sockets[id];
            match output {
                Output::Writable { on, .. } => socket.watching_writable = on,
                Output::ShutdownWrite(_) => {
                    assert!(
                        socket.write_shut_at.is_none(),
                        "client {id} shut down twice"
                    );
                    socket.write_shut_at = Some(self.now);
                }
                Output::Close(_) => {
                    socket.closed_at = Some(self.now);
                    socket.watching_writable = false;
                    self.by_key.remove(&key);
                }
            }
        }
    }

    /// Checks the core's invariants and the deadlines; panics with what broke and when.
    pub fn check(&mut self) {
        if let Err(broken) = self.core.check_invariants() {
            panic!("at {} ms: invariant broken: {broken}", self.now.0);
        }
        let config = self.core.config();
        let (handshake_timeout, close_timeout, idle_timeout, message_timeout) = (
            config.handshake_timeout,
            config.close_timeout,
            config.idle_timeout,
            config.message_timeout,
        );
        let slack = SWEEP_EVERY + TICK;
        let now = self.now;
        for (&key, &id) in &self.by_key {
            let Some(connection) = self.core.connection(key) else {
                panic!("at {} ms: client {id}'s key {key} is open in the shell but unknown to the core", now.0);
            };
            let socket = &mut self.sockets[id];
            let phase = connection.phase;
            let since = match socket.observed {
                Some((observed, since)) if observed == phase => since,
                _ => {
                    socket.observed = Some((phase, now));
                    now
                }
            };
            let (limit, what) = match phase {
                Phase::Handshake => (handshake_timeout, "the handshake timeout"),
                Phase::Closing | Phase::Draining => (close_timeout, "the close timeout"),
                Phase::Open => {
                    let silent_since = socket.last_read_at.max(since);
                    if now > silent_since.after(idle_timeout + slack) {
                        panic!(
                            "at {} ms: client {id} silent since {} ms is still open past the idle timeout",
                            now.0, silent_since.0
                        );
                    }
                    if connection.decoder.is_idle() {
                        socket.message_seen_at = None;
                    } else {
                        let received = socket.messages();
                        let (started, seen_with) =
                            *socket.message_seen_at.get_or_insert((now, received));
                        let started = if seen_with != received {
                            socket.message_seen_at = Some((now, received));
                            now
                        } else {
                            started
                        };
                        if now > started.after(message_timeout + slack) {
                            panic!(
                                "at {} ms: client {id}'s message begun by {} ms is still open past the message timeout",
                                now.0, started.0
                            );
                        }
                    }
                    continue;
                }
            };
            if now > since.after(limit + slack) {
                panic!(
                    "at {} ms: client {id} {phase:?} since {} ms outlived {what}",
                    now.0, since.0
                );
            }
        }
    }

    // --- a client's side, for tests ---

    /// An upgrade request for `path`.
    pub fn upgrade_request(&self, id: ClientId, path: &str) -> Vec<u8> {
        let mut key = [0u8; 16];
        key[..8].copy_from_slice(&(id as u64).to_be_bytes());
        let handshake = ClientHandshake {
            host: "127.0.0.1:8080",
            target: path,
            key,
            protocols: &[],
            extra_headers: &[],
        };
        let mut out = Vec::new();
        handshake.write_request(&mut out);
        out
    }

    /// Connects a client and upgrades it into the room at `path` within one turn; panics if
    /// the server does not answer 101.
    pub fn open(&mut self, path: &str) -> ClientId {
        let id = self.connect().expect("the core accepts the socket");
        let request = self.upgrade_request(id, path);
        self.send(id, &request);
        self.turn();
        assert_eq!(
            self.sockets[id].status,
            Some(101),
            "client {id} was not upgraded"
        );
        id
    }

    /// The client sends a text message (one masked frame).
    pub fn send_text(&mut self, id: ClientId, text: &str) {
        let frame = self.sockets[id].frame(true, OpCode::Text, text.as_bytes());
        self.send(id, &frame);
    }

    /// The client sends a masked frame.
    pub fn send_frame(&mut self, id: ClientId, fin: bool, opcode: OpCode, payload: &[u8]) {
        let frame = self.sockets[id].frame(fin, opcode, payload);
        self.send(id, &frame);
    }

    /// The client sends a close frame.
    pub fn send_close(&mut self, id: ClientId, code: u16, reason: &str) {
        let frame = self.sockets[id].close_frame(code, reason);
        self.send(id, &frame);
    }
}
