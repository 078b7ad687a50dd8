//! The AWS KMS door with AWS's own clients, unmodified, against a `fleetkey
//! serve`: boto3 runs every supported operation and its refusals, an Ed25519
//! signature is checked by `cryptography` against GetPublicKey's DER key, the
//! AWS Encryption SDK encrypts and a fresh process decrypts, and the AWS CLI
//! encrypts, decrypts and makes a data key (tests/python/kms_clients.py).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
use common::Server;
#[path = "common/backends.rs"]
mod backends;

#[test]
#[ignore = "needs Python's boto3, aws-encryption-sdk, awscli and cryptography (.ci/run installs them)"]
fn boto3_the_encryption_sdk_and_the_aws_cli_work_against_fleetkey() {
    let dir = tempfile::TempDir::new().unwrap();
    let server = Server::start(dir.path());
    let token = Server::admin_token(dir.path());
    common::python("kms_clients.py", &[&server.addr(), &token]);
    // The secrets never reached the server's log.
    let log = server_logs(dir.path());
    assert!(!log.contains(&token), "the admin token is in the log");
    assert!(!log.contains("secret_access_key"), "{log}");
    server.stop();
}

#[test]
#[ignore = "needs FLEETKEY_TEST_MOTO and Python's boto3 (.ci/run installs both)"]
fn ciphertexts_of_a_kms_server_move_to_fleetkey_with_the_migration_script() {
    let moto = backends::Moto::start();
    let env = |k: &str| moto.1.iter().find(|(n, _)| *n == k).unwrap().1.clone();
    let dir = tempfile::TempDir::new().unwrap();
    let server = Server::start(dir.path());
    let token = Server::admin_token(dir.path());
    common::python(
        "kms_clients.py",
        &[
            "migrate",
            &server.addr(),
            &token,
            &env("AWS_ENDPOINT_URL_KMS"),
            &env("FLEETKEY_AWS_KMS_KEY_ID"),
        ],
    );
    server.stop();
}

/// Every log a `fleetkey serve` wrote in `dir`.
fn server_logs(dir: &std::path::Path) -> String {
    std::fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().starts_with("serve-"))
        .map(|e| std::fs::read_to_string(e.path()).unwrap())
        .collect()
}

fn fleetkey(dir: &std::path::Path, addr: &str, token: &str) -> assert_cmd::Command {
    let mut c = assert_cmd::Command::cargo_bin("fleetkey").unwrap();
    c.current_dir(dir)
        .env("HOME", dir.join("home"))
        .env("FLEETKEY_ADDR", addr)
        .env("FLEETKEY_TOKEN", token);
    c
}

