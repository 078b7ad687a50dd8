//! The record cache: what a device accepts as the server's keys, and every refusal.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use fleetkey_client::{Error, RecordCache, SessionState};
use fleetkey_crypto::credential::DeviceKeys;
use fleetkey_crypto::cwt::Issuer;
use fleetkey_crypto::ed25519::Ed25519Signer;
use fleetkey_crypto::record::{self, IdentityKind, KeyRecord};

const T0: i64 = 1_800_000_000;
const DAY: i64 = 86_400;

fn rec(seq: u64, issued_at: i64, revoked: bool, x: u8) -> KeyRecord {
    KeyRecord {
        identity: "fleetkey-server".into(),
        kind: IdentityKind::Service,
        keys: DeviceKeys {
            x25519: [x; 32],
            ed25519: [1; 32],
            ml_kem_768: None,
            ml_dsa_65: None,
        },
        issued_at,
        expires_at: issued_at + 30 * DAY,
        sequence: seq,
        revoked,
    }
}

fn signed(dir: &Ed25519Signer, r: &KeyRecord) -> Vec<u8> {
    record::sign(r, Issuer::Ed25519(dir), b"fleetkey-directory").unwrap()
}

fn refused(e: Error) -> fleetkey_crypto::Error {
    match e {
        Error::Record(e) => e,
        other => panic!("expected a record refusal, got {other:?}"),
    }
}

#[test]
fn records_are_verified_rechecked_and_never_roll_back() {
    let dir = Ed25519Signer::generate().unwrap();
    let mut cache = RecordCache::new(dir.public_key().to_vec()).with_max_age(10 * DAY);
    assert!(matches!(
        cache.get("fleetkey-server", T0),
        Err(Error::NoRecord(_))
    ));
    let r2 = signed(&dir, &rec(2, T0, false, 7));
    assert_eq!(cache.insert(&r2, T0).unwrap().keys.x25519, [7; 32]);
    // The same record again is fine; an older one is a rollback.
    cache.insert(&r2, T0 + 1).unwrap();
    let r1 = signed(&dir, &rec(1, T0, false, 9));
    assert!(matches!(
        refused(cache.insert(&r1, T0).unwrap_err()),
        fleetkey_crypto::Error::Rollback
    ));
    assert_eq!(
        cache.get("fleetkey-server", T0).unwrap().keys.x25519,
        [7; 32]
    );
    // Another signer's record is refused, and does not replace the cached one.
    let mallory = Ed25519Signer::generate().unwrap();
    assert!(
        cache
            .insert(&signed(&mallory, &rec(5, T0, false, 6)), T0)
            .is_err()
    );
    // Tampered bytes are refused.
    let mut bad = r2.clone();
    let n = bad.len();
    bad[n - 1] ^= 1;
    assert!(cache.insert(&bad, T0).is_err());
    // On use the cache re-checks age and expiry.
    assert!(matches!(
        refused(cache.get("fleetkey-server", T0 + 11 * DAY).unwrap_err()),
        fleetkey_crypto::Error::Stale
    ));
    let mut lenient = RecordCache::new(dir.public_key().to_vec()).with_max_age(90 * DAY);
    lenient.insert(&r2, T0).unwrap();
    assert!(matches!(
        refused(lenient.get("fleetkey-server", T0 + 31 * DAY).unwrap_err()),
        fleetkey_crypto::Error::Expired
    ));
    // A revocation wins over the cached record and is remembered.
    let r3 = signed(&dir, &rec(3, T0 + 5, true, 7));
    assert!(matches!(
        refused(cache.insert(&r3, T0 + 5).unwrap_err()),
        fleetkey_crypto::Error::RecordRevoked(3)
    ));
    assert!(matches!(
        refused(cache.get("fleetkey-server", T0 + 5).unwrap_err()),
        fleetkey_crypto::Error::RecordRevoked(3)
    ));
    // Across a restart: the sequences persist, so the old good record is a rollback.
    let tmp = tempfile::TempDir::new().unwrap();
    let path = tmp.path().join("state.json");
    let state = SessionState {
        record_sequences: cache.sequences().clone(),
        ..Default::default()
    };
    state.save(&path).unwrap();
    let state = SessionState::load(&path).unwrap();
    let mut after =
        RecordCache::new(dir.public_key().to_vec()).with_sequences(state.record_sequences);
    assert!(matches!(
        refused(after.insert(&r2, T0 + 6).unwrap_err()),
        fleetkey_crypto::Error::Rollback
    ));
    let r4 = signed(&dir, &rec(4, T0 + 7, false, 8));
    assert_eq!(after.insert(&r4, T0 + 7).unwrap().keys.x25519, [8; 32]);
    // Garbage is a clear error, never a panic.
    for junk in [&b""[..], b"\xd2\x84", &[0xff; 300]] {
        assert!(after.insert(junk, T0).is_err());
    }
}

#[test]
fn debug_output_shows_no_keys() {
    let cache = RecordCache::new(vec![0xab; 32]);
    let s = format!("{cache:?}");
    assert!(!s.contains("171"), "{s}");
    assert!(!s.to_lowercase().contains("abab"), "{s}");
}
