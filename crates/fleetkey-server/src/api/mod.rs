//! The HTTP API (axum), versioned under `/v1`. This module is an edge: it parses,
//! authorises, rate-limits and maps errors; every rule lives in the domain modules.
//!
//! Every `/v1` route needs a bearer token with the route's scope; `/healthz`,
//! `/readyz`, `/metrics` and `/v1/openapi.json` are open. The OpenAPI 3.1 document is
//! generated from the handlers below ([`ApiDoc`]).

pub mod admission;
pub mod devices;
pub mod error;
pub mod http;
pub mod ingest;
pub mod listener;
pub mod metrics;
mod openapi;
pub mod ratelimit;
pub use openapi::openapi_document;
pub mod refusals;
pub mod server;

use crate::Error;
use crate::keys::{KeyService, KeyringInfo};
use crate::store::Policy;
use crate::tokens::{Principal, TokenService};
use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{FromRequest, FromRequestParts, MatchedPath, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, request::Parts};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::{Extension, Json, Router};
use base64::{Engine as _, engine::general_purpose::STANDARD as B64};
use error::{ApiError, ApiResult, ErrorBody, ErrorDetail};
use fleetkey_crypto::aead::Algorithm;
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use std::time::Instant;
use utoipa::{OpenApi, ToSchema};

/// Shared state of the HTTP layer.
pub struct AppState {
    /// Keyrings.
    pub keys: Arc<KeyService>,
    /// Tokens.
    pub tokens: Arc<TokenService>,
    /// Rate limits.
    pub limits: ratelimit::RateLimits,
    /// Metrics.
    pub metrics: metrics::Metrics,
    /// Most items in one batch request.
    pub max_batch_items: usize,
    /// Fleets and devices.
    pub fleets: Arc<crate::fleet::FleetService>,
    /// Constrained-device frames (set when the server starts its ingest path).
    pub ingest: std::sync::OnceLock<Arc<crate::ingest::FrameIngest>>,
    /// Coordination with other instances (set when Redis is configured).
    pub coord: std::sync::OnceLock<Arc<crate::coord::Coordinator>>,
    /// How long a handler waits for a request body.
    pub body_timeout: std::time::Duration,
    /// Largest body on routes that need no token.
    pub max_unauthenticated_body_bytes: usize,
}

type St = State<Arc<AppState>>;

// ------------------------------------------------------------------ extractors

/// JSON body whose rejections become JSON errors (400, 413).
pub struct ApiJson<T>(pub T);

impl<T: serde::de::DeserializeOwned> FromRequest<Arc<AppState>> for ApiJson<T> {
    type Rejection = ApiError;
    async fn from_request(req: Request, state: &Arc<AppState>) -> Result<Self, Self::Rejection> {
        if !is_json(req.headers()) {
            return Err(ApiError::malformed("send Content-Type: application/json"));
        }
        // The whole body within the deadline: a client trickling bytes cannot hold
        // the handler (and its buffer) open.
        let read = axum::body::Bytes::from_request(req, state);
        let bytes = match tokio::time::timeout(state.body_timeout, read).await {
            Ok(Ok(b)) => b,
            Ok(Err(r)) if r.status() == StatusCode::PAYLOAD_TOO_LARGE => {
                return Err(ApiError::new(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "too_large",
                    "request body is larger than the configured limit",
                ));
            }
            Ok(Err(r)) => return Err(ApiError::malformed(r.body_text())),
            Err(_) => {
                return Err(ApiError::new(
                    StatusCode::REQUEST_TIMEOUT,
                    "timeout",
                    format!(
                        "the request body did not arrive within {} s",
                        state.body_timeout.as_secs()
                    ),
                ));
            }
        };
        // Every request body is an object (serde would also fill a struct from an
        // array: `[null]` once cleared a rotation policy).
        if bytes.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
            return Err(ApiError::malformed(
                "the request body must be a JSON object",
            ));
        }
        let mut v: serde_json::Value = serde_json::from_slice(&bytes)
            .map_err(|e| ApiError::malformed(format!("invalid request body: {e}")))?;
        integral_numbers(&mut v, 0);
        serde_json::from_value(v)
            .map(ApiJson)
            .map_err(|e| ApiError::malformed(format!("invalid request body: {e}")))
    }
}

/// JSON does not tell `1` from `1.0`, and JSON Schema calls both integers: a
/// number with no fractional part that fits 64 bits is read as an integer
/// wherever the body has one (serde would refuse `1.0` for an integer field).
fn integral_numbers(v: &mut serde_json::Value, depth: usize) {
    use serde_json::Value;
    // serde_json's parser already bounds nesting (128 levels); this follows it.
    if depth > 128 {
        return;
    }
    match v {
        Value::Number(n) if n.is_f64() => {
            if let Some(f) = n.as_f64()
                && f.fract() == 0.0
            {
                // Exactly representable within ±2^63 only (casts saturate).
                if (-9.223_372_036_854_776e18..9.223_372_036_854_776e18).contains(&f) {
                    #[allow(clippy::cast_possible_truncation)]
                    let i = f as i64;
                    *v = Value::from(i);
                } else if (0.0..1.844_674_407_370_955_2e19).contains(&f) {
                    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
                    let u = f as u64;
                    *v = Value::from(u);
                }
            }
        }
        Value::Array(a) => a.iter_mut().for_each(|x| integral_numbers(x, depth + 1)),
        Value::Object(o) => o.values_mut().for_each(|x| integral_numbers(x, depth + 1)),
        _ => {}
    }
}

/// Whether the request says its body is JSON (`application/json`, or a
/// `+json` media type, parameters allowed).
fn is_json(headers: &HeaderMap) -> bool {
    headers
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|v| {
            let essence = v
                .split(';')
                .next()
                .unwrap_or("")
                .trim()
                .to_ascii_lowercase();
            essence == "application/json"
                || (essence.starts_with("application/") && essence.ends_with("+json"))
        })
        .unwrap_or(false)
}

/// Path parameters whose rejections become JSON 400s.
pub struct ApiPath<T>(pub T);

impl<S: Send + Sync, T: serde::de::DeserializeOwned + Send> FromRequestParts<S> for ApiPath<T> {
    type Rejection = ApiError;
    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        axum::extract::Path::<T>::from_request_parts(parts, state)
            .await
            .map(|p| ApiPath(p.0))
            .map_err(|e: PathRejection| ApiError::malformed(e.body_text()))
    }
}

/// Query parameters whose rejections become JSON 400s.
pub struct ApiQuery<T>(pub T);

impl<S: Send + Sync, T: serde::de::DeserializeOwned> FromRequestParts<S> for ApiQuery<T> {
    type Rejection = ApiError;
    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        axum::extract::Query::<T>::from_request_parts(parts, state)
            .await
            .map(|q| ApiQuery(q.0))
            .map_err(|e: QueryRejection| ApiError::malformed(e.body_text()))
    }
}

fn b64(field: &str, s: &str) -> ApiResult<Vec<u8>> {
    B64.decode(s).map_err(|_| {
        ApiError::malformed(format!(
            "{field} is not valid base64 (RFC 4648, with padding)"
        ))
    })
}

