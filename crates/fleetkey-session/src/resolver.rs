//! A snow [`CryptoResolver`] backed by aws-lc-rs: X25519, ChaCha20-Poly1305,
//! AES-256-GCM, SHA-256 and SHA-512 (with aws-lc's HMAC). BLAKE2s/BLAKE2b, which
//! aws-lc does not offer, fall back to snow's default resolver.
//!
//! The X25519 implementation refuses every low-order peer key before the
//! Diffie-Hellman and an all-zero shared secret after it (snow's default resolver
//! does neither). Nonces follow the Noise specification §12: ChaChaPoly takes
//! 32 zero bits then the 64-bit counter little-endian; AESGCM 32 zero bits then the
//! counter big-endian.

use aws_lc_rs::aead::{AES_256_GCM, Aad, CHACHA20_POLY1305, LessSafeKey, Nonce, UnboundKey};
use aws_lc_rs::agreement::{self, PrivateKey, UnparsedPublicKey, X25519};
use aws_lc_rs::digest;
use snow::params::{CipherChoice, DHChoice, HashChoice};
use snow::resolvers::{BoxedCryptoResolver, CryptoResolver, DefaultResolver, FallbackResolver};
use snow::types::{Cipher, Dh, Hash, Random};
use zeroize::Zeroize;

const TAG_LEN: usize = 16;

/// The aws-lc-rs resolver, with snow's default resolver behind it for BLAKE2.
pub fn aws_lc() -> BoxedCryptoResolver {
    Box::new(FallbackResolver::new(
        Box::new(AwsLcResolver),
        Box::new(DefaultResolver),
    ))
}

/// Resolves the primitives aws-lc-rs offers; `None` for the rest.
#[derive(Debug, Default, Clone, Copy)]
pub struct AwsLcResolver;

impl CryptoResolver for AwsLcResolver {
    fn resolve_rng(&self) -> Option<Box<dyn Random>> {
        Some(Box::new(AwsLcRng))
    }

    fn resolve_dh(&self, choice: &DHChoice) -> Option<Box<dyn Dh>> {
        match choice {
            DHChoice::Curve25519 => Some(Box::<X25519Dh>::default()),
            _ => None,
        }
    }

    fn resolve_hash(&self, choice: &HashChoice) -> Option<Box<dyn Hash>> {
        match choice {
            HashChoice::SHA256 => Some(Box::new(ShaHash::new(&digest::SHA256, 64))),
            HashChoice::SHA512 => Some(Box::new(ShaHash::new(&digest::SHA512, 128))),
            _ => None,
        }
    }

    fn resolve_cipher(&self, choice: &CipherChoice) -> Option<Box<dyn Cipher>> {
        match choice {
            CipherChoice::ChaChaPoly => Some(Box::new(AeadCipher::new(Kind::ChaChaPoly))),
            CipherChoice::AESGCM => Some(Box::new(AeadCipher::new(Kind::AesGcm))),
        }
    }
}

struct AwsLcRng;

impl Random for AwsLcRng {
    fn try_fill_bytes(&mut self, dest: &mut [u8]) -> Result<(), snow::Error> {
        aws_lc_rs::rand::fill(dest).map_err(|_| snow::Error::Rng)
    }
}

/// X25519 key pair; the scalar is wiped on drop. The provider key is built once
/// per `set` (building it derives the public key, a scalar multiplication).
#[derive(Default)]
struct X25519Dh {
    private: [u8; 32],
    public: [u8; 32],
    key: Option<PrivateKey>,
}

impl Drop for X25519Dh {
    fn drop(&mut self) {
        self.private.zeroize();
    }
}

impl Dh for X25519Dh {
    fn name(&self) -> &'static str {
        "25519"
    }

    fn pub_len(&self) -> usize {
        32
    }

    fn priv_len(&self) -> usize {
        32
    }

    fn set(&mut self, privkey: &[u8]) {
        let mut k = [0u8; 32];
        let n = privkey.len().min(32);
        k[..n].copy_from_slice(&privkey[..n]);
        self.private = k;
        k.zeroize();
        self.key = PrivateKey::from_private_key(&X25519, &self.private).ok();
        self.public = self
            .key
            .as_ref()
            .and_then(|p| p.compute_public_key().ok())
            .and_then(|p| p.as_ref().try_into().ok())
            // An unusable scalar leaves an all-zero public key, which every peer refuses.
            .unwrap_or([0u8; 32]);
    }

    fn generate(&mut self, rng: &mut dyn Random) -> Result<(), snow::Error> {
        let mut k = [0u8; 32];
        rng.try_fill_bytes(&mut k)?;
        self.set(&k);
        k.zeroize();
        Ok(())
    }

    fn pubkey(&self) -> &[u8] {
        &self.public
    }

    fn privkey(&self) -> &[u8] {
        &self.private
    }

    fn dh(&self, pubkey: &[u8], out: &mut [u8]) -> Result<(), snow::Error> {
        // snow may hand over a buffer sized for its largest DH; the key is its start.
        let peer: &[u8; 32] = pubkey
            .get(..32)
            .and_then(|k| k.try_into().ok())
            .ok_or(snow::Error::Dh)?;
        if fleetkey_crypto::x25519::is_low_order(peer) {
            return Err(snow::Error::Dh);
        }
        let key = self.key.as_ref().ok_or(snow::Error::Dh)?;
        agreement::agree(
            key,
            UnparsedPublicKey::new(&X25519, peer),
            snow::Error::Dh,
            |shared| {
                if shared.iter().all(|b| *b == 0) || out.len() < shared.len() {
                    return Err(snow::Error::Dh);
                }
                out[..shared.len()].copy_from_slice(shared);
                Ok(())
            },
        )
    }
}

