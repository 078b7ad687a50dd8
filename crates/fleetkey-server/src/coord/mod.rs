//! Coordination between instances on Redis (`docs/operations.md#several-instances`):
//!
//! - **Leases** ([`Coordinator::acquire_lease`], [`InstanceLease`]): a name held by
//!   one live instance (`SET NX PX`, renewed by its owner only, through a script).
//!   An instance's nonce holder name is leased so that two instances configured
//!   with the same one are refused at start, and a lease lost while running (expired
//!   during a Redis outage and taken by another) is detected and reported.
//! - **A shared rate limit** ([`Coordinator::gcra`]): GCRA in one Lua script on the
//!   server's clock, so every instance draws on the same quota.
//! - **Invalidation** ([`Invalidation`], [`Coordinator::publish`],
//!   [`Coordinator::subscribe`]): a change made on one instance (keyring rotation or
//!   revocation, token revocation, device state) is published; every instance
//!   drops what it cached about it.
//!
//! Redis holds nothing that must survive: the database stays the source of truth
//! (nonce reservations, audit chain). When Redis is unreachable every call fails
//! fast (bounded timeouts), [`Coordinator::degraded`] says so, and callers fall back
//! to what each instance can do alone; the connection manager reconnects by itself.

use crate::clock::millis;
use crate::error::{Error, Result};
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

/// How long one Redis call may take before the caller falls back.
pub const CALL_TIMEOUT: Duration = Duration::from_millis(250);
/// While Redis is unreachable, how often the request path tries it again.
pub const RETRY_AFTER: Duration = Duration::from_secs(1);
/// The pub/sub channel (after the key prefix).
const CHANNEL: &str = "invalidate";

/// Something cached that another instance changed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Invalidation {
    /// A keyring's versions or policy changed (rotation, revocation, policy).
    Keyring {
        /// Keyring name.
        name: String,
    },
    /// A token was revoked.
    Token {
        /// Token id.
        id: String,
    },
    /// A device's state or keys changed.
    Device {
        /// Device id.
        id: String,
    },
    /// A fleet's record or config schemas changed (schema version, rotation
    /// policy, static-key permission).
    Fleet {
        /// Fleet name.
        name: String,
    },
}

/// What a domain service calls with each change it committed (set by the server).
pub type Announcer = Arc<dyn Fn(Invalidation) + Send + Sync>;

/// Where a domain service announces the changes it committed, so that this
/// instance's other parts and (through Redis) every other instance drop what they
/// cached. Until the server sets an [`Announcer`] (the CLI's local mode never
/// does), announcing does nothing.
#[derive(Default)]
pub struct Announce(std::sync::OnceLock<Announcer>);

impl Announce {
    /// Sets where announcements go; set once (later calls are ignored).
    pub fn set(&self, to: Announcer) {
        let _ = self.0.set(to);
    }

    /// Announces a committed change.
    pub fn send(&self, what: Invalidation) {
        if let Some(f) = self.0.get() {
            f(what);
        }
    }
}

/// A GCRA decision.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Gcra {
    /// Whether the request may go ahead.
    pub allowed: bool,
    /// Requests left in the burst now.
    pub remaining: u32,
    /// Milliseconds until a request would be allowed (0 when allowed).
    pub retry_after_ms: u64,
}

/// Whether a renewal found the lease still ours.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LeaseState {
    /// Still ours: the renewal extended it.
    Held,
    /// Expired or taken by someone else.
    Lost,
}

/// GCRA on the server's clock. KEYS[1] the theoretical arrival time (µs);
/// ARGV: emission interval (µs), burst (requests), cost (requests taken at once).
/// Returns {allowed, remaining, retry_after_ms}.
const GCRA_LUA: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local interval = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local cost = tonumber(ARGV[3])
local tolerance = interval * burst
local tat = tonumber(redis.call('GET', KEYS[1]) or now)
if tat < now then tat = now end
local new_tat = tat + interval * cost
local allow_at = new_tat - tolerance
if allow_at > now then
  local wait = allow_at - now
  return {0, 0, math.ceil(wait / 1000)}
