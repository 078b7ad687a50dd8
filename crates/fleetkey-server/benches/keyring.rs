//! `Keyring::seal` (nonce allocation + use accounting + envelope) next to the raw
//! aws-lc-rs AES-256-GCM call in the same run, and rewrap throughput.
//! Results: `docs/benchmarks.md`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use aws_lc_rs::aead::{self, Aad, LessSafeKey, Nonce, UnboundKey};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use fleetkey_crypto::aead::Algorithm;
use fleetkey_crypto::keyfile::SymmetricKeyFile;
use fleetkey_server::{
    clock::SystemClock,
    custody::local::{KekSource, LocalCustody},
    keys::{KeyConfig, KeyService},
    store::{Policy, sqlite::SqliteStore},
};
use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

fn setup(rt: &tokio::runtime::Runtime, dir: &std::path::Path) -> KeyService {
    let kek = SymmetricKeyFile::generate(
        Algorithm::Aes256Gcm,
        fleetkey_crypto::envelope::KeyId::new("kek").unwrap(),
    )
    .unwrap();
    fleetkey_server::secret_file::write(&dir.join("kek.fk"), kek.to_text().as_bytes(), true)
        .unwrap();
    rt.block_on(async {
        let store = Arc::new(SqliteStore::open(dir).await.unwrap());
        let custody = Arc::new(
            LocalCustody::open(dir, KekSource::KeyFile(dir.join("kek.fk")))
                .await
                .unwrap(),
        );
        let svc = KeyService::open(
            store,
            custody,
            Arc::new(SystemClock::default()),
            KeyConfig::default(),
        )
        .await
        .unwrap();
        let policy = Policy {
            max_uses: 1 << 40,
            ..Policy::default()
        };
        svc.create(
            "bench",
            &"payments".parse().unwrap(),
            Algorithm::Aes256Gcm,
            policy,
        )
        .await
        .unwrap();
        svc
    })
}

fn keyring_seal(c: &mut Criterion) {
    // As in the server: a multi-threaded runtime, so the next nonce block is
    // reserved (and fsynced) on a worker while this thread seals.
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let dir = tempfile::TempDir::new().unwrap();
    let svc = setup(&rt, dir.path());
    let ring = rt.block_on(svc.keyring("payments")).unwrap();
    let raw = LessSafeKey::new(UnboundKey::new(&aead::AES_256_GCM, &[7; 32]).unwrap());
    let pt = vec![0x5au8; 1024];
    let mut g = c.benchmark_group("keyring-seal/aes-256-gcm");
    g.throughput(Throughput::Bytes(1024));
    g.bench_function("raw/1024", |b| {
        b.iter(|| {
            let mut buf = pt.clone();
            raw.seal_in_place_append_tag(
                Nonce::assume_unique_for_key([1; 12]),
                Aad::empty(),
                &mut buf,
            )
            .unwrap();
            black_box(buf)
        })
    });
    let sealer = fleetkey_crypto::envelope::single::Sealer::new(
        Arc::new(
            fleetkey_crypto::aead::AeadKey::new(
                Algorithm::Aes256Gcm,
                fleetkey_crypto::secret::SecretBytes::new([7; 32]),
            )
            .unwrap(),
        ),
        &fleetkey_crypto::envelope::KeyId::new("payments").unwrap(),
        1,
    );
    g.bench_function("envelope-only/1024", |b| {
        b.iter(|| black_box(sealer.seal([1; 12], &pt, b"").unwrap()))
    });
    g.bench_function("keyring/1024", |b| {
        b.iter_custom(|iters| {
            rt.block_on(async {
                let start = Instant::now();
                for _ in 0..iters {
                    black_box(ring.seal(&pt, b"").await.unwrap());
                }
                start.elapsed()
            })
        })
    });
    g.finish();
}

fn rewrap(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let dir = tempfile::TempDir::new().unwrap();
    let svc = setup(&rt, dir.path());
    let ring = rt.block_on(svc.keyring("payments")).unwrap();
    let batch: Vec<Vec<u8>> = rt.block_on(async {
        let mut v = Vec::new();
        for i in 0..10_000u32 {
            v.push(ring.seal(&[i.to_le_bytes()[0]; 256], b"aad").await.unwrap());
        }
        v
    });
    rt.block_on(svc.rotate("bench", "payments")).unwrap();
    let mut g = c.benchmark_group("rewrap");
    g.throughput(Throughput::Elements(batch.len() as u64));
    g.sample_size(10);
    g.bench_function("batch of 10000 x 256 B", |b| {
        b.iter(|| {
            black_box(
                rt.block_on(svc.rewrap("bench", "payments", &batch, b"aad"))
                    .unwrap(),
            )
        })
    });
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().warm_up_time(Duration::from_millis(700)).measurement_time(Duration::from_secs(3));
    targets = keyring_seal, rewrap
}
criterion_main!(benches);
