//! Fleets and the device registry: fleet issuing keys and factory provisioning.
//!
//! A fleet has an Ed25519 issuing key (its seed wrapped by custody, context
//! `fleet:<name>/issuer`) that signs device credentials
//! ([`fleetkey_crypto::credential`]). Factory provisioning registers a device's
//! hardware identity and public keys (private keys are made on the device), issues
//! its **birth credential**, writes the manufacturing record and the audit entry in
//! one transaction, and is idempotent: the same hardware identity with the same
//! keys returns the existing registration.
//!
//! Registrations from concurrent requests are committed together (group commit): a
//! single writer task takes whatever is queued, up to [`MAX_GROUP`], and commits it
//! as one transaction with one disk flush, each item still succeeding or failing on
//! its own.
//!
//! Zero-touch onboarding: the device asks for a single-use challenge, signs
//! [`onboarding_message`] with its Ed25519 key and presents its birth credential;
//! the server verifies the credential under the fleet's key, matches it against the
//! registry, consumes the challenge, verifies the signature, moves the device to
//! `onboarded` and issues its **operational credential**. Decommissioning revokes
//! every credential of the device (in the same transaction as its audit entry) and
//! ends once the device's signed wipe receipt ([`wipe_receipt_message`]) verifies.
//!
//! Decommissioning also queues a `wipe` command signed by the fleet key
//! ([`commands`]); the wipe receipt ends it and erases the server's per-device
//! secrets. Configuration schemas and device configs live in [`config`] (pure) and
//! `device_config.rs`; credential rotation, the command queue, the rotation policy
//! and the factory reset in `rotation.rs`.

pub mod commands;
pub mod config;
pub mod constrained;
mod device_config;
pub mod downlink;
mod factory;
pub mod history;
pub mod lifecycle;
mod onboarding;
pub mod patterns;
mod rotation;
mod sessions;

pub use factory::{FactoryRequest, Provisioned};
use factory::{validate_keys, writer};
pub use onboarding::Challenge;
pub use rotation::RefusalCount;
pub use sessions::{SEEN_FLUSH, SEEN_WINDOWS};

pub use device_config::{
    ConfigUpdate, DeviceConfig, MigrationFailure, MigrationReport, SchemaInfo, Schemas,
};

use crate::audit::{AuditDraft, AuditEntry};
use crate::clock::SharedClock;
use crate::custody::Custody;
use crate::error::{Error, Result};
use crate::names::FleetName;
use crate::store::{
    CommandStore, DeviceRecord, FleetRecord, FleetStore, OnboardingStore, Registration,
    SchedulerStore, SessionStore, Store,
};
use fleetkey_crypto::{credential::DeviceKeys, ed25519::Ed25519Signer, secret::SecretBytes};
use parking_lot::RwLock;
use serde_json::json;
use std::collections::HashMap;
use std::sync::Arc;
use tokio::sync::{mpsc, oneshot};

/// How long an onboarding challenge stays valid, seconds.
pub const CHALLENGE_TTL_SECS: i64 = 120;

pub use fleetkey_wire::messages::{onboarding_message, wipe_receipt_message};

/// Most registrations committed in one transaction.
pub const MAX_GROUP: usize = 512;
/// Default lifetime of birth credentials: 20 years (the device's service life).
pub const DEFAULT_BIRTH_TTL_SECS: i64 = 20 * 365 * 86_400;
/// Longest hardware id, model, batch or station.
pub const MAX_FIELD: usize = 128;
/// Longest factory test results (JSON).
pub const MAX_TEST_RESULTS: usize = 16 * 1024;

/// What `fleets show` reports (no key material beyond the public key).
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema, serde::Deserialize)]
pub struct FleetInfo {
    /// Name.
    pub name: String,
    /// Issuing key id (COSE `kid`).
    pub issuer_key_id: String,
    /// Issuing Ed25519 public key, hex.
    pub issuer_public_key: String,
    /// Credential lifetime, seconds.
    pub credential_ttl_secs: i64,
    /// Operational credentials older than this are rotated (seconds), if set.
    pub credential_rotation_secs: Option<i64>,
    /// Creation time.
    pub created_at: i64,
}

