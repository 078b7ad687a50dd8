//! Onboarding and the life cycle on [`Onboarding`]: challenges, credential
//! checks, zero-touch onboarding, operator transitions, decommissioning and the
//! wipe receipt, claim codes and claims.

use crate::audit::AuditDraft;
use crate::error::{Error, Result};
use crate::store::{Change, CommandKind, DeviceRecord, DeviceState, Transition};
use fleetkey_crypto::credential::{self, Claims, Issuer, Role};
use fleetkey_crypto::record::IdentityKind;
use serde_json::json;

use super::{
    CHALLENGE_TTL_SECS, Onboarding, commands, device_keys, field, invalid, lifecycle,
    onboarding_message, wipe_receipt_message,
};

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

impl Onboarding {
    /// Whether the fleet lets constrained devices use a static key.
    pub async fn allows_static_key(&self, fleet: &str) -> Result<bool> {
        self.store.fleet_allows_static_key(fleet).await
    }

    /// Deletes expired onboarding challenges; how many.
    pub async fn prune_challenges(&self) -> Result<u64> {
        self.store.prune_challenges(self.core.clock.now()).await
    }

    /// Issues a single-use onboarding challenge for a manufactured device.
    pub async fn challenge(&self, device_id: &str) -> Result<Challenge> {
        let d = self.core.device(device_id).await?;
        if d.state != DeviceState::Manufactured {
            return Err(Error::IllegalTransition {
                from: d.state.as_str(),
                to: DeviceState::Onboarded.as_str(),
            });
        }
        let now = self.core.clock.now();
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
        let issuer = self
            .core
            .issuer(&unverified.fleet)
            .await
            .map_err(|e| match e {
                Error::FleetNotFound(_) => Error::CredentialRefused("unknown fleet"),
                // A store or custody failure is not the device's fault: 503.
                other => other,
            })?;
        let now = self.core.clock.now();
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
            .core
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
        let now = self.core.clock.now();
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
        let issuer = self.core.issuer(&d.fleet).await?;
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
            .core
            .directory
            .prepare(&d.id, IdentityKind::Device, operational.keys.clone(), false)
            .await?;
        self.store
            .apply(
                Change::DeviceTransition(Transition {
                    operational_credential_id: Some(operational.credential_id.to_vec()),
                    key_record: Some(record),
                    ..lifecycle::transition(&d.id, DeviceState::Onboarded, now)
                }),
                AuditDraft::new(
                    &format!("device:{}", d.id),
                    "device.onboard",
                    format!("device:{}", d.id),
                    json!({ "fleet": d.fleet, "credential_expires_at": operational.expires_at }),
                ),
                now,
            )
            .await?;
        Ok((token, self.core.device(&d.id).await?))
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
        let now = self.core.clock.now();
        self.store
            .apply(
                Change::DeviceTransition(lifecycle::transition(id, to, now)),
                AuditDraft::new(
                    actor,
                    "device.state",
                    format!("device:{id}"),
                    json!({ "to": to.as_str() }),
                ),
                now,
            )
            .await?;
        self.core.device_changed(id);
        self.core.device(id).await
    }

    /// Starts decommissioning: the audit entry and the revocation of every
    /// credential of the device are one transaction, so credentials are revoked at
    /// once and never without the record.
    pub async fn decommission(&self, actor: &str, id: &str, reason: &str) -> Result<DeviceRecord> {
        let d = self.core.device(id).await?;
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
        let issuer = self.core.issuer(&d.fleet).await?;
        let now = self.core.clock.now();
        let wipe = commands::new_command(
            &issuer.1,
            id,
            CommandKind::Wipe,
            &json!({ "reason": reason }),
            now,
        )?;
        let wipe_id = wipe.id.clone();
        let revocation = self
            .core
            .directory
            .prepare(&d.id, IdentityKind::Device, device_keys(&d)?, true)
            .await?;
        self.store
            .apply(
                Change::DeviceTransition(Transition {
                    revoke,
                    command: Some(wipe),
                    cancel_open_commands: true,
                    key_record: Some(revocation),
                    ..lifecycle::transition(id, DeviceState::Decommissioning, now)
                }),
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
        self.core.device_changed(id);
        self.core.device(id).await
    }

    /// Finishes decommissioning with the device's signed wipe receipt.
    pub async fn confirm_wipe(
        &self,
        id: &str,
        wiped_at: i64,
        signature: &[u8],
    ) -> Result<DeviceRecord> {
        let d = self.core.device(id).await?;
        fleetkey_crypto::ed25519::verify(
            &d.ed25519,
            &wipe_receipt_message(id, wiped_at),
            signature,
        )
        .map_err(|_| {
            Error::CredentialRefused("wipe receipt does not verify with the device key")
        })?;
        self.wiped(
            id,
            json!({ "wiped_at": wiped_at, "receipt_signature": hex::encode(signature), "secrets_erased": true }),
        )
        .await
    }

    /// `decommissioning → decommissioned` with the device's confirmation of the
    /// wipe (`details`: its evidence), audited as the device's `device.wiped`.
    pub(super) async fn wiped(&self, id: &str, details: serde_json::Value) -> Result<DeviceRecord> {
        let now = self.core.clock.now();
        self.store
            .apply(
                crate::store::Change::Decommissioned {
                    device_id: id.to_owned(),
                    at: now,
                    wipe_confirmed: true,
                },
                AuditDraft::new(
                    &format!("device:{id}"),
                    "device.wiped",
                    format!("device:{id}"),
                    details,
                ),
                now,
            )
            .await?;
        self.core.device_changed(id);
        self.core.device(id).await
    }

    /// Finishes decommissioning a device that will never send its wipe receipt
    /// (lost, destroyed, offline for good): `decommissioning → decommissioned`
    /// as the receipt would, but the wipe command is cancelled and the audit
    /// entry (`device.decommission_complete`, chained and covered by the next
    /// signed checkpoint) records that the device did **not** confirm the wipe,
    /// with the operator's reason. Its credentials were revoked when
    /// decommissioning began (a device not yet decommissioning is decommissioned
    /// first, in this call); its hardware id can then be factory-reset.
    pub async fn complete_decommission(
        &self,
        actor: &str,
        id: &str,
        reason: &str,
    ) -> Result<DeviceRecord> {
        let d = self.core.device(id).await?;
        if d.state != DeviceState::Decommissioning {
            // Not yet decommissioning: that first (credentials revoked, the
            // wipe queued and then cancelled below); a decommissioned device
            // is refused there.
            self.decommission(actor, id, reason).await?;
        }
        let now = self.core.clock.now();
        self.store
            .apply(
                crate::store::Change::Decommissioned {
                    device_id: id.to_owned(),
                    at: now,
                    wipe_confirmed: false,
                },
                AuditDraft::new(
                    actor,
                    "device.decommission_complete",
                    format!("device:{id}"),
                    json!({ "reason": reason, "wipe_confirmed": false, "secrets_erased": true }),
                ),
                now,
            )
            .await?;
        self.core.device_changed(id);
        self.core.device(id).await
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
        let d = self.core.device(device_id).await?;
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
        let now = self.core.clock.now();
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
        let now = self.core.clock.now();
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
}
