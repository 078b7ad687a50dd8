//! Fleets and the factory: create and show a fleet, register devices, list and
//! show them.

use super::St;
use super::change_err;
use super::error::{ApiError, ApiResult, ErrorBody};
use super::extract::{ApiJson, ApiPath, ApiQuery, b64};
use crate::Error;
use crate::names::FleetName;
use crate::tokens::Principal;
use axum::extract::State;
use axum::http::StatusCode;
use axum::{Extension, Json};
use base64::{Engine as _, engine::general_purpose::STANDARD as B64};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// Create a fleet.
#[derive(Debug, Deserialize, ToSchema, Serialize)]
#[serde(deny_unknown_fields)]
pub struct CreateFleetRequest {
    /// Name (docs/operations.md#names: 1–64 of `A-Z a-z 0-9 - _ .`, starting with a
    /// letter or a digit).
    pub name: String,
    /// Lifetime of operational credentials, seconds (default one year).
    #[serde(default)]
    pub credential_ttl_secs: Option<i64>,
}

/// A device's public keys, base64.
#[derive(Debug, Deserialize, ToSchema, Serialize)]
#[serde(deny_unknown_fields)]
pub struct DeviceKeysRequest {
    /// X25519 public key (32 bytes).
    pub x25519: String,
    /// Ed25519 public key (32 bytes).
    pub ed25519: String,
    /// ML-KEM-768 encapsulation key (1184 bytes), optional.
    #[serde(default)]
    pub ml_kem_768: Option<String>,
    /// ML-DSA-65 public key (1952 bytes), optional.
    #[serde(default)]
    pub ml_dsa_65: Option<String>,
}

/// What a factory jig sends.
#[derive(Debug, Deserialize, ToSchema, Serialize)]
#[serde(deny_unknown_fields)]
pub struct FactoryDeviceRequest {
    /// Target fleet.
    pub fleet: String,
    /// Chip UID, serial or MAC; unique across all fleets.
    pub hardware_id: String,
    /// Model.
    pub model: String,
    /// Production batch.
    pub batch: String,
    /// Jig or station.
    pub station: String,
    /// The device's public keys (made on the device).
    pub keys: DeviceKeysRequest,
    /// Factory test results (any JSON).
    #[serde(default)]
    #[schema(value_type = Object)]
    pub test_results: serde_json::Value,
    /// For a constrained-profile device (`docs/protocol.md#the-constrained-device-profile`):
    /// `constrained` or `constrained_static`; absent for a full-profile device.
    #[serde(default)]
    pub profile: Option<crate::fleet::constrained::Profile>,
    /// Base64 of the device's 32-byte factory secret (PSK or lab key) sealed to
    /// `GET /v1/factory/recipient` as an fk1 envelope with associated data
    /// `"fleetkey factory secret v1:" ‖ hardware id`; required with `profile`.
    #[serde(default)]
    pub sealed_secret: Option<String>,
}

/// A registered device (no private material exists server-side).
#[derive(Debug, Serialize, ToSchema, Deserialize)]
pub struct DeviceInfo {
    /// Device id.
    pub id: String,
    /// Fleet.
    pub fleet: String,
    /// Hardware identity.
    pub hardware_id: String,
    /// Life-cycle state.
    pub state: crate::store::DeviceState,
    /// Model.
    pub model: String,
    /// Registration time.
    pub created_at: i64,
    /// The birth credential (base64 of the COSE_Sign1).
    pub birth_credential: String,
    /// Account or site that claimed it.
    pub claimed_by: Option<String>,
    /// When its current operational credential was issued.
    pub credential_issued_at: Option<i64>,
    /// After a factory reset: the hardware id it had (`hardware_id` is then
    /// `retired:<device id>`).
    pub retired_hardware_id: Option<String>,
    /// `full` (Noise sessions), `constrained` or `constrained_static` (lab
    /// static-key mode) — `docs/protocol.md#the-constrained-device-profile`.
    pub profile: String,
    /// When the service last heard from the device (a verified session message
    /// or frame), Unix seconds; written in batches, so up to 5 s behind. Absent:
    /// never.
    pub last_seen: Option<i64>,
    /// Whether a device session (full profile, over the device listener) is
    /// open now on some instance; always false for constrained devices, which
    /// send frames without a connection (see `last_seen`).
    #[serde(default)]
    pub connected: bool,
}

impl From<crate::store::DeviceRecord> for DeviceInfo {
    fn from(d: crate::store::DeviceRecord) -> Self {
        Self {
            id: d.id,
            fleet: d.fleet,
            hardware_id: d.hardware_id,
            state: d.state,
            model: d.model,
            created_at: d.created_at,
            birth_credential: B64.encode(&d.birth_credential),
            claimed_by: d.claimed_by,
            credential_issued_at: d.credential_issued_at,
            retired_hardware_id: d.retired_hardware_id,
            profile: d.profile,
            last_seen: d.last_seen,
            connected: false,
        }
    }
}

