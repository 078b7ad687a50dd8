//! Constrained-device frames verified per second by the server's ingest path
//! (`FrameIngest::accept`: header, per-device state from the sharded cache, AES-CCM
//! verification, replay check, telemetry to the JSON-lines sink), next to the bare
//! `fleetkey_device::Receiver::accept` (the AES-CCM floor) in the same run.
//! 1,000 devices, frames of a 24-byte JSON payload, interleaved across devices,
//! from two tasks. Results: `docs/benchmarks.md`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use fleetkey_crypto::credential::DeviceKeys;
use fleetkey_crypto::ed25519::Ed25519Signer;
use fleetkey_device::{Credentials, Device, Error as DevError, Receiver, Rng, Session, Storage};
use fleetkey_server::custody::local::{KekSource, LocalCustody};
use fleetkey_server::fleet::constrained::{Profile, seal_factory_secret};
use fleetkey_server::fleet::{FactoryRequest, FleetService};
use fleetkey_server::ingest::{FrameIngest, IngestMetrics};
use fleetkey_server::store::sqlite::SqliteStore;
use fleetkey_server::telemetry::JsonLinesSink;
use std::sync::Arc;
use std::time::{Duration, Instant};

const DEVICES: usize = 1000;

struct OsRng;
impl Rng for OsRng {
    fn fill(&mut self, buf: &mut [u8]) -> Result<(), DevError> {
        fleetkey_crypto::rand::fill(buf).map_err(|_| DevError::Rng)
    }
}
struct NoFlash;
impl Storage for NoFlash {
    fn store_boot_counter(&mut self, _: u32) -> Result<(), DevError> {
        Ok(())
    }
}

struct Fleet {
    _dir: tempfile::TempDir,
    ingest: Arc<FrameIngest>,
    sessions: Vec<Session>,
    receivers: Vec<Receiver>,
    server_scalar: [u8; 32],
}

fn setup(rt: &tokio::runtime::Runtime) -> Fleet {
    let dir = tempfile::TempDir::new().unwrap();
    rt.block_on(async {
        let store = Arc::new(SqliteStore::open(dir.path()).await.unwrap());
        let custody = Arc::new(
            LocalCustody::open(
                dir.path(),
                KekSource::Passphrase(zeroize::Zeroizing::new("bench".into())),
            )
            .await
            .unwrap(),
        );
        let fleets = FleetService::new(
            store,
            custody,
            Arc::new(fleetkey_server::clock::SystemClock::default()),
        );
        fleets
            .registry
            .create_fleet("bench", &"sensors".parse().unwrap(), None)
            .await
            .unwrap();
        let recipient = fleetkey_crypto::keyfile::parse_recipient(
            &fleets.onboarding.factory_recipient().await.unwrap(),
        )
        .unwrap();
        let (scalar, server_public) = fleets.directory().server_static_key().await.unwrap();
        let metrics = fleetkey_server::api::metrics::Metrics::new().unwrap();
        let ingest = FrameIngest::new(
            fleets.clone(),
            Arc::new(JsonLinesSink::open(&dir.path().join("telemetry.jsonl")).unwrap()),
            IngestMetrics {
                frames: metrics.device_frames.clone(),
                downlinks: metrics.device_downlinks.clone(),
                active: metrics.constrained_active.clone(),
            },
        )
        .await
        .unwrap();
        let mut sessions = Vec::new();
        let mut receivers = Vec::new();
        for i in 0..DEVICES {
            let dev_scalar: [u8; 32] = fleetkey_crypto::rand::array().unwrap();
            let psk: [u8; 32] = fleetkey_crypto::rand::array().unwrap();
            let hw = format!("uid-{i}");
            let public = fleetkey_device::keys::public_key(&dev_scalar);
            let p = fleets
                .onboarding
                .provision_constrained(
                    "bench",
                    FactoryRequest {
                        fleet: "sensors".into(),
                        hardware_id: hw.clone(),
                        model: "m".into(),
                        batch: "b".into(),
                        station: "s".into(),
                        keys: DeviceKeys {
                            x25519: public,
                            ed25519: Ed25519Signer::generate().unwrap().public_key(),
                            ml_kem_768: None,
                            ml_dsa_65: None,
                        },
                        test_results: serde_json::json!({}),
                    },
                    Profile::Constrained,
                    &seal_factory_secret(&recipient, &psk, &hw).unwrap(),
                )
                .await
                .unwrap();
            let id: [u8; 8] = hex::decode(&p.device.id[4..]).unwrap().try_into().unwrap();
            let mut d = Device::x25519(id, dev_scalar, server_public, psk, 0);
            let s = d.boot(&mut OsRng, &mut NoFlash).unwrap();
            let mut buf = [0u8; 128];
            let n = s.start_frame(b"", &mut buf).unwrap();
            ingest.accept(&mut buf[..n]).await.unwrap();
            let mut r = Receiver::new(
                id,
                Credentials::X25519Psk {
                    device_public: public,
                    psk,
                },
                0,
            );
            r.accept(scalar.expose_secret(), &mut buf[..n]).unwrap();
            sessions.push(s);
            receivers.push(r);
        }
        Fleet {
            _dir: dir,
            ingest,
            sessions,
            receivers,
            server_scalar: *scalar.expose_secret(),
        }
    })
}

/// `n` frames, round-robin over the devices.
fn frames(f: &mut Fleet, n: u64) -> Vec<Vec<u8>> {
    let n = usize::try_from(n).unwrap();
    let mut out = Vec::with_capacity(n);
    let mut buf = [0u8; 128];
    for i in 0..n {
        let s = &mut f.sessions[i % DEVICES];
        let len = s
            .data_frame(br#"{"t":21.5,"rh":40,"v":3}"#, &mut buf)
            .unwrap();
        out.push(buf[..len].to_vec());
    }
    out
}

fn ingest(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let mut fleet = setup(&rt);
    let mut g = c.benchmark_group("constrained frames");
    g.throughput(Throughput::Elements(1));
    g.sample_size(10);
    g.bench_function("Receiver::accept (AES-CCM floor, one thread)", |b| {
        b.iter_custom(|iters| {
            let mut fs = frames(&mut fleet, iters);
            let start = Instant::now();
            for (i, f) in fs.iter_mut().enumerate() {
                fleet.receivers[i % DEVICES]
                    .accept(&fleet.server_scalar, f)
                    .unwrap();
            }
            start.elapsed()
        })
    });
    g.bench_function("FrameIngest::accept (server path + sink, two tasks)", |b| {
        b.iter_custom(|iters| {
            let fs = frames(&mut fleet, iters);
            let ing = fleet.ingest.clone();
            rt.block_on(async move {
                // Two tasks, each taking every other device's frames in order.
                let (mut a, mut b): (Vec<_>, Vec<_>) = (Vec::new(), Vec::new());
                for (i, f) in fs.into_iter().enumerate() {
                    if (i % DEVICES).is_multiple_of(2) {
                        a.push(f)
                    } else {
                        b.push(f)
                    }
                }
                let start = Instant::now();
                let tasks: Vec<_> = [a, b]
                    .into_iter()
                    .map(|mut part| {
                        let ing = ing.clone();
                        tokio::spawn(async move {
                            for f in &mut part {
                                ing.accept(f).await.unwrap();
                            }
                        })
                    })
                    .collect();
                for t in tasks {
                    t.await.unwrap();
                }
                start.elapsed()
            })
        })
    });
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().warm_up_time(Duration::from_secs(1)).measurement_time(Duration::from_secs(5));
    targets = ingest
}
criterion_main!(benches);
