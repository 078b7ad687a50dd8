//! The `fk1` sealed envelope format.
//!
//! One module per concern, one definition of the layout: this module parses and
//! encodes the header; [`single`] seals one message with a caller-chosen nonce;
//! [`stream`] seals any size in fixed segments (STREAM construction); [`recipient`]
//! seals to an X-Wing public key; [`armor`] is the `fk1:` text form. The normative
//! specification is `docs/formats.md` ("The fk1 envelope").
//!
//! Every header byte is authenticated: single-shot envelopes use
//! `header ‖ caller AAD` as AEAD associated data; streams use
//! `SHA-256(header ‖ caller AAD)` for every segment. The caller's AAD is never stored.

pub mod armor;
pub mod context;
pub mod io;
pub mod recipient;
pub mod single;
pub mod stream;

use crate::{Error, Result, aead::Algorithm, aead::NONCE_LEN, hpke};
use core::fmt;

/// The four magic bytes that start every binary envelope: ASCII `fken`.
pub const MAGIC: [u8; 4] = *b"fken";
/// The format version this build writes and reads.
pub const VERSION: u8 = 1;
/// Longest key id, in bytes.
pub const MAX_KEY_ID_LEN: usize = 64;
/// Length of the stream salt.
pub const SALT_LEN: usize = 32;
/// Smallest and largest accepted stream segment sizes, as powers of two.
pub const SEGMENT_LOG2_RANGE: core::ops::RangeInclusive<u8> = 10..=20;
/// Default stream segment size: 64 KiB.
pub const DEFAULT_SEGMENT_LOG2: u8 = 16;
/// The longest header any valid envelope can have (a recipient header).
pub const MAX_HEADER_LEN: usize = 8 + MAX_KEY_ID_LEN + 4 + 1 + 6 + hpke::ENC_LEN;
/// Longest wrapped data key a mode-4 header carries.
pub const MAX_WRAPPED_KEY_LEN: usize = 1024;
const _: () =
    assert!(8 + MAX_KEY_ID_LEN + 4 + 1 + SALT_LEN + 2 + MAX_WRAPPED_KEY_LEN <= MAX_HEADER_LEN);

/// What follows the common header fields; the wire `mode` byte.
#[derive(Clone, PartialEq, Eq)]
pub enum Body {
    /// Mode 1: one AEAD message with an explicit nonce.
    Single {
        /// The AEAD nonce.
        nonce: [u8; NONCE_LEN],
    },
    /// Mode 2: a segmented stream under a key derived from the symmetric key and a salt.
    Stream {
        /// log2 of the plaintext segment size.
        segment_log2: u8,
        /// Random per-envelope salt for the stream key derivation.
        salt: [u8; SALT_LEN],
    },
    /// Mode 3: a segmented stream under a key exported from HPKE (X-Wing).
    Recipient {
        /// log2 of the plaintext segment size.
        segment_log2: u8,
        /// The X-Wing encapsulated key (1120 bytes).
        enc: Vec<u8>,
    },
    /// Mode 4: a mode-2 stream under a data key that travels wrapped in the header
    /// (sealed by a keyring; opaque to this format).
    Wrapped {
        /// log2 of the plaintext segment size.
        segment_log2: u8,
        /// Random per-envelope salt for the stream key derivation.
        salt: [u8; SALT_LEN],
        /// The wrapped data key (1 to [`MAX_WRAPPED_KEY_LEN`] bytes).
        wrapped: Vec<u8>,
    },
}

impl Body {
    /// The wire mode byte.
    pub fn mode(&self) -> u8 {
        match self {
            Body::Single { .. } => 1,
            Body::Stream { .. } => 2,
            Body::Recipient { .. } => 3,
            Body::Wrapped { .. } => 4,
        }
    }

    /// The mode's name in JSON output.
    pub fn mode_name(&self) -> &'static str {
        match self {
            Body::Single { .. } => "single",
            Body::Stream { .. } => "stream",
            Body::Recipient { .. } => "recipient",
            Body::Wrapped { .. } => "wrapped",
        }
    }
}

