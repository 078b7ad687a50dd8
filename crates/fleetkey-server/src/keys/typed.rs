//! Signing and MAC keyrings: sign and verify (Ed25519, ML-DSA-65, the composite),
//! MAC generate and verify (HMAC-SHA-256/512), and public keys. Each version's
//! 32-byte secret is the key (docs/formats.md, "Keyring key types"): the Ed25519
//! seed, the ML-DSA-65 seed ξ, the HMAC key; the composite derives its two seeds
//! from it with HKDF-SHA256. Signing and MACs take a use of the primary version,
//! as a seal does, so rotation by use and by age work alike; verifying accepts
//! every version that may still be used (not revoked, not below the minimum).

use super::Keyring;
use crate::error::{Error, Result};
use crate::key_type::{KeyType, Purpose};
use fleetkey_crypto::{
    composite::CompositeSigner,
    ed25519::Ed25519Signer,
    envelope::{Body, Header, KeyId, io as env_io, recipient},
    hpke::XWingIdentity,
    mac::MacKey,
    mldsa::MlDsaSigner,
    prehash::{self, Digest, HashAlg},
    secret::SecretBytes,
};
use std::sync::Arc;

/// HKDF-SHA256 salt of the composite's seeds.
pub const COMPOSITE_SALT: &[u8] = b"fleetkey keyring composite v1";

/// What a signature or MAC covers: a whole message, or a digest the caller
/// computed (the algorithm's standard prehash mode: Ed25519ph, HashML-DSA-65).
#[derive(Debug, Clone, Copy)]
pub enum Signable<'a> {
    /// The message itself.
    Message(&'a [u8]),
    /// A digest of the message.
    Digest(&'a Digest),
}

/// An owned [`Signable`], as decoded from a request or read from a file.
#[derive(Debug, Clone)]
pub enum SignInput {
    /// The message itself.
    Message(Vec<u8>),
    /// A digest of the message.
    Digest(Digest),
}

impl SignInput {
    /// The borrowed form the keyring takes.
    pub fn signable(&self) -> Signable<'_> {
        match self {
            Self::Message(m) => Signable::Message(m),
            Self::Digest(d) => Signable::Digest(d),
        }
    }
}

/// Refuses a digest that `kind` cannot sign: the composite and MACs have no
/// standard prehash mode, and Ed25519ph takes SHA-512 digests only.
pub fn check_prehash(kind: KeyType, hash: HashAlg) -> Result<()> {
    match (kind, hash) {
        (KeyType::Ed25519, HashAlg::Sha512) | (KeyType::MlDsa65, _) => Ok(()),
        _ => Err(Error::NoPrehash {
            key_type: kind.name(),
            hash: hash.name(),
        }),
    }
}

/// One version's signing or MAC key.
pub(crate) enum TypedKey {
    Ed25519(Ed25519Signer),
    MlDsa65(Box<MlDsaSigner>),
    Composite(Box<CompositeSigner>),
    Mac(Box<MacKey>),
    /// An X-Wing identity and the key id envelopes sealed to it carry.
    XWing(Box<XWingIdentity>, KeyId),
}

fn derive(secret: &SecretBytes<32>, info: &[u8]) -> Result<SecretBytes<32>> {
    let mut out = [0u8; 32];
    fleetkey_crypto::hkdf::hkdf_sha256(COMPOSITE_SALT, secret.expose_secret(), info, &mut out)?;
    let s = SecretBytes::new(out);
    zeroize::Zeroize::zeroize(&mut out);
    Ok(s)
}

impl TypedKey {
    fn new(kind: KeyType, secret: SecretBytes<32>) -> Result<Self> {
        Ok(match kind {
            KeyType::Ed25519 => Self::Ed25519(Ed25519Signer::from_seed(secret)?),
            KeyType::MlDsa65 => Self::MlDsa65(Box::new(MlDsaSigner::from_seed(secret)?)),
            KeyType::Ed25519MlDsa65 => Self::Composite(Box::new(CompositeSigner::new(
                Ed25519Signer::from_seed(derive(&secret, b"ed25519")?)?,
                MlDsaSigner::from_seed(derive(&secret, b"ml-dsa-65")?)?,
            ))),
            KeyType::Mac(alg) => Self::Mac(Box::new(MacKey::new(alg, &secret))),
            KeyType::XWing => {
                let id = XWingIdentity::from_seed(secret)?;
                let key_id = recipient::recipient_key_id(&id.recipient());
                Self::XWing(Box::new(id), key_id)
            }
            KeyType::Aead(_) => {
                return Err(Error::Internal(
                    "an encryption key is not a typed key".into(),
                ));
            }
        })
    }

