//! One device's session on the listener: hello and welcome, the open commands,
//! then telemetry, receipts, credential rotation and the wipe receipt until the
//! session ends.

use super::{DeviceListener, End, Live, MAX_TELEMETRY_SEQ, MAX_TELEMETRY_SEQ_JUMP};
use base64::{Engine as _, engine::general_purpose::STANDARD as B64};
use fleetkey_session::io::Session;
use fleetkey_wire::proto::{self, CommandWire, DeviceMsg, ServerMsg};
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use tokio::net::TcpStream;
use tokio::sync::Notify;

use crate::store::{CommandKind, DeviceSessionRecord, DeviceState};
use crate::telemetry::TelemetryRecord;

/// The device of an open session.
pub(super) struct Peer {
    pub(super) id: String,
    pub(super) fleet: String,
    pub(super) state: DeviceState,
}

/// One device's session.
pub(super) struct Conn<'a> {
    pub(super) l: &'a DeviceListener,
    pub(super) s: &'a mut Session<TcpStream>,
    pub(super) device: &'a Peer,
    pub(super) pattern: &'static str,
    pub(super) peer: SocketAddr,
    pub(super) id: String,
    pub(super) messages_in: u64,
    pub(super) messages_out: u64,
    pub(super) live: Option<Arc<Live>>,
}

