//! Modes 2 and 3: the STREAM construction (Hoang, Reyhanitabar, Rogaway, Vizár,
//! "Online Authenticated-Encryption and its Nonce-Reuse Misuse-Resistance", 2015).
//!
//! The plaintext is cut into segments of exactly `2^segment_log2` bytes; the last
//! segment is shorter or equal, and empty only when the whole plaintext is empty.
//! Segment `i` is sealed under the per-envelope stream key with nonce
//! `BE88(i) ‖ last` (11-byte big-endian index, then `0x01` for the final segment,
//! `0x00` otherwise) and associated data `SHA-256(header ‖ caller AAD)`.
//! Reordering changes the index, truncation leaves a non-final last segment and
//! appending follows a final one, so all three fail to open.
//!
//! These types are sans-IO: they transform one segment buffer at a time. See
//! [`super::io`] for `Read`/`Write` drivers.

use super::Header;
use crate::{Error, Result, aead::AeadKey, aead::NONCE_LEN, aead::TAG_LEN};
use aws_lc_rs::digest::{SHA256, digest};

/// Ciphertext overhead per segment.
pub const SEGMENT_OVERHEAD: usize = TAG_LEN;

fn segment_nonce(index: u64, last: bool) -> [u8; NONCE_LEN] {
    let mut n = [0u8; NONCE_LEN];
    n[3..11].copy_from_slice(&index.to_be_bytes());
    n[11] = u8::from(last);
    n
}

/// The associated data every segment uses.
pub(crate) fn stream_aad(header: &[u8], aad: &[u8]) -> [u8; 32] {
    let mut buf = Vec::with_capacity(header.len() + aad.len());
    buf.extend_from_slice(header);
    buf.extend_from_slice(aad);
    let d = digest(&SHA256, &buf);
    let mut out = [0u8; 32];
    out.copy_from_slice(d.as_ref());
    out
}

/// Segment layout shared by sealer and opener.
struct Segments {
    key: AeadKey,
    aad: [u8; 32],
    segment_len: usize,
    index: u64,
    done: bool,
    /// Sticky failure: once set, every later call returns it.
    failed: Option<Error>,
}

impl Segments {
    fn new(key: AeadKey, header: &Header, header_bytes: &[u8], aad: &[u8]) -> Result<Self> {
        let segment_log2 = segment_log2_of(header)?;
        Ok(Self {
            key,
            aad: stream_aad(header_bytes, aad),
            segment_len: 1usize << segment_log2,
            index: 0,
            done: false,
            failed: None,
        })
    }

    fn next_index(&mut self) -> Result<u64> {
        if let Some(e) = &self.failed {
            return Err(e.clone());
        }
        if self.done {
            return Err(Error::TrailingData);
        }
        let i = self.index;
        self.index = self.index.checked_add(1).ok_or(Error::TooLarge("stream"))?;
        Ok(i)
    }
}

/// Seals a stream one segment at a time.
pub struct StreamSealer(Segments);

impl StreamSealer {
    /// A sealer for the already-encoded `header` with stream key `key`.
    pub(crate) fn new(
        key: AeadKey,
        header: &Header,
        header_bytes: &[u8],
        aad: &[u8],
    ) -> Result<Self> {
        Segments::new(key, header, header_bytes, aad).map(Self)
    }

    /// Plaintext bytes per full segment.
    pub fn segment_len(&self) -> usize {
        self.0.segment_len
    }

    /// Encrypts `segment` in place and appends its tag. A non-final segment must be
    /// exactly [`Self::segment_len`] bytes; the final one at most that, and empty
    /// only if it is also the first.
    pub fn seal_segment(&mut self, segment: &mut Vec<u8>, last: bool) -> Result<()> {
        let s = &mut self.0;
        let ok_len = if last {
            segment.len() <= s.segment_len && (!segment.is_empty() || s.index == 0)
        } else {
            segment.len() == s.segment_len
        };
        let i = s.next_index()?;
        if !ok_len {
            let e = Error::Malformed("segment length");
            s.failed = Some(e.clone());
            return Err(e);
        }
        if let Err(e) = s
            .key
            .seal_in_place(&segment_nonce(i, last), &s.aad, segment)
        {
            s.failed = Some(e.clone());
            return Err(e);
        }
        s.done = last;
        Ok(())
    }

