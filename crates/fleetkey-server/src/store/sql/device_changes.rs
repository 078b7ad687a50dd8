//! The changes to devices [`super::changes::apply`] hands on: life-cycle
//! transitions, commands and receipts, credential rotation, configs, claim codes
//! and key records, and the helpers they share.

use super::super::rows::StoreRow as _;
use super::super::rows::to_i64;
use super::super::{
    Change, CommandKind, CommandRecord, CommandState, DeviceState, RecordWrite, RotationConfirmed,
    StoredConfig, Transition,
};
use super::{Dialect, stmt};
use crate::clock::UnixTime;
use crate::error::{Error, Result};
use sqlx::Transaction;

/// Applies one change to devices inside `tx` (the caller appends the audit entry).
pub(super) async fn apply<D: Dialect>(tx: &mut Transaction<'_, D>, change: &Change) -> Result<()> {
    match change {
        Change::DeviceTransition(t) => device_transition(&mut *tx, t).await?,
        Change::PutKeyRecord(r) => put_key_record(&mut *tx, r).await?,
        Change::QueueCommand(c) => insert_command(&mut *tx, c).await?,
        Change::CommandReceipt {
            device_id,
            command_id,
            kind,
            state,
            at,
        } => {
            step_command(tx, command_id, device_id, *kind, *state, None, *at).await?;
        }
        Change::RotationProposed {
            device_id,
            command_id,
            pending,
            at,
        } => {
            let (kind, to) = (CommandKind::RotateCredential, CommandState::InProgress);
            step_command(tx, command_id, device_id, kind, to, Some(pending), *at).await?;
        }
        Change::RotationConfirmed(r) => rotation_confirmed(&mut *tx, r).await?,
        Change::Decommissioned {
            device_id,
            at,
            wipe_confirmed,
        } => decommissioned(&mut *tx, device_id, at, *wipe_confirmed).await?,
        Change::FactoryReset { device_id, at } => factory_reset(&mut *tx, device_id, at).await?,
        Change::PutDeviceConfig {
            device_id,
            config,
            expected_revision,
            command,
        } => put_device_config(&mut *tx, device_id, config, expected_revision, command).await?,
        Change::CreateClaimCode {
            hash,
            device_id,
            at,
            expires_at,
        } => create_claim_code(&mut *tx, hash, device_id, at, expires_at).await?,
        Change::UseClaimCode {
            hash,
            claimed_by,
            at,
        } => use_claim_code(&mut *tx, hash, claimed_by, at).await?,
        _ => return Err(Error::Internal("not a change to a device".into())),
    }
    Ok(())
}

async fn device_transition<D: Dialect>(tx: &mut Transaction<'_, D>, t: &Transition) -> Result<()> {
    check_state(&mut *tx, &t.id, &t.from, t.to.as_str()).await?;
    stmt(
        "UPDATE devices SET state = $1, updated_at = $2, \
         credential_issued_at = CASE WHEN $3 IS NULL THEN credential_issued_at ELSE $2 END, \
         operational_credential_id = COALESCE($3, operational_credential_id) WHERE id = $4",
    )
    .bind(t.to.as_str())
    .bind(t.at)
    .bind(t.operational_credential_id.as_deref())
    .bind(&t.id)
    .execute(&mut *tx)
    .await?;
    for cid in &t.revoke {
        revoke_credential(&mut *tx, cid, &t.id, t.at).await?;
    }
    if t.cancel_open_commands {
        cancel_commands(&mut *tx, &t.id, None, t.at).await?;
    }
    if let Some(c) = &t.command {
        insert_command(&mut *tx, c).await?;
    }
    if let Some(r) = &t.key_record {
        put_key_record(&mut *tx, r).await?;
    }
    Ok(())
}

async fn rotation_confirmed<D: Dialect>(
    tx: &mut Transaction<'_, D>,
    r: &RotationConfirmed,
) -> Result<()> {
    let device = r.device_id.as_str();
    check_state(&mut *tx, device, &[DeviceState::Rotating], "active").await?;
    let (kind, done) = (CommandKind::RotateCredential, CommandState::Done);
    step_command(tx, &r.command_id, device, kind, done, None, r.at).await?;
    let updated = stmt(
        "UPDATE devices SET state = 'active', x25519 = $1, ed25519 = $2, ml_kem_768 = $3, \
         ml_dsa_65 = $4, operational_credential_id = $5, credential_issued_at = $6, \
         updated_at = $6 WHERE id = $7",
    )
    .bind(r.x25519.as_slice())
    .bind(r.ed25519.as_slice())
    .bind(&r.ml_kem_768)
    .bind(&r.ml_dsa_65)
    .bind(r.credential_id.as_slice())
    .bind(r.at)
    .bind(device)
    .execute(&mut *tx)
    .await;
    if let Err(e) = updated {
        return Err(match D::unique_violation(&e).as_deref() {
            Some("devices_x25519") => Error::DuplicateKey("x25519"),
            Some("devices_ed25519") => Error::DuplicateKey("ed25519"),
            _ => e.into(),
        });
    }
    if let Some(old) = &r.revoke {
        revoke_credential(&mut *tx, old, device, r.at).await?;
    }
    if let Some(k) = &r.key_record {
        put_key_record(&mut *tx, k).await?;
    }
    Ok(())
}

