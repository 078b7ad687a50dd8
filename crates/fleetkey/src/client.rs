//! The CLI as a client of `fleetkey serve`: with `FLEETKEY_ADDR` and
//! `FLEETKEY_TOKEN` set (the habit of VAULT_ADDR/VAULT_TOKEN), keyring and token
//! commands go to the server instead of a local data directory.

use crate::error::{CliError, CliResult, code};
use serde::de::DeserializeOwned;
use serde_json::Value;

pub use fleetkey_http::{path, with_query};

/// A configured client: the shared HTTP client ([`fleetkey_http::Client`]) with
/// the CLI's error messages and hints.
pub struct Client(fleetkey_http::Client);

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
        // A private CA for the server's certificate (like VAULT_CACERT).
        let ca = match std::env::var_os("FLEETKEY_CACERT").filter(|v| !v.is_empty()) {
            Some(path) => Some(
                std::fs::read(&path)
                    .map_err(|e| CliError::io(std::path::Path::new(&path).display(), &e))?,
            ),
            None => None,
        };
        let client = fleetkey_http::Client::new(
            &addr,
            Some(&token),
            ca.as_deref(),
            std::time::Duration::from_secs(60),
        )
        .map_err(|e| match e {
            fleetkey_http::HttpError::Setup(m) if ca.is_some() => {
                CliError::usage(format!("FLEETKEY_CACERT: {m}"))
            }
            e => CliError::new(code::IO, e.to_string()),
        })?;
        Ok(Some(Self(client)))
    }

    /// The server's address (`FLEETKEY_ADDR`).
    pub fn addr(&self) -> &str {
        self.0.base()
    }

    /// Calls `method path` with `body` (one of the server's request types).
    pub async fn send<T: DeserializeOwned>(
        &self,
        method: reqwest::Method,
        path: &str,
        body: &impl serde::Serialize,
    ) -> CliResult<T> {
        self.0
            .call(method, path, Some(body), true)
            .await
            .map_err(|e| self.cli_error(e))
    }

    /// Calls `method path` with an optional JSON body; maps error bodies to messages.
    pub async fn call<T: DeserializeOwned>(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> CliResult<T> {
        self.0
            .call(method, path, body.as_ref(), true)
            .await
            .map_err(|e| self.cli_error(e))
    }

    /// The CLI's message, exit code and hint for a failed call.
    fn cli_error(&self, e: fleetkey_http::HttpError) -> CliError {
        use fleetkey_http::HttpError;
        let (status, message, c) = match e {
            HttpError::Unreachable { source, .. } => {
                return CliError::new(
                    code::UNAVAILABLE,
                    format!("cannot reach {}: {source}", self.0.base()),
                )
                .hint("is `fleetkey serve` running? check FLEETKEY_ADDR");
            }
            HttpError::Status {
                status,
                code,
                message,
                ..
            } => (status, message, code),
            HttpError::Body(m) => return CliError::new(code::UNAVAILABLE, m),
            HttpError::Setup(m) => return CliError::usage(m),
        };
        // A body that was not the API's error shape says only that it failed.
        let message = if c.is_empty() {
            "request failed".to_owned()
        } else {
            message
        };
        match status.as_u16() {
            401 => CliError::refused(format!("server: {message}"))
                .hint("check FLEETKEY_TOKEN (expired or revoked?)"),
            403 => CliError::refused(format!("server: {message}"))
                .hint("ask for a token with that scope"),
            404 => CliError::new(code::NOT_FOUND, format!("server: {message}")),
            400 | 413 => CliError::usage(format!("server: {message}")),
            429 => CliError::refused(format!("server: {message}"))
                .hint("slow down, or raise the rate limit"),
            500..=599 => CliError::new(code::UNAVAILABLE, format!("server: {message} ({c})"))
                .hint("the server failed or is unavailable; try again later"),
            _ => CliError::refused(format!("server: {message}")),
        }
    }
}
