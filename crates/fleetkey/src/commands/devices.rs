//! `fleetkey devices …`: list, show, config, rotate, commands, decommission, claim
//! codes and claims, on the server (FLEETKEY_ADDR/FLEETKEY_TOKEN) or on a local
//! data directory.

use super::fleets::{read_json, remote_or_local};
use super::listing::Listing;
use crate::cli::{ConfigCommand, DataDir, DeviceProfile, DevicesCommand, PageArgs, StateArg};
use crate::client::Client;
use crate::error::{CliError, CliResult};
use crate::local::{actor, parse_duration, runtime, service_error};
use fleetkey_server::api::DeviceInfo;
use fleetkey_server::api::devices::CommandInfo;
use fleetkey_server::fleet::{ConfigUpdate, FleetService};
use fleetkey_server::store::{DeviceFilter, DeviceState};
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
            DevicesCommand::List {
                fleet,
                page,
                state,
                profile,
                seen_before,
                seen_after,
                dir,
            } => {
                let filter = DeviceFilter {
                    state: state.map(state_of),
                    profile: profile.map(|p| profile_name(p).to_owned()),
                    seen_before: seen_before.as_deref().map(time_arg).transpose()?,
                    seen_after: seen_after.as_deref().map(time_arg).transpose()?,
                };
                list(&client, fleet, &page, filter, dir).await
            }
            DevicesCommand::Suspend { fleet, id, dir } => {
                set_state(&client, fleet, id, DeviceState::Suspended, dir).await
            }
            DevicesCommand::Resume { fleet, id, dir } => {
                set_state(&client, fleet, id, DeviceState::Active, dir).await
            }
            DevicesCommand::Show { fleet, id, dir } => {
                let path = crate::client::path(&["v1", "fleets", &fleet, "devices", &id]);
                let v = remote_or_local(&client, &dir, Method::GET, &path, None, |f| async move {
                    in_fleet(&f, &fleet, &id).await?;
                    f.registry.device(&id).await.map(DeviceInfo::from)
                })
                .await?;
                crate::output::show(&v, dir.format())
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
                complete,
                dir,
            } => {
                let action = if complete {
                    Action::DecommissionComplete
                } else {
                    Action::Decommission
                };
                act(&client, action, fleet, id, reason, dir).await
            }
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
                crate::output::show(&v, dir.format())
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
                crate::output::show(&v, dir.format())
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
    /// Decommission (if not yet) and finish without the wipe receipt.
    DecommissionComplete,
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
        Action::Decommission | Action::DecommissionComplete => "decommission",
    };
    let path = crate::client::path(&["v1", "fleets", &fleet, "devices", &id, verb]);
    let body = match action {
        Action::DecommissionComplete => json!({ "reason": reason, "complete": true }),
        _ => json!({ "reason": reason }),
    };
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
                Action::DecommissionComplete => serde_json::to_value(DeviceInfo::from(
                    f.onboarding
                        .complete_decommission(&who, &id, &reason)
                        .await?,
                )),
            };
            shown.map_err(|e| fleetkey_server::Error::Internal(e.to_string()))
        },
    )
    .await?;
    crate::output::show(&v, dir.format())
}

/// The columns of `devices list`.
const DEVICE_COLUMNS: &[(&str, &str)] = &[
    ("id", "ID"),
    ("hardware_id", "HARDWARE ID"),
    ("state", "STATE"),
    ("profile", "PROFILE"),
    ("model", "MODEL"),
    ("connected", "CONNECTED"),
    ("last_seen", "LAST SEEN"),
];

