//! One device's whole life against a running `fleetkey serve`, operated with the
//! CLI in client mode and driven from the device side over HTTP: factory ->
//! onboarding -> claim -> config change -> credential rotation -> decommission ->
//! factory reset, with the refusals a user relies on along the way (duplicate
//! hardware id, replayed challenge, used and expired claim codes, invalid config,
//! illegal state transitions, cross-fleet access, stale and forged signatures).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use assert_cmd::Command;
use base64::{Engine as _, engine::general_purpose::STANDARD as B64};
use common::Server;
use fleetkey_crypto::ed25519::Ed25519Signer;
use fleetkey_crypto::x25519::X25519Secret;
use fleetkey_server::fleet::commands::{
    command_message, command_poll_message, rotation_confirm_message, rotation_request_message,
};
use fleetkey_server::fleet::{onboarding_message, wipe_receipt_message};
use fleetkey_server::store::CommandKind;
use serde_json::{Value, json};
use std::time::{Duration, Instant};

struct Ctx {
    _dir: tempfile::TempDir,
    server: Option<Server>,
    addr: String,
    admin: String,
    http: reqwest::Client,
}

impl Ctx {
    /// The CLI in client mode with `token`.
    fn cli(&self, token: &str, args: &[&str]) -> std::process::Output {
        Command::cargo_bin("fleetkey")
            .unwrap()
            .env("FLEETKEY_ADDR", &self.addr)
            .env("FLEETKEY_TOKEN", token)
            // Records as JSON; `tokens create` prints the bare secret by default.
            .env(
                "FLEETKEY_FORMAT",
                if args.first() == Some(&"tokens") {
                    "table"
                } else {
                    "json"
                },
            )
            .args(args)
            .output()
            .unwrap()
    }

