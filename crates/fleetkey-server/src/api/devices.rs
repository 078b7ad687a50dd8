//! HTTP routes for device configuration, credential rotation, commands, the
//! rotation policy and the factory reset. Operator routes are confined to the
//! token's fleet (`devices:<fleet>` to read, `operate:<fleet>` to change; another
//! fleet's device is "not found"); device routes carry no token and are
//! authenticated by the device's signature.

use super::error::{ApiError, ApiResult, ErrorBody};
use super::{
    ApiJson, ApiPath, ApiQuery, DeviceInfo, DeviceKeysRequest, St, b64, change_err,
    device_in_fleet, device_keys,
};
use crate::fleet::config::MigrationOp;
use crate::fleet::{ConfigUpdate, DeviceConfig, MigrationReport, SchemaInfo};
use crate::store::CommandRecord;
use crate::tokens::Principal;
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::{Extension, Router, routing::get, routing::post, routing::put};
use base64::{Engine as _, engine::general_purpose::STANDARD as B64};
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use utoipa::ToSchema;

/// A new configuration schema version.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SchemaRequest {
    /// A JSON Schema of `"type": "object"` with a `default` for every field.
    #[schema(value_type = Object)]
    pub schema: serde_json::Value,
    /// How configs of the previous version become configs of this one.
    #[serde(default)]
    pub migration: Vec<MigrationOp>,
}

/// Replace a device's configuration.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ConfigRequest {
    /// The whole configuration.
    #[schema(value_type = Object)]
    pub config: serde_json::Value,
    /// Refuse (409) unless the stored revision is still this one.
    #[serde(default)]
    pub if_revision: Option<i64>,
}

/// Change part of a device's configuration.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ConfigPatchRequest {
    /// An RFC 7396 merge patch (`null` removes a field).
    #[schema(value_type = Object)]
    pub patch: serde_json::Value,
    /// Refuse (409) unless the stored revision is still this one.
    #[serde(default)]
    pub if_revision: Option<i64>,
}

/// Why a credential rotation is requested.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RotateRequest {
    /// Recorded in the audit log and the command.
    #[serde(default)]
    pub reason: Option<String>,
}

/// A fleet's rotation policy.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RotationPolicyRequest {
    /// Rotate operational credentials older than this many seconds (1 hour to 10
    /// years); `null` rotates only on request.
    pub period_secs: Option<i64>,
}

/// Retire a decommissioned device's hardware identity.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct FactoryResetRequest {
    /// The device's fleet.
    pub fleet: String,
    /// The device id.
    pub device_id: String,
    /// Recorded in the audit log.
    pub reason: String,
}

/// A command for a device, as stored and as the device receives it.
#[derive(Debug, Serialize, ToSchema)]
pub struct CommandInfo {
    /// Id (`cmd_…`).
    pub id: String,
    /// Device id.
    pub device_id: String,
    /// What to do.
    pub kind: crate::store::CommandKind,
    /// Where it is.
    pub state: crate::store::CommandState,
    /// Parameters: exactly the signed JSON text.
    pub payload: String,
    /// Base64 Ed25519 signature of the fleet's issuing key over the command
    /// message (`docs/formats.md#device-commands`).
    pub signature: String,
    /// Creation time (signed).
    pub created_at: i64,
    /// Last change.
    pub updated_at: i64,
}

impl From<CommandRecord> for CommandInfo {
    fn from(c: CommandRecord) -> Self {
        Self {
            id: c.id,
            device_id: c.device_id,
            kind: c.kind,
            state: c.state,
            payload: c.payload,
            signature: B64.encode(&c.signature),
            created_at: c.created_at,
            updated_at: c.updated_at,
        }
    }
}

/// Commands.
#[derive(Debug, Serialize, ToSchema)]
pub struct CommandList {
    /// Oldest first.
    pub commands: Vec<CommandInfo>,
}

/// Which commands to list.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct CommandQuery {
    /// Only pending and in-progress ones (default false).
    pub open: Option<bool>,
}

/// A device's signed poll for its open commands.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PollRequest {
    /// Device id.
    pub device_id: String,
    /// The device's clock, Unix seconds (within 60 s of the server's).
    pub at: i64,
    /// Base64 Ed25519 signature over the poll message.
    pub signature: String,
}

/// A device proposes its new keys.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RotationProposalRequest {
    /// Device id.
    pub device_id: String,
    /// The rotate_credential command.
    pub command_id: String,
    /// The new public keys.
    pub keys: DeviceKeysRequest,
    /// Base64 signature by the **current** Ed25519 key over the rotation request message.
    pub signature: String,
}

