//! The embedded store: SQLite through sqlx, WAL mode, `synchronous = FULL` (a
//! committed nonce reservation survives `kill -9` and power loss), one connection
//! (SQLite serialises writers anyway; one connection makes every transaction
//! immediate and free of busy retries).

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
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{Row, SqlitePool};
use std::path::Path;

/// The embedded SQLite store.
#[derive(Clone)]
pub struct SqliteStore {
    pool: SqlitePool,
}

impl SqliteStore {
    /// Opens (creating if needed) `dir/fleetkey.db` and runs migrations.
    pub async fn open(dir: &Path) -> Result<Self> {
        std::fs::create_dir_all(dir).map_err(|source| Error::Io {
            path: dir.display().to_string(),
            source,
        })?;
        let opts = SqliteConnectOptions::new()
            .filename(dir.join("fleetkey.db"))
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .foreign_keys(true)
            // 32 MiB of page cache (the default is 2 MiB): registrations insert into
            // indexes on random keys, which otherwise miss the cache once the
            // registry outgrows it. Grows only as pages are used.
            .pragma("cache_size", "-32768")
            .busy_timeout(std::time::Duration::from_secs(10));
        let pool = SqlitePoolOptions::new()
            .max_connections(1)
            .connect_with(opts)
            .await?;
        sqlx::migrate!("./migrations/sqlite").run(&pool).await?;
        Ok(Self { pool })
    }
}

#[async_trait::async_trait]
impl Store for SqliteStore {
    async fn keyring(&self, name: &str) -> Result<Option<KeyringRecord>> {
        let row = sqlx::query("SELECT * FROM keyrings WHERE name = ?")
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
        let rows = sqlx::query("SELECT * FROM key_versions WHERE keyring = ? ORDER BY version")
            .bind(name)
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(version_from_row).collect()
    }

