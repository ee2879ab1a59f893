//! The typed in-memory path ([`TowerSessionStore::in_memory`](crate::TowerSessionStore::in_memory)):
//! each session's data kept in process as the `HashMap` tower-sessions hands
//! over, never encoded, in a sharded map under the SHA-256 storage key of
//! its id.
//!
//! Each entry has a version and a *stamp*: a fresh unpredictable 64-bit
//! value (SipHash of a counter under a per-store random key) drawn at every
//! write. What a load carries to its save is the version, the stamp and
//! which load it was; a save writes only if both the version and the stamp
//! still match the entry, so a carried field written by the application
//! instead of a load matches only by guessing a 64-bit secret. The load
//! number (which finds a first save of the same load in the save log) is
//! drawn the same way, so it cannot be guessed either. Creation time and
//! deadlines are never carried: a save keeps the entry's own.

use std::collections::hash_map::{Entry as Slot, RandomState};
use std::collections::{HashMap, HashSet};
use std::hash::{BuildHasher, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};

use serde_json::Value;
use session_store_core::{SessionSummary, StorageKey, Timestamp, LOADED_FIELD};

/// The session data as tower-sessions holds it.
pub(crate) type Data = HashMap<String, Value>;

/// Shards of the map (one lock each), chosen by the storage key's first
/// byte. A power of two.
const SHARDS: usize = 32;
/// A shard sweeps its expired entries when an insert finds it at this size
/// or more; the threshold then becomes twice what is left (so a shard never
/// holds more than about twice its live sessions plus this, and sweeping
/// costs O(1) amortized per insert).
const MIN_SWEEP: usize = 256;

/// One session.
struct Entry {
    /// The data, always with [`LOADED_FIELD`] present as `null` (so that a
    /// load's clone has room for the carried value without growing).
    data: Arc<Data>,
    version: u64,
    stamp: u64,
    user_id: Option<String>,
    created_at: Timestamp,
    last_seen_at: Timestamp,
    idle_deadline: Timestamp,
    absolute_deadline: Timestamp,
}

impl Entry {
    fn expires_at(&self) -> Timestamp {
        self.idle_deadline.min(self.absolute_deadline)
    }

    fn is_live(&self, now: Timestamp) -> bool {
        now < self.expires_at()
    }
}

/// What a load reads.
pub(crate) struct Hit {
    pub data: Arc<Data>,
    pub version: u64,
    pub stamp: u64,
    pub expires_at: Timestamp,
}

/// A new session for [`TypedMap::insert`].
pub(crate) struct NewSession {
    pub data: Arc<Data>,
    pub stamp: u64,
    pub user_id: Option<String>,
    pub now: Timestamp,
    pub idle_deadline: Timestamp,
    pub absolute_deadline: Timestamp,
}

/// A write for [`TypedMap::save`].
pub(crate) struct Write {
    pub data: Arc<Data>,
    pub user_id: Option<String>,
    /// The idle deadline asked for (capped at the entry's absolute one).
    pub idle_deadline: Timestamp,
    /// The stamp the entry gets.
    pub stamp: u64,
    /// The version and stamp the entry must have; `None`: any live entry.
    pub expect: Option<(u64, u64)>,
}

/// Hashes a storage key (SHA-256 of a random id, so already uniform) as
/// its bytes 8 to 15; byte 0 chooses the shard and is the same for every
/// key of one shard. Keys are only inserted by `create`, under ids drawn by
/// tower-sessions, never chosen by a client.
#[derive(Default, Clone, Copy)]
struct KeyBits;

impl BuildHasher for KeyBits {
    type Hasher = KeyBitsHasher;
    fn build_hasher(&self) -> KeyBitsHasher {
        KeyBitsHasher(0)
    }
}

#[derive(Default)]
struct KeyBitsHasher(u64);

