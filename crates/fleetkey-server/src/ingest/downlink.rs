//! The downlink to constrained devices
//! (`docs/protocol.md#downlink-commands-and-acknowledgements`): the device's open
//! commands travel in server→device control frames after its verified frames,
//! and its acknowledgements end them (`fleet::downlink`).
//!
//! - **When**: after every verified frame of a device with an open command, the
//!   oldest command goes back at most once per [`RESEND_AFTER`] (to the UDP
//!   datagram's source address, or in the gateway's `POST /v1/ingest` response).
//!   Over UDP it is sent again up to [`RESENDS`] times, [`RESEND_AFTER`] apart,
//!   while unacknowledged: a device that listens for a few seconds after sending
//!   gets it even when datagrams are lost; one that sleeps at once gets it after
//!   its next frame.
//! - **Counters**: each frame takes a fresh counter from the store (an atomic
//!   increment shared by every instance), so no counter repeats under a boot's key
//!   and the device's replay check (strictly increasing) holds across instances.
//! - **Acknowledgements**: a control frame naming the command; acknowledging one
//!   that already ended changes nothing (the device may repeat itself).

use super::{Entry, FrameIngest};
use crate::fleet::downlink::AckFrame;
use crate::store::{CommandKind, CommandRecord, DeviceState};
use fleetkey_device::{Ack, Command, Op, Status};
use parking_lot::Mutex;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Least time between two sends of the same command to a device.
pub const RESEND_AFTER: Duration = Duration::from_secs(1);
/// How many times the UDP path sends a command again, unacknowledged, after a frame.
pub const RESENDS: u32 = 3;

fn command_id(id: &str) -> Option<[u8; fleetkey_device::control::COMMAND_ID_LEN]> {
    id.strip_prefix("cmd_")
        .and_then(fleetkey_device::evt::decode_hex::<{ fleetkey_device::control::COMMAND_ID_LEN }>)
}

fn op(kind: CommandKind) -> Option<Op> {
    match kind {
        CommandKind::Wipe => Some(Op::Wipe),
        CommandKind::UpdateConfig => Some(Op::Config),
        CommandKind::Rekey => Some(Op::Rekey),
        CommandKind::RotateCredential => None,
    }
}

