//! AWS KMS custody against a real KMS-protocol server: moto's (`moto_server`,
//! from `FLEETKEY_TEST_MOTO`; `.ci/run` installs `moto[server]` and sets it),
//! started per test, reached by the official SDK. Without it these tests are
//! ignored (and fail when run, saying what is missing).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use aws_sdk_kms::types::{KeySpec, KeyUsageType};
use fleetkey_crypto::secret::SecretBytes;
use fleetkey_server::Error;
use fleetkey_server::custody::Custody;
use fleetkey_server::custody::aws_kms::{AwsKmsConfig, AwsKmsCustody};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

const SECRET: &str = "fleetkey-test-secret-access-key";

/// A moto KMS server on a free port, killed on drop.
struct Moto {
    child: Child,
    sdk: aws_config::SdkConfig,
    kms: aws_sdk_kms::Client,
}

impl Moto {
    async fn start() -> Self {
        let bin = common::service_url("FLEETKEY_TEST_MOTO");
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = std::process::Command::new(bin)
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let url = format!("http://127.0.0.1:{port}");
        let deadline = Instant::now() + Duration::from_secs(30);
        let http = reqwest::Client::new();
        while !http
            .get(format!("{url}/moto-api/"))
            .send()
            .await
            .is_ok_and(|r| r.status().is_success())
        {
            assert!(Instant::now() < deadline, "moto did not start");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let sdk = aws_config::defaults(aws_config::BehaviorVersion::latest())
            .region(aws_config::Region::new("eu-west-1"))
            .endpoint_url(url)
            .credentials_provider(aws_credential_types::Credentials::from_keys(
                "AKIAFLEETKEYTEST",
                SECRET,
                None,
            ))
            .load()
            .await;
        let kms = aws_sdk_kms::Client::new(&sdk);
        Self { child, sdk, kms }
    }

    /// A new KMS key's id.
    async fn key(&self, spec: KeySpec, usage: KeyUsageType) -> String {
        let out = self
            .kms
            .create_key()
            .key_spec(spec)
            .key_usage(usage)
            .send()
            .await
            .unwrap();
        out.key_metadata().unwrap().key_id().to_owned()
    }

    async fn config(&self) -> AwsKmsConfig {
        AwsKmsConfig {
            key_id: self
                .key(KeySpec::SymmetricDefault, KeyUsageType::EncryptDecrypt)
                .await,
            mac_key_id: self
                .key(KeySpec::Hmac256, KeyUsageType::GenerateVerifyMac)
                .await,
            timeout: Duration::from_secs(2),
        }
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn is_open_refusal(e: &Error) -> bool {
    matches!(e, Error::Envelope(fleetkey_crypto::Error::Open))
}

#[tokio::test]
#[ignore = "needs FLEETKEY_TEST_MOTO (moto[server]'s moto_server; .ci/run sets it)"]
async fn kms_wraps_under_a_context_and_derives_one_signing_key_for_every_instance() {
    let moto = Moto::start().await;
    let config = moto.config().await;
    let c = AwsKmsCustody::open_with(&moto.sdk, config.clone())
        .await
        .unwrap();
    assert_eq!(c.backend(), "aws-kms");
    let key = SecretBytes::<32>::random().unwrap();
    let wrapped = c.wrap(&key, "keyring:payments/v1").await.unwrap();
    assert_eq!(wrapped[0], 0x03);
    assert!(
        !wrapped
            .windows(32)
            .any(|w| w == key.expose_secret().as_slice())
    );
    let back = c.unwrap(&wrapped, "keyring:payments/v1").await.unwrap();
    assert_eq!(back.expose_secret(), key.expose_secret());
    // Another context, tampering, truncation, other formats: refused as Open.
    let mut tampered = wrapped.clone();
    let at = tampered.len() - 3;
    tampered[at] ^= 0x01;
    for (bytes, ctx) in [
        (wrapped.clone(), "keyring:payments/v2"),
        (tampered, "keyring:payments/v1"),
        (wrapped[..20].to_vec(), "keyring:payments/v1"),
        (
            [&[0x02u8][..], &wrapped[1..]].concat(),
            "keyring:payments/v1",
        ),
        (vec![0x03], "keyring:payments/v1"),
        (
            [&[0x03u8][..], &[0u8; 1100]].concat(),
            "keyring:payments/v1",
        ),
        (Vec::new(), "keyring:payments/v1"),
    ] {
        let e = c.unwrap(&bytes, ctx).await.unwrap_err();
        assert!(is_open_refusal(&e), "{ctx}: {e}");
    }
    // The composite signature verifies under the public key.
    let pk = c.public_key();
    let sig = c.sign(b"checkpoint 3").await.unwrap();
    fleetkey_crypto::composite::verify(&pk, b"checkpoint 3", &sig).unwrap();
    // Another instance with the same keys, named by alias and ARN this time:
    // the same root and the same signing key.
    moto.kms
        .create_alias()
        .alias_name("alias/fleetkey-root")
        .target_key_id(&config.key_id)
        .send()
        .await
        .unwrap();
    let mac_arn = moto
        .kms
        .describe_key()
        .key_id(&config.mac_key_id)
        .send()
        .await
        .unwrap()
        .key_metadata()
        .unwrap()
        .arn()
        .unwrap()
        .to_owned();
    let c2 = AwsKmsCustody::open_with(
        &moto.sdk,
        AwsKmsConfig {
            key_id: "alias/fleetkey-root".into(),
            mac_key_id: mac_arn,
            timeout: Duration::from_secs(2),
        },
    )
    .await
    .unwrap();
    assert_eq!(c2.public_key(), pk);
    let back = c2.unwrap(&wrapped, "keyring:payments/v1").await.unwrap();
    assert_eq!(back.expose_secret(), key.expose_secret());
    // Another derivation key is another signing identity.
    let mut other = moto.config().await;
    other.key_id = config.key_id.clone();
    let c3 = AwsKmsCustody::open_with(&moto.sdk, other).await.unwrap();
    assert_ne!(c3.public_key(), pk);
    // A ciphertext of another KMS key never opens here (real KMS answers
    // IncorrectKeyException, a refusal; moto answers AccessDenied, unavailable).
    let elsewhere = AwsKmsCustody::open_with(&moto.sdk, moto.config().await)
        .await
        .unwrap();
    let foreign = elsewhere.wrap(&key, "keyring:payments/v1").await.unwrap();
    let e = c.unwrap(&foreign, "keyring:payments/v1").await.unwrap_err();
    assert!(
        is_open_refusal(&e) || matches!(e, Error::CustodyUnavailable(_)),
        "{e}"
    );
    // Debug and errors show no secret.
    let shown = format!("{c2:?} {e}");
    assert!(!shown.contains(SECRET), "{shown}");
}

#[tokio::test]
#[ignore = "needs FLEETKEY_TEST_MOTO (moto[server]'s moto_server; .ci/run sets it)"]
async fn refusals_at_start_and_kms_going_away() {
    let moto = Moto::start().await;
    let good = moto.config().await;
    let start = |config: AwsKmsConfig| AwsKmsCustody::open_with(&moto.sdk, config);
    // Keys of the wrong spec or usage, unknown and disabled keys: configuration
    // errors at start.
    let swapped = AwsKmsConfig {
        key_id: good.mac_key_id.clone(),
        mac_key_id: good.key_id.clone(),
        timeout: good.timeout,
    };
    let e = start(swapped).await.unwrap_err();
    assert!(
        matches!(&e, Error::CustodyConfig(m) if m.contains("must be SYMMETRIC_DEFAULT for ENCRYPT_DECRYPT, not HMAC_256")),
        "{e}"
    );
    let signing = moto
        .key(KeySpec::EccNistP256, KeyUsageType::SignVerify)
        .await;
    let e = start(AwsKmsConfig {
        mac_key_id: signing,
        ..good.clone()
    })
    .await
    .unwrap_err();
    assert!(
        matches!(&e, Error::CustodyConfig(m) if m.contains("must be HMAC_256 for GENERATE_VERIFY_MAC")),
        "{e}"
    );
    let e = start(AwsKmsConfig {
        key_id: "alias/no-such-key".into(),
        ..good.clone()
    })
    .await
    .unwrap_err();
    assert!(
        matches!(&e, Error::CustodyConfig(m) if m.contains("NotFoundException")),
        "{e}"
    );
    let disabled = moto
        .key(KeySpec::SymmetricDefault, KeyUsageType::EncryptDecrypt)
        .await;
    moto.kms
        .disable_key()
        .key_id(&disabled)
        .send()
        .await
        .unwrap();
    let e = start(AwsKmsConfig {
        key_id: disabled,
        ..good.clone()
    })
    .await
    .unwrap_err();
    assert!(
        matches!(&e, Error::CustodyConfig(m) if m.contains("is not enabled (Disabled)")),
        "{e}"
    );
    // KMS goes away: wraps and unwraps are unavailable (not refusals), within
    // the retries' time; signing goes on, its seeds derived at start (the
    // threat model in docs/custody.md).
    let c = start(good).await.unwrap();
    let wrapped = c
        .wrap(&SecretBytes::<32>::random().unwrap(), "x")
        .await
        .unwrap();
    drop(moto);
    let t = Instant::now();
    for e in [
        c.unwrap(&wrapped, "x").await.unwrap_err(),
        c.wrap(&SecretBytes::<32>::random().unwrap(), "x")
            .await
            .unwrap_err(),
    ] {
        assert!(matches!(e, Error::CustodyUnavailable(_)), "{e}");
    }
    assert!(t.elapsed() < Duration::from_secs(15), "{:?}", t.elapsed());
    let pk = c.public_key();
    let sig = c.sign(b"m").await.unwrap();
    fleetkey_crypto::composite::verify(&pk, b"m", &sig).unwrap();
}
