//! `fleetkey fleets …` and `fleetkey factory …`: on the server
//! (FLEETKEY_ADDR/FLEETKEY_TOKEN) or on a local data directory.

use crate::cli::{DataDir, FactoryCommand, FleetsCommand, SchemaCommand};
use crate::client::Client;
use crate::error::{CliError, CliResult};
use crate::files::progress;
use crate::local::{actor, lock, parse_duration, runtime, service_error};
use base64::{Engine as _, engine::general_purpose::STANDARD as B64};
use fleetkey_crypto::credential::DeviceKeys;
use fleetkey_server::api::DeviceInfo;
use fleetkey_server::fleet::constrained::{Profile, seal_factory_secret};
use fleetkey_server::fleet::{FactoryRequest, FleetService, config::MigrationOp};
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
                    |f| async move { f.create_fleet(&actor(), &name, ttl).await },
                )
                .await?;
                print(&v)
            }
            FleetsCommand::Show { name, dir } => {
                let path = crate::client::path(&["v1", "fleets", &name]);
                let v = remote_or_local(&client, &dir, Method::GET, &path, None, |f| async move {
                    f.fleet(&name).await
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
                    |f| async move { f.set_schema(&actor(), &fleet, schema, migration).await },
                )
                .await?;
                print(&v)
            }
            FleetsCommand::Schema(SchemaCommand::Show { fleet, dir }) => {
                let path = crate::client::path(&["v1", "fleets", &fleet, "schema"]);
                let v = remote_or_local(&client, &dir, Method::GET, &path, None, |f| async move {
                    f.schema(&fleet).await
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
                    |f| async move { f.set_rotation_policy(&actor(), &name, period).await },
                )
                .await?;
                print(&v)
            }
        }
    })
}

fn simulated_keys() -> CliResult<DeviceKeys> {
    let e = |e: fleetkey_crypto::Error| CliError::refused(e.to_string());
    Ok(DeviceKeys {
        x25519: fleetkey_crypto::x25519::X25519Secret::generate()
            .map_err(e)?
            .public_key()
            .map_err(e)?,
        ed25519: fleetkey_crypto::ed25519::Ed25519Signer::generate()
            .map_err(e)?
            .public_key(),
        ml_kem_768: None,
        ml_dsa_65: None,
    })
}

