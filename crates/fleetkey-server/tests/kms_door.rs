//! The AWS KMS door in process, requests signed by aws-sigv4's client side:
//! the protocol's refusals (unsigned, malformed, expired, other service,
//! tampered body, unknown target or operation, bad JSON), AWS's error shapes,
//! any region, metrics and audit. (boto3, the AWS Encryption SDK and the AWS
//! CLI against a real server: crates/fleetkey/tests/kms_clients.rs.)

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use common::api::{Api, api};
use serde_json::{Value, json};
use std::time::{Duration, SystemTime};
use tower::ServiceExt;

struct Key {
    id: String,
    secret: String,
}

async fn access_key(a: &Api) -> Key {
    let (s, v) = a
        .admin("POST", "/v1/tokens/aws-access-keys", Some(json!({})))
        .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    Key {
        id: v["access_key_id"].as_str().unwrap().to_owned(),
        secret: v["secret_access_key"].as_str().unwrap().to_owned(),
    }
}

/// A request signed as an AWS SDK signs it, for `service` in `region` at `time`.
fn signed(
    key: &Key,
    target: &str,
    body: &str,
    time: SystemTime,
    region: &str,
    service: &str,
) -> Request<Body> {
    use aws_sigv4::http_request::{SignableBody, SignableRequest, SigningSettings, sign};
    let identity =
        aws_credential_types::Credentials::new(&key.id, &key.secret, None, None, "test").into();
    let params = aws_sigv4::sign::v4::SigningParams::builder()
        .identity(&identity)
        .region(region)
        .name(service)
        .time(time)
        .settings(SigningSettings::default())
        .build()
        .unwrap()
        .into();
    let headers = [
        ("content-type", "application/x-amz-json-1.1"),
        ("host", "kms.test"),
        ("x-amz-target", target),
    ];
    let signable = SignableRequest::new(
        "POST",
        "/",
        headers.iter().copied(),
        SignableBody::Bytes(body.as_bytes()),
    )
    .unwrap();
    let (instructions, _) = sign(signable, &params).unwrap().into_parts();
    let mut req = Request::builder().method("POST").uri("/");
    for (k, v) in headers {
        req = req.header(k, v);
    }
    for (k, v) in instructions.headers() {
        req = req.header(k, v);
    }
    req.body(Body::from(body.to_owned())).unwrap()
}

