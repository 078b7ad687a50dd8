//! Credential rotation, the command queue as devices and operators see it, the
//! rotation policy, and the factory reset of a decommissioned device.
//!
//! Rotation, step by step (each step one transaction with its audit entry):
//! 1. an operator or the policy asks: `active|onboarded -> rotating`, and a signed
//!    `rotate_credential` command is queued;
//! 2. the device presents new public keys signed by its **current** Ed25519 key
//!    ([`super::commands::rotation_request_message`]); the server issues an
//!    operational credential for the new keys and remembers the proposal;
//! 3. the device confirms with a signature by its **new** key over the new
//!    credential's id ([`super::commands::rotation_confirm_message`]); only then are
//!    the registered keys swapped, the old operational credential revoked and the
//!    device `active` again. Until step 3 the old credential keeps working and the
//!    new one is refused (it does not match the registry), so a device that loses
//!    power mid-rotation is never locked out.

use super::commands::{
    POLL_WINDOW_SECS, command_poll_message, new_command, rotation_confirm_message,
    rotation_request_message,
};
use super::{Commands, FleetInfo, invalid, lifecycle, validate_keys};
use crate::audit::AuditDraft;
use crate::error::{Error, Result};
use crate::store::{
    Change, CommandKind, CommandRecord, DeviceRecord, DeviceState, RotationConfirmed, Transition,
};
use base64::{Engine as _, engine::general_purpose::STANDARD as B64};
use fleetkey_crypto::credential::{self, Claims, DeviceKeys, Issuer, Role};
use fleetkey_crypto::record::IdentityKind;
use serde_json::json;

/// What is remembered between proposal and confirmation (stored as JSON, erased
/// when the command ends).
#[derive(serde::Serialize, serde::Deserialize)]
struct Proposal {
    x25519: String,
    ed25519: String,
    ml_kem_768: Option<String>,
    ml_dsa_65: Option<String>,
    credential_id: String,
}

fn b64(b: &[u8]) -> String {
    B64.encode(b)
}

fn unb64(s: &str) -> Result<Vec<u8>> {
    B64.decode(s)
        .map_err(|_| Error::Corrupt("stored rotation proposal is not base64".into()))
}

/// Refused sessions of one reason from one source network, in a
/// `session.refused` summary entry.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct RefusalCount {
    /// Why (`unknown_device`, …).
    pub reason: String,
    /// The source network (`203.0.113.0/24`, `2001:db8:1::/48`, or `other`).
    pub source: String,
    /// How many.
    pub count: u64,
}

impl Commands {
    /// Asks a device to rotate its credential: `rotating` plus a signed command.
    /// A constrained device is asked for a rekey instead
    /// ([`Commands::request_rekey`]).
    pub async fn request_rotation(
        &self,
        actor: &str,
        device_id: &str,
        reason: &str,
    ) -> Result<CommandRecord> {
        if reason.len() > 256 {
            return Err(invalid("reason", "longer than 256 bytes"));
        }
        let d = self.core.device(device_id).await?;
        if super::constrained::Profile::of(&d.profile).is_some() {
            // Its factory keys do not rotate over the air: new session keys.
            return self.request_rekey(actor, &d, reason).await;
        }
        let issuer = self.core.issuer(&d.fleet).await?;
        let now = self.core.clock.now();
        let command = new_command(
            &issuer.1,
            device_id,
            CommandKind::RotateCredential,
            &json!({ "reason": reason }),
            now,
        )?;
        self.store
            .apply(
                Change::DeviceTransition(Transition {
                    command: Some(command.clone()),
                    ..lifecycle::transition(device_id, DeviceState::Rotating, now)
                }),
                AuditDraft::new(
                    actor,
                    "device.rotation_requested",
                    format!("device:{device_id}"),
                    json!({ "command": command.id, "reason": reason }),
                ),
                now,
            )
            .await?;
        Ok(command)
    }

