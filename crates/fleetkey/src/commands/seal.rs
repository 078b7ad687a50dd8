//! `fleetkey seal`.

use crate::cli::SealArgs;
use crate::error::{CliError, CliResult, stream_error};
use crate::files::{Output, open_input, progress};
use crate::keyfile::{load_key, load_recipient};
use fleetkey_crypto::{
    aead::Algorithm,
    envelope::{SEGMENT_LOG2_RANGE, armor, io as eio, recipient, stream},
};

pub fn run(args: SealArgs) -> CliResult<()> {
    // Refuse bad combinations before doing any work.
    if !SEGMENT_LOG2_RANGE.contains(&args.segment_log2) {
        return Err(CliError::usage("--segment-log2 must be between 10 and 20"));
    }
    if args.datakey && args.keyring.is_none() {
        return Err(CliError::usage(
            "--datakey takes its data key from --keyring NAME",
        ));
    }
    let mut output = Output::create(args.output.as_deref(), args.force)?;
    if output.is_terminal() && !args.armor {
        return Err(
            CliError::usage("refusing to write a binary envelope to a terminal")
                .hint("pass -o FILE, redirect stdout, or add --armor for text"),
        );
    }
    let bind = args.bind.binding()?;
    let algorithm = || {
        Algorithm::from_name(&args.algorithm).map_err(|_| {
            CliError::usage(format!("unknown algorithm '{}'", args.algorithm))
                .hint("choose aes-256-gcm, chacha20-poly1305 or aes-256-gcm-siv")
        })
    };
    let aad = &bind.bytes()?;
    let (header, sealer) = if let (Some(name), true) = (&args.keyring, args.datakey) {
        // A data key from the keyring; the data never leaves this machine.
        let (key, wrapped) = super::keys::keyring_datakey(name, algorithm()?, &bind)?;
        let (inner, _) = fleetkey_crypto::envelope::Header::parse(&wrapped)
            .map_err(crate::error::envelope_error)?;
        stream::seal_wrapped(
            &key,
            &inner.key_id,
            inner.key_version,
            args.segment_log2,
            wrapped,
            aad,
        )
        .map_err(crate::error::envelope_error)?
    } else if let Some(name) = &args.keyring {
        let env = super::keys::keyring_seal(name, args.input.as_deref(), &bind)?;
        let out_name = output.name();
        let bytes = if args.armor {
            format!("{}\n", armor::encode(&env)).into_bytes()
        } else {
            env
        };
        output
            .writer()
            .write_all(&bytes)
            .map_err(|e| CliError::io(&out_name, &e))?;
        return output.commit(args.sync);
    } else if let Some(path) = &args.key {
        let key = load_key(path)?;
        stream::seal_symmetric(
            &key.key,
            &key.key_id,
            key.key_version,
            args.segment_log2,
            aad,
        )
        .map_err(crate::error::envelope_error)?
    } else if let Some(r) = &args.recipient {
        let recipient = load_recipient(r)?;
        recipient::seal(&recipient, algorithm()?, args.segment_log2, aad)
            .map_err(crate::error::envelope_error)?
    } else {
        return Err(CliError::usage(
            "pass --key FILE or --recipient STRING_OR_FILE",
        ));
    };
    let input = open_input(args.input.as_deref())?;
    let bar = progress(input.size, "sealing");
    let mut tick = |n: u64| bar.set_position(n);
    let out_name = output.name();
    if args.armor {
        let mut bytes = Vec::new();
        eio::seal(&header, sealer, input.reader, &mut bytes, &mut tick)
            .map_err(|e| stream_error(e, &input.name))?;
        let mut text = armor::encode(&bytes);
        text.push('\n');
        output
            .writer()
            .write_all(text.as_bytes())
            .map_err(|e| CliError::io(&out_name, &e))?;
    } else {
        eio::seal(&header, sealer, input.reader, output.writer(), &mut tick)
            .map_err(|e| stream_error(e, &out_name))?;
    }
    bar.finish_and_clear();
    output.commit(args.sync)
}
