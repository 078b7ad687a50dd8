//! KMS keys are fleetkey keyrings: key ids (a keyring's name; a UUID for keys
//! CreateKey makes), key ARNs and aliases resolved; metadata, creation,
//! enabling, deletion, rotation, tags and aliases.

use super::{ACCOUNT_ID, Call, KmsError, KmsResult};
use crate::key_type::KeyType;
use crate::keys::{KeyringInfo, KeyringOptions};
use crate::names::KeyringName;
use crate::store::{KeyringState, Origin, Policy};
use fleetkey_crypto::aead::Algorithm;
use fleetkey_crypto::mac::MacAlgorithm;
use serde::Deserialize;
use serde_json::{Value, json};
use std::collections::BTreeMap;

/// The longest KeyId, ARN or alias name read.
const MAX_KEY_ID: usize = 2048;

/// The keyring a `KeyId` names: a keyring name, a key ARN
/// (`arn:aws:kms:<region>:<account>:key/<id>`), an alias (`alias/<name>`) or
/// an alias ARN. Aliases are followed only where `aliases` (AWS accepts them
/// for cryptographic operations and DescribeKey, not for management).
pub(super) async fn resolve(c: &Call<'_>, key_id: &str, aliases: bool) -> KmsResult<String> {
    if key_id.is_empty() || key_id.len() > MAX_KEY_ID {
        return Err(KmsError::validation("KeyId must be 1 to 2048 characters"));
    }
    let id = match key_id.strip_prefix("arn:") {
        Some(rest) => {
            let parts: Vec<&str> = rest.splitn(5, ':').collect();
            match parts[..] {
                [_, "kms", _, _, resource] => {
                    if let Some(id) = resource.strip_prefix("key/") {
                        id.to_owned()
                    } else if resource.starts_with("alias/") {
                        resource.to_owned()
                    } else {
                        return Err(KmsError::new("NotFoundException", "Invalid arn"));
                    }
                }
                _ => return Err(KmsError::new("NotFoundException", "Invalid arn")),
            }
        }
        None => key_id.to_owned(),
    };
    if id.starts_with(crate::keys::ALIAS_PREFIX) {
        if !aliases {
            return Err(KmsError::validation(
                "this operation takes a key id or key ARN, not an alias",
            ));
        }
        return match c.st.keys.resolve(&id).await {
            Ok(name) => Ok(name.into_owned()),
            Err(crate::Error::AliasNotFound(_)) | Err(crate::Error::Invalid { .. }) => Err(
                KmsError::new("NotFoundException", format!("Alias {id} is not found.")),
            ),
            Err(e) => Err(e.into()),
        };
    }
    Ok(id)
}

/// A key's ARN in the request's region.
pub(super) fn arn(c: &Call<'_>, name: &str) -> String {
    format!("arn:aws:kms:{}:{ACCOUNT_ID}:key/{name}", c.region)
}

/// A keyring's info; deleted ones do not exist for AWS.
pub(super) async fn info(c: &Call<'_>, name: &str) -> KmsResult<KeyringInfo> {
    match c.st.keys.show(name).await {
        Ok(i) if i.state != KeyringState::Deleted => Ok(i),
        Ok(_) | Err(crate::Error::KeyringNotFound(_)) | Err(crate::Error::Invalid { .. }) => {
            Err(KmsError::new(
                "NotFoundException",
                format!("Key '{}' does not exist", arn(c, name)),
            ))
        }
        Err(e) => Err(e.into()),
    }
}

/// AWS's KeySpec, KeyUsage and algorithms of a fleetkey key type.
pub(super) struct Spec {
    pub key_spec: &'static str,
    pub usage: &'static str,
    pub encryption: &'static [&'static str],
    pub signing: &'static [&'static str],
    pub mac: &'static [&'static str],
}

