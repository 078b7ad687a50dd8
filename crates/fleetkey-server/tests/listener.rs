//! The device listener over loopback TCP, driven by the Rust device client
//! (`fleetkey-client`): provision -> onboard -> IK session with the server key from
//! a signed directory record -> signed config command -> signed receipt ->
//! decommission -> the wipe over the session -> reconnect refused; first contact
//! (XX) then pinning; resumption across a client restart with telemetry
//! de-duplication; the post-quantum hybrid; credential rotation over the session;
//! reconnection with backoff; every refusal.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use base64::{Engine as _, engine::general_purpose::STANDARD as B64};
use fleetkey_client::proto::{self, DeviceMsg, ServerMsg};
use fleetkey_client::{Backoff, ClientConfig, DeviceClient, Error as ClientError};
use fleetkey_crypto::credential::DeviceKeys;
use fleetkey_crypto::ed25519::Ed25519Signer;
use fleetkey_crypto::x25519::X25519Secret;
use fleetkey_server::api::listener::{DeviceListener, ListenerConfig};
use fleetkey_server::fleet::ConfigUpdate;
use fleetkey_server::store::{CommandState, DeviceState};
use fleetkey_server::telemetry::JsonLinesSink;
use fleetkey_session::Keypair;
use serde_json::json;
use std::sync::Arc;
use std::time::Duration;

use common::listener::{Harness, next_command};
use common::now;

