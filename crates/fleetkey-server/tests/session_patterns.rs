//! Session patterns changed at run time (#20): a pattern disabled through a
//! second instance (its own caches, the same store) is refused by the first
//! within a second, with the reason; a fleet can require the post-quantum
//! hybrid; the service's list bounds every fleet's; every change is audited.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use fleetkey_client::{Backoff, ClientConfig, DeviceClient, Error as ClientError};
use fleetkey_crypto::credential::DeviceKeys;
use fleetkey_crypto::ed25519::Ed25519Signer;
use fleetkey_crypto::x25519::X25519Secret;
use fleetkey_server::api::listener::{DeviceListener, ListenerConfig};
use fleetkey_server::fleet::patterns::{PATTERNS_REFRESH, SessionPattern};
use fleetkey_server::fleet::{FactoryRequest, onboarding_message};
use fleetkey_server::keys::KeyConfig;
use fleetkey_server::telemetry::JsonLinesSink;
use fleetkey_session::Keypair;
use serde_json::json;
use std::sync::Arc;
use std::time::Duration;

#[tokio::test]
async fn a_pattern_disabled_on_one_instance_is_refused_by_another() {
    let dir = tempfile::TempDir::new().unwrap();
    let a = common::services(dir.path()).await;
    // The second instance: its own services and caches over the same store.
    let b = common::services_on(dir.path(), a.store.clone(), KeyConfig::default()).await;
    let listener = DeviceListener::new(
        a.state.clone(),
        ListenerConfig {
            connections_per_minute: 100,
            ..Default::default()
        },
        Arc::new(JsonLinesSink::open(&dir.path().join("t.jsonl")).unwrap()),
    )
    .await
    .unwrap();
    let sock = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = sock.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let run = tokio::spawn(listener.clone().run(sock, async move {
        let _ = stopped.await;
    }));
    a.fleets
        .registry
        .create_fleet("ops", &"hub".parse().unwrap(), None)
        .await
        .unwrap();

    // A device, onboarded.
    let x = X25519Secret::generate().unwrap();
    let noise = Keypair::from_private(*x.expose_secret()).unwrap();
    let sign = Ed25519Signer::generate().unwrap();
    let p = a
        .fleets
        .registry
        .provision(
            "jig",
            FactoryRequest {
                fleet: "hub".into(),
                hardware_id: "hw-pattern".into(),
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
    let c = a.fleets.onboarding.challenge(&id).await.unwrap();
    a.fleets
        .onboarding
        .onboard(
            &p.device.birth_credential,
            &c.nonce,
            &sign.sign(&onboarding_message(&id, &c.nonce, c.issued_at)),
        )
        .await
        .unwrap();
    // The server's key from its signed record, as a device gets it.
    let record = {
        let mut cache = fleetkey_client::RecordCache::new(a.fleets.directory().public_key());
        let token = a
            .fleets
            .directory()
            .record("fleetkey-server")
            .await
            .unwrap();
        cache.insert(&token, common::now()).unwrap().clone()
    };
    let client = |hybrid: bool, first_contact: bool| {
        let mut config = ClientConfig::new(addr.to_string());
        config.hybrid = hybrid;
        config.allow_first_contact = first_contact;
        config.backoff = Backoff {
            base: Duration::from_millis(10),
            max: Duration::from_millis(20),
            max_attempts: 1,
        };
        let mut c = DeviceClient::new(
            config,
            &id,
            Keypair::from_private(*noise.expose_private()).unwrap(),
            Ed25519Signer::from_seed(fleetkey_crypto::secret::SecretBytes::new(
                *sign.expose_seed(),
            ))
            .unwrap(),
            dir.path().join("device.json"),
        )
        .unwrap();
        c.trust_record(&record).unwrap();
        c
    };
    let refused = |e: ClientError| match e {
        ClientError::Refused(reason) => reason,
        other => panic!("expected a refusal, got {other}"),
    };
    let after_refresh = PATTERNS_REFRESH + Duration::from_millis(100);

    // Every pattern at first.
    drop(client(false, false).connect().await.unwrap());
    drop(client(true, false).connect().await.unwrap());

    // Instance B makes the fleet require the hybrid; A refuses plain IK within a
    // second, saying why, and still takes the hybrid.
    let info = b
        .fleets
        .sessions
        .set_patterns("ops", Some("hub"), Some(&[SessionPattern::IkHybrid]))
        .await
        .unwrap();
    assert_eq!(info.effective, [SessionPattern::IkHybrid]);
    tokio::time::sleep(after_refresh).await;
    let why = refused(client(false, false).connect().await.unwrap_err());
    assert!(
        why.starts_with(
            "pattern_not_allowed: pattern ik is not allowed for fleet hub (allowed: ik-hybrid)"
        ),
        "{why}"
    );
    drop(client(true, false).connect().await.unwrap());

    // The service's list bounds the fleet's: disabling the hybrid service-wide
    // leaves this fleet nothing.
    b.fleets
        .sessions
        .set_patterns("ops", None, Some(&[SessionPattern::Ik, SessionPattern::Xx]))
        .await
        .unwrap();
    tokio::time::sleep(after_refresh).await;
    let why = refused(client(true, false).connect().await.unwrap_err());
    assert!(why.contains("(allowed: none)"), "{why}");
    let shown = a.fleets.sessions.patterns(Some("hub")).await.unwrap();
    assert_eq!(shown.patterns, Some(vec![SessionPattern::IkHybrid]));
    assert!(shown.effective.is_empty());

    // The fleet inherits again: IK works, the hybrid stays off service-wide.
    b.fleets
        .sessions
        .set_patterns("ops", Some("hub"), None)
        .await
        .unwrap();
    tokio::time::sleep(after_refresh).await;
    drop(client(false, false).connect().await.unwrap());
    refused(client(true, false).connect().await.unwrap_err());
    // An empty list and unknown names are refused.
    assert!(
        b.fleets
            .sessions
            .set_patterns("ops", Some("hub"), Some(&[]))
            .await
            .is_err()
    );
    assert!(SessionPattern::parse("nn").is_err());
    assert!(b.fleets.sessions.patterns(Some("nowhere")).await.is_err());

    // Audited, refusals counted by pattern.
    let entries = a.store.audit_entries(0, 10_000).await.unwrap();
    let changes = entries
        .iter()
        .filter(|e| e.action == "session.patterns")
        .count();
    assert_eq!(changes, 3);
    assert!(
        entries
            .iter()
            .any(|e| e.action == "session.refused" && e.details.contains("pattern_not_allowed"))
    );
    let metrics = a.state.metrics.render(&a.state.keys, false);
    assert!(
        metrics.contains(
            "fleetkey_device_handshakes_total{pattern=\"IK\",result=\"pattern_refused\"} 1"
        ),
        "{}",
        metrics
            .lines()
            .filter(|l| l.contains("handshakes_total"))
            .collect::<Vec<_>>()
            .join("\n")
    );
    let _ = stop.send(());
    run.await.unwrap();
}
