//! The command line: three runs (`fanout`, `echo`, `connect`) and the options they share.

use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};
pub(crate) use cli_units::parse_duration;

use crate::threshold::Threshold;

/// The exit statuses, in every `--help`.
const EXIT_STATUS_HELP: &str =
    "Exit status: 0 the run happened (whatever the server did; see the verdict), \
1 it could not (nothing connected, an output could not be written), 2 bad command line or \
a run that cannot fit (open files), 3 the run was invalid and --fail-on invalid was given, \
4 a --threshold was crossed, 130 interrupted by SIGINT or SIGTERM (the summary and the \
--json/--hgrm files of what was measured are still written).";

/// A fan-out latency meter for any ws:// server.
///
/// Latency is measured from each message's *intended* send time on a fixed schedule (open
/// loop), so a stall of the server, or of this tool, is counted rather than hidden. Every
/// delivery is accounted for: expected, received, lost, duplicated, out of order.
///
/// Every run ends with a verdict, `valid` or `invalid: <reasons>`.
#[derive(Debug, Parser)]
#[command(name = "loadgen", version, after_help = EXIT_STATUS_HELP)]
pub(crate) struct Cli {
    #[command(subcommand)]
    pub run: Run,
}

/// Which run to make.
#[derive(Debug, Subcommand)]
pub(crate) enum Run {
    /// Senders broadcast on a fixed schedule; every client measures every delivery.
    Fanout(FanoutArgs),
    /// Every client sends on a fixed schedule and measures the round trip of its own echo.
    Echo(EchoArgs),
    /// A connection storm: handshake latency, failures by reason, how many stay connected.
    Connect(ConnectArgs),
    /// Merges the --json reports of several loadgen processes of one run (same --run-id):
    /// histograms merged exactly, accounting settled over every receiver.
    Merge(MergeArgs),
}

/// Options of `fanout`.
#[derive(Debug, Args)]
#[command(after_help = EXIT_STATUS_HELP)]
pub(crate) struct FanoutArgs {
    #[command(flatten)]
    pub common: Common,
    /// How many of the clients send (the first N). The others only receive.
    #[arg(long, default_value_t = 1)]
    pub senders: u32,
    /// Messages per second, all senders together, on a fixed schedule.
    #[arg(long, default_value_t = 100.0)]
    pub rate: f64,
    /// Whether the server sends a sender its own messages: `auto` detects it from the
    /// deliveries, `yes`/`no` state it.
    #[arg(long, value_enum, default_value_t = ExpectSelf::Auto)]
    pub expect_self: ExpectSelf,
    /// Ramp the receivers (the clients that do not send) over the run, k6 style:
    /// `10s:200,20s:1000,10s:0`. Each stage moves the number of connected receivers in a
    /// straight line from where the last ended (0 at first), from the send schedule's start;
    /// the senders connect before the run and stay. Receivers join in order and leave in
    /// reverse order, closing with 1000; a target may rise, hold and fall, not rise again.
    /// The peak is at most --clients minus --senders; the stages last at most as long as the
    /// sending. A receiver is owed the messages intended while it was a member, from 100 ms
    /// after its handshake completed to 100 ms before it leaves: deliveries outside that are
    /// counted apart (`outside membership`), neither lost nor unexpected.
    #[arg(long)]
    pub connection_stages: Option<String>,
    #[command(flatten)]
    pub message: MessageArgs,
}

/// Options of `echo`.
#[derive(Debug, Args)]
#[command(after_help = EXIT_STATUS_HELP)]
pub(crate) struct EchoArgs {
    #[command(flatten)]
    pub common: Common,
    /// Messages per second, all clients together, on a fixed schedule.
    #[arg(long, default_value_t = 100.0)]
    pub rate: f64,
    #[command(flatten)]
    pub message: MessageArgs,
}

/// Options of `connect`.
#[derive(Debug, Args)]
#[command(after_help = EXIT_STATUS_HELP)]
pub(crate) struct ConnectArgs {
    #[command(flatten)]
    pub common: Common,
    /// How long to hold the connections open before counting how many are still open.
    /// `--hgrm` writes the handshake latencies.
    #[arg(long, default_value = "5s", value_parser = parse_duration)]
    pub hold: Duration,
}

/// Options of `merge`.
#[derive(Debug, Args)]
#[command(after_help = EXIT_STATUS_HELP)]
pub(crate) struct MergeArgs {
    /// The --json reports to merge.
    #[arg(required = true)]
    pub reports: Vec<PathBuf>,
    /// Write the merged report as JSON to this file.
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// Write the merged delivery latency in HdrHistogram's percentile format.
    #[arg(long)]
    pub hgrm: Option<PathBuf>,
    /// Write the merged --interval rows to this CSV file (every report needs the same
    /// --interval).
    #[arg(long)]
    pub csv: Option<PathBuf>,
    /// Exit with status 3 when the merged run is invalid.
    #[arg(long, value_enum)]
    pub fail_on: Option<FailOn>,
    /// A pass/fail criterion on the merged figures (see the other subcommands).
    #[arg(long = "threshold", value_parser = Threshold::parse)]
    pub thresholds: Vec<Threshold>,
}

