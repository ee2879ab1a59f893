//! The `tower_sessions::SessionStore` implementation.

use std::collections::hash_map::RandomState;
use std::fmt;
use std::hash::BuildHasher;
use std::sync::Arc;

use async_trait::async_trait;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use serde_json::Value;
use session_store_core::{
    AdapterConfig, Clock, Error, Lookup, SessionBackend, SessionRecord, SessionSummary, StorageKey,
    SystemClock, Timestamp,
};
use sha2::{Digest, Sha256};
use time::OffsetDateTime;
use tower_sessions_core::session::{Id, Record};
use tower_sessions_core::session_store::{self, ExpiredDeletion, SessionStore};

use crate::carried::{Loads, RandomKey, SaveLog, Saved, TypedSaved, TYPED_LOG_BYTES};
use crate::typed::{self, Carried, Data, NewSession, TypedMap, Write};
use session_store_core::{LoadedRecord, LOADED_FIELD};

/// How many fresh ids `create` tries before giving up. A collision of
/// 128-bit random ids is practically impossible; more than one means the
/// random source is broken, and failing is the safe answer.
pub const CREATE_ATTEMPTS: usize = 8;
/// Longest accepted user id, in bytes.
const MAX_USER_ID_BYTES: usize = AdapterConfig::MAX_USER_ID_BYTES;

/// Rows removed per `cleanup_expired` call in [`ExpiredDeletion::delete_expired`].
const CLEANUP_BATCH: usize = 1000;
/// Re-reads a `save` without a carried version makes when a concurrent
/// writer bumped the version between its read and its compare-and-swap.
const SAVE_ATTEMPTS: usize = 4;

/// The message of the [`session_store::Error::Backend`] a `save` returns when
/// the session changed since it was loaded (see [`is_conflict`]).
const CONFLICT: &str = "session changed since it was loaded (a concurrent request saved it, \
or it was deleted, cycled or expired); not saved";

/// Whether a store error is a lost race: the session was saved by a
/// concurrent request (or deleted, cycled or expired) after this request
/// loaded it, and this request's changes were not written. The request may
/// reload (`Session::load`), apply its change again and save again.
///
/// ```
/// use session_store_tower_sessions::is_conflict;
/// use tower_sessions::session;
///
/// fn status(result: Result<(), session::Error>) -> u16 {
///     match result {
///         Ok(()) => 200,
///         Err(session::Error::Store(e)) if is_conflict(&e) => 409,
///         Err(_) => 500,
///     }
/// }
/// # assert_eq!(status(Ok(())), 200);
/// ```
pub fn is_conflict(error: &session_store::Error) -> bool {
    matches!(error, session_store::Error::Backend(m) if m == CONFLICT)
}

/// The storage key of a tower-sessions id: SHA-256 of the id's canonical text
/// form (the cookie value, 22 characters of base64url). A tower-sessions id
/// is never a valid `SessionToken` (22 characters, not 43), so this is always
/// the hash of the id's own text; the backend never sees the id.
pub fn storage_key_for(id: &Id) -> StorageKey {
    StorageKey::from_bytes(Sha256::digest(id_text(id)).into())
}

/// The id's canonical text form, as its `Display` writes it (base64url
/// without padding of the little-endian bytes), on the stack: no
/// formatter, no allocation.
fn id_text(id: &Id) -> [u8; 22] {
    let mut out = [0u8; 22];
    // Cannot fail for any id: 16 bytes are exactly 22 characters.
    URL_SAFE_NO_PAD
        .encode_slice(id.0.to_le_bytes(), &mut out)
        .expect("16 bytes encode to 22 base64url characters");
    out
}

/// A [`tower_sessions_core::SessionStore`] over any
/// [`SessionBackend`] (SQLite, Redis, PostgreSQL, sled, memory, or any of
/// them inside [`Encrypted`](session_store_core::Encrypted)), or over the
/// typed in-memory map of [`TowerSessionStore::in_memory`]. Cheap to clone.
///
/// See the crate documentation for what holds and what does not.
#[derive(Clone)]
pub struct TowerSessionStore {
    storage: Storage,
    clock: Arc<dyn Clock>,
    config: Arc<AdapterConfig>,
    saves: Arc<SaveLog>,
    loads: Arc<Loads<LoadedRecord>>,
    typed_loads: Arc<Loads<Carried>>,
    fingerprints: RandomState,
}

