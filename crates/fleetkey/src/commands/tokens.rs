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
    runtime()?.block_on(async move {
        let tokens = open_tokens(&dir.data_dir).await?;
        match cmd {
            TokensCommand::Create { name, scopes, ttl, .. } => {
                let ttl = ttl.as_deref().map(parse_duration).transpose()?;
                let (record, secret) = tokens.create(&actor(), &name, scopes, ttl).await.map_err(service_error)?;
                if dir.json {
                    let v = serde_json::json!({ "id": record.id, "token": secret.as_str(), "scopes": record.scopes, "expires_at": record.expires_at });
                    println!("{v}");
                } else {
                    eprintln!("fleetkey: created token {} (shown once; store it now)", record.id);
                    println!("{}", secret.as_str());
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
                    println!("{}", serde_json::to_string_pretty(&v).map_err(|e| CliError::refused(e.to_string()))?);
                } else {
                    println!("{:<22} {:<24} {:<10} SCOPES", "ID", "NAME", "STATE");
                    for t in list {
                        let state = if t.revoked_at.is_some() { "revoked" } else { "active" };
                        println!("{:<22} {:<24} {:<10} {}", t.id, t.name, state, t.scopes.join(","));
                    }
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
