//! The backup file: a preamble of key slots, then one fk1 stream.
//!
//! ```text
//! "fleetkey-backup-v1\n"                      19 bytes
//! n                                           u16 big-endian, 1..=16
//! n × ( len u32 big-endian, 1..=4096 ;         one slot per recipient:
//!       fk1 mode-3 envelope of the backup key, sealed to that recipient,
//!       associated data "fleetkey backup v1 key" )
//! fk1 mode-2 envelope (AES-256-GCM, key id "fleetkey-backup", version 1)
//!     under the backup key, associated data
//!     "fleetkey backup v1 body" ‖ SHA-256(every byte before it)
//!     plaintext: a ustar archive (archive.rs)
//! ```
//!
//! The backup key is 32 random bytes made for each backup. Any one recipient's
//! identity opens it; the body's associated data covers the magic and every slot,
//! so a slot cannot be added, removed or swapped without the body failing to open.
//! docs/formats.md, "Backup files", is the reference.

use super::BackupError;
use fleetkey_crypto::aead::{AeadKey, Algorithm};
use fleetkey_crypto::envelope::{
    self, Body, DEFAULT_SEGMENT_LOG2, Header, KeyId, io, recipient, stream,
};
use fleetkey_crypto::hpke::{XWingIdentity, XWingRecipient};
use fleetkey_crypto::secret::SecretBytes;
use std::io::{Read, Write};

/// The file's first bytes.
pub const MAGIC: &[u8; 19] = b"fleetkey-backup-v1\n";
/// Most recipients (key slots) in one backup.
pub const MAX_RECIPIENTS: usize = 16;
/// Associated data of each key slot.
pub const SLOT_AAD: &[u8] = b"fleetkey backup v1 key";
/// Prefix of the body's associated data (then SHA-256 of the preamble).
pub const BODY_AAD_PREFIX: &[u8] = b"fleetkey backup v1 body";
/// The body's key id.
pub const BODY_KEY_ID: &str = "fleetkey-backup";

/// Seals `input` (the archive) to `recipients` into `out`; the archive's length.
pub fn seal<R: Read, W: Write>(
    recipients: &[XWingRecipient],
    input: R,
    mut out: W,
) -> Result<u64, BackupError> {
    if recipients.is_empty() || recipients.len() > MAX_RECIPIENTS {
        return Err(BackupError::Usage(format!(
            "a backup needs 1 to {MAX_RECIPIENTS} recipients"
        )));
    }
    let key = SecretBytes::<32>::random()?;
    let mut preamble = MAGIC.to_vec();
    // At most 16: fits.
    preamble.extend_from_slice(&u16::try_from(recipients.len()).unwrap_or(16).to_be_bytes());
    for r in recipients {
        let slot = recipient::seal_to_vec(r, key.expose_secret(), SLOT_AAD)?;
        preamble.extend_from_slice(&u32::try_from(slot.len()).unwrap_or(u32::MAX).to_be_bytes());
        preamble.extend_from_slice(&slot);
    }
    out.write_all(&preamble)?;
    let aead = AeadKey::new(Algorithm::Aes256Gcm, key)?;
    let (header, sealer) = stream::seal_symmetric(
        &aead,
        &body_key_id(),
        1,
        DEFAULT_SEGMENT_LOG2,
        &body_aad(&preamble),
    )?;
    io::seal(&header, sealer, input, out, &mut |_| {}).map_err(stream_err)
}

/// Opens a backup read from `input` with `identity`, writing the archive to
/// `out` segment by segment (each only after it verified); the archive's length.
pub fn open<R: Read, W: Write>(
    identity: &XWingIdentity,
    mut input: R,
    out: W,
) -> Result<u64, BackupError> {
    let mut preamble = vec![0u8; MAGIC.len() + 2];
    input
        .read_exact(&mut preamble)
        .map_err(|_| BackupError::NotABackup)?;
    if &preamble[..MAGIC.len()] != MAGIC {
        return Err(BackupError::NotABackup);
    }
    let n = usize::from(u16::from_be_bytes([preamble[19], preamble[20]]));
    if !(1..=MAX_RECIPIENTS).contains(&n) {
        return Err(BackupError::Damaged(format!(
            "{n} key slots (1 to {MAX_RECIPIENTS} expected)"
        )));
    }
    let mine = recipient::recipient_key_id(&identity.recipient());
    let mut my_slot = None;
    for i in 0..n {
        let mut len = [0u8; 4];
        input
            .read_exact(&mut len)
            .map_err(|_| BackupError::Damaged("cut short in its key slots".into()))?;
        let raw_len = u32::from_be_bytes(len);
        let len = raw_len as usize;
        if !(1..=recipient::MAX_SEALED_SECRET).contains(&len) {
            return Err(BackupError::Damaged(format!(
                "key slot {} is {len} bytes (1 to {} expected)",
                i + 1,
                recipient::MAX_SEALED_SECRET
            )));
        }
        let mut slot = vec![0u8; len];
        input
            .read_exact(&mut slot)
            .map_err(|_| BackupError::Damaged("cut short in its key slots".into()))?;
        preamble.extend_from_slice(&raw_len.to_be_bytes());
        preamble.extend_from_slice(&slot);
        if Header::parse(&slot).is_ok_and(|(h, _)| h.key_id == mine) {
            my_slot = Some(slot);
        }
    }
    let slot = my_slot.ok_or(BackupError::NotForThisIdentity)?;
    let key = recipient::open_secret(identity, &slot, SLOT_AAD)
        .map_err(|_| BackupError::Damaged("this identity's key slot does not open".into()))?;
    let aead = AeadKey::new(Algorithm::Aes256Gcm, key)?;
    let (header, header_bytes, rest) = io::read_header(&mut input).map_err(stream_err)?;
    if header.key_id != body_key_id() || !matches!(header.body, Body::Stream { .. }) {
        return Err(BackupError::Damaged(
            "its body is not a backup stream".into(),
        ));
    }
    let opener = stream::open_symmetric(&aead, &header, &header_bytes, &body_aad(&preamble))
        .map_err(|_| BackupError::Damaged("its body does not open".into()))?;
    io::open(opener, rest, input, out, &mut |_| {}).map_err(stream_err)
}

