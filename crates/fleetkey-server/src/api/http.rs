//! The HTTP listener: accepts connections under a cap, serves each with hyper
//! (HTTP/1.1 and HTTP/2, TLS optional) and closes the ones that hold resources
//! without using them. docs/operations.md#http-limits lists the settings.
//!
//! - **Cap**: at most [`HttpLimits::max_connections`] connections are open; a
//!   connection accepted beyond it is closed at once (shed), so descriptors never
//!   run out for the requests being served. [`raise_nofile_limit`] raises the soft
//!   `RLIMIT_NOFILE` to the hard limit at start and the cap is kept below it.
//! - **Header deadline**: once a client sends the first byte of a request (or the
//!   TLS handshake starts), the whole request head must arrive within
//!   [`HttpLimits::header_timeout`].
//! - **Idle deadline**: a connection with no request in flight and nothing
//!   received is closed after [`HttpLimits::idle_timeout`].
//! - **Body deadline**: enforced where bodies are read ([`crate::api::ApiJson`]).

use crate::clock::millis;
use axum::Router;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use prometheus::{IntCounterVec, IntGauge};
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tower::ServiceExt as _;

/// How long connections may hold the listener's resources.
#[derive(Debug, Clone, Copy)]
pub struct HttpLimits {
    /// A request head (and a TLS handshake) must arrive within this time of its
    /// first byte.
    pub header_timeout: Duration,
    /// A connection with no request in flight is closed after this long silent.
    pub idle_timeout: Duration,
    /// Most connections open at once; more are closed as they are accepted.
    pub max_connections: usize,
    /// How long shutdown waits for requests in flight.
    pub shutdown_grace: Duration,
}

/// The listener's metrics.
#[derive(Clone)]
pub struct HttpMetrics {
    /// Connections open now.
    pub open: IntGauge,
    /// Connections the server closed, by reason (`shed`, `header_timeout`,
    /// `idle_timeout`, `tls_failed`).
    pub closed: IntCounterVec,
}

/// Raises the soft limit on open files to the hard limit (logged) and returns the
/// soft limit now in force, or None where it cannot be read.
pub fn raise_nofile_limit() -> Option<u64> {
    let (soft, hard) = rlimit::Resource::NOFILE.get().ok()?;
    match rlimit::increase_nofile_limit(hard) {
        Ok(now) => {
            if now != soft {
                tracing::info!(from = soft, to = now, "raised the open-file limit");
            }
            Some(now)
        }
        Err(e) => {
            tracing::warn!(soft, hard, error = %e, "could not raise the open-file limit");
            Some(soft)
        }
    }
}

/// The connection cap actually used: the configured one, kept to half the
/// open-file limit so the store, the device listener and files always have
/// descriptors left.
pub fn effective_max_connections(configured: usize, nofile: Option<u64>) -> usize {
    let by_files = nofile
        .map(|n| usize::try_from(n / 2).unwrap_or(usize::MAX))
        .unwrap_or(usize::MAX);
    configured.min(by_files).max(1)
}

/// What a connection is doing, shared by its I/O and its service.
struct Activity {
    start: Instant,
    in_flight: AtomicUsize,
    /// Milliseconds since `start` when the connection last became idle.
    idle_since: AtomicU64,
    /// Milliseconds since `start` (+1) when bytes arrived while idle; 0 = none.
    head_started: AtomicU64,
}

impl Activity {
    fn new() -> Self {
        Self {
            start: Instant::now(),
            in_flight: AtomicUsize::new(0),
            idle_since: AtomicU64::new(0),
            head_started: AtomicU64::new(0),
        }
    }

    fn now_ms(&self) -> u64 {
        millis(self.start.elapsed())
    }

    fn received(&self) {
        if self.in_flight.load(Ordering::Acquire) == 0 {
            let _ = self.head_started.compare_exchange(
                0,
                self.now_ms().saturating_add(1),
                Ordering::AcqRel,
                Ordering::Relaxed,
            );
        }
    }

    fn begin(&self) {
        self.in_flight.fetch_add(1, Ordering::AcqRel);
        self.head_started.store(0, Ordering::Release);
    }

    fn end(&self) {
        self.idle_since.store(self.now_ms(), Ordering::Release);
        self.in_flight.fetch_sub(1, Ordering::AcqRel);
    }