/// Where the sessions are.
#[derive(Clone)]
enum Storage {
    Backend(Arc<dyn SessionBackend>),
    Typed {
        map: Arc<TypedMap>,
        saves: Arc<SaveLog<TypedSaved, RandomKey>>,
    },
}

impl fmt::Debug for TowerSessionStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut s = f.debug_struct("TowerSessionStore");
        match &self.storage {
            Storage::Backend(backend) => s.field("backend", backend),
            Storage::Typed { .. } => s.field("backend", &"in_memory (typed)"),
        };
        s.field("config", &self.config).finish_non_exhaustive()
    }
}

impl TowerSessionStore {
    /// An adapter with the default [`AdapterConfig`] and the system clock.
    pub fn new(backend: Arc<dyn SessionBackend>) -> Self {
        Self::with_storage(Storage::Backend(backend))
    }

    /// An adapter that keeps the sessions in this process as the typed
    /// maps tower-sessions hands over, never encoded to JSON: the fastest
    /// path for a single-process server (no JSON encode on `create` and
    /// `save`, no decode on `load`; a load clones the map, like
    /// tower-sessions' own `MemoryStore`), with the same guarantees as the
    /// adapter over a backend:
    ///
    /// - keys are SHA-256 of the id ([`storage_key_for`]), never the id;
    /// - `create` never overwrites (a colliding id is redrawn, at most
    ///   [`CREATE_ATTEMPTS`] times);
    /// - `save` is a compare-and-swap on what `load` carried: a session
    ///   saved by a concurrent request, deleted, cycled or expired since it
    ///   was loaded is not written ([`is_conflict`]);
    /// - expiry is judged by the adapter's clock on every read, the
    ///   absolute timeout and the size limit of the [`AdapterConfig`] apply
    ///   (the size of the data's JSON encoding is counted, not written);
    /// - [`logout_user`](TowerSessionStore::logout_user) and
    ///   [`list_user`](TowerSessionStore::list_user) work as over a backend.
    ///
    /// What a load carries under [`LOADED_FIELD`] is the version, a random
    /// 64-bit stamp drawn at each write, and which load it was; a save
    /// writes only if both the version and the stamp match the session's,
    /// and takes the creation time and the absolute deadline from the
    /// session itself, never from the carried field. An application that
    /// writes that field itself cannot extend a session, and matches a
    /// session only by guessing its stamp.
    ///
    /// Expired sessions are removed when read, by
    /// [`ExpiredDeletion::delete_expired`], and by `create` itself: a shard
    /// of the map sweeps its expired sessions when it has grown to twice
    /// what it held after its last sweep, so memory follows the live
    /// sessions even if `delete_expired` never runs.
    ///
    /// What does **not** hold, by design:
    /// - The data is **plaintext in process memory**, like tower-sessions'
    ///   `MemoryStore`. Besides the sessions, the maps of the most recent
    ///   saves (at most 4096 of them and 8 MiB of data) stay referenced for
    ///   a second save of the same request, also after their session was
    ///   deleted or saved again, until newer saves push them out. For data that must stay encrypted in memory, use
    ///   [`TowerSessionStore::new`] over
    ///   [`Encrypted`](session_store_core::Encrypted)`<`[`MemoryStore`](session_store_core::MemoryStore)`>`
    ///   (the backend path, which encodes and encrypts).
    /// - The sessions live and die with this store: nothing else reads them
    ///   (a `SessionManager`, the CLI, another process) and a restart loses
    ///   them. There is no [`backend`](TowerSessionStore::backend).
    pub fn in_memory() -> Self {
        Self::with_storage(Storage::Typed {
            map: Arc::new(TypedMap::default()),
            saves: Arc::new(SaveLog::with_max_weight(TYPED_LOG_BYTES)),
        })
    }

