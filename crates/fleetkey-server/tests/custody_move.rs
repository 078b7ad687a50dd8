//! Moving a store to another custody root (`fleetkey_server::rewrap`, the engine
//! of `fleetkey custody migrate` and `rotate`): every envelope, fleet issuing
//! key, service key and constrained device's secret works under the new root;
//! key records are re-signed by it; the audit chain hands over from the old key
//! to the new one; an instance still on the old root can no longer write; and
//! every refusal (the same root, a key that does not open, resident keyrings)
//! leaves the store as it was. On SQLite by default, on PostgreSQL with
//! `FLEETKEY_TEST_STORE=postgres`; the PKCS#11 move needs SoftHSM2.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use fleetkey_crypto::credential::{DeviceKeys, IssuerPublicKey};
use fleetkey_crypto::ed25519::Ed25519Signer;
use fleetkey_crypto::record::{self, Freshness};
use fleetkey_crypto::x25519::X25519Secret;
use fleetkey_server::Error;
use fleetkey_server::audit::verify::{Verdict, verify_export};
use fleetkey_server::clock::ManualClock;
use fleetkey_server::custody::Custody;
use fleetkey_server::custody::local::{KekSource, LocalCustody};
use fleetkey_server::fleet::constrained::{Profile, seal_factory_secret};
use fleetkey_server::fleet::{FactoryRequest, FleetService, onboarding_message};
use fleetkey_server::keys::{KeyConfig, KeyService};
use fleetkey_server::rewrap::{Outcome, move_store};
use fleetkey_server::store::{DeviceState, Store};
use serde_json::json;
use std::sync::Arc;

const T0: i64 = 1_800_000_000;

fn pass() -> KekSource {
    KekSource::Passphrase(zeroize::Zeroizing::new("pw".into()))
}

/// A fresh local root in `dir`.
fn local_root(dir: &std::path::Path) -> Arc<dyn Custody> {
    std::fs::create_dir_all(dir).unwrap();
    Arc::new(LocalCustody::create_file(&dir.join("root-key.json"), &pass()).unwrap())
}

/// One instance: its own store handle, custody and services.
struct Instance {
    store: Arc<dyn Store>,
    keys: KeyService,
    fleets: Arc<FleetService>,
}

async fn instance(
    data: &std::path::Path,
    custody: Arc<dyn Custody>,
    clock: &Arc<ManualClock>,
) -> fleetkey_server::Result<Instance> {
    let store = common::test_store(data).await;
    fleetkey_server::store::check_custody_identity(store.as_ref(), custody.as_ref(), T0).await?;
    let keys = KeyService::open(
        store.clone(),
        custody.clone(),
        clock.clone(),
        KeyConfig::default(),
    )
    .await?;
    let fleets = FleetService::new(store.clone(), custody, clock.clone());
    Ok(Instance {
        store,
        keys,
        fleets,
    })
}

fn request(hw: &str, keys: DeviceKeys) -> FactoryRequest {
    FactoryRequest {
        fleet: "sensors".into(),
        hardware_id: hw.into(),
        model: "sensor".into(),
        batch: "b1".into(),
        station: "jig-1".into(),
        keys,
        test_results: json!({}),
    }
}

fn device_keys(sign: &Ed25519Signer) -> DeviceKeys {
    DeviceKeys {
        x25519: X25519Secret::generate().unwrap().public_key().unwrap(),
        ed25519: sign.public_key(),
        ml_kem_768: None,
        ml_dsa_65: None,
    }
}

/// Provisions and onboards a full device; returns its id and operational credential.
async fn onboarded(i: &Instance, hw: &str) -> (String, Vec<u8>) {
    let sign = Ed25519Signer::generate().unwrap();
    let p = i
        .fleets
        .registry
        .provision("jig", request(hw, device_keys(&sign)))
        .await
        .unwrap();
    let id = p.device.id;
    let c = i.fleets.onboarding.challenge(&id).await.unwrap();
    let sig = sign.sign(&onboarding_message(&id, &c.nonce, c.issued_at));
    let (op, d) = i
        .fleets
        .onboarding
        .onboard(&p.device.birth_credential, &c.nonce, &sig)
        .await
        .unwrap();
    assert_eq!(d.state, DeviceState::Onboarded);
    (id, op)
}

