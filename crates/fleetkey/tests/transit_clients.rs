//! The Vault Transit door with Transit's own clients, unmodified: hvac runs one
//! workload against a `fleetkey serve` and against a real OpenBao dev server
//! and every answer must agree in shape and meaning; the `bao` CLI, pointed at
//! fleetkey by `BAO_ADDR`, encrypts, decrypts, reads, lists and rewraps
//! (tests/python/transit_clients.py); OpenBao's ciphertexts move to fleetkey
//! with scripts/migrate_from_vault_transit.py.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
use common::Server;
#[path = "common/backends.rs"]
mod backends;
use backends::Bao;

fn python(args: &[&str]) {
    common::python("transit_clients.py", args);
}

#[test]
#[ignore = "needs FLEETKEY_TEST_BAO and Python's hvac (.ci/run installs both)"]
fn hvac_gets_the_same_answers_from_fleetkey_as_from_openbao() {
    let bao = Bao::start();
    let dir = tempfile::TempDir::new().unwrap();
    let server = Server::start(dir.path());
    let token = Server::admin_token(dir.path());
    python(&["side-by-side", &server.addr(), &token, &bao.1, &bao.2]);
    // Then data encrypted by OpenBao moves over with the migration script.
    python(&["migrate", &server.addr(), &token, &bao.1, &bao.2]);
    server.stop();
}

#[test]
#[ignore = "needs FLEETKEY_TEST_BAO (.ci/run installs it)"]
fn the_bao_cli_encrypts_and_decrypts_through_fleetkey() {
    let bin = std::env::var("FLEETKEY_TEST_BAO")
        .expect("FLEETKEY_TEST_BAO is not set: this test needs it (.ci/run sets it)");
    let dir = tempfile::TempDir::new().unwrap();
    let server = Server::start(dir.path());
    let token = Server::admin_token(dir.path());
    python(&["bao", &server.addr(), &token, &bin]);
    server.stop();
}