    fn with_storage(storage: Storage) -> Self {
        TowerSessionStore {
            storage,
            clock: Arc::new(SystemClock),
            config: Arc::new(AdapterConfig::default()),
            saves: Arc::new(SaveLog::default()),
            loads: Arc::new(Loads::default()),
            typed_loads: Arc::new(Loads::default()),
            fingerprints: RandomState::new(),
        }
    }

    /// Replaces the configuration, after [`AdapterConfig::validate`].
    ///
    /// # Errors
    /// [`Error::Config`] naming the invalid field.
    pub fn with_config(mut self, config: AdapterConfig) -> session_store_core::Result<Self> {
        config.validate()?;
        self.config = Arc::new(config);
        Ok(self)
    }

    /// Replaces the clock that judges expiry (inject a
    /// [`ManualClock`](session_store_core::ManualClock) in tests).
    /// tower-sessions computes expiry dates from the system clock; the
    /// adapter keeps the *duration* they ask for (date minus the system
    /// clock's now) and counts it from this clock's now, and converts back
    /// the same way on load. With the system clock nothing changes.
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// The backend; `None` for [`TowerSessionStore::in_memory`].
    pub fn backend(&self) -> Option<&Arc<dyn SessionBackend>> {
        match &self.storage {
            Storage::Backend(backend) => Some(backend),
            Storage::Typed { .. } => None,
        }
    }

    /// How many sessions [`TowerSessionStore::in_memory`] holds, live or
    /// expired and not yet removed; `None` over a backend.
    pub fn in_memory_len(&self) -> Option<usize> {
        match &self.storage {
            Storage::Backend(_) => None,
            Storage::Typed { map, .. } => Some(map.len()),
        }
    }

    /// The configuration.
    pub fn config(&self) -> &AdapterConfig {
        &self.config
    }

    /// Deletes every session whose data names `user_id` under the configured
    /// [`user_id_key`](AdapterConfig::with_user_id_key) ("log out
    /// everywhere"); returns how many live sessions were removed. Without a
    /// configured key no session has a user and this removes nothing.
    ///
    /// # Errors
    /// Backend errors.
    pub async fn logout_user(&self, user_id: &str) -> session_store_core::Result<u64> {
        match &self.storage {
            Storage::Backend(backend) => backend.delete_user(user_id, None, self.clock.now()).await,
            Storage::Typed { map, .. } => Ok(map.delete_user(user_id, self.clock.now())),
        }
    }

    /// The live sessions of `user_id` (see [`TowerSessionStore::logout_user`]).
    ///
    /// # Errors
    /// Backend errors.
    pub async fn list_user(
        &self,
        user_id: &str,
    ) -> session_store_core::Result<Vec<SessionSummary>> {
        match &self.storage {
            Storage::Backend(backend) => backend.list_user(user_id, self.clock.now()).await,
            Storage::Typed { map, .. } => Ok(map.list_user(user_id, self.clock.now())),
        }
    }

    /// The session data as stored (JSON, without [`LOADED_FIELD`]) and the
    /// user it names.
    fn encode(&self, record: &Record) -> session_store::Result<(Vec<u8>, Option<String>)> {
        let data = crate::json::encode_data(&record.data)
            .map_err(|e| session_store::Error::Encode(e.to_string()))?;
        self.check_size(data.len())?;
        Ok((data, self.user_of(&record.data)?))
    }

    /// Refuses data whose JSON encoding is over the limit.
    fn check_size(&self, len: usize) -> session_store::Result<()> {
        if len > self.config.max_data_bytes() {
            return Err(session_store::Error::Encode(format!(
                "session data is too large: {} bytes, limit {}",
                len,
                self.config.max_data_bytes()
            )));
        }
        Ok(())
    }

    /// The user the data names under the configured field.
    fn user_of(&self, data: &Data) -> session_store::Result<Option<String>> {
        Ok(match self.config.user_id_key() {
            None => None,
            Some(field) => match data.get(field) {
                Some(Value::String(u)) if !u.is_empty() && u.len() <= MAX_USER_ID_BYTES => {
                    Some(u.clone())
                }
                None | Some(Value::Null) => None,
                Some(_) => {
                    return Err(session_store::Error::Encode(format!(
                        "session field {field:?} must be a non-empty string of at most {MAX_USER_ID_BYTES} bytes"
                    )))
                }
            },
        })
    }

