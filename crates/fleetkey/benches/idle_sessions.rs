//! Idle device sessions: how much memory `fleetkey serve` needs per open, idle
//! Noise IK session on loopback (target: 100,000 sessions in ≤ 1 GiB RSS).
//!
//! Run through `scripts/bench_idle_sessions.sh` (raises the open-file limit first):
//! `cargo bench -p fleetkey --bench idle_sessions -- --sessions 100000`.
//!
//! 1. Registers `--sessions` devices (provisioned, onboarded, active) in a fresh
//!    data directory, each with a Noise key derived from its index.
//! 2. Starts the release `fleetkey serve` on that directory.
//! 3. Starts worker processes (this program again, `--worker`), each opening its
//!    share of IK sessions (preamble, handshake, hello, welcome) from
//!    127.0.0.2–127.0.0.(1+sources), and holding them idle.
//! 4. Once all are open and the server's `fleetkey_device_sessions_active` gauge
//!    says so, reads the server's RSS (`/proc/<pid>/status`) and reports it with
//!    the RSS before any session, per session, and extrapolated to 100,000.
//!
//! One process holds at most its open-file limit of sockets; the server cannot hold
//! more sessions than that, so the run is capped at the limit and says so.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::arg;
use fleetkey_client::proto::{self, DeviceMsg, ServerMsg};
use fleetkey_crypto::credential::DeviceKeys;
use fleetkey_crypto::ed25519::Ed25519Signer;
use fleetkey_server::custody::local::{KekSource, LocalCustody};
use fleetkey_server::fleet::{FactoryRequest, FleetService, onboarding_message};
use fleetkey_server::store::{DeviceState, sqlite::SqliteStore};
use fleetkey_session::io::handshake;
use fleetkey_session::{Builder, Keypair, Pattern, Suite};
use std::io::{BufRead, Write};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::AsyncWriteExt;

const PASSPHRASE: &str = "idle-sessions-bench";

fn num(name: &str, default: usize) -> usize {
    arg(name).map_or(default, |v| v.parse().expect(name))
}

/// The Noise key of device `i` (so workers can rebuild it from the index).
fn device_key(i: usize) -> Keypair {
    let d = aws_lc_rs::digest::digest(
        &aws_lc_rs::digest::SHA256,
        format!("fleetkey idle sessions bench {i}").as_bytes(),
    );
    Keypair::from_private(d.as_ref().try_into().unwrap()).unwrap()
}

/// (soft, hard) open-file limits of this process.
fn fd_limits() -> (usize, usize) {
    let text = std::fs::read_to_string("/proc/self/limits").unwrap_or_default();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("Max open files") {
            let v: Vec<usize> = rest
                .split_whitespace()
                .filter_map(|w| w.parse().ok())
                .collect();
            if v.len() >= 2 {
                return (v[0], v[1]);
            }
        }
    }
    (1024, 1024)
}

fn rss_kib(pid: u32) -> u64 {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    s.lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

fn main() {
    if std::env::args().any(|a| a == "--worker") {
        worker();
    } else if std::env::args().any(|a| a == "--bench") || arg("--sessions").is_some() {
        parent();
    }
}

/// Registers `n` active devices; returns their ids and the server's static key.
fn setup(dir: &std::path::Path, n: usize) -> (Vec<String>, [u8; 32]) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let store = Arc::new(SqliteStore::open(dir).await.unwrap());
        let custody = Arc::new(
            LocalCustody::open(
                dir,
                KekSource::Passphrase(zeroize::Zeroizing::new(PASSPHRASE.into())),
            )
            .await
            .unwrap(),
        );
        let fleets = FleetService::new(
            store,
            custody,
            Arc::new(fleetkey_server::clock::SystemClock::default()),
        );
        fleets
            .registry
            .create_fleet("bench", &"idle".parse().unwrap(), None)
            .await
            .unwrap();
        let (_, server_key) = fleets.directory().server_static_key().await.unwrap();
        let started = Instant::now();
        let sem = Arc::new(tokio::sync::Semaphore::new(128));
        let mut tasks = Vec::with_capacity(n);
        for i in 0..n {
            let f = fleets.clone();
            let permit = sem.clone().acquire_owned().await.unwrap();
            tasks.push(tokio::spawn(async move {
                let sign = Ed25519Signer::generate().unwrap();
                let p = f
                    .registry
                    .provision(
                        "bench",
                        FactoryRequest {
                            fleet: "idle".into(),
                            hardware_id: format!("idle-{i}"),
                            model: "m".into(),
                            batch: "b".into(),
                            station: "s".into(),
                            keys: DeviceKeys {
                                x25519: *device_key(i).public(),
                                ed25519: sign.public_key(),
                                ml_kem_768: None,
                                ml_dsa_65: None,
                            },
                            test_results: serde_json::json!({}),
                        },
                    )
                    .await
                    .unwrap();
                let id = p.device.id;
                let c = f.onboarding.challenge(&id).await.unwrap();
                f.onboarding
                    .onboard(
                        &p.device.birth_credential,
                        &c.nonce,
                        &sign.sign(&onboarding_message(&id, &c.nonce, c.issued_at)),
                    )
                    .await
                    .unwrap();
                f.onboarding
                    .transition("bench", &id, DeviceState::Active)
                    .await
                    .unwrap();
                drop(permit);
                id
            }));
        }
        let mut ids = Vec::with_capacity(n);
        for t in tasks {
            ids.push(t.await.unwrap());
        }
        eprintln!(
            "registered {n} active devices in {:.1} s",
            started.elapsed().as_secs_f64()
        );
        (ids, server_key)
    })
}

