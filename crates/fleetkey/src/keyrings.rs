//! Keyring operations, the same for a local data directory and for a server:
//! `fleetkey keys …`, `fleetkey seal --keyring` and `fleetkey unseal` are written
//! once against [`Keyrings`]; [`Local`] opens the data directory, [`Remote`] calls
//! `fleetkey serve` with the request and response types the server itself uses.

use crate::binding::Binding;
use crate::client::{Client, path};
use crate::error::{CliError, CliResult};
use crate::local::{actor, service_error};
use base64::{Engine as _, engine::general_purpose::STANDARD as B64};
use fleetkey_server::api::datakeys::{DataKeyRequest, DataKeyResponse};
use fleetkey_server::api::keyrings::{
    BatchCiphertextRequest, BatchResponse, CiphertextRequest, CreateKeyringRequest, KeyringList,
    PolicyRequest, RotateResponse, SealRequest, SealResponse, UnsealResponse,
};
use fleetkey_server::api::signing::{
    PublicKeyResponse, SignRequest, SignResponse, VerifyRequest, VerifyResponse,
};
use fleetkey_server::key_type::KeyType;
use fleetkey_server::keys::{KeyService, KeyringInfo, KeyringOptions, PolicyRun, Signable};
use fleetkey_server::store::Policy;
use reqwest::Method;
use zeroize::Zeroizing;

/// One rewrapped envelope, or why it could not be.
pub type Rewrapped = Result<Vec<u8>, String>;

/// What the CLI does with keyrings.
pub(crate) trait Keyrings {
    /// Creates keyring `name`.
    async fn create(
        &self,
        name: &str,
        algorithm: &str,
        policy: PolicyRequest,
        options: KeyringOptions,
    ) -> CliResult<KeyringInfo>;
    /// Every keyring.
    async fn list(&self) -> CliResult<Vec<KeyringInfo>>;
    /// One keyring with its versions.
    async fn show(&self, name: &str) -> CliResult<KeyringInfo>;
    /// Makes a new primary version; its number.
    async fn rotate(&self, name: &str) -> CliResult<u32>;
    /// Revokes a version.
    async fn revoke(&self, name: &str, version: u32) -> CliResult<()>;
    /// Changes the fields of the policy that `policy` gives.
    async fn set_policy(&self, name: &str, policy: PolicyRequest) -> CliResult<KeyringInfo>;
    /// Seals `data`; the binary envelope.
    async fn seal(&self, name: &str, data: &[u8], aad: &Binding) -> CliResult<Vec<u8>>;
    /// Opens an envelope.
    async fn unseal(&self, name: &str, env: &[u8], aad: &Binding) -> CliResult<Zeroizing<Vec<u8>>>;
    /// Rewraps envelopes under the primary version, each on its own.
    async fn rewrap(
        &self,
        name: &str,
        envelopes: &[Vec<u8>],
        aad: &Binding,
    ) -> CliResult<Vec<Rewrapped>>;
    /// Makes a data key sealed under the keyring (and returns it in plaintext too
    /// when `plaintext`).
    async fn datakey(
        &self,
        name: &str,
        aad: &Binding,
        plaintext: bool,
    ) -> CliResult<DataKeyResponse>;
    /// Signs `msg` (or MACs it, with `mac`).
    async fn sign(&self, name: &str, msg: Signable<'_>, mac: bool) -> CliResult<SignResponse>;
    /// Checks a signature (or MAC tag, with `mac`).
    async fn verify(
        &self,
        name: &str,
        msg: Signable<'_>,
        sig: &[u8],
        version: Option<u32>,
        mac: bool,
    ) -> CliResult<VerifyResponse>;
    /// A signing keyring's public key in `format`.
    async fn public_key(
        &self,
        name: &str,
        version: Option<u32>,
        format: &str,
    ) -> CliResult<PublicKeyResponse>;
    /// Applies every keyring's policy now.
    async fn tick(&self) -> CliResult<PolicyRun>;
}

/// Keyrings in a local data directory.
pub(crate) struct Local<'a>(pub &'a KeyService);

