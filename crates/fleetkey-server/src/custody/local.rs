//! Local custody: a random 32-byte root key in `<data-dir>/root-key.json`, sealed
//! with a key-encryption key (KEK) that is never stored next to it:
//!
//! * **key file mode** — the KEK is a fleetkey symmetric key file named by
//!   `FLEETKEY_ROOT_KEY_FILE` (mode 0600, kept off the data volume);
//! * **passphrase mode** — the KEK is Argon2id(`FLEETKEY_PASSPHRASE`, salt) with the
//!   parameters stored in the root key file.
//!
//! Data keys are wrapped as fk1 single envelopes under the root key with
//! AES-256-GCM-SIV (misuse resistant) and a random nonce, with the wrap context as
//! AAD. The service signing key (Ed25519 + ML-DSA-65) is derived from the root key
//! with HKDF, so it needs no storage of its own. Threat model: `docs/operations.md`.

use super::Custody;
use crate::error::{Error, Result};
use base64::{Engine as _, engine::general_purpose::URL_SAFE_NO_PAD};
use fleetkey_crypto::{
    aead::{AeadKey, Algorithm},
    composite::CompositeSigner,
    ed25519::Ed25519Signer,
    envelope::{KeyId, armor, single},
    hkdf::hkdf_sha256,
    keyfile::SymmetricKeyFile,
    mldsa::MlDsaSigner,
    secret::SecretBytes,
};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use zeroize::Zeroizing;

/// File name of the sealed root key inside the data directory.
pub const ROOT_FILE: &str = "root-key.json";
const ROOT_AAD: &[u8] = b"fleetkey root key v1";

/// How the KEK is obtained.
pub enum KekSource {
    /// A fleetkey symmetric key file (any algorithm; its 32 bytes are the KEK).
    KeyFile(PathBuf),
    /// A passphrase, stretched with Argon2id.
    Passphrase(Zeroizing<String>),
}

impl KekSource {
    /// From `FLEETKEY_ROOT_KEY_FILE` or `FLEETKEY_PASSPHRASE` (exactly one; for
    /// the target of a custody migration, `FLEETKEY_TO_…` when either is set).
    pub fn from_env() -> Result<Self> {
        let [file_var, pass_var] =
            super::settings::group(["FLEETKEY_ROOT_KEY_FILE", "FLEETKEY_PASSPHRASE"]);
        let file = super::settings::exact(&file_var);
        let pass = super::settings::exact(&pass_var);
        match (file, pass) {
            (Some(f), None) => Ok(KekSource::KeyFile(PathBuf::from(f))),
            (None, Some(p)) => Ok(KekSource::Passphrase(Zeroizing::new(p))),
            (Some(_), Some(_)) => Err(Error::CustodyConfig(format!(
                "both {file_var} and {pass_var} are set; set exactly one"
            ))),
            (None, None) => Err(Error::CustodyConfig(format!(
                "set {file_var} to a key file made by `fleetkey keygen` (kept off the data \
                 volume), or {pass_var}"
            ))),
        }
    }
}

/// Argon2id parameters stored with a passphrase-sealed root key.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Argon2Params {
    /// Memory in KiB.
    pub m_kib: u32,
    /// Iterations.
    pub t: u32,
    /// Parallelism.
    pub p: u32,
    /// Random salt (base64url, 16 bytes).
    pub salt: String,
}

impl Argon2Params {
    /// OWASP's first recommended Argon2id setting: 19 MiB, 2 iterations, 1 lane.
    fn fresh() -> Result<Self> {
        let salt: [u8; 16] = fleetkey_crypto::rand::array()?;
        Ok(Self {
            m_kib: 19 * 1024,
            t: 2,
            p: 1,
            salt: URL_SAFE_NO_PAD.encode(salt),
        })
    }