/// A page of devices.
#[derive(Debug, Serialize, ToSchema, Deserialize)]
pub struct DeviceList {
    /// Devices by id.
    pub devices: Vec<DeviceInfo>,
    /// Pass as `after` for the next page; absent at the end.
    pub next_after: Option<String>,
}

/// Paging and filters of a device listing.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct DeviceQuery {
    /// Devices with ids after this one (the `next_after` of the previous page;
    /// default: from the start).
    pub after: Option<String>,
    /// At most this many (1–1000, default 100).
    pub limit: Option<u32>,
    /// Only devices in this life-cycle state.
    pub state: Option<crate::store::DeviceState>,
    /// Only devices of this profile: `full`, `constrained`, `constrained_static`.
    pub profile: Option<String>,
    /// Only devices not heard from since this time (Unix seconds); devices never
    /// heard from are included.
    pub seen_before: Option<i64>,
    /// Only devices heard from at or after this time (Unix seconds).
    pub seen_after: Option<i64>,
}

/// Paging of a fleet listing.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct FleetQuery {
    /// Fleets with names after this one (the `next_after` of the previous page).
    pub after: Option<String>,
    /// At most this many looked at (1–1000, default 100).
    pub limit: Option<u32>,
}

/// A page of fleets.
#[derive(Debug, Serialize, ToSchema, Deserialize)]
pub struct FleetList {
    /// Fleets by name: those the token holds a scope on (`devices:`, `factory:`
    /// or `operate:` the fleet, or `fleets:manage` for all), so a page may hold
    /// fewer than `limit`.
    pub fleets: Vec<crate::fleet::FleetInfo>,
    /// Pass as `after` for the next page; absent at the end.
    pub next_after: Option<String>,
}

/// A page size: 1–1000, default 100.
fn page_limit(limit: Option<u32>) -> ApiResult<u32> {
    match limit.unwrap_or(100) {
        n @ 1..=1000 => Ok(n),
        _ => Err(ApiError::malformed("limit must be between 1 and 1000")),
    }
}

pub(super) fn key32(field: &str, s: &str) -> ApiResult<[u8; 32]> {
    b64(field, s)?
        .try_into()
        .map_err(|_| ApiError::malformed(format!("{field} must be 32 bytes")))
}

/// Decodes a device's public keys.
pub(super) fn device_keys(
    k: &DeviceKeysRequest,
) -> ApiResult<fleetkey_crypto::credential::DeviceKeys> {
    Ok(fleetkey_crypto::credential::DeviceKeys {
        x25519: key32("keys.x25519", &k.x25519)?,
        ed25519: key32("keys.ed25519", &k.ed25519)?,
        ml_kem_768: k
            .ml_kem_768
            .as_deref()
            .map(|v| b64("keys.ml_kem_768", v))
            .transpose()?,
        ml_dsa_65: k
            .ml_dsa_65
            .as_deref()
            .map(|v| b64("keys.ml_dsa_65", v))
            .transpose()?,
    })
}

/// Create a fleet with a fresh issuing key.
#[utoipa::path(post, path = "/v1/fleets", tag = "fleets", request_body = CreateFleetRequest,
    responses((status = 201, body = crate::fleet::FleetInfo), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 409, body = ErrorBody)),
    security(("bearer" = ["fleets:manage"])))]
pub(super) async fn create_fleet(
    State(st): St,
    Extension(p): Extension<Principal>,
    ApiJson(req): ApiJson<CreateFleetRequest>,
) -> ApiResult<(StatusCode, Json<crate::fleet::FleetInfo>)> {
    p.require("fleets:manage")?;
    let name = FleetName::new(req.name)?;
    let info = st
        .fleets
        .registry
        .create_fleet(&p.actor(), &name, req.credential_ttl_secs)
        .await
        .map_err(|e| change_err(&st, e))?;
    Ok((StatusCode::CREATED, Json(info)))
}

/// A fleet's public information (issuing public key for verifying credentials).
#[utoipa::path(get, path = "/v1/fleets/{fleet}", tag = "fleets", params(("fleet" = String, Path, description = "Fleet name")),
    responses((status = 200, body = crate::fleet::FleetInfo), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("bearer" = ["devices:{fleet}"])))]
pub(super) async fn show_fleet(
    State(st): St,
    Extension(p): Extension<Principal>,
    ApiPath(fleet): ApiPath<String>,
) -> ApiResult<Json<crate::fleet::FleetInfo>> {
    p.require(&format!("devices:{fleet}"))
        .or_else(|_| p.require(&format!("factory:{fleet}")))
        .or_else(|_| p.require("fleets:manage"))?;
    Ok(Json(st.fleets.registry.fleet(&fleet).await?))
}

