//! Backups and root escrow against a real `fleetkey serve` (docs/operations.md,
//! "Backups"): scheduled backups and their metrics, an online `fleetkey backup
//! create` while the server writes, `verify`, a restore into a new directory that
//! a new server opens every envelope from; every refusal (an identity it is not
//! sealed to, a tampered file, a non-empty target, an existing output). Root
//! escrow: the key-encryption key file split 3-of-5, any 3 recover it, 2 do not.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use assert_cmd::Command;
use common::{Server, admin::Admin};
use serde_json::{Value, json};
use std::path::Path;
use std::time::{Duration, Instant};

fn fk() -> Command {
    let mut c = Command::cargo_bin("fleetkey").unwrap();
    c.env_remove("FLEETKEY_ADDR")
        .env_remove("FLEETKEY_TOKEN")
        .env_remove("FLEETKEY_PASSPHRASE");
    c
}

/// A new X-Wing identity at `dir/name.id` with its recipient at `dir/name.pub`.
fn identity(dir: &Path, name: &str) {
    fk().args(["keygen", "--recipient", "-o"])
        .arg(dir.join(format!("{name}.id")))
        .arg("--recipient-out")
        .arg(dir.join(format!("{name}.pub")))
        .assert()
        .success();
}

async fn call(server: &Server, token: &str, method: &str, path: &str, body: Value) -> Value {
    let c = reqwest::Client::new();
    let url = format!("{}{path}", server.addr());
    let req = match method {
        "GET" => c.get(url),
        _ => c.post(url).json(&body),
    };
    let r = req.bearer_auth(token).send().await.unwrap();
    assert!(r.status().is_success(), "{path}: {}", r.status());
    r.json().await.unwrap()
}

