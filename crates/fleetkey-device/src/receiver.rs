//! The server's side of one constrained device: verifies its session starts and
//! data frames and keeps its replay state (boot counter, frame counter).
//!
//! Refused: frames for another device or mode, a session start whose boot counter
//! is not above the last verified one (an old boot, or a replayed start), data
//! frames of a boot without a verified start, frame counters not above the last
//! accepted (replays and regressions), and forged or tampered frames. A refused
//! frame changes nothing.

use crate::DEVICE_ID_LEN;
use crate::control::Command;
use crate::error::Error;
use crate::frame::{self, FrameKind, Header, UP};
use crate::keys::{self, Mode, SessionKeys};
use zeroize::{Zeroize, ZeroizeOnDrop};

/// What the server knows of a device's keys.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub enum Credentials {
    /// X25519 mode: the device's registered public key and its factory PSK.
    X25519Psk {
        /// The device's X25519 public key.
        device_public: [u8; 32],
        /// The factory PSK.
        psk: [u8; 32],
    },
    /// Static-key mode: the device's factory key.
    StaticKey {
        /// The factory key.
        factory_key: [u8; 32],
    },
}

impl core::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(match self {
            Credentials::X25519Psk { .. } => "Credentials::X25519Psk(redacted)",
            Credentials::StaticKey { .. } => "Credentials::StaticKey(redacted)",
        })
    }
}

impl Credentials {
    /// The mode these credentials are for.
    pub fn mode(&self) -> Mode {
        match self {
            Credentials::X25519Psk { .. } => Mode::X25519Psk,
            Credentials::StaticKey { .. } => Mode::StaticKey,
        }
    }
}

/// A verified frame.
#[derive(Debug, PartialEq, Eq)]
pub struct Opened<'a> {
    /// Its header.
    pub header: Header,
    /// The plaintext (a slice of the frame buffer).
    pub payload: &'a [u8],
}

/// One device's verification state.
pub struct Receiver {
    device_id: [u8; DEVICE_ID_LEN],
    credentials: Credentials,
    keys: Option<SessionKeys>,
    boot: u32,
    counter: u32,
}

impl core::fmt::Debug for Receiver {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Receiver")
            .field("device_id", &self.device_id)
            .field("boot", &self.boot)
            .field("counter", &self.counter)
            .finish_non_exhaustive()
    }
}

impl Receiver {
    /// A receiver for a device, accepting boots above `last_boot` (0 for a new
    /// device; the stored value after a server restart).
    pub fn new(device_id: [u8; DEVICE_ID_LEN], credentials: Credentials, last_boot: u32) -> Self {
        Self {
            device_id,
            credentials,
            keys: None,
            boot: last_boot,
            counter: 0,
        }
    }

    /// The boot of the current verified session (or the last one given).
    pub fn boot(&self) -> u32 {
        self.boot
    }

    /// Whether a session start verified (so server→device frames can be sealed).
    pub fn has_session(&self) -> bool {
        self.keys.is_some()
    }

    /// The last accepted frame counter in the current boot.
    pub fn counter(&self) -> u32 {
        self.counter
    }

    /// The keys of a boot, from the server's X25519 scalar (X25519 mode).
    pub fn derive(
        &self,
        server_scalar: &[u8; 32],
        salt: &[u8; crate::SALT_LEN],
        boot: u32,
    ) -> Result<SessionKeys, Error> {
        Ok(match &self.credentials {
            Credentials::X25519Psk { device_public, psk } => {
                let mut shared = keys::shared_secret(server_scalar, device_public)?;
                let k = keys::derive(Mode::X25519Psk, &shared, psk, salt, &self.device_id, boot);
                shared.zeroize();
                k
            }
            Credentials::StaticKey { factory_key } => keys::derive(
                Mode::StaticKey,
                factory_key,
                &[],
                salt,
                &self.device_id,
                boot,
            ),
        })
    }

    /// Verifies and decrypts a device→server frame in place.
    pub fn accept<'a>(
        &mut self,
        server_scalar: &[u8; 32],
        frame_bytes: &'a mut [u8],
    ) -> Result<Opened<'a>, Error> {
        let h = Header::parse(frame_bytes)?;
        if h.device_id != self.device_id {
            return Err(Error::WrongDevice);
        }
        if h.mode != self.credentials.mode() {
            return Err(Error::WrongMode);
        }
        match h.kind {
            FrameKind::SessionStart => {
                if h.boot <= self.boot {
                    return Err(Error::OldBoot);
                }
                let keys = self.derive(server_scalar, &h.salt, h.boot)?;
                let (header, payload) = frame::open(&keys.up, UP, frame_bytes)?;
                self.keys = Some(keys);
                self.boot = header.boot;
                self.counter = 0;
                Ok(Opened { header, payload })
            }
            FrameKind::Data | FrameKind::Control => {
                let keys = match &self.keys {
                    Some(k) if h.boot == self.boot => k,
                    _ => return Err(Error::NoSession),
                };
                if h.counter <= self.counter {
                    return Err(Error::Replay);
                }
                let (header, payload) = frame::open(&keys.up, UP, frame_bytes)?;
                self.counter = header.counter;
                Ok(Opened { header, payload })
            }
        }
    }

    /// Seals a server→device data frame for the current session; `counter` must
    /// increase per frame (the caller keeps it).
    pub fn seal_down(&self, counter: u32, payload: &[u8], out: &mut [u8]) -> Result<usize, Error> {
        self.seal_down_as(FrameKind::Data, counter, payload, out)
    }

    /// Seals a command into a server→device control frame for the current
    /// session; `counter` as for [`Receiver::seal_down`] (one counter space for both).
    pub fn seal_command(
        &self,
        counter: u32,
        command: &Command<'_>,
        out: &mut [u8],
    ) -> Result<usize, Error> {
        let mut payload = [0u8; 1 + crate::control::COMMAND_ID_LEN + crate::control::MAX_BODY];
        let n = command.encode(&mut payload)?;
        self.seal_down_as(FrameKind::Control, counter, &payload[..n], out)
    }

    fn seal_down_as(
        &self,
        kind: FrameKind,
        counter: u32,
        payload: &[u8],
        out: &mut [u8],
    ) -> Result<usize, Error> {
        let keys = self.keys.as_ref().ok_or(Error::NoSession)?;
        if counter == 0 {
            return Err(Error::Malformed);
        }
        let h = Header {
            kind,
            mode: self.credentials.mode(),
            device_id: self.device_id,
            boot: self.boot,
            counter,
            salt: [0; crate::SALT_LEN],
        };
        frame::seal(&keys.down, frame::DOWN, &h, payload, out)
    }
}
