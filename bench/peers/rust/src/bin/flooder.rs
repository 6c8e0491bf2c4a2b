//! The abusive client of the flood row in `make bench`: one WebSocket connection that writes
//! masked text frames (RFC 6455 section 5.2, 5.3) as fast as the socket takes them for a fixed
//! time, while a second thread reads and discards what the server sends back. At the end it
//! says how many messages it sent and how the connection ended (a close frame and its code, a
//! reset, an end of stream, or still open), as one JSON line on stdout.
//!
//! Usage: flooder ws://HOST:PORT/PATH [--duration SECONDS] [--payload BYTES]

use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, TcpStream, ToSocketAddrs};
use std::process::exit;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

/// Frames in the prebuilt write buffer; each `write` offers up to this many at once.
const FRAMES_PER_BUFFER: usize = 256;

struct Options {
    host: String,
    port: u16,
    path: String,
    duration: Duration,
    payload: usize,
}

fn usage(problem: &str) -> ! {
    eprintln!("flooder: {problem}");
    eprintln!("usage: flooder ws://HOST:PORT/PATH [--duration SECONDS] [--payload BYTES]");
    exit(2);
}

fn parse_options() -> Options {
    let mut arguments = std::env::args().skip(1);
    let mut url = None;
    let mut duration = Duration::from_secs(5);
    let mut payload = 64;
    while let Some(argument) = arguments.next() {
        match argument.as_str() {
            "--duration" => {
                let value = arguments.next().unwrap_or_else(|| usage("--duration needs a value"));
                let seconds: f64 = value.trim_end_matches('s').parse().unwrap_or_else(|_| usage(&format!("{value} is not a number of seconds")));
                if !seconds.is_finite() || seconds <= 0.0 {
                    usage("--duration must be positive");
                }
                duration = Duration::from_secs_f64(seconds);
            }
            "--payload" => {
                let value = arguments.next().unwrap_or_else(|| usage("--payload needs a value"));
                payload = value.parse().unwrap_or_else(|_| usage(&format!("{value} is not a size")));
                if payload == 0 || payload > 125 {
                    usage("--payload must be 1 to 125 bytes (one short frame)");
                }
            }
            _ if url.is_none() && !argument.starts_with("--") => url = Some(argument),
            _ => usage(&format!("unexpected argument {argument}")),
        }
    }
    let url = url.unwrap_or_else(|| usage("the ws:// URL is missing"));
    let rest = url.strip_prefix("ws://").unwrap_or_else(|| usage("only ws:// URLs"));
    let (authority, path) = match rest.find('/') {
        Some(index) => (&rest[..index], &rest[index..]),
        None => (rest, "/"),
    };
    let (host, port) = match authority.rsplit_once(':') {
        Some((host, port)) => (host, port.parse().unwrap_or_else(|_| usage(&format!("{port} is not a port")))),
        None => (authority, 80),
    };
    Options { host: host.to_owned(), port, path: path.to_owned(), duration, payload }
}

/// A small xorshift generator: masking keys that differ from frame to frame.
struct Xorshift(u64);

impl Xorshift {
    fn next(&mut self) -> u32 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 >> 32) as u32
    }
}

/// `FRAMES_PER_BUFFER` complete masked text frames of `payload` bytes, back to back.
fn flood_buffer(payload: usize) -> (Vec<u8>, usize) {
    let seed = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos() as u64).unwrap_or(1);
    let mut random = Xorshift(seed | 1);
    let frame_length = 2 + 4 + payload;
    let mut buffer = Vec::with_capacity(frame_length * FRAMES_PER_BUFFER);
    for index in 0..FRAMES_PER_BUFFER {
        let text = format!("flood {index:05} ");
        let body: Vec<u8> = text.bytes().chain(std::iter::repeat(b'x')).take(payload).collect();
        let key = random.next().to_be_bytes();
        buffer.push(0x81); // FIN, text
        buffer.push(0x80 | payload as u8); // MASK, 7-bit length
        buffer.extend_from_slice(&key);
        buffer.extend(body.iter().enumerate().map(|(i, byte)| byte ^ key[i % 4]));
    }
    (buffer, frame_length)
}

fn close_frame(code: u16) -> Vec<u8> {
    let key = [0x5a, 0x17, 0xc3, 0x9e];
    let body = code.to_be_bytes();
    vec![0x88, 0x82, key[0], key[1], key[2], key[3], body[0] ^ key[0], body[1] ^ key[1]]
}

