//! A backup's plaintext: a ustar archive (the `tar` crate) of a fixed set of
//! regular files, `manifest.json` first. Reading takes untrusted bytes (a
//! backup opened with the right identity is authentic, but a bug or an old
//! format must not write outside the target): only the names in [`FILES`],
//! each once, regular files only, sizes bounded, and the manifest's SHA-256 of
//! every file checked.

use super::{BackupError, Manifest};
use std::io::{Read, Write};
use std::path::Path;

/// The manifest's name.
pub const MANIFEST: &str = "manifest.json";
/// The embedded store's snapshot.
pub const STORE: &str = "fleetkey.db";
/// The local custody's sealed root key.
pub const ROOT_KEY: &str = "root-key.json";
/// The server's configuration file, when one was given.
pub const CONFIG: &str = "fleetkey.toml";
/// Every name an archive may hold.
pub const FILES: [&str; 4] = [MANIFEST, STORE, ROOT_KEY, CONFIG];
/// Largest manifest read.
const MAX_MANIFEST: u64 = 1 << 20;

/// The SHA-256 of `path`'s contents, hex, and its length.
pub fn digest_file(path: &Path) -> Result<(String, u64), BackupError> {
    let mut f = std::fs::File::open(path)?;
    let mut ctx = aws_lc_rs::digest::Context::new(&aws_lc_rs::digest::SHA256);
    let mut buf = vec![0u8; 64 * 1024];
    let mut len = 0u64;
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            break;
        }
        ctx.update(&buf[..n]);
        len += n as u64;
    }
    Ok((hex::encode(ctx.finish().as_ref()), len))
}

/// Writes the archive: the manifest, then each of `files` (name, path on disk).
pub fn write<W: Write>(
    out: W,
    manifest: &Manifest,
    files: &[(&str, &Path)],
) -> Result<W, BackupError> {
    let mut b = tar::Builder::new(out);
    let m = serde_json::to_vec_pretty(manifest).map_err(|e| BackupError::Damaged(e.to_string()))?;
    let mut h = tar::Header::new_ustar();
    h.set_size(m.len() as u64);
    h.set_mode(0o600);
    h.set_mtime(u64::try_from(manifest.created_at).unwrap_or(0));
    h.set_cksum();
    b.append_data(&mut h, MANIFEST, m.as_slice())?;
    for (name, path) in files {
        let mut f = std::fs::File::open(path)?;
        let mut h = tar::Header::new_ustar();
        h.set_size(f.metadata()?.len());
        h.set_mode(0o600);
        h.set_mtime(u64::try_from(manifest.created_at).unwrap_or(0));
        h.set_cksum();
        b.append_data(&mut h, name, &mut f)?;
    }
    Ok(b.into_inner()?)
}

/// Unpacks an archive read from `input` into the directory `dir` (which must
/// exist and be empty): checks every name, every size against the manifest and
/// every file's SHA-256; the manifest.
pub fn unpack<R: Read>(input: R, dir: &Path) -> Result<Manifest, BackupError> {
    let mut a = tar::Archive::new(input);
    let mut manifest: Option<Manifest> = None;
    let mut seen: Vec<String> = Vec::new();
    for entry in a.entries()? {
        let mut e = entry?;
        if e.header().entry_type() != tar::EntryType::Regular {
            return Err(BackupError::Damaged(
                "it holds something other than a file".into(),
            ));
        }
        let name = e
            .path()?
            .to_str()
            .map(str::to_owned)
            .filter(|n| FILES.contains(&n.as_str()))
            .ok_or_else(|| BackupError::Damaged("it holds a file no backup has".into()))?;
        if seen.contains(&name) {
            return Err(BackupError::Damaged(format!("{name} appears twice")));
        }
        seen.push(name.clone());
        let size = e.header().size()?;
        if name == MANIFEST {
            if manifest.is_some() || size > MAX_MANIFEST {
                return Err(BackupError::Damaged("its manifest is too large".into()));
            }
            let mut text = Vec::new();
            e.by_ref().take(MAX_MANIFEST).read_to_end(&mut text)?;
            let m: Manifest = serde_json::from_slice(&text)
                .map_err(|err| BackupError::Damaged(format!("its manifest: {err}")))?;
            if m.format != 1 {
                return Err(BackupError::Damaged(format!(
                    "format {} (this fleetkey reads 1)",
                    m.format
                )));
            }
            manifest = Some(m);
            continue;
        }
        let m = manifest
            .as_ref()
            .ok_or_else(|| BackupError::Damaged("its manifest is not first".into()))?;
        let want = m
            .files
            .get(&name)
            .ok_or_else(|| BackupError::Damaged(format!("{name} is not in its manifest")))?;
        if want.bytes != size {
            return Err(BackupError::Damaged(format!("{name} has the wrong size")));
        }
        let path = dir.join(&name);
        let mut f = {
            use std::os::unix::fs::OpenOptionsExt as _;
            std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&path)?
        };
        std::io::copy(&mut e.by_ref().take(size), &mut f)?;
        f.sync_all()?;
        if digest_file(&path)?.0 != want.sha256 {
            return Err(BackupError::Damaged(format!(
                "{name} does not match its manifest's SHA-256"
            )));
        }
    }
    let m = manifest.ok_or_else(|| BackupError::Damaged("it has no manifest".into()))?;
    for name in m.files.keys() {
        if !seen.contains(name) {
            return Err(BackupError::Damaged(format!("{name} is missing")));
        }
    }
    Ok(m)
}
