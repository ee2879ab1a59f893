//! The backend trait every store and wrapper implements.
//!
//! # Implementing your own backend
//!
//! ```
//! use session_store_core::{
//!     async_trait, Lookup, MemoryStore, Result, Rotation, ScanCursor, ScanPage, SessionBackend,
//!     SessionRecord, SessionSummary, StorageKey, Timestamp,
//! };
//!
//! /// A backend that delegates to the in-memory store (yours talks to a database).
//! #[derive(Debug, Default)]
//! struct MyStore(MemoryStore);
//!
//! #[async_trait]
//! impl SessionBackend for MyStore {
//!     async fn create(&self, key: &StorageKey, r: &SessionRecord) -> Result<()> { self.0.create(key, r).await }
//!     async fn load(&self, key: &StorageKey, now: Timestamp) -> Result<Option<Lookup>> { self.0.load(key, now).await }
//!     async fn save(&self, key: &StorageKey, r: &SessionRecord, now: Timestamp) -> Result<u64> { self.0.save(key, r, now).await }
//!     async fn touch(&self, key: &StorageKey, idle: Timestamp, seen: Timestamp, now: Timestamp) -> Result<bool> { self.0.touch(key, idle, seen, now).await }
//!     async fn rotate(&self, rot: &Rotation, now: Timestamp) -> Result<u64> { self.0.rotate(rot, now).await }
//!     async fn delete(&self, key: &StorageKey) -> Result<bool> { self.0.delete(key).await }
//!     async fn delete_user(&self, user: &str, except: Option<&StorageKey>, now: Timestamp) -> Result<u64> { self.0.delete_user(user, except, now).await }
//!     async fn list_user(&self, user: &str, now: Timestamp) -> Result<Vec<SessionSummary>> { self.0.list_user(user, now).await }
//!     async fn delete_all(&self) -> Result<()> { self.0.delete_all().await }
//!     async fn cleanup_expired(&self, now: Timestamp, limit: usize) -> Result<u64> { self.0.cleanup_expired(now, limit).await }
//!     async fn scan(&self, cursor: Option<&ScanCursor>, limit: usize) -> Result<ScanPage> { self.0.scan(cursor, limit).await }
//! }
//! ```
//!
//! Then run the conformance suite against it (see the `session-store-conformance` crate).
//!
//! # Wrappers
//!
//! A wrapper (a type that holds another backend and implements
//! [`SessionBackend`] itself, like [`Encrypted`](crate::Encrypted)) must
//! forward **every** method of the trait, including the ones with a default:
//! [`rotation_affinity_bits`](SessionBackend::rotation_affinity_bits) (or
//! rotation fails on Redis Cluster, where a successor must share the
//! predecessor's hash slot) and [`capabilities`](SessionBackend::capabilities)
//! (or the conformance suite checks the wrapper against promises the store
//! beneath it does not make). Our own wrappers put
//! `#[deny(clippy::missing_trait_methods)]` on their `impl` so that a method
//! added to the trait later cannot be silently left at its default.

use std::fmt::Debug;
use std::sync::Arc;

use async_trait::async_trait;

use crate::error::Result;
use crate::record::{Lookup, Rotation, SessionRecord, SessionSummary};
use crate::scan::{ScanCursor, ScanPage};
use crate::time::Timestamp;
use crate::token::StorageKey;

/// What a backend can and cannot do, as reported by
/// [`SessionBackend::capabilities`]; the conformance suite reads it from the
/// store under test.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Capabilities {
    /// `cleanup_expired` really removes expired entries in bounded batches
    /// and reports how many. False for stores whose server expires keys on its
    /// own (Redis): there `cleanup_expired` may report 0.
    pub counted_cleanup: bool,
    /// [`SessionBackend::scan`] is implemented. False for a store that keeps
    /// the trait's default (which answers [`Error::Unsupported`](crate::Error::Unsupported)).
    pub scan: bool,
}

impl Default for Capabilities {
    fn default() -> Self {
        Capabilities {
            counted_cleanup: true,
            scan: true,
        }
    }
}

impl Capabilities {
    /// Everything supported (the in-memory store, SQL stores, sled).
    pub fn full() -> Self {
        Self::default()
    }

    /// Sets [`Capabilities::counted_cleanup`].
    pub fn with_counted_cleanup(mut self, v: bool) -> Self {
        self.counted_cleanup = v;
        self
    }

    /// Sets [`Capabilities::scan`].
    pub fn with_scan(mut self, v: bool) -> Self {
        self.scan = v;
        self
    }
}

