//! The [`SessionBackend`] implementation: each operation is one sled
//! transaction over the record tree and both indexes, followed by the
//! database's durability policy ([`SledDb`]).

use std::fmt;
use std::ops::Bound;
use std::sync::Arc;

use async_trait::async_trait;
use session_store_core::scan::{self, ScanCursor, ScanEntry, ScanPage};
use session_store_core::{
    Damage, Error, Forward, Lookup, Result, Rotation, SessionBackend, SessionRecord,
    SessionSummary, StorageKey, Timestamp,
};
use sled::transaction::{
    ConflictableTransactionError, ConflictableTransactionResult, TransactionError,
    TransactionalTree,
};
use sled::{Transactional, Tree};

use crate::db::{blocking, sled_error, SledDb, WRITE_OVERHEAD_BYTES};
use crate::schema::{
    decode_entry as decode, encode_forward, encode_session, encode_time, entry_expires_at,
    expiry_key, parse_expiry_key, parse_user_key, user_key, user_prefix,
};

/// The backend name in every [`Error::Backend`] of this crate.
pub(crate) const BACKEND: &str = "sled";

/// Entries removed per transaction by `cleanup_expired` (bounds the time
/// sled's global transaction lock is held).
const CLEANUP_BATCH: usize = 256;
/// Keys removed per step of `delete_all` (each step is followed by the
/// durability policy).
const CLEAR_BATCH: usize = 1024;

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

/// A session store in a sled database, under one tree prefix.
///
/// Cheap to clone (an `Arc`). Build one with
/// [`SledConfig::build`](crate::SledConfig::build); more namespaces in the
/// same database with [`SledDb::store`] on [`SledStore::db`].
///
/// Every [`Error::Backend`] it returns names the backend (`sled`), the
/// operation (the method name) and the database directory (or `temporary`).
///
/// A call whose future is dropped before it completes may still take effect:
/// writes on the blocking pool run to completion there, and an inline
/// (periodic-mode) write may have committed before the wait for its
/// back-pressure flush; each is one transaction, so it happens entirely or
/// not at all.
///
/// # Where the work runs
/// - `load` and `list_user` read sled inline on the calling task: a sled read
///   is a lock-free tree lookup (about a microsecond), cheaper than any
///   thread hand-off, and it never does I/O for data in the page cache.
/// - With [`Durability::EveryWrite`](crate::Durability::EveryWrite) every
///   write runs on tokio's blocking pool: its cost is the `Db::flush` and
///   `fdatasync` that follow the transaction (milliseconds), which must not
///   run on a runtime worker. They run in the same blocking task, after the
///   transaction has released sled's lock (group commit: see `SledDb`).
/// - With [`Durability::Periodic`](crate::Durability::Periodic) the small
///   writes (create, save, touch, rotate, delete) run their transaction **on
///   the calling task**: it only changes sled's memory (the log is written
///   by sled's threads), so it costs about what the transaction costs,
///   while a hop to the blocking pool and back costs more than the
///   transaction (measured with `examples/sled_write_breakdown.rs`).
///   `delete_user`, `delete_all` and cleanup, whose size has no bound, stay
///   on the blocking pool.
///
/// What an inline periodic-mode transaction can wait for, and for how long:
/// - **Other transactions**: sled 0.34 serialises every multi-tree
///   transaction on one **process-wide** lock. Each holds it for its few
///   sled operations (microseconds); ours are one record and two index
///   entries.
/// - **Flushes**: `Db::flush` holds the read side of that lock while it
///   waits for the log writes it covers (`pwrite` and `sync_file_range`
///   waiting for the disk: milliseconds on a loaded disk). This crate's
///   flushes (back-pressure, durable writes of any store in the process,
///   `flush`) are registered in a process-wide gate, and an inline writer
///   first waits *asynchronously* for a flush in progress to end, so it does
///   not block a worker behind one. A flush that starts in the microseconds
///   between that check and the transaction, or one run by other code on
///   the raw [`sled::Db`], can still hold it up for that flush's duration.
/// - **The back-pressure flush itself** (see
///   [`Durability::Periodic`](crate::Durability::Periodic)) runs on the
///   blocking pool; the writer that reaches the bound waits for it
///   asynchronously, and so do writers arriving meanwhile (as above).
/// - **sled's log segments**: the writer whose transaction fills sled's I/O
///   buffer seals it and queues its write on sled's threads (no waiting);
///   when that buffer also ends a log segment and the file is being
///   truncated (after rewrites freed segments at its end), it waits for the
///   truncation (`set_len` and `fsync`) to get the next segment. This is
///   rare (at most once per 512 KiB segment written, and only while a
///   truncation is pending), and back-pressure keeps sled's queue short so
///   the wait is one truncation, not a queue of writes.
///
/// So a runtime worker is held for microseconds per write, and for a disk
/// operation only in the rare cases above; that trade is what this mode
/// chooses (the same transaction on the blocking pool cost several times
/// more per write, always). Applications that cannot accept any disk wait
/// on a worker use [`Durability::EveryWrite`](crate::Durability::EveryWrite),
/// whose writes all run on the blocking pool.
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

