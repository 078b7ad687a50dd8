//! `fleetkey tokens …` in local admin mode.

use crate::cli::TokensCommand;
use crate::error::{CliError, CliResult};
use crate::local::{actor, open_tokens, parse_duration, runtime, service_error};

pub fn run(cmd: TokensCommand) -> CliResult<()> {
    let dir = match &cmd {
        TokensCommand::Create { dir, .. }
        | TokensCommand::List { dir }
        | TokensCommand::Revoke { dir, .. } => dir.clone(),
    };
    if let Some(client) = crate::client::Client::from_env()? {
        return runtime()?.block_on(remote(&client, cmd, dir.json));
    }
    runtime()?.block_on(async move {
        let tokens = open_tokens(&dir.data_dir).await?;
        match cmd {
            TokensCommand::Create { name, scopes, ttl, .. } => {
                let ttl = ttl.as_deref().map(parse_duration).transpose()?;
                let (record, secret) = tokens.create(&actor(), &name, scopes, ttl).await.map_err(service_error)?;
                if dir.json {
                    let v = serde_json::json!({ "id": record.id, "token": secret.as_str(), "scopes": record.scopes, "expires_at": record.expires_at });
                    crate::out!("{v}");
                } else {
                    eprintln!("fleetkey: created token {} (shown once; store it now)", record.id);
                    crate::out!("{}", secret.as_str());
                }
                Ok(())
            }
            TokensCommand::List { .. } => {
                let list = tokens.list().await.map_err(service_error)?;
                if dir.json {
                    let v: Vec<_> = list
                        .iter()
                        .map(|t| serde_json::json!({ "id": t.id, "name": t.name, "scopes": t.scopes, "created_at": t.created_at, "expires_at": t.expires_at, "revoked_at": t.revoked_at }))
                        .collect();
                    crate::out!("{}", serde_json::to_string_pretty(&v).map_err(|e| CliError::refused(e.to_string()))?);
                } else {
                    let mut table = crate::output::table(&["ID", "NAME", "STATE", "SCOPES"], &[]);
                    for t in list {
                        let state = if t.revoked_at.is_some() { "revoked" } else { "active" };
                        table.add_row(vec![t.id, t.name, state.to_owned(), t.scopes.join(",")]);
                    }
                    crate::out!("{}", table.trim_fmt());
                }
                Ok(())
            }
            TokensCommand::Revoke { id, .. } => {
                tokens.revoke(&actor(), &id).await.map_err(service_error)?;
                eprintln!("fleetkey: token {id} revoked");
                Ok(())
            }
        }
    })
}

async fn remote(c: &crate::client::Client, cmd: TokensCommand, json: bool) -> CliResult<()> {
    use reqwest::Method;
    use serde_json::{Value, json};
    match cmd {
        TokensCommand::Create {
            name, scopes, ttl, ..
        } => {
            let ttl = ttl.as_deref().map(parse_duration).transpose()?;
            let v: Value = c
                .call(
                    Method::POST,
                    "/v1/tokens",
                    Some(json!({ "name": name, "scopes": scopes, "ttl_secs": ttl })),
                )
                .await?;
            if json {
                crate::out!("{v}");
            } else {
                eprintln!(
                    "fleetkey: created token {} (shown once; store it now)",
                    v["id"].as_str().unwrap_or("?")
                );
                crate::out!("{}", v["token"].as_str().unwrap_or_default());
            }
            Ok(())
        }
        TokensCommand::List { .. } => {
            let v: Value = c.call(Method::GET, "/v1/tokens", None).await?;
            if json {
                crate::out!(
                    "{}",
                    serde_json::to_string_pretty(&v["tokens"])
                        .map_err(|e| CliError::refused(e.to_string()))?
                );
            } else {
                let mut table = crate::output::table(&["ID", "NAME", "STATE", "SCOPES"], &[]);
                for t in v["tokens"].as_array().cloned().unwrap_or_default() {
                    let state = if t["revoked_at"].is_null() {
                        "active"
                    } else {
                        "revoked"
                    };
                    let scopes: Vec<&str> = t["scopes"]
                        .as_array()
                        .map(|a| a.iter().filter_map(|s| s.as_str()).collect())
                        .unwrap_or_default();
                    table.add_row(vec![
                        t["id"].as_str().unwrap_or("").to_owned(),
                        t["name"].as_str().unwrap_or("").to_owned(),
                        state.to_owned(),
                        scopes.join(","),
                    ]);
                }
                crate::out!("{}", table.trim_fmt());
            }
            Ok(())
        }
        TokensCommand::Revoke { id, .. } => {
            let _: Value = c
                .call(
                    Method::POST,
                    &crate::client::path(&["v1", "tokens", &id, "revoke"]),
                    None,
                )
                .await?;
            eprintln!("fleetkey: token {id} revoked");
            Ok(())
        }
    }
}
