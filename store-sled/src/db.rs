//! The open database and its durability machinery: opening a directory
//! safely, namespaces (one [`SledStore`] per tree prefix), the flush policy of
//! [`Durability`], group commit, back-pressure, and the process-wide gate
//! that lets inline (periodic-mode) writers wait for a flush in progress
//! without blocking a runtime worker.

use std::fmt;
use std::fs::{File, OpenOptions};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use tokio::sync::Notify;

use session_store_core::{Error, Result};

use crate::config::{Durability, SledConfig};
use crate::schema::{validate_prefix, TreeNames, SCHEMA_VERSION, SCHEMA_VERSION_KEY};
use crate::store::{SledStore, Trees, BACKEND};

/// With [`Durability::Periodic`], a writer waits for sled's log writes
/// (`Db::flush`, no `fdatasync`) once about this many bytes were written since
/// the last flush: half of sled's 512 KiB log segment, so at most one or two
/// I/O-buffer writes are ever queued on sled's thread pool (see the sled hang
/// documented on [`Durability::Periodic`]).
const PERIODIC_BACKPRESSURE_BYTES: u64 = 256 * 1024;
/// Estimated log bytes of one write besides its values (keys, index
/// entries, sled's framing).
pub(crate) const WRITE_OVERHEAD_BYTES: u64 = 256;

/// Maps a sled error: I/O may be transient, everything else (corruption,
/// unsupported operation, sled bug) is permanent.
pub(crate) fn sled_error(e: sled::Error) -> Error {
    match e {
        sled::Error::Io(_) => Error::backend_retryable(e),
        other => Error::backend_permanent(other),
    }
}

pub(crate) fn io_error(e: std::io::Error) -> Error {
    Error::backend_retryable(e)
}

/// Every `Db::flush` this crate runs, process-wide.
///
/// sled 0.34's concurrency control is one process-wide lock: `Db::flush`
/// holds its read side while it waits for the log writes it covers (a
/// `pwrite` and a `sync_file_range` that waits for the disk), and every
/// transaction takes its write side, so a transaction that starts during
/// any flush of any sled database in the process waits for that flush to
/// finish. Periodic-mode writers, which run their transaction on the
/// calling task, first wait here, asynchronously, for a flush in progress
/// to finish ([`flush_finished`]), so that their transaction does not block
/// a runtime worker behind it.
struct FlushGate {
    /// Flushes in progress.
    active: AtomicUsize,
    /// Notified whenever a flush ends.
    ended: Notify,
}

static FLUSH_GATE: FlushGate = FlushGate {
    active: AtomicUsize::new(0),
    ended: Notify::const_new(),
};

/// A flush in progress, registered in [`FLUSH_GATE`] until dropped.
struct FlushInProgress(());

impl FlushInProgress {
    fn start() -> Self {
        FLUSH_GATE.active.fetch_add(1, Ordering::SeqCst);
        FlushInProgress(())
    }
}

impl Drop for FlushInProgress {
    fn drop(&mut self) {
        FLUSH_GATE.active.fetch_sub(1, Ordering::SeqCst);
        FLUSH_GATE.ended.notify_waiters();
    }
}

/// Waits (asynchronously) until a flush in progress, if any, has ended.
/// Waits for one flush to end, not for a moment without any: under a stream
/// of overlapping flushes (durable writers of another store in the
/// process) a writer still gets its turn, and then waits in sled for at
/// most the remaining flush.
async fn flush_finished() {
    let ended = FLUSH_GATE.ended.notified();
    let mut ended = std::pin::pin!(ended);
    // Registered before the check, so an end between the two is not missed.
    ended.as_mut().enable();
    if FLUSH_GATE.active.load(Ordering::SeqCst) > 0 {
        ended.await;
    }
}

