//! A device's history for operators: what the audit log says happened to it
//! (registration, onboarding, credentials, state changes, refused sessions,
//! commands) and the sessions the device listener recorded, newest first.

use super::Core;
use crate::audit::AuditEntry;
use crate::error::{Error, Result};
use crate::store::{DeviceRecord, DeviceSessionRecord, HistoryStore};
use std::sync::Arc;

/// Most entries of each kind in one answer.
pub const MAX_LIMIT: u32 = 200;

/// A device's history.
#[derive(Debug)]
pub struct DeviceHistory {
    /// The device as it is now.
    pub device: DeviceRecord,
    /// Its audit entries (`subject` `device:<id>`), newest first.
    pub events: Vec<AuditEntry>,
    /// Its recorded sessions, newest first.
    pub sessions: Vec<DeviceSessionRecord>,
}

/// Reads devices' histories.
#[derive(Clone)]
pub struct History {
    pub(super) core: Arc<Core>,
    pub(super) store: Arc<dyn HistoryStore>,
}

impl History {
    /// The history of device `id` of `fleet` (another fleet's device is not
    /// found): at most `limit` events (kept to 1–[`MAX_LIMIT`]), those before
    /// audit entry `before` when given, and at most `limit` sessions.
    pub async fn device(
        &self,
        fleet: &str,
        id: &str,
        limit: u32,
        before: Option<u64>,
    ) -> Result<DeviceHistory> {
        let limit = limit.clamp(1, MAX_LIMIT);
        let device = self.core.device(id).await?;
        if device.fleet != fleet {
            return Err(Error::DeviceNotFound(id.to_owned()));
        }
        let events = self
            .store
            .audit_entries_about(&format!("device:{id}"), before, limit)
            .await?;
        let sessions = self.store.device_sessions(id, limit).await?;
        Ok(DeviceHistory {
            device,
            events,
            sessions,
        })
    }
}