/// What the reader saw coming back.
#[derive(Default)]
struct Inbound {
    messages: u64,
    bytes: u64,
    close: Option<(u16, String)>,
    ending: String,
    ended_at: Option<Duration>,
}

/// Reads and discards server frames, counting messages, until a close frame, EOF or an error.
fn read_back(mut socket: TcpStream, mut pending: Vec<u8>, started: Instant, peer_closed: Arc<AtomicBool>) -> Inbound {
    let mut inbound = Inbound::default();
    let mut chunk = vec![0u8; 1 << 16];
    loop {
        // Consume every complete frame in `pending` (server frames are unmasked).
        let mut offset = 0;
        while pending.len() - offset >= 2 {
            let first = pending[offset];
            let length_byte = pending[offset + 1] & 0x7f;
            let (header, length) = match length_byte {
                126 if pending.len() - offset >= 4 => (4, u16::from_be_bytes([pending[offset + 2], pending[offset + 3]]) as usize),
                127 if pending.len() - offset >= 10 => {
                    let mut bytes = [0u8; 8];
                    bytes.copy_from_slice(&pending[offset + 2..offset + 10]);
                    (10, u64::from_be_bytes(bytes) as usize)
                }
                126 | 127 => break,
                short => (2, short as usize),
            };
            if pending.len() - offset < header + length {
                break;
            }
            let opcode = first & 0x0f;
            let body = &pending[offset + header..offset + header + length];
            if opcode == 0x8 {
                let code = if body.len() >= 2 { u16::from_be_bytes([body[0], body[1]]) } else { 1005 };
                let reason = String::from_utf8_lossy(body.get(2..).unwrap_or_default()).into_owned();
                inbound.close = Some((code, reason));
                inbound.ended_at = Some(started.elapsed());
                peer_closed.store(true, Ordering::Relaxed);
            } else if first & 0x80 != 0 && opcode != 0x9 && opcode != 0xA {
                inbound.messages += 1;
            }
            offset += header + length;
        }
        pending.drain(..offset);
        match socket.read(&mut chunk) {
            Ok(0) => {
                inbound.ending = "end of stream".into();
                break;
            }
            Ok(read) => {
                inbound.bytes += read as u64;
                pending.extend_from_slice(&chunk[..read]);
                // Keep only what a frame in progress needs; a flood of replies is discarded.
                if pending.len() > 1 << 24 {
                    pending.clear();
                }
            }
            Err(error) if error.kind() == ErrorKind::Interrupted => {}
            Err(error) => {
                inbound.ending = format!("read error: {error}");
                break;
            }
        }
    }
    inbound.ended_at.get_or_insert(started.elapsed());
    peer_closed.store(true, Ordering::Relaxed);
    inbound
}

