//! The device listener: Noise IK sessions over TCP (`docs/protocol.md#the-device-listener`).
//!
//! Each connection: a per-source limit on new connections (IPv4 address or IPv6
//! /64, GCRA, no global lock) and a cap on handshakes in progress, then an IK
//! handshake with the service's static key (from custody) under the handshake
//! deadline. The device is whoever registered the static key it proved; a device
//! that is unknown, not onboarded, suspended or decommissioned gets a `refused`
//! message with the reason and the attempt is audited. Otherwise the server sends
//! the device's open commands and reads telemetry and signed receipts until the
//! device goes quiet for the idle timeout.
//!
//! Messages are JSON objects with a `type`:
//! - server → device: `{"type":"command", id, kind, payload, signature, created_at}`,
//!   `{"type":"ack","command_id"}`, `{"type":"error","message"}`,
//!   `{"type":"refused","reason"}`;
//! - device → server: `{"type":"telemetry","data":…}`,
//!   `{"type":"receipt","command_id","status":"applied"|"rejected","at","signature"}`.

use super::AppState;
use super::devices::CommandInfo;
use base64::{Engine as _, engine::general_purpose::STANDARD as B64};
use fleetkey_session::io::{Session, handshake};
use fleetkey_session::{Builder, Keypair, Limits, Pattern, Suite};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use serde_json::{Value, json};
use std::net::{IpAddr, SocketAddr};
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Instant;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;

/// Largest message a device may send over its session, bytes.
pub const MAX_DEVICE_MESSAGE: usize = 64 * 1024;

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

/// The device listener.
pub struct DeviceListener {
    state: Arc<AppState>,
    key: Keypair,
    per_source: DefaultKeyedRateLimiter<u128>,
    handshakes: Arc<Semaphore>,
    limits: Limits,
}

/// The rate-limit key of a source: the IPv4 address, or the IPv6 /64.
fn source_key(ip: IpAddr) -> u128 {
    match ip {
        IpAddr::V4(v4) => u128::from(u32::from(v4)),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => u128::from(u32::from(v4)),
            None => (u128::from(v6) >> 64) << 64 | 1,
        },
    }
}

impl DeviceListener {
    /// A listener with the service's static key (made on first start, kept in custody).
    pub async fn new(state: Arc<AppState>, config: ListenerConfig) -> crate::Result<Arc<Self>> {
        let (scalar, public) = state.fleets.directory().server_static_key().await?;
        state.fleets.directory().publish_service(public).await?;
        let key = Keypair::from_private(*scalar.expose_secret())
            .map_err(|_| crate::Error::Store("the service static key does not load".into()))?;
        let per_minute =
            NonZeroU32::new(config.connections_per_minute.max(1)).unwrap_or(NonZeroU32::MIN);
        Ok(Arc::new(Self {
            state,
            key,
            per_source: RateLimiter::keyed(Quota::per_minute(per_minute)),
            handshakes: Arc::new(Semaphore::new(config.max_concurrent_handshakes.max(1))),
            limits: config.limits,
        }))
    }

    /// The static public key devices must use for IK.
    pub fn public_key(&self) -> [u8; 32] {
        *self.key.public()
    }

