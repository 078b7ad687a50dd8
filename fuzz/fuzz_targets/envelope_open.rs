//! Single-shot and stream openers on arbitrary bytes under a fixed key: never
//! panic, and never accept anything (forging needs the key).
#![no_main]

use fleetkey_crypto::{
    aead::{AeadKey, Algorithm},
    envelope::{Header, io as eio, single, stream},
    secret::SecretBytes,
};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(key) = AeadKey::new(Algorithm::Aes256Gcm, SecretBytes::new([42; 32])) else {
        return;
    };
    assert!(single::open(&key, data, b"").is_err());
    if let Ok((header, len)) = Header::parse(data) {
        if let Ok(opener) = stream::open_symmetric(&key, &header, &data[..len], b"") {
            let mut sink = Vec::new();
            let r = eio::open(opener, Vec::new(), &data[len..], &mut sink, &mut |_| {});
            assert!(r.is_err());
            assert!(sink.is_empty());
        }
    }
});