    /// Step 2: the device proposes new keys, signed by its current key; returns the
    /// new operational credential (valid once confirmed) and its id.
    pub async fn propose_rotation(
        &self,
        device_id: &str,
        command_id: &str,
        keys: DeviceKeys,
        signature: &[u8],
    ) -> Result<(Vec<u8>, [u8; 16])> {
        let d = self.core.device(device_id).await?;
        fleetkey_crypto::ed25519::verify(
            &d.ed25519,
            &rotation_request_message(device_id, command_id, &keys),
            signature,
        )
        .map_err(|_| {
            Error::CredentialRefused(
                "rotation request does not verify with the device's current key",
            )
        })?;
        if d.state != DeviceState::Rotating {
            return Err(Error::IllegalTransition {
                from: d.state.as_str(),
                to: "rotated",
            });
        }
        validate_keys(&keys)?;
        if keys.ed25519.as_slice() == d.ed25519.as_slice()
            || keys.x25519.as_slice() == d.x25519.as_slice()
        {
            return Err(invalid(
                "new keys",
                "a rotation needs new X25519 and Ed25519 keys",
            ));
        }
        let issuer = self.core.issuer(&d.fleet).await?;
        let now = self.core.clock.now();
        let claims = Claims {
            issuer: format!("fleetkey:{}", d.fleet),
            device_id: d.id.clone(),
            fleet: d.fleet.clone(),
            hardware_id: d.hardware_id.clone(),
            role: Role::Operational,
            keys: keys.clone(),
            issued_at: now,
            expires_at: now.saturating_add(issuer.0.credential_ttl_secs),
            credential_id: fleetkey_crypto::rand::array()?,
        };
        let token = credential::issue(
            &claims,
            Issuer::Ed25519(&issuer.1),
            issuer.0.issuer_key_id.as_bytes(),
        )?;
        let proposal = Proposal {
            x25519: b64(&keys.x25519),
            ed25519: b64(&keys.ed25519),
            ml_kem_768: keys.ml_kem_768.as_deref().map(b64),
            ml_dsa_65: keys.ml_dsa_65.as_deref().map(b64),
            credential_id: b64(&claims.credential_id),
        };
        self.store
            .apply(
                Change::RotationProposed {
                    device_id: device_id.to_owned(),
                    command_id: command_id.to_owned(),
                    pending: serde_json::to_string(&proposal)
                        .map_err(|e| Error::Corrupt(e.to_string()))?,
                    at: now,
                },
                AuditDraft::new(
                    &format!("device:{device_id}"),
                    "device.rotation_proposed",
                    format!("device:{device_id}"),
                    json!({ "command": command_id, "new_ed25519_prefix": fleetkey_crypto::hex_prefix(&keys.ed25519),
                            "new_x25519_prefix": fleetkey_crypto::hex_prefix(&keys.x25519),
                            "credential_id": hex::encode(claims.credential_id) }),
                ),
                now,
            )
            .await?;
        Ok((token, claims.credential_id))
    }

