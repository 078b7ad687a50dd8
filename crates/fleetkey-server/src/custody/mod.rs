//! Where root keys live. [`Custody`] wraps and unwraps data keys, signs with the
//! service key and derives subkeys; the root key itself never leaves it. The first
//! implementation is [`local::LocalCustody`]; PKCS#11 and cloud KMS come later
//! behind the same trait.

pub mod local;

use crate::error::Result;
use fleetkey_crypto::secret::SecretBytes;

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
}
