//! The server's background tasks as one supervised whole: every task is spawned
//! through a [`Supervisor`], which notices a task that ends or panics while the
//! server runs (logged at error and counted), stops them all on shutdown (one
//! cancellation token) and waits, bounded, for the ones that drain.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// Spawns, watches and stops the server's background tasks.
#[derive(Clone, Default)]
pub struct Supervisor {
    tracker: TaskTracker,
    token: CancellationToken,
    died: Arc<AtomicU64>,
    aborts: Arc<parking_lot::Mutex<Vec<tokio::task::AbortHandle>>>,
}

impl Supervisor {
    /// A supervisor with nothing running.
    pub fn new() -> Self {
        Self::default()
    }

    /// Fires when shutdown begins; tasks that drain wait on it.
    pub fn token(&self) -> CancellationToken {
        self.token.clone()
    }

    /// Background tasks that ended or panicked before shutdown.
    pub fn died(&self) -> u64 {
        self.died.load(Ordering::Relaxed)
    }

    /// Runs `task` until shutdown, which drops it at its next await point. A task
    /// that returns or panics before then is a fault: logged and counted.
    pub fn spawn(&self, name: &'static str, task: impl Future<Output = ()> + Send + 'static) {
        let token = self.token.clone();
        self.watch(name, async move {
            tokio::select! {
                () = token.cancelled() => {}
                () = task => {}
            }
        });
    }

    /// Runs `task`, which stops by itself once [`Supervisor::token`] fires (it
    /// drains: ends sessions, flushes); shutdown waits for it, bounded.
    pub fn spawn_draining(
        &self,
        name: &'static str,
        task: impl Future<Output = ()> + Send + 'static,
    ) {
        self.watch(name, task);
    }

    /// Watches a task spawned elsewhere (it returns its own handle) like
    /// [`Supervisor::spawn`]: aborted at shutdown, a fault if it ends before.
    pub fn adopt(&self, name: &'static str, handle: tokio::task::JoinHandle<()>) {
        let abort = handle.abort_handle();
        let token = self.token.clone();
        self.spawn(name, async move {
            struct AbortOnDrop(tokio::task::AbortHandle);
            impl Drop for AbortOnDrop {
                fn drop(&mut self) {
                    self.0.abort();
                }
            }
            let _guard = AbortOnDrop(abort);
            let _ = handle.await;
            let _ = token;
        });
    }

    fn watch(&self, name: &'static str, task: impl Future<Output = ()> + Send + 'static) {
        let handle = tokio::spawn(task);
        {
            let mut a = self.aborts.lock();
            a.push(handle.abort_handle());
        }
        let (token, died) = (self.token.clone(), self.died.clone());
        self.tracker.spawn(async move {
            let outcome = handle.await;
            let running = !token.is_cancelled();
            match outcome {
                Err(e) if e.is_panic() => {
                    died.fetch_add(1, Ordering::Relaxed);
                    tracing::error!(task = name, "background task panicked");
                }
                _ if running => {
                    died.fetch_add(1, Ordering::Relaxed);
                    tracing::error!(task = name, "background task ended while the server runs");
                }
                _ => {}
            }
        });
    }

    /// Signals shutdown and waits up to `grace` for every task to end; what is
    /// still running after that is aborted. Whether all ended in time.
    pub async fn shutdown(&self, grace: Duration) -> bool {
        self.token.cancel();
        self.tracker.close();
        if tokio::time::timeout(grace, self.tracker.wait())
            .await
            .is_ok()
        {
            return true;
        }
        {
            let a = self.aborts.lock();
            a.iter().for_each(tokio::task::AbortHandle::abort);
        }
        self.tracker.wait().await;
        false
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[tokio::test]
    async fn a_task_that_dies_is_noticed_and_shutdown_stops_the_rest() {
        let s = Supervisor::new();
        s.spawn("forever", std::future::pending());
        s.spawn("quits", async {});
        s.spawn("panics", async { panic!("boom") });
        let t = s.token();
        let drained = Arc::new(AtomicU64::new(0));
        let d = drained.clone();
        s.spawn_draining("drains", async move {
            t.cancelled().await;
            d.store(1, Ordering::Relaxed);
        });
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while s.died() < 2 {
            assert!(std::time::Instant::now() < deadline, "deaths not noticed");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        assert!(s.shutdown(Duration::from_secs(5)).await, "all stop in time");
        assert_eq!(s.died(), 2, "stopping at shutdown is not a death");
        assert_eq!(
            drained.load(Ordering::Relaxed),
            1,
            "the draining task ran to its end"
        );
    }

    #[tokio::test]
    async fn a_task_that_does_not_drain_in_time_is_aborted() {
        let s = Supervisor::new();
        s.spawn_draining("stuck", std::future::pending());
        assert!(!s.shutdown(Duration::from_millis(50)).await);
    }
}
