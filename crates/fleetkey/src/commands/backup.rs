//! `fleetkey backup create|verify|restore` (`fleetkey_server::backup`).

use crate::cli::BackupCommand;
use crate::error::{CliError, CliResult};
use crate::keyfile::{load_identity, load_recipient};
use fleetkey_server::backup::{self, BackupError, Report, Sources};
use fleetkey_server::config::Config;

pub fn run(cmd: BackupCommand) -> CliResult<()> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| CliError::io("async runtime", &e))?;
    rt.block_on(async move {
        match cmd {
            BackupCommand::Create {
                output,
                recipients,
                config,
                dir,
            } => {
                let recipients = recipients
                    .iter()
                    .map(|r| load_recipient(r))
                    .collect::<CliResult<Vec<_>>>()?;
                // The store the server runs with: PostgreSQL when the settings
                // (file, then FLEETKEY_*) name it.
                let settings = Config::load(config.as_deref())
                    .map_err(|e| CliError::usage(e.to_string()))?;
                let embedded = settings.postgres_url().is_none();
                if embedded && !dir.data_dir.join("fleetkey.db").is_file() {
                    return Err(CliError::usage(format!(
                        "{}: no fleetkey data directory here (no fleetkey.db)",
                        dir.data_dir.display()
                    ))
                    .hint("pass --data-dir, or set FLEETKEY_DATA_DIR"));
                }
                let src = Sources {
                    data_dir: dir.data_dir.clone(),
                    embedded_store: embedded,
                    config_file: config,
                };
                let now = i64::try_from(
                    std::time::SystemTime::now()
                        .duration_since(std::time::UNIX_EPOCH)
                        .map_or(0, |d| d.as_secs()),
                )
                .unwrap_or(0);
                let m = backup::create(&src, &recipients, &output, now)
                    .await
                    .map_err(backup_error)?;
                let audit = m
                    .audit
                    .as_ref()
                    .map_or_else(|| "no store (PostgreSQL: back it up with pg_dump)".to_owned(), |a| {
                        format!("audit head {}", a.seq)
                    });
                crate::out!(
                    "backup written to {} ({} files, {}; sealed to {} recipient{})",
                    output.display(),
                    m.files.len(),
                    audit,
                    recipients.len(),
                    if recipients.len() == 1 { "" } else { "s" }
                );
                Ok(())
            }
            BackupCommand::Verify { file, identity } => {
                let id = load_identity(&identity)?;
                let r = backup::verify(&file, &id.identity)
                    .await
                    .map_err(backup_error)?;
                crate::out!("valid: {}", describe(&r));
                Ok(())
            }
            BackupCommand::Restore {
                file,
                identity,
                dir,
            } => {
                let id = load_identity(&identity)?;
                let r = backup::restore(&file, &id.identity, &dir.data_dir)
                    .await
                    .map_err(backup_error)?;
                crate::out!(
                    "restored into {}: {}\nstart it with the same key-encryption key (FLEETKEY_ROOT_KEY_FILE or FLEETKEY_PASSPHRASE) or custody settings as before",
                    dir.data_dir.display(),
                    describe(&r)
                );
                Ok(())
            }
        }
    })
}

/// One line about a backup that opened.
fn describe(r: &Report) -> String {
    let m = &r.manifest;
    let when = humantime::format_rfc3339_seconds(
        std::time::UNIX_EPOCH
            + std::time::Duration::from_secs(u64::try_from(m.created_at).unwrap_or(0)),
    );
    let audit = match &r.audit {
        Some(a) => format!(
            "{} audit entries chain from the first{}",
            a.verified_entries,
            a.checkpoint.as_ref().map_or(String::new(), |c| format!(
                ", checkpoint {} verifies",
                c.seq
            ))
        ),
        None => "no store inside (PostgreSQL deployment)".into(),
    };
    let files: Vec<&str> = m.files.keys().map(String::as_str).collect();
    format!(
        "taken {when} by fleetkey {} ({} store); files {}; {audit}",
        m.fleetkey_version,
        m.store,
        files.join(", ")
    )
}

fn backup_error(e: BackupError) -> CliError {
    match e {
        BackupError::Usage(m) => CliError::usage(m),
        BackupError::Io(e) => CliError::io("backup", &e),
        BackupError::NotForThisIdentity => CliError::refused(e.to_string())
            .hint("use an identity whose recipient the backup was sealed to"),
        other => CliError::refused(other.to_string()),
    }
}
