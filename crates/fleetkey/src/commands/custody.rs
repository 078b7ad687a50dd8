//! `fleetkey custody migrate --to BACKEND` and `fleetkey custody rotate`: the
//! store moved to another custody root (`fleetkey_server::rewrap`).

use crate::cli::CustodyCommand;
use crate::error::{CliError, CliResult};
use crate::local::{CustodySource, actor, lock, open_custody, service_error};
use fleetkey_server::clock::SystemClock;
use fleetkey_server::config::Config;
use fleetkey_server::custody::local::{KekSource, LocalCustody, ROOT_FILE};
use fleetkey_server::custody::{Backend, Custody, for_target};
use fleetkey_server::rewrap::{Outcome, move_store};
use fleetkey_server::store::same_custody;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Where a new local root waits until the store has moved to it.
const NEXT_ROOT_FILE: &str = "root-key.next.json";

pub fn run(cmd: CustodyCommand) -> CliResult<()> {
    let (to, dir, action) = match cmd {
        CustodyCommand::Migrate { to, dir } => (Some(to), dir.data_dir, "custody.migrate"),
        CustodyCommand::Rotate { dir } => (None, dir.data_dir, "custody.rotate"),
        CustodyCommand::Split {
            shares,
            threshold,
            out_dir,
            dir,
        } => return super::escrow::split(&dir.data_dir, threshold, shares, &out_dir),
        CustodyCommand::Recover { shares, output } => {
            return super::escrow::recover(&shares, &output);
        }
    };
    // Several threads: PKCS#11 and Vault custody run calls on tokio's pools.
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| CliError::io("async runtime", &e))?;
    rt.block_on(move_root(to, dir, action))
}

async fn move_root(to: Option<String>, dir: PathBuf, action: &'static str) -> CliResult<()> {
    let mut config = Config::load(None).map_err(|e| CliError::usage(e.to_string()))?;
    config.data_dir = dir.clone();
    // The embedded store has one writer: the server must be stopped. A shared
    // PostgreSQL store is moved under running instances.
    let _lock = match config.postgres_url() {
        None => {
            if !dir.join("fleetkey.db").is_file() {
                return Err(CliError::usage(format!(
                    "{}: no fleetkey data directory here (no fleetkey.db)",
                    dir.display()
                )));
            }
            Some(lock(&dir)?)
        }
        Some(_) => None,
    };
    let store = fleetkey_server::store::open(&config)
        .await
        .map_err(service_error)?;
    let from_backend = Backend::from_env().map_err(service_error)?;
    let from = open_custody(
        &dir,
        CustodySource::for_backend(from_backend, || super::serve::kek_source(&dir))?,
    )
    .await?;
    let to_backend = match &to {
        Some(name) => Backend::parse(name).map_err(service_error)?,
        None => from_backend,
    };
    let next = dir.join(NEXT_ROOT_FILE);
    let target: Arc<dyn Custody> = match to_backend {
        Backend::Local => {
            let kek = target_kek(&dir)?;
            match finish_interrupted(store.as_ref(), &dir, &next, &kek).await? {
                true => return Ok(()),
                false => Arc::new(LocalCustody::create_file(&next, &kek).map_err(service_error)?),
            }
        }
        other => {
            let source = for_target(|| CustodySource::for_backend(other, unreachable_kek))?;
            open_custody(&dir, source).await?
        }
    };
    let outcome = move_store(
        store.clone(),
        from.clone(),
        target.clone(),
        Arc::new(SystemClock::default()),
        &actor(),
        action,
    )
    .await;
    let outcome = match outcome {
        Ok(o) => o,
        Err(e) => {
            // Nothing committed: a new local root that nothing uses goes.
            if to_backend == Backend::Local {
                let _ = std::fs::remove_file(&next);
            }
            return Err(service_error(e));
        }
    };
    if to_backend == Backend::Local {
        install_next(&dir, &next)?;
    }
    match outcome {
        Outcome::Moved {
            blobs,
            records,
            audit_seq,
        } => eprintln!(
            "fleetkey: moved the store from {} to {}: {blobs} wrapped keys rewrapped, {records} \
             key records re-signed (audit entry {audit_seq})",
            from.root_id(),
            target.root_id()
        ),
        Outcome::AlreadyMoved => eprintln!(
            "fleetkey: the store already uses {}; nothing to move",
            target.root_id()
        ),
    }
    eprintln!(
        "fleetkey: start every instance with the new custody settings (FLEETKEY_CUSTODY={}{}); \
         the audit chain's new public key: `fleetkey audit public-key`",
        target.backend(),
        if to_backend == Backend::Local {
            ", the new root-key.json"
        } else {
            ", the FLEETKEY_TO_* values without TO_"
        }
    );
    Ok(())
}

/// The KEK that seals a new local root: `FLEETKEY_TO_ROOT_KEY_FILE` or
/// `FLEETKEY_TO_PASSPHRASE` when set, else the data directory's own.
fn target_kek(dir: &Path) -> CliResult<KekSource> {
    let own = ["FLEETKEY_TO_ROOT_KEY_FILE", "FLEETKEY_TO_PASSPHRASE"]
        .iter()
        .any(|v| std::env::var_os(v).is_some_and(|x| !x.is_empty()));
    if own {
        for_target(KekSource::from_env).map_err(service_error)
    } else {
        super::serve::kek_source(dir)
    }
}

fn unreachable_kek() -> CliResult<KekSource> {
    Err(CliError::usage("local custody has no target settings here"))
}

/// A new local root left by a run that stopped: if the store moved to it, the
/// move is finished here (the file takes `root-key.json`'s place) and true is
/// returned; otherwise it never took effect and is removed.
async fn finish_interrupted(
    store: &dyn fleetkey_server::store::Store,
    dir: &Path,
    next: &Path,
    kek: &KekSource,
) -> CliResult<bool> {
    if !next.exists() {
        return Ok(false);
    }
    let pending = LocalCustody::open_file(next, kek).map_err(service_error)?;
    let mine = fleetkey_server::store::CustodyIdentity {
        public: pending.public_key(),
        root_id: pending.root_id(),
    };
    match store.custody_identity().await.map_err(service_error)? {
        Some(recorded) if same_custody(&recorded, &mine) => {
            install_next(dir, next)?;
            eprintln!(
                "fleetkey: finished an interrupted move: the store uses {}, now in {}",
                mine.root_id,
                dir.join(ROOT_FILE).display()
            );
            Ok(true)
        }
        _ => {
            std::fs::remove_file(next).map_err(|e| CliError::io(next.display(), &e))?;
            Ok(false)
        }
    }
}

/// The new root replaces `root-key.json` (one rename: the old root is gone).
fn install_next(dir: &Path, next: &Path) -> CliResult<()> {
    let root = dir.join(ROOT_FILE);
    std::fs::rename(next, &root).map_err(|e| CliError::io(root.display(), &e))
}
