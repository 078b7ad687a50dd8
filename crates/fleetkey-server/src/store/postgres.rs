//! The PostgreSQL store: the same tables and statements as the SQLite store
//! (`migrations/postgres` mirrors `migrations/sqlite`), for several instances
//! sharing one database. Every transaction that appends to the audit log first
//! takes one transaction-scoped advisory lock, so entries from all instances form a
//! single chain; nonce blocks are reserved with one atomic upsert per block, so
//! two instances can never be handed overlapping counters, under a per-version
//! advisory lock, so together they never reserve more than the version's use budget.

use super::rows::{
    command_from_row, config_from_row, device_from_row, entry_from_row, fleet_from_row, grant,
    hash32, keyring_from_row, to_i64, to_u32, to_u64, token_from_row, version_from_row,
};
use super::{
    Change, CommandKind, CommandRecord, CommandState, DeviceRecord, DeviceSecret,
    DeviceSessionRecord, DeviceState, FleetRecord, KeyringRecord, Registration, Reservation,
    SchemaRecord, Store, StoredConfig, TokenRecord, VersionRecord,
};
use crate::audit::{AuditDraft, AuditEntry, Checkpoint};
use crate::clock::UnixTime;
use crate::error::{Error, Result};
use sqlx::Row;
use sqlx::postgres::{PgPool, PgPoolOptions};

/// The PostgreSQL store.
#[derive(Clone)]
pub struct PostgresStore {
    pool: PgPool,
    /// While this instance leads the scheduler: the connection holding the
    /// session-level advisory lock (outside the pool; released when it closes).
    leader: std::sync::Arc<tokio::sync::Mutex<Option<sqlx::PgConnection>>>,
    /// The advisory lock serialising audit appends.
    audit_lock: i64,
    /// The advisory lock held by the scheduler's leader.
    scheduler_lock: i64,
    /// The schema, mixed into per-keyring advisory lock keys.
    schema: String,
}

/// Advisory locks are database-wide: each key mixes in the schema, so deployments
/// (or test runs) in other schemas of the same database never contend.
fn lock_key(schema: &str, purpose: &str) -> i64 {
    let d = aws_lc_rs::digest::digest(
        &aws_lc_rs::digest::SHA256,
        format!("fleetkey advisory lock\0{purpose}\0{schema}").as_bytes(),
    );
    let mut b = [0u8; 8];
    b.copy_from_slice(&d.as_ref()[..8]);
    i64::from_be_bytes(b)
}

/// Serialises audit appends: every transaction that appends takes this first.
async fn lock_audit(tx: &mut sqlx::Transaction<'_, sqlx::Postgres>, key: i64) -> Result<()> {
    sqlx::query("SELECT pg_advisory_xact_lock($1)")
        .bind(key)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// How long a request waits for a database connection before failing, unless
/// configured (`store_wait_ms`).
pub const ACQUIRE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(2);

impl PostgresStore {
    /// Connects to `url` (`postgres://user@host:port/db`) and runs migrations.
    pub async fn connect(url: &str) -> Result<Self> {
        Self::connect_in_schema(url, None).await
    }

    /// [`PostgresStore::connect`] with every table in `schema` (created if needed):
    /// several deployments, or test runs, in one database.
    pub async fn connect_in_schema(url: &str, schema: Option<&str>) -> Result<Self> {
        Self::connect_with(url, schema, 16, ACQUIRE_TIMEOUT).await
    }

    /// [`PostgresStore::connect_in_schema`] keeping up to `pool_size` connections.
    /// A request that finds none free and cannot open one (PostgreSQL unreachable)
    /// fails after `wait` with a store error (503 through the API).
    pub async fn connect_with(
        url: &str,
        schema: Option<&str>,
        pool_size: u32,
        wait: std::time::Duration,
    ) -> Result<Self> {
        let bad = |e: sqlx::Error| {
            Error::Store(format!(
                "postgres {}: {e}",
                crate::config::redacted_url(url)
            ))
        };
        let mut opts: sqlx::postgres::PgConnectOptions = url.parse().map_err(bad)?;
        if let Some(schema) = schema {
            if schema.is_empty()
                || schema.len() > 48
                || !schema
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
            {
                return Err(Error::Store(format!(
                    "postgres schema {schema:?}: use 1-48 of a-z 0-9 _"
                )));
            }
            let pool = PgPoolOptions::new()
                .max_connections(1)
                .connect_with(opts.clone())
                .await
                .map_err(bad)?;
            sqlx::query(&format!("CREATE SCHEMA IF NOT EXISTS {schema}"))
                .execute(&pool)
                .await?;
            pool.close().await;
            opts = opts.options([("search_path", schema)]);
        }
        let pool = PgPoolOptions::new()
            .max_connections(pool_size.max(1))
            .acquire_timeout(wait)
            .connect_with(opts)
            .await
            .map_err(bad)?;
        sqlx::migrate!("./migrations/postgres").run(&pool).await?;
        let current: String = sqlx::query_scalar("SELECT current_schema()")
            .fetch_one(&pool)
            .await?;
        Ok(Self {
            pool,
            leader: Default::default(),
            audit_lock: lock_key(&current, "audit"),
            scheduler_lock: lock_key(&current, "scheduler"),
            schema: current.clone(),
        })
    }

    /// The pool (for tests and tools).
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }
}

#[async_trait::async_trait]
impl Store for PostgresStore {
    async fn scheduler_leader(&self) -> Result<bool> {
        let mut held = self.leader.lock().await;
        if let Some(conn) = held.as_mut() {
            // Still ours while the connection holding it lives.
            if sqlx::query("SELECT 1").execute(&mut *conn).await.is_ok() {
                return Ok(true);
            }
            *held = None;
        }
        let mut conn = self.pool.acquire().await?;
        let got: bool = sqlx::query_scalar("SELECT pg_try_advisory_lock($1)")
            .bind(self.scheduler_lock)
            .fetch_one(&mut *conn)
            .await?;
        if got {
            // Keep this connection out of the pool for as long as we lead; when this
            // store goes (or the process dies), the connection closes and the lock
            // is free for another instance.
            *held = Some(conn.detach());
        }
        Ok(got)
    }

    async fn keyring(&self, name: &str) -> Result<Option<KeyringRecord>> {
        let row = sqlx::query("SELECT * FROM keyrings WHERE name = $1")
            .bind(name)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(keyring_from_row).transpose()
    }

    async fn keyrings(&self) -> Result<Vec<KeyringRecord>> {
        let rows = sqlx::query("SELECT * FROM keyrings ORDER BY name")
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(keyring_from_row).collect()
    }

    async fn versions(&self, name: &str) -> Result<Vec<VersionRecord>> {
        let rows = sqlx::query("SELECT * FROM key_versions WHERE keyring = $1 ORDER BY version")
            .bind(name)
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(version_from_row).collect()
    }

