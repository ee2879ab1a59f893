//! [`SqliteStore`]: the [`SessionBackend`] implementation.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use rusqlite::{params, Connection, ErrorCode, Row};
use session_store_core::scan::{self, ScanCursor, ScanEntry, ScanPage};
use session_store_core::{
    Clock, Damage, Error, Forward, Lookup, Result, Rotation, SessionBackend, SessionRecord,
    SessionSummary, StorageKey, SystemClock, Timestamp,
};

use crate::checkpoint;
use crate::cleanup::{spawn_cleanup, CleanupHandle};
use crate::config::{Location, SqliteConfig, Synchronous};
use crate::schema::{self, Sql};
use crate::vacuum;
use crate::worker::{self, Pacer, Queue};

/// Cleanup yields to other queued work for this many times as long as each
/// of its chunks ran: at most a third of the writer's time goes to cleanup
/// while requests are waiting, all of it when none are.
const CLEANUP_YIELD_FACTOR: u32 = 2;

/// A session store on SQLite.
///
/// Cheap to clone (clones share the threads and connections). The worker
/// threads stop, and the connections close, when the last clone is dropped.
///
/// Built by [`SqliteConfig::build`].
///
/// ```no_run
/// # async fn demo() -> session_store_core::Result<()> {
/// use session_store_sqlite::SqliteConfig;
///
/// let store = SqliteConfig::new("/var/lib/app/sessions.db").build().await?;
/// store.migrate().await?;
/// // Purge expired rows every minute, 1000 at a time, until the handle drops.
/// let _cleanup = store.spawn_cleanup(std::time::Duration::from_secs(60), 1000)?;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct SqliteStore {
    inner: Arc<Inner>,
}

struct Inner {
    config: SqliteConfig,
    /// The file path (or `:memory:`), named by every error.
    endpoint: String,
    writer: Queue,
    /// The reader pool, or the writer again when there are no readers.
    readers: Queue,
    /// Paces cleanup chunks and vacuum steps on the writer.
    cleanup_pacer: Arc<Pacer>,
}

impl fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SqliteStore")
            .field("config", &self.inner.config)
            .finish_non_exhaustive()
    }
}

/// The backend name in errors.
pub(crate) const BACKEND: &str = "sqlite";

/// Maps a SQLite error: busy, locked, I/O and similar conditions are
/// retryable; everything else is permanent. The message names the failure,
/// never a bound value.
pub(crate) fn sqlite_error(e: rusqlite::Error) -> Error {
    let retryable = matches!(
        e.sqlite_error_code(),
        Some(
            ErrorCode::DatabaseBusy
                | ErrorCode::DatabaseLocked
                | ErrorCode::SystemIoFailure
                | ErrorCode::DiskFull
                | ErrorCode::OutOfMemory
                | ErrorCode::FileLockingProtocolFailed
        )
    );
    if retryable {
        Error::backend_retryable(e)
    } else {
        Error::backend_permanent(e)
    }
}

fn is_unique_violation(e: &rusqlite::Error) -> bool {
    matches!(e, rusqlite::Error::SqliteFailure(f, _)
        if f.code == ErrorCode::ConstraintViolation
            && (f.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_PRIMARYKEY
                || f.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_UNIQUE))
}

/// Versions are `u64`; SQLite integers are `i64`. The bit pattern is kept,
/// so every `u64` round-trips (only equality is ever asked of it).
fn version_to_sql(v: u64) -> i64 {
    v as i64
}

fn version_from_sql(v: i64) -> u64 {
    v as u64
}

fn next_version(v: u64) -> Result<u64> {
    v.checked_add(1)
        .ok_or(Error::InvalidInput("session version overflow"))
}

fn codec(e: rusqlite::Error) -> Error {
    Error::codec(e)
}

fn ts(ms: i64) -> Timestamp {
    Timestamp::from_millis(ms)
}

