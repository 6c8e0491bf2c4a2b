//! The clock and the send schedule. One clock for the whole process, so that a send time
//! written by one thread and an arrival time read by another are on the same scale.
//!
//! The schedule is open loop: message `n` (numbered over all senders) is *meant* to leave at
//! `start + n / rate`, whatever happened to message `n - 1`. Latency is measured from that
//! intended time, so when the server (or this tool) stalls, the messages that should have
//! been sent meanwhile carry the stall in their latency: coordinated omission is avoided.

use std::time::Instant;

/// Nanoseconds since a fixed instant shared by every thread.
#[derive(Debug, Clone, Copy)]
pub struct Clock {
    base: Instant,
}

impl Clock {
    /// A clock whose zero is now.
    pub fn new() -> Self {
        Clock {
            base: Instant::now(),
        }
    }

    /// Nanoseconds since the clock's zero. Monotonic.
    pub fn now_ns(&self) -> u64 {
        self.base.elapsed().as_nanos() as u64
    }
}

/// When each message is meant to be sent and by whom.
#[derive(Debug, Clone, Copy)]
pub struct Schedule {
    /// Intended send time of message 0.
    pub start_ns: u64,
    /// Nanoseconds between consecutive messages (all senders together).
    pub interval_ns: f64,
    /// How many clients send; message `n` is sent by sender `n % senders`.
    pub senders: u32,
    /// Messages in the whole run, warmup included.
    pub total_messages: u64,
    /// Messages meant to be sent before this time belong to the warmup.
    pub measure_from_ns: u64,
}

impl Schedule {
    /// A schedule of `rate` messages per second from `senders` senders, for `warmup_s` then
    /// `duration_s` seconds from `start_ns`.
    pub fn new(start_ns: u64, rate: f64, senders: u32, warmup_s: f64, duration_s: f64) -> Self {
        Schedule {
            start_ns,
            interval_ns: 1e9 / rate,
            senders,
            total_messages: ((warmup_s + duration_s) * rate).floor() as u64,
            measure_from_ns: start_ns + (warmup_s * 1e9) as u64,
        }
    }

    /// The message number of a sender's `k`-th message.
    pub fn message_number(&self, sender: u32, k: u64) -> u64 {
        k * u64::from(self.senders) + u64::from(sender)
    }

    /// When message `n` is meant to be sent.
    pub fn intended_ns(&self, n: u64) -> u64 {
        self.start_ns + (n as f64 * self.interval_ns) as u64
    }

    /// Whether message `n` belongs to the warmup.
    pub fn is_warmup(&self, n: u64) -> bool {
        self.intended_ns(n) < self.measure_from_ns
    }

    /// When the last message is meant to be sent.
    pub fn end_ns(&self) -> u64 {
        self.intended_ns(self.total_messages)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_are_spread_evenly_over_senders_and_time() {
        let schedule = Schedule::new(1_000, 1000.0, 10, 1.0, 2.0);
        assert_eq!(schedule.total_messages, 3000);
        assert_eq!(schedule.message_number(3, 0), 3);
        assert_eq!(schedule.message_number(3, 2), 23);
        assert_eq!(schedule.intended_ns(0), 1_000);
        assert_eq!(schedule.intended_ns(23), 1_000 + 23_000_000);
        assert!(schedule.is_warmup(999));
        assert!(!schedule.is_warmup(1000));
    }
}
