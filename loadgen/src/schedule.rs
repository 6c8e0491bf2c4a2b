//! The clock and the send schedule. One clock for the whole process, so that a send time
//! written by one thread and an arrival time read by another are on the same scale.
//!
//! The schedule is open loop: message `n` (numbered over all senders) is *meant* to leave at a
//! time fixed in advance, whatever happened to message `n - 1`. Latency is measured from that
//! intended time, so when the server (or this tool) stalls, the messages that should have been
//! sent meanwhile carry the stall in their latency: coordinated omission is avoided.
//!
//! The rate over time is a [`Shape`]: a constant `--rate`, or `--stages` as k6 writes them
//! (`30s:100,60s:1000,30s:0`: each stage moves the rate in a straight line from where the
//! last one ended, 0 at first, to its target). Message `n` leaves when the integral of the
//! rate reaches `n`.

use std::time::Instant;

use crate::cli::parse_duration;

/// Nanoseconds since a fixed instant shared by every thread.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Clock {
    base: Instant,
}

impl Clock {
    /// A clock whose zero is now.
    pub(crate) fn new() -> Self {
        Clock {
            base: Instant::now(),
        }
    }

    /// Nanoseconds since the clock's zero. Monotonic.
    pub(crate) fn now_ns(&self) -> u64 {
        self.base.elapsed().as_nanos() as u64
    }
}

/// Most stages a `--stages` list may have.
pub(crate) const MAX_STAGES: usize = 16;

/// A stretch of time over which the rate moves in a straight line.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
struct Segment {
    duration_s: f64,
    start_rate: f64,
    end_rate: f64,
    /// Messages due before the segment starts.
    messages_before: f64,
    /// When it starts, seconds from the start of the schedule.
    starts_at_s: f64,
}

impl Segment {
    fn messages(&self) -> f64 {
        (self.start_rate + self.end_rate) / 2.0 * self.duration_s
    }

    /// When (seconds into the segment) the count of messages due since it started reaches
    /// `m`: the root of `start t + (end - start) t^2 / 2d = m`.
    fn time_of(&self, m: f64) -> f64 {
        let slope = (self.end_rate - self.start_rate) / self.duration_s;
        if slope.abs() < 1e-12 {
            return m / self.start_rate;
        }
        let a = slope / 2.0;
        let b = self.start_rate;
        let discriminant = (b * b + 4.0 * a * m).max(0.0);
        ((-b + discriminant.sqrt()) / (2.0 * a)).clamp(0.0, self.duration_s)
    }
}

/// The rate over time: a few segments, kept inline so that a schedule is `Copy`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Shape {
    segments: [Segment; MAX_STAGES],
    count: usize,
}

impl Shape {
    /// `rate` messages per second for `seconds`.
    pub(crate) fn constant(rate: f64, seconds: f64) -> Shape {
        Shape::from_points(rate, &[(seconds, rate)])
    }

    /// Parses k6-style stages, `DURATION:RATE,...`; the rate starts at 0.
    pub(crate) fn stages(text: &str) -> Result<Shape, String> {
        let points = parse_stages(text, "--stages", "RATE", "a rate in messages per second")?;
        let shape = Shape::from_points(0.0, &points);
        if shape.total_messages() == 0 {
            return Err("--stages: these stages send no message".into());
        }
        Ok(shape)
    }

    /// The shape from its first rate and its `(duration_s, target rate)` points, as
    /// [`Shape::points`] gives them.
    pub(crate) fn from_points(first_rate: f64, points: &[(f64, f64)]) -> Shape {
        let mut shape = Shape {
            segments: [Segment::default(); MAX_STAGES],
            count: points.len().min(MAX_STAGES),
        };
        let (mut rate, mut messages, mut at) = (first_rate, 0.0, 0.0);
        for (slot, &(duration_s, target)) in shape.segments.iter_mut().zip(points) {
            *slot = Segment {
                duration_s,
                start_rate: rate,
                end_rate: target,
                messages_before: messages,
                starts_at_s: at,
            };
            messages += slot.messages();
            at += duration_s;
            rate = target;
        }
        shape
    }

    /// The rate at the start, and each segment's `(duration_s, target rate)`.
    pub(crate) fn points(&self) -> (f64, Vec<(f64, f64)>) {
        let first = self.segments().first().map_or(0.0, |s| s.start_rate);
        let points = self
            .segments()
            .iter()
            .map(|s| (s.duration_s, s.end_rate))
            .collect();
        (first, points)
    }

    fn segments(&self) -> &[Segment] {
        &self.segments[..self.count]
    }

