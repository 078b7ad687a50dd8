//! The Vault Transit door in process: Transit's shapes, its loose parameters,
//! batches, refusals in `{"errors": […]}`, the same keyrings, scopes and audit
//! as the native API (signing, HMAC, random, hash and mounts:
//! tests/transit_signing.rs). (The real clients, hvac and the `bao` CLI, and the side
//! by side run against OpenBao are in crates/fleetkey/tests/transit_clients.rs.)

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use base64::{Engine as _, engine::general_purpose::STANDARD as B64};
use common::api::api;
use common::vault::{admin, b64, error, vault};
use serde_json::{Value, json};
use tower::ServiceExt;

#[tokio::test]
async fn keys_are_created_read_listed_rotated_configured_and_deleted() {
    let a = api().await;
    let (s, v) = admin(&a, "LIST", "/v1/transit/keys", None).await;
    assert_eq!((s, v), (StatusCode::NOT_FOUND, json!({ "errors": [] })));
    let (s, v) = admin(&a, "POST", "/v1/transit/keys/orders", None).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let d = &v["data"];
    for field in [
        "allow_plaintext_backup",
        "auto_rotate_period",
        "deletion_allowed",
        "derived",
        "exportable",
        "imported_key",
        "keys",
        "latest_version",
        "min_available_version",
        "min_decryption_version",
        "min_encryption_version",
        "name",
        "supports_decryption",
        "supports_derivation",
        "supports_encryption",
        "supports_signing",
        "type",
    ] {
        assert!(d.get(field).is_some(), "{field} missing from {d}");
    }
    assert_eq!(d["type"], "aes256-gcm96");
    assert_eq!(d["latest_version"], 1);
    assert!(d["keys"]["1"].is_i64());
    assert!(v["request_id"].as_str().unwrap().len() == 36);
    // The same keyring through the native API.
    let (s, n) = a.admin("GET", "/v1/keyrings/orders", None).await;
    assert_eq!(
        (s, n["algorithm"].as_str()),
        (StatusCode::OK, Some("aes-256-gcm"))
    );

    // Creating it again answers it as it is.
    let (s, _) = admin(
        &a,
        "POST",
        "/v1/transit/keys/orders",
        Some(json!({"type": "aes256-gcm96"})),
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    let (s, v) = admin(
        &a,
        "POST",
        "/v1/transit/keys/sig",
        Some(json!({"type": "ed25519"})),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let k = &v["data"]["keys"]["1"];
    assert_eq!(
        B64.decode(k["public_key"].as_str().unwrap()).unwrap().len(),
        32
    );
    assert_eq!(k["name"], "ed25519");
    assert_eq!(v["data"]["supports_signing"], true);
    let (s, v) = admin(
        &a,
        "POST",
        "/v1/transit/keys/pq",
        Some(json!({"type": "ml-dsa-65"})),
    )
    .await;
    assert_eq!(
        (s, v["data"]["type"].as_str()),
        (StatusCode::OK, Some("ml-dsa-65"))
    );

    for (body, why) in [
        (json!({"type": "rsa-2048"}), "unsupported key type"),
        (json!({"type": "aes256-gcm96", "derived": true}), "derived"),
        (
            json!({"allow_plaintext_backup": "true"}),
            "plaintext backups",
        ),
        (json!({"auto_rotate_period": "30s"}), "at least 1m"),
        (json!({"exportable": "maybe"}), "boolean"),
    ] {
        let (s, v) = admin(&a, "POST", "/v1/transit/keys/other", Some(body)).await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");
        assert!(error(&v).contains(why), "{v}");
    }

    for (method, path) in [
        ("LIST", "/v1/transit/keys"),
        ("GET", "/v1/transit/keys?list=true"),
    ] {
        let (s, v) = admin(&a, method, path, None).await;
        assert_eq!(s, StatusCode::OK);
        assert_eq!(v["data"]["keys"], json!(["orders", "pq", "sig"]));
    }
    let (s, _) = admin(&a, "GET", "/v1/transit/keys", None).await;
    assert_eq!(s, StatusCode::METHOD_NOT_ALLOWED);
    // Other methods and paths are refused in Transit's shape too.
    for (method, path, status) in [
        (
            "GET",
            "/v1/transit/encrypt/orders",
            StatusCode::METHOD_NOT_ALLOWED,
        ),
        (
            "PATCH",
            "/v1/transit/keys/orders",
            StatusCode::METHOD_NOT_ALLOWED,
        ),
        (
            "POST",
            "/v1/transit/keys/orders/export/encryption-key",
            StatusCode::NOT_FOUND,
        ),
        ("POST", "/v1/transit/backup/orders", StatusCode::NOT_FOUND),
    ] {
        let (s, v) = admin(&a, method, path, None).await;
        assert_eq!(s, status, "{method} {path}: {v}");
        assert!(error(&v).starts_with("unsupported"), "{v}");
    }

    let (s, v) = admin(&a, "POST", "/v1/transit/keys/orders/rotate", None).await;
    assert_eq!(
        (s, v["data"]["latest_version"].as_i64()),
        (StatusCode::OK, Some(2))
    );
    let (_, old) = admin(
        &a,
        "POST",
        "/v1/transit/encrypt/orders",
        Some(json!({"plaintext": b64("x"), "key_version": "2"})),
    )
    .await;
    assert_eq!(old["data"]["key_version"], 2);

    // config: values as strings, as the CLI sends them.
    let (s, v) = admin(
        &a,
        "POST",
        "/v1/transit/keys/orders/config",
        Some(json!({"min_decryption_version": "2", "auto_rotate_period": "24h", "deletion_allowed": "true"})),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["data"]["min_decryption_version"], 2);
    assert_eq!(v["data"]["auto_rotate_period"], 86_400);
    assert_eq!(v["data"]["deletion_allowed"], true);
    for (body, why) in [
        (json!({"min_decryption_version": 1}), "cannot be lowered"),
        (json!({"min_decryption_version": 3}), "above the latest"),
        (json!({"min_encryption_version": 2}), "latest version"),
        (json!({"exportable": true}), "fixed"),
        (json!({"auto_rotate_period": 0}), "never"),
    ] {
        let (s, v) = admin(&a, "POST", "/v1/transit/keys/orders/config", Some(body)).await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");
        assert!(error(&v).contains(why), "{v}");
    }

    // Deletion needs deletion_allowed, then the key is gone for Transit.
    let (s, v) = admin(&a, "DELETE", "/v1/transit/keys/sig", None).await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert!(error(&v).contains("deletion is not allowed"), "{v}");
    let (s, _) = admin(&a, "DELETE", "/v1/transit/keys/orders", None).await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    let (s, v) = admin(&a, "GET", "/v1/transit/keys/orders", None).await;
    assert_eq!((s, v), (StatusCode::NOT_FOUND, json!({ "errors": [] })));
    let (_, v) = admin(&a, "LIST", "/v1/transit/keys", None).await;
    assert_eq!(v["data"]["keys"], json!(["pq", "sig"]));
    // Natively it waits for its erasure, and can still be cancelled.
    let (_, n) = a.admin("GET", "/v1/keyrings/orders", None).await;
    assert_eq!(n["state"], "pending_deletion");

    // Every change is audited under the door and the operation.
    let (_, audit) = a.admin("GET", "/v1/audit?limit=100", None).await;
    let actors: Vec<(String, String)> = audit["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["action"].as_str().unwrap().to_owned(),
                e["actor"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    for (action, op) in [
        ("keyring.create", "keys/create"),
        ("keyring.rotate", "keys/rotate"),
        ("keyring.min_decrypt", "keys/config"),
        ("keyring.policy", "keys/config"),
        ("keyring.details", "keys/config"),
        ("keyring.schedule_deletion", "keys/delete"),
    ] {
        assert!(
            actors.iter().any(|(a, who)| a == action
                && who.starts_with("token:tok_")
                && who.ends_with(&format!(" via transit {op}"))),
            "{action} by {op} not in {actors:?}"
        );
    }
}

#[tokio::test]
async fn encrypt_decrypt_rewrap_and_data_keys_round_trip() {
    let a = api().await;
    // Encrypting to a key that does not exist creates it (upsert), as in Transit.
    let (s, v) = admin(
        &a,
        "POST",
        "/v1/transit/encrypt/app",
        Some(json!({"plaintext": b64("hello"), "associated_data": b64("row 7")})),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let ct = v["data"]["ciphertext"].as_str().unwrap().to_owned();
    assert!(ct.starts_with("vault:v1:"), "{ct}");
    assert_eq!(v["data"]["key_version"], 1);
    let (s, v) = admin(
        &a,
        "POST",
        "/v1/transit/decrypt/app",
        Some(json!({"ciphertext": ct, "associated_data": b64("row 7")})),
    )
    .await;
    assert_eq!(
        (s, v["data"]["plaintext"].as_str()),
        (StatusCode::OK, Some(b64("hello").as_str()))
    );
    // The envelope inside is an fk1 envelope of the same keyring.
    let env = ct.strip_prefix("vault:v1:").unwrap();
    let (s, n) = a
        .admin(
            "POST",
            "/v1/keyrings/app/unseal",
            Some(json!({"ciphertext": env, "aad": b64("row 7")})),
        )
        .await;
    assert_eq!(
        (s, n["plaintext"].as_str()),
        (StatusCode::OK, Some(b64("hello").as_str()))
    );

    // Refusals: other associated data, an edited version, garbage, no key.
    for (body, why) in [
        (
            json!({"ciphertext": ct, "associated_data": b64("row 8")}),
            "cannot",
        ),
        (json!({"ciphertext": ct}), "cannot"),
        (
            json!({"ciphertext": ct.replacen("vault:v1:", "vault:v2:", 1)}),
            "version",
        ),
        (json!({"ciphertext": "vault:v1:AAAA"}), "invalid ciphertext"),
        (json!({"ciphertext": "v1:abc"}), "invalid ciphertext"),
        (
            json!({"ciphertext": ct, "context": b64("c")}),
            "derivation context",
        ),
        (json!({}), "missing ciphertext"),
    ] {
        let (s, v) = admin(&a, "POST", "/v1/transit/decrypt/app", Some(body)).await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");
        assert!(error(&v).contains(why), "{why}: {v}");
    }
    let (s, v) = admin(
        &a,
        "POST",
        "/v1/transit/decrypt/none",
        Some(json!({"ciphertext": ct})),
    )
    .await;
    assert_eq!(
        (s, error(&v).as_str()),
        (StatusCode::BAD_REQUEST, "encryption key not found")
    );
    let (s, v) = admin(
        &a,
        "POST",
        "/v1/transit/encrypt/app",
        Some(json!({"plaintext": "%%%"})),
    )
    .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");
    let (s, v) = admin(
        &a,
        "POST",
        "/v1/transit/encrypt/app",
        Some(json!({"plaintext": b64("x"), "key_version": 5})),
    )
    .await;
    assert!(
        s == StatusCode::BAD_REQUEST && error(&v).contains("latest version"),
        "{v}"
    );

    // Batches: one result per item, each with its reference; a failed item
    // makes the answer 400 unless partial_failure_response_code says otherwise.
    let batch = json!({"batch_input": [
        {"plaintext": b64("a"), "reference": "r1"},
        {"plaintext": "!!", "reference": "r2"},
        {"plaintext": b64("c")},
    ]});
    let (s, v) = admin(&a, "POST", "/v1/transit/encrypt/app", Some(batch.clone())).await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");
    let r = v["data"]["batch_results"].as_array().unwrap();
    assert_eq!(r.len(), 3);
    assert_eq!(r[0]["reference"], "r1");
    assert!(
        r[0]["ciphertext"]
            .as_str()
            .unwrap()
            .starts_with("vault:v1:")
    );
    assert!(r[1]["error"].as_str().unwrap().contains("base64"), "{v}");
    assert_eq!(r[2]["reference"], "");
    let mut partial = batch.clone();
    partial["partial_failure_response_code"] = json!(207);
    let (s, _) = admin(&a, "POST", "/v1/transit/encrypt/app", Some(partial)).await;
    assert_eq!(s.as_u16(), 207);
    // When every item failed it is 400 whatever the partial code.
    let all_bad =
        json!({"batch_input": [{"plaintext": "!"}], "partial_failure_response_code": 200});
    let (s, v) = admin(&a, "POST", "/v1/transit/encrypt/app", Some(all_bad)).await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert!(v["data"]["batch_results"][0]["error"].is_string(), "{v}");
    let cts: Vec<Value> = [0, 2]
        .iter()
        .map(|i| json!({"ciphertext": r[*i]["ciphertext"]}))
        .collect();
    let (s, v) = admin(
        &a,
        "POST",
        "/v1/transit/decrypt/app",
        Some(json!({"batch_input": cts})),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["data"]["batch_results"][1]["plaintext"], b64("c"));

    // Rewrap to the latest version; the old ciphertext and the new both open.
    let (s, _) = admin(&a, "POST", "/v1/transit/keys/app/rotate", None).await;
    assert_eq!(s, StatusCode::OK);
    let (s, v) = admin(
        &a,
        "POST",
        "/v1/transit/rewrap/app",
        Some(json!({"ciphertext": ct, "associated_data": b64("row 7")})),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let new = v["data"]["ciphertext"].as_str().unwrap().to_owned();
    assert!(
        new.starts_with("vault:v2:") && v["data"]["key_version"] == 2,
        "{v}"
    );
    let (_, v) = admin(
        &a,
        "POST",
        "/v1/transit/decrypt/app",
        Some(json!({"ciphertext": new, "associated_data": b64("row 7")})),
    )
    .await;
    assert_eq!(v["data"]["plaintext"], b64("hello"));

    // Data keys: the plaintext decrypts back from the ciphertext.
    let (s, v) = admin(
        &a,
        "POST",
        "/v1/transit/datakey/plaintext/app",
        Some(json!({"bits": "128"})),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let key = v["data"]["plaintext"].as_str().unwrap().to_owned();
    assert_eq!(B64.decode(&key).unwrap().len(), 16);
    let (_, d) = admin(
        &a,
        "POST",
        "/v1/transit/decrypt/app",
        Some(json!({"ciphertext": v["data"]["ciphertext"]})),
    )
    .await;
    assert_eq!(d["data"]["plaintext"], key);
    let (s, v) = admin(&a, "POST", "/v1/transit/datakey/wrapped/app", None).await;
    assert_eq!(s, StatusCode::OK);
    assert!(v["data"].get("plaintext").is_none());
    let (_, d) = admin(
        &a,
        "POST",
        "/v1/transit/decrypt/app",
        Some(json!({"ciphertext": v["data"]["ciphertext"]})),
    )
    .await;
    assert_eq!(
        B64.decode(d["data"]["plaintext"].as_str().unwrap())
            .unwrap()
            .len(),
        32
    );
    for (path, body) in [
        ("/v1/transit/datakey/plaintext/app", json!({"bits": 100})),
        ("/v1/transit/datakey/other/app", json!({})),
    ] {
        let (s, _) = admin(&a, "POST", path, Some(body)).await;
        assert_eq!(s, StatusCode::BAD_REQUEST);
    }
    // Unknown parameters are reported back, as Vault does, and change nothing.
    let (s, v) = admin(
        &a,
        "POST",
        "/v1/transit/encrypt/app",
        Some(json!({"plaintext": b64("x"), "colour": "blue"})),
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(
        v["warnings"][0],
        "Endpoint ignored these unrecognized parameters: [colour]"
    );
}

#[tokio::test]
async fn tokens_scopes_and_bad_input_are_refused_in_transit_shape() {
    let a = api().await;
    admin(&a, "POST", "/v1/transit/keys/a", None).await;
    admin(&a, "POST", "/v1/transit/keys/b", None).await;
    let denied = json!({ "errors": ["permission denied"] });
    for token in [None, Some("fkt_not-a-token"), Some("root")] {
        let (s, v) = vault(
            &a,
            "POST",
            "/v1/transit/encrypt/a",
            token,
            Some(json!({"plaintext": b64("x")})),
        )
        .await;
        assert_eq!((s, v), (StatusCode::FORBIDDEN, denied.clone()));
    }
    let t = a.token(&["seal:a"]).await;
    let (s, v) = vault(
        &a,
        "POST",
        "/v1/transit/encrypt/a",
        Some(&t),
        Some(json!({"plaintext": b64("x")})),
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    let ct = v["data"]["ciphertext"].clone();
    for (path, body) in [
        ("/v1/transit/decrypt/a", json!({"ciphertext": ct})),
        ("/v1/transit/encrypt/b", json!({"plaintext": b64("x")})),
        ("/v1/transit/keys/a/rotate", json!({})),
        ("/v1/transit/random", json!({})),
        // No upsert without keys:manage.
        ("/v1/transit/encrypt/c", json!({"plaintext": b64("x")})),
    ] {
        let (s, v) = vault(&a, "POST", path, Some(&t), Some(body)).await;
        assert_eq!(s, StatusCode::FORBIDDEN, "{path}: {v}");
        assert!(error(&v).starts_with("permission denied"), "{v}");
    }
    // Metadata is readable with a scope that uses the key.
    let (s, _) = vault(&a, "GET", "/v1/transit/keys/a", Some(&t), None).await;
    assert_eq!(s, StatusCode::OK);
    let (s, _) = vault(&a, "GET", "/v1/transit/keys/b", Some(&t), None).await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    let (s, v) = vault(&a, "GET", "/v1/auth/token/lookup-self", Some(&t), None).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(v["data"]["policies"], json!(["seal:a"]));
    let id = v["data"]["id"].as_str().unwrap();
    assert!(
        id.starts_with("tok_") && !t.contains(id.trim_start_matches("tok_")),
        "the secret is never echoed"
    );
    // A revoked token is refused at once.
    let tid = id.to_owned();
    a.tokens.revoke("test", &tid).await.unwrap();
    let (s, _) = vault(
        &a,
        "POST",
        "/v1/transit/encrypt/a",
        Some(&t),
        Some(json!({"plaintext": b64("x")})),
    )
    .await;
    assert_eq!(s, StatusCode::FORBIDDEN);

    let (s, v) = vault(&a, "GET", "/v1/sys/seal-status", None, None).await;
    assert_eq!(
        (s, &v["sealed"], &v["initialized"]),
        (StatusCode::OK, &json!(false), &json!(true))
    );

    // Malformed bodies: Transit's error shape, never a 500.
    for body in [
        "{",
        "[1]",
        "\"x\"",
        "{\"plaintext\": 1}",
        "{\"plaintext\": \"eA==\", \"plaintext\": \"eA==\"}",
        "{\"batch_input\": {}}",
        "{\"batch_input\": [3]}",
    ] {
        let req = Request::builder()
            .method("POST")
            .uri("/v1/transit/encrypt/a")
            .header("x-vault-token", &a.admin)
            .body(Body::from(body))
            .unwrap();
        let resp = a.app.clone().oneshot(req).await.unwrap();
        assert_eq!(resp.status(), StatusCode::BAD_REQUEST, "{body}");
        let bytes = axum::body::to_bytes(resp.into_body(), usize::MAX)
            .await
            .unwrap();
        let v: Value = serde_json::from_slice(&bytes).unwrap();
        assert!(v["errors"][0].is_string(), "{body}: {v}");
    }
    let many: Vec<Value> = (0..10_001).map(|_| json!({"plaintext": "eA=="})).collect();
    let (s, v) = admin(
        &a,
        "POST",
        "/v1/transit/encrypt/a",
        Some(json!({"batch_input": many})),
    )
    .await;
    assert_eq!(s, StatusCode::PAYLOAD_TOO_LARGE, "{v}");
    assert!(v["errors"][0].is_string());
}
