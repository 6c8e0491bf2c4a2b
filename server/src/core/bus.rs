//! The bus in the core: rooms that span server processes through Redis pub/sub, with no
//! socket and no clock (the shell owns the two TCP connections; time is passed in).
//!
//! Two links, as every Redis pub/sub client needs in RESP2 (a connection that has subscribed
//! may only subscribe and unsubscribe): [`Link::Subscribe`] holds one `SUBSCRIBE` per room
//! with local members (sent when the room gets its first local member, `UNSUBSCRIBE` when it
//! loses its last, all of them again after a reconnect); [`Link::Publish`] carries one
//! `PUBLISH` per message from a local client, in an [envelope](crate::bus::envelope) tagged
//! with this node's id. Local members get the message at once, without waiting for the round
//! trip; a message from another node is framed once and shared by the local members exactly as
//! a local broadcast is (one compressed frame per deflate window); our own echoes are ignored.
//!
//! The shell's side of the contract, beside the core's usual calls:
//!
//! 1. [`Core::poll_bus_output`] until `None` after every call: `Connect(link)` asks for a
//!    nonblocking connect, `Disconnect(link)` for the socket to be dropped;
//! 2. [`Core::handle_bus_connected`] once the connect completes, [`Core::handle_bus_down`]
//!    when it fails or the socket breaks, [`Core::handle_bus_bytes`] with what was read;
//! 3. at the end of a turn, [`Core::bus_transmit`] gives the bytes to write to a link and
//!    [`Core::bus_transmitted`] says how many the socket took (watch for writability while
//!    some remain).
//!
//! Faults are counted, never silent: a message that cannot be published (the link is down)
//! or that was written but not confirmed when the link broke is `ws_bus_not_delivered_total`;
//! one refused because the outbound buffer (`--redis-buffer`) is full is
//! `ws_bus_dropped_total`. A link that fails is retried with capped, jittered exponential
//! backoff on the core's timers.

use std::collections::VecDeque;
use std::fmt::Write as _;
use std::rc::Rc;
use std::time::Duration;

use log::{debug, info, warn};
use protocol::frame::OpCode;

use super::{frame_once, split_server_frame, Core, Millis, Seat};
use crate::bus::envelope::{self, channel_name, room_of_channel, Envelope};
use crate::bus::resp::{self, Decoded, Limits, Value};

/// The first retry after a failure; doubled after each failure in a row.
pub(super) const BACKOFF_START: Duration = Duration::from_millis(100);
/// The longest wait between two connection attempts (also how often a down link is logged).
pub(super) const BACKOFF_CAP: Duration = Duration::from_secs(5);
/// How long a connect plus `AUTH`/`SELECT` may take before the attempt counts as failed.
pub(super) const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Channels named in one `SUBSCRIBE` when subscribing again after a reconnect.
const CHANNELS_PER_COMMAND: usize = 256;

/// One of the two connections to Redis.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Link {
    /// Carries `PUBLISH`.
    Publish,
    /// Carries `SUBSCRIBE`/`UNSUBSCRIBE` and receives the messages.
    Subscribe,
}

impl Link {
    /// Both links.
    pub const ALL: [Link; 2] = [Link::Publish, Link::Subscribe];

    fn index(self) -> usize {
        self as usize
    }

    fn name(self) -> &'static str {
        match self {
            Link::Publish => "publish",
            Link::Subscribe => "subscribe",
        }
    }
}

/// What the shell must do for the bus.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BusOutput {
    /// Open a TCP connection to Redis for this link (nonblocking), then call
    /// [`Core::handle_bus_connected`] or [`Core::handle_bus_down`].
    Connect(Link),
    /// Drop this link's socket; the core has forgotten it and will ask again.
    Disconnect(Link),
}

/// How the bus is set up.
#[derive(Debug, Clone)]
pub struct BusConfig {
    /// This process's id in every envelope it publishes.
    pub node_id: u64,
    /// `AUTH` and `SELECT`, sent first on each link (each must answer `+OK`).
    pub login: Vec<Vec<Vec<u8>>>,
    /// Bytes the publish link may hold unwritten; a message past it is dropped (counted).
    pub max_buffered_bytes: usize,
}

