//! [`Change`]: every state change the store applies, each with its audit entry
//! in one transaction ([`super::Store::apply`]).

use super::records::*;
use crate::clock::UnixTime;

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
        /// Revocation time (`revoked_at`).
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
    /// A keyring moves between life-cycle states, refused (a conflict) unless it
    /// is in one of `from`.
    SetKeyringState {
        /// Keyring name.
        name: String,
        /// States the move may start from.
        from: Vec<KeyringState>,
        /// The new state.
        to: KeyringState,
        /// When a scheduled deletion erases it (with `to` pending_deletion).
        deletion_at: Option<UnixTime>,
    },
    /// The end of a scheduled deletion: if the keyring is still pending deletion
    /// and its time has come (`deletion_at <= at`), every version's wrapped key is
    /// erased, its aliases removed, and it becomes `deleted`.
    EraseKeyring {
        /// Keyring name.
        name: String,
        /// Now.
        at: UnixTime,
    },
    /// New description and tags.
    SetKeyringDetails {
        /// Keyring name.
        name: String,
        /// Description.
        description: String,
        /// Tags.
        tags: std::collections::BTreeMap<String, String>,
    },
    /// Point `alias` at a keyring (created or re-pointed); refused when the
    /// keyring does not exist or is deleted.
    PutAlias {
        /// `alias/…`.
        alias: String,
        /// Keyring name.
        keyring: String,
        /// Time of the change.
        at: UnixTime,
    },
    /// Remove an alias (refused as not found when it does not exist).
    DeleteAlias {
        /// `alias/…`.
        alias: String,
    },
    /// A new API token (only its hash).
    CreateToken(TokenRecord),
    /// Revoke an API token.
    RevokeToken {
        /// Token id.
        id: String,
        /// Revocation time (`revoked_at`).
        at: UnixTime,
    },
    /// A new fleet and its (wrapped) issuing key.
    CreateFleet(FleetRecord),
    /// The store moves to another custody root (`fleetkey custody migrate`/`rotate`).
    RewrapCustody(Box<RewrapCustody>),
    /// A device life-cycle transition, refused unless the device is in one of `from`.
    DeviceTransition(Transition),
    /// Publish a key record (its sequence must be above the stored one).
    PutKeyRecord(RecordWrite),
    /// A service key, unless one of that name exists (then nothing changes).
    CreateServiceKey {
        /// The key's name (`custody-identity`, `noise-static`, `noise-kem`, `factory-xwing`).
        name: String,
        /// The secret, wrapped by custody.
        wrapped: Vec<u8>,
        /// The public key.
        public: Vec<u8>,
        /// Creation time (kept only when the key is new).
        at: UnixTime,
    },
    /// Queue a command for a device (no other change: a constrained device's rekey).
    QueueCommand(CommandRecord),
    /// A device's receipt for a command (signed, or an acknowledgement in an
    /// authenticated frame): the open command of `kind` ends in `state`.
    CommandReceipt {
        /// Device id.
        device_id: String,
        /// Command id.
        command_id: String,
        /// What the command must be (`update_config` or `rekey`).
        kind: CommandKind,
        /// `done` or `cancelled`.
        state: CommandState,
        /// Receipt time (the command's `updated_at`).
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
        /// Proposal time (the command's `updated_at`).
        at: UnixTime,
    },
    /// The device proved the new key: swap the registered keys, record the new
    /// operational credential, revoke the old one, `rotating -> active`, command done.
    RotationConfirmed(RotationConfirmed),
    /// The wipe receipt verified (or an operator completed the decommissioning
    /// without one): `decommissioning -> decommissioned`, the wipe command is
    /// done (cancelled when unconfirmed), and server-side per-device secrets are
    /// erased (claim codes, challenges, configuration, pending command state).
    Decommissioned {
        /// Device id.
        device_id: String,
        /// Time of the verified receipt or of the operator's completion.
        at: UnixTime,
        /// Whether the device confirmed its wipe with a signed receipt.
        wipe_confirmed: bool,
    },
    /// Retire a decommissioned device's hardware id so the hardware can be
    /// provisioned again (the old record stays, under `retired_hardware_id`).
    FactoryReset {
        /// Device id.
        device_id: String,
        /// Reset time (`updated_at`).
        at: UnixTime,
    },
    /// A new configuration schema version (must be the next number).
    SetConfigSchema {
        /// The fleet whose devices the schema describes.
        fleet: String,
        /// Version (current + 1).
        version: u32,
        /// JSON Schema text.
        schema: String,
        /// Declared migration from the previous version (JSON array).
        migration: String,
        /// Creation time of the schema version.
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
        /// The fleet.
        fleet: String,
        /// Whether static-key devices may onboard.
        allow: bool,
        /// Time the permission was given (kept while allowed).
        at: UnixTime,
    },
    /// Set (or, with `None`, clear) which device-session patterns the listener
    /// accepts for `scope` (`*`: the service; otherwise a fleet).
    SetSessionPatterns {
        /// `*` or a fleet name.
        scope: String,
        /// Comma-separated pattern names; `None` removes the scope's list.
        patterns: Option<String>,
        /// When.
        at: UnixTime,
    },
    /// Set (or clear) a fleet's credential rotation period.
    SetRotationPolicy {
        /// The fleet whose devices' credentials rotate.
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
        /// After this the code is refused as expired.
        expires_at: UnixTime,
    },
    /// Use a claim code once: binds the device to `claimed_by`.
    UseClaimCode {
        /// SHA-256 of the normalised code.
        hash: [u8; 32],
        /// Account or site.
        claimed_by: String,
        /// Time the code was used (`used_at`; also the expiry check).
        at: UnixTime,
    },
    /// Nothing but the audit entry (for example a rewrap batch).
    AuditOnly,
}