impl Hasher for KeyBitsHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        match bytes.get(8..16).and_then(|b| <[u8; 8]>::try_from(b).ok()) {
            Some(b) => self.0 ^= u64::from_le_bytes(b),
            // The array's length prefix, and anything shorter.
            None => {
                for &b in bytes {
                    self.0 = self.0.rotate_left(8) ^ u64::from(b);
                }
            }
        }
    }
}

#[derive(Default)]
struct Shard {
    entries: HashMap<StorageKey, Entry, KeyBits>,
    /// Keys of this shard's entries by user id (only entries with one).
    users: HashMap<String, HashSet<StorageKey>>,
    sweep_at: usize,
}

impl Shard {
    fn index(&mut self, user: Option<&String>, key: StorageKey) {
        if let Some(user) = user {
            self.users.entry(user.clone()).or_default().insert(key);
        }
    }

    fn unindex(&mut self, user: Option<&String>, key: &StorageKey) {
        if let Some(user) = user {
            if let Some(keys) = self.users.get_mut(user) {
                keys.remove(key);
                if keys.is_empty() {
                    self.users.remove(user);
                }
            }
        }
    }

    fn remove(&mut self, key: &StorageKey) -> Option<Entry> {
        let entry = self.entries.remove(key)?;
        self.unindex(entry.user_id.as_ref(), key);
        Some(entry)
    }

    /// Removes every entry not live at `now`; how many.
    fn sweep(&mut self, now: Timestamp) -> usize {
        let dead: Vec<StorageKey> = self
            .entries
            .iter()
            .filter(|(_, e)| !e.is_live(now))
            .map(|(k, _)| *k)
            .collect();
        for key in &dead {
            self.remove(key);
        }
        dead.len()
    }
}

/// The sessions of one [`TowerSessionStore::in_memory`](crate::TowerSessionStore::in_memory).
pub(crate) struct TypedMap {
    shards: Box<[RwLock<Shard>]>,
    stamps: RandomState,
    counter: AtomicU64,
}

impl Default for TypedMap {
    fn default() -> Self {
        TypedMap {
            shards: (0..SHARDS).map(|_| RwLock::default()).collect(),
            stamps: RandomState::new(),
            counter: AtomicU64::new(1),
        }
    }
}

impl TypedMap {
    fn shard(&self, key: &StorageKey) -> &RwLock<Shard> {
        &self.shards[usize::from(key.as_bytes()[0]) % SHARDS]
    }

