//! Several `fleetkey serve` processes on one PostgreSQL (`FLEETKEY_TEST_POSTGRES_URL`)
//! and one Redis (`FLEETKEY_TEST_REDIS_URL`), both set by `.ci/run`; without them
//! this test says so and does nothing. Two instances with the same custody root
//! serve one deployment: envelopes sealed on either open on the other, a rotation on
//! one is used by the other within 1 s, the audit log is one chain that verifies;
//! an instance with another custody root and one with a name in use are refused.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use serde_json::{Value, json};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

struct Instance {
    child: Child,
    base: String,
}

impl Drop for Instance {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn spawn(dir: &std::path::Path, name: &str, env: &[(&str, String)]) -> (Child, u16) {
    let port = common::free_port();
    std::fs::create_dir_all(dir).unwrap();
    let mut c = Command::new(assert_cmd::cargo::cargo_bin("fleetkey"));
    c.arg("serve")
        .env("HOME", dir.join("home"))
        .env_remove("FLEETKEY_ROOT_KEY_FILE")
        .env("FLEETKEY_PASSPHRASE", "several instances")
        .env("FLEETKEY_DATA_DIR", dir)
        .env("FLEETKEY_LISTEN", format!("127.0.0.1:{port}"))
        .env("FLEETKEY_DEVICE_LISTEN", "off")
        .env("FLEETKEY_DEVICE_UDP_LISTEN", "off")
        .env("FLEETKEY_INSTANCE_NAME", name)
        .env("FLEETKEY_INSTANCES", "2")
        .env("FLEETKEY_LOG_FORMAT", "json")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(dir.join(format!("serve-{name}.log"))).unwrap());
    for (k, v) in env {
        c.env(k, v);
    }
    (c.spawn().unwrap(), port)
}

