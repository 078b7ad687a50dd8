//! Rows to records, once for both stores: the SQLite and PostgreSQL tables have
//! the same columns with types that decode to the same Rust types
//! ([`Column`]), so each record is read by one function generic over the row.

use super::{
    CommandKind, CommandRecord, CommandState, DeviceRecord, DeviceState, FleetRecord,
    KeyringRecord, KeyringState, Origin, Policy, StoredConfig, TokenRecord, VersionRecord,
    VersionState,
};
use crate::error::{Error, Result};
use crate::key_type::KeyType;
use crate::store::audit_log::AuditEntry;

/// A column type both databases decode (`i64`, `String`, `Vec<u8>`, options of
/// them).
pub trait Column:
    Sized
    + for<'r> sqlx::Decode<'r, sqlx::Postgres>
    + sqlx::Type<sqlx::Postgres>
    + for<'r> sqlx::Decode<'r, sqlx::Sqlite>
    + sqlx::Type<sqlx::Sqlite>
{
}

impl<T> Column for T where
    T: for<'r> sqlx::Decode<'r, sqlx::Postgres>
        + sqlx::Type<sqlx::Postgres>
        + for<'r> sqlx::Decode<'r, sqlx::Sqlite>
        + sqlx::Type<sqlx::Sqlite>
{
}

/// A row of either store.
pub trait StoreRow {
    /// Column `name` decoded as `T`.
    fn col<T: Column>(&self, name: &str) -> Result<T>;
    /// Column `i` (from 0) decoded as `T`.
    fn col_at<T: Column>(&self, i: usize) -> Result<T>;
}

impl StoreRow for sqlx::postgres::PgRow {
    fn col<T: Column>(&self, name: &str) -> Result<T> {
        Ok(sqlx::Row::try_get(self, name)?)
    }

    fn col_at<T: Column>(&self, i: usize) -> Result<T> {
        Ok(sqlx::Row::try_get(self, i)?)
    }
}

impl StoreRow for sqlx::sqlite::SqliteRow {
    fn col<T: Column>(&self, name: &str) -> Result<T> {
        Ok(sqlx::Row::try_get(self, name)?)
    }

    fn col_at<T: Column>(&self, i: usize) -> Result<T> {
        Ok(sqlx::Row::try_get(self, i)?)
    }
}

/// A count or sequence number for an INTEGER column: refused, never wrapped, when
/// it does not fit (a value a device controls must not turn negative).
pub(crate) fn to_i64(v: u64, what: &str) -> Result<i64> {
    i64::try_from(v).map_err(|_| Error::Corrupt(format!("{what} out of range: {v}")))
}

pub(crate) fn to_u32(v: i64, what: &str) -> Result<u32> {
    u32::try_from(v).map_err(|_| Error::Corrupt(format!("{what} out of range: {v}")))
}

pub(crate) fn to_u64(v: i64, what: &str) -> Result<u64> {
    u64::try_from(v).map_err(|_| Error::Corrupt(format!("{what} out of range: {v}")))
}

/// How many of `count` counters a reservation may grant when `reserved` of the
/// version's `budget` are reserved already; `None` when the budget is spent.
pub(crate) fn grant(count: u32, budget: u64, reserved: u64) -> Option<u32> {
    let left = budget.saturating_sub(reserved);
    let g = u64::from(count).min(left);
    u32::try_from(g).ok().filter(|g| *g > 0)
}

pub(crate) fn keyring_from_row<R: StoreRow>(r: &R) -> Result<KeyringRecord> {
    let alg: String = r.col("algorithm")?;
    Ok(KeyringRecord {
        name: r.col("name")?,
        algorithm: KeyType::from_name(&alg)
            .map_err(|_| Error::Corrupt(format!("unknown algorithm {alg:?}")))?,
        primary_version: to_u32(r.col("primary_version")?, "primary_version")?,
        min_decrypt_version: to_u32(r.col("min_decrypt_version")?, "min_decrypt_version")?,
        policy: Policy {
            rotation_period_secs: r.col("rotation_period_secs")?,
            max_uses: to_u64(r.col("max_uses")?, "max_uses")?,
            overlap_secs: r.col("overlap_secs")?,
            keep_last: r
                .col::<Option<i64>>("keep_last")?
                .map(|v| to_u32(v, "keep_last"))
                .transpose()?,
        },
        created_at: r.col("created_at")?,
        state: KeyringState::parse(&r.col::<String>("state")?)?,
        deletion_at: r.col("deletion_at")?,
        description: r.col("description")?,
        tags: serde_json::from_str(&r.col::<String>("tags")?)
            .map_err(|e| Error::Corrupt(format!("keyring tags: {e}")))?,
        exportable: r.col::<i64>("exportable")? != 0,
        convergent: r.col::<i64>("convergent")? != 0,
        resident: r.col::<i64>("resident")? != 0,
    })
}

