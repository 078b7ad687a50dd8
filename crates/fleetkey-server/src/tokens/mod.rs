//! API tokens and scopes.
//!
//! A token is `fkt_` + base64url(32 random bytes), shown once at creation; the store
//! keeps only its SHA-256. Scopes: `admin` (everything), `keys:manage`,
//! `seal:<keyring>`, `unseal:<keyring>`, `rewrap:<keyring>`, `audit:read`,
//! `tokens:manage`, `fleets:manage`, `factory:<fleet>`, `devices:<fleet>` (read),
//! `operate:<fleet>` (life-cycle changes), `ingest:<fleet>` (gateways forwarding
//! constrained devices' frames). A granted scope ending in `*` matches every scope with that
//! prefix (`seal:*`, `seal:pay*`). Lookups are cached for a few seconds so the
//! request path rarely touches the store; a revocation made by this instance takes
//! effect at once, one made elsewhere within the cache lifetime.

use crate::audit::AuditDraft;
use crate::clock::{SharedClock, UnixTime};
use crate::error::{Error, Result};
use crate::store::{Change, Store, TokenRecord, TokenStore};
use aws_lc_rs::digest::{SHA256, digest};
use base64::{Engine as _, engine::general_purpose::URL_SAFE_NO_PAD};
use parking_lot::RwLock;
use serde_json::json;
use std::collections::HashMap;
use std::sync::Arc;
use zeroize::Zeroizing;

/// Prefix of every token secret.
pub const PREFIX: &str = "fkt_";
/// How long a cached lookup is trusted, in seconds.
pub const CACHE_SECS: i64 = 5;
/// Longest accepted token string.
pub const MAX_TOKEN_LEN: usize = 128;

pub mod aws;
pub mod sigv4;

/// The scopes [`validate_scope`] accepts, as a regular expression (for the
/// OpenAPI document).
pub const SCOPE_PATTERN: &str = "^(admin|\\*|keys:manage|audit:read|tokens:manage|fleets:manage|claim|random|(seal|unseal|rewrap|datakey|sign|verify|mac|import|export|keys|audit|tokens|factory|devices|fleets|operate|ingest):([A-Za-z0-9][A-Za-z0-9._-]{0,63}\\*?|\\*))$";

/// Scopes a token may be given: exact names, or `<kind>:<keyring or prefix*>`.
pub fn validate_scope(scope: &str) -> Result<()> {
    let bad = || Error::Invalid {
        what: "scope",
        why: format!(
            "{scope:?}: use admin, keys:manage, audit:read, tokens:manage, fleets:manage, claim, random, or seal:|unseal:|rewrap:|datakey:|sign:|verify:|mac:|import:|export: + a keyring, or factory:|devices:|operate:|ingest: + a fleet (name or prefix*)"
        ),
    };
    match scope {
        "admin" | "keys:manage" | "audit:read" | "tokens:manage" | "fleets:manage" | "claim"
        | "random" | "*" => {
            return Ok(());
        }
        _ => {}
    }
    let (kind, rest) = scope.split_once(':').ok_or_else(bad)?;
    if !matches!(
        kind,
        "seal"
            | "unseal"
            | "rewrap"
            | "datakey"
            | "sign"
            | "verify"
            | "mac"
            | "import"
            | "export"
            | "keys"
            | "audit"
            | "tokens"
            | "factory"
            | "devices"
            | "fleets"
            | "operate"
            | "ingest"
    ) {
        return Err(bad());
    }
    let name = rest.strip_suffix('*').unwrap_or(rest);
    if !crate::names::is_valid_prefix(name) {
        return Err(bad());
    }
    if name.is_empty() && !rest.ends_with('*') {
        return Err(bad());
    }
    Ok(())
}

/// Whether `granted` scopes allow `required`.
pub fn allows(granted: &[String], required: &str) -> bool {
    granted.iter().any(|g| {
        g == "admin"
            || g == required
            || g.strip_suffix('*')
                .is_some_and(|prefix| required.starts_with(prefix))
    })
}

