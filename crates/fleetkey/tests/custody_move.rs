//! `fleetkey custody rotate` and `fleetkey custody migrate --to BACKEND`: a new
//! local root (the audit chain verified across the handover, an interrupted
//! move finished by running the command again), a store moved out of a
//! zero-configuration data directory into a PKCS#11 token (SoftHSM2), and a
//! shared PostgreSQL store moved under a running server that keeps serving
//! what it holds while a server on the new root serves everything; and a
//! store moved from OpenBao transit to AWS KMS (moto) and back to another
//! transit key.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use assert_cmd::Command;
use predicates::prelude::*;

mod common;
use common::{Server, get};
#[path = "common/backends.rs"]
mod backends;
use backends::{Bao, Moto};

fn need(name: &str) -> String {
    std::env::var(name)
        .ok()
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| panic!("{name} is not set: this test needs it (.ci/run sets it)"))
}

/// The CLI on data directory `data`, with nothing of the caller's custody or
/// store settings.
fn fk(data: &std::path::Path) -> Command {
    let mut c = Command::cargo_bin("fleetkey").unwrap();
    c.env("FLEETKEY_DATA_DIR", data);
    for v in [
        "FLEETKEY_ROOT_KEY_FILE",
        "FLEETKEY_PASSPHRASE",
        "FLEETKEY_CUSTODY",
        "FLEETKEY_STORE_URL",
        "FLEETKEY_ADDR",
        "FLEETKEY_TOKEN",
    ] {
        c.env_remove(v);
    }
    c
}

fn stdout(c: &mut Command) -> String {
    String::from_utf8(c.assert().success().get_output().stdout.clone()).unwrap()
}

