//! Sign, Verify, GetPublicKey, GenerateMac and VerifyMac. Ed25519 keys sign
//! with ED25519_SHA_512 (RFC 8032 over the message) and ED25519_PH_SHA_512
//! (Ed25519ph over its SHA-512); ML-DSA-65 keys with ML_DSA_SHAKE_256 (FIPS 204
//! over the message); MAC keys with their own HMAC.

use super::crypto::blob;
use super::keys::{arn, require_read, resolve, spec};
use super::{Call, KmsError, KmsResult};
use crate::api::error::ApiError;
use crate::api::keyrings::count;
use crate::key_type::KeyType;
use crate::keys::{SignInput, Signed};
use base64::{Engine as _, engine::general_purpose::STANDARD as B64};
use fleetkey_crypto::mac::MacAlgorithm;
use fleetkey_crypto::prehash::{Digest, HashAlg};
use serde::Deserialize;
use serde_json::{Value, json};

/// The longest Message AWS takes.
const MAX_MESSAGE: usize = 4096;

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
struct SignRequest {
    key_id: String,
    message: String,
    #[serde(default)]
    message_type: Option<String>,
    signing_algorithm: String,
    #[serde(default)]
    signature: Option<String>,
    #[serde(default)]
    grant_tokens: Option<Vec<String>>,
    #[serde(default)]
    dry_run: Option<bool>,
}

/// What the key signs for the request's algorithm and message type.
fn input(
    kind: KeyType,
    algorithm: &str,
    message_type: Option<&str>,
    msg: Vec<u8>,
) -> KmsResult<SignInput> {
    let digest = match message_type.unwrap_or("RAW") {
        "RAW" => false,
        "DIGEST" => true,
        other => {
            return Err(KmsError::validation(format!(
                "MessageType {}: use RAW or DIGEST",
                other.chars().take(32).collect::<String>()
            )));
        }
    };
    let bad = || {
        KmsError::new(
            "InvalidKeyUsageException",
            format!(
                "SigningAlgorithm {} with MessageType {} is not available for this key (it takes {})",
                algorithm.chars().take(64).collect::<String>(),
                if digest { "DIGEST" } else { "RAW" },
                spec(kind).signing.join(", ")
            ),
        )
    };
    match (kind, algorithm, digest) {
        (KeyType::Ed25519, "ED25519_SHA_512", false)
        | (KeyType::MlDsa65, "ML_DSA_SHAKE_256", false)
        | (KeyType::Ed25519MlDsa65, "FLEETKEY_ED25519_ML_DSA_65", false) => {
            Ok(SignInput::Message(msg))
        }
        (KeyType::Ed25519, "ED25519_PH_SHA_512", false) => {
            Ok(SignInput::Digest(HashAlg::Sha512.hash(&msg)))
        }
        (KeyType::Ed25519, "ED25519_PH_SHA_512", true) => Digest::new(HashAlg::Sha512, &msg)
            .map(SignInput::Digest)
            .map_err(|_| KmsError::validation("a DIGEST for ED25519_PH_SHA_512 is 64 bytes")),
        _ => Err(bad()),
    }
}

async fn sign_or_verify(c: &Call<'_>, verify: bool) -> KmsResult<Value> {
    let req: SignRequest = c.input()?;
    let _ = req.grant_tokens;
    let name = resolve(c, &req.key_id, true).await?;
    c.require(&format!(
        "{}:{name}",
        if verify { "verify" } else { "sign" }
    ))?;
    let msg = blob("message", &req.message, MAX_MESSAGE)?;
    let ring = c.st.keys.keyring(&name).await?;
    let input = input(
        ring.key_type(),
        &req.signing_algorithm,
        req.message_type.as_deref(),
        msg,
    )?;
    if req.dry_run == Some(true) {
        return Err(KmsError::new(
            "DryRunOperationException",
            "The request would have succeeded, but the DryRun option is set.",
        ));
    }
    if verify {
        let sig = blob(
            "signature",
            req.signature
                .as_deref()
                .ok_or_else(|| KmsError::validation("Signature is required"))?,
            8192,
        )?;
        let r = ring
            .verify(input.signable(), &sig, None)
            .await
            .map_err(ApiError::from);
        count(c.st, &c.st.metrics.verifies, &name, r.as_ref().map(|_| ()));
        if r?.is_none() {
            return Err(KmsError::new(
                "KMSInvalidSignatureException",
                "the signature is not valid for this message and key",
            ));
        }
        return Ok(json!({
            "KeyId": arn(c, &name),
            "SignatureValid": true,
            "SigningAlgorithm": req.signing_algorithm,
        }));
    }
    if req.signature.is_some() {
        return Err(KmsError::validation("Sign takes no Signature"));
    }
    let r = ring.sign(input.signable()).await.map_err(ApiError::from);
    count(c.st, &c.st.metrics.signs, &name, r.as_ref().map(|_| ()));
    let Signed { signature, .. } = r?;
    Ok(json!({
        "KeyId": arn(c, &name),
        "Signature": B64.encode(signature),
        "SigningAlgorithm": req.signing_algorithm,
    }))
}

