//! `fleetkey demo`: a fleet of simulated devices (full profile over Noise
//! sessions, constrained profile over AES-CCM frames) walked through its whole
//! life against a real server — in this process on a temporary directory, or the
//! one at `FLEETKEY_ADDR` — with every step checked. Exits 0 only if every check
//! held. `docs/operations.md#fleetkey-demo`.

mod phases;
mod report;
mod server;

use crate::cli::DemoArgs;
use crate::error::{CliError, CliResult};
use crate::local::runtime;
use anyhow::{Context, Result, anyhow};
use fleetkey_sim::{Api, ConstrainedDevice, FullDevice, Sim, samples};
use indicatif::{MultiProgress, ProgressBar, ProgressStyle};
use report::Report;
use serde_json::{Value, json};
use server::DemoServer;
use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;
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
