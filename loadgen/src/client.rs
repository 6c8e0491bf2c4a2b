//! One client connection as a state machine without sockets: the handshake, frames in and out,
//! probes, and the accounting of what it receives. The worker's shell (`worker.rs`) owns the
//! socket and the clock; it tells a client what happened and writes what the client queued.
//!
//! The order a caller follows:
//! 1. [`Client::start_connecting`] when the TCP connect begins, [`Client::handle_connected`]
//!    when it completes (the upgrade request is queued, or in raw mode the client is open);
//! 2. [`Client::handle_input`] with every read, the bytes kept from the last read first
//!    ([`Client::take_pending`]): handshake response, frames, probes;
//! 3. [`Client::queue_probe`] when the schedule says so;
//! 4. after each of these, write [`Client::outgoing`] and [`Client::consume_outgoing`] what the
//!    socket took;
//! 5. [`Client::timed_out`] now and then while it connects.
//!
//! Deliveries are parsed straight from the caller's read buffer: nothing is allocated per
//! message.

use protocol::close::{encode_payload, CloseCode};
use protocol::deflate::{DeflateOffer, DeflateParameters, Inflater};
use protocol::frame::{
    encode_compressed_frame, encode_frame, encode_header, OpCode, Role, MAX_HEADER_LEN,
};
use protocol::handshake::client::{ClientHandshake, ExpectedResponse};
use protocol::mask::apply_mask;
use protocol::message::{Decoder, Event, Incoming};
use protocol::Status;

use crate::compression::Codec;

use crate::accounting::ReceiverBook;
use crate::measurements::{Judge, Measurements, Receiver, ReceiverIdentity, Window};
use crate::plan::Plan;
use crate::probe::{Probe, PROBE_HEADER_LEN};
use crate::template::{Envelope, Placeholders};

/// Handshake responses longer than this are refused.
pub(crate) const MAX_RESPONSE_HEAD: usize = 16 * 1024;
/// A raw-mode line longer than this closes the connection.
const MAX_LINE: usize = 1 << 20;
/// Largest message a client accepts.
const MAX_MESSAGE: usize = 64 << 20;

/// Where a client is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum State {
    /// Not started yet (waiting for its turn in the connect ramp).
    Waiting,
    /// TCP connect under way since this time.
    Connecting { since_ns: u64 },
    /// Upgrade request sent at `request_ns`; connect began at `since_ns`.
    Handshaking { since_ns: u64, request_ns: u64 },
    /// The WebSocket is open.
    Open,
    /// Gone: failed, closed by the server, or closed by us at the end.
    Closed,
}

/// Why a client must be closed, as the shell should report it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Ending {
    /// What happened, e.g. `handshake: HTTP 404` or `closed by server with 1001`.
    pub reason: String,
}

/// One connection and what it has seen.
#[derive(Debug)]
pub(crate) struct Client {
    /// Global client number.
    pub id: u32,
    /// The room it is in.
    pub room: u32,
    /// Which of the plan's targets (URLs) it connects to.
    pub target: usize,
    /// Its sender index, if it sends.
    pub sender: Option<u32>,
    /// Where it is in its life.
    pub state: State,
    /// Receive side of the protocol.
    decoder: Decoder,
    /// Bytes of a cut response head, frame or line, kept until the next read.
    pending: Vec<u8>,
    /// Bytes to send that the socket has not taken yet.
    outgoing: Vec<u8>,
    /// This sender's next message number `k`.
    pub next_k: u64,
    /// What it has received, per sender.
    pub book: ReceiverBook,
    /// Whether it was open when sending started (a sender then sends).
    pub open_at_start: bool,
    /// The messages owed to it, set when it opens during the run or when sending starts.
    pub window: Option<Window>,
    /// When it leaves as planned, ns from the schedule's start (`--connection-stages`).
    pub leave_ns: Option<u64>,
    /// Whether it sent a close frame (it then answers none).
    close_sent: bool,
    /// State of the mask generator.
    rng: u64,
    /// The nonce behind its `Sec-WebSocket-Key`.
    key: [u8; 16],
    /// The text around its probes (empty without a template).
    envelope: Envelope,
    /// permessage-deflate as agreed in the handshake, if it was offered and accepted.
    deflate: Option<DeflateParameters>,
    /// Its own inflater, when its server takes over context from one message to the next.
    inflater: Option<Box<Inflater>>,
}