/// A fleet at a glance: its devices by state and profile, connected now, and
/// when they were last heard from.
#[derive(Debug, Serialize, ToSchema, Deserialize)]
pub struct FleetSummary {
    /// The fleet.
    pub fleet: String,
    /// Every device of the fleet, in any state.
    pub devices: i64,
    /// Devices by life-cycle state (states with none are left out).
    pub by_state: std::collections::BTreeMap<String, i64>,
    /// Devices by profile (`full`, `constrained`, `constrained_static`).
    pub by_profile: std::collections::BTreeMap<String, i64>,
    /// Devices with a session open now (full profile; constrained devices have
    /// no sessions, see `heard`).
    pub connected: i64,
    /// Devices heard from within the last 5 minutes, hour and day (`5m`, `1h`,
    /// `24h`; each includes the shorter), and `never`: never heard from.
    pub heard: std::collections::BTreeMap<String, i64>,
}

/// A fleet at a glance (the console's overview): devices by state and profile,
/// connected now, last heard from.
#[utoipa::path(get, path = "/v1/fleets/{fleet}/summary", tag = "fleets", params(("fleet" = String, Path, description = "Fleet name")),
    responses((status = 200, body = FleetSummary), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("bearer" = ["devices:{fleet}"])))]
pub(super) async fn fleet_summary(
    State(st): St,
    Extension(p): Extension<Principal>,
    ApiPath(fleet): ApiPath<String>,
) -> ApiResult<Json<FleetSummary>> {
    p.require(&format!("devices:{fleet}"))?;
    let counts = st.fleets.registry.device_counts(&fleet).await?;
    let connected = st
        .fleets
        .sessions
        .connected_count(&fleet, st.device_idle_secs)
        .await?;
    let mut out = FleetSummary {
        fleet,
        devices: 0,
        by_state: Default::default(),
        by_profile: Default::default(),
        connected,
        heard: Default::default(),
    };
    let windows = crate::fleet::SEEN_WINDOWS;
    for c in counts {
        out.devices += c.devices;
        *out.by_state.entry(c.state).or_default() += c.devices;
        *out.by_profile.entry(c.profile).or_default() += c.devices;
        for ((name, _), n) in windows.iter().zip(c.seen) {
            *out.heard.entry((*name).to_owned()).or_default() += n;
        }
        *out.heard.entry("never".to_owned()).or_default() += c.never_seen;
    }
    Ok(Json(out))
}

/// Register a device from the factory and issue its birth credential. Retrying
/// with the same hardware id and keys returns the registration (200).
#[utoipa::path(post, path = "/v1/factory/devices", tag = "fleets", request_body = FactoryDeviceRequest,
    responses((status = 201, body = DeviceInfo), (status = 200, body = DeviceInfo), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody),
        (status = 422, description = "An unsafe device key (`key_refused`: low-order X25519, all-zero Ed25519)", body = ErrorBody)),
    security(("bearer" = ["factory:{fleet}"])))]
pub(super) async fn factory_device(
    State(st): St,
    Extension(p): Extension<Principal>,
    ApiJson(req): ApiJson<FactoryDeviceRequest>,
) -> ApiResult<(StatusCode, Json<DeviceInfo>)> {
    p.require(&format!("factory:{}", req.fleet))?;
    let keys = device_keys(&req.keys)?;
    let freq = crate::fleet::FactoryRequest {
        fleet: req.fleet,
        hardware_id: req.hardware_id,
        model: req.model,
        batch: req.batch,
        station: req.station,
        keys,
        test_results: req.test_results,
    };
    let r = match (req.profile, req.sealed_secret.as_deref()) {
        (None, None) => st.fleets.registry.provision(&p.actor(), freq).await,
        (Some(profile), Some(sealed)) => {
            let sealed = b64("sealed_secret", sealed)?;
            st.fleets
                .onboarding
                .provision_constrained(&p.actor(), freq, profile, &sealed)
                .await
        }
        _ => {
            return Err(ApiError::malformed(
                "profile and sealed_secret go together (both for a constrained device, neither otherwise)",
            ));
        }
    }
    .map_err(|e| change_err(&st, e))?;
    let status = if r.created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(r.device.into())))
}

/// A page of a fleet's devices.
#[utoipa::path(get, path = "/v1/fleets/{fleet}/devices", tag = "fleets", params(("fleet" = String, Path, description = "Fleet name"), DeviceQuery),
    responses((status = 200, body = DeviceList), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("bearer" = ["devices:{fleet}"])))]
