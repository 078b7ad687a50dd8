//! `fleetkey serve`.

use crate::cli::ServeArgs;
use crate::error::{CliError, CliResult, code};
use crate::local::{CustodySource, open_custody, service_error};
use fleetkey_crypto::{aead::Algorithm, envelope::KeyId, keyfile::SymmetricKeyFile};
use fleetkey_server::{
    api::{AppState, server},
    clock::SystemClock,
    config::Config,
    custody::local::KekSource,
    keys::{KeyConfig, KeyService},
    tokens::TokenService,
};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Where zero-configuration mode keeps the key-encryption key for `data_dir`:
/// outside the data directory, under the user's configuration directory.
fn default_kek_path(data_dir: &Path) -> CliResult<PathBuf> {
    let base = std::env::var_os("XDG_CONFIG_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".config")))
        .ok_or_else(|| {
            CliError::usage("no HOME to keep a generated key-encryption key in").hint(
                "set FLEETKEY_ROOT_KEY_FILE (a file from `fleetkey keygen`) or FLEETKEY_PASSPHRASE",
            )
        })?;
    let canon = std::fs::canonicalize(data_dir).unwrap_or_else(|_| data_dir.to_path_buf());
    let digest = aws_lc_rs::digest::digest(
        &aws_lc_rs::digest::SHA256,
        canon.to_string_lossy().as_bytes(),
    );
    let tag = hex::encode(&digest.as_ref()[..6]);
    Ok(base.join("fleetkey").join(format!("root-{tag}.kek")))
}

/// The key-encryption key of local custody on `data_dir` for an admin command:
/// from the environment, or the one a zero-configuration `fleetkey serve`
/// generated for this data directory. Never generates one.
pub(crate) fn admin_kek_source(data_dir: &Path) -> CliResult<KekSource> {
    if std::env::var_os("FLEETKEY_ROOT_KEY_FILE").is_some_and(|v| !v.is_empty())
        || std::env::var_os("FLEETKEY_PASSPHRASE").is_some_and(|v| !v.is_empty())
    {
        return KekSource::from_env().map_err(service_error);
    }
    match default_kek_path(data_dir) {
        Ok(path) if path.is_file() => Ok(KekSource::KeyFile(path)),
        _ => Err(CliError::usage(
            "no key-encryption key: set FLEETKEY_ROOT_KEY_FILE (a file from `fleetkey keygen`) or FLEETKEY_PASSPHRASE",
        )
        .hint(format!(
            "a data directory first started by `fleetkey serve` without them has its key under ~/.config/fleetkey/ (looked for {})",
            default_kek_path(data_dir)
                .map(|p| p.display().to_string())
                .unwrap_or_else(|_| "it: no HOME".into())
        ))),
    }
}

/// The key-encryption key of local custody on `data_dir`: from the environment,
/// or the one zero-configuration mode generated (or generates) for it.
pub(crate) fn kek_source(data_dir: &Path) -> CliResult<KekSource> {
    if std::env::var_os("FLEETKEY_ROOT_KEY_FILE").is_some_and(|v| !v.is_empty())
        || std::env::var_os("FLEETKEY_PASSPHRASE").is_some_and(|v| !v.is_empty())
    {
        return KekSource::from_env().map_err(service_error);
    }
    let path = default_kek_path(data_dir)?;
    if !path.exists() {
        if data_dir
            .join(fleetkey_server::custody::local::ROOT_FILE)
            .exists()
        {
            return Err(CliError::usage(format!(
                "{} holds a root key but no key-encryption key was given",
                data_dir.display()
            ))
            .hint(
                "set FLEETKEY_ROOT_KEY_FILE or FLEETKEY_PASSPHRASE to the one used to create it",
            ));
        }
        if let Some(dir) = path.parent() {
            fleetkey_server::secret_file::private_dir(dir)
                .map_err(|e| CliError::io(dir.display(), &e))?;
        }
        let kek = SymmetricKeyFile::generate(
            Algorithm::Aes256GcmSiv,
            KeyId::new("fleetkey-kek").unwrap_or_else(|_| unreachable!()),
        )
        .map_err(|e| CliError::refused(e.to_string()))?;
        crate::keyfile::write_secret_file(&path, kek.to_text().as_bytes(), false)?;
        eprintln!(
            "fleetkey: generated a key-encryption key at {} (outside the data directory).\n\
             fleetkey: back it up separately; for production set FLEETKEY_ROOT_KEY_FILE (docs/operations.md).",
            path.display()
        );
    }
    Ok(KekSource::KeyFile(path))
}

pub fn run(args: ServeArgs) -> CliResult<()> {
    let mut config =
        Config::load(args.config.as_deref()).map_err(|e| CliError::usage(e.to_string()))?;
    if let Some(f) = &args.log_format {
        config.log_format = f
            .parse()
            .map_err(|e| CliError::usage(format!("--log-format: {e}")))?;
    }
    // Before the runtime: the trace exporter's blocking HTTP client is made here.
    let tracing = fleetkey_server::observability::init(&config).map_err(|e| {
        CliError::usage(e).hint("check otlp_endpoint (docs/operations.md, \"Traces\")")
    })?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| CliError::io("async runtime", &e))?;
    let served = rt.block_on(async move {
        let dir = config.data_dir.clone();
        fleetkey_server::secret_file::private_dir(&dir)
            .map_err(|e| CliError::io(dir.display(), &e))?;
        // One server per data directory; local admin commands wait or refuse.
        let _lock = fleetkey_server::data_lock::DataDirLock::acquire(
            &dir,
            fleetkey_server::data_lock::Holder::Server,
        )
        .map_err(|e| {
            CliError::usage(e.to_string())
                .hint("stop the other process, or give this one another FLEETKEY_DATA_DIR")
        })?;
        let source = CustodySource::from_env(|| kek_source(&dir))?;
        let state = open_state(&config, source).await?;
        first_start_admin_token(&state.tokens, &dir, &config).await?;
        server::serve(&config, state, shutdown_signal())
            .await
            .map_err(|e| match e {
                fleetkey_server::Error::Io { path, source } => {
                    CliError::new(code::IO, format!("cannot listen on {path}: {source}"))
                        .hint("is another fleetkey running? set FLEETKEY_LISTEN to another address")
                }
                other => service_error(other),
            })
    });
    // After the runtime: the spans still queued are sent before the exit.
    drop(rt);
    tracing.shutdown();
    served
}