pub fn factory(cmd: FactoryCommand) -> CliResult<()> {
    let (fleet, count, profile, model, batch, station, dir) = match cmd {
        FactoryCommand::Provision {
            fleet,
            count,
            profile,
            model,
            batch,
            station,
            dir,
        } => (fleet, count, profile, model, batch, station, dir),
        FactoryCommand::Reset {
            fleet,
            id,
            reason,
            dir,
        } => {
            return runtime()?.block_on(async move {
                let client = Client::from_env()?;
                let body = json!({ "fleet": fleet, "device_id": id, "reason": reason });
                let v = remote_or_local(
                    &client,
                    &dir,
                    Method::POST,
                    "/v1/factory/reset",
                    Some(body),
                    |f| async move {
                        crate::commands::devices::in_fleet(&f, &fleet, &id).await?;
                        f.factory_reset(&actor(), &id, &reason)
                            .await
                            .map(DeviceInfo::from)
                    },
                )
                .await?;
                print(&v)
            });
        }
    };
    let batch = match batch {
        Some(b) => b,
        None => {
            let r: [u8; 3] =
                fleetkey_crypto::rand::array().map_err(|e| CliError::refused(e.to_string()))?;
            format!("sim-{}", hex::encode(r))
        }
    };
    runtime()?.block_on(async move {
        let client = Client::from_env()?.map(Arc::new);
        let local = match client {
            Some(_) => None,
            None => Some(local(&dir).await?),
        };
        let profile = match profile {
            crate::cli::DeviceProfile::Full => None,
            crate::cli::DeviceProfile::Constrained => Some(Profile::Constrained),
            crate::cli::DeviceProfile::ConstrainedStatic => Some(Profile::ConstrainedStatic),
        };
        // Constrained devices' secrets are sealed to the service's factory recipient.
        let recipient = match profile {
            None => None,
            Some(_) => {
                let text = match (&client, &local) {
                    (Some(c), _) => c
                        .call::<Value>(Method::GET, "/v1/factory/recipient", None)
                        .await?["recipient"]
                        .as_str()
                        .unwrap_or_default()
                        .to_owned(),
                    (None, Some((f, _))) => f.factory_recipient().await.map_err(service_error)?,
                    (None, None) => unreachable!("one of client or local is set"),
                };
                Some(Arc::new(
                    fleetkey_crypto::keyfile::parse_recipient(&text)
                        .map_err(|e| CliError::refused(format!("factory recipient: {e}")))?,
                ))
            }
        };
        let bar = progress(Some(count), "provisioning");
        let start = std::time::Instant::now();
        let mut done = 0u64;
        let mut next = 0u64;
        // Keep up to 64 registrations in flight.
        let mut inflight = tokio::task::JoinSet::new();
        while done < count {
            while next < count && inflight.len() < 64 {
                let keys = simulated_keys()?;
                let hw = {
                    let r: [u8; 8] = fleetkey_crypto::rand::array().map_err(|e| CliError::refused(e.to_string()))?;
                    format!("sim:{}", hex::encode(r))
                };
                // The device's factory secret, sealed on the jig; the plaintext
                // is dropped (zeroized) here, as a real jig writes it only to the device.
                let sealed = match &recipient {
                    Some(r) => {
                        let secret = zeroize::Zeroizing::new(
                            fleetkey_crypto::rand::array::<32>().map_err(|e| CliError::refused(e.to_string()))?,
                        );
                        Some(seal_factory_secret(r, &secret, &hw).map_err(service_error)?)
                    }
                    None => None,
                };
                let req = FactoryRequest {
                    fleet: fleet.clone(),
                    hardware_id: hw,
                    model: model.clone(),
                    batch: batch.clone(),
                    station: station.clone(),
                    keys,
                    test_results: json!({ "simulated": true }),
                };
                match (&client, &local) {
                    (Some(c), _) => {
                        let c = c.clone();
                        inflight.spawn(async move {
                            let mut body = json!({
                                "fleet": req.fleet, "hardware_id": req.hardware_id, "model": req.model,
                                "batch": req.batch, "station": req.station, "test_results": req.test_results,
                                "keys": { "x25519": B64.encode(req.keys.x25519), "ed25519": B64.encode(req.keys.ed25519) },
                            });
                            if let (Some(p), Some(s)) = (profile, &sealed) {
                                body["profile"] = json!(p.as_str());
                                body["sealed_secret"] = json!(B64.encode(s));
                            }
                            c.call::<Value>(Method::POST, "/v1/factory/devices", Some(body)).await.map(|_| ())
                        });
                    }
                    (None, Some((f, _))) => {
                        let f = f.clone();
                        let who = actor();
                        inflight.spawn(async move {
                            match (profile, sealed) {
                                (Some(p), Some(s)) => f.provision_constrained(&who, req, p, &s).await.map(|_| ()),
                                _ => f.provision(&who, req).await.map(|_| ()),
                            }
                            .map_err(service_error)
                        });
                    }
                    (None, None) => unreachable!("one of client or local is set"),
                }
                next += 1;
            }
            match inflight.join_next().await {
                Some(Ok(Ok(()))) => {
                    done += 1;
                    bar.set_position(done);
                }
                Some(Ok(Err(e))) => return Err(e),
                Some(Err(e)) => return Err(CliError::refused(format!("task failed: {e}"))),
                None => break,
            }
        }
        bar.finish_and_clear();
        let secs = start.elapsed().as_secs_f64();
        eprintln!(
            "fleetkey: provisioned {done} devices in fleet {fleet} (batch {batch}) in {secs:.2} s ({:.0}/s)",
            done as f64 / secs.max(1e-9)
        );
        Ok(())
    })
}
