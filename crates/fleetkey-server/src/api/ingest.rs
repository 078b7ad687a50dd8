//! Constrained devices through gateways: `POST /v1/ingest` (frames or UART lines),
//! and the factory's recipient for sealing factory secrets.

use super::error::{ApiError, ApiResult, ErrorBody};
use super::{ApiJson, St, b64};
use crate::tokens::Principal;
use axum::extract::State;
use axum::{Extension, Json, Router, routing::get, routing::post};
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use utoipa::ToSchema;

/// Most frames and lines in one request.
pub const MAX_INGEST_ITEMS: usize = 1000;

/// Frames from a gateway.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct IngestRequest {
    /// Base64 frames (one device frame each).
    #[serde(default)]
    pub frames: Vec<String>,
    /// UART lines as the device printed them: `FRM,<hex frame>` lines are verified,
    /// `EVT,…` lines are recorded as events, anything else is refused.
    #[serde(default)]
    pub lines: Vec<String>,
}

/// What became of one item.
#[derive(Debug, Serialize, ToSchema)]
pub struct IngestResult {
    /// Verified (or, for an `EVT` line, recorded).
    pub ok: bool,
    /// `session_start`, `data`, `control` (an acknowledgement) or `event`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// The device, once verified.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub device_id: Option<String>,
    /// Why it was refused (`forged`, `replay`, `old_boot`, `unknown_device`, …).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// A server→device control frame (base64) carrying the device's oldest open
    /// command, for the gateway to deliver to the device (docs/protocol.md,
    /// "Downlink"); at most one per command and second.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub downlink: Option<String>,
}

/// Results in request order (frames first, then lines).
#[derive(Debug, Serialize, ToSchema)]
pub struct IngestResponse {
    /// Items verified or recorded.
    pub accepted: usize,
    /// Items refused.
    pub refused: usize,
    /// One per item.
    pub results: Vec<IngestResult>,
}

fn refused(reason: &str) -> IngestResult {
    IngestResult {
        ok: false,
        kind: None,
        device_id: None,
        reason: Some(reason.to_owned()),
        downlink: None,
    }
}

fn hex_frame(h: &str) -> Option<Vec<u8>> {
    if !h.len().is_multiple_of(2)
        || h.len() > 2 * fleetkey_device::frame::MAX_FRAME
        || !h.is_ascii()
    {
        return None;
    }
    (0..h.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&h[i..i + 2], 16).ok())
        .collect()
}

/// Verify constrained devices' frames forwarded by a gateway. Each frame is judged
/// on its own; a device outside the token's `ingest:<fleet>` scopes is refused as
/// `unknown_device`, the same answer as for an id that does not exist.
#[utoipa::path(post, path = "/v1/ingest", tag = "devices", request_body = IngestRequest,
    responses((status = 200, body = IngestResponse), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 503, body = ErrorBody)),
    security(("bearer" = ["ingest:{fleet}"])))]
async fn ingest(
    State(st): St,
    Extension(p): Extension<Principal>,
    ApiJson(req): ApiJson<IngestRequest>,
) -> ApiResult<Json<IngestResponse>> {
    if !p
        .scopes
        .iter()
        .any(|s| s == "admin" || s == "*" || s.starts_with("ingest:"))
    {
        p.require("ingest:*")?;
    }
    if req.frames.len() + req.lines.len() > MAX_INGEST_ITEMS {
        return Err(ApiError::malformed(format!(
            "at most {MAX_INGEST_ITEMS} frames and lines per request"
        )));
    }
    let ing = st.ingest.get().ok_or_else(|| {
        ApiError::new(
            axum::http::StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            "the ingest path is not running",
        )
    })?;
    let allowed = |fleet: &str| p.require(&format!("ingest:{fleet}")).is_ok();
    let mut results = Vec::with_capacity(req.frames.len() + req.lines.len());
    let mut frames: Vec<Option<Vec<u8>>> = Vec::new();
    for f in &req.frames {
        frames.push(Some(b64("frames[]", f)?));
    }
    for l in &req.lines {
        let l = l.trim_end();
        if let Some(h) = l.strip_prefix("FRM,") {
            frames.push(hex_frame(h).or(Some(Vec::new())));
        } else if l.starts_with("EVT,") && l.len() <= 256 {
            frames.push(None);
        } else {
            frames.push(Some(Vec::new()));
        }
    }
    for f in frames {
        let r = match f {
            None => IngestResult {
                ok: true,
                kind: Some("event".into()),
                device_id: None,
                reason: None,
                downlink: None,
            },
            Some(mut bytes) if !bytes.is_empty() => {
                match ing.accept_scoped(&mut bytes, &allowed).await {
                    Ok(a) => IngestResult {
                        ok: true,
                        kind: Some(
                            match a.kind {
                                fleetkey_device::FrameKind::SessionStart => "session_start",
                                fleetkey_device::FrameKind::Data => "data",
                                fleetkey_device::FrameKind::Control => "control",
                            }
                            .into(),
                        ),
                        device_id: Some(a.device_id),
                        reason: None,
                        downlink: a.downlink.map(|f| {
                            use base64::Engine as _;
                            base64::engine::general_purpose::STANDARD.encode(f)
                        }),
                    },
                    Err(r) => IngestResult {
                        downlink: r.downlink.map(|f| {
                            use base64::Engine as _;
                            base64::engine::general_purpose::STANDARD.encode(f)
                        }),
                        ..refused(r.reason)
                    },
                }
            }
            Some(_) => refused("malformed"),
        };
        results.push(r);
    }
    let accepted = results.iter().filter(|r| r.ok).count();
    Ok(Json(IngestResponse {
        accepted,
        refused: results.len() - accepted,
        results,
    }))
}

