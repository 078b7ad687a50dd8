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

/// The rate-limit key of a source: the IPv4 address (also when IPv4-mapped), or
/// the IPv6 /64.
pub fn source_key(ip: std::net::IpAddr) -> u128 {
    use std::net::IpAddr;
    match ip {
        IpAddr::V4(v4) => u128::from(u32::from(v4)),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => u128::from(u32::from(v4)),
            None => (u128::from(v6) >> 64) << 64 | 1,
        },
    }
}

/// Seconds of quota a source may spend at once.
const SOURCE_BURST_SECS: u32 = 5;

/// The instance's limiters.
pub struct RateLimits {
    per_source: governor::DefaultKeyedRateLimiter<u128>,
    per_source_checks: AtomicU64,
    per_token: Keyed,
    global: Direct,
    tight: Direct,
    config: RateLimitConfig,
    tightened: AtomicBool,
    window_start: AtomicU64,
    window_total: AtomicU64,
    window_errors: AtomicU64,
    clock: DefaultClock,
    instances: u32,
    /// Requests already taken from the shared global bucket in one batch, and
    /// until when they may be spent ([`RateLimits::check_shared`]).
    leased: parking_lot::Mutex<(u32, std::time::Instant)>,
    /// One batch taken from Redis at a time.
    refill: tokio::sync::Mutex<()>,
}

/// How long requests taken from the shared bucket in a batch may be spent.
const LEASE_TTL: Duration = Duration::from_millis(100);
/// The largest batch taken from the shared bucket at once.
const MAX_BATCH: u32 = 500;

fn nz(v: u32) -> NonZeroU32 {
    NonZeroU32::new(v.max(1)).unwrap_or(NonZeroU32::MIN)
}

fn quota(per_sec: u32, burst_secs: u32) -> Quota {
    Quota::per_second(nz(per_sec)).allow_burst(nz(per_sec.saturating_mul(burst_secs)))
}

/// The global rate while tightened: `global_per_sec × adaptive_factor`, at least 1.
#[allow(
    clippy::cast_possible_truncation,
    clippy::cast_sign_loss,
    reason = "config validation keeps adaptive_factor in (0, 1], so the product lies in [0, global_per_sec]"
)]
fn tightened_rate(config: &RateLimitConfig) -> u32 {
    ((f64::from(config.global_per_sec) * config.adaptive_factor).floor() as u32).max(1)
}

impl RateLimits {
    /// Limiters for `config`. The local global limiter gets `1/instances` of the
    /// global rate: with Redis the global limit is shared exactly
    /// ([`RateLimits::check_shared`]); without it each instance keeps its share.
    pub fn with_instances(config: RateLimitConfig, instances: u32) -> Self {
        let share = |r: u32| (r / instances.max(1)).max(1);
        let mut local = config.clone();
        local.global_per_sec = share(config.global_per_sec);
        let mut me = Self::new(local);
        me.config = config;
        me.instances = instances.max(1);
        me
    }

    /// Limiters for `config` (one instance).
    pub fn new(config: RateLimitConfig) -> Self {
        let tight_rate = tightened_rate(&config);
        Self {
            per_source: RateLimiter::keyed(quota(
                config.unauthenticated_per_source_per_sec,
                SOURCE_BURST_SECS,
            )),
            per_source_checks: AtomicU64::new(0),
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
            instances: 1,
            leased: parking_lot::Mutex::new((0, std::time::Instant::now())),
            refill: tokio::sync::Mutex::new(()),
        }
    }

    /// The limits in force.
    pub fn config(&self) -> &RateLimitConfig {
        &self.config
    }

    /// Whether the adaptive mode has tightened the global limit.
    pub fn is_tightened(&self) -> bool {
        self.tightened.load(Ordering::Relaxed)
    }

    fn wait_secs(&self, until: governor::NotUntil<<DefaultClock as Clock>::Instant>) -> u64 {
        let d: Duration = until.wait_time_from(self.clock.now());
        d.as_secs() + u64::from(d.subsec_nanos() > 0)
    }

