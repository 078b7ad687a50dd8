//! The constrained-device profile: RFC 7748, low-order keys, round trips in both
//! modes, golden frame vectors (`docs/vectors/device_frames.json`), every refusal,
//! EVT lines that let the server recompute keys but carry none, the RAM budget.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use fleetkey_device::frame::{self, MAX_FRAME};
use fleetkey_device::keys::{self, Mode};
use fleetkey_device::{Credentials, Device, Error, FrameKind, Receiver, Rng, Session, evt};

mod common;
use common::*;

#[test]
fn rfc7748_vectors() {
    let alice = arr32("77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a");
    let bob = arr32("5dab087e624a8a4b79e17f8b83800ee66f3bb1292618b6fd1c2f8b27ff88e0eb");
    assert_eq!(
        hex::encode(keys::public_key(&alice)),
        "8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a"
    );
    assert_eq!(
        hex::encode(keys::public_key(&bob)),
        "de9edb7d7b7dc1b4d35b61c2ece435373f8343c85b78674dadfc7e146f882b4f"
    );
    let k = keys::shared_secret(&alice, &keys::public_key(&bob)).unwrap();
    assert_eq!(
        hex::encode(k),
        "4a5d9d5ba4ce2de1728e3bf480350f25e07e21c947d19e3376f09b3c1e161742"
    );
    assert_eq!(
        k,
        keys::shared_secret(&bob, &keys::public_key(&alice)).unwrap()
    );
    // §5.2, 1,000 iterations.
    let mut k = [0u8; 32];
    k[0] = 9;
    let mut u = k;
    for i in 1..=1000 {
        let out = x25519(k, u);
        u = k;
        k = out;
        if i == 1 {
            assert_eq!(
                hex::encode(k),
                "422c8e7a6227d7bca1350b3e2bb7279f7897b87bb6854b783c60e80311ae3079"
            );
        }
    }
    assert_eq!(
        hex::encode(k),
        "684cf59ba83309552800ef566f2f4d3c1c3887c49360e3875f2eb94d99532c51"
    );
}

/// The raw function (the iterated vector reaches intermediate values whose
/// product is not checked for zero).
fn x25519(k: [u8; 32], u: [u8; 32]) -> [u8; 32] {
    keys::shared_secret(&k, &u).unwrap()
}

const LOW_ORDER: [&str; 7] = [
    "0000000000000000000000000000000000000000000000000000000000000000",
    "0100000000000000000000000000000000000000000000000000000000000000",
    "e0eb7a7c3b41b8ae1656e3faf19fc46ada098deb9c32b1fd866205165f49b800",
    "5f9c95bca3508c24b1d0b1559c83ef5b04445cc4581c8e86d8224eddd09f1157",
    "ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
    "edffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
    "eeffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
];

#[test]
fn every_low_order_key_is_refused_on_both_sides() {
    let mut n = 0;
    for p in LOW_ORDER {
        for high in [false, true] {
            let mut k = arr32(p);
            if high {
                k[31] |= 0x80;
            }
            n += 1;
            assert_eq!(
                keys::shared_secret(&DEVICE_SCALAR, &k),
                Err(Error::LowOrderKey)
            );
            // A device given a low-order server key gets no session.
            let mut d = Device::x25519(ID, DEVICE_SCALAR, k, PSK, 0);
            assert_eq!(
                d.boot(&mut TestRng(0), &mut Flash::default()).unwrap_err(),
                Error::LowOrderKey
            );
            // A server holding a low-order device key refuses its frames.
            let mut r = Receiver::new(
                ID,
                Credentials::X25519Psk {
                    device_public: k,
                    psk: PSK,
                },
                0,
            );
            let mut dev = device(0);
            let s = boot(&mut dev, 1);
            let mut buf = [0u8; 128];
            let len = s.start_frame(b"", &mut buf).unwrap();
            assert_eq!(
                r.accept(&SERVER_SCALAR, &mut buf[..len]).unwrap_err(),
                Error::LowOrderKey
            );
        }
    }
    assert_eq!(n, 14);
}