/// The factory recipient.
#[derive(Debug, Serialize, ToSchema, Deserialize)]
pub struct FactoryRecipient {
    /// `fk1r:` recipient string (X-Wing); seal constrained devices' factory secrets to it.
    pub recipient: String,
    /// The associated data to use, followed by the device's hardware id.
    pub aad_prefix: String,
}

/// The recipient jigs seal constrained devices' factory secrets to.
#[utoipa::path(get, path = "/v1/factory/recipient", tag = "fleets",
    responses((status = 200, body = FactoryRecipient), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)),
    security(("bearer" = ["factory:{fleet}"])))]
async fn factory_recipient(
    State(st): St,
    Extension(p): Extension<Principal>,
) -> ApiResult<Json<FactoryRecipient>> {
    if !p
        .scopes
        .iter()
        .any(|s| s == "admin" || s == "*" || s.starts_with("factory:"))
    {
        p.require("factory:*")?;
    }
    Ok(Json(FactoryRecipient {
        recipient: st.fleets.onboarding.factory_recipient().await?,
        aad_prefix: crate::fleet::constrained::SECRET_AAD_PREFIX.into(),
    }))
}

/// Whether a fleet accepts static-key (lab) devices.
#[derive(Debug, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StaticKeyPolicy {
    /// Accept constrained devices in static-key mode (no forward secrecy: anyone
    /// with a device's factory key reads every boot). Only for trusted labs.
    pub allowed: bool,
}

/// Allow or refuse static-key (lab) devices in a fleet (audited).
#[utoipa::path(put, path = "/v1/fleets/{fleet}/static-key", tag = "fleets",
    params(("fleet" = String, Path, description = "Fleet name")), request_body = StaticKeyPolicy,
    responses((status = 200, body = StaticKeyPolicy), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("bearer" = ["operate:{fleet}"])))]
async fn set_static_key(
    State(st): St,
    Extension(p): Extension<Principal>,
    super::ApiPath(fleet): super::ApiPath<String>,
    ApiJson(req): ApiJson<StaticKeyPolicy>,
) -> ApiResult<Json<StaticKeyPolicy>> {
    p.require(&format!("operate:{fleet}"))?;
    st.fleets
        .onboarding
        .allow_static_key(&p.actor(), &fleet, req.allowed)
        .await
        .map_err(|e| super::change_err(&st, e))?;
    Ok(Json(req))
}

/// Routes (token-authenticated).
pub(super) fn routes() -> Router<Arc<super::AppState>> {
    Router::new()
        .route("/v1/ingest", post(ingest))
        .route("/v1/factory/recipient", get(factory_recipient))
        .route(
            "/v1/fleets/{fleet}/static-key",
            axum::routing::put(set_static_key),
        )
}

/// The OpenAPI paths of this module.
#[derive(utoipa::OpenApi)]
#[openapi(paths(ingest, factory_recipient, set_static_key))]
pub(super) struct IngestDoc;
