//! Counters of what the server did, served on `GET /metrics` in the Prometheus text format.
//! `frames_delivered / write_calls` is how corking shows: frames sent per system call.

use std::collections::BTreeMap;
use std::fmt::Write as _;

/// Every counter the loop keeps. Plain integers: the loop has one thread.
#[derive(Debug, Default)]
pub struct Metrics {
    /// Connections accepted since start.
    pub connections_accepted: u64,
    /// WebSocket handshakes completed since start.
    pub handshakes_completed: u64,
    /// Handshakes refused, by HTTP status.
    pub handshakes_refused: BTreeMap<u16, u64>,
    /// Plain HTTP requests answered, by status.
    pub http_responses: BTreeMap<u16, u64>,
    /// Text and binary messages received.
    pub messages_received: u64,
    /// Message frames queued to receivers: every member of a broadcast counts once, an echo once.
    pub frames_delivered: u64,
    /// Bytes the kernel accepted from us.
    pub bytes_written: u64,
    /// `write`/`writev` calls that wrote something.
    pub write_calls: u64,
    /// Bytes read from sockets.
    pub bytes_read: u64,
    /// Clients closed with 1008 because their write queue passed its cap.
    pub slow_consumer_closes: u64,
    /// Messages not queued for a slow client under the `drop` policy.
    pub messages_dropped: u64,
    /// Connections failed for a protocol error, by the close code sent.
    pub protocol_errors: BTreeMap<u16, u64>,
    /// Sockets dropped by a timeout: handshake, idle, or an unanswered close.
    pub timeouts: u64,
    /// `accept` calls that failed for lack of file descriptors.
    pub accept_fd_exhausted: u64,
    /// Clients closed with 1008 for sending over `--max-message-rate`.
    pub rate_limited_closes: u64,
    /// Messages dropped for being over `--max-message-rate` (drop policy).
    pub rate_limited_dropped: u64,
    /// Connections closed because the server-wide assembly budget was spent.
    pub assembly_budget_closes: u64,
    /// Connections closed because a fragmented message was not complete in time.
    pub message_timeouts: u64,
    /// Sockets closed at once because too many others were still in their handshake.
    pub handshake_limit_refusals: u64,
    /// TLS sessions that failed: bad records, a plain request on the TLS port, a bad handshake.
    pub tls_failures: u64,
    /// Connections that negotiated permessage-deflate.
    pub deflate_negotiated: u64,
    /// History frames sent to members as they joined.
    pub history_frames_sent: u64,
    /// Compressed messages received and inflated.
    pub messages_inflated: u64,
    /// Compressed frames made (one per broadcast and window in use, shared by its receivers).
    pub frames_compressed: u64,
    /// Payload bytes given to the compressor.
    pub compression_input_bytes: u64,
    /// Compressed frame bytes it made, headers included.
    pub compression_output_bytes: u64,
}

/// Figures of the process, read by the shell (the core reads nothing of the system).
#[derive(Debug, Default, Clone, Copy)]
pub struct ProcessStats {
    /// CPU time used, user and system, in seconds.
    pub cpu_seconds: f64,
    /// Resident memory, in bytes.
    pub resident_bytes: u64,
    /// Open file descriptors.
    pub open_fds: u64,
    /// The open-files limit.
    pub max_fds: u64,
    /// When the process started, in seconds since the Unix epoch.
    pub start_time_seconds: f64,
}

/// Gauges the core passes in when rendering.
#[derive(Debug, Default, Clone, Copy)]
pub struct Gauges {
    /// Sockets open, in any state.
    pub open_sockets: usize,
    /// WebSocket connections open (or closing).
    pub websockets: usize,
    /// Sockets still in their HTTP head.
    pub handshakes: usize,
    /// Rooms with members.
    pub rooms: usize,
    /// Bytes held for messages and heads in progress, all connections.
    pub assembly_bytes: usize,
    /// Bytes of frames kept in room histories.
    pub history_bytes: usize,
    /// Frames kept in room histories.
    pub history_messages: usize,
}

