//! Helpers shared by the integration tests: build and start the real binaries on
//! `127.0.0.1:0`, and speak WebSocket over a plain blocking socket with the `protocol` crate.
//!
//! Every process started here is killed when its handle is dropped, and every socket read has
//! a timeout, so a failing test fails; it does not hang.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use protocol::close::{encode_payload, CloseCode};
use protocol::frame::{encode_frame, OpCode, Role};
use protocol::handshake::client::ClientHandshake;
use protocol::message::{Decoder, Event};
use protocol::Status;

pub mod chatters;
pub mod redis;
pub mod tls;

/// How long any single wait in a test may take before it fails.
pub const WAIT: Duration = Duration::from_secs(10);

/// The path of a workspace binary, built once per test process (`cargo build` with the
/// profile the tests were built with).
pub fn binary(name: &str) -> PathBuf {
    static BUILT: OnceLock<()> = OnceLock::new();
    let workspace = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let release = !cfg!(debug_assertions);
    BUILT.get_or_init(|| {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let mut command = Command::new(cargo);
        // `cargo test` sets CARGO_PKG_NAME, CARGO_MANIFEST_DIR ... for the test process; passed
        // on to this cargo, they make build scripts that watch them (ring's) rerun, rebuilding
        // the TLS crates at every switch between `cargo test` and this build.
        for (name, _) in std::env::vars_os() {
            let name = name.to_string_lossy().into_owned();
            if [
                "CARGO_PKG_",
                "CARGO_MANIFEST_",
                "CARGO_CRATE_",
                "CARGO_BIN_",
            ]
            .iter()
            .any(|prefix| name.starts_with(prefix))
                || [
                    "CARGO_PRIMARY_PACKAGE",
                    "CARGO_TARGET_TMPDIR",
                    "CARGO_RUSTC_CURRENT_DIR",
                ]
                .contains(&name.as_str())
            {
                command.env_remove(name);
            }
        }
        command.current_dir(&workspace).args([
            "build",
            "--quiet",
            "-p",
            "server",
            "-p",
            "loadgen",
            "-p",
            "integration-tests",
        ]);
        if release {
            command.arg("--release");
        }
        let status = command.status().expect("cargo runs");
        assert!(status.success(), "building the binaries failed");
    });
    let target = std::env::var("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|_| workspace.join("target"));
    target
        .join(if release { "release" } else { "debug" })
        .join(name)
}

/// The next message or control frame from a client's `stream`, decoding the bytes kept in
/// `buffer` first; `None` when the stream's read timeout passes first, [`Received::Eof`] when
/// it ends. Panics when the server breaks a rule.
fn receive(
    decoder: &mut Decoder,
    buffer: &mut Vec<u8>,
    stream: &mut impl Read,
) -> Option<Received> {
    loop {
        let (consumed, event) = match decoder.decode(buffer) {
            Ok(result) => result,
            Err(error) => panic!("the server broke a rule: {error}"),
        };
        let received = event.map(|event| match event {
            Event::Text(text) => Received::Text(text.to_owned()),
            Event::Binary(bytes) => Received::Binary(bytes.to_vec()),
            Event::Ping(bytes) => Received::Ping(bytes.to_vec()),
            Event::Pong(bytes) => Received::Pong(bytes.to_vec()),
            Event::Close(close) => {
                Received::Close(close.code.map(|code| code.0), close.reason.to_owned())
            }
        });
        buffer.drain(..consumed);
        if let Some(received) = received {
            return Some(received);
        }
        let mut chunk = [0u8; 65536];
        match stream.read(&mut chunk) {
            Ok(0) => return Some(Received::Eof),
            Ok(read) => buffer.extend_from_slice(&chunk[..read]),
            Err(error)
                if matches!(
                    error.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                return None
            }
            Err(_) => return Some(Received::Eof),
        }
    }
}

/// A running `server`, killed on drop.
pub struct Server {
    /// The process.
    pub child: Child,
    /// Where it listens.
    pub address: SocketAddr,
    /// Its log lines after the first, for tests that look at them.
    pub log: mpsc::Receiver<String>,
}

impl Server {
    /// Starts `server --listen 127.0.0.1:0` with `args` and waits until it listens.
    pub fn start(args: &[&str]) -> Server {
        Self::start_with(Command::new(binary("server")), args)
    }

    /// Like [`Server::start`], with a command the caller prepared (e.g. wrapped in `sh -c`).
    pub fn start_with(mut command: Command, args: &[&str]) -> Server {
        command.args(["--listen", "127.0.0.1:0"]).args(args);
        Self::launch(command, &[], "ws").0
    }

    /// Starts `command` with `environment` on top of `RUST_LOG=info` and its log piped, and
    /// waits until it logs `listening on SCHEME://ADDRESS/`. Returns the server and every log
    /// line up to and including that one; panics with them after [`WAIT`].
    fn launch(
        mut command: Command,
        environment: &[(&str, &str)],
        scheme: &str,
    ) -> (Server, Vec<String>) {
        let mut child = command
            .env("RUST_LOG", "info")
            .envs(environment.iter().copied())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("server starts");
        let stderr = child.stderr.take().expect("stderr is piped");
        let (sender, log) = mpsc::channel();
        // From here on the process is owned by `server`, whose drop kills it.
        let mut server = Server {
            child,
            address: SocketAddr::from(([0, 0, 0, 0], 0)),
            log,
        };
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if sender.send(line).is_err() {
                    break;
                }
            }
        });
        let listening = format!("listening on {scheme}://");
        let mut start_up = Vec::new();
        let deadline = Instant::now() + WAIT;
        while let Ok(line) = server
            .log
            .recv_timeout(deadline.saturating_duration_since(Instant::now()))
        {
            let address = line
                .split(&listening)
                .nth(1)
                .map(|rest| rest.split('/').next().unwrap().parse().unwrap());
            start_up.push(line);
            if let Some(address) = address {
                server.address = address;
                return (server, start_up);
            }
        }
        panic!(
            "the server did not log `{listening}`; its log:\n{}",
            start_up.join("\n")
        );
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The server's resident memory in bytes, from `/proc`.
    pub fn rss_bytes(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid())).unwrap();
        let line = status
            .lines()
            .find(|line| line.starts_with("VmRSS:"))
            .unwrap();
        let kib: u64 = line.split_whitespace().nth(1).unwrap().parse().unwrap();
        kib * 1024
    }

    /// Sends a signal with `kill`.
    pub fn signal(&self, name: &str) {
        let status = Command::new("kill")
            .args([&format!("-{name}"), &self.pid().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
    }

    /// Waits for the process to exit and returns its exit code.
    pub fn wait_exit(&mut self) -> Option<i32> {
        let deadline = Instant::now() + WAIT;
        while Instant::now() < deadline {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status.code();
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("the server did not exit");
    }

    /// `GET /metrics`, parsed into `name{labels} -> value`.
    pub fn metrics(&self) -> Vec<(String, f64)> {
        let response = http_request(self.address, "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n");
        assert_eq!(response.status, 200);
        String::from_utf8(response.body)
            .unwrap()
            .lines()
            .filter(|line| !line.starts_with('#') && !line.is_empty())
            .map(|line| {
                let (name, value) = line.rsplit_once(' ').unwrap();
                (name.to_owned(), value.parse().unwrap())
            })
            .collect()
    }

    /// One metric's value (0 when absent).
    pub fn metric(&self, name: &str) -> f64 {
        self.metrics()
            .into_iter()
            .find(|(metric, _)| metric == name)
            .map_or(0.0, |(_, value)| value)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A complete HTTP response.
#[derive(Debug)]
pub struct HttpResponse {
    /// The status code.
    pub status: u16,
    /// The head, as text.
    pub head: String,
    /// The body.
    pub body: Vec<u8>,
}

/// Sends raw bytes as a request and reads the whole response (the server closes after it).
pub fn http_request(address: SocketAddr, request: &str) -> HttpResponse {
    http_request_bytes(address, request.as_bytes())
}

/// Sends raw bytes and reads until the server closes.
pub fn http_request_bytes(address: SocketAddr, request: &[u8]) -> HttpResponse {
    let mut stream = TcpStream::connect(address).unwrap();
    stream.set_read_timeout(Some(WAIT)).unwrap();
    let _ = stream.write_all(request);
    let mut response = Vec::new();
    let _ = stream.read_to_end(&mut response);
    HttpResponse::parse(&response)
}

impl HttpResponse {
    /// Splits a whole response into its status, head and body; panics when it has no head.
    pub fn parse(response: &[u8]) -> HttpResponse {
        let head_end = response
            .windows(4)
            .position(|window| window == b"\r\n\r\n")
            .unwrap_or_else(|| panic!("no http head in {:?}", String::from_utf8_lossy(response)));
        let head = String::from_utf8_lossy(&response[..head_end]).into_owned();
        let status = head.split(' ').nth(1).unwrap().parse().unwrap();
        HttpResponse {
            status,
            head,
            body: response[head_end + 4..].to_vec(),
        }
    }
}

/// What a client received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Received {
    /// A text message.
    Text(String),
    /// A binary message.
    Binary(Vec<u8>),
    /// A ping with its payload.
    Ping(Vec<u8>),
    /// A pong with its payload.
    Pong(Vec<u8>),
    /// A close frame's code and reason.
    Close(Option<u16>, String),
    /// The server closed the TCP connection.
    Eof,
}

/// A byte stream a test client speaks WebSocket over: a plain socket, or TLS over one
/// ([`tls::TlsStream`]).
pub trait ClientStream: Read + Write {
    /// The socket underneath, whose read timeout the client sets.
    fn socket(&self) -> &TcpStream;
}

impl ClientStream for TcpStream {
    fn socket(&self) -> &TcpStream {
        self
    }
}

/// A blocking WebSocket client, speaking through the `protocol` crate over a plain socket
/// (the default) or TLS ([`tls::TlsClient`]).
pub struct Client<S: ClientStream = TcpStream> {
    /// The socket or TLS stream.
    pub stream: S,
    decoder: Decoder,
    buffer: Vec<u8>,
    mask_counter: u32,
}

impl Client {
    /// Connects and completes the handshake for `path`.
    pub fn connect(address: SocketAddr, path: &str) -> Client {
        Self::connect_with(address, path, &[]).expect("handshake succeeds")
    }

    /// Connects with a tiny kernel receive buffer (4 KiB), for clients that will not read: the
    /// server's queue for them fills after kilobytes instead of megabytes of kernel buffers.
    pub fn connect_stalled(address: SocketAddr, path: &str) -> Client {
        let socket = socket2::Socket::new(
            socket2::Domain::for_address(address),
            socket2::Type::STREAM,
            None,
        )
        .unwrap();
        socket.set_recv_buffer_size(4096).unwrap();
        socket.connect(&address.into()).unwrap();
        Self::plain_handshake(socket.into(), address, path, &[]).expect("handshake succeeds")
    }

    /// Connects with extra headers; an error carries the HTTP status of a refusal.
    pub fn connect_with(
        address: SocketAddr,
        path: &str,
        extra_headers: &[(&str, &str)],
    ) -> Result<Client, protocol::Error> {
        let stream = TcpStream::connect(address).unwrap();
        Self::plain_handshake(stream, address, path, extra_headers)
    }

    fn plain_handshake(
        stream: TcpStream,
        address: SocketAddr,
        path: &str,
        extra_headers: &[(&str, &str)],
    ) -> Result<Client, protocol::Error> {
        stream.set_read_timeout(Some(WAIT)).unwrap();
        stream.set_nodelay(true).unwrap();
        Client::handshake(stream, address, path, extra_headers)
    }
}

impl<S: ClientStream> Client<S> {
    /// Completes the WebSocket handshake for `path` over a connected `stream` whose read
    /// timeout is set; an error carries the HTTP status of a refusal.
    pub fn handshake(
        mut stream: S,
        address: SocketAddr,
        path: &str,
        extra_headers: &[(&str, &str)],
    ) -> Result<Client<S>, protocol::Error> {
        let host = address.to_string();
        let handshake = ClientHandshake {
            host: &host,
            target: path,
            key: *b"0123456789abcdef",
            protocols: &[],
            extra_headers,
        };
        let mut request = Vec::new();
        handshake.write_request(&mut request);
        stream.write_all(&request).unwrap();
        stream.flush().unwrap();
        let mut buffer = Vec::new();
        let mut chunk = [0u8; 4096];
        loop {
            let read = stream
                .read(&mut chunk)
                .expect("the handshake response arrives");
            assert!(read > 0, "server closed during the handshake");
            buffer.extend_from_slice(&chunk[..read]);
            match handshake.read_response(&buffer)? {
                Status::Partial => continue,
                Status::Complete(accepted) => {
                    buffer.drain(..accepted.head_len);
                    return Ok(Client {
                        stream,
                        decoder: Decoder::new(Role::Client, 64 << 20),
                        buffer,
                        mask_counter: 1,
                    });
                }
            }
        }
    }

    fn next_mask(&mut self) -> [u8; 4] {
        self.mask_counter = self
            .mask_counter
            .wrapping_mul(2_654_435_761)
            .wrapping_add(1);
        self.mask_counter.to_le_bytes()
    }

    /// Sends one frame.
    pub fn send_frame(&mut self, fin: bool, opcode: OpCode, payload: &[u8]) {
        let mut wire = Vec::new();
        let mask = self.next_mask();
        encode_frame(&mut wire, fin, opcode, payload, Some(mask));
        self.stream.write_all(&wire).unwrap();
        self.stream.flush().unwrap();
    }

    /// Sends a text message.
    pub fn send_text(&mut self, text: &str) {
        self.send_frame(true, OpCode::Text, text.as_bytes());
    }

    /// Sends a close frame.
    pub fn send_close(&mut self, code: CloseCode, reason: &str) {
        let mut payload = Vec::new();
        encode_payload(&mut payload, code, reason);
        self.send_frame(true, OpCode::Close, &payload);
    }

    /// Sends raw bytes.
    pub fn send_raw(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).unwrap();
        self.stream.flush().unwrap();
    }

    /// Every byte that arrives from now until the server closes the connection, including any
    /// already read but not yet decoded: after a close frame there must be none.
    pub fn bytes_until_eof(&mut self) -> Vec<u8> {
        let mut bytes = std::mem::take(&mut self.buffer);
        let mut chunk = [0u8; 4096];
        loop {
            match self.stream.read(&mut chunk) {
                Ok(0) | Err(_) => return bytes,
                Ok(read) => bytes.extend_from_slice(&chunk[..read]),
            }
        }
    }

    /// The next thing received, or `None` after `timeout` of silence. [`Received::Eof`] when
    /// the connection ended.
    pub fn recv_timeout(&mut self, timeout: Duration) -> Option<Received> {
        self.stream
            .socket()
            .set_read_timeout(Some(timeout))
            .unwrap();
        let received = self.recv_inner();
        self.stream.socket().set_read_timeout(Some(WAIT)).unwrap();
        received
    }

    /// The next thing received; panics after [`WAIT`] of silence.
    pub fn recv(&mut self) -> Received {
        self.recv_inner().expect("a message within the wait")
    }

    /// The next message, skipping pongs and answering pings as a browser would.
    pub fn recv_message(&mut self) -> Received {
        loop {
            match self.recv() {
                Received::Ping(payload) => self.send_frame(true, OpCode::Pong, &payload),
                Received::Pong(_) => continue,
                other => return other,
            }
        }
    }

    fn recv_inner(&mut self) -> Option<Received> {
        receive(&mut self.decoder, &mut self.buffer, &mut self.stream)
    }
}

/// Reads a socket until the server closes it; returns what came. Panics when the server keeps
/// it open past the stream's read timeout: a hang is what the tests that call it look for.
pub fn read_until_closed(stream: &mut impl Read) -> Vec<u8> {
    let mut all = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        match stream.read(&mut chunk) {
            Ok(0) => return all,
            Ok(read) => all.extend_from_slice(&chunk[..read]),
            Err(error)
                if matches!(
                    error.kind(),
                    std::io::ErrorKind::ConnectionReset
                        | std::io::ErrorKind::UnexpectedEof
                        // rustls writes what is pending before it reads: the server is gone.
                        | std::io::ErrorKind::BrokenPipe
                ) =>
            {
                return all
            }
            Err(error) => panic!("the server did not close the connection: {error}"),
        }
    }
}

/// Polls `condition` every 20 ms until it holds; panics with `what` after [`WAIT`].
pub fn wait_until(what: &str, mut condition: impl FnMut() -> bool) {
    let deadline = Instant::now() + WAIT;
    while Instant::now() < deadline {
        if condition() {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    panic!("timed out waiting until {what}");
}

impl Server {
    /// Starts `command` with exactly `args` (no `--listen` is added: the caller names the
    /// address) and `environment` on top of `RUST_LOG=info`, and waits until it listens.
    /// Returns the server and every log line up to and including the `listening on` line, for
    /// tests that look at what is said at start-up.
    pub fn start_logged(
        mut command: Command,
        args: &[&str],
        environment: &[(&str, &str)],
    ) -> (Server, Vec<String>) {
        command.args(args);
        Self::launch(command, environment, "ws")
    }

    /// The log lines that arrive within `timeout` (or until one contains `until`).
    pub fn log_lines_until(&self, until: &str, timeout: Duration) -> Vec<String> {
        let deadline = Instant::now() + timeout;
        let mut lines = Vec::new();
        while let Ok(line) = self
            .log
            .recv_timeout(deadline.saturating_duration_since(Instant::now()))
        {
            let done = line.contains(until);
            lines.push(line);
            if done {
                break;
            }
        }
        lines
    }
}

/// A loopback port that was free a moment ago (bound to port 0, then released), for options
/// whose port cannot be learnt from the server afterwards.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Runs a binary to its end with a deadline of [`WAIT`] (killed past it, which fails the
/// test): its exit code and its stderr, for tests of refused command lines and start-up errors.
pub fn run_to_exit(name: &str, args: &[&str]) -> (Option<i32>, String) {
    let mut child = Command::new(binary(name))
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the binary starts");
    let mut stderr = child.stderr.take().expect("stderr is piped");
    let reader = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = stderr.read_to_string(&mut text);
        text
    });
    let deadline = Instant::now() + WAIT;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{name} {args:?} did not exit within {WAIT:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    (status.code(), reader.join().unwrap())
}

impl Server {
    /// Starts `server --listen 127.0.0.1:0 --tls-cert CERT --tls-key KEY` with `args` and waits
    /// until it logs `listening on wss://ADDR/`. Its `/metrics` is then behind TLS too, so
    /// [`Server::metrics`] does not apply: read it with a TLS client.
    pub fn start_tls(cert: &std::path::Path, key: &std::path::Path, args: &[&str]) -> Server {
        let mut command = Command::new(binary("server"));
        command
            .args(["--listen", "127.0.0.1:0"])
            .arg("--tls-cert")
            .arg(cert)
            .arg("--tls-key")
            .arg(key)
            .args(args);
        Self::launch(command, &[], "wss").0
    }

    /// Waits for a log line containing `fragment` and returns it; panics after [`WAIT`].
    pub fn wait_for_log(&self, fragment: &str) -> String {
        let lines = self.log_lines_until(fragment, WAIT);
        match lines.last() {
            Some(line) if line.contains(fragment) => line.clone(),
            _ => panic!("the server did not log {fragment:?}"),
        }
    }
}