async fn decommissioned<D: Dialect>(
    tx: &mut Transaction<'_, D>,
    device_id: &str,
    at: &UnixTime,
    wipe_confirmed: bool,
) -> Result<()> {
    check_state(
        &mut *tx,
        device_id,
        &[DeviceState::Decommissioning],
        "decommissioned",
    )
    .await?;
    stmt("UPDATE devices SET state = 'decommissioned', updated_at = $1 WHERE id = $2")
        .bind(at)
        .bind(device_id)
        .execute(&mut *tx)
        .await?;
    // Unconfirmed, the wipe command is cancelled with the others below.
    if wipe_confirmed {
        stmt(
            "UPDATE device_commands SET state = 'done', pending = NULL, updated_at \
         = $1 \
         WHERE device_id = $2 AND kind = 'wipe' AND state IN ('pending', \
         'in_progress')",
        )
        .bind(at)
        .bind(device_id)
        .execute(&mut *tx)
        .await?;
    }
    cancel_commands(&mut *tx, device_id, None, *at).await?;
    for table in [
        "claim_codes",
        "onboarding_challenges",
        "device_configs",
        "device_secrets",
    ] {
        stmt(&format!("DELETE FROM {table} WHERE device_id = $1"))
            .bind(device_id)
            .execute(&mut *tx)
            .await?;
    }

    Ok(())
}

async fn factory_reset<D: Dialect>(
    tx: &mut Transaction<'_, D>,
    device_id: &str,
    at: &UnixTime,
) -> Result<()> {
    check_state(
        &mut *tx,
        device_id,
        &[DeviceState::Decommissioned],
        "factory reset",
    )
    .await?;
    stmt(
        "UPDATE devices SET retired_hardware_id = hardware_id, hardware_id = 'retired:' || id, \
         updated_at = $1 WHERE id = $2 AND retired_hardware_id IS NULL",
    )
    .bind(at)
    .bind(device_id)
    .execute(&mut *tx)
    .await?;

    Ok(())
}

async fn put_device_config<D: Dialect>(
    tx: &mut Transaction<'_, D>,
    device_id: &str,
    config: &StoredConfig,
    expected_revision: &i64,
    command: &Option<CommandRecord>,
) -> Result<()> {
    let current: Option<i64> = stmt("SELECT revision FROM device_configs WHERE device_id = $1")
        .bind(device_id)
        .scalar_optional(&mut *tx)
        .await?;
    let current = current.unwrap_or(0);
    if current != *expected_revision {
        return Err(Error::ConfigRevision {
            expected: *expected_revision,
            current,
        });
    }
    stmt(
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
            &mut *tx,
            device_id,
            Some(CommandKind::UpdateConfig),
            c.created_at,
        )
        .await?;
        insert_command(&mut *tx, c).await?;
    }

    Ok(())
}

async fn create_claim_code<D: Dialect>(
    tx: &mut Transaction<'_, D>,
    hash: &[u8; 32],
    device_id: &str,
    at: &UnixTime,
    expires_at: &UnixTime,
) -> Result<()> {
    stmt(
        "INSERT INTO claim_codes (hash, device_id, created_at, expires_at) VALUES ($1, $2, \
         $3, $4)",
    )
    .bind(hash.as_slice())
    .bind(device_id)
    .bind(at)
    .bind(expires_at)
    .execute(&mut *tx)
    .await?;

    Ok(())
}

async fn use_claim_code<D: Dialect>(
    tx: &mut Transaction<'_, D>,
    hash: &[u8; 32],
    claimed_by: &str,
    at: &UnixTime,
) -> Result<()> {
    let device: Option<String> = stmt(
        "UPDATE claim_codes SET used_at = $1 WHERE hash = $2 AND used_at IS NULL \
         AND expires_at > $1 \
         RETURNING device_id",
    )
    .bind(at)
    .bind(hash.as_slice())
    .scalar_optional(&mut *tx)
    .await?;
    let Some(device) = device else {
        let used: Option<Option<i64>> = stmt("SELECT used_at FROM claim_codes WHERE hash = $1")
            .bind(hash.as_slice())
            .scalar_optional(&mut *tx)
            .await?;
        return Err(Error::ClaimRefused(match used {
            None => "unknown code",
            Some(Some(_)) => "already used",
            Some(None) => "expired",
        }));
    };
    stmt("UPDATE devices SET claimed_by = $1, updated_at = $2 WHERE id = $3 AND state != 'decommissioned'")
                    .bind(claimed_by)
                    .bind(at)
                    .bind(&device)
                    .execute(&mut *tx)
                    .await?;

    Ok(())
}

