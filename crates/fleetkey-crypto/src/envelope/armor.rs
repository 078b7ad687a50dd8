//! The `fk1:` text armor: `fk1:` followed by the envelope in unpadded base64url
//! (RFC 4648 §5). Decoding is strict: no padding, no whitespace, canonical
//! trailing bits, so every envelope has exactly one armored form.

use crate::{Error, Result};
use base64::{Engine as _, engine::general_purpose::URL_SAFE_NO_PAD};

/// The armor prefix.
pub const PREFIX: &str = "fk1:";

/// Armors binary envelope bytes.
pub fn encode(envelope: &[u8]) -> String {
    let mut s = String::with_capacity(PREFIX.len() + envelope.len().div_ceil(3) * 4);
    s.push_str(PREFIX);
    URL_SAFE_NO_PAD.encode_string(envelope, &mut s);
    s
}

/// Whether `input` looks armored (starts with the prefix).
pub fn is_armored(input: &[u8]) -> bool {
    input.starts_with(PREFIX.as_bytes())
}

/// Decodes armored text. A single trailing newline (`\n` or `\r\n`) is accepted,
/// as terminals add one.
pub fn decode(text: &str) -> Result<Vec<u8>> {
    let text = text
        .strip_suffix('\n')
        .map(|t| t.strip_suffix('\r').unwrap_or(t))
        .unwrap_or(text);
    let body = text.strip_prefix(PREFIX).ok_or(Error::NotAnEnvelope)?;
    URL_SAFE_NO_PAD
        .decode(body)
        .map_err(|_| Error::Malformed("armor (invalid base64url)"))
}
