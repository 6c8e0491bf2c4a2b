//! The command line: every option the server takes, with its default and why it exists. Each
//! option can also be set by an environment variable named `FANOUT_` plus the option's name in
//! capitals (`--max-message-size` is `FANOUT_MAX_MESSAGE_SIZE`); the command line wins.

use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
use std::time::Duration;

use clap::{Parser, ValueEnum};

use crate::bus::RedisAddress;
use crate::core::{Config, Mode, RateLimit, RateLimitPolicy, SlowConsumer, MAX_DURATION};

/// How log lines look.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// One human line per event.
    Text,
    /// One JSON object per line: `ts`, `level`, `target`, `msg`.
    Json,
}

/// On or off.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Switch {
    /// On.
    On,
    /// Off.
    Off,
}

/// Where `/metrics` is served when not on the main port (the default).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetricsListen {
    /// On a port of its own (and not on the main one).
    At(SocketAddr),
    /// Nowhere.
    Off,
}

/// A single-threaded WebSocket chat server: rooms, zero-copy broadcast, corked writes.
///
/// Plain HTTP on the same port: `GET /` (or any room path) serves the chat page, `GET /metrics`
/// the counters in the Prometheus text format, `GET /rooms` the rooms and their member counts
/// as JSON, `GET /healthz` says ok. Logging goes to stderr; set RUST_LOG (error, warn, info,
/// debug, trace) to change its level. Every option can also be given as an environment
/// variable, shown in brackets; the command line wins.
#[derive(Debug, Parser)]
#[command(name = "server", version)]
pub struct Args {
    /// Address to listen on: `127.0.0.1:8080`, `localhost:8080`, or `:8080` (every interface).
    #[arg(long, env = "FANOUT_LISTEN", default_value = "127.0.0.1:8080", value_parser = parse_listen, value_name = "ADDR")]
    pub listen: SocketAddr,

    /// `chat`: broadcast to the room; `echo`: back to the sender only.
    #[arg(long, env = "FANOUT_MODE", value_enum, default_value_t = Mode::Chat)]
    pub mode: Mode,

    /// In chat mode, leave the sender out of its own broadcasts.
    #[arg(long, env = "FANOUT_NO_ECHO_TO_SENDER")]
    pub no_echo_to_sender: bool,

    /// Text sent to every new member right after its handshake.
    #[arg(long, env = "FANOUT_WELCOME", value_name = "TEXT")]
    pub welcome: Option<String>,

    /// Largest message accepted, in bytes (at most 1 GiB); larger ones are refused with
    /// close code 1009.
    #[arg(long, env = "FANOUT_MAX_MESSAGE_SIZE", default_value_t = 1 << 20, value_name = "BYTES", value_parser = parse_size)]
    pub max_message_size: usize,

    /// The mark for one client's write queue (at most 1 GiB). A burst may pass it; a queue
    /// that stays over it after writing for --slow-consumer-timeout is a slow consumer, and
    /// one past four times the mark (at least the mark plus two largest messages) is one at
    /// once.
    #[arg(long, env = "FANOUT_MAX_QUEUED_BYTES", default_value_t = 1 << 20, value_name = "BYTES", value_parser = parse_size)]
    pub max_queued_bytes: usize,

    /// How long a client's queue may stay over --max-queued-bytes before it is a slow consumer.
    #[arg(long, env = "FANOUT_SLOW_CONSUMER_TIMEOUT", default_value = "5s", value_parser = parse_short_duration, value_name = "DURATION")]
    pub slow_consumer_timeout: Duration,

    /// What to do with a slow consumer: `close` it with 1008, or `drop` the messages it has no
    /// room for (counted in /metrics).
    #[arg(long, env = "FANOUT_SLOW_CONSUMER", value_enum, default_value_t = SlowConsumer::Close)]
    pub slow_consumer: SlowConsumer,

