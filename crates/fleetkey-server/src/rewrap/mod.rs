//! Moving the store to another custody root (`fleetkey custody migrate` and
//! `rotate`, docs/custody.md "Moving the root"): every custody-wrapped blob is
//! unwrapped by the old root and wrapped by the new one, every key record is
//! re-signed by the new root's signing key, and all of it, the store's new
//! custody identity and one audit entry naming the new signing key commit in
//! one transaction. No data key changes, so every envelope opens afterwards;
//! instances keep the keys they hold in memory throughout. A checkpoint signed
//! by the old key then covers the entry, handing the audit chain over to the
//! new key ([`crate::audit::verify::verify_export`]).

use crate::audit::AuditDraft;
use crate::clock::SharedClock;
use crate::custody::Custody;
use crate::directory::{
    Directory, SERVICE_IDENTITY, kem_blob, kem_blob_parts, with_service_signer,
};
use crate::error::{Error, Result};
use crate::store::{Change, CustodyIdentity, RewrapCustody, Store, WrappedAt, same_custody};
use fleetkey_crypto::record;
use std::sync::Arc;

/// What a move did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The store was moved: how many wrapped keys and key records, and the
    /// audit entry's sequence number.
    Moved {
        /// Wrapped keys rewrapped.
        blobs: usize,
        /// Key records re-signed.
        records: usize,
        /// The audit entry of the move.
        audit_seq: u64,
    },
    /// The store already records the target custody (a move that was
    /// interrupted after its commit, run again): nothing to do but the
    /// handover checkpoint, which was written if missing.
    AlreadyMoved,
}

/// How many times a move is retried when the store changed under it.
const ATTEMPTS: u32 = 5;

fn identity(c: &dyn Custody) -> CustodyIdentity {
    CustodyIdentity {
        public: c.public_key(),
        root_id: c.root_id(),
    }
}

/// The custody wrap context of a blob (the one its owner unwraps it with).
fn context(at: &WrappedAt) -> String {
    match at {
        WrappedAt::KeyVersion { keyring, version } => crate::keys::wrap_context(keyring, *version),
        WrappedAt::FleetIssuer { fleet } => crate::fleet::issuer_context(fleet),
        WrappedAt::ServiceKey { name } => format!("service:{name}"),
        WrappedAt::DeviceSecret { hardware_id, .. } => {
            crate::fleet::constrained::context(hardware_id)
        }
    }
}

/// Moves the store from custody `from` (the root it records) to custody `to`.
/// `action` is `custody.migrate` or `custody.rotate` (the audit entry's).
pub async fn move_store(
    store: Arc<dyn Store>,
    from: Arc<dyn Custody>,
    to: Arc<dyn Custody>,
    clock: SharedClock,
    actor: &str,
    action: &'static str,
) -> Result<Outcome> {
    let (old, new) = (identity(from.as_ref()), identity(to.as_ref()));
    if old.root_id == new.root_id {
        return Err(Error::CustodyConfig(format!(
            "the target custody is the store's own root ({}): give the target its own \
             settings (FLEETKEY_TO_* variables, docs/custody.md)",
            new.root_id
        )));
    }
    match store.custody_identity().await? {
        Some(recorded) if same_custody(&recorded, &new) => {
            crate::audit::checkpoint(store.as_ref(), from.as_ref(), clock.now()).await?;
            return Ok(Outcome::AlreadyMoved);
        }
        Some(_) => crate::store::refuse_other_custody(store.as_ref(), from.as_ref()).await?,
        // A store no instance has started on: record the source first.
        None => {
            crate::store::record_custody_identity(store.as_ref(), from.as_ref(), clock.now())
                .await?
        }
    }
    if let Some(k) = store
        .keyrings()
        .await?
        .into_iter()
        .find(|k| k.resident && k.state != crate::store::KeyringState::Deleted)
    {
        return Err(Error::CustodyUnsupported(format!(
            "keyring {:?} is resident: its keys never leave {}'s token, so the store cannot \
             move to another root while it exists (delete it first)",
            k.name,
            from.backend()
        )));
    }
    let mut last = None;
    for _ in 0..ATTEMPTS {
        match attempt(&store, &from, &to, &clock, actor, action, &old, &new).await {
            Err(e @ Error::Conflict(_)) => last = Some(e),
            Err(e) => return Err(e),
            Ok(outcome) => {
                // The old key signs a checkpoint covering the move: the chain's
                // handover to the new key.
                crate::audit::checkpoint(store.as_ref(), from.as_ref(), clock.now()).await?;
                return Ok(outcome);
            }
        }
    }
    Err(last.unwrap_or_else(|| Error::Internal("custody move: no attempt made".into())))
}

#[allow(clippy::too_many_arguments)]
async fn attempt(
    store: &Arc<dyn Store>,
    from: &Arc<dyn Custody>,
    to: &Arc<dyn Custody>,
    clock: &SharedClock,
    actor: &str,
    action: &'static str,
    old: &CustodyIdentity,
    new: &CustodyIdentity,
) -> Result<Outcome> {
    let mut blobs = Vec::new();
    for b in store.custody_blobs().await? {
        let rewrapped = rewrap_blob(from.as_ref(), to.as_ref(), &b.at, &b.wrapped).await?;
        blobs.push((b.at, b.wrapped, rewrapped));
    }
    let directory = Directory::new(store.clone(), to.clone(), clock.clone());
    let mut records = Vec::new();
    for (identity_name, token) in store.all_key_records().await? {
        let r = record::peek(&token)?;
        let keys = if identity_name == SERVICE_IDENTITY {
            with_service_signer(r.keys, &new.public)?
        } else {
            r.keys
        };
        records.push(
            directory
                .prepare(&identity_name, r.kind, keys, r.revoked)
                .await?,
        );
    }
    let (n_blobs, n_records) = (blobs.len(), records.len());
    let details = serde_json::json!({
        "from_backend": from.backend(),
        "from_root": old.root_id,
        "from_public_key_sha256": hex::encode(aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, &old.public)),
        "to_backend": to.backend(),
        "to_root": new.root_id,
        "to_public_key": crate::audit::verify::public_key_text(&new.public),
        "wrapped_keys": n_blobs,
        "key_records": n_records,
    });
    let entry = store
        .apply(
            Change::RewrapCustody(Box::new(RewrapCustody {
                from: old.clone(),
                to: new.clone(),
                blobs,
                records,
            })),
            AuditDraft::new(actor, action, "custody", details),
            clock.now(),
        )
        .await?;
    Ok(Outcome::Moved {
        blobs: n_blobs,
        records: n_records,
        audit_seq: entry.seq,
    })
}

/// One blob unwrapped by `from` and wrapped by `to` under the same context; the
/// service's ML-KEM key blob keeps its sealed part and gets its inner key rewrapped.
async fn rewrap_blob(
    from: &dyn Custody,
    to: &dyn Custody,
    at: &WrappedAt,
    wrapped: &[u8],
) -> Result<Vec<u8>> {
    let ctx = context(at);
    let cannot = |e: Error| match e {
        Error::Envelope(_) => Error::Corrupt(format!(
            "{ctx}: its stored key does not open under the store's custody"
        )),
        other => other,
    };
    if matches!(at, WrappedAt::ServiceKey { name } if name == "noise-kem") {
        let (inner, sealed) = kem_blob_parts(wrapped)?;
        let key = from.unwrap(inner, &ctx).await.map_err(cannot)?;
        return kem_blob(&to.wrap(&key, &ctx).await?, sealed);
    }
    let key = from.unwrap(wrapped, &ctx).await.map_err(cannot)?;
    to.wrap(&key, &ctx).await
}
