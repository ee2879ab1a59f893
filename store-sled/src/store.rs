//! The database handle and the [`SessionBackend`] implementation.

use std::fmt;
use std::fs::{File, OpenOptions};
use std::ops::Bound;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use session_store_core::{
    Error, Forward, Lookup, Result, Rotation, SessionBackend, SessionRecord, SessionSummary,
    StorageKey, Timestamp,
};
use sled::transaction::{
    ConflictableTransactionError, ConflictableTransactionResult, TransactionError,
    TransactionalTree,
};
use sled::{Transactional, Tree};

use crate::config::{Durability, SledConfig};
use crate::schema::{
    decode_entry as decode, encode_forward, encode_session, encode_time, entry_expires_at,
    expiry_key, parse_expiry_key, parse_user_key, user_key, user_prefix, validate_prefix,
    TreeNames, SCHEMA_VERSION, SCHEMA_VERSION_KEY,
};

/// Entries removed per transaction by `cleanup_expired` (bounds the time
/// sled's global transaction lock is held).
const CLEANUP_BATCH: usize = 256;
/// With [`Durability::Periodic`], a writer waits for sled's log writes
/// (`Db::flush`, no `fdatasync`) once about this many bytes were written since
/// the last flush: half of sled's 512 KiB log segment, so at most one or two
/// I/O-buffer writes are ever queued on sled's thread pool (see the sled hang
/// documented on [`Durability::Periodic`]).
const PERIODIC_BACKPRESSURE_BYTES: u64 = 256 * 1024;
/// Estimated log bytes of one write besides its values (keys, index
/// entries, sled's framing).
const WRITE_OVERHEAD_BYTES: u64 = 256;
/// Keys removed per step of `delete_all` (each step is followed by the
/// durability policy).
const CLEAR_BATCH: usize = 1024;

/// Maps a sled error: I/O may be transient, everything else (corruption,
/// unsupported operation, sled bug) is permanent.
pub(crate) fn sled_error(e: sled::Error) -> Error {
    match e {
        sled::Error::Io(_) => Error::backend_retryable(e),
        other => Error::backend_permanent(other),
    }
}

fn io_error(e: std::io::Error) -> Error {
    Error::backend_retryable(e)
}

fn tx_error(e: TransactionError<Error>) -> Error {
    match e {
        TransactionError::Abort(e) => e,
        TransactionError::Storage(e) => sled_error(e),
    }
}

type TxResult<T> = ConflictableTransactionResult<T, Error>;

fn abort<T>(e: Error) -> TxResult<T> {
    Err(ConflictableTransactionError::Abort(e))
}

/// Runs blocking sled work off the async runtime's worker threads (on tokio's
/// blocking pool), or inline when there is no tokio runtime.
async fn blocking<T, F>(f: F) -> Result<T>
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
#[derive(Clone)]
pub struct SledDb {
    inner: Arc<DbInner>,
}

struct DbInner {
    db: sled::Db,
    durability: Durability,
    /// The files to `fdatasync` after a flush (none for temporary databases).
    sync: Option<SyncFiles>,
    /// Group commit for [`Durability::EveryWrite`]: writes finished so far,
    /// and how many of them a completed flush covers (under the mutex).
    writes_done: AtomicU64,
    durable_upto: Mutex<u64>,
    /// [`Durability::Periodic`]: estimated bytes written since the last flush.
    unflushed: AtomicU64,
}

struct SyncFiles {
    dir: PathBuf,
    log: File,
}

