//! A deliberately imperfect broadcast server, for proving that `loadgen` reports what really
//! happened. Threads and blocking sockets: simple enough to be obviously right.
//!
//! ```text
//! fake_server --listen 127.0.0.1:0 [--delay-ms N] [--stall-after-ms T --stall-ms S]
//!             [--drop-every N] [--close-after-ms T] [--status CODE]
//! ```
//!
//! - `--delay-ms N`: every broadcast leaves exactly N ms after its message arrived.
//! - `--stall-after-ms T --stall-ms S`: once, T ms after the first message, deliveries stop
//!   for S ms (then everything queued meanwhile goes out).
//! - `--drop-every N`: one delivery in every N is not written (the Nth, 2Nth, ...).
//! - `--close-after-ms T`: T ms after the first message, every client gets close 1001.
//! - `--status CODE`: every handshake is refused with this HTTP status.
//! - `--deflate`: permessage-deflate (RFC 7692) is required (a client that does not offer it
//!   gets 400); every message from clients is inflated, every broadcast compressed.
//! - `--max-clients N`: connections beyond the first N are refused with HTTP 503.
//! - `--batch-ms N`: messages arriving within N ms go out to each client as one text message,
//!   separated by newlines (as chat hubs that drain a client's queue into one write do).
//! - `--wrap-json`: every message goes out inside `{"type":"chat","text":"<message>"}`, the
//!   message JSON-escaped.
//! - `--duplicate-old N`: the Nth message (from 1) is not delivered to the first client, and is
//!   delivered twice to the second: once on time, and again five messages later.
//! - `--join-after-ms N`: a client gets its 101 at once but joins the room N ms later (as a
//!   server that adds members on a later loop turn, or after a join message, does).

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use protocol::close::{encode_payload, CloseCode};
use protocol::deflate::{Deflater, Inflater, ServerDeflateConfig};
use protocol::frame::{encode_frame, OpCode, Role};
use protocol::handshake::server::{
    validate_request, write_accept, write_accept_with_deflate, write_refusal,
};
use protocol::http::{parse_request, Limits};
use protocol::message::{Decoder, Event, Incoming as MessageIn};
use protocol::Status;

#[derive(Default, Clone)]
struct Options {
    listen: String,
    delay: Duration,
    stall_after: Option<Duration>,
    stall: Duration,
    drop_every: u64,
    close_after: Option<Duration>,
    status: Option<u16>,
    batch: Option<Duration>,
    wrap_json: bool,
    duplicate_old: u64,
    max_clients: Option<usize>,
    deflate: bool,
    join_after: Duration,
}

/// A message from a client: when it came, whether it was binary, its payload.
type Incoming = (Instant, bool, Vec<u8>);

type Clients = Arc<Mutex<Vec<TcpStream>>>;

fn main() {
    let options = parse_options();
    let listener = TcpListener::bind(&options.listen).expect("bind");
    eprintln!("listening on ws://{}/", listener.local_addr().unwrap());
    let clients: Clients = Arc::default();
    let (messages, inbox) = mpsc::channel::<Incoming>();
    {
        let clients = clients.clone();
        let options = options.clone();
        std::thread::spawn(move || deliver(inbox, clients, options));
    }
    for (accepted, stream) in listener.incoming().map_while(Result::ok).enumerate() {
        let clients = clients.clone();
        let messages = messages.clone();
        let status = match options.max_clients {
            Some(max) if accepted >= max => Some(503),
            _ => options.status,
        };
        let (deflate, join_after) = (options.deflate, options.join_after);
        std::thread::spawn(move || serve(stream, clients, messages, status, deflate, join_after));
    }
}

