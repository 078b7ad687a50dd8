//! The records the store keeps: keyrings and versions, fleets and devices,
//! configs and commands, tokens, sessions and key records.

use crate::clock::UnixTime;
use crate::error::Result;
use crate::key_type::KeyType;
use crate::store::audit_log::AuditDraft;

/// A keyring's rotation policy.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize, utoipa::ToSchema,
)]
pub struct Policy {
    /// Rotate when the primary version is this old (seconds). Default 90 days.
    pub rotation_period_secs: i64,
    /// Rotate when the primary version has sealed this many times. Default 2^20.
    pub max_uses: u64,
    /// How long a replaced version stays decrypt-only (seconds). Default 30 days.
    pub overlap_secs: i64,
    /// Keep at most this many versions able to decrypt (including the primary).
    pub keep_last: Option<u32>,
}

impl Default for Policy {
    fn default() -> Self {
        Self {
            rotation_period_secs: 90 * 86_400,
            max_uses: 1 << 20,
            overlap_secs: 30 * 86_400,
            keep_last: None,
        }
    }
}

/// A keyring row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyringRecord {
    /// Unique name; also the key id in every envelope it seals.
    pub name: String,
    /// Key type of every version (an AEAD, a signature algorithm, a MAC).
    pub algorithm: KeyType,
    /// The version that seals.
    pub primary_version: u32,
    /// Versions below this are refused.
    pub min_decrypt_version: u32,
    /// Rotation policy.
    pub policy: Policy,
    /// Creation time.
    pub created_at: UnixTime,
    /// Whether the keyring works, is disabled, waits for deletion or is deleted.
    pub state: KeyringState,
    /// When a scheduled deletion erases the key material (`pending_deletion` only).
    pub deletion_at: Option<UnixTime>,
    /// Free text for operators (at most 256 characters).
    pub description: String,
    /// Labels for operators (at most 50; keys 1–128, values up to 256 characters).
    pub tags: std::collections::BTreeMap<String, String>,
    /// Whether versions may be exported sealed to a recipient (fixed at creation).
    pub exportable: bool,
    /// Whether sealing is deterministic (AES-256-GCM-SIV with a derived nonce;
    /// fixed at creation).
    pub convergent: bool,
    /// Whether every version's key lives in custody's token and never leaves it
    /// (its versions' `wrapped_key` is a reference; fixed at creation).
    pub resident: bool,
}

impl KeyringRecord {
    /// A new, enabled keyring without description or tags.
    pub fn new(
        name: impl Into<String>,
        algorithm: KeyType,
        policy: Policy,
        created_at: UnixTime,
    ) -> Self {
        Self {
            name: name.into(),
            algorithm,
            primary_version: 1,
            min_decrypt_version: 1,
            policy,
            created_at,
            state: KeyringState::Enabled,
            deletion_at: None,
            description: String::new(),
            tags: Default::default(),
            exportable: false,
            convergent: false,
            resident: false,
        }
    }
}

/// An alias row: `alias/…` names a keyring.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AliasRecord {
    /// The alias (`alias/…`).
    pub alias: String,
    /// The keyring it names.
    pub keyring: String,
    /// When it was made or last re-pointed.
    pub updated_at: UnixTime,
}

/// The life of a keyring (docs/operations.md, "Keyring life cycle").
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize, utoipa::ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum KeyringState {
    /// Every operation its key type does.
    Enabled,
    /// Refuses every cryptographic operation until enabled again.
    Disabled,
    /// Refuses every cryptographic operation; erased at `deletion_at` unless cancelled.
    PendingDeletion,
    /// Key material erased: refuses everything, for ever. The name stays taken.
    Deleted,
}

impl KeyringState {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            KeyringState::Enabled => "enabled",
            KeyringState::Disabled => "disabled",
            KeyringState::PendingDeletion => "pending_deletion",
            KeyringState::Deleted => "deleted",
        }
    }

    /// Parses a stored name.
    pub fn parse(s: &str) -> Result<Self> {
        Ok(match s {
            "enabled" => KeyringState::Enabled,
            "disabled" => KeyringState::Disabled,
            "pending_deletion" => KeyringState::PendingDeletion,
            "deleted" => KeyringState::Deleted,
            other => {
                return Err(crate::Error::Corrupt(format!(
                    "unknown keyring state {other:?}"
                )));
            }
        })
    }

    /// Why a keyring in this state refuses an operation (after "keyring NAME").
    pub fn refusal(self) -> &'static str {
        match self {
            KeyringState::Enabled => "is enabled",
            KeyringState::Disabled => "is disabled; enable it to use it",
            KeyringState::PendingDeletion => {
                "is pending deletion; cancel the deletion to use it again"
            }
            KeyringState::Deleted => "is deleted; its key material is erased",
        }
    }
}

