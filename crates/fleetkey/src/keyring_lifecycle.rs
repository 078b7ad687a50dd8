//! A keyring's life cycle and aliases, the same for a local data directory and
//! for a server (`fleetkey keys disable|enable|delete|cancel-deletion|describe`,
//! `fleetkey keys alias …`, `fleetkey keys import-recipient|import|export`).

use crate::client::path;
use crate::error::{CliError, CliResult};
use crate::keyrings::{Local, Remote};
use crate::local::{actor, service_error};
use base64::{Engine as _, engine::general_purpose::STANDARD as B64};
use fleetkey_server::api::keyring_lifecycle::{
    AliasList, KeyringDetailsRequest, PutAliasRequest, ScheduleDeletionRequest,
};
use fleetkey_server::api::transfer::{
    ExportRequest, ExportResponse, ImportRecipientResponse, ImportRequest, ImportResponse,
};
use fleetkey_server::keys::{AliasInfo, KeyringInfo};
use reqwest::Method;
use std::collections::BTreeMap;

/// A move of a keyring between life-cycle states.
#[derive(Debug, Clone, Copy)]
pub(crate) enum StateMove {
    /// Refuse every use until enabled.
    Disable,
    /// Use again.
    Enable,
    /// Erase the key material after this many days.
    Delete(u32),
    /// Keep it after all (it comes back disabled).
    CancelDeletion,
}

/// What the CLI does with a keyring's life cycle and aliases.
pub(crate) trait KeyringLifecycle {
    /// Moves keyring `name` between states.
    async fn move_state(&self, name: &str, to: StateMove) -> CliResult<KeyringInfo>;
    /// Replaces the description and/or the tags.
    async fn set_details(
        &self,
        name: &str,
        description: Option<String>,
        tags: Option<BTreeMap<String, String>>,
    ) -> CliResult<KeyringInfo>;
    /// Creates or re-points an alias.
    async fn put_alias(&self, alias: &str, keyring: &str) -> CliResult<AliasInfo>;
    /// Removes an alias.
    async fn delete_alias(&self, alias: &str) -> CliResult<()>;
    /// Aliases, of one keyring when given.
    async fn aliases(&self, keyring: Option<&str>) -> CliResult<Vec<AliasInfo>>;
    /// Today's import recipient.
    async fn import_recipient(&self, name: &str) -> CliResult<ImportRecipientResponse>;
    /// Imports sealed key material; the new version.
    async fn import(&self, name: &str, sealed: &[u8]) -> CliResult<u32>;
    /// Exports a version sealed to `recipient`.
    async fn export(
        &self,
        name: &str,
        recipient: &str,
        version: Option<u32>,
    ) -> CliResult<ExportResponse>;
}

impl KeyringLifecycle for Local<'_> {
    async fn move_state(&self, name: &str, to: StateMove) -> CliResult<KeyringInfo> {
        let (k, a) = (self.0, actor());
        match to {
            StateMove::Disable => k.disable(&a, name).await,
            StateMove::Enable => k.enable(&a, name).await,
            StateMove::Delete(days) => k.schedule_deletion(&a, name, days).await,
            StateMove::CancelDeletion => k.cancel_deletion(&a, name).await,
        }
        .map_err(service_error)
    }

    async fn set_details(
        &self,
        name: &str,
        description: Option<String>,
        tags: Option<BTreeMap<String, String>>,
    ) -> CliResult<KeyringInfo> {
        self.0
            .set_details(&actor(), name, description, tags)
            .await
            .map_err(service_error)
    }

    async fn put_alias(&self, alias: &str, keyring: &str) -> CliResult<AliasInfo> {
        self.0
            .put_alias(&actor(), alias, keyring)
            .await
            .map_err(service_error)
    }

    async fn delete_alias(&self, alias: &str) -> CliResult<()> {
        self.0
            .delete_alias(&actor(), alias)
            .await
            .map_err(service_error)
    }

    async fn aliases(&self, keyring: Option<&str>) -> CliResult<Vec<AliasInfo>> {
        self.0.aliases(keyring).await.map_err(service_error)
    }

    async fn import_recipient(&self, name: &str) -> CliResult<ImportRecipientResponse> {
        self.0.keyring(name).await.map_err(service_error)?;
        let r = self.0.import_recipient().await.map_err(service_error)?;
        Ok(ImportRecipientResponse {
            recipient: fleetkey_crypto::keyfile::recipient_string(&r.recipient),
            key_id: r.key_id,
            expires_at: r.expires_at,
            aad_prefix: fleetkey_server::keys::IMPORT_AAD_PREFIX.into(),
        })
    }

    async fn import(&self, name: &str, sealed: &[u8]) -> CliResult<u32> {
        self.0
            .import(&actor(), name, sealed)
            .await
            .map_err(service_error)
    }

    async fn export(
        &self,
        name: &str,
        recipient: &str,
        version: Option<u32>,
    ) -> CliResult<ExportResponse> {
        let to = fleetkey_crypto::keyfile::parse_recipient(recipient)
            .map_err(|e| CliError::usage(format!("--recipient: {e}")))?;
        let (key_version, sealed) = self
            .0
            .export(&actor(), name, version, &to)
            .await
            .map_err(service_error)?;
        Ok(ExportResponse {
            ciphertext: B64.encode(sealed),
            key_version,
        })
    }
}

