//! The stored audit chain checked in place (`GET /v1/audit/verify`, the web
//! console's audit page): every entry's `prev_hash` and hash, from genesis, and
//! the newest checkpoint's signature (the service's current public key) and
//! head hash against the chain.
//!
//! The walk is incremental: what one call verified is remembered (the last
//! entry's sequence number and hash), so the next call reads only the entries
//! appended since; `full` starts again from genesis (an entry altered in the
//! database after it was verified is found only by a full walk, or by
//! `fleetkey audit export` + `fleetkey audit verify`). A walk reads at most
//! [`MAX_PER_CALL`] entries; beyond that the answer says it is not complete and
//! the next call goes on from there.

use super::{Checkpoint, GENESIS, entry_hash};
use crate::error::Result;
use crate::store::AuditStore;
use serde::{Deserialize, Serialize};

/// Most entries one call reads.
pub const MAX_PER_CALL: u64 = 200_000;
/// Entries read per store page.
const PAGE: u32 = 1000;

/// How far the chain has been verified.
#[derive(Debug, Clone, Copy)]
pub struct Progress {
    /// The last verified entry's sequence number (0: none yet).
    pub seq: u64,
    /// Its hash (genesis before the first).
    pub hash: [u8; 32],
}

impl Default for Progress {
    fn default() -> Self {
        Self {
            seq: 0,
            hash: GENESIS,
        }
    }
}

/// The first problem found.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Problem {
    /// The sequence number where it shows.
    pub seq: u64,
    /// What is wrong.
    pub reason: String,
}

/// The newest checkpoint, checked.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct CheckpointStatus {
    /// The entry it covers.
    pub seq: u64,
    /// When it was signed (Unix seconds).
    pub time: i64,
    /// Whether its signature verifies with the service's current public key.
    pub signature_valid: bool,
    /// Whether its head hash is the hash of entry `seq` in the chain.
    pub matches_chain: bool,
}

/// What a walk found.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ChainStatus {
    /// `valid` (every entry read chains, and the newest checkpoint verifies
    /// and matches), `invalid` (see `problem`), or `incomplete` (no problem so
    /// far, more entries to read: call again).
    pub verdict: String,
    /// Entries verified from genesis (this call and the ones before it).
    pub verified_entries: u64,
    /// Entries this call read.
    pub read_now: u64,
    /// The first problem, when the verdict is `invalid`.
    pub problem: Option<Problem>,
    /// The newest checkpoint (absent while none was signed).
    pub checkpoint: Option<CheckpointStatus>,
}

/// Walks the chain on from `progress` (genesis when `full`), then checks the
/// newest checkpoint with `public_key`. `progress` moves forward only over
/// entries that verified.
pub async fn verify_stored(
    audit: &dyn AuditStore,
    public_key: &[u8],
    progress: &mut Progress,
    full: bool,
) -> Result<ChainStatus> {
    if full {
        *progress = Progress::default();
    }
    let mut read_now = 0u64;
    let mut problem = None;
    let mut complete = false;
    while read_now < MAX_PER_CALL {
        let batch = audit.audit_entries(progress.seq, PAGE).await?;
        for e in &batch {
            read_now += 1;
            if let Some(p) = check_entry(progress, e) {
                problem = Some(p);
                break;
            }
            *progress = Progress {
                seq: e.seq,
                hash: e.hash,
            };
        }
        if problem.is_some() || batch.len() < PAGE as usize {
            complete = problem.is_none();
            break;
        }
    }
    let checkpoint = match audit.latest_checkpoint().await? {
        Some(c) => Some(check_checkpoint(audit, public_key, &c, progress).await?),
        None => None,
    };
    if problem.is_none()
        && let Some(c) = &checkpoint
        && !(c.signature_valid && c.matches_chain)
    {
        problem = Some(Problem {
            seq: c.seq,
            reason: if c.signature_valid {
                "the newest checkpoint's head hash is not the chain's hash at its entry".into()
            } else {
                "the newest checkpoint's signature does not verify with the service's key".into()
            },
        });
    }
    let verdict = match (&problem, complete) {
        (Some(_), _) => "invalid",
        (None, true) => "valid",
        (None, false) => "incomplete",
    };
    Ok(ChainStatus {
        verdict: verdict.into(),
        verified_entries: progress.seq,
        read_now,
        problem,
        checkpoint,
    })
}

/// Whether `e` follows `progress` in the chain; the problem when it does not.
fn check_entry(progress: &Progress, e: &super::AuditEntry) -> Option<Problem> {
    let bad = |reason: &str| {
        Some(Problem {
            seq: e.seq,
            reason: reason.into(),
        })
    };
    if e.seq != progress.seq + 1 {
        return Some(Problem {
            seq: progress.seq + 1,
            reason: format!(
                "expected entry {}, found {} (deleted or reordered)",
                progress.seq + 1,
                e.seq
            ),
        });
    }
    if e.prev_hash != progress.hash {
        return bad("prev_hash does not match the previous entry");
    }
    let h = entry_hash(
        &progress.hash,
        e.seq,
        e.time,
        &e.actor,
        &e.action,
        &e.subject,
        &e.details,
    );
    if h != e.hash {
        return bad("hash does not match the entry's contents (altered)");
    }
    None
}

/// The newest checkpoint's signature and its head hash against the verified
/// chain (an entry beyond what is verified is read and compared as stored).
async fn check_checkpoint(
    audit: &dyn AuditStore,
    public_key: &[u8],
    c: &Checkpoint,
    progress: &Progress,
) -> Result<CheckpointStatus> {
    let msg = Checkpoint::signed_bytes(c.seq, &c.head_hash, c.time);
    let signature_valid =
        fleetkey_crypto::composite::verify(public_key, &msg, &c.signature).is_ok();
    let matches_chain = if c.seq == progress.seq {
        c.head_hash == progress.hash
    } else {
        audit
            .audit_entries(c.seq.saturating_sub(1), 1)
            .await?
            .first()
            .is_some_and(|e| e.seq == c.seq && e.hash == c.head_hash)
    };
    Ok(CheckpointStatus {
        seq: c.seq,
        time: c.time,
        signature_valid,
        matches_chain,
    })
}
