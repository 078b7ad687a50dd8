//! Device configuration: a fleet's JSON Schema, validated device configs, declared
//! migrations between schema versions, and diffs for the audit log.
//!
//! A fleet's schema (JSON Schema, validated with the `jsonschema` crate) gives a
//! `default` for every field, so a complete configuration always exists: the
//! defaults, materialised at the factory and on reset. Stored configs are checked
//! against a **strict** form of the schema: every declared property is required and,
//! unless the schema says otherwise, unknown properties are refused, so an
//! incomplete config or a typo in a key is refused with the failing path.
//!
//! Each new schema version declares how to migrate a config from the previous
//! version: [`MigrationOp`]s applied in order, then any field the new version added
//! takes its default. The result must validate; a config that would not is never
//! dropped or rewritten — the migration is refused and the stored config stays as it
//! was. Setting a new schema version dry-runs the migration over every stored config
//! of the fleet first. Specified in `docs/operations.md#device-configuration`.
//!
//! This module is pure (no store, no clock); [`super::FleetService`] drives it.

use crate::error::{Error, Result};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// Largest schema document, bytes of JSON.
pub const MAX_SCHEMA_BYTES: usize = 64 * 1024;
/// Largest device configuration, bytes of JSON.
pub const MAX_CONFIG_BYTES: usize = 16 * 1024;
/// Deepest nesting of objects in a schema or config.
pub const MAX_DEPTH: usize = 16;
/// Most operations in one declared migration.
pub const MAX_MIGRATION_OPS: usize = 256;

/// One step of a declared migration. Paths are JSON Pointers (RFC 6901).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(tag = "op", rename_all = "snake_case", deny_unknown_fields)]
pub enum MigrationOp {
    /// Move a value to a new path (a renamed field). Nothing happens if `from` is absent.
    Rename {
        /// Old path.
        from: String,
        /// New path; parents must exist or be creatable as objects.
        to: String,
    },
    /// Remove a field the new version no longer has (a declared, audited removal).
    Remove {
        /// Path to remove.
        path: String,
    },
    /// Set a value (for example a changed unit or a new mandatory choice).
    Set {
        /// Path to set.
        path: String,
        /// The value.
        value: Value,
    },
}

/// One compiled schema version.
pub struct SchemaVersion {
    /// Version number, from 1.
    pub version: u32,
    /// The schema as given.
    pub schema: Value,
    /// How configs of the previous version become configs of this one.
    pub migration: Vec<MigrationOp>,
    /// The configuration made of every field's default.
    pub defaults: Value,
    validator: jsonschema::Validator,
}

impl std::fmt::Debug for SchemaVersion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SchemaVersion")
            .field("version", &self.version)
            .finish_non_exhaustive()
    }
}

fn bad_schema(why: impl Into<String>) -> Error {
    Error::InvalidSchema(why.into())
}

impl SchemaVersion {
    /// Checks and compiles a schema: an object schema whose every property has a
    /// default (nested object properties may instead have defaults for all their
    /// own properties), no external `$ref`s, bounded size and depth, and defaults
    /// that satisfy the schema.
    pub fn compile(version: u32, schema: Value, migration: Vec<MigrationOp>) -> Result<Self> {
        let size = serde_json::to_vec(&schema).map(|v| v.len()).unwrap_or(0);
        if size > MAX_SCHEMA_BYTES {
            return Err(bad_schema(format!(
                "larger than {} KiB",
                MAX_SCHEMA_BYTES / 1024
            )));
        }
        if migration.len() > MAX_MIGRATION_OPS {
            return Err(bad_schema(format!(
                "more than {MAX_MIGRATION_OPS} migration steps"
            )));
        }
        for op in &migration {
            for p in op.paths() {
                pointer_tokens(p)
                    .map_err(|why| bad_schema(format!("migration path {p:?}: {why}")))?;
            }
        }
        check_refs(&schema, 0)?;
        let defaults = defaults_of(&schema, "", 0)?;
        let mut strict = schema.clone();
        make_strict(&mut strict, 0);
        let validator = jsonschema::validator_for(&strict)
            .map_err(|e| bad_schema(format!("not a valid JSON Schema: {}", e.masked())))?;
        let compiled = Self {
            version,
            schema,
            migration,
            defaults,
            validator,
        };
        compiled.validate(&compiled.defaults).map_err(|e| match e {
            Error::InvalidConfig { path, why } => bad_schema(format!(
                "the default at {path} does not satisfy the schema: {why}"
            )),
            other => other,
        })?;
        Ok(compiled)
    }

