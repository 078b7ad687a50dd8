//! The audit log over HTTP: pages, checkpoints and the verifying public key.

use super::St;
use super::error::{ApiError, ApiResult, ErrorBody};
use super::extract::ApiQuery;
use crate::tokens::Principal;
use axum::extract::State;
use axum::http::StatusCode;
use axum::{Extension, Json};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// A page of the audit log.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
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

/// A page of the audit log.
#[utoipa::path(get, path = "/v1/audit", tag = "audit", params(AuditQuery),
    responses((status = 200, body = AuditPage), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)),
    security(("bearer" = ["audit:read"])))]
pub(super) async fn audit_page(
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
    let entries = st.keys.audit_entries(q.after.unwrap_or(0), limit).await?;
    let next_after = (entries.len() == limit as usize)
        .then(|| entries.last().map(|e| e.seq))
        .flatten();
    Ok(Json(AuditPage {
        entries,
        next_after,
    }))
}

/// Which checkpoint to return.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct CheckpointQuery {
    /// Instead of signing the head now, the oldest stored checkpoint at or
    /// after this entry (the one that hands signing over after a custody move).
    pub covering: Option<u64>,
}

/// Sign the audit head now and return the checkpoint (or, with `covering`,
/// return a stored one).
#[utoipa::path(get, path = "/v1/audit/checkpoint", tag = "audit", params(CheckpointQuery),
    responses((status = 200, body = Object), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("bearer" = ["audit:read"])))]
pub(super) async fn audit_checkpoint(
    State(st): St,
    Extension(p): Extension<Principal>,
    ApiQuery(q): ApiQuery<CheckpointQuery>,
) -> ApiResult<Json<crate::audit::Checkpoint>> {
    p.require("audit:read")?;
    if let Some(seq) = q.covering {
        if i64::try_from(seq).is_err() {
            return Err(ApiError::malformed("covering must be at most 2^63 - 1"));
        }
        return match st.keys.checkpoint_covering(seq).await? {
            Some(c) => Ok(Json(c)),
            None => Err(ApiError::new(
                StatusCode::NOT_FOUND,
                "not_found",
                "no checkpoint covers that entry yet",
            )),
        };
    }
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
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct AuditPublicKey {
    /// `fk1sig:` followed by the key in unpadded URL-safe base64.
    pub public_key: String,
}

/// The public key that verifies audit checkpoints (for `fleetkey audit verify`).
#[utoipa::path(get, path = "/v1/audit/public-key", tag = "audit",
    responses((status = 200, body = AuditPublicKey), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)),
    security(("bearer" = ["audit:read"])))]
pub(super) async fn audit_public_key(
    State(st): St,
    Extension(p): Extension<Principal>,
) -> ApiResult<Json<AuditPublicKey>> {
    p.require("audit:read")?;
    Ok(Json(AuditPublicKey {
        public_key: crate::audit::verify::public_key_text(&st.keys.public_key()),
    }))
}

/// How to verify.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct VerifyQuery {
    /// Start again from the first entry instead of going on from the last call
    /// (default false).
    pub full: Option<bool>,
}

/// The stored audit chain verified in place: every entry's hash chain (on from
/// the last call; from genesis with `full=true`; at most 200,000 entries per
/// call) and the newest checkpoint's signature and head.
#[utoipa::path(get, path = "/v1/audit/verify", tag = "audit", params(VerifyQuery),
    responses((status = 200, body = crate::audit::status::ChainStatus), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)),
    security(("bearer" = ["audit:read"])))]
pub(super) async fn audit_verify(
    State(st): St,
    Extension(p): Extension<Principal>,
    ApiQuery(q): ApiQuery<VerifyQuery>,
) -> ApiResult<Json<crate::audit::status::ChainStatus>> {
    p.require("audit:read")?;
    Ok(Json(st.keys.verify_audit(q.full.unwrap_or(false)).await?))
}