pub(super) async fn sign(c: &Call<'_>) -> KmsResult<Value> {
    sign_or_verify(c, false).await
}

pub(super) async fn verify(c: &Call<'_>) -> KmsResult<Value> {
    sign_or_verify(c, true).await
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
struct KeyOnly {
    key_id: String,
    #[serde(default)]
    grant_tokens: Option<Vec<String>>,
}

/// GetPublicKey: the DER SubjectPublicKeyInfo of the latest version.
pub(super) async fn public_key(c: &Call<'_>) -> KmsResult<Value> {
    let req: KeyOnly = c.input()?;
    let _ = req.grant_tokens;
    let name = resolve(c, &req.key_id, true).await?;
    require_read(c, &name)?;
    let ring = c.st.keys.keyring(&name).await?;
    let kind = ring.key_type();
    let (_, pk) = ring.public_key(None).await?;
    let der = crate::keys::public_key_der(kind, &pk).map_err(|_| {
        KmsError::new(
            "UnsupportedOperationException",
            format!("GetPublicKey: {} keys have no SubjectPublicKeyInfo form here; use fleetkey's public-key route", kind.name()),
        )
    })?;
    let s = spec(kind);
    Ok(json!({
        "KeyId": arn(c, &name),
        "PublicKey": B64.encode(der),
        "CustomerMasterKeySpec": s.key_spec,
        "KeySpec": s.key_spec,
        "KeyUsage": s.usage,
        "SigningAlgorithms": s.signing,
    }))
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
struct MacRequest {
    key_id: String,
    message: String,
    mac_algorithm: String,
    #[serde(default)]
    mac: Option<String>,
    #[serde(default)]
    grant_tokens: Option<Vec<String>>,
    #[serde(default)]
    dry_run: Option<bool>,
}

async fn mac_or_verify(c: &Call<'_>, verify: bool) -> KmsResult<Value> {
    let req: MacRequest = c.input()?;
    let _ = req.grant_tokens;
    let name = resolve(c, &req.key_id, true).await?;
    c.require(&format!("mac:{name}"))?;
    let msg = blob("message", &req.message, MAX_MESSAGE)?;
    let ring = c.st.keys.keyring(&name).await?;
    let want = match req.mac_algorithm.as_str() {
        "HMAC_SHA_256" => KeyType::Mac(MacAlgorithm::HmacSha256),
        "HMAC_SHA_512" => KeyType::Mac(MacAlgorithm::HmacSha512),
        _ => KeyType::XWing,
    };
    if ring.key_type() != want {
        return Err(KmsError::new(
            "InvalidKeyUsageException",
            format!(
                "MacAlgorithm {} is not available for this key (it takes {})",
                req.mac_algorithm.chars().take(32).collect::<String>(),
                spec(ring.key_type()).mac.join(", ")
            ),
        ));
    }
    if req.dry_run == Some(true) {
        return Err(KmsError::new(
            "DryRunOperationException",
            "The request would have succeeded, but the DryRun option is set.",
        ));
    }
    let input = SignInput::Message(msg);
    if verify {
        let tag = blob(
            "mac",
            req.mac
                .as_deref()
                .ok_or_else(|| KmsError::validation("Mac is required"))?,
            64,
        )?;
        let r = ring
            .verify_mac(input.signable(), &tag, None)
            .await
            .map_err(ApiError::from);
        count(
            c.st,
            &c.st.metrics.mac_verifies,
            &name,
            r.as_ref().map(|_| ()),
        );
        if r?.is_none() {
            return Err(KmsError::new(
                "KMSInvalidMacException",
                "the MAC is not valid for this message and key",
            ));
        }
        return Ok(json!({
            "KeyId": arn(c, &name),
            "MacValid": true,
            "MacAlgorithm": req.mac_algorithm,
        }));
    }
    let r = ring.mac(input.signable()).await.map_err(ApiError::from);
    count(c.st, &c.st.metrics.macs, &name, r.as_ref().map(|_| ()));
    let Signed { signature, .. } = r?;
    Ok(json!({
        "KeyId": arn(c, &name),
        "Mac": B64.encode(signature),
        "MacAlgorithm": req.mac_algorithm,
    }))
}

pub(super) async fn mac(c: &Call<'_>) -> KmsResult<Value> {
    mac_or_verify(c, false).await
}

pub(super) async fn verify_mac(c: &Call<'_>) -> KmsResult<Value> {
    mac_or_verify(c, true).await
}