impl Metrics {
    /// Renders the counters, with the gauges the loop passes in.
    pub fn render(&self, gauges: Gauges, process: Option<ProcessStats>) -> String {
        let mut out = String::with_capacity(2048);
        let mut gauge = |name: &str, help: &str, value: u64| {
            let _ = writeln!(
                out,
                "# HELP ws_{name} {help}\n# TYPE ws_{name} gauge\nws_{name} {value}"
            );
        };
        gauge(
            "open_sockets",
            "Sockets open now, in any state.",
            gauges.open_sockets as u64,
        );
        gauge(
            "connections",
            "WebSocket connections open now.",
            gauges.websockets as u64,
        );
        gauge(
            "handshakes_in_progress",
            "Sockets still sending their HTTP request head.",
            gauges.handshakes as u64,
        );
        gauge(
            "rooms",
            "Rooms with at least one member.",
            gauges.rooms as u64,
        );
        gauge(
            "assembly_bytes",
            "Bytes held for messages and request heads still arriving, all connections.",
            gauges.assembly_bytes as u64,
        );
        gauge(
            "history_bytes",
            "Bytes of frames kept in room histories (shared with the queues, not copied).",
            gauges.history_bytes as u64,
        );
        gauge(
            "history_messages",
            "Frames kept in room histories.",
            gauges.history_messages as u64,
        );
        let mut counter = |name: &str, help: &str, value: u64| {
            let _ = writeln!(
                out,
                "# HELP ws_{name} {help}\n# TYPE ws_{name} counter\nws_{name} {value}"
            );
        };
        counter(
            "connections_accepted_total",
            "TCP connections accepted.",
            self.connections_accepted,
        );
        counter(
            "connections_total",
            "WebSocket handshakes completed.",
            self.handshakes_completed,
        );
        counter(
            "messages_received_total",
            "Text and binary messages received.",
            self.messages_received,
        );
        counter(
            "frames_delivered_total",
            "Message frames queued to receivers (a broadcast counts once per member).",
            self.frames_delivered,
        );
        counter(
            "bytes_written_total",
            "Bytes written to sockets.",
            self.bytes_written,
        );
        counter(
            "bytes_read_total",
            "Bytes read from sockets.",
            self.bytes_read,
        );
        counter(
            "write_calls_total",
            "write/writev system calls that wrote bytes.",
            self.write_calls,
        );
        counter(
            "slow_consumer_closes_total",
            "Clients closed with 1008 for a full write queue.",
            self.slow_consumer_closes,
        );
        counter(
            "messages_dropped_total",
            "Messages dropped for slow clients (drop policy).",
            self.messages_dropped,
        );
        counter(
            "timeouts_total",
            "Sockets dropped by a handshake, idle or close timeout.",
            self.timeouts,
        );
        counter(
            "accept_fd_exhausted_total",
            "accept() failures for lack of file descriptors.",
            self.accept_fd_exhausted,
        );
        counter(
            "rate_limited_closes_total",
            "Clients closed with 1008 for sending over --max-message-rate.",
            self.rate_limited_closes,
        );
        counter(
            "rate_limited_messages_dropped_total",
            "Messages dropped for being over --max-message-rate (drop policy).",
            self.rate_limited_dropped,
        );
        counter(
            "assembly_budget_closes_total",
            "Connections closed because --max-assembly-bytes was spent.",
            self.assembly_budget_closes,
        );
        counter(
            "message_timeouts_total",
            "Connections closed because a fragmented message was not complete within --message-timeout.",
            self.message_timeouts,
        );
        counter(
            "handshake_limit_refusals_total",
            "Sockets closed at accept because --max-handshakes were in progress.",
            self.handshake_limit_refusals,
        );
        counter(
            "deflate_negotiated_total",
            "Connections that negotiated permessage-deflate.",
            self.deflate_negotiated,
        );
        counter(
            "history_frames_sent_total",
            "History frames sent to members as they joined.",
            self.history_frames_sent,
        );
        counter(
            "messages_inflated_total",
            "Compressed messages received and inflated.",
            self.messages_inflated,
        );
        counter(
            "frames_compressed_total",
            "Compressed frames made: one per broadcast (and window), shared by its receivers.",
            self.frames_compressed,
        );
        counter(
            "compression_input_bytes_total",
            "Payload bytes compressed.",
            self.compression_input_bytes,
        );
        counter(
            "compression_output_bytes_total",
            "Compressed frame bytes made from them.",
            self.compression_output_bytes,
        );
        counter(
            "tls_failures_total",
            "TLS sessions that failed (bad records, plain text on the TLS port).",
            self.tls_failures,
        );
        let _ = writeln!(out, "# HELP ws_protocol_errors_total Connections failed for a protocol error, by close code.\n# TYPE ws_protocol_errors_total counter");
        for (code, count) in &self.protocol_errors {
            let _ = writeln!(out, "ws_protocol_errors_total{{code=\"{code}\"}} {count}");
        }
        let _ = writeln!(out, "# HELP ws_handshakes_refused_total Upgrade requests refused, by HTTP status.\n# TYPE ws_handshakes_refused_total counter");
        for (status, count) in &self.handshakes_refused {
            let _ = writeln!(
                out,
                "ws_handshakes_refused_total{{status=\"{status}\"}} {count}"
            );
        }
        let _ = writeln!(out, "# HELP ws_http_responses_total Plain HTTP responses, by status.\n# TYPE ws_http_responses_total counter");
        for (status, count) in &self.http_responses {
            let _ = writeln!(
                out,
                "ws_http_responses_total{{status=\"{status}\"}} {count}"
            );
        }
        let per_call = if self.write_calls == 0 {
            0.0
        } else {
            self.frames_delivered as f64 / self.write_calls as f64
        };
        let _ = writeln!(out, "# HELP ws_frames_per_write_call Frames delivered per write system call (corking).\n# TYPE ws_frames_per_write_call gauge\nws_frames_per_write_call {per_call:.3}");
        if let Some(process) = process {
            render_process(&mut out, process);
        }
        out
    }
}

/// The standard `process_*` figures of the Prometheus client libraries.
fn render_process(out: &mut String, process: ProcessStats) {
    let lines: [(&str, &str, &str, String); 5] = [
        (
            "process_cpu_seconds_total",
            "counter",
            "User and system CPU time spent, in seconds.",
            format!("{:.2}", process.cpu_seconds),
        ),
        (
            "process_resident_memory_bytes",
            "gauge",
            "Resident memory size, in bytes.",
            process.resident_bytes.to_string(),
        ),
        (
            "process_open_fds",
            "gauge",
            "Open file descriptors.",
            process.open_fds.to_string(),
        ),
        (
            "process_max_fds",
            "gauge",
            "The open-files limit.",
            process.max_fds.to_string(),
        ),
        (
            "process_start_time_seconds",
            "gauge",
            "Start time of the process since the Unix epoch, in seconds.",
            format!("{:.2}", process.start_time_seconds),
        ),
    ];
    for (name, kind, help, value) in lines {
        let _ = writeln!(
            out,
            "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}"
        );
    }
}
