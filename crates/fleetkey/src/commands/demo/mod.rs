//! `fleetkey demo`: a fleet of simulated devices (full profile over Noise
//! sessions, constrained profile over AES-CCM frames) walked through its whole
//! life against a real server — in this process on a temporary directory, or the
//! one at `FLEETKEY_ADDR` — with every step checked. Exits 0 only if every check
//! held. `docs/operations.md#fleetkey-demo`.

mod report;
mod server;

use crate::cli::DemoArgs;
use crate::error::{CliError, CliResult};
use crate::local::runtime;
use anyhow::{Context, Result, anyhow};
use base64::{Engine as _, engine::general_purpose::STANDARD as B64};
use fleetkey_sim::{Api, ConstrainedDevice, FullDevice, Sim, samples};
use indicatif::{MultiProgress, ProgressBar, ProgressStyle};
use report::Report;
use serde_json::{Value, json};
use server::DemoServer;
use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};
use tokio::sync::Mutex;

type Full = Arc<Mutex<FullDevice>>;
type Small = Arc<Mutex<ConstrainedDevice>>;

/// Metric families whose non-success samples the summary lists as refusals.
const REFUSAL_METRICS: [(&str, &str, &str); 4] = [
    ("session", "fleetkey_device_refusals_total", "reason="),
    ("frame", "fleetkey_device_frames_total", "result="),
    (
        "message",
        "fleetkey_device_messages_total",
        "result=\"refused\"",
    ),
    ("handshake", "fleetkey_device_handshakes_total", "result="),
];

pub fn run(args: DemoArgs) -> CliResult<()> {
    if args.full == 0 && args.constrained == 0 {
        return Err(CliError::usage("the demo needs at least one device"));
    }
    runtime()?.block_on(async move {
        let server = match std::env::var("FLEETKEY_ADDR")
            .ok()
            .filter(|a| !a.is_empty())
        {
            Some(addr) => {
                DemoServer::remote(&addr, args.device_addr.clone(), args.udp_addr.clone())?
            }
            None => DemoServer::in_process().await?,
        };
        let started = Instant::now();
        let mut demo =
            Demo::new(&server, &args).map_err(|e| CliError::usage(format!("demo: {e:#}")))?;
        if let Err(e) = demo.run_phases().await {
            demo.report.check("aborted", false, format!("{e:#}"));
        }
        demo.finish(&server, started).await;
        let report = std::mem::take(&mut demo.report);
        drop(demo);
        server.shutdown().await?;
        crate::out!("\nfleetkey demo: summary\n{}", report.render());
        if report.passed() {
            crate::out!("fleetkey demo: every check held");
            Ok(())
        } else {
            let failed = report.checks.iter().filter(|c| !c.ok).count();
            Err(CliError::refused(format!("demo: {failed} check(s) failed")))
        }
    })
}

struct Demo {
    api: Api,
    endpoints: fleetkey_sim::Endpoints,
    token: zeroize::Zeroizing<String>,
    sim: Option<Arc<Sim>>,
    fleet: String,
    keyring: String,
    suffix: String,
    full: Vec<Full>,
    small: Vec<Small>,
    args: DemoArgs,
    report: Report,
    progress: MultiProgress,
    baseline: String,
    state_dir: tempfile::TempDir,
}

impl Demo {
    fn new(server: &DemoServer, args: &DemoArgs) -> Result<Self> {
        let suffix = hex::encode(fleetkey_crypto::rand::array::<4>()?);
        Ok(Self {
            api: Api::new(&server.endpoints.http, &server.token)?,
            endpoints: server.endpoints.clone(),
            token: server.token.clone(),
            sim: None,
            fleet: format!("demo-{suffix}"),
            keyring: format!("demo-{suffix}"),
            suffix,
            full: Vec::new(),
            small: Vec::new(),
            args: args.clone(),
            report: Report {
                server: if server.in_process {
                    format!("in process, {}", server.endpoints.http)
                } else {
                    server.endpoints.http.clone()
                },
                ..Report::default()
            },
            progress: MultiProgress::new(),
            baseline: String::new(),
            state_dir: tempfile::Builder::new()
                .prefix("fleetkey-demo-devices-")
                .tempdir()?,
        })
    }

    fn sim(&self) -> Result<Arc<Sim>> {
        self.sim.clone().context("the simulator is not connected")
    }

