//! Authenticated encryption: one [`Algorithm`] enum with stable numeric ids, one key type.
//!
//! All three algorithms take 256-bit keys, 96-bit nonces and produce 128-bit tags,
//! so envelope layouts do not depend on the choice.

use crate::{Error, Result, secret::SecretBytes};
use aws_lc_rs::aead::{self, Aad, LessSafeKey, Nonce, UnboundKey};
use core::fmt;

/// Key length of every supported AEAD, in bytes.
pub const KEY_LEN: usize = 32;
/// Nonce length of every supported AEAD, in bytes.
pub const NONCE_LEN: usize = 12;
/// Tag length of every supported AEAD, in bytes.
pub const TAG_LEN: usize = 16;

/// An AEAD algorithm. The numeric id is part of the `fk1` format and never changes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum Algorithm {
    /// AES-256-GCM (NIST SP 800-38D). The default.
    #[default]
    Aes256Gcm,
    /// ChaCha20-Poly1305 (RFC 8439).
    ChaCha20Poly1305,
    /// AES-256-GCM-SIV (RFC 8452), nonce-misuse resistant.
    Aes256GcmSiv,
}

impl Algorithm {
    /// Every supported algorithm, in id order.
    pub const ALL: [Algorithm; 3] = [
        Algorithm::Aes256Gcm,
        Algorithm::ChaCha20Poly1305,
        Algorithm::Aes256GcmSiv,
    ];

    /// The stable wire id.
    pub const fn id(self) -> u8 {
        match self {
            Algorithm::Aes256Gcm => 1,
            Algorithm::ChaCha20Poly1305 => 2,
            Algorithm::Aes256GcmSiv => 3,
        }
    }

    /// Looks up a wire id.
    pub fn from_id(id: u8) -> Result<Self> {
        match id {
            1 => Ok(Algorithm::Aes256Gcm),
            2 => Ok(Algorithm::ChaCha20Poly1305),
            3 => Ok(Algorithm::Aes256GcmSiv),
            _ => Err(Error::UnknownId {
                what: "algorithm",
                id: id.into(),
            }),
        }
    }

    /// The name used in files, JSON and the CLI (`aes-256-gcm`, …).
    pub const fn name(self) -> &'static str {
        match self {
            Algorithm::Aes256Gcm => "aes-256-gcm",
            Algorithm::ChaCha20Poly1305 => "chacha20-poly1305",
            Algorithm::Aes256GcmSiv => "aes-256-gcm-siv",
        }
    }

    /// Parses a name produced by [`Algorithm::name`].
    pub fn from_name(name: &str) -> Result<Self> {
        Self::ALL
            .into_iter()
            .find(|a| a.name() == name)
            .ok_or(Error::Malformed("algorithm name"))
    }

    fn provider(self) -> &'static aead::Algorithm {
        match self {
            Algorithm::Aes256Gcm => &aead::AES_256_GCM,
            Algorithm::ChaCha20Poly1305 => &aead::CHACHA20_POLY1305,
            Algorithm::Aes256GcmSiv => &aead::AES_256_GCM_SIV,
        }
    }
}

impl fmt::Display for Algorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A ready-to-use AEAD key: the raw bytes (zeroized on drop) and the provider's
/// expanded key schedule, built once.
pub struct AeadKey {
    algorithm: Algorithm,
    bytes: SecretBytes<KEY_LEN>,
    key: LessSafeKey,
}

impl AeadKey {
    /// Builds a key from 32 secret bytes.
    pub fn new(algorithm: Algorithm, bytes: SecretBytes<KEY_LEN>) -> Result<Self> {
        let unbound = UnboundKey::new(algorithm.provider(), bytes.expose_secret())
            .map_err(|_| Error::InvalidKey("rejected by provider"))?;
        Ok(Self {
            algorithm,
            bytes,
            key: LessSafeKey::new(unbound),
        })
    }

    /// A fresh random key.
    pub fn generate(algorithm: Algorithm) -> Result<Self> {
        Self::new(algorithm, SecretBytes::random()?)
    }

    /// The algorithm.
    pub fn algorithm(&self) -> Algorithm {
        self.algorithm
    }

    /// The raw key bytes (for wrapping or writing a key file).
    pub fn expose_secret(&self) -> &[u8; KEY_LEN] {
        self.bytes.expose_secret()
    }

