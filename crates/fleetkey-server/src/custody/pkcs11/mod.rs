//! PKCS#11 custody: the root lives in an HSM (tested on SoftHSM2) and never
//! enters fleetkey's memory.
//!
//! In the token, found by label or generated on first start (docs/custody.md):
//!
//! * `<label>-wrap`: an AES-256 secret key, `CKA_SENSITIVE`, not
//!   `CKA_EXTRACTABLE`. Data keys are wrapped by the token with it: `C_Encrypt`
//!   with `CKM_AES_GCM` (a random 96-bit IV, the wrap context as AAD, a 128-bit
//!   tag); unwrapping is `C_Decrypt`, so a wrapped key moved to another context
//!   does not unwrap.
//! * `<label>-ed25519`: the service's Ed25519 key pair (`CKM_EC_EDWARDS_KEY_PAIR_GEN`),
//!   private half sensitive and not extractable; it signs in the token
//!   (`CKM_EDDSA`), the classical half of the composite signature.
//! * `<label>-derive`: a 256-bit generic secret, sensitive, not extractable,
//!   sign-only. The ML-DSA-65 seed is derived from it in the token (HKDF-Expand
//!   with HMAC-SHA256 as the PRF): no HSM here does ML-DSA, so that half signs
//!   in process memory. Tokens set up before kept their wrapped seed object
//!   `<label>-ml-dsa-seed` (AAD `fleetkey custody pkcs11 ml-dsa seed v1`).
//!
//! Token calls block; they run on tokio's blocking pool over a pool of logged-in
//! sessions (as many as `sessions` kept idle). A call that finds the token gone
//! drops the connection; the module is finalised and initialised again, the
//! token found, logged in and its keys found again (at most once a second), so
//! a token that goes away and comes back serves again without a restart.

mod gcm;
mod kwp;
mod objects;
mod resident;

use gcm::{IV_LEN, WRAP_GCM_V1, gcm_decrypt, gcm_encrypt, gcm_open, gcm_seal};
use objects::find_one;

use super::{Custody, settings};
use crate::error::{Error, Result};
use cryptoki::context::{CInitializeArgs, CInitializeFlags, Pkcs11};
use cryptoki::error::{Error as CkError, RvError};
use cryptoki::mechanism::eddsa::{EddsaParams, EddsaSignatureScheme};
use cryptoki::mechanism::{Mechanism, MechanismType};
use cryptoki::object::{ObjectClass, ObjectHandle};
use cryptoki::session::{Session, UserType};
use cryptoki::slot::{Limit, Slot};
use cryptoki::types::AuthPin;
use fleetkey_crypto::{composite, ed25519, mldsa::MlDsaSigner, secret::SecretBytes};
use parking_lot::{Mutex, RwLock};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};
use zeroize::Zeroizing;

/// Where the token is and how to log in (`FLEETKEY_PKCS11_*`, docs/custody.md).
#[derive(Clone)]
pub struct Pkcs11Config {
    /// The PKCS#11 module (for SoftHSM2: `/usr/lib/softhsm/libsofthsm2.so`).
    pub module: PathBuf,
    /// The token's label.
    pub token: String,
    /// The user PIN (from `FLEETKEY_PKCS11_PIN_FILE` or `FLEETKEY_PKCS11_PIN`).
    pub pin: Zeroizing<String>,
    /// Prefix of the labels of fleetkey's objects in the token (default `fleetkey`).
    pub label: String,
    /// Sessions open for calls at most, kept open between calls (default 4;
    /// never more than the token allows).
    pub sessions: usize,
    /// How data keys are wrapped (`FLEETKEY_PKCS11_WRAP`: `aes-gcm`, `aes-kwp`,
    /// or `auto`, the default, as `None`: AES-GCM when the token has it).
    pub wrap: Option<WrapMechanism>,
}

/// How the token wraps data keys (docs/custody.md, "Wrapped keys").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WrapMechanism {
    /// `CKM_AES_GCM` with `C_Encrypt`: the wrap context as associated data.
    AesGcm,
    /// `CKM_AES_KEY_WRAP_PAD` with `C_WrapKey`: the context bound inside.
    AesKwp,
}

