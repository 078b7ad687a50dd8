//! `Store::apply` on [`SqlStore`]: each change and its audit entry in one
//! transaction (changes to devices in `device_changes.rs`), and the audit chain.

use super::super::rows::StoreRow as _;
use super::super::rows::{hash32, to_i64, to_u64};
use super::super::{Change, FleetRecord, KeyringRecord, Policy, TokenRecord, VersionRecord};
use super::{Dialect, SqlStore, stmt};
use crate::clock::UnixTime;
use crate::error::{Error, Result};
use crate::store::audit_log::{AuditDraft, AuditEntry};
use sqlx::Transaction;

/// Applies `change` and appends its audit entry in one transaction.
pub(super) async fn apply<D: Dialect>(
    store: &SqlStore<D>,
    change: Change,
    audit: AuditDraft,
    now: UnixTime,
) -> Result<AuditEntry> {
    let mut tx = store.begin_audited().await?;
    match &change {
        Change::CreateKeyring { keyring: k, first } => create_keyring(&mut tx, k, first).await?,
        Change::Rotate {
            name,
            new,
            retire,
            at,
            first_block,
        } => rotate(&mut tx, name, new, retire, at, first_block).await?,
        Change::Revoke { name, version, at } => revoke(&mut tx, name, version, at).await?,
        Change::SetPolicy { name, policy } => set_policy(&mut tx, name, policy).await?,
        Change::RaiseMinimum { name, min } => raise_minimum(&mut tx, name, min).await?,
        Change::CreateToken(t) => create_token(&mut tx, t).await?,
        Change::RevokeToken { id, at } => revoke_token(&mut tx, id, at).await?,
        Change::CreateFleet(f) => create_fleet(&mut tx, f).await?,
        Change::RewrapCustody(r) => super::custody::rewrap(&mut tx, r).await?,
        Change::CreateServiceKey {
            name,
            wrapped,
            public,
            at,
        } => create_service_key(&mut tx, name, wrapped, public, at).await?,
        Change::SetConfigSchema {
            fleet,
            version,
            schema,
            migration,
            at,
        } => set_config_schema(&mut tx, fleet, version, schema, migration, at).await?,
        Change::SetRotationPolicy { fleet, period_secs } => {
            set_rotation_policy(&mut tx, fleet, period_secs).await?
        }
        Change::SetSessionPatterns {
            scope,
            patterns,
            at,
        } => set_session_patterns(&mut tx, scope, patterns.as_deref(), *at).await?,
        Change::SetFleetStaticKey { fleet, allow, at } => {
            set_fleet_static_key(&mut tx, fleet, allow, at).await?
        }
        Change::AuditOnly => {}
        Change::SetKeyringState { .. }
        | Change::EraseKeyring { .. }
        | Change::SetKeyringDetails { .. }
        | Change::PutAlias { .. }
        | Change::DeleteAlias { .. } => super::keyring_changes::apply(&mut tx, &change).await?,
        device => super::device_changes::apply(&mut tx, device).await?,
    }
    let entry = append_audit(&mut tx, &audit, now).await?;
    tx.commit().await?;
    Ok(entry)
}

async fn set_session_patterns<D: Dialect>(
    tx: &mut Transaction<'_, D>,
    scope: &str,
    patterns: Option<&str>,
    at: UnixTime,
) -> Result<()> {
    match patterns {
        Some(p) => {
            stmt(
                "INSERT INTO session_patterns (scope, patterns, updated_at) VALUES ($1, $2, $3) \
                 ON CONFLICT (scope) DO UPDATE SET patterns = excluded.patterns, \
                 updated_at = excluded.updated_at",
            )
            .bind(scope)
            .bind(p)
            .bind(at)
            .execute(&mut *tx)
            .await?;
        }
        None => {
            stmt("DELETE FROM session_patterns WHERE scope = $1")
                .bind(scope)
                .execute(&mut *tx)
                .await?;
        }
    }
    Ok(())
}