#[tokio::test]
async fn a_device_session_from_config_command_to_wipe_and_refusal() {
    let h = Harness::start(100).await;
    // The static key survives a restart (it lives in custody, not in memory), and
    // the record is published once, not again on restart.
    let again = DeviceListener::new(
        h.state.clone(),
        ListenerConfig::default(),
        Arc::new(JsonLinesSink::open(&h.dir.path().join("t2.jsonl")).unwrap()),
    )
    .await
    .unwrap();
    assert_eq!(again.public_key(), h.listener.public_key());
    let record = h.server_record().await;
    assert_eq!(
        (record.keys.x25519, record.sequence),
        (h.listener.public_key(), 1)
    );
    assert_eq!(
        record.keys.ml_kem_768.as_deref(),
        Some(&h.listener.kem_public_key().unwrap()[..]),
        "the record carries the hybrid's ML-KEM key"
    );

    let (id, noise, sign) = h.device("hw-listen").await;
    h.fleets
        .registry
        .set_schema("ops", "hub", json!({"type": "object", "properties": {"interval_s": {"type": "integer", "default": 60}}}), vec![])
        .await
        .unwrap();
    h.fleets
        .registry
        .set_config(
            "ops",
            &id,
            ConfigUpdate::Merge(json!({"interval_s": 300})),
            None,
        )
        .await
        .unwrap();

    // IK with the key from the signed record ("IK-raw"); commands must verify
    // under the fleet key.
    let mut client = h.client(&id, &noise, &sign, "dev.json");
    assert!(matches!(
        client.connect().await.unwrap_err(),
        ClientError::NoServerKey
    ));
    client.trust_record(&record).unwrap();
    let mut config = ClientConfig::new(h.addr.to_string());
    config.fleet_key = Some(h.fleet_key().await);
    let mut client = h.client_with(config, &id, &noise, &sign, "dev.json");
    let mut s = client.connect().await.unwrap();
    assert!(!s.resumed());
    let cmd = next_command(&mut s).await;
    assert_eq!(
        (cmd.kind.as_str(), cmd.device_id.as_str()),
        ("update_config", id.as_str())
    );
    assert_eq!(s.send_telemetry(json!({"temp_c": 21.5})).await.unwrap(), 1);
    assert_eq!(s.recv().await.unwrap(), ServerMsg::TelemetryAck { seq: 1 });
    // The first session made the onboarded device active (audited); it was heard
    // from (written at the next flush, in one batch) and is connected.
    let d = h.fleets.registry.device(&id).await.unwrap();
    assert_eq!(d.state, DeviceState::Active);
    assert!(h.fleets.sessions.flush_seen().await.unwrap() >= 1);
    let d = h.fleets.registry.device(&id).await.unwrap();
    let seen = d.last_seen.expect("last_seen written by the flush");
    assert!((seen - h.fleets.now()).abs() <= 5, "{seen}");
    let sessions = &h.fleets.sessions;
    assert!(
        sessions
            .connected("hub", &id, &id, 60)
            .await
            .unwrap()
            .contains(&id)
    );
    let activated = h.store.audit_entries(0, 10_000).await.unwrap();
    assert!(
        activated
            .iter()
            .any(|e| e.action == "device.activate" && e.subject == format!("device:{id}")),
        "no device.activate entry"
    );
    // A forged receipt is refused; the device's own is acknowledged and stored.
    let forged =
        Ed25519Signer::generate()
            .unwrap()
            .sign(&fleetkey_client::messages::receipt_message(
                &cmd.id, &id, "applied", 7,
            ));
    s.send(&DeviceMsg::Receipt {
        command_id: cmd.id.clone(),
        status: "applied".into(),
        at: 7,
        signature: B64.encode(forged),
    })
    .await
    .unwrap();
    assert!(matches!(s.recv().await.unwrap(), ServerMsg::Error { .. }));
    s.receipt(&cmd, true).await.unwrap();
    assert_eq!(
        s.recv().await.unwrap(),
        ServerMsg::Ack {
            command_id: cmd.id.clone()
        }
    );
    assert_eq!(
        h.store.command(&cmd.id).await.unwrap().unwrap().state,
        CommandState::Done
    );
    s.close().await.unwrap();
    // Closed: no longer connected once the server has recorded the end.
    let mut tries = 0;
    while sessions
        .connected("hub", &id, &id, 60)
        .await
        .unwrap()
        .contains(&id)
    {
        tries += 1;
        assert!(tries < 100, "the session end was never recorded");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    // Decommissioned: the next session carries the wipe command and nothing else.
    h.fleets
        .onboarding
        .decommission("ops", &id, "end of life")
        .await
        .unwrap();
    let mut s = client.connect().await.unwrap();
    assert!(s.resumed());
    let wipe = next_command(&mut s).await;
    assert_eq!(wipe.kind, "wipe");
    s.send_telemetry(json!({"x": 1})).await.unwrap();
    assert!(matches!(s.recv().await.unwrap(), ServerMsg::Error { .. }));
    s.wipe_receipt().await.unwrap();
    assert_eq!(
        s.recv().await.unwrap(),
        ServerMsg::Ack {
            command_id: "wipe".into()
        }
    );
    assert!(matches!(
        s.recv().await.unwrap_err(),
        ClientError::Refused(r) if r == "decommissioned"
    ));
    drop(s);
    assert_eq!(
        h.fleets.registry.device(&id).await.unwrap().state,
        DeviceState::Decommissioned
    );
    // Reconnecting is refused, and not retried.
    assert!(matches!(
        client.connect_with_retry().await.unwrap_err(),
        ClientError::Refused(r) if r == "decommissioned"
    ));
    // Unknown keys: refused the same way. Regression (#16 item 4): each wrote an
    // audit entry, so anyone could grow the audit log at will; now they are
    // counted and audited as one summary per interval.
    for i in 0..30 {
        let stranger = Keypair::generate().unwrap();
        let mut other = h.client("dev_nobody", &stranger, &sign, &format!("stranger{i}.json"));
        other.trust_record(&record).unwrap();
        assert!(matches!(
            other.connect().await.unwrap_err(),
            ClientError::Refused(r) if r == "unknown_device"
        ));
    }
    h.listener.flush_refusals().await;
    // The wrong server key never completes a handshake.
    let mut fooled = h.client(&id, &noise, &sign, "fooled.json");
    let mut fake = record.clone();
    fake.keys.x25519 = *Keypair::generate().unwrap().public();
    fooled.trust_record(&fake).unwrap();
    assert!(matches!(
        fooled.connect().await.unwrap_err(),
        ClientError::Session(_)
    ));

    let metrics = h.metrics();
    for line in [
        "fleetkey_device_refusals_total{reason=\"decommissioned\"} 1",
        "fleetkey_device_refusals_total{reason=\"unknown_device\"} 30",
        "fleetkey_device_handshakes_total{pattern=\"IK\",result=\"ok\"} 2",
        "fleetkey_device_messages_total{result=\"accepted\",type=\"receipt\"} 1",
        "fleetkey_device_messages_total{result=\"refused\",type=\"receipt\"} 1",
        "fleetkey_device_messages_total{result=\"accepted\",type=\"wipe_receipt\"} 1",
        "fleetkey_device_messages_total{result=\"accepted\",type=\"telemetry\"} 1",
    ] {
        assert!(metrics.contains(line), "{line} missing:\n{metrics}");
    }
    // The audit log has the receipt, the wipe, the decommissioned device's
    // refusal and one summary of the 30 unknown keys' refusals.
    let entries = h.store.audit_entries(0, 1000).await.unwrap();
    let actions: Vec<&str> = entries.iter().map(|e| e.action.as_str()).collect();
    assert!(actions.contains(&"device.command_receipt"));
    let refused: Vec<_> = entries
        .iter()
        .filter(|e| e.action == "session.refused")
        .collect();
    assert_eq!(refused.len(), 2, "{refused:?}");
    assert_eq!(refused[0].subject, format!("device:{id}"));
    let summary: serde_json::Value = serde_json::from_str(&refused[1].details).unwrap();
    assert_eq!(
        (
            &summary["summary"],
            &summary["total"],
            &summary["interval_secs"]
        ),
        (&json!(true), &json!(30), &json!(60)),
        "{summary}"
    );
    assert_eq!(
        summary["refusals"],
        json!([{"reason": "unknown_device", "source": "127.0.0.0/24", "count": 30}])
    );
    // Telemetry reached the sink, attributed to device and fleet.
    let t = std::fs::read_to_string(h.dir.path().join("telemetry.jsonl")).unwrap();
    let line: serde_json::Value = serde_json::from_str(t.lines().next().unwrap()).unwrap();
    assert_eq!(
        (
            &line["device_id"],
            &line["fleet"],
            &line["seq"],
            &line["data"]
        ),
        (
            &json!(id),
            &json!("hub"),
            &json!(1),
            &json!({"temp_c": 21.5})
        )
    );
    assert_eq!(t.lines().count(), 1);
    h.stop().await;
}

#[tokio::test]
async fn first_contact_pins_the_key_and_a_restarted_client_resumes_without_duplicates() {
    let h = Harness::start(100).await;
    let (id, noise, sign) = h.device("hw-xx").await;
    {
        let mut c = h.client(&id, &noise, &sign, "xx.json");
        assert!(matches!(
            c.connect().await.unwrap_err(),
            ClientError::NoServerKey
        ));
        let mut config = ClientConfig::new(h.addr.to_string());
        config.allow_first_contact = true;
        let mut c = h.client_with(config, &id, &noise, &sign, "xx.json");
        let mut s = c.connect().await.unwrap();
        for i in 1..=2 {
            assert_eq!(s.send_telemetry(json!({"n": i})).await.unwrap(), i);
            assert_eq!(s.recv().await.unwrap(), ServerMsg::TelemetryAck { seq: i });
        }
        // The third is sent but the client "crashes" before reading its ack.
        s.send_telemetry(json!({"n": 3})).await.unwrap();
        drop(s);
        assert_eq!(c.state().pinned(), Some(h.listener.public_key()));
    }
    // Give the server a moment to store the third message.
    tokio::time::sleep(Duration::from_millis(200)).await;
    // Restart: same state file, first contact no longer allowed; IK with the pin.
    let mut c = h.client(&id, &noise, &sign, "xx.json");
    let before = c.state().clone();
    assert_eq!((before.sessions, before.telemetry_seq), (1, 3));
    let mut s = c.connect().await.unwrap();
    assert!(s.resumed(), "bound to the previous session");
    assert_ne!(
        Some(s.id()),
        before.session_id.as_deref(),
        "a fresh handshake"
    );
    assert_eq!(s.server_telemetry_seq(), 3);
    // A message sent again is recognised and dropped.
    s.send(&DeviceMsg::Telemetry {
        seq: 2,
        data: json!({"n": 2}),
    })
    .await
    .unwrap();
    assert_eq!(s.recv().await.unwrap(), ServerMsg::TelemetryAck { seq: 3 });
    // Regression: a seq of 2^63 or more was stored `as i64` (negative) and lost on
    // restart; a huge jump would make every later message a "duplicate". Both are
    // refused, nothing stored, and the session goes on.
    for seq in [1u64 << 63, u64::MAX, 3 + (1 << 32) + 1] {
        s.send(&DeviceMsg::Telemetry {
            seq,
            data: json!({"n": "far"}),
        })
        .await
        .unwrap();
        assert!(
            matches!(s.recv().await.unwrap(), ServerMsg::Error { .. }),
            "{seq}"
        );
    }
    assert_eq!(s.send_telemetry(json!({"n": 4})).await.unwrap(), 4);
    assert_eq!(s.recv().await.unwrap(), ServerMsg::TelemetryAck { seq: 4 });
    let session_id = s.id().to_owned();
    s.close().await.unwrap();
    let row = h.store.device_session(&session_id).await.unwrap().unwrap();
    assert_eq!(row.previous, before.session_id);
    // Pruning old session records keeps the device's telemetry position (the
    // server records the end once it notices the close).
    let mut ended = None;
    for _ in 0..100 {
        ended = h
            .store
            .device_session(&session_id)
            .await
            .unwrap()
            .unwrap()
            .ended_at;
        if ended.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let ended = ended.expect("the session end is recorded");
    assert_eq!(h.store.prune_device_sessions(ended + 1).await.unwrap(), 2);
    assert!(h.store.device_session(&session_id).await.unwrap().is_none());
    assert_eq!(h.store.device_telemetry_seq(&id).await.unwrap(), 4);
    assert_eq!(
        (row.pattern.as_str(), row.device_id.as_str()),
        ("IK", id.as_str())
    );
    let t = std::fs::read_to_string(h.dir.path().join("telemetry.jsonl")).unwrap();
    let seqs: Vec<u64> = t
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["seq"]
                .as_u64()
                .unwrap()
        })
        .collect();
    assert_eq!(seqs, vec![1, 2, 3, 4], "each message stored exactly once");

    // Naming another device's session does not resume it.
    let (id2, noise2, sign2) = h.device("hw-other").await;
    let mut c2 = h.client(&id2, &noise2, &sign2, "other.json");
    c2.trust_record(&h.server_record().await).unwrap();
    std::fs::write(
        h.dir.path().join("other.json"),
        serde_json::to_vec(&json!({"server_key": c.state().server_key, "session_id": session_id}))
            .unwrap(),
    )
    .unwrap();
    let mut c2 = h.client(&id2, &noise2, &sign2, "other.json");
    let s2 = c2.connect().await.unwrap();
    assert!(!s2.resumed());
    drop(s2);
    let metrics = h.metrics();
    for line in [
        "fleetkey_device_handshakes_total{pattern=\"XX\",result=\"ok\"} 1",
        "fleetkey_device_handshakes_total{pattern=\"IK\",result=\"ok\"} 2",
        "fleetkey_device_messages_total{result=\"duplicate\",type=\"telemetry\"} 1",
    ] {
        assert!(metrics.contains(line), "{line} missing:\n{metrics}");
    }
    h.stop().await;
}

