//! The log that lets one request save twice: what a `load` carries to the
//! `save` of the same request is [`session_store_core::LoadedRecord`] under
//! [`session_store_core::LOADED_FIELD`]; a second save of the same load
//! continues from the version its first save stored.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;

/// Successful saves remembered for a second save by the same request
/// (`Session::save` in a handler, then the middleware's own save).
const SAVE_LOG_CAPACITY: usize = 4096;

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