    /// Why the connection should be closed now, if it should.
    fn expired(&self, limits: &HttpLimits) -> Option<&'static str> {
        if self.in_flight.load(Ordering::Acquire) > 0 {
            return None;
        }
        let now = self.now_ms();
        match self.head_started.load(Ordering::Acquire) {
            0 => (now.saturating_sub(self.idle_since.load(Ordering::Acquire))
                > millis(limits.idle_timeout))
            .then_some("idle_timeout"),
            started => (now.saturating_sub(started - 1) > millis(limits.header_timeout))
                .then_some("header_timeout"),
        }
    }
}

/// A stream that tells its [`Activity`] when bytes arrive.
struct Tracked<S> {
    inner: S,
    activity: Arc<Activity>,
}

impl<S: AsyncRead + Unpin> AsyncRead for Tracked<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let r = Pin::new(&mut self.inner).poll_read(cx, buf);
        if buf.filled().len() > before {
            self.activity.received();
        }
        r
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Tracked<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

/// TLS for the listener from PEM files (certificate chain, private key);
/// offers HTTP/2 and HTTP/1.1 by ALPN.
pub fn tls_acceptor(
    cert: &std::path::Path,
    key: &std::path::Path,
) -> std::io::Result<tokio_rustls::TlsAcceptor> {
    use rustls::pki_types::pem::PemObject as _;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let invalid = |what: &std::path::Path, e: &dyn std::fmt::Display| {
        std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("{}: {e}", what.display()),
        )
    };
    let chain = CertificateDer::pem_file_iter(cert)
        .map_err(|e| invalid(cert, &e))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| invalid(cert, &e))?;
    let key_der = PrivateKeyDer::from_pem_file(key).map_err(|e| invalid(key, &e))?;
    let mut config = rustls::ServerConfig::builder()
        .with_no_client_auth()
        .with_single_cert(chain, key_der)
        .map_err(|e| invalid(cert, &e))?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(tokio_rustls::TlsAcceptor::from(Arc::new(config)))
}

/// When the first certificate of the PEM chain at `cert` stops being valid
/// (Unix seconds), for the expiry metric; `None` when it cannot be read.
pub fn certificate_not_after(cert: &std::path::Path) -> Option<i64> {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject as _;
    let first = CertificateDer::pem_file_iter(cert).ok()?.next()?.ok()?;
    let (_, parsed) = x509_parser::parse_x509_certificate(first.as_ref()).ok()?;
    Some(parsed.validity().not_after.timestamp())
}

