//! `fleetkey devices …`: list, show, config, rotate, commands, decommission, claim
//! codes and claims, on the server (FLEETKEY_ADDR/FLEETKEY_TOKEN) or on a local
//! data directory.

use super::fleets::{print, read_json, remote_or_local};
use crate::cli::{ConfigCommand, DataDir, DevicesCommand};
use crate::client::Client;
use crate::error::{CliError, CliResult};
use crate::local::{actor, parse_duration, runtime};
use fleetkey_server::api::DeviceInfo;
use fleetkey_server::api::devices::CommandInfo;
use fleetkey_server::fleet::{ConfigUpdate, FleetService};
use reqwest::Method;
use serde_json::{Map, Value, json};

/// Refuses (as "not found") a device of another fleet, like the API does.
pub(crate) async fn in_fleet(
    f: &FleetService,
    fleet: &str,
    id: &str,
) -> fleetkey_server::Result<()> {
    if f.registry.device(id).await?.fleet != fleet {
        return Err(fleetkey_server::Error::DeviceNotFound(id.to_owned()));
    }
    Ok(())
}

/// `a.b=1 c=x` as a merge patch `{"a": {"b": 1}, "c": "x"}`; values that parse as
/// JSON are JSON, anything else a string.
fn patch_from_pairs(pairs: &[String]) -> CliResult<Value> {
    let mut patch = Value::Object(Map::new());
    for pair in pairs {
        let (key, raw) = pair.split_once('=').ok_or_else(|| {
            CliError::usage(format!("{pair:?} is not KEY=VALUE"))
                .hint("like interval_s=300 or server.host=example")
        })?;
        if key.is_empty() || key.split('.').any(str::is_empty) {
            return Err(CliError::usage(format!("invalid key {key:?}")));
        }
        let value = serde_json::from_str(raw).unwrap_or_else(|_| Value::String(raw.to_owned()));
        let mut node = &mut patch;
        let parts: Vec<&str> = key.split('.').collect();
        for (i, part) in parts.iter().enumerate() {
            let map = node.as_object_mut().ok_or_else(|| {
                CliError::usage(format!("{key:?} conflicts with another KEY=VALUE"))
            })?;
            if i + 1 == parts.len() {
                map.insert((*part).to_owned(), value.clone());
                break;
            }
            node = map
                .entry((*part).to_owned())
                .or_insert_with(|| Value::Object(Map::new()));
        }
    }
    Ok(patch)
}

pub fn devices(cmd: DevicesCommand) -> CliResult<()> {
    runtime()?.block_on(async move {
        let client = Client::from_env()?;
        match cmd {
            DevicesCommand::List { fleet, limit, dir } => list(&client, fleet, limit, dir).await,
            DevicesCommand::Show { fleet, id, dir } => {
                let path = crate::client::path(&["v1", "fleets", &fleet, "devices", &id]);
                let v = remote_or_local(&client, &dir, Method::GET, &path, None, |f| async move {
                    in_fleet(&f, &fleet, &id).await?;
                    f.registry.device(&id).await.map(DeviceInfo::from)
                })
                .await?;
                print(&v)
            }
            DevicesCommand::Config(c) => config(&client, c).await,
            DevicesCommand::Rotate {
                fleet,
                id,
                reason,
                dir,
            } => act(&client, Action::Rotate, fleet, id, reason, dir).await,
            DevicesCommand::Commands {
                fleet,
                id,
                open,
                dir,
            } => commands(&client, fleet, id, open, dir).await,
            DevicesCommand::Decommission {
                fleet,
                id,
                reason,
                dir,
            } => act(&client, Action::Decommission, fleet, id, reason, dir).await,
            DevicesCommand::ClaimCode {
                fleet,
                id,
                ttl,
                dir,
            } => {
                let ttl = parse_duration(&ttl)?;
                let path =
                    crate::client::path(&["v1", "fleets", &fleet, "devices", &id, "claim-codes"]);
                let body = json!({ "ttl_secs": ttl });
                let v = remote_or_local(
                    &client,
                    &dir,
                    Method::POST,
                    &path,
                    Some(body),
                    |f| async move {
                        in_fleet(&f, &fleet, &id).await?;
                        let (code, expires_at) =
                            f.onboarding.create_claim_code(&actor(), &id, ttl).await?;
                        Ok(json!({ "code": code, "expires_at": expires_at }))
                    },
                )
                .await?;
                print(&v)
            }
            DevicesCommand::Claim {
                code,
                claimed_by,
                dir,
            } => {
                let body = json!({ "code": code, "claimed_by": claimed_by });
                let v = remote_or_local(
                    &client,
                    &dir,
                    Method::POST,
                    "/v1/claims",
                    Some(body),
                    |f| async move {
                        f.onboarding
                            .claim(&actor(), &code, &claimed_by)
                            .await
                            .map(DeviceInfo::from)
                    },
                )
                .await?;
                print(&v)
            }
        }
    })
}

/// What `devices rotate` and `devices decommission` do.
#[derive(Clone, Copy)]
enum Action {
    /// Ask the device to rotate its credential.
    Rotate,
    /// Revoke the device's credentials and send it the wipe.
    Decommission,
}

/// `devices rotate|decommission`: one action, with its reason, on one device.
async fn act(
    client: &Option<Client>,
    action: Action,
    fleet: String,
    id: String,
    reason: String,
    dir: DataDir,
) -> CliResult<()> {
    let verb = match action {
        Action::Rotate => "rotate",
        Action::Decommission => "decommission",
    };
    let path = crate::client::path(&["v1", "fleets", &fleet, "devices", &id, verb]);
    let body = json!({ "reason": reason });
    let v = remote_or_local(
        client,
        &dir,
        Method::POST,
        &path,
        Some(body),
        |f| async move {
            in_fleet(&f, &fleet, &id).await?;
            let who = actor();
            let shown = match action {
                Action::Rotate => serde_json::to_value(CommandInfo::from(
                    f.commands.request_rotation(&who, &id, &reason).await?,
                )),
                Action::Decommission => serde_json::to_value(DeviceInfo::from(
                    f.onboarding.decommission(&who, &id, &reason).await?,
                )),
            };
            shown.map_err(|e| fleetkey_server::Error::Internal(e.to_string()))
        },
    )
    .await?;
    print(&v)
}

