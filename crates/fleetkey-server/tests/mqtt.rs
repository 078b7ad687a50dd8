//! The MQTT telemetry sink against a real broker (Mosquitto in CI:
//! `FLEETKEY_TEST_MQTT_URL`, set by `.ci/run`). Ignored by a plain `cargo test`
//! (the embedded default needs no broker); `.ci/run` runs it with `--ignored`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use fleetkey_server::telemetry::mqtt::{MqttSink, parse_url};
use fleetkey_server::telemetry::{TelemetryRecord, TelemetrySink};
use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
use std::time::Duration;

#[tokio::test]
#[ignore = "needs FLEETKEY_TEST_MQTT_URL (.ci/run sets it)"]
async fn telemetry_reaches_subscribers_on_a_real_broker() {
    let url = std::env::var("FLEETKEY_TEST_MQTT_URL")
        .expect("FLEETKEY_TEST_MQTT_URL is not set: this test needs a broker (.ci/run sets it)");
    let run = u64::from_be_bytes(fleetkey_crypto::rand::array().unwrap());
    let prefix = format!("fleetkey-test-{run:016x}");
    // A subscriber first, so nothing is missed.
    let (host, port) = parse_url(&url).unwrap();
    let (sub, mut events) =
        AsyncClient::new(MqttOptions::new(format!("sub-{run:x}"), host, port), 64);
    sub.subscribe(format!("{prefix}/#"), QoS::AtLeastOnce)
        .await
        .unwrap();
    loop {
        if let Event::Incoming(Packet::SubAck(_)) = events.poll().await.unwrap() {
            break;
        }
    }
    let sink = MqttSink::connect(&url, &format!("pub-{run:x}"), &prefix)
        .await
        .unwrap();
    for seq in 1..=3u64 {
        sink.deliver(&TelemetryRecord {
            device_id: "dev_0102030405060708".into(),
            fleet: "sensors".into(),
            session: "boot-1".into(),
            seq,
            received_at: 1_800_000_000,
            data: serde_json::json!({"t": seq}),
        })
        .await
        .unwrap();
    }
    // Flush returns once the broker acknowledged all three.
    sink.flush().await.unwrap();
    let mut got = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while got.len() < 3 {
        let ev = tokio::time::timeout_at(deadline, events.poll())
            .await
            .expect("messages within 10 s")
            .unwrap();
        if let Event::Incoming(Packet::Publish(p)) = ev {
            assert_eq!(
                p.topic,
                format!("{prefix}/sensors/dev_0102030405060708/telemetry")
            );
            let v: serde_json::Value = serde_json::from_slice(&p.payload).unwrap();
            assert_eq!(v["fleet"], "sensors");
            got.push((v["seq"].as_u64().unwrap(), v["data"]["t"].as_u64().unwrap()));
        }
    }
    got.sort();
    assert_eq!(got, (1..=3).map(|i| (i, i)).collect::<Vec<_>>());
}

#[tokio::test]
async fn an_unreachable_broker_is_a_clear_error() {
    // A port nothing listens on.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let e = MqttSink::connect(&format!("mqtt://127.0.0.1:{port}"), "x", "p")
        .await
        .err()
        .expect("refused");
    assert!(e.to_string().contains("MQTT broker"), "{e}");
}
