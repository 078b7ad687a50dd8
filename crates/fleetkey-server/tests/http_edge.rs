//! The HTTP listener under hostile clients (regressions from the outside review):
//! partial headers and idle connections are closed on their deadlines, connections
//! over the cap are shed while the ones being served keep working, a trickled body
//! gets 408, routes without a token take only small bodies, and request bodies must
//! be JSON objects.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use fleetkey_server::api::{self, http::HttpLimits};
use fleetkey_server::config::Config;
use fleetkey_server::keys::KeyConfig;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

struct Server {
    _dir: tempfile::TempDir,
    addr: std::net::SocketAddr,
    admin: String,
    metrics: fleetkey_server::api::http::HttpMetrics,
    state: std::sync::Arc<fleetkey_server::api::AppState>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
    }
}

async fn server(limits: HttpLimits, config: Config) -> Server {
    let dir = tempfile::TempDir::new().unwrap();
    let store = common::test_store(dir.path()).await;
    let s = common::services_configured(dir.path(), store, KeyConfig::default(), &config).await;
    let (_, admin) = s
        .state
        .tokens
        .create("test", "admin", vec!["admin".into()], None)
        .await
        .unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = api::router(s.state.clone(), config.max_body_bytes);
    let metrics = s.state.metrics.http.clone();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(api::http::serve(
        listener,
        None,
        app,
        limits,
        metrics.clone(),
        async move {
            let _ = rx.await;
        },
    ));
    Server {
        _dir: dir,
        addr,
        admin: admin.to_string(),
        metrics,
        state: s.state,
        stop: Some(tx),
    }
}

fn limits(header: u64, idle: u64, max_connections: usize) -> HttpLimits {
    HttpLimits {
        header_timeout: Duration::from_millis(header),
        idle_timeout: Duration::from_millis(idle),
        max_connections,
        shutdown_grace: Duration::from_secs(1),
    }
}

/// Reads until the server closes the connection (or `within` passes); returns
/// what was read and whether it closed.
async fn read_until_closed(s: &mut TcpStream, within: Duration) -> (String, bool) {
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    let end = Instant::now() + within;
    loop {
        match tokio::time::timeout_at(end.into(), s.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return (String::from_utf8_lossy(&out).into(), true),
            Ok(Ok(n)) => out.extend_from_slice(&buf[..n]),
            Err(_) => return (String::from_utf8_lossy(&out).into(), false),
        }
    }
}

/// Sends one keep-alive request and reads its whole (small) response.
async fn roundtrip(s: &mut TcpStream, path: &str) -> String {
    s.write_all(format!("GET {path} HTTP/1.1\r\nHost: t\r\n\r\n").as_bytes())
        .await
        .unwrap();
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let n = tokio::time::timeout(Duration::from_secs(5), s.read(&mut buf))
            .await
            .expect("response in time")
            .unwrap();
        assert!(n > 0, "closed before the response");
        out.extend_from_slice(&buf[..n]);
        let text = String::from_utf8_lossy(&out);
        if let Some((head, body)) = text.split_once("\r\n\r\n") {
            let len: usize = head
                .lines()
                .find_map(|l| {
                    l.to_ascii_lowercase()
                        .strip_prefix("content-length: ")
                        .map(|v| v.trim().parse().unwrap())
                })
                .unwrap_or(0);
            if body.len() >= len {
                return text.into_owned();
            }
        }
    }
}

fn closed(m: &fleetkey_server::api::http::HttpMetrics, reason: &str) -> u64 {
    m.closed.with_label_values(&[reason]).get()
}

#[tokio::test]
async fn a_partial_request_head_is_closed_at_the_header_deadline() {
    let srv = server(limits(500, 60_000, 100), Config::default()).await;
    let mut s = TcpStream::connect(srv.addr).await.unwrap();
    s.write_all(b"GET /healthz HTTP/1.1\r\nHost: t\r\nX-Slow: ")
        .await
        .unwrap();
    let started = Instant::now();
    let (got, was_closed) = read_until_closed(&mut s, Duration::from_secs(10)).await;
    assert!(was_closed, "a slowloris head is held open");
    assert!(started.elapsed() < Duration::from_secs(5));
    assert!(got.is_empty() || got.starts_with("HTTP/1.1 4"), "{got}");
    assert_eq!(closed(&srv.metrics, "header_timeout"), 1);
    // A connection that says nothing at all is closed on the same deadline.
    let mut silent = TcpStream::connect(srv.addr).await.unwrap();
    assert!(
        read_until_closed(&mut silent, Duration::from_secs(10))
            .await
            .1
    );
}