    fn say(&self, line: String) {
        if self.progress.is_hidden() {
            crate::out!("{line}");
        } else {
            let _ = self.progress.println(line);
        }
    }

    fn bar(&self, what: &str, len: u64) -> ProgressBar {
        let pb = self.progress.add(ProgressBar::new(len));
        pb.set_style(
            ProgressStyle::with_template("{prefix:>24} [{bar:30}] {pos}/{len} {msg}")
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .progress_chars("=> "),
        );
        pb.set_prefix(what.to_owned());
        pb
    }

    /// Runs `f` on every item, at most `--concurrency` at a time, advancing `pb`.
    async fn each<T, R, F, Fut>(&self, items: Vec<T>, pb: &ProgressBar, f: F) -> Vec<Result<R>>
    where
        F: Fn(T) -> Fut,
        Fut: Future<Output = Result<R>> + Send + 'static,
        R: Send + 'static,
    {
        let sem = Arc::new(tokio::sync::Semaphore::new(self.args.concurrency.max(1)));
        let mut set = tokio::task::JoinSet::new();
        for item in items {
            let Ok(permit) = sem.clone().acquire_owned().await else {
                break;
            };
            let fut = f(item);
            let pb = pb.clone();
            set.spawn(async move {
                let r = fut.await;
                drop(permit);
                pb.inc(1);
                r
            });
        }
        let mut out = Vec::new();
        while let Some(r) = set.join_next().await {
            out.push(r.unwrap_or_else(|e| Err(anyhow!("task: {e}"))));
        }
        out
    }

    /// Fails on the first error of a phase's tasks.
    fn all_ok<R>(results: Vec<Result<R>>) -> Result<Vec<R>> {
        results.into_iter().collect()
    }

    async fn metrics(&self) -> Result<String> {
        self.api.metrics().await
    }

    /// The increase of a sample since the demo started.
    fn delta(&self, now: &str, name: &str, labels: &str) -> u64 {
        fleetkey_sim::count(now, name, labels).saturating_sub(fleetkey_sim::count(
            &self.baseline,
            name,
            labels,
        ))
    }