impl WrapMechanism {
    /// The PKCS#11 mechanism's name.
    pub fn name(self) -> &'static str {
        match self {
            Self::AesGcm => "CKM_AES_GCM",
            Self::AesKwp => "CKM_AES_KEY_WRAP_PAD",
        }
    }

    /// The suffix of the wrapping key's label: `-wrap` (AES-GCM) or `-kwp`.
    fn suffix(self) -> &'static str {
        match self {
            Self::AesGcm => "wrap",
            Self::AesKwp => "kwp",
        }
    }
}

impl std::fmt::Debug for Pkcs11Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pkcs11Config")
            .field("module", &self.module)
            .field("token", &self.token)
            .field("label", &self.label)
            .field("sessions", &self.sessions)
            .field("wrap", &self.wrap)
            .finish_non_exhaustive()
    }
}

impl Pkcs11Config {
    /// From `FLEETKEY_PKCS11_MODULE`, `FLEETKEY_PKCS11_TOKEN`, the PIN
    /// (`FLEETKEY_PKCS11_PIN_FILE` or `FLEETKEY_PKCS11_PIN`, exactly one),
    /// `FLEETKEY_PKCS11_LABEL` and `FLEETKEY_PKCS11_SESSIONS`.
    pub fn from_env() -> Result<Self> {
        let need = |name: &str, what: &str| {
            settings::var(name).ok_or_else(|| Error::CustodyConfig(format!("set {name} to {what}")))
        };
        let module = PathBuf::from(need(
            "FLEETKEY_PKCS11_MODULE",
            "the PKCS#11 module (for SoftHSM2: /usr/lib/softhsm/libsofthsm2.so)",
        )?);
        let token = need("FLEETKEY_PKCS11_TOKEN", "the token's label")?;
        let pin = settings::secret("FLEETKEY_PKCS11_PIN")?.ok_or_else(|| {
            Error::CustodyConfig(
                "set FLEETKEY_PKCS11_PIN_FILE (a file holding the user PIN) or FLEETKEY_PKCS11_PIN"
                    .into(),
            )
        })?;
        let sessions = settings::bounded("FLEETKEY_PKCS11_SESSIONS", 4, 1..=256)?;
        Ok(Self {
            module,
            token,
            pin,
            label: settings::var("FLEETKEY_PKCS11_LABEL").unwrap_or_else(|| "fleetkey".into()),
            sessions,
            wrap: match settings::var("FLEETKEY_PKCS11_WRAP").as_deref() {
                None | Some("auto") => None,
                Some("aes-gcm") => Some(WrapMechanism::AesGcm),
                Some("aes-kwp") => Some(WrapMechanism::AesKwp),
                Some(other) => {
                    return Err(Error::CustodyConfig(format!(
                        "FLEETKEY_PKCS11_WRAP={other:?}: use auto, aes-gcm or aes-kwp"
                    )));
                }
            },
        })
    }
}

/// A token call failed: the token is gone, refused, or out of resources.
fn token_err(what: &str, e: CkError) -> Error {
    Error::CustodyUnavailable(format!("pkcs11 {what}: {e}"))
}

/// One connection to the token: the module initialised, the slot found, the
/// application logged in, fleetkey's keys found by label. The anchor session
/// stays open for the connection's life: a PKCS#11 login belongs to the
/// application and ends when its last session closes.
struct Conn {
    ctx: Pkcs11,
    slot: Slot,
    idle: Mutex<Vec<Session>>,
    anchor: Mutex<Option<Session>>,
    /// How new wraps are made, and with which key.
    mechanism: WrapMechanism,
    wrap_key: ObjectHandle,
    /// The key of the other mechanism, when the token holds one (wraps made
    /// before a change of `FLEETKEY_PKCS11_WRAP` still unwrap).
    other_key: Option<ObjectHandle>,
    /// Whether the token does `CKM_AES_GCM` (resident keyrings need it).
    gcm: bool,
    ed25519: ObjectHandle,
    /// Handles of resident keys found so far, by label (handles belong to one
    /// connection: a reconnection starts empty).
    resident: Mutex<std::collections::HashMap<String, ObjectHandle>>,
    /// Sessions open for calls at most (`FLEETKEY_PKCS11_SESSIONS`, never more
    /// than the token allows one application beside the anchor session).
    sessions: usize,
}