fn opt_b64(field: &str, s: &Option<String>) -> ApiResult<Vec<u8>> {
    s.as_deref()
        .map(|v| b64(field, v))
        .transpose()
        .map(Option::unwrap_or_default)
}

// ------------------------------------------------------------------ DTOs

/// Create a keyring.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateKeyringRequest {
    /// Name (docs/operations.md#names: 1–64 of `A-Z a-z 0-9 - _ .`, starting with a
    /// letter or a digit); also the key id in envelopes.
    pub name: String,
    /// `aes-256-gcm` (default), `chacha20-poly1305` or `aes-256-gcm-siv`.
    #[serde(default)]
    pub algorithm: Option<String>,
    /// Policy; omitted fields take the defaults.
    #[serde(default)]
    pub policy: Option<PolicyRequest>,
}

/// Policy fields; omitted ones keep their current (or default) value.
#[derive(Debug, Default, Deserialize, ToSchema)]
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
    fn apply(&self, mut p: Policy) -> Policy {
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
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SealRequest {
    /// Base64 plaintext.
    pub plaintext: String,
    /// Base64 associated data (authenticated, not stored).
    #[serde(default)]
    pub aad: Option<String>,
}

/// A sealed envelope.
#[derive(Debug, Serialize, ToSchema)]
pub struct SealResponse {
    /// Base64 of the binary fk1 envelope.
    pub ciphertext: String,
    /// Key version that sealed it.
    pub key_version: u32,
}

/// An envelope to open or rewrap.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CiphertextRequest {
    /// Base64 of the binary fk1 envelope.
    pub ciphertext: String,
    /// Base64 associated data given when sealing.
    #[serde(default)]
    pub aad: Option<String>,
}

/// Opened plaintext.
#[derive(Debug, Serialize, ToSchema)]
pub struct UnsealResponse {
    /// Base64 plaintext.
    pub plaintext: String,
}

/// Many seals in one request.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BatchSealRequest {
    /// Items, each sealed independently.
    pub items: Vec<SealRequest>,
}

/// Many opens or rewraps in one request.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BatchCiphertextRequest {
    /// Items, each handled independently.
    pub items: Vec<CiphertextRequest>,
}

/// One item's result: either the output fields or `error`.
#[derive(Debug, Serialize, ToSchema)]
pub struct BatchItem {
    /// Base64 envelope (seal, rewrap).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ciphertext: Option<String>,
    /// Key version (seal, rewrap).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key_version: Option<u32>,
    /// Base64 plaintext (unseal).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub plaintext: Option<String>,
    /// Why this item failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<ErrorDetail>,
}

/// Per-item results, in request order.
#[derive(Debug, Serialize, ToSchema)]
pub struct BatchResponse {
    /// One result per item.
    pub results: Vec<BatchItem>,
}

/// The new primary version.
#[derive(Debug, Serialize, ToSchema)]
pub struct RotateResponse {
    /// Version now sealing.
    pub version: u32,
}

/// Keyrings.
#[derive(Debug, Serialize, ToSchema)]
pub struct KeyringList {
    /// Keyrings by name.
    pub keyrings: Vec<KeyringInfo>,
}

/// A page of the audit log.
#[derive(Debug, Serialize, ToSchema)]
pub struct AuditPage {
    /// Entries with `seq > after`, oldest first (the export line format).
    #[schema(value_type = Vec<Object>)]
    pub entries: Vec<crate::audit::AuditEntry>,
    /// Pass as `after` for the next page; absent at the end.
    pub next_after: Option<u64>,
}

/// Paging parameters.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct AuditQuery {
    /// Return entries after this sequence number (default 0).
    pub after: Option<u64>,
    /// At most this many entries (1–1000, default 100).
    pub limit: Option<u32>,
}

/// A token to create.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateTokenRequest {
    /// Label.
    pub name: String,
    /// Scopes (`admin`, `keys:manage`, `seal:<keyring>`, `unseal:<keyring>`,
    /// `rewrap:<keyring>`, `audit:read`, `tokens:manage`; `prefix*` wildcards).
    /// Each must be covered by the requesting token's own scopes (403 otherwise).
    pub scopes: Vec<String>,
    /// Lifetime in seconds; none = until revoked. Capped at the requesting token's
    /// remaining life.
    #[serde(default)]
    pub ttl_secs: Option<i64>,
}

/// A token as listed (never the secret).
#[derive(Debug, Serialize, ToSchema)]
pub struct TokenInfo {
    /// Public id.
    pub id: String,
    /// Label.
    pub name: String,
    /// Scopes.
    pub scopes: Vec<String>,
    /// Creation time (Unix seconds).
    pub created_at: i64,
    /// Expiry.
    pub expires_at: Option<i64>,
    /// Revocation time.
    pub revoked_at: Option<i64>,
}

impl From<crate::store::TokenRecord> for TokenInfo {
    fn from(t: crate::store::TokenRecord) -> Self {
        Self {
            id: t.id,
            name: t.name,
            scopes: t.scopes,
            created_at: t.created_at,
            expires_at: t.expires_at,
            revoked_at: t.revoked_at,
        }
    }
}

/// A new token: the secret is shown only here.
#[derive(Debug, Serialize, ToSchema)]
pub struct CreatedToken {
    /// The token.
    #[serde(flatten)]
    pub info: TokenInfo,
    /// The secret (`fkt_…`); store it now, it cannot be shown again.
    pub token: String,
}

/// Tokens.
#[derive(Debug, Serialize, ToSchema)]
pub struct TokenList {
    /// All tokens.
    pub tokens: Vec<TokenInfo>,
}

// ------------------------------------------------------------------ handlers

/// Create a keyring.
#[utoipa::path(post, path = "/v1/keyrings", tag = "keyrings", request_body = CreateKeyringRequest,
    responses((status = 201, body = KeyringInfo), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 409, body = ErrorBody)),
    security(("bearer" = ["keys:manage"])))]
async fn create_keyring(
    State(st): St,
    Extension(p): Extension<Principal>,
    ApiJson(req): ApiJson<CreateKeyringRequest>,
) -> ApiResult<(StatusCode, Json<KeyringInfo>)> {
    p.require("keys:manage")?;
    let alg = match &req.algorithm {
        Some(a) => Algorithm::from_name(a)
            .map_err(|_| ApiError::malformed(format!("unknown algorithm {a:?}")))?,
        None => Algorithm::Aes256Gcm,
    };
    let policy = req.policy.unwrap_or_default().apply(Policy::default());
    let info = st
        .keys
        .create(&p.actor(), &req.name, alg, policy)
        .await
        .map_err(|e| change_err(&st, e))?;
    Ok((StatusCode::CREATED, Json(info)))
}

/// List keyrings.
#[utoipa::path(get, path = "/v1/keyrings", tag = "keyrings",
    responses((status = 200, body = KeyringList), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)),
    security(("bearer" = ["keys:manage"])))]