pub(super) async fn list_devices(
    State(st): St,
    Extension(p): Extension<Principal>,
    ApiPath(fleet): ApiPath<String>,
    ApiQuery(q): ApiQuery<DeviceQuery>,
) -> ApiResult<Json<DeviceList>> {
    p.require(&format!("devices:{fleet}"))?;
    let limit = page_limit(q.limit)?;
    if let Some(profile) = &q.profile
        && !["full", "constrained", "constrained_static"].contains(&profile.as_str())
    {
        return Err(ApiError::malformed(
            "profile must be full, constrained or constrained_static",
        ));
    }
    let filter = crate::store::DeviceFilter {
        state: q.state,
        profile: q.profile,
        seen_before: q.seen_before,
        seen_after: q.seen_after,
    };
    let after = q.after.unwrap_or_default();
    let devices = st
        .fleets
        .registry
        .devices(&fleet, &filter, &after, limit)
        .await?;
    let connected = match (devices.first(), devices.last()) {
        (Some(first), Some(last)) => {
            st.fleets
                .sessions
                .connected(&fleet, &first.id, &last.id, st.device_idle_secs)
                .await?
        }
        _ => Default::default(),
    };
    let next_after = next_after(&devices, limit, |d| &d.id);
    Ok(Json(DeviceList {
        devices: devices
            .into_iter()
            .map(|d| {
                let on = connected.contains(&d.id);
                DeviceInfo {
                    connected: on,
                    ..d.into()
                }
            })
            .collect(),
        next_after,
    }))
}

/// The fleets this token holds a scope on, a page at a time by name.
#[utoipa::path(get, path = "/v1/fleets", tag = "fleets", params(FleetQuery),
    responses((status = 200, body = FleetList), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody)),
    security(("bearer" = ["fleets:manage", "devices:{fleet}", "factory:{fleet}", "operate:{fleet}"])))]
pub(super) async fn list_fleets(
    State(st): St,
    Extension(p): Extension<Principal>,
    ApiQuery(q): ApiQuery<FleetQuery>,
) -> ApiResult<Json<FleetList>> {
    // A token with no scope on any fleet is refused, not shown an empty list.
    let families = ["fleets:manage", "devices:", "factory:", "operate:"];
    let any_fleet = p.scopes.iter().any(|g| {
        families.iter().any(|f| {
            g == "admin"
                || g.starts_with(f)
                || g.strip_suffix('*')
                    .is_some_and(|prefix| f.starts_with(prefix))
        })
    });
    if !any_fleet {
        return Err(Error::Forbidden(
            "fleets:manage (or devices:, factory:, operate: a fleet)".into(),
        )
        .into());
    }
    let limit = page_limit(q.limit)?;
    let page = st
        .fleets
        .registry
        .fleets(q.after.as_deref().unwrap_or(""), limit)
        .await?;
    let next_after = next_after(&page, limit, |f| &f.name);
    let visible = |name: &str| {
        p.require("fleets:manage").is_ok()
            || ["devices", "factory", "operate"]
                .iter()
                .any(|family| p.require(&format!("{family}:{name}")).is_ok())
    };
    Ok(Json(FleetList {
        fleets: page.into_iter().filter(|f| visible(&f.name)).collect(),
        next_after,
    }))
}

/// One device of the fleet (another fleet's device is "not found").
#[utoipa::path(get, path = "/v1/fleets/{fleet}/devices/{id}", tag = "fleets",
    params(("fleet" = String, Path, description = "Fleet name"), ("id" = String, Path, description = "Device id")),
    responses((status = 200, body = DeviceInfo), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("bearer" = ["devices:{fleet}"])))]
pub(super) async fn show_device(
    State(st): St,
    Extension(p): Extension<Principal>,
    ApiPath((fleet, id)): ApiPath<(String, String)>,
) -> ApiResult<Json<DeviceInfo>> {
    p.require(&format!("devices:{fleet}"))?;
    let d = st.fleets.registry.device(&id).await?;
    if d.fleet != fleet {
        return Err(Error::DeviceNotFound(id).into());
    }
    let connected = st
        .fleets
        .sessions
        .connected(&fleet, &id, &id, st.device_idle_secs)
        .await?
        .contains(&id);
    Ok(Json(DeviceInfo {
        connected,
        ..d.into()
    }))
}

/// The cursor of the page after `page` (the key of its last item), or `None` when
/// `page` is shorter than `limit` (the last page). Every paged list uses it.
pub fn next_after<T>(page: &[T], limit: u32, key: impl Fn(&T) -> &str) -> Option<String> {
    (page.len() == limit as usize)
        .then(|| page.last().map(|t| key(t).to_owned()))
        .flatten()
}