/// Runs blocking sled work off the async runtime's worker threads (on tokio's
/// blocking pool), or inline when there is no tokio runtime.
pub(crate) async fn blocking<T, F>(f: F) -> Result<T>
where
    T: Send + 'static,
    F: FnOnce() -> Result<T> + Send + 'static,
{
    match tokio::runtime::Handle::try_current() {
        Ok(handle) => match handle.spawn_blocking(f).await {
            Ok(out) => out,
            Err(e) if e.is_panic() => Err(Error::backend_permanent(format!(
                "sled operation panicked: {e}"
            ))),
            Err(e) => Err(Error::backend_retryable(e)),
        },
        Err(_) => f(),
    }
}

/// An open sled database: cheap to clone, shared by every [`SledStore`] made
/// from it with [`SledDb::store`] (one per tree prefix).
///
/// Reached from a built store with [`SledStore::db`]: for more namespaces in
/// the same database ([`SledDb::store`]), for application trees of your own
/// ([`SledDb::sled`]), and for tests and benchmarks that inspect sled
/// directly.
#[derive(Clone)]
pub struct SledDb {
    inner: Arc<DbInner>,
}

struct DbInner {
    db: sled::Db,
    /// The directory, or `temporary` for a temporary database without one:
    /// the endpoint named in errors.
    endpoint: String,
    durability: Durability,
    /// The files to `fdatasync` after a flush (none for temporary databases).
    sync: Option<SyncFiles>,
    /// Group commit for [`Durability::EveryWrite`]: writes finished so far,
    /// and how many of them a completed flush covers (under the mutex).
    writes_done: AtomicU64,
    durable_upto: Mutex<u64>,
    /// [`Durability::Periodic`]: estimated bytes written since the last flush.
    unflushed: AtomicU64,
    /// [`Durability::Periodic`]: whether writes run their transaction on the
    /// calling task (the default) rather than on the blocking pool.
    inline_writes: AtomicBool,
}

struct SyncFiles {
    dir: PathBuf,
    log: File,
}

impl fmt::Debug for SledDb {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SledDb")
            .field("endpoint", &self.inner.endpoint)
            .field("durability", &self.inner.durability)
            .finish_non_exhaustive()
    }
}

/// Refuses paths sled should not touch: a non-directory, a non-empty
/// directory without sled's `conf` and `db` files, or, for a temporary
/// database (deleted on drop), any non-empty directory. Reads only.
fn check_path(path: &Path, temporary: bool) -> Result<()> {
    let meta = match std::fs::metadata(path) {
        Ok(meta) => meta,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(io_error(e)),
    };
    if !meta.is_dir() {
        return Err(Error::Config(format!(
            "sled store: {} exists and is not a directory",
            path.display()
        )));
    }
    let mut names = Vec::new();
    for entry in std::fs::read_dir(path).map_err(io_error)? {
        names.push(entry.map_err(io_error)?.file_name());
    }
    let has = |n: &str| names.iter().any(|x| x == n);
    if temporary && !names.is_empty() {
        return Err(Error::Config(format!(
            "sled store: {} is not empty; a temporary database deletes its directory on drop, so it must be new or empty",
            path.display()
        )));
    }
    if names.is_empty() || (has("conf") && has("db")) {
        Ok(())
    } else {
        Err(Error::Config(format!(
            "sled store: {} is a non-empty directory that is not a sled database (no conf and db files); refusing to write into it",
            path.display()
        )))
    }
}

impl SledDb {
    /// Opens (or creates) the database of a validated `config`. Blocking.
    pub(crate) fn open(config: &SledConfig) -> Result<Self> {
        if let Some(path) = &config.path {
            check_path(path, config.temporary)?;
        }
        let mut sled_config = sled::Config::new()
            .cache_capacity(config.cache_capacity)
            .temporary(config.temporary)
            .flush_every_ms(match config.durability {
                Durability::EveryWrite => None,
                Durability::Periodic(every) => Some((every.as_millis() as u64).max(1)),
            });
        if let Some(path) = &config.path {
            sled_config = sled_config.path(path);
        }
        let db = sled_config.open().map_err(sled_error)?;
        let sync = match (&config.path, config.temporary) {
            (Some(dir), false) => {
                let log = OpenOptions::new()
                    .read(true)
                    .write(true)
                    .open(dir.join("db"))
                    .map_err(io_error)?;
                let files = SyncFiles {
                    dir: dir.clone(),
                    log,
                };
                // sled writes `conf` without syncing it; make it and the
                // directory entries of `conf` and `db` durable once.
                File::open(dir.join("conf"))
                    .and_then(|f| f.sync_all())
                    .map_err(io_error)?;
                sync_dir(&files.dir)?;
                Some(files)
            }
            _ => None,
        };
        Ok(SledDb {
            inner: Arc::new(DbInner {
                db,
                endpoint: config.endpoint(),
                durability: config.durability,
                sync,
                writes_done: AtomicU64::new(0),
                durable_upto: Mutex::new(0),
                unflushed: AtomicU64::new(0),
                inline_writes: AtomicBool::new(true),
            }),
        })
    }

