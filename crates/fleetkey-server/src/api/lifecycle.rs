//! A device's life over HTTP: onboarding challenges and completion, wipe receipts,
//! operator state changes, decommissioning, claim codes and claims.

use super::St;
use super::error::{ApiError, ApiResult, ErrorBody};
use super::extract::{ApiJson, ApiPath, b64};
use super::fleets::{DeviceInfo, key32};
use super::{change_err, device_in_fleet};
use crate::tokens::Principal;
use axum::extract::State;
use axum::http::StatusCode;
use axum::{Extension, Json};
use base64::{Engine as _, engine::general_purpose::STANDARD as B64};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// Ask for an onboarding challenge (no token: the device proves itself later).
#[derive(Debug, Deserialize, ToSchema, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ChallengeRequest {
    /// The device id from its birth credential.
    pub device_id: String,
}

/// A single-use challenge: sign `onboarding_message(device_id, nonce, issued_at)`.
#[derive(Debug, Serialize, ToSchema, Deserialize)]
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
#[derive(Debug, Deserialize, ToSchema, Serialize)]
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
#[derive(Debug, Serialize, ToSchema, Deserialize)]
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
    /// Recorded in the audit log (at most 256 bytes).
    pub reason: String,
    /// Also finish now, without the device's wipe receipt (a device that will
    /// never come back): `decommissioned`, the wipe command cancelled, the audit
    /// entry `device.decommission_complete` recording `"wipe_confirmed": false`.
    /// A device not yet decommissioning is first decommissioned as without it.
    #[serde(default)]
    pub complete: bool,
}

fn nonce32(s: &str) -> ApiResult<[u8; 32]> {
    key32("nonce", s)
}

/// Get a single-use onboarding challenge for a manufactured device.
#[utoipa::path(post, path = "/v1/onboarding/challenge", tag = "onboarding", request_body = ChallengeRequest,
    responses((status = 200, body = ChallengeResponse), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)),
    security(()))]
pub(super) async fn onboarding_challenge(
    State(st): St,
    ApiJson(req): ApiJson<ChallengeRequest>,
) -> ApiResult<Json<ChallengeResponse>> {
    let c = st.fleets.onboarding.challenge(&req.device_id).await?;
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
pub(super) async fn onboarding_complete(
    State(st): St,
    ApiJson(req): ApiJson<OnboardRequest>,
) -> ApiResult<Json<OnboardResponse>> {
    let cred = b64("birth_credential", &req.birth_credential)?;
    let nonce = nonce32(&req.nonce)?;
    let sig = b64("signature", &req.signature)?;
    let (op, device) = st
        .fleets
        .onboarding
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
pub(super) async fn wipe_receipt(
    State(st): St,
    ApiJson(req): ApiJson<WipeReceiptRequest>,
) -> ApiResult<Json<DeviceInfo>> {
    let sig = b64("signature", &req.signature)?;
    let d = st
        .fleets
        .onboarding
        .confirm_wipe(&req.device_id, req.wiped_at, &sig)
        .await
        .map_err(|e| change_err(&st, e))?;
    Ok(Json(d.into()))
}

/// Activate, suspend or resume a device (the life-cycle table applies).
#[utoipa::path(post, path = "/v1/fleets/{fleet}/devices/{id}/state", tag = "fleets",
    params(("fleet" = String, Path, description = "Fleet name"), ("id" = String, Path, description = "Device id")),
    request_body = StateRequest,
    responses((status = 200, body = DeviceInfo), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)),
    security(("bearer" = ["operate:{fleet}"])))]
pub(super) async fn set_device_state(
    State(st): St,
    Extension(p): Extension<Principal>,
    ApiPath((fleet, id)): ApiPath<(String, String)>,
    ApiJson(req): ApiJson<StateRequest>,
) -> ApiResult<Json<DeviceInfo>> {
    p.require(&format!("operate:{fleet}"))?;
    device_in_fleet(&st, &fleet, &id).await?;
    let d = st
        .fleets
        .onboarding
        .transition(&p.actor(), &id, req.state)
        .await
        .map_err(|e| change_err(&st, e))?;
    Ok(Json(d.into()))
}

/// Decommission a device: audit entry and revocation of all its credentials at once.
#[utoipa::path(post, path = "/v1/fleets/{fleet}/devices/{id}/decommission", tag = "fleets",
    params(("fleet" = String, Path, description = "Fleet name"), ("id" = String, Path, description = "Device id")),
    request_body = DecommissionRequest,
    responses((status = 200, body = DeviceInfo), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)),
    security(("bearer" = ["operate:{fleet}"])))]
pub(super) async fn decommission_device(
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
    let onboarding = &st.fleets.onboarding;
    let d = if req.complete {
        onboarding
            .complete_decommission(&p.actor(), &id, &req.reason)
            .await
    } else {
        onboarding.decommission(&p.actor(), &id, &req.reason).await
    };
    Ok(Json(d.map_err(|e| change_err(&st, e))?.into()))
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
pub(super) async fn create_claim_code(
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
        .onboarding
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
pub(super) async fn claim_device(
    State(st): St,
    Extension(p): Extension<Principal>,
    ApiJson(req): ApiJson<ClaimRequest>,
) -> ApiResult<Json<DeviceInfo>> {
    p.require("claim")?;
    let d = st
        .fleets
        .onboarding
        .claim(&p.actor(), &req.code, &req.claimed_by)
        .await
        .map_err(|e| change_err(&st, e))?;
    Ok(Json(d.into()))
}
