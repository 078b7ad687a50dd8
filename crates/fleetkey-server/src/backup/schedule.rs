//! Backups the server takes on its own: one at start-up when the newest in
//! `backup_dir` is older than `backup_interval_secs`, then one every interval
//! (default 30 minutes, so a lost data directory costs at most an hour of
//! changes with one failed backup), the oldest beyond `backup_keep` deleted.
//! Each is `fleetkey-backup-<UTC time>.fkbackup`. The newest backup's time is
//! `fleetkey_backup_last_success_timestamp_seconds` (its age
//! `fleetkey_backup_age_seconds`), read from the directory at start so a restart
//! does not reset it; every attempt counts in `fleetkey_backups_total{result}`.

use super::{Sources, create};
use fleetkey_crypto::hpke::XWingRecipient;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// File name prefix of scheduled backups.
pub const PREFIX: &str = "fleetkey-backup-";
/// File name suffix of scheduled backups.
pub const SUFFIX: &str = ".fkbackup";

/// What and where to back up, and how often.
pub struct Schedule {
    /// Where backups go (created, private).
    pub dir: PathBuf,
    /// Between backups.
    pub interval: Duration,
    /// How many to keep.
    pub keep: usize,
    /// Who can open them.
    pub recipients: Vec<XWingRecipient>,
    /// What to back up.
    pub sources: Sources,
}

/// What the schedule reports (gauges and a counter of the server's metrics).
pub struct Reporting {
    /// Unix time of the newest backup.
    pub last_success: prometheus::IntGauge,
    /// Attempts by result (`ok`, `failed`).
    pub attempts: prometheus::IntCounterVec,
}

/// The scheduled backups in `dir`, oldest first (names sort by time).
pub fn list(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir)? {
        let e = e?;
        let name = e.file_name();
        let Some(name) = name.to_str() else { continue };
        if name.starts_with(PREFIX) && name.ends_with(SUFFIX) && e.file_type()?.is_file() {
            out.push(e.path());
        }
    }
    out.sort();
    Ok(out)
}

/// `fleetkey-backup-20261208T004500Z.fkbackup` for `now` (Unix seconds).
pub fn file_name(now: i64) -> String {
    let t = std::time::UNIX_EPOCH + Duration::from_secs(u64::try_from(now).unwrap_or(0));
    let stamp: String = humantime::format_rfc3339_seconds(t)
        .to_string()
        .chars()
        .filter(|c| *c != '-' && *c != ':')
        .collect();
    format!("{PREFIX}{stamp}{SUFFIX}")
}

/// Modification time of the newest scheduled backup in `dir`, Unix seconds.
fn newest(dir: &Path) -> Option<i64> {
    let last = list(dir).ok()?.pop()?;
    let t = std::fs::metadata(last).ok()?.modified().ok()?;
    let secs = t.duration_since(std::time::UNIX_EPOCH).ok()?.as_secs();
    i64::try_from(secs).ok()
}

/// Takes one backup now and prunes; the new file.
pub async fn take(s: &Schedule, now: i64) -> Result<PathBuf, super::BackupError> {
    crate::secret_file::private_dir(&s.dir)?;
    let path = s.dir.join(file_name(now));
    create(&s.sources, &s.recipients, &path, now).await?;
    let all = list(&s.dir)?;
    for old in all.iter().take(all.len().saturating_sub(s.keep)) {
        if let Err(e) = std::fs::remove_file(old) {
            tracing::warn!(file = %old.display(), error = %e, "could not delete an old backup");
        }
    }
    Ok(path)
}

/// Runs the schedule until `stop`: a backup whenever the newest is an interval
/// old, checked every minute (and at start).
pub async fn run(
    s: Schedule,
    report: Reporting,
    now: impl Fn() -> i64 + Send,
    stop: tokio_util::sync::CancellationToken,
) {
    let mut last = newest(&s.dir);
    if let Some(t) = last {
        report.last_success.set(t);
    }
    let interval = i64::try_from(s.interval.as_secs()).unwrap_or(i64::MAX);
    let mut tick = tokio::time::interval(Duration::from_secs(60).min(s.interval));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            () = stop.cancelled() => return,
        }
        let now = now();
        if last.is_some_and(|t| now.saturating_sub(t) < interval) {
            continue;
        }
        match take(&s, now).await {
            Ok(path) => {
                last = Some(now);
                report.last_success.set(now);
                report.attempts.with_label_values(&["ok"]).inc();
                tracing::info!(file = %path.display(), "backup written");
            }
            Err(e) => {
                report.attempts.with_label_values(&["failed"]).inc();
                // Tried again at the next tick, not at once.
                last = Some(now.saturating_sub(interval).saturating_add(60));
                tracing::error!(error = %e, dir = %s.dir.display(), "backup failed");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn names_sort_by_time() {
        let a = super::file_name(1_796_690_700);
        let b = super::file_name(1_796_690_700 + 1800);
        assert_eq!(a, "fleetkey-backup-20261208T004500Z.fkbackup");
        assert!(a < b);
    }
}
