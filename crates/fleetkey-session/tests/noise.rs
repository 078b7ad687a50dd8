//! Noise sessions: the cacophony test vectors through the aws-lc resolver, interop
//! with snow's default resolver in both directions for every pattern and suite,
//! and every refusal (low-order keys, wrong or unpinned peers, oversized messages,
//! tampering and replays with sticky failure, timeouts, rekey mismatch, replayed
//! NN attestations).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use fleetkey_crypto::ed25519::Ed25519Signer;
use fleetkey_crypto::mlkem::MlKemSecret;
use fleetkey_session::frame::{FrameReader, MAX_NOISE_MESSAGE};
use fleetkey_session::{
    Builder, Error, Handshake, Keypair, Limits, Pattern, Resolver, Suite, Transport, attestation,
};
use serde_json::Value;
use snow::params::{CipherChoice, DHChoice, HashChoice};
use snow::resolvers::{CryptoResolver, DefaultResolver};
use snow::types::{Cipher, Dh, Hash, Random};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

fn h(v: &Value) -> Vec<u8> {
    hex::decode(v.as_str().unwrap()).unwrap()
}

/// Every low-order encoding (RFC 7748 §7): the 7 points, each also with bit 255 set.
fn low_order() -> Vec<[u8; 32]> {
    fleetkey_crypto::x25519::LOW_ORDER
        .iter()
        .flat_map(|p| {
            let mut high = *p;
            high[31] |= 0x80;
            [*p, high]
        })
        .collect()
}

#[test]
fn cacophony_vectors_through_both_resolvers() {
    let doc: Value = serde_json::from_str(include_str!("vectors/cacophony.json")).unwrap();
    let vectors = doc["vectors"].as_array().unwrap();
    assert_eq!(vectors.len(), 10);
    for v in vectors {
        let name = v["protocol_name"].as_str().unwrap();
        for aws in [true, false] {
            let resolver = || -> snow::resolvers::BoxedCryptoResolver {
                if aws {
                    fleetkey_session::resolver::aws_lc()
                } else {
                    Box::new(DefaultResolver)
                }
            };
            let (ip, rp) = (h(&v["init_prologue"]), h(&v["resp_prologue"]));
            let (ie, re) = (h(&v["init_ephemeral"]), v.get("resp_ephemeral").map(h));
            let (is, irs, rs) = (
                v.get("init_static").map(h),
                v.get("init_remote_static").map(h),
                v.get("resp_static").map(h),
            );
            let mut ib = snow::Builder::with_resolver(name.parse().unwrap(), resolver())
                .prologue(&ip)
                .unwrap()
                .fixed_ephemeral_key_for_testing_only(&ie);
            if let Some(k) = &is {
                ib = ib.local_private_key(k).unwrap();
            }
            if let Some(k) = &irs {
                ib = ib.remote_public_key(k).unwrap();
            }
            let mut rb = snow::Builder::with_resolver(name.parse().unwrap(), resolver())
                .prologue(&rp)
                .unwrap();
            if let Some(k) = &re {
                rb = rb.fixed_ephemeral_key_for_testing_only(k);
            }
            if let Some(k) = &rs {
                rb = rb.local_private_key(k).unwrap();
            }
            let (ipsk, rpsk) = (
                v.get("init_psks").map(|p| h(&p[0])),
                v.get("resp_psks").map(|p| h(&p[0])),
            );
            let ipsk: Option<[u8; 32]> = ipsk.map(|p| p.try_into().unwrap());
            let rpsk: Option<[u8; 32]> = rpsk.map(|p| p.try_into().unwrap());
            if let Some(p) = &ipsk {
                ib = ib.psk(2, p).unwrap();
            }
            if let Some(p) = &rpsk {
                rb = rb.psk(2, p).unwrap();
            }
            let mut i = ib.build_initiator().unwrap();
            let mut r = rb.build_responder().unwrap();
            let one_way = name.starts_with("Noise_N_");
            let (mut it, mut rt): (Option<snow::TransportState>, Option<snow::TransportState>) =
                (None, None);
            let mut buf = vec![0u8; 65_535];
            let mut out = vec![0u8; 65_535];
            for (k, m) in v["messages"].as_array().unwrap().iter().enumerate() {
                let (payload, ct) = (h(&m["payload"]), h(&m["ciphertext"]));
                let from_initiator = one_way || k % 2 == 0;
                let n = match (&mut it, &mut rt, from_initiator) {
                    (None, _, true) => i.write_message(&payload, &mut buf).unwrap(),
                    (_, None, false) => r.write_message(&payload, &mut buf).unwrap(),
                    (Some(t), _, true) => t.write_message(&payload, &mut buf).unwrap(),
                    (_, Some(t), false) => t.write_message(&payload, &mut buf).unwrap(),
                };
                assert_eq!(
                    hex::encode(&buf[..n]),
                    hex::encode(&ct),
                    "{name} aws={aws} message {k}"
                );
                let got = match (&mut it, &mut rt, from_initiator) {
                    (_, None, true) => r.read_message(&ct, &mut out).unwrap(),
                    (None, _, false) => i.read_message(&ct, &mut out).unwrap(),
                    (_, Some(t), true) => t.read_message(&ct, &mut out).unwrap(),
                    (Some(t), _, false) => t.read_message(&ct, &mut out).unwrap(),
                };
                assert_eq!(&out[..got], &payload[..]);
                if it.is_none() && i.is_handshake_finished() && r.is_handshake_finished() {
                    assert_eq!(
                        hex::encode(i.get_handshake_hash()),
                        v["handshake_hash"].as_str().unwrap(),
                        "{name}"
                    );
                    let i2 = std::mem::replace(
                        &mut i,
                        snow::Builder::new("Noise_NN_25519_ChaChaPoly_BLAKE2s".parse().unwrap())
                            .build_initiator()
                            .unwrap(),
                    );
                    let r2 = std::mem::replace(
                        &mut r,
                        snow::Builder::new("Noise_NN_25519_ChaChaPoly_BLAKE2s".parse().unwrap())
                            .build_responder()
                            .unwrap(),
                    );
                    it = Some(i2.into_transport_mode().unwrap());
                    rt = Some(r2.into_transport_mode().unwrap());
                }
            }
            assert!(it.is_some(), "{name}: the handshake finished");
        }
    }
}

