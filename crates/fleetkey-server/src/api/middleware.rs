//! Authentication, rate limits and request metrics, as axum middleware.

use super::error::ApiError;
use super::{AppState, St, ratelimit};
use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use std::time::Instant;

pub(super) fn bearer(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
        .map(str::trim)
}

pub(super) fn set_header(h: &mut HeaderMap, name: &'static str, value: String) {
    if let Ok(v) = HeaderValue::from_str(&value) {
        h.insert(name, v);
    }
}

/// 429 for a refusal by one of the rate limits, with its headers.
pub(super) fn limited_response(st: &AppState, l: ratelimit::Limited) -> Response {
    st.metrics.rate_limited.with_label_values(&[l.scope]).inc();
    let what = if l.scope == "source" {
        "requests without a valid token from this address".to_owned()
    } else {
        format!("{} rate limit", l.scope)
    };
    let mut r = ApiError::new(
        StatusCode::TOO_MANY_REQUESTS,
        "rate_limited",
        format!(
            "{what}: limit of {} requests per second reached; retry after {} s",
            l.limit, l.retry_after_secs
        ),
    )
    .into_response();
    let h = r.headers_mut();
    set_header(h, "retry-after", l.retry_after_secs.to_string());
    set_header(
        h,
        "ratelimit-policy",
        format!("\"{}\";q={};w=1", l.scope, l.limit),
    );
    set_header(
        h,
        "ratelimit",
        format!("\"{}\";r=0;t={}", l.scope, l.retry_after_secs),
    );
    set_header(h, "x-ratelimit-limit", l.limit.to_string());
    set_header(h, "x-ratelimit-remaining", "0".into());
    set_header(h, "x-ratelimit-reset", l.retry_after_secs.to_string());
    r
}

/// A rate-limit refusal in another protocol's body (`body`, whose status it
/// keeps) with the native refusal's headers (Retry-After, RateLimit-*).
pub(super) fn limited_as(st: &AppState, l: ratelimit::Limited, mut body: Response) -> Response {
    let (parts, _) = limited_response(st, l).into_parts();
    for (k, v) in parts.headers.iter() {
        if k != axum::http::header::CONTENT_TYPE && k != axum::http::header::CONTENT_LENGTH {
            body.headers_mut().insert(k.clone(), v.clone());
        }
    }
    body
}

/// The per-source allowance for routes without a token (onboarding).
pub(super) async fn source_limit(State(st): St, req: Request, next: Next) -> Response {
    if let Some(Err(l)) = peer(&req).map(|ip| st.limits.check_source(ip)) {
        return limited_response(&st, l);
    }
    next.run(req).await
}

/// The address a request came from (none in process).
pub(super) fn peer(req: &Request) -> Option<std::net::IpAddr> {
    req.extensions()
        .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
        .map(|c| c.0.ip())
}

/// Why a request was not admitted ([`admit`]).
pub(super) enum Refusal {
    /// A rate limit refused it.
    Limited(ratelimit::Limited),
    /// It carried no token.
    Missing,
    /// Its token is unknown, expired or revoked (or could not be checked).
    Invalid(crate::Error),
}

/// Authenticates the token a request presented (`token`, however its protocol
/// carries it) and applies the rate limits: the one admission check of every
/// door (the native API, Vault Transit, AWS KMS), so scopes, expiry, revocation
/// and limits are the same whichever door a request came through.
pub(super) async fn admit(
    st: &AppState,
    peer: Option<std::net::IpAddr>,
    token: Option<&str>,
) -> Result<(crate::tokens::Principal, ratelimit::Allowance), Refusal> {
    // The per-source allowance for requests without a valid cached token is taken
    // before any store lookup (requests without a known peer, as in process, have
    // none).
    let gate = || match peer {
        Some(ip) => st.limits.check_source(ip),
        None => Ok(()),
    };
    let principal = match token {
        None => {
            gate().map_err(Refusal::Limited)?;
            return Err(Refusal::Missing);
        }
        Some(t) => match st.tokens.authenticate_gated(t, gate).await {
            Err(l) => return Err(Refusal::Limited(l)),
            Ok(Ok(p)) => p,
            Ok(Err(e)) => return Err(Refusal::Invalid(e)),
        },
    };
    let allowance = limit(st, &principal).await.map_err(Refusal::Limited)?;
    Ok((principal, allowance))
}

/// The per-token and global limits for an authenticated principal (every
/// door's admission ends here).
pub(super) async fn limit(
    st: &AppState,
    principal: &crate::tokens::Principal,
) -> Result<ratelimit::Allowance, ratelimit::Limited> {
    let allowance = st
        .limits
        .check_shared(&principal.token_id, st.coord.get().map(|c| c.as_ref()))
        .await?;
    tracing::Span::current().record("token", principal.token_id.as_str());
    Ok(allowance)
}