    async fn apply(&self, change: Change, audit: AuditDraft, now: UnixTime) -> Result<AuditEntry> {
        let mut tx = self.pool.begin().await?;
        match &change {
            Change::CreateKeyring { keyring: k, first } => {
                let exists = sqlx::query("SELECT 1 FROM keyrings WHERE name = ?")
                    .bind(&k.name)
                    .fetch_optional(&mut *tx)
                    .await?;
                if exists.is_some() {
                    return Err(Error::KeyringExists(k.name.clone()));
                }
                sqlx::query(
                    "INSERT INTO keyrings (name, algorithm, primary_version, min_decrypt_version, \
                     rotation_period_secs, max_uses, overlap_secs, keep_last, created_at) \
                     VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
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
                    "UPDATE keyrings SET primary_version = ? WHERE name = ? AND primary_version = ?",
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
                    "UPDATE key_versions SET state = 'decrypt_only', retired_at = ? \
                     WHERE keyring = ? AND version = ? AND state = 'active'",
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
                         VALUES (?, ?, ?, ?)",
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
                    "UPDATE key_versions SET state = 'revoked', revoked_at = ? \
                     WHERE keyring = ? AND version = ? AND state != 'destroyed'",
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
                    "UPDATE keyrings SET rotation_period_secs = ?, max_uses = ?, overlap_secs = ?, keep_last = ? \
                     WHERE name = ?",
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
                sqlx::query("UPDATE keyrings SET min_decrypt_version = ? WHERE name = ? AND min_decrypt_version < ?")
                    .bind(i64::from(*min))
                    .bind(name)
                    .bind(i64::from(*min))
                    .execute(&mut *tx)
                    .await?;
                // Below the minimum nothing may open again: erase the wrapped keys.
                // A revoked version stays revoked (the stronger, final answer).
                sqlx::query(
                    "UPDATE key_versions SET wrapped_key = X'', \
                     state = CASE WHEN state = 'revoked' THEN 'revoked' ELSE 'destroyed' END \
                     WHERE keyring = ? AND version < ?",
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
                     VALUES (?, ?, ?, ?, ?, ?, NULL)",
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
                    "UPDATE tokens SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL",
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
                     VALUES (?, ?, ?, ?, ?, ?)",
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
                    "UPDATE devices SET state = ?, updated_at = ?, \
                     credential_issued_at = CASE WHEN ? IS NULL THEN credential_issued_at ELSE ? END, \
                     operational_credential_id = COALESCE(?, operational_credential_id) WHERE id = ?",
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
                    "INSERT INTO service_keys (name, wrapped, public, created_at) VALUES (?, ?, ?, ?) \
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
                    "UPDATE devices SET state = 'active', x25519 = ?, ed25519 = ?, ml_kem_768 = ?, ml_dsa_65 = ?, \
                     operational_credential_id = ?, credential_issued_at = ?, updated_at = ? WHERE id = ?",
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
                    "UPDATE devices SET state = 'decommissioned', updated_at = ? WHERE id = ?",
                )
                .bind(at)
                .bind(device_id)
                .execute(&mut *tx)
                .await?;
                sqlx::query(
                    "UPDATE device_commands SET state = 'done', pending = NULL, updated_at = ? \
                     WHERE device_id = ? AND kind = 'wipe' AND state IN ('pending', 'in_progress')",
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
                    sqlx::query(&format!("DELETE FROM {table} WHERE device_id = ?"))
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
                     updated_at = ? WHERE id = ? AND retired_hardware_id IS NULL",
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
                    "SELECT COALESCE(MAX(version), 0) FROM config_schemas WHERE fleet = ?",
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
                    "INSERT INTO config_schemas (fleet, version, schema, migration, created_at) VALUES (?, ?, ?, ?, ?)",
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
                    sqlx::query_scalar("SELECT revision FROM device_configs WHERE device_id = ?")
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
                     VALUES (?, ?, ?, ?, ?) ON CONFLICT (device_id) DO UPDATE SET \
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
                    sqlx::query("UPDATE fleets SET credential_rotation_secs = ? WHERE name = ?")
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
                let exists: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM fleets WHERE name = ?")
                    .bind(fleet)
                    .fetch_one(&mut *tx)
                    .await?;
                if exists == 0 {
                    return Err(Error::FleetNotFound(fleet.clone()));
                }
                if *allow {
                    sqlx::query(
                        "INSERT INTO fleet_static_key (fleet, allowed_at) VALUES (?, ?) ON CONFLICT DO NOTHING",
                    )
                    .bind(fleet)
                    .bind(at)
                    .execute(&mut *tx)
                    .await?;
                } else {
                    sqlx::query("DELETE FROM fleet_static_key WHERE fleet = ?")
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
                sqlx::query("INSERT INTO claim_codes (hash, device_id, created_at, expires_at) VALUES (?, ?, ?, ?)")
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
                    "UPDATE claim_codes SET used_at = ? WHERE hash = ? AND used_at IS NULL AND expires_at > ? \
                     RETURNING device_id",
                )
                .bind(at)
                .bind(hash.as_slice())
                .bind(at)
                .fetch_optional(&mut *tx)
                .await?;
                let Some(device) = device else {
                    let used: Option<Option<i64>> =
                        sqlx::query_scalar("SELECT used_at FROM claim_codes WHERE hash = ?")
                            .bind(hash.as_slice())
                            .fetch_optional(&mut *tx)
                            .await?;
                    return Err(Error::ClaimRefused(match used {
                        None => "unknown code",
                        Some(Some(_)) => "already used",
                        Some(None) => "expired",
                    }));
                };
                sqlx::query("UPDATE devices SET claimed_by = ?, updated_at = ? WHERE id = ? AND state != 'decommissioned'")
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
        // One connection: the transaction is the only writer, so the budget check
        // and the grant are one step.
        let mut tx = self.pool.begin().await?;
        let reserved: Option<i64> = sqlx::query_scalar(
            "SELECT SUM(high_water) FROM nonce_reservations WHERE keyring = ? AND version = ?",
        )
        .bind(keyring)
        .bind(i64::from(version))
        .fetch_one(&mut *tx)
        .await?;
        let reserved = to_u64(reserved.unwrap_or(0), "reserved nonces")?;
        let Some(grant) = grant(count, budget, reserved) else {
            return Ok(Reservation::BudgetSpent);
        };
        let hw: Option<i64> = sqlx::query_scalar(
            "SELECT high_water FROM nonce_reservations WHERE keyring = ? AND version = ? AND instance_id = ?",
        )
        .bind(keyring)
        .bind(i64::from(version))
        .bind(instance.as_slice())
        .fetch_optional(&mut *tx)
        .await?;
        let start = hw.unwrap_or(0);
        let end = start + i64::from(grant);
        if end > 1i64 << 32 {
            return Ok(Reservation::SpaceExhausted);
        }
        sqlx::query(
            "INSERT INTO nonce_reservations (keyring, version, instance_id, high_water) VALUES (?, ?, ?, ?) \
             ON CONFLICT (keyring, version, instance_id) DO UPDATE SET high_water = excluded.high_water",
        )
        .bind(keyring)
        .bind(i64::from(version))
        .bind(instance.as_slice())
        .bind(end)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(Reservation::Granted {
            start: to_u32(start, "nonce counter")?,
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
            "UPDATE nonce_reservations SET high_water = ? \
             WHERE keyring = ? AND version = ? AND instance_id = ? AND high_water = ?",
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
            "SELECT SUM(high_water) FROM nonce_reservations WHERE keyring = ? AND version = ?",
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
            sqlx::query("UPDATE key_versions SET seal_count = seal_count + ? WHERE keyring = ? AND version = ?")
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
        let mut tx = self.pool.begin().await?;
        let existing: Option<Vec<u8>> = sqlx::query_scalar(
            "SELECT instance_id FROM instance_leases WHERE holder = ? AND retired = 0",
        )
        .bind(holder)
        .fetch_optional(&mut *tx)
        .await?;
        if let Some(id) = existing {
            tx.commit().await?;
            return id
                .try_into()
                .map_err(|_| Error::Store("instance id is not 8 bytes".into()));
        }
        for _ in 0..16 {
            let id: [u8; 8] = fleetkey_crypto::rand::array()?;
            let r = sqlx::query(
                "INSERT INTO instance_leases (instance_id, holder, leased_at) VALUES (?, ?, ?)",
            )
            .bind(id.as_slice())
            .bind(holder)
            .bind(now)
            .execute(&mut *tx)
            .await;
            match r {
                Ok(_) => {
                    tx.commit().await?;
                    return Ok(id);
                }
                Err(sqlx::Error::Database(e)) if e.is_unique_violation() => continue,
                Err(e) => return Err(e.into()),
            }
        }
        Err(Error::Store("could not find an unused instance id".into()))
    }

    async fn fleet(&self, name: &str) -> Result<Option<FleetRecord>> {
        let row = sqlx::query("SELECT * FROM fleets WHERE name = ?")
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
        let row = sqlx::query("SELECT wrapped, public FROM service_keys WHERE name = ?")
            .bind(name)
            .fetch_optional(&self.pool)
            .await?;
        row.map(|r| Ok((r.try_get("wrapped")?, r.try_get("public")?)))
            .transpose()
    }

    async fn device_by_x25519(&self, key: &[u8]) -> Result<Option<DeviceRecord>> {
        let row = sqlx::query("SELECT * FROM devices WHERE x25519 = ?")
            .bind(key)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(device_from_row).transpose()
    }

    async fn key_record(&self, identity: &str) -> Result<Option<(u64, Vec<u8>)>> {
        let row = sqlx::query("SELECT sequence, record FROM key_records WHERE identity = ?")
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
            "SELECT profile, wrapped, last_boot FROM device_secrets WHERE device_id = ?",
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
            "UPDATE device_secrets SET last_boot = ? WHERE device_id = ? AND last_boot < ?",
        )
        .bind(i64::from(boot))
        .bind(device_id)
        .bind(i64::from(boot))
        .execute(&self.pool)
        .await?;
        Ok(r.rows_affected() == 1)
    }

    async fn fleet_allows_static_key(&self, fleet: &str) -> Result<bool> {
        let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM fleet_static_key WHERE fleet = ?")
            .bind(fleet)
            .fetch_one(&self.pool)
            .await?;
        Ok(n > 0)
    }

    async fn open_device_session(&self, d: &DeviceSessionRecord) -> Result<()> {
        sqlx::query(
            "INSERT INTO device_sessions (id, device_id, previous, pattern, peer, started_at, telemetry_seq) \
             VALUES (?, ?, ?, ?, ?, ?, ?)",
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
            "UPDATE device_sessions SET ended_at = ?, telemetry_seq = MAX(telemetry_seq, ?), \
             messages_in = ?, messages_out = ? WHERE id = ? RETURNING device_id",
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
                "INSERT INTO device_telemetry_positions (device_id, seq) VALUES (?, ?) \
                 ON CONFLICT (device_id) DO UPDATE SET seq = MAX(seq, excluded.seq)",
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
        let row = sqlx::query("SELECT * FROM device_sessions WHERE id = ?")
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
            sqlx::query_scalar("SELECT seq FROM device_telemetry_positions WHERE device_id = ?")
                .bind(device_id)
                .fetch_optional(&self.pool)
                .await?;
        to_u64(seq.unwrap_or(0), "telemetry_seq")
    }

    async fn prune_challenges(&self, expired_before: UnixTime) -> Result<u64> {
        Ok(
            sqlx::query("DELETE FROM onboarding_challenges WHERE expires_at < ?")
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
            "DELETE FROM device_sessions WHERE (ended_at IS NOT NULL AND ended_at < ?1) \
             OR (ended_at IS NULL AND started_at < ?1 AND EXISTS (SELECT 1 FROM device_sessions newer \
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
            "SELECT identity, record FROM key_records WHERE revoked = 0 AND issued_at < ? \
             ORDER BY issued_at LIMIT ?",
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
        let rows = sqlx::query("SELECT * FROM config_schemas WHERE fleet = ? ORDER BY version")
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
        let row = sqlx::query("SELECT * FROM device_configs WHERE device_id = ?")
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
             WHERE d.fleet = ? AND c.device_id > ? ORDER BY c.device_id LIMIT ?",
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
        let row = sqlx::query("SELECT * FROM device_commands WHERE id = ?")
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(command_from_row).transpose()
    }

    async fn commands(&self, device_id: &str, open: bool) -> Result<Vec<CommandRecord>> {
        let sql = if open {
            "SELECT * FROM device_commands WHERE device_id = ? AND state IN ('pending', 'in_progress') \
             ORDER BY created_at, rowid"
        } else {
            "SELECT * FROM device_commands WHERE device_id = ? ORDER BY created_at, rowid"
        };
        let rows = sqlx::query(sql)
            .bind(device_id)
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(command_from_row).collect()
    }

    async fn command_pending(&self, id: &str) -> Result<Option<String>> {
        let v: Option<Option<String>> =
            sqlx::query_scalar("SELECT pending FROM device_commands WHERE id = ?")
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
            "SELECT id FROM devices d WHERE fleet = ? AND state IN ('onboarded', 'active') \
             AND credential_issued_at < ? AND NOT EXISTS (SELECT 1 FROM device_commands c \
             WHERE c.device_id = d.id AND c.kind = 'rotate_credential' AND c.state IN ('pending', 'in_progress')) \
             ORDER BY credential_issued_at LIMIT ?",
        )
        .bind(fleet)
        .bind(before)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?)
    }

    async fn device(&self, id: &str) -> Result<Option<DeviceRecord>> {
        let row = sqlx::query("SELECT * FROM devices WHERE id = ?")
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(device_from_row).transpose()
    }

    async fn device_by_hardware_id(&self, hardware_id: &str) -> Result<Option<DeviceRecord>> {
        let row = sqlx::query("SELECT * FROM devices WHERE hardware_id = ?")
            .bind(hardware_id)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(device_from_row).transpose()
    }

    async fn devices(&self, fleet: &str, after: &str, limit: u32) -> Result<Vec<DeviceRecord>> {
        let rows =
            sqlx::query("SELECT * FROM devices WHERE fleet = ? AND id > ? ORDER BY id LIMIT ?")
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
        // One statement for all devices; rows that collide with a unique hardware id
        // or public key (already stored, or earlier in this group) are skipped and
        // the inserted ids come back.
        let mut q = sqlx::QueryBuilder::<sqlx::Sqlite>::new(
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
            let mut m = sqlx::QueryBuilder::<sqlx::Sqlite>::new(
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
                        "INSERT INTO device_secrets (device_id, profile, wrapped, last_boot) VALUES (?, ?, ?, 0)",
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
                     SELECT value, ?, ?, ?, ? FROM json_each(?)",
                )
                .bind(i64::from(cfg.schema_version))
                .bind(cfg.revision)
                .bind(&cfg.config)
                .bind(cfg.updated_at)
                .bind(serde_json::to_string(&ids).map_err(|e| Error::Store(e.to_string()))?)
                .execute(&mut *tx)
                .await?;
            }
            let mut a = sqlx::QueryBuilder::<sqlx::Sqlite>::new(
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
        sqlx::query("INSERT INTO onboarding_challenges (nonce, device_id, issued_at, expires_at) VALUES (?, ?, ?, ?)")
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
             WHERE nonce = ? AND device_id = ? AND used = 0 AND expires_at > ? RETURNING issued_at",
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
            "SELECT device_id, used, expires_at FROM onboarding_challenges WHERE nonce = ?",
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
            "SELECT d.* FROM devices d JOIN claim_codes c ON c.device_id = d.id WHERE c.hash = ?",
        )
        .bind(hash.as_slice())
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(device_from_row).transpose()
    }

    async fn is_revoked(&self, credential_id: &[u8]) -> Result<bool> {
        let r: Option<i64> =
            sqlx::query_scalar("SELECT 1 FROM revoked_credentials WHERE credential_id = ?")
                .bind(credential_id)
                .fetch_optional(&self.pool)
                .await?;
        Ok(r.is_some())
    }

    async fn token_by_hash(&self, hash: &[u8; 32]) -> Result<Option<TokenRecord>> {
        let row = sqlx::query("SELECT * FROM tokens WHERE hash = ?")
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
        let rows = sqlx::query("SELECT * FROM audit_log WHERE seq > ? ORDER BY seq LIMIT ?")
            .bind(to_i64(after, "after")?)
            .bind(i64::from(limit))
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(entry_from_row).collect()
    }

    async fn put_checkpoint(&self, c: &Checkpoint) -> Result<()> {
        sqlx::query(
            "INSERT INTO audit_checkpoints (seq, head_hash, time, signature) VALUES (?, ?, ?, ?) \
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
    tx: &mut sqlx::Transaction<'_, sqlx::Sqlite>,
    r: &crate::directory::RecordWrite,
) -> Result<()> {
    let seq = to_i64(r.sequence, "sequence")?;
    let n = sqlx::query(
        "INSERT INTO key_records (identity, sequence, record, revoked, issued_at) VALUES (?, ?, ?, ?, ?) \
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
    tx: &mut sqlx::Transaction<'_, sqlx::Sqlite>,
    id: &str,
    from: &[DeviceState],
    to: &'static str,
) -> Result<()> {
    let current: Option<String> = sqlx::query_scalar("SELECT state FROM devices WHERE id = ?")
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
    tx: &mut sqlx::Transaction<'_, sqlx::Sqlite>,
    credential_id: &[u8],
    device_id: &str,
    at: UnixTime,
) -> Result<()> {
    sqlx::query(
        "INSERT INTO revoked_credentials (credential_id, device_id, revoked_at) VALUES (?, ?, ?) \
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
    tx: &mut sqlx::Transaction<'_, sqlx::Sqlite>,
    c: &CommandRecord,
) -> Result<()> {
    sqlx::query(
        "INSERT INTO device_commands (id, device_id, kind, payload, signature, state, created_at, updated_at) \
         VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
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
    tx: &mut sqlx::Transaction<'_, sqlx::Sqlite>,
    device_id: &str,
    kind: Option<CommandKind>,
    at: UnixTime,
) -> Result<()> {
    sqlx::query(
        "UPDATE device_commands SET state = 'cancelled', pending = NULL, updated_at = ? \
         WHERE device_id = ? AND state IN ('pending', 'in_progress') AND (? IS NULL OR kind = ?)",
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
    tx: &mut sqlx::Transaction<'_, sqlx::Sqlite>,
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
        "UPDATE device_commands SET state = ?, pending = ?, updated_at = ? \
         WHERE id = ? AND device_id = ? AND kind = ? AND state IN (?, ?)",
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
    tx: &mut sqlx::Transaction<'_, sqlx::Sqlite>,
    id: &str,
    device_id: &str,
) -> Result<Error> {
    let row = sqlx::query("SELECT device_id, state FROM device_commands WHERE id = ?")
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
    tx: &mut sqlx::Transaction<'_, sqlx::Sqlite>,
    d: &DeviceRecord,
) -> Result<Error> {
    let hw: Option<i64> = sqlx::query_scalar("SELECT 1 FROM devices WHERE hardware_id = ?")
        .bind(&d.hardware_id)
        .fetch_optional(&mut **tx)
        .await?;
    if hw.is_some() {
        return Ok(Error::DeviceExists(d.hardware_id.clone()));
    }
    let x: Option<i64> = sqlx::query_scalar("SELECT 1 FROM devices WHERE x25519 = ?")
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
    tx: &mut sqlx::Transaction<'_, sqlx::Sqlite>,
    draft: &AuditDraft,
    now: UnixTime,
) -> Result<AuditEntry> {
    let prev = audit_head(tx).await?;
    append_audit_after(tx, draft, now, prev).await
}

/// The newest audit entry's (seq, hash).
async fn audit_head(
    tx: &mut sqlx::Transaction<'_, sqlx::Sqlite>,
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
    tx: &mut sqlx::Transaction<'_, sqlx::Sqlite>,
    draft: &AuditDraft,
    now: UnixTime,
    prev: Option<(u64, [u8; 32])>,
) -> Result<AuditEntry> {
    let entry = AuditEntry::chain(draft, prev, now)?;
    sqlx::query(
        "INSERT INTO audit_log (seq, time, actor, action, subject, details, prev_hash, hash) \
         VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
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
    tx: &mut sqlx::Transaction<'_, sqlx::Sqlite>,
    v: &VersionRecord,
) -> Result<()> {
    sqlx::query(
        "INSERT INTO key_versions (keyring, version, wrapped_key, state, created_at, retired_at, revoked_at, seal_count) \
         VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
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
