//! Client errors. None carries key material.

/// What can go wrong on the device side.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The session layer failed (handshake, decryption, framing, timeout, I/O).
    #[error("session: {0}")]
    Session(#[from] fleetkey_session::Error),
    /// The server refused the device (no retry helps).
    #[error("refused by the server: {0}")]
    Refused(String),
    /// A key record was refused (signature, expiry, age, rollback, revocation).
    #[error("key record: {0}")]
    Record(fleetkey_crypto::Error),
    /// No usable key record for an identity.
    #[error("no key record for {0}")]
    NoRecord(String),
    /// The server broke the protocol.
    #[error("protocol: {0}")]
    Protocol(String),
    /// The persisted state could not be read or written.
    #[error("state: {0}")]
    State(String),
    /// No server key is known and first contact (XX) is not allowed.
    #[error("no server key: pin one, give a directory record, or allow first contact")]
    NoServerKey,
    /// [`MAX_OUTBOX`](crate::device::MAX_OUTBOX) messages wait for their
    /// acknowledgement: nothing was sent and no sequence number used. Take
    /// acknowledgements with `recv` (or reconnect, which sends the outbox again),
    /// then send again. Back-pressure, never a silent drop.
    #[error("telemetry outbox full: {0} messages wait for acknowledgement")]
    OutboxFull(usize),
    /// Every attempt failed; the last error.
    #[error("gave up after {attempts} attempts: {last}")]
    GaveUp {
        /// Attempts made.
        attempts: u32,
        /// The last error.
        last: Box<Error>,
    },
}

impl Error {
    /// Whether trying again later can help (network trouble, a busy or restarting
    /// server); refusals, wrong keys and bad records are permanent.
    pub fn is_transient(&self) -> bool {
        use fleetkey_session::Error as S;
        matches!(self, Error::Session(S::Io(_) | S::Timeout | S::Idle))
    }
}

/// Results of this crate.
pub type Result<T> = std::result::Result<T, Error>;
