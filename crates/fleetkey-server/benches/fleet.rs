//! Factory registrations per second on the embedded store: concurrent
//! `Registry::provision` calls (birth credential issued and signed, device,
//! manufacturing record and audit entry written), group-committed by the writer.
//! Device keys are made before the clock starts (the device makes them, not us).
//! Measured for a fleet without a config schema and one whose schema makes every
//! registration also store the initial configuration.
//! Results: `docs/benchmarks.md`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use fleetkey_crypto::credential::DeviceKeys;
use fleetkey_crypto::ed25519::Ed25519Signer;
use fleetkey_crypto::x25519::X25519Secret;
use fleetkey_server::{
    clock::SystemClock,
    custody::local::{KekSource, LocalCustody},
    fleet::{FactoryRequest, FleetService},
    store::sqlite::SqliteStore,
};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// A fresh data directory with the fleet `acme`, with or without a config schema.
fn setup(
    rt: &tokio::runtime::Runtime,
    with_schema: bool,
) -> (tempfile::TempDir, Arc<FleetService>) {
    let dir = tempfile::TempDir::new().unwrap();
    let fleets = rt.block_on(async {
        let store = Arc::new(SqliteStore::open(dir.path()).await.unwrap());
        let custody = Arc::new(
            LocalCustody::open(
                dir.path(),
                KekSource::Passphrase(zeroize::Zeroizing::new("bench".into())),
            )
            .await
            .unwrap(),
        );
        let f = FleetService::new(store, custody, Arc::new(SystemClock::default()));
        f.registry
            .create_fleet("bench", &"acme".parse().unwrap(), None)
            .await
            .unwrap();
        if with_schema {
            let schema = serde_json::json!({"type": "object", "properties": {
                "interval_s": {"type": "integer", "minimum": 1, "default": 60},
                "server": {"type": "object", "properties": {
                    "host": {"type": "string", "default": "ingest.local"},
                    "port": {"type": "integer", "default": 8401}}}}});
            f.registry
                .set_schema("bench", "acme", schema, vec![])
                .await
                .unwrap();
        }
        f
    });
    (dir, fleets)
}

fn registrations(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let serial = AtomicU64::new(0);
    let mut g = c.benchmark_group("factory");
    g.throughput(Throughput::Elements(1));
    g.sample_size(10);
    for (with_schema, name) in [
        (false, "provision (concurrent, embedded store)"),
        (
            true,
            "provision with initial config (concurrent, embedded store)",
        ),
    ] {
        let (_dir, fleets) = setup(&rt, with_schema);
        g.bench_function(name, |b| {
            b.iter_custom(|iters| {
                let reqs: Vec<FactoryRequest> = (0..iters)
                    .map(|_| {
                        let n = serial.fetch_add(1, Ordering::Relaxed);
                        FactoryRequest {
                            fleet: "acme".into(),
                            hardware_id: format!("uid:{n:016x}"),
                            model: "thermostat-v2".into(),
                            batch: "B1".into(),
                            station: "jig-1".into(),
                            keys: DeviceKeys {
                                x25519: X25519Secret::generate().unwrap().public_key().unwrap(),
                                ed25519: Ed25519Signer::generate().unwrap().public_key(),
                                ml_kem_768: None,
                                ml_dsa_65: None,
                            },
                            test_results: serde_json::json!({ "rf": "pass" }),
                        }
                    })
                    .collect();
                rt.block_on(async {
                    let start = Instant::now();
                    let tasks: Vec<_> = reqs
                        .into_iter()
                        .map(|r| {
                            let f = fleets.clone();
                            tokio::spawn(
                                async move { f.registry.provision("bench", r).await.unwrap() },
                            )
                        })
                        .collect();
                    for t in tasks {
                        t.await.unwrap();
                    }
                    start.elapsed()
                })
            })
        });
    }
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().warm_up_time(Duration::from_secs(1)).measurement_time(Duration::from_secs(5));
    targets = registrations
}
criterion_main!(benches);