/// The bus's counters.
#[derive(Debug, Default, Clone)]
pub struct BusMetrics {
    /// `PUBLISH` commands queued for Redis.
    pub published: u64,
    /// Messages from other nodes delivered to local members.
    pub received: u64,
    /// Our own messages coming back, ignored.
    pub own_echoes: u64,
    /// Messages not published because the outbound buffer was full (Redis slow).
    pub dropped: u64,
    /// Messages that did not reach the other nodes: the publish link was down, or the message
    /// was written but not confirmed when the link broke.
    pub not_delivered: u64,
    /// Links made ready again after having been ready once.
    pub reconnects: u64,
    /// Connection attempts that failed (refused, timed out, broke, login refused).
    pub connect_failures: u64,
    /// Messages from the bus that were not ours to read (bad envelope, unknown channel).
    pub invalid: u64,
    /// Error replies to our commands.
    pub command_errors: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Not connected; connect again at `retry_at`.
    Down { retry_at: Millis },
    /// The shell is connecting.
    Connecting { since: Millis },
    /// Connected; `+OK`s still owed to `AUTH`/`SELECT`.
    LoggingIn { since: Millis, owed: usize },
    /// Logged in.
    Ready,
}

#[derive(Debug)]
struct LinkState {
    state: State,
    /// Bytes to write; `outbound[written..]` is what is left.
    outbound: Vec<u8>,
    written: usize,
    /// A reply cut by the end of a read.
    inbound: Vec<u8>,
    /// `PUBLISH` replies owed (publish link).
    unconfirmed: u64,
    backoff: Duration,
    ever_ready: bool,
}

impl LinkState {
    fn new(now: Millis) -> Self {
        LinkState {
            state: State::Down { retry_at: now },
            outbound: Vec::new(),
            written: 0,
            inbound: Vec::new(),
            unconfirmed: 0,
            backoff: BACKOFF_START,
            ever_ready: false,
        }
    }

    fn is_up(&self) -> bool {
        matches!(self.state, State::LoggingIn { .. } | State::Ready)
    }

    fn buffered(&self) -> usize {
        self.outbound.len() - self.written
    }
}

/// The bus's state, owned by the core.
pub(super) struct Bus {
    config: BusConfig,
    links: [LinkState; 2],
    outputs: VecDeque<BusOutput>,
    /// The subscription count Redis last told us (0 while the subscribe link is down).
    subscriptions: u64,
    metrics: BusMetrics,
    limits: Limits,
    /// xorshift state for the backoff's jitter.
    jitter: u64,
    /// Failed attempts not logged yet, and when a failure was last logged.
    failures_unlogged: u64,
    failure_logged_at: Option<Millis>,
}

impl Bus {
    fn new(config: BusConfig, now: Millis, max_message_size: usize, max_target: usize) -> Self {
        let limits = Limits {
            max_bulk_len: envelope::HEADER_LEN + max_target + max_message_size,
            // Pushes are 3 elements (`message`, channel, payload); replies are scalars.
            max_array_len: 8,
            max_depth: 1,
        };
        Bus {
            jitter: config.node_id | 1,
            config,
            links: [LinkState::new(now), LinkState::new(now)],
            outputs: VecDeque::new(),
            subscriptions: 0,
            metrics: BusMetrics::default(),
            limits,
            failures_unlogged: 0,
            failure_logged_at: None,
        }
    }

    fn link(&mut self, link: Link) -> &mut LinkState {
        &mut self.links[link.index()]
    }

    fn is_connected(&self) -> bool {
        self.links
            .iter()
            .all(|link| matches!(link.state, State::Ready))
    }

    /// The wait before the next attempt: the backoff with jitter (between half and all of
    /// it, so that nodes restarted together do not retry together), then doubled, capped.
    fn next_delay(&mut self, link: Link) -> Duration {
        self.jitter ^= self.jitter << 13;
        self.jitter ^= self.jitter >> 7;
        self.jitter ^= self.jitter << 17;
        let backoff = self.links[link.index()].backoff;
        let half = backoff.as_millis() as u64 / 2;
        let delay = Duration::from_millis(half + self.jitter % (half + 1));
        self.links[link.index()].backoff = (backoff * 2).min(BACKOFF_CAP);
        delay
    }

