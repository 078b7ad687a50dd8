//! `fleetkey verify`: checks a keyring's signature offline, with the public key
//! that `fleetkey keys public-key` printed (or a PEM SubjectPublicKeyInfo).

use super::keys::{MAX_SEAL_INPUT, read_all};
use crate::cli::{PrehashArgs, VerifyArgs};
use crate::error::{CliError, CliResult};
use crate::files::open_input;
use base64::{Engine as _, engine::general_purpose::STANDARD as B64};
use fleetkey_crypto::prehash::HashAlg;
use fleetkey_server::keys::{MAX_PUBLIC_KEY_FILE, SignInput, parse_public_key, verify_with};
use std::io::Read;

/// What `--prehash` makes of the input: the message itself (at most 16 MiB), or
/// its digest, hashed here as it streams in.
pub(crate) fn read_sign_input(
    input: Option<&std::path::Path>,
    prehash: &PrehashArgs,
) -> CliResult<SignInput> {
    if !prehash.prehash {
        return Ok(SignInput::Message(read_all(input, MAX_SEAL_INPUT)?));
    }
    let alg = HashAlg::parse(&prehash.hash)
        .ok_or_else(|| CliError::usage(format!("--hash {}: unknown", prehash.hash)))?;
    let mut inp = open_input(input)?;
    let mut ctx = alg.context();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = inp
            .reader
            .read(&mut buf)
            .map_err(|e| CliError::io(&inp.name, &e))?;
        if n == 0 {
            break;
        }
        ctx.update(&buf[..n]);
    }
    Ok(SignInput::Digest(alg.finish(ctx)))
}

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
    let msg = read_sign_input(args.input.as_deref(), &args.prehash)?;
    verify_with(kind, &pk, msg.signable(), &sig)
        .map_err(|_| CliError::refused(format!("invalid {} signature", kind.name())))?;
    crate::out!("valid ({})", kind.name());
    Ok(())
}