    /// The CLI, which must succeed; its stdout as JSON (or a string).
    fn ok(&self, token: &str, args: &[&str]) -> Value {
        let out = self.cli(token, args);
        assert!(
            out.status.success(),
            "fleetkey {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let text = String::from_utf8(out.stdout).unwrap();
        serde_json::from_str(&text).unwrap_or(Value::String(text.trim().to_owned()))
    }

    /// The CLI, which must fail; its stderr.
    fn refused(&self, token: &str, args: &[&str]) -> String {
        let out = self.cli(token, args);
        assert!(!out.status.success(), "fleetkey {args:?} succeeded");
        String::from_utf8(out.stderr).unwrap()
    }

    async fn http(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> (u16, Value) {
        let mut req = self
            .http
            .request(method.parse().unwrap(), format!("{}{path}", self.addr));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.unwrap();
        let status = resp.status().as_u16();
        (status, resp.json().await.unwrap_or(Value::Null))
    }
}

/// A device: its private keys stay here.
struct Device {
    id: String,
    sign: Ed25519Signer,
}

impl Device {
    fn keys_json(sign: &Ed25519Signer) -> Value {
        let x = X25519Secret::generate().unwrap().public_key().unwrap();
        json!({"x25519": B64.encode(x), "ed25519": B64.encode(sign.public_key())})
    }

    async fn poll(&self, c: &Ctx) -> (u16, Value) {
        let at = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs()
            .try_into()
            .unwrap();
        let sig = self.sign.sign(&command_poll_message(&self.id, at));
        c.http(
            "POST",
            "/v1/devices/commands",
            None,
            Some(json!({"device_id": self.id, "at": at, "signature": B64.encode(sig)})),
        )
        .await
    }
}

async fn challenge(c: &Ctx, id: &str) -> Value {
    let (s, ch) = c
        .http(
            "POST",
            "/v1/onboarding/challenge",
            None,
            Some(json!({"device_id": id})),
        )
        .await;
    assert_eq!(s, 200, "{ch}");
    ch
}

fn verify_command(fleet_pk: &[u8], c: &Value) -> CommandKind {
    let kind: CommandKind = serde_json::from_value(c["kind"].clone()).unwrap();
    let msg = command_message(
        c["id"].as_str().unwrap(),
        c["device_id"].as_str().unwrap(),
        kind,
        c["created_at"].as_i64().unwrap(),
        c["payload"].as_str().unwrap(),
    );
    let sig = B64.decode(c["signature"].as_str().unwrap()).unwrap();
    fleetkey_crypto::ed25519::verify(fleet_pk, &msg, &sig)
        .expect("command signed by the fleet key");
    kind
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_device_life_from_factory_to_factory_reset_against_a_running_server() {
    let dir = tempfile::TempDir::new().unwrap();
    let server = Server::start(dir.path());
    let c = Ctx {
        addr: server.addr(),
        admin: Server::admin_token(dir.path()),
        server: Some(server),
        _dir: dir,
        http: reqwest::Client::new(),
    };
    let admin = c.admin.clone();

    // Operator: fleets, the config schema, scoped tokens.
    c.ok(&admin, &["fleets", "create", "home"]);
    c.ok(&admin, &["fleets", "create", "away"]);
    let schema = c._dir.path().join("schema.json");
    std::fs::write(
        &schema,
        json!({"type": "object", "properties": {
            "interval_s": {"type": "integer", "minimum": 1, "maximum": 86400, "default": 60},
            "server": {"type": "object", "properties": {
                "host": {"type": "string", "default": "ingest.local"},
                "port": {"type": "integer", "minimum": 1, "maximum": 65535, "default": 8401}}}}})
        .to_string(),
    )
    .unwrap();
    let v = c.ok(
        &admin,
        &[
            "fleets",
            "schema",
            "set",
            "home",
            "--file",
            schema.to_str().unwrap(),
        ],
    );
    assert_eq!(v["version"], 1);
    let token = |scope: &str| match c.ok(
        &admin,
        &["tokens", "create", "--name", "t", "--scope", scope],
    ) {
        Value::String(s) => s,
        other => panic!("{other}"),
    };
    let jig = token("factory:home");
    let ops = c.ok(
        &admin,
        &[
            "tokens",
            "create",
            "--name",
            "ops",
            "--scope",
            "operate:home",
            "--scope",
            "devices:home",
        ],
    );
    let ops = ops.as_str().unwrap().to_owned();
    let away = c.ok(
        &admin,
        &[
            "tokens",
            "create",
            "--name",
            "away",
            "--scope",
            "operate:away",
            "--scope",
            "devices:away",
        ],
    );
    let away = away.as_str().unwrap().to_owned();
    let installer = token("claim");
    let (_, fleet) = c.http("GET", "/v1/fleets/home", Some(&ops), None).await;
    let fleet_pk = hex::decode(fleet["issuer_public_key"].as_str().unwrap()).unwrap();

    // Factory: the device made its keys; the jig registers them.
    let sign = Ed25519Signer::generate().unwrap();
    let reg = json!({"fleet": "home", "hardware_id": "uid:life-0001", "model": "sensor", "batch": "b1",
                     "station": "jig-1", "keys": Device::keys_json(&sign), "test_results": {"rf": "pass"}});
    let (s, d) = c
        .http("POST", "/v1/factory/devices", Some(&jig), Some(reg.clone()))
        .await;
    assert_eq!(s, 201, "{d}");
    let dev = Device {
        id: d["id"].as_str().unwrap().to_owned(),
        sign,
    };
    let birth = d["birth_credential"].as_str().unwrap().to_owned();
    let (s, _) = c
        .http("POST", "/v1/factory/devices", Some(&jig), Some(reg.clone()))
        .await;
    assert_eq!(s, 200, "a retry is idempotent");
    let mut clone = reg.clone();
    clone["keys"] = Device::keys_json(&Ed25519Signer::generate().unwrap());
    let (s, v) = c
        .http("POST", "/v1/factory/devices", Some(&jig), Some(clone))
        .await;
    assert_eq!(s, 409, "duplicate hardware id: {v}");
    // The factory materialised the default config.
    let v = c.ok(
        &ops,
        &["devices", "config", "get", "--fleet", "home", &dev.id],
    );
    assert_eq!(
        (
            v["revision"].as_i64(),
            v["config"]["server"]["port"].as_i64()
        ),
        (Some(1), Some(8401))
    );

    // Claim codes: one to use, and one for a neighbour to let expire (60 s, the
    // shortest lifetime; the device's own codes are erased when it is wiped).
    let mut neighbour = reg.clone();
    neighbour["hardware_id"] = json!("uid:life-0002");
    neighbour["keys"] = Device::keys_json(&Ed25519Signer::generate().unwrap());
    let (s, n) = c
        .http("POST", "/v1/factory/devices", Some(&jig), Some(neighbour))
        .await;
    assert_eq!(s, 201, "{n}");
    let neighbour_id = n["id"].as_str().unwrap().to_owned();
    let code = c.ok(
        &ops,
        &[
            "devices",
            "claim-code",
            "--fleet",
            "home",
            &dev.id,
            "--ttl",
            "1h",
        ],
    );
    let code = code["code"].as_str().unwrap().to_owned();
    let short = c.ok(
        &ops,
        &[
            "devices",
            "claim-code",
            "--fleet",
            "home",
            &neighbour_id,
            "--ttl",
            "60s",
        ],
    );
    let short_code = short["code"].as_str().unwrap().to_owned();
    let short_expires = Instant::now() + Duration::from_secs(61);

    // First boot: challenge, proof of possession, operational credential.
    let ch = challenge(&c, &dev.id).await;
    let nonce: [u8; 32] = B64
        .decode(ch["nonce"].as_str().unwrap())
        .unwrap()
        .try_into()
        .unwrap();
    // A wrong signature burns the challenge; the right one after it is a replay.
    let forged = Ed25519Signer::generate().unwrap().sign(&onboarding_message(
        &dev.id,
        &nonce,
        ch["issued_at"].as_i64().unwrap(),
    ));
    let (s, _) = c.http("POST", "/v1/onboarding/complete", None,
        Some(json!({"birth_credential": birth, "nonce": ch["nonce"], "signature": B64.encode(forged)}))).await;
    assert_eq!(s, 401);
    let proof = dev.sign.sign(&onboarding_message(
        &dev.id,
        &nonce,
        ch["issued_at"].as_i64().unwrap(),
    ));
    let (s, v) = c.http("POST", "/v1/onboarding/complete", None,
        Some(json!({"birth_credential": birth, "nonce": ch["nonce"], "signature": B64.encode(proof)}))).await;
    assert_eq!(s, 401, "replayed challenge: {v}");
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("already used"),
        "{v}"
    );
    let ch = challenge(&c, &dev.id).await;
    let nonce: [u8; 32] = B64
        .decode(ch["nonce"].as_str().unwrap())
        .unwrap()
        .try_into()
        .unwrap();
    let proof = dev.sign.sign(&onboarding_message(
        &dev.id,
        &nonce,
        ch["issued_at"].as_i64().unwrap(),
    ));
    let (s, v) = c.http("POST", "/v1/onboarding/complete", None,
        Some(json!({"birth_credential": birth, "nonce": ch["nonce"], "signature": B64.encode(proof)}))).await;
    assert_eq!(
        (s, v["device"]["state"].as_str()),
        (200, Some("onboarded")),
        "{v}"
    );

    // The installer claims it; the code works once.
    let v = c.ok(
        &installer,
        &[
            "devices",
            "claim",
            &code.to_lowercase(),
            "--by",
            "site:berlin-3",
        ],
    );
    assert_eq!(v["claimed_by"], "site:berlin-3");
    let err = c.refused(
        &installer,
        &["devices", "claim", &code, "--by", "site:other"],
    );
    assert!(err.contains("already used"), "{err}");

    // Operation: active; illegal transitions are refused.
    let path = format!("/v1/fleets/home/devices/{}", dev.id);
    let (s, _) = c
        .http(
            "POST",
            &format!("{path}/state"),
            Some(&ops),
            Some(json!({"state": "active"})),
        )
        .await;
    assert_eq!(s, 200);
    let (s, _) = c
        .http(
            "POST",
            &format!("{path}/state"),
            Some(&ops),
            Some(json!({"state": "manufactured"})),
        )
        .await;
    assert_eq!(s, 409, "nothing returns to manufactured");
    let (s, _) = c
        .http(
            "POST",
            "/v1/onboarding/challenge",
            None,
            Some(json!({"device_id": dev.id})),
        )
        .await;
    assert_eq!(s, 409, "an active device cannot onboard again");

    // Another fleet's operator sees nothing of it.
    let (s, _) = c.http("GET", &path, Some(&away), None).await;
    assert_eq!(s, 403);
    let (s, _) = c
        .http(
            "GET",
            &format!("/v1/fleets/away/devices/{}", dev.id),
            Some(&away),
            None,
        )
        .await;
    assert_eq!(s, 404);
    let err = c.refused(
        &away,
        &[
            "devices",
            "config",
            "set",
            "--fleet",
            "home",
            &dev.id,
            "interval_s=5",
        ],
    );
    assert!(err.contains("lacks scope"), "{err}");

    // Config: a change is validated, revisioned and pushed to the device as a signed command.
    let err = c.refused(
        &ops,
        &[
            "devices",
            "config",
            "set",
            "--fleet",
            "home",
            &dev.id,
            "server.port=70000",
        ],
    );
    assert!(
        err.contains("/server/port"),
        "the failing path is named: {err}"
    );
    let err = c.refused(
        &ops,
        &[
            "devices",
            "config",
            "set",
            "--fleet",
            "home",
            &dev.id,
            "intervall_s=5",
        ],
    );
    assert!(err.contains("invalid config"), "{err}");
    let v = c.ok(
        &ops,
        &[
            "devices",
            "config",
            "set",
            "--fleet",
            "home",
            &dev.id,
            "interval_s=300",
            "server.host=ingest.example",
        ],
    );
    assert_eq!(
        (v["revision"].as_i64(), v["config"]["interval_s"].as_i64()),
        (Some(2), Some(300))
    );
    let (s, polled) = dev.poll(&c).await;
    assert_eq!(s, 200, "{polled}");
    let cmds = polled["commands"].as_array().unwrap();
    assert_eq!(cmds.len(), 1);
    assert_eq!(
        verify_command(&fleet_pk, &cmds[0]),
        CommandKind::UpdateConfig
    );
    let payload: Value = serde_json::from_str(cmds[0]["payload"].as_str().unwrap()).unwrap();
    assert_eq!(payload["config"]["server"]["host"], "ingest.example");

    // Credential rotation: requested by the operator, proposed with the old key,
    // confirmed with the new one; then the old key no longer speaks for the device.
    let cmd = c.ok(
        &ops,
        &[
            "devices", "rotate", "--fleet", "home", &dev.id, "--reason", "yearly",
        ],
    );
    let cmd_id = cmd["id"].as_str().unwrap().to_owned();
    let (_, polled) = dev.poll(&c).await;
    let rotate = polled["commands"]
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["id"] == cmd_id.as_str())
        .unwrap();
    assert_eq!(
        verify_command(&fleet_pk, rotate),
        CommandKind::RotateCredential
    );
    let new_sign = Ed25519Signer::generate().unwrap();
    let new_x = X25519Secret::generate().unwrap().public_key().unwrap();
    let new_keys = fleetkey_crypto::credential::DeviceKeys {
        x25519: new_x,
        ed25519: new_sign.public_key(),
        ml_kem_768: None,
        ml_dsa_65: None,
    };
    let req = rotation_request_message(&dev.id, &cmd_id, &new_keys);
    let (s, v) = c
        .http(
            "POST",
            "/v1/devices/rotation",
            None,
            Some(json!({"device_id": dev.id, "command_id": cmd_id,
        "keys": {"x25519": B64.encode(new_x), "ed25519": B64.encode(new_sign.public_key())},
        "signature": B64.encode(dev.sign.sign(&req))})),
        )
        .await;
    assert_eq!(s, 200, "{v}");
    let cred_id: [u8; 16] = B64
        .decode(v["credential_id"].as_str().unwrap())
        .unwrap()
        .try_into()
        .unwrap();
    let confirm = rotation_confirm_message(&dev.id, &cmd_id, &cred_id);
    let (s, _) = c
        .http(
            "POST",
            "/v1/devices/rotation/confirm",
            None,
            Some(json!({"device_id": dev.id, "command_id": cmd_id,
        "signature": B64.encode(dev.sign.sign(&confirm))})),
        )
        .await;
    assert_eq!(s, 401, "confirmation needs the new key");
    let (s, v) = c
        .http(
            "POST",
            "/v1/devices/rotation/confirm",
            None,
            Some(json!({"device_id": dev.id, "command_id": cmd_id,
        "signature": B64.encode(new_sign.sign(&confirm))})),
        )
        .await;
    assert_eq!((s, v["state"].as_str()), (200, Some("active")), "{v}");
    let (s, _) = dev.poll(&c).await;
    assert_eq!(s, 401, "the old key is no longer the device's");
    let dev = Device {
        id: dev.id,
        sign: new_sign,
    };
    let (s, _) = dev.poll(&c).await;
    assert_eq!(s, 200);

    // Decommissioning: credentials revoked at once, a signed wipe queued, the
    // receipt ends it; afterwards the device is refused.
    let v = c.ok(
        &ops,
        &[
            "devices",
            "decommission",
            "--fleet",
            "home",
            &dev.id,
            "--reason",
            "end of life",
        ],
    );
    assert_eq!(v["state"], "decommissioning");
    let (_, polled) = dev.poll(&c).await;
    let cmds = polled["commands"].as_array().unwrap();
    assert_eq!(cmds.len(), 1, "only the wipe is left: {polled}");
    assert_eq!(verify_command(&fleet_pk, &cmds[0]), CommandKind::Wipe);
    let err = c.refused(
        &ops,
        &["devices", "config", "reset", "--fleet", "home", &dev.id],
    );
    assert!(err.contains("decommissioning"), "{err}");
    let wiped_at = 1_800_000_000;
    let (s, v) = c
        .http(
            "POST",
            "/v1/onboarding/wipe-receipt",
            None,
            Some(json!({"device_id": dev.id, "wiped_at": wiped_at,
        "signature": B64.encode(dev.sign.sign(&wipe_receipt_message(&dev.id, wiped_at)))})),
        )
        .await;
    assert_eq!(
        (s, v["state"].as_str()),
        (200, Some("decommissioned")),
        "{v}"
    );
    let (s, _) = dev.poll(&c).await;
    assert_eq!(s, 409, "a decommissioned device is refused");
    let mut fresh = reg.clone();
    fresh["keys"] = Device::keys_json(&Ed25519Signer::generate().unwrap());
    let (s, _) = c
        .http(
            "POST",
            "/v1/factory/devices",
            Some(&jig),
            Some(fresh.clone()),
        )
        .await;
    assert_eq!(s, 409, "re-provisioning needs the factory reset");
    let v = c.ok(
        &jig,
        &[
            "factory",
            "reset",
            "--fleet",
            "home",
            &dev.id,
            "--reason",
            "refurbished",
        ],
    );
    assert_eq!(v["retired_hardware_id"], "uid:life-0001");
    let (s, v) = c
        .http("POST", "/v1/factory/devices", Some(&jig), Some(fresh))
        .await;
    assert_eq!(s, 201, "{v}");
    assert_ne!(v["id"].as_str().unwrap(), dev.id);
    let fresh_id = v["id"].as_str().unwrap().to_owned();

    // The key directory published the revocation; it verifies under the
    // directory's key, and the earlier records are rollbacks now.
    let (_, dk) = c.http("GET", "/v1/directory", None, None).await;
    let dir_pk = B64.decode(dk["public_key"].as_str().unwrap()).unwrap();
    let (s, rec) = c
        .http("GET", &format!("/v1/directory/{}", dev.id), None, None)
        .await;
    assert_eq!((s, rec["revoked"].as_bool()), (200, Some(true)), "{rec}");
    let record = B64.decode(rec["record"].as_str().unwrap()).unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        .try_into()
        .unwrap();
    let verdict = fleetkey_crypto::record::verify(
        &record,
        fleetkey_crypto::cwt::IssuerPublicKey::Composite(&dir_pk),
        fleetkey_crypto::record::Freshness {
            now,
            max_age_secs: fleetkey_crypto::record::DEFAULT_MAX_AGE_SECS,
            last_sequence: Some(2),
        },
    );
    assert_eq!(
        verdict.unwrap_err(),
        fleetkey_crypto::Error::RecordRevoked(3),
        "onboarding (1), rotation (2), revocation (3)"
    );

    // The neighbour's unused claim code expires.
    tokio::time::sleep(short_expires.saturating_duration_since(Instant::now())).await;
    let err = c.refused(
        &installer,
        &["devices", "claim", &short_code, "--by", "site:late"],
    );
    assert!(err.contains("expired"), "{err}");

    // Through the server: fleets listed by what the token holds, devices by
    // state, and a device that never comes back finished without its receipt.
    let names = |v: &Value| -> Vec<String> {
        v["fleets"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| f["name"].as_str().unwrap().to_owned())
            .collect()
    };
    assert_eq!(names(&c.ok(&admin, &["fleets", "list"])), ["away", "home"]);
    assert_eq!(names(&c.ok(&ops, &["fleets", "list"])), ["home"]);
    let sealer = token("seal:x");
    let err = c.refused(&sealer, &["fleets", "list"]);
    assert!(err.contains("fleets:manage"), "{err}");
    let listed = c.ok(
        &ops,
        &[
            "devices",
            "list",
            "--fleet",
            "home",
            "--state",
            "manufactured",
        ],
    );
    let ids = |v: &Value| -> Vec<String> {
        v["devices"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| d["id"].as_str().unwrap().to_owned())
            .collect()
    };
    assert!(ids(&listed).contains(&fresh_id), "{listed}");
    assert!(
        listed["devices"]
            .as_array()
            .unwrap()
            .iter()
            .all(|d| d["state"] == "manufactured")
    );
    let v = c.ok(
        &ops,
        &[
            "devices",
            "decommission",
            "--fleet",
            "home",
            &fresh_id,
            "--complete",
            "--reason",
            "lost in transit",
        ],
    );
    assert_eq!(v["state"], "decommissioned");
    let gone = c.ok(
        &ops,
        &[
            "devices",
            "list",
            "--fleet",
            "home",
            "--state",
            "decommissioned",
        ],
    );
    assert!(
        ids(&gone).contains(&fresh_id) && ids(&gone).contains(&dev.id),
        "{gone}"
    );
    let missing = c.cli(&ops, &["devices", "show", "--fleet", "home", "dev_0000"]);
    assert_eq!(missing.status.code(), Some(4), "not found");

    // The audit log tells the whole story, in order.
    let (_, v) = c
        .http("GET", "/v1/audit?limit=1000", Some(&admin), None)
        .await;
    let actions: Vec<&str> = v["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    let story = [
        "device.provision",
        "device.onboard",
        "device.claim",
        "device.state",
        "device.config",
        "device.rotation_requested",
        "device.rotation_proposed",
        "device.rotated",
        "device.decommission",
        "device.wiped",
        "device.factory_reset",
        "device.decommission_complete",
    ];
    let mut at = 0;
    for want in story {
        at += actions[at..]
            .iter()
            .position(|a| *a == want)
            .unwrap_or_else(|| panic!("{want} after {at} in {actions:?}"));
    }
    assert_eq!(c.server.unwrap().stop().code(), Some(0));
}
