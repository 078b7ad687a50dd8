//! The service stack on a temporary data directory, for integration tests.

#![allow(clippy::unwrap_used, dead_code)]

pub mod api;
pub mod keyrings;
pub mod listener;
pub mod vault;

use fleetkey_server::api::{AppState, server};
use fleetkey_server::config::Config;
use fleetkey_server::custody::local::{KekSource, LocalCustody};
use fleetkey_server::fleet::FleetService;
use fleetkey_server::keys::{KeyConfig, KeyService};
use fleetkey_server::store::sqlite::SqliteStore;
use fleetkey_server::{clock::SystemClock, tokens::TokenService};
use std::sync::Arc;

/// The store the tests run on: SQLite in `dir` by default; PostgreSQL
/// (`FLEETKEY_TEST_POSTGRES_URL`) when `FLEETKEY_TEST_STORE=postgres`, in a schema
/// of its own per `dir` (named in `dir/pg_schema`, so reopening `dir` reopens it).
pub async fn test_store(dir: &std::path::Path) -> Arc<dyn fleetkey_server::store::Store> {
    if std::env::var("FLEETKEY_TEST_STORE").as_deref() == Ok("postgres") {
        let url = std::env::var("FLEETKEY_TEST_POSTGRES_URL")
            .expect("FLEETKEY_TEST_STORE=postgres needs FLEETKEY_TEST_POSTGRES_URL");
        std::fs::create_dir_all(dir).unwrap();
        let marker = dir.join("pg_schema");
        let schema = match std::fs::read_to_string(&marker) {
            Ok(s) => s,
            Err(_) => {
                let s = unique("fktest_");
                std::fs::write(&marker, &s).unwrap();
                s
            }
        };
        return Arc::new(
            fleetkey_server::store::postgres::PostgresStore::connect_in_schema(&url, Some(&schema))
                .await
                .unwrap(),
        );
    }
    Arc::new(SqliteStore::open(dir).await.unwrap())
}

/// Runs `sql` (no parameters) directly on the store [`test_store`] opened for
/// `dir`, whichever it is: for tests that damage what a store holds, as an old
/// version, a restore or a hand edit could.
pub async fn raw_sql(dir: &std::path::Path, sql: &str) {
    use sqlx::Connection as _;
    if std::env::var("FLEETKEY_TEST_STORE").as_deref() == Ok("postgres") {
        let url = std::env::var("FLEETKEY_TEST_POSTGRES_URL").unwrap();
        let schema = std::fs::read_to_string(dir.join("pg_schema")).unwrap();
        let mut c = sqlx::PgConnection::connect(&url).await.unwrap();
        sqlx::raw_sql(&format!("SET search_path TO {schema}; {sql}"))
            .execute(&mut c)
            .await
            .unwrap();
    } else {
        let url = format!("sqlite://{}", dir.join("fleetkey.db").display());
        let mut c = sqlx::SqliteConnection::connect(&url).await.unwrap();
        sqlx::raw_sql(sql).execute(&mut c).await.unwrap();
    }
}

/// Store, fleets and the API state over `dir`.
pub struct Services {
    pub store: Arc<dyn fleetkey_server::store::Store>,
    pub fleets: Arc<FleetService>,
    pub state: Arc<AppState>,
}

pub async fn services(dir: &std::path::Path) -> Services {
    services_on(dir, test_store(dir).await, KeyConfig::default()).await
}

/// Fleets and the API state over `store`, with custody in `dir` and the key
/// service configured by `key_config`.
pub async fn services_on(
    dir: &std::path::Path,
    store: Arc<dyn fleetkey_server::store::Store>,
    key_config: KeyConfig,
) -> Services {
    services_configured(dir, store, key_config, &Config::default()).await
}

/// [`services_on`] with the API state built from `config`.
pub async fn services_configured(
    dir: &std::path::Path,
    store: Arc<dyn fleetkey_server::store::Store>,
    key_config: KeyConfig,
    config: &Config,
) -> Services {
    let custody = Arc::new(
        LocalCustody::open(
            dir,
            KekSource::Passphrase(zeroize::Zeroizing::new("pw".into())),
        )
        .await
        .unwrap(),
    );
    let clock = Arc::new(SystemClock::default());
    let keys = Arc::new(
        KeyService::open(store.clone(), custody.clone(), clock.clone(), key_config)
            .await
            .unwrap(),
    );
    let tokens = Arc::new(TokenService::new(store.clone(), clock.clone()));
    let fleets = FleetService::new(store.clone(), custody, clock);
    let state = server::state(config, keys, tokens, fleets.clone()).unwrap();
    Services {
        store,
        fleets,
        state,
    }
}

