//! Extractors whose rejections become JSON errors, and base64 fields.

use super::AppState;
use super::error::{ApiError, ApiResult};
use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::{HeaderMap, StatusCode, request::Parts};
use base64::{Engine as _, engine::general_purpose::STANDARD as B64};
use std::sync::Arc;

/// JSON body whose rejections become JSON errors (400, 413).
pub struct ApiJson<T>(pub T);

impl<T: serde::de::DeserializeOwned> FromRequest<Arc<AppState>> for ApiJson<T> {
    type Rejection = ApiError;
    async fn from_request(req: Request, state: &Arc<AppState>) -> Result<Self, Self::Rejection> {
        if !is_json(req.headers()) {
            return Err(ApiError::malformed("send Content-Type: application/json"));
        }
        let v = json_body(req, state, false).await?;
        serde_json::from_value(v)
            .map(ApiJson)
            .map_err(|e| ApiError::malformed(format!("invalid request body: {e}")))
    }
}

/// The request body as a JSON object: read whole within the body deadline and
/// the size limit, no key given twice, integral numbers as integers. An empty
/// body is an empty object when `empty_ok` (the Vault and AWS doors: their
/// clients send none to mean no parameters).
pub(super) async fn json_body(
    req: Request,
    state: &Arc<AppState>,
    empty_ok: bool,
) -> ApiResult<serde_json::Value> {
    let bytes = read_body(req, state).await?;
    json_value(&bytes, empty_ok)
}

/// The whole request body, within the body deadline and the size limit (a
/// client trickling bytes cannot hold the handler, and its buffer, open).
pub(super) async fn read_body(req: Request, state: &Arc<AppState>) -> ApiResult<axum::body::Bytes> {
    let read = axum::body::Bytes::from_request(req, state);
    match tokio::time::timeout(state.body_timeout, read).await {
        Ok(Ok(b)) => Ok(b),
        Ok(Err(r)) if r.status() == StatusCode::PAYLOAD_TOO_LARGE => Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "too_large",
            "request body is larger than the configured limit",
        )),
        Ok(Err(r)) => Err(ApiError::malformed(r.body_text())),
        Err(_) => Err(ApiError::new(
            StatusCode::REQUEST_TIMEOUT,
            "timeout",
            format!(
                "the request body did not arrive within {} s",
                state.body_timeout.as_secs()
            ),
        )),
    }
}

/// A body read as a JSON object: no key given twice, integral numbers as
/// integers; empty is an empty object when `empty_ok`.
pub(super) fn json_value(bytes: &[u8], empty_ok: bool) -> ApiResult<serde_json::Value> {
    if empty_ok && bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(serde_json::Value::Object(serde_json::Map::new()));
    }
    // Every request body is an object (serde would also fill a struct from an
    // array: `[null]` once cleared a rotation policy).
    if bytes.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
        return Err(ApiError::malformed(
            "the request body must be a JSON object",
        ));
    }
    let Unique(mut v) = serde_json::from_slice(bytes)
        .map_err(|e| ApiError::malformed(format!("invalid request body: {e}")))?;
    integral_numbers(&mut v, 0);
    Ok(v)
}

/// A JSON value in which no object gives a key twice. serde_json keeps the last
/// of two equal keys where another parser may keep the first; refusing them means
/// a proxy, a policy check and the service can never read one body two ways.
struct Unique(serde_json::Value);

impl<'de> serde::Deserialize<'de> for Unique {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(UniqueVisitor).map(Unique)
    }
}

struct UniqueVisitor;

impl<'de> serde::de::Visitor<'de> for UniqueVisitor {
    type Value = serde_json::Value;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a JSON value")
    }
    fn visit_bool<E>(self, v: bool) -> Result<Self::Value, E> {
        Ok(v.into())
    }
    fn visit_i64<E>(self, v: i64) -> Result<Self::Value, E> {
        Ok(v.into())
    }
    fn visit_u64<E>(self, v: u64) -> Result<Self::Value, E> {
        Ok(v.into())
    }
    fn visit_f64<E>(self, v: f64) -> Result<Self::Value, E> {
        Ok(v.into())
    }
    fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
        Ok(v.into())
    }
    fn visit_string<E>(self, v: String) -> Result<Self::Value, E> {
        Ok(v.into())
    }
    fn visit_unit<E>(self) -> Result<Self::Value, E> {
        Ok(serde_json::Value::Null)
    }
    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let mut out = Vec::new();
        while let Some(Unique(v)) = seq.next_element()? {
            out.push(v);
        }
        Ok(out.into())
    }
    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut out = serde_json::Map::new();
        while let Some(k) = map.next_key::<String>()? {
            if out.contains_key(&k) {
                let shown: String = k.chars().take(64).collect();
                return Err(serde::de::Error::custom(format_args!(
                    "the key {shown:?} is given twice in one object"
                )));
            }
            let Unique(v) = map.next_value()?;
            out.insert(k, v);
        }
        Ok(out.into())
    }
}

