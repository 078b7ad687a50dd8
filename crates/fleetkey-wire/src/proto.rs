//! The device protocol over a Noise session (`docs/protocol.md#the-device-listener`).
//!
//! A connection starts with a 4-byte preamble naming the Noise protocol,
//! `"FK" ‖ 0x01 ‖ (pattern << 4 | suite)`; it is also the Noise prologue, so a
//! preamble changed on the way makes the handshake fail. Then the handshake, then
//! JSON application messages (at most [`MAX_MESSAGE`] bytes), each an object with a
//! `type`. The device's first message is always [`DeviceMsg::Hello`]; the server
//! answers [`ServerMsg::Welcome`] (or [`ServerMsg::Refused`] and closes).

use base64::{Engine as _, engine::general_purpose::STANDARD as B64};
use fleetkey_crypto::credential::DeviceKeys;
use fleetkey_session::{Pattern, Suite};
use serde::{Deserialize, Serialize};

/// Largest application message either side sends over a device session, bytes.
pub const MAX_MESSAGE: usize = 64 * 1024;
/// Length of the preamble.
pub const PREAMBLE_LEN: usize = 4;
/// Protocol version in the preamble.
pub const VERSION: u8 = 1;

fn pattern_id(p: Pattern) -> Option<u8> {
    match p {
        Pattern::IK => Some(1),
        Pattern::XX => Some(2),
        Pattern::IKHybrid => Some(3),
        _ => None,
    }
}

fn suite_id(s: Suite) -> u8 {
    match s {
        Suite::ChaChaPolyBlake2s => 1,
        Suite::AesGcmSha256 => 2,
    }
}

/// The preamble for a device session of `pattern` (IK, XX or the hybrid) in `suite`.
pub fn preamble(pattern: Pattern, suite: Suite) -> Option<[u8; PREAMBLE_LEN]> {
    Some([
        b'F',
        b'K',
        VERSION,
        pattern_id(pattern)? << 4 | suite_id(suite),
    ])
}

/// Parses a preamble; `None` for anything but a known version, pattern and suite.
pub fn parse_preamble(b: [u8; PREAMBLE_LEN]) -> Option<(Pattern, Suite)> {
    if b[..3] != [b'F', b'K', VERSION] {
        return None;
    }
    let pattern = match b[3] >> 4 {
        1 => Pattern::IK,
        2 => Pattern::XX,
        3 => Pattern::IKHybrid,
        _ => return None,
    };
    let suite = match b[3] & 0x0f {
        1 => Suite::ChaChaPolyBlake2s,
        2 => Suite::AesGcmSha256,
        _ => return None,
    };
    Some((pattern, suite))
}

/// The session id: the first 16 bytes of the handshake hash, in hex. Both sides
/// compute it; it names this handshake and no other.
pub fn session_id(handshake_hash: &[u8]) -> String {
    hex::encode(&handshake_hash[..handshake_hash.len().min(16)])
}

/// A device's public keys on the wire (base64).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeysWire {
    /// X25519 (32 bytes).
    pub x25519: String,
    /// Ed25519 (32 bytes).
    pub ed25519: String,
    /// ML-KEM-768 encapsulation key, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ml_kem_768: Option<String>,
    /// ML-DSA-65 public key, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ml_dsa_65: Option<String>,
}

impl From<&DeviceKeys> for KeysWire {
    fn from(k: &DeviceKeys) -> Self {
        Self {
            x25519: B64.encode(k.x25519),
            ed25519: B64.encode(k.ed25519),
            ml_kem_768: k.ml_kem_768.as_ref().map(|v| B64.encode(v)),
            ml_dsa_65: k.ml_dsa_65.as_ref().map(|v| B64.encode(v)),
        }
    }
}

impl KeysWire {
    /// The keys, or which field is malformed.
    pub fn decode(&self) -> Result<DeviceKeys, &'static str> {
        let key32 = |v: &str, what| -> Result<[u8; 32], &'static str> {
            B64.decode(v)
                .ok()
                .and_then(|b| b.try_into().ok())
                .ok_or(what)
        };
        let opt = |v: &Option<String>, what| -> Result<Option<Vec<u8>>, &'static str> {
            v.as_deref()
                .map(|v| B64.decode(v).map_err(|_| what))
                .transpose()
        };
        Ok(DeviceKeys {
            x25519: key32(&self.x25519, "keys.x25519")?,
            ed25519: key32(&self.ed25519, "keys.ed25519")?,
            ml_kem_768: opt(&self.ml_kem_768, "keys.ml_kem_768")?,
            ml_dsa_65: opt(&self.ml_dsa_65, "keys.ml_dsa_65")?,
        })
    }
}

/// A command as delivered (`docs/formats.md#device-commands`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CommandWire {
    /// Id (`cmd_…`).
    pub id: String,
    /// The device it is for.
    pub device_id: String,
    /// `rotate_credential`, `update_config` or `wipe`.
    pub kind: String,
    /// `pending` or `in_progress`.
    pub state: String,
    /// Parameters: exactly the signed JSON text.
    pub payload: String,
    /// Base64 Ed25519 signature of the fleet's issuing key.
    pub signature: String,
    /// Creation time (signed).
    pub created_at: i64,
    /// Last change.
    pub updated_at: i64,
}

