//! `fleetkey keygen`.

use crate::cli::KeygenArgs;
use crate::error::{CliError, CliResult};
use crate::keyfile::write_secret_file;
use fleetkey_crypto::keyfile::{IdentityFile, SymmetricKeyFile};
use fleetkey_crypto::{aead::Algorithm, envelope::KeyId};

pub fn run(args: KeygenArgs) -> CliResult<()> {
    if args.recipient {
        let id = IdentityFile::generate().map_err(|e| CliError::refused(e.to_string()))?;
        write_secret_file(&args.output, id.to_text().as_bytes(), args.force)?;
        let recipient = id.recipient_string();
        if let Some(path) = &args.recipient_out {
            let mut opts = std::fs::OpenOptions::new();
            opts.write(true);
            if args.force {
                opts.create(true).truncate(true);
            } else {
                opts.create_new(true);
            }
            let mut f = opts
                .open(path)
                .map_err(|e| CliError::io(path.display(), &e))?;
            std::io::Write::write_all(&mut f, format!("{recipient}\n").as_bytes())
                .map_err(|e| CliError::io(path.display(), &e))?;
            eprintln!(
                "fleetkey: wrote identity {} to {}",
                id.key_id,
                args.output.display()
            );
            eprintln!("fleetkey: wrote its recipient to {}", path.display());
        } else {
            eprintln!(
                "fleetkey: wrote identity {} to {}; its recipient (share this) is:",
                id.key_id,
                args.output.display()
            );
            crate::out!("{recipient}");
        }
        return Ok(());
    }
    let algorithm = Algorithm::from_name(&args.algorithm).map_err(|_| {
        CliError::usage(format!("unknown algorithm '{}'", args.algorithm))
            .hint("choose aes-256-gcm, chacha20-poly1305 or aes-256-gcm-siv")
    })?;
    let key_id = match &args.key_id {
        Some(id) => KeyId::new(id).map_err(|_| {
            CliError::usage(format!("invalid key id '{id}'"))
                .hint("use 1 to 64 characters from A-Z a-z 0-9 . _ - : / @ +")
        })?,
        None => {
            let r: [u8; 8] =
                fleetkey_crypto::rand::array().map_err(|e| CliError::refused(e.to_string()))?;
            let hex = hex::encode(r);
            KeyId::new(&format!("k-{hex}")).map_err(|e| CliError::refused(e.to_string()))?
        }
    };
    let key = SymmetricKeyFile::generate(algorithm, key_id)
        .map_err(|e| CliError::refused(e.to_string()))?;
    write_secret_file(&args.output, key.to_text().as_bytes(), args.force)?;
    eprintln!(
        "fleetkey: wrote {} key {} to {} (mode 0600)",
        algorithm,
        key.key_id,
        args.output.display()
    );
    Ok(())
}
