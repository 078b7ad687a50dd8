//! Keyrings: versions, rotation by age and by use, the decrypt-only overlap,
//! emergency revocation, rewrap, and "keep last N".
//!
//! [`KeyService`] owns the keyrings of one instance. [`Keyring`] handles seal and
//! unseal; its seal path is lock-free: one atomic counter gives both the nonce and
//! the use count, so sealing costs an atomic add on top of the envelope. Everything
//! that needs the store (a new nonce block, a rotation) happens on a slow path
//! serialised per keyring. Every change appends an audit entry in the same store
//! transaction.
//!
//! Policy checks: the use budget is checked on every seal (exact: the seal after the
//! `max_uses`-th rotates first). Age is checked at every nonce block boundary, every
//! 256 seals, and by [`KeyService::run_policies`] (the scheduler tick), so a keyring
//! that is idle still rotates on time.

pub mod nonce;

use crate::audit::{AuditDraft, Checkpoint};
use crate::clock::{SharedClock, UnixTime};
use crate::custody::Custody;
use crate::error::{Error, Result};
use crate::store::{
    Change, KeyringRecord, Policy, Reservation, Store, VersionRecord, VersionState,
};
use arc_swap::ArcSwap;
use fleetkey_crypto::{
    aead::{AeadKey, Algorithm},
    envelope::{Body, Header, KeyId, single},
    secret::SecretBytes,
};
use nonce::NonceBlock;
use serde_json::json;
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

/// Tunables of the key service.
#[derive(Debug, Clone)]
pub struct KeyConfig {
    /// Name under which this instance leases its nonce instance id.
    pub instance_holder: String,
    /// Counters reserved per store transaction.
    pub nonce_block: u32,
    /// Counter value at which a nonce-space warning is raised.
    pub nonce_alert_at: u64,
}

impl Default for KeyConfig {
    fn default() -> Self {
        Self {
            instance_holder: "embedded".into(),
            nonce_block: nonce::DEFAULT_BLOCK,
            nonce_alert_at: nonce::DEFAULT_ALERT_AT,
        }
    }
}

/// What one [`KeyService::run_policies`] tick did.
#[derive(Debug, Default)]
pub struct PolicyRun {
    /// One line per action taken (`NAME: rotated to version N (period)`, …).
    pub actions: Vec<String>,
    /// One line per keyring whose policy could not be applied (`NAME: error`).
    pub failures: Vec<String>,
}

/// Counters an operator watches (exported as metrics by the HTTP layer).
#[derive(Debug, Default)]
pub struct KeyMetrics {
    /// Envelopes sealed (counted per retired nonce block, so it lags by at most one
    /// block per keyring).
    pub seals: AtomicU64,
    /// Envelopes opened.
    pub unseals: AtomicU64,
    /// Keyrings re-read because an envelope named a version newer than cached.
    pub catch_ups: AtomicU64,
    /// Rotations (manual and automatic).
    pub rotations: AtomicU64,
    /// Nonce blocks reserved.
    pub nonce_blocks: AtomicU64,
    /// Times a counter crossed the alert threshold.
    pub nonce_space_alerts: AtomicU64,
    /// Fresh instance ids leased because a counter space ran out.
    pub instance_renewals: AtomicU64,
}

/// Validates a keyring name: it becomes the envelope key id.
pub fn validate_name(name: &str) -> Result<KeyId> {
    KeyId::new(name).map_err(|_| Error::Invalid {
        what: "keyring name",
        why: "use 1 to 64 characters from A-Z a-z 0-9 . _ - : / @ +".into(),
    })
}

fn validate_policy(p: &Policy) -> Result<()> {
    let bad = |why: &str| {
        Err(Error::Invalid {
            what: "policy",
            why: why.into(),
        })
    };
    if p.rotation_period_secs < 60 {
        return bad("rotation period must be at least 60 seconds");
    }
    if p.max_uses == 0 || p.max_uses > 1 << 40 {
        return bad("max uses must be between 1 and 2^40");
    }
    if p.overlap_secs < 0 {
        return bad("overlap must not be negative");
    }
    if p.keep_last == Some(0) {
        return bad("keep-last must be at least 1");
    }
    Ok(())
}

fn wrap_context(name: &str, version: u32) -> String {
    format!("keyring:{name}/v{version}")
}

/// What `show`/`list` report about a keyring. Never contains key material.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct KeyringInfo {
    /// Name.
    pub name: String,
    /// AEAD.
    pub algorithm: String,
    /// Sealing version.
    pub primary_version: u32,
    /// Oldest version that may open.
    pub min_decrypt_version: u32,
    /// Rotation policy.
    pub policy: Policy,
    /// Creation time.
    pub created_at: UnixTime,
    /// Versions, oldest first.
    pub versions: Vec<VersionInfo>,
}

/// One version in [`KeyringInfo`].
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct VersionInfo {
    /// Version number.
    pub version: u32,
    /// Life-cycle state.
    pub state: VersionState,
    /// Creation time.
    pub created_at: UnixTime,
    /// When it stopped being primary.
    pub retired_at: Option<UnixTime>,
    /// When it was revoked.
    pub revoked_at: Option<UnixTime>,
    /// Seals recorded (flushed in batches).
    pub seal_count: u64,
}

struct Shared {
    store: Arc<dyn Store>,
    custody: Arc<dyn Custody>,
    clock: SharedClock,
    config: KeyConfig,
    instance: [u8; 8],
    metrics: KeyMetrics,
    /// Told the name of every keyring this instance changed, after the commit
    /// ([`KeyService::on_change`]).
    announce: std::sync::OnceLock<Announcer>,
}

/// What [`KeyService::on_change`] calls.
pub type Announcer = Arc<dyn Fn(&str) + Send + Sync>;

