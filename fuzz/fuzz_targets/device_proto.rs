//! The device protocol's parsers on arbitrary bytes: preambles, device and server
//! messages (JSON), key sets, the persisted client state and key records through the
//! client's record cache. Nothing panics; a parsed message serialises and parses
//! back to itself.
#![no_main]

use fleetkey_client::proto::{DeviceMsg, ServerMsg, parse_preamble};
use fleetkey_client::{RecordCache, SessionState};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Some(pre) = data.get(..4) {
        let _ = parse_preamble(pre.try_into().expect("4 bytes"));
    }
    if let Ok(m) = serde_json::from_slice::<DeviceMsg>(data) {
        let again = serde_json::to_vec(&m).expect("serialises");
        assert_eq!(serde_json::from_slice::<DeviceMsg>(&again).expect("parses back"), m);
        if let DeviceMsg::RotationProposal { keys, .. } = &m {
            let _ = keys.decode();
        }
    }
    if let Ok(ServerMsg::Command(c)) = serde_json::from_slice::<ServerMsg>(data) {
        let _ = c.verify(&[9; 32]);
    }
    let _ = serde_json::from_slice::<SessionState>(data).map(|s| s.pinned());
    let mut cache = RecordCache::new(vec![7; 32]);
    assert!(cache.insert(data, 1_800_000_000).is_err(), "nothing unsigned is accepted");
});
