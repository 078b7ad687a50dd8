//! `fleetkey fleets …`, `fleetkey factory …`, `fleetkey devices …`: on the server
//! (FLEETKEY_ADDR/FLEETKEY_TOKEN) or on a local data directory.

use crate::cli::{DataDir, DevicesCommand, FactoryCommand, FleetsCommand};
use crate::client::Client;
use crate::error::{CliError, CliResult};
use crate::files::progress;
use crate::local::{actor, lock, parse_duration, runtime, service_error};
use base64::{Engine as _, engine::general_purpose::STANDARD as B64};
use fleetkey_crypto::credential::DeviceKeys;
use fleetkey_server::fleet::{FactoryRequest, FleetService};
use reqwest::Method;
use serde_json::{Value, json};
use std::sync::Arc;

/// The fleet service on a local data directory, with its lock.
async fn local(
    dir: &DataDir,
) -> CliResult<(Arc<FleetService>, fleetkey_server::data_lock::DataDirLock)> {
    let l = lock(&dir.data_dir)?;
    let (store, custody) = crate::local::open_parts(&dir.data_dir).await?;
    let clock = Arc::new(fleetkey_server::clock::SystemClock::default());
    Ok((FleetService::new(store, custody, clock), l))
}

fn print(v: &Value) -> CliResult<()> {
    println!(
        "{}",
        serde_json::to_string_pretty(v).map_err(|e| CliError::refused(e.to_string()))?
    );
    Ok(())
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
                let v: Value = match &client {
                    Some(c) => {
                        c.call(
                            Method::POST,
                            "/v1/fleets",
                            Some(json!({ "name": name, "credential_ttl_secs": ttl })),
                        )
                        .await?
                    }
                    None => {
                        let (f, _l) = local(&dir).await?;
                        serde_json::to_value(
                            f.create_fleet(&actor(), &name, ttl)
                                .await
                                .map_err(service_error)?,
                        )
                        .map_err(|e| CliError::refused(e.to_string()))?
                    }
                };
                print(&v)
            }
            FleetsCommand::Show { name, dir } => {
                let v: Value = match &client {
                    Some(c) => {
                        c.call(Method::GET, &format!("/v1/fleets/{name}"), None)
                            .await?
                    }
                    None => {
                        let (f, _l) = local(&dir).await?;
                        serde_json::to_value(f.fleet(&name).await.map_err(service_error)?)
                            .map_err(|e| CliError::refused(e.to_string()))?
                    }
                };
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
    let FactoryCommand::Provision {
        fleet,
        count,
        model,
        batch,
        station,
        dir,
    } = cmd;
    let batch = match batch {
        Some(b) => b,
        None => {
            let r: [u8; 3] =
                fleetkey_crypto::rand::array().map_err(|e| CliError::refused(e.to_string()))?;
            format!(
                "sim-{}",
                r.iter().map(|b| format!("{b:02x}")).collect::<String>()
            )
        }
    };
    runtime()?.block_on(async move {
        let client = Client::from_env()?.map(Arc::new);
        let local = match client {
            Some(_) => None,
            None => Some(local(&dir).await?),
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
                    format!("sim:{}", r.iter().map(|b| format!("{b:02x}")).collect::<String>())
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
                            let body = json!({
                                "fleet": req.fleet, "hardware_id": req.hardware_id, "model": req.model,
                                "batch": req.batch, "station": req.station, "test_results": req.test_results,
                                "keys": { "x25519": B64.encode(req.keys.x25519), "ed25519": B64.encode(req.keys.ed25519) },
                            });
                            c.call::<Value>(Method::POST, "/v1/factory/devices", Some(body)).await.map(|_| ())
                        });
                    }
                    (None, Some((f, _))) => {
                        let f = f.clone();
                        let who = actor();
                        inflight.spawn(async move { f.provision(&who, req).await.map(|_| ()).map_err(service_error) });
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

pub fn devices(cmd: DevicesCommand) -> CliResult<()> {
    runtime()?.block_on(async move {
        let client = Client::from_env()?;
        match cmd {
            DevicesCommand::List { fleet, limit, dir } => {
                let v: Value = match &client {
                    Some(c) => c.call(Method::GET, &format!("/v1/fleets/{fleet}/devices?limit={limit}"), None).await?,
                    None => {
                        let (f, _l) = local(&dir).await?;
                        let list = f.devices(&fleet, "", limit.clamp(1, 1000)).await.map_err(service_error)?;
                        json!({ "devices": list.iter().map(|d| json!({
                            "id": d.id, "fleet": d.fleet, "hardware_id": d.hardware_id, "state": d.state,
                            "model": d.model, "created_at": d.created_at })).collect::<Vec<_>>() })
                    }
                };
                if dir.json {
                    return print(&v);
                }
                println!("{:<22} {:<24} {:<14} MODEL", "ID", "HARDWARE ID", "STATE");
                for d in v["devices"].as_array().cloned().unwrap_or_default() {
                    println!(
                        "{:<22} {:<24} {:<14} {}",
                        d["id"].as_str().unwrap_or(""),
                        d["hardware_id"].as_str().unwrap_or(""),
                        d["state"].as_str().unwrap_or(""),
                        d["model"].as_str().unwrap_or("")
                    );
                }
                Ok(())
            }
            DevicesCommand::Show { fleet, id, dir } => {
                let v: Value = match &client {
                    Some(c) => c.call(Method::GET, &format!("/v1/fleets/{fleet}/devices/{id}"), None).await?,
                    None => {
                        let (f, _l) = local(&dir).await?;
                        let d = f.device(&id).await.map_err(service_error)?;
                        if d.fleet != fleet {
                            return Err(CliError::usage(format!("device {id:?} not found in fleet {fleet:?}")));
                        }
                        json!({ "id": d.id, "fleet": d.fleet, "hardware_id": d.hardware_id, "state": d.state,
                                "model": d.model, "created_at": d.created_at,
                                "birth_credential": B64.encode(&d.birth_credential) })
                    }
                };
                print(&v)
            }
        }
    })
}
