//! A keyring's life around its keys, on the real embedded store: disable and
//! enable, scheduled deletion, its cancellation and the erasure at its end (the
//! wrapped keys are gone from the store), description and tags, aliases across
//! two instances, and what each state refuses.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::keyrings::{T0, env_with, second_instance};
use fleetkey_crypto::aead::Algorithm;
use fleetkey_server::Error;
use fleetkey_server::key_type::KeyType;
use fleetkey_server::keys::{KeyringOptions, PolicyAction, Signable};
use fleetkey_server::store::{KeyringState, Policy, VersionState};
use std::collections::BTreeMap;

const DAY: i64 = 86_400;

type Tags = BTreeMap<String, String>;

fn state_of(e: &Error) -> Option<KeyringState> {
    match e {
        Error::KeyringUnusable { state, .. } => Some(*state),
        _ => None,
    }
}

#[tokio::test]
async fn a_disabled_keyring_refuses_every_use_until_enabled() {
    let e = env_with(64).await;
    let k = &e.keys;
    k.create(
        "t",
        &"r".parse().unwrap(),
        Algorithm::Aes256Gcm,
        Policy::default(),
    )
    .await
    .unwrap();
    k.create(
        "t",
        &"s".parse().unwrap(),
        KeyType::Ed25519,
        Policy::default(),
    )
    .await
    .unwrap();
    let env = k.keyring("r").await.unwrap().seal(b"x", b"").await.unwrap();
    let info = k.disable("t", "r").await.unwrap();
    assert_eq!(info.state, KeyringState::Disabled);
    k.disable("t", "s").await.unwrap();
    let r = k.keyring("r").await.unwrap();
    let s = k.keyring("s").await.unwrap();
    for err in [
        r.seal(b"x", b"").await.unwrap_err(),
        r.unseal(&env, b"").await.unwrap_err(),
        r.data_key(b"").await.unwrap_err(),
        k.rewrap("t", "r", std::slice::from_ref(&env), b"")
            .await
            .unwrap_err(),
        s.sign(Signable::Message(b"m")).await.unwrap_err(),
        s.verify(Signable::Message(b"m"), &[0; 64], None)
            .await
            .unwrap_err(),
        s.public_key(None).await.unwrap_err(),
    ] {
        assert_eq!(state_of(&err), Some(KeyringState::Disabled), "{err}");
        assert!(err.to_string().contains("disabled; enable it"), "{err}");
    }
    // Still managed while disabled.
    assert_eq!(k.rotate("t", "r").await.unwrap(), 2);
    // Disabling twice changes nothing; enabling brings it back.
    k.disable("t", "r").await.unwrap();
    assert_eq!(
        k.enable("t", "r").await.unwrap().state,
        KeyringState::Enabled
    );
    assert_eq!(r.unseal(&env, b"").await.unwrap(), b"x");
    r.seal(b"y", b"").await.unwrap();
    let actions: Vec<String> = k
        .audit_entries(0, 100)
        .await
        .unwrap()
        .into_iter()
        .map(|a| a.action)
        .collect();
    assert_eq!(
        actions.iter().filter(|a| *a == "keyring.disable").count(),
        2,
        "one per keyring; the repeated disable wrote nothing: {actions:?}"
    );
    assert!(actions.contains(&"keyring.enable".to_owned()));
}