    fn derive(&self, passphrase: &str) -> Result<SecretBytes<32>> {
        let salt = URL_SAFE_NO_PAD
            .decode(&self.salt)
            .map_err(|_| Error::RootKeyLocked)?;
        if self.m_kib > 4 * 1024 * 1024 || self.t > 64 || self.p > 16 || salt.len() < 16 {
            return Err(Error::CustodyConfig(
                "root key file has out-of-range Argon2id parameters".into(),
            ));
        }
        let params = argon2::Params::new(self.m_kib, self.t, self.p, Some(32))
            .map_err(|e| Error::CustodyConfig(format!("argon2id parameters: {e}")))?;
        let a = argon2::Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params);
        let mut out = Zeroizing::new([0u8; 32]);
        a.hash_password_into(passphrase.as_bytes(), &salt, &mut *out)
            .map_err(|e| Error::CustodyConfig(format!("argon2id: {e}")))?;
        Ok(SecretBytes::new(*out))
    }
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct RootFile {
    fleetkey: String,
    version: u32,
    /// `key-file` or `passphrase`.
    kek: String,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    argon2id: Option<Argon2Params>,
    /// The root key as an armored fk1 single envelope under the KEK.
    sealed_root: String,
}

/// Local custody.
pub struct LocalCustody {
    root: AeadKey,
    /// `local:` and 16 hex digits of a key derived from the root (names it, reveals nothing).
    root_id: String,
    signer: CompositeSigner,
    public_key: Vec<u8>,
}

fn io_err(path: &Path, source: std::io::Error) -> Error {
    Error::Io {
        path: path.display().to_string(),
        source,
    }
}

fn root_id() -> KeyId {
    // A constant, valid id.
    KeyId::new("fleetkey-root").unwrap_or_else(|_| unreachable!())
}

impl LocalCustody {
    /// Opens the root key in `data_dir`, creating it on first use. Argon2id runs on
    /// a blocking thread.
    pub async fn open(data_dir: &Path, kek: KekSource) -> Result<Self> {
        let dir = data_dir.to_path_buf();
        tokio::task::spawn_blocking(move || Self::open_blocking(&dir, kek))
            .await
            .map_err(|e| Error::Internal(format!("custody task failed: {e}")))?
    }

    /// [`LocalCustody::open`] without a runtime.
    pub fn open_blocking(data_dir: &Path, kek: KekSource) -> Result<Self> {
        crate::secret_file::private_dir(data_dir).map_err(|e| io_err(data_dir, e))?;
        let path = data_dir.join(ROOT_FILE);
        if path.exists() {
            Self::open_file(&path, &kek)
        } else {
            Self::create_file(&path, &kek)
        }
    }

    /// Opens the root key file at `path` (blocking: Argon2id in passphrase mode).
    pub fn open_file(path: &Path, kek: &KekSource) -> Result<Self> {
        Self::from_root(Self::unlock(path, kek)?)
    }

    /// Makes a new random root key, sealed under `kek` in a new file at `path`
    /// (refused if the file exists), and opens it.
    pub fn create_file(path: &Path, kek: &KekSource) -> Result<Self> {
        if path.exists() {
            return Err(Error::CustodyConfig(format!(
                "{} exists already",
                path.display()
            )));
        }
        Self::from_root(Self::initialise(path, kek)?)
    }

    fn kek_key(kek: &KekSource, params: Option<&Argon2Params>) -> Result<AeadKey> {
        let bytes = match (kek, params) {
            (KekSource::KeyFile(p), None) => {
                let text =
                    crate::secret_file::read(p).map_err(|e| Error::CustodyConfig(e.to_string()))?;
                let f = SymmetricKeyFile::parse(&text)
                    .map_err(|e| Error::CustodyConfig(format!("{}: {e}", p.display())))?;
                SecretBytes::new(*f.key.expose_secret())
            }
            (KekSource::Passphrase(pw), Some(params)) => params.derive(pw)?,
            (KekSource::KeyFile(_), Some(_)) => {
                return Err(Error::CustodyConfig(
                    "the root key is sealed with a passphrase; set FLEETKEY_PASSPHRASE, not FLEETKEY_ROOT_KEY_FILE".into(),
                ));
            }
            (KekSource::Passphrase(_), None) => {
                return Err(Error::CustodyConfig(
                    "the root key is sealed with a key file; set FLEETKEY_ROOT_KEY_FILE, not FLEETKEY_PASSPHRASE".into(),
                ));
            }
        };
        Ok(AeadKey::new(Algorithm::Aes256GcmSiv, bytes)?)
    }

