//! Prometheus metrics, served at `/metrics`.

use crate::keys::KeyService;
use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts,
    Registry, TextEncoder,
};
use std::sync::atomic::Ordering;

/// Every metric the API exports.
pub struct Metrics {
    registry: Registry,
    /// Requests by route template, method and status.
    pub requests: IntCounterVec,
    /// Latency by route template.
    pub latency: HistogramVec,
    /// Seal items by keyring and result (`ok`, `error`).
    pub seals: IntCounterVec,
    /// Unseal items by keyring and result (`ok`, `cannot_open`, `revoked`, …).
    pub unseals: IntCounterVec,
    /// AEAD open failures (wrong key, tampered, wrong AAD) by keyring.
    pub open_failures: IntCounterVec,
    /// Rate-limit rejections by scope (`token`, `global`).
    pub rate_limited: IntCounterVec,
    /// Operations refused because the audit log could not be written.
    pub audit_write_failures: IntCounter,
    rotations: IntGauge,
    nonce_blocks: IntGauge,
    nonce_alerts: IntGauge,
    /// Counters left in the current nonce block's instance id space, per keyring.
    pub nonce_headroom: IntGaugeVec,
    adaptive_tightened: IntGauge,
    /// Device handshakes by pattern and result (`ok`, `refused`, `failed`, `timeout`).
    pub handshakes: IntCounterVec,
    /// Device handshake latency.
    pub handshake_latency: HistogramVec,
    /// Device sessions open now.
    pub active_sessions: IntGauge,
    /// Device connections and sessions refused, by reason.
    pub session_refusals: IntCounterVec,
    /// Key directory lookups by result (`found`, `revoked`, `not_found`).
    pub directory_lookups: IntCounterVec,
    /// Messages from devices over sessions, by type and result.
    pub device_messages: IntCounterVec,
    /// Key rotations by kind (`device_credential`, `keyring`).
    pub key_rotations: IntCounterVec,
    /// Constrained-device frames by result (`accepted` or the refusal reason).
    pub device_frames: IntCounterVec,
    /// Constrained devices with a verified session start, by profile.
    pub constrained_active: IntGaugeVec,
    /// 1 while Redis is configured but unreachable (instances act alone).
    pub coordination_degraded: IntGauge,
    /// The HTTP listener's connections.
    pub http: crate::api::http::HttpMetrics,
}