/// The alias's path segment: without its `alias/` prefix.
fn alias_segment(alias: &str) -> &str {
    alias
        .strip_prefix(fleetkey_server::keys::ALIAS_PREFIX)
        .unwrap_or(alias)
}

impl KeyringLifecycle for Remote<'_> {
    async fn move_state(&self, name: &str, to: StateMove) -> CliResult<KeyringInfo> {
        let (verb, body) = match to {
            StateMove::Disable => ("disable", None),
            StateMove::Enable => ("enable", None),
            StateMove::Delete(days) => (
                "schedule-deletion",
                Some(serde_json::json!(ScheduleDeletionRequest { days })),
            ),
            StateMove::CancelDeletion => ("cancel-deletion", None),
        };
        let p = path(&["v1", "keyrings", name, verb]);
        self.0.call(Method::POST, &p, body).await
    }

    async fn set_details(
        &self,
        name: &str,
        description: Option<String>,
        tags: Option<BTreeMap<String, String>>,
    ) -> CliResult<KeyringInfo> {
        let body = KeyringDetailsRequest { description, tags };
        let p = path(&["v1", "keyrings", name]);
        self.0.send(Method::PATCH, &p, &body).await
    }

    async fn put_alias(&self, alias: &str, keyring: &str) -> CliResult<AliasInfo> {
        let body = PutAliasRequest {
            keyring: keyring.to_owned(),
        };
        let p = path(&["v1", "aliases", alias_segment(alias)]);
        self.0.send(Method::PUT, &p, &body).await
    }

    async fn delete_alias(&self, alias: &str) -> CliResult<()> {
        let p = path(&["v1", "aliases", alias_segment(alias)]);
        let _: serde_json::Value = self.0.call(Method::DELETE, &p, None).await?;
        Ok(())
    }

    async fn aliases(&self, keyring: Option<&str>) -> CliResult<Vec<AliasInfo>> {
        let mut p = "/v1/aliases".to_owned();
        if let Some(k) = keyring {
            // One percent-encoded segment, without its leading slash.
            p = format!("{p}?keyring={}", &path(&[k])[1..]);
        }
        let l: AliasList = self.0.call(Method::GET, &p, None).await?;
        Ok(l.aliases)
    }

    async fn import_recipient(&self, name: &str) -> CliResult<ImportRecipientResponse> {
        let p = path(&["v1", "keyrings", name, "import-recipient"]);
        self.0.call(Method::GET, &p, None).await
    }

    async fn import(&self, name: &str, sealed: &[u8]) -> CliResult<u32> {
        let p = path(&["v1", "keyrings", name, "import"]);
        let body = ImportRequest {
            ciphertext: B64.encode(sealed),
        };
        let r: ImportResponse = self.0.send(Method::POST, &p, &body).await?;
        Ok(r.key_version)
    }

    async fn export(
        &self,
        name: &str,
        recipient: &str,
        version: Option<u32>,
    ) -> CliResult<ExportResponse> {
        let p = path(&["v1", "keyrings", name, "export"]);
        let body = ExportRequest {
            recipient: recipient.to_owned(),
            key_version: version,
        };
        self.0.send(Method::POST, &p, &body).await
    }
}
