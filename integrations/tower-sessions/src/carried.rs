//! What a `load` hands to the `save` of the same request, so that `save`
//! is one compare-and-swap with no read before it: the stored version and
//! the record fields a save keeps, carried in the session data under
//! [`LOADED_FIELD`]; and the log that lets one request save twice.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use session_store_core::{SessionRecord, Timestamp};

/// The session data field under which `load` (and `create`) leave what the
/// next `save` needs: the stored version and the record's fixed fields. It
/// is never written to the backend, and a save whose data lacks it (after
/// `Session::clear`, or for a record built by hand) reads the stored version
/// first, as a second round trip.
pub const LOADED_FIELD: &str = "__session_store.loaded";

/// Successful saves remembered for a second save by the same request
/// (`Session::save` in a handler, then the middleware's own save).
const SAVE_LOG_CAPACITY: usize = 4096;

/// Distinguishes the loads of one process: a second save of the same load
/// finds the version its first save produced.
static NEXT_LOAD: AtomicU64 = AtomicU64::new(1);

/// The fields of a loaded record a save keeps, and which load it was.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Loaded {
    pub version: u64,
    pub load: u64,
    pub created_at: Timestamp,
    pub last_seen_at: Timestamp,
    pub absolute_deadline: Timestamp,
    pub auth_time: Option<Timestamp>,
}

impl Loaded {
    /// What to carry for `record`, just read or created; `None` for a record
    /// with client metadata (written by a `SessionManager` sharing the
    /// backend), whose save keeps reading the stored record first.
    pub fn of(record: &SessionRecord) -> Option<Self> {
        record.meta.is_empty().then(|| Loaded {
            version: record.version,
            load: NEXT_LOAD.fetch_add(1, Ordering::Relaxed),
            created_at: record.created_at,
            last_seen_at: record.last_seen_at,
            absolute_deadline: record.absolute_deadline,
            auth_time: record.auth_time,
        })
    }

    /// `v1:version:load:created:last_seen:absolute:auth` (milliseconds;
    /// `-` for no auth time).
    pub fn encode(&self) -> String {
        let auth = self
            .auth_time
            .map_or_else(|| "-".to_owned(), |t| t.as_millis().to_string());
        format!(
            "v1:{}:{}:{}:{}:{}:{auth}",
            self.version,
            self.load,
            self.created_at.as_millis(),
            self.last_seen_at.as_millis(),
            self.absolute_deadline.as_millis(),
        )
    }

    /// The inverse of [`Loaded::encode`]; `None` for anything else.
    pub fn decode(text: &str) -> Option<Self> {
        let mut parts = text.strip_prefix("v1:")?.split(':');
        let mut next = || parts.next();
        let version = next()?.parse().ok()?;
        let load = next()?.parse().ok()?;
        let millis = |s: Option<&str>| s?.parse().ok().map(Timestamp::from_millis);
        let created_at = millis(next())?;
        let last_seen_at = millis(next())?;
        let absolute_deadline = millis(next())?;
        let auth_time = match next()? {
            "-" => None,
            t => Some(Timestamp::from_millis(t.parse().ok()?)),
        };
        next().is_none().then_some(Loaded {
            version,
            load,
            created_at,
            last_seen_at,
            absolute_deadline,
            auth_time,
        })
    }
}

/// A successful save: the version it stored and a fingerprint of what it
/// wrote.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Saved {
    pub version: u64,
    pub fingerprint: u64,
}

/// The last successful save of each recent load, oldest forgotten first. A
/// forgotten entry only costs a request that saves twice a conflict error,
/// never a lost write.
#[derive(Debug, Default)]
pub(crate) struct SaveLog {
    inner: Mutex<LogInner>,
}

#[derive(Debug, Default)]
struct LogInner {
    by_load: HashMap<u64, Saved>,
    order: VecDeque<u64>,
}

impl SaveLog {
    pub fn get(&self, load: u64) -> Option<Saved> {
        self.lock().by_load.get(&load).copied()
    }

    pub fn put(&self, load: u64, saved: Saved) {
        let mut inner = self.lock();
        if inner.by_load.insert(load, saved).is_none() {
            inner.order.push_back(load);
            if inner.order.len() > SAVE_LOG_CAPACITY {
                if let Some(old) = inner.order.pop_front() {
                    inner.by_load.remove(&old);
                }
            }
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, LogInner> {
        // The map stays consistent whatever panicked while holding it.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encode_decode_round_trip() {
        for auth_time in [None, Some(Timestamp::from_millis(7))] {
            let l = Loaded {
                version: u64::MAX - 1,
                load: 42,
                created_at: Timestamp::from_millis(1),
                last_seen_at: Timestamp::from_millis(-2),
                absolute_deadline: Timestamp::from_millis(3),
                auth_time,
            };
            assert_eq!(Loaded::decode(&l.encode()), Some(l));
        }
        for bad in [
            "",
            "v1:",
            "v2:1:1:1:1:1:-",
            "v1:1:1:1:1:1:-:extra",
            "v1:x:1:1:1:1:-",
        ] {
            assert_eq!(Loaded::decode(bad), None, "{bad}");
        }
    }

    #[test]
    fn log_forgets_oldest_first() {
        let log = SaveLog::default();
        for load in 0..(SAVE_LOG_CAPACITY as u64 + 1) {
            log.put(
                load,
                Saved {
                    version: load,
                    fingerprint: 0,
                },
            );
        }
        assert_eq!(log.get(0), None);
        assert_eq!(log.get(1).map(|s| s.version), Some(1));
        log.put(
            1,
            Saved {
                version: 9,
                fingerprint: 1,
            },
        );
        assert_eq!(log.get(1).map(|s| s.version), Some(9));
    }
}