/// A counter as a gauge value (`IntGauge` is signed); saturates rather than wraps.
fn saturating(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

fn counter_vec(
    r: &Registry,
    name: &str,
    help: &str,
    labels: &[&str],
) -> prometheus::Result<IntCounterVec> {
    let c = IntCounterVec::new(Opts::new(name, help), labels)?;
    r.register(Box::new(c.clone()))?;
    Ok(c)
}

fn gauge(r: &Registry, name: &str, help: &str) -> prometheus::Result<IntGauge> {
    let g = IntGauge::new(name, help)?;
    r.register(Box::new(g.clone()))?;
    Ok(g)
}

impl Metrics {
    /// Registers everything.
    pub fn new() -> prometheus::Result<Self> {
        let r = Registry::new();
        let latency = HistogramVec::new(
            HistogramOpts::new(
                "fleetkey_http_request_duration_seconds",
                "Request latency by route",
            )
            .buckets(vec![
                0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.1, 0.5, 2.0,
            ]),
            &["route"],
        )?;
        r.register(Box::new(latency.clone()))?;
        let audit_write_failures = IntCounter::new(
            "fleetkey_audit_write_failures_total",
            "Operations refused because the audit log could not be written",
        )?;
        r.register(Box::new(audit_write_failures.clone()))?;
        let nonce_headroom = IntGaugeVec::new(
            Opts::new(
                "fleetkey_nonce_headroom",
                "Nonce counters left before the instance id must change, per keyring primary version",
            ),
            &["keyring", "version"],
        )?;
        r.register(Box::new(nonce_headroom.clone()))?;
        let handshake_latency = HistogramVec::new(
            HistogramOpts::new(
                "fleetkey_device_handshake_duration_seconds",
                "Device handshake latency by pattern",
            )
            .buckets(vec![
                0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.1, 0.5, 2.0, 10.0,
            ]),
            &["pattern"],
        )?;
        r.register(Box::new(handshake_latency.clone()))?;
        Ok(Self {
            handshakes: counter_vec(
                &r,
                "fleetkey_device_handshakes_total",
                "Device handshakes by pattern and result",
                &["pattern", "result"],
            )?,
            handshake_latency,
            active_sessions: gauge(
                &r,
                "fleetkey_device_sessions_active",
                "Device sessions open now",
            )?,
            directory_lookups: counter_vec(
                &r,
                "fleetkey_directory_lookups_total",
                "Key directory lookups by result",
                &["result"],
            )?,
            device_messages: counter_vec(
                &r,
                "fleetkey_device_messages_total",
                "Messages from devices over sessions, by type and result",
                &["type", "result"],
            )?,
            device_frames: counter_vec(
                &r,
                "fleetkey_device_frames_total",
                "Constrained-device frames by result",
                &["result"],
            )?,
            constrained_active: {
                let g = IntGaugeVec::new(
                    Opts::new(
                        "fleetkey_constrained_devices_active",
                        "Constrained devices with a verified session start since this instance started, by profile",
                    ),
                    &["profile"],
                )?;
                r.register(Box::new(g.clone()))?;
                g
            },
            key_rotations: counter_vec(
                &r,
                "fleetkey_key_rotations_total",
                "Key rotations by kind",
                &["kind"],
            )?,
            session_refusals: counter_vec(
                &r,
                "fleetkey_device_refusals_total",
                "Device connections and sessions refused, by reason",
                &["reason"],
            )?,
            requests: counter_vec(
                &r,
                "fleetkey_http_requests_total",
                "Requests by route, method and status",
                &["route", "method", "status"],
            )?,
            latency,
            seals: counter_vec(
                &r,
                "fleetkey_seal_items_total",
                "Seal items by keyring and result",
                &["keyring", "result"],
            )?,
            unseals: counter_vec(
                &r,
                "fleetkey_unseal_items_total",
                "Unseal items by keyring and result",
                &["keyring", "result"],
            )?,
            open_failures: counter_vec(
                &r,
                "fleetkey_aead_open_failures_total",
                "Envelopes that failed authentication",
                &["keyring"],
            )?,
            rate_limited: counter_vec(
                &r,
                "fleetkey_rate_limited_total",
                "Requests refused by a rate limit",
                &["scope"],
            )?,
            audit_write_failures,
            rotations: gauge(&r, "fleetkey_rotations_total", "Key rotations since start")?,
            coordination_degraded: gauge(
                &r,
                "fleetkey_coordination_degraded",
                "1 while Redis is configured but unreachable: rate limits fall back to this instance's share, invalidations wait for cache expiry",
            )?,
            http: crate::api::http::HttpMetrics {
                open: gauge(&r, "fleetkey_http_connections", "HTTP connections open now")?,
                closed: counter_vec(
                    &r,
                    "fleetkey_http_connections_closed_total",
                    "HTTP connections the server closed: shed (over the cap), header_timeout, idle_timeout, tls_failed",
                    &["reason"],
                )?,
            },
            nonce_blocks: gauge(
                &r,
                "fleetkey_nonce_blocks_total",
                "Nonce blocks reserved since start",
            )?,
            nonce_alerts: gauge(
                &r,
                "fleetkey_nonce_space_alerts_total",
                "Nonce counters that crossed the alert threshold",
            )?,
            nonce_headroom,
            adaptive_tightened: gauge(
                &r,
                "fleetkey_rate_limit_tightened",
                "1 while the adaptive limit is tightened",
            )?,
            registry: r,
        })
    }

    /// Renders the text exposition, refreshing gauges from the key service.
    pub fn render(&self, keys: &KeyService, tightened: bool) -> String {
        let m = keys.metrics();
        self.rotations
            .set(saturating(m.rotations.load(Ordering::Relaxed)));
        self.nonce_blocks
            .set(saturating(m.nonce_blocks.load(Ordering::Relaxed)));
        self.nonce_alerts
            .set(saturating(m.nonce_space_alerts.load(Ordering::Relaxed)));
        self.adaptive_tightened.set(i64::from(tightened));
        for (name, version, headroom) in keys.nonce_headroom() {
            self.nonce_headroom
                .with_label_values(&[name.as_str(), &version.to_string()])
                .set(saturating(headroom));
        }
        let mut buf = Vec::new();
        let _ = TextEncoder::new().encode(&self.registry.gather(), &mut buf);
        String::from_utf8(buf).unwrap_or_default()
    }
}