fn insert_session(
    conn: &Connection,
    sql: &Sql,
    key: &StorageKey,
    r: &SessionRecord,
    version: u64,
) -> rusqlite::Result<usize> {
    conn.prepare_cached(&sql.insert_session)?.execute(params![
        &key.as_bytes()[..],
        version_to_sql(version),
        r.user_id.as_deref(),
        r.created_at.as_millis(),
        r.last_seen_at.as_millis(),
        r.auth_time.map(Timestamp::as_millis),
        r.idle_deadline.as_millis(),
        r.absolute_deadline.as_millis(),
        &r.meta,
        &r.data,
        r.expires_at().as_millis(),
    ])
}

/// Decodes a `load` row. Stored data that does not fit the layout is a
/// [`Error::Codec`], never a panic.
fn decode_entry(row: &Row<'_>) -> Result<Lookup> {
    let kind: i64 = row.get(0).map_err(codec)?;
    match kind {
        0 => Ok(Lookup::Session(SessionRecord {
            version: version_from_sql(row.get(1).map_err(codec)?),
            user_id: row.get(2).map_err(codec)?,
            created_at: ts(row.get(3).map_err(codec)?),
            last_seen_at: ts(row.get(4).map_err(codec)?),
            auth_time: row.get::<_, Option<i64>>(5).map_err(codec)?.map(ts),
            idle_deadline: ts(row.get(6).map_err(codec)?),
            absolute_deadline: ts(row.get(7).map_err(codec)?),
            meta: row.get(8).map_err(codec)?,
            data: row.get(9).map_err(codec)?,
        })),
        1 => {
            let successor: Vec<u8> = row.get(10).map_err(codec)?;
            Ok(Lookup::Forwarded(Forward {
                successor: StorageKey::try_from_slice(&successor)?,
                sealed_token: row.get(11).map_err(codec)?,
                until: ts(row.get(12).map_err(codec)?),
            }))
        }
        other => Err(Error::codec(format!("unknown entry kind {other}"))),
    }
}

impl SqliteStore {
    /// Opens (creating if missing) the database of a validated `config` and
    /// starts the writer, reader and checkpointer threads; the work of
    /// [`SqliteConfig::build`], which adds the error context.
    pub(crate) async fn open(config: SqliteConfig) -> Result<Self> {
        let sql = Arc::new(Sql::new(&config.table));
        // Writes that sync the disk at every commit stay on the writer thread.
        // Reads may borrow its connection either way (they never sync).
        let writer = Queue::with_reads(
            config.spin_wait(),
            config.inline() && config.synchronous() != Synchronous::Full,
            config.inline(),
            config.busy_timeout(),
        );
        let file_backed = matches!(config.location, Location::File(_));
        let (nudge, nudges) = std::sync::mpsc::sync_channel(1);
        let frames = checkpoint::WalFrames::default();
        let writer_frames = frames.clone();
        let writer_config = config.clone();
        worker::start_with_upkeep(
            "session-sqlite-writer".into(),
            move || {
                schema::open_writer(&writer_config, file_backed.then_some(nudge), writer_frames)
            },
            sql.clone(),
            &writer,
        )
        .await?;
        if file_backed {
            let checkpoint_config = config.clone();
            checkpoint::start(
                move || schema::open_checkpointer(&checkpoint_config),
                nudges,
                frames,
            )
            .await?;
        }
        let readers = if config.readers() == 0 {
            writer.clone()
        } else {
            let readers = Queue::new(config.spin_wait(), config.inline(), config.busy_timeout());
            for i in 0..config.readers() {
                let reader_config = config.clone();
                // On failure the queues drop and the started threads exit.
                worker::start(
                    format!("session-sqlite-reader-{i}"),
                    move || schema::open_reader(&reader_config),
                    sql.clone(),
                    &readers,
                )
                .await?;
            }
            readers
        };
        Ok(SqliteStore {
            inner: Arc::new(Inner {
                endpoint: config.endpoint(),
                config,
                writer,
                readers,
                cleanup_pacer: Arc::new(Pacer::new(CLEANUP_YIELD_FACTOR)),
            }),
        })
    }