#[test]
fn a_local_root_rotates_and_the_audit_chain_verifies_across_it() {
    let dir = tempfile::TempDir::new().unwrap();
    let (data, kek) = (dir.path().join("data"), dir.path().join("kek.fk"));
    fk(&data)
        .args(["keygen", "-o"])
        .arg(&kek)
        .assert()
        .success();
    let cmd = || {
        let mut c = fk(&data);
        c.env("FLEETKEY_ROOT_KEY_FILE", &kek);
        c
    };
    cmd().args(["keys", "create", "web"]).assert().success();
    let sealed = stdout(cmd().args(["keys", "seal", "web"]).write_stdin("kept"));
    let first_key = stdout(cmd().args(["audit", "public-key"]));
    let root = std::fs::read(data.join("root-key.json")).unwrap();

    cmd()
        .args(["custody", "rotate"])
        .assert()
        .success()
        .stderr(predicate::str::contains("wrapped keys rewrapped"));
    // A new root in root-key.json, the old one gone; the envelope opens.
    let rotated = std::fs::read(data.join("root-key.json")).unwrap();
    assert_ne!(rotated, root);
    assert!(!data.join("root-key.next.json").exists());
    let opened = stdout(
        cmd()
            .args(["keys", "unseal", "web"])
            .write_stdin(sealed.clone()),
    );
    assert_eq!(opened, "kept");
    let second_key = stdout(cmd().args(["audit", "public-key"]));
    assert_ne!(second_key, first_key, "the signing key is the new root's");
    cmd().args(["keys", "rotate", "web"]).assert().success();

    // The chain verifies from the first key through the handover; from the
    // new key alone it does not (the old checkpoints are the old key's).
    let export = dir.path().join("audit.jsonl");
    cmd()
        .args(["audit", "export", "-o"])
        .arg(&export)
        .assert()
        .success();
    for (name, key) in [("first.pub", &first_key), ("second.pub", &second_key)] {
        std::fs::write(dir.path().join(name), key).unwrap();
    }
    let verify = |key: &str| {
        let mut c = fk(&data);
        c.args(["audit", "verify", "--export"])
            .arg(&export)
            .arg("--public-key")
            .arg(dir.path().join(key));
        c
    };
    verify("first.pub").assert().success();
    verify("second.pub").assert().failure();

    // A move whose commit landed but whose new root never took root-key.json's
    // place (the process stopped in between): the store is refused with the
    // file left behind, and running the command again finishes the move.
    std::fs::copy(data.join("root-key.json"), dir.path().join("before.json")).unwrap();
    cmd().args(["custody", "rotate"]).assert().success();
    std::fs::rename(data.join("root-key.json"), data.join("root-key.next.json")).unwrap();
    std::fs::copy(dir.path().join("before.json"), data.join("root-key.json")).unwrap();
    cmd()
        .args(["keys", "unseal", "web"])
        .write_stdin(sealed.clone())
        .assert()
        .code(2)
        .stderr(predicate::str::contains(
            "not the one the store was started with",
        ));
    cmd()
        .args(["custody", "rotate"])
        .assert()
        .success()
        .stderr(predicate::str::contains("finished an interrupted move"));
    assert_eq!(
        stdout(cmd().args(["keys", "unseal", "web"]).write_stdin(sealed)),
        "kept"
    );
    // Refusals: no data directory; an unknown backend.
    fk(&dir.path().join("nothing"))
        .env("FLEETKEY_ROOT_KEY_FILE", &kek)
        .args(["custody", "rotate"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("no fleetkey.db"));
    cmd()
        .args(["custody", "migrate", "--to", "azure"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains(
            "use local, pkcs11, vault or aws-kms",
        ));
}

/// Environment variables for a command or a server.
type Env = Vec<(&'static str, String)>;

/// PKCS#11 settings for the target, as `FLEETKEY_TO_*`, under a label of the
/// test's own; and the same as a server's own settings.
fn hsm(dir: &std::path::Path) -> (Env, Env) {
    let pin_file = dir.join("pin");
    std::fs::write(&pin_file, format!("{}\n", need("FLEETKEY_TEST_PKCS11_PIN"))).unwrap();
    let r: [u8; 6] = fleetkey_crypto::rand::array().unwrap();
    let settings = [
        ("PKCS11_MODULE", need("FLEETKEY_TEST_PKCS11_MODULE")),
        ("PKCS11_TOKEN", need("FLEETKEY_TEST_PKCS11_TOKEN")),
        ("PKCS11_PIN_FILE", pin_file.display().to_string()),
        ("PKCS11_LABEL", format!("fk-mv-{}", hex::encode(r))),
    ];
    let leak = |s: String| -> &'static str { Box::leak(s.into_boxed_str()) };
    let to = settings
        .iter()
        .map(|(k, v)| (leak(format!("FLEETKEY_TO_{k}")), v.clone()))
        .collect();
    let mut own: Vec<_> = settings
        .iter()
        .map(|(k, v)| (leak(format!("FLEETKEY_{k}")), v.clone()))
        .collect();
    own.push(("FLEETKEY_CUSTODY", "pkcs11".into()));
    (to, own)
}

fn call(addr: &str, token: &str, args: &[&str], stdin: &str) -> assert_cmd::assert::Assert {
    let mut c = Command::cargo_bin("fleetkey").unwrap();
    c.env("FLEETKEY_ADDR", addr)
        .env("FLEETKEY_TOKEN", token)
        .args(args)
        .write_stdin(stdin.to_owned())
        .assert()
}

fn out(a: assert_cmd::assert::Assert) -> String {
    String::from_utf8(a.success().get_output().stdout.clone()).unwrap()
}

#[test]
#[ignore = "needs SoftHSM2 and FLEETKEY_TEST_PKCS11_* (.ci/run sets them)"]
fn a_zero_configuration_store_moves_into_a_token() {
    let dir = tempfile::TempDir::new().unwrap();
    let data = dir.path().join("fleetkey-data");
    // `fleetkey serve` with no settings: local custody, a generated KEK.
    let server = Server::start(dir.path());
    let token = Server::admin_token(dir.path());
    let addr = server.addr();
    call(&addr, &token, &["keys", "create", "web"], "").success();
    let sealed = out(call(&addr, &token, &["keys", "seal", "web"], "zero"));
    // The embedded store has one writer: the move waits for the server to stop.
    let (to, own) = hsm(dir.path());
    fk(&data)
        .env("HOME", dir.path().join("home"))
        .envs(to.iter().map(|(k, v)| (*k, v.as_str())))
        .args(["custody", "migrate", "--to", "pkcs11"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("stop it first"));
    assert!(server.stop().success());
    fk(&data)
        .env("HOME", dir.path().join("home"))
        .envs(to.iter().map(|(k, v)| (*k, v.as_str())))
        .args(["custody", "migrate", "--to", "pkcs11"])
        .assert()
        .success()
        .stderr(predicate::str::contains("FLEETKEY_CUSTODY=pkcs11"));
    // The server on the token opens what the old root's keys sealed.
    let server = Server::start_with(dir.path(), &own);
    let ready = get(server.port, "/readyz").unwrap();
    assert!(ready.contains(r#""custody":"pkcs11""#), "{ready}");
    let addr = server.addr();
    assert_eq!(
        out(call(&addr, &token, &["keys", "unseal", "web"], &sealed)),
        "zero"
    );
    call(&addr, &token, &["keys", "rotate", "web"], "").success();
    assert!(server.stop().success());
    // The old root is refused from now on.
    fk(&data)
        .env("HOME", dir.path().join("home"))
        .args(["custody", "rotate"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains(
            "not the one the store was started with",
        ));
}

#[test]
#[ignore = "needs PostgreSQL (FLEETKEY_TEST_POSTGRES_URL) and SoftHSM2 (FLEETKEY_TEST_PKCS11_*)"]
fn a_shared_store_moves_under_a_running_server() {
    let dir = tempfile::TempDir::new().unwrap();
    let r: [u8; 6] = fleetkey_crypto::rand::array().unwrap();
    let store = vec![
        ("FLEETKEY_STORE_URL", need("FLEETKEY_TEST_POSTGRES_URL")),
        ("FLEETKEY_STORE_SCHEMA", format!("fkmv_{}", hex::encode(r))),
    ];
    let (a, b) = (dir.path().join("a"), dir.path().join("b"));
    std::fs::create_dir_all(&a).unwrap();
    std::fs::create_dir_all(&b).unwrap();
    let old = Server::start_with(&a, &store);
    let token = Server::admin_token(&a);
    let old_addr = old.addr();
    call(&old_addr, &token, &["keys", "create", "web"], "").success();
    let sealed = out(call(&old_addr, &token, &["keys", "seal", "web"], "shared"));
    // The move, from the old server's host, while it runs.
    let (to, own) = hsm(dir.path());
    fk(&a.join("fleetkey-data"))
        .env("HOME", a.join("home"))
        .envs(store.iter().map(|(k, v)| (*k, v.as_str())))
        .envs(to.iter().map(|(k, v)| (*k, v.as_str())))
        .args(["custody", "migrate", "--to", "pkcs11"])
        .assert()
        .success();
    // The old server keeps serving what it holds...
    assert_eq!(
        out(call(&old_addr, &token, &["keys", "unseal", "web"], &sealed)),
        "shared"
    );
    out(call(&old_addr, &token, &["keys", "seal", "web"], "still"));
    // ...but writes nothing under its old root: 503 custody_unavailable.
    call(&old_addr, &token, &["keys", "create", "other"], "")
        .failure()
        .stderr(predicate::str::contains("custody_unavailable"));
    let log = std::fs::read_to_string(a.join(format!("serve-{}.log", old.port))).unwrap();
    assert!(log.contains("moved to another custody root"), "{log}");
    // A server on the token serves everything, new keys included.
    let mut env = store.clone();
    env.extend(own);
    let new = Server::start_with(&b, &env);
    let new_addr = new.addr();
    assert_eq!(
        out(call(&new_addr, &token, &["keys", "unseal", "web"], &sealed)),
        "shared"
    );
    call(&new_addr, &token, &["keys", "create", "other"], "").success();
    assert!(new.stop().success());
    assert!(old.stop().success());
}

#[test]
#[ignore = "needs FLEETKEY_TEST_BAO and FLEETKEY_TEST_MOTO (.ci/run sets them)"]
fn a_store_moves_from_openbao_to_aws_kms_and_back_to_another_transit_key() {
    let dir = tempfile::TempDir::new().unwrap();
    let data = dir.path().join("data");
    let (bao, moto) = (Bao::start(), Moto::start());
    let token_file = dir.path().join("vault-token");
    std::fs::write(&token_file, format!("{}\n", bao.2)).unwrap();
    let vault: Env = vec![
        ("FLEETKEY_CUSTODY", "vault".into()),
        ("FLEETKEY_VAULT_ADDR", bao.1.clone()),
        (
            "FLEETKEY_VAULT_TOKEN_FILE",
            token_file.display().to_string(),
        ),
    ];
    let with = |env: &Env| {
        let mut c = fk(&data);
        c.envs(env.iter().map(|(k, v)| (*k, v.as_str())));
        c
    };
    with(&vault)
        .args(["keys", "create", "web"])
        .assert()
        .success();
    let sealed = stdout(
        with(&vault)
            .args(["keys", "seal", "web"])
            .write_stdin("moving"),
    );
    // To AWS KMS: the key ids as FLEETKEY_TO_*, the AWS variables shared.
    let mut to_aws = vault.clone();
    for (k, v) in &moto.1 {
        match k.strip_prefix("FLEETKEY_AWS_KMS_") {
            Some("KEY_ID") => to_aws.push(("FLEETKEY_TO_AWS_KMS_KEY_ID", v.clone())),
            Some("MAC_KEY_ID") => to_aws.push(("FLEETKEY_TO_AWS_KMS_MAC_KEY_ID", v.clone())),
            _ if k.starts_with("AWS_") => to_aws.push((k, v.clone())),
            _ => {}
        }
    }
    with(&to_aws)
        .args(["custody", "migrate", "--to", "aws-kms"])
        .assert()
        .success()
        .stderr(predicate::str::contains("to aws-kms:arn:aws:kms:"));
    assert_eq!(
        stdout(
            with(&moto.1)
                .args(["keys", "unseal", "web"])
                .write_stdin(sealed.clone())
        ),
        "moving"
    );
    // The old root is refused; so is a move to the root the store already has.
    with(&vault)
        .args(["keys", "unseal", "web"])
        .write_stdin(sealed.clone())
        .assert()
        .code(2);
    with(&moto.1)
        .args(["custody", "rotate"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("the store's own root"));
    // Back to transit, under another key (made by fleetkey on first use).
    let mut to_vault = moto.1.clone();
    to_vault.extend([
        ("FLEETKEY_TO_VAULT_ADDR", bao.1.clone()),
        (
            "FLEETKEY_TO_VAULT_TOKEN_FILE",
            token_file.display().to_string(),
        ),
        ("FLEETKEY_TO_VAULT_TRANSIT_KEY", "fleetkey-2".into()),
    ]);
    with(&to_vault)
        .args(["custody", "migrate", "--to", "vault"])
        .assert()
        .success()
        .stderr(predicate::str::contains("to vault:transit/fleetkey-2"));
    let mut vault2 = vault.clone();
    vault2.push(("FLEETKEY_VAULT_TRANSIT_KEY", "fleetkey-2".into()));
    assert_eq!(
        stdout(
            with(&vault2)
                .args(["keys", "unseal", "web"])
                .write_stdin(sealed)
        ),
        "moving"
    );
    with(&vault2)
        .args(["keys", "rotate", "web"])
        .assert()
        .success();
}
