//! Commands for devices and the messages devices sign about them.
//!
//! A command (rotate credential, update config, wipe) is queued with its state in
//! the store, in the same transaction as the change that asks for it, and signed by
//! the fleet's issuing key so the device can check it came from its fleet whatever
//! carried it (the device session, a gateway, a poll over HTTP). Every signed
//! message starts with its own label and a version, so a signature made for one
//! purpose never verifies as another. Specified in `docs/formats.md#device-commands`.

use crate::clock::UnixTime;
use crate::error::Result;
use crate::store::{CommandKind, CommandRecord, CommandState};
use fleetkey_crypto::credential::DeviceKeys;
use fleetkey_crypto::ed25519::Ed25519Signer;

/// How far a device's poll timestamp may be from the server's clock, seconds.
pub const POLL_WINDOW_SECS: i64 = 60;

/// What the fleet key signs for a command:
/// `"fleetkey command v1" ‖ 0x00 ‖ id ‖ 0x00 ‖ device id ‖ 0x00 ‖ kind ‖ 0x00 ‖
/// BE64(created_at) ‖ payload (JSON text)`.
pub fn command_message(
    id: &str,
    device_id: &str,
    kind: CommandKind,
    created_at: UnixTime,
    payload: &str,
) -> Vec<u8> {
    let mut m = b"fleetkey command v1\0".to_vec();
    for part in [id, device_id, kind.as_str()] {
        m.extend_from_slice(part.as_bytes());
        m.push(0);
    }
    m.extend_from_slice(&created_at.to_be_bytes());
    m.extend_from_slice(payload.as_bytes());
    m
}

/// A new pending command, signed by the fleet's issuing key.
pub(crate) fn new_command(
    signer: &Ed25519Signer,
    device_id: &str,
    kind: CommandKind,
    payload: &serde_json::Value,
    now: UnixTime,
) -> Result<CommandRecord> {
    let raw: [u8; 12] = fleetkey_crypto::rand::array()?;
    let id = format!("cmd_{}", hex(&raw));
    let payload = payload.to_string();
    let signature = signer
        .sign(&command_message(&id, device_id, kind, now, &payload))
        .to_vec();
    Ok(CommandRecord {
        id,
        device_id: device_id.to_owned(),
        kind,
        payload,
        signature,
        state: CommandState::Pending,
        created_at: now,
        updated_at: now,
    })
}

/// What a device signs with its **current** Ed25519 key to propose new keys:
/// `"fleetkey rotation request v1" ‖ 0x00 ‖ device id ‖ 0x00 ‖ command id ‖ 0x00 ‖
/// x25519 (32) ‖ ed25519 (32) ‖ BE32(len) ‖ ml-kem-768 ‖ BE32(len) ‖ ml-dsa-65`
/// (absent optional keys have length 0).
pub fn rotation_request_message(device_id: &str, command_id: &str, keys: &DeviceKeys) -> Vec<u8> {
    let mut m = b"fleetkey rotation request v1\0".to_vec();
    for part in [device_id, command_id] {
        m.extend_from_slice(part.as_bytes());
        m.push(0);
    }
    m.extend_from_slice(&keys.x25519);
    m.extend_from_slice(&keys.ed25519);
    for k in [&keys.ml_kem_768, &keys.ml_dsa_65] {
        let k = k.as_deref().unwrap_or_default();
        m.extend_from_slice(&(k.len() as u32).to_be_bytes());
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
    let mut m = b"fleetkey rotation confirm v1\0".to_vec();
    for part in [device_id, command_id] {
        m.extend_from_slice(part.as_bytes());
        m.push(0);
    }
    m.extend_from_slice(credential_id);
    m
}

/// What a device signs to fetch its open commands:
/// `"fleetkey command poll v1" ‖ 0x00 ‖ device id ‖ 0x00 ‖ BE64(at)`.
pub fn command_poll_message(device_id: &str, at: UnixTime) -> Vec<u8> {
    let mut m = b"fleetkey command poll v1\0".to_vec();
    m.extend_from_slice(device_id.as_bytes());
    m.push(0);
    m.extend_from_slice(&at.to_be_bytes());
    m
}

/// What a device signs, with its Ed25519 key, to answer a command:
/// `"fleetkey command receipt v1" ‖ 0x00 ‖ command id ‖ 0x00 ‖ device id ‖ 0x00 ‖
/// status ‖ 0x00 ‖ BE64(at)`, where status is `applied` or `rejected`.
pub fn receipt_message(command_id: &str, device_id: &str, status: &str, at: UnixTime) -> Vec<u8> {
    let mut m = b"fleetkey command receipt v1\0".to_vec();
    for part in [command_id, device_id, status] {
        m.extend_from_slice(part.as_bytes());
        m.push(0);
    }
    m.extend_from_slice(&at.to_be_bytes());
    m
}

/// Lower-case hex.
pub(crate) fn hex(b: &[u8]) -> String {
    b.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn commands_verify_under_the_fleet_key_and_labels_never_collide() {
        let fleet = Ed25519Signer::generate().unwrap();
        let c = new_command(
            &fleet,
            "dev_01",
            CommandKind::Wipe,
            &serde_json::json!({"reason": "stolen"}),
            1_700_000_000,
        )
        .unwrap();
        let msg = command_message(&c.id, &c.device_id, c.kind, c.created_at, &c.payload);
        fleetkey_crypto::ed25519::verify(&fleet.public_key(), &msg, &c.signature).unwrap();
        // Another device, kind or payload does not verify.
        for bad in [
            command_message(&c.id, "dev_02", c.kind, c.created_at, &c.payload),
            command_message(
                &c.id,
                &c.device_id,
                CommandKind::UpdateConfig,
                c.created_at,
                &c.payload,
            ),
            command_message(&c.id, &c.device_id, c.kind, c.created_at, "{}"),
        ] {
            assert!(
                fleetkey_crypto::ed25519::verify(&fleet.public_key(), &bad, &c.signature).is_err()
            );
        }
        let labels = [
            command_message("a", "b", CommandKind::Wipe, 0, ""),
            rotation_request_message(
                "a",
                "b",
                &DeviceKeys {
                    x25519: [0; 32],
                    ed25519: [0; 32],
                    ml_kem_768: None,
                    ml_dsa_65: None,
                },
            ),
            rotation_confirm_message("a", "b", &[0; 16]),
            command_poll_message("a", 0),
            receipt_message("a", "b", "applied", 0),
            super::super::onboarding_message("a", &[0; 32], 0),
            super::super::wipe_receipt_message("a", 0),
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
