//! Keyrings end to end on the real embedded store: rotation by use and by time,
//! overlap expiry, keep-last, revocation, rewrap, distinct refusals, audit chain and
//! its tamper detection, and secrets kept out of the store's audit and metadata.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::keyrings::{T0, env_with, nonce_of, open, version_of};

use fleetkey_crypto::aead::Algorithm;
use fleetkey_crypto::envelope::Header;
use fleetkey_server::{
    Error,
    audit::AuditDraft,
    audit::verify::{Verdict, verify_export},
    clock::ManualClock,
    custody::{
        Custody,
        local::{KekSource, LocalCustody},
    },
    keys::{KeyConfig, KeyService},
    names::KeyringName,
    store::{Change, Policy, VersionRecord},
};
use serde_json::json;
use std::collections::HashSet;
use std::sync::Arc;
use tempfile::TempDir;
use zeroize::Zeroizing;

const DAY: i64 = 86_400;

#[tokio::test]
async fn seal_unseal_round_trip_and_nonce_layout() {
    let e = env_with(16).await;
    e.keys
        .create(
            "cli",
            &"payments".parse().unwrap(),
            Algorithm::Aes256Gcm,
            Policy::default(),
        )
        .await
        .unwrap();
    let ring = e.keys.keyring("payments").await.unwrap();
    let mut nonces = HashSet::new();
    for i in 0..100u32 {
        let env = ring.seal(&i.to_be_bytes(), b"ctx").await.unwrap();
        assert_eq!(ring.unseal(&env, b"ctx").await.unwrap(), i.to_be_bytes());
        assert!(nonces.insert(nonce_of(&env)), "nonce repeated");
        assert_eq!(Header::parse(&env).unwrap().0.key_id.as_str(), "payments");
    }
    // Counters are consecutive within one instance id.
    let counters: HashSet<u32> = nonces
        .iter()
        .map(|n| u32::from_be_bytes([n[8], n[9], n[10], n[11]]))
        .collect();
    assert_eq!(counters, (0..100).collect());
    let env = ring.seal(b"x", b"ctx").await.unwrap();
    assert!(matches!(
        ring.unseal(&env, b"other").await,
        Err(Error::Envelope(_))
    ));
}

#[tokio::test]
async fn use_count_rotates_exactly_at_the_threshold() {
    let e = env_with(7).await;
    let policy = Policy {
        max_uses: 25,
        ..Policy::default()
    };
    e.keys
        .create(
            "cli",
            &"r".parse().unwrap(),
            Algorithm::ChaCha20Poly1305,
            policy,
        )
        .await
        .unwrap();
    let ring = e.keys.keyring("r").await.unwrap();
    let mut versions = Vec::new();
    for _ in 0..60 {
        versions.push(version_of(&ring.seal(b"m", b"").await.unwrap()));
    }
    assert!(versions[..25].iter().all(|v| *v == 1), "{versions:?}");
    assert!(versions[25..50].iter().all(|v| *v == 2), "{versions:?}");
    assert!(versions[50..].iter().all(|v| *v == 3), "{versions:?}");
    let info = e.keys.show("r").await.unwrap();
    assert_eq!(info.primary_version, 3);
    assert_eq!(info.versions[0].seal_count, 25);
    assert_eq!(info.versions[1].seal_count, 25);
    // The primary's count is live: its block is still being sealed from.
    assert_eq!(info.versions[2].seal_count, 10);
    ring.seal(b"m", b"").await.unwrap();
    let info = e.keys.show("r").await.unwrap();
    assert_eq!(info.versions[2].seal_count, 11, "counted once, not twice");
}