    /// Waits (up to 10 s) until `name{labels}` has grown by `want` since the start.
    async fn wait_metric(&self, name: &str, labels: &str, want: u64) -> Result<u64> {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let got = self.delta(&self.metrics().await?, name, labels);
            if got >= want || Instant::now() > deadline {
                return Ok(got);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    async fn devices(&self) -> Result<Vec<Value>> {
        let mut out = Vec::new();
        let mut after = String::new();
        loop {
            let page = self
                .api
                .get(&format!(
                    "/v1/fleets/{}/devices?limit=1000&after={after}",
                    self.fleet
                ))
                .await?;
            out.extend(page["devices"].as_array().cloned().unwrap_or_default());
            match page["next_after"].as_str() {
                Some(a) => after = a.to_owned(),
                None => return Ok(out),
            }
        }
    }

    fn count_states(devices: &[Value]) -> BTreeMap<String, u64> {
        let mut m = BTreeMap::new();
        for d in devices {
            *m.entry(d["state"].as_str().unwrap_or("?").to_owned())
                .or_default() += 1;
        }
        m
    }

    async fn run_phases(&mut self) -> Result<()> {
        self.baseline = self.metrics().await.context("GET /metrics")?;
        self.setup().await?;
        self.factory().await?;
        self.onboarding().await?;
        self.sessions().await?;
        self.config_push().await?;
        self.rotation_under_load().await?;
        self.credential_rotation().await?;
        self.decommission().await?;
        self.audit().await?;
        Ok(())
    }

    async fn setup(&mut self) -> Result<()> {
        self.api
            .post("/v1/fleets", &json!({ "name": self.fleet }))
            .await?;
        let schema = json!({
            "type": "object",
            "properties": {
                "interval_s": { "type": "integer", "minimum": 1, "maximum": 86400, "default": 60 },
                "server": { "type": "string", "maxLength": 253, "default": "ingest.local" }
            }
        });
        self.api
            .put(
                &format!("/v1/fleets/{}/schema", self.fleet),
                &json!({ "schema": schema }),
            )
            .await?;
        self.api
            .post("/v1/keyrings", &json!({ "name": self.keyring }))
            .await?;
        let sim = Sim::connect(
            self.endpoints.clone(),
            &self.token,
            &self.fleet,
            self.state_dir.path().to_path_buf(),
        )
        .await
        .context("simulator: verifying the server's key record")?;
        self.sim = Some(Arc::new(sim));
        self.say(format!(
            "fleet {}: {} full-profile + {} constrained devices against {}",
            self.fleet, self.args.full, self.args.constrained, self.report.server
        ));
        Ok(())
    }

    /// The factory: every device's keys are made on the device; the jig registers
    /// full devices' public keys and seals constrained devices' PSKs to the factory
    /// recipient.
    async fn factory(&mut self) -> Result<()> {
        let t = Instant::now();
        let sim = self.sim()?;
        let n = self.args.full + self.args.constrained;
        let pb = self.bar("factory provisioning", n as u64);
        let sfx = self.suffix.clone();
        let full = self
            .each((0..self.args.full).collect(), &pb, |i| {
                let sim = sim.clone();
                let hw = format!("demo-{sfx}-full-{i:03}");
                async move { sim.manufacture_full(&hw).await }
            })
            .await;
        self.full = Self::all_ok(full)?
            .into_iter()
            .map(|d| Arc::new(Mutex::new(d)))
            .collect();
        let small = self
            .each((0..self.args.constrained).collect(), &pb, |i| {
                let sim = sim.clone();
                let hw = format!("demo-{sfx}-small-{i:03}");
                async move { sim.provision_constrained(&hw).await }
            })
            .await;
        self.small = Self::all_ok(small)?
            .into_iter()
            .map(|d| Arc::new(Mutex::new(d)))
            .collect();
        pb.finish_and_clear();
        let devices = self.devices().await?;
        let states = Self::count_states(&devices);
        self.report.check(
            "factory",
            devices.len() == n && states.get("manufactured") == Some(&(n as u64)),
            format!("{n} devices registered as manufactured (server: {states:?})"),
        );
        let constrained = devices
            .iter()
            .filter(|d| d["profile"] == "constrained")
            .count();
        self.report.check(
            "factory",
            constrained == self.args.constrained,
            format!(
                "{} constrained devices with sealed factory secrets (server: {constrained})",
                self.args.constrained
            ),
        );
        self.say(format!(
            "factory provisioning: {n} devices in {:.1} s",
            t.elapsed().as_secs_f64()
        ));
        Ok(())
    }

    /// Zero-touch onboarding: full devices answer a signed challenge; constrained
    /// devices onboard with their first verified session start.
    async fn onboarding(&mut self) -> Result<()> {
        let t = Instant::now();
        let sim = self.sim()?;
        let n = self.full.len() + self.small.len();
        let pb = self.bar("onboarding", n as u64);
        let r = self
            .each(self.full.clone(), &pb, |d| {
                let sim = sim.clone();
                async move { sim.onboard(&mut *d.lock().await).await }
            })
            .await;
        Self::all_ok(r)?;
        let r = self
            .each(self.small.clone(), &pb, |d| {
                let sim = sim.clone();
                async move { sim.boot(&mut *d.lock().await).await }
            })
            .await;
        Self::all_ok(r)?;
        pb.finish_and_clear();
        self.report.frames_sent += self.small.len() as u64;
        // Frames are datagrams: wait until the server has seen every session start.
        let deadline = Instant::now() + Duration::from_secs(10);
        let ready = |s: &BTreeMap<String, u64>| {
            s.get("onboarded").copied().unwrap_or(0) + s.get("active").copied().unwrap_or(0)
        };
        let states = loop {
            let states = Self::count_states(&self.devices().await?);
            if ready(&states) == n as u64 || Instant::now() > deadline {
                break states;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        self.report.check(
            "onboarding",
            ready(&states) == n as u64,
            format!("all {n} devices onboarded (server: {states:?})"),
        );
        self.say(format!(
            "zero-touch onboarding: {n} devices in {:.1} s",
            t.elapsed().as_secs_f64()
        ));
        Ok(())
    }

    /// One session per full device and `telemetry` frames per constrained device.
    async fn traffic(
        &mut self,
        what: &str,
        full: Vec<Full>,
        telemetry: u32,
    ) -> Result<fleetkey_sim::SessionStats> {
        let sim = self.sim()?;
        let pb = self.bar(what, (full.len() + self.small.len()) as u64);
        let r = self
            .each(full, &pb, |d| {
                let sim = sim.clone();
                async move { sim.run_session(&mut *d.lock().await, telemetry).await }
            })
            .await;
        let mut total = fleetkey_sim::SessionStats::default();
        for s in Self::all_ok(r)? {
            total.connect_latencies.extend(s.connect_latencies);
            total.telemetry_acked += s.telemetry_acked;
            total.receipts += s.receipts;
            total.rotations += s.rotations;
            total.wiped |= s.wiped;
        }
        let r = self
            .each(self.small.clone(), &pb, |d| {
                let sim = sim.clone();
                async move {
                    let mut d = d.lock().await;
                    for i in 0..telemetry {
                        sim.send_frame(&mut d, &json!({ "i": i, "soil_moisture": 30 + i }))
                            .await?;
                        // Per-device order over loopback UDP.
                        tokio::time::sleep(Duration::from_millis(2)).await;
                    }
                    Ok(())
                }
            })
            .await;
        Self::all_ok(r)?;
        self.report.frames_sent += u64::from(telemetry) * self.small.len() as u64;
        self.report.sessions += total.connect_latencies.len() as u64;
        self.report
            .connect
            .extend(total.connect_latencies.iter().copied());
        self.report.telemetry_acked += total.telemetry_acked;
        pb.finish_and_clear();
        Ok(total)
    }

    async fn sessions(&mut self) -> Result<()> {
        let t = Instant::now();
        let tel = self.args.telemetry;
        let stats = self
            .traffic("sessions + telemetry", self.full.clone(), tel)
            .await?;
        let want = u64::from(tel) * self.full.len() as u64;
        self.report.check(
            "sessions",
            stats.telemetry_acked == want,
            format!(
                "{want} telemetry messages acknowledged over Noise IK (got {})",
                stats.telemetry_acked
            ),
        );
        let frames = self.report.frames_sent;
        let got = self
            .wait_metric(
                "fleetkey_device_frames_total",
                "result=\"accepted\"",
                frames,
            )
            .await?;
        self.report.check(
            "sessions",
            got == frames,
            format!("{frames} constrained-device frames verified (server: {got})"),
        );
        self.say(format!(
            "sessions and telemetry: {} sessions, {} frames in {:.1} s",
            stats.connect_latencies.len(),
            frames,
            t.elapsed().as_secs_f64()
        ));
        Ok(())
    }

    /// A validated config for every full device, delivered as a signed command
    /// and answered with a signed receipt; an invalid config is refused.
    async fn config_push(&mut self) -> Result<()> {
        let t = Instant::now();
        let first = self
            .full
            .first()
            .context("no full-profile devices")?
            .lock()
            .await
            .id
            .clone();
        let bad = self
            .api
            .put(
                &format!("/v1/fleets/{}/devices/{first}/config", self.fleet),
                &json!({ "config": { "interval_s": 0 } }),
            )
            .await;
        let refused = matches!(&bad, Err(e) if e.to_string().contains("422"));
        self.report.check(
            "config push",
            refused,
            "a config outside the schema is refused (422)",
        );
        if refused {
            *self
                .report
                .refusals
                .entry(("config".into(), "schema_violation".into()))
                .or_default() += 1;
        }
        let mut ids = Vec::new();
        for d in &self.full {
            ids.push(d.lock().await.id.clone());
        }
        for id in &ids {
            self.api
                .put(
                    &format!("/v1/fleets/{}/devices/{id}/config", self.fleet),
                    &json!({ "config": { "interval_s": 30, "server": "ingest.demo" } }),
                )
                .await?;
        }
        let stats = self.traffic("config push", self.full.clone(), 1).await?;
        self.report.receipts += stats.receipts;
        let mut done = 0;
        for id in &ids {
            let c = self
                .api
                .get(&format!("/v1/fleets/{}/devices/{id}/commands", self.fleet))
                .await?;
            done += c["commands"].as_array().map_or(0, |l| {
                l.iter()
                    .filter(|c| c["kind"] == "update_config" && c["state"] == "done")
                    .count()
            });
        }
        self.report.check(
            "config push",
            stats.receipts == ids.len() as u64 && done == ids.len(),
            format!(
                "{} signed receipts accepted, {done} config commands done",
                stats.receipts
            ),
        );
        self.say(format!(
            "config push: {} devices in {:.1} s",
            ids.len(),
            t.elapsed().as_secs_f64()
        ));
        Ok(())
    }

    /// Seals through the keyring while devices are busy; the keyring rotates in
    /// the middle; every envelope must open afterwards.
    async fn rotation_under_load(&mut self) -> Result<()> {
        let t = Instant::now();
        let stop = Arc::new(AtomicBool::new(false));
        let sealed = Arc::new(AtomicU64::new(0));
        let mut loaders = tokio::task::JoinSet::new();
        for w in 0..4u32 {
            let api = self.api.clone();
            let path = format!("/v1/keyrings/{}/seal", self.keyring);
            let stop = stop.clone();
            let sealed = sealed.clone();
            loaders.spawn(async move {
                let mut out: Vec<(String, String, u32)> = Vec::new();
                let mut i = 0u32;
                while !stop.load(Ordering::Acquire) {
                    let pt = B64.encode(format!("reading {w}-{i}").repeat(8));
                    let r = api
                        .post(
                            &path,
                            &json!({ "plaintext": pt, "aad": B64.encode("demo") }),
                        )
                        .await?;
                    let ct = r["ciphertext"].as_str().context("ciphertext")?.to_owned();
                    let v = r["key_version"]
                        .as_u64()
                        .and_then(|v| u32::try_from(v).ok())
                        .context("key_version")?;
                    out.push((pt, ct, v));
                    sealed.fetch_add(1, Ordering::AcqRel);
                    i += 1;
                }
                anyhow::Ok(out)
            });
        }
        let rotate = {
            let api = self.api.clone();
            let path = format!("/v1/keyrings/{}/rotate", self.keyring);
            let sealed = sealed.clone();
            tokio::spawn(async move {
                while sealed.load(Ordering::Acquire) < 50 {
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
                api.post(&path, &json!({})).await
            })
        };
        let traffic = self
            .traffic(
                "rotation under load",
                self.full.clone(),
                self.args.telemetry,
            )
            .await;
        // Keep sealing until the rotation has happened, then a little longer.
        let rotated = rotate.await.map_err(|e| anyhow!("rotation task: {e}"))?;
        let after = sealed.load(Ordering::Acquire) + 50;
        while sealed.load(Ordering::Acquire) < after {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        stop.store(true, Ordering::Release);
        let mut envelopes = Vec::new();
        while let Some(r) = loaders.join_next().await {
            envelopes.extend(r.map_err(|e| anyhow!("seal task: {e}"))??);
        }
        traffic?;
        rotated?;
        let mut opened = 0;
        for chunk in envelopes.chunks(500) {
            let items: Vec<Value> = chunk
                .iter()
                .map(|(_, ct, _)| json!({ "ciphertext": ct, "aad": B64.encode("demo") }))
                .collect();
            let r = self
                .api
                .post(
                    &format!("/v1/keyrings/{}/unseal/batch", self.keyring),
                    &json!({ "items": items }),
                )
                .await?;
            let results = r["results"].as_array().cloned().unwrap_or_default();
            opened += chunk
                .iter()
                .zip(results)
                .filter(|((pt, _, _), res)| res["plaintext"].as_str() == Some(pt.as_str()))
                .count();
        }
        for (_, _, v) in &envelopes {
            *self.report.seal_versions.entry(*v).or_default() += 1;
        }
        self.report.seals = envelopes.len() as u64;
        self.report.check(
            "key rotation",
            self.report.seal_versions.len() >= 2,
            format!(
                "the keyring rotated mid-load: envelopes under {} versions",
                self.report.seal_versions.len()
            ),
        );
        self.report.check(
            "key rotation",
            opened == envelopes.len(),
            format!(
                "{opened} of {} envelopes open after the rotation",
                envelopes.len()
            ),
        );
        self.say(format!(
            "key rotation under load: {} seals, {} sessions in {:.1} s",
            envelopes.len(),
            self.full.len(),
            t.elapsed().as_secs_f64()
        ));
        Ok(())
    }

    /// Operators ask some devices to rotate their credentials; each proposes new
    /// keys over its session, confirms with the new key, then connects with it.
    async fn credential_rotation(&mut self) -> Result<()> {
        let t = Instant::now();
        let n = self.full.len().min(10);
        let chosen: Vec<Full> = self.full[..n].to_vec();
        for d in &chosen {
            let id = d.lock().await.id.clone();
            self.api
                .post(
                    &format!("/v1/fleets/{}/devices/{id}/rotate", self.fleet),
                    &json!({ "reason": "fleetkey demo" }),
                )
                .await?;
        }
        let before = self.delta(
            &self.metrics().await?,
            "fleetkey_key_rotations_total",
            "kind=\"device_credential\"",
        );
        let stats = self
            .traffic("credential rotation", chosen.clone(), 1)
            .await?;
        self.report.credential_rotations += stats.rotations;
        let after = self.delta(
            &self.metrics().await?,
            "fleetkey_key_rotations_total",
            "kind=\"device_credential\"",
        );
        // The new keys open sessions.
        let again = self.traffic("sessions with new keys", chosen, 1).await?;
        self.report.check(
            "credential rotation",
            stats.rotations == n as u64 && after - before == n as u64,
            format!(
                "{n} devices rotated over their sessions (server counted {})",
                after - before
            ),
        );
        self.report.check(
            "credential rotation",
            again.telemetry_acked == n as u64,
            format!("{n} devices connect with their new keys"),
        );
        self.say(format!(
            "credential rotation: {n} devices in {:.1} s",
            t.elapsed().as_secs_f64()
        ));
        Ok(())
    }

    /// Forged and replayed frames are refused; some devices are decommissioned:
    /// full ones are wiped over their session and then refused, constrained ones'
    /// frames are refused.
    async fn decommission(&mut self) -> Result<()> {
        let t = Instant::now();
        let sim = self.sim()?;
        if let Some(d) = self.small.first() {
            let mut d = d.lock().await;
            sim.replay_last(&d).await?;
            sim.send_forged(&mut d, &json!({ "forged": true })).await?;
            self.report.frames_sent += 2;
            let replay = self
                .wait_metric("fleetkey_device_frames_total", "result=\"replay\"", 1)
                .await?;
            let forged = self
                .wait_metric("fleetkey_device_frames_total", "result=\"forged\"", 1)
                .await?;
            self.report.check(
                "refusals",
                replay == 1 && forged == 1,
                format!(
                    "a replayed and a forged frame are refused (replay {replay}, forged {forged})"
                ),
            );
        }
        let nf = self.full.len().min(3);
        let ns = self.small.len().min(2);
        let full: Vec<Full> = self.full[self.full.len() - nf..].to_vec();
        let small: Vec<Small> = self.small[self.small.len() - ns..].to_vec();
        for d in &full {
            let id = d.lock().await.id.clone();
            self.decommission_one(&id).await?;
        }
        for d in &small {
            let id = d.lock().await.id.clone();
            self.decommission_one(&id).await?;
        }
        // Full devices: the next session carries only the wipe; then they are refused.
        let pb = self.bar("decommissioning", (nf + ns) as u64);
        let r = self
            .each(full.clone(), &pb, |d| {
                let sim = sim.clone();
                async move {
                    let mut d = d.lock().await;
                    let s = sim.run_session(&mut d, 1).await?;
                    let later = sim.run_session(&mut d, 1).await;
                    let refused = matches!(
                        later.as_ref().map_err(|e| e.downcast_ref::<fleetkey_client::Error>()),
                        Err(Some(fleetkey_client::Error::Refused(r))) if r == "decommissioned"
                    );
                    Ok((s.wiped, refused, s.connect_latencies))
                }
            })
            .await;
        let r = Self::all_ok(r)?;
        let wiped = r.iter().filter(|(w, _, _)| *w).count();
        let refused = r.iter().filter(|(_, f, _)| *f).count();
        for (_, _, l) in r {
            self.report.sessions += l.len() as u64;
            self.report.connect.extend(l);
        }
        self.report.wipes += wiped as u64;
        self.report.check(
            "decommissioning",
            wiped == nf && refused == nf,
            format!("{nf} full devices wiped over their session, then refused ({wiped} wiped, {refused} refused)"),
        );
        for d in &small {
            let mut d = d.lock().await;
            sim.send_frame(&mut d, &json!({ "after": "decommissioning" }))
                .await?;
            self.report.frames_sent += 1;
            pb.inc(1);
        }
        pb.finish_and_clear();
        let got = self
            .wait_metric(
                "fleetkey_device_frames_total",
                "result=\"decommissioned\"",
                ns as u64,
            )
            .await?;
        self.report.check(
            "decommissioning",
            got == ns as u64,
            format!("{ns} decommissioned constrained devices' frames refused (server: {got})"),
        );
        self.say(format!(
            "decommissioning: {} devices in {:.1} s",
            nf + ns,
            t.elapsed().as_secs_f64()
        ));
        Ok(())
    }

    async fn decommission_one(&self, id: &str) -> Result<()> {
        self.api
            .post(
                &format!("/v1/fleets/{}/devices/{id}/decommission", self.fleet),
                &json!({ "reason": "fleetkey demo: end of life" }),
            )
            .await?;
        Ok(())
    }

    /// The audit log, fetched page by page up to a fresh signed checkpoint and
    /// verified against the service's public key (the directory key).
    async fn audit(&mut self) -> Result<()> {
        let (lines, key) = self.api.audit_export().await?;
        match fleetkey_server::audit::verify::verify_export(&lines, &key) {
            fleetkey_server::audit::verify::Verdict::Valid {
                entries,
                checkpoints,
            } => {
                self.report.audit = Some((entries, checkpoints));
                self.report.check(
                    "audit",
                    true,
                    format!("the audit chain verifies: {entries} entries, signed checkpoint"),
                );
            }
            fleetkey_server::audit::verify::Verdict::Invalid { seq, reason } => {
                self.report.check(
                    "audit",
                    false,
                    format!("audit chain invalid at {seq}: {reason}"),
                );
            }
        }
        Ok(())
    }

    /// Final numbers for the summary from the server's metrics and registry.
    async fn finish(&mut self, _server: &DemoServer, started: Instant) {
        self.report.elapsed = started.elapsed();
        let _ = self.progress.clear();
        if let Ok(devices) = self.devices().await {
            self.report.states = Self::count_states(&devices);
            let mut profiles = BTreeMap::new();
            for d in &devices {
                *profiles
                    .entry(d["profile"].as_str().unwrap_or("?").to_owned())
                    .or_insert(0u64) += 1;
            }
            self.report.profiles = profiles;
        }
        let Ok(now) = self.metrics().await else {
            return;
        };
        self.report.frames_accepted =
            self.delta(&now, "fleetkey_device_frames_total", "result=\"accepted\"");
        for (labels, _) in samples(&now, "fleetkey_device_handshakes_total") {
            if labels.contains("result=\"ok\"")
                && let Some(p) = label(&labels, "pattern")
            {
                let n = self.delta(&now, "fleetkey_device_handshakes_total", &labels);
                if n > 0 {
                    self.report.handshakes.insert(p, n);
                }
            }
        }
        for (group, name, filter) in REFUSAL_METRICS {
            for (labels, _) in samples(&now, name) {
                if !labels.contains(filter)
                    || labels.contains("result=\"accepted\"")
                    || labels.contains("result=\"ok\"")
                {
                    continue;
                }
                let n = self.delta(&now, name, &labels);
                let reason = label(&labels, "reason")
                    .or_else(|| label(&labels, "type").filter(|_| group == "message"))
                    .or_else(|| label(&labels, "result"))
                    .unwrap_or(labels.clone());
                if n > 0 {
                    *self
                        .report
                        .refusals
                        .entry((group.to_owned(), reason))
                        .or_default() += n;
                }
            }
        }
    }
}

/// The value of `key="…"` in a label set.
fn label(labels: &str, key: &str) -> Option<String> {
    labels
        .split(',')
        .filter_map(|kv| kv.split_once('='))
        .find(|(k, _)| *k == key)
        .map(|(_, v)| v.trim_matches('"').to_owned())
}

#[cfg(test)]
mod tests {
    use super::label;

    #[test]
    fn labels_are_read_by_key() {
        let l = "pattern=\"IK\",result=\"ok\"";
        assert_eq!(label(l, "pattern").as_deref(), Some("IK"));
        assert_eq!(label(l, "result").as_deref(), Some("ok"));
        assert_eq!(label(l, "reason"), None);
    }
}
