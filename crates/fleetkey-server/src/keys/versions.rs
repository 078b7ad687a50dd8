//! A keyring's versions over time: rotation (manual, by budget or age, to
//! imported material), adopting a rotation made elsewhere, re-reading and
//! catching up with the store, what `show` reports and the minimum decrypt
//! version the policy requires.

use super::keyring::{
    CATCH_UP_INTERVAL, Keyring, Meta, RELOAD_ATTEMPTS, Reserved, aead_key, block_size, mint_version,
};
use super::{KeyringInfo, VersionInfo};
use crate::audit::AuditDraft;
use crate::clock::UnixTime;
use crate::error::{Error, Result};
use crate::store::{Change, KeyringState, VersionState};
use fleetkey_crypto::secret::SecretBytes;
use serde_json::json;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;

impl Keyring {
    /// Rotates to a new primary version (caller holds `slow`) and returns it.
    /// With `seal_next` (the seal path), the new version's first nonce block is
    /// reserved in the rotation's own transaction and installed: the instance that
    /// rotates can always seal with the version it made. Returns whether a block
    /// is installed (never after a lost race: the caller refills).
    pub(super) async fn rotate_locked(
        &self,
        actor: &str,
        reason: &str,
        seal_next: bool,
    ) -> Result<(u32, bool)> {
        self.rotate_to(actor, reason, seal_next, None).await
    }

    /// [`Keyring::rotate_locked`] to `imported` key material when given (caller
    /// holds `slow`).
    pub(super) async fn rotate_to(
        &self,
        actor: &str,
        reason: &str,
        seal_next: bool,
        imported: Option<SecretBytes<32>>,
    ) -> Result<(u32, bool)> {
        let s = &self.shared;
        let meta = self.meta.load_full();
        let old = meta.record.primary_version;
        let new_version = meta.versions.keys().next_back().copied().unwrap_or(0) + 1;
        let now = s.clock.now();
        let max_uses = meta.record.policy.max_uses;
        let first_block = seal_next.then(|| (s.instance, block_size(&s.config, max_uses)));
        let origin = if imported.is_some() {
            "imported"
        } else {
            "generated"
        };
        let (new, data_key) = mint_version(
            s,
            &self.name,
            new_version,
            now,
            imported,
            meta.record.resident,
        )
        .await?;
        let minted = meta.record.resident.then(|| new.wrapped_key.clone());
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
                    json!({ "from_version": old, "to_version": new_version, "reason": reason, "origin": origin }),
                ),
                now,
            )
            .await;
        if applied.is_err() {
            super::resident::discard_minted(s.custody.as_ref(), minted).await;
        }
        match applied {
            Ok(_) => {}
            // Another instance rotated first: use its version, no error to the
            // caller (and no second rotation).
            Err(Error::RotationLost(_)) => return Ok((self.adopt_current_primary().await?, false)),
            Err(e) => return Err(e),
        }
        if let Some(data_key) = data_key {
            let mut m = self.keys.write();
            m.insert(
                new_version,
                Arc::new(aead_key(meta.record.algorithm, data_key)?),
            );
        }
        s.metrics.rotations.fetch_add(1, Ordering::Relaxed);
        s.changed(&self.name);
        self.reload().await?;
        // The old version's block must not be used for the new version: park an
        // empty one, give back what the old one did not use, then install the
        // new version's first block if one was reserved.
        let sealer = self.version_sealer(new_version).await?;
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
    pub(super) async fn adopt_current_primary(&self) -> Result<u32> {
        self.reload().await?;
        let meta = self.meta.load_full();
        let version = meta.record.primary_version;
        let created_at = meta
            .versions
            .get(&version)
            .map(|v| v.created_at)
            .unwrap_or_else(|| self.shared.clock.now());
        let sealer = self.version_sealer(version).await?;
        let old = self.park(version, sealer, created_at);
        self.give_back(&old).await?;
        Ok(version)
    }

    /// Re-reads the keyring from the store; if its primary version moved (a
    /// rotation elsewhere), stops sealing under the old one at once (the next seal
    /// reserves a block for the new primary).
    pub(super) async fn refresh(&self) -> Result<()> {
        let _g = self.slow.lock().await;
        let before = self.meta.load().record.policy;
        self.reload().await?;
        let p = self.primary.load_full();
        let meta = self.meta.load();
        if meta.record.state == KeyringState::Deleted {
            // Erased elsewhere: its key leaves this instance's memory too.
            drop(meta);
            return if p.version == 0 {
                Ok(())
            } else {
                self.forget_primary().await
            };
        }
        let moved = p.version != meta.record.primary_version;
        if p.version == 0 || (!moved && before == meta.record.policy) {
            return Ok(());
        }
        // A rotation elsewhere, or a new policy whose budget the live block was
        // not reserved under: stop sealing from it now.
        let sealer = p.sealer.clone();
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
    pub(super) async fn catch_up(&self) -> Result<()> {
        let asked = std::time::Instant::now();
        let _g = self.catch_up.lock().await;
        let last = *self.last_catch_up.lock();
        if let Some(started) = last {
            if started >= asked {
                return Ok(());
            }
            let next = started + CATCH_UP_INTERVAL;
            tokio::time::sleep_until(next.into()).await;
        }
        {
            let mut t = self.last_catch_up.lock();
            *t = Some(std::time::Instant::now());
        }
        self.shared
            .metrics
            .catch_ups
            .fetch_add(1, Ordering::Relaxed);
        self.refresh().await
    }

    /// Re-reads metadata from the store.
    pub(super) async fn reload(&self) -> Result<()> {
        let s = &self.shared;
        // The keyring and its versions are two reads; a rotation committed by
        // another instance between them tears the pair (the primary named by one
        // is not active in the other). Read again until they agree, a few times:
        // a primary that stays inactive (revoked) is what the store holds.
        let mut attempts = 0;
        let (record, versions) = loop {
            attempts += 1;
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
            let agree = versions
                .get(&record.primary_version)
                .is_some_and(|v| v.state == VersionState::Active);
            if agree || attempts >= RELOAD_ATTEMPTS {
                break (record, versions);
            }
        };
        // Forget unwrapped keys that may no longer open (or verify) anything.
        let live = |v: &u32| {
            versions.get(v).is_some_and(|r| {
                !matches!(r.state, VersionState::Destroyed | VersionState::Revoked)
            })
        };
        self.keys.write().retain(|v, _| live(v));
        self.typed.write().retain(|v, _| live(v));
        self.convergent.write().retain(|v, _| live(v));
        self.set_meta(Meta { record, versions });
        Ok(())
    }

    pub(super) fn info(&self) -> KeyringInfo {
        let m = self.meta.load();
        KeyringInfo {
            name: m.record.name.clone(),
            algorithm: m.record.algorithm.name().into(),
            primary_version: m.record.primary_version,
            min_decrypt_version: m.record.min_decrypt_version,
            policy: m.record.policy,
            created_at: m.record.created_at,
            state: m.record.state,
            deletion_at: m.record.deletion_at,
            description: m.record.description.clone(),
            tags: m.record.tags.clone(),
            exportable: m.record.exportable,
            convergent: m.record.convergent,
            resident: m.record.resident,
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
                    origin: v.origin,
                })
                .collect(),
        }
    }

    /// The minimum decrypt version the policy requires at `now`.
    pub(super) fn required_minimum(&self, now: UnixTime) -> u32 {
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
