//! Signing and MAC keyrings over HTTP: sign and verify, MAC generate and verify
//! (each one at a time or in batches), and a signing keyring's public key as raw
//! bytes, PEM (SubjectPublicKeyInfo) or JWK.

use super::error::{ApiError, ApiResult, ErrorBody};
use super::extract::{ApiJson, ApiQuery, KeyringPath, b64};
use super::keyrings::{BatchItem, BatchResponse, check_batch, collect, count};
use super::{AppState, St};
use crate::keys::{Keyring, SignInput, Signed};
use crate::tokens::Principal;
use axum::extract::State;
use axum::routing::{get, post};
use axum::{Extension, Json, Router};
use base64::{Engine as _, engine::general_purpose::STANDARD as B64};
use fleetkey_crypto::prehash::{Digest, HashAlg};
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use utoipa::ToSchema;

/// A message to sign or MAC, or the digest of one (exactly one of the two).
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SignRequest {
    /// Base64 message (at most the body limit).
    #[serde(default)]
    pub message: Option<String>,
    /// Base64 digest of the message, signed in the algorithm's standard prehash
    /// mode (Ed25519ph; HashML-DSA-65). Not for the composite or MAC keyrings.
    #[serde(default)]
    pub digest: Option<String>,
    /// The digest's hash: `sha-512` (default; the only one for Ed25519ph) or
    /// `sha-256` (ML-DSA-65). Only with `digest`.
    #[serde(default)]
    pub hash: Option<String>,
}

/// A signature (or MAC tag) and the version that made it.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct SignResponse {
    /// Base64 signature (Ed25519: 64 bytes; ML-DSA-65: 3309; composite: 3373) or
    /// MAC tag (HMAC-SHA-256: 32; HMAC-SHA-512: 64).
    pub signature: String,
    /// Version whose key made it.
    pub key_version: u32,
}

/// A signature (or MAC tag) to check, over a message or (prehash mode) a digest.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct VerifyRequest {
    /// Base64 message.
    #[serde(default)]
    pub message: Option<String>,
    /// Base64 digest of the message, for a signature made from a digest.
    #[serde(default)]
    pub digest: Option<String>,
    /// The digest's hash: `sha-512` (default) or `sha-256`. Only with `digest`.
    #[serde(default)]
    pub hash: Option<String>,
    /// Base64 signature or tag.
    pub signature: String,
    /// The version to check with; omitted: every version that may still be used.
    #[serde(default)]
    pub key_version: Option<u32>,
}

/// Whether it verified.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct VerifyResponse {
    /// True when a usable version's key verifies it.
    pub valid: bool,
    /// That version.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key_version: Option<u32>,
}

/// Many messages.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BatchSignRequest {
    /// Items, each answered on its own.
    pub items: Vec<SignRequest>,
}

/// Many checks.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BatchVerifyRequest {
    /// Items, each answered on its own.
    pub items: Vec<VerifyRequest>,
}

impl From<SignResponse> for BatchItem {
    fn from(s: SignResponse) -> Self {
        Self {
            signature: Some(s.signature),
            key_version: Some(s.key_version),
            ..Self::default()
        }
    }
}

impl From<VerifyResponse> for BatchItem {
    fn from(v: VerifyResponse) -> Self {
        Self {
            valid: Some(v.valid),
            key_version: v.key_version,
            ..Self::default()
        }
    }
}

/// Sign or MAC.
#[derive(Clone, Copy)]
enum Op {
    Sign,
    Mac,
}

impl Op {
    fn scope(self, name: &str, verify: bool) -> String {
        match (self, verify) {
            (Op::Sign, false) => format!("sign:{name}"),
            (Op::Sign, true) => format!("verify:{name}"),
            (Op::Mac, _) => format!("mac:{name}"),
        }
    }
    fn counter(self, st: &AppState, verify: bool) -> &prometheus::IntCounterVec {
        match (self, verify) {
            (Op::Sign, false) => &st.metrics.signs,
            (Op::Sign, true) => &st.metrics.verifies,
            (Op::Mac, false) => &st.metrics.macs,
            (Op::Mac, true) => &st.metrics.mac_verifies,
        }
    }
}

