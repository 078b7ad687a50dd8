//! Control payloads, carried in control frames ([`crate::FrameKind::Control`]):
//! commands from the server and the device's acknowledgements. Specified in
//! `docs/protocol.md#downlink-commands-and-acknowledgements`.
//!
//! | direction | payload |
//! |---|---|
//! | server→device | op (1: wipe, 2: config, 3: rekey) ‖ command id (12) ‖ body |
//! | device→server | 0x80 ‖ command id (12) ‖ status (1: done, 2: rejected) |
//!
//! The body of a config command is the configuration (UTF-8 JSON); wipe and rekey
//! have an empty body. The command id is the 12 bytes of the server's `cmd_…` id.
//! Every frame is authenticated by the boot's session keys, so an acknowledgement
//! proves that the device holding them sent it.

use crate::error::Error;

/// Command id length (the 12 bytes of a `cmd_…` id).
pub const COMMAND_ID_LEN: usize = 12;
/// The first byte of an acknowledgement.
pub const ACK: u8 = 0x80;
/// Length of an acknowledgement payload.
pub const ACK_LEN: usize = 1 + COMMAND_ID_LEN + 1;
/// Largest command body: a control frame's room after its op and id.
pub const MAX_BODY: usize =
    crate::frame::MAX_FRAME - crate::frame::DATA_HEADER_LEN - crate::TAG_LEN - 1 - COMMAND_ID_LEN;

/// What a command asks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// Acknowledge, then erase every key (the device is being decommissioned).
    Wipe,
    /// Apply the configuration in the body, then acknowledge.
    Config,
    /// Acknowledge, then start a new boot: fresh salt, new session keys.
    Rekey,
}

impl Op {
    /// Its byte.
    pub fn id(self) -> u8 {
        match self {
            Op::Wipe => 1,
            Op::Config => 2,
            Op::Rekey => 3,
        }
    }

    /// From its byte.
    pub fn from_id(b: u8) -> Option<Self> {
        match b {
            1 => Some(Op::Wipe),
            2 => Some(Op::Config),
            3 => Some(Op::Rekey),
            _ => None,
        }
    }
}

/// A command as the device reads it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Command<'a> {
    /// What to do.
    pub op: Op,
    /// The command's id (echoed in the acknowledgement).
    pub id: [u8; COMMAND_ID_LEN],
    /// Its body (config: JSON; otherwise empty).
    pub body: &'a [u8],
}

impl<'a> Command<'a> {
    /// Encodes the command into `out`; returns the length.
    pub fn encode(&self, out: &mut [u8]) -> Result<usize, Error> {
        if self.body.len() > MAX_BODY || (self.op != Op::Config && !self.body.is_empty()) {
            return Err(Error::Malformed);
        }
        let n = 1 + COMMAND_ID_LEN + self.body.len();
        let out = out.get_mut(..n).ok_or(Error::BufferTooSmall)?;
        out[0] = self.op.id();
        out[1..=COMMAND_ID_LEN].copy_from_slice(&self.id);
        out[1 + COMMAND_ID_LEN..].copy_from_slice(self.body);
        Ok(n)
    }

    /// Parses a command payload (bounded, never panics).
    pub fn parse(payload: &'a [u8]) -> Result<Self, Error> {
        if payload.len() < 1 + COMMAND_ID_LEN || payload.len() > 1 + COMMAND_ID_LEN + MAX_BODY {
            return Err(Error::Malformed);
        }
        let op = Op::from_id(payload[0]).ok_or(Error::Malformed)?;
        let body = &payload[1 + COMMAND_ID_LEN..];
        if op != Op::Config && !body.is_empty() {
            return Err(Error::Malformed);
        }
        let mut id = [0u8; COMMAND_ID_LEN];
        id.copy_from_slice(&payload[1..=COMMAND_ID_LEN]);
        Ok(Self { op, id, body })
    }
}

/// How a device answers a command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// Carried out (for a wipe: about to erase its keys).
    Done,
    /// Refused (for example a configuration the firmware cannot apply).
    Rejected,
}

/// A device's acknowledgement of a command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ack {
    /// The command's id.
    pub id: [u8; COMMAND_ID_LEN],
    /// The answer.
    pub status: Status,
}

impl Ack {
    /// The acknowledgement payload.
    pub fn encode(&self) -> [u8; ACK_LEN] {
        let mut out = [0u8; ACK_LEN];
        out[0] = ACK;
        out[1..=COMMAND_ID_LEN].copy_from_slice(&self.id);
        out[ACK_LEN - 1] = match self.status {
            Status::Done => 1,
            Status::Rejected => 2,
        };
        out
    }

    /// Parses an acknowledgement payload (exactly [`ACK_LEN`] bytes).
    pub fn parse(payload: &[u8]) -> Result<Self, Error> {
        if payload.len() != ACK_LEN || payload[0] != ACK {
            return Err(Error::Malformed);
        }
        let status = match payload[ACK_LEN - 1] {
            1 => Status::Done,
            2 => Status::Rejected,
            _ => return Err(Error::Malformed),
        };
        let mut id = [0u8; COMMAND_ID_LEN];
        id.copy_from_slice(&payload[1..=COMMAND_ID_LEN]);
        Ok(Self { id, status })
    }
}
