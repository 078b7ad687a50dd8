//! What an envelope is bound to: `--aad TEXT`, or an encryption context given as
//! `--context KEY=VALUE` pairs (docs/formats.md, "Encryption context"). Either
//! way it is authenticated, not stored, and needed again to open.

use crate::error::{CliError, CliResult};
use base64::{Engine as _, engine::general_purpose::STANDARD as B64};
use fleetkey_crypto::envelope::context;
use std::collections::BTreeMap;

/// The binding of one command, checked.
#[derive(Debug, Default, Clone)]
pub(crate) struct Binding {
    aad: Option<String>,
    context: Option<BTreeMap<String, String>>,
}

impl Binding {
    /// From the command line: `aad` or `pairs` (`KEY=VALUE`, split at the first
    /// `=`), never both; a key given twice is refused.
    pub fn new(aad: Option<String>, pairs: &[String]) -> CliResult<Self> {
        if pairs.is_empty() {
            return Ok(Self { aad, context: None });
        }
        if aad.is_some() {
            return Err(CliError::usage("give --aad or --context, not both"));
        }
        let split = pairs
            .iter()
            .map(|p| {
                p.split_once('=')
                    .ok_or_else(|| CliError::usage(format!("--context {p:?} is not KEY=VALUE")))
            })
            .collect::<CliResult<Vec<_>>>()?;
        let map =
            context::from_pairs(split).map_err(|e| CliError::usage(format!("--context: {e}")))?;
        Ok(Self {
            aad: None,
            context: Some(map),
        })
    }

    /// The associated data bytes (what a local key or recipient binds).
    pub fn bytes(&self) -> CliResult<Vec<u8>> {
        match &self.context {
            Some(c) => context::encode(c).map_err(|e| CliError::usage(format!("--context: {e}"))),
            None => Ok(self.aad.as_deref().unwrap_or("").as_bytes().to_vec()),
        }
    }

    /// The request's `aad` field (base64).
    pub fn aad_field(&self) -> Option<String> {
        self.aad.as_ref().map(|a| B64.encode(a))
    }

    /// The request's `context` field.
    pub fn context_field(&self) -> Option<BTreeMap<String, String>> {
        self.context.clone()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn pairs(p: &[&str]) -> Vec<String> {
        p.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn context_pairs_encode_in_canonical_order() {
        let a = Binding::new(None, &pairs(&["tenant=acme", "app=billing=v2"])).unwrap();
        let b = Binding::new(None, &pairs(&["app=billing=v2", "tenant=acme"])).unwrap();
        assert_eq!(a.bytes().unwrap(), b.bytes().unwrap());
        assert_eq!(a.context_field().unwrap()["app"], "billing=v2");
        assert!(a.aad_field().is_none());
    }

    #[test]
    fn refusals() {
        assert!(Binding::new(Some("x".into()), &pairs(&["a=b"])).is_err());
        assert!(Binding::new(None, &pairs(&["novalue"])).is_err());
        assert!(Binding::new(None, &pairs(&["a=1", "a=2"])).is_err());
        assert!(Binding::new(None, &pairs(&["=v"])).is_err());
    }

    #[test]
    fn plain_aad_is_its_bytes() {
        let b = Binding::new(Some("order-17".into()), &[]).unwrap();
        assert_eq!(b.bytes().unwrap(), b"order-17");
        assert_eq!(b.aad_field().unwrap(), B64.encode("order-17"));
        assert!(Binding::new(None, &[]).unwrap().bytes().unwrap().is_empty());
    }
}