    fn sign(&self, input: Signable<'_>) -> Result<Vec<u8>> {
        let msg = match input {
            Signable::Message(m) => m,
            Signable::Digest(d) => return self.sign_digest(d),
        };
        Ok(match self {
            Self::Ed25519(k) => k.sign(msg).to_vec(),
            Self::MlDsa65(k) => k.sign(msg)?,
            Self::Composite(k) => k.sign(msg)?,
            Self::Mac(k) => k.tag(msg),
            Self::XWing(..) => {
                return Err(Error::Internal("an x-wing key does not sign".into()));
            }
        })
    }

    fn sign_digest(&self, d: &Digest) -> Result<Vec<u8>> {
        Ok(match self {
            Self::Ed25519(k) => prehash::ed25519ph_sign(k.expose_seed(), d)?,
            Self::MlDsa65(k) => {
                let seed = k.expose_seed().ok_or_else(|| {
                    Error::Internal("an ml-dsa-65 keyring key without seed".into())
                })?;
                prehash::hash_mldsa65_sign(seed, d)?
            }
            _ => return Err(Error::Internal("a digest for a key without prehash".into())),
        })
    }

    /// Checks `sig`: signing keys as [`super::verify_with`] does with their
    /// public key (one verifier for keyrings and offline checks), MAC keys in
    /// constant time.
    fn verify(&self, input: Signable<'_>, sig: &[u8]) -> bool {
        let kind = match self {
            Self::Ed25519(_) => KeyType::Ed25519,
            Self::MlDsa65(_) => KeyType::MlDsa65,
            Self::Composite(_) => KeyType::Ed25519MlDsa65,
            Self::Mac(k) => {
                return matches!(input, Signable::Message(m) if k.verify(m, sig).is_ok());
            }
            Self::XWing(..) => return false,
        };
        self.public_key()
            .is_some_and(|pk| super::verify_with(kind, &pk, input, sig).is_ok())
    }

    fn public_key(&self) -> Option<Vec<u8>> {
        match self {
            Self::Ed25519(k) => Some(k.public_key().to_vec()),
            Self::MlDsa65(k) => Some(k.public_key()),
            Self::Composite(k) => Some(k.public_key()),
            Self::Mac(_) => None,
            Self::XWing(id, _) => Some(id.recipient().to_bytes()),
        }
    }
}

/// A signature or MAC tag and the version that made it.
#[derive(Debug, Clone)]
pub struct Signed {
    /// The signature (or tag).
    pub signature: Vec<u8>,
    /// The version whose key made it.
    pub version: u32,
}

impl Keyring {
    /// Every version that may still be used (not revoked, not below the minimum,
    /// not destroyed), newest first.
    fn usable_versions(&self) -> Vec<u32> {
        let meta = self.meta.load();
        meta.versions
            .keys()
            .rev()
            .copied()
            .filter(|v| self.check_version(*v).is_ok())
            .collect()
    }

    /// The signing or MAC key of `version`, from cache or custody.
    async fn typed_key(&self, version: u32) -> Result<Arc<TypedKey>> {
        if let Some(k) = self.typed.read().get(&version).cloned() {
            return Ok(k);
        }
        let (kind, secret) = self.secret(version).await?;
        let key = Arc::new(TypedKey::new(kind, secret)?);
        self.typed.write().insert(version, key.clone());
        Ok(key)
    }

    /// Signs (or MACs, for `Purpose::Mac`) with the primary version, taking one use.
    async fn make(&self, purpose: Purpose, msg: Signable<'_>) -> Result<Signed> {
        self.require(purpose)?;
        self.check_input(msg)?;
        let (p, _) = self.next_use().await?;
        let version = p.version;
        drop(p);
        let key = self.typed_key(version).await?;
        Ok(Signed {
            signature: key.sign(msg)?,
            version,
        })
    }