fn parse_options() -> Options {
    let mut options = Options {
        listen: "127.0.0.1:0".into(),
        ..Options::default()
    };
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut index = 0;
    while index < args.len() {
        let value = args.get(index + 1).cloned().unwrap_or_default();
        let ms = || Duration::from_millis(value.parse().expect("a number of ms"));
        match args[index].as_str() {
            "--listen" => options.listen = value.clone(),
            "--delay-ms" => options.delay = ms(),
            "--join-after-ms" => options.join_after = ms(),
            "--stall-after-ms" => options.stall_after = Some(ms()),
            "--stall-ms" => options.stall = ms(),
            "--drop-every" => options.drop_every = value.parse().expect("a number"),
            "--close-after-ms" => options.close_after = Some(ms()),
            "--status" => options.status = Some(value.parse().expect("a status")),
            "--batch-ms" => options.batch = Some(ms()),
            "--max-clients" => options.max_clients = Some(value.parse().expect("a number")),
            "--deflate" => {
                options.deflate = true;
                index += 1;
                continue;
            }
            "--wrap-json" => {
                options.wrap_json = true;
                index += 1;
                continue;
            }
            "--duplicate-old" => options.duplicate_old = value.parse().expect("a number"),
            other => {
                eprintln!("fake_server: unknown option {other}");
                std::process::exit(2);
            }
        }
        index += 2;
    }
    options
}

/// One client: handshake, then every message it sends goes to the delivery thread.
fn serve(
    mut stream: TcpStream,
    clients: Clients,
    messages: Sender<Incoming>,
    status: Option<u16>,
    deflate: bool,
    join_after: Duration,
) {
    let _ = stream.set_nodelay(true);
    let mut buffer = Vec::new();
    let mut chunk = vec![0u8; 65536];
    let head_len = loop {
        let Ok(read) = stream.read(&mut chunk) else {
            return;
        };
        if read == 0 {
            return;
        }
        buffer.extend_from_slice(&chunk[..read]);
        let request = match parse_request(&buffer, Limits::default()) {
            Ok(Status::Partial) => continue,
            Ok(Status::Complete(request)) => request,
            Err(_) => return,
        };
        let mut response = Vec::new();
        let mut refused = status.is_some();
        match (status, validate_request(&request)) {
            (None, Ok(upgrade)) if deflate => {
                match upgrade.negotiate_deflate(&ServerDeflateConfig::default()) {
                    Some(agreed) => {
                        write_accept_with_deflate(
                            &mut response,
                            &upgrade,
                            None,
                            Some(&agreed),
                            &[],
                        );
                    }
                    None => {
                        write_refusal(&mut response, 400, "fake_server wants permessage-deflate");
                        refused = true;
                    }
                }
            }
            (None, Ok(upgrade)) => write_accept(&mut response, &upgrade, None, &[]),
            (Some(status), _) => write_refusal(&mut response, status, "refused by fake_server"),
            (None, Err(error)) => write_refusal(&mut response, 400, &error.to_string()),
        }
        let _ = stream.write_all(&response);
        if refused {
            return;
        }
        break request.head_len;
    };
    buffer.drain(..head_len);
    std::thread::sleep(join_after);
    clients.lock().unwrap().push(stream.try_clone().unwrap());
    let mut decoder = Decoder::new(Role::Server, 1 << 20).with_deflate(deflate);
    let mut inflater = Inflater::new();
    let mut inflated = Vec::new();
    loop {
        loop {
            let (consumed, incoming) = match decoder.decode_incoming(&mut buffer) {
                Ok(result) => result,
                Err(_) => return,
            };
            let event = match incoming {
                Some(MessageIn::Event(event)) => Some(event),
                Some(MessageIn::Compressed(compressed)) => {
                    match compressed.inflate(&mut inflater, 1 << 20, &mut inflated) {
                        Ok(event) => Some(event),
                        Err(_) => return,
                    }
                }
                None => None,
            };
            let message = match event {
                Some(Event::Text(text)) => Some((false, text.as_bytes().to_vec())),
                Some(Event::Binary(bytes)) => Some((true, bytes.to_vec())),
                Some(Event::Close(_)) => return,
                Some(_) => None,
                None => {
                    buffer.drain(..consumed);
                    break;
                }
            };
            buffer.drain(..consumed);
            if let Some((binary, payload)) = message {
                let _ = messages.send((Instant::now(), binary, payload));
            }
        }
        match stream.read(&mut chunk) {
            Ok(0) | Err(_) => return,
            Ok(read) => buffer.extend_from_slice(&chunk[..read]),
        }
    }
}

fn frame(opcode: OpCode, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    encode_frame(&mut out, true, opcode, payload, None);
    out
}

/// A data frame, compressed when permessage-deflate is on.
fn data_frame(opcode: OpCode, payload: &[u8], deflater: &mut Option<Deflater>) -> Vec<u8> {
    match deflater {
        Some(deflater) => {
            let mut out = Vec::new();
            deflater.encode_frame(&mut out, opcode, payload, None);
            out
        }
        None => frame(opcode, payload),
    }
}