#[test]
fn aws_credentials_are_printed_for_eval_once_and_only_through_the_server() {
    let dir = tempfile::TempDir::new().unwrap();
    let server = Server::start(dir.path());
    let admin = Server::admin_token(dir.path());
    let out = fleetkey(dir.path(), &server.addr(), &admin)
        .args(["tokens", "aws-credentials"])
        .assert()
        .success();
    let stdout = String::from_utf8(out.get_output().stdout.clone()).unwrap();
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 4, "{stdout}");
    assert!(lines[0].starts_with("AWS_ACCESS_KEY_ID=FKIA"), "{stdout}");
    assert_eq!(lines[0].len(), "AWS_ACCESS_KEY_ID=FKIA".len() + 16);
    let secret = lines[1].strip_prefix("AWS_SECRET_ACCESS_KEY=").unwrap();
    assert_eq!(secret.len(), 43);
    assert_eq!(
        lines[2],
        format!("AWS_ENDPOINT_URL_KMS='{}'", server.addr())
    );
    assert_eq!(
        lines[3],
        "export AWS_ACCESS_KEY_ID AWS_SECRET_ACCESS_KEY AWS_ENDPOINT_URL_KMS"
    );
    // A shell evaluates them.
    let sh = std::process::Command::new("sh")
        .arg("-c")
        .arg("eval \"$(cat)\"; sh -c 'echo \"$AWS_ACCESS_KEY_ID $AWS_ENDPOINT_URL_KMS\"'")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    {
        use std::io::Write;
        sh.stdin
            .as_ref()
            .unwrap()
            .write_all(stdout.as_bytes())
            .unwrap();
    }
    let seen = String::from_utf8(sh.wait_with_output().unwrap().stdout).unwrap();
    assert_eq!(
        seen.trim(),
        format!(
            "{} {}",
            &lines[0]["AWS_ACCESS_KEY_ID=".len()..],
            server.addr()
        )
    );
    // Another pair each time; JSON on request.
    let out = fleetkey(dir.path(), &server.addr(), &admin)
        .args(["tokens", "aws-credentials", "--json"])
        .assert()
        .success();
    let v: serde_json::Value = serde_json::from_slice(&out.get_output().stdout).unwrap();
    assert_ne!(v["access_key_id"].as_str().unwrap(), &lines[0][18..]);
    // For another token by name: needs tokens:manage covering it.
    let scoped = fleetkey(dir.path(), &server.addr(), &admin)
        .args([
            "tokens",
            "create",
            "--name",
            "app",
            "--scope",
            "seal:orders",
        ])
        .assert()
        .success();
    let app = String::from_utf8(scoped.get_output().stdout.clone()).unwrap();
    fleetkey(dir.path(), &server.addr(), &admin)
        .args(["tokens", "aws-credentials", "app"])
        .assert()
        .success();
    fleetkey(dir.path(), &server.addr(), app.trim())
        .args(["tokens", "aws-credentials", "admin"])
        .assert()
        .failure();
    fleetkey(dir.path(), &server.addr(), &admin)
        .args(["tokens", "aws-credentials", "nobody"])
        .assert()
        .failure()
        .stderr(predicates::str::contains("nobody"));
    // Not in local mode: the server keeps the secret wrapped by custody.
    let mut local = assert_cmd::Command::cargo_bin("fleetkey").unwrap();
    local
        .current_dir(dir.path())
        .env_remove("FLEETKEY_ADDR")
        .args(["tokens", "aws-credentials"])
        .assert()
        .failure()
        .stderr(predicates::str::contains("FLEETKEY_ADDR"));
    // An unsigned request is refused, and audited in the summary written at
    // the latest when the server stops.
    {
        use std::io::{Read, Write};
        let mut s = std::net::TcpStream::connect(("127.0.0.1", server.port)).unwrap();
        s.write_all(
            b"POST / HTTP/1.1\r\nHost: x\r\nX-Amz-Target: TrentService.ListKeys\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}",
        )
        .unwrap();
        let mut answer = String::new();
        s.read_to_string(&mut answer).unwrap();
        assert!(answer.starts_with("HTTP/1.1 403"), "{answer}");
        assert!(
            answer.contains("MissingAuthenticationTokenException"),
            "{answer}"
        );
    }
    assert!(server.stop().success());
    // The server's log never saw the secret.
    let log = server_logs(dir.path());
    assert!(!log.contains(secret));
    // Back up on the same data: the audit log through the API.
    let server = Server::start(dir.path());
    let audit = {
        use std::io::{Read, Write};
        let mut s = std::net::TcpStream::connect(("127.0.0.1", server.port)).unwrap();
        write!(
            s,
            "GET /v1/audit?limit=1000 HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {admin}\r\nConnection: close\r\n\r\n"
        )
        .unwrap();
        let mut answer = String::new();
        s.read_to_string(&mut answer).unwrap();
        answer
    };
    server.stop();
    let refusal = audit
        .lines()
        .find(|l| l.contains("aws.signature_refused"))
        .unwrap_or_else(|| panic!("no refusal summary in {audit}"));
    assert!(
        refusal.contains("MissingAuthenticationTokenException"),
        "{refusal}"
    );
    assert!(audit.contains("token.aws_access_key"));
    assert!(!audit.contains(secret));
}
