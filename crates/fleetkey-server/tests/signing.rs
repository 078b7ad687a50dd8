//! Signing and MAC keyrings over the HTTP API in process: sign and verify across
//! rotation and revocation, MACs, public keys, refusals (wrong key type, wrong
//! scope, tampered, wrong length), and interop with independent implementations
//! in Python (`tests/python/verify_signatures.py`).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use axum::http::StatusCode;
use base64::{Engine as _, engine::general_purpose::STANDARD as B64};
use common::api::{Api, api, code};
use serde_json::{Value, json};

async fn post(a: &Api, path: &str, body: Value) -> (StatusCode, Value) {
    a.admin("POST", path, Some(body)).await
}

fn flip(sig: &str) -> String {
    let mut b = B64.decode(sig).unwrap();
    b[3] ^= 1;
    B64.encode(b)
}

const SIGNING: [(&str, usize); 3] = [
    ("ed25519", 64),
    ("ml-dsa-65", 3309),
    ("ed25519+ml-dsa-65", 3373),
];

#[tokio::test]
async fn signatures_verify_across_rotation_until_revoked() {
    let a = api().await;
    for (alg, len) in SIGNING {
        let name = format!("s-{}", alg.replace('+', "-"));
        a.keyring(&name, alg).await;
        let msg = B64.encode(b"firmware 1.2.3 sha256=...");
        let (s, v1) = post(
            &a,
            &format!("/v1/keyrings/{name}/sign"),
            json!({"message": msg}),
        )
        .await;
        assert_eq!(s, StatusCode::OK, "{alg}: {v1}");
        assert_eq!(
            B64.decode(v1["signature"].as_str().unwrap()).unwrap().len(),
            len
        );
        assert_eq!(v1["key_version"], 1);
        let sig1 = v1["signature"].as_str().unwrap().to_owned();
        let verify = |m: &str, sig: &str, version: Option<u32>| {
            let body = json!({"message": m, "signature": sig, "key_version": version});
            let (a, path) = (&a, format!("/v1/keyrings/{name}/verify"));
            async move { post(a, &path, body).await }
        };
        let (s, v) = verify(&msg, &sig1, None).await;
        assert_eq!(
            (s, &v["valid"], &v["key_version"]),
            (StatusCode::OK, &json!(true), &json!(1)),
            "{alg}"
        );
        // Tampered signature, another message: not valid (200, valid false).
        for (m, sig) in [
            (msg.clone(), flip(&sig1)),
            (B64.encode(b"other"), sig1.clone()),
        ] {
            let (s, v) = verify(&m, &sig, None).await;
            assert_eq!(
                (s, &v["valid"]),
                (StatusCode::OK, &json!(false)),
                "{alg}: {v}"
            );
            assert!(v.get("key_version").is_none());
        }
        // A truncated signature is simply not valid.
        let (_, v) = verify(
            &msg,
            &B64.encode(&B64.decode(&sig1).unwrap()[..len - 1]),
            None,
        )
        .await;
        assert_eq!(v["valid"], false);
        // Rotate: new signatures by version 2; version 1's still verify.
        let (s, _) = post(&a, &format!("/v1/keyrings/{name}/rotate"), json!({})).await;
        assert_eq!(s, StatusCode::OK);
        let (_, v2) = post(
            &a,
            &format!("/v1/keyrings/{name}/sign"),
            json!({"message": msg}),
        )
        .await;
        assert_eq!(v2["key_version"], 2);
        assert_ne!(v2["signature"], v1["signature"]);
        let (_, v) = verify(&msg, &sig1, None).await;
        assert_eq!((&v["valid"], &v["key_version"]), (&json!(true), &json!(1)));
        // The wrong version given explicitly does not verify.
        let (_, v) = verify(&msg, &sig1, Some(2)).await;
        assert_eq!(v["valid"], false);
        // Public keys per version differ; the raw one verifies (Ed25519 here).
        let (s, pk1) = a
            .admin(
                "GET",
                &format!("/v1/keyrings/{name}/public-key?version=1"),
                None,
            )
            .await;
        assert_eq!(s, StatusCode::OK, "{pk1}");
        let (_, pk2) = a
            .admin("GET", &format!("/v1/keyrings/{name}/public-key"), None)
            .await;
        assert_eq!(pk2["key_version"], 2);
        assert_ne!(pk1["public_key"], pk2["public_key"]);
        let raw = B64.decode(pk1["public_key"].as_str().unwrap()).unwrap();
        let sig = B64.decode(&sig1).unwrap();
        let m = B64.decode(&msg).unwrap();
        let ok = match alg {
            "ed25519" => fleetkey_crypto::ed25519::verify(&raw, &m, &sig),
            "ml-dsa-65" => fleetkey_crypto::mldsa::verify(&raw, &m, &sig),
            _ => fleetkey_crypto::composite::verify(&raw, &m, &sig),
        };
        ok.unwrap();
        // Revoke version 1: its signatures no longer verify; asked by version, 422.
        let (s, _) = post(
            &a,
            &format!("/v1/keyrings/{name}/versions/1/revoke"),
            json!({}),
        )
        .await;
        assert_eq!(s, StatusCode::OK);
        let (_, v) = verify(&msg, &sig1, None).await;
        assert_eq!(v["valid"], false, "{alg}: a revoked version verified");
        let (s, v) = verify(&msg, &sig1, Some(1)).await;
        assert_eq!((s, code(&v)), (StatusCode::UNPROCESSABLE_ENTITY, "revoked"));
        let (s, v) = a
            .admin(
                "GET",
                &format!("/v1/keyrings/{name}/public-key?version=1"),
                None,
            )
            .await;
        assert_eq!((s, code(&v)), (StatusCode::UNPROCESSABLE_ENTITY, "revoked"));
    }
}

