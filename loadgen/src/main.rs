//! `loadgen`: opens many WebSocket clients against any `ws://` server, sends on a fixed
//! schedule and measures fan-out latency from each message's intended send time.
//!
//! The main thread validates the command line, starts one worker per thread (`worker.rs`),
//! waits until every client has connected or failed, starts the schedule, prints a progress
//! line each second, then stops the workers and merges their histograms (`report.rs`).
#![forbid(unsafe_code)]

mod accounting;
mod cli;
mod client;
mod measurements;
mod plan;
mod probe;
mod report;
mod schedule;
mod system;
mod template;
mod transport;
mod worker;

use std::net::ToSocketAddrs;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use clap::Parser;
use protocol::url::WsUrl;

use crate::cli::{Cli, Common, ExpectSelf, MessageArgs, Run};
use crate::plan::{Plan, RunKind};
use crate::probe::PROBE_HEADER_LEN;
use crate::report::{format_us, hgrm, Report, Resources, RunDescription};
use crate::schedule::{Clock, Schedule};
use crate::template::MessageTemplate;
use crate::worker::{new_histogram, Shared, Worker};

/// Most messages a run may schedule: completion tracking keeps 12 bytes per message per thread.
const MAX_MESSAGES: f64 = 50_000_000.0;

fn main() -> ExitCode {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("warn")).init();
    let cli = Cli::parse();
    let (plan, description, common, hold) = match plan_from(cli) {
        Ok(parts) => parts,
        Err(message) => {
            eprintln!("loadgen: {message}");
            eprintln!("Try 'loadgen --help' for the options.");
            return ExitCode::from(2);
        }
    };
    match run(plan, description, &common, hold) {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("loadgen: {message}");
            ExitCode::FAILURE
        }
    }
}

type Planned = (Plan, RunDescription, Common, Duration);

/// Checks the command line and turns it into a plan. Errors are usage errors (exit 2).
fn plan_from(cli: Cli) -> Result<Planned, String> {
    let (kind, common, message, senders, rate, expect_self, hold) = match cli.run {
        Run::Fanout(args) => {
            let expect_self = match args.expect_self {
                ExpectSelf::Auto => None,
                ExpectSelf::Yes => Some(true),
                ExpectSelf::No => Some(false),
            };
            (
                RunKind::Fanout,
                args.common,
                Some(args.message),
                args.senders,
                args.rate,
                expect_self,
                Duration::ZERO,
            )
        }
        Run::Echo(args) => {
            let clients = args.common.clients;
            (
                RunKind::Echo,
                args.common,
                Some(args.message),
                clients,
                args.rate,
                Some(true),
                Duration::ZERO,
            )
        }
        Run::Connect(args) => (RunKind::Connect, args.common, None, 0, 1.0, None, args.hold),
    };
    let url = WsUrl::parse(&common.url).map_err(|error| match error {
        protocol::Error::TlsNotSupported => {
            format!(
                "`{}`: wss:// (TLS) is not supported yet; use a ws:// URL",
                common.url
            )
        }
        _ => format!(
            "`{}` is not a ws:// URL (expected ws://host[:port][/path])",
            common.url
        ),
    })?;
    if common.clients == 0 {
        return Err("--clients must be at least 1".into());
    }
    if !common.connect_rate.is_finite() || common.connect_rate <= 0.0 {
        return Err("--connect-rate must be above 0".into());
    }
    if common.rooms == 0 {
        return Err("--rooms must be at least 1".into());
    }
    if common.rooms > 1 && !url.target.contains("%7Broom%7D") && !url.target.contains("{room}") {
        return Err(
            "--rooms needs a {room} placeholder in the URL, e.g. ws://host:8080/room{room}".into(),
        );
    }
    let message = message.unwrap_or(MessageArgs {
        payload: PROBE_HEADER_LEN,
        message: None,
        message_file: None,
        binary: false,
        duration: Duration::ZERO,
        warmup: Duration::ZERO,
        drain: Duration::ZERO,
    });
    let template_text = match (&message.message, &message.message_file) {
        (Some(text), _) => Some(text.clone()),
        (None, Some(path)) => Some(
            std::fs::read_to_string(path)
                .map_err(|error| format!("cannot read --message-file {}: {error}", path.display()))?
                .trim_end_matches(['\n', '\r'])
                .to_owned(),
        ),
        (None, None) => None,
    };
    let message_template = template_text
        .as_deref()
        .map(MessageTemplate::parse)
        .transpose()
        .map_err(|error| format!("--message: {error}"))?;
    if kind != RunKind::Connect {
        if message.payload < PROBE_HEADER_LEN && message_template.is_none() {
            return Err(format!(
                "--payload must be at least {PROBE_HEADER_LEN} bytes (the probe header)"
            ));
        }
        if !rate.is_finite() || rate <= 0.0 {
            return Err("--rate must be a positive number of messages per second".into());
        }
        if senders == 0 || senders > common.clients {
            return Err(format!(
                "--senders must be between 1 and --clients ({})",
                common.clients
            ));
        }
        if message.duration.is_zero() {
            return Err("--duration must be above 0".into());
        }
        if (message.warmup + message.duration).as_secs_f64() * rate > MAX_MESSAGES {
            return Err(format!("the run would schedule more than {MAX_MESSAGES} messages; lower --rate or --duration"));
        }
    }
    let address = url
        .socket_address()
        .to_socket_addrs()
        .map_err(|error| format!("cannot resolve {}: {error}", url.host))?
        .next()
        .ok_or_else(|| format!("{} resolves to no address", url.host))?;
    let threads = common
        .threads
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
        .clamp(1, common.clients as usize);
    let room_targets = (0..common.rooms)
        .map(|room| {
            url.target
                .replace("{room}", &room.to_string())
                .replace("%7Broom%7D", &room.to_string())
        })
        .collect();
    let run_id =
        (std::process::id() << 8) ^ (Instant::now().elapsed().subsec_nanos() ^ 0x5bd1_e995);
    let description = RunDescription {
        kind,
        url: common.url.clone(),
        clients: common.clients,
        senders,
        rate,
        payload: message.payload,
        binary: message.binary,
        duration_s: message.duration.as_secs_f64(),
        warmup_s: message.warmup.as_secs_f64(),
        threads,
        rooms: common.rooms,
        expect_self,
    };
    let plan = Plan {
        kind,
        address,
        host_header: url.host_header(),
        room_targets,
        headers: common.headers.clone(),
        subprotocols: common.subprotocols.clone(),
        first_message: common.first_message.clone(),
        source_ips: common.source_ips.clone(),
        connect_rate: common.connect_rate,
        connect_timeout_ns: common.connect_timeout.as_nanos() as u64,
        threads,
        payload: message.payload,
        message_template,
        binary: message.binary,
        raw: common.raw,
        run_id,
        rate,
        senders,
        rooms: common.rooms,
        expect_self,
        warmup_s: message.warmup.as_secs_f64(),
        duration_s: message.duration.as_secs_f64(),
    };
    let hold = if kind == RunKind::Connect {
        hold
    } else {
        message.drain
    };
    Ok((plan, description, common, hold))
}

