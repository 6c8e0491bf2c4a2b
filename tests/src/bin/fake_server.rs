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

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use protocol::close::{encode_payload, CloseCode};
use protocol::frame::{encode_frame, OpCode, Role};
use protocol::handshake::server::{validate_request, write_accept, write_refusal};
use protocol::http::{parse_request, Limits};
use protocol::message::{Decoder, Event};
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
}

type Clients = Arc<Mutex<Vec<TcpStream>>>;

fn main() {
    let options = parse_options();
    let listener = TcpListener::bind(&options.listen).expect("bind");
    eprintln!("listening on ws://{}/", listener.local_addr().unwrap());
    let clients: Clients = Arc::default();
    let (messages, inbox) = mpsc::channel::<(Instant, Vec<u8>)>();
    {
        let clients = clients.clone();
        let options = options.clone();
        std::thread::spawn(move || deliver(inbox, clients, options));
    }
    for stream in listener.incoming().map_while(Result::ok) {
        let clients = clients.clone();
        let messages = messages.clone();
        let status = options.status;
        std::thread::spawn(move || serve(stream, clients, messages, status));
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
            "--stall-after-ms" => options.stall_after = Some(ms()),
            "--stall-ms" => options.stall = ms(),
            "--drop-every" => options.drop_every = value.parse().expect("a number"),
            "--close-after-ms" => options.close_after = Some(ms()),
            "--status" => options.status = Some(value.parse().expect("a status")),
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
    messages: Sender<(Instant, Vec<u8>)>,
    status: Option<u16>,
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
        match (status, validate_request(&request)) {
            (None, Ok(upgrade)) => write_accept(&mut response, &upgrade, None, &[]),
            (Some(status), _) => write_refusal(&mut response, status, "refused by fake_server"),
            (None, Err(error)) => write_refusal(&mut response, 400, &error.to_string()),
        }
        let _ = stream.write_all(&response);
        if status.is_some() {
            return;
        }
        break request.head_len;
    };
    buffer.drain(..head_len);
    clients.lock().unwrap().push(stream.try_clone().unwrap());
    let mut decoder = Decoder::new(Role::Server, 1 << 20);
    loop {
        loop {
            let (consumed, event) = match decoder.decode(&mut buffer) {
                Ok(result) => result,
                Err(_) => return,
            };
            let frame = match event {
                Some(Event::Text(text)) => Some(frame(OpCode::Text, text.as_bytes())),
                Some(Event::Binary(bytes)) => Some(frame(OpCode::Binary, bytes)),
                Some(Event::Close(_)) => return,
                Some(_) => None,
                None => {
                    buffer.drain(..consumed);
                    break;
                }
            };
            buffer.drain(..consumed);
            if let Some(frame) = frame {
                let _ = messages.send((Instant::now(), frame));
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

/// The delivery thread: delays, stalls, drops and closes as configured.
fn deliver(inbox: Receiver<(Instant, Vec<u8>)>, clients: Clients, options: Options) {
    let mut first_message: Option<Instant> = None;
    let mut stalled = false;
    let mut closed = false;
    let mut deliveries = 0u64;
    loop {
        let timeout = Duration::from_millis(20);
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
        let Ok((arrived, bytes)) = item else {
            if matches!(item, Err(mpsc::RecvTimeoutError::Disconnected)) {
                return;
            }
            continue;
        };
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
        let mut clients = clients.lock().unwrap();
        for client in clients.iter_mut() {
            deliveries += 1;
            if options.drop_every > 0 && deliveries % options.drop_every == 0 {
                continue;
            }
            let _ = client.write_all(&bytes);
        }
    }
}
