//! Time, injected. The core never reads the system clock itself, so tests can move
//! time to trigger rotations and overlap expiry.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

/// Seconds since the Unix epoch.
pub type UnixTime = i64;

/// A source of the current time.
pub trait Clock: Send + Sync {
    /// Now, in seconds since the Unix epoch.
    fn now(&self) -> UnixTime;
}

/// The system clock, made monotonic: it never returns less than it returned before,
/// so a clock stepped backwards cannot undo a rotation decision.
#[derive(Default)]
pub struct SystemClock {
    last: AtomicI64,
}

impl Clock for SystemClock {
    fn now(&self) -> UnixTime {
        let wall = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
            .unwrap_or(0);
        let prev = self.last.fetch_max(wall, Ordering::SeqCst);
        prev.max(wall)
    }
}

/// A clock tests move by hand.
#[derive(Clone, Default)]
pub struct ManualClock(Arc<AtomicI64>);

impl ManualClock {
    /// A clock at `t`.
    pub fn at(t: UnixTime) -> Self {
        Self(Arc::new(AtomicI64::new(t)))
    }
    /// Moves time forward by `secs`.
    pub fn advance(&self, secs: i64) {
        self.0.fetch_add(secs, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> UnixTime {
        self.0.load(Ordering::SeqCst)
    }
}

/// A shared clock.
pub type SharedClock = Arc<dyn Clock>;

/// `d` in whole milliseconds, saturating (a `Duration` can exceed `u64` milliseconds).
pub fn millis(d: std::time::Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}
