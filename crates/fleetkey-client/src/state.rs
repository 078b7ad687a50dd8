//! What a device keeps across restarts: the pinned server key, the last session id
//! (to resume from), counters, and the highest key-record sequence seen per
//! identity (anti-rollback). A small JSON file written atomically (temporary file,
//! fsync, rename), so a crash leaves either the old state or the new one.
//!
//! Nothing secret is in it: the device's own keys are the firmware's business.

use crate::error::{Error, Result};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::io::Write as _;
use std::path::Path;

/// Largest state file read, bytes.
pub const MAX_STATE_LEN: u64 = 1024 * 1024;

/// The persisted client state.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SessionState {
    /// The server's static X25519 key (hex) once pinned: learned from a signed
    /// directory record or on first contact (XX), then used with IK.
    #[serde(default)]
    pub server_key: Option<String>,
    /// The last session's id (resumption binds the next handshake to it).
    #[serde(default)]
    pub session_id: Option<String>,
    /// Sessions opened.
    #[serde(default)]
    pub sessions: u64,
    /// Application messages sent, over all sessions.
    #[serde(default)]
    pub messages_sent: u64,
    /// Application messages received, over all sessions.
    #[serde(default)]
    pub messages_received: u64,
    /// The highest telemetry sequence number assigned.
    #[serde(default)]
    pub telemetry_seq: u64,
    /// The highest telemetry sequence number the server acknowledged.
    #[serde(default)]
    pub telemetry_acked: u64,
    /// The highest key-record sequence accepted per identity.
    #[serde(default)]
    pub record_sequences: BTreeMap<String, u64>,
}

impl SessionState {
    /// Loads the state, or the empty state if the file does not exist.
    pub fn load(path: &Path) -> Result<Self> {
        let f = match std::fs::File::open(path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Self::default()),
            Err(e) => return Err(Error::State(format!("{}: {e}", path.display()))),
        };
        let mut raw = Vec::new();
        std::io::Read::read_to_end(&mut std::io::Read::take(f, MAX_STATE_LEN + 1), &mut raw)
            .map_err(|e| Error::State(format!("{}: {e}", path.display())))?;
        if raw.len() as u64 > MAX_STATE_LEN {
            return Err(Error::State(format!(
                "{}: larger than {MAX_STATE_LEN} bytes",
                path.display()
            )));
        }
        let s: Self = serde_json::from_slice(&raw)
            .map_err(|e| Error::State(format!("{}: {e}", path.display())))?;
        if s.server_key
            .as_deref()
            .is_some_and(|k| decode_key(k).is_none())
        {
            return Err(Error::State(format!(
                "{}: server_key is not 32 bytes of hex",
                path.display()
            )));
        }
        Ok(s)
    }

    /// Writes the state atomically.
    pub fn save(&self, path: &Path) -> Result<()> {
        let err = |e: std::io::Error| Error::State(format!("{}: {e}", path.display()));
        let dir = path
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        let mut tmp = tempfile_in(dir).map_err(err)?;
        let json = serde_json::to_vec_pretty(self).map_err(|e| Error::State(e.to_string()))?;
        tmp.1.write_all(&json).map_err(err)?;
        tmp.1.sync_all().map_err(err)?;
        std::fs::rename(&tmp.0, path).map_err(err)?;
        if let Ok(d) = std::fs::File::open(dir) {
            let _ = d.sync_all();
        }
        Ok(())
    }

    /// The pinned server key.
    pub fn pinned(&self) -> Option<[u8; 32]> {
        self.server_key.as_deref().and_then(decode_key)
    }

    /// Pins a server key.
    pub fn pin(&mut self, key: [u8; 32]) {
        self.server_key = Some(hex::encode(key));
    }
}

fn decode_key(hex: &str) -> Option<[u8; 32]> {
    if hex.len() != 64 || !hex.is_ascii() {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, o) in out.iter_mut().enumerate() {
        *o = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).ok()?;
    }
    Some(out)
}

/// A new file next to the state (same file system, so the rename is atomic).
fn tempfile_in(dir: &Path) -> std::io::Result<(std::path::PathBuf, std::fs::File)> {
    for _ in 0..16 {
        let name: u64 = rand::random();
        let p = dir.join(format!(".fleetkey-state-{name:016x}.tmp"));
        match std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&p)
        {
            Ok(f) => return Ok((p, f)),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(e),
        }
    }
    Err(std::io::Error::other("no free temporary name"))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn state_survives_a_restart_and_bad_files_are_refused() {
        let dir = tempfile::TempDir::new().unwrap();
        let p = dir.path().join("state.json");
        assert_eq!(SessionState::load(&p).unwrap(), SessionState::default());
        let mut s = SessionState {
            session_id: Some("ab".repeat(16)),
            sessions: 3,
            telemetry_seq: 41,
            telemetry_acked: 40,
            ..Default::default()
        };
        s.pin([7; 32]);
        s.record_sequences.insert("fleetkey-server".into(), 4);
        s.save(&p).unwrap();
        let back = SessionState::load(&p).unwrap();
        assert_eq!(back, s);
        assert_eq!(back.pinned(), Some([7; 32]));
        // No temporary files left behind.
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);

        std::fs::write(&p, b"{not json").unwrap();
        assert!(matches!(SessionState::load(&p), Err(Error::State(_))));
        std::fs::write(&p, br#"{"server_key":"00"}"#).unwrap();
        assert!(matches!(SessionState::load(&p), Err(Error::State(_))));
        std::fs::write(&p, br#"{"surprise":1}"#).unwrap();
        assert!(SessionState::load(&p).is_err());
        std::fs::write(&p, vec![b' '; usize::try_from(MAX_STATE_LEN).unwrap() + 1]).unwrap();
        assert!(SessionState::load(&p).is_err());
    }
}