    /// Creates the table, its indexes and its schema-version row, or checks
    /// they are current. Idempotent; safe to call at every start.
    ///
    /// # Errors
    /// [`Error::SchemaTooNew`] if a newer library wrote the table;
    /// [`Error::Config`] if a table of that name exists but is not ours;
    /// [`Error::Backend`] on database failure.
    pub async fn migrate(&self) -> Result<()> {
        let auto_vacuum = self.inner.config.auto_vacuum;
        self.inner
            .writer
            .run(move |db| {
                let table = db.sql.table.clone();
                schema::migrate(&mut db.conn, &table, auto_vacuum)
            })
            .await
            .map_err(|e| e.context(BACKEND, "migrate", Some(self.endpoint())))
    }

    /// Rewrites the whole database file (`VACUUM`), switching it to
    /// incremental auto-vacuum if [`SqliteConfig::auto_vacuum`] is on, then
    /// truncates the write-ahead log. For a database created without
    /// auto-vacuum that [`SqliteStore::migrate`] did not convert (larger
    /// than 64 MiB, or holding tables of others), and to compact a file at
    /// a quiet moment.
    ///
    /// Costs: writes are blocked for the whole rewrite (seconds per GiB),
    /// the rewrite needs free disk space about twice the database's size
    /// (a temporary copy and the log), and rows of other tables in the same
    /// file that have no `INTEGER PRIMARY KEY` may get new rowids.
    ///
    /// # Errors
    /// [`Error::Backend`] on database failure (for example a full disk; the
    /// file is then left as it was).
    pub async fn vacuum(&self) -> Result<()> {
        let incremental = self.inner.config.auto_vacuum;
        self.inner
            .writer
            .run(move |db| vacuum::vacuum(&db.conn, incremental))
            .await
            .map_err(|e| e.context(BACKEND, "vacuum", Some(self.endpoint())))
    }

    /// The schema version recorded for this store's table (`None` before
    /// [`SqliteStore::migrate`]).
    pub async fn schema_version(&self) -> Result<Option<i64>> {
        let table = self.inner.config.table.clone();
        self.inner
            .writer
            .run(move |db| schema::schema_version(&db.conn, &table))
            .await
            .map_err(|e| e.context(BACKEND, "schema_version", Some(self.endpoint())))
    }

    /// One paced step of returning free pages (see `vacuum::step`). A
    /// failure is logged, not reported: the rows are gone either way, and
    /// the next cleanup tries again.
    async fn vacuum_step(&self) {
        let step = self
            .inner
            .writer
            .run_paced(&self.inner.cleanup_pacer, |db| vacuum::step(&db.conn))
            .await;
        if let Err(e) = step {
            tracing::warn!(error = %e, "sqlite: returning free pages failed");
        }
    }

    /// The file path, or `:memory:`: the endpoint errors name.
    fn endpoint(&self) -> &str {
        &self.inner.endpoint
    }

    /// The configuration this store was opened with.
    pub fn config(&self) -> &SqliteConfig {
        &self.inner.config
    }

    /// Spawns a task on the current tokio runtime that calls
    /// [`cleanup_expired`](SessionBackend::cleanup_expired) every `every`,
    /// in batches of `batch`, judged by the system clock. It stops when the
    /// returned handle is dropped or [`stopped`](CleanupHandle::stop).
    ///
    /// # Errors
    /// [`Error::Config`] for a zero period or batch, or outside a tokio runtime.
    pub fn spawn_cleanup(&self, every: Duration, batch: usize) -> Result<CleanupHandle> {
        spawn_cleanup(self.clone(), every, batch, Arc::new(SystemClock))
    }

    /// [`SqliteStore::spawn_cleanup`] judged by `clock` (a manual clock in tests).
    ///
    /// # Errors
    /// As [`SqliteStore::spawn_cleanup`].
    pub fn spawn_cleanup_with_clock(
        &self,
        every: Duration,
        batch: usize,
        clock: Arc<dyn Clock>,
    ) -> Result<CleanupHandle> {
        spawn_cleanup(self.clone(), every, batch, clock)
    }