/// The four trees of one namespace (see [`TreeNames`](crate::schema::TreeNames)).
pub(crate) struct Trees {
    pub(crate) records: Tree,
    pub(crate) users: Tree,
    pub(crate) expiry: Tree,
    pub(crate) meta: Tree,
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
        .ok_or(Error::InvalidInput("session version overflow"))
}

impl SledStore {
    /// The store of the namespace `prefix` in `db`, over its opened trees.
    pub(crate) fn new(db: SledDb, prefix: &str, trees: Trees) -> Self {
        let Trees {
            records,
            users,
            expiry,
            meta,
        } = trees;
        SledStore {
            inner: Arc::new(StoreInner {
                db,
                prefix: prefix.to_owned(),
                records,
                users,
                expiry,
                meta,
            }),
        }
    }

    /// The database this store lives in: the way to open more namespaces in
    /// it ([`SledDb::store`]), to reach the raw [`sled::Db`]
    /// ([`SledDb::sled`]) and to flush it ([`SledDb::flush_blocking`]).
    pub fn db(&self) -> &SledDb {
        &self.inner.db
    }

    /// What this store's errors name as the endpoint: the database directory,
    /// or `temporary`.
    fn endpoint(&self) -> &str {
        self.inner.db.endpoint()
    }

    /// The tree-name prefix of this store.
    pub fn prefix(&self) -> &str {
        &self.inner.prefix
    }

    /// Writes every pending change to stable storage, whatever the
    /// [`Durability`](crate::Durability) (see [`SledDb::flush_blocking`]); on
    /// the blocking pool.
    ///
    /// # Errors
    /// [`Error::Backend`] for I/O failures (operation `flush`).
    pub async fn flush(&self) -> Result<()> {
        let db = self.inner.db.clone();
        blocking(move || db.flush_blocking())
            .await
            .map_err(|e| e.context(BACKEND, "flush", Some(self.endpoint())))
    }

    /// Every raw key and value in this store's trees (records, indexes and
    /// meta), for at-rest audits and tests: exactly what a copy of the
    /// database would reveal about this namespace's live state.
    ///
    /// # Errors
    /// [`Error::Backend`] for sled failures (operation `dump_raw`).
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
        .map_err(|e| e.context(BACKEND, "dump_raw", Some(self.endpoint())))
    }

    /// Test support for the conformance suite's corruption checks: writes
    /// under `key` bytes this store never writes as a record: the stored record with
    /// an unknown kind byte, or with `foreign` bytes of another format
    /// altogether. Returns whether an entry changed.
    ///
    /// # Errors
    /// [`Error::Backend`] on storage failures.
    #[doc(hidden)]
    pub async fn damage_raw(&self, key: &StorageKey, foreign: bool) -> Result<bool> {
        let key = *key;
        self.small_write(0, false, move |s| {
            let Some(old) = s.records.get(key.as_bytes()).map_err(sled_error)? else {
                return Ok(false);
            };
            let bytes = if foreign {
                b"GIF89a\x01\x00\x01\x00 foreign bytes".to_vec()
            } else {
                let mut v = old.to_vec();
                v[0] = 0xEE;
                v
            };
            s.records
                .insert(key.as_bytes(), bytes)
                .map_err(sled_error)?;
            Ok(true)
        })
        .await
        .map_err(|e| e.context(BACKEND, "damage_raw", Some(self.endpoint())))
    }

    /// Runs `op` on the blocking pool, then applies the durability policy;
    /// `bytes` estimates the values it writes (see `SledDb::after_write`).
    /// For writes of unbounded size (`delete_user`, `delete_all`, cleanup).
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

    /// A write of one or two entries (create, save, rotate, delete, touch):
    /// with [`Durability::Periodic`](crate::Durability::Periodic) its
    /// transaction runs on the calling task, between an asynchronous wait
    /// for any flush in progress and the back-pressure count (see "Where
    /// the work runs" above); otherwise as [`SledStore::write`], or, for an
    /// `activity` write (touch), on the blocking pool without a flush.
    async fn small_write<T, F>(&self, bytes: usize, activity: bool, op: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&StoreInner) -> Result<T> + Send + 'static,
    {
        let bytes = bytes as u64 + WRITE_OVERHEAD_BYTES;
        let db = &self.inner.db;
        if db.inline_writes() {
            db.before_inline_write().await;
            let out = op(&self.inner)?;
            db.after_inline_write(bytes).await?;
            return Ok(out);
        }
        let inner = self.inner.clone();
        blocking(move || {
            let out = op(&inner)?;
            if activity {
                inner.db.backpressure(bytes)?;
            } else {
                inner.db.after_write(bytes)?;
            }
            Ok(out)
        })
        .await
    }
}