async fn list_keyrings(
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
async fn show_keyring(
    State(st): St,
    Extension(p): Extension<Principal>,
    ApiPath(name): ApiPath<String>,
) -> ApiResult<Json<KeyringInfo>> {
    p.require("keys:manage")?;
    Ok(Json(st.keys.show(&name).await?))
}

/// Rotate to a new primary version now.
#[utoipa::path(post, path = "/v1/keyrings/{name}/rotate", tag = "keyrings", params(("name" = String, Path, description = "Keyring name")),
    responses((status = 200, body = RotateResponse), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("bearer" = ["keys:manage"])))]
async fn rotate_keyring(
    State(st): St,
    Extension(p): Extension<Principal>,
    ApiPath(name): ApiPath<String>,
) -> ApiResult<Json<RotateResponse>> {
    p.require("keys:manage")?;
    Ok(Json(RotateResponse {
        version: st
            .keys
            .rotate(&p.actor(), &name)
            .await
            .map_err(|e| change_err(&st, e))
            .inspect(|_| {
                st.metrics
                    .key_rotations
                    .with_label_values(&["keyring"])
                    .inc();
            })?,
    }))
}

/// Revoke one version in an emergency.
#[utoipa::path(post, path = "/v1/keyrings/{name}/versions/{version}/revoke", tag = "keyrings",
    params(("name" = String, Path, description = "Keyring name"), ("version" = u32, Path, description = "Version")),
    responses((status = 200, body = KeyringInfo), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)),
    security(("bearer" = ["keys:manage"])))]
async fn revoke_version(
    State(st): St,
    Extension(p): Extension<Principal>,
    ApiPath((name, version)): ApiPath<(String, u32)>,
) -> ApiResult<Json<KeyringInfo>> {
    p.require("keys:manage")?;
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
async fn set_policy(
    State(st): St,
    Extension(p): Extension<Principal>,
    ApiPath(name): ApiPath<String>,
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

/// Maps the error of a state change. Every change is written in one transaction
/// with its audit entry, so a store failure here is an audit write failure.
fn change_err(st: &AppState, e: Error) -> ApiError {
    if matches!(e, Error::Store(_)) {
        st.metrics.audit_write_failures.inc();
    }
    e.into()
}

fn version_of(env: &[u8]) -> u32 {
    fleetkey_crypto::envelope::Header::parse(env)
        .map(|(h, _)| h.key_version)
        .unwrap_or(0)
}

fn result_label(e: &ApiError) -> &'static str {
    e.detail.code
}

async fn seal_one(ring: &crate::keys::Keyring, req: &SealRequest) -> ApiResult<SealResponse> {
    let pt = zeroize::Zeroizing::new(b64("plaintext", &req.plaintext)?);
    let aad = opt_b64("aad", &req.aad)?;
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
    let aad = opt_b64("aad", &req.aad)?;
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
    let aad = opt_b64("aad", &req.aad)?;
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

fn count(st: &AppState, which: &prometheus::IntCounterVec, name: &str, r: Result<(), &ApiError>) {
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
        (status = 404, body = ErrorBody), (status = 413, body = ErrorBody), (status = 429, body = ErrorBody)),
    security(("bearer" = ["seal:{name}"])))]
async fn seal(
    State(st): St,
    Extension(p): Extension<Principal>,
    ApiPath(name): ApiPath<String>,
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
        (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)),
    security(("bearer" = ["unseal:{name}"])))]
async fn unseal(
    State(st): St,
    Extension(p): Extension<Principal>,
    ApiPath(name): ApiPath<String>,
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
        (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)),
    security(("bearer" = ["rewrap:{name}"])))]
async fn rewrap(
    State(st): St,
    Extension(p): Extension<Principal>,
    ApiPath(name): ApiPath<String>,
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
            plaintext: None,
            error: None,
        }
    }
}

impl From<UnsealResponse> for BatchItem {
    fn from(u: UnsealResponse) -> Self {
        Self {
            ciphertext: None,
            key_version: None,
            plaintext: Some(u.plaintext),
            error: None,
        }
    }
}

impl From<ApiError> for BatchItem {
    fn from(e: ApiError) -> Self {
        Self {
            ciphertext: None,
            key_version: None,
            plaintext: None,
            error: Some(e.detail),
        }
    }
}

/// Turns per-item results into a batch response, counting them under `which`
/// (successes in one increment).
fn collect<T: Into<BatchItem>>(
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

fn check_batch(st: &AppState, n: usize) -> ApiResult<()> {
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
        (status = 404, body = ErrorBody), (status = 413, body = ErrorBody)),
    security(("bearer" = ["seal:{name}"])))]
async fn seal_batch(
    State(st): St,
    Extension(p): Extension<Principal>,
    ApiPath(name): ApiPath<String>,
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
        (status = 404, body = ErrorBody), (status = 413, body = ErrorBody)),
    security(("bearer" = ["unseal:{name}"])))]
async fn unseal_batch(
    State(st): St,
    Extension(p): Extension<Principal>,
    ApiPath(name): ApiPath<String>,
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
        (status = 404, body = ErrorBody), (status = 413, body = ErrorBody)),
    security(("bearer" = ["rewrap:{name}"])))]
async fn rewrap_batch(
    State(st): St,
    Extension(p): Extension<Principal>,
    ApiPath(name): ApiPath<String>,
    ApiJson(req): ApiJson<BatchCiphertextRequest>,
) -> ApiResult<Json<BatchResponse>> {
    p.require(&format!("rewrap:{name}"))?;
    check_batch(&st, req.items.len())?;
    let mut envs = Vec::with_capacity(req.items.len());
    let mut decoded: Vec<ApiResult<()>> = Vec::with_capacity(req.items.len());
    let aad = req
        .items
        .first()
        .map(|i| opt_b64("aad", &i.aad))
        .transpose()?
        .unwrap_or_default();
    for item in &req.items {
        if opt_b64("aad", &item.aad)? != aad {
            return Err(ApiError::malformed(
                "all items of a rewrap batch must share one aad",
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

/// A page of the audit log.
#[utoipa::path(get, path = "/v1/audit", tag = "audit", params(AuditQuery),
    responses((status = 200, body = AuditPage), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)),
    security(("bearer" = ["audit:read"])))]
async fn audit_page(
    State(st): St,
    Extension(p): Extension<Principal>,
    ApiQuery(q): ApiQuery<AuditQuery>,
) -> ApiResult<Json<AuditPage>> {
    p.require("audit:read")?;
    let limit = q.limit.unwrap_or(100);
    if limit == 0 || limit > 1000 {
        return Err(ApiError::malformed("limit must be between 1 and 1000"));
    }
    if q.after.is_some_and(|a| i64::try_from(a).is_err()) {
        return Err(ApiError::malformed("after must be at most 2^63 - 1"));
    }
    let entries = st
        .keys
        .store()
        .audit_entries(q.after.unwrap_or(0), limit)
        .await?;
    let next_after = (entries.len() == limit as usize)
        .then(|| entries.last().map(|e| e.seq))
        .flatten();
    Ok(Json(AuditPage {
        entries,
        next_after,
    }))
}

/// Sign the audit head now and return the checkpoint.
#[utoipa::path(get, path = "/v1/audit/checkpoint", tag = "audit",
    responses((status = 200, body = Object), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("bearer" = ["audit:read"])))]
