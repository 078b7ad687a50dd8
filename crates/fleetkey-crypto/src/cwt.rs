//! COSE_Sign1 (RFC 9052) plumbing shared by the signed formats (device credentials,
//! key records): the protected header for each signature algorithm, signing with a
//! local key or in two steps with a remote one (custody), and verification that
//! checks the algorithm against the key type before the signature.

use crate::{Error, Result, composite, ed25519};
use coset::iana::{self, EnumI64};
use coset::{
    CoseSign1, CoseSign1Builder, HeaderBuilder, RegisteredLabelWithPrivate, TaggedCborSerializable,
};

/// Private-use COSE algorithm id of the composite Ed25519 + ML-DSA-65 signature.
pub const COMPOSITE_ALG: i64 = -65_537;

/// A signing key held in this process.
#[derive(Debug, Clone, Copy)]
pub enum Issuer<'a> {
    /// Ed25519 (COSE EdDSA).
    Ed25519(&'a ed25519::Ed25519Signer),
    /// Composite Ed25519 + ML-DSA-65.
    Composite(&'a composite::CompositeSigner),
}

impl Issuer<'_> {
    fn alg(self) -> SignatureAlg {
        match self {
            Issuer::Ed25519(_) => SignatureAlg::Ed25519,
            Issuer::Composite(_) => SignatureAlg::Composite,
        }
    }
}

/// The public key that verifies.
#[derive(Debug, Clone, Copy)]
pub enum IssuerPublicKey<'a> {
    /// 32-byte Ed25519 key.
    Ed25519(&'a [u8]),
    /// 1984-byte composite key.
    Composite(&'a [u8]),
}

/// A signature algorithm (for signing in two steps).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignatureAlg {
    /// COSE EdDSA with Ed25519.
    Ed25519,
    /// The composite Ed25519 + ML-DSA-65 ([`COMPOSITE_ALG`]).
    Composite,
}

/// A COSE_Sign1 waiting for its signature: sign [`Unsigned::to_be_signed`] with the
/// key of the algorithm it was made for, then [`Unsigned::finish`].
#[derive(Debug, Clone)]
pub struct Unsigned(CoseSign1);

impl Unsigned {
    /// The exact bytes to sign (the COSE `Sig_structure`).
    pub fn to_be_signed(&self) -> Vec<u8> {
        self.0.tbs_data(b"")
    }

    /// The tagged COSE_Sign1 with `signature`, at most `max_len` bytes.
    pub fn finish(
        mut self,
        signature: Vec<u8>,
        max_len: usize,
        what: &'static str,
    ) -> Result<Vec<u8>> {
        self.0.signature = signature;
        let out = self.0.to_tagged_vec().map_err(|_| Error::Malformed(what))?;
        if out.len() > max_len {
            return Err(Error::TooLarge(what));
        }
        Ok(out)
    }
}

/// A COSE_Sign1 of `payload` for `alg` and `key_id`, unsigned.
pub fn unsigned(payload: Vec<u8>, alg: SignatureAlg, key_id: &[u8]) -> Unsigned {
    let header = match alg {
        SignatureAlg::Ed25519 => HeaderBuilder::new().algorithm(iana::Algorithm::EdDSA),
        SignatureAlg::Composite => HeaderBuilder::new()
            .algorithm_label(RegisteredLabelWithPrivate::PrivateUse(COMPOSITE_ALG)),
    }
    .key_id(key_id.to_vec())
    .build();
    Unsigned(
        CoseSign1Builder::new()
            .protected(header)
            .payload(payload)
            .build(),
    )
}

/// Signs `payload` with a local key: the tagged COSE_Sign1 bytes.
pub fn sign(
    payload: Vec<u8>,
    issuer: Issuer<'_>,
    key_id: &[u8],
    max_len: usize,
    what: &'static str,
) -> Result<Vec<u8>> {
    let u = unsigned(payload, issuer.alg(), key_id);
    let tbs = u.to_be_signed();
    let sig = match issuer {
        Issuer::Ed25519(s) => s.sign(&tbs).to_vec(),
        Issuer::Composite(s) => s.sign(&tbs)?,
    };
    u.finish(sig, max_len, what)
}

/// Parses a tagged COSE_Sign1 of at most `max_len` bytes, without verifying.
pub fn parse(token: &[u8], max_len: usize, what: &'static str) -> Result<CoseSign1> {
    if token.len() > max_len {
        return Err(Error::TooLarge(what));
    }
    CoseSign1::from_tagged_slice(token).map_err(|_| Error::Malformed(what))
}

/// Checks that the algorithm matches the key type (no algorithm confusion), then
/// the signature.
pub fn verify(sign1: &CoseSign1, key: IssuerPublicKey<'_>) -> Result<()> {
    let alg = sign1.protected.header.alg.as_ref();
    let alg_ok = match key {
        IssuerPublicKey::Ed25519(_) => {
            alg == Some(&RegisteredLabelWithPrivate::Assigned(
                iana::Algorithm::EdDSA,
            ))
        }
        IssuerPublicKey::Composite(_) => {
            alg == Some(&RegisteredLabelWithPrivate::PrivateUse(COMPOSITE_ALG))
        }
    };
    if !alg_ok {
        return Err(Error::BadSignature);
    }
    sign1.verify_signature(b"", |sig, data| match key {
        IssuerPublicKey::Ed25519(pk) => ed25519::verify(pk, data, sig),
        IssuerPublicKey::Composite(pk) => composite::verify(pk, data, sig),
    })
}

/// The algorithm a COSE_Sign1 names, for reporting.
pub fn algorithm_name(sign1: &CoseSign1) -> Option<&'static str> {
    match sign1.protected.header.alg.as_ref()? {
        RegisteredLabelWithPrivate::Assigned(a)
            if a.to_i64() == iana::Algorithm::EdDSA.to_i64() =>
        {
            Some("EdDSA")
        }
        RegisteredLabelWithPrivate::PrivateUse(COMPOSITE_ALG) => Some("Ed25519+ML-DSA-65"),
        _ => None,
    }
}
