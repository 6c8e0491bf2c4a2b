//! Throughput of the hot paths, measured (not asserted): unmasking next to `memcpy` of the same
//! buffer, decoding 64-byte and 64-KiB frames, parsing handshakes, and permessage-deflate's
//! compress and inflate of ~300-byte and ~2-KB JSON chat messages.
//!
//! `cargo bench -p fanout-websocket` (`make bench-protocol`) prints one line per figure. A plain `Instant` harness: each figure
//! is the best of several timed rounds, each round long enough (about 0.2 s) to swamp timer
//! noise.

use std::hint::black_box;
use std::time::{Duration, Instant};

use protocol::deflate::{Deflater, Inflater};
use protocol::frame::{encode_frame, OpCode, Role};
use protocol::handshake::server::validate_request;
use protocol::http::{parse_request, Limits};
use protocol::mask::{apply_mask, apply_mask_bytewise};
use protocol::message::Decoder;

const ROUNDS: usize = 7;
const ROUND_TIME: Duration = Duration::from_millis(200);

/// Runs `work` repeatedly and returns the best time per call in seconds.
fn best_seconds_per_call(mut work: impl FnMut()) -> f64 {
    let mut best = f64::MAX;
    for _ in 0..ROUNDS {
        let start = Instant::now();
        let mut calls = 0u64;
        while start.elapsed() < ROUND_TIME {
            for _ in 0..64 {
                work();
            }
            calls += 64;
        }
        best = best.min(start.elapsed().as_secs_f64() / calls as f64);
    }
    best
}

fn gb_per_s(bytes: usize, seconds: f64) -> f64 {
    bytes as f64 / seconds / 1e9
}

fn main() {
    // `cargo test` runs benches with `--bench` absent; only measure when asked to.
    if !std::env::args().any(|arg| arg == "--bench") {
        return;
    }
    for size in [64usize, 1024, 64 * 1024, 1 << 20] {
        let source = vec![0x5au8; size];
        let mut buf = vec![0u8; size];
        let memcpy = best_seconds_per_call(|| {
            buf.copy_from_slice(black_box(&source));
            black_box(&mut buf);
        });
        let fast = best_seconds_per_call(|| {
            apply_mask(black_box(&mut buf), black_box([1, 2, 3, 4]), 0);
        });
        let slow = best_seconds_per_call(|| {
            apply_mask_bytewise(black_box(&mut buf), black_box([1, 2, 3, 4]), 0);
        });
        println!(
            "unmask {size:>8} B: word-at-a-time {:>7.2} GB/s | bytewise {:>6.2} GB/s | memcpy {:>7.2} GB/s",
            gb_per_s(size, fast),
            gb_per_s(size, slow),
            gb_per_s(size, memcpy)
        );
    }

    for payload_len in [64usize, 64 * 1024] {
        let frames_per_buffer = (1 << 20) / (payload_len + 14);
        let mut wire = Vec::new();
        for _ in 0..frames_per_buffer {
            encode_frame(
                &mut wire,
                true,
                OpCode::Binary,
                &vec![7u8; payload_len],
                Some([9, 8, 7, 6]),
            );
        }
        let original = wire.clone();
        let mut decoder = Decoder::new(Role::Server, 1 << 20);
        // Each call decodes every frame in the buffer; the buffer is unmasked in place, so it
        // is restored with a copy first, which is timed separately and subtracted.
        let copy_only = best_seconds_per_call(|| wire.copy_from_slice(black_box(&original)));
        let decode = best_seconds_per_call(|| {
            wire.copy_from_slice(&original);
            let mut start = 0;
            while start < wire.len() {
                let (consumed, event) = decoder.decode(&mut wire[start..]).unwrap();
                black_box(event);
                start += consumed;
            }
        });
        let seconds = (decode - copy_only).max(f64::MIN_POSITIVE);
        println!(
            "decode {payload_len:>6}-byte masked frames: {:>6.2} M frames/s, {:>6.2} GB/s of payload",
            frames_per_buffer as f64 / seconds / 1e6,
            gb_per_s(frames_per_buffer * payload_len, seconds)
        );
    }

    let request = b"GET /chat HTTP/1.1\r\nHost: server.example.com\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nOrigin: http://example.com\r\nSec-WebSocket-Protocol: chat, superchat\r\nSec-WebSocket-Version: 13\r\nUser-Agent: Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36\r\nAccept-Encoding: gzip, deflate\r\n\r\n";
    let handshake = best_seconds_per_call(|| {
        let parsed = parse_request(black_box(request), Limits::default())
            .unwrap()
            .complete()
            .unwrap();
        black_box(validate_request(&parsed).unwrap());
    });
    let mut response = Vec::with_capacity(256);
    let handshake_with_response = best_seconds_per_call(|| {
        response.clear();
        let parsed = parse_request(black_box(request), Limits::default())
            .unwrap()
            .complete()
            .unwrap();
        let upgrade = validate_request(&parsed).unwrap();
        protocol::handshake::server::write_accept(&mut response, &upgrade, None, &[]);
        black_box(&response);
    });
    println!(
        "handshake ({} B request): parse+validate {:.2} M/s | parse+validate+101 (sha1, base64) {:.2} M/s",
        request.len(),
        1.0 / handshake / 1e6,
        1.0 / handshake_with_response / 1e6
    );

    compression();
}