/// The responder's ML-KEM-768 key pair for the hybrid pattern (made once).
fn kem() -> &'static (Arc<MlKemSecret>, Vec<u8>) {
    static K: OnceLock<(Arc<MlKemSecret>, Vec<u8>)> = OnceLock::new();
    K.get_or_init(|| {
        let k = MlKemSecret::generate().unwrap();
        let pk = k.public_key().unwrap();
        (Arc::new(k), pk)
    })
}

/// Keys for a pattern: (initiator static, responder static).
fn keys() -> (Keypair, Keypair) {
    (Keypair::generate().unwrap(), Keypair::generate().unwrap())
}

fn builders<'a>(
    p: Pattern,
    s: Suite,
    ik: &'a Keypair,
    rk: &'a Keypair,
    ires: Resolver,
    rres: Resolver,
) -> (Builder<'a>, Builder<'a>) {
    let mut i = Builder::new(p, s).resolver(ires).prologue(b"fleetkey test");
    if p.initiator_static() {
        i = i.local(ik);
    }
    if p.responder_known() {
        i = i.remote(*rk.public());
    }
    let mut r = Builder::new(p, s).resolver(rres).prologue(b"fleetkey test");
    if p.responder_static() {
        r = r.local(rk);
    }
    if p.hybrid() {
        i = i.remote_kem(&kem().1);
        r = r.local_kem(kem().0.clone());
    }
    (i, r)
}

/// Runs a handshake to the end, passing `payload` in every message.
fn run(mut i: Handshake, mut r: Handshake, now: Instant) -> Result<(Transport, Transport), Error> {
    let mut initiator_turn = true;
    while !(i.is_finished() && r.is_finished()) {
        let (w, rd) = if initiator_turn {
            (&mut i, &mut r)
        } else {
            (&mut r, &mut i)
        };
        let m = w.write_message(b"hs payload", now)?;
        assert_eq!(rd.read_message(&m, now)?, b"hs payload");
        initiator_turn = !initiator_turn;
    }
    Ok((i.into_transport()?, r.into_transport()?))
}