    /// A save without a carried version: re-reads the stored version and
    /// writes with compare-and-swap on it, so a session that was deleted,
    /// cycled or expired is never written again (an error instead).
    async fn save_reloading(
        &self,
        backend: &dyn SessionBackend,
        key: &StorageKey,
        record: &Record,
        data: Vec<u8>,
        user_id: Option<String>,
    ) -> session_store::Result<()> {
        for _ in 0..SAVE_ATTEMPTS {
            let now = self.clock.now();
            let current = match backend.load(key, now).await.map_err(backend_error)? {
                Some(Lookup::Session(r)) => r,
                Some(Lookup::Forwarded(_)) | None => {
                    return Err(session_store::Error::Backend(
                        "session no longer exists (deleted, cycled or expired); not re-created"
                            .into(),
                    ))
                }
            };
            let next = SessionRecord {
                user_id: user_id.clone(),
                last_seen_at: current.last_seen_at.max(now),
                idle_deadline: deadline_of(record.expiry_date, now).min(current.absolute_deadline),
                data: data.clone(),
                ..current
            };
            match backend.save(key, &next, now).await {
                Ok(_) => return Ok(()),
                // A concurrent save bumped the version: read again. If the
                // session is gone, the next read says so.
                Err(Error::Conflict) => continue,
                Err(e) => return Err(backend_error(e)),
            }
        }
        Err(session_store::Error::Backend(
            "session kept changing concurrently; not saved".into(),
        ))
    }
}

/// The text `load` or `create` left in the record for this `save`, if any.
fn carried_text(record: &Record) -> Option<&str> {
    record.data.get(LOADED_FIELD).and_then(Value::as_str)
}

/// The storage key of the record's id and what its carried text decodes
/// to: from `loads` when the load that wrote that text for this id is
/// remembered, otherwise hashed and decoded here.
fn key_and_carried<C: Copy>(
    loads: &Loads<C>,
    record: &Record,
    decode: impl FnOnce(&str) -> Option<C>,
) -> (StorageKey, Option<C>) {
    let text = carried_text(record);
    match text.and_then(|t| loads.get(&record.id, t)) {
        Some((key, carried)) => (key, Some(carried)),
        None => (storage_key_for(&record.id), text.and_then(decode)),
    }
}

/// The deadline, on the adapter's clock, of an expiry date tower-sessions
/// computed from the system clock: now + the time that date is ahead of the
/// system clock. With the system clock this is the date itself; with a
/// manual clock the requested duration is kept.
fn deadline_of(expiry: OffsetDateTime, now: Timestamp) -> Timestamp {
    let ahead = (expiry - OffsetDateTime::now_utc()).whole_milliseconds();
    let ahead = i64::try_from(ahead).unwrap_or(if ahead < 0 { i64::MIN } else { i64::MAX });
    Timestamp::from_millis(now.as_millis().saturating_add(ahead))
}

/// The inverse of [`deadline_of`]: a deadline on the adapter's clock as a
/// date on the system clock.
fn expiry_of(deadline: Timestamp, now: Timestamp) -> OffsetDateTime {
    let ahead = deadline.as_millis().saturating_sub(now.as_millis());
    OffsetDateTime::now_utc().saturating_add(time::Duration::milliseconds(ahead))
}

fn backend_error(e: Error) -> session_store::Error {
    match e {
        Error::Decrypt { .. } | Error::Codec { .. } => session_store::Error::Decode(e.to_string()),
        Error::TooLarge { .. } | Error::InvalidInput(_) => {
            session_store::Error::Encode(e.to_string())
        }
        other => session_store::Error::Backend(other.to_string()),
    }
}

/// The error of a save that lost a race (see [`is_conflict`]).
fn conflict() -> session_store::Error {
    session_store::Error::Backend(CONFLICT.into())
}

