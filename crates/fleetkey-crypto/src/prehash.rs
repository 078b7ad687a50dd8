//! Signatures over a digest the caller computed: the standard prehash modes.
//!
//! * **Ed25519ph** (RFC 8032 §5.1, empty context): the digest is SHA-512 of the
//!   message, 64 bytes. Provider: `ed25519-dalek` (aws-lc-rs has no safe API for it).
//! * **HashML-DSA-65** (FIPS 204 Algorithms 4 and 5, empty context): the signed
//!   string is `M' = 0x01 ‖ 0x00 ‖ OID(PH) ‖ PH(M)` given to `ML-DSA.Sign_internal`,
//!   with PH SHA-256 or SHA-512 and OID its DER encoding (`06 09 60 86 48 01 65 03
//!   04 02 01` or `… 02 03`). Provider: RustCrypto `ml-dsa`; the key is the same as
//!   [`crate::mldsa`]'s for the same seed ξ.
//!
//! A prehash signature is not a signature on the message: it verifies only as a
//! prehash signature, and a pure signature never verifies here.

use crate::{Error, Result, ed25519, mldsa};
use aws_lc_rs::digest;
use digest_trait::{FixedOutput, HashMarker, Output, OutputSizeUser, Update, consts::U64};
use ed25519_dalek::{Signature as EdSignature, SigningKey as EdSigningKey, VerifyingKey};
use ml_dsa::{EncodedSignature, EncodedVerifyingKey, MlDsa65, Signature as MlSignature};

use ::digest as digest_trait;

/// A hash function a caller may prehash with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HashAlg {
    /// SHA-256 (FIPS 180-4), 32-byte digests. HashML-DSA only.
    Sha256,
    /// SHA-512 (FIPS 180-4), 64-byte digests. Ed25519ph and HashML-DSA.
    Sha512,
}

impl HashAlg {
    /// Every name [`HashAlg::parse`] takes.
    pub const NAMES: &'static [&'static str] = &["sha-256", "sha-512"];

    /// `sha-256` or `sha-512`.
    pub fn name(self) -> &'static str {
        match self {
            Self::Sha256 => "sha-256",
            Self::Sha512 => "sha-512",
        }
    }

    /// The hash for a name in [`HashAlg::NAMES`].
    pub fn parse(name: &str) -> Option<Self> {
        match name {
            "sha-256" => Some(Self::Sha256),
            "sha-512" => Some(Self::Sha512),
            _ => None,
        }
    }

    /// Digest length in bytes.
    pub fn output_len(self) -> usize {
        match self {
            Self::Sha256 => 32,
            Self::Sha512 => 64,
        }
    }

    /// DER encoding of the hash's OID (NIST, 2.16.840.1.101.3.4.2.1 and .3).
    fn oid_der(self) -> &'static [u8] {
        match self {
            Self::Sha256 => &[
                0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x01,
            ],
            Self::Sha512 => &[
                0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x03,
            ],
        }
    }

    /// Hashes `data` (for callers that prehash locally, such as the CLI).
    pub fn hash(self, data: &[u8]) -> Digest {
        let mut ctx = self.context();
        ctx.update(data);
        self.finish(ctx)
    }

    /// A streaming hash context for this algorithm.
    pub fn context(self) -> digest::Context {
        digest::Context::new(match self {
            Self::Sha256 => &digest::SHA256,
            Self::Sha512 => &digest::SHA512,
        })
    }

    /// The digest of a context made by [`HashAlg::context`].
    pub fn finish(self, ctx: digest::Context) -> Digest {
        Digest {
            alg: self,
            bytes: ctx.finish().as_ref().to_vec(),
        }
    }
}

/// A digest of a known hash function, its length checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Digest {
    alg: HashAlg,
    bytes: Vec<u8>,
}

impl Digest {
    /// Wraps `bytes` as a digest of `alg`; any other length than the hash's is
    /// [`Error::Malformed`].
    pub fn new(alg: HashAlg, bytes: &[u8]) -> Result<Self> {
        if bytes.len() != alg.output_len() {
            return Err(Error::Malformed("digest length"));
        }
        Ok(Self {
            alg,
            bytes: bytes.to_vec(),
        })
    }