/// `devices list`: a page of a fleet's devices, or every page.
async fn list(
    client: &Option<Client>,
    fleet: String,
    page: &PageArgs,
    filter: DeviceFilter,
    dir: DataDir,
) -> CliResult<()> {
    let local = match client {
        Some(_) => None,
        None => Some(super::fleets::local(&dir).await?),
    };
    let (fleet, filter, local) = (&fleet, &filter, &local);
    let listing = Listing {
        field: "devices",
        columns: DEVICE_COLUMNS,
        noun: "devices",
    };
    listing
        .print(page, dir.format(), |after, limit| async move {
            match (client, local) {
                (Some(c), _) => {
                    let path = crate::client::with_query(
                        &crate::client::path(&["v1", "fleets", fleet, "devices"]),
                        &[
                            ("after", Some(after).filter(|a| !a.is_empty())),
                            ("limit", Some(limit.to_string())),
                            ("state", filter.state.map(|s| s.as_str().to_owned())),
                            ("profile", filter.profile.clone()),
                            ("seen_before", filter.seen_before.map(|t| t.to_string())),
                            ("seen_after", filter.seen_after.map(|t| t.to_string())),
                        ],
                    );
                    c.call(Method::GET, &path, None).await
                }
                (None, Some((f, _lock))) => {
                    let list = f
                        .registry
                        .devices(fleet, filter, &after, limit)
                        .await
                        .map_err(service_error)?;
                    let next_after = fleetkey_server::api::next_after(&list, limit, |d| &d.id);
                    let devices: Vec<DeviceInfo> = list.into_iter().map(DeviceInfo::from).collect();
                    Ok(json!({ "devices": devices, "next_after": next_after }))
                }
                (None, None) => Err(CliError::usage("no server and no data directory")),
            }
        })
        .await
}

/// `devices suspend|resume`: the life-cycle move through the state route.
async fn set_state(
    client: &Option<Client>,
    fleet: String,
    id: String,
    to: DeviceState,
    dir: DataDir,
) -> CliResult<()> {
    let path = crate::client::path(&["v1", "fleets", &fleet, "devices", &id, "state"]);
    let body = json!({ "state": to.as_str() });
    let v = remote_or_local(
        client,
        &dir,
        Method::POST,
        &path,
        Some(body),
        |f| async move {
            in_fleet(&f, &fleet, &id).await?;
            f.onboarding
                .transition(&actor(), &id, to)
                .await
                .map(DeviceInfo::from)
        },
    )
    .await?;
    crate::output::show(&v, dir.format())
}

/// The store's name of a state chosen on the command line.
fn state_of(s: StateArg) -> DeviceState {
    match s {
        StateArg::Manufactured => DeviceState::Manufactured,
        StateArg::Onboarded => DeviceState::Onboarded,
        StateArg::Active => DeviceState::Active,
        StateArg::Rotating => DeviceState::Rotating,
        StateArg::Suspended => DeviceState::Suspended,
        StateArg::Decommissioning => DeviceState::Decommissioning,
        StateArg::Decommissioned => DeviceState::Decommissioned,
    }
}

/// The API's name of a device profile.
pub(crate) fn profile_name(p: DeviceProfile) -> &'static str {
    match p {
        DeviceProfile::Full => "full",
        DeviceProfile::Constrained => "constrained",
        DeviceProfile::ConstrainedStatic => "constrained_static",
    }
}

/// A time on the command line: RFC 3339 (`2026-12-01T00:00:00Z`), or a
/// duration meaning that long before now (`24h`); Unix seconds.
fn time_arg(s: &str) -> CliResult<i64> {
    if let Ok(t) = humantime::parse_rfc3339_weak(s) {
        let secs = t
            .duration_since(std::time::UNIX_EPOCH)
            .map_err(|_| CliError::usage(format!("{s:?} is before 1970")))?
            .as_secs();
        return i64::try_from(secs).map_err(|_| CliError::usage(format!("{s:?} is too far away")));
    }
    let ago = parse_duration(s).map_err(|e| {
        e.hint("a time like 2026-12-01T00:00:00Z, or a duration ago like 24h or 30m")
    })?;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
        .unwrap_or(0);
    Ok(now.saturating_sub(ago))
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
    if dir.is_json() {
        return crate::output::show(&v, dir.format());
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
    let format = match &cmd {
        ConfigCommand::Get { dir, .. }
        | ConfigCommand::Set { dir, .. }
        | ConfigCommand::Reset { dir, .. }
        | ConfigCommand::Migrate { dir, .. } => dir.format(),
    };
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
    crate::output::show(&v, format)
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