pub(crate) fn version_from_row<R: StoreRow>(r: &R) -> Result<VersionRecord> {
    let revoked_at: Option<i64> = r.col("revoked_at")?;
    let state = match VersionState::parse(&r.col::<String>("state")?)? {
        // Rows written before revoked stayed revoked past the minimum.
        VersionState::Destroyed if revoked_at.is_some() => VersionState::Revoked,
        s => s,
    };
    Ok(VersionRecord {
        keyring: r.col("keyring")?,
        version: to_u32(r.col("version")?, "version")?,
        wrapped_key: r.col("wrapped_key")?,
        state,
        created_at: r.col("created_at")?,
        retired_at: r.col("retired_at")?,
        revoked_at,
        seal_count: to_u64(r.col("seal_count")?, "seal_count")?,
        origin: Origin::parse(&r.col::<String>("origin")?)?,
    })
}

pub(crate) fn token_from_row<R: StoreRow>(r: &R) -> Result<TokenRecord> {
    let scopes: String = r.col("scopes")?;
    Ok(TokenRecord {
        id: r.col("id")?,
        hash: hash32(r.col("hash")?)?,
        name: r.col("name")?,
        scopes: serde_json::from_str(&scopes).map_err(|e| Error::Corrupt(e.to_string()))?,
        created_at: r.col("created_at")?,
        expires_at: r.col("expires_at")?,
        revoked_at: r.col("revoked_at")?,
    })
}

pub(crate) fn hash32(v: Vec<u8>) -> Result<[u8; 32]> {
    v.try_into()
        .map_err(|_| Error::Corrupt("stored hash is not 32 bytes".into()))
}

pub(crate) fn entry_from_row<R: StoreRow>(r: &R) -> Result<AuditEntry> {
    Ok(AuditEntry {
        seq: to_u64(r.col("seq")?, "seq")?,
        time: r.col("time")?,
        actor: r.col("actor")?,
        action: r.col("action")?,
        subject: r.col("subject")?,
        details: r.col("details")?,
        prev_hash: hash32(r.col("prev_hash")?)?,
        hash: hash32(r.col("hash")?)?,
    })
}

pub(crate) fn session_from_row<R: StoreRow>(r: &R) -> Result<super::DeviceSessionRecord> {
    Ok(super::DeviceSessionRecord {
        id: r.col("id")?,
        device_id: r.col("device_id")?,
        previous: r.col("previous")?,
        pattern: r.col("pattern")?,
        peer: r.col("peer")?,
        started_at: r.col("started_at")?,
        ended_at: r.col("ended_at")?,
        telemetry_seq: to_u64(r.col("telemetry_seq")?, "telemetry_seq")?,
        messages_in: to_u64(r.col("messages_in")?, "messages_in")?,
        messages_out: to_u64(r.col("messages_out")?, "messages_out")?,
    })
}

pub(crate) fn device_from_row<R: StoreRow>(r: &R) -> Result<DeviceRecord> {
    Ok(DeviceRecord {
        id: r.col("id")?,
        fleet: r.col("fleet")?,
        hardware_id: r.col("hardware_id")?,
        state: DeviceState::parse(&r.col::<String>("state")?)?,
        model: r.col("model")?,
        x25519: r.col("x25519")?,
        ed25519: r.col("ed25519")?,
        ml_kem_768: r.col("ml_kem_768")?,
        ml_dsa_65: r.col("ml_dsa_65")?,
        birth_credential: r.col("birth_credential")?,
        operational_credential_id: r.col("operational_credential_id")?,
        credential_issued_at: r.col("credential_issued_at")?,
        claimed_by: r.col("claimed_by")?,
        retired_hardware_id: r.col("retired_hardware_id")?,
        profile: r.col("profile")?,
        last_seen: r.col("last_seen")?,
        created_at: r.col("created_at")?,
        updated_at: r.col("updated_at")?,
    })
}

pub(crate) fn fleet_from_row<R: StoreRow>(r: &R) -> Result<FleetRecord> {
    Ok(FleetRecord {
        name: r.col("name")?,
        issuer_key_id: r.col("issuer_key_id")?,
        issuer_wrapped: r.col("issuer_wrapped")?,
        issuer_public: r.col("issuer_public")?,
        credential_ttl_secs: r.col("credential_ttl_secs")?,
        credential_rotation_secs: r.col("credential_rotation_secs")?,
        created_at: r.col("created_at")?,
    })
}

pub(crate) fn config_from_row<R: StoreRow>(r: &R) -> Result<StoredConfig> {
    Ok(StoredConfig {
        schema_version: to_u32(r.col("schema_version")?, "schema version")?,
        revision: r.col("revision")?,
        config: r.col("config")?,
        updated_at: r.col("updated_at")?,
    })
}

pub(crate) fn command_from_row<R: StoreRow>(r: &R) -> Result<CommandRecord> {
    Ok(CommandRecord {
        id: r.col("id")?,
        device_id: r.col("device_id")?,
        kind: CommandKind::parse(&r.col::<String>("kind")?)?,
        payload: r.col("payload")?,
        signature: r.col("signature")?,
        state: CommandState::parse(&r.col::<String>("state")?)?,
        created_at: r.col("created_at")?,
        updated_at: r.col("updated_at")?,
    })
}
