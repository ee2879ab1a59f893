//! The reference model: an independent, deliberately naive implementation of
//! the backend contract over a `BTreeMap`, in model time (milliseconds from
//! the case's base instant). It shares no code with any store.

use std::collections::BTreeMap;

use proptest::strategy::{BoxedStrategy, Just, Strategy};
use proptest_state_machine::ReferenceStateMachine;

use super::transition::{KeyIx, Transition, UserIx, VersionPick};

/// Absolute timeout of records the model makes up when nothing is stored.
const DEFAULT_ABS_MS: i64 = 12 * 3_600_000;
/// Idle timeout of successors.
const ROTATE_IDLE_MS: i64 = 30 * 60_000;

/// A session as the model stores it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rec {
    /// Stored version.
    pub version: u64,
    /// Owner.
    pub user: Option<UserIx>,
    /// Creation time.
    pub created: i64,
    /// Last activity.
    pub seen: i64,
    /// Last authentication.
    pub auth: Option<i64>,
    /// Idle deadline.
    pub idle: i64,
    /// Absolute deadline.
    pub abs: i64,
    /// Metadata bytes.
    pub meta: Vec<u8>,
    /// Data bytes.
    pub data: Vec<u8>,
}

impl Rec {
    /// Whether the session is live at `now`.
    pub fn live(&self, now: i64) -> bool {
        now < self.idle.min(self.abs)
    }
}

/// What a key holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Entry {
    /// A session.
    Session(Rec),
    /// A renewal forwarder.
    Forward {
        /// Successor key.
        successor: KeyIx,
        /// Sealed token bytes.
        sealed: Vec<u8>,
        /// End of the grace window.
        until: i64,
    },
}

impl Entry {
    pub fn live(&self, now: i64) -> bool {
        match self {
            Entry::Session(r) => r.live(now),
            Entry::Forward { until, .. } => now < *until,
        }
    }
}

/// A listed session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Summary {
    /// Key.
    pub key: KeyIx,
    /// Owner.
    pub user: UserIx,
    /// Version.
    pub version: u64,
    /// Creation time.
    pub created: i64,
    /// Last activity.
    pub seen: i64,
    /// Last authentication.
    pub auth: Option<i64>,
    /// Idle deadline.
    pub idle: i64,
    /// Absolute deadline.
    pub abs: i64,
    /// Metadata bytes.
    pub meta: Vec<u8>,
}

/// An expected error, by meaning.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fail {
    /// `Error::AlreadyExists`.
    AlreadyExists,
    /// `Error::Conflict`.
    Conflict,
}

/// The result of one step.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// `create`.
    Created(Result<(), Fail>),
    /// `load`.
    Loaded(Option<Entry>),
    /// `save` or `rotate`: the new version.
    Written(Result<u64, Fail>),
    /// `touch` or `delete`.
    Flag(bool),
    /// `delete_user`: live sessions removed.
    Count(u64),
    /// `list_user`.
    Listed(Vec<Summary>),
    /// `cleanup_expired` removed `removed`, the sweep deleted `swept` more.
    Cleaned {
        /// Returned by `cleanup_expired`.
        removed: u64,
        /// Expired entries the sweep still found.
        swept: u64,
    },
    /// The clock moved.
    Advanced,
}

/// The whole model state.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Model {
    /// Current time (ms from the base instant).
    pub now: i64,
    /// Entries by key.
    pub entries: BTreeMap<KeyIx, Entry>,
}

/// Data bytes derived from a tag (0 to 4 bytes, sometimes binary).
pub fn data_of(tag: u8) -> Vec<u8> {
    vec![tag; usize::from(tag % 5)]
}

/// Metadata bytes derived from a tag.
pub fn meta_of(tag: u8) -> Vec<u8> {
    if tag.is_multiple_of(3) {
        Vec::new()
    } else {
        format!("{{\"label\":\"m{tag}\"}}").into_bytes()
    }
}

/// Sealed-token bytes for a rotation.
pub fn sealed_of(tag: u8, to: KeyIx) -> Vec<u8> {
    vec![0xA5, tag, to, 0x00, 0xFF]
}

impl Model {
    fn session(&self, key: KeyIx) -> Option<&Rec> {
        match self.entries.get(&key) {
            Some(Entry::Session(r)) => Some(r),
            _ => None,
        }
    }

    fn live_session(&self, key: KeyIx) -> Option<&Rec> {
        self.session(key).filter(|r| r.live(self.now))
    }

    /// Resolves a version pick against what is stored under `key`.
    pub fn pick_version(&self, key: KeyIx, pick: VersionPick) -> u64 {
        let stored = self.session(key).map_or(0, |r| r.version);
        match pick {
            VersionPick::Current => stored,
            VersionPick::Stale(n) => stored.checked_sub(n.max(1)).unwrap_or(stored + 1_000),
            VersionPick::Ahead(n) => stored + n.max(1),
        }
    }

