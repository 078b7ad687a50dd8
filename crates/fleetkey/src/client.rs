//! The CLI as a client of `fleetkey serve`: with `FLEETKEY_ADDR` and
//! `FLEETKEY_TOKEN` set (the habit of VAULT_ADDR/VAULT_TOKEN), keyring and token
//! commands go to the server instead of a local data directory.

use crate::error::{CliError, CliResult, code};
use serde::de::DeserializeOwned;
use serde_json::Value;

/// A request path from its segments, each percent-encoded (a keyring or device
/// name with `/`, `?` or `%` stays one segment): `path(&["v1", "keyrings", name])`.
pub fn path(segments: &[&str]) -> String {
    use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
    /// Everything but the unreserved characters of RFC 3986.
    const SEGMENT: &AsciiSet = &NON_ALPHANUMERIC
        .remove(b'-')
        .remove(b'.')
        .remove(b'_')
        .remove(b'~');
    segments
        .iter()
        .map(|s| format!("/{}", utf8_percent_encode(s, SEGMENT)))
        .collect()
}

/// A configured client.
pub struct Client {
    base: String,
    token: zeroize::Zeroizing<String>,
    http: reqwest::Client,
}

impl Client {
    /// The client from the environment, if `FLEETKEY_ADDR` is set.
    pub fn from_env() -> CliResult<Option<Self>> {
        let Some(addr) = std::env::var("FLEETKEY_ADDR")
            .ok()
            .filter(|a| !a.is_empty())
        else {
            return Ok(None);
        };
        let token = std::env::var("FLEETKEY_TOKEN")
            .ok()
            .filter(|t| !t.is_empty())
            .ok_or_else(|| {
                CliError::usage("FLEETKEY_ADDR is set but FLEETKEY_TOKEN is not")
                    .hint("export FLEETKEY_TOKEN=$(cat fleetkey-data/admin.token), or unset FLEETKEY_ADDR for local mode")
            })?;
        if !(addr.starts_with("http://") || addr.starts_with("https://")) {
            return Err(CliError::usage(format!(
                "FLEETKEY_ADDR {addr:?} must start with http:// or https://"
            )));
        }
        fleetkey_server::api::server::install_crypto_provider();
        let mut builder = reqwest::Client::builder().timeout(std::time::Duration::from_secs(60));
        // A private CA for the server's certificate (like VAULT_CACERT).
        if let Some(path) = std::env::var_os("FLEETKEY_CACERT").filter(|v| !v.is_empty()) {
            let pem = std::fs::read(&path)
                .map_err(|e| CliError::io(std::path::Path::new(&path).display(), &e))?;
            let cert = reqwest::Certificate::from_pem(&pem).map_err(|e| {
                CliError::usage(format!("FLEETKEY_CACERT: not a PEM certificate: {e}"))
            })?;
            builder = builder.add_root_certificate(cert);
        }
        let http = builder
            .build()
            .map_err(|e| CliError::new(code::IO, format!("http client: {e}")))?;
        Ok(Some(Self {
            base: addr.trim_end_matches('/').to_owned(),
            token: zeroize::Zeroizing::new(token),
            http,
        }))
    }

    /// Calls `method path` with `body` (one of the server's request types).
    pub async fn send<T: DeserializeOwned>(
        &self,
        method: reqwest::Method,
        path: &str,
        body: &impl serde::Serialize,
    ) -> CliResult<T> {
        let body = serde_json::to_value(body)
            .map_err(|e| CliError::new(code::IO, format!("encoding the request: {e}")))?;
        self.call(method, path, Some(body)).await
    }

    /// Calls `method path` with an optional JSON body; maps error bodies to messages.
    pub async fn call<T: DeserializeOwned>(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> CliResult<T> {
        let url = format!("{}{path}", self.base);
        let mut req = self
            .http
            .request(method, &url)
            .bearer_auth(self.token.as_str());
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.map_err(|e| {
            CliError::new(code::IO, format!("cannot reach {}: {e}", self.base))
                .hint("is `fleetkey serve` running? check FLEETKEY_ADDR")
        })?;
        let status = resp.status();
        let bytes = resp
            .bytes()
            .await
            .map_err(|e| CliError::new(code::IO, format!("reading the response: {e}")))?;
        if status.is_success() {
            let text = if bytes.is_empty() {
                &b"null"[..]
            } else {
                &bytes[..]
            };
            return serde_json::from_slice(text)
                .map_err(|e| CliError::new(code::IO, format!("unexpected response: {e}")));
        }
        let v: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        let message = v["error"]["message"]
            .as_str()
            .unwrap_or("request failed")
            .to_owned();
        let c = v["error"]["code"].as_str().unwrap_or("");
        Err(match status.as_u16() {
            401 => CliError::refused(format!("server: {message}"))
                .hint("check FLEETKEY_TOKEN (expired or revoked?)"),
            403 => CliError::refused(format!("server: {message}"))
                .hint("ask for a token with that scope"),
            400 | 404 | 413 => CliError::usage(format!("server: {message}")),
            429 => CliError::refused(format!("server: {message}"))
                .hint("slow down, or raise the rate limit"),
            500..=599 => CliError::new(code::IO, format!("server: {message} ({c})")),
            _ => CliError::refused(format!("server: {message}")),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::path;

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
}
