//! Device credentials (CWT in COSE_Sign1): round trips with both issuer key types,
//! every refusal (tampered, wrong key, algorithm confusion, expired, not yet valid,
//! oversized, malformed, unknown claims), a golden vector, and a parser property.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use fleetkey_crypto::{
    Error,
    composite::CompositeSigner,
    credential::{self, Claims, DeviceKeys, Issuer, IssuerPublicKey, Role},
    ed25519::Ed25519Signer,
    mldsa::MlDsaSigner,
    secret::SecretBytes,
};
use proptest::prelude::*;

fn claims() -> Claims {
    Claims {
        issuer: "fleetkey:acme-thermostats".into(),
        device_id: "dev_0123456789abcdef".into(),
        fleet: "acme-thermostats".into(),
        hardware_id: "chipuid:00112233445566778899aabb".into(),
        role: Role::Birth,
        keys: DeviceKeys {
            x25519: [9; 32],
            ed25519: [7; 32],
            ml_kem_768: None,
            ml_dsa_65: None,
        },
        issued_at: 1_800_000_000,
        expires_at: 1_800_000_000 + 365 * 86_400,
        credential_id: [0xC7; 16],
    }
}

fn ed_issuer() -> Ed25519Signer {
    Ed25519Signer::from_seed(SecretBytes::new([0x42; 32])).unwrap()
}

#[test]
fn ed25519_round_trip_and_refusals() {
    let s = ed_issuer();
    let c = claims();
    let tok = credential::issue(&c, Issuer::Ed25519(&s), b"fleet-key-1").unwrap();
    let pk = s.public_key();
    let now = c.issued_at + 10;
    assert_eq!(
        credential::verify(&tok, IssuerPublicKey::Ed25519(&pk), now).unwrap(),
        c
    );
    assert_eq!(credential::algorithm_name(&tok), Some("EdDSA"));
    let (kid, peeked) = credential::peek(&tok).unwrap();
    assert_eq!((kid.as_slice(), peeked), (&b"fleet-key-1"[..], c.clone()));
    // Any byte changed: refused (signature, structure or claims).
    for i in 0..tok.len() {
        let mut bad = tok.clone();
        bad[i] ^= 0x01;
        assert!(
            credential::verify(&bad, IssuerPublicKey::Ed25519(&pk), now).is_err(),
            "flip at {i}"
        );
    }
    let other = Ed25519Signer::from_seed(SecretBytes::new([0x43; 32]))
        .unwrap()
        .public_key();
    assert_eq!(
        credential::verify(&tok, IssuerPublicKey::Ed25519(&other), now),
        Err(Error::BadSignature)
    );
    assert_eq!(
        credential::verify(&tok, IssuerPublicKey::Ed25519(&pk), c.expires_at),
        Err(Error::Expired)
    );
    assert_eq!(
        credential::verify(&tok, IssuerPublicKey::Ed25519(&pk), c.issued_at - 1),
        Err(Error::NotYetValid)
    );
    for cut in [0, 1, tok.len() / 2, tok.len() - 1] {
        assert!(credential::verify(&tok[..cut], IssuerPublicKey::Ed25519(&pk), now).is_err());
    }
    assert!(matches!(
        credential::verify(
            &vec![0u8; credential::MAX_LEN + 1],
            IssuerPublicKey::Ed25519(&pk),
            now
        ),
        Err(Error::TooLarge(_))
    ));
}

#[test]
fn composite_round_trip_with_post_quantum_device_keys() {
    let s = CompositeSigner::generate().unwrap();
    let mut c = claims();
    c.role = Role::Operational;
    c.keys.ml_kem_768 = Some(vec![1; 1184]);
    c.keys.ml_dsa_65 = Some(MlDsaSigner::generate().unwrap().public_key());
    let tok = credential::issue(&c, Issuer::Composite(&s), b"k").unwrap();
    assert!(tok.len() < credential::MAX_LEN);
    let pk = s.public_key();
    assert_eq!(
        credential::verify(&tok, IssuerPublicKey::Composite(&pk), c.issued_at).unwrap(),
        c
    );
    assert_eq!(credential::algorithm_name(&tok), Some("Ed25519+ML-DSA-65"));
    // Algorithm confusion is refused both ways.
    let ed = ed_issuer();
    let ed_tok = credential::issue(&c, Issuer::Ed25519(&ed), b"k").unwrap();
    assert_eq!(
        credential::verify(&ed_tok, IssuerPublicKey::Composite(&pk), c.issued_at),
        Err(Error::BadSignature)
    );
    assert_eq!(
        credential::verify(&tok, IssuerPublicKey::Ed25519(&pk[..32]), c.issued_at),
        Err(Error::BadSignature)
    );
    // Tampering in the signature or payload.
    for i in (0..tok.len()).step_by(97) {
        let mut bad = tok.clone();
        bad[i] ^= 0x20;
        assert!(
            credential::verify(&bad, IssuerPublicKey::Composite(&pk), c.issued_at).is_err(),
            "flip at {i}"
        );
    }
}

#[test]
fn wrong_key_lengths_in_claims_are_refused_at_issue_and_parse() {
    let s = ed_issuer();
    let mut c = claims();
    c.keys.ml_kem_768 = Some(vec![1; 100]);
    let tok = credential::issue(&c, Issuer::Ed25519(&s), b"k").unwrap();
    assert!(matches!(
        credential::verify(&tok, IssuerPublicKey::Ed25519(&s.public_key()), c.issued_at),
        Err(Error::Malformed(_))
    ));
}

const VECTOR: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../docs/vectors/credential.json"
);

#[test]
#[ignore = "writes docs/vectors/credential.json"]
fn regenerate_credential_vector() {
    let s = ed_issuer();
    let tok = credential::issue(&claims(), Issuer::Ed25519(&s), b"fleet-key-1").unwrap();
    let v = serde_json::json!({
        "format": "fleetkey device credential v1 (CWT in COSE_Sign1, EdDSA)",
        "spec": "docs/formats.md#device-credentials",
        "issuer_ed25519_seed": hex::encode([0x42u8; 32]),
        "issuer_public_key": hex::encode(s.public_key()),
        "kid": hex::encode(b"fleet-key-1"),
        "verify_at": 1_800_000_010,
        "credential": hex::encode(&tok),
    });
    std::fs::write(VECTOR, serde_json::to_string_pretty(&v).unwrap() + "\n").unwrap();
}

#[test]
fn golden_vector_reissues_byte_for_byte_and_verifies() {
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(VECTOR).unwrap()).unwrap();
    let tok = hex::decode(v["credential"].as_str().unwrap()).unwrap();
    let pk = hex::decode(v["issuer_public_key"].as_str().unwrap()).unwrap();
    let c = credential::verify(
        &tok,
        IssuerPublicKey::Ed25519(&pk),
        v["verify_at"].as_i64().unwrap(),
    )
    .unwrap();
    assert_eq!(c, claims());
    // Ed25519 is deterministic, so issuing again gives the same bytes.
    assert_eq!(
        credential::issue(&claims(), Issuer::Ed25519(&ed_issuer()), b"fleet-key-1").unwrap(),
        tok
    );
}

proptest! {
    #[test]
    fn prop_parser_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..2000)) {
        let _ = credential::peek(&bytes);
        let mut tagged = vec![0xd2, 0x84];
        tagged.extend_from_slice(&bytes);
        let _ = credential::peek(&tagged);
    }
}
