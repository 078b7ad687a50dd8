//! `fleetkey custody split` and `recover`: the key-encryption key file escrowed
//! as k-of-n Shamir shares (`fleetkey_server::custody::escrow`).

use crate::error::{CliError, CliResult};
use crate::keyfile::{secret_file_error, write_secret_file};
use fleetkey_crypto::keyfile::SymmetricKeyFile;
use fleetkey_server::custody::escrow;
use fleetkey_server::custody::local::KekSource;
use fleetkey_server::secret_file;
use std::path::{Path, PathBuf};

/// Splits the data directory's key-encryption key file into `count` share files
/// in `out_dir`, any `threshold` of which recover it.
pub fn split(data_dir: &Path, threshold: u8, count: u8, out_dir: &Path) -> CliResult<()> {
    if threshold > count {
        return Err(CliError::usage(format!(
            "--threshold {threshold} is more than --shares {count}"
        )));
    }
    let path = match super::serve::admin_kek_source(data_dir)? {
        KekSource::KeyFile(p) => p,
        KekSource::Passphrase(_) => {
            return Err(CliError::usage(
                "the root is sealed with a passphrase (FLEETKEY_PASSPHRASE): split a key file",
            )
            .hint("move to a key file with `fleetkey custody rotate` and FLEETKEY_TO_ROOT_KEY_FILE, then split it"));
        }
    };
    let text = secret_file::read(&path).map_err(secret_file_error)?;
    SymmetricKeyFile::parse(&text)
        .map_err(|e| CliError::refused(format!("{}: not a key file: {e}", path.display())))?;
    let lines = escrow::split(text.as_bytes(), threshold, count)
        .map_err(|e| CliError::usage(e.to_string()))?;
    secret_file::private_dir(out_dir).map_err(|e| CliError::io(out_dir.display(), &e))?;
    let set = lines
        .first()
        .and_then(|l| l.split(' ').nth(1))
        .unwrap_or("shares")
        .to_owned();
    let mut written = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        let file = out_dir.join(format!("fleetkey-share-{set}-{}-of-{count}.txt", i + 1));
        write_secret_file(&file, format!("{}\n", line.as_str()).as_bytes(), false)?;
        written.push(file);
    }
    crate::out!(
        "split {} into {count} shares, any {threshold} of which recover it (set {set}):",
        path.display()
    );
    for f in &written {
        crate::out!("  {}", f.display());
    }
    crate::out!("give each to a different holder; delete them here once handed over");
    Ok(())
}

/// Recovers the key file from share files into `output`.
pub fn recover(files: &[PathBuf], output: &Path) -> CliResult<()> {
    let mut shares = Vec::new();
    for f in files {
        let text = secret_file::read(f).map_err(secret_file_error)?;
        let share =
            escrow::parse(&text).map_err(|e| CliError::refused(format!("{}: {e}", f.display())))?;
        shares.push(share);
    }
    let secret = escrow::recover(&shares).map_err(|e| CliError::refused(e.to_string()))?;
    let text = std::str::from_utf8(&secret)
        .map_err(|_| CliError::refused("the recovered bytes are not a key file"))?;
    SymmetricKeyFile::parse(text)
        .map_err(|_| CliError::refused("the recovered bytes are not a key file"))?;
    write_secret_file(output, &secret, false)?;
    crate::out!(
        "recovered the key-encryption key into {} (from {} shares); start with FLEETKEY_ROOT_KEY_FILE={}",
        output.display(),
        shares.len(),
        output.display()
    );
    Ok(())
}
