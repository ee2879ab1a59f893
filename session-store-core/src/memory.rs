//! The in-memory reference store.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::ops::Bound;
use std::sync::Mutex;

use async_trait::async_trait;

use crate::backend::SessionBackend;
use crate::error::{Error, Result};
use crate::record::{Forward, Lookup, Rotation, SessionRecord, SessionSummary};
use crate::scan::{self, ScanCursor, ScanEntry, ScanPage};
use crate::time::Timestamp;
use crate::token::StorageKey;

/// A concurrent in-memory store: the reference implementation of the
/// [`SessionBackend`] contract, and a real store for tests and single-process
/// applications.
///
/// Capabilities: everything ([`Capabilities::full`](crate::Capabilities::full)).
/// One mutex guards the map, the user index and the expiry index, so every
/// operation is trivially atomic; cleanup walks the expiry index (cost
/// proportional to the expired entries, not to the store). Nothing survives
/// the process.
#[derive(Debug, Default)]
pub struct MemoryStore {
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    /// Ordered by key, so that a scan resumes after the last key it returned.
    entries: BTreeMap<StorageKey, Lookup>,
    users: HashMap<String, BTreeSet<StorageKey>>,
    expiry: BTreeSet<(Timestamp, StorageKey)>,
}

fn expires_at(entry: &Lookup) -> Timestamp {
    match entry {
        Lookup::Session(r) => r.expires_at(),
        Lookup::Forwarded(f) => f.until,
    }
}

impl State {
    fn insert(&mut self, key: StorageKey, entry: Lookup) {
        if let Some(old) = self.remove(&key) {
            debug_assert!(false, "insert over an existing entry: {old:?}");
        }
        if let Lookup::Session(SessionRecord {
            user_id: Some(user),
            ..
        }) = &entry
        {
            self.users.entry(user.clone()).or_default().insert(key);
        }
        self.expiry.insert((expires_at(&entry), key));
        self.entries.insert(key, entry);
    }

    fn remove(&mut self, key: &StorageKey) -> Option<Lookup> {
        let entry = self.entries.remove(key)?;
        self.expiry.remove(&(expires_at(&entry), *key));
        if let Lookup::Session(SessionRecord {
            user_id: Some(user),
            ..
        }) = &entry
        {
            if let Some(set) = self.users.get_mut(user) {
                set.remove(key);
                if set.is_empty() {
                    self.users.remove(user);
                }
            }
        }
        Some(entry)
    }

    fn live_session(&self, key: &StorageKey, now: Timestamp) -> Option<&SessionRecord> {
        match self.entries.get(key) {
            Some(Lookup::Session(r)) if r.is_live(now) => Some(r),
            _ => None,
        }
    }
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// Number of entries held, expired ones included (for tests and metrics).
    pub fn len(&self) -> usize {
        self.lock().entries.len()
    }

