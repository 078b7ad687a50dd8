//! The device side of a session with `fleetkey serve`'s device listener.
//!
//! How the server's key is known, in order of preference:
//! 1. **pinned** in the persisted state (learned before): `Noise_IK`;
//! 2. **from a signed directory record** ([`DeviceClient::trust_record`], the
//!    "IK-raw" mode for cold identities): the key is pinned from the verified record
//!    and used with `Noise_IK`; the hybrid `Noise_IKpsk2` + ML-KEM-768 when the
//!    record carries an ML-KEM key and [`ClientConfig::hybrid`] is set;
//! 3. **first contact**, when allowed: `Noise_XX`, after which the revealed key is
//!    pinned and every later session uses IK.
//!
//! Each session starts with hello, naming the previous session's id; the server's
//! welcome says whether it resumed it. Resumption is always a fresh handshake (new
//! ephemeral keys, new transport keys), bound to the previous session by the id
//! inside the new session's first authenticated message. Telemetry carries
//! sequence numbers that continue across sessions and restarts; unacknowledged
//! messages are sent again after a reconnect and the server drops duplicates.

use crate::backoff::Backoff;
use crate::error::{Error, Result};
use crate::messages;
use crate::proto::{self, CommandWire, DeviceMsg, KeysWire, ServerMsg};
use crate::state::SessionState;
use base64::{Engine as _, engine::general_purpose::STANDARD as B64};
use fleetkey_crypto::credential::DeviceKeys;
use fleetkey_crypto::ed25519::Ed25519Signer;
use fleetkey_crypto::record::{IdentityKind, KeyRecord};
use fleetkey_session::io::{Session, handshake};
use fleetkey_session::{Builder, Keypair, Limits, Pattern, Suite};
use std::collections::VecDeque;
use std::path::PathBuf;
use std::time::Instant;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

/// Unacknowledged telemetry kept for sending again, messages; when it is full,
/// sending refuses with [`Error::OutboxFull`] (back-pressure, no drop).
pub const MAX_OUTBOX: usize = 1024;

/// How the client connects.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// The device listener, `host:port`.
    pub addr: String,
    /// Noise suite.
    pub suite: Suite,
    /// Session limits.
    pub limits: Limits,
    /// Reconnection policy of [`DeviceClient::connect_with_retry`].
    pub backoff: Backoff,
    /// Allow `Noise_XX` first contact (trust on first use) when no key is pinned.
    pub allow_first_contact: bool,
    /// Use the post-quantum hybrid when the server's ML-KEM key is known.
    pub hybrid: bool,
    /// The fleet's issuing key. Commands that do not verify under it are refused,
    /// and without it every command is refused (a device never obeys an unsigned
    /// wipe).
    pub fleet_key: Option<[u8; 32]>,
    /// The local address to connect from (multi-homed devices and gateways).
    pub bind: Option<std::net::IpAddr>,
}

impl ClientConfig {
    /// Defaults for `addr`: ChaChaPoly/BLAKE2s, default limits capped at the
    /// protocol's message size, default backoff, no first contact, no hybrid.
    pub fn new(addr: impl Into<String>) -> Self {
        Self {
            addr: addr.into(),
            suite: Suite::ChaChaPolyBlake2s,
            limits: Limits {
                max_message: proto::MAX_MESSAGE,
                ..Limits::default()
            },
            backoff: Backoff::default(),
            allow_first_contact: false,
            hybrid: false,
            fleet_key: None,
            bind: None,
        }
    }
}

/// A device's client: its keys, its persisted state and how to reach the server.
pub struct DeviceClient {
    config: ClientConfig,
    device_id: String,
    noise: Keypair,
    signer: Ed25519Signer,
    state_path: PathBuf,
    state: SessionState,
    server_kem: Option<Vec<u8>>,
    outbox: VecDeque<(u64, serde_json::Value)>,
}

impl std::fmt::Debug for DeviceClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeviceClient")
            .field("device_id", &self.device_id)
            .field("addr", &self.config.addr)
            .field("noise", &self.noise)
            .field("state", &self.state)
            .finish_non_exhaustive()
    }
}

fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

impl DeviceClient {
    /// A client for device `device_id` with its Noise static key and Ed25519
    /// signing key; the state lives at `state_path` (loaded now if it exists).
    pub fn new(
        config: ClientConfig,
        device_id: impl Into<String>,
        noise: Keypair,
        signer: Ed25519Signer,
        state_path: impl Into<PathBuf>,
    ) -> Result<Self> {
        let state_path = state_path.into();
        let state = SessionState::load(&state_path)?;
        Ok(Self {
            config,
            device_id: device_id.into(),
            noise,
            signer,
            state_path,
            state,
            server_kem: None,
            outbox: VecDeque::new(),
        })
    }

