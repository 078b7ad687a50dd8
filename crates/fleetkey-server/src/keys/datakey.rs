//! Data keys for envelope encryption (KMS GenerateDataKey): a fresh 256-bit key,
//! returned in plaintext for the caller to encrypt with locally, and sealed under a
//! keyring so that only the wrapped form needs to be stored. Unwrapping it is an
//! ordinary unseal.

use super::Keyring;
use crate::error::Result;
use zeroize::Zeroizing;

/// Bytes in a data key.
pub const DATA_KEY_LEN: usize = 32;
/// Most bytes a data key of a chosen length may have (AWS KMS's
/// `NumberOfBytes` bound).
pub const MAX_DATA_KEY_LEN: usize = 1024;

/// A fresh data key and its envelope. `Debug` never shows the key.
pub struct DataKey {
    /// The key itself.
    pub plaintext: Zeroizing<Vec<u8>>,
    /// The key sealed under the keyring's primary version (an fk1 mode-1 envelope).
    pub sealed: Vec<u8>,
    /// The keyring version that sealed it.
    pub version: u32,
}

impl std::fmt::Debug for DataKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DataKey")
            .field("plaintext", &"<redacted>")
            .field("sealed_len", &self.sealed.len())
            .finish()
    }
}

impl Keyring {
    /// Draws a data key from the system generator and seals it with the primary
    /// version, bound to `aad` (which unsealing it needs again). Counts as a seal
    /// towards the use budget.
    pub async fn data_key(&self, aad: &[u8]) -> Result<DataKey> {
        self.data_key_of(DATA_KEY_LEN, aad).await
    }

    /// [`Keyring::data_key`] with a key of `len` bytes (1 to
    /// [`MAX_DATA_KEY_LEN`]), for the doors whose protocols choose the size
    /// (Vault Transit's `bits`, AWS KMS's `NumberOfBytes`).
    pub async fn data_key_of(&self, len: usize, aad: &[u8]) -> Result<DataKey> {
        if !(1..=MAX_DATA_KEY_LEN).contains(&len) {
            return Err(crate::Error::Invalid {
                what: "data key length",
                why: format!("use 1 to {MAX_DATA_KEY_LEN} bytes"),
            });
        }
        let mut plaintext = Zeroizing::new(vec![0u8; len]);
        fleetkey_crypto::rand::fill(&mut plaintext)?;
        let sealed = self.seal(&plaintext, aad).await?;
        let (header, _) = fleetkey_crypto::envelope::Header::parse(&sealed)?;
        Ok(DataKey {
            plaintext,
            version: header.key_version,
            sealed,
        })
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn debug_hides_the_key() {
        let k = super::DataKey {
            plaintext: zeroize::Zeroizing::new(vec![0xAB; 32]),
            sealed: vec![1, 2, 3],
            version: 1,
        };
        let shown = format!("{k:?}");
        assert!(!shown.contains("171") && !shown.to_lowercase().contains("ab, "));
        assert!(shown.contains("redacted"));
    }
}
