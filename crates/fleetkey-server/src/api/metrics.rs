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
    /// Data keys by keyring and result.
    pub datakeys: IntCounterVec,
    /// Signatures made, by keyring and result.
    pub signs: IntCounterVec,
    /// Signatures checked, by keyring and result (`ok` whether or not it verified).
    pub verifies: IntCounterVec,
    /// MAC tags made, by keyring and result.
    pub macs: IntCounterVec,
    /// MAC tags checked, by keyring and result.
    pub mac_verifies: IntCounterVec,
    /// Bytes served by `GET /v1/random`.
    pub random_bytes: IntCounter,
    /// Keyring life-cycle and key-material changes, by operation and result.
    pub keyring_changes: IntCounterVec,
    /// AEAD open failures (wrong key, tampered, wrong AAD) by keyring.
    pub open_failures: IntCounterVec,
    /// Rate-limit rejections by scope (`token`, `global`).
    pub rate_limited: IntCounterVec,
    /// AWS KMS door requests refused before an operation, by AWS error code
    /// (missing, incomplete or invalid signatures, unknown keys).
    pub kms_refusals: IntCounterVec,
    /// AWS KMS door operations, by operation and result (`ok` or AWS error code).
    pub kms_operations: IntCounterVec,
    /// Operations refused because the audit log could not be written.
    pub audit_write_failures: IntCounter,
    nonce_blocks: IntCounter,
    nonce_alerts: IntCounter,
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
    /// Key rotations by kind (`device_credential`; `keyring` is read from the key
    /// service, which sees every rotation: by request, policy or use).
    pub key_rotations: IntCounterVec,
    /// Constrained-device frames by result (`accepted` or the refusal reason).
    pub device_frames: IntCounterVec,
    /// Commands to constrained devices by kind and result.
    pub device_downlinks: IntCounterVec,
    /// Constrained devices with a verified session start, by profile.
    pub constrained_active: IntGaugeVec,
    /// Devices heard from within a window (5m, 1h, 24h), by fleet.
    pub devices_seen: IntGaugeVec,
    /// Unix time of the newest scheduled backup.
    pub backup_last_success: IntGauge,
    /// Seconds since it (set at each scrape).
    backup_age: IntGauge,
    /// When the backup schedule started (Unix seconds; 0: no schedule).
    pub backup_scheduled_since: std::sync::atomic::AtomicI64,
    /// Scheduled backups by result.
    pub backups: IntCounterVec,
    /// Operational credentials expiring within 14 days, by fleet.
    pub credentials_expiring: IntGaugeVec,
    /// Operational credentials expired, by fleet.
    pub credentials_expired: IntGaugeVec,
    /// 1 while Redis is configured but unreachable (instances act alone).
    pub coordination_degraded: IntGauge,
    /// The HTTP listener's connections.
    pub http: crate::api::http::HttpMetrics,
    /// When the TLS certificate expires (Unix seconds; 0 without TLS).
    pub tls_expiry: IntGauge,
}

/// A counter as a gauge value (`IntGauge` is signed); saturates rather than wraps.
fn saturating(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

/// Brings a counter up to a total the key service keeps (it only grows; two
/// renders at once add the difference once, as `inc_by` of the rest).
fn catch_up(c: &IntCounter, total: u64) {
    let now = c.get();
    if total > now {
        c.inc_by(total - now);
    }
}

/// A metric's name, help text and labels.
struct Def {
    name: &'static str,
    help: &'static str,
    labels: &'static [&'static str],
}

impl Def {
    const fn new(name: &'static str, help: &'static str, labels: &'static [&'static str]) -> Self {
        Self { name, help, labels }
    }

    fn counter_vec(&self, r: &Registry) -> prometheus::Result<IntCounterVec> {
        register(
            r,
            IntCounterVec::new(Opts::new(self.name, self.help), self.labels)?,
        )
    }

    fn gauge_vec(&self, r: &Registry) -> prometheus::Result<IntGaugeVec> {
        register(
            r,
            IntGaugeVec::new(Opts::new(self.name, self.help), self.labels)?,
        )
    }

    fn gauge(&self, r: &Registry) -> prometheus::Result<IntGauge> {
        register(r, IntGauge::new(self.name, self.help)?)
    }

    fn counter(&self, r: &Registry) -> prometheus::Result<IntCounter> {
        register(r, IntCounter::new(self.name, self.help)?)
    }

    fn histogram_vec(&self, r: &Registry, buckets: &[f64]) -> prometheus::Result<HistogramVec> {
        let opts = HistogramOpts::new(self.name, self.help).buckets(buckets.to_vec());
        register(r, HistogramVec::new(opts, self.labels)?)
    }
}

fn register<C: prometheus::core::Collector + Clone + 'static>(
    r: &Registry,
    c: C,
) -> prometheus::Result<C> {
    r.register(Box::new(c.clone()))?;
    Ok(c)
}

