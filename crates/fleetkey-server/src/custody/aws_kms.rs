//! AWS KMS custody: the root is a KMS key that never leaves KMS (tested against
//! moto's KMS server), reached through the official SDK (`aws-sdk-kms`).
//!
//! Two KMS keys, made by the operator beforehand (docs/custody.md gives the
//! `aws kms create-key` commands and the IAM policy):
//!
//! * the wrapping key (`FLEETKEY_AWS_KMS_KEY_ID`: key id, key ARN, alias name or
//!   alias ARN), `SYMMETRIC_DEFAULT` for `ENCRYPT_DECRYPT`. Data keys are wrapped
//!   by `Encrypt` with the encryption context `{"fleetkey-wrap": <context>}`, so
//!   a wrapped key moved to another context does not unwrap; `Decrypt` names the
//!   key ARN resolved at start, so a ciphertext of any other KMS key is refused.
//! * the derivation key (`FLEETKEY_AWS_KMS_MAC_KEY_ID`), `HMAC_256` for
//!   `GENERATE_VERIFY_MAC`. Its `GenerateMac` of two fixed labels gives the
//!   Ed25519 and ML-DSA-65 seeds of the service's composite signing key: derived
//!   inside KMS, identical on every instance, never stored. KMS keys cannot do
//!   Ed25519 on the servers this project is tested against, nor ML-DSA in the
//!   composite's form, so both halves sign in process memory (the threat model in
//!   docs/custody.md says what that means).
//!
//! Region, endpoint (`AWS_ENDPOINT_URL_KMS`, `AWS_ENDPOINT_URL`) and credentials
//! come from the standard AWS chain, as for any AWS SDK program.

use super::{Custody, settings};
use crate::error::{Error, Result};
use aws_sdk_kms::Client;
use aws_sdk_kms::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_kms::operation::decrypt::DecryptError;
use aws_sdk_kms::primitives::Blob;
use aws_sdk_kms::types::{KeySpec, KeyState, KeyUsageType, MacAlgorithmSpec};
use fleetkey_crypto::composite::CompositeSigner;
use fleetkey_crypto::{ed25519::Ed25519Signer, mldsa::MlDsaSigner, secret::SecretBytes};
use std::time::Duration;
use zeroize::Zeroizing;

/// First byte of a KMS-wrapped key: the format (a KMS `CiphertextBlob`).
const WRAP_KMS_V1: u8 = 0x03;
/// Longest ciphertext blob accepted for a 32-byte key (KMS's are about 180 bytes;
/// KMS itself allows 6144).
const MAX_BLOB: usize = 1024;
/// The encryption context's one key.
const CONTEXT_KEY: &str = "fleetkey-wrap";
const ED25519_LABEL: &[u8] = b"fleetkey custody aws-kms ed25519 seed v1";
const MLDSA_LABEL: &[u8] = b"fleetkey custody aws-kms ml-dsa-65 seed v1";

/// Which KMS keys hold the root (`FLEETKEY_AWS_KMS_*`, docs/custody.md).
#[derive(Debug, Clone)]
pub struct AwsKmsConfig {
    /// The wrapping key: key id, key ARN, `alias/NAME` or an alias ARN.
    pub key_id: String,
    /// The HMAC_256 key the signing seeds are derived from.
    pub mac_key_id: String,
    /// Per-attempt timeout (`FLEETKEY_AWS_KMS_TIMEOUT_MS`, default 5000); the
    /// SDK's standard retry mode tries up to three times.
    pub timeout: Duration,
}

/// A key id as KMS accepts it: 1-2048 printable ASCII characters, no spaces.
fn key_ref(var: &str, v: String) -> Result<String> {
    if !v.is_empty() && v.len() <= 2048 && v.bytes().all(|b| b.is_ascii_graphic()) {
        Ok(v)
    } else {
        Err(Error::CustodyConfig(format!(
            "{var} must be a KMS key id, key ARN or alias (printable ASCII, no spaces)"
        )))
    }
}

