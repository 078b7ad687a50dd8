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
    seal_with_prefix(
        key,
        &header_prefix(key.algorithm(), key_id, key_version),
        nonce,
        plaintext,
        aad,
    )
}

/// The header bytes before the nonce, which are the same for every envelope of a
/// (key, version).
fn header_prefix(algorithm: Algorithm, key_id: &KeyId, key_version: u32) -> Vec<u8> {
    let mut h = Header {
        algorithm,
        key_id: *key_id,
        key_version,
        body: Body::Single {
            nonce: [0; NONCE_LEN],
        },
    }
    .encode();
    h.truncate(h.len() - NONCE_LEN);
    h
}

#[inline]
fn seal_with_prefix(
    key: &AeadKey,
    prefix: &[u8],
    nonce: [u8; NONCE_LEN],
    plaintext: &[u8],
    aad: &[u8],
) -> Result<Vec<u8>> {
    let header_len = prefix.len() + NONCE_LEN;
    let mut out = Vec::with_capacity(header_len + plaintext.len() + TAG_LEN);
    out.extend_from_slice(prefix);
    out.extend_from_slice(&nonce);
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

/// A key bound to its id and version, with the constant part of the header encoded
/// once: the hot path for callers that seal many envelopes with one key version.
#[derive(Clone)]
pub struct Sealer {
    key: std::sync::Arc<AeadKey>,
    prefix: Vec<u8>,
}

impl Sealer {
    /// A sealer for `key` as `key_id` version `key_version`.
    pub fn new(key: std::sync::Arc<AeadKey>, key_id: &KeyId, key_version: u32) -> Self {
        let prefix = header_prefix(key.algorithm(), key_id, key_version);
        Self { key, prefix }
    }

    /// The key.
    pub fn key(&self) -> &std::sync::Arc<AeadKey> {
        &self.key
    }

    /// Seals like [`seal`]; the caller guarantees `nonce` is unique for this key.
    #[inline]
    pub fn seal(&self, nonce: [u8; NONCE_LEN], plaintext: &[u8], aad: &[u8]) -> Result<Vec<u8>> {
        seal_with_prefix(&self.key, &self.prefix, nonce, plaintext, aad)
    }
}

impl core::fmt::Debug for Sealer {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Sealer")
            .field("header_prefix_len", &self.prefix.len())
            .finish_non_exhaustive()
    }
}

/// The header of a mode-1 envelope whose AEAD is computed outside this crate
/// (a key resident in an HSM): the caller computes `ciphertext ‖ tag` =
/// AEAD(key, `nonce`, associated data `header ‖ aad`, plaintext) there, and the
/// envelope is `header ‖ ciphertext ‖ tag`, exactly as [`seal`] makes it.
pub fn external_header(
    algorithm: Algorithm,
    key_id: &KeyId,
    key_version: u32,
    nonce: [u8; NONCE_LEN],
) -> Vec<u8> {
    Header {
        algorithm,
        key_id: *key_id,
        key_version,
        body: Body::Single { nonce },
    }
    .encode()
}

/// The parts of a mode-1 envelope parsed by [`Header::parse`] that an AEAD
/// outside this crate opens: the nonce, the header bytes (the associated data
/// starts with them) and `ciphertext ‖ tag`.
pub fn external_parts<'a>(
    header: &Header,
    envelope: &'a [u8],
    header_len: usize,
) -> Result<([u8; NONCE_LEN], &'a [u8], &'a [u8])> {
    let Body::Single { nonce } = &header.body else {
        return Err(Error::Malformed("mode (expected single)"));
    };
    let (head, body) = envelope
        .split_at_checked(header_len)
        .ok_or(Error::Truncated)?;
    if body.len() < TAG_LEN {
        return Err(Error::Truncated);
    }
    Ok((*nonce, head, body))
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
