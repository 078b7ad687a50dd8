//! Where verified device telemetry goes. A message is acknowledged to the device
//! only after its sink took it, so an acknowledged message is never lost to a
//! server crash before the write (at-least-once: a message sent again after a
//! reconnect is recognised by its sequence number and dropped).
//!
//! [`JsonLinesSink`] (the default) appends one JSON object per message to a file:
//! `{"device_id","fleet","session","seq","received_at","data"}`. Writes are
//! buffered and flushed at least every 50 ms (and by the server's ticker); paths
//! that acknowledge to a device (session telemetry) call [`TelemetrySink::flush`]
//! before acknowledging.

pub mod mqtt;
pub mod recent;

use crate::error::{Error, Result};
use parking_lot::Mutex;
use serde::Serialize;
use std::io::Write as _;
use std::path::{Path, PathBuf};

/// One verified telemetry message, attributed to its device and fleet.
#[derive(Debug, Clone, Serialize)]
pub struct TelemetryRecord {
    /// The device (proved by the session's static key).
    pub device_id: String,
    /// Its fleet.
    pub fleet: String,
    /// The session it came in.
    pub session: String,
    /// The device's sequence number.
    pub seq: u64,
    /// Server time of receipt.
    pub received_at: i64,
    /// What the device sent.
    pub data: serde_json::Value,
}

/// A destination for telemetry.
#[async_trait::async_trait]
pub trait TelemetrySink: Send + Sync {
    /// Stores one message; an error means it was not stored (not acknowledged).
    async fn deliver(&self, record: &TelemetryRecord) -> Result<()>;

    /// Pushes buffered messages to their destination.
    async fn flush(&self) -> Result<()> {
        Ok(())
    }
}

/// How long a buffered message may wait before a write flushes it.
pub const FLUSH_AFTER: std::time::Duration = std::time::Duration::from_millis(50);

/// Appends JSON lines to a file. A message is copied into a 64 KiB buffer under a
/// short lock (the same lock policy as the rest of the server: `parking_lot`, no
/// poisoning); the buffer goes to the file when it fills, at least every
/// [`FLUSH_AFTER`] and on [`TelemetrySink::flush`]. Those are page-cache writes,
/// not `fsync`: the lock is never held while waiting for the disk to make data
/// durable. (Writing through tokio's file instead, one blocking-pool hop per
/// write, made the frame ingest path 0.72x as fast; see docs/benchmarks.md.)
pub struct JsonLinesSink {
    path: PathBuf,
    file: Mutex<(std::io::BufWriter<std::fs::File>, std::time::Instant)>,
}

impl JsonLinesSink {
    /// Opens (creating) the file for appending.
    pub fn open(path: &Path) -> Result<Self> {
        let io = |e| Error::Io {
            path: path.display().to_string(),
            source: e,
        };
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            crate::secret_file::private_dir(dir).map_err(io)?;
        }
        // Telemetry is the fleet's data: owner-only, like the store.
        use std::os::unix::fs::OpenOptionsExt as _;
        let f = std::fs::OpenOptions::new()
            .mode(0o600)
            .create(true)
            .append(true)
            .open(path)
            .map_err(io)?;
        Ok(Self {
            path: path.to_owned(),
            file: Mutex::new((
                std::io::BufWriter::with_capacity(64 * 1024, f),
                std::time::Instant::now(),
            )),
        })
    }
}

impl JsonLinesSink {
    fn io(&self, e: std::io::Error) -> Error {
        Error::Io {
            path: self.path.display().to_string(),
            source: e,
        }
    }
}

#[async_trait::async_trait]
impl TelemetrySink for JsonLinesSink {
    async fn deliver(&self, record: &TelemetryRecord) -> Result<()> {
        let mut line = serde_json::to_vec(record)
            .map_err(|e| Error::Internal(format!("telemetry record: {e}")))?;
        line.push(b'\n');
        let mut g = self.file.lock();
        let (f, flushed) = &mut *g;
        f.write_all(&line).map_err(|e| self.io(e))?;
        if flushed.elapsed() >= FLUSH_AFTER {
            f.flush().map_err(|e| self.io(e))?;
            *flushed = std::time::Instant::now();
        }
        Ok(())
    }

    async fn flush(&self) -> Result<()> {
        let mut g = self.file.lock();
        g.0.flush().map_err(|e| self.io(e))?;
        g.1 = std::time::Instant::now();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[tokio::test]
    async fn lines_are_appended_and_attributed() {
        let dir = tempfile::TempDir::new().unwrap();
        let p = dir.path().join("sub/t.jsonl");
        let sink = JsonLinesSink::open(&p).unwrap();
        for seq in 1..=2 {
            sink.deliver(&TelemetryRecord {
                device_id: "dev_1".into(),
                fleet: "f".into(),
                session: "s".into(),
                seq,
                received_at: 5,
                data: serde_json::json!({"t": seq}),
            })
            .await
            .unwrap();
        }
        sink.flush().await.unwrap();
        let text = std::fs::read_to_string(&p).unwrap();
        let lines: Vec<serde_json::Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(lines.len(), 2);
        assert_eq!(lines[1]["device_id"], "dev_1");
        assert_eq!(lines[1]["fleet"], "f");
        assert_eq!(lines[1]["data"]["t"], 2);
    }
}
