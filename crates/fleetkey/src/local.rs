//! Opening the key service on a local data directory (admin mode).

use crate::error::{CliError, CliResult, code};
use fleetkey_server::{
    Error,
    clock::SystemClock,
    custody::aws_kms::{AwsKmsConfig, AwsKmsCustody},
    custody::local::{KekSource, LocalCustody},
    custody::pkcs11::{Pkcs11Config, Pkcs11Custody},
    custody::vault::{VaultConfig, VaultCustody},
    custody::{Backend, Custody, metered::Metered},
    keys::{KeyConfig, KeyService},
    store::sqlite::SqliteStore,
};
use std::path::Path;
use std::sync::Arc;

/// The runtime for admin commands.
pub fn runtime() -> CliResult<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| CliError::io("async runtime", &e))
}

/// Who the audit log says acted.
pub fn actor() -> String {
    let user = std::env::var("USER").unwrap_or_else(|_| "local".into());
    format!("cli:{user}")
}

/// Takes the data directory lock for an admin command (refused while a server runs).
pub fn lock(dir: &Path) -> CliResult<fleetkey_server::data_lock::DataDirLock> {
    use fleetkey_server::data_lock::{DataDirLock, Holder, LockError};
    DataDirLock::acquire(dir, Holder::Admin).map_err(|e| match e {
        LockError::ServerRunning { .. } => CliError::usage(e.to_string())
            .hint("set FLEETKEY_ADDR and FLEETKEY_TOKEN to use it, or stop it first"),
        other => CliError::new(code::IO, other.to_string()),
    })
}

/// A service opened for an admin command, holding the data directory lock.
pub struct Locked<T> {
    inner: T,
    _lock: fleetkey_server::data_lock::DataDirLock,
}

impl<T> std::ops::Deref for Locked<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.inner
    }
}

/// [`open`] for a command that only reads: a data directory without a store is
/// an error naming the path (a read never creates an empty store).
pub async fn open_existing(dir: &Path) -> CliResult<Locked<KeyService>> {
    if !dir.join("fleetkey.db").is_file() {
        return Err(CliError::usage(format!(
            "{}: no fleetkey data directory here (no fleetkey.db)",
            dir.display()
        ))
        .hint("give the directory `fleetkey serve` or `fleetkey keys create` used (--data-dir or FLEETKEY_DATA_DIR)"));
    }
    open(dir).await
}

/// Opens store, custody and key service on `dir`, holding its lock.
pub async fn open(dir: &Path) -> CliResult<Locked<KeyService>> {
    // Custody's settings first: a command refused for want of them creates nothing.
    let source = admin_custody(dir)?;
    let lock = lock(dir)?;
    let inner = open_unlocked(dir, source).await?;
    Ok(Locked { inner, _lock: lock })
}

/// Custody for a local admin command on `dir`: `FLEETKEY_CUSTODY` and its
/// settings; for local custody the KEK from `FLEETKEY_ROOT_KEY_FILE` or
/// `FLEETKEY_PASSPHRASE`, or else the one a zero-configuration `fleetkey serve`
/// generated for this data directory (never generated here).
pub fn admin_custody(dir: &Path) -> CliResult<CustodySource> {
    CustodySource::from_env(|| crate::commands::serve::admin_kek_source(dir))
}

/// The embedded store of `dir`. Refused when `FLEETKEY_STORE_URL` names
/// PostgreSQL: that store is shared by running instances, whose caches a local
/// change would bypass; manage it through one of them.
async fn open_store(dir: &Path) -> CliResult<Arc<SqliteStore>> {
    if let Ok(url) = std::env::var("FLEETKEY_STORE_URL")
        && !url.is_empty()
        && url != "sqlite://"
    {
        return Err(CliError::usage(format!(
            "FLEETKEY_STORE_URL names a shared store ({}); local admin commands work on the embedded store only",
            fleetkey_server::config::redacted_url(&url)
        ))
        .hint("set FLEETKEY_ADDR and FLEETKEY_TOKEN to manage it through a running instance"));
    }
    Ok(Arc::new(
        SqliteStore::open(dir).await.map_err(service_error)?,
    ))
}

