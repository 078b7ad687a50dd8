//! The downlink to constrained devices against a real `fleetkey serve`: a
//! simulated device (the `fleetkey-device` crate over UDP) receives a config
//! update, a rekey and its wipe as control frames, acknowledges each, and ends
//! `decommissioned` with the wipe confirmed; lost frames are sent again; a
//! decommissioning device's telemetry is refused; the gateway path carries the
//! same commands in its response; and everything is in the audit log.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::Server;
use fleetkey_sim::{Endpoints, Heard, Sim};
use serde_json::{Value, json};
use std::time::Duration;

struct Fixture {
    server: Server,
    token: String,
    http: reqwest::Client,
    sim: Sim,
    _dir: tempfile::TempDir,
}

impl Fixture {
    async fn new() -> Self {
        let dir = tempfile::TempDir::new().unwrap();
        let server = Server::start(dir.path());
        let token = Server::admin_token(dir.path());
        let http = reqwest::Client::new();
        let f = |path: &str| format!("{}{path}", server.addr());
        let r = http
            .post(f("/v1/fleets"))
            .bearer_auth(&token)
            .json(&json!({"name": "dl"}))
            .send()
            .await
            .unwrap();
        assert!(r.status().is_success(), "{}", r.text().await.unwrap());
        let schema: Value =
            serde_json::from_str(include_str!("../../../examples/thermostat-schema.json")).unwrap();
        let r = http
            .put(f("/v1/fleets/dl/schema"))
            .bearer_auth(&token)
            .json(&json!({ "schema": schema }))
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
            "dl",
            dir.path().join("devices"),
        )
        .await
        .unwrap();
        Self {
            server,
            token,
            http,
            sim,
            _dir: dir,
        }
    }

    async fn call(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> (u16, Value) {
        let mut r = self
            .http
            .request(method, format!("{}{path}", self.server.addr()))
            .bearer_auth(&self.token);
        if let Some(b) = body {
            r = r.json(&b);
        }
        let r = r.send().await.unwrap();
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    async fn device(&self, id: &str) -> Value {
        self.call(
            reqwest::Method::GET,
            &format!("/v1/fleets/dl/devices/{id}"),
            None,
        )
        .await
        .1
    }

    async fn commands(&self, id: &str) -> Vec<Value> {
        let (_, v) = self
            .call(
                reqwest::Method::GET,
                &format!("/v1/fleets/dl/devices/{id}/commands"),
                None,
            )
            .await;
        v["commands"].as_array().cloned().unwrap_or_default()
    }

    async fn metrics(&self) -> String {
        common::get(self.server.port, "/metrics").unwrap_or_default()
    }
}

fn gap() -> tokio::time::Sleep {
    // Datagrams from one socket keep their order on loopback; a short gap keeps
    // the server's per-device order too.
    tokio::time::sleep(Duration::from_millis(30))
}

#[tokio::test]
async fn a_constrained_device_is_reconfigured_rekeyed_and_wiped_over_its_downlink() {
    let f = Fixture::new().await;
    let mut d = f.sim.provision_constrained("tiny-1").await.unwrap();
    f.sim.boot(&mut d).await.unwrap();
    gap().await;
    f.sim.send_frame(&mut d, &json!({"t": 20})).await.unwrap();
    // Nothing is open: nothing comes down.
    assert_eq!(
        f.sim
            .listen(&mut d, Duration::from_millis(300), 0)
            .await
            .unwrap(),
        vec![]
    );
    assert_eq!(f.device(&d.id).await["state"], "active");

    // A config update goes down after the device's next frame, at once (the
    // change expired the frame path's cached copy).
    let (s, _) = f
        .call(
            reqwest::Method::PATCH,
            &format!("/v1/fleets/dl/devices/{}/config", d.id),
            Some(json!({"patch": {"interval_s": 60}})),
        )
        .await;
    assert_eq!(s, 200);
    f.sim.send_frame(&mut d, &json!({"t": 21})).await.unwrap();
    let heard = f
        .sim
        .listen(&mut d, Duration::from_secs(2), 0)
        .await
        .unwrap();
    let Some(Heard::Config(c)) = heard.first() else {
        panic!("{heard:?}");
    };
    assert_eq!(c["config"]["interval_s"], 60);
    assert_eq!(c["revision"], 2);
    // The acknowledgement ended the command (applied).
    let mut done = false;
    for _ in 0..50 {
        let cmds = f.commands(&d.id).await;
        if cmds
            .iter()
            .any(|c| c["kind"] == "update_config" && c["state"] == "done")
        {
            done = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(done, "{:?}", f.commands(&d.id).await);

    // Rotate on a constrained device is a rekey: the device boots again.
    let (s, cmd) = f
        .call(
            reqwest::Method::POST,
            &format!("/v1/fleets/dl/devices/{}/rotate", d.id),
            Some(json!({"reason": "drill"})),
        )
        .await;
    assert_eq!(s, 202, "{cmd}");
    assert_eq!(cmd["kind"], "rekey");
    let boot = d.boot_counter();
    f.sim.send_frame(&mut d, &json!({"t": 22})).await.unwrap();
    let heard = f
        .sim
        .listen(&mut d, Duration::from_secs(2), 0)
        .await
        .unwrap();
    assert!(heard.contains(&Heard::Rekeyed), "{heard:?}");
    assert_eq!(d.boot_counter(), boot + 1);
    gap().await;
    // The new boot's frames verify.
    f.sim.send_frame(&mut d, &json!({"t": 23})).await.unwrap();

    // Decommissioning: telemetry is refused, the wipe goes down (the first two
    // frames are lost and sent again), the device acknowledges and erases its
    // keys, and decommissioning ends with the wipe confirmed.
    let (s, v) = f
        .call(
            reqwest::Method::POST,
            &format!("/v1/fleets/dl/devices/{}/decommission", d.id),
            Some(json!({"reason": "end of life"})),
        )
        .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["state"], "decommissioning");
    f.sim.send_frame(&mut d, &json!({"t": 24})).await.unwrap();
    let heard = f
        .sim
        .listen(&mut d, Duration::from_secs(5), 2)
        .await
        .unwrap();
    assert_eq!(heard, vec![Heard::Wiped]);
    assert!(d.is_wiped());
    let mut state = Value::Null;
    for _ in 0..50 {
        state = f.device(&d.id).await["state"].clone();
        if state == "decommissioned" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(state, "decommissioned");
    let m = f.metrics().await;
    for want in [
        "fleetkey_device_downlinks_total{kind=\"wipe\",result=\"acked\"} 1",
        "fleetkey_device_downlinks_total{kind=\"update_config\",result=\"acked\"} 1",
        "fleetkey_device_downlinks_total{kind=\"rekey\",result=\"acked\"} 1",
        "fleetkey_device_frames_total{result=\"decommissioned\"} 1",
    ] {
        assert!(m.contains(want), "{want} missing:\n{m}");
    }
    let resent = m
        .lines()
        .find(|l| l.starts_with("fleetkey_device_downlinks_total{kind=\"wipe\",result=\"resent\"}"))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|n| n.parse::<u32>().ok())
        .unwrap_or(0);
    assert!(resent >= 2, "the wipe was not sent again:\n{m}");

    // The audit log holds the device's own confirmation, from its frame.
    let (_, audit) = f
        .call(reqwest::Method::GET, "/v1/audit?limit=1000", None)
        .await;
    let entries = audit["entries"].as_array().cloned().unwrap_or_default();
    let wiped = entries
        .iter()
        .find(|e| e["action"] == "device.wiped")
        .unwrap_or_else(|| panic!("no device.wiped entry: {audit}"));
    assert_eq!(wiped["actor"], format!("device:{}", d.id));
    let details: Value = serde_json::from_str(wiped["details"].as_str().unwrap()).unwrap();
    assert_eq!(details["via"], "control_frame");
    assert_eq!(details["kind"], "wipe");
    assert!(
        entries
            .iter()
            .any(|e| e["action"] == "device.rekey_requested")
    );

    // The wiped device cannot boot; its old frames are refused.
    assert!(f.sim.boot(&mut d).await.is_err());
    f.sim.replay_last(&d).await.unwrap();
    assert!(f.server.stop().success());
}

impl Fixture {
    /// Waits (up to 10 s) until `check` holds for the device's record.
    async fn wait_device(&self, id: &str, check: impl Fn(&Value) -> bool) -> Value {
        let mut d = Value::Null;
        for _ in 0..200 {
            d = self.device(id).await;
            if check(&d) {
                return d;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("device {id} never got there: {d}");
    }

    /// Waits (up to 10 s) until the device has a `kind` command in `state`.
    async fn wait_command(&self, id: &str, kind: &str, state: &str) {
        for _ in 0..200 {
            if self
                .commands(id)
                .await
                .iter()
                .any(|c| c["kind"] == kind && c["state"] == state)
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("no {kind} command {state}: {:?}", self.commands(id).await);
    }
}

/// The same life, with the device written independently from docs/protocol.md
/// in Python (`tests/python/device_frames.py`): its frames verify, it opens the
/// server's control frames, and its acknowledgements end the commands.
#[tokio::test]
async fn an_independent_python_device_follows_its_downlink() {
    let f = Fixture::new().await;
    let scalar: [u8; 32] = fleetkey_crypto::rand::array().unwrap();
    let psk: [u8; 32] = fleetkey_crypto::rand::array().unwrap();
    let d = f
        .sim
        .provision_constrained_with("py-1", scalar, psk)
        .await
        .unwrap();
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/python/device_frames.py");
    let child = std::process::Command::new("python3")
        .arg(script)
        .args([
            "run",
            &format!("127.0.0.1:{}", f.server.udp_port),
            d.id.strip_prefix("dev_").unwrap(),
            &hex::encode(scalar),
            &hex::encode(f.sim.server_x25519()),
            &hex::encode(psk),
            "40",
        ])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Its first boot onboards it; it sends telemetry every 0.3 s.
    f.wait_device(&d.id, |v| v["state"] == "active").await;
    let (s, _) = f
        .call(
            reqwest::Method::PATCH,
            &format!("/v1/fleets/dl/devices/{}/config", d.id),
            Some(json!({"patch": {"interval_s": 120, "unit": "fahrenheit"}})),
        )
        .await;
    assert_eq!(s, 200);
    f.wait_command(&d.id, "update_config", "done").await;
    let (s, _) = f
        .call(
            reqwest::Method::POST,
            &format!("/v1/fleets/dl/devices/{}/rotate", d.id),
            Some(json!({})),
        )
        .await;
    assert_eq!(s, 202);
    f.wait_command(&d.id, "rekey", "done").await;
    let (s, _) = f
        .call(
            reqwest::Method::POST,
            &format!("/v1/fleets/dl/devices/{}/decommission", d.id),
            Some(json!({"reason": "interop"})),
        )
        .await;
    assert_eq!(s, 200);
    f.wait_device(&d.id, |v| v["state"] == "decommissioned")
        .await;
    let out = tokio::task::spawn_blocking(move || child.wait_with_output().unwrap())
        .await
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let events: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let of = |e: &str| {
        events
            .iter()
            .filter(|v| v["event"] == e)
            .collect::<Vec<_>>()
    };
    assert_eq!(of("boot").len(), 2, "{text}");
    assert_eq!(of("config").len(), 1, "{text}");
    assert_eq!(of("config")[0]["body"]["config"]["interval_s"], 120);
    assert_eq!(of("config")[0]["body"]["config"]["unit"], "fahrenheit");
    assert_eq!(of("rekey").len(), 1, "{text}");
    assert_eq!(of("wiped").len(), 1, "{text}");
    assert!(of("refused").is_empty(), "{text}");
    assert!(f.server.stop().success());
}