#[tokio::test]
async fn idle_keep_alive_connections_close_on_their_own_deadline() {
    let srv = server(limits(400, 2_000, 100), Config::default()).await;
    let mut s = TcpStream::connect(srv.addr).await.unwrap();
    assert!(
        roundtrip(&mut s, "/healthz")
            .await
            .starts_with("HTTP/1.1 200")
    );
    // Idle longer than the header deadline: still open (keep-alive is the idle
    // deadline's business).
    tokio::time::sleep(Duration::from_millis(900)).await;
    assert!(
        roundtrip(&mut s, "/healthz")
            .await
            .starts_with("HTTP/1.1 200")
    );
    let started = Instant::now();
    let (_, was_closed) = read_until_closed(&mut s, Duration::from_secs(10)).await;
    assert!(was_closed, "an idle connection is held forever");
    assert!(started.elapsed() >= Duration::from_millis(1_500));
    assert_eq!(closed(&srv.metrics, "idle_timeout"), 1);
}

#[tokio::test]
async fn connections_over_the_cap_are_shed_and_the_others_keep_working() {
    let srv = server(limits(30_000, 30_000, 4), Config::default()).await;
    let mut held = Vec::new();
    for _ in 0..4 {
        let mut s = TcpStream::connect(srv.addr).await.unwrap();
        assert!(
            roundtrip(&mut s, "/healthz")
                .await
                .starts_with("HTTP/1.1 200")
        );
        held.push(s);
    }
    for _ in 0..20 {
        let mut extra = TcpStream::connect(srv.addr).await.unwrap();
        let _ = extra
            .write_all(b"GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n")
            .await;
        let (got, was_closed) = read_until_closed(&mut extra, Duration::from_secs(5)).await;
        assert!(was_closed && got.is_empty(), "over the cap: {got:?}");
    }
    assert_eq!(closed(&srv.metrics, "shed"), 20);
    assert_eq!(srv.metrics.open.get(), 4);
    // The connections being served are unaffected, and a freed slot is reused.
    for s in &mut held {
        assert!(roundtrip(s, "/healthz").await.starts_with("HTTP/1.1 200"));
    }
    drop(held.pop());
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut again = TcpStream::connect(srv.addr).await.unwrap();
    assert!(
        roundtrip(&mut again, "/healthz")
            .await
            .starts_with("HTTP/1.1 200")
    );
}

#[tokio::test]
async fn a_trickled_body_gets_408_at_the_body_deadline() {
    let config = Config {
        http_body_timeout_secs: 1,
        ..Config::default()
    };
    let srv = server(limits(30_000, 30_000, 100), config).await;
    srv.state
        .keys
        .create(
            "test",
            &"k".parse().unwrap(),
            fleetkey_crypto::aead::Algorithm::Aes256Gcm,
            Default::default(),
        )
        .await
        .unwrap();
    let mut s = TcpStream::connect(srv.addr).await.unwrap();
    let head = format!(
        "POST /v1/keyrings/k/seal HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer {}\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{{\"plaintext\":",
        srv.admin
    );
    s.write_all(head.as_bytes()).await.unwrap();
    let started = Instant::now();
    let (got, _) = read_until_closed(&mut s, Duration::from_secs(10)).await;
    assert!(got.starts_with("HTTP/1.1 408"), "{got}");
    assert!(got.contains("\"code\":\"timeout\""), "{got}");
    assert!(started.elapsed() < Duration::from_secs(5));
}

#[tokio::test]
async fn routes_without_a_token_take_only_small_bodies() {
    let srv = server(limits(30_000, 30_000, 100), Config::default()).await;
    let client = reqwest::Client::new();
    let big = format!("{{\"device_id\":\"{}\"}}", "a".repeat(100 * 1024));
    for path in [
        "/v1/onboarding/challenge",
        "/v1/onboarding/complete",
        "/v1/devices/commands",
    ] {
        let r = client
            .post(format!("http://{}{path}", srv.addr))
            .header("content-type", "application/json")
            .body(big.clone())
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 413, "{path}");
    }
    // The same size is fine where a token is checked first.
    let r = client
        .post(format!("http://{}/v1/keyrings", srv.addr))
        .bearer_auth(&srv.admin)
        .header("content-type", "application/json")
        .body(format!(
            "{{\"name\":\"k\",\"pad\":\"{}\"}}",
            "a".repeat(100 * 1024)
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400, "read, then refused for the unknown field");
}

#[tokio::test]
async fn request_bodies_must_be_json_objects() {
    let srv = server(limits(30_000, 30_000, 100), Config::default()).await;
    let client = reqwest::Client::new();
    let url = |p: &str| format!("http://{}{p}", srv.addr);
    let r = client
        .post(url("/v1/keyrings"))
        .bearer_auth(&srv.admin)
        .json(&serde_json::json!({"name": "k", "policy": {"max_uses": 10}}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    for body in ["[null]", "[]", "null", "\"x\"", "1", " [{}]"] {
        let r = client
            .put(url("/v1/keyrings/k/policy"))
            .bearer_auth(&srv.admin)
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 400, "{body}");
        let v: serde_json::Value = r.json().await.unwrap();
        assert_eq!(v["error"]["code"], "malformed", "{body}");
    }
    let v: serde_json::Value = client
        .get(url("/v1/keyrings/k"))
        .bearer_auth(&srv.admin)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        v["policy"]["max_uses"], 10,
        "the policy was not cleared: {v}"
    );
}

