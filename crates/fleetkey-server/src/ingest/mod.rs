//! Frames from constrained devices (`crates/fleetkey-device`,
//! `docs/protocol.md#the-constrained-device-profile`): over UDP (one datagram per
//! frame, default `127.0.0.1:8402`) or from gateways through `POST /v1/ingest`.
//!
//! Per frame: the header names the device; its verification state (a
//! [`fleetkey_device::Receiver`] with the device's registered X25519 key and its
//! factory secret unwrapped from custody) is cached in a sharded map, so frames of
//! different devices never wait on each other. The device must be active (a
//! manufactured device may send its session start: the first verified boot onboards
//! it); its state is re-read in the background once it is [`STATE_TTL`] old (frames
//! never wait on the database for it), and before the next frame after a change made
//! through this instance ([`FrameIngest::expire`]). A session start raises the
//! stored boot counter (old boots stay refused across restarts); data frames go to
//! the telemetry sink, attributed to the device and its fleet.
//!
//! The downlink ([`downlink`]): the device's open commands (wipe, config, rekey)
//! are cached with its state; after a verified frame, the oldest goes back in a
//! control frame (to the datagram's source, or in the gateway's response) until
//! the device acknowledges it in a control frame of its own.

pub mod downlink;
pub use downlink::{RESEND_AFTER, RESENDS};

use crate::error::Result;
use crate::fleet::FleetService;
use crate::fleet::constrained::Profile;
use crate::store::CommandRecord;
use crate::store::DeviceState;
use crate::telemetry::{TelemetryRecord, TelemetrySink};
use fleetkey_device::{Credentials, FrameKind, Header, Receiver};
use parking_lot::Mutex;
use prometheus::{IntCounterVec, IntGaugeVec};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How long a cached device state is trusted before it is read again.
pub const STATE_TTL: Duration = Duration::from_secs(5);
const SHARDS: usize = 64;

struct Entry {
    receiver: Receiver,
    device_id: String,
    fleet: String,
    profile: Profile,
    state: DeviceState,
    checked_at: Instant,
    /// A state change on this instance: re-read before the next frame.
    stale: bool,
    /// A background re-read after [`STATE_TTL`] is under way.
    refreshing: bool,
    /// The last re-read found static keys disallowed for the device's fleet.
    static_refused: bool,
    counted: bool,
    /// Its open commands the downlink carries, oldest first.
    commands: Vec<CommandRecord>,
    /// The last command sent down and when (one send per [`downlink::RESEND_AFTER`]).
    last_down: Option<(String, Instant)>,
    /// A UDP resend chain is running.
    resending: bool,
}

type Shard = Mutex<HashMap<[u8; 8], Arc<Mutex<Entry>>>>;

/// A verified frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Accepted {
    /// The device.
    pub device_id: String,
    /// Session start or data.
    pub kind: FrameKind,
    /// Boot counter.
    pub boot: u32,
    /// Frame counter.
    pub counter: u32,
    /// A control frame carrying the device's oldest open command, to send back
    /// to it (the UDP path sends it to the datagram's source; a gateway relays it).
    pub downlink: Option<Vec<u8>>,
}

/// Metrics of the ingest path.
#[derive(Clone)]
pub struct IngestMetrics {
    /// Frames by result (`accepted` or the refusal reason).
    pub frames: IntCounterVec,
    /// Devices with a verified session, by profile.
    pub active: IntGaugeVec,
    /// Downlink commands by kind and result.
    pub downlinks: IntCounterVec,
}

/// Verifies constrained devices' frames.
pub struct FrameIngest {
    fleets: Arc<FleetService>,
    scalar: fleetkey_crypto::secret::SecretBytes<32>,
    sink: Arc<dyn TelemetrySink>,
    metrics: IngestMetrics,
    shards: Vec<Shard>,
    /// This ingest path, for background re-reads.
    me: std::sync::Weak<FrameIngest>,
}

/// A refused frame: why, and (for a verified frame of a device that is being
/// decommissioned) the wipe command to send back all the same.
pub struct Refused {
    /// The reason (`forged`, `replay`, `decommissioned`, …; counted in the metric).
    pub reason: &'static str,
    /// A control frame for the device, as in [`Accepted::downlink`].
    pub downlink: Option<Vec<u8>>,
    entry: Option<Arc<Mutex<Entry>>>,
}

impl std::fmt::Debug for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Refused")
            .field("reason", &self.reason)
            .field("downlink", &self.downlink.as_ref().map(Vec::len))
            .finish_non_exhaustive()
    }
}

