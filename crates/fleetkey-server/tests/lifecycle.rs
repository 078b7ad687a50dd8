//! The device life after the factory, on the real store: configuration schemas
//! (defaults at the factory, validation with the failing path, versions and
//! declared migrations, dry runs that refuse a schema which would break a stored
//! config, reset, diffs in the audit log), credential rotation in three signed
//! steps, the rotation policy, decommissioning with a signed wipe command and
//! erasure of per-device secrets, and the factory reset.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use fleetkey_crypto::credential::{self, DeviceKeys, IssuerPublicKey, Role};
use fleetkey_crypto::ed25519::Ed25519Signer;
use fleetkey_crypto::x25519::X25519Secret;
use fleetkey_server::{
    Error,
    audit::{
        AuditEntry,
        verify::{ExportLine, Verdict, verify_export},
    },
    clock::ManualClock,
    custody::{
        Custody,
        local::{KekSource, LocalCustody},
    },
    fleet::{
        ConfigUpdate, FactoryRequest, FleetService,
        commands::{
            command_message, command_poll_message, rotation_confirm_message,
            rotation_request_message,
        },
        config::MigrationOp,
        onboarding_message, wipe_receipt_message,
    },
    keys::{KeyConfig, KeyService},
    store::{CommandKind, CommandState, DeviceState, Store},
};
use serde_json::json;
use std::sync::Arc;

const T0: i64 = 1_800_000_000;

struct Env {
    _dir: tempfile::TempDir,
    fleets: Arc<FleetService>,
    store: Arc<dyn Store>,
    keys: KeyService,
    custody: Arc<LocalCustody>,
    clock: Arc<ManualClock>,
}

async fn env() -> Env {
    let dir = tempfile::TempDir::new().unwrap();
    let store = common::test_store(dir.path()).await;
    let custody = Arc::new(
        LocalCustody::open(
            dir.path(),
            KekSource::Passphrase(zeroize::Zeroizing::new("pw".into())),
        )
        .await
        .unwrap(),
    );
    let clock = Arc::new(ManualClock::at(T0));
    let fleets = FleetService::new(store.clone(), custody.clone(), clock.clone());
    let keys = KeyService::open(
        store.clone(),
        custody.clone(),
        clock.clone(),
        KeyConfig::default(),
    )
    .await
    .unwrap();
    Env {
        _dir: dir,
        fleets,
        store,
        keys,
        custody,
        clock,
    }
}

/// The exported audit log: its lines and entries.
async fn audit(e: &Env) -> (Vec<String>, Vec<AuditEntry>) {
    let mut buf = Vec::new();
    e.keys.export_audit(&mut buf).await.unwrap();
    let lines: Vec<String> = String::from_utf8(buf)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect();
    let entries = lines
        .iter()
        .filter_map(|l| match serde_json::from_str(l) {
            Ok(ExportLine::Entry(e)) => Some(e),
            _ => None,
        })
        .collect();
    (lines, entries)
}

/// A simulated device: its private keys never leave this struct.
struct Device {
    id: String,
    sign: Ed25519Signer,
    birth: Vec<u8>,
}

fn keys_of(sign: &Ed25519Signer) -> DeviceKeys {
    DeviceKeys {
        x25519: X25519Secret::generate().unwrap().public_key().unwrap(),
        ed25519: sign.public_key(),
        ml_kem_768: None,
        ml_dsa_65: None,
    }
}

async fn provision(e: &Env, fleet: &str, hw: &str) -> Device {
    let sign = Ed25519Signer::generate().unwrap();
    let p = e
        .fleets
        .registry
        .provision(
            "jig",
            FactoryRequest {
                fleet: fleet.into(),
                hardware_id: hw.into(),
                model: "sensor".into(),
                batch: "b1".into(),
                station: "jig-1".into(),
                keys: keys_of(&sign),
                test_results: json!({}),
            },
        )
        .await
        .unwrap();
    Device {
        id: p.device.id,
        sign,
        birth: p.device.birth_credential,
    }
}

