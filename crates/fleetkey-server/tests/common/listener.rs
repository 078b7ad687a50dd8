//! A device listener on the test services, with a fleet `hub`, onboarded devices
//! and clients for them (the listener and session-pattern tests).

use fleetkey_client::proto::{self, ServerMsg};
use fleetkey_client::{Backoff, ClientConfig, DeviceClient, RecordCache};
use fleetkey_crypto::credential::DeviceKeys;
use fleetkey_crypto::ed25519::Ed25519Signer;
use fleetkey_crypto::x25519::X25519Secret;
use fleetkey_server::api::AppState;
use fleetkey_server::api::listener::{DeviceListener, ListenerConfig};
use fleetkey_server::fleet::{FactoryRequest, FleetService, onboarding_message};
use fleetkey_server::store::Store;
use fleetkey_server::telemetry::JsonLinesSink;
use fleetkey_session::Keypair;
use serde_json::json;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

pub struct Harness {
    pub dir: tempfile::TempDir,
    pub store: Arc<dyn Store>,
    pub fleets: Arc<FleetService>,
    pub state: Arc<AppState>,
    pub listener: Arc<DeviceListener>,
    pub addr: SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    run: Option<tokio::task::JoinHandle<()>>,
}

impl Harness {
    pub async fn start(connections_per_minute: u32) -> Self {
        Self::start_with(ListenerConfig {
            connections_per_minute,
            ..Default::default()
        })
        .await
    }

    pub async fn start_with(config: ListenerConfig) -> Self {
        let dir = tempfile::TempDir::new().unwrap();
        let services = super::services(dir.path()).await;
        Self::start_on(dir, services, config).await
    }

    /// A listener on `services` (whose store lives in `dir`), with fleet `hub`.
    pub async fn start_on(
        dir: tempfile::TempDir,
        services: super::Services,
        config: ListenerConfig,
    ) -> Self {
        let super::Services {
            store,
            fleets,
            state,
        } = services;
        let listener = DeviceListener::new(
            state.clone(),
            config,
            Arc::new(JsonLinesSink::open(&dir.path().join("telemetry.jsonl")).unwrap()),
        )
        .await
        .unwrap();
        let sock = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = sock.local_addr().unwrap();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let run = tokio::spawn(listener.clone().run(sock, async move {
            let _ = stopped.await;
        }));
        let fleet = fleets
            .registry
            .create_fleet("ops", &"hub".parse().unwrap(), None)
            .await
            .unwrap();
        assert!(!fleet.issuer_public_key.is_empty());
        Self {
            dir,
            store,
            fleets,
            state,
            listener,
            addr,
            stop: Some(stop),
            run: Some(run),
        }
    }

    pub async fn fleet_key(&self) -> [u8; 32] {
        let f = self.fleets.registry.fleet("hub").await.unwrap();
        hex::decode(f.issuer_public_key)
            .unwrap()
            .try_into()
            .unwrap()
    }

    /// A provisioned, onboarded device (active from its first session): (id,
    /// Noise key, signing key).
    pub async fn device(&self, hw: &str) -> (String, Keypair, Ed25519Signer) {
        let x = X25519Secret::generate().unwrap();
        let noise = Keypair::from_private(*x.expose_secret()).unwrap();
        let sign = Ed25519Signer::generate().unwrap();
        let p = self
            .fleets
            .registry
            .provision(
                "jig",
                FactoryRequest {
                    fleet: "hub".into(),
                    hardware_id: hw.into(),
                    model: "m".into(),
                    batch: "b".into(),
                    station: "s".into(),
                    keys: DeviceKeys {
                        x25519: x.public_key().unwrap(),
                        ed25519: sign.public_key(),
                        ml_kem_768: None,
                        ml_dsa_65: None,
                    },
                    test_results: json!({}),
                },
            )
            .await
            .unwrap();
        let id = p.device.id.clone();
        let c = self.fleets.onboarding.challenge(&id).await.unwrap();
        self.fleets
            .onboarding
            .onboard(
                &p.device.birth_credential,
                &c.nonce,
                &sign.sign(&onboarding_message(&id, &c.nonce, c.issued_at)),
            )
            .await
            .unwrap();
        (id, noise, sign)
    }

    /// The server's key record, verified through a client cache.
    pub async fn server_record(&self) -> fleetkey_crypto::record::KeyRecord {
        let mut cache = RecordCache::new(self.fleets.directory().public_key());
        let token = self
            .fleets
            .directory()
            .record("fleetkey-server")
            .await
            .unwrap();
        cache.insert(&token, super::now()).unwrap().clone()
    }

    pub fn client(
        &self,
        id: &str,
        noise: &Keypair,
        sign: &Ed25519Signer,
        state: &str,
    ) -> DeviceClient {
        let mut config = ClientConfig::new(self.addr.to_string());
        config.backoff = Backoff {
            base: Duration::from_millis(10),
            max: Duration::from_millis(50),
            max_attempts: 3,
        };
        self.client_with(config, id, noise, sign, state)
    }

    /// A client with `config`, the device's keys (copied) and its state file.
    pub fn client_with(
        &self,
        config: ClientConfig,
        id: &str,
        noise: &Keypair,
        sign: &Ed25519Signer,
        state: &str,
    ) -> DeviceClient {
        DeviceClient::new(
            config,
            id,
            Keypair::from_private(*noise.expose_private()).unwrap(),
            Ed25519Signer::from_seed(fleetkey_crypto::secret::SecretBytes::new(
                *sign.expose_seed(),
            ))
            .unwrap(),
            self.dir.path().join(state),
        )
        .unwrap()
    }

    pub fn metrics(&self) -> String {
        self.state.metrics.render(&self.state.keys, false)
    }

    pub async fn stop(mut self) {
        let _ = self.stop.take().unwrap().send(());
        self.run.take().unwrap().await.unwrap();
    }
}

pub async fn next_command(s: &mut fleetkey_client::DeviceSession<'_>) -> proto::CommandWire {
    match s.recv().await.unwrap() {
        ServerMsg::Command(c) => c,
        other => panic!("expected a command, got {other:?}"),
    }
}
