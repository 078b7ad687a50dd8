//! `fleetkey keys …`: keyrings in a local data directory.

use crate::cli::{DataDir, KeysCommand, PolicyArgs};
use crate::error::{CliError, CliResult};
use crate::files::{Output, open_input};
use crate::local::{
    actor, format_duration, format_time, open, parse_duration, runtime, service_error,
};
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

fn print_json<T: serde::Serialize>(v: &T) -> CliResult<()> {
    let text = serde_json::to_string_pretty(v).map_err(|e| CliError::refused(e.to_string()))?;
    crate::out!("{text}");
    Ok(())
}

fn print_rings(rings: &[KeyringInfo], json: bool) -> CliResult<()> {
    if json {
        return print_json(&rings);
    }
    let mut t = crate::output::table(
        &[
            "NAME",
            "ALGORITHM",
            "PRIMARY",
            "MIN",
            "PERIOD",
            "MAX USES",
            "OVERLAP",
            "KEEP",
        ],
        &[2, 3, 5],
    );
    for r in rings {
        let keep = r
            .policy
            .keep_last
            .map(|n| n.to_string())
            .unwrap_or_else(|| "all".into());
        t.add_row(vec![
            r.name.clone(),
            r.algorithm.clone(),
            r.primary_version.to_string(),
            r.min_decrypt_version.to_string(),
            format_duration(r.policy.rotation_period_secs),
            r.policy.max_uses.to_string(),
            format_duration(r.policy.overlap_secs),
            keep,
        ]);
    }
    crate::out!("{}", t.trim_fmt());
    Ok(())
}

fn print_versions(r: &KeyringInfo, json: bool) -> CliResult<()> {
    if json {
        return print_json(r);
    }
    print_rings(std::slice::from_ref(r), false)?;
    crate::out!();
    let mut t = crate::output::table(
        &["VERSION", "STATE", "CREATED", "RETIRED", "REVOKED", "SEALS"],
        &[0, 5],
    );
    let time = |v: Option<i64>| v.map(format_time).unwrap_or_else(|| "-".into());
    for v in &r.versions {
        let state = serde_json::to_value(v.state)
            .ok()
            .and_then(|s| s.as_str().map(str::to_owned))
            .unwrap_or_default();
        t.add_row(vec![
            v.version.to_string(),
            state,
            format_time(v.created_at),
            time(v.retired_at),
            time(v.revoked_at),
            v.seal_count.to_string(),
        ]);
    }
    crate::out!("{}", t.trim_fmt());
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
    if let Some(client) = crate::client::Client::from_env()? {
        return rt.block_on(run_remote(&client, cmd, dir.json));
    }
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
            let envelopes = read_armored_lines(input.as_deref())?;
            let results = svc
                .rewrap(
                    &who,
                    &name,
                    &envelopes,
                    aad.as_deref().unwrap_or("").as_bytes(),
                )
                .await
                .map_err(service_error)?;
            write_rewrapped(
                output.as_deref(),
                results
                    .into_iter()
                    .map(|r| r.map_err(|e| e.to_string()))
                    .collect(),
            )
        }
        KeysCommand::Seal {
            name, aad, input, ..
        } => {
            let data = zeroize::Zeroizing::new(read_all(input.as_deref(), MAX_SEAL_INPUT)?);
            let ring = svc.keyring(&name).await.map_err(service_error)?;
            let env = ring
                .seal(&data, aad.as_deref().unwrap_or("").as_bytes())
                .await
                .map_err(service_error)?;
            crate::out!("{}", armor::encode(&env));
            Ok(())
        }
        KeysCommand::Unseal {
            name, aad, input, ..
        } => {
            let env = read_envelope(input.as_deref())?;
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
            let run = svc.run_policies(&who).await.map_err(service_error)?;
            for line in &run.actions {
                crate::out!("{line}");
            }
            if run.failures.is_empty() {
                return Ok(());
            }
            for line in &run.failures {
                eprintln!("fleetkey: policy not applied: {line}");
            }
            Err(CliError::refused(format!(
                "{} keyring(s) failed; the others were done",
                run.failures.len()
            )))
        }
    }
}

fn policy_json(a: &PolicyArgs) -> CliResult<serde_json::Value> {
    let mut v = serde_json::Map::new();
    if let Some(d) = &a.rotation_period {
        v.insert("rotation_period_secs".into(), parse_duration(d)?.into());
    }
    if let Some(n) = a.max_uses {
        v.insert("max_uses".into(), n.into());
    }
    if let Some(d) = &a.overlap {
        v.insert("overlap_secs".into(), parse_duration(d)?.into());
    }
    if let Some(n) = a.keep_last {
        v.insert("keep_last".into(), n.into());
    }
    if a.no_keep_last {
        v.insert("keep_last".into(), 0.into());
    }
    Ok(serde_json::Value::Object(v))
}