#[tokio::test]
async fn macs_verify_in_constant_time_and_refuse_other_tags() {
    let a = api().await;
    for (alg, len) in [("hmac-sha256", 32), ("hmac-sha512", 64)] {
        let name = format!("m-{alg}");
        a.keyring(&name, alg).await;
        let msg = B64.encode(b"GET /v1/orders?id=17");
        let (s, v) = post(
            &a,
            &format!("/v1/keyrings/{name}/mac"),
            json!({"message": msg}),
        )
        .await;
        assert_eq!(s, StatusCode::OK, "{v}");
        let tag = v["signature"].as_str().unwrap().to_owned();
        assert_eq!(B64.decode(&tag).unwrap().len(), len);
        let path = format!("/v1/keyrings/{name}/mac/verify");
        let (_, v) = post(&a, &path, json!({"message": msg, "signature": tag})).await;
        assert_eq!((&v["valid"], &v["key_version"]), (&json!(true), &json!(1)));
        for bad in [
            flip(&tag),
            B64.encode(&B64.decode(&tag).unwrap()[..len - 1]),
            "".into(),
        ] {
            let (_, v) = post(&a, &path, json!({"message": msg, "signature": bad})).await;
            assert_eq!(v["valid"], false);
        }
        // Batches.
        let (s, v) = post(
            &a,
            &format!("/v1/keyrings/{name}/mac/batch"),
            json!({"items": [{"message": msg}, {"message": "***"}]}),
        )
        .await;
        assert_eq!(s, StatusCode::OK);
        assert_eq!(v["results"][0]["signature"], tag.as_str());
        assert_eq!(v["results"][1]["error"]["code"], "malformed");
        let (_, v) = post(
            &a,
            &format!("/v1/keyrings/{name}/mac/verify/batch"),
            json!({"items": [{"message": msg, "signature": tag}, {"message": msg, "signature": flip(&tag)}]}),
        )
        .await;
        assert_eq!(
            (&v["results"][0]["valid"], &v["results"][1]["valid"]),
            (&json!(true), &json!(false))
        );
    }
}

fn sha(hash: &str, m: &[u8]) -> String {
    use fleetkey_crypto::prehash::HashAlg;
    B64.encode(HashAlg::parse(hash).unwrap().hash(m).as_bytes())
}

