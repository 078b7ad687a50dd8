//! `fleetkey keys disable|enable|delete|cancel-deletion|describe` and
//! `fleetkey keys alias …`: a keyring's life cycle, details and aliases;
//! `fleetkey keys import-recipient|import|export`: key material in and out.

use super::keys::{print_versions, read_envelope, show};
use crate::cli::{AliasCommand, DetailsArgs, KeysCommand};
use crate::error::{CliError, CliResult};
use crate::files::Output;
use crate::keyring_lifecycle::{KeyringLifecycle, StateMove};
use crate::local::format_time;
use fleetkey_server::keys::KeyringOptions;
use std::collections::BTreeMap;

/// The tags of `--tag KEY=VALUE` flags (a key given twice keeps the last value).
pub(crate) fn parse_tags(flags: &[String]) -> CliResult<BTreeMap<String, String>> {
    flags
        .iter()
        .map(|t| match t.split_once('=') {
            Some((k, v)) if !k.is_empty() => Ok((k.to_owned(), v.to_owned())),
            _ => Err(CliError::usage(format!(
                "--tag {t:?}: use KEY=VALUE with a non-empty KEY"
            ))),
        })
        .collect()
}

/// The options of `keys create`.
pub(crate) fn options(
    a: &DetailsArgs,
    exportable: bool,
    convergent: bool,
    resident: bool,
) -> CliResult<KeyringOptions> {
    Ok(KeyringOptions {
        description: a.description.clone().unwrap_or_default(),
        tags: parse_tags(&a.tags)?,
        exportable,
        convergent,
        resident,
    })
}

/// Runs a life-cycle or alias command.
pub(crate) async fn run(k: &impl KeyringLifecycle, cmd: KeysCommand, json: bool) -> CliResult<()> {
    let (name, to) = match cmd {
        KeysCommand::Disable { name, .. } => (name, StateMove::Disable),
        KeysCommand::Enable { name, .. } => (name, StateMove::Enable),
        KeysCommand::Delete { name, days, .. } => (name, StateMove::Delete(days)),
        KeysCommand::CancelDeletion { name, .. } => (name, StateMove::CancelDeletion),
        KeysCommand::Describe {
            name,
            details,
            clear_tags,
            ..
        } => {
            let tags = match (clear_tags, details.tags.is_empty()) {
                (false, true) => None,
                _ => Some(parse_tags(&details.tags)?),
            };
            let info = k.set_details(&name, details.description, tags).await?;
            return print_versions(&info, json);
        }
        KeysCommand::Alias(a) => return alias(k, a, json).await,
        KeysCommand::ImportRecipient { name, .. } => {
            return show(&k.import_recipient(&name).await?, json);
        }
        KeysCommand::Import { name, input, .. } => {
            let sealed = read_envelope(input.as_deref())?;
            let v = k.import(&name, &sealed).await?;
            eprintln!("fleetkey: {name} now seals with version {v} (imported)");
            return Ok(());
        }
        KeysCommand::Export {
            name,
            recipient,
            key_version,
            output,
            ..
        } => {
            let r = k.export(&name, &recipient, key_version).await?;
            let sealed =
                base64::Engine::decode(&base64::engine::general_purpose::STANDARD, &r.ciphertext)
                    .map_err(|_| CliError::refused("server returned invalid base64"))?;
            let mut out = Output::create(output.as_deref(), false)?;
            let text = fleetkey_crypto::envelope::armor::encode(&sealed);
            let name_out = out.name();
            writeln!(out.writer(), "{text}").map_err(|e| CliError::io(&name_out, &e))?;
            out.commit(true)?;
            eprintln!("fleetkey: exported {name} version {}", r.key_version);
            return Ok(());
        }
        _ => return Err(CliError::usage("not a life-cycle command")),
    };
    let info = k.move_state(&name, to).await?;
    if let Some(at) = info.deletion_at {
        eprintln!(
            "fleetkey: {} is pending deletion; its key material is erased at {} unless \
             `fleetkey keys cancel-deletion {}` runs first",
            info.name,
            format_time(at),
            info.name
        );
    }
    print_versions(&info, json)
}

async fn alias(k: &impl KeyringLifecycle, cmd: AliasCommand, json: bool) -> CliResult<()> {
    if let AliasCommand::Set { alias, .. } | AliasCommand::Delete { alias, .. } = &cmd
        && !alias.starts_with(fleetkey_server::keys::ALIAS_PREFIX)
    {
        return Err(CliError::usage(format!(
            "{alias:?}: an alias starts with alias/ (alias/{alias})"
        )));
    }
    match cmd {
        AliasCommand::Set { alias, keyring, .. } => {
            let a = k.put_alias(&alias, &keyring).await?;
            eprintln!("fleetkey: {} -> {}", a.alias, a.keyring);
            Ok(())
        }
        AliasCommand::Delete { alias, .. } => {
            k.delete_alias(&alias).await?;
            eprintln!("fleetkey: {alias} removed");
            Ok(())
        }
        AliasCommand::List { keyring, .. } => {
            let list = k.aliases(keyring.as_deref()).await?;
            if json {
                return crate::output::json(&list);
            }
            let mut t = crate::output::table(&["ALIAS", "KEYRING", "UPDATED"], &[]);
            for a in list {
                t.add_row(vec![a.alias, a.keyring, format_time(a.updated_at)]);
            }
            crate::out!("{}", t.trim_fmt());
            Ok(())
        }
    }
}