impl fmt::Debug for SledDb {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SledDb")
            .field("durability", &self.inner.durability)
            .field("dir", &self.inner.sync.as_ref().map(|s| &s.dir))
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
                durability: config.durability,
                sync,
                writes_done: AtomicU64::new(0),
                durable_upto: Mutex::new(0),
                unflushed: AtomicU64::new(0),
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
    ///   database with [`SledConfig::open_db`] already let sled do what it does
    ///   on every open: preallocate its log segment and write a snapshot file;
    ///   sled 0.34 has no read-only mode.)
    /// - [`Error::Codec`] for an unreadable schema version.
    /// - [`Error::Backend`] for sled failures.
    pub fn store(&self, prefix: &str) -> Result<SledStore> {
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
        let store = StoreInner {
            db: self.clone(),
            prefix: prefix.to_owned(),
            records: open(&names.records)?,
            users: open(&names.users)?,
            expiry: open(&names.expiry)?,
            meta: open(&names.meta)?,
        };
        if store
            .meta
            .get(SCHEMA_VERSION_KEY)
            .map_err(sled_error)?
            .is_none()
        {
            store
                .meta
                .insert(SCHEMA_VERSION_KEY, &SCHEMA_VERSION.to_be_bytes())
                .map_err(sled_error)?;
            self.after_write(WRITE_OVERHEAD_BYTES)?;
        }
        Ok(SledStore {
            inner: Arc::new(store),
        })
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
    /// [`Error::Backend`] for I/O failures.
    pub fn flush_blocking(&self) -> Result<()> {
        self.inner.db.flush().map_err(sled_error)?;
        if let Some(files) = &self.inner.sync {
            files.log.sync_data().map_err(io_error)?;
            sync_blobs(&files.dir)?;
        }
        Ok(())
    }

    /// Between the batches of one large write (`delete_all`, cleanup):
    /// back-pressure with [`Durability::Periodic`]; nothing with
    /// [`Durability::EveryWrite`], whose flush follows the whole write.
    fn between_batches(&self, bytes: u64) -> Result<()> {
        match self.inner.durability {
            Durability::Periodic(_) => self.backpressure(bytes),
            Durability::EveryWrite => Ok(()),
        }
    }

    /// [`Durability::Periodic`]: counts `bytes` (estimated by the caller)
    /// and, once about [`PERIODIC_BACKPRESSURE_BYTES`] have accumulated, runs
    /// `Db::flush`, so this writer waits for sled's queued log writes. sled
    /// has no back-pressure of its own, and a queue of pending writes on its
    /// thread pool is what deadlocks it.
    fn backpressure(&self, bytes: u64) -> Result<()> {
        let pending = self.inner.unflushed.fetch_add(bytes, Ordering::SeqCst) + bytes;
        if pending >= PERIODIC_BACKPRESSURE_BYTES {
            self.inner.unflushed.store(0, Ordering::SeqCst);
            self.inner.db.flush().map_err(sled_error)?;
        }
        Ok(())
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
    fn after_write(&self, bytes: u64) -> Result<()> {
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
        self.flush_blocking()?;
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

/// A session store in a sled database, under one tree prefix.
///
/// Cheap to clone (an `Arc`). Open one with [`SledConfig::open`], or several
/// sharing a database with [`SledConfig::open_db`] and [`SledDb::store`].
///
/// A call whose future is dropped before it completes may still take effect:
/// writes run to completion on the blocking pool (each is one transaction, so
/// it happens entirely or not at all).
///
/// # Where the work runs
/// - `load` and `list_user` read sled inline on the calling task: a sled read
///   is a lock-free tree lookup (about a microsecond), cheaper than any
///   thread hand-off, and it never does I/O for data in the page cache.
/// - Every write runs on tokio's blocking pool. In sled 0.34 every
///   multi-tree transaction takes a **process-wide** write lock, and sled's
///   flushes (ours and the periodic flusher's) hold the read side of that
///   lock while they write and sync the log. A transaction can therefore wait
///   for a disk flush; on the blocking pool that wait never stalls a runtime
///   worker. With [`Durability::EveryWrite`] the flush and `fdatasync` run in
///   the same blocking task, after the transaction has released the lock.
#[derive(Clone)]
pub struct SledStore {
    inner: Arc<StoreInner>,
}

struct StoreInner {
    db: SledDb,
    prefix: String,
    records: Tree,
    users: Tree,
    expiry: Tree,
    meta: Tree,
}

impl fmt::Debug for SledStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SledStore")
            .field("prefix", &self.inner.prefix)
            .field("db", &self.inner.db)
            .finish()
    }
}

/// Removes the index entries of `entry` under `key`.
fn unindex(
    users: &TransactionalTree,
    expiry: &TransactionalTree,
    key: &StorageKey,
    entry: &Lookup,
) -> TxResult<()> {
    if let Lookup::Session(SessionRecord {
        user_id: Some(user),
        ..
    }) = entry
    {
        match user_key(user, key) {
            Ok(k) => {
                users.remove(k)?;
            }
            Err(e) => return abort(e),
        }
    }
    expiry.remove(&expiry_key(entry_expires_at(entry), key)[..])?;
    Ok(())
}

/// Pre-encoded writes of one session: value and index keys.
struct Prepared {
    value: Vec<u8>,
    user_key: Option<Vec<u8>>,
    expiry_key: [u8; 40],
}

impl Prepared {
    fn session(key: &StorageKey, r: &SessionRecord) -> Result<Self> {
        Ok(Prepared {
            value: encode_session(r)?,
            user_key: r.user_id.as_deref().map(|u| user_key(u, key)).transpose()?,
            expiry_key: expiry_key(r.expires_at(), key),
        })
    }

    fn forward(key: &StorageKey, f: &Forward) -> Result<Self> {
        Ok(Prepared {
            value: encode_forward(f)?,
            user_key: None,
            expiry_key: expiry_key(f.until, key),
        })
    }

    fn put(
        &self,
        key: &StorageKey,
        records: &TransactionalTree,
        users: &TransactionalTree,
        expiry: &TransactionalTree,
    ) -> TxResult<()> {
        records.insert(&key.as_bytes()[..], self.value.as_slice())?;
        if let Some(k) = &self.user_key {
            users.insert(k.as_slice(), &[][..])?;
        }
        expiry.insert(&self.expiry_key[..], &[][..])?;
        Ok(())
    }
}

/// Decodes inside a transaction: a corrupt value aborts with [`Error::Codec`].
fn decode_tx(bytes: &[u8]) -> TxResult<Lookup> {
    decode(bytes).or_else(abort)
}

fn next_version(v: u64) -> Result<u64> {
    v.checked_add(1)
        .ok_or_else(|| Error::backend_permanent("session version overflow"))
}

impl SledStore {
    /// Opens a store from a configuration (see [`SledConfig::open`]).
    ///
    /// # Errors
    /// As [`SledConfig::open`].
    pub fn open(config: &SledConfig) -> Result<Self> {
        config.open()
    }

    /// The database this store lives in.
    pub fn db(&self) -> &SledDb {
        &self.inner.db
    }

    /// The tree-name prefix of this store.
    pub fn prefix(&self) -> &str {
        &self.inner.prefix
    }

    /// Writes every pending change to stable storage, whatever the
    /// [`Durability`] (see [`SledDb::flush_blocking`]); on the blocking pool.
    ///
    /// # Errors
    /// [`Error::Backend`] for I/O failures.
    pub async fn flush(&self) -> Result<()> {
        let db = self.inner.db.clone();
        blocking(move || db.flush_blocking()).await
    }

    /// Every raw key and value in this store's trees (records, indexes and
    /// meta), for at-rest audits and tests: exactly what a copy of the
    /// database would reveal about this namespace's live state.
    ///
    /// # Errors
    /// [`Error::Backend`] for sled failures.
    pub async fn dump_raw(&self) -> Result<Vec<Vec<u8>>> {
        let inner = self.inner.clone();
        blocking(move || {
            let mut out = Vec::new();
            for tree in [&inner.records, &inner.users, &inner.expiry, &inner.meta] {
                for kv in tree.iter() {
                    let (k, v) = kv.map_err(sled_error)?;
                    out.push(k.to_vec());
                    out.push(v.to_vec());
                }
            }
            Ok(out)
        })
        .await
    }

    /// Runs `op` on the blocking pool, then applies the durability policy;
    /// `bytes` estimates the values it writes (see `SledDb::after_write`).
    async fn write<T, F>(&self, bytes: usize, op: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&StoreInner) -> Result<T> + Send + 'static,
    {
        let inner = self.inner.clone();
        blocking(move || {
            let out = op(&inner)?;
            inner.db.after_write(bytes as u64 + WRITE_OVERHEAD_BYTES)?;
            Ok(out)
        })
        .await
    }
}

impl StoreInner {
    fn trees(&self) -> (&Tree, &Tree, &Tree) {
        (&self.records, &self.users, &self.expiry)
    }

    fn create(&self, key: &StorageKey, record: &SessionRecord) -> Result<()> {
        let new = Prepared::session(key, record)?;
        self.trees()
            .transaction(|(records, users, expiry)| {
                if records.get(key.as_bytes())?.is_some() {
                    return abort(Error::AlreadyExists);
                }
                new.put(key, records, users, expiry)
            })
            .map_err(tx_error)
    }

    fn save(&self, key: &StorageKey, record: &SessionRecord, now: Timestamp) -> Result<u64> {
        let mut next = record.clone();
        next.version = next_version(record.version)?;
        let new = Prepared::session(key, &next)?;
        self.trees()
            .transaction(|(records, users, expiry)| {
                let Some(bytes) = records.get(key.as_bytes())? else {
                    return abort(Error::Conflict);
                };
                let stored = decode_tx(&bytes)?;
                match &stored {
                    Lookup::Session(s) if s.is_live(now) && s.version == record.version => {}
                    _ => return abort(Error::Conflict),
                }
                unindex(users, expiry, key, &stored)?;
                new.put(key, records, users, expiry)
            })
            .map_err(tx_error)?;
        Ok(next.version)
    }

    fn touch(
        &self,
        key: &StorageKey,
        idle_deadline: Timestamp,
        last_seen_at: Timestamp,
        now: Timestamp,
    ) -> Result<bool> {
        (&self.records, &self.expiry)
            .transaction(|(records, expiry)| {
                let Some(bytes) = records.get(key.as_bytes())? else {
                    return Ok(false);
                };
                let Lookup::Session(stored) = decode_tx(&bytes)? else {
                    return Ok(false);
                };
                if !stored.is_live(now) {
                    return Ok(false);
                }
                let mut next = stored.clone();
                next.idle_deadline = next
                    .idle_deadline
                    .max(idle_deadline.min(next.absolute_deadline));
                next.last_seen_at = next.last_seen_at.max(last_seen_at);
                if next == stored {
                    return Ok(true);
                }
                let value = encode_session(&next).or_else(abort)?;
                records.insert(&key.as_bytes()[..], value)?;
                if next.expires_at() != stored.expires_at() {
                    expiry.remove(&expiry_key(stored.expires_at(), key)[..])?;
                    expiry.insert(&expiry_key(next.expires_at(), key)[..], &[][..])?;
                }
                Ok(true)
            })
            .map_err(tx_error)
    }

    fn rotate(&self, rotation: &Rotation, now: Timestamp) -> Result<u64> {
        let mut next = rotation.record.clone();
        next.version = next_version(rotation.record.version)?;
        let new = Prepared::session(&rotation.to, &next)?;
        let forward = rotation
            .grace
            .as_ref()
            .map(|g| {
                Prepared::forward(
                    &rotation.from,
                    &Forward {
                        successor: rotation.to,
                        sealed_token: g.sealed_token.clone(),
                        until: g.until,
                    },
                )
            })
            .transpose()?;
        let (from, to) = (&rotation.from, &rotation.to);
        self.trees()
            .transaction(|(records, users, expiry)| {
                let Some(bytes) = records.get(from.as_bytes())? else {
                    return abort(Error::Conflict);
                };
                let stored = decode_tx(&bytes)?;
                match &stored {
                    Lookup::Session(s)
                        if s.is_live(now) && s.version == rotation.record.version => {}
                    _ => return abort(Error::Conflict),
                }
                if records.get(to.as_bytes())?.is_some() {
                    return abort(Error::AlreadyExists);
                }
                records.remove(&from.as_bytes()[..])?;
                unindex(users, expiry, from, &stored)?;
                new.put(to, records, users, expiry)?;
                if let Some(forward) = &forward {
                    forward.put(from, records, users, expiry)?;
                }
                Ok(())
            })
            .map_err(tx_error)?;
        Ok(next.version)
    }

    fn delete(&self, key: &StorageKey) -> Result<bool> {
        self.trees()
            .transaction(|(records, users, expiry)| {
                let Some(bytes) = records.remove(&key.as_bytes()[..])? else {
                    return Ok(false);
                };
                // A corrupt entry is still removed; its index entries (if any)
                // become stale, and every index reader skips stale entries.
                if let Ok(entry) = decode(&bytes) {
                    unindex(users, expiry, key, &entry)?;
                }
                Ok(true)
            })
            .map_err(tx_error)
    }

    fn user_keys(&self, user: &str) -> Result<Vec<StorageKey>> {
        let prefix = user_prefix(user)?;
        let mut keys = Vec::new();
        for k in self.users.scan_prefix(&prefix).keys() {
            keys.push(parse_user_key(&k.map_err(sled_error)?, prefix.len())?);
        }
        Ok(keys)
    }

    fn delete_user(&self, user: &str, except: Option<&StorageKey>, now: Timestamp) -> Result<u64> {
        let keys: Vec<StorageKey> = self
            .user_keys(user)?
            .into_iter()
            .filter(|k| Some(k) != except)
            .collect();
        if keys.is_empty() {
            return Ok(0);
        }
        let index_keys = keys
            .iter()
            .map(|k| user_key(user, k))
            .collect::<Result<Vec<_>>>()?;
        self.trees()
            .transaction(|(records, users, expiry)| {
                let mut live = 0;
                for (key, index_key) in keys.iter().zip(&index_keys) {
                    users.remove(index_key.as_slice())?;
                    let Some(bytes) = records.get(key.as_bytes())? else {
                        continue; // stale index entry
                    };
                    match decode(&bytes) {
                        Ok(Lookup::Session(s)) if s.user_id.as_deref() == Some(user) => {
                            records.remove(&key.as_bytes()[..])?;
                            expiry.remove(&expiry_key(s.expires_at(), key)[..])?;
                            if s.is_live(now) {
                                live += 1;
                            }
                        }
                        // Stale index entry: the key now holds something else.
                        Ok(_) => {}
                        // Revocation errs on the side of removal: a corrupt
                        // record indexed under this user can never load anyway.
                        Err(_) => {
                            records.remove(&key.as_bytes()[..])?;
                        }
                    }
                }
                Ok(live)
            })
            .map_err(tx_error)
    }

    fn list_user(&self, user: &str, now: Timestamp) -> Result<Vec<SessionSummary>> {
        let mut out = Vec::new();
        for key in self.user_keys(user)? {
            let Some(bytes) = self.records.get(key.as_bytes()).map_err(sled_error)? else {
                continue;
            };
            if let Lookup::Session(r) = decode(&bytes)? {
                if r.is_live(now) && r.user_id.as_deref() == Some(user) {
                    out.push(SessionSummary::of(key, user.to_owned(), &r));
                }
            }
        }
        out.sort_by_key(|a| (a.created_at, a.key));
        Ok(out)
    }

    fn delete_all(&self) -> Result<()> {
        // `Tree::clear` is key by key, not atomic. Clearing the indexes first
        // and the records last means a write racing with it can only leave a
        // stale index entry (which every index reader skips), never a record
        // missing from the user index (which `delete_user` would then miss).
        // Removed in batches, each followed by the durability policy, so a
        // large clear never queues more log writes than one batch.
        for tree in [&self.users, &self.expiry, &self.records] {
            loop {
                let mut keys = Vec::with_capacity(CLEAR_BATCH);
                for k in tree.iter().keys().take(CLEAR_BATCH) {
                    keys.push(k.map_err(sled_error)?);
                }
                if keys.is_empty() {
                    break;
                }
                for k in &keys {
                    tree.remove(k).map_err(sled_error)?;
                }
                self.db
                    .between_batches(keys.len() as u64 * WRITE_OVERHEAD_BYTES)?;
            }
        }
        Ok(())
    }

    fn cleanup_expired(&self, now: Timestamp, limit: usize) -> Result<u64> {
        // Expiry keys of entries expired at `now` (expires_at <= now) sort
        // before the 8-byte encoding of `now + 1`.
        let end = match now.as_millis().checked_add(1) {
            Some(next) => Bound::Excluded(encode_time(Timestamp::from_millis(next)).to_vec()),
            None => Bound::Unbounded,
        };
        let mut start: Bound<Vec<u8>> = Bound::Unbounded;
        let mut removed: usize = 0;
        while removed < limit {
            let want = (limit - removed).min(CLEANUP_BATCH);
            let mut batch = Vec::with_capacity(want);
            for k in self
                .expiry
                .range::<Vec<u8>, _>((start.clone(), end.clone()))
                .keys()
                .take(want)
            {
                let k = k.map_err(sled_error)?;
                let (at, key) = parse_expiry_key(&k)?;
                batch.push((k, at, key));
            }
            let Some((last, _, _)) = batch.last() else {
                break;
            };
            start = Bound::Excluded(last.to_vec());
            let n = self
                .trees()
                .transaction(|(records, users, expiry)| {
                    let mut n = 0;
                    for (index_key, at, key) in &batch {
                        let Some(bytes) = records.get(key.as_bytes())? else {
                            expiry.remove(index_key)?; // stale
                            continue;
                        };
                        // A corrupt record is left alone: it cannot be judged.
                        let Ok(entry) = decode(&bytes) else { continue };
                        let expires_at = entry_expires_at(&entry);
                        if expires_at != *at {
                            expiry.remove(index_key)?; // stale
                        } else if expires_at <= now {
                            records.remove(&key.as_bytes()[..])?;
                            unindex(users, expiry, key, &entry)?;
                            n += 1;
                        }
                    }
                    Ok(n)
                })
                .map_err(tx_error)?;
            removed += n;
            self.db
                .between_batches(batch.len() as u64 * WRITE_OVERHEAD_BYTES)?;
        }
        Ok(removed as u64)
    }
}

#[async_trait]
impl SessionBackend for SledStore {
    async fn create(&self, key: &StorageKey, record: &SessionRecord) -> Result<()> {
        let (key, record) = (*key, record.clone());
        let bytes = record.data.len() + record.meta.len();
        self.write(bytes, move |s| s.create(&key, &record)).await
    }

    async fn load(&self, key: &StorageKey, now: Timestamp) -> Result<Option<Lookup>> {
        let Some(bytes) = self.inner.records.get(key.as_bytes()).map_err(sled_error)? else {
            return Ok(None);
        };
        let entry = decode(&bytes)?;
        Ok((now < entry_expires_at(&entry)).then_some(entry))
    }

    async fn save(&self, key: &StorageKey, record: &SessionRecord, now: Timestamp) -> Result<u64> {
        let (key, record) = (*key, record.clone());
        let bytes = record.data.len() + record.meta.len();
        self.write(bytes, move |s| s.save(&key, &record, now)).await
    }

    async fn touch(
        &self,
        key: &StorageKey,
        idle_deadline: Timestamp,
        last_seen_at: Timestamp,
        now: Timestamp,
    ) -> Result<bool> {
        let key = *key;
        self.write(0, move |s| s.touch(&key, idle_deadline, last_seen_at, now))
            .await
    }

    async fn rotate(&self, rotation: &Rotation, now: Timestamp) -> Result<u64> {
        let rotation = rotation.clone();
        let bytes = rotation.record.data.len() + rotation.record.meta.len();
        self.write(bytes, move |s| s.rotate(&rotation, now)).await
    }

    async fn delete(&self, key: &StorageKey) -> Result<bool> {
        let key = *key;
        self.write(0, move |s| s.delete(&key)).await
    }

    async fn delete_user(
        &self,
        user_id: &str,
        except: Option<&StorageKey>,
        now: Timestamp,
    ) -> Result<u64> {
        let (user, except) = (user_id.to_owned(), except.copied());
        self.write(0, move |s| s.delete_user(&user, except.as_ref(), now))
            .await
    }

    async fn list_user(&self, user_id: &str, now: Timestamp) -> Result<Vec<SessionSummary>> {
        self.inner.list_user(user_id, now)
    }

    async fn delete_all(&self) -> Result<()> {
        self.write(0, |s| s.delete_all()).await
    }

    async fn cleanup_expired(&self, now: Timestamp, limit: usize) -> Result<u64> {
        if limit == 0 {
            return Ok(0);
        }
        self.write(0, move |s| s.cleanup_expired(now, limit)).await
    }
}