/// The new operational credential (valid once confirmed).
#[derive(Debug, Serialize, ToSchema)]
pub struct RotationProposalResponse {
    /// Base64 operational credential for the new keys.
    pub operational_credential: String,
    /// Base64 of its 16-byte id (signed in the confirmation).
    pub credential_id: String,
}

/// A device confirms it holds the new key.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RotationConfirmRequest {
    /// Device id.
    pub device_id: String,
    /// The rotate_credential command.
    pub command_id: String,
    /// Base64 signature by the **new** Ed25519 key over the confirmation message.
    pub signature: String,
}

/// Set the next configuration schema version of a fleet (every stored config is
/// dry-run through the migration first).
#[utoipa::path(put, path = "/v1/fleets/{fleet}/schema", tag = "config",
    params(("fleet" = String, Path, description = "Fleet name")), request_body = SchemaRequest,
    responses((status = 200, body = SchemaInfo), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody),
        (status = 422, description = "A JSON object, but not a config schema the service can use (`invalid_schema`)", body = ErrorBody)),
    security(("bearer" = ["operate:{fleet}"])))]
async fn set_schema(
    State(st): St,
    Extension(p): Extension<Principal>,
    ApiPath(fleet): ApiPath<String>,
    ApiJson(req): ApiJson<SchemaRequest>,
) -> ApiResult<Json<SchemaInfo>> {
    p.require(&format!("operate:{fleet}"))?;
    if !req.schema.is_object() {
        return Err(ApiError::malformed("schema must be a JSON object"));
    }
    let info = st
        .fleets
        .registry
        .set_schema(&p.actor(), &fleet, req.schema, req.migration)
        .await
        .map_err(|e| change_err(&st, e))?;
    Ok(Json(info))
}

/// A fleet's newest configuration schema and its defaults.
#[utoipa::path(get, path = "/v1/fleets/{fleet}/schema", tag = "config",
    params(("fleet" = String, Path, description = "Fleet name")),
    responses((status = 200, body = SchemaInfo), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)),
    security(("bearer" = ["devices:{fleet}"])))]
async fn show_schema(
    State(st): St,
    Extension(p): Extension<Principal>,
    ApiPath(fleet): ApiPath<String>,
) -> ApiResult<Json<SchemaInfo>> {
    p.require(&format!("devices:{fleet}"))?;
    Ok(Json(st.fleets.registry.schema(&fleet).await?))
}

/// Migrate every stored config of a fleet to the newest schema version.
#[utoipa::path(post, path = "/v1/fleets/{fleet}/config/migrate", tag = "config",
    params(("fleet" = String, Path, description = "Fleet name")),
    responses((status = 200, body = MigrationReport), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)),
    security(("bearer" = ["operate:{fleet}"])))]
async fn migrate_configs(
    State(st): St,
    Extension(p): Extension<Principal>,
    ApiPath(fleet): ApiPath<String>,
) -> ApiResult<Json<MigrationReport>> {
    p.require(&format!("operate:{fleet}"))?;
    let r = st
        .fleets
        .registry
        .migrate_configs(&p.actor(), &fleet)
        .await
        .map_err(|e| change_err(&st, e))?;
    Ok(Json(r))
}

/// A device's configuration (migrated to the newest schema for this read).
#[utoipa::path(get, path = "/v1/fleets/{fleet}/devices/{id}/config", tag = "config",
    params(("fleet" = String, Path, description = "Fleet name"), ("id" = String, Path, description = "Device id")),
    responses((status = 200, body = DeviceConfig), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)),
    security(("bearer" = ["devices:{fleet}"])))]
async fn get_config(
    State(st): St,
    Extension(p): Extension<Principal>,
    ApiPath((fleet, id)): ApiPath<(String, String)>,
) -> ApiResult<Json<DeviceConfig>> {
    p.require(&format!("devices:{fleet}"))?;
    device_in_fleet(&st, &fleet, &id).await?;
    Ok(Json(st.fleets.registry.config(&id).await?))
}

async fn write_config(
    st: &super::AppState,
    p: &Principal,
    fleet: &str,
    id: &str,
    update: ConfigUpdate,
    if_revision: Option<i64>,
) -> ApiResult<Json<DeviceConfig>> {
    p.require(&format!("operate:{fleet}"))?;
    device_in_fleet(st, fleet, id).await?;
    let c = st
        .fleets
        .registry
        .set_config(&p.actor(), id, update, if_revision)
        .await
        .map_err(|e| change_err(st, e))?;
    Ok(Json(c))
}

