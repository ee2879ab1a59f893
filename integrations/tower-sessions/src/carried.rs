//! The log that lets one request save twice: what a `load` carries to the
//! `save` of the same request is [`session_store_core::LoadedRecord`] under
//! [`session_store_core::LOADED_FIELD`]; a second save of the same load
//! continues from the version its first save stored. The typed in-memory
//! path keeps its own log of the same kind ([`TypedSaved`]).

use std::collections::hash_map::RandomState;
use std::collections::{HashMap, VecDeque};
use std::hash::{BuildHasher, Hasher};
use std::sync::Mutex;

use tower_sessions_core::session::Id;

/// Successful saves remembered for a second save by the same request
/// (`Session::save` in a handler, then the middleware's own save).
const SAVE_LOG_CAPACITY: usize = 4096;
/// Most session data bytes (JSON-encoded size) the typed path's log keeps
/// alive: its entries hold the saved maps themselves.
pub(crate) const TYPED_LOG_BYTES: usize = 8 << 20;

/// Slots of [`LoadKeys`]: the storage keys of about this many recent
/// loads are at hand for their saves.
const LOAD_KEY_SLOTS: usize = 1024;

/// The storage key each recent load or create computed, so that the save of
/// the same record takes it instead of hashing the id again (SHA-256 of its
/// text). A slot is chosen by load number and holds that load's number, id
/// and key; a save uses the key only if both the carried load number and
/// the record's id are the slot's, so the key is always the one of the
/// record's own id (a carried field copied from another session, a load
/// number made up or reused, a slot overwritten by a later load: each just
/// hashes the id again, as before). Holds the ids of the last
/// [`LOAD_KEY_SLOTS`] loads, as the requests that made them do; never
/// printed (`Debug` shows the size only).
pub(crate) struct LoadKeys {
    slots: Mutex<Box<[Option<LoadKey>]>>,
}

#[derive(Clone, Copy)]
struct LoadKey {
    load: u64,
    id: i128,
    key: session_store_core::StorageKey,
}

impl Default for LoadKeys {
    fn default() -> Self {
        LoadKeys {
            slots: Mutex::new(vec![None; LOAD_KEY_SLOTS].into_boxed_slice()),
        }
    }
}

impl std::fmt::Debug for LoadKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoadKeys")
            .field("slots", &LOAD_KEY_SLOTS)
            .finish_non_exhaustive()
    }
}

impl LoadKeys {
    /// Remembers the key `load` computed for `id`.
    pub fn put(&self, load: u64, id: &Id, key: session_store_core::StorageKey) {
        self.lock()[slot_of(load)] = Some(LoadKey {
            load,
            id: id.0,
            key,
        });
    }

    /// The key `load` computed, if it is still remembered and was computed
    /// for `id`.
    pub fn get(&self, load: u64, id: &Id) -> Option<session_store_core::StorageKey> {
        self.lock()[slot_of(load)]
            .filter(|k| k.load == load && k.id == id.0)
            .map(|k| k.key)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Box<[Option<LoadKey>]>> {
        // Slots are written whole; a panic elsewhere leaves them consistent.
        self.slots.lock().unwrap_or_else(|e| e.into_inner())
    }
}

fn slot_of(load: u64) -> usize {
    // LOAD_KEY_SLOTS is a power of two: the low bits of the load number.
    (load % LOAD_KEY_SLOTS as u64) as usize
}

/// A successful save: which session, the version it stored and a
/// fingerprint of what it wrote.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Saved {
    pub key: session_store_core::StorageKey,
    pub version: u64,
    pub fingerprint: u64,
}

/// A successful save on the typed in-memory path: which session, the stamp
/// the load saw, and what the save stored (the map itself: comparing it is
/// cheaper than fingerprinting).
#[derive(Clone)]
pub(crate) struct TypedSaved {
    pub key: session_store_core::StorageKey,
    pub seen_stamp: u64,
    pub version: u64,
    pub stamp: u64,
    pub data: std::sync::Arc<crate::typed::Data>,
}

/// The last successful save of each recent load, oldest forgotten first
/// (beyond [`SAVE_LOG_CAPACITY`] entries or `max_weight` in total). A
/// forgotten entry only costs a request that saves twice a conflict error,
/// never a lost write.
#[derive(Debug)]
pub(crate) struct SaveLog<S = Saved, H = RandomState> {
    inner: Mutex<LogInner<S, H>>,
    max_weight: usize,
}

impl<S, H: BuildHasher + Default> Default for SaveLog<S, H> {
    fn default() -> Self {
        Self::with_max_weight(usize::MAX)
    }
}

#[derive(Debug)]
struct LogInner<S, H> {
    by_load: HashMap<u64, (S, usize), H>,
    order: VecDeque<u64>,
    weight: usize,
}