    /// The hash function.
    pub fn alg(&self) -> HashAlg {
        self.alg
    }

    /// The digest bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// The SHA-512 digest Ed25519ph signs; another hash is [`Error::Unsupported`].
    fn sha512(&self) -> Result<Given512> {
        if self.alg != HashAlg::Sha512 {
            return Err(Error::Unsupported("Ed25519ph prehashes with SHA-512 only"));
        }
        let mut out = [0u8; 64];
        out.copy_from_slice(&self.bytes);
        Ok(Given512(out))
    }

    /// FIPS 204's `M'` for HashML-DSA with an empty context.
    fn hash_mldsa_message(&self) -> Vec<u8> {
        let oid = self.alg.oid_der();
        let mut m = Vec::with_capacity(2 + oid.len() + self.bytes.len());
        m.extend_from_slice(&[0x01, 0x00]);
        m.extend_from_slice(oid);
        m.extend_from_slice(&self.bytes);
        m
    }
}

/// A SHA-512 digest computed elsewhere, handed to `ed25519-dalek`'s prehash API,
/// which only finalizes it: the value is the digest, and input is ignored.
#[derive(Clone)]
struct Given512([u8; 64]);

impl Default for Given512 {
    fn default() -> Self {
        Self([0; 64])
    }
}

impl HashMarker for Given512 {}

impl OutputSizeUser for Given512 {
    type OutputSize = U64;
}

impl Update for Given512 {
    fn update(&mut self, _data: &[u8]) {}
}

impl FixedOutput for Given512 {
    fn finalize_into(self, out: &mut Output<Self>) {
        out.copy_from_slice(&self.0);
    }
}

/// Ed25519ph signature (64 bytes) of `digest` with the key of RFC 8032 `seed`.
pub fn ed25519ph_sign(seed: &[u8; ed25519::SEED_LEN], digest: &Digest) -> Result<Vec<u8>> {
    let given = digest.sha512()?;
    let key = EdSigningKey::from_bytes(seed);
    let sig = key
        .sign_prehashed(given, None)
        .map_err(|_| Error::Provider)?;
    Ok(sig.to_bytes().to_vec())
}

/// Verifies an Ed25519ph signature (strict: small-order keys and non-canonical
/// encodings fail).
pub fn ed25519ph_verify(public_key: &[u8], digest: &Digest, signature: &[u8]) -> Result<()> {
    let pk: [u8; ed25519::PUBLIC_KEY_LEN] =
        public_key.try_into().map_err(|_| Error::BadSignature)?;
    let sig: [u8; ed25519::SIGNATURE_LEN] =
        signature.try_into().map_err(|_| Error::BadSignature)?;
    let given = digest.sha512()?;
    let vk = VerifyingKey::from_bytes(&pk).map_err(|_| Error::BadSignature)?;
    vk.verify_prehashed_strict(given, None, &EdSignature::from_bytes(&sig))
        .map_err(|_| Error::BadSignature)
}

/// HashML-DSA-65 signature (3,309 bytes, hedged) of `digest` with the key of the
/// FIPS 204 seed ξ.
pub fn hash_mldsa65_sign(seed: &[u8; mldsa::SEED_LEN], digest: &Digest) -> Result<Vec<u8>> {
    let mut xi = ml_dsa::Seed::from(*seed);
    let key = ml_dsa::SigningKey::<MlDsa65>::from_seed(&xi);
    zeroize::Zeroize::zeroize(&mut xi);
    let rnd: [u8; 32] = crate::rand::array()?;
    let m = digest.hash_mldsa_message();
    let sig = key.expanded_key().sign_internal(&[&m], &rnd.into());
    Ok(sig.encode().to_vec())
}