/// A request's message or digest, decoded: exactly one of `message` and
/// `digest`; `hash` only with a digest, whose length must be the hash's.
fn sign_input(
    message: Option<&str>,
    digest: Option<&str>,
    hash: Option<&str>,
) -> ApiResult<SignInput> {
    match (message, digest, hash) {
        (Some(m), None, None) => Ok(SignInput::Message(b64("message", m)?)),
        (None, Some(d), hash) => {
            let alg = match hash {
                None => HashAlg::Sha512,
                Some(h) => HashAlg::parse(h).ok_or_else(|| {
                    ApiError::malformed(format!(
                        "hash: {h:?} is not one of {}",
                        HashAlg::NAMES.join(", ")
                    ))
                })?,
            };
            let bytes = b64("digest", d)?;
            let digest = Digest::new(alg, &bytes).map_err(|_| {
                ApiError::malformed(format!(
                    "digest: a {} digest is {} bytes, not {}",
                    alg.name(),
                    alg.output_len(),
                    bytes.len()
                ))
            })?;
            Ok(SignInput::Digest(digest))
        }
        (Some(_), Some(_), _) => Err(ApiError::malformed(
            "give the message or its digest, not both",
        )),
        (None, None, _) => Err(ApiError::malformed("give a message or a digest")),
        (Some(_), None, Some(_)) => Err(ApiError::malformed("hash goes with digest")),
    }
}

async fn make_one(ring: &Keyring, op: Op, req: &SignRequest) -> ApiResult<SignResponse> {
    let input = sign_input(
        req.message.as_deref(),
        req.digest.as_deref(),
        req.hash.as_deref(),
    )?;
    let msg = input.signable();
    let Signed { signature, version } = match op {
        Op::Sign => ring.sign(msg).await?,
        Op::Mac => ring.mac(msg).await?,
    };
    Ok(SignResponse {
        signature: B64.encode(signature),
        key_version: version,
    })
}

async fn check_one(ring: &Keyring, op: Op, req: &VerifyRequest) -> ApiResult<VerifyResponse> {
    let input = sign_input(
        req.message.as_deref(),
        req.digest.as_deref(),
        req.hash.as_deref(),
    )?;
    let msg = input.signable();
    let sig = b64("signature", &req.signature)?;
    let v = match op {
        Op::Sign => ring.verify(msg, &sig, req.key_version).await?,
        Op::Mac => ring.verify_mac(msg, &sig, req.key_version).await?,
    };
    Ok(VerifyResponse {
        valid: v.is_some(),
        key_version: v,
    })
}

async fn make(
    st: &AppState,
    p: &Principal,
    name: &str,
    op: Op,
    req: &SignRequest,
) -> ApiResult<Json<SignResponse>> {
    p.require(&op.scope(name, false))?;
    let ring = st.keys.keyring(name).await?;
    let r = make_one(&ring, op, req).await;
    count(st, op.counter(st, false), name, r.as_ref().map(|_| ()));
    r.map(Json)
}

async fn make_batch(
    st: &AppState,
    p: &Principal,
    name: &str,
    op: Op,
    items: &[SignRequest],
) -> ApiResult<Json<BatchResponse>> {
    p.require(&op.scope(name, false))?;
    check_batch(st, items.len())?;
    let ring = st.keys.keyring(name).await?;
    let mut out = Vec::with_capacity(items.len());
    for item in items {
        out.push(make_one(&ring, op, item).await);
    }
    Ok(Json(collect(st, op.counter(st, false), name, out)))
}

async fn check(
    st: &AppState,
    p: &Principal,
    name: &str,
    op: Op,
    req: &VerifyRequest,
) -> ApiResult<Json<VerifyResponse>> {
    p.require(&op.scope(name, true))?;
    let ring = st.keys.keyring(name).await?;
    let r = check_one(&ring, op, req).await;
    count(st, op.counter(st, true), name, r.as_ref().map(|_| ()));
    r.map(Json)
}

async fn check_batch_items(
    st: &AppState,
    p: &Principal,
    name: &str,
    op: Op,
    items: &[VerifyRequest],
) -> ApiResult<Json<BatchResponse>> {
    p.require(&op.scope(name, true))?;
    check_batch(st, items.len())?;
    let ring = st.keys.keyring(name).await?;
    let mut out = Vec::with_capacity(items.len());
    for item in items {
        out.push(check_one(&ring, op, item).await);
    }
    Ok(Json(collect(st, op.counter(st, true), name, out)))
}

