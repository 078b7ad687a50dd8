//! Custody call latency per backend: wrap, unwrap and sign of the service key,
//! one call at a time (what a keyring's first use, a rotation or a checkpoint
//! waits for). Local custody always; PKCS#11 when `FLEETKEY_TEST_PKCS11_MODULE`,
//! `…_TOKEN`, `…_PIN` (and `SOFTHSM2_CONF`) are set; Vault/OpenBao Transit when
//! `FLEETKEY_BENCH_VAULT_ADDR` and `FLEETKEY_BENCH_VAULT_TOKEN` are; AWS KMS
//! when `FLEETKEY_AWS_KMS_KEY_ID` and `FLEETKEY_AWS_KMS_MAC_KEY_ID` are (with
//! the standard `AWS_*` variables) (`scripts/bench_custody.sh` sets all of them,
//! AWS KMS on moto's server). Results: `docs/benchmarks.md`.

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

criterion_group!(benches, custody);
criterion_main!(benches);
