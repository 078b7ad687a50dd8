//! The offline CLI: round trips and every refusal a user can hit, with the exit
//! code and the one-line message that names the problem.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use assert_cmd::Command;
use predicates::prelude::*;
use std::path::{Path, PathBuf};
use tempfile::TempDir;

fn fk() -> Command {
    Command::cargo_bin("fleetkey").unwrap()
}

struct Env {
    dir: TempDir,
}

impl Env {
    fn new() -> Self {
        Self {
            dir: TempDir::new().unwrap(),
        }
    }
    fn p(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }
    fn s(&self, name: &str) -> String {
        self.p(name).display().to_string()
    }
    fn keygen(&self, name: &str) {
        fk().args(["keygen", "-o", &self.s(name)])
            .assert()
            .success();
    }
    fn write(&self, name: &str, data: &[u8]) {
        std::fs::write(self.p(name), data).unwrap();
    }
    fn read(&self, name: &str) -> Vec<u8> {
        std::fs::read(self.p(name)).unwrap()
    }
    fn seal(&self, key: &str, input: &str, output: &str, extra: &[&str]) {
        fk().args([
            "seal",
            "--key",
            &self.s(key),
            "-i",
            &self.s(input),
            "-o",
            &self.s(output),
        ])
        .args(extra)
        .assert()
        .success();
    }
}

fn data(n: usize) -> Vec<u8> {
    (0..n)
        .map(|i| u8::try_from(i * 131 % 251).unwrap())
        .collect()
}

fn mode_of(p: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p).unwrap().permissions().mode() & 0o777
}

#[test]
fn keygen_writes_0600_and_refuses_to_overwrite() {
    let e = Env::new();
    e.keygen("k");
    assert_eq!(mode_of(&e.p("k")), 0o600);
    fk().args(["keygen", "-o", &e.s("k")])
        .assert()
        .code(3)
        .stderr(predicate::str::contains("already exists"));
    fk().args(["keygen", "-o", &e.s("k"), "--force"])
        .assert()
        .success();
    fk().args(["keygen", "-o", &e.s("k2"), "--algorithm", "rot13"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("unknown algorithm"));
}

#[test]
fn key_files_readable_by_others_are_refused() {
    let e = Env::new();
    e.keygen("k");
    e.write("in", b"x");
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(e.p("k"), std::fs::Permissions::from_mode(0o640)).unwrap();
    fk().args([
        "seal",
        "--key",
        &e.s("k"),
        "-i",
        &e.s("in"),
        "-o",
        &e.s("out"),
    ])
    .assert()
    .code(3)
    .stderr(
        predicate::str::contains("readable by group or others")
            .and(predicate::str::contains("chmod 600")),
    );
    assert!(!e.p("out").exists());
}

#[test]
fn round_trip_files_of_many_sizes_and_every_algorithm() {
    let e = Env::new();
    for alg in ["aes-256-gcm", "chacha20-poly1305", "aes-256-gcm-siv"] {
        fk().args(["keygen", "-o", &e.s(alg), "--algorithm", alg])
            .assert()
            .success();
        for n in [0usize, 1, 65_535, 65_536, 65_537, 300_000] {
            e.write("in", &data(n));
            e.seal(alg, "in", "sealed", &["--force", "--aad", "ctx"]);
            fk().args([
                "unseal",
                "--key",
                &e.s(alg),
                "--aad",
                "ctx",
                "-i",
                &e.s("sealed"),
                "-o",
                &e.s("back"),
                "--force",
            ])
            .assert()
            .success();
            assert_eq!(e.read("back"), data(n), "{alg} {n}");
            assert_eq!(mode_of(&e.p("back")), 0o600);
        }
    }
}

#[test]
fn stdin_stdout_and_armor() {
    let e = Env::new();
    e.keygen("k");
    let out = fk()
        .args(["seal", "--key", &e.s("k"), "--armor"])
        .write_stdin("hello\n")
        .assert()
        .success();
    let text = String::from_utf8(out.get_output().stdout.clone()).unwrap();
    assert!(text.starts_with("fk1:"));
    fk().args(["unseal", "--key", &e.s("k")])
        .write_stdin(text)
        .assert()
        .success()
        .stdout("hello\n");
}

#[test]
fn recipient_round_trip_and_wrong_identity() {
    let e = Env::new();
    let out = fk()
        .args(["keygen", "--recipient", "-o", &e.s("id")])
        .assert()
        .success();
    let recipient = String::from_utf8(out.get_output().stdout.clone())
        .unwrap()
        .trim()
        .to_owned();
    assert!(recipient.starts_with("fk1r:"));
    assert_eq!(mode_of(&e.p("id")), 0o600);
    fk().args(["keygen", "--recipient", "-o", &e.s("other")])
        .assert()
        .success();
    e.write("in", &data(100_000));
    fk().args([
        "seal",
        "--recipient",
        &recipient,
        "-i",
        &e.s("in"),
        "-o",
        &e.s("sealed"),
    ])
    .assert()
    .success();
    fk().args([
        "unseal",
        "--identity",
        &e.s("id"),
        "-i",
        &e.s("sealed"),
        "-o",
        &e.s("back"),
    ])
    .assert()
    .success();
    assert_eq!(e.read("back"), data(100_000));
    fk().args(["unseal", "--identity", &e.s("other"), "-i", &e.s("sealed")])
        .assert()
        .code(1)
        .stderr(predicate::str::contains("wrong identity"));
    // The identity file also works as a recipient source.
    fk().args([
        "seal",
        "--recipient",
        &e.s("id"),
        "-i",
        &e.s("in"),
        "-o",
        &e.s("sealed2"),
    ])
    .assert()
    .success();
    fk().args(["unseal", "--key", &e.s("id"), "-i", &e.s("sealed2")])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("identity file"));
}

