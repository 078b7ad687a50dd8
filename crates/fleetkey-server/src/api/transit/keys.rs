//! Transit keys are fleetkey keyrings: create, read, list, delete, rotate and
//! config, with Transit's key types mapped onto fleetkey's.

use super::{Segments, VaultError, VaultRequest, VaultResult, actor, answer};
use crate::api::St;
use crate::key_type::{KeyType, Purpose};
use crate::keys::KeyringInfo;
use crate::names::KeyringName;
use crate::store::{KeyringState, Origin, Policy, VersionState};
use crate::tokens::Principal;
use axum::extract::{RawQuery, State};
use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Response};
use base64::{Engine as _, engine::general_purpose::STANDARD as B64};
use fleetkey_crypto::aead::Algorithm;
use fleetkey_crypto::mac::MacAlgorithm;
use serde_json::{Map, Value, json};

/// The keyring tag that holds Transit's `deletion_allowed` (fleetkey has no such
/// setting of its own: its deletions are scheduled, 7 to 30 days ahead).
pub const DELETION_ALLOWED_TAG: &str = "transit:deletion_allowed";

/// Transit's key type names and the fleetkey types they are.
const TRANSIT_TYPES: &[(&str, KeyType)] = &[
    ("aes256-gcm96", KeyType::Aead(Algorithm::Aes256Gcm)),
    (
        "chacha20-poly1305",
        KeyType::Aead(Algorithm::ChaCha20Poly1305),
    ),
    ("ed25519", KeyType::Ed25519),
    ("hmac", KeyType::Mac(MacAlgorithm::HmacSha256)),
];

/// The fleetkey type of a Transit `type`: a Transit name above, or any fleetkey
/// key type name (`ml-dsa-65`, `x-wing`, …) under its own name.
pub fn key_type(name: &str) -> VaultResult<KeyType> {
    if let Some((_, t)) = TRANSIT_TYPES.iter().find(|(n, _)| *n == name) {
        return Ok(*t);
    }
    KeyType::from_name(name).map_err(|_| {
        VaultError::bad(format!(
            "unsupported key type {:?}: use aes256-gcm96, chacha20-poly1305, ed25519, hmac, or a fleetkey type ({})",
            name.chars().take(64).collect::<String>(),
            crate::key_type::NAMES.join(", ")
        ))
    })
}

/// The `type` a key reads back as: its Transit name where it has one.
pub fn type_name(t: KeyType) -> &'static str {
    TRANSIT_TYPES
        .iter()
        .find(|(_, k)| *k == t)
        .map(|(n, _)| *n)
        .unwrap_or(t.name())
}

/// Whether the principal may read key `name`'s metadata: `keys:manage`, or any
/// scope that uses this key.
fn require_read(p: &Principal, name: &str) -> VaultResult<()> {
    let uses = [
        "seal", "unseal", "rewrap", "datakey", "sign", "verify", "mac", "export",
    ];
    if p.require("keys:manage").is_ok()
        || uses
            .iter()
            .any(|k| p.require(&format!("{k}:{name}")).is_ok())
    {
        Ok(())
    } else {
        Err(VaultError::denied())
    }
}

fn manage(p: &Principal) -> VaultResult<()> {
    p.require("keys:manage").map_err(VaultError::from)
}

/// A keyring the door shows: those waiting for deletion or deleted are gone,
/// as a deleted Transit key is.
fn visible(info: &KeyringInfo) -> bool {
    matches!(info.state, KeyringState::Enabled | KeyringState::Disabled)
}

