//! `fleetkey serve` as a user runs it: zero-config first start (admin token file,
//! KEK outside the data directory), the CLI as a client, graceful SIGTERM, and a
//! restart that reuses everything.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use assert_cmd::Command;
use base64::{Engine as _, engine::general_purpose::STANDARD as B64};
use predicates::prelude::*;
use std::os::unix::fs::PermissionsExt;
use std::process::Stdio;
use std::time::{Duration, Instant};

mod common;
use common::{Server, free_port, get};

#[test]
fn zero_config_first_start_client_mode_and_graceful_restart() {
    let dir = tempfile::TempDir::new().unwrap();
    let server = Server::start(dir.path());
    let token_file = dir.path().join("fleetkey-data/admin.token");
    assert_eq!(
        std::fs::metadata(&token_file).unwrap().permissions().mode() & 0o777,
        0o600
    );
    let token = std::fs::read_to_string(&token_file)
        .unwrap()
        .trim()
        .to_owned();
    assert!(token.starts_with("fkt_"));
    // The KEK lives outside the data directory.
    let kek_dir = dir.path().join("home/.config/fleetkey");
    assert!(std::fs::read_dir(&kek_dir).unwrap().count() == 1);
    assert!(
        get(server.port, "/readyz")
            .unwrap()
            .starts_with("HTTP/1.1 200")
    );
    let client = |args: &[&str]| {
        let mut c = Command::cargo_bin("fleetkey").unwrap();
        c.env("FLEETKEY_ADDR", format!("http://127.0.0.1:{}", server.port))
            .env("FLEETKEY_TOKEN", &token)
            .args(args);
        c
    };
    client(&["keys", "create", "web", "--max-uses", "1000"])
        .assert()
        .success();
    client(&["keys", "list"])
        .assert()
        .success()
        .stdout(predicate::str::contains("web"));
    let sealed = client(&["keys", "seal", "web", "--aad", "a"])
        .write_stdin("over http")
        .assert()
        .success();
    let env = String::from_utf8(sealed.get_output().stdout.clone()).unwrap();
    client(&["keys", "unseal", "web", "--aad", "a"])
        .write_stdin(env.clone())
        .assert()
        .success()
        .stdout("over http");
    // Top-level seal/unseal with --keyring.
    std::fs::write(dir.path().join("in.txt"), "file body").unwrap();
    client(&["seal", "--keyring", "web", "-i"])
        .arg(dir.path().join("in.txt"))
        .arg("-o")
        .arg(dir.path().join("in.fk"))
        .assert()
        .success();
    client(&["unseal", "--keyring", "web", "-i"])
        .arg(dir.path().join("in.fk"))
        .assert()
        .success()
        .stdout("file body");
    // An encryption context, given in any order; and a data key bound to one.
    let sealed = client(&[
        "keys",
        "seal",
        "web",
        "--context",
        "tenant=acme",
        "--context",
        "app=x",
    ])
    .write_stdin("in context")
    .assert()
    .success();
    let ctx_env = String::from_utf8(sealed.get_output().stdout.clone()).unwrap();
    client(&[
        "keys",
        "unseal",
        "web",
        "--context",
        "app=x",
        "--context",
        "tenant=acme",
    ])
    .write_stdin(ctx_env.clone())
    .assert()
    .success()
    .stdout("in context");
    client(&[
        "keys",
        "unseal",
        "web",
        "--context",
        "app=y",
        "--context",
        "tenant=acme",
    ])
    .write_stdin(ctx_env)
    .assert()
    .code(1);
    let dk = client(&["keys", "datakey", "web", "--context", "file=1"])
        .assert()
        .success();
    let dk: serde_json::Value = serde_json::from_slice(&dk.get_output().stdout).unwrap();
    let sealed_key = B64.decode(dk["ciphertext"].as_str().unwrap()).unwrap();
    client(&["keys", "unseal", "web", "--context", "file=1"])
        .write_stdin(sealed_key)
        .assert()
        .success()
        .stdout(predicate::eq(
            B64.decode(dk["plaintext"].as_str().unwrap()).unwrap(),
        ));
    let dk = client(&["keys", "datakey", "web", "--no-plaintext"])
        .assert()
        .success();
    let dk: serde_json::Value = serde_json::from_slice(&dk.get_output().stdout).unwrap();
    assert!(
        dk.get("plaintext").is_none() && dk["ciphertext"].is_string(),
        "{dk}"
    );
    // A signing keyring through the server, verified offline.
    client(&["keys", "create", "rel", "--algorithm", "ed25519"])
        .assert()
        .success();
    let s = client(&["keys", "sign", "rel"])
        .write_stdin("fw")
        .assert()
        .success();
    let s: serde_json::Value = serde_json::from_slice(&s.get_output().stdout).unwrap();
    let sig = s["signature"].as_str().unwrap();
    client(&["keys", "verify", "rel", "--signature", sig])
        .write_stdin("fw")
        .assert()
        .success();
    let pk = client(&["keys", "public-key", "rel", "--key-format", "jwk"])
        .assert()
        .success();
    std::fs::write(dir.path().join("rel.pub"), &pk.get_output().stdout).unwrap();
    Command::cargo_bin("fleetkey")
        .unwrap()
        .args(["verify", "--signature", sig, "--public-key"])
        .arg(dir.path().join("rel.pub"))
        .write_stdin("fw")
        .assert()
        .success();
    // Prehash mode: the client hashes a file and sends only the digest
    // (Ed25519ph); the signature verifies offline as a prehash one only.
    let big = dir.path().join("image.bin");
    std::fs::write(&big, vec![7u8; 20 << 20]).unwrap();
    let s = client(&["keys", "sign", "rel", "--prehash", "-i"])
        .arg(&big)
        .assert()
        .success();
    let s: serde_json::Value = serde_json::from_slice(&s.get_output().stdout).unwrap();
    let ph_sig = s["signature"].as_str().unwrap();
    client(&[
        "keys",
        "verify",
        "rel",
        "--prehash",
        "--signature",
        ph_sig,
        "-i",
    ])
    .arg(&big)
    .assert()
    .success();
    let offline = |prehash: bool| {
        let mut c = Command::cargo_bin("fleetkey").unwrap();
        c.args(["verify", "--signature", ph_sig, "--public-key"])
            .arg(dir.path().join("rel.pub"))
            .arg("-i")
            .arg(&big);
        if prehash {
            c.arg("--prehash");
        }
        c
    };
    offline(true).assert().success().stdout("valid (ed25519)\n");
    offline(false).assert().code(1);
    // Ed25519ph is SHA-512 only: the server says so.
    client(&["keys", "sign", "rel", "--prehash", "--hash", "sha-256"])
        .write_stdin("fw")
        .assert()
        .code(1)
        .stderr(predicate::str::contains(
            "no standard prehash mode for sha-256",
        ));
    client(&["keys", "public-key", "rel", "--key-format", "x509"])
        .assert()
        .code(2);
    client(&["keys", "rotate", "web"]).assert().success();
    // Life cycle and aliases through the server: the alias is percent-encoded
    // into one path segment; a disabled keyring refuses, an enabled one works.
    client(&["keys", "alias", "set", "alias/site", "web"])
        .assert()
        .success()
        .stderr(predicate::str::contains("alias/site -> web"));
    client(&["keys", "alias", "list", "--keyring", "web"])
        .assert()
        .success()
        .stdout(predicate::str::contains("alias/site"));
    client(&[
        "keys",
        "describe",
        "alias/site",
        "--description",
        "web sessions",
        "--tag",
        "team=edge",
    ])
    .assert()
    .success()
    .stdout(predicate::str::contains("team=edge"));
    client(&["keys", "disable", "alias/site"])
        .assert()
        .success();
    client(&["keys", "unseal", "alias/site", "--aad", "a"])
        .write_stdin(env.clone())
        .assert()
        .code(1)
        .stderr(predicate::str::contains("disabled"));
    client(&["keys", "enable", "web"]).assert().success();
    client(&["keys", "unseal", "alias/site", "--aad", "a"])
        .write_stdin(env.clone())
        .assert()
        .success();
    client(&["keys", "delete", "web", "--days", "3"])
        .assert()
        .code(2);
    client(&["keys", "delete", "web", "--days", "7"])
        .assert()
        .success()
        .stderr(predicate::str::contains("cancel-deletion"));
    client(&["keys", "cancel-deletion", "web"])
        .assert()
        .success();
    client(&["keys", "enable", "web"]).assert().success();
    client(&["keys", "alias", "delete", "alias/site"])
        .assert()
        .success();
    let rewrapped = client(&["keys", "rewrap", "web", "--aad", "a"])
        .write_stdin(env)
        .assert()
        .success();
    assert!(String::from_utf8_lossy(&rewrapped.get_output().stdout).starts_with("fk1:"));
    let t = client(&["tokens", "create", "--name", "ci", "--scope", "seal:web"])
        .assert()
        .success();
    let scoped = String::from_utf8(t.get_output().stdout.clone())
        .unwrap()
        .trim()
        .to_owned();
    Command::cargo_bin("fleetkey")
        .unwrap()
        .env("FLEETKEY_ADDR", format!("http://127.0.0.1:{}", server.port))
        .env("FLEETKEY_TOKEN", &scoped)
        .args(["keys", "list"])
        .assert()
        .code(1)
        .stderr(predicate::str::contains("lacks scope"));
    client(&["keys", "show", "nope"]).assert().code(4);
    // The audit log through the server (#26): exported and verified while it runs
    // (a local export would be refused: the data directory is in use).
    let (export, public) = (dir.path().join("audit.jsonl"), dir.path().join("svc.pub"));
    client(&["audit", "export", "-o"])
        .arg(&export)
        .assert()
        .success()
        .stderr(predicate::str::contains("exported"));
    client(&["audit", "public-key", "-o"])
        .arg(&public)
        .assert()
        .success();
    let lines = std::fs::read_to_string(&export).unwrap();
    assert!(lines.lines().count() >= 5, "{lines}");
    assert!(lines.contains("keyring.rotate"), "{lines}");
    Command::cargo_bin("fleetkey")
        .unwrap()
        .args(["audit", "verify", "--export"])
        .arg(&export)
        .arg("--public-key")
        .arg(&public)
        .assert()
        .success()
        .stdout(predicate::str::starts_with("valid: "));
    // A token without audit:read is refused, and no file is left behind.
    Command::cargo_bin("fleetkey")
        .unwrap()
        .env("FLEETKEY_ADDR", format!("http://127.0.0.1:{}", server.port))
        .env("FLEETKEY_TOKEN", &scoped)
        .args(["audit", "export", "-o"])
        .arg(dir.path().join("denied.jsonl"))
        .assert()
        .code(1)
        .stderr(predicate::str::contains("lacks scope"));
    assert!(!dir.path().join("denied.jsonl").exists());
    // While the server runs, local admin commands and a second server are refused.
    Command::cargo_bin("fleetkey")
        .unwrap()
        .current_dir(dir.path())
        .env_remove("FLEETKEY_ADDR")
        .env("FLEETKEY_PASSPHRASE", "x")
        .args(["keys", "list"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("server is running"));
    Command::cargo_bin("fleetkey")
        .unwrap()
        .current_dir(dir.path())
        .env("HOME", dir.path().join("home"))
        .env("FLEETKEY_LISTEN", format!("127.0.0.1:{}", free_port()))
        .env(
            "FLEETKEY_DEVICE_LISTEN",
            format!("127.0.0.1:{}", free_port()),
        )
        .env("FLEETKEY_DEVICE_UDP_LISTEN", "127.0.0.1:0")
        .env("FLEETKEY_GRPC_LISTEN", "off")
        .arg("serve")
        .assert()
        .code(2)
        .stderr(predicate::str::contains("server is running"));
    let status = server.stop();
    assert!(status.success(), "graceful shutdown exits 0: {status:?}");
    // Restart: same token file, the keyring is still there.
    let server = Server::start(dir.path());
    assert_eq!(std::fs::read_to_string(&token_file).unwrap().trim(), token);
    Command::cargo_bin("fleetkey")
        .unwrap()
        .env("FLEETKEY_ADDR", format!("http://127.0.0.1:{}", server.port))
        .env("FLEETKEY_TOKEN", &token)
        .args(["keys", "show", "web", "--json"])
        .assert()
        .success()
        .stdout(predicate::str::contains("\"primary_version\": 2"));
    assert!(server.stop().success());
    // With the server stopped, local admin commands find the key-encryption key
    // the zero-configuration start generated (no FLEETKEY_ROOT_KEY_FILE needed).
    let admin = || {
        let mut c = Command::cargo_bin("fleetkey").unwrap();
        c.current_dir(dir.path())
            .env("HOME", dir.path().join("home"))
            .env_remove("XDG_CONFIG_HOME")
            .env_remove("FLEETKEY_ADDR")
            .env_remove("FLEETKEY_ROOT_KEY_FILE")
            .env_remove("FLEETKEY_PASSPHRASE")
            .env_remove("FLEETKEY_DATA_DIR");
        c
    };
    // (Local admin mode is for the embedded store: with the server on PostgreSQL
    // the directory's own store is empty, but the key must still be found.)
    let embedded = common::store_env(dir.path()).is_empty();
    admin()
        .args(["keys", "list"])
        .assert()
        .success()
        .stdout(predicate::str::contains("web").or(predicate::function(|_: &str| !embedded)));
    // Elsewhere there is no such key: refused, and nothing is created.
    admin()
        .args(["keys", "list", "--data-dir", "elsewhere"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("no key-encryption key"));
    assert!(
        !dir.path().join("elsewhere").exists(),
        "a refused command creates no directory"
    );
    // JSON logs: one object per line, no token secrets.
    for entry in std::fs::read_dir(dir.path()).unwrap() {
        let p = entry.unwrap().path();
        if p.extension().is_some_and(|e| e == "log") {
            let log = std::fs::read_to_string(&p).unwrap();
            assert!(
                !log.contains(&token) && !log.contains(&scoped),
                "token in logs"
            );
            assert!(
                log.lines()
                    .filter(|l| l.starts_with('{'))
                    .all(|l| serde_json::from_str::<serde_json::Value>(l).is_ok())
            );
        }
    }
}

#[test]
fn invalid_configuration_names_the_key() {
    let dir = tempfile::TempDir::new().unwrap();
    std::fs::write(
        dir.path().join("bad.toml"),
        "listen = \"127.0.0.1:1\"\nmax_body_byte = 5\n",
    )
    .unwrap();
    Command::cargo_bin("fleetkey")
        .unwrap()
        .current_dir(dir.path())
        .args(["serve", "--config", "bad.toml"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("max_body_byte"));
    Command::cargo_bin("fleetkey")
        .unwrap()
        .current_dir(dir.path())
        .env("FLEETKEY_LISTEN", "not-an-address")
        .arg("serve")
        .assert()
        .code(2)
        .stderr(predicate::str::contains("listen"));
}

#[test]
fn tls_when_a_certificate_is_configured() {
    let dir = tempfile::TempDir::new().unwrap();
    let ck = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
    std::fs::write(dir.path().join("cert.pem"), ck.cert.pem()).unwrap();
    std::fs::write(dir.path().join("key.pem"), ck.signing_key.serialize_pem()).unwrap();
    let port = free_port();
    let mut child = std::process::Command::new(assert_cmd::cargo::cargo_bin("fleetkey"))
        .arg("serve")
        .current_dir(dir.path())
        .env("HOME", dir.path().join("home"))
        .env_remove("XDG_CONFIG_HOME")
        .env_remove("FLEETKEY_ROOT_KEY_FILE")
        .env_remove("FLEETKEY_PASSPHRASE")
        .env_remove("FLEETKEY_DATA_DIR")
        .env("FLEETKEY_LISTEN", format!("127.0.0.1:{port}"))
        .env(
            "FLEETKEY_DEVICE_LISTEN",
            format!("127.0.0.1:{}", free_port()),
        )
        .env("FLEETKEY_DEVICE_UDP_LISTEN", "127.0.0.1:0")
        .env("FLEETKEY_GRPC_LISTEN", "off")
        .env("FLEETKEY_TLS_CERT", dir.path().join("cert.pem"))
        .env("FLEETKEY_TLS_KEY", dir.path().join("key.pem"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let token_file = dir.path().join("fleetkey-data/admin.token");
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut ok = false;
    while Instant::now() < deadline {
        if token_file.exists() {
            let token = std::fs::read_to_string(&token_file)
                .unwrap()
                .trim()
                .to_owned();
            let r = Command::cargo_bin("fleetkey")
                .unwrap()
                .env("FLEETKEY_ADDR", format!("https://localhost:{port}"))
                .env("FLEETKEY_TOKEN", &token)
                .env("FLEETKEY_CACERT", dir.path().join("cert.pem"))
                .args(["keys", "list"])
                .output()
                .unwrap();
            if r.status.success() {
                ok = true;
                // Plain HTTP on the TLS port is not served.
                assert!(get(port, "/healthz").is_none_or(|r| !r.starts_with("HTTP/1.1 200")));
                break;
            }
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let _ = child.kill();
    let _ = child.wait();
    assert!(ok, "HTTPS request with the CA certificate did not succeed");
}