    /// The link broke or could not be made: count what was lost, schedule the retry.
    fn fail(&mut self, link: Link, now: Millis, why: &str) {
        if matches!(self.links[link.index()].state, State::Down { .. }) {
            return;
        }
        let was_ready = matches!(self.links[link.index()].state, State::Ready);
        let delay = self.next_delay(link);
        let state = self.link(link);
        let lost = state.unconfirmed;
        state.state = State::Down {
            retry_at: now.after(delay),
        };
        state.outbound = Vec::new();
        state.written = 0;
        state.inbound = Vec::new();
        state.unconfirmed = 0;
        self.metrics.not_delivered += lost;
        if link == Link::Subscribe {
            self.subscriptions = 0;
        }
        self.outputs.push_back(BusOutput::Disconnect(link));
        if was_ready {
            warn!(
                "redis {} link lost ({why}); local rooms go on, {lost} message(s) unconfirmed, retrying",
                link.name()
            );
            self.failures_unlogged = 0;
            self.failure_logged_at = Some(now);
        } else {
            self.metrics.connect_failures += 1;
            self.failures_unlogged += 1;
            if self
                .failure_logged_at
                .is_none_or(|at| now >= at.after(BACKOFF_CAP))
            {
                warn!(
                    "redis unreachable ({why}; {} failed attempt(s) since the last report); serving local rooms only, retrying with backoff up to {} s",
                    self.failures_unlogged,
                    BACKOFF_CAP.as_secs()
                );
                self.failures_unlogged = 0;
                self.failure_logged_at = Some(now);
            }
        }
    }

    fn send(&mut self, link: Link, arguments: &[&[u8]]) {
        resp::encode_command(&mut self.link(link).outbound, arguments);
    }

    fn subscribe(&mut self, channels: &[Vec<u8>], command: &[u8]) {
        if !self.links[Link::Subscribe.index()].is_up() {
            return; // subscribed again, all at once, when the link is back
        }
        for batch in channels.chunks(CHANNELS_PER_COMMAND) {
            let mut arguments: Vec<&[u8]> = Vec::with_capacity(batch.len() + 1);
            arguments.push(command);
            arguments.extend(batch.iter().map(Vec::as_slice));
            self.send(Link::Subscribe, &arguments);
        }
    }

    /// Queues one `PUBLISH`, built in place in the outbound buffer.
    fn publish(&mut self, room: &str, opcode: OpCode, payload: &[u8]) {
        let node_id = self.config.node_id;
        let max_buffered = self.config.max_buffered_bytes;
        let state = &mut self.links[Link::Publish.index()];
        if !state.is_up() {
            self.metrics.not_delivered += 1;
            return;
        }
        let channel_len = envelope::CHANNEL_PREFIX.len() + room.len();
        let envelope_len = Envelope::encoded_len(room, payload);
        let command_len = resp::encoded_len(&[7, channel_len, envelope_len]);
        if state.buffered() + command_len > max_buffered {
            self.metrics.dropped += 1;
            return;
        }
        // Give back the written front before growing.
        if state.written > 0 && state.written * 2 >= state.outbound.len() {
            state.outbound.drain(..state.written);
            state.written = 0;
        }
        let out = &mut state.outbound;
        resp::encode_array_header(out, 3);
        resp::encode_bulk_header(out, 7);
        out.extend_from_slice(b"PUBLISH\r\n");
        resp::encode_bulk_header(out, channel_len);
        out.extend_from_slice(envelope::CHANNEL_PREFIX.as_bytes());
        out.extend_from_slice(room.as_bytes());
        out.extend_from_slice(b"\r\n");
        resp::encode_bulk_header(out, envelope_len);
        Envelope {
            node_id,
            opcode,
            room,
            payload,
        }
        .encode(out);
        out.extend_from_slice(b"\r\n");
        state.unconfirmed += 1;
        self.metrics.published += 1;
    }

