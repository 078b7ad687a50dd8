//! Custody calls timed and counted, for every backend:
//! `fleetkey_custody_call_seconds{backend, operation, result}`, a histogram whose
//! `_count` by `result` (`ok`, `refused` for a wrapped key that does not open,
//! `unavailable`, `error`) is what alerts watch (docs/custody.md).

use super::{Custody, Resident};
use crate::error::{Error, Result};
use crate::observability::spans;
use fleetkey_crypto::secret::SecretBytes;
use prometheus::{HistogramOpts, HistogramVec};
use std::sync::Arc;
use std::time::Instant;
use tracing::Instrument as _;

/// A custody whose calls are observed in a histogram.
pub struct Metered {
    inner: Arc<dyn Custody>,
    calls: HistogramVec,
}

impl Metered {
    /// Wraps `inner`; register [`Custody::collector`] to export the histogram.
    pub fn new(inner: Arc<dyn Custody>) -> Result<Self> {
        let opts = HistogramOpts::new(
            "fleetkey_custody_call_seconds",
            "Custody calls (wrap, unwrap, sign) by backend, operation and result",
        )
        .buckets(vec![
            0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.05, 0.25, 1.0, 5.0,
        ]);
        let calls = HistogramVec::new(opts, &["backend", "operation", "result"])
            .map_err(|e| Error::Internal(format!("custody metrics: {e}")))?;
        Ok(Self { inner, calls })
    }

    /// Runs one call in its trace span, then times and counts it by result.
    async fn timed<T>(
        &self,
        operation: &'static str,
        call: impl std::future::Future<Output = Result<T>>,
    ) -> Result<T> {
        let span = spans::custody_call(self.inner.backend(), operation);
        let start = Instant::now();
        let r = call.instrument(span.clone()).await;
        let result = match &r {
            Ok(_) => "ok",
            Err(Error::Envelope(fleetkey_crypto::Error::Open)) => "refused",
            Err(Error::CustodyUnavailable(_)) => "unavailable",
            Err(_) => "error",
        };
        spans::custody_result(&span, result);
        self.calls
            .with_label_values(&[self.inner.backend(), operation, result])
            .observe(start.elapsed().as_secs_f64());
        r
    }

    /// The inner custody's resident keys, or the refusal for a backend without.
    fn resident_keys(&self) -> Result<&dyn Resident> {
        self.inner
            .resident()
            .ok_or_else(|| no_resident(self.inner.backend()))
    }
}

#[async_trait::async_trait]
impl Custody for Metered {
    async fn wrap(&self, key: &SecretBytes<32>, context: &str) -> Result<Vec<u8>> {
        self.timed("wrap", self.inner.wrap(key, context)).await
    }

    async fn unwrap(&self, wrapped: &[u8], context: &str) -> Result<SecretBytes<32>> {
        self.timed("unwrap", self.inner.unwrap(wrapped, context))
            .await
    }

    async fn sign(&self, msg: &[u8]) -> Result<Vec<u8>> {
        self.timed("sign", self.inner.sign(msg)).await
    }

    fn public_key(&self) -> Vec<u8> {
        self.inner.public_key()
    }

    fn backend(&self) -> &'static str {
        self.inner.backend()
    }

    fn root_id(&self) -> String {
        self.inner.root_id()
    }

    fn collector(&self) -> Option<HistogramVec> {
        Some(self.calls.clone())
    }

    fn resident(&self) -> Option<&dyn Resident> {
        self.inner.resident().map(|_| self as &dyn Resident)
    }
}

/// The inner custody's resident keys, each call observed as `resident_generate`,
/// `resident_seal`, `resident_open` or `resident_destroy`.
#[async_trait::async_trait]
impl Resident for Metered {
    async fn generate(&self, context: &str) -> Result<Vec<u8>> {
        self.timed("resident_generate", async {
            self.resident_keys()?.generate(context).await
        })
        .await
    }

    async fn seal(
        &self,
        reference: &[u8],
        nonce: [u8; 12],
        aad: &[u8],
        plaintext: &[u8],
    ) -> Result<Vec<u8>> {
        self.timed("resident_seal", async {
            self.resident_keys()?
                .seal(reference, nonce, aad, plaintext)
                .await
        })
        .await
    }

    async fn open(
        &self,
        reference: &[u8],
        nonce: [u8; 12],
        aad: &[u8],
        ciphertext: &[u8],
    ) -> Result<Vec<u8>> {
        self.timed("resident_open", async {
            self.resident_keys()?
                .open(reference, nonce, aad, ciphertext)
                .await
        })
        .await
    }

    async fn destroy(&self, reference: &[u8]) -> Result<()> {
        self.timed("resident_destroy", async {
            self.resident_keys()?.destroy(reference).await
        })
        .await
    }
}

fn no_resident(backend: &str) -> Error {
    Error::CustodyUnsupported(format!("{backend} custody cannot hold resident keys"))
}
