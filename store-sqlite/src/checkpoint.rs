//! WAL checkpoints off the write path.
//!
//! A checkpoint copies the write-ahead log back into the database file and,
//! unless `synchronous=OFF`, syncs both files: milliseconds of `fsync`. SQLite
//! runs it inside whichever commit crosses `wal_autocheckpoint`, so one write
//! in every few hundred would pay for it. Instead the writer's WAL hook nudges
//! this thread, which runs a `PASSIVE` checkpoint on its own connection while
//! the writer carries on. The writer checkpoints inline only as a backstop,
//! when the log has grown far beyond the nudge threshold.

use std::ffi::c_int;
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender};
use std::time::Duration;

use rusqlite::hooks::Wal;
use rusqlite::wal::CheckpointMode;
use rusqlite::Connection;
use session_store_core::{Error, Result};
use tokio::sync::oneshot;

/// WAL pages after which the writer nudges the checkpointer (SQLite's own
/// default auto-checkpoint size, about 4 MiB).
pub(crate) const NUDGE_PAGES: c_int = 1000;
/// WAL pages after which the writer checkpoints inline (the checkpointer is
/// not keeping up, for example because long reads pin old frames).
pub(crate) const BACKSTOP_PAGES: c_int = 20_000;
/// The checkpointer also runs this often without a nudge, so a quiet
/// database does not keep its last writes in the log indefinitely.
const IDLE_INTERVAL: Duration = Duration::from_secs(1);

/// Installs the WAL hook on the writer connection.
pub(crate) fn install_hook(conn: &mut Connection, nudge: SyncSender<()>) -> Result<()> {
    conn.wal_hook(Some(move |wal: &mut Wal, pages: c_int| {
        if pages >= NUDGE_PAGES {
            // Capacity 1: a pending nudge is enough.
            let _ = nudge.try_send(());
        }
        if pages >= BACKSTOP_PAGES {
            // The commit has happened: an error here must not be reported
            // as the statement's failure, so it is only logged.
            if let Err(e) = wal.checkpoint_v2(CheckpointMode::PASSIVE) {
                tracing::warn!(error = %e, "inline WAL checkpoint failed");
            }
        }
        Ok(())
    }))
    .map_err(crate::store::sqlite_error)
}

/// Starts the checkpointer thread on a connection from `open`. It stops when
/// the writer connection (holding the nudge sender) is closed.
pub(crate) async fn start<O>(open: O, nudges: Receiver<()>) -> Result<()>
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
                if let Err(e) = conn.wal_checkpoint_v2(None::<&str>, CheckpointMode::PASSIVE) {
                    tracing::warn!(error = %e, "WAL checkpoint failed");
                }
            }
        })
        .map_err(Error::backend_permanent)?;
    ready_rx
        .await
        .map_err(|_| Error::backend_permanent("the SQLite checkpoint thread has stopped"))?
}