    fn render(&self, out: &mut String) {
        let gauges = [
            (
                "bus_connected",
                "1 while both Redis links (publish, subscribe) are up and logged in.",
                u64::from(self.is_connected()),
            ),
            (
                "bus_subscriptions",
                "Room channels subscribed, as Redis last counted them.",
                self.subscriptions,
            ),
            (
                "bus_buffered_bytes",
                "Bytes waiting to be written to Redis.",
                self.links.iter().map(|link| link.buffered() as u64).sum(),
            ),
        ];
        for (name, help, value) in gauges {
            let _ = writeln!(
                out,
                "# HELP ws_{name} {help}\n# TYPE ws_{name} gauge\nws_{name} {value}"
            );
        }
        let metrics = &self.metrics;
        let counters = [
            ("bus_published_total", "Messages published to Redis.", metrics.published),
            ("bus_received_total", "Messages from other nodes delivered to local members.", metrics.received),
            ("bus_own_echoes_total", "Our own messages back from Redis, ignored.", metrics.own_echoes),
            ("bus_dropped_total", "Messages not published: the buffer to Redis (--redis-buffer) was full.", metrics.dropped),
            ("bus_not_delivered_total", "Messages that did not reach other nodes: Redis down, or unconfirmed when the link broke.", metrics.not_delivered),
            ("bus_reconnects_total", "Redis links made ready again after a failure.", metrics.reconnects),
            ("bus_connect_failures_total", "Failed attempts to connect and log in to Redis.", metrics.connect_failures),
            ("bus_invalid_total", "Messages from the bus that were not ours to read.", metrics.invalid),
            ("bus_command_errors_total", "Error replies from Redis to our commands.", metrics.command_errors),
        ];
        for (name, help, value) in counters {
            let _ = writeln!(
                out,
                "# HELP ws_{name} {help}\n# TYPE ws_{name} counter\nws_{name} {value}"
            );
        }
    }
}

impl Core {
    /// Joins this process to the bus: both links are asked for at once (see
    /// [`Core::poll_bus_output`]).
    pub fn enable_bus(&mut self, config: BusConfig) {
        let bus = Bus::new(
            config,
            self.now,
            self.config.max_message_size,
            self.config.max_target_len,
        );
        self.bus = Some(Box::new(bus));
        self.bus_timeout(self.now);
    }

    /// The next thing the shell must do for the bus.
    pub fn poll_bus_output(&mut self) -> Option<BusOutput> {
        self.bus.as_mut()?.outputs.pop_front()
    }

    /// The link's TCP connection is made: log in, and on the subscribe link subscribe every
    /// room with local members.
    pub fn handle_bus_connected(&mut self, link: Link, now: Millis) {
        self.now = now;
        let Some(bus) = self.bus.as_deref_mut() else {
            return;
        };
        if !matches!(bus.link(link).state, State::Connecting { .. }) {
            return;
        }
        let login = bus.config.login.clone();
        for command in &login {
            let arguments: Vec<&[u8]> = command.iter().map(Vec::as_slice).collect();
            bus.send(link, &arguments);
        }
        bus.link(link).state = State::LoggingIn {
            since: now,
            owed: login.len(),
        };
        if login.is_empty() {
            bus_ready(bus, link);
        }
        if link == Link::Subscribe {
            let channels: Vec<Vec<u8>> = self
                .rooms
                .counts()
                .map(|(name, _)| channel_name(name))
                .collect();
            bus.subscribe(&channels, b"SUBSCRIBE");
        }
    }

    /// The link's connection failed or broke.
    pub fn handle_bus_down(&mut self, link: Link, now: Millis) {
        self.now = now;
        if let Some(bus) = self.bus.as_deref_mut() {
            bus.fail(link, now, "connection failed or closed");
        }
    }

    /// Bytes read from a link: replies and pushes, decoded and acted on.
    pub fn handle_bus_bytes(&mut self, link: Link, bytes: &[u8], now: Millis) {
        self.now = now;
        let Some(bus) = self.bus.as_deref_mut() else {
            return;
        };
        if !bus.link(link).is_up() {
            return;
        }
        let limits = bus.limits;
        let mut kept = std::mem::take(&mut bus.link(link).inbound);
        let joined = !kept.is_empty();
        if joined {
            kept.extend_from_slice(bytes);
        }
        let input: &[u8] = if joined { &kept } else { bytes };
        let mut used = 0;
        let failure = loop {
            match resp::decode(&input[used..], limits) {
                Ok(Decoded::Complete(len, value)) => {
                    used += len;
                    if let Err(why) = self.on_bus_value(link, value) {
                        break Some(why);
                    }
                }
                Ok(Decoded::Partial) => break None,
                Err(error) => break Some(error.to_string()),
            }
        };
        let Some(bus) = self.bus.as_deref_mut() else {
            return;
        };
        if let Some(why) = failure {
            bus.fail(link, now, &why);
            return;
        }
        let rest = if joined {
            kept.drain(..used);
            kept
        } else {
            bytes[used..].to_vec()
        };
        bus.link(link).inbound = rest;
    }

