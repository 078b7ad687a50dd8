//! HMAC (RFC 2104) with SHA-256 or SHA-512 (FIPS 198-1), from aws-lc-rs; tags are
//! checked in constant time.

use crate::{Error, Result, secret::SecretBytes};
use aws_lc_rs::hmac;
use core::fmt;

/// Key length fleetkey uses for both hashes (256 bits).
pub const KEY_LEN: usize = 32;

/// Which hash.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MacAlgorithm {
    /// HMAC-SHA-256: 32-byte tags.
    HmacSha256,
    /// HMAC-SHA-512: 64-byte tags.
    HmacSha512,
}

impl MacAlgorithm {
    /// Tag length in bytes.
    pub fn tag_len(self) -> usize {
        match self {
            Self::HmacSha256 => 32,
            Self::HmacSha512 => 64,
        }
    }

    fn aws(self) -> hmac::Algorithm {
        match self {
            Self::HmacSha256 => hmac::HMAC_SHA256,
            Self::HmacSha512 => hmac::HMAC_SHA512,
        }
    }
}

/// An HMAC key.
pub struct MacKey {
    alg: MacAlgorithm,
    key: hmac::Key,
}

impl MacKey {
    /// The key `secret` for `alg`.
    pub fn new(alg: MacAlgorithm, secret: &SecretBytes<KEY_LEN>) -> Self {
        Self {
            alg,
            key: hmac::Key::new(alg.aws(), secret.expose_secret()),
        }
    }

    /// The algorithm.
    pub fn algorithm(&self) -> MacAlgorithm {
        self.alg
    }

    /// The tag of `msg`.
    pub fn tag(&self, msg: &[u8]) -> Vec<u8> {
        hmac::sign(&self.key, msg).as_ref().to_vec()
    }

    /// The tag of the concatenation of `parts` (without copying them together).
    pub fn tag_parts(&self, parts: &[&[u8]]) -> Vec<u8> {
        let mut ctx = hmac::Context::with_key(&self.key);
        for p in parts {
            ctx.update(p);
        }
        ctx.sign().as_ref().to_vec()
    }

    /// Checks `tag` against `msg` in constant time; a tag of the wrong length fails.
    pub fn verify(&self, msg: &[u8], tag: &[u8]) -> Result<()> {
        hmac::verify(&self.key, msg, tag).map_err(|_| Error::BadSignature)
    }
}

impl fmt::Debug for MacKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MacKey")
            .field("alg", &self.alg)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn parts_are_the_concatenation() {
        let k = MacKey::new(MacAlgorithm::HmacSha256, &SecretBytes::new([3; KEY_LEN]));
        assert_eq!(k.tag_parts(&[b"ab", b"", b"cd"]), k.tag(b"abcd"));
    }

    /// RFC 4231 test case 2 ("Jefe"), with the key padded as HMAC pads it: a key
    /// shorter than the block is zero-extended, so "Jefe" ‖ 28 zero bytes gives the
    /// same tag.
    #[test]
    fn rfc4231_case_2() {
        let mut k = [0u8; 32];
        k[..4].copy_from_slice(b"Jefe");
        let secret = SecretBytes::new(k);
        let msg = b"what do ya want for nothing?";
        let t256 = MacKey::new(MacAlgorithm::HmacSha256, &secret).tag(msg);
        assert_eq!(
            hex::encode(&t256),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
        let k512 = MacKey::new(MacAlgorithm::HmacSha512, &secret);
        let t512 = k512.tag(msg);
        assert_eq!(
            hex::encode(&t512),
            "164b7a7bfcf819e2e395fbe73b56e0a387bd64222e831fd610270cd7ea2505549758bf75c05a994a6d034f65f8f0e6fdcaeab1a34d4a6b4b636e070a38bce737"
        );
        k512.verify(msg, &t512).unwrap();
        assert!(k512.verify(msg, &t512[..63]).is_err());
        assert!(k512.verify(b"other", &t512).is_err());
    }
}
