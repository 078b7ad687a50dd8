//! Reading custody settings from `FLEETKEY_*` variables, one way for every
//! backend: an empty variable counts as unset; a secret comes from `<NAME>_FILE`
//! (trailing newline dropped) or `<NAME>`, never both; numbers are bounded.

use crate::error::{Error, Result};
use zeroize::Zeroizing;

/// The variable's value; unset or empty is `None`.
pub(super) fn var(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

/// A secret from `<name>_FILE` or `<name>`; both set is an error.
pub(super) fn secret(name: &str) -> Result<Option<Zeroizing<String>>> {
    let file_var = format!("{name}_FILE");
    match (var(&file_var), var(name)) {
        (Some(f), None) => {
            let text = Zeroizing::new(
                std::fs::read_to_string(&f)
                    .map_err(|e| Error::CustodyConfig(format!("{file_var} {f}: {e}")))?,
            );
            Ok(Some(Zeroizing::new(
                text.trim_end_matches(['\n', '\r']).to_owned(),
            )))
        }
        (None, Some(v)) => Ok(Some(Zeroizing::new(v))),
        (Some(_), Some(_)) => Err(Error::CustodyConfig(format!(
            "both {file_var} and {name} are set; set one"
        ))),
        (None, None) => Ok(None),
    }
}

/// A number in `range`, `default` when unset.
pub(super) fn bounded<T>(name: &str, default: T, range: std::ops::RangeInclusive<T>) -> Result<T>
where
    T: std::str::FromStr + PartialOrd + std::fmt::Display,
{
    match var(name) {
        None => Ok(default),
        Some(v) => v.parse().ok().filter(|n| range.contains(n)).ok_or_else(|| {
            Error::CustodyConfig(format!(
                "{name} must be {} to {}",
                range.start(),
                range.end()
            ))
        }),
    }
}
