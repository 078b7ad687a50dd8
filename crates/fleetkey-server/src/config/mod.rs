//! Service configuration: defaults, then a TOML file (`--config`), then `FLEETKEY_*`
//! environment variables. Invalid configuration stops start-up with a message that
//! names the key and the problem.

use serde::Deserialize;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

/// Why configuration was refused.
#[derive(Debug, thiserror::Error)]
#[error("config: {key}: {problem}")]
pub struct ConfigError {
    /// The key (`listen`, `rate_limit.per_token_per_sec`, `FLEETKEY_LISTEN`, …).
    pub key: String,
    /// What is wrong with it.
    pub problem: String,
}

/// A service URL for logs and errors: any password replaced
/// (`postgres://user:***@host/db`, `redis://***@host`).
pub fn redacted_url(url: &str) -> String {
    match (url.split_once("://"), url.rsplit_once('@')) {
        (Some((scheme, rest)), Some((_, host))) => {
            let user = rest.split(['@', ':']).next().unwrap_or("");
            format!("{scheme}://{user}:***@{host}")
        }
        _ => url.to_owned(),
    }
}

/// A service URL that may carry a password (`store_url`, `redis_url`,
/// `telemetry_mqtt_url`): `Debug` and `Display` print it redacted
/// ([`redacted_url`]); [`ServiceUrl::expose`] gives the URL to connect with.
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(transparent)]
pub struct ServiceUrl(String);

impl ServiceUrl {
    /// Wraps `url`.
    pub fn new(url: impl Into<String>) -> Self {
        Self(url.into())
    }

    /// The URL itself, password included: for connecting, never for printing.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for ServiceUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?}", redacted_url(&self.0))
    }
}

impl std::fmt::Display for ServiceUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&redacted_url(&self.0))
    }
}

fn err(key: &str, problem: impl Into<String>) -> ConfigError {
    ConfigError {
        key: key.to_owned(),
        problem: problem.into(),
    }
}

/// Log output format (`auto`, `human`, `json`), parsed by [`str::parse`] from every
/// source (TOML, `FLEETKEY_LOG_FORMAT`, `--log-format`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human on a terminal, JSON otherwise.
    #[default]
    Auto,
    /// Human-readable lines.
    Human,
    /// One JSON object per line.
    Json,
}

impl std::str::FromStr for LogFormat {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "auto" => Ok(Self::Auto),
            "human" => Ok(Self::Human),
            "json" => Ok(Self::Json),
            other => Err(format!("{other:?}: use auto, human or json")),
        }
    }
}

/// An address to listen on, or `off`: `"127.0.0.1:8401"` or `"off"` in TOML and
/// the environment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Listen {
    /// Not listening.
    Off,
    /// Listening on this address.
    On(SocketAddr),
}

impl Listen {
    /// The address, unless off.
    pub fn addr(self) -> Option<SocketAddr> {
        match self {
            Listen::Off => None,
            Listen::On(a) => Some(a),
        }
    }
}

impl std::fmt::Display for Listen {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Listen::Off => f.write_str("off"),
            Listen::On(a) => a.fmt(f),
        }
    }
}

impl std::str::FromStr for Listen {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        if s == "off" {
            return Ok(Listen::Off);
        }
        s.parse()
            .map(Listen::On)
            .map_err(|_| format!("{s:?} is not an address like 127.0.0.1:8401 (or off)"))
    }
}

/// Deserializes a field through its [`std::str::FromStr`], whose message is the
/// error's (so a bad address says what an address looks like).
fn from_text<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: serde::Deserializer<'de>,
    T: std::str::FromStr<Err = String>,
{
    let text = String::deserialize(d)?;
    text.parse().map_err(serde::de::Error::custom)
}

/// The HTTP listen address: an address, never `off`.
fn http_addr<'de, D: serde::Deserializer<'de>>(d: D) -> Result<SocketAddr, D::Error> {
    let text = String::deserialize(d)?;
    text.parse().map_err(|_| {
        serde::de::Error::custom(format!("{text:?} is not an address like 127.0.0.1:8400"))
    })
}