impl FrameIngest {
    /// A device's open commands for the downlink (on load and every re-read).
    pub(super) async fn open_commands(
        &self,
        device_id: &str,
    ) -> Result<Vec<CommandRecord>, &'static str> {
        self.fleets
            .commands
            .downlink_commands(device_id)
            .await
            .map_err(|e| {
                tracing::error!(device = %device_id, error = %e, "reading a device's commands failed");
                "internal"
            })
    }

    fn count(&self, kind: CommandKind, result: &str) {
        self.metrics
            .downlinks
            .with_label_values(&[kind.as_str(), result])
            .inc();
    }

    /// A control frame with the device's oldest open command, unless it went out
    /// less than [`RESEND_AFTER`] ago (or there is none, or no session to seal it in).
    pub(super) async fn downlink(
        &self,
        entry: &Arc<Mutex<Entry>>,
        device_id: &str,
    ) -> Option<Vec<u8>> {
        let (command, resent) = {
            let mut e = entry.lock();
            let c = e.commands.first()?.clone();
            if !e.receiver.has_session() {
                return None;
            }
            let resent = match &e.last_down {
                Some((id, at)) if *id == c.id => {
                    if at.elapsed() < RESEND_AFTER {
                        return None;
                    }
                    true
                }
                _ => false,
            };
            e.last_down = Some((c.id.clone(), Instant::now()));
            (c, resent)
        };
        let undeliverable = |why: &str| {
            tracing::warn!(device = %device_id, command = %command.id, why, "a command cannot go down to the device");
            self.count(command.kind, "undeliverable");
            None
        };
        let (Some(op), Some(id)) = (op(command.kind), command_id(&command.id)) else {
            return undeliverable("not a downlink command");
        };
        let counter = match self.fleets.onboarding.next_down_counter(device_id).await {
            Ok(Some(c)) => c,
            Ok(None) => return undeliverable("no frame counter left (or no factory secret)"),
            Err(e) => {
                tracing::error!(device = %device_id, error = %e, "taking a downlink counter failed");
                return None;
            }
        };
        let body = if op == Op::Config {
            command.payload.as_bytes()
        } else {
            &[]
        };
        let mut out = vec![0u8; fleetkey_device::frame::MAX_FRAME];
        let sealed =
            entry
                .lock()
                .receiver
                .seal_command(counter, &Command { op, id, body }, &mut out);
        match sealed {
            Ok(n) => {
                out.truncate(n);
                self.count(command.kind, if resent { "resent" } else { "sent" });
                Some(out)
            }
            Err(fleetkey_device::Error::Malformed) => undeliverable("larger than one frame"),
            Err(_) => None,
        }
    }

    /// Over UDP: sends the device's open command again, up to [`RESENDS`] times
    /// [`RESEND_AFTER`] apart, while it stays unacknowledged (one chain per device).
    pub(super) fn resend(
        self: Arc<Self>,
        entry: Arc<Mutex<Entry>>,
        socket: Arc<tokio::net::UdpSocket>,
        to: SocketAddr,
    ) {
        let device_id = {
            let mut e = entry.lock();
            if std::mem::replace(&mut e.resending, true) {
                return;
            }
            e.device_id.clone()
        };
        tokio::spawn(async move {
            for _ in 0..RESENDS {
                tokio::time::sleep(RESEND_AFTER).await;
                if entry.lock().commands.is_empty() {
                    break;
                }
                if let Some(down) = self.downlink(&entry, &device_id).await
                    && let Err(e) = socket.send_to(&down, to).await
                {
                    tracing::warn!(error = %e, "device UDP send failed");
                }
            }
            entry.lock().resending = false;
        });
    }

    /// A verified control frame from the device: the acknowledgement of a command.
    pub(super) async fn acknowledged(
        &self,
        entry: &Arc<Mutex<Entry>>,
        device_id: &str,
        opened: &fleetkey_device::Header,
        payload: &[u8],
    ) -> Result<(), &'static str> {
        let ack = Ack::parse(payload).map_err(|_| "malformed_ack")?;
        let named = |c: &CommandRecord| command_id(&c.id) == Some(ack.id);
        let mut command = entry.lock().commands.iter().find(|c| named(c)).cloned();
        if command.is_none() {
            // Sent by another instance before this one re-read the device.
            command = self.open_commands(device_id).await?.into_iter().find(named);
        }
        let Some(command) = command else {
            // Already ended (a repeated acknowledgement), or never this device's.
            return Ok(());
        };
        let frame = AckFrame {
            boot: opened.boot,
            counter: opened.counter,
            done: ack.status == Status::Done,
        };
        if command.kind == CommandKind::Wipe && !frame.done {
            // A wipe is not optional: it keeps going down until done.
            tracing::warn!(device = %device_id, command = %command.id, "the device rejected its wipe");
            self.count(command.kind, "rejected");
            return Ok(());
        }
        let r = match command.kind {
            CommandKind::Wipe => self
                .fleets
                .onboarding
                .frame_wiped(device_id, &command, frame)
                .await
                .map(|_| ()),
            _ => {
                self.fleets
                    .commands
                    .acknowledged(device_id, &command, frame)
                    .await
            }
        };
        match r {
            Ok(()) => {}
            // Ended meanwhile (through another instance): nothing to do.
            Err(crate::Error::CommandState(_) | crate::Error::CommandNotFound(_)) => {}
            Err(crate::Error::IllegalTransition { .. }) => {}
            Err(e) => {
                tracing::error!(device = %device_id, command = %command.id, error = %e, "recording an acknowledgement failed");
                return Err("internal");
            }
        }
        self.count(command.kind, if frame.done { "acked" } else { "rejected" });
        let mut e = entry.lock();
        e.commands.retain(|c| c.id != command.id);
        if command.kind == CommandKind::Wipe && frame.done {
            e.state = DeviceState::Decommissioned;
        }
        Ok(())
    }
}