fn metric(text: &str, name: &str) -> Option<f64> {
    text.lines()
        .find(|l| l.starts_with(name) && !l.starts_with('#'))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

fn stderr_of(c: &mut Command) -> String {
    let out = c.assert().failure();
    String::from_utf8(out.get_output().stderr.clone()).unwrap()
}

#[tokio::test]
async fn an_online_backup_restores_into_a_new_directory_and_every_envelope_opens() {
    let root = tempfile::TempDir::new().unwrap();
    let (one, two) = (root.path().join("one"), root.path().join("two"));
    std::fs::create_dir_all(&one).unwrap();
    std::fs::create_dir_all(&two).unwrap();
    let kek = root.path().join("kek.fk");
    fk().args(["keygen", "-o"]).arg(&kek).assert().success();
    for who in ["a", "b", "c"] {
        identity(root.path(), who);
    }
    let backups = root.path().join("backups");
    let kek_env = ("FLEETKEY_ROOT_KEY_FILE", kek.display().to_string());
    let server = Server::start_with(
        &one,
        &[
            kek_env.clone(),
            ("FLEETKEY_BACKUP_DIR", backups.display().to_string()),
            (
                "FLEETKEY_BACKUP_RECIPIENTS",
                root.path().join("a.pub").display().to_string(),
            ),
            ("FLEETKEY_BACKUP_INTERVAL_SECS", "60".into()),
        ],
    );
    let token = Server::admin_token(&one);
    // The schedule takes one at start.
    let deadline = Instant::now() + Duration::from_secs(20);
    let scheduled = loop {
        let found: Vec<_> = std::fs::read_dir(&backups)
            .map(|d| d.filter_map(|e| e.ok()).map(|e| e.path()).collect())
            .unwrap_or_default();
        if let Some(f) = found
            .iter()
            .find(|p| p.extension().is_some_and(|e| e == "fkbackup"))
        {
            break f.clone();
        }
        assert!(
            Instant::now() < deadline,
            "no scheduled backup in {backups:?}"
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    let metrics = common::get(server.port, "/metrics").unwrap();
    assert!(metric(&metrics, "fleetkey_backup_last_success_timestamp_seconds").unwrap() > 0.0);
    assert!(metric(&metrics, "fleetkey_backup_age_seconds").unwrap() < 60.0);
    assert_eq!(
        metric(&metrics, "fleetkey_backups_total{result=\"ok\"}"),
        Some(1.0),
        "{metrics}"
    );
    // The scheduled backup opens with its recipient.
    fk().args(["backup", "verify"])
        .arg(&scheduled)
        .arg("--identity")
        .arg(root.path().join("a.id"))
        .assert()
        .success()
        .stdout(predicates::str::contains("valid: taken"));

    // Data, then a backup taken online (the server keeps running), to a and b.
    call(
        &server,
        &token,
        "POST",
        "/v1/keyrings",
        json!({"name": "kept"}),
    )
    .await;
    let sealed = call(
        &server,
        &token,
        "POST",
        "/v1/keyrings/kept/seal",
        json!({"plaintext": "a2VwdCBzYWZl"}),
    )
    .await;
    let file = root.path().join("online.fkbackup");
    fk().args(["backup", "create", "--recipient"])
        .arg(root.path().join("a.pub"))
        .arg("--recipient")
        .arg(
            std::fs::read_to_string(root.path().join("b.pub"))
                .unwrap()
                .trim(),
        )
        .arg("-o")
        .arg(&file)
        .arg("--data-dir")
        .arg(one.join("fleetkey-data"))
        .env("FLEETKEY_ROOT_KEY_FILE", &kek)
        .assert()
        .success()
        .stdout(predicates::str::contains("sealed to 2 recipients"));
    fk().args(["backup", "verify"])
        .arg(&file)
        .arg("--identity")
        .arg(root.path().join("b.id"))
        .assert()
        .success()
        .stdout(predicates::str::contains(
            "audit entries chain from the first",
        ));

    // Refusals.
    let e = stderr_of(
        fk().args(["backup", "verify"])
            .arg(&file)
            .arg("--identity")
            .arg(root.path().join("c.id")),
    );
    assert!(e.contains("not sealed to this identity"), "{e}");
    let mut bytes = std::fs::read(&file).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x40;
    let tampered = root.path().join("tampered.fkbackup");
    std::fs::write(&tampered, &bytes).unwrap();
    let e = stderr_of(
        fk().args(["backup", "verify"])
            .arg(&tampered)
            .arg("--identity")
            .arg(root.path().join("a.id")),
    );
    assert!(e.contains("damaged or was tampered"), "{e}");
    let e = stderr_of(
        fk().args(["backup", "restore"])
            .arg(&file)
            .arg("--identity")
            .arg(root.path().join("a.id"))
            .arg("--data-dir")
            .arg(one.join("fleetkey-data")),
    );
    assert!(e.contains("not empty"), "{e}");
    let e = stderr_of(
        fk().args(["backup", "create", "--recipient"])
            .arg(root.path().join("a.pub"))
            .arg("-o")
            .arg(&file)
            .arg("--data-dir")
            .arg(one.join("fleetkey-data")),
    );
    assert!(e.contains("never overwrites"), "{e}");

    // The host is lost: restore into a new directory, start there, open.
    assert!(server.stop().success());
    fk().args(["backup", "restore"])
        .arg(&file)
        .arg("--identity")
        .arg(root.path().join("a.id"))
        .arg("--data-dir")
        .arg(two.join("fleetkey-data"))
        .assert()
        .success()
        .stdout(predicates::str::contains("restored into"));
    let restored = Server::start_with(&two, &[kek_env]);
    let opened = call(
        &restored,
        &token,
        "POST",
        "/v1/keyrings/kept/unseal",
        json!({"ciphertext": sealed["ciphertext"]}),
    )
    .await;
    assert_eq!(opened["plaintext"], "a2VwdCBzYWZl");
    let audit = call(&restored, &token, "GET", "/v1/audit/verify", Value::Null).await;
    assert_eq!(audit["verdict"], "valid", "{audit}");
    assert!(restored.stop().success());
}

#[test]
fn the_root_key_file_splits_into_shares_and_any_threshold_recovers_it() {
    let a = Admin::new();
    let out = a.path("shares");
    a.cmd()
        .args([
            "custody",
            "split",
            "--shares",
            "5",
            "--threshold",
            "3",
            "--out-dir",
            &out,
        ])
        .assert()
        .success()
        .stdout(predicates::str::contains("any 3 of which recover it"));
    let mut shares: Vec<String> = std::fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().path().display().to_string())
        .collect();
    shares.sort();
    assert_eq!(shares.len(), 5);
    let original = std::fs::read(a.path("kek.fk")).unwrap();
    for (n, pick) in [[0, 1, 2], [1, 3, 4], [0, 2, 4]].iter().enumerate() {
        let target = a.path(&format!("recovered-{n}.fk"));
        let mut c = a.cmd();
        c.args(["custody", "recover", "-o", &target]);
        for i in pick {
            c.args(["--share", &shares[*i]]);
        }
        c.assert().success();
        assert_eq!(std::fs::read(&target).unwrap(), original, "{pick:?}");
    }
    // Two are not enough; a damaged share is named; the output is never overwritten.
    let e = stderr_of(a.cmd().args([
        "custody",
        "recover",
        "-o",
        &a.path("two.fk"),
        "--share",
        &shares[0],
        "--share",
        &shares[3],
    ]));
    assert!(e.contains("needs 3 of 5"), "{e}");
    assert!(!Path::new(&a.path("two.fk")).exists());
    let text = std::fs::read_to_string(&shares[1]).unwrap();
    let damaged = a.path("damaged.txt");
    std::fs::write(&damaged, text.replacen("-of-5 2 ", "-of-5 3 ", 1)).unwrap();
    {
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::set_permissions(&damaged, std::fs::Permissions::from_mode(0o600)).unwrap();
    }
    let e = stderr_of(a.cmd().args([
        "custody",
        "recover",
        "-o",
        &a.path("d.fk"),
        "--share",
        &shares[0],
        "--share",
        &damaged,
        "--share",
        &shares[4],
    ]));
    assert!(e.contains("check digits"), "{e}");
    let e = stderr_of(a.cmd().args([
        "custody",
        "recover",
        "-o",
        &a.path("kek.fk"),
        "--share",
        &shares[0],
        "--share",
        &shares[1],
        "--share",
        &shares[2],
    ]));
    assert!(e.contains("exists") || e.contains("refus"), "{e}");
}
