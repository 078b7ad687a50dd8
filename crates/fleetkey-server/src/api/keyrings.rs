//! Keyrings and what they do: create, list, show, rotate, revoke a version, set the
//! policy; seal, unseal and rewrap, one at a time or in batches.

use super::change_err;
use super::error::ErrorDetail;
use super::error::{ApiError, ApiResult, ErrorBody};
use super::extract::{ApiJson, ApiPath, KeyringPath, b64, binding};
use super::{AppState, St};
use crate::Error;
use crate::key_type::KeyType;
use crate::keys::KeyringInfo;
use crate::names::KeyringName;
use crate::store::Policy;
use crate::tokens::Principal;
use axum::extract::State;
use axum::http::StatusCode;
use axum::{Extension, Json};
use base64::{Engine as _, engine::general_purpose::STANDARD as B64};
use fleetkey_crypto::aead::Algorithm;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use utoipa::ToSchema;

/// Create a keyring.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateKeyringRequest {
    /// Name (docs/operations.md#names: 1–64 of `A-Z a-z 0-9 - _ .`, starting with a
    /// letter or a digit); also the key id in envelopes.
    pub name: String,
    /// Key type, fixed for the keyring's life: `aes-256-gcm` (default),
    /// `chacha20-poly1305`, `aes-256-gcm-siv` (seal and unseal); `ed25519`,
    /// `ml-dsa-65`, `ed25519+ml-dsa-65` (sign and verify); `hmac-sha256`,
    /// `hmac-sha512` (MACs); `x-wing` (anyone seals to its public recipient,
    /// `GET …/public-key?format=fk1r`; unseal opens).
    #[serde(default)]
    pub algorithm: Option<String>,
    /// Policy; omitted fields take the defaults.
    #[serde(default)]
    pub policy: Option<PolicyRequest>,
    /// Free text for operators: at most 256 characters, no control characters.
    #[serde(default)]
    pub description: Option<String>,
    /// Labels for operators: at most 50; keys 1–128 characters, values at most
    /// 256, no control characters.
    #[serde(default)]
    pub tags: Option<BTreeMap<String, String>>,
    /// Whether versions may be exported sealed to a recipient (default false;
    /// fixed for the keyring's life).
    #[serde(default)]
    pub exportable: Option<bool>,
    /// Deterministic sealing for equality search (aes-256-gcm-siv only; default
    /// false; fixed for the keyring's life): equal plaintexts under the same
    /// version and binding give equal envelopes (docs/formats.md, "Convergent
    /// keyrings").
    #[serde(default)]
    pub convergent: Option<bool>,
    /// Keep every version's key in custody's token, where each seal and unseal
    /// happens (aes-256-gcm only, not exportable or convergent; needs
    /// `FLEETKEY_CUSTODY=pkcs11`; default false; fixed for the keyring's life;
    /// docs/custody.md, "Resident keyrings").
    #[serde(default)]
    pub resident: Option<bool>,
}

/// Policy fields; omitted ones keep their current (or default) value.
#[derive(Debug, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PolicyRequest {
    /// Rotate when the primary is this old (seconds, ≥ 60).
    pub rotation_period_secs: Option<i64>,
    /// Rotate after this many seals (1 to 2^40).
    pub max_uses: Option<u64>,
    /// Decrypt-only window of a replaced version (seconds).
    pub overlap_secs: Option<i64>,
    /// Keep at most this many versions able to decrypt (0 = no limit).
    pub keep_last: Option<u32>,
}

impl PolicyRequest {
    /// `p` with the fields given here replaced (`keep_last` 0: no limit).
    pub fn apply(&self, mut p: Policy) -> Policy {
        if let Some(v) = self.rotation_period_secs {
            p.rotation_period_secs = v;
        }
        if let Some(v) = self.max_uses {
            p.max_uses = v;
        }
        if let Some(v) = self.overlap_secs {
            p.overlap_secs = v;
        }
        if let Some(v) = self.keep_last {
            p.keep_last = (v > 0).then_some(v);
        }
        p
    }
}

/// Plaintext to seal.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SealRequest {
    /// Base64 plaintext.
    pub plaintext: String,
    /// Base64 associated data (authenticated, not stored).
    #[serde(default)]
    pub aad: Option<String>,
    /// Encryption context (docs/formats.md, "Encryption context"): string pairs
    /// encoded canonically as the associated data. Instead of `aad`, never with it.
    #[serde(default)]
    pub context: Option<BTreeMap<String, String>>,
}

