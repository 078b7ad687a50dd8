//! The key directory: a signed, timestamped key record per identity
//! ([`fleetkey_crypto::record`]), signed by the service's composite Ed25519 +
//! ML-DSA-65 key in custody. Records are written in the same transaction as the
//! change that makes them (a device's onboarding, credential rotation and
//! decommissioning, the last as a revocation), each with a sequence number one
//! above the previous, so clients can refuse rollbacks. Records live 30 days and
//! are re-signed by the scheduler after 7, so a client's default maximum age
//! (30 days) always finds a fresh one.

use crate::audit::AuditDraft;
use crate::clock::SharedClock;
use crate::custody::Custody;
use crate::error::{Error, Result};
use crate::store::{Change, DirectoryStore, Store};
use fleetkey_crypto::credential::DeviceKeys;
use fleetkey_crypto::cwt::SignatureAlg;
use fleetkey_crypto::record::{self, IdentityKind, KeyRecord};
use serde_json::json;
use std::sync::Arc;

/// The key id in every record's COSE header.
pub const KEY_ID: &[u8] = b"fleetkey-directory";
/// The identity of the service's own record (the device listener's keys).
pub const SERVICE_IDENTITY: &str = "fleetkey-server";
/// How long a record is valid.
pub const RECORD_TTL_SECS: i64 = 30 * 86_400;
/// Records older than this are re-signed by [`Directory::refresh`].
pub const REFRESH_AFTER_SECS: i64 = 7 * 86_400;

pub use crate::store::RecordWrite;

/// The stored form of the service's ML-KEM key: `BE16(len) ‖ custody-wrapped
/// one-use key ‖ the decapsulation key sealed under it`.
pub(crate) fn kem_blob(wrapped_kek: &[u8], sealed: &[u8]) -> Result<Vec<u8>> {
    let mut blob = u16::try_from(wrapped_kek.len())
        .map_err(|_| Error::Corrupt("wrapped key too long".into()))?
        .to_be_bytes()
        .to_vec();
    blob.extend_from_slice(wrapped_kek);
    blob.extend_from_slice(sealed);
    Ok(blob)
}

/// The two parts of a [`kem_blob`]: (custody-wrapped key, sealed key).
pub(crate) fn kem_blob_parts(blob: &[u8]) -> Result<(&[u8], &[u8])> {
    let bad = || Error::Corrupt("stored service KEM key is malformed".into());
    let n = usize::from(u16::from_be_bytes(
        blob.get(..2)
            .ok_or_else(bad)?
            .try_into()
            .map_err(|_| bad())?,
    ));
    Ok((
        blob.get(2..2 + n).ok_or_else(bad)?,
        blob.get(2 + n..).ok_or_else(bad)?,
    ))
}

/// The keys of the service's own record with the signing key's components
/// taken from `signing_public` (the custody's composite public key).
pub(crate) fn with_service_signer(
    mut keys: DeviceKeys,
    signing_public: &[u8],
) -> Result<DeviceKeys> {
    let (ed, dsa) = signing_public.split_at(signing_public.len().min(32));
    keys.ed25519 = ed
        .try_into()
        .map_err(|_| Error::Corrupt("custody public key is too short".into()))?;
    keys.ml_dsa_65 = (!dsa.is_empty()).then(|| dsa.to_vec());
    Ok(keys)
}

/// Signs and serves key records.
pub struct Directory {
    store: Arc<dyn DirectoryStore>,
    custody: Arc<dyn Custody>,
    clock: SharedClock,
}

impl Directory {
    /// A directory over the service's store and custody.
    pub fn new(store: Arc<dyn Store>, custody: Arc<dyn Custody>, clock: SharedClock) -> Self {
        Self {
            store,
            custody,
            clock,
        }
    }

    /// The public key that verifies every record (composite Ed25519 + ML-DSA-65).
    pub fn public_key(&self) -> Vec<u8> {
        self.custody.public_key()
    }

    /// Signs the next record of `identity` (to be written with a change).
    pub async fn prepare(
        &self,
        identity: &str,
        kind: IdentityKind,
        keys: DeviceKeys,
        revoked: bool,
    ) -> Result<RecordWrite> {
        let sequence = match self.store.key_record(identity).await? {
            Some((seq, _)) => seq + 1,
            None => 1,
        };
        let now = self.clock.now();
        let r = KeyRecord {
            identity: identity.to_owned(),
            kind,
            keys,
            issued_at: now,
            expires_at: now.saturating_add(RECORD_TTL_SECS),
            sequence,
            revoked,
        };
        let unsigned = record::unsigned(&r, SignatureAlg::Composite, KEY_ID)?;
        let signature = self.custody.sign(&unsigned.to_be_signed()).await?;
        Ok(RecordWrite {
            identity: identity.to_owned(),
            sequence,
            record: unsigned.finish(signature, record::MAX_LEN, "key record")?,
            revoked,
            issued_at: now,
        })
    }