#[tokio::test]
async fn scheduled_deletion_waits_can_be_cancelled_and_then_erases() {
    let e = env_with(64).await;
    let k = &e.keys;
    for n in ["gone", "kept"] {
        k.create(
            "t",
            &n.parse().unwrap(),
            Algorithm::Aes256Gcm,
            Policy::default(),
        )
        .await
        .unwrap();
    }
    let ring = k.keyring("gone").await.unwrap();
    let env = ring.seal(b"secret", b"").await.unwrap();
    k.put_alias("t", "alias/doomed", "gone").await.unwrap();
    // Another instance has been sealing with it.
    let b = second_instance(&e).await;
    b.keyring("gone")
        .await
        .unwrap()
        .seal(b"b", b"")
        .await
        .unwrap();

    for days in [0, 6, 31, u32::MAX] {
        let err = k.schedule_deletion("t", "gone", days).await.unwrap_err();
        assert!(err.to_string().contains("7 to 30 days"), "{days}: {err}");
    }
    let info = k.schedule_deletion("t", "gone", 7).await.unwrap();
    assert_eq!(info.state, KeyringState::PendingDeletion);
    assert_eq!(info.deletion_at, Some(T0 + 7 * DAY));
    let pending =
        |err: Error| assert_eq!(state_of(&err), Some(KeyringState::PendingDeletion), "{err}");
    pending(ring.unseal(&env, b"").await.unwrap_err());
    pending(k.rotate("t", "gone").await.unwrap_err());
    pending(k.enable("t", "gone").await.unwrap_err());
    pending(
        k.set_details("t", "gone", Some("x".into()), None)
            .await
            .unwrap_err(),
    );
    pending(k.schedule_deletion("t", "gone", 7).await.unwrap_err());
    pending(k.put_alias("t", "alias/other", "gone").await.unwrap_err());

    // Cancelled: back as disabled, usable once enabled.
    let info = k.cancel_deletion("t", "gone").await.unwrap();
    assert_eq!(
        (info.state, info.deletion_at),
        (KeyringState::Disabled, None)
    );
    let err = k.cancel_deletion("t", "gone").await.unwrap_err();
    assert!(err.to_string().contains("not pending deletion"), "{err}");
    k.enable("t", "gone").await.unwrap();
    assert_eq!(ring.unseal(&env, b"").await.unwrap(), b"secret");

    // Scheduled again; a tick before the day erases nothing.
    k.schedule_deletion("t", "gone", 30).await.unwrap();
    e.clock.advance(30 * DAY - 1);
    let run = k.run_policies("scheduler").await.unwrap();
    assert!(
        !run.actions
            .iter()
            .any(|a| matches!(a, PolicyAction::Erased { .. })),
        "{run:?}"
    );
    assert!(
        e.store
            .versions("gone")
            .await
            .unwrap()
            .iter()
            .all(|v| !v.wrapped_key.is_empty())
    );

    e.clock.advance(1);
    let run = k.run_policies("scheduler").await.unwrap();
    assert!(run.failures.is_empty(), "{run:?}");
    assert!(
        run.actions.contains(&PolicyAction::Erased {
            keyring: "gone".into()
        }),
        "{run:?}"
    );
    // The key material is gone from the store, for every version.
    for v in e.store.versions("gone").await.unwrap() {
        assert!(
            v.wrapped_key.is_empty(),
            "version {} kept its key",
            v.version
        );
        assert_eq!(v.state, VersionState::Destroyed);
    }
    let deleted = |err: Error| {
        assert_eq!(state_of(&err), Some(KeyringState::Deleted), "{err}");
        assert!(err.to_string().contains("key material is erased"), "{err}");
    };
    deleted(ring.unseal(&env, b"").await.unwrap_err());
    deleted(ring.seal(b"x", b"").await.unwrap_err());
    deleted(k.enable("t", "gone").await.unwrap_err());
    deleted(k.cancel_deletion("t", "gone").await.unwrap_err());
    deleted(k.rotate("t", "gone").await.unwrap_err());
    deleted(k.revoke("t", "gone", 1).await.unwrap_err());
    assert_eq!(k.show("gone").await.unwrap().state, KeyringState::Deleted);
    // Its aliases went with it, and its name stays taken.
    assert!(matches!(
        k.keyring("alias/doomed").await.unwrap_err(),
        Error::AliasNotFound(_)
    ));
    assert!(matches!(
        k.create(
            "t",
            &"gone".parse().unwrap(),
            Algorithm::Aes256Gcm,
            Policy::default()
        )
        .await
        .unwrap_err(),
        Error::KeyringExists(_)
    ));
    // The other instance, told of the change, refuses too and drops the key it
    // was sealing with (its primary is the empty placeholder, version 0).
    b.refresh("gone").await.unwrap();
    let live = |svc: &fleetkey_server::keys::KeyService| {
        svc.nonce_headroom()
            .into_iter()
            .find(|(n, ..)| n == "gone")
            .map(|(_, v, _)| v)
    };
    assert_eq!((live(k), live(&b)), (Some(0), Some(0)));
    let err = b
        .keyring("gone")
        .await
        .unwrap()
        .unseal(&env, b"")
        .await
        .unwrap_err();
    assert_eq!(state_of(&err), Some(KeyringState::Deleted));
    // The other keyring was untouched, and later ticks skip the deleted one.
    k.keyring("kept")
        .await
        .unwrap()
        .seal(b"x", b"")
        .await
        .unwrap();
    e.clock.advance(365 * DAY);
    let run = k.run_policies("scheduler").await.unwrap();
    assert!(run.failures.is_empty(), "{run:?}");
    assert!(
        !run.actions
            .iter()
            .any(|a| a.to_string().starts_with("gone")),
        "{run:?}"
    );
    let audit: Vec<String> = k
        .audit_entries(0, 500)
        .await
        .unwrap()
        .into_iter()
        .map(|a| a.action)
        .collect();
    for a in [
        "keyring.schedule_deletion",
        "keyring.cancel_deletion",
        "keyring.erase",
    ] {
        assert!(audit.iter().any(|x| x == a), "{a} not audited: {audit:?}");
    }
}

#[tokio::test]
async fn a_disabled_keyring_is_not_rotated_by_age() {
    let e = env_with(64).await;
    let policy = Policy {
        rotation_period_secs: DAY,
        ..Policy::default()
    };
    e.keys
        .create("t", &"r".parse().unwrap(), Algorithm::Aes256Gcm, policy)
        .await
        .unwrap();
    e.keys.disable("t", "r").await.unwrap();
    e.clock.advance(2 * DAY);
    e.keys.run_policies("scheduler").await.unwrap();
    assert_eq!(e.keys.show("r").await.unwrap().primary_version, 1);
    e.keys.enable("t", "r").await.unwrap();
    e.keys.run_policies("scheduler").await.unwrap();
    assert_eq!(e.keys.show("r").await.unwrap().primary_version, 2);
}

