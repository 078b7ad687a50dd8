//! encrypt, decrypt, rewrap and datakey, one at a time or with `batch_input`.

use super::ciphertext::{decode_envelope, encode};
use super::keys::create_key;
use super::{Params, Segments, VaultError, VaultRequest, VaultResult, actor, answer, answer_with};
use crate::api::keyrings::{count, version_of};
use crate::api::{AppState, St};
use crate::keys::Keyring;
use crate::tokens::Principal;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use base64::{Engine as _, engine::general_purpose::STANDARD as B64};
use serde_json::{Value, json};
use std::sync::Arc;

/// The items of a request: the request itself, or its `batch_input`.
pub(super) struct Items<T> {
    /// Whether the request was one item (answered without `batch_results`).
    single: bool,
    /// The status of a batch with some failed items
    /// (`partial_failure_response_code`, default 400, as in Vault).
    partial: StatusCode,
    /// Each item's `reference` and what it asked for (or why it cannot be read).
    list: Vec<(Option<String>, VaultResult<T>)>,
}

/// Reads a request's items with `parse`; a single request's error is the
/// request's, a batch item's stays with the item.
pub(super) fn items<T>(
    st: &AppState,
    params: &mut Params,
    mut parse: impl FnMut(&mut Params) -> VaultResult<T>,
) -> VaultResult<Items<T>> {
    let partial = params
        .int_in("partial_failure_response_code", 200..=599)?
        .and_then(|c| u16::try_from(c).ok())
        .and_then(|c| StatusCode::from_u16(c).ok())
        .unwrap_or(StatusCode::BAD_REQUEST);
    match params.batch(st.max_batch_items)? {
        Some(batch) => Ok(Items {
            single: false,
            partial,
            list: batch
                .into_iter()
                .map(|mut item| {
                    let reference = item.str("reference").ok().flatten();
                    (reference, parse(&mut item))
                })
                .collect(),
        }),
        None => Ok(Items {
            single: true,
            partial,
            list: vec![(None, Ok(parse(params)?))],
        }),
    }
}

/// Runs `op` on every item in order and answers: a single item's data or error,
/// or `batch_results` with each item's data or `error` and its `reference`.
pub(super) async fn run<T, F, Fut>(
    items: Items<T>,
    params: &Params,
    mut op: F,
) -> VaultResult<Response>
where
    F: FnMut(T) -> Fut,
    Fut: std::future::Future<Output = VaultResult<Value>>,
{
    let warnings: Vec<String> = params.leftover().into_iter().collect();
    let mut results = Vec::with_capacity(items.list.len());
    let mut failed = 0;
    let total = items.list.len();
    for (reference, item) in items.list {
        let r = match item {
            Ok(t) => op(t).await,
            Err(e) => Err(e),
        };
        if items.single {
            return r.map(|v| answer(v, warnings));
        }
        let mut v = match r {
            Ok(v) => v,
            Err(e) => {
                failed += 1;
                json!({ "error": e.message() })
            }
        };
        v["reference"] = json!(reference.unwrap_or_default());
        results.push(v);
    }
    // As in Vault: partial_failure_response_code for some failed items, 400
    // when every item failed.
    let status = match failed {
        0 => StatusCode::OK,
        n if n == total => StatusCode::BAD_REQUEST,
        _ => items.partial,
    };
    Ok(answer_with(
        status,
        json!({ "batch_results": results }),
        warnings,
    ))
}

/// Refuses the parameters of derived and convergent Transit keys, which
/// fleetkey keys do not take.
pub(super) fn no_derivation(p: &mut Params) -> VaultResult<()> {
    for (name, what) in [("context", "a derivation context"), ("nonce", "a nonce")] {
        if p.str(name)?.is_some_and(|s| !s.is_empty()) {
            return Err(VaultError::bad(format!(
                "{name}: fleetkey keys take no {what} (no derived or convergent Transit keys); bind data with associated_data"
            )));
        }
    }
    Ok(())
}

/// A requested `key_version`: 0 or none means the latest; fleetkey seals and
/// signs with the latest version only.
pub(super) fn latest_only(ring: &Keyring, asked: Option<i64>) -> VaultResult<()> {
    match asked {
        None | Some(0) => Ok(()),
        Some(v) if v == i64::from(ring.primary_version()) => Ok(()),
        Some(v) => Err(VaultError::bad(format!(
            "key_version {v}: fleetkey uses the latest version ({}) only",
            ring.primary_version()
        ))),
    }
}

/// The keyring behind key `name`, for an operation needing scope `scope`
/// (checked first).
pub(super) async fn keyring(
    st: &AppState,
    p: &Principal,
    scope: &str,
    name: &str,
) -> VaultResult<Arc<Keyring>> {
    p.require(&format!("{scope}:{name}"))?;
    load(st, name).await
}

/// The keyring behind key `name` (its scope already checked); 400 `encryption
/// key not found` when there is none, as in Vault.
pub(super) async fn load(st: &AppState, name: &str) -> VaultResult<Arc<Keyring>> {
    match st.keys.keyring(name).await {
        Ok(r) => Ok(r),
        Err(crate::Error::KeyringNotFound(_)) => Err(VaultError::bad("encryption key not found")),
        Err(e) => Err(e.into()),
    }
}

struct Plain {
    plaintext: zeroize::Zeroizing<Vec<u8>>,
    aad: Vec<u8>,
    key_version: Option<i64>,
}

fn plain(p: &mut Params) -> VaultResult<Plain> {
    no_derivation(p)?;
    let plaintext = p
        .b64("plaintext")?
        .ok_or_else(|| VaultError::bad("missing plaintext to encrypt"))?;
    Ok(Plain {
        plaintext: zeroize::Zeroizing::new(plaintext),
        aad: p.b64("associated_data")?.unwrap_or_default(),
        key_version: p.int("key_version")?,
    })
}