/// The service on `config.data_dir` (its store, custody from `source`).
pub async fn open_state(config: &Config, source: CustodySource) -> CliResult<Arc<AppState>> {
    let dir = &config.data_dir;
    let store = fleetkey_server::store::open(config)
        .await
        .map_err(service_error)?;
    let custody = open_custody(dir, source).await?;
    let clock = Arc::new(SystemClock::default());
    fleetkey_server::store::check_custody_identity(
        store.as_ref(),
        custody.as_ref(),
        fleetkey_server::clock::Clock::now(clock.as_ref()),
    )
    .await
    .map_err(service_error)?;
    let keys = Arc::new(
        KeyService::open(
            store.clone(),
            custody.clone(),
            clock.clone(),
            KeyConfig {
                instance_holder: config.instance_name.clone(),
                ..KeyConfig::default()
            },
        )
        .await
        .map_err(service_error)?,
    );
    let tokens = Arc::new(TokenService::new(store.clone(), clock.clone()));
    let fleets = fleetkey_server::fleet::FleetService::new(store, custody, clock);
    server::state(config, keys, tokens, fleets).map_err(service_error)
}

async fn first_start_admin_token(
    tokens: &TokenService,
    dir: &Path,
    config: &Config,
) -> CliResult<()> {
    let path = dir.join("admin.token");
    if !tokens.list().await.map_err(service_error)?.is_empty() {
        return Ok(());
    }
    let (record, secret) = tokens
        .create(
            "serve:first-start",
            "admin-first-start",
            vec!["admin".into()],
            None,
        )
        .await
        .map_err(service_error)?;
    crate::keyfile::write_secret_file(&path, format!("{}\n", secret.as_str()).as_bytes(), true)?;
    let scheme = if config.tls_cert.is_some() {
        "https"
    } else {
        "http"
    };
    eprintln!(
        "fleetkey: first start: admin token {} written to {} (mode 0600)\n\
         fleetkey: try: FLEETKEY_ADDR={scheme}://{} FLEETKEY_TOKEN=$(cat {}) fleetkey keys list",
        record.id,
        path.display(),
        config.listen,
        path.display()
    );
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
    tracing::info!("shutdown requested: draining");
}