    /// The store under `prefix` in this database, creating its trees and
    /// writing the schema version on first use. Blocking (sled calls, plus a
    /// durable flush on first use).
    ///
    /// # Errors
    /// - [`Error::Config`] for an invalid prefix.
    /// - [`Error::SchemaTooNew`] if the namespace was written by a newer
    ///   version of this crate. The version is read before anything is
    ///   created, so no tree is created and no key is written. (Opening the
    ///   database already let sled do what it does on every open:
    ///   preallocate its log segment and write a snapshot file; sled 0.34 has
    ///   no read-only mode.)
    /// - [`Error::Codec`] for an unreadable schema version.
    /// - [`Error::Backend`] for sled failures, naming the backend, the
    ///   operation `open` and the database directory.
    pub fn store(&self, prefix: &str) -> Result<SledStore> {
        self.open_namespace(prefix)
            .map_err(|e| e.context(BACKEND, "open", Some(self.endpoint())))
    }

    fn open_namespace(&self, prefix: &str) -> Result<SledStore> {
        validate_prefix(prefix)?;
        let names = TreeNames::new(prefix);
        let db = &self.inner.db;
        let exists = |name: &str| db.tree_names().iter().any(|n| n == name.as_bytes());
        // Read the version before creating anything: opening a tree creates it.
        if exists(&names.meta) {
            let meta = db.open_tree(&names.meta).map_err(sled_error)?;
            if let Some(v) = meta.get(SCHEMA_VERSION_KEY).map_err(sled_error)? {
                let found = <[u8; 4]>::try_from(v.as_ref())
                    .map(u32::from_be_bytes)
                    .map_err(|_| Error::codec("schema version is not 4 bytes"))?;
                if found > SCHEMA_VERSION {
                    return Err(Error::SchemaTooNew {
                        found: i64::from(found),
                        supported: i64::from(SCHEMA_VERSION),
                    });
                }
            }
        }
        let open = |name: &str| db.open_tree(name).map_err(sled_error);
        let trees = Trees {
            records: open(&names.records)?,
            users: open(&names.users)?,
            expiry: open(&names.expiry)?,
            meta: open(&names.meta)?,
        };
        if trees
            .meta
            .get(SCHEMA_VERSION_KEY)
            .map_err(sled_error)?
            .is_none()
        {
            trees
                .meta
                .insert(SCHEMA_VERSION_KEY, &SCHEMA_VERSION.to_be_bytes())
                .map_err(sled_error)?;
            self.after_write(WRITE_OVERHEAD_BYTES)?;
        }
        Ok(SledStore::new(self.clone(), prefix, trees))
    }

    /// What errors name as the endpoint: the database directory, or
    /// `temporary` for a temporary database in a directory chosen by sled.
    pub(crate) fn endpoint(&self) -> &str {
        &self.inner.endpoint
    }

    /// The underlying sled database, for application trees of your own. Do not
    /// write to this crate's trees (`<prefix>.records`, `.users`, `.expiry`,
    /// `.meta`). With [`Durability::EveryWrite`] your own writes become durable
    /// at the next store write or [`SledDb::flush_blocking`]: sled's periodic
    /// flusher is off in that mode.
    pub fn sled(&self) -> &sled::Db {
        &self.inner.db
    }

    /// The configured flush policy.
    pub fn durability(&self) -> Durability {
        self.inner.durability
    }