/// Sends `msg` from `a` to `b` through the framing.
fn send(a: &mut Transport, b: &mut Transport, msg: &[u8]) -> Result<Vec<u8>, Error> {
    let mut wire = Vec::new();
    a.seal(msg, &mut wire)?;
    let mut frames = FrameReader::new(MAX_NOISE_MESSAGE);
    frames.push(&wire);
    let mut got = None;
    while let Some(f) = frames.next_frame()? {
        assert!(got.is_none(), "nothing after the final chunk");
        got = b.open(&f)?;
    }
    Ok(got.expect("a whole message"))
}

#[test]
fn every_pattern_and_suite_interoperates_with_snows_default_resolver_both_ways() {
    let now = Instant::now();
    let big: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
    for p in Pattern::ALL {
        for s in Suite::ALL {
            for (ires, rres) in [
                (Resolver::AwsLc, Resolver::SnowDefault),
                (Resolver::SnowDefault, Resolver::AwsLc),
                (Resolver::AwsLc, Resolver::AwsLc),
            ] {
                let (ik, rk) = keys();
                let (ib, rb) = builders(p, s, &ik, &rk, ires, rres);
                let (mut i, mut r) =
                    run(ib.initiator(now).unwrap(), rb.responder(now).unwrap(), now).unwrap();
                assert_eq!(i.handshake_hash(), r.handshake_hash());
                if p.initiator_static() {
                    assert_eq!(r.remote_static(), Some(*ik.public()));
                }
                assert_eq!(
                    send(&mut i, &mut r, b"telemetry").unwrap(),
                    b"telemetry",
                    "{p:?} {s:?}"
                );
                assert_eq!(
                    send(&mut i, &mut r, &big).unwrap(),
                    big,
                    "{p:?} {s:?} multi-chunk"
                );
                assert_eq!(send(&mut i, &mut r, b"").unwrap(), b"", "empty message");
                if p != Pattern::N {
                    assert_eq!(send(&mut r, &mut i, b"command").unwrap(), b"command");
                }
            }
        }
    }
}

#[test]
fn low_order_keys_are_refused_as_remote_static_and_as_ephemeral() {
    let now = Instant::now();
    let (ik, rk) = keys();
    assert_eq!(low_order().len(), 14);
    for bad in low_order() {
        // The responder's key the initiator is told to trust.
        assert_eq!(
            Builder::new(Pattern::IK, Suite::ChaChaPolyBlake2s)
                .local(&ik)
                .remote(bad)
                .initiator(now)
                .unwrap_err(),
            Error::LowOrderKey
        );
        for res in [Resolver::AwsLc, Resolver::SnowDefault] {
            // The initiator's ephemeral in message 1.
            let (ib, rb) = builders(Pattern::IK, Suite::ChaChaPolyBlake2s, &ik, &rk, res, res);
            let mut i = ib.initiator(now).unwrap();
            let mut r = rb.responder(now).unwrap();
            let mut m1 = i.write_message(&[], now).unwrap();
            m1[..32].copy_from_slice(&bad);
            assert_eq!(r.read_message(&m1, now).unwrap_err(), Error::LowOrderKey);
            // Sticky: the real message is refused too now.
            assert_eq!(r.read_message(&m1, now).unwrap_err(), Error::LowOrderKey);
            // The responder's ephemeral in message 2.
            let (ib, rb) = builders(Pattern::XX, Suite::AesGcmSha256, &ik, &rk, res, res);
            let mut i = ib.initiator(now).unwrap();
            let mut r = rb.responder(now).unwrap();
            r.read_message(&i.write_message(&[], now).unwrap(), now)
                .unwrap();
            let mut m2 = r.write_message(&[], now).unwrap();
            m2[..32].copy_from_slice(&bad);
            assert_eq!(i.read_message(&m2, now).unwrap_err(), Error::LowOrderKey);
        }
    }
}

