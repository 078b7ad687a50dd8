//! Operating a fleet from the command line (#20): paging through more than
//! 1,000 devices, filters, suspend and resume, decommissioning a device that
//! never comes back, the output switch, completions, the manual page and the
//! configuration file commands, and the data directory's mode.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use predicates::prelude::*;
use serde_json::Value;

mod common;
use common::admin::Admin;

#[test]
fn every_device_of_a_large_fleet_is_reachable_page_by_page() {
    let l = Admin::new();
    l.stdout(&["fleets", "create", "big"]);
    // The jig prints each new device: JSON lines with --format json.
    let made = l.stdout(&[
        "factory",
        "provision",
        "--fleet",
        "big",
        "--count",
        "1050",
        "--format",
        "json",
    ]);
    let made: Vec<Value> = made
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    assert_eq!(made.len(), 1050);
    assert!(made.iter().all(|d| d["state"] == "manufactured"
        && d["fleet"] == "big"
        && d["id"].as_str().unwrap().starts_with("dev_")));

    // One page: at most 1,000, and the cursor to go on.
    let page = l.json(&["devices", "list", "--fleet", "big", "--limit", "1000"]);
    assert_eq!(page["devices"].as_array().unwrap().len(), 1000);
    let cursor = page["next_after"].as_str().unwrap().to_owned();
    let rest = l.json(&[
        "devices", "list", "--fleet", "big", "--limit", "1000", "--after", &cursor,
    ]);
    assert_eq!(rest["devices"].as_array().unwrap().len(), 50);
    assert!(rest["next_after"].is_null());
    // A table page says where the next one starts.
    l.cmd()
        .args(["devices", "list", "--fleet", "big", "--limit", "10"])
        .assert()
        .success()
        .stdout(predicate::str::contains("HARDWARE ID"))
        .stderr(predicate::str::contains("--after dev_"));

    // --all streams every page: every device once, by id.
    let all = l.stdout(&[
        "devices", "list", "--fleet", "big", "--all", "--limit", "300", "--format", "json",
    ]);
    let ids: Vec<String> = all
        .lines()
        .map(|line| {
            let v: Value = serde_json::from_str(line).unwrap();
            v["id"].as_str().unwrap().to_owned()
        })
        .collect();
    assert_eq!(ids.len(), 1050);
    let mut sorted = ids.clone();
    sorted.sort();
    sorted.dedup();
    assert_eq!(sorted, ids, "every device once, in id order");
    let mut expected: Vec<String> = made
        .iter()
        .map(|d| d["id"].as_str().unwrap().to_owned())
        .collect();
    expected.sort();
    assert_eq!(ids, expected);
    let table = l.stdout(&[
        "devices", "list", "--fleet", "big", "--all", "--limit", "400",
    ]);
    assert_eq!(
        table.lines().count(),
        1051,
        "one header and a row per device"
    );

    // Filters: by state and by when the device was last heard from.
    let id = ids[7].clone();
    let v = l.json(&["devices", "suspend", "--fleet", "big", &id]);
    assert_eq!(v["state"], "suspended");
    let suspended = l.json(&["devices", "list", "--fleet", "big", "--state", "suspended"]);
    let list = suspended["devices"].as_array().unwrap();
    assert_eq!(list.len(), 1);
    assert_eq!(list[0]["id"], id.as_str());
    assert_eq!(list[0]["connected"], false);
    assert!(list[0]["last_seen"].is_null());
    // Never heard from: seen before any time, not after.
    let quiet = l.json(&[
        "devices",
        "list",
        "--fleet",
        "big",
        "--seen-before",
        "1h",
        "--limit",
        "5",
    ]);
    assert_eq!(quiet["devices"].as_array().unwrap().len(), 5);
    let recent = l.json(&[
        "devices",
        "list",
        "--fleet",
        "big",
        "--seen-after",
        "2026-01-01T00:00:00Z",
    ]);
    assert!(recent["devices"].as_array().unwrap().is_empty());
    l.cmd()
        .args([
            "devices",
            "list",
            "--fleet",
            "big",
            "--seen-after",
            "yesterday",
        ])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("2026-12-01T00:00:00Z"));
    l.cmd()
        .args(["devices", "list", "--fleet", "big", "--limit", "1001"])
        .assert()
        .code(2);
    let v = l.json(&["devices", "resume", "--fleet", "big", &id]);
    assert_eq!(v["state"], "active");

    // Fleets are listed too.
    l.stdout(&["fleets", "create", "small"]);
    let fleets = l.json(&["fleets", "list"]);
    let names: Vec<&str> = fleets["fleets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["big", "small"]);
    // Times are RFC 3339 in JSON and in tables.
    assert!(
        fleets["fleets"][0]["created_at"]
            .as_str()
            .unwrap()
            .ends_with('Z')
    );
    l.cmd()
        .args(["fleets", "list", "--limit", "1"])
        .assert()
        .success()
        .stdout(predicate::str::contains("big").and(predicate::str::contains("small").not()))
        .stderr(predicate::str::contains("--after big"));
}