/// `devices list`: a table (or JSON) of a fleet's devices.
async fn list(client: &Option<Client>, fleet: String, limit: u32, dir: DataDir) -> CliResult<()> {
    let path = format!(
        "{}?limit={limit}",
        crate::client::path(&["v1", "fleets", &fleet, "devices"])
    );
    let v = remote_or_local(client, &dir, Method::GET, &path, None, |f| async move {
        let list = f.registry.devices(&fleet, "", limit.clamp(1, 1000)).await?;
        Ok(json!({ "devices": list.into_iter().map(DeviceInfo::from).collect::<Vec<_>>() }))
    })
    .await?;
    if dir.json {
        return print(&v);
    }
    let mut t = crate::output::table(&["ID", "HARDWARE ID", "STATE", "MODEL"], &[]);
    for d in v["devices"].as_array().cloned().unwrap_or_default() {
        t.add_row(
            ["id", "hardware_id", "state", "model"].map(|k| d[k].as_str().unwrap_or("").to_owned()),
        );
    }
    crate::out!("{}", t.trim_fmt());
    Ok(())
}

/// `devices commands`: a table (or JSON) of a device's commands.
async fn commands(
    client: &Option<Client>,
    fleet: String,
    id: String,
    open: bool,
    dir: DataDir,
) -> CliResult<()> {
    let path = format!(
        "{}?open={open}",
        crate::client::path(&["v1", "fleets", &fleet, "devices", &id, "commands"])
    );
    let v = remote_or_local(client, &dir, Method::GET, &path, None, |f| async move {
        in_fleet(&f, &fleet, &id).await?;
        let cs = f.commands.device_commands(&id, open).await?;
        Ok(json!({ "commands": cs.into_iter().map(CommandInfo::from).collect::<Vec<_>>() }))
    })
    .await?;
    if dir.json {
        return print(&v);
    }
    let mut t = crate::output::table(&["ID", "KIND", "STATE", "CREATED"], &[]);
    for c in v["commands"].as_array().cloned().unwrap_or_default() {
        let created = c["created_at"]
            .as_i64()
            .map(crate::local::format_time)
            .unwrap_or_default();
        let [id, kind, state] =
            ["id", "kind", "state"].map(|k| c[k].as_str().unwrap_or("").to_owned());
        t.add_row(vec![id, kind, state, created]);
    }
    crate::out!("{}", t.trim_fmt());
    Ok(())
}

async fn config(client: &Option<Client>, cmd: ConfigCommand) -> CliResult<()> {
    let v = match cmd {
        ConfigCommand::Get { fleet, id, dir } => {
            let path = crate::client::path(&["v1", "fleets", &fleet, "devices", &id, "config"]);
            remote_or_local(client, &dir, Method::GET, &path, None, |f| async move {
                in_fleet(&f, &fleet, &id).await?;
                f.registry.config(&id).await
            })
            .await?
        }
        ConfigCommand::Set {
            fleet,
            id,
            changes,
            file,
            if_revision,
            dir,
        } => {
            let path = crate::client::path(&["v1", "fleets", &fleet, "devices", &id, "config"]);
            let (method, body, update) = match &file {
                Some(file) => {
                    let config = read_json(file)?;
                    let body = json!({ "config": config, "if_revision": if_revision });
                    (Method::PUT, body, ConfigUpdate::Replace(config))
                }
                None => {
                    let patch = patch_from_pairs(&changes)?;
                    let body = json!({ "patch": patch, "if_revision": if_revision });
                    (Method::PATCH, body, ConfigUpdate::Merge(patch))
                }
            };
            remote_or_local(client, &dir, method, &path, Some(body), |f| async move {
                in_fleet(&f, &fleet, &id).await?;
                f.registry
                    .set_config(&actor(), &id, update, if_revision)
                    .await
            })
            .await?
        }
        ConfigCommand::Reset { fleet, id, dir } => {
            let path =
                crate::client::path(&["v1", "fleets", &fleet, "devices", &id, "config", "reset"]);
            remote_or_local(client, &dir, Method::POST, &path, None, |f| async move {
                in_fleet(&f, &fleet, &id).await?;
                f.registry.reset_config(&actor(), &id).await
            })
            .await?
        }
        ConfigCommand::Migrate { fleet, dir } => {
            let path = crate::client::path(&["v1", "fleets", &fleet, "config", "migrate"]);
            remote_or_local(client, &dir, Method::POST, &path, None, |f| async move {
                f.registry.migrate_configs(&actor(), &fleet).await
            })
            .await?
        }
    };
    print(&v)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn pairs_become_a_merge_patch() {
        let p = patch_from_pairs(&[
            "interval_s=300".into(),
            "server.host=ingest.example".into(),
            "server.tls=true".into(),
            "name=\"42\"".into(),
        ])
        .unwrap();
        assert_eq!(
            p,
            json!({"interval_s": 300, "server": {"host": "ingest.example", "tls": true}, "name": "42"})
        );
        assert!(patch_from_pairs(&["novalue".into()]).is_err());
        assert!(patch_from_pairs(&["a..b=1".into()]).is_err());
        assert!(patch_from_pairs(&["a=1".into(), "a.b=2".into()]).is_err());
    }
}