/// Whether the granted scope `g` allows every request that the scope `r` allows,
/// reading each scope as the set of names it matches: `admin` (and `*`) match every
/// name, `p*` every name starting with `p`, anything else only itself. So an exact
/// scope never covers a wildcard, `seal:k*` covers `seal:kA*` and `seal:kA`, and
/// only `admin` covers `admin`.
pub fn covers_scope(g: &str, r: &str) -> bool {
    if g == "admin" || g == "*" {
        return true;
    }
    if r == "admin" || r == "*" {
        return false;
    }
    match (g.strip_suffix('*'), r.strip_suffix('*')) {
        (None, None) => g == r,
        (None, Some(_)) => false,
        (Some(p), None) => r.starts_with(p),
        (Some(p), Some(q)) => q.starts_with(p),
    }
}

/// Whether the scopes `granted` together cover the scope `requested`
/// ([`covers_scope`]).
pub fn covers(granted: &[String], requested: &str) -> bool {
    granted.iter().any(|g| covers_scope(g, requested))
}

/// Who made a request.
#[derive(Debug, Clone)]
pub struct Principal {
    /// Token id (`tok_…`); safe to log.
    pub token_id: String,
    /// Granted scopes.
    pub scopes: Vec<String>,
    /// When the token expires (Unix seconds); none = until revoked.
    pub expires_at: Option<UnixTime>,
}

impl Principal {
    /// Fails with [`Error::Forbidden`] unless a scope allows `required`.
    pub fn require(&self, required: &str) -> Result<()> {
        if allows(&self.scopes, required) {
            Ok(())
        } else {
            Err(Error::Forbidden(required.to_owned()))
        }
    }

    /// The actor name for audit entries.
    pub fn actor(&self) -> String {
        format!("token:{}", self.token_id)
    }

    /// Whether this principal's scopes cover every scope of `token` (it may then see
    /// and revoke it).
    pub fn covers_token(&self, token: &TokenRecord) -> bool {
        token.scopes.iter().all(|s| covers(&self.scopes, s))
    }
}

/// The SHA-256 of a token secret: what the store keeps, and what binds an AWS
/// access key to its token.
pub fn hash(secret: &str) -> [u8; 32] {
    let d = digest(&SHA256, secret.as_bytes());
    let mut out = [0u8; 32];
    out.copy_from_slice(d.as_ref());
    out
}

/// Issues, checks and revokes tokens.
pub struct TokenService {
    store: Arc<dyn TokenStore>,
    clock: SharedClock,
    cache: RwLock<HashMap<[u8; 32], (TokenRecord, UnixTime)>>,
    /// Hashes the store did not know, and when it was asked: repeated unknown
    /// tokens cost no store lookup for [`CACHE_SECS`].
    misses: RwLock<HashMap<[u8; 32], UnixTime>>,
    /// Told of every revocation (other instances drop their cached copy).
    announce: crate::coord::Announce,
}

/// Most remembered unknown tokens (the oldest half is dropped beyond it).
const MAX_MISSES: usize = 10_000;

impl TokenService {
    /// A token service over `store`.
    pub fn new(store: Arc<dyn Store>, clock: SharedClock) -> Self {
        Self {
            store,
            clock,
            cache: RwLock::new(HashMap::new()),
            misses: RwLock::new(HashMap::new()),
            announce: Default::default(),
        }
    }

    /// The store view the service uses (AWS access keys live beside tokens).
    pub(crate) fn store(&self) -> Arc<dyn TokenStore> {
        self.store.clone()
    }

    /// The time by the service's clock (what expiry is judged against).
    pub fn now(&self) -> UnixTime {
        self.clock.now()
    }

    /// Sets what is told the id of every token revoked here, after the commit;
    /// set once (later calls are ignored).
    pub fn on_change(&self, announce: crate::coord::Announcer) {
        self.announce.set(announce);
    }

    /// Creates a token; returns its record and the secret, which is shown once.
    pub async fn create(
        &self,
        actor: &str,
        name: &str,
        scopes: Vec<String>,
        ttl_secs: Option<i64>,
    ) -> Result<(TokenRecord, Zeroizing<String>)> {
        crate::names::validate("token name", name)?;
        if scopes.is_empty() {
            return Err(Error::Invalid {
                what: "scopes",
                why: "give at least one scope".into(),
            });
        }
        for s in &scopes {
            validate_scope(s)?;
        }
        if ttl_secs.is_some_and(|t| t <= 0) {
            return Err(Error::Invalid {
                what: "expiry",
                why: "must be in the future".into(),
            });
        }
        let raw: Zeroizing<[u8; 32]> = Zeroizing::new(fleetkey_crypto::rand::array()?);
        let secret = Zeroizing::new(format!("{PREFIX}{}", URL_SAFE_NO_PAD.encode(*raw)));
        let h = hash(&secret);
        let id = format!("tok_{}", hex::encode(&h[..8]));
        let now = self.clock.now();
        let record = TokenRecord {
            id: id.clone(),
            hash: h,
            name: name.to_owned(),
            scopes: scopes.clone(),
            created_at: now,
            expires_at: ttl_secs.map(|t| now.saturating_add(t)),
            revoked_at: None,
        };
        self.store
            .apply(
                Change::CreateToken(record.clone()),
                AuditDraft::new(
                    actor,
                    "token.create",
                    format!("token:{id}"),
                    json!({ "name": name, "scopes": scopes, "expires_at": record.expires_at }),
                ),
                now,
            )
            .await?;
        Ok((record, secret))
    }

