//! [`Keyring`]: one keyring's seal and unseal paths, its nonce blocks (reserved,
//! prefetched, parked, given back), rotation under its slow-path lock, and the
//! cached metadata that unseal decisions read.

use super::nonce::{self, NonceBlock};
use super::resident::{VersionSealer, resident_keys, resident_refusal};
use super::{KeyConfig, Shared, wrap_context};
use crate::clock::UnixTime;
use crate::error::{Error, Result};
use crate::key_type::{KeyType, Purpose};
use crate::store::{KeyringRecord, KeyringState, Origin, Reservation, VersionRecord, VersionState};
use arc_swap::ArcSwap;
use fleetkey_crypto::{
    aead::{AeadKey, Algorithm},
    envelope::{Body, Header, KeyId, single},
    secret::SecretBytes,
};
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

/// The primary version's sealing state, replaced wholesale on rotation or when a
/// nonce block runs out.
pub(super) struct Primary {
    pub(super) version: u32,
    pub(super) sealer: VersionSealer,
    pub(super) block: NonceBlock,
    /// Uses of this version before `block` (counting every reserved counter).
    pub(super) uses_before: u64,
    /// When the version was created (for the age policy).
    pub(super) created_at: UnixTime,
    /// Counters of this block whose use has been recorded.
    pub(super) counted: AtomicU64,
    /// The next block, being reserved in the background.
    pub(super) prefetch:
        parking_lot::Mutex<Option<tokio::task::JoinHandle<Result<Option<Reserved>>>>>,
}

/// The key of `name` version `version` — `imported` material, or a fresh random
/// one — wrapped by custody, and its (active) version record. For a `resident`
/// keyring the key is generated in custody's token instead, the record holds
/// custody's reference to it, and no key is returned.
pub(super) async fn mint_version(
    s: &Shared,
    name: &str,
    version: u32,
    now: UnixTime,
    imported: Option<SecretBytes<32>>,
    resident: bool,
) -> Result<(VersionRecord, Option<SecretBytes<32>>)> {
    let origin = match imported {
        Some(_) => Origin::Imported,
        None => Origin::Generated,
    };
    let (wrapped, data_key) = match (resident, imported) {
        (true, Some(_)) => return Err(resident_refusal("importing key material")),
        (true, None) => {
            let reference = resident_keys(s.custody.as_ref())?
                .generate(&wrap_context(name, version))
                .await?;
            (reference, None)
        }
        (false, imported) => {
            let data_key = match imported {
                Some(k) => k,
                None => SecretBytes::<32>::random()?,
            };
            let wrapped = s
                .custody
                .wrap(&data_key, &wrap_context(name, version))
                .await?;
            (wrapped, Some(data_key))
        }
    };
    let record = VersionRecord {
        keyring: name.to_owned(),
        version,
        wrapped_key: wrapped,
        state: VersionState::Active,
        created_at: now,
        retired_at: None,
        revoked_at: None,
        seal_count: 0,
        origin,
    };
    Ok((record, data_key))
}

/// The sealing key of a version: its secret as the keyring's AEAD key. A keyring
/// of another type never seals (every seal path checks the type first); its
/// sealer gets a fresh random key that nothing is sealed with.
pub(super) fn aead_key(kind: KeyType, secret: SecretBytes<32>) -> Result<AeadKey> {
    Ok(match kind.aead() {
        Some(alg) => AeadKey::new(alg, secret)?,
        None => AeadKey::generate(fleetkey_crypto::aead::Algorithm::Aes256Gcm)?,
    })
}

/// A durably reserved range of nonce counters.
pub(super) struct Reserved {
    pub(super) instance: [u8; 8],
    pub(super) start: u32,
    pub(super) count: u32,
    /// Counters of the version reserved before this block, on every instance.
    pub(super) reserved_before: u64,
}

/// Counters per reserved block: the configured block, but at most 1/16 of the use
/// budget (at least 1), so that several instances share a version's budget
/// rather than the first to reserve taking all of it.
pub(super) fn block_size(config: &KeyConfig, max_uses: u64) -> u32 {
    let share = (max_uses / BUDGET_SHARES).max(1);
    u32::try_from(share.min(u64::from(config.nonce_block))).unwrap_or(config.nonce_block)
}

/// Into how many blocks at least a version's use budget is split.
pub(super) const BUDGET_SHARES: u64 = 16;