/// Runs the plan. `after` is the drain time (fanout, echo) or the hold time (connect).
fn run(
    plan: Plan,
    description: RunDescription,
    common: &Common,
    after: Duration,
) -> Result<(), String> {
    let clock = Clock::new();
    let shared = Arc::new(Shared {
        clock,
        connected: AtomicU64::new(0),
        failed: AtomicU64::new(0),
        disconnected: AtomicU64::new(0),
        sent: AtomicU64::new(0),
        received: AtomicU64::new(0),
        start_ns: AtomicU64::new(0),
        stop: AtomicBool::new(false),
        progress: Mutex::new(new_histogram()),
    });
    let plan = Arc::new(plan);
    let clients = common.clients;
    let mut handles = Vec::new();
    for index in 0..plan.threads {
        let ids: Vec<u32> = (0..clients)
            .filter(|id| *id as usize % plan.threads == index)
            .collect();
        let worker = Worker::new(index, plan.clone(), shared.clone(), ids)
            .map_err(|error| format!("cannot create a poll: {error}"))?;
        let handle = std::thread::Builder::new()
            .name(format!("loadgen-{index}"))
            .spawn(move || worker.run())
            .map_err(|error| format!("cannot start a thread: {error}"))?;
        handles.push(handle);
    }
    let progress = Progress {
        shared: shared.clone(),
        quiet: common.quiet,
        clients,
        started: Instant::now(),
    };

    // Ramp: wait until every client is connected or has failed.
    let ramp_limit = Duration::from_secs_f64(clients as f64 / plan.connect_rate)
        + Duration::from_nanos(plan.connect_timeout_ns)
        + Duration::from_secs(1);
    let ramp_end = Instant::now() + ramp_limit;
    loop {
        let done = shared.connected.load(Ordering::Relaxed) + shared.failed.load(Ordering::Relaxed);
        if done >= u64::from(clients) || Instant::now() >= ramp_end {
            break;
        }
        progress.wait_and_print(Duration::from_millis(100));
    }
    let connected = shared.connected.load(Ordering::Relaxed);
    if connected == 0 {
        shared.stop.store(true, Ordering::Relaxed);
        let results: Vec<_> = handles
            .into_iter()
            .filter_map(|handle| handle.join().ok())
            .collect();
        let mut failures = std::collections::BTreeMap::<String, u64>::new();
        for result in &results {
            for (reason, count) in &result.failures {
                *failures.entry(reason.clone()).or_default() += count;
            }
        }
        let reasons: Vec<String> = failures
            .iter()
            .map(|(reason, count)| format!("{reason} ({count})"))
            .collect();
        return Err(format!(
            "no client could connect to {}: {}",
            description.url,
            if reasons.is_empty() {
                "no answer".to_owned()
            } else {
                reasons.join(", ")
            }
        ));
    }

    let server_pid = common.server_pid.map(|pid| pid.to_string());
    let before_self = system::sample("self");
    let before_server = server_pid.as_deref().and_then(system::sample);
    let mut server_rss_max = before_server.map(|sample| sample.rss_bytes);
    let measure_started = Instant::now();

    let schedule = if plan.kind == RunKind::Connect {
        None
    } else {
        let start_ns = shared.clock.now_ns() + 50_000_000;
        let schedule = Schedule::new(
            start_ns,
            plan.rate,
            plan.senders,
            plan.warmup_s,
            plan.duration_s,
        );
        shared.start_ns.store(start_ns, Ordering::Release);
        Some(schedule)
    };
    let run_for = match schedule {
        Some(schedule) => {
            Duration::from_nanos(schedule.end_ns().saturating_sub(shared.clock.now_ns())) + after
        }
        None => after,
    };
    if plan.kind == RunKind::Connect {
        // Let workers know the ramp is over, so connection timeouts stop being checked.
        shared
            .start_ns
            .store(shared.clock.now_ns().max(1), Ordering::Release);
    }
    // CPU is sampled over the sending window (until the last intended send), not the drain
    // after it, so "100% of a core" means busy the whole time messages were being offered.
    let send_window = if plan.kind == RunKind::Connect {
        run_for
    } else {
        run_for.saturating_sub(after)
    };
    let window_end = Instant::now() + send_window;
    let end = window_end + after;
    let mut window = None;
    while Instant::now() < end {
        let until = if window.is_none() { window_end } else { end };
        progress.wait_and_print(
            until
                .saturating_duration_since(Instant::now())
                .min(Duration::from_secs(1)),
        );
        if let Some(sample) = server_pid.as_deref().and_then(system::sample) {
            server_rss_max = Some(server_rss_max.unwrap_or(0).max(sample.rss_bytes));
        }
        if window.is_none() && Instant::now() >= window_end {
            let server_sample = server_pid.as_deref().and_then(system::sample);
            window = Some((
                system::sample("self"),
                server_sample,
                measure_started.elapsed().as_secs_f64(),
            ));
        }
    }
    let (after_self, after_server, window_s) = match window {
        Some(window) => window,
        None => (
            system::sample("self"),
            server_pid.as_deref().and_then(system::sample),
            measure_started.elapsed().as_secs_f64(),
        ),
    };
    let wall_s = window_s;
    shared.stop.store(true, Ordering::Relaxed);
    let results: Vec<_> = handles
        .into_iter()
        .map(|handle| {
            handle
                .join()
                .map_err(|_| "a worker thread panicked".to_owned())
        })
        .collect::<Result<_, _>>()?;

    let resources = Resources {
        wall_s,
        loadgen_cpu_s: match (before_self, after_self) {
            (Some(before), Some(after)) => after.cpu_seconds - before.cpu_seconds,
            _ => 0.0,
        },
        server_cpu_s: match (before_server, after_server) {
            (Some(before), Some(after)) => Some(after.cpu_seconds - before.cpu_seconds),
            _ => None,
        },
        server_rss_max,
    };
    let report = Report::merge(description, schedule, results, resources);
    print!("{}", report.table());
    if let Some(path) = &common.json {
        let text = serde_json::to_string_pretty(&report.json()).expect("json of plain values");
        std::fs::write(path, text + "\n")
            .map_err(|error| format!("cannot write {}: {error}", path.display()))?;
    }
    if let Some(path) = &common.hgrm {
        std::fs::write(path, hgrm(&report.delivery))
            .map_err(|error| format!("cannot write {}: {error}", path.display()))?;
    }
    Ok(())
}

/// The one-line progress report on stderr.
struct Progress {
    shared: Arc<Shared>,
    quiet: bool,
    clients: u32,
    started: Instant,
}

impl Progress {
    /// Sleeps for `pause`, then prints a line if a new second began.
    fn wait_and_print(&self, pause: Duration) {
        let before = self.started.elapsed().as_secs();
        std::thread::sleep(pause);
        let now = self.started.elapsed().as_secs();
        if self.quiet || now == before {
            return;
        }
        let p99 = self
            .shared
            .progress
            .lock()
            .ok()
            .filter(|histogram| !histogram.is_empty())
            .map_or_else(
                || "-".to_owned(),
                |histogram| format_us(histogram.value_at_quantile(0.99)),
            );
        eprintln!(
            "[{now:>4}s] connected {}/{} failed {} lost {} | sent {} received {} | p99 so far {p99}",
            self.shared.connected.load(Ordering::Relaxed) - self.shared.disconnected.load(Ordering::Relaxed),
            self.clients,
            self.shared.failed.load(Ordering::Relaxed),
            self.shared.disconnected.load(Ordering::Relaxed),
            self.shared.sent.load(Ordering::Relaxed),
            self.shared.received.load(Ordering::Relaxed),
        );
    }
}
