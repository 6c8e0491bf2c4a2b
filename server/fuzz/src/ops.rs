//! The core fuzz target's input: a configuration, then a sequence of operations on the
//! simulated shell (accept; bytes to socket k, biased towards valid requests and masked frames;
//! how much socket k takes; end of stream, error, writability on k; a flush; time passing;
//! shutdown). [`run`] carries them out; the simulated shell checks the core's invariants, the
//! server's byte stream and every deadline after each call, and panics when one breaks. At
//! the end every socket must be gone and every byte of assembly memory given back.
//!
//! Included with `#[path]` by the fuzz crate (`server/fuzz/src/lib.rs`) and by the seed replay
//! test (`server/tests/core_ops.rs`), beside the simulated shell; the includer brings the
//! core's types into scope.

use std::time::Duration;

use protocol::frame::OpCode;

use super::sim::{ClientId, Sim, UNLIMITED};
use super::{Accepted, Config, Millis, Mode, RateLimit, RateLimitPolicy, SlowConsumer, TICK};

/// Operations carried out at most, whatever the input's length.
pub const MAX_OPS: usize = 2048;
/// Sockets open at once, at most.
pub const MAX_OPEN_SOCKETS: usize = 48;
/// Bytes the operations may make the clients send in all (large frames are generated from a
/// byte or two of input).
pub const MAX_SENT_BYTES: usize = 16 << 20;

/// One thing that happens to the simulated shell.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op {
    /// A socket is accepted (on the metrics port, or from a trusted proxy).
    Accept {
        /// On the `--metrics-listen` port.
        metrics_port: bool,
        /// From a trusted proxy.
        trusted_proxy: bool,
    },
    /// A client sends bytes, which the server reads at once or at the end of the turn.
    Send {
        /// Which open socket (an index into them, wrapping).
        socket: u8,
        /// What it sends.
        what: Sent,
        /// Read at once (or leave it for the end of the turn).
        read: bool,
    },
    /// How much a socket takes each turn from now on, this one included (see [`CAPACITIES`]).
    Capacity {
        /// Which open socket.
        socket: u8,
        /// Which capacity.
        class: u8,
    },
    /// How much a socket takes in the rest of this turn (see [`CAPACITIES`]).
    Room {
        /// Which open socket.
        socket: u8,
        /// Which capacity.
        class: u8,
    },
    /// A client shuts down its sending side.
    Eof {
        /// Which open socket.
        socket: u8,
    },
    /// A socket fails.
    Error {
        /// Which open socket.
        socket: u8,
    },
    /// A writability event on a socket.
    Writable {
        /// Which open socket.
        socket: u8,
    },
    /// The end of a turn: deferred reads, writability, the flush.
    Flush,
    /// Time passes, with a turn at every timer (or, `jump`, one turn at the end: a shell that
    /// was held up).
    Advance {
        /// How long (see [`ADVANCES_MS`]).
        class: u8,
        /// All at once.
        jump: bool,
    },
    /// A graceful shutdown starts.
    Shutdown,
}

/// What a client sends in an [`Op::Send`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Sent {
    /// An HTTP request (see [`request`] for the kinds), maybe in two reads.
    Request {
        /// Which request.
        kind: u8,
        /// Which room.
        room: u8,
        /// Where to cut it in two reads (0: one read).
        split: u8,
    },
    /// A masked frame with a generated payload.
    Frame {
        /// The FIN bit.
        fin: bool,
        /// Which opcode.
        opcode: u8,
        /// The payload length class (see [`payload_len`]).
        length: u8,
    },
    /// A close frame.
    Close {
        /// Which code (see [`CLOSE_CODES`]).
        code: u8,
        /// The length of its reason.
        reason_len: u8,
    },
    /// Bytes as they are.
    Raw(Vec<u8>),
}

