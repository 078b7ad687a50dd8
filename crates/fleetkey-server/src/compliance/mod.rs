//! Compliance evidence and its evaluation: what a running service can show
//! about itself ([`Evidence`], collected by `GET /v1/compliance/evidence`), the
//! checks made on it ([`Check`]), and how each framework's controls map to
//! those checks ([`frameworks`]). `fleetkey compliance report` renders the
//! result as JSON, Markdown or PDF; docs/compliance/ holds the mapping tables,
//! generated from [`frameworks`] and checked by a test.

pub mod frameworks;

use serde::{Deserialize, Serialize};

/// TLS on the listeners.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct TlsEvidence {
    /// Whether the HTTP and gRPC listeners use TLS.
    pub enabled: bool,
    /// When the certificate expires (Unix seconds), with TLS.
    pub certificate_expires_at: Option<i64>,
}

/// The custody that protects the root.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct CustodyEvidence {
    /// `local`, `pkcs11`, `vault` or `aws-kms`.
    pub backend: String,
    /// Which root (backend-specific id).
    pub root_id: String,
}

/// One keyring's rotation state.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct KeyringEvidence {
    /// Name.
    pub name: String,
    /// Algorithm.
    pub algorithm: String,
    /// `enabled`, `disabled`, `pending_deletion`, …
    pub state: String,
    /// The primary version.
    pub primary_version: u32,
    /// When the primary was made (its last rotation; Unix seconds).
    pub last_rotation: i64,
    /// The rotation period (seconds).
    pub rotation_period_secs: i64,
    /// Whether the primary is older than its period plus a day (the scheduler
    /// rotates within one of its runs).
    pub overdue: bool,
}

/// The audit chain.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct AuditEvidence {
    /// `valid`, `invalid` or `incomplete` (`GET /v1/audit/verify`).
    pub verdict: String,
    /// Entries verified from the first.
    pub verified_entries: u64,
    /// The first problem, when invalid.
    pub problem: Option<String>,
    /// The newest checkpoint's entry and time, when one exists.
    pub last_checkpoint_seq: Option<u64>,
    /// When it was signed (Unix seconds).
    pub last_checkpoint_at: Option<i64>,
    /// Whether its signature verifies with the service's key.
    pub last_checkpoint_valid: Option<bool>,
}

/// API tokens, counted (never listed).
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct TokenEvidence {
    /// Tokens neither revoked nor expired.
    pub active: u64,
    /// Active tokens with the `admin` scope.
    pub admin: u64,
    /// Active tokens that never expire.
    pub without_expiry: u64,
    /// Active admin tokens that never expire.
    pub admin_without_expiry: u64,
    /// Revoked tokens.
    pub revoked: u64,
    /// Expired tokens.
    pub expired: u64,
}

/// Scheduled backups.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct BackupEvidence {
    /// Whether the server takes scheduled backups (`backup_dir`).
    pub scheduled: bool,
    /// When the newest was taken (Unix seconds).
    pub last_success: Option<i64>,
    /// Its age at collection (seconds).
    pub age_secs: Option<i64>,
}

/// Rate limits in force.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct RateLimitEvidence {
    /// Per token, requests per second.
    pub per_token_per_sec: u32,
    /// Whole instance.
    pub global_per_sec: u32,
    /// Per source address without a valid token.
    pub unauthenticated_per_source_per_sec: u32,
}

/// Everything collected from the running service at one moment.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Evidence {
    /// When (Unix seconds).
    pub collected_at: i64,
    /// The release.
    pub fleetkey_version: String,
    /// TLS.
    pub tls: TlsEvidence,
    /// Custody.
    pub custody: CustodyEvidence,
    /// Every keyring.
    pub keyrings: Vec<KeyringEvidence>,
    /// The audit chain.
    pub audit: AuditEvidence,
    /// API tokens.
    pub tokens: TokenEvidence,
    /// Backups.
    pub backups: BackupEvidence,
    /// Rate limits.
    pub rate_limits: RateLimitEvidence,
    /// Requests refused for a missing, unknown, expired or revoked token (HTTP
    /// 401) or an unheld scope (403), and AWS signature refusals, since this
    /// instance started.
    pub refused_authentications: u64,
    /// Whether every request is logged.
    pub access_log: bool,
    /// Whether traces are exported.
    pub traces: bool,
}

