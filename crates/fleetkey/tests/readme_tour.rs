//! The README's tour, run as written: its `sh` block under "## A short tour",
//! with `fleetkey` on PATH, against a fresh `fleetkey serve` (only the port is
//! this test's). Also checks the access log the server wrote meanwhile.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
use common::Server;

/// The first `sh` block after the heading.
fn tour_block(readme: &str) -> String {
    let from = readme.find("## A short tour").expect("the tour heading");
    let rest = &readme[from..];
    let start = rest.find("```sh\n").expect("a sh block") + "```sh\n".len();
    let end = rest[start..].find("```").expect("the block's end");
    rest[start..start + end].to_owned()
}

#[test]
fn the_readme_tour_runs_as_written() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let readme = std::fs::read_to_string(root.join("README.md")).unwrap();
    let script = tour_block(&readme);
    assert!(script.contains("examples/thermostat-schema.json"));

    let dir = tempfile::TempDir::new().unwrap();
    // The tour runs from the repository: its examples, beside the data directory.
    std::fs::create_dir(dir.path().join("examples")).unwrap();
    for entry in std::fs::read_dir(root.join("examples")).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(
            entry.path(),
            dir.path().join("examples").join(entry.file_name()),
        )
        .unwrap();
    }
    let server = Server::start(dir.path());
    let script = script.replace("http://127.0.0.1:8400", &server.addr());
    let bin = assert_cmd::cargo::cargo_bin("fleetkey");
    let path = format!(
        "{}:{}",
        bin.parent().unwrap().display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let out = std::process::Command::new("bash")
        .args(["-euo", "pipefail", "-c", &script])
        .current_dir(dir.path())
        .env("PATH", path)
        .env("HOME", dir.path().join("home"))
        .env_remove("FLEETKEY_FORMAT")
        .env_remove("FLEETKEY_DATA_DIR")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "the tour failed:\n{stdout}\n{stderr}");
    // What a reader sees: the unsealed secret, a token, the devices, a verified log.
    assert!(stdout.contains("4242"), "{stdout}");
    assert!(stdout.contains("fkt_"), "{stdout}");
    assert!(
        stdout.lines().any(|l| l.trim() == "200"),
        "200 devices: {stdout}"
    );
    assert!(stdout.contains("HARDWARE ID") && stdout.contains("thermostats"));
    assert!(stderr.contains("--after dev_"), "{stderr}");
    assert!(stdout.contains("valid: "), "{stdout}");

    // The access log: one line per request, route templates and token ids, never the token.
    let token = Server::admin_token(dir.path());
    assert_eq!(server.stop().code(), Some(0));
    let log = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| {
            p.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with("serve-")
        })
        .map(|p| std::fs::read_to_string(p).unwrap())
        .unwrap();
    let access: Vec<serde_json::Value> = log
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| v["target"] == "fleetkey::access")
        .collect();
    assert!(access.len() >= 10, "{} access lines", access.len());
    let seal = access
        .iter()
        .find(|v| v["route"] == "/v1/keyrings/{name}/seal")
        .expect("the seal request is logged by its route template");
    assert_eq!(seal["method"], "POST");
    assert_eq!(seal["status"], 200);
    assert!(seal["token_id"].as_str().unwrap().starts_with("tok_"));
    assert!(seal["latency_ms"].as_f64().is_some());
    assert!(seal["request_id"].as_str().unwrap().len() >= 8);
    assert!(
        !log.contains(&token),
        "the token itself never reaches the log"
    );
}
