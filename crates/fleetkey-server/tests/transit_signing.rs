//! The Vault Transit door in process: sign and verify (an Ed25519 signature
//! checked against the public key Transit shows), HMAC, random, hash, and the
//! mounts setting.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use axum::http::StatusCode;
use base64::{Engine as _, engine::general_purpose::STANDARD as B64};
use common::api::{api, api_with};
use common::vault::{admin, b64, error};
use serde_json::json;

#[tokio::test]
async fn sign_verify_hmac_random_and_hash() {
    let a = api().await;
    admin(
        &a,
        "POST",
        "/v1/transit/keys/sig",
        Some(json!({"type": "ed25519"})),
    )
    .await;
    admin(
        &a,
        "POST",
        "/v1/transit/keys/mac",
        Some(json!({"type": "hmac"})),
    )
    .await;
    let (s, v) = admin(
        &a,
        "POST",
        "/v1/transit/sign/sig",
        Some(json!({"input": b64("msg")})),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let sig = v["data"]["signature"].as_str().unwrap().to_owned();
    assert!(sig.starts_with("vault:v1:"));
    // An Ed25519 signature checks against the public key Transit shows.
    let (_, k) = admin(&a, "GET", "/v1/transit/keys/sig", None).await;
    let pk = B64
        .decode(k["data"]["keys"]["1"]["public_key"].as_str().unwrap())
        .unwrap();
    let raw = B64.decode(sig.strip_prefix("vault:v1:").unwrap()).unwrap();
    aws_lc_rs::signature::UnparsedPublicKey::new(&aws_lc_rs::signature::ED25519, &pk)
        .verify(b"msg", &raw)
        .unwrap();
    for (input, valid) in [("msg", true), ("msh", false)] {
        let (s, v) = admin(
            &a,
            "POST",
            "/v1/transit/verify/sig/sha2-256",
            Some(json!({"input": b64(input), "signature": sig})),
        )
        .await;
        assert_eq!(
            (s, v["data"]["valid"].as_bool()),
            (StatusCode::OK, Some(valid)),
            "{v}"
        );
    }
    let (s, _) = admin(
        &a,
        "POST",
        "/v1/transit/verify/sig",
        Some(json!({"input": b64("msg"), "signature": "garbage"})),
    )
    .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    let (s, v) = admin(
        &a,
        "POST",
        "/v1/transit/sign/sig",
        Some(json!({"batch_input": [{"input": b64("a")}, {"input": b64("b")}]})),
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(v["data"]["batch_results"].as_array().unwrap().len(), 2);

    let (s, v) = admin(
        &a,
        "POST",
        "/v1/transit/hmac/mac",
        Some(json!({"input": b64("m")})),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let tag = v["data"]["hmac"].as_str().unwrap().to_owned();
    assert_eq!(
        B64.decode(tag.strip_prefix("vault:v1:").unwrap())
            .unwrap()
            .len(),
        32
    );
    let (_, v) = admin(
        &a,
        "POST",
        "/v1/transit/verify/mac",
        Some(json!({"input": b64("m"), "hmac": tag})),
    )
    .await;
    assert_eq!(v["data"]["valid"], true);
    let (_, v) = admin(
        &a,
        "POST",
        "/v1/transit/verify/mac",
        Some(json!({"input": b64("n"), "hmac": tag})),
    )
    .await;
    assert_eq!(v["data"]["valid"], false);
    // A batch of HMACs names no field at its top: the key says what to check.
    let (s, v) = admin(
        &a,
        "POST",
        "/v1/transit/verify/mac",
        Some(json!({"batch_input": [{"input": b64("m"), "hmac": tag}, {"input": b64("n"), "hmac": tag}]})),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["data"]["batch_results"][0]["valid"], true);
    assert_eq!(v["data"]["batch_results"][1]["valid"], false);
    // A token that may verify signatures only gets nothing from a MAC key.
    let only_verify = a.token(&["verify:mac"]).await;
    let (s, _) = common::vault::vault(
        &a,
        "POST",
        "/v1/transit/verify/mac",
        Some(&only_verify),
        Some(json!({"input": b64("m"), "hmac": tag})),
    )
    .await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    let (s, v) = admin(
        &a,
        "POST",
        "/v1/transit/hmac/mac/sha2-512",
        Some(json!({"input": b64("m")})),
    )
    .await;
    assert!(
        s == StatusCode::BAD_REQUEST && error(&v).contains("hmac-sha256"),
        "{v}"
    );
    // Keys of the wrong kind are refused.
    let (s, _) = admin(
        &a,
        "POST",
        "/v1/transit/sign/mac",
        Some(json!({"input": b64("m")})),
    )
    .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    let (s, _) = admin(
        &a,
        "POST",
        "/v1/transit/encrypt/sig",
        Some(json!({"plaintext": b64("m")})),
    )
    .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);

    for (path, body, len) in [
        ("/v1/transit/random", json!({}), 32),
        ("/v1/transit/random/16", json!({}), 16),
        ("/v1/transit/random/platform/8", json!({}), 8),
        ("/v1/transit/random", json!({"bytes": "64"}), 64),
    ] {
        let (s, v) = admin(&a, "POST", path, Some(body)).await;
        assert_eq!(s, StatusCode::OK, "{path}: {v}");
        assert_eq!(
            B64.decode(v["data"]["random_bytes"].as_str().unwrap())
                .unwrap()
                .len(),
            len
        );
    }
    let (_, v) = admin(
        &a,
        "POST",
        "/v1/transit/random",
        Some(json!({"format": "hex", "bytes": 4})),
    )
    .await;
    assert_eq!(v["data"]["random_bytes"].as_str().unwrap().len(), 8);
    for bad in [
        "/v1/transit/random/0",
        "/v1/transit/random/5000",
        "/v1/transit/random/moon/8",
    ] {
        let (s, _) = admin(&a, "POST", bad, None).await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{bad}");
    }
    let (_, v) = admin(
        &a,
        "POST",
        "/v1/transit/hash",
        Some(json!({"input": b64("abc")})),
    )
    .await;
    assert_eq!(
        v["data"]["sum"],
        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    );
    let (_, v) = admin(
        &a,
        "POST",
        "/v1/transit/hash/sha2-512",
        Some(json!({"input": b64("abc"), "format": "base64"})),
    )
    .await;
    assert_eq!(
        B64.decode(v["data"]["sum"].as_str().unwrap())
            .unwrap()
            .len(),
        64
    );
}

#[tokio::test]
async fn mounts_are_configured() {
    let config = fleetkey_server::config::Config {
        transit_mounts: "transit, legacy-transit".into(),
        ..Default::default()
    };
    let a = api_with(config).await;
    let (_, v) = admin(
        &a,
        "POST",
        "/v1/transit/encrypt/k",
        Some(json!({"plaintext": b64("x")})),
    )
    .await;
    let ct = v["data"]["ciphertext"].clone();
    // A second mount maps the same keyrings.
    let (s, v) = admin(
        &a,
        "POST",
        "/v1/legacy-transit/decrypt/k",
        Some(json!({"ciphertext": ct})),
    )
    .await;
    assert_eq!(
        (s, v["data"]["plaintext"].as_str()),
        (StatusCode::OK, Some(b64("x").as_str()))
    );

    let closed = api_with(fleetkey_server::config::Config {
        transit_mounts: String::new(),
        ..Default::default()
    })
    .await;
    let (s, _) = admin(
        &closed,
        "POST",
        "/v1/transit/encrypt/k",
        Some(json!({"plaintext": b64("x")})),
    )
    .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    for bad in ["keyrings", "Transit", "a/b"] {
        let c = fleetkey_server::config::Config {
            transit_mounts: bad.into(),
            ..Default::default()
        };
        assert!(c.validate().is_err(), "{bad}");
    }
}
