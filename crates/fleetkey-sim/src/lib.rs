//! # fleetkey-sim: a fleet of simulated devices against a running server
//!
//! [`Sim`] talks to `fleetkey serve` the way a factory jig and real devices do:
//! over the HTTP API (factory provisioning with a `factory:<fleet>` token, zero-touch
//! onboarding), the device listener (Noise sessions through [`fleetkey_client`])
//! and the UDP frame port (constrained devices through [`fleetkey_device`]). Both
//! profiles keep their private keys in the simulated device; the server only ever
//! sees public keys and, for constrained devices, the PSK sealed to its factory
//! recipient.

mod api;
mod downlink;
pub use downlink::Heard;

pub use api::{Api, count, metric, samples};

use anyhow::{Context, Result, bail};
use base64::{Engine as _, engine::general_purpose::STANDARD as B64};
use fleetkey_client::proto::ServerMsg;
use fleetkey_client::{ClientConfig, DeviceClient, RecordCache};
use fleetkey_crypto::credential::DeviceKeys;
use fleetkey_crypto::ed25519::Ed25519Signer;
use fleetkey_crypto::hpke::XWingRecipient;
use fleetkey_crypto::secret::SecretBytes;
use fleetkey_crypto::x25519::X25519Secret;
use fleetkey_device::{Device, Rng, Session, Storage};
use fleetkey_server::api as dto;
use fleetkey_server::fleet::FleetInfo;
use fleetkey_server::fleet::constrained::Profile;
use fleetkey_session::Keypair;
use serde_json::{Value, json};
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// Where the server listens.
#[derive(Debug, Clone)]
pub struct Endpoints {
    /// HTTP API, `http://host:port`.
    pub http: String,
    /// Device listener (Noise over TCP), `host:port`.
    pub sessions: String,
    /// Constrained devices' UDP port, `host:port`.
    pub frames: String,
}

/// A simulator bound to one fleet.
pub struct Sim {
    api: Api,
    endpoints: Endpoints,
    fleet: String,
    server_record: fleetkey_crypto::record::KeyRecord,
    recipient: XWingRecipient,
    fleet_key: [u8; 32],
    state_dir: PathBuf,
    /// Full devices made so far (each gets its own loopback source address).
    made: std::sync::atomic::AtomicU32,
    udp: tokio::net::UdpSocket,
}

impl std::fmt::Debug for Sim {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sim")
            .field("fleet", &self.fleet)
            .field("endpoints", &self.endpoints)
            .finish_non_exhaustive()
    }
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

/// The OS RNG as the device's hardware RNG.
struct OsRng;
impl Rng for OsRng {
    fn fill(&mut self, buf: &mut [u8]) -> Result<(), fleetkey_device::Error> {
        fleetkey_crypto::rand::fill(buf).map_err(|_| fleetkey_device::Error::Rng)
    }
}

/// A simulated device's boot-counter storage (in memory: the counter lives in
/// [`Device`], which the simulator keeps).
struct Ram;
impl Storage for Ram {
    fn store_boot_counter(&mut self, _: u32) -> Result<(), fleetkey_device::Error> {
        Ok(())
    }
}

/// A full-profile simulated device.
pub struct FullDevice {
    /// Device id.
    pub id: String,
    /// Its client (keys, persisted state).
    pub client: DeviceClient,
    /// Until onboarding: the birth credential and the signing key that answers the
    /// challenge.
    birth: Option<(String, Ed25519Signer)>,
}

/// A constrained simulated device.
pub struct ConstrainedDevice {
    /// Device id.
    pub id: String,
    device: Device,
    session: Option<Session>,
    last_frame: Vec<u8>,
    /// Commands carried out (a repeat is acknowledged again, not redone).
    done: Vec<[u8; fleetkey_device::control::COMMAND_ID_LEN]>,
}

