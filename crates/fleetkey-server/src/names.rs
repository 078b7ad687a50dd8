//! The one grammar for the names clients choose and later address in URLs and
//! scopes: keyrings, fleets and tokens (docs/operations.md#names).
//!
//! A name is 1 to 64 bytes of ASCII letters, digits, `-`, `_` and `.`, and starts
//! with a letter or a digit. So every name is a single URL path segment with no
//! escaping, never `.` or `..`, and never has a prefix that looks like a wildcard
//! or another scope. Names are case-sensitive.

use crate::error::{Error, Result};

/// Longest name, in bytes.
pub const MAX_NAME_LEN: usize = 64;

/// [`GRAMMAR`] as a regular expression (ECMA-262 and Rust `regex` alike), for the
/// OpenAPI document.
pub const PATTERN: &str = "^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$";

/// What the grammar allows, for error messages.
pub const GRAMMAR: &str = "1 to 64 of A-Z a-z 0-9 - _ . starting with a letter or a digit";

/// Checks `name` against the grammar; `what` names it in the error
/// (`keyring name`, `fleet name`, `token name`).
pub fn validate(what: &'static str, name: &str) -> Result<()> {
    if is_valid(name) {
        Ok(())
    } else {
        Err(Error::Invalid {
            what,
            why: format!("{:?}: use {GRAMMAR}", truncated(name)),
        })
    }
}

/// Whether `name` follows the grammar.
pub fn is_valid(name: &str) -> bool {
    let b = name.as_bytes();
    !b.is_empty()
        && b.len() <= MAX_NAME_LEN
        && b[0].is_ascii_alphanumeric()
        && b.iter()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.'))
}

/// Whether `prefix` can begin a valid name (a scope wildcard's prefix): empty, or
/// a valid name itself.
pub fn is_valid_prefix(prefix: &str) -> bool {
    prefix.is_empty() || is_valid(prefix)
}

fn truncated(name: &str) -> String {
    name.chars().take(MAX_NAME_LEN + 1).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// The documented pattern accepts exactly what the validator accepts.
        #[test]
        fn the_pattern_is_the_grammar(name in "[ -~]{0,70}|[A-Za-z0-9._-]{0,70}") {
            let re = regex::Regex::new(PATTERN).unwrap();
            prop_assert_eq!(re.is_match(&name), is_valid(&name));
        }
    }

    #[test]
    fn the_grammar() {
        for ok in ["a", "payments", "kA-x", "v1.2", "a_b", "0", &"x".repeat(64)] {
            assert!(is_valid(ok), "{ok}");
        }
        for bad in [
            "",
            ".",
            "..",
            ".hidden",
            "-x",
            "_x",
            "a/b",
            "a b",
            "a:b",
            "a@b",
            "a+b",
            "a*",
            "é",
            "a\n",
            &"x".repeat(65),
        ] {
            assert!(!is_valid(bad), "{bad:?}");
            assert!(validate("keyring name", bad).is_err());
        }
    }

    proptest! {
        #[test]
        fn valid_names_are_single_unescaped_path_segments(name in "\\PC{0,80}") {
            if is_valid(&name) {
                prop_assert!(name != "." && name != "..");
                prop_assert!(name.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b)));
                prop_assert!(name.len() <= MAX_NAME_LEN);
            }
        }
    }
}
