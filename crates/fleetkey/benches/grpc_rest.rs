//! gRPC seal against REST seal of 64 B on the same `fleetkey serve` (release), in
//! alternating rounds (REST, gRPC, REST, gRPC, …), the same number of client
//! connections for both (each worker its own connection and one request at a
//! time). Prints each round's requests per second, the medians and their ratio.
//!
//! `cargo bench -p fleetkey --bench grpc_rest -- --secs 5 --conns 32 --rounds 3`
//!
//! `--grpc-channels N` (default: one per worker) spreads the gRPC workers over N
//! HTTP/2 connections, multiplexed as gRPC clients share a channel; the requests
//! in flight stay `--conns` for both protocols (HTTP/1.1 needs a connection per
//! request in flight).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use fleetkey_server::api::grpc::pb;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

fn arg(name: &str) -> Option<String> {
    let a: Vec<String> = std::env::args().collect();
    a.iter()
        .position(|x| x == name)
        .and_then(|i| a.get(i + 1).cloned())
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The server's CPU time so far, seconds (utime + stime from /proc).
fn cpu_secs(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name's closing parenthesis: utime is the 12th, stime the 13th.
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    (ticks(11) + ticks(12)) / 100.0
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

async fn rest_round(base: &str, token: &str, conns: usize, secs: u64) -> f64 {
    let stop = Arc::new(AtomicBool::new(false));
    let done = Arc::new(AtomicU64::new(0));
    let body = serde_json::json!({ "plaintext": "QUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQQ==" })
        .to_string();
    let mut tasks = Vec::new();
    for _ in 0..conns {
        let client = reqwest::Client::builder()
            .pool_max_idle_per_host(1)
            .build()
            .unwrap();
        let (stop, done, body) = (stop.clone(), done.clone(), body.clone());
        let url = format!("{base}/v1/keyrings/bench/seal");
        let auth = format!("Bearer {token}");
        tasks.push(tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                let r = client
                    .post(&url)
                    .header("authorization", &auth)
                    .header("content-type", "application/json")
                    .body(body.clone())
                    .send()
                    .await
                    .unwrap();
                assert!(r.status().is_success(), "{}", r.status());
                let _ = r.bytes().await.unwrap();
                done.fetch_add(1, Ordering::Relaxed);
            }
        }));
    }
    let start = Instant::now();
    tokio::time::sleep(Duration::from_secs(secs)).await;
    stop.store(true, Ordering::Relaxed);
    let n = done.load(Ordering::Relaxed);
    let elapsed = start.elapsed().as_secs_f64();
    for t in tasks {
        t.await.unwrap();
    }
    n as f64 / elapsed
}

async fn grpc_round(port: u16, token: &str, conns: usize, channels: usize, secs: u64) -> f64 {
    let stop = Arc::new(AtomicBool::new(false));
    let done = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::new();
    let auth: tonic::metadata::MetadataValue<_> = format!("Bearer {token}").parse().unwrap();
    let mut shared = Vec::new();
    for _ in 0..channels.clamp(1, conns) {
        shared.push(
            tonic::transport::Channel::from_shared(format!("http://127.0.0.1:{port}"))
                .unwrap()
                .connect()
                .await
                .unwrap(),
        );
    }
    for i in 0..conns {
        let mut client = pb::crypto_client::CryptoClient::new(shared[i % shared.len()].clone());
        let (stop, done, auth) = (stop.clone(), done.clone(), auth.clone());
        tasks.push(tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                let mut req = tonic::Request::new(pb::SealRequest {
                    keyring: "bench".into(),
                    plaintext: vec![b'A'; 64],
                    binding: None,
                });
                req.metadata_mut().insert("authorization", auth.clone());
                client.seal(req).await.unwrap();
                done.fetch_add(1, Ordering::Relaxed);
            }
        }));
    }
    let start = Instant::now();
    tokio::time::sleep(Duration::from_secs(secs)).await;
    stop.store(true, Ordering::Relaxed);
    let n = done.load(Ordering::Relaxed);
    let elapsed = start.elapsed().as_secs_f64();
    for t in tasks {
        t.await.unwrap();
    }
    n as f64 / elapsed
}