/// `encrypt/:name`. A key that does not exist is created first when the token
/// may manage keys (Transit's upsert; `type` chooses its type), else refused.
pub(super) async fn encrypt(
    State(st): St,
    Segments(name): Segments<String>,
    mut req: VaultRequest,
) -> VaultResult<Response> {
    let p = req.principal.clone();
    p.require(&format!("seal:{name}"))?;
    let ring = match st.keys.keyring(&name).await {
        Ok(r) => {
            req.params.ignore(&["type", "convergent_encryption"]);
            r
        }
        Err(crate::Error::KeyringNotFound(_)) if p.require("keys:manage").is_ok() => {
            create_key(&st, &p, &name, &mut req.params, "encrypt").await?;
            st.keys.keyring(&name).await?
        }
        Err(crate::Error::KeyringNotFound(_)) => {
            return Err(VaultError::bad("encryption key not found"));
        }
        Err(e) => return Err(e.into()),
    };
    let items = items(&st, &mut req.params, plain)?;
    let (st, ring) = (&st, &ring);
    run(items, &req.params, |it| async move {
        latest_only(ring, it.key_version)?;
        let r = ring.seal(&it.plaintext, &it.aad).await;
        let r = r.map_err(crate::api::error::ApiError::from);
        count(st, &st.metrics.seals, ring.name(), r.as_ref().map(|_| ()));
        let env = r?;
        let v = version_of(&env);
        Ok(json!({ "ciphertext": encode(v, &env), "key_version": v }))
    })
    .await
}

struct Sealed {
    envelope: Vec<u8>,
    aad: Vec<u8>,
    key_version: Option<i64>,
}

fn sealed(p: &mut Params) -> VaultResult<Sealed> {
    no_derivation(p)?;
    let text = p
        .str("ciphertext")?
        .ok_or_else(|| VaultError::bad("missing ciphertext to decrypt"))?;
    let (_, envelope) = decode_envelope(&text)?;
    Ok(Sealed {
        envelope,
        aad: p.b64("associated_data")?.unwrap_or_default(),
        key_version: p.int("key_version")?,
    })
}

/// `decrypt/:name`.
pub(super) async fn decrypt(
    State(st): St,
    Segments(name): Segments<String>,
    mut req: VaultRequest,
) -> VaultResult<Response> {
    let ring = keyring(&st, &req.principal, "unseal", &name).await?;
    let items = items(&st, &mut req.params, sealed)?;
    let (st, ring) = (&st, &ring);
    run(items, &req.params, |it| async move {
        let r = ring.unseal(&it.envelope, &it.aad).await;
        let r = r.map_err(crate::api::error::ApiError::from);
        count(st, &st.metrics.unseals, ring.name(), r.as_ref().map(|_| ()));
        let pt = zeroize::Zeroizing::new(r?);
        Ok(json!({ "plaintext": B64.encode(&*pt) }))
    })
    .await
}

/// `rewrap/:name`: reseals with the latest version; the plaintext never
/// leaves the service.
pub(super) async fn rewrap(
    State(st): St,
    Segments(name): Segments<String>,
    mut req: VaultRequest,
) -> VaultResult<Response> {
    let p = req.principal.clone();
    let ring = keyring(&st, &p, "rewrap", &name).await?;
    let items = items(&st, &mut req.params, sealed)?;
    let who = actor(&p, "rewrap");
    let (st, ring, who, name) = (&st, &ring, &who, &name);
    run(items, &req.params, |it| async move {
        latest_only(ring, it.key_version)?;
        let mut out = st
            .keys
            .rewrap(who, name, &[it.envelope], &it.aad)
            .await
            .map_err(|e| crate::api::change_err(st, e))?;
        let env = out.pop().ok_or_else(|| VaultError::bad("empty rewrap"))??;
        let v = version_of(&env);
        Ok(json!({ "ciphertext": encode(v, &env), "key_version": v }))
    })
    .await
}

/// `datakey/(plaintext|wrapped)/:name`: a fresh key of `bits` (128, 256 or
/// 512), sealed by the latest version; in plaintext too for `plaintext`.
pub(super) async fn datakey(
    State(st): St,
    Segments((kind, name)): Segments<(String, String)>,
    mut req: VaultRequest,
) -> VaultResult<Response> {
    let with_plaintext = match kind.as_str() {
        "plaintext" => true,
        "wrapped" => false,
        _ => {
            return Err(VaultError::bad(
                "invalid type: the path says plaintext or wrapped",
            ));
        }
    };
    let ring = keyring(&st, &req.principal, "datakey", &name).await?;
    let params = &mut req.params;
    no_derivation(params)?;
    let bits = params.int("bits")?.unwrap_or(256);
    if !matches!(bits, 128 | 256 | 512) {
        return Err(VaultError::bad("invalid bit size: use 128, 256 or 512"));
    }
    let aad = params.b64("associated_data")?.unwrap_or_default();
    let len = usize::try_from(bits / 8).unwrap_or(32);
    let r = ring
        .data_key_of(len, &aad)
        .await
        .map_err(crate::api::error::ApiError::from);
    count(&st, &st.metrics.datakeys, &name, r.as_ref().map(|_| ()));
    let dk = r?;
    let mut data = json!({
        "ciphertext": encode(dk.version, &dk.sealed),
        "key_version": dk.version,
    });
    if with_plaintext {
        data["plaintext"] = json!(B64.encode(dk.plaintext.as_slice()));
    }
    Ok(answer(data, req.params.leftover().into_iter().collect()))
}
