//! The device listener over loopback TCP: provision -> onboard -> open an IK
//! session -> receive a signed config command -> return a signed receipt ->
//! decommission -> reconnect refused (and audited); unknown keys refused; the
//! per-source connection limit.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use base64::{Engine as _, engine::general_purpose::STANDARD as B64};
use fleetkey_crypto::ed25519::Ed25519Signer;
use fleetkey_crypto::x25519::X25519Secret;
use fleetkey_server::api::listener::{DeviceListener, ListenerConfig};
use fleetkey_server::api::server;
use fleetkey_server::config::Config;
use fleetkey_server::custody::local::{KekSource, LocalCustody};
use fleetkey_server::fleet::commands::receipt_message;
use fleetkey_server::fleet::{ConfigUpdate, FactoryRequest, onboarding_message};
use fleetkey_server::keys::{KeyConfig, KeyService};
use fleetkey_server::store::{CommandState, DeviceState, Store, sqlite::SqliteStore};
use fleetkey_server::{clock::SystemClock, tokens::TokenService};
use fleetkey_session::io::{Session, handshake};
use fleetkey_session::{Builder, Keypair, Pattern, Suite};
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::Instant;
use tokio::net::TcpStream;

async fn connect(
    addr: std::net::SocketAddr,
    me: &Keypair,
    server: [u8; 32],
) -> fleetkey_session::Result<Session<TcpStream>> {
    let sock = TcpStream::connect(addr).await.unwrap();
    let hs = Builder::new(Pattern::IK, Suite::ChaChaPolyBlake2s)
        .local(me)
        .remote(server)
        .initiator(Instant::now())?;
    Ok(handshake(sock, hs, b"").await?.0)
}

async fn recv_json(s: &mut Session<TcpStream>) -> Value {
    serde_json::from_slice(&s.recv().await.unwrap()).unwrap()
}