/// `keys/:name` read, as Transit answers it.
pub(super) async fn key_data(st: &crate::api::AppState, name: &str) -> VaultResult<Value> {
    let info = match st.keys.show(name).await {
        Ok(i) if visible(&i) => i,
        Ok(_) | Err(crate::Error::KeyringNotFound(_)) => return Err(VaultError::not_found()),
        Err(e) => return Err(e.into()),
    };
    let kind = KeyType::from_name(&info.algorithm)?;
    let signing = matches!(kind.purpose(), Purpose::Sign | Purpose::Decrypt);
    let ring = if signing {
        Some(st.keys.keyring(name).await?)
    } else {
        None
    };
    let mut keys = Map::new();
    for v in info
        .versions
        .iter()
        .filter(|v| v.state != VersionState::Destroyed)
    {
        let entry = match &ring {
            Some(r) => {
                let public = r
                    .public_key(Some(v.version))
                    .await
                    .map(|(_, pk)| B64.encode(pk))
                    .unwrap_or_default();
                json!({
                    "certificate_chain": "",
                    "creation_time": rfc3339(v.created_at),
                    "name": type_name(kind),
                    "public_key": public,
                })
            }
            None => json!(v.created_at),
        };
        keys.insert(v.version.to_string(), entry);
    }
    let min_available = info
        .versions
        .iter()
        .find(|v| v.state != VersionState::Destroyed)
        .map_or(0, |v| if v.version == 1 { 0 } else { v.version });
    let purpose = kind.purpose();
    let mut data = json!({
        "allow_plaintext_backup": false,
        "auto_rotate_period": info.policy.rotation_period_secs,
        "deletion_allowed": deletion_allowed(&info),
        "derived": false,
        "exportable": info.exportable,
        "imported_key": info.versions.iter().any(|v| v.origin == Origin::Imported),
        "keys": keys,
        "latest_version": info.primary_version,
        "min_available_version": min_available,
        "min_decryption_version": info.min_decrypt_version,
        "min_encryption_version": 0,
        "name": info.name,
        "soft_deleted": false,
        "supports_decryption": matches!(purpose, Purpose::Encrypt | Purpose::Decrypt),
        "supports_derivation": false,
        "supports_encryption": purpose == Purpose::Encrypt,
        "supports_signing": purpose == Purpose::Sign,
        "type": type_name(kind),
    });
    // Transit shows a MAC key's size, not its versions' times.
    if purpose == Purpose::Mac
        && let Some(d) = data.as_object_mut()
    {
        d.remove("keys");
        d.insert("key_size".into(), json!(32));
    }
    Ok(data)
}

fn deletion_allowed(info: &KeyringInfo) -> bool {
    info.tags.get(DELETION_ALLOWED_TAG).map(String::as_str) == Some("true")
}

fn rfc3339(t: i64) -> String {
    let secs = u64::try_from(t).unwrap_or(0);
    humantime::format_rfc3339_seconds(std::time::UNIX_EPOCH + std::time::Duration::from_secs(secs))
        .to_string()
}

/// `LIST keys` (or `GET keys?list=true`): every usable keyring's name; 404
/// when there is none, as in Vault.
pub(super) async fn list(
    State(st): St,
    method: Method,
    RawQuery(q): RawQuery,
    req: VaultRequest,
) -> VaultResult<Response> {
    let listing = method.as_str() == "LIST"
        || (method == Method::GET
            && q.as_deref()
                .is_some_and(|q| q.split('&').any(|kv| kv == "list=true")));
    if !listing {
        return Err(VaultError::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "unsupported operation: use LIST (or GET with list=true) to list keys",
        ));
    }
    manage(&req.principal)?;
    let names: Vec<String> = st
        .keys
        .list()
        .await?
        .into_iter()
        .filter(visible)
        .map(|k| k.name)
        .collect();
    if names.is_empty() {
        return Err(VaultError::not_found());
    }
    Ok(answer(json!({ "keys": names }), vec![]))
}

/// `keys/:name`: GET reads, POST/PUT creates, DELETE deletes.
pub(super) async fn key(
    State(st): St,
    method: Method,
    Segments(name): Segments<String>,
    req: VaultRequest,
) -> VaultResult<Response> {
    match method {
        Method::GET => {
            require_read(&req.principal, &name)?;
            let data = key_data(&st, &name).await?;
            Ok(answer(data, leftover(&req.params)))
        }
        Method::POST | Method::PUT => create(&st, &name, req).await,
        Method::DELETE => delete(&st, &name, &req.principal).await,
        _ => Err(VaultError::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "unsupported operation: keys/:name takes GET, POST, PUT or DELETE",
        )),
    }
}