/// How long a call waits for one of the pool's sessions before it is refused.
const SESSION_WAIT: Duration = Duration::from_secs(5);

/// One of the pool's sessions taken by a call; given back on drop.
struct SessionSlot<'a>(&'a Pool);

impl Drop for SessionSlot<'_> {
    fn drop(&mut self) {
        let mut n = self.0.in_use.lock();
        *n = n.saturating_sub(1);
        self.0.freed.notify_one();
    }
}

/// Logs the application in (a session of an application logged in already is).
fn login(s: &Session, pin: &str, token: &str) -> Result<()> {
    match s.login(UserType::User, Some(&AuthPin::new(pin.into()))) {
        Ok(()) | Err(CkError::Pkcs11(RvError::UserAlreadyLoggedIn, _)) => Ok(()),
        Err(CkError::Pkcs11(
            RvError::PinIncorrect | RvError::PinLenRange | RvError::PinLocked,
            _,
        )) => Err(Error::CustodyConfig(format!(
            "token {token:?} refused the PIN (FLEETKEY_PKCS11_PIN_FILE or FLEETKEY_PKCS11_PIN)"
        ))),
        Err(e) => Err(token_err("login", e)),
    }
}

impl Conn {
    /// Loads and initialises the module, finds the token, logs in and finds
    /// fleetkey's keys, or makes them on a first start.
    fn open(config: &Pkcs11Config) -> Result<Self> {
        let ctx = Pkcs11::new(&config.module).map_err(|e| {
            Error::CustodyConfig(format!("pkcs11 module {}: {e}", config.module.display()))
        })?;
        match ctx.initialize(CInitializeArgs::new(CInitializeFlags::OS_LOCKING_OK)) {
            Ok(()) | Err(CkError::Pkcs11(RvError::CryptokiAlreadyInitialized, _)) => {}
            Err(e) => return Err(token_err("initialize", e)),
        }
        let slot = ctx
            .get_slots_with_token()
            .map_err(|e| token_err("slots", e))?
            .into_iter()
            .find(|s| {
                ctx.get_token_info(*s)
                    .is_ok_and(|t| t.label().trim_end() == config.token)
            })
            .ok_or_else(|| Error::CustodyConfig(format!("no token labelled {:?}", config.token)))?;
        let anchor = ctx
            .open_rw_session(slot)
            .map_err(|e| token_err("open session", e))?;
        login(&anchor, &config.pin, &config.token)?;
        let mechanisms = ctx
            .get_mechanism_list(slot)
            .map_err(|e| token_err("mechanisms", e))?;
        let gcm = mechanisms.contains(&MechanismType::AES_GCM);
        let kwp = mechanisms.contains(&MechanismType::AES_KEY_WRAP_PAD);
        let mechanism = match (config.wrap, gcm, kwp) {
            (None | Some(WrapMechanism::AesGcm), true, _) => WrapMechanism::AesGcm,
            (None | Some(WrapMechanism::AesKwp), _, true) => WrapMechanism::AesKwp,
            (Some(m), _, _) => {
                return Err(Error::CustodyConfig(format!(
                    "token {:?} does not offer {} (FLEETKEY_PKCS11_WRAP)",
                    config.token,
                    m.name()
                )));
            }
            (None, false, false) => {
                return Err(Error::CustodyConfig(format!(
                    "token {:?} offers neither CKM_AES_GCM nor CKM_AES_KEY_WRAP_PAD to wrap keys",
                    config.token
                )));
            }
        };
        let wrap_key = objects::wrap_key(&anchor, &config.label, mechanism)?;
        let other = match mechanism {
            WrapMechanism::AesGcm => WrapMechanism::AesKwp,
            WrapMechanism::AesKwp => WrapMechanism::AesGcm,
        };
        let other_key = find_one(
            &anchor,
            ObjectClass::SECRET_KEY,
            &format!("{}-{}", config.label, other.suffix()),
        )?;
        let ed25519 = objects::ed25519_key(&anchor, &config.label)?;
        let sessions = match ctx.get_token_info(slot).map(|t| t.max_rw_session_count()) {
            Ok(Limit::Max(n)) => config
                .sessions
                .min(usize::try_from(n.saturating_sub(1)).unwrap_or(usize::MAX))
                .max(1),
            _ => config.sessions,
        };
        if sessions < config.sessions {
            tracing::warn!(
                token = %config.token,
                sessions,
                "FLEETKEY_PKCS11_SESSIONS is more than the token allows; using its limit"
            );
        }
        Ok(Self {
            ctx,
            slot,
            idle: Mutex::new(Vec::new()),
            anchor: Mutex::new(Some(anchor)),
            mechanism,
            wrap_key,
            other_key,
            gcm,
            ed25519,
            resident: Mutex::new(std::collections::HashMap::new()),
            sessions,
        })
    }

