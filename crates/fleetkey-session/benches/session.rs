//! Full IK handshakes (both sides, one thread) and 1 KiB transport messages,
//! fleetkey's aws-lc resolver next to raw snow with its default resolver in the
//! same run. Results: `docs/benchmarks.md`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use fleetkey_crypto::mlkem::MlKemSecret;
use fleetkey_session::{Builder, Keypair, Pattern, Suite};
use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The server's ML-KEM-768 key pair (for the hybrid).
struct Kem(Arc<MlKemSecret>, Vec<u8>);

/// One IK (or hybrid IKpsk2 + ML-KEM-768) handshake through fleetkey-session.
fn ours(pattern: Pattern, suite: Suite, server: &Keypair, device: &Keypair, kem: &Kem) {
    let now = Instant::now();
    let mut i = Builder::new(pattern, suite)
        .local(device)
        .remote(*server.public());
    let mut r = Builder::new(pattern, suite).local(server);
    if pattern.hybrid() {
        i = i.remote_kem(&kem.1);
        r = r.local_kem(kem.0.clone());
    }
    let mut i = i.initiator(now).unwrap();
    let mut r = r.responder(now).unwrap();
    let m1 = i.write_message(&[], now).unwrap();
    r.read_message(&m1, now).unwrap();
    let m2 = r.write_message(&[], now).unwrap();
    i.read_message(&m2, now).unwrap();
    black_box((i.into_transport().unwrap(), r.into_transport().unwrap()));
}

/// One IK handshake with raw snow and its default resolver.
fn raw_snow(suite: Suite, server: &Keypair, device: &Keypair) {
    let name = format!("Noise_IK_{}", suite.name());
    let mut i = snow::Builder::new(name.parse().unwrap())
        .local_private_key(device.expose_private())
        .unwrap()
        .remote_public_key(server.public())
        .unwrap()
        .build_initiator()
        .unwrap();
    let mut r = snow::Builder::new(name.parse().unwrap())
        .local_private_key(server.expose_private())
        .unwrap()
        .build_responder()
        .unwrap();
    let (mut a, mut b) = ([0u8; 256], [0u8; 256]);
    let n = i.write_message(&[], &mut a).unwrap();
    r.read_message(&a[..n], &mut b).unwrap();
    let n = r.write_message(&[], &mut a).unwrap();
    i.read_message(&a[..n], &mut b).unwrap();
    black_box((
        i.into_transport_mode().unwrap(),
        r.into_transport_mode().unwrap(),
    ));
}

fn handshakes(c: &mut Criterion) {
    let server = Keypair::generate().unwrap();
    let device = Keypair::generate().unwrap();
    let k = MlKemSecret::generate().unwrap();
    let pk = k.public_key().unwrap();
    let kem = Kem(Arc::new(k), pk);
    let mut g = c.benchmark_group("ik-handshake");
    g.throughput(Throughput::Elements(1));
    for suite in Suite::ALL {
        g.bench_function(format!("raw snow default {}", suite.name()), |b| {
            b.iter(|| raw_snow(suite, &server, &device))
        });
        g.bench_function(format!("fleetkey aws-lc {}", suite.name()), |b| {
            b.iter(|| ours(Pattern::IK, suite, &server, &device, &kem))
        });
        g.bench_function(
            format!("fleetkey aws-lc hybrid IKpsk2+ML-KEM-768 {}", suite.name()),
            |b| b.iter(|| ours(Pattern::IKHybrid, suite, &server, &device, &kem)),
        );
    }
    g.finish();
}

fn transport(c: &mut Criterion) {
    let server = Keypair::generate().unwrap();
    let device = Keypair::generate().unwrap();
    let msg = vec![0x5au8; 1024];
    let mut g = c.benchmark_group("transport-1KiB");
    g.throughput(Throughput::Bytes(msg.len() as u64));
    // The floor: the raw aws-lc AEAD sealing and opening 1 KiB in place.
    for (alg, name) in [
        (
            &aws_lc_rs::aead::CHACHA20_POLY1305,
            "raw aws-lc ChaCha20-Poly1305 seal+open",
        ),
        (
            &aws_lc_rs::aead::AES_256_GCM,
            "raw aws-lc AES-256-GCM seal+open",
        ),
    ] {
        use aws_lc_rs::aead::{Aad, LessSafeKey, Nonce, UnboundKey};
        let key = LessSafeKey::new(UnboundKey::new(alg, &[7u8; 32]).unwrap());
        let mut buf = msg.clone();
        let mut n = 0u64;
        g.bench_function(name, |bch| {
            bch.iter(|| {
                n += 1;
                let mut nonce = [0u8; 12];
                nonce[4..].copy_from_slice(&n.to_be_bytes());
                let tag = key
                    .seal_in_place_separate_tag(
                        Nonce::assume_unique_for_key(nonce),
                        Aad::empty(),
                        &mut buf,
                    )
                    .unwrap();
                key.open_in_place_separate_tag(
                    Nonce::assume_unique_for_key(nonce),
                    Aad::empty(),
                    tag.as_ref(),
                    &mut buf,
                )
                .unwrap();
                black_box(&buf);
            })
        });
    }
    for suite in Suite::ALL {
        // Raw snow: write + read one 1 KiB message.
        let name = format!("Noise_NN_{}", suite.name());
        let mut i = snow::Builder::new(name.parse().unwrap())
            .build_initiator()
            .unwrap();
        let mut r = snow::Builder::new(name.parse().unwrap())
            .build_responder()
            .unwrap();
        let (mut a, mut b) = (vec![0u8; 2048], vec![0u8; 2048]);
        let n = i.write_message(&[], &mut a).unwrap();
        r.read_message(&a[..n], &mut b).unwrap();
        let n = r.write_message(&[], &mut a).unwrap();
        i.read_message(&a[..n], &mut b).unwrap();
        let (mut ti, mut tr) = (
            i.into_transport_mode().unwrap(),
            r.into_transport_mode().unwrap(),
        );
        g.bench_function(format!("raw snow default {}", suite.name()), |bch| {
            bch.iter(|| {
                let n = ti.write_message(&msg, &mut a).unwrap();
                let m = tr.read_message(&a[..n], &mut b).unwrap();
                black_box(m);
            })
        });
        // Ours: seal (framing included) + open.
        let now = Instant::now();
        let mut i = Builder::new(Pattern::IK, suite)
            .local(&device)
            .remote(*server.public())
            .initiator(now)
            .unwrap();
        let mut r = Builder::new(Pattern::IK, suite)
            .local(&server)
            .responder(now)
            .unwrap();
        let m1 = i.write_message(&[], now).unwrap();
        r.read_message(&m1, now).unwrap();
        let m2 = r.write_message(&[], now).unwrap();
        i.read_message(&m2, now).unwrap();
        let (mut ti, mut tr) = (i.into_transport().unwrap(), r.into_transport().unwrap());
        let mut wire = Vec::with_capacity(2048);
        g.bench_function(format!("fleetkey aws-lc {}", suite.name()), |bch| {
            bch.iter(|| {
                wire.clear();
                ti.seal(&msg, &mut wire).unwrap();
                let got = tr.open(&wire[2..]).unwrap();
                black_box(got);
            })
        });
    }
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().warm_up_time(Duration::from_secs(1)).measurement_time(Duration::from_secs(3));
    targets = handshakes, transport
}
criterion_main!(benches);