/// Close codes a client may send, valid or not; 0 sends an empty close payload.
pub const CLOSE_CODES: [u16; 13] = [
    1000, 1001, 1002, 1003, 1007, 1008, 1009, 1011, 3000, 4999, 1005, 999, 0,
];
/// Bytes a socket takes per turn.
pub const CAPACITIES: [usize; 9] = [UNLIMITED, 0, 1, 7, 100, 1000, 4096, 65536, 262144];
/// How far time moves, in milliseconds.
pub const ADVANCES_MS: [u64; 16] = [
    0, 1, 9, 10, 50, 99, 100, 101, 500, 1_000, 3_000, 5_000, 10_000, 30_000, 60_000, 75_000,
];

const OP_KINDS: u8 = 13;

/// Reads bytes, and zeros once they run out.
struct Input<'a> {
    bytes: &'a [u8],
    position: usize,
}

impl Input<'_> {
    fn byte(&mut self) -> u8 {
        let byte = self.bytes.get(self.position).copied().unwrap_or(0);
        self.position += 1;
        byte
    }

    fn is_empty(&self) -> bool {
        self.position >= self.bytes.len()
    }
}

impl Op {
    fn read(input: &mut Input<'_>) -> Option<Op> {
        if input.is_empty() {
            return None;
        }
        let tag = input.byte();
        let flag = tag & 0x80 != 0;
        let read = !flag;
        // The low six bits pick the operation, the high two are its flags. A zero byte is a
        // flush: runs of zeros (common in mutated inputs) cost little.
        Some(match (tag & 0x3f) % OP_KINDS {
            0 => Op::Flush,
            kind @ 1..=4 => {
                let socket = input.byte();
                let what = match kind {
                    1 => Sent::Request {
                        kind: input.byte(),
                        room: input.byte(),
                        split: input.byte(),
                    },
                    2 => {
                        let bits = input.byte();
                        Sent::Frame {
                            fin: bits & 0x80 == 0,
                            opcode: bits & 0x7f,
                            length: input.byte(),
                        }
                    }
                    3 => Sent::Close {
                        code: input.byte(),
                        reason_len: input.byte(),
                    },
                    _ => {
                        let len = usize::from(input.byte() % 64);
                        Sent::Raw((0..len).map(|_| input.byte()).collect())
                    }
                };
                Op::Send { socket, what, read }
            }
            5 => Op::Capacity {
                socket: input.byte(),
                class: input.byte(),
            },
            6 => Op::Room {
                socket: input.byte(),
                class: input.byte(),
            },
            7 => Op::Eof {
                socket: input.byte(),
            },
            8 => Op::Error {
                socket: input.byte(),
            },
            9 => Op::Writable {
                socket: input.byte(),
            },
            10 => Op::Accept {
                metrics_port: flag,
                trusted_proxy: tag & 0x40 != 0,
            },
            11 => Op::Advance {
                class: input.byte(),
                jump: flag,
            },
            _ => Op::Shutdown,
        })
    }

    /// Appends the bytes [`decode`] reads back as this operation (for writing seeds).
    pub fn write(&self, out: &mut Vec<u8>) {
        let defer = |read: bool| if read { 0 } else { 0x80 };
        match self {
            Op::Accept {
                metrics_port,
                trusted_proxy,
            } => {
                let flags =
                    if *metrics_port { 0x80 } else { 0 } | if *trusted_proxy { 0x40 } else { 0 };
                out.push(10 | flags)
            }
            Op::Send { socket, what, read } => {
                let tag = match what {
                    Sent::Request { .. } => 1,
                    Sent::Frame { .. } => 2,
                    Sent::Close { .. } => 3,
                    Sent::Raw(_) => 4,
                };
                out.extend([tag | defer(*read), *socket]);
                match what {
                    Sent::Request { kind, room, split } => out.extend([*kind, *room, *split]),
                    Sent::Frame {
                        fin,
                        opcode,
                        length,
                    } => out.extend([(opcode & 0x7f) | if *fin { 0 } else { 0x80 }, *length]),
                    Sent::Close { code, reason_len } => out.extend([*code, *reason_len]),
                    Sent::Raw(bytes) => {
                        assert!(bytes.len() < 64);
                        out.push(bytes.len() as u8);
                        out.extend(bytes);
                    }
                }
            }
            Op::Capacity { socket, class } => out.extend([5, *socket, *class]),
            Op::Room { socket, class } => out.extend([6, *socket, *class]),
            Op::Eof { socket } => out.extend([7, *socket]),
            Op::Error { socket } => out.extend([8, *socket]),
            Op::Writable { socket } => out.extend([9, *socket]),
            Op::Flush => out.push(0),
            Op::Advance { class, jump } => out.extend([11 | if *jump { 0x80 } else { 0 }, *class]),
            Op::Shutdown => out.push(12),
        }
    }
}