fn fresh() -> Freshness {
    Freshness {
        now: T0 + 1,
        max_age_secs: 86_400,
        last_sequence: None,
    }
}

async fn audit_export(keys: &KeyService) -> Vec<String> {
    let mut buf = Vec::new();
    keys.export_audit(&mut buf).await.unwrap();
    String::from_utf8(buf)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect()
}

#[tokio::test]
async fn a_store_moved_to_a_new_root_opens_everything_and_the_old_root_is_refused() {
    let dir = tempfile::TempDir::new().unwrap();
    let data = dir.path().join("data");
    let clock = Arc::new(ManualClock::at(T0));
    let a = local_root(&dir.path().join("a"));
    let old = instance(&data, a.clone(), &clock).await.unwrap();

    // What custody protects: keyring versions, a fleet's issuing key, the
    // service keys (Noise static, ML-KEM, factory X-Wing), a constrained
    // device's secret; and key records signed by the old root.
    let name = "payments".parse().unwrap();
    old.keys
        .create(
            "t",
            &name,
            fleetkey_crypto::aead::Algorithm::Aes256Gcm,
            Default::default(),
        )
        .await
        .unwrap();
    let ring = old.keys.keyring("payments").await.unwrap();
    let v1 = ring.seal(b"card 1", b"order 1").await.unwrap();
    old.keys.rotate("t", "payments").await.unwrap();
    let v2 = old
        .keys
        .keyring("payments")
        .await
        .unwrap()
        .seal(b"card 2", b"order 2")
        .await
        .unwrap();
    let fleet = old
        .fleets
        .registry
        .create_fleet("ops", &"sensors".parse().unwrap(), None)
        .await
        .unwrap();
    let issuer = hex::decode(fleet.issuer_public_key).unwrap();
    let (device, _) = onboarded(&old, "hw-1").await;
    let directory = old.fleets.directory();
    let (_, static_public) = directory.server_static_key().await.unwrap();
    let kem_public = directory
        .server_kem_key()
        .await
        .unwrap()
        .public_key()
        .unwrap();
    directory
        .publish_service(static_public, Some(kem_public.clone()))
        .await
        .unwrap();
    let recipient = fleetkey_crypto::keyfile::parse_recipient(
        &old.fleets.onboarding.factory_recipient().await.unwrap(),
    )
    .unwrap();
    let psk: [u8; 32] = fleetkey_crypto::rand::array().unwrap();
    let scalar: [u8; 32] = fleetkey_crypto::rand::array().unwrap();
    let tiny = old
        .fleets
        .onboarding
        .provision_constrained(
            "jig",
            request("uid-9", {
                let mut k = device_keys(&Ed25519Signer::generate().unwrap());
                k.x25519 = fleetkey_device::keys::public_key(&scalar);
                k
            }),
            Profile::Constrained,
            &seal_factory_secret(&recipient, &psk, "uid-9").unwrap(),
        )
        .await
        .unwrap()
        .device
        .id;

    // A keyring another instance made, which this one never loaded.
    let other = instance(&data, a.clone(), &clock).await.unwrap();
    other
        .keys
        .create(
            "t",
            &"cold".parse().unwrap(),
            fleetkey_crypto::aead::Algorithm::Aes256Gcm,
            Default::default(),
        )
        .await
        .unwrap();
    let cold = other
        .keys
        .keyring("cold")
        .await
        .unwrap()
        .seal(b"cold", b"")
        .await
        .unwrap();
    drop(other);

    // The same root is refused.
    let mover = common::test_store(&data).await;
    let e = move_store(
        mover.clone(),
        a.clone(),
        a.clone(),
        clock.clone(),
        "t",
        "custody.rotate",
    )
    .await
    .unwrap_err();
    assert!(matches!(e, Error::CustodyConfig(_)), "{e}");

    // The move, from a handle of its own (as `fleetkey custody rotate` is).
    let b = local_root(&dir.path().join("b"));
    let out = move_store(
        mover.clone(),
        a.clone(),
        b.clone(),
        clock.clone(),
        "cli:ops",
        "custody.rotate",
    )
    .await
    .unwrap();
    let Outcome::Moved { blobs, records, .. } = out else {
        panic!("{out:?}")
    };
    // Three versions, one fleet, three service keys, one device secret.
    assert_eq!(blobs, 8, "{out:?}");
    // The onboarded device, the constrained one (onboarded at provisioning?) and the service.
    assert!(records >= 2, "{out:?}");
    // Run again: nothing left to move.
    assert_eq!(
        move_store(
            mover.clone(),
            a.clone(),
            b.clone(),
            clock.clone(),
            "cli:ops",
            "custody.rotate"
        )
        .await
        .unwrap(),
        Outcome::AlreadyMoved
    );

    // The instance still on the old root keeps what it holds in memory, but
    // writes nothing more: keys wrapped by, or records signed with, the old
    // root would be lost to every other instance.
    assert_eq!(
        old.keys
            .keyring("payments")
            .await
            .unwrap()
            .unseal(&v2, b"order 2")
            .await
            .unwrap(),
        b"card 2"
    );
    // A key it never loaded is wrapped by the new root now: 503 saying why,
    // not a refusal of the caller's envelope.
    let e = async { old.keys.keyring("cold").await?.unseal(&cold, b"").await }
        .await
        .unwrap_err();
    assert!(matches!(e, Error::CustodyUnavailable(_)), "{e}");
    assert!(
        e.to_string().contains("moved to another custody root"),
        "{e}"
    );
    let e = old.keys.rotate("t", "payments").await.unwrap_err();
    assert!(matches!(e, Error::CustodyUnavailable(_)), "{e}");
    assert!(
        e.to_string().contains("moved to another custody root"),
        "{e}"
    );
    // And an instance started on the old root is refused.
    let e = instance(&data, a.clone(), &clock).await.err().unwrap();
    assert!(matches!(e, Error::CustodyConfig(_)), "{e}");

    // An instance on the new root opens everything.
    let new = instance(&data, b.clone(), &clock).await.unwrap();
    let ring = new.keys.keyring("payments").await.unwrap();
    assert_eq!(ring.unseal(&v1, b"order 1").await.unwrap(), b"card 1");
    assert_eq!(ring.unseal(&v2, b"order 2").await.unwrap(), b"card 2");
    let cold_ring = new.keys.keyring("cold").await.unwrap();
    assert_eq!(cold_ring.unseal(&cold, b"").await.unwrap(), b"cold");
    let v3 = ring.seal(b"card 3", b"order 3").await.unwrap();
    assert_eq!(ring.unseal(&v3, b"order 3").await.unwrap(), b"card 3");
    new.keys.rotate("t", "payments").await.unwrap();
    // Nor does it sign the chain's new entries with the old key.
    let e = old.keys.checkpoint().await.unwrap_err();
    assert!(matches!(e, Error::CustodyUnavailable(_)), "{e}");
    // The fleet issues with the same key: a new device's credential verifies
    // under the issuing key devices already trust.
    let (_, op) = onboarded(&new, "hw-2").await;
    fleetkey_crypto::credential::verify(&op, IssuerPublicKey::Ed25519(&issuer), T0 + 1).unwrap();
    // The service keys are the same keys.
    let directory = new.fleets.directory();
    assert_eq!(
        directory.server_static_key().await.unwrap().1,
        static_public
    );
    assert_eq!(
        directory
            .server_kem_key()
            .await
            .unwrap()
            .public_key()
            .unwrap(),
        kem_public
    );
    assert!(
        directory
            .existing_xwing_identity("factory-xwing")
            .await
            .unwrap()
            .is_some()
    );
    // The constrained device's secret is its own.
    let c = new
        .fleets
        .onboarding
        .constrained_device(&tiny)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(c.secret.expose_secret(), &psk);
    // Every record verifies under the new root's key, not the old one's; the
    // service's own record names the new signing key.
    for identity in [device.as_str(), "fleetkey-server"] {
        let token = directory.record(identity).await.unwrap();
        let r =
            record::verify(&token, IssuerPublicKey::Composite(&b.public_key()), fresh()).unwrap();
        assert!(
            r.sequence >= 2,
            "{identity}: re-signed with the next sequence"
        );
        assert!(
            record::verify(&token, IssuerPublicKey::Composite(&a.public_key()), fresh()).is_err()
        );
    }
    let service = record::peek(&directory.record("fleetkey-server").await.unwrap()).unwrap();
    assert_eq!(&service.keys.ed25519[..], &b.public_key()[..32]);

    // The audit chain: entries before the move are vouched for by the old
    // key's checkpoints, the handover checkpoint covers the move's entry, and
    // later checkpoints are the new key's. Verifying from the old key works;
    // from the new key alone the early checkpoints do not verify.
    let lines = audit_export(&new.keys).await;
    assert!(
        lines.iter().any(|l| l.contains("\"custody.rotate\"")),
        "the move is in the audit log"
    );
    let v = verify_export(&lines, &a.public_key());
    assert!(
        matches!(v, Verdict::Valid { .. }),
        "{v:?} {:?}",
        lines
            .iter()
            .map(|l| l.chars().take(90).collect::<String>())
            .collect::<Vec<_>>()
    );
    assert!(matches!(
        verify_export(&lines, &b.public_key()),
        Verdict::Invalid { .. }
    ));
    // Without the handover checkpoint (the old key's, covering the move)
    // nothing vouches for the new key: the export does not verify.
    let last = lines.len() - 1;
    let cut: Vec<String> = lines
        .iter()
        .enumerate()
        .filter(|(n, l)| *n == last || !l.starts_with("{\"checkpoint\""))
        .map(|(_, l)| l.clone())
        .collect();
    assert_eq!(
        cut.len() + 1,
        lines.len(),
        "one handover checkpoint in the export"
    );
    assert!(matches!(
        verify_export(&cut, &a.public_key()),
        Verdict::Invalid { .. }
    ));
}

