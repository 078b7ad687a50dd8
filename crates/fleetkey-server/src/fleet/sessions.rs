//! Device sessions as the fleet records them: which previous session a device may
//! resume, where its telemetry stands, each session's start and end, and the
//! housekeeping of old records. The device listener (`api/listener`) runs the
//! sessions; the rules and records are here.

use super::FleetService;
use crate::clock::UnixTime;
use crate::error::Result;
use crate::store::DeviceSessionRecord;

impl FleetService {
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
            .close_device_session(id, self.now(), telemetry_seq, messages_in, messages_out)
            .await
    }

    /// Deletes records of sessions that ended before `before` (each device's
    /// telemetry position is kept); how many.
    pub async fn prune_sessions(&self, before: UnixTime) -> Result<u64> {
        self.store.prune_device_sessions(before).await
    }

    /// Deletes expired onboarding challenges; how many.
    pub async fn prune_challenges(&self) -> Result<u64> {
        self.store.prune_challenges(self.now()).await
    }

    /// Whether this instance runs the scheduled jobs now (one instance at a time
    /// on a shared database; always on the embedded store).
    pub async fn leads_scheduler(&self) -> Result<bool> {
        self.store.scheduler_leader().await
    }

    /// Whether the fleet lets constrained devices use a static key.
    pub async fn allows_static_key(&self, fleet: &str) -> Result<bool> {
        self.store.fleet_allows_static_key(fleet).await
    }
}