/// The life of a key version.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize, utoipa::ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum VersionState {
    /// The primary: seals and opens.
    Active,
    /// Replaced by a newer primary: opens only.
    DecryptOnly,
    /// Revoked in an emergency: refused.
    Revoked,
    /// Fell below the minimum decrypt version; its wrapped key is erased.
    Destroyed,
}

impl VersionState {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            VersionState::Active => "active",
            VersionState::DecryptOnly => "decrypt_only",
            VersionState::Revoked => "revoked",
            VersionState::Destroyed => "destroyed",
        }
    }

    /// Parses a stored name.
    pub fn parse(s: &str) -> Result<Self> {
        Ok(match s {
            "active" => VersionState::Active,
            "decrypt_only" => VersionState::DecryptOnly,
            "revoked" => VersionState::Revoked,
            "destroyed" => VersionState::Destroyed,
            other => {
                return Err(crate::Error::Corrupt(format!(
                    "unknown version state {other:?}"
                )));
            }
        })
    }
}

/// A key version row. `wrapped_key` is the data key sealed by custody; it is empty
/// once the version is destroyed.
#[derive(Clone, PartialEq, Eq)]
pub struct VersionRecord {
    /// Keyring name.
    pub keyring: String,
    /// Version number, from 1.
    pub version: u32,
    /// The data key, wrapped by the custody root key.
    pub wrapped_key: Vec<u8>,
    /// Life-cycle state.
    pub state: VersionState,
    /// When it was made.
    pub created_at: UnixTime,
    /// When it stopped being primary.
    pub retired_at: Option<UnixTime>,
    /// When it was revoked.
    pub revoked_at: Option<UnixTime>,
    /// Seals recorded so far (flushed in batches; see `keys::usage`).
    pub seal_count: u64,
    /// Made by the service, or imported.
    pub origin: Origin,
}

/// Where a version's key material came from.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize, utoipa::ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Origin {
    /// Drawn by the service from the system generator.
    Generated,
    /// Sealed to the service's import recipient by its owner (BYOK).
    Imported,
}

impl Origin {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Origin::Generated => "generated",
            Origin::Imported => "imported",
        }
    }

    /// Parses a stored name.
    pub fn parse(s: &str) -> Result<Self> {
        match s {
            "generated" => Ok(Origin::Generated),
            "imported" => Ok(Origin::Imported),
            other => Err(crate::Error::Corrupt(format!("unknown origin {other:?}"))),
        }
    }
}

impl std::fmt::Debug for VersionRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VersionRecord")
            .field("keyring", &self.keyring)
            .field("version", &self.version)
            .field("state", &self.state)
            .field("created_at", &self.created_at)
            .field("retired_at", &self.retired_at)
            .field("revoked_at", &self.revoked_at)
            .field("seal_count", &self.seal_count)
            .field("origin", &self.origin)
            .finish_non_exhaustive()
    }
}

/// A fleet: a tenant's devices and the key that issues their credentials.
#[derive(Clone, PartialEq, Eq)]
pub struct FleetRecord {
    /// Unique name (a key id: 1–64 of `A-Z a-z 0-9 . _ - : / @ +`).
    pub name: String,
    /// Id of the issuing key (the COSE `kid`).
    pub issuer_key_id: String,
    /// The issuing key's Ed25519 seed, wrapped by custody.
    pub issuer_wrapped: Vec<u8>,
    /// The issuing key's public key.
    pub issuer_public: Vec<u8>,
    /// Lifetime of credentials it issues, seconds.
    pub credential_ttl_secs: i64,
    /// Rotate operational credentials older than this (seconds), if set.
    pub credential_rotation_secs: Option<i64>,
    /// Creation time.
    pub created_at: UnixTime,
}

impl std::fmt::Debug for FleetRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FleetRecord")
            .field("name", &self.name)
            .field("issuer_key_id", &self.issuer_key_id)
            .finish_non_exhaustive()
    }
}