#[tokio::test]
async fn period_rotation_overlap_expiry_and_distinct_refusals() {
    let e = env_with(64).await;
    // Every change the tick makes is announced to other instances (#26).
    let announced = Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let seen = announced.clone();
    e.keys.on_change(Arc::new(move |what| {
        if let fleetkey_server::coord::Invalidation::Keyring { name } = what {
            seen.lock().unwrap().push(name)
        }
    }));
    let policy = Policy {
        rotation_period_secs: 10 * DAY,
        overlap_secs: 3 * DAY,
        ..Policy::default()
    };
    e.keys
        .create("cli", &"r".parse().unwrap(), Algorithm::Aes256Gcm, policy)
        .await
        .unwrap();
    let ring = e.keys.keyring("r").await.unwrap();
    let v1 = ring.seal(b"one", b"").await.unwrap();
    e.clock.advance(10 * DAY);
    let actions = e.keys.run_policies("scheduler").await.unwrap().actions;
    assert!(
        actions
            .iter()
            .any(|a| a.to_string().contains("rotated to version 2")),
        "{actions:?}"
    );
    let v2 = ring.seal(b"two", b"").await.unwrap();
    assert_eq!(version_of(&v2), 2);
    // Inside the overlap the old version still opens.
    e.clock.advance(2 * DAY);
    e.keys.run_policies("scheduler").await.unwrap();
    assert_eq!(ring.unseal(&v1, b"").await.unwrap(), b"one");
    // After it, the minimum rises and version 1 is refused as below minimum.
    e.clock.advance(DAY);
    announced.lock().unwrap().clear();
    let actions = e.keys.run_policies("scheduler").await.unwrap().actions;
    assert!(
        actions.iter().any(|a| a
            .to_string()
            .contains("minimum decrypt version raised to 2")),
        "{actions:?}"
    );
    assert_eq!(
        *announced.lock().unwrap(),
        ["r"],
        "the raised minimum announced"
    );
    assert!(matches!(
        ring.unseal(&v1, b"").await,
        Err(Error::BelowMinimum {
            version: 1,
            min: 2,
            ..
        })
    ));
    assert_eq!(ring.unseal(&v2, b"").await.unwrap(), b"two");
    // Unknown version: rewrite the header's version to 9 (the AAD would fail later,
    // but the version check comes first and is distinct).
    let mut v9 = v2.clone();
    let at = 4 + 1 + 1 + 1 + 1 + 1; // magic, version, mode, alg, kid len, "r"
    v9[at..at + 4].copy_from_slice(&9u32.to_be_bytes());
    assert!(matches!(
        ring.unseal(&v9, b"").await,
        Err(Error::UnknownVersion { version: 9, .. })
    ));
    // Revoke version 2 (the primary): it rotates first, then refuses at once.
    e.keys.revoke("cli", "r", 2).await.unwrap();
    assert!(matches!(
        ring.unseal(&v2, b"").await,
        Err(Error::Revoked { version: 2, .. })
    ));
    let v3 = ring.seal(b"three", b"").await.unwrap();
    assert_eq!(version_of(&v3), 3);
    // Another keyring's envelope is refused as such.
    e.keys
        .create(
            "cli",
            &"other".parse().unwrap(),
            Algorithm::Aes256Gcm,
            Policy::default(),
        )
        .await
        .unwrap();
    let other = e.keys.keyring("other").await.unwrap();
    assert!(matches!(
        other.unseal(&v3, b"").await,
        Err(Error::WrongKeyring { .. })
    ));
    // A sealed age check fires from the seal path too (no scheduler): 10 days later
    // the 256th-sample check or the next block refill rotates.
    e.clock.advance(10 * DAY);
    let mut last = 0;
    for _ in 0..300 {
        last = version_of(&ring.seal(b"x", b"").await.unwrap());
    }
    assert_eq!(last, 4);
}

#[tokio::test]
async fn keep_last_n_raises_the_minimum() {
    let e = env_with(64).await;
    let policy = Policy {
        keep_last: Some(2),
        ..Policy::default()
    };
    e.keys
        .create(
            "cli",
            &"r".parse().unwrap(),
            Algorithm::Aes256GcmSiv,
            policy,
        )
        .await
        .unwrap();
    let ring = e.keys.keyring("r").await.unwrap();
    let old = ring.seal(b"v1", b"").await.unwrap();
    e.keys.rotate("cli", "r").await.unwrap();
    e.keys.rotate("cli", "r").await.unwrap();
    e.keys.run_policies("scheduler").await.unwrap();
    let info = e.keys.show("r").await.unwrap();
    assert_eq!((info.primary_version, info.min_decrypt_version), (3, 2));
    assert_eq!(
        info.versions[0].state,
        fleetkey_server::store::VersionState::Destroyed
    );
    assert!(matches!(
        ring.unseal(&old, b"").await,
        Err(Error::BelowMinimum { .. })
    ));
}

