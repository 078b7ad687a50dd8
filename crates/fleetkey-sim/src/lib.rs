//! # fleetkey-sim: a fleet of simulated devices against a running server
//!
//! [`Sim`] talks to `fleetkey serve` the way a factory jig and real devices do:
//! over the HTTP API (factory provisioning with a `factory:<fleet>` token, zero-touch
//! onboarding), the device listener (Noise sessions through [`fleetkey_client`])
//! and the UDP frame port (constrained devices through [`fleetkey_device`]). Both
//! profiles keep their private keys in the simulated device; the server only ever
//! sees public keys and, for constrained devices, the PSK sealed to its factory
//! recipient.

use anyhow::{Context, Result, bail};
use base64::{Engine as _, engine::general_purpose::STANDARD as B64};
use fleetkey_client::{ClientConfig, DeviceClient, RecordCache};
use fleetkey_crypto::ed25519::Ed25519Signer;
use fleetkey_crypto::hpke::XWingRecipient;
use fleetkey_crypto::x25519::X25519Secret;
use fleetkey_device::{Device, Rng, Session, Storage};
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
    http: reqwest::Client,
    endpoints: Endpoints,
    token: String,
    fleet: String,
    server_record: fleetkey_crypto::record::KeyRecord,
    recipient: XWingRecipient,
    state_dir: PathBuf,
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
        .map_or(0, |d| d.as_secs() as i64)
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
}

/// A constrained simulated device.
pub struct ConstrainedDevice {
    /// Device id.
    pub id: String,
    device: Device,
    session: Option<Session>,
}

/// What a run of sessions did.
#[derive(Debug, Clone, Default)]
pub struct SessionStats {
    /// Session establishment times (handshake, hello, welcome).
    pub connect_latencies: Vec<Duration>,
    /// Telemetry messages acknowledged.
    pub telemetry_acked: u64,
    /// Signed receipts acknowledged.
    pub receipts: u64,
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
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .build()?;
        let base = endpoints.http.trim_end_matches('/').to_owned();
        let dir: Value = http
            .get(format!("{base}/v1/directory"))
            .send()
            .await?
            .error_for_status()?
            .json()
            .await?;
        let key = B64
            .decode(dir["public_key"].as_str().context("directory key")?)
            .context("directory key base64")?;
        let mut cache = RecordCache::new(key);
        let server_record = cache
            .get_or_fetch(&http, &base, "fleetkey-server", now())
            .await?
            .clone();
        let r: Value = http
            .get(format!("{base}/v1/factory/recipient"))
            .bearer_auth(token)
            .send()
            .await?
            .error_for_status()?
            .json()
            .await?;
        let recipient = fleetkey_crypto::keyfile::parse_recipient(
            r["recipient"].as_str().context("factory recipient")?,
        )
        .map_err(|e| anyhow::anyhow!("factory recipient: {e}"))?;
        std::fs::create_dir_all(&state_dir)?;
        Ok(Self {
            http,
            endpoints,
            token: token.to_owned(),
            fleet: fleet.to_owned(),
            server_record,
            recipient,
            state_dir,
            udp: tokio::net::UdpSocket::bind("127.0.0.1:0").await?,
        })
    }

    async fn post(&self, path: &str, body: Value, token: bool) -> Result<Value> {
        let mut req = self
            .http
            .post(format!(
                "{}{path}",
                self.endpoints.http.trim_end_matches('/')
            ))
            .json(&body);
        if token {
            req = req.bearer_auth(&self.token);
        }
        let resp = req.send().await?;
        let status = resp.status();
        let v: Value = resp.json().await.unwrap_or(Value::Null);
        if !status.is_success() {
            bail!("POST {path}: {status}: {v}");
        }
        Ok(v)
    }

    async fn register(
        &self,
        hw: &str,
        x25519: [u8; 32],
        ed25519: [u8; 32],
        extra: Value,
    ) -> Result<Value> {
        let mut body = json!({
            "fleet": self.fleet, "hardware_id": hw, "model": "sim", "batch": "sim", "station": "sim-jig",
            "keys": {"x25519": B64.encode(x25519), "ed25519": B64.encode(ed25519)},
        });
        if let (Some(b), Some(e)) = (body.as_object_mut(), extra.as_object()) {
            b.extend(e.clone());
        }
        self.post("/v1/factory/devices", body, true).await
    }

    /// Provisions a full-profile device at the factory and onboards it (signed
    /// challenge), ready for sessions.
    pub async fn provision_full(&self, hardware_id: &str) -> Result<FullDevice> {
        let x = X25519Secret::generate()?;
        let noise = Keypair::from_private(*x.expose_secret())?;
        let sign = Ed25519Signer::generate()?;
        let d = self
            .register(hardware_id, *noise.public(), sign.public_key(), json!({}))
            .await?;
        let id = d["id"].as_str().context("device id")?.to_owned();
        let birth = d["birth_credential"]
            .as_str()
            .context("birth credential")?
            .to_owned();
        let c = self
            .post("/v1/onboarding/challenge", json!({"device_id": id}), false)
            .await?;
        let nonce: [u8; 32] = B64
            .decode(c["nonce"].as_str().context("nonce")?)?
            .try_into()
            .map_err(|_| anyhow::anyhow!("nonce length"))?;
        let at = c["issued_at"].as_i64().context("issued_at")?;
        let sig = sign.sign(&fleetkey_client::messages::onboarding_message(
            &id, &nonce, at,
        ));
        self.post(
            "/v1/onboarding/complete",
            json!({"birth_credential": birth, "nonce": B64.encode(nonce), "signature": B64.encode(sig)}),
            false,
        )
        .await?;
        let mut client = DeviceClient::new(
            ClientConfig::new(self.endpoints.sessions.clone()),
            &id,
            noise,
            sign,
            self.state_dir.join(format!("{id}.json")),
        )?;
        client.trust_record(&self.server_record)?;
        Ok(FullDevice { id, client })
    }

    /// Provisions a constrained device: its PSK sealed to the factory recipient.
    pub async fn provision_constrained(&self, hardware_id: &str) -> Result<ConstrainedDevice> {
        let scalar: [u8; 32] = fleetkey_crypto::rand::array()?;
        let psk: [u8; 32] = fleetkey_crypto::rand::array()?;
        let sealed = seal(&self.recipient, &psk, hardware_id)?;
        let d = self
            .register(
                hardware_id,
                fleetkey_device::keys::public_key(&scalar),
                Ed25519Signer::generate()?.public_key(),
                json!({"profile": "constrained", "sealed_secret": B64.encode(sealed)}),
            )
            .await?;
        let id = d["id"].as_str().context("device id")?.to_owned();
        let raw: [u8; 8] =
            fleetkey_device::evt::decode_hex(id.strip_prefix("dev_").context("device id")?)
                .context("device id hex")?;
        Ok(ConstrainedDevice {
            id,
            device: Device::x25519(raw, scalar, self.server_record.keys.x25519, psk, 0),
            session: None,
        })
    }

    /// One session of a full device: connect, send `telemetry` messages, answer
    /// config commands with signed receipts, close.
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
        while waiting > 0 {
            match s.recv().await? {
                fleetkey_client::proto::ServerMsg::TelemetryAck { .. } => {
                    waiting -= 1;
                    stats.telemetry_acked += 1;
                }
                fleetkey_client::proto::ServerMsg::Command(c) if c.kind == "update_config" => {
                    s.receipt(&c, true).await?;
                }
                fleetkey_client::proto::ServerMsg::Ack { .. } => stats.receipts += 1,
                _ => {}
            }
        }
        s.close().await?;
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
        Ok(())
    }
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
