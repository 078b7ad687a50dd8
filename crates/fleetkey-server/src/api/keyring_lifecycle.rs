//! A keyring's life around its keys over HTTP: disable and enable, scheduled
//! deletion and its cancellation, description and tags, and aliases. Every route
//! needs `keys:manage`.

use super::error::{ApiResult, ErrorBody};
use super::extract::{ApiJson, ApiPath, ApiQuery, KeyringPath};
use super::{AppState, St, keyring_change};
use crate::keys::{ALIAS_PREFIX, AliasInfo, KeyringInfo};
use crate::tokens::Principal;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, post, put};
use axum::{Extension, Json, Router};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::sync::Arc;
use utoipa::{IntoParams, ToSchema};

/// Schedule the deletion of a keyring's key material.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ScheduleDeletionRequest {
    /// Waiting period in days, 7 to 30; until then the deletion can be cancelled.
    #[schema(minimum = 7, maximum = 30)]
    pub days: u32,
}

/// New description and tags; an omitted field keeps its value.
#[derive(Debug, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct KeyringDetailsRequest {
    /// Free text, at most 256 characters, no control characters.
    #[serde(default)]
    #[schema(max_length = 256)]
    pub description: Option<String>,
    /// Labels, replacing all current ones: at most 50; keys 1–128 characters,
    /// values at most 256, no control characters.
    #[serde(default)]
    pub tags: Option<BTreeMap<String, String>>,
}

/// Point an alias at a keyring.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PutAliasRequest {
    /// The keyring's own name (not another alias).
    pub keyring: String,
}

/// Aliases.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct AliasList {
    /// By alias.
    pub aliases: Vec<AliasInfo>,
}

/// Which aliases to list.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct AliasQuery {
    /// Only the aliases of this keyring (its name or one of its aliases).
    pub keyring: Option<String>,
}

/// Disable a keyring: every cryptographic operation is refused until it is enabled.
#[utoipa::path(post, path = "/v1/keyrings/{name}/disable", tag = "keyrings", params(("name" = String, Path, description = "Keyring name or alias")),
    responses((status = 200, body = KeyringInfo), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 409, body = ErrorBody), (status = 410, body = ErrorBody)),
    security(("bearer" = ["keys:manage"])))]
pub(super) async fn disable(
    State(st): St,
    Extension(p): Extension<Principal>,
    KeyringPath(name): KeyringPath,
) -> ApiResult<Json<KeyringInfo>> {
    p.require("keys:manage")?;
    let info = st.keys.disable(&p.actor(), &name).await;
    Ok(Json(keyring_change(&st, "disable", info)?))
}

/// Enable a disabled keyring.
#[utoipa::path(post, path = "/v1/keyrings/{name}/enable", tag = "keyrings", params(("name" = String, Path, description = "Keyring name or alias")),
    responses((status = 200, body = KeyringInfo), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 409, body = ErrorBody), (status = 410, body = ErrorBody)),
    security(("bearer" = ["keys:manage"])))]
pub(super) async fn enable(
    State(st): St,
    Extension(p): Extension<Principal>,
    KeyringPath(name): KeyringPath,
) -> ApiResult<Json<KeyringInfo>> {
    p.require("keys:manage")?;
    let info = st.keys.enable(&p.actor(), &name).await;
    Ok(Json(keyring_change(&st, "enable", info)?))
}

/// Schedule the erasure of the keyring's key material after a waiting period.
#[utoipa::path(post, path = "/v1/keyrings/{name}/schedule-deletion", tag = "keyrings", params(("name" = String, Path, description = "Keyring name or alias")),
    request_body = ScheduleDeletionRequest,
    responses((status = 200, body = KeyringInfo), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 409, body = ErrorBody), (status = 410, body = ErrorBody)),
    security(("bearer" = ["keys:manage"])))]
pub(super) async fn schedule_deletion(
    State(st): St,
    Extension(p): Extension<Principal>,
    KeyringPath(name): KeyringPath,
    ApiJson(req): ApiJson<ScheduleDeletionRequest>,
) -> ApiResult<Json<KeyringInfo>> {
    p.require("keys:manage")?;
    let info = st.keys.schedule_deletion(&p.actor(), &name, req.days).await;
    Ok(Json(keyring_change(&st, "schedule_deletion", info)?))
}

/// Cancel a scheduled deletion; the keyring comes back disabled.
#[utoipa::path(post, path = "/v1/keyrings/{name}/cancel-deletion", tag = "keyrings", params(("name" = String, Path, description = "Keyring name")),
    responses((status = 200, body = KeyringInfo), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 409, body = ErrorBody), (status = 410, body = ErrorBody)),
    security(("bearer" = ["keys:manage"])))]
