//! Aggregate seal throughput of one and of three `fleetkey serve` instances on one
//! PostgreSQL and one Redis (issue 9), in the same run so the ratio is fair.
//!
//! `cargo bench -p fleetkey --bench instances -- --secs 10 --rounds 3 --clients 24`
//!
//! PostgreSQL and Redis come from `FLEETKEY_TEST_POSTGRES_URL` and
//! `FLEETKEY_TEST_REDIS_URL` (default: the machine's, `127.0.0.1`). Each
//! configuration starts its instances on a fresh schema and key prefix (the same
//! root key copied to each), creates one keyring, and then `--clients` HTTP
//! clients in total (spread evenly over the instances, keep-alive, each one
//! request at a time) seal 64-byte payloads for `--secs` seconds after a 2 s
//! warm-up. Reported per round: seals/s, p50/p99 latency, and the CPU used by the
//! servers and by this load generator — which share the machine, so on a small
//! machine three instances compete for the same cores rather than adding any.
//! Each round runs three setups — one instance on PostgreSQL + Redis, three on
//! them, and one on the embedded SQLite store alone for reference — in a rotating
//! order; the summary gives medians and the ratios (three to one; one shared to
//! one embedded).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{arg, cpu_secs, free_port};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

fn tag() -> String {
    let r: [u8; 6] = fleetkey_crypto::rand::array().unwrap();
    r.iter().map(|b| format!("{b:02x}")).collect()
}

struct Instance {
    child: Child,
    base: String,
}

