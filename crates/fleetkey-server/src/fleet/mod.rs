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
pub mod lifecycle;
mod rotation;

pub use rotation::RefusalCount;

pub use device_config::{
    ConfigUpdate, DeviceConfig, MigrationFailure, MigrationReport, SchemaInfo, Schemas,
};

use crate::audit::{AuditDraft, AuditEntry};
use crate::clock::SharedClock;
use crate::custody::Custody;
use crate::error::{Error, Result};
use crate::store::{
    CommandKind, DeviceRecord, DeviceState, FleetRecord, ManufacturingRecord, Registration, Store,
    StoredConfig,
};
use fleetkey_crypto::record::IdentityKind;
use fleetkey_crypto::{
    credential::{self, Claims, DeviceKeys, Issuer, Role},
    ed25519::Ed25519Signer,
    secret::SecretBytes,
};
use serde_json::json;
use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use tokio::sync::{mpsc, oneshot};

/// How long an onboarding challenge stays valid, seconds.
pub const CHALLENGE_TTL_SECS: i64 = 120;

pub use fleetkey_wire::messages::{onboarding_message, wipe_receipt_message};

/// A fresh onboarding challenge.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Challenge {
    /// The device it is for.
    pub device_id: String,
    /// 32 random bytes.
    pub nonce: [u8; 32],
    /// Issue time (part of the signed message).
    pub issued_at: i64,
    /// Expiry.
    pub expires_at: i64,
}

/// Most registrations committed in one transaction.
pub const MAX_GROUP: usize = 512;
/// Default lifetime of birth credentials: 20 years (the device's service life).
pub const DEFAULT_BIRTH_TTL_SECS: i64 = 20 * 365 * 86_400;
/// Longest hardware id, model, batch or station.
pub const MAX_FIELD: usize = 128;
/// Longest factory test results (JSON).
pub const MAX_TEST_RESULTS: usize = 16 * 1024;

/// What a factory jig sends.
#[derive(Debug, Clone)]
pub struct FactoryRequest {
    /// Target fleet.
    pub fleet: String,
    /// Chip UID, serial or MAC; unique across all fleets.
    pub hardware_id: String,
    /// Model.
    pub model: String,
    /// Production batch.
    pub batch: String,
    /// Jig or station.
    pub station: String,
    /// The device's public keys.
    pub keys: DeviceKeys,
    /// Factory test results (any JSON).
    pub test_results: serde_json::Value,
}

/// The outcome of provisioning.
#[derive(Debug, Clone)]
pub struct Provisioned {
    /// The registered device.
    pub device: DeviceRecord,
    /// False when this was a retry of an earlier, identical registration.
    pub created: bool,
}

/// What `fleets show` reports (no key material beyond the public key).
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
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

/// Fleets and devices.
pub struct FleetService {
    store: Arc<dyn Store>,
    custody: Arc<dyn Custody>,
    clock: SharedClock,
    issuers: RwLock<HashMap<String, Arc<(FleetRecord, Ed25519Signer)>>>,
    schemas: RwLock<HashMap<String, Schemas>>,
    queue: mpsc::Sender<Job>,
    directory: crate::directory::Directory,
    /// Told the name of every fleet whose cached record or schemas this instance
    /// changed, after the commit ([`FleetService::on_change`]).
    announce: std::sync::OnceLock<crate::keys::Announcer>,
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

fn issuer_context(fleet: &str) -> String {
    format!("fleet:{fleet}/issuer")
}

impl FleetService {
    /// Starts the service and its registration writer. Needs a tokio runtime.
    pub fn new(store: Arc<dyn Store>, custody: Arc<dyn Custody>, clock: SharedClock) -> Arc<Self> {
        let (tx, rx) = mpsc::channel::<Job>(4 * MAX_GROUP);
        let directory =
            crate::directory::Directory::new(store.clone(), custody.clone(), clock.clone());
        tokio::spawn(writer(store.clone(), clock.clone(), rx));
        Arc::new(Self {
            store,
            custody,
            clock,
            issuers: RwLock::new(HashMap::new()),
            schemas: RwLock::new(HashMap::new()),
            queue: tx,
            directory,
            announce: std::sync::OnceLock::new(),
        })
    }