/// Replace a device's configuration (validated; queued for the device).
#[utoipa::path(put, path = "/v1/fleets/{fleet}/devices/{id}/config", tag = "config",
    params(("fleet" = String, Path, description = "Fleet name"), ("id" = String, Path, description = "Device id")),
    request_body = ConfigRequest,
    responses((status = 200, body = DeviceConfig), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)),
    security(("bearer" = ["operate:{fleet}"])))]
async fn put_config(
    State(st): St,
    Extension(p): Extension<Principal>,
    ApiPath((fleet, id)): ApiPath<(String, String)>,
    ApiJson(req): ApiJson<ConfigRequest>,
) -> ApiResult<Json<DeviceConfig>> {
    write_config(
        &st,
        &p,
        &fleet,
        &id,
        ConfigUpdate::Replace(req.config),
        req.if_revision,
    )
    .await
}

/// Change part of a device's configuration with a merge patch.
#[utoipa::path(patch, path = "/v1/fleets/{fleet}/devices/{id}/config", tag = "config",
    params(("fleet" = String, Path, description = "Fleet name"), ("id" = String, Path, description = "Device id")),
    request_body = ConfigPatchRequest,
    responses((status = 200, body = DeviceConfig), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)),
    security(("bearer" = ["operate:{fleet}"])))]
async fn patch_config(
    State(st): St,
    Extension(p): Extension<Principal>,
    ApiPath((fleet, id)): ApiPath<(String, String)>,
    ApiJson(req): ApiJson<ConfigPatchRequest>,
) -> ApiResult<Json<DeviceConfig>> {
    write_config(
        &st,
        &p,
        &fleet,
        &id,
        ConfigUpdate::Merge(req.patch),
        req.if_revision,
    )
    .await
}

/// Reset a device's configuration to the schema defaults.
#[utoipa::path(post, path = "/v1/fleets/{fleet}/devices/{id}/config/reset", tag = "config",
    params(("fleet" = String, Path, description = "Fleet name"), ("id" = String, Path, description = "Device id")),
    responses((status = 200, body = DeviceConfig), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)),
    security(("bearer" = ["operate:{fleet}"])))]
async fn reset_config(
    State(st): St,
    Extension(p): Extension<Principal>,
    ApiPath((fleet, id)): ApiPath<(String, String)>,
) -> ApiResult<Json<DeviceConfig>> {
    p.require(&format!("operate:{fleet}"))?;
    device_in_fleet(&st, &fleet, &id).await?;
    let c = st
        .fleets
        .registry
        .reset_config(&p.actor(), &id)
        .await
        .map_err(|e| change_err(&st, e))?;
    Ok(Json(c))
}

/// Ask a device to rotate its credential (queues a signed command).
#[utoipa::path(post, path = "/v1/fleets/{fleet}/devices/{id}/rotate", tag = "fleets",
    params(("fleet" = String, Path, description = "Fleet name"), ("id" = String, Path, description = "Device id")),
    request_body = RotateRequest,
    responses((status = 202, body = CommandInfo), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)),
    security(("bearer" = ["operate:{fleet}"])))]
async fn rotate_device(
    State(st): St,
    Extension(p): Extension<Principal>,
    ApiPath((fleet, id)): ApiPath<(String, String)>,
    ApiJson(req): ApiJson<RotateRequest>,
) -> ApiResult<(StatusCode, Json<CommandInfo>)> {
    p.require(&format!("operate:{fleet}"))?;
    device_in_fleet(&st, &fleet, &id).await?;
    let c = st
        .fleets
        .commands
        .request_rotation(
            &p.actor(),
            &id,
            req.reason.as_deref().unwrap_or("requested"),
        )
        .await
        .map_err(|e| change_err(&st, e))?;
    Ok((StatusCode::ACCEPTED, Json(c.into())))
}

/// A device's commands.
#[utoipa::path(get, path = "/v1/fleets/{fleet}/devices/{id}/commands", tag = "fleets",
    params(("fleet" = String, Path, description = "Fleet name"), ("id" = String, Path, description = "Device id"), CommandQuery),
    responses((status = 200, body = CommandList), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("bearer" = ["devices:{fleet}"])))]
async fn list_commands(
    State(st): St,
    Extension(p): Extension<Principal>,
    ApiPath((fleet, id)): ApiPath<(String, String)>,
    ApiQuery(q): ApiQuery<CommandQuery>,
) -> ApiResult<Json<CommandList>> {
    p.require(&format!("devices:{fleet}"))?;
    device_in_fleet(&st, &fleet, &id).await?;
    let cs = st
        .fleets
        .commands
        .device_commands(&id, q.open.unwrap_or(false))
        .await?;
    Ok(Json(CommandList {
        commands: cs.into_iter().map(Into::into).collect(),
    }))
}

