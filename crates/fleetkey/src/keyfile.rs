//! Loading and writing key and identity files for the CLI: the text format lives in
//! `fleetkey_crypto::keyfile`, the 0600 handling in `fleetkey_server::secret_file`;
//! this module turns their errors into messages with hints.

use crate::error::{CliError, CliResult, code};
use fleetkey_crypto::hpke::XWingRecipient;
use fleetkey_crypto::keyfile::{self, IdentityFile, KeyFileError, SymmetricKeyFile};
use fleetkey_server::secret_file::{self, SecretFileError};
use std::path::Path;

/// Maps a secret-file failure to a CLI error with a hint.
pub fn secret_file_error(e: SecretFileError) -> CliError {
    match &e {
        SecretFileError::Exists(_) => CliError::new(code::IO, e.to_string())
            .hint("choose another path, or pass --force to replace it"),
        SecretFileError::Permissive { path, .. } => {
            CliError::new(code::IO, e.to_string()).hint(format!("run: chmod 600 {path}"))
        }
        SecretFileError::TooLarge(_) => CliError::refused(e.to_string()),
        _ => CliError::new(code::IO, e.to_string()),
    }
}

fn key_file_error(path: &Path, e: KeyFileError) -> CliError {
    match e {
        KeyFileError::WrongKind { found, .. } if found.contains("identity") => {
            CliError::usage(format!("{} is {found}", path.display()))
                .hint("use --identity for identity files")
        }
        KeyFileError::WrongKind { found, .. } => {
            CliError::usage(format!("{} is {found}", path.display()))
                .hint("use --key for symmetric key files")
        }
        other => CliError::refused(format!("{}: {other}", path.display())),
    }
}

/// Writes a new secret file (mode 0600).
pub fn write_secret_file(path: &Path, contents: &[u8], force: bool) -> CliResult<()> {
    secret_file::write(path, contents, force).map_err(secret_file_error)
}

/// Loads a symmetric key file.
pub fn load_key(path: &Path) -> CliResult<SymmetricKeyFile> {
    let text = secret_file::read(path).map_err(secret_file_error)?;
    SymmetricKeyFile::parse(&text).map_err(|e| key_file_error(path, e))
}

/// Loads an identity file.
pub fn load_identity(path: &Path) -> CliResult<IdentityFile> {
    let text = secret_file::read(path).map_err(secret_file_error)?;
    IdentityFile::parse(&text).map_err(|e| key_file_error(path, e))
}

/// Parses `fk1r:…`, or reads it from a file (a recipient file or an identity file).
pub fn load_recipient(arg: &str) -> CliResult<XWingRecipient> {
    let text = if arg.starts_with(keyfile::RECIPIENT_PREFIX) {
        arg.to_owned()
    } else {
        let path = Path::new(arg);
        let meta = std::fs::metadata(path).map_err(|e| {
            CliError::io(format!("--recipient {arg}"), &e)
                .hint("pass a recipient string (fk1r:…) or a file that holds one")
        })?;
        if meta.len() > keyfile::MAX_LEN as u64 {
            return Err(CliError::refused(format!(
                "{arg} is too large to be a recipient file"
            )));
        }
        std::fs::read_to_string(path).map_err(|e| CliError::io(arg, &e))?
    };
    keyfile::parse_recipient(&text).map_err(|e| CliError::usage(format!("{arg}: {e}")))
}
