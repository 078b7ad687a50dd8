//! The HTTP API (axum), versioned under `/v1`. This module is an edge: it parses,
//! authorises, rate-limits and maps errors; every rule lives in the domain modules.
//!
//! Every `/v1` route needs a bearer token with the route's scope; `/healthz`,
//! `/readyz`, `/metrics` and `/v1/openapi.json` are open. The OpenAPI 3.1 document is
//! generated from the handlers ([`ApiDoc`]). One file per resource: keyrings.rs
//! (keyrings, seal/unseal/rewrap and batches), keyring_lifecycle.rs (disable,
//! deletion, details, aliases), transfer.rs (import and export), datakeys.rs (data keys, random bytes), signing.rs (sign, verify, MACs, public keys), audit.rs, tokens.rs, fleets.rs (fleets,
//! factory, device lists), lifecycle.rs (onboarding, states, decommissioning,
//! claims), devices.rs (config, commands, rotation), ingest.rs; health.rs (open
//! routes), middleware.rs (auth, limits, metrics), extract.rs (JSON/path/query
//! extractors).

pub mod admission;
mod audit;
mod caches;
mod compliance;
pub mod console;
pub mod datakeys;
mod device_history;
pub mod devices;
pub(crate) mod error;
pub mod error_codes;
mod extract;
mod fleets;
pub mod grpc;
mod health;
pub mod http;
pub(crate) mod ingest;
pub mod keyring_lifecycle;
pub mod keyrings;
mod kms;
mod lifecycle;
pub mod listener;
pub mod metrics;
mod middleware;
mod openapi;
mod patterns;
pub mod ratelimit;
pub(crate) mod refusals;
pub mod server;
pub mod signing;
pub mod supervisor;
mod tokens;
pub mod transfer;
pub mod transit;

pub use audit::{AuditPage, AuditPublicKey, AuditQuery};
pub use devices::DirectoryKey;
pub use extract::{ApiJson, ApiPath, ApiQuery};
pub use fleets::{
    CreateFleetRequest, DeviceInfo, DeviceKeysRequest, DeviceList, DeviceQuery,
    FactoryDeviceRequest, FleetList, FleetQuery, next_after,
};
pub use ingest::FactoryRecipient;
pub use keyrings::{
    BatchCiphertextRequest, BatchItem, BatchResponse, BatchSealRequest, CiphertextRequest,
    CreateKeyringRequest, KeyringList, PolicyRequest, RotateResponse, SealRequest, SealResponse,
    UnsealResponse,
};
pub use lifecycle::{
    ChallengeRequest, ChallengeResponse, ClaimCodeRequest, ClaimCodeResponse, ClaimRequest,
    DecommissionRequest, OnboardRequest, OnboardResponse, StateRequest, WipeReceiptRequest,
};
pub use openapi::openapi_document;
pub use patterns::PatternsRequest;
pub use tokens::{
    AwsAccessKeyRequest, AwsAccessKeyResponse, CreateTokenRequest, CreatedToken, TokenInfo,
    TokenList,
};

use extract::b64;
use fleets::device_keys;
use health::{healthz, method_not_allowed, metrics_text, not_found, openapi_json, readyz};
use middleware::{auth_and_limit, observe, source_limit};

use crate::Error;
use crate::keys::{KeyService, KeyringInfo};
use crate::store::Policy;
use crate::tokens::TokenService;
use axum::Router;
use axum::extract::State;
use axum::routing::{get, post, put};
use error::{ApiError, ApiResult, ErrorBody, ErrorDetail};
use std::sync::Arc;
use utoipa::OpenApi;

/// Shared state of the HTTP layer.
pub struct AppState {
    /// Keyrings.
    pub keys: Arc<KeyService>,
    /// Tokens.
    pub tokens: Arc<TokenService>,
    /// Rate limits.
    pub limits: ratelimit::RateLimits,
    /// Metrics.
    pub metrics: metrics::Metrics,
    /// Most items in one batch request.
    pub max_batch_items: usize,
    /// Fleets and devices.
    pub fleets: Arc<crate::fleet::FleetService>,
    /// Constrained-device frames (set when the server starts its ingest path).
    pub ingest: std::sync::OnceLock<Arc<crate::ingest::FrameIngest>>,
    /// Coordination with other instances (set when Redis is configured).
    pub coord: std::sync::OnceLock<Arc<crate::coord::Coordinator>>,
    /// How long a handler waits for a request body.
    pub body_timeout: std::time::Duration,
    /// Largest body on routes that need no token.
    pub max_unauthenticated_body_bytes: usize,
    /// AWS access keys bound to tokens (the AWS KMS door).
    pub aws: Arc<crate::tokens::aws::AwsKeys>,
    /// AWS KMS door signature refusals since the last audit summary.
    pub kms_refusals: refusals::RefusalTally,
    /// The mounts the Vault Transit door answers at (none: closed).
    pub transit_mounts: Vec<String>,
    /// The device listener's idle timeout: a session open longer than this
    /// without a message has ended (what `connected` allows for).
    pub device_idle_secs: u64,
    /// Whether every request is logged (`fleetkey::access`, info).
    pub access_log: bool,
    /// The latest telemetry this instance received, per recently active device.
    pub recent_telemetry: Arc<crate::telemetry::recent::Recent>,
}

