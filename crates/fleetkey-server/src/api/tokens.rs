//! API tokens over HTTP: create (the secret shown once), list, revoke.

use super::St;
use super::change_err;
use super::error::{ApiResult, ErrorBody};
use super::extract::{ApiJson, ApiPath};
use crate::tokens::Principal;
use axum::extract::State;
use axum::http::StatusCode;
use axum::{Extension, Json};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// A token to create.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
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
#[derive(Debug, Serialize, Deserialize, ToSchema)]
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
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct CreatedToken {
    /// The token.
    #[serde(flatten)]
    pub info: TokenInfo,
    /// The secret (`fkt_…`); store it now, it cannot be shown again.
    pub token: String,
}

/// The secret is wiped from memory when the response is dropped (here and in
/// clients built on this type).
impl Drop for CreatedToken {
    fn drop(&mut self) {
        zeroize::Zeroize::zeroize(&mut self.token);
    }
}

/// Tokens.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct TokenList {
    /// All tokens.
    pub tokens: Vec<TokenInfo>,
}

/// Create a token (the secret is in the response only).
#[utoipa::path(post, path = "/v1/tokens", tag = "tokens", request_body = CreateTokenRequest,
    responses((status = 201, body = CreatedToken), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)),
    security(("bearer" = ["tokens:manage"])))]
pub(super) async fn create_token(
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
pub(super) async fn list_tokens(
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
pub(super) async fn revoke_token(
    State(st): St,
    Extension(p): Extension<Principal>,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<StatusCode> {
    st.tokens
        .revoke_for(&p, &id)
        .await
        .map_err(|e| change_err(&st, e))?;
    Ok(StatusCode::NO_CONTENT)
}