/// Where the root is: a local root key file and its key-encryption key, or a
/// PKCS#11 token, a Vault transit key or an AWS KMS key (`FLEETKEY_CUSTODY`).
pub enum CustodySource {
    /// `<data-dir>/root-key.json` sealed under this KEK.
    Local(KekSource),
    /// A PKCS#11 token.
    Pkcs11(Pkcs11Config),
    /// A Vault / OpenBao transit key.
    Vault(VaultConfig),
    /// An AWS KMS key.
    AwsKms(AwsKmsConfig),
}

impl CustodySource {
    /// From `FLEETKEY_CUSTODY`; for local custody, the KEK from `local_kek`.
    pub fn from_env(local_kek: impl FnOnce() -> CliResult<KekSource>) -> CliResult<Self> {
        Self::for_backend(Backend::from_env().map_err(service_error)?, local_kek)
    }

    /// `backend`'s settings from the environment; for local custody, the KEK
    /// from `local_kek`.
    pub fn for_backend(
        backend: Backend,
        local_kek: impl FnOnce() -> CliResult<KekSource>,
    ) -> CliResult<Self> {
        match backend {
            Backend::Local => Ok(Self::Local(local_kek()?)),
            Backend::Pkcs11 => Ok(Self::Pkcs11(
                Pkcs11Config::from_env().map_err(service_error)?,
            )),
            Backend::Vault => Ok(Self::Vault(VaultConfig::from_env().map_err(service_error)?)),
            Backend::AwsKms => Ok(Self::AwsKms(
                AwsKmsConfig::from_env().map_err(service_error)?,
            )),
        }
    }
}

/// Opens custody on `dir` from `source`, its calls metered.
pub async fn open_custody(dir: &Path, source: CustodySource) -> CliResult<Arc<dyn Custody>> {
    let inner: Arc<dyn Custody> = match source {
        CustodySource::Local(kek) => {
            Arc::new(LocalCustody::open(dir, kek).await.map_err(service_error)?)
        }
        CustodySource::Pkcs11(config) => {
            Arc::new(Pkcs11Custody::open(config).await.map_err(service_error)?)
        }
        CustodySource::Vault(config) => {
            Arc::new(VaultCustody::open(config).await.map_err(service_error)?)
        }
        CustodySource::AwsKms(config) => {
            Arc::new(AwsKmsCustody::open(config).await.map_err(service_error)?)
        }
    };
    Ok(Arc::new(Metered::new(inner).map_err(service_error)?))
}

/// The store and custody of `dir` (custody from the environment). The caller
/// holds [`lock`].
pub async fn open_parts(
    dir: &Path,
    source: CustodySource,
) -> CliResult<(Arc<SqliteStore>, Arc<dyn Custody>)> {
    let store = open_store(dir).await?;
    let custody = open_custody(dir, source).await?;
    fleetkey_server::store::refuse_other_custody(store.as_ref(), custody.as_ref())
        .await
        .map_err(service_error)?;
    Ok((store, custody))
}

async fn open_unlocked(dir: &Path, source: CustodySource) -> CliResult<KeyService> {
    let (store, custody) = open_parts(dir, source).await?;
    KeyService::open(
        store,
        custody,
        Arc::new(SystemClock::default()),
        KeyConfig::default(),
    )
    .await
    .map_err(service_error)
}

/// Opens the token service on `dir` (no custody needed).
pub async fn open_tokens(dir: &Path) -> CliResult<fleetkey_server::tokens::TokenService> {
    let store = open_store(dir).await?;
    Ok(fleetkey_server::tokens::TokenService::new(
        store,
        Arc::new(SystemClock::default()),
    ))
}