    /// The persisted state.
    pub fn state(&self) -> &SessionState {
        &self.state
    }

    /// Trusts the server's keys from a verified directory record (see
    /// [`crate::RecordCache`]): pins its X25519 key (replacing a different pinned
    /// key: the signed record wins over trust on first use) and remembers its
    /// ML-KEM key for the hybrid. The record must be a service's.
    pub fn trust_record(&mut self, record: &KeyRecord) -> Result<()> {
        if record.kind != IdentityKind::Service {
            return Err(Error::Protocol(format!(
                "{} is not a service record",
                record.identity
            )));
        }
        self.state.pin(record.keys.x25519);
        self.state
            .record_sequences
            .insert(record.identity.clone(), record.sequence);
        self.server_kem = record.keys.ml_kem_768.clone();
        self.save()
    }

    /// Replaces the device's keys (after a confirmed credential rotation).
    pub fn set_keys(&mut self, noise: Keypair, signer: Ed25519Signer) {
        self.noise = noise;
        self.signer = signer;
    }

    /// Writes the state file.
    pub fn save(&self) -> Result<()> {
        self.state.save(&self.state_path)
    }

    /// One connection attempt: handshake, hello, welcome.
    pub async fn connect(&mut self) -> Result<DeviceSession<'_>> {
        let (session, welcome) = self.attempt().await?;
        Ok(DeviceSession {
            client: self,
            session,
            welcome,
        })
    }

    /// Connects, retrying transient failures (network, timeouts, a busy server)
    /// with exponential backoff and full jitter, at most
    /// [`Backoff::max_attempts`] times. Refusals and key errors are not retried.
    pub async fn connect_with_retry(&mut self) -> Result<DeviceSession<'_>> {
        let b = self.config.backoff;
        let attempts = b.max_attempts.max(1);
        let mut retry = 0;
        let (session, welcome) = loop {
            match self.attempt().await {
                Ok(s) => break s,
                Err(e) if e.is_transient() && retry + 1 < attempts => {
                    let wait = b.delay(retry);
                    tracing::debug!(attempt = retry + 1, error = %e, ?wait, "device connect failed; retrying");
                    tokio::time::sleep(wait).await;
                    retry += 1;
                }
                Err(e) if e.is_transient() => {
                    return Err(Error::GaveUp {
                        attempts,
                        last: Box::new(e),
                    });
                }
                Err(e) => return Err(e),
            }
        };
        Ok(DeviceSession {
            client: self,
            session,
            welcome,
        })
    }

    fn pattern(&self) -> Result<(Pattern, Option<[u8; 32]>)> {
        match self.state.pinned() {
            Some(k) if self.config.hybrid && self.server_kem.is_some() => {
                Ok((Pattern::IKHybrid, Some(k)))
            }
            Some(k) => Ok((Pattern::IK, Some(k))),
            None if self.config.allow_first_contact => Ok((Pattern::XX, None)),
            None => Err(Error::NoServerKey),
        }
    }

    async fn attempt(&mut self) -> Result<(Session<TcpStream>, Welcome)> {
        let (pattern, server) = self.pattern()?;
        let limits = self.config.limits;
        let preamble = proto::preamble(pattern, self.config.suite)
            .ok_or(Error::Protocol("pattern has no preamble".into()))?;
        let io = |e: std::io::Error| Error::Session(fleetkey_session::Error::Io(e.kind()));
        let mut stream = tokio::time::timeout(
            limits.handshake_timeout,
            connect_tcp(&self.config.addr, self.config.bind),
        )
        .await
        .map_err(|_| Error::Session(fleetkey_session::Error::Timeout))?
        .map_err(io)?;
        let _ = stream.set_nodelay(true);
        stream.write_all(&preamble).await.map_err(io)?;
        let mut b = Builder::new(pattern, self.config.suite)
            .local(&self.noise)
            .limits(limits)
            .prologue(&preamble);
        if let Some(k) = server {
            b = b.remote(k);
        }
        if pattern == Pattern::IKHybrid
            && let Some(ek) = self.server_kem.as_deref()
        {
            b = b.remote_kem(ek);
        }
        let hs = b.initiator(Instant::now())?;
        let (mut session, _) = handshake(stream, hs, b"").await?;
        if server.is_none() {
            // First contact: pin what the handshake revealed (never low-order:
            // the session layer refuses those).
            let revealed = session
                .remote_static()
                .ok_or(Error::Protocol("XX revealed no server key".into()))?;
            self.state.pin(revealed);
            tracing::info!(key = %fleetkey_crypto::hex_prefix(&revealed), "pinned the server key on first contact");
        }
        let hello = DeviceMsg::Hello {
            resume: self.state.session_id.clone(),
            telemetry_seq: self.state.telemetry_seq,
        };
        send_msg(&mut session, &hello).await?;
        let welcome = match recv_msg(&mut session).await? {
            ServerMsg::Welcome {
                device_id,
                session: id,
                resumed,
                telemetry_seq,
            } => {
                if id != proto::session_id(session.handshake_hash()) {
                    return Err(Error::Protocol(
                        "the session id is not this handshake's".into(),
                    ));
                }
                if device_id != self.device_id {
                    return Err(Error::Protocol(format!(
                        "the server knows this key as {device_id}"
                    )));
                }
                Welcome {
                    session: id,
                    resumed,
                    telemetry_seq,
                }
            }
            ServerMsg::Refused { reason } => return Err(Error::Refused(reason)),
            other => return Err(Error::Protocol(format!("expected welcome, got {other:?}"))),
        };
        self.state.session_id = Some(welcome.session.clone());
        self.state.sessions += 1;
        self.state.messages_sent += 1;
        self.state.messages_received += 1;
        self.acked(welcome.telemetry_seq);
        self.save()?;
        // Telemetry the server did not store before: send it again.
        let pending: Vec<_> = self.outbox.iter().cloned().collect();
        for (seq, data) in pending {
            send_msg(&mut session, &DeviceMsg::Telemetry { seq, data }).await?;
            self.state.messages_sent += 1;
        }
        Ok((session, welcome))
    }

    fn acked(&mut self, seq: u64) {
        self.state.telemetry_acked = self.state.telemetry_acked.max(seq);
        while self.outbox.front().is_some_and(|(s, _)| *s <= seq) {
            self.outbox.pop_front();
        }
    }
}

