//! The one error type of `fleetkey-server`.

/// What can go wrong in the service core. Variants are grouped by whose fault it is;
/// each says when it happens and what to do.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    // --- the caller asked for something that does not exist or is not allowed ---
    /// No keyring with this name. Check the name (`fleetkey keys list`).
    #[error("keyring {0:?} not found")]
    KeyringNotFound(String),
    /// A keyring with this name already exists.
    #[error("keyring {0:?} already exists")]
    KeyringExists(String),
    /// The envelope names a key version the keyring never had.
    #[error("keyring {keyring:?} has no version {version}")]
    UnknownVersion {
        /// Keyring name.
        keyring: String,
        /// Version named by the envelope.
        version: u32,
    },
    /// The version was revoked in an emergency: data sealed with it is refused.
    #[error("keyring {keyring:?} version {version} is revoked")]
    Revoked {
        /// Keyring name.
        keyring: String,
        /// Revoked version.
        version: u32,
    },
    /// The version is older than the keyring's minimum decrypt version (its overlap
    /// window ended, or it fell out of "keep last N"). Rewrap data before this happens.
    #[error("keyring {keyring:?} version {version} is below the minimum decrypt version {min}")]
    BelowMinimum {
        /// Keyring name.
        keyring: String,
        /// Version named by the envelope.
        version: u32,
        /// The keyring's current minimum.
        min: u32,
    },
    /// The envelope was sealed by another keyring.
    #[error("envelope belongs to keyring {found:?}, not {expected:?}")]
    WrongKeyring {
        /// Keyring asked to open it.
        expected: String,
        /// Keyring named in the envelope.
        found: String,
    },
    /// The keyring's key type does not do this operation.
    #[error("keyring {keyring:?} holds {key_type} keys, not {needs} keys")]
    WrongKeyType {
        /// The keyring.
        keyring: String,
        /// Its key type.
        key_type: &'static str,
        /// What the operation needs (`encryption`, `signing`, `MAC`).
        needs: &'static str,
    },
    /// A digest was sent to a keyring whose type has no standard prehash mode
    /// for that hash (the composite, MACs; Ed25519ph takes SHA-512 only).
    #[error(
        "{key_type} keyrings have no standard prehash mode for {hash} digests; send the message"
    )]
    NoPrehash {
        /// The keyring's key type.
        key_type: &'static str,
        /// The digest's hash.
        hash: &'static str,
    },
    /// The keyring is disabled, pending deletion or deleted
    /// (docs/operations.md, "Keyring life cycle").
    #[error("keyring {keyring:?} {}", .state.refusal())]
    KeyringUnusable {
        /// The keyring.
        keyring: String,
        /// Its state.
        state: crate::store::KeyringState,
    },
    /// The keyring was not created exportable; its key material never leaves the
    /// service.
    #[error("keyring {0:?} is not exportable (chosen at creation, never changed)")]
    NotExportable(String),
    /// The configured custody cannot do what was asked (resident keyrings need
    /// an HSM that keeps keys: `FLEETKEY_CUSTODY=pkcs11` with AES-GCM).
    #[error("{0}")]
    CustodyUnsupported(String),
    /// Imported key material was refused: not an envelope, sealed to another or
    /// an expired import recipient, bound to another keyring, tampered, or not 32
    /// bytes. Fetch the import recipient again and seal as documented.
    #[error("import refused: {0}")]
    ImportRefused(&'static str),
    /// No alias of this name. Aliases are listed by `fleetkey keys alias list`.
    #[error("alias {0:?} not found")]
    AliasNotFound(String),
    /// No such fleet.
    #[error("fleet {0:?} not found")]
    FleetNotFound(String),
    /// A fleet with this name exists.
    #[error("fleet {0:?} already exists")]
    FleetExists(String),
    /// No such device.
    #[error("device {0:?} not found")]
    DeviceNotFound(String),
    /// A device with this hardware identity is registered already (with other keys
    /// or in another fleet). Re-provisioning needs the factory reset flow.
    #[error("a device with hardware id {0:?} is already registered")]
    DeviceExists(String),
    /// A device public key is already registered to another device (cloned key
    /// material); every device must make its own keys.
    #[error("this {0} public key is already registered to another device")]
    DuplicateKey(&'static str),
    /// A device life-cycle transition outside the table (for example onboarding a
    /// decommissioned device).
    #[error("device is {from}; it cannot become {to}")]
    IllegalTransition {
        /// Current state.
        from: &'static str,
        /// Requested state.
        to: &'static str,
    },
    /// An onboarding challenge is unknown, already used (a replay) or expired. Ask
    /// for a new challenge.
    #[error("onboarding challenge refused: {0}")]
    ChallengeRefused(&'static str),
    /// A device credential or proof of possession was refused (bad signature,
    /// wrong role, another fleet, revoked, not matching the registry).
    #[error("device credential refused: {0}")]
    CredentialRefused(&'static str),
    /// A claim code is unknown, used or expired. Ask for a new one.
    #[error("claim code refused: {0}")]
    ClaimRefused(&'static str),
    /// A device configuration does not satisfy its fleet's schema (invalid value,
    /// missing field or unknown field). Fix the value at `path`.
    #[error("invalid config at {path}: {why}")]
    InvalidConfig {
        /// JSON Pointer of the first failing value.
        path: String,
        /// What the schema says (never the submitted value).
        why: String,
    },
    /// A device public key that is well-formed but unsafe to accept (a low-order
    /// X25519 point, an all-zero Ed25519 key).
    #[error("{0} key refused: {1}")]
    KeyRefused(&'static str, &'static str),
    /// A config schema (or its migration) is well-formed JSON but not one the
    /// service can use: not an object schema, a field without a default, a bad
    /// migration path, a migration that existing configs would not survive.
    #[error("invalid config schema: {0}")]
    InvalidSchema(String),
    /// A stored configuration cannot be migrated to a newer schema version; it is
    /// kept as it was. Fix the config or declare a migration that handles it.
    #[error("config cannot be migrated to schema version {to}: at {path}: {why}")]
    ConfigMigration {
        /// The schema version that refused it.
        to: u32,
        /// JSON Pointer of the failing value.
        path: String,
        /// What the migration step could not do there.
        why: String,
    },
    /// The fleet has no configuration schema yet; set one first.
    #[error("fleet {0:?} has no config schema; set one with `fleetkey fleets schema set`")]
    NoConfigSchema(String),
    /// The configuration changed since it was read (optimistic concurrency).
    #[error("config revision is {current}, not {expected}; read it again and retry")]
    ConfigRevision {
        /// The revision the caller read.
        expected: i64,
        /// The stored revision.
        current: i64,
    },
    /// The key directory has no record for this identity.
    #[error("identity {0:?} not found in the key directory")]
    IdentityNotFound(String),
    /// A newer key record was written meanwhile; retry the change.
    #[error("key record of {0:?} changed meanwhile; retry")]
    DirectoryConflict(String),
    /// No such device command, or it is not for this device.
    #[error("command {0:?} not found")]
    CommandNotFound(String),
    /// The command is not in a state that allows this step (already done,
    /// cancelled, or the rotation was not started).
    #[error("command is {0}; this step is not possible now")]
    CommandState(&'static str),
    /// Coordination through Redis failed (the caller falls back to acting alone).
    #[error("coordination: {0}")]
    Coordination(String),
    /// Something another instance holds (a lease).
    #[error("{0}")]
    Conflict(String),
    /// A rotation found the keyring's primary already moved (another instance
    /// rotated first); the keyring service reloads and uses the winner's version.
    #[error("keyring {0:?} was rotated concurrently")]
    RotationLost(String),
    /// No such API token.
    #[error("token {0:?} not found")]
    TokenNotFound(String),
    /// The token is missing, unknown, expired or revoked.
    #[error("invalid or expired token")]
    Unauthenticated,
    /// The token lacks the scope this operation needs.
    #[error("token lacks scope {0:?}")]
    Forbidden(String),
    /// A token asked to grant a scope (or a life) that its own scopes do not cover.
    #[error("cannot grant scope {0:?}: the requesting token's scopes do not cover it")]
    GrantNotCovered(String),
    /// A parameter is out of range (policy, name, version).
    #[error("invalid {what}: {why}")]
    Invalid {
        /// Which parameter.
        what: &'static str,
        /// What is wrong with it, and what is allowed.
        why: String,
    },
    /// The envelope was refused (wrong key, tampered, wrong AAD, malformed).
    #[error(transparent)]
    Envelope(#[from] fleetkey_crypto::Error),

    // --- custody ---
    /// The root key could not be opened: wrong passphrase or key-encryption key, or
    /// the root key file was altered.
    #[error(
        "cannot open the root key: wrong passphrase or key-encryption key, or the root key file was altered"
    )]
    RootKeyLocked,
    /// Custody is not configured: set `FLEETKEY_ROOT_KEY_FILE` or `FLEETKEY_PASSPHRASE`.
    #[error("custody not configured: {0}")]
    CustodyConfig(String),
    /// Custody (the HSM or KMS holding the root) did not answer or refused a call:
    /// operations that need it fail closed (503 `custody_unavailable`).
    #[error("custody unavailable: {0}")]
    CustodyUnavailable(String),

    // --- storage and the platform ---
    /// The database failed: unreachable, out of connections after the pool's wait,
    /// or a statement refused. Operations that need it fail closed (503).
    #[error("store error: {0}")]
    Database(#[source] std::sync::Arc<sqlx::Error>),
    /// The database could not be reached at start (`url` has its password removed).
    #[error("store {url}: {source}")]
    StoreConnect {
        /// The store's address, without credentials.
        url: String,
        /// The driver's error.
        #[source]
        source: sqlx::Error,
    },
    /// The store's schema could not be migrated to this version's.
    #[error("store migration: {0}")]
    Migration(#[from] sqlx::migrate::MigrateError),
    /// A stored value does not parse or break an invariant the service keeps
    /// (a key of the wrong length, an unknown enum value, a count out of range).
    /// The row is left as it is; the operation fails closed.
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
    /// A telemetry sink (MQTT broker, JSON-lines file) refused or did not answer.
    #[error("{sink}: {why}")]
    Sink {
        /// Which sink (`MQTT broker`).
        sink: &'static str,
        /// What failed.
        why: String,
    },
    /// The server is stopping, or a part of it it needs has stopped.
    #[error("unavailable: {0}")]
    Stopping(&'static str),
    /// An internal step failed that should not (a background task died, the
    /// metrics registry refused a name, a custody self-check failed).
    #[error("internal error: {0}")]
    Internal(String),
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The OS error.
        source: std::io::Error,
    },
    /// The nonce space for a key version is exhausted on every instance id we could
    /// lease; rotate the keyring.
    #[error("nonce space exhausted for keyring {0:?}; rotate it")]
    NonceExhausted(String),
}

impl From<sqlx::Error> for Error {
    fn from(e: sqlx::Error) -> Self {
        Error::Database(std::sync::Arc::new(e))
    }
}

impl Error {
    /// A fault of the service or what it runs on, not of the request: the public
    /// answer is "unavailable, retry later" (HTTP 503, the device listener's and
    /// later gRPC's equivalent), and the error itself is only logged.
    pub fn is_unavailable(&self) -> bool {
        self.is_store()
            || matches!(
                self,
                Error::Sink { .. }
                    | Error::Stopping(_)
                    | Error::Internal(_)
                    | Error::Io { .. }
                    | Error::RootKeyLocked
                    | Error::CustodyConfig(_)
                    | Error::CustodyUnavailable(_)
                    | Error::Coordination(_)
                    | Error::NonceExhausted(_)
            )
    }

    /// A failure of the store itself (not of what was asked of it).
    pub fn is_store(&self) -> bool {
        matches!(
            self,
            Error::Database(_)
                | Error::StoreConnect { .. }
                | Error::Migration(_)
                | Error::Corrupt(_)
        )
    }
}

/// Result alias for this crate.
pub type Result<T, E = Error> = core::result::Result<T, E>;
