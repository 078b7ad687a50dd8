//! A real `fleetkey serve` process for integration tests: start on a free port
//! in a fresh directory (zero-config), wait until healthy, stop with SIGTERM.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

pub mod admin;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Runs `tests/python/<script>` with `args`; its output is printed, and a
/// failure fails the test with it.
pub fn python(script: &str, args: &[&str]) {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/python")
        .join(script);
    let out = std::process::Command::new("python3")
        .arg(path)
        .args(args)
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    println!("{text}");
    assert!(out.status.success(), "{script}: {text}");
}

pub fn get(port: u16, path: &str) -> Option<String> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut out = String::new();
    s.read_to_string(&mut out).ok()?;
    Some(out)
}

pub struct Server {
    pub child: Child,
    pub port: u16,
    /// The device listener's port (Noise over TCP).
    pub device_port: u16,
    /// The constrained devices' UDP port.
    pub udp_port: u16,
    /// The gRPC port.
    pub grpc_port: u16,
}

/// A UDP port free right now.
pub fn free_udp_port() -> u16 {
    std::net::UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The store settings a `fleetkey serve` in `dir` runs with: none (the embedded
/// SQLite store) by default; with `FLEETKEY_TEST_STORE=postgres`, PostgreSQL at
/// `FLEETKEY_TEST_POSTGRES_URL` in a schema of its own per `dir` (named in
/// `dir/pg_schema`, so a restart in `dir` finds its data again).
pub fn store_env(dir: &std::path::Path) -> Vec<(&'static str, String)> {
    if std::env::var("FLEETKEY_TEST_STORE").as_deref() != Ok("postgres") {
        return Vec::new();
    }
    let url = std::env::var("FLEETKEY_TEST_POSTGRES_URL")
        .expect("FLEETKEY_TEST_STORE=postgres needs FLEETKEY_TEST_POSTGRES_URL");
    let marker = dir.join("pg_schema");
    let schema = std::fs::read_to_string(&marker).unwrap_or_else(|_| {
        let r: [u8; 6] = fleetkey_crypto::rand::array().unwrap();
        let s = format!(
            "fkcli_{}",
            r.iter().map(|b| format!("{b:02x}")).collect::<String>()
        );
        std::fs::write(&marker, &s).unwrap();
        s
    });
    vec![
        ("FLEETKEY_STORE_URL", url),
        ("FLEETKEY_STORE_SCHEMA", schema),
    ]
}

impl Server {
    pub fn start(dir: &std::path::Path) -> Self {
        Self::start_with(dir, &[])
    }

    /// [`Server::start`] with more environment variables (custody settings, …).
    pub fn start_with(dir: &std::path::Path, env: &[(&str, String)]) -> Self {
        let port = free_port();
        let device_port = free_port();
        let udp_port = free_udp_port();
        let grpc_port = free_port();
        let mut child = std::process::Command::new(assert_cmd::cargo::cargo_bin("fleetkey"))
            .arg("serve")
            .current_dir(dir)
            .env("HOME", dir.join("home"))
            .env_remove("XDG_CONFIG_HOME")
            .env_remove("FLEETKEY_ROOT_KEY_FILE")
            .env_remove("FLEETKEY_PASSPHRASE")
            .env_remove("FLEETKEY_DATA_DIR")
            .env("FLEETKEY_LISTEN", format!("127.0.0.1:{port}"))
            .env("FLEETKEY_DEVICE_LISTEN", format!("127.0.0.1:{device_port}"))
            .env(
                "FLEETKEY_DEVICE_UDP_LISTEN",
                format!("127.0.0.1:{udp_port}"),
            )
            .env("FLEETKEY_GRPC_LISTEN", format!("127.0.0.1:{grpc_port}"))
            .env("FLEETKEY_LOG_FORMAT", "json")
            .envs(store_env(dir))
            .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.join(format!("serve-{port}.log"))).unwrap())
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if get(port, "/healthz").is_some_and(|r| r.starts_with("HTTP/1.1 200")) {
                return Self {
                    child,
                    port,
                    device_port,
                    udp_port,
                    grpc_port,
                };
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = child.kill();
        let _ = child.wait();
        let log =
            std::fs::read_to_string(dir.join(format!("serve-{port}.log"))).unwrap_or_default();
        panic!("server did not become healthy; its log:\n{log}");
    }

    pub fn stop(mut self) -> std::process::ExitStatus {
        // SIGTERM, then wait for the graceful exit.
        std::process::Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(s) = self.child.try_wait().unwrap() {
                return s;
            }
            assert!(Instant::now() < deadline, "server did not stop on SIGTERM");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Server {
    /// `http://127.0.0.1:<port>`.
    pub fn addr(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The admin token the first start wrote.
    pub fn admin_token(dir: &std::path::Path) -> String {
        std::fs::read_to_string(dir.join("fleetkey-data/admin.token"))
            .unwrap()
            .trim()
            .to_owned()
    }
}