// Every metric, by name (docs/operations.md#metrics lists them for operators).
const REQUESTS: Def = Def::new(
    "fleetkey_http_requests_total",
    "Requests by route, method and status",
    &["route", "method", "status"],
);
const LATENCY: Def = Def::new(
    "fleetkey_http_request_duration_seconds",
    "Request latency by route",
    &["route"],
);
const SEALS: Def = Def::new(
    "fleetkey_seal_items_total",
    "Seal items by keyring and result",
    &["keyring", "result"],
);
const UNSEALS: Def = Def::new(
    "fleetkey_unseal_items_total",
    "Unseal items by keyring and result",
    &["keyring", "result"],
);
const DATAKEYS: Def = Def::new(
    "fleetkey_datakeys_total",
    "Data keys made, by keyring and result",
    &["keyring", "result"],
);
const KEYRING_CHANGES: Def = Def::new(
    "fleetkey_keyring_changes_total",
    "Keyring life-cycle and key-material changes (disable, enable, schedule_deletion, cancel_deletion, erase, details, alias_put, alias_delete, import, export), by operation and result",
    &["operation", "result"],
);
const SIGNS: Def = Def::new(
    "fleetkey_sign_items_total",
    "Signatures made, by keyring and result",
    &["keyring", "result"],
);
const VERIFIES: Def = Def::new(
    "fleetkey_verify_items_total",
    "Signatures checked, by keyring and result",
    &["keyring", "result"],
);
const MACS: Def = Def::new(
    "fleetkey_mac_items_total",
    "MAC tags made, by keyring and result",
    &["keyring", "result"],
);
const MAC_VERIFIES: Def = Def::new(
    "fleetkey_mac_verify_items_total",
    "MAC tags checked, by keyring and result",
    &["keyring", "result"],
);
const RANDOM_BYTES: Def = Def::new(
    "fleetkey_random_bytes_total",
    "Bytes served by GET /v1/random",
    &[],
);
const OPEN_FAILURES: Def = Def::new(
    "fleetkey_aead_open_failures_total",
    "Envelopes that failed authentication",
    &["keyring"],
);
const RATE_LIMITED: Def = Def::new(
    "fleetkey_rate_limited_total",
    "Requests refused by a rate limit",
    &["scope"],
);
const KMS_REFUSALS: Def = Def::new(
    "fleetkey_kms_auth_refusals_total",
    "AWS KMS door requests refused by their signature or access key",
    &["code"],
);
const KMS_OPERATIONS: Def = Def::new(
    "fleetkey_kms_operations_total",
    "AWS KMS door operations by result",
    &["operation", "result"],
);
const AUDIT_WRITE_FAILURES: Def = Def::new(
    "fleetkey_audit_write_failures_total",
    "Operations refused because the audit log could not be written",
    &[],
);
const NONCE_BLOCKS: Def = Def::new(
    "fleetkey_nonce_blocks_total",
    "Nonce blocks reserved since start",
    &[],
);
const NONCE_ALERTS: Def = Def::new(
    "fleetkey_nonce_space_alerts_total",
    "Nonce counters that crossed the alert threshold",
    &[],
);
const NONCE_HEADROOM: Def = Def::new(
    "fleetkey_nonce_headroom",
    "Nonce counters left before the instance id must change, per keyring primary version",
    &["keyring", "version"],
);
const ADAPTIVE_TIGHTENED: Def = Def::new(
    "fleetkey_rate_limit_tightened",
    "1 while the adaptive limit is tightened",
    &[],
);
const HANDSHAKES: Def = Def::new(
    "fleetkey_device_handshakes_total",
    "Device handshakes by pattern and result",
    &["pattern", "result"],
);
const HANDSHAKE_LATENCY: Def = Def::new(
    "fleetkey_device_handshake_duration_seconds",
    "Device handshake latency by pattern",
    &["pattern"],
);
const ACTIVE_SESSIONS: Def = Def::new(
    "fleetkey_device_sessions_active",
    "Device sessions open now",
    &[],
);
const SESSION_REFUSALS: Def = Def::new(
    "fleetkey_device_refusals_total",
    "Device connections and sessions refused, by reason",
    &["reason"],
);
const DIRECTORY_LOOKUPS: Def = Def::new(
    "fleetkey_directory_lookups_total",
    "Key directory lookups by result",
    &["result"],
);
const DEVICE_MESSAGES: Def = Def::new(
    "fleetkey_device_messages_total",
    "Messages from devices over sessions, by type and result",
    &["type", "result"],
);
const KEY_ROTATIONS: Def = Def::new(
    "fleetkey_key_rotations_total",
    "Key rotations by kind",
    &["kind"],
);
const DEVICE_FRAMES: Def = Def::new(
    "fleetkey_device_frames_total",
    "Constrained-device frames by result",
    &["result"],
);
const DEVICE_DOWNLINKS: Def = Def::new(
    "fleetkey_device_downlinks_total",
    "Commands to constrained devices over the downlink, by command kind and result (sent, resent, acked, rejected, undeliverable)",
    &["kind", "result"],
);
const CONSTRAINED_ACTIVE: Def = Def::new(
    "fleetkey_constrained_devices_active",
    "Constrained devices with a verified session start since this instance started, by profile",
    &["profile"],
);
const DEVICES_SEEN: Def = Def::new(
    "fleetkey_devices_seen",
    "Devices heard from (a verified session message or frame) within the window (5m, 1h, 24h), by fleet; from the store, so every instance reports the whole fleet (refreshed every 30 s)",
    &["fleet", "window"],
);
const CREDENTIALS_EXPIRING: Def = Def::new(
    "fleetkey_device_credentials_expiring",
    "Devices (onboarded, active, rotating) whose operational credential expires within 14 days, expired ones included, by fleet; from the store (refreshed every 30 s)",
    &["fleet"],
);
const CREDENTIALS_EXPIRED: Def = Def::new(
    "fleetkey_device_credentials_expired",
    "Devices (onboarded, active, rotating) whose operational credential has expired, by fleet; from the store (refreshed every 30 s)",
    &["fleet"],
);
const BACKUP_LAST_SUCCESS: Def = Def::new(
    "fleetkey_backup_last_success_timestamp_seconds",
    "Unix time of the newest scheduled backup in backup_dir (0: none yet, or no backup_dir)",
    &[],
);
const BACKUP_AGE: Def = Def::new(
    "fleetkey_backup_age_seconds",
    "Seconds since the newest scheduled backup (before the first, since the schedule started), at the scrape; 0 without backup_dir",
    &[],
);
const BACKUPS: Def = Def::new(
    "fleetkey_backups_total",
    "Scheduled backups attempted, by result (ok, failed)",
    &["result"],
);
const COORDINATION_DEGRADED: Def = Def::new(
    "fleetkey_coordination_degraded",
    "1 while Redis is configured but unreachable: rate limits fall back to this instance's share, invalidations wait for cache expiry",
    &[],
);
const TLS_EXPIRY: Def = Def::new(
    "fleetkey_tls_certificate_expiry_timestamp_seconds",
    "When the TLS certificate of the HTTP and gRPC listeners stops being valid (Unix seconds); 0 without TLS",
    &[],
);
const BUILD_INFO: Def = Def::new(
    "fleetkey_build_info",
    "Always 1; the labels say which build is running",
    &["version"],
);
const HTTP_CONNECTIONS: Def = Def::new(
    "fleetkey_http_connections",
    "HTTP connections open now",
    &[],
);
const HTTP_CLOSED: Def = Def::new(
    "fleetkey_http_connections_closed_total",
    "HTTP connections the server closed: shed (over the cap), header_timeout, idle_timeout, tls_failed",
    &["reason"],
);

