//! `fleetkey fleets …` and `fleetkey factory …`: on the server
//! (FLEETKEY_ADDR/FLEETKEY_TOKEN) or on a local data directory.

use crate::cli::{DataDir, FleetsCommand, SchemaCommand};
use crate::client::Client;
use crate::error::{CliError, CliResult};
use crate::local::{actor, lock, parse_duration, runtime, service_error};
use fleetkey_server::fleet::{FleetService, config::MigrationOp};
use reqwest::Method;
use serde_json::{Value, json};
use std::sync::Arc;

/// The fleet service on a local data directory, with its lock.
pub(crate) async fn local(
    dir: &DataDir,
) -> CliResult<(Arc<FleetService>, fleetkey_server::data_lock::DataDirLock)> {
    let l = lock(&dir.data_dir)?;
    let (store, custody) = crate::local::open_parts(&dir.data_dir).await?;
    let clock = Arc::new(fleetkey_server::clock::SystemClock::default());
    Ok((FleetService::new(store, custody, clock), l))
}

pub(crate) fn print(v: &Value) -> CliResult<()> {
    crate::out!(
        "{}",
        serde_json::to_string_pretty(v).map_err(|e| CliError::refused(e.to_string()))?
    );
    Ok(())
}

/// Runs one operation on the server when `FLEETKEY_ADDR` is set (the route and
/// body given), else on the local data directory (`op`), and returns its JSON.
pub(crate) async fn remote_or_local<T, F, Fut>(
    client: &Option<Client>,
    dir: &DataDir,
    method: Method,
    path: &str,
    body: Option<Value>,
    op: F,
) -> CliResult<Value>
where
    T: serde::Serialize,
    F: FnOnce(Arc<FleetService>) -> Fut,
    Fut: std::future::Future<Output = fleetkey_server::Result<T>>,
{
    match client {
        Some(c) => c.call(method, path, body).await,
        None => {
            let (f, _l) = local(dir).await?;
            let v = op(f).await.map_err(service_error)?;
            serde_json::to_value(v).map_err(|e| CliError::refused(e.to_string()))
        }
    }
}

/// Reads a JSON file.
pub(crate) fn read_json(path: &std::path::Path) -> CliResult<Value> {
    let bytes = std::fs::read(path).map_err(|e| CliError::io(path.display().to_string(), &e))?;
    serde_json::from_slice(&bytes)
        .map_err(|e| CliError::usage(format!("{}: not valid JSON: {e}", path.display())))
}

pub fn fleets(cmd: FleetsCommand) -> CliResult<()> {
    runtime()?.block_on(async move {
        let client = Client::from_env()?;
        match cmd {
            FleetsCommand::Create {
                name,
                credential_ttl,
                dir,
            } => {
                let ttl = credential_ttl.as_deref().map(parse_duration).transpose()?;
                let body = json!({ "name": name, "credential_ttl_secs": ttl });
                let v = remote_or_local(
                    &client,
                    &dir,
                    Method::POST,
                    "/v1/fleets",
                    Some(body),
                    |f| async move {
                        let name = name.parse()?;
                        f.registry.create_fleet(&actor(), &name, ttl).await
                    },
                )
                .await?;
                print(&v)
            }
            FleetsCommand::Show { name, dir } => {
                let path = crate::client::path(&["v1", "fleets", &name]);
                let v = remote_or_local(&client, &dir, Method::GET, &path, None, |f| async move {
                    f.registry.fleet(&name).await
                })
                .await?;
                print(&v)
            }
            FleetsCommand::Schema(SchemaCommand::Set {
                fleet,
                file,
                migration,
                dir,
            }) => {
                let schema = read_json(&file)?;
                let migration: Vec<MigrationOp> = match &migration {
                    Some(m) => serde_json::from_value(read_json(m)?).map_err(|e| {
                        CliError::usage(format!("{}: not a migration: {e}", m.display())).hint(
                            "a JSON array of {\"op\": \"rename\"|\"remove\"|\"set\", …} steps",
                        )
                    })?,
                    None => Vec::new(),
                };
                let path = crate::client::path(&["v1", "fleets", &fleet, "schema"]);
                let body = json!({ "schema": schema, "migration": migration });
                let v = remote_or_local(
                    &client,
                    &dir,
                    Method::PUT,
                    &path,
                    Some(body),
                    |f| async move {
                        f.registry
                            .set_schema(&actor(), &fleet, schema, migration)
                            .await
                    },
                )
                .await?;
                print(&v)
            }
            FleetsCommand::Schema(SchemaCommand::Show { fleet, dir }) => {
                let path = crate::client::path(&["v1", "fleets", &fleet, "schema"]);
                let v = remote_or_local(&client, &dir, Method::GET, &path, None, |f| async move {
                    f.registry.schema(&fleet).await
                })
                .await?;
                print(&v)
            }
            FleetsCommand::RotationPolicy {
                name,
                every,
                off: _,
                dir,
            } => {
                let period = every.as_deref().map(parse_duration).transpose()?;
                let path = crate::client::path(&["v1", "fleets", &name, "rotation-policy"]);
                let body = json!({ "period_secs": period });
                let v = remote_or_local(
                    &client,
                    &dir,
                    Method::PUT,
                    &path,
                    Some(body),
                    |f| async move {
                        f.commands
                            .set_rotation_policy(&actor(), &name, period)
                            .await
                    },
                )
                .await?;
                print(&v)
            }
        }
    })
}