impl Client {
    /// A client not yet started.
    pub(crate) fn new(id: u32, room: u32, sender: Option<u32>, seed: u64) -> Self {
        let mut client = Client {
            id,
            room,
            target: 0,
            sender,
            state: State::Waiting,
            decoder: Decoder::new(Role::Client, MAX_MESSAGE),
            pending: Vec::new(),
            outgoing: Vec::new(),
            next_k: 0,
            book: ReceiverBook::default(),
            open_at_start: false,
            window: None,
            leave_ns: None,
            close_sent: false,
            rng: seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1,
            key: [0; 16],
            envelope: Envelope::default(),
            deflate: None,
            inflater: None,
        };
        let first = client.next_random().to_le_bytes();
        let second = client.next_random().to_le_bytes();
        client.key[..8].copy_from_slice(&first);
        client.key[8..].copy_from_slice(&second);
        client
    }

    /// A client of `plan`: its sends are wrapped in the plan's message template, if any.
    pub(crate) fn for_plan(
        plan: &Plan,
        id: u32,
        room: u32,
        sender: Option<u32>,
        seed: u64,
    ) -> Self {
        let mut client = Client::new(id, room, sender, seed);
        client.target = crate::target::target_of(id, plan.rooms, plan.targets.len());
        if let (Some(template), Some(_)) = (&plan.message_template, sender) {
            client.envelope = template.envelope(&client.placeholders());
        }
        client
    }

    /// Who it is, for `{room}`, `{client}` and `{sender}`.
    pub(crate) fn placeholders(&self) -> Placeholders {
        Placeholders {
            room: self.room,
            client: self.id,
            sender: self.sender,
        }
    }

    /// xorshift64*: masking keys need not be secret from a load generator's own server under
    /// test, but they must vary (RFC 6455 §5.3); this is fast and allocation-free.
    fn next_random(&mut self) -> u64 {
        self.rng ^= self.rng >> 12;
        self.rng ^= self.rng << 25;
        self.rng ^= self.rng >> 27;
        self.rng.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn next_mask(&mut self) -> [u8; 4] {
        (self.next_random() as u32).to_le_bytes()
    }

    /// The TCP connect began.
    pub(crate) fn start_connecting(&mut self, now: u64) {
        self.state = State::Connecting { since_ns: now };
    }

    /// The TCP connect completed: queue the upgrade request (RFC 6455 §4.1), or in raw mode
    /// the client is open at once and the connect time is its handshake time.
    pub(crate) fn handle_connected(
        &mut self,
        plan: &Plan,
        now: u64,
        judge: &Judge,
        measurements: &mut Measurements,
    ) {
        let State::Connecting { since_ns } = self.state else {
            return;
        };
        if plan.raw {
            let latency_us = (now.saturating_sub(since_ns) / 1000).max(1);
            measurements.handshake.saturating_record(latency_us);
            if let Some(per_target) = measurements.per_target.get_mut(self.target) {
                per_target.handshake.saturating_record(latency_us);
            }
            self.open(now, judge);
            return;
        }
        let protocols: Vec<&str> = plan.subprotocols.iter().map(String::as_str).collect();
        let who = self.placeholders();
        let filled: Vec<(&str, String)> = plan
            .headers
            .iter()
            .map(|(name, value)| (name.as_str(), who.fill(value)))
            .collect();
        let headers: Vec<(&str, &str)> = filled
            .iter()
            .map(|(name, value)| (*name, value.as_str()))
            .collect();
        let target = &plan.targets[self.target];
        let handshake = ClientHandshake {
            host: &target.host_header,
            target: &target.room_targets[self.room as usize],
            key: self.key,
            protocols: &protocols,
            extra_headers: &headers,
        };
        if plan.compress {
            handshake.write_request_with_deflate(&mut self.outgoing, &DeflateOffer::browser());
        } else {
            handshake.write_request(&mut self.outgoing);
        }
        self.state = State::Handshaking {
            since_ns,
            request_ns: now,
        };
    }

    /// Whether it has been connecting for longer than the plan allows, and at which stage.
    pub(crate) fn timed_out(&self, plan: &Plan, now: u64) -> Option<&'static str> {
        match self.state {
            State::Connecting { since_ns }
                if now.saturating_sub(since_ns) > plan.connect_timeout_ns =>
            {
                Some("connect: timed out")
            }
            State::Handshaking { since_ns, .. }
                if now.saturating_sub(since_ns) > plan.connect_timeout_ns =>
            {
                Some("handshake: timed out")
            }
            _ => None,
        }
    }