/// A resolver for an attacker whose *static* public key is a low-order point.
struct EvilResolver([u8; 32]);

struct EvilDh {
    point: [u8; 32],
    inner: Box<dyn Dh>,
    is_static: bool,
}

impl Dh for EvilDh {
    fn name(&self) -> &'static str {
        "25519"
    }
    fn pub_len(&self) -> usize {
        32
    }
    fn priv_len(&self) -> usize {
        32
    }
    fn set(&mut self, privkey: &[u8]) {
        self.is_static = true;
        self.inner.set(privkey);
    }
    fn generate(&mut self, rng: &mut dyn Random) -> Result<(), snow::Error> {
        self.inner.generate(rng)
    }
    fn pubkey(&self) -> &[u8] {
        if self.is_static {
            &self.point
        } else {
            self.inner.pubkey()
        }
    }
    fn privkey(&self) -> &[u8] {
        self.inner.privkey()
    }
    fn dh(&self, pubkey: &[u8], out: &mut [u8]) -> Result<(), snow::Error> {
        if self.is_static {
            out[..32].fill(0);
            Ok(())
        } else {
            self.inner.dh(pubkey, out)
        }
    }
}

impl CryptoResolver for EvilResolver {
    fn resolve_rng(&self) -> Option<Box<dyn Random>> {
        DefaultResolver.resolve_rng()
    }
    fn resolve_dh(&self, c: &DHChoice) -> Option<Box<dyn Dh>> {
        Some(Box::new(EvilDh {
            point: self.0,
            inner: DefaultResolver.resolve_dh(c)?,
            is_static: false,
        }))
    }
    fn resolve_hash(&self, c: &HashChoice) -> Option<Box<dyn Hash>> {
        DefaultResolver.resolve_hash(c)
    }
    fn resolve_cipher(&self, c: &CipherChoice) -> Option<Box<dyn Cipher>> {
        DefaultResolver.resolve_cipher(c)
    }
}

#[test]
fn a_low_order_static_key_in_the_handshake_is_refused() {
    let now = Instant::now();
    let rk = Keypair::generate().unwrap();
    for bad in low_order() {
        for res in [Resolver::AwsLc, Resolver::SnowDefault] {
            let mut evil = snow::Builder::with_resolver(
                "Noise_XX_25519_ChaChaPoly_BLAKE2s".parse().unwrap(),
                Box::new(EvilResolver(bad)),
            )
            .local_private_key(&[7u8; 32])
            .unwrap()
            .build_initiator()
            .unwrap();
            let mut r = Builder::new(Pattern::XX, Suite::ChaChaPolyBlake2s)
                .resolver(res)
                .local(&rk)
                .responder(now)
                .unwrap();
            let mut buf = vec![0u8; 4096];
            let n = evil.write_message(&[], &mut buf).unwrap();
            r.read_message(&buf[..n], now).unwrap();
            let m2 = r.write_message(&[], now).unwrap();
            let mut scratch = vec![0u8; 4096];
            evil.read_message(&m2, &mut scratch).unwrap();
            let n = evil.write_message(&[], &mut buf).unwrap();
            assert_eq!(
                r.read_message(&buf[..n], now).unwrap_err(),
                Error::LowOrderKey,
                "{res:?} {}",
                hex::encode(bad)
            );
            assert!(r.into_transport().is_err(), "no transport after a refusal");
        }
    }
}

