//! Encrypt, Decrypt, ReEncrypt, GenerateDataKey(WithoutPlaintext) and
//! GenerateRandom. A CiphertextBlob is the binary fk1 envelope (its header
//! names the keyring, as AWS's blob names its key); an EncryptionContext is
//! fleetkey's canonical encryption context, bound as the associated data.

use super::keys::{arn, resolve};
use super::{Call, KmsError, KmsResult};
use crate::api::error::ApiError;
use crate::api::keyrings::count;
use base64::{Engine as _, engine::general_purpose::STANDARD as B64};
use serde::Deserialize;
use serde_json::{Value, json};
use std::collections::BTreeMap;

/// AWS's bounds: plaintext to Encrypt, a CiphertextBlob, random bytes and data
/// keys.
pub const MAX_PLAINTEXT: usize = 4096;
/// The longest CiphertextBlob AWS takes.
pub const MAX_CIPHERTEXT: usize = 6144;

/// A base64 blob field, decoded, 1 to `max` bytes (AWS's constraint message).
pub(super) fn blob(field: &str, s: &str, max: usize) -> KmsResult<Vec<u8>> {
    let b = B64.decode(s.as_bytes()).map_err(|_| {
        KmsError::new(
            "SerializationException",
            format!("{field} is not valid base64"),
        )
    })?;
    if b.is_empty() || b.len() > max {
        return Err(KmsError::validation(format!(
            "1 validation error detected: Value at '{field}' failed to satisfy constraint: Member must have length between 1 and {max}"
        )));
    }
    Ok(b)
}

/// The associated data of an EncryptionContext (docs/formats.md, "Encryption
/// context"); none is empty.
pub(super) fn context(c: &Option<BTreeMap<String, String>>) -> KmsResult<Vec<u8>> {
    match c {
        None => Ok(Vec::new()),
        Some(map) => fleetkey_crypto::envelope::context::encode(map)
            .map_err(|e| KmsError::validation(format!("EncryptionContext: {e}"))),
    }
}