#[tokio::test]
async fn details_are_bounded_and_kept() {
    let e = env_with(64).await;
    let k = &e.keys;
    let tags: BTreeMap<String, String> = [("team".to_owned(), "payments".to_owned())].into();
    let info = k
        .create_with(
            "t",
            &"r".parse().unwrap(),
            KeyType::Aead(Algorithm::Aes256Gcm),
            Policy::default(),
            KeyringOptions {
                description: "card data".into(),
                tags: tags.clone(),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(
        (info.description.as_str(), &info.tags),
        ("card data", &tags)
    );
    // Only the description changes; the tags stay.
    let info = k
        .set_details("t", "r", Some("PANs".into()), None)
        .await
        .unwrap();
    assert_eq!((info.description.as_str(), &info.tags), ("PANs", &tags));
    let many: BTreeMap<String, String> =
        (0..51).map(|i| (format!("k{i}"), String::new())).collect();
    let bad: [(Option<String>, Option<Tags>); 5] = [
        (Some("x".repeat(257)), None),
        (Some("line\nbreak".into()), None),
        (None, Some(many)),
        (None, Some([(String::new(), "v".to_owned())].into())),
        (
            None,
            Some([("k".to_owned(), "\u{1b}[31m".to_owned())].into()),
        ),
    ];
    for (d, t) in bad {
        let err = k.set_details("t", "r", d, t).await.unwrap_err();
        assert!(matches!(err, Error::Invalid { .. }), "{err}");
    }
    // 256 characters of a multi-byte letter fit (the bound is in characters).
    k.set_details("t", "r", Some("é".repeat(256)), Some(BTreeMap::new()))
        .await
        .unwrap();
    let back = e.store.keyring("r").await.unwrap().unwrap();
    assert_eq!(
        (back.description.chars().count(), back.tags.len()),
        (256, 0)
    );
}

#[tokio::test]
async fn aliases_resolve_everywhere_and_repoint_across_instances() {
    let e = env_with(64).await;
    let a = &e.keys;
    for n in ["p1", "p2"] {
        a.create(
            "t",
            &n.parse().unwrap(),
            Algorithm::Aes256Gcm,
            Policy::default(),
        )
        .await
        .unwrap();
    }
    for bad in ["payments", "alias/", "alias/a/b", "alias/-x", "alias/a b"] {
        let err = a.put_alias("t", bad, "p1").await.unwrap_err();
        assert!(matches!(err, Error::Invalid { .. }), "{bad}: {err}");
    }
    assert!(matches!(
        a.put_alias("t", "alias/x", "alias/y").await.unwrap_err(),
        Error::Invalid { .. }
    ));
    assert!(matches!(
        a.put_alias("t", "alias/x", "nope").await.unwrap_err(),
        Error::KeyringNotFound(_)
    ));
    a.put_alias("t", "alias/payments", "p1").await.unwrap();
    let b = second_instance(&e).await;
    // Sealed through the alias: the envelope names the keyring itself.
    let env = b
        .keyring("alias/payments")
        .await
        .unwrap()
        .seal(b"x", b"")
        .await
        .unwrap();
    assert_eq!(
        fleetkey_crypto::envelope::Header::parse(&env)
            .unwrap()
            .0
            .key_id
            .to_string(),
        "p1"
    );
    assert_eq!(
        a.keyring("p1")
            .await
            .unwrap()
            .unseal(&env, b"")
            .await
            .unwrap(),
        b"x"
    );
    // Re-pointed on one instance; the other learns it from the announcement.
    a.put_alias("t", "alias/payments", "p2").await.unwrap();
    assert_eq!(
        b.keyring("alias/payments").await.unwrap().name(),
        "p1",
        "cached until told"
    );
    b.refresh("alias/payments").await.unwrap();
    assert_eq!(b.keyring("alias/payments").await.unwrap().name(), "p2");
    assert_eq!(a.aliases(Some("p2")).await.unwrap().len(), 1);
    assert!(a.aliases(Some("p1")).await.unwrap().is_empty());
    assert_eq!(
        a.aliases(Some("alias/payments")).await.unwrap()[0].keyring,
        "p2"
    );
    a.delete_alias("t", "alias/payments").await.unwrap();
    b.refresh("alias/payments").await.unwrap();
    for svc in [a, &*b] {
        assert!(matches!(
            svc.keyring("alias/payments").await.unwrap_err(),
            Error::AliasNotFound(_)
        ));
    }
    assert!(matches!(
        a.delete_alias("t", "alias/payments").await.unwrap_err(),
        Error::AliasNotFound(_)
    ));
}
