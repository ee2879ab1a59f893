//! A periodic cleanup task.

use std::sync::Arc;
use std::time::Duration;

use session_store_core::{Clock, Error, Result, SessionBackend};
use tokio::sync::{oneshot, watch};
use tokio::task::JoinHandle;

use crate::store::SledStore;

/// Batches per round at most, so one round never runs unbounded; what is
/// left is removed in the next round.
const MAX_BATCHES_PER_ROUND: usize = 1024;

/// What the cleanup task has done so far.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CleanupStats {
    /// Completed rounds.
    pub rounds: u64,
    /// Entries removed in total.
    pub removed: u64,
    /// Rounds that ended with an error (logged with `tracing`).
    pub errors: u64,
}

/// Controls a task started by [`SledStore::spawn_cleanup`]. The task stops when
/// this handle is dropped or [`CleanupHandle::stop`] is called; a batch already
/// running on the blocking pool finishes first (it is one sled transaction).
#[derive(Debug)]
pub struct CleanupHandle {
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
    stats: watch::Receiver<CleanupStats>,
}

impl CleanupHandle {
    /// The statistics as of the last completed round.
    pub fn stats(&self) -> CleanupStats {
        *self.stats.borrow()
    }

    /// A receiver notified after each round. Its `changed()` returns an error
    /// once the task has ended.
    pub fn subscribe(&self) -> watch::Receiver<CleanupStats> {
        self.stats.clone()
    }

    /// Stops the task and waits until it has ended.
    pub async fn stop(mut self) {
        drop(self.stop.take());
        if let Some(task) = self.task.take() {
            if let Err(e) = task.await {
                tracing::warn!(error = %e, "sled session cleanup task ended abnormally");
            }
        }
    }
}

impl Drop for CleanupHandle {
    fn drop(&mut self) {
        // Dropping the sender wakes the task, which then returns.
        drop(self.stop.take());
    }
}

impl SledStore {
    /// Starts a tokio task that calls
    /// [`cleanup_expired`](SessionBackend::cleanup_expired)`(clock.now(), batch)`
    /// every `every`, repeating within a round while full batches come back
    /// (at most 1024 batches per round). Each batch walks the expiry index
    /// from its start up to `now`, so the cost follows the expired entries,
    /// not the store. Errors are logged and counted; the task keeps going.
    ///
    /// # Errors
    /// [`Error::Config`] when called outside a tokio runtime, or for a zero
    /// `every` or `batch`.
    pub fn spawn_cleanup(
        &self,
        every: Duration,
        batch: usize,
        clock: Arc<dyn Clock>,
    ) -> Result<CleanupHandle> {
        if every.is_zero() || batch == 0 {
            return Err(Error::Config(
                "sled cleanup: interval and batch size must be positive".into(),
            ));
        }
        let runtime = tokio::runtime::Handle::try_current()
            .map_err(|_| Error::Config("sled cleanup: no tokio runtime".into()))?;
        let (stop_tx, mut stop_rx) = oneshot::channel::<()>();
        let (stats_tx, stats_rx) = watch::channel(CleanupStats::default());
        let store = self.clone();
        let task = runtime.spawn(async move {
            let mut ticker = tokio::time::interval(every);
            ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            let mut stats = CleanupStats::default();
            loop {
                tokio::select! {
                    biased;
                    _ = &mut stop_rx => return,
                    _ = ticker.tick() => {}
                }
                for _ in 0..MAX_BATCHES_PER_ROUND {
                    let result = tokio::select! {
                        biased;
                        _ = &mut stop_rx => return,
                        r = store.cleanup_expired(clock.now(), batch) => r,
                    };
                    match result {
                        Ok(n) => {
                            stats.removed += n;
                            if n < batch as u64 {
                                break;
                            }
                        }
                        Err(e) => {
                            stats.errors += 1;
                            tracing::warn!(error = %e, prefix = store.prefix(), "sled session cleanup failed");
                            break;
                        }
                    }
                }
                stats.rounds += 1;
                stats_tx.send_replace(stats);
            }
        });
        Ok(CleanupHandle {
            stop: Some(stop_tx),
            task: Some(task),
            stats: stats_rx,
        })
    }
}
