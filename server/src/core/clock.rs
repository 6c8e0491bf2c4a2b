//! Time as the core sees it: milliseconds handed in by the caller, never read from a clock.
//!
//! The shell passes [`Millis`] since it started (64 bits: it never wraps). Each connection
//! keeps its timestamps in 32-bit [`Tick`]s of 10 ms to stay small; ticks wrap after 497 days,
//! so they are only ever compared through [`Tick::reached`] and [`Tick::since`], which are
//! right across the wrap for any interval under 248 days. Every duration the server accepts is
//! bounded far below that at parse time ([`MAX_DURATION`]).

use std::time::Duration;

/// Milliseconds since the shell started its clock.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Millis(pub u64);

/// The resolution of a connection's timestamps.
pub const TICK: Duration = Duration::from_millis(10);

/// The longest duration any timer may be set to (7 days): far inside the range where wrapping
/// tick arithmetic is exact.
pub const MAX_DURATION: Duration = Duration::from_secs(7 * 24 * 3600);

impl Millis {
    /// This instant plus a duration.
    pub fn after(self, duration: Duration) -> Millis {
        Millis(
            self.0
                .saturating_add(duration.as_millis().min(u64::MAX as u128) as u64),
        )
    }

    /// The tick this instant falls in.
    pub fn tick(self) -> Tick {
        // Truncation is the point: ticks wrap, and are compared with wrapping arithmetic.
        Tick((self.0 / TICK.as_millis() as u64) as u32)
    }
}

/// A 10 ms tick, wrapping at 2^32.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Tick(pub u32);

impl Tick {
    /// This tick plus a duration (rounded up to whole ticks, at least one).
    pub fn after(self, duration: Duration) -> Tick {
        Tick(self.0.wrapping_add(ticks(duration)))
    }

    /// Whether `deadline` has been reached at this tick (wrap-safe).
    pub fn reached(self, deadline: Tick) -> bool {
        (self.0.wrapping_sub(deadline.0) as i32) >= 0
    }

    /// Ticks elapsed since `earlier` (wrap-safe; 0 if `earlier` is in the future).
    pub fn since(self, earlier: Tick) -> u32 {
        let elapsed = self.0.wrapping_sub(earlier.0) as i32;
        elapsed.max(0) as u32
    }
}

/// A duration in whole ticks, rounded up, at least one, capped at [`MAX_DURATION`].
pub(super) fn ticks(duration: Duration) -> u32 {
    let duration = duration.min(MAX_DURATION);
    let tick = TICK.as_millis();
    (duration.as_millis().div_ceil(tick)).max(1) as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deadlines_are_reached_across_the_wrap_of_the_tick_counter() {
        let before_wrap = Tick(u32::MAX - 5);
        let deadline = before_wrap.after(Duration::from_millis(100)); // 10 ticks, wraps
        assert!(deadline.0 < before_wrap.0);
        assert!(!before_wrap.reached(deadline));
        assert!(!Tick(u32::MAX).reached(deadline));
        assert!(Tick(4).reached(deadline));
        assert!(Tick(5).reached(deadline));
        assert_eq!(Tick(4).since(before_wrap), 10);
    }

    #[test]
    fn the_longest_duration_does_not_overflow_the_tick_arithmetic() {
        let now = Tick(u32::MAX - 1);
        let deadline = now.after(Duration::from_secs(1_000_000_000));
        assert_eq!(deadline.0.wrapping_sub(now.0), ticks(MAX_DURATION));
        assert!(!now.reached(deadline));
        assert!(Tick(now.0.wrapping_add(ticks(MAX_DURATION))).reached(deadline));
        assert_eq!(Millis(u64::MAX - 1).after(Duration::MAX), Millis(u64::MAX));
    }

    #[test]
    fn durations_round_up_to_whole_ticks() {
        assert_eq!(ticks(Duration::ZERO), 1);
        assert_eq!(ticks(Duration::from_millis(1)), 1);
        assert_eq!(ticks(Duration::from_millis(10)), 1);
        assert_eq!(ticks(Duration::from_millis(11)), 2);
        assert_eq!(ticks(Duration::from_secs(30)), 3000);
    }
}
