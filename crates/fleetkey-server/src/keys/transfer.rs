//! Key material in and out (docs/operations.md, "Import and export"), always
//! sealed to an X-Wing recipient (fk1 recipient mode), never in plaintext.
//!
//! **Import (BYOK)**: the service hands out an import recipient, a fresh X-Wing
//! identity per UTC day (a service key `import-xwing-DAY`, its seed wrapped by
//! custody), accepted on its day and the next. The owner seals the 32-byte key
//! material to it, bound to the keyring (`aad` = [`IMPORT_AAD_PREFIX`] ‖ keyring
//! name), and the service rotates the keyring to a new version holding it
//! (origin `imported`).
//!
//! **Export**: a keyring created `exportable` (never turned on later) seals one
//! version's 32-byte key material to a caller's recipient, bound to the keyring
//! and version (`aad` = [`EXPORT_AAD_PREFIX`] ‖ name ‖ `/v` ‖ version). Audited.

use super::KeyService;
use crate::audit::AuditDraft;
use crate::clock::UnixTime;
use crate::error::{Error, Result};
use crate::store::Change;
use fleetkey_crypto::envelope::recipient;
use fleetkey_crypto::hpke::{XWingIdentity, XWingRecipient};
use serde_json::json;

/// What import envelopes are bound to, before the keyring name.
pub const IMPORT_AAD_PREFIX: &str = "fleetkey import v1:";
/// What export envelopes are bound to, before `NAME/vVERSION`.
pub const EXPORT_AAD_PREFIX: &str = "fleetkey export v1:";
/// How long an import recipient is handed out (one UTC day); it is accepted until
/// the end of the following day.
pub const IMPORT_RECIPIENT_LIFETIME_SECS: i64 = 86_400;

/// The recipient to seal imported key material to.
#[derive(Debug, Clone)]
pub struct ImportRecipient {
    /// The X-Wing public key.
    pub recipient: XWingRecipient,
    /// The key id envelopes sealed to it carry (`xwing-…`).
    pub key_id: String,
    /// After this, envelopes sealed to it are refused.
    pub expires_at: UnixTime,
}

fn import_key_name(day: i64) -> String {
    format!("import-xwing-{day}")
}

/// The associated data an import envelope for keyring `name` is sealed with.
pub fn import_aad(name: &str) -> Vec<u8> {
    format!("{IMPORT_AAD_PREFIX}{name}").into_bytes()
}

/// The associated data an export of `name` version `version` is sealed with.
pub fn export_aad(name: &str, version: u32) -> Vec<u8> {
    format!("{EXPORT_AAD_PREFIX}{name}/v{version}").into_bytes()
}

impl KeyService {
    fn today(&self) -> i64 {
        self.shared
            .clock
            .now()
            .div_euclid(IMPORT_RECIPIENT_LIFETIME_SECS)
    }

    /// Today's import recipient (made on first use, the same on every instance).
    pub async fn import_recipient(&self) -> Result<ImportRecipient> {
        let day = self.today();
        let id = self.directory.xwing_identity(&import_key_name(day)).await?;
        let recipient = id.recipient();
        Ok(ImportRecipient {
            key_id: recipient::recipient_key_id(&recipient).to_string(),
            recipient,
            expires_at: (day + 2) * IMPORT_RECIPIENT_LIFETIME_SECS,
        })
    }

    /// The import identity an envelope with key id `key_id` was sealed to: today's
    /// or yesterday's, if it exists.
    async fn import_identity(&self, key_id: &str) -> Result<Option<XWingIdentity>> {
        let day = self.today();
        for d in [day, day - 1] {
            if let Some(id) = self
                .directory
                .existing_xwing_identity(&import_key_name(d))
                .await?
                && recipient::recipient_key_id(&id.recipient()).as_str() == key_id
            {
                return Ok(Some(id));
            }
        }
        Ok(None)
    }

    /// Imports key material sealed to an import recipient as a new primary
    /// version of keyring `name` (origin `imported`); returns the version.
    pub async fn import(&self, actor: &str, name: &str, sealed: &[u8]) -> Result<u32> {
        let ring = self.keyring(name).await?;
        let (header, _) = fleetkey_crypto::envelope::Header::parse(sealed)
            .map_err(|_| Error::ImportRefused("not an fk1 envelope"))?;
        let identity = self.import_identity(header.key_id.as_str()).await?.ok_or(
            Error::ImportRefused(
                "sealed to an import recipient that is not this service's or has expired; fetch a new one",
            ),
        )?;
        let material = recipient::open_secret(&identity, sealed, &import_aad(&ring.name))
            .map_err(|_| {
                Error::ImportRefused("the envelope does not open: it must hold exactly 32 bytes, sealed with aad \"fleetkey import v1:<keyring name>\"")
            })?;
        let _g = ring.slow.lock().await;
        ring.reload().await?;
        // Enabled, and of any type: every version is one 32-byte secret.
        ring.require(ring.key_type().purpose())?;
        let (version, _) = ring
            .rotate_to(actor, "import", false, Some(material))
            .await?;
        Ok(version)
    }

    /// Seals version `version` (default: the primary) of an exportable keyring to
    /// `to`; returns the version and the fk1 recipient envelope.
    pub async fn export(
        &self,
        actor: &str,
        name: &str,
        version: Option<u32>,
        to: &XWingRecipient,
    ) -> Result<(u32, Vec<u8>)> {
        let ring = self.keyring(name).await?;
        let meta = ring.meta.load_full();
        if !meta.record.exportable {
            return Err(Error::NotExportable(ring.name.clone()));
        }
        ring.require(meta.record.algorithm.purpose())?;
        let v = version.unwrap_or(meta.record.primary_version);
        ring.check_version(v)?;
        let (_, secret) = ring.secret(v).await?;
        let sealed =
            recipient::seal_to_vec(to, secret.expose_secret(), &export_aad(&ring.name, v))?;
        let now = self.shared.clock.now();
        self.shared
            .store
            .apply(
                Change::AuditOnly,
                AuditDraft::new(
                    actor,
                    "keyring.export",
                    format!("keyring:{}", ring.name),
                    json!({
                        "version": v,
                        "recipient": recipient::recipient_key_id(to).to_string(),
                    }),
                ),
                now,
            )
            .await?;
        Ok((v, sealed))
    }
}