/// Regression (#16 item 15): sessions open at shutdown never recorded their end
/// (`ended_at` stayed empty and pruning never removed them). Now shutdown ends
/// them, each recording its end and telemetry position, and pruning also removes
/// rows a killed server left open once the device has a newer session.
#[tokio::test]
async fn shutdown_ends_sessions_and_pruning_covers_abandoned_ones() {
    let h = Harness::start(100).await;
    let (id, noise, sign) = h.device("hw-shutdown").await;
    let mut config = ClientConfig::new(h.addr.to_string());
    config.allow_first_contact = true;
    let mut c = h.client_with(config, &id, &noise, &sign, "shutdown.json");
    let mut s = c.connect().await.unwrap();
    assert_eq!(s.send_telemetry(json!({"n": 1})).await.unwrap(), 1);
    assert_eq!(s.recv().await.unwrap(), ServerMsg::TelemetryAck { seq: 1 });
    let session_id = s.id().to_owned();
    // An abandoned row from before (a killed server), superseded by this session.
    let abandoned = fleetkey_server::store::DeviceSessionRecord {
        id: "00".repeat(16),
        device_id: id.clone(),
        previous: None,
        pattern: "IK".into(),
        peer: "127.0.0.1".into(),
        started_at: now() - 100,
        ended_at: None,
        telemetry_seq: 0,
        messages_in: 0,
        messages_out: 0,
    };
    h.store.open_device_session(&abandoned).await.unwrap();
    let store = h.store.clone();
    h.stop().await;
    let row = store.device_session(&session_id).await.unwrap().unwrap();
    assert!(row.ended_at.is_some(), "the end is recorded at shutdown");
    assert_eq!(row.telemetry_seq, 1);
    assert_eq!(store.device_telemetry_seq(&id).await.unwrap(), 1);
    // The device sees its session end (and would reconnect elsewhere).
    assert!(s.recv().await.is_err());
    // Pruning: the abandoned row goes (a newer session exists); the ended one is
    // kept until it is older than the cutoff.
    assert_eq!(store.prune_device_sessions(now() - 50).await.unwrap(), 1);
    assert!(store.device_session(&abandoned.id).await.unwrap().is_none());
    assert!(store.device_session(&session_id).await.unwrap().is_some());
}

