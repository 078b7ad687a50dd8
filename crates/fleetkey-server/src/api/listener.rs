//! The device listener: Noise sessions over TCP (`docs/protocol.md#the-device-listener`).
//!
//! Each connection: a per-source limit on new connections (IPv4 address or IPv6
//! /64, GCRA, no global lock) and a cap on handshakes in progress; a 4-byte
//! preamble naming the pattern (`IK`, `XX` for first contact, or the post-quantum
//! hybrid `IKpsk2` + ML-KEM-768) and suite, which is also the Noise prologue; the
//! handshake with the service's static key (from custody) under the handshake
//! deadline. The device is whoever registered the static key it proved; a device
//! that is unknown, not onboarded, suspended or decommissioned gets a `refused`
//! message with the reason and the attempt is audited.
//!
//! The device's first message is `hello` (naming its previous session to resume);
//! the server answers `welcome`, delivers the device's open commands, then serves
//! telemetry (to the telemetry sink, acknowledged by sequence number, duplicates
//! dropped), signed receipts, credential rotation and the wipe receipt until the
//! device goes quiet for the idle timeout. A device being decommissioned gets its
//! wipe command and nothing else. One session per device: a new one closes the old.
//! The message types are [`fleetkey_wire::proto`].

use super::AppState;
use crate::api::ratelimit::source_key;
use base64::{Engine as _, engine::general_purpose::STANDARD as B64};
use fleetkey_crypto::mlkem::MlKemSecret;
use fleetkey_session::io::{Session, handshake};
use fleetkey_session::{Builder, Keypair, Limits, Pattern};
use fleetkey_wire::proto::{self, CommandWire, DeviceMsg, ServerMsg};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use parking_lot::Mutex;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;
use tokio::io::AsyncReadExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Notify;

use crate::store::{CommandKind, DeviceSessionRecord, DeviceState};
use crate::telemetry::{TelemetryRecord, TelemetrySink};

/// Ended sessions' records are kept this long (the scheduler prunes older ones;
/// each device's telemetry position is kept regardless), seconds.
pub const SESSION_RETENTION_SECS: i64 = 30 * 86_400;
/// Largest telemetry `seq` a device may send (the store keeps it as a signed
/// 64-bit integer).
pub const MAX_TELEMETRY_SEQ: u64 = i64::MAX as u64;
/// Furthest a telemetry `seq` may jump past the highest stored.
pub const MAX_TELEMETRY_SEQ_JUMP: u64 = 1 << 32;

/// Largest message a device may send over its session, bytes.
pub const MAX_DEVICE_MESSAGE: usize = proto::MAX_MESSAGE;

/// The listener's settings.
#[derive(Debug, Clone)]
pub struct ListenerConfig {
    /// New connections per source per minute.
    pub connections_per_minute: u32,
    /// Handshakes in progress at once.
    pub max_concurrent_handshakes: usize,
    /// Session limits (handshake deadline, idle timeout, sizes).
    pub limits: Limits,
}

impl Default for ListenerConfig {
    fn default() -> Self {
        Self {
            connections_per_minute: 10,
            max_concurrent_handshakes: 256,
            limits: Limits {
                max_message: MAX_DEVICE_MESSAGE,
                ..Limits::default()
            },
        }
    }
}

/// A session in progress, shared so a newer session of the same device can take
/// over its telemetry position and close it.
struct Live {
    id: String,
    telemetry_seq: AtomicU64,
    close: Notify,
}

/// The device listener.
pub struct DeviceListener {
    state: Arc<AppState>,
    key: Keypair,
    kem: Arc<MlKemSecret>,
    per_source: DefaultKeyedRateLimiter<u128>,
    handshakes: Arc<super::admission::Admission>,
    limits: Limits,
    sink: Arc<dyn TelemetrySink>,
    live: Mutex<HashMap<String, Arc<Live>>>,
    /// Set at shutdown: sessions end (recording their end) and none begins.
    stopping: std::sync::atomic::AtomicBool,
    /// Refusals of unknown keys, audited as one summary per interval.
    refusals: super::refusals::RefusalTally,
}

