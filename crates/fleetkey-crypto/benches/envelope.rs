//! Envelope cost next to the raw aws-lc-rs AEAD call, measured in the same run.
//!
//! `raw/*` is the least a caller can do with aws-lc-rs to get an owned sealed
//! buffer: copy the plaintext into a `Vec` and `seal_in_place_append_tag` with no
//! AAD (open: copy, `open_in_place`). `envelope/*` is `envelope::single` with a
//! 7-byte key id (header 31 bytes, all of it authenticated). Report with
//! `scripts/bench_report.py`; results in `docs/benchmarks.md`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use aws_lc_rs::aead::{self, Aad, LessSafeKey, Nonce, UnboundKey};
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use fleetkey_crypto::{
    aead::{AeadKey, Algorithm},
    envelope::{KeyId, io as eio, single, stream},
    hpke::XWingIdentity,
    secret::SecretBytes,
};
use std::hint::black_box;
use std::time::Duration;

const SIZES: [usize; 4] = [64, 1024, 64 * 1024, 1024 * 1024];

fn raw_alg(a: Algorithm) -> &'static aead::Algorithm {
    match a {
        Algorithm::ChaCha20Poly1305 => &aead::CHACHA20_POLY1305,
        Algorithm::Aes256GcmSiv => &aead::AES_256_GCM_SIV,
        _ => &aead::AES_256_GCM,
    }
}

fn aead_vs_envelope(c: &mut Criterion) {
    let key_bytes = [7u8; 32];
    let kid = KeyId::new("payment").unwrap();
    for alg in Algorithm::ALL {
        let raw = LessSafeKey::new(UnboundKey::new(raw_alg(alg), &key_bytes).unwrap());
        let env_key = AeadKey::new(alg, SecretBytes::new(key_bytes)).unwrap();
        let mut g = c.benchmark_group(format!("seal/{}", alg.name()));
        for &n in &SIZES {
            let pt = vec![0x5au8; n];
            g.throughput(Throughput::Bytes(n as u64));
            g.bench_with_input(BenchmarkId::new("raw", n), &pt, |b, pt| {
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
            g.bench_with_input(BenchmarkId::new("envelope", n), &pt, |b, pt| {
                b.iter(|| black_box(single::seal(&env_key, &kid, 1, [1; 12], pt, b"").unwrap()))
            });
        }
        g.finish();
        let mut g = c.benchmark_group(format!("open/{}", alg.name()));
        for &n in &SIZES {
            let pt = vec![0x5au8; n];
            let mut sealed_raw = pt.clone();
            raw.seal_in_place_append_tag(
                Nonce::assume_unique_for_key([1; 12]),
                Aad::empty(),
                &mut sealed_raw,
            )
            .unwrap();
            let sealed_env = single::seal(&env_key, &kid, 1, [1; 12], &pt, b"").unwrap();
            g.throughput(Throughput::Bytes(n as u64));
            g.bench_with_input(BenchmarkId::new("raw", n), &sealed_raw, |b, ct| {
                b.iter(|| {
                    let mut buf = ct.clone();
                    let len = raw
                        .open_in_place(
                            Nonce::assume_unique_for_key([1; 12]),
                            Aad::empty(),
                            &mut buf,
                        )
                        .unwrap()
                        .len();
                    buf.truncate(len);
                    black_box(buf)
                })
            });
            g.bench_with_input(BenchmarkId::new("envelope", n), &sealed_env, |b, env| {
                b.iter(|| black_box(single::open(&env_key, env, b"").unwrap()))
            });
        }
        g.finish();
    }
}

fn stream_in_memory(c: &mut Criterion) {
    let key = AeadKey::new(Algorithm::Aes256Gcm, SecretBytes::new([7; 32])).unwrap();
    let kid = KeyId::new("files").unwrap();
    let n = 16 * 1024 * 1024;
    let pt = vec![0x33u8; n];
    let raw = LessSafeKey::new(UnboundKey::new(&aead::AES_256_GCM, &[7; 32]).unwrap());
    let mut g = c.benchmark_group("stream/aes-256-gcm");
    g.throughput(Throughput::Bytes(n as u64));
    g.sample_size(10);
    let mut out = Vec::with_capacity(n + n / 1024 + 4096);
    g.bench_function("raw-64KiB-chunks/16MiB", |b| {
        b.iter(|| {
            out.clear();
            for (i, chunk) in pt.chunks(64 * 1024).enumerate() {
                let start = out.len();
                out.extend_from_slice(chunk);
                let mut nonce = [0u8; 12];
                nonce[4..].copy_from_slice(&(i as u64).to_be_bytes());
                let tag = raw
                    .seal_in_place_separate_tag(
                        Nonce::assume_unique_for_key(nonce),
                        Aad::empty(),
                        &mut out[start..],
                    )
                    .unwrap();
                out.extend_from_slice(tag.as_ref());
            }
            black_box(out.len())
        })
    });
    g.bench_function("envelope/16MiB", |b| {
        b.iter(|| {
            out.clear();
            let (h, s) = stream::seal_symmetric(&key, &kid, 1, 16, b"").unwrap();
            eio::seal(&h, s, &pt[..], &mut out, &mut |_| {}).unwrap();
            black_box(out.len())
        })
    });
    g.finish();
}

fn hpke_xwing(c: &mut Criterion) {
    let id = XWingIdentity::generate().unwrap();
    let r = id.recipient();
    let (enc, _) = r.export_key(b"info", b"ctx").unwrap();
    let mut g = c.benchmark_group("hpke-xwing");
    g.bench_function("seal (encapsulate + export)", |b| {
        b.iter(|| black_box(r.export_key(b"info", b"ctx").unwrap()))
    });
    g.bench_function("open (decapsulate + export)", |b| {
        b.iter(|| black_box(id.export_key(&enc, b"info", b"ctx").unwrap()))
    });
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().warm_up_time(Duration::from_millis(700)).measurement_time(Duration::from_secs(2));
    targets = aead_vs_envelope, stream_in_memory, hpke_xwing
}
criterion_main!(benches);