/// Set or clear a fleet's credential rotation period.
#[utoipa::path(put, path = "/v1/fleets/{fleet}/rotation-policy", tag = "fleets",
    params(("fleet" = String, Path, description = "Fleet name")), request_body = RotationPolicyRequest,
    responses((status = 200, body = crate::fleet::FleetInfo), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("bearer" = ["operate:{fleet}"])))]
async fn set_rotation_policy(
    State(st): St,
    Extension(p): Extension<Principal>,
    ApiPath(fleet): ApiPath<String>,
    ApiJson(req): ApiJson<RotationPolicyRequest>,
) -> ApiResult<Json<crate::fleet::FleetInfo>> {
    p.require(&format!("operate:{fleet}"))?;
    let f = st
        .fleets
        .commands
        .set_rotation_policy(&p.actor(), &fleet, req.period_secs)
        .await
        .map_err(|e| change_err(&st, e))?;
    Ok(Json(f))
}

/// Retire a decommissioned device's hardware id so the hardware can be provisioned again.
#[utoipa::path(post, path = "/v1/factory/reset", tag = "fleets", request_body = FactoryResetRequest,
    responses((status = 200, body = DeviceInfo), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)),
    security(("bearer" = ["factory:{fleet}"])))]
async fn factory_reset(
    State(st): St,
    Extension(p): Extension<Principal>,
    ApiJson(req): ApiJson<FactoryResetRequest>,
) -> ApiResult<Json<DeviceInfo>> {
    p.require(&format!("factory:{}", req.fleet))?;
    device_in_fleet(&st, &req.fleet, &req.device_id).await?;
    if req.reason.len() > 256 {
        return Err(ApiError::malformed("reason is longer than 256 bytes"));
    }
    let d = st
        .fleets
        .commands
        .factory_reset(&p.actor(), &req.device_id, &req.reason)
        .await
        .map_err(|e| change_err(&st, e))?;
    Ok(Json(d.into()))
}

/// A device fetches its open commands (signed poll; no token).
#[utoipa::path(post, path = "/v1/devices/commands", tag = "onboarding", request_body = PollRequest,
    responses((status = 200, body = CommandList), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)),
    security(()))]
async fn poll_commands(
    State(st): St,
    ApiJson(req): ApiJson<PollRequest>,
) -> ApiResult<Json<CommandList>> {
    let sig = b64("signature", &req.signature)?;
    let cs = st
        .fleets
        .commands
        .poll_commands(&req.device_id, req.at, &sig)
        .await?;
    Ok(Json(CommandList {
        commands: cs.into_iter().map(Into::into).collect(),
    }))
}

/// A device proposes new keys for a rotation (signed with its current key).
#[utoipa::path(post, path = "/v1/devices/rotation", tag = "onboarding", request_body = RotationProposalRequest,
    responses((status = 200, body = RotationProposalResponse), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 409, body = ErrorBody),
        (status = 422, description = "An unsafe new key (`key_refused`)", body = ErrorBody)),
    security(()))]
async fn propose_rotation(
    State(st): St,
    ApiJson(req): ApiJson<RotationProposalRequest>,
) -> ApiResult<Json<RotationProposalResponse>> {
    let keys = device_keys(&req.keys)?;
    let sig = b64("signature", &req.signature)?;
    let (token, id) = st
        .fleets
        .commands
        .propose_rotation(&req.device_id, &req.command_id, keys, &sig)
        .await
        .map_err(|e| change_err(&st, e))?;
    Ok(Json(RotationProposalResponse {
        operational_credential: B64.encode(token),
        credential_id: B64.encode(id),
    }))
}

/// A device confirms its rotation with the new key; the old credential is revoked.
#[utoipa::path(post, path = "/v1/devices/rotation/confirm", tag = "onboarding", request_body = RotationConfirmRequest,
    responses((status = 200, body = DeviceInfo), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)),
    security(()))]
async fn confirm_rotation(
    State(st): St,
    ApiJson(req): ApiJson<RotationConfirmRequest>,
) -> ApiResult<Json<DeviceInfo>> {
    let sig = b64("signature", &req.signature)?;
    let d = st
        .fleets
        .commands
        .confirm_rotation(&req.device_id, &req.command_id, &sig)
        .await
        .map_err(|e| change_err(&st, e))?;
    st.metrics
        .key_rotations
        .with_label_values(&["device_credential"])
        .inc();
    Ok(Json(d.into()))
}