    /// Accepts connections until `shutdown` completes.
    pub async fn run(self: Arc<Self>, listener: TcpListener, shutdown: impl Future<Output = ()>) {
        tokio::pin!(shutdown);
        let mut accepted: u64 = 0;
        loop {
            let (stream, peer) = tokio::select! {
                _ = &mut shutdown => return,
                r = listener.accept() => match r {
                    Ok(c) => c,
                    Err(e) => {
                        tracing::warn!(error = %e, "device listener accept failed");
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
            let Ok(permit) = self.handshakes.clone().try_acquire_owned() else {
                self.refuse_early("busy");
                continue;
            };
            let me = self.clone();
            tokio::spawn(async move {
                me.connection(stream, peer, permit).await;
            });
        }
    }

    fn refuse_early(&self, reason: &str) {
        self.state
            .metrics
            .session_refusals
            .with_label_values(&[reason])
            .inc();
    }

    async fn connection(
        self: Arc<Self>,
        stream: TcpStream,
        peer: SocketAddr,
        permit: tokio::sync::OwnedSemaphorePermit,
    ) {
        let m = &self.state.metrics;
        let started = Instant::now();
        let hs = match Builder::new(Pattern::IK, Suite::ChaChaPolyBlake2s)
            .local(&self.key)
            .limits(self.limits)
            .responder(started)
        {
            Ok(h) => h,
            Err(e) => {
                tracing::error!(error = %e, "device handshake could not start");
                return;
            }
        };
        let result = handshake(stream, hs, b"").await;
        drop(permit);
        let (mut session, _) = match result {
            Ok(s) => s,
            Err(e) => {
                let label = match e {
                    fleetkey_session::Error::Timeout => "timeout",
                    _ => "failed",
                };
                m.handshakes.with_label_values(&["IK", label]).inc();
                tracing::debug!(%peer, error = %e, "device handshake failed");
                return;
            }
        };
        m.handshake_latency
            .with_label_values(&["IK"])
            .observe(started.elapsed().as_secs_f64());
        let Some(key) = session.remote_static() else {
            return;
        };
        let device = match self.state.fleets.session_device(&key).await {
            Ok(Ok(d)) => d,
            Ok(Err((id, reason))) => {
                m.handshakes.with_label_values(&["IK", "refused"]).inc();
                m.session_refusals.with_label_values(&[reason]).inc();
                if let Err(e) = self
                    .state
                    .fleets
                    .audit_session_refusal(id.as_deref(), &key, reason, &peer.ip().to_string())
                    .await
                {
                    tracing::error!(error = %e, "could not audit a refused device session");
                }
                let _ = session
                    .send(
                        json!({"type": "refused", "reason": reason})
                            .to_string()
                            .as_bytes(),
                    )
                    .await;
                let _ = session.close().await;
                return;
            }
            Err(e) => {
                tracing::error!(error = %e, "device lookup failed");
                return;
            }
        };
        m.handshakes.with_label_values(&["IK", "ok"]).inc();
        m.active_sessions.inc();
        let key_prefix = fleetkey_crypto::hex_prefix(&key);
        tracing::info!(device = %device.id, key = %key_prefix, "device session open");
        if let Err(e) = self.serve(&mut session, &device.id).await {
            tracing::debug!(device = %device.id, error = %e, "device session ended");
        }
        m.active_sessions.dec();
    }

    /// Delivers open commands, then answers telemetry and receipts.
    async fn serve(&self, s: &mut Session<TcpStream>, device_id: &str) -> Result<(), String> {
        let commands = self
            .state
            .fleets
            .device_commands(device_id, true)
            .await
            .map_err(|e| e.to_string())?;
        for c in commands {
            let info = CommandInfo::from(c);
            let mut msg = serde_json::to_value(&info).map_err(|e| e.to_string())?;
            msg["type"] = json!("command");
            s.send(msg.to_string().as_bytes())
                .await
                .map_err(|e| e.to_string())?;
        }
        loop {
            let raw = s.recv().await.map_err(|e| e.to_string())?;
            let reply = match serde_json::from_slice::<Value>(&raw) {
                Ok(v) if v["type"] == "telemetry" => None,
                Ok(v) if v["type"] == "receipt" => Some(self.receipt(device_id, &v).await),
                _ => Some(json!({"type": "error", "message": "unknown message"})),
            };
            if let Some(r) = reply {
                s.send(r.to_string().as_bytes())
                    .await
                    .map_err(|e| e.to_string())?;
            }
        }
    }

    async fn receipt(&self, device_id: &str, v: &Value) -> Value {
        let (Some(id), Some(status), Some(at), Some(sig)) = (
            v["command_id"].as_str(),
            v["status"].as_str(),
            v["at"].as_i64(),
            v["signature"].as_str().and_then(|s| B64.decode(s).ok()),
        ) else {
            return json!({"type": "error", "message": "a receipt needs command_id, status, at and a base64 signature"});
        };
        match self
            .state
            .fleets
            .command_receipt(device_id, id, status, at, &sig)
            .await
        {
            Ok(()) => json!({"type": "ack", "command_id": id}),
            Err(e) => json!({"type": "error", "message": e.to_string()}),
        }
    }
}
