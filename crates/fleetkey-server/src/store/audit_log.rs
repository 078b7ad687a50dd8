//! The audit log's records and its chaining rule, which the store applies inside
//! the transaction that appends (the head is read and extended under the audit
//! lock). The domain side (export, verification, signed checkpoints) is
//! `crate::audit`; format: `docs/formats.md#audit-log`.

use crate::clock::UnixTime;
use aws_lc_rs::digest::{SHA256, digest};
use base64::{Engine as _, engine::general_purpose::URL_SAFE_NO_PAD};
use serde::{Deserialize, Serialize};

/// Hash of nothing: the `prev_hash` of entry 1.
pub const GENESIS: [u8; 32] = [0u8; 32];

/// Longest text field (actor, action, subject) in bytes.
pub const MAX_FIELD: usize = 256;
/// Longest details JSON in bytes.
pub const MAX_DETAILS: usize = 16 * 1024;

/// An entry before it is sequenced and chained. `details` must never hold secret
/// material; the scan test in `tests/` checks that.
#[derive(Debug, Clone)]
pub struct AuditDraft {
    /// Who did it (`cli:root`, `token:…`, `scheduler`).
    pub actor: String,
    /// What (`keyring.create`, `keyring.rotate`, …).
    pub action: String,
    /// What to (`keyring:payments`).
    pub subject: String,
    /// Structured, non-secret details.
    pub details: serde_json::Value,
}

impl AuditDraft {
    /// A draft.
    pub fn new(
        actor: &str,
        action: &str,
        subject: impl Into<String>,
        details: serde_json::Value,
    ) -> Self {
        Self {
            actor: actor.to_owned(),
            action: action.to_owned(),
            subject: subject.into(),
            details,
        }
    }
}

/// A chained entry, as stored and exported (one JSON object per line).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditEntry {
    /// 1, 2, 3, … without gaps.
    pub seq: u64,
    /// Seconds since the Unix epoch.
    pub time: UnixTime,
    /// Who.
    pub actor: String,
    /// What.
    pub action: String,
    /// What to.
    pub subject: String,
    /// The details as the exact JSON text that was hashed.
    pub details: String,
    /// Previous entry's hash (base64url).
    #[serde(with = "b64_32")]
    pub prev_hash: [u8; 32],
    /// This entry's hash (base64url).
    #[serde(with = "b64_32")]
    pub hash: [u8; 32],
}

/// A signed statement that the chain had `head_hash` at `seq`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Checkpoint {
    /// Sequence number of the head entry.
    pub seq: u64,
    /// Its hash.
    #[serde(with = "b64_32")]
    pub head_hash: [u8; 32],
    /// When the checkpoint was made.
    pub time: UnixTime,
    /// Composite Ed25519 + ML-DSA-65 signature over [`Checkpoint::signed_bytes`].
    #[serde(with = "b64_vec")]
    pub signature: Vec<u8>,
}

impl Checkpoint {
    /// `"fleetkey audit checkpoint v1" ‖ BE64(seq) ‖ head_hash ‖ BE64(time)`.
    pub fn signed_bytes(seq: u64, head_hash: &[u8; 32], time: UnixTime) -> Vec<u8> {
        let mut m = b"fleetkey audit checkpoint v1".to_vec();
        m.extend_from_slice(&seq.to_be_bytes());
        m.extend_from_slice(head_hash);
        m.extend_from_slice(&time.to_be_bytes());
        m
    }
}

fn field(out: &mut Vec<u8>, s: &[u8]) {
    // Fields come from bounded requests (bodies are at most 16 MiB), far below 4 GiB.
    out.extend_from_slice(&u32::try_from(s.len()).unwrap_or(u32::MAX).to_be_bytes());
    out.extend_from_slice(s);
}

/// The canonical encoding that is hashed:
/// `BE64(seq) ‖ BE64(time) ‖ LP(actor) ‖ LP(action) ‖ LP(subject) ‖ LP(details)`,
/// where `LP(x) = BE32(len(x)) ‖ x`.
pub fn canonical(
    seq: u64,
    time: UnixTime,
    actor: &str,
    action: &str,
    subject: &str,
    details: &str,
) -> Vec<u8> {
    let mut out =
        Vec::with_capacity(32 + actor.len() + action.len() + subject.len() + details.len());
    out.extend_from_slice(&seq.to_be_bytes());
    out.extend_from_slice(&time.to_be_bytes());
    field(&mut out, actor.as_bytes());
    field(&mut out, action.as_bytes());
    field(&mut out, subject.as_bytes());
    field(&mut out, details.as_bytes());
    out
}

/// `SHA-256(prev_hash ‖ canonical entry)`.
pub fn entry_hash(
    prev: &[u8; 32],
    seq: u64,
    time: UnixTime,
    actor: &str,
    action: &str,
    subject: &str,
    details: &str,
) -> [u8; 32] {
    let mut buf = prev.to_vec();
    buf.extend_from_slice(&canonical(seq, time, actor, action, subject, details));
    let d = digest(&SHA256, &buf);
    let mut out = [0u8; 32];
    out.copy_from_slice(d.as_ref());
    out
}

impl AuditEntry {
    /// Sequences and chains a draft after `prev` (`None` for the first entry).
    pub fn chain(
        draft: &AuditDraft,
        prev: Option<(u64, [u8; 32])>,
        time: UnixTime,
    ) -> crate::Result<Self> {
        let details = serde_json::to_string(&draft.details).map_err(|e| crate::Error::Invalid {
            what: "audit details",
            why: e.to_string(),
        })?;
        if draft.actor.len() > MAX_FIELD
            || draft.action.len() > MAX_FIELD
            || draft.subject.len() > MAX_FIELD
        {
            return Err(crate::Error::Invalid {
                what: "audit entry",
                why: "a field is longer than 256 bytes".into(),
            });
        }
        if details.len() > MAX_DETAILS {
            return Err(crate::Error::Invalid {
                what: "audit details",
                why: "longer than 16 KiB".into(),
            });
        }
        let (prev_seq, prev_hash) = prev.unwrap_or((0, GENESIS));
        let seq = prev_seq + 1;
        let hash = entry_hash(
            &prev_hash,
            seq,
            time,
            &draft.actor,
            &draft.action,
            &draft.subject,
            &details,
        );
        Ok(Self {
            seq,
            time,
            actor: draft.actor.clone(),
            action: draft.action.clone(),
            subject: draft.subject.clone(),
            details,
            prev_hash,
            hash,
        })
    }
}

mod b64_32 {
    use super::*;
    pub fn serialize<S: serde::Serializer>(v: &[u8; 32], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&URL_SAFE_NO_PAD.encode(v))
    }
    pub fn deserialize<'de, D: serde::Deserializer<'de>>(d: D) -> Result<[u8; 32], D::Error> {
        let s = String::deserialize(d)?;
        let v = URL_SAFE_NO_PAD
            .decode(s)
            .map_err(serde::de::Error::custom)?;
        v.try_into()
            .map_err(|_| serde::de::Error::custom("expected 32 bytes"))
    }
}

mod b64_vec {
    use super::*;
    pub fn serialize<S: serde::Serializer>(v: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&URL_SAFE_NO_PAD.encode(v))
    }
    pub fn deserialize<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let s = String::deserialize(d)?;
        URL_SAFE_NO_PAD.decode(s).map_err(serde::de::Error::custom)
    }
}