#[tokio::test]
async fn requests_without_a_valid_token_are_limited_per_source_before_any_lookup() {
    let mut config = Config::default();
    config.rate_limit.unauthenticated_per_source_per_sec = 2; // a burst of 10
    let srv = server(limits(30_000, 30_000, 100), config).await;
    let from = |ip: [u8; 4]| {
        reqwest::Client::builder()
            .local_address(std::net::IpAddr::from(ip))
            .build()
            .unwrap()
    };
    let (a, b) = (from([127, 0, 0, 1]), from([127, 0, 0, 2]));
    let url = format!("http://{}/v1/keyrings", srv.addr);
    // The admin token is looked up once, then cached.
    assert_eq!(
        a.get(&url)
            .bearer_auth(&srv.admin)
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    let mut statuses = Vec::new();
    for i in 0..40 {
        let req = a.get(&url);
        let req = match i % 3 {
            0 => req,
            1 => req.bearer_auth("fkt_unknown-token"),
            _ => req.bearer_auth(format!("fkt_unknown-{i}")),
        };
        statuses.push(req.send().await.unwrap().status().as_u16());
    }
    let (ok401, limited) = (
        statuses.iter().filter(|s| **s == 401).count(),
        statuses.iter().filter(|s| **s == 429).count(),
    );
    assert!(ok401 <= 12 && limited >= 28, "{statuses:?}");
    let r = a.get(&url).bearer_auth("fkt_x").send().await.unwrap();
    assert_eq!(r.status(), 429);
    assert!(r.headers().contains_key("retry-after"));
    let v: serde_json::Value = r.json().await.unwrap();
    assert_eq!(v["error"]["code"], "rate_limited");
    // A cached valid token from the same source, and another source, still work.
    assert_eq!(
        a.get(&url)
            .bearer_auth(&srv.admin)
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    assert_eq!(
        b.get(&url)
            .bearer_auth("fkt_x")
            .send()
            .await
            .unwrap()
            .status(),
        401
    );
    // Onboarding (no token) takes from the same allowance.
    let challenge = format!("http://{}/v1/onboarding/challenge", srv.addr);
    let r = a
        .post(&challenge)
        .json(&serde_json::json!({"device_id": "dev_x"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 429);
    let r = b
        .post(&challenge)
        .json(&serde_json::json!({"device_id": "dev_x"}))
        .send()
        .await
        .unwrap();
    assert_ne!(r.status(), 429);
}

/// Regression: keyrings, fleets and tokens accepted `.`, `..` and names that no
/// client can address. One grammar (docs/operations.md#names), 400 otherwise.
#[tokio::test]
async fn names_follow_one_grammar() {
    let srv = server(limits(30_000, 30_000, 100), Config::default()).await;
    let client = reqwest::Client::new();
    let post = |path: &str, body: serde_json::Value| {
        client
            .post(format!("http://{}{path}", srv.addr))
            .bearer_auth(&srv.admin)
            .json(&body)
            .send()
    };
    for bad in [".", "..", ".x", "-x", "a/b", "a b", "a:b", "a@b", "é", ""] {
        for (path, body) in [
            ("/v1/keyrings", serde_json::json!({ "name": bad })),
            ("/v1/fleets", serde_json::json!({ "name": bad })),
            (
                "/v1/tokens",
                serde_json::json!({ "name": bad, "scopes": ["audit:read"] }),
            ),
        ] {
            let r = post(path, body).await.unwrap();
            assert_eq!(r.status(), 400, "{path} {bad:?}");
            let v: serde_json::Value = r.json().await.unwrap();
            assert_eq!(v["error"]["code"], "malformed");
        }
    }
    for good in ["payments", "kA-x_1.2"] {
        for (path, body) in [
            ("/v1/keyrings", serde_json::json!({ "name": good })),
            ("/v1/fleets", serde_json::json!({ "name": good })),
            (
                "/v1/tokens",
                serde_json::json!({ "name": good, "scopes": [format!("seal:{good}")] }),
            ),
        ] {
            assert_eq!(
                post(path, body).await.unwrap().status(),
                201,
                "{path} {good}"
            );
        }
    }
    let r = post(
        "/v1/tokens",
        serde_json::json!({ "name": "t", "scopes": ["seal:..*"] }),
    )
    .await
    .unwrap();
    assert_eq!(r.status(), 400, "a wildcard prefix follows the grammar too");
}

/// Router refusals answer the JSON error body like every other refusal.
#[tokio::test]
async fn unknown_routes_and_methods_answer_json_errors() {
    let srv = server(limits(30_000, 30_000, 100), Config::default()).await;
    let client = reqwest::Client::new();
    let r = client
        .get(format!("http://{}/v1/no-such-route", srv.addr))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    let v: serde_json::Value = r.json().await.unwrap();
    assert_eq!(v["error"]["code"], "not_found");
    let r = client
        .delete(format!("http://{}/healthz", srv.addr))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 405);
    assert!(r.headers().contains_key("allow"), "{:?}", r.headers());
    let v: serde_json::Value = r.json().await.unwrap();
    assert_eq!(v["error"]["code"], "method_not_allowed");
}
