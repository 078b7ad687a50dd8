//! What devices and the fleet sign: the exact byte strings of every signed message
//! of the device protocol (`docs/formats.md#device-commands`). Both sides build
//! them here, so the device and the server can never disagree on a layout.
//!
//! Every message starts with its own label and a version followed by `0x00`, so a
//! signature made for one purpose never verifies as another.

use fleetkey_crypto::credential::DeviceKeys;

fn labelled(label: &str, parts: &[&str]) -> Vec<u8> {
    let mut m = Vec::with_capacity(label.len() + 64);
    m.extend_from_slice(label.as_bytes());
    m.push(0);
    for part in parts {
        m.extend_from_slice(part.as_bytes());
        m.push(0);
    }
    m
}

/// What the fleet key signs for a command:
/// `"fleetkey command v1" ‖ 0x00 ‖ id ‖ 0x00 ‖ device id ‖ 0x00 ‖ kind ‖ 0x00 ‖
/// BE64(created_at) ‖ payload (JSON text)`.
pub fn command_message(
    id: &str,
    device_id: &str,
    kind: &str,
    created_at: i64,
    payload: &str,
) -> Vec<u8> {
    let mut m = labelled("fleetkey command v1", &[id, device_id, kind]);
    m.extend_from_slice(&created_at.to_be_bytes());
    m.extend_from_slice(payload.as_bytes());
    m
}

/// What a device signs with its **current** Ed25519 key to propose new keys:
/// `"fleetkey rotation request v1" ‖ 0x00 ‖ device id ‖ 0x00 ‖ command id ‖ 0x00 ‖
/// x25519 (32) ‖ ed25519 (32) ‖ BE32(len) ‖ ml-kem-768 ‖ BE32(len) ‖ ml-dsa-65`
/// (absent optional keys have length 0).
pub fn rotation_request_message(device_id: &str, command_id: &str, keys: &DeviceKeys) -> Vec<u8> {
    let mut m = labelled("fleetkey rotation request v1", &[device_id, command_id]);
    m.extend_from_slice(&keys.x25519);
    m.extend_from_slice(&keys.ed25519);
    for k in [&keys.ml_kem_768, &keys.ml_dsa_65] {
        let k = k.as_deref().unwrap_or_default();
        // Key lengths are fixed by their algorithms (at most a few KiB).
        m.extend_from_slice(&u32::try_from(k.len()).unwrap_or(u32::MAX).to_be_bytes());
        m.extend_from_slice(k);
    }
    m
}

/// What a device signs with its **new** Ed25519 key to confirm it holds it and has
/// stored the new credential:
/// `"fleetkey rotation confirm v1" ‖ 0x00 ‖ device id ‖ 0x00 ‖ command id ‖ 0x00 ‖
/// credential id (16)`.
pub fn rotation_confirm_message(
    device_id: &str,
    command_id: &str,
    credential_id: &[u8; 16],
) -> Vec<u8> {
    let mut m = labelled("fleetkey rotation confirm v1", &[device_id, command_id]);
    m.extend_from_slice(credential_id);
    m
}

/// What a device signs to fetch its open commands:
/// `"fleetkey command poll v1" ‖ 0x00 ‖ device id ‖ 0x00 ‖ BE64(at)`.
pub fn command_poll_message(device_id: &str, at: i64) -> Vec<u8> {
    let mut m = labelled("fleetkey command poll v1", &[device_id]);
    m.extend_from_slice(&at.to_be_bytes());
    m
}

/// What a device signs, with its Ed25519 key, to answer a command:
/// `"fleetkey command receipt v1" ‖ 0x00 ‖ command id ‖ 0x00 ‖ device id ‖ 0x00 ‖
/// status ‖ 0x00 ‖ BE64(at)`, where status is `applied` or `rejected`.
pub fn receipt_message(command_id: &str, device_id: &str, status: &str, at: i64) -> Vec<u8> {
    let mut m = labelled(
        "fleetkey command receipt v1",
        &[command_id, device_id, status],
    );
    m.extend_from_slice(&at.to_be_bytes());
    m
}

/// What a device signs to prove possession at onboarding:
/// `"fleetkey onboarding v1" ‖ 0x00 ‖ device id ‖ 0x00 ‖ nonce (32) ‖ BE64(issued_at)`.
pub fn onboarding_message(device_id: &str, nonce: &[u8; 32], issued_at: i64) -> Vec<u8> {
    let mut m = labelled("fleetkey onboarding v1", &[device_id]);
    m.extend_from_slice(nonce);
    m.extend_from_slice(&issued_at.to_be_bytes());
    m
}

/// What a device signs, before erasing its keys, to prove it wiped:
/// `"fleetkey wipe receipt v1" ‖ 0x00 ‖ device id ‖ 0x00 ‖ BE64(wiped_at)`.
pub fn wipe_receipt_message(device_id: &str, wiped_at: i64) -> Vec<u8> {
    let mut m = labelled("fleetkey wipe receipt v1", &[device_id]);
    m.extend_from_slice(&wiped_at.to_be_bytes());
    m
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn layouts_are_the_documented_bytes_and_labels_never_collide() {
        assert_eq!(
            receipt_message("cmd_1", "dev_1", "applied", 258),
            b"fleetkey command receipt v1\0cmd_1\0dev_1\0applied\0\0\0\0\0\0\0\x01\x02".to_vec()
        );
        assert_eq!(
            wipe_receipt_message("d", 1),
            b"fleetkey wipe receipt v1\0d\0\0\0\0\0\0\0\0\x01".to_vec()
        );
        let keys = DeviceKeys {
            x25519: [0; 32],
            ed25519: [0; 32],
            ml_kem_768: None,
            ml_dsa_65: None,
        };
        let labels = [
            command_message("a", "b", "wipe", 0, ""),
            rotation_request_message("a", "b", &keys),
            rotation_confirm_message("a", "b", &[0; 16]),
            command_poll_message("a", 0),
            receipt_message("a", "b", "applied", 0),
            onboarding_message("a", &[0; 32], 0),
            wipe_receipt_message("a", 0),
        ];
        let prefixes: Vec<&[u8]> = labels
            .iter()
            .map(|m| &m[..m.iter().position(|b| *b == 0).unwrap()])
            .collect();
        for (i, a) in prefixes.iter().enumerate() {
            for b in &prefixes[i + 1..] {
                assert_ne!(a, b);
            }
        }
    }
}