    /// Messages per second one client may send, sustained (0: no limit). A person chatting
    /// never comes near the default; a flood passes it at once.
    #[arg(
        long,
        env = "FANOUT_MAX_MESSAGE_RATE",
        default_value_t = 100,
        value_name = "N"
    )]
    pub max_message_rate: u32,

    /// Messages one client may send at once after a quiet period (1 to 65535).
    #[arg(long, env = "FANOUT_MAX_MESSAGE_BURST", default_value_t = 100, value_name = "N", value_parser = clap::value_parser!(u16).range(1..))]
    pub max_message_burst: u16,

    /// What to do with a message over the rate: `close` the client with 1008 (a reason that
    /// says rate limit), or `drop` the message (counted in /metrics).
    #[arg(long, env = "FANOUT_RATE_LIMIT", value_enum, default_value_t = RateLimitPolicy::Close)]
    pub rate_limit: RateLimitPolicy,

    /// Most WebSocket connections open at once; beyond it a handshake gets 503.
    #[arg(
        long,
        env = "FANOUT_MAX_CONNECTIONS",
        default_value_t = 100_000,
        value_name = "N"
    )]
    pub max_connections: usize,

    /// Most sockets still sending their HTTP request at once; beyond it a new socket is closed
    /// at accept. Kept apart from --max-connections so silent sockets cannot lock clients out.
    #[arg(long, env = "FANOUT_MAX_HANDSHAKES", default_value_t = 1024, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    pub max_handshakes: u32,

    /// Bytes all clients together may hold in messages and request heads still arriving (at
    /// most 1 GiB); the client that would pass it is closed with 1009 (503 for a head).
    #[arg(long, env = "FANOUT_MAX_ASSEMBLY_BYTES", default_value_t = 256 << 20, value_name = "BYTES", value_parser = parse_size)]
    pub max_assembly_bytes: usize,

    /// Send a ping to a connection silent for this long (e.g. 30s, 500ms; at most 7 days).
    #[arg(long, env = "FANOUT_PING_INTERVAL", default_value = "30s", value_parser = parse_duration, value_name = "DURATION")]
    pub ping_interval: Duration,

    /// Close a connection silent for this long (pongs count as traffic).
    #[arg(long, env = "FANOUT_IDLE_TIMEOUT", default_value = "75s", value_parser = parse_duration, value_name = "DURATION")]
    pub idle_timeout: Duration,

    /// Drop a socket that has not completed its handshake in this time (slowloris).
    #[arg(long, env = "FANOUT_HANDSHAKE_TIMEOUT", default_value = "10s", value_parser = parse_duration, value_name = "DURATION")]
    pub handshake_timeout: Duration,

    /// Drop a socket whose peer does not answer our close frame in this time.
    #[arg(long, env = "FANOUT_CLOSE_TIMEOUT", default_value = "5s", value_parser = parse_duration, value_name = "DURATION")]
    pub close_timeout: Duration,

    /// Close (1008) a connection whose message, cut into fragments, is not complete in this
    /// time, so half-sent messages cannot hold memory forever.
    #[arg(long, env = "FANOUT_MESSAGE_TIMEOUT", default_value = "60s", value_parser = parse_duration, value_name = "DURATION")]
    pub message_timeout: Duration,

    /// Largest HTTP request head, in bytes; larger ones get 431.
    #[arg(long, env = "FANOUT_MAX_REQUEST_SIZE", default_value_t = 8 * 1024, value_name = "BYTES", value_parser = clap::value_parser!(u32).range(256..=1 << 20))]
    pub max_request_size: u32,

    /// Longest request target (the room's path and query), in bytes; longer ones get 414.
    #[arg(long, env = "FANOUT_MAX_TARGET_LENGTH", default_value_t = 1024, value_name = "BYTES", value_parser = clap::value_parser!(u32).range(1..=1 << 20))]
    pub max_target_length: u32,

    /// Accept handshakes only from this Origin (repeatable). Without it any origin is accepted.
    /// This stops cross-site WebSocket hijacking: a page on another site opening a socket with
    /// the visitor's cookies.
    #[arg(
        long,
        env = "FANOUT_ALLOWED_ORIGIN",
        value_name = "ORIGIN",
        value_delimiter = ','
    )]
    pub allowed_origin: Vec<String>,

    /// Serve no chat page on `GET /` (404 instead).
    #[arg(long, env = "FANOUT_NO_PAGE")]
    pub no_page: bool,

    /// Serve `/metrics` on its own address instead of the main port, or `off`.
    #[arg(long, env = "FANOUT_METRICS_LISTEN", value_parser = parse_metrics_listen, value_name = "ADDR|off")]
    pub metrics_listen: Option<MetricsListen>,

    /// A reverse proxy whose `X-Forwarded-For` names the real client in the logs (repeatable).
    #[arg(
        long,
        env = "FANOUT_TRUSTED_PROXY",
        value_name = "IP",
        value_delimiter = ','
    )]
    pub trusted_proxy: Vec<IpAddr>,

    /// permessage-deflate (RFC 7692): `on` accepts a client's offer (every browser makes one),
    /// always with server_no_context_takeover and client_no_context_takeover, so a broadcast
    /// is compressed once and shared and no connection holds compression state.
    #[arg(long, env = "FANOUT_COMPRESSION", value_enum, default_value_t = Switch::On)]
    pub compression: Switch,

    /// Messages smaller than this (bytes) go out uncompressed even where it was negotiated.
    #[arg(
        long,
        env = "FANOUT_COMPRESSION_THRESHOLD",
        default_value_t = 128,
        value_name = "BYTES"
    )]
    pub compression_threshold: usize,

    /// Messages each room remembers and sends to a member who joins, before live traffic (0:
    /// none). The frames themselves are kept, shared, not copied. An empty room keeps its
    /// history for 10 minutes, so a reader who reconnects finds what was said meanwhile.
    #[arg(long, env = "FANOUT_HISTORY", default_value_t = 0, value_name = "N")]
    pub history: usize,

    /// Bytes of history per room, at most (oldest messages go first).
    #[arg(long, env = "FANOUT_HISTORY_BYTES", default_value_t = 1 << 20, value_name = "BYTES", value_parser = parse_size)]
    pub history_bytes: usize,

    /// Bytes of history over all rooms, at most.
    #[arg(long, env = "FANOUT_HISTORY_TOTAL_BYTES", default_value_t = 64 << 20, value_name = "BYTES", value_parser = parse_size)]
    pub history_total_bytes: usize,

    /// Send join and leave notices to the room, as JSON text:
    /// {"type":"presence","event":"join","room":"/r","members":3}.
    #[arg(long, env = "FANOUT_PRESENCE")]
    pub presence: bool,

    /// Serve `https://` and `wss://` only, with this certificate chain (PEM). Reloaded with the
    /// key on SIGHUP, without dropping connections.
    #[arg(
        long,
        env = "FANOUT_TLS_CERT",
        value_name = "PEM",
        requires = "tls_key"
    )]
    pub tls_cert: Option<std::path::PathBuf>,

    /// The private key for --tls-cert (PEM: PKCS#8, PKCS#1 or SEC1).
    #[arg(
        long,
        env = "FANOUT_TLS_KEY",
        value_name = "PEM",
        requires = "tls_cert"
    )]
    pub tls_key: Option<std::path::PathBuf>,

    /// Join the other processes of a cluster through Redis pub/sub:
    /// `redis://[[user]:password@]host:port[/db]`. A room's messages reach its members on
    /// every process subscribed to it. Without it, rooms are local to this process. Redis
    /// down is not fatal: local rooms are served, the outage is counted in /metrics
    /// (`ws_bus_*`), and the connection is retried with backoff.
    #[arg(long, env = "FANOUT_REDIS", value_name = "URL", value_parser = RedisAddress::parse)]
    pub redis: Option<RedisAddress>,

    /// The Redis password when the URL has none (also read from REDISCLI_AUTH). Prefer the
    /// environment to the command line, where other users can see it.
    #[arg(
        long,
        env = "FANOUT_REDIS_PASSWORD",
        value_name = "PASSWORD",
        hide_env_values = true
    )]
    pub redis_password: Option<String>,

    /// Bytes waiting to be written to Redis at most (Redis slow or its link congested);
    /// messages past it are not published, counted in ws_bus_dropped_total.
    #[arg(long, env = "FANOUT_REDIS_BUFFER", default_value_t = 8 << 20, value_name = "BYTES", value_parser = parse_size)]
    pub redis_buffer: usize,

    /// This process's id on the bus (16 hex digits), so it knows its own messages when Redis
    /// sends them back. Default: random at each start.
    #[arg(long, env = "FANOUT_NODE_ID", value_name = "HEX", value_parser = parse_node_id)]
    pub node_id: Option<u64>,

    /// Set SO_REUSEPORT on the listening socket, so that several processes share one port
    /// (the kernel spreads new connections over them); with --redis, they share rooms too.
    #[arg(long, env = "FANOUT_REUSE_PORT")]
    pub reuse_port: bool,

    /// How log lines look: `text` or `json` (one object per line).
    #[arg(long, env = "FANOUT_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
}

