//! The inbound message rate limit: a token bucket per connection, four bytes of state.
//!
//! A connection starts with a full bucket of `burst` tokens; each text or binary message takes
//! one; tokens come back at `rate` per second, never above `burst`. A message that finds the
//! bucket empty is over the limit, and the policy (close with 1008, or drop the message) is the
//! caller's. A rate of 0 turns the limit off.

use super::clock::Millis;

/// The limit, shared by every connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimit {
    /// Messages per second, sustained; 0 for no limit.
    pub rate: u32,
    /// Messages that may arrive at once after a quiet period (at most 65,535).
    pub burst: u16,
}

/// One connection's bucket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TokenBucket {
    tokens: u16,
    /// When tokens were last added, as the low 16 bits of the millisecond clock, compared with
    /// wrapping arithmetic, so right for gaps under 65.5 s. The core keeps gaps shorter: it
    /// calls [`TokenBucket::refill`] on every read (which moves this to within a second of
    /// now), and a connection silent for [`QUIET_RESET`] gets a full bucket instead.
    refilled_at: u16,
}

/// After this long without a read, a bucket is simply full again (and the 16-bit timestamp
/// cannot have wrapped unnoticed).
pub(super) const QUIET_RESET: std::time::Duration = std::time::Duration::from_secs(60);

impl TokenBucket {
    /// A full bucket.
    pub fn new(limit: RateLimit, now: Millis) -> Self {
        TokenBucket {
            tokens: limit.burst,
            refilled_at: now.0 as u16,
        }
    }

    /// Adds the tokens earned since the last refill.
    pub fn refill(&mut self, limit: RateLimit, now: Millis) {
        if limit.rate == 0 {
            return;
        }
        let now_low = now.0 as u16;
        let elapsed_ms = u64::from(now_low.wrapping_sub(self.refilled_at));
        let earned = elapsed_ms * u64::from(limit.rate) / 1000;
        if earned > 0 {
            let tokens = (u64::from(self.tokens) + earned).min(u64::from(limit.burst));
            self.tokens = tokens as u16;
            if self.tokens == limit.burst {
                self.refilled_at = now_low;
            } else {
                // Keep the fraction of a token already earned: advance only by the time the
                // whole tokens took.
                let spent_ms = earned * 1000 / u64::from(limit.rate);
                self.refilled_at = self.refilled_at.wrapping_add(spent_ms as u16);
            }
        } else if self.tokens == limit.burst {
            self.refilled_at = now_low;
        }
    }

    /// Takes a token for one message; `false` when the bucket is empty (over the limit).
    pub fn take(&mut self, limit: RateLimit, now: Millis) -> bool {
        if limit.rate == 0 {
            return true;
        }
        self.refill(limit, now);
        if self.tokens == 0 {
            return false;
        }
        self.tokens -= 1;
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMIT: RateLimit = RateLimit {
        rate: 100,
        burst: 5,
    };

    #[test]
    fn a_full_bucket_takes_a_burst_then_refuses() {
        let mut bucket = TokenBucket::new(LIMIT, Millis(0));
        for _ in 0..5 {
            assert!(bucket.take(LIMIT, Millis(0)));
        }
        assert!(!bucket.take(LIMIT, Millis(0)));
        assert!(!bucket.take(LIMIT, Millis(9)));
    }

    #[test]
    fn tokens_come_back_at_the_rate_without_losing_fractions() {
        let mut bucket = TokenBucket::new(LIMIT, Millis(0));
        for _ in 0..5 {
            assert!(bucket.take(LIMIT, Millis(0)));
        }
        // 100 per second: one every 10 ms. Asking every 4 ms must still earn one per 10 ms.
        let mut taken = 0;
        for ms in (4..=1000).step_by(4) {
            if bucket.take(LIMIT, Millis(ms)) {
                taken += 1;
            }
        }
        assert_eq!(taken, 100);
    }

    #[test]
    fn a_quiet_period_refills_no_further_than_the_burst() {
        let mut bucket = TokenBucket::new(LIMIT, Millis(0));
        assert!(bucket.take(LIMIT, Millis(0)));
        let later = Millis(60_000);
        for _ in 0..5 {
            assert!(bucket.take(LIMIT, later));
        }
        assert!(!bucket.take(LIMIT, later));
    }

    #[test]
    fn a_rate_of_zero_is_no_limit() {
        let off = RateLimit { rate: 0, burst: 0 };
        let mut bucket = TokenBucket::new(off, Millis(0));
        for _ in 0..100_000 {
            assert!(bucket.take(off, Millis(0)));
        }
    }

    #[test]
    fn the_millisecond_clock_wrapping_does_not_stop_the_refill() {
        let start = Millis(u64::from(u16::MAX) - 20);
        let mut bucket = TokenBucket::new(LIMIT, start);
        for _ in 0..5 {
            assert!(bucket.take(LIMIT, start));
        }
        assert!(bucket.take(LIMIT, Millis(u64::from(u16::MAX) + 20)));
    }

    #[test]
    fn refills_on_every_read_keep_a_long_trickle_right() {
        // One message every 30 s for ten minutes, with reads (pings) in between: never limited.
        let limit = RateLimit { rate: 1, burst: 1 };
        let mut bucket = TokenBucket::new(limit, Millis(0));
        for second in 0..600u64 {
            let now = Millis(second * 1000);
            bucket.refill(limit, now);
            if second % 30 == 0 {
                assert!(bucket.take(limit, now), "limited at {second} s");
            }
        }
    }
}
