//! `fleetkey factory …`: a simulated production line that provisions devices on
//! the server (FLEETKEY_ADDR/FLEETKEY_TOKEN) or on a local data directory, and
//! the factory reset of a device.

use super::fleets::{local, remote_or_local};
use crate::cli::Format;
use crate::cli::{DataDir, DeviceProfile, FactoryCommand};
use crate::client::Client;
use crate::error::{CliError, CliResult};
use crate::files::count_progress;
use crate::local::{actor, runtime, service_error};
use base64::{Engine as _, engine::general_purpose::STANDARD as B64};
use fleetkey_crypto::credential::DeviceKeys;
use fleetkey_crypto::hpke::XWingRecipient as Recipient;
use fleetkey_server::api::DeviceInfo;
use fleetkey_server::fleet::constrained::{Profile, seal_factory_secret};
use fleetkey_server::fleet::{FactoryRequest, FleetService};
use reqwest::Method;
use serde_json::{Value, json};
use std::sync::Arc;

/// Registrations kept in flight at once.
const IN_FLIGHT: usize = 64;

pub fn factory(cmd: FactoryCommand) -> CliResult<()> {
    match cmd {
        FactoryCommand::Provision {
            fleet,
            count,
            profile,
            model,
            batch,
            station,
            dir,
        } => {
            let batch = match batch {
                Some(b) => b,
                None => format!("sim-{}", hex::encode(random::<3>()?)),
            };
            let line = Line {
                fleet,
                model,
                batch,
                station,
                profile: match profile {
                    DeviceProfile::Full => None,
                    DeviceProfile::Constrained => Some(Profile::Constrained),
                    DeviceProfile::ConstrainedStatic => Some(Profile::ConstrainedStatic),
                },
            };
            runtime()?.block_on(provision(line, count, dir))
        }
        FactoryCommand::Reset {
            fleet,
            id,
            reason,
            dir,
        } => runtime()?.block_on(async move {
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
                    f.commands
                        .factory_reset(&actor(), &id, &reason)
                        .await
                        .map(DeviceInfo::from)
                },
            )
            .await?;
            crate::output::show(&v, dir.format())
        }),
    }
}

/// What every device of one run shares.
struct Line {
    fleet: String,
    model: String,
    batch: String,
    station: String,
    /// `None`: full-profile devices.
    profile: Option<Profile>,
}

/// Where registrations go.
enum Jig {
    Remote(Arc<Client>),
    Local(Arc<FleetService>),
}

impl Jig {
    /// The service's factory recipient (constrained devices' secrets are sealed to it).
    async fn recipient(&self) -> CliResult<Recipient> {
        let text = match self {
            Jig::Remote(c) => c
                .call::<Value>(Method::GET, "/v1/factory/recipient", None)
                .await?["recipient"]
                .as_str()
                .unwrap_or_default()
                .to_owned(),
            Jig::Local(f) => f
                .onboarding
                .factory_recipient()
                .await
                .map_err(service_error)?,
        };
        fleetkey_crypto::keyfile::parse_recipient(&text)
            .map_err(|e| CliError::refused(format!("factory recipient: {e}")))
    }

    /// Registers one device (a future to run beside others).
    fn register(
        &self,
        req: FactoryRequest,
        profile: Option<Profile>,
        sealed: Option<Vec<u8>>,
    ) -> impl Future<Output = CliResult<DeviceInfo>> + Send + 'static {
        let jig = match self {
            Jig::Remote(c) => Jig::Remote(c.clone()),
            Jig::Local(f) => Jig::Local(f.clone()),
        };
        async move {
            match jig {
                Jig::Remote(c) => {
                    let mut body = json!({
                        "fleet": req.fleet, "hardware_id": req.hardware_id, "model": req.model,
                        "batch": req.batch, "station": req.station, "test_results": req.test_results,
                        "keys": { "x25519": B64.encode(req.keys.x25519), "ed25519": B64.encode(req.keys.ed25519) },
                    });
                    if let (Some(p), Some(s)) = (profile, &sealed) {
                        body["profile"] = json!(p.as_str());
                        body["sealed_secret"] = json!(B64.encode(s));
                    }
                    c.call::<DeviceInfo>(Method::POST, "/v1/factory/devices", Some(body))
                        .await
                }
                Jig::Local(f) => {
                    let who = actor();
                    match (profile, sealed) {
                        (Some(p), Some(s)) => {
                            f.onboarding.provision_constrained(&who, req, p, &s).await
                        }
                        _ => f.registry.provision(&who, req).await,
                    }
                    .map(|p| DeviceInfo::from(p.device))
                    .map_err(service_error)
                }
            }
        }
    }
}