#[tokio::test]
async fn a_key_that_does_not_open_stops_the_move_and_nothing_changes() {
    let dir = tempfile::TempDir::new().unwrap();
    let data = dir.path().join("data");
    let clock = Arc::new(ManualClock::at(T0));
    let a = local_root(&dir.path().join("a"));
    let i = instance(&data, a.clone(), &clock).await.unwrap();
    for n in ["one", "two"] {
        i.keys
            .create(
                "t",
                &n.parse().unwrap(),
                fleetkey_crypto::aead::Algorithm::Aes256Gcm,
                Default::default(),
            )
            .await
            .unwrap();
    }
    let sealed = i
        .keys
        .keyring("one")
        .await
        .unwrap()
        .seal(b"x", b"")
        .await
        .unwrap();
    // A version's wrapped key swapped for another's: it does not open under its context.
    common::raw_sql(
        &data,
        "UPDATE key_versions SET wrapped_key = (SELECT wrapped_key FROM key_versions WHERE keyring = 'one') WHERE keyring = 'two'",
    )
    .await;
    let b = local_root(&dir.path().join("b"));
    let mover = common::test_store(&data).await;
    let e = move_store(
        mover.clone(),
        a.clone(),
        b.clone(),
        clock.clone(),
        "t",
        "custody.migrate",
    )
    .await
    .unwrap_err();
    assert!(matches!(e, Error::Corrupt(_)), "{e}");
    assert!(e.to_string().contains("keyring:two/v1"), "{e}");
    // Nothing moved: the old root still serves and writes; the new one is refused.
    assert_eq!(
        i.keys
            .keyring("one")
            .await
            .unwrap()
            .unseal(&sealed, b"")
            .await
            .unwrap(),
        b"x"
    );
    i.keys.rotate("t", "one").await.unwrap();
    let e = instance(&data, b, &clock).await.err().unwrap();
    assert!(matches!(e, Error::CustodyConfig(_)), "{e}");
}

