//! A device's history over HTTP (the web console's device page): its audit
//! entries, its recorded sessions and the latest telemetry this instance
//! received from it.

use super::St;
use super::error::{ApiError, ApiResult, ErrorBody};
use super::extract::{ApiPath, ApiQuery};
use crate::telemetry::recent::TelemetryPoint;
use crate::tokens::Principal;
use axum::extract::State;
use axum::{Extension, Json};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// How much history.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct HistoryQuery {
    /// At most this many events and this many sessions (1–200, default 50).
    pub limit: Option<u32>,
    /// Only events before this audit sequence number (the next page: the
    /// `seq` of the last event of the previous one).
    pub before: Option<u64>,
}

/// One recorded session.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct SessionInfo {
    /// Session id (the first 16 bytes of the handshake hash, hex).
    pub id: String,
    /// The session it resumed, if any.
    pub resumed: Option<String>,
    /// Noise pattern (`IK`, `XX`, `IKpsk2+ML-KEM-768`).
    pub pattern: String,
    /// The device's address.
    pub peer: String,
    /// When the handshake completed (Unix seconds).
    pub started_at: i64,
    /// When it ended; absent while open (or when the server stopped without
    /// recording the end).
    pub ended_at: Option<i64>,
    /// Messages from the device.
    pub messages_in: u64,
    /// Messages to the device.
    pub messages_out: u64,
}

/// A device's history.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct DeviceHistoryView {
    /// Device id.
    pub device_id: String,
    /// Its state now.
    pub state: crate::store::DeviceState,
    /// Its audit entries (subject `device:<id>`), newest first, in the audit
    /// export's format (`seq`, `time`, `actor`, `action`, `subject`, `details`,
    /// hashes).
    #[schema(value_type = Vec<Object>)]
    pub events: Vec<crate::audit::AuditEntry>,
    /// Pass as `before` for older events; absent when there are none.
    pub next_before: Option<u64>,
    /// Its sessions, newest first (ended sessions are pruned after a while).
    pub sessions: Vec<SessionInfo>,
    /// The latest telemetry this instance received from it, oldest first (at
    /// most 32 messages; empty when it sent none to this instance lately).
    pub telemetry: Vec<TelemetryPoint>,
}

/// A device's history: audit entries, sessions, latest telemetry.
#[utoipa::path(get, path = "/v1/fleets/{fleet}/devices/{id}/history", tag = "fleets",
    params(("fleet" = String, Path, description = "Fleet name"), ("id" = String, Path, description = "Device id"), HistoryQuery),
    responses((status = 200, body = DeviceHistoryView), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("bearer" = ["devices:{fleet}"])))]
pub(super) async fn device_history(
    State(st): St,
    Extension(p): Extension<Principal>,
    ApiPath((fleet, id)): ApiPath<(String, String)>,
    ApiQuery(q): ApiQuery<HistoryQuery>,
) -> ApiResult<Json<DeviceHistoryView>> {
    p.require(&format!("devices:{fleet}"))?;
    let limit = q.limit.unwrap_or(50);
    if !(1..=crate::fleet::history::MAX_LIMIT).contains(&limit) {
        return Err(ApiError::malformed("limit must be between 1 and 200"));
    }
    if q.before.is_some_and(|b| i64::try_from(b).is_err()) {
        return Err(ApiError::malformed("before must be at most 2^63 - 1"));
    }
    let h = st
        .fleets
        .history
        .device(&fleet, &id, limit, q.before)
        .await?;
    let next_before = (h.events.len() == limit as usize)
        .then(|| h.events.last().map(|e| e.seq))
        .flatten();
    Ok(Json(DeviceHistoryView {
        device_id: h.device.id,
        state: h.device.state,
        events: h.events,
        next_before,
        sessions: h
            .sessions
            .into_iter()
            .map(|s| SessionInfo {
                id: s.id,
                resumed: s.previous,
                pattern: s.pattern,
                peer: s.peer,
                started_at: s.started_at,
                ended_at: s.ended_at,
                messages_in: s.messages_in,
                messages_out: s.messages_out,
            })
            .collect(),
        telemetry: st.recent_telemetry.latest(&id),
    }))
}