    fn read(lock: &RwLock<Shard>) -> RwLockReadGuard<'_, Shard> {
        // Every write leaves a shard consistent before anything can panic.
        lock.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write(lock: &RwLock<Shard>) -> RwLockWriteGuard<'_, Shard> {
        lock.write().unwrap_or_else(|e| e.into_inner())
    }

    /// A fresh unpredictable stamp.
    pub fn stamp(&self) -> u64 {
        self.stamps
            .hash_one(self.counter.fetch_add(1, Ordering::Relaxed))
    }

    /// A number for one load (or create) of this store: unpredictable, and
    /// distinct from every other load's but with probability 2^-64.
    pub fn next_load(&self) -> u64 {
        self.stamp()
    }

    /// Inserts a session unless any entry (live or expired) is stored
    /// under `key`: then hands it back.
    pub fn insert(&self, key: StorageKey, new: NewSession) -> Result<(), NewSession> {
        let mut shard = Self::write(self.shard(&key));
        if shard.entries.len() >= shard.sweep_at.max(MIN_SWEEP) {
            shard.sweep(new.now);
            shard.sweep_at = shard.entries.len() * 2;
        }
        let user = new.user_id.clone();
        match shard.entries.entry(key) {
            Slot::Occupied(_) => return Err(new),
            Slot::Vacant(slot) => {
                slot.insert(Entry {
                    data: new.data,
                    version: 0,
                    stamp: new.stamp,
                    user_id: new.user_id,
                    created_at: new.now,
                    last_seen_at: new.now,
                    idle_deadline: new.idle_deadline.min(new.absolute_deadline),
                    absolute_deadline: new.absolute_deadline,
                });
            }
        }
        shard.index(user.as_ref(), key);
        Ok(())
    }

    /// The live session under `key`; an expired one is removed.
    pub fn get(&self, key: &StorageKey, now: Timestamp) -> Option<Hit> {
        let lock = self.shard(key);
        {
            let shard = Self::read(lock);
            match shard.entries.get(key) {
                None => return None,
                Some(e) if e.is_live(now) => {
                    return Some(Hit {
                        data: e.data.clone(),
                        version: e.version,
                        stamp: e.stamp,
                        expires_at: e.expires_at(),
                    })
                }
                Some(_) => {}
            }
        }
        let mut shard = Self::write(lock);
        if shard.entries.get(key).is_some_and(|e| !e.is_live(now)) {
            shard.remove(key);
        }
        None
    }

    /// Writes a live session; its new version, or `None` (nothing written)
    /// when there is none live at `now` or it does not have the expected
    /// version and stamp.
    pub fn save(&self, key: &StorageKey, write: Write, now: Timestamp) -> Option<u64> {
        let mut shard = Self::write(self.shard(key));
        let entry = shard.entries.get_mut(key).filter(|e| e.is_live(now))?;
        if write
            .expect
            .is_some_and(|expect| expect != (entry.version, entry.stamp))
        {
            return None;
        }
        entry.data = write.data;
        entry.version += 1;
        entry.stamp = write.stamp;
        entry.last_seen_at = entry.last_seen_at.max(now);
        entry.idle_deadline = write.idle_deadline.min(entry.absolute_deadline);
        let version = entry.version;
        if entry.user_id != write.user_id {
            let old = std::mem::replace(&mut entry.user_id, write.user_id.clone());
            shard.unindex(old.as_ref(), key);
            shard.index(write.user_id.as_ref(), *key);
        }
        Some(version)
    }

    /// Moves a live session's idle deadline forward (never back, never past
    /// its absolute deadline); whether there was one.
    pub fn touch(&self, key: &StorageKey, idle_deadline: Timestamp, now: Timestamp) -> bool {
        let mut shard = Self::write(self.shard(key));
        match shard.entries.get_mut(key).filter(|e| e.is_live(now)) {
            Some(e) => {
                e.idle_deadline = e.idle_deadline.max(idle_deadline.min(e.absolute_deadline));
                e.last_seen_at = e.last_seen_at.max(now);
                true
            }
            None => false,
        }
    }

    /// Removes whatever is under `key`; whether something was.
    pub fn remove(&self, key: &StorageKey) -> bool {
        Self::write(self.shard(key)).remove(key).is_some()
    }

    /// Removes every session of `user_id`; how many of them were live.
    pub fn delete_user(&self, user_id: &str, now: Timestamp) -> u64 {
        let mut live = 0;
        for lock in self.shards.iter() {
            let mut shard = Self::write(lock);
            let Some(keys) = shard.users.remove(user_id) else {
                continue;
            };
            for key in keys {
                if let Some(e) = shard.entries.remove(&key) {
                    live += u64::from(e.is_live(now));
                }
            }
        }
        live
    }

    /// The live sessions of `user_id`, by creation time then key.
    pub fn list_user(&self, user_id: &str, now: Timestamp) -> Vec<SessionSummary> {
        let mut out = Vec::new();
        for lock in self.shards.iter() {
            let shard = Self::read(lock);
            let Some(keys) = shard.users.get(user_id) else {
                continue;
            };
            for key in keys {
                if let Some(e) = shard.entries.get(key).filter(|e| e.is_live(now)) {
                    out.push(SessionSummary {
                        key: *key,
                        user_id: user_id.to_owned(),
                        version: e.version,
                        created_at: e.created_at,
                        last_seen_at: e.last_seen_at,
                        auth_time: None,
                        idle_deadline: e.idle_deadline,
                        absolute_deadline: e.absolute_deadline,
                        meta: Vec::new(),
                        damage: None,
                    });
                }
            }
        }
        out.sort_by_key(|s| (s.created_at, s.key));
        out
    }

    /// Removes every session not live at `now`; how many.
    pub fn delete_expired(&self, now: Timestamp) -> usize {
        self.shards
            .iter()
            .map(|lock| {
                let mut shard = Self::write(lock);
                let n = shard.sweep(now);
                shard.sweep_at = shard.entries.len() * 2;
                n
            })
            .sum()
    }

    /// Entries held, live or not yet removed.
    pub fn len(&self) -> usize {
        self.shards
            .iter()
            .map(|lock| Self::read(lock).entries.len())
            .sum()
    }
}

