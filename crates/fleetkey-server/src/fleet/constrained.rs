//! Constrained-profile devices (`crates/fleetkey-device`) on the service side.
//!
//! At the factory the jig seals the device's 32-byte factory secret — the PSK of
//! the X25519 mode, or the lab static key — to the service's factory X-Wing key
//! ([`Onboarding::factory_recipient`], an `fk1r:` recipient) as an `fk1`
//! envelope with associated data `"fleetkey factory secret v1:" ‖ hardware id`,
//! so it never travels in plaintext and cannot be replayed onto another device. The
//! service opens it, wraps it with custody (context `device-secret:<device id>`)
//! and stores it with the registration, in the same transaction. Static-key devices
//! are accepted only in fleets that allow them.

use super::{FactoryRequest, Onboarding, Provisioned, invalid};
use crate::audit::AuditDraft;
use crate::error::{Error, Result};
use crate::store::{Change, DeviceRecord, DeviceSecret, DeviceState};
use fleetkey_crypto::envelope::recipient;
use fleetkey_crypto::hpke::{XWingIdentity, XWingRecipient};
use fleetkey_crypto::secret::SecretBytes;
use serde_json::json;

/// Prefix of the associated data of a sealed factory secret (the hardware id follows).
pub const SECRET_AAD_PREFIX: &str = "fleetkey factory secret v1:";
/// Largest sealed factory secret accepted, bytes.
pub const MAX_SEALED_SECRET: usize = 4096;

/// The two constrained profiles.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize, utoipa::ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Profile {
    /// X25519 with the service's key plus the factory PSK.
    Constrained,
    /// A factory static key only (trusted labs; the fleet must allow it).
    ConstrainedStatic,
}

impl Profile {
    /// The profile of a device's stored profile name; `None` for a full device.
    pub fn of(profile: &str) -> Option<Self> {
        match profile {
            "constrained" => Some(Profile::Constrained),
            "constrained_static" => Some(Profile::ConstrainedStatic),
            _ => None,
        }
    }

    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Profile::Constrained => "constrained",
            Profile::ConstrainedStatic => "constrained_static",
        }
    }
}

fn aad(hardware_id: &str) -> Vec<u8> {
    format!("{SECRET_AAD_PREFIX}{hardware_id}").into_bytes()
}

/// Seals a factory secret for `hardware_id` to the service's factory recipient
/// (what a jig does; also `fleetkey seal --recipient fk1r:… --aad "fleetkey factory
/// secret v1:<hardware id>"`).
pub fn seal_factory_secret(
    recipient: &XWingRecipient,
    secret: &[u8; 32],
    hardware_id: &str,
) -> Result<Vec<u8>> {
    Ok(recipient::seal_to_vec(
        recipient,
        secret,
        &aad(hardware_id),
    )?)
}

/// Opens a sealed factory secret (exactly 32 bytes, bound to `hardware_id`).
pub(crate) fn open_factory_secret(
    identity: &XWingIdentity,
    sealed: &[u8],
    hardware_id: &str,
) -> Result<SecretBytes<32>> {
    if sealed.len() > MAX_SEALED_SECRET {
        return Err(invalid("sealed_secret", "larger than 4 KiB"));
    }
    recipient::open_secret(identity, sealed, &aad(hardware_id)).map_err(|_| {
        invalid(
            "sealed_secret",
            "not an fk1 envelope of a 32-byte secret sealed to this service's factory recipient for this hardware id",
        )
    })
}

/// The custody wrap context of a constrained device's factory secret (bound to
/// its hardware id).
pub(crate) fn context(hardware_id: &str) -> String {
    format!("device-secret:{hardware_id}")
}

/// What the ingest path needs to verify a constrained device's frames.
pub struct ConstrainedDevice {
    /// The device.
    pub device: DeviceRecord,
    /// Its profile.
    pub profile: Profile,
    /// The factory secret (PSK or static key).
    pub secret: SecretBytes<32>,
    /// The highest boot verified.
    pub last_boot: u32,
}

impl std::fmt::Debug for ConstrainedDevice {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConstrainedDevice")
            .field("device", &self.device.id)
            .field("profile", &self.profile)
            .field("last_boot", &self.last_boot)
            .finish_non_exhaustive()
    }
}