/// A device's life-cycle state. Transitions outside the table in `fleet/` are refused.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize, utoipa::ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum DeviceState {
    /// Registered at the factory, holds a birth credential.
    Manufactured,
    /// Proved possession at first boot; holds an operational credential.
    Onboarded,
    /// In service.
    Active,
    /// Rotating its credential.
    Rotating,
    /// Being decommissioned (credentials revoked, wipe queued).
    Decommissioning,
    /// Gone: keys wiped, secrets erased.
    Decommissioned,
    /// Temporarily refused.
    Suspended,
}

impl DeviceState {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            DeviceState::Manufactured => "manufactured",
            DeviceState::Onboarded => "onboarded",
            DeviceState::Active => "active",
            DeviceState::Rotating => "rotating",
            DeviceState::Decommissioning => "decommissioning",
            DeviceState::Decommissioned => "decommissioned",
            DeviceState::Suspended => "suspended",
        }
    }

    /// Parses a stored name.
    pub fn parse(s: &str) -> Result<Self> {
        Ok(match s {
            "manufactured" => DeviceState::Manufactured,
            "onboarded" => DeviceState::Onboarded,
            "active" => DeviceState::Active,
            "rotating" => DeviceState::Rotating,
            "decommissioning" => DeviceState::Decommissioning,
            "decommissioned" => DeviceState::Decommissioned,
            "suspended" => DeviceState::Suspended,
            other => {
                return Err(crate::Error::Corrupt(format!(
                    "unknown device state {other:?}"
                )));
            }
        })
    }
}

/// A registered device: identity and public keys only (private keys never leave it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceRecord {
    /// fleetkey device id (`dev_…`).
    pub id: String,
    /// Its fleet.
    pub fleet: String,
    /// Hardware identity; unique across all fleets.
    pub hardware_id: String,
    /// Life-cycle state.
    pub state: DeviceState,
    /// The model the factory registered.
    pub model: String,
    /// X25519 public key.
    pub x25519: Vec<u8>,
    /// Ed25519 public key.
    pub ed25519: Vec<u8>,
    /// ML-KEM-768 public key, if any.
    pub ml_kem_768: Option<Vec<u8>>,
    /// ML-DSA-65 public key, if any.
    pub ml_dsa_65: Option<Vec<u8>>,
    /// The birth credential issued at the factory.
    pub birth_credential: Vec<u8>,
    /// The current operational credential's id, once onboarded.
    pub operational_credential_id: Option<Vec<u8>>,
    /// When the current operational credential was issued.
    pub credential_issued_at: Option<UnixTime>,
    /// The account or site that claimed the device, if any.
    pub claimed_by: Option<String>,
    /// After a factory reset: the hardware id this record had (`hardware_id` is
    /// then `retired:<device id>`).
    pub retired_hardware_id: Option<String>,
    /// `full`, `constrained` or `constrained_static`.
    pub profile: String,
    /// When the service last heard from the device (written in batches).
    pub last_seen: Option<UnixTime>,
    /// Registration time.
    pub created_at: UnixTime,
    /// Last change.
    pub updated_at: UnixTime,
}

/// Which of a fleet's devices a listing returns (every field that is set must
/// match).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DeviceFilter {
    /// Only devices in this state.
    pub state: Option<DeviceState>,
    /// Only devices of this profile (`full`, `constrained`, `constrained_static`).
    pub profile: Option<String>,
    /// Only devices not heard from since this time (never heard from included).
    pub seen_before: Option<UnixTime>,
    /// Only devices heard from at or after this time.
    pub seen_after: Option<UnixTime>,
}

/// A fleet's devices of one state and profile, counted (the fleet summary).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceCount {
    /// The life-cycle state.
    pub state: String,
    /// The profile (`full`, `constrained`, `constrained_static`).
    pub profile: String,
    /// How many devices.
    pub devices: i64,
    /// Of those, how many were heard from at or after each of the times asked.
    pub seen: [i64; 3],
    /// Of those, how many were never heard from.
    pub never_seen: i64,
}

/// One factory registration: the device, what the factory recorded, its initial
/// configuration (when the fleet has a schema) and the audit entry.
#[derive(Debug, Clone)]
pub struct Registration {
    /// The device.
    pub device: DeviceRecord,
    /// Manufacturing record.
    pub manufacturing: ManufacturingRecord,
    /// Initial configuration from the schema defaults.
    pub config: Option<StoredConfig>,
    /// Audit entry.
    pub audit: AuditDraft,
    /// The factory secret of a constrained-profile device.
    pub secret: Option<DeviceSecret>,
}

