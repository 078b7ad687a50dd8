//! Vault / OpenBao Transit custody: the root is a transit key that never leaves
//! Vault (tested against a real OpenBao server).
//!
//! Two transit keys, made on first start when absent (docs/custody.md):
//!
//! * `<key>`: `aes256-gcm96` with `derived: true`, not exportable. Data keys are
//!   wrapped by `POST <mount>/encrypt/<key>` with the wrap context as the
//!   derivation `context`, so a wrapped key moved to another context does not
//!   unwrap; `decrypt` reverses it. Its HMAC (`hmac/<key>/sha2-256`, version 1)
//!   of a fixed label is the ML-DSA-65 seed: derived inside Vault, identical on
//!   every instance, never stored.
//! * `<key>-ed25519`: `ed25519`, signs the Ed25519 half of the composite service
//!   signature in Vault (`sign`, pinned to the version read at start).
//!
//! Authentication: a token, or AppRole (role id and secret id; a fresh login when
//! Vault answers 403). `X-Vault-Namespace` when a namespace is set.

use super::{Custody, settings};
use crate::error::{Error, Result};
use base64::{Engine as _, engine::general_purpose::STANDARD as B64};
use fleetkey_crypto::{composite, ed25519, mldsa::MlDsaSigner, secret::SecretBytes};
use parking_lot::RwLock;
use serde_json::{Value, json};
use std::time::Duration;
use zeroize::Zeroizing;

/// First byte of a Vault-wrapped key: the format (a transit ciphertext string).
const WRAP_TRANSIT_V1: u8 = 0x02;
/// Longest transit ciphertext accepted for a 32-byte key (it is about 90 bytes).
const MAX_CIPHERTEXT: usize = 512;
const SEED_LABEL: &[u8] = b"fleetkey custody vault ml-dsa-65 seed v1";

/// How fleetkey logs in to Vault.
pub enum VaultAuth {
    /// A token (`FLEETKEY_VAULT_TOKEN_FILE` or `FLEETKEY_VAULT_TOKEN`).
    Token(Zeroizing<String>),
    /// AppRole (`FLEETKEY_VAULT_ROLE_ID`, `FLEETKEY_VAULT_SECRET_ID_FILE` or
    /// `FLEETKEY_VAULT_SECRET_ID`), at `auth/<mount>/login`.
    AppRole {
        /// The role id.
        role_id: String,
        /// The secret id.
        secret_id: Zeroizing<String>,
        /// The AppRole mount (`FLEETKEY_VAULT_APPROLE_MOUNT`, default `approle`).
        mount: String,
    },
}

/// Where Vault is and which transit key holds the root (`FLEETKEY_VAULT_*`).
pub struct VaultConfig {
    /// `http(s)://host:port` (`FLEETKEY_VAULT_ADDR`).
    pub addr: String,
    /// How to log in.
    pub auth: VaultAuth,
    /// Namespace (`FLEETKEY_VAULT_NAMESPACE`), sent as `X-Vault-Namespace`.
    pub namespace: Option<String>,
    /// The transit mount (`FLEETKEY_VAULT_TRANSIT_MOUNT`, default `transit`).
    pub mount: String,
    /// The transit key's name (`FLEETKEY_VAULT_TRANSIT_KEY`, default `fleetkey`).
    pub key: String,
    /// Per-request timeout (`FLEETKEY_VAULT_TIMEOUT_MS`, default 5000).
    pub timeout: Duration,
}

impl std::fmt::Debug for VaultConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let auth = match &self.auth {
            VaultAuth::Token(_) => "token",
            VaultAuth::AppRole { .. } => "approle",
        };
        f.debug_struct("VaultConfig")
            .field("addr", &self.addr)
            .field("auth", &auth)
            .field("namespace", &self.namespace)
            .field("mount", &self.mount)
            .field("key", &self.key)
            .finish_non_exhaustive()
    }
}

/// A name that goes into a URL path: letters, digits, `-`, `_`, `.`.
fn path_name(var: &str, v: String) -> Result<String> {
    let ok = !v.is_empty()
        && v.len() <= 128
        && v.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
        && v != "."
        && v != "..";
    if ok {
        Ok(v)
    } else {
        Err(Error::CustodyConfig(format!(
            "{var} must be 1-128 letters, digits, '-', '_' or '.'"
        )))
    }
}

