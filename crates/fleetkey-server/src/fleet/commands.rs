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
use fleetkey_crypto::ed25519::Ed25519Signer;

/// How far a device's poll timestamp may be from the server's clock, seconds.
pub const POLL_WINDOW_SECS: i64 = 60;

pub use fleetkey_wire::messages::{
    command_poll_message, receipt_message, rotation_confirm_message, rotation_request_message,
};

/// What the fleet key signs for a command ([`fleetkey_wire::messages::command_message`]).
pub fn command_message(
    id: &str,
    device_id: &str,
    kind: CommandKind,
    created_at: UnixTime,
    payload: &str,
) -> Vec<u8> {
    fleetkey_wire::messages::command_message(id, device_id, kind.as_str(), created_at, payload)
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
    let id = format!("cmd_{}", hex::encode(raw));
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
    }
}