impl Keyrings for Local<'_> {
    async fn create(
        &self,
        name: &str,
        algorithm: &str,
        policy: PolicyRequest,
        options: KeyringOptions,
    ) -> CliResult<KeyringInfo> {
        let alg = KeyType::from_name(algorithm).map_err(|e| CliError::usage(e.to_string()))?;
        let p = policy.apply(Policy::default());
        let name = name.parse().map_err(service_error)?;
        self.0
            .create_with(&actor(), &name, alg, p, options)
            .await
            .map_err(service_error)
    }

    async fn list(&self) -> CliResult<Vec<KeyringInfo>> {
        self.0.list().await.map_err(service_error)
    }

    async fn show(&self, name: &str) -> CliResult<KeyringInfo> {
        self.0.show(name).await.map_err(service_error)
    }

    async fn rotate(&self, name: &str) -> CliResult<u32> {
        self.0.rotate(&actor(), name).await.map_err(service_error)
    }

    async fn revoke(&self, name: &str, version: u32) -> CliResult<()> {
        self.0
            .revoke(&actor(), name, version)
            .await
            .map_err(service_error)
    }

    async fn set_policy(&self, name: &str, policy: PolicyRequest) -> CliResult<KeyringInfo> {
        let current = self.show(name).await?.policy;
        self.0
            .set_policy(&actor(), name, policy.apply(current))
            .await
            .map_err(service_error)?;
        self.show(name).await
    }

    async fn seal(&self, name: &str, data: &[u8], aad: &Binding) -> CliResult<Vec<u8>> {
        let ring = self.0.keyring(name).await.map_err(service_error)?;
        ring.seal(data, &aad.bytes()?).await.map_err(service_error)
    }

    async fn unseal(&self, name: &str, env: &[u8], aad: &Binding) -> CliResult<Zeroizing<Vec<u8>>> {
        let ring = self.0.keyring(name).await.map_err(service_error)?;
        ring.unseal(env, &aad.bytes()?)
            .await
            .map(Zeroizing::new)
            .map_err(service_error)
    }

    async fn rewrap(
        &self,
        name: &str,
        envelopes: &[Vec<u8>],
        aad: &Binding,
    ) -> CliResult<Vec<Rewrapped>> {
        let results = self
            .0
            .rewrap(&actor(), name, envelopes, &aad.bytes()?)
            .await
            .map_err(service_error)?;
        Ok(results
            .into_iter()
            .map(|r| r.map_err(|e| e.to_string()))
            .collect())
    }

    async fn datakey(
        &self,
        name: &str,
        aad: &Binding,
        plaintext: bool,
    ) -> CliResult<DataKeyResponse> {
        let ring = self.0.keyring(name).await.map_err(service_error)?;
        let dk = ring.data_key(&aad.bytes()?).await.map_err(service_error)?;
        Ok(DataKeyResponse {
            key_version: dk.version,
            ciphertext: B64.encode(&dk.sealed),
            plaintext: plaintext.then(|| B64.encode(dk.plaintext.as_slice())),
        })
    }

    async fn sign(&self, name: &str, msg: Signable<'_>, mac: bool) -> CliResult<SignResponse> {
        let ring = self.0.keyring(name).await.map_err(service_error)?;
        let s = if mac {
            ring.mac(msg).await
        } else {
            ring.sign(msg).await
        }
        .map_err(service_error)?;
        Ok(SignResponse {
            signature: B64.encode(&s.signature),
            key_version: s.version,
        })
    }

    async fn verify(
        &self,
        name: &str,
        msg: Signable<'_>,
        sig: &[u8],
        version: Option<u32>,
        mac: bool,
    ) -> CliResult<VerifyResponse> {
        let ring = self.0.keyring(name).await.map_err(service_error)?;
        let v = if mac {
            ring.verify_mac(msg, sig, version).await
        } else {
            ring.verify(msg, sig, version).await
        }
        .map_err(service_error)?;
        Ok(VerifyResponse {
            valid: v.is_some(),
            key_version: v,
        })
    }

    async fn public_key(
        &self,
        name: &str,
        version: Option<u32>,
        format: &str,
    ) -> CliResult<PublicKeyResponse> {
        let ring = self.0.keyring(name).await.map_err(service_error)?;
        let (v, pk) = ring.public_key(version).await.map_err(service_error)?;
        let kind = ring.key_type();
        Ok(PublicKeyResponse {
            algorithm: kind.name().to_owned(),
            key_version: v,
            format: format.to_owned(),
            public_key: fleetkey_server::keys::public_key_form(kind, &pk, format)
                .map_err(service_error)?,
        })
    }

    async fn tick(&self) -> CliResult<PolicyRun> {
        self.0.run_policies(&actor()).await.map_err(service_error)
    }
}