    /// [`RateLimits::check`] with the global limit shared through Redis when
    /// `coord` is given and reachable; otherwise (or when a call fails) this
    /// instance's share of it.
    ///
    /// Requests are taken from the shared bucket in batches of up to 1% of the
    /// instance's share of a second (at most 500), spent locally within 100 ms, so
    /// busy instances call Redis a few dozen times a second rather than once per
    /// request; near the limit, one request at a time, exactly. Batches left
    /// unspent are lost, which errs on the side of the limit. While Redis is
    /// unreachable, requests use the local share without waiting on it
    /// ([`crate::coord::Coordinator::available`]).
    pub async fn check_shared(
        &self,
        token_id: &str,
        coord: Option<&crate::coord::Coordinator>,
    ) -> Result<Allowance, Limited> {
        let Some(c) = coord else {
            return self.check(token_id);
        };
        let allowance = self.check_token(token_id)?;
        if self.take_leased() {
            return Ok(allowance);
        }
        if !c.available() {
            self.check_local_global()?;
            return Ok(allowance);
        }
        let _one = self.refill.lock().await;
        if self.take_leased() {
            return Ok(allowance);
        }
        let limit = self.global_limit();
        let burst = limit.saturating_mul(self.config.burst_secs.max(1));
        let mut cost = (limit / 100 / self.instances.max(1)).clamp(1, MAX_BATCH);
        loop {
            match c.gcra_take("ratelimit:global", limit, burst, cost).await {
                Ok(d) if d.allowed => {
                    if cost > 1 {
                        *self.leased.lock() = (cost - 1, std::time::Instant::now() + LEASE_TTL);
                    }
                    return Ok(allowance);
                }
                // Not a whole batch left: one request at a time.
                Ok(_) if cost > 1 => cost = 1,
                Ok(d) => {
                    return Err(Limited {
                        scope: "global",
                        limit,
                        retry_after_secs: d.retry_after_ms.div_ceil(1000).max(1),
                    });
                }
                // Redis unreachable: this instance's share.
                Err(_) => {
                    self.check_local_global()?;
                    return Ok(allowance);
                }
            }
        }
    }

    /// Spends one request of the current batch, if any is left and still valid.
    fn take_leased(&self) -> bool {
        let mut l = self.leased.lock();
        if l.0 > 0 && std::time::Instant::now() < l.1 {
            l.0 -= 1;
            true
        } else {
            false
        }
    }

    /// The global limit in force (the adaptive mode lowers it).
    fn global_limit(&self) -> u32 {
        if self.is_tightened() {
            tightened_rate(&self.config)
        } else {
            self.config.global_per_sec
        }
    }

    fn check_token(&self, token_id: &str) -> Result<Allowance, Limited> {
        let per = self.config.per_token_per_sec;
        let snap = self
            .per_token
            .check_key(&token_id.to_owned())
            .map_err(|n| Limited {
                scope: "token",
                limit: per,
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

    fn check_local_global(&self) -> Result<(), Limited> {
        let limiter = if self.is_tightened() {
            &self.tight
        } else {
            &self.global
        };
        limiter.check().map(|_| ()).map_err(|n| Limited {
            scope: "global",
            limit: (self.global_limit() / self.instances).max(1),
            retry_after_secs: self.wait_secs(n).max(1),
        })
    }

    /// Checks one request by `token_id` against its limit and the global one.
    pub fn check(&self, token_id: &str) -> Result<Allowance, Limited> {
        let allowance = self.check_token(token_id)?;
        self.check_local_global()?;
        Ok(allowance)
    }

    /// Takes one request from `ip`'s allowance for requests without a valid cached
    /// token (`unauthenticated_per_source_per_sec`); refused with scope `source`.
    pub fn check_source(&self, ip: std::net::IpAddr) -> Result<(), Limited> {
        let n = self.per_source_checks.fetch_add(1, Ordering::Relaxed);
        if n % 4096 == 4095 {
            self.per_source.retain_recent();
        }
        self.per_source
            .check_key(&source_key(ip))
            .map_err(|until| Limited {
                scope: "source",
                limit: self.config.unauthenticated_per_source_per_sec,
                retry_after_secs: self.wait_secs(until).max(1),
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