#[tokio::test]
async fn a_device_session_from_config_command_to_refusal_after_decommissioning() {
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
    let fleets = fleetkey_server::fleet::FleetService::new(store.clone(), custody, clock);
    let state = server::state(&Config::default(), keys, tokens, fleets.clone()).unwrap();
    let listener = DeviceListener::new(
        state.clone(),
        ListenerConfig {
            connections_per_minute: 4,
            ..Default::default()
        },
    )
    .await
    .unwrap();
    // The static key survives a restart (it lives in custody, not in memory).
    let again = DeviceListener::new(state.clone(), ListenerConfig::default())
        .await
        .unwrap();
    assert_eq!(again.public_key(), listener.public_key());
    let server_key = listener.public_key();
    // Devices can learn the listener's key from the signed directory.
    let rec = fleetkey_crypto::record::verify(
        &fleets.directory().record("fleetkey-server").await.unwrap(),
        fleetkey_crypto::cwt::IssuerPublicKey::Composite(&fleets.directory().public_key()),
        fleetkey_crypto::record::Freshness {
            now: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_secs() as i64,
            max_age_secs: fleetkey_crypto::record::DEFAULT_MAX_AGE_SECS,
            last_sequence: None,
        },
    )
    .unwrap();
    assert_eq!(
        (rec.keys.x25519, rec.sequence),
        (server_key, 1),
        "published once, not again on restart"
    );
    let sock = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = sock.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let run = tokio::spawn(listener.run(sock, async move {
        let _ = stopped.await;
    }));

    // Factory and onboarding; the device keeps its private keys.
    let fleet = fleets.create_fleet("ops", "hub", None).await.unwrap();
    let fleet_pk = hex::decode(fleet.issuer_public_key).unwrap();
    fleets
        .set_schema("ops", "hub", json!({"type": "object", "properties": {"interval_s": {"type": "integer", "default": 60}}}), vec![])
        .await
        .unwrap();
    let x = X25519Secret::generate().unwrap();
    let static_key = Keypair::from_private(*x.expose_secret()).unwrap();
    let sign = Ed25519Signer::generate().unwrap();
    let p = fleets
        .provision(
            "jig",
            FactoryRequest {
                fleet: "hub".into(),
                hardware_id: "hw-listen".into(),
                model: "m".into(),
                batch: "b".into(),
                station: "s".into(),
                keys: fleetkey_crypto::credential::DeviceKeys {
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
    let c = fleets.challenge(&id).await.unwrap();
    fleets
        .onboard(
            &p.device.birth_credential,
            &c.nonce,
            &sign.sign(&onboarding_message(&id, &c.nonce, c.issued_at)),
        )
        .await
        .unwrap();
    fleets
        .transition("ops", &id, DeviceState::Active)
        .await
        .unwrap();
    fleets
        .set_config(
            "ops",
            &id,
            ConfigUpdate::Merge(json!({"interval_s": 300})),
            None,
        )
        .await
        .unwrap();

    // The session: the pending config command arrives, signed by the fleet key.
    let mut s = connect(addr, &static_key, server_key).await.unwrap();
    let cmd = recv_json(&mut s).await;
    assert_eq!(
        (cmd["type"].as_str(), cmd["kind"].as_str()),
        (Some("command"), Some("update_config")),
        "{cmd}"
    );
    let msg = fleetkey_server::fleet::commands::command_message(
        cmd["id"].as_str().unwrap(),
        &id,
        fleetkey_server::store::CommandKind::UpdateConfig,
        cmd["created_at"].as_i64().unwrap(),
        cmd["payload"].as_str().unwrap(),
    );
    fleetkey_crypto::ed25519::verify(
        &fleet_pk,
        &msg,
        &B64.decode(cmd["signature"].as_str().unwrap()).unwrap(),
    )
    .unwrap();
    let cmd_id = cmd["id"].as_str().unwrap().to_owned();
    s.send(
        json!({"type": "telemetry", "data": {"temp_c": 21.5}})
            .to_string()
            .as_bytes(),
    )
    .await
    .unwrap();
    // A forged receipt is refused; the device's own is acknowledged and stored.
    let forged = Ed25519Signer::generate()
        .unwrap()
        .sign(&receipt_message(&cmd_id, &id, "applied", 7));
    s.send(json!({"type": "receipt", "command_id": cmd_id, "status": "applied", "at": 7, "signature": B64.encode(forged)}).to_string().as_bytes()).await.unwrap();
    assert_eq!(recv_json(&mut s).await["type"], "error");
    let receipt = sign.sign(&receipt_message(&cmd_id, &id, "applied", 7));
    s.send(json!({"type": "receipt", "command_id": cmd_id, "status": "applied", "at": 7, "signature": B64.encode(receipt)}).to_string().as_bytes()).await.unwrap();
    assert_eq!(
        recv_json(&mut s).await,
        json!({"type": "ack", "command_id": cmd_id})
    );
    assert_eq!(
        store.command(&cmd_id).await.unwrap().unwrap().state,
        CommandState::Done
    );
    drop(s);

    // Decommissioned: the handshake completes, then the device is told why and cut off.
    fleets
        .decommission("ops", &id, "end of life")
        .await
        .unwrap();
    let mut s = connect(addr, &static_key, server_key).await.unwrap();
    assert_eq!(
        recv_json(&mut s).await,
        json!({"type": "refused", "reason": "decommissioned"})
    );
    assert!(s.recv().await.is_err(), "closed after the refusal");
    // An unknown key: refused the same way.
    let stranger = Keypair::generate().unwrap();
    let mut s = connect(addr, &stranger, server_key).await.unwrap();
    assert_eq!(
        recv_json(&mut s).await,
        json!({"type": "refused", "reason": "unknown_device"})
    );
    // The wrong server key never completes a handshake.
    assert!(
        connect(addr, &static_key, *Keypair::generate().unwrap().public())
            .await
            .is_err()
    );
    // Four new connections a minute from one address; the fifth is dropped.
    assert!(connect(addr, &static_key, server_key).await.is_err());
    let metrics = state.metrics.render(&state.keys, false);
    assert!(
        metrics.contains("fleetkey_device_refusals_total{reason=\"rate_limited\"} 1"),
        "{metrics}"
    );
    assert!(metrics.contains("fleetkey_device_refusals_total{reason=\"decommissioned\"} 1"));
    assert!(metrics.contains("fleetkey_device_handshakes_total{pattern=\"IK\",result=\"ok\"} 1"));
    // The audit log has the receipt and both refusals.
    let entries = store.audit_entries(0, 1000).await.unwrap();
    let actions: Vec<&str> = entries.iter().map(|e| e.action.as_str()).collect();
    assert!(actions.contains(&"device.command_receipt"));
    assert_eq!(
        actions.iter().filter(|a| **a == "session.refused").count(),
        2
    );
    let _ = stop.send(());
    run.await.unwrap();
}