    /// Wraps `key` for `context` with the connection's mechanism.
    fn wrap(&self, s: &Session, key: &[u8], context: &[u8]) -> Result<Vec<u8>> {
        match self.mechanism {
            WrapMechanism::AesGcm => gcm_encrypt(s, self.wrap_key, key, context),
            WrapMechanism::AesKwp => kwp::wrap(s, self.wrap_key, key, context),
        }
    }

    /// Unwraps what either mechanism wrapped, by its first byte, with the key of
    /// that mechanism when the token holds one.
    fn unwrap(&self, s: &Session, wrapped: &[u8], context: &[u8]) -> Result<Zeroizing<Vec<u8>>> {
        let key_for = |m: WrapMechanism| {
            if m == self.mechanism {
                Some(self.wrap_key)
            } else {
                self.other_key
            }
        };
        let open = || Error::Envelope(fleetkey_crypto::Error::Open);
        match wrapped.first() {
            Some(&WRAP_GCM_V1) => {
                let k = key_for(WrapMechanism::AesGcm).ok_or_else(open)?;
                Ok(Zeroizing::new(gcm_decrypt(s, k, wrapped, context)?))
            }
            Some(&kwp::WRAP_KWP_V1) => {
                let k = key_for(WrapMechanism::AesKwp).ok_or_else(open)?;
                kwp::unwrap(s, k, wrapped, context)
            }
            _ => Err(open()),
        }
    }

    /// Closes every session, then finalises the module, so that the next
    /// [`Conn::open`] starts afresh (a remote token's client reconnects there).
    fn close(self) {
        self.idle.lock().clear();
        *self.anchor.lock() = None;
        let _ = self.ctx.clone().finalize();
    }
}

/// The connection to the token and what to reconnect with. Calls hold the
/// connection's read lock; a reconnection takes the write lock, so it never
/// finalises the module under a call in flight.
struct Pool {
    config: Pkcs11Config,
    conn: RwLock<Option<Conn>>,
    /// No reconnection attempt before this instant (one a second at most while
    /// the token is gone, so calls fail fast).
    next_attempt: Mutex<Instant>,
    /// Calls in flight (each on its own session), and the signal that one ended.
    in_use: Mutex<usize>,
    freed: parking_lot::Condvar,
    /// Calls in flight at most: the connection's session limit.
    limit: std::sync::atomic::AtomicUsize,
}

/// How often a lost token is looked for again.
const RECONNECT_EVERY: Duration = Duration::from_secs(1);

