//! A verified cache of key records (`docs/formats.md#key-records`).
//!
//! Every record entering the cache is verified against the directory's key, the
//! clock, a maximum age and the highest sequence seen for its identity (kept in
//! [`crate::SessionState`] so rollbacks are refused across restarts too). Reading
//! from the cache re-checks expiry and age: a record that has aged out must be
//! fetched again. A verified revocation replaces whatever was cached.

use crate::error::{Error, Result};
use base64::{Engine as _, engine::general_purpose::STANDARD as B64};
use fleetkey_crypto::cwt::IssuerPublicKey;
use fleetkey_crypto::record::{self, Freshness, KeyRecord};
use std::collections::{BTreeMap, HashMap};

/// Largest directory response read, bytes.
const MAX_RESPONSE: usize = 64 * 1024;

enum Entry {
    Valid(KeyRecord),
    Revoked(u64),
}

/// Verified key records by identity.
pub struct RecordCache {
    directory_key: Vec<u8>,
    max_age_secs: i64,
    entries: HashMap<String, Entry>,
    sequences: BTreeMap<String, u64>,
}

impl std::fmt::Debug for RecordCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RecordCache")
            .field("identities", &self.entries.len())
            .field("max_age_secs", &self.max_age_secs)
            .finish()
    }
}

impl RecordCache {
    /// A cache trusting records signed by `directory_key` (32-byte Ed25519 or the
    /// 1,984-byte composite Ed25519 + ML-DSA-65 key served at `GET /v1/directory`),
    /// with the default maximum age (30 days).
    pub fn new(directory_key: Vec<u8>) -> Self {
        Self {
            directory_key,
            max_age_secs: record::DEFAULT_MAX_AGE_SECS,
            entries: HashMap::new(),
            sequences: BTreeMap::new(),
        }
    }

    /// Refuse records issued longer ago than this.
    pub fn with_max_age(mut self, secs: i64) -> Self {
        self.max_age_secs = secs;
        self
    }

    /// Start from the sequences seen before (from the persisted state).
    pub fn with_sequences(mut self, sequences: BTreeMap<String, u64>) -> Self {
        self.sequences = sequences;
        self
    }

    /// The highest sequence accepted per identity (persist it).
    pub fn sequences(&self) -> &BTreeMap<String, u64> {
        &self.sequences
    }

    fn key(&self) -> IssuerPublicKey<'_> {
        if self.directory_key.len() == 32 {
            IssuerPublicKey::Ed25519(&self.directory_key)
        } else {
            IssuerPublicKey::Composite(&self.directory_key)
        }
    }

    /// Verifies a signed record and caches it. A verified revocation is cached as
    /// such and returned as [`fleetkey_crypto::Error::RecordRevoked`].
    pub fn insert(&mut self, token: &[u8], now: i64) -> Result<&KeyRecord> {
        let identity = record::peek(token).map_err(Error::Record)?.identity;
        let f = Freshness {
            now,
            max_age_secs: self.max_age_secs,
            last_sequence: self.sequences.get(&identity).copied(),
        };
        match record::verify(token, self.key(), f) {
            Ok(r) => {
                self.sequences.insert(identity.clone(), r.sequence);
                self.entries.insert(identity.clone(), Entry::Valid(r));
            }
            Err(fleetkey_crypto::Error::RecordRevoked(seq)) => {
                self.sequences.insert(identity.clone(), seq);
                self.entries.insert(identity, Entry::Revoked(seq));
                return Err(Error::Record(fleetkey_crypto::Error::RecordRevoked(seq)));
            }
            Err(e) => return Err(Error::Record(e)),
        }
        self.get(&identity, now)
    }

    /// The cached record of `identity`, if it is still fresh at `now`.
    pub fn get(&self, identity: &str, now: i64) -> Result<&KeyRecord> {
        match self.entries.get(identity) {
            None => Err(Error::NoRecord(identity.to_owned())),
            Some(Entry::Revoked(seq)) => {
                Err(Error::Record(fleetkey_crypto::Error::RecordRevoked(*seq)))
            }
            Some(Entry::Valid(r)) => {
                if now >= r.expires_at {
                    Err(Error::Record(fleetkey_crypto::Error::Expired))
                } else if now.saturating_sub(r.issued_at) > self.max_age_secs {
                    Err(Error::Record(fleetkey_crypto::Error::Stale))
                } else {
                    Ok(r)
                }
            }
        }
    }

    /// The cached record, or fetched from the directory at `base_url`
    /// (`GET /v1/directory/{identity}`) when missing or aged out.
    pub async fn get_or_fetch(
        &mut self,
        http: &reqwest::Client,
        base_url: &str,
        identity: &str,
        now: i64,
    ) -> Result<&KeyRecord> {
        match self.get(identity, now) {
            Ok(_) => return self.get(identity, now),
            Err(Error::Record(fleetkey_crypto::Error::RecordRevoked(s))) => {
                return Err(Error::Record(fleetkey_crypto::Error::RecordRevoked(s)));
            }
            Err(_) => {}
        }
        let token = fetch(http, base_url, identity).await?;
        self.insert(&token, now)
    }
}

/// Fetches the signed record of `identity` (unverified bytes: give them to
/// [`RecordCache::insert`]).
pub async fn fetch(http: &reqwest::Client, base_url: &str, identity: &str) -> Result<Vec<u8>> {
    let url = format!(
        "{}/v1/directory/{}",
        base_url.trim_end_matches('/'),
        identity
    );
    let resp = http
        .get(&url)
        .send()
        .await
        .map_err(|e| Error::Protocol(format!("directory: {e}")))?;
    if resp.status() == reqwest::StatusCode::NOT_FOUND {
        return Err(Error::NoRecord(identity.to_owned()));
    }
    if !resp.status().is_success() {
        return Err(Error::Protocol(format!(
            "directory: HTTP {}",
            resp.status()
        )));
    }
    let body = resp
        .bytes()
        .await
        .map_err(|e| Error::Protocol(format!("directory: {e}")))?;
    if body.len() > MAX_RESPONSE {
        return Err(Error::Protocol("directory: response too large".into()));
    }
    let v: serde_json::Value =
        serde_json::from_slice(&body).map_err(|_| Error::Protocol("directory: not JSON".into()))?;
    v["record"]
        .as_str()
        .and_then(|r| B64.decode(r).ok())
        .ok_or_else(|| Error::Protocol("directory: no base64 record".into()))
}
