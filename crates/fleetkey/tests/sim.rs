//! The fleet simulator against a real `fleetkey serve`: full-profile devices
//! provisioned and onboarded over HTTP, then Noise sessions with telemetry;
//! constrained devices provisioned with sealed PSKs, then boots and frames over
//! UDP; everything lands in the telemetry file and the metrics.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::Server;
use fleetkey_sim::{Endpoints, Sim};
use std::time::Duration;

#[tokio::test]
async fn simulated_devices_of_both_profiles_reach_the_server() {
    let dir = tempfile::TempDir::new().unwrap();
    let server = Server::start(dir.path());
    let token = Server::admin_token(dir.path());
    let http = reqwest::Client::new();
    let r = http
        .post(format!("{}/v1/fleets", server.addr()))
        .bearer_auth(&token)
        .json(&serde_json::json!({"name": "sim"}))
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "{}", r.text().await.unwrap());
    let sim = Sim::connect(
        Endpoints {
            http: server.addr(),
            sessions: format!("127.0.0.1:{}", server.device_port),
            frames: format!("127.0.0.1:{}", server.udp_port),
        },
        &token,
        "sim",
        dir.path().join("devices"),
    )
    .await
    .unwrap();
    let mut full = Vec::new();
    for i in 0..3 {
        full.push(sim.provision_full(&format!("full-{i}")).await.unwrap());
    }
    let mut small = Vec::new();
    for i in 0..2 {
        small.push(
            sim.provision_constrained(&format!("small-{i}"))
                .await
                .unwrap(),
        );
    }
    for d in &mut full {
        let stats = sim.run_session(d, 3).await.unwrap();
        assert_eq!(stats.telemetry_acked, 3);
        assert_eq!(stats.connect_latencies.len(), 1);
    }
    for d in &mut small {
        sim.boot(d).await.unwrap();
        for i in 0..3 {
            // Datagrams from one socket to loopback keep their order; a short gap
            // keeps the server's per-device order too.
            tokio::time::sleep(Duration::from_millis(20)).await;
            sim.send_frame(d, &serde_json::json!({"i": i}))
                .await
                .unwrap();
        }
    }
    let want = [
        "fleetkey_device_frames_total{result=\"accepted\"} 8",
        "fleetkey_device_handshakes_total{pattern=\"IK\",result=\"ok\"} 3",
        "fleetkey_constrained_devices_active{profile=\"constrained\"} 2",
    ];
    let mut metrics = String::new();
    for _ in 0..100 {
        metrics = common::get(server.port, "/metrics").unwrap_or_default();
        if want.iter().all(|w| metrics.contains(w)) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    for w in want {
        assert!(metrics.contains(w), "{w} missing:\n{metrics}");
    }
    // 9 session messages and 6 frames in the telemetry file (flushed within 50 ms).
    let path = dir.path().join("fleetkey-data/telemetry.jsonl");
    let mut lines = 0;
    for _ in 0..100 {
        lines = std::fs::read_to_string(&path).map_or(0, |t| t.lines().count());
        if lines == 15 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(lines, 15);
    assert!(server.stop().success());
}
