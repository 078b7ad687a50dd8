//! Simulated devices one server sustains: the release `fleetkey serve` and a
//! fleet from `fleetkey-sim` (4 full-profile devices holding Noise sessions for
//! every constrained device sending AES-CCM frames over UDP), each device sending
//! one telemetry message per `--period` seconds.
//!
//! `cargo bench -p fleetkey --bench sim_fleet -- --steps 500,1000,2000,4000`
//!
//! For each step the fleet grows to N devices (factory provisioning and onboarding
//! over HTTP, as in `fleetkey demo`), every full device opens its session, and after
//! a warm-up of one period the load is measured for `--secs` seconds: messages
//! sent and acknowledged, acknowledgement latency (full devices: from sending the
//! telemetry message to its `telemetry_ack`), frames verified by the server, and
//! CPU used by the server and by the simulator (the two share this machine).
//! A step is **sustained** when ≥ 99.9% of the messages sent in the window were
//! acknowledged (frames: verified) and the p99 acknowledgement latency is under
//! one period.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{arg, cpu_secs, free_port};
use fleetkey_sim::{ConstrainedDevice, Endpoints, FullDevice, Sim};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};
use tokio::sync::Mutex;

/// What the devices saw during a measured window.
#[derive(Default)]
struct Counters {
    measuring: AtomicBool,
    sent: AtomicU64,
    acked: AtomicU64,
    frames: AtomicU64,
    /// Frames sent in the whole step (checked against the server's count).
    frames_step: AtomicU64,
    errors: AtomicU64,
    latencies_us: std::sync::Mutex<Vec<u32>>,
    /// Full devices with an open session.
    connected: AtomicU64,
}

