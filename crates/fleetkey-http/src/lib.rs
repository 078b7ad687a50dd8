//! The client of fleetkey's HTTP API (`/v1`), shared by the CLI's remote mode and
//! the fleet simulator, so both speak to the server one way.
//!
//! Bodies are typed: callers send and receive the server's own request and
//! response types (`fleetkey_server::api::…`, which are `Serialize` and
//! `Deserialize`), so a renamed field is a compile error on both sides rather than
//! an empty string at run time. Paths are built with [`path`], which
//! percent-encodes each segment. A refusal comes back as [`HttpError::Status`]
//! with the API's error code and message (`docs/api.md#errors`).

use serde::Serialize;
use serde::de::DeserializeOwned;
use std::time::Duration;

pub use reqwest::Method;

/// A request path from its segments, each percent-encoded (a keyring or device
/// name with `/`, `?` or `%` stays one segment): `path(&["v1", "keyrings", name])`.
pub fn path(segments: &[&str]) -> String {
    segments.iter().map(|s| format!("/{}", encode(s))).collect()
}

/// `path` with a query of the pairs whose value is set (`?a=1&b=x`), each
/// name and value percent-encoded; no `?` when none is.
pub fn with_query(path: &str, pairs: &[(&str, Option<String>)]) -> String {
    let query: Vec<String> = pairs
        .iter()
        .filter_map(|(k, v)| v.as_ref().map(|v| format!("{}={}", encode(k), encode(v))))
        .collect();
    if query.is_empty() {
        path.to_owned()
    } else {
        format!("{path}?{}", query.join("&"))
    }
}

/// Everything but the unreserved characters of RFC 3986, percent-encoded.
fn encode(s: &str) -> percent_encoding::PercentEncode<'_> {
    use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
    const UNRESERVED: &AsciiSet = &NON_ALPHANUMERIC
        .remove(b'-')
        .remove(b'.')
        .remove(b'_')
        .remove(b'~');
    utf8_percent_encode(s, UNRESERVED)
}

/// Why a call failed.
#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    /// The server could not be reached (connection refused, timeout, TLS).
    #[error("cannot reach {base}: {source}")]
    Unreachable {
        /// The server's base URL.
        base: String,
        /// What the HTTP client saw.
        source: reqwest::Error,
    },
    /// The server answered with an error status.
    #[error("{method} {path}: {status}: {message}")]
    Status {
        /// The request's method.
        method: Method,
        /// The request's path.
        path: String,
        /// The HTTP status.
        status: reqwest::StatusCode,
        /// The API's error code (`error.code`), empty if the body had none.
        code: String,
        /// The API's message (`error.message`), or the body's text.
        message: String,
    },
    /// A body could not be encoded, or the answer is not what the type says.
    #[error("{0}")]
    Body(String),
    /// The client could not be built (a bad certificate, no TLS backend).
    #[error("http client: {0}")]
    Setup(String),
}

/// A client of one server, with or without an API token.
#[derive(Clone)]
pub struct Client {
    base: String,
    token: Option<zeroize::Zeroizing<String>>,
    http: reqwest::Client,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("base", &self.base)
            .field("token", &self.token.as_ref().map(|_| "<redacted>"))
            .finish_non_exhaustive()
    }
}

impl Client {
    /// A client of the server at `base` (`http://host:port` or `https://…`),
    /// sending `token` as a bearer token on calls that ask for it, trusting
    /// `ca_pem` besides the system roots, giving up on a call after `timeout`.
    pub fn new(
        base: &str,
        token: Option<&str>,
        ca_pem: Option<&[u8]>,
        timeout: Duration,
    ) -> Result<Self, HttpError> {
        let mut builder = reqwest::Client::builder().timeout(timeout);
        if let Some(pem) = ca_pem {
            let cert = reqwest::Certificate::from_pem(pem)
                .map_err(|e| HttpError::Setup(format!("not a PEM certificate: {e}")))?;
            builder = builder.add_root_certificate(cert);
        }
        Ok(Self {
            base: base.trim_end_matches('/').to_owned(),
            token: token.map(|t| zeroize::Zeroizing::new(t.to_owned())),
            http: builder
                .build()
                .map_err(|e| HttpError::Setup(e.to_string()))?,
        })
    }

