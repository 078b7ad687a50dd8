//! `fleetkey tokens …`: on the server (FLEETKEY_ADDR/FLEETKEY_TOKEN) or in local
//! admin mode, through [`crate::tokens::Tokens`].

use crate::cli::TokensCommand;
use crate::error::{CliError, CliResult};
use crate::local::{open_tokens, parse_duration, runtime};
use crate::tokens::{Local, Remote, Tokens};

pub fn run(cmd: TokensCommand) -> CliResult<()> {
    let dir = match &cmd {
        TokensCommand::Create { dir, .. }
        | TokensCommand::List { dir }
        | TokensCommand::Revoke { dir, .. } => dir.clone(),
    };
    if let Some(client) = crate::client::Client::from_env()? {
        return runtime()?.block_on(run_with(&Remote(&client), cmd, dir.json));
    }
    runtime()?.block_on(async move {
        let tokens = Local(open_tokens(&dir.data_dir).await?);
        run_with(&tokens, cmd, dir.json).await
    })
}

fn to_json(v: &impl serde::Serialize, pretty: bool) -> CliResult<String> {
    let text = if pretty {
        serde_json::to_string_pretty(v)
    } else {
        serde_json::to_string(v)
    };
    text.map_err(|e| CliError::refused(e.to_string()))
}

async fn run_with(t: &impl Tokens, cmd: TokensCommand, json: bool) -> CliResult<()> {
    match cmd {
        TokensCommand::Create {
            name, scopes, ttl, ..
        } => {
            let ttl = ttl.as_deref().map(parse_duration).transpose()?;
            let created = t.create(&name, scopes, ttl).await?;
            if json {
                crate::out!(
                    "{}",
                    zeroize::Zeroizing::new(to_json(&created, false)?).as_str()
                );
            } else {
                eprintln!(
                    "fleetkey: created token {} (shown once; store it now)",
                    created.info.id
                );
                crate::out!("{}", created.token);
            }
            Ok(())
        }
        TokensCommand::List { .. } => {
            let list = t.list().await?;
            if json {
                crate::out!("{}", to_json(&list, true)?);
                return Ok(());
            }
            let mut table = crate::output::table(&["ID", "NAME", "STATE", "SCOPES"], &[]);
            for t in list {
                let state = if t.revoked_at.is_some() {
                    "revoked"
                } else {
                    "active"
                };
                table.add_row(vec![t.id, t.name, state.to_owned(), t.scopes.join(",")]);
            }
            crate::out!("{}", table.trim_fmt());
            Ok(())
        }
        TokensCommand::Revoke { id, .. } => {
            t.revoke(&id).await?;
            eprintln!("fleetkey: token {id} revoked");
            Ok(())
        }
    }
}
