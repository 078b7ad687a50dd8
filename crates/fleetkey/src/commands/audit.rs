//! `fleetkey audit …`: from the data directory, or through a running instance
//! when `FLEETKEY_ADDR` is set (like the other management commands).

use crate::cli::AuditCommand;
use crate::client::Client;
use crate::error::{CliError, CliResult};
use crate::files::Output;
use crate::local::{open_existing, runtime, service_error};
use fleetkey_server::api::{AuditPage, AuditPublicKey};
use fleetkey_server::audit::Checkpoint;
use fleetkey_server::audit::verify::{
    ExportLine, Verdict, parse_public_key, public_key_text, verify_export,
};
use std::io::{BufRead, Write};

pub fn run(cmd: AuditCommand) -> CliResult<()> {
    match cmd {
        AuditCommand::Export { output, dir } => runtime()?.block_on(async move {
            // Where the log is read from, settled before the output is created.
            let source = match Client::from_env()? {
                Some(c) => Ok(c),
                None => Err(open_existing(&dir.data_dir).await?),
            };
            let mut out = Output::create(output.as_deref(), true)?;
            let name = out.name();
            let n = match source {
                Ok(c) => export_remote(&c, out.writer(), &name).await?,
                Err(svc) => svc
                    .export_audit(out.writer())
                    .await
                    .map_err(service_error)?,
            };
            out.commit(false)?;
            eprintln!("fleetkey: exported {n} audit entries and a signed checkpoint");
            Ok(())
        }),
        AuditCommand::PublicKey { output, dir } => runtime()?.block_on(async move {
            let key = match Client::from_env()? {
                Some(c) => {
                    let k: AuditPublicKey = c
                        .call(reqwest::Method::GET, "/v1/audit/public-key", None)
                        .await?;
                    parse_public_key(&k.public_key).ok_or_else(|| {
                        CliError::refused("server: the public key is not fk1sig:…")
                    })?
                }
                None => open_existing(&dir.data_dir).await?.public_key(),
            };
            let mut out = Output::create(output.as_deref(), true)?;
            let name = out.name();
            writeln!(out.writer(), "{}", public_key_text(&key))
                .map_err(|e| CliError::io(name, &e))?;
            out.commit(false)
        }),
        AuditCommand::Verify { export, public_key } => {
            let pk_text = std::fs::read_to_string(&public_key)
                .map_err(|e| CliError::io(public_key.display(), &e))?;
            let pk = parse_public_key(&pk_text).ok_or_else(|| {
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

/// Entries one page asks for.
const PAGE: u32 = 1000;

/// The export through a running instance: a fresh signed checkpoint first (as
/// the local export), then every entry up to it, page by page, then the
/// checkpoint, in the same line format. An empty log exports nothing.
async fn export_remote(c: &Client, out: &mut dyn Write, name: &str) -> CliResult<u64> {
    let first: AuditPage = c
        .call(reqwest::Method::GET, "/v1/audit?limit=1", None)
        .await?;
    if first.entries.is_empty() {
        return Ok(0);
    }
    let checkpoint: Checkpoint = c
        .call(reqwest::Method::GET, "/v1/audit/checkpoint", None)
        .await?;
    let (mut after, mut n) = (0u64, 0u64);
    let mut handover: Option<Checkpoint> = None;
    while after < checkpoint.seq {
        let page: AuditPage = c
            .call(
                reqwest::Method::GET,
                &format!("/v1/audit?after={after}&limit={PAGE}"),
                None,
            )
            .await?;
        if page.entries.is_empty() {
            break;
        }
        for e in page.entries {
            if e.seq > checkpoint.seq {
                break;
            }
            after = e.seq;
            let moved = fleetkey_server::audit::HANDOVER_ACTIONS.contains(&e.action.as_str());
            let seq = e.seq;
            writeln!(out, "{}", ExportLine::Entry(e).to_line())
                .map_err(|e| CliError::io(name, &e))?;
            n += 1;
            // A custody move: the checkpoint that hands signing to the new key.
            if moved && handover.is_none() {
                let covering: Checkpoint = c
                    .call(
                        reqwest::Method::GET,
                        &format!("/v1/audit/checkpoint?covering={seq}"),
                        None,
                    )
                    .await?;
                handover = Some(covering).filter(|h| h.seq < checkpoint.seq);
            }
            if let Some(h) = handover.take_if(|h| h.seq == seq) {
                writeln!(out, "{}", ExportLine::Checkpoint(h).to_line())
                    .map_err(|e| CliError::io(name, &e))?;
            }
        }
        if page.next_after.is_none() {
            break;
        }
    }
    writeln!(out, "{}", ExportLine::Checkpoint(checkpoint).to_line())
        .map_err(|e| CliError::io(name, &e))?;
    Ok(n)
}