#[tokio::test]
async fn rewrap_moves_to_the_primary_and_output_opens_only_with_it() {
    let e = env_with(64).await;
    e.keys
        .create(
            "cli",
            &"r".parse().unwrap(),
            Algorithm::Aes256Gcm,
            Policy::default(),
        )
        .await
        .unwrap();
    let ring = e.keys.keyring("r").await.unwrap();
    let old: Vec<Vec<u8>> = futures_join(&ring, 20).await;
    e.keys.rotate("cli", "r").await.unwrap();
    let mut batch = old.clone();
    batch.push(b"not an envelope".to_vec());
    let out = e.keys.rewrap("cli", "r", &batch, b"aad").await.unwrap();
    assert!(out[20].is_err());
    for (i, r) in out[..20].iter().enumerate() {
        let new = r.as_ref().unwrap();
        assert_eq!(version_of(new), 2);
        assert_eq!(
            ring.unseal(new, b"aad").await.unwrap(),
            format!("item {i}").as_bytes()
        );
    }
    // Revoking version 2 makes the rewrapped output unopenable; version 1 data was
    // not touched by the revocation.
    e.keys.revoke("cli", "r", 2).await.unwrap();
    assert!(matches!(
        ring.unseal(out[0].as_ref().unwrap(), b"aad").await,
        Err(Error::Revoked { .. })
    ));
    assert!(ring.unseal(&old[0], b"aad").await.is_ok());
}

async fn futures_join(ring: &fleetkey_server::keys::Keyring, n: usize) -> Vec<Vec<u8>> {
    let mut v = Vec::new();
    for i in 0..n {
        v.push(
            ring.seal(format!("item {i}").as_bytes(), b"aad")
                .await
                .unwrap(),
        );
    }
    v
}

#[tokio::test]
async fn restart_continues_above_the_last_reservation() {
    let e = env_with(10).await;
    e.keys
        .create(
            "cli",
            &"r".parse().unwrap(),
            Algorithm::Aes256Gcm,
            Policy::default(),
        )
        .await
        .unwrap();
    let mut seen = HashSet::new();
    {
        let ring = e.keys.keyring("r").await.unwrap();
        for _ in 0..15 {
            assert!(seen.insert(nonce_of(&ring.seal(b"a", b"").await.unwrap())));
        }
    }
    drop(e.keys);
    // A second service on the same data: a "restart" without any flush.
    let (keys2, _, _) = open(&e.dir, &e.clock, 10).await;
    let ring = keys2.keyring("r").await.unwrap();
    for _ in 0..30 {
        let n = nonce_of(&ring.seal(b"a", b"").await.unwrap());
        assert!(seen.insert(n), "nonce reused after restart");
        assert!(
            u32::from_be_bytes([n[8], n[9], n[10], n[11]]) >= 20,
            "starts above the last reservation"
        );
    }
}

#[tokio::test]
async fn exhausted_counter_space_takes_a_fresh_instance_id() {
    let dir = TempDir::new().unwrap();
    let clock = ManualClock::at(T0);
    let store = common::test_store(dir.path()).await;
    let custody = Arc::new(
        LocalCustody::open(
            dir.path(),
            KekSource::Passphrase(Zeroizing::new("pw".into())),
        )
        .await
        .unwrap(),
    );
    let keys = KeyService::open(
        store.clone(),
        custody,
        Arc::new(clock),
        KeyConfig::default(),
    )
    .await
    .unwrap();
    let huge = Policy {
        max_uses: 1 << 40,
        ..Policy::default()
    };
    keys.create("cli", &"r".parse().unwrap(), Algorithm::Aes256Gcm, huge)
        .await
        .unwrap();
    // Spend this instance's counter space for version 1 up to the last block.
    let instance = store.lease_instance("embedded", T0).await.unwrap();
    store
        .reserve_nonces("r", 1, instance, u32::MAX - 100, u64::MAX)
        .await
        .unwrap();
    let ring = keys.keyring("r").await.unwrap();
    let env = ring.seal(b"x", b"").await.unwrap();
    let n = nonce_of(&env);
    assert_ne!(&n[..8], &instance, "a fresh instance id");
    assert_eq!(
        keys.metrics()
            .instance_renewals
            .load(std::sync::atomic::Ordering::Relaxed),
        1
    );
    assert_eq!(ring.unseal(&env, b"").await.unwrap(), b"x");
}

