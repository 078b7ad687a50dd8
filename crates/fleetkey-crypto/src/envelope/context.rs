//! Encryption context: a map of strings that becomes an envelope's AAD.
//!
//! Services that agree on the same pairs must build the same AAD whatever order
//! their maps iterate in, so the context is encoded canonically
//! (`docs/formats.md`, "Encryption context"):
//!
//! ```text
//! "fk1-context" ‖ u16be(count) ‖ for each pair, keys in ascending byte order:
//!     u16be(len(key)) ‖ key ‖ u16be(len(value)) ‖ value
//! ```
//!
//! An empty context encodes as the empty AAD, so `{}` and "no AAD" open each
//! other's envelopes. Keys are 1 to [`MAX_KEY_CHARS`] characters (Unicode scalar
//! values, as JSON Schema's `maxLength` counts them), values 0 to
//! [`MAX_VALUE_CHARS`], at most [`MAX_PAIRS`] pairs; anything else is refused, so
//! the encoding is always unambiguous and bounded ([`MAX_ENCODED_LEN`]).

use crate::{Error, Result};
use std::collections::BTreeMap;

/// The bytes that start every non-empty encoded context: ASCII `fk1-context`.
pub const PREFIX: &[u8; 11] = b"fk1-context";
/// Most pairs in one context.
pub const MAX_PAIRS: usize = 64;
/// Longest key, in characters (at most 4 bytes of UTF-8 each).
pub const MAX_KEY_CHARS: usize = 128;
/// Longest value, in characters.
pub const MAX_VALUE_CHARS: usize = 1024;
/// The longest encoding a valid context can have (295,181 bytes).
pub const MAX_ENCODED_LEN: usize =
    PREFIX.len() + 2 + MAX_PAIRS * (4 + 4 * MAX_KEY_CHARS + 4 * MAX_VALUE_CHARS);

/// Checks one pair against the bounds.
fn check(key: &str, value: &str) -> Result<()> {
    if key.is_empty() || key.chars().count() > MAX_KEY_CHARS {
        return Err(Error::Malformed("context key (1 to 128 characters)"));
    }
    if value.chars().count() > MAX_VALUE_CHARS {
        return Err(Error::Malformed("context value (at most 1024 characters)"));
    }
    Ok(())
}

/// The canonical AAD of `pairs`. Keys are ordered by their UTF-8 bytes (a
/// `BTreeMap<String, _>` already iterates in that order).
pub fn encode(pairs: &BTreeMap<String, String>) -> Result<Vec<u8>> {
    if pairs.is_empty() {
        return Ok(Vec::new());
    }
    if pairs.len() > MAX_PAIRS {
        return Err(Error::Malformed("context (at most 64 pairs)"));
    }
    let mut out = Vec::with_capacity(
        PREFIX.len()
            + 2
            + pairs
                .iter()
                .map(|(k, v)| 4 + k.len() + v.len())
                .sum::<usize>(),
    );
    out.extend_from_slice(PREFIX);
    push_len(&mut out, pairs.len())?;
    for (k, v) in pairs {
        check(k, v)?;
        for s in [k, v] {
            push_len(&mut out, s.len())?;
            out.extend_from_slice(s.as_bytes());
        }
    }
    Ok(out)
}

/// Appends `n` as a u16be (every bound is far below 2^16).
fn push_len(out: &mut Vec<u8>, n: usize) -> Result<()> {
    let n = u16::try_from(n).map_err(|_| Error::Malformed("context length"))?;
    out.extend_from_slice(&n.to_be_bytes());
    Ok(())
}

/// Builds a context from pairs in any order, refusing a key given twice (a map
/// would silently keep one of them).
pub fn from_pairs<I, K, V>(pairs: I) -> Result<BTreeMap<String, String>>
where
    I: IntoIterator<Item = (K, V)>,
    K: Into<String>,
    V: Into<String>,
{
    let mut map = BTreeMap::new();
    for (k, v) in pairs {
        let (k, v) = (k.into(), v.into());
        check(&k, &v)?;
        if map.insert(k, v).is_some() {
            return Err(Error::Malformed("context (a key is given twice)"));
        }
        if map.len() > MAX_PAIRS {
            return Err(Error::Malformed("context (at most 64 pairs)"));
        }
    }
    Ok(map)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn ctx(p: &[(&str, &str)]) -> BTreeMap<String, String> {
        from_pairs(p.iter().copied()).unwrap()
    }

    #[test]
    fn order_of_insertion_does_not_matter() {
        let a = ctx(&[("tenant", "acme"), ("app", "billing")]);
        let b = ctx(&[("app", "billing"), ("tenant", "acme")]);
        assert_eq!(encode(&a).unwrap(), encode(&b).unwrap());
        let mut want = b"fk1-context\x00\x02".to_vec();
        want.extend_from_slice(b"\x00\x03app\x00\x07billing\x00\x06tenant\x00\x04acme");
        assert_eq!(encode(&a).unwrap(), want);
    }

    #[test]
    fn empty_is_no_aad() {
        assert!(encode(&BTreeMap::new()).unwrap().is_empty());
    }

    #[test]
    fn keys_sort_by_bytes_not_by_characters() {
        // 'Z' (0x5A) < 'a' (0x61) < 'é' (0xC3 0xA9).
        let e = encode(&ctx(&[("é", "1"), ("a", "2"), ("Z", "3")])).unwrap();
        let z = e.windows(1).position(|w| w == b"Z").unwrap();
        let a = e.windows(1).position(|w| w == b"a").unwrap();
        let acute = e.windows(2).position(|w| w == "é".as_bytes()).unwrap();
        assert!(z < a && a < acute);
    }

    #[test]
    fn refusals() {
        assert!(from_pairs([("k", "1"), ("k", "2")]).is_err());
        assert!(from_pairs([("", "v")]).is_err());
        assert!(from_pairs([("k".repeat(129), String::new())]).is_err());
        assert!(from_pairs([("k", "v".repeat(1025))]).is_err());
        // Characters, not bytes: 128 four-byte characters are a valid key.
        assert!(from_pairs([("😀".repeat(128), "é".repeat(1024))]).is_ok());
        assert!(from_pairs([("😀".repeat(129), String::new())]).is_err());
        assert!(from_pairs((0..65).map(|i| (format!("k{i}"), String::new()))).is_err());
        let mut too_many = BTreeMap::new();
        for i in 0..65 {
            too_many.insert(format!("k{i}"), String::new());
        }
        assert!(encode(&too_many).is_err());
        let mut long_key = BTreeMap::new();
        long_key.insert("k".repeat(129), String::new());
        assert!(encode(&long_key).is_err());
    }

    #[test]
    fn the_longest_context_fits_the_bound() {
        let pairs = (0..MAX_PAIRS).map(|i| {
            // Distinct four-byte characters first, so every key differs.
            let first = char::from_u32(0x1F600 + u32::try_from(i).unwrap()).unwrap();
            let mut k = first.to_string();
            k.push_str(&"😀".repeat(MAX_KEY_CHARS - 1));
            (k, "😀".repeat(MAX_VALUE_CHARS))
        });
        let e = encode(&from_pairs(pairs).unwrap()).unwrap();
        assert_eq!(e.len(), MAX_ENCODED_LEN);
    }
}
