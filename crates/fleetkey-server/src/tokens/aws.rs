//! AWS access keys bound to fleetkey tokens, for the AWS KMS door: an access
//! key id (`FKIA` + 16 hex digits) and a secret, shown once. The secret is kept
//! only wrapped by custody (a service key named `aws-access-key:<id>`, moved
//! with the rest by `fleetkey custody migrate`), beside the hash of the token
//! it is bound to: a request signed with the pair acts as that token, with
//! exactly its scopes and expiry, and revoking the token revokes the pair.

use super::sigv4::{self, AuthError, Authorization};
use super::{Principal, TokenService};
use crate::audit::AuditDraft;
use crate::custody::Custody;
use crate::error::{Error, Result};
use crate::store::{Change, TokenRecord, TokenStore};
use base64::{Engine as _, engine::general_purpose::STANDARD_NO_PAD};
use fleetkey_crypto::secret::SecretBytes;
use parking_lot::RwLock;
use serde_json::json;
use std::collections::HashMap;
use std::sync::Arc;
use zeroize::Zeroizing;

/// Prefix of every access key id fleetkey issues.
pub const ACCESS_KEY_PREFIX: &str = "FKIA";
/// Prefix of the service key that holds one.
pub const SERVICE_KEY_PREFIX: &str = "aws-access-key:";
/// Most access keys whose secret is kept unwrapped in memory.
const MAX_CACHED: usize = 10_000;

/// A new access key pair. `Debug` never shows the secret.
pub struct AccessKey {
    /// `AWS_ACCESS_KEY_ID`.
    pub access_key_id: String,
    /// `AWS_SECRET_ACCESS_KEY` (shown once).
    pub secret_access_key: Zeroizing<String>,
    /// The token it acts as.
    pub token_id: String,
}

impl std::fmt::Debug for AccessKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AccessKey")
            .field("access_key_id", &self.access_key_id)
            .field("secret_access_key", &"<redacted>")
            .field("token_id", &self.token_id)
            .finish()
    }
}

/// Why a signed request was not admitted.
#[derive(Debug)]
pub enum Refused {
    /// The signature or the key (AWS's error).
    Auth(AuthError),
    /// The store or custody could not answer.
    Service(Error),
}

struct Known {
    token_hash: [u8; 32],
    secret: Zeroizing<String>,
    /// The signing key of the day and region last seen (derived once, not
    /// for every request).
    signing: parking_lot::Mutex<Option<Arc<sigv4::SigningKey>>>,
}

/// Issues access keys and admits requests signed with them.
pub struct AwsKeys {
    tokens: Arc<TokenService>,
    store: Arc<dyn TokenStore>,
    custody: Arc<dyn Custody>,
    known: RwLock<HashMap<String, Arc<Known>>>,
}

fn context(name: &str) -> String {
    format!("service:{name}")
}

impl AwsKeys {
    /// Access keys over `tokens`' store, secrets wrapped by `custody`.
    pub fn new(tokens: Arc<TokenService>, custody: Arc<dyn Custody>) -> Self {
        Self {
            store: tokens.store(),
            tokens,
            custody,
            known: RwLock::new(HashMap::new()),
        }
    }

    /// A new access key pair for `token` (valid: not revoked, not expired),
    /// audited as `token.aws_access_key` by `actor`.
    pub async fn create(&self, actor: &str, token: &TokenRecord) -> Result<AccessKey> {
        let now = self.tokens.now();
        if token.revoked_at.is_some() || token.expires_at.is_some_and(|e| e <= now) {
            return Err(Error::Invalid {
                what: "token",
                why: format!("{} is revoked or expired", token.id),
            });
        }
        let id: [u8; 8] = fleetkey_crypto::rand::array()?;
        let access_key_id = format!("{ACCESS_KEY_PREFIX}{}", hex::encode_upper(id));
        let secret = SecretBytes::<32>::random()?;
        let name = format!("{SERVICE_KEY_PREFIX}{access_key_id}");
        let wrapped = self.custody.wrap(&secret, &context(&name)).await?;
        self.store
            .apply(
                Change::CreateServiceKey {
                    name,
                    wrapped,
                    public: token.hash.to_vec(),
                    at: now,
                },
                AuditDraft::new(
                    actor,
                    "token.aws_access_key",
                    format!("token:{}", token.id),
                    json!({ "access_key_id": access_key_id }),
                ),
                now,
            )
            .await?;
        Ok(AccessKey {
            access_key_id,
            secret_access_key: Zeroizing::new(STANDARD_NO_PAD.encode(secret.expose_secret())),
            token_id: token.id.clone(),
        })
    }

