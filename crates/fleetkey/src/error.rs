//! Command-line failures: a one-line message, an optional hint, an exit code.

use std::fmt;

/// Exit codes, documented in `fleetkey --help`.
pub mod code {
    /// The envelope or key was refused (tampered, wrong key, wrong AAD, not an envelope).
    pub const REFUSED: i32 = 1;
    /// The command line was wrong (clap also uses 2).
    pub const USAGE: i32 = 2;
    /// Reading or writing a file failed.
    pub const IO: i32 = 3;
    /// What the command names does not exist (a keyring, fleet, device, token;
    /// HTTP 404).
    pub const NOT_FOUND: i32 = 4;
    /// The server could not be reached or failed (a network error, HTTP 5xx, an
    /// answer that is not the API's), or the store failed: try again later.
    pub const UNAVAILABLE: i32 = 5;
}

/// A failure to report to the user.
#[derive(Debug)]
pub struct CliError {
    /// One line saying what happened.
    pub message: String,
    /// One line saying what to try, if there is something.
    pub hint: Option<String>,
    /// The process exit code.
    pub code: i32,
    /// Exit quietly with success: the reader of stdout went away (`| head`).
    pub broken_pipe: bool,
}

impl CliError {
    pub fn new(code: i32, message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            hint: None,
            code,
            broken_pipe: false,
        }
    }

    pub fn hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }

    pub fn refused(message: impl Into<String>) -> Self {
        Self::new(code::REFUSED, message)
    }

    pub fn usage(message: impl Into<String>) -> Self {
        Self::new(code::USAGE, message)
    }

    pub fn io(what: impl fmt::Display, err: &std::io::Error) -> Self {
        let mut e = Self::new(code::IO, format!("{what}: {err}"));
        e.broken_pipe = err.kind() == std::io::ErrorKind::BrokenPipe;
        e
    }
}

impl fmt::Display for CliError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for CliError {}

pub type CliResult<T> = Result<T, CliError>;

/// Explains an envelope refusal in the user's terms. Wrong key, tampering and wrong
/// AAD are indistinguishable by design; the message lists them all.
pub fn envelope_error(e: fleetkey_crypto::Error) -> CliError {
    use fleetkey_crypto::Error as E;
    match e {
        E::NotAnEnvelope => CliError::refused("not a fleetkey envelope").hint(
            "expected binary input starting with 'fken' or armored text starting with 'fk1:'",
        ),
        E::UnsupportedVersion(v) => CliError::refused(format!(
            "unknown envelope format version {v} (this fleetkey reads version {})",
            fleetkey_crypto::envelope::VERSION
        ))
        .hint("upgrade fleetkey to open newer envelopes"),
        E::Truncated => {
            CliError::refused("truncated: the input ends before the envelope is complete")
                .hint("the file was cut short in transfer or storage; fetch it again")
        }
        E::TrailingData => CliError::refused("unexpected data after the final segment")
            .hint("something was appended to the envelope; nothing was written"),
        E::Open => CliError::refused(
            "cannot open: the data was tampered with, the --aad or --context differs from sealing, or this is not the key that sealed it",
        ),
        E::UnknownId { what, id } => {
            CliError::refused(format!("unknown {what} id {id} in the envelope header"))
                .hint("the envelope was made by a newer fleetkey, or is corrupt")
        }
        other => CliError::refused(other.to_string()),
    }
}

/// Maps a stream failure: I/O errors keep their own code.
pub fn stream_error(e: fleetkey_crypto::envelope::io::StreamError, what: &str) -> CliError {
    match e {
        fleetkey_crypto::envelope::io::StreamError::Io(io) => CliError::io(what, &io),
        fleetkey_crypto::envelope::io::StreamError::Envelope(e) => envelope_error(e),
        other => CliError::refused(other.to_string()),
    }
}