    /// Checks a complete configuration; the error names the first failing path.
    pub fn validate(&self, config: &Value) -> Result<()> {
        let size = serde_json::to_vec(config)
            .map(|v| v.len())
            .unwrap_or(usize::MAX);
        if size > MAX_CONFIG_BYTES {
            return Err(Error::InvalidConfig {
                path: "/".into(),
                why: format!("larger than {} KiB", MAX_CONFIG_BYTES / 1024),
            });
        }
        if depth(config) > MAX_DEPTH {
            return Err(Error::InvalidConfig {
                path: "/".into(),
                why: format!("nested deeper than {MAX_DEPTH} levels"),
            });
        }
        match self.validator.iter_errors(config).next() {
            None => Ok(()),
            Some(e) => {
                let path = e.instance_path().as_str();
                Err(Error::InvalidConfig {
                    path: if path.is_empty() {
                        "/".into()
                    } else {
                        path.to_owned()
                    },
                    // Masked: the message never repeats the submitted value.
                    why: e.masked().to_string(),
                })
            }
        }
    }

    /// Applies this version's declared migration to a config of the previous
    /// version, fills fields this version added with their defaults, and validates.
    pub fn migrate_from_previous(&self, config: &Value) -> Result<Value> {
        let mut out = config.clone();
        for op in &self.migration {
            op.apply(&mut out).map_err(|why| Error::InvalidConfig {
                path: op.paths()[0].to_owned(),
                why,
            })?;
        }
        fill_defaults(&mut out, &self.defaults);
        self.validate(&out)?;
        Ok(out)
    }
}

/// Migrates `config` stored at `from` to the newest of `versions` (ordered by
/// version, `versions[i].version == i + 1`). A config at version 0 (none stored)
/// becomes the newest defaults.
pub fn migrate(
    versions: &[std::sync::Arc<SchemaVersion>],
    from: u32,
    config: &Value,
) -> Result<Value> {
    let Some(newest) = versions.last() else {
        return Ok(config.clone());
    };
    if from == 0 {
        return Ok(newest.defaults.clone());
    }
    let mut current = config.clone();
    for v in versions.iter().filter(|v| v.version > from) {
        current = v.migrate_from_previous(&current).map_err(|e| match e {
            Error::InvalidConfig { path, why } => Error::ConfigMigration {
                to: v.version,
                path,
                why,
            },
            other => other,
        })?;
    }
    Ok(current)
}

impl MigrationOp {
    fn paths(&self) -> Vec<&str> {
        match self {
            MigrationOp::Rename { from, to } => vec![from, to],
            MigrationOp::Remove { path } | MigrationOp::Set { path, .. } => vec![path],
        }
    }

    fn apply(&self, config: &mut Value) -> std::result::Result<(), String> {
        match self {
            MigrationOp::Rename { from, to } => {
                if let Some(v) = remove_at(config, from)? {
                    set_at(config, to, v)?;
                }
                Ok(())
            }
            MigrationOp::Remove { path } => remove_at(config, path).map(|_| ()),
            MigrationOp::Set { path, value } => set_at(config, path, value.clone()),
        }
    }
}

/// A JSON Pointer's reference tokens (RFC 6901 §3–4); the root pointer is refused.
fn pointer_tokens(p: &str) -> std::result::Result<Vec<String>, String> {
    if p.is_empty() || !p.starts_with('/') {
        return Err("a JSON Pointer starting with '/'".into());
    }
    if p.len() > 512 {
        return Err("longer than 512 bytes".into());
    }
    p[1..]
        .split('/')
        .map(|t| {
            let mut out = String::with_capacity(t.len());
            let mut chars = t.chars();
            while let Some(c) = chars.next() {
                if c == '~' {
                    match chars.next() {
                        Some('0') => out.push('~'),
                        Some('1') => out.push('/'),
                        _ => return Err("'~' must be followed by 0 or 1".to_string()),
                    }
                } else {
                    out.push(c);
                }
            }
            Ok(out)
        })
        .collect()
}

fn remove_at(config: &mut Value, path: &str) -> std::result::Result<Option<Value>, String> {
    let tokens = pointer_tokens(path)?;
    let (last, parents) = tokens.split_last().ok_or("empty path")?;
    let mut node = config;
    for t in parents {
        match node.get_mut(t) {
            Some(n) => node = n,
            None => return Ok(None),
        }
    }
    Ok(node.as_object_mut().and_then(|m| m.remove(last)))
}