/// A value of an environment variable, parsed for its field.
trait FromEnv: Sized {
    fn from_env(v: String) -> Result<Self, String>;
}

macro_rules! from_env_parsed {
    ($($t:ty),*) => {$(
        impl FromEnv for $t {
            fn from_env(v: String) -> Result<Self, String> {
                v.parse().map_err(|_| format!("{v:?} is not a valid number"))
            }
        }
    )*};
}
from_env_parsed!(u32, u64, usize, f64);

impl FromEnv for bool {
    fn from_env(v: String) -> Result<Self, String> {
        match v.as_str() {
            "true" | "1" | "on" => Ok(true),
            "false" | "0" | "off" => Ok(false),
            _ => Err(format!("{v:?}: use true or false")),
        }
    }
}

impl FromEnv for String {
    fn from_env(v: String) -> Result<Self, String> {
        Ok(v)
    }
}

impl FromEnv for PathBuf {
    fn from_env(v: String) -> Result<Self, String> {
        Ok(PathBuf::from(v))
    }
}

impl FromEnv for Option<PathBuf> {
    fn from_env(v: String) -> Result<Self, String> {
        Ok(Some(PathBuf::from(v)))
    }
}

/// An empty value unsets an optional text (a URL, a schema).
impl FromEnv for Option<String> {
    fn from_env(v: String) -> Result<Self, String> {
        Ok(Some(v).filter(|v| !v.is_empty()))
    }
}

impl FromEnv for Option<ServiceUrl> {
    fn from_env(v: String) -> Result<Self, String> {
        Ok(Some(v).filter(|v| !v.is_empty()).map(ServiceUrl))
    }
}

impl FromEnv for SocketAddr {
    fn from_env(v: String) -> Result<Self, String> {
        v.parse()
            .map_err(|_| format!("{v:?} is not an address like 127.0.0.1:8400"))
    }
}

impl FromEnv for Listen {
    fn from_env(v: String) -> Result<Self, String> {
        v.parse()
    }
}

impl FromEnv for LogFormat {
    fn from_env(v: String) -> Result<Self, String> {
        v.parse()
    }
}

/// The environment layer: each `FLEETKEY_*` variable and the field it sets.
/// (The names are not the field paths, `FLEETKEY_RATE_LIMIT_PER_TOKEN` sets
/// `rate_limit.per_token_per_sec`, and other `FLEETKEY_*` variables are not
/// configuration, so the table is written out.)
macro_rules! env_layer {
    ($config:ident, $get:ident, { $($var:literal => $($field:ident).+),* $(,)? }) => {{
        /// Every variable the layer reads.
        const VARS: &[&str] = &[$($var),*];
        $(
            if let Some(v) = $get($var) {
                $config.$($field).+ = FromEnv::from_env(v).map_err(|p| {
                    err(concat!($var, " (", stringify!($($field).+), ")"), p)
                })?;
            }
        )*
        VARS
    }};
}

/// Rate limits (GCRA).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RateLimitConfig {
    /// Requests per second per token.
    pub per_token_per_sec: u32,
    /// Requests per second for the whole instance.
    pub global_per_sec: u32,
    /// Requests per second from one source address (IPv4, or IPv6 /64) that
    /// carry no valid cached token: missing, unknown, expired or revoked tokens,
    /// tokens not looked up for a while, and routes without a token. Checked
    /// before any store lookup; a burst of five seconds' worth is allowed.
    pub unauthenticated_per_source_per_sec: u32,
    /// Burst allowance, as seconds of quota.
    pub burst_secs: u32,
    /// Tighten the global limit when the error rate rises.
    pub adaptive: bool,
    /// Error ratio (5xx and 422 over all responses, per second) that triggers it.
    pub adaptive_error_ratio: f64,
    /// Fraction of the global limit kept while tightened.
    pub adaptive_factor: f64,
}

impl Default for RateLimitConfig {
    fn default() -> Self {
        Self {
            per_token_per_sec: 50_000,
            global_per_sec: 200_000,
            unauthenticated_per_source_per_sec: 20,
            burst_secs: 1,
            adaptive: true,
            adaptive_error_ratio: 0.5,
            adaptive_factor: 0.25,
        }
    }
}

