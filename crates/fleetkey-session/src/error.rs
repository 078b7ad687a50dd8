//! The one error type of `fleetkey-session`.

/// What can go wrong in a session. After any error a handshake or transport is
/// failed for good: every later call returns the same error (sticky failure).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    // --- the peer's fault ---
    /// The peer offered a low-order X25519 key (static or ephemeral): every
    /// Diffie-Hellman output with it would be zero.
    #[error("peer key refused: low-order X25519 point")]
    LowOrderKey,
    /// A handshake or transport message did not decrypt or authenticate (wrong
    /// keys, tampered, replayed or reordered).
    #[error("message refused: it does not authenticate")]
    Decrypt,
    /// A message is larger than the configured limit.
    #[error("{what} of {len} bytes is over the limit of {limit}")]
    TooLarge {
        /// Which kind of message.
        what: &'static str,
        /// Its length.
        len: usize,
        /// The limit.
        limit: usize,
    },
    /// The bytes are not a valid frame or message (bad length, empty, trailing data).
    #[error("malformed {0}")]
    Malformed(&'static str),
    /// The peer's static key is not the one expected (pinned or from the directory).
    #[error("peer static key is not the expected one")]
    WrongPeer,
    /// The attestation over the handshake hash does not verify.
    #[error("attestation does not verify for this session")]
    Attestation,

    // --- the caller's fault ---
    /// The call does not fit the state (writing when it is the peer's turn,
    /// transport before the handshake ended, a pattern without the needed key).
    #[error("not possible now: {0}")]
    State(&'static str),
    /// The handshake did not finish before its deadline.
    #[error("handshake timed out")]
    Timeout,

    /// No message arrived within the idle timeout.
    #[error("session idle for too long")]
    Idle,

    // --- the platform ---
    /// The connection failed or closed (the OS error kind is given).
    #[error("connection: {0:?}")]
    Io(std::io::ErrorKind),
    /// The randomness source or the crypto provider failed.
    #[error("crypto provider failure")]
    Provider,
}

impl From<snow::Error> for Error {
    fn from(e: snow::Error) -> Self {
        match e {
            snow::Error::Decrypt => Error::Decrypt,
            snow::Error::Dh => Error::LowOrderKey,
            snow::Error::Input => Error::Malformed("noise message"),
            snow::Error::Rng => Error::Provider,
            _ => Error::State("noise state"),
        }
    }
}

/// Result alias for this crate.
pub type Result<T, E = Error> = core::result::Result<T, E>;