    /// The bytes waiting to be written to a link (empty when none, or the link is not up).
    pub fn bus_transmit(&self, link: Link) -> &[u8] {
        match self.bus.as_deref() {
            Some(bus) if bus.links[link.index()].is_up() => {
                let state = &bus.links[link.index()];
                &state.outbound[state.written..]
            }
            _ => &[],
        }
    }

    /// The socket took `written` bytes of [`Core::bus_transmit`].
    pub fn bus_transmitted(&mut self, link: Link, written: usize) {
        if let Some(bus) = self.bus.as_deref_mut() {
            let state = bus.link(link);
            state.written = (state.written + written).min(state.outbound.len());
            if state.written == state.outbound.len() {
                state.outbound.clear();
                state.written = 0;
                if state.outbound.capacity() > 1 << 20 {
                    state.outbound.shrink_to(64 * 1024);
                }
            }
        }
    }

    /// Whether both links are up and logged in.
    pub fn bus_connected(&self) -> bool {
        self.bus.as_deref().is_some_and(Bus::is_connected)
    }

    /// The bus's counters, if the bus is on.
    pub fn bus_metrics(&self) -> Option<&BusMetrics> {
        self.bus.as_deref().map(|bus| &bus.metrics)
    }

    /// Room channels subscribed, as Redis last counted them.
    pub fn bus_subscriptions(&self) -> u64 {
        self.bus.as_deref().map_or(0, |bus| bus.subscriptions)
    }

    // --- hooks called from the core's own paths ---

    /// The bus's timers: retries that are due, attempts that took too long.
    pub(super) fn bus_timeout(&mut self, now: Millis) {
        let Some(bus) = self.bus.as_deref_mut() else {
            return;
        };
        for link in Link::ALL {
            match bus.link(link).state {
                State::Down { retry_at } if now >= retry_at => {
                    bus.link(link).state = State::Connecting { since: now };
                    bus.outputs.push_back(BusOutput::Connect(link));
                }
                State::Connecting { since } | State::LoggingIn { since, .. }
                    if now >= since.after(CONNECT_TIMEOUT) =>
                {
                    bus.fail(link, now, "connect or login timed out");
                }
                _ => {}
            }
        }
    }

    /// When the bus's next timer is due, if it has one.
    pub(super) fn bus_poll_timeout(&self) -> Option<Millis> {
        let bus = self.bus.as_deref()?;
        bus.links
            .iter()
            .filter_map(|link| match link.state {
                State::Down { retry_at } => Some(retry_at),
                State::Connecting { since } | State::LoggingIn { since, .. } => {
                    Some(since.after(CONNECT_TIMEOUT))
                }
                State::Ready => None,
            })
            .min()
    }

    /// A member joined the room at `seat`: the room's first local member subscribes it.
    pub(super) fn bus_room_joined(&mut self, seat: Seat) {
        let Some(bus) = self.bus.as_deref_mut() else {
            return;
        };
        if self.rooms.members(seat.room).len() == 1 {
            if let Some(name) = self.rooms.name(seat.room) {
                bus.subscribe(&[channel_name(name)], b"SUBSCRIBE");
            }
        }
    }

    /// A member is about to leave the room at `seat`: the last local member unsubscribes it.
    pub(super) fn bus_room_leaving(&mut self, seat: Seat) {
        let Some(bus) = self.bus.as_deref_mut() else {
            return;
        };
        if self.rooms.members(seat.room).len() == 1 {
            if let Some(name) = self.rooms.name(seat.room) {
                bus.subscribe(&[channel_name(name)], b"UNSUBSCRIBE");
            }
        }
    }

    /// A local client's message, framed for its room: published once for the other nodes.
    pub(super) fn bus_publish(&mut self, sender: usize, frame: &Rc<[u8]>) {
        let Some(bus) = self.bus.as_deref_mut() else {
            return;
        };
        let Some(seat) = self.connections[sender].seat.get() else {
            return;
        };
        let Some(room) = self.rooms.name(seat.room) else {
            return;
        };
        let (opcode, payload) = split_server_frame(frame);
        bus.publish(room, opcode, payload);
    }

    /// Appends the `ws_bus_*` lines to `/metrics`.
    pub(super) fn render_bus_metrics(&self, out: &mut String) {
        if let Some(bus) = self.bus.as_deref() {
            bus.render(out);
        }
    }

