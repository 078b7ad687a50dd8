//! Persistence. The [`Store`] trait is what the domain needs; [`sqlite`] is the
//! embedded default. Every change to keyrings is applied together with its audit
//! entry in one transaction ([`Changes::apply`]), so the audit log cannot miss a change
//! and a change cannot happen without its audit entry (fail closed).

pub(crate) mod audit_log;
mod change;
pub mod postgres;
mod records;
mod rows;
mod sql;

pub use change::{Change, RotationConfirmed, Transition};
pub use records::*;

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

/// The service key under which the store records its custody's identity: the
/// public key in `public`, the root id (UTF-8) in `wrapped`.
pub const CUSTODY_IDENTITY: &str = "custody-identity";

/// Refuses an instance whose custody root differs from the one the shared store
/// was started with (several instances must hold the same root: the same
/// `<data_dir>/root-key.json` and key-encryption key, or the same token and
/// label). The first instance records its custody's identity; from then on
/// every change this store handle applies is refused if the store moves to
/// another root ([`CustodyStore::expect_custody`]).
pub async fn check_custody_identity(
    store: &dyn Store,
    custody: &dyn crate::custody::Custody,
    now: crate::clock::UnixTime,
) -> Result<()> {
    record_custody_identity(store, custody, now).await?;
    refuse_other_custody(store, custody).await?;
    store.expect_custody(CustodyIdentity {
        public: custody.public_key(),
        root_id: custody.root_id(),
    });
    Ok(())
}

/// Records `custody`'s identity in a store that has none yet (a concurrent
/// first start may win: the store then keeps the first).
pub async fn record_custody_identity(
    store: &dyn Store,
    custody: &dyn crate::custody::Custody,
    now: crate::clock::UnixTime,
) -> Result<()> {
    const NAME: &str = CUSTODY_IDENTITY;
    let mine = CustodyIdentity {
        public: custody.public_key(),
        root_id: custody.root_id(),
    };
    if store.service_key(NAME).await?.is_none() {
        store
            .apply(
                Change::CreateServiceKey {
                    name: NAME.into(),
                    wrapped: mine.root_id.clone().into_bytes(),
                    public: mine.public.clone(),
                    at: now,
                },
                crate::store::audit_log::AuditDraft::new(
                    "service",
                    "service.custody_identity",
                    format!("service-key:{NAME}"),
                    serde_json::json!({ "backend": custody.backend(), "root": mine.root_id }),
                ),
                now,
            )
            .await?;
    }
    Ok(())
}

/// Whether the store's recorded identity is `mine` (a store that recorded no
/// root id matches on the public key alone).
pub fn same_custody(recorded: &CustodyIdentity, mine: &CustodyIdentity) -> bool {
    recorded.public == mine.public
        && (recorded.root_id.is_empty() || recorded.root_id == mine.root_id)
}

/// Refuses custody whose root differs from the one recorded in the store, if
/// one is recorded ([`check_custody_identity`] records it; local admin commands
/// only check).
pub async fn refuse_other_custody(
    store: &dyn Store,
    custody: &dyn crate::custody::Custody,
) -> Result<()> {
    let mine = CustodyIdentity {
        public: custody.public_key(),
        root_id: custody.root_id(),
    };
    match store.custody_identity().await? {
        None => Ok(()),
        Some(recorded) if same_custody(&recorded, &mine) => Ok(()),
        Some(recorded) => Err(crate::Error::CustodyConfig(format!(
            "this instance's custody root ({}) is not the one the store was started with or moved to ({}): every \
             instance needs the same root (local custody: the first instance's \
             root-key.json and its key-encryption key; pkcs11: the same token and \
             FLEETKEY_PKCS11_LABEL; vault: the same transit key; aws-kms: the same \
             FLEETKEY_AWS_KMS_KEY_ID and FLEETKEY_AWS_KMS_MAC_KEY_ID); after `fleetkey custody \
             migrate` or `rotate`, start instances with the new custody settings",
            mine.root_id,
            if recorded.root_id.is_empty() {
                "a root recorded before root ids"
            } else {
                recorded.root_id.as_str()
            }
        ))),
    }
}
pub mod sqlite;

use crate::clock::UnixTime;
use crate::error::Result;
use crate::store::audit_log::{AuditDraft, AuditEntry};