    /// How many bytes were kept from the last read; the caller puts them at the start of its
    /// read buffer with [`Client::take_pending`] and reads after them.
    pub(crate) fn pending_len(&self) -> usize {
        self.pending.len()
    }

    /// Copies the kept bytes to the start of `buffer` (at least [`Client::pending_len`] long)
    /// and returns their length.
    pub(crate) fn take_pending(&mut self, buffer: &mut [u8]) -> usize {
        let kept = self.pending.len();
        buffer[..kept].copy_from_slice(&self.pending);
        self.pending.clear();
        kept
    }

    fn keep(&mut self, rest: &[u8]) {
        self.pending.clear();
        self.pending.extend_from_slice(rest);
        if self.pending.is_empty() && self.pending.capacity() > 4096 {
            self.pending = Vec::new();
        }
    }

    /// The handshake completed at `now`. Once the schedule is known, the client is owed what
    /// is sent while it is a member (see [`Window`]): everything if it opened before the
    /// schedule's start. Before that, sending's start sets its window.
    fn open(&mut self, now: u64, judge: &Judge) {
        self.state = State::Open;
        if let (Some(schedule), None) = (judge.schedule, self.window) {
            let joined_ns = now.checked_sub(schedule.start_ns);
            self.window = Some(Window::of_member(joined_ns, self.leave_ns));
        }
    }

    /// Who it is as a receiver.
    pub(crate) fn identity(&self) -> ReceiverIdentity {
        ReceiverIdentity {
            own_sender: self.sender,
            room: self.room,
            target: self.target,
            window: self.window,
        }
    }

    /// Handles bytes read from the server (the kept bytes first). Returns why the connection
    /// must end, if it must; a close frame to send may then be queued.
    pub(crate) fn handle_input(
        &mut self,
        input: &mut [u8],
        now: u64,
        plan: &Plan,
        judge: &Judge,
        measurements: &mut Measurements,
        codec: &mut Codec,
    ) -> Result<(), Ending> {
        let mut start = 0;
        if let State::Handshaking {
            since_ns,
            request_ns,
        } = self.state
        {
            let protocols: Vec<&str> = plan.subprotocols.iter().map(String::as_str).collect();
            let expected = ExpectedResponse {
                key: self.key,
                protocols: &protocols,
                deflate: plan.compress.then(DeflateOffer::browser),
            };
            match expected.read_response(input) {
                Ok(Status::Partial) => {
                    if input.len() > MAX_RESPONSE_HEAD {
                        return Err(ending("handshake: response head too large"));
                    }
                    self.keep(input);
                    return Ok(());
                }
                Ok(Status::Complete(accepted)) => {
                    start = accepted.head_len;
                    if let Some(parameters) = accepted.deflate {
                        self.deflate = Some(parameters);
                        self.decoder = Decoder::new(Role::Client, MAX_MESSAGE).with_deflate(true);
                        if parameters.peer_takes_over_context(Role::Client) {
                            self.inflater = Some(Box::new(Inflater::with_context_takeover(
                                parameters.window_bits_for(Role::Server),
                            )));
                        }
                        measurements.compressed_connections += 1;
                    }
                }
                Err(protocol::Error::UnexpectedStatus(status)) => {
                    return Err(ending(&format!("handshake: HTTP {status}")));
                }
                Err(error) => return Err(ending(&format!("handshake: {error}"))),
            }
            let latency_us = (now.saturating_sub(since_ns) / 1000).max(1);
            measurements.handshake.saturating_record(latency_us);
            if let Some(per_target) = measurements.per_target.get_mut(self.target) {
                per_target.handshake.saturating_record(latency_us);
            }
            measurements
                .upgrade
                .saturating_record((now.saturating_sub(request_ns) / 1000).max(1));
            self.open(now, judge);
            if let Some(text) = &plan.first_message {
                let text = self.placeholders().fill(text);
                self.queue_frame(OpCode::Text, text.as_bytes());
            }
        }
        if self.state != State::Open {
            return Ok(());
        }
        if plan.raw {
            self.handle_lines(&input[start..], now, judge, measurements)
        } else {
            self.handle_frames(&mut input[start..], now, judge, measurements, codec)
        }
    }