#[tokio::test]
async fn a_spent_use_budget_found_at_restart_rotates_first() {
    let e = env_with(8).await;
    let policy = Policy {
        max_uses: 20,
        ..Policy::default()
    };
    e.keys
        .create("cli", &"r".parse().unwrap(), Algorithm::Aes256Gcm, policy)
        .await
        .unwrap();
    let ring = e.keys.keyring("r").await.unwrap();
    for _ in 0..20 {
        assert_eq!(version_of(&ring.seal(b"a", b"").await.unwrap()), 1);
    }
    drop(ring);
    let (keys2, _, _) = open(&e.dir, &e.clock, 8).await;
    let ring = keys2.keyring("r").await.unwrap();
    assert_eq!(version_of(&ring.seal(b"a", b"").await.unwrap()), 2);
}

#[tokio::test]
async fn audit_chain_verifies_and_every_tampering_is_caught() {
    let e = env_with(64).await;
    e.keys
        .create(
            "cli",
            &"a".parse().unwrap(),
            Algorithm::Aes256Gcm,
            Policy::default(),
        )
        .await
        .unwrap();
    e.keys.rotate("cli", "a").await.unwrap();
    e.keys.revoke("cli", "a", 1).await.unwrap();
    e.keys
        .set_policy(
            "cli",
            "a",
            Policy {
                max_uses: 99,
                ..Policy::default()
            },
        )
        .await
        .unwrap();
    let mut buf = Vec::new();
    let n = e.keys.export_audit(&mut buf).await.unwrap();
    assert_eq!(n, 4);
    let text = String::from_utf8(buf).unwrap();
    let lines: Vec<String> = text.lines().map(str::to_owned).collect();
    let pk = e.custody.public_key();
    assert_eq!(
        verify_export(&lines, &pk),
        Verdict::Valid {
            entries: 4,
            checkpoints: 1
        }
    );
    let first_bad = |lines: &[String]| match verify_export(lines, &pk) {
        Verdict::Invalid { seq, .. } => seq,
        v => panic!("tampering not detected: {v:?}"),
    };
    // Edit an entry's details.
    let mut edited = lines.clone();
    edited[1] = edited[1].replace("manual", "innocent");
    assert_ne!(edited[1], lines[1]);
    assert_eq!(first_bad(&edited), 2);
    // Delete an entry.
    let mut deleted = lines.clone();
    deleted.remove(2);
    assert_eq!(first_bad(&deleted), 3);
    // Swap two entries.
    let mut swapped = lines.clone();
    swapped.swap(1, 2);
    assert_eq!(first_bad(&swapped), 2);
    // Truncate: drop the final checkpoint, or the last entry.
    assert_eq!(first_bad(&lines[..4]), 1);
    let mut cut = lines.clone();
    cut.remove(3);
    assert_eq!(first_bad(&cut), 4);
    // Wrong public key.
    let other = LocalCustody::open_blocking(
        TempDir::new().unwrap().path(),
        KekSource::Passphrase(Zeroizing::new("x".into())),
    )
    .unwrap();
    assert!(matches!(
        verify_export(&lines, &other.public_key()),
        Verdict::Invalid { .. }
    ));
}

#[tokio::test]
async fn secrets_never_reach_audit_entries_or_metadata() {
    let e = env_with(64).await;
    e.keys
        .create(
            "cli",
            &"scan".parse().unwrap(),
            Algorithm::Aes256Gcm,
            Policy::default(),
        )
        .await
        .unwrap();
    let ring = e.keys.keyring("scan").await.unwrap();
    let env = ring.seal(b"top secret plaintext", b"").await.unwrap();
    e.keys.rotate("cli", "scan").await.unwrap();
    e.keys.rewrap("cli", "scan", &[env], b"").await.unwrap();
    let mut buf = Vec::new();
    e.keys.export_audit(&mut buf).await.unwrap();
    let audit = String::from_utf8(buf).unwrap();
    let info = serde_json::to_string(&e.keys.list().await.unwrap()).unwrap();
    let debug = format!("{ring:?} {:?}", e.custody);
    // Every data key, in every encoding a leak might take.
    let store = common::test_store(&e.dir).await;
    for v in store.versions("scan").await.unwrap() {
        let key = e
            .custody
            .unwrap(&v.wrapped_key, &format!("keyring:scan/v{}", v.version))
            .await
            .unwrap();
        let raw = key.expose_secret();
        use base64::Engine;
        for needle in [
            hex::encode(raw),
            base64::engine::general_purpose::STANDARD.encode(raw),
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(raw),
            format!("{:?}", raw),
        ] {
            for (name, hay) in [("audit", &audit), ("info", &info), ("debug", &debug)] {
                assert!(!hay.contains(&needle), "data key found in {name}");
            }
        }
    }
    assert!(!audit.contains("top secret"));
    // The root key file holds only the sealed root.
    let root = std::fs::read_to_string(e.dir.join("root-key.json")).unwrap();
    assert!(root.contains("sealed_root") && root.contains("argon2id"));
}