type St = State<Arc<AppState>>;

/// A random (version 4) UUID: the doors' request ids and the ids of keys the
/// AWS KMS door creates.
pub(crate) fn random_uuid() -> crate::Result<String> {
    let mut b: [u8; 16] = fleetkey_crypto::rand::array()?;
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h = hex::encode(b);
    Ok(format!(
        "{}-{}-{}-{}-{}",
        &h[..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..]
    ))
}

/// Maps the error of a state change. Every change is written in one transaction
/// with its audit entry, so a store failure here is an audit write failure.
fn change_err(st: &AppState, e: Error) -> ApiError {
    if e.is_store() {
        st.metrics.audit_write_failures.inc();
    }
    e.into()
}

/// Counts a keyring change (`operation`) under its result, and maps its error as
/// [`change_err`] does.
fn keyring_change<T>(st: &AppState, operation: &str, r: crate::Result<T>) -> ApiResult<T> {
    let r = r.map_err(|e| change_err(st, e));
    let result = match &r {
        Ok(_) => "ok",
        Err(e) => e.detail.code,
    };
    st.metrics
        .keyring_changes
        .with_label_values(&[operation, result])
        .inc();
    r
}

async fn device_in_fleet(st: &AppState, fleet: &str, id: &str) -> ApiResult<()> {
    let d = st.fleets.registry.device(id).await?;
    if d.fleet != fleet {
        return Err(Error::DeviceNotFound(id.to_owned()).into());
    }
    Ok(())
}

struct SecurityAddon;

impl utoipa::Modify for SecurityAddon {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("fkt_…")
                    .build(),
            ),
        );
    }
}

/// The OpenAPI document.
#[derive(OpenApi)]
#[openapi(
    info(title = "fleetkey", description = "Keys, sealing and audit for device fleets. Binary payloads are base64 (RFC 4648 §4)."),
    paths(keyrings::create_keyring, keyrings::list_keyrings, keyrings::show_keyring, keyrings::rotate_keyring, keyrings::revoke_version, keyrings::set_policy, keyrings::seal, keyrings::unseal, keyrings::rewrap,
        keyrings::seal_batch, keyrings::unseal_batch, keyrings::rewrap_batch, audit::audit_page, audit::audit_checkpoint, audit::audit_verify, compliance::evidence, audit::audit_public_key, tokens::create_token, tokens::list_tokens, tokens::revoke_token, tokens::create_aws_access_key,
        fleets::create_fleet, fleets::list_fleets, fleets::show_fleet, patterns::service_patterns, patterns::set_service_patterns, patterns::fleet_patterns, patterns::set_fleet_patterns, fleets::factory_device, fleets::list_devices, fleets::fleet_summary, fleets::show_device, device_history::device_history, lifecycle::set_device_state, lifecycle::decommission_device,
        lifecycle::onboarding_challenge, lifecycle::onboarding_complete, lifecycle::wipe_receipt, lifecycle::create_claim_code, lifecycle::claim_device),
    components(schemas(ErrorBody, ErrorDetail, KeyringInfo, crate::keys::VersionInfo, Policy, crate::store::VersionState)),
    modifiers(&SecurityAddon),
    tags((name = "keyrings"), (name = "crypto"), (name = "audit"), (name = "tokens"), (name = "fleets"), (name = "config"), (name = "onboarding"), (name = "directory"))
)]
pub struct ApiDoc;

