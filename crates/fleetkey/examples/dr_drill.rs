//! The disaster-recovery drill (`scripts/dr_drill.sh`; docs/runbooks/
//! disaster-recovery.md): a real `fleetkey serve` with scheduled backups, a fleet
//! of simulated devices with sessions and sealed data; then the host is lost
//! (the server killed, its data directory and its key-encryption key deleted)
//! and recovered from the off-host backup plus 3 of 5 escrow shares into a new
//! directory. Proves every envelope sealed before the backup opens, every device
//! reconnects, the audit chain verifies; prints the measured RTO and RPO, and
//! `key=value` lines for docs/benchmarks.md. Exits 1 if any check fails.
//!
//! Usage: `dr_drill --fleetkey target/release/fleetkey [--devices 20]`

#![allow(clippy::print_stdout, clippy::print_stderr)]

use anyhow::{Context as _, Result, bail, ensure};
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime};

struct Ports {
    http: u16,
    devices: u16,
    udp: u16,
    grpc: u16,
}

fn free_port() -> Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

fn fk(bin: &Path, args: &[&str], env: &[(&str, &Path)]) -> Result<String> {
    let mut c = Command::new(bin);
    c.args(args)
        .env_remove("FLEETKEY_ADDR")
        .env_remove("FLEETKEY_PASSPHRASE");
    for (k, v) in env {
        c.env(k, v);
    }
    let out = c.output()?;
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    if !out.status.success() {
        bail!(
            "fleetkey {}: {}{}",
            args.join(" "),
            text,
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(text)
}

fn serve(
    bin: &Path,
    site: &Path,
    kek: &Path,
    backups: &Path,
    recipient: &Path,
    p: &Ports,
) -> Result<Child> {
    std::fs::create_dir_all(site)?;
    let log = std::fs::File::create(site.join("serve.log"))?;
    Ok(Command::new(bin)
        .arg("serve")
        .current_dir(site)
        .env("FLEETKEY_ROOT_KEY_FILE", kek)
        .env("FLEETKEY_DATA_DIR", site.join("data"))
        .env("FLEETKEY_LISTEN", format!("127.0.0.1:{}", p.http))
        .env("FLEETKEY_DEVICE_LISTEN", format!("127.0.0.1:{}", p.devices))
        .env("FLEETKEY_DEVICE_UDP_LISTEN", format!("127.0.0.1:{}", p.udp))
        .env("FLEETKEY_GRPC_LISTEN", format!("127.0.0.1:{}", p.grpc))
        .env("FLEETKEY_BACKUP_DIR", backups)
        .env("FLEETKEY_BACKUP_RECIPIENTS", recipient)
        .env("FLEETKEY_BACKUP_INTERVAL_SECS", "60")
        .env("FLEETKEY_LOG_FORMAT", "json")
        .env_remove("FLEETKEY_PASSPHRASE")
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()?)
}

async fn healthy(http: &reqwest::Client, port: u16) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        if let Ok(r) = http
            .get(format!("http://127.0.0.1:{port}/healthz"))
            .send()
            .await
            && r.status().is_success()
        {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    bail!("the server did not become healthy")
}

async fn call(
    http: &reqwest::Client,
    port: u16,
    token: &str,
    method: &str,
    path: &str,
    body: Value,
) -> Result<(u16, Value)> {
    let url = format!("http://127.0.0.1:{port}{path}");
    let req = if method == "GET" {
        http.get(url)
    } else {
        http.post(url).json(&body)
    };
    let r = req.bearer_auth(token).send().await?;
    let status = r.status().as_u16();
    Ok((status, r.json().await.unwrap_or(Value::Null)))
}

fn newest_backup(dir: &Path) -> Option<(PathBuf, SystemTime)> {
    let mut all: Vec<_> = std::fs::read_dir(dir)
        .ok()?
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "fkbackup"))
        .collect();
    all.sort();
    let p = all.pop()?;
    let t = std::fs::metadata(&p).ok()?.modified().ok()?;
    Some((p, t))
}

