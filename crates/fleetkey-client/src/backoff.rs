//! Reconnection delays: exponential backoff with full jitter, bounded attempts.

use std::time::Duration;

/// How a client retries a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    /// The first delay's upper bound.
    pub base: Duration,
    /// No delay is longer than this.
    pub max: Duration,
    /// Connection attempts in all (the first included); at least 1.
    pub max_attempts: u32,
}

impl Default for Backoff {
    /// 200 ms doubling up to 30 s, 8 attempts.
    fn default() -> Self {
        Self {
            base: Duration::from_millis(200),
            max: Duration::from_secs(30),
            max_attempts: 8,
        }
    }
}

impl Backoff {
    /// The ceiling before attempt `retry` (0 for the first retry): `base · 2^retry`,
    /// at most `max`.
    pub fn ceiling(&self, retry: u32) -> Duration {
        let factor = 1u32.checked_shl(retry.min(31)).unwrap_or(u32::MAX);
        self.base.saturating_mul(factor).min(self.max)
    }

    /// The delay before retry `retry`: uniform in `[0, ceiling(retry)]` ("full
    /// jitter"), so a fleet that lost its server does not come back in lockstep.
    pub fn delay(&self, retry: u32) -> Duration {
        let ceiling = self.ceiling(retry);
        let nanos = u64::try_from(ceiling.as_nanos()).unwrap_or(u64::MAX);
        Duration::from_nanos(rand::random_range(0..=nanos))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_grow_exponentially_stay_bounded_and_jitter() {
        let b = Backoff {
            base: Duration::from_millis(100),
            max: Duration::from_secs(2),
            max_attempts: 5,
        };
        assert_eq!(b.ceiling(0), Duration::from_millis(100));
        assert_eq!(b.ceiling(1), Duration::from_millis(200));
        assert_eq!(b.ceiling(3), Duration::from_millis(800));
        assert_eq!(b.ceiling(5), Duration::from_secs(2));
        assert_eq!(b.ceiling(u32::MAX), Duration::from_secs(2));
        let delays: Vec<Duration> = (0..200).map(|_| b.delay(4)).collect();
        assert!(delays.iter().all(|d| *d <= Duration::from_millis(1600)));
        // Jitter: not all the same.
        assert!(delays.iter().any(|d| *d != delays[0]));
    }
}
