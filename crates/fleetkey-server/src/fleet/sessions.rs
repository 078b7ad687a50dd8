//! Device sessions as the fleet records them: which previous session a device may
//! resume, where its telemetry stands, each session's start and end, and the
//! housekeeping of old records. The device listener (`api/listener`) runs the
//! sessions; the rules and records are here.

use super::{DeviceSessions, RefusalCount};
use crate::audit::AuditDraft;
use crate::clock::UnixTime;
use crate::error::Result;
use crate::store::{Change, DeviceRecord, DeviceSessionRecord, DeviceState};
use serde_json::json;

impl DeviceSessions {
    /// Whether `previous` names an earlier session of `device_id` (a session id is
    /// 32 hex digits; anything else is simply not resumed).
    pub async fn resumable(&self, device_id: &str, previous: &str) -> Result<bool> {
        if previous.len() != 32 || !previous.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Ok(false);
        }
        Ok(self
            .store
            .device_session(previous)
            .await?
            .is_some_and(|s| s.device_id == device_id))
    }

    /// The highest telemetry sequence number stored for the device.
    pub async fn telemetry_position(&self, device_id: &str) -> Result<u64> {
        self.store.device_telemetry_seq(device_id).await
    }

    /// Records the start of a session.
    pub async fn session_opened(&self, session: &DeviceSessionRecord) -> Result<()> {
        self.store.open_device_session(session).await
    }

    /// Records the end of session `id`: when, the telemetry position and the
    /// messages each way.
    pub async fn session_closed(
        &self,
        id: &str,
        telemetry_seq: u64,
        messages_in: u64,
        messages_out: u64,
    ) -> Result<()> {
        self.store
            .close_device_session(
                id,
                self.core.clock.now(),
                telemetry_seq,
                messages_in,
                messages_out,
            )
            .await
    }

    /// Deletes records of sessions that ended before `before` (each device's
    /// telemetry position is kept); how many.
    pub async fn prune_sessions(&self, before: UnixTime) -> Result<u64> {
        self.store.prune_device_sessions(before).await
    }

    /// The device whose Noise static key this is, if it may open a session now
    /// (onboarded, active, rotating, or decommissioning — for the wipe only);
    /// otherwise why not, for the refusal.
    pub async fn session_device(
        &self,
        x25519: &[u8; 32],
    ) -> Result<std::result::Result<DeviceRecord, (Option<String>, &'static str)>> {
        let Some(d) = self.store.device_by_x25519(x25519).await? else {
            return Ok(Err((None, "unknown_device")));
        };
        Ok(match d.state {
            // Decommissioning: the session carries the wipe command and its
            // receipt, nothing else (the listener enforces it).
            DeviceState::Onboarded
            | DeviceState::Active
            | DeviceState::Rotating
            | DeviceState::Decommissioning => Ok(d),
            DeviceState::Manufactured => Err((Some(d.id), "not_onboarded")),
            DeviceState::Suspended => Err((Some(d.id), "suspended")),
            DeviceState::Decommissioned => Err((Some(d.id), "decommissioned")),
        })
    }

    /// Records refused session attempts from unknown keys, counted over
    /// `interval_secs`, as one `session.refused` audit entry (target
    /// `device:unknown`). Nothing to record: no entry.
    pub async fn audit_refusal_summary(
        &self,
        interval_secs: u64,
        counts: &[RefusalCount],
    ) -> Result<()> {
        if counts.is_empty() {
            return Ok(());
        }
        let total: u64 = counts.iter().map(|c| c.count).sum();
        self.audit_refusal(
            "device:unknown".to_owned(),
            json!({ "summary": true, "interval_secs": interval_secs, "total": total, "refusals": counts }),
        )
        .await
    }

    /// Records a refused session attempt of a registered device in the audit log.
    pub async fn audit_session_refusal(
        &self,
        device_id: Option<&str>,
        key: &[u8; 32],
        reason: &str,
        peer: &str,
    ) -> Result<()> {
        let target =
            device_id.map_or_else(|| "device:unknown".to_owned(), |d| format!("device:{d}"));
        let prefix = fleetkey_crypto::hex_prefix(key);
        self.audit_refusal(
            target,
            json!({ "reason": reason, "x25519_prefix": prefix, "peer": peer }),
        )
        .await
    }

    /// One `session.refused` audit entry by the device listener.
    async fn audit_refusal(&self, target: String, detail: serde_json::Value) -> Result<()> {
        let now = self.core.clock.now();
        let draft = AuditDraft::new("device-listener", "session.refused", target, detail);
        self.store
            .apply(Change::AuditOnly, draft, now)
            .await
            .map(|_| ())
    }
}