fn read_all(input: Option<&std::path::Path>, limit: u64) -> CliResult<Vec<u8>> {
    let inp = open_input(input)?;
    let mut data = Vec::new();
    inp.reader
        .take(limit + 1)
        .read_to_end(&mut data)
        .map_err(|e| CliError::io(&inp.name, &e))?;
    if data.len() as u64 > limit {
        return Err(CliError::refused(format!(
            "input larger than {limit} bytes"
        )));
    }
    Ok(data)
}

/// Reads one armored envelope per non-empty line.
fn read_armored_lines(input: Option<&std::path::Path>) -> CliResult<Vec<Vec<u8>>> {
    let inp = open_input(input)?;
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
    Ok(envelopes)
}

/// Writes rewrap results one armored envelope per line (an empty line for a
/// failed item, which is reported on stderr); fails if any item failed.
fn write_rewrapped(
    output: Option<&std::path::Path>,
    results: Vec<Result<Vec<u8>, String>>,
) -> CliResult<()> {
    let mut out = Output::create(output, true)?;
    let total = results.len();
    let mut failed = 0;
    for (i, r) in results.iter().enumerate() {
        let line = match r {
            Ok(env) => armor::encode(env),
            Err(e) => {
                failed += 1;
                eprintln!("fleetkey: item {}: {e}", i + 1);
                String::new()
            }
        };
        writeln!(out.writer(), "{line}").map_err(|e| CliError::io(out.name(), &e))?;
    }
    out.commit(false)?;
    if failed > 0 {
        return Err(CliError::refused(format!(
            "{failed} of {total} envelopes could not be rewrapped"
        )));
    }
    Ok(())
}

/// Reads an envelope, armored or binary.
fn read_envelope(input: Option<&std::path::Path>) -> CliResult<Vec<u8>> {
    let data = read_all(input, 2 * MAX_SEAL_INPUT)?;
    if armor::is_armored(&data) {
        let text =
            String::from_utf8(data).map_err(|_| CliError::refused("armored input is not text"))?;
        armor::decode(&text).map_err(crate::error::envelope_error)
    } else {
        Ok(data)
    }
}

/// `fleetkey keys …` against `fleetkey serve`.
async fn run_remote(c: &crate::client::Client, cmd: KeysCommand, json: bool) -> CliResult<()> {
    use base64::{Engine as _, engine::general_purpose::STANDARD as B64};
    use reqwest::Method;
    use serde_json::{Value, json};
    let b64 = |b: &[u8]| B64.encode(b);
    let aad_json = |aad: &Option<String>| aad.as_deref().map(|a| B64.encode(a.as_bytes()));
    match cmd {
        KeysCommand::Create {
            name,
            algorithm,
            policy,
            ..
        } => {
            let body =
                json!({ "name": name, "algorithm": algorithm, "policy": policy_json(&policy)? });
            let info: KeyringInfo = c.call(Method::POST, "/v1/keyrings", Some(body)).await?;
            print_versions(&info, json)
        }
        KeysCommand::List { .. } => {
            let v: Value = c.call(Method::GET, "/v1/keyrings", None).await?;
            let rings: Vec<KeyringInfo> = serde_json::from_value(v["keyrings"].clone())
                .map_err(|e| CliError::refused(format!("unexpected response: {e}")))?;
            print_rings(&rings, json)
        }
        KeysCommand::Show { name, .. } => {
            let info: KeyringInfo = c
                .call(Method::GET, &format!("/v1/keyrings/{name}"), None)
                .await?;
            print_versions(&info, json)
        }
        KeysCommand::Rotate { name, .. } => {
            let v: Value = c
                .call(Method::POST, &format!("/v1/keyrings/{name}/rotate"), None)
                .await?;
            eprintln!("fleetkey: {name} now seals with version {}", v["version"]);
            Ok(())
        }
        KeysCommand::Revoke { name, version, .. } => {
            let _: Value = c
                .call(
                    Method::POST,
                    &format!("/v1/keyrings/{name}/versions/{version}/revoke"),
                    None,
                )
                .await?;
            eprintln!("fleetkey: {name} version {version} revoked");
            Ok(())
        }
        KeysCommand::Policy { name, policy, .. } => {
            let info: KeyringInfo = c
                .call(
                    Method::PUT,
                    &format!("/v1/keyrings/{name}/policy"),
                    Some(policy_json(&policy)?),
                )
                .await?;
            print_versions(&info, json)
        }
        KeysCommand::Seal {
            name, aad, input, ..
        } => {
            let data = zeroize::Zeroizing::new(read_all(input.as_deref(), MAX_SEAL_INPUT)?);
            let v: Value = c
                .call(
                    Method::POST,
                    &format!("/v1/keyrings/{name}/seal"),
                    Some(json!({ "plaintext": b64(&data), "aad": aad_json(&aad) })),
                )
                .await?;
            let env = B64
                .decode(v["ciphertext"].as_str().unwrap_or_default())
                .map_err(|_| CliError::refused("server returned invalid base64"))?;
            crate::out!("{}", armor::encode(&env));
            Ok(())
        }
        KeysCommand::Unseal {
            name, aad, input, ..
        } => {
            let env = read_envelope(input.as_deref())?;
            let v: Value = c
                .call(
                    Method::POST,
                    &format!("/v1/keyrings/{name}/unseal"),
                    Some(json!({ "ciphertext": b64(&env), "aad": aad_json(&aad) })),
                )
                .await?;
            let pt = zeroize::Zeroizing::new(
                B64.decode(v["plaintext"].as_str().unwrap_or_default())
                    .map_err(|_| CliError::refused("server returned invalid base64"))?,
            );
            std::io::stdout()
                .write_all(&pt)
                .map_err(|e| CliError::io("stdout", &e))
        }
        KeysCommand::Rewrap {
            name,
            aad,
            input,
            output,
            ..
        } => {
            let items: Vec<Value> = read_armored_lines(input.as_deref())?
                .iter()
                .map(|env| json!({ "ciphertext": b64(env), "aad": aad_json(&aad) }))
                .collect();
            let v: Value = c
                .call(
                    Method::POST,
                    &format!("/v1/keyrings/{name}/rewrap/batch"),
                    Some(json!({ "items": items })),
                )
                .await?;
            let results = v["results"]
                .as_array()
                .cloned()
                .unwrap_or_default()
                .iter()
                .map(
                    |r| match r["ciphertext"].as_str().and_then(|s| B64.decode(s).ok()) {
                        Some(env) => Ok(env),
                        None => Err(r["error"]["message"]
                            .as_str()
                            .unwrap_or("failed")
                            .to_owned()),
                    },
                )
                .collect();
            write_rewrapped(output.as_deref(), results)
        }
        KeysCommand::Tick { .. } => Err(CliError::usage(
            "`keys tick` runs on a local data directory; the server runs its own scheduler",
        )
        .hint("unset FLEETKEY_ADDR to run it locally")),
    }
}

