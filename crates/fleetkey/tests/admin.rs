//! Local admin mode: `fleetkey keys …` and `fleetkey audit …` on a data directory.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use assert_cmd::Command;
use predicates::prelude::*;

mod common;
use common::admin::Admin;

#[test]
fn local_admin_commands_refuse_a_shared_postgres_store() {
    let a = Admin::new();
    for args in [&["keys", "list"][..], &["tokens", "list"][..]] {
        a.cmd()
            .env(
                "FLEETKEY_STORE_URL",
                "postgres://fk:hunter2@127.0.0.1:1/fleet",
            )
            .args(args)
            .assert()
            .code(2)
            .stderr(predicate::str::contains("shared store"))
            .stderr(predicate::str::contains("FLEETKEY_ADDR"))
            .stderr(predicate::str::contains("hunter2").not());
    }
    // `sqlite://` names the embedded store: allowed.
    a.cmd()
        .env("FLEETKEY_STORE_URL", "sqlite://")
        .args(["keys", "list"])
        .assert()
        .success();
}

#[test]
fn keyring_life_cycle_from_the_command_line() {
    let a = Admin::new();
    a.cmd()
        .args(["keys", "create", "payments", "--max-uses", "2"])
        .assert()
        .success()
        .stdout(predicate::str::contains("payments"));
    a.cmd()
        .args(["keys", "create", "payments"])
        .assert()
        .code(1)
        .stderr(predicate::str::contains("already exists"));
    let seal = |msg: &str| {
        let out = a
            .cmd()
            .args(["keys", "seal", "payments", "--aad", "ctx"])
            .write_stdin(msg.to_owned())
            .assert()
            .success();
        String::from_utf8(out.get_output().stdout.clone()).unwrap()
    };
    let e1 = seal("one");
    let e2 = seal("two");
    let e3 = seal("three"); // third seal: max-uses 2 rotated to version 2
    a.cmd()
        .args(["keys", "unseal", "payments", "--aad", "ctx"])
        .write_stdin(e1.clone())
        .assert()
        .success()
        .stdout("one");
    a.cmd()
        .args(["keys", "unseal", "payments", "--aad", "nope"])
        .write_stdin(e1.clone())
        .assert()
        .code(1);
    // A data key, made and unsealed locally, bound to a context.
    let dk = a
        .cmd()
        .args([
            "keys",
            "datakey",
            "payments",
            "--context",
            "f=1",
            "--context",
            "g=2",
        ])
        .assert()
        .success();
    let dk: serde_json::Value = serde_json::from_slice(&dk.get_output().stdout).unwrap();
    let b64 = |k: &str| {
        use base64::Engine as _;
        base64::engine::general_purpose::STANDARD
            .decode(dk[k].as_str().unwrap())
            .unwrap()
    };
    assert_eq!(b64("plaintext").len(), 32);
    a.cmd()
        .args([
            "keys",
            "unseal",
            "payments",
            "--context",
            "g=2",
            "--context",
            "f=1",
        ])
        .write_stdin(b64("ciphertext"))
        .assert()
        .success()
        .stdout(predicate::eq(b64("plaintext")));
    a.cmd()
        .args([
            "keys",
            "datakey",
            "payments",
            "--aad",
            "x",
            "--context",
            "f=1",
        ])
        .assert()
        .code(2);
    let show = a
        .cmd()
        .args(["keys", "show", "payments", "--json"])
        .assert()
        .success();
    let v: serde_json::Value = serde_json::from_slice(&show.get_output().stdout).unwrap();
    assert_eq!(v["primary_version"], 2);
    assert_eq!(v["versions"][0]["seal_count"], 2);
    // Revoke version 1: its envelopes are refused with a distinct message.
    a.cmd()
        .args(["keys", "revoke", "payments", "1"])
        .assert()
        .success();
    a.cmd()
        .args(["keys", "unseal", "payments", "--aad", "ctx"])
        .write_stdin(e2.clone())
        .assert()
        .code(1)
        .stderr(predicate::str::contains("revoked"));
    // Rewrap: version 2 data moves to the primary after a rotation.
    a.cmd()
        .args(["keys", "rotate", "payments"])
        .assert()
        .success()
        .stderr(predicate::str::contains("version 3"));
    let out = a
        .cmd()
        .args(["keys", "rewrap", "payments", "--aad", "ctx"])
        .write_stdin(e3)
        .assert()
        .success();
    let rewrapped = String::from_utf8(out.get_output().stdout.clone()).unwrap();
    a.cmd()
        .args(["inspect"])
        .write_stdin(rewrapped.clone())
        .assert()
        .success()
        .stdout(predicate::str::contains("\"key_version\": 3"));
    a.cmd()
        .args(["keys", "unseal", "payments", "--aad", "ctx"])
        .write_stdin(rewrapped)
        .assert()
        .success()
        .stdout("three");
    // Policy change and listing.
    a.cmd()
        .args([
            "keys",
            "policy",
            "payments",
            "--rotation-period",
            "7d",
            "--keep-last",
            "2",
        ])
        .assert()
        .success();
    a.cmd()
        .args(["keys", "list"])
        .assert()
        .success()
        .stdout(predicate::str::contains("7d"));
    a.cmd()
        .args(["keys", "tick"])
        .assert()
        .success()
        .stdout(predicate::str::contains(
            "minimum decrypt version raised to 2",
        ));
    a.cmd()
        .args(["keys", "show", "nope"])
        .assert()
        .code(4)
        .stderr(predicate::str::contains("not found"));
}

