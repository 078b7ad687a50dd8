//! Device configuration on arbitrary JSON: schema compilation, validation,
//! migration steps and diffs never panic, and a config is accepted only if the
//! strict schema accepts it.
#![no_main]

use fleetkey_server::fleet::config::{self, MigrationOp, SchemaVersion};
use libfuzzer_sys::fuzz_target;
use serde_json::{Value, json};
use std::sync::{Arc, OnceLock};

fn fixed() -> &'static Arc<SchemaVersion> {
    static S: OnceLock<Arc<SchemaVersion>> = OnceLock::new();
    S.get_or_init(|| {
        let schema = json!({"type": "object", "properties": {
            "n": {"type": "integer", "minimum": 0, "maximum": 10, "default": 1},
            "o": {"type": "object", "properties": {"s": {"type": "string", "maxLength": 8, "default": ""}}}}});
        Arc::new(SchemaVersion::compile(1, schema, vec![]).expect("fixed schema compiles"))
    })
}

fuzz_target!(|data: &[u8]| {
    let Ok(v) = serde_json::from_slice::<Value>(data) else {
        return;
    };
    // As a config of the fixed schema.
    let s = fixed();
    if s.validate(&v).is_ok() {
        assert!(v["n"].is_i64() && v["o"]["s"].is_string());
    }
    let _ = config::diff(&s.defaults, &v);
    // As a schema of its own.
    if let Ok(own) = SchemaVersion::compile(1, v.clone(), vec![]) {
        own.validate(&own.defaults).expect("defaults satisfy their schema");
        let _ = own.validate(&s.defaults);
    }
    // As migration steps from the fixed schema to itself.
    if let Ok(ops) = serde_json::from_value::<Vec<MigrationOp>>(v) {
        if let Ok(v2) = SchemaVersion::compile(2, s.schema.clone(), ops) {
            let _ = config::migrate(&[s.clone(), Arc::new(v2)], 1, &s.defaults);
        }
    }
});
