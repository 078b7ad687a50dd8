//! Ed25519 signatures (RFC 8032, pure Ed25519).

use crate::{Error, Result, secret::SecretBytes};
use aws_lc_rs::signature::{ED25519, Ed25519KeyPair, KeyPair, UnparsedPublicKey};
use core::fmt;

/// Public key length.
pub const PUBLIC_KEY_LEN: usize = 32;
/// Seed (private key) length.
pub const SEED_LEN: usize = 32;
/// Signature length.
pub const SIGNATURE_LEN: usize = 64;

/// An Ed25519 signing key, stored as its 32-byte RFC 8032 seed.
pub struct Ed25519Signer {
    seed: SecretBytes<SEED_LEN>,
    pair: Ed25519KeyPair,
}

impl Ed25519Signer {
    /// A fresh random key.
    pub fn generate() -> Result<Self> {
        Self::from_seed(SecretBytes::random()?)
    }

    /// The key for an RFC 8032 seed.
    pub fn from_seed(seed: SecretBytes<SEED_LEN>) -> Result<Self> {
        let pair = Ed25519KeyPair::from_seed_unchecked(seed.expose_secret())
            .map_err(|_| Error::InvalidKey("ed25519 seed"))?;
        Ok(Self { seed, pair })
    }

    /// The seed, for storage.
    pub fn expose_seed(&self) -> &[u8; SEED_LEN] {
        self.seed.expose_secret()
    }

    /// The public key.
    pub fn public_key(&self) -> [u8; PUBLIC_KEY_LEN] {
        let mut out = [0u8; PUBLIC_KEY_LEN];
        out.copy_from_slice(self.pair.public_key().as_ref());
        out
    }

    /// Signs `msg` (deterministic, per RFC 8032).
    pub fn sign(&self, msg: &[u8]) -> [u8; SIGNATURE_LEN] {
        let mut out = [0u8; SIGNATURE_LEN];
        out.copy_from_slice(self.pair.sign(msg).as_ref());
        out
    }
}

impl fmt::Debug for Ed25519Signer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Ed25519Signer")
            .field("public_key_prefix", &crate::hex_prefix(&self.public_key()))
            .finish_non_exhaustive()
    }
}

/// Verifies an Ed25519 signature. Wrong lengths and non-canonical encodings fail.
pub fn verify(public_key: &[u8], msg: &[u8], signature: &[u8]) -> Result<()> {
    if public_key.len() != PUBLIC_KEY_LEN || signature.len() != SIGNATURE_LEN {
        return Err(Error::BadSignature);
    }
    UnparsedPublicKey::new(&ED25519, public_key)
        .verify(msg, signature)
        .map_err(|_| Error::BadSignature)
}