impl Metrics {
    /// Registers everything.
    pub fn new() -> prometheus::Result<Self> {
        let r = Registry::new();
        BUILD_INFO
            .gauge_vec(&r)?
            .with_label_values(&[env!("CARGO_PKG_VERSION")])
            .set(1);
        // process_cpu_seconds_total, process_resident_memory_bytes,
        // process_open_fds, … (Linux; elsewhere the collector reports nothing).
        r.register(Box::new(
            prometheus::process_collector::ProcessCollector::for_self(),
        ))?;
        Ok(Self {
            requests: REQUESTS.counter_vec(&r)?,
            latency: LATENCY.histogram_vec(
                &r,
                &[
                    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.1, 0.5, 2.0,
                ],
            )?,
            seals: SEALS.counter_vec(&r)?,
            unseals: UNSEALS.counter_vec(&r)?,
            datakeys: DATAKEYS.counter_vec(&r)?,
            signs: SIGNS.counter_vec(&r)?,
            verifies: VERIFIES.counter_vec(&r)?,
            macs: MACS.counter_vec(&r)?,
            mac_verifies: MAC_VERIFIES.counter_vec(&r)?,
            random_bytes: RANDOM_BYTES.counter(&r)?,
            keyring_changes: KEYRING_CHANGES.counter_vec(&r)?,
            open_failures: OPEN_FAILURES.counter_vec(&r)?,
            rate_limited: RATE_LIMITED.counter_vec(&r)?,
            kms_refusals: KMS_REFUSALS.counter_vec(&r)?,
            kms_operations: KMS_OPERATIONS.counter_vec(&r)?,
            audit_write_failures: AUDIT_WRITE_FAILURES.counter(&r)?,
            nonce_blocks: NONCE_BLOCKS.counter(&r)?,
            nonce_alerts: NONCE_ALERTS.counter(&r)?,
            nonce_headroom: NONCE_HEADROOM.gauge_vec(&r)?,
            adaptive_tightened: ADAPTIVE_TIGHTENED.gauge(&r)?,
            handshakes: HANDSHAKES.counter_vec(&r)?,
            handshake_latency: HANDSHAKE_LATENCY.histogram_vec(
                &r,
                &[
                    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.1, 0.5, 2.0, 10.0,
                ],
            )?,
            active_sessions: ACTIVE_SESSIONS.gauge(&r)?,
            session_refusals: SESSION_REFUSALS.counter_vec(&r)?,
            directory_lookups: DIRECTORY_LOOKUPS.counter_vec(&r)?,
            device_messages: DEVICE_MESSAGES.counter_vec(&r)?,
            key_rotations: KEY_ROTATIONS.counter_vec(&r)?,
            device_frames: DEVICE_FRAMES.counter_vec(&r)?,
            device_downlinks: DEVICE_DOWNLINKS.counter_vec(&r)?,
            constrained_active: CONSTRAINED_ACTIVE.gauge_vec(&r)?,
            devices_seen: DEVICES_SEEN.gauge_vec(&r)?,
            backup_last_success: BACKUP_LAST_SUCCESS.gauge(&r)?,
            backup_age: BACKUP_AGE.gauge(&r)?,
            backup_scheduled_since: Default::default(),
            backups: BACKUPS.counter_vec(&r)?,
            credentials_expiring: CREDENTIALS_EXPIRING.gauge_vec(&r)?,
            credentials_expired: CREDENTIALS_EXPIRED.gauge_vec(&r)?,
            coordination_degraded: COORDINATION_DEGRADED.gauge(&r)?,
            http: crate::api::http::HttpMetrics {
                open: HTTP_CONNECTIONS.gauge(&r)?,
                closed: HTTP_CLOSED.counter_vec(&r)?,
            },
            tls_expiry: TLS_EXPIRY.gauge(&r)?,
            registry: r,
        })
    }

