//! Backups: an online, consistent snapshot of the embedded store (SQLite's
//! `VACUUM INTO`, taken while the server runs), the local custody's sealed root
//! key and the configuration file, in one archive sealed to backup recipients
//! (X-Wing), so a stolen backup is useless without one of their identities.
//!
//! [`create`] writes one; [`verify`] opens it, checks every file against its
//! manifest and verifies the audit chain inside; [`restore`] does the same
//! into a new data directory and refuses one that holds anything. The
//! key-encryption key that seals `root-key.json` is never in a backup: keep it
//! apart (or split it: `fleetkey custody split`). The server takes backups on
//! its own every `backup_interval_secs` ([`schedule`]). File format:
//! [`mod@format`], docs/formats.md "Backup files"; operations: docs/operations.md
//! "Backups".

pub mod archive;
pub mod format;
pub mod schedule;

use crate::audit::status::{ChainStatus, Progress};
use fleetkey_crypto::hpke::{XWingIdentity, XWingRecipient};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Why a backup could not be made, opened or restored.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BackupError {
    /// Not a fleetkey backup file at all.
    #[error("not a fleetkey backup (it does not start with fleetkey-backup-v1)")]
    NotABackup,
    /// No key slot of the backup is for this identity.
    #[error("this backup is not sealed to this identity (no key slot for it)")]
    NotForThisIdentity,
    /// Altered, cut short or otherwise not as written.
    #[error("the backup is damaged or was tampered with: {0}")]
    Damaged(String),
    /// The target is not where a backup may be written or restored.
    #[error("{0}")]
    Refused(String),
    /// Asked wrongly.
    #[error("{0}")]
    Usage(String),
    /// Reading or writing files.
    #[error("i/o: {0}")]
    Io(#[from] std::io::Error),
    /// The store (snapshot, or the restored copy).
    #[error("store: {0}")]
    Store(#[from] crate::Error),
    /// A cryptographic refusal outside the file's contents.
    #[error("{0}")]
    Crypto(#[from] fleetkey_crypto::Error),
}

impl From<sqlx::Error> for BackupError {
    fn from(e: sqlx::Error) -> Self {
        BackupError::Store(crate::Error::from(e))
    }
}

/// One file of the archive, as the manifest records it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct FileInfo {
    /// Its length.
    pub bytes: u64,
    /// SHA-256 of its contents, hex.
    pub sha256: String,
}

/// The audit chain's head when the snapshot was taken.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct AuditHead {
    /// The last entry's sequence number (0: an empty log).
    pub seq: u64,
    /// Its hash, hex.
    pub hash: String,
}

/// What a backup holds (the archive's `manifest.json`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// 1.
    pub format: u32,
    /// When the snapshot was taken (Unix seconds).
    pub created_at: i64,
    /// The fleetkey that made it.
    pub fleetkey_version: String,
    /// `sqlite` (the snapshot is in the archive) or `postgresql` (it is not:
    /// back the database up with its own tools).
    pub store: String,
    /// The audit head of the snapshot (SQLite only).
    pub audit: Option<AuditHead>,
    /// The custody's composite public key (`fk1sig:…`) the store records: the
    /// key the audit checkpoints verify with.
    pub custody_public_key: Option<String>,
    /// Every other file of the archive.
    pub files: BTreeMap<String, FileInfo>,
}

/// What to back up.
#[derive(Debug, Clone)]
pub struct Sources {
    /// The data directory.
    pub data_dir: PathBuf,
    /// Whether the store is the embedded SQLite one (in `data_dir`).
    pub embedded_store: bool,
    /// The configuration file, when the server runs with one.
    pub config_file: Option<PathBuf>,
}

/// A working directory beside the output (same file system, so the result can
/// be renamed into place), private, removed when dropped.
struct WorkDir(PathBuf);

impl WorkDir {
    fn beside(path: &Path) -> Result<Self, BackupError> {
        let parent = path
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        let r: [u8; 8] = fleetkey_crypto::rand::array()?;
        let dir = parent.join(format!(".fleetkey-backup-{}", hex::encode(r)));
        crate::secret_file::private_dir(&dir)?;
        Ok(Self(dir))
    }
}