/// Storage for sessions, keyed by [`StorageKey`] (a hash of the token).
///
/// Every operation is atomic on its own, except the two bulk deletions,
/// [`delete_user`](SessionBackend::delete_user) and
/// [`delete_all`](SessionBackend::delete_all), which a store may carry out
/// entry by entry (see their contracts: on an error part of the entries may
/// be gone, and calling again finishes the job). Every time-dependent operation takes
/// `now` from the caller (the manager's [`Clock`](crate::Clock)); a backend
/// must judge expiry by that `now`, never by its own clock, so that a manual
/// clock in tests means the same thing on every backend. A backend may
/// additionally expire entries on its own (server-side TTL) once they are
/// expired by their deadlines.
///
/// An entry under a key is either a session ([`SessionRecord`]) or a
/// forwarder ([`Forward`](crate::Forward)) left by a renewal in its grace
/// window. An entry is *live* at `now` when `now < expires_at()` (sessions) or
/// `now < until` (forwarders). An entry may hold any deadlines, an idle
/// deadline past the absolute one included: a session's `expires_at()` is
/// the earlier of the two.
///
/// **User ids** compare exactly, byte for byte, everywhere (the user index,
/// `list_user`, `delete_user`): ids that differ only in case, by a prefix,
/// by trailing spaces or by Unicode normalisation are different users, and
/// no character is a wildcard. A SQL store needs a binary collation and
/// `=`, never `LIKE` or a case- or pad-insensitive column.
///
/// **Versions.** A record at version `u64::MAX` has no next version: `save`
/// and `rotate` of it return [`Error::InvalidInput`](crate::Error::InvalidInput)
/// and write nothing.
///
/// Errors: an unreachable or failing backend returns [`Error::Backend`](crate::Error::Backend),
/// never `Ok(None)`.
#[async_trait]
pub trait SessionBackend: Send + Sync + Debug {
    /// How many leading bits of a rotation successor's storage key must equal
    /// the predecessor's (0 to 16). A clustered store (Redis Cluster) uses this
    /// to keep a session and its successor in one hash slot, so that rotation
    /// stays one atomic script; callers generate successors with
    /// [`SessionToken::generate_with_affinity`](crate::SessionToken::generate_with_affinity).
    /// Default 0: no constraint.
    ///
    /// # Contract
    /// `rotate` may reject a successor that does not share these bits with
    /// [`Error::InvalidInput`](crate::Error::InvalidInput).
    fn rotation_affinity_bits(&self) -> u8 {
        0
    }

    /// What this backend promises beyond the base contract. Default:
    /// [`Capabilities::full`].
    ///
    /// # Contract
    /// Constant for the lifetime of the store; a wrapper reports what the
    /// store beneath it reports unless it changes that behaviour itself.
    fn capabilities(&self) -> Capabilities {
        Capabilities::full()
    }

    /// Inserts `record` under `key`, with the version exactly as given.
    ///
    /// # Contract
    /// - Insert only if no entry (live, expired, session or forwarder) exists
    ///   under `key`; otherwise [`Error::AlreadyExists`](crate::Error::AlreadyExists)
    ///   and nothing changes. Never an overwrite, also when creates of one key
    ///   race: exactly one wins.
    /// - If `record.user_id` is set, the session appears in that user's index.
    async fn create(&self, key: &StorageKey, record: &SessionRecord) -> Result<()>;

    /// Reads the entry under `key`.
    ///
    /// # Contract
    /// - Returns `None` if nothing is stored **or the entry is not live at
    ///   `now`**, whether or not cleanup ran (read-time expiry).
    /// - Returns the record exactly as last written (version included).
    async fn load(&self, key: &StorageKey, now: Timestamp) -> Result<Option<Lookup>>;

    /// Compare-and-swap write: replaces every field of the session under `key`
    /// with `record` and stores version `record.version + 1`, which it returns.
    ///
    /// # Contract
    /// - Writes only if a session live at `now` exists under `key` and its
    ///   stored version equals `record.version`.
    /// - Otherwise (stale version, deleted, rotated, forwarder, expired)
    ///   [`Error::Conflict`](crate::Error::Conflict) and nothing is written:
    ///   **no resurrection** after delete.
    /// - The user index follows a changed `user_id`.
    async fn save(&self, key: &StorageKey, record: &SessionRecord, now: Timestamp) -> Result<u64>;