impl Shared {
    /// Announces a committed change to keyring `name` (other instances re-read it).
    fn changed(&self, name: &str) {
        if let Some(f) = self.announce.get() {
            f(name);
        }
    }
}

/// The primary version's sealing state, replaced wholesale on rotation or when a
/// nonce block runs out.
struct Primary {
    version: u32,
    sealer: single::Sealer,
    block: NonceBlock,
    /// Uses of this version before `block` (counting every reserved counter).
    uses_before: u64,
    /// When the version was created (for the age policy).
    created_at: UnixTime,
    /// Counters of this block whose use has been recorded.
    counted: AtomicU64,
    /// The next block, being reserved in the background.
    prefetch: std::sync::Mutex<Option<tokio::task::JoinHandle<Result<Option<Reserved>>>>>,
}

/// A fresh random data key for `name` version `version`, wrapped by custody, and its
/// (active) version record.
async fn mint_version(
    s: &Shared,
    name: &str,
    version: u32,
    now: UnixTime,
) -> Result<(VersionRecord, SecretBytes<32>)> {
    let data_key = SecretBytes::<32>::random()?;
    let wrapped = s
        .custody
        .wrap(&data_key, &wrap_context(name, version))
        .await?;
    let record = VersionRecord {
        keyring: name.to_owned(),
        version,
        wrapped_key: wrapped,
        state: VersionState::Active,
        created_at: now,
        retired_at: None,
        revoked_at: None,
        seal_count: 0,
    };
    Ok((record, data_key))
}

/// A durably reserved range of nonce counters.
struct Reserved {
    instance: [u8; 8],
    start: u32,
    count: u32,
    /// Counters of the version reserved before this block, on every instance.
    reserved_before: u64,
}

/// Counters per reserved block: the configured block, but at most 1/16 of the use
/// budget (at least 1), so that several instances share a version's budget
/// rather than the first to reserve taking all of it.
fn block_size(config: &KeyConfig, max_uses: u64) -> u32 {
    let share = (max_uses / BUDGET_SHARES).max(1);
    u32::try_from(share.min(u64::from(config.nonce_block))).unwrap_or(config.nonce_block)
}

/// Into how many blocks at least a version's use budget is split.
const BUDGET_SHARES: u64 = 16;

/// Reserves the next block of counters for (keyring, version), committing the new
/// high-water mark before returning; the store caps the version's reservations on
/// every instance at `max_uses` in the same step. `None`: the budget is reserved in
/// full (rotate). Leases a fresh instance id when this one's counter space is spent.
async fn reserve_block(
    s: Arc<Shared>,
    name: String,
    version: u32,
    max_uses: u64,
) -> Result<Option<Reserved>> {
    let mut instance = s.instance;
    let (start, count, reserved_before) = loop {
        match s
            .store
            .reserve_nonces(
                &name,
                version,
                instance,
                block_size(&s.config, max_uses),
                max_uses,
            )
            .await?
        {
            Reservation::Granted {
                start,
                count,
                reserved_before,
            } => break (start, count, reserved_before),
            Reservation::BudgetSpent => return Ok(None),
            Reservation::SpaceExhausted => {
                // This instance id's counters for the version are spent: lease a
                // fresh id just for this (keyring, version).
                let n = s.metrics.instance_renewals.fetch_add(1, Ordering::Relaxed) + 1;
                let holder = format!("{}/{}/v{}/{}", s.config.instance_holder, name, version, n);
                instance = s.store.lease_instance(&holder, s.clock.now()).await?;
                tracing::warn!(keyring = %name, version, "nonce space of an instance id exhausted; leased a new one");
            }
        }
    };
    s.metrics.nonce_blocks.fetch_add(1, Ordering::Relaxed);
    let end = u64::from(start) + u64::from(count);
    if end >= s.config.nonce_alert_at {
        s.metrics.nonce_space_alerts.fetch_add(1, Ordering::Relaxed);
        tracing::warn!(keyring = %name, version, counter = end, "nonce counter above the alert threshold; rotate this keyring");
    }
    Ok(Some(Reserved {
        instance,
        start,
        count,
        reserved_before,
    }))
}

/// How many rotations one refill may make when each new version's budget is
/// found spent by other instances before this one reserves from it.
const MAX_ROTATIONS_PER_REFILL: usize = 16;

/// Shortest time between two catch-up re-reads of one keyring.
pub const CATCH_UP_INTERVAL: std::time::Duration = std::time::Duration::from_millis(100);

/// Keyring metadata cached for unseal decisions.
struct Meta {
    record: KeyringRecord,
    versions: BTreeMap<u32, VersionRecord>,
}

/// One keyring of a [`KeyService`].
pub struct Keyring {
    name: String,
    key_id: KeyId,
    shared: Arc<Shared>,
    primary: ArcSwap<Primary>,
    meta: ArcSwap<Meta>,
    keys: std::sync::RwLock<HashMap<u32, Arc<AeadKey>>>,
    slow: tokio::sync::Mutex<()>,
    /// One catch-up re-read at a time ([`Keyring::catch_up`]).
    catch_up: tokio::sync::Mutex<()>,
    /// When the latest catch-up re-read started.
    last_catch_up: std::sync::Mutex<Option<std::time::Instant>>,
    /// Seal counts not yet written to the store.
    unflushed: std::sync::Mutex<Vec<(u32, u64)>>,
}

impl std::fmt::Debug for Keyring {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Keyring")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

impl Keyring {
    /// The keyring's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Seals `plaintext` with the primary version. `aad` is authenticated, not stored.
    pub async fn seal(&self, plaintext: &[u8], aad: &[u8]) -> Result<Vec<u8>> {
        loop {
            let p = self.primary.load();
            if let Some(counter) = p.block.take() {
                // Age check on a sample of seals; the scheduler covers idle keyrings.
                if counter & 0xFF == 0 && self.age_due(&p) {
                    drop(p);
                    self.slow_path().await?;
                    continue;
                }
                let nonce = nonce::nonce(&p.block.instance, counter);
                return Ok(p.sealer.seal(nonce, plaintext, aad)?);
            }
            drop(p);
            self.slow_path().await?;
        }
    }

