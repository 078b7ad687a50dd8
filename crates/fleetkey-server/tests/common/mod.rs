//! The service stack on a temporary data directory, for integration tests.

#![allow(clippy::unwrap_used, dead_code)]

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

/// Store, fleets and the API state over `dir`.
pub struct Services {
    pub store: Arc<dyn fleetkey_server::store::Store>,
    pub fleets: Arc<FleetService>,
    pub state: Arc<AppState>,
}

pub async fn services(dir: &std::path::Path) -> Services {
    let store = test_store(dir).await;
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
        KeyService::open(
            store.clone(),
            custody.clone(),
            clock.clone(),
            KeyConfig::default(),
        )
        .await
        .unwrap(),
    );
    let tokens = Arc::new(TokenService::new(store.clone(), clock.clone()));
    let fleets = FleetService::new(store.clone(), custody, clock);
    let state = server::state(&Config::default(), keys, tokens, fleets.clone()).unwrap();
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
        .as_secs() as i64
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

/// `FLEETKEY_TEST_REDIS_URL`, or None (and a note) when the machine has no Redis.
pub fn redis_url() -> Option<String> {
    let url = std::env::var("FLEETKEY_TEST_REDIS_URL")
        .ok()
        .filter(|u| !u.is_empty());
    if url.is_none() {
        eprintln!("FLEETKEY_TEST_REDIS_URL is not set: skipping the Redis tests");
    }
    url
}
