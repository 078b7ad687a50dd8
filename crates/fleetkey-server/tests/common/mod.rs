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

/// Store, fleets and the API state over `dir`.
pub struct Services {
    pub store: Arc<SqliteStore>,
    pub fleets: Arc<FleetService>,
    pub state: Arc<AppState>,
}

pub async fn services(dir: &std::path::Path) -> Services {
    let store = Arc::new(SqliteStore::open(dir).await.unwrap());
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