#[test]
fn frames_round_trip_and_every_refusal_holds() {
    let mut d = device(0);
    let mut flash = Flash::default();
    let mut s = d.boot(&mut TestRng(7), &mut flash).unwrap();
    assert_eq!((flash.boot, s.boot(), d.boot_counter()), (Some(1), 1, 1));
    let mut r = receiver(0);

    // Data before the session start: no session.
    let mut early = [0u8; 64];
    let n = s.clone().data_frame(b"early", &mut early).unwrap();
    assert_eq!(
        r.accept(&SERVER_SCALAR, &mut early[..n]).unwrap_err(),
        Error::NoSession
    );

    let mut start = [0u8; 64];
    let n = s.start_frame(b"fw=1.2", &mut start).unwrap();
    let start = start[..n].to_vec();
    let mut first = start.clone();
    let o = r.accept(&SERVER_SCALAR, &mut first).unwrap();
    assert_eq!(
        (o.header.kind, o.payload),
        (FrameKind::SessionStart, &b"fw=1.2"[..])
    );
    // The same start again: an old boot.
    assert_eq!(
        r.accept(&SERVER_SCALAR, &mut start.clone()).unwrap_err(),
        Error::OldBoot
    );

    let mut frames = Vec::new();
    for i in 0..3u8 {
        let mut f = vec![0u8; 64];
        let n = s.data_frame(&[i; 10], &mut f).unwrap();
        f.truncate(n);
        frames.push(f);
    }
    let mut f0 = frames[0].clone();
    let o = r.accept(&SERVER_SCALAR, &mut f0).unwrap();
    assert_eq!((o.header.counter, o.payload), (1, &[0u8; 10][..]));
    // Skipping ahead is fine (UDP loses datagrams); going back never is.
    assert_eq!(
        r.accept(&SERVER_SCALAR, &mut frames[2].clone())
            .unwrap()
            .header
            .counter,
        3
    );
    assert_eq!(
        r.accept(&SERVER_SCALAR, &mut frames[1].clone())
            .unwrap_err(),
        Error::Replay
    );
    assert_eq!(
        r.accept(&SERVER_SCALAR, &mut frames[2].clone())
            .unwrap_err(),
        Error::Replay
    );

    // Server to device, and a replay of it.
    let mut down = [0u8; 64];
    let n = r.seal_down(1, b"ack", &mut down).unwrap();
    assert_eq!(
        s.open_down(&mut down[..n].to_vec()).unwrap(),
        fleetkey_device::Downlink::Data(b"ack")
    );
    assert_eq!(
        s.open_down(&mut down[..n].to_vec()).unwrap_err(),
        Error::Replay
    );

    // A reboot: new salt, new keys; the old boot's frames are refused.
    let mut s2 = d.boot(&mut TestRng(99), &mut flash).unwrap();
    assert_eq!(s2.boot(), 2);
    let mut st2 = [0u8; 64];
    let n2 = s2.start_frame(b"", &mut st2).unwrap();
    r.accept(&SERVER_SCALAR, &mut st2[..n2]).unwrap();
    let mut f = [0u8; 64];
    let n = s2.data_frame(&[0; 10], &mut f).unwrap();
    assert_ne!(
        &f[19..n],
        &frames[0][19..],
        "no keystream reuse across boots"
    );
    assert_eq!(
        r.accept(&SERVER_SCALAR, &mut frames[0].clone())
            .unwrap_err(),
        Error::NoSession
    );
    assert_eq!(
        r.accept(&SERVER_SCALAR, &mut start.clone()).unwrap_err(),
        Error::OldBoot
    );
    // After a server restart that remembers the boot, old boots stay refused.
    let mut restarted = receiver(2);
    assert_eq!(
        restarted
            .accept(&SERVER_SCALAR, &mut st2[..n2].to_vec())
            .unwrap_err(),
        Error::OldBoot
    );

    // Another device's id, another mode, the wrong keys.
    let mut other = Receiver::new(
        [9; 8],
        Credentials::X25519Psk {
            device_public: keys::public_key(&DEVICE_SCALAR),
            psk: PSK,
        },
        0,
    );
    assert_eq!(
        other
            .accept(&SERVER_SCALAR, &mut start.clone())
            .unwrap_err(),
        Error::WrongDevice
    );
    let mut lab = Receiver::new(ID, Credentials::StaticKey { factory_key: PSK }, 0);
    assert_eq!(
        lab.accept(&SERVER_SCALAR, &mut start.clone()).unwrap_err(),
        Error::WrongMode
    );
    let mut wrong_psk = Receiver::new(
        ID,
        Credentials::X25519Psk {
            device_public: keys::public_key(&DEVICE_SCALAR),
            psk: [0x34; 32],
        },
        0,
    );
    assert_eq!(
        wrong_psk
            .accept(&SERVER_SCALAR, &mut start.clone())
            .unwrap_err(),
        Error::Forged
    );
    assert_eq!(
        receiver(0)
            .accept(&[0x23; 32], &mut start.clone())
            .unwrap_err(),
        Error::Forged
    );

    // Truncated, oversized, unknown version.
    for bad in [&start[..10], &start[..start.len() - 9]] {
        assert!(
            receiver(0)
                .accept(&SERVER_SCALAR, &mut bad.to_vec())
                .is_err()
        );
    }
    assert_eq!(
        receiver(0)
            .accept(&SERVER_SCALAR, &mut vec![1u8; MAX_FRAME + 1])
            .unwrap_err(),
        Error::Malformed
    );
    let mut v2 = start.clone();
    v2[0] = 2;
    assert_eq!(
        receiver(0).accept(&SERVER_SCALAR, &mut v2).unwrap_err(),
        Error::Version
    );
    assert_eq!(
        s.data_frame(&[0; MAX_FRAME], &mut [0u8; 2 * MAX_FRAME])
            .unwrap_err(),
        Error::Malformed
    );
}