    /// Step 3: the device confirms with its new key; the keys are swapped and the
    /// old operational credential is revoked.
    pub async fn confirm_rotation(
        &self,
        device_id: &str,
        command_id: &str,
        signature: &[u8],
    ) -> Result<DeviceRecord> {
        let d = self.core.device(device_id).await?;
        let command = self
            .store
            .command(command_id)
            .await?
            .filter(|c| c.device_id == device_id && c.kind == CommandKind::RotateCredential)
            .ok_or_else(|| Error::CommandNotFound(command_id.to_owned()))?;
        let pending = self
            .store
            .command_pending(&command.id)
            .await?
            .ok_or(Error::CommandState(command.state.as_str()))?;
        let p: Proposal =
            serde_json::from_str(&pending).map_err(|e| Error::Corrupt(e.to_string()))?;
        let credential_id: [u8; 16] = unb64(&p.credential_id)?
            .try_into()
            .map_err(|_| Error::Corrupt("stored credential id is not 16 bytes".into()))?;
        let ed25519 = unb64(&p.ed25519)?;
        fleetkey_crypto::ed25519::verify(
            &ed25519,
            &rotation_confirm_message(device_id, command_id, &credential_id),
            signature,
        )
        .map_err(|_| {
            Error::CredentialRefused("rotation confirmation does not verify with the new key")
        })?;
        let new_keys = DeviceKeys {
            x25519: unb64(&p.x25519)?
                .try_into()
                .map_err(|_| Error::Corrupt("stored x25519 key is not 32 bytes".into()))?,
            ed25519: ed25519
                .clone()
                .try_into()
                .map_err(|_| Error::Corrupt("stored ed25519 key is not 32 bytes".into()))?,
            ml_kem_768: p.ml_kem_768.as_deref().map(unb64).transpose()?,
            ml_dsa_65: p.ml_dsa_65.as_deref().map(unb64).transpose()?,
        };
        let record = self
            .core
            .directory
            .prepare(device_id, IdentityKind::Device, new_keys.clone(), false)
            .await?;
        let now = self.core.clock.now();
        self.store
            .apply(
                Change::RotationConfirmed(RotationConfirmed {
                    device_id: device_id.to_owned(),
                    command_id: command_id.to_owned(),
                    x25519: new_keys.x25519.to_vec(),
                    ed25519,
                    ml_kem_768: new_keys.ml_kem_768.clone(),
                    ml_dsa_65: new_keys.ml_dsa_65.clone(),
                    credential_id: credential_id.to_vec(),
                    revoke: d.operational_credential_id.clone(),
                    key_record: Some(record),
                    at: now,
                }),
                AuditDraft::new(
                    &format!("device:{device_id}"),
                    "device.rotated",
                    format!("device:{device_id}"),
                    json!({ "command": command_id, "credential_id": hex::encode(credential_id),
                            "revoked_credential_id": d.operational_credential_id.as_deref().map(hex::encode),
                            "receipt_signature": hex::encode(signature) }),
                ),
                now,
            )
            .await?;
        self.core.device(device_id).await
    }

    /// A device's commands for operators (all, or only open ones).
    pub async fn device_commands(&self, device_id: &str, open: bool) -> Result<Vec<CommandRecord>> {
        self.core.device(device_id).await?;
        self.store.commands(device_id, open).await
    }

    /// A device fetches its open commands with a fresh signed poll
    /// ([`command_poll_message`], within [`POLL_WINDOW_SECS`] of the server clock).
    pub async fn poll_commands(
        &self,
        device_id: &str,
        at: i64,
        signature: &[u8],
    ) -> Result<Vec<CommandRecord>> {
        let d = self.core.device(device_id).await?;
        fleetkey_crypto::ed25519::verify(
            &d.ed25519,
            &command_poll_message(device_id, at),
            signature,
        )
        .map_err(|_| Error::CredentialRefused("poll does not verify with the device key"))?;
        if (self.core.clock.now() - at).abs() > POLL_WINDOW_SECS {
            return Err(Error::CredentialRefused(
                "poll time is too far from the server clock; check the device clock",
            ));
        }
        if d.state == DeviceState::Decommissioned {
            return Err(Error::IllegalTransition {
                from: d.state.as_str(),
                to: "polling",
            });
        }
        self.store.commands(device_id, true).await
    }

    /// A device's signed receipt for an `update_config` command (`applied` ends it
    /// `done`, `rejected` ends it `cancelled`); verified with the device key and
    /// kept in the audit log.
    pub async fn command_receipt(
        &self,
        device_id: &str,
        command_id: &str,
        status: &str,
        at: i64,
        signature: &[u8],
    ) -> Result<()> {
        let d = self.core.device(device_id).await?;
        let state = match status {
            "applied" => crate::store::CommandState::Done,
            "rejected" => crate::store::CommandState::Cancelled,
            _ => return Err(invalid("receipt status", "applied or rejected")),
        };
        fleetkey_crypto::ed25519::verify(
            &d.ed25519,
            &super::commands::receipt_message(command_id, device_id, status, at),
            signature,
        )
        .map_err(|_| Error::CredentialRefused("receipt does not verify with the device key"))?;
        self.record_receipt(
            device_id,
            command_id,
            CommandKind::UpdateConfig,
            state,
            json!({ "command": command_id, "status": status, "at": at, "signature": hex::encode(signature) }),
        )
        .await
    }