    /// Raw mode: every complete line is one message; a cut line waits for the next read.
    fn handle_lines(
        &mut self,
        input: &[u8],
        now: u64,
        judge: &Judge,
        measurements: &mut Measurements,
    ) -> Result<(), Ending> {
        let mut start = 0;
        while let Some(end) = input[start..].iter().position(|&b| b == b'\n') {
            let mut receiver = Receiver {
                identity: self.identity(),
                book: &mut self.book,
            };
            measurements.record_message(judge, &mut receiver, &input[start..start + end], now);
            start += end + 1;
        }
        if input.len() - start > MAX_LINE {
            return Err(ending("a line longer than 1 MiB"));
        }
        self.keep(&input[start..]);
        Ok(())
    }

    fn handle_frames(
        &mut self,
        input: &mut [u8],
        now: u64,
        judge: &Judge,
        measurements: &mut Measurements,
        codec: &mut Codec,
    ) -> Result<(), Ending> {
        let mut start = 0;
        loop {
            let mut receiver = Receiver {
                identity: self.identity(),
                book: &mut self.book,
            };
            let mut pong: Option<([u8; 125], usize)> = None;
            let mut closed_with: Option<u16> = None;
            let mut broken: Option<protocol::Error> = None;
            match self.decoder.decode_incoming(&mut input[start..]) {
                Ok((consumed, incoming)) => {
                    start += consumed;
                    let Some(incoming) = incoming else {
                        self.keep(&input[start..]);
                        return Ok(());
                    };
                    match incoming {
                        Incoming::Compressed(message) => {
                            let inflater = match self.inflater.as_deref_mut() {
                                Some(own) => own,
                                None => &mut codec.inflater,
                            };
                            match message.inflate(inflater, MAX_MESSAGE, &mut codec.inflated) {
                                Ok(event) => {
                                    let data = event.data().expect("inflated messages are data");
                                    measurements.payload_bytes_received += data.len() as u64;
                                    measurements.record_message(judge, &mut receiver, data, now);
                                }
                                Err(error) => broken = Some(error),
                            }
                        }
                        Incoming::Event(event @ (Event::Text(_) | Event::Binary(_))) => {
                            let data = event.data().expect("text and binary events carry data");
                            measurements.payload_bytes_received += data.len() as u64;
                            measurements.record_message(judge, &mut receiver, data, now);
                        }
                        Incoming::Event(Event::Ping(payload)) => {
                            let mut copy = [0u8; 125];
                            let len = payload.len().min(125);
                            copy[..len].copy_from_slice(&payload[..len]);
                            pong = Some((copy, len));
                        }
                        Incoming::Event(Event::Pong(_)) => {}
                        Incoming::Event(Event::Close(close)) => {
                            closed_with = Some(close.code.map_or(1005, |code| code.0));
                        }
                    }
                }
                Err(error) => broken = Some(error),
            }
            if let Some(error) = broken {
                *measurements
                    .protocol_errors
                    .entry(error.to_string())
                    .or_default() += 1;
                self.queue_close(error.close_code().unwrap_or(CloseCode::PROTOCOL_ERROR));
                return Err(ending(&format!("server broke a rule: {error}")));
            }
            if let Some((payload, len)) = pong {
                self.queue_frame(OpCode::Pong, &payload[..len]);
            }
            if let Some(code) = closed_with {
                *measurements.close_codes.entry(code).or_default() += 1;
                let reply = if code == 1005 {
                    CloseCode::NORMAL
                } else {
                    CloseCode(code)
                };
                if !self.close_sent {
                    self.queue_close(reply);
                }
                return Err(ending(&format!("closed by server with {code}")));
            }
        }
    }