impl Onboarding {
    /// The `fk1r:` recipient jigs seal factory secrets to.
    pub async fn factory_recipient(&self) -> Result<String> {
        let id = self.core.directory.factory_identity().await?;
        Ok(fleetkey_crypto::keyfile::recipient_string(&id.recipient()))
    }

    /// Allows or refuses static-key (lab) devices in a fleet (audited).
    pub async fn allow_static_key(&self, actor: &str, fleet: &str, allow: bool) -> Result<()> {
        let now = self.core.clock.now();
        self.store
            .apply(
                Change::SetFleetStaticKey {
                    fleet: fleet.to_owned(),
                    allow,
                    at: now,
                },
                AuditDraft::new(
                    actor,
                    "fleet.static_key",
                    format!("fleet:{fleet}"),
                    json!({ "allowed": allow }),
                ),
                now,
            )
            .await?;
        self.core.changed(fleet);
        Ok(())
    }

    /// Registers a constrained-profile device: its public keys as for any device
    /// (the X25519 key is the one its frames use) and its sealed factory secret.
    pub async fn provision_constrained(
        &self,
        actor: &str,
        req: FactoryRequest,
        profile: Profile,
        sealed_secret: &[u8],
    ) -> Result<Provisioned> {
        if profile == Profile::ConstrainedStatic
            && !self.store.fleet_allows_static_key(&req.fleet).await?
        {
            return Err(invalid(
                "profile",
                format!(
                    "fleet {} does not accept static-key devices (allow them first)",
                    req.fleet
                ),
            ));
        }
        let identity = self.core.directory.factory_identity().await?;
        let secret = open_factory_secret(&identity, sealed_secret, &req.hardware_id)?;
        // The device id is assigned during registration: wrap under a context bound
        // to the hardware id, which is unique and never reused while the record lives.
        let wrapped = self
            .core
            .custody
            .wrap(&secret, &context(&req.hardware_id))
            .await?;
        self.registry
            .provision_with(
                actor,
                req,
                Some(DeviceSecret {
                    profile: profile.as_str().into(),
                    wrapped,
                    last_boot: 0,
                }),
            )
            .await
    }

    /// A constrained device's record and unwrapped factory secret, for verifying
    /// its frames; `None` if it is not a constrained device.
    pub async fn constrained_device(&self, device_id: &str) -> Result<Option<ConstrainedDevice>> {
        let Some(sec) = self.store.device_secret(device_id).await? else {
            return Ok(None);
        };
        let device = self.core.device(device_id).await?;
        let hw = device
            .retired_hardware_id
            .as_deref()
            .unwrap_or(&device.hardware_id)
            .to_owned();
        let profile = Profile::of(&sec.profile)
            .ok_or_else(|| Error::Corrupt(format!("unknown device profile {}", sec.profile)))?;
        let secret = self
            .core
            .custody
            .unwrap(&sec.wrapped, &context(&hw))
            .await?;
        Ok(Some(ConstrainedDevice {
            device,
            profile,
            secret,
            last_boot: sec.last_boot,
        }))
    }

    /// Records a verified boot; the first verified boot of a manufactured device
    /// onboards it (zero touch: the session-start frame proved possession of its
    /// factory keys), audited.
    pub async fn constrained_boot(&self, device: &DeviceRecord, boot: u32) -> Result<bool> {
        if !self.store.raise_device_boot(&device.id, boot).await? {
            return Ok(false);
        }
        let mut state = device.state;
        let step = |to: DeviceState, action: &'static str| {
            let now = self.core.clock.now();
            self.store.apply(
                Change::DeviceTransition(super::lifecycle::transition(&device.id, to, now)),
                AuditDraft::new(
                    &format!("device:{}", device.id),
                    action,
                    format!("device:{}", device.id),
                    json!({ "profile": device.profile, "boot": boot }),
                ),
                now,
            )
        };
        if state == DeviceState::Manufactured {
            step(DeviceState::Onboarded, "device.onboard").await?;
            state = DeviceState::Onboarded;
        }
        if state == DeviceState::Onboarded {
            // The same frame is its first session: active at once.
            // (The frame path's cache entry is updated by its caller, which
            // keeps the boot's replay state; no expiry is announced.)
            step(DeviceState::Active, "device.activate").await?;
        }
        Ok(true)
    }
}