    fn age_due(&self, p: &Primary) -> bool {
        let period = self.meta.load().record.policy.rotation_period_secs;
        self.shared.clock.now() >= p.created_at.saturating_add(period)
    }

    /// Refills the nonce block, rotating first when the use budget or age says so.
    async fn slow_path(&self) -> Result<()> {
        let _guard = self.slow.lock().await;
        let p = self.primary.load_full();
        // Another task may have refilled while we waited.
        if p.block.used() < p.block.limit - p.block.start && !self.age_due(&p) {
            return Ok(());
        }
        self.retire_block(&p);
        let meta = self.meta.load_full();
        let policy = meta.record.policy;
        let primary = meta.record.primary_version;
        let rec = meta.versions.get(&primary);
        let created = rec.map(|v| v.created_at).unwrap_or(0);
        let age_due =
            self.shared.clock.now() >= created.saturating_add(policy.rotation_period_secs);
        // This process's count of the budget spent while its block is live (the
        // store's reservations decide in the end: see below).
        let uses_due = p.version == primary
            && p.block.end > 0
            && p.uses_before + p.block.used() >= policy.max_uses;
        let mut reason = if uses_due {
            Some("max_uses")
        } else if age_due {
            Some("period")
        } else {
            None
        };
        // A refill the store refuses because the version's budget is reserved in
        // full (by any instance) rotates. Bounded: a budget spent by other
        // instances right after each rotation is not worth waiting for forever.
        for _ in 0..MAX_ROTATIONS_PER_REFILL {
            let (version, created_at) = match reason {
                Some(reason) => {
                    let (v, sealing) = self.rotate_locked("scheduler", reason, true).await?;
                    if sealing {
                        return Ok(());
                    }
                    let created = self.meta.load().versions.get(&v).map(|r| r.created_at);
                    (v, created.unwrap_or_else(|| self.shared.clock.now()))
                }
                None => {
                    if rec.map(|r| r.state) != Some(VersionState::Active) {
                        return Err(Error::Store(format!(
                            "keyring {:?} has no active primary version",
                            self.name
                        )));
                    }
                    (primary, created)
                }
            };
            if self.refill(version, created_at).await? {
                return Ok(());
            }
            reason = Some("max_uses");
        }
        Err(Error::Store(format!(
            "keyring {:?}: every new version's use budget was spent before this instance could seal",
            self.name
        )))
    }

    /// Records the block's counters handed out since the last count.
    fn retire_block(&self, p: &Primary) {
        self.count_usage(p, p.block.used());
    }

    /// Records `used` (counters of `p`'s block handed out so far) minus what was
    /// recorded before: every counter is counted once, however often this runs.
    fn count_usage(&self, p: &Primary, used: u64) {
        let before = p.counted.fetch_max(used, Ordering::Relaxed);
        if used > before {
            self.record_usage(p.version, used - before);
        }
    }

    /// Reserves a new nonce block for `version` and installs it. `false`: the
    /// version's use budget is reserved in full (the caller rotates).
    async fn refill(&self, version: u32, created_at: UnixTime) -> Result<bool> {
        // Use the block reserved in the background if it is for this version.
        let old = self.primary.load_full();
        let prefetched = match old.prefetch.lock().ok().and_then(|mut g| g.take()) {
            Some(handle) if old.version == version => handle.await.ok().and_then(|r| r.ok()),
            Some(handle) => {
                // A block for a version no longer sealed with: give it back.
                if let Ok(Ok(Some(r))) = handle.await {
                    self.give_back_reserved(old.version, &r).await?;
                }
                None
            }
            None => None,
        };
        let max_uses = self.meta.load().record.policy.max_uses;
        let r = match prefetched {
            Some(Some(r)) => r,
            // The prefetch found the budget spent: so is it now.
            Some(None) => return Ok(false),
            None => {
                match reserve_block(self.shared.clone(), self.name.clone(), version, max_uses)
                    .await?
                {
                    Some(r) => r,
                    None => return Ok(false),
                }
            }
        };
        self.install(version, created_at, r, max_uses).await?;
        Ok(true)
    }

    /// Installs reserved block `r` of `version` as the live one, and starts
    /// reserving the following block in the background unless `r` ends the
    /// version's use budget.
    async fn install(
        &self,
        version: u32,
        created_at: UnixTime,
        r: Reserved,
        max_uses: u64,
    ) -> Result<()> {
        let key = self.key(version).await?;
        let end = u64::from(r.start) + u64::from(r.count);
        let primary = Arc::new(Primary {
            version,
            sealer: single::Sealer::new(key, &self.key_id, version),
            block: NonceBlock::new(r.instance, u64::from(r.start), end, end),
            uses_before: r.reserved_before,
            created_at,
            counted: Default::default(),
            prefetch: std::sync::Mutex::new(None),
        });
        // Reserve the following block now, off the seal path, unless this block
        // already ends the version's use budget.
        if r.reserved_before + u64::from(r.count) < max_uses
            && let Ok(handle) = tokio::runtime::Handle::try_current()
            && let Ok(mut slot) = primary.prefetch.lock()
        {
            *slot = Some(handle.spawn(reserve_block(
                self.shared.clone(),
                self.name.clone(),
                version,
                max_uses,
            )));
        }
        self.primary.store(primary);
        Ok(())
    }

