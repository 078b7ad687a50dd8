//! The OpenAPI document as served (`/v1/openapi.json`): what utoipa derives from
//! the handlers, plus the responses the HTTP edge can give on any operation, a
//! description for every response, and what the handlers accept stated as
//! schema constraints.
//!
//! The constraints — name grammars, base64 lengths, numeric ranges — live in the
//! validators (`names`, `tokens`, `keys`, `fleet`); they are added here from the
//! same constants, in one table. A client (or schemathesis' positive and negative
//! checks in `.ci/run`) can rely on it: a request the document allows is not
//! refused as malformed, and one it forbids is refused.

use super::{ApiDoc, datakeys, devices, ingest, keyring_lifecycle, signing, transfer};
use serde_json::{Value, json};
use utoipa::OpenApi;

/// The OpenAPI document as JSON.
pub fn openapi_document() -> serde_json::Value {
    let mut v = derived();
    add_edge_responses(&mut v);
    add_constraints(&mut v);
    v
}

/// What utoipa derives from the handlers.
fn derived() -> Value {
    let mut doc = ApiDoc::openapi();
    doc.merge(<devices::DevicesDoc as OpenApi>::openapi());
    doc.merge(<ingest::IngestDoc as OpenApi>::openapi());
    doc.merge(<datakeys::DataKeysDoc as OpenApi>::openapi());
    doc.merge(<signing::SigningDoc as OpenApi>::openapi());
    doc.merge(<keyring_lifecycle::KeyringLifecycleDoc as OpenApi>::openapi());
    doc.merge(<transfer::TransferDoc as OpenApi>::openapi());
    serde_json::to_value(doc).unwrap_or_default()
}

/// Responses the HTTP edge can give on any `/v1` operation, whatever the handler
/// does: 429 from the rate limits (per token, global, per source) and, where a
/// body is read, 408 (body deadline) and 413 (body limit).
fn add_edge_responses(doc: &mut serde_json::Value) {
    let error = |description: &str| {
        serde_json::json!({
            "description": description,
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorBody"}}}
        })
    };
    let Some(paths) = doc.get_mut("paths").and_then(|p| p.as_object_mut()) else {
        return;
    };
    for (path, item) in paths.iter_mut() {
        if !path.starts_with("/v1/") || path == "/v1/openapi.json" {
            continue;
        }
        let Some(ops) = item.as_object_mut() else {
            continue;
        };
        for op in ops.values_mut() {
            let has_body = op.get("requestBody").is_some();
            let Some(responses) = op.get_mut("responses").and_then(|r| r.as_object_mut()) else {
                continue;
            };
            responses.entry("429").or_insert_with(|| {
                error("Rate limited (token, global or per source); see Retry-After")
            });
            responses.entry("503").or_insert_with(|| {
                error("The store (or another service this needs) is unavailable; see Retry-After")
            });
            if has_body {
                responses
                    .entry("408")
                    .or_insert_with(|| error("The request body did not arrive in time"));
                responses
                    .entry("413")
                    .or_insert_with(|| error("The request body is larger than the limit"));
            }
            // Every response says what it means (the OpenAPI description is
            // required; utoipa leaves it empty when the handler gives none).
            for (code, r) in responses.iter_mut() {
                if let Some(obj) = r.as_object_mut()
                    && obj
                        .get("description")
                        .and_then(|d| d.as_str())
                        .is_none_or(str::is_empty)
                {
                    obj.insert("description".into(), status_description(code).into());
                }
            }
        }
    }
}

/// What a status code means in this API, for responses documented without a
/// description.
fn status_description(code: &str) -> &'static str {
    match code {
        "200" => "Done",
        "201" => "Created",
        "204" => "Done; no content",
        "400" => "Malformed or invalid request (`error.code` and `error.details` say what)",
        "401" => "No token, or an unknown, expired or revoked one",
        "403" => "The token lacks the scope this needs",
        "404" => "Not found (or not visible to this token)",
        "409" => "Conflicts with the current state",
        "410" => "Gone",
        "422" => "Well-formed but refused (an envelope, credential or proof that does not verify)",
        _ => "See `error.code` in the body",
    }
}