/// What a session did.
#[derive(Debug, Clone, Default)]
pub struct SessionStats {
    /// Session establishment times (handshake, hello, welcome).
    pub connect_latencies: Vec<Duration>,
    /// Telemetry messages acknowledged.
    pub telemetry_acked: u64,
    /// Signed config receipts acknowledged.
    pub receipts: u64,
    /// Credential rotations completed (the device now uses its new keys).
    pub rotations: u64,
    /// The device received its wipe command, wiped and had its receipt accepted.
    pub wiped: bool,
    /// Errors the server answered messages with (the session went on).
    pub errors: Vec<String>,
}

impl Sim {
    /// Connects to the server: verifies its key record against the directory key
    /// and fetches the factory recipient. `state_dir` keeps the devices' state files.
    pub async fn connect(
        endpoints: Endpoints,
        token: &str,
        fleet: &str,
        state_dir: PathBuf,
    ) -> Result<Self> {
        let api = Api::new(&endpoints.http, token)?;
        let base = api.base().to_owned();
        let http = api.client();
        let dir: dto::DirectoryKey = http
            .call(reqwest::Method::GET, "/v1/directory", None::<&()>, false)
            .await?;
        let key = B64
            .decode(&dir.public_key)
            .context("directory key base64")?;
        let mut cache = RecordCache::new(key);
        let server_record = cache
            .get_or_fetch(api.http(), &base, "fleetkey-server", now())
            .await?
            .clone();
        let r: dto::FactoryRecipient = http.get("/v1/factory/recipient").await?;
        let recipient = fleetkey_crypto::keyfile::parse_recipient(&r.recipient)
            .map_err(|e| anyhow::anyhow!("factory recipient: {e}"))?;
        let f: FleetInfo = http
            .get(&fleetkey_http::path(&["v1", "fleets", fleet]))
            .await?;
        let fleet_key = hex32(&f.issuer_public_key).context("fleet issuer key hex")?;
        std::fs::create_dir_all(&state_dir)?;
        Ok(Self {
            api,
            endpoints,
            fleet: fleet.to_owned(),
            server_record,
            recipient,
            fleet_key,
            state_dir,
            // A random start: simulators run one after another against one server
            // (each device's address has its own per-minute connection budget).
            made: std::sync::atomic::AtomicU32::new(u32::from(u16::from_be_bytes(
                fleetkey_crypto::rand::array()?,
            ))),
            udp: tokio::net::UdpSocket::bind("127.0.0.1:0").await?,
        })
    }

    /// The HTTP API with the simulator's operator token.
    pub fn api(&self) -> &Api {
        &self.api
    }

    /// The fleet.
    pub fn fleet(&self) -> &str {
        &self.fleet
    }

    /// Registers a device at the factory, as a jig does.
    async fn register(
        &self,
        hw: &str,
        x25519: [u8; 32],
        ed25519: [u8; 32],
        constrained: Option<Vec<u8>>,
    ) -> Result<dto::DeviceInfo> {
        let body = dto::FactoryDeviceRequest {
            fleet: self.fleet.clone(),
            hardware_id: hw.to_owned(),
            model: "sim".into(),
            batch: "sim".into(),
            station: "sim-jig".into(),
            keys: dto::DeviceKeysRequest {
                x25519: B64.encode(x25519),
                ed25519: B64.encode(ed25519),
                ml_kem_768: None,
                ml_dsa_65: None,
            },
            test_results: Value::Null,
            profile: constrained.is_some().then_some(Profile::Constrained),
            sealed_secret: constrained.map(|s| B64.encode(s)),
        };
        Ok(self.api.client().post("/v1/factory/devices", &body).await?)
    }

    /// Provisions a full-profile device at the factory and onboards it (signed
    /// challenge), ready for sessions.
    pub async fn provision_full(&self, hardware_id: &str) -> Result<FullDevice> {
        let mut d = self.manufacture_full(hardware_id).await?;
        self.onboard(&mut d).await?;
        Ok(d)
    }

