//! Signed key records for the key directory: who an identity (device, service,
//! user) is and which keys speak for it, signed by the directory's key (composite
//! Ed25519 + ML-DSA-65, or Ed25519). A CWT (RFC 8392) in a tagged COSE_Sign1;
//! every field is a claim, so the signature covers all of them. Specified in
//! `docs/formats.md#key-records`.
//!
//! Clients [`verify`] a record against the directory key, the clock, a maximum age
//! and the highest sequence number they have seen for the identity: a record that
//! is older than one already seen (a rollback), stale, expired or revoked is
//! refused, each with its own error.

use crate::credential::DeviceKeys;
use crate::cwt::{self, Issuer, IssuerPublicKey, SignatureAlg, Unsigned};
use crate::{Error, Result};
use coset::CborSerializable;
use coset::cwt::{ClaimName, ClaimsSet, ClaimsSetBuilder, Timestamp};

/// Longest record accepted, bytes.
pub const MAX_LEN: usize = 16 * 1024;
/// Default maximum age of a record a client accepts: 30 days.
pub const DEFAULT_MAX_AGE_SECS: i64 = 30 * 86_400;
/// Private claim: the kind of identity (`"device"`, `"service"`, `"user"`).
pub const CLAIM_KIND: i64 = -65_550;
/// Private claim: the keys (the map of `credential::CLAIM_KEYS`).
pub const CLAIM_KEYS: i64 = -65_551;
/// Private claim: the sequence number (unsigned integer).
pub const CLAIM_SEQUENCE: i64 = -65_552;
/// Private claim: revoked (boolean).
pub const CLAIM_REVOKED: i64 = -65_553;

type Value = coset::cbor::value::Value;

/// What an identity is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IdentityKind {
    /// A device of a fleet.
    Device,
    /// A service (the fleetkey server itself, a backend).
    Service,
    /// A person.
    User,
}

impl IdentityKind {
    /// The claim text.
    pub fn as_str(self) -> &'static str {
        match self {
            IdentityKind::Device => "device",
            IdentityKind::Service => "service",
            IdentityKind::User => "user",
        }
    }
}

/// A key record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyRecord {
    /// Identity id (a device id, a service name).
    pub identity: String,
    /// What it is.
    pub kind: IdentityKind,
    /// Its keys: the Noise static X25519 key, Ed25519, and optionally ML-KEM-768
    /// (for the hybrid session) and ML-DSA-65.
    pub keys: DeviceKeys,
    /// Issue time.
    pub issued_at: i64,
    /// Expiry.
    pub expires_at: i64,
    /// Increases with every new record for the identity.
    pub sequence: u64,
    /// A revocation: the identity's keys must no longer be trusted.
    pub revoked: bool,
}

/// What a client checks besides the signature.
#[derive(Debug, Clone, Copy)]
pub struct Freshness {
    /// The time now.
    pub now: i64,
    /// Refuse records issued longer ago than this.
    pub max_age_secs: i64,
    /// The highest sequence accepted before for this identity, if any.
    pub last_sequence: Option<u64>,
}

fn bad(what: &'static str) -> Error {
    Error::Malformed(what)
}

fn payload(r: &KeyRecord) -> Result<Vec<u8>> {
    ClaimsSetBuilder::new()
        .subject(r.identity.clone())
        .issued_at(Timestamp::WholeSeconds(r.issued_at))
        .expiration_time(Timestamp::WholeSeconds(r.expires_at))
        .private_claim(CLAIM_KIND, Value::Text(r.kind.as_str().to_owned()))
        .private_claim(CLAIM_KEYS, crate::credential::keys_value(&r.keys))
        .private_claim(CLAIM_SEQUENCE, Value::Integer(r.sequence.into()))
        .private_claim(CLAIM_REVOKED, Value::Bool(r.revoked))
        .build()
        .to_vec()
        .map_err(|_| bad("key record claims"))
}

/// Signs a record with a local key.
pub fn sign(r: &KeyRecord, issuer: Issuer<'_>, key_id: &[u8]) -> Result<Vec<u8>> {
    cwt::sign(payload(r)?, issuer, key_id, MAX_LEN, "key record")
}

