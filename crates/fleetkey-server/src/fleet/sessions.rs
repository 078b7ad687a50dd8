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

/// How often the devices heard from are written to the store (`last_seen`): at
/// most this late, and one transaction per interval however many messages came.
pub const SEEN_FLUSH: std::time::Duration = std::time::Duration::from_secs(5);

/// The windows of the `fleetkey_devices_seen` metric: label and seconds.
pub const SEEN_WINDOWS: [(&str, i64); 3] = [("5m", 300), ("1h", 3_600), ("24h", 86_400)];

impl DeviceSessions {
    /// Notes that the device was heard from now (a verified session message or
    /// frame). Nothing is written here: [`DeviceSessions::flush_seen`] writes
    /// every device noted since the last flush in one transaction (the set
    /// holds one entry per device heard from, so it is bounded by the registry:
    /// only verified devices are noted).
    pub fn seen(&self, device_id: &str) {
        let now = self.core.clock.now();
        let mut seen = self.seen.lock();
        match seen.get_mut(device_id) {
            Some(at) => *at = now,
            None => {
                seen.insert(device_id.to_owned(), now);
            }
        }
    }

    /// Writes every `last_seen` noted since the last flush; how many devices.
    /// On a failure the times are kept for the next flush (a newer time for
    /// the same device wins).
    pub async fn flush_seen(&self) -> Result<usize> {
        let batch: Vec<(String, UnixTime)> = {
            let mut seen = self.seen.lock();
            if seen.is_empty() {
                return Ok(0);
            }
            std::mem::take(&mut *seen).into_iter().collect()
        };
        if let Err(e) = self.store.record_seen(&batch).await {
            let mut seen = self.seen.lock();
            for (id, at) in batch {
                let t = seen.entry(id).or_insert(at);
                *t = (*t).max(at);
            }
            return Err(e);
        }
        Ok(batch.len())
    }

    /// Per fleet, how many devices were heard from within each of
    /// [`SEEN_WINDOWS`] (as stored: up to one [`SEEN_FLUSH`] behind).
    pub async fn seen_counts(&self) -> Result<Vec<(String, [i64; 3])>> {
        let now = self.core.clock.now();
        let since = SEEN_WINDOWS.map(|(_, secs)| now.saturating_sub(secs));
        self.store.seen_counts(since).await
    }

    /// Of a page of a fleet's devices (ids in `[from, up_to]`; one device:
    /// `from == up_to`), those with a session open now: one not recorded as ended whose device was heard from
    /// within `idle_secs` (plus a flush's delay), so a session left open by a
    /// killed instance stops counting once it would have timed out.
    pub async fn connected(
        &self,
        fleet: &str,
        from: &str,
        up_to: &str,
        idle_secs: u64,
    ) -> Result<std::collections::HashSet<String>> {
        let live_after = self.core.clock.now().saturating_sub(live_window(idle_secs));
        Ok(self
            .store
            .connected_devices(fleet, from, up_to, live_after)
            .await?
            .into_iter()
            .collect())
    }

    /// How many of `fleet`'s devices are connected now, by the same rule as
    /// [`DeviceSessions::connected`] (one COUNT query).
    pub async fn connected_count(&self, fleet: &str, idle_secs: u64) -> Result<i64> {
        let live_after = self.core.clock.now().saturating_sub(live_window(idle_secs));
        self.store.connected_device_count(fleet, live_after).await
    }

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

    /// The life cycle's `onboarded → active` step (docs/operations.md, "Device
    /// life cycle"): a device's first authenticated session (or, for a
    /// constrained device, its first verified boot) makes it active, audited
    /// as `device.activate` with the session. Only from `onboarded`; a device
    /// that moved meanwhile (suspended, rotating) is left as it is. Whether it
    /// moved.
    pub async fn activate(
        &self,
        device_id: &str,
        state: DeviceState,
        session: &str,
    ) -> Result<bool> {
        if state != DeviceState::Onboarded {
            return Ok(false);
        }
        let now = self.core.clock.now();
        let r = self
            .store
            .apply(
                Change::DeviceTransition(crate::store::Transition::new(
                    device_id,
                    &[DeviceState::Onboarded],
                    DeviceState::Active,
                    now,
                )),
                AuditDraft::new(
                    &format!("device:{device_id}"),
                    "device.activate",
                    format!("device:{device_id}"),
                    json!({ "session": session }),
                ),
                now,
            )
            .await;
        match r {
            Ok(_) => {
                self.core.device_changed(device_id);
                Ok(true)
            }
            // Another state since it was read: nothing to do.
            Err(crate::Error::IllegalTransition { .. }) => Ok(false),
            Err(e) => Err(e),
        }
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

/// How long after a device was last heard from an open session still counts as
/// connected: the idle timeout plus two `last_seen` flushes.
fn live_window(idle_secs: u64) -> i64 {
    i64::try_from(idle_secs)
        .unwrap_or(i64::MAX / 2)
        .saturating_add(i64::try_from(SEEN_FLUSH.as_secs()).unwrap_or(0) * 2)
}
