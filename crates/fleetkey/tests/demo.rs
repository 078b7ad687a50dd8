//! `fleetkey demo`: in process with a small fleet, against a running
//! `fleetkey serve` through FLEETKEY_ADDR, and the refusals (no devices, a token
//! without the scopes the demo needs: it runs, reports the failure, exits non-zero).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use assert_cmd::Command;
use common::Server;
use predicates::prelude::*;

fn demo() -> Command {
    let mut c = Command::cargo_bin("fleetkey").unwrap();
    c.arg("demo")
        .env_remove("FLEETKEY_ADDR")
        .env_remove("FLEETKEY_TOKEN")
        .timeout(std::time::Duration::from_secs(120));
    c
}

#[test]
fn the_demo_runs_in_process_and_every_check_holds() {
    demo()
        .args(["--full", "5", "--constrained", "3", "--telemetry", "2"])
        .assert()
        .success()
        .stdout(predicate::str::contains("checks: 16/16 held"))
        .stdout(predicate::str::contains(
            "audit chain                    verified",
        ))
        .stdout(predicate::str::contains("every check held"));
}

#[test]
fn the_demo_runs_against_a_server_at_fleetkey_addr() {
    let dir = tempfile::TempDir::new().unwrap();
    let server = Server::start(dir.path());
    let token = Server::admin_token(dir.path());
    for _ in 0..2 {
        // Twice against the same server: each run makes its own fleet and keyring.
        demo()
            .args(["--full", "4", "--constrained", "2", "--telemetry", "1"])
            .env("FLEETKEY_ADDR", server.addr())
            .env("FLEETKEY_TOKEN", &token)
            .env(
                "FLEETKEY_DEVICE_ADDR",
                format!("127.0.0.1:{}", server.device_port),
            )
            .env(
                "FLEETKEY_DEVICE_UDP_ADDR",
                format!("127.0.0.1:{}", server.udp_port),
            )
            .assert()
            .success()
            .stdout(predicate::str::contains("every check held"));
    }
    // The CLI's simulated jig against the same server: constrained devices with
    // their factory secrets sealed to the server's factory recipient.
    let cli = |args: &[&str]| {
        Command::cargo_bin("fleetkey")
            .unwrap()
            .args(args)
            .env("FLEETKEY_ADDR", server.addr())
            .env("FLEETKEY_TOKEN", &token)
            .assert()
            .success()
    };
    cli(&["fleets", "create", "jig"]);
    cli(&[
        "factory",
        "provision",
        "--fleet",
        "jig",
        "--count",
        "4",
        "--profile",
        "constrained",
    ])
    .stderr(predicate::str::contains("provisioned 4 devices"));
    cli(&["devices", "list", "--fleet", "jig", "--json"])
        .stdout(predicate::str::contains("\"profile\": \"constrained\""));
    // A token that may read the audit log but not run a fleet: the demo says so and fails.
    let out = Command::cargo_bin("fleetkey")
        .unwrap()
        .args([
            "tokens",
            "create",
            "--name",
            "reader",
            "--scope",
            "audit:read",
        ])
        .env("FLEETKEY_ADDR", server.addr())
        .env("FLEETKEY_TOKEN", &token)
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let reader = String::from_utf8(out.stdout).unwrap();
    let reader = reader
        .split_whitespace()
        .find(|w| w.starts_with("fkt_"))
        .expect("a token secret in the output")
        .to_owned();
    demo()
        .env("FLEETKEY_ADDR", server.addr())
        .env("FLEETKEY_TOKEN", reader)
        .assert()
        .code(1)
        .stdout(predicate::str::contains("FAIL aborted"))
        .stdout(predicate::str::contains("403"))
        .stderr(predicate::str::contains("check(s) failed"));
    assert!(server.stop().success());
}

#[test]
fn the_demo_refuses_what_it_cannot_run() {
    demo()
        .args(["--full", "0", "--constrained", "0"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("at least one device"));
    demo()
        .env("FLEETKEY_ADDR", "http://127.0.0.1:1")
        .assert()
        .code(2)
        .stderr(predicate::str::contains("FLEETKEY_TOKEN is not"));
}
