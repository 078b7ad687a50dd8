//! Files that hold secrets: created with mode 0600 (never world-readable, even for a
//! moment) and refused when group or others can read them.

use std::io::Write;
use std::path::Path;
use zeroize::Zeroizing;

/// Largest secret file read, in bytes.
pub const MAX_LEN: u64 = 64 * 1024;

/// Why a secret file could not be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SecretFileError {
    /// Creating a file that already exists, without `force`.
    #[error("{0} already exists")]
    Exists(String),
    /// Group or others can read it. Fix with `chmod 600`.
    #[error("{path} is readable by group or others (mode {mode:04o}); refusing to use it")]
    Permissive {
        /// The file.
        path: String,
        /// Its permission bits.
        mode: u32,
    },
    /// Larger than [`MAX_LEN`].
    #[error("{0} is too large to be a key file")]
    TooLarge(String),
    /// The OS refused.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The OS error.
        source: std::io::Error,
    },
}

fn io(path: &Path, source: std::io::Error) -> SecretFileError {
    SecretFileError::Io {
        path: path.display().to_string(),
        source,
    }
}

/// Creates `dir` and any missing parents with mode 0700 (owner only; the umask
/// can only narrow it). A directory that exists is left as it is.
pub fn private_dir(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::DirBuilderExt as _;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
}

/// Writes `contents` to a new file with mode 0600 and syncs it. Refuses to replace
/// an existing file unless `force`.
pub fn write(path: &Path, contents: &[u8], force: bool) -> Result<(), SecretFileError> {
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true);
    if force {
        opts.create(true).truncate(true);
    } else {
        opts.create_new(true);
    }
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
    let mut f = opts.open(path).map_err(|e| {
        if e.kind() == std::io::ErrorKind::AlreadyExists {
            SecretFileError::Exists(path.display().to_string())
        } else {
            io(path, e)
        }
    })?;
    #[cfg(unix)]
    {
        // `mode` applies only when the file is created; enforce it with --force too.
        use std::os::unix::fs::PermissionsExt;
        f.set_permissions(std::fs::Permissions::from_mode(0o600))
            .map_err(|e| io(path, e))?;
    }
    f.write_all(contents)
        .and_then(|()| f.sync_all())
        .map_err(|e| io(path, e))
}

/// Reads a secret file, refusing it when group or others may read it.
pub fn read(path: &Path) -> Result<Zeroizing<String>, SecretFileError> {
    let meta = std::fs::metadata(path).map_err(|e| io(path, e))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = meta.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            return Err(SecretFileError::Permissive {
                path: path.display().to_string(),
                mode,
            });
        }
    }
    if meta.len() > MAX_LEN {
        return Err(SecretFileError::TooLarge(path.display().to_string()));
    }
    std::fs::read_to_string(path)
        .map(Zeroizing::new)
        .map_err(|e| io(path, e))
}