/// Refuses DryRun (`DryRunOperationException` when everything else held) and
/// algorithms other than SYMMETRIC_DEFAULT.
fn checks(dry_run: Option<bool>, algorithm: Option<&str>) -> KmsResult<()> {
    if let Some(a) = algorithm
        && a != "SYMMETRIC_DEFAULT"
    {
        return Err(KmsError::new(
            "InvalidKeyUsageException",
            format!(
                "EncryptionAlgorithm {}: fleetkey symmetric keys take SYMMETRIC_DEFAULT",
                a.chars().take(64).collect::<String>()
            ),
        ));
    }
    if dry_run == Some(true) {
        return Err(KmsError::new(
            "DryRunOperationException",
            "The request would have succeeded, but the DryRun option is set.",
        ));
    }
    Ok(())
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
struct EncryptInput {
    key_id: String,
    plaintext: String,
    #[serde(default)]
    encryption_context: Option<BTreeMap<String, String>>,
    #[serde(default)]
    encryption_algorithm: Option<String>,
    #[serde(default)]
    grant_tokens: Option<Vec<String>>,
    #[serde(default)]
    dry_run: Option<bool>,
}

pub(super) async fn encrypt(c: &Call<'_>) -> KmsResult<Value> {
    let input: EncryptInput = c.input()?;
    let _ = input.grant_tokens;
    let name = resolve(c, &input.key_id, true).await?;
    c.require(&format!("seal:{name}"))?;
    let pt = zeroize::Zeroizing::new(blob("plaintext", &input.plaintext, MAX_PLAINTEXT)?);
    let aad = context(&input.encryption_context)?;
    let ring = c.st.keys.keyring(&name).await?;
    checks(input.dry_run, input.encryption_algorithm.as_deref())?;
    let r = ring.seal(&pt, &aad).await.map_err(ApiError::from);
    count(c.st, &c.st.metrics.seals, &name, r.as_ref().map(|_| ()));
    Ok(json!({
        "CiphertextBlob": B64.encode(r?),
        "KeyId": arn(c, &name),
        "EncryptionAlgorithm": "SYMMETRIC_DEFAULT",
    }))
}

/// The keyring an envelope names in its header.
fn envelope_key(env: &[u8]) -> KmsResult<String> {
    let (h, _) = fleetkey_crypto::envelope::Header::parse(env)
        .map_err(|e| KmsError::new("InvalidCiphertextException", format!("CiphertextBlob: {e}")))?;
    Ok(h.key_id.as_str().to_owned())
}

/// The keyring of `env`, checked against a KeyId the caller gave
/// (`IncorrectKeyException` when it is another key).
async fn source(c: &Call<'_>, env: &[u8], given: Option<&str>) -> KmsResult<String> {
    let name = envelope_key(env)?;
    if let Some(k) = given
        && resolve(c, k, true).await? != name
    {
        return Err(KmsError::new(
            "IncorrectKeyException",
            "The key ID in the request does not identify the key that encrypted the ciphertext.",
        ));
    }
    Ok(name)
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
struct DecryptInput {
    ciphertext_blob: String,
    #[serde(default)]
    encryption_context: Option<BTreeMap<String, String>>,
    #[serde(default)]
    key_id: Option<String>,
    #[serde(default)]
    encryption_algorithm: Option<String>,
    #[serde(default)]
    grant_tokens: Option<Vec<String>>,
    #[serde(default)]
    dry_run: Option<bool>,
}

/// Maps "does not open" to AWS's InvalidCiphertextException (which is what
/// another context or a tampered blob gives in AWS).
fn opened<T>(r: crate::Result<T>) -> Result<T, ApiError> {
    r.map_err(ApiError::from)
}

pub(super) async fn decrypt(c: &Call<'_>) -> KmsResult<Value> {
    let input: DecryptInput = c.input()?;
    let _ = input.grant_tokens;
    let env = blob("ciphertextBlob", &input.ciphertext_blob, MAX_CIPHERTEXT)?;
    let name = source(c, &env, input.key_id.as_deref()).await?;
    c.require(&format!("unseal:{name}"))?;
    let aad = context(&input.encryption_context)?;
    let ring = c.st.keys.keyring(&name).await?;
    checks(input.dry_run, input.encryption_algorithm.as_deref())?;
    let r = opened(ring.unseal(&env, &aad).await);
    count(c.st, &c.st.metrics.unseals, &name, r.as_ref().map(|_| ()));
    let pt = zeroize::Zeroizing::new(r?);
    Ok(json!({
        "KeyId": arn(c, &name),
        "Plaintext": B64.encode(&*pt),
        "EncryptionAlgorithm": "SYMMETRIC_DEFAULT",
    }))
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
struct ReEncryptInput {
    ciphertext_blob: String,
    destination_key_id: String,
    #[serde(default)]
    source_encryption_context: Option<BTreeMap<String, String>>,
    #[serde(default)]
    source_key_id: Option<String>,
    #[serde(default)]
    destination_encryption_context: Option<BTreeMap<String, String>>,
    #[serde(default)]
    source_encryption_algorithm: Option<String>,
    #[serde(default)]
    destination_encryption_algorithm: Option<String>,
    #[serde(default)]
    grant_tokens: Option<Vec<String>>,
    #[serde(default)]
    dry_run: Option<bool>,
}

/// ReEncrypt: the source opened and sealed again under the destination key,
/// inside the service (scopes `rewrap:<source>` and `seal:<destination>`).
pub(super) async fn re_encrypt(c: &Call<'_>) -> KmsResult<Value> {
    let input: ReEncryptInput = c.input()?;
    let _ = input.grant_tokens;
    let env = blob("ciphertextBlob", &input.ciphertext_blob, MAX_CIPHERTEXT)?;
    let src = source(c, &env, input.source_key_id.as_deref()).await?;
    let dst = resolve(c, &input.destination_key_id, true).await?;
    c.require(&format!("rewrap:{src}"))?;
    c.require(&format!("seal:{dst}"))?;
    let src_aad = context(&input.source_encryption_context)?;
    let dst_aad = context(&input.destination_encryption_context)?;
    checks(None, input.source_encryption_algorithm.as_deref())?;
    checks(
        input.dry_run,
        input.destination_encryption_algorithm.as_deref(),
    )?;
    let out = if src == dst && src_aad == dst_aad {
        c.st.keys
            .rewrap(&c.actor(), &src, &[env], &src_aad)
            .await
            .map_err(|e| crate::api::change_err(c.st, e))?
            .pop()
            .ok_or_else(|| KmsError::new("KMSInternalException", "empty rewrap"))?
            .map_err(ApiError::from)?
    } else {
        let from = c.st.keys.keyring(&src).await?;
        let to = c.st.keys.keyring(&dst).await?;
        let pt = zeroize::Zeroizing::new(opened(from.unseal(&env, &src_aad).await)?);
        to.seal(&pt, &dst_aad).await?
    };
    Ok(json!({
        "CiphertextBlob": B64.encode(out),
        "SourceKeyId": arn(c, &src),
        "KeyId": arn(c, &dst),
        "SourceEncryptionAlgorithm": "SYMMETRIC_DEFAULT",
        "DestinationEncryptionAlgorithm": "SYMMETRIC_DEFAULT",
    }))
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
struct DataKeyInput {
    key_id: String,
    #[serde(default)]
    key_spec: Option<String>,
    #[serde(default)]
    number_of_bytes: Option<i64>,
    #[serde(default)]
    encryption_context: Option<BTreeMap<String, String>>,
    #[serde(default)]
    grant_tokens: Option<Vec<String>>,
    #[serde(default)]
    dry_run: Option<bool>,
}

/// GenerateDataKey (`with_plaintext`) and GenerateDataKeyWithoutPlaintext:
/// KeySpec AES_256 or AES_128, or NumberOfBytes 1 to 1024.
pub(super) async fn data_key(c: &Call<'_>, with_plaintext: bool) -> KmsResult<Value> {
    let input: DataKeyInput = c.input()?;
    let _ = input.grant_tokens;
    let name = resolve(c, &input.key_id, true).await?;
    c.require(&format!("datakey:{name}"))?;
    let len = match (input.key_spec.as_deref(), input.number_of_bytes) {
        (Some("AES_256"), None) => 32,
        (Some("AES_128"), None) => 16,
        (None, Some(n)) if (1..=1024).contains(&n) => usize::try_from(n).unwrap_or(32),
        (None, Some(_)) => {
            return Err(KmsError::validation("NumberOfBytes must be 1 to 1024"));
        }
        (Some(_), Some(_)) | (None, None) => {
            return Err(KmsError::validation(
                "give either KeySpec or NumberOfBytes (one, not both)",
            ));
        }
        (Some(other), None) => {
            return Err(KmsError::validation(format!(
                "KeySpec {}: use AES_256 or AES_128",
                other.chars().take(32).collect::<String>()
            )));
        }
    };
    let aad = context(&input.encryption_context)?;
    let ring = c.st.keys.keyring(&name).await?;
    checks(input.dry_run, None)?;
    let r = ring.data_key_of(len, &aad).await.map_err(ApiError::from);
    count(c.st, &c.st.metrics.datakeys, &name, r.as_ref().map(|_| ()));
    let dk = r?;
    let mut out = json!({
        "CiphertextBlob": B64.encode(&dk.sealed),
        "KeyId": arn(c, &name),
    });
    if with_plaintext {
        out["Plaintext"] = json!(B64.encode(dk.plaintext.as_slice()));
    }
    Ok(out)
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
struct DataKeyPairInput {
    key_id: String,
    key_pair_spec: String,
    #[serde(default)]
    encryption_context: Option<BTreeMap<String, String>>,
    #[serde(default)]
    grant_tokens: Option<Vec<String>>,
    #[serde(default)]
    dry_run: Option<bool>,
}

/// GenerateDataKeyPair (`with_plaintext`) and
/// GenerateDataKeyPairWithoutPlaintext, for the key pair type a fleetkey
/// keyring fits: ECC_NIST_EDWARDS25519, an Ed25519 pair drawn by aws-lc-rs,
/// its private key (PKCS#8 DER) sealed under the symmetric key as a data key is.
pub(super) async fn data_key_pair(c: &Call<'_>, with_plaintext: bool) -> KmsResult<Value> {
    use aws_lc_rs::signature::{Ed25519KeyPair, KeyPair as _};
    let input: DataKeyPairInput = c.input()?;
    let _ = input.grant_tokens;
    let name = resolve(c, &input.key_id, true).await?;
    c.require(&format!("datakey:{name}"))?;
    if input.key_pair_spec != "ECC_NIST_EDWARDS25519" {
        return Err(KmsError::new(
            "UnsupportedOperationException",
            format!(
                "KeyPairSpec {}: fleetkey makes ECC_NIST_EDWARDS25519 data key pairs only",
                input.key_pair_spec.chars().take(32).collect::<String>()
            ),
        ));
    }
    let aad = context(&input.encryption_context)?;
    let ring = c.st.keys.keyring(&name).await?;
    checks(input.dry_run, None)?;
    let rng = aws_lc_rs::rand::SystemRandom::new();
    let pkcs8 = Ed25519KeyPair::generate_pkcs8v1(&rng)
        .map_err(|_| crate::Error::Internal("Ed25519 key generation failed".into()))?;
    let private = zeroize::Zeroizing::new(pkcs8.as_ref().to_vec());
    let pair = Ed25519KeyPair::from_pkcs8(&private)
        .map_err(|_| crate::Error::Internal("Ed25519 key generation failed".into()))?;
    let public = crate::keys::public_key_der(
        crate::key_type::KeyType::Ed25519,
        pair.public_key().as_ref(),
    )?;
    let r = ring.seal(&private, &aad).await.map_err(ApiError::from);
    count(c.st, &c.st.metrics.datakeys, &name, r.as_ref().map(|_| ()));
    let mut out = json!({
        "PrivateKeyCiphertextBlob": B64.encode(r?),
        "PublicKey": B64.encode(public),
        "KeyId": arn(c, &name),
        "KeyPairSpec": "ECC_NIST_EDWARDS25519",
    });
    if with_plaintext {
        out["PrivateKeyPlaintext"] = json!(B64.encode(&*private));
    }
    Ok(out)
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
struct RandomInput {
    #[serde(default)]
    number_of_bytes: Option<i64>,
}

pub(super) fn random(c: &Call<'_>) -> KmsResult<Value> {
    c.require("random")?;
    let input: RandomInput = c.input()?;
    let n = input
        .number_of_bytes
        .ok_or_else(|| KmsError::validation("NumberOfBytes is required"))?;
    if !(1..=1024).contains(&n) {
        return Err(KmsError::validation("NumberOfBytes must be 1 to 1024"));
    }
    let mut out = zeroize::Zeroizing::new(vec![0u8; usize::try_from(n).unwrap_or(32)]);
    fleetkey_crypto::rand::fill(&mut out).map_err(crate::Error::from)?;
    c.st.metrics.random_bytes.inc_by(out.len() as u64);
    Ok(json!({ "Plaintext": B64.encode(&*out) }))
}
