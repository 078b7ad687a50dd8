//! The text of key and identity files (JSON), and recipient strings. Pure parsing
//! and encoding; reading files (with the 0600 check) is the caller's job.
//! Specified in `docs/formats.md#key-and-identity-files`.

use crate::{
    aead::{AeadKey, Algorithm},
    envelope::{KeyId, recipient::recipient_key_id},
    hpke::{XWingIdentity, XWingRecipient},
    secret::SecretBytes,
};
use base64::{Engine as _, engine::general_purpose::URL_SAFE_NO_PAD};
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

/// Largest key or identity file, in bytes.
pub const MAX_LEN: usize = 64 * 1024;
/// Prefix of a recipient string.
pub const RECIPIENT_PREFIX: &str = "fk1r:";
const SYMMETRIC_KIND: &str = "symmetric-key";
const IDENTITY_KIND: &str = "xwing-identity";

/// Why a key file was refused. Messages never include key material.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum KeyFileError {
    /// The file is the other kind (an identity where a key was expected, or back).
    #[error("this is {found}, not {expected}")]
    WrongKind {
        /// What the caller wanted.
        expected: &'static str,
        /// What the file is.
        found: &'static str,
    },
    /// Not a fleetkey key file of a known version, or a field is invalid.
    #[error("not a fleetkey key file: {0}")]
    Malformed(String),
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct SymmetricJson {
    fleetkey: String,
    version: u32,
    algorithm: String,
    key_id: String,
    key_version: u32,
    key: String,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct IdentityJson {
    fleetkey: String,
    version: u32,
    key_id: String,
    secret_key: String,
    recipient: String,
}

fn malformed(why: impl Into<String>) -> KeyFileError {
    KeyFileError::Malformed(why.into())
}

fn kind_of(text: &str) -> Option<&'static str> {
    #[derive(Deserialize)]
    struct Kind {
        fleetkey: String,
    }
    match serde_json::from_str::<Kind>(text).ok()?.fleetkey.as_str() {
        SYMMETRIC_KIND => Some("a symmetric key file"),
        IDENTITY_KIND => Some("an identity file"),
        _ => None,
    }
}

fn parse_json<'a, T: Deserialize<'a>>(
    text: &'a str,
    expected: &'static str,
) -> Result<T, KeyFileError> {
    if text.len() > MAX_LEN {
        return Err(malformed("too large"));
    }
    serde_json::from_str(text).map_err(|e| match kind_of(text) {
        Some(found) if found != expected => KeyFileError::WrongKind { expected, found },
        _ => malformed(format!("line {} column {}", e.line(), e.column())),
    })
}

fn unb64(what: &str, s: &str) -> Result<Zeroizing<Vec<u8>>, KeyFileError> {
    URL_SAFE_NO_PAD
        .decode(s)
        .map(Zeroizing::new)
        .map_err(|_| malformed(format!("{what} is not base64url")))
}

fn pretty<T: Serialize>(v: &T) -> Zeroizing<String> {
    // Serialising a struct of strings and integers cannot fail.
    let mut s = serde_json::to_string_pretty(v).unwrap_or_default();
    s.push('\n');
    Zeroizing::new(s)
}

/// A symmetric key file: an AEAD key with its id and version.
pub struct SymmetricKeyFile {
    /// The key.
    pub key: AeadKey,
    /// Written into every envelope it seals.
    pub key_id: KeyId,
    /// Written into every envelope it seals.
    pub key_version: u32,
}

impl SymmetricKeyFile {
    /// A fresh random key, version 1.
    pub fn generate(algorithm: Algorithm, key_id: KeyId) -> crate::Result<Self> {
        Ok(Self {
            key: AeadKey::generate(algorithm)?,
            key_id,
            key_version: 1,
        })
    }

    /// The file's text.
    pub fn to_text(&self) -> Zeroizing<String> {
        pretty(&SymmetricJson {
            fleetkey: SYMMETRIC_KIND.into(),
            version: 1,
            algorithm: self.key.algorithm().name().into(),
            key_id: self.key_id.to_string(),
            key_version: self.key_version,
            key: URL_SAFE_NO_PAD.encode(self.key.expose_secret()),
        })
    }

    /// Parses and validates a file's text.
    pub fn parse(text: &str) -> Result<Self, KeyFileError> {
        let f: SymmetricJson = parse_json(text, "a symmetric key file")?;
        if f.fleetkey != SYMMETRIC_KIND || f.version != 1 {
            return Err(malformed("unknown kind or version"));
        }
        let algorithm =
            Algorithm::from_name(&f.algorithm).map_err(|_| malformed("unknown algorithm"))?;
        let key_id = KeyId::new(&f.key_id).map_err(|_| malformed("invalid key_id"))?;
        let raw = unb64("key", &f.key)?;
        let bytes = SecretBytes::from_slice(&raw).map_err(|_| malformed("key must be 32 bytes"))?;
        let key = AeadKey::new(algorithm, bytes).map_err(|_| malformed("key rejected"))?;
        Ok(Self {
            key,
            key_id,
            key_version: f.key_version,
        })
    }
}

