//! What a keyring's versions are keys for, fixed when the keyring is created:
//! sealing (an AEAD), signing, MACs, or opening what others sealed to a public
//! recipient (X-Wing). Every version holds one 32-byte secret,
//! wrapped by custody; the type says how it is used (docs/formats.md, "Keyring key
//! types").

use crate::error::{Error, Result};
use fleetkey_crypto::aead::Algorithm;
use fleetkey_crypto::mac::MacAlgorithm;

/// A keyring's key type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyType {
    /// Seal, unseal, rewrap, data keys.
    Aead(Algorithm),
    /// Sign and verify with Ed25519 (RFC 8032).
    Ed25519,
    /// Sign and verify with ML-DSA-65 (FIPS 204).
    MlDsa65,
    /// Sign and verify with both (docs/formats.md, "Composite signatures").
    Ed25519MlDsa65,
    /// MAC generate and verify.
    Mac(MacAlgorithm),
    /// Open envelopes sealed to the keyring's X-Wing public recipient (fk1
    /// recipient mode); anyone seals to it, only the service opens.
    XWing,
}

impl From<Algorithm> for KeyType {
    fn from(a: Algorithm) -> Self {
        KeyType::Aead(a)
    }
}

/// What a key type is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    /// Seal and unseal.
    Encrypt,
    /// Sign and verify.
    Sign,
    /// MAC generate and verify.
    Mac,
    /// Open what others sealed to a public recipient.
    Decrypt,
}

impl Purpose {
    /// The word used in errors and docs.
    pub fn name(self) -> &'static str {
        match self {
            Purpose::Encrypt => "encryption",
            Purpose::Sign => "signing",
            Purpose::Mac => "MAC",
            Purpose::Decrypt => "decryption (x-wing)",
        }
    }
}

/// Every key type name, as the API takes them.
pub const NAMES: [&str; 9] = [
    "aes-256-gcm",
    "chacha20-poly1305",
    "aes-256-gcm-siv",
    "ed25519",
    "ml-dsa-65",
    "ed25519+ml-dsa-65",
    "hmac-sha256",
    "hmac-sha512",
    "x-wing",
];

impl KeyType {
    /// The name (`aes-256-gcm`, `ed25519+ml-dsa-65`, `hmac-sha256`, …).
    pub fn name(self) -> &'static str {
        match self {
            KeyType::Aead(a) => a.name(),
            KeyType::Ed25519 => "ed25519",
            KeyType::MlDsa65 => "ml-dsa-65",
            KeyType::Ed25519MlDsa65 => "ed25519+ml-dsa-65",
            KeyType::Mac(MacAlgorithm::HmacSha256) => "hmac-sha256",
            KeyType::Mac(MacAlgorithm::HmacSha512) => "hmac-sha512",
            KeyType::XWing => "x-wing",
        }
    }

    /// The type called `name`.
    pub fn from_name(name: &str) -> Result<Self> {
        Ok(match name {
            "ed25519" => KeyType::Ed25519,
            "ml-dsa-65" => KeyType::MlDsa65,
            "ed25519+ml-dsa-65" => KeyType::Ed25519MlDsa65,
            "hmac-sha256" => KeyType::Mac(MacAlgorithm::HmacSha256),
            "hmac-sha512" => KeyType::Mac(MacAlgorithm::HmacSha512),
            "x-wing" => KeyType::XWing,
            other => KeyType::Aead(Algorithm::from_name(other).map_err(|_| Error::Invalid {
                what: "algorithm",
                why: format!(
                    "unknown algorithm {other:?}; use one of {}",
                    NAMES.join(", ")
                ),
            })?),
        })
    }

    /// What its keys do.
    pub fn purpose(self) -> Purpose {
        match self {
            KeyType::Aead(_) => Purpose::Encrypt,
            KeyType::Ed25519 | KeyType::MlDsa65 | KeyType::Ed25519MlDsa65 => Purpose::Sign,
            KeyType::Mac(_) => Purpose::Mac,
            KeyType::XWing => Purpose::Decrypt,
        }
    }

    /// The AEAD, for an encryption keyring.
    pub fn aead(self) -> Option<Algorithm> {
        match self {
            KeyType::Aead(a) => Some(a),
            _ => None,
        }
    }

    /// Refuses an operation of `purpose` on a keyring of this type.
    pub fn require(self, keyring: &str, purpose: Purpose) -> Result<()> {
        if self.purpose() == purpose {
            return Ok(());
        }
        Err(Error::WrongKeyType {
            keyring: keyring.to_owned(),
            key_type: self.name(),
            needs: purpose.name(),
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn every_name_round_trips() {
        for n in NAMES {
            assert_eq!(KeyType::from_name(n).unwrap().name(), n);
        }
        assert!(KeyType::from_name("rsa-2048").is_err());
        assert!(KeyType::from_name("Ed25519").is_err());
    }
}
