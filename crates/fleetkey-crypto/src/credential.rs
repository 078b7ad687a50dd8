//! Device credentials: a CWT (RFC 8392) in a COSE_Sign1 (RFC 9052), signed by a
//! fleet's issuing key — Ed25519 (COSE `EdDSA`, -8) or the composite Ed25519 +
//! ML-DSA-65 of [`crate::composite`] (private-use algorithm
//! [`COMPOSITE_ALG`]). Specified in `docs/formats.md#device-credentials`.
//!
//! The token is the tagged COSE_Sign1 (CBOR tag 18) with the claims set as payload.
//! Claims: `iss` (1, the issuer name), `sub` (2, the device id), `exp` (4), `iat`
//! (6), `cti` (7, a random credential id), and private claims for the fleet, the
//! hardware identity, the role and the device's public keys (see the constants
//! below). Verification checks the algorithm against the key type, the signature,
//! the presence and shape of every claim, and the validity window.

use crate::cwt;
use crate::{Error, Result};
use coset::CborSerializable;
use coset::cwt::{ClaimName, ClaimsSet, ClaimsSetBuilder, Timestamp};

pub use crate::cwt::{COMPOSITE_ALG, Issuer, IssuerPublicKey};

/// Longest credential accepted, in bytes (a composite credential with every key is
/// about 7.5 KiB).
pub const MAX_LEN: usize = 16 * 1024;
/// Private claim: the fleet (text).
pub const CLAIM_FLEET: i64 = -65_537;
/// Private claim: the hardware identity (text).
pub const CLAIM_HARDWARE_ID: i64 = -65_538;
/// Private claim: the role (`"birth"` or `"operational"`).
pub const CLAIM_ROLE: i64 = -65_539;
/// Private claim: the device's public keys, a map `{1: X25519 (32 bytes), 2: Ed25519
/// (32), ? 3: ML-KEM-768 (1184), ? 4: ML-DSA-65 (1952)}`.
pub const CLAIM_KEYS: i64 = -65_540;

type Value = coset::cbor::value::Value;

/// What a credential is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Issued at the factory; proves the device was made by us; used to onboard.
    Birth,
    /// Issued at onboarding; used in daily operation.
    Operational,
}

impl Role {
    /// The claim text.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Birth => "birth",
            Role::Operational => "operational",
        }
    }
}

/// The device's public keys. Private keys never leave the device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceKeys {
    /// X25519 key for sessions.
    pub x25519: [u8; 32],
    /// Ed25519 key for signatures.
    pub ed25519: [u8; 32],
    /// ML-KEM-768 encapsulation key, if the device has one.
    pub ml_kem_768: Option<Vec<u8>>,
    /// ML-DSA-65 public key, if the device has one.
    pub ml_dsa_65: Option<Vec<u8>>,
}

/// Everything a credential states.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claims {
    /// Issuer name (for example `fleetkey:<fleet>`).
    pub issuer: String,
    /// Device id.
    pub device_id: String,
    /// Fleet (tenant) the device belongs to.
    pub fleet: String,
    /// Hardware identity (chip UID, serial or MAC).
    pub hardware_id: String,
    /// Birth or operational.
    pub role: Role,
    /// The device's public keys.
    pub keys: DeviceKeys,
    /// Issue time, Unix seconds.
    pub issued_at: i64,
    /// Expiry, Unix seconds.
    pub expires_at: i64,
    /// Random credential id (for revocation lists).
    pub credential_id: [u8; 16],
}

fn bad(what: &'static str) -> Error {
    Error::Malformed(what)
}

pub(crate) fn keys_value(k: &DeviceKeys) -> Value {
    let mut m = vec![
        (Value::Integer(1.into()), Value::Bytes(k.x25519.to_vec())),
        (Value::Integer(2.into()), Value::Bytes(k.ed25519.to_vec())),
    ];
    if let Some(v) = &k.ml_kem_768 {
        m.push((Value::Integer(3.into()), Value::Bytes(v.clone())));
    }
    if let Some(v) = &k.ml_dsa_65 {
        m.push((Value::Integer(4.into()), Value::Bytes(v.clone())));
    }
    Value::Map(m)
}

pub(crate) fn keys_from(v: &Value) -> Result<DeviceKeys> {
    let Value::Map(m) = v else {
        return Err(bad("credential keys"));
    };
    let mut x = None;
    let mut e = None;
    let mut kem = None;
    let mut dsa = None;
    for (k, v) in m {
        let id = k
            .as_integer()
            .and_then(|i| i64::try_from(i).ok())
            .ok_or(bad("credential key label"))?;
        let b = v.as_bytes().ok_or(bad("credential key bytes"))?;
        let slot = match id {
            1 => &mut x,
            2 => &mut e,
            3 => &mut kem,
            4 => &mut dsa,
            _ => return Err(bad("credential key label")),
        };
        if slot.replace(b.clone()).is_some() {
            return Err(bad("duplicate credential key"));
        }
    }
    let arr = |v: Option<Vec<u8>>| -> Result<[u8; 32]> {
        v.ok_or(bad("credential keys"))?
            .try_into()
            .map_err(|_| bad("credential key length"))
    };
    let keys = DeviceKeys {
        x25519: arr(x)?,
        ed25519: arr(e)?,
        ml_kem_768: kem,
        ml_dsa_65: dsa,
    };
    if keys
        .ml_kem_768
        .as_ref()
        .is_some_and(|k| k.len() != crate::mlkem::ENCAPSULATION_KEY_LEN)
        || keys
            .ml_dsa_65
            .as_ref()
            .is_some_and(|k| k.len() != crate::mldsa::PUBLIC_KEY_LEN)
    {
        return Err(bad("credential key length"));
    }
    Ok(keys)
}