fn set_at(config: &mut Value, path: &str, value: Value) -> std::result::Result<(), String> {
    let tokens = pointer_tokens(path)?;
    let (last, parents) = tokens.split_last().ok_or("empty path")?;
    let mut node = config;
    for t in parents {
        let map = node
            .as_object_mut()
            .ok_or_else(|| format!("parent of {path} is not an object"))?;
        node = map
            .entry(t.clone())
            .or_insert_with(|| Value::Object(Map::new()));
    }
    node.as_object_mut()
        .ok_or_else(|| format!("parent of {path} is not an object"))?
        .insert(last.clone(), value);
    Ok(())
}

/// Adds every field of `defaults` that `config` lacks (recursively into objects).
fn fill_defaults(config: &mut Value, defaults: &Value) {
    if let (Value::Object(c), Value::Object(d)) = (config, defaults) {
        for (k, dv) in d {
            match c.get_mut(k) {
                Some(cv) => fill_defaults(cv, dv),
                None => {
                    c.insert(k.clone(), dv.clone());
                }
            }
        }
    }
}

fn depth(v: &Value) -> usize {
    match v {
        Value::Object(m) => 1 + m.values().map(depth).max().unwrap_or(0),
        Value::Array(a) => 1 + a.iter().map(depth).max().unwrap_or(0),
        _ => 0,
    }
}

/// Refuses `$ref`s that leave the document (no file or network access, ever).
fn check_refs(v: &Value, level: usize) -> Result<()> {
    if level > 4 * MAX_DEPTH {
        return Err(bad_schema(format!("nested deeper than {MAX_DEPTH} levels")));
    }
    match v {
        Value::Object(m) => {
            for (k, sub) in m {
                if (k == "$ref" || k == "$dynamicRef" || k == "$recursiveRef")
                    && !sub.as_str().is_some_and(|s| s.starts_with('#'))
                {
                    return Err(bad_schema(format!(
                        "{k} must point inside the schema (start with '#')"
                    )));
                }
                check_refs(sub, level + 1)?;
            }
            Ok(())
        }
        Value::Array(a) => a.iter().try_for_each(|s| check_refs(s, level + 1)),
        _ => Ok(()),
    }
}

/// The defaults object of an object schema; every property needs a default.
fn defaults_of(schema: &Value, at: &str, level: usize) -> Result<Value> {
    if level > MAX_DEPTH {
        return Err(bad_schema(format!("nested deeper than {MAX_DEPTH} levels")));
    }
    let obj = schema
        .as_object()
        .ok_or_else(|| bad_schema(format!("{} must be a schema object", or_root(at))))?;
    if obj.get("type") != Some(&Value::String("object".into())) {
        return Err(bad_schema(format!(
            "{} must have \"type\": \"object\"",
            or_root(at)
        )));
    }
    let props = match obj.get("properties") {
        Some(Value::Object(p)) => p,
        Some(_) => return Err(bad_schema(format!("{}/properties must be an object", at))),
        None => {
            return Ok(obj
                .get("default")
                .cloned()
                .unwrap_or(Value::Object(Map::new())));
        }
    };
    let mut out = Map::new();
    for (name, sub) in props {
        let here = format!("{at}/{}", name.replace('~', "~0").replace('/', "~1"));
        let d = match sub.get("default") {
            Some(d) => d.clone(),
            None if sub.get("type") == Some(&Value::String("object".into())) => {
                defaults_of(sub, &here, level + 1)?
            }
            None => {
                return Err(bad_schema(format!("field {here} has no default")));
            }
        };
        out.insert(name.clone(), d);
    }
    Ok(Value::Object(out))
}

fn or_root(at: &str) -> &str {
    if at.is_empty() { "the schema" } else { at }
}

/// Every declared property becomes required; unknown properties are refused unless
/// the schema set `additionalProperties` itself.
fn make_strict(schema: &mut Value, level: usize) {
    if level > MAX_DEPTH {
        return;
    }
    let Some(obj) = schema.as_object_mut() else {
        return;
    };
    if let Some(Value::Object(props)) = obj.get_mut("properties") {
        let names: Vec<Value> = props.keys().cloned().map(Value::String).collect();
        for sub in props.values_mut() {
            make_strict(sub, level + 1);
        }
        obj.insert("required".into(), Value::Array(names));
        obj.entry("additionalProperties")
            .or_insert(Value::Bool(false));
    }
}

