//! The sans-IO handshake and transport: bytes in, bytes out, time as an argument.

use crate::error::{Error, Result};
use crate::frame::{FLAG_FINAL, FLAG_MORE, Limits, MAX_CHUNK, MAX_NOISE_MESSAGE, TAG_LEN};
use crate::pattern::{Pattern, Suite, protocol_name};
use fleetkey_crypto::mlkem::{self, MlKemSecret};
use fleetkey_crypto::x25519::is_low_order;
use std::sync::Arc;
use std::time::Instant;
use zeroize::Zeroizing;

/// Which snow resolver to use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Resolver {
    /// aws-lc-rs (X25519, ChaChaPoly, AESGCM, SHA-2), snow's default for BLAKE2.
    #[default]
    AwsLc,
    /// snow's default resolver only (RustCrypto); for interoperability tests and
    /// as the baseline in benchmarks.
    SnowDefault,
}

impl Resolver {
    fn boxed(self) -> snow::resolvers::BoxedCryptoResolver {
        match self {
            Resolver::AwsLc => crate::resolver::aws_lc(),
            Resolver::SnowDefault => Box::new(snow::resolvers::DefaultResolver),
        }
    }
}

/// A static X25519 key pair. `Debug` shows only the public key's first 8 bytes.
pub struct Keypair {
    private: Zeroizing<[u8; 32]>,
    public: [u8; 32],
}

impl Keypair {
    /// A fresh key pair.
    pub fn generate() -> Result<Self> {
        let secret =
            fleetkey_crypto::x25519::X25519Secret::generate().map_err(|_| Error::Provider)?;
        Self::from_private(*secret.expose_secret())
    }

    /// From a stored scalar.
    pub fn from_private(private: [u8; 32]) -> Result<Self> {
        let private = Zeroizing::new(private);
        let public = fleetkey_crypto::x25519::X25519Secret::from_bytes(
            fleetkey_crypto::secret::SecretBytes::new(*private),
        )
        .public_key()
        .map_err(|_| Error::Provider)?;
        Ok(Self { private, public })
    }

    /// The public key.
    pub fn public(&self) -> &[u8; 32] {
        &self.public
    }

    /// The scalar, for storage.
    pub fn expose_private(&self) -> &[u8; 32] {
        &self.private
    }
}

impl std::fmt::Debug for Keypair {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "Keypair(public {})",
            fleetkey_crypto::hex_prefix(&self.public)
        )
    }
}

/// Builds a [`Handshake`].
#[derive(Debug)]
pub struct Builder<'a> {
    pattern: Pattern,
    suite: Suite,
    limits: Limits,
    resolver: Resolver,
    prologue: &'a [u8],
    local: Option<&'a Keypair>,
    remote: Option<[u8; 32]>,
    remote_kem: Option<&'a [u8]>,
    local_kem: Option<Arc<MlKemSecret>>,
}

impl<'a> Builder<'a> {
    /// A handshake of `pattern` in `suite` with default limits and the aws-lc resolver.
    pub fn new(pattern: Pattern, suite: Suite) -> Self {
        Self {
            pattern,
            suite,
            limits: Limits::default(),
            resolver: Resolver::AwsLc,
            prologue: &[],
            local: None,
            remote: None,
            remote_kem: None,
            local_kem: None,
        }
    }

    /// Limits.
    pub fn limits(mut self, limits: Limits) -> Self {
        self.limits = limits;
        self
    }

    /// Resolver.
    pub fn resolver(mut self, resolver: Resolver) -> Self {
        self.resolver = resolver;
        self
    }

    /// Prologue both sides must agree on (bound into the handshake hash).
    pub fn prologue(mut self, prologue: &'a [u8]) -> Self {
        self.prologue = prologue;
        self
    }

    /// Our static key.
    pub fn local(mut self, key: &'a Keypair) -> Self {
        self.local = Some(key);
        self
    }

    /// The peer's static key: required by the initiator of IK and N (the responder
    /// is known); for XX it pins the key the handshake must reveal.
    pub fn remote(mut self, key: [u8; 32]) -> Self {
        self.remote = Some(key);
        self
    }

    /// The responder's ML-KEM-768 encapsulation key (hybrid pattern, initiator).
    pub fn remote_kem(mut self, encapsulation_key: &'a [u8]) -> Self {
        self.remote_kem = Some(encapsulation_key);
        self
    }

    /// Our ML-KEM-768 decapsulation key (hybrid pattern, responder).
    pub fn local_kem(mut self, key: Arc<MlKemSecret>) -> Self {
        self.local_kem = Some(key);
        self
    }