/// The backend path: the data as JSON bytes in a [`SessionBackend`].
impl TowerSessionStore {
    async fn backend_create(
        &self,
        backend: &dyn SessionBackend,
        record: &mut Record,
    ) -> session_store::Result<()> {
        let (data, user_id) = self.encode(record)?;
        let now = self.clock.now();
        let absolute = now.saturating_add(self.config.absolute_timeout());
        let stored = SessionRecord {
            version: 0,
            user_id,
            created_at: now,
            last_seen_at: now,
            auth_time: None,
            idle_deadline: deadline_of(record.expiry_date, now).min(absolute),
            absolute_deadline: absolute,
            meta: Vec::new(),
            data,
        };
        for _ in 0..CREATE_ATTEMPTS {
            let key = storage_key_for(&record.id);
            match backend.create(&key, &stored).await {
                Ok(()) => {
                    if let Some(loaded) = LoadedRecord::of(&stored) {
                        let text = loaded.encode();
                        self.loads.put(&record.id, key, loaded, &text);
                        record
                            .data
                            .insert(LOADED_FIELD.to_owned(), Value::String(text));
                    }
                    return Ok(());
                }
                Err(Error::AlreadyExists) => record.id = Id::default(),
                Err(e) => return Err(backend_error(e)),
            }
        }
        Err(no_unused_id())
    }

    async fn backend_save(
        &self,
        backend: &dyn SessionBackend,
        record: &Record,
    ) -> session_store::Result<()> {
        let (data, user_id) = self.encode(record)?;
        let (key, loaded) = key_and_carried(&self.loads, record, LoadedRecord::decode);
        let Some(loaded) = loaded else {
            return self
                .save_reloading(backend, &key, record, data, user_id)
                .await;
        };
        let fingerprint = self.fingerprints.hash_one((&data, &user_id));
        let now = self.clock.now();
        let idle_deadline = deadline_of(record.expiry_date, now).min(loaded.absolute_deadline);
        let mut version = loaded.version;
        // A log entry is this request's earlier save only if it is of this
        // session (a carried field copied from another session names that
        // session's save), as on the typed path.
        if let Some(previous) = self.saves.get(loaded.load).filter(|p| p.key == key) {
            if previous.fingerprint == fingerprint {
                // This request already stored exactly this data: only the
                // expiry moves, whatever other requests saved since.
                return match backend.touch(&key, idle_deadline, now, now).await {
                    Ok(true) => Ok(()),
                    Ok(false) => Err(conflict()),
                    Err(e) => Err(backend_error(e)),
                };
            }
            version = previous.version;
        }
        let next = SessionRecord {
            version,
            user_id,
            created_at: loaded.created_at,
            last_seen_at: loaded.last_seen_at.max(now),
            auth_time: loaded.auth_time,
            idle_deadline,
            absolute_deadline: loaded.absolute_deadline,
            meta: Vec::new(),
            data,
        };
        match backend.save(&key, &next, now).await {
            Ok(version) => {
                self.saves.put(
                    loaded.load,
                    Saved {
                        key,
                        version,
                        fingerprint,
                    },
                    0,
                );
                Ok(())
            }
            Err(Error::Conflict) => Err(conflict()),
            Err(e) => Err(backend_error(e)),
        }
    }

    async fn backend_load(
        &self,
        backend: &dyn SessionBackend,
        id: &Id,
    ) -> session_store::Result<Option<Record>> {
        let now = self.clock.now();
        let key = self.loads.key(id).unwrap_or_else(|| storage_key_for(id));
        match backend.load(&key, now).await.map_err(backend_error)? {
            Some(Lookup::Session(r)) if r.is_live(now) => {
                // Room for the carried field.
                let mut data = crate::json::decode_data(&r.data, 1)
                    .map_err(|e| session_store::Error::Decode(e.to_string()))?;
                if let Some(loaded) = LoadedRecord::of(&r) {
                    let text = loaded.encode();
                    self.loads.put(id, key, loaded, &text);
                    data.insert(LOADED_FIELD.to_owned(), Value::String(text));
                }
                Ok(Some(Record {
                    id: *id,
                    data,
                    expiry_date: expiry_of(r.expires_at(), now),
                }))
            }
            // Forwarders come from SessionManager renewals of a shared
            // backend; a tower-sessions id never follows one.
            _ => Ok(None),
        }
    }
}

