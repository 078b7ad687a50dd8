//! X-Wing keyrings over the HTTP API in process: anyone seals to the published
//! recipient (here with the fk1 library, as a third party would, and with
//! `fleetkey seal --recipient` in the CLI tests); only the service opens, with
//! every version that may still be used, and the refusals.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use axum::http::StatusCode;
use base64::{Engine as _, engine::general_purpose::STANDARD as B64};
use common::api::{Api, api, code};
use fleetkey_crypto::envelope::{context, recipient};
use fleetkey_crypto::keyfile::parse_recipient;
use serde_json::{Value, json};

async fn recipient_of(a: &Api, name: &str) -> (fleetkey_crypto::hpke::XWingRecipient, Value) {
    let (s, v) = a
        .admin(
            "GET",
            &format!("/v1/keyrings/{name}/public-key?format=fk1r"),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["algorithm"], "x-wing");
    (
        parse_recipient(v["public_key"].as_str().unwrap()).unwrap(),
        v,
    )
}

async fn unseal(a: &Api, name: &str, env: &[u8], ctx: Value) -> (StatusCode, Value) {
    a.admin(
        "POST",
        &format!("/v1/keyrings/{name}/unseal"),
        Some(json!({"ciphertext": B64.encode(env), "context": ctx})),
    )
    .await
}

#[tokio::test]
async fn anyone_seals_to_the_recipient_and_only_the_service_opens() {
    let a = api().await;
    a.keyring("inbox", "x-wing").await;
    let (r1, v) = recipient_of(&a, "inbox").await;
    assert_eq!(v["key_version"], 1);
    let (s, raw) = a.admin("GET", "/v1/keyrings/inbox/public-key", None).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(
        B64.decode(raw["public_key"].as_str().unwrap()).unwrap(),
        r1.to_bytes()
    );
    let ctx = json!({"tenant": "acme"});
    let aad = context::encode(&[("tenant".to_owned(), "acme".to_owned())].into()).unwrap();
    let env1 = recipient::seal_to_vec(&r1, b"meter 17: 42 kWh", &aad).unwrap();
    let (s, v) = unseal(&a, "inbox", &env1, ctx.clone()).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(
        B64.decode(v["plaintext"].as_str().unwrap()).unwrap(),
        b"meter 17: 42 kWh"
    );

    // Rotated: a new recipient; what was sealed to the old one still opens.
    let (s, _) = a.admin("POST", "/v1/keyrings/inbox/rotate", None).await;
    assert_eq!(s, StatusCode::OK);
    let (r2, v) = recipient_of(&a, "inbox").await;
    assert_eq!(v["key_version"], 2);
    assert_ne!(r1.to_bytes(), r2.to_bytes());
    let env2 = recipient::seal_to_vec(&r2, b"two", &aad).unwrap();
    assert_eq!(
        unseal(&a, "inbox", &env2, ctx.clone()).await.0,
        StatusCode::OK
    );
    assert_eq!(
        unseal(&a, "inbox", &env1, ctx.clone()).await.0,
        StatusCode::OK
    );

    // Refused: wrong context, tampered, another recipient, a revoked version.
    for (env, c) in [
        (env1.clone(), json!({"tenant": "other"})),
        (
            {
                let mut e = env2.clone();
                let n = e.len() - 1;
                e[n] ^= 1;
                e
            },
            ctx.clone(),
        ),
        (
            recipient::seal_to_vec(
                &fleetkey_crypto::hpke::XWingIdentity::generate()
                    .unwrap()
                    .recipient(),
                b"x",
                &aad,
            )
            .unwrap(),
            ctx.clone(),
        ),
    ] {
        let (s, v) = unseal(&a, "inbox", &env, c).await;
        assert_eq!(
            (s, code(&v)),
            (StatusCode::UNPROCESSABLE_ENTITY, "cannot_open"),
            "{v}"
        );
    }
    let (s, _) = a
        .admin("POST", "/v1/keyrings/inbox/versions/1/revoke", None)
        .await;
    assert_eq!(s, StatusCode::OK);
    let (s, v) = unseal(&a, "inbox", &env1, ctx.clone()).await;
    assert_eq!(
        (s, code(&v)),
        (StatusCode::UNPROCESSABLE_ENTITY, "cannot_open"),
        "{v}"
    );

    // What an x-wing keyring does not do.
    let (s, v) = a
        .admin(
            "POST",
            "/v1/keyrings/inbox/seal",
            Some(json!({"plaintext": "AA=="})),
        )
        .await;
    assert_eq!(
        (s, code(&v)),
        (StatusCode::UNPROCESSABLE_ENTITY, "wrong_key_type"),
        "{v}"
    );
    let (s, v) = a
        .admin("POST", "/v1/keyrings/inbox/datakey", Some(json!({})))
        .await;
    assert_eq!(
        (s, code(&v)),
        (StatusCode::UNPROCESSABLE_ENTITY, "wrong_key_type"),
        "{v}"
    );
    let (s, v) = a
        .admin("GET", "/v1/keyrings/inbox/public-key?format=pem", None)
        .await;
    assert_eq!((s, code(&v)), (StatusCode::BAD_REQUEST, "malformed"), "{v}");
    // A keyring's own mode-1 envelope is not for it.
    a.keyring("sym", "aes-256-gcm").await;
    let (_, v) = a
        .admin(
            "POST",
            "/v1/keyrings/sym/seal",
            Some(json!({"plaintext": "AA=="})),
        )
        .await;
    let mode1 = B64.decode(v["ciphertext"].as_str().unwrap()).unwrap();
    let (s, v) = unseal(&a, "inbox", &mode1, Value::Null).await;
    assert_eq!((s, code(&v)), (StatusCode::BAD_REQUEST, "malformed"), "{v}");
    // Signing keyrings have no fk1r form.
    a.keyring("sig", "ed25519").await;
    let (s, _) = a
        .admin("GET", "/v1/keyrings/sig/public-key?format=fk1r", None)
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
}