/// Stores a key record if its sequence is above the stored one (or it is the first).
async fn put_key_record<D: Dialect>(tx: &mut Transaction<'_, D>, r: &RecordWrite) -> Result<()> {
    let seq = to_i64(r.sequence, "sequence")?;
    let n = stmt(
        "INSERT INTO key_records (identity, sequence, record, revoked, issued_at) VALUES \
         ($1, $2, $3, $4, $5) \
         ON CONFLICT (identity) DO UPDATE SET sequence = excluded.sequence, record = \
         excluded.record, \
         revoked = excluded.revoked, issued_at = excluded.issued_at \
         WHERE key_records.sequence < excluded.sequence",
    )
    .bind(&r.identity)
    .bind(seq)
    .bind(r.record.as_slice())
    .bind(i64::from(r.revoked))
    .bind(r.issued_at)
    .execute(&mut *tx)
    .await?;
    if n == 0 {
        return Err(Error::DirectoryConflict(r.identity.clone()));
    }
    Ok(())
}

/// Refuses unless the device is in one of `from` (inside the transaction).
async fn check_state<D: Dialect>(
    tx: &mut Transaction<'_, D>,
    id: &str,
    from: &[DeviceState],
    to: &'static str,
) -> Result<()> {
    let current: Option<String> = stmt("SELECT state FROM devices WHERE id = $1")
        .bind(id)
        .scalar_optional(&mut *tx)
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

async fn revoke_credential<D: Dialect>(
    tx: &mut Transaction<'_, D>,
    credential_id: &[u8],
    device_id: &str,
    at: UnixTime,
) -> Result<()> {
    stmt(
        "INSERT INTO revoked_credentials (credential_id, device_id, revoked_at) VALUES ($1, \
         $2, $3) \
         ON CONFLICT (credential_id) DO NOTHING",
    )
    .bind(credential_id)
    .bind(device_id)
    .bind(at)
    .execute(&mut *tx)
    .await?;
    Ok(())
}

async fn insert_command<D: Dialect>(tx: &mut Transaction<'_, D>, c: &CommandRecord) -> Result<()> {
    stmt(
        "INSERT INTO device_commands (id, device_id, kind, payload, signature, state, \
         created_at, updated_at) \
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
    .execute(&mut *tx)
    .await?;
    Ok(())
}

/// Cancels a device's open commands (of one kind, or all), erasing pending state.
async fn cancel_commands<D: Dialect>(
    tx: &mut Transaction<'_, D>,
    device_id: &str,
    kind: Option<CommandKind>,
    at: UnixTime,
) -> Result<()> {
    stmt(
        "UPDATE device_commands SET state = 'cancelled', pending = NULL, updated_at = $1 \
         WHERE device_id = $2 AND state IN ('pending', 'in_progress') AND ($3 IS NULL OR \
         kind = $3)",
    )
    .bind(at)
    .bind(device_id)
    .bind(kind.map(CommandKind::as_str))
    .execute(&mut *tx)
    .await?;
    Ok(())
}

/// Moves a device's open command of `kind` to `to` (keeping `pending` state only
/// when given); a command that is unknown, another device's, or not open is refused.
/// Finishing a rotation needs it in progress (its keys proposed).
#[allow(clippy::too_many_arguments)]
async fn step_command<D: Dialect>(
    tx: &mut Transaction<'_, D>,
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
    let n = stmt(
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
    .execute(&mut *tx)
    .await?;
    if n == 0 {
        return Err(command_refusal(tx, command_id, device_id).await?);
    }
    Ok(())
}

/// Why a command step was refused: unknown (or another device's), or in the wrong state.
async fn command_refusal<D: Dialect>(
    tx: &mut Transaction<'_, D>,
    id: &str,
    device_id: &str,
) -> Result<Error> {
    let row = stmt("SELECT device_id, state FROM device_commands WHERE id = $1")
        .bind(id)
        .optional(&mut *tx)
        .await?;
    Ok(match row {
        Some(r) if r.col::<String>("device_id")? == device_id => {
            Error::CommandState(CommandState::parse(&r.col::<String>("state")?)?.as_str())
        }
        _ => Error::CommandNotFound(id.to_owned()),
    })
}