#[test]
fn a_device_that_never_returns_finishes_decommissioning_unconfirmed() {
    let l = Admin::new();
    l.stdout(&["fleets", "create", "f"]);
    let made = l.stdout(&[
        "factory",
        "provision",
        "--fleet",
        "f",
        "--count",
        "2",
        "--format",
        "json",
    ]);
    let ids: Vec<String> = made
        .lines()
        .map(|line| {
            let v: Value = serde_json::from_str(line).unwrap();
            v["id"].as_str().unwrap().to_owned()
        })
        .collect();
    // Straight to decommissioned, the wipe recorded as not confirmed.
    let v = l.json(&[
        "devices",
        "decommission",
        "--fleet",
        "f",
        &ids[0],
        "--complete",
        "--reason",
        "lost at sea",
    ]);
    assert_eq!(v["state"], "decommissioned");
    let cmds = l.json(&["devices", "commands", "--fleet", "f", &ids[0]]);
    let wipe = &cmds["commands"][0];
    assert_eq!(
        (wipe["kind"].as_str(), wipe["state"].as_str()),
        (Some("wipe"), Some("cancelled"))
    );
    // Started first, completed later: the same end.
    let v = l.json(&[
        "devices",
        "decommission",
        "--fleet",
        "f",
        &ids[1],
        "--reason",
        "retired",
    ]);
    assert_eq!(v["state"], "decommissioning");
    let v = l.json(&[
        "devices",
        "decommission",
        "--fleet",
        "f",
        &ids[1],
        "--complete",
        "--reason",
        "never answered",
    ]);
    assert_eq!(v["state"], "decommissioned");
    // Nothing more to complete; the hardware id can now be retired.
    l.cmd()
        .args([
            "devices",
            "decommission",
            "--fleet",
            "f",
            &ids[1],
            "--complete",
            "--reason",
            "again",
        ])
        .assert()
        .code(1)
        .stderr(predicate::str::contains("decommissioned"));
    let v = l.json(&[
        "factory",
        "reset",
        "--fleet",
        "f",
        &ids[0],
        "--reason",
        "refurbished",
    ]);
    assert!(v["hardware_id"].as_str().unwrap().starts_with("retired:"));
    // The audit log says the device did not confirm its wipe.
    let audit = l.stdout(&["audit", "export"]);
    let complete: Vec<Value> = audit
        .lines()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .map(|line| line["entry"].clone())
        .filter(|e| e["action"] == "device.decommission_complete")
        .collect();
    assert_eq!(complete.len(), 2);
    let details = match &complete[0]["details"] {
        Value::String(text) => serde_json::from_str(text).unwrap(),
        other => other.clone(),
    };
    assert_eq!(details["wipe_confirmed"], false);
    assert_eq!(details["reason"], "lost at sea");
    // The data directory is the owner's alone.
    use std::os::unix::fs::PermissionsExt as _;
    let mode = std::fs::metadata(l.dir.path().join("data"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o077, 0, "data directory mode {mode:o}");
}

#[test]
fn completions_manual_page_and_configuration_files() {
    let l = Admin::new();
    let bash = l.stdout(&["completions", "bash"]);
    assert!(bash.contains("fleetkey") && bash.contains("devices"));
    if let Ok(out) = std::process::Command::new("bash")
        .arg("-n")
        .arg("-c")
        .arg(&bash)
        .output()
    {
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    for shell in ["zsh", "fish"] {
        assert!(l.stdout(&["completions", shell]).contains("fleetkey"));
    }
    let man = l.stdout(&["man"]);
    assert!(
        man.starts_with(".ie") || man.contains(".TH fleetkey"),
        "{man:.200}"
    );
    assert!(man.contains("FLEETKEY_ADDR"));
    let pages = l.dir.path().join("man");
    l.cmd()
        .args(["man", "--out-dir"])
        .arg(&pages)
        .assert()
        .success();
    assert!(pages.join("fleetkey-devices-list.1").exists());
    // --help names the server variables and the scope families.
    l.cmd().arg("--help").assert().success().stdout(
        predicate::str::contains("FLEETKEY_ADDR")
            .and(predicate::str::contains("FLEETKEY_TOKEN"))
            .and(predicate::str::contains("operate:"))
            .and(predicate::str::contains("4 not found")),
    );

    // The defaults file is a valid configuration; a bad key is named with its line.
    let defaults = l.stdout(&["config", "defaults"]);
    let file = l.dir.path().join("fleetkey.toml");
    std::fs::write(&file, &defaults).unwrap();
    l.cmd()
        .args(["config", "check"])
        .arg(&file)
        .assert()
        .success()
        .stderr(predicate::str::contains("is valid"));
    std::fs::write(
        &file,
        "listen = \"127.0.0.1:9000\"\n\n[rate_limit]\nburst = 3\n",
    )
    .unwrap();
    l.cmd()
        .args(["config", "check"])
        .arg(&file)
        .assert()
        .code(2)
        .stderr(predicate::str::contains("line 4 (burst)"));
    l.cmd()
        .args(["config", "check", "/nonexistent/fleetkey.toml"])
        .assert()
        .code(3);
}
