//! Transit's `vault:v<N>:<base64>` strings: ciphertexts (an fk1 envelope inside,
//! whose header must name version N too), signatures and HMACs.

use super::VaultError;
use base64::{Engine as _, engine::general_purpose::STANDARD as B64};

/// The prefix of every Transit ciphertext, signature and HMAC.
pub const PREFIX: &str = "vault:v";

/// `vault:v<version>:<base64 of bytes>`.
pub fn encode(version: u32, bytes: &[u8]) -> String {
    format!("{PREFIX}{version}:{}", B64.encode(bytes))
}

/// Reads `vault:v<N>:<base64>`: the version (1 or more, decimal, no sign or
/// leading zero) and the bytes. `what` names the field in errors.
pub fn decode(what: &str, s: &str) -> Result<(u32, Vec<u8>), VaultError> {
    let bad = |why: &str| VaultError::bad(format!("invalid {what}: {why}"));
    let rest = s
        .strip_prefix(PREFIX)
        .ok_or_else(|| bad("it does not start with vault:v"))?;
    let (v, b64) = rest
        .split_once(':')
        .ok_or_else(|| bad("no version separator"))?;
    if v.is_empty() || v.len() > 10 || v.starts_with('0') || !v.bytes().all(|b| b.is_ascii_digit())
    {
        return Err(bad("the version is not a positive decimal number"));
    }
    let version: u32 = v.parse().map_err(|_| bad("the version is too large"))?;
    let bytes = B64
        .decode(b64.as_bytes())
        .map_err(|_| bad("the data is not valid base64"))?;
    if bytes.is_empty() {
        return Err(bad("no data"));
    }
    Ok((version, bytes))
}

/// A ciphertext: its version and the fk1 envelope inside, whose header must name
/// the same version (so an edited prefix is refused before any key is used).
pub fn decode_envelope(s: &str) -> Result<(u32, Vec<u8>), VaultError> {
    let (version, env) = decode("ciphertext", s)?;
    let header = fleetkey_crypto::envelope::Header::parse(&env)
        .map_err(|e| VaultError::bad(format!("invalid ciphertext: {e}")))?
        .0;
    if header.key_version != version {
        return Err(VaultError::bad(format!(
            "invalid ciphertext: it says version {version} but was sealed by version {}",
            header.key_version
        )));
    }
    Ok((version, env))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn round_trip_and_refusals() {
        assert_eq!(encode(3, b"hi"), "vault:v3:aGk=");
        assert_eq!(decode("x", "vault:v3:aGk=").unwrap(), (3, b"hi".to_vec()));
        for bad in [
            "",
            "vault:v",
            "vault:v3",
            "vault:3:aGk=",
            "vault:v0:aGk=",
            "vault:v03:aGk=",
            "vault:v-3:aGk=",
            "vault:v+3:aGk=",
            "vault:v99999999999:aGk=",
            "vault:v4294967296:aGk=",
            "vault:v3:",
            "vault:v3:***",
            "vault:v3:aGk",
            "vaulx:v3:aGk=",
        ] {
            assert!(decode("x", bad).is_err(), "{bad:?}");
        }
        assert!(decode_envelope("vault:v1:aGk=").is_err(), "not an envelope");
    }

    proptest! {
        #[test]
        fn any_string_is_read_or_refused_without_panicking(s in ".{0,80}") {
            let _ = decode("x", &s);
            let _ = decode_envelope(&s);
        }

        #[test]
        fn encode_then_decode_is_the_identity(v in 1u32.., b in proptest::collection::vec(any::<u8>(), 1..64)) {
            prop_assert_eq!(decode("x", &encode(v, &b)).unwrap(), (v, b));
        }
    }
}
