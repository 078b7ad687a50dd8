//! Open routes: liveness, readiness, metrics, the OpenAPI document, and the JSON
//! answers to unknown routes and methods.

use super::St;
use super::error::ApiError;
use super::openapi_document;
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

pub(super) async fn healthz() -> Json<serde_json::Value> {
    Json(serde_json::json!({ "status": "ok" }))
}

pub(super) async fn readyz(State(st): St) -> Response {
    if let Some(c) = st.coord.get() {
        // Refreshes the degraded flag (at most 250 ms when Redis is unreachable).
        let _ = c.ping().await;
    }
    let custody = st.keys.custody_backend();
    match st.keys.ready().await {
        // Ready without Redis too (instances then act alone), but say so.
        Ok(()) => {
            let mut body = serde_json::json!({ "status": "ready", "custody": custody });
            if let Some(c) = st.coord.get() {
                body["coordination"] = if c.degraded() { "degraded" } else { "ok" }.into();
            }
            Json(body).into_response()
        }
        Err(e @ crate::Error::CustodyUnavailable(_)) => {
            tracing::warn!(error = %e, "not ready");
            ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "custody_unavailable",
                format!("custody ({custody}) cannot be reached"),
            )
            .into_response()
        }
        Err(e) => {
            tracing::warn!(error = %e, "not ready");
            ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "unavailable",
                "store or custody not usable",
            )
            .into_response()
        }
    }
}

pub(super) async fn metrics_text(State(st): St) -> Response {
    if let Some(c) = st.coord.get() {
        st.metrics
            .coordination_degraded
            .set(i64::from(c.degraded()));
    }
    let body = st.metrics.render(&st.keys, st.limits.is_tightened());
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "text/plain; version=0.0.4",
        )],
        body,
    )
        .into_response()
}

pub(super) async fn openapi_json() -> Response {
    (
        [(axum::http::header::CONTENT_TYPE, "application/json")],
        serde_json::to_string_pretty(&openapi_document()).unwrap_or_default(),
    )
        .into_response()
}

pub(super) async fn not_found() -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "not_found",
        "no such route; see /v1/openapi.json",
    )
}

pub(super) async fn method_not_allowed() -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        "this route does not take that method; see /v1/openapi.json",
    )
}