/// A sealed envelope.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct SealResponse {
    /// Base64 of the binary fk1 envelope.
    pub ciphertext: String,
    /// Key version that sealed it.
    pub key_version: u32,
}

/// An envelope to open or rewrap.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CiphertextRequest {
    /// Base64 of the binary fk1 envelope.
    pub ciphertext: String,
    /// Base64 associated data given when sealing.
    #[serde(default)]
    pub aad: Option<String>,
    /// Encryption context (docs/formats.md, "Encryption context"): string pairs
    /// encoded canonically as the associated data; the one given when sealing. Instead of `aad`, never with it.
    #[serde(default)]
    pub context: Option<BTreeMap<String, String>>,
}

/// Opened plaintext.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct UnsealResponse {
    /// Base64 plaintext.
    pub plaintext: String,
}

/// Many seals in one request.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BatchSealRequest {
    /// Items, each sealed independently.
    pub items: Vec<SealRequest>,
}

/// Many opens or rewraps in one request.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BatchCiphertextRequest {
    /// Items, each handled independently.
    pub items: Vec<CiphertextRequest>,
}

/// One item's result: either the output fields or `error`.
#[derive(Debug, Default, Serialize, Deserialize, ToSchema)]
pub struct BatchItem {
    /// Base64 envelope (seal, rewrap).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ciphertext: Option<String>,
    /// Key version (seal, rewrap).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key_version: Option<u32>,
    /// Base64 plaintext (unseal, data keys).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub plaintext: Option<String>,
    /// Base64 signature or MAC tag (sign, mac).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub signature: Option<String>,
    /// Whether it verified (verify, mac/verify).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub valid: Option<bool>,
    /// Why this item failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<ErrorDetail>,
}

/// Per-item results, in request order.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct BatchResponse {
    /// One result per item.
    pub results: Vec<BatchItem>,
}

/// The new primary version.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct RotateResponse {
    /// Version now sealing.
    pub version: u32,
}

/// Keyrings.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct KeyringList {
    /// Keyrings by name.
    pub keyrings: Vec<KeyringInfo>,
}

/// Create a keyring.
#[utoipa::path(post, path = "/v1/keyrings", tag = "keyrings", request_body = CreateKeyringRequest,
    responses((status = 201, body = KeyringInfo), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 409, body = ErrorBody),
        (status = 422, description = "custody_unsupported: resident keyrings need PKCS#11 custody", body = ErrorBody)),
    security(("bearer" = ["keys:manage"])))]
pub(super) async fn create_keyring(
    State(st): St,
    Extension(p): Extension<Principal>,
    ApiJson(req): ApiJson<CreateKeyringRequest>,
) -> ApiResult<(StatusCode, Json<KeyringInfo>)> {
    p.require("keys:manage")?;
    let alg = match &req.algorithm {
        Some(a) => KeyType::from_name(a)?,
        None => KeyType::Aead(Algorithm::Aes256Gcm),
    };
    let policy = req.policy.unwrap_or_default().apply(Policy::default());
    let name = KeyringName::new(req.name)?;
    let options = crate::keys::KeyringOptions {
        description: req.description.unwrap_or_default(),
        tags: req.tags.unwrap_or_default(),
        exportable: req.exportable == Some(true),
        convergent: req.convergent == Some(true),
        resident: req.resident == Some(true),
    };
    let info = st
        .keys
        .create_with(&p.actor(), &name, alg, policy, options)
        .await
        .map_err(|e| change_err(&st, e))?;
    Ok((StatusCode::CREATED, Json(info)))
}

/// List keyrings.
#[utoipa::path(get, path = "/v1/keyrings", tag = "keyrings",
    responses((status = 200, body = KeyringList), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)),
    security(("bearer" = ["keys:manage"])))]
pub(super) async fn list_keyrings(
    State(st): St,
    Extension(p): Extension<Principal>,
) -> ApiResult<Json<KeyringList>> {
    p.require("keys:manage")?;
    Ok(Json(KeyringList {
        keyrings: st.keys.list().await?,
    }))
}

/// Show a keyring and its versions.
#[utoipa::path(get, path = "/v1/keyrings/{name}", tag = "keyrings", params(("name" = String, Path, description = "Keyring name")),
    responses((status = 200, body = KeyringInfo), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("bearer" = ["keys:manage"])))]
pub(super) async fn show_keyring(
    State(st): St,
    Extension(p): Extension<Principal>,
    KeyringPath(name): KeyringPath,
) -> ApiResult<Json<KeyringInfo>> {
    p.require("keys:manage")?;
    Ok(Json(st.keys.show(&name).await?))
}