async fn onboard(e: &Env, d: &Device) -> Vec<u8> {
    let c = e.fleets.onboarding.challenge(&d.id).await.unwrap();
    let sig = d
        .sign
        .sign(&onboarding_message(&d.id, &c.nonce, c.issued_at));
    let (op, _) = e
        .fleets
        .onboarding
        .onboard(&d.birth, &c.nonce, &sig)
        .await
        .unwrap();
    e.fleets
        .onboarding
        .transition("ops", &d.id, DeviceState::Active)
        .await
        .unwrap();
    op
}

fn schema_v1() -> serde_json::Value {
    json!({
        "type": "object",
        "properties": {
            "interval_s": { "type": "integer", "minimum": 1, "maximum": 86400, "default": 60 },
            "server": { "type": "object", "properties": {
                "host": { "type": "string", "maxLength": 253, "default": "ingest.local" },
                "port": { "type": "integer", "minimum": 1, "maximum": 65535, "default": 8401 }
            }}
        }
    })
}

#[tokio::test]
async fn configs_start_at_the_defaults_are_validated_versioned_and_audited() {
    let e = env().await;
    e.fleets
        .registry
        .create_fleet("ops", &"cfg".parse().unwrap(), None)
        .await
        .unwrap();
    // Before a schema: an empty config, and writes say what to do.
    let early = provision(&e, "cfg", "hw-early").await;
    assert_eq!(
        e.fleets.registry.config(&early.id).await.unwrap().config,
        json!({})
    );
    assert!(matches!(
        e.fleets
            .registry
            .set_config("ops", &early.id, ConfigUpdate::Merge(json!({"a": 1})), None)
            .await,
        Err(Error::NoConfigSchema(_))
    ));
    let info = e
        .fleets
        .registry
        .set_schema("ops", "cfg", schema_v1(), vec![])
        .await
        .unwrap();
    assert_eq!(info.version, 1);
    // The factory materialises the defaults; an older device reads them too.
    let d = provision(&e, "cfg", "hw-1").await;
    let c = e.fleets.registry.config(&d.id).await.unwrap();
    assert_eq!(
        (c.schema_version, c.revision),
        (1, 1),
        "stored at the factory"
    );
    assert_eq!(c.config, info.defaults);
    assert_eq!(
        e.fleets.registry.config(&early.id).await.unwrap().config,
        info.defaults
    );

    // A valid change: next revision, diff in the audit log, a signed command queued.
    let c = e
        .fleets
        .registry
        .set_config(
            "ops",
            &d.id,
            ConfigUpdate::Merge(json!({"server": {"port": 9000}})),
            Some(1),
        )
        .await
        .unwrap();
    assert_eq!(c.revision, 2);
    assert_eq!(c.config["server"]["port"], 9000);
    let cmds = e
        .fleets
        .commands
        .device_commands(&d.id, true)
        .await
        .unwrap();
    assert_eq!(cmds.len(), 1);
    assert_eq!(cmds[0].kind, CommandKind::UpdateConfig);
    let fleet_pk = hex::decode(
        e.fleets
            .registry
            .fleet("cfg")
            .await
            .unwrap()
            .issuer_public_key,
    )
    .unwrap();
    fleetkey_crypto::ed25519::verify(
        &fleet_pk,
        &command_message(
            &cmds[0].id,
            &d.id,
            cmds[0].kind,
            cmds[0].created_at,
            &cmds[0].payload,
        ),
        &cmds[0].signature,
    )
    .unwrap();
    let payload: serde_json::Value = serde_json::from_str(&cmds[0].payload).unwrap();
    assert_eq!(payload["config"], c.config);
    // A second change supersedes the queued update.
    e.fleets
        .registry
        .set_config(
            "ops",
            &d.id,
            ConfigUpdate::Merge(json!({"interval_s": 30})),
            None,
        )
        .await
        .unwrap();
    let cmds = e
        .fleets
        .commands
        .device_commands(&d.id, false)
        .await
        .unwrap();
    assert_eq!(
        cmds.iter().map(|c| c.state).collect::<Vec<_>>(),
        [CommandState::Cancelled, CommandState::Pending]
    );

    // Refusals: invalid, incomplete, unknown field, stale revision.
    let path_of = |r: Result<_, Error>| match r {
        Err(Error::InvalidConfig { path, .. }) => path,
        other => panic!("{other:?}"),
    };
    assert_eq!(
        path_of(
            e.fleets
                .registry
                .set_config(
                    "ops",
                    &d.id,
                    ConfigUpdate::Merge(json!({"server": {"port": 70000}})),
                    None
                )
                .await
        ),
        "/server/port"
    );
    assert_eq!(
        path_of(
            e.fleets
                .registry
                .set_config(
                    "ops",
                    &d.id,
                    ConfigUpdate::Replace(json!({"interval_s": 5})),
                    None
                )
                .await
        ),
        "/"
    );
    assert_eq!(
        path_of(
            e.fleets
                .registry
                .set_config(
                    "ops",
                    &d.id,
                    ConfigUpdate::Merge(json!({"server": {"hots": "x"}})),
                    None
                )
                .await
        ),
        "/server"
    );
    assert!(matches!(
        e.fleets
            .registry
            .set_config(
                "ops",
                &d.id,
                ConfigUpdate::Merge(json!({"interval_s": 7})),
                Some(1)
            )
            .await,
        Err(Error::ConfigRevision {
            expected: 1,
            current: 3
        })
    ));
    // Reset to the factory defaults.
    let c = e.fleets.registry.reset_config("ops", &d.id).await.unwrap();
    assert_eq!((c.revision, &c.config), (4, &info.defaults));

    let (_, entries) = audit(&e).await;
    let change = entries
        .iter()
        .find(|x| x.action == "device.config")
        .unwrap();
    let details: serde_json::Value = serde_json::from_str(&change.details).unwrap();
    assert_eq!(
        details["changes"],
        json!([{"path": "/server/port", "from": 8401, "to": 9000}])
    );
    assert_eq!(change.actor, "ops");
    assert!(entries.iter().any(|x| x.action == "device.config_reset"));
}