    /// Test support for the conformance suite's corruption checks: writes
    /// under `key` a value of a type this store never writes in that column
    /// (SQLite keeps any type in any column), so that reading the row is
    /// [`Error::Codec`]: text as the creation time, or with `foreign` a blob
    /// as the version. Returns whether an entry changed.
    ///
    /// # Errors
    /// [`Error::Backend`] on storage failures.
    #[doc(hidden)]
    pub async fn damage_raw(&self, key: &StorageKey, foreign: bool) -> Result<bool> {
        let key = *key;
        self.inner
            .writer
            .run(move |db| {
                let set = if foreign {
                    "version = X'DEADBEEF'"
                } else {
                    "created_at = 'not a time'"
                };
                let sql = format!("UPDATE {} SET {set} WHERE key = ?1", db.sql.table);
                let n = db
                    .conn
                    .execute(&sql, [&key.as_bytes()[..]])
                    .map_err(sqlite_error)?;
                Ok(n > 0)
            })
            .await
            .map_err(|e| e.context(BACKEND, "damage_raw", Some(self.endpoint())))
    }

    /// Every byte string stored in the table: keys, user ids, metadata,
    /// data, successors and sealed tokens. For at-rest checks and audits.
    ///
    /// # Errors
    /// [`Error::Backend`] on database failure.
    pub async fn dump_raw(&self) -> Result<Vec<Vec<u8>>> {
        self.inner
            .writer
            .run(|db| {
                let mut stmt = db.conn.prepare_cached(&db.sql.dump).map_err(sqlite_error)?;
                let mut rows = stmt.query([]).map_err(sqlite_error)?;
                let mut out = Vec::new();
                while let Some(row) = rows.next().map_err(sqlite_error)? {
                    for i in 0..6 {
                        match row.get_ref(i).map_err(sqlite_error)? {
                            rusqlite::types::ValueRef::Blob(b) => out.push(b.to_vec()),
                            rusqlite::types::ValueRef::Text(t) => out.push(t.to_vec()),
                            _ => {}
                        }
                    }
                }
                Ok(out)
            })
            .await
            .map_err(|e| e.context(BACKEND, "dump_raw", Some(self.endpoint())))
    }

    /// The raw bytes of the database file and its write-ahead log (each an
    /// entry; a missing file is skipped): everything SQLite keeps on disk,
    /// free pages included. In memory, the same as [`SqliteStore::dump_raw`].
    /// For at-rest checks; read on the writer thread, between writes.
    ///
    /// # Errors
    /// [`Error::Backend`] if a file cannot be read.
    pub async fn dump_files(&self) -> Result<Vec<Vec<u8>>> {
        let Location::File(path) = self.inner.config.location.clone() else {
            return self.dump_raw().await;
        };
        self.inner
            .writer
            .run(move |_| {
                let mut out = Vec::new();
                for suffix in ["", "-wal", "-journal"] {
                    let mut name = path.clone().into_os_string();
                    name.push(suffix);
                    match std::fs::read(&name) {
                        Ok(bytes) => out.push(bytes),
                        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                        Err(e) => return Err(Error::backend_retryable(e)),
                    }
                }
                Ok(out)
            })
            .await
            .map_err(|e| e.context(BACKEND, "dump_files", Some(self.endpoint())))
    }
}

#[async_trait]
impl SessionBackend for SqliteStore {
    async fn create(&self, key: &StorageKey, record: &SessionRecord) -> Result<()> {
        let key = *key;
        let record = record.clone();
        self.inner
            .writer
            .run_fast(move |db| {
                match insert_session(&db.conn, &db.sql, &key, &record, record.version) {
                    Ok(_) => Ok(()),
                    Err(e) if is_unique_violation(&e) => Err(Error::AlreadyExists),
                    Err(e) => Err(sqlite_error(e)),
                }
            })
            .await
            .map_err(|e| e.context(BACKEND, "create", Some(self.endpoint())))
    }

