//! `GET /v1/compliance/evidence`: what the running service can show about
//! itself for a compliance report (`crate::compliance`), collected now.

use super::St;
use super::error::{ApiResult, ErrorBody};
use crate::compliance::{
    AuditEvidence, BackupEvidence, CustodyEvidence, Evidence, KeyringEvidence, RateLimitEvidence,
    TlsEvidence, TokenEvidence,
};
use crate::tokens::Principal;
use axum::extract::State;
use axum::{Extension, Json};
use prometheus::core::Collector as _;

/// Evidence for compliance reports: TLS, custody, keyring rotation, the audit
/// chain, tokens (counted), backups, rate limits, refused authentications.
#[utoipa::path(get, path = "/v1/compliance/evidence", tag = "audit",
    responses((status = 200, body = Evidence), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)),
    security(("bearer" = ["audit:read"])))]
pub(super) async fn evidence(
    State(st): St,
    Extension(p): Extension<Principal>,
) -> ApiResult<Json<Evidence>> {
    p.require("audit:read")?;
    let now = st.fleets.now();
    let keyrings = st
        .keys
        .list()
        .await?
        .into_iter()
        .map(|k| {
            let last_rotation = k
                .versions
                .iter()
                .find(|v| v.version == k.primary_version)
                .map_or(k.created_at, |v| v.created_at);
            KeyringEvidence {
                overdue: now.saturating_sub(last_rotation)
                    > k.policy.rotation_period_secs.saturating_add(86_400),
                name: k.name,
                algorithm: k.algorithm,
                state: k.state.as_str().into(),
                primary_version: k.primary_version,
                last_rotation,
                rotation_period_secs: k.policy.rotation_period_secs,
            }
        })
        .collect();
    let chain = st.keys.verify_audit(false).await?;
    let audit = AuditEvidence {
        verdict: chain.verdict.clone(),
        verified_entries: chain.verified_entries,
        problem: chain
            .problem
            .as_ref()
            .map(|p| format!("entry {}: {}", p.seq, p.reason)),
        last_checkpoint_seq: chain.checkpoint.as_ref().map(|c| c.seq),
        last_checkpoint_at: chain.checkpoint.as_ref().map(|c| c.time),
        last_checkpoint_valid: chain
            .checkpoint
            .as_ref()
            .map(|c| c.signature_valid && c.matches_chain),
    };
    let mut tokens = TokenEvidence {
        active: 0,
        admin: 0,
        without_expiry: 0,
        admin_without_expiry: 0,
        revoked: 0,
        expired: 0,
    };
    for t in st.tokens.list().await? {
        if t.revoked_at.is_some() {
            tokens.revoked += 1;
        } else if t.expires_at.is_some_and(|e| e <= now) {
            tokens.expired += 1;
        } else {
            let admin = t.scopes.iter().any(|s| s == "admin");
            tokens.active += 1;
            tokens.admin += u64::from(admin);
            if t.expires_at.is_none() {
                tokens.without_expiry += 1;
                tokens.admin_without_expiry += u64::from(admin);
            }
        }
    }
    let m = &st.metrics;
    let scheduled = m
        .backup_scheduled_since
        .load(std::sync::atomic::Ordering::Relaxed)
        > 0;
    let last = m.backup_last_success.get();
    let last_success = (last > 0).then_some(last);
    let tls_expiry = m.tls_expiry.get();
    let custody = st.keys.custody();
    let limits = st.limits.config();
    Ok(Json(Evidence {
        collected_at: now,
        fleetkey_version: env!("CARGO_PKG_VERSION").into(),
        tls: TlsEvidence {
            enabled: tls_expiry > 0,
            certificate_expires_at: (tls_expiry > 0).then_some(tls_expiry),
        },
        custody: CustodyEvidence {
            backend: custody.backend().into(),
            root_id: custody.root_id(),
        },
        keyrings,
        audit,
        tokens,
        backups: BackupEvidence {
            scheduled,
            last_success,
            age_secs: last_success.map(|t| now.saturating_sub(t)),
        },
        rate_limits: RateLimitEvidence {
            per_token_per_sec: limits.per_token_per_sec,
            global_per_sec: limits.global_per_sec,
            unauthenticated_per_source_per_sec: limits.unauthenticated_per_source_per_sec,
        },
        refused_authentications: refused(&st),
        access_log: st.access_log,
        traces: crate::observability::exporting(),
    }))
}

/// Requests answered 401 or 403 (any route), plus AWS signature refusals.
// Prometheus keeps counters as f64; these are whole, non-negative and far below 2^53.
#[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
fn refused(st: &super::AppState) -> u64 {
    let mut n = 0.0;
    for family in st.metrics.requests.collect() {
        for metric in family.get_metric() {
            let status = metric
                .get_label()
                .iter()
                .find(|l| l.name() == "status")
                .map(|l| l.value().to_owned());
            if matches!(status.as_deref(), Some("401" | "403")) {
                n += metric.get_counter().get_value();
            }
        }
    }
    for family in st.metrics.kms_refusals.collect() {
        for metric in family.get_metric() {
            n += metric.get_counter().get_value();
        }
    }
    // Counts: whole numbers well inside f64's exact range.
    n as u64
}
