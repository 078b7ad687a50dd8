//! Key and identity files: small JSON documents, created with mode 0600 and
//! refused when group or others can read them. Specified in `docs/formats.md`.

use crate::error::{CliError, CliResult, code};
use base64::{Engine as _, engine::general_purpose::URL_SAFE_NO_PAD};
use fleetkey_crypto::{
    aead::{AeadKey, Algorithm},
    envelope::{KeyId, recipient::recipient_key_id},
    hpke::{XWingIdentity, XWingRecipient},
    secret::SecretBytes,
};
use serde::{Deserialize, Serialize};
use std::io::Write;
use std::path::Path;
use zeroize::Zeroizing;

/// Largest key file we read.
const MAX_KEY_FILE: u64 = 64 * 1024;
/// Prefix of a recipient string.
pub const RECIPIENT_PREFIX: &str = "fk1r:";

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct SymmetricFile {
    fleetkey: String,
    version: u32,
    algorithm: String,
    key_id: String,
    key_version: u32,
    key: String,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct IdentityFile {
    fleetkey: String,
    version: u32,
    key_id: String,
    secret_key: String,
    recipient: String,
}

const SYMMETRIC_KIND: &str = "symmetric-key";
const IDENTITY_KIND: &str = "xwing-identity";

/// A loaded symmetric key file.
pub struct SymmetricKey {
    pub key: AeadKey,
    pub key_id: KeyId,
    pub key_version: u32,
}

/// A loaded identity file.
pub struct Identity {
    pub identity: XWingIdentity,
    pub key_id: KeyId,
}

/// Writes `contents` to a new file with mode 0600; refuses to replace an existing
/// file unless `force`.
pub fn write_secret_file(path: &Path, contents: &[u8], force: bool) -> CliResult<()> {
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true);
    if force {
        opts.create(true).truncate(true);
    } else {
        opts.create_new(true);
    }
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
    let mut f = opts.open(path).map_err(|e| {
        if e.kind() == std::io::ErrorKind::AlreadyExists {
            CliError::new(code::IO, format!("{} already exists", path.display()))
                .hint("choose another path, or pass --force to replace it")
        } else {
            CliError::io(path.display(), &e)
        }
    })?;
    #[cfg(unix)]
    {
        // `mode` applies only when the file is created; enforce it for --force too.
        use std::os::unix::fs::PermissionsExt;
        f.set_permissions(std::fs::Permissions::from_mode(0o600))
            .map_err(|e| CliError::io(path.display(), &e))?;
    }
    f.write_all(contents)
        .and_then(|()| f.sync_all())
        .map_err(|e| CliError::io(path.display(), &e))
}

/// Reads a secret file, refusing it when group or others may read it.
fn read_secret_file(path: &Path) -> CliResult<Zeroizing<String>> {
    let meta = std::fs::metadata(path).map_err(|e| CliError::io(path.display(), &e))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = meta.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            return Err(CliError::new(
                code::IO,
                format!(
                    "{} is readable by group or others (mode {mode:04o}); refusing to use it",
                    path.display()
                ),
            )
            .hint(format!("run: chmod 600 {}", path.display())));
        }
    }
    if meta.len() > MAX_KEY_FILE {
        return Err(CliError::refused(format!(
            "{} is too large to be a key file",
            path.display()
        )));
    }
    std::fs::read_to_string(path)
        .map(Zeroizing::new)
        .map_err(|e| CliError::io(path.display(), &e))
}

fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

fn unb64(what: &str, path: &Path, s: &str) -> CliResult<Zeroizing<Vec<u8>>> {
    URL_SAFE_NO_PAD.decode(s).map(Zeroizing::new).map_err(|_| {
        CliError::refused(format!("{}: {what} is not valid base64url", path.display()))
    })
}

fn bad_file(path: &Path, why: impl std::fmt::Display) -> CliError {
    CliError::refused(format!(
        "{} is not a fleetkey key file: {why}",
        path.display()
    ))
}

impl SymmetricKey {
    /// A fresh random key.
    pub fn generate(algorithm: Algorithm, key_id: KeyId) -> CliResult<Self> {
        let key = AeadKey::generate(algorithm).map_err(|e| CliError::refused(e.to_string()))?;
        Ok(Self {
            key,
            key_id,
            key_version: 1,
        })
    }

    /// The file contents.
    pub fn to_file(&self) -> Zeroizing<String> {
        let f = SymmetricFile {
            fleetkey: SYMMETRIC_KIND.into(),
            version: 1,
            algorithm: self.key.algorithm().name().into(),
            key_id: self.key_id.to_string(),
            key_version: self.key_version,
            key: b64(self.key.expose_secret()),
        };
        // Serialising a struct of strings and integers cannot fail.
        let mut s = serde_json::to_string_pretty(&f).unwrap_or_default();
        s.push('\n');
        Zeroizing::new(s)
    }