#[tokio::test]
async fn schema_versions_migrate_configs_on_read_and_in_batches_and_refuse_breaking_schemas() {
    let e = env().await;
    e.fleets
        .registry
        .create_fleet("ops", &"mig".parse().unwrap(), None)
        .await
        .unwrap();
    e.fleets
        .registry
        .set_schema("ops", "mig", schema_v1(), vec![])
        .await
        .unwrap();
    let a = provision(&e, "mig", "hw-a").await;
    let b = provision(&e, "mig", "hw-b").await;
    e.fleets
        .registry
        .set_config(
            "ops",
            &a.id,
            ConfigUpdate::Merge(json!({"interval_s": 900})),
            None,
        )
        .await
        .unwrap();
    // v2 renames a field and adds one; a schema that would break a stored config is
    // refused before anything changes.
    let v2 = json!({
        "type": "object",
        "properties": {
            "period_s": { "type": "integer", "minimum": 1, "maximum": 600, "default": 60 },
            "server": { "type": "object", "properties": {
                "host": { "type": "string", "default": "ingest.local" },
                "port": { "type": "integer", "default": 8401 }
            }},
            "led": { "type": "boolean", "default": true }
        }
    });
    let rename = vec![MigrationOp::Rename {
        from: "/interval_s".into(),
        to: "/period_s".into(),
    }];
    let err = e
        .fleets
        .registry
        .set_schema("ops", "mig", v2.clone(), rename.clone())
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains(&a.id) && err.contains("/period_s"), "{err}");
    assert_eq!(e.fleets.registry.schema("mig").await.unwrap().version, 1);
    // With a maximum that fits, v2 is accepted.
    let mut v2 = v2;
    v2["properties"]["period_s"]["maximum"] = json!(3600);
    e.fleets
        .registry
        .set_schema("ops", "mig", v2, rename)
        .await
        .unwrap();
    // Migrated on read, stored copy untouched until written.
    let c = e.fleets.registry.config(&a.id).await.unwrap();
    assert_eq!(c.migrated_from, Some(1));
    assert_eq!(c.config["period_s"], 900);
    assert_eq!(c.config["led"], true);
    assert!(c.config.get("interval_s").is_none());
    assert_eq!(
        e.store
            .device_config(&a.id)
            .await
            .unwrap()
            .unwrap()
            .schema_version,
        1
    );
    // The batch migration writes both, with the diff audited.
    let r = e
        .fleets
        .registry
        .migrate_configs("ops", "mig")
        .await
        .unwrap();
    assert_eq!((r.migrated, r.failed.len()), (2, 0));
    for d in [&a, &b] {
        let s = e.store.device_config(&d.id).await.unwrap().unwrap();
        assert_eq!(s.schema_version, 2);
        assert_eq!(
            e.fleets.registry.config(&d.id).await.unwrap().migrated_from,
            None
        );
    }
    let again = e
        .fleets
        .registry
        .migrate_configs("ops", "mig")
        .await
        .unwrap();
    assert_eq!(again.migrated, 0);
    let (_, entries) = audit(&e).await;
    assert_eq!(
        entries
            .iter()
            .filter(|x| x.action == "device.config_migrate")
            .count(),
        2
    );
    // Version numbers only go up by one; a first version has nothing to migrate from.
    e.fleets
        .registry
        .create_fleet("ops", &"other".parse().unwrap(), None)
        .await
        .unwrap();
    assert!(
        e.fleets
            .registry
            .set_schema(
                "ops",
                "other",
                schema_v1(),
                vec![MigrationOp::Remove { path: "/x".into() }]
            )
            .await
            .is_err()
    );
}