impl Pool {
    /// Runs `f` on a logged-in session. When the call finds the token gone (any
    /// failure other than a refusal), the connection is dropped and opened again
    /// (at most once a second) and the call made once more on the new one.
    fn with<T>(&self, f: impl Fn(&Conn, &Session) -> Result<T>) -> Result<T> {
        // A pool whose sessions are all busy is not a lost token: wait here,
        // before any call that could lead to a reconnection.
        let _slot = self.take_slot()?;
        match self.try_with(&f) {
            Err(Error::CustodyUnavailable(first)) => {
                if self.reconnect().is_err() {
                    return Err(Error::CustodyUnavailable(first));
                }
                self.try_with(&f)
            }
            r => r,
        }
    }

    /// `f` on an idle session or a new one. A session whose call failed in the
    /// token is closed, not reused; one whose call was refused (a wrapped key
    /// that does not open) goes back to the pool.
    fn try_with<T>(&self, f: &impl Fn(&Conn, &Session) -> Result<T>) -> Result<T> {
        let guard = self.conn.read();
        let conn = guard.as_ref().ok_or_else(|| {
            Error::CustodyUnavailable(format!(
                "pkcs11: token {:?} is not connected",
                self.config.token
            ))
        })?;
        let s = match conn.idle.lock().pop() {
            Some(s) => s,
            None => {
                let s = conn
                    .ctx
                    .open_rw_session(conn.slot)
                    .map_err(|e| token_err("open session", e))?;
                login(&s, &self.config.pin, &self.config.token)?;
                s
            }
        };
        let r = f(conn, &s);
        if !matches!(r, Err(Error::CustodyUnavailable(_))) {
            let mut idle = conn.idle.lock();
            if idle.len() < conn.sessions {
                idle.push(s);
            }
        }
        r
    }

    /// Takes one of the pool's sessions, waiting up to [`SESSION_WAIT`] while
    /// all are in use.
    fn take_slot(&self) -> Result<SessionSlot<'_>> {
        let limit = || self.limit.load(std::sync::atomic::Ordering::Relaxed);
        let mut n = self.in_use.lock();
        let deadline = Instant::now() + SESSION_WAIT;
        while *n >= limit() {
            if self.freed.wait_until(&mut n, deadline).timed_out() && *n >= limit() {
                return Err(Error::CustodyUnavailable(format!(
                    "pkcs11: all {} sessions stayed busy for {} s (FLEETKEY_PKCS11_SESSIONS)",
                    limit(),
                    SESSION_WAIT.as_secs()
                )));
            }
        }
        *n += 1;
        Ok(SessionSlot(self))
    }

    /// Drops the connection and opens a new one, unless an attempt was made
    /// less than [`RECONNECT_EVERY`] ago.
    fn reconnect(&self) -> Result<()> {
        {
            let mut next = self.next_attempt.lock();
            let now = Instant::now();
            if now < *next {
                return Err(Error::CustodyUnavailable("pkcs11: reconnecting".into()));
            }
            *next = now + RECONNECT_EVERY;
        }
        let mut conn = self.conn.write();
        if let Some(old) = conn.take() {
            old.close();
        }
        let fresh = Conn::open(&self.config).map_err(|e| match e {
            Error::CustodyConfig(m) => Error::CustodyUnavailable(m),
            other => other,
        })?;
        tracing::info!(token = %self.config.token, "pkcs11 token connected again");
        self.limit
            .store(fresh.sessions, std::sync::atomic::Ordering::Relaxed);
        *conn = Some(fresh);
        Ok(())
    }
}

struct Inner {
    pool: Pool,
    /// Prefix of the labels of fleetkey's objects (`FLEETKEY_PKCS11_LABEL`).
    label: String,
    mldsa: MlDsaSigner,
    public_key: Vec<u8>,
}

/// Custody whose root wrapping key and Ed25519 key are in a PKCS#11 token.
#[derive(Clone)]
pub struct Pkcs11Custody(Arc<Inner>);

impl std::fmt::Debug for Pkcs11Custody {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pkcs11Custody")
            .field(
                "public_key_prefix",
                &fleetkey_crypto::hex_prefix(&self.0.public_key),
            )
            .finish_non_exhaustive()
    }
}

