//! The CLI in local admin mode on a fresh data directory with its own root key
//! file (no server): `fleetkey keys …`, `fleets …`, `devices …` as an operator on
//! the host runs them.

use assert_cmd::Command;
use serde_json::Value;
use tempfile::TempDir;

/// A data directory and root key for `fleetkey` commands.
pub struct Admin {
    /// Holds `kek.fk` and `data/`.
    pub dir: TempDir,
}

impl Admin {
    /// A fresh directory with a new root key file.
    pub fn new() -> Self {
        let dir = TempDir::new().unwrap();
        Command::cargo_bin("fleetkey")
            .unwrap()
            .args(["keygen", "-o"])
            .arg(dir.path().join("kek.fk"))
            .assert()
            .success();
        Self { dir }
    }

    /// `fleetkey` on this directory (no server, no passphrase, table output).
    pub fn cmd(&self) -> Command {
        let mut c = Command::cargo_bin("fleetkey").unwrap();
        c.env("FLEETKEY_ROOT_KEY_FILE", self.dir.path().join("kek.fk"))
            .env("FLEETKEY_DATA_DIR", self.dir.path().join("data"))
            .env_remove("FLEETKEY_PASSPHRASE")
            .env_remove("FLEETKEY_ADDR")
            .env_remove("FLEETKEY_FORMAT");
        c
    }

    /// A path in the directory.
    pub fn path(&self, n: &str) -> String {
        self.dir.path().join(n).display().to_string()
    }

    /// The standard output of a command that must succeed.
    pub fn stdout(&self, args: &[&str]) -> String {
        let out = self.cmd().args(args).assert().success();
        String::from_utf8(out.get_output().stdout.clone()).unwrap()
    }

    /// A command's `--format json` output.
    pub fn json(&self, args: &[&str]) -> Value {
        let mut all = args.to_vec();
        all.extend(["--format", "json"]);
        serde_json::from_str(&self.stdout(&all)).unwrap()
    }
}