#[test]
fn refusals_name_the_problem_and_leave_no_plaintext() {
    let e = Env::new();
    e.keygen("k");
    e.keygen("other");
    e.write("in", &data(200_000));
    e.seal("k", "in", "sealed", &["--aad", "right"]);
    let sealed = e.read("sealed");
    let unseal = |input: &str, key: &str, aad: &str| {
        let mut c = fk();
        c.args([
            "unseal",
            "--key",
            &e.s(key),
            "--aad",
            aad,
            "-i",
            &e.s(input),
            "-o",
            &e.s("plain"),
        ]);
        c
    };
    // Wrong key.
    unseal("sealed", "other", "right")
        .assert()
        .code(1)
        .stderr(predicate::str::contains("wrong key"));
    // Wrong AAD.
    unseal("sealed", "k", "wrong")
        .assert()
        .code(1)
        .stderr(predicate::str::contains("--aad or --context differs"));
    // Tampered body (last segment, so earlier segments would verify first).
    let mut t = sealed.clone();
    let n = t.len();
    t[n - 20] ^= 1;
    e.write("tampered", &t);
    unseal("tampered", "k", "right")
        .assert()
        .code(1)
        .stderr(predicate::str::contains("tampered"));
    // Truncated at a segment boundary.
    let header = sealed.len() - 200_000 - 4 * 16;
    e.write("truncated", &sealed[..header + 2 * (65_536 + 16)]);
    unseal("truncated", "k", "right")
        .assert()
        .code(1)
        .stderr(predicate::str::contains("truncated"));
    // Appended.
    let mut app = sealed.clone();
    app.extend_from_slice(&sealed[sealed.len() - 100..]);
    e.write("appended", &app);
    unseal("appended", "k", "right").assert().code(1);
    // Unknown format version.
    let mut v = sealed.clone();
    v[4] = 9;
    e.write("version", &v);
    unseal("version", "k", "right")
        .assert()
        .code(1)
        .stderr(predicate::str::contains("format version 9"));
    // Not an envelope.
    e.write("junk", b"this is not an envelope at all");
    unseal("junk", "k", "right")
        .assert()
        .code(1)
        .stderr(predicate::str::contains("not a fleetkey envelope"));
    // Truncated header.
    e.write("short", &sealed[..10]);
    unseal("short", "k", "right")
        .assert()
        .code(1)
        .stderr(predicate::str::contains("truncated"));
    // None of these left plaintext or temporary files behind.
    assert!(!e.p("plain").exists());
    let leftovers: Vec<_> = std::fs::read_dir(e.dir.path())
        .unwrap()
        .filter_map(|d| d.ok())
        .filter(|d| d.file_name().to_string_lossy().contains(".partial"))
        .collect();
    assert!(leftovers.is_empty());
}