#[tokio::test]
async fn digests_sign_in_the_prehash_mode_and_nowhere_else() {
    use fleetkey_crypto::prehash::{self, Digest, HashAlg};
    let a = api().await;
    let msg = b"a firmware image too large to send";
    for (alg, hash) in [
        ("ed25519", "sha-512"),
        ("ml-dsa-65", "sha-512"),
        ("ml-dsa-65", "sha-256"),
    ] {
        let name = format!("ph-{alg}-{hash}");
        a.keyring(&name, alg).await;
        let d = sha(hash, msg);
        // `hash` defaults to sha-512.
        let body = if hash == "sha-512" {
            json!({"digest": d})
        } else {
            json!({"digest": d, "hash": hash})
        };
        let (s, v) = post(&a, &format!("/v1/keyrings/{name}/sign"), body).await;
        assert_eq!(s, StatusCode::OK, "{alg} {hash}: {v}");
        let sig = v["signature"].as_str().unwrap().to_owned();
        let verify = |body: Value| {
            let (a, path) = (&a, format!("/v1/keyrings/{name}/verify"));
            async move { post(a, &path, body).await.1 }
        };
        let v = verify(json!({"digest": d, "hash": hash, "signature": sig})).await;
        assert_eq!((&v["valid"], &v["key_version"]), (&json!(true), &json!(1)));
        // Not a signature on the message, nor on another digest, nor tampered.
        for body in [
            json!({"message": B64.encode(msg), "signature": sig}),
            json!({"digest": sha(hash, b"other"), "hash": hash, "signature": sig}),
            json!({"digest": d, "hash": hash, "signature": flip(&sig)}),
        ] {
            assert_eq!(verify(body).await["valid"], false, "{alg} {hash}");
        }
        // A pure signature on the message does not verify as a prehash one.
        let (_, pure) = post(
            &a,
            &format!("/v1/keyrings/{name}/sign"),
            json!({"message": B64.encode(msg)}),
        )
        .await;
        let v = verify(json!({"digest": d, "hash": hash, "signature": pure["signature"]})).await;
        assert_eq!(v["valid"], false);
        // Offline, with the published public key and the standard algorithm.
        let (_, pk) = a
            .admin("GET", &format!("/v1/keyrings/{name}/public-key"), None)
            .await;
        let pk = B64.decode(pk["public_key"].as_str().unwrap()).unwrap();
        let digest = Digest::new(HashAlg::parse(hash).unwrap(), &B64.decode(&d).unwrap()).unwrap();
        let raw = B64.decode(&sig).unwrap();
        if alg == "ed25519" {
            prehash::ed25519ph_verify(&pk, &digest, &raw).unwrap();
        } else {
            prehash::hash_mldsa65_verify(&pk, &digest, &raw).unwrap();
        }
        // The batch form takes digests too.
        let (s, v) = post(
            &a,
            &format!("/v1/keyrings/{name}/sign/batch"),
            json!({"items": [{"digest": d, "hash": hash}, {"message": "AA=="}]}),
        )
        .await;
        assert_eq!(s, StatusCode::OK, "{v}");
        assert!(v["results"][0]["signature"].is_string(), "{v}");
        assert!(v["results"][1]["signature"].is_string(), "{v}");
    }
    // Refusals: the schema's (400) and the keyring type's (422).
    a.keyring("ph-composite", "ed25519+ml-dsa-65").await;
    a.keyring("ph-mac", "hmac-sha256").await;
    let d512 = sha("sha-512", msg);
    let d256 = sha("sha-256", msg);
    let cases = [
        // The digest of the wrong length for its hash.
        ("ph-ed25519-sha-512/sign", json!({"digest": d256}), 400),
        (
            "ph-ml-dsa-65-sha-256/sign",
            json!({"digest": d512, "hash": "sha-256"}),
            400,
        ),
        (
            "ph-ed25519-sha-512/verify",
            json!({"digest": d256, "hash": "sha-512", "signature": "AA=="}),
            400,
        ),
        // Both, neither, a hash without a digest, an unknown hash.
        (
            "ph-ed25519-sha-512/sign",
            json!({"digest": d512, "message": "AA=="}),
            400,
        ),
        ("ph-ed25519-sha-512/sign", json!({}), 400),
        (
            "ph-ed25519-sha-512/sign",
            json!({"message": "AA==", "hash": "sha-512"}),
            400,
        ),
        (
            "ph-ed25519-sha-512/sign",
            json!({"digest": d512, "hash": "md5"}),
            400,
        ),
        // No standard prehash mode for the type (or for that hash).
        (
            "ph-ed25519-sha-512/sign",
            json!({"digest": d256, "hash": "sha-256"}),
            422,
        ),
        ("ph-composite/sign", json!({"digest": d512}), 422),
        (
            "ph-composite/verify",
            json!({"digest": d512, "signature": "AA=="}),
            422,
        ),
        ("ph-mac/mac", json!({"digest": d512}), 422),
        (
            "ph-mac/mac/verify",
            json!({"digest": d512, "signature": "AA=="}),
            422,
        ),
    ];
    for (path, body, want) in cases {
        let (s, v) = post(&a, &format!("/v1/keyrings/{path}"), body.clone()).await;
        let expect = if want == 400 {
            (StatusCode::BAD_REQUEST, "malformed")
        } else {
            (StatusCode::UNPROCESSABLE_ENTITY, "wrong_key_type")
        };
        assert_eq!((s, code(&v)), expect, "{path} {body}: {v}");
    }
}