async fn audit_checkpoint(
    State(st): St,
    Extension(p): Extension<Principal>,
) -> ApiResult<Json<crate::audit::Checkpoint>> {
    p.require("audit:read")?;
    match st.keys.checkpoint().await? {
        Some(c) => Ok(Json(c)),
        None => Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            "the audit log is empty",
        )),
    }
}

/// The service's composite audit-signing public key, as `fleetkey audit
/// public-key` writes it.
#[derive(Debug, Serialize, ToSchema)]
pub struct AuditPublicKey {
    /// `fk1sig:` followed by the key in unpadded URL-safe base64.
    pub public_key: String,
}

/// The public key that verifies audit checkpoints (for `fleetkey audit verify`).
#[utoipa::path(get, path = "/v1/audit/public-key", tag = "audit",
    responses((status = 200, body = AuditPublicKey), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)),
    security(("bearer" = ["audit:read"])))]
async fn audit_public_key(
    State(st): St,
    Extension(p): Extension<Principal>,
) -> ApiResult<Json<AuditPublicKey>> {
    p.require("audit:read")?;
    Ok(Json(AuditPublicKey {
        public_key: crate::audit::verify::public_key_text(&st.keys.public_key()),
    }))
}

/// Create a token (the secret is in the response only).
#[utoipa::path(post, path = "/v1/tokens", tag = "tokens", request_body = CreateTokenRequest,
    responses((status = 201, body = CreatedToken), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)),
    security(("bearer" = ["tokens:manage"])))]
async fn create_token(
    State(st): St,
    Extension(p): Extension<Principal>,
    ApiJson(req): ApiJson<CreateTokenRequest>,
) -> ApiResult<(StatusCode, Json<CreatedToken>)> {
    // A token hands out only scopes its own cover, for no longer than it lives.
    let (record, secret) = st
        .tokens
        .create_for(&p, &req.name, req.scopes, req.ttl_secs)
        .await
        .map_err(|e| change_err(&st, e))?;
    Ok((
        StatusCode::CREATED,
        Json(CreatedToken {
            info: record.into(),
            token: secret.to_string(),
        }),
    ))
}

/// List tokens (never their secrets).
#[utoipa::path(get, path = "/v1/tokens", tag = "tokens",
    responses((status = 200, body = TokenList), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)),
    security(("bearer" = ["tokens:manage"])))]
async fn list_tokens(
    State(st): St,
    Extension(p): Extension<Principal>,
) -> ApiResult<Json<TokenList>> {
    Ok(Json(TokenList {
        tokens: st
            .tokens
            .list_for(&p)
            .await?
            .into_iter()
            .map(Into::into)
            .collect(),
    }))
}

/// Revoke a token.
#[utoipa::path(post, path = "/v1/tokens/{id}/revoke", tag = "tokens", params(("id" = String, Path, description = "Token id (tok_…)")),
    responses((status = 204), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("bearer" = ["tokens:manage"])))]
async fn revoke_token(
    State(st): St,
    Extension(p): Extension<Principal>,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<StatusCode> {
    st.tokens
        .revoke_for(&p, &id)
        .await
        .map_err(|e| change_err(&st, e))?;
    invalidate(&st, crate::coord::Invalidation::Token { id });
    Ok(StatusCode::NO_CONTENT)
}

// ------------------------------------------------------------------ fleets and devices

/// Create a fleet.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateFleetRequest {
    /// Name (docs/operations.md#names: 1–64 of `A-Z a-z 0-9 - _ .`, starting with a
    /// letter or a digit).
    pub name: String,
    /// Lifetime of operational credentials, seconds (default one year).
    #[serde(default)]
    pub credential_ttl_secs: Option<i64>,
}

/// A device's public keys, base64.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DeviceKeysRequest {
    /// X25519 public key (32 bytes).
    pub x25519: String,
    /// Ed25519 public key (32 bytes).
    pub ed25519: String,
    /// ML-KEM-768 encapsulation key (1184 bytes), optional.
    #[serde(default)]
    pub ml_kem_768: Option<String>,
    /// ML-DSA-65 public key (1952 bytes), optional.
    #[serde(default)]
    pub ml_dsa_65: Option<String>,
}

/// What a factory jig sends.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct FactoryDeviceRequest {
    /// Target fleet.
    pub fleet: String,
    /// Chip UID, serial or MAC; unique across all fleets.
    pub hardware_id: String,
    /// Model.
    pub model: String,
    /// Production batch.
    pub batch: String,
    /// Jig or station.
    pub station: String,
    /// The device's public keys (made on the device).
    pub keys: DeviceKeysRequest,
    /// Factory test results (any JSON).
    #[serde(default)]
    #[schema(value_type = Object)]
    pub test_results: serde_json::Value,
    /// For a constrained-profile device (`docs/protocol.md#the-constrained-device-profile`):
    /// `constrained` or `constrained_static`; absent for a full-profile device.
    #[serde(default)]
    pub profile: Option<crate::fleet::constrained::Profile>,
    /// Base64 of the device's 32-byte factory secret (PSK or lab key) sealed to
    /// `GET /v1/factory/recipient` as an fk1 envelope with associated data
    /// `"fleetkey factory secret v1:" ‖ hardware id`; required with `profile`.
    #[serde(default)]
    pub sealed_secret: Option<String>,
}

/// A registered device (no private material exists server-side).
#[derive(Debug, Serialize, ToSchema)]
pub struct DeviceInfo {
    /// Device id.
    pub id: String,
    /// Fleet.
    pub fleet: String,
    /// Hardware identity.
    pub hardware_id: String,
    /// Life-cycle state.
    pub state: crate::store::DeviceState,
    /// Model.
    pub model: String,
    /// Registration time.
    pub created_at: i64,
    /// The birth credential (base64 of the COSE_Sign1).
    pub birth_credential: String,
    /// Account or site that claimed it.
    pub claimed_by: Option<String>,
    /// When its current operational credential was issued.
    pub credential_issued_at: Option<i64>,
    /// After a factory reset: the hardware id it had (`hardware_id` is then
    /// `retired:<device id>`).
    pub retired_hardware_id: Option<String>,
    /// `full` (Noise sessions), `constrained` or `constrained_static` (lab
    /// static-key mode) — `docs/protocol.md#the-constrained-device-profile`.
    pub profile: String,
}

impl From<crate::store::DeviceRecord> for DeviceInfo {
    fn from(d: crate::store::DeviceRecord) -> Self {
        Self {
            id: d.id,
            fleet: d.fleet,
            hardware_id: d.hardware_id,
            state: d.state,
            model: d.model,
            created_at: d.created_at,
            birth_credential: B64.encode(&d.birth_credential),
            claimed_by: d.claimed_by,
            credential_issued_at: d.credential_issued_at,
            retired_hardware_id: d.retired_hardware_id,
            profile: d.profile,
        }
    }
}

