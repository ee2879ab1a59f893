//! WAL checkpoints: bounded log size without a checkpoint in every commit.
//!
//! A checkpoint copies the write-ahead log back into the database file and,
//! unless `synchronous=OFF`, syncs both files: milliseconds of `fsync`.
//! SQLite's own auto-checkpoint is off on our connections; instead:
//!
//! - The writer's WAL hook records how many frames the log holds after each
//!   commit, and at half the threshold
//!   ([`SqliteConfig::with_wal_checkpoint`](crate::SqliteConfig::with_wal_checkpoint))
//!   nudges the checkpointer thread, which copies what it can (`PASSIVE`) on
//!   its own connection while the writer carries on.
//! - Once the log passes the threshold, the **writer** finishes the job
//!   between two jobs (never inside one): a `PASSIVE` checkpoint on its own
//!   connection, with no write running, backfills every frame the readers no
//!   longer need, usually the few written since the checkpointer's pass. A
//!   log that is wholly backfilled is restarted from its beginning by the
//!   next commit, and truncated to the size limit
//!   ([`SqliteConfig::with_wal_size_limit`](crate::SqliteConfig::with_wal_size_limit),
//!   SQLite's `journal_size_limit`). A checkpoint running on a separate
//!   thread alone cannot do that under sustained writes: new frames arrive
//!   while it copies, so the log is never wholly backfilled and never
//!   restarts (the log grew to 90 MiB for 32 sessions that way).
//! - Past twice the threshold (the checkpointer is slow, for example on a
//!   busy disk) the writer waits for the checkpointer's pass to end before
//!   its own, rather than letting the log grow meanwhile.
//! - Readers hold their snapshot only for one statement, so they cannot pin
//!   the log for long; when one does (a long read from another process),
//!   the writer tries again after another eighth of the threshold.
//! - Once the writer has been idle for
//!   [`SqliteConfig::with_idle_checkpoint`](crate::SqliteConfig::with_idle_checkpoint),
//!   it checkpoints with `TRUNCATE` (waiting at most 10 ms for readers), so a
//!   quiet database keeps no log at all and its file shrinks to the pages in
//!   use.

use std::ffi::c_int;
use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender};
use std::sync::{Arc, Mutex, MutexGuard, TryLockError};
use std::time::Duration;

use rusqlite::hooks::Wal;
use rusqlite::wal::CheckpointMode;
use rusqlite::Connection;
use session_store_core::{Error, Result};
use tokio::sync::oneshot;

use crate::worker::{Db, Upkeep};

/// The checkpointer also runs this often without a nudge, so a quiet
/// database does not keep its last writes in the log when the writer's idle
/// checkpoint is off.
const IDLE_INTERVAL: Duration = Duration::from_secs(1);
/// How long the idle `TRUNCATE` checkpoint waits for readers to move to the
/// newest snapshot before it gives up until the next idle period.
const IDLE_BUSY_WAIT: Duration = Duration::from_millis(10);
/// Longest wait between idle `TRUNCATE` attempts that keep failing
/// (a reader of another process pinning the log), as a multiple of the idle
/// delay.
const IDLE_BACKOFF_MAX: u32 = 64;

/// The writer's view of its log, shared between the WAL hook (inside every
/// commit), the writer's [`Upkeep`] (between jobs) and the checkpointer
/// thread.
#[derive(Clone, Default)]
pub(crate) struct WalFrames {
    frames: Arc<AtomicI32>,
    /// Held by whichever of the checkpointer and the writer is running a
    /// checkpoint, so that the writer can wait for the checkpointer's pass
    /// instead of being refused with `SQLITE_BUSY` while the log grows.
    pass: Arc<Mutex<()>>,
}

impl WalFrames {
    fn get(&self) -> c_int {
        self.frames.load(Ordering::Relaxed)
    }

    fn set(&self, frames: c_int) {
        self.frames.store(frames, Ordering::Relaxed);
    }

    fn pass(&self) -> MutexGuard<'_, ()> {
        self.pass.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn try_pass(&self) -> Option<MutexGuard<'_, ()>> {
        match self.pass.try_lock() {
            Ok(guard) => Some(guard),
            Err(TryLockError::Poisoned(e)) => Some(e.into_inner()),
            Err(TryLockError::WouldBlock) => None,
        }
    }
}

/// Installs the WAL hook on the writer connection: it records the frames in
/// the log after each commit and nudges the checkpointer (`nudge`) when
/// their number crosses `nudge_pages`.
pub(crate) fn install_hook(
    conn: &mut Connection,
    frames: WalFrames,
    nudge: Option<SyncSender<()>>,
    nudge_pages: c_int,
) -> Result<()> {
    let mut before = 0;
    conn.wal_hook(Some(move |_: &mut Wal, pages: c_int| {
        frames.set(pages);
        // Once per crossing: a checkpointer running back to back would hold
        // the checkpoint lock whenever the writer wants it.
        if pages >= nudge_pages && before < nudge_pages {
            if let Some(nudge) = &nudge {
                // Capacity 1: a pending nudge is enough.
                let _ = nudge.try_send(());
            }
        }
        before = pages;
        Ok(())
    }))
    .map_err(crate::store::sqlite_error)
}

