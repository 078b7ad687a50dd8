//! # fleetkey-device: the constrained-device profile
//!
//! For microcontrollers too small for a Noise handshake (the reference is a
//! Cortex-M0+ with 8 KB of RAM). `#![no_std]`, no heap, no `unsafe`; RustCrypto and
//! dalek crates with their default features off. The same code runs on the device,
//! in the server that verifies its frames and in the fleet simulator. Specified in
//! `docs/protocol.md#the-constrained-device-profile`.
//!
//! - **Per-boot session keys** ([`Device::boot`]): the device increments and
//!   persists its boot counter, draws a fresh 16-byte salt from the hardware RNG,
//!   computes one X25519 with the server's public key (refusing the all-zero
//!   result of a low-order key) and derives its keys with HKDF-SHA256 over
//!   `X25519 secret ‖ factory PSK`, the salt, and a label binding the protocol
//!   version, mode, device id and boot counter. Mixing in the PSK keeps the
//!   session keys secret even from an adversary who can later break X25519 (a
//!   quantum computer), as long as the PSK stays secret.
//! - **Frames** ([`frame`]): AES-128-CCM with an 8-byte tag (the AEAD of BLE,
//!   Zigbee and Thread, needing only the AES block function); the header (device
//!   id, boot counter, a strictly increasing frame counter) is the associated data.
//!   A session-start frame carries the salt and proves key possession.
//! - **Static-key mode** ([`Mode::StaticKey`], for trusted labs): a per-device
//!   factory key instead of X25519, still with per-boot keys from a fresh salt, so
//!   no keystream is ever reused.
//! - **Downlink** ([`control`]): the server sends commands (wipe, config,
//!   rekey) in control frames under the boot's server→device key; the device
//!   acknowledges each in a control frame of its own ([`Session::ack_frame`]).
//! - **The receiver** ([`Receiver`]): the server's side — replays, counter
//!   regressions, old boot counters and forged tags are refused.
//! - **`EVT` lines** ([`evt`]) for the device's UART: enough for the server to
//!   reproduce the session keys during an audit from its own key, never key
//!   material.

#![no_std]
#![forbid(unsafe_code)]

pub mod control;
pub mod device;
pub mod error;
pub mod evt;
pub mod frame;
pub mod keys;
pub mod receiver;

pub use control::{Ack, Command, Op, Status};
pub use device::{Device, Downlink, Rng, Session, Storage};
pub use error::Error;
pub use frame::{FrameKind, Header};
pub use keys::{Mode, SessionKeys};
pub use receiver::{Credentials, Opened, Receiver};

/// Protocol version (in every frame header and in the key-derivation label).
pub const VERSION: u8 = 1;
/// Device id length (the 8 bytes of a fleetkey `dev_…` id).
pub const DEVICE_ID_LEN: usize = 8;
/// Boot salt length.
pub const SALT_LEN: usize = 16;
/// CCM tag length.
pub const TAG_LEN: usize = 8;
