//! Key records (`docs/formats.md#key-records`): round trips under both directory
//! key types and with two-step (remote) signing; every refusal a client relies on:
//! tampering, wrong key, algorithm confusion, expiry, not yet valid, staleness,
//! rollback, revocation; the parser never panics.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use fleetkey_crypto::Error;
use fleetkey_crypto::composite::CompositeSigner;
use fleetkey_crypto::credential::DeviceKeys;
use fleetkey_crypto::cwt::{Issuer, IssuerPublicKey, SignatureAlg};
use fleetkey_crypto::ed25519::Ed25519Signer;
use fleetkey_crypto::record::{self, DEFAULT_MAX_AGE_SECS, Freshness, IdentityKind, KeyRecord};

const T: i64 = 1_800_000_000;

fn record(sequence: u64, revoked: bool) -> KeyRecord {
    KeyRecord {
        identity: "dev_0123456789abcdef".into(),
        kind: IdentityKind::Device,
        keys: DeviceKeys {
            x25519: [9; 32],
            ed25519: [7; 32],
            ml_kem_768: Some(vec![3; fleetkey_crypto::mlkem::ENCAPSULATION_KEY_LEN]),
            ml_dsa_65: None,
        },
        issued_at: T,
        expires_at: T + 90 * 86_400,
        sequence,
        revoked,
    }
}

fn fresh(now: i64, last: Option<u64>) -> Freshness {
    Freshness {
        now,
        max_age_secs: DEFAULT_MAX_AGE_SECS,
        last_sequence: last,
    }
}

#[test]
fn records_round_trip_under_both_key_types_and_with_remote_signing() {
    let ed = Ed25519Signer::generate().unwrap();
    let token = record::sign(&record(3, false), Issuer::Ed25519(&ed), b"dir").unwrap();
    let pk = ed.public_key();
    assert_eq!(
        record::verify(
            &token,
            IssuerPublicKey::Ed25519(&pk),
            fresh(T + 10, Some(2))
        )
        .unwrap(),
        record(3, false)
    );
    // The same sequence again is fine (a re-fetch).
    record::verify(
        &token,
        IssuerPublicKey::Ed25519(&pk),
        fresh(T + 10, Some(3)),
    )
    .unwrap();
    let comp = CompositeSigner::generate().unwrap();
    let u = record::unsigned(&record(4, false), SignatureAlg::Composite, b"dir").unwrap();
    let sig = comp.sign(&u.to_be_signed()).unwrap();
    let token = u.finish(sig, record::MAX_LEN, "key record").unwrap();
    let cpk = comp.public_key();
    assert_eq!(
        record::verify(&token, IssuerPublicKey::Composite(&cpk), fresh(T, None)).unwrap(),
        record(4, false)
    );
    // Algorithm confusion: a composite record is not checked as Ed25519, and back.
    assert_eq!(
        record::verify(&token, IssuerPublicKey::Ed25519(&pk), fresh(T, None)).unwrap_err(),
        Error::BadSignature
    );
}

#[test]
fn tampered_records_and_other_keys_are_refused() {
    let ed = Ed25519Signer::generate().unwrap();
    let pk = ed.public_key();
    let token = record::sign(&record(1, false), Issuer::Ed25519(&ed), b"dir").unwrap();
    for i in (0..token.len()).step_by(7) {
        let mut t = token.clone();
        t[i] ^= 0x01;
        assert!(
            record::verify(&t, IssuerPublicKey::Ed25519(&pk), fresh(T, None)).is_err(),
            "byte {i}"
        );
    }
    let other = Ed25519Signer::generate().unwrap().public_key();
    assert_eq!(
        record::verify(&token, IssuerPublicKey::Ed25519(&other), fresh(T, None)).unwrap_err(),
        Error::BadSignature
    );
}

#[test]
fn stale_expired_early_rolled_back_and_revoked_records_are_refused() {
    let ed = Ed25519Signer::generate().unwrap();
    let pk = ed.public_key();
    let key = IssuerPublicKey::Ed25519(&pk);
    let t5 = record::sign(&record(5, false), Issuer::Ed25519(&ed), b"dir").unwrap();
    assert_eq!(
        record::verify(&t5, key, fresh(T - 1, None)).unwrap_err(),
        Error::NotYetValid
    );
    assert_eq!(
        record::verify(&t5, key, fresh(T + 90 * 86_400, None)).unwrap_err(),
        Error::Expired
    );
    assert_eq!(
        record::verify(&t5, key, fresh(T + DEFAULT_MAX_AGE_SECS + 1, None)).unwrap_err(),
        Error::Stale
    );
    assert_eq!(
        record::verify(&t5, key, fresh(T, Some(6))).unwrap_err(),
        Error::Rollback
    );
    // A revocation wins, whatever its age; an older record after it is a rollback.
    let revoked = record::sign(&record(6, true), Issuer::Ed25519(&ed), b"dir").unwrap();
    assert_eq!(
        record::verify(&revoked, key, fresh(T + DEFAULT_MAX_AGE_SECS + 1, Some(5))).unwrap_err(),
        Error::RecordRevoked(6)
    );
    assert_eq!(
        record::verify(&t5, key, fresh(T, Some(6))).unwrap_err(),
        Error::Rollback
    );
    assert_eq!(record::peek(&revoked).unwrap().sequence, 6);
}

proptest::proptest! {
    #[test]
    fn the_parser_never_panics(data in proptest::collection::vec(proptest::num::u8::ANY, 0..4096)) {
        let _ = record::peek(&data);
        proptest::prop_assert!(record::verify(&data, IssuerPublicKey::Ed25519(&[7; 32]), fresh(T, None)).is_err());
    }
}