impl VaultConfig {
    /// From the `FLEETKEY_VAULT_*` variables (docs/custody.md).
    pub fn from_env() -> Result<Self> {
        let addr = settings::var("FLEETKEY_VAULT_ADDR").ok_or_else(|| {
            Error::CustodyConfig(
                "set FLEETKEY_VAULT_ADDR to Vault's address (https://host:8200)".into(),
            )
        })?;
        if !(addr.starts_with("https://") || addr.starts_with("http://")) {
            return Err(Error::CustodyConfig(
                "FLEETKEY_VAULT_ADDR must start with https:// (or http:// on a trusted network)"
                    .into(),
            ));
        }
        let token = settings::secret("FLEETKEY_VAULT_TOKEN")?;
        let role_id = settings::var("FLEETKEY_VAULT_ROLE_ID");
        let auth = match (token, role_id) {
            (Some(t), None) => VaultAuth::Token(t),
            (None, Some(role_id)) => VaultAuth::AppRole {
                role_id,
                secret_id: settings::secret("FLEETKEY_VAULT_SECRET_ID")?.ok_or_else(|| {
                    Error::CustodyConfig(
                        "AppRole needs FLEETKEY_VAULT_SECRET_ID_FILE or FLEETKEY_VAULT_SECRET_ID"
                            .into(),
                    )
                })?,
                mount: path_name(
                    "FLEETKEY_VAULT_APPROLE_MOUNT",
                    settings::var("FLEETKEY_VAULT_APPROLE_MOUNT")
                        .unwrap_or_else(|| "approle".into()),
                )?,
            },
            (Some(_), Some(_)) => {
                return Err(Error::CustodyConfig(
                    "both a Vault token and FLEETKEY_VAULT_ROLE_ID are set; set one".into(),
                ));
            }
            (None, None) => {
                return Err(Error::CustodyConfig(
                    "set FLEETKEY_VAULT_TOKEN_FILE (or FLEETKEY_VAULT_TOKEN), or AppRole's \
                     FLEETKEY_VAULT_ROLE_ID and FLEETKEY_VAULT_SECRET_ID_FILE"
                        .into(),
                ));
            }
        };
        let timeout = settings::bounded("FLEETKEY_VAULT_TIMEOUT_MS", 5000, 100..=60_000)?;
        Ok(Self {
            addr: addr.trim_end_matches('/').to_owned(),
            auth,
            namespace: settings::var("FLEETKEY_VAULT_NAMESPACE"),
            mount: path_name(
                "FLEETKEY_VAULT_TRANSIT_MOUNT",
                settings::var("FLEETKEY_VAULT_TRANSIT_MOUNT").unwrap_or_else(|| "transit".into()),
            )?,
            key: path_name(
                "FLEETKEY_VAULT_TRANSIT_KEY",
                settings::var("FLEETKEY_VAULT_TRANSIT_KEY").unwrap_or_else(|| "fleetkey".into()),
            )?,
            timeout: Duration::from_millis(timeout),
        })
    }
}

/// What went wrong with a call, before it is given a meaning.
enum CallError {
    /// Vault answered with this status and these error messages.
    Status(u16, String),
    /// No answer (connection refused, timeout, TLS).
    Transport(String),
}

impl CallError {
    fn unavailable(self, what: &str) -> Error {
        Error::CustodyUnavailable(match self {
            CallError::Status(s, m) => format!("vault {what}: {s} {m}"),
            CallError::Transport(m) => format!("vault {what}: {m}"),
        })
    }
}

/// Vault's HTTP API with fleetkey's login.
struct Api {
    http: reqwest::Client,
    config: VaultConfig,
    token: RwLock<Zeroizing<String>>,
}

/// Custody whose root is a Vault / OpenBao transit key.
pub struct VaultCustody {
    api: Api,
    ed25519_version: u64,
    mldsa: MlDsaSigner,
    public_key: Vec<u8>,
}

impl std::fmt::Debug for VaultCustody {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VaultCustody")
            .field("config", &self.api.config)
            .field(
                "public_key_prefix",
                &fleetkey_crypto::hex_prefix(&self.public_key),
            )
            .finish_non_exhaustive()
    }
}

/// The bytes of a transit `vault:vN:BASE64` string.
fn transit_bytes(s: &str) -> Option<Vec<u8>> {
    let mut parts = s.splitn(3, ':');
    match (parts.next(), parts.next(), parts.next()) {
        (Some("vault"), Some(v), Some(b)) if v.starts_with('v') => B64.decode(b).ok(),
        _ => None,
    }
}

/// A setup failure is a configuration error: the service does not start.
fn setup(e: Error) -> Error {
    match e {
        Error::CustodyUnavailable(m) => Error::CustodyConfig(m),
        other => other,
    }
}