async fn create_keyring<D: Dialect>(
    tx: &mut Transaction<'_, D>,
    k: &KeyringRecord,
    first: &VersionRecord,
) -> Result<()> {
    let exists = stmt("SELECT CAST(1 AS BIGINT) FROM keyrings WHERE name = $1")
        .bind(&k.name)
        .optional(&mut *tx)
        .await?;
    if exists.is_some() {
        return Err(Error::KeyringExists(k.name.clone()));
    }
    stmt(
        "INSERT INTO keyrings (name, algorithm, primary_version, min_decrypt_version, \
         rotation_period_secs, max_uses, overlap_secs, keep_last, created_at, \
         state, deletion_at, description, tags, exportable, convergent, resident) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16)",
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
    .bind(k.state.as_str())
    .bind(k.deletion_at)
    .bind(&k.description)
    .bind(super::keyring_changes::tags_json(&k.tags)?)
    .bind(i64::from(k.exportable))
    .bind(i64::from(k.convergent))
    .bind(i64::from(k.resident))
    .execute(&mut *tx)
    .await?;
    insert_version(&mut *tx, first).await?;

    Ok(())
}

async fn rotate<D: Dialect>(
    tx: &mut Transaction<'_, D>,
    name: &str,
    new: &VersionRecord,
    retire: &u32,
    at: &UnixTime,
    first_block: &Option<([u8; 8], u32)>,
) -> Result<()> {
    // Conditional: only if the primary is still the one the caller saw.
    // The instance that loses a race learns it here, before anything
    // is written, and takes the winner's version.
    let moved =
        stmt("UPDATE keyrings SET primary_version = $1 WHERE name = $2 AND primary_version = $3")
            .bind(i64::from(new.version))
            .bind(name)
            .bind(i64::from(*retire))
            .execute(&mut *tx)
            .await?;
    if moved == 0 {
        return Err(Error::RotationLost(name.to_owned()));
    }
    stmt(
        "UPDATE key_versions SET state = 'decrypt_only', retired_at = $1 \
         WHERE keyring = $2 AND version = $3 AND state = 'active'",
    )
    .bind(at)
    .bind(name)
    .bind(i64::from(*retire))
    .execute(&mut *tx)
    .await?;
    insert_version(&mut *tx, new).await?;
    if let Some((instance, count)) = first_block {
        stmt(
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

    Ok(())
}

async fn revoke<D: Dialect>(
    tx: &mut Transaction<'_, D>,
    name: &str,
    version: &u32,
    at: &UnixTime,
) -> Result<()> {
    let n = stmt(
        "UPDATE key_versions SET state = 'revoked', revoked_at = $1 \
         WHERE keyring = $2 AND version = $3 AND state != 'destroyed'",
    )
    .bind(at)
    .bind(name)
    .bind(i64::from(*version))
    .execute(&mut *tx)
    .await?;
    if n == 0 {
        return Err(Error::UnknownVersion {
            keyring: name.to_owned(),
            version: *version,
        });
    }

    Ok(())
}

async fn set_policy<D: Dialect>(
    tx: &mut Transaction<'_, D>,
    name: &str,
    policy: &Policy,
) -> Result<()> {
    stmt(
        "UPDATE keyrings SET rotation_period_secs = $1, max_uses = $2, \
         overlap_secs = $3, keep_last = $4 \
         WHERE name = $5",
    )
    .bind(policy.rotation_period_secs)
    .bind(to_i64(policy.max_uses, "max_uses")?)
    .bind(policy.overlap_secs)
    .bind(policy.keep_last.map(i64::from))
    .bind(name)
    .execute(&mut *tx)
    .await?;

    Ok(())
}

async fn raise_minimum<D: Dialect>(
    tx: &mut Transaction<'_, D>,
    name: &str,
    min: &u32,
) -> Result<()> {
    stmt(
        "UPDATE keyrings SET min_decrypt_version = $1 WHERE name = $2 AND \
         min_decrypt_version < $1",
    )
    .bind(i64::from(*min))
    .bind(name)
    .execute(&mut *tx)
    .await?;
    // Below the minimum nothing may open again: erase the wrapped keys.
    stmt(
        "UPDATE key_versions SET wrapped_key = $3, \
         state = CASE WHEN state = 'revoked' THEN 'revoked' ELSE 'destroyed' END \
         WHERE keyring = $1 AND version < $2",
    )
    .bind(name)
    .bind(i64::from(*min))
    .bind(Vec::new())
    .execute(&mut *tx)
    .await?;

    Ok(())
}

async fn create_token<D: Dialect>(tx: &mut Transaction<'_, D>, t: &TokenRecord) -> Result<()> {
    let scopes = serde_json::to_string(&t.scopes)
        .map_err(|e| Error::Internal(format!("token scopes: {e}")))?;
    stmt(
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

    Ok(())
}

async fn revoke_token<D: Dialect>(
    tx: &mut Transaction<'_, D>,
    id: &str,
    at: &UnixTime,
) -> Result<()> {
    let n = stmt("UPDATE tokens SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL")
        .bind(at)
        .bind(id)
        .execute(&mut *tx)
        .await?;
    if n == 0 {
        return Err(Error::TokenNotFound(id.to_owned()));
    }

    Ok(())
}

async fn create_fleet<D: Dialect>(tx: &mut Transaction<'_, D>, f: &FleetRecord) -> Result<()> {
    let r = stmt(
        "INSERT INTO fleets (name, issuer_key_id, issuer_wrapped, issuer_public, \
         credential_ttl_secs, created_at) \
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
    if let Err(e) = r {
        return Err(match D::unique_violation(&e).as_deref() {
            Some("fleets_pkey" | "fleets_name") => Error::FleetExists(f.name.clone()),
            _ => e.into(),
        });
    }

    Ok(())
}

async fn create_service_key<D: Dialect>(
    tx: &mut Transaction<'_, D>,
    name: &str,
    wrapped: &[u8],
    public: &[u8],
    at: &UnixTime,
) -> Result<()> {
    stmt(
        "INSERT INTO service_keys (name, wrapped, public, created_at) VALUES ($1, $2, $3, $4) \
         ON CONFLICT (name) DO NOTHING",
    )
    .bind(name)
    .bind(wrapped)
    .bind(public)
    .bind(at)
    .execute(&mut *tx)
    .await?;

    Ok(())
}

async fn set_config_schema<D: Dialect>(
    tx: &mut Transaction<'_, D>,
    fleet: &str,
    version: &u32,
    schema: &str,
    migration: &str,
    at: &UnixTime,
) -> Result<()> {
    let current: i64 =
        stmt("SELECT COALESCE(MAX(version), 0) FROM config_schemas WHERE fleet = $1")
            .bind(fleet)
            .scalar(&mut *tx)
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
    stmt(
        "INSERT INTO config_schemas (fleet, version, schema, migration, \
         created_at) VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(fleet)
    .bind(i64::from(*version))
    .bind(schema)
    .bind(migration)
    .bind(at)
    .execute(&mut *tx)
    .await?;

    Ok(())
}

async fn set_rotation_policy<D: Dialect>(
    tx: &mut Transaction<'_, D>,
    fleet: &str,
    period_secs: &Option<i64>,
) -> Result<()> {
    let n = stmt("UPDATE fleets SET credential_rotation_secs = $1 WHERE name = $2")
        .bind(period_secs)
        .bind(fleet)
        .execute(&mut *tx)
        .await?;
    if n == 0 {
        return Err(Error::FleetNotFound(fleet.to_owned()));
    }

    Ok(())
}

async fn set_fleet_static_key<D: Dialect>(
    tx: &mut Transaction<'_, D>,
    fleet: &str,
    allow: &bool,
    at: &UnixTime,
) -> Result<()> {
    let exists: i64 = stmt("SELECT COUNT(*) FROM fleets WHERE name = $1")
        .bind(fleet)
        .scalar(&mut *tx)
        .await?;
    if exists == 0 {
        return Err(Error::FleetNotFound(fleet.to_owned()));
    }
    if *allow {
        stmt(
            "INSERT INTO fleet_static_key (fleet, allowed_at) VALUES ($1, $2) ON \
             CONFLICT DO NOTHING",
        )
        .bind(fleet)
        .bind(at)
        .execute(&mut *tx)
        .await?;
    } else {
        stmt("DELETE FROM fleet_static_key WHERE fleet = $1")
            .bind(fleet)
            .execute(&mut *tx)
            .await?;
    }

    Ok(())
}

/// Chains `draft` after the current head and inserts it (inside `tx`).
async fn append_audit<D: Dialect>(
    tx: &mut Transaction<'_, D>,
    draft: &AuditDraft,
    now: UnixTime,
) -> Result<AuditEntry> {
    let prev = audit_head(tx).await?;
    append_audit_after(tx, draft, now, prev).await
}

/// The newest audit entry's (seq, hash).
pub(super) async fn audit_head<D: Dialect>(
    tx: &mut Transaction<'_, D>,
) -> Result<Option<(u64, [u8; 32])>> {
    let head = stmt("SELECT seq, hash FROM audit_log ORDER BY seq DESC LIMIT 1")
        .optional(&mut *tx)
        .await?;
    match head {
        Some(r) => Ok(Some((
            to_u64(r.col("seq")?, "seq")?,
            hash32(r.col("hash")?)?,
        ))),
        None => Ok(None),
    }
}

/// Chains `draft` after `prev` (which the caller read in this transaction).
async fn append_audit_after<D: Dialect>(
    tx: &mut Transaction<'_, D>,
    draft: &AuditDraft,
    now: UnixTime,
    prev: Option<(u64, [u8; 32])>,
) -> Result<AuditEntry> {
    let entry = AuditEntry::chain(draft, prev, now)?;
    stmt(
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
    .execute(&mut *tx)
    .await?;
    Ok(entry)
}

async fn insert_version<D: Dialect>(tx: &mut Transaction<'_, D>, v: &VersionRecord) -> Result<()> {
    stmt(
        "INSERT INTO key_versions (keyring, version, wrapped_key, state, created_at, \
         retired_at, revoked_at, seal_count, origin) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
    )
    .bind(&v.keyring)
    .bind(i64::from(v.version))
    .bind(v.wrapped_key.as_slice())
    .bind(v.state.as_str())
    .bind(v.created_at)
    .bind(v.retired_at)
    .bind(v.revoked_at)
    .bind(to_i64(v.seal_count, "seal_count")?)
    .bind(v.origin.as_str())
    .execute(&mut *tx)
    .await?;
    Ok(())
}