    /// Seconds from the first stage's start to the last's end.
    pub(crate) fn total_s(&self) -> f64 {
        self.segments().iter().map(|s| s.duration_s).sum()
    }

    /// Messages in the whole schedule.
    pub(crate) fn total_messages(&self) -> u64 {
        let total: f64 = self.segments().iter().map(Segment::messages).sum();
        // A hair of tolerance so that 100/s for 2 s is 200 messages, not 199.
        (total + 1e-6).floor() as u64
    }

    /// The highest rate anywhere in the shape.
    pub(crate) fn peak_rate(&self) -> f64 {
        self.segments()
            .iter()
            .map(|s| s.start_rate.max(s.end_rate))
            .fold(0.0, f64::max)
    }

    /// When message `n` is due, seconds from the start.
    fn offset_s(&self, n: u64) -> f64 {
        let n = n as f64;
        let segment = self
            .segments()
            .iter()
            .rev()
            .find(|segment| segment.messages_before <= n && segment.messages() > 0.0)
            .or_else(|| self.segments().first())
            .expect("a shape has a segment");
        segment.starts_at_s + segment.time_of(n - segment.messages_before)
    }
}

/// Parses k6-style stages, `DURATION:TARGET,...` (at most [`MAX_STAGES`]): each a duration
/// above 0 and a target of 0 or more. `option` and `target` name them in errors.
pub(crate) fn parse_stages(
    text: &str,
    option: &str,
    target: &str,
    target_is: &str,
) -> Result<Vec<(f64, f64)>, String> {
    let mut points = Vec::new();
    for stage in text.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let (duration, value) = stage.split_once(':').ok_or_else(|| {
            format!("{option}: `{stage}` is not DURATION:{target} (e.g. 30s:1000)")
        })?;
        let duration = parse_duration(duration)
            .map_err(|error| format!("{option}: {error}"))?
            .as_secs_f64();
        let value: f64 = value
            .trim()
            .parse()
            .map_err(|_| format!("{option}: `{value}` is not {target_is}"))?;
        if !value.is_finite() || value < 0.0 {
            return Err(format!("{option}: `{stage}`: the target must be 0 or more"));
        }
        if duration <= 0.0 {
            return Err(format!("{option}: `{stage}`: the duration must be above 0"));
        }
        points.push((duration, value));
    }
    if points.is_empty() {
        return Err(format!("{option} needs at least one DURATION:{target}"));
    }
    if points.len() > MAX_STAGES {
        return Err(format!("{option} takes at most {MAX_STAGES} stages"));
    }
    Ok(points)
}

/// When each message is meant to be sent and by whom.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Schedule {
    /// Intended send time of the schedule's start.
    pub start_ns: u64,
    /// How many clients send; message `n` is sent by sender `n % senders`.
    pub senders: u32,
    /// Messages in the whole run, warmup included.
    pub total_messages: u64,
    /// Messages meant to be sent before this time belong to the warmup.
    pub measure_from_ns: u64,
    /// The first message number meant to be sent at or after `measure_from_ns` (at most
    /// `total_messages`): intended times never go back, so the messages below it, and only
    /// they, are the warmup. Spares [`Schedule::is_warmup`] a float computation per delivery.
    first_measured: u64,
    shape: Shape,
}

impl Schedule {
    /// A schedule of `shape` from `start_ns`, sent by `senders`; its first `warmup_s` seconds
    /// are warmup.
    pub(crate) fn new(start_ns: u64, shape: Shape, senders: u32, warmup_s: f64) -> Self {
        let mut schedule = Schedule {
            start_ns,
            senders,
            total_messages: shape.total_messages(),
            measure_from_ns: start_ns + (warmup_s * 1e9) as u64,
            first_measured: 0,
            shape,
        };
        schedule.first_measured = first_not_before(schedule.total_messages, |n| {
            schedule.intended_ns(n) < schedule.measure_from_ns
        });
        schedule
    }

    /// The message number of a sender's `k`-th message.
    pub(crate) fn message_number(&self, sender: u32, k: u64) -> u64 {
        k * u64::from(self.senders) + u64::from(sender)
    }

    /// When message `n` is meant to be sent.
    pub(crate) fn intended_ns(&self, n: u64) -> u64 {
        self.start_ns + (self.shape.offset_s(n) * 1e9) as u64
    }

    /// Whether message `n` belongs to the warmup.
    pub(crate) fn is_warmup(&self, n: u64) -> bool {
        if n < self.total_messages {
            n < self.first_measured
        } else {
            self.intended_ns(n) < self.measure_from_ns
        }
    }