end
redis.call('SET', KEYS[1], new_tat, 'PX', math.ceil(tolerance / 1000) + 1000)
local remaining = math.floor((tolerance - (new_tat - now)) / interval)
if remaining < 0 then remaining = 0 end
return {1, remaining, 0}
";

/// Renew a lease only if we still own it. KEYS[1] lease; ARGV: owner, ttl ms.
const RENEW_LUA: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
end
return 0
";

/// Release a lease only if we own it. KEYS[1] lease; ARGV[1] owner.
const RELEASE_LUA: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
";

/// The connection to Redis shared by an instance.
pub struct Coordinator {
    client: redis::Client,
    conn: ConnectionManager,
    prefix: String,
    degraded: AtomicBool,
    /// For [`Coordinator::available`]: when the last call failed, in ms since
    /// `started`.
    started: std::time::Instant,
    last_failure_ms: AtomicU64,
    calls: AtomicU64,
    gcra: redis::Script,
    renew: redis::Script,
    release: redis::Script,
}

impl std::fmt::Debug for Coordinator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Coordinator")
            .field("prefix", &self.prefix)
            .field("degraded", &self.degraded())
            .finish_non_exhaustive()
    }
}

fn redis_err(e: &redis::RedisError) -> Error {
    Error::Coordination(format!("redis: {e}"))
}