pub(super) async fn cancel_deletion(
    State(st): St,
    Extension(p): Extension<Principal>,
    KeyringPath(name): KeyringPath,
) -> ApiResult<Json<KeyringInfo>> {
    p.require("keys:manage")?;
    let info = st.keys.cancel_deletion(&p.actor(), &name).await;
    Ok(Json(keyring_change(&st, "cancel_deletion", info)?))
}

/// Change the description and tags.
#[utoipa::path(patch, path = "/v1/keyrings/{name}", tag = "keyrings", params(("name" = String, Path, description = "Keyring name or alias")),
    request_body = KeyringDetailsRequest,
    responses((status = 200, body = KeyringInfo), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 409, body = ErrorBody), (status = 410, body = ErrorBody)),
    security(("bearer" = ["keys:manage"])))]
pub(super) async fn set_details(
    State(st): St,
    Extension(p): Extension<Principal>,
    KeyringPath(name): KeyringPath,
    ApiJson(req): ApiJson<KeyringDetailsRequest>,
) -> ApiResult<Json<KeyringInfo>> {
    p.require("keys:manage")?;
    let info = st
        .keys
        .set_details(&p.actor(), &name, req.description, req.tags)
        .await;
    Ok(Json(keyring_change(&st, "details", info)?))
}

/// List aliases.
#[utoipa::path(get, path = "/v1/aliases", tag = "keyrings", params(AliasQuery),
    responses((status = 200, body = AliasList), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody)),
    security(("bearer" = ["keys:manage"])))]
pub(super) async fn list_aliases(
    State(st): St,
    Extension(p): Extension<Principal>,
    ApiQuery(q): ApiQuery<AliasQuery>,
) -> ApiResult<Json<AliasList>> {
    p.require("keys:manage")?;
    Ok(Json(AliasList {
        aliases: st.keys.aliases(q.keyring.as_deref()).await?,
    }))
}

/// Create or re-point `alias/{alias}`.
#[utoipa::path(put, path = "/v1/aliases/{alias}", tag = "keyrings",
    params(("alias" = String, Path, description = "The alias without its `alias/` prefix (a name of the name grammar)")),
    request_body = PutAliasRequest,
    responses((status = 200, body = AliasInfo), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 409, body = ErrorBody), (status = 410, body = ErrorBody)),
    security(("bearer" = ["keys:manage"])))]
pub(super) async fn put_alias(
    State(st): St,
    Extension(p): Extension<Principal>,
    ApiPath(alias): ApiPath<String>,
    ApiJson(req): ApiJson<PutAliasRequest>,
) -> ApiResult<Json<AliasInfo>> {
    p.require("keys:manage")?;
    let alias = format!("{ALIAS_PREFIX}{alias}");
    let info = st.keys.put_alias(&p.actor(), &alias, &req.keyring).await;
    Ok(Json(keyring_change(&st, "alias_put", info)?))
}

/// Remove `alias/{alias}` (its keyring is untouched).
#[utoipa::path(delete, path = "/v1/aliases/{alias}", tag = "keyrings",
    params(("alias" = String, Path, description = "The alias without its `alias/` prefix")),
    responses((status = 204), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("bearer" = ["keys:manage"])))]
pub(super) async fn delete_alias(
    State(st): St,
    Extension(p): Extension<Principal>,
    ApiPath(alias): ApiPath<String>,
) -> ApiResult<StatusCode> {
    p.require("keys:manage")?;
    let alias = format!("{ALIAS_PREFIX}{alias}");
    let r = st.keys.delete_alias(&p.actor(), &alias).await;
    keyring_change(&st, "alias_delete", r)?;
    Ok(StatusCode::NO_CONTENT)
}

/// This module's routes (behind the token check).
pub(super) fn routes() -> Router<Arc<AppState>> {
    Router::new()
        .route("/v1/keyrings/{name}/disable", post(disable))
        .route("/v1/keyrings/{name}/enable", post(enable))
        .route(
            "/v1/keyrings/{name}/schedule-deletion",
            post(schedule_deletion),
        )
        .route("/v1/keyrings/{name}/cancel-deletion", post(cancel_deletion))
        .route("/v1/aliases", get(list_aliases))
        .route("/v1/aliases/{alias}", put(put_alias).delete(delete_alias))
}

/// The OpenAPI paths of this module.
#[derive(utoipa::OpenApi)]
#[openapi(
    paths(
        disable,
        enable,
        schedule_deletion,
        cancel_deletion,
        set_details,
        list_aliases,
        put_alias,
        delete_alias
    ),
    components(schemas(AliasInfo, crate::store::KeyringState))
)]
pub(super) struct KeyringLifecycleDoc;
