//! Composite signatures: Ed25519 and ML-DSA-65 over the same message; both must verify.
//!
//! Encoding (see `docs/formats.md#composite-signatures`):
//!
//! * public key = Ed25519 public key (32) ‖ ML-DSA-65 public key (1952) = 1984 bytes
//! * signature  = Ed25519 signature (64) ‖ ML-DSA-65 signature (3309) = 3373 bytes
//! * both components sign `M' = DOMAIN ‖ msg`, where `DOMAIN` is the ASCII string
//!   `fleetkey composite v1 Ed25519+ML-DSA-65` followed by one zero byte. The prefix
//!   stops a component signature being lifted out and accepted as a plain Ed25519 or
//!   ML-DSA signature on `msg`.
//!
//! Security holds while either component is unbroken.

use crate::{Error, Result, ed25519, mldsa};

/// Domain separation prefix signed by both components.
pub const DOMAIN: &[u8] = b"fleetkey composite v1 Ed25519+ML-DSA-65\0";
/// Composite public key length.
pub const PUBLIC_KEY_LEN: usize = ed25519::PUBLIC_KEY_LEN + mldsa::PUBLIC_KEY_LEN;
/// Composite signature length.
pub const SIGNATURE_LEN: usize = ed25519::SIGNATURE_LEN + mldsa::SIGNATURE_LEN;

/// A composite signing key.
#[derive(Debug)]
pub struct CompositeSigner {
    ed25519: ed25519::Ed25519Signer,
    mldsa: mldsa::MlDsaSigner,
}

/// `M' = DOMAIN ‖ msg`, what both components sign (for a signer whose halves
/// live apart, such as an HSM holding the Ed25519 key).
pub fn signed_message(msg: &[u8]) -> Vec<u8> {
    domain_message(msg)
}

/// The composite signature from its two halves (Ed25519 ‖ ML-DSA-65).
pub fn join(ed25519_sig: &[u8], mldsa_sig: &[u8]) -> Vec<u8> {
    let mut sig = Vec::with_capacity(ed25519_sig.len() + mldsa_sig.len());
    sig.extend_from_slice(ed25519_sig);
    sig.extend_from_slice(mldsa_sig);
    sig
}

fn domain_message(msg: &[u8]) -> Vec<u8> {
    let mut m = Vec::with_capacity(DOMAIN.len() + msg.len());
    m.extend_from_slice(DOMAIN);
    m.extend_from_slice(msg);
    m
}

impl CompositeSigner {
    /// Combines two component keys.
    pub fn new(ed25519: ed25519::Ed25519Signer, mldsa: mldsa::MlDsaSigner) -> Self {
        Self { ed25519, mldsa }
    }

    /// Fresh random component keys.
    pub fn generate() -> Result<Self> {
        Ok(Self::new(
            ed25519::Ed25519Signer::generate()?,
            mldsa::MlDsaSigner::generate()?,
        ))
    }

    /// The 1984-byte composite public key.
    pub fn public_key(&self) -> Vec<u8> {
        let mut pk = self.ed25519.public_key().to_vec();
        pk.extend_from_slice(&self.mldsa.public_key());
        pk
    }

    /// Signs `msg` with both components.
    pub fn sign(&self, msg: &[u8]) -> Result<Vec<u8>> {
        let m = domain_message(msg);
        let mut sig = self.ed25519.sign(&m).to_vec();
        sig.extend_from_slice(&self.mldsa.sign(&m)?);
        Ok(sig)
    }
}

/// Verifies a composite signature: both components must verify.
pub fn verify(public_key: &[u8], msg: &[u8], signature: &[u8]) -> Result<()> {
    if public_key.len() != PUBLIC_KEY_LEN || signature.len() != SIGNATURE_LEN {
        return Err(Error::BadSignature);
    }
    let (ed_pk, ml_pk) = public_key.split_at(ed25519::PUBLIC_KEY_LEN);
    let (ed_sig, ml_sig) = signature.split_at(ed25519::SIGNATURE_LEN);
    let m = domain_message(msg);
    let ed_ok = ed25519::verify(ed_pk, &m, ed_sig).is_ok();
    let ml_ok = mldsa::verify(ml_pk, &m, ml_sig).is_ok();
    if ed_ok && ml_ok {
        Ok(())
    } else {
        Err(Error::BadSignature)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_round_trip_and_each_half_is_required() {
        let s = CompositeSigner::generate().unwrap();
        let pk = s.public_key();
        assert_eq!(pk.len(), 1984);
        let sig = s.sign(b"msg").unwrap();
        assert_eq!(sig.len(), 3373);
        verify(&pk, b"msg", &sig).unwrap();
        assert_eq!(verify(&pk, b"msh", &sig), Err(Error::BadSignature));
        for idx in [0usize, 63, 64, 3372] {
            let mut bad = sig.clone();
            bad[idx] ^= 1;
            assert_eq!(verify(&pk, b"msg", &bad), Err(Error::BadSignature), "{idx}");
        }
        // A component signature is not a plain signature over msg.
        assert!(ed25519::verify(&pk[..32], b"msg", &sig[..64]).is_err());
        assert!(verify(&pk, b"msg", &sig[..3372]).is_err());
    }
}