/// The configurations an input may pick with its first byte: the defaults (byte limits scaled
/// down), and small limits that a few operations reach, under each policy and mode.
pub fn config(preset: u8) -> Config {
    let small = Config {
        max_message_size: 1000,
        max_queued_bytes: 2000,
        slow_consumer_timeout: Duration::from_secs(1),
        max_connections: 4,
        max_handshakes: 3,
        ping_interval: Duration::from_secs(1),
        idle_timeout: Duration::from_secs(3),
        handshake_timeout: Duration::from_secs(2),
        close_timeout: Duration::from_secs(1),
        message_timeout: Duration::from_secs(2),
        max_request_size: 1024,
        max_target_len: 64,
        rate_limit: RateLimit { rate: 20, burst: 5 },
        max_assembly_bytes: 3000,
        ..Config::default()
    };
    match preset % 4 {
        // The defaults, with the byte limits scaled down 16 times (in the same proportions) so
        // that a message at the limit costs the fuzzer 64 KiB, not 1 MiB, per receiver.
        0 => Config {
            max_message_size: 64 << 10,
            max_queued_bytes: 64 << 10,
            max_assembly_bytes: 16 << 20,
            ..Config::default()
        },
        1 => small,
        2 => Config {
            mode: Mode::Echo,
            welcome: Some("welcome".into()),
            slow_consumer: SlowConsumer::Drop,
            rate_limit_policy: RateLimitPolicy::Drop,
            ..small
        },
        _ => Config {
            echo_to_sender: false,
            allowed_origins: vec!["http://allowed.example".into()],
            metrics_on_main_port: false,
            serve_page: false,
            slow_consumer: SlowConsumer::Drop,
            ..small
        },
    }
}

/// Where the clock starts: at zero, or 20 s before the 10 ms tick counter wraps.
pub fn start(choice: u8) -> Millis {
    if choice & 1 == 0 {
        Millis(0)
    } else {
        Millis((1u64 << 32) * TICK.as_millis() as u64 - 20_000)
    }
}

/// Decodes an input: its configuration, its start time and its operations.
pub fn decode(data: &[u8]) -> (Config, Millis, Vec<Op>) {
    let mut input = Input {
        bytes: data,
        position: 0,
    };
    let preset = input.byte();
    let start = start(input.byte());
    let mut ops = Vec::new();
    while ops.len() < MAX_OPS {
        match Op::read(&mut input) {
            Some(op) => ops.push(op),
            None => break,
        }
    }
    (config(preset), start, ops)
}

/// Encodes a configuration preset, a start and operations (for writing seeds).
pub fn encode(preset: u8, start_near_wrap: bool, ops: &[Op]) -> Vec<u8> {
    let mut out = vec![preset, u8::from(start_near_wrap)];
    for op in ops {
        op.write(&mut out);
    }
    out
}