/// A constrained-profile device's factory secret, wrapped by custody.
#[derive(Clone, PartialEq, Eq)]
pub struct DeviceSecret {
    /// `constrained` (X25519 + PSK) or `constrained_static` (lab static key).
    pub profile: String,
    /// The 32-byte secret wrapped by custody (context `device-secret:<hardware id>`).
    pub wrapped: Vec<u8>,
    /// The highest boot counter verified.
    pub last_boot: u32,
}

impl std::fmt::Debug for DeviceSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeviceSecret")
            .field("profile", &self.profile)
            .field("last_boot", &self.last_boot)
            .finish_non_exhaustive()
    }
}

/// What the factory recorded about a device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ManufacturingRecord {
    /// Production batch.
    pub batch: String,
    /// Jig or station.
    pub station: String,
    /// Factory test results (JSON text).
    pub test_results: String,
}

/// A device's stored configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredConfig {
    /// Schema version it was validated against.
    pub schema_version: u32,
    /// Change counter, from 1.
    pub revision: i64,
    /// The configuration (JSON text).
    pub config: String,
    /// Last change.
    pub updated_at: UnixTime,
}

/// One stored schema version of a fleet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SchemaRecord {
    /// Version, from 1.
    pub version: u32,
    /// JSON Schema text.
    pub schema: String,
    /// Declared migration from the previous version (JSON array).
    pub migration: String,
    /// When it was set.
    pub created_at: UnixTime,
}

/// What a command asks a device to do.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize, utoipa::ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum CommandKind {
    /// Present new keys and take a new operational credential.
    RotateCredential,
    /// Apply a new configuration.
    UpdateConfig,
    /// Sign a wipe receipt, then erase all keys.
    Wipe,
    /// A constrained device: start a new boot (fresh salt, new session keys).
    Rekey,
}

/// Where a command is.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize, utoipa::ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum CommandState {
    /// Waiting for the device.
    Pending,
    /// The device started it (a rotation whose new keys await confirmation).
    InProgress,
    /// Carried out (a receipt or a confirmation ended it).
    Done,
    /// Superseded or made moot (for example by decommissioning).
    Cancelled,
}

macro_rules! str_enum {
    ($t:ty, $what:literal, $($v:ident = $s:literal),+ $(,)?) => {
        impl $t {
            /// The stored name.
            pub fn as_str(self) -> &'static str {
                match self { $(Self::$v => $s),+ }
            }
            /// Parses a stored name.
            pub fn parse(s: &str) -> Result<Self> {
                match s {
                    $($s => Ok(Self::$v),)+
                    other => Err(crate::Error::Corrupt(format!(concat!("unknown ", $what, " {:?}"), other))),
                }
            }
        }
    };
}
str_enum!(
    CommandKind,
    "command kind",
    RotateCredential = "rotate_credential",
    UpdateConfig = "update_config",
    Wipe = "wipe",
    Rekey = "rekey"
);
str_enum!(
    CommandState,
    "command state",
    Pending = "pending",
    InProgress = "in_progress",
    Done = "done",
    Cancelled = "cancelled"
);

/// A command for a device, signed by its fleet's issuing key
/// (see `fleet::commands::command_message`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommandRecord {
    /// Id (`cmd_…`).
    pub id: String,
    /// The device.
    pub device_id: String,
    /// What to do.
    pub kind: CommandKind,
    /// Parameters (JSON text, signed).
    pub payload: String,
    /// Ed25519 signature of the fleet's issuing key.
    pub signature: Vec<u8>,
    /// Where it is.
    pub state: CommandState,
    /// Creation time (signed).
    pub created_at: UnixTime,
    /// Last change.
    pub updated_at: UnixTime,
}

/// An API token as stored: never the secret, only its SHA-256.
#[derive(Clone, PartialEq, Eq, serde::Serialize)]
pub struct TokenRecord {
    /// Public id (`tok_…`), safe to log.
    pub id: String,
    /// SHA-256 of the secret.
    #[serde(skip)]
    pub hash: [u8; 32],
    /// Human label.
    pub name: String,
    /// Granted scopes.
    pub scopes: Vec<String>,
    /// Creation time.
    pub created_at: UnixTime,
    /// Expiry, if any.
    pub expires_at: Option<UnixTime>,
    /// Revocation time, if revoked.
    pub revoked_at: Option<UnixTime>,
}

