//! A device's history on [`SqlStore`]: its audit entries (by the
//! `audit_log_subject` index) and its sessions, newest first.

use super::super::rows::{entry_from_row, session_from_row, to_i64};
use super::super::{DeviceSessionRecord, HistoryStore};
use super::{Dialect, SqlStore, stmt};
use crate::error::Result;
use crate::store::audit_log::AuditEntry;

#[async_trait::async_trait]
impl<D: Dialect> HistoryStore for SqlStore<D> {
    async fn audit_entries_about(
        &self,
        subject: &str,
        before: Option<u64>,
        limit: u32,
    ) -> Result<Vec<AuditEntry>> {
        let before = match before {
            Some(b) => to_i64(b, "before")?,
            None => i64::MAX,
        };
        stmt(
            "SELECT * FROM audit_log WHERE subject = $1 AND seq < $2 \
             ORDER BY seq DESC LIMIT $3",
        )
        .bind(subject)
        .bind(before)
        .bind(i64::from(limit))
        .records(&self.pool, entry_from_row)
        .await
    }

    async fn device_sessions(
        &self,
        device_id: &str,
        limit: u32,
    ) -> Result<Vec<DeviceSessionRecord>> {
        stmt(
            "SELECT * FROM device_sessions WHERE device_id = $1 \
             ORDER BY started_at DESC, id LIMIT $2",
        )
        .bind(device_id)
        .bind(i64::from(limit))
        .records(&self.pool, session_from_row)
        .await
    }
}
