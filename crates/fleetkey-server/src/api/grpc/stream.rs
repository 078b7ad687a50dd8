//! `SealStream`: a large payload sealed as it arrives, into one fk1 mode-4
//! envelope (docs/formats.md, "Mode 4: wrapped"): a stream under a fresh data key
//! that the keyring seals into the header. The header goes out first, then each
//! segment as soon as it fills; memory stays at about two segments (64 KiB)
//! whatever the payload's size. The data key never leaves the server.

use super::{CryptoService, binding, pb, status};
use crate::api::error::ApiError;
use crate::tokens::Principal;
use fleetkey_crypto::aead::{AeadKey, Algorithm};
use fleetkey_crypto::envelope::stream::{StreamSealer, seal_wrapped};
use futures_util::StreamExt as _;
use std::pin::Pin;
use tonic::Status;

/// Segment size exponent of streamed envelopes (64 KiB segments).
pub const SEGMENT_LOG2: u8 = 16;

/// The envelope's bytes as they are sealed.
pub type Sealed =
    Pin<Box<dyn futures_util::Stream<Item = Result<pb::SealStreamResponse, Status>> + Send>>;

fn chunk(bytes: Vec<u8>) -> Result<pb::SealStreamResponse, Status> {
    Ok(pb::SealStreamResponse { chunk: bytes })
}

/// Reads the first message (keyring, binding), makes the data key and returns
/// the stream of sealed bytes; the rest is sealed as it arrives.
pub(super) async fn start(
    svc: &CryptoService,
    p: &Principal,
    mut input: tonic::Streaming<pb::SealStreamRequest>,
) -> Result<Sealed, Status> {
    let first = match input.message().await? {
        Some(m) => m,
        None => {
            return Err(status(&ApiError::malformed(
                "the first message names the keyring",
            )));
        }
    };
    let name = first.keyring.clone();
    let ring = svc.ring(p, "seal", &name).await?;
    let aad = binding(first.binding.as_ref()).map_err(|e| status(&e))?;
    let dk = ring.data_key(&aad).await.map_err(|e| status(&e.into()))?;
    let (inner, _) = fleetkey_crypto::envelope::Header::parse(&dk.sealed)
        .map_err(|e| status(&crate::Error::from(e).into()))?;
    let secret = fleetkey_crypto::secret::SecretBytes::from_slice(&dk.plaintext)
        .map_err(|e| status(&crate::Error::from(e).into()))?;
    let key = AeadKey::new(Algorithm::Aes256Gcm, secret)
        .map_err(|e| status(&crate::Error::from(e).into()))?;
    let (header, sealer) = seal_wrapped(
        &key,
        &inner.key_id,
        inner.key_version,
        SEGMENT_LOG2,
        dk.sealed.clone(),
        &aad,
    )
    .map_err(|e| status(&crate::Error::from(e).into()))?;
    let st = svc.st.clone();
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<pb::SealStreamResponse, Status>>(4);
    let _ = tx.send(chunk(header)).await;
    tokio::spawn(async move {
        let r = pump(sealer, first.data, input, &tx).await;
        let failed = ApiError::malformed("the stream failed");
        let counted = match r {
            Ok(()) => Ok(()),
            Err(s) => {
                let _ = tx.send(Err(s)).await;
                Err(&failed)
            }
        };
        super::count(&st, &st.metrics.seals, &name, counted);
    });
    Ok(Box::pin(futures_util::stream::unfold(
        rx,
        |mut rx| async move { rx.recv().await.map(|m| (m, rx)) },
    )))
}

/// Seals whole segments as the input fills them; the last (possibly short or
/// empty) one when the input ends.
async fn pump(
    mut sealer: StreamSealer,
    first: Vec<u8>,
    mut input: tonic::Streaming<pb::SealStreamRequest>,
    tx: &tokio::sync::mpsc::Sender<Result<pb::SealStreamResponse, Status>>,
) -> Result<(), Status> {
    let seg = sealer.segment_len();
    let mut buf = zeroize::Zeroizing::new(first);
    let sealing = |e: fleetkey_crypto::Error| status(&crate::Error::from(e).into());
    loop {
        // Keep at least one byte back until the input ends: the last segment
        // must be sealed as the last.
        while buf.len() > seg {
            let rest = buf.split_off(seg);
            let mut segment = std::mem::replace(&mut *buf, rest);
            sealer.seal_segment(&mut segment, false).map_err(sealing)?;
            if tx.send(chunk(segment)).await.is_err() {
                return Ok(()); // the client went away
            }
        }
        match input.next().await {
            Some(Ok(m)) => {
                if !m.keyring.is_empty() || m.binding.is_some() {
                    return Err(status(&ApiError::malformed(
                        "only the first message names the keyring and binding",
                    )));
                }
                buf.extend_from_slice(&m.data);
            }
            Some(Err(s)) => return Err(s),
            None => break,
        }
    }
    let mut last = std::mem::take(&mut *buf);
    sealer.seal_segment(&mut last, true).map_err(sealing)?;
    let _ = tx.send(chunk(last)).await;
    Ok(())
}