fn leftover(p: &super::Params) -> Vec<String> {
    p.leftover().into_iter().collect()
}

/// Creates key `name` from Transit's create parameters (a key that exists is
/// answered as it is, as Vault does).
pub(super) async fn create_key(
    st: &crate::api::AppState,
    p: &Principal,
    name: &str,
    params: &mut super::Params,
    operation: &str,
) -> VaultResult<()> {
    manage(p)?;
    let kind = key_type(params.str("type")?.as_deref().unwrap_or("aes256-gcm96"))?;
    if params.bool("derived")? == Some(true) {
        return Err(VaultError::bad(
            "derived keys are not supported: fleetkey keys take no derivation context (docs/migrate-from-vault-transit.md)",
        ));
    }
    if params.bool("allow_plaintext_backup")? == Some(true) {
        return Err(VaultError::bad(
            "plaintext backups are not supported: export a key sealed to a recipient instead (exportable keys)",
        ));
    }
    match params.int("key_size")? {
        None | Some(0 | 32) => {}
        Some(_) => {
            return Err(VaultError::bad(
                "key_size: fleetkey keys are 32 bytes (256 bits)",
            ));
        }
    }
    let mut policy = Policy::default();
    if let Some(period) = params.duration("auto_rotate_period")? {
        policy.rotation_period_secs = rotation_period(period)?;
    }
    let options = crate::keys::KeyringOptions {
        exportable: params.bool("exportable")? == Some(true),
        convergent: params.bool("convergent_encryption")? == Some(true),
        ..Default::default()
    };
    let keyring = KeyringName::new(name.to_owned())?;
    match st
        .keys
        .create_with(&actor(p, operation), &keyring, kind, policy, options)
        .await
    {
        Ok(_) | Err(crate::Error::KeyringExists(_)) => Ok(()),
        Err(e) => Err(crate::api::change_err(st, e).into()),
    }
}

/// Transit's `auto_rotate_period` as a fleetkey rotation period: 0 (never) has
/// no fleetkey equivalent, since every keyring rotates by age and by use.
fn rotation_period(secs: i64) -> VaultResult<i64> {
    if secs == 0 {
        return Err(VaultError::bad(
            "auto_rotate_period 0 (never) is not supported: fleetkey keyrings always rotate by age; give a period of at least 1m",
        ));
    }
    if secs < 60 {
        return Err(VaultError::bad("auto_rotate_period must be at least 1m"));
    }
    Ok(secs)
}

async fn create(
    st: &crate::api::AppState,
    name: &str,
    mut req: VaultRequest,
) -> VaultResult<Response> {
    create_key(st, &req.principal, name, &mut req.params, "keys/create").await?;
    let data = key_data(st, name).await?;
    Ok(answer(data, leftover(&req.params)))
}