/// A page of devices.
#[derive(Debug, Serialize, ToSchema)]
pub struct DeviceList {
    /// Devices by id.
    pub devices: Vec<DeviceInfo>,
    /// Pass as `after` for the next page; absent at the end.
    pub next_after: Option<String>,
}

/// Paging parameters.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct DeviceQuery {
    /// Devices with ids after this one (default: from the start).
    pub after: Option<String>,
    /// At most this many (1–1000, default 100).
    pub limit: Option<u32>,
}

fn key32(field: &str, s: &str) -> ApiResult<[u8; 32]> {
    b64(field, s)?
        .try_into()
        .map_err(|_| ApiError::malformed(format!("{field} must be 32 bytes")))
}

/// Decodes a device's public keys.
fn device_keys(k: &DeviceKeysRequest) -> ApiResult<fleetkey_crypto::credential::DeviceKeys> {
    Ok(fleetkey_crypto::credential::DeviceKeys {
        x25519: key32("keys.x25519", &k.x25519)?,
        ed25519: key32("keys.ed25519", &k.ed25519)?,
        ml_kem_768: k
            .ml_kem_768
            .as_deref()
            .map(|v| b64("keys.ml_kem_768", v))
            .transpose()?,
        ml_dsa_65: k
            .ml_dsa_65
            .as_deref()
            .map(|v| b64("keys.ml_dsa_65", v))
            .transpose()?,
    })
}

/// Create a fleet with a fresh issuing key.
#[utoipa::path(post, path = "/v1/fleets", tag = "fleets", request_body = CreateFleetRequest,
    responses((status = 201, body = crate::fleet::FleetInfo), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 409, body = ErrorBody)),
    security(("bearer" = ["fleets:manage"])))]
async fn create_fleet(
    State(st): St,
    Extension(p): Extension<Principal>,
    ApiJson(req): ApiJson<CreateFleetRequest>,
) -> ApiResult<(StatusCode, Json<crate::fleet::FleetInfo>)> {
    p.require("fleets:manage")?;
    let info = st
        .fleets
        .create_fleet(&p.actor(), &req.name, req.credential_ttl_secs)
        .await
        .map_err(|e| change_err(&st, e))?;
    Ok((StatusCode::CREATED, Json(info)))
}

/// A fleet's public information (issuing public key for verifying credentials).
#[utoipa::path(get, path = "/v1/fleets/{fleet}", tag = "fleets", params(("fleet" = String, Path, description = "Fleet name")),
    responses((status = 200, body = crate::fleet::FleetInfo), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("bearer" = ["devices:{fleet}"])))]
async fn show_fleet(
    State(st): St,
    Extension(p): Extension<Principal>,
    ApiPath(fleet): ApiPath<String>,
) -> ApiResult<Json<crate::fleet::FleetInfo>> {
    p.require(&format!("devices:{fleet}"))
        .or_else(|_| p.require(&format!("factory:{fleet}")))
        .or_else(|_| p.require("fleets:manage"))?;
    Ok(Json(st.fleets.fleet(&fleet).await?))
}

/// Register a device from the factory and issue its birth credential. Retrying
/// with the same hardware id and keys returns the registration (200).
#[utoipa::path(post, path = "/v1/factory/devices", tag = "fleets", request_body = FactoryDeviceRequest,
    responses((status = 201, body = DeviceInfo), (status = 200, body = DeviceInfo), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody),
        (status = 422, description = "An unsafe device key (`key_refused`: low-order X25519, all-zero Ed25519)", body = ErrorBody)),
    security(("bearer" = ["factory:{fleet}"])))]
async fn factory_device(
    State(st): St,
    Extension(p): Extension<Principal>,
    ApiJson(req): ApiJson<FactoryDeviceRequest>,
) -> ApiResult<(StatusCode, Json<DeviceInfo>)> {
    p.require(&format!("factory:{}", req.fleet))?;
    let keys = device_keys(&req.keys)?;
    let freq = crate::fleet::FactoryRequest {
        fleet: req.fleet,
        hardware_id: req.hardware_id,
        model: req.model,
        batch: req.batch,
        station: req.station,
        keys,
        test_results: req.test_results,
    };
    let r = match (req.profile, req.sealed_secret.as_deref()) {
        (None, None) => st.fleets.provision(&p.actor(), freq).await,
        (Some(profile), Some(sealed)) => {
            let sealed = b64("sealed_secret", sealed)?;
            st.fleets
                .provision_constrained(&p.actor(), freq, profile, &sealed)
                .await
        }
        _ => {
            return Err(ApiError::malformed(
                "profile and sealed_secret go together (both for a constrained device, neither otherwise)",
            ));
        }
    }
    .map_err(|e| change_err(&st, e))?;
    let status = if r.created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(r.device.into())))
}

/// A page of a fleet's devices.
#[utoipa::path(get, path = "/v1/fleets/{fleet}/devices", tag = "fleets", params(("fleet" = String, Path, description = "Fleet name"), DeviceQuery),
    responses((status = 200, body = DeviceList), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("bearer" = ["devices:{fleet}"])))]
async fn list_devices(
    State(st): St,
    Extension(p): Extension<Principal>,
    ApiPath(fleet): ApiPath<String>,
    ApiQuery(q): ApiQuery<DeviceQuery>,
) -> ApiResult<Json<DeviceList>> {
    p.require(&format!("devices:{fleet}"))?;
    let limit = q.limit.unwrap_or(100);
    if limit == 0 || limit > 1000 {
        return Err(ApiError::malformed("limit must be between 1 and 1000"));
    }
    let devices = st
        .fleets
        .devices(&fleet, q.after.as_deref().unwrap_or(""), limit)
        .await?;
    let next_after = (devices.len() == limit as usize)
        .then(|| devices.last().map(|d| d.id.clone()))
        .flatten();
    Ok(Json(DeviceList {
        devices: devices.into_iter().map(Into::into).collect(),
        next_after,
    }))
}

/// One device of the fleet (another fleet's device is "not found").
#[utoipa::path(get, path = "/v1/fleets/{fleet}/devices/{id}", tag = "fleets",
    params(("fleet" = String, Path, description = "Fleet name"), ("id" = String, Path, description = "Device id")),
    responses((status = 200, body = DeviceInfo), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("bearer" = ["devices:{fleet}"])))]
async fn show_device(
    State(st): St,
    Extension(p): Extension<Principal>,
    ApiPath((fleet, id)): ApiPath<(String, String)>,
) -> ApiResult<Json<DeviceInfo>> {
    p.require(&format!("devices:{fleet}"))?;
    let d = st.fleets.device(&id).await?;
    if d.fleet != fleet {
        return Err(Error::DeviceNotFound(id).into());
    }
    Ok(Json(d.into()))
}

/// Ask for an onboarding challenge (no token: the device proves itself later).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ChallengeRequest {
    /// The device id from its birth credential.
    pub device_id: String,
}

