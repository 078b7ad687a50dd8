//! Persistence. The [`Store`] trait is what the domain needs; [`sqlite`] is the
//! embedded default. Every change to keyrings is applied together with its audit
//! entry in one transaction ([`Store::apply`]), so the audit log cannot miss a change
//! and a change cannot happen without its audit entry (fail closed).

pub mod audit_log;
pub mod postgres;
mod rows;
mod sql;

/// The store `config` names: PostgreSQL for a `postgres://` `store_url`, SQLite in
/// the data directory otherwise.
pub async fn open(config: &crate::config::Config) -> Result<std::sync::Arc<dyn Store>> {
    Ok(match config.postgres_url() {
        Some(url) => std::sync::Arc::new(
            postgres::PostgresStore::connect_with(
                url,
                config.store_schema.as_deref(),
                config.store_pool_size,
                std::time::Duration::from_millis(config.store_wait_ms),
            )
            .await?,
        ),
        None => std::sync::Arc::new(sqlite::SqliteStore::open(&config.data_dir).await?),
    })
}

/// Refuses an instance whose custody root differs from the one the shared store
/// was started with (several instances must hold the same root key: copy
/// `<data_dir>/root-key.json` and use the same key-encryption key). The first
/// instance records its custody public key.
pub async fn check_custody_identity(
    store: &dyn Store,
    custody_public: &[u8],
    now: crate::clock::UnixTime,
) -> Result<()> {
    const NAME: &str = "custody-identity";
    if store.service_key(NAME).await?.is_none() {
        store
            .apply(
                Change::CreateServiceKey {
                    name: NAME.into(),
                    wrapped: Vec::new(),
                    public: custody_public.to_vec(),
                    at: now,
                },
                crate::store::audit_log::AuditDraft::new(
                    "service",
                    "service.custody_identity",
                    format!("service-key:{NAME}"),
                    serde_json::json!({}),
                ),
                now,
            )
            .await?;
    }
    match store.service_key(NAME).await? {
        Some((_, public)) if public == custody_public => Ok(()),
        _ => Err(crate::Error::CustodyConfig(
            "this instance's custody root key is not the one the store was started with: \
             copy root-key.json from the first instance's data directory and use its \
             key-encryption key"
                .into(),
        )),
    }
}
pub mod sqlite;