/// The typed path: the data as the map itself in a [`TypedMap`].
impl TowerSessionStore {
    /// Refuses data whose JSON encoding would be over the limit (counted,
    /// not written).
    fn check_typed_size(&self, data: &Data) -> session_store::Result<()> {
        match crate::json::encoded_len_over(data, self.config.max_data_bytes()) {
            Some(len) => self.check_size(len),
            None => Ok(()),
        }
    }

    fn typed_create(&self, map: &TypedMap, record: &mut Record) -> session_store::Result<()> {
        self.check_typed_size(&record.data)?;
        let user_id = self.user_of(&record.data)?;
        let now = self.clock.now();
        let absolute = now.saturating_add(self.config.absolute_timeout());
        let stamp = map.stamp();
        let mut new = NewSession {
            data: Arc::new(typed::stored(&record.data)),
            stamp,
            user_id,
            now,
            idle_deadline: deadline_of(record.expiry_date, now),
            absolute_deadline: absolute,
        };
        for _ in 0..CREATE_ATTEMPTS {
            let key = storage_key_for(&record.id);
            match map.insert(key, new) {
                Ok(()) => {
                    let carried = Carried {
                        version: 0,
                        stamp,
                        load: map.next_load(),
                    };
                    let text = carried.encode();
                    self.typed_loads.put(&record.id, key, carried, &text);
                    record
                        .data
                        .insert(LOADED_FIELD.to_owned(), Value::String(text));
                    return Ok(());
                }
                Err(back) => {
                    new = back;
                    record.id = Id::default();
                }
            }
        }
        Err(no_unused_id())
    }

    fn typed_save(
        &self,
        map: &TypedMap,
        saves: &SaveLog<TypedSaved, RandomKey>,
        record: &Record,
    ) -> session_store::Result<()> {
        self.check_typed_size(&record.data)?;
        let user_id = self.user_of(&record.data)?;
        let now = self.clock.now();
        let idle_deadline = deadline_of(record.expiry_date, now);
        let (key, carried) = key_and_carried(&self.typed_loads, record, Carried::decode);
        let mut expect = None;
        if let Some(c) = carried {
            expect = Some((c.version, c.stamp));
            // A second save of the same load: continue from what the first
            // one stored. The entry must be of this session and this load's
            // stamp, so a load number copied from elsewhere matches nothing.
            if let Some(previous) = saves
                .get(c.load)
                .filter(|p| p.key == key && p.seen_stamp == c.stamp)
            {
                if typed::same_data(&previous.data, &record.data) {
                    // This request already stored exactly this data: only
                    // the expiry moves, whatever other requests saved since.
                    return match map.touch(&key, idle_deadline, now) {
                        true => Ok(()),
                        false => Err(conflict()),
                    };
                }
                expect = Some((previous.version, previous.stamp));
            }
        }
        let data = Arc::new(typed::stored(&record.data));
        let stamp = map.stamp();
        let write = Write {
            data: data.clone(),
            user_id,
            idle_deadline,
            stamp,
            expect,
        };
        match (map.save(&key, write, now), carried) {
            (Some(version), Some(c)) => {
                saves.put(
                    c.load,
                    TypedSaved {
                        key,
                        seen_stamp: c.stamp,
                        version,
                        stamp,
                        data,
                    },
                    crate::json::size_hint(&record.data),
                );
                Ok(())
            }
            (Some(_), None) => Ok(()),
            (None, Some(_)) => Err(conflict()),
            (None, None) => Err(session_store::Error::Backend(
                "session no longer exists (deleted, cycled or expired); not re-created".into(),
            )),
        }
    }

    fn typed_load(&self, map: &TypedMap, id: &Id) -> Option<Record> {
        let now = self.clock.now();
        let key = self
            .typed_loads
            .key(id)
            .unwrap_or_else(|| storage_key_for(id));
        let hit = map.get(&key, now)?;
        let mut data = Data::clone(&hit.data);
        let carried = Carried {
            version: hit.version,
            stamp: hit.stamp,
            load: map.next_load(),
        };
        let text = carried.encode();
        self.typed_loads.put(id, key, carried, &text);
        let carried = Value::String(text);
        match data.get_mut(LOADED_FIELD) {
            Some(slot) => *slot = carried,
            None => {
                data.insert(LOADED_FIELD.to_owned(), carried);
            }
        }
        Some(Record {
            id: *id,
            data,
            expiry_date: expiry_of(hit.expires_at, now),
        })
    }
}

