//! The command line: every option the server takes, with its default and why it exists.

use std::net::SocketAddr;
use std::time::Duration;

use clap::{Parser, ValueEnum};

/// What a message does once it arrives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Mode {
    /// Relay every message to every member of the sender's room (the request path).
    Chat,
    /// Send every message back to its sender only (what conformance suites test).
    Echo,
}

/// What happens to a client whose write queue passes `--max-queued-bytes`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum SlowConsumer {
    /// Close it with 1008 (policy violation) and a reason.
    Close,
    /// Keep it, and drop the messages it has no room for (counted in /metrics).
    Drop,
}

/// A single-threaded WebSocket chat server: rooms, zero-copy broadcast, corked writes.
///
/// Plain HTTP on the same port: `GET /` (or any room path) serves the chat page, `GET /metrics`
/// the counters in the Prometheus text format. Logging goes to stderr; set RUST_LOG (error,
/// warn, info, debug, trace) to change its level.
#[derive(Debug, Parser)]
#[command(name = "server", version)]
pub struct Args {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,

    /// `chat`: broadcast to the room; `echo`: back to the sender only.
    #[arg(long, value_enum, default_value_t = Mode::Chat)]
    pub mode: Mode,

    /// In chat mode, leave the sender out of its own broadcasts.
    #[arg(long)]
    pub no_echo_to_sender: bool,

    /// Text sent to every new member right after its handshake.
    #[arg(long, value_name = "TEXT")]
    pub welcome: Option<String>,

    /// Largest message accepted, in bytes (at most 1 GiB); larger ones are refused with
    /// close code 1009.
    #[arg(long, default_value_t = 1 << 20, value_name = "BYTES", value_parser = parse_size)]
    pub max_message_size: usize,

    /// Cap on the bytes waiting in one client's write queue (at most 1 GiB). An empty queue
    /// always takes one message, so a queue holds at most this plus one message.
    #[arg(long, default_value_t = 1 << 20, value_name = "BYTES", value_parser = parse_size)]
    pub max_queued_bytes: usize,

    /// What to do with a client whose queue is full: `close` it with 1008, or `drop` messages.
    #[arg(long, value_enum, default_value_t = SlowConsumer::Close)]
    pub slow_consumer: SlowConsumer,

    /// Most sockets open at once; beyond it a handshake gets 503 and the socket is closed.
    #[arg(long, default_value_t = 100_000, value_name = "N")]
    pub max_connections: usize,

    /// Send a ping to a connection silent for this long (e.g. 30s, 500ms).
    #[arg(long, default_value = "30s", value_parser = parse_duration, value_name = "DURATION")]
    pub ping_interval: Duration,

    /// Close a connection silent for this long (pongs count as traffic).
    #[arg(long, default_value = "75s", value_parser = parse_duration, value_name = "DURATION")]
    pub idle_timeout: Duration,

    /// Drop a socket that has not completed its handshake in this time (slowloris).
    #[arg(long, default_value = "10s", value_parser = parse_duration, value_name = "DURATION")]
    pub handshake_timeout: Duration,

    /// Drop a socket whose peer does not answer our close frame in this time.
    #[arg(long, default_value = "5s", value_parser = parse_duration, value_name = "DURATION")]
    pub close_timeout: Duration,

    /// Largest HTTP request head, in bytes; larger ones get 431.
    #[arg(long, default_value_t = 8 * 1024, value_name = "BYTES")]
    pub max_request_size: usize,

    /// Accept handshakes only from this Origin (repeatable). Without it any origin is accepted.
    /// This stops cross-site WebSocket hijacking: a page on another site opening a socket with
    /// the visitor's cookies.
    #[arg(long, value_name = "ORIGIN")]
    pub allowed_origin: Vec<String>,

    /// Serve no chat page on `GET /` (404 instead).
    #[arg(long)]
    pub no_page: bool,
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

/// Parses `30s`, `500ms`, `2m`, or a number of seconds.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let (number, unit) = match text.find(|c: char| !c.is_ascii_digit() && c != '.') {
        Some(index) => text.split_at(index),
        None => (text, "s"),
    };
    let value: f64 = number
        .parse()
        .map_err(|_| format!("`{text}` is not a duration (try 30s, 500ms, 2m)"))?;
    let seconds = match unit {
        "ms" => value / 1000.0,
        "s" => value,
        "m" => value * 60.0,
        "h" => value * 3600.0,
        _ => {
            return Err(format!(
                "`{text}`: unknown unit `{unit}` (use ms, s, m or h)"
            ))
        }
    };
    if !seconds.is_finite() || seconds < 0.0 {
        return Err(format!("`{text}` is not a duration"));
    }
    Ok(Duration::from_secs_f64(seconds))
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
    fn the_command_line_is_well_formed() {
        use clap::CommandFactory;
        Args::command().debug_assert();
    }
}
