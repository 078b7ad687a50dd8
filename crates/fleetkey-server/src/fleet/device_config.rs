//! Configuration schemas and device configs on the fleet service: setting a
//! schema version (dry-run over every stored config first), reading a device's
//! config (migrated on read), changing it (validated, revisioned, audited with the
//! diff, pushed to the device as an `update_config` command), reset to defaults,
//! and batch migration.

use super::config::{self, ConfigChange, MigrationOp, SchemaVersion};
use super::{Registry, commands::new_command, invalid};
use crate::audit::AuditDraft;
use crate::error::{Error, Result};
use crate::store::{Change, CommandKind, DeviceState, StoredConfig};
use serde_json::{Value, json};
use std::sync::Arc;

/// A fleet's schema versions, oldest first (`[i].version == i + 1`).
pub type Schemas = Arc<Vec<Arc<SchemaVersion>>>;

/// Most changes recorded with values in one audit entry; beyond this (or 8 KiB)
/// only the changed paths are recorded.
const MAX_AUDITED_CHANGES: usize = 64;

/// A fleet's current configuration schema.
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
pub struct SchemaInfo {
    /// Fleet.
    pub fleet: String,
    /// Newest version.
    pub version: u32,
    /// The JSON Schema as given.
    #[schema(value_type = Object)]
    pub schema: Value,
    /// The configuration made of every default.
    #[schema(value_type = Object)]
    pub defaults: Value,
    /// The migration from the previous version.
    pub migration: Vec<MigrationOp>,
}

/// A device's configuration as the device should run it.
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
pub struct DeviceConfig {
    /// Device id.
    pub device_id: String,
    /// Schema version it satisfies (0: the fleet has no schema).
    pub schema_version: u32,
    /// Change counter (0: never changed, the defaults).
    pub revision: i64,
    /// The configuration.
    #[schema(value_type = Object)]
    pub config: Value,
    /// Set when the stored config is of an older schema version and was migrated
    /// for this read (the stored copy changes on the next write or batch migration).
    pub migrated_from: Option<u32>,
}

/// How to change a config.
#[derive(Debug, Clone)]
pub enum ConfigUpdate {
    /// The whole configuration.
    Replace(Value),
    /// An RFC 7396 merge patch onto the current configuration.
    Merge(Value),
}

/// The outcome of a batch migration.
#[derive(Debug, Clone, Default, serde::Serialize, utoipa::ToSchema)]
pub struct MigrationReport {
    /// Configs moved to the newest schema version.
    pub migrated: u64,
    /// Configs that could not be migrated (kept as they were), with why.
    pub failed: Vec<MigrationFailure>,
}

/// One config a migration refused.
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
pub struct MigrationFailure {
    /// Device id.
    pub device_id: String,
    /// Why.
    pub error: String,
}

fn parse_json(what: &'static str, text: &str) -> Result<Value> {
    serde_json::from_str(text)
        .map_err(|e| Error::Corrupt(format!("stored {what} is not JSON: {e}")))
}

/// The audit form of a diff: values while small, else only the paths.
fn audited(changes: &[ConfigChange]) -> Value {
    let full = serde_json::to_value(changes).unwrap_or(Value::Null);
    if changes.len() <= MAX_AUDITED_CHANGES && full.to_string().len() <= 8 * 1024 {
        return full;
    }
    json!({
        "paths": changes.iter().take(256).map(|c| c.path.clone()).collect::<Vec<_>>(),
        "count": changes.len(),
        "values_omitted": true,
    })
}

impl Registry {
    /// A fleet's schema versions (cached; compiled once).
    pub(super) async fn schemas(&self, fleet: &str) -> Result<Schemas> {
        if let Some(s) = self.core.schemas.read().get(fleet).cloned() {
            return Ok(s);
        }
        self.core.issuer(fleet).await?;
        let mut versions = Vec::new();
        for r in self.core.store.config_schemas(fleet).await? {
            let migration: Vec<MigrationOp> = serde_json::from_str(&r.migration)
                .map_err(|e| Error::Corrupt(format!("stored migration is not valid: {e}")))?;
            versions.push(Arc::new(SchemaVersion::compile(
                r.version,
                parse_json("schema", &r.schema)?,
                migration,
            )?));
        }
        let s: Schemas = Arc::new(versions);
        self.core
            .schemas
            .write()
            .insert(fleet.to_owned(), s.clone());
        Ok(s)
    }

