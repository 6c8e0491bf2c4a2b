//! Replays every committed seed of the core fuzz target (`server/fuzz/seeds/core_ops/`) through
//! the same operation interpreter and simulated shell the fuzzer uses, so that `cargo test`
//! exercises them and they cannot rot. A seed that breaks a rule panics with what broke.

use std::path::PathBuf;

use server::core::{
    Accepted, Config, Core, Flags, Millis, Mode, Output, Phase, RateLimit, RateLimitPolicy,
    SlowConsumer, SWEEP_EVERY, TICK,
};

// Shared with the fuzz crate, where these items are its public API.
#[allow(unreachable_pub)]
#[path = "../src/core/tests/sim.rs"]
mod sim;

// The fuzz crate's public API, included here so that cargo test replays the seeds.
#[allow(unreachable_pub)]
#[path = "../fuzz/src/ops.rs"]
mod ops;

fn seed_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fuzz/seeds/core_ops")
}

#[test]
fn every_committed_core_ops_seed_replays_without_breaking_a_rule() {
    let mut seeds: Vec<PathBuf> = std::fs::read_dir(seed_dir())
        .expect("the seed directory exists")
        .map(|entry| entry.unwrap().path())
        .collect();
    seeds.sort();
    assert!(seeds.len() >= 10, "only {} seeds", seeds.len());
    for seed in seeds {
        let data = std::fs::read(&seed).unwrap();
        let name = seed.file_name().unwrap().to_string_lossy().into_owned();
        if let Err(panic) = std::panic::catch_unwind(|| ops::run(&data)) {
            let message = panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|text| text.to_string()))
                .unwrap_or_default();
            panic!("seed {name}: {message}");
        }
    }
}

// --- the named seeds: readable operation lists, written to files by the ignored test ---

use ops::{Op, Sent};

fn accept() -> Op {
    Op::Accept {
        metrics_port: false,
        trusted_proxy: false,
    }
}

fn request(socket: u8, kind: u8, room: u8) -> Op {
    Op::Send {
        socket,
        what: Sent::Request {
            kind,
            room,
            split: 0,
        },
        read: true,
    }
}

/// A frame: opcode index into text, binary, continuation, ping, pong, close.
fn frame(socket: u8, fin: bool, opcode: u8, length: u8) -> Op {
    Op::Send {
        socket,
        what: Sent::Frame {
            fin,
            opcode,
            length,
        },
        read: true,
    }
}

fn text(socket: u8, length: u8) -> Op {
    frame(socket, true, 0, length)
}

fn deferred(op: Op) -> Op {
    match op {
        Op::Send { socket, what, .. } => Op::Send {
            socket,
            what,
            read: false,
        },
        other => other,
    }
}

fn advance_ms(ms: u64) -> Op {
    let class = ops::ADVANCES_MS
        .iter()
        .position(|&step| step == ms)
        .expect("a listed advance") as u8;
    Op::Advance { class, jump: false }
}

fn capacity(socket: u8, bytes: usize) -> Op {
    let class = ops::CAPACITIES
        .iter()
        .position(|&step| step == bytes)
        .expect("a listed capacity") as u8;
    Op::Capacity { socket, class }
}

fn close(socket: u8, code: u16) -> Op {
    let code = ops::CLOSE_CODES.iter().position(|&c| c == code).unwrap() as u8;
    Op::Send {
        socket,
        what: Sent::Close {
            code,
            reason_len: 3,
        },
        read: true,
    }
}

/// Bytes as they are, read at once.
fn raw(socket: u8, bytes: &[u8]) -> Op {
    Op::Send {
        socket,
        what: Sent::Raw(bytes.to_vec()),
        read: true,
    }
}

/// Opens `count` clients in room 0, one turn each.
fn open_clients(count: u8) -> Vec<Op> {
    let mut ops = Vec::new();
    for index in 0..count {
        ops.push(accept());
        ops.push(request(index, 12, 0)); // with an Origin every preset allows
        ops.push(Op::Flush);
    }
    ops
}

