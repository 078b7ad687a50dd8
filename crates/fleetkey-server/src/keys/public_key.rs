//! A signing keyring's public key in the forms other software reads: the raw
//! bytes, PEM of the X.509 SubjectPublicKeyInfo (RFC 8410 for Ed25519; the
//! id-ml-dsa-65 OID of NIST's CSOR registry, as RFC 9881 uses it, for ML-DSA-65),
//! and JWK (RFC 8037 `OKP` for Ed25519). The composite has no registered form:
//! raw only.

use crate::error::{Error, Result};
use crate::key_type::KeyType;
use base64::{Engine as _, engine::general_purpose::STANDARD as B64};
use serde_json::{Value, json};
use spki::der::EncodePem;
use spki::der::asn1::BitStringRef;
use spki::der::pem::LineEnding;
use spki::{AlgorithmIdentifierRef, ObjectIdentifier, SubjectPublicKeyInfoRef};

/// id-Ed25519 (RFC 8410).
const ED25519_OID: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.101.112");
/// id-ml-dsa-65 (NIST CSOR, 2.16.840.1.101.3.4.3.18).
const ML_DSA_65_OID: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.16.840.1.101.3.4.3.18");

/// The forms `format` may name.
pub const FORMATS: [&str; 3] = ["raw", "pem", "jwk"];

fn unsupported(kind: KeyType, format: &str) -> Error {
    Error::Invalid {
        what: "format",
        why: format!(
            "{format:?} is not available for {} keys (raw is; pem: ed25519, ml-dsa-65; jwk: ed25519)",
            kind.name()
        ),
    }
}

/// `pk` (the raw public key of a `kind` keyring) in `format`: a base64 string
/// (`raw`), PEM text (`pem`) or a JWK object (`jwk`).
pub fn public_key_form(kind: KeyType, pk: &[u8], format: &str) -> Result<Value> {
    match format {
        "raw" => Ok(Value::String(B64.encode(pk))),
        "pem" => {
            let oid = match kind {
                KeyType::Ed25519 => ED25519_OID,
                KeyType::MlDsa65 => ML_DSA_65_OID,
                _ => return Err(unsupported(kind, format)),
            };
            let spki = SubjectPublicKeyInfoRef {
                algorithm: AlgorithmIdentifierRef {
                    oid,
                    parameters: None,
                },
                subject_public_key: BitStringRef::from_bytes(pk)
                    .map_err(|e| Error::Internal(format!("public key: {e}")))?,
            };
            spki.to_pem(LineEnding::LF)
                .map(Value::String)
                .map_err(|e| Error::Internal(format!("public key PEM: {e}")))
        }
        "jwk" => match kind {
            KeyType::Ed25519 => Ok(json!({
                "kty": "OKP",
                "crv": "Ed25519",
                "x": base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(pk),
            })),
            _ => Err(unsupported(kind, format)),
        },
        other => Err(Error::Invalid {
            what: "format",
            why: format!("unknown format {other:?}; use raw, pem or jwk"),
        }),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    /// RFC 8410 §10.1's example Ed25519 public key in SubjectPublicKeyInfo.
    #[test]
    fn ed25519_pem_is_rfc8410() {
        let pk = hex::decode("19bf44096984cdfe8541bac167dc3b96c85086aa30b6b6cb0c5c38ad703166e1")
            .unwrap();
        let pem = public_key_form(KeyType::Ed25519, &pk, "pem").unwrap();
        assert_eq!(
            pem.as_str().unwrap(),
            "-----BEGIN PUBLIC KEY-----\nMCowBQYDK2VwAyEAGb9ECWmEzf6FQbrBZ9w7lshQhqowtrbLDFw4rXAxZuE=\n-----END PUBLIC KEY-----\n"
        );
        let jwk = public_key_form(KeyType::Ed25519, &pk, "jwk").unwrap();
        assert_eq!(jwk["x"], "Gb9ECWmEzf6FQbrBZ9w7lshQhqowtrbLDFw4rXAxZuE");
    }

    #[test]
    fn forms_without_a_registration_are_refused() {
        let pk = vec![0u8; 1984];
        assert!(public_key_form(KeyType::Ed25519MlDsa65, &pk, "pem").is_err());
        assert!(public_key_form(KeyType::MlDsa65, &pk[..1952], "jwk").is_err());
        assert!(public_key_form(KeyType::Ed25519, &pk[..32], "der").is_err());
        assert!(public_key_form(KeyType::Ed25519MlDsa65, &pk, "raw").is_ok());
    }
}
