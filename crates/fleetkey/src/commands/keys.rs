//! `fleetkey keys …`: keyrings in a local data directory.

use super::keys_lifecycle;
use super::verify::read_sign_input;
use crate::binding::Binding;
use crate::cli::{AliasCommand, DataDir, KeysCommand, PolicyArgs};
use crate::error::{CliError, CliResult};
use crate::files::{Output, open_input};
use crate::keyring_lifecycle::KeyringLifecycle;
use crate::keyrings::{Keyrings, Local, Remote, Rewrapped};
use crate::local::{format_duration, format_time, open, parse_duration, runtime, service_error};
use fleetkey_crypto::envelope::armor;
use fleetkey_server::api::keyrings::PolicyRequest;
use fleetkey_server::keys::KeyringInfo;
use std::io::{BufRead, Read, Write};

/// Largest input `keys seal` holds in memory.
pub(crate) const MAX_SEAL_INPUT: u64 = 16 * 1024 * 1024;

/// The policy fields the flags give (`--no-keep-last`: no limit, sent as 0).
fn policy_request(a: &PolicyArgs) -> CliResult<PolicyRequest> {
    Ok(PolicyRequest {
        rotation_period_secs: a
            .rotation_period
            .as_deref()
            .map(parse_duration)
            .transpose()?,
        max_uses: a.max_uses,
        overlap_secs: a.overlap.as_deref().map(parse_duration).transpose()?,
        keep_last: if a.no_keep_last { Some(0) } else { a.keep_last },
    })
}

