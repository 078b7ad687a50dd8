//! `fleetkey keys …`: keyrings in a local data directory.

use crate::cli::{DataDir, KeysCommand, PolicyArgs};
use crate::error::{CliError, CliResult};
use crate::files::{Output, open_input};
use crate::local::{actor, open, parse_duration, runtime, service_error};
use fleetkey_crypto::{aead::Algorithm, envelope::armor};
use fleetkey_server::keys::{KeyService, KeyringInfo};
use fleetkey_server::store::Policy;
use std::io::{BufRead, Read, Write};

/// Largest input `keys seal` holds in memory.
const MAX_SEAL_INPUT: u64 = 16 * 1024 * 1024;

fn apply_policy(base: Policy, a: &PolicyArgs) -> CliResult<Policy> {
    let mut p = base;
    if let Some(d) = &a.rotation_period {
        p.rotation_period_secs = parse_duration(d)?;
    }
    if let Some(n) = a.max_uses {
        p.max_uses = n;
    }
    if let Some(d) = &a.overlap {
        p.overlap_secs = parse_duration(d)?;
    }
    if let Some(n) = a.keep_last {
        p.keep_last = Some(n);
    }
    if a.no_keep_last {
        p.keep_last = None;
    }
    Ok(p)
}

fn days(secs: i64) -> String {
    if secs % 86_400 == 0 {
        format!("{}d", secs / 86_400)
    } else if secs % 3_600 == 0 {
        format!("{}h", secs / 3_600)
    } else {
        format!("{secs}s")
    }
}

/// `2026-11-23 08:45Z` from Unix seconds (proleptic Gregorian, UTC), for tables.
fn utc(t: i64) -> String {
    let days = t.div_euclid(86_400);
    let secs = t.rem_euclid(86_400);
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}Z",
        secs / 3_600,
        secs % 3_600 / 60
    )
}

fn print_json<T: serde::Serialize>(v: &T) -> CliResult<()> {
    let text = serde_json::to_string_pretty(v).map_err(|e| CliError::refused(e.to_string()))?;
    println!("{text}");
    Ok(())
}

fn print_rings(rings: &[KeyringInfo], json: bool) -> CliResult<()> {
    if json {
        return print_json(&rings);
    }
    println!(
        "{:<24} {:<18} {:>7} {:>7} {:>8} {:>12} {:>8} {:>9}",
        "NAME", "ALGORITHM", "PRIMARY", "MIN", "PERIOD", "MAX USES", "OVERLAP", "KEEP"
    );
    for r in rings {
        let keep = r
            .policy
            .keep_last
            .map(|n| n.to_string())
            .unwrap_or_else(|| "all".into());
        println!(
            "{:<24} {:<18} {:>7} {:>7} {:>8} {:>12} {:>8} {:>9}",
            r.name,
            r.algorithm,
            r.primary_version,
            r.min_decrypt_version,
            days(r.policy.rotation_period_secs),
            r.policy.max_uses,
            days(r.policy.overlap_secs),
            keep
        );
    }
    Ok(())
}

fn print_versions(r: &KeyringInfo, json: bool) -> CliResult<()> {
    if json {
        return print_json(r);
    }
    print_rings(std::slice::from_ref(r), false)?;
    println!();
    println!(
        "{:>7} {:<13} {:<18} {:<18} {:<18} {:>10}",
        "VERSION", "STATE", "CREATED", "RETIRED", "REVOKED", "SEALS"
    );
    let t = |v: Option<i64>| v.map(utc).unwrap_or_else(|| "-".into());
    for v in &r.versions {
        let state = serde_json::to_value(v.state)
            .ok()
            .and_then(|s| s.as_str().map(str::to_owned))
            .unwrap_or_default();
        println!(
            "{:>7} {:<13} {:<18} {:<18} {:<18} {:>10}",
            v.version,
            state,
            utc(v.created_at),
            t(v.retired_at),
            t(v.revoked_at),
            v.seal_count
        );
    }
    Ok(())
}

fn dir_of(c: &KeysCommand) -> &DataDir {
    match c {
        KeysCommand::Create { dir, .. }
        | KeysCommand::List { dir }
        | KeysCommand::Show { dir, .. }
        | KeysCommand::Rotate { dir, .. }
        | KeysCommand::Revoke { dir, .. }
        | KeysCommand::Policy { dir, .. }
        | KeysCommand::Rewrap { dir, .. }
        | KeysCommand::Seal { dir, .. }
        | KeysCommand::Unseal { dir, .. }
        | KeysCommand::Tick { dir } => dir,
    }
}

pub fn run(cmd: KeysCommand) -> CliResult<()> {
    let dir = dir_of(&cmd).clone();
    let rt = runtime()?;
    rt.block_on(async move {
        let svc = open(&dir.data_dir).await?;
        let r = run_with(&svc, cmd, dir.json).await;
        // Persist usage counts and return unused nonces, whatever happened.
        svc.shutdown().await.map_err(service_error)?;
        r
    })
}