/// Wraps a message in a JSON envelope, escaping it as JSON requires.
fn wrap_json(payload: &[u8]) -> Vec<u8> {
    let mut out = b"{\"type\":\"chat\",\"text\":\"".to_vec();
    for ch in String::from_utf8_lossy(payload).chars() {
        match ch {
            '"' => out.extend_from_slice(b"\\\""),
            '\\' => out.extend_from_slice(b"\\\\"),
            '\n' => out.extend_from_slice(b"\\n"),
            c if (c as u32) < 0x20 => {
                out.extend_from_slice(format!("\\u{:04x}", c as u32).as_bytes())
            }
            c => out.extend_from_slice(c.to_string().as_bytes()),
        }
    }
    out.extend_from_slice(b"\"}");
    out
}

/// The delivery thread: delays, stalls, batches, drops, duplicates and closes as configured.
fn deliver(inbox: Receiver<Incoming>, clients: Clients, options: Options) {
    let mut first_message: Option<Instant> = None;
    let mut stalled = false;
    let mut closed = false;
    let mut deliveries = 0u64;
    let mut messages = 0u64;
    // The message to send a second time to the second client, and after which message.
    let mut late_copy: Option<(u64, Vec<u8>)> = None;
    let mut batch: Vec<u8> = Vec::new();
    let mut deflater = options.deflate.then(|| Deflater::new(15));
    let mut batch_due: Option<Instant> = None;
    loop {
        let timeout = match batch_due {
            Some(due) => due.saturating_duration_since(Instant::now()),
            None => Duration::from_millis(20),
        };
        let item = inbox.recv_timeout(timeout);
        let now = Instant::now();
        if let (Some(first), Some(after), false) = (first_message, options.close_after, closed) {
            if now >= first + after {
                closed = true;
                let mut payload = Vec::new();
                encode_payload(&mut payload, CloseCode::GOING_AWAY, "fake_server closing");
                let close = frame(OpCode::Close, &payload);
                for client in clients.lock().unwrap().drain(..) {
                    let mut client = client;
                    let _ = client.write_all(&close);
                    let _ = client.shutdown(std::net::Shutdown::Write);
                }
            }
        }
        if batch_due.is_some_and(|due| now >= due) {
            batch_due = None;
            let bytes = data_frame(OpCode::Text, &batch, &mut deflater);
            batch.clear();
            for client in clients.lock().unwrap().iter_mut() {
                let _ = client.write_all(&bytes);
            }
        }
        let Ok((arrived, binary, payload)) = item else {
            if matches!(item, Err(mpsc::RecvTimeoutError::Disconnected)) {
                return;
            }
            continue;
        };
        messages += 1;
        let first = *first_message.get_or_insert(arrived);
        if let (Some(after), false) = (options.stall_after, stalled) {
            if arrived >= first + after {
                stalled = true;
                std::thread::sleep(options.stall);
            }
        }
        let due = arrived + options.delay;
        if let Some(wait) = due.checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        }
        let payload = if options.wrap_json {
            wrap_json(&payload)
        } else {
            payload
        };
        if let Some(window) = options.batch {
            if !batch.is_empty() {
                batch.push(b'\n');
            }
            batch.extend_from_slice(&payload);
            batch_due.get_or_insert(arrived + window);
            continue;
        }
        let opcode = if binary { OpCode::Binary } else { OpCode::Text };
        let bytes = data_frame(opcode, &payload, &mut deflater);
        let mut clients = clients.lock().unwrap();
        for (position, client) in clients.iter_mut().enumerate() {
            deliveries += 1;
            if options.drop_every > 0 && deliveries.is_multiple_of(options.drop_every) {
                continue;
            }
            if messages == options.duplicate_old && position == 0 {
                continue;
            }
            let _ = client.write_all(&bytes);
        }
        if messages == options.duplicate_old {
            late_copy = Some((messages + 5, bytes));
        } else if let Some((after, copy)) = late_copy.take_if(|(after, _)| *after == messages) {
            let _ = after;
            if let Some(client) = clients.get_mut(1) {
                let _ = client.write_all(&copy);
            }
        }
    }
}