    /// Activity: moves the idle deadline forward without rewriting data or
    /// changing the version. A touch racing a save never undoes the save:
    /// it updates the two fields in place, never by writing back a record it
    /// read.
    ///
    /// # Contract
    /// - If a session live at `now` exists under `key`: sets
    ///   `idle_deadline = max(stored, min(idle_deadline, absolute_deadline))`
    ///   and `last_seen_at = max(stored, last_seen_at)`; returns `true`.
    /// - Otherwise returns `false` and writes nothing.
    async fn touch(
        &self,
        key: &StorageKey,
        idle_deadline: Timestamp,
        last_seen_at: Timestamp,
        now: Timestamp,
    ) -> Result<bool>;

    /// Atomically replaces `rotation.from` by `rotation.to`.
    ///
    /// # Contract
    /// - If `from` holds no session live at `now` or its version differs from
    ///   `rotation.record.version`: [`Error::Conflict`](crate::Error::Conflict), nothing changes.
    /// - Else if any entry exists under `to`: [`Error::AlreadyExists`](crate::Error::AlreadyExists), nothing changes.
    /// - Else, in one atomic step: `to` holds `rotation.record` with version
    ///   `+ 1` (returned), and `from` is deleted, or becomes a forwarder to
    ///   `to` if `rotation.grace` is set. Afterwards `from` never loads a session.
    /// - The user index follows in the same step: `from` leaves the index of
    ///   the stored record's user, and `to` joins the index of
    ///   `rotation.record.user_id` (which may differ: a login rotation binds a
    ///   user to an anonymous session). A forwarder is never listed.
    /// - Every field of `rotation.record` is stored as given, client metadata
    ///   and empty data included.
    /// - Concurrent rotations of one key: exactly one succeeds.
    async fn rotate(&self, rotation: &Rotation, now: Timestamp) -> Result<u64>;

    /// Deletes whatever is stored under `key`.
    ///
    /// # Contract
    /// Idempotent; returns whether an entry (live or not) was removed. Takes
    /// effect at once; the user index follows.
    async fn delete(&self, key: &StorageKey) -> Result<bool>;

    /// Deletes every session of `user_id`, except the one under `except`.
    ///
    /// # Contract
    /// Removes all of the user's sessions (expired ones too) but `except`;
    /// returns how many of the removed ones were live at `now`. Takes effect
    /// at once: none of them loads afterwards. `except` naming a session of
    /// another user protects nothing and deletes nothing of theirs.
    ///
    /// # Errors
    /// A store may remove the sessions one by one (Redis: one script per
    /// session, their keys lying in different cluster slots). On an error,
    /// some of the sessions may already be gone and the others still load;
    /// the operation is idempotent, so calling it again with the same
    /// arguments finishes the job. Only `Ok` means every one is gone. An
    /// undecodable entry indexed under the user is removed too.
    async fn delete_user(
        &self,
        user_id: &str,
        except: Option<&StorageKey>,
        now: Timestamp,
    ) -> Result<u64>;

    /// Lists the sessions of `user_id` live at `now`.
    ///
    /// # Contract
    /// Only live sessions whose user id equals `user_id` byte for byte,
    /// ordered by `created_at` ascending and, among equal `created_at`, by
    /// storage key ascending (the byte order of [`StorageKey`]'s `Ord`, the
    /// same as the order of its lowercase hex); never by insertion order.
    /// Cost proportional to the user's sessions, not to the store.
    async fn list_user(&self, user_id: &str, now: Timestamp) -> Result<Vec<SessionSummary>>;

    /// Deletes every entry of this store's namespace (admin).
    ///
    /// # Contract
    /// Afterwards nothing loads and every user list is empty.
    ///
    /// # Errors
    /// A store may delete key by key (Redis: `SCAN` and `DEL` per batch;
    /// sled: tree by tree, in batches). On an error part of the namespace may
    /// be gone; calling again finishes the job. Only `Ok` means the
    /// namespace is empty.
    async fn delete_all(&self) -> Result<()>;

    /// Deletes at most `limit` entries that are not live at `now`.
    ///
    /// # Contract
    /// Never removes a live entry; returns the number removed (`<= limit`).
    /// Call again while it returns `limit`. Stores whose server expires keys on
    /// its own may return 0 (see [`Capabilities::counted_cleanup`]).
    async fn cleanup_expired(&self, now: Timestamp, limit: usize) -> Result<u64>;