#[derive(Clone, Copy)]
enum Kind {
    ChaChaPoly,
    AesGcm,
}

struct AeadCipher {
    kind: Kind,
    key: Option<LessSafeKey>,
}

impl AeadCipher {
    fn new(kind: Kind) -> Self {
        Self { kind, key: None }
    }

    fn nonce(&self, n: u64) -> Nonce {
        let mut b = [0u8; 12];
        match self.kind {
            Kind::ChaChaPoly => b[4..].copy_from_slice(&n.to_le_bytes()),
            Kind::AesGcm => b[4..].copy_from_slice(&n.to_be_bytes()),
        }
        Nonce::assume_unique_for_key(b)
    }
}

impl Cipher for AeadCipher {
    fn name(&self) -> &'static str {
        match self.kind {
            Kind::ChaChaPoly => "ChaChaPoly",
            Kind::AesGcm => "AESGCM",
        }
    }

    fn set(&mut self, key: &[u8; 32]) {
        let alg = match self.kind {
            Kind::ChaChaPoly => &CHACHA20_POLY1305,
            Kind::AesGcm => &AES_256_GCM,
        };
        self.key = UnboundKey::new(alg, key).ok().map(LessSafeKey::new);
    }

    fn encrypt(&self, nonce: u64, authtext: &[u8], plaintext: &[u8], out: &mut [u8]) -> usize {
        let n = plaintext.len();
        // snow sizes `out` for the tag and calls `set` first; a missing key or a short
        // buffer is a bug in the caller, answered with nothing written.
        let Some(key) = &self.key else { return 0 };
        if out.len() < n + TAG_LEN {
            return 0;
        }
        out[..n].copy_from_slice(plaintext);
        match key.seal_in_place_separate_tag(self.nonce(nonce), Aad::from(authtext), &mut out[..n])
        {
            Ok(tag) => {
                out[n..n + TAG_LEN].copy_from_slice(tag.as_ref());
                n + TAG_LEN
            }
            Err(_) => 0,
        }
    }

    fn decrypt(
        &self,
        nonce: u64,
        authtext: &[u8],
        ciphertext: &[u8],
        out: &mut [u8],
    ) -> Result<usize, snow::Error> {
        let key = self.key.as_ref().ok_or(snow::Error::Decrypt)?;
        let n = ciphertext
            .len()
            .checked_sub(TAG_LEN)
            .ok_or(snow::Error::Decrypt)?;
        if out.len() < n {
            return Err(snow::Error::Decrypt);
        }
        let (body, tag) = ciphertext.split_at(n);
        match key.open_separate_gather(
            self.nonce(nonce),
            Aad::from(authtext),
            body,
            tag,
            &mut out[..n],
        ) {
            Ok(()) => Ok(n),
            Err(_) => {
                // Never leave unauthenticated plaintext behind.
                out[..n].zeroize();
                Err(snow::Error::Decrypt)
            }
        }
    }
}

struct ShaHash {
    alg: &'static digest::Algorithm,
    block: usize,
    ctx: digest::Context,
}

impl ShaHash {
    fn new(alg: &'static digest::Algorithm, block: usize) -> Self {
        Self {
            alg,
            block,
            ctx: digest::Context::new(alg),
        }
    }
}

impl Hash for ShaHash {
    fn name(&self) -> &'static str {
        if self.alg == &digest::SHA256 {
            "SHA256"
        } else {
            "SHA512"
        }
    }

    fn block_len(&self) -> usize {
        self.block
    }

    fn hash_len(&self) -> usize {
        self.alg.output_len()
    }

    fn reset(&mut self) {
        self.ctx = digest::Context::new(self.alg);
    }

    fn input(&mut self, data: &[u8]) {
        self.ctx.update(data);
    }

    fn result(&mut self, out: &mut [u8]) {
        let d = self.ctx.clone().finish();
        let n = d.as_ref().len().min(out.len());
        out[..n].copy_from_slice(&d.as_ref()[..n]);
    }

    fn hmac(&mut self, key: &[u8], data: &[u8], out: &mut [u8]) {
        let alg = if self.alg == &digest::SHA256 {
            aws_lc_rs::hmac::HMAC_SHA256
        } else {
            aws_lc_rs::hmac::HMAC_SHA512
        };
        let tag = aws_lc_rs::hmac::sign(&aws_lc_rs::hmac::Key::new(alg, key), data);
        let n = tag.as_ref().len().min(out.len());
        out[..n].copy_from_slice(&tag.as_ref()[..n]);
    }
}