fn parent() {
    let wanted = num("--sessions", 100_000);
    let per_worker = num("--per-worker", 15_000);
    let sources = num("--sources", 8).clamp(1, 250);
    let hold = num("--hold", 10);
    let (soft, hard) = fd_limits();
    let cap = soft.saturating_sub(300);
    let n = wanted.min(cap);
    println!("open-file limit: soft {soft}, hard {hard}");
    if n < wanted {
        println!(
            "NOTE: the server process can hold at most {cap} sockets under this limit; \
             running {n} sessions instead of {wanted} (raise it with `ulimit -n`, which needs \
             CAP_SYS_RESOURCE above the hard limit)"
        );
    }
    let fk = env!("CARGO_BIN_EXE_fleetkey");
    let dir = tempfile::TempDir::new().unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    let (ids, server_key) = setup(&data, n);
    let ids_file = dir.path().join("ids.txt");
    std::fs::write(&ids_file, ids.join("\n")).unwrap();

    let free_port = || {
        std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port()
    };
    let (http, dev) = (free_port(), free_port());
    let mut server = Command::new(fk)
        .arg("serve")
        .env("HOME", dir.path().join("home"))
        .env("FLEETKEY_DATA_DIR", &data)
        .env("FLEETKEY_PASSPHRASE", PASSPHRASE)
        .env("FLEETKEY_LISTEN", format!("127.0.0.1:{http}"))
        .env("FLEETKEY_DEVICE_LISTEN", format!("127.0.0.1:{dev}"))
        .env("FLEETKEY_DEVICE_UDP_LISTEN", "127.0.0.1:0")
        .env("FLEETKEY_GRPC_LISTEN", "off")
        .env("FLEETKEY_DEVICE_CONNECTIONS_PER_MINUTE", "100000000")
        .env("FLEETKEY_MAX_CONCURRENT_HANDSHAKES", "1024")
        .env("FLEETKEY_DEVICE_IDLE_SECS", "3600")
        .env("FLEETKEY_LOG_FORMAT", "json")
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let metrics = || -> Option<String> {
        let mut s = std::net::TcpStream::connect(("127.0.0.1", http)).ok()?;
        write!(
            s,
            "GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
        )
        .ok()?;
        let mut out = String::new();
        std::io::Read::read_to_string(&mut s, &mut out).ok()?;
        Some(out)
    };
    let active = || -> Option<u64> {
        metrics()?
            .lines()
            .find_map(|l| l.strip_prefix("fleetkey_device_sessions_active "))
            .and_then(|v| v.trim().parse().ok())
    };
    for _ in 0..300 {
        if active().is_some() {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    std::thread::sleep(Duration::from_secs(1));
    let base = rss_kib(server.id());
    println!("server RSS before sessions: {base} KiB");

    let started = Instant::now();
    let mut workers = Vec::new();
    let mut from = 0;
    while from < n {
        let to = (from + per_worker).min(n);
        let child = Command::new(std::env::current_exe().unwrap())
            .args([
                "--worker",
                "--from",
                &from.to_string(),
                "--to",
                &to.to_string(),
                "--addr",
                &format!("127.0.0.1:{dev}"),
                "--server-key",
                &hex::encode(server_key),
                "--ids",
                ids_file.to_str().unwrap(),
                "--sources",
                &sources.to_string(),
            ])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        workers.push(child);
        from = to;
    }
    let mut opened = 0u64;
    let mut failed = 0u64;
    for w in &mut workers {
        let mut line = String::new();
        std::io::BufReader::new(w.stdout.as_mut().unwrap())
            .read_line(&mut line)
            .unwrap();
        let v: Vec<u64> = line
            .split_whitespace()
            .filter_map(|x| x.parse().ok())
            .collect();
        opened += v.first().copied().unwrap_or(0);
        failed += v.get(1).copied().unwrap_or(0);
    }
    let ramp = started.elapsed();
    std::thread::sleep(Duration::from_secs(hold as u64));
    let gauge = active().unwrap_or(0);
    let rss = rss_kib(server.id());
    let client_rss: u64 = workers.iter().map(|w| rss_kib(w.id())).sum();
    let per = (rss.saturating_sub(base) as f64 * 1024.0) / opened.max(1) as f64;
    let extrapolated = base as f64 / 1024.0 + per * 100_000.0 / (1024.0 * 1024.0);
    println!(
        "sessions opened: {opened} ({failed} failed) in {:.1} s ({:.0} handshakes/s incl. hello/welcome and the session record)",
        ramp.as_secs_f64(),
        opened as f64 / ramp.as_secs_f64()
    );
    println!("server gauge fleetkey_device_sessions_active: {gauge}");
    println!(
        "server RSS with {opened} idle sessions: {rss} KiB ({:.1} MiB)",
        rss as f64 / 1024.0
    );
    println!("server RSS per idle session: {per:.0} bytes");
    println!("extrapolated to 100,000 sessions: {extrapolated:.0} MiB (target <= 1024 MiB)");
    println!("client processes RSS (not the server's): {client_rss} KiB");
    for mut w in workers {
        drop(w.stdin.take());
        let _ = w.wait();
    }
    let _ = Command::new("kill").arg(server.id().to_string()).status();
    let _ = server.wait();
}

fn worker() {
    let from = num("--from", 0);
    let to = num("--to", 0);
    let sources = num("--sources", 8);
    let addr = arg("--addr").unwrap();
    let server_key: [u8; 32] = hex::decode(arg("--server-key").unwrap())
        .unwrap()
        .try_into()
        .unwrap();
    let ids: Vec<String> = std::fs::read_to_string(arg("--ids").unwrap())
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let (sessions, failed) = rt.block_on(async {
        let sem = Arc::new(tokio::sync::Semaphore::new(64));
        let mut tasks = Vec::new();
        for (i, id) in ids.iter().enumerate().take(to).skip(from) {
            let permit = sem.clone().acquire_owned().await.unwrap();
            let addr = addr.clone();
            let id = id.clone();
            let bind = std::net::IpAddr::from([127, 0, 0, 2 + u8::try_from(i % sources).unwrap()]);
            tasks.push(tokio::spawn(async move {
                let r = open(&addr, bind, i, &id, server_key).await;
                drop(permit);
                r
            }));
        }
        let mut sessions = Vec::new();
        let mut failed = 0u64;
        for t in tasks {
            match t.await.unwrap() {
                Ok(s) => sessions.push(s),
                Err(e) => {
                    failed += 1;
                    if failed <= 3 {
                        eprintln!("worker: session {from}..{to} failed: {e}");
                    }
                }
            }
        }
        (sessions, failed)
    });
    println!("{} {failed}", sessions.len());
    std::io::stdout().flush().unwrap();
    // Hold the sessions until the parent closes our stdin.
    let mut sink = String::new();
    let _ = std::io::stdin().read_line(&mut sink);
    drop(sessions);
}

async fn open(
    addr: &str,
    bind: std::net::IpAddr,
    i: usize,
    id: &str,
    server_key: [u8; 32],
) -> Result<fleetkey_session::io::Session<tokio::net::TcpStream>, String> {
    let key = device_key(i);
    let mut sock = fleetkey_client::device::connect_tcp(addr, Some(bind))
        .await
        .map_err(|e| e.to_string())?;
    let pre = proto::preamble(Pattern::IK, Suite::ChaChaPolyBlake2s).unwrap();
    sock.write_all(&pre).await.map_err(|e| e.to_string())?;
    let hs = Builder::new(Pattern::IK, Suite::ChaChaPolyBlake2s)
        .local(&key)
        .remote(server_key)
        .prologue(&pre)
        .initiator(Instant::now())
        .map_err(|e| e.to_string())?;
    let (mut s, _) = handshake(sock, hs, b"").await.map_err(|e| e.to_string())?;
    let hello = serde_json::to_vec(&DeviceMsg::Hello {
        resume: None,
        telemetry_seq: 0,
    })
    .unwrap();
    s.send(&hello).await.map_err(|e| e.to_string())?;
    let reply: ServerMsg = serde_json::from_slice(&s.recv().await.map_err(|e| e.to_string())?)
        .map_err(|e| e.to_string())?;
    match reply {
        ServerMsg::Welcome { device_id, .. } if device_id == id => Ok(s),
        other => Err(format!("{other:?}")),
    }
}