/// Unix time now.
pub fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        .try_into()
        .unwrap()
}

/// A random hex suffix: Redis key prefixes and PostgreSQL schemas of their own per
/// test, so runs never see each other's keys or tables.
pub fn unique(prefix: &str) -> String {
    let r: [u8; 6] = fleetkey_crypto::rand::array().unwrap();
    format!(
        "{prefix}{}",
        r.iter().map(|b| format!("{b:02x}")).collect::<String>()
    )
}

/// The service URL in the variable `name`. Tests that need one are marked
/// `#[ignore = "needs …"]`, so `cargo test` shows them as ignored on the embedded
/// default; run with `--ignored` (as `.ci/run` does), they fail clearly when the
/// variable is missing rather than pass without testing anything.
pub fn service_url(name: &str) -> String {
    std::env::var(name)
        .ok()
        .filter(|u| !u.is_empty())
        .unwrap_or_else(|| {
            panic!("{name} is not set: this test needs the service (.ci/run sets it)")
        })
}

/// `FLEETKEY_TEST_REDIS_URL` ([`service_url`]).
pub fn redis_url() -> String {
    service_url("FLEETKEY_TEST_REDIS_URL")
}

/// A TCP proxy in front of a service (`host:port`) that a test can cut (every
/// connection closed, new ones dropped) and restore, without touching the
/// service other tests use.
const PROXY_UP: u8 = 0;
const PROXY_CUT: u8 = 1;
const PROXY_STALLED: u8 = 2;

pub struct Proxy {
    /// `127.0.0.1:<port>` to connect to instead of the service.
    pub addr: String,
    state: std::sync::Arc<std::sync::atomic::AtomicU8>,
    conns: std::sync::Arc<std::sync::Mutex<Vec<tokio::task::JoinHandle<()>>>>,
    accept: tokio::task::JoinHandle<()>,
}

impl Proxy {
    pub async fn start(target: &str) -> Self {
        let target = target.to_owned();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let state = std::sync::Arc::new(std::sync::atomic::AtomicU8::new(PROXY_UP));
        let conns = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let accept = {
            let (state, conns) = (state.clone(), conns.clone());
            tokio::spawn(async move {
                loop {
                    let Ok((mut inbound, _)) = listener.accept().await else {
                        continue;
                    };
                    match state.load(std::sync::atomic::Ordering::Acquire) {
                        PROXY_UP => {}
                        PROXY_STALLED => {
                            // An unreachable host: accepted, never answered.
                            let h = tokio::spawn(async move {
                                let _keep = inbound;
                                std::future::pending::<()>().await;
                            });
                            conns.lock().unwrap().push(h);
                            continue;
                        }
                        _ => {
                            drop(inbound);
                            continue;
                        }
                    }
                    let target = target.clone();
                    let h = tokio::spawn(async move {
                        if let Ok(mut outbound) = tokio::net::TcpStream::connect(&target).await {
                            let _ =
                                tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                        }
                    });
                    conns.lock().unwrap().push(h);
                }
            })
        };
        Self {
            addr,
            state,
            conns,
            accept,
        }
    }

    /// The service goes away: open connections break, new ones are refused.
    pub fn cut(&self) {
        self.down(PROXY_CUT);
    }

    /// The service's host becomes unreachable: open connections break, new ones
    /// are accepted and never answered (a client waits for its own timeout).
    pub fn stall(&self) {
        self.down(PROXY_STALLED);
    }

    fn down(&self, state: u8) {
        self.state
            .store(state, std::sync::atomic::Ordering::Release);
        for h in self.conns.lock().unwrap().drain(..) {
            h.abort();
        }
    }

    pub fn restore(&self) {
        self.state
            .store(PROXY_UP, std::sync::atomic::Ordering::Release);
        for h in self.conns.lock().unwrap().drain(..) {
            h.abort();
        }
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.cut();
        self.accept.abort();
    }
}