/// A request of one of 16 kinds (upgrades, plain requests, broken ones), for the room `/r0`..`/r3`.
pub fn request(kind: u8, room: u8, key: usize, max_target_len: usize) -> Vec<u8> {
    let room = format!("/r{}", room % 4);
    let key = protocol::handshake::key_from_bytes([key as u8; 16]);
    let upgrade = |target: &str, extra: &str| {
        format!(
            "GET {target} HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n{extra}\r\n"
        )
    };
    let text = match kind % 16 {
        0 => upgrade(&room, ""),
        1 => upgrade(&room, "Expect: 100-continue\r\n"),
        2 => "GET / HTTP/1.1\r\nHost: h\r\n\r\n".into(),
        3 => "GET /metrics HTTP/1.1\r\nHost: h\r\n\r\n".into(),
        4 => "GET /rooms HTTP/1.1\r\nHost: h\r\n\r\n".into(),
        5 => "HEAD / HTTP/1.1\r\nHost: h\r\n\r\n".into(),
        6 => "GET /healthz HTTP/1.1\r\nHost: h\r\n\r\n".into(),
        7 => format!("GET {room} HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n\r\n"),
        8 => "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 0\r\n\r\n".into(),
        9 => "GET / HTTP/1.0\r\n\r\n".into(),
        10 => upgrade(&format!("http://h{room}"), ""),
        11 => upgrade(&format!("{room}/{}", "x".repeat(max_target_len)), ""),
        12 => upgrade(&room, "Origin: http://allowed.example\r\n"),
        13 => format!("GET {room} HTTP/1.1\nHost: h\n\n"),
        14 => upgrade(&room, "Host: other\r\n"),
        _ => upgrade(&room, "Origin: http://elsewhere.example\r\n"),
    };
    text.into_bytes()
}

/// A payload length from its class: 0-125 as is, then steps of 1,000 bytes, then lengths at
/// the edges of the frame header's length forms and of the message limit.
pub fn payload_len(class: u8, max_message_size: usize) -> usize {
    match class {
        0..=125 => usize::from(class),
        126..=249 => 126 + usize::from(class - 126) * 1000,
        250 => 65_535,
        251 => 65_536,
        252 => max_message_size - 1,
        253 => max_message_size,
        254 => max_message_size + 1,
        255 => 2 * max_message_size,
    }
}

const OPCODES: [OpCode; 6] = [
    OpCode::Text,
    OpCode::Binary,
    OpCode::Continuation,
    OpCode::Ping,
    OpCode::Pong,
    OpCode::Close,
];

/// Carries out an input's operations on a simulated shell, then shuts down and waits out
/// every deadline: every socket must be gone and the assembly memory back to zero. Panics
/// (with what broke, and when) on any broken rule; returns the shell, for its counters.
pub fn run(data: &[u8]) -> Sim {
    let (config, start, ops) = decode(data);
    let mut sim = Sim::new(config, start);
    let mut sent = 0;
    for op in ops {
        apply(&mut sim, op, &mut sent);
    }
    wind_down(&mut sim);
    sim
}

/// Shuts down and lets every deadline pass; checks that nothing is left.
pub fn wind_down(sim: &mut Sim) {
    sim.end_turn();
    sim.shutdown();
    let config = sim.core.config();
    let longest = config.close_timeout + config.handshake_timeout + Duration::from_secs(1);
    sim.advance(longest);
    assert!(sim.core.is_finished(), "the shutdown did not finish");
    assert_eq!(
        sim.core.connection_count(),
        0,
        "connections left after every deadline passed"
    );
    assert!(sim.open_clients().is_empty());
    assert_eq!(
        sim.core.assembly_bytes(),
        0,
        "assembly memory not given back"
    );
    assert!(sim.core.rooms().is_empty(), "rooms left");
}

/// The open socket an operation names, if any is open.
fn pick(sim: &Sim, socket: u8) -> Option<ClientId> {
    let open = sim.open_clients();
    (!open.is_empty()).then(|| open[usize::from(socket) % open.len()])
}

/// The open socket an operation names, if its client may still send.
fn pick_sender(sim: &Sim, socket: u8) -> Option<ClientId> {
    pick(sim, socket).filter(|&id| !sim.socket(id).client_done)
}

