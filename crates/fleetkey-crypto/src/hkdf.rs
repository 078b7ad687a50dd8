//! HKDF-SHA256 (RFC 5869).

use crate::{Error, Result};
use aws_lc_rs::hkdf::{HKDF_SHA256, KeyType, Salt};

struct Len(usize);
impl KeyType for Len {
    fn len(&self) -> usize {
        self.0
    }
}

/// Maximum output of HKDF-SHA256: 255 × 32 bytes.
pub const MAX_OUTPUT: usize = 255 * 32;

/// HKDF-SHA256 extract-then-expand into `out` (1..=8160 bytes).
pub fn hkdf_sha256(salt: &[u8], ikm: &[u8], info: &[u8], out: &mut [u8]) -> Result<()> {
    if out.is_empty() || out.len() > MAX_OUTPUT {
        return Err(Error::TooLarge("hkdf output"));
    }
    let prk = Salt::new(HKDF_SHA256, salt).extract(ikm);
    let info = [info];
    prk.expand(&info, Len(out.len()))
        .and_then(|okm| okm.fill(out))
        .map_err(|_| Error::Provider)
}