    /// Creates a token on behalf of `grantor`, who can hand out only what it holds:
    /// every requested scope must be covered by the grantor's scopes
    /// ([`covers`]), and the new token expires no later than the grantor.
    pub async fn create_for(
        &self,
        grantor: &Principal,
        name: &str,
        scopes: Vec<String>,
        ttl_secs: Option<i64>,
    ) -> Result<(TokenRecord, Zeroizing<String>)> {
        grantor.require("tokens:manage")?;
        for s in &scopes {
            validate_scope(s)?;
            if !covers(&grantor.scopes, s) {
                return Err(Error::GrantNotCovered(s.clone()));
            }
        }
        let ttl_secs = match grantor.expires_at {
            None => ttl_secs,
            Some(end) => {
                let left = end.saturating_sub(self.clock.now());
                if left <= 0 {
                    return Err(Error::Unauthenticated);
                }
                Some(ttl_secs.map_or(left, |t| t.min(left)))
            }
        };
        self.create(&grantor.actor(), name, scopes, ttl_secs).await
    }

    /// The tokens `viewer` may see: those whose scopes its own cover.
    pub async fn list_for(&self, viewer: &Principal) -> Result<Vec<TokenRecord>> {
        viewer.require("tokens:manage")?;
        let mut all = self.list().await?;
        all.retain(|t| viewer.covers_token(t));
        Ok(all)
    }

    /// Revokes token `id` on behalf of `by`, which must cover the token's scopes;
    /// a token it may not see is [`Error::TokenNotFound`], as if it did not exist.
    pub async fn revoke_for(&self, by: &Principal, id: &str) -> Result<()> {
        by.require("tokens:manage")?;
        let visible = self
            .list()
            .await?
            .into_iter()
            .any(|t| t.id == id && by.covers_token(&t));
        if !visible {
            return Err(Error::TokenNotFound(id.to_owned()));
        }
        self.revoke(&by.actor(), id).await
    }

    /// Revokes a token; effective at once on this instance.
    pub async fn revoke(&self, actor: &str, id: &str) -> Result<()> {
        let now = self.clock.now();
        self.store
            .apply(
                Change::RevokeToken {
                    id: id.to_owned(),
                    at: now,
                },
                AuditDraft::new(actor, "token.revoke", format!("token:{id}"), json!({})),
                now,
            )
            .await?;
        {
            let mut c = self.cache.write();
            c.retain(|_, (t, _)| t.id != id);
        }
        self.announce
            .send(crate::coord::Invalidation::Token { id: id.to_owned() });
        Ok(())
    }

    /// All tokens, without secrets.
    /// Drops the cached lookup of token `id` (revoked on another instance).
    pub fn forget(&self, id: &str) {
        {
            let mut c = self.cache.write();
            c.retain(|_, (r, _)| r.id != id);
        }
    }

    /// Drops every cached lookup.
    pub fn forget_all(&self) {
        {
            let mut c = self.cache.write();
            c.clear();
        }
    }

    /// Lists every token.
    pub async fn list(&self) -> Result<Vec<TokenRecord>> {
        self.store.tokens().await
    }

    /// Checks a presented secret: unknown, malformed, expired and revoked tokens
    /// all fail with [`Error::Unauthenticated`].
    pub async fn authenticate(&self, secret: &str) -> Result<Principal> {
        match self
            .authenticate_gated(secret, || Ok::<(), std::convert::Infallible>(()))
            .await
        {
            Ok(r) => r,
            Err(never) => match never {},
        }
    }