/// Serves `app` on `listener` until `shutdown` resolves, then lets requests in
/// flight finish (up to [`HttpLimits::shutdown_grace`]). Each request carries the
/// peer's address as `axum::extract::ConnectInfo<SocketAddr>`.
pub async fn serve(
    listener: tokio::net::TcpListener,
    tls: Option<tokio_rustls::TlsAcceptor>,
    app: Router,
    limits: HttpLimits,
    metrics: HttpMetrics,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let slots = Arc::new(tokio::sync::Semaphore::new(limits.max_connections));
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let mut tasks = tokio::task::JoinSet::new();
    tokio::pin!(shutdown);
    loop {
        let (sock, peer) = tokio::select! {
            () = &mut shutdown => break,
            Some(_) = tasks.join_next(), if !tasks.is_empty() => continue,
            r = listener.accept() => match r {
                Ok(c) => c,
                Err(e) => {
                    // Out of descriptors or a connection reset before accept: wait
                    // a moment rather than spin.
                    tracing::warn!(error = %e, "accepting an HTTP connection failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let Ok(permit) = slots.clone().try_acquire_owned() else {
            metrics.closed.with_label_values(&["shed"]).inc();
            drop(sock);
            continue;
        };
        let _ = sock.set_nodelay(true);
        let (app, tls, metrics, stop) =
            (app.clone(), tls.clone(), metrics.clone(), stop_rx.clone());
        tasks.spawn(async move {
            metrics.open.inc();
            let activity = Arc::new(Activity::new());
            activity.received();
            let io = Tracked {
                inner: sock,
                activity: activity.clone(),
            };
            match tls {
                Some(acceptor) => {
                    match tokio::time::timeout(limits.header_timeout, acceptor.accept(io)).await {
                        Ok(Ok(stream)) => {
                            connection(stream, peer, app, activity, limits, &metrics, stop).await
                        }
                        Ok(Err(_)) => metrics.closed.with_label_values(&["tls_failed"]).inc(),
                        Err(_) => metrics.closed.with_label_values(&["header_timeout"]).inc(),
                    }
                }
                None => connection(io, peer, app, activity, limits, &metrics, stop).await,
            }
            metrics.open.dec();
            drop(permit);
        });
    }
    drop(listener);
    let _ = stop_tx.send(true);
    let _ = tokio::time::timeout(limits.shutdown_grace + Duration::from_secs(1), async {
        while tasks.join_next().await.is_some() {}
    })
    .await;
    tasks.abort_all();
    Ok(())
}

async fn connection<S>(
    io: S,
    peer: SocketAddr,
    app: Router,
    activity: Arc<Activity>,
    limits: HttpLimits,
    metrics: &HttpMetrics,
    mut stop: tokio::sync::watch::Receiver<bool>,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let service = {
        let activity = activity.clone();
        hyper::service::service_fn(move |mut req: hyper::Request<Incoming>| {
            activity.begin();
            req.extensions_mut()
                .insert(axum::extract::ConnectInfo(peer));
            let done = Done(activity.clone());
            let call = app.clone().oneshot(req.map(axum::body::Body::new));
            async move {
                let r = call.await;
                drop(done);
                r
            }
        })
    };
    let mut builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        // The watchdog below keeps the header and idle deadlines apart (hyper's
        // own timer would close idle keep-alive connections at the header deadline).
        .header_read_timeout(None)
        .max_buf_size(64 * 1024);
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_concurrent_streams(256)
        .keep_alive_interval(limits.idle_timeout / 2)
        .keep_alive_timeout(limits.header_timeout);
    let conn = builder.serve_connection(TokioIo::new(io), service);
    tokio::pin!(conn);
    let tick = (limits.header_timeout.min(limits.idle_timeout) / 4)
        .clamp(Duration::from_millis(20), Duration::from_secs(1));
    let mut watchdog = tokio::time::interval(tick);
    watchdog.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = conn.as_mut() => return,
            _ = watchdog.tick() => if let Some(reason) = activity.expired(&limits) {
                metrics.closed.with_label_values(&[reason]).inc();
                return;
            },
            () = async { let _ = stop.wait_for(|s| *s).await; } => {
                conn.as_mut().graceful_shutdown();
                let _ = tokio::time::timeout(limits.shutdown_grace, conn.as_mut()).await;
                return;
            }
        }
    }
}

/// Marks a request finished when dropped (also when the client goes away mid-way).
struct Done(Arc<Activity>);

impl Drop for Done {
    fn drop(&mut self) {
        self.0.end();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_certificate_expiry_is_read_from_the_first_certificate() {
        let mut params = rcgen::CertificateParams::new(vec!["localhost".to_owned()]).unwrap();
        params.not_after = rcgen::date_time_ymd(2031, 1, 2);
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = params.self_signed(&key).unwrap();
        let dir = tempfile::TempDir::new().unwrap();
        let path = dir.path().join("cert.pem");
        std::fs::write(&path, cert.pem()).unwrap();
        assert_eq!(certificate_not_after(&path), Some(1_925_078_400));
        std::fs::write(&path, "not a certificate").unwrap();
        assert_eq!(certificate_not_after(&path), None);
        assert_eq!(certificate_not_after(&dir.path().join("missing.pem")), None);
    }

    #[test]
    fn the_cap_leaves_descriptors_for_everything_else() {
        assert_eq!(effective_max_connections(4096, Some(1024)), 512);
        assert_eq!(effective_max_connections(4096, Some(1_048_576)), 4096);
        assert_eq!(effective_max_connections(4096, None), 4096);
        assert_eq!(effective_max_connections(4096, Some(1)), 1);
    }

    #[test]
    fn deadlines_apply_only_while_no_request_is_in_flight() {
        let limits = HttpLimits {
            header_timeout: Duration::ZERO,
            idle_timeout: Duration::from_secs(3600),
            max_connections: 1,
            shutdown_grace: Duration::ZERO,
        };
        let a = Activity::new();
        assert_eq!(a.expired(&limits), None, "fresh and silent: idle, not yet");
        a.received();
        std::thread::sleep(Duration::from_millis(3));
        assert_eq!(a.expired(&limits), Some("header_timeout"));
        a.begin();
        assert_eq!(a.expired(&limits), None, "a request in flight");
        a.received();
        a.end();
        assert_eq!(a.expired(&limits), None, "the body's bytes start no head");
    }
}