/// What the domain needs from storage, as one trait object: every narrow trait
/// below. Each service holds only the narrow trait it uses (a [`TokenStore`] for
/// tokens, a [`SessionStore`] for the device listener's sessions, …), so what a
/// service can touch is written in its type. Every type with all of them is one.
pub trait Store:
    KeyringStore
    + TokenStore
    + AuditStore
    + DirectoryStore
    + FleetStore
    + OnboardingStore
    + CommandStore
    + SessionStore
    + HistoryStore
    + SchedulerStore
    + CustodyStore
{
}

impl<T> Store for T where
    T: KeyringStore
        + TokenStore
        + AuditStore
        + DirectoryStore
        + FleetStore
        + OnboardingStore
        + CommandStore
        + SessionStore
        + HistoryStore
        + SchedulerStore
        + CustodyStore
{
}

/// Writing: every change, applied with its audit entry in one transaction.
#[async_trait::async_trait]
pub trait Changes: Send + Sync {
    /// Applies `change` and appends its audit entry in one transaction.
    async fn apply(&self, change: Change, audit: AuditDraft, now: UnixTime) -> Result<AuditEntry>;
}

/// What custody protects in the store, for moving it to another root
/// (`rewrap/`), and the guard that keeps an instance on an old root from
/// writing.
#[async_trait::async_trait]
pub trait CustodyStore: Changes {
    /// Every custody-wrapped blob, in a stable order: keyring versions' keys
    /// (not resident keyrings' references, not erased keys), fleets' issuing
    /// keys, service keys (not the custody identity itself), constrained
    /// devices' factory secrets.
    async fn custody_blobs(&self) -> Result<Vec<CustodyBlob>>;
    /// Every identity's newest key record (revoked ones too), by identity.
    async fn all_key_records(&self) -> Result<Vec<(String, Vec<u8>)>>;
    /// The custody identity the store records, if any.
    async fn custody_identity(&self) -> Result<Option<CustodyIdentity>>;
    /// From now on every change this handle applies is refused unless the
    /// store still records `identity`: an instance whose store moved to
    /// another root (`fleetkey custody migrate`) must not write keys wrapped by,
    /// or records signed with, the old one.
    fn expect_custody(&self, identity: CustodyIdentity);
    /// Whether this handle expects a custody identity and the store now
    /// records another (it was moved under this instance).
    async fn custody_moved(&self) -> Result<bool>;
}

/// `e`, or, when a wrapped key did not open because the store was moved to
/// another custody root under this instance, that reason (503
/// `custody_unavailable`: the instance needs the new settings, the caller's
/// envelope is fine).
pub async fn explain_unwrap(store: &dyn CustodyStore, e: crate::Error) -> crate::Error {
    if matches!(e, crate::Error::Envelope(_)) && store.custody_moved().await.unwrap_or(false) {
        return crate::Error::CustodyUnavailable(
            "a wrapped key did not open: the store was moved to another custody root while \
             this instance runs on the old one; restart it with the new custody settings"
                .into(),
        );
    }
    e
}

/// Keyrings, their versions and the nonce counters reserved for them (`keys/`).
#[async_trait::async_trait]
pub trait KeyringStore: Changes {
    /// One keyring.
    async fn keyring(&self, name: &str) -> Result<Option<KeyringRecord>>;
    /// All keyrings, by name.
    async fn keyrings(&self) -> Result<Vec<KeyringRecord>>;
    /// The keyring an alias names.
    async fn alias(&self, alias: &str) -> Result<Option<String>>;
    /// Aliases, by alias; only those naming `keyring` when given.
    async fn aliases(&self, keyring: Option<&str>) -> Result<Vec<AliasRecord>>;
    /// A keyring's versions, oldest first.
    async fn versions(&self, name: &str) -> Result<Vec<VersionRecord>>;
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
}

/// API tokens (`tokens.rs`).
#[async_trait::async_trait]
pub trait TokenStore: Changes {
    /// The token whose secret hashes to `hash`.
    async fn token_by_hash(&self, hash: &[u8; 32]) -> Result<Option<TokenRecord>>;
    /// All tokens (without secrets).
    async fn tokens(&self) -> Result<Vec<TokenRecord>>;
    /// An AWS access key, kept as the service key `name`
    /// (`aws-access-key:<id>`): its custody-wrapped secret and the hash of
    /// the token it is bound to.
    async fn aws_access_key(&self, name: &str) -> Result<Option<(Vec<u8>, Vec<u8>)>>;
}

