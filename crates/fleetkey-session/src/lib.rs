//! # fleetkey-session: Noise sessions for devices and services
//!
//! A sans-IO layer over [`snow`]: a [`Handshake`] takes bytes and the current time
//! and returns bytes; it never opens a socket, reads a clock or draws randomness
//! except through its resolver. A finished handshake becomes a [`Transport`] that
//! seals application messages of up to 16 MiB into length-prefixed Noise messages
//! of at most 65,535 bytes ([`frame`]).
//!
//! What it adds to snow:
//! - **Patterns by their Noise names** ([`Pattern`], [`Suite`]): `IK` (the normal
//!   case), `XX` (first contact, then pin the key), `N` (one-way), `NN` with an
//!   [`attestation`] over the handshake hash, and the post-quantum hybrid
//!   `IKpsk2` + ML-KEM-768 ([`Pattern::IKHybrid`]); suites
//!   `25519_ChaChaPoly_BLAKE2s` and `25519_AESGCM_SHA256`.
//! - **An aws-lc-rs resolver** ([`resolver`]) for X25519, ChaCha20-Poly1305,
//!   AES-256-GCM and SHA-2, interoperable with snow's default resolver.
//! - **Low-order keys refused**: every low-order Curve25519 point (all 14
//!   encodings) is refused as the peer's ephemeral or static key, whatever the
//!   resolver.
//! - **Limits** ([`Limits`]): handshake messages ≤ 4 KiB, application messages ≤
//!   16 MiB, a handshake deadline, rekeying after a number of messages.
//! - **Sticky failure**: after an error, every later call returns it again.
//!
//! [`io`] is the tokio adapter: a thin loop around the state machines that enforces
//! the handshake deadline and the idle timeout. Session persistence, resumption
//! and reconnection belong to the device protocol above this crate
//! (`fleetkey-client`, `docs/protocol.md#sessions-and-resumption`).
//!
//! ```
//! use fleetkey_session::{Builder, Keypair, Pattern, Suite};
//! use std::time::Instant;
//! # fn main() -> Result<(), fleetkey_session::Error> {
//! let server = Keypair::generate()?;
//! let device = Keypair::generate()?;
//! let now = Instant::now();
//! let mut i = Builder::new(Pattern::IK, Suite::ChaChaPolyBlake2s)
//!     .local(&device).remote(*server.public()).initiator(now)?;
//! let mut r = Builder::new(Pattern::IK, Suite::ChaChaPolyBlake2s).local(&server).responder(now)?;
//! let m1 = i.write_message(b"hello", now)?;
//! assert_eq!(r.read_message(&m1, now)?, b"hello");
//! assert_eq!(r.remote_static(), Some(*device.public()));
//! let m2 = r.write_message(b"", now)?;
//! i.read_message(&m2, now)?;
//! let (mut i, mut r) = (i.into_transport()?, r.into_transport()?);
//! let mut wire = Vec::new();
//! i.seal(b"telemetry", &mut wire)?;
//! let mut frames = fleetkey_session::frame::FrameReader::new(65_535);
//! frames.push(&wire);
//! let frame = frames.next_frame()?.expect("one frame");
//! assert_eq!(r.open(&frame)?.as_deref(), Some(&b"telemetry"[..]));
//! # Ok(()) }
//! ```

pub mod attestation;
pub mod error;
pub mod frame;
pub mod handshake;
pub mod io;
pub mod pattern;
pub mod resolver;

pub use error::{Error, Result};
pub use frame::Limits;
pub use handshake::{Builder, Handshake, Keypair, Resolver, Transport};
pub use pattern::{Pattern, Suite};
