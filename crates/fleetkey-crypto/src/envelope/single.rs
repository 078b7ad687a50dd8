//! Mode 1: one AEAD message under a caller-supplied nonce.
//!
//! The caller owns nonce uniqueness (the key service allocates `instance id ‖
//! counter` nonces durably). The associated data is `header ‖ caller AAD`.

use super::{Body, BodyRef, Header, HeaderRef, KeyId};
use crate::{Error, Result, aead::AeadKey, aead::Algorithm, aead::NONCE_LEN, aead::TAG_LEN};

/// Seals `plaintext` into a mode-1 envelope.
pub fn seal(
    key: &AeadKey,
    key_id: &KeyId,
    key_version: u32,
    nonce: [u8; NONCE_LEN],
    plaintext: &[u8],
    aad: &[u8],
) -> Result<Vec<u8>> {
    let header = Header {
        algorithm: key.algorithm(),
        key_id: *key_id,
        key_version,
        body: Body::Single { nonce },
    };
    let mut out =
        Vec::with_capacity(16 + key_id.as_str().len() + NONCE_LEN + plaintext.len() + TAG_LEN);
    header.encode_into(&mut out);
    let header_len = out.len();
    out.extend_from_slice(plaintext);
    let (head, body) = out.split_at_mut(header_len);
    let tag = if aad.is_empty() {
        key.seal_detached(&nonce, head, body)?
    } else {
        key.seal_detached(&nonce, &[&*head, aad].concat(), body)?
    };
    out.extend_from_slice(&tag);
    Ok(out)
}

/// Opens a mode-1 envelope whose header was already parsed by [`Header::parse`]
/// (callers parse first to pick the key by id and version).
pub fn open_parsed(
    key: &AeadKey,
    header: &Header,
    envelope: &[u8],
    header_len: usize,
    aad: &[u8],
) -> Result<Vec<u8>> {
    let Body::Single { nonce } = &header.body else {
        return Err(Error::Malformed("mode (expected single)"));
    };
    open_body(key, header.algorithm, nonce, envelope, header_len, aad)
}

/// Parses and opens a mode-1 envelope. The caller is responsible for having picked
/// the right key (see [`Header::parse`] for the key id and version).
pub fn open(key: &AeadKey, envelope: &[u8], aad: &[u8]) -> Result<Vec<u8>> {
    let h = HeaderRef::parse(envelope)?;
    let BodyRef::Single { nonce } = &h.body else {
        return Err(Error::Malformed("mode (expected single)"));
    };
    open_body(key, h.algorithm, nonce, envelope, h.len, aad)
}

#[inline]
fn open_body(
    key: &AeadKey,
    algorithm: Algorithm,
    nonce: &[u8; NONCE_LEN],
    envelope: &[u8],
    header_len: usize,
    aad: &[u8],
) -> Result<Vec<u8>> {
    if algorithm != key.algorithm() {
        return Err(Error::Open);
    }
    let (head, body) = envelope
        .split_at_checked(header_len)
        .ok_or(Error::Truncated)?;
    if body.len() < TAG_LEN {
        return Err(Error::Truncated);
    }
    // Copy, then open in place: aws-lc's in-place path is its fastest.
    let mut out = body.to_vec();
    let result = if aad.is_empty() {
        key.open_in_place(nonce, head, &mut out).map(|p| p.len())
    } else {
        key.open_in_place(nonce, &[head, aad].concat(), &mut out)
            .map(|p| p.len())
    };
    match result {
        Ok(len) => {
            out.truncate(len);
            Ok(out)
        }
        Err(e) => {
            zeroize::Zeroize::zeroize(&mut out);
            Err(e)
        }
    }
}
