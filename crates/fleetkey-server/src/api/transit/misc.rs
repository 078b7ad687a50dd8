//! random, hash, and the two calls Vault clients make at start-up:
//! `auth/token/lookup-self` and `sys/seal-status`.

use super::{Segments, VaultError, VaultRequest, VaultResult, answer};
use crate::api::St;
use crate::api::datakeys::MAX_RANDOM_BYTES;
use aws_lc_rs::digest;
use axum::Json;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use base64::{Engine as _, engine::general_purpose::STANDARD as B64};
use serde_json::json;

/// Transit's random sources; all are the service's system generator here.
const SOURCES: &[&str] = &["platform", "seal", "all"];

fn encode_as(format: &str, bytes: &[u8]) -> VaultResult<String> {
    match format {
        "base64" => Ok(B64.encode(bytes)),
        "hex" => Ok(hex::encode(bytes)),
        other => Err(VaultError::bad(format!(
            "unsupported encoding format {:?}; must be \"hex\" or \"base64\"",
            other.chars().take(32).collect::<String>()
        ))),
    }
}

async fn random_with(
    st: &crate::api::AppState,
    mut req: VaultRequest,
    source: Option<String>,
    bytes: Option<String>,
) -> VaultResult<Response> {
    req.principal.require("random")?;
    let p = &mut req.params;
    let source = match source {
        Some(s) => Some(s),
        None => p.str("source")?,
    };
    if let Some(s) = &source
        && !SOURCES.contains(&s.as_str())
    {
        return Err(VaultError::bad(
            "unsupported random source: use platform, seal or all",
        ));
    }
    let n = match bytes {
        Some(b) => b
            .parse::<i64>()
            .map_err(|_| VaultError::bad("bytes must be an integer"))?,
        None => p.int("bytes")?.unwrap_or(32),
    };
    let max = i64::try_from(MAX_RANDOM_BYTES).unwrap_or(1024);
    if !(1..=max).contains(&n) {
        return Err(VaultError::bad(format!("bytes must be 1 to {max}")));
    }
    let format = p.str("format")?.unwrap_or_else(|| "base64".to_owned());
    let mut out = zeroize::Zeroizing::new(vec![0u8; usize::try_from(n).unwrap_or(32)]);
    fleetkey_crypto::rand::fill(&mut out).map_err(crate::Error::from)?;
    st.metrics.random_bytes.inc_by(out.len() as u64);
    let text = encode_as(&format, &out)?;
    Ok(answer(
        json!({ "random_bytes": text }),
        req.params.leftover().into_iter().collect(),
    ))
}

/// `random`.
pub(super) async fn random(State(st): St, req: VaultRequest) -> VaultResult<Response> {
    random_with(&st, req, None, None).await
}

/// `random/:source` or `random/:bytes`.
pub(super) async fn random_a(
    State(st): St,
    Segments(a): Segments<String>,
    req: VaultRequest,
) -> VaultResult<Response> {
    if SOURCES.contains(&a.as_str()) {
        random_with(&st, req, Some(a), None).await
    } else {
        random_with(&st, req, None, Some(a)).await
    }
}

/// `random/:source/:bytes`.
pub(super) async fn random_ab(
    State(st): St,
    Segments((source, bytes)): Segments<(String, String)>,
    req: VaultRequest,
) -> VaultResult<Response> {
    random_with(&st, req, Some(source), Some(bytes)).await
}

/// The digest Transit's `hash` names.
fn hash_algorithm(name: &str) -> VaultResult<&'static digest::Algorithm> {
    Ok(match name {
        "sha2-224" => &digest::SHA224,
        "sha2-256" => &digest::SHA256,
        "sha2-384" => &digest::SHA384,
        "sha2-512" => &digest::SHA512,
        "sha2-512/256" | "sha2-512-256" => &digest::SHA512_256,
        "sha3-256" => &digest::SHA3_256,
        "sha3-384" => &digest::SHA3_384,
        "sha3-512" => &digest::SHA3_512,
        other => {
            return Err(VaultError::bad(format!(
                "unsupported hash algorithm {:?}",
                other.chars().take(32).collect::<String>()
            )));
        }
    })
}