/// Presets: 0 defaults, 1 small limits, 2 small + echo + drop policies, 3 small + drop, no echo.
fn named_seeds() -> Vec<(&'static str, Vec<u8>)> {
    let mut seeds = Vec::new();

    let mut chat = open_clients(3);
    chat.extend([
        text(0, 5),
        frame(1, true, 1, 126),
        Op::Flush,
        frame(2, true, 3, 4),
        frame(0, false, 0, 10),
        frame(0, true, 2, 10),
        Op::Flush,
        advance_ms(30_000),
        frame(0, true, 4, 0),
        frame(1, true, 4, 0),
        frame(2, true, 4, 0),
        Op::Flush,
        close(0, 1000),
        Op::Eof { socket: 0 },
        Op::Flush,
        advance_ms(1_000),
    ]);
    seeds.push(("chat", ops::encode(0, false, &chat)));

    let mut http = Vec::new();
    for kind in 0..16 {
        http.extend([
            accept(),
            Op::Send {
                socket: 0,
                what: Sent::Request {
                    kind,
                    room: kind,
                    split: 100,
                },
                read: true,
            },
            Op::Eof { socket: 0 },
            Op::Flush,
        ]);
    }
    seeds.push(("http_requests", ops::encode(0, false, &http)));
    seeds.push(("http_requests_small", ops::encode(3, false, &http)));

    for (name, preset) in [("flood_close", 1), ("flood_drop", 2)] {
        let mut flood = open_clients(2);
        for _ in 0..3 {
            for _ in 0..12 {
                flood.push(deferred(text(0, 20)));
            }
            flood.push(text(1, 3));
            flood.push(Op::Flush);
            flood.push(advance_ms(100));
        }
        seeds.push((name, ops::encode(preset, false, &flood)));
    }

    for (name, preset, messages) in [
        ("slow_consumer_mark", 1, 3),
        ("slow_consumer_hard_cap", 0, 5),
        ("slow_consumer_drop", 3, 5),
    ] {
        let mut slow = open_clients(3);
        slow.push(capacity(1, 0));
        slow.push(capacity(2, 100));
        for _ in 0..messages {
            slow.push(deferred(frame(0, true, 1, 253)));
        }
        slow.extend([Op::Flush, advance_ms(500), text(0, 10), advance_ms(500)]);
        slow.extend([
            advance_ms(500),
            text(0, 10),
            capacity(1, usize::MAX),
            advance_ms(500),
        ]);
        seeds.push((name, ops::encode(preset, false, &slow)));
    }

    let mut fragments = open_clients(3);
    fragments.extend([accept(), request(3, 0, 1), Op::Flush]);
    for socket in 0..4 {
        fragments.push(frame(socket, false, 0, 252));
    }
    fragments.extend([
        Op::Flush,
        frame(0, false, 2, 0),
        advance_ms(1_000),
        frame(0, false, 2, 0),
        advance_ms(1_000),
        advance_ms(100),
        frame(1, true, 1, 254),
        Op::Flush,
    ]);
    seeds.push((
        "fragments_and_assembly_budget",
        ops::encode(1, false, &fragments),
    ));

    let timeouts = vec![
        accept(),
        raw(0, b"GET /r0 HTT"),
        accept(),
        request(1, 0, 0),
        Op::Flush,
        advance_ms(1_000),
        advance_ms(1_000),
        advance_ms(1_000),
        advance_ms(1_000),
        advance_ms(1_000),
    ];
    seeds.push(("timeouts", ops::encode(1, false, &timeouts)));
    seeds.push((
        "timeouts_across_the_tick_wrap",
        ops::encode(1, true, &timeouts),
    ));
    let mut jumps = timeouts.clone();
    jumps.extend([Op::Advance {
        class: 15,
        jump: true,
    }]);
    jumps.insert(
        5,
        Op::Advance {
            class: 12,
            jump: true,
        },
    );
    seeds.push(("time_jumps", ops::encode(0, true, &jumps)));

    let half_close = vec![
        accept(),
        request(0, 2, 0),
        Op::Eof { socket: 0 },
        accept(),
        deferred(request(1, 0, 0)),
        deferred(text(1, 5)),
        Op::Eof { socket: 1 },
        accept(),
        request(2, 0, 0),
        Op::Flush,
        close(2, 1001),
        Op::Eof { socket: 2 },
        Op::Flush,
    ];
    seeds.push(("half_close", ops::encode(0, false, &half_close)));

    let mut shutdown = open_clients(2);
    shutdown.extend([
        accept(),
        raw(2, b"GET / HTTP/1.1\r\n"),
        Op::Shutdown,
        accept(),
        Op::Flush,
        close(0, 1001),
        Op::Eof { socket: 0 },
        Op::Flush,
        advance_ms(3_000),
    ]);
    seeds.push(("shutdown", ops::encode(0, false, &shutdown)));

    let mut limits = vec![accept(), accept(), accept(), accept()];
    limits.extend([
        request(0, 0, 0),
        accept(),
        request(0, 0, 0),
        request(0, 0, 0),
    ]);
    limits.extend(open_clients(3));
    limits.push(Op::Flush);
    seeds.push((
        "handshake_and_connection_limits",
        ops::encode(1, false, &limits),
    ));

    let mut rough = open_clients(2);
    rough.extend([
        capacity(0, 7),
        frame(1, true, 1, 130),
        Op::Flush,
        Op::Room {
            socket: 0,
            class: 2,
        },
        Op::Writable { socket: 0 },
        Op::Writable { socket: 1 },
        Op::Flush,
        Op::Flush,
        Op::Error { socket: 1 },
        accept(),
        request(1, 0, 0),
        raw(1, &[0x81, 0x03, b'a', b'b', b'c']),
        accept(),
        request(2, 0, 0),
        raw(2, &[0x83, 0x80, 1, 2, 3, 4]),
        accept(),
        request(3, 0, 0),
        close(3, 1005),
        Op::Flush,
        advance_ms(1_000),
    ]);
    seeds.push(("errors_and_partial_writes", ops::encode(0, false, &rough)));

    let metrics_port = vec![
        Op::Accept {
            metrics_port: true,
            trusted_proxy: false,
        },
        request(0, 3, 0),
        Op::Accept {
            metrics_port: true,
            trusted_proxy: true,
        },
        request(1, 0, 0),
        Op::Accept {
            metrics_port: false,
            trusted_proxy: true,
        },
        request(2, 4, 0),
        Op::Flush,
    ];
    seeds.push(("metrics_port", ops::encode(3, false, &metrics_port)));
    seeds
}

