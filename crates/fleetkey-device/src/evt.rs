//! `EVT,…` lines for the device's UART log: what happened, with enough public
//! detail (device id, boot counter, salt, mode) for the server to recompute the
//! session keys during an audit from its own key — and never key material.
//!
//! `EVT,SESSION,START,dev=<16 hex>,boot=<n>,salt=<32 hex>,mode=<x25519|static>`
//! `EVT,FRAME,SENT,dev=<16 hex>,boot=<n>,ctr=<n>,len=<n>`

use crate::device::Session;
use crate::keys::Mode;
use crate::{DEVICE_ID_LEN, SALT_LEN};
use core::fmt::{self, Write};

fn hex(w: &mut impl Write, b: &[u8]) -> fmt::Result {
    b.iter().try_for_each(|x| write!(w, "{x:02x}"))
}

fn mode(m: Mode) -> &'static str {
    match m {
        Mode::X25519Psk => "x25519",
        Mode::StaticKey => "static",
    }
}

/// Writes the session-start line (no newline).
pub fn session_start(w: &mut impl Write, s: &Session) -> fmt::Result {
    w.write_str("EVT,SESSION,START,dev=")?;
    hex(w, s.device_id())?;
    write!(w, ",boot={},salt=", s.boot())?;
    hex(w, s.salt())?;
    write!(w, ",mode={}", mode(s.mode()))
}

/// Writes a frame-sent line (no newline).
pub fn frame_sent(w: &mut impl Write, s: &Session, counter: u32, len: usize) -> fmt::Result {
    w.write_str("EVT,FRAME,SENT,dev=")?;
    hex(w, s.device_id())?;
    write!(w, ",boot={},ctr={counter},len={len}", s.boot())
}

/// A parsed session-start line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionStart {
    /// Device id.
    pub device_id: [u8; DEVICE_ID_LEN],
    /// Boot counter.
    pub boot: u32,
    /// Salt.
    pub salt: [u8; SALT_LEN],
    /// Mode.
    pub mode: Mode,
}

/// Decodes exactly `N` bytes of hex (either case); `None` otherwise.
pub fn decode_hex<const N: usize>(s: &str) -> Option<[u8; N]> {
    if s.len() != 2 * N || !s.is_ascii() {
        return None;
    }
    let mut out = [0u8; N];
    for (i, o) in out.iter_mut().enumerate() {
        *o = u8::from_str_radix(s.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(out)
}

/// Parses a session-start line (for audits; bounded, never panics).
pub fn parse_session_start(line: &str) -> Option<SessionStart> {
    if line.len() > 256 {
        return None;
    }
    let rest = line.trim_end().strip_prefix("EVT,SESSION,START,")?;
    let (mut dev, mut boot, mut salt, mut m) = (None, None, None, None);
    for field in rest.split(',') {
        let (k, v) = field.split_once('=')?;
        match k {
            "dev" => dev = decode_hex::<DEVICE_ID_LEN>(v),
            "boot" => boot = v.parse().ok(),
            "salt" => salt = decode_hex::<SALT_LEN>(v),
            "mode" => {
                m = match v {
                    "x25519" => Some(Mode::X25519Psk),
                    "static" => Some(Mode::StaticKey),
                    _ => None,
                }
            }
            _ => return None,
        }
    }
    Some(SessionStart {
        device_id: dev?,
        boot: boot?,
        salt: salt?,
        mode: m?,
    })
}