/// How long shutdown waits for device sessions to record their end.
pub const SESSION_END_GRACE: std::time::Duration = std::time::Duration::from_secs(5);

fn pattern_label(p: Pattern) -> &'static str {
    match p {
        Pattern::IK => "IK",
        Pattern::XX => "XX",
        Pattern::IKHybrid => "IKpsk2+ML-KEM-768",
        _ => "other",
    }
}

/// Why a session ended early, for the loop.
enum End {
    /// The device or the network ended it (logged at debug).
    Closed(String),
    /// We end it after telling the device (wipe done, replaced by a newer session).
    Done,
}

impl DeviceListener {
    /// Removes `live` from the table of live sessions, unless a newer session of
    /// the same device replaced it meanwhile.
    fn forget(&self, device_id: &str, live: &Live) {
        let mut map = self.live.lock();
        if map.get(device_id).is_some_and(|l| l.id == live.id) {
            map.remove(device_id);
        }
    }

    /// A listener with the service's static X25519 and ML-KEM-768 keys (made on
    /// first start, kept in custody), published as the `fleetkey-server` key record;
    /// verified telemetry goes to `sink`.
    pub async fn new(
        state: Arc<AppState>,
        config: ListenerConfig,
        sink: Arc<dyn TelemetrySink>,
    ) -> crate::Result<Arc<Self>> {
        let dir = state.fleets.directory();
        let (scalar, public) = dir.server_static_key().await?;
        let kem = dir.server_kem_key().await?;
        dir.publish_service(public, Some(kem.public_key()?)).await?;
        let key = Keypair::from_private(*scalar.expose_secret())
            .map_err(|_| crate::Error::Corrupt("the service static key does not load".into()))?;
        let per_minute =
            NonZeroU32::new(config.connections_per_minute.max(1)).unwrap_or(NonZeroU32::MIN);
        Ok(Arc::new(Self {
            state,
            key,
            kem: Arc::new(kem),
            per_source: RateLimiter::keyed(Quota::per_minute(per_minute)),
            handshakes: super::admission::Admission::new(config.max_concurrent_handshakes),
            limits: config.limits,
            sink,
            live: Mutex::new(HashMap::new()),
            stopping: Default::default(),
            refusals: Default::default(),
        }))
    }

    /// The static public key devices must use for IK.
    pub fn public_key(&self) -> [u8; 32] {
        *self.key.public()
    }

    /// The ML-KEM-768 encapsulation key for the hybrid.
    pub fn kem_public_key(&self) -> crate::Result<Vec<u8>> {
        Ok(self.kem.public_key()?)
    }

