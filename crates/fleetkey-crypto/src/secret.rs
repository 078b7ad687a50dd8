//! Secret byte containers: zeroized on drop, redacted in `Debug`, compared in constant time.

use core::fmt;
use zeroize::{Zeroize, ZeroizeOnDrop};

/// A fixed-size secret. `Debug` prints only the type name and length; the bytes are
/// reachable only through [`SecretBytes::expose_secret`].
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct SecretBytes<const N: usize>([u8; N]);

impl<const N: usize> SecretBytes<N> {
    /// Wraps `bytes`. The caller should zeroize its own copy.
    pub fn new(bytes: [u8; N]) -> Self {
        Self(bytes)
    }

    /// Copies a slice of exactly `N` bytes.
    pub fn from_slice(bytes: &[u8]) -> crate::Result<Self> {
        let arr: [u8; N] = bytes
            .try_into()
            .map_err(|_| crate::Error::InvalidKey("wrong length"))?;
        Ok(Self(arr))
    }

    /// Fresh random bytes from the system generator.
    pub fn random() -> crate::Result<Self> {
        let mut out = Self([0u8; N]);
        crate::rand::fill(&mut out.0)?;
        Ok(out)
    }

    /// The secret bytes. Callers must not log or copy them casually.
    pub fn expose_secret(&self) -> &[u8; N] {
        &self.0
    }
}

impl<const N: usize> PartialEq for SecretBytes<N> {
    fn eq(&self, other: &Self) -> bool {
        aws_lc_rs::constant_time::verify_slices_are_equal(&self.0, &other.0).is_ok()
    }
}
impl<const N: usize> Eq for SecretBytes<N> {}

impl<const N: usize> fmt::Debug for SecretBytes<N> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SecretBytes<{N}>(redacted)")
    }
}

/// A variable-length secret (for example an expanded private key).
#[derive(Clone, Zeroize, ZeroizeOnDrop, Default)]
pub struct SecretVec(Vec<u8>);

impl SecretVec {
    /// Takes ownership of `bytes`.
    pub fn new(bytes: Vec<u8>) -> Self {
        Self(bytes)
    }
    /// The secret bytes.
    pub fn expose_secret(&self) -> &[u8] {
        &self.0
    }
}

impl PartialEq for SecretVec {
    fn eq(&self, other: &Self) -> bool {
        aws_lc_rs::constant_time::verify_slices_are_equal(&self.0, &other.0).is_ok()
    }
}
impl Eq for SecretVec {}

impl fmt::Debug for SecretVec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SecretVec(redacted, {} bytes)", self.0.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_shows_bytes() {
        let s = SecretBytes::new([0xAB; 32]);
        let d = format!("{s:?}");
        assert!(!d.to_lowercase().contains("ab"), "{d}");
        let v = SecretVec::new(vec![0xCD; 40]);
        let d = format!("{v:?}");
        assert!(
            !d.to_lowercase().contains("cd,") && !d.contains("205"),
            "{d}"
        );
    }

    #[test]
    fn equality_is_by_value() {
        assert_eq!(SecretBytes::new([1u8; 4]), SecretBytes::new([1u8; 4]));
        assert_ne!(SecretBytes::new([1u8; 4]), SecretBytes::new([2u8; 4]));
    }
}
