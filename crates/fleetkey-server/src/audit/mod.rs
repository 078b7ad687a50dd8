//! The tamper-evident audit log.
//!
//! Every state change appends an entry whose hash covers the previous entry's hash
//! (`hash = SHA-256(prev_hash ‖ canonical entry)`, genesis `prev_hash` = 32 zero
//! bytes). Checkpoints sign `(seq, head hash, time)` with the service's composite
//! Ed25519 + ML-DSA-65 key. Verification needs only an export and the public key
//! ([`verify`]). Format: `docs/formats.md#audit-log`.
//!
//! The records and the chaining rule live with the store that appends them
//! (`store::audit_log`); they are re-exported here.

pub mod verify;

pub use crate::store::audit_log::{
    AuditDraft, AuditEntry, Checkpoint, GENESIS, MAX_DETAILS, MAX_FIELD, canonical, entry_hash,
};