async fn delete(st: &crate::api::AppState, name: &str, p: &Principal) -> VaultResult<Response> {
    manage(p)?;
    let info = match st.keys.show(name).await {
        Ok(i) if visible(&i) => i,
        Ok(_) | Err(crate::Error::KeyringNotFound(_)) => return Err(VaultError::not_found()),
        Err(e) => return Err(e.into()),
    };
    if !deletion_allowed(&info) {
        return Err(VaultError::bad(format!(
            "error deleting policy {name}: deletion is not allowed for this key"
        )));
    }
    st.keys
        .schedule_deletion(
            &actor(p, "keys/delete"),
            name,
            crate::keys::MIN_DELETION_DAYS,
        )
        .await
        .map_err(|e| crate::api::change_err(st, e))?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// `keys/:name/rotate`: a new latest version.
pub(super) async fn rotate(
    State(st): St,
    Segments(name): Segments<String>,
    req: VaultRequest,
) -> VaultResult<Response> {
    manage(&req.principal)?;
    st.keys
        .rotate(&actor(&req.principal, "keys/rotate"), &name)
        .await
        .map_err(|e| crate::api::change_err(&st, e))?;
    Ok(answer(key_data(&st, &name).await?, leftover(&req.params)))
}

/// `keys/:name/config`: the settings Transit has and fleetkey can honour.
pub(super) async fn config(
    State(st): St,
    Segments(name): Segments<String>,
    mut req: VaultRequest,
) -> VaultResult<Response> {
    let p = req.principal.clone();
    manage(&p)?;
    let info = match st.keys.show(&name).await {
        Ok(i) if visible(&i) => i,
        Ok(_) | Err(crate::Error::KeyringNotFound(_)) => return Err(VaultError::not_found()),
        Err(e) => return Err(e.into()),
    };
    let params = &mut req.params;
    let min_dec = params.int_in("min_decryption_version", 0..=i64::from(u32::MAX))?;
    let min_enc = params.int("min_encryption_version")?;
    let deletion = params.bool("deletion_allowed")?;
    let exportable = params.bool("exportable")?;
    let backup = params.bool("allow_plaintext_backup")?;
    let period = params.duration("auto_rotate_period")?;
    // Everything is checked before anything changes.
    if min_enc.is_some_and(|v| v != 0) {
        return Err(VaultError::bad(
            "min_encryption_version: fleetkey always encrypts with the latest version; only 0 is accepted",
        ));
    }
    if exportable.is_some_and(|e| e != info.exportable) {
        return Err(VaultError::bad(format!(
            "exportable is fixed when a fleetkey key is created (this key: {})",
            info.exportable
        )));
    }
    if backup == Some(true) {
        return Err(VaultError::bad("plaintext backups are not supported"));
    }
    let period = period.map(rotation_period).transpose()?;
    let who = actor(&p, "keys/config");
    let change = |e| crate::api::change_err(&st, e);
    if let Some(min) = min_dec
        .and_then(|m| u32::try_from(m).ok())
        .filter(|m| *m > 0)
    {
        st.keys
            .raise_minimum(&who, &name, min)
            .await
            .map_err(change)?;
    }
    if let Some(allowed) = deletion
        && allowed != deletion_allowed(&info)
    {
        let mut tags = info.tags.clone();
        if allowed {
            tags.insert(DELETION_ALLOWED_TAG.to_owned(), "true".to_owned());
        } else {
            tags.remove(DELETION_ALLOWED_TAG);
        }
        st.keys
            .set_details(&who, &name, None, Some(tags))
            .await
            .map_err(change)?;
    }
    if let Some(secs) = period {
        let policy = Policy {
            rotation_period_secs: secs,
            ..info.policy
        };
        st.keys
            .set_policy(&who, &name, policy)
            .await
            .map_err(change)?;
    }
    Ok(answer(key_data(&st, &name).await?, leftover(&req.params)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transit_types_map_both_ways() {
        for (n, t) in TRANSIT_TYPES {
            assert_eq!(key_type(n).unwrap(), *t);
            assert_eq!(type_name(*t), *n);
        }
        assert_eq!(key_type("ml-dsa-65").unwrap(), KeyType::MlDsa65);
        assert_eq!(type_name(KeyType::MlDsa65), "ml-dsa-65");
        assert_eq!(
            key_type("aes-256-gcm").unwrap(),
            KeyType::Aead(Algorithm::Aes256Gcm)
        );
        for unsupported in ["aes128-gcm96", "rsa-2048", "ecdsa-p256", ""] {
            assert!(key_type(unsupported).is_err(), "{unsupported}");
        }
    }

    #[test]
    fn rotation_periods() {
        assert!(rotation_period(0).is_err());
        assert!(rotation_period(59).is_err());
        assert_eq!(rotation_period(86_400).unwrap(), 86_400);
    }
}