#[tokio::test]
async fn custody_refuses_a_wrong_passphrase_and_a_mismatched_mode() {
    let dir = TempDir::new().unwrap();
    LocalCustody::open(
        dir.path(),
        KekSource::Passphrase(Zeroizing::new("right".into())),
    )
    .await
    .unwrap();
    let wrong = LocalCustody::open(
        dir.path(),
        KekSource::Passphrase(Zeroizing::new("wrong".into())),
    )
    .await;
    assert!(matches!(wrong, Err(Error::RootKeyLocked)));
    let kek = dir.path().join("kek.fk");
    let file = fleetkey_crypto::keyfile::SymmetricKeyFile::generate(
        Algorithm::Aes256Gcm,
        fleetkey_crypto::envelope::KeyId::new("kek").unwrap(),
    )
    .unwrap();
    fleetkey_server::secret_file::write(&kek, file.to_text().as_bytes(), false).unwrap();
    let mismatch = LocalCustody::open(dir.path(), KekSource::KeyFile(kek.clone())).await;
    assert!(matches!(mismatch, Err(Error::CustodyConfig(_))));
    // Key-file mode round trip in a fresh directory, and the wrapped keys are bound
    // to their context.
    let dir2 = TempDir::new().unwrap();
    let c = LocalCustody::open(dir2.path(), KekSource::KeyFile(kek.clone()))
        .await
        .unwrap();
    let again = LocalCustody::open(dir2.path(), KekSource::KeyFile(kek))
        .await
        .unwrap();
    let k = fleetkey_crypto::secret::SecretBytes::<32>::random().unwrap();
    let w = c.wrap(&k, "keyring:a/v1").await.unwrap();
    assert_eq!(again.unwrap(&w, "keyring:a/v1").await.unwrap(), k);
    assert!(again.unwrap(&w, "keyring:a/v2").await.is_err());
    assert_eq!(c.public_key(), again.public_key());
}

#[tokio::test]
async fn policies_and_names_are_validated() {
    let e = env_with(64).await;
    // A name outside the grammar cannot even be made, so no keyring has one.
    assert!(matches!(
        "bad name".parse::<KeyringName>(),
        Err(Error::Invalid {
            what: "keyring name",
            ..
        })
    ));
    let zero = Policy {
        max_uses: 0,
        ..Policy::default()
    };
    assert!(matches!(
        e.keys
            .create("cli", &"z".parse().unwrap(), Algorithm::Aes256Gcm, zero)
            .await,
        Err(Error::Invalid { .. })
    ));
    e.keys
        .create(
            "cli",
            &"dup".parse().unwrap(),
            Algorithm::Aes256Gcm,
            Policy::default(),
        )
        .await
        .unwrap();
    assert!(matches!(
        e.keys
            .create(
                "cli",
                &"dup".parse().unwrap(),
                Algorithm::Aes256Gcm,
                Policy::default()
            )
            .await,
        Err(Error::KeyringExists(_))
    ));
    assert!(matches!(
        e.keys.keyring("missing").await,
        Err(Error::KeyringNotFound(_))
    ));
    assert!(matches!(
        e.keys.revoke("cli", "dup", 7).await,
        Err(Error::UnknownVersion { .. })
    ));
}