/// Maps a service error to a message, hint and exit code.
pub fn service_error(e: Error) -> CliError {
    match e {
        Error::CustodyConfig(m) => CliError::usage(format!("custody: {m}")),
        Error::RootKeyLocked => CliError::refused(Error::RootKeyLocked.to_string())
            .hint("check FLEETKEY_PASSPHRASE or FLEETKEY_ROOT_KEY_FILE"),
        Error::Envelope(inner) => crate::error::envelope_error(inner),
        e @ Error::Io { .. } => CliError::new(code::IO, e.to_string()),
        e @ (Error::Database(_)
        | Error::StoreConnect { .. }
        | Error::Migration(_)
        | Error::Corrupt(_)
        | Error::Sink { .. }
        | Error::Stopping(_)
        | Error::Internal(_)) => CliError::new(code::UNAVAILABLE, e.to_string()),
        e @ Error::Invalid { .. } => CliError::usage(e.to_string()),
        e @ (Error::TokenNotFound(_) | Error::FleetNotFound(_) | Error::DeviceNotFound(_)) => {
            CliError::new(code::NOT_FOUND, e.to_string())
        }
        e @ Error::KeyringNotFound(_) => {
            CliError::new(code::NOT_FOUND, e.to_string()).hint("see `fleetkey keys list`")
        }
        e @ Error::AliasNotFound(_) => {
            CliError::new(code::NOT_FOUND, e.to_string()).hint("see `fleetkey keys alias list`")
        }
        e @ Error::BelowMinimum { .. } => CliError::refused(e.to_string())
            .hint("the data was not rewrapped before its version expired"),
        other => CliError::refused(other.to_string()),
    }
}

/// Parses a duration in whole seconds: `90d`, `12h`, `1h30m`, `2w`, `45s` (any
/// unit `humantime` reads) or plain seconds.
pub fn parse_duration(s: &str) -> CliResult<i64> {
    let s = s.trim();
    let invalid = || {
        CliError::usage(format!("invalid duration '{s}'"))
            .hint("use whole seconds or units like 90d, 12h, 1h30m, 2w")
    };
    if let Ok(n) = s.parse::<i64>() {
        return if n >= 0 { Ok(n) } else { Err(invalid()) };
    }
    let d = humantime::parse_duration(s).map_err(|_| invalid())?;
    if d.subsec_nanos() != 0 {
        return Err(invalid());
    }
    i64::try_from(d.as_secs()).map_err(|_| invalid())
}

/// `secs` as a duration people read, in the units `parse_duration` takes: whole
/// days as `90d` (humantime alone would say `2months 29days 2h 52m 48s`), the rest
/// by humantime (`1d 1h 30m`).
pub fn format_duration(secs: i64) -> String {
    let Ok(s) = u64::try_from(secs) else {
        return format!("{secs}s");
    };
    let (days, rest) = (s / 86_400, s % 86_400);
    let rest = humantime::format_duration(std::time::Duration::from_secs(rest)).to_string();
    match (days, rest.as_str()) {
        (0, _) => rest,
        (d, "0s") => format!("{d}d"),
        (d, r) => format!("{d}d {r}"),
    }
}

/// Unix seconds as RFC 3339 in UTC (`2026-11-23T08:46:14Z`).
pub fn format_time(t: i64) -> String {
    match u64::try_from(t) {
        Ok(s) => humantime::format_rfc3339_seconds(
            std::time::UNIX_EPOCH + std::time::Duration::from_secs(s),
        )
        .to_string(),
        Err(_) => t.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("90d").unwrap(), 90 * 86_400);
        assert_eq!(parse_duration("12h").unwrap(), 12 * 3_600);
        assert_eq!(parse_duration("5m").unwrap(), 300);
        assert_eq!(parse_duration("7").unwrap(), 7);
        assert_eq!(parse_duration("1h30m").unwrap(), 5_400);
        assert_eq!(parse_duration("2w").unwrap(), 14 * 86_400);
        assert_eq!(parse_duration("45s").unwrap(), 45);
        assert!(parse_duration("-1d").is_err());
        assert!(parse_duration("-1").is_err());
        assert!(parse_duration("d").is_err());
        assert!(parse_duration("1.5s").is_err());
        assert!(parse_duration("99999999999999999999d").is_err());
    }

    #[test]
    fn durations_and_times_print_for_people() {
        assert_eq!(format_duration(90 * 86_400), "90d");
        assert_eq!(format_duration(5_400), "1h 30m");
        assert_eq!(format_duration(86_400 + 5_400), "1d 1h 30m");
        assert_eq!(format_duration(0), "0s");
        for s in [0, 45, 5_400, 86_400, 90 * 86_400, 86_400 + 5_400] {
            assert_eq!(parse_duration(&format_duration(s)).unwrap(), s, "{s}");
        }
        assert_eq!(format_time(0), "1970-01-01T00:00:00Z");
        assert_eq!(format_time(1_795_423_574), "2026-11-23T08:46:14Z");
        assert_eq!(format_time(951_782_400), "2000-02-29T00:00:00Z");
    }
}