impl Args {
    /// The Redis address with its password from the URL, --redis-password /
    /// FANOUT_REDIS_PASSWORD, or REDISCLI_AUTH, in that order.
    pub fn redis_address(&self) -> Option<RedisAddress> {
        let mut address = self.redis.clone()?;
        if address.password.is_none() {
            address.password = self
                .redis_password
                .clone()
                .or_else(|| std::env::var("REDISCLI_AUTH").ok())
                .filter(|password| !password.is_empty());
        }
        Some(address)
    }

    /// The core's configuration.
    pub fn core_config(&self) -> Config {
        Config {
            mode: self.mode,
            echo_to_sender: !self.no_echo_to_sender,
            welcome: self.welcome.clone(),
            max_message_size: self.max_message_size,
            max_queued_bytes: self.max_queued_bytes,
            slow_consumer_timeout: self.slow_consumer_timeout,
            slow_consumer: self.slow_consumer,
            max_connections: self.max_connections,
            max_handshakes: self.max_handshakes as usize,
            ping_interval: self.ping_interval,
            idle_timeout: self.idle_timeout,
            handshake_timeout: self.handshake_timeout,
            close_timeout: self.close_timeout,
            message_timeout: self.message_timeout,
            max_request_size: self.max_request_size as usize,
            max_target_len: self.max_target_length as usize,
            allowed_origins: self.allowed_origin.clone(),
            serve_page: !self.no_page,
            metrics_on_main_port: self.metrics_listen.is_none(),
            rate_limit: RateLimit {
                rate: self.max_message_rate,
                burst: self.max_message_burst,
            },
            rate_limit_policy: self.rate_limit,
            max_assembly_bytes: self.max_assembly_bytes,
            compression: self.compression == Switch::On,
            compression_threshold: self.compression_threshold,
            history: crate::core::HistoryLimits {
                messages: self.history,
                bytes_per_room: self.history_bytes,
                total_bytes: self.history_total_bytes,
            },
            presence: self.presence,
        }
    }
}