    /// Sets the next schema version of a fleet. Every stored device config must
    /// migrate to it (dry run first); otherwise nothing changes and the error names
    /// the first device and path that would fail.
    pub async fn set_schema(
        &self,
        actor: &str,
        fleet: &str,
        schema: Value,
        migration: Vec<MigrationOp>,
    ) -> Result<SchemaInfo> {
        let current = self.schemas(fleet).await?;
        let version = u32::try_from(current.len() + 1)
            .map_err(|_| Error::InvalidSchema("too many schema versions".into()))?;
        if version == 1 && !migration.is_empty() {
            return Err(Error::InvalidSchema(
                "the first schema version has nothing to migrate from".into(),
            ));
        }
        let compiled = Arc::new(SchemaVersion::compile(version, schema, migration)?);
        let mut chain: Vec<Arc<SchemaVersion>> = current.iter().cloned().collect();
        chain.push(compiled.clone());
        let mut after = String::new();
        loop {
            let page = self.core.store.device_configs(fleet, &after, 500).await?;
            for (id, stored) in &page {
                let value = parse_json("config", &stored.config)?;
                if let Err(e) = config::migrate(&chain, stored.schema_version, &value) {
                    return Err(Error::InvalidSchema(format!(
                        "device {id}'s config would not migrate: {e}; declare a migration that handles it"
                    )));
                }
            }
            match page.last() {
                Some((id, _)) if page.len() == 500 => after = id.clone(),
                _ => break,
            }
        }
        let now = self.core.clock.now();
        self.core.store
            .apply(
                Change::SetConfigSchema {
                    fleet: fleet.to_owned(),
                    version,
                    schema: compiled.schema.to_string(),
                    migration: serde_json::to_string(&compiled.migration)
                        .map_err(|e| invalid("migration", e.to_string()))?,
                    at: now,
                },
                AuditDraft::new(
                    actor,
                    "fleet.config_schema",
                    format!("fleet:{fleet}"),
                    json!({ "version": version, "migration": compiled.migration, "defaults": compiled.defaults }),
                ),
                now,
            )
            .await?;
        self.core.changed(fleet);
        Ok(SchemaInfo {
            fleet: fleet.to_owned(),
            version,
            schema: compiled.schema.clone(),
            defaults: compiled.defaults.clone(),
            migration: compiled.migration.clone(),
        })
    }

    /// A fleet's newest schema.
    pub async fn schema(&self, fleet: &str) -> Result<SchemaInfo> {
        let s = self.schemas(fleet).await?;
        let newest = s
            .last()
            .ok_or_else(|| Error::NoConfigSchema(fleet.to_owned()))?;
        Ok(SchemaInfo {
            fleet: fleet.to_owned(),
            version: newest.version,
            schema: newest.schema.clone(),
            defaults: newest.defaults.clone(),
            migration: newest.migration.clone(),
        })
    }

    /// A device's configuration, migrated to the newest schema version for this
    /// read if it is older. A config that cannot be migrated is an error (it is
    /// kept as stored).
    pub async fn config(&self, device_id: &str) -> Result<DeviceConfig> {
        let d = self.core.device(device_id).await?;
        let schemas = self.schemas(&d.fleet).await?;
        self.config_with(device_id, &schemas).await
    }

    /// [`Self::config`] for a device whose fleet's schemas are already at hand.
    async fn config_with(&self, device_id: &str, schemas: &Schemas) -> Result<DeviceConfig> {
        let newest = schemas.last().map_or(0, |s| s.version);
        let stored = self.core.store.device_config(device_id).await?;
        let (revision, from, value) = match &stored {
            Some(s) => (
                s.revision,
                s.schema_version,
                parse_json("config", &s.config)?,
            ),
            None => (0, 0, json!({})),
        };
        let config = config::migrate(schemas, from, &value)?;
        Ok(DeviceConfig {
            device_id: device_id.to_owned(),
            schema_version: newest,
            revision,
            config,
            migrated_from: (stored.is_some() && from < newest).then_some(from),
        })
    }

    /// Changes a device's configuration: validated against the newest schema
    /// (refused with the failing path), stored as the next revision if the caller's
    /// `expected_revision` (when given) still holds, audited with the diff, and
    /// queued for the device as an `update_config` command. No change, no write.
    pub async fn set_config(
        &self,
        actor: &str,
        device_id: &str,
        update: ConfigUpdate,
        expected_revision: Option<i64>,
    ) -> Result<DeviceConfig> {
        self.write_config(actor, "device.config", device_id, update, expected_revision)
            .await
    }

    /// Resets a device's configuration to the schema defaults.
    pub async fn reset_config(&self, actor: &str, device_id: &str) -> Result<DeviceConfig> {
        let d = self.core.device(device_id).await?;
        let schemas = self.schemas(&d.fleet).await?;
        let newest = schemas
            .last()
            .ok_or_else(|| Error::NoConfigSchema(d.fleet.clone()))?;
        self.write_config(
            actor,
            "device.config_reset",
            device_id,
            ConfigUpdate::Replace(newest.defaults.clone()),
            None,
        )
        .await
    }