    async fn load(&self, key: &StorageKey, now: Timestamp) -> Result<Option<Lookup>> {
        let key = *key;
        self.inner
            .readers
            .run_read_fast(&self.inner.writer, move |db| {
                let mut stmt = db.conn.prepare_cached(&db.sql.load).map_err(sqlite_error)?;
                let mut rows = stmt
                    .query(params![&key.as_bytes()[..], now.as_millis()])
                    .map_err(sqlite_error)?;
                let Some(row) = rows.next().map_err(sqlite_error)? else {
                    return Ok(None);
                };
                decode_entry(row).map(Some)
            })
            .await
            .map_err(|e| e.context(BACKEND, "load", Some(self.endpoint())))
    }

    async fn save(&self, key: &StorageKey, record: &SessionRecord, now: Timestamp) -> Result<u64> {
        let key = *key;
        let record = record.clone();
        self.inner
            .writer
            .run_fast(move |db| {
                let r = &record;
                let next = next_version(r.version)?;
                let params = params![
                    &key.as_bytes()[..],
                    version_to_sql(r.version),
                    version_to_sql(next),
                    r.user_id.as_deref(),
                    r.created_at.as_millis(),
                    r.last_seen_at.as_millis(),
                    r.auth_time.map(Timestamp::as_millis),
                    r.idle_deadline.as_millis(),
                    r.absolute_deadline.as_millis(),
                    &r.meta,
                    &r.data,
                    r.expires_at().as_millis(),
                    now.as_millis(),
                ];
                // Each statement is a compare-and-swap on its own; the second
                // runs only when the first matched nothing (owner changed, or
                // a conflict that it reports in turn).
                for sql in [&db.sql.save_same_owner, &db.sql.save] {
                    let changed = db
                        .conn
                        .prepare_cached(sql)
                        .and_then(|mut s| s.execute(params))
                        .map_err(sqlite_error)?;
                    if changed == 1 {
                        return Ok(next);
                    }
                }
                Err(Error::Conflict)
            })
            .await
            .map_err(|e| e.context(BACKEND, "save", Some(self.endpoint())))
    }

    async fn touch(
        &self,
        key: &StorageKey,
        idle_deadline: Timestamp,
        last_seen_at: Timestamp,
        now: Timestamp,
    ) -> Result<bool> {
        let key = *key;
        // The activity class of durability: under `synchronous=FULL` the
        // touch commits with `NORMAL` (no `fsync` of its own; it reaches the
        // disk with the next synced commit or checkpoint, and a power loss
        // may lose it, which only shortens an idle timer).
        let relaxed = self.inner.config.synchronous() == Synchronous::Full;
        self.inner
            .writer
            .run_fast(move |db| {
                if relaxed {
                    db.conn
                        .execute_batch("PRAGMA synchronous = NORMAL")
                        .map_err(sqlite_error)?;
                }
                let changed = db
                    .conn
                    .prepare_cached(&db.sql.touch)
                    .and_then(|mut s| {
                        s.execute(params![
                            &key.as_bytes()[..],
                            idle_deadline.as_millis(),
                            last_seen_at.as_millis(),
                            now.as_millis(),
                        ])
                    })
                    .map_err(sqlite_error);
                if relaxed {
                    db.conn
                        .execute_batch("PRAGMA synchronous = FULL")
                        .map_err(sqlite_error)?;
                }
                Ok(changed? == 1)
            })
            .await
            .map_err(|e| e.context(BACKEND, "touch", Some(self.endpoint())))
    }