#[tokio::test]
async fn credential_rotation_takes_three_signed_steps_and_revokes_the_old_credential_last() {
    let e = env().await;
    let fleet = e
        .fleets
        .registry
        .create_fleet("ops", &"rot".parse().unwrap(), None)
        .await
        .unwrap();
    let fleet_pk = hex::decode(fleet.issuer_public_key).unwrap();
    let d = provision(&e, "rot", "hw-rot").await;
    let old_op = onboard(&e, &d).await;
    e.fleets
        .onboarding
        .check_credential(&old_op, Role::Operational)
        .await
        .unwrap();
    // A rotation cannot be proposed before it is requested.
    let cmd = e
        .fleets
        .commands
        .request_rotation("ops", &d.id, "test")
        .await
        .unwrap();
    assert_eq!(
        e.fleets.registry.device(&d.id).await.unwrap().state,
        DeviceState::Rotating
    );
    assert!(matches!(
        e.fleets
            .commands
            .request_rotation("ops", &d.id, "again")
            .await,
        Err(Error::IllegalTransition { .. })
    ));
    // The device sees the command with a fresh signed poll.
    let at = T0;
    let polled = e
        .fleets
        .commands
        .poll_commands(&d.id, at, &d.sign.sign(&command_poll_message(&d.id, at)))
        .await
        .unwrap();
    assert_eq!(polled.len(), 1);
    assert_eq!(polled[0].id, cmd.id);
    let stale = at - 120;
    assert!(matches!(
        e.fleets
            .commands
            .poll_commands(
                &d.id,
                stale,
                &d.sign.sign(&command_poll_message(&d.id, stale))
            )
            .await,
        Err(Error::CredentialRefused(_))
    ));

    let new_sign = Ed25519Signer::generate().unwrap();
    let new_keys = keys_of(&new_sign);
    let request = rotation_request_message(&d.id, &cmd.id, &new_keys);
    // Signed by anything but the current key: refused.
    assert!(matches!(
        e.fleets
            .commands
            .propose_rotation(&d.id, &cmd.id, new_keys.clone(), &new_sign.sign(&request))
            .await,
        Err(Error::CredentialRefused(_))
    ));
    // Reusing the current keys is not a rotation.
    let same = DeviceKeys {
        ed25519: d.sign.public_key(),
        ..new_keys.clone()
    };
    assert!(
        e.fleets
            .commands
            .propose_rotation(
                &d.id,
                &cmd.id,
                same.clone(),
                &d.sign
                    .sign(&rotation_request_message(&d.id, &cmd.id, &same))
            )
            .await
            .is_err()
    );
    let (new_op, new_id) = e
        .fleets
        .commands
        .propose_rotation(&d.id, &cmd.id, new_keys.clone(), &d.sign.sign(&request))
        .await
        .unwrap();
    let claims = credential::verify(&new_op, IssuerPublicKey::Ed25519(&fleet_pk), T0).unwrap();
    assert_eq!(claims.keys, new_keys);
    assert_eq!(claims.role, Role::Operational);
    // Until confirmed, the old credential works and the new one does not.
    e.fleets
        .onboarding
        .check_credential(&old_op, Role::Operational)
        .await
        .unwrap();
    assert!(
        e.fleets
            .onboarding
            .check_credential(&new_op, Role::Operational)
            .await
            .is_err()
    );
    // A confirmation signed by the old key is refused.
    let confirm = rotation_confirm_message(&d.id, &cmd.id, &new_id);
    assert!(matches!(
        e.fleets
            .commands
            .confirm_rotation(&d.id, &cmd.id, &d.sign.sign(&confirm))
            .await,
        Err(Error::CredentialRefused(_))
    ));
    let after = e
        .fleets
        .commands
        .confirm_rotation(&d.id, &cmd.id, &new_sign.sign(&confirm))
        .await
        .unwrap();
    assert_eq!(after.state, DeviceState::Active);
    assert_eq!(after.ed25519, new_sign.public_key().to_vec());
    assert!(matches!(
        e.fleets
            .onboarding
            .check_credential(&old_op, Role::Operational)
            .await,
        Err(Error::CredentialRefused("revoked"))
    ));
    e.fleets
        .onboarding
        .check_credential(&new_op, Role::Operational)
        .await
        .unwrap();
    // The command is done; confirming again is refused.
    assert_eq!(
        e.store.command(&cmd.id).await.unwrap().unwrap().state,
        CommandState::Done
    );
    assert!(matches!(
        e.fleets
            .commands
            .confirm_rotation(&d.id, &cmd.id, &new_sign.sign(&confirm))
            .await,
        Err(Error::CommandState(_))
    ));
    // Another device cannot use this command.
    let other = provision(&e, "rot", "hw-other").await;
    assert!(matches!(
        e.fleets
            .commands
            .confirm_rotation(&other.id, &cmd.id, &new_sign.sign(&confirm))
            .await,
        Err(Error::CommandNotFound(_))
    ));
    // The audit log has every step, and the chain verifies.
    let (lines, entries) = audit(&e).await;
    for want in [
        "device.rotation_requested",
        "device.rotation_proposed",
        "device.rotated",
    ] {
        assert!(entries.iter().any(|x| x.action == want), "{want}");
    }
    assert!(matches!(
        verify_export(&lines, &e.custody.public_key()),
        Verdict::Valid { .. }
    ));
}