impl VaultCustody {
    /// Logs in, checks or makes the transit keys, derives the ML-DSA seed.
    pub async fn open(config: VaultConfig) -> Result<Self> {
        let http = reqwest::Client::builder()
            .timeout(config.timeout)
            .connect_timeout(config.timeout)
            .build()
            .map_err(|e| Error::CustodyConfig(format!("vault client: {e}")))?;
        let api = Api {
            http,
            config,
            token: RwLock::new(Zeroizing::new(String::new())),
        };
        api.login().await.map_err(setup)?;
        let key = api.config.key.clone();
        api.ensure_key(&key, "aes256-gcm96").await.map_err(setup)?;
        let ed_name = format!("{key}-ed25519");
        let ed = api.ensure_key(&ed_name, "ed25519").await.map_err(setup)?;
        let latest = ed["latest_version"].as_u64().unwrap_or(0);
        let mut public_key = ed["keys"][latest.to_string()]["public_key"]
            .as_str()
            .and_then(|p| B64.decode(p).ok())
            .filter(|p| p.len() == ed25519::PUBLIC_KEY_LEN)
            .ok_or_else(|| {
                Error::CustodyConfig(format!("transit key {ed_name:?} has no Ed25519 public key"))
            })?;
        let mldsa = MlDsaSigner::from_seed(api.derive_seed().await.map_err(setup)?)?;
        public_key.extend_from_slice(&mldsa.public_key());
        Ok(Self {
            api,
            ed25519_version: latest,
            mldsa,
            public_key,
        })
    }
}

impl Api {
    fn url(&self, path: &str) -> String {
        format!("{}/v1/{path}", self.config.addr)
    }

    async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<&Value>,
    ) -> std::result::Result<Value, CallError> {
        let mut req = self
            .http
            .request(method, self.url(path))
            .header("X-Vault-Request", "true");
        {
            let token = self.token.read();
            if !token.is_empty() {
                req = req.header("X-Vault-Token", token.as_str());
            }
        }
        if let Some(ns) = &self.config.namespace {
            req = req.header("X-Vault-Namespace", ns);
        }
        if let Some(b) = body {
            req = req.json(b);
        }
        let resp = req
            .send()
            .await
            .map_err(|e| CallError::Transport(e.without_url().to_string()))?;
        let status = resp.status().as_u16();
        let value: Value = resp.json().await.unwrap_or(Value::Null);
        if (200..300).contains(&status) {
            return Ok(value);
        }
        let errors = value["errors"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(Value::as_str)
                    .collect::<Vec<_>>()
                    .join("; ")
            })
            .unwrap_or_default();
        Err(CallError::Status(status, errors))
    }

    /// A call made again once after a fresh AppRole login when Vault says 403.
    async fn call(
        &self,
        what: &str,
        method: reqwest::Method,
        path: &str,
        body: Option<&Value>,
    ) -> std::result::Result<Value, CallError> {
        match self.send(method.clone(), path, body).await {
            Err(CallError::Status(403, m))
                if matches!(self.config.auth, VaultAuth::AppRole { .. }) =>
            {
                tracing::info!(what, "vault said 403; logging in again with AppRole");
                if self.login().await.is_err() {
                    return Err(CallError::Status(403, m));
                }
                self.send(method, path, body).await
            }
            r => r,
        }
    }

    async fn login(&self) -> Result<()> {
        match &self.config.auth {
            VaultAuth::Token(t) => {
                *self.token.write() = t.clone();
                Ok(())
            }
            VaultAuth::AppRole {
                role_id,
                secret_id,
                mount,
            } => {
                let body = json!({ "role_id": role_id, "secret_id": secret_id.as_str() });
                let v = self
                    .send(
                        reqwest::Method::POST,
                        &format!("auth/{mount}/login"),
                        Some(&body),
                    )
                    .await
                    .map_err(|e| e.unavailable("approle login"))?;
                let token = v["auth"]["client_token"].as_str().ok_or_else(|| {
                    Error::CustodyUnavailable("vault approle login: no client_token".into())
                })?;
                *self.token.write() = Zeroizing::new(token.to_owned());
                Ok(())
            }
        }
    }

    /// The transit key `name` (its `data`), made with `kind` when absent;
    /// refused when it is of another type, exportable, or (for the wrapping key)
    /// not derived.
    async fn ensure_key(&self, name: &str, kind: &str) -> Result<Value> {
        let path = format!("{}/keys/{name}", self.config.mount);
        let got = match self
            .call("read key", reqwest::Method::GET, &path, None)
            .await
        {
            Ok(v) => v,
            Err(CallError::Status(404, _)) => {
                let mut body = json!({ "type": kind, "exportable": false });
                if kind == "aes256-gcm96" {
                    body["derived"] = json!(true);
                }
                self.call("create key", reqwest::Method::POST, &path, Some(&body))
                    .await
                    .map_err(|e| e.unavailable(&format!("create transit key {name:?}")))?;
                self.call("read key", reqwest::Method::GET, &path, None)
                    .await
                    .map_err(|e| e.unavailable(&format!("read transit key {name:?}")))?
            }
            Err(e) => return Err(e.unavailable(&format!("read transit key {name:?}"))),
        };
        let data = got["data"].clone();
        let derived_ok = kind != "aes256-gcm96" || data["derived"] == json!(true);
        if data["type"] != json!(kind) || data["exportable"] == json!(true) || !derived_ok {
            return Err(Error::CustodyConfig(format!(
                "transit key {name:?} must be {kind}{}, not exportable",
                if kind == "aes256-gcm96" {
                    " with derived=true"
                } else {
                    ""
                }
            )));
        }
        Ok(data)
    }

    async fn derive_seed(&self) -> Result<SecretBytes<32>> {
        let path = format!("{}/hmac/{}/sha2-256", self.config.mount, self.config.key);
        let body = json!({ "input": B64.encode(SEED_LABEL), "key_version": 1 });
        let v = self
            .call("hmac", reqwest::Method::POST, &path, Some(&body))
            .await
            .map_err(|e| e.unavailable("derive the ML-DSA seed"))?;
        let mac = Zeroizing::new(
            v["data"]["hmac"]
                .as_str()
                .and_then(transit_bytes)
                .ok_or_else(|| Error::CustodyUnavailable("vault hmac: no hmac".into()))?,
        );
        Ok(SecretBytes::from_slice(&mac)?)
    }
}

