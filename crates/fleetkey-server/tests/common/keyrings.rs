//! One keyring service (and a second instance over the same store) on a temporary
//! data directory, for the keyring tests.

use fleetkey_crypto::envelope::Header;
use fleetkey_server::store::Store;
use fleetkey_server::{
    clock::ManualClock,
    custody::local::{KekSource, LocalCustody},
    keys::{KeyConfig, KeyService},
};
use std::sync::Arc;
use tempfile::TempDir;
use zeroize::Zeroizing;

pub const T0: i64 = 1_800_000_000;

pub struct Env {
    _dir: TempDir,
    pub dir: std::path::PathBuf,
    pub clock: ManualClock,
    pub keys: KeyService,
    pub custody: Arc<LocalCustody>,
    /// The store `keys` runs on (tests reach under the service through it).
    pub store: Arc<dyn Store>,
}

pub async fn env_with(block: u32) -> Env {
    let dir = TempDir::new().unwrap();
    let path = dir.path().to_path_buf();
    let clock = ManualClock::at(T0);
    let (keys, custody, store) = open(&path, &clock, block).await;
    Env {
        _dir: dir,
        dir: path,
        clock,
        keys,
        custody,
        store,
    }
}

pub async fn open(
    path: &std::path::Path,
    clock: &ManualClock,
    block: u32,
) -> (KeyService, Arc<LocalCustody>, Arc<dyn Store>) {
    let store = super::test_store(path).await;
    let custody = Arc::new(
        LocalCustody::open(
            path,
            KekSource::Passphrase(Zeroizing::new("correct horse".into())),
        )
        .await
        .unwrap(),
    );
    let config = KeyConfig {
        nonce_block: block,
        ..KeyConfig::default()
    };
    let keys = KeyService::open(
        store.clone(),
        custody.clone(),
        Arc::new(clock.clone()),
        config,
    )
    .await
    .unwrap();
    (keys, custody, store)
}

/// A second instance (`b`) over `e`'s store and custody, as another server
/// process sharing the database would be.
pub async fn second_instance(e: &Env) -> Arc<KeyService> {
    let custody = Arc::new(
        LocalCustody::open(
            &e.dir,
            KekSource::Passphrase(Zeroizing::new("correct horse".into())),
        )
        .await
        .unwrap(),
    );
    Arc::new(
        KeyService::open(
            e.store.clone(),
            custody,
            Arc::new(e.clock.clone()),
            KeyConfig {
                nonce_block: 64,
                instance_holder: "b".into(),
                ..KeyConfig::default()
            },
        )
        .await
        .unwrap(),
    )
}

pub fn version_of(env: &[u8]) -> u32 {
    Header::parse(env).unwrap().0.key_version
}

pub fn nonce_of(env: &[u8]) -> [u8; 12] {
    match Header::parse(env).unwrap().0.body {
        fleetkey_crypto::envelope::Body::Single { nonce } => nonce,
        _ => panic!("not single"),
    }
}
