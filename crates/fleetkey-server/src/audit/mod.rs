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

pub mod status;
pub mod verify;

pub use crate::store::audit_log::{
    AuditDraft, AuditEntry, Checkpoint, GENESIS, MAX_DETAILS, MAX_FIELD, canonical, entry_hash,
};

/// Actions whose entry hands checkpoint signing over to another custody key
/// (`details.to_public_key`, `fk1sig:…`): the first checkpoint covering the
/// entry is signed by the old key, later ones by the new
/// ([`verify::verify_export`]).
pub const HANDOVER_ACTIONS: [&str; 2] = ["custody.migrate", "custody.rotate"];

/// Signs the audit chain's head with `custody` and stores the checkpoint; the
/// latest checkpoint when nothing was appended since.
pub async fn checkpoint(
    audit: &dyn crate::store::AuditStore,
    custody: &dyn crate::custody::Custody,
    now: crate::clock::UnixTime,
) -> crate::error::Result<Option<Checkpoint>> {
    let mut after = audit.latest_checkpoint().await?.map(|c| c.seq).unwrap_or(0);
    let mut head = None;
    loop {
        let batch = audit.audit_entries(after, 1000).await?;
        match batch.last() {
            Some(e) => {
                after = e.seq;
                head = Some((e.seq, e.hash));
            }
            None => break,
        }
    }
    let Some((seq, hash)) = head else {
        return audit.latest_checkpoint().await;
    };
    let signature = custody
        .sign(&Checkpoint::signed_bytes(seq, &hash, now))
        .await?;
    let c = Checkpoint {
        seq,
        head_hash: hash,
        time: now,
        signature,
    };
    audit.put_checkpoint(&c).await?;
    Ok(Some(c))
}