/// Sign a message with the primary version of a signing keyring.
#[utoipa::path(post, path = "/v1/keyrings/{name}/sign", tag = "crypto", params(("name" = String, Path, description = "Keyring name")),
    request_body = SignRequest,
    responses((status = 200, body = SignResponse), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)),
    security(("bearer" = ["sign:{name}"])))]
pub(super) async fn sign(
    State(st): St,
    Extension(p): Extension<Principal>,
    KeyringPath(name): KeyringPath,
    ApiJson(req): ApiJson<SignRequest>,
) -> ApiResult<Json<SignResponse>> {
    make(&st, &p, &name, Op::Sign, &req).await
}

/// Sign many messages; each item has its own result.
#[utoipa::path(post, path = "/v1/keyrings/{name}/sign/batch", tag = "crypto", params(("name" = String, Path, description = "Keyring name")),
    request_body = BatchSignRequest,
    responses((status = 200, body = BatchResponse), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)),
    security(("bearer" = ["sign:{name}"])))]
pub(super) async fn sign_batch(
    State(st): St,
    Extension(p): Extension<Principal>,
    KeyringPath(name): KeyringPath,
    ApiJson(req): ApiJson<BatchSignRequest>,
) -> ApiResult<Json<BatchResponse>> {
    make_batch(&st, &p, &name, Op::Sign, &req.items).await
}

/// Verify a signature made by a signing keyring.
#[utoipa::path(post, path = "/v1/keyrings/{name}/verify", tag = "crypto", params(("name" = String, Path, description = "Keyring name")),
    request_body = VerifyRequest,
    responses((status = 200, body = VerifyResponse), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)),
    security(("bearer" = ["verify:{name}"])))]
pub(super) async fn verify(
    State(st): St,
    Extension(p): Extension<Principal>,
    KeyringPath(name): KeyringPath,
    ApiJson(req): ApiJson<VerifyRequest>,
) -> ApiResult<Json<VerifyResponse>> {
    check(&st, &p, &name, Op::Sign, &req).await
}

/// Verify many signatures; each item has its own result.
#[utoipa::path(post, path = "/v1/keyrings/{name}/verify/batch", tag = "crypto", params(("name" = String, Path, description = "Keyring name")),
    request_body = BatchVerifyRequest,
    responses((status = 200, body = BatchResponse), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)),
    security(("bearer" = ["verify:{name}"])))]
pub(super) async fn verify_batch(
    State(st): St,
    Extension(p): Extension<Principal>,
    KeyringPath(name): KeyringPath,
    ApiJson(req): ApiJson<BatchVerifyRequest>,
) -> ApiResult<Json<BatchResponse>> {
    check_batch_items(&st, &p, &name, Op::Sign, &req.items).await
}

/// The MAC tag of a message with the primary version of a MAC keyring.
#[utoipa::path(post, path = "/v1/keyrings/{name}/mac", tag = "crypto", params(("name" = String, Path, description = "Keyring name")),
    request_body = SignRequest,
    responses((status = 200, body = SignResponse), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)),
    security(("bearer" = ["mac:{name}"])))]
pub(super) async fn mac(
    State(st): St,
    Extension(p): Extension<Principal>,
    KeyringPath(name): KeyringPath,
    ApiJson(req): ApiJson<SignRequest>,
) -> ApiResult<Json<SignResponse>> {
    make(&st, &p, &name, Op::Mac, &req).await
}

/// MAC tags of many messages; each item has its own result.
#[utoipa::path(post, path = "/v1/keyrings/{name}/mac/batch", tag = "crypto", params(("name" = String, Path, description = "Keyring name")),
    request_body = BatchSignRequest,
    responses((status = 200, body = BatchResponse), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)),
    security(("bearer" = ["mac:{name}"])))]
pub(super) async fn mac_batch(
    State(st): St,
    Extension(p): Extension<Principal>,
    KeyringPath(name): KeyringPath,
    ApiJson(req): ApiJson<BatchSignRequest>,
) -> ApiResult<Json<BatchResponse>> {
    make_batch(&st, &p, &name, Op::Mac, &req.items).await
}

/// Check a MAC tag (in constant time).
#[utoipa::path(post, path = "/v1/keyrings/{name}/mac/verify", tag = "crypto", params(("name" = String, Path, description = "Keyring name")),
    request_body = VerifyRequest,
    responses((status = 200, body = VerifyResponse), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)),
    security(("bearer" = ["mac:{name}"])))]
