//! # fleetkey-crypto
//!
//! The cryptographic core of fleetkey: primitives composed from audited crates, and
//! the `fk1` sealed envelope format. It is **sans-IO**: no files, no sockets, no
//! clock, no async runtime. The only ambient input is the provider's system random
//! generator, used where a standard requires fresh randomness (key generation,
//! salts, KEM encapsulation); everything that can be deterministic takes its inputs
//! as arguments, so golden vectors are reproducible.
//!
//! ## What is here
//!
//! | module | standard | provider |
//! |---|---|---|
//! | [`aead`] | AES-256-GCM, ChaCha20-Poly1305 (RFC 8439), AES-256-GCM-SIV (RFC 8452) | aws-lc-rs |
//! | [`hkdf`] | HKDF-SHA256 (RFC 5869) | aws-lc-rs |
//! | [`mac`] | HMAC-SHA-256, HMAC-SHA-512 (RFC 2104, RFC 4231 vectors) | aws-lc-rs |
//! | [`x25519`] | X25519 (RFC 7748), low-order points refused | aws-lc-rs |
//! | [`ed25519`] | Ed25519 (RFC 8032) | aws-lc-rs |
//! | [`mlkem`] | ML-KEM-768 (FIPS 203) | aws-lc-rs |
//! | [`mldsa`] | ML-DSA-65 (FIPS 204) | aws-lc-rs |
//! | [`composite`] | Ed25519 + ML-DSA-65, both must verify | aws-lc-rs |
//! | [`prehash`] | Ed25519ph (RFC 8032), HashML-DSA-65 (FIPS 204) over a caller's digest | `ed25519-dalek`, `ml-dsa` |
//! | [`hpke`] | HPKE (RFC 9180) base mode, X-Wing KEM | `hpke` (RustCrypto `x-wing`) |
//! | [`envelope`] | the `fk1` format: single, stream, recipient, armor | this crate |
//! | [`credential`] | device credentials: CWT (RFC 8392) in COSE_Sign1 (RFC 9052) | `coset` |
//!
//! ## What is deliberately not here
//!
//! No primitive is implemented in this crate; no key storage, rotation or policy
//! (those live in `fleetkey-server`); no nonce allocation (the single-shot envelope
//! takes the nonce from the caller, whose allocator guarantees uniqueness).
//!
//! ## Example
//!
//! ```
//! use fleetkey_crypto::{aead::{AeadKey, Algorithm}, envelope::{single, KeyId}};
//!
//! let key = AeadKey::generate(Algorithm::Aes256Gcm)?;
//! let id = KeyId::new("payments")?;
//! let sealed = single::seal(&key, &id, 1, [0u8; 12], b"card 4242", b"order-17")?;
//! assert_eq!(single::open(&key, &sealed, b"order-17")?, b"card 4242");
//! assert!(single::open(&key, &sealed, b"order-18").is_err());
//! # Ok::<(), fleetkey_crypto::Error>(())
//! ```
//!
//! ## Design decisions
//!
//! * **aws-lc-rs** is the provider: the fastest measured on the target machines, the
//!   one rustls uses, and it ships ML-KEM and ML-DSA. X-Wing HPKE comes from the
//!   `hpke` crate rather than a home-made combiner.
//! * **Secrets are types** ([`secret::SecretBytes`]): zeroized on drop, compared in
//!   constant time, redacted in `Debug`.
//! * **Opening fails opaquely**: wrong key, tampered bytes and wrong AAD are one
//!   error, [`Error::Open`]. Structural problems (not an envelope, unknown version,
//!   truncated) are named, since they reveal nothing about keys.
//! * **Formats are specified** in `docs/formats.md` with golden vectors in
//!   `docs/vectors/`; an independent Python implementation opens them in CI.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod aead;
pub mod composite;
pub mod credential;
pub mod cwt;
pub mod ed25519;
pub mod envelope;
mod error;
pub mod hkdf;
pub mod hpke;
pub mod keyfile;
pub mod mac;
pub mod mldsa;
pub mod mlkem;
pub mod prehash;
pub mod rand;
pub mod record;
pub mod secret;
pub mod x25519;

pub use error::{Error, Result};

/// At most the first 8 bytes of a public value, hex encoded, for logs and `Debug`.
pub fn hex_prefix(bytes: &[u8]) -> String {
    let n = bytes.len().min(8);
    let mut s = hex::encode(&bytes[..n]);
    if bytes.len() > n {
        s.push('…');
    }
    s
}