fn send(sim: &mut Sim, id: ClientId, bytes: &[u8], read: bool, sent: &mut usize) {
    if *sent + bytes.len() > MAX_SENT_BYTES {
        return;
    }
    *sent += bytes.len();
    sim.send(id, bytes);
    if read {
        sim.read(id);
    }
}

/// Carries out one operation.
pub fn apply(sim: &mut Sim, op: Op, sent: &mut usize) {
    match op {
        Op::Accept {
            metrics_port,
            trusted_proxy,
        } => {
            // Enough for every limit of the small presets; more only slows the fuzzer down.
            if sim.open_clients().len() >= MAX_OPEN_SOCKETS {
                return;
            }
            sim.connect_with(Accepted {
                metrics_port,
                trusted_proxy,
            });
        }
        Op::Send { socket, what, read } => {
            let Some(id) = pick_sender(sim, socket) else {
                return;
            };
            match what {
                Sent::Request { kind, room, split } => {
                    let bytes = request(kind, room, id, sim.core.config().max_target_len);
                    let cut = bytes.len() * usize::from(split) / 256;
                    if cut > 0 {
                        send(sim, id, &bytes[..cut], true, sent);
                    }
                    if sim.socket(id).is_open() {
                        send(sim, id, &bytes[cut..], read, sent);
                    }
                }
                Sent::Frame {
                    fin,
                    opcode,
                    length,
                } => {
                    let opcode = OPCODES[usize::from(opcode) % OPCODES.len()];
                    let len = payload_len(length, sim.core.config().max_message_size);
                    if *sent + len > MAX_SENT_BYTES {
                        return;
                    }
                    let payload: Vec<u8> = match opcode {
                        OpCode::Binary => (0..len).map(|index| index as u8).collect(),
                        _ => (0..len).map(|index| b'a' + (index % 26) as u8).collect(),
                    };
                    let bytes = sim.socket_mut(id).frame(fin, opcode, &payload);
                    send(sim, id, &bytes, read, sent);
                }
                Sent::Close { code, reason_len } => {
                    let code = CLOSE_CODES[usize::from(code) % CLOSE_CODES.len()];
                    let bytes = if code == 0 {
                        sim.socket_mut(id).frame(true, OpCode::Close, b"")
                    } else {
                        let reason = "r".repeat(usize::from(reason_len % 128));
                        sim.socket_mut(id).close_frame(code, &reason)
                    };
                    send(sim, id, &bytes, read, sent);
                }
                Sent::Raw(bytes) => send(sim, id, &bytes, read, sent),
            }
        }
        Op::Capacity { socket, class } => {
            if let Some(id) = pick(sim, socket) {
                let capacity = CAPACITIES[usize::from(class) % CAPACITIES.len()];
                let socket = sim.socket_mut(id);
                socket.accepts_per_turn = capacity;
                socket.room = socket.room.min(capacity);
            }
        }
        Op::Room { socket, class } => {
            if let Some(id) = pick(sim, socket) {
                sim.socket_mut(id).room = CAPACITIES[usize::from(class) % CAPACITIES.len()];
            }
        }
        Op::Eof { socket } => {
            if let Some(id) = pick_sender(sim, socket) {
                sim.send_eof(id);
                sim.read(id);
            }
        }
        Op::Error { socket } => {
            if let Some(id) = pick(sim, socket) {
                sim.fail(id);
            }
        }
        Op::Writable { socket } => {
            if let Some(id) = pick(sim, socket) {
                sim.writable(id);
            }
        }
        Op::Flush => {
            sim.read_all();
            sim.end_turn();
            sim.begin_turn();
        }
        Op::Advance { class, jump } => {
            let by = Duration::from_millis(ADVANCES_MS[usize::from(class) % ADVANCES_MS.len()]);
            sim.read_all();
            sim.end_turn();
            if jump {
                sim.now = sim.now.after(by);
                sim.turn();
            } else {
                sim.advance(by);
            }
        }
        Op::Shutdown => sim.shutdown(),
    }
}
