//! Factory provisioning on [`Registry`]: validation, birth credentials, and
//! the group-commit writer that registers concurrent requests in one transaction.

use crate::audit::{AuditDraft, AuditEntry};
use crate::clock::SharedClock;
use crate::error::{Error, Result};
use crate::store::FleetRecord;
use crate::store::{
    DeviceRecord, DeviceState, ManufacturingRecord, Registration, Store, StoredConfig,
};
use fleetkey_crypto::credential::{self, Claims, DeviceKeys, Issuer, Role};
use fleetkey_crypto::ed25519::Ed25519Signer;
use serde_json::json;
use std::sync::Arc;
use tokio::sync::{mpsc, oneshot};

use super::{DEFAULT_BIRTH_TTL_SECS, Job, MAX_GROUP, MAX_TEST_RESULTS, Registry, field, invalid};

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

pub(super) fn validate_keys(k: &DeviceKeys) -> Result<()> {
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
pub(super) async fn writer(store: Arc<dyn Store>, clock: SharedClock, mut rx: mpsc::Receiver<Job>) {
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
                    let _ = reply.send(Err(match &e {
                        Error::Database(d) => Error::Database(d.clone()),
                        other => Error::Internal(format!("registration batch: {other}")),
                    }));
                }
            }
        }
    }
}

impl Registry {
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
        let test_results = checked(&req)?;
        let issuer = self.core.issuer(&req.fleet).await?;
        let schemas = self.schemas(&req.fleet).await?;
        let now = self.core.clock.now();
        let config = schemas.last().map(|s| StoredConfig {
            schema_version: s.version,
            revision: 1,
            config: s.defaults.to_string(),
            updated_at: now,
        });
        let id_bytes: [u8; 8] = fleetkey_crypto::rand::array()?;
        let device_id = format!("dev_{}", hex::encode(id_bytes));
        let birth = birth_credential(&issuer, &device_id, &req, now)?;
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
            last_seen: None,
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
        let registration = Registration {
            device: device.clone(),
            manufacturing,
            config,
            audit,
            secret,
        };
        match self.write(registration).await? {
            Ok(_) => Ok(Provisioned {
                device,
                created: true,
            }),
            // Already registered (a retry, possibly racing the original) or a conflict.
            Err(e @ (Error::DeviceExists(_) | Error::DuplicateKey(_))) => {
                match self
                    .core
                    .store
                    .device_by_hardware_id(&req.hardware_id)
                    .await?
                {
                    // The hardware id is taken: a retry, or a conflict on the id.
                    Some(existing) => same_registration(existing, &req),
                    // Otherwise a key belongs to another device.
                    None => Err(e),
                }
            }
            Err(e) => Err(e),
        }
    }

    /// Hands a registration to the writer (which commits what is queued as one
    /// transaction); the writer's answer for it.
    async fn write(&self, registration: Registration) -> Result<Result<AuditEntry>> {
        let (reply, wait) = oneshot::channel();
        let stopped = || Error::Stopping("the registration writer stopped");
        self.queue
            .send((registration, reply))
            .await
            .map_err(|_| stopped())?;
        wait.await.map_err(|_| stopped())
    }
}

/// Checks a registration's fields and keys; its test results as stored.
fn checked(req: &FactoryRequest) -> Result<String> {
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
    Ok(test_results)
}

/// The device's birth credential, signed by its fleet's issuing key.
fn birth_credential(
    issuer: &(FleetRecord, Ed25519Signer),
    device_id: &str,
    req: &FactoryRequest,
    now: i64,
) -> Result<Vec<u8>> {
    let (fleet_record, signer) = (&issuer.0, &issuer.1);
    let claims = Claims {
        issuer: format!("fleetkey:{}", fleet_record.name),
        device_id: device_id.to_owned(),
        fleet: fleet_record.name.clone(),
        hardware_id: req.hardware_id.clone(),
        role: Role::Birth,
        keys: req.keys.clone(),
        issued_at: now,
        expires_at: now.saturating_add(DEFAULT_BIRTH_TTL_SECS),
        credential_id: fleetkey_crypto::rand::array()?,
    };
    Ok(credential::issue(
        &claims,
        Issuer::Ed25519(signer),
        fleet_record.issuer_key_id.as_bytes(),
    )?)
}
