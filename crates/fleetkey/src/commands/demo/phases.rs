//! The demo's later phases: sealing while the keyring rotates under load,
//! device credential rotation, decommissioning with the wipe, and the audit
//! chain check.

use super::{Demo, Full, Small};
use anyhow::{Context, Result, anyhow};
use base64::{Engine as _, engine::general_purpose::STANDARD as B64};
use serde_json::{Value, json};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

impl Demo {
    /// Seals through the keyring while devices are busy; the keyring rotates in
    /// the middle; every envelope must open afterwards.
    pub(super) async fn rotation_under_load(&mut self) -> Result<()> {
        let t = Instant::now();
        let stop = Arc::new(AtomicBool::new(false));
        let sealed = Arc::new(AtomicU64::new(0));
        let mut loaders = tokio::task::JoinSet::new();
        for w in 0..4u32 {
            let path = format!("/v1/keyrings/{}/seal", self.keyring);
            loaders.spawn(seal_until(
                self.api.clone(),
                path,
                w,
                stop.clone(),
                sealed.clone(),
            ));
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
        let opened = self.opened(&envelopes).await?;
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

    /// How many of `envelopes` (plaintext, envelope, version) open to their
    /// plaintext after the rotation (batches of 500).
    async fn opened(&self, envelopes: &[(String, String, u32)]) -> Result<usize> {
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
        Ok(opened)
    }

    /// Operators ask some devices to rotate their credentials; each proposes new
    /// keys over its session, confirms with the new key, then connects with it.
    pub(super) async fn credential_rotation(&mut self) -> Result<()> {
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
    /// telemetry is refused and answered with the wipe over their downlink.
    pub(super) async fn decommission(&mut self) -> Result<()> {
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
        // Constrained devices: their next frame is refused and answered with the
        // wipe over the downlink; each acknowledges it and erases its keys.
        let mut small_wiped = 0;
        for d in &small {
            let mut d = d.lock().await;
            sim.send_frame(&mut d, &json!({ "after": "decommissioning" }))
                .await?;
            self.report.frames_sent += 1;
            let heard = sim.listen(&mut d, Duration::from_secs(5), 0).await?;
            if heard.contains(&fleetkey_sim::Heard::Wiped) && d.is_wiped() {
                small_wiped += 1;
            }
            pb.inc(1);
        }
        pb.finish_and_clear();
        let mut confirmed = 0;
        for d in &small {
            let id = d.lock().await.id.clone();
            if self.wait_state(&id, "decommissioned").await? {
                confirmed += 1;
            }
        }
        self.report.wipes += small_wiped as u64;
        self.report.check(
            "decommissioning",
            small_wiped == ns && confirmed == ns,
            format!("{ns} constrained devices wiped over their downlink, decommissioned with the wipe confirmed ({small_wiped} wiped, {confirmed} confirmed)"),
        );
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
            format!("{ns} decommissioning constrained devices' telemetry refused (server: {got})"),
        );
        self.say(format!(
            "decommissioning: {} devices in {:.1} s",
            nf + ns,
            t.elapsed().as_secs_f64()
        ));
        Ok(())
    }

    /// Waits (up to 5 s) for a device to reach `state`.
    async fn wait_state(&self, id: &str, state: &str) -> Result<bool> {
        for _ in 0..100 {
            let d = self
                .api
                .get(&format!("/v1/fleets/{}/devices/{id}", self.fleet))
                .await?;
            if d["state"] == state {
                return Ok(true);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Ok(false)
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
    pub(super) async fn audit(&mut self) -> Result<()> {
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
}

/// Seals through `path` until `stop`, counting in `sealed`; each (plaintext,
/// envelope, version).
async fn seal_until(
    api: fleetkey_sim::Api,
    path: String,
    worker: u32,
    stop: Arc<AtomicBool>,
    sealed: Arc<AtomicU64>,
) -> Result<Vec<(String, String, u32)>> {
    let mut out = Vec::new();
    let mut i = 0u32;
    while !stop.load(Ordering::Acquire) {
        let pt = B64.encode(format!("reading {worker}-{i}").repeat(8));
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
    Ok(out)
}