    /// Stops sealing from the live block at once (caller holds `slow`): installs
    /// an empty block for `version` and returns the old primary, whose block is
    /// closed and counted. The next seal refills.
    fn park(&self, version: u32, sealer: single::Sealer, created_at: UnixTime) -> Arc<Primary> {
        let old = self.primary.swap(Arc::new(Primary {
            version,
            sealer,
            block: NonceBlock::empty(),
            uses_before: 0,
            created_at,
            counted: AtomicU64::new(0),
            prefetch: std::sync::Mutex::new(None),
        }));
        let used = old.block.close();
        self.count_usage(&old, used);
        old
    }

    /// Gives back what a parked primary ([`Keyring::park`]) reserved and did not
    /// use: the block reserved in the background first (it lies above the live
    /// one), then the unused tail of the closed block. The store then counts only
    /// counters that were handed out, so the use budget stays exact.
    async fn give_back(&self, old: &Primary) -> Result<()> {
        let pending = old.prefetch.lock().ok().and_then(|mut g| g.take());
        if let Some(h) = pending
            && let Ok(Ok(Some(r))) = h.await
        {
            self.give_back_reserved(old.version, &r).await?;
        }
        if old.block.end > 0 {
            // Parking counted the closed block exactly (a closed block's `used()`
            // reads as used up).
            let used_end = old.block.start + old.counted.load(Ordering::Relaxed);
            self.shared
                .store
                .release_nonces(
                    &self.name,
                    old.version,
                    old.block.instance,
                    old.block.end,
                    used_end,
                )
                .await?;
        }
        Ok(())
    }

    /// Gives back a whole reserved block that was never used.
    async fn give_back_reserved(&self, version: u32, r: &Reserved) -> Result<()> {
        let end = u64::from(r.start) + u64::from(r.count);
        self.shared
            .store
            .release_nonces(&self.name, version, r.instance, end, u64::from(r.start))
            .await?;
        Ok(())
    }

    fn record_usage(&self, version: u32, used: u64) {
        self.shared.metrics.seals.fetch_add(used, Ordering::Relaxed);
        // Called once per retired block: count its used counters.
        if used > 0
            && let Ok(mut u) = self.unflushed.lock()
        {
            u.push((version, used));
        }
    }

    async fn flush_usage(&self) -> Result<()> {
        let pending: Vec<(String, u32, u64)> = match self.unflushed.lock() {
            Ok(mut u) => u
                .drain(..)
                .map(|(v, n)| (self.name.clone(), v, n))
                .collect(),
            Err(_) => Vec::new(),
        };
        self.shared.store.add_seal_counts(&pending).await
    }

    /// The unwrapped key of `version`, from cache or custody.
    async fn key(&self, version: u32) -> Result<Arc<AeadKey>> {
        if let Some(k) = self.keys.read().ok().and_then(|m| m.get(&version).cloned()) {
            return Ok(k);
        }
        let meta = self.meta.load_full();
        let rec = meta
            .versions
            .get(&version)
            .ok_or_else(|| Error::UnknownVersion {
                keyring: self.name.clone(),
                version,
            })?;
        let raw = self
            .shared
            .custody
            .unwrap(&rec.wrapped_key, &wrap_context(&self.name, version))
            .await?;
        let key = Arc::new(AeadKey::new(meta.record.algorithm, raw)?);
        if let Ok(mut m) = self.keys.write() {
            m.insert(version, key.clone());
        }
        Ok(key)
    }

    /// The newest version this instance knows of.
    fn newest_version(&self) -> u32 {
        self.meta
            .load()
            .versions
            .keys()
            .next_back()
            .copied()
            .unwrap_or(0)
    }

    /// Checks that `version` may open, with a distinct error for each refusal.
    fn check_version(&self, version: u32) -> Result<()> {
        let meta = self.meta.load();
        let rec = meta
            .versions
            .get(&version)
            .ok_or_else(|| Error::UnknownVersion {
                keyring: self.name.clone(),
                version,
            })?;
        // Revoked is final: it stays the answer after the minimum passes the
        // version and its key is erased (`revoked_at` is kept).
        if rec.state == VersionState::Revoked || rec.revoked_at.is_some() {
            return Err(Error::Revoked {
                keyring: self.name.clone(),
                version,
            });
        }
        if version < meta.record.min_decrypt_version || rec.state == VersionState::Destroyed {
            return Err(Error::BelowMinimum {
                keyring: self.name.clone(),
                version,
                min: meta.record.min_decrypt_version,
            });
        }
        Ok(())
    }

    /// Opens an envelope sealed by this keyring.
    pub async fn unseal(&self, envelope: &[u8], aad: &[u8]) -> Result<Vec<u8>> {
        let (header, len) = Header::parse(envelope)?;
        match self.check_header(&header) {
            Err(Error::UnknownVersion { version, .. }) if version > self.newest_version() => {
                self.catch_up().await?;
                self.check_header(&header)?;
            }
            r => r?,
        }
        let key = self.key(header.key_version).await?;
        let out = single::open_parsed(&key, &header, envelope, len, aad)?;
        self.shared.metrics.unseals.fetch_add(1, Ordering::Relaxed);
        Ok(out)
    }

    fn check_header(&self, header: &Header) -> Result<()> {
        if header.key_id != self.key_id {
            return Err(Error::WrongKeyring {
                expected: self.name.clone(),
                found: header.key_id.to_string(),
            });
        }
        if !matches!(header.body, Body::Single { .. }) {
            return Err(Error::Invalid {
                what: "envelope",
                why: "keyrings seal and open single-shot (mode 1) envelopes".into(),
            });
        }
        self.check_version(header.key_version)
    }

    /// Opens with any allowed version and reseals with the primary; the plaintext
    /// never leaves this function and is wiped before it returns.
    async fn rewrap_one(&self, envelope: &[u8], aad: &[u8]) -> Result<Vec<u8>> {
        let pt = zeroize::Zeroizing::new(self.unseal(envelope, aad).await?);
        self.seal(&pt, aad).await
    }

