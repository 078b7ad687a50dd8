//! HSM-resident keyrings (docs/custody.md, "Resident keyrings"): each version's
//! AES-256-GCM key is generated in custody's token and never leaves it. A
//! version record's `wrapped_key` holds custody's reference to the key; every
//! seal and unseal is one token call with the keyring's own nonce scheme
//! (`instance id ‖ counter`, reserved in blocks like any keyring's), and the
//! envelopes are ordinary fk1 mode-1 envelopes that only the token can open.
//!
//! Only `aes-256-gcm` keyrings can be resident, never exportable, convergent or
//! imported; they fail closed: without the token nothing seals or opens.

use super::Keyring;
use crate::custody::{Custody, Resident};
use crate::error::{Error, Result};
use crate::key_type::KeyType;
use fleetkey_crypto::aead::{Algorithm, NONCE_LEN};
use fleetkey_crypto::envelope::{Header, KeyId, single};
use std::sync::Arc;

/// How a primary version seals: with its key in memory, or through custody.
#[derive(Clone)]
pub(super) enum VersionSealer {
    /// The version's key, unwrapped into process memory.
    Memory(single::Sealer),
    /// The version's key in custody's token, named by `reference`.
    Resident {
        /// Custody's reference to the key (the version's `wrapped_key`).
        reference: Arc<[u8]>,
        /// The keyring's key id.
        key_id: KeyId,
        /// The version.
        version: u32,
    },
}

impl VersionSealer {
    /// The in-memory sealer (convergent keyrings, which are never resident).
    pub(super) fn memory(&self) -> Result<&single::Sealer> {
        match self {
            Self::Memory(s) => Ok(s),
            Self::Resident { .. } => Err(resident_refusal("a derived-nonce seal")),
        }
    }
}

/// Why an operation that needs a version's key in memory is refused.
pub(super) fn resident_refusal(what: &str) -> Error {
    Error::Invalid {
        what: "keyring",
        why: format!(
            "{what} needs the key in memory; a resident keyring's keys never leave custody's token"
        ),
    }
}

/// Custody's resident keys, or why this custody has none.
pub(super) fn resident_keys(custody: &dyn Custody) -> Result<&dyn Resident> {
    custody.resident().ok_or_else(|| {
        Error::CustodyUnsupported(format!(
            "{} custody cannot hold resident keys; resident keyrings need FLEETKEY_CUSTODY=pkcs11",
            custody.backend()
        ))
    })
}

/// Checks the options of a new keyring that is to be resident.
pub(super) fn check_resident_options(
    algorithm: KeyType,
    exportable: bool,
    convergent: bool,
    custody: &dyn Custody,
) -> Result<()> {
    let refuse = |why: &str| {
        Err(Error::Invalid {
            what: "resident",
            why: why.into(),
        })
    };
    if algorithm != KeyType::Aead(Algorithm::Aes256Gcm) {
        return refuse("only aes-256-gcm keyrings can be resident");
    }
    if exportable {
        return refuse("a resident keyring cannot be exportable: its keys never leave the token");
    }
    if convergent {
        return refuse("a resident keyring cannot be convergent");
    }
    resident_keys(custody).map(|_| ())
}

impl Keyring {
    /// The sealer of `version`: its key from memory (unwrapped by custody), or
    /// a reference to its key in custody for a resident keyring.
    pub(super) async fn version_sealer(&self, version: u32) -> Result<VersionSealer> {
        let meta = self.meta.load_full();
        if !meta.record.resident {
            let key = self.key(version).await?;
            return Ok(VersionSealer::Memory(single::Sealer::new(
                key,
                &self.key_id,
                version,
            )));
        }
        let rec = self.version_record(&meta, version)?;
        Ok(VersionSealer::Resident {
            reference: Arc::from(rec.wrapped_key.as_slice()),
            key_id: self.key_id,
            version,
        })
    }

    /// Seals in custody's token with the version key named by `reference`
    /// under `nonce` (a use already taken): an fk1 mode-1 envelope.
    pub(super) async fn seal_resident(
        &self,
        reference: &[u8],
        key_id: &KeyId,
        version: u32,
        nonce: [u8; NONCE_LEN],
        plaintext: &[u8],
        aad: &[u8],
    ) -> Result<Vec<u8>> {
        let mut out = single::external_header(Algorithm::Aes256Gcm, key_id, version, nonce);
        let full_aad = [&out[..], aad].concat();
        let ct = resident_keys(self.shared.custody.as_ref())?
            .seal(reference, nonce, &full_aad, plaintext)
            .await?;
        out.extend_from_slice(&ct);
        Ok(out)
    }

    /// Opens a resident keyring's envelope (header parsed and checked) in the token.
    pub(super) async fn open_resident(
        &self,
        header: &Header,
        envelope: &[u8],
        header_len: usize,
        aad: &[u8],
    ) -> Result<Vec<u8>> {
        if header.algorithm != Algorithm::Aes256Gcm {
            return Err(Error::Envelope(fleetkey_crypto::Error::Open));
        }
        let (nonce, head, ct) = single::external_parts(header, envelope, header_len)?;
        let reference = {
            let meta = self.meta.load();
            self.version_record(&meta, header.key_version)?
                .wrapped_key
                .clone()
        };
        let full_aad = [head, aad].concat();
        resident_keys(self.shared.custody.as_ref())?
            .open(&reference, nonce, &full_aad, ct)
            .await
    }

    /// Destroys in custody the keys of this resident keyring's `versions` whose
    /// records still reference one (before the store forgets the references:
    /// destroying twice is harmless, a key left behind is not).
    pub(super) async fn destroy_resident(&self, versions: impl Fn(u32) -> bool) -> Result<()> {
        let meta = self.meta.load_full();
        if !meta.record.resident {
            return Ok(());
        }
        let keys = resident_keys(self.shared.custody.as_ref())?;
        for (v, rec) in &meta.versions {
            if versions(*v) && !rec.wrapped_key.is_empty() {
                keys.destroy(&rec.wrapped_key).await?;
            }
        }
        Ok(())
    }
}

/// Destroys a key generated for a version that was never committed (a lost
/// rotation race, a store error): best effort, logged when it fails, since the
/// store names no such key and nothing can use it.
pub(super) async fn discard_minted(custody: &dyn Custody, reference: Option<Vec<u8>>) {
    let Some(reference) = reference else { return };
    let Some(keys) = custody.resident() else {
        return;
    };
    if let Err(e) = keys.destroy(&reference).await {
        tracing::warn!(error = %e, "a resident key made for an uncommitted version stays in the token");
    }
}