mod pkcs11 {
    use super::*;
    use fleetkey_server::custody::pkcs11::{Pkcs11Config, Pkcs11Custody};
    use fleetkey_server::key_type::KeyType;
    use fleetkey_server::keys::KeyringOptions;

    fn config(label: &str) -> Pkcs11Config {
        Pkcs11Config {
            module: common::service_url("FLEETKEY_TEST_PKCS11_MODULE").into(),
            token: common::service_url("FLEETKEY_TEST_PKCS11_TOKEN"),
            pin: zeroize::Zeroizing::new(common::service_url("FLEETKEY_TEST_PKCS11_PIN")),
            label: label.into(),
            sessions: 2,
            wrap: None,
        }
    }

    /// Local to a token, and back out is refused while a resident keyring
    /// (keys that never leave the token) exists.
    #[tokio::test]
    #[ignore = "needs SoftHSM2 and FLEETKEY_TEST_PKCS11_* (.ci/run sets them)"]
    async fn a_local_store_moves_into_a_token_and_resident_keyrings_keep_it_there() {
        let dir = tempfile::TempDir::new().unwrap();
        let data = dir.path().join("data");
        let clock = Arc::new(ManualClock::at(T0));
        let a = local_root(&dir.path().join("a"));
        let old = instance(&data, a.clone(), &clock).await.unwrap();
        old.keys
            .create(
                "t",
                &"web".parse().unwrap(),
                fleetkey_crypto::aead::Algorithm::Aes256Gcm,
                Default::default(),
            )
            .await
            .unwrap();
        let sealed = old
            .keys
            .keyring("web")
            .await
            .unwrap()
            .seal(b"s", b"a")
            .await
            .unwrap();
        drop(old);
        let token: Arc<dyn Custody> = Arc::new(
            Pkcs11Custody::open(config(&common::unique("fk-mv-")))
                .await
                .unwrap(),
        );
        let mover = common::test_store(&data).await;
        let out = move_store(
            mover.clone(),
            a.clone(),
            token.clone(),
            clock.clone(),
            "t",
            "custody.migrate",
        )
        .await
        .unwrap();
        assert!(matches!(out, Outcome::Moved { blobs: 1, .. }), "{out:?}");
        let new = instance(&data, token.clone(), &clock).await.unwrap();
        assert_eq!(
            new.keys
                .keyring("web")
                .await
                .unwrap()
                .unseal(&sealed, b"a")
                .await
                .unwrap(),
            b"s"
        );
        let stored = &new.store.versions("web").await.unwrap()[0].wrapped_key;
        assert_eq!(stored[0], 0x01, "wrapped by the token (AES-GCM)");
        // A resident keyring pins the store to this token.
        new.keys
            .create_with(
                "t",
                &"vault".parse().unwrap(),
                KeyType::Aead(fleetkey_crypto::aead::Algorithm::Aes256Gcm),
                Default::default(),
                KeyringOptions {
                    resident: true,
                    ..KeyringOptions::default()
                },
            )
            .await
            .unwrap();
        let back = local_root(&dir.path().join("c"));
        let e = move_store(
            mover.clone(),
            token.clone(),
            back,
            clock.clone(),
            "t",
            "custody.migrate",
        )
        .await
        .unwrap_err();
        assert!(matches!(e, Error::CustodyUnsupported(_)), "{e}");
        assert!(e.to_string().contains("\"vault\" is resident"), "{e}");
        new.keys.rotate("t", "web").await.unwrap();
    }
}