/// The directory's verifying key.
#[derive(Debug, Serialize, ToSchema, Deserialize)]
pub struct DirectoryKey {
    /// `Ed25519+ML-DSA-65` (composite, `docs/formats.md#composite-signatures`).
    pub algorithm: String,
    /// Base64 of the composite public key (1,984 bytes).
    pub public_key: String,
}

/// A key record as served.
#[derive(Debug, Serialize, ToSchema)]
pub struct DirectoryRecord {
    /// Identity.
    pub identity: String,
    /// Sequence number (check it never goes backwards).
    pub sequence: u64,
    /// Whether the record revokes the identity.
    pub revoked: bool,
    /// Issue time.
    pub issued_at: i64,
    /// Expiry.
    pub expires_at: i64,
    /// Base64 of the signed record (tagged COSE_Sign1): verify this, not the fields
    /// above, which are a convenience copy.
    pub record: String,
}

/// The key that signs every directory record (no token).
#[utoipa::path(get, path = "/v1/directory", tag = "directory",
    responses((status = 200, body = DirectoryKey)), security(()))]
async fn directory_key(State(st): St) -> Json<DirectoryKey> {
    Json(DirectoryKey {
        algorithm: "Ed25519+ML-DSA-65".into(),
        public_key: B64.encode(st.fleets.directory().public_key()),
    })
}

/// An identity's newest signed key record (no token: records are public and signed).
#[utoipa::path(get, path = "/v1/directory/{identity}", tag = "directory",
    params(("identity" = String, Path, description = "Identity (device id)")),
    responses((status = 200, body = DirectoryRecord), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(()))]
async fn directory_record(
    State(st): St,
    ApiPath(identity): ApiPath<String>,
) -> ApiResult<Json<DirectoryRecord>> {
    let lookups = &st.metrics.directory_lookups;
    let token = match st.fleets.directory().record(&identity).await {
        Ok(t) => t,
        Err(e) => {
            if matches!(e, crate::Error::IdentityNotFound(_)) {
                lookups.with_label_values(&["not_found"]).inc();
            }
            return Err(e.into());
        }
    };
    let r = fleetkey_crypto::record::peek(&token)
        .map_err(|_| crate::Error::Corrupt("stored key record does not parse".into()))?;
    lookups
        .with_label_values(&[if r.revoked { "revoked" } else { "found" }])
        .inc();
    Ok(Json(DirectoryRecord {
        identity: r.identity,
        sequence: r.sequence,
        revoked: r.revoked,
        issued_at: r.issued_at,
        expires_at: r.expires_at,
        record: B64.encode(token),
    }))
}

/// Operator routes (behind the token middleware).
pub(super) fn operator_routes() -> Router<Arc<super::AppState>> {
    Router::new()
        .route(
            "/v1/fleets/{fleet}/schema",
            put(set_schema).get(show_schema),
        )
        .route("/v1/fleets/{fleet}/config/migrate", post(migrate_configs))
        .route(
            "/v1/fleets/{fleet}/devices/{id}/config",
            get(get_config).put(put_config).patch(patch_config),
        )
        .route(
            "/v1/fleets/{fleet}/devices/{id}/config/reset",
            post(reset_config),
        )
        .route(
            "/v1/fleets/{fleet}/devices/{id}/rotate",
            post(rotate_device),
        )
        .route(
            "/v1/fleets/{fleet}/devices/{id}/commands",
            get(list_commands),
        )
        .route(
            "/v1/fleets/{fleet}/rotation-policy",
            put(set_rotation_policy),
        )
        .route("/v1/factory/reset", post(factory_reset))
}

/// Device routes (signature-authenticated, no token).
pub(super) fn device_routes() -> Router<Arc<super::AppState>> {
    Router::new()
        .route("/v1/devices/commands", post(poll_commands))
        .route("/v1/devices/rotation", post(propose_rotation))
        .route("/v1/devices/rotation/confirm", post(confirm_rotation))
        .route("/v1/directory", get(directory_key))
        .route("/v1/directory/{identity}", get(directory_record))
}

/// The OpenAPI paths of this module.
#[derive(utoipa::OpenApi)]
#[openapi(paths(
    set_schema,
    show_schema,
    migrate_configs,
    get_config,
    put_config,
    patch_config,
    reset_config,
    rotate_device,
    list_commands,
    set_rotation_policy,
    factory_reset,
    poll_commands,
    propose_rotation,
    confirm_rotation,
    directory_key,
    directory_record
))]
pub(super) struct DevicesDoc;