/// The largest size a byte count option takes: 1 GiB.
const MAX_SIZE: usize = 1 << 30;

/// Parses a byte count up to 1 GiB.
fn parse_size(text: &str) -> Result<usize, String> {
    let value: usize = text
        .trim()
        .parse()
        .map_err(|_| format!("`{text}` is not a number of bytes"))?;
    if value == 0 || value > MAX_SIZE {
        return Err(format!("`{text}`: must be between 1 and {MAX_SIZE} bytes"));
    }
    Ok(value)
}

/// Parses `127.0.0.1:8080`, `[::1]:8080`, `localhost:8080` (resolved now, IPv4 first) or
/// `:8080` (every IPv4 interface).
fn parse_listen(text: &str) -> Result<SocketAddr, String> {
    let text = text.trim();
    if let Some(port) = text.strip_prefix(':') {
        let port: u16 = port
            .parse()
            .map_err(|_| format!("`{text}`: `{port}` is not a port number"))?;
        return Ok(SocketAddr::from(([0, 0, 0, 0], port)));
    }
    if let Ok(address) = text.parse() {
        return Ok(address);
    }
    if !text.contains(':') {
        return Err(format!("`{text}` has no port (try {text}:8080 or :8080)"));
    }
    let resolved: Vec<SocketAddr> = text
        .to_socket_addrs()
        .map_err(|error| format!("`{text}` is not an address to listen on: {error}"))?
        .collect();
    resolved
        .iter()
        .find(|address| address.is_ipv4())
        .or(resolved.first())
        .copied()
        .ok_or_else(|| format!("`{text}` resolves to no address"))
}