/// What the operator adds that the service cannot know: the last DR drill.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct OperatorEvidence {
    /// When the last drill ran (Unix seconds) and its measured RTO and RPO.
    pub last_drill: Option<Drill>,
}

/// A disaster-recovery drill's result (`scripts/dr_drill.sh`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Drill {
    /// When (Unix seconds).
    pub at: i64,
    /// Measured recovery time.
    pub rto_secs: f64,
    /// Measured data-loss window.
    pub rpo_secs: f64,
}

/// A check's outcome.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// The evidence meets the control.
    Pass,
    /// It may, with something to look at.
    Attention,
    /// It does not.
    Fail,
}

/// The checks the controls map to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Check {
    /// Every keyring rotates on a period and none is overdue.
    KeyRotation,
    /// The root key's custody.
    KeyCustody,
    /// The audit chain verifies and was checkpointed within a day.
    AuditIntegrity,
    /// Every request is logged.
    AuditLogging,
    /// TLS on the listeners.
    TransmissionEncryption,
    /// Tokens expire; admin tokens are few and expire.
    AccessControl,
    /// Rate limits and refused authentications.
    AuthenticationMonitoring,
    /// Scheduled backups, the newest under an hour old.
    Backups,
    /// A DR drill within a year.
    RecoveryTesting,
}

/// One check evaluated: its status, what was found, what remains the
/// operator's duty.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Finding {
    /// Which check.
    pub check: Check,
    /// Its outcome.
    pub status: Status,
    /// The evidence, in words with numbers.
    pub evidence: String,
    /// What the operator must do or show besides.
    pub operator_duty: String,
}

/// How old a checkpoint may be before the audit check asks for attention.
pub const CHECKPOINT_MAX_AGE: i64 = 86_400;
/// How old the newest backup may be (RPO 1 h).
pub const BACKUP_MAX_AGE: i64 = 3_600;
/// How old the last DR drill may be.
pub const DRILL_MAX_AGE: i64 = 365 * 86_400;