async fn hash_with(mut req: VaultRequest, alg: Option<String>) -> VaultResult<Response> {
    let p = &mut req.params;
    let alg = match alg {
        Some(a) => a,
        None => p.str("algorithm")?.unwrap_or_else(|| "sha2-256".to_owned()),
    };
    let algorithm = hash_algorithm(&alg)?;
    let input = p
        .b64("input")?
        .ok_or_else(|| VaultError::bad("missing input"))?;
    let format = p.str("format")?.unwrap_or_else(|| "hex".to_owned());
    let sum = encode_as(&format, digest::digest(algorithm, &input).as_ref())?;
    Ok(answer(
        json!({ "sum": sum }),
        req.params.leftover().into_iter().collect(),
    ))
}

/// `hash` (any valid token: no key is involved).
pub(super) async fn hash(req: VaultRequest) -> VaultResult<Response> {
    hash_with(req, None).await
}

/// `hash/:algorithm`.
pub(super) async fn hash_alg(
    Segments(alg): Segments<String>,
    req: VaultRequest,
) -> VaultResult<Response> {
    hash_with(req, Some(alg)).await
}

/// `auth/token/lookup-self`: the presented token, described as Vault describes
/// one. `id` and `accessor` are the token's id (`tok_…`), never its secret;
/// `policies` are its scopes.
pub(super) async fn lookup_self(State(st): St, req: VaultRequest) -> VaultResult<Response> {
    let p = &req.principal;
    let now = st.tokens.now();
    let ttl = p.expires_at.map_or(0, |e| (e - now).max(0));
    let expire_time = p.expires_at.map(|e| {
        let secs = u64::try_from(e).unwrap_or(0);
        humantime::format_rfc3339_seconds(
            std::time::UNIX_EPOCH + std::time::Duration::from_secs(secs),
        )
        .to_string()
    });
    Ok(answer(
        json!({
            "accessor": p.token_id,
            "creation_ttl": ttl,
            "display_name": "token",
            "entity_id": "",
            "expire_time": expire_time,
            "explicit_max_ttl": 0,
            "id": p.token_id,
            "meta": null,
            "num_uses": 0,
            "orphan": true,
            "path": "auth/token/create",
            "policies": p.scopes,
            "renewable": false,
            "ttl": ttl,
            "type": "service",
        }),
        vec![],
    ))
}

/// `auth/token/renew-self`: fleetkey tokens are not renewable.
pub(super) async fn renew_self(_req: VaultRequest) -> VaultResult<Response> {
    Err(VaultError::bad(
        "fleetkey tokens are not renewable: create a new token (fleetkey tokens create)",
    ))
}

/// `sys/seal-status` (no token): unsealed while custody and the store answer,
/// sealed while they do not.
pub(super) async fn seal_status(State(st): St) -> Response {
    let sealed = st.keys.ready().await.is_err();
    Json(json!({
        "type": "shamir",
        "initialized": true,
        "sealed": sealed,
        "t": 1,
        "n": 1,
        "progress": 0,
        "nonce": "",
        "version": env!("CARGO_PKG_VERSION"),
        "migration": false,
        "cluster_name": "fleetkey",
        "recovery_seal": false,
        "storage_type": "fleetkey",
    }))
    .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_match_their_standards() {
        let sum = |a: &str| hex::encode(digest::digest(hash_algorithm(a).unwrap(), b"abc"));
        // FIPS 180-4 and FIPS 202 examples ("abc").
        assert_eq!(
            sum("sha2-256"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_eq!(
            sum("sha3-256"),
            "3a985da74fe225b2045c172d6bd390bd855f086e3e9d525b46bfe24511431532"
        );
        assert!(hash_algorithm("md5").is_err());
        assert!(encode_as("binary", b"x").is_err());
        assert_eq!(encode_as("hex", b"\x01").unwrap(), "01");
    }
}