impl Coordinator {
    /// Connects to `url` (`redis://host:port/db`); keys and the channel start with
    /// `prefix` (several deployments can share one Redis).
    pub async fn connect(url: &str, prefix: &str) -> Result<Arc<Self>> {
        let client = redis::Client::open(url).map_err(|e| {
            Error::Coordination(format!(
                "redis URL {}: {e}",
                crate::config::redacted_url(url)
            ))
        })?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(Duration::from_secs(2)))
            .set_response_timeout(Some(CALL_TIMEOUT))
            .set_number_of_retries(1)
            .set_max_delay(Duration::from_secs(1));
        let conn = tokio::time::timeout(
            Duration::from_secs(5),
            client.get_connection_manager_with_config(config),
        )
        .await
        .map_err(|_| {
            Error::Coordination(format!(
                "redis {}: connection timed out",
                crate::config::redacted_url(url)
            ))
        })?
        .map_err(|e| {
            Error::Coordination(format!("redis {}: {e}", crate::config::redacted_url(url)))
        })?;
        Ok(Arc::new(Self {
            client,
            conn,
            prefix: prefix.to_owned(),
            degraded: AtomicBool::new(false),
            started: std::time::Instant::now(),
            last_failure_ms: AtomicU64::new(0),
            calls: AtomicU64::new(0),
            gcra: redis::Script::new(GCRA_LUA),
            renew: redis::Script::new(RENEW_LUA),
            release: redis::Script::new(RELEASE_LUA),
        }))
    }

    /// Whether the last call to Redis failed (instances then act alone).
    pub fn degraded(&self) -> bool {
        self.degraded.load(Ordering::Acquire)
    }

    /// Whether a request-path call is worth making: Redis answered last time, or
    /// [`RETRY_AFTER`] has passed since it failed. While degraded, requests do not
    /// each wait on an unreachable Redis (up to [`CALL_TIMEOUT`] when packets are
    /// dropped); one attempt a second finds out when it is back.
    pub fn available(&self) -> bool {
        if !self.degraded() {
            return true;
        }
        let now = millis(self.started.elapsed());
        let last = self.last_failure_ms.load(Ordering::Acquire);
        now.saturating_sub(last) >= millis(RETRY_AFTER)
            && self
                .last_failure_ms
                .compare_exchange(last, now, Ordering::AcqRel, Ordering::Acquire)
                .is_ok()
    }

    /// Calls made to Redis so far (answered or not).
    pub fn calls(&self) -> u64 {
        self.calls.load(Ordering::Relaxed)
    }

    fn key(&self, parts: &str) -> String {
        format!("{}:{parts}", self.prefix)
    }

    /// Runs one call under [`CALL_TIMEOUT`] and records whether Redis answered.
    async fn call<T>(
        &self,
        f: impl std::future::Future<Output = redis::RedisResult<T>>,
    ) -> Result<T> {
        let r = match tokio::time::timeout(CALL_TIMEOUT, f).await {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) => Err(redis_err(&e)),
            Err(_) => Err(Error::Coordination("redis: call timed out".into())),
        };
        self.calls.fetch_add(1, Ordering::Relaxed);
        let failed = r.is_err();
        if failed {
            self.last_failure_ms
                .store(millis(self.started.elapsed()), Ordering::Release);
        }
        if self.degraded.swap(failed, Ordering::AcqRel) != failed {
            if failed {
                tracing::warn!(
                    "redis unreachable: instances coordinate through the database alone"
                );
            } else {
                tracing::info!("redis reachable again: coordination restored");
            }
        }
        r
    }

    /// Sends Redis `PING` (readiness: is the coordination server answering).
    pub async fn ping(&self) -> Result<()> {
        let mut c = self.conn.clone();
        self.call(async move { redis::cmd("PING").query_async::<String>(&mut c).await })
            .await
            .map(|_| ())
    }

    /// Takes lease `name` for `owner` for `ttl` if nobody holds it; false if
    /// someone does.
    pub async fn acquire_lease(&self, name: &str, owner: &str, ttl: Duration) -> Result<bool> {
        let mut c = self.conn.clone();
        let key = self.key(&format!("lease:{name}"));
        let ms = millis(ttl).max(1);
        let r: Option<String> = self
            .call(async move {
                redis::cmd("SET")
                    .arg(&key)
                    .arg(owner)
                    .arg("NX")
                    .arg("PX")
                    .arg(ms)
                    .query_async(&mut c)
                    .await
            })
            .await?;
        Ok(r.is_some())
    }

    /// Extends lease `name` if `owner` still holds it.
    pub async fn renew_lease(&self, name: &str, owner: &str, ttl: Duration) -> Result<LeaseState> {
        let mut c = self.conn.clone();
        let key = self.key(&format!("lease:{name}"));
        let ms = millis(ttl).max(1);
        let mut inv = self.renew.key(key);
        inv.arg(owner).arg(ms);
        let held: i64 = self.call(inv.invoke_async(&mut c)).await?;
        Ok(if held == 1 {
            LeaseState::Held
        } else {
            LeaseState::Lost
        })
    }

    /// Gives lease `name` back if `owner` holds it.
    pub async fn release_lease(&self, name: &str, owner: &str) -> Result<()> {
        let mut c = self.conn.clone();
        let mut inv = self.release.key(self.key(&format!("lease:{name}")));
        inv.arg(owner);
        let _: i64 = self.call(inv.invoke_async(&mut c)).await?;
        Ok(())
    }

    /// One request against the shared limit `name`: `per_sec` requests per second
    /// with bursts of `burst`.
    pub async fn gcra(&self, name: &str, per_sec: u32, burst: u32) -> Result<Gcra> {
        self.gcra_take(name, per_sec, burst, 1).await
    }

    /// `cost` requests at once against the shared limit `name` (all or none).
    pub async fn gcra_take(&self, name: &str, per_sec: u32, burst: u32, cost: u32) -> Result<Gcra> {
        let mut c = self.conn.clone();
        let interval_us = 1_000_000 / u64::from(per_sec.max(1));
        let mut inv = self.gcra.key(self.key(&format!("gcra:{name}")));
        inv.arg(interval_us.max(1))
            .arg(burst.max(1))
            .arg(cost.clamp(1, burst.max(1)));
        let (allowed, remaining, retry): (i64, i64, i64) =
            self.call(inv.invoke_async(&mut c)).await?;
        Ok(Gcra {
            allowed: allowed == 1,
            remaining: u32::try_from(remaining.max(0)).unwrap_or(u32::MAX),
            retry_after_ms: u64::try_from(retry.max(0)).unwrap_or(0),
        })
    }

    /// Tells every instance (this one included) that `what` changed.
    pub async fn publish(&self, what: &Invalidation) -> Result<()> {
        let mut c = self.conn.clone();
        let msg = serde_json::to_string(what).map_err(|e| Error::Coordination(e.to_string()))?;
        let channel = self.key(CHANNEL);
        let _: i64 = self
            .call(async move {
                redis::cmd("PUBLISH")
                    .arg(channel)
                    .arg(msg)
                    .query_async(&mut c)
                    .await
            })
            .await?;
        Ok(())
    }

    /// Delivers every invalidation published by any instance to `on`, until the
    /// returned task is aborted. Reconnects after a Redis outage; since messages
    /// published meanwhile are lost, `on_reconnect` runs after each reconnection
    /// (drop every cache: caches also expire on their own within seconds).
    pub fn subscribe(
        self: &Arc<Self>,
        on: impl Fn(Invalidation) + Send + Sync + 'static,
        on_reconnect: impl Fn() + Send + Sync + 'static,
    ) -> tokio::task::JoinHandle<()> {
        let me = self.clone();
        tokio::spawn(async move {
            let channel = me.key(CHANNEL);
            let mut first = true;
            loop {
                match me.listen(&channel, &on, first, &on_reconnect).await {
                    Ok(()) => {}
                    Err(e) => {
                        me.degraded.store(true, Ordering::Release);
                        tracing::warn!(error = %e, "redis subscription lost; retrying");
                    }
                }
                first = false;
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        })
    }

    async fn listen(
        &self,
        channel: &str,
        on: &(impl Fn(Invalidation) + Send + Sync),
        first: bool,
        on_reconnect: &(impl Fn() + Send + Sync),
    ) -> Result<()> {
        use futures_util::StreamExt as _;
        let mut pubsub =
            tokio::time::timeout(Duration::from_secs(2), self.client.get_async_pubsub())
                .await
                .map_err(|_| Error::Coordination("redis: subscribe timed out".into()))?
                .map_err(|e| redis_err(&e))?;
        pubsub.subscribe(channel).await.map_err(|e| redis_err(&e))?;
        if !first {
            on_reconnect();
            tracing::info!("redis subscription restored; caches dropped");
        }
        let mut stream = pubsub.into_on_message();
        while let Some(msg) = stream.next().await {
            match serde_json::from_slice::<Invalidation>(msg.get_payload_bytes()) {
                Ok(inv) => on(inv),
                Err(e) => tracing::warn!(error = %e, "ignoring a malformed invalidation"),
            }
        }
        Err(Error::Coordination("redis: subscription closed".into()))
    }
}