/// Every setting with its default and a comment, as TOML (`fleetkey config
/// defaults`); parsing it gives [`Config::default`] (a test checks).
pub const DEFAULTS_TOML: &str = include_str!("defaults.toml");

/// Everything `fleetkey serve` can be told.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Listen address.
    #[serde(deserialize_with = "http_addr")]
    pub listen: SocketAddr,
    /// Data directory.
    pub data_dir: PathBuf,
    /// TLS certificate chain (PEM); TLS is on when this and `tls_key` are set.
    pub tls_cert: Option<PathBuf>,
    /// TLS private key (PEM).
    pub tls_key: Option<PathBuf>,
    /// Largest request body, bytes (413 beyond).
    pub max_body_bytes: usize,
    /// Largest request body on routes that need no token (onboarding, device
    /// routes), bytes (413 beyond).
    pub max_unauthenticated_body_bytes: usize,
    /// Seconds a client has to send a whole request head (or a TLS handshake) from
    /// its first byte.
    pub http_header_timeout_secs: u64,
    /// Seconds an HTTP connection with no request in flight is kept open.
    pub http_idle_timeout_secs: u64,
    /// Seconds a client has to send a whole request body once its handler starts
    /// reading it (408 beyond).
    pub http_body_timeout_secs: u64,
    /// Most HTTP connections open at once (kept to half the open-file limit);
    /// connections beyond it are closed as they are accepted.
    pub http_max_connections: usize,
    /// Most items in one batch request.
    pub max_batch_items: usize,
    /// Rate limits.
    pub rate_limit: RateLimitConfig,
    /// Log format.
    #[serde(deserialize_with = "from_text")]
    pub log_format: LogFormat,
    /// One log line per HTTP request (target `fleetkey::access`, level info):
    /// method, route template, status, latency, request id, token id.
    pub access_log: bool,
    /// OpenTelemetry collector (OTLP over HTTP, protobuf): spans are posted to
    /// `<otlp_endpoint>/v1/traces`. Unset, no trace is made or sent
    /// (docs/operations.md, "Traces"). Headers for the collector (an API key) come
    /// from `OTEL_EXPORTER_OTLP_HEADERS`.
    pub otlp_endpoint: Option<ServiceUrl>,
    /// Fraction of new traces kept, 0 to 1 (default 1: every request). A request
    /// that continues a caller's trace follows the caller's decision.
    pub trace_sample_ratio: f64,
    /// Whether a request's W3C `traceparent` (HTTP header, gRPC metadata)
    /// continues the caller's trace. Turn off where callers are not trusted to
    /// choose what is traced.
    pub trace_accept_parent: bool,
    /// Seconds between policy runs (rotation by age, overlap expiry).
    pub scheduler_interval_secs: u64,
    /// Device listener address (Noise sessions over TCP); `off` disables it.
    #[serde(deserialize_with = "from_text")]
    pub device_listen: Listen,
    /// New device connections allowed per source address (IPv6 grouped by /64) per minute.
    pub device_connections_per_minute: u32,
    /// Most device handshakes in progress at once.
    pub max_concurrent_handshakes: usize,
    /// Seconds a device session may stay silent before the server closes it
    /// (devices send telemetry or an empty keepalive more often than this).
    pub device_idle_timeout_secs: u64,
    /// UDP address for constrained devices' frames; `off` disables it.
    #[serde(deserialize_with = "from_text")]
    pub device_udp_listen: Listen,
    /// gRPC address (docs/grpc.md; TLS, limits and timeouts as the HTTP
    /// listener's); `off` disables it.
    #[serde(deserialize_with = "from_text")]
    pub grpc_listen: Listen,
    /// Where verified device telemetry is appended as JSON lines (default
    /// `<data_dir>/telemetry.jsonl`).
    pub telemetry_file: Option<PathBuf>,
    /// Publish telemetry to this MQTT broker (`mqtt://host:port`) instead of the file;
    /// topics `fleetkey/<fleet>/<device id>/telemetry`.
    pub telemetry_mqtt_url: Option<ServiceUrl>,
    /// The store: unset or `sqlite://` for the embedded SQLite store in
    /// `data_dir`; `postgres://user@host:port/db` for PostgreSQL, shared by several
    /// instances.
    pub store_url: Option<ServiceUrl>,
    /// Connections each instance keeps to PostgreSQL (default 16).
    pub store_pool_size: u32,
    /// How long a request waits for a PostgreSQL connection before it fails with
    /// 503 (milliseconds, default 2,000): the bound on a request's wait while
    /// PostgreSQL is unreachable.
    pub store_wait_ms: u64,
    /// PostgreSQL schema for every table (created if needed); default the
    /// connection's (`public`).
    pub store_schema: Option<String>,
    /// Redis for coordination between instances (`redis://host:port/db`): the
    /// instance-name lease, the shared global rate limit and cache invalidation.
    pub redis_url: Option<ServiceUrl>,
    /// Prefix of every Redis key and channel (several deployments can share one
    /// Redis; default `fleetkey`).
    pub redis_prefix: String,
    /// This instance's name, unique among the instances sharing a database: it
    /// names the instance's nonce leases (default `embedded`).
    pub instance_name: String,
    /// How many instances share the global rate limit; each keeps this share of it
    /// while Redis is unreachable (default 1).
    pub instances: u32,
    /// The file these settings were read from (`--config`), if any: scheduled
    /// backups include it. Not a setting.
    #[serde(skip)]
    pub source_file: Option<PathBuf>,
    /// Where the server writes its scheduled backups (docs/operations.md,
    /// "Backups"); unset, it takes none.
    pub backup_dir: Option<PathBuf>,
    /// Seconds between scheduled backups (60 to 86400; default 1800).
    pub backup_interval_secs: u64,
    /// Scheduled backups kept; older ones are deleted (default 48).
    pub backup_keep: u32,
    /// Who can open the backups: `fk1r:` recipients or files holding one,
    /// comma-separated (1 to 16; required with `backup_dir`).
    pub backup_recipients: String,
    /// The mounts at which the Vault Transit door answers, comma-separated
    /// (default `transit`: `/v1/transit/…`; a second name maps the same
    /// keyrings under another prefix; empty closes the door).
    pub transit_mounts: String,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8400)),
            data_dir: PathBuf::from("./fleetkey-data"),
            tls_cert: None,
            tls_key: None,
            max_body_bytes: 16 * 1024 * 1024,
            max_unauthenticated_body_bytes: 64 * 1024,
            http_header_timeout_secs: 10,
            http_idle_timeout_secs: 60,
            http_body_timeout_secs: 30,
            http_max_connections: 4096,
            max_batch_items: 10_000,
            rate_limit: RateLimitConfig::default(),
            log_format: LogFormat::Auto,
            access_log: true,
            otlp_endpoint: None,
            trace_sample_ratio: 1.0,
            trace_accept_parent: true,
            scheduler_interval_secs: 60,
            device_listen: Listen::On(SocketAddr::from(([127, 0, 0, 1], 8401))),
            device_connections_per_minute: 10,
            max_concurrent_handshakes: 256,
            device_idle_timeout_secs: 60,
            device_udp_listen: Listen::On(SocketAddr::from(([127, 0, 0, 1], 8402))),
            grpc_listen: Listen::On(SocketAddr::from(([127, 0, 0, 1], 8403))),
            telemetry_file: None,
            telemetry_mqtt_url: None,
            store_url: None,
            store_pool_size: 16,
            store_wait_ms: 2_000,
            store_schema: None,
            redis_url: None,
            redis_prefix: "fleetkey".into(),
            instance_name: "embedded".into(),
            instances: 1,
            source_file: None,
            backup_dir: None,
            backup_interval_secs: 1800,
            backup_keep: 48,
            backup_recipients: String::new(),
            transit_mounts: crate::api::transit::DEFAULT_MOUNT.into(),
        }
    }
}