/// Regression (#16 item 3): idle connections from many addresses (each within
/// its per-source limit) held every handshake slot for the whole handshake
/// deadline, and new devices were refused "busy". Now the oldest handshake in
/// progress gives way to a new connection, and idle ones leave after a few
/// seconds.
#[tokio::test]
async fn stalled_handshakes_cannot_keep_devices_out() {
    let h = Harness::start_with(ListenerConfig {
        connections_per_minute: 100,
        max_concurrent_handshakes: 4,
        ..Default::default()
    })
    .await;
    let (id, noise, sign) = h.device("hw-fair").await;
    // Eight peers from eight addresses send a valid preamble and stall.
    let pre = proto::preamble(
        fleetkey_session::Pattern::XX,
        fleetkey_session::Suite::ChaChaPolyBlake2s,
    )
    .unwrap();
    let mut stalled = Vec::new();
    for i in 2..10u8 {
        let bind: std::net::IpAddr = format!("127.0.0.{i}").parse().unwrap();
        let mut c = fleetkey_client::device::connect_tcp(&h.addr.to_string(), Some(bind))
            .await
            .unwrap();
        tokio::io::AsyncWriteExt::write_all(&mut c, &pre)
            .await
            .unwrap();
        stalled.push(c);
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    // A device still gets its session at once.
    let mut config = ClientConfig::new(h.addr.to_string());
    config.allow_first_contact = true;
    let mut c = h.client_with(config, &id, &noise, &sign, "fair.json");
    let t = std::time::Instant::now();
    let mut s = c
        .connect()
        .await
        .expect("a session despite the stalled peers");
    assert!(t.elapsed() < Duration::from_secs(2), "{:?}", t.elapsed());
    assert_eq!(s.send_telemetry(json!({"n": 1})).await.unwrap(), 1);
    assert!(
        h.metrics()
            .contains("fleetkey_device_refusals_total{reason=\"evicted\"}"),
        "evictions are counted"
    );
    drop(stalled);
}

/// Regression (#16 item 13): the client's outbox dropped the oldest unacknowledged
/// message at 1,024 although delivery is documented as at least once. Now a full
/// outbox refuses the send (nothing sent, no seq used) until acknowledgements are
/// read.
#[tokio::test]
async fn a_full_outbox_pushes_back_instead_of_dropping() {
    let h = Harness::start(100).await;
    let (id, noise, sign) = h.device("hw-outbox").await;
    let mut config = ClientConfig::new(h.addr.to_string());
    config.allow_first_contact = true;
    let mut c = h.client_with(config, &id, &noise, &sign, "outbox.json");
    let mut s = c.connect().await.unwrap();
    let max = fleetkey_client::device::MAX_OUTBOX as u64;
    for i in 1..=max {
        assert_eq!(s.send_telemetry(json!({"n": i})).await.unwrap(), i);
    }
    assert!(matches!(
        s.send_telemetry(json!({"n": "one too many"})).await,
        Err(ClientError::OutboxFull(n)) if n as u64 == max
    ));
    // Acknowledgements make room; the refused message used no sequence number.
    let mut acked = 0;
    while acked < max {
        match s.recv().await.unwrap() {
            ServerMsg::TelemetryAck { seq } => acked = seq,
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(
        s.send_telemetry(json!({"n": "next"})).await.unwrap(),
        max + 1
    );
    assert_eq!(
        s.recv().await.unwrap(),
        ServerMsg::TelemetryAck { seq: max + 1 }
    );
}

#[tokio::test]
async fn hybrid_sessions_and_credential_rotation_over_the_session() {
    let h = Harness::start(100).await;
    let (id, noise, sign) = h.device("hw-pq").await;
    h.fleets
        .commands
        .request_rotation("ops", &id, "yearly")
        .await
        .unwrap();
    // Regression: a client without the fleet key obeyed unsigned commands (a
    // wipe among them). Now it refuses every command it cannot verify.
    {
        let mut config = ClientConfig::new(h.addr.to_string());
        config.hybrid = true;
        let mut blind = h.client_with(config, &id, &noise, &sign, "blind.json");
        blind.trust_record(&h.server_record().await).unwrap();
        let mut s = blind.connect().await.unwrap();
        let refused = loop {
            match s.recv().await {
                Ok(ServerMsg::Command(_)) => panic!("a command accepted without a fleet key"),
                Ok(_) => continue,
                Err(e) => break e,
            }
        };
        assert!(refused.to_string().contains("no fleet key"), "{refused}");
    }
    let mut config = ClientConfig::new(h.addr.to_string());
    config.hybrid = true;
    config.fleet_key = Some(h.fleet_key().await);
    let mut c = h.client_with(config, &id, &noise, &sign, "pq.json");
    c.trust_record(&h.server_record().await).unwrap();
    let new_x = X25519Secret::generate().unwrap();
    let new_sign = Ed25519Signer::generate().unwrap();
    let new_keys = DeviceKeys {
        x25519: new_x.public_key().unwrap(),
        ed25519: new_sign.public_key(),
        ml_kem_768: None,
        ml_dsa_65: None,
    };
    {
        let mut s = c.connect().await.unwrap();
        let cmd = next_command(&mut s).await;
        assert_eq!(cmd.kind, "rotate_credential");
        // A proposal signed by the wrong key is refused.
        s.send(&DeviceMsg::RotationProposal {
            command_id: cmd.id.clone(),
            keys: (&new_keys).into(),
            signature: B64.encode(new_sign.sign(b"nonsense")),
        })
        .await
        .unwrap();
        assert!(matches!(s.recv().await.unwrap(), ServerMsg::Error { .. }));
        s.propose_rotation(&cmd, &new_keys).await.unwrap();
        let ServerMsg::Credential { credential_id, .. } = s.recv().await.unwrap() else {
            panic!("expected the new credential");
        };
        let cid: [u8; 16] = B64.decode(credential_id).unwrap().try_into().unwrap();
        s.confirm_rotation(&cmd.id, &cid, &new_sign).await.unwrap();
        assert_eq!(
            s.recv().await.unwrap(),
            ServerMsg::Ack {
                command_id: cmd.id.clone()
            }
        );
        s.close().await.unwrap();
    }
    let d = h.fleets.registry.device(&id).await.unwrap();
    assert_eq!(
        (d.state, d.x25519.as_slice()),
        (DeviceState::Active, &new_keys.x25519[..])
    );
    // The old key is no longer anyone's; the new one opens sessions.
    assert!(matches!(
        c.connect().await.unwrap_err(),
        ClientError::Refused(r) if r == "unknown_device"
    ));
    c.set_keys(
        Keypair::from_private(*new_x.expose_secret()).unwrap(),
        new_sign,
    );
    let s = c.connect().await.unwrap();
    assert!(s.resumed());
    drop(s);
    let metrics = h.metrics();
    for line in [
        // Three: the client without a fleet key, then the two of the rotation.
        "fleetkey_device_handshakes_total{pattern=\"IKpsk2+ML-KEM-768\",result=\"ok\"} 3",
        "fleetkey_key_rotations_total{kind=\"device_credential\"} 1",
        "fleetkey_device_messages_total{result=\"refused\",type=\"rotation_proposal\"} 1",
    ] {
        assert!(metrics.contains(line), "{line} missing:\n{metrics}");
    }
    h.stop().await;
}

#[tokio::test]
async fn reconnection_backs_off_gives_up_and_recovers_when_the_server_returns() {
    // Nothing listens: bounded attempts, then a clear error.
    let free = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = free.local_addr().unwrap();
    drop(free);
    let dir = tempfile::TempDir::new().unwrap();
    let mut config = ClientConfig::new(addr.to_string());
    config.backoff = Backoff {
        base: Duration::from_millis(20),
        max: Duration::from_millis(80),
        max_attempts: 4,
    };
    let mut state = fleetkey_client::SessionState::default();
    state.pin(*Keypair::generate().unwrap().public());
    state.save(&dir.path().join("s.json")).unwrap();
    let mut c = DeviceClient::new(
        config.clone(),
        "dev_x",
        Keypair::generate().unwrap(),
        Ed25519Signer::generate().unwrap(),
        dir.path().join("s.json"),
    )
    .unwrap();
    let started = std::time::Instant::now();
    match c.connect_with_retry().await.unwrap_err() {
        ClientError::GaveUp { attempts, last } => {
            assert_eq!(attempts, 4);
            assert!(last.is_transient());
        }
        other => panic!("{other:?}"),
    }
    // Three waits of at most 20, 40 and 80 ms.
    assert!(started.elapsed() < Duration::from_secs(5));

    // A server that comes up while the device retries: the device gets in.
    let h = Harness::start(100).await;
    let (id, noise, sign) = h.device("hw-late").await;
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let mut config = ClientConfig::new(port.to_string());
    config.backoff = Backoff {
        base: Duration::from_millis(50),
        max: Duration::from_millis(200),
        max_attempts: 40,
    };
    let mut c = h.client_with(config, &id, &noise, &sign, "late.json");
    c.trust_record(&h.server_record().await).unwrap();
    let listener = h.listener.clone();
    let relay = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(300)).await;
        let sock = tokio::net::TcpListener::bind(port).await.unwrap();
        listener.run(sock, std::future::pending()).await;
    });
    let s = c.connect_with_retry().await.unwrap();
    assert!(!s.resumed());
    drop(s);
    relay.abort();
    h.stop().await;
}

#[tokio::test]
async fn connection_limits_and_malformed_preambles_are_refused() {
    let h = Harness::start(3).await;
    let (id, noise, sign) = h.device("hw-limit").await;
    let mut c = h.client(&id, &noise, &sign, "l.json");
    c.trust_record(&h.server_record().await).unwrap();
    // A preamble for an unknown version: closed without a handshake.
    {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut sock = tokio::net::TcpStream::connect(h.addr).await.unwrap();
        sock.write_all(b"FK\x09\x11").await.unwrap();
        let mut buf = [0u8; 1];
        assert_eq!(sock.read(&mut buf).await.unwrap_or(0), 0);
    }
    for _ in 0..2 {
        drop(c.connect().await.unwrap());
    }
    // Three new connections a minute from one address; the fourth is dropped.
    let e = c.connect().await.unwrap_err();
    assert!(e.is_transient(), "{e:?}");
    let metrics = h.metrics();
    for line in [
        "fleetkey_device_refusals_total{reason=\"rate_limited\"} 1",
        "fleetkey_device_refusals_total{reason=\"bad_preamble\"} 1",
    ] {
        assert!(metrics.contains(line), "{line} missing:\n{metrics}");
    }
    h.stop().await;
}