/// Hashes a load number that is already uniformly random (the typed path
/// draws them with a keyed hash) as itself.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct RandomKey;

impl BuildHasher for RandomKey {
    type Hasher = RandomKeyHasher;
    fn build_hasher(&self) -> RandomKeyHasher {
        RandomKeyHasher(0)
    }
}

/// See [`RandomKey`].
#[derive(Debug, Default)]
pub(crate) struct RandomKeyHasher(u64);

impl Hasher for RandomKeyHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        // Only u64 keys are hashed with it; anything else still spreads.
        for &b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(b);
        }
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

impl<S, H: BuildHasher + Default> SaveLog<S, H> {
    /// A log that also forgets its oldest entries while the weights given
    /// to [`SaveLog::put`] add up to more than `max_weight`.
    pub fn with_max_weight(max_weight: usize) -> Self {
        SaveLog {
            inner: Mutex::new(LogInner {
                by_load: HashMap::default(),
                order: VecDeque::new(),
                weight: 0,
            }),
            max_weight,
        }
    }
}

impl<S: Clone, H: BuildHasher> SaveLog<S, H> {
    pub fn get(&self, load: u64) -> Option<S> {
        self.lock().by_load.get(&load).map(|(s, _)| s.clone())
    }

    pub fn put(&self, load: u64, saved: S, weight: usize) {
        let mut inner = self.lock();
        inner.weight += weight;
        match inner.by_load.insert(load, (saved, weight)) {
            Some((_, old)) => inner.weight -= old,
            None => inner.order.push_back(load),
        }
        while inner.order.len() > SAVE_LOG_CAPACITY
            || (inner.weight > self.max_weight && inner.order.len() > 1)
        {
            let Some(old) = inner.order.pop_front() else {
                break;
            };
            if let Some((_, w)) = inner.by_load.remove(&old) {
                inner.weight -= w;
            }
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, LogInner<S, H>> {
        // The map stays consistent whatever panicked while holding it.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_forgets_oldest_first() {
        let log: SaveLog = SaveLog::default();
        for load in 0..(SAVE_LOG_CAPACITY as u64 + 1) {
            log.put(
                load,
                Saved {
                    key: session_store_core::StorageKey::from_bytes([0; 32]),
                    version: load,
                    fingerprint: 0,
                },
                0,
            );
        }
        assert_eq!(log.get(0), None);
        assert_eq!(log.get(1).map(|s| s.version), Some(1));
        log.put(
            1,
            Saved {
                key: session_store_core::StorageKey::from_bytes([0; 32]),
                version: 9,
                fingerprint: 1,
            },
            0,
        );
        assert_eq!(log.get(1).map(|s| s.version), Some(9));
    }

    /// A key is found only for the load and the id it was computed for;
    /// a later load in the same slot replaces it.
    #[test]
    fn load_keys_answer_only_for_their_load_and_id() {
        let keys = LoadKeys::default();
        let (a, b) = (Id(1), Id(2));
        let key = |n: u8| session_store_core::StorageKey::from_bytes([n; 32]);
        assert_eq!(keys.get(7, &a), None);
        keys.put(7, &a, key(1));
        assert_eq!(keys.get(7, &a), Some(key(1)));
        assert_eq!(keys.get(7, &b), None, "another id");
        assert_eq!(keys.get(8, &a), None, "another load");
        let same_slot = 7 + LOAD_KEY_SLOTS as u64;
        assert_eq!(keys.get(same_slot, &a), None, "another load, same slot");
        keys.put(same_slot, &b, key(2));
        assert_eq!(keys.get(7, &a), None, "replaced");
        assert_eq!(keys.get(same_slot, &b), Some(key(2)));
        assert_eq!(format!("{keys:?}"), "LoadKeys { slots: 1024, .. }");
    }

    #[test]
    fn log_forgets_oldest_beyond_its_weight() {
        let log = SaveLog::<u64, RandomKey>::with_max_weight(100);
        for load in 0..10 {
            log.put(load, load, 30);
        }
        // 3 entries of 30 fit in 100; the 4th pushes the oldest out.
        assert_eq!(log.get(6), None);
        assert_eq!(
            (7..10).map(|l| log.get(l)).collect::<Vec<_>>(),
            [Some(7), Some(8), Some(9)]
        );
        // Replacing an entry counts its new weight only.
        log.put(9, 90, 10);
        log.put(10, 10, 31);
        assert_eq!(log.get(7), None);
        assert_eq!(log.get(8), Some(8));
        assert_eq!(log.get(9), Some(90));
        // One entry heavier than the whole budget is still kept.
        log.put(11, 11, 500);
        assert_eq!(log.get(11), Some(11));
        assert_eq!(log.get(10), None);
    }
}