/// A chat message as the chat page and loadgen send it, with `text_len` bytes of words.
fn chat_message(text_len: usize, seq: u64) -> String {
    const WORDS: [&str; 16] = [
        "the", "server", "sends", "every", "message", "once", "to", "all", "members", "of", "room",
        "and", "latency", "stays", "low", "today",
    ];
    let mut text = String::new();
    let mut index = seq as usize;
    while text.len() < text_len {
        index = index.wrapping_mul(31).wrapping_add(7);
        text.push_str(WORDS[index % WORDS.len()]);
        text.push(' ');
    }
    format!(
        r#"{{"type":"message","room":"lobby","user":"user-{:04}","seq":{seq},"sent_ns":{},"text":"{}"}}"#,
        seq % 1000,
        1_700_000_000_000_000_000u64 + seq * 1_000_003,
        text.trim_end()
    )
}

fn compression() {
    for (label, text_len) in [("~300 B", 190usize), ("~2 KB", 1900)] {
        let messages: Vec<String> = (0..64).map(|seq| chat_message(text_len, seq)).collect();
        let total: usize = messages.iter().map(String::len).sum();
        let average = total / messages.len();
        for level in [1u32, 6] {
            let mut deflater = Deflater::with_level(15, level);
            let mut compressed = Vec::with_capacity(4096);
            let compress = best_seconds_per_call(|| {
                for message in &messages {
                    compressed.clear();
                    deflater.compress(black_box(message.as_bytes()), &mut compressed);
                    black_box(&compressed);
                }
            }) / messages.len() as f64;
            let payloads: Vec<Vec<u8>> = messages
                .iter()
                .map(|message| {
                    let mut payload = Vec::new();
                    deflater.compress(message.as_bytes(), &mut payload);
                    payload
                })
                .collect();
            let compressed_total: usize = payloads.iter().map(Vec::len).sum();
            let mut inflater = Inflater::new();
            let mut inflated = Vec::with_capacity(4096);
            let inflate = best_seconds_per_call(|| {
                for payload in &payloads {
                    inflated.clear();
                    inflater
                        .inflate(black_box(payload), 1 << 20, &mut inflated)
                        .unwrap();
                    black_box(&inflated);
                }
            }) / messages.len() as f64;
            println!(
                "deflate {label} JSON ({average} B avg), level {level}: compress {:>5.2} us/msg ({:>6.1} MB/s) | inflate {:>5.2} us/msg ({:>6.1} MB/s) | size {:.2} of original",
                compress * 1e6,
                average as f64 / compress / 1e6,
                inflate * 1e6,
                average as f64 / inflate / 1e6,
                compressed_total as f64 / total as f64,
            );
        }
    }
}