impl Drop for Instance {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `n` instances on a fresh schema; the admin token.
/// `n` instances; on PostgreSQL + Redis when `shared`, else one on the embedded
/// SQLite store alone.
async fn start(
    n: usize,
    shared: bool,
    root: &std::path::Path,
    pg: &str,
    redis: &str,
) -> (Vec<Instance>, String) {
    let t = tag();
    let mut out = Vec::new();
    for i in 0..n {
        let dir = root.join(format!("{t}-{i}"));
        std::fs::create_dir_all(&dir).unwrap();
        if i > 0 {
            std::fs::copy(
                root.join(format!("{t}-0/root-key.json")),
                dir.join("root-key.json"),
            )
            .unwrap();
        }
        let port = free_port();
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_fleetkey"));
        if shared {
            cmd.env("FLEETKEY_STORE_URL", pg)
                .env("FLEETKEY_STORE_SCHEMA", format!("fkbench_{t}"))
                .env("FLEETKEY_REDIS_URL", redis)
                .env("FLEETKEY_REDIS_PREFIX", format!("fkbench-{t}"));
        }
        let child = cmd
            .arg("serve")
            .env("HOME", dir.join("home"))
            .env_remove("FLEETKEY_ROOT_KEY_FILE")
            .env("FLEETKEY_PASSPHRASE", "instances-bench")
            .env("FLEETKEY_DATA_DIR", &dir)
            .env("FLEETKEY_LISTEN", format!("127.0.0.1:{port}"))
            .env("FLEETKEY_DEVICE_LISTEN", "off")
            .env("FLEETKEY_DEVICE_UDP_LISTEN", "off")
            .env("FLEETKEY_GRPC_LISTEN", "off")
            .env("FLEETKEY_INSTANCE_NAME", format!("i{i}"))
            .env("FLEETKEY_INSTANCES", n.to_string())
            .env("FLEETKEY_LOG_FORMAT", "json")
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let inst = Instance {
            child,
            base: format!("http://127.0.0.1:{port}"),
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        while !reqwest::get(format!("{}/healthz", inst.base))
            .await
            .is_ok_and(|r| r.status().is_success())
        {
            assert!(Instant::now() < deadline, "instance {i} did not start");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        out.push(inst);
    }
    let token = std::fs::read_to_string(root.join(format!("{t}-0/admin.token")))
        .unwrap()
        .trim()
        .to_owned();
    (out, token)
}

/// What runs.
#[derive(Clone, Copy, PartialEq, Eq)]
struct Setup {
    instances: usize,
    /// On PostgreSQL + Redis (else the embedded SQLite store alone).
    shared: bool,
}

impl Setup {
    fn label(self) -> String {
        if self.shared {
            format!("{} on PG+Redis", self.instances)
        } else {
            format!("{} embedded", self.instances)
        }
    }
}

const EMBEDDED: Setup = Setup {
    instances: 1,
    shared: false,
};
const ONE: Setup = Setup {
    instances: 1,
    shared: true,
};
const THREE: Setup = Setup {
    instances: 3,
    shared: true,
};

/// One measured window.
struct Round {
    setup: Setup,
    seals_per_sec: f64,
    p50_ms: f64,
    p99_ms: f64,
    errors: u64,
    server_cpu: f64,
    load_cpu: f64,
}

async fn round(
    setup: Setup,
    clients: usize,
    secs: u64,
    root: &std::path::Path,
    pg: &str,
    redis: &str,
) -> Round {
    let (instances, token) = start(setup.instances, setup.shared, root, pg, redis).await;
    let n = setup.instances;
    let api = fleetkey_sim::Api::new(&instances[0].base, &token).unwrap();
    api.post("/v1/keyrings", &serde_json::json!({"name": "bench"}))
        .await
        .unwrap();
    let measuring = Arc::new(AtomicBool::new(false));
    let stop = Arc::new(AtomicBool::new(false));
    let mut tasks = tokio::task::JoinSet::new();
    for c in 0..clients {
        let base = instances[c % n].base.clone();
        let (token, measuring, stop) = (token.clone(), measuring.clone(), stop.clone());
        tasks.spawn(async move {
            let http = reqwest::Client::new();
            let url = format!("{base}/v1/keyrings/bench/seal");
            // 64 bytes of payload, base64.
            let body = serde_json::json!({
                "plaintext": "cmVhZGluZyByZWFkaW5nIHJlYWRpbmcgcmVhZGluZyByZWFkaW5nIHJlYWRpbmcgcmVhZGluZyByZWFkaW5nIA==",
                "aad": "YmVuY2g="
            });
            let (mut lat, mut errors) = (Vec::new(), 0u64);
            while !stop.load(Ordering::Relaxed) {
                let t = Instant::now();
                let ok = http
                    .post(&url)
                    .bearer_auth(&token)
                    .json(&body)
                    .send()
                    .await
                    .is_ok_and(|r| r.status().is_success());
                if measuring.load(Ordering::Relaxed) {
                    if ok {
                        lat.push(u32::try_from(t.elapsed().as_micros()).unwrap_or(u32::MAX));
                    } else {
                        errors += 1;
                    }
                }
            }
            (lat, errors)
        });
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let pids: Vec<u32> = instances.iter().map(|i| i.child.id()).collect();
    let srv0: f64 = pids.iter().map(|&p| cpu_secs(p)).sum();
    let load0 = cpu_secs(std::process::id());
    measuring.store(true, Ordering::Release);
    let t0 = Instant::now();
    tokio::time::sleep(Duration::from_secs(secs)).await;
    measuring.store(false, Ordering::Release);
    let window = t0.elapsed().as_secs_f64();
    let srv1: f64 = pids.iter().map(|&p| cpu_secs(p)).sum();
    let load1 = cpu_secs(std::process::id());
    stop.store(true, Ordering::Release);
    let (mut lat, mut errors) = (Vec::new(), 0);
    while let Some(r) = tasks.join_next().await {
        let (l, e) = r.unwrap();
        lat.extend(l);
        errors += e;
    }
    lat.sort_unstable();
    #[allow(
        clippy::cast_possible_truncation,
        clippy::cast_sign_loss,
        reason = "p in [0, 1]: a rank within the sample"
    )]
    let pct = |p: f64| {
        lat.get(((lat.len() as f64 * p) as usize).min(lat.len().saturating_sub(1)))
            .map_or(0.0, |&us| f64::from(us) / 1000.0)
    };
    drop(instances);
    Round {
        setup,
        seals_per_sec: lat.len() as f64 / window,
        p50_ms: pct(0.50),
        p99_ms: pct(0.99),
        errors,
        server_cpu: (srv1 - srv0) / window,
        load_cpu: (load1 - load0) / window,
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    match v.len() {
        0 => 0.0,
        n if n % 2 == 1 => v[n / 2],
        n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
    }
}

fn main() {
    if !std::env::args().any(|a| a == "--bench") && arg("--secs").is_none() {
        return;
    }
    let secs: u64 = arg("--secs").map_or(10, |v| v.parse().expect("--secs"));
    let rounds: usize = arg("--rounds").map_or(3, |v| v.parse().expect("--rounds"));
    let clients: usize = arg("--clients").map_or(24, |v| v.parse().expect("--clients"));
    let env = |k: &str, d: &str| {
        std::env::var(k)
            .ok()
            .filter(|v| !v.is_empty())
            .unwrap_or_else(|| d.to_owned())
    };
    let pg = env(
        "FLEETKEY_TEST_POSTGRES_URL",
        "postgres://postgres@127.0.0.1:5432/test",
    );
    let redis = env("FLEETKEY_TEST_REDIS_URL", "redis://127.0.0.1:6379");
    let root = tempfile::TempDir::new().unwrap();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    println!(
        "instances: release fleetkey serve on PostgreSQL + Redis, {clients} clients in total, {secs} s windows, {rounds} rounds; nproc {}",
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    println!(
        "{:>5} {:>15} {:>10} {:>8} {:>8} {:>7} {:>8} {:>8}",
        "round", "setup", "seals/s", "p50 ms", "p99 ms", "errors", "srv CPU", "load CPU"
    );
    let mut all = Vec::new();
    rt.block_on(async {
        for r in 1..=rounds {
            // Rotate which goes first: drift on a shared machine hits every setup.
            let mut order = [ONE, THREE, EMBEDDED];
            order.rotate_left((r - 1) % 3);
            for setup in order {
                let x = round(setup, clients, secs, root.path(), &pg, &redis).await;
                println!(
                    "{r:>5} {:>15} {:>10.0} {:>8.2} {:>8.2} {:>7} {:>7.0}% {:>7.0}%",
                    x.setup.label(),
                    x.seals_per_sec,
                    x.p50_ms,
                    x.p99_ms,
                    x.errors,
                    x.server_cpu * 100.0,
                    x.load_cpu * 100.0
                );
                all.push(x);
            }
        }
    });
    let med = |s: Setup, f: fn(&Round) -> f64| {
        median(
            all.iter()
                .filter(|r| r.setup == s)
                .map(f)
                .collect::<Vec<_>>(),
        )
    };
    for s in [EMBEDDED, ONE, THREE] {
        println!(
            "median {:>15}: {:>6.0} seals/s, p50 {:.2} ms, p99 {:.2} ms, servers {:.0}% CPU",
            s.label(),
            med(s, |r| r.seals_per_sec),
            med(s, |r| r.p50_ms),
            med(s, |r| r.p99_ms),
            med(s, |r| r.server_cpu) * 100.0
        );
    }
    let (one, three) = (
        med(ONE, |r| r.seals_per_sec),
        med(THREE, |r| r.seals_per_sec),
    );
    println!(
        "ratio 3/1 instances on PG+Redis = {:.2}; 1 on PG+Redis / embedded = {:.2}",
        three / one.max(1.0),
        one / med(EMBEDDED, |r| r.seals_per_sec).max(1.0)
    );
}