/// Connects to `addr` (resolved), from `bind` when given.
pub async fn connect_tcp(addr: &str, bind: Option<std::net::IpAddr>) -> std::io::Result<TcpStream> {
    let Some(local) = bind else {
        return TcpStream::connect(addr).await;
    };
    let mut last = None;
    for a in tokio::net::lookup_host(addr).await? {
        let sock = if a.is_ipv4() {
            tokio::net::TcpSocket::new_v4()?
        } else {
            tokio::net::TcpSocket::new_v6()?
        };
        sock.bind(std::net::SocketAddr::new(local, 0))?;
        match sock.connect(a).await {
            Ok(s) => return Ok(s),
            Err(e) => last = Some(e),
        }
    }
    Err(last.unwrap_or_else(|| std::io::Error::other("the address resolved to nothing")))
}

#[derive(Debug)]
struct Welcome {
    session: String,
    resumed: bool,
    telemetry_seq: u64,
}

async fn send_msg(s: &mut Session<TcpStream>, m: &DeviceMsg) -> Result<()> {
    let raw = serde_json::to_vec(m).map_err(|e| Error::Protocol(e.to_string()))?;
    Ok(s.send(&raw).await?)
}

async fn recv_msg(s: &mut Session<TcpStream>) -> Result<ServerMsg> {
    let raw = s.recv().await?;
    serde_json::from_slice(&raw)
        .map_err(|_| Error::Protocol("a server message is not valid".into()))
}

/// An open session (borrows the client to keep its state current).
pub struct DeviceSession<'a> {
    client: &'a mut DeviceClient,
    session: Session<TcpStream>,
    welcome: Welcome,
}

impl std::fmt::Debug for DeviceSession<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeviceSession")
            .field("session", &self.welcome.session)
            .field("resumed", &self.welcome.resumed)
            .finish_non_exhaustive()
    }
}

