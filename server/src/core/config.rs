//! What the core is told at start: every policy and limit, as plain values (the command line
//! in `cli.rs` builds one).

use std::time::Duration;

use super::rate_limit::RateLimit;
use super::room::HistoryLimits;

/// What a message does once it arrives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Mode {
    /// Relay every message to every member of the sender's room (the request path).
    Chat,
    /// Send every message back to its sender only (what conformance suites test).
    Echo,
}

/// What happens to a client that does not keep up: its write queue stayed over
/// `--max-queued-bytes` for `--slow-consumer-timeout`, or passed the hard cap.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum SlowConsumer {
    /// Close it with 1008 (policy violation) and a reason.
    Close,
    /// Keep it, and drop the messages it has no room for (counted in /metrics).
    Drop,
}

/// What happens to a message over a client's `--max-message-rate`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum RateLimitPolicy {
    /// Close the client with 1008 and a reason that says rate limit.
    Close,
    /// Drop the message (counted in /metrics) and keep the client.
    Drop,
}

/// Every policy and limit of the core.
#[derive(Debug, Clone)]
pub struct Config {
    /// Chat (rooms) or echo.
    pub mode: Mode,
    /// In chat mode, whether a sender gets its own broadcasts.
    pub echo_to_sender: bool,
    /// Text sent to every new member right after its handshake.
    pub welcome: Option<String>,
    /// Largest message accepted (1009 beyond).
    pub max_message_size: usize,
    /// The mark a write queue may pass for a moment but not stay over.
    pub max_queued_bytes: usize,
    /// How long a queue may stay over the mark after flushing before the client is slow.
    pub slow_consumer_timeout: Duration,
    /// What to do with a slow client.
    pub slow_consumer: SlowConsumer,
    /// Most WebSocket connections open at once (503 beyond).
    pub max_connections: usize,
    /// Most sockets still in their HTTP head at once (new ones are closed beyond).
    pub max_handshakes: usize,
    /// Ping a connection silent for this long.
    pub ping_interval: Duration,
    /// Close a connection silent for this long.
    pub idle_timeout: Duration,
    /// Drop a socket whose head is not complete in this time.
    pub handshake_timeout: Duration,
    /// Drop a socket whose peer does not answer our close in this time.
    pub close_timeout: Duration,
    /// Close a connection whose message (cut into fragments) is not complete in this time.
    pub message_timeout: Duration,
    /// Largest HTTP request head (431 beyond).
    pub max_request_size: usize,
    /// Longest request target (414 beyond): room names are stored, so they are bounded.
    pub max_target_len: usize,
    /// Origins accepted; empty accepts any.
    pub allowed_origins: Vec<String>,
    /// Whether the chat page is served.
    pub serve_page: bool,
    /// Whether `/metrics` is served on the main port (not when it has its own listener).
    pub metrics_on_main_port: bool,
    /// The inbound message rate limit per connection.
    pub rate_limit: RateLimit,
    /// What to do with a message over the rate limit.
    pub rate_limit_policy: RateLimitPolicy,
    /// Bytes all connections together may hold in messages and heads in progress.
    pub max_assembly_bytes: usize,
    /// permessage-deflate (RFC 7692): whether offers are accepted. Always answered with
    /// `server_no_context_takeover` (a broadcast is compressed once, the frame shared) and
    /// `client_no_context_takeover` (one inflater for every connection).
    pub compression: bool,
    /// Messages smaller than this go out uncompressed even to peers that negotiated it.
    pub compression_threshold: usize,
    /// What each room remembers and sends to a member who joins.
    pub history: HistoryLimits,
    /// Join and leave notices (JSON text) to the room.
    pub presence: bool,
}

impl Config {
    /// The hard cap on a write queue: past it (after a flush that could not empty the queue)
    /// the slow-consumer policy applies at once, so a client that never reads holds at most
    /// this plus the broadcasts read between two of its writes (the rest of one flush pass
    /// and the next one up to its turn: at most two passes' read budgets per sender).
    pub fn hard_queue_cap(&self) -> usize {
        self.max_queued_bytes
            .saturating_mul(4)
            .max(self.max_queued_bytes + 2 * self.max_message_size)
    }
}

impl Default for Config {
    /// The defaults of the command line.
    fn default() -> Self {
        Config {
            mode: Mode::Chat,
            echo_to_sender: true,
            welcome: None,
            max_message_size: 1 << 20,
            max_queued_bytes: 1 << 20,
            slow_consumer_timeout: Duration::from_secs(5),
            slow_consumer: SlowConsumer::Close,
            max_connections: 100_000,
            max_handshakes: 1024,
            ping_interval: Duration::from_secs(30),
            idle_timeout: Duration::from_secs(75),
            handshake_timeout: Duration::from_secs(10),
            close_timeout: Duration::from_secs(5),
            message_timeout: Duration::from_secs(60),
            max_request_size: 8 * 1024,
            max_target_len: 1024,
            allowed_origins: Vec::new(),
            serve_page: true,
            metrics_on_main_port: true,
            rate_limit: RateLimit {
                rate: 100,
                burst: 100,
            },
            rate_limit_policy: RateLimitPolicy::Close,
            max_assembly_bytes: 256 << 20,
            compression: true,
            compression_threshold: 128,
            history: HistoryLimits {
                messages: 0,
                bytes_per_room: 1 << 20,
                total_bytes: 64 << 20,
            },
            presence: false,
        }
    }
}
