//! Custody call latency per backend: wrap, unwrap and sign of the service key,
//! one call at a time (what a keyring's first use, a rotation or a checkpoint
//! waits for). Local custody always; PKCS#11 when `FLEETKEY_TEST_PKCS11_MODULE`,
//! `…_TOKEN`, `…_PIN` (and `SOFTHSM2_CONF`) are set; Vault/OpenBao Transit when
//! `FLEETKEY_BENCH_VAULT_ADDR` and `FLEETKEY_BENCH_VAULT_TOKEN` are; AWS KMS
//! when `FLEETKEY_AWS_KMS_KEY_ID` and `FLEETKEY_AWS_KMS_MAC_KEY_ID` are (with
//! the standard `AWS_*` variables) (`scripts/bench_custody.sh` sets all of them,
//! AWS KMS on moto's server). Then a resident keyring's seal and unseal against
//! raw token calls with the same key. Results: `docs/benchmarks.md`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use criterion::{Criterion, criterion_group, criterion_main};
use fleetkey_crypto::secret::SecretBytes;
use fleetkey_server::custody::Custody;
use fleetkey_server::custody::aws_kms::{AwsKmsConfig, AwsKmsCustody};
use fleetkey_server::custody::local::{KekSource, LocalCustody};
use fleetkey_server::custody::pkcs11::{Pkcs11Config, Pkcs11Custody};
use fleetkey_server::custody::vault::{VaultAuth, VaultConfig, VaultCustody};
use std::hint::black_box;
use std::sync::Arc;
use std::time::Duration;
use zeroize::Zeroizing;