    /// Ends a device's open command of `kind` in `state`, audited as the
    /// device's `device.command_receipt` with `details` (its evidence).
    pub(super) async fn record_receipt(
        &self,
        device_id: &str,
        command_id: &str,
        kind: CommandKind,
        state: crate::store::CommandState,
        details: serde_json::Value,
    ) -> Result<()> {
        let now = self.core.clock.now();
        self.store
            .apply(
                Change::CommandReceipt {
                    device_id: device_id.to_owned(),
                    command_id: command_id.to_owned(),
                    kind,
                    state,
                    at: now,
                },
                AuditDraft::new(
                    &format!("device:{device_id}"),
                    "device.command_receipt",
                    format!("device:{device_id}"),
                    details,
                ),
                now,
            )
            .await
            .map(|_| ())
    }

    /// Sets (or clears) a fleet's credential rotation period.
    pub async fn set_rotation_policy(
        &self,
        actor: &str,
        fleet: &str,
        period_secs: Option<i64>,
    ) -> Result<FleetInfo> {
        if period_secs.is_some_and(|p| !(3600..=10 * 365 * 86_400).contains(&p)) {
            return Err(invalid("rotation period", "between 1 hour and 10 years"));
        }
        self.core.issuer(fleet).await?;
        let now = self.core.clock.now();
        self.store
            .apply(
                Change::SetRotationPolicy {
                    fleet: fleet.to_owned(),
                    period_secs,
                },
                AuditDraft::new(
                    actor,
                    "fleet.rotation_policy",
                    format!("fleet:{fleet}"),
                    json!({ "credential_rotation_secs": period_secs }),
                ),
                now,
            )
            .await?;
        self.core.changed(fleet);
        Ok(FleetInfo::from(&self.core.issuer(fleet).await?.0))
    }

    /// Requests rotation for every device whose operational credential is older
    /// than its fleet's rotation period; returns how many were asked. A device
    /// that moved on meanwhile is skipped.
    pub async fn run_rotation_policy(&self, actor: &str) -> Result<usize> {
        let mut asked = 0;
        for f in self.core.store.fleets_with_rotation().await? {
            let Some(period) = f.credential_rotation_secs else {
                continue;
            };
            let before = self.core.clock.now().saturating_sub(period);
            for id in self
                .store
                .devices_due_rotation(&f.name, before, 1000)
                .await?
            {
                match self.request_rotation(actor, &id, "rotation policy").await {
                    Ok(_) => asked += 1,
                    Err(Error::IllegalTransition { .. }) => {}
                    Err(e) => return Err(e),
                }
            }
        }
        Ok(asked)
    }

    /// Retires a decommissioned device's hardware identity so the same hardware
    /// can be provisioned again (explicit, audited; the old record is kept).
    pub async fn factory_reset(
        &self,
        actor: &str,
        device_id: &str,
        reason: &str,
    ) -> Result<DeviceRecord> {
        if reason.len() > 256 {
            return Err(invalid("reason", "longer than 256 bytes"));
        }
        let d = self.core.device(device_id).await?;
        let now = self.core.clock.now();
        self.store
            .apply(
                Change::FactoryReset {
                    device_id: device_id.to_owned(),
                    at: now,
                },
                AuditDraft::new(
                    actor,
                    "device.factory_reset",
                    format!("device:{device_id}"),
                    json!({ "hardware_id": d.hardware_id, "reason": reason }),
                ),
                now,
            )
            .await?;
        self.core.device_changed(device_id);
        self.core.device(device_id).await
    }
}
