//! The one error type of `fleetkey-crypto`.

/// Everything that can go wrong in `fleetkey-crypto`.
///
/// Variants are grouped by whose fault it is. Opening failures are deliberately
/// coarse: a wrong key, tampered bytes and a wrong AAD all give [`Error::Open`], so
/// the error is never an oracle.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    // --- the input (peer or storage) is not what it claims to be ---
    /// The bytes do not start with the envelope magic. Check that the input is a
    /// fleetkey envelope (binary, or armored text starting with `fk1:`).
    #[error("not a fleetkey envelope")]
    NotAnEnvelope,
    /// The envelope has a format version this build does not know. Upgrade fleetkey.
    #[error("unsupported envelope format version {0}")]
    UnsupportedVersion(u8),
    /// An algorithm, mode or KEM identifier is not known to this build.
    #[error("unknown {what} id {id}")]
    UnknownId {
        /// Which kind of identifier.
        what: &'static str,
        /// The identifier found.
        id: u16,
    },
    /// A field is malformed (bad length, bad character, out of range).
    #[error("malformed {0}")]
    Malformed(&'static str),
    /// The input ends before the structure it describes is complete.
    #[error("truncated: the data ends before the envelope is complete")]
    Truncated,
    /// More bytes follow the final segment of a stream.
    #[error("unexpected data after the final segment")]
    TrailingData,
    /// Authentication failed: wrong key, tampered or truncated data, or a different AAD
    /// than was used to seal. Deliberately one error for all of these.
    #[error("cannot open: wrong key, tampered data, or different AAD")]
    Open,
    /// A signature did not verify.
    #[error("signature verification failed")]
    BadSignature,
    /// A credential or token has expired. Get a new one.
    #[error("expired")]
    Expired,
    /// A credential or token is not valid yet (its issue time is in the future):
    /// check the clocks.
    #[error("not valid yet")]
    NotYetValid,
    /// A key record is older (lower sequence) than one already accepted for the
    /// identity: a rollback. Keep the newer record.
    #[error("key record rolled back (sequence below the last one seen)")]
    Rollback,
    /// A key record was issued longer ago than the accepted maximum age; fetch a
    /// fresh one.
    #[error("key record is stale")]
    Stale,
    /// A valid key record revokes the identity (its sequence is given): do not
    /// trust its keys.
    #[error("identity revoked (record sequence {0})")]
    RecordRevoked(u64),
    /// A peer's X25519 public key is a low-order point (the shared secret would be zero).
    #[error("refused low-order X25519 public key")]
    LowOrderPoint,

    // --- the caller asked for something impossible ---
    /// Key material of the wrong length or form.
    #[error("invalid key: {0}")]
    InvalidKey(&'static str),
    /// The operation does not exist for this key or input (for example Ed25519ph
    /// over a SHA-256 digest).
    #[error("not supported: {0}")]
    Unsupported(&'static str),
    /// An input exceeds a documented limit.
    #[error("{0} too large")]
    TooLarge(&'static str),

    // --- the platform failed ---
    /// The cryptographic provider reported an internal failure (for example the system
    /// random generator is unavailable). Retrying rarely helps; check the host.
    #[error("cryptographic provider failure")]
    Provider,
}

impl From<aws_lc_rs::error::Unspecified> for Error {
    fn from(_: aws_lc_rs::error::Unspecified) -> Self {
        Error::Provider
    }
}

/// Result alias for this crate.
pub type Result<T, E = Error> = core::result::Result<T, E>;
