//! # fleetkey-wire: the device protocol's wire layouts
//!
//! What both ends of a device session must agree on byte for byte, in one crate
//! that the device client ([`fleetkey-client`]) and the server both depend on, so
//! neither depends on the other:
//!
//! - [`proto`]: the messages on the wire (JSON inside Noise transport messages),
//!   with their size limits;
//! - [`messages`]: the exact bytes every device-protocol signature covers
//!   (commands, receipts, onboarding, rotation, polls).
//!
//! Specified in `docs/protocol.md`.
//!
//! [`fleetkey-client`]: https://example.invalid/fleetkey

pub mod messages;
pub mod proto;