/// A single-use challenge: sign `onboarding_message(device_id, nonce, issued_at)`.
#[derive(Debug, Serialize, ToSchema)]
pub struct ChallengeResponse {
    /// Device id.
    pub device_id: String,
    /// Base64 of 32 random bytes.
    pub nonce: String,
    /// Issue time (part of the signed message).
    pub issued_at: i64,
    /// Expiry.
    pub expires_at: i64,
}

/// Proof of possession for onboarding.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OnboardRequest {
    /// Base64 birth credential.
    pub birth_credential: String,
    /// Base64 nonce from the challenge.
    pub nonce: String,
    /// Base64 Ed25519 signature over the onboarding message.
    pub signature: String,
}

/// The device's operational credential.
#[derive(Debug, Serialize, ToSchema)]
pub struct OnboardResponse {
    /// Base64 operational credential.
    pub operational_credential: String,
    /// The device.
    pub device: DeviceInfo,
}

/// A device's signed wipe receipt.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct WipeReceiptRequest {
    /// Device id.
    pub device_id: String,
    /// When the device wiped (signed).
    pub wiped_at: i64,
    /// Base64 Ed25519 signature over the wipe receipt message.
    pub signature: String,
}

/// A life-cycle change requested by an operator.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StateRequest {
    /// `active` or `suspended`.
    pub state: crate::store::DeviceState,
}

/// Why a device is decommissioned.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DecommissionRequest {
    /// Recorded in the audit log.
    pub reason: String,
}

fn nonce32(s: &str) -> ApiResult<[u8; 32]> {
    key32("nonce", s)
}

/// Get a single-use onboarding challenge for a manufactured device.
#[utoipa::path(post, path = "/v1/onboarding/challenge", tag = "onboarding", request_body = ChallengeRequest,
    responses((status = 200, body = ChallengeResponse), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)),
    security(()))]
async fn onboarding_challenge(
    State(st): St,
    ApiJson(req): ApiJson<ChallengeRequest>,
) -> ApiResult<Json<ChallengeResponse>> {
    let c = st.fleets.challenge(&req.device_id).await?;
    Ok(Json(ChallengeResponse {
        device_id: c.device_id,
        nonce: B64.encode(c.nonce),
        issued_at: c.issued_at,
        expires_at: c.expires_at,
    }))
}

/// Complete onboarding: birth credential plus proof of possession.
#[utoipa::path(post, path = "/v1/onboarding/complete", tag = "onboarding", request_body = OnboardRequest,
    responses((status = 200, body = OnboardResponse), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 409, body = ErrorBody)),
    security(()))]
async fn onboarding_complete(
    State(st): St,
    ApiJson(req): ApiJson<OnboardRequest>,
) -> ApiResult<Json<OnboardResponse>> {
    let cred = b64("birth_credential", &req.birth_credential)?;
    let nonce = nonce32(&req.nonce)?;
    let sig = b64("signature", &req.signature)?;
    let (op, device) = st
        .fleets
        .onboard(&cred, &nonce, &sig)
        .await
        .map_err(|e| change_err(&st, e))?;
    Ok(Json(OnboardResponse {
        operational_credential: B64.encode(op),
        device: device.into(),
    }))
}

/// A device reports its wipe with a signed receipt; decommissioning ends.
#[utoipa::path(post, path = "/v1/onboarding/wipe-receipt", tag = "onboarding", request_body = WipeReceiptRequest,
    responses((status = 200, body = DeviceInfo), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)),
    security(()))]
async fn wipe_receipt(
    State(st): St,
    ApiJson(req): ApiJson<WipeReceiptRequest>,
) -> ApiResult<Json<DeviceInfo>> {
    let sig = b64("signature", &req.signature)?;
    let d = st
        .fleets
        .confirm_wipe(&req.device_id, req.wiped_at, &sig)
        .await
        .map_err(|e| change_err(&st, e))?;
    Ok(Json(d.into()))
}

/// A device's state changed through this instance: constrained-device frames see
/// it from the next frame on, here and (through Redis) on every other instance.
fn device_state_changed(st: &AppState, id: &str) {
    if let Some(ingest) = st.ingest.get() {
        ingest.expire(id);
    }
    invalidate(st, crate::coord::Invalidation::Device { id: id.to_owned() });
}

/// Tells the other instances that something they may cache changed. Without Redis
/// (or while it is unreachable) they notice within their cache lifetimes.
fn invalidate(st: &AppState, what: crate::coord::Invalidation) {
    if let Some(c) = st.coord.get() {
        let c = c.clone();
        tokio::spawn(async move {
            if let Err(e) = c.publish(&what).await {
                tracing::warn!(error = %e, ?what, "could not publish an invalidation");
            }
        });
    }
}

async fn device_in_fleet(st: &AppState, fleet: &str, id: &str) -> ApiResult<()> {
    let d = st.fleets.device(id).await?;
    if d.fleet != fleet {
        return Err(Error::DeviceNotFound(id.to_owned()).into());
    }
    Ok(())
}

/// Activate, suspend or resume a device (the life-cycle table applies).
#[utoipa::path(post, path = "/v1/fleets/{fleet}/devices/{id}/state", tag = "fleets",
    params(("fleet" = String, Path, description = "Fleet name"), ("id" = String, Path, description = "Device id")),
    request_body = StateRequest,
    responses((status = 200, body = DeviceInfo), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)),
    security(("bearer" = ["operate:{fleet}"])))]
async fn set_device_state(
    State(st): St,
    Extension(p): Extension<Principal>,
    ApiPath((fleet, id)): ApiPath<(String, String)>,
    ApiJson(req): ApiJson<StateRequest>,
) -> ApiResult<Json<DeviceInfo>> {
    p.require(&format!("operate:{fleet}"))?;
    device_in_fleet(&st, &fleet, &id).await?;
    let d = st
        .fleets
        .transition(&p.actor(), &id, req.state)
        .await
        .map_err(|e| change_err(&st, e))?;
    device_state_changed(&st, &id);
    Ok(Json(d.into()))
}

/// Decommission a device: audit entry and revocation of all its credentials at once.
#[utoipa::path(post, path = "/v1/fleets/{fleet}/devices/{id}/decommission", tag = "fleets",
    params(("fleet" = String, Path, description = "Fleet name"), ("id" = String, Path, description = "Device id")),
    request_body = DecommissionRequest,
    responses((status = 200, body = DeviceInfo), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)),
    security(("bearer" = ["operate:{fleet}"])))]
async fn decommission_device(
    State(st): St,
    Extension(p): Extension<Principal>,
    ApiPath((fleet, id)): ApiPath<(String, String)>,
    ApiJson(req): ApiJson<DecommissionRequest>,
) -> ApiResult<Json<DeviceInfo>> {
    p.require(&format!("operate:{fleet}"))?;
    device_in_fleet(&st, &fleet, &id).await?;
    if req.reason.len() > 256 {
        return Err(ApiError::malformed("reason is longer than 256 bytes"));
    }
    let d = st
        .fleets
        .decommission(&p.actor(), &id, &req.reason)
        .await
        .map_err(|e| change_err(&st, e))?;
    device_state_changed(&st, &id);
    Ok(Json(d.into()))
}

