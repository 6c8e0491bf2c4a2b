//! A blocking WebSocket client on `std::net`, with permessage-deflate when asked.
//!
//! ```text
//! cargo run --example client -- ws://127.0.0.1:8080/lobby            # stdin lines out, messages in
//! cargo run --example client -- --deflate ws://127.0.0.1:8080/lobby
//! cargo run --example client -- --autobahn ws://127.0.0.1:9001       # drive a fuzzing server
//! ```
//!
//! In the first form every line of standard input is sent as a text message and every message
//! that arrives is printed. With `--autobahn` it drives an Autobahn fuzzing server
//! (`kosoku -m fuzzingserver`, `wstest -m fuzzingserver`): it asks for the number of cases,
//! runs each one by echoing every message back, and asks the server to write its reports.
//!
//! One connection is one [`Connection`]: the socket, the decoder, the read buffer, and the
//! compression state this end needs. Its receive loop is the part worth copying: read, decode
//! until the decoder wants more, keep the unconsumed rest, and answer pings and closes.

use std::fs::File;
use std::io::{self, BufRead, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use protocol::close::{encode_payload, CloseCode};
use protocol::deflate::{DeflateOffer, Deflater, Inflater};
use protocol::frame::{encode_frame, OpCode, Role};
use protocol::handshake::client::ClientHandshake;
use protocol::message::{Decoder, Event, Incoming};
use protocol::url::WsUrl;
use protocol::Status;

/// Messages up to 64 MiB: Autobahn's largest is 16 MiB.
const MAX_MESSAGE_SIZE: usize = 64 << 20;
/// The longest response head we wait for.
const MAX_RESPONSE_HEAD: usize = 16 * 1024;
/// How long to wait for the server to close the TCP connection after the closing handshake
/// (the server closes first, RFC 6455 §7.1.1).
const CLOSE_WAIT: Duration = Duration::from_secs(3);

const USAGE: &str = "usage: client [--deflate] ws://host[:port]/path
       client [--deflate] --autobahn [--agent NAME] ws://host[:port]

  ws://...     send each line of standard input as a text message, print what arrives
  --autobahn   drive an Autobahn fuzzing server: every case, echoing, then its reports
  --agent      the name reported to the fuzzing server (default: fanout-websocket)
  --deflate    offer permessage-deflate (RFC 7692), without client context takeover";

/// Masking keys and handshake nonces from the kernel's random source (RFC 6455 §5.3 asks for
/// strong entropy), read a block at a time.
struct Entropy {
    source: File,
    block: [u8; 4096],
    used: usize,
}

impl Entropy {
    fn open() -> io::Result<Entropy> {
        Ok(Entropy {
            source: File::open("/dev/urandom")?,
            block: [0; 4096],
            used: 4096,
        })
    }

    fn bytes<const N: usize>(&mut self) -> io::Result<[u8; N]> {
        if self.used + N > self.block.len() {
            self.source.read_exact(&mut self.block)?;
            self.used = 0;
        }
        let mut out = [0u8; N];
        out.copy_from_slice(&self.block[self.used..self.used + N]);
        self.used += N;
        Ok(out)
    }
}

/// The sending half: frames are masked (§5.3) and, with the extension, data messages
/// compressed (RFC 7692 §7.2.1). Behind a mutex in the line-sending mode, where a second
/// thread sends.
struct Sender {
    stream: TcpStream,
    entropy: Entropy,
    deflater: Option<Deflater>,
    frame: Vec<u8>,
}

impl Sender {
    fn send(&mut self, opcode: OpCode, payload: &[u8]) -> io::Result<()> {
        self.frame.clear();
        let mask = Some(self.entropy.bytes::<4>()?);
        match self.deflater.as_mut() {
            Some(deflater) if !opcode.is_control() => {
                deflater.encode_frame(&mut self.frame, opcode, payload, mask);
            }
            _ => encode_frame(&mut self.frame, true, opcode, payload, mask),
        }
        self.stream.write_all(&self.frame)
    }

    fn send_close(&mut self, code: CloseCode, reason: &str) -> io::Result<()> {
        let mut payload = Vec::new();
        encode_payload(&mut payload, code, reason);
        self.send(OpCode::Close, &payload)
    }
}

/// One open connection.
struct Connection {
    reader: TcpStream,
    sender: Arc<Mutex<Sender>>,
    decoder: Decoder,
    inflater: Option<Inflater>,
    /// Bytes read and not consumed yet: at most a cut frame header or control frame.
    pending: Vec<u8>,
    inflated: Vec<u8>,
}

/// How a connection ended.
#[derive(Debug)]
enum Ending {
    /// The closing handshake completed with this code from the server (1005 when it sent none).
    Closed(u16),
    /// We failed the connection with this error, after sending its close code.
    Failed(protocol::Error),
    /// The server closed TCP without a closing handshake.
    Dropped,
}

impl Connection {
    /// Connects and completes the opening handshake (§4.1).
    fn open(url: &WsUrl, deflate: bool) -> Result<Connection, String> {
        let mut entropy = Entropy::open().map_err(|error| format!("/dev/urandom: {error}"))?;
        let mut stream = TcpStream::connect(url.socket_address())
            .map_err(|error| format!("connect {}: {error}", url.socket_address()))?;
        stream
            .set_nodelay(true)
            .map_err(|error| error.to_string())?;
        let host = url.host_header();
        let key = entropy.bytes::<16>().map_err(|error| error.to_string())?;
        let handshake = ClientHandshake::new(&host, &url.target, key);
        // Our deflater compresses every message on its own: say so (RFC 7692 §7.1.1.2).
        let offer = DeflateOffer::without_client_context_takeover();
        let mut request = Vec::new();
        if deflate {
            handshake.write_request_with_deflate(&mut request, &offer);
        } else {
            handshake.write_request(&mut request);
        }
        stream
            .write_all(&request)
            .map_err(|error| format!("send handshake: {error}"))?;

        let mut buffer = Vec::new();
        let mut chunk = [0u8; 4096];
        let (accepted, head_len) = loop {
            let read = stream
                .read(&mut chunk)
                .map_err(|error| format!("read handshake: {error}"))?;
            if read == 0 {
                return Err("the server closed the connection during the handshake".into());
            }
            buffer.extend_from_slice(&chunk[..read]);
            let checked = if deflate {
                handshake.read_response_with_deflate(&buffer, &offer)
            } else {
                handshake.read_response(&buffer)
            };
            match checked.map_err(|error| format!("handshake refused: {error}"))? {
                Status::Complete(accepted) => break (accepted.deflate, accepted.head_len),
                Status::Partial if buffer.len() > MAX_RESPONSE_HEAD => {
                    return Err("the response head is too long".into());
                }
                Status::Partial => {}
            }
        };
        // Frames may have come right behind the response head.
        buffer.drain(..head_len);

        let agreed = accepted;
        let deflater = agreed.map(|agreed| Deflater::new(agreed.window_bits_for(Role::Client)));
        let inflater = agreed.map(|agreed| {
            if agreed.peer_takes_over_context(Role::Client) {
                Inflater::with_context_takeover(agreed.window_bits_for(Role::Server))
            } else {
                Inflater::new()
            }
        });
        let reader = stream.try_clone().map_err(|error| error.to_string())?;
        Ok(Connection {
            reader,
            sender: Arc::new(Mutex::new(Sender {
                stream,
                entropy,
                deflater,
                frame: Vec::new(),
            })),
            decoder: Decoder::new(Role::Client, MAX_MESSAGE_SIZE).with_deflate(agreed.is_some()),
            inflater,
            pending: buffer,
            inflated: Vec::new(),
        })
    }

    /// Reads and decodes until the connection ends, handing every data message to
    /// `on_message` (text or binary, already inflated) with the sender to answer on.
    fn run(
        &mut self,
        mut on_message: impl FnMut(&mut Sender, OpCode, &[u8]) -> io::Result<()>,
    ) -> io::Result<Ending> {
        let mut chunk = vec![0u8; 64 * 1024];
        let mut read_first = self.pending.is_empty();
        loop {
            if read_first {
                let read = match self.reader.read(&mut chunk) {
                    Ok(0) => return Ok(Ending::Dropped),
                    Ok(read) => read,
                    Err(error) if error.kind() == io::ErrorKind::Interrupted => continue,
                    Err(error) => return Err(error),
                };
                self.pending.extend_from_slice(&chunk[..read]);
            }
            read_first = true;
            // The decode loop: one event at a time until the decoder needs more input.
            let mut start = 0;
            loop {
                let (consumed, incoming) =
                    match self.decoder.decode_incoming(&mut self.pending[start..]) {
                        Ok(decoded) => decoded,
                        Err(error) => return self.fail(error),
                    };
                start += consumed;
                let event = match incoming {
                    None => break,
                    Some(Incoming::Event(event)) => event,
                    Some(Incoming::Compressed(message)) => {
                        let inflater = self.inflater.as_mut().expect("compression was negotiated");
                        match message.inflate(inflater, MAX_MESSAGE_SIZE, &mut self.inflated) {
                            Ok(event) => event,
                            Err(error) => return self.fail(error),
                        }
                    }
                };
                let mut sender = self.sender.lock().expect("sender lock");
                match event {
                    Event::Text(text) => on_message(&mut sender, OpCode::Text, text.as_bytes())?,
                    Event::Binary(bytes) => on_message(&mut sender, OpCode::Binary, bytes)?,
                    Event::Ping(payload) => sender.send(OpCode::Pong, payload)?,
                    Event::Pong(_) => {}
                    Event::Close(close) => {
                        let code = close.code.map_or(1005, |code| code.0);
                        sender.send_close(close.reply_code(), "")?;
                        drop(sender);
                        self.decoder.close_sent();
                        self.wait_for_server_close();
                        return Ok(Ending::Closed(code));
                    }
                }
            }
            self.pending.drain(..start);
        }
    }

    /// Fails the connection (§7.1.7): the error's close code, then wait for the server to close.
    fn fail(&mut self, error: protocol::Error) -> io::Result<Ending> {
        let code = error.close_code().unwrap_or(CloseCode::PROTOCOL_ERROR);
        self.sender
            .lock()
            .expect("sender lock")
            .send_close(code, &error.to_string())?;
        self.wait_for_server_close();
        Ok(Ending::Failed(error))
    }

    /// After the closing handshake the server closes TCP first (§7.1.1); give it a moment,
    /// discarding what still arrives, then close our side.
    fn wait_for_server_close(&mut self) {
        let _ = self.reader.set_read_timeout(Some(CLOSE_WAIT));
        let mut sink = [0u8; 4096];
        while matches!(self.reader.read(&mut sink), Ok(read) if read > 0) {}
        let _ = self.reader.shutdown(Shutdown::Both);
    }
}

/// Sends stdin lines, prints what arrives.
fn chat(url: &WsUrl, deflate: bool) -> Result<(), String> {
    let mut connection = Connection::open(url, deflate)?;
    eprintln!("connected to ws://{}{}", url.host_header(), url.target);
    let sender = Arc::clone(&connection.sender);
    std::thread::spawn(move || {
        for line in io::stdin().lock().lines() {
            let Ok(line) = line else { break };
            if sender
                .lock()
                .expect("sender lock")
                .send(OpCode::Text, line.as_bytes())
                .is_err()
            {
                return;
            }
        }
        let _ = sender
            .lock()
            .expect("sender lock")
            .send_close(CloseCode::NORMAL, "");
    });
    let ending = connection
        .run(|_, opcode, payload| {
            let mut stdout = io::stdout().lock();
            match opcode {
                OpCode::Text => stdout.write_all(payload)?,
                _ => write!(stdout, "<{} bytes of binary>", payload.len())?,
            }
            stdout.write_all(b"\n")
        })
        .map_err(|error| format!("connection lost: {error}"))?;
    match ending {
        Ending::Closed(code) => {
            eprintln!("closed ({code})");
            Ok(())
        }
        Ending::Failed(error) => Err(format!("failed the connection: {error}")),
        Ending::Dropped => Err("the server closed the connection without a close frame".into()),
    }
}

/// Drives an Autobahn fuzzing server: the case count, every case echoed, then the reports.
fn autobahn(url: &WsUrl, agent: &str, deflate: bool) -> Result<(), String> {
    let base = format!("ws://{}", url.host_header());
    let count_url =
        WsUrl::parse(&format!("{base}/getCaseCount")).map_err(|error| error.to_string())?;
    let mut count_text = String::new();
    Connection::open(&count_url, false)?
        .run(|_, _, payload| {
            count_text = String::from_utf8_lossy(payload).into_owned();
            Ok(())
        })
        .map_err(|error| format!("getCaseCount: {error}"))?;
    let count: u32 = count_text
        .trim()
        .parse()
        .map_err(|_| format!("getCaseCount answered {count_text:?}"))?;
    eprintln!("autobahn: {count} cases");
    for case in 1..=count {
        let case_url = WsUrl::parse(&format!("{base}/runCase?case={case}&agent={agent}"))
            .map_err(|error| error.to_string())?;
        let mut connection = match Connection::open(&case_url, deflate) {
            Ok(connection) => connection,
            Err(error) => {
                eprintln!("autobahn: case {case}: {error}");
                continue;
            }
        };
        let ending = connection.run(|sender, opcode, payload| sender.send(opcode, payload));
        if let Ok(Ending::Failed(error)) = &ending {
            eprintln!("autobahn: case {case}: failed the connection: {error}");
        }
    }
    let reports_url = WsUrl::parse(&format!("{base}/updateReports?agent={agent}"))
        .map_err(|error| error.to_string())?;
    Connection::open(&reports_url, false)?
        .run(|_, _, _| Ok(()))
        .map_err(|error| format!("updateReports: {error}"))?;
    eprintln!("autobahn: reports written");
    Ok(())
}

fn main() -> ExitCode {
    let mut autobahn_mode = false;
    let mut deflate = false;
    let mut agent = String::from("fanout-websocket");
    let mut url = None;
    let mut arguments = std::env::args().skip(1);
    while let Some(argument) = arguments.next() {
        match argument.as_str() {
            "--autobahn" => autobahn_mode = true,
            "--deflate" => deflate = true,
            "--agent" => match arguments.next() {
                Some(name) if !name.is_empty() => agent = name,
                _ => return usage("--agent needs a name"),
            },
            "-h" | "--help" => {
                println!("{USAGE}");
                return ExitCode::SUCCESS;
            }
            _ if url.is_none() && !argument.starts_with('-') => url = Some(argument),
            _ => return usage(&format!("unexpected argument {argument:?}")),
        }
    }
    let Some(url) = url else {
        return usage("a ws:// URL is needed");
    };
    let url = match WsUrl::parse(&url) {
        Ok(url) => url,
        Err(error) => return usage(&format!("{url}: {error}")),
    };
    let result = if autobahn_mode {
        autobahn(&url, &agent, deflate)
    } else {
        chat(&url, deflate)
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("client: {error}");
            ExitCode::FAILURE
        }
    }
}

fn usage(problem: &str) -> ExitCode {
    eprintln!("client: {problem}\n{USAGE}");
    ExitCode::from(2)
}
