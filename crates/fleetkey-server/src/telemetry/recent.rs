//! The latest telemetry of recently active devices, kept in memory for
//! operators (the device page of the web console, `GET …/devices/{id}/history`):
//! the sink stays the record; this is a window on what this instance received.
//!
//! Bounded three ways: [`PER_DEVICE`] messages per device (oldest dropped), a
//! message's data above [`MAX_DATA_BYTES`] of JSON replaced by its size, and
//! [`DEVICES`] devices (the one written to least recently forgotten first), so
//! it never holds more than about 32 MiB whatever devices send.

use super::{TelemetryRecord, TelemetrySink};
use crate::error::Result;
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Arc;

/// Messages kept per device.
pub const PER_DEVICE: usize = 32;
/// Devices kept.
pub const DEVICES: usize = 1024;
/// Largest data kept as sent, bytes of JSON.
pub const MAX_DATA_BYTES: usize = 1024;

/// One telemetry message as kept.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct TelemetryPoint {
    /// The device's sequence number.
    pub seq: u64,
    /// The session it came in.
    pub session: String,
    /// Server time of receipt (Unix seconds).
    pub received_at: i64,
    /// What the device sent, or `{"omitted_bytes": n}` when it was larger than
    /// 1,024 bytes of JSON.
    #[schema(value_type = Object)]
    pub data: serde_json::Value,
}

#[derive(Default)]
struct Inner {
    devices: HashMap<String, (u64, VecDeque<TelemetryPoint>)>,
    /// Devices by the tick of their last message (the oldest first).
    order: BTreeMap<u64, String>,
    tick: u64,
}

/// The window of recent telemetry.
#[derive(Default)]
pub struct Recent {
    inner: Mutex<Inner>,
}

impl Recent {
    /// Keeps `r` as its device's newest message.
    pub fn remember(&self, r: &TelemetryRecord) {
        let size = serde_json::to_vec(&r.data).map_or(usize::MAX, |v| v.len());
        let data = if size <= MAX_DATA_BYTES {
            r.data.clone()
        } else {
            serde_json::json!({ "omitted_bytes": size })
        };
        let point = TelemetryPoint {
            seq: r.seq,
            session: r.session.clone(),
            received_at: r.received_at,
            data,
        };
        let mut g = self.inner.lock();
        let inner = &mut *g;
        inner.tick += 1;
        let tick = inner.tick;
        if let Some((last, points)) = inner.devices.get_mut(&r.device_id) {
            inner.order.remove(last);
            *last = tick;
            if points.len() == PER_DEVICE {
                points.pop_front();
            }
            points.push_back(point);
        } else {
            if inner.devices.len() == DEVICES
                && let Some((_, oldest)) = inner.order.pop_first()
            {
                inner.devices.remove(&oldest);
            }
            inner
                .devices
                .insert(r.device_id.clone(), (tick, VecDeque::from([point])));
        }
        inner.order.insert(tick, r.device_id.clone());
    }

    /// The device's kept messages, oldest first (empty when none is kept).
    pub fn latest(&self, device_id: &str) -> Vec<TelemetryPoint> {
        self.inner
            .lock()
            .devices
            .get(device_id)
            .map(|(_, p)| p.iter().cloned().collect())
            .unwrap_or_default()
    }

    /// Forgets a device (decommissioned).
    pub fn forget(&self, device_id: &str) {
        let mut g = self.inner.lock();
        if let Some((tick, _)) = g.devices.remove(device_id) {
            g.order.remove(&tick);
        }
    }
}

/// A sink that keeps what its inner sink stored in a [`Recent`] window.
pub struct Remembering {
    inner: Arc<dyn TelemetrySink>,
    recent: Arc<Recent>,
}

impl Remembering {
    /// `inner`, remembering into `recent`.
    pub fn new(inner: Arc<dyn TelemetrySink>, recent: Arc<Recent>) -> Self {
        Self { inner, recent }
    }
}

#[async_trait::async_trait]
impl TelemetrySink for Remembering {
    async fn deliver(&self, record: &TelemetryRecord) -> Result<()> {
        self.inner.deliver(record).await?;
        self.recent.remember(record);
        Ok(())
    }

    async fn flush(&self) -> Result<()> {
        self.inner.flush().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(device: &str, seq: u64, data: serde_json::Value) -> TelemetryRecord {
        TelemetryRecord {
            device_id: device.into(),
            fleet: "f".into(),
            session: "s".into(),
            seq,
            received_at: 1_700_000_000 + i64::try_from(seq).unwrap_or(0),
            data,
        }
    }

    #[test]
    fn keeps_the_newest_messages_of_the_most_recent_devices() {
        let r = Recent::default();
        for seq in 0..(PER_DEVICE as u64 + 5) {
            r.remember(&record("a", seq, serde_json::json!({"t": seq})));
        }
        let a = r.latest("a");
        assert_eq!(a.len(), PER_DEVICE);
        assert_eq!(a[0].seq, 5);
        assert_eq!(a[PER_DEVICE - 1].seq, PER_DEVICE as u64 + 4);
        // More devices than kept: the least recently written goes first ("a"
        // wrote before all of them, then once more, so "d0" goes).
        for i in 0..DEVICES - 1 {
            r.remember(&record(&format!("d{i}"), 1, serde_json::json!(1)));
        }
        r.remember(&record("a", 999, serde_json::json!(1)));
        r.remember(&record("late", 1, serde_json::json!(1)));
        assert!(r.latest("d0").is_empty());
        assert_eq!(r.latest("a").last().map(|p| p.seq), Some(999));
        assert_eq!(r.latest("late").len(), 1);
        assert_eq!(r.inner.lock().devices.len(), DEVICES);
        assert_eq!(r.inner.lock().order.len(), DEVICES);
        r.forget("a");
        assert!(r.latest("a").is_empty());
        assert_eq!(r.inner.lock().order.len(), DEVICES - 1);
    }

    #[test]
    fn large_data_is_kept_as_its_size() {
        let r = Recent::default();
        let big = "x".repeat(MAX_DATA_BYTES);
        r.remember(&record("a", 1, serde_json::json!({ "blob": big })));
        let p = &r.latest("a")[0];
        assert_eq!(
            p.data,
            serde_json::json!({ "omitted_bytes": MAX_DATA_BYTES + 11 })
        );
    }
}
