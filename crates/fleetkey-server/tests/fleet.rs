//! Fleets and factory provisioning on the real store: birth credentials verify
//! under the fleet's issuing key, retries are idempotent, duplicate hardware
//! identities and bad keys are refused, and concurrent registrations (group
//! commit) stay unique and keep the audit chain valid.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

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
    names::FleetName,
    store::DeviceState,
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
    let store = common::test_store(dir.path()).await;
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
    let fleet = e
        .fleets
        .registry
        .create_fleet("ops", &"acme".parse().unwrap(), None)
        .await
        .unwrap();
    assert!(matches!(
        e.fleets
            .registry
            .create_fleet("ops", &"acme".parse().unwrap(), None)
            .await,
        Err(Error::FleetExists(_))
    ));
    let keys = device_keys();
    let p = e
        .fleets
        .registry
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
        .registry
        .provision("jig", request("acme", "uid:0001", keys.clone()))
        .await
        .unwrap();
    assert!(!again.created);
    assert_eq!(again.device.id, p.device.id);
    assert_eq!(again.device.birth_credential, p.device.birth_credential);
    // The same hardware identity with other keys, or in another fleet, is refused.
    assert!(matches!(
        e.fleets
            .registry
            .provision("jig", request("acme", "uid:0001", device_keys()))
            .await,
        Err(Error::DeviceExists(_))
    ));
    e.fleets
        .registry
        .create_fleet("ops", &"other".parse().unwrap(), None)
        .await
        .unwrap();
    assert!(matches!(
        e.fleets
            .registry
            .provision("jig", request("other", "uid:0001", keys))
            .await,
        Err(Error::DeviceExists(_))
    ));
    assert_eq!(
        e.fleets
            .registry
            .device(&p.device.id)
            .await
            .unwrap()
            .hardware_id,
        "uid:0001"
    );
    assert!(matches!(
        e.fleets.registry.device("dev_nope").await,
        Err(Error::DeviceNotFound(_))
    ));
}