#[test]
fn wrong_and_unpinned_peers_are_refused() {
    let now = Instant::now();
    let (ik, rk) = keys();
    let other = Keypair::generate().unwrap();
    // IK to the wrong server key: the responder cannot decrypt.
    let mut i = Builder::new(Pattern::IK, Suite::ChaChaPolyBlake2s)
        .local(&ik)
        .remote(*other.public())
        .initiator(now)
        .unwrap();
    let mut r = Builder::new(Pattern::IK, Suite::ChaChaPolyBlake2s)
        .local(&rk)
        .responder(now)
        .unwrap();
    assert_eq!(
        r.read_message(&i.write_message(&[], now).unwrap(), now)
            .unwrap_err(),
        Error::Decrypt
    );
    // XX with a pinned server key: another server is refused.
    let mut i = Builder::new(Pattern::XX, Suite::ChaChaPolyBlake2s)
        .local(&ik)
        .remote(*other.public())
        .initiator(now)
        .unwrap();
    let mut r = Builder::new(Pattern::XX, Suite::ChaChaPolyBlake2s)
        .local(&rk)
        .responder(now)
        .unwrap();
    r.read_message(&i.write_message(&[], now).unwrap(), now)
        .unwrap();
    assert_eq!(
        i.read_message(&r.write_message(&[], now).unwrap(), now)
            .unwrap_err(),
        Error::WrongPeer
    );
    // Missing keys are caller errors, not silent downgrades.
    assert!(matches!(
        Builder::new(Pattern::IK, Suite::ChaChaPolyBlake2s)
            .local(&ik)
            .initiator(now),
        Err(Error::State(_))
    ));
    assert!(matches!(
        Builder::new(Pattern::XX, Suite::ChaChaPolyBlake2s).responder(now),
        Err(Error::State(_))
    ));
}

#[test]
fn oversized_handshakes_and_messages_are_refused() {
    let now = Instant::now();
    let (ik, rk) = keys();
    let (ib, rb) = builders(
        Pattern::IK,
        Suite::ChaChaPolyBlake2s,
        &ik,
        &rk,
        Resolver::AwsLc,
        Resolver::AwsLc,
    );
    let mut i = ib.initiator(now).unwrap();
    let mut r = rb.responder(now).unwrap();
    assert!(matches!(
        i.write_message(&vec![0; 5000], now),
        Err(Error::TooLarge { .. })
    ));
    assert!(matches!(
        r.read_message(&vec![1; 4097], now),
        Err(Error::TooLarge { len: 4097, .. })
    ));
    // Small message limit on the receiver: a larger message from the peer is refused.
    let limits = Limits {
        max_message: 100_000,
        ..Limits::default()
    };
    let (ib, rb) = builders(
        Pattern::NN,
        Suite::ChaChaPolyBlake2s,
        &ik,
        &rk,
        Resolver::AwsLc,
        Resolver::AwsLc,
    );
    let (mut i, mut r) = run(
        ib.initiator(now).unwrap(),
        rb.limits(limits).responder(now).unwrap(),
        now,
    )
    .unwrap();
    assert!(matches!(
        send(&mut i, &mut r, &vec![0; 150_000]),
        Err(Error::TooLarge {
            what: "message",
            ..
        })
    ));
    assert!(matches!(
        i.seal(&vec![0; 16 * 1024 * 1024 + 1], &mut Vec::new()),
        Err(Error::TooLarge { .. })
    ));
}

#[test]
fn tampering_and_replays_fail_the_session_for_good() {
    let now = Instant::now();
    let (ik, rk) = keys();
    let (ib, rb) = builders(
        Pattern::IK,
        Suite::AesGcmSha256,
        &ik,
        &rk,
        Resolver::AwsLc,
        Resolver::AwsLc,
    );
    let (mut i, mut r) = run(ib.initiator(now).unwrap(), rb.responder(now).unwrap(), now).unwrap();
    let mut wire = Vec::new();
    i.seal(b"one", &mut wire).unwrap();
    let first = wire[2..].to_vec();
    assert_eq!(r.open(&first).unwrap().unwrap(), b"one");
    // A replay of the same message is refused, and the session stays failed.
    assert_eq!(r.open(&first).unwrap_err(), Error::Decrypt);
    wire.clear();
    i.seal(b"two", &mut wire).unwrap();
    assert_eq!(r.open(&wire[2..]).unwrap_err(), Error::Decrypt, "sticky");
    // A flipped bit on a fresh session.
    let (ib, rb) = builders(
        Pattern::IK,
        Suite::ChaChaPolyBlake2s,
        &ik,
        &rk,
        Resolver::AwsLc,
        Resolver::SnowDefault,
    );
    let (mut i, mut r) = run(ib.initiator(now).unwrap(), rb.responder(now).unwrap(), now).unwrap();
    wire.clear();
    i.seal(b"data", &mut wire).unwrap();
    wire[5] ^= 1;
    assert_eq!(r.open(&wire[2..]).unwrap_err(), Error::Decrypt);
}