    /// Rotates to a new primary version (caller holds `slow`) and returns it.
    /// With `seal_next` (the seal path), the new version's first nonce block is
    /// reserved in the rotation's own transaction and installed: the instance that
    /// rotates can always seal with the version it made. Returns whether a block
    /// is installed (never after a lost race: the caller refills).
    async fn rotate_locked(
        &self,
        actor: &str,
        reason: &str,
        seal_next: bool,
    ) -> Result<(u32, bool)> {
        let s = &self.shared;
        let meta = self.meta.load_full();
        let old = meta.record.primary_version;
        let new_version = meta.versions.keys().next_back().copied().unwrap_or(0) + 1;
        let now = s.clock.now();
        let max_uses = meta.record.policy.max_uses;
        let first_block = seal_next.then(|| (s.instance, block_size(&s.config, max_uses)));
        let (new, data_key) = mint_version(s, &self.name, new_version, now).await?;
        let applied = s
            .store
            .apply(
                Change::Rotate {
                    name: self.name.clone(),
                    new,
                    retire: old,
                    at: now,
                    first_block,
                },
                AuditDraft::new(
                    actor,
                    "keyring.rotate",
                    format!("keyring:{}", self.name),
                    json!({ "from_version": old, "to_version": new_version, "reason": reason }),
                ),
                now,
            )
            .await;
        match applied {
            Ok(_) => {}
            // Another instance rotated first: use its version, no error to the
            // caller (and no second rotation).
            Err(Error::RotationLost(_)) => return Ok((self.adopt_current_primary().await?, false)),
            Err(e) => return Err(e),
        }
        if let Ok(mut m) = self.keys.write() {
            m.insert(
                new_version,
                Arc::new(AeadKey::new(meta.record.algorithm, data_key)?),
            );
        }
        s.metrics.rotations.fetch_add(1, Ordering::Relaxed);
        s.changed(&self.name);
        self.reload().await?;
        // The old version's block must not be used for the new version: park an
        // empty one, give back what the old one did not use, then install the
        // new version's first block if one was reserved.
        let sealer = single::Sealer::new(self.key(new_version).await?, &self.key_id, new_version);
        let parked = self.park(new_version, sealer, now);
        self.give_back(&parked).await?;
        if let Some((instance, count)) = first_block {
            s.metrics.nonce_blocks.fetch_add(1, Ordering::Relaxed);
            let r = Reserved {
                instance,
                start: 0,
                count,
                reserved_before: 0,
            };
            self.install(new_version, now, r, max_uses).await?;
        }
        Ok((new_version, first_block.is_some()))
    }

    /// After a lost rotation race (caller holds `slow`): re-reads the keyring and
    /// seals from now on with the primary the store holds.
    async fn adopt_current_primary(&self) -> Result<u32> {
        self.reload().await?;
        let meta = self.meta.load_full();
        let version = meta.record.primary_version;
        let created_at = meta
            .versions
            .get(&version)
            .map(|v| v.created_at)
            .unwrap_or_else(|| self.shared.clock.now());
        let sealer = single::Sealer::new(self.key(version).await?, &self.key_id, version);
        let old = self.park(version, sealer, created_at);
        self.give_back(&old).await?;
        Ok(version)
    }

    /// Re-reads the keyring from the store; if its primary version moved (a
    /// rotation elsewhere), stops sealing under the old one at once (the next seal
    /// reserves a block for the new primary).
    async fn refresh(&self) -> Result<()> {
        let _g = self.slow.lock().await;
        let before = self.meta.load().record.policy;
        self.reload().await?;
        let p = self.primary.load_full();
        let meta = self.meta.load();
        let moved = p.version != meta.record.primary_version;
        if p.version == 0 || (!moved && before == meta.record.policy) {
            return Ok(());
        }
        // A rotation elsewhere, or a new policy whose budget the live block was
        // not reserved under: stop sealing from it now.
        let sealer = single::Sealer::new(p.sealer.key().clone(), &self.key_id, p.version);
        let old = self.park(p.version, sealer, p.created_at);
        self.give_back(&old).await?;
        self.flush_usage().await
    }

    /// An envelope names a version newer than any cached: normal in a cluster (a
    /// rotation elsewhere whose announcement is late or lost). Re-reads the
    /// keyring once, coalesced: callers that arrive while a re-read runs, or whose
    /// request came before the latest re-read started, share it; re-reads start at
    /// most every [`CATCH_UP_INTERVAL`], so a flood of made-up version numbers costs
    /// at most one store read per interval.
    async fn catch_up(&self) -> Result<()> {
        let asked = std::time::Instant::now();
        let _g = self.catch_up.lock().await;
        let last = self.last_catch_up.lock().map(|t| *t).unwrap_or(None);
        if let Some(started) = last {
            if started >= asked {
                return Ok(());
            }
            let next = started + CATCH_UP_INTERVAL;
            tokio::time::sleep_until(next.into()).await;
        }
        if let Ok(mut t) = self.last_catch_up.lock() {
            *t = Some(std::time::Instant::now());
        }
        self.shared
            .metrics
            .catch_ups
            .fetch_add(1, Ordering::Relaxed);
        self.refresh().await
    }

    /// Re-reads metadata from the store.
    async fn reload(&self) -> Result<()> {
        let s = &self.shared;
        let record = s
            .store
            .keyring(&self.name)
            .await?
            .ok_or_else(|| Error::KeyringNotFound(self.name.clone()))?;
        let versions = s
            .store
            .versions(&self.name)
            .await?
            .into_iter()
            .map(|v| (v.version, v))
            .collect::<BTreeMap<_, _>>();
        // Forget unwrapped keys that may no longer open anything.
        if let Ok(mut m) = self.keys.write() {
            m.retain(|v, _| {
                versions.get(v).is_some_and(|r| {
                    !matches!(r.state, VersionState::Destroyed | VersionState::Revoked)
                })
            });
        }
        self.meta.store(Arc::new(Meta { record, versions }));
        Ok(())
    }

