//! A constrained simulated device listening for its downlink: it opens the
//! server's control frames under its boot's keys, carries out each command and
//! acknowledges it (`docs/protocol.md#downlink-commands-and-acknowledgements`).

use crate::{ConstrainedDevice, OsRng, Ram, Sim};
use anyhow::{Context, Result};
use fleetkey_device::{Ack, Downlink, Op, Status};
use serde_json::Value;
use std::time::Duration;
use tokio::time::Instant;

/// What a device did with what came down.
#[derive(Debug, Clone, PartialEq)]
pub enum Heard {
    /// Acknowledged its wipe, then erased its keys: it never boots again.
    Wiped,
    /// Applied (and acknowledged) a configuration: the command's parameters.
    Config(Value),
    /// Acknowledged a rekey and booted again (new session keys).
    Rekeyed,
    /// A frame for this device that did not open (`replay`, `forged`, …).
    Refused(&'static str),
    /// A command that arrived again after it was carried out: acknowledged again.
    Repeated,
}

impl Sim {
    /// Listens for `window` for frames to `d`, carrying out and acknowledging each
    /// command, and returns what happened. The first `drop_first` frames are
    /// dropped unread (a lossy link: the server must send again).
    pub async fn listen(
        &self,
        d: &mut ConstrainedDevice,
        window: Duration,
        drop_first: usize,
    ) -> Result<Vec<Heard>> {
        let mut heard = Vec::new();
        let mut dropped = 0;
        let end = Instant::now() + window;
        let mut buf = [0u8; 2048];
        while let Ok(r) = tokio::time::timeout_at(end, self.udp.recv_from(&mut buf)).await {
            let (n, _) = r?;
            let frame = &mut buf[..n];
            if frame.len() < 11 || frame[3..11] != d.device.device_id {
                continue;
            }
            if dropped < drop_first {
                dropped += 1;
                continue;
            }
            let Some(s) = d.session.as_mut() else {
                heard.push(Heard::Refused("no_session"));
                continue;
            };
            let cmd = match s.open_down(frame) {
                Ok(Downlink::Command(c)) => c,
                Ok(Downlink::Data(_)) => continue,
                Err(e) => {
                    heard.push(Heard::Refused(e.as_str()));
                    continue;
                }
            };
            let repeated = d.done.contains(&cmd.id);
            let mut out = [0u8; 64];
            let n = s
                .ack_frame(
                    &Ack {
                        id: cmd.id,
                        status: Status::Done,
                    },
                    &mut out,
                )
                .map_err(|e| anyhow::anyhow!("ack: {e}"))?;
            self.udp.send_to(&out[..n], &self.endpoints.frames).await?;
            d.last_frame = out[..n].to_vec();
            if repeated {
                heard.push(Heard::Repeated);
                continue;
            }
            d.done.push(cmd.id);
            match cmd.op {
                Op::Wipe => {
                    d.device.erase();
                    d.session = None;
                    heard.push(Heard::Wiped);
                    return Ok(heard);
                }
                Op::Config => {
                    let v: Value =
                        serde_json::from_slice(cmd.body).context("a config command's body")?;
                    heard.push(Heard::Config(v));
                }
                Op::Rekey => {
                    let s = d
                        .device
                        .boot(&mut OsRng, &mut Ram)
                        .map_err(|e| anyhow::anyhow!("boot: {e}"))?;
                    let mut st = [0u8; 128];
                    let n = s
                        .start_frame(b"", &mut st)
                        .map_err(|e| anyhow::anyhow!("{e}"))?;
                    self.udp.send_to(&st[..n], &self.endpoints.frames).await?;
                    d.session = Some(s);
                    heard.push(Heard::Rekeyed);
                }
            }
        }
        Ok(heard)
    }
}

impl ConstrainedDevice {
    /// Whether the device erased its keys (a wipe).
    pub fn is_wiped(&self) -> bool {
        self.device.is_erased()
    }

    /// The boot counter of its current session (0 before the first boot).
    pub fn boot_counter(&self) -> u32 {
        self.device.boot_counter()
    }
}