#[test]
fn conflicting_or_missing_flags_are_refused_before_work() {
    let e = Env::new();
    e.keygen("k");
    fk().args(["seal", "--key", &e.s("k"), "--recipient", "fk1r:AAAA"])
        .assert()
        .code(2);
    fk().args(["seal"]).assert().code(2);
    fk().args(["unseal", "--key", &e.s("k"), "--identity", &e.s("k")])
        .assert()
        .code(2);
    fk().args(["seal", "--recipient", "fk1r:notbase64!"])
        .assert()
        .code(2);
    fk().args(["seal", "--key", &e.s("missing")])
        .assert()
        .code(3);
}

#[test]
fn inspect_prints_the_header_without_a_key() {
    let e = Env::new();
    fk().args([
        "keygen",
        "-o",
        &e.s("k"),
        "--key-id",
        "backups",
        "--algorithm",
        "chacha20-poly1305",
    ])
    .assert()
    .success();
    e.write("in", &data(70_000));
    e.seal("k", "in", "sealed", &[]);
    let out = fk()
        .args(["inspect", "-i", &e.s("sealed")])
        .assert()
        .success();
    let v: serde_json::Value = serde_json::from_slice(&out.get_output().stdout).unwrap();
    assert_eq!(v["format"], "fk1");
    assert_eq!(v["mode"], "stream");
    assert_eq!(v["algorithm"], "chacha20-poly1305");
    assert_eq!(v["key_id"], "backups");
    assert_eq!(v["key_version"], 1);
    assert_eq!(v["segments"], 2);
    assert_eq!(v["plaintext_bytes"], 70_000);
    fk().args(["inspect"]).write_stdin("nope").assert().code(1);
}

#[test]
fn secrets_never_reach_output() {
    let e = Env::new();
    let out = fk().args(["keygen", "-o", &e.s("k")]).assert().success();
    let key: serde_json::Value = serde_json::from_slice(&e.read("k")).unwrap();
    let secret = key["key"].as_str().unwrap().to_owned();
    let all = [
        out.get_output().stdout.clone(),
        out.get_output().stderr.clone(),
    ]
    .concat();
    assert!(!String::from_utf8_lossy(&all).contains(&secret));
    e.write("junk", b"fken\x01\x02\x01\x05abcde");
    let out = fk()
        .args(["unseal", "--key", &e.s("k"), "-i", &e.s("junk")])
        .assert()
        .failure();
    assert!(!String::from_utf8_lossy(&out.get_output().stderr).contains(&secret));
}

#[test]
fn help_teaches() {
    fk().arg("--help")
        .assert()
        .success()
        .stdout(predicate::str::contains("Exit codes"));
    for sub in ["keygen", "seal", "unseal", "inspect"] {
        fk().args([sub, "--help"])
            .assert()
            .success()
            .stdout(predicate::str::contains("Example"));
    }
}

/// Regression: `fleetkey … | head` panicked with exit 101 once the reader went
/// away. A closed pipe ends the program quietly, with exit 0 (as ripgrep does).
#[test]
fn a_closed_pipe_exits_quietly() {
    let e = Env::new();
    e.keygen("k");
    e.write("in", b"hello");
    e.seal("k", "in", "in.fk", &[]);
    let bin = assert_cmd::cargo::cargo_bin("fleetkey");
    let runs: [&[&str]; 2] = [
        &["inspect", "-i", &e.s("in.fk")],
        &["unseal", "--key", &e.s("k"), "-i", &e.s("in.fk")],
    ];
    for args in runs {
        let mut child = std::process::Command::new(&bin)
            .args(args)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        // No reader is left: every write to standard output fails with EPIPE.
        drop(child.stdout.take());
        let out = child.wait_with_output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(0), "{args:?}: {stderr}");
        assert!(stderr.is_empty(), "{args:?}: {stderr}");
    }
}

/// Regression (#26): `fleetkey audit export` on a data directory that does not
/// exist created an empty store and exported nothing. A read never creates a
/// store: a clear error naming the path, and nothing left behind.
#[test]
fn audit_commands_never_create_a_store() {
    let e = Env::new();
    let missing = e.p("no-such-dir");
    for args in [
        vec!["audit", "export", "-o", &e.s("out.jsonl")],
        vec!["audit", "public-key", "-o", &e.s("svc.pub")],
    ] {
        fk().args(&args)
            .env("FLEETKEY_DATA_DIR", &missing)
            .env("FLEETKEY_PASSPHRASE", "pw")
            .env_remove("FLEETKEY_ADDR")
            .assert()
            .failure()
            .stderr(predicate::str::contains("no-such-dir"));
        assert!(!missing.exists(), "{args:?} created {}", missing.display());
        assert!(!e.p("out.jsonl").exists());
    }
}
