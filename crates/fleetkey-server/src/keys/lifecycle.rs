//! A keyring's life around its keys (docs/operations.md, "Keyring life cycle"):
//! disable and enable, scheduled deletion (7–30 days, cancellable) and the
//! erasure at its end, description and tags, and aliases (`alias/NAME`, usable
//! wherever a keyring name is).
//!
//! A keyring that is not `enabled` refuses every cryptographic operation
//! ([`Keyring::require`](super::Keyring)); a `disabled` one can still be managed
//! (rotated, revoked, its policy, details and aliases changed); one pending
//! deletion can only be shown or have its deletion cancelled (it comes back
//! `disabled`); a `deleted` one has no key material left and refuses everything
//! but being shown. Its name stays taken, so no new keyring can answer for its
//! envelopes.

use super::{KeyService, Keyring, KeyringInfo, PolicyAction};
use crate::audit::AuditDraft;
use crate::clock::UnixTime;
use crate::error::{Error, Result};
use crate::store::{Change, KeyringState};
use serde_json::json;
use std::borrow::Cow;
use std::collections::BTreeMap;

/// What every alias starts with.
pub const ALIAS_PREFIX: &str = "alias/";
/// Shortest waiting period of a scheduled deletion, in days.
pub const MIN_DELETION_DAYS: u32 = 7;
/// Longest waiting period of a scheduled deletion, in days.
pub const MAX_DELETION_DAYS: u32 = 30;
/// Longest description, in characters.
pub const MAX_DESCRIPTION_CHARS: usize = 256;
/// Most tags on one keyring.
pub const MAX_TAGS: usize = 50;
/// Longest tag key, in characters (at least 1).
pub const MAX_TAG_KEY_CHARS: usize = 128;
/// Longest tag value, in characters.
pub const MAX_TAG_VALUE_CHARS: usize = 256;

/// An alias and the keyring it names.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct AliasInfo {
    /// `alias/NAME`.
    pub alias: String,
    /// The keyring it names.
    pub keyring: String,
    /// When it was made or last re-pointed.
    pub updated_at: UnixTime,
}

/// What a new keyring is besides its name, type and policy.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KeyringOptions {
    /// Free text (at most [`MAX_DESCRIPTION_CHARS`] characters).
    pub description: String,
    /// Labels (at most [`MAX_TAGS`]).
    pub tags: BTreeMap<String, String>,
    /// Versions may be exported sealed to a recipient (never turned on later).
    pub exportable: bool,
    /// Sealing is deterministic (aes-256-gcm-siv only; docs/formats.md,
    /// "Convergent keyrings").
    pub convergent: bool,
    /// Every version's key is generated in custody's token and never leaves it
    /// (aes-256-gcm only, PKCS#11 custody; docs/custody.md, "Resident keyrings").
    pub resident: bool,
}

/// Checks an alias: `alias/` and then a name of the name grammar
/// (docs/operations.md#names).
pub fn validate_alias(alias: &str) -> Result<()> {
    match alias.strip_prefix(ALIAS_PREFIX) {
        Some(rest) if crate::names::is_valid(rest) => Ok(()),
        _ => Err(Error::Invalid {
            what: "alias",
            why: format!("use alias/ followed by {}", crate::names::GRAMMAR),
        }),
    }
}

/// Checks a description and tags against their bounds.
pub fn validate_details(description: &str, tags: &BTreeMap<String, String>) -> Result<()> {
    let bad = |why: String| {
        Err(Error::Invalid {
            what: "keyring details",
            why,
        })
    };
    let chars = |s: &str| s.chars().count();
    let control = |s: &str| s.chars().any(char::is_control);
    if chars(description) > MAX_DESCRIPTION_CHARS || control(description) {
        return bad(format!(
            "description: at most {MAX_DESCRIPTION_CHARS} characters, no control characters"
        ));
    }
    if tags.len() > MAX_TAGS {
        return bad(format!("at most {MAX_TAGS} tags"));
    }
    for (k, v) in tags {
        if k.is_empty() || chars(k) > MAX_TAG_KEY_CHARS || control(k) {
            return bad(format!(
                "tag keys: 1 to {MAX_TAG_KEY_CHARS} characters, no control characters"
            ));
        }
        if chars(v) > MAX_TAG_VALUE_CHARS || control(v) {
            return bad(format!(
                "tag values: at most {MAX_TAG_VALUE_CHARS} characters, no control characters"
            ));
        }
    }
    Ok(())
}