/// The whole router.
pub fn router(state: Arc<AppState>, max_body_bytes: usize) -> Router {
    let v1 = Router::new()
        .route(
            "/v1/keyrings",
            post(keyrings::create_keyring).get(keyrings::list_keyrings),
        )
        .route(
            "/v1/keyrings/{name}",
            get(keyrings::show_keyring).patch(keyring_lifecycle::set_details),
        )
        .route("/v1/keyrings/{name}/rotate", post(keyrings::rotate_keyring))
        .route(
            "/v1/keyrings/{name}/versions/{version}/revoke",
            post(keyrings::revoke_version),
        )
        .route("/v1/keyrings/{name}/policy", put(keyrings::set_policy))
        .route("/v1/keyrings/{name}/seal", post(keyrings::seal))
        .route("/v1/keyrings/{name}/unseal", post(keyrings::unseal))
        .route("/v1/keyrings/{name}/rewrap", post(keyrings::rewrap))
        .route("/v1/keyrings/{name}/seal/batch", post(keyrings::seal_batch))
        .route(
            "/v1/keyrings/{name}/unseal/batch",
            post(keyrings::unseal_batch),
        )
        .route(
            "/v1/keyrings/{name}/rewrap/batch",
            post(keyrings::rewrap_batch),
        )
        .route("/v1/audit", get(audit::audit_page))
        .route("/v1/audit/checkpoint", get(audit::audit_checkpoint))
        .route("/v1/audit/verify", get(audit::audit_verify))
        .route("/v1/compliance/evidence", get(compliance::evidence))
        .route("/v1/audit/public-key", get(audit::audit_public_key))
        .route(
            "/v1/tokens",
            post(tokens::create_token).get(tokens::list_tokens),
        )
        .route("/v1/tokens/{id}/revoke", post(tokens::revoke_token))
        .route(
            "/v1/tokens/aws-access-keys",
            post(tokens::create_aws_access_key),
        )
        .route(
            "/v1/fleets",
            post(fleets::create_fleet).get(fleets::list_fleets),
        )
        .route("/v1/fleets/{fleet}", get(fleets::show_fleet))
        .route("/v1/fleets/{fleet}/devices", get(fleets::list_devices))
        .route("/v1/fleets/{fleet}/summary", get(fleets::fleet_summary))
        .route(
            "/v1/session-patterns",
            get(patterns::service_patterns).put(patterns::set_service_patterns),
        )
        .route(
            "/v1/fleets/{fleet}/session-patterns",
            get(patterns::fleet_patterns).put(patterns::set_fleet_patterns),
        )
        .route("/v1/fleets/{fleet}/devices/{id}", get(fleets::show_device))
        .route(
            "/v1/fleets/{fleet}/devices/{id}/history",
            get(device_history::device_history),
        )
        .route("/v1/factory/devices", post(fleets::factory_device))
        .route(
            "/v1/fleets/{fleet}/devices/{id}/state",
            post(lifecycle::set_device_state),
        )
        .route(
            "/v1/fleets/{fleet}/devices/{id}/decommission",
            post(lifecycle::decommission_device),
        )
        .route(
            "/v1/fleets/{fleet}/devices/{id}/claim-codes",
            post(lifecycle::create_claim_code),
        )
        .route("/v1/claims", post(lifecycle::claim_device))
        .merge(devices::operator_routes())
        .merge(ingest::routes())
        .merge(datakeys::routes())
        .merge(signing::routes())
        .merge(keyring_lifecycle::routes())
        .merge(transfer::routes())
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            auth_and_limit,
        ));
    Router::new()
        .merge(v1)
        .merge(transit::routes(&state, &state.transit_mounts))
        // The AWS KMS door: AWS's JSON protocol at the root, signed with SigV4.
        .route(
            "/",
            post(kms::handle).layer(axum::extract::DefaultBodyLimit::max(
                state.max_unauthenticated_body_bytes,
            )),
        )
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics_text))
        .merge(console::routes())
        .route("/v1/openapi.json", get(openapi_json))
        .merge(
            // Routes without a token: small bodies only.
            Router::new()
                .route(
                    "/v1/onboarding/challenge",
                    post(lifecycle::onboarding_challenge),
                )
                .route(
                    "/v1/onboarding/complete",
                    post(lifecycle::onboarding_complete),
                )
                .route("/v1/onboarding/wipe-receipt", post(lifecycle::wipe_receipt))
                .route_layer(axum::middleware::from_fn_with_state(
                    state.clone(),
                    source_limit,
                ))
                .merge(devices::device_routes())
                .layer(axum::extract::DefaultBodyLimit::max(
                    state.max_unauthenticated_body_bytes,
                )),
        )
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(axum::middleware::from_fn_with_state(state.clone(), observe))
        .layer(axum::extract::DefaultBodyLimit::max(max_body_bytes))
        .with_state(state)
}