#[test]
fn the_boot_counter_is_persisted_first() {
    let mut d = device(41);
    let mut flash = Flash {
        fail: true,
        ..Flash::default()
    };
    assert_eq!(
        d.boot(&mut TestRng(0), &mut flash).unwrap_err(),
        Error::Storage
    );
    assert_eq!(d.boot_counter(), 41, "no session, nothing used");
    struct BadRng;
    impl Rng for BadRng {
        fn fill(&mut self, _: &mut [u8]) -> Result<(), Error> {
            Err(Error::Rng)
        }
    }
    assert_eq!(
        d.boot(&mut BadRng, &mut Flash::default()).unwrap_err(),
        Error::Rng
    );
    let mut full = device(u32::MAX);
    assert_eq!(
        full.boot(&mut TestRng(0), &mut Flash::default())
            .unwrap_err(),
        Error::Exhausted
    );
}

#[test]
fn static_key_mode_derives_fresh_keys_every_boot() {
    let key = [0x5c; 32];
    let mut d = Device::static_key(ID, key, 0);
    let mut r = Receiver::new(ID, Credentials::StaticKey { factory_key: key }, 0);
    let mut last = Vec::new();
    for seed in [1u8, 2] {
        let mut s = boot(&mut d, seed);
        let mut buf = [0u8; 128];
        let n = s.start_frame(b"", &mut buf).unwrap();
        assert_eq!(buf[2], Mode::StaticKey.id());
        r.accept(&[0; 32], &mut buf[..n]).unwrap();
        let n = s.data_frame(b"same plaintext", &mut buf).unwrap();
        let ct = buf[19..n].to_vec();
        assert_ne!(ct, last, "per-boot keys: no keystream reuse");
        last = ct;
        assert_eq!(
            r.accept(&[0; 32], &mut buf[..n]).unwrap().payload,
            b"same plaintext"
        );
    }
}

#[test]
fn evt_lines_let_the_server_recompute_keys_and_hold_no_secrets() {
    let mut d = device(6);
    let mut s = boot(&mut d, 0x40);
    let mut line = String::new();
    evt::session_start(&mut line, &s).unwrap();
    assert_eq!(
        line,
        "EVT,SESSION,START,dev=d001020304050607,boot=7,salt=404142434445464748494a4b4c4d4e4f,mode=x25519"
    );
    let mut sent = String::new();
    evt::frame_sent(&mut sent, &s, 1, 42).unwrap();
    assert_eq!(
        sent,
        "EVT,FRAME,SENT,dev=d001020304050607,boot=7,ctr=1,len=42"
    );
    // From the line and its own key, the server rebuilds the keys and opens a frame
    // without having seen the session start.
    let ev = evt::parse_session_start(&line).unwrap();
    let r = receiver(0);
    let keys = r.derive(&SERVER_SCALAR, &ev.salt, ev.boot).unwrap();
    let mut f = [0u8; 64];
    let n = s.data_frame(b"audit me", &mut f).unwrap();
    let (_, body) = frame::open(&keys.up, frame::UP, &mut f[..n]).unwrap();
    assert_eq!(body, b"audit me");
    for secret in [
        hex::encode(PSK),
        hex::encode(DEVICE_SCALAR),
        hex::encode(keys.up),
    ] {
        assert!(!line.contains(&secret[..16]) && !sent.contains(&secret[..16]));
    }
    for bad in [
        "EVT,SESSION,START,dev=d0010203,boot=7,salt=00,mode=x25519",
        "EVT,SESSION,START,dev=d001020304050607,boot=x,salt=404142434445464748494a4b4c4d4e4f,mode=x25519",
        "EVT,SESSION,STOP",
        "",
    ] {
        assert_eq!(evt::parse_session_start(bad), None);
    }
    let dbg = format!("{d:?} {s:?} {keys:?} {r:?}").to_lowercase();
    assert!(
        !dbg.contains("51, 51") && !dbg.contains("17, 17") && !dbg.contains("3333"),
        "{dbg}"
    );
}