/// Make a claim code.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ClaimCodeRequest {
    /// Lifetime in seconds (60 to 365 days; default 30 days).
    #[serde(default)]
    pub ttl_secs: Option<i64>,
}

/// A one-time claim code, shown once.
#[derive(Debug, Serialize, ToSchema)]
pub struct ClaimCodeResponse {
    /// `XXXX-XXXX-XXXX-XXXX`.
    pub code: String,
    /// Expiry.
    pub expires_at: i64,
}

/// Claim a device with its code.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ClaimRequest {
    /// The code.
    pub code: String,
    /// Account or site to bind the device to.
    pub claimed_by: String,
}

/// Create a one-time claim code for a device.
#[utoipa::path(post, path = "/v1/fleets/{fleet}/devices/{id}/claim-codes", tag = "fleets",
    params(("fleet" = String, Path, description = "Fleet name"), ("id" = String, Path, description = "Device id")),
    request_body = ClaimCodeRequest,
    responses((status = 201, body = ClaimCodeResponse), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)),
    security(("bearer" = ["operate:{fleet}"])))]
async fn create_claim_code(
    State(st): St,
    Extension(p): Extension<Principal>,
    ApiPath((fleet, id)): ApiPath<(String, String)>,
    ApiJson(req): ApiJson<ClaimCodeRequest>,
) -> ApiResult<(StatusCode, Json<ClaimCodeResponse>)> {
    p.require(&format!("operate:{fleet}"))
        .or_else(|_| p.require(&format!("factory:{fleet}")))?;
    device_in_fleet(&st, &fleet, &id).await?;
    let (code, expires_at) = st
        .fleets
        .create_claim_code(&p.actor(), &id, req.ttl_secs.unwrap_or(30 * 86_400))
        .await
        .map_err(|e| change_err(&st, e))?;
    Ok((
        StatusCode::CREATED,
        Json(ClaimCodeResponse { code, expires_at }),
    ))
}

/// Claim a device: binds it to an account or site; each code works once.
#[utoipa::path(post, path = "/v1/claims", tag = "fleets", request_body = ClaimRequest,
    responses((status = 200, body = DeviceInfo), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 422, body = ErrorBody)),
    security(("bearer" = ["claim"])))]
async fn claim_device(
    State(st): St,
    Extension(p): Extension<Principal>,
    ApiJson(req): ApiJson<ClaimRequest>,
) -> ApiResult<Json<DeviceInfo>> {
    p.require("claim")?;
    let d = st
        .fleets
        .claim(&p.actor(), &req.code, &req.claimed_by)
        .await
        .map_err(|e| change_err(&st, e))?;
    Ok(Json(d.into()))
}

// ------------------------------------------------------------------ open routes

async fn healthz() -> Json<serde_json::Value> {
    Json(serde_json::json!({ "status": "ok" }))
}

async fn readyz(State(st): St) -> Response {
    if let Some(c) = st.coord.get() {
        // Refreshes the degraded flag (at most 250 ms when Redis is unreachable).
        let _ = c.ping().await;
    }
    match st.keys.ready().await {
        // Ready without Redis too (instances then act alone), but say so.
        Ok(()) if st.coord.get().is_some_and(|c| c.degraded()) => {
            Json(serde_json::json!({ "status": "ready", "coordination": "degraded" }))
                .into_response()
        }
        Ok(()) if st.coord.get().is_some() => {
            Json(serde_json::json!({ "status": "ready", "coordination": "ok" })).into_response()
        }
        Ok(()) => Json(serde_json::json!({ "status": "ready" })).into_response(),
        Err(e) => {
            tracing::warn!(error = %e, "not ready");
            ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "unavailable",
                "store or custody not usable",
            )
            .into_response()
        }
    }
}

async fn metrics_text(State(st): St) -> Response {
    if let Some(c) = st.coord.get() {
        st.metrics
            .coordination_degraded
            .set(i64::from(c.degraded()));
    }
    let body = st.metrics.render(&st.keys, st.limits.is_tightened());
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "text/plain; version=0.0.4",
        )],
        body,
    )
        .into_response()
}

async fn openapi_json() -> Response {
    (
        [(axum::http::header::CONTENT_TYPE, "application/json")],
        serde_json::to_string_pretty(&openapi_document()).unwrap_or_default(),
    )
        .into_response()
}

async fn not_found() -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "not_found",
        "no such route; see /v1/openapi.json",
    )
}

async fn method_not_allowed() -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        "this route does not take that method; see /v1/openapi.json",
    )
}

// ------------------------------------------------------------------ middleware

fn bearer(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
        .map(str::trim)
}

fn set_header(h: &mut HeaderMap, name: &'static str, value: String) {
    if let Ok(v) = HeaderValue::from_str(&value) {
        h.insert(name, v);
    }
}

/// 429 for a refusal by one of the rate limits, with its headers.
fn limited_response(st: &AppState, l: ratelimit::Limited) -> Response {
    st.metrics.rate_limited.with_label_values(&[l.scope]).inc();
    let what = if l.scope == "source" {
        "requests without a valid token from this address".to_owned()
    } else {
        format!("{} rate limit", l.scope)
    };
    let mut r = ApiError::new(
        StatusCode::TOO_MANY_REQUESTS,
        "rate_limited",
        format!(
            "{what}: limit of {} requests per second reached; retry after {} s",
            l.limit, l.retry_after_secs
        ),
    )
    .into_response();
    let h = r.headers_mut();
    set_header(h, "retry-after", l.retry_after_secs.to_string());
    set_header(
        h,
        "ratelimit-policy",
        format!("\"{}\";q={};w=1", l.scope, l.limit),
    );
    set_header(
        h,
        "ratelimit",
        format!("\"{}\";r=0;t={}", l.scope, l.retry_after_secs),
    );
    set_header(h, "x-ratelimit-limit", l.limit.to_string());
    set_header(h, "x-ratelimit-remaining", "0".into());
    set_header(h, "x-ratelimit-reset", l.retry_after_secs.to_string());
    r
}

/// The per-source allowance for routes without a token (onboarding).
async fn source_limit(State(st): St, req: Request, next: Next) -> Response {
    let peer = req
        .extensions()
        .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
        .map(|c| c.0.ip());
    if let Some(Err(l)) = peer.map(|ip| st.limits.check_source(ip)) {
        return limited_response(&st, l);
    }
    next.run(req).await
}

