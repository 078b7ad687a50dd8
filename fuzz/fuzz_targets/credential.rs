//! The device credential parser on arbitrary bytes: never panics, and never
//! verifies without the issuer's key.
#![no_main]

use fleetkey_crypto::credential::{self, IssuerPublicKey};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = credential::peek(data);
    assert!(credential::verify(data, IssuerPublicKey::Ed25519(&[7u8; 32]), 1_800_000_000).is_err());
});
