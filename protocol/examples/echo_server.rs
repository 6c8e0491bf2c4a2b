//! An echo server on one `mio::Poll`: the opening handshake, permessage-deflate, and the decode
//! loop written once, the way a server built on this crate should write it.
//!
//! ```text
//! cargo run --release --example echo_server -- 127.0.0.1:9002
//! ```
//!
//! It passes the Autobahn TestSuite's server cases, compression (12.x, 13.x) included:
//! `kosoku 127.0.0.1:9002`.
//!
//! What it shows:
//!
//! - Accept until `WouldBlock`; read until `WouldBlock` into **one read buffer owned by the
//!   loop**, and decode straight from it. A connection keeps bytes of its own only while a
//!   handshake head or a frame header is cut in two ([`Connection::pending`]).
//! - One [`Inflater`] for the whole loop (every client agreed to `client_no_context_takeover`),
//!   and one [`Deflater`] per window size in use: **no compression state per connection**.
//! - Writes go to a per-connection queue, flushed until `WouldBlock`; `WRITABLE` interest is
//!   registered only while something stays queued. After the closing handshake the server
//!   closes the TCP connection first (RFC 6455 §7.1.1).

use std::io::{self, Read, Write};
use std::net::SocketAddr;
use std::process::ExitCode;

use mio::net::{TcpListener, TcpStream};
use mio::{Events, Interest, Poll, Token};
use slab::Slab;

use protocol::close::{encode_payload, CloseCode};
use protocol::deflate::{DeflateParameters, Deflater, Inflater, ServerDeflateConfig};
use protocol::frame::{encode_compressed_frame, encode_frame, OpCode, Role};
use protocol::handshake::server::{validate_request, write_accept_with_deflate, write_error};
use protocol::http::{parse_request, Limits};
use protocol::message::{Decoder, Event, Incoming};
use protocol::Status;

const LISTENER: Token = Token(usize::MAX);
/// Autobahn's largest message is 16 MiB.
const MAX_MESSAGE_SIZE: usize = 16 << 20;
/// A client that does not read its echoes is dropped once this much is queued for it.
const MAX_QUEUED: usize = 4 * MAX_MESSAGE_SIZE;
const READ_BUFFER_SIZE: usize = 64 * 1024;

enum Phase {
    /// Waiting for the request head.
    Handshake,
    /// Frames flow; `deflate` is what was agreed, if anything.
    Open {
        decoder: Decoder,
        deflate: Option<DeflateParameters>,
    },
    /// Our close frame (or HTTP refusal) is queued: flush it, then close the socket.
    Closing,
}

struct Connection {
    stream: TcpStream,
    phase: Phase,
    /// Unconsumed input: a cut request head, frame header or control frame. Usually empty.
    pending: Vec<u8>,
    write_queue: Vec<u8>,
    /// Whether `WRITABLE` interest is registered.
    wants_writable: bool,
}

/// What the loop owns once and lends to every connection.
struct Shared {
    read_buffer: Vec<u8>,
    config: ServerDeflateConfig,
    inflater: Inflater,
    inflated: Vec<u8>,
    /// One deflater per window size (8 to 15), made when first needed.
    deflaters: [Option<Deflater>; 8],
    compressed: Vec<u8>,
}

/// Frames a data message for a connection, compressed when it negotiated the extension, with
/// the loop's deflater for its window. (A chat server would do this once per broadcast and
/// share the bytes with every receiver of that window.)
fn frame_message(
    deflaters: &mut [Option<Deflater>; 8],
    compressed: &mut Vec<u8>,
    out: &mut Vec<u8>,
    opcode: OpCode,
    payload: &[u8],
    deflate: Option<&DeflateParameters>,
) {
    match deflate {
        Some(agreed) => {
            let window_bits = agreed.window_bits_for(Role::Server);
            let deflater = deflaters[usize::from(window_bits - 8)]
                .get_or_insert_with(|| Deflater::new(window_bits));
            compressed.clear();
            deflater.compress(payload, compressed);
            encode_compressed_frame(out, opcode, compressed, None);
        }
        None => encode_frame(out, true, opcode, payload, None),
    }
}

fn queue_close(out: &mut Vec<u8>, code: CloseCode, reason: &str) {
    let mut payload = Vec::new();
    encode_payload(&mut payload, code, reason);
    encode_frame(out, true, OpCode::Close, &payload, None);
}