    /// Writes every pending change to stable storage (blocking): `Db::flush`
    /// (pwrite and `sync_file_range` in sled 0.34.7) then `fdatasync` of the
    /// log file and of any blob file, which is what actually flushes the
    /// device's write cache. A no-op beyond `Db::flush` for temporary databases.
    ///
    /// # Errors
    /// [`Error::Backend`] for I/O failures, naming the backend, the operation
    /// `flush` and the database directory.
    pub fn flush_blocking(&self) -> Result<()> {
        self.sync_now()
            .map_err(|e| e.context(BACKEND, "flush", Some(self.endpoint())))
    }

    /// [`SledDb::flush_blocking`] without the error context, for the
    /// operations that flush as part of their own work.
    fn sync_now(&self) -> Result<()> {
        self.flush_log()?;
        if let Some(files) = &self.inner.sync {
            files.log.sync_data().map_err(io_error)?;
            sync_blobs(&files.dir)?;
        }
        Ok(())
    }

    /// Back-pressure, in both durability modes: counts `bytes` (estimated
    /// by the caller) written without a durable flush and, once about
    /// [`PERIODIC_BACKPRESSURE_BYTES`] have accumulated, runs `Db::flush`, so
    /// this writer waits for sled's queued log writes. sled has no
    /// back-pressure of its own, and a queue of pending writes on its thread
    /// pool is what deadlocks it.
    ///
    /// Called after every write with [`Durability::Periodic`] (from
    /// [`SledDb::after_write`]), after an activity write (`touch`), and
    /// between the batches of one large write (`delete_all`, cleanup; with
    /// [`Durability::EveryWrite`] the durable flush still follows the whole
    /// write). A touch has no `fdatasync` of its own: with
    /// [`Durability::EveryWrite`] it reaches the disk with the next durable
    /// write's sync (which covers everything committed before it), the next
    /// back-pressure flush, or when the store is flushed or dropped; a crash
    /// before then loses only the touch, which shortens an idle timer.
    /// Create, save, rotate and every delete keep [`SledDb::after_write`].
    /// Touches that nothing flushes pile up sled's queued log writes exactly
    /// as periodic-mode writes do: without this bound they hung the request
    /// benchmark's 64-task load → touch on durable sled (2026-12-04).
    pub(crate) fn backpressure(&self, bytes: u64) -> Result<()> {
        if self.count_unflushed(bytes) {
            self.flush_log()?;
        }
        Ok(())
    }

    /// Counts `bytes` towards the back-pressure bound; true when the bound
    /// was reached, and the caller must flush (the count restarts at zero).
    fn count_unflushed(&self, bytes: u64) -> bool {
        let pending = self.inner.unflushed.fetch_add(bytes, Ordering::SeqCst) + bytes;
        if pending >= PERIODIC_BACKPRESSURE_BYTES {
            self.inner.unflushed.store(0, Ordering::SeqCst);
            true
        } else {
            false
        }
    }

    /// `Db::flush` (blocking), registered in the process-wide flush gate.
    fn flush_log(&self) -> Result<()> {
        let _flushing = FlushInProgress::start();
        self.inner.db.flush().map_err(sled_error)?;
        Ok(())
    }

    /// Whether writes run their transaction on the calling task: with
    /// [`Durability::Periodic`] (unless switched off with
    /// [`SledDb::set_inline_writes`]). See "Where the work runs" on
    /// [`SledStore`].
    pub(crate) fn inline_writes(&self) -> bool {
        matches!(self.inner.durability, Durability::Periodic(_))
            && self.inner.inline_writes.load(Ordering::Relaxed)
    }

    /// Benchmark support: with `false`, periodic-mode writes run on the
    /// blocking pool as with [`Durability::EveryWrite`] (the behaviour
    /// before inline writes), so that both paths can be timed side by side
    /// on one database. No effect with [`Durability::EveryWrite`].
    #[doc(hidden)]
    pub fn set_inline_writes(&self, inline: bool) {
        self.inner.inline_writes.store(inline, Ordering::Relaxed);
    }

