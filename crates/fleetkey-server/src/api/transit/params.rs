//! Request parameters as Vault reads them: a JSON object whose values are often
//! strings (`bao write transit/encrypt/k plaintext=… key_version=2` sends every
//! value as a string), so integers, booleans and durations are read from either
//! form. Parameters an endpoint does not know are reported back as Vault does,
//! in `warnings`, and never acted on.

use super::VaultError;
use base64::{Engine as _, engine::general_purpose::STANDARD as B64};
use serde_json::{Map, Value};

/// Longest duration accepted (`auto_rotate_period`): 100 years, in seconds.
pub const MAX_DURATION_SECS: i64 = 100 * 365 * 86_400;

/// The parameters of one request, or of one `batch_input` item.
#[derive(Debug, Default)]
pub struct Params {
    map: Map<String, Value>,
}

impl Params {
    /// The parameters of a request body (a JSON object, see `json_body`).
    pub fn new(body: Value) -> Result<Self, VaultError> {
        match body {
            Value::Object(map) => Ok(Self { map }),
            _ => Err(VaultError::bad("the request body must be a JSON object")),
        }
    }

    /// Takes a string parameter.
    pub fn str(&mut self, name: &str) -> Result<Option<String>, VaultError> {
        match self.map.remove(name) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s)),
            Some(_) => Err(VaultError::bad(format!("{name} must be a string"))),
        }
    }

    /// Takes a base64 parameter (standard alphabet, padded), decoded.
    pub fn b64(&mut self, name: &str) -> Result<Option<Vec<u8>>, VaultError> {
        self.str(name)?
            .map(|s| {
                B64.decode(s.as_bytes())
                    .map_err(|_| VaultError::bad(format!("{name} is not valid base64")))
            })
            .transpose()
    }

    /// Takes an integer parameter, given as a number or as decimal digits.
    pub fn int(&mut self, name: &str) -> Result<Option<i64>, VaultError> {
        let bad = || VaultError::bad(format!("{name} must be an integer"));
        match self.map.remove(name) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Number(n)) => n.as_i64().map(Some).ok_or_else(bad),
            Some(Value::String(s)) if s.is_empty() => Ok(None),
            Some(Value::String(s)) => s.trim().parse::<i64>().map(Some).map_err(|_| bad()),
            Some(_) => Err(bad()),
        }
    }

    /// Takes an integer parameter that must lie in `range`.
    pub fn int_in(
        &mut self,
        name: &str,
        range: std::ops::RangeInclusive<i64>,
    ) -> Result<Option<i64>, VaultError> {
        match self.int(name)? {
            Some(v) if !range.contains(&v) => Err(VaultError::bad(format!(
                "{name} must be {} to {}",
                range.start(),
                range.end()
            ))),
            v => Ok(v),
        }
    }

    /// Takes a boolean parameter: `true`/`false`, or a string Go's
    /// `strconv.ParseBool` reads (`1`, `t`, `TRUE`, `0`, `f`, `False`, …).
    pub fn bool(&mut self, name: &str) -> Result<Option<bool>, VaultError> {
        match self.map.remove(name) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Bool(b)) => Ok(Some(b)),
            Some(Value::String(s)) => match s.as_str() {
                "1" | "t" | "T" | "true" | "TRUE" | "True" => Ok(Some(true)),
                "0" | "f" | "F" | "false" | "FALSE" | "False" => Ok(Some(false)),
                _ => Err(VaultError::bad(format!("{name} must be a boolean"))),
            },
            Some(Value::Number(n)) if n.as_u64() == Some(0) => Ok(Some(false)),
            Some(Value::Number(n)) if n.as_u64() == Some(1) => Ok(Some(true)),
            Some(_) => Err(VaultError::bad(format!("{name} must be a boolean"))),
        }
    }

    /// Takes a duration in seconds: a number of seconds, or a string such as
    /// `3600`, `90s`, `24h`, `1h30m` or `7d`.
    pub fn duration(&mut self, name: &str) -> Result<Option<i64>, VaultError> {
        let bad = || {
            VaultError::bad(format!(
                "{name} must be a duration: seconds, or a number with a unit (90s, 24h, 7d), at most 100 years"
            ))
        };
        let secs = match self.map.remove(name) {
            None | Some(Value::Null) => return Ok(None),
            Some(Value::Number(n)) => n.as_i64().ok_or_else(bad)?,
            Some(Value::String(s)) => {
                let s = s.trim();
                match s.parse::<i64>() {
                    Ok(v) => v,
                    Err(_) => humantime::parse_duration(s)
                        .ok()
                        .and_then(|d| i64::try_from(d.as_secs()).ok())
                        .ok_or_else(bad)?,
                }
            }
            Some(_) => return Err(bad()),
        };
        if !(0..=MAX_DURATION_SECS).contains(&secs) {
            return Err(bad());
        }
        Ok(Some(secs))
    }

    /// Takes `batch_input`: a list of objects, each an item's parameters.
    pub fn batch(&mut self, max_items: usize) -> Result<Option<Vec<Params>>, VaultError> {
        let items = match self.map.remove("batch_input") {
            None | Some(Value::Null) => return Ok(None),
            Some(Value::Array(a)) => a,
            Some(_) => return Err(VaultError::bad("batch_input must be a list of objects")),
        };
        if items.is_empty() {
            return Err(VaultError::bad("batch_input is empty"));
        }
        if items.len() > max_items {
            return Err(VaultError::new(
                axum::http::StatusCode::PAYLOAD_TOO_LARGE,
                format!("at most {max_items} items per batch"),
            ));
        }
        items
            .into_iter()
            .map(|v| match v {
                Value::Object(map) => Ok(Params { map }),
                _ => Err(VaultError::bad("every batch_input item must be an object")),
            })
            .collect::<Result<Vec<_>, _>>()
            .map(Some)
    }

    /// Whether a parameter was given (and not null).
    pub fn has(&self, name: &str) -> bool {
        self.map.get(name).is_some_and(|v| !v.is_null())
    }

    /// Drops parameters Vault clients send that have no effect here.
    pub fn ignore(&mut self, names: &[&str]) {
        for n in names {
            self.map.remove(*n);
        }
    }

    /// Vault's warning for the parameters nobody took (none: no warning; a
    /// parameter given as null counts as not given).
    pub fn leftover(&self) -> Option<String> {
        let mut names: Vec<String> = self
            .map
            .iter()
            .filter(|(_, v)| !v.is_null())
            .map(|(k, _)| k)
            .take(20)
            .map(|k| k.chars().take(64).collect())
            .collect();
        if names.is_empty() {
            return None;
        }
        names.sort();
        Some(format!(
            "Endpoint ignored these unrecognized parameters: [{}]",
            names.join(" ")
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn p(v: Value) -> Params {
        Params::new(v).unwrap()
    }

    #[test]
    fn strings_stand_for_numbers_booleans_and_durations() {
        let mut q = p(
            json!({"a": "2", "b": 3, "c": "true", "d": false, "e": "24h", "f": 90, "g": "1h30m"}),
        );
        assert_eq!(q.int("a").unwrap(), Some(2));
        assert_eq!(q.int("b").unwrap(), Some(3));
        assert_eq!(q.bool("c").unwrap(), Some(true));
        assert_eq!(q.bool("d").unwrap(), Some(false));
        assert_eq!(q.duration("e").unwrap(), Some(86_400));
        assert_eq!(q.duration("f").unwrap(), Some(90));
        assert_eq!(q.duration("g").unwrap(), Some(5_400));
        assert_eq!(q.int("missing").unwrap(), None);
        assert!(q.leftover().is_none());
    }

    #[test]
    fn wrong_types_and_ranges_are_refused() {
        let mut q = p(
            json!({"a": "x", "b": [1], "c": "maybe", "d": "-1s", "e": "1000000000d", "f": 9, "g": 7}),
        );
        assert!(q.int("a").is_err());
        assert!(q.str("b").is_err());
        assert!(q.bool("c").is_err());
        assert!(q.duration("d").is_err());
        assert!(q.duration("e").is_err());
        assert!(q.int_in("f", 1..=8).is_err());
        assert!(q.b64("g").is_err());
        assert!(Params::new(json!([1])).is_err());
    }

    #[test]
    fn batches_are_bounded_and_unknown_parameters_warned_of() {
        let mut q =
            p(json!({"batch_input": [{"plaintext": "AA=="}, {}], "zz": 1, "aa": 2, "n": null}));
        assert_eq!(q.batch(2).unwrap().unwrap().len(), 2);
        assert_eq!(
            q.leftover().unwrap(),
            "Endpoint ignored these unrecognized parameters: [aa zz]"
        );
        let mut q = p(json!({"batch_input": [{}, {}, {}]}));
        assert!(q.batch(2).is_err());
        let mut q = p(json!({"batch_input": [1]}));
        assert!(q.batch(2).is_err());
        let mut q = p(json!({"batch_input": []}));
        assert!(q.batch(2).is_err());
    }
}