    /// Sets what is told the name of every fleet whose record or config schemas
    /// change (schema versions, rotation policy, static-key permission), after the
    /// commit. The server publishes it so other instances drop their cached copy
    /// ([`FleetService::forget_fleet`]); set once (later calls are ignored).
    pub fn on_change(&self, announce: crate::keys::Announcer) {
        let _ = self.announce.set(announce);
    }

    /// A change to fleet `name` committed here: drop this instance's cached copy
    /// and announce it.
    fn changed(&self, name: &str) {
        self.forget_fleet(name);
        if let Some(f) = self.announce.get() {
            f(name);
        }
    }

    /// Drops what is cached about fleet `name` (its record and issuing key, its
    /// compiled config schemas); the next use re-reads the store.
    pub fn forget_fleet(&self, name: &str) {
        if let Ok(mut m) = self.issuers.write() {
            m.remove(name);
        }
        if let Ok(mut m) = self.schemas.write() {
            m.remove(name);
        }
    }

    /// [`FleetService::forget_fleet`] for every fleet (announcements were lost).
    pub fn forget_all(&self) {
        if let Ok(mut m) = self.issuers.write() {
            m.clear();
        }
        if let Ok(mut m) = self.schemas.write() {
            m.clear();
        }
    }

    /// Custody (for the constrained profile's factory secrets).
    pub(crate) fn custody(&self) -> &Arc<dyn Custody> {
        &self.custody
    }

    /// The store (for the device listener's session records).
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    /// The service clock's time now.
    pub fn now(&self) -> crate::clock::UnixTime {
        self.clock.now()
    }

    /// The key directory (records of this fleet service's devices).
    pub fn directory(&self) -> &crate::directory::Directory {
        &self.directory
    }