fn main() {
    if !std::env::args().any(|a| a == "--bench") && arg("--secs").is_none() {
        return;
    }
    let secs: u64 = arg("--secs").map_or(5, |v| v.parse().expect("--secs"));
    let conns: usize = arg("--conns").map_or(32, |v| v.parse().expect("--conns"));
    let rounds: usize = arg("--rounds").map_or(3, |v| v.parse().expect("--rounds"));
    // `--only rest|grpc`: one protocol's rounds alone (to profile the server).
    let only = arg("--only");
    let channels: usize =
        arg("--grpc-channels").map_or(conns, |v| v.parse().expect("--grpc-channels"));
    let dir = tempfile::TempDir::new().unwrap();
    let (http, grpc) = (free_port(), free_port());
    let mut server = Command::new(env!("CARGO_BIN_EXE_fleetkey"))
        .arg("serve")
        .current_dir(dir.path())
        .env("HOME", dir.path().join("home"))
        .env_remove("FLEETKEY_DATA_DIR")
        .env_remove("FLEETKEY_STORE_URL")
        .env("FLEETKEY_LISTEN", format!("127.0.0.1:{http}"))
        .env("FLEETKEY_GRPC_LISTEN", format!("127.0.0.1:{grpc}"))
        .env("FLEETKEY_DEVICE_LISTEN", "off")
        .env("FLEETKEY_DEVICE_UDP_LISTEN", "off")
        .env("FLEETKEY_RATE_LIMIT_PER_TOKEN", "100000000")
        .env("FLEETKEY_RATE_LIMIT_GLOBAL", "100000000")
        .env("FLEETKEY_LOG_FORMAT", "json")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let base = format!("http://127.0.0.1:{http}");
    rt.block_on(async {
        let mut ready = false;
        for _ in 0..300 {
            if reqwest::get(format!("{base}/healthz"))
                .await
                .is_ok_and(|r| r.status().is_success())
            {
                ready = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert!(ready, "the server did not start");
        let token = std::fs::read_to_string(dir.path().join("fleetkey-data/admin.token")).unwrap();
        let token = token.trim().to_owned();
        reqwest::Client::new()
            .post(format!("{base}/v1/keyrings"))
            .bearer_auth(&token)
            .json(&serde_json::json!({"name": "bench"}))
            .send()
            .await
            .unwrap();
        println!(
            "grpc_rest: seal 64 B, {conns} requests in flight (REST {conns} connections, gRPC {} channels), {secs} s rounds, nproc {}",
            channels.clamp(1, conns),
            std::thread::available_parallelism().map_or(0, |n| n.get())
        );
        let pid = server.id();
        println!("server pid {pid}");
        let (mut rest, mut grpc_v) = (Vec::new(), Vec::new());
        let (mut rest_cpu, mut grpc_cpu) = (Vec::new(), Vec::new());
        for i in 0..rounds {
            let c0 = cpu_secs(pid);
            let r = if only.as_deref() == Some("grpc") {
                f64::NAN
            } else {
                rest_round(&base, &token, conns, secs).await
            };
            let c1 = cpu_secs(pid);
            let g = if only.as_deref() == Some("rest") {
                f64::NAN
            } else {
                grpc_round(grpc, &token, conns, channels, secs).await
            };
            let c2 = cpu_secs(pid);
            // Requests per second of server CPU (the load generator shares the machine).
            let (rc, gc) = (r * secs as f64 / (c1 - c0), g * secs as f64 / (c2 - c1));
            println!(
                "round {}: REST {r:.0} req/s ({rc:.0} per server CPU-s), gRPC {g:.0} req/s ({gc:.0} per server CPU-s); {:.2}x, {:.2}x per CPU-s",
                i + 1,
                g / r,
                gc / rc
            );
            rest.push(r);
            grpc_v.push(g);
            rest_cpu.push(rc);
            grpc_cpu.push(gc);
        }
        let (r, g) = (median(rest), median(grpc_v));
        let (rc, gc) = (median(rest_cpu), median(grpc_cpu));
        println!(
            "median: REST {r:.0} req/s, gRPC {g:.0} req/s; gRPC/REST {:.2}x; per server CPU-second REST {rc:.0}, gRPC {gc:.0}: {:.2}x",
            g / r,
            gc / rc
        );
    });
    let _ = server.kill();
    let _ = server.wait();
}