/// Issues a credential: returns the tagged COSE_Sign1 bytes.
pub fn issue(claims: &Claims, issuer: Issuer<'_>, key_id: &[u8]) -> Result<Vec<u8>> {
    let set = ClaimsSetBuilder::new()
        .issuer(claims.issuer.clone())
        .subject(claims.device_id.clone())
        .expiration_time(Timestamp::WholeSeconds(claims.expires_at))
        .issued_at(Timestamp::WholeSeconds(claims.issued_at))
        .cwt_id(claims.credential_id.to_vec())
        .private_claim(CLAIM_FLEET, Value::Text(claims.fleet.clone()))
        .private_claim(CLAIM_HARDWARE_ID, Value::Text(claims.hardware_id.clone()))
        .private_claim(CLAIM_ROLE, Value::Text(claims.role.as_str().to_owned()))
        .private_claim(CLAIM_KEYS, keys_value(&claims.keys))
        .build();
    let payload = set.to_vec().map_err(|_| bad("credential claims"))?;
    cwt::sign(payload, issuer, key_id, MAX_LEN, "credential")
}

/// Parses a credential without checking its signature (for routing: which fleet,
/// which key id). Never trust the result before [`verify`].
pub fn peek(token: &[u8]) -> Result<(Vec<u8>, Claims)> {
    let (sign1, claims) = parse(token)?;
    Ok((sign1.protected.header.key_id.clone(), claims))
}

fn parse(token: &[u8]) -> Result<(coset::CoseSign1, Claims)> {
    let sign1 = cwt::parse(token, MAX_LEN, "credential (not a tagged COSE_Sign1)")?;
    let payload = sign1.payload.as_deref().ok_or(bad("credential payload"))?;
    let set = ClaimsSet::from_slice(payload).map_err(|_| bad("credential claims"))?;
    let claims = claims_from(&set)?;
    Ok((sign1, claims))
}

fn text(v: &Value, what: &'static str) -> Result<String> {
    v.as_text().map(str::to_owned).ok_or(bad(what))
}

fn claims_from(set: &ClaimsSet) -> Result<Claims> {
    let whole = |t: &Option<Timestamp>, what| match t {
        Some(Timestamp::WholeSeconds(s)) => Ok(*s),
        _ => Err(bad(what)),
    };
    let mut fleet = None;
    let mut hw = None;
    let mut role = None;
    let mut keys = None;
    for (name, v) in &set.rest {
        match name {
            ClaimName::PrivateUse(CLAIM_FLEET) => fleet = Some(text(v, "credential fleet")?),
            ClaimName::PrivateUse(CLAIM_HARDWARE_ID) => {
                hw = Some(text(v, "credential hardware id")?)
            }
            ClaimName::PrivateUse(CLAIM_ROLE) => {
                role = Some(match v.as_text() {
                    Some("birth") => Role::Birth,
                    Some("operational") => Role::Operational,
                    _ => return Err(bad("credential role")),
                })
            }
            ClaimName::PrivateUse(CLAIM_KEYS) => keys = Some(keys_from(v)?),
            _ => return Err(bad("credential has an unknown claim")),
        }
    }
    let credential_id: [u8; 16] = set
        .cwt_id
        .clone()
        .ok_or(bad("credential id"))?
        .try_into()
        .map_err(|_| bad("credential id"))?;
    Ok(Claims {
        issuer: set.issuer.clone().ok_or(bad("credential issuer"))?,
        device_id: set.subject.clone().ok_or(bad("credential subject"))?,
        fleet: fleet.ok_or(bad("credential fleet"))?,
        hardware_id: hw.ok_or(bad("credential hardware id"))?,
        role: role.ok_or(bad("credential role"))?,
        keys: keys.ok_or(bad("credential keys"))?,
        issued_at: whole(&set.issued_at, "credential iat")?,
        expires_at: whole(&set.expiration_time, "credential exp")?,
        credential_id,
    })
}

/// Verifies a credential with the issuer's public key at time `now`: algorithm
/// matches the key, signature verifies, claims are complete, `iat ≤ now < exp`.
pub fn verify(token: &[u8], key: IssuerPublicKey<'_>, now: i64) -> Result<Claims> {
    let (sign1, claims) = parse(token)?;
    cwt::verify(&sign1, key)?;
    if now < claims.issued_at {
        return Err(Error::NotYetValid);
    }
    if now >= claims.expires_at {
        return Err(Error::Expired);
    }
    Ok(claims)
}

/// The signature algorithm a credential names (`EdDSA` or `Ed25519+ML-DSA-65`),
/// without verifying anything; for reporting.
pub fn algorithm_name(token: &[u8]) -> Option<&'static str> {
    cwt::algorithm_name(&cwt::parse(token, MAX_LEN, "credential").ok()?)
}