/// Evaluates `check` on the evidence.
pub fn evaluate(check: Check, e: &Evidence, op: &OperatorEvidence) -> Finding {
    let (status, evidence, duty) = match check {
        Check::KeyRotation => {
            let active: Vec<_> = e.keyrings.iter().filter(|k| k.state == "enabled").collect();
            let overdue: Vec<&str> = active.iter().filter(|k| k.overdue).map(|k| k.name.as_str()).collect();
            let longest = active.iter().map(|k| k.rotation_period_secs).max().unwrap_or(0);
            let status = if !overdue.is_empty() {
                Status::Fail
            } else if longest > 365 * 86_400 {
                Status::Attention
            } else {
                Status::Pass
            };
            let mut text = format!(
                "{} enabled keyrings, each rotating on a period (longest {} days); overdue: {}",
                active.len(),
                longest / 86_400,
                if overdue.is_empty() { "none".to_owned() } else { overdue.join(", ") }
            );
            if let Some(k) = active.iter().min_by_key(|k| k.last_rotation) {
                text.push_str(&format!("; oldest primary: {} v{} since {}", k.name, k.primary_version, rfc3339(k.last_rotation)));
            }
            (status, text, "Set rotation periods your policy requires (at most a year); rotate and revoke on compromise (docs/runbooks/key-compromise.md).")
        }
        Check::KeyCustody => {
            let hardware = e.custody.backend != "local";
            (
                if hardware { Status::Pass } else { Status::Attention },
                format!("root key in {} custody (root {})", e.custody.backend, e.custody.root_id),
                if hardware {
                    "Keep the HSM or KMS key's own access policy, backups and logs."
                } else {
                    "The root is in a file sealed by a key-encryption key: keep the KEK off the host and escrowed (fleetkey custody split), or move to an HSM or cloud KMS (fleetkey custody migrate)."
                },
            )
        }
        Check::AuditIntegrity => {
            let recent = e.audit.last_checkpoint_at.is_some_and(|t| e.collected_at - t <= CHECKPOINT_MAX_AGE);
            let status = match (e.audit.verdict.as_str(), recent) {
                ("invalid", _) => Status::Fail,
                ("valid", true) => Status::Pass,
                _ => Status::Attention,
            };
            (
                status,
                format!(
                    "audit chain {} over {} entries{}; newest signed checkpoint: {}",
                    e.audit.verdict,
                    e.audit.verified_entries,
                    e.audit.problem.as_ref().map_or(String::new(), |p| format!(" (first problem: {p})")),
                    match (e.audit.last_checkpoint_seq, e.audit.last_checkpoint_at) {
                        (Some(s), Some(t)) => format!("entry {s} at {}, signature {}", rfc3339(t), if e.audit.last_checkpoint_valid == Some(true) { "valid" } else { "NOT valid" }),
                        _ => "none".into(),
                    }
                ),
                "Export the audit log and verify it offline with the public key you keep (fleetkey audit export / verify) on your schedule; keep exports for your retention period.",
            )
        }
        Check::AuditLogging => (
            if e.access_log { Status::Pass } else { Status::Attention },
            format!(
                "access log {}; traces {}",
                if e.access_log { "on (one line per request: route, status, token id, request id)" } else { "OFF" },
                if e.traces { "exported over OTLP" } else { "off" }
            ),
            "Ship logs to a store you retain and review; alert on the rules in deploy/prometheus/alerts.yml.",
        ),
        Check::TransmissionEncryption => (
            if e.tls.enabled { Status::Pass } else { Status::Fail },
            match (e.tls.enabled, e.tls.certificate_expires_at) {
                (true, Some(t)) => format!("TLS on the HTTP and gRPC listeners; certificate valid until {}", rfc3339(t)),
                (true, None) => "TLS on the HTTP and gRPC listeners".into(),
                _ => "TLS is OFF on the HTTP and gRPC listeners (device sessions are always encrypted by Noise)".into(),
            },
            "Terminate client traffic with TLS (tls_cert, tls_key) and renew certificates before FleetkeyTlsCertificateExpiring fires.",
        ),
        Check::AccessControl => {
            let t = &e.tokens;
            let status = if t.admin_without_expiry > 0 {
                Status::Fail
            } else if t.without_expiry > 0 {
                Status::Attention
            } else {
                Status::Pass
            };
            (
                status,
                format!(
                    "{} active tokens ({} with admin scope, {} without expiry, {} admin without expiry); {} revoked, {} expired",
                    t.active, t.admin, t.without_expiry, t.admin_without_expiry, t.revoked, t.expired
                ),
                "Give each person and service its own token with the narrowest scopes and an expiry (fleetkey tokens create --scope … --ttl …); review and revoke on leaving.",
            )
        }
        Check::AuthenticationMonitoring => (
            Status::Pass,
            format!(
                "rate limits per token {}/s, instance {}/s, unauthenticated per source {}/s; {} refused authentications since this instance started",
                e.rate_limits.per_token_per_sec,
                e.rate_limits.global_per_sec,
                e.rate_limits.unauthenticated_per_source_per_sec,
                e.refused_authentications
            ),
            "Alert on refused authentications and rate limiting (fleetkey_http_requests_total{status=\"401\"}, fleetkey_rate_limited_total) and investigate spikes.",
        ),
        Check::Backups => {
            let status = match (e.backups.scheduled, e.backups.age_secs) {
                (true, Some(a)) if a <= BACKUP_MAX_AGE => Status::Pass,
                _ => Status::Fail,
            };
            (
                status,
                match (e.backups.scheduled, e.backups.age_secs) {
                    (false, _) => "no scheduled backups (backup_dir is not set)".into(),
                    (true, None) => "scheduled backups configured, none taken yet".into(),
                    (true, Some(a)) => format!("scheduled backups; the newest is {a} s old (limit {BACKUP_MAX_AGE} s)"),
                },
                "Ship backups off the host, keep the recipients' identities offline, and on PostgreSQL back the database up with its own tools (docs/operations.md, Backups).",
            )
        }
        Check::RecoveryTesting => match &op.last_drill {
            Some(d) if e.collected_at - d.at <= DRILL_MAX_AGE => (
                Status::Pass,
                format!("DR drill at {}: RTO {:.1} s, RPO {:.1} s", rfc3339(d.at), d.rto_secs, d.rpo_secs),
                "Run the drill with your real backups and shares yearly (docs/runbooks/disaster-recovery.md) and keep its incident log.",
            ),
            Some(d) => (
                Status::Attention,
                format!("the last DR drill given is from {} (over a year old)", rfc3339(d.at)),
                "Run the drill (scripts/dr_drill.sh, then docs/runbooks/disaster-recovery.md with your real backups).",
            ),
            None => (
                Status::Attention,
                "no DR drill report given (--drill-report)".into(),
                "Run the drill (scripts/dr_drill.sh, then docs/runbooks/disaster-recovery.md) and pass its report.",
            ),
        },
    };
    Finding {
        check,
        status,
        evidence,
        operator_duty: duty.into(),
    }
}

