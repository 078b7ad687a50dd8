//! The Vault / OpenBao Transit door (docs/migrate-from-vault-transit.md): the
//! Transit API on fleetkey's own listener, so that hvac, the `vault`/`bao` CLI
//! and other Transit clients work unmodified against fleetkey's keyrings.
//!
//! An edge like the rest of `api/`: it reads Transit's request shapes (values
//! as strings or numbers, `batch_input`), admits the request with the same
//! token check and rate limits as the native API (`X-Vault-Token` carries a
//! fleetkey token), calls the same domain operations under the same scopes,
//! and answers in Transit's shapes (`{"data": …}`, `{"errors": […]}`,
//! `vault:v<N>:<base64>` around an fk1 envelope). Changes it makes are audited
//! with the actor `token:<id> via transit <operation>`.
//!
//! Files: params.rs (Vault's loose parameters), ciphertext.rs (`vault:v<N>:`),
//! keys.rs (create, read, list, delete, rotate, config), crypto.rs (encrypt,
//! decrypt, rewrap, data keys), sign.rs (sign, verify, HMAC), misc.rs (random,
//! hash, `auth/token/lookup-self`, `sys/seal-status`).

pub mod ciphertext;
mod crypto;
mod keys;
mod misc;
pub mod params;
mod sign;

pub use params::Params;

use super::error::ApiError;
use super::extract::json_body;
use super::middleware::{Refusal, admit, allowance_headers, limited_as, peer};
use super::{AppState, St};
use crate::tokens::Principal;
use axum::extract::{FromRequest, FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get, post};
use axum::{Json, Router};
use serde_json::{Value, json};
use std::sync::Arc;

/// The mount the door answers at unless configured (`transit_mounts`).
pub const DEFAULT_MOUNT: &str = "transit";

/// First path segments under `/v1` that the native API or the door's own
/// routes use, so no mount may take them.
pub const RESERVED_MOUNTS: &[&str] = &[
    "aliases",
    "audit",
    "auth",
    "claims",
    "devices",
    "directory",
    "factory",
    "fleets",
    "ingest",
    "keyrings",
    "onboarding",
    "openapi.json",
    "random",
    "sys",
    "tokens",
];

/// Checks a mount name: 1–64 of `a-z 0-9 - _`, not a reserved segment.
pub fn validate_mount(m: &str) -> Result<(), String> {
    let ok = (1..=64).contains(&m.len())
        && m.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_');
    if !ok {
        return Err(format!(
            "{m:?}: a mount is 1 to 64 characters from a-z 0-9 - _"
        ));
    }
    if RESERVED_MOUNTS.contains(&m) {
        return Err(format!("{m:?} is a path of the native API"));
    }
    Ok(())
}

/// An error in Transit's shape: `{"errors": ["…"]}`.
#[derive(Debug)]
pub struct VaultError {
    /// HTTP status.
    pub status: StatusCode,
    /// The messages (Vault sends a list; empty for a plain 404).
    pub errors: Vec<String>,
}

impl VaultError {
    /// An error with one message.
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Self {
            status,
            errors: vec![message.into()],
        }
    }

    /// 400, Vault's answer to every request it cannot carry out as asked.
    pub fn bad(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, message)
    }

    /// 403 `permission denied`, Vault's answer to a missing, unknown or
    /// insufficient token.
    pub fn denied() -> Self {
        Self::new(StatusCode::FORBIDDEN, "permission denied")
    }

    /// Vault's 404 for a key that does not exist: no message.
    pub fn not_found() -> Self {
        Self {
            status: StatusCode::NOT_FOUND,
            errors: Vec::new(),
        }
    }

    /// The message, for a batch item's `error`.
    pub fn message(&self) -> String {
        self.errors.join("; ")
    }
}

impl From<ApiError> for VaultError {
    /// Vault's statuses: 400 for every refusal of the request's content
    /// (fleetkey's 409, 410 and 422 included), 403 for authentication and
    /// scopes, 404, 405, 413, 429, 503 as they are.
    fn from(e: ApiError) -> Self {
        let status = match e.status.as_u16() {
            401 | 403 => StatusCode::FORBIDDEN,
            404 | 405 | 413 | 429 | 503 => e.status,
            500..=599 => StatusCode::INTERNAL_SERVER_ERROR,
            _ => StatusCode::BAD_REQUEST,
        };
        let message = match e.status.as_u16() {
            401 => "permission denied".to_owned(),
            403 => format!("permission denied: {}", e.detail.message),
            _ => e.detail.message,
        };
        Self::new(status, message)
    }
}