/// Keyrings on `fleetkey serve` (`FLEETKEY_ADDR`).
pub(crate) struct Remote<'a>(pub &'a Client);

fn unbase64(text: &str) -> CliResult<Vec<u8>> {
    B64.decode(text)
        .map_err(|_| CliError::refused("server returned invalid base64"))
}

impl Keyrings for Remote<'_> {
    async fn create(
        &self,
        name: &str,
        algorithm: &str,
        policy: PolicyRequest,
        options: KeyringOptions,
    ) -> CliResult<KeyringInfo> {
        let body = CreateKeyringRequest {
            exportable: Some(options.exportable),
            convergent: Some(options.convergent),
            resident: Some(options.resident),
            name: name.to_owned(),
            algorithm: Some(algorithm.to_owned()),
            policy: Some(policy),
            description: Some(options.description),
            tags: Some(options.tags),
        };
        self.0.send(Method::POST, "/v1/keyrings", &body).await
    }

    async fn list(&self) -> CliResult<Vec<KeyringInfo>> {
        let l: KeyringList = self.0.call(Method::GET, "/v1/keyrings", None).await?;
        Ok(l.keyrings)
    }

    async fn show(&self, name: &str) -> CliResult<KeyringInfo> {
        let p = path(&["v1", "keyrings", name]);
        self.0.call(Method::GET, &p, None).await
    }

    async fn rotate(&self, name: &str) -> CliResult<u32> {
        let p = path(&["v1", "keyrings", name, "rotate"]);
        let r: RotateResponse = self.0.call(Method::POST, &p, None).await?;
        Ok(r.version)
    }

    async fn revoke(&self, name: &str, version: u32) -> CliResult<()> {
        let v = version.to_string();
        let p = path(&["v1", "keyrings", name, "versions", &v, "revoke"]);
        let _: serde_json::Value = self.0.call(Method::POST, &p, None).await?;
        Ok(())
    }

    async fn set_policy(&self, name: &str, policy: PolicyRequest) -> CliResult<KeyringInfo> {
        let p = path(&["v1", "keyrings", name, "policy"]);
        self.0.send(Method::PUT, &p, &policy).await
    }

    async fn seal(&self, name: &str, data: &[u8], aad: &Binding) -> CliResult<Vec<u8>> {
        let body = SealRequest {
            plaintext: B64.encode(data),
            aad: aad.aad_field(),
            context: aad.context_field(),
        };
        let p = path(&["v1", "keyrings", name, "seal"]);
        let r: SealResponse = self.0.send(Method::POST, &p, &body).await?;
        unbase64(&r.ciphertext)
    }

    async fn unseal(&self, name: &str, env: &[u8], aad: &Binding) -> CliResult<Zeroizing<Vec<u8>>> {
        let body = CiphertextRequest {
            ciphertext: B64.encode(env),
            aad: aad.aad_field(),
            context: aad.context_field(),
        };
        let p = path(&["v1", "keyrings", name, "unseal"]);
        let r: UnsealResponse = self.0.send(Method::POST, &p, &body).await?;
        let text = Zeroizing::new(r.plaintext);
        unbase64(&text).map(Zeroizing::new)
    }

    async fn rewrap(
        &self,
        name: &str,
        envelopes: &[Vec<u8>],
        aad: &Binding,
    ) -> CliResult<Vec<Rewrapped>> {
        let body = BatchCiphertextRequest {
            items: envelopes
                .iter()
                .map(|env| CiphertextRequest {
                    ciphertext: B64.encode(env),
                    aad: aad.aad_field(),
                    context: aad.context_field(),
                })
                .collect(),
        };
        let p = path(&["v1", "keyrings", name, "rewrap", "batch"]);
        let r: BatchResponse = self.0.send(Method::POST, &p, &body).await?;
        Ok(r.results
            .into_iter()
            .map(|item| match (item.ciphertext, item.error) {
                (Some(c), _) => unbase64(&c).map_err(|e| e.to_string()),
                (None, Some(e)) => Err(e.message),
                (None, None) => Err("failed".to_owned()),
            })
            .collect())
    }

    async fn datakey(
        &self,
        name: &str,
        aad: &Binding,
        plaintext: bool,
    ) -> CliResult<DataKeyResponse> {
        let body = DataKeyRequest {
            aad: aad.aad_field(),
            context: aad.context_field(),
            return_plaintext: plaintext,
        };
        let p = path(&["v1", "keyrings", name, "datakey"]);
        self.0.send(Method::POST, &p, &body).await
    }

    async fn sign(&self, name: &str, msg: Signable<'_>, mac: bool) -> CliResult<SignResponse> {
        let (message, digest, hash) = wire_input(msg);
        let body = SignRequest {
            message,
            digest,
            hash,
        };
        let op = if mac { "mac" } else { "sign" };
        self.0
            .send(Method::POST, &path(&["v1", "keyrings", name, op]), &body)
            .await
    }

    async fn verify(
        &self,
        name: &str,
        msg: Signable<'_>,
        sig: &[u8],
        version: Option<u32>,
        mac: bool,
    ) -> CliResult<VerifyResponse> {
        let (message, digest, hash) = wire_input(msg);
        let body = VerifyRequest {
            message,
            digest,
            hash,
            signature: B64.encode(sig),
            key_version: version,
        };
        let p = if mac {
            path(&["v1", "keyrings", name, "mac", "verify"])
        } else {
            path(&["v1", "keyrings", name, "verify"])
        };
        self.0.send(Method::POST, &p, &body).await
    }

    async fn public_key(
        &self,
        name: &str,
        version: Option<u32>,
        format: &str,
    ) -> CliResult<PublicKeyResponse> {
        // One of a few fixed words: nothing to escape in the query.
        if !fleetkey_server::keys::PUBLIC_KEY_FORMATS.contains(&format) {
            return Err(CliError::usage(format!(
                "unknown format {format:?}; use raw, pem or jwk"
            )));
        }
        let mut p = path(&["v1", "keyrings", name, "public-key"]);
        p.push_str(&format!("?format={format}"));
        if let Some(v) = version {
            p.push_str(&format!("&version={v}"));
        }
        self.0.call(Method::GET, &p, None).await
    }

    async fn tick(&self) -> CliResult<PolicyRun> {
        Err(CliError::usage(
            "`keys tick` runs on a local data directory; the server runs its own scheduler",
        )
        .hint("unset FLEETKEY_ADDR to run it locally"))
    }
}

/// The `message`, `digest` and `hash` fields of a sign or verify request.
fn wire_input(msg: Signable<'_>) -> (Option<String>, Option<String>, Option<String>) {
    match msg {
        Signable::Message(m) => (Some(B64.encode(m)), None, None),
        Signable::Digest(d) => (
            None,
            Some(B64.encode(d.as_bytes())),
            Some(d.alg().name().to_owned()),
        ),
    }
}
