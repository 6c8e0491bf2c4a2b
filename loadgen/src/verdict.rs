//! Whether a run's figures can be trusted: `valid`, or `invalid: <reasons>`. And the exit codes
//! that `--fail-on invalid` and `--threshold` turn a run into.
//!
//! Pure: the facts are gathered by the report; the reasons are decided here.

/// The run happened and nothing asked for a failing exit.
pub(crate) const EXIT_OK: u8 = 0;
/// The run could not happen: nothing connected, a thread or an output failed.
pub(crate) const EXIT_RUN_FAILED: u8 = 1;
/// A bad command line.
pub(crate) const EXIT_USAGE: u8 = 2;
/// The run was invalid and `--fail-on invalid` was given.
pub(crate) const EXIT_INVALID: u8 = 3;
/// A `--threshold` was crossed.
pub(crate) const EXIT_THRESHOLD: u8 = 4;
/// Interrupted by SIGINT or SIGTERM (the summary of what was measured is still written).
pub(crate) const EXIT_INTERRUPTED: u8 = 130;

/// Send lag p99 above this means the loadgen did not keep its schedule.
pub(crate) const MAX_LAG_P99_US: u64 = 5_000;
/// Loadgen CPU above this share of its threads means it may be the bottleneck.
pub(crate) const MAX_BUSY: f64 = 0.9;

/// What the verdict is decided from.
#[derive(Debug, Clone, Default)]
pub(crate) struct Facts {
    /// Clients asked for.
    pub clients: u64,
    /// Clients that failed to connect or were refused.
    pub failed: u64,
    /// Senders that were meant to send but were not open when sending started, or were lost
    /// before their last message.
    pub senders_lost: u64,
    /// Messages the schedule asked for that no sender sent.
    pub not_sent: u64,
    /// Send lag p99 (µs), when anything was sent.
    pub lag_p99_us: Option<u64>,
    /// Loadgen CPU seconds per wall second, per thread.
    pub busy: f64,
    /// Worker threads.
    pub threads: usize,
    /// Probes (or handshakes in connect runs) measured.
    pub measured: u64,
    /// Every connection that was open got lost, or the server's process went away.
    pub server_gone: bool,
    /// SIGINT or SIGTERM stopped the run.
    pub interrupted: bool,
}

/// The reasons a run is invalid; empty when it is valid.
pub(crate) fn reasons(facts: &Facts) -> Vec<String> {
    let mut reasons = Vec::new();
    if facts.interrupted {
        reasons.push("interrupted".to_owned());
    }
    if facts.failed > 0 {
        reasons.push(format!(
            "{} of {} connections failed or were refused",
            facts.failed, facts.clients
        ));
    }
    if facts.server_gone {
        reasons.push("server gone".to_owned());
    }
    if facts.senders_lost > 0 {
        reasons.push(format!("{} sender(s) lost mid-run", facts.senders_lost));
    }
    if facts.not_sent > 0 {
        reasons.push(format!("{} scheduled message(s) not sent", facts.not_sent));
    }
    if let Some(lag) = facts.lag_p99_us.filter(|lag| *lag > MAX_LAG_P99_US) {
        reasons.push(format!(
            "schedule not kept (send lag p99 {:.1} ms)",
            lag as f64 / 1e3
        ));
    }
    if facts.threads > 0 && facts.busy > MAX_BUSY * facts.threads as f64 {
        reasons.push(format!(
            "loadgen saturated ({:.0}% of its {} thread(s))",
            facts.busy * 100.0,
            facts.threads
        ));
    }
    if facts.measured == 0 {
        reasons.push("nothing measured".to_owned());
    }
    reasons
}

/// The verdict line: `valid`, or `invalid: ` and the reasons.
pub(crate) fn line(reasons: &[String]) -> String {
    if reasons.is_empty() {
        "valid".to_owned()
    } else {
        format!("invalid: {}", reasons.join("; "))
    }
}

/// The exit code of a run that happened.
pub(crate) fn exit_code(
    invalid: bool,
    fail_on_invalid: bool,
    thresholds_crossed: bool,
    interrupted: bool,
) -> u8 {
    if interrupted {
        EXIT_INTERRUPTED
    } else if invalid && fail_on_invalid {
        EXIT_INVALID
    } else if thresholds_crossed {
        EXIT_THRESHOLD
    } else {
        EXIT_OK
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn healthy() -> Facts {
        Facts {
            clients: 100,
            lag_p99_us: Some(800),
            busy: 0.4,
            threads: 2,
            measured: 10_000,
            ..Facts::default()
        }
    }

    #[test]
    fn every_reason_for_an_invalid_run() {
        let cases: Vec<(&str, Facts, &str)> = vec![
            ("healthy", healthy(), "valid"),
            (
                "refused",
                Facts {
                    failed: 30,
                    ..healthy()
                },
                "invalid: 30 of 100 connections failed or were refused",
            ),
            (
                "sender lost",
                Facts {
                    senders_lost: 2,
                    not_sent: 549,
                    ..healthy()
                },
                "invalid: 2 sender(s) lost mid-run; 549 scheduled message(s) not sent",
            ),
            (
                "late schedule",
                Facts {
                    lag_p99_us: Some(12_000),
                    ..healthy()
                },
                "invalid: schedule not kept (send lag p99 12.0 ms)",
            ),
            (
                "saturated",
                Facts {
                    busy: 1.95,
                    ..healthy()
                },
                "invalid: loadgen saturated (195% of its 2 thread(s))",
            ),
            (
                "nothing",
                Facts {
                    measured: 0,
                    ..healthy()
                },
                "invalid: nothing measured",
            ),
            (
                "server gone",
                Facts {
                    server_gone: true,
                    ..healthy()
                },
                "invalid: server gone",
            ),
            (
                "interrupted",
                Facts {
                    interrupted: true,
                    ..healthy()
                },
                "invalid: interrupted",
            ),
        ];
        for (name, facts, expected) in cases {
            assert_eq!(line(&reasons(&facts)), expected, "{name}");
        }
    }

    #[test]
    fn exit_codes() {
        assert_eq!(exit_code(false, true, false, false), EXIT_OK);
        assert_eq!(exit_code(true, false, false, false), EXIT_OK);
        assert_eq!(exit_code(true, true, false, false), EXIT_INVALID);
        assert_eq!(exit_code(false, false, true, false), EXIT_THRESHOLD);
        assert_eq!(exit_code(true, true, true, false), EXIT_INVALID);
        assert_eq!(exit_code(false, false, false, true), EXIT_INTERRUPTED);
    }
}