#[test]
fn audit_export_verifies_and_tampering_is_reported() {
    let a = Admin::new();
    a.cmd().args(["keys", "create", "a"]).assert().success();
    a.cmd().args(["keys", "rotate", "a"]).assert().success();
    a.cmd()
        .args(["audit", "export", "-o", &a.path("audit.jsonl")])
        .assert()
        .success();
    a.cmd()
        .args(["audit", "public-key", "-o", &a.path("svc.pub")])
        .assert()
        .success();
    let verify = |file: &str| {
        let mut c = Command::cargo_bin("fleetkey").unwrap();
        c.args([
            "audit",
            "verify",
            "--export",
            file,
            "--public-key",
            &a.path("svc.pub"),
        ]);
        c
    };
    verify(&a.path("audit.jsonl"))
        .assert()
        .success()
        .stdout(predicate::str::contains("valid: 2 entries"));
    let text = std::fs::read_to_string(a.path("audit.jsonl")).unwrap();
    std::fs::write(a.path("edited.jsonl"), text.replacen("manual", "forged", 1)).unwrap();
    verify(&a.path("edited.jsonl"))
        .assert()
        .code(1)
        .stderr(predicate::str::contains("sequence 2"));
    let lines: Vec<&str> = text.lines().collect();
    std::fs::write(a.path("cut.jsonl"), lines[..2].join("\n")).unwrap();
    verify(&a.path("cut.jsonl"))
        .assert()
        .code(1)
        .stderr(predicate::str::contains("truncated"));
}