/// Provisions `count` simulated devices, up to [`IN_FLIGHT`] at a time.
async fn provision(line: Line, count: u64, dir: DataDir) -> CliResult<()> {
    let (jig, _lock) = match Client::from_env()? {
        Some(c) => (Jig::Remote(Arc::new(c)), None),
        None => {
            let (f, l) = local(&dir).await?;
            (Jig::Local(f), Some(l))
        }
    };
    let recipient = match line.profile {
        None => None,
        Some(_) => Some(jig.recipient().await?),
    };
    let bar = count_progress(count, "provisioning", "devices");
    let format = dir.format();
    // Each new device as it is registered: a row, or a JSON line.
    let columns = ["ID", "HARDWARE ID", "PROFILE", "STATE"];
    let widths = [24, 24, 18, 12];
    if format == Format::Table {
        bar.suspend(|| super::listing::print_row(&columns.map(str::to_owned), &widths));
    }
    let start = std::time::Instant::now();
    let (mut done, mut next) = (0u64, 0u64);
    let mut inflight = tokio::task::JoinSet::new();
    while done < count {
        while next < count && inflight.len() < IN_FLIGHT {
            let (req, sealed) = simulated_device(&line, recipient.as_ref())?;
            inflight.spawn(jig.register(req, line.profile, sealed));
            next += 1;
        }
        match inflight.join_next().await {
            Some(Ok(Ok(d))) => {
                done += 1;
                bar.suspend(|| match format {
                    Format::Json => crate::output::json_line(&json!({
                        "id": d.id, "hardware_id": d.hardware_id, "fleet": d.fleet,
                        "profile": d.profile, "state": d.state,
                    })),
                    Format::Table => {
                        let state = d.state.as_str().to_owned();
                        super::listing::print_row(
                            &[d.id, d.hardware_id, d.profile, state],
                            &widths,
                        );
                        Ok(())
                    }
                })?;
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
        "fleetkey: provisioned {done} devices in fleet {} (batch {}) in {secs:.2} s ({:.0}/s)",
        line.fleet,
        line.batch,
        done as f64 / secs.max(1e-9)
    );
    Ok(())
}

fn random<const N: usize>() -> CliResult<[u8; N]> {
    fleetkey_crypto::rand::array().map_err(|e| CliError::refused(e.to_string()))
}

/// One simulated device as the jig sees it: its registration, and (constrained
/// profiles) its factory secret sealed to the service. The secret's plaintext is
/// dropped (zeroized) here, as a real jig writes it only to the device.
fn simulated_device(
    line: &Line,
    recipient: Option<&Recipient>,
) -> CliResult<(FactoryRequest, Option<Vec<u8>>)> {
    let hw = format!("sim:{}", hex::encode(random::<8>()?));
    let sealed = match recipient {
        Some(r) => {
            let secret = zeroize::Zeroizing::new(random::<32>()?);
            Some(seal_factory_secret(r, &secret, &hw).map_err(service_error)?)
        }
        None => None,
    };
    let req = FactoryRequest {
        fleet: line.fleet.clone(),
        hardware_id: hw,
        model: line.model.clone(),
        batch: line.batch.clone(),
        station: line.station.clone(),
        keys: simulated_keys()?,
        test_results: json!({ "simulated": true }),
    };
    Ok((req, sealed))
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
