//! A periodic cleanup task that stops with its handle.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use session_store_core::{Clock, Error, Result, SessionBackend};
use tokio::sync::{oneshot, watch};
use tokio::task::JoinHandle;

/// Batches one round may run before waiting for the next tick, so that a
/// huge backlog cannot monopolise the writer.
pub const MAX_BATCHES_PER_ROUND: usize = 100;

/// What the cleanup task has done so far.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct CleanupStats {
    /// Completed rounds (one per tick).
    pub rounds: u64,
    /// Entries removed in total.
    pub removed: u64,
    /// Batches that failed (logged, and retried at the next tick).
    pub errors: u64,
}

/// Owns a running cleanup task. Dropping it stops the task (after the batch
/// in flight, if any); [`CleanupHandle::stop`] stops it and waits.
#[must_use = "the cleanup task stops when its handle is dropped"]
pub struct CleanupHandle {
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
    stats: watch::Receiver<CleanupStats>,
}

impl fmt::Debug for CleanupHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CleanupHandle")
            .field("stats", &*self.stats.borrow())
            .finish_non_exhaustive()
    }
}

impl CleanupHandle {
    /// A receiver of the task's [`CleanupStats`], updated after every round;
    /// it reports closed once the task has ended.
    pub fn stats(&self) -> watch::Receiver<CleanupStats> {
        self.stats.clone()
    }

    /// Stops the task and waits until it has ended.
    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            // The task never panics by itself; a cancelled runtime is not our error.
            let _ = task.await;
        }
    }
}

impl Drop for CleanupHandle {
    fn drop(&mut self) {
        // Dropping the sender wakes the task, which returns.
        self.stop.take();
    }
}

/// Spawns a task on the current tokio runtime that, every `every`, removes
/// expired entries of `backend` in batches of `batch` (judged by `clock`),
/// until fewer than `batch` are left or [`MAX_BATCHES_PER_ROUND`] batches ran.
/// Errors are logged and counted; the next tick retries.
///
/// Works with any [`SessionBackend`].
///
/// # Errors
/// [`Error::Config`] for a zero `every` or `batch`, or when called outside
/// a tokio runtime.
pub fn spawn_cleanup<B>(
    backend: B,
    every: Duration,
    batch: usize,
    clock: Arc<dyn Clock>,
) -> Result<CleanupHandle>
where
    B: SessionBackend + 'static,
{
    if every.is_zero() || batch == 0 {
        return Err(Error::Config(
            "cleanup period and batch size must be positive".into(),
        ));
    }
    let runtime = tokio::runtime::Handle::try_current()
        .map_err(|_| Error::Config("spawn_cleanup must be called within a tokio runtime".into()))?;
    let (stop_tx, mut stop_rx) = oneshot::channel::<()>();
    let (stats_tx, stats_rx) = watch::channel(CleanupStats::default());
    let task = runtime.spawn(async move {
        let mut ticks = tokio::time::interval(every);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                biased;
                _ = &mut stop_rx => return,
                _ = ticks.tick() => {}
            }
            let now = clock.now();
            let mut removed = 0;
            let mut failed = false;
            for _ in 0..MAX_BATCHES_PER_ROUND {
                let result = tokio::select! {
                    biased;
                    _ = &mut stop_rx => return,
                    r = backend.cleanup_expired(now, batch) => r,
                };
                match result {
                    Ok(n) => {
                        removed += n;
                        if n < batch as u64 {
                            break;
                        }
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "session cleanup failed");
                        failed = true;
                        break;
                    }
                }
            }
            if removed > 0 {
                tracing::debug!(removed, "expired sessions removed");
            }
            stats_tx.send_modify(|s| {
                s.rounds += 1;
                s.removed += removed;
                s.errors += u64::from(failed);
            });
        }
    });
    Ok(CleanupHandle {
        stop: Some(stop_tx),
        task: Some(task),
        stats: stats_rx,
    })
}
