//! `fleetkey verify`: checks a keyring's signature offline, with the public key
//! that `fleetkey keys public-key` printed (or a PEM SubjectPublicKeyInfo).

use super::keys::{MAX_SEAL_INPUT, read_all};
use crate::cli::VerifyArgs;
use crate::error::{CliError, CliResult};
use base64::{Engine as _, engine::general_purpose::STANDARD as B64};
use fleetkey_server::keys::{MAX_PUBLIC_KEY_FILE, parse_public_key, verify_with};

/// The bytes of a `--signature BASE64` argument.
pub(crate) fn signature_arg(text: &str) -> CliResult<Vec<u8>> {
    B64.decode(text.trim())
        .map_err(|_| CliError::usage("--signature is not base64"))
}

pub fn run(args: VerifyArgs) -> CliResult<()> {
    let shown = args.public_key.display().to_string();
    let text = read_all(Some(&args.public_key), MAX_PUBLIC_KEY_FILE as u64)?;
    let text = String::from_utf8(text)
        .map_err(|_| CliError::usage(format!("{shown}: not a text public key file")))?;
    let (kind, pk) =
        parse_public_key(&text).map_err(|e| CliError::usage(format!("{shown}: {e}")))?;
    let sig = signature_arg(&args.signature)?;
    let msg = read_all(args.input.as_deref(), MAX_SEAL_INPUT)?;
    verify_with(kind, &pk, &msg, &sig)
        .map_err(|_| CliError::refused(format!("invalid {} signature", kind.name())))?;
    crate::out!("valid ({})", kind.name());
    Ok(())
}