#[test]
fn a_slow_handshake_times_out() {
    let now = Instant::now();
    let (ik, rk) = keys();
    let limits = Limits {
        handshake_timeout: Duration::from_secs(30),
        ..Limits::default()
    };
    let (ib, rb) = builders(
        Pattern::IK,
        Suite::ChaChaPolyBlake2s,
        &ik,
        &rk,
        Resolver::AwsLc,
        Resolver::AwsLc,
    );
    let mut i = ib.limits(limits).initiator(now).unwrap();
    let mut r = rb.limits(limits).responder(now).unwrap();
    let m1 = i.write_message(&[], now).unwrap();
    let late = now + Duration::from_secs(31);
    assert_eq!(r.read_message(&m1, late).unwrap_err(), Error::Timeout);
}

#[test]
fn rekeying_keeps_both_sides_in_step_and_a_mismatch_is_caught() {
    let now = Instant::now();
    let (ik, rk) = keys();
    let limits = Limits {
        rekey_after: 3,
        ..Limits::default()
    };
    let (ib, rb) = builders(
        Pattern::IK,
        Suite::ChaChaPolyBlake2s,
        &ik,
        &rk,
        Resolver::AwsLc,
        Resolver::SnowDefault,
    );
    let (mut i, mut r) = run(
        ib.limits(limits).initiator(now).unwrap(),
        rb.limits(limits).responder(now).unwrap(),
        now,
    )
    .unwrap();
    for n in 0..10u8 {
        assert_eq!(send(&mut i, &mut r, &[n; 10]).unwrap(), [n; 10]);
        assert_eq!(send(&mut r, &mut i, &[n; 3]).unwrap(), [n; 3]);
    }
    let (ib, rb) = builders(
        Pattern::IK,
        Suite::ChaChaPolyBlake2s,
        &ik,
        &rk,
        Resolver::AwsLc,
        Resolver::AwsLc,
    );
    let (mut i, mut r) = run(
        ib.limits(limits).initiator(now).unwrap(),
        rb.responder(now).unwrap(),
        now,
    )
    .unwrap();
    for n in 0..3u8 {
        send(&mut i, &mut r, &[n]).unwrap();
    }
    assert_eq!(
        send(&mut i, &mut r, b"after rekey").unwrap_err(),
        Error::Decrypt
    );
}

#[test]
fn nn_attestations_bind_the_session_and_cannot_be_replayed() {
    let now = Instant::now();
    let (ik, rk) = keys();
    let device = Ed25519Signer::generate().unwrap();
    let session = || {
        let (ib, rb) = builders(
            Pattern::NN,
            Suite::ChaChaPolyBlake2s,
            &ik,
            &rk,
            Resolver::AwsLc,
            Resolver::AwsLc,
        );
        run(ib.initiator(now).unwrap(), rb.responder(now).unwrap(), now).unwrap()
    };
    let (mut i1, mut r1) = session();
    let sig = attestation::attest(&device, i1.handshake_hash());
    let got = send(&mut i1, &mut r1, &sig).unwrap();
    attestation::verify(&device.public_key(), r1.handshake_hash(), &got).unwrap();
    // Replayed into another session: refused.
    let (mut i2, mut r2) = session();
    let replayed = send(&mut i2, &mut r2, &sig).unwrap();
    assert_eq!(
        attestation::verify(&device.public_key(), r2.handshake_hash(), &replayed).unwrap_err(),
        Error::Attestation
    );
    // Another key: refused.
    let other = Ed25519Signer::generate().unwrap();
    assert!(attestation::verify(&other.public_key(), r1.handshake_hash(), &sig).is_err());
}