/// The audit log and its signed checkpoints (`audit/`).
#[async_trait::async_trait]
pub trait AuditStore: Changes {
    /// Audit entries with `seq > after`, at most `limit`.
    async fn audit_entries(&self, after: u64, limit: u32) -> Result<Vec<AuditEntry>>;
    /// Stores a signed checkpoint.
    async fn put_checkpoint(&self, checkpoint: &crate::store::audit_log::Checkpoint) -> Result<()>;
    /// The newest checkpoint.
    async fn latest_checkpoint(&self) -> Result<Option<crate::store::audit_log::Checkpoint>>;
    /// The oldest checkpoint at or after `seq` (the first one covering entry `seq`).
    async fn checkpoint_covering(
        &self,
        seq: u64,
    ) -> Result<Option<crate::store::audit_log::Checkpoint>>;
}

/// Signed key records and the service's own keys (`directory/`).
#[async_trait::async_trait]
pub trait DirectoryStore: Changes {
    /// The newest key record of an identity: (sequence, signed record).
    async fn key_record(&self, identity: &str) -> Result<Option<(u64, Vec<u8>)>>;
    /// Key records issued before `before`, oldest first, at most `limit`.
    async fn key_records_issued_before(
        &self,
        before: UnixTime,
        limit: u32,
    ) -> Result<Vec<(String, Vec<u8>)>>;
    /// A service key: (wrapped secret, public key).
    async fn service_key(&self, name: &str) -> Result<Option<(Vec<u8>, Vec<u8>)>>;
}

/// Fleets, their devices and their configuration (`fleet/`: registry, factory, configuration).
#[async_trait::async_trait]
pub trait FleetStore: Changes {
    /// One fleet.
    async fn fleet(&self, name: &str) -> Result<Option<FleetRecord>>;
    /// Fleets with a credential rotation period.
    async fn fleets_with_rotation(&self) -> Result<Vec<FleetRecord>>;
    /// One device by id.
    async fn device(&self, id: &str) -> Result<Option<DeviceRecord>>;
    /// One device by hardware identity.
    async fn device_by_hardware_id(&self, hardware_id: &str) -> Result<Option<DeviceRecord>>;
    /// Fleets with `name > after`, by name, at most `limit`.
    async fn fleets(&self, after: &str, limit: u32) -> Result<Vec<FleetRecord>>;
    /// A fleet's devices that pass `filter` with `id > after`, by id, at most `limit`.
    async fn devices(
        &self,
        fleet: &str,
        filter: &DeviceFilter,
        after: &str,
        limit: u32,
    ) -> Result<Vec<DeviceRecord>>;
    /// A fleet's devices counted by state and profile, with how many of each were
    /// heard from at or after each of `since` and how many never: one query.
    async fn device_counts(&self, fleet: &str, since: [UnixTime; 3]) -> Result<Vec<DeviceCount>>;
    /// Per fleet, of the devices holding an operational credential (onboarded,
    /// active, rotating), how many credentials expire before `soon` and how
    /// many expired before `now` (issued + the fleet's credential lifetime).
    async fn credential_expiry_counts(
        &self,
        now: UnixTime,
        soon: UnixTime,
    ) -> Result<Vec<(String, i64, i64)>>;
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
}