    async fn apply(&self, change: Change, audit: AuditDraft, now: UnixTime) -> Result<AuditEntry> {
        let mut tx = self.pool.begin().await?;
        lock_audit(&mut tx, self.audit_lock).await?;
        match &change {
            Change::CreateKeyring { keyring: k, first } => {
                let exists = sqlx::query("SELECT 1::BIGINT FROM keyrings WHERE name = $1")
                    .bind(&k.name)
                    .fetch_optional(&mut *tx)
                    .await?;
                if exists.is_some() {
                    return Err(Error::KeyringExists(k.name.clone()));
                }
                sqlx::query(
                    "INSERT INTO keyrings (name, algorithm, primary_version, min_decrypt_version, \
                     rotation_period_secs, max_uses, overlap_secs, keep_last, created_at) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
                )
                .bind(&k.name)
                .bind(k.algorithm.name())
                .bind(i64::from(k.primary_version))
                .bind(i64::from(k.min_decrypt_version))
                .bind(k.policy.rotation_period_secs)
                .bind(to_i64(k.policy.max_uses, "max_uses")?)
                .bind(k.policy.overlap_secs)
                .bind(k.policy.keep_last.map(i64::from))
                .bind(k.created_at)
                .execute(&mut *tx)
                .await?;
                insert_version(&mut tx, first).await?;
            }
            Change::Rotate {
                name,
                new,
                retire,
                at,
                first_block,
            } => {
                // Conditional: only if the primary is still the one the caller saw.
                // The instance that loses a race learns it here, before anything
                // is written, and takes the winner's version.
                let moved = sqlx::query(
                    "UPDATE keyrings SET primary_version = $1 WHERE name = $2 AND primary_version = $3",
                )
                .bind(i64::from(new.version))
                .bind(name)
                .bind(i64::from(*retire))
                .execute(&mut *tx)
                .await?
                .rows_affected();
                if moved == 0 {
                    return Err(Error::RotationLost(name.clone()));
                }
                sqlx::query(
                    "UPDATE key_versions SET state = 'decrypt_only', retired_at = $1 \
                     WHERE keyring = $2 AND version = $3 AND state = 'active'",
                )
                .bind(at)
                .bind(name)
                .bind(i64::from(*retire))
                .execute(&mut *tx)
                .await?;
                insert_version(&mut tx, new).await?;
                if let Some((instance, count)) = first_block {
                    sqlx::query(
                        "INSERT INTO nonce_reservations (keyring, version, instance_id, high_water) \
                         VALUES ($1, $2, $3, $4)",
                    )
                    .bind(name)
                    .bind(i64::from(new.version))
                    .bind(instance.as_slice())
                    .bind(i64::from(*count))
                    .execute(&mut *tx)
                    .await?;
                }
            }
            Change::Revoke { name, version, at } => {
                let n = sqlx::query(
                    "UPDATE key_versions SET state = 'revoked', revoked_at = $1 \
                     WHERE keyring = $2 AND version = $3 AND state != 'destroyed'",
                )
                .bind(at)
                .bind(name)
                .bind(i64::from(*version))
                .execute(&mut *tx)
                .await?
                .rows_affected();
                if n == 0 {
                    return Err(Error::UnknownVersion {
                        keyring: name.clone(),
                        version: *version,
                    });
                }
            }
            Change::SetPolicy { name, policy } => {
                sqlx::query(
                    "UPDATE keyrings SET rotation_period_secs = $1, max_uses = $2, overlap_secs = $3, keep_last = $4 \
                     WHERE name = $5",
                )
                .bind(policy.rotation_period_secs)
                .bind(to_i64(policy.max_uses, "max_uses")?)
                .bind(policy.overlap_secs)
                .bind(policy.keep_last.map(i64::from))
                .bind(name)
                .execute(&mut *tx)
                .await?;
            }
            Change::RaiseMinimum { name, min } => {
                sqlx::query("UPDATE keyrings SET min_decrypt_version = $1 WHERE name = $2 AND min_decrypt_version < $3")
                    .bind(i64::from(*min))
                    .bind(name)
                    .bind(i64::from(*min))
                    .execute(&mut *tx)
                    .await?;
                // Below the minimum nothing may open again: erase the wrapped keys.
                sqlx::query(
                    "UPDATE key_versions SET wrapped_key = ''::bytea, \
                     state = CASE WHEN state = 'revoked' THEN 'revoked' ELSE 'destroyed' END \
                     WHERE keyring = $1 AND version < $2",
                )
                .bind(name)
                .bind(i64::from(*min))
                .execute(&mut *tx)
                .await?;
            }
            Change::CreateToken(t) => {
                let scopes =
                    serde_json::to_string(&t.scopes).map_err(|e| Error::Store(e.to_string()))?;
                sqlx::query(
                    "INSERT INTO tokens (id, hash, name, scopes, created_at, expires_at, revoked_at) \
                     VALUES ($1, $2, $3, $4, $5, $6, NULL)",
                )
                .bind(&t.id)
                .bind(t.hash.as_slice())
                .bind(&t.name)
                .bind(scopes)
                .bind(t.created_at)
                .bind(t.expires_at)
                .execute(&mut *tx)
                .await?;
            }
            Change::RevokeToken { id, at } => {
                let n = sqlx::query(
                    "UPDATE tokens SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL",
                )
                .bind(at)
                .bind(id)
                .execute(&mut *tx)
                .await?
                .rows_affected();
                if n == 0 {
                    return Err(Error::TokenNotFound(id.clone()));
                }
            }
            Change::CreateFleet(f) => {
                let r = sqlx::query(
                    "INSERT INTO fleets (name, issuer_key_id, issuer_wrapped, issuer_public, credential_ttl_secs, created_at) \
                     VALUES ($1, $2, $3, $4, $5, $6)",
                )
                .bind(&f.name)
                .bind(&f.issuer_key_id)
                .bind(f.issuer_wrapped.as_slice())
                .bind(f.issuer_public.as_slice())
                .bind(f.credential_ttl_secs)
                .bind(f.created_at)
                .execute(&mut *tx)
                .await;
                match r {
                    Err(sqlx::Error::Database(e)) if e.is_unique_violation() => {
                        return Err(Error::FleetExists(f.name.clone()));
                    }
                    other => {
                        other?;
                    }
                }
            }
            Change::DeviceTransition {
                id,
                from,
                to,
                operational_credential_id,
                revoke,
                command,
                cancel_open_commands,
                key_record,
                at,
            } => {
                check_state(&mut tx, id, from, to.as_str()).await?;
                sqlx::query(
                    "UPDATE devices SET state = $1, updated_at = $2, \
                     credential_issued_at = CASE WHEN $3 IS NULL THEN credential_issued_at ELSE $4 END, \
                     operational_credential_id = COALESCE($5, operational_credential_id) WHERE id = $6",
                )
                .bind(to.as_str())
                .bind(at)
                .bind(operational_credential_id.as_deref())
                .bind(at)
                .bind(operational_credential_id.as_deref())
                .bind(id)
                .execute(&mut *tx)
                .await?;
                for cid in revoke {
                    revoke_credential(&mut tx, cid, id, *at).await?;
                }
                if *cancel_open_commands {
                    cancel_commands(&mut tx, id, None, *at).await?;
                }
                if let Some(c) = command {
                    insert_command(&mut tx, c).await?;
                }
                if let Some(r) = key_record {
                    put_key_record(&mut tx, r).await?;
                }
            }
            Change::PutKeyRecord(r) => put_key_record(&mut tx, r).await?,
            Change::CreateServiceKey {
                name,
                wrapped,
                public,
                at,
            } => {
                sqlx::query(
                    "INSERT INTO service_keys (name, wrapped, public, created_at) VALUES ($1, $2, $3, $4) \
                     ON CONFLICT (name) DO NOTHING",
                )
                .bind(name)
                .bind(wrapped.as_slice())
                .bind(public.as_slice())
                .bind(at)
                .execute(&mut *tx)
                .await?;
            }
            Change::CommandReceipt {
                device_id,
                command_id,
                state,
                at,
            } => {
                step_command(
                    &mut tx,
                    command_id,
                    device_id,
                    CommandKind::UpdateConfig,
                    *state,
                    None,
                    *at,
                )
                .await?;
            }
            Change::RotationProposed {
                device_id,
                command_id,
                pending,
                at,
            } => {
                step_command(
                    &mut tx,
                    command_id,
                    device_id,
                    CommandKind::RotateCredential,
                    CommandState::InProgress,
                    Some(pending),
                    *at,
                )
                .await?;
            }
            Change::RotationConfirmed {
                device_id,
                command_id,
                x25519,
                ed25519,
                ml_kem_768,
                ml_dsa_65,
                credential_id,
                revoke,
                key_record,
                at,
            } => {
                check_state(&mut tx, device_id, &[DeviceState::Rotating], "active").await?;
                step_command(
                    &mut tx,
                    command_id,
                    device_id,
                    CommandKind::RotateCredential,
                    CommandState::Done,
                    None,
                    *at,
                )
                .await?;
                let r = sqlx::query(
                    "UPDATE devices SET state = 'active', x25519 = $1, ed25519 = $2, ml_kem_768 = $3, ml_dsa_65 = $4, \
                     operational_credential_id = $5, credential_issued_at = $6, updated_at = $7 WHERE id = $8",
                )
                .bind(x25519.as_slice())
                .bind(ed25519.as_slice())
                .bind(ml_kem_768.as_deref())
                .bind(ml_dsa_65.as_deref())
                .bind(credential_id.as_slice())
                .bind(at)
                .bind(at)
                .bind(device_id)
                .execute(&mut *tx)
                .await;
                match r {
                    Err(sqlx::Error::Database(e)) if e.is_unique_violation() => {
                        return Err(Error::DuplicateKey(if e.message().contains("x25519") {
                            "x25519"
                        } else {
                            "ed25519"
                        }));
                    }
                    other => {
                        other?;
                    }
                }
                if let Some(old) = revoke {
                    revoke_credential(&mut tx, old, device_id, *at).await?;
                }
                if let Some(r) = key_record {
                    put_key_record(&mut tx, r).await?;
                }
            }
            Change::Decommissioned { device_id, at } => {
                check_state(
                    &mut tx,
                    device_id,
                    &[DeviceState::Decommissioning],
                    "decommissioned",
                )
                .await?;
                sqlx::query(
                    "UPDATE devices SET state = 'decommissioned', updated_at = $1 WHERE id = $2",
                )
                .bind(at)
                .bind(device_id)
                .execute(&mut *tx)
                .await?;
                sqlx::query(
                    "UPDATE device_commands SET state = 'done', pending = NULL, updated_at = $1 \
                     WHERE device_id = $2 AND kind = 'wipe' AND state IN ('pending', 'in_progress')",
                )
                .bind(at)
                .bind(device_id)
                .execute(&mut *tx)
                .await?;
                cancel_commands(&mut tx, device_id, None, *at).await?;
                for table in [
                    "claim_codes",
                    "onboarding_challenges",
                    "device_configs",
                    "device_secrets",
                ] {
                    sqlx::query(&format!("DELETE FROM {table} WHERE device_id = $1"))
                        .bind(device_id)
                        .execute(&mut *tx)
                        .await?;
                }
            }
            Change::FactoryReset { device_id, at } => {
                check_state(
                    &mut tx,
                    device_id,
                    &[DeviceState::Decommissioned],
                    "factory reset",
                )
                .await?;
                sqlx::query(
                    "UPDATE devices SET retired_hardware_id = hardware_id, hardware_id = 'retired:' || id, \
                     updated_at = $1 WHERE id = $2 AND retired_hardware_id IS NULL",
                )
                .bind(at)
                .bind(device_id)
                .execute(&mut *tx)
                .await?;
            }
            Change::SetConfigSchema {
                fleet,
                version,
                schema,
                migration,
                at,
            } => {
                let current: i64 = sqlx::query_scalar(
                    "SELECT COALESCE(MAX(version), 0) FROM config_schemas WHERE fleet = $1",
                )
                .bind(fleet)
                .fetch_one(&mut *tx)
                .await?;
                if current + 1 != i64::from(*version) {
                    return Err(Error::Invalid {
                        what: "schema version",
                        why: format!(
                            "the fleet is at version {current}; the next is {}",
                            current + 1
                        ),
                    });
                }
                sqlx::query(
                    "INSERT INTO config_schemas (fleet, version, schema, migration, created_at) VALUES ($1, $2, $3, $4, $5)",
                )
                .bind(fleet)
                .bind(i64::from(*version))
                .bind(schema)
                .bind(migration)
                .bind(at)
                .execute(&mut *tx)
                .await?;
            }
            Change::PutDeviceConfig {
                device_id,
                config,
                expected_revision,
                command,
            } => {
                let current: Option<i64> =
                    sqlx::query_scalar("SELECT revision FROM device_configs WHERE device_id = $1")
                        .bind(device_id)
                        .fetch_optional(&mut *tx)
                        .await?;
                let current = current.unwrap_or(0);
                if current != *expected_revision {
                    return Err(Error::ConfigRevision {
                        expected: *expected_revision,
                        current,
                    });
                }
                sqlx::query(
                    "INSERT INTO device_configs (device_id, schema_version, revision, config, updated_at) \
                     VALUES ($1, $2, $3, $4, $5) ON CONFLICT (device_id) DO UPDATE SET \
                     schema_version = excluded.schema_version, revision = excluded.revision, \
                     config = excluded.config, updated_at = excluded.updated_at",
                )
                .bind(device_id)
                .bind(i64::from(config.schema_version))
                .bind(config.revision)
                .bind(&config.config)
                .bind(config.updated_at)
                .execute(&mut *tx)
                .await?;
                if let Some(c) = command {
                    cancel_commands(
                        &mut tx,
                        device_id,
                        Some(CommandKind::UpdateConfig),
                        c.created_at,
                    )
                    .await?;
                    insert_command(&mut tx, c).await?;
                }
            }
            Change::SetRotationPolicy { fleet, period_secs } => {
                let n =
                    sqlx::query("UPDATE fleets SET credential_rotation_secs = $1 WHERE name = $2")
                        .bind(period_secs)
                        .bind(fleet)
                        .execute(&mut *tx)
                        .await?
                        .rows_affected();
                if n == 0 {
                    return Err(Error::FleetNotFound(fleet.clone()));
                }
            }
            Change::SetFleetStaticKey { fleet, allow, at } => {
                let exists: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM fleets WHERE name = $1")
                    .bind(fleet)
                    .fetch_one(&mut *tx)
                    .await?;
                if exists == 0 {
                    return Err(Error::FleetNotFound(fleet.clone()));
                }
                if *allow {
                    sqlx::query(
                        "INSERT INTO fleet_static_key (fleet, allowed_at) VALUES ($1, $2) ON CONFLICT DO NOTHING",
                    )
                    .bind(fleet)
                    .bind(at)
                    .execute(&mut *tx)
                    .await?;
                } else {
                    sqlx::query("DELETE FROM fleet_static_key WHERE fleet = $1")
                        .bind(fleet)
                        .execute(&mut *tx)
                        .await?;
                }
            }
            Change::CreateClaimCode {
                hash,
                device_id,
                at,
                expires_at,
            } => {
                sqlx::query("INSERT INTO claim_codes (hash, device_id, created_at, expires_at) VALUES ($1, $2, $3, $4)")
                    .bind(hash.as_slice())
                    .bind(device_id)
                    .bind(at)
                    .bind(expires_at)
                    .execute(&mut *tx)
                    .await?;
            }
            Change::UseClaimCode {
                hash,
                claimed_by,
                at,
            } => {
                let device: Option<String> = sqlx::query_scalar(
                    "UPDATE claim_codes SET used_at = $1 WHERE hash = $2 AND used_at IS NULL AND expires_at > $3 \
                     RETURNING device_id",
                )
                .bind(at)
                .bind(hash.as_slice())
                .bind(at)
                .fetch_optional(&mut *tx)
                .await?;
                let Some(device) = device else {
                    let used: Option<Option<i64>> =
                        sqlx::query_scalar("SELECT used_at FROM claim_codes WHERE hash = $1")
                            .bind(hash.as_slice())
                            .fetch_optional(&mut *tx)
                            .await?;
                    return Err(Error::ClaimRefused(match used {
                        None => "unknown code",
                        Some(Some(_)) => "already used",
                        Some(None) => "expired",
                    }));
                };
                sqlx::query("UPDATE devices SET claimed_by = $1, updated_at = $2 WHERE id = $3 AND state != 'decommissioned'")
                    .bind(claimed_by)
                    .bind(at)
                    .bind(&device)
                    .execute(&mut *tx)
                    .await?;
            }
            Change::AuditOnly => {}
        }
        let entry = append_audit(&mut tx, &audit, now).await?;
        tx.commit().await?;
        Ok(entry)
    }