    fn snow(&self) -> Result<snow::Builder<'_>> {
        let params = protocol_name(self.pattern, self.suite)
            .parse()
            .map_err(|_| Error::State("unsupported protocol"))?;
        let mut b =
            snow::Builder::with_resolver(params, self.resolver.boxed()).prologue(self.prologue)?;
        if let Some(k) = self.local {
            b = b.local_private_key(k.expose_private().as_slice())?;
        }
        Ok(b)
    }

    /// ML-KEM keys belong to the hybrid pattern only: giving one for a classic
    /// pattern is refused rather than silently ignored (no false sense of PQ safety).
    fn check_kem(&self) -> Result<()> {
        if !self.pattern.hybrid() && (self.remote_kem.is_some() || self.local_kem.is_some()) {
            return Err(Error::State("an ML-KEM key only fits the hybrid pattern"));
        }
        Ok(())
    }

    /// The initiator's side.
    pub fn initiator(self, now: Instant) -> Result<Handshake> {
        self.check_kem()?;
        if self.pattern.initiator_static() && self.local.is_none() {
            return Err(Error::State(
                "this pattern needs the initiator's static key",
            ));
        }
        let mut b = self.snow()?;
        if self.pattern.responder_known() {
            let r = self.remote.as_ref().ok_or(Error::State(
                "this pattern needs the responder's static key",
            ))?;
            if is_low_order(r) {
                return Err(Error::LowOrderKey);
            }
            b = b.remote_public_key(r)?;
        }
        let mut kem_ct = None;
        let psk;
        if self.pattern.hybrid() {
            let ek = self.remote_kem.ok_or(Error::State(
                "the hybrid pattern needs the responder's ML-KEM key",
            ))?;
            if ek.len() != mlkem::ENCAPSULATION_KEY_LEN {
                return Err(Error::Malformed("ML-KEM-768 encapsulation key"));
            }
            let (ct, ss) = mlkem::encapsulate(ek)
                .map_err(|_| Error::Malformed("ML-KEM-768 encapsulation key"))?;
            psk = Zeroizing::new(*ss.expose_secret());
            b = b.psk(2, &psk)?;
            kem_ct = Some(ct);
        }
        let hs = b.build_initiator()?;
        let mut h = Handshake::new(hs, &self, now);
        h.kem_ct = kem_ct;
        Ok(h)
    }

    /// The responder's side.
    pub fn responder(self, now: Instant) -> Result<Handshake> {
        self.check_kem()?;
        if self.pattern.responder_static() && self.local.is_none() {
            return Err(Error::State(
                "this pattern needs the responder's static key",
            ));
        }
        if self.pattern.hybrid() && self.local_kem.is_none() {
            return Err(Error::State(
                "the hybrid pattern needs the responder's ML-KEM key",
            ));
        }
        let hs = self.snow()?.build_responder()?;
        let mut h = Handshake::new(hs, &self, now);
        h.kem_key = self.local_kem.clone();
        Ok(h)
    }
}

/// A handshake in progress. Any error fails it for good (sticky).
pub struct Handshake {
    hs: snow::HandshakeState,
    limits: Limits,
    expected_remote: Option<[u8; 32]>,
    read_any: bool,
    deadline: Instant,
    failed: Option<Error>,
    /// Hybrid initiator: the ML-KEM ciphertext to send in the first payload.
    kem_ct: Option<Vec<u8>>,
    /// Hybrid responder: the key that opens it (taken once used).
    kem_key: Option<Arc<MlKemSecret>>,
}

impl std::fmt::Debug for Handshake {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Handshake")
            .field("initiator", &self.hs.is_initiator())
            .field("finished", &self.hs.is_handshake_finished())
            .field("failed", &self.failed)
            .finish_non_exhaustive()
    }
}

impl Handshake {
    fn new(hs: snow::HandshakeState, b: &Builder<'_>, now: Instant) -> Self {
        Self {
            hs,
            limits: b.limits,
            expected_remote: b.remote,
            read_any: false,
            deadline: now + b.limits.handshake_timeout,
            failed: None,
            kem_ct: None,
            kem_key: None,
        }
    }

    fn check(&self, now: Instant) -> Result<()> {
        if let Some(e) = &self.failed {
            return Err(e.clone());
        }
        if now > self.deadline {
            return Err(Error::Timeout);
        }
        Ok(())
    }

    fn fail<T>(&mut self, e: Error) -> Result<T> {
        self.failed = Some(e.clone());
        Err(e)
    }