/// The rate-limit headers of an admitted request's response.
pub(super) fn allowance_headers(h: &mut HeaderMap, allowance: &ratelimit::Allowance) {
    set_header(
        h,
        "ratelimit-policy",
        format!("\"token\";q={};w=1", allowance.limit),
    );
    set_header(
        h,
        "ratelimit",
        format!(
            "\"token\";r={};t={}",
            allowance.remaining, allowance.reset_secs
        ),
    );
    set_header(h, "x-ratelimit-limit", allowance.limit.to_string());
    set_header(h, "x-ratelimit-remaining", allowance.remaining.to_string());
    set_header(h, "x-ratelimit-reset", allowance.reset_secs.to_string());
}

/// Authenticates the bearer token, applies the rate limits and adds their headers.
pub(super) async fn auth_and_limit(State(st): St, mut req: Request, next: Next) -> Response {
    let token = bearer(req.headers()).map(str::to_owned);
    let (principal, allowance) = match admit(&st, peer(&req), token.as_deref()).await {
        Ok(a) => a,
        Err(Refusal::Limited(l)) => return limited_response(&st, l),
        Err(Refusal::Missing) => {
            let mut r = ApiError::new(
                StatusCode::UNAUTHORIZED,
                "unauthenticated",
                "send Authorization: Bearer <token>",
            )
            .into_response();
            r.headers_mut()
                .insert("www-authenticate", HeaderValue::from_static("Bearer"));
            return r;
        }
        Err(Refusal::Invalid(e)) => {
            let mut r = ApiError::from(e).into_response();
            r.headers_mut().insert(
                "www-authenticate",
                HeaderValue::from_static("Bearer error=\"invalid_token\""),
            );
            return r;
        }
    };
    let token_id = AdmittedToken(principal.token_id.clone());
    req.extensions_mut().insert(principal);
    let mut r = next.run(req).await;
    allowance_headers(r.headers_mut(), &allowance);
    r.extensions_mut().insert(token_id);
    r
}

/// The id of the token a request was admitted with, put on its response for
/// the access log (never the token itself).
#[derive(Debug, Clone)]
pub(crate) struct AdmittedToken(pub String);

/// Counts and times every request by route template and status.
pub(super) async fn observe(State(st): St, req: Request, next: Next) -> Response {
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|m| m.as_str().to_owned())
        .unwrap_or_else(|| "unmatched".into());
    let method = req.method().as_str().to_owned();
    let request_id = st.access_log.then(|| {
        req.headers()
            .get("x-request-id")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("-")
            .to_owned()
    });
    crate::observability::spans::http_route(&method, &route);
    let start = Instant::now();
    let r = next.run(req).await;
    let status = r.status();
    crate::observability::spans::http_status(status);
    let token = r.extensions().get::<AdmittedToken>();
    record_request(
        &st,
        &Finished {
            method: &method,
            route: &route,
            status: status.as_str(),
            code: status.as_u16(),
            http: status,
            secs: start.elapsed().as_secs_f64(),
            request_id: request_id.as_deref().unwrap_or("-"),
            token_id: token.map_or("-", |t| t.0.as_str()),
        },
    );
    r
}

/// A finished request, REST or gRPC, as [`record_request`] takes it.
pub(crate) struct Finished<'a> {
    /// The HTTP method, or `GRPC`.
    pub method: &'a str,
    /// The matched route (`/v1/keyrings/{name}/seal`, `grpc:/fleetkey.v1.Crypto/Seal`).
    pub route: &'a str,
    /// The status label: the HTTP status, or the gRPC code's number.
    pub status: &'a str,
    /// The same as a number (the access log's `status`).
    pub code: u16,
    /// The HTTP status the answer is, or maps to (docs/errors.md), for the limiter.
    pub http: StatusCode,
    /// How long it took.
    pub secs: f64,
    /// The `x-request-id`, or `-`.
    pub request_id: &'a str,
    /// The admitted token's id, or `-`.
    pub token_id: &'a str,
}

/// What every finished request leaves, whichever door it came through: its
/// access-log line (the token by id only), its latency and count in the metrics,
/// and the overload signal the adaptive limiter reads (server errors and
/// unprocessable requests count as failures; rate-limited ones not at all).
pub(crate) fn record_request(st: &AppState, f: &Finished<'_>) {
    if st.access_log {
        tracing::info!(
            target: "fleetkey::access",
            method = %f.method,
            route = %f.route,
            status = f.code,
            latency_ms = f.secs * 1000.0,
            request_id = %f.request_id,
            token_id = %f.token_id,
            "request"
        );
    }
    st.metrics
        .latency
        .with_label_values(&[f.route])
        .observe(f.secs);
    st.metrics
        .requests
        .with_label_values(&[f.route, f.method, f.status])
        .inc();
    if f.http != StatusCode::TOO_MANY_REQUESTS {
        st.limits
            .record(f.http.is_server_error() || f.http == StatusCode::UNPROCESSABLE_ENTITY);
    }
    if f.http.is_server_error() {
        tracing::warn!(route = %f.route, status = %f.status, "request failed");
    }
}