#[tokio::main]
async fn main() {
    if let Err(e) = drill().await {
        eprintln!("dr drill FAILED: {e:#}");
        std::process::exit(1);
    }
}

async fn drill() -> Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let arg = |name: &str| {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1))
            .cloned()
    };
    let bin = PathBuf::from(arg("--fleetkey").context("--fleetkey PATH")?);
    let bin = std::fs::canonicalize(&bin).with_context(|| format!("{}", bin.display()))?;
    let devices: usize = arg("--devices").map_or(Ok(20), |d| d.parse())?;
    let work = tempfile::Builder::new().prefix("fleetkey-dr-").tempdir()?;
    let w = work.path();
    let (site1, site2) = (w.join("site1"), w.join("site2"));
    let offhost = w.join("offhost-backups");
    let kek = w.join("kek.fk");
    let http = reqwest::Client::new();

    // Preparation, as an operator does it once.
    fk(&bin, &["keygen", "-o", &kek.display().to_string()], &[])?;
    let (id, pubf) = (w.join("backup.id"), w.join("backup.pub"));
    fk(
        &bin,
        &[
            "keygen",
            "--recipient",
            "-o",
            &id.display().to_string(),
            "--recipient-out",
            &pubf.display().to_string(),
        ],
        &[],
    )?;
    let shares = w.join("shares");
    fk(
        &bin,
        &[
            "custody",
            "split",
            "--shares",
            "5",
            "--threshold",
            "3",
            "--out-dir",
            &shares.display().to_string(),
        ],
        &[("FLEETKEY_ROOT_KEY_FILE", &kek)],
    )?;
    let p = Ports {
        http: free_port()?,
        devices: free_port()?,
        udp: free_port()?,
        grpc: free_port()?,
    };
    let mut server = serve(&bin, &site1, &kek, &offhost, &pubf, &p)?;
    healthy(&http, p.http).await?;
    let token = std::fs::read_to_string(site1.join("data/admin.token"))?
        .trim()
        .to_owned();

    // A fleet at work: devices with sessions, sealed data, an audit trail.
    let (s, _) = call(
        &http,
        p.http,
        &token,
        "POST",
        "/v1/fleets",
        json!({"name": "drill"}),
    )
    .await?;
    ensure!(s == 201 || s == 200, "create fleet: {s}");
    call(
        &http,
        p.http,
        &token,
        "POST",
        "/v1/keyrings",
        json!({"name": "records"}),
    )
    .await?;
    let sim = fleetkey_sim::Sim::connect(
        fleetkey_sim::Endpoints {
            http: format!("http://127.0.0.1:{}", p.http),
            sessions: format!("127.0.0.1:{}", p.devices),
            frames: format!("127.0.0.1:{}", p.udp),
        },
        &token,
        "drill",
        w.join("devices"),
    )
    .await?;
    let mut fleet = Vec::new();
    for i in 0..devices {
        let mut d = sim.provision_full(&format!("drill-{i:03}")).await?;
        sim.run_session(&mut d, 2).await?;
        fleet.push(d);
    }
    let mut envelopes = Vec::new();
    for i in 0..50 {
        let (s, v) = call(
            &http,
            p.http,
            &token,
            "POST",
            "/v1/keyrings/records/seal",
            json!({"plaintext": base64_of(&format!("record {i}"))}),
        )
        .await?;
        ensure!(s == 200, "seal: {s}");
        envelopes.push((i, v["ciphertext"].as_str().unwrap_or_default().to_owned()));
    }
    let written = SystemTime::now();

    // The schedule's next backup (every 60 s) after the data.
    let deadline = Instant::now() + Duration::from_secs(150);
    let (backup, backed_up_at) = loop {
        if let Some((b, t)) = newest_backup(&offhost)
            && t > written
        {
            break (b, t);
        }
        ensure!(
            Instant::now() < deadline,
            "no scheduled backup after the data was written"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    // Work after the backup: lost with the host, within the RPO.
    call(
        &http,
        p.http,
        &token,
        "POST",
        "/v1/keyrings",
        json!({"name": "after-backup"}),
    )
    .await?;

    // The disaster: the host and its key-encryption key are gone.
    let disaster = Instant::now();
    let disaster_at = SystemTime::now();
    server.kill()?;
    server.wait()?;
    std::fs::remove_dir_all(&site1)?;
    std::fs::remove_file(&kek)?;

    // Recovery on a new host: the KEK from 3 of the 5 shares, the newest
    // off-host backup verified and restored, the server started with the same
    // addresses (the devices' configuration).
    let mut share_files: Vec<PathBuf> = std::fs::read_dir(&shares)?
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .collect();
    share_files.sort();
    let kek2 = w.join("kek-recovered.fk");
    let picked = [&share_files[0], &share_files[2], &share_files[4]];
    fk(
        &bin,
        &[
            "custody",
            "recover",
            "--share",
            &picked[0].display().to_string(),
            "--share",
            &picked[1].display().to_string(),
            "--share",
            &picked[2].display().to_string(),
            "-o",
            &kek2.display().to_string(),
        ],
        &[],
    )?;
    let verified = fk(
        &bin,
        &[
            "backup",
            "verify",
            &backup.display().to_string(),
            "--identity",
            &id.display().to_string(),
        ],
        &[],
    )?;
    fk(
        &bin,
        &[
            "backup",
            "restore",
            &backup.display().to_string(),
            "--identity",
            &id.display().to_string(),
            "--data-dir",
            &site2.join("data").display().to_string(),
        ],
        &[],
    )?;
    let mut restored = serve(&bin, &site2, &kek2, &w.join("backups-site2"), &pubf, &p)?;
    healthy(&http, p.http).await?;
    let serving = disaster.elapsed();

    // Proof: every envelope opens, every device reconnects, the chain verifies.
    for (i, ct) in &envelopes {
        let (s, v) = call(
            &http,
            p.http,
            &token,
            "POST",
            "/v1/keyrings/records/unseal",
            json!({"ciphertext": ct}),
        )
        .await?;
        ensure!(
            s == 200 && v["plaintext"] == base64_of(&format!("record {i}")),
            "envelope {i} did not open after the restore: {s} {v}"
        );
    }
    let mut reconnected = 0;
    for d in &mut fleet {
        let stats = sim
            .run_session(d, 1)
            .await
            .with_context(|| format!("device {} reconnecting", d.id))?;
        ensure!(
            stats.telemetry_acked == 1,
            "device {}: telemetry not acknowledged",
            d.id
        );
        reconnected += 1;
    }
    let (_, audit) = call(
        &http,
        p.http,
        &token,
        "GET",
        "/v1/audit/verify",
        Value::Null,
    )
    .await?;
    ensure!(
        audit["verdict"] == "valid",
        "audit chain after the restore: {audit}"
    );
    let (lost, _) = call(
        &http,
        p.http,
        &token,
        "GET",
        "/v1/keyrings/after-backup",
        Value::Null,
    )
    .await?;
    ensure!(
        lost == 404,
        "a change made after the backup survived ({lost}): was the backup newer than the drill thinks?"
    );
    let rto = disaster.elapsed();
    let rpo = disaster_at.duration_since(backed_up_at).unwrap_or_default();
    restored.kill()?;
    restored.wait()?;

    println!("{}", verified.trim());
    println!(
        "dr drill: ok — {} envelopes opened, {reconnected}/{} devices reconnected, audit chain valid ({} entries)",
        envelopes.len(),
        fleet.len(),
        audit["verified_entries"]
    );
    println!(
        "RTO {:.1} s (disaster to the service restored and every check passed; serving again after {:.1} s)",
        rto.as_secs_f64(),
        serving.as_secs_f64()
    );
    println!(
        "RPO {:.1} s (the newest backup was this old when the host was lost; the keyring made after it is gone, as expected; bound: backup_interval_secs + one failed attempt)",
        rpo.as_secs_f64()
    );
    println!("rto_secs={:.1}", rto.as_secs_f64());
    println!("rpo_secs={:.1}", rpo.as_secs_f64());
    Ok(())
}

fn base64_of(s: &str) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(s)
}