#[tokio::test]
async fn every_operation_refuses_the_wrong_key_type_and_scope() {
    let a = api().await;
    a.keyring("enc", "aes-256-gcm").await;
    a.keyring("sig", "ed25519").await;
    a.keyring("mac", "hmac-sha256").await;
    let m = json!({"message": "AA=="});
    let wrong = [
        ("/v1/keyrings/sig/seal", json!({"plaintext": "AA=="})),
        ("/v1/keyrings/sig/unseal", json!({"ciphertext": "AA=="})),
        ("/v1/keyrings/sig/rewrap", json!({"ciphertext": "AA=="})),
        ("/v1/keyrings/mac/datakey", json!({})),
        ("/v1/keyrings/enc/sign", m.clone()),
        ("/v1/keyrings/mac/sign", m.clone()),
        ("/v1/keyrings/enc/mac", m.clone()),
        ("/v1/keyrings/sig/mac", m.clone()),
        (
            "/v1/keyrings/enc/verify",
            json!({"message": "AA==", "signature": "AA=="}),
        ),
        (
            "/v1/keyrings/sig/mac/verify",
            json!({"message": "AA==", "signature": "AA=="}),
        ),
    ];
    for (path, body) in wrong {
        let (s, v) = post(&a, path, body).await;
        assert_eq!(
            (s, code(&v)),
            (StatusCode::UNPROCESSABLE_ENTITY, "wrong_key_type"),
            "{path}: {v}"
        );
    }
    let (s, v) = a.admin("GET", "/v1/keyrings/mac/public-key", None).await;
    assert_eq!(
        (s, code(&v)),
        (StatusCode::UNPROCESSABLE_ENTITY, "wrong_key_type")
    );
    let (s, v) = a
        .admin("GET", "/v1/keyrings/sig/public-key?format=der", None)
        .await;
    assert_eq!((s, code(&v)), (StatusCode::BAD_REQUEST, "malformed"), "{v}");
    let (s, _) = post(
        &a,
        "/v1/keyrings",
        json!({"name": "x", "algorithm": "rsa-2048"}),
    )
    .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    // Scopes: signing does not verify, verifying does not sign, another keyring's
    // scope covers nothing here.
    let signer = a.token(&["sign:sig"]).await;
    let verifier = a.token(&["verify:sig"]).await;
    let other = a.token(&["sign:enc", "mac:enc"]).await;
    let vbody = json!({"message": "AA==", "signature": "AA=="});
    for (t, path, body, want) in [
        (&signer, "/v1/keyrings/sig/sign", m.clone(), StatusCode::OK),
        (
            &signer,
            "/v1/keyrings/sig/verify",
            vbody.clone(),
            StatusCode::FORBIDDEN,
        ),
        (
            &verifier,
            "/v1/keyrings/sig/verify",
            vbody.clone(),
            StatusCode::OK,
        ),
        (
            &verifier,
            "/v1/keyrings/sig/sign",
            m.clone(),
            StatusCode::FORBIDDEN,
        ),
        (
            &other,
            "/v1/keyrings/sig/sign",
            m.clone(),
            StatusCode::FORBIDDEN,
        ),
        (
            &other,
            "/v1/keyrings/mac/mac",
            m.clone(),
            StatusCode::FORBIDDEN,
        ),
    ] {
        let (s, _, v) = a.call("POST", path, Some(t), Some(body)).await;
        assert_eq!(s, want, "{path}: {v}");
    }
    let (s, _, _) = a
        .call("GET", "/v1/keyrings/sig/public-key", Some(&signer), None)
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN);
}