impl KeyService {
    /// The keyring `name` stands for: an alias's keyring, or `name` itself.
    pub async fn resolve<'a>(&self, name: &'a str) -> Result<Cow<'a, str>> {
        if !name.starts_with(ALIAS_PREFIX) {
            return Ok(Cow::Borrowed(name));
        }
        if let Some(k) = self.aliases.read().get(name) {
            return Ok(Cow::Owned(k.clone()));
        }
        validate_alias(name).map_err(|_| Error::AliasNotFound(name.to_owned()))?;
        let keyring = self
            .shared
            .store
            .alias(name)
            .await?
            .ok_or_else(|| Error::AliasNotFound(name.to_owned()))?;
        self.aliases
            .write()
            .insert(name.to_owned(), keyring.clone());
        Ok(Cow::Owned(keyring))
    }

    /// Forgets cached aliases: `name` itself, or those naming keyring `name`.
    pub(super) fn forget_aliases(&self, name: &str) {
        self.aliases
            .write()
            .retain(|alias, keyring| alias != name && keyring != name);
    }

    /// Disables a keyring: every cryptographic operation is refused until it is
    /// enabled again. Disabling a disabled keyring changes nothing.
    pub async fn disable(&self, actor: &str, name: &str) -> Result<KeyringInfo> {
        self.move_state(
            actor,
            name,
            &[KeyringState::Enabled],
            KeyringState::Disabled,
            None,
        )
        .await
    }

    /// Enables a disabled keyring. Enabling an enabled keyring changes nothing.
    pub async fn enable(&self, actor: &str, name: &str) -> Result<KeyringInfo> {
        self.move_state(
            actor,
            name,
            &[KeyringState::Disabled],
            KeyringState::Enabled,
            None,
        )
        .await
    }

    /// Schedules the erasure of every version's key material `days` (7 to 30)
    /// from now; until then the keyring refuses every operation but
    /// [`KeyService::cancel_deletion`].
    pub async fn schedule_deletion(
        &self,
        actor: &str,
        name: &str,
        days: u32,
    ) -> Result<KeyringInfo> {
        if !(MIN_DELETION_DAYS..=MAX_DELETION_DAYS).contains(&days) {
            return Err(Error::Invalid {
                what: "waiting period",
                why: format!("use {MIN_DELETION_DAYS} to {MAX_DELETION_DAYS} days"),
            });
        }
        let at = self
            .shared
            .clock
            .now()
            .saturating_add(i64::from(days) * 86_400);
        let from = [KeyringState::Enabled, KeyringState::Disabled];
        self.move_state(actor, name, &from, KeyringState::PendingDeletion, Some(at))
            .await
    }

    /// Cancels a scheduled deletion; the keyring comes back disabled (enable it
    /// deliberately).
    pub async fn cancel_deletion(&self, actor: &str, name: &str) -> Result<KeyringInfo> {
        let from = [KeyringState::PendingDeletion];
        self.move_state(actor, name, &from, KeyringState::Disabled, None)
            .await
    }

    async fn move_state(
        &self,
        actor: &str,
        name: &str,
        from: &[KeyringState],
        to: KeyringState,
        deletion_at: Option<UnixTime>,
    ) -> Result<KeyringInfo> {
        let ring = self.keyring(name).await?;
        let _g = ring.slow.lock().await;
        ring.reload().await?;
        let now_state = ring.meta.load().record.state;
        // Disabling a disabled keyring (enabling an enabled one) changes nothing.
        let toggle = matches!(
            (from, to),
            ([KeyringState::Enabled], KeyringState::Disabled)
                | ([KeyringState::Disabled], KeyringState::Enabled)
        );
        if toggle && now_state == to {
            return Ok(ring.info());
        }
        if !from.contains(&now_state) {
            if from == [KeyringState::PendingDeletion] && now_state != KeyringState::Deleted {
                return Err(Error::Conflict(format!(
                    "keyring {:?} is not pending deletion",
                    ring.name
                )));
            }
            return Err(Error::KeyringUnusable {
                keyring: ring.name.clone(),
                state: now_state,
            });
        }
        let now = self.shared.clock.now();
        let action = match to {
            KeyringState::Enabled => "keyring.enable",
            KeyringState::Disabled if now_state == KeyringState::PendingDeletion => {
                "keyring.cancel_deletion"
            }
            KeyringState::Disabled => "keyring.disable",
            KeyringState::PendingDeletion => "keyring.schedule_deletion",
            KeyringState::Deleted => "keyring.erase",
        };
        self.shared
            .store
            .apply(
                Change::SetKeyringState {
                    name: ring.name.clone(),
                    from: from.to_vec(),
                    to,
                    deletion_at,
                },
                AuditDraft::new(
                    actor,
                    action,
                    format!("keyring:{}", ring.name),
                    json!({ "from": now_state.as_str(), "to": to.as_str(), "deletion_at": deletion_at }),
                ),
                now,
            )
            .await?;
        self.shared.changed(&ring.name);
        ring.reload().await?;
        Ok(ring.info())
    }

    /// Raises the oldest version that may open to `min` (at most the primary):
    /// envelopes of older versions are refused from then on, and their
    /// resident keys are destroyed. It cannot be lowered again (the versions
    /// below it may already be erased); asking for the current minimum changes
    /// nothing.
    pub async fn raise_minimum(&self, actor: &str, name: &str, min: u32) -> Result<KeyringInfo> {
        let ring = self.keyring(name).await?;
        let _g = ring.slow.lock().await;
        ring.reload().await?;
        ring.require_manageable()?;
        let record = ring.meta.load().record.clone();
        if min > record.primary_version {
            return Err(Error::Invalid {
                what: "minimum decryption version",
                why: format!(
                    "{min} is above the latest version ({})",
                    record.primary_version
                ),
            });
        }
        if min < record.min_decrypt_version {
            return Err(Error::Invalid {
                what: "minimum decryption version",
                why: format!(
                    "it is {} and cannot be lowered: the versions below it may already be erased",
                    record.min_decrypt_version
                ),
            });
        }
        if min > record.min_decrypt_version {
            self.raise_minimum_locked(&ring, actor, min).await?;
        }
        Ok(ring.info())
    }

    /// Raises the minimum of `ring` (its slow-path lock held) to `min`: resident
    /// keys below it destroyed first, then the change and its audit entry.
    pub(super) async fn raise_minimum_locked(
        &self,
        ring: &Keyring,
        actor: &str,
        min: u32,
    ) -> Result<()> {
        // Below the minimum nothing opens again: resident keys are destroyed in
        // the token before the store forgets them.
        ring.destroy_resident(|v| v < min).await?;
        let now = self.shared.clock.now();
        self.shared
            .store
            .apply(
                Change::RaiseMinimum {
                    name: ring.name.clone(),
                    min,
                },
                AuditDraft::new(
                    actor,
                    "keyring.min_decrypt",
                    format!("keyring:{}", ring.name),
                    json!({ "min_decrypt_version": min }),
                ),
                now,
            )
            .await?;
        self.shared.changed(&ring.name);
        ring.reload().await
    }

    /// Replaces the description and the tags (those given; `None` keeps the
    /// current value). Refused once deletion is scheduled.
    pub async fn set_details(
        &self,
        actor: &str,
        name: &str,
        description: Option<String>,
        tags: Option<BTreeMap<String, String>>,
    ) -> Result<KeyringInfo> {
        let ring = self.keyring(name).await?;
        let _g = ring.slow.lock().await;
        ring.reload().await?;
        ring.require_manageable()?;
        let current = ring.meta.load_full();
        let description = description.unwrap_or_else(|| current.record.description.clone());
        let tags = tags.unwrap_or_else(|| current.record.tags.clone());
        validate_details(&description, &tags)?;
        let now = self.shared.clock.now();
        let audit = json!({ "description": description, "tags": tags });
        self.shared
            .store
            .apply(
                Change::SetKeyringDetails {
                    name: ring.name.clone(),
                    description,
                    tags,
                },
                AuditDraft::new(
                    actor,
                    "keyring.details",
                    format!("keyring:{}", ring.name),
                    audit,
                ),
                now,
            )
            .await?;
        self.shared.changed(&ring.name);
        ring.reload().await?;
        Ok(ring.info())
    }

    /// Points `alias` at keyring `keyring` (an enabled or disabled keyring, named
    /// by its own name), creating or re-pointing it.
    pub async fn put_alias(&self, actor: &str, alias: &str, keyring: &str) -> Result<AliasInfo> {
        validate_alias(alias)?;
        if keyring.starts_with(ALIAS_PREFIX) {
            return Err(Error::Invalid {
                what: "alias target",
                why: "an alias names a keyring, not another alias".into(),
            });
        }
        let ring = self.keyring(keyring).await?;
        let now = self.shared.clock.now();
        let before = self.shared.store.alias(alias).await?;
        self.shared
            .store
            .apply(
                Change::PutAlias {
                    alias: alias.to_owned(),
                    keyring: ring.name.clone(),
                    at: now,
                },
                AuditDraft::new(
                    actor,
                    "alias.put",
                    format!("alias:{alias}"),
                    json!({ "keyring": ring.name, "before": before }),
                ),
                now,
            )
            .await?;
        self.forget_aliases(alias);
        self.shared.changed(alias);
        Ok(AliasInfo {
            alias: alias.to_owned(),
            keyring: ring.name.clone(),
            updated_at: now,
        })
    }

    /// Removes an alias (its keyring is untouched).
    pub async fn delete_alias(&self, actor: &str, alias: &str) -> Result<()> {
        validate_alias(alias).map_err(|_| Error::AliasNotFound(alias.to_owned()))?;
        let now = self.shared.clock.now();
        let before = self.shared.store.alias(alias).await?;
        self.shared
            .store
            .apply(
                Change::DeleteAlias {
                    alias: alias.to_owned(),
                },
                AuditDraft::new(
                    actor,
                    "alias.delete",
                    format!("alias:{alias}"),
                    json!({ "keyring": before }),
                ),
                now,
            )
            .await?;
        self.forget_aliases(alias);
        self.shared.changed(alias);
        Ok(())
    }

    /// Aliases, by alias; only those naming `keyring` (resolved) when given.
    pub async fn aliases(&self, keyring: Option<&str>) -> Result<Vec<AliasInfo>> {
        let keyring = match keyring {
            Some(k) => Some(self.resolve(k).await?.into_owned()),
            None => None,
        };
        Ok(self
            .shared
            .store
            .aliases(keyring.as_deref())
            .await?
            .into_iter()
            .map(|a| AliasInfo {
                alias: a.alias,
                keyring: a.keyring,
                updated_at: a.updated_at,
            })
            .collect())
    }

    /// The end of a scheduled deletion (the scheduler's tick): when keyring
    /// `name` is pending deletion and its time has come, erases every version's
    /// wrapped key and its aliases, and forgets its keys in memory.
    pub(super) async fn erase_if_due(
        &self,
        actor: &str,
        name: &str,
        actions: &mut Vec<PolicyAction>,
    ) -> Result<()> {
        let ring = self.keyring(name).await?;
        let _g = ring.slow.lock().await;
        ring.reload().await?;
        let now = self.shared.clock.now();
        let record = ring.meta.load().record.clone();
        let due = record.state == KeyringState::PendingDeletion
            && record.deletion_at.is_some_and(|at| at <= now);
        if !due {
            return Ok(());
        }
        // Resident keys go first: a key the store no longer names would stay
        // in the token for good.
        ring.destroy_resident(|_| true).await?;
        self.shared
            .store
            .apply(
                Change::EraseKeyring {
                    name: ring.name.clone(),
                    at: now,
                },
                AuditDraft::new(
                    actor,
                    "keyring.erase",
                    format!("keyring:{}", ring.name),
                    json!({ "scheduled_for": record.deletion_at }),
                ),
                now,
            )
            .await?;
        self.shared.changed(&ring.name);
        self.forget_aliases(&ring.name);
        ring.reload().await?;
        ring.forget_primary().await?;
        actions.push(PolicyAction::Erased {
            keyring: ring.name.clone(),
        });
        Ok(())
    }
}