/// Options of the messages sent.
#[derive(Debug, Args)]
pub(crate) struct MessageArgs {
    /// Payload size in bytes (at least 56: the probe header). With --message, the probe is
    /// padded so that the whole message is at least this long.
    #[arg(long, default_value_t = 64)]
    pub payload: usize,
    /// The message to send, with `{probe}` where the probe goes, for servers with their own
    /// protocol, e.g. '{"type":"say","text":"{probe}"}'. `{room}`, `{client}` and `{sender}`
    /// are filled per sender.
    #[arg(long, conflicts_with = "message_file")]
    pub message: Option<String>,
    /// Like --message, the template read from a file (a trailing newline is dropped).
    #[arg(long)]
    pub message_file: Option<PathBuf>,
    /// Send binary frames instead of text frames.
    #[arg(long)]
    pub binary: bool,
    /// How long the run sends and measures (e.g. 30s, 500ms, 2m).
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    pub duration: Duration,
    /// Sending before the measured window; measured separately and left out of the results.
    #[arg(long, default_value = "0s", value_parser = parse_duration)]
    pub warmup: Duration,
    /// How long to wait after the last send for deliveries still in flight.
    #[arg(long, default_value = "2s", value_parser = parse_duration)]
    pub drain: Duration,
    /// The rate over time instead of a fixed --rate, k6 style: `30s:100,60s:1000,30s:0`. Each
    /// stage moves the rate in a straight line from where the last ended (0 at first) to its
    /// target; the run lasts as long as the stages (--duration is ignored; --warmup is the
    /// first part of the stages).
    #[arg(long)]
    pub stages: Option<String>,
    /// Cut the run into intervals of this length (e.g. 1s): per interval, messages sent,
    /// deliveries, lost, p50/p99/max and open connections, into the JSON and --csv.
    #[arg(long, value_parser = parse_duration)]
    pub interval: Option<Duration>,
    /// Write the --interval rows to this CSV file (--interval defaults to 1s).
    #[arg(long)]
    pub csv: Option<PathBuf>,
}

/// What a message's arrival time is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum Arrival {
    /// The kernel's receive timestamp of the read that completed the message.
    Kernel,
    /// When this process read it.
    Read,
}

/// Whether a sender receives its own messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum ExpectSelf {
    /// Detect it: if any sender receives one of its own messages, all are expected to.
    Auto,
    /// The server echoes to the sender.
    Yes,
    /// The server leaves the sender out.
    No,
}