    /// Stores a service key unless one of that name exists (a concurrent first
    /// start may win: everyone then uses the stored one), and returns the stored
    /// (wrapped, public).
    async fn ensure_service_key(
        &self,
        name: &str,
        candidate: Option<(Vec<u8>, Vec<u8>)>,
    ) -> Result<(Vec<u8>, Vec<u8>)> {
        if let Some((wrapped, public)) = candidate {
            let now = self.clock.now();
            self.store
                .apply(
                    Change::CreateServiceKey {
                        name: name.into(),
                        wrapped,
                        public,
                        at: now,
                    },
                    AuditDraft::new(
                        "service",
                        "service.key_create",
                        format!("service-key:{name}"),
                        json!({}),
                    ),
                    now,
                )
                .await?;
        }
        self.store
            .service_key(name)
            .await?
            .ok_or_else(|| Error::Corrupt(format!("service key {name} vanished")))
    }

    /// The service's Noise static X25519 key (the device listener's identity):
    /// made on first use, wrapped by custody (context `service:noise-static`), the
    /// same on every later start. Returns the scalar and the public key.
    pub async fn server_static_key(
        &self,
    ) -> Result<(fleetkey_crypto::secret::SecretBytes<32>, [u8; 32])> {
        const NAME: &str = "noise-static";
        const CONTEXT: &str = "service:noise-static";
        let candidate = if self.store.service_key(NAME).await?.is_none() {
            let scalar = fleetkey_crypto::secret::SecretBytes::<32>::random()?;
            let public =
                fleetkey_crypto::x25519::X25519Secret::from_bytes(scalar.clone()).public_key()?;
            Some((self.custody.wrap(&scalar, CONTEXT).await?, public.to_vec()))
        } else {
            None
        };
        let (wrapped, public) = self.ensure_service_key(NAME, candidate).await?;
        let scalar = self.custody.unwrap(&wrapped, CONTEXT).await?;
        let public: [u8; 32] = public
            .try_into()
            .map_err(|_| Error::Corrupt("stored service key is not 32 bytes".into()))?;
        Ok((scalar, public))
    }

    /// The service's X-Wing identity for the factory: jigs seal each constrained
    /// device's factory secret to it (`fk1r:` recipient, HPKE with X-Wing), so the
    /// secret never travels in plaintext. Made on first use, its 32-byte seed
    /// wrapped by custody (context `service:factory-xwing`).
    pub async fn factory_identity(&self) -> Result<fleetkey_crypto::hpke::XWingIdentity> {
        self.xwing_identity("factory-xwing").await
    }

    /// The service's X-Wing identity called `name`: made on first use, its
    /// 32-byte seed wrapped by custody (context `service:NAME`), the same on every
    /// instance and every later start.
    pub async fn xwing_identity(&self, name: &str) -> Result<fleetkey_crypto::hpke::XWingIdentity> {
        if let Some(id) = self.existing_xwing_identity(name).await? {
            return Ok(id);
        }
        let id = fleetkey_crypto::hpke::XWingIdentity::generate()?;
        let seed = fleetkey_crypto::secret::SecretBytes::new(*id.expose_secret());
        let candidate = (
            self.custody.wrap(&seed, &format!("service:{name}")).await?,
            id.recipient().to_bytes(),
        );
        self.ensure_service_key(name, Some(candidate)).await?;
        self.existing_xwing_identity(name)
            .await?
            .ok_or_else(|| Error::Corrupt(format!("service key {name} vanished")))
    }

    /// The service's X-Wing identity called `name`, if it was ever made.
    pub async fn existing_xwing_identity(
        &self,
        name: &str,
    ) -> Result<Option<fleetkey_crypto::hpke::XWingIdentity>> {
        let Some((wrapped, _)) = self.store.service_key(name).await? else {
            return Ok(None);
        };
        let seed = self
            .custody
            .unwrap(&wrapped, &format!("service:{name}"))
            .await?;
        Ok(Some(fleetkey_crypto::hpke::XWingIdentity::from_seed(seed)?))
    }

