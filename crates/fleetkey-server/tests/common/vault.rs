//! Transit calls as Vault clients make them, for the Transit door's tests.

use super::api::Api;
use axum::body::Body;
use axum::http::{Request, StatusCode};
use base64::{Engine as _, engine::general_purpose::STANDARD as B64};
use serde_json::Value;
use tower::ServiceExt;

/// A Transit call as a Vault client makes it: `X-Vault-Token`, a JSON body with
/// no content type.
pub async fn vault(
    a: &Api,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<Value>,
) -> (StatusCode, Value) {
    let mut req = Request::builder().method(method).uri(path);
    if let Some(t) = token {
        req = req.header("x-vault-token", t);
    }
    let req = req
        .body(body.map_or_else(Body::empty, |b| Body::from(b.to_string())))
        .unwrap();
    let resp = a.app.clone().oneshot(req).await.unwrap();
    let status = resp.status();
    let bytes = axum::body::to_bytes(resp.into_body(), usize::MAX)
        .await
        .unwrap();
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

pub async fn admin(a: &Api, method: &str, path: &str, body: Option<Value>) -> (StatusCode, Value) {
    vault(a, method, path, Some(&a.admin.clone()), body).await
}

pub fn b64(s: &str) -> String {
    B64.encode(s)
}

/// The one error message of a Transit error body.
pub fn error(v: &Value) -> String {
    v["errors"][0].as_str().unwrap_or("").to_owned()
}