    fn info(&self) -> KeyringInfo {
        let m = self.meta.load();
        KeyringInfo {
            name: m.record.name.clone(),
            algorithm: m.record.algorithm.name().into(),
            primary_version: m.record.primary_version,
            min_decrypt_version: m.record.min_decrypt_version,
            policy: m.record.policy,
            created_at: m.record.created_at,
            versions: m
                .versions
                .values()
                .map(|v| VersionInfo {
                    version: v.version,
                    state: v.state,
                    created_at: v.created_at,
                    retired_at: v.retired_at,
                    revoked_at: v.revoked_at,
                    seal_count: v.seal_count,
                })
                .collect(),
        }
    }

    /// The minimum decrypt version the policy requires at `now`.
    fn required_minimum(&self, now: UnixTime) -> u32 {
        let m = self.meta.load();
        let r = &m.record;
        let mut min = r.min_decrypt_version;
        if let Some(n) = r.policy.keep_last {
            min = min.max(r.primary_version.saturating_sub(n - 1).max(1));
        }
        // Versions whose overlap window has ended, oldest first, stop at the first
        // one still inside its window.
        for (v, rec) in m.versions.range(min..) {
            if *v >= r.primary_version {
                break;
            }
            match rec.retired_at {
                Some(t) if t.saturating_add(r.policy.overlap_secs) <= now => min = v + 1,
                _ if rec.state == VersionState::Revoked => min = v + 1,
                _ => break,
            }
        }
        min.min(r.primary_version)
    }
}

/// The key service of one instance.
pub struct KeyService {
    shared: Arc<Shared>,
    rings: std::sync::RwLock<HashMap<String, Arc<Keyring>>>,
    /// Serialises loading a keyring the first time.
    loading: tokio::sync::Mutex<()>,
}

impl KeyService {
    /// Starts the service: leases this instance's nonce instance id.
    pub async fn open(
        store: Arc<dyn Store>,
        custody: Arc<dyn Custody>,
        clock: SharedClock,
        config: KeyConfig,
    ) -> Result<Self> {
        let instance = store
            .lease_instance(&config.instance_holder, clock.now())
            .await?;
        Ok(Self {
            shared: Arc::new(Shared {
                store,
                custody,
                clock,
                config,
                instance,
                metrics: KeyMetrics::default(),
                announce: std::sync::OnceLock::new(),
            }),
            rings: std::sync::RwLock::new(HashMap::new()),
            loading: tokio::sync::Mutex::new(()),
        })
    }

    /// Sets what is told the name of each keyring this instance changes, once the
    /// change is committed: every rotation (manual, by the use budget, by age, by a
    /// revocation), revocation, policy change and minimum-version change. The
    /// server publishes it to the other instances; set once (later calls are
    /// ignored).
    pub fn on_change(&self, announce: Announcer) {
        let _ = self.shared.announce.set(announce);
    }

    fn cached_rings(&self) -> Vec<Arc<Keyring>> {
        self.rings
            .read()
            .map(|m| m.values().cloned().collect())
            .unwrap_or_default()
    }

    /// Operational counters.
    pub fn metrics(&self) -> &KeyMetrics {
        &self.shared.metrics
    }

    /// The store.
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.shared.store
    }

    /// Creates a keyring with version 1.
    pub async fn create(
        &self,
        actor: &str,
        name: &str,
        algorithm: Algorithm,
        policy: Policy,
    ) -> Result<KeyringInfo> {
        crate::names::validate("keyring name", name)?;
        validate_name(name)?;
        validate_policy(&policy)?;
        let s = &self.shared;
        let now = s.clock.now();
        let (first, _) = mint_version(s, name, 1, now).await?;
        let record = KeyringRecord {
            name: name.to_owned(),
            algorithm,
            primary_version: 1,
            min_decrypt_version: 1,
            policy,
            created_at: now,
        };
        s.store
            .apply(
                Change::CreateKeyring {
                    keyring: record,
                    first,
                },
                AuditDraft::new(
                    actor,
                    "keyring.create",
                    format!("keyring:{name}"),
                    json!({ "algorithm": algorithm.name(), "policy": policy }),
                ),
                now,
            )
            .await?;
        Ok(self.keyring(name).await?.info())
    }

    /// A handle to a keyring (cached).
    pub async fn keyring(&self, name: &str) -> Result<Arc<Keyring>> {
        if let Some(r) = self.rings.read().ok().and_then(|m| m.get(name).cloned()) {
            return Ok(r);
        }
        let _loading = self.loading.lock().await;
        if let Some(r) = self.rings.read().ok().and_then(|m| m.get(name).cloned()) {
            return Ok(r);
        }
        let key_id = validate_name(name).map_err(|_| Error::KeyringNotFound(name.to_owned()))?;
        let ring = Arc::new(Keyring {
            name: name.to_owned(),
            key_id,
            shared: self.shared.clone(),
            primary: ArcSwap::from_pointee(Primary {
                version: 0,
                sealer: single::Sealer::new(
                    Arc::new(AeadKey::generate(Algorithm::Aes256Gcm)?),
                    &key_id,
                    0,
                ),
                block: NonceBlock::empty(),
                uses_before: 0,
                created_at: 0,
                counted: Default::default(),
                prefetch: std::sync::Mutex::new(None),
            }),
            meta: ArcSwap::from_pointee(Meta {
                record: KeyringRecord {
                    name: name.to_owned(),
                    algorithm: Algorithm::Aes256Gcm,
                    primary_version: 0,
                    min_decrypt_version: 0,
                    policy: Policy::default(),
                    created_at: 0,
                },
                versions: BTreeMap::new(),
            }),
            keys: std::sync::RwLock::new(HashMap::new()),
            slow: tokio::sync::Mutex::new(()),
            catch_up: tokio::sync::Mutex::new(()),
            last_catch_up: std::sync::Mutex::new(None),
            unflushed: std::sync::Mutex::new(Vec::new()),
        });
        ring.reload().await?;
        if let Ok(mut m) = self.rings.write() {
            m.insert(name.to_owned(), ring.clone());
        }
        Ok(ring)
    }