/// This instance's lease owner token, kept in `<data_dir>/instance-owner.<name>`
/// so that an instance restarted after a crash takes its own lease back at once
/// instead of waiting for it to expire. The file is locked while the token is in
/// use, so one token is one live instance: a second instance with the same name
/// on the same data directory is refused like one anywhere else. Give each
/// instance its own data directory (copy `root-key.json`, never this file).
pub struct OwnerToken {
    token: String,
    _file: std::fs::File,
}

impl std::fmt::Debug for OwnerToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OwnerToken").finish_non_exhaustive()
    }
}

impl OwnerToken {
    /// The token file for instance `name` in `data_dir`.
    pub fn path(data_dir: &std::path::Path, name: &str) -> std::path::PathBuf {
        data_dir.join(format!("instance-owner.{name}"))
    }

    /// Claims the token of instance `name` in `data_dir` (created on first use,
    /// mode 0600), refusing while another live instance uses it.
    pub fn claim(data_dir: &std::path::Path, name: &str) -> Result<Self> {
        use std::io::{Read, Seek, Write};
        let path = Self::path(data_dir, name);
        let io = |e: std::io::Error| Error::Io {
            path: path.display().to_string(),
            source: e,
        };
        let mut opts = std::fs::OpenOptions::new();
        opts.read(true).write(true).create(true).truncate(false);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
        let mut file = opts.open(&path).map_err(io)?;
        match file.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                return Err(Error::Conflict(format!(
                    "instance name {name:?} is in use by another live instance on this data directory: give each instance its own (instance_name)"
                )));
            }
            Err(std::fs::TryLockError::Error(e)) => return Err(io(e)),
        }
        let mut text = String::new();
        (&file).take(64).read_to_string(&mut text).map_err(io)?;
        let text = text.trim();
        let token = if text.len() == 24 && text.bytes().all(|b| b.is_ascii_hexdigit()) {
            text.to_owned()
        } else {
            let r: [u8; 12] = fleetkey_crypto::rand::array()?;
            let token = hex::encode(r);
            file.set_len(0).map_err(io)?;
            file.rewind().map_err(io)?;
            file.write_all(token.as_bytes())
                .and_then(|()| file.sync_all())
                .map_err(io)?;
            token
        };
        Ok(Self { token, _file: file })
    }

    /// The token.
    pub fn token(&self) -> &str {
        &self.token
    }
}