/// Canonical standard padded base64 of exactly `n` bytes (the unused low bits of
/// the last character before padding are zero, as strict decoders require).
fn base64_of(n: usize) -> Value {
    let full = n / 3 * 4;
    let tail = match n % 3 {
        1 => "[A-Za-z0-9+/][AQgw]==",
        2 => "[A-Za-z0-9+/]{2}[AEIMQUYcgkosw048]=",
        _ => "",
    };
    json!({ "pattern": format!("^[A-Za-z0-9+/]{{{full}}}{tail}$") })
}

/// Canonical standard padded base64 of any length up to `max_chars` characters.
fn base64_any(max_chars: usize) -> Value {
    json!({
        "pattern": "^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/][AQgw]==|[A-Za-z0-9+/]{2}[AEIMQUYcgkosw048]=)?$",
        "maxLength": max_chars,
    })
}

/// A name (`docs/operations.md#names`).
fn name() -> Value {
    json!({ "pattern": crate::names::PATTERN, "minLength": 1, "maxLength": crate::names::MAX_NAME_LEN })
}

/// A free-text field of the factory record: 1 to 128 characters, no control
/// characters.
fn field() -> Value {
    json!({ "pattern": "^[^\\u0000-\\u001f\\u007f-\\u009f]+$", "minLength": 1, "maxLength": crate::fleet::MAX_FIELD })
}

fn range(min: i64, max: i64) -> Value {
    json!({ "minimum": min, "maximum": max })
}

/// An encryption context (docs/formats.md, "Encryption context") on `schema`, and
/// the rule that a request gives it or `aad`, not both.
fn context_rows(schema: &'static str) -> [(&'static str, &'static str, Value); 2] {
    use fleetkey_crypto::envelope::context::{MAX_KEY_CHARS, MAX_PAIRS, MAX_VALUE_CHARS};
    [
        (
            schema,
            "context",
            json!({
                "maxProperties": MAX_PAIRS,
                "propertyNames": { "minLength": 1, "maxLength": MAX_KEY_CHARS },
                "additionalProperties": { "type": "string", "maxLength": MAX_VALUE_CHARS },
            }),
        ),
        (
            schema,
            "",
            json!({ "not": {
                "required": ["aad", "context"],
                "properties": { "aad": { "type": "string" }, "context": { "type": "object" } },
            } }),
        ),
    ]
}

/// A message or a digest on `schema` (sign and verify): exactly one of the two;
/// `hash` only with a digest; the digest as long as its hash's output.
fn digest_rows(schema: &'static str) -> [(&'static str, &'static str, Value); 2] {
    use fleetkey_crypto::prehash::HashAlg;
    let string =
        |field: &str| json!({ "required": [field], "properties": { field: { "type": "string" } } });
    let mut hashes: Vec<Value> = HashAlg::NAMES.iter().map(|n| json!(n)).collect();
    hashes.push(Value::Null);
    [
        (schema, "hash", json!({ "enum": hashes })),
        (
            schema,
            "",
            json!({ "allOf": [
                { "not": {
                    "required": ["message", "digest"],
                    "properties": { "message": { "type": "string" }, "digest": { "type": "string" } },
                } },
                { "anyOf": [string("message"), string("digest")] },
                { "if": string("hash"), "then": string("digest") },
                {
                    "if": { "required": ["hash"], "properties": { "hash": { "const": "sha-256" } } },
                    "then": { "properties": { "digest": base64_of(HashAlg::Sha256.output_len()) } },
                    "else": { "properties": { "digest": base64_of(HashAlg::Sha512.output_len()) } },
                },
            ] }),
        ),
    ]
}

