//! Convergent keyrings (docs/formats.md, "Convergent keyrings"): deterministic
//! AES-256-GCM-SIV for equality search. The nonce of a seal is derived from the
//! version's key, the associated data and the plaintext, so sealing the same
//! plaintext with the same binding under the same version gives the same
//! envelope. That is the point and the cost: whoever sees envelopes sees which
//! plaintexts are equal (never the plaintexts). AES-GCM-SIV stays safe when a
//! nonce repeats, and here a nonce repeats only for an identical input.

use super::Keyring;
use super::keyring::Primary;
use crate::error::Result;
use fleetkey_crypto::aead::NONCE_LEN;
use fleetkey_crypto::mac::{MacAlgorithm, MacKey};
use fleetkey_crypto::secret::SecretBytes;
use std::sync::Arc;

/// HKDF-SHA256 salt of the nonce-derivation key (info `nonce`).
pub const CONVERGENT_SALT: &[u8] = b"fleetkey convergent v1";

impl Keyring {
    /// The nonce-derivation key of `version`, from cache or custody.
    async fn nonce_key(&self, version: u32) -> Result<Arc<MacKey>> {
        if let Some(k) = self.convergent.read().get(&version).cloned() {
            return Ok(k);
        }
        let (_, secret) = self.secret(version).await?;
        let mut out = [0u8; 32];
        fleetkey_crypto::hkdf::hkdf_sha256(
            CONVERGENT_SALT,
            secret.expose_secret(),
            b"nonce",
            &mut out,
        )?;
        let derived = SecretBytes::new(out);
        zeroize::Zeroize::zeroize(&mut out);
        let key = Arc::new(MacKey::new(MacAlgorithm::HmacSha256, &derived));
        self.convergent.write().insert(version, key.clone());
        Ok(key)
    }

    /// Seals with `p` (the use already taken) under the derived nonce: the first
    /// 12 bytes of HMAC-SHA256(nonce key, BE64(len(aad)) ‖ aad ‖ plaintext).
    pub(super) async fn seal_convergent(
        &self,
        p: Arc<Primary>,
        plaintext: &[u8],
        aad: &[u8],
    ) -> Result<Vec<u8>> {
        let key = self.nonce_key(p.version).await?;
        let len = u64::try_from(aad.len()).unwrap_or(u64::MAX).to_be_bytes();
        let tag = key.tag_parts(&[&len, aad, plaintext]);
        let mut nonce = [0u8; NONCE_LEN];
        nonce.copy_from_slice(&tag[..NONCE_LEN]);
        Ok(p.sealer.memory()?.seal(nonce, plaintext, aad)?)
    }
}