fn main() {
    if !std::env::args().any(|a| a == "--bench") && arg("--steps").is_none() {
        return;
    }
    let steps: Vec<usize> = arg("--steps")
        .unwrap_or_else(|| "250,500,1000,2000".into())
        .split(',')
        .map(|s| s.trim().parse().expect("--steps: numbers"))
        .collect();
    let period = Duration::from_secs_f64(
        arg("--period")
            .map_or(1.0_f64, |v| v.parse().expect("--period: seconds"))
            .max(0.05),
    );
    let secs: u64 = arg("--secs").map_or(10, |v| v.parse().expect("--secs"));
    let fk = env!("CARGO_BIN_EXE_fleetkey");
    let dir = tempfile::TempDir::new().unwrap();
    let data = dir.path().join("data");
    let (http, dev, udp) = (free_port(), free_port(), free_port());
    let mut server = Command::new(fk)
        .arg("serve")
        .env("HOME", dir.path().join("home"))
        .env("FLEETKEY_DATA_DIR", &data)
        .env("FLEETKEY_PASSPHRASE", "sim-fleet-bench")
        .env("FLEETKEY_LISTEN", format!("127.0.0.1:{http}"))
        .env("FLEETKEY_DEVICE_LISTEN", format!("127.0.0.1:{dev}"))
        .env("FLEETKEY_DEVICE_UDP_LISTEN", format!("127.0.0.1:{udp}"))
        .env("FLEETKEY_GRPC_LISTEN", "off")
        .env("FLEETKEY_DEVICE_IDLE_SECS", "3600")
        .env("FLEETKEY_LOG_FORMAT", "json")
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let endpoints = Endpoints {
        http: format!("http://127.0.0.1:{http}"),
        sessions: format!("127.0.0.1:{dev}"),
        frames: format!("127.0.0.1:{udp}"),
    };
    println!(
        "sim_fleet: release fleetkey serve (pid {}), one message per device every {:.2} s, {secs} s windows; nproc {}",
        server.id(),
        period.as_secs_f64(),
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    println!(
        "{:>7} {:>6} {:>6} {:>9} {:>9} {:>9} {:>9} {:>13} {:>8} {:>8} {:>9}",
        "devices",
        "full",
        "small",
        "offered/s",
        "acked/s",
        "p50 ms",
        "p99 ms",
        "frames ok",
        "srv CPU",
        "sim CPU",
        "sustained"
    );
    rt.block_on(async {
        let token_path = data.join("admin.token");
        let deadline = Instant::now() + Duration::from_secs(60);
        let token = loop {
            if let Ok(t) = std::fs::read_to_string(&token_path)
                && reqwest::get(format!("{}/healthz", endpoints.http))
                    .await
                    .is_ok_and(|r| r.status().is_success())
            {
                break t.trim().to_owned();
            }
            assert!(Instant::now() < deadline, "server did not start");
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        let api = fleetkey_sim::Api::new(&endpoints.http, &token).unwrap();
        api.post("/v1/fleets", &serde_json::json!({"name": "bench"}))
            .await
            .unwrap();
        let sim = Arc::new(
            // Device state files on tmpfs where there is one: each simulated device
            // saves its state (fsync) on every acknowledgement, as a device does to
            // its flash; thousands of them on one disk would measure the disk.
            Sim::connect(endpoints.clone(), &token, "bench", state_dir(&dir))
                .await
                .unwrap(),
        );
        let mut full: Vec<Arc<Mutex<FullDevice>>> = Vec::new();
        let mut small: Vec<Arc<Mutex<ConstrainedDevice>>> = Vec::new();
        for &n in &steps {
            let want_small = n / 5;
            let want_full = n - want_small;
            grow(&sim, &mut full, &mut small, want_full, want_small).await;
            let counters = Arc::new(Counters::default());
            let stop = Arc::new(AtomicBool::new(false));
            // New devices' boot frames are datagrams: wait until the count settles.
            let mut frames_before = accepted_frames(&api).await;
            loop {
                tokio::time::sleep(Duration::from_millis(200)).await;
                let now = accepted_frames(&api).await;
                if now == frames_before {
                    break;
                }
                frames_before = now;
            }
            let mut tasks = tokio::task::JoinSet::new();
            for (i, d) in full.iter().enumerate() {
                let (d, c, stop) = (d.clone(), counters.clone(), stop.clone());
                let phase = period.mul_f64(i as f64 / full.len() as f64);
                tasks.spawn(async move { run_full(d, c, stop, period, phase).await });
            }
            for (i, d) in small.iter().enumerate() {
                let (d, c, stop, sim) = (d.clone(), counters.clone(), stop.clone(), sim.clone());
                let phase = period.mul_f64(i as f64 / small.len().max(1) as f64);
                tasks.spawn(async move { run_small(sim, d, c, stop, period, phase).await });
            }
            // Warm-up: every session open, then one period.
            let deadline = Instant::now() + Duration::from_secs(120);
            while usize::try_from(counters.connected.load(Ordering::Acquire)).unwrap_or(usize::MAX) < full.len()
                && Instant::now() < deadline
            {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            tokio::time::sleep(period).await;
            let (srv0, sim0) = (cpu_secs(server.id()), cpu_secs(std::process::id()));
            counters.measuring.store(true, Ordering::Release);
            let t0 = Instant::now();
            tokio::time::sleep(Duration::from_secs(secs)).await;
            counters.measuring.store(false, Ordering::Release);
            let window = t0.elapsed().as_secs_f64();
            let (srv1, sim1) = (cpu_secs(server.id()), cpu_secs(std::process::id()));
            stop.store(true, Ordering::Release);
            while tasks.join_next().await.is_some() {}
            // Let in-flight frames land before reading the server's count.
            tokio::time::sleep(Duration::from_millis(300)).await;
            let frames_ok = accepted_frames(&api).await - frames_before;
            let frames_step = counters.frames_step.load(Ordering::Acquire);
            let sent = counters.sent.load(Ordering::Acquire);
            let acked = counters.acked.load(Ordering::Acquire);
            let frames = counters.frames.load(Ordering::Acquire);
            let mut lat = counters.latencies_us.lock().unwrap().clone();
            lat.sort_unstable();
            let pct = |p: usize| {
                if lat.is_empty() {
                    0.0
                } else {
                    f64::from(lat[((p * lat.len()).div_ceil(100)).clamp(1, lat.len()) - 1]) / 1000.0
                }
            };
            let frames_ok_ratio = frames_ok as f64 / frames_step.max(1) as f64;
            let sustained = acked as f64 >= 0.999 * sent as f64
                && (frames_step == 0 || frames_ok_ratio >= 0.999)
                && pct(99) < period.as_secs_f64() * 1000.0
                && counters.errors.load(Ordering::Acquire) == 0;
            println!(
                "{:>7} {:>6} {:>6} {:>9.0} {:>9.0} {:>9.1} {:>9.1} {:>6}/{:<6} {:>7.0}% {:>7.0}% {:>9}",
                n,
                full.len(),
                small.len(),
                (sent + frames) as f64 / window,
                (acked as f64 + frames as f64 * frames_ok_ratio.min(1.0)) / window,
                pct(50),
                pct(99),
                frames_ok,
                frames_step,
                100.0 * (srv1 - srv0) / window,
                100.0 * (sim1 - sim0) / window,
                if sustained { "yes" } else { "NO" }
            );
            let errors = counters.errors.load(Ordering::Acquire);
            if errors > 0 {
                println!("        ({errors} device errors in this step)");
            }
        }
    });
    let _ = Command::new("kill").arg(server.id().to_string()).status();
    let _ = server.wait();
}

fn state_dir(dir: &tempfile::TempDir) -> std::path::PathBuf {
    let shm = std::path::Path::new("/dev/shm");
    if shm.is_dir()
        && let Ok(d) = tempfile::Builder::new()
            .prefix("fleetkey-sim-")
            .tempdir_in(shm)
    {
        return d.keep();
    }
    dir.path().join("devices")
}

async fn accepted_frames(api: &fleetkey_sim::Api) -> u64 {
    let m = api.metrics().await.unwrap_or_default();
    fleetkey_sim::count(&m, "fleetkey_device_frames_total", "result=\"accepted\"")
}

/// Provisions and onboards devices until there are `nf` full and `ns` constrained.
async fn grow(
    sim: &Arc<Sim>,
    full: &mut Vec<Arc<Mutex<FullDevice>>>,
    small: &mut Vec<Arc<Mutex<ConstrainedDevice>>>,
    nf: usize,
    ns: usize,
) {
    let t = Instant::now();
    let (f0, s0) = (full.len(), small.len());
    let sem = Arc::new(tokio::sync::Semaphore::new(32));
    let mut set = tokio::task::JoinSet::new();
    for i in f0..nf {
        let (sim, permit) = (sim.clone(), sem.clone().acquire_owned().await.unwrap());
        set.spawn(async move {
            let d = sim
                .provision_full(&format!("bench-full-{i}"))
                .await
                .unwrap();
            drop(permit);
            (Some(d), None)
        });
    }
    for i in s0..ns {
        let (sim, permit) = (sim.clone(), sem.clone().acquire_owned().await.unwrap());
        set.spawn(async move {
            let mut d = sim
                .provision_constrained(&format!("bench-small-{i}"))
                .await
                .unwrap();
            sim.boot(&mut d).await.unwrap();
            drop(permit);
            (None, Some(d))
        });
    }
    while let Some(r) = set.join_next().await {
        match r.unwrap() {
            (Some(f), _) => full.push(Arc::new(Mutex::new(f))),
            (_, Some(s)) => small.push(Arc::new(Mutex::new(s))),
            _ => {}
        }
    }
    eprintln!(
        "  (provisioned and onboarded {} devices in {:.1} s)",
        full.len() + small.len() - f0 - s0,
        t.elapsed().as_secs_f64()
    );
}

async fn run_full(
    d: Arc<Mutex<FullDevice>>,
    c: Arc<Counters>,
    stop: Arc<AtomicBool>,
    period: Duration,
    phase: Duration,
) {
    let mut d = d.lock().await;
    let mut s = match d.client.connect_with_retry().await {
        Ok(s) => s,
        Err(e) => {
            c.errors.fetch_add(1, Ordering::AcqRel);
            eprintln!("  device {}: {e}", d.id);
            return;
        }
    };
    c.connected.fetch_add(1, Ordering::AcqRel);
    tokio::time::sleep(phase).await;
    let mut tick = tokio::time::interval(period);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    while !stop.load(Ordering::Acquire) {
        tick.tick().await;
        let measuring = c.measuring.load(Ordering::Acquire);
        if measuring {
            c.sent.fetch_add(1, Ordering::AcqRel);
        }
        let t = Instant::now();
        let ok = tokio::time::timeout(period * 10, async {
            s.send_telemetry(serde_json::json!({"temp_c": 21.5}))
                .await?;
            loop {
                if let fleetkey_client::proto::ServerMsg::TelemetryAck { .. } = s.recv().await? {
                    return Ok::<_, fleetkey_client::Error>(());
                }
            }
        })
        .await;
        if !matches!(ok, Ok(Ok(()))) {
            c.errors.fetch_add(1, Ordering::AcqRel);
            return;
        }
        if measuring {
            c.acked.fetch_add(1, Ordering::AcqRel);
            let us = u32::try_from(t.elapsed().as_micros()).unwrap_or(u32::MAX);
            c.latencies_us.lock().unwrap().push(us);
        }
    }
    let _ = s.close().await;
}

async fn run_small(
    sim: Arc<Sim>,
    d: Arc<Mutex<ConstrainedDevice>>,
    c: Arc<Counters>,
    stop: Arc<AtomicBool>,
    period: Duration,
    phase: Duration,
) {
    let mut d = d.lock().await;
    tokio::time::sleep(phase).await;
    let mut tick = tokio::time::interval(period);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    while !stop.load(Ordering::Acquire) {
        tick.tick().await;
        let measuring = c.measuring.load(Ordering::Acquire);
        if sim
            .send_frame(&mut d, &serde_json::json!({"soil": 31}))
            .await
            .is_err()
        {
            c.errors.fetch_add(1, Ordering::AcqRel);
            return;
        }
        c.frames_step.fetch_add(1, Ordering::AcqRel);
        if measuring {
            c.frames.fetch_add(1, Ordering::AcqRel);
        }
    }
}
