//! # fleetkey-client: the device side of fleetkey sessions
//!
//! - [`DeviceClient`]: connects to `fleetkey serve`'s device listener over a Noise
//!   session ([`fleetkey_session`]), with the server's key pinned, taken from a
//!   signed directory record, or learned on first contact (XX, then pinned);
//!   resumes its previous session (a fresh handshake bound to the previous session
//!   id); reconnects with exponential backoff and jitter ([`Backoff`]); sends
//!   telemetry with sequence numbers that survive restarts; answers commands with
//!   signed receipts; rotates its credential and proves its wipe over the session.
//! - [`SessionState`]: what survives a restart (pinned key, session id, counters,
//!   record sequences), written atomically.
//! - [`RecordCache`]: verified key records, re-checked for freshness on every use,
//!   with rollbacks refused across restarts.
//! - [`messages`]: the exact bytes every device-protocol signature covers;
//!   [`proto`]: the messages on the wire (both from `fleetkey-wire`, which the
//!   server uses too).
//!
//! Specified in `docs/protocol.md`.

pub mod backoff;
pub mod device;
pub mod error;
pub mod records;
pub mod state;

pub use fleetkey_wire::{messages, proto};

pub use backoff::Backoff;
pub use device::{ClientConfig, DeviceClient, DeviceSession};
pub use error::{Error, Result};
pub use records::RecordCache;
pub use state::SessionState;
