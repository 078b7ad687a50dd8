//! Randomness from the provider's system generator.
//!
//! The crate draws randomness only where a standard requires fresh randomness (key
//! generation, salts, encapsulation). Every operation that can be deterministic takes
//! its inputs explicitly, so tests and golden vectors are reproducible.

use aws_lc_rs::rand::{SecureRandom, SystemRandom};

/// Fills `out` with random bytes.
pub fn fill(out: &mut [u8]) -> crate::Result<()> {
    SystemRandom::new()
        .fill(out)
        .map_err(|_| crate::Error::Provider)
}

/// Returns `N` random bytes.
pub fn array<const N: usize>() -> crate::Result<[u8; N]> {
    let mut out = [0u8; N];
    fill(&mut out)?;
    Ok(out)
}