    /// The base URL.
    pub fn base(&self) -> &str {
        &self.base
    }

    /// The underlying HTTP client (for calls outside the API, such as the key
    /// directory's records).
    pub fn http(&self) -> &reqwest::Client {
        &self.http
    }

    /// `method path` with `body` as JSON (none: no body) and, if `auth`, the
    /// token; the answer read as `T` (an empty answer reads as JSON `null`).
    pub async fn call<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: Option<&(impl Serialize + ?Sized)>,
        auth: bool,
    ) -> Result<T, HttpError> {
        let mut req = self
            .http
            .request(method.clone(), format!("{}{path}", self.base));
        if let Some(b) = body {
            let json = serde_json::to_vec(b)
                .map_err(|e| HttpError::Body(format!("encoding the request: {e}")))?;
            req = req
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .body(json);
        }
        if auth && let Some(t) = &self.token {
            req = req.bearer_auth(t.as_str());
        }
        let resp = req.send().await.map_err(|e| self.unreachable(e))?;
        let status = resp.status();
        let bytes = resp.bytes().await.map_err(|e| self.unreachable(e))?;
        if status.is_success() {
            let text = if bytes.is_empty() {
                &b"null"[..]
            } else {
                &bytes[..]
            };
            return serde_json::from_slice(text)
                .map_err(|e| HttpError::Body(format!("unexpected response: {e}")));
        }
        let v: serde_json::Value = serde_json::from_slice(&bytes).unwrap_or_default();
        let error = &v["error"];
        Err(HttpError::Status {
            method,
            path: path.to_owned(),
            status,
            code: error["code"].as_str().unwrap_or_default().to_owned(),
            message: error["message"].as_str().map_or_else(
                || String::from_utf8_lossy(&bytes).into_owned(),
                str::to_owned,
            ),
        })
    }

    /// GET with the token.
    pub async fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T, HttpError> {
        self.call(Method::GET, path, None::<&()>, true).await
    }

    /// POST `body` with the token.
    pub async fn post<T: DeserializeOwned>(
        &self,
        path: &str,
        body: &(impl Serialize + ?Sized),
    ) -> Result<T, HttpError> {
        self.call(Method::POST, path, Some(body), true).await
    }

    /// The text of `path` without a token (`/metrics`).
    pub async fn text(&self, path: &str) -> Result<String, HttpError> {
        let resp = self
            .http
            .get(format!("{}{path}", self.base))
            .send()
            .await
            .map_err(|e| self.unreachable(e))?;
        let status = resp.status();
        let text = resp.text().await.map_err(|e| self.unreachable(e))?;
        if !status.is_success() {
            return Err(HttpError::Status {
                method: Method::GET,
                path: path.to_owned(),
                status,
                code: String::new(),
                message: text,
            });
        }
        Ok(text)
    }

    /// The error for a transport failure talking to this server.
    fn unreachable(&self, source: reqwest::Error) -> HttpError {
        HttpError::Unreachable {
            base: self.base.clone(),
            source,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_segment_stays_one_segment() {
        assert_eq!(
            path(&["v1", "keyrings", "k-1.a_b~"]),
            "/v1/keyrings/k-1.a_b~"
        );
        assert_eq!(
            path(&["v1", "fleets", "a/b", "devices", "x?y#z%", "é"]),
            "/v1/fleets/a%2Fb/devices/x%3Fy%23z%25/%C3%A9"
        );
    }

    #[test]
    fn the_token_never_reaches_debug_output() {
        let c = Client::new(
            "http://127.0.0.1:1/",
            Some("fkt_secret"),
            None,
            Duration::from_secs(1),
        )
        .unwrap();
        let d = format!("{c:?}");
        assert!(!d.contains("fkt_secret") && d.contains("redacted"), "{d}");
        assert_eq!(c.base(), "http://127.0.0.1:1");
    }

    #[tokio::test]
    async fn an_unreachable_server_is_named() {
        let c = Client::new("http://127.0.0.1:1", None, None, Duration::from_secs(2)).unwrap();
        let err = c.get::<serde_json::Value>("/v1/x").await.unwrap_err();
        assert!(matches!(err, HttpError::Unreachable { .. }), "{err}");
        assert!(
            err.to_string()
                .starts_with("cannot reach http://127.0.0.1:1"),
            "{err}"
        );
    }
}
