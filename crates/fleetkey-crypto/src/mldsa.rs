//! ML-DSA-65 (FIPS 204), pure mode with an empty context string.
//!
//! Sizes are the final FIPS 204 ones: public key 1952, expanded secret key 4032,
//! signature 3309 bytes (3293 was round-3 Dilithium3 and is not used).

use crate::{Error, Result, secret::SecretBytes};
use aws_lc_rs::encoding::AsRawBytes;
use aws_lc_rs::signature::{
    KeyPair, ML_DSA_65, ML_DSA_65_SIGNING, PqdsaKeyPair, UnparsedPublicKey,
};
use core::fmt;

/// Public key length.
pub const PUBLIC_KEY_LEN: usize = 1952;
/// Expanded secret key length.
pub const SECRET_KEY_LEN: usize = 4032;
/// Signature length.
pub const SIGNATURE_LEN: usize = 3309;
/// Seed length (the compact private key form, FIPS 204 ξ).
pub const SEED_LEN: usize = 32;

/// An ML-DSA-65 signing key.
pub struct MlDsaSigner {
    seed: Option<SecretBytes<SEED_LEN>>,
    pair: PqdsaKeyPair,
}

impl MlDsaSigner {
    /// A fresh key from a random seed.
    pub fn generate() -> Result<Self> {
        Self::from_seed(SecretBytes::random()?)
    }

    /// The key for a 32-byte seed ξ (FIPS 204 ML-DSA.KeyGen_internal).
    pub fn from_seed(seed: SecretBytes<SEED_LEN>) -> Result<Self> {
        let pair = PqdsaKeyPair::from_seed(&ML_DSA_65_SIGNING, seed.expose_secret())
            .map_err(|_| Error::InvalidKey("ml-dsa-65 seed"))?;
        Ok(Self {
            seed: Some(seed),
            pair,
        })
    }

    /// Loads a 4032-byte expanded secret key (no seed is then available).
    pub fn from_expanded(secret_key: &[u8]) -> Result<Self> {
        if secret_key.len() != SECRET_KEY_LEN {
            return Err(Error::InvalidKey("ml-dsa-65 secret key length"));
        }
        let pair = PqdsaKeyPair::from_raw_private_key(&ML_DSA_65_SIGNING, secret_key)
            .map_err(|_| Error::InvalidKey("ml-dsa-65 secret key"))?;
        Ok(Self { seed: None, pair })
    }

    /// The seed, if this key was made from one.
    pub fn expose_seed(&self) -> Option<&[u8; SEED_LEN]> {
        self.seed.as_ref().map(|s| s.expose_secret())
    }

    /// The expanded 4032-byte secret key.
    pub fn expose_expanded(&self) -> Result<crate::secret::SecretVec> {
        let raw = self.pair.private_key().as_raw_bytes()?;
        Ok(crate::secret::SecretVec::new(raw.as_ref().to_vec()))
    }

    /// The 1952-byte public key.
    pub fn public_key(&self) -> Vec<u8> {
        self.pair.public_key().as_ref().to_vec()
    }

    /// Signs `msg` (hedged randomized signing, empty context).
    pub fn sign(&self, msg: &[u8]) -> Result<Vec<u8>> {
        let mut sig = vec![0u8; SIGNATURE_LEN];
        let n = self.pair.sign(msg, &mut sig)?;
        sig.truncate(n);
        Ok(sig)
    }
}

impl fmt::Debug for MlDsaSigner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MlDsaSigner")
            .field("public_key_prefix", &crate::hex_prefix(&self.public_key()))
            .finish_non_exhaustive()
    }
}

/// Verifies an ML-DSA-65 signature (pure, empty context).
pub fn verify(public_key: &[u8], msg: &[u8], signature: &[u8]) -> Result<()> {
    if public_key.len() != PUBLIC_KEY_LEN || signature.len() != SIGNATURE_LEN {
        return Err(Error::BadSignature);
    }
    UnparsedPublicKey::new(&ML_DSA_65, public_key)
        .verify(msg, signature)
        .map_err(|_| Error::BadSignature)
}
