//! Reading custody settings from `FLEETKEY_*` variables, one way for every
//! backend: an empty variable counts as unset; a secret comes from `<NAME>_FILE`
//! (trailing newline dropped) or `<NAME>`, never both; numbers are bounded.
//!
//! Settings read inside [`for_target`] are those of the custody a `fleetkey
//! custody migrate` or `rotate` moves to: each `FLEETKEY_<X>` is read as
//! `FLEETKEY_TO_<X>` when that is set, else as `FLEETKEY_<X>` (a secret and its
//! `_FILE` form, and the local key file and passphrase, go together: the `TO_`
//! pair when either of it is set).

use crate::error::{Error, Result};
use std::cell::Cell;
use zeroize::Zeroizing;

thread_local! {
    static TARGET: Cell<bool> = const { Cell::new(false) };
}

/// Runs `read` (a synchronous `from_env`) reading the target custody's
/// settings: `FLEETKEY_TO_<X>` before `FLEETKEY_<X>`.
pub fn for_target<T>(read: impl FnOnce() -> T) -> T {
    struct Reset(bool);
    impl Drop for Reset {
        fn drop(&mut self) {
            TARGET.with(|t| t.set(self.0));
        }
    }
    let _reset = Reset(TARGET.with(|t| t.replace(true)));
    read()
}

/// `FLEETKEY_TO_<X>` for `FLEETKEY_<X>`.
fn target_name(name: &str) -> Option<String> {
    name.strip_prefix("FLEETKEY_")
        .map(|rest| format!("FLEETKEY_TO_{rest}"))
}

fn plain(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

/// The variable's value; unset or empty is `None` (inside [`for_target`], its
/// `FLEETKEY_TO_` form first).
pub(super) fn var(name: &str) -> Option<String> {
    if TARGET.with(Cell::get)
        && let Some(v) = target_name(name).and_then(|t| plain(&t))
    {
        return Some(v);
    }
    plain(name)
}

/// Names of a group of variables that go together, as read now: inside
/// [`for_target`], their `FLEETKEY_TO_` forms when any of those is set.
pub(super) fn group<const N: usize>(names: [&str; N]) -> [String; N] {
    let target = names.map(|n| target_name(n).unwrap_or_else(|| n.to_owned()));
    if TARGET.with(Cell::get) && target.iter().any(|t| plain(t).is_some()) {
        target
    } else {
        names.map(str::to_owned)
    }
}

/// The value of a variable named by [`group`] (no further overlay).
pub(super) fn exact(name: &str) -> Option<String> {
    plain(name)
}

/// A secret from `<name>_FILE` or `<name>`; both set is an error.
pub(super) fn secret(name: &str) -> Result<Option<Zeroizing<String>>> {
    let [file_var, name] = group([&format!("{name}_FILE"), name]);
    let name = name.as_str();
    match (exact(&file_var), exact(name)) {
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
