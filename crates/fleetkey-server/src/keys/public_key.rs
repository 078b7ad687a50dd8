//! A signing keyring's public key in the forms other software reads: the raw
//! bytes, PEM of the X.509 SubjectPublicKeyInfo (RFC 8410 for Ed25519; the
//! id-ml-dsa-65 OID of NIST's CSOR registry, as RFC 9881 uses it, for ML-DSA-65),
//! and JWK (RFC 8037 `OKP` for Ed25519). The composite has no registered form:
//! raw only. An x-wing keyring's public key is its recipient: raw, or the `fk1r:`
//! string `fleetkey seal --recipient` takes.

use super::Signable;
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
pub const FORMATS: [&str; 4] = ["raw", "pem", "jwk", "fk1r"];

fn unsupported(kind: KeyType, format: &str) -> Error {
    Error::Invalid {
        what: "format",
        why: format!(
            "{format:?} is not available for {} keys (raw is; pem: ed25519, ml-dsa-65; jwk: ed25519; fk1r: x-wing)",
            kind.name()
        ),
    }
}

/// The SubjectPublicKeyInfo of an Ed25519 or ML-DSA-65 public key.
fn spki<'a>(kind: KeyType, pk: &'a [u8], format: &str) -> Result<SubjectPublicKeyInfoRef<'a>> {
    let oid = match kind {
        KeyType::Ed25519 => ED25519_OID,
        KeyType::MlDsa65 => ML_DSA_65_OID,
        _ => return Err(unsupported(kind, format)),
    };
    Ok(SubjectPublicKeyInfoRef {
        algorithm: AlgorithmIdentifierRef {
            oid,
            parameters: None,
        },
        subject_public_key: BitStringRef::from_bytes(pk)
            .map_err(|e| Error::Internal(format!("public key: {e}")))?,
    })
}

/// The DER SubjectPublicKeyInfo of `pk` (an Ed25519 or ML-DSA-65 public key),
/// as AWS KMS's GetPublicKey answers it.
pub fn public_key_der(kind: KeyType, pk: &[u8]) -> Result<Vec<u8>> {
    use spki::der::Encode as _;
    spki(kind, pk, "der")?
        .to_der()
        .map_err(|e| Error::Internal(format!("public key DER: {e}")))
}

/// `pk` (the raw public key of a `kind` keyring) in `format`: a base64 string
/// (`raw`), PEM text (`pem`) or a JWK object (`jwk`).
pub fn public_key_form(kind: KeyType, pk: &[u8], format: &str) -> Result<Value> {
    match format {
        "raw" => Ok(Value::String(B64.encode(pk))),
        "pem" => spki(kind, pk, format)?
            .to_pem(LineEnding::LF)
            .map(Value::String)
            .map_err(|e| Error::Internal(format!("public key PEM: {e}"))),
        "jwk" => match kind {
            KeyType::Ed25519 => Ok(json!({
                "kty": "OKP",
                "crv": "Ed25519",
                "x": base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(pk),
            })),
            _ => Err(unsupported(kind, format)),
        },
        "fk1r" => match kind {
            KeyType::XWing => {
                let r = fleetkey_crypto::hpke::XWingRecipient::from_bytes(pk)?;
                Ok(Value::String(fleetkey_crypto::keyfile::recipient_string(
                    &r,
                )))
            }
            _ => Err(unsupported(kind, format)),
        },
        other => Err(Error::Invalid {
            what: "format",
            why: format!("unknown format {other:?}; use raw, pem, jwk or fk1r"),
        }),
    }
}

/// Most bytes of a public key file [`parse_public_key`] reads.
pub const MAX_PUBLIC_KEY_FILE: usize = 64 * 1024;

/// Reads a public key written by `fleetkey keys public-key` (the JSON of any
/// format) or a bare PEM SubjectPublicKeyInfo (Ed25519 or ML-DSA-65): its key type
/// and raw bytes, length-checked.
pub fn parse_public_key(text: &str) -> Result<(KeyType, Vec<u8>)> {
    let bad = |why: String| Error::Invalid {
        what: "public key",
        why,
    };
    if text.len() > MAX_PUBLIC_KEY_FILE {
        return Err(bad("larger than 64 KiB".into()));
    }
    let text = text.trim();
    let (kind, pk) = if text.starts_with('{') {
        let v: Value = serde_json::from_str(text).map_err(|e| bad(e.to_string()))?;
        let kind = KeyType::from_name(v["algorithm"].as_str().unwrap_or_default())?;
        let pk = match (v["format"].as_str(), &v["public_key"]) {
            (Some("raw"), Value::String(b)) => {
                B64.decode(b).map_err(|_| bad("not base64".into()))?
            }
            (Some("pem"), Value::String(p)) => parse_pem(p)?.1,
            (Some("jwk"), Value::Object(j)) if j.get("kty") == Some(&json!("OKP")) => {
                base64::engine::general_purpose::URL_SAFE_NO_PAD
                    .decode(j.get("x").and_then(Value::as_str).unwrap_or_default())
                    .map_err(|_| bad("jwk x is not base64url".into()))?
            }
            _ => {
                return Err(bad(
                    "expected format raw, pem or jwk with its public_key".into()
                ));
            }
        };
        (kind, pk)
    } else {
        parse_pem(text)?
    };
    let want = match kind {
        KeyType::Ed25519 => fleetkey_crypto::ed25519::PUBLIC_KEY_LEN,
        KeyType::MlDsa65 => fleetkey_crypto::mldsa::PUBLIC_KEY_LEN,
        KeyType::Ed25519MlDsa65 => fleetkey_crypto::composite::PUBLIC_KEY_LEN,
        other => return Err(bad(format!("{} keys make no signatures", other.name()))),
    };
    if pk.len() != want {
        return Err(bad(format!(
            "{} bytes; a {} key has {want}",
            pk.len(),
            kind.name()
        )));
    }
    Ok((kind, pk))
}