/// An identity file: an X-Wing secret key and its recipient.
pub struct IdentityFile {
    /// The identity.
    pub identity: XWingIdentity,
    /// Its key id (derived from the public key).
    pub key_id: KeyId,
}

impl IdentityFile {
    /// A fresh identity.
    pub fn generate() -> crate::Result<Self> {
        let identity = XWingIdentity::generate()?;
        let key_id = recipient_key_id(&identity.recipient());
        Ok(Self { identity, key_id })
    }

    /// The `fk1r:` recipient string.
    pub fn recipient_string(&self) -> String {
        recipient_string(&self.identity.recipient())
    }

    /// The file's text.
    pub fn to_text(&self) -> Zeroizing<String> {
        pretty(&IdentityJson {
            fleetkey: IDENTITY_KIND.into(),
            version: 1,
            key_id: self.key_id.to_string(),
            secret_key: URL_SAFE_NO_PAD.encode(self.identity.expose_secret()),
            recipient: self.recipient_string(),
        })
    }

    /// Parses and validates a file's text; the stored recipient must match the key.
    pub fn parse(text: &str) -> Result<Self, KeyFileError> {
        let f: IdentityJson = parse_json(text, "an identity file")?;
        if f.fleetkey != IDENTITY_KIND || f.version != 1 {
            return Err(malformed("unknown kind or version"));
        }
        let raw = unb64("secret_key", &f.secret_key)?;
        let seed =
            SecretBytes::from_slice(&raw).map_err(|_| malformed("secret_key must be 32 bytes"))?;
        let identity =
            XWingIdentity::from_seed(seed).map_err(|_| malformed("secret_key rejected"))?;
        let key_id = recipient_key_id(&identity.recipient());
        let me = Self { identity, key_id };
        if me.recipient_string() != f.recipient {
            return Err(malformed("recipient does not match secret_key"));
        }
        Ok(me)
    }
}

/// `fk1r:` + base64url of the X-Wing public key.
pub fn recipient_string(r: &XWingRecipient) -> String {
    format!("{RECIPIENT_PREFIX}{}", URL_SAFE_NO_PAD.encode(r.to_bytes()))
}

/// Parses a recipient from `fk1r:…` text, or from an identity file's text.
pub fn parse_recipient(text: &str) -> Result<XWingRecipient, KeyFileError> {
    let text = text.trim();
    let s = if text.starts_with(RECIPIENT_PREFIX) {
        text.to_owned()
    } else {
        let f: IdentityJson = parse_json(text, "an identity file")
            .map_err(|_| malformed("not a recipient (expected fk1r:…)"))?;
        f.recipient
    };
    let body = s
        .strip_prefix(RECIPIENT_PREFIX)
        .ok_or_else(|| malformed("not a recipient (expected fk1r:…)"))?;
    let bytes = URL_SAFE_NO_PAD
        .decode(body)
        .map_err(|_| malformed("recipient is not valid base64url"))?;
    XWingRecipient::from_bytes(&bytes).map_err(|e| malformed(format!("invalid recipient: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_refusals() {
        let k = SymmetricKeyFile::generate(Algorithm::ChaCha20Poly1305, KeyId::new("a").unwrap())
            .unwrap();
        let text = k.to_text();
        let back = SymmetricKeyFile::parse(&text).unwrap();
        assert_eq!(back.key.expose_secret(), k.key.expose_secret());
        assert_eq!(back.key_id, k.key_id);
        let id = IdentityFile::generate().unwrap();
        let itext = id.to_text();
        assert_eq!(IdentityFile::parse(&itext).unwrap().key_id, id.key_id);
        assert!(matches!(
            SymmetricKeyFile::parse(&itext),
            Err(KeyFileError::WrongKind { .. })
        ));
        assert!(matches!(
            IdentityFile::parse(&text),
            Err(KeyFileError::WrongKind { .. })
        ));
        assert_eq!(
            parse_recipient(&id.recipient_string()).unwrap(),
            id.identity.recipient()
        );
        assert_eq!(parse_recipient(&itext).unwrap(), id.identity.recipient());
        assert!(parse_recipient("fk1r:!!").is_err());
        assert!(SymmetricKeyFile::parse("{").is_err());
        let tampered = itext.replace("\"recipient\": \"fk1r:", "\"recipient\": \"fk1r:A");
        assert!(IdentityFile::parse(&tampered).is_err());
    }

    #[test]
    fn errors_never_echo_key_material() {
        let k = SymmetricKeyFile::generate(Algorithm::Aes256Gcm, KeyId::new("a").unwrap()).unwrap();
        let text = k
            .to_text()
            .replace("\"key_version\": 1", "\"key_version\": \"x\"");
        let e = SymmetricKeyFile::parse(&text)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        let secret = URL_SAFE_NO_PAD.encode(k.key.expose_secret());
        assert!(!e.contains(&secret), "{e}");
    }
}