/// The data as an entry holds it: `data` with [`LOADED_FIELD`] set to
/// `null`.
pub(crate) fn stored(data: &Data) -> Data {
    let mut out = data.clone();
    out.insert(LOADED_FIELD.to_owned(), Value::Null);
    out
}

/// Whether a record's data equals what an entry held, [`LOADED_FIELD`]
/// aside (`record` holds it, as `stored` does).
pub(crate) fn same_data(stored: &Data, record: &Data) -> bool {
    stored.len() == record.len()
        && record
            .iter()
            .all(|(k, v)| k == LOADED_FIELD || stored.get(k) == Some(v))
}

/// What a load on the typed path carries to its save.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Carried {
    pub version: u64,
    pub stamp: u64,
    pub load: u64,
}

const PREFIX: &str = "t1:";
const CARRIED_LEN: usize = PREFIX.len() + 3 * 16 + 2;

impl Carried {
    /// `t1:<version>:<stamp>:<load>`, each 16 lowercase hex digits.
    pub fn encode(&self) -> String {
        fn hex(out: &mut [u8], n: u64) {
            const DIGITS: &[u8; 16] = b"0123456789abcdef";
            for (i, digit) in out.iter_mut().enumerate() {
                *digit = DIGITS[((n >> ((15 - i) * 4)) & 0xf) as usize];
            }
        }
        let mut out = [b':'; CARRIED_LEN];
        out[..PREFIX.len()].copy_from_slice(PREFIX.as_bytes());
        hex(&mut out[3..19], self.version);
        hex(&mut out[20..36], self.stamp);
        hex(&mut out[37..53], self.load);
        // ASCII by construction, so never the empty fallback.
        String::from_utf8(out.to_vec()).unwrap_or_default()
    }