impl fmt::Debug for Body {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Body::Single { nonce } => f
                .debug_struct("Single")
                .field("nonce", &hex::encode(nonce))
                .finish(),
            Body::Stream { segment_log2, salt } => f
                .debug_struct("Stream")
                .field("segment_log2", segment_log2)
                .field("salt", &hex::encode(salt))
                .finish(),
            Body::Recipient { segment_log2, enc } => f
                .debug_struct("Recipient")
                .field("segment_log2", segment_log2)
                .field("enc_len", &enc.len())
                .finish(),
            Body::Wrapped {
                segment_log2,
                salt,
                wrapped,
            } => f
                .debug_struct("Wrapped")
                .field("segment_log2", segment_log2)
                .field("salt", &hex::encode(salt))
                .field("wrapped_len", &wrapped.len())
                .finish(),
        }
    }
}

/// The name of the key an envelope was sealed with: 1 to 64 bytes of
/// `A-Z a-z 0-9 . _ - : / @ +`. Stored inline, so parsing a header never allocates
/// for it.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct KeyId {
    len: u8,
    bytes: [u8; MAX_KEY_ID_LEN],
}

/// Which bytes may appear in a key id.
const KEY_ID_CHARS: [bool; 256] = {
    let mut t = [false; 256];
    let mut c = 0;
    while c < 256 {
        #[allow(clippy::cast_possible_truncation, reason = "c < 256")]
        let b = c as u8;
        t[c] = b.is_ascii_alphanumeric()
            || matches!(b, b'.' | b'_' | b'-' | b':' | b'/' | b'@' | b'+');
        c += 1;
    }
    t
};

fn validate_key_id(id: &[u8]) -> Result<()> {
    if id.is_empty()
        || id.len() > MAX_KEY_ID_LEN
        || !id.iter().all(|&c| KEY_ID_CHARS[usize::from(c)])
    {
        return Err(Error::Malformed("key id"));
    }
    Ok(())
}

impl KeyId {
    /// Validates a key id.
    pub fn new(id: &str) -> Result<Self> {
        Self::from_bytes(id.as_bytes())
    }

    #[inline]
    fn from_bytes(id: &[u8]) -> Result<Self> {
        validate_key_id(id)?;
        let mut bytes = [0u8; MAX_KEY_ID_LEN];
        bytes[..id.len()].copy_from_slice(id);
        Ok(Self {
            len: u8::try_from(id.len()).map_err(|_| Error::Malformed("key id length"))?,
            bytes,
        })
    }

    /// The id's bytes (ASCII).
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes[..usize::from(self.len)]
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        // Validated ASCII on construction, so this never falls back.
        core::str::from_utf8(self.as_bytes()).unwrap_or("")
    }
}

impl fmt::Display for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Debug for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "KeyId({:?})", self.as_str())
    }
}

/// A parsed envelope header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    /// The AEAD used for the body.
    pub algorithm: Algorithm,
    /// Which key sealed it.
    pub key_id: KeyId,
    /// Which version of that key.
    pub key_version: u32,
    /// Mode-specific fields.
    pub body: Body,
}

/// A bounds-checked reader over untrusted bytes.
struct Cursor<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        let end = self.pos.checked_add(n).ok_or(Error::Truncated)?;
        let out = self.buf.get(self.pos..end).ok_or(Error::Truncated)?;
        self.pos = end;
        Ok(out)
    }
    fn u8(&mut self) -> Result<u8> {
        Ok(self.take(1)?[0])
    }
    fn u16(&mut self) -> Result<u16> {
        let b = self.take(2)?;
        Ok(u16::from_be_bytes([b[0], b[1]]))
    }
    fn u32(&mut self) -> Result<u32> {
        let b = self.take(4)?;
        Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }
    fn array<const N: usize>(&mut self) -> Result<[u8; N]> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N)?);
        Ok(out)
    }
}

fn segment_log2(v: u8) -> Result<u8> {
    if SEGMENT_LOG2_RANGE.contains(&v) {
        Ok(v)
    } else {
        Err(Error::Malformed("segment size"))
    }
}

/// A header parsed without copying anything: borrowed from the envelope bytes.
/// [`Header::parse`] is this plus owned copies; the hot single-shot open path uses
/// it directly. This is the one place the header layout is read.
pub(crate) struct HeaderRef<'a> {
    pub algorithm: Algorithm,
    pub key_id: &'a [u8],
    pub key_version: u32,
    pub body: BodyRef<'a>,
    /// Header length in bytes.
    pub len: usize,
}

