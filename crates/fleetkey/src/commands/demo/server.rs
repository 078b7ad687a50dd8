//! The demo's server: `fleetkey serve` in this process, on a temporary data
//! directory and ports the system picks, or the server at `FLEETKEY_ADDR`.

use crate::error::{CliError, CliResult};
use crate::local::service_error;
use fleetkey_crypto::{aead::Algorithm, envelope::KeyId, keyfile::SymmetricKeyFile};
use fleetkey_server::api::server::{Listeners, serve_on};
use fleetkey_server::config::{Config, Listen};
use fleetkey_server::custody::local::KekSource;
use fleetkey_sim::Endpoints;
use std::sync::Arc;

/// Where the demo runs, and how to stop an in-process server.
pub struct DemoServer {
    /// The endpoints devices and operators use.
    pub endpoints: Endpoints,
    /// An operator token with every scope.
    pub token: zeroize::Zeroizing<String>,
    /// Whether the server runs in this process.
    pub in_process: bool,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<fleetkey_server::Result<()>>>,
    _dir: Option<tempfile::TempDir>,
}

impl DemoServer {
    /// The server at `FLEETKEY_ADDR` (with `FLEETKEY_TOKEN`), its device listener
    /// and UDP port as given, or by default the same host on ports 8401 and 8402.
    pub fn remote(
        addr: &str,
        device_addr: Option<String>,
        udp_addr: Option<String>,
    ) -> CliResult<Self> {
        let token = std::env::var("FLEETKEY_TOKEN")
            .ok()
            .filter(|t| !t.is_empty())
            .ok_or_else(|| {
                CliError::usage("FLEETKEY_ADDR is set but FLEETKEY_TOKEN is not")
                    .hint("the demo needs an admin token: FLEETKEY_TOKEN=$(cat fleetkey-data/admin.token)")
            })?;
        let host = addr
            .strip_prefix("http://")
            .ok_or_else(|| {
                CliError::usage(format!(
                    "FLEETKEY_ADDR {addr:?}: the demo talks plain http:// (run it next to the server)"
                ))
            })?
            .trim_end_matches('/')
            .rsplit_once(':')
            .map_or_else(
                || addr.trim_start_matches("http://").to_owned(),
                |(h, _)| h.to_owned(),
            );
        Ok(Self {
            endpoints: Endpoints {
                http: addr.trim_end_matches('/').to_owned(),
                sessions: device_addr.unwrap_or_else(|| format!("{host}:8401")),
                frames: udp_addr.unwrap_or_else(|| format!("{host}:8402")),
            },
            token: zeroize::Zeroizing::new(token),
            in_process: false,
            stop: None,
            task: None,
            _dir: None,
        })
    }

    /// A fresh server in this process with the default settings except: a
    /// temporary data directory (removed afterwards) with a generated
    /// key-encryption key inside it, and loopback ports picked by the system.
    pub async fn in_process() -> CliResult<Self> {
        let dir = tempfile::Builder::new()
            .prefix("fleetkey-demo-")
            .tempdir()
            .map_err(|e| CliError::io("temporary directory", &e))?;
        let kek_path = dir.path().join("demo.kek");
        let kek = SymmetricKeyFile::generate(
            Algorithm::Aes256GcmSiv,
            KeyId::new("fleetkey-demo-kek").map_err(|e| CliError::refused(e.to_string()))?,
        )
        .map_err(|e| CliError::refused(e.to_string()))?;
        crate::keyfile::write_secret_file(&kek_path, kek.to_text().as_bytes(), false)?;
        let config = Config {
            data_dir: dir.path().join("data"),
            listen: ([127, 0, 0, 1], 0).into(),
            device_listen: Listen::On(([127, 0, 0, 1], 0).into()),
            device_udp_listen: Listen::On(([127, 0, 0, 1], 0).into()),
            grpc_listen: Listen::Off,
            ..Config::default()
        };
        std::fs::create_dir_all(&config.data_dir)
            .map_err(|e| CliError::io(config.data_dir.display(), &e))?;
        let state = super::super::serve::open_state(
            &config,
            crate::local::CustodySource::Local(KekSource::KeyFile(kek_path)),
        )
        .await?;
        let (_, secret) = state
            .tokens
            .create("demo", "fleetkey-demo", vec!["admin".into()], None)
            .await
            .map_err(service_error)?;
        let listeners = Listeners::bind(&config).map_err(service_error)?;
        let addr = |a: Option<std::net::SocketAddr>, what: &str| {
            a.map(|a| a.to_string())
                .ok_or_else(|| CliError::usage(format!("the demo server has no {what}")))
        };
        let endpoints = Endpoints {
            http: format!("http://{}", addr(listeners.http_addr(), "HTTP address")?),
            sessions: addr(listeners.device_addr(), "device listener")?,
            frames: addr(listeners.udp_addr(), "UDP port")?,
        };
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(serve_with(config, state, listeners, async move {
            let _ = stopped.await;
        }));
        Ok(Self {
            endpoints,
            token: secret,
            in_process: true,
            stop: Some(stop),
            task: Some(task),
            _dir: Some(dir),
        })
    }

    /// Stops an in-process server (drain, flush) and removes its directory.
    pub async fn shutdown(mut self) -> CliResult<()> {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.task.take() {
            t.await
                .map_err(|e| CliError::usage(format!("demo server task: {e}")))?
                .map_err(service_error)?;
        }
        Ok(())
    }
}

async fn serve_with(
    config: Config,
    state: Arc<fleetkey_server::api::AppState>,
    listeners: Listeners,
    stop: impl Future<Output = ()> + Send + 'static,
) -> fleetkey_server::Result<()> {
    serve_on(&config, state, listeners, stop).await
}