impl From<&'static str> for Refused {
    fn from(reason: &'static str) -> Self {
        Self {
            reason,
            downlink: None,
            entry: None,
        }
    }
}

fn refusal<T>(reason: &'static str) -> Result<T, Refused> {
    Err(reason.into())
}

impl FrameIngest {
    /// The ingest path with the service's static X25519 key (the one devices hold).
    pub async fn new(
        fleets: Arc<FleetService>,
        sink: Arc<dyn TelemetrySink>,
        metrics: IngestMetrics,
    ) -> Result<Arc<Self>> {
        let (scalar, _) = fleets.directory().server_static_key().await?;
        Ok(Arc::new_cyclic(|me| Self {
            fleets,
            scalar,
            sink,
            metrics,
            shards: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect(),
            me: me.clone(),
        }))
    }

    fn shard(&self, id: &[u8; 8]) -> &Shard {
        &self.shards[usize::from(id[7]) % SHARDS]
    }

    /// Loads (or re-reads) a device's verification state.
    async fn load(&self, id: [u8; 8]) -> Result<Option<Arc<Mutex<Entry>>>, &'static str> {
        let cached = self.shard(&id).lock().get(&id).cloned();
        let device_id = format!("dev_{}", hex::encode(id));
        if let Some(e) = cached {
            let (stale, expired) = {
                let mut g = e.lock();
                let expired = g.checked_at.elapsed() >= STATE_TTL && !g.refreshing;
                if expired && !g.stale {
                    g.refreshing = true;
                }
                (g.stale, expired)
            };
            if stale {
                // A change made through this instance: re-read before this frame.
                return self.refresh(id, &e).await.map(|live| live.then_some(e));
            }
            if expired {
                // Routine re-read: in the background, so that frames never wait
                // on the database (the receive loop would stall and the kernel
                // drop datagrams); this frame uses the state read < 5 s ago.
                if let Some(me) = self.me.upgrade() {
                    let e2 = e.clone();
                    tokio::spawn(async move {
                        let _ = me.refresh(id, &e2).await;
                    });
                }
            }
            return Ok(Some(e));
        }
        let c = match self.fleets.onboarding.constrained_device(&device_id).await {
            Ok(Some(c)) => c,
            Ok(None) => return Ok(None),
            Err(crate::Error::DeviceNotFound(_)) => return Ok(None),
            Err(e) => {
                tracing::error!(device = %device_id, error = %e, "loading a constrained device failed");
                return Err("internal");
            }
        };
        self.check_static_allowed(c.profile, &c.device.fleet)
            .await?;
        let commands = self.open_commands(&device_id).await?;
        let device_public: [u8; 32] = c
            .device
            .x25519
            .as_slice()
            .try_into()
            .map_err(|_| "internal")?;
        let credentials = match c.profile {
            Profile::Constrained => Credentials::X25519Psk {
                device_public,
                psk: *c.secret.expose_secret(),
            },
            Profile::ConstrainedStatic => Credentials::StaticKey {
                factory_key: *c.secret.expose_secret(),
            },
        };
        let entry = Arc::new(Mutex::new(Entry {
            receiver: Receiver::new(id, credentials, c.last_boot),
            device_id,
            fleet: c.device.fleet.clone(),
            profile: c.profile,
            state: c.device.state,
            checked_at: Instant::now(),
            stale: false,
            refreshing: false,
            static_refused: false,
            counted: false,
            commands,
            last_down: None,
            resending: false,
        }));
        let mut shard = self.shard(&id).lock();
        Ok(Some(shard.entry(id).or_insert(entry).clone()))
    }

    /// Re-reads what may have changed about a cached device (its state, and for a
    /// lab device its fleet's static-key policy), keeping the replay state and the
    /// unwrapped secret. False when the device no longer exists.
    async fn refresh(&self, id: [u8; 8], e: &Arc<Mutex<Entry>>) -> Result<bool, &'static str> {
        let (device_id, profile) = {
            let g = e.lock();
            (g.device_id.clone(), g.profile)
        };
        let done = |e: &Arc<Mutex<Entry>>| {
            let mut g = e.lock();
            g.refreshing = false;
        };
        let device = match self.fleets.registry.device(&device_id).await {
            Ok(d) => d,
            Err(crate::Error::DeviceNotFound(_)) => {
                self.forget(&id);
                done(e);
                return Ok(false);
            }
            Err(_) => {
                done(e);
                return Err("internal");
            }
        };
        let allowed = self.check_static_allowed(profile, &device.fleet).await;
        let commands = match self.open_commands(&device_id).await {
            Ok(c) => c,
            Err(reason) => {
                done(e);
                return Err(reason);
            }
        };
        {
            let mut g = e.lock();
            g.commands = commands;
            g.state = device.state;
            g.checked_at = Instant::now();
            g.stale = false;
            g.refreshing = false;
            g.static_refused = allowed.is_err();
        }
        allowed.map(|()| true)
    }

    /// Static-key devices only while their fleet allows them.
    async fn check_static_allowed(
        &self,
        profile: Profile,
        fleet: &str,
    ) -> Result<(), &'static str> {
        if profile == Profile::ConstrainedStatic
            && !self
                .fleets
                .onboarding
                .allows_static_key(fleet)
                .await
                .map_err(|_| "internal")?
        {
            return Err("static_key_not_allowed");
        }
        Ok(())
    }

    /// Makes the next frame of `device_id` re-read the device's state: called after
    /// a state change (suspension, decommissioning) made through this instance, so
    /// it takes effect at once rather than within [`STATE_TTL`].
    pub fn expire(&self, device_id: &str) {
        let Some(id) = device_id
            .strip_prefix("dev_")
            .and_then(fleetkey_device::evt::decode_hex::<8>)
        else {
            return;
        };
        let entry = self.shard(&id).lock().get(&id).cloned();
        if let Some(e) = entry {
            e.lock().stale = true;
        }
    }

    /// [`FrameIngest::expire`] for every cached device (after missed invalidations).
    pub fn expire_all(&self) {
        for shard in &self.shards {
            let entries: Vec<_> = shard.lock().values().cloned().collect();
            for e in entries {
                {
                    let mut g = e.lock();
                    g.stale = true;
                }
            }
        }
    }

    fn forget(&self, id: &[u8; 8]) {
        {
            let mut s = self.shard(id).lock();
            s.remove(id);
        }
    }

    /// Verifies one frame (decrypting it in place) and delivers its telemetry.
    /// Returns what was accepted, or the refusal reason (also counted).
    pub async fn accept(&self, frame: &mut [u8]) -> Result<Accepted, &'static str> {
        self.accept_scoped(frame, &|_| true)
            .await
            .map_err(|r| r.reason)
    }

    /// [`FrameIngest::accept`] for a caller allowed only some fleets (a gateway's
    /// token): frames of devices in other fleets are refused as `unknown_device`,
    /// exactly as ids that exist nowhere (counted as `forbidden` in the metric).
    pub async fn accept_scoped(
        &self,
        frame: &mut [u8],
        fleet_allowed: &(dyn Fn(&str) -> bool + Sync),
    ) -> Result<Accepted, Refused> {
        self.accept_entry(frame, fleet_allowed)
            .await
            .map(|(accepted, _)| accepted)
    }

    /// [`FrameIngest::accept_scoped`], also returning the device's cache entry.
    async fn accept_entry(
        &self,
        frame: &mut [u8],
        fleet_allowed: &(dyn Fn(&str) -> bool + Sync),
    ) -> Result<(Accepted, Arc<Mutex<Entry>>), Refused> {
        let r = self.accept_inner(frame, fleet_allowed).await;
        let label = match &r {
            Ok(_) => "accepted",
            Err(r) => r.reason,
        };
        self.metrics.frames.with_label_values(&[label]).inc();
        // No oracle: out of scope answers as a device that does not exist.
        r.map_err(|mut r| {
            if r.reason == "forbidden" {
                r.reason = "unknown_device";
            }
            r
        })
    }

    async fn accept_inner(
        &self,
        frame: &mut [u8],
        fleet_allowed: &(dyn Fn(&str) -> bool + Sync),
    ) -> Result<(Accepted, Arc<Mutex<Entry>>), Refused> {
        let header = Header::parse(frame).map_err(|e| e.as_str())?;
        let Some(entry) = self.load(header.device_id).await? else {
            return refusal("unknown_device");
        };
        let (opened, device_id, fleet, state, profile, payload) = {
            let mut e = entry.lock();
            if !fleet_allowed(&e.fleet) {
                return refusal("forbidden");
            }
            if e.static_refused {
                return refusal("static_key_not_allowed");
            }
            match (e.state, header.kind) {
                (DeviceState::Active | DeviceState::Onboarded | DeviceState::Rotating, _) => {}
                (DeviceState::Manufactured, FrameKind::SessionStart) => {}
                (DeviceState::Manufactured, _) => return refusal("not_onboarded"),
                (DeviceState::Suspended, _) => return refusal("suspended"),
                // Decommissioning: a boot and the wipe's acknowledgement; telemetry
                // is verified (to answer with the wipe) and refused.
                (DeviceState::Decommissioning, _) => {}
                _ => return refusal("decommissioned"),
            }
            let o = e
                .receiver
                .accept(self.scalar.expose_secret(), frame)
                .map_err(|err| err.as_str())?;
            let payload = o.payload.to_vec();
            (
                o.header,
                e.device_id.clone(),
                e.fleet.clone(),
                e.state,
                e.profile,
                payload,
            )
        };
        // The frame verified: the device was heard from (batched).
        self.fleets.sessions.seen(&device_id);
        if state == DeviceState::Decommissioning && opened.kind == FrameKind::Data {
            // No telemetry from a device being decommissioned: its wipe instead.
            return Err(Refused {
                reason: "decommissioned",
                downlink: self.downlink(&entry, &device_id).await,
                entry: Some(entry),
            });
        }
        match opened.kind {
            FrameKind::SessionStart => {
                let device = self
                    .fleets
                    .registry
                    .device(&device_id)
                    .await
                    .map_err(|_| "internal")?;
                match self
                    .fleets
                    .onboarding
                    .constrained_boot(&device, opened.boot)
                    .await
                {
                    Ok(true) => {}
                    Ok(false) => {
                        // Another instance or a restart saw a newer boot: re-read.
                        self.forget(&header.device_id);
                        return refusal("old_boot");
                    }
                    Err(e) => {
                        tracing::error!(device = %device_id, error = %e, "recording a boot failed");
                        self.forget(&header.device_id);
                        return refusal("internal");
                    }
                }
                let first = {
                    let mut e = entry.lock();
                    if matches!(state, DeviceState::Manufactured | DeviceState::Onboarded) {
                        e.state = DeviceState::Active;
                    }
                    !std::mem::replace(&mut e.counted, true)
                };
                if first {
                    self.metrics
                        .active
                        .with_label_values(&[profile.as_str()])
                        .inc();
                }
                tracing::info!(device = %device_id, boot = opened.boot, "constrained device session start");
            }
            FrameKind::Control => {
                self.acknowledged(&entry, &device_id, &opened, &payload)
                    .await?
            }
            FrameKind::Data => {
                let data = serde_json::from_slice::<serde_json::Value>(&payload).unwrap_or_else(|_| {
                    use base64::Engine as _;
                    serde_json::json!({ "base64": base64::engine::general_purpose::STANDARD.encode(&payload) })
                });
                let record = TelemetryRecord {
                    device_id: device_id.clone(),
                    fleet,
                    session: format!("boot-{}", opened.boot),
                    seq: u64::from(opened.counter),
                    received_at: self.fleets.now(),
                    data,
                };
                if let Err(e) = self.sink.deliver(&record).await {
                    tracing::error!(error = %e, "telemetry sink failed");
                    return refusal("sink_failed");
                }
            }
        }
        let downlink = self.downlink(&entry, &device_id).await;
        Ok((
            Accepted {
                device_id,
                kind: opened.kind,
                boot: opened.boot,
                counter: opened.counter,
                downlink,
            },
            entry,
        ))
    }

    /// Flushes the telemetry sink.
    pub async fn flush(&self) -> Result<()> {
        self.sink.flush().await
    }

    /// Receives datagrams until `shutdown` completes (one frame per datagram).
    pub async fn run_udp(
        self: Arc<Self>,
        socket: tokio::net::UdpSocket,
        shutdown: impl Future<Output = ()>,
    ) {
        tokio::pin!(shutdown);
        let socket = Arc::new(socket);
        let mut buf = vec![0u8; 2048];
        loop {
            let (n, from) = tokio::select! {
                _ = &mut shutdown => return,
                r = socket.recv_from(&mut buf) => match r {
                    Ok(r) => r,
                    Err(e) => {
                        tracing::warn!(error = %e, "device UDP receive failed");
                        continue;
                    }
                },
            };
            if n > fleetkey_device::frame::MAX_FRAME {
                self.metrics.frames.with_label_values(&["malformed"]).inc();
                continue;
            }
            let (down, entry) = match self.accept_entry(&mut buf[..n], &|_| true).await {
                Ok((a, entry)) => (a.downlink, Some(entry)),
                Err(r) => (r.downlink, r.entry),
            };
            if let (Some(down), Some(entry)) = (down, entry) {
                if let Err(e) = socket.send_to(&down, from).await {
                    tracing::warn!(error = %e, "device UDP send failed");
                }
                self.clone().resend(entry, socket.clone(), from);
            }
        }
    }
}
