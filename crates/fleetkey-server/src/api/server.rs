//! Running the API: listener (plain or TLS), the policy scheduler, graceful
//! shutdown (stop accepting, finish in-flight requests, then flush usage counts and
//! give back unused nonce reservations).

use super::supervisor::Supervisor;
use super::{AppState, metrics::Metrics, ratelimit::RateLimits, router};
use crate::config::Config;
use crate::error::{Error, Result};
use crate::keys::KeyService;
use crate::tokens::TokenService;
use std::future::Future;
use std::sync::Arc;

/// Selects aws-lc-rs as the process's rustls provider (the same library as the
/// rest of fleetkey). Needed because more than one provider is compiled in.
pub fn install_crypto_provider() {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
}

/// The shared state for `config`.
pub fn state(
    config: &Config,
    keys: Arc<KeyService>,
    tokens: Arc<TokenService>,
    fleets: Arc<crate::fleet::FleetService>,
) -> Result<Arc<AppState>> {
    let metrics = Metrics::new().map_err(|e| Error::Internal(format!("metrics: {e}")))?;
    if let Some(c) = keys.custody_collector() {
        metrics
            .register(c)
            .map_err(|e| Error::Internal(format!("metrics: {e}")))?;
    }
    let aws = Arc::new(crate::tokens::aws::AwsKeys::new(
        tokens.clone(),
        keys.custody(),
    ));
    Ok(Arc::new(AppState {
        aws,
        kms_refusals: Default::default(),
        keys,
        tokens,
        fleets,
        limits: RateLimits::with_instances(config.rate_limit.clone(), config.instances),
        metrics,
        max_batch_items: config.max_batch_items,
        ingest: std::sync::OnceLock::new(),
        coord: std::sync::OnceLock::new(),
        body_timeout: std::time::Duration::from_secs(config.http_body_timeout_secs),
        max_unauthenticated_body_bytes: config.max_unauthenticated_body_bytes,
        transit_mounts: config.transit_mount_list(),
        device_idle_secs: config.device_idle_timeout_secs,
        access_log: config.access_log,
        recent_telemetry: Default::default(),
    }))
}

/// Receive buffer asked for on the device UDP socket (the kernel may give less:
/// `net.core.rmem_max`; the size granted is logged at start).
pub const UDP_RECV_BUFFER: usize = 8 * 1024 * 1024;

/// While Redis is unreachable, how often an instance re-reads what it cached
/// about other instances' changes (keyrings, tokens, devices) from the database:
/// rotations and revocations made elsewhere then take effect within this, not
/// when Redis returns.
pub const DEGRADED_REFRESH: std::time::Duration = std::time::Duration::from_secs(2);

/// The sockets a server listens on, bound before it starts (so a caller that asked
/// for port 0 learns the ports: `fleetkey demo`, tests).
#[derive(Debug)]
pub struct Listeners {
    http: std::net::TcpListener,
    devices: Option<std::net::TcpListener>,
    udp: Option<std::net::UdpSocket>,
    grpc: Option<std::net::TcpListener>,
}

impl Listeners {
    /// Binds the HTTP address, the device listener and the UDP frame port of
    /// `config` (the last two unless they are off).
    pub fn bind(config: &Config) -> Result<Self> {
        let bind_err = |what: String| {
            move |e: std::io::Error| Error::Io {
                path: what,
                source: e,
            }
        };
        let addr = config.listen_addr();
        let http = std::net::TcpListener::bind(addr).map_err(bind_err(addr.to_string()))?;
        let devices = config
            .device_listen_addr()
            .map(|a| {
                std::net::TcpListener::bind(a).map_err(bind_err(format!("device listener {a}")))
            })
            .transpose()?;
        let udp = config
            .device_udp_listen_addr()
            .map(|a| std::net::UdpSocket::bind(a).map_err(bind_err(format!("device UDP {a}"))))
            .transpose()?;
        let grpc = config
            .grpc_listen_addr()
            .map(|a| std::net::TcpListener::bind(a).map_err(bind_err(format!("gRPC listener {a}"))))
            .transpose()?;
        if let Some(u) = &udp {
            // Frames arrive in bursts (a fleet waking up, a busy machine delaying the
            // receive loop): a deep receive queue keeps the kernel from dropping them.
            // The kernel caps the size at net.core.rmem_max.
            let sock = socket2::SockRef::from(u);
            if let Err(e) = sock.set_recv_buffer_size(UDP_RECV_BUFFER) {
                tracing::warn!(error = %e, "could not enlarge the device UDP receive buffer");
            }
        }
        for r in [
            Some(http.set_nonblocking(true)),
            devices.as_ref().map(|d| d.set_nonblocking(true)),
            udp.as_ref().map(|u| u.set_nonblocking(true)),
            grpc.as_ref().map(|g| g.set_nonblocking(true)),
        ]
        .into_iter()
        .flatten()
        {
            r.map_err(bind_err("listener".into()))?;
        }
        Ok(Self {
            http,
            devices,
            udp,
            grpc,
        })
    }