/// The AWS description of a key type. fleetkey's types AWS has no name for
/// are given `FLEETKEY_` names.
pub(super) fn spec(kind: KeyType) -> Spec {
    let (key_spec, usage, encryption, signing, mac): (_, _, &[&str], &[&str], &[&str]) = match kind
    {
        KeyType::Aead(_) => (
            "SYMMETRIC_DEFAULT",
            "ENCRYPT_DECRYPT",
            &["SYMMETRIC_DEFAULT"],
            &[],
            &[],
        ),
        KeyType::Ed25519 => (
            "ECC_NIST_EDWARDS25519",
            "SIGN_VERIFY",
            &[],
            &["ED25519_SHA_512", "ED25519_PH_SHA_512"],
            &[],
        ),
        KeyType::MlDsa65 => ("ML_DSA_65", "SIGN_VERIFY", &[], &["ML_DSA_SHAKE_256"], &[]),
        KeyType::Ed25519MlDsa65 => (
            "FLEETKEY_ED25519_ML_DSA_65",
            "SIGN_VERIFY",
            &[],
            &["FLEETKEY_ED25519_ML_DSA_65"],
            &[],
        ),
        KeyType::Mac(MacAlgorithm::HmacSha256) => (
            "HMAC_256",
            "GENERATE_VERIFY_MAC",
            &[],
            &[],
            &["HMAC_SHA_256"],
        ),
        KeyType::Mac(MacAlgorithm::HmacSha512) => (
            "HMAC_512",
            "GENERATE_VERIFY_MAC",
            &[],
            &[],
            &["HMAC_SHA_512"],
        ),
        KeyType::XWing => ("FLEETKEY_X_WING", "ENCRYPT_DECRYPT", &[], &[], &[]),
    };
    Spec {
        key_spec,
        usage,
        encryption,
        signing,
        mac,
    }
}

fn key_state(s: KeyringState) -> &'static str {
    match s {
        KeyringState::Enabled => "Enabled",
        KeyringState::Disabled => "Disabled",
        KeyringState::PendingDeletion => "PendingDeletion",
        KeyringState::Deleted => "Deleted",
    }
}

fn metadata(c: &Call<'_>, i: &KeyringInfo) -> KmsResult<Value> {
    let kind = KeyType::from_name(&i.algorithm)?;
    let s = spec(kind);
    let mut m = json!({
        "AWSAccountId": ACCOUNT_ID,
        "KeyId": i.name,
        "Arn": arn(c, &i.name),
        "CreationDate": i.created_at,
        "Enabled": i.state == KeyringState::Enabled,
        "Description": i.description,
        "KeyUsage": s.usage,
        "KeyState": key_state(i.state),
        "Origin": if i.versions.iter().any(|v| v.origin == Origin::Imported) { "EXTERNAL" } else { "AWS_KMS" },
        "KeyManager": "CUSTOMER",
        "CustomerMasterKeySpec": s.key_spec,
        "KeySpec": s.key_spec,
        "MultiRegion": false,
    });
    for (field, list) in [
        ("EncryptionAlgorithms", s.encryption),
        ("SigningAlgorithms", s.signing),
        ("MacAlgorithms", s.mac),
    ] {
        if !list.is_empty() {
            m[field] = json!(list);
        }
    }
    if let Some(at) = i.deletion_at {
        m["DeletionDate"] = json!(at);
    }
    Ok(m)
}