    /// The first of `count` messages of `sender` (its `k` from 0) whose intended time is at or
    /// after `offset_ns` from the start: intended times never go back, so a binary search.
    pub(crate) fn first_at_or_after(&self, sender: u32, count: u64, offset_ns: u64) -> u64 {
        first_not_before(count, |k| {
            self.intended_ns(self.message_number(sender, k)) - self.start_ns < offset_ns
        })
    }

    /// When the schedule ends.
    pub(crate) fn end_ns(&self) -> u64 {
        self.start_ns + (self.shape.total_s() * 1e9) as u64
    }
}

/// The first `i` in `0..count` for which `before(i)` is false, `before` being true up to
/// some point and false after it (intended times never go back): a binary search.
fn first_not_before(count: u64, before: impl Fn(u64) -> bool) -> u64 {
    let (mut low, mut high) = (0, count);
    while low < high {
        let middle = low + (high - low) / 2;
        if before(middle) {
            low = middle + 1;
        } else {
            high = middle;
        }
    }
    low
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_are_spread_evenly_over_senders_and_time() {
        let schedule = Schedule::new(1_000, Shape::constant(1000.0, 3.0), 10, 1.0);
        assert_eq!(schedule.total_messages, 3000);
        assert_eq!(schedule.message_number(3, 0), 3);
        assert_eq!(schedule.message_number(3, 2), 23);
        assert_eq!(schedule.intended_ns(0), 1_000);
        assert_eq!(schedule.intended_ns(23), 1_000 + 23_000_000);
        assert!(schedule.is_warmup(999));
        assert!(!schedule.is_warmup(1000));
        assert_eq!(schedule.end_ns(), 1_000 + 3_000_000_000);
    }

    #[test]
    fn stages_ramp_the_rate_in_straight_lines() {
        // 0 -> 100/s over 2 s (100 messages), 100/s for 1 s (100), 100 -> 0 over 2 s (100).
        let shape = Shape::stages("2s:100, 1s:100, 2s:0").unwrap();
        assert_eq!(shape.total_messages(), 300);
        assert_eq!(shape.total_s(), 5.0);
        assert_eq!(shape.peak_rate(), 100.0);
        let schedule = Schedule::new(0, shape, 1, 0.0);
        let at = |n: u64| schedule.intended_ns(n) as f64 / 1e9;
        // During the ramp up, m messages are due at t with 25 t^2 = m.
        assert!((at(25) - 1.0).abs() < 1e-6, "{}", at(25));
        assert!((at(100) - 2.0).abs() < 1e-6, "{}", at(100));
        assert!((at(150) - 2.5).abs() < 1e-6, "{}", at(150));
        // On the way down, half the last 100 messages are due in its first 0.586 s.
        assert!(
            (at(250) - (3.0 + 2.0 - 2.0f64.sqrt())).abs() < 1e-6,
            "{}",
            at(250)
        );
        // Intended times never go back.
        for n in 1..300 {
            assert!(
                schedule.intended_ns(n) >= schedule.intended_ns(n - 1),
                "{n}"
            );
        }
    }

    #[test]
    fn the_warmup_is_the_messages_intended_before_measuring_starts() {
        let shapes = [
            ("constant", Shape::constant(1000.0, 3.0)),
            ("odd rate", Shape::constant(333.3, 2.5)),
            ("ramps", Shape::stages("2s:100, 1s:100, 2s:0").unwrap()),
            (
                "pause",
                Shape::stages("1s:50, 1s:0, 1s:0, 1.5s:70").unwrap(),
            ),
        ];
        for (name, shape) in shapes {
            for warmup_s in [0.0, 0.001, 0.5, 1.0, 1.7, 2.25, 4.0, 10.0] {
                let schedule = Schedule::new(12_345, shape, 3, warmup_s);
                for n in 0..schedule.total_messages + 5 {
                    assert_eq!(
                        schedule.is_warmup(n),
                        schedule.intended_ns(n) < schedule.measure_from_ns,
                        "{name}, warmup {warmup_s} s, message {n}"
                    );
                }
            }
        }
    }

    #[test]
    fn bad_stages_say_what_is_wrong() {
        for (text, says) in [
            ("", "at least one"),
            ("30s", "DURATION:RATE"),
            ("soon:5", "duration"),
            ("10s:fast", "not a rate"),
            ("10s:-5", "0 or more"),
            ("1s:1,1s:1,1s:1,1s:1,1s:1,1s:1,1s:1,1s:1,1s:1,1s:1,1s:1,1s:1,1s:1,1s:1,1s:1,1s:1,1s:1", "at most 16"),
            ("0s:10", "above 0"),
            ("10s:0", "no message"),
        ] {
            let error = Shape::stages(text).unwrap_err();
            assert!(error.contains(says), "{text}: {error}");
        }
    }
}