    /// The factory step alone: keys made on the device, registered by the jig.
    pub async fn manufacture_full(&self, hardware_id: &str) -> Result<FullDevice> {
        let x = X25519Secret::generate()?;
        let noise = Keypair::from_private(*x.expose_secret())?;
        let sign = Ed25519Signer::generate()?;
        let d = self
            .register(hardware_id, *noise.public(), sign.public_key(), None)
            .await?;
        let (id, birth) = (d.id, d.birth_credential);
        let onboarding_key = copy_signer(&sign)?;
        let mut config = ClientConfig::new(self.endpoints.sessions.clone());
        config.fleet_key = Some(self.fleet_key);
        config.bind = self.source_address();
        let mut client = DeviceClient::new(
            config,
            &id,
            noise,
            sign,
            self.state_dir.join(format!("{id}.json")),
        )?;
        client.trust_record(&self.server_record)?;
        Ok(FullDevice {
            id,
            client,
            birth: Some((birth, onboarding_key)),
        })
    }

    /// Against a loopback server, each simulated device connects from its own
    /// address in 127.1.0.0/16, as devices of a real fleet do from theirs (so the
    /// server's per-source connection limit applies per device, not to the whole
    /// simulated fleet). Elsewhere the system picks.
    fn source_address(&self) -> Option<std::net::IpAddr> {
        let loopback = self
            .endpoints
            .sessions
            .parse::<std::net::SocketAddr>()
            .is_ok_and(|a| a.ip().is_loopback() && a.is_ipv4());
        if !loopback {
            return None;
        }
        let n = self.made.fetch_add(1, std::sync::atomic::Ordering::Relaxed) % 65_000;
        let [_, _, hi, lo] = (n + 1).to_be_bytes();
        Some(std::net::IpAddr::V4(std::net::Ipv4Addr::new(
            127, 1, hi, lo,
        )))
    }

    /// Zero-touch onboarding: the device signs the server's challenge with the key
    /// its birth credential names.
    pub async fn onboard(&self, d: &mut FullDevice) -> Result<()> {
        let (birth, sign) = d.birth.take().context("already onboarded")?;
        let http = self.api.client();
        let post = reqwest::Method::POST;
        let request = dto::ChallengeRequest {
            device_id: d.id.clone(),
        };
        let c: dto::ChallengeResponse = http
            .call(
                post.clone(),
                "/v1/onboarding/challenge",
                Some(&request),
                false,
            )
            .await?;
        let nonce: [u8; 32] = B64
            .decode(&c.nonce)?
            .try_into()
            .map_err(|_| anyhow::anyhow!("nonce length"))?;
        let sig = sign.sign(&fleetkey_client::messages::onboarding_message(
            &d.id,
            &nonce,
            c.issued_at,
        ));
        let proof = dto::OnboardRequest {
            birth_credential: birth,
            nonce: B64.encode(nonce),
            signature: B64.encode(sig),
        };
        let _: dto::OnboardResponse = http
            .call(post, "/v1/onboarding/complete", Some(&proof), false)
            .await?;
        Ok(())
    }

    /// Provisions a constrained device: its PSK sealed to the factory recipient.
    pub async fn provision_constrained(&self, hardware_id: &str) -> Result<ConstrainedDevice> {
        let scalar: [u8; 32] = fleetkey_crypto::rand::array()?;
        let psk: [u8; 32] = fleetkey_crypto::rand::array()?;
        self.provision_constrained_with(hardware_id, scalar, psk)
            .await
    }

    /// [`Sim::provision_constrained`] with given keys (for a device implemented
    /// elsewhere, such as the independent one in `tests/python/device_frames.py`).
    pub async fn provision_constrained_with(
        &self,
        hardware_id: &str,
        scalar: [u8; 32],
        psk: [u8; 32],
    ) -> Result<ConstrainedDevice> {
        let sealed = seal(&self.recipient, &psk, hardware_id)?;
        let d = self
            .register(
                hardware_id,
                fleetkey_device::keys::public_key(&scalar),
                Ed25519Signer::generate()?.public_key(),
                Some(sealed),
            )
            .await?;
        let id = d.id;
        let raw: [u8; 8] =
            fleetkey_device::evt::decode_hex(id.strip_prefix("dev_").context("device id")?)
                .context("device id hex")?;
        Ok(ConstrainedDevice {
            id,
            device: Device::x25519(raw, scalar, self.server_record.keys.x25519, psk, 0),
            session: None,
            done: Vec::new(),
            last_frame: Vec::new(),
        })
    }

