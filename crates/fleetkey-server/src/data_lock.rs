//! One writer per data directory. `fleetkey serve` holds an exclusive lock on
//! `<data-dir>/fleetkey.lock` while it runs, so local admin commands cannot change
//! keyrings behind its caches; they take the same lock for the length of a command
//! (waiting for each other, refusing when a server holds it).

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::Path;

/// Name of the lock file inside the data directory.
pub const LOCK_FILE: &str = "fleetkey.lock";

/// Who takes the lock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Holder {
    /// `fleetkey serve`, for its whole life.
    Server,
    /// A local admin command, for its duration.
    Admin,
}

/// Why the lock could not be taken.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LockError {
    /// A server runs on this directory.
    #[error("a fleetkey server is running on {dir} ({holder}); manage it through the server")]
    ServerRunning {
        /// The data directory.
        dir: String,
        /// What the lock file says about its holder.
        holder: String,
    },
    /// Another process holds the lock and we may not wait for it.
    #[error("another fleetkey process uses {dir} ({holder})")]
    Busy {
        /// The data directory.
        dir: String,
        /// What the lock file says about its holder.
        holder: String,
    },
    /// The lock file could not be opened or locked.
    #[error("{dir}/{LOCK_FILE}: {source}")]
    Io {
        /// The data directory.
        dir: String,
        /// The OS error.
        source: std::io::Error,
    },
}

/// A held lock; released when dropped (or when the process dies).
#[derive(Debug)]
pub struct DataDirLock {
    _file: File,
}

impl DataDirLock {
    /// Takes the lock on `dir` (created if missing).
    pub fn acquire(dir: &Path, who: Holder) -> Result<Self, LockError> {
        let d = dir.display().to_string();
        let io = |source| LockError::Io {
            dir: d.clone(),
            source,
        };
        crate::secret_file::private_dir(dir).map_err(io)?;
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(dir.join(LOCK_FILE))
            .map_err(io)?;
        match file.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                let mut holder = String::new();
                let _ = file.read_to_string(&mut holder);
                let holder = holder.trim().to_owned();
                if holder.starts_with("serve") {
                    return Err(LockError::ServerRunning { dir: d, holder });
                }
                if who == Holder::Server {
                    return Err(LockError::Busy { dir: d, holder });
                }
                // Another admin command: wait for it to finish.
                file.lock().map_err(io)?;
            }
            Err(TryLockError::Error(e)) => return Err(io(e)),
        }
        let label = match who {
            Holder::Server => "serve",
            Holder::Admin => "admin",
        };
        file.set_len(0).map_err(io)?;
        file.seek(SeekFrom::Start(0)).map_err(io)?;
        write!(file, "{label} pid={}", std::process::id()).map_err(io)?;
        file.flush().map_err(io)?;
        Ok(Self { _file: file })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_server_lock_refuses_admin_and_a_second_server() {
        let dir = tempfile::TempDir::new().unwrap_or_else(|e| panic!("{e}"));
        let server =
            DataDirLock::acquire(dir.path(), Holder::Server).unwrap_or_else(|e| panic!("{e}"));
        assert!(matches!(
            DataDirLock::acquire(dir.path(), Holder::Admin),
            Err(LockError::ServerRunning { .. })
        ));
        assert!(matches!(
            DataDirLock::acquire(dir.path(), Holder::Server),
            Err(LockError::ServerRunning { .. })
        ));
        drop(server);
        let admin =
            DataDirLock::acquire(dir.path(), Holder::Admin).unwrap_or_else(|e| panic!("{e}"));
        assert!(matches!(
            DataDirLock::acquire(dir.path(), Holder::Server),
            Err(LockError::Busy { .. })
        ));
        drop(admin);
        DataDirLock::acquire(dir.path(), Holder::Server).unwrap_or_else(|e| panic!("{e}"));
    }
}
