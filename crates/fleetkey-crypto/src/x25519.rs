//! X25519 (RFC 7748) with low-order points refused.
//!
//! RFC 7748 §6.1 lets implementations check for an all-zero shared secret; fleetkey
//! requires it. Every low-order point (and each of its non-canonical encodings)
//! yields the all-zero output for every scalar, so checking the output covers the
//! whole list, not only the zero key. The check is constant-time.

use crate::{Error, Result, secret::SecretBytes};
use aws_lc_rs::agreement::{self, PrivateKey, UnparsedPublicKey, X25519};
use core::fmt;

/// Length of an X25519 public key, scalar and shared secret.
pub const LEN: usize = 32;

/// The u-coordinates of low order on Curve25519 (RFC 7748 §7): 0, 1, the two
/// points of order 8, p-1, p and p+1; each also with bit 255 set (14 encodings).
pub const LOW_ORDER: [[u8; 32]; 7] = {
    const fn h(s: &[u8; 64]) -> [u8; 32] {
        let mut out = [0u8; 32];
        let mut i = 0;
        while i < 32 {
            let hi = (s[2 * i] as char).to_digit(16);
            let lo = (s[2 * i + 1] as char).to_digit(16);
            #[allow(
                clippy::cast_possible_truncation,
                reason = "two hex digits: at most 255"
            )]
            let byte = match (hi, lo) {
                (Some(a), Some(b)) => (a * 16 + b) as u8,
                _ => 0,
            };
            out[i] = byte;
            i += 1;
        }
        out
    }
    [
        h(b"0000000000000000000000000000000000000000000000000000000000000000"),
        h(b"0100000000000000000000000000000000000000000000000000000000000000"),
        h(b"e0eb7a7c3b41b8ae1656e3faf19fc46ada098deb9c32b1fd866205165f49b800"),
        h(b"5f9c95bca3508c24b1d0b1559c83ef5b04445cc4581c8e86d8224eddd09f1157"),
        h(b"ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f"),
        h(b"edffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f"),
        h(b"eeffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f"),
    ]
};

/// Whether a public key is one of the low-order points (any of their 14
/// encodings: bit 255 is ignored, as X25519 itself ignores it). Such a key makes
/// every shared secret all-zero; refuse it wherever a peer's key is accepted,
/// before any Diffie-Hellman. Not constant-time: public keys are public.
pub fn is_low_order(public: &[u8; LEN]) -> bool {
    let mut masked = *public;
    masked[31] &= 0x7f;
    LOW_ORDER.contains(&masked)
}

/// An X25519 static or ephemeral secret scalar (unclamped bytes; clamping happens
/// inside the function, as RFC 7748 specifies).
pub struct X25519Secret(SecretBytes<LEN>);

impl X25519Secret {
    /// A fresh random secret.
    pub fn generate() -> Result<Self> {
        Ok(Self(SecretBytes::random()?))
    }

    /// Wraps existing secret bytes.
    pub fn from_bytes(bytes: SecretBytes<LEN>) -> Self {
        Self(bytes)
    }

    /// The secret bytes, for storage.
    pub fn expose_secret(&self) -> &[u8; LEN] {
        self.0.expose_secret()
    }

    fn provider_key(&self) -> Result<PrivateKey> {
        PrivateKey::from_private_key(&X25519, self.0.expose_secret())
            .map_err(|_| Error::InvalidKey("x25519 scalar"))
    }

    /// The public key `scalar · 9`.
    pub fn public_key(&self) -> Result<[u8; LEN]> {
        let pk = self.provider_key()?.compute_public_key()?;
        let mut out = [0u8; LEN];
        out.copy_from_slice(pk.as_ref());
        Ok(out)
    }

    /// The shared secret with `peer_public`. Refuses low-order peer points with
    /// [`Error::LowOrderPoint`].
    pub fn diffie_hellman(&self, peer_public: &[u8; LEN]) -> Result<SecretBytes<LEN>> {
        let key = self.provider_key()?;
        let peer = UnparsedPublicKey::new(&X25519, peer_public);
        agreement::agree(&key, peer, Error::LowOrderPoint, |shared| {
            let out = SecretBytes::<LEN>::from_slice(shared)?;
            if out == SecretBytes::new([0u8; LEN]) {
                return Err(Error::LowOrderPoint);
            }
            Ok(out)
        })
    }
}

impl fmt::Debug for X25519Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("X25519Secret(redacted)")
    }
}
