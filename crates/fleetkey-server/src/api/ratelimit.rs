//! Per-token and global rate limits (GCRA via `governor`), with an adaptive mode
//! that switches the global limit to a tighter quota while the error rate is high,
//! and the headers clients need: IETF `RateLimit`/`RateLimit-Policy`
//! (draft-ietf-httpapi-ratelimit-headers) and legacy `X-RateLimit-*`.

use crate::config::RateLimitConfig;
use governor::clock::{Clock, DefaultClock};
use governor::middleware::StateInformationMiddleware;
use governor::state::keyed::DefaultKeyedStateStore;
use governor::state::{InMemoryState, NotKeyed};
use governor::{Quota, RateLimiter};
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

type Keyed =
    RateLimiter<String, DefaultKeyedStateStore<String>, DefaultClock, StateInformationMiddleware>;
type Direct = RateLimiter<NotKeyed, InMemoryState, DefaultClock, StateInformationMiddleware>;

/// What a request may do, for the response headers.
#[derive(Debug, Clone, Copy)]
pub struct Allowance {
    /// Requests per window.
    pub limit: u32,
    /// Requests left now.
    pub remaining: u32,
    /// Seconds until the allowance is full again.
    pub reset_secs: u64,
}

/// A refusal.
#[derive(Debug, Clone, Copy)]
pub struct Limited {
    /// Which limit: `token` or `global`.
    pub scope: &'static str,
    /// Requests per window.
    pub limit: u32,
    /// Seconds to wait.
    pub retry_after_secs: u64,
}

/// The instance's limiters.
pub struct RateLimits {
    per_token: Keyed,
    global: Direct,
    tight: Direct,
    config: RateLimitConfig,
    tightened: AtomicBool,
    window_start: AtomicU64,
    window_total: AtomicU64,
    window_errors: AtomicU64,
    clock: DefaultClock,
}

fn nz(v: u32) -> NonZeroU32 {
    NonZeroU32::new(v.max(1)).unwrap_or(NonZeroU32::MIN)
}

fn quota(per_sec: u32, burst_secs: u32) -> Quota {
    Quota::per_second(nz(per_sec)).allow_burst(nz(per_sec.saturating_mul(burst_secs)))
}

impl RateLimits {
    /// Limiters for `config`.
    pub fn new(config: RateLimitConfig) -> Self {
        let tight_rate =
            ((f64::from(config.global_per_sec) * config.adaptive_factor) as u32).max(1);
        Self {
            per_token: RateLimiter::keyed(quota(config.per_token_per_sec, config.burst_secs))
                .with_middleware::<StateInformationMiddleware>(),
            global: RateLimiter::direct(quota(config.global_per_sec, config.burst_secs))
                .with_middleware::<StateInformationMiddleware>(),
            tight: RateLimiter::direct(quota(tight_rate, config.burst_secs))
                .with_middleware::<StateInformationMiddleware>(),
            config,
            tightened: AtomicBool::new(false),
            window_start: AtomicU64::new(0),
            window_total: AtomicU64::new(0),
            window_errors: AtomicU64::new(0),
            clock: DefaultClock::default(),
        }
    }

    /// Whether the adaptive mode has tightened the global limit.
    pub fn is_tightened(&self) -> bool {
        self.tightened.load(Ordering::Relaxed)
    }

    fn wait_secs(&self, until: governor::NotUntil<<DefaultClock as Clock>::Instant>) -> u64 {
        let d: Duration = until.wait_time_from(self.clock.now());
        d.as_secs() + u64::from(d.subsec_nanos() > 0)
    }

    /// Checks one request by `token_id` against its limit and the global one.
    pub fn check(&self, token_id: &str) -> Result<Allowance, Limited> {
        let per = self.config.per_token_per_sec;
        let snap = self
            .per_token
            .check_key(&token_id.to_owned())
            .map_err(|n| Limited {
                scope: "token",
                limit: per,
                retry_after_secs: self.wait_secs(n).max(1),
            })?;
        let (global, g_limit) = if self.is_tightened() {
            (
                &self.tight,
                ((f64::from(self.config.global_per_sec) * self.config.adaptive_factor) as u32)
                    .max(1),
            )
        } else {
            (&self.global, self.config.global_per_sec)
        };
        global.check().map_err(|n| Limited {
            scope: "global",
            limit: g_limit,
            retry_after_secs: self.wait_secs(n).max(1),
        })?;
        let remaining = snap.remaining_burst_capacity();
        let burst = per.saturating_mul(self.config.burst_secs);
        let used = burst.saturating_sub(remaining);
        Ok(Allowance {
            limit: per,
            remaining,
            reset_secs: (u64::from(used)).div_ceil(u64::from(per.max(1))),
        })
    }

    /// Records a served response for the adaptive mode (per one-second window).
    /// Callers leave out the requests the limiter itself refused.
    pub fn record(&self, error: bool) {
        if !self.config.adaptive {
            return;
        }
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        let start = self.window_start.load(Ordering::Relaxed);
        if now != start
            && self
                .window_start
                .compare_exchange(start, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            let total = self.window_total.swap(0, Ordering::Relaxed);
            let errors = self.window_errors.swap(0, Ordering::Relaxed);
            // Judge the window that just ended; a tiny sample changes nothing.
            if total >= 20 {
                let tighten = (errors as f64) / (total as f64) >= self.config.adaptive_error_ratio;
                if tighten != self.tightened.swap(tighten, Ordering::Relaxed) {
                    tracing::warn!(
                        tightened = tighten,
                        errors,
                        total,
                        "adaptive rate limit changed"
                    );
                }
            }
        }
        self.window_total.fetch_add(1, Ordering::Relaxed);
        if error {
            self.window_errors.fetch_add(1, Ordering::Relaxed);
        }
    }
}