pub(crate) enum BodyRef<'a> {
    Single {
        nonce: [u8; NONCE_LEN],
    },
    Stream {
        segment_log2: u8,
        salt: [u8; SALT_LEN],
    },
    Recipient {
        segment_log2: u8,
        enc: &'a [u8],
    },
    Wrapped {
        segment_log2: u8,
        salt: [u8; SALT_LEN],
        wrapped: &'a [u8],
    },
}

impl<'a> HeaderRef<'a> {
    #[inline]
    pub(crate) fn parse(bytes: &'a [u8]) -> Result<Self> {
        let mut c = Cursor { buf: bytes, pos: 0 };
        let magic = c.take(MAGIC.len()).map_err(|_| {
            if MAGIC.starts_with(bytes) && !bytes.is_empty() {
                Error::Truncated
            } else {
                Error::NotAnEnvelope
            }
        })?;
        if magic != MAGIC {
            return Err(Error::NotAnEnvelope);
        }
        let version = c.u8()?;
        if version != VERSION {
            return Err(Error::UnsupportedVersion(version));
        }
        let mode = c.u8()?;
        if !(1..=4).contains(&mode) {
            return Err(Error::UnknownId {
                what: "mode",
                id: mode.into(),
            });
        }
        let algorithm = Algorithm::from_id(c.u8()?)?;
        let kid_len = usize::from(c.u8()?);
        let key_id = c.take(kid_len)?;
        validate_key_id(key_id)?;
        let key_version = c.u32()?;
        let body = match mode {
            1 => BodyRef::Single { nonce: c.array()? },
            2 => BodyRef::Stream {
                segment_log2: segment_log2(c.u8()?)?,
                salt: c.array()?,
            },
            4 => {
                let segment_log2 = segment_log2(c.u8()?)?;
                let salt = c.array()?;
                let n = usize::from(c.u16()?);
                if !(1..=MAX_WRAPPED_KEY_LEN).contains(&n) {
                    return Err(Error::Malformed("wrapped key length"));
                }
                BodyRef::Wrapped {
                    segment_log2,
                    salt,
                    wrapped: c.take(n)?,
                }
            }
            _ => {
                let segment_log2 = segment_log2(c.u8()?)?;
                let kem = c.u16()?;
                if kem != hpke::KEM_ID {
                    return Err(Error::UnknownId {
                        what: "kem",
                        id: kem,
                    });
                }
                let kdf = c.u16()?;
                if kdf != hpke::KDF_ID {
                    return Err(Error::UnknownId {
                        what: "kdf",
                        id: kdf,
                    });
                }
                let enc_len = usize::from(c.u16()?);
                if enc_len != hpke::ENC_LEN {
                    return Err(Error::Malformed("encapsulated key length"));
                }
                BodyRef::Recipient {
                    segment_log2,
                    enc: c.take(enc_len)?,
                }
            }
        };
        Ok(HeaderRef {
            algorithm,
            key_id,
            key_version,
            body,
            len: c.pos,
        })
    }
}

impl Header {
    /// Parses the header at the start of `bytes`; returns it and its length.
    ///
    /// Refuses anything that is not exactly a header this version writes: wrong
    /// magic ([`Error::NotAnEnvelope`]), other versions, unknown ids, out-of-range
    /// fields, and input that ends early ([`Error::Truncated`]).
    pub fn parse(bytes: &[u8]) -> Result<(Header, usize)> {
        let h = HeaderRef::parse(bytes)?;
        let body = match h.body {
            BodyRef::Single { nonce } => Body::Single { nonce },
            BodyRef::Stream { segment_log2, salt } => Body::Stream { segment_log2, salt },
            BodyRef::Recipient { segment_log2, enc } => Body::Recipient {
                segment_log2,
                enc: enc.to_vec(),
            },
            BodyRef::Wrapped {
                segment_log2,
                salt,
                wrapped,
            } => Body::Wrapped {
                segment_log2,
                salt,
                wrapped: wrapped.to_vec(),
            },
        };
        Ok((
            Header {
                algorithm: h.algorithm,
                key_id: KeyId::from_bytes(h.key_id)?,
                key_version: h.key_version,
                body,
            },
            h.len,
        ))
    }