#[tokio::test]
async fn the_rotation_policy_asks_devices_whose_credential_is_old() {
    let e = env().await;
    e.fleets
        .registry
        .create_fleet("ops", &"pol".parse().unwrap(), None)
        .await
        .unwrap();
    let d = provision(&e, "pol", "hw-pol").await;
    onboard(&e, &d).await;
    assert!(
        e.fleets
            .commands
            .set_rotation_policy("ops", "pol", Some(60))
            .await
            .is_err(),
        "too short"
    );
    let f = e
        .fleets
        .commands
        .set_rotation_policy("ops", "pol", Some(90 * 86_400))
        .await
        .unwrap();
    assert_eq!(f.credential_rotation_secs, Some(90 * 86_400));
    assert_eq!(
        e.fleets
            .commands
            .run_rotation_policy("scheduler")
            .await
            .unwrap(),
        0
    );
    e.clock.advance(91 * 86_400);
    assert_eq!(
        e.fleets
            .commands
            .run_rotation_policy("scheduler")
            .await
            .unwrap(),
        1
    );
    assert_eq!(
        e.fleets.registry.device(&d.id).await.unwrap().state,
        DeviceState::Rotating
    );
    // Asked once: an open rotation is not asked again.
    assert_eq!(
        e.fleets
            .commands
            .run_rotation_policy("scheduler")
            .await
            .unwrap(),
        0
    );
}