use crate::clock::UnixTime;
use crate::error::Result;
use crate::store::audit_log::{AuditDraft, AuditEntry};
use fleetkey_crypto::aead::Algorithm;

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
    /// AEAD of every version.
    pub algorithm: Algorithm,
    /// The version that seals.
    pub primary_version: u32,
    /// Versions below this are refused.
    pub min_decrypt_version: u32,
    /// Rotation policy.
    pub policy: Policy,
    /// Creation time.
    pub created_at: UnixTime,
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
                return Err(crate::Error::Store(format!(
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
            .finish_non_exhaustive()
    }
}

/// A change to keyring state, applied atomically with its audit entry.
#[derive(Debug, Clone)]
pub enum Change {
    /// A new keyring and its first version.
    CreateKeyring {
        /// The keyring.
        keyring: KeyringRecord,
        /// Version 1.
        first: VersionRecord,
    },
    /// A new primary version; the old primary becomes decrypt-only.
    Rotate {
        /// Keyring name.
        name: String,
        /// The new version (state active).
        new: VersionRecord,
        /// The previous primary.
        retire: u32,
        /// Retirement time.
        at: UnixTime,
        /// `(instance id, count)`: the new version's first nonce block, counters
        /// `[0, count)`, reserved for the rotating instance in the same
        /// transaction (so the instance that rotates can always seal with the
        /// version it made, however many others are reserving).
        first_block: Option<([u8; 8], u32)>,
    },
    /// Emergency revocation of one version.
    Revoke {
        /// Keyring name.
        name: String,
        /// The version.
        version: u32,
        /// When.
        at: UnixTime,
    },
    /// A new rotation policy.
    SetPolicy {
        /// Keyring name.
        name: String,
        /// The policy.
        policy: Policy,
    },
    /// Raise the minimum decrypt version and erase the wrapped keys below it.
    RaiseMinimum {
        /// Keyring name.
        name: String,
        /// New minimum.
        min: u32,
    },
    /// A new API token (only its hash).
    CreateToken(TokenRecord),
    /// Revoke an API token.
    RevokeToken {
        /// Token id.
        id: String,
        /// When.
        at: UnixTime,
    },
    /// A new fleet and its (wrapped) issuing key.
    CreateFleet(FleetRecord),
    /// A device life-cycle transition, refused unless the device is in one of `from`.
    DeviceTransition {
        /// Device id.
        id: String,
        /// States the transition may start from.
        from: Vec<DeviceState>,
        /// The new state.
        to: DeviceState,
        /// A new operational credential id to record, if any.
        operational_credential_id: Option<Vec<u8>>,
        /// Credential ids to add to the revocation list.
        revoke: Vec<Vec<u8>>,
        /// A command to queue for the device in the same transaction.
        command: Option<CommandRecord>,
        /// Cancel the device's open commands first (decommissioning).
        cancel_open_commands: bool,
        /// A key record to publish in the same transaction.
        key_record: Option<RecordWrite>,
        /// When.
        at: UnixTime,
    },
    /// Publish a key record (its sequence must be above the stored one).
    PutKeyRecord(RecordWrite),
    /// A service key, unless one of that name exists (then nothing changes).
    CreateServiceKey {
        /// Name.
        name: String,
        /// The secret, wrapped by custody.
        wrapped: Vec<u8>,
        /// The public key.
        public: Vec<u8>,
        /// When.
        at: UnixTime,
    },
    /// A device's signed receipt for a command: the command ends in `state`.
    CommandReceipt {
        /// Device id.
        device_id: String,
        /// Command id.
        command_id: String,
        /// `done` or `cancelled`.
        state: CommandState,
        /// When.
        at: UnixTime,
    },
    /// A device presents the keys it rotates to: the command moves to
    /// `in_progress` and remembers them (JSON in `pending`) until confirmed.
    RotationProposed {
        /// Device id.
        device_id: String,
        /// The rotate_credential command.
        command_id: String,
        /// The proposed keys and new credential id (JSON).
        pending: String,
        /// When.
        at: UnixTime,
    },
    /// The device proved the new key: swap the registered keys, record the new
    /// operational credential, revoke the old one, `rotating -> active`, command done.
    RotationConfirmed {
        /// Device id.
        device_id: String,
        /// The rotate_credential command.
        command_id: String,
        /// The new X25519 key.
        x25519: Vec<u8>,
        /// The new Ed25519 key.
        ed25519: Vec<u8>,
        /// The new ML-KEM-768 key, if any.
        ml_kem_768: Option<Vec<u8>>,
        /// The new ML-DSA-65 key, if any.
        ml_dsa_65: Option<Vec<u8>>,
        /// The new operational credential id.
        credential_id: Vec<u8>,
        /// The old operational credential id, revoked now.
        revoke: Option<Vec<u8>>,
        /// The key record with the new keys.
        key_record: Option<RecordWrite>,
        /// When.
        at: UnixTime,
    },
    /// The wipe receipt verified: `decommissioning -> decommissioned`, the wipe
    /// command is done, and server-side per-device secrets are erased (claim codes,
    /// challenges, configuration, pending command state).
    Decommissioned {
        /// Device id.
        device_id: String,
        /// When.
        at: UnixTime,
    },
    /// Retire a decommissioned device's hardware id so the hardware can be
    /// provisioned again (the old record stays, under `retired_hardware_id`).
    FactoryReset {
        /// Device id.
        device_id: String,
        /// When.
        at: UnixTime,
    },
    /// A new configuration schema version (must be the next number).
    SetConfigSchema {
        /// Fleet.
        fleet: String,
        /// Version (current + 1).
        version: u32,
        /// JSON Schema text.
        schema: String,
        /// Declared migration from the previous version (JSON array).
        migration: String,
        /// When.
        at: UnixTime,
    },
    /// Store a device's configuration if its revision is still `expected_revision`
    /// (0: none stored), queueing `command` and cancelling older open config updates.
    PutDeviceConfig {
        /// Device id.
        device_id: String,
        /// The new config.
        config: StoredConfig,
        /// The revision it replaces.
        expected_revision: i64,
        /// An update_config command for the device.
        command: Option<CommandRecord>,
    },
    /// Allow or refuse static-key (lab) devices in a fleet.
    SetFleetStaticKey {
        /// Fleet.
        fleet: String,
        /// Allowed.
        allow: bool,
        /// When.
        at: UnixTime,
    },
    /// Set (or clear) a fleet's credential rotation period.
    SetRotationPolicy {
        /// Fleet.
        fleet: String,
        /// Seconds; `None` rotates only on request.
        period_secs: Option<i64>,
    },
    /// A new claim code (only its hash).
    CreateClaimCode {
        /// SHA-256 of the normalised code.
        hash: [u8; 32],
        /// The device it claims.
        device_id: String,
        /// Creation time.
        at: UnixTime,
        /// Expiry.
        expires_at: UnixTime,
    },
    /// Use a claim code once: binds the device to `claimed_by`.
    UseClaimCode {
        /// SHA-256 of the normalised code.
        hash: [u8; 32],
        /// Account or site.
        claimed_by: String,
        /// When.
        at: UnixTime,
    },
    /// Nothing but the audit entry (for example a rewrap batch).
    AuditOnly,
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
                return Err(crate::Error::Store(format!(
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
    /// Model.
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
    /// Registration time.
    pub created_at: UnixTime,
    /// Last change.
    pub updated_at: UnixTime,
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
    /// Finished.
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
                    other => Err(crate::Error::Store(format!(concat!("unknown ", $what, " {:?}"), other))),
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
    Wipe = "wipe"
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

/// The answer of [`Store::reserve_nonces`].
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

/// What the domain needs from storage.
#[async_trait::async_trait]
pub trait Store: Send + Sync {
    /// One keyring.
    async fn keyring(&self, name: &str) -> Result<Option<KeyringRecord>>;
    /// All keyrings, by name.
    async fn keyrings(&self) -> Result<Vec<KeyringRecord>>;
    /// A keyring's versions, oldest first.
    async fn versions(&self, name: &str) -> Result<Vec<VersionRecord>>;
    /// Applies `change` and appends its audit entry in one transaction.
    async fn apply(&self, change: Change, audit: AuditDraft, now: UnixTime) -> Result<AuditEntry>;
    /// Reserves up to `count` nonce counters for (keyring, version, instance)
    /// durably before they are used. Atomically with the reservation, the counters
    /// reserved for the version on every instance are capped at `budget` (the
    /// version's `max_uses`): the grant is `min(count, budget - reserved)`, and
    /// concurrent reservations from any number of instances never exceed the
    /// budget together.
    async fn reserve_nonces(
        &self,
        keyring: &str,
        version: u32,
        instance: [u8; 8],
        count: u32,
        budget: u64,
    ) -> Result<Reservation>;
    /// Gives back the unused tail of a reservation on a clean shutdown: sets the
    /// high-water mark from `end` down to `used_end`, but only if it is still `end`
    /// (nobody reserved after us). Returns whether it did.
    async fn release_nonces(
        &self,
        keyring: &str,
        version: u32,
        instance: [u8; 8],
        end: u64,
        used_end: u64,
    ) -> Result<bool>;
    /// The highest reserved counter for every instance of a version (for recovery
    /// and usage accounting).
    async fn reserved_nonces(&self, keyring: &str, version: u32) -> Result<u64>;
    /// Adds seal counts in one transaction.
    async fn add_seal_counts(&self, counts: &[(String, u32, u64)]) -> Result<()>;
    /// Leases an 8-byte instance id for `holder`: the existing unretired one, or a
    /// fresh random one that no instance has ever had.
    async fn lease_instance(&self, holder: &str, now: UnixTime) -> Result<[u8; 8]>;
    /// The token whose secret hashes to `hash`.
    async fn token_by_hash(&self, hash: &[u8; 32]) -> Result<Option<TokenRecord>>;
    /// All tokens (without secrets).
    async fn tokens(&self) -> Result<Vec<TokenRecord>>;
    /// One fleet.
    async fn fleet(&self, name: &str) -> Result<Option<FleetRecord>>;
    /// One device by id.
    async fn device(&self, id: &str) -> Result<Option<DeviceRecord>>;
    /// One device by hardware identity.
    async fn device_by_hardware_id(&self, hardware_id: &str) -> Result<Option<DeviceRecord>>;
    /// A fleet's devices with `id > after`, by id, at most `limit`.
    async fn devices(&self, fleet: &str, after: &str, limit: u32) -> Result<Vec<DeviceRecord>>;
    /// Registers many devices in **one** transaction (one disk flush): each item
    /// succeeds or fails on its own; a hardware identity already registered fails
    /// with [`crate::Error::DeviceExists`].
    async fn register_devices(
        &self,
        items: Vec<Registration>,
        now: UnixTime,
    ) -> Result<Vec<Result<AuditEntry>>>;
    /// A fleet's configuration schema versions, oldest first.
    async fn config_schemas(&self, fleet: &str) -> Result<Vec<SchemaRecord>>;
    /// A device's stored configuration.
    async fn device_config(&self, device_id: &str) -> Result<Option<StoredConfig>>;
    /// Stored configurations of a fleet's devices with `id > after`, by id.
    async fn device_configs(
        &self,
        fleet: &str,
        after: &str,
        limit: u32,
    ) -> Result<Vec<(String, StoredConfig)>>;
    /// One command.
    async fn command(&self, id: &str) -> Result<Option<CommandRecord>>;
    /// A device's commands, oldest first; only pending and in-progress ones if `open`.
    async fn commands(&self, device_id: &str, open: bool) -> Result<Vec<CommandRecord>>;
    /// The proposed state of an in-progress command (a rotation's new keys).
    async fn command_pending(&self, id: &str) -> Result<Option<String>>;
    /// Onboarded or active devices of `fleet` whose operational credential was
    /// issued before `before` and that have no open rotation, at most `limit`.
    async fn devices_due_rotation(
        &self,
        fleet: &str,
        before: UnixTime,
        limit: u32,
    ) -> Result<Vec<String>>;
    /// Fleets with a credential rotation period.
    async fn fleets_with_rotation(&self) -> Result<Vec<FleetRecord>>;
    /// A service key: (wrapped secret, public key).
    async fn service_key(&self, name: &str) -> Result<Option<(Vec<u8>, Vec<u8>)>>;
    /// The device whose X25519 key this is.
    async fn device_by_x25519(&self, key: &[u8]) -> Result<Option<DeviceRecord>>;
    /// The newest key record of an identity: (sequence, signed record).
    async fn key_record(&self, identity: &str) -> Result<Option<(u64, Vec<u8>)>>;
    /// Key records issued before `before`, oldest first, at most `limit`.
    async fn key_records_issued_before(
        &self,
        before: UnixTime,
        limit: u32,
    ) -> Result<Vec<(String, Vec<u8>)>>;
    /// Stores a single-use onboarding challenge.
    async fn put_challenge(
        &self,
        nonce: &[u8; 32],
        device_id: &str,
        issued_at: UnixTime,
        expires_at: UnixTime,
    ) -> Result<()>;
    /// Consumes a challenge for `device_id` at `now`; returns its issue time.
    /// Unknown, used and expired challenges fail with [`crate::Error::ChallengeRefused`].
    async fn take_challenge(
        &self,
        nonce: &[u8; 32],
        device_id: &str,
        now: UnixTime,
    ) -> Result<UnixTime>;
    /// The device a claim code (by hash) belongs to.
    async fn device_by_claim_hash(&self, hash: &[u8; 32]) -> Result<Option<DeviceRecord>>;
    /// Whether a credential id is on the revocation list.
    async fn is_revoked(&self, credential_id: &[u8]) -> Result<bool>;
    /// Audit entries with `seq > after`, at most `limit`.
    async fn audit_entries(&self, after: u64, limit: u32) -> Result<Vec<AuditEntry>>;
    /// Stores a signed checkpoint.
    async fn put_checkpoint(&self, checkpoint: &crate::store::audit_log::Checkpoint) -> Result<()>;
    /// The newest checkpoint.
    async fn latest_checkpoint(&self) -> Result<Option<crate::store::audit_log::Checkpoint>>;
    /// A constrained-profile device's factory secret.
    async fn device_secret(&self, device_id: &str) -> Result<Option<DeviceSecret>>;
    /// Raises a constrained device's verified boot counter; false if `boot` is not
    /// above the stored one (an old boot).
    async fn raise_device_boot(&self, device_id: &str, boot: u32) -> Result<bool>;
    /// Whether a fleet accepts static-key (lab) devices.
    async fn fleet_allows_static_key(&self, fleet: &str) -> Result<bool>;
    /// Records a device session that has just begun.
    async fn open_device_session(&self, session: &DeviceSessionRecord) -> Result<()>;
    /// Records how a device session ended.
    async fn close_device_session(
        &self,
        id: &str,
        ended_at: UnixTime,
        telemetry_seq: u64,
        messages_in: u64,
        messages_out: u64,
    ) -> Result<()>;
    /// A device session by id.
    async fn device_session(&self, id: &str) -> Result<Option<DeviceSessionRecord>>;
    /// The highest telemetry sequence recorded for a device over its ended sessions
    /// (kept when their rows are pruned).
    async fn device_telemetry_seq(&self, device_id: &str) -> Result<u64>;
    /// Deletes the records of sessions that started before `before` and have
    /// ended, or were abandoned (never recorded as ended — the server was killed —
    /// and the device has a newer session since); returns how many. A session
    /// still open and the device's latest stays.
    async fn prune_device_sessions(&self, before: UnixTime) -> Result<u64>;
    /// Deletes onboarding challenges that expired before `expired_before` (used or
    /// not); returns how many.
    async fn prune_challenges(&self, expired_before: UnixTime) -> Result<u64>;
    /// Whether this instance runs the scheduled jobs (rotation by age, policy
    /// runs, pruning) now: one instance at a time per store. The embedded store
    /// has one process, which always leads.
    async fn scheduler_leader(&self) -> Result<bool> {
        Ok(true)
    }
}

/// A signed key record to store with a change (see `crate::directory`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordWrite {
    /// Identity.
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
    /// Start.
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