    /// The service's ML-KEM-768 key for the post-quantum hybrid session: made on
    /// first use and kept as `BE16(len) ‖ custody-wrapped one-use key ‖
    /// AES-256-GCM(that key, zero nonce, aad = name)` of the 2,400-byte decapsulation
    /// key (each wrapping key encrypts exactly one message, so the fixed nonce is
    /// never reused).
    pub async fn server_kem_key(&self) -> Result<fleetkey_crypto::mlkem::MlKemSecret> {
        use fleetkey_crypto::aead::{AeadKey, Algorithm};
        const NAME: &str = "noise-kem";
        const CONTEXT: &str = "service:noise-kem";
        let candidate = if self.store.service_key(NAME).await?.is_none() {
            let kem = fleetkey_crypto::mlkem::MlKemSecret::generate()?;
            let kek = AeadKey::generate(Algorithm::Aes256Gcm)?;
            let wrapped_kek = self
                .custody
                .wrap(
                    &fleetkey_crypto::secret::SecretBytes::new(*kek.expose_secret()),
                    CONTEXT,
                )
                .await?;
            let mut sealed = kem.expose_secret()?.expose_secret().to_vec();
            kek.seal_in_place(&[0; 12], NAME.as_bytes(), &mut sealed)?;
            Some((kem_blob(&wrapped_kek, &sealed)?, kem.public_key()?))
        } else {
            None
        };
        let (blob, _) = self.ensure_service_key(NAME, candidate).await?;
        let (wrapped_kek, sealed) = kem_blob_parts(&blob)?;
        let mut sealed = sealed.to_vec();
        let kek = AeadKey::new(
            Algorithm::Aes256Gcm,
            self.custody.unwrap(wrapped_kek, CONTEXT).await?,
        )?;
        let dk = kek.open_in_place(&[0; 12], NAME.as_bytes(), &mut sealed)?;
        let kem = fleetkey_crypto::mlkem::MlKemSecret::from_bytes(dk);
        zeroize::Zeroize::zeroize(&mut sealed);
        Ok(kem?)
    }

    /// Publishes the service's own record under [`SERVICE_IDENTITY`]: its Noise
    /// static X25519 key, its ML-KEM-768 key (for the hybrid) and the components of its composite signing key, so devices
    /// can learn the listener's key from a signed record. Does nothing when the
    /// stored record already says the same.
    pub async fn publish_service(
        &self,
        x25519: [u8; 32],
        ml_kem_768: Option<Vec<u8>>,
    ) -> Result<()> {
        let keys = with_service_signer(
            DeviceKeys {
                x25519,
                ed25519: [0; 32],
                ml_kem_768,
                ml_dsa_65: None,
            },
            &self.custody.public_key(),
        )?;
        if let Some((_, token)) = self.store.key_record(SERVICE_IDENTITY).await?
            && let Ok(r) = record::peek(&token)
            && r.keys == keys
            && !r.revoked
        {
            return Ok(());
        }
        let w = self
            .prepare(SERVICE_IDENTITY, IdentityKind::Service, keys, false)
            .await?;
        let now = self.clock.now();
        let seq = w.sequence;
        self.store
            .apply(
                Change::PutKeyRecord(w),
                AuditDraft::new(
                    "service",
                    "directory.publish",
                    format!("identity:{SERVICE_IDENTITY}"),
                    json!({ "sequence": seq }),
                ),
                now,
            )
            .await
            .map(|_| ())
    }

    /// The newest record of an identity.
    pub async fn record(&self, identity: &str) -> Result<Vec<u8>> {
        self.store
            .key_record(identity)
            .await?
            .map(|(_, r)| r)
            .ok_or_else(|| Error::IdentityNotFound(identity.to_owned()))
    }

    /// Re-signs records issued more than [`REFRESH_AFTER_SECS`] ago (same keys,
    /// next sequence), at most `limit`; returns how many.
    pub async fn refresh(&self, actor: &str, limit: u32) -> Result<usize> {
        let before = self.clock.now().saturating_sub(REFRESH_AFTER_SECS);
        let mut n = 0;
        for (identity, token) in self.store.key_records_issued_before(before, limit).await? {
            let old = record::peek(&token)?;
            let w = self
                .prepare(&identity, old.kind, old.keys, old.revoked)
                .await?;
            let now = self.clock.now();
            let seq = w.sequence;
            match self
                .store
                .apply(
                    Change::PutKeyRecord(w),
                    AuditDraft::new(
                        actor,
                        "directory.refresh",
                        format!("identity:{identity}"),
                        json!({ "sequence": seq }),
                    ),
                    now,
                )
                .await
            {
                Ok(_) => n += 1,
                // Someone published a newer record meanwhile: nothing to refresh.
                Err(Error::DirectoryConflict(_)) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(n)
    }
}