/// Reserves the next block of counters for (keyring, version), committing the new
/// high-water mark before returning; the store caps the version's reservations on
/// every instance at `max_uses` in the same step. `None`: the budget is reserved in
/// full (rotate). Leases a fresh instance id when this one's counter space is spent.
pub(super) async fn reserve_block(
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
pub(super) const MAX_ROTATIONS_PER_REFILL: usize = 16;

/// How often [`Keyring::reload`] reads a torn keyring and versions pair again.
pub(super) const RELOAD_ATTEMPTS: usize = 4;

/// Shortest time between two catch-up re-reads of one keyring.
pub const CATCH_UP_INTERVAL: std::time::Duration = std::time::Duration::from_millis(100);

/// A sealer that never seals (its block is empty and the keyring refuses first):
/// the primary of a keyring before it is loaded and after it is erased, under a
/// throwaway random key.
pub(super) fn placeholder_sealer(key_id: &KeyId) -> Result<VersionSealer> {
    Ok(VersionSealer::Memory(single::Sealer::new(
        Arc::new(AeadKey::generate(Algorithm::Aes256Gcm)?),
        key_id,
        0,
    )))
}

/// Keyring metadata cached for unseal decisions.
pub(super) struct Meta {
    pub(super) record: KeyringRecord,
    pub(super) versions: BTreeMap<u32, VersionRecord>,
}

/// One keyring of a [`KeyService`](super::KeyService).
pub struct Keyring {
    pub(super) name: String,
    pub(super) key_id: KeyId,
    pub(super) shared: Arc<Shared>,
    pub(super) primary: ArcSwap<Primary>,
    pub(super) meta: ArcSwap<Meta>,
    pub(super) keys: parking_lot::RwLock<HashMap<u32, Arc<AeadKey>>>,
    /// Signing and MAC keys by version (keyrings of those types).
    pub(super) typed: parking_lot::RwLock<HashMap<u32, Arc<super::typed::TypedKey>>>,
    /// Nonce-derivation keys by version (convergent keyrings).
    pub(super) convergent: parking_lot::RwLock<HashMap<u32, Arc<fleetkey_crypto::mac::MacKey>>>,
    pub(super) slow: tokio::sync::Mutex<()>,
    /// One catch-up re-read at a time ([`Keyring::catch_up`]).
    pub(super) catch_up: tokio::sync::Mutex<()>,
    /// When the latest catch-up re-read started.
    pub(super) last_catch_up: parking_lot::Mutex<Option<std::time::Instant>>,
    /// Seal counts not yet written to the store.
    pub(super) unflushed: parking_lot::Mutex<Vec<(u32, u64)>>,
    /// What a seal may do without reading `meta` ([`SEAL_PLAIN`],
    /// [`SEAL_CONVERGENT`], or [`SEAL_CHECK`]: read `meta` and refuse), kept in
    /// step with `meta` by [`Keyring::set_meta`].
    pub(super) seal_mode: std::sync::atomic::AtomicU8,
}

/// `seal_mode`: look at `meta` (not an enabled encryption keyring, or not loaded).
pub(super) const SEAL_CHECK: u8 = 0;
/// `seal_mode`: an enabled encryption keyring, random-nonce sealing.
const SEAL_PLAIN: u8 = 1;
/// `seal_mode`: an enabled convergent keyring.
const SEAL_CONVERGENT: u8 = 2;

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

    /// The keyring's key type.
    pub fn key_type(&self) -> KeyType {
        self.meta.load().record.algorithm
    }

    /// The version that seals (and signs) now, as this instance last read it.
    pub fn primary_version(&self) -> u32 {
        self.meta.load().record.primary_version
    }

    /// Refuses an operation that this keyring's key type does not do, or any
    /// operation while the keyring is not enabled; the metadata it checked.
    pub(super) fn require(&self, purpose: Purpose) -> Result<arc_swap::Guard<Arc<Meta>>> {
        let m = self.meta.load();
        if m.record.state != KeyringState::Enabled {
            return Err(Error::KeyringUnusable {
                keyring: self.name.clone(),
                state: m.record.state,
            });
        }
        m.record.algorithm.require(&self.name, purpose)?;
        Ok(m)
    }

    /// Replaces the keyring's record and versions, and what a seal may do.
    pub(super) fn set_meta(&self, meta: Meta) {
        let r = &meta.record;
        let mode = match (r.state, r.algorithm.purpose(), r.convergent) {
            (KeyringState::Enabled, Purpose::Encrypt, false) => SEAL_PLAIN,
            (KeyringState::Enabled, Purpose::Encrypt, true) => SEAL_CONVERGENT,
            _ => SEAL_CHECK,
        };
        self.meta.store(Arc::new(meta));
        self.seal_mode
            .store(mode, std::sync::atomic::Ordering::Release);
    }

    /// Refuses a management change (rotation, revocation, policy, details) once
    /// deletion is scheduled or done.
    pub(super) fn require_manageable(&self) -> Result<()> {
        match self.meta.load().record.state {
            KeyringState::Enabled | KeyringState::Disabled => Ok(()),
            state => Err(Error::KeyringUnusable {
                keyring: self.name.clone(),
                state,
            }),
        }
    }

    /// Drops the primary's key from memory (after an erasure; caller holds
    /// `slow`): an empty block under a throwaway key, and the unused part of the
    /// old block given back.
    pub(super) async fn forget_primary(&self) -> Result<()> {
        let old = self.park(0, placeholder_sealer(&self.key_id)?, 0);
        self.give_back(&old).await?;
        self.flush_usage().await
    }

    /// Takes one use of the primary version: the primary and the counter taken
    /// (the nonce of a seal; every use counts towards the use budget). Rotates or
    /// refills first when the budget, the age or the block says so.
    pub(super) async fn next_use(&self) -> Result<(arc_swap::Guard<Arc<Primary>>, u32)> {
        loop {
            let p = self.primary.load();
            if let Some(counter) = p.block.take() {
                // Age check on a sample of uses; the scheduler covers idle keyrings.
                if counter & 0xFF == 0 && self.age_due(&p) {
                    drop(p);
                    self.slow_path().await?;
                    continue;
                }
                return Ok((p, counter));
            }
            drop(p);
            self.slow_path().await?;
        }
    }

    /// Seals `plaintext` with the primary version. `aad` is authenticated, not stored.
    pub async fn seal(&self, plaintext: &[u8], aad: &[u8]) -> Result<Vec<u8>> {
        // One atomic load on the hot path; `meta` only to say why not.
        let convergent = match self.seal_mode.load(std::sync::atomic::Ordering::Acquire) {
            SEAL_PLAIN => false,
            SEAL_CONVERGENT => true,
            _ => self.require(Purpose::Encrypt)?.record.convergent,
        };
        let (p, counter) = self.next_use().await?;
        if convergent {
            return self
                .seal_convergent(arc_swap::Guard::into_inner(p), plaintext, aad)
                .await;
        }
        let nonce = nonce::nonce(&p.block.instance, counter);
        let (reference, key_id, version) = match &p.sealer {
            VersionSealer::Memory(s) => return Ok(s.seal(nonce, plaintext, aad)?),
            VersionSealer::Resident {
                reference,
                key_id,
                version,
            } => (reference.clone(), *key_id, *version),
        };
        drop(p);
        self.seal_resident(&reference, &key_id, version, nonce, plaintext, aad)
            .await
    }

    pub(super) fn age_due(&self, p: &Primary) -> bool {
        let period = self.meta.load().record.policy.rotation_period_secs;
        self.shared.clock.now() >= p.created_at.saturating_add(period)
    }

    /// Refills the nonce block, rotating first when the use budget or age says so.
    pub(super) async fn slow_path(&self) -> Result<()> {
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
                        return Err(Error::Corrupt(format!(
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
        Err(Error::NonceExhausted(self.name.clone()))
    }

    /// Records the block's counters handed out since the last count.
    pub(super) fn retire_block(&self, p: &Primary) {
        self.count_usage(p, p.block.used());
    }

    /// Records `used` (counters of `p`'s block handed out so far) minus what was
    /// recorded before: every counter is counted once, however often this runs.
    pub(super) fn count_usage(&self, p: &Primary, used: u64) {
        let before = p.counted.fetch_max(used, Ordering::Relaxed);
        if used > before {
            self.record_usage(p.version, used - before);
        }
    }

    /// Reserves a new nonce block for `version` and installs it. `false`: the
    /// version's use budget is reserved in full (the caller rotates).
    pub(super) async fn refill(&self, version: u32, created_at: UnixTime) -> Result<bool> {
        // Use the block reserved in the background if it is for this version.
        let old = self.primary.load_full();
        let taken = old.prefetch.lock().take();
        let prefetched = match taken {
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
    pub(super) async fn install(
        &self,
        version: u32,
        created_at: UnixTime,
        r: Reserved,
        max_uses: u64,
    ) -> Result<()> {
        let sealer = self.version_sealer(version).await?;
        let end = u64::from(r.start) + u64::from(r.count);
        let primary = Arc::new(Primary {
            version,
            sealer,
            block: NonceBlock::new(r.instance, u64::from(r.start), end, end),
            uses_before: r.reserved_before,
            created_at,
            counted: Default::default(),
            prefetch: parking_lot::Mutex::new(None),
        });
        // Reserve the following block now, off the seal path, unless this block
        // already ends the version's use budget.
        if r.reserved_before + u64::from(r.count) < max_uses
            && let Ok(handle) = tokio::runtime::Handle::try_current()
        {
            *primary.prefetch.lock() = Some(handle.spawn(reserve_block(
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
    pub(super) fn park(
        &self,
        version: u32,
        sealer: VersionSealer,
        created_at: UnixTime,
    ) -> Arc<Primary> {
        let old = self.primary.swap(Arc::new(Primary {
            version,
            sealer,
            block: NonceBlock::empty(),
            uses_before: 0,
            created_at,
            counted: AtomicU64::new(0),
            prefetch: parking_lot::Mutex::new(None),
        }));
        let used = old.block.close();
        self.count_usage(&old, used);
        old
    }

    /// Gives back what a parked primary ([`Keyring::park`]) reserved and did not
    /// use: the block reserved in the background first (it lies above the live
    /// one), then the unused tail of the closed block. The store then counts only
    /// counters that were handed out, so the use budget stays exact.
    pub(super) async fn give_back(&self, old: &Primary) -> Result<()> {
        let pending = old.prefetch.lock().take();
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
    pub(super) async fn give_back_reserved(&self, version: u32, r: &Reserved) -> Result<()> {
        let end = u64::from(r.start) + u64::from(r.count);
        self.shared
            .store
            .release_nonces(&self.name, version, r.instance, end, u64::from(r.start))
            .await?;
        Ok(())
    }

    pub(super) fn record_usage(&self, version: u32, used: u64) {
        self.shared.metrics.seals.fetch_add(used, Ordering::Relaxed);
        // Called once per retired block: count its used counters.
        if used > 0 {
            self.unflushed.lock().push((version, used));
        }
    }

    pub(super) async fn flush_usage(&self) -> Result<()> {
        let pending: Vec<(String, u32, u64)> = self
            .unflushed
            .lock()
            .drain(..)
            .map(|(v, n)| (self.name.clone(), v, n))
            .collect();
        self.shared.store.add_seal_counts(&pending).await
    }

    /// The unwrapped key of `version`, from cache or custody.
    pub(super) async fn key(&self, version: u32) -> Result<Arc<AeadKey>> {
        if let Some(k) = self.keys.read().get(&version).cloned() {
            return Ok(k);
        }
        let (kind, raw) = self.secret(version).await?;
        let key = Arc::new(aead_key(kind, raw)?);
        {
            let mut m = self.keys.write();
            m.insert(version, key.clone());
        }
        Ok(key)
    }

    /// The keyring's key type and `version`'s secret, unwrapped by custody.
    pub(super) async fn secret(&self, version: u32) -> Result<(KeyType, SecretBytes<32>)> {
        let meta = self.meta.load_full();
        if meta.record.resident {
            return Err(resident_refusal("this operation"));
        }
        let rec = self.version_record(&meta, version)?;
        let raw = match self
            .shared
            .custody
            .unwrap(&rec.wrapped_key, &wrap_context(&self.name, version))
            .await
        {
            Ok(raw) => raw,
            Err(e) => {
                return Err(
                    crate::store::explain_unwrap(self.shared.custody_store.as_ref(), e).await,
                );
            }
        };
        Ok((meta.record.algorithm, raw))
    }

    /// `version`'s record in `meta`, or why there is none.
    pub(super) fn version_record<'m>(
        &self,
        meta: &'m Meta,
        version: u32,
    ) -> Result<&'m VersionRecord> {
        meta.versions
            .get(&version)
            .ok_or_else(|| Error::UnknownVersion {
                keyring: self.name.clone(),
                version,
            })
    }

    /// The newest version this instance knows of.
    pub(super) fn newest_version(&self) -> u32 {
        self.meta
            .load()
            .versions
            .keys()
            .next_back()
            .copied()
            .unwrap_or(0)
    }

    /// Checks that `version` may open, with a distinct error for each refusal.
    pub(super) fn check_version(&self, version: u32) -> Result<()> {
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

    /// Opens an envelope sealed by this keyring (or, for an x-wing keyring, sealed
    /// to its public recipient).
    pub async fn unseal(&self, envelope: &[u8], aad: &[u8]) -> Result<Vec<u8>> {
        if self.meta.load().record.algorithm == KeyType::XWing {
            return self.open_sealed_to_recipient(envelope, aad).await;
        }
        self.require(Purpose::Encrypt)?;
        let (header, len) = Header::parse(envelope)?;
        match self.check_header(&header) {
            Err(Error::UnknownVersion { version, .. }) if version > self.newest_version() => {
                self.catch_up().await?;
                self.check_header(&header)?;
            }
            r => r?,
        }
        let out = if self.meta.load().record.resident {
            self.open_resident(&header, envelope, len, aad).await?
        } else {
            let key = self.key(header.key_version).await?;
            single::open_parsed(&key, &header, envelope, len, aad)?
        };
        self.shared.metrics.unseals.fetch_add(1, Ordering::Relaxed);
        Ok(out)
    }

    pub(super) fn check_header(&self, header: &Header) -> Result<()> {
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
    pub(super) async fn rewrap_one(&self, envelope: &[u8], aad: &[u8]) -> Result<Vec<u8>> {
        let pt = zeroize::Zeroizing::new(self.unseal(envelope, aad).await?);
        self.seal(&pt, aad).await
    }
}