fn start(dir: &std::path::Path, name: &str, env: &[(&str, String)]) -> Instance {
    let (mut child, port) = spawn(dir, name, env);
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        if common::get(port, "/healthz").is_some_and(|r| r.starts_with("HTTP/1.1 200")) {
            return Instance {
                child,
                base: format!("http://127.0.0.1:{port}"),
            };
        }
        if let Some(s) = child.try_wait().unwrap() {
            panic!(
                "instance {name} exited with {s}: {}",
                std::fs::read_to_string(dir.join(format!("serve-{name}.log"))).unwrap_or_default()
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("instance {name} did not start");
}

/// Starts an instance that must refuse to start; returns its log.
fn refused(dir: &std::path::Path, name: &str, env: &[(&str, String)]) -> String {
    let (mut child, _) = spawn(dir, name, env);
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(s) = child.try_wait().unwrap() {
            assert!(!s.success());
            return std::fs::read_to_string(dir.join(format!("serve-{name}.log"))).unwrap();
        }
        assert!(Instant::now() < deadline, "instance {name} did not refuse");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn two_serve_processes_share_postgres_and_redis() {
    let (Some(pg), Some(redis)) = (
        std::env::var("FLEETKEY_TEST_POSTGRES_URL")
            .ok()
            .filter(|v| !v.is_empty()),
        std::env::var("FLEETKEY_TEST_REDIS_URL")
            .ok()
            .filter(|v| !v.is_empty()),
    ) else {
        eprintln!(
            "FLEETKEY_TEST_POSTGRES_URL and FLEETKEY_TEST_REDIS_URL are not both set: skipping"
        );
        return;
    };
    let tmp = tempfile::TempDir::new().unwrap();
    let r: [u8; 6] = fleetkey_crypto::rand::array().unwrap();
    let tag: String = r.iter().map(|b| format!("{b:02x}")).collect();
    let env = vec![
        ("FLEETKEY_STORE_URL", pg),
        ("FLEETKEY_STORE_SCHEMA", format!("fkmi_{tag}")),
        ("FLEETKEY_REDIS_URL", redis),
        ("FLEETKEY_REDIS_PREFIX", format!("fkmi-{tag}")),
    ];
    let a = start(&tmp.path().join("a"), "a", &env);
    // b holds the same custody root (copied, same passphrase).
    std::fs::create_dir_all(tmp.path().join("b")).unwrap();
    std::fs::copy(
        tmp.path().join("a/root-key.json"),
        tmp.path().join("b/root-key.json"),
    )
    .unwrap();
    let b = start(&tmp.path().join("b"), "b", &env);
    // Another custody root, or a name in use: refused.
    let log = refused(&tmp.path().join("c"), "c", &env);
    assert!(log.contains("custody root key is not the one"), "{log}");
    std::fs::create_dir_all(tmp.path().join("d")).unwrap();
    std::fs::copy(
        tmp.path().join("a/root-key.json"),
        tmp.path().join("d/root-key.json"),
    )
    .unwrap();
    let log = refused(&tmp.path().join("d"), "a", &env);
    assert!(log.contains("in use by another live instance"), "{log}");

    let token = std::fs::read_to_string(tmp.path().join("a/admin.token"))
        .unwrap()
        .trim()
        .to_owned();
    let http = reqwest::Client::new();
    let call = |method: reqwest::Method, url: String, body: Option<Value>| {
        let (http, token) = (http.clone(), token.clone());
        async move {
            let mut r = http.request(method, url).bearer_auth(token);
            if let Some(b) = body {
                r = r.json(&b);
            }
            let resp = r.send().await.unwrap();
            let s = resp.status().as_u16();
            (s, resp.json::<Value>().await.unwrap_or(Value::Null))
        }
    };
    let post = reqwest::Method::POST;
    let (s, v) = call(
        post.clone(),
        format!("{}/v1/keyrings", a.base),
        Some(json!({"name": "pay"})),
    )
    .await;
    assert_eq!(s, 201, "{v}");
    let mut sealed = Vec::new();
    for (i, base) in [&a.base, &b.base, &a.base, &b.base].into_iter().enumerate() {
        let (s, v) = call(
            post.clone(),
            format!("{base}/v1/keyrings/pay/seal"),
            Some(json!({"plaintext": "NDI0Mg==", "aad": "ZGVtbw=="})),
        )
        .await;
        assert_eq!(s, 200, "{i}: {v}");
        sealed.push(v["ciphertext"].as_str().unwrap().to_owned());
    }
    // Rotation on a: b seals under version 2 within 1 s.
    let (s, _) = call(
        post.clone(),
        format!("{}/v1/keyrings/pay/rotate", a.base),
        None,
    )
    .await;
    assert_eq!(s, 200);
    let t = Instant::now();
    loop {
        let (s, v) = call(
            post.clone(),
            format!("{}/v1/keyrings/pay/seal", b.base),
            Some(json!({"plaintext": "NDI0Mg==", "aad": "ZGVtbw=="})),
        )
        .await;
        assert_eq!(s, 200);
        sealed.push(v["ciphertext"].as_str().unwrap().to_owned());
        if v["key_version"] == 2 {
            break;
        }
        assert!(
            t.elapsed() < Duration::from_secs(1),
            "b still seals under v1"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Every envelope opens on both.
    for c in &sealed {
        for base in [&a.base, &b.base] {
            let (s, v) = call(
                post.clone(),
                format!("{base}/v1/keyrings/pay/unseal"),
                Some(json!({"ciphertext": c, "aad": "ZGVtbw=="})),
            )
            .await;
            assert_eq!((s, v["plaintext"].as_str()), (200, Some("NDI0Mg==")));
        }
    }
    // One audit chain, whoever wrote each entry: a checkpoint signed by b over
    // entries read through a verifies.
    let (s, checkpoint) = call(
        reqwest::Method::GET,
        format!("{}/v1/audit/checkpoint", b.base),
        None,
    )
    .await;
    assert_eq!(s, 200);
    let (s, page) = call(
        reqwest::Method::GET,
        format!("{}/v1/audit?limit=1000", a.base),
        None,
    )
    .await;
    assert_eq!(s, 200);
    let mut lines: Vec<String> = page["entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["seq"].as_u64().unwrap() <= checkpoint["seq"].as_u64().unwrap())
        .map(|e| json!({"entry": e}).to_string())
        .collect();
    assert!(lines.len() >= 4, "{lines:?}");
    lines.push(json!({"checkpoint": checkpoint}).to_string());
    let dir_key: Value = http
        .get(format!("{}/v1/directory", a.base))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    use base64::Engine as _;
    let key = base64::engine::general_purpose::STANDARD
        .decode(dir_key["public_key"].as_str().unwrap())
        .unwrap();
    assert!(matches!(
        fleetkey_server::audit::verify::verify_export(&lines, &key),
        fleetkey_server::audit::verify::Verdict::Valid { .. }
    ));
    drop(a);
    drop(b);
}