#[test]
fn the_hybrid_needs_the_right_ml_kem_key_as_well_as_the_right_x25519_key() {
    let now = Instant::now();
    let (ik, rk) = keys();
    for s in Suite::ALL {
        // Right keys: works, and the first payload arrives intact after the ciphertext.
        let (ib, rb) = builders(
            Pattern::IKHybrid,
            s,
            &ik,
            &rk,
            Resolver::AwsLc,
            Resolver::SnowDefault,
        );
        let mut i = ib.initiator(now).unwrap();
        let mut r = rb.responder(now).unwrap();
        let m1 = i.write_message(b"first", now).unwrap();
        assert!(m1.len() > 1088, "carries the ML-KEM ciphertext");
        assert_eq!(r.read_message(&m1, now).unwrap(), b"first");
        let m2 = r.write_message(b"second", now).unwrap();
        assert_eq!(i.read_message(&m2, now).unwrap(), b"second");
        let (mut ti, mut tr) = (i.into_transport().unwrap(), r.into_transport().unwrap());
        assert_eq!(send(&mut ti, &mut tr, b"pq").unwrap(), b"pq");
        // The responder holds another ML-KEM key: X25519 alone does not make a session.
        let other = Arc::new(MlKemSecret::generate().unwrap());
        let mut i = Builder::new(Pattern::IKHybrid, s)
            .local(&ik)
            .remote(*rk.public())
            .remote_kem(&kem().1)
            .initiator(now)
            .unwrap();
        let mut r = Builder::new(Pattern::IKHybrid, s)
            .local(&rk)
            .local_kem(other)
            .responder(now)
            .unwrap();
        r.read_message(&i.write_message(&[], now).unwrap(), now)
            .unwrap();
        let m2 = r.write_message(&[], now).unwrap();
        assert_eq!(i.read_message(&m2, now).unwrap_err(), Error::Decrypt);
    }
    // An ML-KEM key given for a classic pattern is refused, not silently ignored.
    assert!(matches!(
        Builder::new(Pattern::IK, Suite::ChaChaPolyBlake2s)
            .local(&rk)
            .local_kem(kem().0.clone())
            .responder(now),
        Err(Error::State(_))
    ));
    assert!(matches!(
        Builder::new(Pattern::IK, Suite::ChaChaPolyBlake2s)
            .local(&ik)
            .remote(*rk.public())
            .remote_kem(&kem().1)
            .initiator(now),
        Err(Error::State(_))
    ));
    // Missing or malformed ML-KEM keys are refused up front.
    assert!(matches!(
        Builder::new(Pattern::IKHybrid, Suite::ChaChaPolyBlake2s)
            .local(&ik)
            .remote(*rk.public())
            .initiator(now),
        Err(Error::State(_))
    ));
    assert!(matches!(
        Builder::new(Pattern::IKHybrid, Suite::ChaChaPolyBlake2s)
            .local(&ik)
            .remote(*rk.public())
            .remote_kem(&[1; 10])
            .initiator(now),
        Err(Error::Malformed(_))
    ));
    assert!(matches!(
        Builder::new(Pattern::IKHybrid, Suite::ChaChaPolyBlake2s)
            .local(&rk)
            .responder(now),
        Err(Error::State(_))
    ));
}

#[test]
fn keys_never_reach_debug_output() {
    let k = Keypair::generate().unwrap();
    let text = format!("{k:?}");
    assert!(!text.contains(&hex::encode(k.expose_private())));
    assert!(!text.contains(&hex::encode(&k.expose_private()[..4])));
    assert!(text.contains(&hex::encode(&k.public()[..8])));
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(24))]
    #[test]
    fn any_message_round_trips_through_the_framing(len in 0usize..140_000, seed in 0u8..255) {
        let now = Instant::now();
        let (ik, rk) = keys();
        let (ib, rb) = builders(Pattern::IK, Suite::ChaChaPolyBlake2s, &ik, &rk, Resolver::AwsLc, Resolver::AwsLc);
        let (mut i, mut r) = run(ib.initiator(now).unwrap(), rb.responder(now).unwrap(), now).unwrap();
        let msg: Vec<u8> = (0..=255u8).cycle().take(len).map(|n| n.wrapping_mul(seed)).collect();
        proptest::prop_assert_eq!(send(&mut i, &mut r, &msg).unwrap(), msg);
    }
}
