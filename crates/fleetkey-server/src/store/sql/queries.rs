//! The [`Store`] operations on [`SqlStore`]: reads, and writes outside
//! [`Store::apply`] (changes in `changes.rs`, registrations in `devices.rs`).

use super::super::rows::StoreRow as _;
use super::super::rows::{
    command_from_row, config_from_row, device_from_row, entry_from_row, fleet_from_row, grant,
    hash32, keyring_from_row, session_from_row, to_i64, to_u32, to_u64, token_from_row,
    version_from_row,
};
use super::super::{
    AliasRecord, AuditStore, Change, Changes, CommandRecord, CommandStore, DeviceCount,
    DeviceFilter, DeviceRecord, DeviceSecret, DeviceSessionRecord, DirectoryStore, FleetRecord,
    FleetStore, KeyringRecord, KeyringStore, OnboardingStore, Registration, Reservation,
    SchedulerStore, SchemaRecord, SessionStore, StoredConfig, TokenRecord, TokenStore,
    VersionRecord,
};
use super::{Dialect, SqlStore, Stmt, stmt};
use crate::clock::UnixTime;
use crate::error::{Error, Result};
use crate::store::audit_log::{AuditDraft, AuditEntry, Checkpoint};

#[async_trait::async_trait]
impl<D: Dialect> Changes for SqlStore<D> {
    async fn apply(&self, change: Change, audit: AuditDraft, now: UnixTime) -> Result<AuditEntry> {
        super::changes::apply(self, change, audit, now).await
    }
}

#[async_trait::async_trait]
impl<D: Dialect> KeyringStore for SqlStore<D> {
    async fn keyring(&self, name: &str) -> Result<Option<KeyringRecord>> {
        stmt("SELECT * FROM keyrings WHERE name = $1")
            .bind(name)
            .record(&self.pool, keyring_from_row)
            .await
    }

    async fn keyrings(&self) -> Result<Vec<KeyringRecord>> {
        stmt("SELECT * FROM keyrings ORDER BY name")
            .records(&self.pool, keyring_from_row)
            .await
    }

    async fn alias(&self, alias: &str) -> Result<Option<String>> {
        stmt("SELECT keyring FROM keyring_aliases WHERE alias = $1")
            .bind(alias)
            .scalar_optional(&self.pool)
            .await
    }

    async fn aliases(&self, keyring: Option<&str>) -> Result<Vec<AliasRecord>> {
        stmt(
            "SELECT alias, keyring, updated_at FROM keyring_aliases \
             WHERE $1 IS NULL OR keyring = $1 ORDER BY alias",
        )
        .bind(keyring)
        .records(&self.pool, |r| {
            Ok(AliasRecord {
                alias: r.col("alias")?,
                keyring: r.col("keyring")?,
                updated_at: r.col("updated_at")?,
            })
        })
        .await
    }

    async fn versions(&self, name: &str) -> Result<Vec<VersionRecord>> {
        stmt("SELECT * FROM key_versions WHERE keyring = $1 ORDER BY version")
            .bind(name)
            .records(&self.pool, version_from_row)
            .await
    }