/// Spends a unit of the task's cooperative budget (tokio's, as its own
/// sockets and channels do) after a load: it runs on the calling thread and
/// completes in its first poll, so a task looping over loads would
/// otherwise never give its runtime worker back to other tasks (inline
/// writes already wait on tokio primitives that spend the budget). Outside
/// a tokio runtime it never yields.
async fn cooperate() {
    tokio::task::coop::consume_budget().await;
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

    fn load(&self, key: &StorageKey, now: Timestamp) -> Result<Option<Lookup>> {
        let Some(bytes) = self.records.get(key.as_bytes()).map_err(sled_error)? else {
            return Ok(None);
        };
        let entry = decode(&bytes)?;
        Ok((now < entry_expires_at(&entry)).then_some(entry))
    }

    /// Up to `limit` records after `after`, in key order (sled iterates a
    /// consistent snapshot of each key, without blocking writers).
    fn scan(&self, after: Option<StorageKey>, limit: usize) -> Result<Vec<ScanEntry>> {
        let start = after.map_or(Bound::Unbounded, |k| Bound::Excluded(k.as_bytes().to_vec()));
        self.records
            .range::<Vec<u8>, _>((start, Bound::Unbounded))
            .take(limit)
            .map(|kv| {
                let (k, v) = kv.map_err(sled_error)?;
                Ok(ScanEntry {
                    key: StorageKey::try_from_slice(&k)?,
                    entry: decode(&v)?,
                })
            })
            .collect()
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
            match decode(&bytes) {
                Ok(Lookup::Session(r)) => {
                    if r.is_live(now) && r.user_id.as_deref() == Some(user) {
                        out.push(SessionSummary::of(key, user.to_owned(), &r));
                    }
                }
                Ok(Lookup::Forwarded(_)) => {}
                // Reported, not fatal for the listing: the manager skips it
                // and removes or quarantines it.
                Err(_) => out.push(SessionSummary::damaged(
                    key,
                    user.to_owned(),
                    Damage::Undecodable,
                )),
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
                    .backpressure(keys.len() as u64 * WRITE_OVERHEAD_BYTES)?;
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
                .backpressure(batch.len() as u64 * WRITE_OVERHEAD_BYTES)?;
        }
        Ok(removed as u64)
    }
}

#[async_trait]
impl SessionBackend for SledStore {
    async fn create(&self, key: &StorageKey, record: &SessionRecord) -> Result<()> {
        let (key, record) = (*key, record.clone());
        let bytes = record.data.len() + record.meta.len();
        self.small_write(bytes, false, move |s| s.create(&key, &record))
            .await
            .map_err(|e| e.context(BACKEND, "create", Some(self.endpoint())))
    }

    async fn load(&self, key: &StorageKey, now: Timestamp) -> Result<Option<Lookup>> {
        let out = self
            .inner
            .load(key, now)
            .map_err(|e| e.context(BACKEND, "load", Some(self.endpoint())));
        cooperate().await;
        out
    }

    async fn save(&self, key: &StorageKey, record: &SessionRecord, now: Timestamp) -> Result<u64> {
        let (key, record) = (*key, record.clone());
        let bytes = record.data.len() + record.meta.len();
        self.small_write(bytes, false, move |s| s.save(&key, &record, now))
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
        // The activity class of durability: no sync of its own (see
        // `SledDb::backpressure`).
        self.small_write(0, true, move |s| {
            s.touch(&key, idle_deadline, last_seen_at, now)
        })
        .await
        .map_err(|e| e.context(BACKEND, "touch", Some(self.endpoint())))
    }

    async fn rotate(&self, rotation: &Rotation, now: Timestamp) -> Result<u64> {
        let rotation = rotation.clone();
        let bytes = rotation.record.data.len() + rotation.record.meta.len();
        self.small_write(bytes, false, move |s| s.rotate(&rotation, now))
            .await
            .map_err(|e| e.context(BACKEND, "rotate", Some(self.endpoint())))
    }

    async fn delete(&self, key: &StorageKey) -> Result<bool> {
        let key = *key;
        self.small_write(0, false, move |s| s.delete(&key))
            .await
            .map_err(|e| e.context(BACKEND, "delete", Some(self.endpoint())))
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
            .map_err(|e| e.context(BACKEND, "delete_user", Some(self.endpoint())))
    }

    async fn list_user(&self, user_id: &str, now: Timestamp) -> Result<Vec<SessionSummary>> {
        self.inner
            .list_user(user_id, now)
            .map_err(|e| e.context(BACKEND, "list_user", Some(self.endpoint())))
    }

    async fn delete_all(&self) -> Result<()> {
        self.write(0, |s| s.delete_all())
            .await
            .map_err(|e| e.context(BACKEND, "delete_all", Some(self.endpoint())))
    }

    async fn cleanup_expired(&self, now: Timestamp, limit: usize) -> Result<u64> {
        if limit == 0 {
            return Ok(0);
        }
        self.write(0, move |s| s.cleanup_expired(now, limit))
            .await
            .map_err(|e| e.context(BACKEND, "cleanup_expired", Some(self.endpoint())))
    }

    async fn scan(&self, cursor: Option<&ScanCursor>, limit: usize) -> Result<ScanPage> {
        scan::check_limit(limit)?;
        let after = scan::key_cursor(cursor)?;
        self.inner
            .scan(after, limit)
            .map(|entries| scan::key_page(entries, limit))
            .map_err(|e| e.context(BACKEND, "scan", Some(self.endpoint())))
    }
}
