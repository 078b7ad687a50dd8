//! The Vault Transit door's readers on arbitrary bytes: a request body read as
//! Transit parameters (strings standing for numbers, booleans, durations,
//! base64, `batch_input`) and `vault:v<N>:` ciphertexts, signatures and HMACs
//! are read or refused with an error, never a panic, and a ciphertext is only
//! accepted when the version it shows is the envelope's.
#![no_main]

use fleetkey_server::api::transit::{ciphertext, params::Params};
use libfuzzer_sys::fuzz_target;

fn read_all(p: &mut Params) {
    let _ = p.str("type");
    let _ = p.b64("plaintext");
    let _ = p.b64("associated_data");
    let _ = p.int("key_version");
    let _ = p.int_in("bits", 128..=512);
    let _ = p.bool("deletion_allowed");
    let _ = p.duration("auto_rotate_period");
    let _ = p.leftover();
}

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        if let Ok((v, env)) = ciphertext::decode_envelope(text) {
            let (h, _) = fleetkey_crypto::envelope::Header::parse(&env).expect("checked");
            assert_eq!(h.key_version, v);
        }
        if let Ok((v, bytes)) = ciphertext::decode("signature", text) {
            assert!(v >= 1 && !bytes.is_empty());
            assert_eq!(
                ciphertext::decode("x", &ciphertext::encode(v, &bytes)).expect("round trip"),
                (v, bytes)
            );
        }
    }
    let Ok(body) = serde_json::from_slice::<serde_json::Value>(data) else {
        return;
    };
    let Ok(mut p) = Params::new(body) else {
        return;
    };
    if let Ok(Some(items)) = p.batch(64) {
        assert!(items.len() <= 64);
        for mut item in items {
            read_all(&mut item);
        }
    }
    read_all(&mut p);
});