    /// Accepts connections until `shutdown` completes, then ends the sessions in
    /// progress ([`DeviceListener::end_sessions`]).
    pub async fn run(self: Arc<Self>, listener: TcpListener, shutdown: impl Future<Output = ()>) {
        tokio::pin!(shutdown);
        let mut accepted: u64 = 0;
        let mut summary = tokio::time::interval(super::refusals::SUMMARY_INTERVAL);
        summary.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let (stream, peer) = tokio::select! {
                _ = &mut shutdown => {
                    drop(listener);
                    self.end_sessions(SESSION_END_GRACE).await;
                    self.flush_refusals().await;
                    return;
                }
                _ = summary.tick() => {
                    let me = self.clone();
                    tokio::spawn(async move { me.flush_refusals().await });
                    continue;
                }
                r = listener.accept() => match r {
                    Ok(c) => c,
                    Err(e) => {
                        tracing::warn!(error = %e, "device listener accept failed");
                        // Out of descriptors and the like: do not spin.
                        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                        continue;
                    }
                },
            };
            accepted += 1;
            if accepted.is_multiple_of(4096) {
                self.per_source.retain_recent();
            }
            if self.per_source.check_key(&source_key(peer.ip())).is_err() {
                self.refuse_early("rate_limited");
                continue;
            }
            // Fair admission: the oldest handshake (of this source, or of all when
            // every slot is held) gives way to the new connection.
            let Some((permit, evicted)) = self.handshakes.admit(source_key(peer.ip())) else {
                self.refuse_early("busy");
                continue;
            };
            if evicted {
                self.refuse_early("evicted");
            }
            let me = self.clone();
            tokio::spawn(async move {
                me.connection(stream, peer, permit).await;
            });
        }
    }

    /// Ends every session in progress, each recording its end (`ended_at`, its
    /// telemetry position and message counts) before its connection closes, and
    /// lets no new one begin; waits up to `grace` for them. Devices reconnect to
    /// another instance, or to this one once it is back.
    pub async fn end_sessions(&self, grace: std::time::Duration) {
        self.stopping.store(true, Ordering::SeqCst);
        let live: Vec<Arc<Live>> = self.live.lock().values().cloned().collect();
        for l in &live {
            l.close.notify_one();
        }
        let deadline = tokio::time::Instant::now() + grace;
        while tokio::time::Instant::now() < deadline && !self.live.lock().is_empty() {
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
    }

    /// Writes the refusals of unknown keys counted since the last summary to the
    /// audit log, as one `session.refused` entry (none if there were none).
    pub async fn flush_refusals(&self) {
        let counts = self.refusals.take();
        let secs = super::refusals::SUMMARY_INTERVAL.as_secs();
        if let Err(e) = self.state.fleets.audit_refusal_summary(secs, &counts).await {
            tracing::error!(error = %e, "could not audit refused device sessions");
        }
    }

    fn refuse_early(&self, reason: &str) {
        self.state
            .metrics
            .session_refusals
            .with_label_values(&[reason])
            .inc();
    }

    /// Reads the preamble and runs the handshake under the handshake deadline.
    async fn accept_handshake(
        &self,
        mut stream: TcpStream,
        started: Instant,
    ) -> Result<(Session<TcpStream>, Pattern), (&'static str, &'static str, String)> {
        let _ = stream.set_nodelay(true);
        let mut pre = [0u8; proto::PREAMBLE_LEN];
        // The first bytes come soon or never: an idle connection leaves its slot
        // after a few seconds, not the whole handshake deadline.
        let first = super::admission::FIRST_BYTES_DEADLINE.min(self.limits.handshake_timeout);
        match tokio::time::timeout(first, stream.read_exact(&mut pre)).await {
            Err(_) => return Err(("unknown", "timeout", "no preamble".into())),
            Ok(Err(e)) => return Err(("unknown", "failed", e.to_string())),
            Ok(Ok(_)) => {}
        }
        let Some((pattern, suite)) = proto::parse_preamble(pre) else {
            return Err(("unknown", "bad_preamble", "unknown preamble".into()));
        };
        let label = pattern_label(pattern);
        let mut b = Builder::new(pattern, suite)
            .local(&self.key)
            .limits(self.limits)
            .prologue(&pre);
        if pattern.hybrid() {
            b = b.local_kem(self.kem.clone());
        }
        let hs = b
            .responder(started)
            .map_err(|e| (label, "failed", e.to_string()))?;
        match handshake(stream, hs, b"").await {
            Ok((s, _)) => Ok((s, pattern)),
            Err(fleetkey_session::Error::Timeout) => Err((label, "timeout", "timeout".into())),
            Err(e) => Err((label, "failed", e.to_string())),
        }
    }

    async fn connection(
        self: Arc<Self>,
        stream: TcpStream,
        peer: SocketAddr,
        permit: super::admission::Slot,
    ) {
        let m = &self.state.metrics;
        let started = Instant::now();
        let result = tokio::select! {
            r = Box::pin(self.accept_handshake(stream, started)) => r,
            () = permit.evicted() => Err(("unknown", "evicted", "a newer connection took the slot".into())),
        };
        drop(permit);
        let (mut session, pattern) = match result {
            Ok(s) => s,
            Err((label, result, why)) => {
                m.handshakes.with_label_values(&[label, result]).inc();
                if result == "bad_preamble" {
                    m.session_refusals.with_label_values(&[result]).inc();
                }
                tracing::debug!(%peer, error = %why, "device handshake failed");
                return;
            }
        };
        let label = pattern_label(pattern);
        m.handshake_latency
            .with_label_values(&[label])
            .observe(started.elapsed().as_secs_f64());
        let Some(key) = session.remote_static() else {
            return;
        };
        let device = match Box::pin(self.state.fleets.session_device(&key)).await {
            // Only what the session needs stays in memory while it is open.
            Ok(Ok(d)) => Peer {
                id: d.id,
                fleet: d.fleet,
                state: d.state,
            },
            Ok(Err((id, reason))) => {
                m.handshakes.with_label_values(&[label, "refused"]).inc();
                Box::pin(self.refuse(&mut session, id.as_deref(), &key, reason, peer)).await;
                return;
            }
            Err(e) => {
                tracing::error!(error = %e, "device lookup failed");
                return;
            }
        };
        m.handshakes.with_label_values(&[label, "ok"]).inc();
        m.active_sessions.inc();
        let key_prefix = fleetkey_crypto::hex_prefix(&key);
        tracing::info!(device = %device.id, key = %key_prefix, pattern = label, "device session open");
        let id = proto::session_id(session.handshake_hash());
        let mut c = Conn {
            l: &self,
            s: &mut session,
            device: &device,
            pattern: label,
            peer,
            id,
            messages_in: 0,
            messages_out: 0,
            live: None,
        };
        match c.serve().await {
            Ok(()) | Err(End::Done) => {}
            Err(End::Closed(why)) => {
                tracing::debug!(device = %device.id, reason = %why, "device session ended");
            }
        }
        Box::pin(c.finish()).await;
        m.active_sessions.dec();
    }

    async fn refuse(
        &self,
        session: &mut Session<TcpStream>,
        device_id: Option<&str>,
        key: &[u8; 32],
        reason: &'static str,
        peer: SocketAddr,
    ) {
        self.state
            .metrics
            .session_refusals
            .with_label_values(&[reason])
            .inc();
        match device_id {
            // A registered device (its key proven): one audit entry each.
            Some(id) => {
                if let Err(e) = self
                    .state
                    .fleets
                    .audit_session_refusal(Some(id), key, reason, &peer.ip().to_string())
                    .await
                {
                    tracing::error!(error = %e, "could not audit a refused device session");
                }
            }
            // Anyone can make up a key: counted, audited in the interval's summary.
            None => {
                let prefix = fleetkey_crypto::hex_prefix(key);
                tracing::info!(reason, peer = %peer.ip(), x25519_prefix = %prefix, "device session refused");
                self.refusals.count(reason, peer.ip());
            }
        }
        let msg = ServerMsg::Refused {
            reason: reason.into(),
        };
        if let Ok(raw) = serde_json::to_vec(&msg) {
            let _ = session.send(&raw).await;
        }
    }
}