    async fn rotate(&self, rotation: &Rotation, now: Timestamp) -> Result<u64> {
        let rotation = rotation.clone();
        self.inner
            .writer
            .run_fast(move |db| {
                let rot = &rotation;
                let next = next_version(rot.record.version)?;
                let tx = db
                    .conn
                    .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
                    .map_err(sqlite_error)?;
                // Dropping `tx` on any early return rolls everything back.
                let taken = tx
                    .prepare_cached(&db.sql.take_for_rotation)
                    .and_then(|mut s| {
                        s.execute(params![
                            &rot.from.as_bytes()[..],
                            version_to_sql(rot.record.version),
                            now.as_millis(),
                        ])
                    })
                    .map_err(sqlite_error)?;
                if taken != 1 {
                    return Err(Error::Conflict);
                }
                if rot.to == rot.from {
                    return Err(Error::AlreadyExists);
                }
                match insert_session(&tx, &db.sql, &rot.to, &rot.record, next) {
                    Ok(_) => {}
                    Err(e) if is_unique_violation(&e) => return Err(Error::AlreadyExists),
                    Err(e) => return Err(sqlite_error(e)),
                }
                if let Some(grace) = &rot.grace {
                    tx.prepare_cached(&db.sql.insert_forward)
                        .and_then(|mut s| {
                            s.execute(params![
                                &rot.from.as_bytes()[..],
                                &rot.to.as_bytes()[..],
                                &grace.sealed_token,
                                grace.until.as_millis(),
                            ])
                        })
                        .map_err(sqlite_error)?;
                }
                tx.commit().map_err(sqlite_error)?;
                Ok(next)
            })
            .await
            .map_err(|e| e.context(BACKEND, "rotate", Some(self.endpoint())))
    }

    async fn delete(&self, key: &StorageKey) -> Result<bool> {
        let key = *key;
        self.inner
            .writer
            .run_fast(move |db| {
                let n = db
                    .conn
                    .prepare_cached(&db.sql.delete)
                    .and_then(|mut s| s.execute([&key.as_bytes()[..]]))
                    .map_err(sqlite_error)?;
                Ok(n > 0)
            })
            .await
            .map_err(|e| e.context(BACKEND, "delete", Some(self.endpoint())))
    }

    async fn delete_user(
        &self,
        user_id: &str,
        except: Option<&StorageKey>,
        now: Timestamp,
    ) -> Result<u64> {
        let user = user_id.to_owned();
        let except = except.copied();
        self.inner
            .writer
            .run(move |db| {
                let mut stmt = db
                    .conn
                    .prepare_cached(&db.sql.delete_user)
                    .map_err(sqlite_error)?;
                let except = except.as_ref().map(|k| &k.as_bytes()[..]);
                let mut rows = stmt.query(params![user, except]).map_err(sqlite_error)?;
                let mut live = 0;
                while let Some(row) = rows.next().map_err(sqlite_error)? {
                    let expires_at: i64 = row.get(0).map_err(sqlite_error)?;
                    if now.as_millis() < expires_at {
                        live += 1;
                    }
                }
                Ok(live)
            })
            .await
            .map_err(|e| e.context(BACKEND, "delete_user", Some(self.endpoint())))
    }

    async fn list_user(&self, user_id: &str, now: Timestamp) -> Result<Vec<SessionSummary>> {
        let user = user_id.to_owned();
        self.inner
            .readers
            .run(move |db| {
                let mut stmt = db
                    .conn
                    .prepare_cached(&db.sql.list_user)
                    .map_err(sqlite_error)?;
                let mut rows = stmt
                    .query(params![user, now.as_millis()])
                    .map_err(sqlite_error)?;
                let mut out = Vec::new();
                while let Some(row) = rows.next().map_err(sqlite_error)? {
                    // SQLite keeps any type in any column: a row whose
                    // columns do not read is listed as damaged, not fatal
                    // for the listing (a key that does not read cannot be
                    // named, so that row is left out).
                    let Ok(key) = row
                        .get::<_, Vec<u8>>(0)
                        .map_err(codec)
                        .and_then(|k| StorageKey::try_from_slice(&k))
                    else {
                        tracing::warn!("sqlite: a user-index row with an unreadable key");
                        continue;
                    };
                    let summary = (|| -> Result<SessionSummary> {
                        Ok(SessionSummary {
                            key,
                            user_id: user.clone(),
                            version: version_from_sql(row.get(1).map_err(codec)?),
                            created_at: ts(row.get(2).map_err(codec)?),
                            last_seen_at: ts(row.get(3).map_err(codec)?),
                            auth_time: row.get::<_, Option<i64>>(4).map_err(codec)?.map(ts),
                            idle_deadline: ts(row.get(5).map_err(codec)?),
                            absolute_deadline: ts(row.get(6).map_err(codec)?),
                            meta: row.get(7).map_err(codec)?,
                            damage: None,
                        })
                    })();
                    out.push(summary.unwrap_or_else(|_| {
                        SessionSummary::damaged(key, user.clone(), Damage::Undecodable)
                    }));
                }
                Ok(out)
            })
            .await
            .map_err(|e| e.context(BACKEND, "list_user", Some(self.endpoint())))
    }