/// One changed path: `from` is absent for an added field, `to` for a removed one.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct ConfigChange {
    /// JSON Pointer of the change.
    pub path: String,
    /// Old value.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub from: Option<Value>,
    /// New value.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub to: Option<Value>,
}

/// The changes from `old` to `new`, by path (objects compared field by field,
/// everything else as a whole), in a stable order.
pub fn diff(old: &Value, new: &Value) -> Vec<ConfigChange> {
    let mut out = Vec::new();
    diff_into(old, new, String::new(), &mut out);
    out
}

fn diff_into(old: &Value, new: &Value, at: String, out: &mut Vec<ConfigChange>) {
    match (old, new) {
        (Value::Object(a), Value::Object(b)) => {
            let mut keys: Vec<&String> = a.keys().chain(b.keys()).collect();
            keys.sort();
            keys.dedup();
            for k in keys {
                let here = format!("{at}/{}", k.replace('~', "~0").replace('/', "~1"));
                match (a.get(k), b.get(k)) {
                    (Some(x), Some(y)) => diff_into(x, y, here, out),
                    (x, y) => out.push(ConfigChange {
                        path: here,
                        from: x.cloned(),
                        to: y.cloned(),
                    }),
                }
            }
        }
        (a, b) if a == b => {}
        (a, b) => out.push(ConfigChange {
            path: if at.is_empty() { "/".into() } else { at },
            from: Some(a.clone()),
            to: Some(b.clone()),
        }),
    }
}