impl From<&FleetRecord> for FleetInfo {
    fn from(f: &FleetRecord) -> Self {
        Self {
            name: f.name.clone(),
            issuer_key_id: f.issuer_key_id.clone(),
            issuer_public_key: hex::encode(&f.issuer_public),
            credential_ttl_secs: f.credential_ttl_secs,
            credential_rotation_secs: f.credential_rotation_secs,
            created_at: f.created_at,
        }
    }
}

type Job = (Registration, oneshot::Sender<Result<AuditEntry>>);

/// The fleet service: four parts by responsibility, each over the narrow store
/// trait it needs, sharing one `Core` (caches of issuing keys and config
/// schemas, custody, the clock, the key directory).
pub struct FleetService {
    core: Arc<Core>,
    scheduler: Arc<dyn SchedulerStore>,
    /// Fleets, devices, factory provisioning and device configuration.
    pub registry: Registry,
    /// Challenges, credentials, claim codes, the life cycle, constrained devices.
    pub onboarding: Onboarding,
    /// Commands to devices: credential rotation, receipts, the rotation policy,
    /// factory reset.
    pub commands: Commands,
    /// Device sessions as the device listener records them.
    pub sessions: DeviceSessions,
    /// Devices' histories (audit entries and sessions).
    pub history: history::History,
}

/// What the parts of the fleet service share.
pub(crate) struct Core {
    /// Fleets and devices (every part reads them; writes go through `apply`).
    store: Arc<dyn FleetStore>,
    /// The custody identity the store records (why a wrapped key may not open).
    custody_store: Arc<dyn crate::store::CustodyStore>,
    custody: Arc<dyn Custody>,
    clock: SharedClock,
    issuers: RwLock<HashMap<String, Arc<(FleetRecord, Ed25519Signer)>>>,
    schemas: RwLock<HashMap<String, Schemas>>,
    directory: crate::directory::Directory,
    /// Told the name of every fleet whose cached record or schemas this instance
    /// changed, after the commit ([`FleetService::on_change`]).
    announce: crate::coord::Announce,
}

/// Fleets, their devices, factory provisioning and device configuration.
#[derive(Clone)]
pub struct Registry {
    core: Arc<Core>,
    queue: mpsc::Sender<Job>,
}

/// Zero-touch onboarding, claim codes, life-cycle transitions and
/// decommissioning, and constrained-profile devices.
pub struct Onboarding {
    core: Arc<Core>,
    store: Arc<dyn OnboardingStore>,
    registry: Registry,
}

/// Commands to devices: credential rotation and the rotation policy, config
/// receipts, factory reset.
pub struct Commands {
    core: Arc<Core>,
    store: Arc<dyn CommandStore>,
}

/// Device sessions: which device a Noise key may open a session for, resumption,
/// telemetry positions, session records and refusals in the audit log.
pub struct DeviceSessions {
    core: Arc<Core>,
    store: Arc<dyn SessionStore>,
    /// Session pattern lists read recently (`patterns.rs`).
    patterns: patterns::PatternCache,
    /// Devices heard from since the last flush, and when (`sessions.rs`).
    seen: parking_lot::Mutex<std::collections::HashMap<String, crate::clock::UnixTime>>,
}

pub(crate) fn invalid(what: &'static str, why: impl Into<String>) -> Error {
    Error::Invalid {
        what,
        why: why.into(),
    }
}

fn field(what: &'static str, v: &str) -> Result<()> {
    if v.is_empty() || v.len() > MAX_FIELD || v.chars().any(char::is_control) {
        return Err(invalid(
            what,
            format!("1 to {MAX_FIELD} printable characters"),
        ));
    }
    Ok(())
}

/// The custody wrap context of a fleet's issuing key.
pub(crate) fn issuer_context(fleet: &str) -> String {
    format!("fleet:{fleet}/issuer")
}