impl From<crate::Error> for VaultError {
    fn from(e: crate::Error) -> Self {
        ApiError::from(e).into()
    }
}

impl IntoResponse for VaultError {
    fn into_response(self) -> Response {
        let retry = self.status == StatusCode::SERVICE_UNAVAILABLE;
        let mut r = (self.status, Json(json!({ "errors": self.errors }))).into_response();
        if retry {
            r.headers_mut().insert(
                axum::http::header::RETRY_AFTER,
                axum::http::HeaderValue::from_static("1"),
            );
        }
        r
    }
}

/// A handler's result.
pub type VaultResult<T> = Result<T, VaultError>;

/// A successful answer in Vault's response shape, `data` inside.
pub fn answer(data: Value, warnings: Vec<String>) -> Response {
    answer_with(StatusCode::OK, data, warnings)
}

/// [`answer`] with another status (a batch with failed items is 400, as in Vault).
pub fn answer_with(status: StatusCode, data: Value, warnings: Vec<String>) -> Response {
    let request_id = super::random_uuid().unwrap_or_default();
    let warnings = if warnings.is_empty() {
        Value::Null
    } else {
        json!(warnings)
    };
    (
        status,
        Json(json!({
            "request_id": request_id,
            "lease_id": "",
            "renewable": false,
            "lease_duration": 0,
            "data": data,
            "wrap_info": null,
            "warnings": warnings,
            "auth": null,
        })),
    )
        .into_response()
}

/// A Transit request: who sent it and its parameters (the body; none is no
/// parameters). Any content type is read as JSON, as Vault does.
pub struct VaultRequest {
    /// The admitted token.
    pub principal: Principal,
    /// The parameters.
    pub params: Params,
}

impl FromRequest<Arc<AppState>> for VaultRequest {
    type Rejection = VaultError;
    async fn from_request(req: Request, state: &Arc<AppState>) -> Result<Self, Self::Rejection> {
        let principal = req
            .extensions()
            .get::<Principal>()
            .cloned()
            .ok_or_else(VaultError::denied)?;
        let body = json_body(req, state, true).await?;
        Ok(Self {
            principal,
            params: Params::new(body)?,
        })
    }
}

/// Path segments; a segment that is not valid UTF-8 is refused in Transit's shape.
pub struct Segments<T>(pub T);

impl<S: Send + Sync, T: serde::de::DeserializeOwned + Send> FromRequestParts<S> for Segments<T> {
    type Rejection = VaultError;
    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        axum::extract::Path::<T>::from_request_parts(parts, state)
            .await
            .map(|p| Segments(p.0))
            .map_err(|e| VaultError::bad(e.body_text()))
    }
}

/// The audit actor of a change made through this door.
pub fn actor(p: &Principal, operation: &str) -> String {
    format!("{} via transit {operation}", p.actor())
}

/// The token a Vault client sends: `X-Vault-Token`, else a bearer token.
fn vault_token(h: &HeaderMap) -> Option<String> {
    h.get("x-vault-token")
        .and_then(|v| v.to_str().ok())
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
        .or_else(|| super::middleware::bearer(h).map(str::to_owned))
}

/// Admits a Transit request exactly as the native API admits one
/// ([`admit`]); refusals in Transit's shape.
async fn vault_auth(State(st): St, mut req: Request, next: Next) -> Response {
    let token = vault_token(req.headers());
    let (principal, allowance) = match admit(&st, peer(&req), token.as_deref()).await {
        Ok(a) => a,
        Err(Refusal::Limited(l)) => {
            let body = VaultError::new(
                StatusCode::TOO_MANY_REQUESTS,
                format!(
                    "rate limit quota exceeded: retry after {} s",
                    l.retry_after_secs
                ),
            );
            return limited_as(&st, l, body.into_response());
        }
        Err(Refusal::Missing) => return VaultError::denied().into_response(),
        Err(Refusal::Invalid(e)) if e.is_unavailable() => {
            return VaultError::from(e).into_response();
        }
        Err(Refusal::Invalid(_)) => return VaultError::denied().into_response(),
    };
    let token_id = super::middleware::AdmittedToken(principal.token_id.clone());
    req.extensions_mut().insert(principal);
    let mut r = next.run(req).await;
    allowance_headers(r.headers_mut(), &allowance);
    r.extensions_mut().insert(token_id);
    r
}