fn print_rings(rings: &[KeyringInfo], json: bool) -> CliResult<()> {
    if json {
        return crate::output::json(&rings);
    }
    let mut t = crate::output::table(
        &[
            "NAME",
            "ALGORITHM",
            "STATE",
            "PRIMARY",
            "MIN",
            "PERIOD",
            "MAX USES",
            "OVERLAP",
            "KEEP",
        ],
        &[3, 4, 6],
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
            r.state.as_str().to_owned(),
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

pub(crate) fn print_versions(r: &KeyringInfo, json: bool) -> CliResult<()> {
    if json {
        return crate::output::json(r);
    }
    print_rings(std::slice::from_ref(r), false)?;
    if let Some(at) = r.deletion_at {
        crate::out!("deletion:    {}", format_time(at));
    }
    if r.resident {
        crate::out!("resident:    every version's key stays in custody's token");
    }
    if !r.description.is_empty() {
        crate::out!("description: {}", r.description);
    }
    for (k, v) in &r.tags {
        crate::out!("tag:         {k}={v}");
    }
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
        | KeysCommand::Datakey { dir, .. }
        | KeysCommand::Sign { dir, .. }
        | KeysCommand::Verify { dir, .. }
        | KeysCommand::PublicKey { dir, .. }
        | KeysCommand::Disable { dir, .. }
        | KeysCommand::Enable { dir, .. }
        | KeysCommand::Delete { dir, .. }
        | KeysCommand::CancelDeletion { dir, .. }
        | KeysCommand::Describe { dir, .. }
        | KeysCommand::ImportRecipient { dir, .. }
        | KeysCommand::Import { dir, .. }
        | KeysCommand::Export { dir, .. }
        | KeysCommand::Alias(
            AliasCommand::Set { dir, .. }
            | AliasCommand::Delete { dir, .. }
            | AliasCommand::List { dir, .. },
        )
        | KeysCommand::Tick { dir } => dir,
    }
}

pub fn run(cmd: KeysCommand) -> CliResult<()> {
    let dir = dir_of(&cmd).clone();
    // What is a document rather than a record prints JSON unless asked otherwise.
    let document = matches!(
        cmd,
        KeysCommand::Sign { .. }
            | KeysCommand::PublicKey { .. }
            | KeysCommand::Datakey { .. }
            | KeysCommand::ImportRecipient { .. }
    );
    let json = if document {
        dir.format_or(crate::cli::Format::Json) == crate::cli::Format::Json
    } else {
        dir.is_json()
    };
    let rt = runtime()?;
    if let Some(client) = crate::client::Client::from_env()? {
        return rt.block_on(run_with(&Remote(&client), cmd, json));
    }
    rt.block_on(async move {
        let svc = open(&dir.data_dir).await?;
        let r = run_with(&Local(&svc), cmd, json).await;
        // Persist usage counts and return unused nonces, whatever happened.
        svc.shutdown().await.map_err(service_error)?;
        r
    })
}

async fn run_with(
    k: &(impl Keyrings + KeyringLifecycle),
    cmd: KeysCommand,
    json: bool,
) -> CliResult<()> {
    match cmd {
        KeysCommand::Create {
            name,
            algorithm,
            policy,
            details,
            exportable,
            convergent,
            resident,
            ..
        } => {
            let policy = policy_request(&policy)?;
            let options = keys_lifecycle::options(&details, exportable, convergent, resident)?;
            let info = k.create(&name, &algorithm, policy, options).await?;
            print_versions(&info, json)
        }
        c @ (KeysCommand::Disable { .. }
        | KeysCommand::Enable { .. }
        | KeysCommand::Delete { .. }
        | KeysCommand::CancelDeletion { .. }
        | KeysCommand::Describe { .. }
        | KeysCommand::ImportRecipient { .. }
        | KeysCommand::Import { .. }
        | KeysCommand::Export { .. }
        | KeysCommand::Alias(_)) => keys_lifecycle::run(k, c, json).await,
        KeysCommand::List { .. } => print_rings(&k.list().await?, json),
        KeysCommand::Show { name, .. } => print_versions(&k.show(&name).await?, json),
        KeysCommand::Rotate { name, .. } => {
            let v = k.rotate(&name).await?;
            eprintln!("fleetkey: {name} now seals with version {v}");
            Ok(())
        }
        KeysCommand::Revoke { name, version, .. } => {
            k.revoke(&name, version).await?;
            eprintln!("fleetkey: {name} version {version} revoked");
            Ok(())
        }
        KeysCommand::Policy { name, policy, .. } => {
            print_versions(&k.set_policy(&name, policy_request(&policy)?).await?, json)
        }
        KeysCommand::Rewrap {
            name,
            bind,
            input,
            output,
            ..
        } => {
            let bind = bind.binding()?;
            let envelopes = read_armored_lines(input.as_deref())?;
            let results = k.rewrap(&name, &envelopes, &bind).await?;
            write_rewrapped(output.as_deref(), results)
        }
        KeysCommand::Seal {
            name, bind, input, ..
        } => {
            let bind = bind.binding()?;
            let data = zeroize::Zeroizing::new(read_all(input.as_deref(), MAX_SEAL_INPUT)?);
            let env = k.seal(&name, &data, &bind).await?;
            crate::out!("{}", armor::encode(&env));
            Ok(())
        }
        KeysCommand::Unseal {
            name, bind, input, ..
        } => {
            let bind = bind.binding()?;
            let env = read_envelope(input.as_deref())?;
            let pt = k.unseal(&name, &env, &bind).await?;
            std::io::stdout()
                .write_all(&pt)
                .map_err(|e| CliError::io("stdout", &e))
        }
        c @ (KeysCommand::Sign { .. }
        | KeysCommand::Verify { .. }
        | KeysCommand::PublicKey { .. }
        | KeysCommand::Datakey { .. }) => run_key_use(k, c, json).await,
        KeysCommand::Tick { .. } => tick(k).await,
    }
}

/// Prints one result as JSON or as a FIELD VALUE table.
pub(crate) fn show(v: &impl serde::Serialize, json: bool) -> CliResult<()> {
    let format = if json {
        crate::cli::Format::Json
    } else {
        crate::cli::Format::Table
    };
    crate::output::show(v, format)
}

/// Signatures, MACs, public keys and data keys.
async fn run_key_use(k: &impl Keyrings, cmd: KeysCommand, json: bool) -> CliResult<()> {
    match cmd {
        KeysCommand::Sign {
            name,
            mac,
            prehash,
            input,
            ..
        } => {
            let data = read_sign_input(input.as_deref(), &prehash)?;
            show(&k.sign(&name, data.signable(), mac).await?, json)
        }
        KeysCommand::Verify {
            name,
            signature,
            key_version,
            mac,
            prehash,
            input,
            ..
        } => {
            let sig = super::verify::signature_arg(&signature)?;
            let data = read_sign_input(input.as_deref(), &prehash)?;
            let v = k
                .verify(&name, data.signable(), &sig, key_version, mac)
                .await?;
            match (v.valid, v.key_version) {
                (true, Some(n)) => {
                    crate::out!("valid (version {n})");
                    Ok(())
                }
                _ => Err(CliError::refused(
                    "invalid: no usable version of the keyring verifies it",
                )),
            }
        }
        KeysCommand::PublicKey {
            name,
            key_version,
            key_format,
            ..
        } => show(&k.public_key(&name, key_version, &key_format).await?, json),
        KeysCommand::Datakey {
            name,
            bind,
            no_plaintext,
            ..
        } => show(
            &k.datakey(&name, &bind.binding()?, !no_plaintext).await?,
            json,
        ),
        _ => Err(CliError::usage("not a signing or data key command")),
    }
}

/// Applies every keyring's policy now; fails if any keyring's failed.
async fn tick(k: &impl Keyrings) -> CliResult<()> {
    let run = k.tick().await?;
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

pub(crate) fn read_all(input: Option<&std::path::Path>, limit: u64) -> CliResult<Vec<u8>> {
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
fn write_rewrapped(output: Option<&std::path::Path>, results: Vec<Rewrapped>) -> CliResult<()> {
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
pub(crate) fn read_envelope(input: Option<&std::path::Path>) -> CliResult<Vec<u8>> {
    let data = read_all(input, 2 * MAX_SEAL_INPUT)?;
    if armor::is_armored(&data) {
        let text =
            String::from_utf8(data).map_err(|_| CliError::refused("armored input is not text"))?;
        armor::decode(&text).map_err(crate::error::envelope_error)
    } else {
        Ok(data)
    }
}

fn data_dir() -> std::path::PathBuf {
    std::env::var_os("FLEETKEY_DATA_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| std::path::PathBuf::from("./fleetkey-data"))
}

/// Runs `$call` with `$k` bound to the keyrings of the server (FLEETKEY_ADDR)
/// or, without one, of the local data directory (shut down cleanly afterwards).
macro_rules! on_keyrings {
    (|$k:ident| $call:expr) => {{
        let rt = runtime()?;
        match crate::client::Client::from_env()? {
            Some(c) => {
                let $k = Remote(&c);
                rt.block_on(async { $call })
            }
            None => rt.block_on(async {
                let svc = open(&data_dir()).await?;
                let $k = Local(&svc);
                let r = async { $call }.await;
                svc.shutdown().await.map_err(service_error)?;
                r
            }),
        }
    }};
}

/// Seals `data` with keyring `name` on the server (FLEETKEY_ADDR) or locally.
pub fn keyring_seal(
    name: &str,
    input: Option<&std::path::Path>,
    aad: &Binding,
) -> CliResult<Vec<u8>> {
    let data = zeroize::Zeroizing::new(read_all(input, MAX_SEAL_INPUT)?);
    on_keyrings!(|k| k.seal(name, &data, aad).await)
}

/// Opens a keyring envelope on the server (FLEETKEY_ADDR) or locally.
pub fn keyring_unseal(
    name: &str,
    env: &[u8],
    aad: &Binding,
) -> CliResult<zeroize::Zeroizing<Vec<u8>>> {
    on_keyrings!(|k| k.unseal(name, env, aad).await)
}

/// A data key from keyring `name` (on the server, or locally) as a key of
/// `algorithm`, and the data key as the keyring sealed it (bound to `aad`).
pub fn keyring_datakey(
    name: &str,
    algorithm: fleetkey_crypto::aead::Algorithm,
    aad: &Binding,
) -> CliResult<(fleetkey_crypto::aead::AeadKey, Vec<u8>)> {
    let dk = on_keyrings!(|k| k.datakey(name, aad, true).await)?;
    let b64 = |field: &str, v: &str| {
        base64::Engine::decode(&base64::engine::general_purpose::STANDARD, v)
            .map_err(|_| CliError::refused(format!("the data key's {field} is not base64")))
    };
    let plain = zeroize::Zeroizing::new(b64("plaintext", dk.plaintext.as_deref().unwrap_or(""))?);
    let secret = fleetkey_crypto::secret::SecretBytes::from_slice(&plain)
        .map_err(|_| CliError::refused("the data key is not 32 bytes"))?;
    let key = fleetkey_crypto::aead::AeadKey::new(algorithm, secret)
        .map_err(crate::error::envelope_error)?;
    Ok((key, b64("ciphertext", &dk.ciphertext)?))
}