    /// The record a `create` step writes.
    pub fn create_record(
        &self,
        user: Option<UserIx>,
        version: u64,
        idle_ms: i64,
        abs_ms: i64,
        tag: u8,
    ) -> Rec {
        let abs = self.now + abs_ms;
        Rec {
            version,
            user,
            created: self.now,
            seen: self.now,
            auth: user.map(|_| self.now),
            idle: self.now + idle_ms,
            abs,
            meta: meta_of(tag),
            data: data_of(tag),
        }
    }

    /// The record a `save` step writes (derived from the stored one, if any).
    pub fn save_record(
        &self,
        key: KeyIx,
        version: VersionPick,
        user: Option<UserIx>,
        idle_ms: i64,
        tag: u8,
    ) -> Rec {
        let stored = self.session(key);
        let created = stored.map_or(self.now, |r| r.created);
        let abs = stored.map_or(self.now + DEFAULT_ABS_MS, |r| r.abs);
        Rec {
            version: self.pick_version(key, version),
            user,
            created,
            seen: self.now,
            auth: stored.and_then(|r| r.auth),
            idle: self.now + idle_ms,
            abs,
            meta: meta_of(tag.wrapping_add(1)),
            data: data_of(tag),
        }
    }

    /// The record a `rotate` step moves to the successor.
    pub fn rotate_record(
        &self,
        from: KeyIx,
        version: VersionPick,
        login: Option<UserIx>,
        tag: u8,
    ) -> Rec {
        let stored = self.session(from);
        let (user, auth, abs) = match login {
            Some(u) => (Some(u), Some(self.now), self.now + DEFAULT_ABS_MS),
            None => (
                stored.and_then(|r| r.user),
                stored.and_then(|r| r.auth),
                stored.map_or(self.now + DEFAULT_ABS_MS, |r| r.abs),
            ),
        };
        Rec {
            version: self.pick_version(from, version),
            user,
            created: stored.map_or(self.now, |r| r.created),
            seen: self.now,
            auth,
            idle: (self.now + ROTATE_IDLE_MS).min(abs),
            abs,
            meta: stored.map_or_else(Vec::new, |r| r.meta.clone()),
            data: data_of(tag),
        }
    }

    /// Keys holding an entry that is not live now.
    pub fn expired_keys(&self) -> Vec<KeyIx> {
        self.entries
            .iter()
            .filter(|(_, e)| !e.live(self.now))
            .map(|(k, _)| *k)
            .collect()
    }

    /// Forgets expired entries under `keys`: what a store whose server
    /// expires keys on its own may have done already.
    pub fn forget_expired(&mut self, keys: &[KeyIx]) {
        let now = self.now;
        self.entries.retain(|k, e| !keys.contains(k) || e.live(now));
    }

    /// Applies one step and returns what the store must answer.
    pub fn apply(&mut self, t: &Transition) -> Outcome {
        let now = self.now;
        match *t {
            Transition::Create {
                key,
                user,
                version,
                idle_ms,
                abs_ms,
                tag,
            } => {
                if self.entries.contains_key(&key) {
                    return Outcome::Created(Err(Fail::AlreadyExists));
                }
                let r = self.create_record(user, version, idle_ms, abs_ms, tag);
                self.entries.insert(key, Entry::Session(r));
                Outcome::Created(Ok(()))
            }
            Transition::Load { key } => {
                Outcome::Loaded(self.entries.get(&key).filter(|e| e.live(now)).cloned())
            }
            Transition::Save {
                key,
                version,
                user,
                idle_ms,
                tag,
            } => {
                let mut r = self.save_record(key, version, user, idle_ms, tag);
                match self.live_session(key) {
                    Some(stored) if stored.version == r.version => {}
                    _ => return Outcome::Written(Err(Fail::Conflict)),
                }
                r.version += 1;
                let v = r.version;
                self.entries.insert(key, Entry::Session(r));
                Outcome::Written(Ok(v))
            }
            Transition::Touch {
                key,
                idle_ms,
                seen_back_ms,
            } => {
                if self.live_session(key).is_none() {
                    return Outcome::Flag(false);
                }
                if let Some(Entry::Session(r)) = self.entries.get_mut(&key) {
                    r.idle = r.idle.max((now + idle_ms).min(r.abs));
                    r.seen = r.seen.max(now - seen_back_ms);
                }
                Outcome::Flag(true)
            }
            Transition::Rotate {
                from,
                to,
                version,
                login,
                grace_ms,
                tag,
            } => {
                let mut r = self.rotate_record(from, version, login, tag);
                match self.live_session(from) {
                    Some(stored) if stored.version == r.version => {}
                    _ => return Outcome::Written(Err(Fail::Conflict)),
                }
                if self.entries.contains_key(&to) {
                    return Outcome::Written(Err(Fail::AlreadyExists));
                }
                self.entries.remove(&from);
                r.version += 1;
                let v = r.version;
                self.entries.insert(to, Entry::Session(r));
                if let Some(g) = grace_ms {
                    self.entries.insert(
                        from,
                        Entry::Forward {
                            successor: to,
                            sealed: sealed_of(tag, to),
                            until: now + g,
                        },
                    );
                }
                Outcome::Written(Ok(v))
            }
            Transition::Delete { key } => Outcome::Flag(self.entries.remove(&key).is_some()),
            Transition::DeleteUser { user, except } => {
                let doomed: Vec<KeyIx> = self
                    .entries
                    .iter()
                    .filter(|(k, e)| {
                        Some(**k) != except
                            && matches!(e, Entry::Session(r) if r.user == Some(user))
                    })
                    .map(|(k, _)| *k)
                    .collect();
                let mut live = 0;
                for k in doomed {
                    if let Some(e) = self.entries.remove(&k) {
                        if e.live(now) {
                            live += 1;
                        }
                    }
                }
                Outcome::Count(live)
            }
            Transition::ListUser { user } => {
                let mut out: Vec<Summary> = self
                    .entries
                    .iter()
                    .filter_map(|(k, e)| match e {
                        Entry::Session(r) if r.user == Some(user) && r.live(now) => Some(Summary {
                            key: *k,
                            user,
                            version: r.version,
                            created: r.created,
                            seen: r.seen,
                            auth: r.auth,
                            idle: r.idle,
                            abs: r.abs,
                            meta: r.meta.clone(),
                        }),
                        _ => None,
                    })
                    .collect();
                out.sort_by_key(|s| (s.created, s.key));
                Outcome::Listed(out)
            }
            Transition::Cleanup { limit } => {
                let expired = self.expired_keys();
                let n = expired.len() as u64;
                let removed = n.min(limit as u64);
                for k in expired {
                    self.entries.remove(&k);
                }
                Outcome::Cleaned {
                    removed,
                    swept: n - removed,
                }
            }
            Transition::Advance { ms } => {
                self.now += ms;
                Outcome::Advanced
            }
        }
    }
}