pub(super) async fn mac_verify(
    State(st): St,
    Extension(p): Extension<Principal>,
    KeyringPath(name): KeyringPath,
    ApiJson(req): ApiJson<VerifyRequest>,
) -> ApiResult<Json<VerifyResponse>> {
    check(&st, &p, &name, Op::Mac, &req).await
}

/// Check many MAC tags; each item has its own result.
#[utoipa::path(post, path = "/v1/keyrings/{name}/mac/verify/batch", tag = "crypto", params(("name" = String, Path, description = "Keyring name")),
    request_body = BatchVerifyRequest,
    responses((status = 200, body = BatchResponse), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)),
    security(("bearer" = ["mac:{name}"])))]
pub(super) async fn mac_verify_batch(
    State(st): St,
    Extension(p): Extension<Principal>,
    KeyringPath(name): KeyringPath,
    ApiJson(req): ApiJson<BatchVerifyRequest>,
) -> ApiResult<Json<BatchResponse>> {
    check_batch_items(&st, &p, &name, Op::Mac, &req.items).await
}

/// Which version and form of a public key.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct PublicKeyQuery {
    /// Version (default: the primary).
    #[serde(default)]
    pub version: Option<u32>,
    /// `raw` (default: base64 of the key bytes), `pem` (SubjectPublicKeyInfo;
    /// Ed25519 and ML-DSA-65), `jwk` (Ed25519, RFC 8037) or `fk1r` (x-wing: the
    /// recipient string to seal to).
    #[serde(default)]
    pub format: Option<String>,
}

/// A signing keyring's public key.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct PublicKeyResponse {
    /// Key type (`ed25519`, `ml-dsa-65`, `ed25519+ml-dsa-65`).
    pub algorithm: String,
    /// Version.
    pub key_version: u32,
    /// `raw`, `pem` or `jwk`.
    pub format: String,
    /// Base64 of the key (`raw`), PEM text (`pem`), or a JWK object (`jwk`).
    #[schema(value_type = Object)]
    pub public_key: serde_json::Value,
}

/// The public key of a signing keyring's version, for verifying offline.
#[utoipa::path(get, path = "/v1/keyrings/{name}/public-key", tag = "crypto", params(("name" = String, Path, description = "Keyring name"), PublicKeyQuery),
    responses((status = 200, body = PublicKeyResponse), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)),
    security(("bearer" = ["verify:{name}"])))]
pub(super) async fn public_key(
    State(st): St,
    Extension(p): Extension<Principal>,
    KeyringPath(name): KeyringPath,
    ApiQuery(q): ApiQuery<PublicKeyQuery>,
) -> ApiResult<Json<PublicKeyResponse>> {
    p.require(&format!("verify:{name}"))?;
    let ring = st.keys.keyring(&name).await?;
    let (version, pk) = ring.public_key(q.version).await?;
    let kind = ring.key_type();
    let format = q.format.as_deref().unwrap_or("raw");
    let public_key = crate::keys::public_key_form(kind, &pk, format)?;
    Ok(Json(PublicKeyResponse {
        algorithm: kind.name().to_owned(),
        key_version: version,
        format: format.to_owned(),
        public_key,
    }))
}

/// This module's routes (behind the token check).
pub(super) fn routes() -> Router<Arc<AppState>> {
    Router::new()
        .route("/v1/keyrings/{name}/sign", post(sign))
        .route("/v1/keyrings/{name}/sign/batch", post(sign_batch))
        .route("/v1/keyrings/{name}/verify", post(verify))
        .route("/v1/keyrings/{name}/verify/batch", post(verify_batch))
        .route("/v1/keyrings/{name}/mac", post(mac))
        .route("/v1/keyrings/{name}/mac/batch", post(mac_batch))
        .route("/v1/keyrings/{name}/mac/verify", post(mac_verify))
        .route(
            "/v1/keyrings/{name}/mac/verify/batch",
            post(mac_verify_batch),
        )
        .route("/v1/keyrings/{name}/public-key", get(public_key))
}

/// The OpenAPI paths of this module.
#[derive(utoipa::OpenApi)]
#[openapi(paths(
    sign,
    sign_batch,
    verify,
    verify_batch,
    mac,
    mac_batch,
    mac_verify,
    mac_verify_batch,
    public_key
))]
pub(super) struct SigningDoc;