    /// Creates a fleet with a fresh issuing key.
    pub async fn create_fleet(
        &self,
        actor: &str,
        name: &str,
        credential_ttl_secs: Option<i64>,
    ) -> Result<FleetInfo> {
        crate::names::validate("fleet name", name)?;
        let ttl = credential_ttl_secs.unwrap_or(365 * 86_400);
        if !(3600..=DEFAULT_BIRTH_TTL_SECS).contains(&ttl) {
            return Err(invalid("credential ttl", "between 1 hour and 20 years"));
        }
        let seed = SecretBytes::<32>::random()?;
        let signer = Ed25519Signer::from_seed(seed.clone())?;
        let kid_bytes: [u8; 8] = fleetkey_crypto::rand::array()?;
        let now = self.clock.now();
        let record = FleetRecord {
            name: name.to_owned(),
            issuer_key_id: format!("fleet:{name}/{}", hex::encode(kid_bytes)),
            issuer_wrapped: self.custody.wrap(&seed, &issuer_context(name)).await?,
            issuer_public: signer.public_key().to_vec(),
            credential_ttl_secs: ttl,
            credential_rotation_secs: None,
            created_at: now,
        };
        self.store
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

    /// A fleet's record and unwrapped issuing key (cached).
    async fn issuer(&self, fleet: &str) -> Result<Arc<(FleetRecord, Ed25519Signer)>> {
        if let Some(i) = self.issuers.read().ok().and_then(|m| m.get(fleet).cloned()) {
            return Ok(i);
        }
        let record = self
            .store
            .fleet(fleet)
            .await?
            .ok_or_else(|| Error::FleetNotFound(fleet.to_owned()))?;
        let seed = self
            .custody
            .unwrap(&record.issuer_wrapped, &issuer_context(fleet))
            .await?;
        let signer = Ed25519Signer::from_seed(seed)?;
        let entry = Arc::new((record, signer));
        if let Ok(mut m) = self.issuers.write() {
            m.insert(fleet.to_owned(), entry.clone());
        }
        Ok(entry)
    }

    /// A fleet's public information.
    pub async fn fleet(&self, name: &str) -> Result<FleetInfo> {
        Ok(FleetInfo::from(&self.issuer(name).await?.0))
    }

    /// Registers a device from the factory and issues its birth credential.
    pub async fn provision(&self, actor: &str, req: FactoryRequest) -> Result<Provisioned> {
        self.provision_with(actor, req, None).await
    }

    /// Registers a device, with the wrapped factory secret of a constrained one.
    pub(crate) async fn provision_with(
        &self,
        actor: &str,
        req: FactoryRequest,
        secret: Option<crate::store::DeviceSecret>,
    ) -> Result<Provisioned> {
        field("hardware id", &req.hardware_id)?;
        field("model", &req.model)?;
        field("batch", &req.batch)?;
        field("station", &req.station)?;
        validate_keys(&req.keys)?;
        let test_results = serde_json::to_string(&req.test_results)
            .map_err(|e| invalid("test results", e.to_string()))?;
        if test_results.len() > MAX_TEST_RESULTS {
            return Err(invalid("test results", "larger than 16 KiB"));
        }
        let issuer = self.issuer(&req.fleet).await?;
        let schemas = self.schemas(&req.fleet).await?;
        let now = self.clock.now();
        let config = schemas.last().map(|s| StoredConfig {
            schema_version: s.version,
            revision: 1,
            config: s.defaults.to_string(),
            updated_at: now,
        });
        let id_bytes: [u8; 8] = fleetkey_crypto::rand::array()?;
        let device_id = format!("dev_{}", hex::encode(id_bytes));
        let (fleet_record, signer) = (&issuer.0, &issuer.1);
        let claims = Claims {
            issuer: format!("fleetkey:{}", fleet_record.name),
            device_id: device_id.clone(),
            fleet: fleet_record.name.clone(),
            hardware_id: req.hardware_id.clone(),
            role: Role::Birth,
            keys: req.keys.clone(),
            issued_at: now,
            expires_at: now.saturating_add(DEFAULT_BIRTH_TTL_SECS),
            credential_id: fleetkey_crypto::rand::array()?,
        };
        let birth = credential::issue(
            &claims,
            Issuer::Ed25519(signer),
            fleet_record.issuer_key_id.as_bytes(),
        )?;
        let device = DeviceRecord {
            id: device_id.clone(),
            fleet: req.fleet.clone(),
            hardware_id: req.hardware_id.clone(),
            state: DeviceState::Manufactured,
            model: req.model.clone(),
            x25519: req.keys.x25519.to_vec(),
            ed25519: req.keys.ed25519.to_vec(),
            ml_kem_768: req.keys.ml_kem_768.clone(),
            ml_dsa_65: req.keys.ml_dsa_65.clone(),
            birth_credential: birth,
            operational_credential_id: None,
            credential_issued_at: None,
            claimed_by: None,
            retired_hardware_id: None,
            profile: secret
                .as_ref()
                .map_or_else(|| "full".to_owned(), |s| s.profile.clone()),
            created_at: now,
            updated_at: now,
        };
        let audit = AuditDraft::new(
            actor,
            "device.provision",
            format!("device:{device_id}"),
            json!({ "fleet": req.fleet, "hardware_id": req.hardware_id, "model": req.model,
                    "batch": req.batch, "station": req.station,
                    "profile": secret.as_ref().map_or("full", |s| s.profile.as_str()) }),
        );
        let manufacturing = ManufacturingRecord {
            batch: req.batch.clone(),
            station: req.station.clone(),
            test_results,
        };
        let (reply, wait) = oneshot::channel();
        let registration = Registration {
            device: device.clone(),
            manufacturing,
            config,
            audit,
            secret,
        };
        self.queue
            .send((registration, reply))
            .await
            .map_err(|_| Error::Store("registration writer stopped".into()))?;
        match wait
            .await
            .map_err(|_| Error::Store("registration writer stopped".into()))?
        {
            Ok(_) => Ok(Provisioned {
                device,
                created: true,
            }),
            // Already registered (a retry, possibly racing the original) or a conflict.
            Err(e @ (Error::DeviceExists(_) | Error::DuplicateKey(_))) => {
                match self.store.device_by_hardware_id(&req.hardware_id).await? {
                    // The hardware id is taken: a retry, or a conflict on the id.
                    Some(existing) => same_registration(existing, &req),
                    // Otherwise a key belongs to another device.
                    None => Err(e),
                }
            }
            Err(e) => Err(e),
        }
    }

    /// Issues a single-use onboarding challenge for a manufactured device.
    pub async fn challenge(&self, device_id: &str) -> Result<Challenge> {
        let d = self.device(device_id).await?;
        if d.state != DeviceState::Manufactured {
            return Err(Error::IllegalTransition {
                from: d.state.as_str(),
                to: DeviceState::Onboarded.as_str(),
            });
        }
        let now = self.clock.now();
        let c = Challenge {
            device_id: d.id,
            nonce: fleetkey_crypto::rand::array()?,
            issued_at: now,
            expires_at: now + CHALLENGE_TTL_SECS,
        };
        self.store
            .put_challenge(&c.nonce, &c.device_id, c.issued_at, c.expires_at)
            .await?;
        Ok(c)
    }

    /// Verifies a credential under its fleet's key and against the registry:
    /// signature, validity, role, revocation, and that fleet, hardware id and keys
    /// match the registered device. Returns the claims and the device.
    pub async fn check_credential(
        &self,
        token: &[u8],
        role: Role,
    ) -> Result<(Claims, DeviceRecord)> {
        let (_, unverified) = credential::peek(token)
            .map_err(|_| Error::CredentialRefused("not a device credential"))?;
        let issuer = self.issuer(&unverified.fleet).await.map_err(|e| match e {
            Error::FleetNotFound(_) => Error::CredentialRefused("unknown fleet"),
            // A store or custody failure is not the device's fault: 503.
            other => other,
        })?;
        let now = self.clock.now();
        let claims = credential::verify(
            token,
            credential::IssuerPublicKey::Ed25519(&issuer.0.issuer_public),
            now,
        )
        .map_err(|e| match e {
            fleetkey_crypto::Error::Expired => Error::CredentialRefused("expired"),
            fleetkey_crypto::Error::NotYetValid => Error::CredentialRefused("not valid yet"),
            _ => Error::CredentialRefused("signature does not verify under the fleet's key"),
        })?;
        if claims.role != role {
            return Err(Error::CredentialRefused("wrong credential role"));
        }
        if self.store.is_revoked(&claims.credential_id).await? {
            return Err(Error::CredentialRefused("revoked"));
        }
        let d = self
            .store
            .device(&claims.device_id)
            .await?
            .ok_or(Error::CredentialRefused("unknown device"))?;
        if matches!(
            d.state,
            DeviceState::Decommissioning | DeviceState::Decommissioned
        ) {
            return Err(Error::CredentialRefused("device decommissioned"));
        }
        if role == Role::Operational
            && d.operational_credential_id.as_deref() != Some(claims.credential_id.as_slice())
        {
            return Err(Error::CredentialRefused(
                "not the device's current operational credential",
            ));
        }
        let keys_match = d.x25519 == claims.keys.x25519 && d.ed25519 == claims.keys.ed25519;
        if d.fleet != claims.fleet || d.hardware_id != claims.hardware_id || !keys_match {
            return Err(Error::CredentialRefused(
                "does not match the registered device",
            ));
        }
        Ok((claims, d))
    }

    /// Completes zero-touch onboarding; returns the operational credential.
    pub async fn onboard(
        &self,
        birth_credential: &[u8],
        nonce: &[u8; 32],
        signature: &[u8],
    ) -> Result<(Vec<u8>, DeviceRecord)> {
        let (claims, d) = self.check_credential(birth_credential, Role::Birth).await?;
        if d.state != DeviceState::Manufactured {
            return Err(Error::IllegalTransition {
                from: d.state.as_str(),
                to: DeviceState::Onboarded.as_str(),
            });
        }
        let now = self.clock.now();
        // Single use: a wrong signature burns the challenge too.
        let issued_at = self.store.take_challenge(nonce, &d.id, now).await?;
        fleetkey_crypto::ed25519::verify(
            &d.ed25519,
            &onboarding_message(&d.id, nonce, issued_at),
            signature,
        )
        .map_err(|_| {
            Error::CredentialRefused("proof of possession does not verify with the device key")
        })?;
        let issuer = self.issuer(&d.fleet).await?;
        let operational = Claims {
            role: Role::Operational,
            issued_at: now,
            expires_at: now.saturating_add(issuer.0.credential_ttl_secs),
            credential_id: fleetkey_crypto::rand::array()?,
            ..claims
        };
        let token = credential::issue(
            &operational,
            Issuer::Ed25519(&issuer.1),
            issuer.0.issuer_key_id.as_bytes(),
        )?;
        let record = self
            .directory
            .prepare(&d.id, IdentityKind::Device, operational.keys.clone(), false)
            .await?;
        self.store
            .apply(
                crate::store::Change::DeviceTransition {
                    id: d.id.clone(),
                    from: lifecycle::allowed_from(DeviceState::Onboarded).to_vec(),
                    to: DeviceState::Onboarded,
                    operational_credential_id: Some(operational.credential_id.to_vec()),
                    revoke: Vec::new(),
                    command: None,
                    cancel_open_commands: false,
                    key_record: Some(record),
                    at: now,
                },
                AuditDraft::new(
                    &format!("device:{}", d.id),
                    "device.onboard",
                    format!("device:{}", d.id),
                    json!({ "fleet": d.fleet, "credential_expires_at": operational.expires_at }),
                ),
                now,
            )
            .await?;
        Ok((token, self.device(&d.id).await?))
    }

    /// Moves a device along the life-cycle table (activate, suspend, resume).
    pub async fn transition(&self, actor: &str, id: &str, to: DeviceState) -> Result<DeviceRecord> {
        if matches!(
            to,
            DeviceState::Decommissioning | DeviceState::Decommissioned | DeviceState::Onboarded
        ) {
            return Err(invalid(
                "state",
                "use onboarding or decommissioning for this state",
            ));
        }
        let now = self.clock.now();
        self.store
            .apply(
                crate::store::Change::DeviceTransition {
                    id: id.to_owned(),
                    from: lifecycle::allowed_from(to).to_vec(),
                    to,
                    operational_credential_id: None,
                    revoke: Vec::new(),
                    command: None,
                    cancel_open_commands: false,
                    key_record: None,
                    at: now,
                },
                AuditDraft::new(
                    actor,
                    "device.state",
                    format!("device:{id}"),
                    json!({ "to": to.as_str() }),
                ),
                now,
            )
            .await?;
        self.device(id).await
    }

    /// Starts decommissioning: the audit entry and the revocation of every
    /// credential of the device are one transaction, so credentials are revoked at
    /// once and never without the record.
    pub async fn decommission(&self, actor: &str, id: &str, reason: &str) -> Result<DeviceRecord> {
        let d = self.device(id).await?;
        let mut revoke = Vec::new();
        // A stored birth credential that does not parse cannot be put on the
        // revocation list; it is refused all the same, as is every credential
        // of a decommissioned device (`check_credential`).
        let birth_readable = match credential::peek(&d.birth_credential) {
            Ok((_, c)) => {
                revoke.push(c.credential_id.to_vec());
                true
            }
            Err(_) => {
                tracing::warn!(device = %id, "stored birth credential unreadable; refused by device state");
                false
            }
        };
        if let Some(op) = &d.operational_credential_id {
            revoke.push(op.clone());
        }
        let issuer = self.issuer(&d.fleet).await?;
        let now = self.clock.now();
        let wipe = commands::new_command(
            &issuer.1,
            id,
            CommandKind::Wipe,
            &json!({ "reason": reason }),
            now,
        )?;
        let wipe_id = wipe.id.clone();
        let revocation = self
            .directory
            .prepare(&d.id, IdentityKind::Device, device_keys(&d)?, true)
            .await?;
        self.store
            .apply(
                crate::store::Change::DeviceTransition {
                    id: id.to_owned(),
                    from: lifecycle::allowed_from(DeviceState::Decommissioning).to_vec(),
                    to: DeviceState::Decommissioning,
                    operational_credential_id: None,
                    revoke,
                    command: Some(wipe),
                    cancel_open_commands: true,
                    key_record: Some(revocation),
                    at: now,
                },
                AuditDraft::new(
                    actor,
                    "device.decommission",
                    format!("device:{id}"),
                    json!({
                        "reason": reason,
                        "credentials_revoked": true,
                        "birth_credential_readable": birth_readable,
                        "wipe_command": wipe_id,
                    }),
                ),
                now,
            )
            .await?;
        self.device(id).await
    }

    /// Finishes decommissioning with the device's signed wipe receipt.
    pub async fn confirm_wipe(
        &self,
        id: &str,
        wiped_at: i64,
        signature: &[u8],
    ) -> Result<DeviceRecord> {
        let d = self.device(id).await?;
        fleetkey_crypto::ed25519::verify(
            &d.ed25519,
            &wipe_receipt_message(id, wiped_at),
            signature,
        )
        .map_err(|_| {
            Error::CredentialRefused("wipe receipt does not verify with the device key")
        })?;
        let now = self.clock.now();
        self.store
            .apply(
                crate::store::Change::Decommissioned {
                    device_id: id.to_owned(),
                    at: now,
                },
                AuditDraft::new(
                    &format!("device:{id}"),
                    "device.wiped",
                    format!("device:{id}"),
                    json!({ "wiped_at": wiped_at, "receipt_signature": hex::encode(signature), "secrets_erased": true }),
                ),
                now,
            )
            .await?;
        self.device(id).await
    }

    /// Creates a one-time claim code for a device (printed at the factory or
    /// handed out by an operator). Only its hash is stored; the code is returned once.
    pub async fn create_claim_code(
        &self,
        actor: &str,
        device_id: &str,
        ttl_secs: i64,
    ) -> Result<(String, i64)> {
        if !(60..=365 * 86_400).contains(&ttl_secs) {
            return Err(invalid(
                "claim code lifetime",
                "between 1 minute and 365 days",
            ));
        }
        let d = self.device(device_id).await?;
        if matches!(
            d.state,
            DeviceState::Decommissioning | DeviceState::Decommissioned
        ) {
            return Err(Error::IllegalTransition {
                from: d.state.as_str(),
                to: "claimed",
            });
        }
        let raw: [u8; 10] = fleetkey_crypto::rand::array()?;
        let code = claim_code_text(&raw);
        let now = self.clock.now();
        let expires_at = now + ttl_secs;
        self.store
            .apply(
                crate::store::Change::CreateClaimCode {
                    hash: claim_hash(&code),
                    device_id: d.id.clone(),
                    at: now,
                    expires_at,
                },
                AuditDraft::new(
                    actor,
                    "device.claim_code",
                    format!("device:{}", d.id),
                    json!({ "expires_at": expires_at }),
                ),
                now,
            )
            .await?;
        Ok((code, expires_at))
    }

    /// Uses a claim code once: binds its device to `claimed_by` (an account or site).
    pub async fn claim(&self, actor: &str, code: &str, claimed_by: &str) -> Result<DeviceRecord> {
        field("claimed by", claimed_by)?;
        if code.len() > 64 {
            return Err(Error::ClaimRefused("unknown code"));
        }
        let hash = claim_hash(code);
        let now = self.clock.now();
        self.store
            .apply(
                crate::store::Change::UseClaimCode {
                    hash,
                    claimed_by: claimed_by.to_owned(),
                    at: now,
                },
                AuditDraft::new(
                    actor,
                    "device.claim",
                    "claim-code",
                    json!({ "claimed_by": claimed_by }),
                ),
                now,
            )
            .await?;
        let d = self
            .store
            .device_by_claim_hash(&hash)
            .await?
            .ok_or(Error::ClaimRefused("unknown code"))?;
        Ok(d)
    }

    /// One device.
    pub async fn device(&self, id: &str) -> Result<DeviceRecord> {
        self.store
            .device(id)
            .await?
            .ok_or_else(|| Error::DeviceNotFound(id.to_owned()))
    }

    /// A page of a fleet's devices.
    pub async fn devices(&self, fleet: &str, after: &str, limit: u32) -> Result<Vec<DeviceRecord>> {
        self.issuer(fleet).await?;
        self.store.devices(fleet, after, limit).await
    }
}

/// The registered public keys of a device.
pub(crate) fn device_keys(d: &DeviceRecord) -> Result<DeviceKeys> {
    let k32 = |v: &[u8]| -> Result<[u8; 32]> {
        v.try_into()
            .map_err(|_| Error::Store("stored device key is not 32 bytes".into()))
    };
    Ok(DeviceKeys {
        x25519: k32(&d.x25519)?,
        ed25519: k32(&d.ed25519)?,
        ml_kem_768: d.ml_kem_768.clone(),
        ml_dsa_65: d.ml_dsa_65.clone(),
    })
}

/// `XXXX-XXXX-XXXX-XXXX`: 80 random bits in Crockford base32 (no I, L, O, U).
fn claim_code_text(raw: &[u8; 10]) -> String {
    const ALPHABET: &[u8; 32] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";
    let mut bits: u128 = 0;
    for b in raw {
        bits = (bits << 8) | u128::from(*b);
    }
    let chars: Vec<u8> = (0..16)
        .rev()
        .map(|i| ALPHABET[((bits >> (i * 5)) & 31) as usize])
        .collect();
    chars
        .chunks(4)
        .map(|c| String::from_utf8_lossy(c).into_owned())
        .collect::<Vec<_>>()
        .join("-")
}

/// SHA-256 of the code with separators and case normalised away.
fn claim_hash(code: &str) -> [u8; 32] {
    let norm: String = code
        .chars()
        .filter(|c| !matches!(c, '-' | ' '))
        .map(|c| c.to_ascii_uppercase())
        .collect();
    let d = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, norm.as_bytes());
    let mut out = [0u8; 32];
    out.copy_from_slice(d.as_ref());
    out
}

/// An earlier registration of the same hardware id: the same fleet and keys make
/// this an idempotent retry; anything else is a conflict.
fn same_registration(existing: DeviceRecord, req: &FactoryRequest) -> Result<Provisioned> {
    let same = existing.fleet == req.fleet
        && existing.x25519 == req.keys.x25519
        && existing.ed25519 == req.keys.ed25519
        && existing.ml_kem_768 == req.keys.ml_kem_768
        && existing.ml_dsa_65 == req.keys.ml_dsa_65;
    if same {
        Ok(Provisioned {
            device: existing,
            created: false,
        })
    } else {
        Err(Error::DeviceExists(req.hardware_id.clone()))
    }
}

pub(crate) fn validate_keys(k: &DeviceKeys) -> Result<()> {
    // A low-order X25519 key would make every session secret zero.
    if fleetkey_crypto::x25519::is_low_order(&k.x25519) {
        return Err(Error::KeyRefused("x25519", "low-order point"));
    }
    if k.ed25519 == [0u8; 32] {
        return Err(Error::KeyRefused("ed25519", "all zero"));
    }
    if k.ml_kem_768
        .as_ref()
        .is_some_and(|v| v.len() != fleetkey_crypto::mlkem::ENCAPSULATION_KEY_LEN)
    {
        return Err(invalid("ml-kem-768 key", "must be 1184 bytes"));
    }
    if k.ml_dsa_65
        .as_ref()
        .is_some_and(|v| v.len() != fleetkey_crypto::mldsa::PUBLIC_KEY_LEN)
    {
        return Err(invalid("ml-dsa-65 key", "must be 1952 bytes"));
    }
    Ok(())
}

/// The group-commit writer: one transaction for everything queued.
async fn writer(store: Arc<dyn Store>, clock: SharedClock, mut rx: mpsc::Receiver<Job>) {
    while let Some(first) = rx.recv().await {
        let mut jobs = vec![first];
        while jobs.len() < MAX_GROUP {
            match rx.try_recv() {
                Ok(j) => jobs.push(j),
                Err(_) => break,
            }
        }
        let (items, replies): (Vec<_>, Vec<_>) = jobs.into_iter().unzip();
        match store.register_devices(items, clock.now()).await {
            Ok(results) => {
                for (r, reply) in results.into_iter().zip(replies) {
                    let _ = reply.send(r);
                }
            }
            Err(e) => {
                tracing::error!(error = %e, "device registration transaction failed");
                for reply in replies {
                    let _ = reply.send(Err(Error::Store(e.to_string())));
                }
            }
        }
    }
}
