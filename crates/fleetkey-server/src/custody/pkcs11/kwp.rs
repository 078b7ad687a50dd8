//! Wrapping with AES key wrap with padding (RFC 5649, `CKM_AES_KEY_WRAP_PAD`),
//! for tokens without `CKM_AES_GCM`. Key wrap has no associated data, so the
//! wrap context is bound inside what is wrapped: the material is
//! `key ‖ SHA-256("fleetkey custody pkcs11 kwp v1" ‖ context)`, checked in
//! constant time on unwrap. Tokens do key wrap with `C_WrapKey` and
//! `C_UnwrapKey` (SoftHSM2 offers it for nothing else), so the material passes
//! through a session object (not on the token, extractable, destroyed at once).
//!
//! Stored bytes: `0x04 ‖ RFC 5649 output` (72 bytes for a 32-byte key).

use super::token_err;
use crate::error::{Error, Result};
use cryptoki::error::{Error as CkError, RvError};
use cryptoki::mechanism::Mechanism;
use cryptoki::object::{Attribute, AttributeType, KeyType, ObjectClass, ObjectHandle};
use cryptoki::session::Session;
use zeroize::Zeroizing;

/// First byte of a key wrapped with `CKM_AES_KEY_WRAP_PAD`.
pub(super) const WRAP_KWP_V1: u8 = 0x04;
const DOMAIN: &[u8] = b"fleetkey custody pkcs11 kwp v1";
const BINDING_LEN: usize = 32;
/// Longest key accepted (the ML-DSA seed and data keys are 32 bytes).
const MAX_KEY: usize = 64;

fn binding(context: &[u8]) -> aws_lc_rs::digest::Digest {
    let mut d = aws_lc_rs::digest::Context::new(&aws_lc_rs::digest::SHA256);
    d.update(DOMAIN);
    d.update(context);
    d.finish()
}

/// The attributes of the session object the material passes through: a
/// generic secret, not on the token, readable so it can come back out.
fn passing_through() -> Vec<Attribute> {
    vec![
        Attribute::Class(ObjectClass::SECRET_KEY),
        Attribute::KeyType(KeyType::GENERIC_SECRET),
        Attribute::Token(false),
        Attribute::Private(true),
        Attribute::Sensitive(false),
        Attribute::Extractable(true),
    ]
}

/// A session object holding `material`, for the token to wrap.
fn material_object(s: &Session, material: &[u8]) -> Result<ObjectHandle> {
    let mut template = passing_through();
    template.push(Attribute::Value(material.to_vec()));
    s.create_object(&template)
        .map_err(|e| token_err("create a session object to wrap", e))
}

/// Wraps `key` for `context` under `kek` (a key with `CKA_WRAP`).
pub(super) fn wrap(s: &Session, kek: ObjectHandle, key: &[u8], context: &[u8]) -> Result<Vec<u8>> {
    if key.is_empty() || key.len() > MAX_KEY {
        return Err(Error::Internal("kwp: key length".into()));
    }
    let mut material = Zeroizing::new(Vec::with_capacity(key.len() + BINDING_LEN));
    material.extend_from_slice(key);
    material.extend_from_slice(binding(context).as_ref());
    let obj = material_object(s, &material)?;
    let wrapped = s.wrap_key(&Mechanism::AesKeyWrapPad, kek, obj);
    let destroyed = s.destroy_object(obj);
    let wrapped = wrapped.map_err(|e| token_err("wrap (AES key wrap with padding)", e))?;
    destroyed.map_err(|e| token_err("destroy the session object", e))?;
    let mut out = Vec::with_capacity(1 + wrapped.len());
    out.push(WRAP_KWP_V1);
    out.extend_from_slice(&wrapped);
    Ok(out)
}

/// Reverses [`wrap`]; tampering, another context or another key is
/// [`fleetkey_crypto::Error::Open`].
pub(super) fn unwrap(
    s: &Session,
    kek: ObjectHandle,
    wrapped: &[u8],
    context: &[u8],
) -> Result<Zeroizing<Vec<u8>>> {
    let open = || Error::Envelope(fleetkey_crypto::Error::Open);
    let Some((&WRAP_KWP_V1, body)) = wrapped.split_first() else {
        return Err(open());
    };
    // RFC 5649 output: 8-byte blocks, at least two, at most the material padded.
    if body.len() < 16 || body.len() > MAX_KEY + BINDING_LEN + 8 || body.len() % 8 != 0 {
        return Err(open());
    }
    let obj = match s.unwrap_key(&Mechanism::AesKeyWrapPad, kek, body, &passing_through()) {
        Ok(obj) => obj,
        // The integrity check failed: tampered or another key. SoftHSM2 2.6
        // answers CKR_GENERAL_ERROR for it.
        Err(CkError::Pkcs11(
            RvError::WrappedKeyInvalid
            | RvError::WrappedKeyLenRange
            | RvError::EncryptedDataInvalid
            | RvError::EncryptedDataLenRange
            | RvError::GeneralError,
            _,
        )) => return Err(open()),
        Err(e) => return Err(token_err("unwrap (AES key wrap with padding)", e)),
    };
    let attrs = s.get_attributes(obj, &[AttributeType::Value]);
    let destroyed = s.destroy_object(obj);
    let attrs = attrs.map_err(|e| token_err("read the unwrapped material", e))?;
    destroyed.map_err(|e| token_err("destroy the session object", e))?;
    let material = match attrs.into_iter().next() {
        Some(Attribute::Value(v)) => Zeroizing::new(v),
        _ => return Err(open()),
    };
    let Some(split) = material.len().checked_sub(BINDING_LEN).filter(|n| *n > 0) else {
        return Err(open());
    };
    let (key, bound) = material.split_at(split);
    aws_lc_rs::constant_time::verify_slices_are_equal(bound, binding(context).as_ref())
        .map_err(|_| open())?;
    Ok(Zeroizing::new(key.to_vec()))
}