/// A device moves between life-cycle states, with what the move carries (in one transaction).
#[derive(Debug, Clone)]
pub struct Transition {
    /// Device id.
    pub id: String,
    /// States the transition may start from.
    pub from: Vec<DeviceState>,
    /// The new state.
    pub to: DeviceState,
    /// A new operational credential id to record, if any.
    pub operational_credential_id: Option<Vec<u8>>,
    /// Credential ids to add to the revocation list.
    pub revoke: Vec<Vec<u8>>,
    /// A command to queue for the device in the same transaction.
    pub command: Option<CommandRecord>,
    /// Cancel the device's open commands first (decommissioning).
    pub cancel_open_commands: bool,
    /// A key record to publish in the same transaction.
    pub key_record: Option<RecordWrite>,
    /// Time of the move (`updated_at`; also `credential_issued_at` when a credential is recorded).
    pub at: UnixTime,
}

/// A device confirmed its rotated credential: its new keys replace the old.
#[derive(Debug, Clone)]
pub struct RotationConfirmed {
    /// Device id.
    pub device_id: String,
    /// The rotate_credential command.
    pub command_id: String,
    /// The new X25519 key.
    pub x25519: Vec<u8>,
    /// The new Ed25519 key.
    pub ed25519: Vec<u8>,
    /// The new ML-KEM-768 key, if any.
    pub ml_kem_768: Option<Vec<u8>>,
    /// The new ML-DSA-65 key, if any.
    pub ml_dsa_65: Option<Vec<u8>>,
    /// The new operational credential id.
    pub credential_id: Vec<u8>,
    /// The old operational credential id, revoked now.
    pub revoke: Option<Vec<u8>>,
    /// The key record with the new keys.
    pub key_record: Option<RecordWrite>,
    /// Time of the swap (`updated_at` and `credential_issued_at`).
    pub at: UnixTime,
}

impl Transition {
    /// Device `id` moves from one of `from` to `to` at `at`, carrying nothing else
    /// (set the other fields with struct update syntax).
    pub fn new(id: impl Into<String>, from: &[DeviceState], to: DeviceState, at: UnixTime) -> Self {
        Transition {
            id: id.into(),
            from: from.to_vec(),
            to,
            operational_credential_id: None,
            revoke: Vec::new(),
            command: None,
            cancel_open_commands: false,
            key_record: None,
            at,
        }
    }
}