impl DeviceSession<'_> {
    /// This session's id.
    pub fn id(&self) -> &str {
        &self.welcome.session
    }

    /// Whether the server bound this session to the previous one.
    pub fn resumed(&self) -> bool {
        self.welcome.resumed
    }

    /// The highest telemetry sequence the server had stored when the session began.
    pub fn server_telemetry_seq(&self) -> u64 {
        self.welcome.telemetry_seq
    }

    /// The client's state.
    pub fn state(&self) -> &SessionState {
        &self.client.state
    }

    /// Sends a protocol message.
    pub async fn send(&mut self, m: &DeviceMsg) -> Result<()> {
        send_msg(&mut self.session, m).await?;
        self.client.state.messages_sent += 1;
        Ok(())
    }

    /// Sends telemetry with the next sequence number (persisted before sending, so
    /// a number is never used twice); returns the number. Kept in the outbox until
    /// acknowledged (sent again after a reconnection); with [`MAX_OUTBOX`]
    /// messages unacknowledged it refuses with [`Error::OutboxFull`] instead of
    /// dropping one: call [`DeviceSession::recv`] to take acknowledgements first.
    pub async fn send_telemetry(&mut self, data: serde_json::Value) -> Result<u64> {
        if self.client.outbox.len() >= MAX_OUTBOX {
            return Err(Error::OutboxFull(self.client.outbox.len()));
        }
        let seq = self.client.state.telemetry_seq + 1;
        self.client.state.telemetry_seq = seq;
        self.client.save()?;
        self.client.outbox.push_back((seq, data.clone()));
        self.send(&DeviceMsg::Telemetry { seq, data }).await?;
        Ok(seq)
    }

    /// The next server message. Telemetry acknowledgements update the state; a
    /// refusal ends the session as [`Error::Refused`]; a command that does not
    /// verify under the configured fleet key, or any command when none is
    /// configured, is refused as [`Error::Protocol`].
    pub async fn recv(&mut self) -> Result<ServerMsg> {
        let m = recv_msg(&mut self.session).await?;
        self.client.state.messages_received += 1;
        match &m {
            ServerMsg::TelemetryAck { seq } => {
                self.client.acked(*seq);
                self.client.save()?;
            }
            ServerMsg::Refused { reason } => return Err(Error::Refused(reason.clone())),
            ServerMsg::Command(c) => {
                // Commands (a wipe among them) are obeyed only when they verify
                // under the fleet key; without one configured, none is accepted.
                let Some(k) = self.client.config.fleet_key else {
                    return Err(Error::Protocol(format!(
                        "command {} refused: no fleet key configured to verify it (set ClientConfig::fleet_key)",
                        c.id
                    )));
                };
                if !c.verify(&k) {
                    return Err(Error::Protocol(format!(
                        "command {} does not verify under the fleet key",
                        c.id
                    )));
                }
                if c.device_id != self.client.device_id {
                    return Err(Error::Protocol(format!(
                        "command {} is for another device",
                        c.id
                    )));
                }
            }
            _ => {}
        }
        Ok(m)
    }

    /// Answers an `update_config` command with a signed receipt.
    pub async fn receipt(&mut self, command: &CommandWire, applied: bool) -> Result<()> {
        let status = if applied { "applied" } else { "rejected" };
        let at = unix_now();
        let sig = self.client.signer.sign(&messages::receipt_message(
            &command.id,
            &self.client.device_id,
            status,
            at,
        ));
        self.send(&DeviceMsg::Receipt {
            command_id: command.id.clone(),
            status: status.into(),
            at,
            signature: B64.encode(sig),
        })
        .await
    }

    /// Proposes new keys for a `rotate_credential` command, signed by the current key.
    pub async fn propose_rotation(
        &mut self,
        command: &CommandWire,
        keys: &DeviceKeys,
    ) -> Result<()> {
        let sig = self.client.signer.sign(&messages::rotation_request_message(
            &self.client.device_id,
            &command.id,
            keys,
        ));
        self.send(&DeviceMsg::RotationProposal {
            command_id: command.id.clone(),
            keys: KeysWire::from(keys),
            signature: B64.encode(sig),
        })
        .await
    }

    /// Confirms a rotation with the new signing key over the new credential's id.
    pub async fn confirm_rotation(
        &mut self,
        command_id: &str,
        credential_id: &[u8; 16],
        new_signer: &Ed25519Signer,
    ) -> Result<()> {
        let sig = new_signer.sign(&messages::rotation_confirm_message(
            &self.client.device_id,
            command_id,
            credential_id,
        ));
        self.send(&DeviceMsg::RotationConfirm {
            command_id: command_id.to_owned(),
            signature: B64.encode(sig),
        })
        .await
    }

    /// Signs and sends the wipe receipt (the firmware erases its keys after this).
    pub async fn wipe_receipt(&mut self) -> Result<()> {
        let wiped_at = unix_now();
        let sig = self.client.signer.sign(&messages::wipe_receipt_message(
            &self.client.device_id,
            wiped_at,
        ));
        self.send(&DeviceMsg::WipeReceipt {
            wiped_at,
            signature: B64.encode(sig),
        })
        .await
    }

    /// Closes the session and saves the state.
    pub async fn close(self) -> Result<()> {
        self.client.save()?;
        Ok(self.session.close().await?)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn debug_output_never_shows_private_keys() {
        let dir = tempfile::TempDir::new().unwrap();
        let noise = Keypair::from_private([0x5a; 32]).unwrap();
        let signer =
            Ed25519Signer::from_seed(fleetkey_crypto::secret::SecretBytes::new([0x6b; 32]))
                .unwrap();
        let c = DeviceClient::new(
            ClientConfig::new("127.0.0.1:1"),
            "dev_1",
            noise,
            signer,
            dir.path().join("s.json"),
        )
        .unwrap();
        let s = format!("{c:?}").to_lowercase();
        assert!(s.contains("dev_1"));
        for secret in ["5a5a5a5a", "6b6b6b6b", "90, 90, 90", "107, 107, 107"] {
            assert!(!s.contains(secret), "{secret} in {s}");
        }
    }
}
