//! Header parser and armor decoder on arbitrary bytes: never panic, and whatever
//! parses re-encodes to exactly the bytes it came from.
#![no_main]

use fleetkey_crypto::envelope::{Header, armor};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok((header, len)) = Header::parse(data) {
        assert_eq!(header.encode(), &data[..len]);
    }
    if let Ok(text) = std::str::from_utf8(data) {
        if let Ok(bytes) = armor::decode(text) {
            let again = armor::encode(&bytes);
            assert_eq!(text.trim_end_matches(['\n', '\r']), again);
        }
    }
});