impl Drop for WorkDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Writes a backup of `src` sealed to `recipients` at `out` (refused if it
/// exists; written beside it, then renamed, so a crash never leaves half a
/// backup under its name). The snapshot is consistent and taken online.
pub async fn create(
    src: &Sources,
    recipients: &[XWingRecipient],
    out: &Path,
    now: i64,
) -> Result<Manifest, BackupError> {
    if recipients.is_empty() || recipients.len() > format::MAX_RECIPIENTS {
        return Err(BackupError::Usage(format!(
            "give 1 to {} backup recipients (fk1r:… from `fleetkey keygen --recipient`)",
            format::MAX_RECIPIENTS
        )));
    }
    if out.exists() {
        return Err(BackupError::Refused(format!(
            "{} exists; a backup never overwrites a file",
            out.display()
        )));
    }
    let work = WorkDir::beside(out)?;
    let mut files: Vec<(&str, PathBuf)> = Vec::new();
    let (mut audit, mut custody_public_key) = (None, None);
    if src.embedded_store {
        let db = src.data_dir.join(archive::STORE);
        if !db.is_file() {
            return Err(BackupError::Refused(format!(
                "{} holds no store ({} is missing)",
                src.data_dir.display(),
                archive::STORE
            )));
        }
        let snapshot = work.0.join(archive::STORE);
        snapshot_sqlite(&db, &snapshot).await?;
        let (head, key) = inspect_snapshot(&work.0).await?;
        audit = Some(head);
        custody_public_key = key;
        files.push((archive::STORE, snapshot));
    }
    let root = src.data_dir.join(archive::ROOT_KEY);
    if root.is_file() {
        files.push((archive::ROOT_KEY, root));
    }
    if let Some(c) = &src.config_file {
        files.push((archive::CONFIG, c.clone()));
    }
    let mut manifest = Manifest {
        format: 1,
        created_at: now,
        fleetkey_version: env!("CARGO_PKG_VERSION").into(),
        store: if src.embedded_store {
            "sqlite"
        } else {
            "postgresql"
        }
        .into(),
        audit,
        custody_public_key,
        files: BTreeMap::new(),
    };
    for (name, path) in &files {
        let (sha256, bytes) = archive::digest_file(path)?;
        manifest
            .files
            .insert((*name).to_owned(), FileInfo { bytes, sha256 });
    }
    let tar_path = work.0.join("archive.tar");
    let listed: Vec<(&str, &Path)> = files.iter().map(|(n, p)| (*n, p.as_path())).collect();
    archive::write(std::fs::File::create(&tar_path)?, &manifest, &listed)?.sync_all()?;
    let partial = work.0.join("backup.partial");
    {
        let f = private_file(&partial)?;
        let mut w = std::io::BufWriter::new(f);
        format::seal(recipients, std::fs::File::open(&tar_path)?, &mut w)?;
        let f = w
            .into_inner()
            .map_err(|e| BackupError::Io(e.into_error()))?;
        f.sync_all()?;
    }
    std::fs::rename(&partial, out)?;
    Ok(manifest)
}

/// What [`verify`] and [`restore`] found.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// The backup's manifest.
    pub manifest: Manifest,
    /// The audit chain of the store inside, verified from its first entry
    /// (absent for a PostgreSQL deployment's backup, which holds no store).
    pub audit: Option<ChainStatus>,
}

/// Opens `file` with `identity`, checks every file against the manifest, and
/// verifies the audit chain of the store inside from its first entry (its hashes,
/// and its newest checkpoint with the custody key the store records). A backup
/// whose chain does not verify, or whose head is not the manifest's, is damaged.
pub async fn verify(file: &Path, identity: &XWingIdentity) -> Result<Report, BackupError> {
    let scratch = std::env::temp_dir().join("fleetkey-verify");
    std::fs::create_dir_all(&scratch)?;
    let work = WorkDir::beside(&scratch.join("x"))?;
    let extract = work.0.join("data");
    crate::secret_file::private_dir(&extract)?;
    open_into(file, identity, &work.0, &extract).await
}

/// Restores `file` into `data_dir`, which must not exist or be empty: the store,
/// the sealed root key and the configuration file, after they verified as
/// [`verify`] does. The server then starts on `data_dir` with the same
/// key-encryption key (or custody settings) as the one backed up.
pub async fn restore(
    file: &Path,
    identity: &XWingIdentity,
    data_dir: &Path,
) -> Result<Report, BackupError> {
    if data_dir.exists() {
        let empty = std::fs::read_dir(data_dir)?.next().is_none();
        if !empty {
            return Err(BackupError::Refused(format!(
                "{} is not empty; restore into a new or empty directory",
                data_dir.display()
            )));
        }
    }
    let work = WorkDir::beside(data_dir)?;
    let extract = work.0.join("data");
    crate::secret_file::private_dir(&extract)?;
    let report = open_into(file, identity, &work.0, &extract).await?;
    if data_dir.exists() {
        std::fs::remove_dir(data_dir)?;
    }
    std::fs::rename(&extract, data_dir)?;
    Ok(report)
}