    /// One session of a full device: connect, send `telemetry` messages, carry out
    /// whatever signed commands the server delivers (config updates answered with
    /// signed receipts, credential rotations with new keys, the wipe), close.
    /// A refusal (for example `decommissioned`) is an error.
    pub async fn run_session(&self, d: &mut FullDevice, telemetry: u32) -> Result<SessionStats> {
        let mut stats = SessionStats::default();
        let started = Instant::now();
        let mut s = d.client.connect_with_retry().await?;
        stats.connect_latencies.push(started.elapsed());
        for i in 0..telemetry {
            s.send_telemetry(json!({"i": i, "temp_c": 20.0 + f64::from(i) / 10.0}))
                .await?;
        }
        let mut waiting = telemetry;
        // Commands delivered and not yet acknowledged, by id.
        let mut open: Vec<(String, String)> = Vec::new();
        let mut rotated: Option<(X25519Secret, Ed25519Signer)> = None;
        let mut new_keys: Option<(X25519Secret, Ed25519Signer)> = None;
        let mut wiping = false;
        while waiting > 0 || !open.is_empty() {
            match s.recv().await? {
                ServerMsg::TelemetryAck { .. } => {
                    waiting = waiting.saturating_sub(1);
                    stats.telemetry_acked += 1;
                }
                ServerMsg::Command(c) => {
                    match c.kind.as_str() {
                        "update_config" => s.receipt(&c, true).await?,
                        "rotate_credential" => {
                            let x = X25519Secret::generate()?;
                            let sign = Ed25519Signer::generate()?;
                            let keys = DeviceKeys {
                                x25519: x.public_key()?,
                                ed25519: sign.public_key(),
                                ml_kem_768: None,
                                ml_dsa_65: None,
                            };
                            s.propose_rotation(&c, &keys).await?;
                            new_keys = Some((x, sign));
                        }
                        "wipe" => {
                            // Telemetry sent before the wipe is answered with errors.
                            waiting = 0;
                            wiping = true;
                            s.wipe_receipt().await?;
                        }
                        other => bail!("unknown command kind {other}"),
                    }
                    open.push((c.id, c.kind));
                }
                ServerMsg::Credential {
                    command_id,
                    credential_id,
                    ..
                } => {
                    let cid: [u8; 16] = B64
                        .decode(credential_id)?
                        .try_into()
                        .map_err(|_| anyhow::anyhow!("credential id length"))?;
                    let (_, sign) = new_keys.as_ref().context("credential without a proposal")?;
                    s.confirm_rotation(&command_id, &cid, sign).await?;
                }
                ServerMsg::Ack { command_id } => {
                    // The wipe receipt names no command; its acknowledgement says "wipe".
                    let Some(i) = open.iter().position(|(id, kind)| {
                        *id == command_id || (command_id == "wipe" && kind == "wipe")
                    }) else {
                        bail!("ack for an unknown command {command_id}");
                    };
                    let (_, kind) = open.remove(i);
                    match kind.as_str() {
                        "update_config" => stats.receipts += 1,
                        "rotate_credential" => {
                            stats.rotations += 1;
                            rotated = new_keys.take();
                        }
                        _ => {
                            // The wipe: the server ends the session with a refusal.
                            stats.wiped = true;
                            match s.recv().await {
                                Err(fleetkey_client::Error::Refused(r))
                                    if r == "decommissioned" => {}
                                other => bail!("after the wipe receipt: {other:?}"),
                            }
                            return Ok(stats);
                        }
                    }
                }
                // Every message is answered once: an error in place of a
                // telemetry acknowledgement (a decommissioning device's telemetry)
                // is noted; one in place of a command's acknowledgement fails.
                ServerMsg::Error { message } if waiting > 0 || wiping || open.is_empty() => {
                    waiting = waiting.saturating_sub(1);
                    stats.errors.push(message);
                }
                ServerMsg::Error { message } => bail!("server: {message}"),
                _ => {}
            }
        }
        s.close().await?;
        if let Some((x, sign)) = rotated {
            d.client
                .set_keys(Keypair::from_private(*x.expose_secret())?, sign);
        }
        Ok(stats)
    }