/// Rotate to a new primary version now.
#[utoipa::path(post, path = "/v1/keyrings/{name}/rotate", tag = "keyrings", params(("name" = String, Path, description = "Keyring name")),
    responses((status = 200, body = RotateResponse), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("bearer" = ["keys:manage"])))]
pub(super) async fn rotate_keyring(
    State(st): St,
    Extension(p): Extension<Principal>,
    KeyringPath(name): KeyringPath,
) -> ApiResult<Json<RotateResponse>> {
    p.require("keys:manage")?;
    Ok(Json(RotateResponse {
        version: st
            .keys
            .rotate(&p.actor(), &name)
            .await
            .map_err(|e| change_err(&st, e))?,
    }))
}

/// Revoke one version in an emergency.
#[utoipa::path(post, path = "/v1/keyrings/{name}/versions/{version}/revoke", tag = "keyrings",
    params(("name" = String, Path, description = "Keyring name"), ("version" = u32, Path, description = "Version")),
    responses((status = 200, body = KeyringInfo), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)),
    security(("bearer" = ["keys:manage"])))]
pub(super) async fn revoke_version(
    State(st): St,
    Extension(p): Extension<Principal>,
    ApiPath((name, version)): ApiPath<(String, u32)>,
) -> ApiResult<Json<KeyringInfo>> {
    p.require("keys:manage")?;
    let name = st.keys.resolve(&name).await?.into_owned();
    st.keys
        .revoke(&p.actor(), &name, version)
        .await
        .map_err(|e| match e {
            Error::UnknownVersion { .. } => {
                ApiError::new(StatusCode::NOT_FOUND, "not_found", e.to_string())
            }
            other => change_err(&st, other),
        })?;
    Ok(Json(st.keys.show(&name).await?))
}

/// Change the rotation policy (omitted fields keep their value).
#[utoipa::path(put, path = "/v1/keyrings/{name}/policy", tag = "keyrings", params(("name" = String, Path, description = "Keyring name")),
    request_body = PolicyRequest,
    responses((status = 200, body = KeyringInfo), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("bearer" = ["keys:manage"])))]
pub(super) async fn set_policy(
    State(st): St,
    Extension(p): Extension<Principal>,
    KeyringPath(name): KeyringPath,
    ApiJson(req): ApiJson<PolicyRequest>,
) -> ApiResult<Json<KeyringInfo>> {
    p.require("keys:manage")?;
    let current = st.keys.show(&name).await?.policy;
    st.keys
        .set_policy(&p.actor(), &name, req.apply(current))
        .await
        .map_err(|e| change_err(&st, e))?;
    Ok(Json(st.keys.show(&name).await?))
}

pub(super) fn version_of(env: &[u8]) -> u32 {
    fleetkey_crypto::envelope::Header::parse(env)
        .map(|(h, _)| h.key_version)
        .unwrap_or(0)
}

fn result_label(e: &ApiError) -> &'static str {
    e.detail.code
}

async fn seal_one(ring: &crate::keys::Keyring, req: &SealRequest) -> ApiResult<SealResponse> {
    let pt = zeroize::Zeroizing::new(b64("plaintext", &req.plaintext)?);
    let aad = binding(&req.aad, &req.context)?;
    let env = ring.seal(&pt, &aad).await?;
    Ok(SealResponse {
        key_version: version_of(&env),
        ciphertext: B64.encode(&env),
    })
}

async fn unseal_one(
    ring: &crate::keys::Keyring,
    req: &CiphertextRequest,
) -> ApiResult<UnsealResponse> {
    let env = b64("ciphertext", &req.ciphertext)?;
    let aad = binding(&req.aad, &req.context)?;
    let pt = zeroize::Zeroizing::new(ring.unseal(&env, &aad).await?);
    Ok(UnsealResponse {
        plaintext: B64.encode(&*pt),
    })
}

async fn rewrap_one(
    st: &AppState,
    p: &Principal,
    name: &str,
    req: &CiphertextRequest,
) -> ApiResult<SealResponse> {
    let env = b64("ciphertext", &req.ciphertext)?;
    let aad = binding(&req.aad, &req.context)?;
    let mut out = st
        .keys
        .rewrap(&p.actor(), name, &[env], &aad)
        .await
        .map_err(|e| change_err(st, e))?;
    let env = out
        .pop()
        .ok_or_else(|| ApiError::malformed("empty rewrap"))??;
    Ok(SealResponse {
        key_version: version_of(&env),
        ciphertext: B64.encode(&env),
    })
}