#[test]
fn static_state_plus_session_fit_in_256_bytes() {
    let total = core::mem::size_of::<Device>() + core::mem::size_of::<Session>();
    assert!(total <= 256, "{total} bytes");
}

#[test]
fn golden_frame_vectors() {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../docs/vectors/device_frames.json"
    );
    let mut d = device(0);
    let mut s = boot(&mut d, 0xa0);
    let mut start = [0u8; 64];
    let ns = s.start_frame(b"", &mut start).unwrap();
    let mut data = [0u8; 64];
    let nd = s.data_frame(b"{\"t\":21.5}", &mut data).unwrap();
    let mut lab = Device::static_key(ID, [0x5c; 32], 9);
    let ls = boot(&mut lab, 0xb0);
    let mut lab_start = [0u8; 64];
    let nl = ls.start_frame(b"lab", &mut lab_start).unwrap();
    let doc = serde_json::json!({
        "description": "fleetkey constrained-device frames (docs/protocol.md#the-constrained-device-profile); generated by crates/fleetkey-device/tests/device.rs",
        "x25519_psk": {
            "device_id": hex::encode(ID),
            "device_scalar": hex::encode(DEVICE_SCALAR),
            "server_scalar": hex::encode(SERVER_SCALAR),
            "server_public": hex::encode(keys::public_key(&SERVER_SCALAR)),
            "psk": hex::encode(PSK),
            "boot": 1,
            "salt": hex::encode(s.salt()),
            "session_start": hex::encode(&start[..ns]),
            "data_payload": "{\"t\":21.5}",
            "data_frame_counter_1": hex::encode(&data[..nd]),
        },
        "static_key": {
            "device_id": hex::encode(ID),
            "factory_key": hex::encode([0x5c; 32]),
            "boot": 10,
            "salt": hex::encode(ls.salt()),
            "session_start_payload": "lab",
            "session_start": hex::encode(&lab_start[..nl]),
        }
    });
    if std::env::var_os("FLEETKEY_WRITE_VECTORS").is_some() {
        std::fs::write(path, serde_json::to_string_pretty(&doc).unwrap() + "\n").unwrap();
    }
    let golden: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    assert_eq!(golden, doc, "the frame format or key derivation changed");
    // And the golden frames open with the server's side.
    let mut f = hex::decode(golden["x25519_psk"]["session_start"].as_str().unwrap()).unwrap();
    let mut r = receiver(0);
    r.accept(&SERVER_SCALAR, &mut f).unwrap();
    let mut f = hex::decode(
        golden["x25519_psk"]["data_frame_counter_1"]
            .as_str()
            .unwrap(),
    )
    .unwrap();
    assert_eq!(
        r.accept(&SERVER_SCALAR, &mut f).unwrap().payload,
        b"{\"t\":21.5}"
    );
}

proptest::proptest! {
    #[test]
    fn any_bit_flip_or_garbage_is_refused(bit in 0usize..(8 * 40), garbage in proptest::collection::vec(proptest::num::u8::ANY, 0..300)) {
        let mut d = device(0);
        let mut s = boot(&mut d, 3);
        let mut r = receiver(0);
        let mut st = [0u8; 64];
        let n = s.start_frame(b"", &mut st).unwrap();
        let mut flipped = st[..n].to_vec();
        let b = bit % (8 * n);
        flipped[b / 8] ^= 1 << (b % 8);
        proptest::prop_assert!(r.accept(&SERVER_SCALAR, &mut flipped).is_err());
        r.accept(&SERVER_SCALAR, &mut st[..n]).unwrap();
        let mut f = [0u8; 64];
        let n = s.data_frame(b"0123456789", &mut f).unwrap();
        let mut flipped = f[..n].to_vec();
        let b = bit % (8 * n);
        flipped[b / 8] ^= 1 << (b % 8);
        proptest::prop_assert!(r.accept(&SERVER_SCALAR, &mut flipped).is_err());
        // The unmodified frame still verifies (a refusal changed nothing), once.
        proptest::prop_assert!(r.accept(&SERVER_SCALAR, &mut f[..n].to_vec()).is_ok());
        proptest::prop_assert_eq!(r.accept(&SERVER_SCALAR, &mut f[..n].to_vec()).unwrap_err(), Error::Replay);
        let mut g = garbage.clone();
        proptest::prop_assert!(r.accept(&SERVER_SCALAR, &mut g).is_err());
    }
}