#[test]
fn the_named_seeds_decode_to_the_operations_they_were_written_from() {
    let ops = open_clients(2);
    let (_, start, decoded) = ops::decode(&ops::encode(1, true, &ops));
    assert_eq!(decoded, ops);
    assert_ne!(start, Millis(0));
}

#[test]
fn the_named_seeds_reach_every_policy_of_the_core() {
    let mut reached = std::collections::BTreeMap::new();
    for (name, data) in named_seeds() {
        let sim = ops::run(&data);
        let metrics = sim.core.metrics();
        let figures = [
            ("handshakes_completed", metrics.handshakes_completed),
            ("frames_delivered", metrics.frames_delivered),
            ("http_responses", metrics.http_responses.values().sum()),
            (
                "handshakes_refused",
                metrics.handshakes_refused.values().sum(),
            ),
            ("protocol_errors", metrics.protocol_errors.values().sum()),
            ("timeouts", metrics.timeouts),
            ("slow_consumer_closes", metrics.slow_consumer_closes),
            ("messages_dropped", metrics.messages_dropped),
            ("rate_limited_closes", metrics.rate_limited_closes),
            ("rate_limited_dropped", metrics.rate_limited_dropped),
            ("assembly_budget_closes", metrics.assembly_budget_closes),
            ("message_timeouts", metrics.message_timeouts),
            ("handshake_limit_refusals", metrics.handshake_limit_refusals),
        ];
        for (figure, value) in figures {
            if value > 0 {
                reached.entry(figure).or_insert(name);
            }
        }
    }
    let missing: Vec<&str> = [
        "handshakes_completed",
        "frames_delivered",
        "http_responses",
        "handshakes_refused",
        "protocol_errors",
        "timeouts",
        "slow_consumer_closes",
        "messages_dropped",
        "rate_limited_closes",
        "rate_limited_dropped",
        "assembly_budget_closes",
        "message_timeouts",
        "handshake_limit_refusals",
    ]
    .into_iter()
    .filter(|figure| !reached.contains_key(figure))
    .collect();
    assert!(
        missing.is_empty(),
        "no seed reaches {missing:?}; reached {reached:?}"
    );
}

/// Writes the named seeds into `server/fuzz/seeds/core_ops/` (run with `--ignored` after
/// changing them or the operation encoding).
#[test]
#[ignore = "writes files: run by hand to regenerate the named seeds"]
fn write_the_named_seeds() {
    std::fs::create_dir_all(seed_dir()).unwrap();
    for (name, data) in named_seeds() {
        std::fs::write(seed_dir().join(name), data).unwrap();
    }
}

/// Prints the operations of the input named by `CORE_OPS_INPUT` (a crash the fuzzer found),
/// then replays it: `CORE_OPS_INPUT=path cargo test -p server --test core_ops -- --ignored
/// --nocapture explain`.
#[test]
#[ignore = "a debugging aid: needs CORE_OPS_INPUT"]
fn explain_an_input() {
    let path = std::env::var("CORE_OPS_INPUT").expect("CORE_OPS_INPUT names an input file");
    let data = std::fs::read(path).unwrap();
    let (config, start, ops) = ops::decode(&data);
    println!("config: {config:?}\nstart: {start:?}");
    for (index, op) in ops.iter().enumerate() {
        println!("{index:4}: {op:?}");
    }
    ops::run(&data);
}

/// Times every input in a directory (`CORE_OPS_DIR`), slowest first: what to look at when the
/// fuzzer runs slowly.
#[test]
#[ignore = "a profiling aid: needs CORE_OPS_DIR"]
fn time_every_input() {
    let dir = std::env::var("CORE_OPS_DIR").expect("CORE_OPS_DIR names a directory");
    let mut times = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let data = std::fs::read(&path).unwrap();
        let started = std::time::Instant::now();
        ops::run(&data);
        times.push((started.elapsed(), path));
    }
    times.sort();
    for (elapsed, path) in times.iter().rev().take(15) {
        println!("{elapsed:?} {}", path.display());
    }
}