    /// All keyrings.
    pub async fn list(&self) -> Result<Vec<KeyringInfo>> {
        let mut out = Vec::new();
        for r in self.shared.store.keyrings().await? {
            out.push(self.show(&r.name).await?);
        }
        Ok(out)
    }

    /// One keyring with its versions (fresh from the store).
    pub async fn show(&self, name: &str) -> Result<KeyringInfo> {
        let ring = self.keyring(name).await?;
        ring.flush_usage().await?;
        ring.reload().await?;
        Ok(ring.info())
    }

    /// Rotates now.
    pub async fn rotate(&self, actor: &str, name: &str) -> Result<u32> {
        let ring = self.keyring(name).await?;
        let _g = ring.slow.lock().await;
        // From the store's view: a manual rotation after one made elsewhere is a
        // new version, not a lost race.
        ring.reload().await?;
        Ok(ring.rotate_locked(actor, "manual", false).await?.0)
    }

    /// Emergency revocation: opening with `version` fails at once with
    /// [`Error::Revoked`]. Revoking the primary rotates first.
    pub async fn revoke(&self, actor: &str, name: &str, version: u32) -> Result<()> {
        let ring = self.keyring(name).await?;
        let _g = ring.slow.lock().await;
        let meta = ring.meta.load_full();
        if !meta.versions.contains_key(&version) {
            return Err(Error::UnknownVersion {
                keyring: name.to_owned(),
                version,
            });
        }
        if meta.record.primary_version == version {
            ring.rotate_locked(actor, "revocation", false).await?;
        }
        let now = self.shared.clock.now();
        self.shared
            .store
            .apply(
                Change::Revoke {
                    name: name.to_owned(),
                    version,
                    at: now,
                },
                AuditDraft::new(
                    actor,
                    "keyring.revoke",
                    format!("keyring:{name}"),
                    json!({ "version": version }),
                ),
                now,
            )
            .await?;
        self.shared.changed(name);
        ring.reload().await
    }

    /// Replaces the rotation policy.
    pub async fn set_policy(&self, actor: &str, name: &str, policy: Policy) -> Result<()> {
        validate_policy(&policy)?;
        let ring = self.keyring(name).await?;
        let _g = ring.slow.lock().await;
        let now = self.shared.clock.now();
        let old = ring.meta.load().record.policy;
        self.shared
            .store
            .apply(
                Change::SetPolicy {
                    name: name.to_owned(),
                    policy,
                },
                AuditDraft::new(
                    actor,
                    "keyring.policy",
                    format!("keyring:{name}"),
                    json!({ "from": old, "to": policy }),
                ),
                now,
            )
            .await?;
        self.shared.changed(name);
        ring.reload().await?;
        // The live block and the one reserved in the background were reserved
        // under the old budget: park them and give back what was not used, so
        // the very next seal reserves under the new policy.
        let p = ring.primary.load_full();
        if p.version != 0 {
            let sealer = single::Sealer::new(p.sealer.key().clone(), &ring.key_id, p.version);
            let old = ring.park(p.version, sealer, p.created_at);
            ring.give_back(&old).await?;
        }
        ring.flush_usage().await
    }

    /// Rewraps a batch: each item opens with any allowed version and is resealed
    /// with the primary; plaintext is never returned. One audit entry per batch.
    pub async fn rewrap(
        &self,
        actor: &str,
        name: &str,
        envelopes: &[Vec<u8>],
        aad: &[u8],
    ) -> Result<Vec<Result<Vec<u8>>>> {
        let ring = self.keyring(name).await?;
        let mut out = Vec::with_capacity(envelopes.len());
        for e in envelopes {
            out.push(ring.rewrap_one(e, aad).await);
        }
        let ok = out.iter().filter(|r| r.is_ok()).count();
        let now = self.shared.clock.now();
        self.shared
            .store
            .apply(
                Change::AuditOnly,
                AuditDraft::new(
                    actor,
                    "keyring.rewrap",
                    format!("keyring:{name}"),
                    json!({ "items": envelopes.len(), "rewrapped": ok, "to_version": ring.meta.load().record.primary_version }),
                ),
                now,
            )
            .await?;
        Ok(out)
    }

    /// The scheduler tick: rotates keyrings whose primary is too old, raises minimum
    /// decrypt versions whose overlap ended or that fell out of "keep last N", and
    /// flushes usage counts. One keyring that fails (a store error, a name from
    /// before the name grammar, a custody failure) is reported and logged; the
    /// others are still done. Fails only when the keyrings cannot be listed.
    pub async fn run_policies(&self, actor: &str) -> Result<PolicyRun> {
        let mut run = PolicyRun::default();
        for rec in self.shared.store.keyrings().await? {
            if let Err(e) = self.apply_policy(actor, &rec.name, &mut run.actions).await {
                tracing::error!(keyring = %rec.name, error = %e, "rotation policy not applied");
                run.failures.push(format!("{}: {e}", rec.name));
            }
        }
        Ok(run)
    }

