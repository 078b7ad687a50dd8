//! Per-boot key derivation.
//!
//! `IKM = X25519(device scalar, server public) ‖ PSK` (X25519 mode) or
//! `IKM = factory key` (static-key mode); `salt` = the boot's 16 random bytes;
//! `info = "fleetkey-device v1" ‖ mode (1) ‖ device id (8) ‖ BE32(boot)`;
//! `OKM = HKDF-SHA256(salt, IKM, info, 32)` = device→server key (16) ‖
//! server→device key (16).

use crate::error::Error;
use crate::{DEVICE_ID_LEN, SALT_LEN};
use subtle::ConstantTimeEq;
use zeroize::{Zeroize, ZeroizeOnDrop};

/// The label prefix of the HKDF info.
pub const LABEL: &[u8] = b"fleetkey-device v1";

/// How a device's per-boot keys are rooted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// X25519 with the server's key, plus the factory PSK (the normal mode).
    X25519Psk,
    /// A per-device factory key only (trusted labs; the fleet must allow it).
    StaticKey,
}

impl Mode {
    /// The mode's byte in headers and labels.
    pub fn id(self) -> u8 {
        match self {
            Mode::X25519Psk => 1,
            Mode::StaticKey => 2,
        }
    }

    /// The mode for a byte.
    pub fn from_id(b: u8) -> Option<Self> {
        match b {
            1 => Some(Mode::X25519Psk),
            2 => Some(Mode::StaticKey),
            _ => None,
        }
    }
}

/// One boot's keys (wiped on drop).
#[derive(Clone, PartialEq, Eq, Zeroize, ZeroizeOnDrop)]
pub struct SessionKeys {
    /// Device → server.
    pub up: [u8; 16],
    /// Server → device.
    pub down: [u8; 16],
}

impl core::fmt::Debug for SessionKeys {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("SessionKeys(redacted)")
    }
}

/// X25519 of `scalar` and `public`, refusing the all-zero output that every
/// low-order `public` gives (RFC 7748 §6.1's check).
pub fn shared_secret(scalar: &[u8; 32], public: &[u8; 32]) -> Result<[u8; 32], Error> {
    let mut s = x25519_dalek::x25519(*scalar, *public);
    if bool::from(s.ct_eq(&[0u8; 32])) {
        s.zeroize();
        return Err(Error::LowOrderKey);
    }
    Ok(s)
}

/// The public key of an X25519 scalar.
pub fn public_key(scalar: &[u8; 32]) -> [u8; 32] {
    x25519_dalek::x25519(*scalar, x25519_dalek::X25519_BASEPOINT_BYTES)
}

/// Derives a boot's keys from the input keying material (`secret ‖ psk`, either
/// part may be empty).
pub fn derive(
    mode: Mode,
    secret: &[u8],
    psk: &[u8],
    salt: &[u8; SALT_LEN],
    device_id: &[u8; DEVICE_ID_LEN],
    boot: u32,
) -> SessionKeys {
    let mut ikm = [0u8; 64];
    let n = secret.len().min(32);
    let m = psk.len().min(32);
    ikm[..n].copy_from_slice(&secret[..n]);
    ikm[n..n + m].copy_from_slice(&psk[..m]);
    let mut info = [0u8; LABEL.len() + 1 + DEVICE_ID_LEN + 4];
    info[..LABEL.len()].copy_from_slice(LABEL);
    info[LABEL.len()] = mode.id();
    info[LABEL.len() + 1..LABEL.len() + 1 + DEVICE_ID_LEN].copy_from_slice(device_id);
    info[LABEL.len() + 1 + DEVICE_ID_LEN..].copy_from_slice(&boot.to_be_bytes());
    let hk = hkdf::Hkdf::<sha2::Sha256>::new(Some(salt), &ikm[..n + m]);
    let mut okm = [0u8; 32];
    // 32 bytes is far below HKDF-SHA256's 8,160-byte limit: expand cannot fail.
    let _ = hk.expand(&info, &mut okm);
    ikm.zeroize();
    let mut keys = SessionKeys {
        up: [0; 16],
        down: [0; 16],
    };
    keys.up.copy_from_slice(&okm[..16]);
    keys.down.copy_from_slice(&okm[16..]);
    okm.zeroize();
    keys
}