impl FleetService {
    /// Starts the service and its registration writer. Needs a tokio runtime.
    pub fn new(store: Arc<dyn Store>, custody: Arc<dyn Custody>, clock: SharedClock) -> Arc<Self> {
        let (tx, rx) = mpsc::channel::<Job>(4 * MAX_GROUP);
        let directory =
            crate::directory::Directory::new(store.clone(), custody.clone(), clock.clone());
        tokio::spawn(writer(store.clone(), clock.clone(), rx));
        let core = Arc::new(Core {
            store: store.clone(),
            custody_store: store.clone(),
            custody,
            clock,
            issuers: RwLock::new(HashMap::new()),
            schemas: RwLock::new(HashMap::new()),
            directory,
            announce: Default::default(),
        });
        let registry = Registry {
            core: core.clone(),
            queue: tx,
        };
        Arc::new(Self {
            onboarding: Onboarding {
                core: core.clone(),
                store: store.clone(),
                registry: registry.clone(),
            },
            commands: Commands {
                core: core.clone(),
                store: store.clone(),
            },
            sessions: DeviceSessions {
                core: core.clone(),
                store: store.clone(),
                seen: parking_lot::Mutex::default(),
                patterns: parking_lot::Mutex::default(),
            },
            history: history::History {
                core: core.clone(),
                store: store.clone(),
            },
            registry,
            scheduler: store,
            core,
        })
    }

    /// Sets what is told the name of every fleet whose record or config schemas
    /// change (schema versions, rotation policy, static-key permission), after the
    /// commit. The server publishes it so other instances drop their cached copy
    /// ([`FleetService::forget_fleet`]); set once (later calls are ignored).
    pub fn on_change(&self, announce: crate::coord::Announcer) {
        self.core.announce.set(announce);
    }

    /// Drops what is cached about fleet `name` (its record and issuing key, its
    /// compiled config schemas); the next use re-reads the store.
    pub fn forget_fleet(&self, name: &str) {
        self.core.forget_fleet(name);
    }

    /// [`FleetService::forget_fleet`] for every fleet (announcements were lost).
    pub fn forget_all(&self) {
        self.core.issuers.write().clear();
        self.core.schemas.write().clear();
    }

    /// The service clock's time now.
    pub fn now(&self) -> crate::clock::UnixTime {
        self.core.clock.now()
    }

    /// The key directory (records of this fleet service's devices).
    pub fn directory(&self) -> &crate::directory::Directory {
        &self.core.directory
    }

    /// Whether this instance runs the scheduled jobs now (one instance at a time
    /// on a shared database; always on the embedded store).
    pub async fn leads_scheduler(&self) -> Result<bool> {
        self.scheduler.scheduler_leader().await
    }
}

impl Core {
    /// The state of device `id` changed here (a transition, decommissioning, a
    /// factory reset): constrained-device frames see it from the next frame on,
    /// on this instance and every other.
    fn device_changed(&self, id: &str) {
        self.announce
            .send(crate::coord::Invalidation::Device { id: id.to_owned() });
    }

    /// A change to fleet `name` committed here: drop this instance's cached copy
    /// and announce it.
    fn changed(&self, name: &str) {
        self.forget_fleet(name);
        self.announce.send(crate::coord::Invalidation::Fleet {
            name: name.to_owned(),
        });
    }

    fn forget_fleet(&self, name: &str) {
        self.issuers.write().remove(name);
        self.schemas.write().remove(name);
    }

    /// A fleet's record and unwrapped issuing key (cached).
    async fn issuer(&self, fleet: &str) -> Result<Arc<(FleetRecord, Ed25519Signer)>> {
        if let Some(i) = self.issuers.read().get(fleet).cloned() {
            return Ok(i);
        }
        let record = self
            .store
            .fleet(fleet)
            .await?
            .ok_or_else(|| Error::FleetNotFound(fleet.to_owned()))?;
        let seed = match self
            .custody
            .unwrap(&record.issuer_wrapped, &issuer_context(fleet))
            .await
        {
            Ok(seed) => seed,
            Err(e) => {
                return Err(crate::store::explain_unwrap(self.custody_store.as_ref(), e).await);
            }
        };
        let signer = Ed25519Signer::from_seed(seed)?;
        let entry = Arc::new((record, signer));
        self.issuers.write().insert(fleet.to_owned(), entry.clone());
        Ok(entry)
    }

    /// One device.
    async fn device(&self, id: &str) -> Result<DeviceRecord> {
        self.store
            .device(id)
            .await?
            .ok_or_else(|| Error::DeviceNotFound(id.to_owned()))
    }
}