/// Regression: a revoked version answered `revoked` until the scheduler's next
/// tick raised the minimum past it, then `below_minimum`. Revoked stays revoked,
/// in every answer (unseal, listing), after policy runs and across restarts.
#[tokio::test]
async fn revoked_stays_revoked_after_the_minimum_passes_it_and_a_restart() {
    let e = env_with(64).await;
    e.keys
        .create(
            "cli",
            &"r".parse().unwrap(),
            Algorithm::Aes256Gcm,
            Policy::default(),
        )
        .await
        .unwrap();
    let ring = e.keys.keyring("r").await.unwrap();
    let v1 = ring.seal(b"one", b"").await.unwrap();
    e.keys.rotate("cli", "r").await.unwrap();
    e.keys.revoke("cli", "r", 1).await.unwrap();
    let revoked =
        |r: &fleetkey_server::Result<Vec<u8>>| matches!(r, Err(Error::Revoked { version: 1, .. }));
    assert!(revoked(&ring.unseal(&v1, b"").await));
    // The policy tick raises the minimum past the revoked version.
    let actions = e.keys.run_policies("scheduler").await.unwrap().actions;
    assert!(
        actions
            .iter()
            .any(|a| a.to_string().contains("minimum decrypt version raised")),
        "{actions:?}"
    );
    assert!(revoked(&ring.unseal(&v1, b"").await));
    let state_of_v1 = |info: fleetkey_server::keys::KeyringInfo| {
        info.versions
            .iter()
            .find(|v| v.version == 1)
            .unwrap()
            .state
            .as_str()
    };
    assert_eq!(state_of_v1(e.keys.show("r").await.unwrap()), "revoked");
    // After a restart on the same store.
    drop(ring);
    e.keys.shutdown().await.unwrap();
    let (keys2, _, _) = open(&e.dir, &e.clock, 64).await;
    let ring = keys2.keyring("r").await.unwrap();
    assert!(revoked(&ring.unseal(&v1, b"").await));
    assert_eq!(state_of_v1(keys2.show("r").await.unwrap()), "revoked");
}

/// Regression (#16 item 13): one keyring whose policy cannot be applied (here a
/// name a key id cannot carry, as an old or hand-edited store may hold) aborted the whole
/// tick, so keyrings after it never rotated. Now it is reported and the others
/// are done.
#[tokio::test]
async fn one_bad_keyring_does_not_stop_the_policy_tick() {
    let e = env_with(64).await;
    let policy = Policy {
        rotation_period_secs: DAY,
        ..Policy::default()
    };
    e.keys
        .create("cli", &"r".parse().unwrap(), Algorithm::Aes256Gcm, policy)
        .await
        .unwrap();
    let first = e.store.versions("r").await.unwrap().remove(0);
    let mut legacy = e.store.keyring("r").await.unwrap().unwrap();
    legacy.name = "a legacy name".into();
    e.store
        .apply(
            Change::CreateKeyring {
                keyring: legacy,
                first: VersionRecord {
                    keyring: "a legacy name".into(),
                    ..first
                },
            },
            AuditDraft::new("test", "keyring.create", "keyring:x", json!({})),
            T0,
        )
        .await
        .unwrap();
    e.clock.advance(2 * DAY);
    let run = e.keys.run_policies("scheduler").await.unwrap();
    assert!(
        run.actions
            .iter()
            .any(|a| a.to_string() == "r: rotated to version 2 (period)"),
        "{run:?}"
    );
    assert_eq!(run.failures.len(), 1, "{run:?}");
    assert!(run.failures[0].starts_with("a legacy name: "), "{run:?}");
}

/// Regression (#16 item 8): counts crossed the storage boundary with `as`, so a
/// value above `i64::MAX` was written as a negative number and a negative one read
/// back as a huge count. Now both directions are checked: the store refuses to
/// write what its INTEGER columns cannot hold, and a row holding a negative count
/// is reported as damaged instead of reinterpreted.
#[tokio::test]
async fn counts_the_store_cannot_hold_are_refused_in_both_directions() {
    let e = env_with(8).await;
    e.keys
        .create(
            "cli",
            &"r".parse().unwrap(),
            Algorithm::Aes256Gcm,
            Policy::default(),
        )
        .await
        .unwrap();
    let too_big = Policy {
        max_uses: 1 << 63,
        ..Policy::default()
    };
    let err = e
        .store
        .apply(
            Change::SetPolicy {
                name: "r".into(),
                policy: too_big,
            },
            AuditDraft::new("test", "keyring.policy", "r", json!({})),
            T0,
        )
        .await
        .unwrap_err();
    assert!(err.to_string().contains("max_uses out of range"), "{err}");
    assert_eq!(
        e.keys.show("r").await.unwrap().policy.max_uses,
        Policy::default().max_uses,
        "nothing was written"
    );

    common::raw_sql(&e.dir, "UPDATE key_versions SET seal_count = -1").await;
    let err = e.store.versions("r").await.unwrap_err();
    assert!(
        err.to_string().contains("seal_count out of range: -1"),
        "{err}"
    );
}