/// Authenticates the bearer token, applies the rate limits and adds their headers.
async fn auth_and_limit(State(st): St, mut req: Request, next: Next) -> Response {
    // The per-source allowance for requests without a valid cached token is taken
    // before any store lookup (requests without a known peer, as in process, have
    // none).
    let peer = req
        .extensions()
        .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
        .map(|c| c.0.ip());
    let gate = || match peer {
        Some(ip) => st.limits.check_source(ip),
        None => Ok(()),
    };
    let principal = match bearer(req.headers()) {
        None => {
            if let Err(l) = gate() {
                return limited_response(&st, l);
            }
            let mut r = ApiError::new(
                StatusCode::UNAUTHORIZED,
                "unauthenticated",
                "send Authorization: Bearer <token>",
            )
            .into_response();
            r.headers_mut()
                .insert("www-authenticate", HeaderValue::from_static("Bearer"));
            return r;
        }
        Some(t) => match st.tokens.authenticate_gated(t, gate).await {
            Err(l) => return limited_response(&st, l),
            Ok(Ok(p)) => p,
            Ok(Err(e)) => {
                let mut r = ApiError::from(e).into_response();
                r.headers_mut().insert(
                    "www-authenticate",
                    HeaderValue::from_static("Bearer error=\"invalid_token\""),
                );
                return r;
            }
        },
    };
    let allowance = match st
        .limits
        .check_shared(&principal.token_id, st.coord.get().map(|c| c.as_ref()))
        .await
    {
        Ok(a) => a,
        Err(l) => return limited_response(&st, l),
    };
    tracing::Span::current().record("token", principal.token_id.as_str());
    req.extensions_mut().insert(principal);
    let mut r = next.run(req).await;
    let h = r.headers_mut();
    set_header(
        h,
        "ratelimit-policy",
        format!("\"token\";q={};w=1", allowance.limit),
    );
    set_header(
        h,
        "ratelimit",
        format!(
            "\"token\";r={};t={}",
            allowance.remaining, allowance.reset_secs
        ),
    );
    set_header(h, "x-ratelimit-limit", allowance.limit.to_string());
    set_header(h, "x-ratelimit-remaining", allowance.remaining.to_string());
    set_header(h, "x-ratelimit-reset", allowance.reset_secs.to_string());
    r
}

/// Counts and times every request by route template and status.
async fn observe(State(st): St, req: Request, next: Next) -> Response {
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|m| m.as_str().to_owned())
        .unwrap_or_else(|| "unmatched".into());
    let method = req.method().as_str().to_owned();
    let start = Instant::now();
    let r = next.run(req).await;
    let status = r.status();
    st.metrics
        .latency
        .with_label_values(&[route.as_str()])
        .observe(start.elapsed().as_secs_f64());
    st.metrics
        .requests
        .with_label_values(&[route.as_str(), method.as_str(), status.as_str()])
        .inc();
    if status != StatusCode::TOO_MANY_REQUESTS {
        st.limits
            .record(status.is_server_error() || status == StatusCode::UNPROCESSABLE_ENTITY);
    }
    if status.is_server_error() {
        tracing::warn!(%route, status = status.as_u16(), "request failed");
    }
    r
}

// ------------------------------------------------------------------ router and OpenAPI

struct SecurityAddon;

impl utoipa::Modify for SecurityAddon {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("fkt_…")
                    .build(),
            ),
        );
    }
}

/// The OpenAPI document.
#[derive(OpenApi)]
#[openapi(
    info(title = "fleetkey", description = "Keys, sealing and audit for device fleets. Binary payloads are base64 (RFC 4648 §4)."),
    paths(create_keyring, list_keyrings, show_keyring, rotate_keyring, revoke_version, set_policy, seal, unseal, rewrap,
        seal_batch, unseal_batch, rewrap_batch, audit_page, audit_checkpoint, audit_public_key, create_token, list_tokens, revoke_token,
        create_fleet, show_fleet, factory_device, list_devices, show_device, set_device_state, decommission_device,
        onboarding_challenge, onboarding_complete, wipe_receipt, create_claim_code, claim_device),
    components(schemas(ErrorBody, ErrorDetail, KeyringInfo, crate::keys::VersionInfo, Policy, crate::store::VersionState)),
    modifiers(&SecurityAddon),
    tags((name = "keyrings"), (name = "crypto"), (name = "audit"), (name = "tokens"), (name = "fleets"), (name = "config"), (name = "onboarding"), (name = "directory"))
)]
pub struct ApiDoc;

/// The whole router.
pub fn router(state: Arc<AppState>, max_body_bytes: usize) -> Router {
    let v1 = Router::new()
        .route("/v1/keyrings", post(create_keyring).get(list_keyrings))
        .route("/v1/keyrings/{name}", get(show_keyring))
        .route("/v1/keyrings/{name}/rotate", post(rotate_keyring))
        .route(
            "/v1/keyrings/{name}/versions/{version}/revoke",
            post(revoke_version),
        )
        .route("/v1/keyrings/{name}/policy", put(set_policy))
        .route("/v1/keyrings/{name}/seal", post(seal))
        .route("/v1/keyrings/{name}/unseal", post(unseal))
        .route("/v1/keyrings/{name}/rewrap", post(rewrap))
        .route("/v1/keyrings/{name}/seal/batch", post(seal_batch))
        .route("/v1/keyrings/{name}/unseal/batch", post(unseal_batch))
        .route("/v1/keyrings/{name}/rewrap/batch", post(rewrap_batch))
        .route("/v1/audit", get(audit_page))
        .route("/v1/audit/checkpoint", get(audit_checkpoint))
        .route("/v1/audit/public-key", get(audit_public_key))
        .route("/v1/tokens", post(create_token).get(list_tokens))
        .route("/v1/tokens/{id}/revoke", post(revoke_token))
        .route("/v1/fleets", post(create_fleet))
        .route("/v1/fleets/{fleet}", get(show_fleet))
        .route("/v1/fleets/{fleet}/devices", get(list_devices))
        .route("/v1/fleets/{fleet}/devices/{id}", get(show_device))
        .route("/v1/factory/devices", post(factory_device))
        .route(
            "/v1/fleets/{fleet}/devices/{id}/state",
            post(set_device_state),
        )
        .route(
            "/v1/fleets/{fleet}/devices/{id}/decommission",
            post(decommission_device),
        )
        .route(
            "/v1/fleets/{fleet}/devices/{id}/claim-codes",
            post(create_claim_code),
        )
        .route("/v1/claims", post(claim_device))
        .merge(devices::operator_routes())
        .merge(ingest::routes())
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            auth_and_limit,
        ));
    Router::new()
        .merge(v1)
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics_text))
        .route("/v1/openapi.json", get(openapi_json))
        .merge(
            // Routes without a token: small bodies only.
            Router::new()
                .route("/v1/onboarding/challenge", post(onboarding_challenge))
                .route("/v1/onboarding/complete", post(onboarding_complete))
                .route("/v1/onboarding/wipe-receipt", post(wipe_receipt))
                .route_layer(axum::middleware::from_fn_with_state(
                    state.clone(),
                    source_limit,
                ))
                .merge(devices::device_routes())
                .layer(axum::extract::DefaultBodyLimit::max(
                    state.max_unauthenticated_body_bytes,
                )),
        )
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(axum::middleware::from_fn_with_state(state.clone(), observe))
        .layer(axum::extract::DefaultBodyLimit::max(max_body_bytes))
        .with_state(state)
}