/// The writer's checkpoints (see the module docs).
pub(crate) struct WalUpkeep {
    frames: WalFrames,
    /// Frames after which the writer checkpoints between jobs.
    threshold: c_int,
    /// Frames in the log when the last checkpoint attempt ran (0 after a
    /// restart was seen): the next attempt waits for `retry_step` more.
    attempted_at: c_int,
    retry_step: c_int,
    /// `None`: no idle checkpoint.
    idle_after: Option<Duration>,
    /// Consecutive idle checkpoints that could not truncate the log.
    idle_failures: u32,
    /// The connection's busy timeout, restored after an idle checkpoint.
    busy_timeout: Duration,
}

impl WalUpkeep {
    pub(crate) fn new(
        frames: WalFrames,
        threshold: c_int,
        idle_after: Option<Duration>,
        busy_timeout: Duration,
    ) -> Self {
        let threshold = threshold.max(1);
        WalUpkeep {
            frames,
            threshold,
            attempted_at: 0,
            retry_step: (threshold / 8).max(1),
            idle_after,
            idle_failures: 0,
            busy_timeout,
        }
    }
}

impl Upkeep for WalUpkeep {
    fn after_job(&mut self, db: &mut Db) {
        let frames = self.frames.get();
        if frames < self.attempted_at {
            // The log restarted since the last attempt.
            self.attempted_at = 0;
        }
        if frames < self.threshold || frames < self.attempted_at + self.retry_step {
            return;
        }
        // Past twice the threshold the writer waits for a checkpointer pass
        // in progress; below, it leaves it alone and tries again later.
        let pass = if frames >= self.threshold.saturating_mul(2) {
            Some(self.frames.pass())
        } else {
            self.frames.try_pass()
        };
        let Some(_pass) = pass else {
            return;
        };
        self.attempted_at = frames;
        match db
            .conn
            .wal_checkpoint_v2(None::<&str>, CheckpointMode::PASSIVE)
        {
            Ok(_) => {}
            // The checkpointer holds the checkpoint lock: try again later.
            Err(e) if e.sqlite_error_code() == Some(rusqlite::ErrorCode::DatabaseBusy) => {}
            Err(e) => tracing::warn!(error = %e, "WAL checkpoint failed"),
        }
    }

    fn due(&self) -> bool {
        let frames = self.frames.get();
        // As in `after_job`: a log that restarted since the last attempt
        // counts from zero.
        let attempted_at = if frames < self.attempted_at {
            0
        } else {
            self.attempted_at
        };
        frames >= self.threshold && frames >= attempted_at.saturating_add(self.retry_step)
    }

    fn idle_after(&self) -> Option<Duration> {
        let after = self.idle_after?;
        // Nothing written since the log was last truncated.
        if self.frames.get() == 0 {
            return None;
        }
        Some(after.saturating_mul(1 << self.idle_failures.min(IDLE_BACKOFF_MAX.ilog2())))
    }

    fn idle(&mut self, db: &mut Db) {
        let conn = &db.conn;
        let _pass = self.frames.pass();
        let truncated = conn
            .busy_timeout(IDLE_BUSY_WAIT)
            .and_then(|()| conn.wal_checkpoint_v2(None::<&str>, CheckpointMode::TRUNCATE));
        if let Err(e) = conn.busy_timeout(self.busy_timeout.max(Duration::from_millis(1))) {
            tracing::warn!(error = %e, "could not restore the busy timeout");
        }
        match truncated {
            Ok(_) => {
                self.frames.set(0);
                self.attempted_at = 0;
                self.idle_failures = 0;
            }
            Err(e) => {
                if e.sqlite_error_code() != Some(rusqlite::ErrorCode::DatabaseBusy) {
                    tracing::warn!(error = %e, "idle WAL checkpoint failed");
                }
                self.idle_failures = self.idle_failures.saturating_add(1);
            }
        }
    }
}

/// Starts the checkpointer thread on a connection from `open`. It stops when
/// the writer connection (holding the nudge sender) is closed.
pub(crate) async fn start<O>(open: O, nudges: Receiver<()>, shared: WalFrames) -> Result<()>
where
    O: FnOnce() -> Result<Connection> + Send + 'static,
{
    let (ready_tx, ready_rx) = oneshot::channel();
    std::thread::Builder::new()
        .name("session-sqlite-checkpoint".into())
        .spawn(move || {
            let conn = match open() {
                Ok(conn) => {
                    let _ = ready_tx.send(Ok(()));
                    conn
                }
                Err(e) => {
                    let _ = ready_tx.send(Err(e));
                    return;
                }
            };
            loop {
                match nudges.recv_timeout(IDLE_INTERVAL) {
                    Ok(()) | Err(RecvTimeoutError::Timeout) => {}
                    Err(RecvTimeoutError::Disconnected) => return,
                }
                let pass = shared.pass();
                let done = conn.wal_checkpoint_v2(None::<&str>, CheckpointMode::PASSIVE);
                drop(pass);
                match done {
                    Ok(_) => {}
                    // The writer is checkpointing: nothing left for us.
                    Err(e) if e.sqlite_error_code() == Some(rusqlite::ErrorCode::DatabaseBusy) => {}
                    Err(e) => tracing::warn!(error = %e, "WAL checkpoint failed"),
                }
            }
        })
        .map_err(Error::backend_permanent)?;
    ready_rx
        .await
        .map_err(|_| Error::backend_permanent("the SQLite checkpoint thread has stopped"))?
}