    /// One page of a walk over every entry of this store's namespace
    /// (sessions and forwarders, live or not), for operators' tools: copying
    /// a store, re-encrypting it, counting it.
    ///
    /// Start with `cursor = None`; pass each page's [`ScanPage::next`] to the
    /// next call until it is `None`.
    ///
    /// # Contract
    /// - **Limit.** A page holds at most `limit` entries and each key at most
    ///   once; it may hold fewer, even none, while `next` is `Some` (a Redis
    ///   page whose keys all belonged to other shapes). `limit == 0` is
    ///   [`Error::InvalidInput`](crate::Error::InvalidInput).
    /// - **Bounded memory.** One call holds about one page (plus, on Redis,
    ///   one server `SCAN` batch carried in the cursor), never the namespace;
    ///   it takes no lock that blocks other operations between calls, so a
    ///   store can be scanned while it serves traffic.
    /// - **Entries as stored.** Each entry is what [`load`](SessionBackend::load)
    ///   would return at an instant during the call, except that entries past
    ///   their deadline are included until cleanup (or a server-side TTL)
    ///   removes them; the caller judges liveness with
    ///   [`ScanEntry::is_live`](crate::ScanEntry::is_live).
    /// - **Under concurrent writes.** Every entry that exists under an
    ///   unchanged key from the first call to the last is returned at least
    ///   once (in some state it held during the scan). Entries created or
    ///   deleted meanwhile may or may not appear. Ordered stores (SQL, sled,
    ///   memory) return each key at most once; **Redis may return a key on
    ///   more than one page** (its `SCAN` guarantee), and the backend does
    ///   not remove such duplicates across pages: callers that count or
    ///   act must tolerate or remove them (copy and re-encryption are
    ///   idempotent per key; counting with a set, or accepting a small
    ///   overcount, is the caller's choice).
    /// - **Cursor.** Opaque; valid for the store that issued it, across
    ///   processes (a resumable walk); a cursor the store cannot read is
    ///   [`Error::InvalidInput`](crate::Error::InvalidInput).
    /// - **Default.** Stores that do not implement it keep this default,
    ///   which answers [`Error::Unsupported`](crate::Error::Unsupported), and
    ///   report [`Capabilities::scan`] `false`.
    async fn scan(&self, cursor: Option<&ScanCursor>, limit: usize) -> Result<ScanPage> {
        let _ = (cursor, limit);
        Err(crate::Error::Unsupported("scan"))
    }
}

macro_rules! forward_backend {
    ($($ty:ty),*) => {$(
        #[async_trait]
        #[deny(clippy::missing_trait_methods)]
        impl<B: SessionBackend + ?Sized> SessionBackend for $ty {
            fn rotation_affinity_bits(&self) -> u8 {
                (**self).rotation_affinity_bits()
            }
            fn capabilities(&self) -> Capabilities {
                (**self).capabilities()
            }
            async fn create(&self, key: &StorageKey, record: &SessionRecord) -> Result<()> {
                (**self).create(key, record).await
            }
            async fn load(&self, key: &StorageKey, now: Timestamp) -> Result<Option<Lookup>> {
                (**self).load(key, now).await
            }
            async fn save(&self, key: &StorageKey, record: &SessionRecord, now: Timestamp) -> Result<u64> {
                (**self).save(key, record, now).await
            }
            async fn touch(&self, key: &StorageKey, idle: Timestamp, seen: Timestamp, now: Timestamp) -> Result<bool> {
                (**self).touch(key, idle, seen, now).await
            }
            async fn rotate(&self, rotation: &Rotation, now: Timestamp) -> Result<u64> {
                (**self).rotate(rotation, now).await
            }
            async fn delete(&self, key: &StorageKey) -> Result<bool> {
                (**self).delete(key).await
            }
            async fn delete_user(&self, user_id: &str, except: Option<&StorageKey>, now: Timestamp) -> Result<u64> {
                (**self).delete_user(user_id, except, now).await
            }
            async fn list_user(&self, user_id: &str, now: Timestamp) -> Result<Vec<SessionSummary>> {
                (**self).list_user(user_id, now).await
            }
            async fn delete_all(&self) -> Result<()> {
                (**self).delete_all().await
            }
            async fn cleanup_expired(&self, now: Timestamp, limit: usize) -> Result<u64> {
                (**self).cleanup_expired(now, limit).await
            }
            async fn scan(&self, cursor: Option<&ScanCursor>, limit: usize) -> Result<ScanPage> {
                (**self).scan(cursor, limit).await
            }
        }
    )*};
}

forward_backend!(Arc<B>, Box<B>);