/// A record to be signed by a remote key (custody): sign
/// [`Unsigned::to_be_signed`], then [`Unsigned::finish`] with [`MAX_LEN`].
pub fn unsigned(r: &KeyRecord, alg: SignatureAlg, key_id: &[u8]) -> Result<Unsigned> {
    Ok(cwt::unsigned(payload(r)?, alg, key_id))
}

/// Parses a record without verifying it (never trust the result before [`verify`]).
pub fn peek(token: &[u8]) -> Result<KeyRecord> {
    let sign1 = cwt::parse(token, MAX_LEN, "key record (not a tagged COSE_Sign1)")?;
    from_payload(sign1.payload.as_deref().ok_or(bad("key record payload"))?)
}

fn from_payload(payload: &[u8]) -> Result<KeyRecord> {
    let set = ClaimsSet::from_slice(payload).map_err(|_| bad("key record claims"))?;
    let whole = |t: &Option<Timestamp>, what| match t {
        Some(Timestamp::WholeSeconds(s)) => Ok(*s),
        _ => Err(bad(what)),
    };
    let (mut kind, mut keys, mut sequence, mut revoked) = (None, None, None, None);
    for (name, v) in &set.rest {
        match name {
            ClaimName::PrivateUse(CLAIM_KIND) => {
                kind = Some(match v.as_text() {
                    Some("device") => IdentityKind::Device,
                    Some("service") => IdentityKind::Service,
                    Some("user") => IdentityKind::User,
                    _ => return Err(bad("key record kind")),
                })
            }
            ClaimName::PrivateUse(CLAIM_KEYS) => keys = Some(crate::credential::keys_from(v)?),
            ClaimName::PrivateUse(CLAIM_SEQUENCE) => {
                sequence = Some(
                    v.as_integer()
                        .and_then(|i| u64::try_from(i).ok())
                        .ok_or(bad("key record sequence"))?,
                )
            }
            ClaimName::PrivateUse(CLAIM_REVOKED) => {
                revoked = Some(v.as_bool().ok_or(bad("key record revoked flag"))?)
            }
            _ => return Err(bad("key record has an unknown claim")),
        }
    }
    if set.issuer.is_some()
        || set.audience.is_some()
        || set.not_before.is_some()
        || set.cwt_id.is_some()
    {
        return Err(bad("key record has an unknown claim"));
    }
    Ok(KeyRecord {
        identity: set.subject.clone().ok_or(bad("key record identity"))?,
        kind: kind.ok_or(bad("key record kind"))?,
        keys: keys.ok_or(bad("key record keys"))?,
        issued_at: whole(&set.issued_at, "key record iat")?,
        expires_at: whole(&set.expiration_time, "key record exp")?,
        sequence: sequence.ok_or(bad("key record sequence"))?,
        revoked: revoked.ok_or(bad("key record revoked flag"))?,
    })
}

/// Verifies a record: signature under the directory key (algorithm matching the key
/// type), `iat ≤ now < exp`, not older than the maximum age, a sequence not below
/// the last one seen, and not revoked. A revocation that verifies is reported as
/// [`Error::RecordRevoked`] with its sequence, so the caller can remember it.
pub fn verify(token: &[u8], key: IssuerPublicKey<'_>, f: Freshness) -> Result<KeyRecord> {
    let sign1 = cwt::parse(token, MAX_LEN, "key record (not a tagged COSE_Sign1)")?;
    cwt::verify(&sign1, key)?;
    let r = from_payload(sign1.payload.as_deref().ok_or(bad("key record payload"))?)?;
    if f.last_sequence.is_some_and(|last| r.sequence < last) {
        return Err(Error::Rollback);
    }
    // A verified revocation counts whatever its age.
    if r.revoked {
        return Err(Error::RecordRevoked(r.sequence));
    }
    if f.now < r.issued_at {
        return Err(Error::NotYetValid);
    }
    if f.now >= r.expires_at {
        return Err(Error::Expired);
    }
    if f.now.saturating_sub(r.issued_at) > f.max_age_secs {
        return Err(Error::Stale);
    }
    Ok(r)
}
