//! Factory registration on [`SqlStore`]: many devices, their records and audit
//! entries in one transaction.

use super::super::rows::StoreRow as _;
use super::super::rows::to_i64;
use super::super::{DeviceCount, DeviceRecord, Registration, StoredConfig};
use super::changes::audit_head;
use super::{Dialect, SqlStore, Stmt, stmt, values_list};
use crate::clock::UnixTime;
use crate::error::{Error, Result};
use crate::store::audit_log::AuditEntry;
use sqlx::Transaction;

/// A fleet's devices with an open session, heard from at or after `live_after`:
/// one COUNT, whatever the fleet's size.
pub(super) async fn connected_count<D: Dialect>(
    store: &SqlStore<D>,
    fleet: &str,
    live_after: UnixTime,
) -> Result<i64> {
    stmt(
        "SELECT COUNT(DISTINCT d.id) FROM devices d JOIN device_sessions s ON s.device_id = d.id \
         WHERE d.fleet = $1 AND d.last_seen >= $2 AND s.ended_at IS NULL",
    )
    .bind(fleet)
    .bind(live_after)
    .scalar(&store.pool)
    .await
}

/// Per fleet, credentials expiring before `soon` and expired before `now`
/// (devices onboarded, active or rotating; fleets with none are absent).
pub(super) async fn credential_expiry<D: Dialect>(
    store: &SqlStore<D>,
    now: UnixTime,
    soon: UnixTime,
) -> Result<Vec<(String, i64, i64)>> {
    let rows = stmt(
        "SELECT d.fleet, \
         SUM(CASE WHEN d.credential_issued_at + f.credential_ttl_secs < $2 THEN 1 ELSE 0 END), \
         SUM(CASE WHEN d.credential_issued_at + f.credential_ttl_secs < $1 THEN 1 ELSE 0 END) \
         FROM devices d JOIN fleets f ON f.name = d.fleet \
         WHERE d.state IN ('onboarded', 'active', 'rotating') \
         AND d.credential_issued_at IS NOT NULL \
         GROUP BY d.fleet ORDER BY d.fleet",
    )
    .bind(now)
    .bind(soon)
    .all(&store.pool)
    .await?;
    rows.iter()
        .map(|r| Ok((r.col_at(0)?, r.col_at(1)?, r.col_at(2)?)))
        .collect()
}

/// A fleet's devices by state and profile, with their last-seen buckets.
pub(super) async fn counts<D: Dialect>(
    store: &SqlStore<D>,
    fleet: &str,
    since: [UnixTime; 3],
) -> Result<Vec<DeviceCount>> {
    let rows = stmt(
        "SELECT state, profile, COUNT(*), \
         SUM(CASE WHEN last_seen >= $2 THEN 1 ELSE 0 END), \
         SUM(CASE WHEN last_seen >= $3 THEN 1 ELSE 0 END), \
         SUM(CASE WHEN last_seen >= $4 THEN 1 ELSE 0 END), \
         SUM(CASE WHEN last_seen IS NULL THEN 1 ELSE 0 END) \
         FROM devices WHERE fleet = $1 GROUP BY state, profile ORDER BY state, profile",
    )
    .bind(fleet)
    .bind(since[0])
    .bind(since[1])
    .bind(since[2])
    .all(&store.pool)
    .await?;
    rows.iter()
        .map(|r| {
            Ok(DeviceCount {
                state: r.col_at(0)?,
                profile: r.col_at(1)?,
                devices: r.col_at(2)?,
                seen: [r.col_at(3)?, r.col_at(4)?, r.col_at(5)?],
                never_seen: r.col_at(6)?,
            })
        })
        .collect()
}