    /// Queues a probe message of at least `payload_len` bytes, framed and masked in place, or
    /// one newline-terminated line in raw mode. With a template, the probe sits in its envelope
    /// and is padded so that the whole message is at least `payload_len` bytes. With
    /// permessage-deflate agreed, the message goes out compressed (RSV1), as a browser's do.
    /// Returns the message's size before compression.
    pub(crate) fn queue_probe(
        &mut self,
        probe: &Probe,
        payload_len: usize,
        binary: bool,
        raw: bool,
        codec: &mut Codec,
    ) -> usize {
        let around = self.envelope.before.len() + self.envelope.after.len();
        let line_end = usize::from(raw);
        let probe_len = payload_len
            .saturating_sub(around + line_end)
            .max(PROBE_HEADER_LEN);
        let message_len = around + probe_len + line_end;
        let opcode = if binary { OpCode::Binary } else { OpCode::Text };
        if let Some(parameters) = self.deflate {
            codec.plain.clear();
            write_message(&mut codec.plain, &self.envelope, probe, probe_len);
            codec.compress_plain(parameters.window_bits_for(Role::Client));
            let mask = self.next_mask();
            encode_compressed_frame(&mut self.outgoing, opcode, &codec.compressed, Some(mask));
            return message_len;
        }
        let mask = if raw {
            None
        } else {
            let mask = self.next_mask();
            let mut header = [0u8; MAX_HEADER_LEN];
            let header_len =
                encode_header(&mut header, true, opcode, message_len as u64, Some(mask));
            self.outgoing.extend_from_slice(&header[..header_len]);
            Some(mask)
        };
        let start = self.outgoing.len();
        write_message(&mut self.outgoing, &self.envelope, probe, probe_len);
        if raw {
            self.outgoing.push(b'\n');
        }
        if let Some(mask) = mask {
            apply_mask(&mut self.outgoing[start..], mask, 0);
        }
        message_len
    }

    /// Queues a whole frame.
    pub(crate) fn queue_frame(&mut self, opcode: OpCode, payload: &[u8]) {
        let mask = self.next_mask();
        encode_frame(&mut self.outgoing, true, opcode, payload, Some(mask));
    }

    /// Queues a close frame.
    pub(crate) fn queue_close(&mut self, code: CloseCode) {
        let mut payload = Vec::with_capacity(2);
        encode_payload(&mut payload, code, "");
        self.queue_frame(OpCode::Close, &payload);
        self.close_sent = true;
    }

    /// The bytes waiting to be written.
    pub(crate) fn outgoing(&self) -> &[u8] {
        &self.outgoing
    }

    /// The socket took `written` bytes of [`Client::outgoing`].
    pub(crate) fn consume_outgoing(&mut self, written: usize) {
        self.outgoing.drain(..written);
        if self.outgoing.is_empty() && self.outgoing.capacity() > 64 * 1024 {
            self.outgoing = Vec::new();
        }
    }

    /// The connection is gone: let go of buffers.
    pub(crate) fn close(&mut self) {
        self.state = State::Closed;
        self.pending = Vec::new();
        self.outgoing = Vec::new();
    }
}

/// Appends a probe of `probe_len` bytes in its envelope to `out`.
fn write_message(out: &mut Vec<u8>, envelope: &Envelope, probe: &Probe, probe_len: usize) {
    out.extend_from_slice(&envelope.before);
    let probe_start = out.len();
    out.resize(probe_start + probe_len, 0);
    probe.write(&mut out[probe_start..]);
    out.extend_from_slice(&envelope.after);
}

