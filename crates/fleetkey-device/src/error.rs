//! Errors. None carries key material; each refusal has its own variant so a
//! receiver can count refusals by reason.

/// What can go wrong.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Error {
    /// The X25519 result is all zeros: the other key is of low order.
    LowOrderKey,
    /// The hardware RNG failed.
    Rng,
    /// The boot counter could not be persisted (no session without it).
    Storage,
    /// The boot counter or frame counter is exhausted.
    Exhausted,
    /// The frame is shorter than its header and tag, or its header is malformed.
    Malformed,
    /// Unknown protocol version.
    Version,
    /// The frame names another device.
    WrongDevice,
    /// The frame's mode is not the one this device is registered for.
    WrongMode,
    /// A session-start frame with a boot counter not above the last one seen.
    OldBoot,
    /// A data frame for a boot with no verified session start.
    NoSession,
    /// A frame counter not above the last one accepted (a replay or regression).
    Replay,
    /// The tag does not verify (forged, tampered, or the wrong keys).
    Forged,
    /// The output buffer is too small.
    BufferTooSmall,
    /// The device's keys were erased (wiped): it cannot boot.
    Erased,
}

impl Error {
    /// A short stable name (metrics labels, log fields).
    pub fn as_str(self) -> &'static str {
        match self {
            Error::LowOrderKey => "low_order_key",
            Error::Rng => "rng",
            Error::Storage => "storage",
            Error::Exhausted => "exhausted",
            Error::Malformed => "malformed",
            Error::Version => "version",
            Error::WrongDevice => "wrong_device",
            Error::WrongMode => "wrong_mode",
            Error::OldBoot => "old_boot",
            Error::NoSession => "no_session",
            Error::Replay => "replay",
            Error::Forged => "forged",
            Error::BufferTooSmall => "buffer_too_small",
            Error::Erased => "erased",
        }
    }
}

impl core::fmt::Display for Error {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(self.as_str())
    }
}