/// A lease held by this instance and renewed in the background; see
/// [`InstanceLease::lost`].
pub struct InstanceLease {
    lost: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<()>,
    coord: Arc<Coordinator>,
    name: String,
    owner: String,
    /// The claimed token file, held for the lease's life.
    _token: Option<OwnerToken>,
}

impl std::fmt::Debug for InstanceLease {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InstanceLease")
            .field("name", &self.name)
            .field("lost", &self.lost())
            .finish_non_exhaustive()
    }
}

impl InstanceLease {
    /// Takes `name` for this instance with a fresh random owner token, refusing if
    /// another live instance holds it, and renews it every third of `ttl`.
    pub async fn acquire(coord: &Arc<Coordinator>, name: &str, ttl: Duration) -> Result<Self> {
        let token: [u8; 12] = fleetkey_crypto::rand::array()?;
        Self::take(coord, name, hex::encode(token), None, ttl).await
    }

    /// Takes `name` for `owner` (see [`OwnerToken`]): free, or still held by the
    /// same owner — this instance restarted after a crash before its lease expired —
    /// or refused because another live instance holds it.
    pub async fn acquire_as(
        coord: &Arc<Coordinator>,
        name: &str,
        owner: OwnerToken,
        ttl: Duration,
    ) -> Result<Self> {
        Self::take(coord, name, owner.token.clone(), Some(owner), ttl).await
    }

    async fn take(
        coord: &Arc<Coordinator>,
        name: &str,
        owner: String,
        token: Option<OwnerToken>,
        ttl: Duration,
    ) -> Result<Self> {
        if !coord.acquire_lease(name, &owner, ttl).await? {
            if coord.renew_lease(name, &owner, ttl).await? != LeaseState::Held {
                return Err(Error::Conflict(format!(
                    "instance name {name:?} is in use by another live instance: give each instance its own (instance_name)"
                )));
            }
            tracing::info!(name = %name, "instance lease still held from this instance's previous run; resumed");
        }
        let lost = Arc::new(AtomicBool::new(false));
        let task = {
            let (coord, name, owner, lost) =
                (coord.clone(), name.to_owned(), owner.clone(), lost.clone());
            tokio::spawn(async move {
                let mut tick = tokio::time::interval(ttl / 3);
                tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                tick.tick().await;
                loop {
                    tick.tick().await;
                    match coord.renew_lease(&name, &owner, ttl).await {
                        Ok(LeaseState::Held) => {
                            if lost.swap(false, Ordering::AcqRel) {
                                tracing::info!(name = %name, "instance lease held again");
                            }
                        }
                        Ok(LeaseState::Lost) => {
                            // Expired during an outage: take it back if free,
                            // otherwise another instance has this name.
                            match coord.acquire_lease(&name, &owner, ttl).await {
                                Ok(true) => {
                                    tracing::warn!(name = %name, "instance lease had expired; taken again")
                                }
                                _ => {
                                    if !lost.swap(true, Ordering::AcqRel) {
                                        tracing::error!(name = %name, "instance lease taken by another instance: two instances share a name");
                                    }
                                }
                            }
                        }
                        // Redis unreachable: keep going on the database alone.
                        Err(_) => {}
                    }
                }
            })
        };
        Ok(Self {
            lost,
            task,
            coord: coord.clone(),
            name: name.to_owned(),
            owner,
            _token: token,
        })
    }

    /// Whether another instance took this lease (a configuration error to fix).
    pub fn lost(&self) -> bool {
        self.lost.load(Ordering::Acquire)
    }

    /// Stops renewing and gives the lease back.
    pub async fn release(self) {
        self.task.abort();
        let _ = self.coord.release_lease(&self.name, &self.owner).await;
    }
}

impl Drop for InstanceLease {
    fn drop(&mut self) {
        self.task.abort();
    }
}