    /// Writes the next handshake message carrying `payload`.
    pub fn write_message(&mut self, payload: &[u8], now: Instant) -> Result<Vec<u8>> {
        self.check(now)?;
        if !self.hs.is_my_turn() || self.hs.is_handshake_finished() {
            return Err(Error::State("it is not our turn to write"));
        }
        let mut out = vec![0u8; self.limits.max_handshake_message];
        let with_ct;
        let payload = match self.kem_ct.take() {
            Some(mut ct) => {
                ct.extend_from_slice(payload);
                with_ct = ct;
                &with_ct[..]
            }
            None => payload,
        };
        match self.hs.write_message(payload, &mut out) {
            Ok(n) => {
                out.truncate(n);
                Ok(out)
            }
            Err(snow::Error::Input) => self.fail(Error::TooLarge {
                what: "handshake message",
                len: payload.len(),
                limit: self.limits.max_handshake_message,
            }),
            Err(e) => self.fail(e.into()),
        }
    }

    /// Reads the peer's next handshake message; returns its payload.
    pub fn read_message(&mut self, msg: &[u8], now: Instant) -> Result<Vec<u8>> {
        self.check(now)?;
        if self.hs.is_my_turn() || self.hs.is_handshake_finished() {
            return Err(Error::State("it is not the peer's turn"));
        }
        if msg.len() > self.limits.max_handshake_message {
            return self.fail(Error::TooLarge {
                what: "handshake message",
                len: msg.len(),
                limit: self.limits.max_handshake_message,
            });
        }
        // The peer's first message starts with its ephemeral key in every pattern
        // fleetkey speaks; snow does not check it, so we do, before any DH.
        if !self.read_any {
            let Some(e) = msg.get(..32).and_then(|e| <&[u8; 32]>::try_from(e).ok()) else {
                return self.fail(Error::Malformed("handshake message"));
            };
            if is_low_order(e) {
                return self.fail(Error::LowOrderKey);
            }
        }
        self.read_any = true;
        let mut payload = vec![0u8; msg.len()];
        let n = match self.hs.read_message(msg, &mut payload) {
            Ok(n) => n,
            Err(e) => return self.fail(e.into()),
        };
        payload.truncate(n);
        if let Some(key) = self.kem_key.take() {
            // Hybrid responder: the first payload starts with the ML-KEM ciphertext;
            // its shared secret is the PSK of the second message.
            if payload.len() < mlkem::CIPHERTEXT_LEN {
                return self.fail(Error::Malformed("hybrid first message"));
            }
            let rest = payload.split_off(mlkem::CIPHERTEXT_LEN);
            let ss = match key.decapsulate(&payload) {
                Ok(ss) => ss,
                Err(_) => return self.fail(Error::Malformed("ML-KEM-768 ciphertext")),
            };
            if let Err(e) = self.hs.set_psk(2, ss.expose_secret()) {
                return self.fail(e.into());
            }
            payload = rest;
        }
        if let Some(rs) = self.hs.get_remote_static() {
            let rs: [u8; 32] = match rs.try_into() {
                Ok(k) => k,
                Err(_) => return self.fail(Error::Malformed("static key")),
            };
            if is_low_order(&rs) {
                return self.fail(Error::LowOrderKey);
            }
            if self.expected_remote.is_some_and(|x| x != rs) {
                return self.fail(Error::WrongPeer);
            }
        }
        Ok(payload)
    }

    /// The limits this handshake (and its transport) enforce.
    pub fn limits(&self) -> Limits {
        self.limits
    }

    /// Whether our side has nothing left to send or receive.
    pub fn is_finished(&self) -> bool {
        self.hs.is_handshake_finished()
    }

    /// Whether the next step is ours to write.
    pub fn is_my_turn(&self) -> bool {
        self.hs.is_my_turn()
    }

    /// The handshake hash (binds everything both sides saw; sign it to attest).
    pub fn handshake_hash(&self) -> &[u8] {
        self.hs.get_handshake_hash()
    }

    /// The peer's static key, once known.
    pub fn remote_static(&self) -> Option<[u8; 32]> {
        self.hs.get_remote_static().and_then(|k| k.try_into().ok())
    }

    /// The transport, once the handshake is finished.
    pub fn into_transport(self) -> Result<Transport> {
        if let Some(e) = self.failed {
            return Err(e);
        }
        if !self.hs.is_handshake_finished() {
            return Err(Error::State("the handshake is not finished"));
        }
        let hash = self.hs.get_handshake_hash().to_vec();
        let remote = self.remote_static();
        Ok(Transport {
            state: self.hs.into_transport_mode()?,
            limits: self.limits,
            handshake_hash: hash,
            remote,
            sent: 0,
            received: 0,
            partial: Vec::new(),
            scratch: Vec::new(),
            failed: None,
        })
    }
}

/// An established session: seals application messages into frames' Noise
/// messages and opens them. Any error fails it for good (sticky).
pub struct Transport {
    state: snow::TransportState,
    limits: Limits,
    handshake_hash: Vec<u8>,
    remote: Option<[u8; 32]>,
    sent: u64,
    received: u64,
    partial: Vec<u8>,
    /// Reused plaintext buffer (wiped after each use).
    scratch: Vec<u8>,
    failed: Option<Error>,
}