    /// [`TokenService::authenticate`], calling `gate` first whenever the answer
    /// is not a valid cached token: before a store lookup and before refusing.
    /// A gate error (a per-source rate limit) is returned as the outer error,
    /// with nothing looked up.
    pub async fn authenticate_gated<L>(
        &self,
        secret: &str,
        gate: impl FnOnce() -> std::result::Result<(), L>,
    ) -> std::result::Result<Result<Principal>, L> {
        // Called at most once, however many of the checks below need it.
        let mut gate = Some(gate);
        let mut gate = move || gate.take().map_or(Ok(()), |g| g());
        if secret.len() > MAX_TOKEN_LEN || !secret.starts_with(PREFIX) {
            gate()?;
            return Ok(Err(Error::Unauthenticated));
        }
        self.authenticate_hash(&hash(secret), gate).await
    }

    /// [`TokenService::authenticate_gated`] for the token whose secret hashes
    /// to `h` (an AWS access key is bound to its token by this hash): the same
    /// cache, revocation and expiry checks, `gate` called at most once.
    pub async fn authenticate_hash<L>(
        &self,
        h: &[u8; 32],
        gate: impl FnOnce() -> std::result::Result<(), L>,
    ) -> std::result::Result<Result<Principal>, L> {
        let mut gate = Some(gate);
        let mut gate = move || gate.take().map_or(Ok(()), |g| g());
        let h = *h;
        let now = self.clock.now();
        let cached = self
            .cache
            .read()
            .get(&h)
            .filter(|(_, at)| now - at < CACHE_SECS)
            .map(|(t, _)| t.clone());
        let record = match cached {
            Some(t) => t,
            None => {
                gate()?;
                let missed = self
                    .misses
                    .read()
                    .get(&h)
                    .copied()
                    .is_some_and(|at| now - at < CACHE_SECS);
                if missed {
                    return Ok(Err(Error::Unauthenticated));
                }
                let found = match self.store.token_by_hash(&h).await {
                    Ok(f) => f,
                    Err(e) => return Ok(Err(e)),
                };
                let Some(t) = found else {
                    {
                        let mut m = self.misses.write();
                        if m.len() >= MAX_MISSES {
                            m.retain(|_, at| now - *at < CACHE_SECS);
                        }
                        if m.len() < MAX_MISSES {
                            m.insert(h, now);
                        }
                    }
                    return Ok(Err(Error::Unauthenticated));
                };
                {
                    let mut c = self.cache.write();
                    if c.len() > 100_000 {
                        c.clear();
                    }
                    c.insert(h, (t.clone(), now));
                }
                t
            }
        };
        if record.revoked_at.is_some() || record.expires_at.is_some_and(|e| e <= now) {
            gate()?;
            return Ok(Err(Error::Unauthenticated));
        }
        Ok(Ok(Principal {
            token_id: record.id,
            scopes: record.scopes,
            expires_at: record.expires_at,
        }))
    }
}

#[cfg(test)]
mod tests {
    proptest::proptest! {
        /// The documented scope pattern accepts exactly what the validator does.
        #[test]
        fn the_scope_pattern_is_the_validator(
            scope in "[a-z*]{0,8}(:[A-Za-z0-9._*-]{0,66})?|(seal|datakey|sign|verify|mac|random|operate|keys|claim|admin):[A-Za-z0-9._-]{0,66}\\*?"
        ) {
            let re = regex::Regex::new(SCOPE_PATTERN).unwrap();
            proptest::prop_assert_eq!(re.is_match(&scope), validate_scope(&scope).is_ok(), "{}", scope);
        }
    }

    use super::*;

    #[test]
    fn scope_matching() {
        let g = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert!(allows(&g(&["admin"]), "seal:x"));
        assert!(allows(&g(&["seal:pay*"]), "seal:payments"));
        assert!(!allows(&g(&["seal:pay*"]), "unseal:payments"));
        assert!(!allows(&g(&["seal:payments"]), "seal:payments2"));
        assert!(allows(&g(&["seal:*"]), "seal:anything"));
        assert!(!allows(&g(&[]), "audit:read"));
    }

    #[test]
    fn scope_validation() {
        for ok in [
            "admin",
            "keys:manage",
            "seal:payments",
            "unseal:pay*",
            "rewrap:*",
            "audit:read",
        ] {
            assert!(validate_scope(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "root",
            "seal:",
            "seal:bad name",
            "launch:missiles",
            "seal",
        ] {
            assert!(validate_scope(bad).is_err(), "{bad}");
        }
    }
}