    fn initialise(path: &Path, kek: &KekSource) -> Result<SecretBytes<32>> {
        let params = match kek {
            KekSource::Passphrase(_) => Some(Argon2Params::fresh()?),
            KekSource::KeyFile(_) => None,
        };
        let kek_key = Self::kek_key(kek, params.as_ref())?;
        let root = SecretBytes::<32>::random()?;
        let nonce: [u8; 12] = fleetkey_crypto::rand::array()?;
        let sealed = single::seal(
            &kek_key,
            &root_id(),
            1,
            nonce,
            root.expose_secret(),
            ROOT_AAD,
        )?;
        let file = RootFile {
            fleetkey: "root-key".into(),
            version: 1,
            kek: if params.is_some() {
                "passphrase"
            } else {
                "key-file"
            }
            .into(),
            argon2id: params,
            sealed_root: armor::encode(&sealed),
        };
        let text = serde_json::to_string_pretty(&file)
            .map_err(|e| Error::Internal(format!("root key file: {e}")))?;
        crate::secret_file::write(path, text.as_bytes(), false)
            .map_err(|e| Error::CustodyConfig(e.to_string()))?;
        Ok(root)
    }

    fn unlock(path: &Path, kek: &KekSource) -> Result<SecretBytes<32>> {
        let text =
            crate::secret_file::read(path).map_err(|e| Error::CustodyConfig(e.to_string()))?;
        let file: RootFile = serde_json::from_str(&text).map_err(|e| {
            Error::CustodyConfig(format!("{}: not a root key file: {e}", path.display()))
        })?;
        if file.fleetkey != "root-key" || file.version != 1 {
            return Err(Error::CustodyConfig(format!(
                "{}: unknown root key file version",
                path.display()
            )));
        }
        let kek_key = Self::kek_key(kek, file.argon2id.as_ref())?;
        let sealed = armor::decode(&file.sealed_root).map_err(|_| Error::RootKeyLocked)?;
        let root = single::open(&kek_key, &sealed, ROOT_AAD).map_err(|_| Error::RootKeyLocked)?;
        let root = Zeroizing::new(root);
        SecretBytes::from_slice(&root).map_err(|_| Error::RootKeyLocked)
    }

    fn from_root(root: SecretBytes<32>) -> Result<Self> {
        let derive = |label: &[u8]| -> Result<SecretBytes<32>> {
            let mut out = [0u8; 32];
            hkdf_sha256(
                b"fleetkey custody v1",
                root.expose_secret(),
                label,
                &mut out,
            )?;
            let s = SecretBytes::new(out);
            zeroize::Zeroize::zeroize(&mut out);
            Ok(s)
        };
        let signer = CompositeSigner::new(
            Ed25519Signer::from_seed(derive(b"service signing ed25519")?)?,
            MlDsaSigner::from_seed(derive(b"service signing ml-dsa-65")?)?,
        );
        let public_key = signer.public_key();
        let wrap_key = AeadKey::new(Algorithm::Aes256GcmSiv, derive(b"data key wrapping")?)?;
        let root_id = format!(
            "local:{}",
            hex::encode(&derive(b"root id")?.expose_secret()[..8])
        );
        Ok(Self {
            root: wrap_key,
            root_id,
            signer,
            public_key,
        })
    }
}

#[async_trait::async_trait]
impl Custody for LocalCustody {
    async fn wrap(&self, key: &SecretBytes<32>, context: &str) -> Result<Vec<u8>> {
        let nonce: [u8; 12] = fleetkey_crypto::rand::array()?;
        Ok(single::seal(
            &self.root,
            &root_id(),
            1,
            nonce,
            key.expose_secret(),
            context.as_bytes(),
        )?)
    }

    async fn unwrap(&self, wrapped: &[u8], context: &str) -> Result<SecretBytes<32>> {
        let pt = Zeroizing::new(single::open(&self.root, wrapped, context.as_bytes())?);
        Ok(SecretBytes::from_slice(&pt)?)
    }

    async fn sign(&self, msg: &[u8]) -> Result<Vec<u8>> {
        Ok(self.signer.sign(msg)?)
    }

    fn public_key(&self) -> Vec<u8> {
        self.public_key.clone()
    }

    fn backend(&self) -> &'static str {
        "local"
    }

    fn root_id(&self) -> String {
        self.root_id.clone()
    }
}

impl std::fmt::Debug for LocalCustody {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalCustody")
            .field(
                "public_key_prefix",
                &fleetkey_crypto::hex_prefix(&self.public_key),
            )
            .finish_non_exhaustive()
    }
}
