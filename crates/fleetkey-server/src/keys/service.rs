//! [`KeyService`]: the keyrings of one instance: creating, loading and caching
//! them, rotation and revocation, policies, the scheduler's tick, audit export and
//! checkpoints.

use super::keyring::{Keyring, Meta, Primary, mint_version, placeholder_sealer};
use super::nonce::NonceBlock;
use super::{
    KeyConfig, KeyMetrics, KeyringInfo, KeyringOptions, PolicyAction, PolicyRun, Shared,
    validate_name, validate_policy,
};
use crate::audit::{AuditDraft, AuditEntry, Checkpoint};
use crate::clock::SharedClock;
use crate::custody::Custody;
use crate::error::{Error, Result};
use crate::key_type::KeyType;
use crate::names::KeyringName;
use crate::store::{Change, KeyringRecord, KeyringState, Policy, Store};
use arc_swap::ArcSwap;
use fleetkey_crypto::{aead::Algorithm, secret::SecretBytes};
use serde_json::json;
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

/// The key service of one instance.
pub struct KeyService {
    pub(super) shared: Arc<Shared>,
    rings: parking_lot::RwLock<HashMap<String, Arc<Keyring>>>,
    /// Serialises loading a keyring the first time.
    loading: tokio::sync::Mutex<()>,
    /// Aliases resolved so far (alias → keyring); an alias change announced by
    /// any instance drops its entry.
    pub(super) aliases: parking_lot::RwLock<HashMap<String, String>>,
    /// The service's own X-Wing identities (import recipients).
    pub(super) directory: crate::directory::Directory,
    /// How far the stored audit chain was verified ([`KeyService::verify_audit`]);
    /// one walk at a time.
    audit_progress: tokio::sync::Mutex<crate::audit::status::Progress>,
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
        let directory =
            crate::directory::Directory::new(store.clone(), custody.clone(), clock.clone());
        Ok(Self {
            directory,
            shared: Arc::new(Shared {
                audit: store.clone(),
                custody_store: store.clone(),
                store,
                custody,
                clock,
                config,
                instance,
                metrics: KeyMetrics::default(),
                announce: Default::default(),
            }),
            rings: parking_lot::RwLock::new(HashMap::new()),
            loading: tokio::sync::Mutex::new(()),
            audit_progress: Default::default(),
            aliases: Default::default(),
        })
    }

    /// Sets what is told the name of each keyring this instance changes, once the
    /// change is committed: every rotation (manual, by the use budget, by age, by a
    /// revocation), revocation, policy change and minimum-version change. The
    /// server publishes it to the other instances; set once (later calls are
    /// ignored).
    pub fn on_change(&self, announce: crate::coord::Announcer) {
        self.shared.announce.set(announce);
    }

    fn cached_rings(&self) -> Vec<Arc<Keyring>> {
        self.rings.read().values().cloned().collect()
    }

    /// Operational counters.
    pub fn metrics(&self) -> &KeyMetrics {
        &self.shared.metrics
    }

    /// Audit entries with `seq > after`, at most `limit`, oldest first.
    pub async fn audit_entries(&self, after: u64, limit: u32) -> Result<Vec<AuditEntry>> {
        self.shared.audit.audit_entries(after, limit).await
    }

    /// Creates a keyring with version 1.
    pub async fn create(
        &self,
        actor: &str,
        name: &KeyringName,
        algorithm: impl Into<KeyType>,
        policy: Policy,
    ) -> Result<KeyringInfo> {
        let options = KeyringOptions::default();
        self.create_with(actor, name, algorithm.into(), policy, options)
            .await
    }

    /// Creates a keyring with version 1 and `options` (description and tags;
    /// whether it is exportable and convergent, fixed for its life).
    pub async fn create_with(
        &self,
        actor: &str,
        name: &KeyringName,
        algorithm: KeyType,
        policy: Policy,
        options: KeyringOptions,
    ) -> Result<KeyringInfo> {
        let name = name.as_str();
        validate_name(name)?;
        validate_policy(&policy)?;
        super::validate_details(&options.description, &options.tags)?;
        if options.convergent && algorithm != KeyType::Aead(Algorithm::Aes256GcmSiv) {
            return Err(Error::Invalid {
                what: "convergent",
                why: "only aes-256-gcm-siv keyrings can be convergent".into(),
            });
        }
        if options.resident {
            super::resident::check_resident_options(
                algorithm,
                options.exportable,
                options.convergent,
                self.shared.custody.as_ref(),
            )?;
        }
        let s = &self.shared;
        let now = s.clock.now();
        let (first, _) = mint_version(s, name, 1, now, None, options.resident).await?;
        let audit = json!({
            "algorithm": algorithm.name(), "policy": policy,
            "description": options.description, "tags": options.tags,
            "exportable": options.exportable, "convergent": options.convergent,
            "resident": options.resident,
        });
        let record = KeyringRecord {
            description: options.description,
            tags: options.tags,
            exportable: options.exportable,
            convergent: options.convergent,
            resident: options.resident,
            ..KeyringRecord::new(name, algorithm, policy, now)
        };
        let minted = options.resident.then(|| first.wrapped_key.clone());
        let created = s
            .store
            .apply(
                Change::CreateKeyring {
                    keyring: record,
                    first,
                },
                AuditDraft::new(actor, "keyring.create", format!("keyring:{name}"), audit),
                now,
            )
            .await;
        if let Err(e) = created {
            super::resident::discard_minted(s.custody.as_ref(), minted).await;
            return Err(e);
        }
        Ok(self.keyring(name).await?.info())
    }

    /// A handle to a keyring (cached), by its name or an alias.
    pub async fn keyring(&self, name: &str) -> Result<Arc<Keyring>> {
        let name = &*self.resolve(name).await?;
        if let Some(r) = self.rings.read().get(name).cloned() {
            return Ok(r);
        }
        let _loading = self.loading.lock().await;
        if let Some(r) = self.rings.read().get(name).cloned() {
            return Ok(r);
        }
        let key_id = validate_name(name).map_err(|_| Error::KeyringNotFound(name.to_owned()))?;
        let ring = Arc::new(Keyring {
            name: name.to_owned(),
            key_id,
            shared: self.shared.clone(),
            primary: ArcSwap::from_pointee(Primary {
                version: 0,
                sealer: placeholder_sealer(&key_id)?,
                block: NonceBlock::empty(),
                uses_before: 0,
                created_at: 0,
                counted: Default::default(),
                prefetch: parking_lot::Mutex::new(None),
            }),
            meta: ArcSwap::from_pointee(Meta {
                record: KeyringRecord {
                    primary_version: 0,
                    min_decrypt_version: 0,
                    ..KeyringRecord::new(
                        name,
                        KeyType::Aead(Algorithm::Aes256Gcm),
                        Policy::default(),
                        0,
                    )
                },
                versions: BTreeMap::new(),
            }),
            keys: parking_lot::RwLock::new(HashMap::new()),
            typed: parking_lot::RwLock::new(HashMap::new()),
            convergent: parking_lot::RwLock::new(HashMap::new()),
            slow: tokio::sync::Mutex::new(()),
            catch_up: tokio::sync::Mutex::new(()),
            last_catch_up: parking_lot::Mutex::new(None),
            unflushed: parking_lot::Mutex::new(Vec::new()),
            seal_mode: std::sync::atomic::AtomicU8::new(super::keyring::SEAL_CHECK),
        });
        ring.reload().await?;
        {
            let mut m = self.rings.write();
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

    /// One keyring with its versions (fresh from the store). Seal counts include
    /// this instance's seals up to now (the live nonce block's too, written
    /// first); other instances' arrive with their next flush.
    pub async fn show(&self, name: &str) -> Result<KeyringInfo> {
        let ring = self.keyring(name).await?;
        ring.retire_block(&ring.primary.load_full());
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
        ring.require_manageable()?;
        Ok(ring.rotate_locked(actor, "manual", false).await?.0)
    }

    /// Emergency revocation: opening with `version` fails at once with
    /// [`Error::Revoked`]. Revoking the primary rotates first.
    pub async fn revoke(&self, actor: &str, name: &str, version: u32) -> Result<()> {
        let ring = self.keyring(name).await?;
        let name = ring.name.as_str();
        let _g = ring.slow.lock().await;
        ring.require_manageable()?;
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
        let name = ring.name.as_str();
        let _g = ring.slow.lock().await;
        ring.require_manageable()?;
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
            let sealer = p.sealer.clone();
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
        let name = ring.name.as_str();
        ring.require(crate::key_type::Purpose::Encrypt)?;
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
            let done = match rec.state {
                KeyringState::Deleted => continue,
                KeyringState::PendingDeletion => {
                    self.erase_if_due(actor, &rec.name, &mut run.actions).await
                }
                KeyringState::Enabled | KeyringState::Disabled => {
                    self.apply_policy(actor, &rec.name, &mut run.actions).await
                }
            };
            if let Err(e) = done {
                tracing::error!(keyring = %rec.name, error = %e, "rotation policy not applied");
                run.failures.push(format!("{}: {e}", rec.name));
            }
        }
        Ok(run)
    }

    /// [`KeyService::run_policies`] for one keyring; appends what it did.
    async fn apply_policy(
        &self,
        actor: &str,
        name: &str,
        actions: &mut Vec<PolicyAction>,
    ) -> Result<()> {
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
        // A disabled keyring is not used, so it is not rotated by age.
        let enabled = meta.record.state == KeyringState::Enabled;
        if enabled && now >= primary_created.saturating_add(meta.record.policy.rotation_period_secs)
        {
            let (v, _) = ring.rotate_locked(actor, "period", false).await?;
            actions.push(PolicyAction::Rotated {
                keyring: name.to_owned(),
                version: v,
            });
        }
        let now = self.shared.clock.now();
        let min = ring.required_minimum(now);
        if min > ring.meta.load().record.min_decrypt_version {
            self.raise_minimum_locked(&ring, actor, min).await?;
            actions.push(PolicyAction::MinimumRaised {
                keyring: name.to_owned(),
                min,
            });
        }
        Ok(())
    }

    /// Keyring `name` changed on another instance (rotation, revocation, policy):
    /// re-reads it, and if its primary version moved, stops sealing under the old
    /// one (the next seal reserves a block for the new primary). Not cached here:
    /// nothing to do.
    pub async fn refresh(&self, name: &str) -> Result<()> {
        self.forget_aliases(name);
        let Some(r) = self.rings.read().get(name).cloned() else {
            return Ok(());
        };
        r.refresh().await
    }

    /// [`KeyService::refresh`] for every cached keyring.
    pub async fn refresh_all(&self) -> Result<()> {
        self.aliases.write().clear();
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
            let sealer = p.sealer.clone();
            let old = r.park(p.version, sealer, p.created_at);
            r.give_back(&old).await?;
            r.flush_usage().await?;
        }
        Ok(())
    }

    /// Signs the audit chain's head and stores the checkpoint.
    pub async fn checkpoint(&self) -> Result<Option<Checkpoint>> {
        let s = &self.shared;
        crate::audit::checkpoint(s.audit.as_ref(), s.custody.as_ref(), s.clock.now()).await
    }

    /// Verifies the stored audit chain on from where the last call stopped
    /// (from genesis when `full`) and checks the newest checkpoint with the
    /// service's public key ([`crate::audit::status`]).
    pub async fn verify_audit(&self, full: bool) -> Result<crate::audit::status::ChainStatus> {
        let mut progress = self.audit_progress.lock().await;
        crate::audit::status::verify_stored(
            self.shared.audit.as_ref(),
            &self.shared.custody.public_key(),
            &mut progress,
            full,
        )
        .await
    }

    /// The oldest stored checkpoint at or after entry `seq`.
    pub async fn checkpoint_covering(&self, seq: u64) -> Result<Option<Checkpoint>> {
        self.shared.audit.checkpoint_covering(seq).await
    }

    /// Writes the whole audit log as JSON lines, ending with a fresh checkpoint.
    /// After a custody move's entry, the checkpoint that hands signing over
    /// (the first covering it) is written after the entry it names.
    pub async fn export_audit(&self, out: &mut dyn std::io::Write) -> Result<u64> {
        let checkpoint = self.checkpoint().await?;
        let mut after = 0u64;
        let mut n = 0u64;
        let io = |e: std::io::Error| Error::Io {
            path: "audit export".into(),
            source: e,
        };
        let upto = checkpoint.as_ref().map(|c| c.seq).unwrap_or(0);
        let mut handover: Option<Checkpoint> = None;
        while after < upto {
            let batch = self.shared.audit.audit_entries(after, 1000).await?;
            if batch.is_empty() {
                break;
            }
            for e in batch {
                if e.seq > upto {
                    break;
                }
                after = e.seq;
                let moved = crate::audit::HANDOVER_ACTIONS.contains(&e.action.as_str());
                let seq = e.seq;
                let line = crate::audit::verify::ExportLine::Entry(e).to_line();
                writeln!(out, "{line}").map_err(io)?;
                n += 1;
                if moved && handover.is_none() {
                    handover = self
                        .checkpoint_covering(seq)
                        .await?
                        .filter(|c| c.seq < upto);
                }
                if let Some(c) = handover.take_if(|c| c.seq == seq) {
                    let line = crate::audit::verify::ExportLine::Checkpoint(c).to_line();
                    writeln!(out, "{line}").map_err(io)?;
                }
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
            return Err(Error::Internal("custody round trip failed".into()));
        }
        Ok(())
    }

    /// The service's composite public key (for `audit verify`).
    pub fn public_key(&self) -> Vec<u8> {
        self.shared.custody.public_key()
    }

    /// The custody under the keyrings (what wraps other service secrets too).
    pub fn custody(&self) -> Arc<dyn Custody> {
        self.shared.custody.clone()
    }

    /// Custody's backend name (`local`, `pkcs11`), for `/readyz`.
    pub fn custody_backend(&self) -> &'static str {
        self.shared.custody.backend()
    }

    /// Custody's call histogram, when custody is metered.
    pub fn custody_collector(&self) -> Option<prometheus::HistogramVec> {
        self.shared.custody.collector()
    }
}
