//! [`CustodyStore`] on [`SqlStore`]: the custody-wrapped blobs, the recorded
//! custody identity, the rewrap of a store to another root in one transaction,
//! and the guard that refuses changes from an instance on an old root.

use super::super::rows::StoreRow as _;
use super::super::rows::{to_i64, to_u32};
use super::super::{
    CUSTODY_IDENTITY, CustodyBlob, CustodyIdentity, CustodyStore, RewrapCustody, WrappedAt,
    same_custody,
};
use super::{Dialect, On, SqlStore, stmt};
use crate::error::{Error, Result};
use sqlx::Transaction;

/// Every wrapped blob, in a stable order (one query per table).
async fn blobs<D: Dialect>(tx: &mut Transaction<'_, D>) -> Result<Vec<CustodyBlob>> {
    let mut out = Vec::new();
    for r in stmt(
        "SELECT v.keyring, v.version, v.wrapped_key FROM key_versions v \
         JOIN keyrings k ON k.name = v.keyring \
         WHERE k.resident = 0 AND length(v.wrapped_key) > 0 ORDER BY v.keyring, v.version",
    )
    .all(&mut *tx)
    .await?
    .iter()
    {
        out.push(CustodyBlob {
            at: WrappedAt::KeyVersion {
                keyring: r.col("keyring")?,
                version: to_u32(r.col("version")?, "version")?,
            },
            wrapped: r.col("wrapped_key")?,
        });
    }
    for r in stmt("SELECT name, issuer_wrapped FROM fleets ORDER BY name")
        .all(&mut *tx)
        .await?
        .iter()
    {
        out.push(CustodyBlob {
            at: WrappedAt::FleetIssuer {
                fleet: r.col("name")?,
            },
            wrapped: r.col("issuer_wrapped")?,
        });
    }
    for r in stmt("SELECT name, wrapped FROM service_keys WHERE name <> $1 ORDER BY name")
        .bind(CUSTODY_IDENTITY)
        .all(&mut *tx)
        .await?
        .iter()
    {
        out.push(CustodyBlob {
            at: WrappedAt::ServiceKey {
                name: r.col("name")?,
            },
            wrapped: r.col("wrapped")?,
        });
    }
    for r in stmt(
        "SELECT s.device_id, COALESCE(d.retired_hardware_id, d.hardware_id) AS hardware_id, \
         s.wrapped FROM device_secrets s JOIN devices d ON d.id = s.device_id \
         WHERE length(s.wrapped) > 0 ORDER BY s.device_id",
    )
    .all(&mut *tx)
    .await?
    .iter()
    {
        out.push(CustodyBlob {
            at: WrappedAt::DeviceSecret {
                device_id: r.col("device_id")?,
                hardware_id: r.col("hardware_id")?,
            },
            wrapped: r.col("wrapped")?,
        });
    }
    Ok(out)
}

async fn identity<'c, D: Dialect>(on: impl Into<On<'c, D>>) -> Result<Option<CustodyIdentity>> {
    let row = stmt("SELECT wrapped, public FROM service_keys WHERE name = $1")
        .bind(CUSTODY_IDENTITY)
        .optional(on)
        .await?;
    row.map(|r| {
        let root: Vec<u8> = r.col("wrapped")?;
        Ok(CustodyIdentity {
            public: r.col("public")?,
            root_id: String::from_utf8(root)
                .map_err(|_| Error::Corrupt("the recorded custody root id is not UTF-8".into()))?,
        })
    })
    .transpose()
}

#[async_trait::async_trait]
impl<D: Dialect> CustodyStore for SqlStore<D> {
    async fn custody_blobs(&self) -> Result<Vec<CustodyBlob>> {
        // One transaction: a consistent view of the four tables.
        let mut tx = self.pool.begin().await?;
        let out = blobs(&mut tx).await?;
        tx.commit().await?;
        Ok(out)
    }

    async fn all_key_records(&self) -> Result<Vec<(String, Vec<u8>)>> {
        let rows = stmt("SELECT identity, record FROM key_records ORDER BY identity")
            .all(&self.pool)
            .await?;
        rows.iter()
            .map(|r| Ok((r.col("identity")?, r.col("record")?)))
            .collect()
    }

    async fn custody_identity(&self) -> Result<Option<CustodyIdentity>> {
        identity(&self.pool).await
    }

    fn expect_custody(&self, identity: CustodyIdentity) {
        *self.custody.write() = Some(identity);
    }