/// One control with its checks evaluated.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ControlResult {
    /// Its identifier in the framework.
    pub id: String,
    /// Its title.
    pub title: String,
    /// The worst status of its findings.
    pub status: Status,
    /// Each check's finding.
    pub findings: Vec<Finding>,
}

/// A framework's report.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Report {
    /// The framework (`soc2`, …).
    pub framework: String,
    /// Its full title.
    pub title: String,
    /// The evidence the report was made from.
    pub evidence: Evidence,
    /// The operator's evidence (the last drill).
    pub operator: OperatorEvidence,
    /// Every control.
    pub controls: Vec<ControlResult>,
    /// Controls that pass, ask for attention, fail.
    pub summary: Summary,
}

/// Counts by status.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize)]
pub struct Summary {
    /// Passing controls.
    pub pass: usize,
    /// Controls asking for attention.
    pub attention: usize,
    /// Failing controls.
    pub fail: usize,
}

/// Evaluates every control of `framework` on the evidence.
pub fn report(
    framework: &frameworks::Framework,
    evidence: Evidence,
    operator: OperatorEvidence,
) -> Report {
    let mut summary = Summary::default();
    let controls = framework
        .controls
        .iter()
        .map(|c| {
            let findings: Vec<Finding> = c
                .checks
                .iter()
                .map(|k| evaluate(*k, &evidence, &operator))
                .collect();
            let status = if findings.iter().any(|f| f.status == Status::Fail) {
                Status::Fail
            } else if findings.iter().any(|f| f.status == Status::Attention) {
                Status::Attention
            } else {
                Status::Pass
            };
            match status {
                Status::Pass => summary.pass += 1,
                Status::Attention => summary.attention += 1,
                Status::Fail => summary.fail += 1,
            }
            ControlResult {
                id: c.id.into(),
                title: c.title.into(),
                status,
                findings,
            }
        })
        .collect();
    Report {
        framework: framework.name.into(),
        title: framework.title.into(),
        evidence,
        operator,
        controls,
        summary,
    }
}