fn var(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

fn backends(rt: &tokio::runtime::Runtime, dir: &std::path::Path) -> Vec<Arc<dyn Custody>> {
    rt.block_on(async {
        let mut out: Vec<Arc<dyn Custody>> = vec![Arc::new(
            LocalCustody::open(dir, KekSource::Passphrase(Zeroizing::new("bench".into())))
                .await
                .unwrap(),
        )];
        if let (Some(module), Some(token), Some(pin)) = (
            var("FLEETKEY_TEST_PKCS11_MODULE"),
            var("FLEETKEY_TEST_PKCS11_TOKEN"),
            var("FLEETKEY_TEST_PKCS11_PIN"),
        ) {
            let config = Pkcs11Config {
                module: module.into(),
                token,
                pin: Zeroizing::new(pin),
                label: "fleetkey-bench".into(),
                sessions: 4,
                wrap: None,
            };
            out.push(Arc::new(Pkcs11Custody::open(config).await.unwrap()));
        }
        if let (Some(addr), Some(token)) = (
            var("FLEETKEY_BENCH_VAULT_ADDR"),
            var("FLEETKEY_BENCH_VAULT_TOKEN"),
        ) {
            let config = VaultConfig {
                addr,
                auth: VaultAuth::Token(Zeroizing::new(token)),
                namespace: None,
                mount: "transit".into(),
                key: "fleetkey-bench".into(),
                timeout: Duration::from_secs(5),
            };
            out.push(Arc::new(VaultCustody::open(config).await.unwrap()));
        }
        if var("FLEETKEY_AWS_KMS_KEY_ID").is_some() {
            let config = AwsKmsConfig::from_env().unwrap();
            out.push(Arc::new(AwsKmsCustody::open(config).await.unwrap()));
        }
        out
    })
}

fn custody(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let dir = tempfile::TempDir::new().unwrap();
    let key = SecretBytes::<32>::random().unwrap();
    let mut g = c.benchmark_group("custody");
    g.measurement_time(Duration::from_secs(3));
    for b in backends(&rt, dir.path()) {
        let name = b.backend();
        let wrapped = rt.block_on(b.wrap(&key, "keyring:bench/v1")).unwrap();
        g.bench_function(format!("{name}/wrap"), |bench| {
            bench.iter(|| {
                rt.block_on(b.wrap(black_box(&key), "keyring:bench/v1"))
                    .unwrap()
            });
        });
        g.bench_function(format!("{name}/unwrap"), |bench| {
            bench.iter(|| {
                rt.block_on(b.unwrap(black_box(&wrapped), "keyring:bench/v1"))
                    .unwrap()
            });
        });
        g.bench_function(format!("{name}/sign"), |bench| {
            bench.iter(|| rt.block_on(b.sign(black_box(b"checkpoint"))).unwrap());
        });
    }
    g.finish();
}

/// A resident keyring's seal and unseal of 64 bytes (every one a token call,
/// with the keyring's nonce blocks, header and metrics) against raw `C_Encrypt`
/// and `C_Decrypt` calls with the same key on the same token, alternated in one
/// run (docs/benchmarks.md, target ≥ 0.8×). Needs the PKCS#11 variables.
fn resident(c: &mut Criterion) {
    use cryptoki::context::{CInitializeArgs, CInitializeFlags, Pkcs11};
    use cryptoki::mechanism::{Mechanism, aead::GcmParams};
    use cryptoki::object::{Attribute, ObjectClass};
    use cryptoki::session::UserType;
    use cryptoki::types::AuthPin;
    use fleetkey_server::keys::{KeyConfig, KeyService, KeyringOptions};
    let (Some(module), Some(token), Some(pin)) = (
        var("FLEETKEY_TEST_PKCS11_MODULE"),
        var("FLEETKEY_TEST_PKCS11_TOKEN"),
        var("FLEETKEY_TEST_PKCS11_PIN"),
    ) else {
        return;
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let dir = tempfile::TempDir::new().unwrap();
    let label = format!("fleetkey-bench-{}", std::process::id());
    let config = Pkcs11Config {
        module: module.clone().into(),
        token: token.clone(),
        pin: Zeroizing::new(pin.clone()),
        label: label.clone(),
        sessions: 4,
        wrap: None,
    };
    let (keys, ring) = rt.block_on(async {
        let store = Arc::new(
            fleetkey_server::store::sqlite::SqliteStore::open(dir.path())
                .await
                .unwrap(),
        );
        let custody = Arc::new(Pkcs11Custody::open(config).await.unwrap());
        let keys = KeyService::open(
            store,
            custody,
            Arc::new(fleetkey_server::clock::SystemClock::default()),
            KeyConfig::default(),
        )
        .await
        .unwrap();
        keys.create_with(
            "bench",
            &"resident".parse().unwrap(),
            fleetkey_server::key_type::KeyType::Aead(fleetkey_crypto::aead::Algorithm::Aes256Gcm),
            fleetkey_server::store::Policy::default(),
            KeyringOptions {
                resident: true,
                ..KeyringOptions::default()
            },
        )
        .await
        .unwrap();
        let ring = keys.keyring("resident").await.unwrap();
        (keys, ring)
    });
    // The same key, reached directly: a session of this process (the module is
    // initialised and the application logged in by custody already).
    let ctx = Pkcs11::new(&module).unwrap();
    let _ = ctx.initialize(CInitializeArgs::new(CInitializeFlags::OS_LOCKING_OK));
    let slot = ctx
        .get_slots_with_token()
        .unwrap()
        .into_iter()
        .find(|s| ctx.get_token_info(*s).unwrap().label().trim_end() == token)
        .unwrap();
    let session = ctx.open_rw_session(slot).unwrap();
    let _ = session.login(UserType::User, Some(&AuthPin::new(pin.into())));
    let found = session
        .find_objects(&[Attribute::Class(ObjectClass::SECRET_KEY)])
        .unwrap()
        .into_iter()
        .find(|h| {
            matches!(
                session.get_attributes(*h, &[cryptoki::object::AttributeType::Label]).as_deref(),
                Ok([Attribute::Label(l)]) if l.starts_with(format!("{label}-resident-").as_bytes())
            )
        })
        .unwrap();
    let pt = [0x5au8; 64];
    let aad = [0u8; 36]; // an fk1 mode-1 header for a short key id is about this long
    let sealed = rt.block_on(ring.seal(&pt, b"")).unwrap();
    let mut g = c.benchmark_group("resident");
    g.measurement_time(Duration::from_secs(3));
    for round in 0..2 {
        let mut iv = [0u8; 12];
        let mut n = 0u64;
        g.bench_function(format!("raw-c-encrypt-64B/{round}"), |b| {
            b.iter(|| {
                n += 1;
                iv[4..].copy_from_slice(&n.to_be_bytes());
                let params = GcmParams::new(&mut iv, &aad, 128.into()).unwrap();
                session
                    .encrypt(&Mechanism::AesGcm(params), found, black_box(&pt))
                    .unwrap()
            });
        });
        g.bench_function(format!("keyring-seal-64B/{round}"), |b| {
            b.iter(|| rt.block_on(ring.seal(black_box(&pt), b"")).unwrap());
        });
        let ct = {
            let mut iv = [1u8; 12];
            let params = GcmParams::new(&mut iv, &aad, 128.into()).unwrap();
            session
                .encrypt(&Mechanism::AesGcm(params), found, &pt)
                .unwrap()
        };
        g.bench_function(format!("raw-c-decrypt-64B/{round}"), |b| {
            b.iter(|| {
                let mut iv = [1u8; 12];
                let params = GcmParams::new(&mut iv, &aad, 128.into()).unwrap();
                session
                    .decrypt(&Mechanism::AesGcm(params), found, black_box(&ct))
                    .unwrap()
            });
        });
        g.bench_function(format!("keyring-unseal-64B/{round}"), |b| {
            b.iter(|| rt.block_on(ring.unseal(black_box(&sealed), b"")).unwrap());
        });
    }
    g.finish();
    drop(ring);
    rt.block_on(keys.shutdown()).unwrap();
}

criterion_group!(benches, custody, resident);
criterion_main!(benches);