fn no_unused_id() -> session_store::Error {
    session_store::Error::Backend(
        "no unused session id after repeated attempts (broken random source?)".into(),
    )
}

#[async_trait]
impl SessionStore for TowerSessionStore {
    /// Inserts a new session; on an id collision draws a fresh [`Id`] and
    /// tries again (never an overwrite).
    async fn create(&self, record: &mut Record) -> session_store::Result<()> {
        match &self.storage {
            Storage::Backend(backend) => self.backend_create(&**backend, record).await,
            Storage::Typed { map, .. } => self.typed_create(map, record),
        }
    }

    /// Writes the data of an existing, live session: one compare-and-swap
    /// on the version `load` (or `create`) carried in the record under
    /// [`LOADED_FIELD`], so a session that was saved by a concurrent request,
    /// deleted, cycled or expired since it was loaded is not written (an
    /// error that [`is_conflict`] recognizes). A second save of the same
    /// loaded record (a handler's `Session::save`, then the middleware's)
    /// continues from the version the first one stored, and only moves the
    /// expiry (the backend's `touch`) if the data did not change in between. Without a carried version
    /// (after `Session::clear`, or for a record built by hand) it reads the
    /// stored version first.
    async fn save(&self, record: &Record) -> session_store::Result<()> {
        match &self.storage {
            Storage::Backend(backend) => self.backend_save(&**backend, record).await,
            Storage::Typed { map, saves } => self.typed_save(map, saves, record),
        }
    }

    /// Reads a live session; `None` when unknown, deleted or expired at the
    /// adapter clock's now (whether or not cleanup ran). The record carries
    /// its stored version under [`LOADED_FIELD`] for `save`.
    async fn load(&self, id: &Id) -> session_store::Result<Option<Record>> {
        match &self.storage {
            Storage::Backend(backend) => self.backend_load(&**backend, id).await,
            Storage::Typed { map, .. } => Ok(self.typed_load(map, id)),
        }
    }

    /// Deletes the session at once (idempotent).
    async fn delete(&self, id: &Id) -> session_store::Result<()> {
        match &self.storage {
            Storage::Backend(backend) => backend
                .delete(&storage_key_for(id))
                .await
                .map(|_| ())
                .map_err(backend_error),
            Storage::Typed { map, .. } => {
                map.remove(&storage_key_for(id));
                Ok(())
            }
        }
    }
}

#[async_trait]
impl ExpiredDeletion for TowerSessionStore {
    /// Removes expired sessions in batches until none is left (a store whose
    /// server expires keys itself, Redis, may remove nothing here).
    async fn delete_expired(&self) -> session_store::Result<()> {
        let now = self.clock.now();
        let backend = match &self.storage {
            Storage::Backend(backend) => backend,
            Storage::Typed { map, .. } => {
                map.delete_expired(now);
                return Ok(());
            }
        };
        loop {
            let n = backend
                .cleanup_expired(now, CLEANUP_BATCH)
                .await
                .map_err(backend_error)?;
            if n < CLEANUP_BATCH as u64 {
                return Ok(());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The id text written on the stack is exactly the id's `Display`, so
    /// the storage key is unchanged (SHA-256 of that text).
    #[test]
    fn id_text_is_the_display_text() {
        let mut ids = vec![0, 1, -1, 2, 63, 64, i128::MIN, i128::MAX];
        for shift in 0..128 {
            ids.extend([
                1i128 << shift,
                !(1i128 << shift),
                (1i128 << shift).wrapping_sub(1),
            ]);
        }
        ids.extend((0..1000).map(|_| Id::default().0));
        for n in ids {
            let id = Id(n);
            let text = id.to_string();
            assert_eq!(&id_text(&id)[..], text.as_bytes());
            assert_eq!(
                storage_key_for(&id),
                StorageKey::from_bytes(Sha256::digest(text.as_bytes()).into())
            );
        }
    }
}
