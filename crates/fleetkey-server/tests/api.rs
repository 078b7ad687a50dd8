//! The HTTP API in process (router + `oneshot`): authorisation of every documented
//! route, round trips, batch results, error statuses and bodies, rate-limit headers
//! and 429s, body limits, metrics, the OpenAPI document, and a scan of the captured
//! logs for secrets.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use axum::http::StatusCode;
use base64::{Engine as _, engine::general_purpose::STANDARD as B64};
use common::api::{api, api_with};
use fleetkey_server::{api, config::Config};
use serde_json::{Value, json};
use std::sync::{Arc, Mutex};

/// A well-formed body for a documented operation (so that only authorisation
/// can refuse it).
fn good_body(m: &str, path: &str) -> Value {
    match path {
        p if p.ends_with("/seal") => json!({"plaintext": "AA=="}),
        p if p.ends_with("/unseal") || p.ends_with("/rewrap") => {
            json!({"ciphertext": "AA=="})
        }
        p if p.ends_with("/batch") => json!({"items": []}),
        p if p.ends_with("/datakey") => json!({}),
        p if p.ends_with("/sign") || p.ends_with("/mac") => json!({"message": "AA=="}),
        p if p.ends_with("/verify") => json!({"message": "AA==", "signature": "AA=="}),
        "/v1/keyrings" => json!({"name": "x"}),
        p if p.ends_with("/schedule-deletion") => json!({"days": 7}),
        p if p.ends_with("/import") => json!({"ciphertext": "AA=="}),
        p if p.ends_with("/export") => json!({"recipient": "fk1r:x"}),
        p if p.starts_with("/v1/aliases/") => json!({"keyring": "k"}),
        "/v1/tokens" => json!({"name": "x", "scopes": ["admin"]}),
        "/v1/fleets" => json!({"name": "x"}),
        p if p.ends_with("/decommission") => json!({"reason": "x"}),
        p if p.ends_with("/static-key") => json!({"allowed": true}),
        "/v1/claims" => json!({"code": "x", "claimed_by": "y"}),
        p if p.ends_with("/state") => json!({"state": "active"}),
        p if p.ends_with("/schema") => json!({"schema": {}}),
        p if p.ends_with("/config") && m == "PUT" => json!({"config": {}}),
        p if p.ends_with("/config") => json!({"patch": {}}),
        "/v1/factory/reset" => json!({"fleet": "f", "device_id": "d", "reason": "r"}),
        "/v1/factory/devices" => {
            json!({"fleet": "f", "hardware_id": "h", "model": "m", "batch": "b",
            "station": "s", "keys": {"x25519": B64.encode([9u8; 32]), "ed25519": B64.encode([7u8; 32])}})
        }
        _ => json!({}),
    }
}

#[tokio::test]
async fn every_documented_route_requires_a_token_with_its_scope() {
    let a = api().await;
    a.admin("POST", "/v1/keyrings", Some(json!({"name": "k"})))
        .await;
    let no_scope = a.token(&["seal:unrelated"]).await;
    let (rec, revoked) = a
        .tokens
        .create("test", "to-revoke", vec!["admin".into()], None)
        .await
        .unwrap();
    let revoked = revoked.to_string();
    a.tokens.revoke("test", &rec.id).await.unwrap();
    let doc = api::openapi_document();
    let mut walked = 0;
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            // Device-authenticated routes (onboarding) carry no bearer requirement.
            if op["security"] == json!([{}]) {
                continue;
            }
            let concrete = path
                .replace("{name}", "k")
                .replace("{version}", "1")
                .replace("{id}", "tok_0")
                .replace("{fleet}", "f")
                .replace("{alias}", "a")
                // Required query parameters.
                .replace("/v1/random", "/v1/random?bytes=16");
            let m = method.to_uppercase();
            let body = (m != "GET").then(|| json!({}));
            let (s, h, v) = a.call(&m, &concrete, None, body.clone()).await;
            assert_eq!(s, StatusCode::UNAUTHORIZED, "{m} {path} without a token");
            assert_eq!(v["error"]["code"], "unauthenticated");
            assert!(h.contains_key("www-authenticate"));
            let (s, _, _) = a
                .call(&m, &concrete, Some("fkt_not-a-real-token"), body.clone())
                .await;
            assert_eq!(
                s,
                StatusCode::UNAUTHORIZED,
                "{m} {path} with an unknown token"
            );
            let (s, _, _) = a.call(&m, &concrete, Some(&revoked), body.clone()).await;
            assert_eq!(
                s,
                StatusCode::UNAUTHORIZED,
                "{m} {path} with a revoked token"
            );
            walked += 1;
            // A route documented with no scope takes any valid token (an AWS
            // access key for the token itself): the refusals above are its.
            if op["security"] == json!([{ "bearer": [] }]) {
                continue;
            }
            let (s, _, v) = a.call(&m, &concrete, Some(&no_scope), body).await;
            // Malformed bodies may be refused before the scope check; both are refusals.
            assert!(
                s == StatusCode::FORBIDDEN
                    || s == StatusCode::BAD_REQUEST
                    || s == StatusCode::UNPROCESSABLE_ENTITY,
                "{m} {path} without the scope: {s} {v}"
            );
            if s != StatusCode::FORBIDDEN {
                // With a well-formed body the scope check must answer 403.
                let good = good_body(&m, path);
                let (s, _, v) = a.call(&m, &concrete, Some(&no_scope), Some(good)).await;
                assert_eq!(s, StatusCode::FORBIDDEN, "{m} {path}: {v}");
            }
        }
    }
    assert!(walked >= 17, "walked {walked} operations");
}