/// Verifies a HashML-DSA-65 signature.
pub fn hash_mldsa65_verify(public_key: &[u8], digest: &Digest, signature: &[u8]) -> Result<()> {
    let pk =
        EncodedVerifyingKey::<MlDsa65>::try_from(public_key).map_err(|_| Error::BadSignature)?;
    let sig = EncodedSignature::<MlDsa65>::try_from(signature).map_err(|_| Error::BadSignature)?;
    let sig = MlSignature::<MlDsa65>::decode(&sig).ok_or(Error::BadSignature)?;
    let vk = ml_dsa::VerifyingKey::<MlDsa65>::decode(&pk);
    if vk.verify_internal(&digest.hash_mldsa_message(), &sig) {
        Ok(())
    } else {
        Err(Error::BadSignature)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::secret::SecretBytes;

    /// RFC 8032 §7.3, the Ed25519ph test vector (message "abc").
    #[test]
    fn ed25519ph_rfc8032_vector() {
        let seed: [u8; 32] =
            hex::decode("833fe62409237b9d62ec77587520911e9a759cec1d19755b7da901b96dca3d42")
                .unwrap()
                .try_into()
                .unwrap();
        let pk = hex::decode("ec172b93ad5e563bf4932c70e1245034c35467ef2efd4d64ebf819683467e2bf")
            .unwrap();
        let want = hex::decode(
            "98a70222f0b8121aa9d30f813d683f809e462b469c7ff87639499bb94e6dae41\
             31f85042463c2a355a2003d062adf5aaa10b8c61e636062aaad11c2a26083406",
        )
        .unwrap();
        let d = HashAlg::Sha512.hash(b"abc");
        assert_eq!(ed25519ph_sign(&seed, &d).unwrap(), want);
        ed25519ph_verify(&pk, &d, &want).unwrap();
        // Not a pure Ed25519 signature of the message or of the digest.
        assert!(ed25519::verify(&pk, b"abc", &want).is_err());
        assert!(ed25519::verify(&pk, d.as_bytes(), &want).is_err());
        let other = HashAlg::Sha512.hash(b"abd");
        assert_eq!(
            ed25519ph_verify(&pk, &other, &want),
            Err(Error::BadSignature)
        );
    }

    #[test]
    fn ed25519ph_wants_sha512() {
        let d = HashAlg::Sha256.hash(b"abc");
        assert!(matches!(
            ed25519ph_sign(&[7; 32], &d),
            Err(Error::Unsupported(_))
        ));
    }

    #[test]
    fn digest_lengths_are_checked() {
        assert!(Digest::new(HashAlg::Sha512, &[0; 64]).is_ok());
        assert_eq!(
            Digest::new(HashAlg::Sha512, &[0; 32]),
            Err(Error::Malformed("digest length"))
        );
        assert_eq!(
            Digest::new(HashAlg::Sha256, &[0; 33]),
            Err(Error::Malformed("digest length"))
        );
    }

    #[test]
    fn hash_mldsa_same_key_as_pure_mode_and_domain_separated() {
        let seed = [9u8; 32];
        let pure = mldsa::MlDsaSigner::from_seed(SecretBytes::new(seed)).unwrap();
        let pk = pure.public_key();
        for alg in [HashAlg::Sha256, HashAlg::Sha512] {
            let d = alg.hash(b"firmware image");
            let sig = hash_mldsa65_sign(&seed, &d).unwrap();
            assert_eq!(sig.len(), mldsa::SIGNATURE_LEN);
            hash_mldsa65_verify(&pk, &d, &sig).unwrap();
            // Neither a pure signature on the message nor on the digest.
            assert!(mldsa::verify(&pk, b"firmware image", &sig).is_err());
            assert!(mldsa::verify(&pk, d.as_bytes(), &sig).is_err());
            let mut bad = sig.clone();
            bad[100] ^= 1;
            assert_eq!(hash_mldsa65_verify(&pk, &d, &bad), Err(Error::BadSignature));
            assert_eq!(
                hash_mldsa65_verify(&pk, &d, &sig[..100]),
                Err(Error::BadSignature)
            );
        }
        // The same digest bytes under another hash's OID do not verify.
        let d512 = HashAlg::Sha512.hash(b"x");
        let sig = hash_mldsa65_sign(&seed, &d512).unwrap();
        let pure_sig = pure.sign(b"x").unwrap();
        assert!(hash_mldsa65_verify(&pk, &d512, &pure_sig).is_err());
        let as256 = Digest::new(HashAlg::Sha256, &d512.as_bytes()[..32]).unwrap();
        assert!(hash_mldsa65_verify(&pk, &as256, &sig).is_err());
    }
}
