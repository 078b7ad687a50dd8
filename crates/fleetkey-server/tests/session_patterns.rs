//! Session patterns changed at run time (#20): a pattern disabled through a
//! second instance (its own caches, the same store) is refused by the first
//! within a second, with the reason; a fleet can require the post-quantum
//! hybrid; the service's list bounds every fleet's; every change is audited.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::listener::Harness;
use fleetkey_client::{Backoff, ClientConfig, Error as ClientError};
use fleetkey_server::api::listener::ListenerConfig;
use fleetkey_server::fleet::patterns::{PATTERNS_REFRESH, SessionPattern};
use fleetkey_server::keys::KeyConfig;
use std::time::Duration;

#[tokio::test]
async fn a_pattern_disabled_on_one_instance_is_refused_by_another() {
    let dir = tempfile::TempDir::new().unwrap();
    let a = common::services(dir.path()).await;
    // The second instance: its own services and caches over the same store.
    let b = common::services_on(dir.path(), a.store.clone(), KeyConfig::default()).await;
    // A listener on the first, and a device, onboarded.
    let h = Harness::start_on(
        dir,
        a,
        ListenerConfig {
            connections_per_minute: 100,
            ..Default::default()
        },
    )
    .await;
    let (id, noise, sign) = h.device("hw-pattern").await;
    // The server's key from its signed record, as a device gets it.
    let record = h.server_record().await;
    let client = |hybrid: bool, first_contact: bool| {
        let mut config = ClientConfig::new(h.addr.to_string());
        config.hybrid = hybrid;
        config.allow_first_contact = first_contact;
        config.backoff = Backoff {
            base: Duration::from_millis(10),
            max: Duration::from_millis(20),
            max_attempts: 1,
        };
        let mut c = h.client_with(config, &id, &noise, &sign, "device.json");
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
    let shown = h.fleets.sessions.patterns(Some("hub")).await.unwrap();
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
    let entries = h.store.audit_entries(0, 10_000).await.unwrap();
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
    let metrics = h.metrics();
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
    h.stop().await;
}