    /// The bound HTTP address.
    pub fn http_addr(&self) -> Option<std::net::SocketAddr> {
        self.http.local_addr().ok()
    }

    /// The bound gRPC address.
    pub fn grpc_addr(&self) -> Option<std::net::SocketAddr> {
        self.grpc.as_ref().and_then(|g| g.local_addr().ok())
    }

    /// The bound device listener address.
    pub fn device_addr(&self) -> Option<std::net::SocketAddr> {
        self.devices.as_ref().and_then(|d| d.local_addr().ok())
    }

    /// The bound UDP frame address.
    pub fn udp_addr(&self) -> Option<std::net::SocketAddr> {
        self.udp.as_ref().and_then(|u| u.local_addr().ok())
    }
}

/// Serves until `shutdown` completes, then drains and flushes.
pub async fn serve(
    config: &Config,
    state: Arc<AppState>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<()> {
    serve_on(config, state, Listeners::bind(config)?, shutdown).await
}

/// [`serve`] on sockets already bound. The server is one supervised whole: every
/// background task runs under one [`Supervisor`] (a task that dies is noticed),
/// and shutdown stops them all, draining the device sessions, before the usage
/// counts are flushed and unused nonces returned.
pub async fn serve_on(
    config: &Config,
    state: Arc<AppState>,
    listeners: Listeners,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<()> {
    let sup = Supervisor::new();
    sup.spawn(
        "scheduler",
        scheduler(
            state.clone(),
            std::time::Duration::from_secs(config.scheduler_interval_secs),
        ),
    );
    if let Some(schedule) = backup_schedule(config)? {
        let m = &state.metrics;
        m.backup_scheduled_since
            .store(state.fleets.now(), std::sync::atomic::Ordering::Relaxed);
        let report = crate::backup::schedule::Reporting {
            last_success: m.backup_last_success.clone(),
            attempts: m.backups.clone(),
        };
        tracing::info!(dir = %schedule.dir.display(), interval_secs = schedule.interval.as_secs(), keep = schedule.keep, "scheduled backups");
        let fleets = state.fleets.clone();
        sup.spawn(
            "backups",
            crate::backup::schedule::run(schedule, report, move || fleets.now(), sup.token()),
        );
    }
    // One shutdown signal for the HTTP server and every background task.
    let shutdown = {
        let token = sup.token();
        async move {
            shutdown.await;
            token.cancel();
        }
    };
    // One telemetry sink for sessions and frames.
    let sink: Arc<dyn crate::telemetry::TelemetrySink> =
        Arc::new(crate::telemetry::recent::Remembering::new(
            telemetry_sink(config).await?,
            state.recent_telemetry.clone(),
        ));
    let coordination = coordinate(config, &state).await?;
    let ingest = crate::ingest::FrameIngest::new(
        state.fleets.clone(),
        sink.clone(),
        crate::ingest::IngestMetrics {
            frames: state.metrics.device_frames.clone(),
            downlinks: state.metrics.device_downlinks.clone(),
            active: state.metrics.constrained_active.clone(),
        },
    )
    .await?;
    let _ = state.ingest.set(ingest.clone());
    super::caches::wire(
        &state,
        coordination.as_ref().map(|(c, _)| c.clone()),
        &ingest,
        &sup,
    );
    {
        // Refused AWS KMS door signatures: one audit summary a minute, and
        // the last one at shutdown.
        let state = state.clone();
        let stop = sup.token();
        sup.spawn_draining("aws signature refusals", async move {
            let mut tick = tokio::time::interval(super::refusals::SUMMARY_INTERVAL);
            tick.tick().await;
            loop {
                tokio::select! {
                    _ = tick.tick() => super::kms::flush_refusals(&state).await,
                    () = stop.cancelled() => {
                        super::kms::flush_refusals(&state).await;
                        return;
                    }
                }
            }
        });
    }
    sup.spawn_draining("devices seen", devices_seen(state.clone(), sup.token()));
    {
        let sink = sink.clone();
        sup.spawn("telemetry flush", async move {
            let mut tick = tokio::time::interval(crate::telemetry::FLUSH_AFTER);
            loop {
                tick.tick().await;
                if let Err(e) = sink.flush().await {
                    tracing::error!(error = %e, "telemetry flush failed");
                }
            }
        });
    }
    let io = |e: std::io::Error| Error::Io {
        path: config.listen_addr().to_string(),
        source: e,
    };
    if let Some(std_sock) = listeners.udp {
        let sock = tokio::net::UdpSocket::from_std(std_sock).map_err(io)?;
        let rcvbuf = socket2::SockRef::from(&sock)
            .recv_buffer_size()
            .unwrap_or(0);
        tracing::info!(addr = %sock.local_addr().map_err(io)?, receive_buffer = rcvbuf, "constrained devices (UDP frames)");
        sup.spawn_draining(
            "constrained devices (UDP)",
            ingest.run_udp(sock, sup.token().cancelled_owned()),
        );
    }
    if let Some(std_sock) = listeners.devices {
        device_listener(config, &state, std_sock, sink.clone(), &sup).await?;
    }
    if let Some(std_sock) = listeners.grpc {
        let grpc = serve_grpc(config, &state, std_sock, sup.token().cancelled_owned())?;
        sup.spawn_draining("gRPC", grpc);
    }
    let result = serve_http(config, &state, listeners.http, shutdown).await;
    // Everything stops; the device listener ends its sessions (each records its
    // end) first, bounded.
    let grace = crate::api::listener::SESSION_END_GRACE + std::time::Duration::from_secs(1);
    if !sup.shutdown(grace).await {
        tracing::warn!(
            "background tasks did not all stop in time (device sessions may not have recorded their end)"
        );
    }
    if let Some((_, lease)) = coordination {
        lease.release().await;
    }
    if let Err(e) = sink.flush().await {
        tracing::error!(error = %e, "telemetry flush failed");
    }
    state.keys.shutdown().await?;
    tracing::info!("fleetkey stopped; usage counts flushed and unused nonces returned");
    result
}

/// Writes the devices heard from (`last_seen`) every
/// [`crate::fleet::SEEN_FLUSH`] and once more at shutdown; refreshes the
/// `fleetkey_devices_seen` and credential-expiry gauges every 30 s.
async fn devices_seen(state: Arc<AppState>, stop: tokio_util::sync::CancellationToken) {
    let sessions = &state.fleets.sessions;
    let mut tick = tokio::time::interval(crate::fleet::SEEN_FLUSH);
    let mut ticks = 0u32;
    loop {
        let stopping = tokio::select! {
            _ = tick.tick() => false,
            () = stop.cancelled() => true,
        };
        if let Err(e) = sessions.flush_seen().await {
            tracing::warn!(error = %e, "recording when devices were last seen failed; kept for the next try");
        }
        if stopping {
            return;
        }
        if ticks.is_multiple_of(6) {
            match sessions.seen_counts().await {
                Ok(counts) => {
                    let g = &state.metrics.devices_seen;
                    g.reset();
                    for (fleet, n) in counts {
                        for ((window, _), n) in crate::fleet::SEEN_WINDOWS.iter().zip(n) {
                            g.with_label_values(&[fleet.as_str(), window]).set(n);
                        }
                    }
                }
                Err(e) => tracing::warn!(error = %e, "counting the devices seen failed"),
            }
            match state.fleets.registry.credential_expiry().await {
                Ok(counts) => {
                    let m = &state.metrics;
                    m.credentials_expiring.reset();
                    m.credentials_expired.reset();
                    for (fleet, expiring, expired) in counts {
                        m.credentials_expiring
                            .with_label_values(&[fleet.as_str()])
                            .set(expiring);
                        m.credentials_expired
                            .with_label_values(&[fleet.as_str()])
                            .set(expired);
                    }
                }
                Err(e) => tracing::warn!(error = %e, "counting expiring credentials failed"),
            }
        }
        ticks = ticks.wrapping_add(1);
    }
}

/// Coordination with other instances (when Redis is configured): this instance's
/// name leased (a second instance with the same name is refused).
async fn coordinate(
    config: &Config,
    state: &AppState,
) -> Result<Option<(Arc<crate::coord::Coordinator>, crate::coord::InstanceLease)>> {
    let Some(url) = &config.redis_url else {
        return Ok(None);
    };
    let coord = crate::coord::Coordinator::connect(url.expose(), &config.redis_prefix).await?;
    let lease = crate::coord::InstanceLease::acquire_as(
        &coord,
        &format!("instance:{}", config.instance_name),
        crate::coord::OwnerToken::claim(&config.data_dir, &config.instance_name)?,
        std::time::Duration::from_secs(15),
    )
    .await?;
    let _ = state.coord.set(coord.clone());
    tracing::info!(redis = %url, instance = %config.instance_name, "coordinating with other instances through Redis");
    Ok(Some((coord, lease)))
}

/// Starts the device listener (Noise sessions) on `std_sock` under `sup`.
async fn device_listener(
    config: &Config,
    state: &Arc<AppState>,
    std_sock: std::net::TcpListener,
    sink: Arc<dyn crate::telemetry::TelemetrySink>,
    sup: &Supervisor,
) -> Result<()> {
    let listener = crate::api::listener::DeviceListener::new(
        state.clone(),
        crate::api::listener::ListenerConfig {
            connections_per_minute: config.device_connections_per_minute,
            max_concurrent_handshakes: config.max_concurrent_handshakes,
            limits: fleetkey_session::Limits {
                idle_timeout: std::time::Duration::from_secs(config.device_idle_timeout_secs),
                ..crate::api::listener::ListenerConfig::default().limits
            },
        },
        sink,
    )
    .await?;
    let io = |e: std::io::Error| Error::Io {
        path: config.device_listen.to_string(),
        source: e,
    };
    let sock = tokio::net::TcpListener::from_std(std_sock).map_err(io)?;
    let key = fleetkey_crypto::hex_prefix(&listener.public_key());
    tracing::info!(addr = %sock.local_addr().map_err(io)?, static_key = %key, "device listener (Noise IK, XX, IKpsk2+ML-KEM-768)");
    sup.spawn_draining(
        "device listener",
        listener.run(sock, sup.token().cancelled_owned()),
    );
    Ok(())
}

/// Serves the HTTP API (with TLS when configured) until `shutdown`.
async fn serve_http(
    config: &Config,
    state: &Arc<AppState>,
    std_sock: std::net::TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<()> {
    use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
    let app = router(state.clone(), config.max_body_bytes).layer(
        tower::ServiceBuilder::new()
            .layer(SetRequestIdLayer::x_request_id(MakeRequestUuid))
            .layer(
                tower_http::trace::TraceLayer::new_for_http()
                    .make_span_with(crate::observability::spans::http_request),
            )
            .layer(PropagateRequestIdLayer::x_request_id()),
    );
    let io = |e: std::io::Error| Error::Io {
        path: config.listen_addr().to_string(),
        source: e,
    };
    let tls = tls(config)?;
    if let Some(not_after) = config
        .tls_cert
        .as_deref()
        .and_then(crate::api::http::certificate_not_after)
    {
        state.metrics.tls_expiry.set(not_after);
    }
    let nofile = crate::api::http::raise_nofile_limit();
    let limits = config.http_limits(nofile);
    let listener = tokio::net::TcpListener::from_std(std_sock).map_err(io)?;
    tracing::info!(
        addr = %listener.local_addr().map_err(io)?,
        tls = tls.is_some(),
        max_connections = limits.max_connections,
        header_timeout_secs = limits.header_timeout.as_secs(),
        idle_timeout_secs = limits.idle_timeout.as_secs(),
        "fleetkey listening"
    );
    crate::api::http::serve(
        listener,
        tls,
        app,
        limits,
        state.metrics.http.clone(),
        shutdown,
    )
    .await
    .map_err(io)
}

/// The listeners' TLS (both HTTP and gRPC), when the configuration sets it.
fn tls(config: &Config) -> Result<Option<tokio_rustls::TlsAcceptor>> {
    match (&config.tls_cert, &config.tls_key) {
        (Some(cert), Some(key)) => {
            install_crypto_provider();
            crate::api::http::tls_acceptor(cert, key)
                .map(Some)
                .map_err(|e| Error::Io {
                    path: cert.display().to_string(),
                    source: e,
                })
        }
        _ => Ok(None),
    }
}

/// The gRPC listener (docs/grpc.md): the same HTTP serving code as the REST API
/// (TLS, connection cap, header and idle timeouts, graceful shutdown) with the
/// gRPC routes; stops when `shutdown` completes.
fn serve_grpc(
    config: &Config,
    state: &Arc<AppState>,
    std_sock: std::net::TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<impl Future<Output = ()> + Send + 'static> {
    let io = |e: std::io::Error| Error::Io {
        path: format!("gRPC listener {:?}", config.grpc_listen_addr()),
        source: e,
    };
    let tls = tls(config)?;
    let limits = config.http_limits(crate::api::http::raise_nofile_limit());
    let listener = tokio::net::TcpListener::from_std(std_sock).map_err(io)?;
    tracing::info!(addr = %listener.local_addr().map_err(io)?, tls = tls.is_some(), "gRPC listening");
    let app = crate::api::grpc::router(state.clone(), config.max_body_bytes);
    let metrics = state.metrics.http.clone();
    Ok(async move {
        if let Err(e) = crate::api::http::serve(listener, tls, app, limits, metrics, shutdown).await
        {
            tracing::error!(error = %e, "the gRPC listener failed");
        }
    })
}

/// The scheduled backups the configuration asks for (`backup_dir`), if any.
fn backup_schedule(config: &Config) -> Result<Option<crate::backup::schedule::Schedule>> {
    let Some(dir) = &config.backup_dir else {
        return Ok(None);
    };
    let recipients = config
        .backup_recipient_list()
        .map_err(|e| Error::Internal(e.to_string()))?;
    Ok(Some(crate::backup::schedule::Schedule {
        dir: dir.clone(),
        interval: std::time::Duration::from_secs(config.backup_interval_secs),
        keep: config.backup_keep as usize,
        recipients,
        sources: crate::backup::Sources {
            data_dir: config.data_dir.clone(),
            embedded_store: config.postgres_url().is_none(),
            config_file: config.source_file.clone(),
        },
    }))
}

/// The telemetry sink the configuration names: an MQTT broker, or the JSON-lines
/// file in the data directory.
async fn telemetry_sink(config: &Config) -> Result<Arc<dyn crate::telemetry::TelemetrySink>> {
    Ok(match &config.telemetry_mqtt_url {
        Some(url) => {
            let id: [u8; 6] = fleetkey_crypto::rand::array()?;
            let client_id = format!("fleetkey-{}", hex::encode(id));
            let s = crate::telemetry::mqtt::MqttSink::connect(url.expose(), &client_id, "fleetkey")
                .await?;
            tracing::info!(broker = %url, "telemetry to MQTT");
            Arc::new(s)
        }
        None => Arc::new(crate::telemetry::JsonLinesSink::open(
            &config.telemetry_path(),
        )?),
    })
}

/// The scheduler: rotation by age, overlap expiry, usage flush, pruning, key
/// record re-signing and device credential rotation under each fleet's policy,
/// every `interval`, on one instance at a time.
async fn scheduler(state: Arc<AppState>, interval: std::time::Duration) {
    let mut tick = tokio::time::interval(interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        // One instance runs the jobs at a time (a PostgreSQL advisory lock;
        // always this one on the embedded store).
        match state.fleets.leads_scheduler().await {
            Ok(true) => scheduled_jobs(&state).await,
            Ok(false) => {}
            Err(e) => {
                tracing::error!(error = %e, "scheduler leadership check failed; skipping this run");
            }
        }
    }
}

/// One run of the scheduled jobs; each failure is logged and the rest go on.
async fn scheduled_jobs(state: &AppState) {
    let fleets = &state.fleets;
    // Keyrings that fail are logged by the run itself; the rest go on.
    match state.keys.run_policies("scheduler").await {
        Ok(run) => run.actions.iter().for_each(|a| {
            // Rotations are counted by the key service (every rotation, whoever asked).
            if let crate::keys::PolicyAction::Erased { .. } = a {
                state
                    .metrics
                    .keyring_changes
                    .with_label_values(&["erase", "ok"])
                    .inc();
            }
            tracing::info!(action = %a, "policy")
        }),
        Err(e) => tracing::error!(error = %e, "policy run failed"),
    }
    let cutoff = fleets
        .now()
        .saturating_sub(crate::api::listener::SESSION_RETENTION_SECS);
    match fleets.sessions.prune_sessions(cutoff).await {
        Ok(0) => {}
        Ok(n) => tracing::info!(sessions = n, "old device session records pruned"),
        Err(e) => tracing::error!(error = %e, "pruning device session records failed"),
    }
    match fleets.onboarding.prune_challenges().await {
        Ok(0) => {}
        Ok(n) => tracing::info!(challenges = n, "expired onboarding challenges pruned"),
        Err(e) => tracing::error!(error = %e, "pruning onboarding challenges failed"),
    }
    match fleets.directory().refresh("scheduler", 1000).await {
        Ok(0) => {}
        Ok(n) => tracing::info!(records = n, "key records re-signed"),
        Err(e) => tracing::error!(error = %e, "key record refresh failed"),
    }
    match fleets.commands.run_rotation_policy("scheduler").await {
        Ok(0) => {}
        Ok(n) => tracing::info!(devices = n, "credential rotation requested by policy"),
        Err(e) => tracing::error!(error = %e, "credential rotation policy failed"),
    }
}