impl Connection {
    /// Consumes what it can of `input` and returns how much; the caller keeps the rest.
    fn on_input(&mut self, input: &mut [u8], shared: &mut Shared) -> usize {
        let mut consumed = 0;
        if let Phase::Handshake = self.phase {
            let request = match parse_request(input, Limits::default()) {
                Ok(Status::Partial) => return 0,
                Ok(Status::Complete(request)) => request,
                Err(error) => {
                    write_error(&mut self.write_queue, error);
                    self.phase = Phase::Closing;
                    return input.len();
                }
            };
            match validate_request(&request) {
                Ok(upgrade) => {
                    let deflate = upgrade.negotiate_deflate(&shared.config);
                    write_accept_with_deflate(
                        &mut self.write_queue,
                        &upgrade,
                        None,
                        deflate.as_ref(),
                        &[],
                    );
                    self.phase = Phase::Open {
                        decoder: Decoder::new(Role::Server, MAX_MESSAGE_SIZE)
                            .with_deflate(deflate.is_some()),
                        deflate,
                    };
                    consumed = request.head_len;
                }
                Err(error) => {
                    write_error(&mut self.write_queue, error);
                    self.phase = Phase::Closing;
                    return input.len();
                }
            }
        }
        let Phase::Open { decoder, deflate } = &mut self.phase else {
            // Closing: whatever else arrives is ignored.
            return input.len();
        };
        // The decode loop: one event at a time until the decoder needs more input.
        loop {
            let (used, incoming) = match decoder.decode_incoming(&mut input[consumed..]) {
                Ok(decoded) => decoded,
                Err(error) => {
                    let code = error.close_code().unwrap_or(CloseCode::PROTOCOL_ERROR);
                    queue_close(&mut self.write_queue, code, &error.to_string());
                    self.phase = Phase::Closing;
                    return input.len();
                }
            };
            consumed += used;
            let event = match incoming {
                None => return consumed,
                Some(Incoming::Event(event)) => event,
                Some(Incoming::Compressed(message)) => {
                    match message.inflate(
                        &mut shared.inflater,
                        MAX_MESSAGE_SIZE,
                        &mut shared.inflated,
                    ) {
                        Ok(event) => event,
                        Err(error) => {
                            let code = error.close_code().unwrap_or(CloseCode::PROTOCOL_ERROR);
                            queue_close(&mut self.write_queue, code, &error.to_string());
                            self.phase = Phase::Closing;
                            return input.len();
                        }
                    }
                }
            };
            let (deflaters, compressed) = (&mut shared.deflaters, &mut shared.compressed);
            match event {
                Event::Text(text) => frame_message(
                    deflaters,
                    compressed,
                    &mut self.write_queue,
                    OpCode::Text,
                    text.as_bytes(),
                    deflate.as_ref(),
                ),
                Event::Binary(bytes) => frame_message(
                    deflaters,
                    compressed,
                    &mut self.write_queue,
                    OpCode::Binary,
                    bytes,
                    deflate.as_ref(),
                ),
                Event::Ping(payload) => {
                    encode_frame(&mut self.write_queue, true, OpCode::Pong, payload, None);
                }
                Event::Pong(_) => {}
                Event::Close(close) => {
                    queue_close(&mut self.write_queue, close.reply_code(), "");
                    self.phase = Phase::Closing;
                    return input.len();
                }
            }
        }
    }

    /// Reads until `WouldBlock`. Returns whether the connection is done.
    fn on_readable(&mut self, shared: &mut Shared) -> bool {
        loop {
            let read = match self.stream.read(&mut shared.read_buffer) {
                Ok(0) => return true,
                Ok(read) => read,
                Err(error) if error.kind() == io::ErrorKind::WouldBlock => return false,
                Err(error) if error.kind() == io::ErrorKind::Interrupted => continue,
                Err(_) => return true,
            };
            // Decode from the loop's buffer; copy into `pending` only what is left cut.
            let mut read_buffer = std::mem::take(&mut shared.read_buffer);
            if self.pending.is_empty() {
                let consumed = self.on_input(&mut read_buffer[..read], shared);
                self.pending.extend_from_slice(&read_buffer[consumed..read]);
            } else {
                let mut pending = std::mem::take(&mut self.pending);
                pending.extend_from_slice(&read_buffer[..read]);
                let consumed = self.on_input(&mut pending, shared);
                pending.drain(..consumed);
                self.pending = pending;
            }
            shared.read_buffer = read_buffer;
            if self.pending.is_empty() && self.pending.capacity() > 0 {
                self.pending = Vec::new(); // an idle connection owns no buffer
            }
            if self.write_queue.len() > MAX_QUEUED {
                return true;
            }
        }
    }