async fn send(a: &Api, req: Request<Body>) -> (StatusCode, Value) {
    let resp = a.app.clone().oneshot(req).await.unwrap();
    let status = resp.status();
    if status != StatusCode::OK {
        assert_eq!(
            resp.headers()["content-type"],
            "application/x-amz-json-1.1",
            "errors in AWS's content type"
        );
    }
    let bytes = axum::body::to_bytes(resp.into_body(), usize::MAX)
        .await
        .unwrap();
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

async fn call(a: &Api, key: &Key, op: &str, body: Value) -> (StatusCode, Value) {
    let req = signed(
        key,
        &format!("TrentService.{op}"),
        &body.to_string(),
        SystemTime::now(),
        "us-east-1",
        "kms",
    );
    send(a, req).await
}

fn code(v: &Value) -> &str {
    v["__type"].as_str().unwrap_or("")
}

#[tokio::test]
async fn signed_requests_work_and_every_signature_fault_is_refused_in_aws_shape() {
    let a = api().await;
    let key = access_key(&a).await;
    let (s, v) = call(&a, &key, "CreateKey", json!({})).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let kid = v["KeyMetadata"]["KeyId"].as_str().unwrap().to_owned();
    let (s, v) = call(
        &a,
        &key,
        "Encrypt",
        json!({"KeyId": kid, "Plaintext": "aGk="}),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    // Any region: the ARN answers in the request's.
    let req = signed(
        &key,
        "TrentService.DescribeKey",
        &json!({"KeyId": kid}).to_string(),
        SystemTime::now(),
        "ap-south-2",
        "kms",
    );
    let (s, v) = send(&a, req).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert!(
        v["KeyMetadata"]["Arn"]
            .as_str()
            .unwrap()
            .starts_with("arn:aws:kms:ap-south-2:")
    );

    let body = json!({"KeyId": kid, "Plaintext": "aGk="}).to_string();
    let now = SystemTime::now();
    // Outside the 15-minute window either way.
    for t in [
        now - Duration::from_secs(16 * 60),
        now + Duration::from_secs(16 * 60),
    ] {
        let (s, v) = send(
            &a,
            signed(&key, "TrentService.Encrypt", &body, t, "us-east-1", "kms"),
        )
        .await;
        assert_eq!(
            (s, code(&v)),
            (StatusCode::BAD_REQUEST, "InvalidSignatureException"),
            "{v}"
        );
        assert!(v["message"].as_str().unwrap().contains("expired"), "{v}");
    }
    let (s, v) = send(
        &a,
        signed(&key, "TrentService.Encrypt", &body, now, "us-east-1", "s3"),
    )
    .await;
    assert_eq!(
        (s, code(&v)),
        (StatusCode::BAD_REQUEST, "InvalidSignatureException"),
        "{v}"
    );
    // The body or a signed header changed after signing.
    let mut req = signed(&key, "TrentService.Encrypt", &body, now, "us-east-1", "kms");
    *req.body_mut() = Body::from(body.replace("aGk=", "aGl="));
    let (_, v) = send(&a, req).await;
    assert_eq!(code(&v), "InvalidSignatureException");
    let mut req = signed(&key, "TrentService.Encrypt", &body, now, "us-east-1", "kms");
    req.headers_mut()
        .insert("host", "other.test".parse().unwrap());
    let (_, v) = send(&a, req).await;
    assert_eq!(code(&v), "InvalidSignatureException");
    // Another secret, an unknown key.
    let wrong = Key {
        id: key.id.clone(),
        secret: "x".repeat(43),
    };
    let (_, v) = send(
        &a,
        signed(
            &wrong,
            "TrentService.Encrypt",
            &body,
            now,
            "us-east-1",
            "kms",
        ),
    )
    .await;
    assert_eq!(code(&v), "InvalidSignatureException");
    let unknown = Key {
        id: "FKIA0123456789ABCDEF".into(),
        secret: key.secret.clone(),
    };
    let (_, v) = send(
        &a,
        signed(
            &unknown,
            "TrentService.Encrypt",
            &body,
            now,
            "us-east-1",
            "kms",
        ),
    )
    .await;
    assert_eq!(code(&v), "UnrecognizedClientException");
    let foreign = Key {
        id: "AKIAIOSFODNN7EXAMPLE".into(),
        secret: key.secret.clone(),
    };
    let (_, v) = send(
        &a,
        signed(
            &foreign,
            "TrentService.Encrypt",
            &body,
            now,
            "us-east-1",
            "kms",
        ),
    )
    .await;
    assert_eq!(code(&v), "UnrecognizedClientException");
    // Unsigned and malformed authorization.
    let bare = |auth: Option<&str>| {
        let mut r = Request::builder()
            .method("POST")
            .uri("/")
            .header("x-amz-target", "TrentService.Encrypt")
            .header("content-type", "application/x-amz-json-1.1");
        if let Some(h) = auth {
            r = r.header("authorization", h);
        }
        r.body(Body::from(body.clone())).unwrap()
    };
    let (s, v) = send(&a, bare(None)).await;
    assert_eq!(
        (s, code(&v)),
        (StatusCode::FORBIDDEN, "MissingAuthenticationTokenException")
    );
    for h in [
        "Bearer fkt_x",
        "AWS4-HMAC-SHA256 Credential=x",
        &"A".repeat(5000),
    ] {
        let (_, v) = send(&a, bare(Some(h))).await;
        assert_eq!(code(&v), "IncompleteSignatureException", "{h:.40}");
    }
    let (_, v) = send(
        &a,
        bare(Some(&format!(
            "AWS4-HMAC-SHA256 Credential={}/20260101/us-east-1/kms/aws4_request, SignedHeaders=host;x-amz-date;x-amz-target, Signature={}",
            key.id,
            "0".repeat(64)
        ))),
    )
    .await;
    assert_eq!(
        code(&v),
        "InvalidSignatureException",
        "a signed header is missing: {v}"
    );

    // Bodies are bounded before the signature is checked (64 KiB by default).
    let big = json!({"KeyId": kid, "Plaintext": "A".repeat(70_000)}).to_string();
    let (_, v) = send(
        &a,
        signed(&key, "TrentService.Encrypt", &big, now, "us-east-1", "kms"),
    )
    .await;
    assert_eq!(code(&v), "ValidationException");
    assert!(
        v["message"].as_str().unwrap().contains("larger than"),
        "{v}"
    );

    // Targets, operations and bodies.
    let (_, v) = send(
        &a,
        signed(&key, "Other.Encrypt", &body, now, "us-east-1", "kms"),
    )
    .await;
    assert_eq!(code(&v), "UnknownOperationException");
    let (_, v) = call(&a, &key, "ListGrants", json!({})).await;
    assert_eq!(code(&v), "UnsupportedOperationException");
    assert!(
        v["message"].as_str().unwrap().contains("GenerateDataKey"),
        "{v}"
    );
    let (_, v) = send(
        &a,
        signed(&key, "TrentService.Encrypt", "{", now, "us-east-1", "kms"),
    )
    .await;
    assert_eq!(code(&v), "SerializationException");
    for bad in [
        json!({"KeyId": kid, "Plaintext": "aGk=", "Colour": "blue"}),
        json!({"KeyId": kid, "Plaintext": 5}),
        json!({"Plaintext": "aGk="}),
        json!({"KeyId": kid, "Plaintext": "aGk=", "EncryptionContext": {"a": 1}}),
    ] {
        let (s, v) = call(&a, &key, "Encrypt", bad.clone()).await;
        assert_eq!(
            (s, code(&v)),
            (StatusCode::BAD_REQUEST, "ValidationException"),
            "{bad}: {v}"
        );
    }
    let (_, v) = call(
        &a,
        &key,
        "Encrypt",
        json!({"KeyId": kid, "Plaintext": "***"}),
    )
    .await;
    assert_eq!(code(&v), "SerializationException");
    let (_, v) = call(
        &a,
        &key,
        "Encrypt",
        json!({"KeyId": kid, "Plaintext": "aGk=", "DryRun": true}),
    )
    .await;
    assert_eq!(code(&v), "DryRunOperationException");

    // Metrics and audit.
    let resp = a
        .app
        .clone()
        .oneshot(
            Request::builder()
                .uri("/metrics")
                .body(Body::empty())
                .unwrap(),
        )
        .await
        .unwrap();
    let text = String::from_utf8(
        axum::body::to_bytes(resp.into_body(), usize::MAX)
            .await
            .unwrap()
            .to_vec(),
    )
    .unwrap();
    assert!(
        text.contains("fleetkey_kms_auth_refusals_total{code=\"InvalidSignatureException\"}"),
        "{text}"
    );
    assert!(
        text.contains("fleetkey_kms_operations_total{operation=\"Encrypt\",result=\"ok\"} 1"),
        "{text}"
    );
    let (_, audit) = a.admin("GET", "/v1/audit?limit=100", None).await;
    let entries = audit["entries"].as_array().unwrap();
    assert!(
        entries.iter().any(|e| e["action"] == "keyring.create"
            && e["actor"].as_str().unwrap().ends_with(" via kms CreateKey")),
        "{audit}"
    );
    assert!(
        entries
            .iter()
            .any(|e| e["action"] == "token.aws_access_key")
    );
    // The secret is nowhere in the audit log.
    assert!(!audit.to_string().contains(&key.secret));
}

#[tokio::test]
async fn access_keys_act_as_their_token_and_die_with_it() {
    let a = api().await;
    let (_, v) = a
        .admin("POST", "/v1/keyrings", Some(json!({"name": "orders"})))
        .await;
    assert_eq!(v["name"], "orders");
    let app = a.token(&["seal:orders"]).await;
    let (s, v) = a
        .call(
            "POST",
            "/v1/tokens/aws-access-keys",
            Some(&app),
            Some(json!({})),
        )
        .await
        .clone_pair();
    assert_eq!(s, StatusCode::CREATED, "{v}");
    let key = Key {
        id: v["access_key_id"].as_str().unwrap().to_owned(),
        secret: v["secret_access_key"].as_str().unwrap().to_owned(),
    };
    let tid = v["token_id"].as_str().unwrap().to_owned();
    let (s, _) = call(
        &a,
        &key,
        "Encrypt",
        json!({"KeyId": "orders", "Plaintext": "aGk="}),
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    let (_, v) = call(
        &a,
        &key,
        "GenerateDataKey",
        json!({"KeyId": "orders", "KeySpec": "AES_256"}),
    )
    .await;
    assert_eq!(code(&v), "AccessDeniedException", "{v}");
    // A token without tokens:manage makes pairs only for itself.
    let (s, _) = a
        .call(
            "POST",
            "/v1/tokens/aws-access-keys",
            Some(&app),
            Some(json!({"token": "admin"})),
        )
        .await
        .clone_pair();
    assert_eq!(s, StatusCode::FORBIDDEN);
    a.tokens.revoke("test", &tid).await.unwrap();
    let (_, v) = call(
        &a,
        &key,
        "Encrypt",
        json!({"KeyId": "orders", "Plaintext": "aGk="}),
    )
    .await;
    assert_eq!(code(&v), "UnrecognizedClientException");
    // A revoked token gets no new pair.
    let (s, _) = a
        .admin(
            "POST",
            "/v1/tokens/aws-access-keys",
            Some(json!({"token": tid})),
        )
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
}

trait Pair {
    fn clone_pair(self) -> (StatusCode, Value);
}

impl Pair for (StatusCode, axum::http::HeaderMap, Value) {
    fn clone_pair(self) -> (StatusCode, Value) {
        (self.0, self.2)
    }
}