    /// The inverse of [`Carried::encode`]; `None` for anything else.
    pub fn decode(text: &str) -> Option<Self> {
        fn hex(s: &str) -> Option<u64> {
            if s.len() != 16 {
                return None;
            }
            s.bytes().try_fold(0u64, |n, b| {
                let digit = match b {
                    b'0'..=b'9' => b - b'0',
                    b'a'..=b'f' => b - b'a' + 10,
                    _ => return None,
                };
                Some(n << 4 | u64::from(digit))
            })
        }
        if text.len() != CARRIED_LEN || !text.is_ascii() {
            return None;
        }
        let rest = text.strip_prefix(PREFIX)?;
        let (v, rest) = rest.split_at(16);
        let (stamp, load) = rest.strip_prefix(':')?.split_at(16);
        Some(Carried {
            version: hex(v)?,
            stamp: hex(stamp)?,
            load: hex(load.strip_prefix(':')?)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn key(i: u32) -> StorageKey {
        let mut b = [0u8; 32];
        b[..4].copy_from_slice(&i.to_le_bytes());
        StorageKey::from_bytes(b)
    }

    fn session(map: &TypedMap, now: Timestamp, idle: Duration) -> NewSession {
        NewSession {
            data: Arc::new(stored(&Data::new())),
            stamp: map.stamp(),
            user_id: None,
            now,
            idle_deadline: now.saturating_add(idle),
            absolute_deadline: now.saturating_add(Duration::from_secs(3600)),
        }
    }

    #[test]
    fn carried_round_trips_and_rejects_anything_else() {
        let c = Carried {
            version: 7,
            stamp: u64::MAX - 3,
            load: 1 << 40,
        };
        let text = c.encode();
        assert_eq!(text.len(), CARRIED_LEN);
        assert_eq!(Carried::decode(&text), Some(c));
        assert_eq!(
            Carried::decode("t1:0000000000000001:00000000000000ff:0000000000000002"),
            Some(Carried {
                version: 1,
                stamp: 255,
                load: 2
            })
        );
        for bad in [
            "",
            "v1:1:2:3:4:5:-",
            "t1:0000000000000001:00000000000000ff:000000000000002",
            "t1:0000000000000001:00000000000000FF:0000000000000002",
            "t1:0000000000000001;00000000000000ff:0000000000000002",
            "t1:+000000000000001:00000000000000ff:0000000000000002",
            "t1:0000000000000001:00000000000000ff:0000000000000002:",
            "t1:é00000000000001:00000000000000ff:0000000000000002",
        ] {
            assert_eq!(Carried::decode(bad), None, "{bad}");
        }
    }

    /// Expired sessions are swept by inserts: the map holds at most about
    /// twice the live sessions plus the threshold, whether or not
    /// `delete_expired` runs.
    #[test]
    fn expired_sessions_do_not_accumulate() {
        let map = TypedMap::default();
        let mut now = Timestamp::from_millis(1_000_000);
        for i in 0..200_000u32 {
            // Each session lives 1 ms; one insert per millisecond.
            let new = session(&map, now, Duration::from_millis(1));
            assert!(map.insert(key(i), new).is_ok());
            now = now.saturating_add(Duration::from_millis(1));
        }
        let held = map.len();
        assert!(held <= SHARDS * 2 * MIN_SWEEP, "{held} entries held");
        assert_eq!(map.delete_expired(now), held);
        assert_eq!(map.len(), 0);
    }

    #[test]
    fn live_sessions_are_never_swept() {
        let map = TypedMap::default();
        let now = Timestamp::from_millis(1_000_000);
        for i in 0..20_000u32 {
            let new = session(&map, now, Duration::from_secs(60));
            assert!(map.insert(key(i), new).is_ok());
        }
        assert_eq!(map.len(), 20_000);
        assert_eq!(map.delete_expired(now), 0);
        assert!((0..20_000).all(|i| map.get(&key(i), now).is_some()));
    }

    #[test]
    fn a_load_of_an_expired_session_removes_it() {
        let map = TypedMap::default();
        let now = Timestamp::from_millis(1_000_000);
        assert!(map
            .insert(key(1), session(&map, now, Duration::from_secs(1)))
            .is_ok());
        let later = now.saturating_add(Duration::from_secs(1));
        assert!(map.get(&key(1), later).is_none());
        assert_eq!(map.len(), 0);
    }

    /// Keys of one shard (same first byte) spread over the low bits the
    /// table's buckets use.
    #[test]
    fn key_hashes_spread_within_a_shard() {
        use sha2::{Digest, Sha256};
        let keys: Vec<StorageKey> = (0u32..100_000)
            .map(|i| StorageKey::from_bytes(Sha256::digest(i.to_le_bytes()).into()))
            .filter(|k| usize::from(k.as_bytes()[0]) % SHARDS == 3)
            .collect();
        assert!(keys.len() > 2_000);
        let buckets: HashSet<u64> = keys.iter().map(|k| KeyBits.hash_one(k) & 1023).collect();
        assert!(buckets.len() > 800, "{} of 1024 buckets", buckets.len());
    }

    #[test]
    fn stamps_differ() {
        let map = TypedMap::default();
        let stamps: HashSet<u64> = (0..10_000).map(|_| map.stamp()).collect();
        assert_eq!(stamps.len(), 10_000);
    }
}