    /// Whether the final segment has been sealed.
    pub fn is_finished(&self) -> bool {
        self.0.done
    }
}

/// Opens a stream one segment at a time.
pub struct StreamOpener(Segments);

impl StreamOpener {
    pub(crate) fn new(
        key: AeadKey,
        header: &Header,
        header_bytes: &[u8],
        aad: &[u8],
    ) -> Result<Self> {
        Segments::new(key, header, header_bytes, aad).map(Self)
    }

    /// Ciphertext bytes per full segment (plaintext plus tag).
    pub fn sealed_segment_len(&self) -> usize {
        self.0.segment_len + SEGMENT_OVERHEAD
    }

    /// Opens one sealed segment from `input` into `out` (resized to the plaintext).
    /// `last` says whether the input ended after this segment.
    ///
    /// Errors: [`Error::Truncated`] when the stream ends before its final segment,
    /// [`Error::TrailingData`] when data follows the final segment, [`Error::Open`]
    /// for anything else that fails authentication.
    pub fn open_segment(&mut self, input: &[u8], last: bool, out: &mut Vec<u8>) -> Result<()> {
        let s = &mut self.0;
        let full = s.segment_len + SEGMENT_OVERHEAD;
        let i = s.next_index()?;
        let bad_len = if input.len() < TAG_LEN {
            Some(Error::Truncated)
        } else if input.len() > full || (!last && input.len() != full) {
            Some(Error::Open)
        } else if last && input.len() == TAG_LEN && i != 0 {
            // An empty final segment is only valid as the whole (empty) stream.
            Some(Error::Open)
        } else {
            None
        };
        if let Some(e) = bad_len {
            s.failed = Some(e.clone());
            return Err(e);
        }
        out.resize(input.len() - TAG_LEN, 0);
        match s.key.open_to(&segment_nonce(i, last), &s.aad, input, out) {
            Ok(()) => {
                s.done = last;
                Ok(())
            }
            Err(_) => {
                // Diagnose without weakening anything: the key holder learns whether
                // this was a valid segment in the wrong position.
                let flipped = s
                    .key
                    .open_to(&segment_nonce(i, !last), &s.aad, input, out)
                    .is_ok();
                zeroize::Zeroize::zeroize(out.as_mut_slice());
                out.clear();
                let e = match (flipped, last) {
                    (true, true) => Error::Truncated,
                    (true, false) => Error::TrailingData,
                    _ => Error::Open,
                };
                s.failed = Some(e.clone());
                Err(e)
            }
        }
    }

    /// Whether the final segment has been opened.
    pub fn is_finished(&self) -> bool {
        self.0.done
    }
}

fn segment_log2_of(header: &Header) -> Result<u8> {
    match header.body {
        super::Body::Stream { segment_log2, .. }
        | super::Body::Recipient { segment_log2, .. }
        | super::Body::Wrapped { segment_log2, .. } => {
            if super::SEGMENT_LOG2_RANGE.contains(&segment_log2) {
                Ok(segment_log2)
            } else {
                Err(Error::Malformed("segment size"))
            }
        }
        super::Body::Single { .. } => Err(Error::Malformed("mode (expected a stream)")),
    }
}

/// HKDF-SHA256 `info` for the mode-2 stream key.
pub const STREAM_KEY_INFO: &[u8] = b"fleetkey fk1 stream key";