#[tokio::test]
async fn seal_unseal_rewrap_and_batches() {
    let a = api().await;
    let (s, v) = a
        .admin(
            "POST",
            "/v1/keyrings",
            Some(json!({"name": "pay", "policy": {"max_uses": 1000}})),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    assert_eq!(v["policy"]["max_uses"], 1000);
    let t = a.token(&["seal:pay", "unseal:pay", "rewrap:pay"]).await;
    let (s, _, v) = a
        .call(
            "POST",
            "/v1/keyrings/pay/seal",
            Some(&t),
            Some(json!({"plaintext": B64.encode(b"card 4242"), "aad": B64.encode(b"order-1")})),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let ct = v["ciphertext"].as_str().unwrap().to_owned();
    let (s, _, v) = a
        .call(
            "POST",
            "/v1/keyrings/pay/unseal",
            Some(&t),
            Some(json!({"ciphertext": ct, "aad": B64.encode(b"order-1")})),
        )
        .await;
    assert_eq!(
        (s, v["plaintext"].as_str().unwrap()),
        (StatusCode::OK, B64.encode(b"card 4242").as_str())
    );
    // Wrong AAD: 422 cannot_open.
    let (s, _, v) = a
        .call(
            "POST",
            "/v1/keyrings/pay/unseal",
            Some(&t),
            Some(json!({"ciphertext": ct})),
        )
        .await;
    assert_eq!(
        (s, v["error"]["code"].as_str().unwrap()),
        (StatusCode::UNPROCESSABLE_ENTITY, "cannot_open")
    );
    // Rotate, rewrap, revoke the old version: distinct 422 codes.
    let (s, v) = a.admin("POST", "/v1/keyrings/pay/rotate", None).await;
    assert_eq!((s, v["version"].as_u64()), (StatusCode::OK, Some(2)));
    let (s, _, v) = a
        .call(
            "POST",
            "/v1/keyrings/pay/rewrap",
            Some(&t),
            Some(json!({"ciphertext": ct, "aad": B64.encode(b"order-1")})),
        )
        .await;
    assert_eq!(
        (s, v["key_version"].as_u64()),
        (StatusCode::OK, Some(2)),
        "{v}"
    );
    let (s, _) = a
        .admin("POST", "/v1/keyrings/pay/versions/1/revoke", None)
        .await;
    assert_eq!(s, StatusCode::OK);
    let (s, _, v) = a
        .call(
            "POST",
            "/v1/keyrings/pay/unseal",
            Some(&t),
            Some(json!({"ciphertext": ct, "aad": B64.encode(b"order-1")})),
        )
        .await;
    assert_eq!(
        (s, v["error"]["code"].as_str().unwrap()),
        (StatusCode::UNPROCESSABLE_ENTITY, "revoked")
    );
    let (s, _) = a
        .admin("POST", "/v1/keyrings/pay/versions/9/revoke", None)
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    // Batch: per-item results in order, bad items do not fail the batch.
    let items: Vec<Value> = (0..50)
        .map(|i| json!({"plaintext": B64.encode(format!("item {i}"))}))
        .collect();
    let mut items_bad = items.clone();
    items_bad.push(json!({"plaintext": "***"}));
    let (s, _, v) = a
        .call(
            "POST",
            "/v1/keyrings/pay/seal/batch",
            Some(&t),
            Some(json!({"items": items_bad})),
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    let results = v["results"].as_array().unwrap();
    assert_eq!(results.len(), 51);
    assert_eq!(results[50]["error"]["code"], "malformed");
    let cts: Vec<Value> = results[..50]
        .iter()
        .map(|r| json!({"ciphertext": r["ciphertext"]}))
        .collect();
    let (s, _, v) = a
        .call(
            "POST",
            "/v1/keyrings/pay/unseal/batch",
            Some(&t),
            Some(json!({"items": cts})),
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    for (i, r) in v["results"].as_array().unwrap().iter().enumerate() {
        assert_eq!(
            r["plaintext"].as_str().unwrap(),
            B64.encode(format!("item {i}"))
        );
    }
    let (s, _, v) = a
        .call(
            "POST",
            "/v1/keyrings/pay/rewrap/batch",
            Some(&t),
            Some(json!({"items": cts})),
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    assert!(
        v["results"]
            .as_array()
            .unwrap()
            .iter()
            .all(|r| r["key_version"] == 2)
    );
}

#[tokio::test]
async fn errors_have_the_right_status_and_shape() {
    let a = api_with(Config {
        max_body_bytes: 4096,
        max_batch_items: 3,
        ..Config::default()
    })
    .await;
    let (s, v) = a
        .admin("POST", "/v1/keyrings", Some(json!({"name": "bad name"})))
        .await;
    assert_eq!(
        (s, v["error"]["code"].as_str().unwrap()),
        (StatusCode::BAD_REQUEST, "malformed")
    );
    let (s, v) = a
        .admin("POST", "/v1/keyrings", Some(json!({"nme": "typo"})))
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");
    a.admin("POST", "/v1/keyrings", Some(json!({"name": "k"})))
        .await;
    let (s, v) = a
        .admin("POST", "/v1/keyrings", Some(json!({"name": "k"})))
        .await;
    assert_eq!(
        (s, v["error"]["code"].as_str().unwrap()),
        (StatusCode::CONFLICT, "conflict")
    );
    let (s, _) = a.admin("GET", "/v1/keyrings/missing", None).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let (s, v) = a
        .admin(
            "POST",
            "/v1/keyrings/k/seal",
            Some(json!({"plaintext": B64.encode(vec![0u8; 8192])})),
        )
        .await;
    assert_eq!(
        (s, v["error"]["code"].as_str().unwrap()),
        (StatusCode::PAYLOAD_TOO_LARGE, "too_large")
    );
    let items: Vec<Value> = (0..4).map(|_| json!({"plaintext": ""})).collect();
    let (s, _) = a
        .admin(
            "POST",
            "/v1/keyrings/k/seal/batch",
            Some(json!({"items": items})),
        )
        .await;
    assert_eq!(s, StatusCode::PAYLOAD_TOO_LARGE);
    let (s, v) = a
        .admin(
            "POST",
            "/v1/keyrings/k/unseal",
            Some(json!({"ciphertext": B64.encode(b"not an envelope")})),
        )
        .await;
    assert_eq!(
        (s, v["error"]["code"].as_str().unwrap()),
        (StatusCode::BAD_REQUEST, "malformed")
    );
    let (s, _) = a.admin("GET", "/v1/nowhere", None).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let (s, _) = a.admin("GET", "/v1/audit?limit=0", None).await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    // Entries so far: the admin token and keyring k.
    let (s, v) = a.admin("GET", "/v1/audit?limit=1", None).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(v["entries"].as_array().unwrap().len(), 1);
    assert_eq!(v["next_after"], 1);
    let (_, v) = a.admin("GET", "/v1/audit?after=1&limit=10", None).await;
    assert_eq!(v["entries"][0]["action"], "keyring.create");
    assert!(v["next_after"].is_null());
    let (s, v) = a.admin("GET", "/v1/audit/checkpoint", None).await;
    assert_eq!((s, v["seq"].as_u64()), (StatusCode::OK, Some(2)), "{v}");
}

#[tokio::test]
async fn rate_limits_send_headers_and_429_with_retry_after() {
    let mut config = Config::default();
    config.rate_limit.per_token_per_sec = 5;
    config.rate_limit.adaptive = false;
    let a = api_with(config).await;
    let t = a.token(&["keys:manage"]).await;
    let mut limited = None;
    for i in 0..10 {
        let (s, h, _) = a.call("GET", "/v1/keyrings", Some(&t), None).await;
        assert_eq!(h["x-ratelimit-limit"], "5");
        assert!(h.contains_key("ratelimit-policy") && h.contains_key("ratelimit"));
        if s == StatusCode::TOO_MANY_REQUESTS {
            assert!(h["retry-after"].to_str().unwrap().parse::<u64>().unwrap() >= 1);
            assert_eq!(h["x-ratelimit-remaining"], "0");
            limited = Some(i);
            break;
        }
    }
    assert_eq!(
        limited,
        Some(5),
        "the sixth request in a burst of 5/s is limited"
    );
    // Another token has its own budget.
    let other = a.token(&["keys:manage"]).await;
    let (s, _, _) = a.call("GET", "/v1/keyrings", Some(&other), None).await;
    assert_eq!(s, StatusCode::OK);
}

#[tokio::test]
async fn adaptive_mode_tightens_under_errors() {
    let mut config = Config::default();
    config.rate_limit.global_per_sec = 1000;
    config.rate_limit.adaptive_factor = 0.001; // tightened: 1 request per second
    let a = api_with(config).await;
    a.admin("POST", "/v1/keyrings", Some(json!({"name": "k"})))
        .await;
    let bad = json!({"ciphertext": B64.encode(fleetkey_crypto::envelope::single::seal(
        &fleetkey_crypto::aead::AeadKey::generate(fleetkey_crypto::aead::Algorithm::Aes256Gcm).unwrap(),
        &fleetkey_crypto::envelope::KeyId::new("k").unwrap(), 1, [0; 12], b"x", b"").unwrap())});
    // Two seconds of mostly-422 traffic, then a fresh window judges it.
    let deadline = std::time::Instant::now() + std::time::Duration::from_millis(2300);
    while std::time::Instant::now() < deadline {
        a.admin("POST", "/v1/keyrings/k/unseal", Some(bad.clone()))
            .await;
    }
    let mut saw_429 = false;
    for _ in 0..5 {
        let (s, _, v) = a.call("GET", "/v1/keyrings", Some(&a.admin), None).await;
        if s == StatusCode::TOO_MANY_REQUESTS {
            assert!(v["error"]["message"].as_str().unwrap().contains("global"));
            saw_429 = true;
            break;
        }
    }
    assert!(saw_429, "the global limit did not tighten");
}

#[tokio::test]
async fn metrics_openapi_and_health_are_open() {
    let a = api().await;
    a.admin("POST", "/v1/keyrings", Some(json!({"name": "m"})))
        .await;
    a.admin(
        "POST",
        "/v1/keyrings/m/seal",
        Some(json!({"plaintext": "AA=="})),
    )
    .await;
    let (s, _, _) = a.call("GET", "/v1/directory/dev_nobody", None, None).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let (s, _, v) = a.call("GET", "/metrics", None, None).await;
    assert_eq!(s, StatusCode::OK);
    let text = v.as_str().unwrap();
    for m in [
        "fleetkey_directory_lookups_total{result=\"not_found\"} 1",
        "fleetkey_http_requests_total",
        "fleetkey_http_request_duration_seconds_bucket",
        "fleetkey_seal_items_total{keyring=\"m\",result=\"ok\"} 1",
        "fleetkey_nonce_headroom",
        "fleetkey_nonce_blocks_total",
        "fleetkey_build_info",
    ] {
        assert!(text.contains(m), "missing {m}");
    }
    // Prometheus conventions over everything exported after this traffic:
    // counters end in `_total`, gauges and histograms do not.
    for line in text.lines().filter(|l| l.starts_with("# TYPE ")) {
        let mut f = line.split_whitespace().skip(2);
        let (name, kind) = (f.next().unwrap(), f.next().unwrap());
        assert_eq!(kind == "counter", name.ends_with("_total"), "{line}");
    }
    let (s, _, doc) = a.call("GET", "/v1/openapi.json", None, None).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(doc["openapi"], "3.1.0");
    assert!(doc["paths"]["/v1/keyrings/{name}/seal"]["post"].is_object());
    // Every route the router serves is documented, the open ones included.
    for (path, method) in [
        ("/v1/directory", "get"),
        ("/v1/directory/{identity}", "get"),
        ("/v1/devices/commands", "post"),
        ("/v1/fleets/{fleet}/devices/{id}/config", "patch"),
    ] {
        assert!(
            doc["paths"][path][method].is_object(),
            "{method} {path} undocumented"
        );
    }
    // JSON Schema calls 5.0 an integer: so does the API.
    let (s, v) = a
        .admin(
            "POST",
            "/v1/keyrings",
            Some(json!({"name": "floats", "policy": {"max_uses": 5.0, "overlap_secs": 0.0}})),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    assert_eq!(v["policy"]["max_uses"], 5);
    let (s, _) = a
        .admin(
            "POST",
            "/v1/keyrings",
            Some(json!({"name": "fraction", "policy": {"max_uses": 5.5}})),
        )
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    // Regression (#16 item 16): query parameters were declared `in: path` and 241
    // responses had an empty description. (.ci/run also runs
    // openapi-spec-validator over the served document.)
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            for p in op["parameters"].as_array().into_iter().flatten() {
                if p["in"] == "path" {
                    let name = p["name"].as_str().unwrap();
                    assert!(
                        path.contains(&format!("{{{name}}}")),
                        "{method} {path}: path parameter {name} is not in the path"
                    );
                }
            }
            for (code, r) in op["responses"].as_object().unwrap() {
                assert!(
                    r["description"].as_str().is_some_and(|d| !d.is_empty()),
                    "{method} {path} {code}: no description"
                );
            }
        }
    }
    assert_eq!(
        a.call("GET", "/healthz", None, None).await.0,
        StatusCode::OK
    );
    assert_eq!(a.call("GET", "/readyz", None, None).await.0, StatusCode::OK);
}

/// A `tracing` writer that keeps everything in memory.
#[derive(Clone, Default)]
struct Capture(Arc<Mutex<Vec<u8>>>);
impl std::io::Write for Capture {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn logs_never_contain_secrets_or_plaintext() {
    let cap = Capture::default();
    let c2 = cap.clone();
    let subscriber = tracing_subscriber::fmt()
        .json()
        .with_max_level(tracing::Level::TRACE)
        .with_writer(move || c2.clone())
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);
    let a = api().await;
    a.admin("POST", "/v1/keyrings", Some(json!({"name": "s"})))
        .await;
    let secret_pt = "the-plaintext-must-not-leak";
    let (_, v) = a
        .admin(
            "POST",
            "/v1/keyrings/s/seal",
            Some(json!({"plaintext": B64.encode(secret_pt)})),
        )
        .await;
    a.admin(
        "POST",
        "/v1/keyrings/s/unseal",
        Some(json!({"ciphertext": v["ciphertext"]})),
    )
    .await;
    a.admin(
        "POST",
        "/v1/keyrings/s/unseal",
        Some(json!({"ciphertext": "AAAA"})),
    )
    .await;
    let (_, created) = a
        .admin(
            "POST",
            "/v1/tokens",
            Some(json!({"name": "n", "scopes": ["seal:s"]})),
        )
        .await;
    let new_secret = created["token"].as_str().unwrap().to_owned();
    a.call("GET", "/v1/keyrings", Some(&new_secret), None).await;
    let logs = String::from_utf8(cap.0.lock().unwrap().clone()).unwrap();
    for needle in [secret_pt, &B64.encode(secret_pt), &a.admin, &new_secret] {
        assert!(!logs.contains(needle), "secret found in logs");
    }
}

#[tokio::test]
async fn tokens_api_hands_out_only_held_scopes() {
    let a = api().await;
    for k in ["kA", "kA-x"] {
        a.admin("POST", "/v1/keyrings", Some(json!({"name": k})))
            .await;
    }
    let manager = a.token(&["tokens:manage", "seal:kA"]).await;
    let create = |scopes: Value, ttl: Option<i64>| {
        let manager = manager.clone();
        let a = &a;
        async move {
            a.call(
                "POST",
                "/v1/tokens",
                Some(&manager),
                Some(json!({"name": "n", "scopes": scopes, "ttl_secs": ttl})),
            )
            .await
        }
    };
    let (s, _, v) = create(json!(["seal:kA"]), None).await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    assert!(v["token"].as_str().unwrap().starts_with("fkt_"));
    // The review's escalation: seal:kA must not mint seal:kA*, which would seal kA-x.
    for refused in ["seal:kA*", "admin", "seal:*", "unseal:kA"] {
        let (s, _, v) = create(json!([refused]), None).await;
        assert_eq!(s, StatusCode::FORBIDDEN, "{refused}: {v}");
        assert_eq!(v["error"]["code"], "forbidden");
    }
    let (s, _, _) = a.call("GET", "/v1/tokens", Some(&a.admin), None).await;
    assert_eq!(s, StatusCode::OK);
    let (s, _, v) = a.call("GET", "/v1/tokens", Some(&manager), None).await;
    assert_eq!(s, StatusCode::OK);
    assert!(!v.to_string().contains("fkt_"), "listing shows no secrets");
    let names: Vec<&str> = v["tokens"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert!(!names.contains(&"admin"), "{names:?}");
    // The admin token cannot be revoked by a narrower manager; a covered one can.
    let (_, _, all) = a.call("GET", "/v1/tokens", Some(&a.admin), None).await;
    let id_of = |name: &str| {
        all["tokens"]
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["name"] == name)
            .unwrap()["id"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    let (s, _, v) = a
        .call(
            "POST",
            &format!("/v1/tokens/{}/revoke", id_of("admin")),
            Some(&manager),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND, "{v}");
    let (s, _, _) = a.call("GET", "/v1/keyrings", Some(&a.admin), None).await;
    assert_eq!(s, StatusCode::OK, "the admin token still works");
    let (s, _, _) = a
        .call(
            "POST",
            &format!("/v1/tokens/{}/revoke", id_of("n")),
            Some(&manager),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::NO_CONTENT);
}

#[tokio::test]
async fn factory_provisioning_and_fleet_confinement_over_http() {
    let a = api().await;
    for f in ["north", "south"] {
        let (s, v) = a
            .admin("POST", "/v1/fleets", Some(json!({"name": f})))
            .await;
        assert_eq!(s, StatusCode::CREATED, "{v}");
    }
    let keys = |n: u8| json!({"x25519": B64.encode([n; 32]), "ed25519": B64.encode([n.wrapping_add(100); 32])});
    let device = |fleet: &str, hw: &str, n: u8| {
        json!({"fleet": fleet, "hardware_id": hw, "model": "m1", "batch": "b1", "station": "jig", "keys": keys(n),
               "test_results": {"ok": true}})
    };
    let jig_north = a.token(&["factory:north"]).await;
    let (s, _, v) = a
        .call(
            "POST",
            "/v1/factory/devices",
            Some(&jig_north),
            Some(device("north", "hw-1", 11)),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    let north_id = v["id"].as_str().unwrap().to_owned();
    assert_eq!(v["state"], "manufactured");
    // Same request again: idempotent.
    let (s, _, v2) = a
        .call(
            "POST",
            "/v1/factory/devices",
            Some(&jig_north),
            Some(device("north", "hw-1", 11)),
        )
        .await;
    assert_eq!(
        (s, v2["id"].as_str()),
        (StatusCode::OK, Some(north_id.as_str()))
    );
    // Same hardware id, other keys: 409.
    let (s, _, _) = a
        .call(
            "POST",
            "/v1/factory/devices",
            Some(&jig_north),
            Some(device("north", "hw-1", 12)),
        )
        .await;
    assert_eq!(s, StatusCode::CONFLICT);
    // A north jig cannot provision into south.
    let (s, _, _) = a
        .call(
            "POST",
            "/v1/factory/devices",
            Some(&jig_north),
            Some(device("south", "hw-2", 13)),
        )
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    let (s, v) = a
        .admin(
            "POST",
            "/v1/factory/devices",
            Some(device("south", "hw-2", 13)),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED);
    let south_id = v["id"].as_str().unwrap().to_owned();
    // A north reader sees north only.
    let reader = a.token(&["devices:north"]).await;
    let (s, _, v) = a
        .call("GET", "/v1/fleets/north/devices", Some(&reader), None)
        .await;
    assert_eq!(
        (s, v["devices"].as_array().unwrap().len()),
        (StatusCode::OK, 1)
    );
    let (s, _, _) = a
        .call("GET", "/v1/fleets/south/devices", Some(&reader), None)
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    let (s, _, _) = a
        .call(
            "GET",
            &format!("/v1/fleets/north/devices/{south_id}"),
            Some(&reader),
            None,
        )
        .await;
    assert_eq!(
        s,
        StatusCode::NOT_FOUND,
        "another fleet's device is not found, not revealed"
    );
    let (s, _, v) = a
        .call(
            "GET",
            &format!("/v1/fleets/north/devices/{north_id}"),
            Some(&reader),
            None,
        )
        .await;
    assert_eq!(
        (s, v["hardware_id"].as_str()),
        (StatusCode::OK, Some("hw-1"))
    );
    // The birth credential verifies with the fleet's published key.
    let (_, _, fleet) = a.call("GET", "/v1/fleets/north", Some(&reader), None).await;
    let pk = hex::decode(fleet["issuer_public_key"].as_str().unwrap()).unwrap();
    let cred = B64.decode(v["birth_credential"].as_str().unwrap()).unwrap();
    let claims = fleetkey_crypto::credential::verify(
        &cred,
        fleetkey_crypto::credential::IssuerPublicKey::Ed25519(&pk),
        v["created_at"].as_i64().unwrap(),
    )
    .unwrap();
    assert_eq!(claims.device_id, north_id);
    // A low-order key is refused (422: well-formed, unsafe); bad lengths are 400s.
    let mut bad = device("north", "hw-3", 14);
    bad["keys"]["x25519"] = json!(B64.encode([0u8; 32]));
    let (s, _, v) = a
        .call("POST", "/v1/factory/devices", Some(&jig_north), Some(bad))
        .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(v["error"]["code"], "key_refused");
    let mut short = device("north", "hw-4", 15);
    short["keys"]["ed25519"] = json!(B64.encode([1u8; 31]));
    let (s, _, _) = a
        .call("POST", "/v1/factory/devices", Some(&jig_north), Some(short))
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn a_device_life_over_http_factory_onboarding_operation_decommissioning() {
    use fleetkey_crypto::ed25519::Ed25519Signer;
    use fleetkey_server::fleet::{onboarding_message, wipe_receipt_message};
    let a = api().await;
    a.admin("POST", "/v1/fleets", Some(json!({"name": "home"})))
        .await;
    a.admin("POST", "/v1/fleets", Some(json!({"name": "away"})))
        .await;
    let jig = a.token(&["factory:home"]).await;
    let ops = a.token(&["operate:home", "devices:home"]).await;
    let away_ops = a.token(&["operate:away"]).await;
    // The device makes its keys; the jig registers them.
    let dev = Ed25519Signer::generate().unwrap();
    let x = fleetkey_crypto::x25519::X25519Secret::generate()
        .unwrap()
        .public_key()
        .unwrap();
    let (s, _, d) = a
        .call("POST", "/v1/factory/devices", Some(&jig), Some(json!({
            "fleet": "home", "hardware_id": "mac:00:11:22:33:44:55", "model": "hub", "batch": "b", "station": "s",
            "keys": {"x25519": B64.encode(x), "ed25519": B64.encode(dev.public_key())}})))
        .await;
    assert_eq!(s, StatusCode::CREATED, "{d}");
    let id = d["id"].as_str().unwrap().to_owned();
    let birth = d["birth_credential"].as_str().unwrap().to_owned();
    // First boot: challenge, proof, operational credential (no API token involved).
    let (s, _, c) = a
        .call(
            "POST",
            "/v1/onboarding/challenge",
            None,
            Some(json!({"device_id": id})),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{c}");
    let nonce: [u8; 32] = B64
        .decode(c["nonce"].as_str().unwrap())
        .unwrap()
        .try_into()
        .unwrap();
    let sig = dev.sign(&onboarding_message(
        &id,
        &nonce,
        c["issued_at"].as_i64().unwrap(),
    ));
    let body =
        json!({"birth_credential": birth, "nonce": c["nonce"], "signature": B64.encode(sig)});
    let (s, _, v) = a
        .call("POST", "/v1/onboarding/complete", None, Some(body.clone()))
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["device"]["state"], "onboarded");
    assert!(v["operational_credential"].as_str().is_some());
    // Replay of the same proof: refused (the device is onboarded already).
    let (s, _, v) = a
        .call("POST", "/v1/onboarding/complete", None, Some(body))
        .await;
    assert_eq!(
        (s, v["error"]["code"].as_str()),
        (StatusCode::CONFLICT, Some("conflict"))
    );
    // Operation: activate, then an illegal transition, then cross-fleet refusal.
    let path = format!("/v1/fleets/home/devices/{id}");
    let (s, _, v) = a
        .call(
            "POST",
            &format!("{path}/state"),
            Some(&ops),
            Some(json!({"state": "active"})),
        )
        .await;
    assert_eq!((s, v["state"].as_str()), (StatusCode::OK, Some("active")));
    let (s, _, _) = a
        .call(
            "POST",
            &format!("{path}/state"),
            Some(&ops),
            Some(json!({"state": "manufactured"})),
        )
        .await;
    assert_eq!(s, StatusCode::CONFLICT, "nothing returns to manufactured");
    let (s, _, _) = a
        .call(
            "POST",
            &format!("{path}/decommission"),
            Some(&away_ops),
            Some(json!({"reason": "x"})),
        )
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    let (s, _, _) = a
        .call(
            "POST",
            &format!("/v1/fleets/away/devices/{id}/decommission"),
            Some(&away_ops),
            Some(json!({"reason": "x"})),
        )
        .await;
    assert_eq!(
        s,
        StatusCode::NOT_FOUND,
        "another fleet's device is not found"
    );
    // Decommissioning: revoked at once, ended by the device's wipe receipt.
    let (s, _, v) = a
        .call(
            "POST",
            &format!("{path}/decommission"),
            Some(&ops),
            Some(json!({"reason": "end of life"})),
        )
        .await;
    assert_eq!(
        (s, v["state"].as_str()),
        (StatusCode::OK, Some("decommissioning"))
    );
    let (s, _, _) = a
        .call(
            "POST",
            &format!("{path}/state"),
            Some(&ops),
            Some(json!({"state": "active"})),
        )
        .await;
    assert_eq!(
        s,
        StatusCode::CONFLICT,
        "illegal transition out of decommissioning"
    );
    let forged = Ed25519Signer::generate()
        .unwrap()
        .sign(&wipe_receipt_message(&id, 5));
    let (s, _, _) = a
        .call(
            "POST",
            "/v1/onboarding/wipe-receipt",
            None,
            Some(json!({"device_id": id, "wiped_at": 5, "signature": B64.encode(forged)})),
        )
        .await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    let receipt = dev.sign(&wipe_receipt_message(&id, 5));
    let (s, _, v) = a
        .call(
            "POST",
            "/v1/onboarding/wipe-receipt",
            None,
            Some(json!({"device_id": id, "wiped_at": 5, "signature": B64.encode(receipt)})),
        )
        .await;
    assert_eq!(
        (s, v["state"].as_str()),
        (StatusCode::OK, Some("decommissioned"))
    );
    // The audit log tells the story.
    let (_, v) = a.admin("GET", "/v1/audit?limit=1000", None).await;
    let actions: Vec<&str> = v["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    for want in [
        "device.provision",
        "device.onboard",
        "device.state",
        "device.decommission",
        "device.wiped",
    ] {
        assert!(actions.contains(&want), "{want} not in {actions:?}");
    }
}

#[tokio::test]
async fn claim_codes_are_single_use_hashed_and_fleet_confined() {
    let a = api().await;
    a.admin("POST", "/v1/fleets", Some(json!({"name": "c1"})))
        .await;
    let (_, d) = a
        .admin("POST", "/v1/factory/devices", Some(json!({"fleet": "c1", "hardware_id": "hw-claim", "model": "m", "batch": "b",
            "station": "s", "keys": {"x25519": B64.encode([21u8; 32]), "ed25519": B64.encode([22u8; 32])}})))
        .await;
    let id = d["id"].as_str().unwrap().to_owned();
    let jig = a.token(&["factory:c1"]).await;
    let (s, _, v) = a
        .call(
            "POST",
            &format!("/v1/fleets/c1/devices/{id}/claim-codes"),
            Some(&jig),
            Some(json!({})),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    let code = v["code"].as_str().unwrap().to_owned();
    assert_eq!(code.len(), 19);
    let installer = a.token(&["claim"]).await;
    // Codes are case- and dash-insensitive, and work once.
    let typed = code.to_lowercase().replace('-', "");
    let (s, _, v) = a
        .call(
            "POST",
            "/v1/claims",
            Some(&installer),
            Some(json!({"code": typed, "claimed_by": "site:lisbon-7"})),
        )
        .await;
    assert_eq!(
        (s, v["claimed_by"].as_str()),
        (StatusCode::OK, Some("site:lisbon-7")),
        "{v}"
    );
    let (s, _, v) = a
        .call(
            "POST",
            "/v1/claims",
            Some(&installer),
            Some(json!({"code": code, "claimed_by": "site:other"})),
        )
        .await;
    assert_eq!(
        (s, v["error"]["code"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("claim_refused"))
    );
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("already used")
    );
    let (s, _, _) = a
        .call(
            "POST",
            "/v1/claims",
            Some(&installer),
            Some(json!({"code": "0000-0000-0000-0000", "claimed_by": "x"})),
        )
        .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
    // Another fleet's jig cannot make codes for this device.
    let other_jig = a.token(&["factory:c2"]).await;
    let (s, _, _) = a
        .call(
            "POST",
            &format!("/v1/fleets/c1/devices/{id}/claim-codes"),
            Some(&other_jig),
            Some(json!({})),
        )
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    // Too short a lifetime is refused; the code itself is never in the audit log.
    let (s, _, _) = a
        .call(
            "POST",
            &format!("/v1/fleets/c1/devices/{id}/claim-codes"),
            Some(&jig),
            Some(json!({"ttl_secs": 5})),
        )
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    let (_, audit) = a.admin("GET", "/v1/audit?limit=1000", None).await;
    assert!(!audit.to_string().contains(&code) && !audit.to_string().contains(&typed));
}

#[tokio::test]
async fn a_fleet_token_never_reaches_another_fleet_on_any_route() {
    let a = api().await;
    for f in ["fa", "fb"] {
        a.admin("POST", "/v1/fleets", Some(json!({"name": f})))
            .await;
    }
    let schema = json!({"type": "object", "properties": {"x": {"type": "integer", "default": 1}}});
    let (s, v) = a
        .admin(
            "PUT",
            "/v1/fleets/fb/schema",
            Some(json!({"schema": schema})),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let (s, d) = a
        .admin("POST", "/v1/factory/devices", Some(json!({"fleet": "fb", "hardware_id": "hw-b", "model": "m",
            "batch": "b", "station": "s", "keys": {"x25519": B64.encode([9u8; 32]), "ed25519": B64.encode([7u8; 32])}})))
        .await;
    assert_eq!(s, StatusCode::CREATED, "{d}");
    let b_dev = d["id"].as_str().unwrap().to_owned();
    // Everything fleet A may do, nothing of fleet B.
    let tok = a.token(&["operate:fa", "devices:fa", "factory:fa"]).await;
    let doc = api::openapi_document();
    let mut walked = 0;
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            let m = method.to_uppercase();
            let body_for = |fleet: &str| {
                let mut b = good_body(&m, path);
                if b.get("fleet").is_some() {
                    b["fleet"] = json!(fleet);
                }
                if b.get("device_id").is_some() {
                    b["device_id"] = json!(b_dev);
                }
                b
            };
            let fleet_scoped = path.contains("{fleet}") || body_for("fb").get("fleet").is_some();
            if op["security"] == json!([{}]) || !fleet_scoped {
                continue;
            }
            let body = |fleet: &str| (m != "GET").then(|| body_for(fleet));
            // Fleet B named in the path or body: forbidden, whatever the rest says.
            let other = path.replace("{fleet}", "fb").replace("{id}", &b_dev);
            let (s, _, v) = a.call(&m, &other, Some(&tok), body("fb")).await;
            assert_eq!(s, StatusCode::FORBIDDEN, "{m} {other}: {v}");
            // Fleet A named, B's device asked for: not found (its existence is not revealed).
            if path.contains("{id}") || body_for("fa").get("device_id").is_some() {
                let own = path.replace("{fleet}", "fa").replace("{id}", &b_dev);
                let (s, _, v) = a.call(&m, &own, Some(&tok), body("fa")).await;
                assert_eq!(s, StatusCode::NOT_FOUND, "{m} {own}: {v}");
            }
            walked += 1;
        }
    }
    assert!(walked >= 18, "walked {walked} fleet-scoped operations");
    // B's device is untouched.
    let (_, v) = a
        .admin("GET", &format!("/v1/fleets/fb/devices/{b_dev}"), None)
        .await;
    assert_eq!(v["state"], "manufactured");
}