    /// Writes until the queue is empty or `WouldBlock`. Returns whether the connection is done.
    fn flush(&mut self) -> bool {
        while !self.write_queue.is_empty() {
            match self.stream.write(&self.write_queue) {
                Ok(0) => return true,
                Ok(written) => {
                    self.write_queue.drain(..written);
                }
                Err(error) if error.kind() == io::ErrorKind::WouldBlock => return false,
                Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => return true,
            }
        }
        self.write_queue = Vec::new();
        // Our close frame is out: the server closes TCP first (§7.1.1).
        matches!(self.phase, Phase::Closing)
    }
}

fn run(address: SocketAddr) -> io::Result<()> {
    let mut poll = Poll::new()?;
    let mut listener = TcpListener::bind(address)?;
    poll.registry()
        .register(&mut listener, LISTENER, Interest::READABLE)?;
    eprintln!("echo_server: listening on ws://{}/", listener.local_addr()?);
    let mut connections: Slab<Connection> = Slab::new();
    let mut shared = Shared {
        read_buffer: vec![0; READ_BUFFER_SIZE],
        config: ServerDeflateConfig::default(),
        inflater: Inflater::new(),
        inflated: Vec::new(),
        deflaters: Default::default(),
        compressed: Vec::new(),
    };
    let mut events = Events::with_capacity(1024);
    loop {
        if let Err(error) = poll.poll(&mut events, None) {
            if error.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(error);
        }
        for event in events.iter() {
            if event.token() == LISTENER {
                loop {
                    match listener.accept() {
                        Ok((mut stream, _)) => {
                            let _ = stream.set_nodelay(true);
                            let entry = connections.vacant_entry();
                            poll.registry().register(
                                &mut stream,
                                Token(entry.key()),
                                Interest::READABLE,
                            )?;
                            entry.insert(Connection {
                                stream,
                                phase: Phase::Handshake,
                                pending: Vec::new(),
                                write_queue: Vec::new(),
                                wants_writable: false,
                            });
                        }
                        Err(error) if error.kind() == io::ErrorKind::WouldBlock => break,
                        Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
                        Err(error) => {
                            eprintln!("echo_server: accept: {error}");
                            break;
                        }
                    }
                }
                continue;
            }
            let key = event.token().0;
            // A spurious event for a connection that is already gone.
            let Some(connection) = connections.get_mut(key) else {
                continue;
            };
            let mut done = event.is_readable() && connection.on_readable(&mut shared);
            done = done || connection.flush();
            if done {
                let mut connection = connections.remove(key);
                let _ = poll.registry().deregister(&mut connection.stream);
                continue;
            }
            let wants_writable = !connection.write_queue.is_empty();
            if wants_writable != connection.wants_writable {
                let interest = if wants_writable {
                    Interest::READABLE | Interest::WRITABLE
                } else {
                    Interest::READABLE
                };
                poll.registry()
                    .reregister(&mut connection.stream, event.token(), interest)?;
                connection.wants_writable = wants_writable;
            }
        }
    }
}

fn main() -> ExitCode {
    let arguments: Vec<String> = std::env::args().skip(1).collect();
    let address = match arguments.as_slice() {
        [] => "127.0.0.1:9002".to_owned(),
        [address] if !address.starts_with('-') => address.clone(),
        _ => {
            eprintln!(
                "usage: echo_server [ADDRESS:PORT]   (default 127.0.0.1:9002; port 0 picks one)"
            );
            return ExitCode::from(2);
        }
    };
    let Ok(address) = address.parse::<SocketAddr>() else {
        eprintln!(
            "echo_server: {address:?} is not an ADDRESS:PORT\nusage: echo_server [ADDRESS:PORT]"
        );
        return ExitCode::from(2);
    };
    match run(address) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("echo_server: {error}");
            ExitCode::FAILURE
        }
    }
}
