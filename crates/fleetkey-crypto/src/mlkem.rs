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

/// An ML-KEM-768 decapsulation key and its encapsulation key.
pub struct MlKemSecret {
    dk: DecapsulationKey,
    ek: Vec<u8>,
}

impl MlKemSecret {
    /// A fresh key pair.
    pub fn generate() -> Result<Self> {
        let dk = DecapsulationKey::generate(&ML_KEM_768)?;
        let ek = dk.encapsulation_key()?.key_bytes()?.as_ref().to_vec();
        Ok(Self { dk, ek })
    }

    /// Loads the 2400-byte FIPS 203 decapsulation key encoding
    /// `dk_PKE (1152) ‖ ek (1184) ‖ H(ek) (32) ‖ z (32)`, with the FIPS 203 §7.3
    /// hash check (`H(ek)` must match) and the encapsulation key's modulus check.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self> {
        if bytes.len() != DECAPSULATION_KEY_LEN {
            return Err(Error::InvalidKey("ml-kem-768 decapsulation key length"));
        }
        let ek = &bytes[1152..1152 + ENCAPSULATION_KEY_LEN];
        let h = &bytes[1152 + ENCAPSULATION_KEY_LEN..1152 + ENCAPSULATION_KEY_LEN + 32];
        let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA3_256, ek);
        if aws_lc_rs::constant_time::verify_slices_are_equal(digest.as_ref(), h).is_err() {
            return Err(Error::InvalidKey("ml-kem-768 decapsulation key hash check"));
        }
        EncapsulationKey::new(&ML_KEM_768, ek)
            .map_err(|_| Error::InvalidKey("ml-kem-768 encapsulation key"))?;
        let dk = DecapsulationKey::new(&ML_KEM_768, bytes)
            .map_err(|_| Error::InvalidKey("ml-kem-768 decapsulation key"))?;
        Ok(Self {
            dk,
            ek: ek.to_vec(),
        })
    }

    /// The 2400-byte decapsulation key, for storage.
    pub fn expose_secret(&self) -> Result<crate::secret::SecretVec> {
        let b = self.dk.key_bytes()?;
        Ok(crate::secret::SecretVec::new(b.as_ref().to_vec()))
    }

    /// The 1184-byte encapsulation key.
    pub fn public_key(&self) -> Result<Vec<u8>> {
        Ok(self.ek.clone())
    }

    /// Recovers the shared secret. ML-KEM decapsulation never fails on a well-sized
    /// ciphertext (implicit rejection yields an unrelated secret).
    pub fn decapsulate(&self, ciphertext: &[u8]) -> Result<SecretBytes<SHARED_SECRET_LEN>> {
        if ciphertext.len() != CIPHERTEXT_LEN {
            return Err(Error::Malformed("ml-kem-768 ciphertext length"));
        }
        let ss = self.dk.decapsulate(Ciphertext::from(ciphertext))?;
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
