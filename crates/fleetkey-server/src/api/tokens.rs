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

/// An AWS access key pair to create for a token.
#[derive(Debug, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AwsAccessKeyRequest {
    /// The token (id `tok_…` or name) the pair acts as; needs `tokens:manage`
    /// covering that token's scopes. Omitted: the requesting token itself.
    #[serde(default)]
    pub token: Option<String>,
}

/// A new AWS access key pair (docs/migrate-from-aws-kms.md): requests signed
/// with it (Signature Version 4, service `kms`) act as the token, with its
/// scopes and expiry; revoking the token revokes the pair.
#[derive(Serialize, Deserialize, ToSchema)]
pub struct AwsAccessKeyResponse {
    /// `AWS_ACCESS_KEY_ID` (`FKIA…`).
    pub access_key_id: String,
    /// `AWS_SECRET_ACCESS_KEY`; store it now, it cannot be shown again.
    pub secret_access_key: String,
    /// The token it acts as.
    pub token_id: String,
}

impl std::fmt::Debug for AwsAccessKeyResponse {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AwsAccessKeyResponse")
            .field("access_key_id", &self.access_key_id)
            .field("secret_access_key", &"<redacted>")
            .field("token_id", &self.token_id)
            .finish()
    }
}

impl Drop for AwsAccessKeyResponse {
    fn drop(&mut self) {
        zeroize::Zeroize::zeroize(&mut self.secret_access_key);
    }
}

/// Create an AWS access key pair bound to a token (the secret is in the
/// response only).
#[utoipa::path(post, path = "/v1/tokens/aws-access-keys", tag = "tokens", request_body = AwsAccessKeyRequest,
    responses((status = 201, body = AwsAccessKeyResponse), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
pub(super) async fn create_aws_access_key(
    State(st): St,
    Extension(p): Extension<Principal>,
    ApiJson(req): ApiJson<AwsAccessKeyRequest>,
) -> ApiResult<(StatusCode, Json<AwsAccessKeyResponse>)> {
    let all = st.tokens.list().await?;
    let record = match &req.token {
        None => all.into_iter().find(|t| t.id == p.token_id),
        Some(which) => {
            p.require("tokens:manage")?;
            all.into_iter()
                .find(|t| (&t.id == which || &t.name == which) && p.covers_token(t))
        }
    }
    .ok_or_else(|| {
        crate::Error::TokenNotFound(req.token.clone().unwrap_or_else(|| p.token_id.clone()))
    })?;
    let key = st
        .aws
        .create(&p.actor(), &record)
        .await
        .map_err(|e| change_err(&st, e))?;
    Ok((
        StatusCode::CREATED,
        Json(AwsAccessKeyResponse {
            access_key_id: key.access_key_id.clone(),
            secret_access_key: key.secret_access_key.to_string(),
            token_id: key.token_id.clone(),
        }),
    ))
}