impl std::fmt::Debug for TokenRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenRecord")
            .field("id", &self.id)
            .field("name", &self.name)
            .field("scopes", &self.scopes)
            .finish_non_exhaustive()
    }
}

/// The answer of [`KeyringStore::reserve_nonces`](super::KeyringStore::reserve_nonces).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reservation {
    /// Counters `[start, start + count)` are reserved for the caller's instance id.
    Granted {
        /// First counter.
        start: u32,
        /// How many (at least 1, at most the count asked for).
        count: u32,
        /// Counters of the version reserved before this grant, on every instance.
        reserved_before: u64,
    },
    /// The version's use budget is reserved in full: rotate.
    BudgetSpent,
    /// This instance id's 32-bit counter space for the version would overflow:
    /// lease a fresh instance id. Nothing was reserved.
    SpaceExhausted,
}

/// A signed key record to store with a change (see `crate::directory`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordWrite {
    /// Whose record: `device:<id>` or a service key name.
    pub identity: String,
    /// Its sequence (the stored one plus one).
    pub sequence: u64,
    /// The signed record.
    pub record: Vec<u8>,
    /// Whether it revokes.
    pub revoked: bool,
    /// Issue time.
    pub issued_at: UnixTime,
}

/// A device session (see `migrations/sqlite/0006_device_sessions.sql`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceSessionRecord {
    /// Id: the first 16 bytes of the handshake hash, hex.
    pub id: String,
    /// The device.
    pub device_id: String,
    /// The session it resumed, if any.
    pub previous: Option<String>,
    /// The Noise pattern (`IK`, `XX`, `IKpsk2+ML-KEM-768`).
    pub pattern: String,
    /// The peer address.
    pub peer: String,
    /// When the handshake completed.
    pub started_at: UnixTime,
    /// End, once ended.
    pub ended_at: Option<UnixTime>,
    /// Highest telemetry sequence accepted (at the start, then at the end).
    pub telemetry_seq: u64,
    /// Messages received from the device.
    pub messages_in: u64,
    /// Messages sent to the device.
    pub messages_out: u64,
}

/// Which custody root the store's keys are wrapped under: the custody's public
/// (signing) key and its root id ([`crate::custody::Custody::root_id`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CustodyIdentity {
    /// The composite public key.
    pub public: Vec<u8>,
    /// The wrapping root's name (empty when a store recorded none: before root ids).
    pub root_id: String,
}

/// Where a custody-wrapped blob lives in the store; the domain knows each
/// one's wrap context.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum WrappedAt {
    /// A keyring version's key (`key_versions.wrapped_key`).
    KeyVersion {
        /// Keyring name.
        keyring: String,
        /// Version.
        version: u32,
    },
    /// A fleet's issuing key seed (`fleets.issuer_wrapped`).
    FleetIssuer {
        /// Fleet name.
        fleet: String,
    },
    /// A service key (`service_keys.wrapped`).
    ServiceKey {
        /// Its name.
        name: String,
    },
    /// A constrained device's factory secret (`device_secrets.wrapped`).
    DeviceSecret {
        /// Device id.
        device_id: String,
        /// The hardware id its wrap context names (the retired one after a
        /// factory reset).
        hardware_id: String,
    },
}

/// One custody-wrapped blob.
#[derive(Debug, Clone)]
pub struct CustodyBlob {
    /// Where it is.
    pub at: WrappedAt,
    /// The stored bytes (ciphertext: wrapped keys, never key material).
    pub wrapped: Vec<u8>,
}

/// Moving the store to another custody root: every blob rewrapped, every key
/// record re-signed by the new root's signing key, the recorded identity
/// replaced, all in one transaction. Refused as a conflict when the store no
/// longer matches what was read (another identity, a blob changed or added).
#[derive(Debug, Clone)]
pub struct RewrapCustody {
    /// The identity the store must still record.
    pub from: CustodyIdentity,
    /// The identity it records afterwards.
    pub to: CustodyIdentity,
    /// Each blob: where, its bytes as read, its bytes under the new root.
    pub blobs: Vec<(WrappedAt, Vec<u8>, Vec<u8>)>,
    /// Every identity's record, re-signed (sequence one above the stored one).
    pub records: Vec<RecordWrite>,
}