    /// Appends the encoding to `out`.
    pub fn encode_into(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&MAGIC);
        out.push(VERSION);
        out.push(self.body.mode());
        out.push(self.algorithm.id());
        // KeyId guarantees 1..=64 bytes.
        out.push(self.key_id.len);
        out.extend_from_slice(self.key_id.as_bytes());
        out.extend_from_slice(&self.key_version.to_be_bytes());
        match &self.body {
            Body::Single { nonce } => out.extend_from_slice(nonce),
            Body::Stream { segment_log2, salt } => {
                out.push(*segment_log2);
                out.extend_from_slice(salt);
            }
            Body::Recipient { segment_log2, enc } => {
                out.push(*segment_log2);
                out.extend_from_slice(&hpke::KEM_ID.to_be_bytes());
                out.extend_from_slice(&hpke::KDF_ID.to_be_bytes());
                // enc is always ENC_LEN (1120) bytes for X-Wing; decoding refuses any
                // other length, so the field is the constant.
                debug_assert_eq!(enc.len(), hpke::ENC_LEN);
                out.extend_from_slice(&hpke::ENC_LEN_WIRE.to_be_bytes());
                out.extend_from_slice(enc);
            }
            Body::Wrapped {
                segment_log2,
                salt,
                wrapped,
            } => {
                out.push(*segment_log2);
                out.extend_from_slice(salt);
                // Bounded by the sealer (seal_wrapped) and the parser.
                debug_assert!((1..=MAX_WRAPPED_KEY_LEN).contains(&wrapped.len()));
                let n = u16::try_from(wrapped.len()).unwrap_or(u16::MAX);
                out.extend_from_slice(&n.to_be_bytes());
                out.extend_from_slice(wrapped);
            }
        }
    }

    /// The encoding.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(64);
        self.encode_into(&mut out);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(body: Body) -> Header {
        Header {
            algorithm: Algorithm::ChaCha20Poly1305,
            key_id: KeyId::new("payments").unwrap(),
            key_version: 7,
            body,
        }
    }

    #[test]
    fn headers_round_trip() {
        for body in [
            Body::Single { nonce: [9; 12] },
            Body::Stream {
                segment_log2: 16,
                salt: [3; 32],
            },
            Body::Recipient {
                segment_log2: 12,
                enc: vec![5; hpke::ENC_LEN],
            },
        ] {
            let h = sample(body);
            let enc = h.encode();
            assert!(enc.len() <= MAX_HEADER_LEN);
            let (p, n) = Header::parse(&enc).unwrap();
            assert_eq!((p, n), (h, enc.len()));
        }
    }

    #[test]
    fn refusals_name_the_problem() {
        let enc = sample(Body::Single { nonce: [0; 12] }).encode();
        assert_eq!(Header::parse(b"hello world"), Err(Error::NotAnEnvelope));
        assert_eq!(Header::parse(b""), Err(Error::NotAnEnvelope));
        assert_eq!(Header::parse(b"fk"), Err(Error::Truncated));
        let mut v = enc.clone();
        v[4] = 2;
        assert_eq!(Header::parse(&v), Err(Error::UnsupportedVersion(2)));
        let mut v = enc.clone();
        v[5] = 9;
        assert!(matches!(
            Header::parse(&v),
            Err(Error::UnknownId { what: "mode", .. })
        ));
        let mut v = enc.clone();
        v[6] = 0;
        assert!(matches!(
            Header::parse(&v),
            Err(Error::UnknownId {
                what: "algorithm",
                ..
            })
        ));
        let mut v = enc.clone();
        v[7] = 0;
        assert_eq!(Header::parse(&v), Err(Error::Malformed("key id")));
        for cut in 0..enc.len() {
            assert!(Header::parse(&enc[..cut]).is_err(), "cut {cut}");
        }
    }

    #[test]
    fn key_ids_are_validated() {
        assert!(KeyId::new("a").is_ok());
        assert!(KeyId::new(&"a".repeat(64)).is_ok());
        assert!(KeyId::new(&"a".repeat(65)).is_err());
        assert!(KeyId::new("").is_err());
        assert!(KeyId::new("has space").is_err());
        assert!(KeyId::new("ünï").is_err());
    }
}
