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

/// Slots of [`Loads`]: what about this many recent loads carried is at
/// hand for their saves.
const LOAD_SLOTS: usize = 1024;
/// Longest carried text [`Loads`] keeps (`LoadedRecord::encode` writes at
/// most 128 bytes, the typed path's `Carried` 53).
const CARRIED_TEXT: usize = 128;

/// What each recent load or create computed for its save: the storage key
/// (SHA-256 of the id's text) and the carried value, decoded, next to the
/// text it was carried as. A save whose record has the same id and carries
/// exactly that text takes both from here instead of hashing the id and
/// decoding the text again: the key is the one of the record's own id and
/// the value is what decoding the text gives (`C` is what the text was
/// encoded from). Anything else (a carried field copied from another
/// session, edited, or made up; a slot taken over by another session's
/// load) is hashed and decoded, as before. A load of an id some slot
/// holds takes the key from there too (the key of an id never changes).
/// A slot is chosen by the id; holds the ids of up to [`LOAD_SLOTS`]
/// recently loaded sessions, as the requests that loaded them do. Never
/// printed (`Debug` shows the size only).
pub(crate) struct Loads<C> {
    slots: Mutex<Vec<Option<Loaded<C>>>>,
}

#[derive(Clone, Copy)]
struct Loaded<C> {
    id: i128,
    key: session_store_core::StorageKey,
    carried: C,
    text: [u8; CARRIED_TEXT],
    len: usize,
}

impl<C> Default for Loads<C> {
    fn default() -> Self {
        // Allocated at the first load: a store on the other path never
        // uses its slots.
        Loads {
            slots: Mutex::new(Vec::new()),
        }
    }
}

impl<C> std::fmt::Debug for Loads<C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Loads")
            .field("slots", &LOAD_SLOTS)
            .finish_non_exhaustive()
    }
}

impl<C: Copy> Loads<C> {
    /// Remembers what a load of `id` computed: its storage key, and the
    /// value it carries as `text` (which must be `carried` encoded).
    pub fn put(&self, id: &Id, key: session_store_core::StorageKey, carried: C, text: &str) {
        if text.len() > CARRIED_TEXT {
            return;
        }
        let mut slot = Loaded {
            id: id.0,
            key,
            carried,
            text: [0; CARRIED_TEXT],
            len: text.len(),
        };
        slot.text[..text.len()].copy_from_slice(text.as_bytes());
        let mut slots = self.lock();
        if slots.is_empty() {
            slots.resize(LOAD_SLOTS, None);
        }
        slots[slot_of(id)] = Some(slot);
    }

    /// The storage key and carried value a load of `id` computed, if that
    /// load carried exactly `text` and is still remembered.
    pub fn get(&self, id: &Id, text: &str) -> Option<(session_store_core::StorageKey, C)> {
        self.of(id, |slot| {
            (slot.text[..slot.len] == *text.as_bytes()).then_some((slot.key, slot.carried))
        })
    }

    /// The storage key of `id`, if a remembered load was of `id`: a load
    /// of a session loaded recently (by this or an earlier request) need
    /// not hash its id again.
    pub fn key(&self, id: &Id) -> Option<session_store_core::StorageKey> {
        self.of(id, |slot| Some(slot.key))
    }

    /// `f` of the slot holding a load of exactly `id` (branch-free id
    /// comparison), if there is one: the one place a slot is matched.
    fn of<T>(&self, id: &Id, f: impl FnOnce(&Loaded<C>) -> Option<T>) -> Option<T> {
        let slots = self.lock();
        let slot = slots.get(slot_of(id))?.as_ref()?;
        if (slot.id ^ id.0) != 0 {
            return None;
        }
        f(slot)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Option<Loaded<C>>>> {
        // Slots are written whole; a panic elsewhere leaves them consistent.
        self.slots.lock().unwrap_or_else(|e| e.into_inner())
    }
}

fn slot_of(id: &Id) -> usize {
    // Ids are random (tower-sessions draws them; a load remembers only a
    // session that exists): their low bits spread the slots.
    (id.0 as u64 % LOAD_SLOTS as u64) as usize
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

    /// A remembered load answers only for its own id and exactly its own
    /// carried text; a later load of another session in the same slot
    /// replaces it.
    #[test]
    fn loads_answer_only_for_their_id_and_text() {
        let loads: Loads<u64> = Loads::default();
        let (a, b) = (Id(1), Id(2));
        let key = |n: u8| session_store_core::StorageKey::from_bytes([n; 32]);
        assert_eq!(loads.get(&a, "v1:a"), None, "nothing yet");
        assert_eq!(loads.key(&a), None);
        loads.put(&a, key(1), 7, "v1:a");
        assert_eq!(loads.get(&a, "v1:a"), Some((key(1), 7)));
        assert_eq!(loads.key(&a), Some(key(1)));
        assert_eq!(loads.key(&b), None, "another id");
        assert_eq!(loads.get(&b, "v1:a"), None, "another id");
        assert_eq!(loads.get(&a, "v1:b"), None, "another text");
        assert_eq!(loads.get(&a, "v1:"), None, "a prefix of the text");
        assert_eq!(loads.get(&a, "v1:a "), None, "a longer text");
        let same_slot = Id(1 + LOAD_SLOTS as i128);
        assert_eq!(loads.get(&same_slot, "v1:a"), None, "another id, same slot");
        assert_eq!(loads.key(&same_slot), None, "another id, same slot");
        loads.put(&same_slot, key(2), 8, "v1:c");
        assert_eq!(loads.get(&a, "v1:a"), None, "replaced");
        assert_eq!(loads.key(&a), None, "replaced");
        assert_eq!(loads.key(&same_slot), Some(key(2)));
        assert_eq!(loads.get(&same_slot, "v1:c"), Some((key(2), 8)));
        // A text longer than a slot holds is not remembered.
        let long = "x".repeat(CARRIED_TEXT + 1);
        loads.put(&b, key(3), 9, &long);
        assert_eq!(loads.get(&b, &long), None);
        let longest = "x".repeat(CARRIED_TEXT);
        loads.put(&b, key(3), 9, &longest);
        assert_eq!(loads.get(&b, &longest), Some((key(3), 9)));
        assert_eq!(format!("{loads:?}"), "Loads { slots: 1024, .. }");
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