impl Drop for Transport {
    fn drop(&mut self) {
        use zeroize::Zeroize;
        self.scratch.zeroize();
        self.partial.zeroize();
    }
}

impl std::fmt::Debug for Transport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Transport")
            .field("sent", &self.sent)
            .field("received", &self.received)
            .field("failed", &self.failed)
            .finish_non_exhaustive()
    }
}

impl Transport {
    /// The handshake hash of the session.
    pub fn handshake_hash(&self) -> &[u8] {
        &self.handshake_hash
    }

    /// The peer's static key, if the pattern revealed one.
    pub fn remote_static(&self) -> Option<[u8; 32]> {
        self.remote
    }

    /// Noise transport messages sent and received so far.
    pub fn counters(&self) -> (u64, u64) {
        (self.sent, self.received)
    }

    fn fail<T>(&mut self, e: Error) -> Result<T> {
        self.failed = Some(e.clone());
        Err(e)
    }

    /// Seals one application message as framed Noise messages appended to `out`
    /// (`BE16(len) ‖ noise message`, as many as it takes).
    pub fn seal(&mut self, msg: &[u8], out: &mut Vec<u8>) -> Result<()> {
        if let Some(e) = &self.failed {
            return Err(e.clone());
        }
        if msg.len() > self.limits.max_message {
            return Err(Error::TooLarge {
                what: "message",
                len: msg.len(),
                limit: self.limits.max_message,
            });
        }
        let mut plain = std::mem::take(&mut self.scratch);
        let mut chunks = msg.chunks(MAX_CHUNK).peekable();
        let empty: &[u8] = &[];
        let mut first = true;
        while first || chunks.peek().is_some() {
            first = false;
            let chunk = chunks.next().unwrap_or(empty);
            plain.clear();
            plain.push(if chunks.peek().is_some() {
                FLAG_MORE
            } else {
                FLAG_FINAL
            });
            plain.extend_from_slice(chunk);
            let len = plain.len() + TAG_LEN;
            let wire_len = u16::try_from(len).map_err(|_| Error::TooLarge {
                what: "transport frame",
                len,
                limit: usize::from(u16::MAX),
            })?;
            let at = out.len();
            out.extend_from_slice(&wire_len.to_be_bytes());
            out.resize(at + 2 + len, 0);
            let written = self.state.write_message(&plain, &mut out[at + 2..]);
            zeroize::Zeroize::zeroize(&mut plain[..]);
            match written {
                Ok(n) if n == len => {}
                Ok(_) => return self.fail(Error::State("unexpected ciphertext length")),
                Err(e) => return self.fail(e.into()),
            }
            self.sent += 1;
            if self.sent.is_multiple_of(self.limits.rekey_after.max(1)) {
                self.state.rekey_outgoing();
            }
        }
        self.scratch = plain;
        Ok(())
    }

    /// Opens one Noise message (a frame's body). Returns a whole application
    /// message when its final chunk arrives.
    pub fn open(&mut self, noise_msg: &[u8]) -> Result<Option<Vec<u8>>> {
        if let Some(e) = &self.failed {
            return Err(e.clone());
        }
        if noise_msg.len() < TAG_LEN + 1 || noise_msg.len() > MAX_NOISE_MESSAGE {
            return self.fail(Error::Malformed("transport message"));
        }
        let mut plain = std::mem::take(&mut self.scratch);
        plain.resize(noise_msg.len(), 0);
        let n = match self.state.read_message(noise_msg, &mut plain) {
            Ok(n) => n,
            Err(e) => return self.fail(e.into()),
        };
        let r = self.take_chunk(&plain[..n]);
        zeroize::Zeroize::zeroize(&mut plain[..]);
        self.scratch = plain;
        r
    }

    fn take_chunk(&mut self, plain: &[u8]) -> Result<Option<Vec<u8>>> {
        self.received += 1;
        if self.received.is_multiple_of(self.limits.rekey_after.max(1)) {
            self.state.rekey_incoming();
        }
        let (flag, chunk) = match plain.split_first() {
            Some((f, c)) => (*f, c),
            None => return self.fail(Error::Malformed("transport message")),
        };
        if self.partial.len() + chunk.len() > self.limits.max_message {
            return self.fail(Error::TooLarge {
                what: "message",
                len: self.partial.len() + chunk.len(),
                limit: self.limits.max_message,
            });
        }
        self.partial.extend_from_slice(chunk);
        match flag {
            FLAG_MORE => Ok(None),
            FLAG_FINAL => Ok(Some(std::mem::take(&mut self.partial))),
            _ => self.fail(Error::Malformed("chunk flag")),
        }
    }
}