fn parse_metrics_listen(text: &str) -> Result<MetricsListen, String> {
    match text.trim() {
        "off" | "none" => Ok(MetricsListen::Off),
        other => parse_listen(other).map(MetricsListen::At),
    }
}

/// Parses a node id: up to 16 hex digits, `0x` allowed.
fn parse_node_id(text: &str) -> Result<u64, String> {
    let digits = text.trim().trim_start_matches("0x");
    if digits.is_empty() || digits.len() > 16 {
        return Err(format!("`{text}` is not a node id (1 to 16 hex digits)"));
    }
    u64::from_str_radix(digits, 16).map_err(|_| format!("`{text}` is not a node id (hex digits)"))
}

/// Parses `30s`, `500ms`, `2m`, `1h`, or a number of seconds, up to 7 days.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    cli_units::parse_duration_at_most(text, MAX_DURATION, "7 days (168h)")
}

/// A duration of at most 10 minutes (what the slow-consumer clock measures).
fn parse_short_duration(text: &str) -> Result<Duration, String> {
    cli_units::parse_duration_at_most(text, Duration::from_secs(600), "10 minutes")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_take_units() {
        assert_eq!(parse_duration("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("7"), Ok(Duration::from_secs(7)));
        assert!(parse_duration("soon").is_err());
        assert!(parse_duration("5 parsecs").is_err());
    }

    #[test]
    fn durations_past_seven_days_are_refused_not_wrapped() {
        assert_eq!(parse_duration("168h"), Ok(MAX_DURATION));
        assert!(parse_duration("169h")
            .unwrap_err()
            .contains("at most 7 days"));
        assert!(parse_duration("20000h").is_err());
        assert!(parse_duration("99999999999999999999999").is_err());
        assert!(parse_duration("1e400").is_err());
        assert!(parse_short_duration("11m").is_err());
    }

    #[test]
    fn listen_addresses_take_host_names_and_bare_ports() {
        assert_eq!(
            parse_listen(":9999"),
            Ok(SocketAddr::from(([0, 0, 0, 0], 9999)))
        );
        assert_eq!(
            parse_listen("localhost:9999").map(|address| address.port()),
            Ok(9999)
        );
        assert!(parse_listen("localhost:9999").unwrap().ip().is_loopback());
        assert_eq!(
            parse_listen("127.0.0.1:1"),
            Ok(SocketAddr::from(([127, 0, 0, 1], 1)))
        );
        assert!(parse_listen("localhost").unwrap_err().contains("no port"));
        assert!(parse_listen(":http").is_err());
        assert_eq!(parse_metrics_listen("off"), Ok(MetricsListen::Off));
    }

    #[test]
    fn node_ids_are_hex_and_redis_urls_are_checked() {
        assert_eq!(parse_node_id("0xff"), Ok(255));
        assert_eq!(parse_node_id("00000000deadbeef"), Ok(0xdead_beef));
        assert!(parse_node_id("xyz").is_err());
        assert!(parse_node_id("12345678901234567").is_err());
        let args = Args::try_parse_from([
            "server",
            "--redis",
            "redis://127.0.0.1:6390/1",
            "--redis-password",
            "pw",
        ])
        .unwrap();
        let address = args.redis_address().unwrap();
        assert_eq!(address.password.as_deref(), Some("pw"));
        assert_eq!((address.port, address.database), (6390, 1));
        assert!(Args::try_parse_from(["server", "--redis", "http://x"]).is_err());
    }

    #[test]
    fn the_command_line_is_well_formed() {
        use clap::CommandFactory;
        Args::command().debug_assert();
    }
}
