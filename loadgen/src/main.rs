//! `loadgen`: opens many WebSocket clients against any `ws://` server, sends on a fixed
//! schedule and measures fan-out latency from each message's intended send time.
//!
//! The main thread checks the command line (`setup.rs`) and the machine (`limits.rs`), starts
//! one worker per thread (`worker.rs`), waits until every client has connected or failed,
//! starts the schedule, prints a progress line each second, then stops the workers, merges
//! their measurements (`report.rs`), prints the table and the verdict, and writes the files.
#![forbid(unsafe_code)]

mod accounting;
mod cli;
mod client;
mod compression;
mod json_output;
mod limits;
mod measurements;
mod merge;
mod packed;
mod plan;
mod probe;
mod ramp;
mod report;
mod schedule;
mod setup;
mod system;
mod table;
mod target;
mod template;
mod threshold;
mod tls;
mod transport;
mod verdict;
mod worker;

use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use clap::Parser;

use crate::cli::Cli;
use crate::measurements::Measurements;
use crate::plan::RunKind;
use crate::report::{Report, Resources, Timeline};
use crate::schedule::{Clock, Schedule};
use crate::setup::Setup;
use crate::table::format_us;
use crate::worker::{new_histogram, Shared, Worker};

/// After SIGINT or SIGTERM, deliveries in flight get at most this long.
const INTERRUPT_DRAIN: Duration = Duration::from_secs(1);

fn main() -> ExitCode {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("warn")).init();
    let command_line: Vec<String> = std::env::args().collect();
    let cli = Cli::parse();
    if let cli::Run::Merge(args) = cli.run {
        return match merge::run(args, command_line) {
            Ok(code) => ExitCode::from(code),
            Err((code, message)) => {
                eprintln!("loadgen merge: {message}");
                ExitCode::from(code)
            }
        };
    }
    let setup = match setup::plan_from(cli, command_line).and_then(|setup| {
        check_machine(&setup)?;
        Ok(setup)
    }) {
        Ok(setup) => setup,
        Err(message) => {
            eprintln!("loadgen: {message}");
            eprintln!("Try 'loadgen --help' for the options.");
            return ExitCode::from(verdict::EXIT_USAGE);
        }
    };
    let interrupted = Arc::new(AtomicBool::new(false));
    for signal in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        // A second signal while the first is being handled ends the process at once.
        let _ = signal_hook::flag::register_conditional_shutdown(
            signal,
            i32::from(verdict::EXIT_INTERRUPTED),
            interrupted.clone(),
        );
        let _ = signal_hook::flag::register(signal, interrupted.clone());
    }
    match run(setup, &interrupted) {
        Ok(code) => ExitCode::from(code),
        Err(message) => {
            eprintln!("loadgen: {message}");
            ExitCode::from(verdict::EXIT_RUN_FAILED)
        }
    }
}

/// Open files for every client, and outputs that can be written: known before the run.
fn check_machine(setup: &Setup) -> Result<(), String> {
    limits::raise_open_files(setup.common.clients, setup.plan.threads)?;
    if let Some(path) = &setup.common.json {
        limits::check_output("--json", path)?;
    }
    if let Some(path) = &setup.common.hgrm {
        limits::check_output("--hgrm", path)?;
    }
    if let Some(path) = &setup.description.csv {
        limits::check_output("--csv", path)?;
    }
    Ok(())
}