fn json_string(text: &str) -> String {
    let mut out = String::from("\"");
    for character in text.chars() {
        match character {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn main() {
    let options = parse_options();
    let address = (options.host.as_str(), options.port)
        .to_socket_addrs()
        .ok()
        .and_then(|mut addresses| addresses.next())
        .unwrap_or_else(|| usage(&format!("cannot resolve {}", options.host)));
    let mut socket = TcpStream::connect(address).unwrap_or_else(|error| {
        eprintln!("flooder: connect to {address}: {error}");
        exit(1)
    });
    let _ = socket.set_nodelay(true);
    let request = format!(
        "GET {} HTTP/1.1\r\nHost: {}:{}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: Zmxvb2RlciB0ZXN0IGtleQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
        options.path, options.host, options.port
    );
    let mut response = Vec::new();
    let handshake = socket.write_all(request.as_bytes()).and_then(|()| {
        socket.set_read_timeout(Some(Duration::from_secs(10)))?;
        let mut chunk = [0u8; 4096];
        while !response.windows(4).any(|window| window == b"\r\n\r\n") {
            let read = socket.read(&mut chunk)?;
            if read == 0 || response.len() > 65536 {
                return Err(std::io::Error::new(ErrorKind::UnexpectedEof, "no complete handshake response"));
            }
            response.extend_from_slice(&chunk[..read]);
        }
        socket.set_read_timeout(None)
    });
    if let Err(error) = handshake {
        eprintln!("flooder: handshake: {error}");
        exit(1);
    }
    if !response.starts_with(b"HTTP/1.1 101") {
        let status = String::from_utf8_lossy(&response[..response.len().min(60)]).into_owned();
        eprintln!("flooder: handshake refused: {status:?}");
        exit(1);
    }
    let end_of_head = response.windows(4).position(|window| window == b"\r\n\r\n").unwrap() + 4;
    let leftover = response[end_of_head..].to_vec();

    let started = Instant::now();
    let peer_closed = Arc::new(AtomicBool::new(false));
    let reader = {
        let socket = socket.try_clone().unwrap_or_else(|error| {
            eprintln!("flooder: {error}");
            exit(1)
        });
        let peer_closed = Arc::clone(&peer_closed);
        thread::spawn(move || read_back(socket, leftover, started, peer_closed))
    };

    // A short write timeout so that a server that stops reading cannot hold us past the deadline.
    let _ = socket.set_write_timeout(Some(Duration::from_millis(50)));
    let (buffer, frame_length) = flood_buffer(options.payload);
    let mut written_total: u64 = 0;
    let mut offset = 0;
    let mut write_error = None;
    let deadline = started + options.duration;
    // Past the deadline (or once the server has closed), only finish the frame in progress.
    while (Instant::now() < deadline && !peer_closed.load(Ordering::Relaxed)) || offset % frame_length != 0 {
        if Instant::now() > deadline + Duration::from_secs(1) {
            break;
        }
        match socket.write(&buffer[offset..]) {
            Ok(0) => {
                write_error = Some("the socket took no bytes".to_owned());
                break;
            }
            Ok(written) => {
                written_total += written as u64;
                offset = (offset + written) % buffer.len();
            }
            Err(error) if matches!(error.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut | ErrorKind::Interrupted) => {}
            Err(error) => {
                write_error = Some(format!("write error: {error}"));
                break;
            }
        }
    }
    let sending_time = started.elapsed();
    let sent = written_total / frame_length as u64;
    let mut close_sent_at = None;
    if write_error.is_none() {
        // Our closing handshake (RFC 6455 section 7.1.2): answer theirs, or start ours.
        let _ = socket.set_write_timeout(Some(Duration::from_secs(1)));
        if socket.write_all(&close_frame(1000)).is_ok() {
            close_sent_at = Some(started.elapsed());
        }
    }
    // Wait for the server's side of the close, briefly, then stop reading either way.
    let wait_until = Instant::now() + Duration::from_secs(2);
    while !reader.is_finished() && Instant::now() < wait_until {
        thread::sleep(Duration::from_millis(10));
    }
    let _ = socket.shutdown(Shutdown::Both);
    let inbound = reader.join().unwrap_or_default();

    // The server ended the connection if its close frame, its end of stream or a reset came
    // while we were still flooding or before our close frame went out (a close after ours is
    // only its answer), or if its close code is not our 1000 echoed back (the reader may parse
    // a close late, behind a backlog of messages).
    let server_ended = match inbound.ended_at {
        Some(ended) => {
            ended <= sending_time
                || close_sent_at.is_some_and(|ours| ended < ours)
                || inbound.close.as_ref().is_some_and(|(code, _)| *code != 1000)
        }
        None => false,
    };
    let still_open = !server_ended && write_error.is_none();
    let ending = if still_open && close_sent_at.is_none() {
        "still open at the end of the flood, the server no longer reading it (our close frame did not go out within 1 s)".to_owned()
    } else if still_open {
        "still open at the end of the flood (closed by the flooder)".to_owned()
    } else if let Some((code, reason)) = &inbound.close {
        format!("closed by the server with {code} {reason:?}")
    } else if let Some(error) = &write_error {
        error.clone()
    } else {
        format!("{} from the server", inbound.ending)
    };
    let ended_at = if still_open { sending_time } else { inbound.ended_at.unwrap_or(sending_time) };
    let seconds = sending_time.as_secs_f64();
    eprintln!(
        "flooder: sent {sent} messages of {} bytes in {seconds:.2} s ({:.0}/s); received {} messages back; {ending} after {:.2} s",
        options.payload,
        sent as f64 / seconds.max(1e-9),
        inbound.messages,
        ended_at.as_secs_f64()
    );
    let (close_code, close_reason) = match &inbound.close {
        Some((code, reason)) => (code.to_string(), json_string(reason)),
        None => ("null".to_owned(), "null".to_owned()),
    };
    println!(
        "{{\"sent\": {sent}, \"payload_bytes\": {}, \"sending_s\": {seconds:.3}, \"rate_per_s\": {:.0}, \"received_messages\": {}, \"received_bytes\": {}, \"still_open\": {still_open}, \"close_code\": {close_code}, \"close_reason\": {close_reason}, \"ending\": {}, \"ended_after_s\": {:.3}}}",
        options.payload,
        sent as f64 / seconds.max(1e-9),
        inbound.messages,
        inbound.bytes,
        json_string(&ending),
        ended_at.as_secs_f64()
    );
}
