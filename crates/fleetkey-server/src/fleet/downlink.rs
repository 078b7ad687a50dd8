//! Commands to constrained devices, as the frame path's downlink carries them
//! (`docs/protocol.md#downlink-commands-and-acknowledgements`): which commands a
//! constrained device can be sent, the rekey request, and what the device's
//! acknowledgement (a control frame verified under the boot's session key) ends.
//!
//! | command | acknowledged `done` | acknowledged `rejected` |
//! |---|---|---|
//! | `wipe` | `decommissioning → decommissioned`, wipe confirmed (`device.wiped`) | ignored: a wipe is not optional |
//! | `update_config` | command `done` (`device.command_receipt`, `applied`) | command `cancelled` (`rejected`) |
//! | `rekey` | command `done` (`device.command_receipt`, `done`) | command `cancelled` (`rejected`) |

use super::{Commands, Onboarding};
use crate::audit::AuditDraft;
use crate::error::{Error, Result};
use crate::store::{Change, CommandKind, CommandRecord, CommandState, DeviceRecord, DeviceState};
use serde_json::json;

/// Where an acknowledgement came from: the verified control frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AckFrame {
    /// The boot whose session key authenticated it.
    pub boot: u32,
    /// Its frame counter.
    pub counter: u32,
    /// Carried out (or, false, rejected).
    pub done: bool,
}

impl AckFrame {
    fn evidence(&self, command: &CommandRecord, status: &str) -> serde_json::Value {
        json!({
            "command": command.id,
            "kind": command.kind.as_str(),
            "status": status,
            "boot": self.boot,
            "frame_counter": self.counter,
            "via": "control_frame",
        })
    }
}

/// Whether the downlink carries commands of this kind (a constrained device has no
/// Ed25519 key to rotate a credential with).
pub fn carried(kind: CommandKind) -> bool {
    matches!(
        kind,
        CommandKind::Wipe | CommandKind::UpdateConfig | CommandKind::Rekey
    )
}

impl Commands {
    /// Asks a constrained device for a new boot: fresh salt, new session keys
    /// (its factory keys do not change over the air). Queues a `rekey` command for
    /// the downlink, audited as `device.rekey_requested`; the device must have
    /// booted at least once (`onboarded` or `active`).
    pub async fn request_rekey(
        &self,
        actor: &str,
        d: &DeviceRecord,
        reason: &str,
    ) -> Result<CommandRecord> {
        if !matches!(d.state, DeviceState::Active | DeviceState::Onboarded) {
            return Err(Error::IllegalTransition {
                from: d.state.as_str(),
                to: "rekeyed",
            });
        }
        let issuer = self.core.issuer(&d.fleet).await?;
        let now = self.core.clock.now();
        let command = super::commands::new_command(
            &issuer.1,
            &d.id,
            CommandKind::Rekey,
            &json!({ "reason": reason }),
            now,
        )?;
        self.store
            .apply(
                Change::QueueCommand(command.clone()),
                AuditDraft::new(
                    actor,
                    "device.rekey_requested",
                    format!("device:{}", d.id),
                    json!({ "command": command.id, "reason": reason }),
                ),
                now,
            )
            .await?;
        // Every instance's frame path re-reads the device before its next frame.
        self.core.device_changed(&d.id);
        Ok(command)
    }

    /// A constrained device's open commands the downlink carries, oldest first.
    pub async fn downlink_commands(&self, device_id: &str) -> Result<Vec<CommandRecord>> {
        let mut c = self.store.commands(device_id, true).await?;
        c.retain(|c| carried(c.kind));
        Ok(c)
    }

    /// A constrained device acknowledged an `update_config` or `rekey` command.
    pub async fn acknowledged(
        &self,
        device_id: &str,
        command: &CommandRecord,
        ack: AckFrame,
    ) -> Result<()> {
        let (state, status) = match (command.kind, ack.done) {
            (CommandKind::UpdateConfig, true) => (CommandState::Done, "applied"),
            (CommandKind::Rekey, true) => (CommandState::Done, "done"),
            (CommandKind::UpdateConfig | CommandKind::Rekey, false) => {
                (CommandState::Cancelled, "rejected")
            }
            _ => return Err(Error::CommandState("not acknowledged in a frame")),
        };
        self.record_receipt(
            device_id,
            &command.id,
            command.kind,
            state,
            ack.evidence(command, status),
        )
        .await?;
        self.core.device_changed(device_id);
        Ok(())
    }
}

impl Onboarding {
    /// A constrained device acknowledged its wipe command (in a control frame,
    /// just before erasing its keys): decommissioning ends with the wipe
    /// confirmed, audited as `device.wiped` with the frame as evidence.
    pub async fn frame_wiped(
        &self,
        device_id: &str,
        command: &CommandRecord,
        ack: AckFrame,
    ) -> Result<DeviceRecord> {
        if command.kind != CommandKind::Wipe || !ack.done {
            return Err(Error::CommandState("a wipe is acknowledged only as done"));
        }
        let mut details = ack.evidence(command, "done");
        details["secrets_erased"] = json!(true);
        self.wiped(device_id, details).await
    }

    /// The next server→device frame counter of a constrained device (`None`: no
    /// factory secret any more, or the counter space is spent).
    pub async fn next_down_counter(&self, device_id: &str) -> Result<Option<u32>> {
        self.store.next_down_counter(device_id).await
    }
}