impl AwsKmsConfig {
    /// From `FLEETKEY_AWS_KMS_KEY_ID`, `FLEETKEY_AWS_KMS_MAC_KEY_ID` and
    /// `FLEETKEY_AWS_KMS_TIMEOUT_MS`.
    pub fn from_env() -> Result<Self> {
        let need = |name: &str, what: &str| {
            settings::var(name)
                .ok_or_else(|| Error::CustodyConfig(format!("set {name} to {what}")))
                .and_then(|v| key_ref(name, v))
        };
        let key_id = need(
            "FLEETKEY_AWS_KMS_KEY_ID",
            "the wrapping key (SYMMETRIC_DEFAULT): key id, key ARN or alias/NAME",
        )?;
        let mac_key_id = need(
            "FLEETKEY_AWS_KMS_MAC_KEY_ID",
            "the derivation key (HMAC_256): key id, key ARN or alias/NAME",
        )?;
        let timeout = settings::bounded("FLEETKEY_AWS_KMS_TIMEOUT_MS", 5000, 100..=60_000)?;
        Ok(Self {
            key_id,
            mac_key_id,
            timeout: Duration::from_millis(timeout),
        })
    }
}

/// Custody whose root is an AWS KMS key.
pub struct AwsKmsCustody {
    client: Client,
    /// The wrapping key's ARN, resolved at start.
    key_arn: String,
    signer: CompositeSigner,
    public_key: Vec<u8>,
}

impl std::fmt::Debug for AwsKmsCustody {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AwsKmsCustody")
            .field("key_arn", &self.key_arn)
            .field(
                "public_key_prefix",
                &fleetkey_crypto::hex_prefix(&self.public_key),
            )
            .finish_non_exhaustive()
    }
}

/// A failed call: KMS's error code and message (never a request body).
fn unavailable<E, R>(what: &str, e: &SdkError<E, R>) -> Error
where
    E: std::error::Error + ProvideErrorMetadata + 'static,
    R: std::fmt::Debug,
{
    let detail = match e.code() {
        Some(code) => format!("{code}: {}", e.message().unwrap_or_default()),
        None => DisplayErrorContext(e).to_string(),
    };
    Error::CustodyUnavailable(format!("aws-kms {what}: {detail}"))
}

/// A setup failure is a configuration error: the service does not start.
fn setup(e: Error) -> Error {
    match e {
        Error::CustodyUnavailable(m) => Error::CustodyConfig(m),
        other => other,
    }
}

impl AwsKmsCustody {
    /// Loads the standard AWS configuration (region, endpoint, credentials) and
    /// opens custody with it.
    pub async fn open(config: AwsKmsConfig) -> Result<Self> {
        let sdk = aws_config::defaults(aws_config::BehaviorVersion::latest())
            .load()
            .await;
        Self::open_with(&sdk, config).await
    }

    /// Checks both keys (enabled, of the right spec and usage) and derives the
    /// signing seeds, with an SDK configuration the caller loaded.
    pub async fn open_with(sdk: &aws_config::SdkConfig, config: AwsKmsConfig) -> Result<Self> {
        let timeouts = aws_config::timeout::TimeoutConfig::builder()
            .connect_timeout(config.timeout)
            .operation_attempt_timeout(config.timeout)
            .build();
        let conf = aws_sdk_kms::config::Builder::from(sdk)
            .timeout_config(timeouts)
            .build();
        let client = Client::from_conf(conf);
        let key_arn = check_key(
            &client,
            &config.key_id,
            KeySpec::SymmetricDefault,
            KeyUsageType::EncryptDecrypt,
        )
        .await
        .map_err(setup)?;
        let mac_arn = check_key(
            &client,
            &config.mac_key_id,
            KeySpec::Hmac256,
            KeyUsageType::GenerateVerifyMac,
        )
        .await
        .map_err(setup)?;
        let ed = derive_seed(&client, &mac_arn, ED25519_LABEL)
            .await
            .map_err(setup)?;
        let ml = derive_seed(&client, &mac_arn, MLDSA_LABEL)
            .await
            .map_err(setup)?;
        let signer =
            CompositeSigner::new(Ed25519Signer::from_seed(ed)?, MlDsaSigner::from_seed(ml)?);
        let public_key = signer.public_key();
        Ok(Self {
            client,
            key_arn,
            signer,
            public_key,
        })
    }
}