    /// Before an inline write's transaction: waits, without blocking the
    /// thread, for a flush in progress to end (see [`FlushGate`]).
    pub(crate) async fn before_inline_write(&self) {
        flush_finished().await;
    }

    /// After an inline write's transaction: counts its `bytes` and, once
    /// the back-pressure bound is reached, runs `Db::flush` on the blocking
    /// pool and waits for it asynchronously. Only the writer that reaches
    /// the bound waits for the flush; writers arriving meanwhile wait in
    /// [`SledDb::before_inline_write`].
    pub(crate) async fn after_inline_write(&self, bytes: u64) -> Result<()> {
        if !self.count_unflushed(bytes) {
            return Ok(());
        }
        // Registered before the hop, so that writers arriving while the
        // flush is being scheduled already wait for it.
        let flushing = FlushInProgress::start();
        let db = self.inner.db.clone();
        blocking(move || {
            let _flushing = flushing;
            db.flush().map_err(sled_error)?;
            Ok(())
        })
        .await
    }

    /// Applies the durability policy after a write has committed in memory:
    /// back-pressure only with [`Durability::Periodic`] (see
    /// `backpressure`); with [`Durability::EveryWrite`] a durable
    /// flush.
    ///
    /// Group commit: concurrent writers share flushes. A writer takes a ticket
    /// after its transaction committed, then waits for the flush lock; if a
    /// flush that started after its ticket already finished, its write is
    /// covered (`Db::flush` writes everything reserved in the log when it is
    /// called) and it returns without another `fdatasync`.
    pub(crate) fn after_write(&self, bytes: u64) -> Result<()> {
        if let Durability::Periodic(_) = self.inner.durability {
            return self.backpressure(bytes);
        }
        let ticket = self.inner.writes_done.fetch_add(1, Ordering::SeqCst) + 1;
        let mut durable = self
            .inner
            .durable_upto
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        if *durable >= ticket {
            return Ok(());
        }
        // Every write with a ticket up to `covers` committed before this flush starts.
        let covers = self.inner.writes_done.load(Ordering::SeqCst);
        self.sync_now()?;
        *durable = covers;
        Ok(())
    }
}

fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir).and_then(|d| d.sync_all()).map_err(io_error)
}

/// `fdatasync`s every blob file (sled writes them without any sync) and the
/// blob directory. Usually there are none: blobs hold only log messages over a
/// quarter of a segment (128 KiB by default).
fn sync_blobs(dir: &Path) -> Result<()> {
    let blobs = dir.join("blobs");
    let entries = match std::fs::read_dir(&blobs) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(io_error(e)),
    };
    let mut any = false;
    for entry in entries {
        let entry = entry.map_err(io_error)?;
        any = true;
        match File::open(entry.path()).and_then(|f| f.sync_data()) {
            Ok(()) => {}
            // Garbage-collected by sled meanwhile.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(io_error(e)),
        }
    }
    if any {
        sync_dir(&blobs)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Touches on a durable (`EveryWrite`) database count towards the
    /// back-pressure bound and flush when they reach it, as periodic-mode
    /// writes do (before, durable-mode touches were never counted, so
    /// nothing bounded sled's queue of log writes behind them).
    #[test]
    fn durable_touches_are_back_pressured() {
        for durability in [
            Durability::EveryWrite,
            Durability::Periodic(std::time::Duration::from_millis(500)),
        ] {
            let db =
                SledDb::open(&SledConfig::temporary().with_durability(durability)).expect("open");
            db.backpressure(1000).expect("touch");
            assert_eq!(
                db.inner.unflushed.load(Ordering::SeqCst),
                1000,
                "{durability:?}: a touch counts"
            );
            db.backpressure(24).expect("batch");
            assert_eq!(db.inner.unflushed.load(Ordering::SeqCst), 1024);
            db.backpressure(PERIODIC_BACKPRESSURE_BYTES)
                .expect("touch at the bound");
            assert_eq!(
                db.inner.unflushed.load(Ordering::SeqCst),
                0,
                "{durability:?}: reaching the bound flushed"
            );
        }
    }
}