    async fn reserve_nonces(
        &self,
        keyring: &str,
        version: u32,
        instance: [u8; 8],
        count: u32,
        budget: u64,
    ) -> Result<Reservation> {
        // The version's lock serialises reservations for it across instances, so
        // the budget check and the grant are one step; the upsert gives each
        // reservation its own range of this instance id's counters.
        let mut tx = self.pool.begin().await?;
        D::lock_version(&mut tx, &self.state, keyring, version).await?;
        let reserved: Option<i64> = stmt(
            "SELECT CAST(SUM(high_water) AS BIGINT) FROM nonce_reservations WHERE keyring = \
             $1 AND version = $2",
        )
        .bind(keyring)
        .bind(i64::from(version))
        .scalar(&mut tx)
        .await?;
        let reserved = to_u64(reserved.unwrap_or(0), "reserved nonces")?;
        let Some(grant) = grant(count, budget, reserved) else {
            tx.rollback().await?;
            return Ok(Reservation::BudgetSpent);
        };
        let end: i64 = stmt(
            "INSERT INTO nonce_reservations (keyring, version, instance_id, high_water) \
             VALUES ($1, $2, $3, $4) \
             ON CONFLICT (keyring, version, instance_id) \
             DO UPDATE SET high_water = nonce_reservations.high_water + excluded.high_water \
             RETURNING high_water",
        )
        .bind(keyring)
        .bind(i64::from(version))
        .bind(instance.as_slice())
        .bind(i64::from(grant))
        .scalar(&mut tx)
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
        let n = stmt(
            "UPDATE nonce_reservations SET high_water = $1 \
             WHERE keyring = $2 AND version = $3 AND instance_id = $4 AND high_water = $5",
        )
        .bind(to_i64(used_end, "used_end")?)
        .bind(keyring)
        .bind(i64::from(version))
        .bind(instance.as_slice())
        .bind(to_i64(end, "end")?)
        .execute(&self.pool)
        .await?;
        Ok(n == 1)
    }

    async fn reserved_nonces(&self, keyring: &str, version: u32) -> Result<u64> {
        let total: Option<i64> = stmt(
            "SELECT CAST(SUM(high_water) AS BIGINT) FROM nonce_reservations WHERE keyring = \
             $1 AND version = $2",
        )
        .bind(keyring)
        .bind(i64::from(version))
        .scalar(&self.pool)
        .await?;
        to_u64(total.unwrap_or(0), "reserved")
    }

