//! Frames: `header ‖ AES-128-CCM(payload) ‖ tag (8)`, the header as associated data.
//!
//! | offset | field |
//! |---|---|
//! | 0 | version (1) |
//! | 1 | kind: 1 session start, 2 data, 3 control ([`crate::control`]) |
//! | 2 | mode: 1 X25519 + PSK, 2 static key |
//! | 3..11 | device id (8) |
//! | 11..15 | boot counter, BE32 |
//! | 15..19 | frame counter, BE32 (0 for the session start, then 1, 2, …) |
//! | 19..35 | salt (16), session start only |
//!
//! The 13-byte CCM nonce is `direction (1: device→server, 2: server→device) ‖
//! BE32(boot) ‖ BE32(counter) ‖ 0x00000000`. Keys are unique per boot (fresh
//! salt) and counters never repeat within a boot, so no (key, nonce) pair repeats.

use crate::error::Error;
use crate::keys::Mode;
use crate::{DEVICE_ID_LEN, SALT_LEN, TAG_LEN, VERSION};
use ccm::aead::{AeadInPlace, KeyInit};
use ccm::consts::{U8, U13};

type Cipher = ccm::Ccm<aes::Aes128, U8, U13>;

/// Largest frame, bytes (fits one UDP datagram on any path without fragmentation).
pub const MAX_FRAME: usize = 1200;
/// Header length of a data frame.
pub const DATA_HEADER_LEN: usize = 19;
/// Header length of a session-start frame.
pub const START_HEADER_LEN: usize = DATA_HEADER_LEN + SALT_LEN;
/// Direction byte: device to server.
pub const UP: u8 = 1;
/// Direction byte: server to device.
pub const DOWN: u8 = 2;

/// What a frame is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FrameKind {
    /// The first frame of a boot: carries the salt, proves the keys.
    SessionStart,
    /// Telemetry or any application data.
    Data,
    /// A command (server→device) or its acknowledgement (device→server),
    /// encoded by [`crate::control`]; numbered like data frames.
    Control,
}

/// A frame header (all of it is authenticated).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    /// Kind.
    pub kind: FrameKind,
    /// Key mode.
    pub mode: Mode,
    /// The device.
    pub device_id: [u8; DEVICE_ID_LEN],
    /// Boot counter.
    pub boot: u32,
    /// Frame counter.
    pub counter: u32,
    /// The boot's salt (session start only; zeros otherwise).
    pub salt: [u8; SALT_LEN],
}

impl Header {
    /// Encoded length.
    pub fn len(&self) -> usize {
        match self.kind {
            FrameKind::SessionStart => START_HEADER_LEN,
            FrameKind::Data | FrameKind::Control => DATA_HEADER_LEN,
        }
    }

    /// Never empty (for clippy's `len_without_is_empty`).
    pub fn is_empty(&self) -> bool {
        false
    }

    fn write(&self, out: &mut [u8]) {
        out[0] = VERSION;
        out[1] = match self.kind {
            FrameKind::SessionStart => 1,
            FrameKind::Data => 2,
            FrameKind::Control => 3,
        };
        out[2] = self.mode.id();
        out[3..11].copy_from_slice(&self.device_id);
        out[11..15].copy_from_slice(&self.boot.to_be_bytes());
        out[15..19].copy_from_slice(&self.counter.to_be_bytes());
        if self.kind == FrameKind::SessionStart {
            out[19..35].copy_from_slice(&self.salt);
        }
    }

    /// Parses the header of `frame` (bounded, never panics). The tag is not checked:
    /// do not trust anything before [`open`].
    pub fn parse(frame: &[u8]) -> Result<Header, Error> {
        if frame.len() > MAX_FRAME || frame.len() < DATA_HEADER_LEN + TAG_LEN {
            return Err(Error::Malformed);
        }
        if frame[0] != VERSION {
            return Err(Error::Version);
        }
        let kind = match frame[1] {
            1 => FrameKind::SessionStart,
            2 => FrameKind::Data,
            3 => FrameKind::Control,
            _ => return Err(Error::Malformed),
        };
        let mode = Mode::from_id(frame[2]).ok_or(Error::Malformed)?;
        let mut h = Header {
            kind,
            mode,
            device_id: [0; DEVICE_ID_LEN],
            boot: u32::from_be_bytes([frame[11], frame[12], frame[13], frame[14]]),
            counter: u32::from_be_bytes([frame[15], frame[16], frame[17], frame[18]]),
            salt: [0; SALT_LEN],
        };
        h.device_id.copy_from_slice(&frame[3..11]);
        if kind == FrameKind::SessionStart {
            if frame.len() < START_HEADER_LEN + TAG_LEN {
                return Err(Error::Malformed);
            }
            if h.counter != 0 {
                return Err(Error::Malformed);
            }
            h.salt.copy_from_slice(&frame[19..35]);
        } else if h.counter == 0 {
            return Err(Error::Malformed);
        }
        Ok(h)
    }
}

fn nonce(direction: u8, boot: u32, counter: u32) -> [u8; 13] {
    let mut n = [0u8; 13];
    n[0] = direction;
    n[1..5].copy_from_slice(&boot.to_be_bytes());
    n[5..9].copy_from_slice(&counter.to_be_bytes());
    n
}

/// Seals `payload` under `key` into `out` as one frame; returns its length.
pub fn seal(
    key: &[u8; 16],
    direction: u8,
    header: &Header,
    payload: &[u8],
    out: &mut [u8],
) -> Result<usize, Error> {
    let hl = header.len();
    let total = hl + payload.len() + TAG_LEN;
    if total > MAX_FRAME {
        return Err(Error::Malformed);
    }
    let out = out.get_mut(..total).ok_or(Error::BufferTooSmall)?;
    header.write(out);
    let (head, rest) = out.split_at_mut(hl);
    let (body, tag_out) = rest.split_at_mut(payload.len());
    body.copy_from_slice(payload);
    let cipher = Cipher::new(key.into());
    let tag = cipher
        .encrypt_in_place_detached(
            (&nonce(direction, header.boot, header.counter)).into(),
            head,
            body,
        )
        .map_err(|_| Error::Malformed)?;
    tag_out.copy_from_slice(&tag);
    Ok(total)
}

/// Verifies and decrypts `frame` in place under `key`; returns the header and the
/// plaintext (a slice of `frame`). On failure the frame's payload bytes are
/// unspecified.
pub fn open<'a>(
    key: &[u8; 16],
    direction: u8,
    frame: &'a mut [u8],
) -> Result<(Header, &'a [u8]), Error> {
    let h = Header::parse(frame)?;
    let hl = h.len();
    let (head, rest) = frame.split_at_mut(hl);
    let body_len = rest.len() - TAG_LEN;
    let (body, tag) = rest.split_at_mut(body_len);
    let cipher = Cipher::new(key.into());
    cipher
        .decrypt_in_place_detached(
            (&nonce(direction, h.boot, h.counter)).into(),
            head,
            body,
            (&*tag).into(),
        )
        .map_err(|_| Error::Forged)?;
    Ok((h, body))
}