/// Options every run takes.
#[derive(Debug, Args)]
pub(crate) struct Common {
    /// The server: `ws://host[:port]/path` or `wss://host[:port]/path` (TLS with rustls: SNI,
    /// ALPN http/1.1, the system's roots plus --ca-file). `{room}` in the URL is replaced by
    /// the room number.
    /// Repeatable: clients are spread round robin over the URLs, all in one logical room (for
    /// rooms that span processes or machines), and the report breaks figures down per URL.
    #[arg(long = "url", required = true)]
    pub urls: Vec<String>,
    /// wss://: trust the CA certificates in this PEM file, beside the system's roots.
    #[arg(long)]
    pub ca_file: Option<PathBuf>,
    /// wss://: accept any server certificate (self-signed test servers). The handshake is
    /// otherwise the same, so it costs what a verified one costs.
    #[arg(long)]
    pub insecure: bool,
    /// Offer permessage-deflate (RFC 7692) as a browser does (`client_max_window_bits`),
    /// inflate what comes back compressed and compress what is sent. The report gives bytes on
    /// the wire beside payload bytes.
    #[arg(long)]
    pub compress: bool,
    /// When a message arrives, for its latency: `kernel`, when the kernel received the bytes
    /// that completed it (SO_TIMESTAMPNS; this process's own delay in reading a socket among
    /// thousands is not counted, as each real client reads its own), or `read`, when this
    /// process read them.
    #[arg(long, value_enum, default_value_t = Arrival::Kernel)]
    pub arrival: Arrival,
    /// Several loadgens, one run: the run id every process of the run shares (hex, up to 8
    /// digits), so that each recognises the others' probes. Default: a new random id.
    #[arg(long, value_parser = parse_run_id)]
    pub run_id: Option<u32>,
    /// Several loadgens, one run: this process's first sender is sender N of the run's
    /// schedule (and its clients are numbered from N). Give each process its own range.
    #[arg(long, default_value_t = 0)]
    pub sender_base: u32,
    /// Several loadgens, one run: senders in the whole run, all processes together (default:
    /// --sender-base plus this process's senders). --rate is then the whole run's rate: each
    /// process sends its senders' share of one schedule. Declares the run one process of
    /// several: its --json then carries the `merge` section that `loadgen merge` reads.
    #[arg(long)]
    pub total_senders: Option<u32>,
    /// Several loadgens, one run: start the schedule at this wall-clock time, milliseconds
    /// since the Unix epoch, so that every process starts together.
    #[arg(long)]
    pub start_at: Option<u64>,
    /// How many client connections to open.
    #[arg(long, default_value_t = 100)]
    pub clients: u32,
    /// New connections per second while ramping up.
    #[arg(long, default_value_t = 1000.0)]
    pub connect_rate: f64,
    /// A connection that is not open after this long has failed.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    pub connect_timeout: Duration,
    /// Worker threads, each with its own poll loop and its share of the clients
    /// (default: the number of cores).
    #[arg(long)]
    pub threads: Option<usize>,
    /// An extra request header, `Name: value` (repeatable). `{room}`, `{client}` and
    /// `{sender}` in the value are filled per client.
    #[arg(long = "header", value_parser = parse_header)]
    pub headers: Vec<(String, String)>,
    /// A subprotocol to offer (repeatable).
    #[arg(long = "subprotocol")]
    pub subprotocols: Vec<String>,
    /// Text each client sends right after its handshake (a join or subscribe message).
    /// `{room}`, `{client}` and `{sender}` are filled per client.
    #[arg(long)]
    pub first_message: Option<String>,
    /// Speak newline-framed text over plain TCP instead of WebSocket (for the raw TCP fan-out
    /// ceiling in `make bench`): no handshake, each probe is one line. The URL's scheme must
    /// still be ws://; only its host and port are used.
    #[arg(long)]
    pub raw: bool,
    /// Spread the clients over this many rooms; needs `{room}` in the URL.
    #[arg(long, default_value_t = 1)]
    pub rooms: u32,
    /// A local address to connect from (repeatable; clients take them in turn). Needed beyond
    /// about 28,000 connections to one server address: use 127.0.0.2, 127.0.0.3, ...
    #[arg(long = "source-ip")]
    pub source_ips: Vec<IpAddr>,
    /// Sample this process's CPU and memory from /proc during the run (the server's pid).
    #[arg(long)]
    pub server_pid: Option<u32>,
    /// Write every figure as JSON to this file.
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// Write the delivery latency distribution in HdrHistogram's percentile format.
    #[arg(long)]
    pub hgrm: Option<PathBuf>,
    /// No progress lines on stderr.
    #[arg(long)]
    pub quiet: bool,
    /// Exit with status 3 when the run is invalid (see the verdict line).
    #[arg(long, value_enum)]
    pub fail_on: Option<FailOn>,
    /// A pass/fail criterion, k6 style (repeatable): `p99<50ms`, `lost==0`, `lost<0.1%`,
    /// `completion_p99<200ms`, `handshake_p99<1s`, `failed==0`, `deliveries_per_s>=1e6`.
    /// A crossed threshold exits with status 4.
    #[arg(long = "threshold", value_parser = Threshold::parse)]
    pub thresholds: Vec<Threshold>,
}

/// What makes the exit status non-zero.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum FailOn {
    /// An invalid run (failed connections, lost senders, schedule not kept, loadgen
    /// saturated, nothing measured, server gone).
    Invalid,
}

fn parse_run_id(text: &str) -> Result<u32, String> {
    let digits = text.trim().trim_start_matches("0x");
    if digits.is_empty() || digits.len() > 8 {
        return Err(format!("`{text}`: a run id is 1 to 8 hex digits"));
    }
    u32::from_str_radix(digits, 16).map_err(|_| format!("`{text}`: a run id is hex digits"))
}

fn parse_header(text: &str) -> Result<(String, String), String> {
    let (name, value) = text
        .split_once(':')
        .ok_or_else(|| format!("`{text}`: a header is `Name: value`"))?;
    let name = name.trim();
    if name.is_empty()
        || !name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
    {
        return Err(format!("`{name}` is not a header name"));
    }
    Ok((name.to_owned(), value.trim().to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_command_line_is_well_formed() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }

    #[test]
    fn headers_are_name_colon_value() {
        assert_eq!(
            parse_header("X-Token: abc"),
            Ok(("X-Token".into(), "abc".into()))
        );
        assert!(parse_header("no colon").is_err());
        assert!(parse_header("bad name: x").is_err());
    }
}