#[async_trait::async_trait]
impl Custody for VaultCustody {
    async fn wrap(&self, key: &SecretBytes<32>, context: &str) -> Result<Vec<u8>> {
        // The request body holds the key in base64 until reqwest drops it, as
        // any process holding the key holds it in memory (docs/custody.md).
        let body = json!({
            "plaintext": B64.encode(key.expose_secret()),
            "context": B64.encode(context.as_bytes()),
        });
        let path = format!("{}/encrypt/{}", self.api.config.mount, self.api.config.key);
        let v = self
            .api
            .call("encrypt", reqwest::Method::POST, &path, Some(&body))
            .await
            .map_err(|e| e.unavailable("encrypt"))?;
        let ct = v["data"]["ciphertext"]
            .as_str()
            .filter(|c| c.len() <= MAX_CIPHERTEXT)
            .ok_or_else(|| Error::CustodyUnavailable("vault encrypt: no ciphertext".into()))?;
        let mut out = Vec::with_capacity(1 + ct.len());
        out.push(WRAP_TRANSIT_V1);
        out.extend_from_slice(ct.as_bytes());
        Ok(out)
    }

    async fn unwrap(&self, wrapped: &[u8], context: &str) -> Result<SecretBytes<32>> {
        let open = || Error::Envelope(fleetkey_crypto::Error::Open);
        let Some((&WRAP_TRANSIT_V1, ct)) = wrapped.split_first() else {
            return Err(open());
        };
        let ct = std::str::from_utf8(ct).map_err(|_| open())?;
        if ct.len() > MAX_CIPHERTEXT || !ct.starts_with("vault:v") {
            return Err(open());
        }
        let body = json!({ "ciphertext": ct, "context": B64.encode(context.as_bytes()) });
        let path = format!("{}/decrypt/{}", self.api.config.mount, self.api.config.key);
        let v = match self
            .api
            .call("decrypt", reqwest::Method::POST, &path, Some(&body))
            .await
        {
            Ok(v) => v,
            // Vault's "cipher: message authentication failed" and malformed
            // ciphertexts: the wrapped key does not open here.
            Err(CallError::Status(400, _)) => return Err(open()),
            Err(e) => return Err(e.unavailable("decrypt")),
        };
        let pt = Zeroizing::new(
            v["data"]["plaintext"]
                .as_str()
                .and_then(|p| B64.decode(p).ok())
                .ok_or_else(open)?,
        );
        SecretBytes::from_slice(&pt).map_err(|_| open())
    }

    async fn sign(&self, msg: &[u8]) -> Result<Vec<u8>> {
        let m = composite::signed_message(msg);
        let ml = self.mldsa.sign(&m)?;
        let body = json!({ "input": B64.encode(&m), "key_version": self.ed25519_version });
        let path = format!(
            "{}/sign/{}-ed25519",
            self.api.config.mount, self.api.config.key
        );
        let v = self
            .api
            .call("sign", reqwest::Method::POST, &path, Some(&body))
            .await
            .map_err(|e| e.unavailable("sign"))?;
        let ed = v["data"]["signature"]
            .as_str()
            .and_then(transit_bytes)
            .filter(|s| s.len() == ed25519::SIGNATURE_LEN)
            .ok_or_else(|| Error::CustodyUnavailable("vault sign: no Ed25519 signature".into()))?;
        Ok(composite::join(&ed, &ml))
    }

    fn public_key(&self) -> Vec<u8> {
        self.public_key.clone()
    }

    fn backend(&self) -> &'static str {
        "vault"
    }

    fn root_id(&self) -> String {
        format!("vault:{}/{}", self.api.config.mount, self.api.config.key)
    }
}