pub(super) fn count(
    st: &AppState,
    which: &prometheus::IntCounterVec,
    name: &str,
    r: Result<(), &ApiError>,
) {
    let label = match r {
        Ok(()) => "ok",
        Err(e) => result_label(e),
    };
    which.with_label_values(&[name, label]).inc();
    if matches!(r, Err(e) if e.detail.code == "cannot_open") {
        st.metrics.open_failures.with_label_values(&[name]).inc();
    }
}

/// Seal with the keyring's primary version.
#[utoipa::path(post, path = "/v1/keyrings/{name}/seal", tag = "crypto", params(("name" = String, Path, description = "Keyring name")),
    request_body = SealRequest,
    responses((status = 200, body = SealResponse), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 409, body = ErrorBody), (status = 413, body = ErrorBody), (status = 429, body = ErrorBody)),
    security(("bearer" = ["seal:{name}"])))]
pub(super) async fn seal(
    State(st): St,
    Extension(p): Extension<Principal>,
    KeyringPath(name): KeyringPath,
    ApiJson(req): ApiJson<SealRequest>,
) -> ApiResult<Json<SealResponse>> {
    p.require(&format!("seal:{name}"))?;
    let ring = st.keys.keyring(&name).await?;
    let r = seal_one(&ring, &req).await;
    count(&st, &st.metrics.seals, &name, r.as_ref().map(|_| ()));
    Ok(Json(r?))
}

/// Open an envelope sealed by this keyring.
#[utoipa::path(post, path = "/v1/keyrings/{name}/unseal", tag = "crypto", params(("name" = String, Path, description = "Keyring name")),
    request_body = CiphertextRequest,
    responses((status = 200, body = UnsealResponse), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)),
    security(("bearer" = ["unseal:{name}"])))]
pub(super) async fn unseal(
    State(st): St,
    Extension(p): Extension<Principal>,
    KeyringPath(name): KeyringPath,
    ApiJson(req): ApiJson<CiphertextRequest>,
) -> ApiResult<Json<UnsealResponse>> {
    p.require(&format!("unseal:{name}"))?;
    let ring = st.keys.keyring(&name).await?;
    let r = unseal_one(&ring, &req).await;
    count(&st, &st.metrics.unseals, &name, r.as_ref().map(|_| ()));
    Ok(Json(r?))
}

/// Reseal with the primary version; the plaintext never leaves the service.
#[utoipa::path(post, path = "/v1/keyrings/{name}/rewrap", tag = "crypto", params(("name" = String, Path, description = "Keyring name")),
    request_body = CiphertextRequest,
    responses((status = 200, body = SealResponse), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)),
    security(("bearer" = ["rewrap:{name}"])))]
pub(super) async fn rewrap(
    State(st): St,
    Extension(p): Extension<Principal>,
    KeyringPath(name): KeyringPath,
    ApiJson(req): ApiJson<CiphertextRequest>,
) -> ApiResult<Json<SealResponse>> {
    p.require(&format!("rewrap:{name}"))?;
    Ok(Json(rewrap_one(&st, &p, &name, &req).await?))
}

impl From<SealResponse> for BatchItem {
    fn from(s: SealResponse) -> Self {
        Self {
            ciphertext: Some(s.ciphertext),
            key_version: Some(s.key_version),
            ..Self::default()
        }
    }
}

impl From<UnsealResponse> for BatchItem {
    fn from(u: UnsealResponse) -> Self {
        Self {
            plaintext: Some(u.plaintext),
            ..Self::default()
        }
    }
}

impl From<ApiError> for BatchItem {
    fn from(e: ApiError) -> Self {
        Self {
            error: Some(e.detail),
            ..Self::default()
        }
    }
}

/// Turns per-item results into a batch response, counting them under `which`
/// (successes in one increment).
pub(super) fn collect<T: Into<BatchItem>>(
    st: &AppState,
    which: &prometheus::IntCounterVec,
    name: &str,
    results: Vec<ApiResult<T>>,
) -> BatchResponse {
    let mut ok = 0u64;
    let results = results
        .into_iter()
        .map(|r| match r {
            Ok(v) => {
                ok += 1;
                v.into()
            }
            Err(e) => {
                count(st, which, name, Err(&e));
                e.into()
            }
        })
        .collect();
    which.with_label_values(&[name, "ok"]).inc_by(ok);
    BatchResponse { results }
}

pub(super) fn check_batch(st: &AppState, n: usize) -> ApiResult<()> {
    if n > st.max_batch_items {
        return Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "too_large",
            format!("at most {} items per batch", st.max_batch_items),
        ));
    }
    Ok(())
}

