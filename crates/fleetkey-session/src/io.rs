//! The tokio adapter: a thin loop that moves bytes between a socket and the
//! sans-IO [`Handshake`] and [`Transport`], enforcing the handshake deadline and the
//! idle timeout of [`crate::Limits`].

use crate::error::{Error, Result};
use crate::frame::{FrameReader, MAX_NOISE_MESSAGE, write_frame};
use crate::handshake::{Handshake, Transport};
use std::time::Instant;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// An established session over a byte stream.
#[derive(Debug)]
pub struct Session<S> {
    io: S,
    transport: Transport,
    frames: FrameReader,
    idle: std::time::Duration,
}

fn io_err(e: std::io::Error) -> Error {
    Error::Io(e.kind())
}

/// Bytes reserved for a read while waiting for a peer that is quiet: small, so a
/// hundred thousand idle sessions hold little memory.
const IDLE_READ: usize = 512;

/// Reads until one whole frame is available, straight into the frame buffer.
async fn next_frame<S: AsyncRead + Unpin>(io: &mut S, frames: &mut FrameReader) -> Result<Vec<u8>> {
    loop {
        if let Some(f) = frames.next_frame()? {
            return Ok(f);
        }
        let n = io.read_buf(frames.spare(IDLE_READ)).await.map_err(io_err)?;
        if n == 0 {
            return Err(Error::Io(std::io::ErrorKind::UnexpectedEof));
        }
    }
}

/// Runs a handshake to the end over `io`: sends `payload` in our first message
/// (empty payloads after), returns the session and the peer's payloads. The whole
/// handshake must finish within the handshake timeout (a slow or silent peer is
/// dropped).
pub async fn handshake<S: AsyncRead + AsyncWrite + Unpin>(
    mut io: S,
    mut hs: Handshake,
    payload: &[u8],
) -> Result<(Session<S>, Vec<Vec<u8>>)> {
    let limits = hs.limits();
    let mut frames = FrameReader::new(limits.max_handshake_message);
    let mut received = Vec::new();
    let run = async {
        let mut first = true;
        while !hs.is_finished() {
            if hs.is_my_turn() {
                let msg = hs.write_message(if first { payload } else { &[] }, Instant::now())?;
                first = false;
                let mut out = Vec::with_capacity(msg.len() + 2);
                write_frame(&mut out, &msg)?;
                io.write_all(&out).await.map_err(io_err)?;
            } else {
                let f = next_frame(&mut io, &mut frames).await?;
                received.push(hs.read_message(&f, Instant::now())?);
            }
        }
        io.flush().await.map_err(io_err)?;
        Ok::<_, Error>(())
    };
    tokio::time::timeout(limits.handshake_timeout, run)
        .await
        .map_err(|_| Error::Timeout)??;
    frames.set_max_frame(MAX_NOISE_MESSAGE);
    frames.release();
    Ok((
        Session {
            io,
            transport: hs.into_transport()?,
            frames,
            idle: limits.idle_timeout,
        },
        received,
    ))
}

impl<S: AsyncRead + AsyncWrite + Unpin> Session<S> {
    /// Sends one application message.
    pub async fn send(&mut self, msg: &[u8]) -> Result<()> {
        let mut out = Vec::with_capacity(msg.len() + 64);
        self.transport.seal(msg, &mut out)?;
        self.io.write_all(&out).await.map_err(io_err)?;
        self.io.flush().await.map_err(io_err)
    }

    /// Receives one application message; [`Error::Idle`] if nothing arrives within
    /// the idle timeout.
    pub async fn recv(&mut self) -> Result<Vec<u8>> {
        let idle = self.idle;
        let fut = async {
            loop {
                let f = next_frame(&mut self.io, &mut self.frames).await?;
                if let Some(m) = self.transport.open(&f)? {
                    self.frames.release();
                    return Ok(m);
                }
            }
        };
        tokio::time::timeout(idle, fut)
            .await
            .map_err(|_| Error::Idle)?
    }

    /// The peer's static key, if the pattern revealed one.
    pub fn remote_static(&self) -> Option<[u8; 32]> {
        self.transport.remote_static()
    }

    /// The handshake hash.
    pub fn handshake_hash(&self) -> &[u8] {
        self.transport.handshake_hash()
    }

    /// Closes the write side.
    pub async fn close(mut self) -> Result<()> {
        self.io.shutdown().await.map_err(io_err)
    }
}