/// Onboarding challenges, the revocation list, claim codes and constrained
/// devices' boot counters (`fleet/`: onboarding).
#[async_trait::async_trait]
pub trait OnboardingStore: Changes {
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
    /// Deletes onboarding challenges that expired before `expired_before` (used or
    /// not); returns how many.
    async fn prune_challenges(&self, expired_before: UnixTime) -> Result<u64>;
    /// The device a claim code (by hash) belongs to.
    async fn device_by_claim_hash(&self, hash: &[u8; 32]) -> Result<Option<DeviceRecord>>;
    /// A constrained-profile device's factory secret.
    async fn device_secret(&self, device_id: &str) -> Result<Option<DeviceSecret>>;
    /// Raises a constrained device's verified boot counter; false if `boot` is not
    /// above the stored one (an old boot).
    async fn raise_device_boot(&self, device_id: &str, boot: u32) -> Result<bool>;
    /// Takes the next server→device frame counter of a constrained device (an
    /// atomic increment, so two instances never take the same one); `None` if the
    /// device has no factory secret (not constrained, or decommissioned).
    async fn next_down_counter(&self, device_id: &str) -> Result<Option<u32>>;
    /// Whether a fleet accepts static-key (lab) devices.
    async fn fleet_allows_static_key(&self, fleet: &str) -> Result<bool>;
    /// Whether a credential id is on the revocation list.
    async fn is_revoked(&self, credential_id: &[u8]) -> Result<bool>;
}

/// Commands queued for devices and the rotations they carry (`fleet/`: commands).
#[async_trait::async_trait]
pub trait CommandStore: Changes {
    /// One command.
    async fn command(&self, id: &str) -> Result<Option<CommandRecord>>;
    /// A device's commands, oldest first; only pending and in-progress ones if `open`.
    async fn commands(&self, device_id: &str, open: bool) -> Result<Vec<CommandRecord>>;
    /// The proposed state of an in-progress command (a rotation's new keys).
    async fn command_pending(&self, id: &str) -> Result<Option<String>>;
    /// Onboarded or active full-profile devices of `fleet` whose operational credential was
    /// issued before `before` and that have no open rotation, at most `limit`.
    async fn devices_due_rotation(
        &self,
        fleet: &str,
        before: UnixTime,
        limit: u32,
    ) -> Result<Vec<String>>;
}

/// A device's history as operators read it (`GET …/devices/{id}/history`): its
/// audit entries and its sessions, newest first.
#[async_trait::async_trait]
pub trait HistoryStore: Send + Sync {
    /// Audit entries whose subject is `subject` (`device:<id>`), newest first, at
    /// most `limit`, only those with `seq < before` when it is given.
    async fn audit_entries_about(
        &self,
        subject: &str,
        before: Option<u64>,
        limit: u32,
    ) -> Result<Vec<AuditEntry>>;
    /// The device's recorded sessions, newest first, at most `limit` (ended
    /// sessions are pruned after a while: docs/operations.md).
    async fn device_sessions(
        &self,
        device_id: &str,
        limit: u32,
    ) -> Result<Vec<DeviceSessionRecord>>;
}

/// Device sessions as the device listener sees them (`fleet/sessions.rs`).
#[async_trait::async_trait]
pub trait SessionStore: Changes {
    /// The device whose X25519 key this is.
    async fn device_by_x25519(&self, key: &[u8]) -> Result<Option<DeviceRecord>>;
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
    /// The session patterns stored for `scope` (`*` or a fleet), comma-separated.
    async fn session_patterns(&self, scope: &str) -> Result<Option<String>>;
    /// How many of a fleet's devices have a session not recorded as ended and
    /// were heard from at or after `live_after` (the summary's "connected now").
    async fn connected_device_count(&self, fleet: &str, live_after: UnixTime) -> Result<i64>;
    /// Raises each device's `last_seen` to the time given (never lowers it), in
    /// one transaction.
    async fn record_seen(&self, seen: &[(String, UnixTime)]) -> Result<()>;
    /// Per fleet, how many devices were seen at or after each of `since`.
    async fn seen_counts(&self, since: [UnixTime; 3]) -> Result<Vec<(String, [i64; 3])>>;
    /// Of `fleet`'s devices with ids in `[from, up_to]`, those with a session
    /// not recorded as ended whose device was seen at or after `live_after`.
    async fn connected_devices(
        &self,
        fleet: &str,
        from: &str,
        up_to: &str,
        live_after: UnixTime,
    ) -> Result<Vec<String>>;
}

/// Who runs the scheduled jobs when several instances share the store.
#[async_trait::async_trait]
pub trait SchedulerStore: Send + Sync {
    /// Whether this instance runs the scheduled jobs (rotation by age, policy
    /// runs, pruning) now: one instance at a time per store. The embedded store
    /// has one process, which always leads.
    async fn scheduler_leader(&self) -> Result<bool> {
        Ok(true)
    }
}
