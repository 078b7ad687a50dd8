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
        | TokensCommand::Revoke { dir, .. }
        | TokensCommand::AwsCredentials { dir, .. } => dir.clone(),
    };
    if let TokensCommand::AwsCredentials { name, .. } = &cmd {
        let client = crate::client::Client::from_env()?.ok_or_else(|| {
            CliError::usage(
                "aws-credentials needs FLEETKEY_ADDR and FLEETKEY_TOKEN: the server makes the pair and keeps its secret wrapped by custody",
            )
        })?;
        return runtime()?.block_on(aws_credentials(&client, name.clone(), dir.is_json()));
    }
    if let Some(client) = crate::client::Client::from_env()? {
        return runtime()?.block_on(run_with(&Remote(&client), cmd, dir.is_json()));
    }
    runtime()?.block_on(async move {
        let tokens = Local(open_tokens(&dir.data_dir).await?);
        run_with(&tokens, cmd, dir.is_json()).await
    })
}

/// Single-quotes `s` for a POSIX shell.
fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

async fn aws_credentials(
    client: &crate::client::Client,
    token: Option<String>,
    json: bool,
) -> CliResult<()> {
    let body = fleetkey_server::api::AwsAccessKeyRequest { token };
    let key: fleetkey_server::api::AwsAccessKeyResponse = client
        .send(reqwest::Method::POST, "/v1/tokens/aws-access-keys", &body)
        .await?;
    if json {
        return crate::output::json_line(&key);
    }
    eprintln!(
        "fleetkey: access key {} acts as {} (the secret is shown once; eval \"$(fleetkey tokens aws-credentials)\")",
        key.access_key_id, key.token_id
    );
    let lines = zeroize::Zeroizing::new(format!(
        "AWS_ACCESS_KEY_ID={}\nAWS_SECRET_ACCESS_KEY={}\nAWS_ENDPOINT_URL_KMS={}\nexport AWS_ACCESS_KEY_ID AWS_SECRET_ACCESS_KEY AWS_ENDPOINT_URL_KMS",
        key.access_key_id,
        key.secret_access_key,
        shell_quote(client.addr())
    ));
    crate::out!("{}", lines.as_str());
    Ok(())
}

async fn run_with(t: &impl Tokens, cmd: TokensCommand, json: bool) -> CliResult<()> {
    match cmd {
        TokensCommand::Create {
            name, scopes, ttl, ..
        } => {
            let ttl = ttl.as_deref().map(parse_duration).transpose()?;
            let created = t.create(&name, scopes, ttl).await?;
            if json {
                crate::output::json_line(&created)?;
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
                return crate::output::json(&list);
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
        TokensCommand::AwsCredentials { .. } => Err(CliError::usage(
            "aws-credentials needs FLEETKEY_ADDR and FLEETKEY_TOKEN",
        )),
    }
}