    async fn custody_moved(&self) -> Result<bool> {
        let Some(mine) = self.custody.read().clone() else {
            return Ok(false);
        };
        Ok(identity(&self.pool)
            .await?
            .is_some_and(|recorded| !same_custody(&recorded, &mine)))
    }
}

/// Inside an audited transaction: refuses when this handle expects a custody
/// identity and the store records another (the store was moved to another root
/// under a running instance).
pub(super) async fn guard<D: Dialect>(
    store: &SqlStore<D>,
    tx: &mut Transaction<'_, D>,
) -> Result<()> {
    let Some(mine) = store.custody.read().clone() else {
        return Ok(());
    };
    match identity(&mut *tx).await? {
        Some(recorded) if !same_custody(&recorded, &mine) => {
            Err(Error::CustodyUnavailable(format!(
                "the store was moved to another custody root ({}) while this instance runs on \
                 {}: restart it with the new custody settings",
                recorded.root_id, mine.root_id
            )))
        }
        _ => Ok(()),
    }
}

fn moved(what: &str) -> Error {
    Error::Conflict(format!(
        "the store changed while its keys were being rewrapped ({what}): run the command again"
    ))
}

/// Applies a [`RewrapCustody`] inside the audited transaction.
pub(super) async fn rewrap<D: Dialect>(
    tx: &mut Transaction<'_, D>,
    r: &RewrapCustody,
) -> Result<()> {
    match identity(&mut *tx).await? {
        Some(recorded) if same_custody(&recorded, &r.from) => {}
        _ => return Err(moved("its recorded custody is no longer the source")),
    }
    // Every blob the store holds now must be one that was rewrapped, unchanged.
    let now: Vec<(WrappedAt, Vec<u8>)> = blobs(tx)
        .await?
        .into_iter()
        .map(|b| (b.at, b.wrapped))
        .collect();
    if now.len() != r.blobs.len()
        || now
            .iter()
            .zip(&r.blobs)
            .any(|((at, bytes), (want_at, old, _))| at != want_at || bytes != old)
    {
        return Err(moved("a wrapped key was added, removed or replaced"));
    }
    for (at, _, new) in &r.blobs {
        let n = match at {
            WrappedAt::KeyVersion { keyring, version } => {
                stmt("UPDATE key_versions SET wrapped_key = $3 WHERE keyring = $1 AND version = $2")
                    .bind(keyring)
                    .bind(i64::from(*version))
                    .bind(new.as_slice())
                    .execute(&mut *tx)
                    .await?
            }
            WrappedAt::FleetIssuer { fleet } => {
                stmt("UPDATE fleets SET issuer_wrapped = $2 WHERE name = $1")
                    .bind(fleet)
                    .bind(new.as_slice())
                    .execute(&mut *tx)
                    .await?
            }
            WrappedAt::ServiceKey { name } => {
                stmt("UPDATE service_keys SET wrapped = $2 WHERE name = $1")
                    .bind(name)
                    .bind(new.as_slice())
                    .execute(&mut *tx)
                    .await?
            }
            WrappedAt::DeviceSecret { device_id, .. } => {
                stmt("UPDATE device_secrets SET wrapped = $2 WHERE device_id = $1")
                    .bind(device_id)
                    .bind(new.as_slice())
                    .execute(&mut *tx)
                    .await?
            }
        };
        if n != 1 {
            return Err(moved("a wrapped key vanished"));
        }
    }
    for w in &r.records {
        let n = stmt(
            "UPDATE key_records SET sequence = $2, record = $3, revoked = $4, issued_at = $5 \
             WHERE identity = $1 AND sequence = $6",
        )
        .bind(&w.identity)
        .bind(to_i64(w.sequence, "sequence")?)
        .bind(w.record.as_slice())
        .bind(i64::from(w.revoked))
        .bind(w.issued_at)
        .bind(to_i64(w.sequence.saturating_sub(1), "sequence")?)
        .execute(&mut *tx)
        .await?;
        if n != 1 {
            return Err(moved(&format!("the key record of {} changed", w.identity)));
        }
    }
    let records: i64 = stmt("SELECT COUNT(*) FROM key_records")
        .scalar(&mut *tx)
        .await?;
    if usize::try_from(records).ok() != Some(r.records.len()) {
        return Err(moved("a key record was added"));
    }
    stmt("UPDATE service_keys SET wrapped = $2, public = $3 WHERE name = $1")
        .bind(CUSTODY_IDENTITY)
        .bind(r.to.root_id.as_bytes())
        .bind(r.to.public.as_slice())
        .execute(&mut *tx)
        .await?;
    Ok(())
}
