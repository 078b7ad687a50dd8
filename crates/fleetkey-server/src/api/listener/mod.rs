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
use fleetkey_crypto::mlkem::MlKemSecret;
use fleetkey_session::io::{Session, handshake};
use fleetkey_session::{Builder, Keypair, Limits, Pattern};
use fleetkey_wire::proto::{self, ServerMsg};
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
use tracing::Instrument as _;

mod session;

use crate::telemetry::TelemetrySink;
use session::{Conn, Peer};

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

/// The allow-list's name of a pattern the listener speaks.
fn session_pattern(p: Pattern) -> Option<crate::fleet::patterns::SessionPattern> {
    use crate::fleet::patterns::SessionPattern;
    match p {
        Pattern::IK => Some(SessionPattern::Ik),
        Pattern::XX => Some(SessionPattern::Xx),
        Pattern::IKHybrid => Some(SessionPattern::IkHybrid),
        _ => None,
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
        if let Err(e) = self
            .state
            .fleets
            .sessions
            .audit_refusal_summary(secs, &counts)
            .await
        {
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
        let span = crate::observability::spans::device_handshake(peer);
        let opened = Box::pin(self.open_session(stream, peer, permit)).instrument(span);
        let Some((mut session, label, device, key)) = opened.await else {
            return;
        };
        let m = &self.state.metrics;
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

    /// The handshake and the session's admission (the device is known, active
    /// and allowed this pattern), in the handshake's trace span; `None` when the
    /// connection ends here (counted, logged, and refused to the device when it
    /// proved its key).
    async fn open_session(
        &self,
        stream: TcpStream,
        peer: SocketAddr,
        permit: super::admission::Slot,
    ) -> Option<(Session<TcpStream>, &'static str, Peer, [u8; 32])> {
        let span = tracing::Span::current();
        let traced = |pattern: &str, result: &str, device: Option<&str>| {
            crate::observability::spans::handshake_result(&span, pattern, result, device);
        };
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
                traced(label, result, None);
                tracing::debug!(%peer, error = %why, "device handshake failed");
                return None;
            }
        };
        let label = pattern_label(pattern);
        m.handshake_latency
            .with_label_values(&[label])
            .observe(started.elapsed().as_secs_f64());
        let key = session.remote_static()?;
        let device = match Box::pin(self.state.fleets.sessions.session_device(&key)).await {
            // Only what the session needs stays in memory while it is open.
            Ok(Ok(d)) => Peer {
                id: d.id,
                fleet: d.fleet,
                state: d.state,
            },
            Ok(Err((id, reason))) => {
                m.handshakes.with_label_values(&[label, "refused"]).inc();
                traced(label, "refused", id.as_deref());
                Box::pin(self.refuse(&mut session, id.as_deref(), &key, reason, None, peer)).await;
                return None;
            }
            Err(e) => {
                tracing::error!(error = %e, "device lookup failed");
                traced(label, "failed", None);
                return None;
            }
        };
        // The pattern must be allowed for the device's fleet now (changed at
        // run time: docs/operations.md, "Session patterns").
        let allowed = match session_pattern(pattern) {
            Some(p) => {
                self.state
                    .fleets
                    .sessions
                    .pattern_allowed(&device.fleet, p)
                    .await
            }
            None => Ok(Err(
                "this pattern is not offered for device sessions".to_owned()
            )),
        };
        match allowed {
            Ok(Ok(())) => {}
            Ok(Err(why)) => {
                m.handshakes
                    .with_label_values(&[label, "pattern_refused"])
                    .inc();
                traced(label, "pattern_refused", Some(&device.id));
                let refusal = self.refuse(
                    &mut session,
                    Some(&device.id),
                    &key,
                    "pattern_not_allowed",
                    Some(why),
                    peer,
                );
                Box::pin(refusal).await;
                return None;
            }
            Err(e) => {
                tracing::error!(error = %e, "reading the session patterns failed");
                traced(label, "failed", Some(&device.id));
                return None;
            }
        }
        m.handshakes.with_label_values(&[label, "ok"]).inc();
        traced(label, "ok", Some(&device.id));
        Some((session, label, device, key))
    }

    async fn refuse(
        &self,
        session: &mut Session<TcpStream>,
        device_id: Option<&str>,
        key: &[u8; 32],
        reason: &'static str,
        detail: Option<String>,
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
                    .sessions
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
        // The device reads the reason first, then why, when there is more to say.
        let msg = ServerMsg::Refused {
            reason: detail.map_or_else(|| reason.to_owned(), |d| format!("{reason}: {d}")),
        };
        if let Ok(raw) = serde_json::to_vec(&msg) {
            let _ = session.send(&raw).await;
        }
    }
}