    async fn reserve_nonces(
        &self,
        keyring: &str,
        version: u32,
        instance: [u8; 8],
        count: u32,
        budget: u64,
    ) -> Result<Reservation> {
        // A transaction-scoped advisory lock per (keyring, version) serialises
        // reservations for the version across instances, so the budget check and
        // the grant are one step; the upsert gives each reservation its own range
        // of this instance id's counters.
        let mut tx = self.pool.begin().await?;
        let key = lock_key(&self.schema, &format!("nonces\0{keyring}\0{version}"));
        sqlx::query("SELECT pg_advisory_xact_lock($1)")
            .bind(key)
            .execute(&mut *tx)
            .await?;
        let reserved: Option<i64> = sqlx::query_scalar(
            "SELECT SUM(high_water)::BIGINT FROM nonce_reservations WHERE keyring = $1 AND version = $2",
        )
        .bind(keyring)
        .bind(i64::from(version))
        .fetch_one(&mut *tx)
        .await?;
        let reserved = to_u64(reserved.unwrap_or(0), "reserved nonces")?;
        let Some(grant) = grant(count, budget, reserved) else {
            tx.rollback().await?;
            return Ok(Reservation::BudgetSpent);
        };
        let end: i64 = sqlx::query_scalar(
            "INSERT INTO nonce_reservations (keyring, version, instance_id, high_water) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (keyring, version, instance_id) \
             DO UPDATE SET high_water = nonce_reservations.high_water + excluded.high_water \
             RETURNING high_water",
        )
        .bind(keyring)
        .bind(i64::from(version))
        .bind(instance.as_slice())
        .bind(i64::from(grant))
        .fetch_one(&mut *tx)
        .await?;
        if end > 1i64 << 32 {
            tx.rollback().await?;
            return Ok(Reservation::SpaceExhausted);
        }
        tx.commit().await?;
        Ok(Reservation::Granted {
            start: to_u32(end - i64::from(grant), "nonce counter")?,
            count: grant,
            reserved_before: reserved,
        })
    }

