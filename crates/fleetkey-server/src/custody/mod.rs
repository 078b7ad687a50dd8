//! Where root keys live. [`Custody`] wraps and unwraps data keys, signs with the
//! service key and derives subkeys; the root key itself never leaves it. The first
//! implementation is [`local::LocalCustody`] (a file sealed by a key file or a
//! passphrase); [`pkcs11::Pkcs11Custody`] keeps the root in an HSM,
//! [`vault::VaultCustody`] in a Vault / OpenBao transit key and
//! [`aws_kms::AwsKmsCustody`] in an AWS KMS key.

pub mod aws_kms;
pub mod escrow;
pub mod local;
pub mod metered;
pub mod pkcs11;
mod settings;
pub mod vault;

pub use settings::for_target;

use crate::error::{Error, Result};
use fleetkey_crypto::secret::SecretBytes;

/// Which backend holds the root: `FLEETKEY_CUSTODY` = `local` (the default),
/// `pkcs11`, `vault` or `aws-kms` (docs/custody.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// A root key file sealed by a key file or a passphrase ([`local`]).
    Local,
    /// A PKCS#11 token ([`pkcs11`]).
    Pkcs11,
    /// A Vault / OpenBao transit key ([`vault`]).
    Vault,
    /// An AWS KMS key ([`aws_kms`]).
    AwsKms,
}

impl Backend {
    /// From `FLEETKEY_CUSTODY` (unset or empty: `local`).
    pub fn from_env() -> Result<Self> {
        let name = settings::var("FLEETKEY_CUSTODY").unwrap_or_default();
        Self::parse(&name).map_err(|_| {
            Error::CustodyConfig(format!(
                "FLEETKEY_CUSTODY={name:?}: use local, pkcs11, vault or aws-kms"
            ))
        })
    }

    /// From a backend's name as `FLEETKEY_CUSTODY` spells it (empty: `local`).
    pub fn parse(name: &str) -> Result<Self> {
        match name {
            "" | "local" => Ok(Self::Local),
            "pkcs11" => Ok(Self::Pkcs11),
            "vault" => Ok(Self::Vault),
            "aws-kms" => Ok(Self::AwsKms),
            other => Err(Error::CustodyConfig(format!(
                "custody backend {other:?}: use local, pkcs11, vault or aws-kms"
            ))),
        }
    }
}

/// Root-key operations.
#[async_trait::async_trait]
pub trait Custody: Send + Sync {
    /// Seals a 32-byte data key under the root key, bound to `context` (for example
    /// `keyring:payments/v3`): a wrapped key moved to another context will not unwrap.
    async fn wrap(&self, key: &SecretBytes<32>, context: &str) -> Result<Vec<u8>>;
    /// Reverses [`Custody::wrap`].
    async fn unwrap(&self, wrapped: &[u8], context: &str) -> Result<SecretBytes<32>>;
    /// Signs with the service's composite Ed25519 + ML-DSA-65 key.
    async fn sign(&self, msg: &[u8]) -> Result<Vec<u8>>;
    /// The service's composite public key (1984 bytes).
    fn public_key(&self) -> Vec<u8>;
    /// The backend's name as `FLEETKEY_CUSTODY` spells it (`local`, `pkcs11`, `vault`, `aws-kms`).
    fn backend(&self) -> &'static str;
    /// Names the root that wraps data keys, without revealing anything of it
    /// (`local:<16 hex digits>`, `pkcs11:<token>/<label>`, `vault:<mount>/<key>`,
    /// `aws-kms:<key ARN>`): the store records it with the public key, so an
    /// instance whose wrapping root differs is refused even when its signing
    /// key is the same.
    fn root_id(&self) -> String;
    /// Keys that live in custody and never leave it, when the backend can hold
    /// them (PKCS#11); `None` otherwise.
    fn resident(&self) -> Option<&dyn Resident> {
        None
    }
    /// The call histogram to export, for a [`metered::Metered`] custody.
    fn collector(&self) -> Option<prometheus::HistogramVec> {
        None
    }
}

/// Keys generated inside custody that never leave it: AES-256-GCM keys in an
/// HSM, for keyrings whose every seal and open is a call into the token. The
/// caller chooses each nonce (fleetkey's `instance id ‖ counter` scheme), so
/// nonce uniqueness stays the key service's, as for every other keyring.
#[async_trait::async_trait]
pub trait Resident: Send + Sync {
    /// Generates a new non-extractable AES-256 key for `context` (for example
    /// `keyring:payments/v3`) and returns its reference: stored where a wrapped
    /// key would be, it names the key in later calls and holds no key material.
    async fn generate(&self, context: &str) -> Result<Vec<u8>>;
    /// AES-256-GCM of `plaintext` under the referenced key with `nonce` and
    /// `aad`: ciphertext ‖ 16-byte tag.
    async fn seal(
        &self,
        reference: &[u8],
        nonce: [u8; 12],
        aad: &[u8],
        plaintext: &[u8],
    ) -> Result<Vec<u8>>;
    /// Reverses [`Resident::seal`]; a tag that does not verify is
    /// [`fleetkey_crypto::Error::Open`].
    async fn open(
        &self,
        reference: &[u8],
        nonce: [u8; 12],
        aad: &[u8],
        ciphertext: &[u8],
    ) -> Result<Vec<u8>>;
    /// Destroys the referenced key in custody (after which nothing it sealed
    /// opens again); destroying a key that is gone already is not an error.
    async fn destroy(&self, reference: &[u8]) -> Result<()>;
}