async fn run_with(svc: &KeyService, cmd: KeysCommand, json: bool) -> CliResult<()> {
    let who = actor();
    match cmd {
        KeysCommand::Create {
            name,
            algorithm,
            policy,
            ..
        } => {
            let alg = Algorithm::from_name(&algorithm).map_err(|_| {
                CliError::usage(format!("unknown algorithm '{algorithm}'"))
                    .hint("choose aes-256-gcm, chacha20-poly1305 or aes-256-gcm-siv")
            })?;
            let p = apply_policy(Policy::default(), &policy)?;
            let info = svc
                .create(&who, &name, alg, p)
                .await
                .map_err(service_error)?;
            print_versions(&info, json)
        }
        KeysCommand::List { .. } => print_rings(&svc.list().await.map_err(service_error)?, json),
        KeysCommand::Show { name, .. } => {
            print_versions(&svc.show(&name).await.map_err(service_error)?, json)
        }
        KeysCommand::Rotate { name, .. } => {
            let v = svc.rotate(&who, &name).await.map_err(service_error)?;
            eprintln!("fleetkey: {name} now seals with version {v}");
            Ok(())
        }
        KeysCommand::Revoke { name, version, .. } => {
            svc.revoke(&who, &name, version)
                .await
                .map_err(service_error)?;
            eprintln!("fleetkey: {name} version {version} revoked");
            Ok(())
        }
        KeysCommand::Policy { name, policy, .. } => {
            let current = svc.show(&name).await.map_err(service_error)?.policy;
            let p = apply_policy(current, &policy)?;
            svc.set_policy(&who, &name, p)
                .await
                .map_err(service_error)?;
            print_versions(&svc.show(&name).await.map_err(service_error)?, json)
        }
        KeysCommand::Rewrap {
            name,
            aad,
            input,
            output,
            ..
        } => {
            let inp = open_input(input.as_deref())?;
            let mut envelopes = Vec::new();
            for (n, line) in std::io::BufReader::new(inp.reader).lines().enumerate() {
                let line = line.map_err(|e| CliError::io(&inp.name, &e))?;
                if line.trim().is_empty() {
                    continue;
                }
                let bytes = armor::decode(line.trim()).map_err(|_| {
                    CliError::refused(format!("line {}: not an armored envelope (fk1:…)", n + 1))
                })?;
                envelopes.push(bytes);
            }
            let results = svc
                .rewrap(
                    &who,
                    &name,
                    &envelopes,
                    aad.as_deref().unwrap_or("").as_bytes(),
                )
                .await
                .map_err(service_error)?;
            let mut out = Output::create(output.as_deref(), true)?;
            let mut failed = 0;
            for (i, r) in results.iter().enumerate() {
                match r {
                    Ok(env) => writeln!(out.writer(), "{}", armor::encode(env)),
                    Err(e) => {
                        failed += 1;
                        eprintln!("fleetkey: item {}: {e}", i + 1);
                        writeln!(out.writer())
                    }
                }
                .map_err(|e| CliError::io(out.name(), &e))?;
            }
            out.commit(false)?;
            if failed > 0 {
                return Err(CliError::refused(format!(
                    "{failed} of {} envelopes could not be rewrapped",
                    results.len()
                )));
            }
            Ok(())
        }
        KeysCommand::Seal {
            name, aad, input, ..
        } => {
            let inp = open_input(input.as_deref())?;
            let mut data = Vec::new();
            inp.reader
                .take(MAX_SEAL_INPUT + 1)
                .read_to_end(&mut data)
                .map_err(|e| CliError::io(&inp.name, &e))?;
            if data.len() as u64 > MAX_SEAL_INPUT {
                return Err(CliError::refused("input larger than 16 MiB").hint(
                    "keyrings seal records and data keys; for files use `fleetkey seal --key`",
                ));
            }
            let ring = svc.keyring(&name).await.map_err(service_error)?;
            let env = ring
                .seal(&data, aad.as_deref().unwrap_or("").as_bytes())
                .await
                .map_err(service_error)?;
            println!("{}", armor::encode(&env));
            Ok(())
        }
        KeysCommand::Unseal {
            name, aad, input, ..
        } => {
            let inp = open_input(input.as_deref())?;
            let mut data = Vec::new();
            inp.reader
                .take(2 * MAX_SEAL_INPUT)
                .read_to_end(&mut data)
                .map_err(|e| CliError::io(&inp.name, &e))?;
            let env = if armor::is_armored(&data) {
                let text = String::from_utf8(data)
                    .map_err(|_| CliError::refused("armored input is not text"))?;
                armor::decode(&text).map_err(crate::error::envelope_error)?
            } else {
                data
            };
            let ring = svc.keyring(&name).await.map_err(service_error)?;
            let pt = zeroize::Zeroizing::new(
                ring.unseal(&env, aad.as_deref().unwrap_or("").as_bytes())
                    .await
                    .map_err(service_error)?,
            );
            std::io::stdout()
                .write_all(&pt)
                .map_err(|e| CliError::io("stdout", &e))
        }
        KeysCommand::Tick { .. } => {
            for line in svc.run_policies(&who).await.map_err(service_error)? {
                println!("{line}");
            }
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn utc_formatting() {
        assert_eq!(super::utc(0), "1970-01-01 00:00Z");
        assert_eq!(super::utc(1_795_423_574), "2026-11-23 08:46Z");
        assert_eq!(super::utc(951_782_400), "2000-02-29 00:00Z");
    }
}
