//! ML-KEM-768 (FIPS 203).

use crate::{Error, Result, secret::SecretBytes};
use aws_lc_rs::kem::{Ciphertext, DecapsulationKey, EncapsulationKey, ML_KEM_768};
use core::fmt;

/// Encapsulation (public) key length.
pub const ENCAPSULATION_KEY_LEN: usize = 1184;
/// Decapsulation (private) key length.
pub const DECAPSULATION_KEY_LEN: usize = 2400;
/// Ciphertext length.
pub const CIPHERTEXT_LEN: usize = 1088;
/// Shared secret length.
pub const SHARED_SECRET_LEN: usize = 32;

/// An ML-KEM-768 decapsulation key.
pub struct MlKemSecret(DecapsulationKey);

impl MlKemSecret {
    /// A fresh key pair.
    pub fn generate() -> Result<Self> {
        Ok(Self(DecapsulationKey::generate(&ML_KEM_768)?))
    }

    /// Loads the 2400-byte FIPS 203 decapsulation key encoding.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self> {
        if bytes.len() != DECAPSULATION_KEY_LEN {
            return Err(Error::InvalidKey("ml-kem-768 decapsulation key length"));
        }
        DecapsulationKey::new(&ML_KEM_768, bytes)
            .map(Self)
            .map_err(|_| Error::InvalidKey("ml-kem-768 decapsulation key"))
    }

    /// The 2400-byte decapsulation key, for storage.
    pub fn expose_secret(&self) -> Result<crate::secret::SecretVec> {
        let b = self.0.key_bytes()?;
        Ok(crate::secret::SecretVec::new(b.as_ref().to_vec()))
    }

    /// The 1184-byte encapsulation key.
    pub fn public_key(&self) -> Result<Vec<u8>> {
        Ok(self.0.encapsulation_key()?.key_bytes()?.as_ref().to_vec())
    }

    /// Recovers the shared secret. ML-KEM decapsulation never fails on a well-sized
    /// ciphertext (implicit rejection yields an unrelated secret).
    pub fn decapsulate(&self, ciphertext: &[u8]) -> Result<SecretBytes<SHARED_SECRET_LEN>> {
        if ciphertext.len() != CIPHERTEXT_LEN {
            return Err(Error::Malformed("ml-kem-768 ciphertext length"));
        }
        let ss = self.0.decapsulate(Ciphertext::from(ciphertext))?;
        SecretBytes::from_slice(ss.as_ref())
    }
}

impl fmt::Debug for MlKemSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("MlKemSecret(redacted)")
    }
}

/// Encapsulates to a 1184-byte encapsulation key: returns (ciphertext, shared secret).
pub fn encapsulate(public_key: &[u8]) -> Result<(Vec<u8>, SecretBytes<SHARED_SECRET_LEN>)> {
    if public_key.len() != ENCAPSULATION_KEY_LEN {
        return Err(Error::InvalidKey("ml-kem-768 encapsulation key length"));
    }
    let ek = EncapsulationKey::new(&ML_KEM_768, public_key)
        .map_err(|_| Error::InvalidKey("ml-kem-768 encapsulation key"))?;
    let (ct, ss) = ek.encapsulate()?;
    Ok((ct.as_ref().to_vec(), SecretBytes::from_slice(ss.as_ref())?))
}