/// Signatures, public keys (PEM for Ed25519) and MAC tags checked by Python:
/// `cryptography`, `dilithium-py` and `hmac`.
#[tokio::test]
#[ignore = "needs python3 with cryptography and dilithium-py (.ci/run installs them)"]
async fn signatures_and_macs_verify_with_independent_implementations() {
    let a = api().await;
    let mut cases = Vec::new();
    let msg = B64.encode(b"interop message \x00\xff");
    for (alg, _) in SIGNING {
        let name = format!("i-{}", alg.replace('+', "-"));
        a.keyring(&name, alg).await;
        let (_, v) = post(
            &a,
            &format!("/v1/keyrings/{name}/sign"),
            json!({"message": msg}),
        )
        .await;
        let (_, raw) = a
            .admin("GET", &format!("/v1/keyrings/{name}/public-key"), None)
            .await;
        let mut case = json!({"algorithm": alg, "message": msg, "signature": v["signature"],
            "public_key": raw["public_key"], "valid": true});
        if alg == "ed25519" {
            let (_, pem) = a
                .admin(
                    "GET",
                    &format!("/v1/keyrings/{name}/public-key?format=pem"),
                    None,
                )
                .await;
            case["pem"] = pem["public_key"].clone();
        }
        let mut bad = case.clone();
        bad["signature"] = json!(flip(v["signature"].as_str().unwrap()));
        bad["valid"] = json!(false);
        cases.push(case);
        cases.push(bad);
    }
    // HashML-DSA-65: the server signs a digest; Python hashes the message itself.
    for hash in ["sha-256", "sha-512"] {
        let (_, v) = post(
            &a,
            "/v1/keyrings/i-ml-dsa-65/sign",
            json!({"digest": sha(hash, &B64.decode(&msg).unwrap()), "hash": hash}),
        )
        .await;
        let (_, raw) = a
            .admin("GET", "/v1/keyrings/i-ml-dsa-65/public-key", None)
            .await;
        let case = json!({"algorithm": "ml-dsa-65", "hash": hash, "message": msg,
            "signature": v["signature"], "public_key": raw["public_key"], "valid": true});
        let mut bad = case.clone();
        bad["message"] = json!(B64.encode(b"another message"));
        bad["valid"] = json!(false);
        cases.push(case);
        cases.push(bad);
    }
    for alg in ["hmac-sha256", "hmac-sha512"] {
        let name = format!("i-{alg}");
        a.keyring(&name, alg).await;
        let (_, v) = post(
            &a,
            &format!("/v1/keyrings/{name}/mac"),
            json!({"message": msg}),
        )
        .await;
        // The version's key, unwrapped beneath the API (docs/formats.md: the
        // secret is the HMAC key).
        let rec = a.store.versions(&name).await.unwrap().remove(0);
        let key = fleetkey_server::custody::Custody::unwrap(
            &*a.custody,
            &rec.wrapped_key,
            &format!("keyring:{name}/v1"),
        )
        .await
        .unwrap();
        cases.push(
            json!({"algorithm": alg, "message": msg, "signature": v["signature"],
            "key": B64.encode(key.expose_secret()), "valid": true}),
        );
    }
    let file = a.dir.path().join("cases.json");
    std::fs::write(&file, serde_json::to_vec(&cases).unwrap()).unwrap();
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../tests/python/verify_signatures.py"
    );
    let out = std::process::Command::new("python3")
        .arg(script)
        .arg(&file)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("12 cases, 0 mismatches"), "{text}");
}