    async fn release_nonces(
        &self,
        keyring: &str,
        version: u32,
        instance: [u8; 8],
        end: u64,
        used_end: u64,
    ) -> Result<bool> {
        if used_end >= end {
            return Ok(false);
        }
        let n = sqlx::query(
            "UPDATE nonce_reservations SET high_water = $1 \
             WHERE keyring = $2 AND version = $3 AND instance_id = $4 AND high_water = $5",
        )
        .bind(to_i64(used_end, "used_end")?)
        .bind(keyring)
        .bind(i64::from(version))
        .bind(instance.as_slice())
        .bind(to_i64(end, "end")?)
        .execute(&self.pool)
        .await?
        .rows_affected();
        Ok(n == 1)
    }

    async fn reserved_nonces(&self, keyring: &str, version: u32) -> Result<u64> {
        let total: Option<i64> = sqlx::query_scalar(
            "SELECT SUM(high_water)::BIGINT FROM nonce_reservations WHERE keyring = $1 AND version = $2",
        )
        .bind(keyring)
        .bind(i64::from(version))
        .fetch_one(&self.pool)
        .await?;
        to_u64(total.unwrap_or(0), "reserved")
    }

    async fn add_seal_counts(&self, counts: &[(String, u32, u64)]) -> Result<()> {
        if counts.is_empty() {
            return Ok(());
        }
        let mut tx = self.pool.begin().await?;
        for (name, version, n) in counts {
            sqlx::query("UPDATE key_versions SET seal_count = seal_count + $1 WHERE keyring = $2 AND version = $3")
                .bind(to_i64(*n, "n")?)
                .bind(name)
                .bind(i64::from(*version))
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn lease_instance(&self, holder: &str, now: UnixTime) -> Result<[u8; 8]> {
        let existing: Option<Vec<u8>> = sqlx::query_scalar(
            "SELECT instance_id FROM instance_leases WHERE holder = $1 AND retired = 0",
        )
        .bind(holder)
        .fetch_optional(&self.pool)
        .await?;
        if let Some(id) = existing {
            return id
                .try_into()
                .map_err(|_| Error::Store("instance id is not 8 bytes".into()));
        }
        for _ in 0..16 {
            let id: [u8; 8] = fleetkey_crypto::rand::array()?;
            let inserted: Option<Vec<u8>> = sqlx::query_scalar(
                "INSERT INTO instance_leases (instance_id, holder, leased_at) VALUES ($1, $2, $3) \
                 ON CONFLICT DO NOTHING RETURNING instance_id",
            )
            .bind(id.as_slice())
            .bind(holder)
            .bind(now)
            .fetch_optional(&self.pool)
            .await?;
            if inserted.is_some() {
                return Ok(id);
            }
        }
        Err(Error::Store("could not find an unused instance id".into()))
    }

    async fn fleet(&self, name: &str) -> Result<Option<FleetRecord>> {
        let row = sqlx::query("SELECT * FROM fleets WHERE name = $1")
            .bind(name)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(fleet_from_row).transpose()
    }

    async fn fleets_with_rotation(&self) -> Result<Vec<FleetRecord>> {
        let rows = sqlx::query(
            "SELECT * FROM fleets WHERE credential_rotation_secs IS NOT NULL ORDER BY name",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(fleet_from_row).collect()
    }

    async fn service_key(&self, name: &str) -> Result<Option<(Vec<u8>, Vec<u8>)>> {
        let row = sqlx::query("SELECT wrapped, public FROM service_keys WHERE name = $1")
            .bind(name)
            .fetch_optional(&self.pool)
            .await?;
        row.map(|r| Ok((r.try_get("wrapped")?, r.try_get("public")?)))
            .transpose()
    }

    async fn device_by_x25519(&self, key: &[u8]) -> Result<Option<DeviceRecord>> {
        let row = sqlx::query("SELECT * FROM devices WHERE x25519 = $1")
            .bind(key)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(device_from_row).transpose()
    }

    async fn key_record(&self, identity: &str) -> Result<Option<(u64, Vec<u8>)>> {
        let row = sqlx::query("SELECT sequence, record FROM key_records WHERE identity = $1")
            .bind(identity)
            .fetch_optional(&self.pool)
            .await?;
        row.map(|r| {
            Ok((
                to_u64(r.try_get("sequence")?, "sequence")?,
                r.try_get("record")?,
            ))
        })
        .transpose()
    }

    async fn device_secret(&self, device_id: &str) -> Result<Option<DeviceSecret>> {
        let row = sqlx::query(
            "SELECT profile, wrapped, last_boot FROM device_secrets WHERE device_id = $1",
        )
        .bind(device_id)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|r| {
            Ok(DeviceSecret {
                profile: r.try_get("profile")?,
                wrapped: r.try_get("wrapped")?,
                last_boot: to_u32(r.try_get("last_boot")?, "last_boot")?,
            })
        })
        .transpose()
    }

    async fn raise_device_boot(&self, device_id: &str, boot: u32) -> Result<bool> {
        let r = sqlx::query(
            "UPDATE device_secrets SET last_boot = $1 WHERE device_id = $2 AND last_boot < $3",
        )
        .bind(i64::from(boot))
        .bind(device_id)
        .bind(i64::from(boot))
        .execute(&self.pool)
        .await?;
        Ok(r.rows_affected() == 1)
    }

    async fn fleet_allows_static_key(&self, fleet: &str) -> Result<bool> {
        let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM fleet_static_key WHERE fleet = $1")
            .bind(fleet)
            .fetch_one(&self.pool)
            .await?;
        Ok(n > 0)
    }

    async fn open_device_session(&self, d: &DeviceSessionRecord) -> Result<()> {
        sqlx::query(
            "INSERT INTO device_sessions (id, device_id, previous, pattern, peer, started_at, telemetry_seq) \
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(&d.id)
        .bind(&d.device_id)
        .bind(&d.previous)
        .bind(&d.pattern)
        .bind(&d.peer)
        .bind(d.started_at)
        .bind(to_i64(d.telemetry_seq, "telemetry_seq")?)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn close_device_session(
        &self,
        id: &str,
        ended_at: UnixTime,
        telemetry_seq: u64,
        messages_in: u64,
        messages_out: u64,
    ) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        let device: Option<String> = sqlx::query_scalar(
            "UPDATE device_sessions SET ended_at = $1, telemetry_seq = GREATEST(telemetry_seq, $2), \
             messages_in = $3, messages_out = $4 WHERE id = $5 RETURNING device_id",
        )
        .bind(ended_at)
        .bind(to_i64(telemetry_seq, "telemetry_seq")?)
        .bind(to_i64(messages_in, "messages_in")?)
        .bind(to_i64(messages_out, "messages_out")?)
        .bind(id)
        .fetch_optional(&mut *tx)
        .await?;
        if let Some(device) = device {
            sqlx::query(
                "INSERT INTO device_telemetry_positions (device_id, seq) VALUES ($1, $2) \
                 ON CONFLICT (device_id) DO UPDATE SET seq = GREATEST(device_telemetry_positions.seq, excluded.seq)",
            )
            .bind(device)
            .bind(to_i64(telemetry_seq, "telemetry_seq")?)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn device_session(&self, id: &str) -> Result<Option<DeviceSessionRecord>> {
        let row = sqlx::query("SELECT * FROM device_sessions WHERE id = $1")
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        row.map(|r| {
            Ok(DeviceSessionRecord {
                id: r.try_get("id")?,
                device_id: r.try_get("device_id")?,
                previous: r.try_get("previous")?,
                pattern: r.try_get("pattern")?,
                peer: r.try_get("peer")?,
                started_at: r.try_get("started_at")?,
                ended_at: r.try_get("ended_at")?,
                telemetry_seq: to_u64(r.try_get("telemetry_seq")?, "telemetry_seq")?,
                messages_in: to_u64(r.try_get("messages_in")?, "messages_in")?,
                messages_out: to_u64(r.try_get("messages_out")?, "messages_out")?,
            })
        })
        .transpose()
    }

    async fn device_telemetry_seq(&self, device_id: &str) -> Result<u64> {
        let seq: Option<i64> =
            sqlx::query_scalar("SELECT seq FROM device_telemetry_positions WHERE device_id = $1")
                .bind(device_id)
                .fetch_optional(&self.pool)
                .await?;
        to_u64(seq.unwrap_or(0), "telemetry_seq")
    }

    async fn prune_challenges(&self, expired_before: UnixTime) -> Result<u64> {
        Ok(
            sqlx::query("DELETE FROM onboarding_challenges WHERE expires_at < $1")
                .bind(expired_before)
                .execute(&self.pool)
                .await?
                .rows_affected(),
        )
    }

    async fn prune_device_sessions(&self, before: UnixTime) -> Result<u64> {
        // Ended before `before`; or abandoned (no end recorded: the server was
        // killed) and started before `before`, with a newer session of the device.
        Ok(sqlx::query(
            "DELETE FROM device_sessions WHERE (ended_at IS NOT NULL AND ended_at < $1) \
             OR (ended_at IS NULL AND started_at < $1 AND EXISTS (SELECT 1 FROM device_sessions newer \
             WHERE newer.device_id = device_sessions.device_id AND newer.started_at > device_sessions.started_at))",
        )
        .bind(before)
        .execute(&self.pool)
        .await?
        .rows_affected())
    }

    async fn key_records_issued_before(
        &self,
        before: UnixTime,
        limit: u32,
    ) -> Result<Vec<(String, Vec<u8>)>> {
        let rows = sqlx::query(
            "SELECT identity, record FROM key_records WHERE revoked = 0 AND issued_at < $1 \
             ORDER BY issued_at LIMIT $2",
        )
        .bind(before)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| Ok((r.try_get("identity")?, r.try_get("record")?)))
            .collect()
    }

    async fn config_schemas(&self, fleet: &str) -> Result<Vec<SchemaRecord>> {
        let rows = sqlx::query("SELECT * FROM config_schemas WHERE fleet = $1 ORDER BY version")
            .bind(fleet)
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|r| {
                Ok(SchemaRecord {
                    version: to_u32(r.try_get("version")?, "schema version")?,
                    schema: r.try_get("schema")?,
                    migration: r.try_get("migration")?,
                    created_at: r.try_get("created_at")?,
                })
            })
            .collect()
    }

    async fn device_config(&self, device_id: &str) -> Result<Option<StoredConfig>> {
        let row = sqlx::query("SELECT * FROM device_configs WHERE device_id = $1")
            .bind(device_id)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(config_from_row).transpose()
    }

    async fn device_configs(
        &self,
        fleet: &str,
        after: &str,
        limit: u32,
    ) -> Result<Vec<(String, StoredConfig)>> {
        let rows = sqlx::query(
            "SELECT c.* FROM device_configs c JOIN devices d ON d.id = c.device_id \
             WHERE d.fleet = $1 AND c.device_id > $2 ORDER BY c.device_id LIMIT $3",
        )
        .bind(fleet)
        .bind(after)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| Ok((r.try_get("device_id")?, config_from_row(r)?)))
            .collect()
    }

    async fn command(&self, id: &str) -> Result<Option<CommandRecord>> {
        let row = sqlx::query("SELECT * FROM device_commands WHERE id = $1")
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(command_from_row).transpose()
    }

    async fn commands(&self, device_id: &str, open: bool) -> Result<Vec<CommandRecord>> {
        let sql = if open {
            "SELECT * FROM device_commands WHERE device_id = $1 AND state IN ('pending', 'in_progress') \
             ORDER BY created_at, ord"
        } else {
            "SELECT * FROM device_commands WHERE device_id = $1 ORDER BY created_at, ord"
        };
        let rows = sqlx::query(sql)
            .bind(device_id)
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(command_from_row).collect()
    }

    async fn command_pending(&self, id: &str) -> Result<Option<String>> {
        let v: Option<Option<String>> =
            sqlx::query_scalar("SELECT pending FROM device_commands WHERE id = $1")
                .bind(id)
                .fetch_optional(&self.pool)
                .await?;
        Ok(v.flatten())
    }

    async fn devices_due_rotation(
        &self,
        fleet: &str,
        before: UnixTime,
        limit: u32,
    ) -> Result<Vec<String>> {
        Ok(sqlx::query_scalar(
            "SELECT id FROM devices d WHERE fleet = $1 AND state IN ('onboarded', 'active') \
             AND credential_issued_at < $2 AND NOT EXISTS (SELECT 1 FROM device_commands c \
             WHERE c.device_id = d.id AND c.kind = 'rotate_credential' AND c.state IN ('pending', 'in_progress')) \
             ORDER BY credential_issued_at LIMIT $3",
        )
        .bind(fleet)
        .bind(before)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?)
    }

    async fn device(&self, id: &str) -> Result<Option<DeviceRecord>> {
        let row = sqlx::query("SELECT * FROM devices WHERE id = $1")
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(device_from_row).transpose()
    }

    async fn device_by_hardware_id(&self, hardware_id: &str) -> Result<Option<DeviceRecord>> {
        let row = sqlx::query("SELECT * FROM devices WHERE hardware_id = $1")
            .bind(hardware_id)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(device_from_row).transpose()
    }

    async fn devices(&self, fleet: &str, after: &str, limit: u32) -> Result<Vec<DeviceRecord>> {
        let rows =
            sqlx::query("SELECT * FROM devices WHERE fleet = $1 AND id > $2 ORDER BY id LIMIT $3")
                .bind(fleet)
                .bind(after)
                .bind(i64::from(limit))
                .fetch_all(&self.pool)
                .await?;
        rows.iter().map(device_from_row).collect()
    }

    async fn register_devices(
        &self,
        items: Vec<Registration>,
        now: UnixTime,
    ) -> Result<Vec<Result<AuditEntry>>> {
        if items.is_empty() {
            return Ok(Vec::new());
        }
        let mut tx = self.pool.begin().await?;
        lock_audit(&mut tx, self.audit_lock).await?;
        // One statement for all devices; rows that collide with a unique hardware id
        // or public key (already stored, or earlier in this group) are skipped and
        // the inserted ids come back.
        let mut q = sqlx::QueryBuilder::<sqlx::Postgres>::new(
            "INSERT INTO devices (id, fleet, hardware_id, state, model, x25519, ed25519, ml_kem_768, ml_dsa_65, \
             birth_credential, profile, created_at, updated_at) ",
        );
        q.push_values(&items, |mut b, Registration { device: d, .. }| {
            b.push_bind(&d.id)
                .push_bind(&d.fleet)
                .push_bind(&d.hardware_id)
                .push_bind(d.state.as_str())
                .push_bind(&d.model)
                .push_bind(d.x25519.as_slice().to_vec())
                .push_bind(d.ed25519.as_slice().to_vec())
                .push_bind(d.ml_kem_768.clone())
                .push_bind(d.ml_dsa_65.clone())
                .push_bind(d.birth_credential.clone())
                .push_bind(&d.profile)
                .push_bind(d.created_at)
                .push_bind(d.updated_at);
        });
        q.push(" ON CONFLICT DO NOTHING RETURNING id");
        let inserted: std::collections::HashSet<String> = q
            .build_query_scalar::<String>()
            .fetch_all(&mut *tx)
            .await?
            .into_iter()
            .collect();
        let mut head = audit_head(&mut tx).await?;
        let mut entries = Vec::new();
        let mut out = Vec::with_capacity(items.len());
        for Registration {
            device: d, audit, ..
        } in &items
        {
            if inserted.contains(&d.id) {
                let e = AuditEntry::chain(audit, head, now)?;
                head = Some((e.seq, e.hash));
                entries.push(e.clone());
                out.push(Ok(e));
            } else {
                out.push(Err(classify_conflict(&mut tx, d).await?));
            }
        }
        let done: Vec<&Registration> = items
            .iter()
            .filter(|r| inserted.contains(&r.device.id))
            .collect();
        if !done.is_empty() {
            let mut m = sqlx::QueryBuilder::<sqlx::Postgres>::new(
                "INSERT INTO manufacturing_records (device_id, batch, station, test_results, created_at) ",
            );
            m.push_values(&done, |mut b, r| {
                b.push_bind(&r.device.id)
                    .push_bind(&r.manufacturing.batch)
                    .push_bind(&r.manufacturing.station)
                    .push_bind(&r.manufacturing.test_results)
                    .push_bind(now);
            });
            m.build().execute(&mut *tx).await?;
            for r in &done {
                if let Some(sec) = &r.secret {
                    sqlx::query(
                        "INSERT INTO device_secrets (device_id, profile, wrapped, last_boot) VALUES ($1, $2, $3, 0)",
                    )
                    .bind(&r.device.id)
                    .bind(&sec.profile)
                    .bind(&sec.wrapped)
                    .execute(&mut *tx)
                    .await?;
                }
            }
            // Devices registered together almost always share one initial config
            // (their fleet's defaults): one fixed statement per distinct config, the
            // device ids bound as a JSON array (prepared once, unlike a multi-row
            // VALUES list whose text changes with the group size).
            let mut by_config: Vec<(&StoredConfig, Vec<&str>)> = Vec::new();
            for r in &done {
                if let Some(c) = &r.config {
                    match by_config.iter_mut().find(|(k, _)| *k == c) {
                        Some((_, ids)) => ids.push(&r.device.id),
                        None => by_config.push((c, vec![&r.device.id])),
                    }
                }
            }
            for (cfg, ids) in by_config {
                sqlx::query(
                    "INSERT INTO device_configs (device_id, schema_version, revision, config, updated_at) \
                     SELECT value, $1, $2, $3, $4 FROM json_array_elements_text($5::json)",
                )
                .bind(i64::from(cfg.schema_version))
                .bind(cfg.revision)
                .bind(&cfg.config)
                .bind(cfg.updated_at)
                .bind(serde_json::to_string(&ids).map_err(|e| Error::Store(e.to_string()))?)
                .execute(&mut *tx)
                .await?;
            }
            let mut a = sqlx::QueryBuilder::<sqlx::Postgres>::new(
                "INSERT INTO audit_log (seq, time, actor, action, subject, details, prev_hash, hash) ",
            );
            let seqs = entries
                .iter()
                .map(|e| to_i64(e.seq, "audit seq"))
                .collect::<Result<Vec<_>>>()?;
            a.push_values(entries.iter().zip(seqs), |mut b, (e, seq)| {
                b.push_bind(seq)
                    .push_bind(e.time)
                    .push_bind(&e.actor)
                    .push_bind(&e.action)
                    .push_bind(&e.subject)
                    .push_bind(&e.details)
                    .push_bind(e.prev_hash.to_vec())
                    .push_bind(e.hash.to_vec());
            });
            a.build().execute(&mut *tx).await?;
        }
        tx.commit().await?;
        Ok(out)
    }

    async fn put_challenge(
        &self,
        nonce: &[u8; 32],
        device_id: &str,
        issued_at: UnixTime,
        expires_at: UnixTime,
    ) -> Result<()> {
        sqlx::query("INSERT INTO onboarding_challenges (nonce, device_id, issued_at, expires_at) VALUES ($1, $2, $3, $4)")
            .bind(nonce.as_slice())
            .bind(device_id)
            .bind(issued_at)
            .bind(expires_at)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn take_challenge(
        &self,
        nonce: &[u8; 32],
        device_id: &str,
        now: UnixTime,
    ) -> Result<UnixTime> {
        let taken: Option<i64> = sqlx::query_scalar(
            "UPDATE onboarding_challenges SET used = 1 \
             WHERE nonce = $1 AND device_id = $2 AND used = 0 AND expires_at > $3 RETURNING issued_at",
        )
        .bind(nonce.as_slice())
        .bind(device_id)
        .bind(now)
        .fetch_optional(&self.pool)
        .await?;
        if let Some(t) = taken {
            return Ok(t);
        }
        let row = sqlx::query(
            "SELECT device_id, used, expires_at FROM onboarding_challenges WHERE nonce = $1",
        )
        .bind(nonce.as_slice())
        .fetch_optional(&self.pool)
        .await?;
        Err(match row {
            None => Error::ChallengeRefused("unknown challenge"),
            Some(r) if r.try_get::<String, _>("device_id")? != device_id => {
                Error::ChallengeRefused("issued to another device")
            }
            Some(r) if r.try_get::<i64, _>("used")? != 0 => {
                Error::ChallengeRefused("already used (replay)")
            }
            Some(_) => Error::ChallengeRefused("expired"),
        })
    }

    async fn device_by_claim_hash(&self, hash: &[u8; 32]) -> Result<Option<DeviceRecord>> {
        let row = sqlx::query(
            "SELECT d.* FROM devices d JOIN claim_codes c ON c.device_id = d.id WHERE c.hash = $1",
        )
        .bind(hash.as_slice())
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(device_from_row).transpose()
    }

    async fn is_revoked(&self, credential_id: &[u8]) -> Result<bool> {
        let r: Option<i64> = sqlx::query_scalar(
            "SELECT 1::BIGINT FROM revoked_credentials WHERE credential_id = $1",
        )
        .bind(credential_id)
        .fetch_optional(&self.pool)
        .await?;
        Ok(r.is_some())
    }

    async fn token_by_hash(&self, hash: &[u8; 32]) -> Result<Option<TokenRecord>> {
        let row = sqlx::query("SELECT * FROM tokens WHERE hash = $1")
            .bind(hash.as_slice())
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(token_from_row).transpose()
    }

    async fn tokens(&self) -> Result<Vec<TokenRecord>> {
        let rows = sqlx::query("SELECT * FROM tokens ORDER BY created_at, id")
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(token_from_row).collect()
    }

    async fn audit_entries(&self, after: u64, limit: u32) -> Result<Vec<AuditEntry>> {
        let rows = sqlx::query("SELECT * FROM audit_log WHERE seq > $1 ORDER BY seq LIMIT $2")
            .bind(to_i64(after, "after")?)
            .bind(i64::from(limit))
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(entry_from_row).collect()
    }

    async fn put_checkpoint(&self, c: &Checkpoint) -> Result<()> {
        sqlx::query(
            "INSERT INTO audit_checkpoints (seq, head_hash, time, signature) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (seq) DO NOTHING",
        )
        .bind(to_i64(c.seq, "seq")?)
        .bind(c.head_hash.as_slice())
        .bind(c.time)
        .bind(c.signature.as_slice())
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn latest_checkpoint(&self) -> Result<Option<Checkpoint>> {
        let row = sqlx::query("SELECT * FROM audit_checkpoints ORDER BY seq DESC LIMIT 1")
            .fetch_optional(&self.pool)
            .await?;
        match row {
            None => Ok(None),
            Some(r) => Ok(Some(Checkpoint {
                seq: to_u64(r.try_get("seq")?, "seq")?,
                head_hash: hash32(r.try_get("head_hash")?)?,
                time: r.try_get("time")?,
                signature: r.try_get("signature")?,
            })),
        }
    }
}

/// Stores a key record if its sequence is above the stored one (or it is the first).
async fn put_key_record(
    tx: &mut sqlx::Transaction<'_, sqlx::Postgres>,
    r: &crate::directory::RecordWrite,
) -> Result<()> {
    let seq = to_i64(r.sequence, "sequence")?;
    let n = sqlx::query(
        "INSERT INTO key_records (identity, sequence, record, revoked, issued_at) VALUES ($1, $2, $3, $4, $5) \
         ON CONFLICT (identity) DO UPDATE SET sequence = excluded.sequence, record = excluded.record, \
         revoked = excluded.revoked, issued_at = excluded.issued_at \
         WHERE key_records.sequence < excluded.sequence",
    )
    .bind(&r.identity)
    .bind(seq)
    .bind(r.record.as_slice())
    .bind(i64::from(r.revoked))
    .bind(r.issued_at)
    .execute(&mut **tx)
    .await?
    .rows_affected();
    if n == 0 {
        return Err(Error::DirectoryConflict(r.identity.clone()));
    }
    Ok(())
}

/// Refuses unless the device is in one of `from` (inside the transaction).
async fn check_state(
    tx: &mut sqlx::Transaction<'_, sqlx::Postgres>,
    id: &str,
    from: &[DeviceState],
    to: &'static str,
) -> Result<()> {
    let current: Option<String> = sqlx::query_scalar("SELECT state FROM devices WHERE id = $1")
        .bind(id)
        .fetch_optional(&mut **tx)
        .await?;
    let current =
        DeviceState::parse(&current.ok_or_else(|| Error::DeviceNotFound(id.to_owned()))?)?;
    if !from.contains(&current) {
        return Err(Error::IllegalTransition {
            from: current.as_str(),
            to,
        });
    }
    Ok(())
}

async fn revoke_credential(
    tx: &mut sqlx::Transaction<'_, sqlx::Postgres>,
    credential_id: &[u8],
    device_id: &str,
    at: UnixTime,
) -> Result<()> {
    sqlx::query(
        "INSERT INTO revoked_credentials (credential_id, device_id, revoked_at) VALUES ($1, $2, $3) \
         ON CONFLICT (credential_id) DO NOTHING",
    )
    .bind(credential_id)
    .bind(device_id)
    .bind(at)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

async fn insert_command(
    tx: &mut sqlx::Transaction<'_, sqlx::Postgres>,
    c: &CommandRecord,
) -> Result<()> {
    sqlx::query(
        "INSERT INTO device_commands (id, device_id, kind, payload, signature, state, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
    )
    .bind(&c.id)
    .bind(&c.device_id)
    .bind(c.kind.as_str())
    .bind(&c.payload)
    .bind(c.signature.as_slice())
    .bind(c.state.as_str())
    .bind(c.created_at)
    .bind(c.updated_at)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Cancels a device's open commands (of one kind, or all), erasing pending state.
async fn cancel_commands(
    tx: &mut sqlx::Transaction<'_, sqlx::Postgres>,
    device_id: &str,
    kind: Option<CommandKind>,
    at: UnixTime,
) -> Result<()> {
    sqlx::query(
        "UPDATE device_commands SET state = 'cancelled', pending = NULL, updated_at = $1 \
         WHERE device_id = $2 AND state IN ('pending', 'in_progress') AND ($3 IS NULL OR kind = $4)",
    )
    .bind(at)
    .bind(device_id)
    .bind(kind.map(CommandKind::as_str))
    .bind(kind.map(CommandKind::as_str))
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Moves a device's open command of `kind` to `to` (keeping `pending` state only
/// when given); a command that is unknown, another device's, or not open is refused.
/// Finishing a rotation needs it in progress (its keys proposed).
#[allow(clippy::too_many_arguments)]
async fn step_command(
    tx: &mut sqlx::Transaction<'_, sqlx::Postgres>,
    command_id: &str,
    device_id: &str,
    kind: CommandKind,
    to: CommandState,
    pending: Option<&str>,
    at: UnixTime,
) -> Result<()> {
    let from: &[&str] = if kind == CommandKind::RotateCredential && to == CommandState::Done {
        &["in_progress"]
    } else {
        &["pending", "in_progress"]
    };
    let n = sqlx::query(
        "UPDATE device_commands SET state = $1, pending = $2, updated_at = $3 \
         WHERE id = $4 AND device_id = $5 AND kind = $6 AND state IN ($7, $8)",
    )
    .bind(to.as_str())
    .bind(pending)
    .bind(at)
    .bind(command_id)
    .bind(device_id)
    .bind(kind.as_str())
    .bind(from[0])
    .bind(from.last().copied().unwrap_or(from[0]))
    .execute(&mut **tx)
    .await?
    .rows_affected();
    if n == 0 {
        return Err(command_refusal(tx, command_id, device_id).await?);
    }
    Ok(())
}

/// Why a command step was refused: unknown (or another device's), or in the wrong state.
async fn command_refusal(
    tx: &mut sqlx::Transaction<'_, sqlx::Postgres>,
    id: &str,
    device_id: &str,
) -> Result<Error> {
    let row = sqlx::query("SELECT device_id, state FROM device_commands WHERE id = $1")
        .bind(id)
        .fetch_optional(&mut **tx)
        .await?;
    Ok(match row {
        Some(r) if r.try_get::<String, _>("device_id")? == device_id => {
            Error::CommandState(CommandState::parse(&r.try_get::<String, _>("state")?)?.as_str())
        }
        _ => Error::CommandNotFound(id.to_owned()),
    })
}

/// Why a device row was not inserted: its hardware id or one of its keys is taken.
async fn classify_conflict(
    tx: &mut sqlx::Transaction<'_, sqlx::Postgres>,
    d: &DeviceRecord,
) -> Result<Error> {
    let hw: Option<i64> =
        sqlx::query_scalar("SELECT 1::BIGINT FROM devices WHERE hardware_id = $1")
            .bind(&d.hardware_id)
            .fetch_optional(&mut **tx)
            .await?;
    if hw.is_some() {
        return Ok(Error::DeviceExists(d.hardware_id.clone()));
    }
    let x: Option<i64> = sqlx::query_scalar("SELECT 1::BIGINT FROM devices WHERE x25519 = $1")
        .bind(d.x25519.as_slice())
        .fetch_optional(&mut **tx)
        .await?;
    Ok(if x.is_some() {
        Error::DuplicateKey("x25519")
    } else {
        Error::DuplicateKey("ed25519")
    })
}

/// Chains `draft` after the current head and inserts it (inside `tx`).
async fn append_audit(
    tx: &mut sqlx::Transaction<'_, sqlx::Postgres>,
    draft: &AuditDraft,
    now: UnixTime,
) -> Result<AuditEntry> {
    let prev = audit_head(tx).await?;
    append_audit_after(tx, draft, now, prev).await
}

/// The newest audit entry's (seq, hash).
async fn audit_head(
    tx: &mut sqlx::Transaction<'_, sqlx::Postgres>,
) -> Result<Option<(u64, [u8; 32])>> {
    let head = sqlx::query("SELECT seq, hash FROM audit_log ORDER BY seq DESC LIMIT 1")
        .fetch_optional(&mut **tx)
        .await?;
    match head {
        Some(r) => Ok(Some((
            to_u64(r.try_get("seq")?, "seq")?,
            hash32(r.try_get("hash")?)?,
        ))),
        None => Ok(None),
    }
}

/// Chains `draft` after `prev` (which the caller read in this transaction).
async fn append_audit_after(
    tx: &mut sqlx::Transaction<'_, sqlx::Postgres>,
    draft: &AuditDraft,
    now: UnixTime,
    prev: Option<(u64, [u8; 32])>,
) -> Result<AuditEntry> {
    let entry = AuditEntry::chain(draft, prev, now)?;
    sqlx::query(
        "INSERT INTO audit_log (seq, time, actor, action, subject, details, prev_hash, hash) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
    )
    .bind(to_i64(entry.seq, "seq")?)
    .bind(entry.time)
    .bind(&entry.actor)
    .bind(&entry.action)
    .bind(&entry.subject)
    .bind(&entry.details)
    .bind(entry.prev_hash.as_slice())
    .bind(entry.hash.as_slice())
    .execute(&mut **tx)
    .await?;
    Ok(entry)
}

async fn insert_version(
    tx: &mut sqlx::Transaction<'_, sqlx::Postgres>,
    v: &VersionRecord,
) -> Result<()> {
    sqlx::query(
        "INSERT INTO key_versions (keyring, version, wrapped_key, state, created_at, retired_at, revoked_at, seal_count) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
    )
    .bind(&v.keyring)
    .bind(i64::from(v.version))
    .bind(v.wrapped_key.as_slice())
    .bind(v.state.as_str())
    .bind(v.created_at)
    .bind(v.retired_at)
    .bind(v.revoked_at)
    .bind(to_i64(v.seal_count, "seal_count")?)
    .execute(&mut **tx)
    .await?;
    Ok(())
}