/// The fleet, factory and device requests' constraints.
fn fleet_rows() -> Vec<(&'static str, &'static str, Value)> {
    let signature = base64_of(64);
    let device_id = json!({ "pattern": "^dev_[0-9a-f]{16}$" });
    let year = 365 * 86_400;
    vec![
        ("CreateFleetRequest", "name", name()),
        (
            "CreateFleetRequest",
            "credential_ttl_secs",
            range(3600, crate::fleet::DEFAULT_BIRTH_TTL_SECS),
        ),
        (
            "RotationPolicyRequest",
            "period_secs",
            range(3600, 10 * year),
        ),
        // `profile` and `sealed_secret` go together (a constrained device) or
        // are both absent (or null).
        (
            "FactoryDeviceRequest",
            "",
            json!({ "allOf": [
                { "if": { "required": ["sealed_secret"], "properties": { "sealed_secret": { "type": "string" } } },
                  "then": { "required": ["profile"], "properties": { "profile": { "not": { "type": "null" } } } } },
                { "if": { "required": ["profile"], "properties": { "profile": { "not": { "type": "null" } } } },
                  "then": { "required": ["sealed_secret"], "properties": { "sealed_secret": { "type": "string" } } } }
            ] }),
        ),
        ("FactoryDeviceRequest", "fleet", name()),
        ("FactoryDeviceRequest", "hardware_id", field()),
        ("FactoryDeviceRequest", "model", field()),
        ("FactoryDeviceRequest", "batch", field()),
        ("FactoryDeviceRequest", "station", field()),
        ("FactoryDeviceRequest", "sealed_secret", base64_any(4096)),
        ("DeviceKeysRequest", "x25519", base64_of(32)),
        ("DeviceKeysRequest", "ed25519", base64_of(32)),
        ("DeviceKeysRequest", "ml_kem_768", base64_of(1184)),
        ("DeviceKeysRequest", "ml_dsa_65", base64_of(1952)),
        ("OnboardRequest", "birth_credential", base64_any(16 * 1024)),
        ("OnboardRequest", "nonce", base64_of(32)),
        ("OnboardRequest", "signature", signature.clone()),
        ("WipeReceiptRequest", "device_id", device_id.clone()),
        ("WipeReceiptRequest", "signature", signature.clone()),
        ("PollRequest", "device_id", device_id.clone()),
        ("PollRequest", "signature", signature.clone()),
        ("RotationProposalRequest", "device_id", device_id.clone()),
        ("RotationProposalRequest", "signature", signature.clone()),
        ("RotationConfirmRequest", "device_id", device_id),
        ("RotationConfirmRequest", "signature", signature),
        (
            "ClaimRequest",
            "code",
            json!({ "minLength": 1, "maxLength": 64 }),
        ),
        ("ClaimRequest", "claimed_by", field()),
    ]
}

