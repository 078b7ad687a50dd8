//! What the demo checked and measured, and the summary table.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::Duration;

/// One check: a phase, what must hold, whether it did.
#[derive(Debug, Clone)]
pub struct Check {
    pub phase: &'static str,
    pub what: String,
    pub ok: bool,
}

/// Everything the summary shows.
#[derive(Debug, Default)]
pub struct Report {
    pub checks: Vec<Check>,
    /// Session establishment (TCP, Noise handshake, hello, welcome), as devices saw it.
    pub connect: Vec<Duration>,
    pub sessions: u64,
    pub telemetry_acked: u64,
    pub frames_sent: u64,
    pub seals: u64,
    pub seal_versions: BTreeMap<u32, u64>,
    pub receipts: u64,
    pub credential_rotations: u64,
    pub wipes: u64,
    /// Final device states, by state.
    pub states: BTreeMap<String, u64>,
    pub profiles: BTreeMap<String, u64>,
    /// Metric deltas over the run: (group, reason) → count.
    pub refusals: BTreeMap<(String, String), u64>,
    pub frames_accepted: u64,
    pub handshakes: BTreeMap<String, u64>,
    pub audit: Option<(u64, u64)>,
    pub elapsed: Duration,
    pub server: String,
}

impl Report {
    /// Records a check.
    pub fn check(&mut self, phase: &'static str, ok: bool, what: impl Into<String>) -> bool {
        self.checks.push(Check {
            phase,
            what: what.into(),
            ok,
        });
        ok
    }

    /// Whether every check held (and there was at least one).
    pub fn passed(&self) -> bool {
        !self.checks.is_empty() && self.checks.iter().all(|c| c.ok)
    }

    /// The summary table.
    pub fn render(&self) -> String {
        let mut t = String::new();
        let mut row = |k: &str, v: String| {
            let _ = writeln!(t, "  {k:<30} {v}");
        };
        let join = |m: &BTreeMap<String, u64>| {
            m.iter()
                .map(|(k, v)| format!("{k} {v}"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        row("server", self.server.clone());
        row("devices by profile", join(&self.profiles));
        row("devices by final state", join(&self.states));
        row(
            "sessions (Noise)",
            format!(
                "{} ({}), telemetry acknowledged {}",
                self.sessions,
                join(&self.handshakes),
                self.telemetry_acked
            ),
        );
        let mut lat = self.connect.clone();
        lat.sort();
        row(
            "session setup latency",
            if lat.is_empty() {
                "-".into()
            } else {
                format!(
                    "p50 {} · p90 {} · p99 {} · max {}",
                    ms(percentile(&lat, 50)),
                    ms(percentile(&lat, 90)),
                    ms(percentile(&lat, 99)),
                    ms(lat[lat.len() - 1])
                )
            },
        );
        row(
            "frames (AES-CCM, UDP)",
            format!(
                "sent {}, accepted {}",
                self.frames_sent, self.frames_accepted
            ),
        );
        row(
            "config receipts",
            format!("{} signed receipts accepted", self.receipts),
        );
        row(
            "keyring seals under rotation",
            format!(
                "{} ({})",
                self.seals,
                self.seal_versions
                    .iter()
                    .map(|(v, n)| format!("v{v} {n}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        );
        row(
            "credential rotations",
            format!("{} over sessions", self.credential_rotations),
        );
        row("wipes confirmed", self.wipes.to_string());
        let refusals = if self.refusals.is_empty() {
            "none".into()
        } else {
            self.refusals
                .iter()
                .map(|((g, r), n)| format!("{g}/{r} {n}"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        row("refusals by reason", refusals);
        row(
            "audit chain",
            match self.audit {
                Some((e, c)) => format!("verified: {e} entries, {c} checkpoint(s)"),
                None => "not verified".into(),
            },
        );
        row("elapsed", format!("{:.1} s", self.elapsed.as_secs_f64()));
        let _ = writeln!(t);
        let passed = self.checks.iter().filter(|c| c.ok).count();
        let _ = writeln!(t, "  checks: {passed}/{} held", self.checks.len());
        for c in &self.checks {
            let mark = if c.ok { "ok  " } else { "FAIL" };
            let _ = writeln!(t, "  {mark} {:<24} {}", c.phase, c.what);
        }
        t
    }
}

/// The `p`th percentile of sorted durations (nearest rank).
pub fn percentile(sorted: &[Duration], p: usize) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = (p * sorted.len()).div_ceil(100).clamp(1, sorted.len());
    sorted[rank - 1]
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_are_nearest_rank() {
        let d: Vec<Duration> = (1..=100).map(Duration::from_millis).collect();
        assert_eq!(percentile(&d, 50), Duration::from_millis(50));
        assert_eq!(percentile(&d, 99), Duration::from_millis(99));
        assert_eq!(percentile(&d, 100), Duration::from_millis(100));
        assert_eq!(percentile(&d[..1], 90), Duration::from_millis(1));
        assert_eq!(percentile(&[], 50), Duration::ZERO);
    }

    #[test]
    fn a_report_passes_only_when_every_check_held() {
        let mut r = Report::default();
        assert!(!r.passed());
        r.check("a", true, "x");
        assert!(r.passed());
        r.check("b", false, "y");
        assert!(!r.passed());
        let text = r.render();
        assert!(text.contains("checks: 1/2 held") && text.contains("FAIL b"));
    }
}
