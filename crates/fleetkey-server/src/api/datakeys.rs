//! Data keys (envelope encryption: KMS GenerateDataKey and
//! GenerateDataKeyWithoutPlaintext), one at a time or in batches, and random
//! bytes from the service's generator.

use super::error::{ApiError, ApiResult, ErrorBody};
use super::extract::{ApiJson, ApiQuery, KeyringPath, binding};
use super::keyrings::{BatchItem, BatchResponse, check_batch, collect, count};
use super::{AppState, St};
use crate::tokens::Principal;
use axum::extract::State;
use axum::routing::{get, post};
use axum::{Extension, Json, Router};
use base64::{Engine as _, engine::general_purpose::STANDARD as B64};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::sync::Arc;
use utoipa::ToSchema;

/// Most bytes one `GET /v1/random` returns.
pub const MAX_RANDOM_BYTES: usize = 1024;

fn yes() -> bool {
    true
}

/// Make a data key.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DataKeyRequest {
    /// Base64 associated data the sealed key is bound to (unsealing it needs the same).
    #[serde(default)]
    pub aad: Option<String>,
    /// Encryption context the sealed key is bound to (docs/formats.md, "Encryption
    /// context"). Instead of `aad`, never with it.
    #[serde(default)]
    pub context: Option<BTreeMap<String, String>>,
    /// Whether the answer also holds the key in plaintext (default true); false is
    /// KMS's GenerateDataKeyWithoutPlaintext, for a key to be unsealed later, elsewhere.
    #[serde(default = "yes")]
    pub return_plaintext: bool,
}

/// A data key: sealed, and in plaintext when asked for.
#[derive(Serialize, Deserialize, ToSchema)]
pub struct DataKeyResponse {
    /// Base64 fk1 envelope of the key; `POST …/unseal` with the same aad or context
    /// returns the key.
    pub ciphertext: String,
    /// Key version that sealed it.
    pub key_version: u32,
    /// Base64 of the 32-byte key (absent when `return_plaintext` is false).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub plaintext: Option<String>,
}

impl std::fmt::Debug for DataKeyResponse {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DataKeyResponse")
            .field("key_version", &self.key_version)
            .field("plaintext", &self.plaintext.as_ref().map(|_| "<redacted>"))
            .finish_non_exhaustive()
    }
}

impl From<DataKeyResponse> for BatchItem {
    fn from(d: DataKeyResponse) -> Self {
        Self {
            ciphertext: Some(d.ciphertext),
            key_version: Some(d.key_version),
            plaintext: d.plaintext,
            ..Self::default()
        }
    }
}

/// Many data keys in one request.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BatchDataKeyRequest {
    /// Items, each answered with its own key (or error).
    pub items: Vec<DataKeyRequest>,
}

async fn one(ring: &crate::keys::Keyring, req: &DataKeyRequest) -> ApiResult<DataKeyResponse> {
    let aad = binding(&req.aad, &req.context)?;
    let dk = ring.data_key(&aad).await?;
    Ok(DataKeyResponse {
        key_version: dk.version,
        ciphertext: B64.encode(&dk.sealed),
        plaintext: req
            .return_plaintext
            .then(|| B64.encode(dk.plaintext.as_slice())),
    })
}

/// Make a fresh 256-bit data key, sealed under the keyring's primary version.
#[utoipa::path(post, path = "/v1/keyrings/{name}/datakey", tag = "crypto", params(("name" = String, Path, description = "Keyring name")),
    request_body = DataKeyRequest,
    responses((status = 200, body = DataKeyResponse), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)),
    security(("bearer" = ["datakey:{name}"])))]
pub(super) async fn datakey(
    State(st): St,
    Extension(p): Extension<Principal>,
    KeyringPath(name): KeyringPath,
    ApiJson(req): ApiJson<DataKeyRequest>,
) -> ApiResult<Json<DataKeyResponse>> {
    p.require(&format!("datakey:{name}"))?;
    let ring = st.keys.keyring(&name).await?;
    let r = one(&ring, &req).await;
    count(&st, &st.metrics.datakeys, &name, r.as_ref().map(|_| ()));
    Ok(Json(r?))
}

/// Make many data keys; each item has its own result.
#[utoipa::path(post, path = "/v1/keyrings/{name}/datakey/batch", tag = "crypto", params(("name" = String, Path, description = "Keyring name")),
    request_body = BatchDataKeyRequest,
    responses((status = 200, body = BatchResponse), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)),
    security(("bearer" = ["datakey:{name}"])))]
pub(super) async fn datakey_batch(
    State(st): St,
    Extension(p): Extension<Principal>,
    KeyringPath(name): KeyringPath,
    ApiJson(req): ApiJson<BatchDataKeyRequest>,
) -> ApiResult<Json<BatchResponse>> {
    p.require(&format!("datakey:{name}"))?;
    check_batch(&st, req.items.len())?;
    let ring = st.keys.keyring(&name).await?;
    let mut results = Vec::with_capacity(req.items.len());
    for item in &req.items {
        results.push(one(&ring, item).await);
    }
    Ok(Json(collect(&st, &st.metrics.datakeys, &name, results)))
}

/// How many random bytes.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct RandomQuery {
    /// 1 to 1024.
    pub bytes: usize,
}

/// Random bytes.
#[derive(Serialize, Deserialize, ToSchema)]
pub struct RandomResponse {
    /// Base64 of the bytes.
    pub random: String,
}

impl std::fmt::Debug for RandomResponse {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RandomResponse { random: <redacted> }")
    }
}

/// Random bytes from the service's system generator (for keys, salts, tokens
/// made elsewhere).
#[utoipa::path(get, path = "/v1/random", tag = "crypto", params(RandomQuery),
    responses((status = 200, body = RandomResponse), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)),
    security(("bearer" = ["random"])))]
pub(super) async fn random(
    State(st): St,
    Extension(p): Extension<Principal>,
    ApiQuery(q): ApiQuery<RandomQuery>,
) -> ApiResult<Json<RandomResponse>> {
    p.require("random")?;
    if !(1..=MAX_RANDOM_BYTES).contains(&q.bytes) {
        return Err(ApiError::malformed(format!(
            "bytes must be 1 to {MAX_RANDOM_BYTES}"
        )));
    }
    let mut out = zeroize::Zeroizing::new(vec![0u8; q.bytes]);
    fleetkey_crypto::rand::fill(&mut out).map_err(crate::Error::from)?;
    st.metrics.random_bytes.inc_by(q.bytes as u64);
    Ok(Json(RandomResponse {
        random: B64.encode(&*out),
    }))
}

/// This module's routes (behind the token check).
pub(super) fn routes() -> Router<Arc<AppState>> {
    Router::new()
        .route("/v1/keyrings/{name}/datakey", post(datakey))
        .route("/v1/keyrings/{name}/datakey/batch", post(datakey_batch))
        .route("/v1/random", get(random))
}

/// The OpenAPI paths of this module.
#[derive(utoipa::OpenApi)]
#[openapi(paths(datakey, datakey_batch, random))]
pub(super) struct DataKeysDoc;