/// (component schema, property, constraints to merge into it). A property ending
/// in `[]` constrains the array's items; an empty one, the schema itself.
fn table() -> Vec<(&'static str, &'static str, Value)> {
    let mut rows = vec![
        ("CreateKeyringRequest", "name", name()),
        (
            "CreateKeyringRequest",
            "algorithm",
            json!({ "pattern": format!(
                "^({})$",
                crate::key_type::NAMES.map(|n| n.replace('+', "\\+")).join("|")
            ) }),
        ),
        (
            "PolicyRequest",
            "rotation_period_secs",
            json!({ "minimum": 60 }),
        ),
        ("PolicyRequest", "max_uses", range(1, 1 << 40)),
        ("PolicyRequest", "overlap_secs", json!({ "minimum": 0 })),
        (
            "PolicyRequest",
            "keep_last",
            json!({ "minimum": 0, "maximum": u32::MAX, "format": "int64" }),
        ),
        ("CreateTokenRequest", "name", name()),
        ("CreateTokenRequest", "scopes", json!({ "minItems": 1 })),
        ("PatternsRequest", "patterns", json!({ "minItems": 1 })),
        (
            "CreateTokenRequest",
            "scopes[]",
            json!({ "pattern": crate::tokens::SCOPE_PATTERN }),
        ),
        ("CreateTokenRequest", "ttl_secs", json!({ "minimum": 1 })),
    ];
    rows.extend(fleet_rows());
    for schema in ["SealRequest", "CiphertextRequest", "DataKeyRequest"] {
        rows.extend(context_rows(schema));
    }
    rows.extend(digest_rows("SignRequest"));
    rows.extend(digest_rows("VerifyRequest"));
    rows.extend(details_rows("CreateKeyringRequest"));
    rows.extend(details_rows("KeyringDetailsRequest"));
    rows.push((
        "ScheduleDeletionRequest",
        "days",
        range(
            i64::from(crate::keys::MIN_DELETION_DAYS),
            i64::from(crate::keys::MAX_DELETION_DAYS),
        ),
    ));
    rows.push(("PutAliasRequest", "keyring", name()));
    // Convergent sealing is AES-256-GCM-SIV's alone (the default type is not).
    rows.push((
        "CreateKeyringRequest",
        "",
        json!({
            "if": { "required": ["convergent"], "properties": { "convergent": { "const": true } } },
            "then": { "required": ["algorithm"], "properties": { "algorithm": { "const": "aes-256-gcm-siv" } } },
        }),
    ));
    // A resident keyring is AES-256-GCM (the default type), never exportable or
    // convergent. Whether custody can hold it is the server's to say (422).
    rows.push((
        "CreateKeyringRequest",
        "",
        // (under allOf: the convergent rule above holds the schema's own if/then)
        json!({ "allOf": [{
            "if": { "required": ["resident"], "properties": { "resident": { "const": true } } },
            "then": { "properties": {
                "algorithm": { "enum": ["aes-256-gcm", null] },
                "exportable": { "not": { "const": true } },
                "convergent": { "not": { "const": true } },
            } },
        }] }),
    ));
    rows.push(("ImportRequest", "ciphertext", base64_any(4096 / 3 * 4 + 4)));
    rows.push((
        "ExportRequest",
        "key_version",
        json!({ "minimum": 1, "maximum": u32::MAX, "format": "int64" }),
    ));
    rows
}

/// Text without control characters, at most `max` characters (at least `min`).
fn text(min: usize, max: usize) -> Value {
    json!({ "pattern": "^[^\\u0000-\\u001f\\u007f-\\u009f]*$", "minLength": min, "maxLength": max })
}

/// A keyring's description and tags on `schema`.
fn details_rows(schema: &'static str) -> [(&'static str, &'static str, Value); 2] {
    use crate::keys::{MAX_DESCRIPTION_CHARS, MAX_TAG_KEY_CHARS, MAX_TAG_VALUE_CHARS, MAX_TAGS};
    let mut tags = json!({
        "maxProperties": MAX_TAGS,
        "propertyNames": text(1, MAX_TAG_KEY_CHARS),
        "additionalProperties": text(0, MAX_TAG_VALUE_CHARS),
    });
    merge(
        &mut tags["additionalProperties"],
        &json!({ "type": "string" }),
    );
    [
        (schema, "description", text(0, MAX_DESCRIPTION_CHARS)),
        (schema, "tags", tags),
    ]
}

/// Query and path parameters: (path, parameter, constraints), on every method.
fn query_table() -> Vec<(&'static str, &'static str, Value)> {
    vec![
        ("/v1/audit", "limit", range(1, 1000)),
        ("/v1/audit", "after", range(0, i64::MAX)),
        ("/v1/audit/checkpoint", "covering", range(0, i64::MAX)),
        ("/v1/fleets/{fleet}/devices", "limit", range(1, 1000)),
        ("/v1/fleets", "limit", range(1, 1000)),
        (
            "/v1/keyrings/{name}/public-key",
            "format",
            json!({ "enum": crate::keys::PUBLIC_KEY_FORMATS }),
        ),
        (
            "/v1/keyrings/{name}/public-key",
            "version",
            range(1, i64::from(u32::MAX)),
        ),
        (
            "/v1/random",
            "bytes",
            range(1, i64::try_from(datakeys::MAX_RANDOM_BYTES).unwrap_or(1024)),
        ),
        ("/v1/aliases/{alias}", "alias", name()),
    ]
}

fn merge(target: &mut Value, add: &Value) {
    if let (Some(t), Some(a)) = (target.as_object_mut(), add.as_object()) {
        for (k, v) in a {
            t.insert(k.clone(), v.clone());
        }
    }
}

