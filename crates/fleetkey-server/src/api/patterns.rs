//! Which device-session patterns the listener accepts: the service's list and
//! each fleet's, read and changed at run time (`fleet/patterns.rs`).

use super::St;
use super::change_err;
use super::error::{ApiResult, ErrorBody};
use super::extract::{ApiJson, ApiPath};
use crate::fleet::patterns::{PatternsInfo, SessionPattern};
use crate::tokens::Principal;
use axum::extract::State;
use axum::{Extension, Json};
use serde::Deserialize;
use utoipa::ToSchema;

/// A new list, or none to inherit (a fleet: the service's list; the service:
/// every pattern).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PatternsRequest {
    /// Some of `ik`, `ik-hybrid`, `xx` (at least one), or null.
    pub patterns: Option<Vec<SessionPattern>>,
}

/// The service-wide list: it bounds every fleet's.
#[utoipa::path(get, path = "/v1/session-patterns", tag = "fleets",
    responses((status = 200, body = PatternsInfo), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)),
    security(("bearer" = ["fleets:manage"])))]
pub(super) async fn service_patterns(
    State(st): St,
    Extension(p): Extension<Principal>,
) -> ApiResult<Json<PatternsInfo>> {
    p.require("fleets:manage")?;
    Ok(Json(st.fleets.sessions.patterns(None).await?))
}

/// Set the service-wide list (audited; every instance applies it within a second).
#[utoipa::path(put, path = "/v1/session-patterns", tag = "fleets", request_body = PatternsRequest,
    responses((status = 200, body = PatternsInfo), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)),
    security(("bearer" = ["fleets:manage"])))]
pub(super) async fn set_service_patterns(
    State(st): St,
    Extension(p): Extension<Principal>,
    ApiJson(req): ApiJson<PatternsRequest>,
) -> ApiResult<Json<PatternsInfo>> {
    p.require("fleets:manage")?;
    let info = st
        .fleets
        .sessions
        .set_patterns(&p.actor(), None, req.patterns.as_deref())
        .await
        .map_err(|e| change_err(&st, e))?;
    Ok(Json(info))
}

/// A fleet's list and what its devices may use now.
#[utoipa::path(get, path = "/v1/fleets/{fleet}/session-patterns", tag = "fleets",
    params(("fleet" = String, Path, description = "Fleet name")),
    responses((status = 200, body = PatternsInfo), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("bearer" = ["devices:{fleet}"])))]
pub(super) async fn fleet_patterns(
    State(st): St,
    Extension(p): Extension<Principal>,
    ApiPath(fleet): ApiPath<String>,
) -> ApiResult<Json<PatternsInfo>> {
    p.require(&format!("devices:{fleet}"))?;
    Ok(Json(st.fleets.sessions.patterns(Some(&fleet)).await?))
}

/// Set a fleet's list, such as `["ik-hybrid"]` to require the post-quantum
/// hybrid (audited; every instance applies it within a second).
#[utoipa::path(put, path = "/v1/fleets/{fleet}/session-patterns", tag = "fleets",
    params(("fleet" = String, Path, description = "Fleet name")), request_body = PatternsRequest,
    responses((status = 200, body = PatternsInfo), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("bearer" = ["operate:{fleet}"])))]
pub(super) async fn set_fleet_patterns(
    State(st): St,
    Extension(p): Extension<Principal>,
    ApiPath(fleet): ApiPath<String>,
    ApiJson(req): ApiJson<PatternsRequest>,
) -> ApiResult<Json<PatternsInfo>> {
    p.require(&format!("operate:{fleet}"))?;
    let info = st
        .fleets
        .sessions
        .set_patterns(&p.actor(), Some(&fleet), req.patterns.as_deref())
        .await
        .map_err(|e| change_err(&st, e))?;
    Ok(Json(info))
}