    /// [`KeyService::run_policies`] for one keyring; appends what it did.
    async fn apply_policy(&self, actor: &str, name: &str, actions: &mut Vec<String>) -> Result<()> {
        let ring = self.keyring(name).await?;
        ring.flush_usage().await?;
        let _g = ring.slow.lock().await;
        ring.reload().await?;
        let now = self.shared.clock.now();
        let meta = ring.meta.load_full();
        let primary_created = meta
            .versions
            .get(&meta.record.primary_version)
            .map(|v| v.created_at)
            .unwrap_or(now);
        if now >= primary_created.saturating_add(meta.record.policy.rotation_period_secs) {
            let (v, _) = ring.rotate_locked(actor, "period", false).await?;
            actions.push(format!("{name}: rotated to version {v} (period)"));
        }
        let now = self.shared.clock.now();
        let min = ring.required_minimum(now);
        if min > ring.meta.load().record.min_decrypt_version {
            self.shared
                .store
                .apply(
                    Change::RaiseMinimum {
                        name: name.to_owned(),
                        min,
                    },
                    AuditDraft::new(
                        actor,
                        "keyring.min_decrypt",
                        format!("keyring:{name}"),
                        json!({ "min_decrypt_version": min }),
                    ),
                    now,
                )
                .await?;
            self.shared.changed(name);
            ring.reload().await?;
            actions.push(format!("{name}: minimum decrypt version raised to {min}"));
        }
        Ok(())
    }

    /// Keyring `name` changed on another instance (rotation, revocation, policy):
    /// re-reads it, and if its primary version moved, stops sealing under the old
    /// one (the next seal reserves a block for the new primary). Not cached here:
    /// nothing to do.
    pub async fn refresh(&self, name: &str) -> Result<()> {
        let Some(r) = self.rings.read().ok().and_then(|m| m.get(name).cloned()) else {
            return Ok(());
        };
        r.refresh().await
    }

    /// [`KeyService::refresh`] for every cached keyring.
    pub async fn refresh_all(&self) -> Result<()> {
        let names: Vec<String> = self.cached_rings().iter().map(|r| r.name.clone()).collect();
        for n in names {
            self.refresh(&n).await?;
        }
        Ok(())
    }

    /// Writes pending usage counts.
    pub async fn flush(&self) -> Result<()> {
        let rings = self.cached_rings();
        for r in rings {
            // Count what the live block has used so far; it keeps sealing.
            let p = r.primary.load_full();
            r.retire_block(&p);
            r.flush_usage().await?;
        }
        Ok(())
    }

    /// Clean shutdown: writes usage counts, gives back the unused part of every
    /// nonce reservation (so a restart does not count it as used), and leaves every
    /// keyring with an empty block. Sealing after this reserves afresh.
    pub async fn shutdown(&self) -> Result<()> {
        let rings = self.cached_rings();
        for r in rings {
            let _g = r.slow.lock().await;
            let p = r.primary.load_full();
            let sealer = single::Sealer::new(p.sealer.key().clone(), &r.key_id, p.version);
            let old = r.park(p.version, sealer, p.created_at);
            r.give_back(&old).await?;
            r.flush_usage().await?;
        }
        Ok(())
    }

    /// Signs the audit chain's head and stores the checkpoint.
    pub async fn checkpoint(&self) -> Result<Option<Checkpoint>> {
        let s = &self.shared;
        let mut after = s
            .store
            .latest_checkpoint()
            .await?
            .map(|c| c.seq)
            .unwrap_or(0);
        let mut head = None;
        loop {
            let batch = s.store.audit_entries(after, 1000).await?;
            match batch.last() {
                Some(e) => {
                    after = e.seq;
                    head = Some((e.seq, e.hash));
                }
                None => break,
            }
        }
        let Some((seq, hash)) = head else {
            return s.store.latest_checkpoint().await;
        };
        let time = s.clock.now();
        let signature = s
            .custody
            .sign(&Checkpoint::signed_bytes(seq, &hash, time))
            .await?;
        let c = Checkpoint {
            seq,
            head_hash: hash,
            time,
            signature,
        };
        s.store.put_checkpoint(&c).await?;
        Ok(Some(c))
    }

    /// Writes the whole audit log as JSON lines, ending with a fresh checkpoint.
    pub async fn export_audit(&self, out: &mut dyn std::io::Write) -> Result<u64> {
        let checkpoint = self.checkpoint().await?;
        let mut after = 0u64;
        let mut n = 0u64;
        let io = |e: std::io::Error| Error::Io {
            path: "audit export".into(),
            source: e,
        };
        let upto = checkpoint.as_ref().map(|c| c.seq).unwrap_or(0);
        while after < upto {
            let batch = self.shared.store.audit_entries(after, 1000).await?;
            if batch.is_empty() {
                break;
            }
            for e in batch {
                if e.seq > upto {
                    break;
                }
                after = e.seq;
                let line = crate::audit::verify::ExportLine::Entry(e).to_line();
                writeln!(out, "{line}").map_err(io)?;
                n += 1;
            }
        }
        if let Some(c) = checkpoint {
            let line = crate::audit::verify::ExportLine::Checkpoint(c).to_line();
            writeln!(out, "{line}").map_err(io)?;
        }
        Ok(n)
    }

    /// For each cached keyring: (name, primary version, counters left in the live
    /// block's instance id space).
    pub fn nonce_headroom(&self) -> Vec<(String, u32, u64)> {
        self.cached_rings()
            .iter()
            .map(|r| {
                let p = r.primary.load();
                let next = p.block.start + p.block.used();
                (r.name.clone(), p.version, (1u64 << 32).saturating_sub(next))
            })
            .collect()
    }

    /// Whether the store answers and custody can wrap and unwrap (for `/readyz`).
    pub async fn ready(&self) -> Result<()> {
        self.shared.store.keyrings().await?;
        let probe = SecretBytes::new([0u8; 32]);
        let c = &self.shared.custody;
        let back = c.unwrap(&c.wrap(&probe, "readyz").await?, "readyz").await?;
        if back != probe {
            return Err(Error::Store("custody round trip failed".into()));
        }
        Ok(())
    }

    /// The service's composite public key (for `audit verify`).
    pub fn public_key(&self) -> Vec<u8> {
        self.shared.custody.public_key()
    }
}