    /// Loads and validates a key file.
    pub fn load(path: &Path) -> CliResult<Self> {
        let text = read_secret_file(path)?;
        let f: SymmetricFile = serde_json::from_str(&text).map_err(|e| {
            if text.contains(IDENTITY_KIND) {
                CliError::usage(format!(
                    "{} is an identity file, not a symmetric key",
                    path.display()
                ))
                .hint("use --identity for identity files")
            } else {
                bad_file(path, format!("line {} column {}", e.line(), e.column()))
            }
        })?;
        if f.fleetkey != SYMMETRIC_KIND || f.version != 1 {
            return Err(bad_file(path, "unknown kind or version"));
        }
        let algorithm =
            Algorithm::from_name(&f.algorithm).map_err(|_| bad_file(path, "unknown algorithm"))?;
        let key_id = KeyId::new(&f.key_id).map_err(|_| bad_file(path, "invalid key_id"))?;
        let raw = unb64("key", path, &f.key)?;
        let bytes =
            SecretBytes::from_slice(&raw).map_err(|_| bad_file(path, "key must be 32 bytes"))?;
        let key = AeadKey::new(algorithm, bytes).map_err(|_| bad_file(path, "key rejected"))?;
        Ok(Self {
            key,
            key_id,
            key_version: f.key_version,
        })
    }
}

impl Identity {
    /// A fresh identity.
    pub fn generate() -> CliResult<Self> {
        let identity = XWingIdentity::generate().map_err(|e| CliError::refused(e.to_string()))?;
        let key_id = recipient_key_id(&identity.recipient());
        Ok(Self { identity, key_id })
    }

    /// The `fk1r:` recipient string.
    pub fn recipient_string(&self) -> String {
        format!(
            "{RECIPIENT_PREFIX}{}",
            b64(&self.identity.recipient().to_bytes())
        )
    }

    /// The file contents.
    pub fn to_file(&self) -> Zeroizing<String> {
        let f = IdentityFile {
            fleetkey: IDENTITY_KIND.into(),
            version: 1,
            key_id: self.key_id.to_string(),
            secret_key: b64(self.identity.expose_secret()),
            recipient: self.recipient_string(),
        };
        let mut s = serde_json::to_string_pretty(&f).unwrap_or_default();
        s.push('\n');
        Zeroizing::new(s)
    }

    /// Loads and validates an identity file.
    pub fn load(path: &Path) -> CliResult<Self> {
        let text = read_secret_file(path)?;
        let f: IdentityFile = serde_json::from_str(&text).map_err(|e| {
            if text.contains(SYMMETRIC_KIND) {
                CliError::usage(format!(
                    "{} is a symmetric key file, not an identity",
                    path.display()
                ))
                .hint("use --key for symmetric key files")
            } else {
                bad_file(path, format!("line {} column {}", e.line(), e.column()))
            }
        })?;
        if f.fleetkey != IDENTITY_KIND || f.version != 1 {
            return Err(bad_file(path, "unknown kind or version"));
        }
        let raw = unb64("secret_key", path, &f.secret_key)?;
        let seed = SecretBytes::from_slice(&raw)
            .map_err(|_| bad_file(path, "secret_key must be 32 bytes"))?;
        let identity =
            XWingIdentity::from_seed(seed).map_err(|_| bad_file(path, "secret_key rejected"))?;
        let key_id = recipient_key_id(&identity.recipient());
        let me = Self { identity, key_id };
        if me.recipient_string() != f.recipient {
            return Err(bad_file(path, "recipient does not match secret_key"));
        }
        Ok(me)
    }
}

/// Parses `fk1r:…`, or reads it from a file (a recipient file or an identity file's
/// `recipient` field).
pub fn load_recipient(arg: &str) -> CliResult<XWingRecipient> {
    let text = if arg.starts_with(RECIPIENT_PREFIX) {
        arg.to_owned()
    } else {
        let path = Path::new(arg);
        let meta = std::fs::metadata(path).map_err(|e| {
            CliError::io(format!("--recipient {arg}"), &e)
                .hint("pass a recipient string (fk1r:…) or a file that holds one")
        })?;
        if meta.len() > MAX_KEY_FILE {
            return Err(CliError::refused(format!(
                "{arg} is too large to be a recipient file"
            )));
        }
        let s = std::fs::read_to_string(path).map_err(|e| CliError::io(arg, &e))?;
        match serde_json::from_str::<IdentityFile>(&s) {
            Ok(f) => f.recipient,
            Err(_) => s.trim().to_owned(),
        }
    };
    let body = text
        .strip_prefix(RECIPIENT_PREFIX)
        .ok_or_else(|| CliError::usage(format!("{arg}: not a recipient (expected fk1r:…)")))?;
    let bytes = URL_SAFE_NO_PAD
        .decode(body.trim())
        .map_err(|_| CliError::usage("recipient is not valid base64url"))?;
    XWingRecipient::from_bytes(&bytes)
        .map_err(|e| CliError::usage(format!("invalid recipient: {e}")))
}
