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

mod convergent;
mod datakey;
mod keyring;
mod lifecycle;
pub(crate) mod nonce;
mod public_key;
mod resident;
mod service;
mod transfer;
mod typed;
mod versions;

pub use convergent::CONVERGENT_SALT;
pub use datakey::{DATA_KEY_LEN, DataKey, MAX_DATA_KEY_LEN};
pub use keyring::{CATCH_UP_INTERVAL, Keyring};
pub use lifecycle::{
    ALIAS_PREFIX, AliasInfo, KeyringOptions, MAX_DELETION_DAYS, MAX_DESCRIPTION_CHARS,
    MAX_TAG_KEY_CHARS, MAX_TAG_VALUE_CHARS, MAX_TAGS, MIN_DELETION_DAYS, validate_alias,
    validate_details,
};
pub use public_key::{
    FORMATS as PUBLIC_KEY_FORMATS, MAX_PUBLIC_KEY_FILE, parse_public_key, public_key_der,
    public_key_form, verify_with,
};
pub use service::KeyService;
pub use transfer::{
    EXPORT_AAD_PREFIX, IMPORT_AAD_PREFIX, IMPORT_RECIPIENT_LIFETIME_SECS, ImportRecipient,
    export_aad, import_aad,
};
pub use typed::{COMPOSITE_SALT, SignInput, Signable, Signed, check_prehash};

use crate::clock::{SharedClock, UnixTime};
use crate::custody::Custody;
use crate::error::{Error, Result};
use crate::store::{AuditStore, KeyringStore, Policy, VersionState};
use fleetkey_crypto::envelope::KeyId;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;

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
    /// Every action taken, in order (displayed as `NAME: rotated to version N
    /// (period)`, `NAME: minimum decrypt version raised to N`).
    pub actions: Vec<PolicyAction>,
    /// One line per keyring whose policy could not be applied (`NAME: error`).
    pub failures: Vec<String>,
}

/// One thing a policy tick did to a keyring.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PolicyAction {
    /// The primary was older than the rotation period: a new version is primary.
    Rotated {
        /// The keyring.
        keyring: String,
        /// Its new primary version.
        version: u32,
    },
    /// The overlap ended or a version fell out of "keep last N".
    MinimumRaised {
        /// The keyring.
        keyring: String,
        /// Its new minimum decrypt version.
        min: u32,
    },
    /// A scheduled deletion came due: the key material is erased.
    Erased {
        /// The keyring.
        keyring: String,
    },
}

impl std::fmt::Display for PolicyAction {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PolicyAction::Rotated { keyring, version } => {
                write!(f, "{keyring}: rotated to version {version} (period)")
            }
            PolicyAction::MinimumRaised { keyring, min } => {
                write!(f, "{keyring}: minimum decrypt version raised to {min}")
            }
            PolicyAction::Erased { keyring } => {
                write!(f, "{keyring}: deleted (key material erased)")
            }
        }
    }
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

pub(super) fn validate_policy(p: &Policy) -> Result<()> {
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

/// The custody wrap context of a keyring version's key.
pub(crate) fn wrap_context(name: &str, version: u32) -> String {
    format!("keyring:{name}/v{version}")
}

/// What `show`/`list` report about a keyring. Never contains key material.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct KeyringInfo {
    /// Name.
    pub name: String,
    /// Key type (docs/formats.md, "Keyring key types").
    pub algorithm: String,
    /// Sealing version.
    pub primary_version: u32,
    /// Oldest version that may open.
    pub min_decrypt_version: u32,
    /// Rotation policy.
    pub policy: Policy,
    /// Creation time.
    pub created_at: UnixTime,
    /// `enabled`, `disabled`, `pending_deletion` or `deleted`.
    pub state: crate::store::KeyringState,
    /// When a scheduled deletion erases the key material (pending deletion only).
    pub deletion_at: Option<UnixTime>,
    /// Free text for operators.
    pub description: String,
    /// Labels for operators.
    pub tags: std::collections::BTreeMap<String, String>,
    /// Whether versions may be exported sealed to a recipient (fixed at creation).
    pub exportable: bool,
    /// Whether sealing is deterministic (fixed at creation).
    pub convergent: bool,
    /// Whether every version's key lives in custody's token and never leaves
    /// it (fixed at creation; docs/custody.md, "Resident keyrings").
    #[serde(default)]
    pub resident: bool,
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
    /// Seals made with it: this instance's up to now, other instances' as of
    /// their last flush (each scheduler run).
    pub seal_count: u64,
    /// `generated` by the service or `imported`.
    pub origin: crate::store::Origin,
}

pub(super) struct Shared {
    /// Keyrings, versions and nonce reservations.
    pub(super) store: Arc<dyn KeyringStore>,
    /// The audit log, for checkpoints and export.
    pub(super) audit: Arc<dyn AuditStore>,
    /// The custody identity the store records (why a wrapped key may not open).
    pub(super) custody_store: Arc<dyn crate::store::CustodyStore>,
    pub(super) custody: Arc<dyn Custody>,
    pub(super) clock: SharedClock,
    pub(super) config: KeyConfig,
    pub(super) instance: [u8; 8],
    pub(super) metrics: KeyMetrics,
    /// Told the name of every keyring this instance changed, after the commit
    /// ([`KeyService::on_change`]).
    pub(super) announce: crate::coord::Announce,
}

impl Shared {
    /// Announces a committed change to keyring `name` (other instances re-read it).
    pub(super) fn changed(&self, name: &str) {
        self.announce.send(crate::coord::Invalidation::Keyring {
            name: name.to_owned(),
        });
    }
}