    // --- from the bus to the room ---

    fn on_bus_value(&mut self, link: Link, value: Value<'_>) -> Result<(), String> {
        let Some(bus) = self.bus.as_deref_mut() else {
            return Ok(());
        };
        if let State::LoggingIn { owed, .. } = bus.link(link).state {
            if owed > 0 {
                return match value {
                    Value::Simple(b"OK") => {
                        bus.link(link).state = match bus.link(link).state {
                            State::LoggingIn { since, owed } => State::LoggingIn {
                                since,
                                owed: owed - 1,
                            },
                            other => other,
                        };
                        if owed == 1 {
                            bus_ready(bus, link);
                        }
                        Ok(())
                    }
                    Value::Error(text) => Err(format!(
                        "redis refused the login: {}",
                        String::from_utf8_lossy(text)
                    )),
                    other => Err(format!("unexpected answer to the login: {other:?}")),
                };
            }
        }
        match (link, value) {
            (_, Value::Error(text)) => {
                bus.metrics.command_errors += 1;
                debug!(
                    "redis {} link: error reply: {}",
                    link.name(),
                    String::from_utf8_lossy(text)
                );
                if link == Link::Publish {
                    let state = bus.link(link);
                    state.unconfirmed = state.unconfirmed.saturating_sub(1);
                }
                Ok(())
            }
            (Link::Publish, Value::Integer(_)) => {
                let state = bus.link(link);
                state.unconfirmed = state.unconfirmed.saturating_sub(1);
                Ok(())
            }
            (Link::Subscribe, Value::Array(Some(parts))) => {
                match parts.as_slice() {
                    [kind, channel, payload] => match kind.as_bytes() {
                        Some(b"message") => {
                            let (Some(channel), Some(payload)) =
                                (channel.as_bytes(), payload.as_bytes())
                            else {
                                bus.metrics.invalid += 1;
                                return Ok(());
                            };
                            self.deliver_from_bus(channel, payload);
                        }
                        Some(b"subscribe" | b"unsubscribe") => {
                            if let Value::Integer(count) = payload {
                                bus.subscriptions = (*count).max(0) as u64;
                            }
                        }
                        _ => bus.metrics.invalid += 1,
                    },
                    _ => bus.metrics.invalid += 1,
                }
                Ok(())
            }
            (_, other) => Err(format!("unexpected from redis: {other:?}")),
        }
    }

    /// A message from the bus: another node's is framed once and shared by the room's local
    /// members, through the same path as a local broadcast; our own is ignored.
    fn deliver_from_bus(&mut self, channel: &[u8], payload: &[u8]) {
        let Some(bus) = self.bus.as_deref_mut() else {
            return;
        };
        let Some(envelope) = Envelope::decode(payload) else {
            bus.metrics.invalid += 1;
            return;
        };
        if room_of_channel(channel) != Some(envelope.room)
            || envelope.payload.len() > self.config.max_message_size
        {
            bus.metrics.invalid += 1;
            return;
        }
        if envelope.node_id == bus.config.node_id {
            bus.metrics.own_echoes += 1;
            return;
        }
        bus.metrics.received += 1;
        let Some(room) = self.rooms.find(envelope.room) else {
            return; // its last member left while the UNSUBSCRIBE was on its way
        };
        // The same path as a local broadcast (sender none): one compressed frame per deflate
        // window in use, shared; kept in the room's history like a local message.
        let frame = frame_once(envelope.opcode, envelope.payload);
        self.broadcast_to_room(room, &frame, None);
        self.rooms.record(room, &frame);
        self.close_slow_consumers();
        self.close_slow_consumers();
    }
}

/// A link has logged in.
fn bus_ready(bus: &mut Bus, link: Link) {
    let state = bus.link(link);
    state.state = State::Ready;
    state.backoff = BACKOFF_START;
    let again = state.ever_ready;
    state.ever_ready = true;
    if again {
        bus.metrics.reconnects += 1;
    }
    bus.failures_unlogged = 0;
    if bus.is_connected() {
        info!(
            "redis {}: node {:016x} on the bus{}",
            if again { "back" } else { "connected" },
            bus.config.node_id,
            if again {
                ", every room with local members subscribed again"
            } else {
                ""
            }
        );
    }
}

#[cfg(test)]
mod tests;
