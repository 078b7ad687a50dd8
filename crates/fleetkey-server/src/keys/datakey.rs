//! Data keys for envelope encryption (KMS GenerateDataKey): a fresh 256-bit key,
//! returned in plaintext for the caller to encrypt with locally, and sealed under a
//! keyring so that only the wrapped form needs to be stored. Unwrapping it is an
//! ordinary unseal.

use super::Keyring;
use crate::error::Result;
use zeroize::Zeroizing;

/// Bytes in a data key.
pub const DATA_KEY_LEN: usize = 32;

/// A fresh data key and its envelope. `Debug` never shows the key.
pub struct DataKey {
    /// The key itself.
    pub plaintext: Zeroizing<[u8; DATA_KEY_LEN]>,
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
        let plaintext = Zeroizing::new(fleetkey_crypto::rand::array::<DATA_KEY_LEN>()?);
        let sealed = self.seal(&*plaintext, aad).await?;
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
            plaintext: zeroize::Zeroizing::new([0xAB; 32]),
            sealed: vec![1, 2, 3],
            version: 1,
        };
        let shown = format!("{k:?}");
        assert!(!shown.contains("171") && !shown.to_lowercase().contains("ab, "));
        assert!(shown.contains("redacted"));
    }
}