    async fn delete_all(&self) -> Result<()> {
        self.inner
            .writer
            .run(|db| {
                db.conn
                    .prepare_cached(&db.sql.delete_all)
                    .and_then(|mut s| s.execute([]))
                    .map_err(sqlite_error)?;
                Ok(())
            })
            .await
            .map_err(|e| e.context(BACKEND, "delete_all", Some(self.endpoint())))
    }

    /// Deletes in chunks of [`SqliteConfig::cleanup_chunk`] rows, each its
    /// own paced writer job: while requests are queued, a chunk waits behind
    /// them until twice its running time has passed since the previous
    /// chunk, so that cleanup takes at most a third of the writer and a
    /// request waits for at most one chunk. With auto-vacuum on, each chunk
    /// is followed by a (paced) step returning free pages to the file
    /// system. A future dropped between chunks leaves the remaining rows for
    /// the next call.
    async fn cleanup_expired(&self, now: Timestamp, limit: usize) -> Result<u64> {
        let chunk = self.inner.config.cleanup_chunk.max(1);
        let vacuum = self.inner.config.auto_vacuum;
        let pacer = &self.inner.cleanup_pacer;
        let mut removed = 0u64;
        let mut left = limit;
        while left > 0 {
            let want = left.min(chunk);
            let rows = i64::try_from(want).unwrap_or(i64::MAX);
            let n = self
                .inner
                .writer
                .run_paced(pacer, move |db| {
                    let n = db
                        .conn
                        .prepare_cached(&db.sql.cleanup)
                        .and_then(|mut s| s.execute(params![now.as_millis(), rows]))
                        .map_err(sqlite_error)?;
                    Ok(n)
                })
                .await
                .map_err(|e| e.context(BACKEND, "cleanup_expired", Some(self.endpoint())))?;
            removed += n as u64;
            left -= n.min(left);
            if vacuum && n > 0 {
                self.vacuum_step().await;
            }
            if n < want {
                break;
            }
        }
        Ok(removed)
    }

    async fn scan(&self, cursor: Option<&ScanCursor>, limit: usize) -> Result<ScanPage> {
        scan::check_limit(limit)?;
        let after = scan::key_cursor(cursor)?;
        let rows = i64::try_from(limit).unwrap_or(i64::MAX);
        let entries = self
            .inner
            .readers
            .run(move |db| {
                let decode = |row: &Row<'_>| -> Result<ScanEntry> {
                    let key: Vec<u8> = row.get(13).map_err(codec)?;
                    Ok(ScanEntry {
                        key: StorageKey::try_from_slice(&key)?,
                        entry: decode_entry(row)?,
                    })
                };
                let mut out = Vec::new();
                match after {
                    None => {
                        let mut stmt = db
                            .conn
                            .prepare_cached(&db.sql.scan_first)
                            .map_err(sqlite_error)?;
                        let mut r = stmt.query(params![rows]).map_err(sqlite_error)?;
                        while let Some(row) = r.next().map_err(sqlite_error)? {
                            out.push(decode(row)?);
                        }
                    }
                    Some(k) => {
                        let mut stmt = db
                            .conn
                            .prepare_cached(&db.sql.scan_after)
                            .map_err(sqlite_error)?;
                        let mut r = stmt
                            .query(params![&k.as_bytes()[..], rows])
                            .map_err(sqlite_error)?;
                        while let Some(row) = r.next().map_err(sqlite_error)? {
                            out.push(decode(row)?);
                        }
                    }
                }
                Ok(out)
            })
            .await
            .map_err(|e| e.context(BACKEND, "scan", Some(self.endpoint())))?;
        Ok(scan::key_page(entries, limit))
    }
}