fn data_dir() -> std::path::PathBuf {
    std::env::var_os("FLEETKEY_DATA_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| std::path::PathBuf::from("./fleetkey-data"))
}

/// Seals `data` with keyring `name` on the server (FLEETKEY_ADDR) or locally.
pub fn keyring_seal(
    name: &str,
    input: Option<&std::path::Path>,
    aad: Option<&str>,
) -> CliResult<Vec<u8>> {
    use base64::{Engine as _, engine::general_purpose::STANDARD as B64};
    let data = zeroize::Zeroizing::new(read_all(input, MAX_SEAL_INPUT)?);
    let rt = runtime()?;
    match crate::client::Client::from_env()? {
        Some(c) => rt.block_on(async {
            let v: serde_json::Value = c
                .call(
                    reqwest::Method::POST,
                    &format!("/v1/keyrings/{name}/seal"),
                    Some(serde_json::json!({ "plaintext": B64.encode(&*data), "aad": aad.map(|a| B64.encode(a)) })),
                )
                .await?;
            B64.decode(v["ciphertext"].as_str().unwrap_or_default())
                .map_err(|_| CliError::refused("server returned invalid base64"))
        }),
        None => rt.block_on(async {
            let svc = open(&data_dir()).await?;
            let ring = svc.keyring(name).await.map_err(service_error)?;
            let r = ring.seal(&data, aad.unwrap_or("").as_bytes()).await.map_err(service_error);
            svc.shutdown().await.map_err(service_error)?;
            r
        }),
    }
}

/// Opens a keyring envelope on the server (FLEETKEY_ADDR) or locally.
pub fn keyring_unseal(
    name: &str,
    input: Option<&std::path::Path>,
    aad: Option<&str>,
) -> CliResult<zeroize::Zeroizing<Vec<u8>>> {
    use base64::{Engine as _, engine::general_purpose::STANDARD as B64};
    let env = read_envelope(input)?;
    let rt = runtime()?;
    match crate::client::Client::from_env()? {
        Some(c) => rt.block_on(async {
            let v: serde_json::Value = c
                .call(
                    reqwest::Method::POST,
                    &format!("/v1/keyrings/{name}/unseal"),
                    Some(serde_json::json!({ "ciphertext": B64.encode(&env), "aad": aad.map(|a| B64.encode(a)) })),
                )
                .await?;
            B64.decode(v["plaintext"].as_str().unwrap_or_default())
                .map(zeroize::Zeroizing::new)
                .map_err(|_| CliError::refused("server returned invalid base64"))
        }),
        None => rt.block_on(async {
            let svc = open(&data_dir()).await?;
            let ring = svc.keyring(name).await.map_err(service_error)?;
            let r = ring.unseal(&env, aad.unwrap_or("").as_bytes()).await.map_err(service_error);
            svc.shutdown().await.map_err(service_error)?;
            r.map(zeroize::Zeroizing::new)
        }),
    }
}