#[tokio::test]
async fn bad_requests_are_refused_with_the_field_named() {
    let e = env().await;
    e.fleets
        .registry
        .create_fleet("ops", &"acme".parse().unwrap(), None)
        .await
        .unwrap();
    let mut low = device_keys();
    low.x25519 = [0u8; 32];
    assert!(matches!(
        e.fleets
            .registry
            .provision("jig", request("acme", "uid:1", low))
            .await,
        Err(Error::KeyRefused("x25519", "low-order point"))
    ));
    let mut kem = device_keys();
    kem.ml_kem_768 = Some(vec![0; 10]);
    assert!(matches!(
        e.fleets
            .registry
            .provision("jig", request("acme", "uid:1", kem))
            .await,
        Err(Error::Invalid {
            what: "ml-kem-768 key",
            ..
        })
    ));
    assert!(matches!(
        e.fleets
            .registry
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
        .registry
        .provision("jig", request("acme", "uid:a", shared.clone()))
        .await
        .unwrap();
    let mut clone = device_keys();
    clone.ed25519 = shared.ed25519;
    assert!(matches!(
        e.fleets
            .registry
            .provision("jig", request("acme", "uid:b", clone))
            .await,
        Err(Error::DuplicateKey("ed25519"))
    ));
    assert!(matches!(
        e.fleets
            .registry
            .provision("jig", request("nope", "uid:1", device_keys()))
            .await,
        Err(Error::FleetNotFound(_))
    ));
    // A fleet name outside the grammar cannot even be made.
    assert!(matches!(
        "bad name".parse::<FleetName>(),
        Err(Error::Invalid {
            what: "fleet name",
            ..
        })
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_registrations_are_unique_and_audited() {
    let e = env().await;
    e.fleets
        .registry
        .create_fleet("ops", &"acme".parse().unwrap(), None)
        .await
        .unwrap();
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
            f.registry
                .provision("jig", request("acme", &hw, device_keys()))
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
    assert_eq!(
        e.fleets
            .registry
            .devices("acme", &Default::default(), "", 1000)
            .await
            .unwrap()
            .len(),
        540
    );
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

struct Device {
    id: String,
    signer: Ed25519Signer,
    birth: Vec<u8>,
}

async fn manufacture(e: &Env, fleet: &str, hw: &str) -> Device {
    let signer = Ed25519Signer::generate().unwrap();
    let keys = DeviceKeys {
        x25519: X25519Secret::generate().unwrap().public_key().unwrap(),
        ed25519: signer.public_key(),
        ml_kem_768: None,
        ml_dsa_65: None,
    };
    let p = e
        .fleets
        .registry
        .provision("jig", request(fleet, hw, keys))
        .await
        .unwrap();
    Device {
        id: p.device.id,
        signer,
        birth: p.device.birth_credential,
    }
}

/// Onboards `dev` with a fresh challenge signed by its own key.
async fn onboard(e: &Env, dev: &Device) {
    let c = e.fleets.onboarding.challenge(&dev.id).await.unwrap();
    let sig = dev.signer.sign(&fleetkey_server::fleet::onboarding_message(
        &dev.id,
        &c.nonce,
        c.issued_at,
    ));
    e.fleets
        .onboarding
        .onboard(&dev.birth, &c.nonce, &sig)
        .await
        .unwrap();
}

#[tokio::test]
async fn onboarding_issues_an_operational_credential_and_refuses_every_bad_proof() {
    use fleetkey_server::fleet::onboarding_message;
    let e = env().await;
    let fleet = e
        .fleets
        .registry
        .create_fleet("ops", &"acme".parse().unwrap(), None)
        .await
        .unwrap();
    e.fleets
        .registry
        .create_fleet("ops", &"rival".parse().unwrap(), None)
        .await
        .unwrap();
    let dev = manufacture(&e, "acme", "uid:on-1").await;
    let c = e.fleets.onboarding.challenge(&dev.id).await.unwrap();
    let sig = dev
        .signer
        .sign(&onboarding_message(&dev.id, &c.nonce, c.issued_at));
    // Wrong key: burns the challenge and is refused.
    let stranger = Ed25519Signer::generate().unwrap();
    let bad = stranger.sign(&onboarding_message(&dev.id, &c.nonce, c.issued_at));
    assert!(matches!(
        e.fleets
            .onboarding
            .onboard(&dev.birth, &c.nonce, &bad)
            .await,
        Err(Error::CredentialRefused(_))
    ));
    // The burnt challenge cannot be replayed, even with the right signature.
    assert!(matches!(
        e.fleets
            .onboarding
            .onboard(&dev.birth, &c.nonce, &sig)
            .await,
        Err(Error::ChallengeRefused(_))
    ));
    // Unknown challenge.
    assert!(matches!(
        e.fleets
            .onboarding
            .onboard(&dev.birth, &[0u8; 32], &sig)
            .await,
        Err(Error::ChallengeRefused("unknown challenge"))
    ));
    // A credential of another fleet's device for this challenge is refused.
    let other = manufacture(&e, "rival", "uid:on-2").await;
    let c2 = e.fleets.onboarding.challenge(&dev.id).await.unwrap();
    let sig2 = other
        .signer
        .sign(&onboarding_message(&dev.id, &c2.nonce, c2.issued_at));
    assert!(matches!(
        e.fleets
            .onboarding
            .onboard(&other.birth, &c2.nonce, &sig2)
            .await,
        Err(Error::ChallengeRefused(_))
    ));
    // A tampered credential is refused.
    let mut forged = dev.birth.clone();
    let n = forged.len();
    forged[n - 5] ^= 1;
    assert!(matches!(
        e.fleets.onboarding.onboard(&forged, &c2.nonce, &sig2).await,
        Err(Error::CredentialRefused(_))
    ));
    // The real thing.
    let c3 = e.fleets.onboarding.challenge(&dev.id).await.unwrap();
    let sig3 = dev
        .signer
        .sign(&onboarding_message(&dev.id, &c3.nonce, c3.issued_at));
    let (op, d) = e
        .fleets
        .onboarding
        .onboard(&dev.birth, &c3.nonce, &sig3)
        .await
        .unwrap();
    assert_eq!(d.state, DeviceState::Onboarded);
    let pk = hex::decode(&fleet.issuer_public_key).unwrap();
    let claims = credential::verify(&op, IssuerPublicKey::Ed25519(&pk), d.updated_at).unwrap();
    assert_eq!(
        (claims.role, claims.device_id.as_str()),
        (Role::Operational, dev.id.as_str())
    );
    // Replaying the whole successful exchange: the challenge is spent, and the
    // device is no longer manufactured.
    assert!(
        e.fleets
            .onboarding
            .onboard(&dev.birth, &c3.nonce, &sig3)
            .await
            .is_err()
    );
    assert!(matches!(
        e.fleets.onboarding.challenge(&dev.id).await,
        Err(Error::IllegalTransition { .. })
    ));
    // The operational credential is not a birth credential.
    assert!(matches!(
        e.fleets.onboarding.check_credential(&op, Role::Birth).await,
        Err(Error::CredentialRefused("wrong credential role"))
    ));
    e.fleets
        .onboarding
        .check_credential(&op, Role::Operational)
        .await
        .unwrap();
}

#[tokio::test]
async fn life_cycle_transitions_follow_the_table_and_decommissioning_revokes_at_once() {
    use fleetkey_server::fleet::{onboarding_message, wipe_receipt_message};
    let e = env().await;
    e.fleets
        .registry
        .create_fleet("ops", &"acme".parse().unwrap(), None)
        .await
        .unwrap();
    let dev = manufacture(&e, "acme", "uid:life").await;
    // Not onboarded yet: cannot become active.
    assert!(matches!(
        e.fleets
            .onboarding
            .transition("ops", &dev.id, DeviceState::Active)
            .await,
        Err(Error::IllegalTransition {
            from: "manufactured",
            to: "active"
        })
    ));
    let c = e.fleets.onboarding.challenge(&dev.id).await.unwrap();
    let sig = dev
        .signer
        .sign(&onboarding_message(&dev.id, &c.nonce, c.issued_at));
    let (op, _) = e
        .fleets
        .onboarding
        .onboard(&dev.birth, &c.nonce, &sig)
        .await
        .unwrap();
    assert_eq!(
        e.fleets
            .onboarding
            .transition("ops", &dev.id, DeviceState::Active)
            .await
            .unwrap()
            .state,
        DeviceState::Active
    );
    assert_eq!(
        e.fleets
            .onboarding
            .transition("ops", &dev.id, DeviceState::Suspended)
            .await
            .unwrap()
            .state,
        DeviceState::Suspended
    );
    assert_eq!(
        e.fleets
            .onboarding
            .transition("ops", &dev.id, DeviceState::Active)
            .await
            .unwrap()
            .state,
        DeviceState::Active
    );
    // Decommission: credentials are revoked at once.
    let d = e
        .fleets
        .onboarding
        .decommission("ops", &dev.id, "returned by customer")
        .await
        .unwrap();
    assert_eq!(d.state, DeviceState::Decommissioning);
    assert!(matches!(
        e.fleets
            .onboarding
            .check_credential(&op, Role::Operational)
            .await,
        Err(Error::CredentialRefused("revoked"))
    ));
    assert!(matches!(
        e.fleets
            .onboarding
            .check_credential(&dev.birth, Role::Birth)
            .await,
        Err(Error::CredentialRefused("revoked"))
    ));
    assert!(matches!(
        e.fleets
            .onboarding
            .transition("ops", &dev.id, DeviceState::Active)
            .await,
        Err(Error::IllegalTransition { .. })
    ));
    // A forged wipe receipt is refused; the device's own one ends it.
    let forged = Ed25519Signer::generate()
        .unwrap()
        .sign(&wipe_receipt_message(&dev.id, 1_800_000_000));
    assert!(matches!(
        e.fleets
            .onboarding
            .confirm_wipe(&dev.id, 1_800_000_000, &forged)
            .await,
        Err(Error::CredentialRefused(_))
    ));
    let receipt = dev
        .signer
        .sign(&wipe_receipt_message(&dev.id, 1_800_000_000));
    let d = e
        .fleets
        .onboarding
        .confirm_wipe(&dev.id, 1_800_000_000, &receipt)
        .await
        .unwrap();
    assert_eq!(d.state, DeviceState::Decommissioned);
    // Final: nothing moves it again, and its hardware id stays taken.
    assert!(matches!(
        e.fleets
            .onboarding
            .decommission("ops", &dev.id, "again")
            .await,
        Err(Error::IllegalTransition { .. })
    ));
    assert!(matches!(
        e.fleets
            .registry
            .provision("jig", request("acme", "uid:life", device_keys()))
            .await,
        Err(Error::DeviceExists(_))
    ));
    // The audit log records the whole life.
    let mut buf = Vec::new();
    e.keys.export_audit(&mut buf).await.unwrap();
    let text = String::from_utf8(buf).unwrap();
    for action in [
        "device.provision",
        "device.onboard",
        "device.state",
        "device.decommission",
        "device.wiped",
    ] {
        assert!(text.contains(action), "{action} missing from the audit log");
    }
}

/// Regression (#16 item 13): decommissioning revoked the birth credential only
/// if it could parse the stored copy, and skipped it silently otherwise. Now no
/// credential of a decommissioned device is accepted, whatever the revocation
/// list holds.
#[tokio::test]
async fn a_decommissioned_device_s_credentials_are_refused_even_if_unreadable_in_the_store() {
    let e = env().await;
    e.fleets
        .registry
        .create_fleet("ops", &"acme".parse().unwrap(), None)
        .await
        .unwrap();
    let dev = manufacture(&e, "acme", "uid:damaged").await;
    common::raw_sql(
        e._dir.path(),
        &format!(
            "UPDATE devices SET birth_credential = {} WHERE id = '{}'",
            if std::env::var("FLEETKEY_TEST_STORE").as_deref() == Ok("postgres") {
                "'\\x00'::bytea"
            } else {
                "x'00'"
            },
            dev.id
        ),
    )
    .await;
    e.fleets
        .onboarding
        .decommission("ops", &dev.id, "lost")
        .await
        .unwrap();
    assert!(matches!(
        e.fleets
            .onboarding
            .check_credential(&dev.birth, Role::Birth)
            .await,
        Err(Error::CredentialRefused("device decommissioned"))
    ));
}

/// The fleet summary's counts (GET /v1/fleets/{fleet}/summary): by state and
/// profile in one query, with the last-heard buckets; another fleet's devices
/// never count, an unknown fleet is not found.
#[tokio::test]
async fn device_counts_group_by_state_and_profile() {
    let e = env().await;
    for fleet in ["counted", "other"] {
        e.fleets
            .registry
            .create_fleet("ops", &fleet.parse().unwrap(), None)
            .await
            .unwrap();
    }
    let mut made = Vec::new();
    for i in 0..4 {
        made.push(manufacture(&e, "counted", &format!("uid:count-{i}")).await);
    }
    manufacture(&e, "other", "uid:elsewhere").await;
    // One onboarded device, heard from now.
    let dev = &made[0];
    onboard(&e, dev).await;
    e.fleets.sessions.seen(&dev.id);
    e.fleets.sessions.flush_seen().await.unwrap();

    let counts = e.fleets.registry.device_counts("counted").await.unwrap();
    let total: i64 = counts.iter().map(|c| c.devices).sum();
    assert_eq!(total, 4);
    let of = |state: &str| {
        counts
            .iter()
            .find(|c| c.state == state && c.profile == "full")
            .map(|c| (c.devices, c.seen, c.never_seen))
    };
    assert_eq!(of("manufactured"), Some((3, [0, 0, 0], 3)));
    assert_eq!(of("onboarded"), Some((1, [1, 1, 1], 0)));
    assert!(matches!(
        e.fleets.registry.device_counts("nowhere").await,
        Err(Error::FleetNotFound(_))
    ));
}

/// A device's history (GET /v1/fleets/{fleet}/devices/{id}/history): its audit
/// entries newest first, paged by `before`, and its sessions newest first; another
/// fleet's device and an unknown device are not found.
#[tokio::test]
async fn a_device_history_lists_its_events_and_sessions_newest_first() {
    use fleetkey_server::store::DeviceSessionRecord;
    let e = env().await;
    for fleet in ["told", "other"] {
        e.fleets
            .registry
            .create_fleet("ops", &fleet.parse().unwrap(), None)
            .await
            .unwrap();
    }
    let dev = manufacture(&e, "told", "uid:told").await;
    let bystander = manufacture(&e, "told", "uid:bystander").await;
    onboard(&e, &dev).await;
    for state in [DeviceState::Active, DeviceState::Suspended] {
        e.fleets
            .onboarding
            .transition("ops", &dev.id, state)
            .await
            .unwrap();
    }
    for (i, id) in ["s-old", "s-new"].iter().enumerate() {
        let start = 1_700_000_000 + i64::try_from(i).unwrap() * 100;
        e.fleets
            .sessions
            .session_opened(&DeviceSessionRecord {
                id: (*id).into(),
                device_id: dev.id.clone(),
                previous: None,
                pattern: "IK".into(),
                peer: "127.0.0.1:5000".into(),
                started_at: start,
                ended_at: None,
                telemetry_seq: 0,
                messages_in: 0,
                messages_out: 0,
            })
            .await
            .unwrap();
    }
    e.fleets
        .sessions
        .session_closed("s-old", 3, 4, 5)
        .await
        .unwrap();

    // Heard from now, one session open: connected (the summary's count), and
    // the same by the per-device rule.
    e.fleets.sessions.seen(&dev.id);
    e.fleets.sessions.flush_seen().await.unwrap();
    assert_eq!(
        e.fleets.sessions.connected_count("told", 60).await.unwrap(),
        1
    );
    assert_eq!(
        e.fleets
            .sessions
            .connected_count("other", 60)
            .await
            .unwrap(),
        0
    );
    assert!(
        e.fleets
            .sessions
            .connected("told", "", "\u{10ffff}", 60)
            .await
            .unwrap()
            .contains(&dev.id)
    );
    let h = e
        .fleets
        .history
        .device("told", &dev.id, 50, None)
        .await
        .unwrap();
    let actions: Vec<&str> = h.events.iter().map(|e| e.action.as_str()).collect();
    assert!(actions.len() >= 4, "{actions:?}");
    assert!(h.events.windows(2).all(|w| w[0].seq > w[1].seq));
    assert!(
        h.events
            .iter()
            .all(|e| e.subject == format!("device:{}", dev.id)),
        "only this device's entries"
    );
    assert_eq!(h.device.state, DeviceState::Suspended);
    let ids: Vec<&str> = h.sessions.iter().map(|s| s.id.as_str()).collect();
    assert_eq!(ids, ["s-new", "s-old"]);
    assert!(h.sessions[1].ended_at.is_some() && h.sessions[0].ended_at.is_none());
    assert_eq!(
        (h.sessions[1].messages_in, h.sessions[1].messages_out),
        (4, 5)
    );
    // Paging: the next page starts below the last event seen, and the pages
    // together are the whole list.
    let first = e
        .fleets
        .history
        .device("told", &dev.id, 2, None)
        .await
        .unwrap();
    assert_eq!(first.events.len(), 2);
    let rest = e
        .fleets
        .history
        .device("told", &dev.id, 50, Some(first.events[1].seq))
        .await
        .unwrap();
    assert_eq!(first.events.len() + rest.events.len(), h.events.len());
    assert_eq!(rest.events[0].seq, h.events[2].seq);
    // The bystander's history has none of it.
    let b = e
        .fleets
        .history
        .device("told", &bystander.id, 50, None)
        .await
        .unwrap();
    assert!(b.sessions.is_empty());
    assert!(b.events.iter().all(|e| e.subject.ends_with(&bystander.id)));
    assert!(matches!(
        e.fleets.history.device("other", &dev.id, 50, None).await,
        Err(Error::DeviceNotFound(_))
    ));
    assert!(matches!(
        e.fleets
            .history
            .device("told", "no-such-device", 50, None)
            .await,
        Err(Error::DeviceNotFound(_))
    ));
}

/// The stored audit chain checked in place (GET /v1/audit/verify): valid, then
/// only new entries read on the next call, a hand edit of an entry found by a
/// full walk (with its sequence number), a forged checkpoint found.
#[tokio::test]
async fn the_stored_audit_chain_verifies_in_place_and_a_hand_edit_is_found() {
    let e = env().await;
    for fleet in ["a1", "a2", "a3"] {
        e.fleets
            .registry
            .create_fleet("ops", &fleet.parse().unwrap(), None)
            .await
            .unwrap();
    }
    // No checkpoint yet: the chain alone.
    let s = e.keys.verify_audit(false).await.unwrap();
    assert_eq!(s.verdict, "valid", "{s:?}");
    assert!(s.checkpoint.is_none());
    let n = s.verified_entries;
    assert!(n >= 3 && s.read_now == n);
    e.keys.checkpoint().await.unwrap();
    manufacture(&e, "a1", "uid:audited").await;
    let s = e.keys.verify_audit(false).await.unwrap();
    assert_eq!(s.verdict, "valid", "{s:?}");
    assert!(s.verified_entries > n);
    assert_eq!(s.read_now, s.verified_entries - n, "only new entries read");
    let c = s.checkpoint.unwrap();
    assert!(c.signature_valid && c.matches_chain);
    assert_eq!(c.seq, n);

    // A hand edit of entry 2 in the database.
    let actor = e.keys.audit_entries(1, 1).await.unwrap()[0].actor.clone();
    common::raw_sql(
        e._dir.path(),
        "UPDATE audit_log SET actor = 'someone-else' WHERE seq = 2",
    )
    .await;
    // Already verified: the incremental walk does not re-read it ...
    assert_eq!(e.keys.verify_audit(false).await.unwrap().verdict, "valid");
    // ... a full walk does.
    let s = e.keys.verify_audit(true).await.unwrap();
    assert_eq!(s.verdict, "invalid", "{s:?}");
    let p = s.problem.unwrap();
    assert_eq!(p.seq, 2);
    assert!(p.reason.contains("altered"), "{}", p.reason);
    assert_eq!(s.verified_entries, 1);
    // Put back, and a forged checkpoint instead.
    let put_back = format!("UPDATE audit_log SET actor = '{actor}' WHERE seq = 2");
    common::raw_sql(e._dir.path(), &put_back).await;
    let s = e.keys.verify_audit(true).await.unwrap();
    assert_eq!(s.verdict, "valid", "{s:?}");
    e.keys.checkpoint().await.unwrap();
    common::raw_sql(
        e._dir.path(),
        "UPDATE audit_checkpoints SET time = time + 1 WHERE seq = (SELECT MAX(seq) FROM audit_checkpoints)",
    )
    .await;
    let s = e.keys.verify_audit(false).await.unwrap();
    assert_eq!(s.verdict, "invalid", "{s:?}");
    let c = s.checkpoint.unwrap();
    assert!(!c.signature_valid && c.matches_chain);
}

/// The credential-expiry gauges' counts: a fleet's onboarded devices whose
/// operational credential expires within 14 days, and those expired; devices
/// without one (manufactured) and other fleets' never count.
#[tokio::test]
async fn credential_expiry_counts_expiring_and_expired_credentials() {
    let e = env().await;
    // A one-year lifetime in "long", ten days in "short".
    e.fleets
        .registry
        .create_fleet("ops", &"long".parse().unwrap(), None)
        .await
        .unwrap();
    e.fleets
        .registry
        .create_fleet("ops", &"short".parse().unwrap(), Some(10 * 86_400))
        .await
        .unwrap();
    let mut onboarded = Vec::new();
    for (fleet, hw) in [("long", "uid:l1"), ("short", "uid:s1"), ("short", "uid:s2")] {
        let dev = manufacture(&e, fleet, hw).await;
        onboard(&e, &dev).await;
        onboarded.push(dev.id);
    }
    manufacture(&e, "short", "uid:s3").await; // no credential yet
    let counts = e.fleets.registry.credential_expiry().await.unwrap();
    assert_eq!(
        counts,
        [("long".to_owned(), 0, 0), ("short".to_owned(), 2, 0)]
    );
    // One of "short"'s credentials issued 11 days ago: expired.
    common::raw_sql(
        e._dir.path(),
        &format!(
            "UPDATE devices SET credential_issued_at = credential_issued_at - {} WHERE id = '{}'",
            11 * 86_400,
            onboarded[2]
        ),
    )
    .await;
    let counts = e.fleets.registry.credential_expiry().await.unwrap();
    assert_eq!(
        counts,
        [("long".to_owned(), 0, 0), ("short".to_owned(), 2, 1)]
    );
}