/// Adds the table's constraints to `doc`; the number of rows that applied. A table row that no longer matches the
/// document (a renamed struct or field) panics in the test that checks every
/// row applies (`every_constraint_applies`), not at run time.
fn add_constraints(doc: &mut Value) -> usize {
    let mut applied = 0;
    for (schema, prop, c) in table() {
        let (prop, items) = match prop.strip_suffix("[]") {
            Some(p) => (p, true),
            None => (prop, false),
        };
        let mut at = &mut doc["components"]["schemas"][schema];
        if !prop.is_empty() {
            at = &mut at["properties"][prop];
        }
        if items {
            at = &mut at["items"];
        }
        if at.is_object() {
            merge(at, &c);
            applied += 1;
        }
    }
    for (path, param, c) in query_table() {
        let Some(ops) = doc["paths"][path].as_object_mut() else {
            continue;
        };
        let mut hit = false;
        for op in ops.values_mut() {
            // (`get_mut`: indexing would insert `"parameters": null` where absent.)
            let Some(params) = op
                .get_mut("parameters")
                .and_then(serde_json::Value::as_array_mut)
            else {
                continue;
            };
            for p in params.iter_mut().filter(|p| p["name"] == param) {
                merge(&mut p["schema"], &c);
                hit = true;
            }
        }
        applied += usize::from(hit);
    }
    applied
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The TypeScript SDK generates its types from a copy of the document
    /// (`sdk/typescript/openapi.json`); it must be this one. To refresh it:
    /// `FLEETKEY_WRITE_SNAPSHOTS=1 cargo test -p fleetkey-server --lib sdk_snapshot`.
    #[test]
    fn the_sdk_snapshot_of_the_document_is_current() {
        let want = serde_json::to_string_pretty(&openapi_document()).unwrap() + "\n";
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../sdk/typescript/openapi.json"
        );
        if std::env::var_os("FLEETKEY_WRITE_SNAPSHOTS").is_some() {
            std::fs::write(path, &want).unwrap();
        }
        assert!(
            std::fs::read_to_string(path).unwrap_or_default() == want,
            "sdk/typescript/openapi.json is stale: FLEETKEY_WRITE_SNAPSHOTS=1 cargo test -p fleetkey-server --lib sdk_snapshot"
        );
    }

    #[test]
    fn every_constraint_applies() {
        let mut doc = derived();
        let n = add_constraints(&mut doc);
        assert_eq!(n, table().len() + query_table().len());
        // Nothing added where an operation has no parameters (a `null` there is
        // an invalid document).
        for (path, ops) in doc["paths"].as_object().unwrap() {
            for (method, op) in ops.as_object().unwrap() {
                if let Some(p) = op.get("parameters") {
                    assert!(p.is_array(), "{method} {path}: parameters {p}");
                }
            }
        }
    }

    #[test]
    fn base64_patterns_match_exactly_the_canonical_encodings() {
        use base64::{Engine as _, engine::general_purpose::STANDARD};
        for n in [32usize, 64, 1184, 1952] {
            let re = regex::Regex::new(base64_of(n)["pattern"].as_str().unwrap()).unwrap();
            let any = regex::Regex::new(base64_any(1 << 20)["pattern"].as_str().unwrap()).unwrap();
            let bytes: Vec<u8> = (0..=255u8).cycle().step_by(7).take(n).collect();
            let good = STANDARD.encode(&bytes);
            assert!(re.is_match(&good) && any.is_match(&good), "{n}");
            assert!(!re.is_match(&STANDARD.encode(&bytes[1..])), "{n} - 1 bytes");
            // A non-canonical last character (nonzero unused bits) is refused by the
            // decoder, and by the pattern.
            if n % 3 != 0 {
                let pad = good.find('=').unwrap();
                let mut bad = good.clone().into_bytes();
                bad[pad - 1] = if bad[pad - 1] == b'B' { b'C' } else { b'B' };
                let bad = String::from_utf8(bad).unwrap();
                assert!(STANDARD.decode(&bad).is_err());
                assert!(!re.is_match(&bad) && !any.is_match(&bad), "{bad}");
            }
        }
    }
}