    /// Whether the store holds no entry at all.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Every stored byte string (keys, user ids, data, metadata, forwarders),
    /// for at-rest checks: what a dump of this store would show.
    pub fn dump_raw(&self) -> Vec<Vec<u8>> {
        let state = self.lock();
        let mut out = Vec::new();
        for (key, entry) in &state.entries {
            out.push(key.as_bytes().to_vec());
            match entry {
                Lookup::Session(r) => {
                    out.extend(r.user_id.iter().map(|u| u.as_bytes().to_vec()));
                    out.push(r.meta.clone());
                    out.push(r.data.clone());
                }
                Lookup::Forwarded(f) => {
                    out.push(f.successor.as_bytes().to_vec());
                    out.push(f.sealed_token.clone());
                }
            }
        }
        out
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // A panic while holding the lock cannot leave the maps half-updated in
        // a way that matters more than losing the process, so recover the guard.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[async_trait]
impl SessionBackend for MemoryStore {
    async fn create(&self, key: &StorageKey, record: &SessionRecord) -> Result<()> {
        let mut state = self.lock();
        if state.entries.contains_key(key) {
            return Err(Error::AlreadyExists);
        }
        state.insert(*key, Lookup::Session(record.clone()));
        Ok(())
    }

    async fn load(&self, key: &StorageKey, now: Timestamp) -> Result<Option<Lookup>> {
        let state = self.lock();
        Ok(match state.entries.get(key) {
            Some(e) if now < expires_at(e) => Some(e.clone()),
            _ => None,
        })
    }

    async fn save(&self, key: &StorageKey, record: &SessionRecord, now: Timestamp) -> Result<u64> {
        let version = next_version(record.version)?;
        let mut state = self.lock();
        match state.live_session(key, now) {
            Some(stored) if stored.version == record.version => {}
            _ => return Err(Error::Conflict),
        }
        state.remove(key);
        let mut next = record.clone();
        next.version = version;
        state.insert(*key, Lookup::Session(next));
        Ok(version)
    }

    async fn touch(
        &self,
        key: &StorageKey,
        idle_deadline: Timestamp,
        last_seen_at: Timestamp,
        now: Timestamp,
    ) -> Result<bool> {
        let mut state = self.lock();
        let Some(stored) = state.live_session(key, now) else {
            return Ok(false);
        };
        let mut next = stored.clone();
        next.idle_deadline = next
            .idle_deadline
            .max(idle_deadline.min(next.absolute_deadline));
        next.last_seen_at = next.last_seen_at.max(last_seen_at);
        state.remove(key);
        state.insert(*key, Lookup::Session(next));
        Ok(true)
    }

    async fn rotate(&self, rotation: &Rotation, now: Timestamp) -> Result<u64> {
        let version = next_version(rotation.record.version)?;
        let mut state = self.lock();
        match state.live_session(&rotation.from, now) {
            Some(stored) if stored.version == rotation.record.version => {}
            _ => return Err(Error::Conflict),
        }
        if state.entries.contains_key(&rotation.to) {
            return Err(Error::AlreadyExists);
        }
        state.remove(&rotation.from);
        let mut next = rotation.record.clone();
        next.version = version;
        state.insert(rotation.to, Lookup::Session(next));
        if let Some(grace) = &rotation.grace {
            state.insert(
                rotation.from,
                Lookup::Forwarded(Forward {
                    successor: rotation.to,
                    sealed_token: grace.sealed_token.clone(),
                    until: grace.until,
                }),
            );
        }
        Ok(version)
    }

    async fn delete(&self, key: &StorageKey) -> Result<bool> {
        Ok(self.lock().remove(key).is_some())
    }

    async fn delete_user(
        &self,
        user_id: &str,
        except: Option<&StorageKey>,
        now: Timestamp,
    ) -> Result<u64> {
        let mut state = self.lock();
        let keys: Vec<StorageKey> = state
            .users
            .get(user_id)
            .map(|s| s.iter().filter(|k| Some(*k) != except).copied().collect())
            .unwrap_or_default();
        let mut live = 0;
        for key in keys {
            if let Some(Lookup::Session(r)) = state.remove(&key) {
                if r.is_live(now) {
                    live += 1;
                }
            }
        }
        Ok(live)
    }

    async fn list_user(&self, user_id: &str, now: Timestamp) -> Result<Vec<SessionSummary>> {
        let state = self.lock();
        let mut out: Vec<SessionSummary> = state
            .users
            .get(user_id)
            .into_iter()
            .flatten()
            .filter_map(|k| {
                state
                    .live_session(k, now)
                    .map(|r| SessionSummary::of(*k, user_id.to_owned(), r))
            })
            .collect();
        out.sort_by_key(|s| (s.created_at, s.key));
        Ok(out)
    }

    async fn delete_all(&self) -> Result<()> {
        let mut state = self.lock();
        *state = State::default();
        Ok(())
    }

    async fn cleanup_expired(&self, now: Timestamp, limit: usize) -> Result<u64> {
        let mut state = self.lock();
        let doomed: Vec<StorageKey> = state
            .expiry
            .iter()
            .take_while(|(t, _)| *t <= now)
            .take(limit)
            .map(|(_, k)| *k)
            .collect();
        for key in &doomed {
            state.remove(key);
        }
        Ok(doomed.len() as u64)
    }

    async fn scan(&self, cursor: Option<&ScanCursor>, limit: usize) -> Result<ScanPage> {
        scan::check_limit(limit)?;
        let after = scan::key_cursor(cursor)?;
        let state = self.lock();
        let start = after.map_or(Bound::Unbounded, Bound::Excluded);
        let entries = state
            .entries
            .range((start, Bound::Unbounded))
            .take(limit)
            .map(|(key, entry)| ScanEntry {
                key: *key,
                entry: entry.clone(),
            })
            .collect();
        Ok(scan::key_page(entries, limit))
    }
}

/// The version a write stores: `version + 1`, or [`Error::InvalidInput`] at
/// `u64::MAX` (nothing is written).
fn next_version(version: u64) -> Result<u64> {
    version
        .checked_add(1)
        .ok_or(Error::InvalidInput("session version overflow"))
}