    /// Registers a collector made elsewhere (custody's call histogram).
    pub fn register(&self, c: prometheus::HistogramVec) -> prometheus::Result<()> {
        self.registry.register(Box::new(c))
    }

    /// Renders the text exposition, refreshing gauges from the key service.
    pub fn render(&self, keys: &KeyService, tightened: bool) -> String {
        let m = keys.metrics();
        catch_up(
            &self.key_rotations.with_label_values(&["keyring"]),
            m.rotations.load(Ordering::Relaxed),
        );
        catch_up(&self.nonce_blocks, m.nonce_blocks.load(Ordering::Relaxed));
        catch_up(
            &self.nonce_alerts,
            m.nonce_space_alerts.load(Ordering::Relaxed),
        );
        self.adaptive_tightened.set(i64::from(tightened));
        let since = self.backup_scheduled_since.load(Ordering::Relaxed);
        if since > 0 {
            let last = self.backup_last_success.get();
            let base = if last > 0 { last } else { since };
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX));
            self.backup_age.set(now.saturating_sub(base).max(0));
        }
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

#[cfg(test)]
mod tests {
    use super::*;
    use prometheus::proto::MetricType;

    /// Prometheus conventions: counters end in `_total`, nothing else does; every
    /// series is ours (`fleetkey_`) or the standard process ones.
    #[test]
    fn names_follow_the_conventions() {
        let m = Metrics::new().unwrap();
        m.key_rotations.with_label_values(&["keyring"]).inc();
        let families = m.registry.gather();
        assert!(families.len() > 10, "{}", families.len());
        for f in &families {
            let name = f.name();
            assert!(
                name.starts_with("fleetkey_") || name.starts_with("process_"),
                "{name}"
            );
            let counter = f.get_field_type() == MetricType::COUNTER;
            assert_eq!(counter, name.ends_with("_total"), "{name}");
        }
        let text = {
            let mut buf = Vec::new();
            TextEncoder::new().encode(&families, &mut buf).unwrap();
            String::from_utf8(buf).unwrap()
        };
        assert!(text.contains(&format!(
            "fleetkey_build_info{{version=\"{}\"}} 1",
            env!("CARGO_PKG_VERSION")
        )));
        #[cfg(target_os = "linux")]
        assert!(text.contains("process_resident_memory_bytes "), "{text}");
    }

    #[test]
    fn counters_catch_up_with_the_key_service_totals() {
        let m = Metrics::new().unwrap();
        catch_up(&m.nonce_blocks, 3);
        assert_eq!(m.nonce_blocks.get(), 3);
        catch_up(&m.nonce_blocks, 2); // never backwards
        catch_up(&m.nonce_blocks, 5);
        assert_eq!(m.nonce_blocks.get(), 5);
    }
}
