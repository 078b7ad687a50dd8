//! The keyring life cycle over the HTTP API in process: disable and enable,
//! scheduled deletion and its cancellation, details, aliases in paths
//! (percent-encoded) and in scopes, and the error codes each state answers with.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use axum::http::StatusCode;
use common::api::{Api, api, code};
use serde_json::{Value, json};

async fn post(a: &Api, path: &str, body: Option<Value>) -> (StatusCode, Value) {
    a.admin("POST", path, body).await
}

#[tokio::test]
async fn each_state_answers_with_its_own_code() {
    let a = api().await;
    a.keyring("k", "aes-256-gcm").await;
    let (s, v) = post(
        &a,
        "/v1/keyrings/k/seal",
        Some(json!({"plaintext": "AA=="})),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let env = v["ciphertext"].as_str().unwrap().to_owned();
    let seal = || {
        post(
            &a,
            "/v1/keyrings/k/seal",
            Some(json!({"plaintext": "AA=="})),
        )
    };
    let unseal = || {
        post(
            &a,
            "/v1/keyrings/k/unseal",
            Some(json!({"ciphertext": env})),
        )
    };

    let (s, v) = post(&a, "/v1/keyrings/k/disable", None).await;
    assert_eq!(
        (s, &v["state"]),
        (StatusCode::OK, &json!("disabled")),
        "{v}"
    );
    for (s, v) in [seal().await, unseal().await] {
        assert_eq!(
            (s, code(&v)),
            (StatusCode::CONFLICT, "keyring_disabled"),
            "{v}"
        );
    }
    let (s, v) = post(&a, "/v1/keyrings/k/enable", None).await;
    assert_eq!((s, &v["state"]), (StatusCode::OK, &json!("enabled")), "{v}");
    assert_eq!(unseal().await.0, StatusCode::OK);

    for days in [json!(6), json!(31), json!(-1), json!("7"), json!(null)] {
        let (s, v) = post(
            &a,
            "/v1/keyrings/k/schedule-deletion",
            Some(json!({"days": days})),
        )
        .await;
        assert_eq!(
            (s, code(&v)),
            (StatusCode::BAD_REQUEST, "malformed"),
            "{days}: {v}"
        );
    }
    let (s, v) = post(
        &a,
        "/v1/keyrings/k/schedule-deletion",
        Some(json!({"days": 7})),
    )
    .await;
    assert_eq!(
        (s, &v["state"]),
        (StatusCode::OK, &json!("pending_deletion")),
        "{v}"
    );
    assert!(v["deletion_at"].as_i64().unwrap() > 0);
    for (s, v) in [
        seal().await,
        unseal().await,
        post(&a, "/v1/keyrings/k/rotate", None).await,
        post(&a, "/v1/keyrings/k/enable", None).await,
        a.admin("PATCH", "/v1/keyrings/k", Some(json!({"description": "x"})))
            .await,
    ] {
        assert_eq!(
            (s, code(&v)),
            (StatusCode::CONFLICT, "keyring_pending_deletion"),
            "{v}"
        );
    }
    let (s, v) = post(&a, "/v1/keyrings/k/cancel-deletion", None).await;
    assert_eq!(
        (s, &v["state"], &v["deletion_at"]),
        (StatusCode::OK, &json!("disabled"), &Value::Null)
    );
    let (s, v) = post(&a, "/v1/keyrings/k/cancel-deletion", None).await;
    assert_eq!((s, code(&v)), (StatusCode::CONFLICT, "conflict"), "{v}");
    // Every change is counted by operation and result.
    let (_, _, m) = a.call("GET", "/metrics", None, None).await;
    let m = m.as_str().unwrap();
    for line in [
        r#"fleetkey_keyring_changes_total{operation="disable",result="ok"} 1"#,
        r#"fleetkey_keyring_changes_total{operation="schedule_deletion",result="malformed"} 2"#,
        r#"fleetkey_keyring_changes_total{operation="enable",result="keyring_pending_deletion"} 1"#,
        r#"fleetkey_keyring_changes_total{operation="cancel_deletion",result="conflict"} 1"#,
    ] {
        assert!(m.contains(line), "{line} not in /metrics");
    }
    // Deletion itself comes at the scheduler's tick (tests/keyring_lifecycle.rs
    // drives the clock); here: an unknown keyring is 404 on every new route.
    for path in ["disable", "enable", "schedule-deletion", "cancel-deletion"] {
        let (s, v) = post(
            &a,
            &format!("/v1/keyrings/nope/{path}"),
            Some(json!({"days": 7})),
        )
        .await;
        assert_eq!(
            (s, code(&v)),
            (StatusCode::NOT_FOUND, "not_found"),
            "{path}: {v}"
        );
    }
}

#[tokio::test]
async fn details_at_creation_and_later() {
    let a = api().await;
    let (s, v) = post(
        &a,
        "/v1/keyrings",
        Some(json!({"name": "k", "description": "card data", "tags": {"team": "payments"}})),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    assert_eq!(
        (&v["description"], &v["tags"]),
        (&json!("card data"), &json!({"team": "payments"}))
    );
    let (s, v) = a
        .admin(
            "PATCH",
            "/v1/keyrings/k",
            Some(json!({"tags": {"cost": "42"}})),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(
        (&v["description"], &v["tags"]),
        (&json!("card data"), &json!({"cost": "42"}))
    );
    for bad in [
        json!({"description": "x".repeat(257)}),
        json!({"description": "a\u{7}b"}),
        json!({"tags": {"": "v"}}),
        json!({"tags": {"k": 1}}),
        json!({"colour": "red"}),
    ] {
        let (s, v) = a.admin("PATCH", "/v1/keyrings/k", Some(bad.clone())).await;
        assert_eq!(
            (s, code(&v)),
            (StatusCode::BAD_REQUEST, "malformed"),
            "{bad}: {v}"
        );
    }
    let (s, v) = post(
        &a,
        "/v1/keyrings",
        Some(json!({"name": "j", "description": "\n"})),
    )
    .await;
    assert_eq!((s, code(&v)), (StatusCode::BAD_REQUEST, "malformed"), "{v}");
    let (s, v) = a.admin("GET", "/v1/keyrings/j", None).await;
    assert_eq!(s, StatusCode::NOT_FOUND, "nothing was created: {v}");
}

#[tokio::test]
async fn aliases_work_in_paths_and_scopes_name_the_keyring() {
    let a = api().await;
    a.keyring("pay-2026", "aes-256-gcm").await;
    a.keyring("other", "aes-256-gcm").await;
    let (s, v) = a
        .admin(
            "PUT",
            "/v1/aliases/payments",
            Some(json!({"keyring": "pay-2026"})),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(
        (&v["alias"], &v["keyring"]),
        (&json!("alias/payments"), &json!("pay-2026"))
    );
    for (path, body, want) in [
        (
            "/v1/aliases/a%2Fb",
            json!({"keyring": "other"}),
            StatusCode::BAD_REQUEST,
        ),
        (
            "/v1/aliases/-x",
            json!({"keyring": "other"}),
            StatusCode::BAD_REQUEST,
        ),
        (
            "/v1/aliases/x",
            json!({"keyring": "alias/payments"}),
            StatusCode::BAD_REQUEST,
        ),
        (
            "/v1/aliases/x",
            json!({"keyring": "nope"}),
            StatusCode::NOT_FOUND,
        ),
    ] {
        let (s, v) = a.admin("PUT", path, Some(body)).await;
        assert_eq!(s, want, "{path}: {v}");
    }
    // A token scoped to the keyring uses it through the alias (percent-encoded
    // in the path); a token scoped to another keyring does not.
    let t = a.token(&["seal:pay-2026", "unseal:pay-2026"]).await;
    let (s, _, v) = a
        .call(
            "POST",
            "/v1/keyrings/alias%2Fpayments/seal",
            Some(&t),
            Some(json!({"plaintext": "AA=="})),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let env = v["ciphertext"].as_str().unwrap().to_owned();
    let (s, _, v) = a
        .call(
            "POST",
            "/v1/keyrings/pay-2026/unseal",
            Some(&t),
            Some(json!({"ciphertext": env})),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "the envelope names the keyring: {v}");
    let wrong = a.token(&["seal:other"]).await;
    let (s, _, v) = a
        .call(
            "POST",
            "/v1/keyrings/alias%2Fpayments/seal",
            Some(&wrong),
            Some(json!({"plaintext": "AA=="})),
        )
        .await;
    assert_eq!((s, code(&v)), (StatusCode::FORBIDDEN, "forbidden"), "{v}");
    // Re-pointed: the same path now reaches the other keyring, and the scope follows.
    let (s, _) = a
        .admin(
            "PUT",
            "/v1/aliases/payments",
            Some(json!({"keyring": "other"})),
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    let (s, _, v) = a
        .call(
            "POST",
            "/v1/keyrings/alias%2Fpayments/seal",
            Some(&wrong),
            Some(json!({"plaintext": "AA=="})),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let (s, _, _) = a
        .call(
            "POST",
            "/v1/keyrings/alias%2Fpayments/seal",
            Some(&t),
            Some(json!({"plaintext": "AA=="})),
        )
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    let (s, v) = a.admin("GET", "/v1/aliases?keyring=other", None).await;
    assert_eq!(
        (s, v["aliases"].as_array().unwrap().len()),
        (StatusCode::OK, 1),
        "{v}"
    );
    let (s, v) = a.admin("GET", "/v1/keyrings/alias%2Fpayments", None).await;
    assert_eq!((s, &v["name"]), (StatusCode::OK, &json!("other")), "{v}");
    // Removed: unknown everywhere. A scoped token cannot tell an unknown alias
    // from one it may not use (403 both); admin sees 404.
    let (s, _) = a.admin("DELETE", "/v1/aliases/payments", None).await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    let (s, _, v) = a
        .call(
            "POST",
            "/v1/keyrings/alias%2Fpayments/seal",
            Some(&wrong),
            Some(json!({"plaintext": "AA=="})),
        )
        .await;
    assert_eq!((s, code(&v)), (StatusCode::FORBIDDEN, "forbidden"), "{v}");
    let (s, v) = post(
        &a,
        "/v1/keyrings/alias%2Fpayments/seal",
        Some(json!({"plaintext": "AA=="})),
    )
    .await;
    assert_eq!((s, code(&v)), (StatusCode::NOT_FOUND, "not_found"), "{v}");
    assert!(
        v["error"]["message"].as_str().unwrap().contains("alias"),
        "{v}"
    );
    let (s, _) = a.admin("DELETE", "/v1/aliases/payments", None).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    // Lifecycle writes are audited with the actor.
    let (_, v) = a.admin("GET", "/v1/audit?limit=1000", None).await;
    let actions: Vec<&str> = v["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert!(
        actions.contains(&"alias.put") && actions.contains(&"alias.delete"),
        "{actions:?}"
    );
}