#[tokio::test]
async fn decommissioning_queues_a_signed_wipe_erases_secrets_and_allows_only_a_factory_reset() {
    let e = env().await;
    e.fleets
        .registry
        .create_fleet("ops", &"dec".parse().unwrap(), None)
        .await
        .unwrap();
    e.fleets
        .registry
        .set_schema("ops", "dec", schema_v1(), vec![])
        .await
        .unwrap();
    let d = provision(&e, "dec", "hw-dec").await;
    onboard(&e, &d).await;
    e.fleets
        .onboarding
        .create_claim_code("ops", &d.id, 3600)
        .await
        .unwrap();
    let rot = e
        .fleets
        .commands
        .request_rotation("ops", &d.id, "before decommission")
        .await
        .unwrap();
    e.fleets
        .onboarding
        .decommission("ops", &d.id, "returned")
        .await
        .unwrap();
    let cmds = e
        .fleets
        .commands
        .device_commands(&d.id, false)
        .await
        .unwrap();
    let wipe = cmds.iter().find(|c| c.kind == CommandKind::Wipe).unwrap();
    assert_eq!(wipe.state, CommandState::Pending);
    assert_eq!(
        cmds.iter().find(|c| c.id == rot.id).unwrap().state,
        CommandState::Cancelled,
        "a decommissioned device has nothing left to rotate"
    );
    // Configuration of a device being decommissioned is refused.
    assert!(matches!(
        e.fleets.registry.reset_config("ops", &d.id).await,
        Err(Error::IllegalTransition { .. })
    ));
    // The hardware id cannot be provisioned again, and no reset before the wipe.
    assert!(matches!(
        e.fleets
            .registry
            .provision(
                "jig",
                FactoryRequest {
                    fleet: "dec".into(),
                    hardware_id: "hw-dec".into(),
                    model: "m".into(),
                    batch: "b".into(),
                    station: "s".into(),
                    keys: keys_of(&Ed25519Signer::generate().unwrap()),
                    test_results: json!({}),
                }
            )
            .await,
        Err(Error::DeviceExists(_))
    ));
    assert!(matches!(
        e.fleets
            .commands
            .factory_reset("ops", &d.id, "refurbish")
            .await,
        Err(Error::IllegalTransition { .. })
    ));
    e.fleets
        .onboarding
        .confirm_wipe(&d.id, T0, &d.sign.sign(&wipe_receipt_message(&d.id, T0)))
        .await
        .unwrap();
    assert_eq!(
        e.store.command(&wipe.id).await.unwrap().unwrap().state,
        CommandState::Done
    );
    assert!(
        e.store.device_config(&d.id).await.unwrap().is_none(),
        "config erased"
    );
    assert!(
        e.fleets
            .commands
            .device_commands(&d.id, true)
            .await
            .unwrap()
            .is_empty()
    );
    // Factory reset retires the hardware id; the same hardware provisions anew.
    let r = e
        .fleets
        .commands
        .factory_reset("ops", &d.id, "refurbish")
        .await
        .unwrap();
    assert_eq!(r.retired_hardware_id.as_deref(), Some("hw-dec"));
    assert_eq!(r.hardware_id, format!("retired:{}", d.id));
    let again = provision(&e, "dec", "hw-dec").await;
    assert_ne!(again.id, d.id);
}

