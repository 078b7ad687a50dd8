//! `fleetkey unseal`.

use super::{EnvelopeStart, MAX_IN_MEMORY, read_envelope_start, read_up_to};
use crate::cli::UnsealArgs;
use crate::error::{CliError, CliResult, envelope_error, stream_error};
use crate::files::{Output, open_input, progress};
use crate::keyfile::{load_identity, load_key};
use fleetkey_crypto::envelope::{Body, io as eio, recipient, single, stream};
use fleetkey_crypto::keyfile::{IdentityFile, SymmetricKeyFile};

pub fn run(args: UnsealArgs) -> CliResult<()> {
    let bind = args.bind.binding()?;
    if let Some(name) = &args.keyring {
        return keyring(name, &args, &bind);
    }
    let aad = bind.bytes()?;
    // Load the key first: a bad key file fails before any input is read.
    enum Opener {
        Key(SymmetricKeyFile, String),
        Identity(Box<IdentityFile>, String),
    }
    let opener = match (&args.key, &args.identity) {
        (Some(p), None) => Opener::Key(load_key(p)?, p.display().to_string()),
        (None, Some(p)) => Opener::Identity(Box::new(load_identity(p)?), p.display().to_string()),
        _ => {
            return Err(CliError::usage(
                "pass exactly one of --key FILE or --identity FILE",
            ));
        }
    };
    let (mut output, bar, name, start) = begin(&args)?;
    let EnvelopeStart {
        header,
        header_bytes,
        body_start,
        mut rest,
    } = start;
    let out_name = output.name();
    let mut tick = |n: u64| bar.set_position(n);

    match (&opener, &header.body) {
        (Opener::Key(key, path), Body::Single { .. } | Body::Stream { .. }) => {
            if header.key_id != key.key_id || header.key_version != key.key_version {
                return Err(wrong_key(
                    &header.key_id,
                    header.key_version,
                    path,
                    &key.key_id,
                    key.key_version,
                ));
            }
            if let Body::Single { .. } = header.body {
                let mut whole = header_bytes.clone();
                whole.extend_from_slice(&body_start);
                whole.extend(read_up_to(&mut *rest, MAX_IN_MEMORY, &name)?);
                let pt = single::open_parsed(&key.key, &header, &whole, header_bytes.len(), &aad)
                    .map_err(envelope_error)?;
                output
                    .writer()
                    .write_all(&pt)
                    .map_err(|e| CliError::io(&out_name, &e))?;
            } else {
                let o = stream::open_symmetric(&key.key, &header, &header_bytes, &aad)
                    .map_err(envelope_error)?;
                eio::open(o, body_start, rest, output.writer(), &mut tick)
                    .map_err(|e| stream_error(e, &out_name))?;
            }
        }
        (Opener::Identity(id, path), Body::Recipient { .. }) => {
            if header.key_id != id.key_id {
                return Err(CliError::refused(format!(
                    "wrong identity: the envelope was sealed to {}, but {path} is {}",
                    header.key_id, id.key_id
                )));
            }
            let o = recipient::open(&id.identity, &header, &header_bytes, &aad)
                .map_err(envelope_error)?;
            eio::open(o, body_start, rest, output.writer(), &mut tick)
                .map_err(|e| stream_error(e, &out_name))?;
        }
        (_, Body::Wrapped { .. }) => {
            return Err(CliError::usage(format!(
                "this envelope's data key is wrapped by keyring {}; open it with --keyring",
                header.key_id
            )));
        }
        (Opener::Key(..), Body::Recipient { .. }) => {
            return Err(CliError::usage(format!(
                "this envelope is sealed to recipient {}; open it with --identity",
                header.key_id
            )));
        }
        (Opener::Identity(..), _) => {
            return Err(CliError::usage(format!(
                "this envelope is sealed with symmetric key {} version {}; open it with --key",
                header.key_id, header.key_version
            )));
        }
    }
    bar.finish_and_clear();
    output.commit(args.sync)
}

/// The output (prepared first, so a bad destination fails fast), a progress bar,
/// the input's name and the envelope's start.
fn begin(args: &UnsealArgs) -> CliResult<(Output, indicatif::ProgressBar, String, EnvelopeStart)> {
    let output = Output::create(args.output.as_deref(), args.force)?;
    let input = open_input(args.input.as_deref())?;
    let name = input.name.clone();
    let bar = progress(input.size, "unsealing");
    let start = read_envelope_start(input.reader, &name)?;
    Ok((output, bar, name, start))
}

/// `--keyring NAME`: a keyring envelope is opened by the keyring; a mode-4
/// envelope's data key is unwrapped by the keyring and the body opened here,
/// streaming.
fn keyring(name: &str, args: &UnsealArgs, bind: &crate::binding::Binding) -> CliResult<()> {
    let aad = bind.bytes()?;
    let (mut output, bar, in_name, start) = begin(args)?;
    let EnvelopeStart {
        header,
        header_bytes,
        body_start,
        mut rest,
    } = start;
    let out_name = output.name();
    if let Body::Wrapped { wrapped, .. } = &header.body {
        let key = super::keys::keyring_unseal(name, wrapped, bind)?;
        let secret = fleetkey_crypto::secret::SecretBytes::from_slice(&key)
            .map_err(|_| CliError::refused("the unwrapped data key is not 32 bytes"))?;
        let key = fleetkey_crypto::aead::AeadKey::new(header.algorithm, secret)
            .map_err(envelope_error)?;
        let o =
            stream::open_symmetric(&key, &header, &header_bytes, &aad).map_err(envelope_error)?;
        let mut tick = |n: u64| bar.set_position(n);
        eio::open(o, body_start, rest, output.writer(), &mut tick)
            .map_err(|e| stream_error(e, &out_name))?;
    } else {
        let mut whole = header_bytes;
        whole.extend_from_slice(&body_start);
        whole.extend(read_up_to(
            &mut *rest,
            2 * super::keys::MAX_SEAL_INPUT,
            &in_name,
        )?);
        let pt = super::keys::keyring_unseal(name, &whole, bind)?;
        output
            .writer()
            .write_all(&pt)
            .map_err(|e| CliError::io(&out_name, &e))?;
    }
    bar.finish_and_clear();
    output.commit(args.sync)
}

fn wrong_key(
    env_id: &impl std::fmt::Display,
    env_v: u32,
    path: &str,
    id: &impl std::fmt::Display,
    v: u32,
) -> CliError {
    CliError::refused(format!(
        "wrong key: the envelope was sealed with key {env_id} version {env_v}, but {path} holds {id} version {v}"
    ))
    .hint(format!("find the key file for {env_id} (see `fleetkey inspect`)"))
}
