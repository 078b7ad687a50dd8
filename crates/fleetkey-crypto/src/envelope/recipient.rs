//! Mode 3: a stream sealed to an X-Wing public key.
//!
//! The sender runs HPKE base mode (RFC 9180 §5.1.1) with KEM X-Wing, KDF HKDF-SHA256
//! and the export-only AEAD, `info = "fleetkey fk1 recipient"`, then exports 32 bytes
//! with exporter context `"fleetkey fk1 stream key"` as the stream key. The
//! encapsulated key travels in the header; the body is the mode-2 segment layout.

use super::{Body, Header, KeyId, stream::StreamOpener, stream::StreamSealer};
use crate::{
    Error, Result,
    aead::{AeadKey, Algorithm},
    hpke::{XWingIdentity, XWingRecipient},
};

/// HPKE `info` for mode 3.
pub const HPKE_INFO: &[u8] = b"fleetkey fk1 recipient";
/// HPKE exporter context for the stream key.
pub const EXPORTER_CONTEXT: &[u8] = super::stream::STREAM_KEY_INFO;

/// The key id fleetkey gives a recipient: `xwing-` and 16 hex digits of
/// `SHA-256("fleetkey recipient id" ‖ public key)`.
pub fn recipient_key_id(recipient: &XWingRecipient) -> KeyId {
    let mut buf = b"fleetkey recipient id".to_vec();
    buf.extend_from_slice(&recipient.to_bytes());
    let d = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, &buf);
    // Always valid: ASCII letters, '-' and hex digits, 22 bytes.
    KeyId::new(&format!("xwing-{}", hex::encode(&d.as_ref()[..8])))
        .unwrap_or_else(|_| unreachable!())
}

/// Starts a mode-3 envelope to `recipient`. Returns the header bytes and the sealer.
pub fn seal(
    recipient: &XWingRecipient,
    algorithm: Algorithm,
    segment_log2: u8,
    aad: &[u8],
) -> Result<(Vec<u8>, StreamSealer)> {
    let (enc, key) = recipient.export_key(HPKE_INFO, EXPORTER_CONTEXT)?;
    let header = Header {
        algorithm,
        key_id: recipient_key_id(recipient),
        key_version: 1,
        body: Body::Recipient { segment_log2, enc },
    };
    let bytes = header.encode();
    let sealer = StreamSealer::new(AeadKey::new(algorithm, key)?, &header, &bytes, aad)?;
    Ok((bytes, sealer))
}

/// Seals a small in-memory `plaintext` to `recipient` as a whole mode-3 envelope
/// (AES-256-GCM, default segment size).
pub fn seal_to_vec(recipient: &XWingRecipient, plaintext: &[u8], aad: &[u8]) -> Result<Vec<u8>> {
    let (header, mut sealer) = seal(
        recipient,
        Algorithm::Aes256Gcm,
        super::DEFAULT_SEGMENT_LOG2,
        aad,
    )?;
    if plaintext.len() > sealer.segment_len() {
        return Err(Error::TooLarge("plaintext (more than one segment)"));
    }
    let mut body = plaintext.to_vec();
    sealer.seal_segment(&mut body, true)?;
    let mut out = header;
    out.extend_from_slice(&body);
    Ok(out)
}

/// Largest envelope [`open_secret`] reads: a 32-byte secret sealed by
/// [`seal_to_vec`] is about 1.2 KiB.
pub const MAX_SEALED_SECRET: usize = 4096;

/// Opens a whole mode-3 envelope (at most [`MAX_SEALED_SECRET`] bytes) that holds
/// exactly 32 bytes, bound to `aad`: a key sealed to a recipient (factory secrets,
/// imported and exported keys). Every failure is [`Error::Open`] or
/// [`Error::TooLarge`], saying nothing of which check refused it.
pub fn open_secret(
    identity: &XWingIdentity,
    sealed: &[u8],
    aad: &[u8],
) -> Result<crate::secret::SecretBytes<32>> {
    if sealed.len() > MAX_SEALED_SECRET {
        return Err(Error::TooLarge("sealed secret (more than 4 KiB)"));
    }
    let mut input = sealed;
    let (header, header_bytes, rest) =
        super::io::read_header(&mut input).map_err(|_| Error::Open)?;
    let opener = open(identity, &header, &header_bytes, aad).map_err(|_| Error::Open)?;
    let mut plain = zeroize::Zeroizing::new(Vec::with_capacity(32));
    super::io::open(opener, rest, input, &mut *plain, &mut |_| {}).map_err(|_| Error::Open)?;
    if plain.len() != 32 {
        return Err(Error::Open);
    }
    crate::secret::SecretBytes::from_slice(&plain)
}

/// Opens the body of a mode-3 envelope with `identity`.
pub fn open(
    identity: &XWingIdentity,
    header: &Header,
    header_bytes: &[u8],
    aad: &[u8],
) -> Result<StreamOpener> {
    let Body::Recipient { enc, .. } = &header.body else {
        return Err(Error::Malformed("mode (expected recipient)"));
    };
    let key = identity.export_key(enc, HPKE_INFO, EXPORTER_CONTEXT)?;
    StreamOpener::new(
        AeadKey::new(header.algorithm, key)?,
        header,
        header_bytes,
        aad,
    )
}