/// The ARN of `key_id` when it is enabled and of `spec` for `usage`.
async fn check_key(
    client: &Client,
    key_id: &str,
    spec: KeySpec,
    usage: KeyUsageType,
) -> Result<String> {
    let out = client
        .describe_key()
        .key_id(key_id)
        .send()
        .await
        .map_err(|e| unavailable(&format!("describe key {key_id:?}"), &e))?;
    let meta = out
        .key_metadata()
        .ok_or_else(|| Error::CustodyConfig(format!("aws-kms: no metadata for key {key_id:?}")))?;
    if meta.key_spec() != Some(&spec) || meta.key_usage() != Some(&usage) {
        return Err(Error::CustodyConfig(format!(
            "aws-kms key {key_id:?} must be {} for {}, not {} for {}",
            spec.as_str(),
            usage.as_str(),
            meta.key_spec().map_or("?", KeySpec::as_str),
            meta.key_usage().map_or("?", KeyUsageType::as_str),
        )));
    }
    if !meta.enabled() || meta.key_state() != Some(&KeyState::Enabled) {
        return Err(Error::CustodyConfig(format!(
            "aws-kms key {key_id:?} is not enabled ({})",
            meta.key_state().map_or("?", KeyState::as_str)
        )));
    }
    meta.arn()
        .map(str::to_owned)
        .ok_or_else(|| Error::CustodyConfig(format!("aws-kms: key {key_id:?} has no ARN")))
}

/// `GenerateMac(HMAC_SHA_256)` of `label` under the derivation key.
async fn derive_seed(client: &Client, mac_arn: &str, label: &[u8]) -> Result<SecretBytes<32>> {
    let out = client
        .generate_mac()
        .key_id(mac_arn)
        .mac_algorithm(MacAlgorithmSpec::HmacSha256)
        .message(Blob::new(label))
        .send()
        .await
        .map_err(|e| unavailable("derive a signing seed (GenerateMac)", &e))?;
    let mac = Zeroizing::new(
        out.mac()
            .map(|b| b.as_ref().to_vec())
            .ok_or_else(|| Error::CustodyUnavailable("aws-kms GenerateMac: no Mac".into()))?,
    );
    Ok(SecretBytes::from_slice(&mac)?)
}

#[async_trait::async_trait]
impl Custody for AwsKmsCustody {
    async fn wrap(&self, key: &SecretBytes<32>, context: &str) -> Result<Vec<u8>> {
        // The SDK's request holds the key until it is sent, as any process
        // holding the key holds it in memory (docs/custody.md).
        let out = self
            .client
            .encrypt()
            .key_id(&self.key_arn)
            .plaintext(Blob::new(key.expose_secret().to_vec()))
            .encryption_context(CONTEXT_KEY, context)
            .send()
            .await
            .map_err(|e| unavailable("encrypt", &e))?;
        let blob = out
            .ciphertext_blob()
            .map(Blob::as_ref)
            .filter(|b| !b.is_empty() && b.len() <= MAX_BLOB)
            .ok_or_else(|| Error::CustodyUnavailable("aws-kms encrypt: no ciphertext".into()))?;
        let mut wrapped = Vec::with_capacity(1 + blob.len());
        wrapped.push(WRAP_KMS_V1);
        wrapped.extend_from_slice(blob);
        Ok(wrapped)
    }

    async fn unwrap(&self, wrapped: &[u8], context: &str) -> Result<SecretBytes<32>> {
        let open = || Error::Envelope(fleetkey_crypto::Error::Open);
        let Some((&WRAP_KMS_V1, blob)) = wrapped.split_first() else {
            return Err(open());
        };
        if blob.is_empty() || blob.len() > MAX_BLOB {
            return Err(open());
        }
        let result = self
            .client
            .decrypt()
            .key_id(&self.key_arn)
            .ciphertext_blob(Blob::new(blob))
            .encryption_context(CONTEXT_KEY, context)
            .send()
            .await;
        let out = match result {
            Ok(out) => out,
            // Tampered, another context, or another key's ciphertext: it does
            // not open here. Anything else (throttled, disabled, unreachable,
            // denied) is custody being unavailable.
            Err(e)
                if matches!(
                    e.as_service_error(),
                    Some(
                        DecryptError::InvalidCiphertextException(_)
                            | DecryptError::IncorrectKeyException(_)
                    )
                ) =>
            {
                return Err(open());
            }
            Err(e) => return Err(unavailable("decrypt", &e)),
        };
        let pt = Zeroizing::new(
            out.plaintext()
                .map(|b| b.as_ref().to_vec())
                .ok_or_else(open)?,
        );
        SecretBytes::from_slice(&pt).map_err(|_| open())
    }

    async fn sign(&self, msg: &[u8]) -> Result<Vec<u8>> {
        Ok(self.signer.sign(msg)?)
    }

    fn public_key(&self) -> Vec<u8> {
        self.public_key.clone()
    }

    fn backend(&self) -> &'static str {
        "aws-kms"
    }

    fn root_id(&self) -> String {
        format!("aws-kms:{}", self.key_arn)
    }
}