impl Conn<'_> {
    async fn send(&mut self, msg: &ServerMsg) -> Result<(), End> {
        let raw = serde_json::to_vec(msg).map_err(|e| End::Closed(e.to_string()))?;
        self.s
            .send(&raw)
            .await
            .map_err(|e| End::Closed(e.to_string()))?;
        self.messages_out += 1;
        Ok(())
    }

    fn count(&self, kind: &str, result: &str) {
        self.l
            .state
            .metrics
            .device_messages
            .with_label_values(&[kind, result])
            .inc();
    }

    async fn recv(&mut self) -> Result<Result<DeviceMsg, ()>, End> {
        let raw = self
            .s
            .recv()
            .await
            .map_err(|e| End::Closed(e.to_string()))?;
        self.messages_in += 1;
        // Authenticated by the session: the device was heard from (batched).
        self.l.state.fleets.sessions.seen(&self.device.id);
        Ok(serde_json::from_slice(&raw).map_err(|_| ()))
    }

    /// Hello, welcome, commands, then messages until the session ends.
    pub(super) async fn serve(&mut self) -> Result<(), End> {
        // Rare paths are boxed so the future every idle session keeps is small.
        let wiping = Box::pin(self.open()).await?;
        let live = self.live.clone().ok_or(End::Done)?;
        loop {
            let msg = tokio::select! {
                r = self.recv() => r?,
                () = live.close.notified() => {
                    return Err(End::Closed(if self.l.stopping.load(Ordering::SeqCst) {
                        "the server is shutting down".into()
                    } else {
                        "replaced by a newer session".into()
                    }));
                }
            };
            if let Some(r) = self.answer(msg, &live, wiping).await? {
                self.send(&r).await?;
            }
        }
    }

    /// The session's start: the device's hello, the session recorded, the welcome
    /// and the device's open commands (only the wipe while it is being
    /// decommissioned). Whether it is being decommissioned.
    async fn open(&mut self) -> Result<bool, End> {
        let resume = match self.recv().await? {
            Ok(DeviceMsg::Hello { resume, .. }) => resume,
            _ => {
                let key = self.s.remote_static().unwrap_or_default();
                self.l
                    .refuse(
                        self.s,
                        Some(&self.device.id),
                        &key,
                        "no_hello",
                        None,
                        self.peer,
                    )
                    .await;
                return Err(End::Done);
            }
        };
        if self.l.stopping.load(Ordering::SeqCst) {
            return Err(End::Closed("the server is shutting down".into()));
        }
        let welcome = self.begin(resume).await.map_err(|e| {
            tracing::error!(device = %self.device.id, error = %e, "device session could not begin");
            End::Closed(e.to_string())
        })?;
        self.send(&welcome).await?;
        let wiping = self.device.state == DeviceState::Decommissioning;
        let commands = self
            .l
            .state
            .fleets
            .commands
            .device_commands(&self.device.id, true)
            .await
            .map_err(|e| End::Closed(e.to_string()))?;
        for c in commands {
            if wiping && c.kind != CommandKind::Wipe {
                continue;
            }
            let wire = CommandWire {
                id: c.id,
                device_id: c.device_id,
                kind: c.kind.as_str().into(),
                state: c.state.as_str().into(),
                payload: c.payload,
                signature: B64.encode(&c.signature),
                created_at: c.created_at,
                updated_at: c.updated_at,
            };
            self.send(&ServerMsg::Command(wire)).await?;
        }
        Ok(wiping)
    }

    /// The answer to one message from the device, if it gets one.
    async fn answer(
        &mut self,
        msg: Result<DeviceMsg, ()>,
        live: &Live,
        wiping: bool,
    ) -> Result<Option<ServerMsg>, End> {
        Ok(match msg {
            Err(()) => {
                self.count("unknown", "refused");
                Some(ServerMsg::Error {
                    message: "not a device message".into(),
                })
            }
            Ok(m) if wiping && !matches!(m, DeviceMsg::WipeReceipt { .. }) => {
                self.count("other", "refused");
                Some(ServerMsg::Error {
                    message:
                        "the device is being decommissioned: only the wipe receipt is accepted"
                            .into(),
                })
            }
            Ok(DeviceMsg::Hello { .. }) => Some(ServerMsg::Error {
                message: "hello was already sent".into(),
            }),
            Ok(DeviceMsg::Telemetry { seq, data }) => {
                Some(Box::pin(self.telemetry(live, seq, data)).await)
            }
            Ok(DeviceMsg::Receipt {
                command_id,
                status,
                at,
                signature,
            }) => Some(Box::pin(self.receipt(command_id, &status, at, &signature)).await),
            Ok(DeviceMsg::RotationProposal {
                command_id,
                keys,
                signature,
            }) => Some(Box::pin(self.proposal(command_id, &keys, &signature)).await),
            Ok(DeviceMsg::RotationConfirm {
                command_id,
                signature,
            }) => Some(Box::pin(self.confirm(command_id, &signature)).await),
            Ok(DeviceMsg::WipeReceipt {
                wiped_at,
                signature,
            }) => {
                let r = Box::pin(self.wipe(wiped_at, &signature)).await;
                let done = matches!(r, ServerMsg::Ack { .. });
                self.send(&r).await?;
                if done {
                    self.send(&ServerMsg::Refused {
                        reason: "decommissioned".into(),
                    })
                    .await?;
                    return Err(End::Done);
                }
                None
            }
        })
    }

    /// Binds the session to the previous one, takes over (and closes) a session of
    /// the same device still open, records the session; returns the welcome.
    async fn begin(&mut self, resume: Option<String>) -> crate::Result<ServerMsg> {
        let fleets = &self.l.state.fleets;
        let resumed = match resume.as_deref() {
            Some(prev) => fleets.sessions.resumable(&self.device.id, prev).await?,
            None => false,
        };
        let live = Arc::new(Live {
            id: self.id.clone(),
            telemetry_seq: AtomicU64::new(0),
            close: Notify::new(),
        });
        let old = self
            .l
            .live
            .lock()
            .insert(self.device.id.clone(), live.clone());
        // Shutdown either sees this session in the table (and ends it) or this
        // sees the flag: none begins unnoticed.
        if self.l.stopping.load(Ordering::SeqCst) {
            self.l.forget(&self.device.id, &live);
            return Err(crate::Error::Stopping("the server is shutting down"));
        }
        let mut seq = fleets.sessions.telemetry_position(&self.device.id).await?;
        if let Some(old) = old {
            seq = seq.max(old.telemetry_seq.load(Ordering::Acquire));
            old.close.notify_one();
        }
        live.telemetry_seq.fetch_max(seq, Ordering::AcqRel);
        fleets
            .sessions
            .session_opened(&DeviceSessionRecord {
                id: self.id.clone(),
                device_id: self.device.id.clone(),
                previous: resume.filter(|_| resumed),
                pattern: self.pattern.into(),
                peer: self.peer.ip().to_string(),
                started_at: self.l.state.fleets.now(),
                ended_at: None,
                telemetry_seq: seq,
                messages_in: 0,
                messages_out: 0,
            })
            .await?;
        self.live = Some(live);
        fleets.sessions.seen(&self.device.id);
        if self.device.state == crate::store::DeviceState::Onboarded {
            // The first session after onboarding: the device is active.
            let (id, state) = (&self.device.id, self.device.state);
            if let Err(e) = fleets.sessions.activate(id, state, &self.id).await {
                tracing::warn!(device = %self.device.id, error = %e, "activating the device failed; the next session tries again");
            }
        }
        Ok(ServerMsg::Welcome {
            device_id: self.device.id.clone(),
            session: self.id.clone(),
            resumed,
            telemetry_seq: seq,
        })
    }

    async fn telemetry(&mut self, live: &Live, seq: u64, data: serde_json::Value) -> ServerMsg {
        let stored = live.telemetry_seq.load(Ordering::Acquire);
        if seq == 0 {
            self.count("telemetry", "refused");
            return ServerMsg::Error {
                message: "telemetry sequence numbers start at 1".into(),
            };
        }
        if seq <= stored {
            self.count("telemetry", "duplicate");
            return ServerMsg::TelemetryAck { seq: stored };
        }
        // A sequence the store cannot hold (above 2^63 - 1), or a jump that would
        // make every later message look like a duplicate: refused, not stored.
        if seq > MAX_TELEMETRY_SEQ || seq - stored > MAX_TELEMETRY_SEQ_JUMP {
            self.count("telemetry", "refused");
            return ServerMsg::Error {
                message: format!(
                    "telemetry seq {seq} is out of range (at most {MAX_TELEMETRY_SEQ_JUMP} past {stored})"
                ),
            };
        }
        let record = TelemetryRecord {
            device_id: self.device.id.clone(),
            fleet: self.device.fleet.clone(),
            session: self.id.clone(),
            seq,
            received_at: self.l.state.fleets.now(),
            data,
        };
        let stored = match self.l.sink.deliver(&record).await {
            Ok(()) => self.l.sink.flush().await,
            Err(e) => Err(e),
        };
        match stored {
            Ok(()) => {
                live.telemetry_seq.fetch_max(seq, Ordering::AcqRel);
                self.count("telemetry", "accepted");
                ServerMsg::TelemetryAck { seq }
            }
            Err(e) => {
                tracing::error!(error = %e, "telemetry sink failed");
                self.count("telemetry", "failed");
                ServerMsg::Error {
                    message: "telemetry not stored; send it again later".into(),
                }
            }
        }
    }

    fn outcome(&self, kind: &str, command_id: String, r: crate::Result<ServerMsg>) -> ServerMsg {
        match r {
            Ok(m) => {
                self.count(kind, "accepted");
                m
            }
            Err(e) => {
                self.count(kind, "refused");
                tracing::info!(device = %self.device.id, command = %command_id, error = %e, "device message refused");
                // The same public message as over HTTP: a refusal says why, a
                // fault of the service says only "retry later".
                ServerMsg::Error {
                    message: crate::api::error::ApiError::from(e).detail.message,
                }
            }
        }
    }

    async fn receipt(
        &mut self,
        command_id: String,
        status: &str,
        at: i64,
        signature: &str,
    ) -> ServerMsg {
        let r = async {
            let sig = b64(signature)?;
            self.l
                .state
                .fleets
                .commands
                .command_receipt(&self.device.id, &command_id, status, at, &sig)
                .await?;
            Ok(ServerMsg::Ack {
                command_id: command_id.clone(),
            })
        }
        .await;
        self.outcome("receipt", command_id, r)
    }

    async fn proposal(
        &mut self,
        command_id: String,
        keys: &proto::KeysWire,
        signature: &str,
    ) -> ServerMsg {
        let r = async {
            let sig = b64(signature)?;
            let keys = keys
                .decode()
                .map_err(|f| crate::fleet::invalid("keys", format!("{f} is not valid base64")))?;
            let (token, id) = self
                .l
                .state
                .fleets
                .commands
                .propose_rotation(&self.device.id, &command_id, keys, &sig)
                .await?;
            Ok(ServerMsg::Credential {
                command_id: command_id.clone(),
                operational_credential: B64.encode(token),
                credential_id: B64.encode(id),
            })
        }
        .await;
        self.outcome("rotation_proposal", command_id, r)
    }

    async fn confirm(&mut self, command_id: String, signature: &str) -> ServerMsg {
        let r = async {
            let sig = b64(signature)?;
            self.l
                .state
                .fleets
                .commands
                .confirm_rotation(&self.device.id, &command_id, &sig)
                .await?;
            self.l
                .state
                .metrics
                .key_rotations
                .with_label_values(&["device_credential"])
                .inc();
            Ok(ServerMsg::Ack {
                command_id: command_id.clone(),
            })
        }
        .await;
        self.outcome("rotation_confirm", command_id, r)
    }

    async fn wipe(&mut self, wiped_at: i64, signature: &str) -> ServerMsg {
        let r = async {
            let sig = b64(signature)?;
            self.l
                .state
                .fleets
                .onboarding
                .confirm_wipe(&self.device.id, wiped_at, &sig)
                .await?;
            Ok(ServerMsg::Ack {
                command_id: "wipe".into(),
            })
        }
        .await;
        self.outcome("wipe_receipt", "wipe".into(), r)
    }

    /// Records the end of the session and leaves the live table (unless a newer
    /// session of the device took the place).
    pub(super) async fn finish(&mut self) {
        let Some(live) = self.live.take() else {
            return;
        };
        self.l.forget(&self.device.id, &live);
        if let Err(e) = self
            .l
            .state
            .fleets
            .sessions
            .session_closed(
                &self.id,
                live.telemetry_seq.load(Ordering::Acquire),
                self.messages_in,
                self.messages_out,
            )
            .await
        {
            tracing::error!(error = %e, "could not record the end of a device session");
        }
    }
}

fn b64(s: &str) -> crate::Result<Vec<u8>> {
    B64.decode(s)
        .map_err(|_| crate::fleet::invalid("signature", "not valid base64"))
}