fn ending(reason: &str) -> Ending {
    Ending {
        reason: reason.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::RunKind;
    use protocol::handshake::accept_value;

    fn plan() -> Plan {
        Plan {
            kind: RunKind::Fanout,
            targets: vec![crate::target::parse_target("ws://127.0.0.1:1/", 1).unwrap()],
            tls: None,
            headers: Vec::new(),
            subprotocols: Vec::new(),
            first_message: Some("join".into()),
            source_ips: Vec::new(),
            connect_rate: 1000.0,
            connect_timeout_ns: 1_000_000_000,
            threads: 1,
            payload: 64,
            message_template: None,
            compress: false,
            binary: false,
            raw: false,
            kernel_timestamps: false,
            run_id: 9,
            shape: crate::schedule::Shape::constant(1000.0, 1.0),
            interval_ns: 0,
            senders: 2,
            sender_base: 0,
            total_senders: 2,
            rooms: 1,
            expect_self: None,
            warmup_s: 0.0,
            connection_ramp: None,
        }
    }

    fn judge() -> Judge {
        Judge::for_tests(9)
    }

    /// Hands `wire` to the client as one read at `now`.
    fn feed(
        client: &mut Client,
        plan: &Plan,
        measurements: &mut Measurements,
        wire: &mut [u8],
        now: u64,
    ) -> Result<(), Ending> {
        client.handle_input(
            wire,
            now,
            plan,
            &judge(),
            measurements,
            &mut Codec::default(),
        )
    }

    /// Takes everything the client queued, as a socket that wrote it all.
    fn written(client: &mut Client) -> Vec<u8> {
        let bytes = client.outgoing().to_vec();
        client.consume_outgoing(bytes.len());
        bytes
    }

    /// A client through its handshake, answered by a correct server in memory.
    fn open_client(measurements: &mut Measurements) -> Client {
        let plan = plan();
        let mut client = Client::new(0, 0, Some(0), 42);
        client.start_connecting(1_000);
        client.handle_connected(&plan, 2_000, &judge(), measurements);
        let (_, mut response) = accept(&mut client, "");
        feed(&mut client, &plan, measurements, &mut response, 5_000).unwrap();
        client
    }

    /// Takes the client's upgrade request; returns it and a correct server's 101 with
    /// `headers` (each line ending in CRLF) added.
    fn accept(client: &mut Client, headers: &str) -> (String, Vec<u8>) {
        let request = String::from_utf8(written(client)).unwrap();
        let key = request
            .lines()
            .find_map(|line| line.strip_prefix("Sec-WebSocket-Key: "))
            .unwrap();
        let response = format!(
            "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: {}\r\n{headers}\r\n",
            accept_value(key.as_bytes())
        );
        (request, response.into_bytes())
    }

    fn server_frame(payload: &[u8]) -> Vec<u8> {
        let mut wire = Vec::new();
        encode_frame(&mut wire, true, OpCode::Text, payload, None);
        wire
    }

    fn probe(sender: u32, sequence: u64) -> Vec<u8> {
        let mut bytes = vec![0u8; 64];
        Probe {
            run: 9,
            sender,
            sequence,
            intended_ns: 0,
        }
        .write(&mut bytes);
        bytes
    }

    #[test]
    fn the_handshake_opens_the_client_and_sends_the_first_message() {
        let mut measurements = Measurements::tracking(1000, 1);
        let client = open_client(&mut measurements);
        assert_eq!(client.state, State::Open);
        assert_eq!(measurements.handshake.len(), 1);
        // The first message went out as a masked text frame.
        let mut decoder = Decoder::new(Role::Server, 1024);
        let mut wire = client.outgoing().to_vec();
        let (_, event) = decoder.decode(&mut wire).unwrap();
        assert_eq!(event, Some(Event::Text("join")));
    }

    #[test]
    fn a_refused_handshake_ends_with_the_status() {
        let plan = plan();
        let mut measurements = Measurements::default();
        let mut client = Client::new(0, 0, None, 1);
        client.start_connecting(0);
        client.handle_connected(&plan, 1, &judge(), &mut measurements);
        let mut response = b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n".to_vec();
        let ending = feed(&mut client, &plan, &mut measurements, &mut response, 2).unwrap_err();
        assert_eq!(ending.reason, "handshake: HTTP 404");
    }

    #[test]
    fn frames_cut_anywhere_are_all_recorded_once() {
        let plan = plan();
        let mut wire = Vec::new();
        for sequence in 0..5 {
            wire.extend_from_slice(&server_frame(&probe(1, sequence)));
        }
        for cut in 1..wire.len() {
            let mut measurements = Measurements::tracking(1000, 1);
            let mut client = open_client(&mut measurements);
            client.window = Some(Window::WHOLE_RUN);
            for piece in [&wire[..cut], &wire[cut..]] {
                let mut buffer = vec![0u8; 4096];
                let kept = client.take_pending(&mut buffer);
                buffer[kept..kept + piece.len()].copy_from_slice(piece);
                client
                    .handle_input(
                        &mut buffer[..kept + piece.len()],
                        1_000_000,
                        &plan,
                        &judge(),
                        &mut measurements,
                        &mut Codec::default(),
                    )
                    .unwrap();
            }
            assert_eq!(measurements.received, 5, "cut at {cut}");
        }
    }

    #[test]
    fn a_ping_is_answered_and_a_close_ends_the_client() {
        let plan = plan();
        let mut measurements = Measurements::default();
        let mut client = open_client(&mut measurements);
        written(&mut client);
        let mut wire = Vec::new();
        encode_frame(&mut wire, true, OpCode::Ping, b"abc", None);
        let mut close = Vec::new();
        encode_payload(&mut close, CloseCode::GOING_AWAY, "bye");
        encode_frame(&mut wire, true, OpCode::Close, &close, None);
        let ending = feed(&mut client, &plan, &mut measurements, &mut wire, 1).unwrap_err();
        assert_eq!(ending.reason, "closed by server with 1001");
        assert_eq!(measurements.close_codes.get(&1001), Some(&1));
        let mut decoder = Decoder::new(Role::Server, 1024);
        let mut out = client.outgoing().to_vec();
        let (consumed, event) = decoder.decode(&mut out).unwrap();
        assert_eq!(event, Some(Event::Pong(b"abc")));
        let (_, event) = decoder.decode(&mut out[consumed..]).unwrap();
        assert!(matches!(event, Some(Event::Close(_))));
    }

    #[test]
    fn a_client_that_closes_first_keeps_receiving_and_does_not_answer_the_servers_close() {
        let plan = plan();
        let mut measurements = Measurements::tracking(1000, 1);
        let mut client = open_client(&mut measurements);
        client.window = Some(Window::WHOLE_RUN);
        written(&mut client);
        client.queue_close(CloseCode::NORMAL);
        written(&mut client);
        let mut wire = server_frame(&probe(1, 0));
        let mut close = Vec::new();
        encode_payload(&mut close, CloseCode::NORMAL, "");
        encode_frame(&mut wire, true, OpCode::Close, &close, None);
        let ending = feed(&mut client, &plan, &mut measurements, &mut wire, 1).unwrap_err();
        assert_eq!(ending.reason, "closed by server with 1000");
        assert_eq!(measurements.received, 1);
        assert!(client.outgoing().is_empty(), "a second close frame");
    }

    #[test]
    fn a_masked_server_frame_is_a_protocol_error_answered_with_1002() {
        let plan = plan();
        let mut measurements = Measurements::default();
        let mut client = open_client(&mut measurements);
        let mut wire = Vec::new();
        encode_frame(&mut wire, true, OpCode::Text, b"hi", Some([1, 2, 3, 4]));
        let ending = feed(&mut client, &plan, &mut measurements, &mut wire, 1).unwrap_err();
        assert!(
            ending.reason.starts_with("server broke a rule"),
            "{ending:?}"
        );
        assert_eq!(measurements.protocol_errors.len(), 1);
    }

    #[test]
    fn a_template_wraps_each_probe_with_the_senders_placeholders_filled() {
        let mut plan = plan();
        plan.message_template = Some(
            crate::template::MessageTemplate::parse(r#"{"room":"{room}","text":"{probe}"}"#)
                .unwrap(),
        );
        plan.payload = 100;
        let mut client = Client::for_plan(&plan, 5, 1, Some(5), 3);
        let probe = Probe {
            run: 9,
            sender: 5,
            sequence: 0,
            intended_ns: 7,
        };
        client.queue_probe(&probe, plan.payload, false, false, &mut Codec::default());
        let mut decoder = Decoder::new(Role::Server, 1024);
        let mut wire = client.outgoing().to_vec();
        let (_, event) = decoder.decode(&mut wire).unwrap();
        let Some(Event::Text(text)) = event else {
            panic!("{event:?}")
        };
        assert_eq!(text.len(), 100);
        assert!(text.starts_with(r#"{"room":"1","text":"LG1 "#), "{text}");
        assert!(text.ends_with(r#"."}"#), "{text}");
        assert_eq!(
            crate::probe::Probes::new(text.as_bytes()).collect::<Vec<_>>(),
            vec![probe]
        );
    }

    #[test]
    fn headers_and_the_first_message_are_filled_per_client() {
        let mut plan = plan();
        plan.headers = vec![("Authorization".into(), "Bearer user-{client}".into())];
        plan.first_message = Some(r#"{"join":"room{room}","as":"{sender}"}"#.into());
        let mut measurements = Measurements::default();
        let mut client = Client::for_plan(&plan, 12, 0, Some(3), 1);
        client.start_connecting(0);
        client.handle_connected(&plan, 1, &judge(), &mut measurements);
        let (request, mut response) = accept(&mut client, "");
        assert!(
            request.contains("Authorization: Bearer user-12\r\n"),
            "{request}"
        );
        feed(&mut client, &plan, &mut measurements, &mut response, 5).unwrap();
        let mut decoder = Decoder::new(Role::Server, 1024);
        let mut wire = client.outgoing().to_vec();
        let (_, event) = decoder.decode(&mut wire).unwrap();
        assert_eq!(event, Some(Event::Text(r#"{"join":"room0","as":"3"}"#)));
    }

    #[test]
    fn a_compressed_delivery_is_inflated_and_a_probe_goes_out_compressed() {
        let mut plan = plan();
        plan.compress = true;
        plan.first_message = None;
        let mut measurements = Measurements::tracking(1000, 1);
        let mut codec = Codec::default();
        let mut client = Client::new(0, 0, Some(0), 7);
        client.start_connecting(0);
        client.handle_connected(&plan, 1, &judge(), &mut measurements);
        client.window = Some(Window::WHOLE_RUN);
        let (request, mut input) = accept(
            &mut client,
            "Sec-WebSocket-Extensions: permessage-deflate; server_no_context_takeover\r\n",
        );
        assert!(
            request.contains(
                "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n"
            ),
            "{request}"
        );
        protocol::deflate::Deflater::new(15).encode_frame(
            &mut input,
            OpCode::Text,
            &probe(1, 0),
            None,
        );
        client
            .handle_input(
                &mut input,
                9,
                &plan,
                &judge(),
                &mut measurements,
                &mut codec,
            )
            .unwrap();
        assert_eq!(measurements.compressed_connections, 1);
        assert_eq!(measurements.received, 1);
        assert_eq!(measurements.payload_bytes_received, 64);
        // What it sends is compressed (RSV1) and inflates back to the probe.
        let sent = Probe {
            run: 9,
            sender: 0,
            sequence: 0,
            intended_ns: 5,
        };
        assert_eq!(client.queue_probe(&sent, 64, false, false, &mut codec), 64);
        let mut wire = client.outgoing().to_vec();
        assert_eq!(wire[0], 0x80 | 0x40 | 0x01, "FIN, RSV1, text");
        let mut decoder = Decoder::new(Role::Server, 1024).with_deflate(true);
        let (_, incoming) = decoder.decode_incoming(&mut wire).unwrap();
        let Some(Incoming::Compressed(message)) = incoming else {
            panic!("{incoming:?}")
        };
        let mut out = Vec::new();
        let event = message
            .inflate(&mut Inflater::new(), 1024, &mut out)
            .unwrap();
        let data = event.data().unwrap();
        assert_eq!(
            crate::probe::Probes::new(data).collect::<Vec<_>>(),
            vec![sent]
        );
    }

    #[test]
    fn raw_mode_reads_lines_and_keeps_a_cut_one() {
        let mut plan = plan();
        plan.raw = true;
        let mut measurements = Measurements::tracking(1000, 1);
        let mut client = Client::new(0, 0, None, 1);
        client.start_connecting(0);
        client.handle_connected(&plan, 1_000, &judge(), &mut measurements);
        client.window = Some(Window::WHOLE_RUN);
        assert_eq!(client.state, State::Open);
        let mut lines = probe(0, 0);
        lines.push(b'\n');
        lines.extend_from_slice(&probe(0, 1)[..30]);
        feed(&mut client, &plan, &mut measurements, &mut lines, 1).unwrap();
        assert_eq!(measurements.received, 1);
        assert_eq!(client.pending_len(), 30);
    }
}