impl Pkcs11Custody {
    /// Opens the token, logs in, and finds fleetkey's objects or makes them.
    /// Blocking: call it from a blocking context (see [`Pkcs11Custody::open`]).
    pub fn open_blocking(config: &Pkcs11Config) -> Result<Self> {
        let conn = Conn::open(config)?;
        tracing::info!(
            token = %config.token,
            mechanism = conn.mechanism.name(),
            "pkcs11 custody wraps data keys with {}",
            conn.mechanism.name()
        );
        let (seed, ed_public) = {
            let anchor = conn.anchor.lock();
            let s = anchor.as_ref().ok_or_else(|| {
                Error::Internal("pkcs11: a new connection has its anchor session".into())
            })?;
            (
                objects::mldsa_seed(&conn, s, &config.label)?,
                objects::ed25519_public(s, &config.label)?,
            )
        };
        let mldsa = MlDsaSigner::from_seed(seed)?;
        let mut public_key = ed_public.to_vec();
        public_key.extend_from_slice(&mldsa.public_key());
        let pool = Pool {
            config: config.clone(),
            limit: std::sync::atomic::AtomicUsize::new(conn.sessions),
            conn: RwLock::new(Some(conn)),
            next_attempt: Mutex::new(Instant::now()),
            in_use: Mutex::new(0),
            freed: parking_lot::Condvar::new(),
        };
        Ok(Self(Arc::new(Inner {
            pool,
            label: config.label.clone(),
            mldsa,
            public_key,
        })))
    }

    /// [`Pkcs11Custody::open_blocking`] on tokio's blocking pool.
    pub async fn open(config: Pkcs11Config) -> Result<Self> {
        tokio::task::spawn_blocking(move || Self::open_blocking(&config))
            .await
            .map_err(|e| Error::Internal(format!("pkcs11 open task: {e}")))?
    }

    async fn call<T: Send + 'static>(
        &self,
        f: impl Fn(&Conn, &Session) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        let inner = self.0.clone();
        tokio::task::spawn_blocking(move || inner.pool.with(&f))
            .await
            .map_err(|e| Error::Internal(format!("pkcs11 task: {e}")))?
    }
}

#[async_trait::async_trait]
impl Custody for Pkcs11Custody {
    async fn wrap(&self, key: &SecretBytes<32>, context: &str) -> Result<Vec<u8>> {
        let key = key.clone();
        let context = context.to_owned();
        self.call(move |c, s| c.wrap(s, key.expose_secret(), context.as_bytes()))
            .await
    }

    async fn unwrap(&self, wrapped: &[u8], context: &str) -> Result<SecretBytes<32>> {
        let wrapped = wrapped.to_vec();
        let context = context.to_owned();
        let pt = self
            .call(move |c, s| c.unwrap(s, &wrapped, context.as_bytes()))
            .await?;
        Ok(SecretBytes::from_slice(&pt)?)
    }

    async fn sign(&self, msg: &[u8]) -> Result<Vec<u8>> {
        let m = composite::signed_message(msg);
        let ml = self.0.mldsa.sign(&m)?;
        let ed = self
            .call(move |c, s| {
                s.sign(
                    &Mechanism::Eddsa(EddsaParams::new(EddsaSignatureScheme::Pure)),
                    c.ed25519,
                    &m,
                )
                .map_err(|e| token_err("sign", e))
            })
            .await?;
        if ed.len() != ed25519::SIGNATURE_LEN {
            return Err(Error::CustodyUnavailable(format!(
                "pkcs11 sign: the token gave a {}-byte Ed25519 signature",
                ed.len()
            )));
        }
        Ok(composite::join(&ed, &ml))
    }

    fn public_key(&self) -> Vec<u8> {
        self.0.public_key.clone()
    }

    fn backend(&self) -> &'static str {
        "pkcs11"
    }

    fn root_id(&self) -> String {
        format!("pkcs11:{}/{}", self.0.pool.config.token, self.0.label)
    }

    fn resident(&self) -> Option<&dyn super::Resident> {
        Some(self)
    }
}
