//! The connection ramp, `--connection-stages '10s:200,20s:1000,10s:0'`: how many receivers are
//! connected over the run, k6 style (as k6's `stages` ramp virtual users). Each stage moves the
//! target in a straight line from where the last one ended (0 at first); time 0 is the send
//! schedule's start. The senders are not part of it: they connect before the run and stay.
//!
//! Receiver `j` (0, 1, 2 ... among this process's receivers) is connected while the target is
//! at least `j + 1`: the first receivers join first and leave last. A receiver joins once and
//! leaves once, so the target may rise, hold and fall, but not rise again after falling.

use crate::schedule::parse_stages;

/// A connection ramp: its stages as `(duration_s, target receivers)`.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct ConnectionRamp {
    points: Vec<(f64, f64)>,
}

/// When one receiver is meant to be connected, seconds from the schedule's start.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Membership {
    /// When it connects.
    pub join_s: f64,
    /// When it closes (1000), if it does before the end of the run.
    pub leave_s: Option<f64>,
}

impl ConnectionRamp {
    /// Parses `DURATION:RECEIVERS,...`.
    pub(crate) fn parse(text: &str) -> Result<ConnectionRamp, String> {
        let points = parse_stages(
            text,
            "--connection-stages",
            "RECEIVERS",
            "a number of receivers",
        )?;
        let mut level = 0.0;
        let mut fell = false;
        for &(_, target) in &points {
            if target.fract() != 0.0 {
                return Err(format!(
                    "--connection-stages: `{target}` is not a whole number of receivers"
                ));
            }
            if target > level && fell {
                return Err(
                    "--connection-stages: the target rises again after falling; a receiver joins once and leaves once (ramp up, hold, ramp down)"
                        .into(),
                );
            }
            fell |= target < level;
            level = target;
        }
        Ok(ConnectionRamp { points })
    }

    /// The most receivers connected at once.
    pub(crate) fn peak(&self) -> u32 {
        self.points
            .iter()
            .map(|&(_, target)| target as u32)
            .max()
            .unwrap_or(0)
    }

    /// Seconds from the first stage's start to the last one's end.
    pub(crate) fn total_s(&self) -> f64 {
        self.points.iter().map(|&(duration, _)| duration).sum()
    }

    /// When receiver `j` joins and leaves; `None` if the target never reaches `j + 1`.
    pub(crate) fn membership(&self, receiver: u32) -> Option<Membership> {
        let level = f64::from(receiver) + 1.0;
        let (mut starts_at, mut from) = (0.0, 0.0);
        let mut join_s = None;
        for &(duration, to) in &self.points {
            if join_s.is_none() && from < level && to >= level {
                join_s = Some(starts_at + (level - from) / (to - from) * duration);
            }
            if let Some(join_s) = join_s {
                if from >= level && to < level {
                    let leave_s = starts_at + (from - level) / (from - to) * duration;
                    return Some(Membership {
                        join_s,
                        leave_s: Some(leave_s),
                    });
                }
            }
            starts_at += duration;
            from = to;
        }
        join_s.map(|join_s| Membership {
            join_s,
            leave_s: None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn receivers_join_on_the_way_up_and_leave_on_the_way_down_last_in_first_out() {
        let ramp = ConnectionRamp::parse("2s:20, 1s:20, 2s:0").unwrap();
        assert_eq!(ramp.peak(), 20);
        assert_eq!(ramp.total_s(), 5.0);
        let first = ramp.membership(0).unwrap();
        assert!((first.join_s - 0.1).abs() < 1e-9, "{first:?}");
        assert!((first.leave_s.unwrap() - 4.9).abs() < 1e-9, "{first:?}");
        let last = ramp.membership(19).unwrap();
        assert!((last.join_s - 2.0).abs() < 1e-9, "{last:?}");
        assert!((last.leave_s.unwrap() - 3.0).abs() < 1e-9, "{last:?}");
        assert_eq!(ramp.membership(20), None);
    }

    #[test]
    fn receivers_still_wanted_at_the_end_never_leave() {
        let ramp = ConnectionRamp::parse("1s:10,1s:4").unwrap();
        assert_eq!(ramp.membership(3).unwrap().leave_s, None);
        assert!(ramp.membership(4).unwrap().leave_s.is_some());
    }

    #[test]
    fn bad_connection_stages_say_what_is_wrong() {
        for (text, says) in [
            ("", "at least one"),
            ("10s", "DURATION:RECEIVERS"),
            ("10s:many", "not a number of receivers"),
            ("10s:2.5", "whole number"),
            ("1s:10,1s:0,1s:10", "rises again"),
        ] {
            let error = ConnectionRamp::parse(text).unwrap_err();
            assert!(error.contains(says), "{text}: {error}");
        }
    }
}