fn body_key_id() -> KeyId {
    // A constant valid key id.
    KeyId::new(BODY_KEY_ID).unwrap_or_else(|_| unreachable!())
}

fn body_aad(preamble: &[u8]) -> Vec<u8> {
    let mut aad = BODY_AAD_PREFIX.to_vec();
    aad.extend_from_slice(aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, preamble).as_ref());
    aad
}

fn stream_err(e: envelope::io::StreamError) -> BackupError {
    match e {
        envelope::io::StreamError::Io(e) => BackupError::Io(e),
        envelope::io::StreamError::Envelope(e) => {
            BackupError::Damaged(format!("its body was refused: {e} (tampered or cut short)"))
        }
        other => BackupError::Damaged(other.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sealed(recipients: &[XWingRecipient], body: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        seal(recipients, body, &mut out).unwrap();
        out
    }

    #[test]
    fn any_recipient_opens_and_no_one_else() {
        let a = XWingIdentity::generate().unwrap();
        let b = XWingIdentity::generate().unwrap();
        let c = XWingIdentity::generate().unwrap();
        let body = vec![7u8; 200_000];
        let file = sealed(&[a.recipient(), b.recipient()], &body);
        for id in [&a, &b] {
            let mut out = Vec::new();
            assert_eq!(open(id, file.as_slice(), &mut out).unwrap(), 200_000);
            assert_eq!(out, body);
        }
        assert!(matches!(
            open(&c, file.as_slice(), &mut Vec::new()),
            Err(BackupError::NotForThisIdentity)
        ));
    }

    #[test]
    fn every_tampered_byte_is_refused() {
        let a = XWingIdentity::generate().unwrap();
        let file = sealed(&[a.recipient()], b"the archive");
        // Magic, slot count, slot length, slot, body header, body.
        for at in [0, 19, 22, 100, file.len() - 60, file.len() - 1] {
            let mut bad = file.clone();
            bad[at] ^= 1;
            let r = open(&a, bad.as_slice(), &mut Vec::new());
            assert!(r.is_err(), "byte {at} changed and it opened");
        }
        // Cut short.
        assert!(open(&a, &file[..file.len() - 5], &mut Vec::new()).is_err());
        assert!(matches!(
            open(&a, &b"PK\x03\x04 not a backup at all"[..], &mut Vec::new()),
            Err(BackupError::NotABackup)
        ));
    }

    #[test]
    fn a_slot_swapped_in_from_another_backup_is_refused() {
        let a = XWingIdentity::generate().unwrap();
        let b = XWingIdentity::generate().unwrap();
        let one = sealed(&[a.recipient(), b.recipient()], b"one");
        let other = sealed(&[a.recipient(), b.recipient()], b"two");
        // Replace b's slot in `one` with b's slot of `other` (same length).
        let first_len = u32::from_be_bytes(one[21..25].try_into().unwrap()) as usize;
        let second = 25 + first_len;
        let mut mixed = one.clone();
        let len = u32::from_be_bytes(one[second..second + 4].try_into().unwrap()) as usize;
        mixed[second + 4..second + 4 + len].copy_from_slice(&other[second + 4..second + 4 + len]);
        assert!(open(&b, mixed.as_slice(), &mut Vec::new()).is_err());
    }

    #[test]
    fn recipients_are_bounded() {
        assert!(seal(&[], &b""[..], &mut Vec::new()).is_err());
        let a = XWingIdentity::generate().unwrap();
        let many = vec![a.recipient(); MAX_RECIPIENTS + 1];
        assert!(seal(&many, &b""[..], &mut Vec::new()).is_err());
        // A header claiming too many slots, or an oversized one.
        let mut bad = MAGIC.to_vec();
        bad.extend_from_slice(&17u16.to_be_bytes());
        assert!(matches!(
            open(&a, bad.as_slice(), &mut Vec::new()),
            Err(BackupError::Damaged(_))
        ));
        let mut bad = MAGIC.to_vec();
        bad.extend_from_slice(&1u16.to_be_bytes());
        bad.extend_from_slice(&u32::MAX.to_be_bytes());
        assert!(matches!(
            open(&a, bad.as_slice(), &mut Vec::new()),
            Err(BackupError::Damaged(_))
        ));
    }
}