    async fn write_config(
        &self,
        actor: &str,
        action: &str,
        device_id: &str,
        update: ConfigUpdate,
        expected_revision: Option<i64>,
    ) -> Result<DeviceConfig> {
        let d = self.core.device(device_id).await?;
        if matches!(
            d.state,
            DeviceState::Decommissioning | DeviceState::Decommissioned
        ) {
            return Err(Error::IllegalTransition {
                from: d.state.as_str(),
                to: "reconfigured",
            });
        }
        let schemas = self.schemas(&d.fleet).await?;
        let newest = schemas
            .last()
            .ok_or_else(|| Error::NoConfigSchema(d.fleet.clone()))?;
        let current = self.config_with(device_id, &schemas).await?;
        if let Some(expected) = expected_revision
            && expected != current.revision
        {
            return Err(Error::ConfigRevision {
                expected,
                current: current.revision,
            });
        }
        let new = match update {
            ConfigUpdate::Replace(v) => v,
            ConfigUpdate::Merge(patch) => {
                let mut c = current.config.clone();
                config::merge_patch(&mut c, &patch);
                c
            }
        };
        newest.validate(&new)?;
        let changes = config::diff(&current.config, &new);
        if changes.is_empty() && current.migrated_from.is_none() && current.revision > 0 {
            return Ok(current);
        }
        // A constrained device receives its config in one downlink frame.
        let constrained = super::constrained::Profile::of(&d.profile).is_some();
        let size = command_payload(current.revision + 1, current.schema_version, &new)
            .to_string()
            .len();
        if constrained && size > fleetkey_device::control::MAX_BODY {
            return Err(invalid(
                "config",
                format!(
                    "{size} bytes as a command; a constrained device's must fit one frame ({} bytes)",
                    fleetkey_device::control::MAX_BODY
                ),
            ));
        }
        let c = self
            .store_config(actor, action, &d.fleet, device_id, &current, new, &changes)
            .await?;
        if constrained {
            // Every instance's frame path re-reads its commands before its next frame.
            self.core.device_changed(device_id);
        }
        Ok(c)
    }

    /// Writes the next revision of a config with its audit entry and command.
    #[allow(clippy::too_many_arguments)]
    async fn store_config(
        &self,
        actor: &str,
        action: &str,
        fleet: &str,
        device_id: &str,
        current: &DeviceConfig,
        new: Value,
        changes: &[ConfigChange],
    ) -> Result<DeviceConfig> {
        let issuer = self.core.issuer(fleet).await?;
        let now = self.core.clock.now();
        let revision = current.revision + 1;
        let payload = command_payload(revision, current.schema_version, &new);
        let command = new_command(
            &issuer.1,
            device_id,
            CommandKind::UpdateConfig,
            &payload,
            now,
        )?;
        self.core
            .store
            .apply(
                Change::PutDeviceConfig {
                    device_id: device_id.to_owned(),
                    config: StoredConfig {
                        schema_version: current.schema_version,
                        revision,
                        config: new.to_string(),
                        updated_at: now,
                    },
                    expected_revision: current.revision,
                    command: Some(command),
                },
                AuditDraft::new(
                    actor,
                    action,
                    format!("device:{device_id}"),
                    json!({ "revision": revision, "schema_version": current.schema_version,
                            "migrated_from": current.migrated_from, "changes": audited(changes) }),
                ),
                now,
            )
            .await?;
        Ok(DeviceConfig {
            device_id: device_id.to_owned(),
            schema_version: current.schema_version,
            revision,
            config: new,
            migrated_from: None,
        })
    }

    /// Migrates every stored config of a fleet that is below the newest schema
    /// version, each in its own transaction with its audit entry; configs that
    /// cannot be migrated are reported and kept.
    pub async fn migrate_configs(&self, actor: &str, fleet: &str) -> Result<MigrationReport> {
        let schemas = self.schemas(fleet).await?;
        let newest = schemas
            .last()
            .ok_or_else(|| Error::NoConfigSchema(fleet.to_owned()))?
            .version;
        let mut report = MigrationReport::default();
        let mut after = String::new();
        loop {
            let page = self.core.store.device_configs(fleet, &after, 500).await?;
            for (id, stored) in &page {
                if stored.schema_version >= newest {
                    continue;
                }
                let r = async {
                    let current = self.config_with(id, &schemas).await?;
                    let old = parse_json("config", &stored.config)?;
                    let changes = config::diff(&old, &current.config);
                    let new = current.config.clone();
                    self.store_config(
                        actor,
                        "device.config_migrate",
                        fleet,
                        id,
                        &current,
                        new,
                        &changes,
                    )
                    .await
                }
                .await;
                match r {
                    Ok(_) => report.migrated += 1,
                    Err(e) => report.failed.push(MigrationFailure {
                        device_id: id.clone(),
                        error: e.to_string(),
                    }),
                }
            }
            match page.last() {
                Some((id, _)) if page.len() == 500 => after = id.clone(),
                _ => break,
            }
        }
        Ok(report)
    }
}

/// The parameters of an `update_config` command (signed; what a constrained device
/// receives as the command's body).
fn command_payload(revision: i64, schema_version: u32, config: &Value) -> Value {
    json!({ "revision": revision, "schema_version": schema_version, "config": config })
}
