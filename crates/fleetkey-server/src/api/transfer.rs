//! Key material in and out over HTTP, always sealed to an X-Wing recipient:
//! the import recipient, import (BYOK) and export (docs/operations.md, "Import
//! and export").

use super::error::{ApiResult, ErrorBody};
use super::extract::{ApiJson, KeyringPath, b64};
use super::{AppState, St, keyring_change};
use crate::tokens::Principal;
use axum::extract::State;
use axum::routing::{get, post};
use axum::{Extension, Json, Router};
use base64::{Engine as _, engine::general_purpose::STANDARD as B64};
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use utoipa::ToSchema;

/// Where to seal key material for import.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ImportRecipientResponse {
    /// `fk1r:` recipient string (X-Wing).
    pub recipient: String,
    /// The key id envelopes sealed to it carry.
    pub key_id: String,
    /// Envelopes sealed to it are refused after this (Unix seconds).
    pub expires_at: i64,
    /// The associated data to seal with: this string followed by the keyring name.
    pub aad_prefix: String,
}

/// Key material to import.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ImportRequest {
    /// Base64 fk1 recipient envelope (at most 4 KiB) of exactly 32 bytes, sealed to
    /// the import recipient with aad `fleetkey import v1:<keyring name>`.
    pub ciphertext: String,
}

/// The version that holds the imported material (now the primary).
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ImportResponse {
    /// The new version.
    pub key_version: u32,
}

/// Where to seal an exported version.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ExportRequest {
    /// `fk1r:` recipient string (X-Wing) of the receiver.
    pub recipient: String,
    /// The version (default: the primary).
    #[serde(default)]
    pub key_version: Option<u32>,
}

/// An exported version, sealed to the requested recipient.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ExportResponse {
    /// Base64 fk1 recipient envelope of the version's 32 bytes, with aad
    /// `fleetkey export v1:<keyring name>/v<version>`.
    pub ciphertext: String,
    /// The version exported.
    pub key_version: u32,
}

/// Today's import recipient.
#[utoipa::path(get, path = "/v1/keyrings/{name}/import-recipient", tag = "keyrings", params(("name" = String, Path, description = "Keyring name or alias")),
    responses((status = 200, body = ImportRecipientResponse), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("bearer" = ["import:{name}"])))]
pub(super) async fn import_recipient(
    State(st): St,
    Extension(p): Extension<Principal>,
    KeyringPath(name): KeyringPath,
) -> ApiResult<Json<ImportRecipientResponse>> {
    p.require(&format!("import:{name}"))?;
    st.keys.keyring(&name).await?;
    let r = st.keys.import_recipient().await?;
    Ok(Json(ImportRecipientResponse {
        recipient: fleetkey_crypto::keyfile::recipient_string(&r.recipient),
        key_id: r.key_id,
        expires_at: r.expires_at,
        aad_prefix: crate::keys::IMPORT_AAD_PREFIX.into(),
    }))
}

/// Import key material as a new primary version.
#[utoipa::path(post, path = "/v1/keyrings/{name}/import", tag = "keyrings", params(("name" = String, Path, description = "Keyring name or alias")),
    request_body = ImportRequest,
    responses((status = 200, body = ImportResponse), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 409, body = ErrorBody), (status = 410, body = ErrorBody), (status = 422, body = ErrorBody)),
    security(("bearer" = ["import:{name}"])))]
pub(super) async fn import(
    State(st): St,
    Extension(p): Extension<Principal>,
    KeyringPath(name): KeyringPath,
    ApiJson(req): ApiJson<ImportRequest>,
) -> ApiResult<Json<ImportResponse>> {
    p.require(&format!("import:{name}"))?;
    let sealed = b64("ciphertext", &req.ciphertext)?;
    let r = st.keys.import(&p.actor(), &name, &sealed).await;
    let key_version = keyring_change(&st, "import", r)?;
    Ok(Json(ImportResponse { key_version }))
}

/// Export a version sealed to a recipient (exportable keyrings only).
#[utoipa::path(post, path = "/v1/keyrings/{name}/export", tag = "keyrings", params(("name" = String, Path, description = "Keyring name or alias")),
    request_body = ExportRequest,
    responses((status = 200, body = ExportResponse), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 409, body = ErrorBody), (status = 410, body = ErrorBody), (status = 422, body = ErrorBody)),
    security(("bearer" = ["export:{name}"])))]
pub(super) async fn export(
    State(st): St,
    Extension(p): Extension<Principal>,
    KeyringPath(name): KeyringPath,
    ApiJson(req): ApiJson<ExportRequest>,
) -> ApiResult<Json<ExportResponse>> {
    p.require(&format!("export:{name}"))?;
    let to = fleetkey_crypto::keyfile::parse_recipient(&req.recipient)
        .map_err(|_| crate::Error::KeyRefused("recipient", "not an fk1r: X-Wing recipient"));
    let r = match to {
        Ok(to) => {
            st.keys
                .export(&p.actor(), &name, req.key_version, &to)
                .await
        }
        Err(e) => Err(e),
    };
    let (key_version, sealed) = keyring_change(&st, "export", r)?;
    Ok(Json(ExportResponse {
        ciphertext: B64.encode(sealed),
        key_version,
    }))
}

/// This module's routes (behind the token check).
pub(super) fn routes() -> Router<Arc<AppState>> {
    Router::new()
        .route(
            "/v1/keyrings/{name}/import-recipient",
            get(import_recipient),
        )
        .route("/v1/keyrings/{name}/import", post(import))
        .route("/v1/keyrings/{name}/export", post(export))
}

/// The OpenAPI paths of this module.
#[derive(utoipa::OpenApi)]
#[openapi(paths(import_recipient, import, export))]
pub(super) struct TransferDoc;