#[test]
fn custody_must_be_configured_and_the_passphrase_must_match() {
    let a = Admin::new();
    a.cmd()
        .env_remove("FLEETKEY_ROOT_KEY_FILE")
        .args(["keys", "list"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("FLEETKEY_ROOT_KEY_FILE"));
    let dir = a.path("pp");
    let run = |pw: &str| {
        let mut c = Command::cargo_bin("fleetkey").unwrap();
        c.env("FLEETKEY_PASSPHRASE", pw)
            .env_remove("FLEETKEY_ROOT_KEY_FILE")
            .args(["keys", "list", "--data-dir", &dir]);
        c
    };
    run("first passphrase").assert().success();
    run("wrong passphrase")
        .assert()
        .code(1)
        .stderr(predicate::str::contains("cannot open the root key"));
}

#[test]
fn fleets_factory_simulation_and_devices_from_the_command_line() {
    let a = Admin::new();
    a.cmd()
        .args(["fleets", "create", "acme"])
        .assert()
        .success()
        .stdout(predicate::str::contains("issuer_public_key"));
    a.cmd()
        .args(["fleets", "create", "acme"])
        .assert()
        .code(1)
        .stderr(predicate::str::contains("already exists"));
    a.cmd()
        .args(["factory", "provision", "--fleet", "acme", "--count", "25"])
        .assert()
        .success()
        .stderr(predicate::str::contains("provisioned 25 devices"));
    let out = a
        .cmd()
        .args(["devices", "list", "--fleet", "acme", "--json"])
        .assert()
        .success();
    let v: serde_json::Value = serde_json::from_slice(&out.get_output().stdout).unwrap();
    let devices = v["devices"].as_array().unwrap();
    assert_eq!(devices.len(), 25);
    let id = devices[0]["id"].as_str().unwrap();
    a.cmd()
        .args(["devices", "show", "--fleet", "acme", id])
        .assert()
        .success()
        .stdout(predicate::str::contains("birth_credential"));
    a.cmd()
        .args(["devices", "show", "--fleet", "other", id])
        .assert()
        .code(4);
    a.cmd()
        .args(["factory", "provision", "--fleet", "missing", "--count", "1"])
        .assert()
        .code(4)
        .stderr(predicate::str::contains("not found"));
    // Constrained devices: factory secrets sealed to the factory recipient on the
    // jig; static-key devices only where the fleet allows them.
    a.cmd()
        .args(["factory", "provision", "--fleet", "acme", "--count", "3"])
        .args(["--profile", "constrained"])
        .assert()
        .success()
        .stderr(predicate::str::contains("provisioned 3 devices"));
    a.cmd()
        .args(["factory", "provision", "--fleet", "acme", "--count", "1"])
        .args(["--profile", "constrained-static"])
        .assert()
        .failure()
        .stderr(predicate::str::contains("static"));
    let out = a
        .cmd()
        .args(["devices", "list", "--fleet", "acme", "--json"])
        .assert()
        .success();
    let v: serde_json::Value = serde_json::from_slice(&out.get_output().stdout).unwrap();
    let profiles: Vec<&str> = v["devices"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["profile"].as_str().unwrap())
        .collect();
    assert_eq!(profiles.len(), 28);
    assert_eq!(profiles.iter().filter(|p| **p == "constrained").count(), 3);
}

#[test]
fn signing_and_mac_keyrings_from_the_command_line_and_offline_verification() {
    let a = Admin::new();
    let json = |out: &assert_cmd::assert::Assert| -> serde_json::Value {
        serde_json::from_slice(&out.get_output().stdout).unwrap()
    };
    for alg in ["ed25519", "ml-dsa-65", "ed25519+ml-dsa-65"] {
        let name = format!("rel-{}", alg.replace('+', "-"));
        a.cmd()
            .args(["keys", "create", &name, "--algorithm", alg])
            .assert()
            .success();
        let s = json(
            &a.cmd()
                .args(["keys", "sign", &name])
                .write_stdin("firmware")
                .assert()
                .success(),
        );
        let sig = s["signature"].as_str().unwrap().to_owned();
        a.cmd()
            .args(["keys", "verify", &name, "--signature", &sig])
            .write_stdin("firmware")
            .assert()
            .success()
            .stdout("valid (version 1)\n");
        a.cmd()
            .args(["keys", "verify", &name, "--signature", &sig])
            .write_stdin("firmwarf")
            .assert()
            .code(1)
            .stderr(predicate::str::contains("invalid"));
        // Offline, with the public key file in every format the type has.
        let formats: &[&str] = match alg {
            "ed25519" => &["raw", "pem", "jwk"],
            "ml-dsa-65" => &["raw", "pem"],
            _ => &["raw"],
        };
        for format in formats {
            let out = a
                .cmd()
                .args(["keys", "public-key", &name, "--key-format", format])
                .assert()
                .success();
            let file = a.path(&format!("{name}.{format}.pub"));
            std::fs::write(&file, &out.get_output().stdout).unwrap();
            let verify = |msg: &str| {
                let mut c = Command::cargo_bin("fleetkey").unwrap();
                c.args(["verify", "--public-key", &file, "--signature", &sig])
                    .write_stdin(msg.to_owned());
                c
            };
            verify("firmware")
                .assert()
                .success()
                .stdout(format!("valid ({alg})\n"));
            verify("firmwarf").assert().code(1);
        }
        if alg == "ed25519+ml-dsa-65" {
            a.cmd()
                .args(["keys", "public-key", &name, "--key-format", "pem"])
                .assert()
                .code(2);
            continue;
        }
        // Prehash mode (HashML-DSA-65 with SHA-256 here; Ed25519ph), offline too.
        let hash = if alg == "ed25519" {
            "sha-512"
        } else {
            "sha-256"
        };
        let ph = &["--prehash", "--hash", hash];
        let s = json(
            &a.cmd()
                .args(["keys", "sign", &name])
                .args(ph)
                .write_stdin("firmware")
                .assert()
                .success(),
        );
        let ph_sig = s["signature"].as_str().unwrap();
        a.cmd()
            .args(["keys", "verify", &name, "--signature", ph_sig])
            .args(ph)
            .write_stdin("firmware")
            .assert()
            .success();
        let file = a.path(&format!("{name}.raw.pub"));
        let offline = |msg: &str| {
            let mut c = Command::cargo_bin("fleetkey").unwrap();
            c.args(["verify", "--public-key", &file, "--signature", ph_sig])
                .args(ph)
                .write_stdin(msg.to_owned());
            c
        };
        offline("firmware").assert().success();
        offline("firmwarf").assert().code(1);
    }
    a.cmd()
        .args(["keys", "create", "api-mac", "--algorithm", "hmac-sha256"])
        .assert()
        .success();
    let t = json(
        &a.cmd()
            .args(["keys", "sign", "api-mac", "--mac"])
            .write_stdin("req")
            .assert()
            .success(),
    );
    let tag = t["signature"].as_str().unwrap();
    a.cmd()
        .args(["keys", "verify", "api-mac", "--mac", "--signature", tag])
        .write_stdin("req")
        .assert()
        .success();
    // The wrong operation for the type is refused with what the keyring holds.
    a.cmd()
        .args(["keys", "sign", "api-mac"])
        .write_stdin("req")
        .assert()
        .code(1)
        .stderr(predicate::str::contains("hmac-sha256"));
    a.cmd()
        .args(["keys", "seal", "rel-ed25519"])
        .write_stdin("x")
        .assert()
        .code(1)
        .stderr(predicate::str::contains("not encryption keys"));
}

#[test]
fn keyring_states_details_and_aliases_in_local_mode() {
    let a = Admin::new();
    a.cmd()
        .args([
            "keys",
            "create",
            "pay",
            "--description",
            "card data",
            "--tag",
            "team=payments",
        ])
        .assert()
        .success()
        .stdout(predicate::str::contains("enabled"))
        .stdout(predicate::str::contains("tag:         team=payments"));
    a.cmd()
        .args(["keys", "create", "bad", "--tag", "=x"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("KEY=VALUE"));
    a.cmd()
        .args(["keys", "alias", "set", "alias/cards", "pay"])
        .assert()
        .success();
    a.cmd()
        .args(["keys", "alias", "set", "cards", "pay"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("alias/"));
    let sealed = a
        .cmd()
        .args(["keys", "seal", "alias/cards"])
        .write_stdin("4111")
        .assert()
        .success();
    let env = String::from_utf8(sealed.get_output().stdout.clone()).unwrap();
    a.cmd()
        .args(["keys", "disable", "pay"])
        .assert()
        .success()
        .stdout(predicate::str::contains("disabled"));
    a.cmd()
        .args(["keys", "unseal", "alias/cards"])
        .write_stdin(env.clone())
        .assert()
        .code(1)
        .stderr(predicate::str::contains("is disabled; enable it"));
    a.cmd()
        .args(["keys", "delete", "pay", "--days", "7", "--json"])
        .assert()
        .success()
        .stdout(predicate::str::contains("\"state\": \"pending_deletion\""));
    a.cmd()
        .args(["keys", "enable", "pay"])
        .assert()
        .code(1)
        .stderr(predicate::str::contains("pending deletion"));
    a.cmd()
        .args(["keys", "cancel-deletion", "pay"])
        .assert()
        .success();
    a.cmd().args(["keys", "enable", "pay"]).assert().success();
    a.cmd()
        .args(["keys", "unseal", "pay"])
        .write_stdin(env)
        .assert()
        .success()
        .stdout("4111");
    a.cmd()
        .args(["keys", "describe", "pay", "--clear-tags"])
        .assert()
        .success()
        .stdout(predicate::str::contains("description: card data"))
        .stdout(predicate::str::contains("team=").not());
    a.cmd()
        .args(["keys", "alias", "list", "--json"])
        .assert()
        .success()
        .stdout(predicate::str::contains("\"keyring\": \"pay\""));
    a.cmd()
        .args(["keys", "alias", "delete", "alias/cards"])
        .assert()
        .success();
    a.cmd()
        .args(["keys", "show", "alias/cards"])
        .assert()
        .code(4)
        .stderr(predicate::str::contains("alias \"alias/cards\" not found"));
}

/// BYOK and export with the CLI alone: material sealed with `fleetkey seal
/// --recipient` to the import recipient becomes the primary; an exportable
/// keyring's version comes back out sealed to the operator's identity and opens
/// with `fleetkey unseal --identity`.
#[test]
fn keys_imported_and_exported_through_recipients() {
    let a = Admin::new();
    a.cmd()
        .args(["keys", "create", "byok", "--exportable"])
        .assert()
        .success();
    a.cmd()
        .args(["keys", "create", "locked"])
        .assert()
        .success();
    let r = a
        .cmd()
        .args(["keys", "import-recipient", "byok"])
        .assert()
        .success();
    let r: serde_json::Value = serde_json::from_slice(&r.get_output().stdout).unwrap();
    let recipient = r["recipient"].as_str().unwrap();
    assert!(recipient.starts_with("fk1r:"));
    std::fs::write(a.path("material.bin"), [0x42u8; 32]).unwrap();
    a.cmd()
        .args([
            "seal",
            "--recipient",
            recipient,
            "--aad",
            "fleetkey import v1:byok",
        ])
        .args(["-i", &a.path("material.bin"), "-o", &a.path("material.fk")])
        .assert()
        .success();
    a.cmd()
        .args(["keys", "import", "locked", "-i", &a.path("material.fk")])
        .assert()
        .code(1)
        .stderr(predicate::str::contains("does not open"));
    a.cmd()
        .args(["keys", "import", "byok", "-i", &a.path("material.fk")])
        .assert()
        .success()
        .stderr(predicate::str::contains("version 2 (imported)"));
    a.cmd()
        .args(["keys", "show", "byok", "--json"])
        .assert()
        .success()
        .stdout(predicate::str::contains("\"origin\": \"imported\""))
        .stdout(predicate::str::contains("\"exportable\": true"));
    // Out again, to an identity of the operator's.
    let id = a
        .cmd()
        .args(["keygen", "--recipient", "-o", &a.path("me.id")])
        .assert()
        .success();
    let me = String::from_utf8(id.get_output().stdout.clone()).unwrap();
    let me = me.trim();
    a.cmd()
        .args([
            "keys",
            "export",
            "byok",
            "--recipient",
            me,
            "-o",
            &a.path("out.fk"),
        ])
        .assert()
        .success()
        .stderr(predicate::str::contains("exported byok version 2"));
    let opened = a
        .cmd()
        .args([
            "unseal",
            "--identity",
            &a.path("me.id"),
            "--aad",
            "fleetkey export v1:byok/v2",
        ])
        .args(["-i", &a.path("out.fk")])
        .assert()
        .success();
    assert_eq!(opened.get_output().stdout, vec![0x42u8; 32]);
    a.cmd()
        .args(["keys", "export", "locked", "--recipient", me])
        .assert()
        .code(1)
        .stderr(predicate::str::contains("not exportable"));
}

/// An x-wing keyring: its recipient from `keys public-key --key-format fk1r`, a file
/// sealed offline with `fleetkey seal --recipient`, opened by `keys unseal`.
#[test]
fn x_wing_keyring_opens_what_was_sealed_to_its_recipient() {
    let a = Admin::new();
    a.cmd()
        .args(["keys", "create", "inbox", "--algorithm", "x-wing"])
        .assert()
        .success();
    let pk = a
        .cmd()
        .args(["keys", "public-key", "inbox", "--key-format", "fk1r"])
        .assert()
        .success();
    let pk: serde_json::Value = serde_json::from_slice(&pk.get_output().stdout).unwrap();
    let recipient = pk["public_key"].as_str().unwrap();
    std::fs::write(a.path("report.txt"), "quarterly numbers").unwrap();
    a.cmd()
        .args([
            "seal",
            "--recipient",
            recipient,
            "--context",
            "dept=finance",
        ])
        .args(["-i", &a.path("report.txt"), "-o", &a.path("report.fk")])
        .assert()
        .success();
    a.cmd()
        .args([
            "keys",
            "unseal",
            "inbox",
            "--context",
            "dept=finance",
            "-i",
            &a.path("report.fk"),
        ])
        .assert()
        .success()
        .stdout("quarterly numbers");
    a.cmd()
        .args([
            "keys",
            "unseal",
            "inbox",
            "--context",
            "dept=sales",
            "-i",
            &a.path("report.fk"),
        ])
        .assert()
        .code(1);
    a.cmd()
        .args(["keys", "seal", "inbox"])
        .write_stdin("x")
        .assert()
        .code(1)
        .stderr(predicate::str::contains("x-wing"));
}

/// `fleetkey seal --keyring NAME --datakey`: a file larger than any request is
/// sealed locally under a data key from the keyring (fk1 mode 4, the wrapped key
/// in the header) and opened with `fleetkey unseal --keyring`, streaming.
#[test]
fn large_files_seal_locally_under_a_data_key() {
    let a = Admin::new();
    a.cmd().args(["keys", "create", "files"]).assert().success();
    let big: Vec<u8> = (0..3_000_000u32).map(|i| (i % 251) as u8).collect();
    std::fs::write(a.path("big.bin"), &big).unwrap();
    a.cmd()
        .args([
            "seal",
            "--keyring",
            "files",
            "--datakey",
            "--context",
            "file=big.bin",
        ])
        .args(["--algorithm", "chacha20-poly1305"])
        .args(["-i", &a.path("big.bin"), "-o", &a.path("big.fk")])
        .assert()
        .success();
    let inspect = a
        .cmd()
        .args(["inspect", "-i", &a.path("big.fk")])
        .assert()
        .success();
    let doc: serde_json::Value = serde_json::from_slice(&inspect.get_output().stdout).unwrap();
    assert_eq!(doc["mode"], "wrapped");
    assert_eq!(doc["key_id"], "files");
    assert_eq!(doc["algorithm"], "chacha20-poly1305");
    assert_eq!(doc["plaintext_bytes"], 3_000_000);
    let out = a
        .cmd()
        .args(["unseal", "--keyring", "files", "--context", "file=big.bin"])
        .args(["-i", &a.path("big.fk"), "-o", &a.path("back.bin")])
        .assert()
        .success();
    drop(out);
    assert_eq!(std::fs::read(a.path("back.bin")).unwrap(), big);
    // The context binds both the data key and the data.
    a.cmd()
        .args(["unseal", "--keyring", "files", "--context", "file=other"])
        .args(["-i", &a.path("big.fk")])
        .assert()
        .code(1);
    // A symmetric key file cannot open it; it says what can.
    a.cmd()
        .args(["keygen", "-o", &a.path("k.key")])
        .assert()
        .success();
    a.cmd()
        .args(["unseal", "--key", &a.path("k.key"), "-i", &a.path("big.fk")])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("--keyring"));
    // --datakey needs a keyring.
    a.cmd()
        .args([
            "seal",
            "--key",
            &a.path("k.key"),
            "--datakey",
            "-i",
            &a.path("big.bin"),
        ])
        .assert()
        .code(2);
}
