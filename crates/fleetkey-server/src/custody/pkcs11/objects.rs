//! fleetkey's objects in the token, found by label or made on a first start
//! (docs/custody.md, "What is in the token").

use super::{Conn, WrapMechanism, token_err};
use crate::error::{Error, Result};
use cryptoki::mechanism::Mechanism;
use cryptoki::object::{Attribute, AttributeType, KeyType, ObjectClass, ObjectHandle};
use cryptoki::session::Session;
use fleetkey_crypto::secret::SecretBytes;

const SEED_AAD: &str = "fleetkey custody pkcs11 ml-dsa seed v1";
/// DER of the Ed25519 OID 1.3.101.112, the key pair's `CKA_EC_PARAMS` (RFC 8410).
const ED25519_PARAMS: &[u8] = &[0x06, 0x03, 0x2b, 0x65, 0x70];

/// The one object of `class` labelled `label`, if any; several is an error.
pub(super) fn find_one(
    s: &Session,
    class: ObjectClass,
    label: &str,
) -> Result<Option<ObjectHandle>> {
    let found = s
        .find_objects(&[Attribute::Class(class), Attribute::Label(label.into())])
        .map_err(|e| token_err("find objects", e))?;
    match found.as_slice() {
        [] => Ok(None),
        [one] => Ok(Some(*one)),
        _ => Err(Error::CustodyConfig(format!(
            "the token holds {} objects labelled {label:?}; keep one",
            found.len()
        ))),
    }
}

/// The 32-byte Ed25519 public key from `CKA_EC_POINT` (a DER OCTET STRING, or
/// raw as some tokens give it).
fn ed25519_point(raw: &[u8]) -> Result<[u8; 32]> {
    let key = match raw {
        [0x04, 0x20, rest @ ..] if rest.len() == 32 => rest,
        k if k.len() == 32 => k,
        _ => {
            return Err(Error::CustodyConfig(
                "the token's Ed25519 public key is not 32 bytes".into(),
            ));
        }
    };
    key.try_into()
        .map_err(|_| Error::CustodyConfig("Ed25519 public key".into()))
}

pub(super) fn wrap_key(s: &Session, label: &str, mechanism: WrapMechanism) -> Result<ObjectHandle> {
    let label = format!("{label}-{}", mechanism.suffix());
    if let Some(k) = find_one(s, ObjectClass::SECRET_KEY, &label)? {
        return Ok(k);
    }
    let gcm = mechanism == WrapMechanism::AesGcm;
    let template = [
        Attribute::Token(true),
        Attribute::Private(true),
        Attribute::Label(label.into_bytes()),
        Attribute::ValueLen(32.into()),
        Attribute::Encrypt(gcm),
        Attribute::Decrypt(gcm),
        Attribute::Wrap(!gcm),
        Attribute::Unwrap(!gcm),
        Attribute::Sensitive(true),
        Attribute::Extractable(false),
    ];
    s.generate_key(&Mechanism::AesKeyGen, &template)
        .map_err(|e| token_err("generate the wrapping key", e))
}

pub(super) fn ed25519_key(s: &Session, label: &str) -> Result<ObjectHandle> {
    let label = format!("{label}-ed25519");
    if let Some(k) = find_one(s, ObjectClass::PRIVATE_KEY, &label)? {
        return Ok(k);
    }
    let public = [
        Attribute::Token(true),
        Attribute::Label(label.clone().into_bytes()),
        Attribute::KeyType(KeyType::EC_EDWARDS),
        Attribute::EcParams(ED25519_PARAMS.to_vec()),
        Attribute::Verify(true),
    ];
    let private = [
        Attribute::Token(true),
        Attribute::Private(true),
        Attribute::Label(label.into_bytes()),
        Attribute::Sign(true),
        Attribute::Sensitive(true),
        Attribute::Extractable(false),
    ];
    let (_, k) = s
        .generate_key_pair(&Mechanism::EccEdwardsKeyPairGen, &public, &private)
        .map_err(|e| token_err("generate the Ed25519 key", e))?;
    Ok(k)
}