impl Registry {
    /// Creates a fleet with a fresh issuing key.
    pub async fn create_fleet(
        &self,
        actor: &str,
        name: &FleetName,
        credential_ttl_secs: Option<i64>,
    ) -> Result<FleetInfo> {
        let name = name.as_str();
        let ttl = credential_ttl_secs.unwrap_or(365 * 86_400);
        if !(3600..=DEFAULT_BIRTH_TTL_SECS).contains(&ttl) {
            return Err(invalid("credential ttl", "between 1 hour and 20 years"));
        }
        let seed = SecretBytes::<32>::random()?;
        let signer = Ed25519Signer::from_seed(seed.clone())?;
        let kid_bytes: [u8; 8] = fleetkey_crypto::rand::array()?;
        let now = self.core.clock.now();
        let record = FleetRecord {
            name: name.to_owned(),
            issuer_key_id: format!("fleet:{name}/{}", hex::encode(kid_bytes)),
            issuer_wrapped: self.core.custody.wrap(&seed, &issuer_context(name)).await?,
            issuer_public: signer.public_key().to_vec(),
            credential_ttl_secs: ttl,
            credential_rotation_secs: None,
            created_at: now,
        };
        self.core
            .store
            .apply(
                crate::store::Change::CreateFleet(record.clone()),
                AuditDraft::new(
                    actor,
                    "fleet.create",
                    format!("fleet:{name}"),
                    json!({ "issuer_key_id": record.issuer_key_id, "credential_ttl_secs": ttl }),
                ),
                now,
            )
            .await?;
        Ok(FleetInfo::from(&record))
    }

    /// A fleet's public information.
    pub async fn fleet(&self, name: &str) -> Result<FleetInfo> {
        Ok(FleetInfo::from(&self.core.issuer(name).await?.0))
    }

    /// One device.
    pub async fn device(&self, id: &str) -> Result<DeviceRecord> {
        self.core.device(id).await
    }

    /// A page of fleets by name, after `after`.
    pub async fn fleets(&self, after: &str, limit: u32) -> Result<Vec<FleetInfo>> {
        let list = self.core.store.fleets(after, limit).await?;
        Ok(list.iter().map(FleetInfo::from).collect())
    }

    /// A page of a fleet's devices that pass `filter`, by id, after `after`.
    pub async fn devices(
        &self,
        fleet: &str,
        filter: &crate::store::DeviceFilter,
        after: &str,
        limit: u32,
    ) -> Result<Vec<DeviceRecord>> {
        self.core.issuer(fleet).await?;
        self.core.store.devices(fleet, filter, after, limit).await
    }

    /// A fleet's devices counted by state and profile, with how many were heard
    /// from within each of [`sessions::SEEN_WINDOWS`] (as stored: up to one flush
    /// behind) and how many never.
    pub async fn device_counts(&self, fleet: &str) -> Result<Vec<crate::store::DeviceCount>> {
        self.core.issuer(fleet).await?;
        let now = self.core.clock.now();
        let since = sessions::SEEN_WINDOWS.map(|(_, secs)| now.saturating_sub(secs));
        self.core.store.device_counts(fleet, since).await
    }

    /// Per fleet, `(fleet, expiring, expired)`: operational credentials that
    /// expire within [`CREDENTIAL_WARNING_SECS`] and that have expired, over
    /// the devices that hold one (onboarded, active, rotating).
    pub async fn credential_expiry(&self) -> Result<Vec<(String, i64, i64)>> {
        let now = self.core.clock.now();
        self.core
            .store
            .credential_expiry_counts(now, now.saturating_add(CREDENTIAL_WARNING_SECS))
            .await
    }
}

/// How long before its expiry a device's operational credential counts as
/// expiring (`fleetkey_device_credentials_expiring`): 14 days.
pub const CREDENTIAL_WARNING_SECS: i64 = 14 * 86_400;

/// The registered public keys of a device.
pub(crate) fn device_keys(d: &DeviceRecord) -> Result<DeviceKeys> {
    let k32 = |v: &[u8]| -> Result<[u8; 32]> {
        v.try_into()
            .map_err(|_| Error::Corrupt("stored device key is not 32 bytes".into()))
    };
    Ok(DeviceKeys {
        x25519: k32(&d.x25519)?,
        ed25519: k32(&d.ed25519)?,
        ml_kem_768: d.ml_kem_768.clone(),
        ml_dsa_65: d.ml_dsa_65.clone(),
    })
}
