//! The device's side: its static state, the boot, and sealing frames.

use crate::control::{Ack, Command};
use crate::error::Error;
use crate::frame::{self, FrameKind, Header, UP};
use crate::keys::{self, Mode, SessionKeys};
use crate::{DEVICE_ID_LEN, SALT_LEN};
use zeroize::{Zeroize, ZeroizeOnDrop};

/// The hardware random number generator (the firmware implements it).
pub trait Rng {
    /// Fills `buf` with random bytes.
    fn fill(&mut self, buf: &mut [u8]) -> Result<(), Error>;
}

/// Persistent storage for the boot counter (the firmware implements it; the write
/// must be durable before it returns).
pub trait Storage {
    /// Persists the boot counter.
    fn store_boot_counter(&mut self, boot: u32) -> Result<(), Error>;
}

/// What a device keeps across boots (from the factory, plus the boot counter).
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct Device {
    /// fleetkey device id (the 8 bytes of `dev_…`).
    #[zeroize(skip)]
    pub device_id: [u8; DEVICE_ID_LEN],
    #[zeroize(skip)]
    mode: Mode,
    /// X25519 scalar (X25519 mode) or the factory key (static-key mode).
    secret: [u8; 32],
    /// The server's X25519 public key (X25519 mode).
    #[zeroize(skip)]
    server_public: [u8; 32],
    /// The factory pre-shared key (X25519 mode).
    psk: [u8; 32],
    /// The last boot counter used.
    #[zeroize(skip)]
    boot: u32,
    /// Its keys were erased ([`Device::erase`]): it never boots again.
    #[zeroize(skip)]
    erased: bool,
}

impl core::fmt::Debug for Device {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Device")
            .field("device_id", &self.device_id)
            .field("mode", &self.mode)
            .field("boot", &self.boot)
            .finish_non_exhaustive()
    }
}

/// One boot's session: keys, salt and the next frame counter.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct Session {
    keys: SessionKeys,
    #[zeroize(skip)]
    device_id: [u8; DEVICE_ID_LEN],
    #[zeroize(skip)]
    mode: Mode,
    #[zeroize(skip)]
    boot: u32,
    #[zeroize(skip)]
    salt: [u8; SALT_LEN],
    #[zeroize(skip)]
    counter: u32,
    #[zeroize(skip)]
    last_down: u32,
}

impl core::fmt::Debug for Session {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Session")
            .field("boot", &self.boot)
            .field("counter", &self.counter)
            .finish_non_exhaustive()
    }
}

impl Device {
    /// A device in X25519 mode: its scalar, the server's public key, the factory
    /// PSK, and the boot counter it persisted.
    pub fn x25519(
        device_id: [u8; DEVICE_ID_LEN],
        scalar: [u8; 32],
        server_public: [u8; 32],
        psk: [u8; 32],
        boot: u32,
    ) -> Self {
        Self {
            device_id,
            mode: Mode::X25519Psk,
            secret: scalar,
            server_public,
            psk,
            boot,
            erased: false,
        }
    }

    /// A device in static-key mode (trusted labs): its factory key.
    pub fn static_key(device_id: [u8; DEVICE_ID_LEN], factory_key: [u8; 32], boot: u32) -> Self {
        Self {
            device_id,
            mode: Mode::StaticKey,
            secret: factory_key,
            server_public: [0; 32],
            psk: [0; 32],
            boot,
            erased: false,
        }
    }

    /// Erases the device's keys (a wipe command, after its acknowledgement was
    /// sent): the secret and PSK are zeroized and [`Device::boot`] refuses from
    /// now on. The firmware must also erase its persisted copy.
    pub fn erase(&mut self) {
        self.secret.zeroize();
        self.psk.zeroize();
        self.erased = true;
    }

    /// Whether [`Device::erase`] ran.
    pub fn is_erased(&self) -> bool {
        self.erased
    }

    /// The mode.
    pub fn mode(&self) -> Mode {
        self.mode
    }

    /// The device's X25519 public key (X25519 mode; registered at the factory).
    pub fn public_key(&self) -> [u8; 32] {
        keys::public_key(&self.secret)
    }

    /// The last boot counter used.
    pub fn boot_counter(&self) -> u32 {
        self.boot
    }