    /// Boots a constrained device (new session keys) and sends its session start.
    pub async fn boot(&self, d: &mut ConstrainedDevice) -> Result<()> {
        let s = d
            .device
            .boot(&mut OsRng, &mut Ram)
            .map_err(|e| anyhow::anyhow!("boot: {e}"))?;
        let mut buf = [0u8; 128];
        let n = s
            .start_frame(b"", &mut buf)
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        self.udp.send_to(&buf[..n], &self.endpoints.frames).await?;
        d.session = Some(s);
        d.last_frame = buf[..n].to_vec();
        Ok(())
    }

    /// Sends one telemetry frame from a booted constrained device.
    pub async fn send_frame(&self, d: &mut ConstrainedDevice, data: &Value) -> Result<()> {
        let s = d.session.as_mut().context("boot the device first")?;
        let mut buf = [0u8; fleetkey_device::frame::MAX_FRAME];
        let payload = serde_json::to_vec(data)?;
        let n = s
            .data_frame(&payload, &mut buf)
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        self.udp.send_to(&buf[..n], &self.endpoints.frames).await?;
        d.last_frame = buf[..n].to_vec();
        Ok(())
    }

    /// Sends the device's last frame again (a replay the server must refuse).
    pub async fn replay_last(&self, d: &ConstrainedDevice) -> Result<()> {
        if d.last_frame.is_empty() {
            bail!("nothing sent yet");
        }
        self.udp
            .send_to(&d.last_frame, &self.endpoints.frames)
            .await?;
        Ok(())
    }

    /// Sends a fresh data frame with one bit of its tag flipped (a forgery the
    /// server must refuse).
    pub async fn send_forged(&self, d: &mut ConstrainedDevice, data: &Value) -> Result<()> {
        let s = d.session.as_mut().context("boot the device first")?;
        let mut buf = [0u8; fleetkey_device::frame::MAX_FRAME];
        let payload = serde_json::to_vec(data)?;
        let n = s
            .data_frame(&payload, &mut buf)
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        buf[n - 1] ^= 0x01;
        self.udp.send_to(&buf[..n], &self.endpoints.frames).await?;
        Ok(())
    }

    /// The service's X25519 public key (what a constrained device holds).
    pub fn server_x25519(&self) -> [u8; 32] {
        self.server_record.keys.x25519
    }

    /// The fleet's command-signing key (devices verify every command under it).
    pub fn fleet_key(&self) -> [u8; 32] {
        self.fleet_key
    }
}

fn copy_signer(s: &Ed25519Signer) -> Result<Ed25519Signer> {
    Ok(Ed25519Signer::from_seed(SecretBytes::new(
        *s.expose_seed(),
    ))?)
}

fn hex32(s: &str) -> Option<[u8; 32]> {
    fleetkey_device::evt::decode_hex(s)
}

/// The factory secret sealed as the server expects
/// (`docs/formats.md#factory-secrets-constrained-devices`).
fn seal(recipient: &XWingRecipient, secret: &[u8; 32], hardware_id: &str) -> Result<Vec<u8>> {
    Ok(fleetkey_crypto::envelope::recipient::seal_to_vec(
        recipient,
        secret,
        format!("fleetkey factory secret v1:{hardware_id}").as_bytes(),
    )?)
}
