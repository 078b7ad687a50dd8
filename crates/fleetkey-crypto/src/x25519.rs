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