#[tokio::test]
async fn the_directory_publishes_onboarding_rotation_and_revocation_with_rising_sequences() {
    use fleetkey_crypto::cwt::IssuerPublicKey;
    use fleetkey_crypto::record::{self, Freshness};
    let e = env().await;
    e.fleets
        .registry
        .create_fleet("ops", &"dir".parse().unwrap(), None)
        .await
        .unwrap();
    let d = provision(&e, "dir", "hw-dir").await;
    assert!(matches!(
        e.fleets.directory().record(&d.id).await,
        Err(Error::IdentityNotFound(_))
    ));
    onboard(&e, &d).await;
    let pk = e.fleets.directory().public_key();
    let key = IssuerPublicKey::Composite(&pk);
    let check = |token: &[u8], last| {
        record::verify(
            token,
            key,
            Freshness {
                now: e.clock.now(),
                max_age_secs: record::DEFAULT_MAX_AGE_SECS,
                last_sequence: last,
            },
        )
    };
    use fleetkey_server::clock::Clock;
    let first = e.fleets.directory().record(&d.id).await.unwrap();
    let r1 = check(&first, None).unwrap();
    assert_eq!((r1.sequence, r1.keys.ed25519), (1, d.sign.public_key()));
    // Rotation publishes the new keys as sequence 2; the old record is now a rollback.
    let cmd = e
        .fleets
        .commands
        .request_rotation("ops", &d.id, "test")
        .await
        .unwrap();
    let new_sign = Ed25519Signer::generate().unwrap();
    let nk = keys_of(&new_sign);
    let (_, cid) = e
        .fleets
        .commands
        .propose_rotation(
            &d.id,
            &cmd.id,
            nk.clone(),
            &d.sign.sign(&rotation_request_message(&d.id, &cmd.id, &nk)),
        )
        .await
        .unwrap();
    e.fleets
        .commands
        .confirm_rotation(
            &d.id,
            &cmd.id,
            &new_sign.sign(&rotation_confirm_message(&d.id, &cmd.id, &cid)),
        )
        .await
        .unwrap();
    let second = e.fleets.directory().record(&d.id).await.unwrap();
    let r2 = check(&second, Some(1)).unwrap();
    assert_eq!((r2.sequence, r2.keys), (2, nk.clone()));
    assert_eq!(
        check(&first, Some(2)).unwrap_err(),
        fleetkey_crypto::Error::Rollback
    );
    // The scheduler re-signs records before clients would find them stale.
    assert_eq!(
        e.fleets
            .directory()
            .refresh("scheduler", 100)
            .await
            .unwrap(),
        0
    );
    e.clock.advance(8 * 86_400);
    assert_eq!(
        e.fleets
            .directory()
            .refresh("scheduler", 100)
            .await
            .unwrap(),
        1
    );
    let r3 = check(&e.fleets.directory().record(&d.id).await.unwrap(), Some(2)).unwrap();
    assert_eq!((r3.sequence, r3.keys), (3, nk));
    // Decommissioning publishes the revocation in the same transaction.
    e.fleets
        .onboarding
        .decommission("ops", &d.id, "stolen")
        .await
        .unwrap();
    let revoked = e.fleets.directory().record(&d.id).await.unwrap();
    assert_eq!(
        check(&revoked, Some(3)).unwrap_err(),
        fleetkey_crypto::Error::RecordRevoked(4)
    );
    e.clock.advance(8 * 86_400);
    assert_eq!(
        e.fleets
            .directory()
            .refresh("scheduler", 100)
            .await
            .unwrap(),
        0,
        "revocations stay"
    );
    let (_, entries) = audit(&e).await;
    assert!(entries.iter().any(|x| x.action == "directory.refresh"));
}