/// Seal many items; each has its own result.
#[utoipa::path(post, path = "/v1/keyrings/{name}/seal/batch", tag = "crypto", params(("name" = String, Path, description = "Keyring name")),
    request_body = BatchSealRequest,
    responses((status = 200, body = BatchResponse), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 409, body = ErrorBody), (status = 413, body = ErrorBody)),
    security(("bearer" = ["seal:{name}"])))]
pub(super) async fn seal_batch(
    State(st): St,
    Extension(p): Extension<Principal>,
    KeyringPath(name): KeyringPath,
    ApiJson(req): ApiJson<BatchSealRequest>,
) -> ApiResult<Json<BatchResponse>> {
    p.require(&format!("seal:{name}"))?;
    check_batch(&st, req.items.len())?;
    let ring = st.keys.keyring(&name).await?;
    let mut results = Vec::with_capacity(req.items.len());
    for item in &req.items {
        results.push(seal_one(&ring, item).await);
    }
    Ok(Json(collect(&st, &st.metrics.seals, &name, results)))
}

/// Open many envelopes; each has its own result.
#[utoipa::path(post, path = "/v1/keyrings/{name}/unseal/batch", tag = "crypto", params(("name" = String, Path, description = "Keyring name")),
    request_body = BatchCiphertextRequest,
    responses((status = 200, body = BatchResponse), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 409, body = ErrorBody), (status = 413, body = ErrorBody)),
    security(("bearer" = ["unseal:{name}"])))]
pub(super) async fn unseal_batch(
    State(st): St,
    Extension(p): Extension<Principal>,
    KeyringPath(name): KeyringPath,
    ApiJson(req): ApiJson<BatchCiphertextRequest>,
) -> ApiResult<Json<BatchResponse>> {
    p.require(&format!("unseal:{name}"))?;
    check_batch(&st, req.items.len())?;
    let ring = st.keys.keyring(&name).await?;
    let mut results = Vec::with_capacity(req.items.len());
    for item in &req.items {
        results.push(unseal_one(&ring, item).await);
    }
    Ok(Json(collect(&st, &st.metrics.unseals, &name, results)))
}

/// Rewrap many envelopes; each has its own result.
#[utoipa::path(post, path = "/v1/keyrings/{name}/rewrap/batch", tag = "crypto", params(("name" = String, Path, description = "Keyring name")),
    request_body = BatchCiphertextRequest,
    responses((status = 200, body = BatchResponse), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 409, body = ErrorBody), (status = 413, body = ErrorBody)),
    security(("bearer" = ["rewrap:{name}"])))]
pub(super) async fn rewrap_batch(
    State(st): St,
    Extension(p): Extension<Principal>,
    KeyringPath(name): KeyringPath,
    ApiJson(req): ApiJson<BatchCiphertextRequest>,
) -> ApiResult<Json<BatchResponse>> {
    p.require(&format!("rewrap:{name}"))?;
    check_batch(&st, req.items.len())?;
    let mut envs = Vec::with_capacity(req.items.len());
    let mut decoded: Vec<ApiResult<()>> = Vec::with_capacity(req.items.len());
    let aad = req
        .items
        .first()
        .map(|i| binding(&i.aad, &i.context))
        .transpose()?
        .unwrap_or_default();
    for item in &req.items {
        if binding(&item.aad, &item.context)? != aad {
            return Err(ApiError::malformed(
                "all items of a rewrap batch must share one aad (or context)",
            ));
        }
        match b64("ciphertext", &item.ciphertext) {
            Ok(e) => {
                envs.push(e);
                decoded.push(Ok(()));
            }
            Err(e) => decoded.push(Err(e)),
        }
    }
    let mut out = st
        .keys
        .rewrap(&p.actor(), &name, &envs, &aad)
        .await
        .map_err(|e| change_err(&st, e))?
        .into_iter();
    let results = decoded
        .into_iter()
        .map(|d| {
            let r: ApiResult<Vec<u8>> = match d {
                Ok(()) => out
                    .next()
                    .unwrap_or_else(|| {
                        Err(Error::Invalid {
                            what: "batch",
                            why: "missing result".into(),
                        })
                    })
                    .map_err(ApiError::from),
                Err(e) => Err(e),
            };
            match r {
                Ok(env) => BatchItem::from(SealResponse {
                    key_version: version_of(&env),
                    ciphertext: B64.encode(&env),
                }),
                Err(e) => e.into(),
            }
        })
        .collect();
    Ok(Json(BatchResponse { results }))
}