    /// Records refused signatures (a summary over an interval: counts by AWS
    /// error code and source network) as one `aws.signature_refused` entry.
    pub async fn audit_refusals(&self, details: serde_json::Value) -> Result<()> {
        let now = self.tokens.now();
        self.store
            .apply(
                Change::AuditOnly,
                AuditDraft::new(
                    "service",
                    "aws.signature_refused",
                    "aws-access-key:*",
                    details,
                ),
                now,
            )
            .await
            .map(|_| ())
    }

    /// The access key's token hash and secret (cached after the first unwrap).
    async fn known(&self, access_key_id: &str) -> std::result::Result<Arc<Known>, Refused> {
        if let Some(k) = self.known.read().get(access_key_id) {
            return Ok(k.clone());
        }
        if !access_key_id.starts_with(ACCESS_KEY_PREFIX) {
            return Err(Refused::Auth(AuthError::UnknownKey));
        }
        let name = format!("{SERVICE_KEY_PREFIX}{access_key_id}");
        let (wrapped, public) = match self.store.aws_access_key(&name).await {
            Ok(Some(found)) => found,
            Ok(None) => return Err(Refused::Auth(AuthError::UnknownKey)),
            Err(e) => return Err(Refused::Service(e)),
        };
        let token_hash: [u8; 32] = public
            .try_into()
            .map_err(|_| Refused::Service(Error::Corrupt(format!("{name}: not a token hash"))))?;
        let secret = self
            .custody
            .unwrap(&wrapped, &context(&name))
            .await
            .map_err(Refused::Service)?;
        let known = Arc::new(Known {
            token_hash,
            secret: Zeroizing::new(STANDARD_NO_PAD.encode(secret.expose_secret())),
            signing: parking_lot::Mutex::new(None),
        });
        let mut m = self.known.write();
        if m.len() >= MAX_CACHED {
            m.clear();
        }
        m.insert(access_key_id.to_owned(), known.clone());
        Ok(known)
    }

    /// The principal of a request signed with one of these keys: the signature
    /// checked ([`sigv4::verify`]), then the bound token as a bearer token is
    /// (revoked, expired: refused). `gate` (the per-source limit for requests
    /// that are not yet known good) runs before any store lookup of an unknown
    /// key and before a refusal, at most once.
    pub async fn authenticate<L>(
        &self,
        auth: &Authorization,
        req: &sigv4::Request<'_>,
        gate: impl FnOnce() -> std::result::Result<(), L>,
    ) -> std::result::Result<std::result::Result<Principal, Refused>, L> {
        let mut gate = Some(gate);
        let mut gate = move || gate.take().map_or(Ok(()), |g| g());
        let cached = self.known.read().contains_key(&auth.access_key_id);
        if !cached {
            gate()?;
        }
        let known = match self.known(&auth.access_key_id).await {
            Ok(k) => k,
            Err(e) => {
                gate()?;
                return Ok(Err(e));
            }
        };
        let now = std::time::UNIX_EPOCH
            + std::time::Duration::from_secs(u64::try_from(self.tokens.now()).unwrap_or(0));
        let checked = sigv4::verify_with(auth, req, now, |date, region| {
            let mut kept = known.signing.lock();
            if let Some(k) = kept.as_ref().filter(|k| k.is_for(date, region)) {
                return k.clone();
            }
            let k = Arc::new(sigv4::SigningKey::derive(&known.secret, date, region));
            *kept = Some(k.clone());
            k
        });
        if let Err(e) = checked {
            gate()?;
            return Ok(Err(Refused::Auth(e)));
        }
        Ok(
            match self
                .tokens
                .authenticate_hash(&known.token_hash, gate)
                .await?
            {
                Ok(p) => Ok(p),
                Err(Error::Unauthenticated) => Err(Refused::Auth(AuthError::UnknownKey)),
                Err(e) => Err(Refused::Service(e)),
            },
        )
    }
}
