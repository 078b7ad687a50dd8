//! The AWS KMS door with AWS's own clients, unmodified, against a `fleetkey
//! serve`: boto3 runs every supported operation and its refusals, an Ed25519
//! signature is checked by `cryptography` against GetPublicKey's DER key, the
//! AWS Encryption SDK encrypts and a fresh process decrypts, and the AWS CLI
//! encrypts, decrypts and makes a data key (tests/python/kms_clients.py).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
use common::Server;

#[test]
#[ignore = "needs Python's boto3, aws-encryption-sdk, awscli and cryptography (.ci/run installs them)"]
fn boto3_the_encryption_sdk_and_the_aws_cli_work_against_fleetkey() {
    let dir = tempfile::TempDir::new().unwrap();
    let server = Server::start(dir.path());
    let token = Server::admin_token(dir.path());
    let script =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/python/kms_clients.py");
    let out = std::process::Command::new("python3")
        .arg(script)
        .arg(server.addr())
        .arg(&token)
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    println!("{text}");
    assert!(out.status.success(), "{text}");
    // The secrets never reached the server's log.
    let log = std::fs::read_dir(dir.path())
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().starts_with("serve-"))
        .map(|e| std::fs::read_to_string(e.path()).unwrap())
        .collect::<String>();
    assert!(!log.contains(&token), "the admin token is in the log");
    assert!(!log.contains("secret_access_key"), "{log}");
    server.stop();
}
