//! The simulator's view of the HTTP API with an operator token: the shared client
//! ([`fleetkey_http::Client`]) with JSON bodies for scripted calls, and the
//! audit export and metrics the demo reads.

use anyhow::Result;
use serde_json::Value;
use std::time::Duration;

/// The HTTP API at `base` with an operator token.
#[derive(Clone, Debug)]
pub struct Api {
    client: fleetkey_http::Client,
}

impl Api {
    /// `base` is `http://host:port`.
    pub fn new(base: &str, token: &str) -> Result<Self> {
        Ok(Self {
            client: fleetkey_http::Client::new(base, Some(token), None, Duration::from_secs(30))?,
        })
    }

    /// The base URL.
    pub fn base(&self) -> &str {
        self.client.base()
    }

    /// The underlying HTTP client.
    pub fn http(&self) -> &reqwest::Client {
        self.client.http()
    }

    /// The shared typed client (bodies are the server's request and response types).
    pub fn client(&self) -> &fleetkey_http::Client {
        &self.client
    }

    /// `method path` with an optional JSON body and, if `auth`, the token; the JSON
    /// answer, or an error naming the status and the server's message.
    pub async fn request(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<&Value>,
        auth: bool,
    ) -> Result<Value> {
        Ok(self.client.call(method, path, body, auth).await?)
    }

    /// GET with the token.
    pub async fn get(&self, path: &str) -> Result<Value> {
        self.request(reqwest::Method::GET, path, None, true).await
    }

    /// POST with the token.
    pub async fn post(&self, path: &str, body: &Value) -> Result<Value> {
        self.request(reqwest::Method::POST, path, Some(body), true)
            .await
    }

    /// PUT with the token.
    pub async fn put(&self, path: &str, body: &Value) -> Result<Value> {
        self.request(reqwest::Method::PUT, path, Some(body), true)
            .await
    }

    /// The audit log as export lines (`{"entry": …}` per entry, then
    /// `{"checkpoint": …}`), fetched page by page up to a fresh signed checkpoint,
    /// and the service's public key (the directory key) to verify them with.
    pub async fn audit_export(&self) -> Result<(Vec<String>, Vec<u8>)> {
        use base64::Engine as _;
        let dir = self
            .request(reqwest::Method::GET, "/v1/directory", None, false)
            .await?;
        let key = base64::engine::general_purpose::STANDARD.decode(
            dir["public_key"]
                .as_str()
                .ok_or_else(|| anyhow::anyhow!("the directory has no public_key"))?,
        )?;
        let checkpoint = self.get("/v1/audit/checkpoint").await?;
        let upto = checkpoint["seq"]
            .as_u64()
            .ok_or_else(|| anyhow::anyhow!("the checkpoint has no seq"))?;
        let mut lines = Vec::new();
        let mut after = 0u64;
        'pages: while after < upto {
            let page = self
                .get(&format!("/v1/audit?after={after}&limit=1000"))
                .await?;
            let entries = page["entries"].as_array().cloned().unwrap_or_default();
            if entries.is_empty() {
                break;
            }
            for e in entries {
                let seq = e["seq"]
                    .as_u64()
                    .ok_or_else(|| anyhow::anyhow!("an audit entry has no seq"))?;
                if seq > upto {
                    break 'pages;
                }
                after = seq;
                lines.push(serde_json::json!({ "entry": e }).to_string());
            }
        }
        lines.push(serde_json::json!({ "checkpoint": checkpoint }).to_string());
        Ok((lines, key))
    }

    /// The Prometheus text of `/metrics`.
    pub async fn metrics(&self) -> Result<String> {
        Ok(self.client.text("/metrics").await?)
    }
}

/// The value of the sample `name{labels}` in Prometheus text (labels written as
/// the exposition prints them, sorted: `result="accepted"`); 0 when absent.
pub fn metric(text: &str, name: &str, labels: &str) -> f64 {
    sample(text, name, labels).unwrap_or(0.0)
}

/// The value of the integer sample `name{labels}` (a counter or integer gauge,
/// as [`metric`]); 0 when absent or not a non-negative integer.
pub fn count(text: &str, name: &str, labels: &str) -> u64 {
    sample(text, name, labels).unwrap_or(0)
}

fn sample<T: std::str::FromStr>(text: &str, name: &str, labels: &str) -> Option<T> {
    let key = if labels.is_empty() {
        name.to_owned()
    } else {
        format!("{name}{{{labels}}}")
    };
    text.lines()
        .filter_map(|l| l.strip_prefix(&key))
        .filter_map(|rest| rest.strip_prefix(' '))
        .find_map(|v| v.trim().parse().ok())
}

/// Every sample of `name` as (labels, value), e.g. `("reason=\"replay\"", 2.0)`.
pub fn samples(text: &str, name: &str) -> Vec<(String, f64)> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.strip_prefix(name))
        .filter_map(|rest| {
            let rest = rest.strip_prefix('{')?;
            let (labels, value) = rest.split_once("} ")?;
            Some((labels.to_owned(), value.trim().parse().ok()?))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metrics_text_is_read_by_name_and_labels() {
        let text = "# HELP x\nfk_total{result=\"accepted\"} 8\nfk_total{result=\"replay\"} 2\nfk_total_other 5\nfk_gauge 3\n";
        assert_eq!(metric(text, "fk_total", "result=\"accepted\""), 8.0);
        assert_eq!(metric(text, "fk_total", "result=\"missing\""), 0.0);
        assert_eq!(metric(text, "fk_gauge", ""), 3.0);
        assert_eq!(
            samples(text, "fk_total"),
            vec![
                ("result=\"accepted\"".to_owned(), 8.0),
                ("result=\"replay\"".to_owned(), 2.0)
            ]
        );
    }
}