/// Unix seconds as RFC 3339 (UTC, seconds).
pub fn rfc3339(t: i64) -> String {
    humantime::format_rfc3339_seconds(
        std::time::UNIX_EPOCH + std::time::Duration::from_secs(u64::try_from(t).unwrap_or(0)),
    )
    .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_800_000_000;

    fn good() -> Evidence {
        Evidence {
            collected_at: NOW,
            fleetkey_version: "0.1.0".into(),
            tls: TlsEvidence {
                enabled: true,
                certificate_expires_at: Some(NOW + 90 * 86_400),
            },
            custody: CustodyEvidence {
                backend: "pkcs11".into(),
                root_id: "pkcs11:fk".into(),
            },
            keyrings: vec![KeyringEvidence {
                name: "app".into(),
                algorithm: "aes-256-gcm".into(),
                state: "enabled".into(),
                primary_version: 3,
                last_rotation: NOW - 10 * 86_400,
                rotation_period_secs: 90 * 86_400,
                overdue: false,
            }],
            audit: AuditEvidence {
                verdict: "valid".into(),
                verified_entries: 40,
                problem: None,
                last_checkpoint_seq: Some(40),
                last_checkpoint_at: Some(NOW - 3_600),
                last_checkpoint_valid: Some(true),
            },
            tokens: TokenEvidence {
                active: 3,
                admin: 1,
                without_expiry: 0,
                admin_without_expiry: 0,
                revoked: 2,
                expired: 1,
            },
            backups: BackupEvidence {
                scheduled: true,
                last_success: Some(NOW - 600),
                age_secs: Some(600),
            },
            rate_limits: RateLimitEvidence {
                per_token_per_sec: 50_000,
                global_per_sec: 200_000,
                unauthenticated_per_source_per_sec: 20,
            },
            refused_authentications: 7,
            access_log: true,
            traces: false,
        }
    }

    fn drill() -> OperatorEvidence {
        OperatorEvidence {
            last_drill: Some(Drill {
                at: NOW - 86_400,
                rto_secs: 60.0,
                rpo_secs: 900.0,
            }),
        }
    }

    fn status(check: Check, e: &Evidence, op: &OperatorEvidence) -> Status {
        evaluate(check, e, op).status
    }

    #[test]
    fn a_well_run_service_passes_every_control_of_every_framework() {
        for f in &frameworks::FRAMEWORKS {
            let r = report(f, good(), drill());
            assert_eq!(
                (r.summary.pass, r.summary.attention, r.summary.fail),
                (f.controls.len(), 0, 0),
                "{}: {:?}",
                f.name,
                r.controls
            );
        }
    }

    #[test]
    fn each_check_fails_or_asks_for_attention_on_its_own_evidence() {
        let op = drill();
        let mut e = good();
        e.keyrings[0].overdue = true;
        assert_eq!(status(Check::KeyRotation, &e, &op), Status::Fail);
        let mut e = good();
        e.keyrings[0].rotation_period_secs = 400 * 86_400;
        assert_eq!(status(Check::KeyRotation, &e, &op), Status::Attention);
        let mut e = good();
        e.custody.backend = "local".into();
        assert_eq!(status(Check::KeyCustody, &e, &op), Status::Attention);
        let mut e = good();
        e.audit.verdict = "invalid".into();
        e.audit.problem = Some("entry 2: altered".into());
        let f = evaluate(Check::AuditIntegrity, &e, &op);
        assert_eq!(f.status, Status::Fail);
        assert!(f.evidence.contains("entry 2: altered"), "{}", f.evidence);
        let mut e = good();
        e.audit.last_checkpoint_at = Some(NOW - 2 * 86_400);
        assert_eq!(status(Check::AuditIntegrity, &e, &op), Status::Attention);
        let mut e = good();
        e.access_log = false;
        assert_eq!(status(Check::AuditLogging, &e, &op), Status::Attention);
        let mut e = good();
        e.tls.enabled = false;
        assert_eq!(status(Check::TransmissionEncryption, &e, &op), Status::Fail);
        let mut e = good();
        e.tokens.without_expiry = 2;
        assert_eq!(status(Check::AccessControl, &e, &op), Status::Attention);
        e.tokens.admin_without_expiry = 1;
        assert_eq!(status(Check::AccessControl, &e, &op), Status::Fail);
        let mut e = good();
        e.backups.age_secs = Some(BACKUP_MAX_AGE + 1);
        assert_eq!(status(Check::Backups, &e, &op), Status::Fail);
        e.backups = BackupEvidence {
            scheduled: false,
            last_success: None,
            age_secs: None,
        };
        assert_eq!(status(Check::Backups, &e, &op), Status::Fail);
        let e = good();
        assert_eq!(
            status(Check::RecoveryTesting, &e, &OperatorEvidence::default()),
            Status::Attention
        );
        let old = OperatorEvidence {
            last_drill: Some(Drill {
                at: NOW - DRILL_MAX_AGE - 1,
                rto_secs: 1.0,
                rpo_secs: 1.0,
            }),
        };
        assert_eq!(status(Check::RecoveryTesting, &e, &old), Status::Attention);
    }

    #[test]
    fn a_control_takes_the_worst_of_its_checks() {
        let mut e = good();
        e.custody.backend = "local".into();
        let soc2 = frameworks::framework("soc2").unwrap_or_else(|| unreachable!());
        let r = report(soc2, e, drill());
        let cc61 = r
            .controls
            .iter()
            .find(|c| c.id == "CC6.1")
            .map(|c| c.status);
        assert_eq!(cc61, Some(Status::Attention));
        assert_eq!(r.summary.attention, 1);
    }
}