/// Opens `file` into `extract` (the archive kept in `work` meanwhile), checks
/// it, verifies the store's audit chain.
async fn open_into(
    file: &Path,
    identity: &XWingIdentity,
    work: &Path,
    extract: &Path,
) -> Result<Report, BackupError> {
    let tar_path = work.join("archive.tar");
    {
        let input = std::io::BufReader::new(std::fs::File::open(file)?);
        let out = private_file(&tar_path)?;
        let mut w = std::io::BufWriter::new(out);
        format::open(identity, input, &mut w)?;
        w.into_inner()
            .map_err(|e| BackupError::Io(e.into_error()))?
            .sync_all()?;
    }
    let manifest = archive::unpack(std::fs::File::open(&tar_path)?, extract)?;
    std::fs::remove_file(&tar_path)?;
    let audit = if manifest.files.contains_key(archive::STORE) {
        let store = crate::store::sqlite::SqliteStore::open(extract).await?;
        let key = crate::store::CustodyStore::custody_identity(&store)
            .await?
            .map(|c| c.public)
            .unwrap_or_default();
        let (status, progress) = verify_whole_chain(&store, &key).await?;
        store.pool().close().await;
        if status.verdict != "valid" {
            let why = status.problem.as_ref().map_or_else(
                || status.verdict.clone(),
                |p| format!("entry {}: {}", p.seq, p.reason),
            );
            return Err(BackupError::Damaged(format!("its audit chain: {why}")));
        }
        if manifest.audit.as_ref().map(|a| (a.seq, a.hash.clone()))
            != Some((progress.seq, hex::encode(progress.hash)))
        {
            return Err(BackupError::Damaged(
                "its audit head is not the manifest's".into(),
            ));
        }
        Some(status)
    } else {
        None
    };
    Ok(Report { manifest, audit })
}

/// A new file only the owner reads.
fn private_file(path: &Path) -> Result<std::fs::File, BackupError> {
    use std::os::unix::fs::OpenOptionsExt as _;
    Ok(std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?)
}

/// `VACUUM INTO`: a consistent copy of the live database, taken through a
/// read-only connection while the server keeps writing (WAL readers do not block
/// the writer).
async fn snapshot_sqlite(db: &Path, to: &Path) -> Result<(), BackupError> {
    use sqlx::Connection as _;
    let opts = sqlx::sqlite::SqliteConnectOptions::new()
        .filename(db)
        .read_only(true)
        .busy_timeout(std::time::Duration::from_secs(30));
    let mut c = sqlx::SqliteConnection::connect_with(&opts).await?;
    let target = to
        .to_str()
        .ok_or_else(|| BackupError::Usage("the backup path is not UTF-8".into()))?;
    sqlx::query("VACUUM INTO ?1")
        .bind(target)
        .execute(&mut c)
        .await?;
    c.close().await?;
    {
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::set_permissions(to, std::fs::Permissions::from_mode(0o600))?;
    }
    Ok(())
}

/// The snapshot's audit head (its chain verified) and the custody key it records.
async fn inspect_snapshot(dir: &Path) -> Result<(AuditHead, Option<String>), BackupError> {
    let store = crate::store::sqlite::SqliteStore::open(dir).await?;
    let identity = crate::store::CustodyStore::custody_identity(&store).await?;
    let key = identity
        .as_ref()
        .map(|c| c.public.clone())
        .unwrap_or_default();
    let (status, progress) = verify_whole_chain(&store, &key).await?;
    store.pool().close().await;
    // WAL files of the check: the snapshot file alone is archived.
    for ext in ["-wal", "-shm"] {
        let _ = std::fs::remove_file(dir.join(format!("{}{ext}", archive::STORE)));
    }
    if let Some(p) = status.problem {
        return Err(BackupError::Refused(format!(
            "the store's audit chain does not verify (entry {}: {}); not backing up a damaged log — see docs/runbooks",
            p.seq, p.reason
        )));
    }
    Ok((
        AuditHead {
            seq: progress.seq,
            hash: hex::encode(progress.hash),
        },
        identity.map(|c| crate::audit::verify::public_key_text(&c.public)),
    ))
}

/// The whole chain of `store` verified from its first entry (as many walks as it
/// takes), with where it ended.
async fn verify_whole_chain(
    store: &crate::store::sqlite::SqliteStore,
    key: &[u8],
) -> Result<(ChainStatus, Progress), BackupError> {
    let mut progress = Progress::default();
    let mut status = crate::audit::status::verify_stored(store, key, &mut progress, true).await?;
    while status.verdict == "incomplete" {
        status = crate::audit::status::verify_stored(store, key, &mut progress, false).await?;
    }
    Ok((status, progress))
}