fn parse_pem(text: &str) -> Result<(KeyType, Vec<u8>)> {
    use spki::der::Decode;
    let bad = |why: &str| Error::Invalid {
        what: "public key",
        why: why.into(),
    };
    let (label, der) =
        spki::der::pem::decode_vec(text.trim().as_bytes()).map_err(|_| bad("not PEM"))?;
    if label != "PUBLIC KEY" {
        return Err(bad("expected a PEM PUBLIC KEY"));
    }
    let spki =
        SubjectPublicKeyInfoRef::from_der(&der).map_err(|_| bad("not a SubjectPublicKeyInfo"))?;
    let kind = match spki.algorithm.oid {
        ED25519_OID => KeyType::Ed25519,
        ML_DSA_65_OID => KeyType::MlDsa65,
        _ => return Err(bad("not an Ed25519 or ML-DSA-65 key")),
    };
    if spki.algorithm.parameters.is_some() {
        return Err(bad("unexpected algorithm parameters"));
    }
    let pk = spki
        .subject_public_key
        .as_bytes()
        .ok_or_else(|| bad("unused bits in the key"))?;
    Ok((kind, pk.to_vec()))
}

/// Verifies `sig` over a message or (prehash mode) a digest with a public key of
/// `kind`.
pub fn verify_with(kind: KeyType, pk: &[u8], msg: Signable<'_>, sig: &[u8]) -> Result<()> {
    use fleetkey_crypto::prehash;
    let msg = match msg {
        Signable::Message(m) => m,
        Signable::Digest(d) => {
            super::check_prehash(kind, d.alg())?;
            match kind {
                KeyType::Ed25519 => prehash::ed25519ph_verify(pk, d, sig)?,
                _ => prehash::hash_mldsa65_verify(pk, d, sig)?,
            }
            return Ok(());
        }
    };
    match kind {
        KeyType::Ed25519 => fleetkey_crypto::ed25519::verify(pk, msg, sig)?,
        KeyType::MlDsa65 => fleetkey_crypto::mldsa::verify(pk, msg, sig)?,
        KeyType::Ed25519MlDsa65 => fleetkey_crypto::composite::verify(pk, msg, sig)?,
        other => {
            return Err(Error::Invalid {
                what: "public key",
                why: format!("{} keys do not sign", other.name()),
            });
        }
    }
    Ok(())
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
    fn every_written_form_reads_back() {
        use fleetkey_crypto::ed25519::Ed25519Signer;
        let k = Ed25519Signer::generate().unwrap();
        let pk = k.public_key().to_vec();
        // Every form of a signing key (fk1r is an x-wing recipient's).
        for format in FORMATS.into_iter().filter(|f| *f != "fk1r") {
            let v = public_key_form(KeyType::Ed25519, &pk, format).unwrap();
            let file = json!({"algorithm": "ed25519", "key_version": 1, "format": format, "public_key": v});
            assert_eq!(
                parse_public_key(&file.to_string()).unwrap(),
                (KeyType::Ed25519, pk.clone())
            );
        }
        let pem = public_key_form(KeyType::Ed25519, &pk, "pem").unwrap();
        let (kind, back) = parse_public_key(pem.as_str().unwrap()).unwrap();
        verify_with(kind, &back, Signable::Message(b"m"), &k.sign(b"m")).unwrap();
        assert!(verify_with(kind, &back, Signable::Message(b"n"), &k.sign(b"m")).is_err());
        let ml = fleetkey_crypto::mldsa::MlDsaSigner::generate().unwrap();
        let pem = public_key_form(KeyType::MlDsa65, &ml.public_key(), "pem").unwrap();
        assert_eq!(
            parse_public_key(pem.as_str().unwrap()).unwrap().0,
            KeyType::MlDsa65
        );
        // Refusals: garbage, a short key, an AEAD type, oversized input.
        for bad in [
            "nonsense".to_owned(),
            json!({"algorithm": "ed25519", "format": "raw", "public_key": "AAAA"}).to_string(),
            json!({"algorithm": "aes-256-gcm", "format": "raw", "public_key": "AAAA"}).to_string(),
            "x".repeat(MAX_PUBLIC_KEY_FILE + 1),
        ] {
            assert!(parse_public_key(&bad).is_err());
        }
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