impl Config {
    /// The Vault Transit door's mounts (`transit_mounts`, split and trimmed).
    pub fn transit_mount_list(&self) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        for m in self.transit_mounts.split(',').map(str::trim) {
            if !m.is_empty() && !out.iter().any(|o| o == m) {
                out.push(m.to_owned());
            }
        }
        out
    }

    /// The PostgreSQL URL when `store_url` names PostgreSQL; None for the
    /// embedded SQLite store (unset or `sqlite://`).
    pub fn postgres_url(&self) -> Option<&str> {
        self.store_url
            .as_ref()
            .map(ServiceUrl::expose)
            .filter(|u| *u != "sqlite://")
    }

    /// The HTTP listener's limits, the connection cap kept to half of `nofile`
    /// (the open-file limit).
    pub fn http_limits(&self, nofile: Option<u64>) -> crate::api::http::HttpLimits {
        use std::time::Duration;
        crate::api::http::HttpLimits {
            header_timeout: Duration::from_secs(self.http_header_timeout_secs),
            idle_timeout: Duration::from_secs(self.http_idle_timeout_secs),
            max_connections: crate::api::http::effective_max_connections(
                self.http_max_connections,
                nofile,
            ),
            shutdown_grace: Duration::from_secs(30),
        }
    }

    /// Defaults, then `file` (if any), then the environment; validated.
    pub fn load(file: Option<&Path>) -> Result<Self, ConfigError> {
        let mut c = match file {
            Some(p) => Self::from_file(p)?,
            None => Config::default(),
        };
        c.source_file = file.map(Path::to_path_buf);
        c.apply_env(|k| std::env::var(k).ok())?;
        c.validate()?;
        Ok(c)
    }

    /// Defaults, then `path` (no environment, not validated): an error names
    /// the file, the line and the key.
    pub fn from_file(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| err("--config", format!("{}: {e}", path.display())))?;
        Self::from_toml(&text, &path.display().to_string())
    }

    /// Defaults, then the TOML `text` read from `name` (for errors).
    pub fn from_toml(text: &str, name: &str) -> Result<Self, ConfigError> {
        toml::from_str::<Config>(text).map_err(|e| {
            let msg = e.message().to_owned();
            let at = e
                .span()
                .and_then(|s| text.get(..s.start))
                .map(|before| {
                    // The line the span starts on (1-based).
                    let line = before.matches('\n').count() + 1;
                    // The key on that line, when it has one.
                    let key = text
                        .lines()
                        .nth(line - 1)
                        .and_then(|l| l.split_once('='))
                        .map(|(k, _)| format!(" ({})", k.trim()))
                        .unwrap_or_default();
                    format!("{name} line {line}{key}")
                })
                .unwrap_or_else(|| name.to_owned());
            err(&at, msg)
        })
    }

    /// Applies `FLEETKEY_*` overrides read through `get`; returns the names of
    /// every variable it reads.
    pub fn apply_env(
        &mut self,
        get: impl Fn(&str) -> Option<String>,
    ) -> Result<&'static [&'static str], ConfigError> {
        Ok(env_layer!(self, get, {
            "FLEETKEY_LISTEN" => listen,
            "FLEETKEY_DEVICE_LISTEN" => device_listen,
            "FLEETKEY_DEVICE_CONNECTIONS_PER_MINUTE" => device_connections_per_minute,
            "FLEETKEY_MAX_CONCURRENT_HANDSHAKES" => max_concurrent_handshakes,
            "FLEETKEY_DEVICE_UDP_LISTEN" => device_udp_listen,
            "FLEETKEY_GRPC_LISTEN" => grpc_listen,
            "FLEETKEY_DEVICE_IDLE_SECS" => device_idle_timeout_secs,
            "FLEETKEY_TELEMETRY_MQTT_URL" => telemetry_mqtt_url,
            "FLEETKEY_REDIS_URL" => redis_url,
            "FLEETKEY_STORE_URL" => store_url,
            "FLEETKEY_STORE_POOL_SIZE" => store_pool_size,
            "FLEETKEY_STORE_WAIT_MS" => store_wait_ms,
            "FLEETKEY_STORE_SCHEMA" => store_schema,
            "FLEETKEY_REDIS_PREFIX" => redis_prefix,
            "FLEETKEY_INSTANCE_NAME" => instance_name,
            "FLEETKEY_INSTANCES" => instances,
            "FLEETKEY_TELEMETRY_FILE" => telemetry_file,
            "FLEETKEY_DATA_DIR" => data_dir,
            "FLEETKEY_TLS_CERT" => tls_cert,
            "FLEETKEY_TLS_KEY" => tls_key,
            "FLEETKEY_HTTP_HEADER_TIMEOUT_SECS" => http_header_timeout_secs,
            "FLEETKEY_HTTP_IDLE_TIMEOUT_SECS" => http_idle_timeout_secs,
            "FLEETKEY_HTTP_BODY_TIMEOUT_SECS" => http_body_timeout_secs,
            "FLEETKEY_HTTP_MAX_CONNECTIONS" => http_max_connections,
            "FLEETKEY_MAX_UNAUTHENTICATED_BODY_BYTES" => max_unauthenticated_body_bytes,
            "FLEETKEY_MAX_BODY_BYTES" => max_body_bytes,
            "FLEETKEY_RATE_LIMIT_PER_TOKEN" => rate_limit.per_token_per_sec,
            "FLEETKEY_RATE_LIMIT_UNAUTHENTICATED" => rate_limit.unauthenticated_per_source_per_sec,
            "FLEETKEY_RATE_LIMIT_GLOBAL" => rate_limit.global_per_sec,
            "FLEETKEY_LOG_FORMAT" => log_format,
            "FLEETKEY_ACCESS_LOG" => access_log,
            "FLEETKEY_OTLP_ENDPOINT" => otlp_endpoint,
            "FLEETKEY_TRACE_SAMPLE_RATIO" => trace_sample_ratio,
            "FLEETKEY_TRACE_ACCEPT_PARENT" => trace_accept_parent,
            "FLEETKEY_TRANSIT_MOUNTS" => transit_mounts,
            "FLEETKEY_BACKUP_DIR" => backup_dir,
            "FLEETKEY_BACKUP_INTERVAL_SECS" => backup_interval_secs,
            "FLEETKEY_BACKUP_KEEP" => backup_keep,
            "FLEETKEY_BACKUP_RECIPIENTS" => backup_recipients,
        }))
    }

    /// Checks every value (addresses and the log format were checked as they
    /// were read).
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.validate_http()?;
        self.validate_devices()?;
        self.validate_store()?;
        self.validate_coordination()?;
        self.validate_rate_limit()?;
        self.validate_traces()?;
        self.validate_backups()?;
        if self.scheduler_interval_secs == 0 {
            return Err(err("scheduler_interval_secs", "must be at least 1"));
        }
        Ok(())
    }

    /// The HTTP listener: timeouts, connections, bodies, batches, TLS files.
    fn validate_http(&self) -> Result<(), ConfigError> {
        for (key, v) in [
            ("http_header_timeout_secs", self.http_header_timeout_secs),
            ("http_idle_timeout_secs", self.http_idle_timeout_secs),
            ("http_body_timeout_secs", self.http_body_timeout_secs),
        ] {
            if !(1..=3_600).contains(&v) {
                return Err(err(key, format!("{v} is not between 1 and 3600 seconds")));
            }
        }
        if !(1..=1_000_000).contains(&self.http_max_connections) {
            return Err(err(
                "http_max_connections",
                format!("{} is not between 1 and 1000000", self.http_max_connections),
            ));
        }
        if !(1024..=self.max_body_bytes.max(1024)).contains(&self.max_unauthenticated_body_bytes) {
            return Err(err(
                "max_unauthenticated_body_bytes",
                "must be at least 1024 and at most max_body_bytes",
            ));
        }
        if self.tls_cert.is_some() != self.tls_key.is_some() {
            return Err(err("tls_cert/tls_key", "set both for TLS, or neither"));
        }
        for (k, p) in [("tls_cert", &self.tls_cert), ("tls_key", &self.tls_key)] {
            if let Some(p) = p
                && !p.is_file()
            {
                return Err(err(k, format!("{} is not a readable file", p.display())));
            }
        }
        if self.max_body_bytes < 1024 {
            return Err(err("max_body_bytes", "must be at least 1024"));
        }
        if self.max_batch_items == 0 {
            return Err(err("max_batch_items", "must be at least 1"));
        }
        for m in self.transit_mount_list() {
            crate::api::transit::validate_mount(&m).map_err(|e| err("transit_mounts", e))?;
        }
        Ok(())
    }

    /// The device listeners and the telemetry sink.
    fn validate_devices(&self) -> Result<(), ConfigError> {
        if self.device_connections_per_minute == 0 || self.max_concurrent_handshakes == 0 {
            return Err(err(
                "device_connections_per_minute/max_concurrent_handshakes",
                "must be at least 1",
            ));
        }
        if !(1..=86_400).contains(&self.device_idle_timeout_secs) {
            return Err(err(
                "device_idle_timeout_secs",
                format!(
                    "{} is not between 1 and 86400 seconds",
                    self.device_idle_timeout_secs
                ),
            ));
        }
        if let Some(u) = self.telemetry_mqtt_url.as_ref().map(ServiceUrl::expose)
            && let Err(e) = crate::telemetry::mqtt::parse_url(u)
        {
            return Err(err("telemetry_mqtt_url", e.to_string()));
        }
        Ok(())
    }

    /// The store's URL and pool.
    fn validate_store(&self) -> Result<(), ConfigError> {
        if let Some(u) = self.store_url.as_ref().map(ServiceUrl::expose)
            && u != "sqlite://"
            && !(u.starts_with("postgres://") || u.starts_with("postgresql://"))
        {
            let hint = if u.starts_with("sqlite:") {
                "the embedded store lives in data_dir: write sqlite:// and set data_dir to move it"
            } else {
                "use postgres://user@host:port/db, or sqlite:// (or nothing) for the embedded store"
            };
            return Err(err("store_url", format!("{:?}: {hint}", redacted_url(u))));
        }
        if !(1..=1000).contains(&self.store_pool_size) {
            return Err(err("store_pool_size", "must be 1 to 1000".to_owned()));
        }
        if !(100..=60_000).contains(&self.store_wait_ms) {
            return Err(err("store_wait_ms", "must be 100 to 60000".to_owned()));
        }
        Ok(())
    }

    /// Redis and this instance's name among the others.
    fn validate_coordination(&self) -> Result<(), ConfigError> {
        if let Some(u) = self.redis_url.as_ref().map(ServiceUrl::expose)
            && !u.starts_with("redis://")
        {
            return Err(err(
                "redis_url",
                format!("{:?} is not a redis://host:port URL", redacted_url(u)),
            ));
        }
        if self.instance_name.is_empty()
            || self.instance_name.len() > 64
            || !self
                .instance_name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
        {
            return Err(err(
                "instance_name",
                format!("{:?} is not 1-64 of A-Z a-z 0-9 - _ .", self.instance_name),
            ));
        }
        if self.redis_prefix.is_empty()
            || self.redis_prefix.len() > 64
            || self.redis_prefix.bytes().any(|b| !b.is_ascii_graphic())
        {
            return Err(err(
                "redis_prefix",
                "must be 1-64 printable characters without spaces",
            ));
        }
        if !(1..=1000).contains(&self.instances) {
            return Err(err(
                "instances",
                format!("{} is not between 1 and 1000", self.instances),
            ));
        }
        Ok(())
    }

    /// The rate limits.
    fn validate_rate_limit(&self) -> Result<(), ConfigError> {
        let r = &self.rate_limit;
        if r.per_token_per_sec == 0
            || r.global_per_sec == 0
            || r.burst_secs == 0
            || r.unauthenticated_per_source_per_sec == 0
        {
            return Err(err(
                "rate_limit",
                "per_token_per_sec, global_per_sec and burst_secs must be at least 1",
            ));
        }
        if !(0.0..=1.0).contains(&r.adaptive_error_ratio)
            || !(0.0..=1.0).contains(&r.adaptive_factor)
            || r.adaptive_factor == 0.0
        {
            return Err(err(
                "rate_limit",
                "adaptive_error_ratio must be in [0, 1] and adaptive_factor in (0, 1]",
            ));
        }
        Ok(())
    }

    /// The scheduled backups: interval, retention, recipients.
    fn validate_backups(&self) -> Result<(), ConfigError> {
        if !(60..=86_400).contains(&self.backup_interval_secs) {
            return Err(err(
                "backup_interval_secs",
                format!("{} is not between 60 and 86400", self.backup_interval_secs),
            ));
        }
        if !(1..=10_000).contains(&self.backup_keep) {
            return Err(err(
                "backup_keep",
                format!("{} is not between 1 and 10000", self.backup_keep),
            ));
        }
        if self.backup_dir.is_some() || !self.backup_recipients.trim().is_empty() {
            let n = self.backup_recipient_list()?.len();
            if self.backup_dir.is_some() && n == 0 {
                return Err(err(
                    "backup_recipients",
                    "scheduled backups need at least one recipient (fk1r:… from `fleetkey keygen --recipient`)",
                ));
            }
        }
        Ok(())
    }

    /// The backup recipients, each parsed (`fk1r:…`, or a file holding one).
    pub fn backup_recipient_list(
        &self,
    ) -> Result<Vec<fleetkey_crypto::hpke::XWingRecipient>, ConfigError> {
        let mut out = Vec::new();
        for item in self.backup_recipients.split(',').map(str::trim) {
            if item.is_empty() {
                continue;
            }
            let text = if item.starts_with("fk1r:") {
                item.to_owned()
            } else {
                std::fs::read_to_string(item)
                    .map_err(|e| err("backup_recipients", format!("{item}: {e}")))?
            };
            out.push(
                fleetkey_crypto::keyfile::parse_recipient(&text)
                    .map_err(|e| err("backup_recipients", format!("{item}: {e}")))?,
            );
        }
        if out.len() > crate::backup::format::MAX_RECIPIENTS {
            return Err(err(
                "backup_recipients",
                format!("{} recipients (at most 16)", out.len()),
            ));
        }
        Ok(out)
    }

    /// The OTLP endpoint and the sampling ratio.
    fn validate_traces(&self) -> Result<(), ConfigError> {
        if let Some(u) = self.otlp_endpoint.as_ref().map(ServiceUrl::expose) {
            let scheme_ok = u.starts_with("http://") || u.starts_with("https://");
            if !scheme_ok || u.parse::<axum::http::Uri>().is_err() {
                return Err(err(
                    "otlp_endpoint",
                    format!(
                        "{:?} is not an http(s)://host:port URL (the collector's OTLP/HTTP address)",
                        redacted_url(u)
                    ),
                ));
            }
        }
        if !(0.0..=1.0).contains(&self.trace_sample_ratio) {
            return Err(err(
                "trace_sample_ratio",
                format!("{} is not between 0 and 1", self.trace_sample_ratio),
            ));
        }
        Ok(())
    }

    /// Where device telemetry goes.
    pub fn telemetry_path(&self) -> PathBuf {
        self.telemetry_file
            .clone()
            .unwrap_or_else(|| self.data_dir.join("telemetry.jsonl"))
    }

    /// The gRPC address, unless it is off.
    pub fn grpc_listen_addr(&self) -> Option<SocketAddr> {
        self.grpc_listen.addr()
    }

    /// The constrained devices' UDP address, unless it is off.
    pub fn device_udp_listen_addr(&self) -> Option<SocketAddr> {
        self.device_udp_listen.addr()
    }

    /// The device listener address, unless it is off.
    pub fn device_listen_addr(&self) -> Option<SocketAddr> {
        self.device_listen.addr()
    }

    /// The listen address.
    pub fn listen_addr(&self) -> SocketAddr {
        self.listen
    }
}

#[cfg(test)]
mod tests;
