//! The key-service operations beyond seal and unseal, over the HTTP API in
//! process: encryption context, data keys, random bytes; each with its refusals.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use axum::http::StatusCode;
use base64::{Engine as _, engine::general_purpose::STANDARD as B64};
use common::api::{api, api_with, code};
use serde_json::{Value, json};

#[tokio::test]
async fn a_context_opens_in_any_order_and_binds_like_aad() {
    let a = api().await;
    a.keyring("ctx", "aes-256-gcm").await;
    let t = a.token(&["seal:ctx", "unseal:ctx", "rewrap:ctx"]).await;
    let pt = B64.encode(b"row 17");
    let (s, _, v) = a
        .call(
            "POST",
            "/v1/keyrings/ctx/seal",
            Some(&t),
            Some(json!({"plaintext": pt, "context": {"tenant": "acme", "table": "orders"}})),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let ct = v["ciphertext"].as_str().unwrap().to_owned();
    let unseal = |body: Value| {
        let (a, t) = (&a, &t);
        async move {
            a.call("POST", "/v1/keyrings/ctx/unseal", Some(t), Some(body))
                .await
        }
    };
    // The same pairs in another order open it.
    let (s, _, v) =
        unseal(json!({"ciphertext": ct, "context": {"table": "orders", "tenant": "acme"}})).await;
    assert_eq!(
        (s, v["plaintext"].as_str()),
        (StatusCode::OK, Some(pt.as_str())),
        "{v}"
    );
    // The canonical encoding given as raw aad opens it too (docs/formats.md).
    let map =
        fleetkey_crypto::envelope::context::from_pairs([("tenant", "acme"), ("table", "orders")])
            .unwrap();
    let raw = fleetkey_crypto::envelope::context::encode(&map).unwrap();
    let (s, _, _) = unseal(json!({"ciphertext": ct, "aad": B64.encode(&raw)})).await;
    assert_eq!(s, StatusCode::OK);
    // Another value, a missing pair, an extra pair, no context: cannot open.
    for ctx in [
        json!({"tenant": "other", "table": "orders"}),
        json!({"tenant": "acme"}),
        json!({"tenant": "acme", "table": "orders", "x": ""}),
        json!({}),
    ] {
        let (s, _, v) = unseal(json!({"ciphertext": ct, "context": ctx})).await;
        assert_eq!(
            (s, code(&v)),
            (StatusCode::UNPROCESSABLE_ENTITY, "cannot_open"),
            "{ctx}"
        );
    }
    // Rewrap keeps the binding: the new envelope opens with the same context only.
    let (s, _, v) = a
        .call(
            "POST",
            "/v1/keyrings/ctx/rewrap/batch",
            Some(&t),
            Some(json!({"items": [
                {"ciphertext": ct, "context": {"tenant": "acme", "table": "orders"}},
                {"ciphertext": ct, "context": {"table": "orders", "tenant": "acme"}},
            ]})),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let re = v["results"][1]["ciphertext"].as_str().unwrap().to_owned();
    let (s, _, _) =
        unseal(json!({"ciphertext": re, "context": {"tenant": "acme", "table": "orders"}})).await;
    assert_eq!(s, StatusCode::OK);
    let (s, _, _) = unseal(json!({"ciphertext": re})).await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
    // An empty context is no associated data.
    let (_, _, v) = a
        .call(
            "POST",
            "/v1/keyrings/ctx/seal",
            Some(&t),
            Some(json!({"plaintext": pt, "context": {}})),
        )
        .await;
    let (s, _, _) = unseal(json!({"ciphertext": v["ciphertext"]})).await;
    assert_eq!(s, StatusCode::OK);
}

#[tokio::test]
async fn malformed_contexts_are_refused_before_any_crypto() {
    let a = api().await;
    a.keyring("ctx", "aes-256-gcm").await;
    let t = a.token(&["seal:ctx", "unseal:ctx", "rewrap:ctx"]).await;
    let pt = B64.encode(b"x");
    let long_key = "k".repeat(129);
    let many: serde_json::Map<String, Value> =
        (0..65).map(|i| (format!("k{i}"), json!("v"))).collect();
    let bad = [
        json!({"plaintext": pt, "aad": "AA==", "context": {"a": "b"}}),
        json!({"plaintext": pt, "context": {"": "v"}}),
        json!({"plaintext": pt, "context": {long_key: "v"}}),
        json!({"plaintext": pt, "context": {"k": "v".repeat(1025)}}),
        json!({"plaintext": pt, "context": many}),
        json!({"plaintext": pt, "context": {"k": 1}}),
        json!({"plaintext": pt, "context": ["k", "v"]}),
    ];
    for body in bad {
        let (s, _, v) = a
            .call(
                "POST",
                "/v1/keyrings/ctx/seal",
                Some(&t),
                Some(body.clone()),
            )
            .await;
        assert_eq!(
            (s, code(&v)),
            (StatusCode::BAD_REQUEST, "malformed"),
            "{body} → {v}"
        );
    }
    // A key given twice is refused in the context and anywhere else in a body
    // (one reader keeps the first, another the last: never guess).
    for raw in [
        format!(r#"{{"plaintext":"{pt}","context":{{"tenant":"a","tenant":"b"}}}}"#),
        format!(r#"{{"plaintext":"{pt}","plaintext":"{pt}"}}"#),
    ] {
        let (s, v) = a.raw("POST", "/v1/keyrings/ctx/seal", &t, raw).await;
        assert_eq!((s, code(&v)), (StatusCode::BAD_REQUEST, "malformed"), "{v}");
        assert!(
            v["error"]["message"].as_str().unwrap().contains("twice"),
            "{v}"
        );
    }
    // A rewrap batch binds every item to one context.
    let (s, _, v) = a
        .call(
            "POST",
            "/v1/keyrings/ctx/rewrap/batch",
            Some(&t),
            Some(json!({"items": [
                {"ciphertext": "AA==", "context": {"tenant": "a"}},
                {"ciphertext": "AA==", "context": {"tenant": "b"}},
            ]})),
        )
        .await;
    assert_eq!((s, code(&v)), (StatusCode::BAD_REQUEST, "malformed"), "{v}");
}

fn b64(v: &Value) -> Vec<u8> {
    B64.decode(v.as_str().unwrap()).unwrap()
}

#[tokio::test]
async fn data_keys_unseal_to_themselves_and_are_scoped() {
    let a = api_with(fleetkey_server::config::Config {
        max_batch_items: 4,
        ..Default::default()
    })
    .await;
    a.keyring("dk", "aes-256-gcm").await;
    let t = a.token(&["datakey:dk", "unseal:dk"]).await;
    let ctx = json!({"bucket": "invoices"});
    let (s, _, v) = a
        .call(
            "POST",
            "/v1/keyrings/dk/datakey",
            Some(&t),
            Some(json!({"context": ctx})),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let key = b64(&v["plaintext"]);
    assert_eq!(key.len(), 32);
    assert_eq!(v["key_version"], 1);
    // The sealed key is an ordinary envelope: unseal (same context) gives the key.
    let (s, _, u) = a
        .call(
            "POST",
            "/v1/keyrings/dk/unseal",
            Some(&t),
            Some(json!({"ciphertext": v["ciphertext"], "context": ctx})),
        )
        .await;
    assert_eq!((s, b64(&u["plaintext"])), (StatusCode::OK, key.clone()));
    let (s, _, _) = a
        .call(
            "POST",
            "/v1/keyrings/dk/unseal",
            Some(&t),
            Some(json!({"ciphertext": v["ciphertext"]})),
        )
        .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
    // Without plaintext: only the envelope.
    let (s, _, v) = a
        .call(
            "POST",
            "/v1/keyrings/dk/datakey",
            Some(&t),
            Some(json!({"return_plaintext": false})),
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    assert!(v.get("plaintext").is_none(), "{v}");
    assert!(v["ciphertext"].is_string());
    // Batches: a key per item, each different; bad items fail alone.
    let (s, _, v) = a
        .call(
            "POST",
            "/v1/keyrings/dk/datakey/batch",
            Some(&t),
            Some(json!({"items": [{}, {}, {"aad": "***"}, {"return_plaintext": false}]})),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let r = v["results"].as_array().unwrap();
    assert_eq!(r.len(), 4);
    assert_ne!(b64(&r[0]["plaintext"]), b64(&r[1]["plaintext"]));
    assert_eq!(r[2]["error"]["code"], "malformed");
    assert!(r[3].get("plaintext").is_none() && r[3]["ciphertext"].is_string());
    let too_many: Vec<Value> = (0..5).map(|_| json!({})).collect();
    let (s, _, _) = a
        .call(
            "POST",
            "/v1/keyrings/dk/datakey/batch",
            Some(&t),
            Some(json!({"items": too_many})),
        )
        .await;
    assert_eq!(s, StatusCode::PAYLOAD_TOO_LARGE);
    // Refusals: both bindings, unknown keyring, another keyring's or another
    // operation's scope.
    let (s, _, _) = a
        .call(
            "POST",
            "/v1/keyrings/dk/datakey",
            Some(&t),
            Some(json!({"aad": "AA==", "context": {"a": "b"}})),
        )
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    let (s, _, _) = a
        .call(
            "POST",
            "/v1/keyrings/nope/datakey",
            Some(&a.admin),
            Some(json!({})),
        )
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    for scopes in [&["seal:dk", "unseal:dk"][..], &["datakey:other"][..]] {
        let other = a.token(scopes).await;
        let (s, _, _) = a
            .call(
                "POST",
                "/v1/keyrings/dk/datakey",
                Some(&other),
                Some(json!({})),
            )
            .await;
        assert_eq!(s, StatusCode::FORBIDDEN, "{scopes:?}");
    }
    let (_, _, m) = a.call("GET", "/metrics", None, None).await;
    let m = m.as_str().unwrap();
    assert!(
        m.contains("fleetkey_datakeys_total{keyring=\"dk\",result=\"ok\"} 5"),
        "{m}"
    );
    assert!(m.contains("fleetkey_datakeys_total{keyring=\"dk\",result=\"malformed\"} 2"));
}

#[tokio::test]
async fn random_bytes_are_bounded_and_scoped() {
    let a = api().await;
    let t = a.token(&["random"]).await;
    let (s, _, v) = a.call("GET", "/v1/random?bytes=32", Some(&t), None).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let first = b64(&v["random"]);
    assert_eq!(first.len(), 32);
    let (_, _, v) = a.call("GET", "/v1/random?bytes=32", Some(&t), None).await;
    assert_ne!(b64(&v["random"]), first);
    let (_, _, v) = a.call("GET", "/v1/random?bytes=1024", Some(&t), None).await;
    assert_eq!(b64(&v["random"]).len(), 1024);
    for q in [
        "bytes=0",
        "bytes=1025",
        "bytes=-1",
        "bytes=x",
        "",
        "bytes=8&other=1",
    ] {
        let (s, _, v) = a
            .call("GET", &format!("/v1/random?{q}"), Some(&t), None)
            .await;
        assert_eq!((s, code(&v)), (StatusCode::BAD_REQUEST, "malformed"), "{q}");
    }
    let other = a.token(&["seal:*"]).await;
    let (s, _, _) = a
        .call("GET", "/v1/random?bytes=8", Some(&other), None)
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    let (_, _, m) = a.call("GET", "/metrics", None, None).await;
    assert!(
        m.as_str()
            .unwrap()
            .contains("fleetkey_random_bytes_total 1088")
    );
}

#[test]
fn debug_output_never_shows_key_material() {
    let r = fleetkey_server::api::datakeys::DataKeyResponse {
        ciphertext: "c".into(),
        key_version: 1,
        plaintext: Some(B64.encode([0x5a; 32])),
    };
    let shown = format!("{r:?}");
    assert!(
        !shown.contains(&B64.encode([0x5a; 32])) && shown.contains("redacted"),
        "{shown}"
    );
}
