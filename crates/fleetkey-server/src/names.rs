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

/// Defines a name type: a `String` that holds only names of the grammar, so a
/// function that takes one never sees any other. Made by [`FromStr`] /
/// `TryFrom` (which check), read as a `&str`; JSON is the plain string (and
/// reading JSON checks too).
macro_rules! name_type {
    ($(#[$doc:meta])* $t:ident, $what:literal) => {
        $(#[$doc])*
        #[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
        #[serde(try_from = "String", into = "String")]
        pub struct $t(String);

        impl $t {
            /// What the name is called in errors.
            pub const WHAT: &'static str = $what;

            /// `name`, if it follows the grammar; otherwise an
            /// [`Error::Invalid`] naming the grammar.
            pub fn new(name: impl Into<String>) -> Result<Self> {
                let name = name.into();
                validate($what, &name)?;
                Ok(Self(name))
            }

            /// The name.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl std::str::FromStr for $t {
            type Err = Error;
            fn from_str(s: &str) -> Result<Self> {
                Self::new(s)
            }
        }

        impl TryFrom<String> for $t {
            type Error = Error;
            fn try_from(s: String) -> Result<Self> {
                Self::new(s)
            }
        }

        impl From<$t> for String {
            fn from(n: $t) -> String {
                n.0
            }
        }

        impl std::ops::Deref for $t {
            type Target = str;
            fn deref(&self) -> &str {
                &self.0
            }
        }

        impl AsRef<str> for $t {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }

        impl std::fmt::Display for $t {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl std::fmt::Debug for $t {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                std::fmt::Debug::fmt(&self.0, f)
            }
        }
    };
}

name_type!(
    /// The name of a new keyring. Keyrings created before the grammar existed
    /// keep their names and are still addressed by them (as `&str`).
    KeyringName,
    "keyring name"
);
name_type!(
    /// The name of a new fleet.
    FleetName,
    "fleet name"
);

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

    #[test]
    fn name_types_hold_only_the_grammar() {
        assert_eq!(
            KeyringName::new("payments.v2").unwrap().as_str(),
            "payments.v2"
        );
        let err = FleetName::new("../etc").unwrap_err().to_string();
        assert!(err.contains("fleet name"), "{err}");
        assert!("".parse::<KeyringName>().is_err());
        let json: std::result::Result<FleetName, _> = serde_json::from_str("\"a b\"");
        assert!(json.is_err());
        let ok: FleetName = serde_json::from_str("\"factory-1\"").unwrap();
        assert_eq!(serde_json::to_string(&ok).unwrap(), "\"factory-1\"");
    }
}