    /// Encrypts `in_out` in place and appends the tag.
    pub fn seal_in_place(
        &self,
        nonce: &[u8; NONCE_LEN],
        aad: &[u8],
        in_out: &mut Vec<u8>,
    ) -> Result<()> {
        self.key
            .seal_in_place_append_tag(Nonce::assume_unique_for_key(*nonce), Aad::from(aad), in_out)
            .map_err(|_| Error::TooLarge("plaintext"))
    }

    /// Encrypts `in_out` in place and returns the detached tag.
    pub fn seal_detached(
        &self,
        nonce: &[u8; NONCE_LEN],
        aad: &[u8],
        in_out: &mut [u8],
    ) -> Result<[u8; TAG_LEN]> {
        let tag = self
            .key
            .seal_in_place_separate_tag(
                Nonce::assume_unique_for_key(*nonce),
                Aad::from(aad),
                in_out,
            )
            .map_err(|_| Error::TooLarge("plaintext"))?;
        let mut out = [0u8; TAG_LEN];
        out.copy_from_slice(tag.as_ref());
        Ok(out)
    }

    /// Decrypts `ciphertext || tag` from `input` into `out` (which must be exactly
    /// `input.len() - TAG_LEN` bytes). `input` is left untouched, so a caller can
    /// retry with other parameters; on failure `out` must be discarded.
    pub fn open_to(
        &self,
        nonce: &[u8; NONCE_LEN],
        aad: &[u8],
        input: &[u8],
        out: &mut [u8],
    ) -> Result<()> {
        if input.len() < TAG_LEN || out.len() != input.len() - TAG_LEN {
            return Err(Error::Open);
        }
        let (ct, tag) = input.split_at(input.len() - TAG_LEN);
        self.key
            .open_separate_gather(
                Nonce::assume_unique_for_key(*nonce),
                Aad::from(aad),
                ct,
                tag,
                out,
            )
            .map_err(|_| Error::Open)
    }

    /// Decrypts `ciphertext || tag` in place; returns the plaintext prefix.
    /// On failure the buffer's contents are unspecified and must be discarded.
    pub fn open_in_place<'a>(
        &self,
        nonce: &[u8; NONCE_LEN],
        aad: &[u8],
        in_out: &'a mut [u8],
    ) -> Result<&'a mut [u8]> {
        if in_out.len() < TAG_LEN {
            return Err(Error::Open);
        }
        self.key
            .open_in_place(Nonce::assume_unique_for_key(*nonce), Aad::from(aad), in_out)
            .map_err(|_| Error::Open)
    }
}

impl fmt::Debug for AeadKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AeadKey")
            .field("algorithm", &self.algorithm)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_stable_and_round_trip() {
        assert_eq!(Algorithm::Aes256Gcm.id(), 1);
        assert_eq!(Algorithm::ChaCha20Poly1305.id(), 2);
        assert_eq!(Algorithm::Aes256GcmSiv.id(), 3);
        for a in Algorithm::ALL {
            assert_eq!(Algorithm::from_id(a.id()).unwrap(), a);
            assert_eq!(Algorithm::from_name(a.name()).unwrap(), a);
        }
        assert!(Algorithm::from_id(0).is_err());
        assert!(Algorithm::from_id(4).is_err());
    }

    #[test]
    fn round_trip_and_refusals() {
        for a in Algorithm::ALL {
            let k = AeadKey::generate(a).unwrap();
            let mut buf = b"hello".to_vec();
            k.seal_in_place(&[7; 12], b"aad", &mut buf).unwrap();
            assert_eq!(buf.len(), 5 + TAG_LEN);
            let mut c = buf.clone();
            assert_eq!(k.open_in_place(&[7; 12], b"aad", &mut c).unwrap(), b"hello");
            let mut c = buf.clone();
            assert_eq!(k.open_in_place(&[7; 12], b"aaX", &mut c), Err(Error::Open));
            let mut c = buf.clone();
            assert_eq!(k.open_in_place(&[8; 12], b"aad", &mut c), Err(Error::Open));
            let mut short = [0u8; 3];
            assert_eq!(k.open_in_place(&[7; 12], b"", &mut short), Err(Error::Open));
        }
    }

    #[test]
    fn debug_redacts_key() {
        let k = AeadKey::new(Algorithm::Aes256Gcm, SecretBytes::new([0x5a; 32])).unwrap();
        let d = format!("{k:?}");
        assert!(!d.contains("5a") && !d.contains("90"), "{d}");
    }
}