impl CommandWire {
    /// Checks the fleet's signature (the device must never act on an unsigned command).
    pub fn verify(&self, fleet_key: &[u8; 32]) -> bool {
        let Ok(sig) = B64.decode(&self.signature) else {
            return false;
        };
        let msg = crate::messages::command_message(
            &self.id,
            &self.device_id,
            &self.kind,
            self.created_at,
            &self.payload,
        );
        fleetkey_crypto::ed25519::verify(fleet_key, &msg, &sig).is_ok()
    }
}

/// What a device sends.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum DeviceMsg {
    /// First message of every session.
    Hello {
        /// The id of the device's previous session, to resume from it.
        #[serde(default)]
        resume: Option<String>,
        /// The highest telemetry sequence number the device has assigned.
        #[serde(default)]
        telemetry_seq: u64,
    },
    /// Telemetry; `seq` increases by one per message across sessions, so a message
    /// sent again after a reconnect is recognised and dropped.
    Telemetry {
        /// Sequence number (from 1).
        seq: u64,
        /// Any JSON.
        data: serde_json::Value,
    },
    /// A signed answer to an `update_config` command.
    Receipt {
        /// Command id.
        command_id: String,
        /// `applied` or `rejected`.
        status: String,
        /// Device time, signed.
        at: i64,
        /// Base64 Ed25519 signature over the receipt message.
        signature: String,
    },
    /// Step 2 of a credential rotation: new keys, signed by the current key.
    RotationProposal {
        /// The `rotate_credential` command.
        command_id: String,
        /// The new public keys.
        keys: KeysWire,
        /// Base64 signature by the current Ed25519 key.
        signature: String,
    },
    /// Step 3: the new key confirms.
    RotationConfirm {
        /// The `rotate_credential` command.
        command_id: String,
        /// Base64 signature by the new Ed25519 key over the confirmation message.
        signature: String,
    },
    /// The device has wiped itself (the last message it sends).
    WipeReceipt {
        /// Device time, signed.
        wiped_at: i64,
        /// Base64 signature over the wipe receipt message.
        signature: String,
    },
}

/// What the server sends.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ServerMsg {
    /// The answer to hello.
    Welcome {
        /// Who the server says the device is.
        device_id: String,
        /// This session's id.
        session: String,
        /// Whether the previous session named in hello was this device's.
        resumed: bool,
        /// The highest telemetry sequence number the server has accepted.
        telemetry_seq: u64,
    },
    /// A command to carry out.
    Command(CommandWire),
    /// A receipt or confirmation was accepted.
    Ack {
        /// Command id.
        command_id: String,
    },
    /// Telemetry up to `seq` is stored.
    TelemetryAck {
        /// Sequence number.
        seq: u64,
    },
    /// The new operational credential after a rotation proposal.
    Credential {
        /// Command id.
        command_id: String,
        /// Base64 credential.
        operational_credential: String,
        /// Base64 of its 16-byte id (sign it in the confirmation).
        credential_id: String,
    },
    /// The session is refused (the server closes it).
    Refused {
        /// `unknown_device`, `not_onboarded`, `suspended`, `decommissioned`, `no_hello`.
        reason: String,
    },
    /// A message was refused; the session goes on.
    Error {
        /// Why.
        message: String,
    },
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn preambles_round_trip_and_unknown_ones_are_refused() {
        for p in [Pattern::IK, Pattern::XX, Pattern::IKHybrid] {
            for s in [Suite::ChaChaPolyBlake2s, Suite::AesGcmSha256] {
                assert_eq!(parse_preamble(preamble(p, s).unwrap()), Some((p, s)));
            }
        }
        assert_eq!(preamble(Pattern::NN, Suite::ChaChaPolyBlake2s), None);
        for bad in [
            *b"FK\x02\x11",
            *b"XK\x01\x11",
            *b"FK\x01\x41",
            *b"FK\x01\x13",
            [0; 4],
        ] {
            assert_eq!(parse_preamble(bad), None);
        }
    }

    #[test]
    fn messages_have_the_documented_shape() {
        let m: DeviceMsg =
            serde_json::from_str(r#"{"type":"telemetry","seq":3,"data":{"t":21.5}}"#).unwrap();
        assert_eq!(
            m,
            DeviceMsg::Telemetry {
                seq: 3,
                data: serde_json::json!({"t": 21.5})
            }
        );
        assert!(serde_json::from_str::<DeviceMsg>(r#"{"type":"hello","x":1}"#).is_err());
        assert!(serde_json::from_str::<DeviceMsg>(r#"{"type":"nope"}"#).is_err());
        let w = serde_json::to_value(ServerMsg::TelemetryAck { seq: 9 }).unwrap();
        assert_eq!(w, serde_json::json!({"type": "telemetry_ack", "seq": 9}));
    }
}
