//! `fleetkey audit …`.

use crate::cli::AuditCommand;
use crate::error::{CliError, CliResult};
use crate::files::Output;
use crate::local::{open_existing, runtime, service_error};
use base64::{Engine as _, engine::general_purpose::URL_SAFE_NO_PAD};
use fleetkey_server::audit::verify::{Verdict, verify_export};
use std::io::BufRead;

const PUBLIC_KEY_PREFIX: &str = "fk1sig:";

pub fn run(cmd: AuditCommand) -> CliResult<()> {
    match cmd {
        AuditCommand::Export { output, dir } => runtime()?.block_on(async move {
            let svc = open_existing(&dir.data_dir).await?;
            let mut out = Output::create(output.as_deref(), true)?;
            let n = svc
                .export_audit(out.writer())
                .await
                .map_err(service_error)?;
            out.commit(false)?;
            eprintln!("fleetkey: exported {n} audit entries and a signed checkpoint");
            Ok(())
        }),
        AuditCommand::PublicKey { output, dir } => runtime()?.block_on(async move {
            let svc = open_existing(&dir.data_dir).await?;
            let mut out = Output::create(output.as_deref(), true)?;
            let name = out.name();
            writeln!(
                out.writer(),
                "{PUBLIC_KEY_PREFIX}{}",
                URL_SAFE_NO_PAD.encode(svc.public_key())
            )
            .map_err(|e| CliError::io(name, &e))?;
            out.commit(false)
        }),
        AuditCommand::Verify { export, public_key } => {
            let pk_text = std::fs::read_to_string(&public_key)
                .map_err(|e| CliError::io(public_key.display(), &e))?;
            let pk = pk_text
                .trim()
                .strip_prefix(PUBLIC_KEY_PREFIX)
                .and_then(|b| URL_SAFE_NO_PAD.decode(b).ok())
                .ok_or_else(|| {
                    CliError::usage(format!(
                        "{} is not a fleetkey public key (fk1sig:…)",
                        public_key.display()
                    ))
                    .hint("write one with `fleetkey audit public-key -o FILE`")
                })?;
            let f = std::fs::File::open(&export).map_err(|e| CliError::io(export.display(), &e))?;
            let mut lines = Vec::new();
            for line in std::io::BufReader::new(f).lines() {
                lines.push(line.map_err(|e| CliError::io(export.display(), &e))?);
            }
            match verify_export(&lines, &pk) {
                Verdict::Valid {
                    entries,
                    checkpoints,
                } => {
                    crate::out!("valid: {entries} entries, {checkpoints} checkpoints");
                    Ok(())
                }
                Verdict::Invalid { seq, reason } => Err(CliError::refused(format!(
                    "audit log invalid at sequence {seq}: {reason}"
                ))),
            }
        }
    }
}