/// JSON does not tell `1` from `1.0`, and JSON Schema calls both integers: a
/// number with no fractional part that fits 64 bits is read as an integer
/// wherever the body has one (serde would refuse `1.0` for an integer field).
pub(super) fn integral_numbers(v: &mut serde_json::Value, depth: usize) {
    use serde_json::Value;
    // serde_json's parser already bounds nesting (128 levels); this follows it.
    if depth > 128 {
        return;
    }
    match v {
        Value::Number(n) if n.is_f64() => {
            if let Some(f) = n.as_f64()
                && f.fract() == 0.0
            {
                // Exactly representable within ±2^63 only (casts saturate).
                if (-9.223_372_036_854_776e18..9.223_372_036_854_776e18).contains(&f) {
                    #[allow(clippy::cast_possible_truncation)]
                    let i = f as i64;
                    *v = Value::from(i);
                } else if (0.0..1.844_674_407_370_955_2e19).contains(&f) {
                    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
                    let u = f as u64;
                    *v = Value::from(u);
                }
            }
        }
        Value::Array(a) => a.iter_mut().for_each(|x| integral_numbers(x, depth + 1)),
        Value::Object(o) => o.values_mut().for_each(|x| integral_numbers(x, depth + 1)),
        _ => {}
    }
}

/// Whether the request says its body is JSON (`application/json`, or a
/// `+json` media type, parameters allowed).
pub(super) fn is_json(headers: &HeaderMap) -> bool {
    headers
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|v| {
            let essence = v
                .split(';')
                .next()
                .unwrap_or("")
                .trim()
                .to_ascii_lowercase();
            essence == "application/json"
                || (essence.starts_with("application/") && essence.ends_with("+json"))
        })
        .unwrap_or(false)
}

/// Path parameters whose rejections become JSON 400s.
pub struct ApiPath<T>(pub T);

impl<S: Send + Sync, T: serde::de::DeserializeOwned + Send> FromRequestParts<S> for ApiPath<T> {
    type Rejection = ApiError;
    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        axum::extract::Path::<T>::from_request_parts(parts, state)
            .await
            .map(|p| ApiPath(p.0))
            .map_err(|e: PathRejection| ApiError::malformed(e.body_text()))
    }
}

/// The `{name}` path segment of a keyring route, resolved: an alias
/// (`alias/NAME`, percent-encoded as `alias%2FNAME`) becomes the keyring it
/// names, so scopes, metrics and audit entries always name the keyring. An
/// unknown alias stays as it is: no scope names an alias, so a token without
/// `admin` is refused (403) whether or not the alias exists, and only one that
/// may see everything learns that it does not (404).
pub struct KeyringPath(pub String);

impl FromRequestParts<Arc<AppState>> for KeyringPath {
    type Rejection = ApiError;
    async fn from_request_parts(
        parts: &mut Parts,
        state: &Arc<AppState>,
    ) -> Result<Self, Self::Rejection> {
        let ApiPath(name) = ApiPath::<String>::from_request_parts(parts, state).await?;
        match state.keys.resolve(&name).await {
            Ok(resolved) => Ok(KeyringPath(resolved.into_owned())),
            Err(crate::Error::AliasNotFound(_)) => Ok(KeyringPath(name)),
            Err(e) => Err(e.into()),
        }
    }
}

/// Query parameters whose rejections become JSON 400s.
pub struct ApiQuery<T>(pub T);

impl<S: Send + Sync, T: serde::de::DeserializeOwned> FromRequestParts<S> for ApiQuery<T> {
    type Rejection = ApiError;
    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        axum::extract::Query::<T>::from_request_parts(parts, state)
            .await
            .map(|q| ApiQuery(q.0))
            .map_err(|e: QueryRejection| ApiError::malformed(e.body_text()))
    }
}

pub(super) fn b64(field: &str, s: &str) -> ApiResult<Vec<u8>> {
    B64.decode(s).map_err(|_| {
        ApiError::malformed(format!(
            "{field} is not valid base64 (RFC 4648, with padding)"
        ))
    })
}

/// The AAD a request binds: base64 `aad`, or the canonical encoding of
/// `context` (docs/formats.md, "Encryption context"), never both; empty if neither.
pub(super) fn binding(
    aad: &Option<String>,
    context: &Option<std::collections::BTreeMap<String, String>>,
) -> ApiResult<Vec<u8>> {
    match (aad, context) {
        (Some(_), Some(_)) => Err(ApiError::malformed(
            "give aad or context, not both (a context is encoded as the aad)",
        )),
        (_, Some(c)) => fleetkey_crypto::envelope::context::encode(c)
            .map_err(|e| ApiError::malformed(format!("context: {e}"))),
        (a, None) => opt_b64("aad", a),
    }
}

fn opt_b64(field: &str, s: &Option<String>) -> ApiResult<Vec<u8>> {
    s.as_deref()
        .map(|v| b64(field, v))
        .transpose()
        .map(Option::unwrap_or_default)
}
