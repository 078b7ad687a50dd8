//! sign, verify and hmac (signing keys: Ed25519, ML-DSA-65, the composite; MAC
//! keys: `hmac` is HMAC-SHA-256, `hmac-sha512`), one at a time or batched.
//! Transit computes an HMAC with any key; fleetkey only with a MAC key.

use super::ciphertext::{decode, encode};
use super::crypto::{items, keyring, latest_only, load, no_derivation, run};
use super::{Params, Segments, VaultError, VaultRequest, VaultResult};
use crate::api::keyrings::count;
use crate::api::{AppState, St};
use crate::key_type::KeyType;
use crate::keys::{SignInput, Signed};
use axum::extract::State;
use axum::response::Response;
use fleetkey_crypto::mac::MacAlgorithm;
use fleetkey_crypto::prehash::{Digest, HashAlg};
use serde_json::json;

/// Transit's hash names for prehashed input, and fleetkey's hashes.
fn prehash(name: &str) -> VaultResult<HashAlg> {
    match name {
        "sha2-256" => Ok(HashAlg::Sha256),
        "sha2-512" => Ok(HashAlg::Sha512),
        other => Err(VaultError::bad(format!(
            "hash_algorithm {:?}: prehashed input takes sha2-256 (ML-DSA-65) or sha2-512 (Ed25519ph, ML-DSA-65)",
            other.chars().take(32).collect::<String>()
        ))),
    }
}

/// Transit's hash names that a signature over the whole message may name
/// (they do not change an Ed25519 or ML-DSA signature, as in Transit).
const HASH_NAMES: &[&str] = &[
    "sha1", "sha2-224", "sha2-256", "sha2-384", "sha2-512", "sha3-224", "sha3-256", "sha3-384",
    "sha3-512", "none",
];

struct Input {
    input: SignInput,
    key_version: Option<i64>,
    /// verify only: the `vault:vN:` signature or HMAC, read.
    check: Option<(u32, Vec<u8>)>,
}

/// Reads `input` (and, to verify, `signature` or `hmac`, per `verify`).
fn input(p: &mut Params, hash: &str, verify: Option<&str>) -> VaultResult<Input> {
    no_derivation(p)?;
    let bytes = p
        .b64("input")?
        .ok_or_else(|| VaultError::bad("missing input"))?;
    let prehashed = p.bool("prehashed")? == Some(true);
    let input = if prehashed {
        let alg = prehash(hash)?;
        SignInput::Digest(Digest::new(alg, &bytes).map_err(|_| {
            VaultError::bad(format!(
                "input: a prehashed {hash} digest is {} bytes, not {}",
                alg.output_len(),
                bytes.len()
            ))
        })?)
    } else {
        SignInput::Message(bytes)
    };
    for ignored in ["signature_algorithm", "marshaling_algorithm", "salt_length"] {
        p.str(ignored)?;
    }
    let check = match verify {
        None => None,
        Some(field) => {
            let s = p
                .str(field)?
                .ok_or_else(|| VaultError::bad(format!("missing {field} to verify")))?;
            Some(decode(field, &s)?)
        }
    };
    Ok(Input {
        input,
        key_version: p.int("key_version")?,
        check,
    })
}

fn hash_param(p: &mut Params, from_path: Option<String>) -> VaultResult<String> {
    let h = match from_path {
        Some(h) => h,
        None => p
            .str("hash_algorithm")?
            .unwrap_or_else(|| "sha2-256".to_owned()),
    };
    if !HASH_NAMES.contains(&h.as_str()) {
        return Err(VaultError::bad(format!(
            "unsupported hash algorithm {:?}",
            h.chars().take(32).collect::<String>()
        )));
    }
    Ok(h)
}

async fn sign_with(
    st: &AppState,
    name: &str,
    mut req: VaultRequest,
    hash: Option<String>,
) -> VaultResult<Response> {
    let ring = keyring(st, &req.principal, "sign", name).await?;
    let hash = hash_param(&mut req.params, hash)?;
    let items = items(st, &mut req.params, |p| input(p, &hash, None))?;
    let ring = &ring;
    run(items, &req.params, |it| async move {
        latest_only(ring, it.key_version)?;
        let r = ring.sign(it.input.signable()).await;
        let r = r.map_err(crate::api::error::ApiError::from);
        count(st, &st.metrics.signs, ring.name(), r.as_ref().map(|_| ()));
        let Signed { signature, version } = r?;
        Ok(json!({ "signature": encode(version, &signature), "key_version": version }))
    })
    .await
}

/// `sign/:name`.
pub(super) async fn sign(
    State(st): St,
    Segments(name): Segments<String>,
    req: VaultRequest,
) -> VaultResult<Response> {
    sign_with(&st, &name, req, None).await
}

