//! Fleets and factory provisioning on the real store: birth credentials verify
//! under the fleet's issuing key, retries are idempotent, duplicate hardware
//! identities and bad keys are refused, and concurrent registrations (group
//! commit) stay unique and keep the audit chain valid.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use fleetkey_crypto::credential::{self, DeviceKeys, IssuerPublicKey, Role};
use fleetkey_crypto::ed25519::Ed25519Signer;
use fleetkey_crypto::x25519::X25519Secret;
use fleetkey_server::{
    Error,
    audit::verify::{Verdict, verify_export},
    clock::SystemClock,
    custody::{
        Custody,
        local::{KekSource, LocalCustody},
    },
    fleet::{FactoryRequest, FleetService},
    keys::{KeyConfig, KeyService},
    store::{DeviceState, sqlite::SqliteStore},
};
use std::collections::HashSet;
use std::sync::Arc;

struct Env {
    _dir: tempfile::TempDir,
    fleets: Arc<FleetService>,
    keys: KeyService,
    custody: Arc<LocalCustody>,
}

async fn env() -> Env {
    let dir = tempfile::TempDir::new().unwrap();
    let store = Arc::new(SqliteStore::open(dir.path()).await.unwrap());
    let custody = Arc::new(
        LocalCustody::open(
            dir.path(),
            KekSource::Passphrase(zeroize::Zeroizing::new("pw".into())),
        )
        .await
        .unwrap(),
    );
    let clock = Arc::new(SystemClock::default());
    let fleets = FleetService::new(store.clone(), custody.clone(), clock.clone());
    let keys = KeyService::open(store, custody.clone(), clock, KeyConfig::default())
        .await
        .unwrap();
    Env {
        _dir: dir,
        fleets,
        keys,
        custody,
    }
}

fn device_keys() -> DeviceKeys {
    DeviceKeys {
        x25519: X25519Secret::generate().unwrap().public_key().unwrap(),
        ed25519: Ed25519Signer::generate().unwrap().public_key(),
        ml_kem_768: None,
        ml_dsa_65: None,
    }
}

fn request(fleet: &str, hw: &str, keys: DeviceKeys) -> FactoryRequest {
    FactoryRequest {
        fleet: fleet.into(),
        hardware_id: hw.into(),
        model: "thermostat-v2".into(),
        batch: "2026-11-A".into(),
        station: "jig-3".into(),
        keys,
        test_results: serde_json::json!({ "rf": "pass", "battery_mv": 3011 }),
    }
}

#[tokio::test]
async fn provisioning_issues_a_verifiable_birth_credential_and_is_idempotent() {
    let e = env().await;
    let fleet = e.fleets.create_fleet("ops", "acme", None).await.unwrap();
    assert!(matches!(
        e.fleets.create_fleet("ops", "acme", None).await,
        Err(Error::FleetExists(_))
    ));
    let keys = device_keys();
    let p = e
        .fleets
        .provision("jig", request("acme", "uid:0001", keys.clone()))
        .await
        .unwrap();
    assert!(p.created);
    assert_eq!(p.device.state, DeviceState::Manufactured);
    let pk = hex::decode(&fleet.issuer_public_key).unwrap();
    let claims = credential::verify(
        &p.device.birth_credential,
        IssuerPublicKey::Ed25519(&pk),
        p.device.created_at,
    )
    .unwrap();
    assert_eq!(claims.device_id, p.device.id);
    assert_eq!(claims.hardware_id, "uid:0001");
    assert_eq!(claims.fleet, "acme");
    assert_eq!(claims.role, Role::Birth);
    assert_eq!(claims.keys, keys);
    let (kid, _) = credential::peek(&p.device.birth_credential).unwrap();
    assert_eq!(kid, fleet.issuer_key_id.as_bytes());
    // A retry with the same identity and keys returns the same registration.
    let again = e
        .fleets
        .provision("jig", request("acme", "uid:0001", keys.clone()))
        .await
        .unwrap();
    assert!(!again.created);
    assert_eq!(again.device.id, p.device.id);
    assert_eq!(again.device.birth_credential, p.device.birth_credential);
    // The same hardware identity with other keys, or in another fleet, is refused.
    assert!(matches!(
        e.fleets
            .provision("jig", request("acme", "uid:0001", device_keys()))
            .await,
        Err(Error::DeviceExists(_))
    ));
    e.fleets.create_fleet("ops", "other", None).await.unwrap();
    assert!(matches!(
        e.fleets
            .provision("jig", request("other", "uid:0001", keys))
            .await,
        Err(Error::DeviceExists(_))
    ));
    assert_eq!(
        e.fleets.device(&p.device.id).await.unwrap().hardware_id,
        "uid:0001"
    );
    assert!(matches!(
        e.fleets.device("dev_nope").await,
        Err(Error::DeviceNotFound(_))
    ));
}