/// The model as a proptest-state-machine reference machine: it drives the
/// generation of sequences (and their shrinking).
#[derive(Debug)]
pub struct Reference;

impl ReferenceStateMachine for Reference {
    type State = Model;
    type Transition = Transition;

    fn init_state() -> BoxedStrategy<Model> {
        Just(Model::default()).boxed()
    }

    fn transitions(state: &Model) -> BoxedStrategy<Transition> {
        super::strategies::transition(state)
    }

    fn apply(mut state: Model, transition: &Transition) -> Model {
        state.apply(transition);
        state
    }
}

#[cfg(test)]
mod tests {
    use proptest::strategy::{Strategy, ValueTree};
    use proptest::test_runner::TestRunner;

    use super::*;

    /// The model is a pure function of its steps: two runs of the same
    /// sequence give the same outcomes and the same final state.
    #[test]
    fn model_is_deterministic() {
        let mut runner = TestRunner::deterministic();
        let strategy = Reference::sequential_strategy(1..=60);
        for _ in 0..200 {
            let (initial, steps, _) = strategy.new_tree(&mut runner).unwrap().current();
            let run = |mut m: Model| {
                let outcomes: Vec<Outcome> = steps.iter().map(|s| m.apply(s)).collect();
                (outcomes, m)
            };
            assert_eq!(run(initial.clone()), run(initial.clone()));
        }
    }

    #[test]
    fn model_follows_the_contract_on_a_known_sequence() {
        let mut m = Model::default();
        let create = |key, user| Transition::Create {
            key,
            user,
            version: 0,
            idle_ms: 60_000,
            abs_ms: 3_600_000,
            tag: 1,
        };
        assert_eq!(m.apply(&create(0, Some(0))), Outcome::Created(Ok(())));
        assert_eq!(
            m.apply(&create(0, None)),
            Outcome::Created(Err(Fail::AlreadyExists))
        );
        let rotate = Transition::Rotate {
            from: 0,
            to: 1,
            version: VersionPick::Current,
            login: None,
            grace_ms: Some(60_000),
            tag: 2,
        };
        assert_eq!(m.apply(&rotate), Outcome::Written(Ok(1)));
        assert!(matches!(
            m.apply(&Transition::Load { key: 0 }),
            Outcome::Loaded(Some(Entry::Forward { successor: 1, .. }))
        ));
        let stale = Transition::Save {
            key: 1,
            version: VersionPick::Stale(1),
            user: None,
            idle_ms: 60_000,
            tag: 3,
        };
        assert_eq!(m.apply(&stale), Outcome::Written(Err(Fail::Conflict)));
        m.apply(&Transition::Advance { ms: 60_000 });
        assert_eq!(m.apply(&Transition::Load { key: 0 }), Outcome::Loaded(None));
        // The successor's idle deadline is 30 min: still live.
        assert!(matches!(
            m.apply(&Transition::Load { key: 1 }),
            Outcome::Loaded(Some(Entry::Session(_)))
        ));
        assert_eq!(
            m.apply(&Transition::Cleanup { limit: 10 }),
            Outcome::Cleaned {
                removed: 1,
                swept: 0
            }
        );
        assert_eq!(
            m.apply(&Transition::DeleteUser {
                user: 0,
                except: None
            }),
            Outcome::Count(1)
        );
    }
}