    async fn add_seal_counts(&self, counts: &[(String, u32, u64)]) -> Result<()> {
        if counts.is_empty() {
            return Ok(());
        }
        let mut tx = self.pool.begin().await?;
        for (name, version, n) in counts {
            stmt("UPDATE key_versions SET seal_count = seal_count + $1 WHERE keyring = $2 AND version = $3")
                .bind(to_i64(*n, "n")?)
                .bind(name)
                .bind(i64::from(*version))
                .execute(&mut tx)
                .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn lease_instance(&self, holder: &str, now: UnixTime) -> Result<[u8; 8]> {
        let existing: Option<Vec<u8>> =
            stmt("SELECT instance_id FROM instance_leases WHERE holder = $1 AND retired = 0")
                .bind(holder)
                .scalar_optional(&self.pool)
                .await?;
        if let Some(id) = existing {
            return id
                .try_into()
                .map_err(|_| Error::Corrupt("instance id is not 8 bytes".into()));
        }
        for _ in 0..16 {
            let id: [u8; 8] = fleetkey_crypto::rand::array()?;
            let inserted: Option<Vec<u8>> = stmt(
                "INSERT INTO instance_leases (instance_id, holder, leased_at) VALUES ($1, \
                 $2, $3) \
                 ON CONFLICT DO NOTHING RETURNING instance_id",
            )
            .bind(id.as_slice())
            .bind(holder)
            .bind(now)
            .scalar_optional(&self.pool)
            .await?;
            if inserted.is_some() {
                return Ok(id);
            }
        }
        Err(Error::Conflict(
            "could not find an unused instance id".into(),
        ))
    }
}

#[async_trait::async_trait]
impl<D: Dialect> TokenStore for SqlStore<D> {
    async fn token_by_hash(&self, hash: &[u8; 32]) -> Result<Option<TokenRecord>> {
        stmt("SELECT * FROM tokens WHERE hash = $1")
            .bind(hash.as_slice())
            .record(&self.pool, token_from_row)
            .await
    }

    async fn tokens(&self) -> Result<Vec<TokenRecord>> {
        stmt("SELECT * FROM tokens ORDER BY created_at, id")
            .records(&self.pool, token_from_row)
            .await
    }

    async fn aws_access_key(&self, name: &str) -> Result<Option<(Vec<u8>, Vec<u8>)>> {
        service_key(&self.pool, name).await
    }
}

#[async_trait::async_trait]
impl<D: Dialect> AuditStore for SqlStore<D> {
    async fn audit_entries(&self, after: u64, limit: u32) -> Result<Vec<AuditEntry>> {
        stmt("SELECT * FROM audit_log WHERE seq > $1 ORDER BY seq LIMIT $2")
            .bind(to_i64(after, "after")?)
            .bind(i64::from(limit))
            .records(&self.pool, entry_from_row)
            .await
    }

    async fn put_checkpoint(&self, c: &Checkpoint) -> Result<()> {
        // Refused, like every change, from an instance whose store moved to
        // another custody root: its key no longer signs the chain.
        let mut tx = self.pool.begin().await?;
        super::custody::guard(self, &mut tx).await?;
        stmt(
            "INSERT INTO audit_checkpoints (seq, head_hash, time, signature) VALUES ($1, $2, \
             $3, $4) \
             ON CONFLICT (seq) DO NOTHING",
        )
        .bind(to_i64(c.seq, "seq")?)
        .bind(c.head_hash.as_slice())
        .bind(c.time)
        .bind(c.signature.as_slice())
        .execute(&mut tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn latest_checkpoint(&self) -> Result<Option<Checkpoint>> {
        stmt("SELECT * FROM audit_checkpoints ORDER BY seq DESC LIMIT 1")
            .record(&self.pool, checkpoint_from_row)
            .await
    }

    async fn checkpoint_covering(&self, seq: u64) -> Result<Option<Checkpoint>> {
        stmt("SELECT * FROM audit_checkpoints WHERE seq >= $1 ORDER BY seq LIMIT 1")
            .bind(to_i64(seq, "seq")?)
            .record(&self.pool, checkpoint_from_row)
            .await
    }
}

#[async_trait::async_trait]
impl<D: Dialect> DirectoryStore for SqlStore<D> {
    async fn key_record(&self, identity: &str) -> Result<Option<(u64, Vec<u8>)>> {
        let row = stmt("SELECT sequence, record FROM key_records WHERE identity = $1")
            .bind(identity)
            .optional(&self.pool)
            .await?;
        row.map(|r| Ok((to_u64(r.col("sequence")?, "sequence")?, r.col("record")?)))
            .transpose()
    }

    async fn key_records_issued_before(
        &self,
        before: UnixTime,
        limit: u32,
    ) -> Result<Vec<(String, Vec<u8>)>> {
        let rows = stmt(
            "SELECT identity, record FROM key_records WHERE revoked = 0 AND issued_at < $1 \
             ORDER BY issued_at LIMIT $2",
        )
        .bind(before)
        .bind(i64::from(limit))
        .all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| Ok((r.col("identity")?, r.col("record")?)))
            .collect()
    }

    async fn service_key(&self, name: &str) -> Result<Option<(Vec<u8>, Vec<u8>)>> {
        service_key(&self.pool, name).await
    }
}

/// A service key's wrapped secret and public part.
async fn service_key<D: Dialect>(
    pool: &sqlx::Pool<D>,
    name: &str,
) -> Result<Option<(Vec<u8>, Vec<u8>)>> {
    let row = stmt("SELECT wrapped, public FROM service_keys WHERE name = $1")
        .bind(name)
        .optional(pool)
        .await?;
    row.map(|r| Ok((r.col("wrapped")?, r.col("public")?)))
        .transpose()
}

#[async_trait::async_trait]
impl<D: Dialect> FleetStore for SqlStore<D> {
    async fn fleet(&self, name: &str) -> Result<Option<FleetRecord>> {
        stmt("SELECT * FROM fleets WHERE name = $1")
            .bind(name)
            .record(&self.pool, fleet_from_row)
            .await
    }

    async fn fleets_with_rotation(&self) -> Result<Vec<FleetRecord>> {
        stmt("SELECT * FROM fleets WHERE credential_rotation_secs IS NOT NULL ORDER BY name")
            .records(&self.pool, fleet_from_row)
            .await
    }

    async fn device(&self, id: &str) -> Result<Option<DeviceRecord>> {
        stmt("SELECT * FROM devices WHERE id = $1")
            .bind(id)
            .record(&self.pool, device_from_row)
            .await
    }

    async fn device_by_hardware_id(&self, hardware_id: &str) -> Result<Option<DeviceRecord>> {
        stmt("SELECT * FROM devices WHERE hardware_id = $1")
            .bind(hardware_id)
            .record(&self.pool, device_from_row)
            .await
    }

    async fn fleets(&self, after: &str, limit: u32) -> Result<Vec<FleetRecord>> {
        stmt("SELECT * FROM fleets WHERE name > $1 ORDER BY name LIMIT $2")
            .bind(after)
            .bind(i64::from(limit))
            .records(&self.pool, fleet_from_row)
            .await
    }

    async fn devices(
        &self,
        fleet: &str,
        filter: &DeviceFilter,
        after: &str,
        limit: u32,
    ) -> Result<Vec<DeviceRecord>> {
        stmt(
            "SELECT * FROM devices WHERE fleet = $1 AND id > $2 \
             AND ($3 IS NULL OR state = $3) AND ($4 IS NULL OR profile = $4) \
             AND ($5 IS NULL OR last_seen IS NULL OR last_seen < $5) \
             AND ($6 IS NULL OR last_seen >= $6) ORDER BY id LIMIT $7",
        )
        .bind(fleet)
        .bind(after)
        .bind(filter.state.map(|s| s.as_str()))
        .bind(filter.profile.as_deref())
        .bind(filter.seen_before)
        .bind(filter.seen_after)
        .bind(i64::from(limit))
        .records(&self.pool, device_from_row)
        .await
    }

    async fn device_counts(&self, fleet: &str, since: [UnixTime; 3]) -> Result<Vec<DeviceCount>> {
        super::devices::counts(self, fleet, since).await
    }

    async fn credential_expiry_counts(
        &self,
        now: UnixTime,
        soon: UnixTime,
    ) -> Result<Vec<(String, i64, i64)>> {
        super::devices::credential_expiry(self, now, soon).await
    }

    async fn register_devices(
        &self,
        items: Vec<Registration>,
        now: UnixTime,
    ) -> Result<Vec<Result<AuditEntry>>> {
        super::devices::register(self, items, now).await
    }

    async fn config_schemas(&self, fleet: &str) -> Result<Vec<SchemaRecord>> {
        let rows = stmt("SELECT * FROM config_schemas WHERE fleet = $1 ORDER BY version")
            .bind(fleet)
            .all(&self.pool)
            .await?;
        rows.iter()
            .map(|r| {
                Ok(SchemaRecord {
                    version: to_u32(r.col("version")?, "schema version")?,
                    schema: r.col("schema")?,
                    migration: r.col("migration")?,
                    created_at: r.col("created_at")?,
                })
            })
            .collect()
    }

    async fn device_config(&self, device_id: &str) -> Result<Option<StoredConfig>> {
        stmt("SELECT * FROM device_configs WHERE device_id = $1")
            .bind(device_id)
            .record(&self.pool, config_from_row)
            .await
    }

    async fn device_configs(
        &self,
        fleet: &str,
        after: &str,
        limit: u32,
    ) -> Result<Vec<(String, StoredConfig)>> {
        let rows = stmt(
            "SELECT c.* FROM device_configs c JOIN devices d ON d.id = c.device_id \
             WHERE d.fleet = $1 AND c.device_id > $2 ORDER BY c.device_id LIMIT $3",
        )
        .bind(fleet)
        .bind(after)
        .bind(i64::from(limit))
        .all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| Ok((r.col("device_id")?, config_from_row(r)?)))
            .collect()
    }
}

#[async_trait::async_trait]
impl<D: Dialect> OnboardingStore for SqlStore<D> {
    async fn put_challenge(
        &self,
        nonce: &[u8; 32],
        device_id: &str,
        issued_at: UnixTime,
        expires_at: UnixTime,
    ) -> Result<()> {
        stmt("INSERT INTO onboarding_challenges (nonce, device_id, issued_at, expires_at) VALUES ($1, $2, $3, $4)")
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
        let taken: Option<i64> = stmt(
            "UPDATE onboarding_challenges SET used = 1 \
             WHERE nonce = $1 AND device_id = $2 AND used = 0 AND expires_at > $3 RETURNING \
             issued_at",
        )
        .bind(nonce.as_slice())
        .bind(device_id)
        .bind(now)
        .scalar_optional(&self.pool)
        .await?;
        if let Some(t) = taken {
            return Ok(t);
        }
        let row =
            stmt("SELECT device_id, used, expires_at FROM onboarding_challenges WHERE nonce = $1")
                .bind(nonce.as_slice())
                .optional(&self.pool)
                .await?;
        Err(match row {
            None => Error::ChallengeRefused("unknown challenge"),
            Some(r) if r.col::<String>("device_id")? != device_id => {
                Error::ChallengeRefused("issued to another device")
            }
            Some(r) if r.col::<i64>("used")? != 0 => {
                Error::ChallengeRefused("already used (replay)")
            }
            Some(_) => Error::ChallengeRefused("expired"),
        })
    }

    async fn prune_challenges(&self, expired_before: UnixTime) -> Result<u64> {
        Ok(
            stmt("DELETE FROM onboarding_challenges WHERE expires_at < $1")
                .bind(expired_before)
                .execute(&self.pool)
                .await?,
        )
    }

    async fn device_by_claim_hash(&self, hash: &[u8; 32]) -> Result<Option<DeviceRecord>> {
        stmt("SELECT d.* FROM devices d JOIN claim_codes c ON c.device_id = d.id WHERE c.hash = $1")
            .bind(hash.as_slice())
            .record(&self.pool, device_from_row)
            .await
    }

    async fn device_secret(&self, device_id: &str) -> Result<Option<DeviceSecret>> {
        let row =
            stmt("SELECT profile, wrapped, last_boot FROM device_secrets WHERE device_id = $1")
                .bind(device_id)
                .optional(&self.pool)
                .await?;
        row.map(|r| {
            Ok(DeviceSecret {
                profile: r.col("profile")?,
                wrapped: r.col("wrapped")?,
                last_boot: to_u32(r.col("last_boot")?, "last_boot")?,
            })
        })
        .transpose()
    }

    async fn raise_device_boot(&self, device_id: &str, boot: u32) -> Result<bool> {
        let r = stmt(
            "UPDATE device_secrets SET last_boot = $1 WHERE device_id = $2 AND last_boot < $1",
        )
        .bind(i64::from(boot))
        .bind(device_id)
        .execute(&self.pool)
        .await?;
        Ok(r == 1)
    }

    async fn next_down_counter(&self, device_id: &str) -> Result<Option<u32>> {
        let c: Option<i64> = stmt(
            "UPDATE device_secrets SET down_counter = down_counter + 1 \
             WHERE device_id = $1 AND down_counter < 4294967295 RETURNING down_counter",
        )
        .bind(device_id)
        .scalar_optional(&self.pool)
        .await?;
        c.map(|c| to_u32(c, "down_counter")).transpose()
    }

    async fn fleet_allows_static_key(&self, fleet: &str) -> Result<bool> {
        let n: i64 = stmt("SELECT COUNT(*) FROM fleet_static_key WHERE fleet = $1")
            .bind(fleet)
            .scalar(&self.pool)
            .await?;
        Ok(n > 0)
    }

    async fn is_revoked(&self, credential_id: &[u8]) -> Result<bool> {
        let r: Option<i64> =
            stmt("SELECT CAST(1 AS BIGINT) FROM revoked_credentials WHERE credential_id = $1")
                .bind(credential_id)
                .scalar_optional(&self.pool)
                .await?;
        Ok(r.is_some())
    }
}

#[async_trait::async_trait]
impl<D: Dialect> CommandStore for SqlStore<D> {
    async fn command(&self, id: &str) -> Result<Option<CommandRecord>> {
        stmt("SELECT * FROM device_commands WHERE id = $1")
            .bind(id)
            .record(&self.pool, command_from_row)
            .await
    }

    async fn commands(&self, device_id: &str, open: bool) -> Result<Vec<CommandRecord>> {
        let filter = if open {
            "AND state IN ('pending', 'in_progress') "
        } else {
            ""
        };
        let rows = Stmt::owned(format!(
            "SELECT * FROM device_commands WHERE device_id = $1 {filter}ORDER BY \
             created_at, {}",
            D::INSERTION_ORDER
        ))
        .bind(device_id)
        .all(&self.pool)
        .await?;
        rows.iter().map(command_from_row).collect()
    }

    async fn command_pending(&self, id: &str) -> Result<Option<String>> {
        let v: Option<Option<String>> = stmt("SELECT pending FROM device_commands WHERE id = $1")
            .bind(id)
            .scalar_optional(&self.pool)
            .await?;
        Ok(v.flatten())
    }

    async fn devices_due_rotation(
        &self,
        fleet: &str,
        before: UnixTime,
        limit: u32,
    ) -> Result<Vec<String>> {
        Ok(stmt(
            "SELECT id FROM devices d WHERE fleet = $1 AND profile = 'full' AND state IN ('onboarded', 'active') \
             AND credential_issued_at < $2 AND NOT EXISTS (SELECT 1 FROM device_commands c \
             WHERE c.device_id = d.id AND c.kind = 'rotate_credential' AND c.state IN \
             ('pending', 'in_progress')) \
             ORDER BY credential_issued_at LIMIT $3",
        )
        .bind(fleet)
        .bind(before)
        .bind(i64::from(limit))
        .scalars(&self.pool)
        .await?)
    }
}

#[async_trait::async_trait]
impl<D: Dialect> SessionStore for SqlStore<D> {
    async fn session_patterns(&self, scope: &str) -> Result<Option<String>> {
        stmt("SELECT patterns FROM session_patterns WHERE scope = $1")
            .bind(scope)
            .scalar_optional(&self.pool)
            .await
    }

    async fn record_seen(&self, seen: &[(String, UnixTime)]) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        for (id, at) in seen {
            stmt(
                "UPDATE devices SET last_seen = $1 WHERE id = $2 \
                 AND (last_seen IS NULL OR last_seen < $1)",
            )
            .bind(*at)
            .bind(id)
            .execute(&mut tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn seen_counts(&self, since: [UnixTime; 3]) -> Result<Vec<(String, [i64; 3])>> {
        let rows = stmt(
            "SELECT fleet, \
             SUM(CASE WHEN last_seen >= $1 THEN 1 ELSE 0 END), \
             SUM(CASE WHEN last_seen >= $2 THEN 1 ELSE 0 END), \
             SUM(CASE WHEN last_seen >= $3 THEN 1 ELSE 0 END) \
             FROM devices WHERE last_seen >= $3 GROUP BY fleet ORDER BY fleet",
        )
        .bind(since[0])
        .bind(since[1])
        .bind(since[2])
        .all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| Ok((r.col_at(0)?, [r.col_at(1)?, r.col_at(2)?, r.col_at(3)?])))
            .collect()
    }

    async fn connected_device_count(&self, fleet: &str, live_after: UnixTime) -> Result<i64> {
        super::devices::connected_count(self, fleet, live_after).await
    }

    async fn connected_devices(
        &self,
        fleet: &str,
        from: &str,
        up_to: &str,
        live_after: UnixTime,
    ) -> Result<Vec<String>> {
        let rows = stmt(
            "SELECT DISTINCT d.id FROM devices d JOIN device_sessions s ON s.device_id = d.id \
             WHERE d.fleet = $1 AND d.id >= $2 AND d.id <= $3 AND d.last_seen >= $4 \
             AND s.ended_at IS NULL",
        )
        .bind(fleet)
        .bind(from)
        .bind(up_to)
        .bind(live_after)
        .all(&self.pool)
        .await?;
        rows.iter().map(|r| r.col_at(0)).collect()
    }

    async fn device_by_x25519(&self, key: &[u8]) -> Result<Option<DeviceRecord>> {
        stmt("SELECT * FROM devices WHERE x25519 = $1")
            .bind(key)
            .record(&self.pool, device_from_row)
            .await
    }

    async fn open_device_session(&self, d: &DeviceSessionRecord) -> Result<()> {
        stmt(
            "INSERT INTO device_sessions (id, device_id, previous, pattern, peer, \
             started_at, telemetry_seq) \
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
        let device: Option<String> = stmt(
            "UPDATE device_sessions SET ended_at = $1, \
             telemetry_seq = CASE WHEN telemetry_seq > $2 THEN telemetry_seq ELSE $2 END, \
             messages_in = $3, messages_out = $4 WHERE id = $5 RETURNING device_id",
        )
        .bind(ended_at)
        .bind(to_i64(telemetry_seq, "telemetry_seq")?)
        .bind(to_i64(messages_in, "messages_in")?)
        .bind(to_i64(messages_out, "messages_out")?)
        .bind(id)
        .scalar_optional(&mut tx)
        .await?;
        if let Some(device) = device {
            stmt(
                "INSERT INTO device_telemetry_positions (device_id, seq) VALUES ($1, $2) \
                 ON CONFLICT (device_id) DO UPDATE SET seq = CASE WHEN excluded.seq > \
                 device_telemetry_positions.seq \
                 THEN excluded.seq ELSE device_telemetry_positions.seq END",
            )
            .bind(device)
            .bind(to_i64(telemetry_seq, "telemetry_seq")?)
            .execute(&mut tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn device_session(&self, id: &str) -> Result<Option<DeviceSessionRecord>> {
        stmt("SELECT * FROM device_sessions WHERE id = $1")
            .bind(id)
            .record(&self.pool, session_from_row)
            .await
    }

    async fn device_telemetry_seq(&self, device_id: &str) -> Result<u64> {
        let seq: Option<i64> =
            stmt("SELECT seq FROM device_telemetry_positions WHERE device_id = $1")
                .bind(device_id)
                .scalar_optional(&self.pool)
                .await?;
        to_u64(seq.unwrap_or(0), "telemetry_seq")
    }

    async fn prune_device_sessions(&self, before: UnixTime) -> Result<u64> {
        // Ended before `before`; or abandoned (no end recorded: the server was
        // killed) and started before `before`, with a newer session of the device.
        Ok(stmt(
            "DELETE FROM device_sessions WHERE (ended_at IS NOT NULL AND ended_at < $1) \
             OR (ended_at IS NULL AND started_at < $1 AND EXISTS (SELECT 1 FROM \
             device_sessions newer \
             WHERE newer.device_id = device_sessions.device_id AND newer.started_at > \
             device_sessions.started_at))",
        )
        .bind(before)
        .execute(&self.pool)
        .await?)
    }
}

#[async_trait::async_trait]
impl<D: Dialect> SchedulerStore for SqlStore<D> {
    async fn scheduler_leader(&self) -> Result<bool> {
        D::scheduler_leader(&self.pool, &self.state).await
    }
}

fn checkpoint_from_row<R: super::super::rows::StoreRow>(r: &R) -> Result<Checkpoint> {
    Ok(Checkpoint {
        seq: to_u64(r.col("seq")?, "seq")?,
        head_hash: hash32(r.col("head_hash")?)?,
        time: r.col("time")?,
        signature: r.col("signature")?,
    })
}
