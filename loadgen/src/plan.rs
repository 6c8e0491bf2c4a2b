//! What a run is asked to do, checked and resolved once by `main` and shared read-only by every
//! worker thread.

use std::net::IpAddr;

use crate::ramp::ConnectionRamp;
use crate::schedule::Shape;
use crate::target::Target;
use crate::template::MessageTemplate;

/// What kind of run this is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RunKind {
    /// Senders broadcast; everyone measures.
    Fanout,
    /// Everyone sends; each measures its own echo.
    Echo,
    /// Connect and hold; nothing is sent.
    Connect,
}

impl RunKind {
    /// The subcommand's name.
    pub(crate) fn name(self) -> &'static str {
        match self {
            RunKind::Fanout => "fanout",
            RunKind::Echo => "echo",
            RunKind::Connect => "connect",
        }
    }

    /// Whether messages are sent and measured.
    pub(crate) fn sends(self) -> bool {
        self != RunKind::Connect
    }
}

/// Everything a worker needs to know about the run.
#[derive(Debug)]
pub(crate) struct Plan {
    /// The kind of run.
    pub kind: RunKind,
    /// The servers, each with its address, `Host` header and room request targets.
    pub targets: Vec<Target>,
    /// The TLS client configuration, when a target is `wss://`.
    pub tls: Option<std::sync::Arc<rustls::ClientConfig>>,
    /// Extra request headers.
    pub headers: Vec<(String, String)>,
    /// Subprotocols to offer.
    pub subprotocols: Vec<String>,
    /// Sent by each client right after its handshake.
    pub first_message: Option<String>,
    /// Local addresses to connect from, in turn.
    pub source_ips: Vec<IpAddr>,
    /// Connections per second during the ramp, all workers together.
    pub connect_rate: f64,
    /// A connection not open after this long has failed.
    pub connect_timeout_ns: u64,
    /// Number of worker threads.
    pub threads: usize,
    /// Probe payload size (with a template: the least size of the whole message).
    pub payload: usize,
    /// The message around each probe, when the server has a protocol of its own.
    pub message_template: Option<MessageTemplate>,
    /// Offer permessage-deflate (RFC 7692) as a browser does.
    pub compress: bool,
    /// Binary frames instead of text.
    pub binary: bool,
    /// Newline-framed text over plain TCP instead of WebSocket.
    pub raw: bool,
    /// A message arrives when the kernel received its last bytes (`--arrival kernel`), not
    /// when this process read them.
    pub kernel_timestamps: bool,
    /// Identifies this run's probes.
    pub run_id: u32,
    /// The rate over time, all senders together.
    pub shape: Shape,
    /// Interval of the time series (0: none).
    pub interval_ns: u64,
    /// Senders of this process.
    pub senders: u32,
    /// This process's first sender in the run's schedule; its clients are numbered from it.
    pub sender_base: u32,
    /// Senders of the whole run (all processes).
    pub total_senders: u32,
    /// Rooms the clients are spread over.
    pub rooms: u32,
    /// Whether senders get their own messages, when stated on the command line.
    pub expect_self: Option<bool>,
    /// Seconds of warmup (the first part of the shape).
    pub warmup_s: f64,
    /// `--connection-stages`: the receivers join and leave over the run.
    pub connection_ramp: Option<ConnectionRamp>,
}

impl Plan {
    /// Clients that connect before the run starts: all of them, or with a connection ramp
    /// only the senders.
    pub(crate) fn initial_clients(&self, clients: u32) -> u32 {
        if self.connection_ramp.is_some() {
            self.senders
        } else {
            clients
        }
    }
}