#[tokio::test]
async fn bad_requests_are_refused_with_the_field_named() {
    let e = env().await;
    e.fleets.create_fleet("ops", "acme", None).await.unwrap();
    let mut low = device_keys();
    low.x25519 = [0u8; 32];
    assert!(matches!(
        e.fleets
            .provision("jig", request("acme", "uid:1", low))
            .await,
        Err(Error::Invalid {
            what: "x25519 key",
            ..
        })
    ));
    let mut kem = device_keys();
    kem.ml_kem_768 = Some(vec![0; 10]);
    assert!(matches!(
        e.fleets
            .provision("jig", request("acme", "uid:1", kem))
            .await,
        Err(Error::Invalid {
            what: "ml-kem-768 key",
            ..
        })
    ));
    assert!(matches!(
        e.fleets
            .provision("jig", request("acme", "", device_keys()))
            .await,
        Err(Error::Invalid {
            what: "hardware id",
            ..
        })
    ));
    // Cloned key material: another device's public key is refused.
    let shared = device_keys();
    e.fleets
        .provision("jig", request("acme", "uid:a", shared.clone()))
        .await
        .unwrap();
    let mut clone = device_keys();
    clone.ed25519 = shared.ed25519;
    assert!(matches!(
        e.fleets
            .provision("jig", request("acme", "uid:b", clone))
            .await,
        Err(Error::DuplicateKey("ed25519"))
    ));
    assert!(matches!(
        e.fleets
            .provision("jig", request("nope", "uid:1", device_keys()))
            .await,
        Err(Error::FleetNotFound(_))
    ));
    assert!(matches!(
        e.fleets.create_fleet("ops", "bad name", None).await,
        Err(Error::Invalid { .. })
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_registrations_are_unique_and_audited() {
    let e = env().await;
    e.fleets.create_fleet("ops", "acme", None).await.unwrap();
    let mut tasks = Vec::new();
    for i in 0..600u32 {
        let f = e.fleets.clone();
        // Every tenth request repeats an earlier hardware id with other keys.
        let hw = if i % 10 == 9 {
            format!("uid:{}", i - 1)
        } else {
            format!("uid:{i}")
        };
        tasks.push(tokio::spawn(async move {
            f.provision("jig", request("acme", &hw, device_keys()))
                .await
        }));
    }
    let mut ids = HashSet::new();
    let (mut ok, mut dup) = (0, 0);
    for t in tasks {
        match t.await.unwrap() {
            Ok(p) => {
                assert!(ids.insert(p.device.id));
                ok += 1;
            }
            Err(Error::DeviceExists(_)) => dup += 1,
            Err(other) => panic!("{other}"),
        }
    }
    assert_eq!((ok, dup), (540, 60));
    assert_eq!(e.fleets.devices("acme", "", 1000).await.unwrap().len(), 540);
    let mut buf = Vec::new();
    e.keys.export_audit(&mut buf).await.unwrap();
    let lines: Vec<String> = String::from_utf8(buf)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect();
    assert_eq!(
        verify_export(&lines, &e.custody.public_key()),
        Verdict::Valid {
            entries: 541,
            checkpoints: 1
        }
    );
}