/// Applies an RFC 7396 JSON Merge Patch (`null` removes a field).
pub fn merge_patch(target: &mut Value, patch: &Value) {
    match patch {
        Value::Object(p) => {
            if !target.is_object() {
                *target = Value::Object(Map::new());
            }
            if let Value::Object(t) = target {
                for (k, v) in p {
                    if v.is_null() {
                        t.remove(k);
                    } else {
                        merge_patch(t.entry(k.clone()).or_insert(Value::Null), v);
                    }
                }
            }
        }
        other => *target = other.clone(),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use serde_json::json;
    use std::sync::Arc;

    fn v1() -> Value {
        json!({
            "type": "object",
            "properties": {
                "interval_s": { "type": "integer", "minimum": 1, "maximum": 86400, "default": 60 },
                "wifi": { "type": "object", "properties": {
                    "ssid": { "type": "string", "maxLength": 32, "default": "" },
                    "band": { "enum": ["2.4", "5"], "default": "2.4" }
                }}
            }
        })
    }

    #[test]
    fn defaults_are_materialised_and_valid() {
        let s = SchemaVersion::compile(1, v1(), vec![]).unwrap();
        assert_eq!(
            s.defaults,
            json!({"interval_s": 60, "wifi": {"ssid": "", "band": "2.4"}})
        );
        s.validate(&s.defaults).unwrap();
    }

    #[test]
    fn invalid_incomplete_and_unknown_fields_are_refused_with_their_path() {
        let s = SchemaVersion::compile(1, v1(), vec![]).unwrap();
        let path = |c: Value| match s.validate(&c) {
            Err(Error::InvalidConfig { path, .. }) => path,
            other => panic!("{other:?}"),
        };
        assert_eq!(
            path(json!({"interval_s": 0, "wifi": {"ssid": "", "band": "2.4"}})),
            "/interval_s"
        );
        assert_eq!(
            path(json!({"interval_s": 5, "wifi": {"ssid": "x", "band": "6"}})),
            "/wifi/band"
        );
        // Incomplete: a missing field is reported at its parent.
        assert_eq!(
            path(json!({"interval_s": 5, "wifi": {"ssid": "x"}})),
            "/wifi"
        );
        // Unknown key (a typo) is refused.
        assert_eq!(
            path(json!({"interval_s": 5, "intervl": 1, "wifi": {"ssid": "", "band": "5"}})),
            "/"
        );
    }

    #[test]
    fn the_error_message_never_repeats_the_submitted_value() {
        let s = SchemaVersion::compile(1, v1(), vec![]).unwrap();
        let secret = "hunter2-very-secret-ssid-value-that-is-long";
        let err = s
            .validate(&json!({"interval_s": 5, "wifi": {"ssid": secret, "band": "5"}}))
            .unwrap_err()
            .to_string();
        assert!(!err.contains(secret), "{err}");
    }

    #[test]
    fn schemas_without_defaults_or_with_external_refs_are_refused() {
        let no_default = json!({"type": "object", "properties": {"a": {"type": "integer"}}});
        assert!(
            SchemaVersion::compile(1, no_default, vec![])
                .unwrap_err()
                .to_string()
                .contains("/a has no default")
        );
        let bad_default =
            json!({"type": "object", "properties": {"a": {"type": "integer", "default": "x"}}});
        assert!(
            SchemaVersion::compile(1, bad_default, vec![])
                .unwrap_err()
                .to_string()
                .contains("default at /a")
        );
        let remote = json!({"type": "object", "properties": {"a": {"$ref": "https://example.invalid/s.json", "default": 1}}});
        assert!(
            SchemaVersion::compile(1, remote, vec![])
                .unwrap_err()
                .to_string()
                .contains("$ref")
        );
        assert!(SchemaVersion::compile(1, json!({"type": "array"}), vec![]).is_err());
        assert!(SchemaVersion::compile(1, json!([1]), vec![]).is_err());
    }

    #[test]
    fn migrations_rename_remove_set_and_fill_new_defaults() {
        let s1 = Arc::new(SchemaVersion::compile(1, v1(), vec![]).unwrap());
        let v2 = json!({
            "type": "object",
            "properties": {
                "period_s": { "type": "integer", "minimum": 1, "default": 60 },
                "wifi": { "type": "object", "properties": {
                    "ssid": { "type": "string", "default": "" },
                    "band": { "enum": ["2.4", "5", "6"], "default": "2.4" }
                }},
                "led": { "type": "boolean", "default": true }
            }
        });
        let s2 = Arc::new(
            SchemaVersion::compile(
                2,
                v2,
                vec![MigrationOp::Rename {
                    from: "/interval_s".into(),
                    to: "/period_s".into(),
                }],
            )
            .unwrap(),
        );
        let old = json!({"interval_s": 300, "wifi": {"ssid": "lab", "band": "5"}});
        let new = migrate(&[s1.clone(), s2.clone()], 1, &old).unwrap();
        assert_eq!(
            new,
            json!({"period_s": 300, "wifi": {"ssid": "lab", "band": "5"}, "led": true})
        );
        // A migration that would leave an invalid config is refused, never applied.
        let s3 = Arc::new(
            SchemaVersion::compile(
                3,
                json!({"type": "object", "properties": {"period_s": {"type": "integer", "maximum": 100, "default": 60}}}),
                vec![MigrationOp::Remove { path: "/wifi".into() }, MigrationOp::Remove { path: "/led".into() }],
            )
            .unwrap(),
        );
        match migrate(&[s1, s2, s3], 1, &old) {
            Err(Error::ConfigMigration { to: 3, path, .. }) => assert_eq!(path, "/period_s"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn diff_lists_changed_added_and_removed_paths() {
        let d = diff(
            &json!({"a": 1, "b": {"c": "x", "d": 2}, "gone": true}),
            &json!({"a": 1, "b": {"c": "y", "d": 2}, "new/key": [1]}),
        );
        let paths: Vec<&str> = d.iter().map(|c| c.path.as_str()).collect();
        assert_eq!(paths, ["/b/c", "/gone", "/new~1key"]);
        assert_eq!(d[1].to, None);
        assert_eq!(d[2].from, None);
    }

    #[test]
    fn merge_patch_follows_rfc_7396() {
        let mut t = json!({"a": "b", "c": {"d": "e", "f": "g"}});
        merge_patch(&mut t, &json!({"a": "z", "c": {"f": null}}));
        assert_eq!(t, json!({"a": "z", "c": {"d": "e"}}));
    }

    proptest::proptest! {
        #[test]
        fn validation_never_panics_on_arbitrary_json(s in "\\PC{0,200}") {
            let schema = SchemaVersion::compile(1, v1(), vec![]).unwrap();
            if let Ok(v) = serde_json::from_str::<Value>(&s) {
                let _ = schema.validate(&v);
            }
        }

        #[test]
        fn pointer_parsing_never_panics(p in "\\PC{0,64}") {
            let mut v = json!({"a": {"b": 1}});
            let _ = remove_at(&mut v, &p);
            let _ = set_at(&mut v, &p, json!(1));
        }
    }
}
