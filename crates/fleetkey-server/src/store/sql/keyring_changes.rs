//! The keyring life-cycle changes [`super::changes::apply`] hands on: state moves,
//! the erasure at the end of a scheduled deletion, description and tags, aliases.

use super::super::{Change, KeyringState};
use super::{Dialect, stmt};
use crate::clock::UnixTime;
use crate::error::{Error, Result};
use sqlx::Transaction;
use std::collections::BTreeMap;

/// Tags as the JSON text the `tags` column holds.
pub(super) fn tags_json(tags: &BTreeMap<String, String>) -> Result<String> {
    serde_json::to_string(tags).map_err(|e| Error::Internal(format!("tags: {e}")))
}

/// Applies one keyring life-cycle change inside `tx` (the caller appends the audit entry).
pub(super) async fn apply<D: Dialect>(tx: &mut Transaction<'_, D>, change: &Change) -> Result<()> {
    match change {
        Change::SetKeyringState {
            name,
            from,
            to,
            deletion_at,
        } => set_state(tx, name, from, *to, *deletion_at).await,
        Change::EraseKeyring { name, at } => erase(tx, name, *at).await,
        Change::SetKeyringDetails {
            name,
            description,
            tags,
        } => {
            let n = stmt("UPDATE keyrings SET description = $1, tags = $2 WHERE name = $3")
                .bind(description.as_str())
                .bind(tags_json(tags)?)
                .bind(name.as_str())
                .execute(&mut *tx)
                .await?;
            found(n, || Error::KeyringNotFound(name.clone()))
        }
        Change::PutAlias { alias, keyring, at } => put_alias(tx, alias, keyring, *at).await,
        Change::DeleteAlias { alias } => {
            let n = stmt("DELETE FROM keyring_aliases WHERE alias = $1")
                .bind(alias.as_str())
                .execute(&mut *tx)
                .await?;
            found(n, || Error::AliasNotFound(alias.clone()))
        }
        _ => Err(Error::Internal("not a keyring life-cycle change".into())),
    }
}

fn found(rows: u64, missing: impl FnOnce() -> Error) -> Result<()> {
    if rows == 0 { Err(missing()) } else { Ok(()) }
}

/// The keyring's state now, refused as not found when there is none.
async fn state_of<D: Dialect>(tx: &mut Transaction<'_, D>, name: &str) -> Result<KeyringState> {
    let s: Option<String> = stmt("SELECT state FROM keyrings WHERE name = $1")
        .bind(name)
        .scalar_optional(&mut *tx)
        .await?;
    KeyringState::parse(&s.ok_or_else(|| Error::KeyringNotFound(name.to_owned()))?)
}

async fn set_state<D: Dialect>(
    tx: &mut Transaction<'_, D>,
    name: &str,
    from: &[KeyringState],
    to: KeyringState,
    deletion_at: Option<UnixTime>,
) -> Result<()> {
    // Conditional on the state read in the same transaction: a move another
    // instance made meanwhile is refused with the state it left.
    let now = state_of(tx, name).await?;
    if !from.contains(&now) {
        return Err(Error::KeyringUnusable {
            keyring: name.to_owned(),
            state: now,
        });
    }
    stmt("UPDATE keyrings SET state = $1, deletion_at = $2 WHERE name = $3 AND state = $4")
        .bind(to.as_str())
        .bind(deletion_at)
        .bind(name)
        .bind(now.as_str())
        .execute(&mut *tx)
        .await?;
    Ok(())
}

async fn erase<D: Dialect>(tx: &mut Transaction<'_, D>, name: &str, at: UnixTime) -> Result<()> {
    let n = stmt(
        "UPDATE keyrings SET state = 'deleted' \
         WHERE name = $1 AND state = 'pending_deletion' AND deletion_at <= $2",
    )
    .bind(name)
    .bind(at)
    .execute(&mut *tx)
    .await?;
    if n == 0 {
        return Err(Error::Conflict(format!(
            "keyring {name:?} is not due for erasure (cancelled or erased meanwhile)"
        )));
    }
    // Revoked versions keep their state (as below the minimum); every wrapped key goes.
    stmt(
        "UPDATE key_versions SET wrapped_key = $2, \
         state = CASE WHEN state = 'revoked' THEN 'revoked' ELSE 'destroyed' END \
         WHERE keyring = $1",
    )
    .bind(name)
    .bind(Vec::new())
    .execute(&mut *tx)
    .await?;
    stmt("DELETE FROM keyring_aliases WHERE keyring = $1")
        .bind(name)
        .execute(&mut *tx)
        .await?;
    Ok(())
}

async fn put_alias<D: Dialect>(
    tx: &mut Transaction<'_, D>,
    alias: &str,
    keyring: &str,
    at: UnixTime,
) -> Result<()> {
    let state = state_of(tx, keyring).await?;
    if !matches!(state, KeyringState::Enabled | KeyringState::Disabled) {
        return Err(Error::KeyringUnusable {
            keyring: keyring.to_owned(),
            state,
        });
    }
    let n = stmt("UPDATE keyring_aliases SET keyring = $1, updated_at = $2 WHERE alias = $3")
        .bind(keyring)
        .bind(at)
        .bind(alias)
        .execute(&mut *tx)
        .await?;
    if n == 0 {
        stmt("INSERT INTO keyring_aliases (alias, keyring, updated_at) VALUES ($1, $2, $3)")
            .bind(alias)
            .bind(keyring)
            .bind(at)
            .execute(&mut *tx)
            .await?;
    }
    Ok(())
}
