//! Offline verification of an audit export.
//!
//! An export is JSON lines: `{"entry": {…}}` for each entry in order, and
//! `{"checkpoint": {…}}` lines; it must end with a checkpoint covering its last
//! entry, so cutting the tail is detected too. Verification needs only the export
//! and the service's composite public key.

use super::{AuditEntry, Checkpoint, GENESIS, entry_hash};
use serde::{Deserialize, Serialize};

/// One line of an export.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum ExportLine {
    /// An audit entry.
    Entry(AuditEntry),
    /// A signed checkpoint.
    Checkpoint(Checkpoint),
}

impl ExportLine {
    /// The line as an export holds it (JSON, without the newline).
    pub fn to_line(&self) -> String {
        // Serialising these plain structs cannot fail; an empty line would be
        // refused by verification, never taken as valid.
        serde_json::to_string(self).unwrap_or_default()
    }
}

/// How a public key is written for `fleetkey audit verify`: this prefix, then the
/// key in unpadded URL-safe base64.
pub const PUBLIC_KEY_PREFIX: &str = "fk1sig:";

/// `key` as written for `fleetkey audit verify` (`fk1sig:…`).
pub fn public_key_text(key: &[u8]) -> String {
    use base64::{Engine as _, engine::general_purpose::URL_SAFE_NO_PAD};
    format!("{PUBLIC_KEY_PREFIX}{}", URL_SAFE_NO_PAD.encode(key))
}

/// The key in `text` (`fk1sig:…`, surrounding whitespace ignored), or `None`.
pub fn parse_public_key(text: &str) -> Option<Vec<u8>> {
    use base64::{Engine as _, engine::general_purpose::URL_SAFE_NO_PAD};
    let b = text.trim().strip_prefix(PUBLIC_KEY_PREFIX)?;
    URL_SAFE_NO_PAD.decode(b).ok()
}

/// What verification found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Every entry chains, every checkpoint verifies, and the last checkpoint covers
    /// the last entry.
    Valid {
        /// Entries checked.
        entries: u64,
        /// Checkpoints checked.
        checkpoints: u64,
    },
    /// The first problem, with the sequence number where it shows.
    Invalid {
        /// The first bad sequence number (for a bad line, the one expected there).
        seq: u64,
        /// What is wrong.
        reason: String,
    },
}

/// Longest accepted export line.
pub const MAX_LINE: usize = 64 * 1024;

/// Verifies an export read line by line from `lines`, starting with
/// `public_key`. An entry of a custody move ([`super::HANDOVER_ACTIONS`]) names
/// the next key in `details.to_public_key`; the first checkpoint covering it
/// must verify with the current key, and from then on checkpoints verify with
/// the named one (a chain of trust from the key you hold).
pub fn verify_export<I, S>(lines: I, public_key: &[u8]) -> Verdict
where
    I: IntoIterator<Item = S>,
    S: AsRef<str>,
{
    let mut expected_seq = 1u64;
    let mut prev = GENESIS;
    let mut entries = 0u64;
    let mut checkpoints = 0u64;
    let mut covered = 0u64;
    let mut key = public_key.to_vec();
    let mut handover: Option<(u64, Vec<u8>)> = None;
    let bad = |seq: u64, reason: String| Verdict::Invalid { seq, reason };
    for (n, line) in lines.into_iter().enumerate() {
        let line = line.as_ref();
        if line.trim().is_empty() {
            continue;
        }
        if line.len() > MAX_LINE {
            return bad(
                expected_seq,
                format!("line {} is longer than {MAX_LINE} bytes", n + 1),
            );
        }
        let parsed: ExportLine = match serde_json::from_str(line) {
            Ok(p) => p,
            Err(e) => {
                return bad(
                    expected_seq,
                    format!("line {} is not an export line: {e}", n + 1),
                );
            }
        };
        match parsed {
            ExportLine::Entry(e) => {
                if e.seq != expected_seq {
                    return bad(
                        expected_seq,
                        format!(
                            "expected entry {expected_seq}, found {} (deleted or reordered)",
                            e.seq
                        ),
                    );
                }
                if e.prev_hash != prev {
                    return bad(e.seq, "prev_hash does not match the previous entry".into());
                }
                let h = entry_hash(
                    &prev, e.seq, e.time, &e.actor, &e.action, &e.subject, &e.details,
                );
                if h != e.hash {
                    return bad(
                        e.seq,
                        "hash does not match the entry's contents (altered)".into(),
                    );
                }
                if super::HANDOVER_ACTIONS.contains(&e.action.as_str()) {
                    let next = serde_json::from_str::<serde_json::Value>(&e.details)
                        .ok()
                        .and_then(|d| d.get("to_public_key")?.as_str().map(str::to_owned))
                        .and_then(|t| parse_public_key(&t));
                    match next {
                        Some(k) => handover = Some((e.seq, k)),
                        None => {
                            return bad(
                                e.seq,
                                "a custody move entry without a valid to_public_key".into(),
                            );
                        }
                    }
                }
                prev = h;
                expected_seq += 1;
                entries += 1;
            }
            ExportLine::Checkpoint(c) => {
                let msg = Checkpoint::signed_bytes(c.seq, &c.head_hash, c.time);
                if fleetkey_crypto::composite::verify(&key, &msg, &c.signature).is_err() {
                    return bad(
                        c.seq,
                        "checkpoint signature does not verify with this public key".into(),
                    );
                }
                if c.seq != expected_seq - 1 || c.head_hash != prev {
                    return bad(
                        c.seq,
                        "checkpoint does not match the chain at its sequence number".into(),
                    );
                }
                covered = c.seq;
                checkpoints += 1;
                if handover.as_ref().is_some_and(|(at, _)| *at <= c.seq)
                    && let Some((_, next)) = handover.take()
                {
                    key = next;
                }
            }
        }
    }
    if checkpoints == 0 || covered != expected_seq - 1 {
        return bad(
            covered + 1,
            "the export does not end with a checkpoint covering its last entry (truncated?)".into(),
        );
    }
    Verdict::Valid {
        entries,
        checkpoints,
    }
}