/// Whether the caller may read key `name`'s metadata: `keys:manage`, or any
/// scope that uses the key.
pub(super) fn require_read(c: &Call<'_>, name: &str) -> KmsResult<()> {
    let uses = [
        "seal", "unseal", "rewrap", "datakey", "sign", "verify", "mac",
    ];
    if c.principal.require("keys:manage").is_ok()
        || uses
            .iter()
            .any(|k| c.principal.require(&format!("{k}:{name}")).is_ok())
    {
        Ok(())
    } else {
        c.require("keys:manage")
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
struct KeyIdInput {
    key_id: String,
    #[serde(default)]
    grant_tokens: Option<Vec<String>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
struct Tag {
    tag_key: String,
    tag_value: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
struct CreateKeyInput {
    #[serde(default)]
    key_spec: Option<String>,
    #[serde(default)]
    customer_master_key_spec: Option<String>,
    #[serde(default)]
    key_usage: Option<String>,
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    tags: Option<Vec<Tag>>,
    #[serde(default)]
    origin: Option<String>,
    #[serde(default)]
    multi_region: Option<bool>,
    /// Key policies are not evaluated: fleetkey's scopes are.
    #[serde(default)]
    policy: Option<String>,
    #[serde(default)]
    bypass_policy_lockout_safety_check: Option<bool>,
}

/// The fleetkey key type of an AWS KeySpec and KeyUsage.
fn key_type(spec: &str, usage: Option<&str>) -> KmsResult<KeyType> {
    let (kind, usages): (KeyType, &[&str]) = match spec {
        "SYMMETRIC_DEFAULT" => (KeyType::Aead(Algorithm::Aes256Gcm), &["ENCRYPT_DECRYPT"]),
        "HMAC_256" => (
            KeyType::Mac(MacAlgorithm::HmacSha256),
            &["GENERATE_VERIFY_MAC"],
        ),
        "HMAC_512" => (
            KeyType::Mac(MacAlgorithm::HmacSha512),
            &["GENERATE_VERIFY_MAC"],
        ),
        "ECC_NIST_EDWARDS25519" => (KeyType::Ed25519, &["SIGN_VERIFY"]),
        "ML_DSA_65" => (KeyType::MlDsa65, &["SIGN_VERIFY"]),
        "FLEETKEY_ED25519_ML_DSA_65" => (KeyType::Ed25519MlDsa65, &["SIGN_VERIFY"]),
        other => {
            return Err(KmsError::new(
                "UnsupportedOperationException",
                format!(
                    "KeySpec {} is not supported by fleetkey: use SYMMETRIC_DEFAULT, HMAC_256, HMAC_512, ECC_NIST_EDWARDS25519, ML_DSA_65 or FLEETKEY_ED25519_ML_DSA_65",
                    other.chars().take(64).collect::<String>()
                ),
            ));
        }
    };
    match usage {
        Some(u) if !usages.contains(&u) => Err(KmsError::validation(format!(
            "KeyUsage {} does not go with KeySpec {spec} (use {})",
            u.chars().take(64).collect::<String>(),
            usages[0]
        ))),
        _ => Ok(kind),
    }
}

/// A random (version 4) UUID, the id of a key CreateKey makes.
fn uuid() -> KmsResult<String> {
    Ok(crate::api::random_uuid()?)
}

fn tags_map(tags: Vec<Tag>) -> BTreeMap<String, String> {
    tags.into_iter().map(|t| (t.tag_key, t.tag_value)).collect()
}

fn change(c: &Call<'_>, e: crate::Error) -> KmsError {
    crate::api::change_err(c.st, e).into()
}

pub(super) async fn create(c: &Call<'_>) -> KmsResult<Value> {
    c.require("keys:manage")?;
    let input: CreateKeyInput = c.input()?;
    let spec = input
        .key_spec
        .or(input.customer_master_key_spec)
        .unwrap_or_else(|| "SYMMETRIC_DEFAULT".to_owned());
    let kind = key_type(&spec, input.key_usage.as_deref())?;
    if input.origin.as_deref().is_some_and(|o| o != "AWS_KMS") {
        return Err(KmsError::new(
            "UnsupportedOperationException",
            "Origin: only AWS_KMS (key material made by fleetkey); import key material through fleetkey's native import",
        ));
    }
    if input.multi_region == Some(true) {
        return Err(KmsError::new(
            "UnsupportedOperationException",
            "multi-Region keys are not supported",
        ));
    }
    let _ = (input.policy, input.bypass_policy_lockout_safety_check);
    let id = uuid()?;
    let options = KeyringOptions {
        description: input.description.unwrap_or_default(),
        tags: input.tags.map(tags_map).unwrap_or_default(),
        ..Default::default()
    };
    let name = KeyringName::new(id.clone())?;
    let info =
        c.st.keys
            .create_with(&c.actor(), &name, kind, Policy::default(), options)
            .await
            .map_err(|e| change(c, e))?;
    Ok(json!({ "KeyMetadata": metadata(c, &info)? }))
}

pub(super) async fn describe(c: &Call<'_>) -> KmsResult<Value> {
    let input: KeyIdInput = c.input()?;
    let _ = input.grant_tokens;
    let name = resolve(c, &input.key_id, true).await?;
    require_read(c, &name)?;
    let info = info(c, &name).await?;
    Ok(json!({ "KeyMetadata": metadata(c, &info)? }))
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
struct PageInput {
    #[serde(default)]
    limit: Option<i64>,
    #[serde(default)]
    marker: Option<String>,
    #[serde(default)]
    key_id: Option<String>,
}

/// Up to `limit` (1–1000, default 100) of `items` after `marker`; whether more
/// follow.
fn page<T: Clone>(
    items: &[(String, T)],
    limit: Option<i64>,
    marker: Option<&str>,
) -> KmsResult<(Vec<T>, Option<String>)> {
    let limit = limit.unwrap_or(100);
    if !(1..=1000).contains(&limit) {
        return Err(KmsError::validation("Limit must be 1 to 1000"));
    }
    let start = marker.map_or(0, |m| items.partition_point(|(k, _)| k.as_str() <= m));
    let end = (start + usize::try_from(limit).unwrap_or(100)).min(items.len());
    let next = (end < items.len()).then(|| items[end - 1].0.clone());
    Ok((
        items[start..end].iter().map(|(_, v)| v.clone()).collect(),
        next,
    ))
}

fn paged(field: &str, items: Vec<Value>, next: Option<String>) -> Value {
    let mut v = json!({ field: items, "Truncated": next.is_some() });
    if let Some(n) = next {
        v["NextMarker"] = json!(n);
    }
    v
}

pub(super) async fn list(c: &Call<'_>) -> KmsResult<Value> {
    c.require("keys:manage")?;
    let input: PageInput = c.input()?;
    if input.key_id.is_some() {
        return Err(KmsError::validation("ListKeys takes no KeyId"));
    }
    let mut keys: Vec<(String, Value)> =
        c.st.keys
            .list()
            .await?
            .into_iter()
            .filter(|k| k.state != KeyringState::Deleted)
            .map(|k| {
                let v = json!({ "KeyId": k.name, "KeyArn": arn(c, &k.name) });
                (k.name, v)
            })
            .collect();
    keys.sort_by(|a, b| a.0.cmp(&b.0));
    let (items, next) = page(&keys, input.limit, input.marker.as_deref())?;
    Ok(paged("Keys", items, next))
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
struct AliasInput {
    alias_name: String,
    #[serde(default)]
    target_key_id: Option<String>,
}

pub(super) async fn create_alias(c: &Call<'_>, update: bool) -> KmsResult<Value> {
    c.require("keys:manage")?;
    let input: AliasInput = c.input()?;
    if input.alias_name.starts_with("alias/aws/") {
        return Err(KmsError::new(
            "NotAuthorizedException",
            "alias/aws/ names are reserved for AWS managed keys",
        ));
    }
    let target = input
        .target_key_id
        .ok_or_else(|| KmsError::validation("TargetKeyId is required"))?;
    let name = resolve(c, &target, false).await?;
    info(c, &name).await?;
    let exists =
        c.st.keys
            .aliases(None)
            .await?
            .iter()
            .any(|a| a.alias == input.alias_name);
    match (update, exists) {
        (false, true) => {
            return Err(KmsError::new(
                "AlreadyExistsException",
                format!("An alias with the name {} already exists", input.alias_name),
            ));
        }
        (true, false) => {
            return Err(KmsError::new(
                "NotFoundException",
                format!("Alias {} is not found.", input.alias_name),
            ));
        }
        _ => {}
    }
    c.st.keys
        .put_alias(&c.actor(), &input.alias_name, &name)
        .await
        .map_err(|e| change(c, e))?;
    Ok(json!({}))
}

pub(super) async fn delete_alias(c: &Call<'_>) -> KmsResult<Value> {
    c.require("keys:manage")?;
    let input: AliasInput = c.input()?;
    match c.st.keys.delete_alias(&c.actor(), &input.alias_name).await {
        Ok(()) => Ok(json!({})),
        Err(crate::Error::AliasNotFound(_)) | Err(crate::Error::Invalid { .. }) => {
            Err(KmsError::new(
                "NotFoundException",
                format!("Alias {} is not found.", input.alias_name),
            ))
        }
        Err(e) => Err(change(c, e)),
    }
}

pub(super) async fn list_aliases(c: &Call<'_>) -> KmsResult<Value> {
    c.require("keys:manage")?;
    let input: PageInput = c.input()?;
    let filter = match &input.key_id {
        Some(k) => Some(resolve(c, k, false).await?),
        None => None,
    };
    let mut all: Vec<(String, Value)> =
        c.st.keys
            .aliases(filter.as_deref())
            .await?
            .into_iter()
            .map(|a| {
                let v = json!({
                    "AliasName": a.alias,
                    "AliasArn": format!("arn:aws:kms:{}:{ACCOUNT_ID}:{}", c.region, a.alias),
                    "TargetKeyId": a.keyring,
                    "LastUpdatedDate": a.updated_at,
                });
                (a.alias, v)
            })
            .collect();
    all.sort_by(|a, b| a.0.cmp(&b.0));
    let (items, next) = page(&all, input.limit, input.marker.as_deref())?;
    Ok(paged("Aliases", items, next))
}

pub(super) async fn enable(c: &Call<'_>, on: bool) -> KmsResult<Value> {
    c.require("keys:manage")?;
    let input: KeyIdInput = c.input()?;
    let name = resolve(c, &input.key_id, false).await?;
    let i = info(c, &name).await?;
    let want = if on {
        KeyringState::Enabled
    } else {
        KeyringState::Disabled
    };
    if i.state == want {
        return Ok(json!({}));
    }
    if i.state == KeyringState::PendingDeletion {
        return Err(KmsError::new(
            "KMSInvalidStateException",
            format!("{} is pending deletion.", arn(c, &name)),
        ));
    }
    let r = if on {
        c.st.keys.enable(&c.actor(), &name).await
    } else {
        c.st.keys.disable(&c.actor(), &name).await
    };
    r.map_err(|e| change(c, e))?;
    Ok(json!({}))
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
struct DeletionInput {
    key_id: String,
    #[serde(default)]
    pending_window_in_days: Option<i64>,
}

pub(super) async fn schedule_deletion(c: &Call<'_>) -> KmsResult<Value> {
    c.require("keys:manage")?;
    let input: DeletionInput = c.input()?;
    let name = resolve(c, &input.key_id, false).await?;
    let i = info(c, &name).await?;
    if i.state == KeyringState::PendingDeletion {
        return Err(KmsError::new(
            "KMSInvalidStateException",
            format!("{} is pending deletion.", arn(c, &name)),
        ));
    }
    let days = input.pending_window_in_days.unwrap_or(30);
    if !(7..=30).contains(&days) {
        return Err(KmsError::validation("PendingWindowInDays must be 7 to 30"));
    }
    let info =
        c.st.keys
            .schedule_deletion(&c.actor(), &name, u32::try_from(days).unwrap_or(30))
            .await
            .map_err(|e| change(c, e))?;
    Ok(json!({
        "KeyId": arn(c, &name),
        "DeletionDate": info.deletion_at,
        "KeyState": "PendingDeletion",
        "PendingWindowInDays": days,
    }))
}

pub(super) async fn cancel_deletion(c: &Call<'_>) -> KmsResult<Value> {
    c.require("keys:manage")?;
    let input: KeyIdInput = c.input()?;
    let name = resolve(c, &input.key_id, false).await?;
    if info(c, &name).await?.state != KeyringState::PendingDeletion {
        return Err(KmsError::new(
            "KMSInvalidStateException",
            format!("{} is not pending deletion.", arn(c, &name)),
        ));
    }
    c.st.keys
        .cancel_deletion(&c.actor(), &name)
        .await
        .map_err(|e| change(c, e))?;
    Ok(json!({ "KeyId": arn(c, &name) }))
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
struct RotationInput {
    key_id: String,
    #[serde(default)]
    rotation_period_in_days: Option<i64>,
}

pub(super) async fn enable_rotation(c: &Call<'_>) -> KmsResult<Value> {
    c.require("keys:manage")?;
    let input: RotationInput = c.input()?;
    let name = resolve(c, &input.key_id, false).await?;
    let i = info(c, &name).await?;
    let days = input.rotation_period_in_days.unwrap_or(365);
    if !(90..=2560).contains(&days) {
        return Err(KmsError::validation(
            "RotationPeriodInDays must be 90 to 2560",
        ));
    }
    let policy = Policy {
        rotation_period_secs: days * 86_400,
        ..i.policy
    };
    c.st.keys
        .set_policy(&c.actor(), &name, policy)
        .await
        .map_err(|e| change(c, e))?;
    Ok(json!({}))
}

pub(super) async fn rotation_status(c: &Call<'_>) -> KmsResult<Value> {
    let input: KeyIdInput = c.input()?;
    let name = resolve(c, &input.key_id, false).await?;
    require_read(c, &name)?;
    let i = info(c, &name).await?;
    let period = i.policy.rotation_period_secs;
    let primary_created = i
        .versions
        .iter()
        .find(|v| v.version == i.primary_version)
        .map_or(i.created_at, |v| v.created_at);
    Ok(json!({
        "KeyRotationEnabled": true,
        "KeyId": arn(c, &name),
        "RotationPeriodInDays": (period / 86_400).max(1),
        "NextRotationDate": primary_created.saturating_add(period),
    }))
}

pub(super) async fn rotate(c: &Call<'_>) -> KmsResult<Value> {
    c.require("keys:manage")?;
    let input: KeyIdInput = c.input()?;
    let name = resolve(c, &input.key_id, false).await?;
    info(c, &name).await?;
    c.st.keys
        .rotate(&c.actor(), &name)
        .await
        .map_err(|e| change(c, e))?;
    Ok(json!({ "KeyId": arn(c, &name) }))
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
struct TagInput {
    key_id: String,
    #[serde(default)]
    tags: Option<Vec<Tag>>,
    #[serde(default)]
    tag_keys: Option<Vec<String>>,
}

pub(super) async fn tag(c: &Call<'_>, add: bool) -> KmsResult<Value> {
    c.require("keys:manage")?;
    let input: TagInput = c.input()?;
    let name = resolve(c, &input.key_id, false).await?;
    let mut tags = info(c, &name).await?.tags;
    if add {
        let new = input
            .tags
            .ok_or_else(|| KmsError::validation("Tags is required"))?;
        tags.extend(tags_map(new));
    } else {
        for k in input
            .tag_keys
            .ok_or_else(|| KmsError::validation("TagKeys is required"))?
        {
            tags.remove(&k);
        }
    }
    c.st.keys
        .set_details(&c.actor(), &name, None, Some(tags))
        .await
        .map_err(|e| match e {
            crate::Error::Invalid { .. } => KmsError::new("TagException", e.to_string()),
            other => change(c, other),
        })?;
    Ok(json!({}))
}

pub(super) async fn list_tags(c: &Call<'_>) -> KmsResult<Value> {
    let input: PageInput = c.input()?;
    let key = input
        .key_id
        .as_deref()
        .ok_or_else(|| KmsError::validation("KeyId is required"))?;
    let name = resolve(c, key, false).await?;
    require_read(c, &name)?;
    let tags: Vec<(String, Value)> = info(c, &name)
        .await?
        .tags
        .into_iter()
        .map(|(k, v)| {
            let item = json!({ "TagKey": k, "TagValue": v });
            (k, item)
        })
        .collect();
    let (items, next) = page(&tags, input.limit, input.marker.as_deref())?;
    Ok(paged("Tags", items, next))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_specs_map_to_key_types_and_back() {
        for (s, usage) in [
            ("SYMMETRIC_DEFAULT", "ENCRYPT_DECRYPT"),
            ("HMAC_256", "GENERATE_VERIFY_MAC"),
            ("HMAC_512", "GENERATE_VERIFY_MAC"),
            ("ECC_NIST_EDWARDS25519", "SIGN_VERIFY"),
            ("ML_DSA_65", "SIGN_VERIFY"),
        ] {
            let k = key_type(s, Some(usage)).unwrap();
            assert_eq!(spec(k).key_spec, s);
            assert_eq!(spec(k).usage, usage);
        }
        assert!(key_type("RSA_2048", None).is_err());
        assert!(key_type("SYMMETRIC_DEFAULT", Some("SIGN_VERIFY")).is_err());
    }

    #[test]
    fn uuids_are_version_4() {
        let u = uuid().unwrap();
        assert_eq!(u.len(), 36);
        assert_eq!(&u[14..15], "4");
        assert!(matches!(&u[19..20], "8" | "9" | "a" | "b"));
        assert!(KeyringName::new(u).is_ok());
    }

    #[test]
    fn pages_follow_markers() {
        let items: Vec<(String, u32)> = (0..5).map(|i| (format!("k{i}"), i)).collect();
        let (a, next) = page(&items, Some(2), None).unwrap();
        assert_eq!((a, next.as_deref()), (vec![0, 1], Some("k1")));
        let (b, next) = page(&items, Some(2), Some("k1")).unwrap();
        assert_eq!((b, next.as_deref()), (vec![2, 3], Some("k3")));
        let (c, next) = page(&items, Some(2), Some("k3")).unwrap();
        assert_eq!((c, next), (vec![4], None));
        assert!(page(&items, Some(0), None).is_err());
        assert!(page(&items, Some(1001), None).is_err());
    }
}