    /// Checks `sig` with `version`, or with every version that may still be used
    /// (newest first) when none is given; the version that verified it, if any.
    async fn check(
        &self,
        purpose: Purpose,
        msg: Signable<'_>,
        sig: &[u8],
        version: Option<u32>,
    ) -> Result<Option<u32>> {
        self.require(purpose)?;
        self.check_input(msg)?;
        let candidates: Vec<u32> = match version {
            Some(v) => {
                if v > self.newest_version() {
                    self.catch_up().await?;
                }
                self.check_version(v)?;
                vec![v]
            }
            None => self.usable_versions(),
        };
        for v in candidates {
            if self.typed_key(v).await?.verify(msg, sig) {
                return Ok(Some(v));
            }
        }
        Ok(None)
    }

    /// A digest is refused where the keyring's type has no prehash mode for it.
    fn check_input(&self, msg: Signable<'_>) -> Result<()> {
        match msg {
            Signable::Message(_) => Ok(()),
            Signable::Digest(d) => check_prehash(self.key_type(), d.alg()),
        }
    }

    /// Signs a message or a digest with the primary version (a signing keyring).
    pub async fn sign(&self, msg: Signable<'_>) -> Result<Signed> {
        self.make(Purpose::Sign, msg).await
    }

    /// Verifies a signature made by this keyring over a message or (prehash mode)
    /// a digest; the version that made it, or `None` when no usable version
    /// verifies it.
    pub async fn verify(
        &self,
        msg: Signable<'_>,
        sig: &[u8],
        version: Option<u32>,
    ) -> Result<Option<u32>> {
        self.check(Purpose::Sign, msg, sig, version).await
    }

    /// The MAC tag of `msg` with the primary version (a MAC keyring; a digest
    /// is refused: HMAC has no prehash mode).
    pub async fn mac(&self, msg: Signable<'_>) -> Result<Signed> {
        self.make(Purpose::Mac, msg).await
    }

    /// Checks a MAC tag in constant time per version tried; the version that
    /// made it, or `None`.
    pub async fn verify_mac(
        &self,
        msg: Signable<'_>,
        tag: &[u8],
        version: Option<u32>,
    ) -> Result<Option<u32>> {
        self.check(Purpose::Mac, msg, tag, version).await
    }

    /// The public key of `version` (default: the primary) of a signing keyring,
    /// or the public recipient of an x-wing keyring.
    pub async fn public_key(&self, version: Option<u32>) -> Result<(u32, Vec<u8>)> {
        let purpose = match self.key_type() {
            KeyType::XWing => Purpose::Decrypt,
            _ => Purpose::Sign,
        };
        self.require(purpose)?;
        let v = version.unwrap_or_else(|| self.meta.load().record.primary_version);
        if v > self.newest_version() {
            self.catch_up().await?;
        }
        self.check_version(v)?;
        let key = self.typed_key(v).await?;
        let pk = key
            .public_key()
            .ok_or_else(|| Error::Internal("a signing key without a public key".into()))?;
        Ok((v, pk))
    }
}

impl Keyring {
    /// Opens an envelope sealed (fk1 recipient mode) to the public recipient of
    /// one of this x-wing keyring's usable versions: the one whose key id the
    /// header names. Anything else — another recipient, a revoked or removed
    /// version's, a wrong `aad`, tampering — is [`fleetkey_crypto::Error::Open`].
    pub(super) async fn open_sealed_to_recipient(
        &self,
        envelope: &[u8],
        aad: &[u8],
    ) -> Result<Vec<u8>> {
        self.require(Purpose::Decrypt)?;
        let (header, _) = Header::parse(envelope)?;
        if !matches!(header.body, Body::Recipient { .. }) {
            return Err(Error::Invalid {
                what: "envelope",
                why: "x-wing keyrings open recipient-mode (mode 3) envelopes".into(),
            });
        }
        for v in self.usable_versions() {
            let key = self.typed_key(v).await?;
            let TypedKey::XWing(identity, key_id) = &*key else {
                continue;
            };
            if *key_id != header.key_id {
                continue;
            }
            let mut input = envelope;
            let (header, header_bytes, rest) =
                env_io::read_header(&mut input).map_err(|_| fleetkey_crypto::Error::Open)?;
            let opener = recipient::open(identity, &header, &header_bytes, aad)?;
            let mut out = Vec::new();
            env_io::open(opener, rest, input, &mut out, &mut |_| {})
                .map_err(|_| fleetkey_crypto::Error::Open)?;
            self.shared
                .metrics
                .unseals
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            return Ok(out);
        }
        Err(fleetkey_crypto::Error::Open.into())
    }
}
