//! From the command line to a plan: every option checked and resolved (URL, rooms, template,
//! limits of the schedule) before anything connects. Errors here are usage errors (exit 2).

use std::time::Duration;

use crate::cli::{Arrival, Cli, Common, ExpectSelf, FailOn, MessageArgs, Run};
use crate::plan::{Plan, RunKind};
use crate::probe::PROBE_HEADER_LEN;
use crate::ramp::ConnectionRamp;
use crate::report::RunDescription;
use crate::schedule::Shape;
use crate::target;
use crate::template::MessageTemplate;
use crate::tls::{self, TrustOptions};

/// Most messages a run may schedule: completion tracking keeps 12 bytes per message per thread.
const MAX_MESSAGES: f64 = 50_000_000.0;

/// A checked command line: the plan the workers follow, the report's description, and the
/// options only the main thread needs.
pub(crate) struct Setup {
    /// What every worker follows.
    pub plan: Plan,
    /// What the report says was asked.
    pub description: RunDescription,
    /// The options every run takes.
    pub common: Common,
    /// Drain (fanout, echo) or hold (connect).
    pub after: Duration,
}

/// Checks the command line and turns it into a plan. Errors are usage errors (exit 2).
pub(crate) fn plan_from(cli: Cli, command_line: Vec<String>) -> Result<Setup, String> {
    let mut connection_stages = None;
    let (kind, common, message, senders, rate, expect_self, hold) = match cli.run {
        Run::Fanout(args) => {
            let expect_self = match args.expect_self {
                ExpectSelf::Auto => None,
                ExpectSelf::Yes => Some(true),
                ExpectSelf::No => Some(false),
            };
            connection_stages = args.connection_stages;
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
        Run::Merge(_) => return Err("merge is not a run".into()),
    };
    if common.clients == 0 {
        return Err("--clients must be at least 1".into());
    }
    if !common.connect_rate.is_finite() || common.connect_rate <= 0.0 {
        return Err("--connect-rate must be above 0".into());
    }
    if common.rooms == 0 {
        return Err("--rooms must be at least 1".into());
    }
    let targets = common
        .urls
        .iter()
        .map(|url| target::parse_target(url, common.rooms))
        .collect::<Result<Vec<_>, _>>()?;
    if common.raw && common.compress {
        return Err("--raw speaks plain TCP; it cannot be used with --compress".into());
    }
    let tls = if targets.iter().any(|target| target.tls) {
        if common.raw {
            return Err("--raw speaks plain TCP; it cannot be used with wss:// URLs".into());
        }
        Some(tls::client_config(&TrustOptions {
            ca_file: common.ca_file.clone(),
            insecure: common.insecure,
        })?)
    } else {
        None
    };
    let message = message.unwrap_or(MessageArgs {
        payload: PROBE_HEADER_LEN,
        message: None,
        message_file: None,
        binary: false,
        duration: Duration::ZERO,
        warmup: Duration::ZERO,
        drain: Duration::ZERO,
        stages: None,
        interval: None,
        csv: None,
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
        if message.stages.is_none() && (!rate.is_finite() || rate <= 0.0) {
            return Err("--rate must be a positive number of messages per second".into());
        }
        if senders == 0 || senders > common.clients {
            return Err(format!(
                "--senders must be between 1 and --clients ({})",
                common.clients
            ));
        }
        if message.duration.is_zero() && message.stages.is_none() {
            return Err("--duration must be above 0".into());
        }
    }
    let shape = match &message.stages {
        Some(stages) => Shape::stages(stages)?,
        None => Shape::constant(rate, (message.warmup + message.duration).as_secs_f64()),
    };
    let warmup_s = message.warmup.as_secs_f64();
    if kind.sends() {
        if shape.total_messages() as f64 > MAX_MESSAGES {
            return Err(format!("the run would schedule more than {MAX_MESSAGES} messages; lower --rate or --duration"));
        }
        if warmup_s >= shape.total_s() {
            return Err("--warmup must be shorter than the run".into());
        }
    }
    let interval = match (message.interval, &message.csv) {
        (Some(interval), _) if interval.is_zero() => {
            return Err("--interval must be above 0".into())
        }
        (Some(interval), _) => Some(interval),
        (None, Some(_)) => Some(Duration::from_secs(1)),
        (None, None) => None,
    };
    if let Some(interval) = interval {
        if kind.sends() && shape.total_s() / interval.as_secs_f64() > 100_000.0 {
            return Err("--interval is too short for this run (at most 100,000 intervals)".into());
        }
    }
    let threads = common
        .threads
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
        .clamp(1, common.clients as usize);
    let run_id = common.run_id.unwrap_or_else(|| {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |since| since.subsec_nanos());
        (std::process::id() << 12) ^ nanos ^ 0x5bd1_e995
    });
    let several = common.run_id.is_some() || common.start_at.is_some() || common.sender_base > 0;
    if kind.sends() && several && common.total_senders.is_none() {
        return Err(
            "--run-id, --sender-base and --start-at share one schedule between processes: give --total-senders too (the senders of all processes together; --rate is then the whole run's rate)"
                .into(),
        );
    }
    let total_senders = common
        .total_senders
        .unwrap_or(common.sender_base.saturating_add(senders));
    if kind.sends() && u64::from(common.sender_base) + u64::from(senders) > u64::from(total_senders)
    {
        return Err(format!(
            "--sender-base {} plus {} sender(s) is more than --total-senders {total_senders}",
            common.sender_base, senders
        ));
    }
    if let Some(start_at) = common.start_at {
        let now_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |since| since.as_millis() as u64);
        if start_at <= now_ms {
            return Err(format!(
                "--start-at {start_at} is in the past (now is {now_ms})"
            ));
        }
    }
    let connection_ramp = connection_stages
        .as_deref()
        .map(ConnectionRamp::parse)
        .transpose()?;
    if let Some(ramp) = &connection_ramp {
        if ramp.peak() > common.clients - senders {
            return Err(format!(
                "--connection-stages peaks at {} receivers, but --clients {} with --senders {senders} leaves {}",
                ramp.peak(),
                common.clients,
                common.clients - senders
            ));
        }
        if ramp.total_s() > shape.total_s() + 1e-9 {
            return Err(format!(
                "--connection-stages last {} s, longer than the sending ({} s)",
                ramp.total_s(),
                shape.total_s()
            ));
        }
    }
    let hold = if kind == RunKind::Connect {
        hold
    } else {
        message.drain
    };
    let rate = if message.stages.is_some() {
        shape.peak_rate()
    } else {
        rate
    };
    let description = RunDescription {
        sender_ranges: vec![(common.sender_base, common.sender_base + senders)],
        total_senders,
        run_id,
        start_at_unix_ms: common.start_at,
        merged_reports: 0,
        shape: kind.sends().then_some(shape),
        kind,
        urls: common.urls.clone(),
        clients: common.clients,
        senders,
        rate,
        payload: message.payload,
        message_template: template_text,
        binary: message.binary,
        compress: common.compress,
        arrival: match common.arrival {
            Arrival::Kernel => "kernel",
            Arrival::Read => "read",
        }
        .to_owned(),
        duration_s: shape.total_s() - warmup_s,
        warmup_s,
        stages: message.stages.clone(),
        connection_stages,
        interval_s: interval.map(|interval| interval.as_secs_f64()),
        csv: message.csv.clone(),
        threads,
        rooms: common.rooms,
        expect_self,
        after_s: hold.as_secs_f64(),
        multi_process: common.total_senders.is_some(),
        command_line,
        started_unix_ms: std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |since| since.as_millis() as u64),
        thresholds: common.thresholds.clone(),
        fail_on_invalid: common.fail_on == Some(FailOn::Invalid),
    };
    let plan = Plan {
        kind,
        targets,
        tls,
        headers: common.headers.clone(),
        subprotocols: common.subprotocols.clone(),
        first_message: common.first_message.clone(),
        source_ips: common.source_ips.clone(),
        connect_rate: common.connect_rate,
        connect_timeout_ns: common.connect_timeout.as_nanos() as u64,
        threads,
        payload: message.payload,
        message_template,
        compress: common.compress,
        binary: message.binary,
        raw: common.raw,
        kernel_timestamps: common.arrival == Arrival::Kernel,
        run_id,
        sender_base: common.sender_base,
        total_senders,
        shape,
        interval_ns: interval.map_or(0, |interval| interval.as_nanos() as u64),
        senders,
        rooms: common.rooms,
        expect_self,
        warmup_s,
        connection_ramp,
    };
    Ok(Setup {
        plan,
        description,
        common,
        after: hold,
    })
}