    /// Starts a boot: increments and persists the boot counter (before anything
    /// else; no session if that fails), draws a fresh salt, derives the keys.
    pub fn boot(
        &mut self,
        rng: &mut impl Rng,
        storage: &mut impl Storage,
    ) -> Result<Session, Error> {
        if self.erased {
            return Err(Error::Erased);
        }
        let boot = self.boot.checked_add(1).ok_or(Error::Exhausted)?;
        storage.store_boot_counter(boot)?;
        self.boot = boot;
        let mut salt = [0u8; SALT_LEN];
        rng.fill(&mut salt)?;
        let keys = match self.mode {
            Mode::X25519Psk => {
                let mut shared = keys::shared_secret(&self.secret, &self.server_public)?;
                let k = keys::derive(self.mode, &shared, &self.psk, &salt, &self.device_id, boot);
                shared.zeroize();
                k
            }
            Mode::StaticKey => {
                keys::derive(self.mode, &self.secret, &[], &salt, &self.device_id, boot)
            }
        };
        Ok(Session {
            keys,
            device_id: self.device_id,
            mode: self.mode,
            boot,
            salt,
            counter: 0,
            last_down: 0,
        })
    }
}

impl Session {
    /// The boot counter.
    pub fn boot(&self) -> u32 {
        self.boot
    }

    /// The boot's salt (public: it travels in the session-start frame).
    pub fn salt(&self) -> &[u8; SALT_LEN] {
        &self.salt
    }

    /// The device id.
    pub fn device_id(&self) -> &[u8; DEVICE_ID_LEN] {
        &self.device_id
    }

    /// The mode.
    pub fn mode(&self) -> Mode {
        self.mode
    }

    /// The session-start frame (counter 0, carrying the salt; `payload` may be empty).
    pub fn start_frame(&self, payload: &[u8], out: &mut [u8]) -> Result<usize, Error> {
        let h = Header {
            kind: FrameKind::SessionStart,
            mode: self.mode,
            device_id: self.device_id,
            boot: self.boot,
            counter: 0,
            salt: self.salt,
        };
        frame::seal(&self.keys.up, UP, &h, payload, out)
    }

    /// The next data frame.
    pub fn data_frame(&mut self, payload: &[u8], out: &mut [u8]) -> Result<usize, Error> {
        self.next_frame(FrameKind::Data, payload, out)
    }

    /// The next control frame acknowledging a command ([`crate::control`]).
    pub fn ack_frame(&mut self, ack: &Ack, out: &mut [u8]) -> Result<usize, Error> {
        self.next_frame(FrameKind::Control, &ack.encode(), out)
    }

    fn next_frame(
        &mut self,
        kind: FrameKind,
        payload: &[u8],
        out: &mut [u8],
    ) -> Result<usize, Error> {
        let counter = self.counter.checked_add(1).ok_or(Error::Exhausted)?;
        let h = Header {
            kind,
            mode: self.mode,
            device_id: self.device_id,
            boot: self.boot,
            counter,
            salt: [0; SALT_LEN],
        };
        let n = frame::seal(&self.keys.up, UP, &h, payload, out)?;
        self.counter = counter;
        Ok(n)
    }

    /// Opens a server→device frame of this session (data, or a control frame
    /// carrying a command); counters strictly increasing: replays refused.
    pub fn open_down<'a>(&mut self, frame_bytes: &'a mut [u8]) -> Result<Downlink<'a>, Error> {
        let h = Header::parse(frame_bytes)?;
        if h.device_id != self.device_id || h.boot != self.boot || h.kind == FrameKind::SessionStart
        {
            return Err(Error::WrongDevice);
        }
        if h.counter <= self.last_down {
            return Err(Error::Replay);
        }
        let (h, body) = frame::open(&self.keys.down, frame::DOWN, frame_bytes)?;
        // A control frame that verifies but does not parse is still consumed:
        // its counter is spent either way.
        self.last_down = h.counter;
        match h.kind {
            FrameKind::Control => Command::parse(body).map(Downlink::Command),
            _ => Ok(Downlink::Data(body)),
        }
    }
}

/// A verified server→device frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Downlink<'a> {
    /// Application data.
    Data(&'a [u8]),
    /// A command to carry out and acknowledge ([`Session::ack_frame`]).
    Command(Command<'a>),
}