pub(super) fn ed25519_public(s: &Session, label: &str) -> Result<[u8; 32]> {
    let label = format!("{label}-ed25519");
    let k = find_one(s, ObjectClass::PUBLIC_KEY, &label)?.ok_or_else(|| {
        Error::CustodyConfig(format!("the token has no public key labelled {label:?}"))
    })?;
    let attrs = s
        .get_attributes(k, &[AttributeType::EcPoint])
        .map_err(|e| token_err("read the Ed25519 public key", e))?;
    match attrs.as_slice() {
        [Attribute::EcPoint(p)] => ed25519_point(p),
        _ => Err(Error::CustodyConfig(
            "the token gave no CKA_EC_POINT for the Ed25519 key".into(),
        )),
    }
}

/// The ML-DSA-65 seed. A token set up before in-token derivation keeps its
/// wrapped seed object (`<label>-ml-dsa-seed`: the service's public key must not
/// change); otherwise the seed is derived in the token from `<label>-derive`
/// ([`derive`]), the same on every instance, never stored.
pub(super) fn mldsa_seed(conn: &Conn, s: &Session, label: &str) -> Result<SecretBytes<32>> {
    let seed_label = format!("{label}-ml-dsa-seed");
    if let Some(obj) = find_one(s, ObjectClass::DATA, &seed_label)? {
        let attrs = s
            .get_attributes(obj, &[AttributeType::Value])
            .map_err(|e| token_err("read the ML-DSA seed", e))?;
        let [Attribute::Value(wrapped)] = attrs.as_slice() else {
            return Err(Error::CustodyConfig(
                "the ML-DSA seed object is empty".into(),
            ));
        };
        let seed = conn.unwrap(s, wrapped, SEED_AAD.as_bytes())?;
        return Ok(SecretBytes::from_slice(&seed)?);
    }
    derive(s, derive_key(s, label)?, MLDSA_INFO)
}

/// HKDF info of the service's ML-DSA-65 seed.
pub(super) const MLDSA_INFO: &[u8] = b"fleetkey custody pkcs11 ml-dsa-65 seed v1";

/// `<label>-derive`: a 256-bit generic secret made by the token
/// (`CKM_GENERIC_SECRET_KEY_GEN`), sensitive, not extractable, usable only to
/// sign (HMAC) — the pseudorandom key that keys are derived from.
pub(super) fn derive_key(s: &Session, label: &str) -> Result<ObjectHandle> {
    let label = format!("{label}-derive");
    if let Some(k) = find_one(s, ObjectClass::SECRET_KEY, &label)? {
        return Ok(k);
    }
    let template = [
        Attribute::Token(true),
        Attribute::Private(true),
        Attribute::Label(label.into_bytes()),
        Attribute::KeyType(KeyType::GENERIC_SECRET),
        Attribute::ValueLen(32.into()),
        Attribute::Sign(true),
        Attribute::Verify(false),
        Attribute::Encrypt(false),
        Attribute::Decrypt(false),
        Attribute::Derive(false),
        Attribute::Sensitive(true),
        Attribute::Extractable(false),
    ];
    s.generate_key(&Mechanism::GenericSecretKeyGen, &template)
        .map_err(|e| token_err("generate the derivation key", e))
}

/// HKDF-Expand (RFC 5869 §2.3) of one block with `key` as the PRK and
/// HMAC-SHA256 computed by the token (`CKM_SHA256_HMAC`) as the PRF:
/// `T(1) = HMAC(PRK, info ‖ 0x01)`, 32 bytes. The PRK never leaves the token.
/// (`CKM_HKDF_DERIVE` would give the same bytes; SoftHSM2 2.6 does not offer
/// it, so it is not used.)
pub(super) fn derive(s: &Session, key: ObjectHandle, info: &[u8]) -> Result<SecretBytes<32>> {
    let mut input = Vec::with_capacity(info.len() + 1);
    input.extend_from_slice(info);
    input.push(0x01);
    let out = zeroize::Zeroizing::new(
        s.sign(&Mechanism::Sha256Hmac, key, &input)
            .map_err(|e| token_err("derive (HMAC-SHA256)", e))?,
    );
    Ok(SecretBytes::from_slice(&out)?)
}