/// A Transit write endpoint: POST and PUT alike; other methods 405 in
/// Transit's shape.
fn write<H, T>(h: H) -> axum::routing::MethodRouter<Arc<AppState>>
where
    H: axum::handler::Handler<T, Arc<AppState>> + Clone,
    T: 'static,
{
    post(h.clone()).put(h).fallback(unsupported_operation)
}

async fn unsupported_operation() -> VaultError {
    VaultError::new(StatusCode::METHOD_NOT_ALLOWED, "unsupported operation")
}

async fn unsupported_path() -> VaultError {
    VaultError::new(
        StatusCode::NOT_FOUND,
        "unsupported path: see docs/migrate-from-vault-transit.md for the Transit endpoints fleetkey serves",
    )
}

/// The door's routes for each mount in `mounts` (none: the door is closed).
pub(super) fn routes(state: &Arc<AppState>, mounts: &[String]) -> Router<Arc<AppState>> {
    if mounts.is_empty() {
        return Router::new();
    }
    let mut r = Router::new()
        .route(
            "/v1/auth/token/lookup-self",
            get(misc::lookup_self).post(misc::lookup_self),
        )
        .route("/v1/auth/token/renew-self", post(misc::renew_self));
    for m in mounts {
        let p = |tail: &str| format!("/v1/{m}/{tail}");
        r = r
            .route(&p("keys"), any(keys::list))
            .route(&p("keys/"), any(keys::list))
            .route(&p("keys/{name}"), any(keys::key))
            .route(&p("keys/{name}/config"), write(keys::config))
            .route(&p("keys/{name}/rotate"), write(keys::rotate))
            .route(&p("encrypt/{name}"), write(crypto::encrypt))
            .route(&p("decrypt/{name}"), write(crypto::decrypt))
            .route(&p("rewrap/{name}"), write(crypto::rewrap))
            .route(&p("datakey/{kind}/{name}"), write(crypto::datakey))
            .route(&p("sign/{name}"), write(sign::sign))
            .route(&p("sign/{name}/{hash}"), write(sign::sign_hash))
            .route(&p("verify/{name}"), write(sign::verify))
            .route(&p("verify/{name}/{hash}"), write(sign::verify_hash))
            .route(&p("hmac/{name}"), write(sign::hmac))
            .route(&p("hmac/{name}/{alg}"), write(sign::hmac_alg))
            .route(&p("random"), write(misc::random))
            .route(&p("random/{a}"), write(misc::random_a))
            .route(&p("random/{a}/{b}"), write(misc::random_ab))
            .route(&p("hash"), write(misc::hash))
            .route(&p("hash/{alg}"), write(misc::hash_alg))
            .route(&p("{*rest}"), any(unsupported_path));
    }
    r.route_layer(axum::middleware::from_fn_with_state(
        state.clone(),
        vault_auth,
    ))
    .merge(
        Router::new()
            .route("/v1/sys/seal-status", get(misc::seal_status))
            .route_layer(axum::middleware::from_fn_with_state(
                state.clone(),
                super::middleware::source_limit,
            )),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mounts_are_checked() {
        assert!(validate_mount("transit").is_ok());
        assert!(validate_mount("transit-legacy_2").is_ok());
        for bad in [
            "",
            "Transit",
            "a/b",
            "keyrings",
            "sys",
            "auth",
            &"x".repeat(65),
        ] {
            assert!(validate_mount(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn refusals_take_vault_statuses() {
        let cases = [
            (StatusCode::UNAUTHORIZED, StatusCode::FORBIDDEN),
            (StatusCode::FORBIDDEN, StatusCode::FORBIDDEN),
            (StatusCode::UNPROCESSABLE_ENTITY, StatusCode::BAD_REQUEST),
            (StatusCode::CONFLICT, StatusCode::BAD_REQUEST),
            (StatusCode::GONE, StatusCode::BAD_REQUEST),
            (StatusCode::NOT_FOUND, StatusCode::NOT_FOUND),
            (StatusCode::PAYLOAD_TOO_LARGE, StatusCode::PAYLOAD_TOO_LARGE),
            (
                StatusCode::SERVICE_UNAVAILABLE,
                StatusCode::SERVICE_UNAVAILABLE,
            ),
        ];
        for (from, to) in cases {
            // A documented code of that status (docs/errors.md).
            let code = crate::api::error_codes::ERROR_CODES
                .iter()
                .find(|c| c.http == from.as_u16())
                .map(|c| c.code)
                .unwrap();
            let e = VaultError::from(ApiError::new(from, code, "x"));
            assert_eq!(e.status, to, "{from}");
        }
    }
}
