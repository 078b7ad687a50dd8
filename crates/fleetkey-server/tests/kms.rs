//! The key-service operations beyond seal and unseal, over the HTTP API in
//! process: encryption context, data keys, random bytes; each with its refusals.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use axum::http::StatusCode;
use base64::{Engine as _, engine::general_purpose::STANDARD as B64};
use common::api::{Api, api};
use serde_json::{Value, json};

async fn keyring(a: &Api, name: &str) {
    let (s, v) = a
        .admin("POST", "/v1/keyrings", Some(json!({"name": name})))
        .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
}

fn code(v: &Value) -> &str {
    v["error"]["code"].as_str().unwrap_or("")
}

#[tokio::test]
async fn a_context_opens_in_any_order_and_binds_like_aad() {
    let a = api().await;
    keyring(&a, "ctx").await;
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
    keyring(&a, "ctx").await;
    let t = a.token(&["seal:ctx", "unseal:ctx", "rewrap:ctx"]).await;
    let pt = B64.encode(b"x");
    let long_key = "k".repeat(257);
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