/// The device of an open session.
struct Peer {
    id: String,
    fleet: String,
    state: DeviceState,
}

/// One device's session.
struct Conn<'a> {
    l: &'a DeviceListener,
    s: &'a mut Session<TcpStream>,
    device: &'a Peer,
    pattern: &'static str,
    peer: SocketAddr,
    id: String,
    messages_in: u64,
    messages_out: u64,
    live: Option<Arc<Live>>,
}

impl Conn<'_> {
    async fn send(&mut self, msg: &ServerMsg) -> Result<(), End> {
        let raw = serde_json::to_vec(msg).map_err(|e| End::Closed(e.to_string()))?;
        self.s
            .send(&raw)
            .await
            .map_err(|e| End::Closed(e.to_string()))?;
        self.messages_out += 1;
        Ok(())
    }

    fn count(&self, kind: &str, result: &str) {
        self.l
            .state
            .metrics
            .device_messages
            .with_label_values(&[kind, result])
            .inc();
    }

    async fn recv(&mut self) -> Result<Result<DeviceMsg, ()>, End> {
        let raw = self
            .s
            .recv()
            .await
            .map_err(|e| End::Closed(e.to_string()))?;
        self.messages_in += 1;
        Ok(serde_json::from_slice(&raw).map_err(|_| ()))
    }

    /// Hello, welcome, commands, then messages until the session ends.
    async fn serve(&mut self) -> Result<(), End> {
        let resume = match self.recv().await? {
            Ok(DeviceMsg::Hello { resume, .. }) => resume,
            _ => {
                let key = self.s.remote_static().unwrap_or_default();
                self.l
                    .refuse(self.s, Some(&self.device.id), &key, "no_hello", self.peer)
                    .await;
                return Err(End::Done);
            }
        };
        if self.l.stopping.load(Ordering::SeqCst) {
            return Err(End::Closed("the server is shutting down".into()));
        }
        // Rare paths are boxed so the future every idle session keeps is small.
        let welcome = Box::pin(self.begin(resume)).await.map_err(|e| {
            tracing::error!(device = %self.device.id, error = %e, "device session could not begin");
            End::Closed(e.to_string())
        })?;
        self.send(&welcome).await?;
        let wiping = self.device.state == DeviceState::Decommissioning;
        let commands = Box::pin(self.l.state.fleets.device_commands(&self.device.id, true))
            .await
            .map_err(|e| End::Closed(e.to_string()))?;
        for c in commands {
            if wiping && c.kind != CommandKind::Wipe {
                continue;
            }
            let wire = CommandWire {
                id: c.id,
                device_id: c.device_id,
                kind: c.kind.as_str().into(),
                state: c.state.as_str().into(),
                payload: c.payload,
                signature: B64.encode(&c.signature),
                created_at: c.created_at,
                updated_at: c.updated_at,
            };
            self.send(&ServerMsg::Command(wire)).await?;
        }
        let live = self.live.clone().ok_or(End::Done)?;
        loop {
            let msg = tokio::select! {
                r = self.recv() => r?,
                () = live.close.notified() => {
                    return Err(End::Closed(if self.l.stopping.load(Ordering::SeqCst) {
                        "the server is shutting down".into()
                    } else {
                        "replaced by a newer session".into()
                    }));
                }
            };
            let reply = match msg {
                Err(()) => {
                    self.count("unknown", "refused");
                    Some(ServerMsg::Error {
                        message: "not a device message".into(),
                    })
                }
                Ok(m) if wiping && !matches!(m, DeviceMsg::WipeReceipt { .. }) => {
                    self.count("other", "refused");
                    Some(ServerMsg::Error {
                        message:
                            "the device is being decommissioned: only the wipe receipt is accepted"
                                .into(),
                    })
                }
                Ok(DeviceMsg::Hello { .. }) => Some(ServerMsg::Error {
                    message: "hello was already sent".into(),
                }),
                Ok(DeviceMsg::Telemetry { seq, data }) => {
                    Some(Box::pin(self.telemetry(&live, seq, data)).await)
                }
                Ok(DeviceMsg::Receipt {
                    command_id,
                    status,
                    at,
                    signature,
                }) => Some(Box::pin(self.receipt(command_id, &status, at, &signature)).await),
                Ok(DeviceMsg::RotationProposal {
                    command_id,
                    keys,
                    signature,
                }) => Some(Box::pin(self.proposal(command_id, &keys, &signature)).await),
                Ok(DeviceMsg::RotationConfirm {
                    command_id,
                    signature,
                }) => Some(Box::pin(self.confirm(command_id, &signature)).await),
                Ok(DeviceMsg::WipeReceipt {
                    wiped_at,
                    signature,
                }) => {
                    let r = Box::pin(self.wipe(wiped_at, &signature)).await;
                    let done = matches!(r, ServerMsg::Ack { .. });
                    self.send(&r).await?;
                    if done {
                        self.send(&ServerMsg::Refused {
                            reason: "decommissioned".into(),
                        })
                        .await?;
                        return Err(End::Done);
                    }
                    None
                }
            };
            if let Some(r) = reply {
                self.send(&r).await?;
            }
        }
    }

    /// Binds the session to the previous one, takes over (and closes) a session of
    /// the same device still open, records the session; returns the welcome.
    async fn begin(&mut self, resume: Option<String>) -> crate::Result<ServerMsg> {
        let store = self.l.state.fleets.store();
        let resumed = match resume.as_deref() {
            Some(prev) if prev.len() == 32 && prev.bytes().all(|b| b.is_ascii_hexdigit()) => store
                .device_session(prev)
                .await?
                .is_some_and(|s| s.device_id == self.device.id),
            _ => false,
        };
        let live = Arc::new(Live {
            id: self.id.clone(),
            telemetry_seq: AtomicU64::new(0),
            close: Notify::new(),
        });
        let old = self
            .l
            .live
            .lock()
            .insert(self.device.id.clone(), live.clone());
        // Shutdown either sees this session in the table (and ends it) or this
        // sees the flag: none begins unnoticed.
        if self.l.stopping.load(Ordering::SeqCst) {
            self.l.forget(&self.device.id, &live);
            return Err(crate::Error::Stopping("the server is shutting down"));
        }
        let mut seq = store.device_telemetry_seq(&self.device.id).await?;
        if let Some(old) = old {
            seq = seq.max(old.telemetry_seq.load(Ordering::Acquire));
            old.close.notify_one();
        }
        live.telemetry_seq.fetch_max(seq, Ordering::AcqRel);
        store
            .open_device_session(&DeviceSessionRecord {
                id: self.id.clone(),
                device_id: self.device.id.clone(),
                previous: resume.filter(|_| resumed),
                pattern: self.pattern.into(),
                peer: self.peer.ip().to_string(),
                started_at: self.l.state.fleets.now(),
                ended_at: None,
                telemetry_seq: seq,
                messages_in: 0,
                messages_out: 0,
            })
            .await?;
        self.live = Some(live);
        Ok(ServerMsg::Welcome {
            device_id: self.device.id.clone(),
            session: self.id.clone(),
            resumed,
            telemetry_seq: seq,
        })
    }

    async fn telemetry(&mut self, live: &Live, seq: u64, data: serde_json::Value) -> ServerMsg {
        let stored = live.telemetry_seq.load(Ordering::Acquire);
        if seq == 0 {
            self.count("telemetry", "refused");
            return ServerMsg::Error {
                message: "telemetry sequence numbers start at 1".into(),
            };
        }
        if seq <= stored {
            self.count("telemetry", "duplicate");
            return ServerMsg::TelemetryAck { seq: stored };
        }
        // A sequence the store cannot hold (above 2^63 - 1), or a jump that would
        // make every later message look like a duplicate: refused, not stored.
        if seq > MAX_TELEMETRY_SEQ || seq - stored > MAX_TELEMETRY_SEQ_JUMP {
            self.count("telemetry", "refused");
            return ServerMsg::Error {
                message: format!(
                    "telemetry seq {seq} is out of range (at most {MAX_TELEMETRY_SEQ_JUMP} past {stored})"
                ),
            };
        }
        let record = TelemetryRecord {
            device_id: self.device.id.clone(),
            fleet: self.device.fleet.clone(),
            session: self.id.clone(),
            seq,
            received_at: self.l.state.fleets.now(),
            data,
        };
        let stored = match self.l.sink.deliver(&record).await {
            Ok(()) => self.l.sink.flush().await,
            Err(e) => Err(e),
        };
        match stored {
            Ok(()) => {
                live.telemetry_seq.fetch_max(seq, Ordering::AcqRel);
                self.count("telemetry", "accepted");
                ServerMsg::TelemetryAck { seq }
            }
            Err(e) => {
                tracing::error!(error = %e, "telemetry sink failed");
                self.count("telemetry", "failed");
                ServerMsg::Error {
                    message: "telemetry not stored; send it again later".into(),
                }
            }
        }
    }

    fn outcome(&self, kind: &str, command_id: String, r: crate::Result<ServerMsg>) -> ServerMsg {
        match r {
            Ok(m) => {
                self.count(kind, "accepted");
                m
            }
            Err(e) => {
                self.count(kind, "refused");
                tracing::info!(device = %self.device.id, command = %command_id, error = %e, "device message refused");
                // The same public message as over HTTP: a refusal says why, a
                // fault of the service says only "retry later".
                ServerMsg::Error {
                    message: super::error::ApiError::from(e).detail.message,
                }
            }
        }
    }

    async fn receipt(
        &mut self,
        command_id: String,
        status: &str,
        at: i64,
        signature: &str,
    ) -> ServerMsg {
        let r = async {
            let sig = b64(signature)?;
            self.l
                .state
                .fleets
                .command_receipt(&self.device.id, &command_id, status, at, &sig)
                .await?;
            Ok(ServerMsg::Ack {
                command_id: command_id.clone(),
            })
        }
        .await;
        self.outcome("receipt", command_id, r)
    }

    async fn proposal(
        &mut self,
        command_id: String,
        keys: &proto::KeysWire,
        signature: &str,
    ) -> ServerMsg {
        let r = async {
            let sig = b64(signature)?;
            let keys = keys
                .decode()
                .map_err(|f| crate::fleet::invalid("keys", format!("{f} is not valid base64")))?;
            let (token, id) = self
                .l
                .state
                .fleets
                .propose_rotation(&self.device.id, &command_id, keys, &sig)
                .await?;
            Ok(ServerMsg::Credential {
                command_id: command_id.clone(),
                operational_credential: B64.encode(token),
                credential_id: B64.encode(id),
            })
        }
        .await;
        self.outcome("rotation_proposal", command_id, r)
    }

    async fn confirm(&mut self, command_id: String, signature: &str) -> ServerMsg {
        let r = async {
            let sig = b64(signature)?;
            self.l
                .state
                .fleets
                .confirm_rotation(&self.device.id, &command_id, &sig)
                .await?;
            self.l
                .state
                .metrics
                .key_rotations
                .with_label_values(&["device_credential"])
                .inc();
            Ok(ServerMsg::Ack {
                command_id: command_id.clone(),
            })
        }
        .await;
        self.outcome("rotation_confirm", command_id, r)
    }

    async fn wipe(&mut self, wiped_at: i64, signature: &str) -> ServerMsg {
        let r = async {
            let sig = b64(signature)?;
            self.l
                .state
                .fleets
                .confirm_wipe(&self.device.id, wiped_at, &sig)
                .await?;
            Ok(ServerMsg::Ack {
                command_id: "wipe".into(),
            })
        }
        .await;
        self.outcome("wipe_receipt", "wipe".into(), r)
    }

    /// Records the end of the session and leaves the live table (unless a newer
    /// session of the device took the place).
    async fn finish(&mut self) {
        let Some(live) = self.live.take() else {
            return;
        };
        self.l.forget(&self.device.id, &live);
        let store = self.l.state.fleets.store();
        if let Err(e) = store
            .close_device_session(
                &self.id,
                self.l.state.fleets.now(),
                live.telemetry_seq.load(Ordering::Acquire),
                self.messages_in,
                self.messages_out,
            )
            .await
        {
            tracing::error!(error = %e, "could not record the end of a device session");
        }
    }
}

fn b64(s: &str) -> crate::Result<Vec<u8>> {
    B64.decode(s)
        .map_err(|_| crate::fleet::invalid("signature", "not valid base64"))
}
