//! Custody servers for CLI tests: OpenBao (`FLEETKEY_TEST_BAO`) and moto's KMS
//! server (`FLEETKEY_TEST_MOTO`), each started by the test and killed on drop.
//! Included by the test binaries that need them (`#[path]`), not by `common`.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use super::common;

/// The variable's value, or a panic naming it.
fn need(name: &str) -> String {
    std::env::var(name)
        .ok()
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| panic!("{name} is not set: this test needs it (.ci/run sets it)"))
}

/// `bao server -dev` with transit enabled (by the `bao` CLI itself), killed on drop.
pub struct Bao(std::process::Child, pub String, pub String);

impl Bao {
    pub fn start() -> Self {
        let bin = need("FLEETKEY_TEST_BAO");
        let port = common::free_port();
        let root: [u8; 8] = fleetkey_crypto::rand::array().unwrap();
        let root = hex::encode(root);
        let addr = format!("http://127.0.0.1:{port}");
        let child = std::process::Command::new(&bin)
            .args(["server", "-dev", &format!("-dev-root-token-id={root}")])
            .arg(format!("-dev-listen-address=127.0.0.1:{port}"))
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let b = Self(child, addr, root);
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        loop {
            let ok = std::process::Command::new(&bin)
                .args(["secrets", "enable", "transit"])
                .env("BAO_ADDR", &b.1)
                .env("BAO_TOKEN", &b.2)
                .output()
                .unwrap()
                .status
                .success();
            if ok {
                return b;
            }
            assert!(std::time::Instant::now() < deadline, "bao did not start");
            std::thread::sleep(std::time::Duration::from_millis(200));
        }
    }
}

impl Drop for Bao {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

pub const AWS_SECRET: &str = "fleetkey-cli-test-secret-key";

/// A moto KMS server (`FLEETKEY_TEST_MOTO`) with a wrapping key and a
/// derivation key made by the SDK, killed on drop; `env` is what a deployment
/// sets: the standard AWS variables and fleetkey's two key ids.
pub struct Moto(std::process::Child, pub Vec<(&'static str, String)>);

impl Moto {
    pub fn start() -> Self {
        use aws_sdk_kms::types::{KeySpec, KeyUsageType};
        let port = common::free_port();
        let url = format!("http://127.0.0.1:{port}");
        let child = std::process::Command::new(need("FLEETKEY_TEST_MOTO"))
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let rt = tokio::runtime::Runtime::new().unwrap();
        let ids = rt.block_on(async {
            let sdk = aws_config::defaults(aws_config::BehaviorVersion::latest())
                .region(aws_config::Region::new("us-east-2"))
                .endpoint_url(&url)
                .credentials_provider(aws_credential_types::Credentials::from_keys(
                    "AKIAFLEETKEYCLI",
                    AWS_SECRET,
                    None,
                ))
                .load()
                .await;
            let kms = aws_sdk_kms::Client::new(&sdk);
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
            let mut ids = Vec::new();
            for (spec, usage) in [
                (KeySpec::SymmetricDefault, KeyUsageType::EncryptDecrypt),
                (KeySpec::Hmac256, KeyUsageType::GenerateVerifyMac),
            ] {
                loop {
                    let made = kms
                        .create_key()
                        .key_spec(spec.clone())
                        .key_usage(usage.clone())
                        .send()
                        .await;
                    if let Ok(out) = made {
                        ids.push(out.key_metadata().unwrap().key_id().to_owned());
                        break;
                    }
                    assert!(std::time::Instant::now() < deadline, "moto did not start");
                    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
                }
            }
            ids
        });
        let env = vec![
            ("FLEETKEY_CUSTODY", "aws-kms".to_owned()),
            ("FLEETKEY_AWS_KMS_KEY_ID", ids[0].clone()),
            ("FLEETKEY_AWS_KMS_MAC_KEY_ID", ids[1].clone()),
            ("AWS_ENDPOINT_URL_KMS", url),
            ("AWS_REGION", "us-east-2".into()),
            ("AWS_ACCESS_KEY_ID", "AKIAFLEETKEYCLI".into()),
            ("AWS_SECRET_ACCESS_KEY", AWS_SECRET.into()),
        ];
        Self(child, env)
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