/// `sign/:name/:hash_algorithm`.
pub(super) async fn sign_hash(
    State(st): St,
    Segments((name, hash)): Segments<(String, String)>,
    req: VaultRequest,
) -> VaultResult<Response> {
    sign_with(&st, &name, req, Some(hash)).await
}

async fn verify_with(
    st: &AppState,
    name: &str,
    mut req: VaultRequest,
    hash: Option<String>,
) -> VaultResult<Response> {
    // The key decides: a MAC key checks an `hmac`, a signing key a
    // `signature` (a batch names neither at its top). Only a token that may
    // verify with this key, one way or the other, learns which it is.
    let p = &req.principal;
    let (verify_scope, mac_scope) = (format!("verify:{name}"), format!("mac:{name}"));
    if p.require(&verify_scope).is_err() {
        p.require(&mac_scope)?;
    }
    let ring = load(st, name).await?;
    let mac = matches!(ring.key_type(), KeyType::Mac(_));
    p.require(if mac { &mac_scope } else { &verify_scope })?;
    let field = if mac { "hmac" } else { "signature" };
    let hash = hash_param(&mut req.params, hash)?;
    let items = items(st, &mut req.params, |p| input(p, &hash, Some(field)))?;
    let ring = &ring;
    run(items, &req.params, |it| async move {
        let Some((version, sig)) = it.check else {
            return Err(VaultError::bad("missing signature to verify"));
        };
        let msg = it.input.signable();
        let r = if mac {
            ring.verify_mac(msg, &sig, Some(version)).await
        } else {
            ring.verify(msg, &sig, Some(version)).await
        };
        let r = r.map_err(crate::api::error::ApiError::from);
        let counter = if mac {
            &st.metrics.mac_verifies
        } else {
            &st.metrics.verifies
        };
        count(st, counter, ring.name(), r.as_ref().map(|_| ()));
        Ok(json!({ "valid": r?.is_some() }))
    })
    .await
}

/// `verify/:name`.
pub(super) async fn verify(
    State(st): St,
    Segments(name): Segments<String>,
    req: VaultRequest,
) -> VaultResult<Response> {
    verify_with(&st, &name, req, None).await
}

/// `verify/:name/:hash_algorithm`.
pub(super) async fn verify_hash(
    State(st): St,
    Segments((name, hash)): Segments<(String, String)>,
    req: VaultRequest,
) -> VaultResult<Response> {
    verify_with(&st, &name, req, Some(hash)).await
}

/// The MAC algorithm a Transit `algorithm` names.
fn mac_algorithm(name: &str) -> VaultResult<MacAlgorithm> {
    match name {
        "sha2-256" => Ok(MacAlgorithm::HmacSha256),
        "sha2-512" => Ok(MacAlgorithm::HmacSha512),
        other => Err(VaultError::bad(format!(
            "unsupported algorithm {:?}: fleetkey MAC keys are HMAC-SHA-256 (sha2-256) or HMAC-SHA-512 (sha2-512)",
            other.chars().take(32).collect::<String>()
        ))),
    }
}

async fn hmac_with(
    st: &AppState,
    name: &str,
    mut req: VaultRequest,
    alg: Option<String>,
) -> VaultResult<Response> {
    let ring = keyring(st, &req.principal, "mac", name).await?;
    let alg = match alg {
        Some(a) => Some(a),
        None => req.params.str("algorithm")?,
    };
    // A MAC key's own algorithm is the default; another one is refused.
    if let (Some(a), KeyType::Mac(own)) = (alg.as_deref(), ring.key_type())
        && mac_algorithm(a)? != own
    {
        return Err(VaultError::bad(format!(
            "algorithm {a}: this key is {}",
            ring.key_type().name()
        )));
    }
    let items = items(st, &mut req.params, |p| {
        no_derivation(p)?;
        let bytes = p
            .b64("input")?
            .ok_or_else(|| VaultError::bad("missing input"))?;
        Ok((SignInput::Message(bytes), p.int("key_version")?))
    })?;
    let ring = &ring;
    run(items, &req.params, |(input, key_version)| async move {
        latest_only(ring, key_version)?;
        let r = ring.mac(input.signable()).await;
        let r = r.map_err(crate::api::error::ApiError::from);
        count(st, &st.metrics.macs, ring.name(), r.as_ref().map(|_| ()));
        let Signed { signature, version } = r?;
        Ok(json!({ "hmac": encode(version, &signature) }))
    })
    .await
}

/// `hmac/:name`.
pub(super) async fn hmac(
    State(st): St,
    Segments(name): Segments<String>,
    req: VaultRequest,
) -> VaultResult<Response> {
    hmac_with(&st, &name, req, None).await
}

/// `hmac/:name/:algorithm`.
pub(super) async fn hmac_alg(
    State(st): St,
    Segments((name, alg)): Segments<(String, String)>,
    req: VaultRequest,
) -> VaultResult<Response> {
    hmac_with(&st, &name, req, Some(alg)).await
}