fn derive_stream_key(key: &AeadKey, salt: &[u8; super::SALT_LEN]) -> Result<AeadKey> {
    let mut k = [0u8; crate::aead::KEY_LEN];
    crate::hkdf::hkdf_sha256(salt, key.expose_secret(), STREAM_KEY_INFO, &mut k)?;
    let key = AeadKey::new(key.algorithm(), crate::secret::SecretBytes::new(k));
    zeroize::Zeroize::zeroize(&mut k);
    key
}

/// Starts a mode-2 (symmetric stream) envelope with a fresh random salt.
/// Returns the header bytes to write first, and the sealer for the body.
pub fn seal_symmetric(
    key: &AeadKey,
    key_id: &super::KeyId,
    key_version: u32,
    segment_log2: u8,
    aad: &[u8],
) -> Result<(Vec<u8>, StreamSealer)> {
    seal_symmetric_with_salt(
        key,
        key_id,
        key_version,
        segment_log2,
        crate::rand::array()?,
        aad,
    )
}

/// [`seal_symmetric`] with a caller-chosen salt: for golden vectors only. Reusing a
/// salt with the same key reuses the stream key and its nonces.
pub fn seal_symmetric_with_salt(
    key: &AeadKey,
    key_id: &super::KeyId,
    key_version: u32,
    segment_log2: u8,
    salt: [u8; super::SALT_LEN],
    aad: &[u8],
) -> Result<(Vec<u8>, StreamSealer)> {
    let header = Header {
        algorithm: key.algorithm(),
        key_id: *key_id,
        key_version,
        body: super::Body::Stream { segment_log2, salt },
    };
    let bytes = header.encode();
    let sealer = StreamSealer::new(derive_stream_key(key, &salt)?, &header, &bytes, aad)?;
    Ok((bytes, sealer))
}

/// Starts a mode-4 envelope: a stream under `data_key` (fresh random salt), with
/// `wrapped` — the data key as a keyring sealed it — in the header, naming the
/// keyring `key_id` version `key_version`.
pub fn seal_wrapped(
    data_key: &AeadKey,
    key_id: &super::KeyId,
    key_version: u32,
    segment_log2: u8,
    wrapped: Vec<u8>,
    aad: &[u8],
) -> Result<(Vec<u8>, StreamSealer)> {
    let salt = crate::rand::array()?;
    seal_wrapped_with_salt(
        data_key,
        key_id,
        key_version,
        segment_log2,
        salt,
        wrapped,
        aad,
    )
}

/// [`seal_wrapped`] with a caller-chosen salt: for golden vectors only.
pub fn seal_wrapped_with_salt(
    data_key: &AeadKey,
    key_id: &super::KeyId,
    key_version: u32,
    segment_log2: u8,
    salt: [u8; super::SALT_LEN],
    wrapped: Vec<u8>,
    aad: &[u8],
) -> Result<(Vec<u8>, StreamSealer)> {
    if !(1..=super::MAX_WRAPPED_KEY_LEN).contains(&wrapped.len()) {
        return Err(Error::Malformed("wrapped key length"));
    }
    let header = Header {
        algorithm: data_key.algorithm(),
        key_id: *key_id,
        key_version,
        body: super::Body::Wrapped {
            segment_log2,
            salt,
            wrapped,
        },
    };
    let bytes = header.encode();
    let sealer = StreamSealer::new(derive_stream_key(data_key, &salt)?, &header, &bytes, aad)?;
    Ok((bytes, sealer))
}

/// Opens the body of a mode-2 envelope (or a mode-4 one, with its unwrapped data
/// key) whose header was parsed from `header_bytes`.
pub fn open_symmetric(
    key: &AeadKey,
    header: &Header,
    header_bytes: &[u8],
    aad: &[u8],
) -> Result<StreamOpener> {
    let (super::Body::Stream { salt, .. } | super::Body::Wrapped { salt, .. }) = &header.body
    else {
        return Err(Error::Malformed("mode (expected stream)"));
    };
    if header.algorithm != key.algorithm() {
        return Err(Error::Open);
    }
    StreamOpener::new(derive_stream_key(key, salt)?, header, header_bytes, aad)
}