/// Runs the plan; returns the exit status the run earned.
fn run(setup: Setup, interrupted: &AtomicBool) -> Result<u8, String> {
    let Setup {
        plan,
        description,
        common,
        after,
    } = setup;
    let clock = Clock::new();
    let shared = Arc::new(Shared {
        clock,
        connected: AtomicU64::new(0),
        failed: AtomicU64::new(0),
        disconnected: AtomicU64::new(0),
        left: AtomicU64::new(0),
        sent: AtomicU64::new(0),
        received: AtomicU64::new(0),
        start_ns: AtomicU64::new(0),
        halt_ns: AtomicU64::new(u64::MAX),
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
    let mut progress = Progress {
        shared: shared.clone(),
        quiet: common.quiet,
        clients,
        started: Instant::now(),
        phase: "connecting",
        phase_started: Instant::now(),
        phase_length: Duration::ZERO,
    };
    let stop_workers = |handles: Vec<std::thread::JoinHandle<Measurements>>| {
        shared.stop.store(true, Ordering::Relaxed);
        handles
            .into_iter()
            .map(|handle| {
                handle
                    .join()
                    .map_err(|_| "a worker thread panicked".to_owned())
            })
            .collect::<Result<Vec<_>, _>>()
    };

    // Ramp: wait until every client due before the run is connected or has failed.
    let initial_clients = plan.initial_clients(clients);
    let ramp_limit = Duration::from_secs_f64(f64::from(initial_clients) / plan.connect_rate)
        + Duration::from_nanos(plan.connect_timeout_ns)
        + Duration::from_secs(1);
    progress.enter("connecting", ramp_limit);
    let ramp_end = Instant::now() + ramp_limit;
    loop {
        let done = shared.connected.load(Ordering::Relaxed) + shared.failed.load(Ordering::Relaxed);
        if done >= u64::from(initial_clients)
            || Instant::now() >= ramp_end
            || interrupted.load(Ordering::Relaxed)
        {
            break;
        }
        progress.wait_and_print(Duration::from_millis(100));
    }
    if shared.connected.load(Ordering::Relaxed) == 0 && !interrupted.load(Ordering::Relaxed) {
        let results = stop_workers(handles)?;
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
            description.urls.join(", "),
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

    let schedule = plan.kind.sends().then(|| {
        let start_ns = match description.start_at_unix_ms {
            // The wall clock says when; the run's own monotonic clock keeps time from there.
            Some(start_at) => {
                let now_unix_ns = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |since| since.as_nanos() as u64);
                shared.clock.now_ns() + (start_at * 1_000_000).saturating_sub(now_unix_ns).max(1)
            }
            None => shared.clock.now_ns() + 50_000_000,
        };
        let schedule = Schedule::new(start_ns, plan.shape, plan.total_senders, plan.warmup_s);
        shared.start_ns.store(start_ns, Ordering::Release);
        schedule
    });
    if plan.kind == RunKind::Connect {
        // Let workers know the ramp is over, so connection timeouts stop being checked.
        shared
            .start_ns
            .store(shared.clock.now_ns().max(1), Ordering::Release);
    }
    // CPU is sampled over the sending window (until the last intended send), not the drain
    // after it, so "100% of a core" means busy the whole time messages were being offered.
    let send_window = match schedule {
        Some(schedule) => {
            Duration::from_nanos(schedule.end_ns().saturating_sub(shared.clock.now_ns()))
        }
        None => after,
    };
    progress.enter(
        if plan.kind.sends() {
            "sending"
        } else {
            "holding"
        },
        send_window,
    );
    let mut window_end = Instant::now() + send_window;
    let mut end = if plan.kind.sends() {
        window_end + after
    } else {
        window_end
    };
    let mut window = None;
    let mut halted_ns = None;
    let mut open_by_interval: Vec<u64> = Vec::new();
    let sample_open = |open_by_interval: &mut Vec<u64>| {
        let (Some(schedule), true) = (schedule, plan.interval_ns > 0) else {
            return;
        };
        let elapsed = shared.clock.now_ns().saturating_sub(schedule.start_ns);
        let completed = (elapsed / plan.interval_ns) as usize;
        let open = shared.open();
        while open_by_interval.len() < completed.min(measurements::MAX_INTERVALS) {
            open_by_interval.push(open);
        }
    };
    while Instant::now() < end {
        sample_open(&mut open_by_interval);
        if halted_ns.is_none() && interrupted.load(Ordering::Relaxed) {
            // Stop sending; give what is in flight a moment, then report what was measured.
            let now_ns = shared.clock.now_ns();
            shared.halt_ns.store(now_ns, Ordering::Release);
            halted_ns = Some(now_ns);
            let now = Instant::now();
            window_end = window_end.min(now);
            end = end.min(now + INTERRUPT_DRAIN.min(after));
            progress.enter("interrupted, draining", end - now);
        }
        let until = if window.is_none() { window_end } else { end };
        progress.wait_and_print(
            until
                .saturating_duration_since(Instant::now())
                .min(Duration::from_millis(100)),
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
            if plan.kind.sends() && halted_ns.is_none() {
                progress.enter("draining", end.saturating_duration_since(Instant::now()));
            }
        }
    }
    let (after_self, after_server, wall_s) = match window {
        Some(window) => window,
        None => (
            system::sample("self"),
            server_pid.as_deref().and_then(system::sample),
            measure_started.elapsed().as_secs_f64(),
        ),
    };
    let stopped_ns = shared.clock.now_ns();
    sample_open(&mut open_by_interval);
    let server_exited = server_pid.is_some() && after_server.is_none();
    let results = stop_workers(handles)?;
    let is_interrupted = interrupted.load(Ordering::Relaxed);
    if is_interrupted && halted_ns.is_none() {
        // Interrupted during the ramp: nothing was due.
        halted_ns = Some(shared.clock.now_ns());
    }

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
        server_exited,
    };
    let timeline = Timeline {
        open_by_interval,
        schedule,
        halted_ns,
        stopped_ns,
        interrupted: is_interrupted,
    };
    let report = Report::merge(description, timeline, results, resources);
    print!("{}", report.table());
    if let Some(path) = &common.json {
        std::fs::write(path, report.json_text())
            .map_err(|error| format!("cannot write {}: {error}", path.display()))?;
    }
    if let Some(path) = &report.run.csv {
        std::fs::write(path, report.csv())
            .map_err(|error| format!("cannot write {}: {error}", path.display()))?;
    }
    if let Some(path) = &common.hgrm {
        std::fs::write(path, report.hgrm())
            .map_err(|error| format!("cannot write {}: {error}", path.display()))?;
    }
    Ok(report.exit_code())
}

/// The one-line progress report on stderr: phase, elapsed of the phase's length, connections,
/// messages, and the p99 of the deliveries since the last line.
struct Progress {
    shared: Arc<Shared>,
    quiet: bool,
    clients: u32,
    started: Instant,
    phase: &'static str,
    phase_started: Instant,
    phase_length: Duration,
}

impl Progress {
    fn enter(&mut self, phase: &'static str, length: Duration) {
        self.phase = phase;
        self.phase_started = Instant::now();
        self.phase_length = length;
    }

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
            .and_then(|mut histogram| {
                let p99 =
                    (!histogram.is_empty()).then(|| format_us(histogram.value_at_quantile(0.99)));
                histogram.reset();
                p99
            })
            .unwrap_or_else(|| "-".to_owned());
        let shared = &self.shared;
        let left = shared.left.load(Ordering::Relaxed);
        eprintln!(
            "[{now:>4}s] {} {:.0}/{:.0}s | connections open {}/{}, failed {}, dropped {}, left {left} | messages sent {}, deliveries {} | p99 last second {p99}",
            self.phase,
            self.phase_started.elapsed().as_secs_f64().min(self.phase_length.as_secs_f64()),
            self.phase_length.as_secs_f64(),
            shared.open(),
            self.clients,
            shared.failed.load(Ordering::Relaxed),
            shared.disconnected.load(Ordering::Relaxed),
            shared.sent.load(Ordering::Relaxed),
            shared.received.load(Ordering::Relaxed),
        );
    }
}