/// Registers `items`: each device inserted unless it collides, in one transaction.
pub(super) async fn register<D: Dialect>(
    store: &SqlStore<D>,
    items: Vec<Registration>,
    now: UnixTime,
) -> Result<Vec<Result<AuditEntry>>> {
    if items.is_empty() {
        return Ok(Vec::new());
    }
    let mut tx = store.begin_audited().await?;
    // One statement for all devices; rows that collide with a unique hardware id
    // or public key (already stored, or earlier in this group) are skipped and
    // the inserted ids come back.
    let mut q = Stmt::owned(format!(
        "INSERT INTO devices (id, fleet, hardware_id, state, model, x25519, ed25519, \
         ml_kem_768, ml_dsa_65, \
         birth_credential, profile, created_at, updated_at) VALUES {} \
         ON CONFLICT DO NOTHING RETURNING id",
        values_list(items.len(), 13)
    ));
    for Registration { device: d, .. } in &items {
        q = q
            .bind(&d.id)
            .bind(&d.fleet)
            .bind(&d.hardware_id)
            .bind(d.state.as_str())
            .bind(&d.model)
            .bind(d.x25519.as_slice())
            .bind(d.ed25519.as_slice())
            .bind(&d.ml_kem_768)
            .bind(&d.ml_dsa_65)
            .bind(&d.birth_credential)
            .bind(&d.profile)
            .bind(d.created_at)
            .bind(d.updated_at);
    }
    let inserted: std::collections::HashSet<String> =
        q.scalars::<String, D>(&mut tx).await?.into_iter().collect();
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
        insert_registered(&mut tx, &done, &entries, now).await?;
    }
    tx.commit().await?;
    Ok(out)
}

/// The registered devices' manufacturing records, secrets, initial configs and
/// audit entries.
async fn insert_registered<D: Dialect>(
    tx: &mut Transaction<'_, D>,
    done: &[&Registration],
    entries: &[AuditEntry],
    now: UnixTime,
) -> Result<()> {
    let mut m = Stmt::owned(format!(
        "INSERT INTO manufacturing_records (device_id, batch, station, test_results, \
         created_at) VALUES {}",
        values_list(done.len(), 5)
    ));
    for r in done {
        m = m
            .bind(&r.device.id)
            .bind(&r.manufacturing.batch)
            .bind(&r.manufacturing.station)
            .bind(&r.manufacturing.test_results)
            .bind(now);
    }
    m.execute(&mut *tx).await?;
    for r in done {
        if let Some(sec) = &r.secret {
            stmt(
                "INSERT INTO device_secrets (device_id, profile, wrapped, last_boot) VALUES \
                 ($1, $2, $3, 0)",
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
    for r in done {
        if let Some(c) = &r.config {
            match by_config.iter_mut().find(|(k, _)| *k == c) {
                Some((_, ids)) => ids.push(&r.device.id),
                None => by_config.push((c, vec![&r.device.id])),
            }
        }
    }
    for (cfg, ids) in by_config {
        Stmt::owned(format!(
            "INSERT INTO device_configs (device_id, schema_version, revision, config, \
             updated_at) \
             SELECT value, $1, $2, $3, $4 FROM {}",
            D::json_text_elements(5)
        ))
        .bind(i64::from(cfg.schema_version))
        .bind(cfg.revision)
        .bind(&cfg.config)
        .bind(cfg.updated_at)
        .bind(
            serde_json::to_string(&ids)
                .map_err(|e| Error::Internal(format!("hardware ids: {e}")))?,
        )
        .execute(&mut *tx)
        .await?;
    }
    let mut a = Stmt::owned(format!(
        "INSERT INTO audit_log (seq, time, actor, action, subject, details, prev_hash, hash) \
         VALUES {}",
        values_list(entries.len(), 8)
    ));
    for e in entries {
        a = a
            .bind(to_i64(e.seq, "audit seq")?)
            .bind(e.time)
            .bind(&e.actor)
            .bind(&e.action)
            .bind(&e.subject)
            .bind(&e.details)
            .bind(e.prev_hash.as_slice())
            .bind(e.hash.as_slice());
    }
    a.execute(&mut *tx).await?;
    Ok(())
}

/// Why a device row was not inserted: its hardware id or one of its keys is taken.
async fn classify_conflict<D: Dialect>(
    tx: &mut Transaction<'_, D>,
    d: &DeviceRecord,
) -> Result<Error> {
    let hw: Option<i64> = stmt("SELECT CAST(1 AS BIGINT) FROM devices WHERE hardware_id = $1")
        .bind(&d.hardware_id)
        .scalar_optional(&mut *tx)
        .await?;
    if hw.is_some() {
        return Ok(Error::DeviceExists(d.hardware_id.clone()));
    }
    let x: Option<i64> = stmt("SELECT CAST(1 AS BIGINT) FROM devices WHERE x25519 = $1")
        .bind(d.x25519.as_slice())
        .scalar_optional(&mut *tx)
        .await?;
    Ok(if x.is_some() {
        Error::DuplicateKey("x25519")
    } else {
        Error::DuplicateKey("ed25519")
    })
}
