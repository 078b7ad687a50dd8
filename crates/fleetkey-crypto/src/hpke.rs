//! Sealing to a public key: HPKE (RFC 9180) base mode with the X-Wing KEM
//! (X25519 + ML-KEM-768, draft-connolly-cfrg-xwing-kem), via the `hpke` crate.
//!
//! The suite is KEM 0x647a (X-Wing), KDF 0x0001 (HKDF-SHA256), AEAD 0xFFFF
//! (export-only): fleetkey uses the HPKE context only to export a 32-byte key for
//! the `fk1` stream body, so one recipient format covers inputs of any size.

use crate::{Error, Result, secret::SecretBytes};
use core::fmt;
use hpke::{
    Deserializable, Kem as _, OpModeR, OpModeS, Serializable, aead::ExportOnlyAead,
    kdf::HkdfSha256, kem::XWing,
};

/// The `rand_core` version the `hpke` crate takes, for deterministic encapsulation
/// in known-answer tests.
pub use ::hpke::rand_core;

/// HPKE KEM id of X-Wing.
pub const KEM_ID: u16 = 0x647a;
/// HPKE KDF id of HKDF-SHA256.
pub const KDF_ID: u16 = 0x0001;
/// HPKE AEAD id of export-only.
pub const AEAD_ID: u16 = 0xFFFF;
/// X-Wing public key length.
pub const PUBLIC_KEY_LEN: usize = 1216;
/// X-Wing encapsulated key length.
pub const ENC_LEN: usize = ENC_LEN_WIRE as usize;
/// [`ENC_LEN`] as the envelope's 16-bit length field.
pub const ENC_LEN_WIRE: u16 = 1120;
/// X-Wing private key (seed) length.
pub const SECRET_KEY_LEN: usize = 32;

/// An X-Wing recipient identity (the private side), stored as its 32-byte seed.
pub struct XWingIdentity {
    seed: SecretBytes<SECRET_KEY_LEN>,
    sk: <XWing as hpke::Kem>::PrivateKey,
}

impl XWingIdentity {
    /// A fresh identity.
    pub fn generate() -> Result<Self> {
        Self::from_seed(SecretBytes::random()?)
    }

    /// The identity for a 32-byte X-Wing secret key (the draft's seed form).
    pub fn from_seed(seed: SecretBytes<SECRET_KEY_LEN>) -> Result<Self> {
        let sk = <XWing as hpke::Kem>::PrivateKey::from_bytes(seed.expose_secret())
            .map_err(|_| Error::InvalidKey("x-wing secret key"))?;
        Ok(Self { seed, sk })
    }

    /// The seed, for storage.
    pub fn expose_secret(&self) -> &[u8; SECRET_KEY_LEN] {
        self.seed.expose_secret()
    }

    /// The public recipient.
    pub fn recipient(&self) -> XWingRecipient {
        XWingRecipient(XWing::sk_to_pk(&self.sk))
    }

    /// Receiver side of [`XWingRecipient::export_key`]: recovers the exported key
    /// from the encapsulated key `enc`.
    pub fn export_key(
        &self,
        enc: &[u8],
        info: &[u8],
        exporter_context: &[u8],
    ) -> Result<SecretBytes<32>> {
        if enc.len() != ENC_LEN {
            return Err(Error::Malformed("x-wing encapsulated key length"));
        }
        let enc = <XWing as hpke::Kem>::EncappedKey::from_bytes(enc)
            .map_err(|_| Error::Malformed("x-wing encapsulated key"))?;
        let ctx = hpke::setup_receiver::<ExportOnlyAead, HkdfSha256, XWing>(
            &OpModeR::Base,
            &self.sk,
            &enc,
            info,
        )
        .map_err(|_| Error::Open)?;
        let mut out = [0u8; 32];
        ctx.export(exporter_context, &mut out)
            .map_err(|_| Error::Provider)?;
        Ok(SecretBytes::new(out))
    }
}

impl fmt::Debug for XWingIdentity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("XWingIdentity(redacted)")
    }
}

/// An X-Wing public key that envelopes can be sealed to.
#[derive(Clone, PartialEq, Eq)]
pub struct XWingRecipient(<XWing as hpke::Kem>::PublicKey);

impl XWingRecipient {
    /// Parses a 1216-byte X-Wing public key.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self> {
        if bytes.len() != PUBLIC_KEY_LEN {
            return Err(Error::InvalidKey("x-wing public key length"));
        }
        <XWing as hpke::Kem>::PublicKey::from_bytes(bytes)
            .map(Self)
            .map_err(|_| Error::InvalidKey("x-wing public key"))
    }

    /// The 1216-byte encoding.
    pub fn to_bytes(&self) -> Vec<u8> {
        self.0.to_bytes().to_vec()
    }

    /// Sender side: a fresh encapsulation and a 32-byte key exported from the HPKE
    /// context (RFC 9180 §5.3). Returns (enc, key).
    pub fn export_key(
        &self,
        info: &[u8],
        exporter_context: &[u8],
    ) -> Result<(Vec<u8>, SecretBytes<32>)> {
        let (enc, ctx) =
            hpke::setup_sender::<ExportOnlyAead, HkdfSha256, XWing>(&OpModeS::Base, &self.0, info)
                .map_err(|_| Error::Provider)?;
        let mut out = [0u8; 32];
        ctx.export(exporter_context, &mut out)
            .map_err(|_| Error::Provider)?;
        Ok((enc.to_bytes().to_vec(), SecretBytes::new(out)))
    }

    /// [`Self::export_key`] drawing the encapsulation randomness from `rng`: for
    /// known-answer tests only. A predictable `rng` makes the key predictable.
    pub fn export_key_with_rng(
        &self,
        info: &[u8],
        exporter_context: &[u8],
        rng: &mut impl rand_core::CryptoRng,
    ) -> Result<(Vec<u8>, SecretBytes<32>)> {
        let (enc, ctx) = hpke::setup_sender_with_rng::<ExportOnlyAead, HkdfSha256, XWing>(
            &OpModeS::Base,
            &self.0,
            info,
            rng,
        )
        .map_err(|_| Error::Provider)?;
        let mut out = [0u8; 32];
        ctx.export(exporter_context, &mut out)
            .map_err(|_| Error::Provider)?;
        Ok((enc.to_bytes().to_vec(), SecretBytes::new(out)))
    }
}

impl fmt::Debug for XWingRecipient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("XWingRecipient")
            .field(&crate::hex_prefix(&self.to_bytes()))
            .finish()
    }
}
