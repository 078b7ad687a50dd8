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
    let source = crate::local::admin_custody(&dir.data_dir)?;
    let l = lock(&dir.data_dir)?;
    let (store, custody) = crate::local::open_parts(&dir.data_dir, source).await?;
    let clock = Arc::new(fleetkey_server::clock::SystemClock::default());
    Ok((FleetService::new(store, custody, clock), l))
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

/// `fleets patterns`: show, set or remove a session-pattern list.
async fn patterns(
    client: &Option<Client>,
    fleet: Option<String>,
    set: Vec<String>,
    inherit: bool,
    dir: DataDir,
) -> CliResult<()> {
    use fleetkey_server::fleet::patterns::SessionPattern;
    let path = match &fleet {
        Some(f) => crate::client::path(&["v1", "fleets", f, "session-patterns"]),
        None => "/v1/session-patterns".to_owned(),
    };
    let change = if inherit {
        Some(None)
    } else if set.is_empty() {
        None
    } else {
        let list = set
            .iter()
            .map(|s| SessionPattern::parse(s.trim()).map_err(service_error))
            .collect::<CliResult<Vec<_>>>()?;
        Some(Some(list))
    };
    let v = match change {
        None => {
            remote_or_local(client, &dir, Method::GET, &path, None, |f| async move {
                f.sessions.patterns(fleet.as_deref()).await
            })
            .await?
        }
        Some(list) => {
            let body = json!({ "patterns": list });
            remote_or_local(
                client,
                &dir,
                Method::PUT,
                &path,
                Some(body),
                |f| async move {
                    f.sessions
                        .set_patterns(&actor(), fleet.as_deref(), list.as_deref())
                        .await
                },
            )
            .await?
        }
    };
    crate::output::show(&v, dir.format())
}

/// `fleets list`: a page of fleets, or every page.
async fn list(
    client: &Option<Client>,
    page: &crate::cli::PageArgs,
    dir: &DataDir,
) -> CliResult<()> {
    let local = match client {
        Some(_) => None,
        None => Some(local(dir).await?),
    };
    let local = &local;
    let listing = super::listing::Listing {
        field: "fleets",
        columns: &[
            ("name", "NAME"),
            ("credential_ttl_secs", "CREDENTIAL TTL (S)"),
            ("credential_rotation_secs", "ROTATION (S)"),
            ("created_at", "CREATED"),
        ],
        noun: "fleets",
    };
    listing
        .print(page, dir.format(), |after, limit| async move {
            match (client, local) {
                (Some(c), _) => {
                    let path = crate::client::with_query(
                        "/v1/fleets",
                        &[
                            ("after", Some(after).filter(|a| !a.is_empty())),
                            ("limit", Some(limit.to_string())),
                        ],
                    );
                    c.call(Method::GET, &path, None).await
                }
                (None, Some((f, _lock))) => {
                    let list = f
                        .registry
                        .fleets(&after, limit)
                        .await
                        .map_err(service_error)?;
                    let next_after = fleetkey_server::api::next_after(&list, limit, |f| &f.name);
                    Ok(json!({ "fleets": list, "next_after": next_after }))
                }
                (None, None) => Err(CliError::usage("no server and no data directory")),
            }
        })
        .await
}

pub fn fleets(cmd: FleetsCommand) -> CliResult<()> {
    runtime()?.block_on(async move {
        let client = Client::from_env()?;
        match cmd {
            FleetsCommand::List { page, dir } => list(&client, &page, &dir).await,
            FleetsCommand::Patterns {
                fleet,
                set,
                inherit,
                dir,
            } => patterns(&client, fleet, set, inherit, dir).await,
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
                crate::output::show(&v, dir.format())
            }
            FleetsCommand::Show { name, dir } => {
                let path = crate::client::path(&["v1", "fleets", &name]);
                let v = remote_or_local(&client, &dir, Method::GET, &path, None, |f| async move {
                    f.registry.fleet(&name).await
                })
                .await?;
                crate::output::show(&v, dir.format())
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
                crate::output::show(&v, dir.format())
            }
            FleetsCommand::Schema(SchemaCommand::Show { fleet, dir }) => {
                let path = crate::client::path(&["v1", "fleets", &fleet, "schema"]);
                let v = remote_or_local(&client, &dir, Method::GET, &path, None, |f| async move {
                    f.registry.schema(&fleet).await
                })
                .await?;
                crate::output::show(&v, dir.format())
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
                crate::output::show(&v, dir.format())
            }
        }
    })
}
