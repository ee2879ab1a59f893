//! The system under test: runs a sequence against a real backend and
//! compares every answer with the reference model.

use std::collections::BTreeMap;
use std::fmt::Debug;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use proptest::test_runner::TestCaseError;
use session_store_core::{
    Error, Grace, Lookup, Rotation, SessionBackend, SessionRecord, SessionToken, StorageKey,
    Timestamp,
};

use super::reference::{sealed_of, Entry, Fail, Model, Outcome, Rec, Summary};
use super::strategies::{KEYS, LOOKALIKE_USERS};
use super::transition::{KeyIx, Transition, UserIx};
use crate::checks::Ctx;

/// Per-case mapping between model indices and real keys, users and instants.
struct World {
    base: i64,
    keys: Vec<StorageKey>,
    index: BTreeMap<StorageKey, KeyIx>,
    users: Vec<String>,
}

impl World {
    fn new(backend: &dyn SessionBackend) -> Self {
        // Every key shares the first key's affinity prefix, so that any
        // pair can be a rotation (clustered stores demand it).
        let first = SessionToken::generate().storage_key();
        let bits = backend.rotation_affinity_bits();
        let mut keys = vec![first];
        while keys.len() < usize::from(KEYS) {
            let k = SessionToken::generate_with_affinity(&first, bits).storage_key();
            if !keys.contains(&k) {
                keys.push(k);
            }
        }
        // Index order is key order, so the model can sort listings by index.
        keys.sort();
        let index = keys
            .iter()
            .enumerate()
            .map(|(i, k)| (*k, i as KeyIx))
            .collect();
        World {
            base: Timestamp::now_utc().as_millis(),
            keys,
            index,
            users: LOOKALIKE_USERS.iter().map(|u| (*u).to_owned()).collect(),
        }
    }

    fn ts(&self, t: i64) -> Timestamp {
        Timestamp::from_millis(self.base + t)
    }

    fn rel(&self, t: Timestamp) -> i64 {
        t.as_millis() - self.base
    }

    fn key(&self, k: KeyIx) -> StorageKey {
        self.keys[usize::from(k)]
    }

    fn user(&self, u: UserIx) -> String {
        self.users[usize::from(u)].clone()
    }

    fn key_ix(&self, k: &StorageKey) -> Result<KeyIx, String> {
        self.index
            .get(k)
            .copied()
            .ok_or_else(|| format!("the store returned a key outside the pool: {k:?}"))
    }

    fn user_ix(&self, u: &str) -> Result<UserIx, String> {
        self.users
            .iter()
            .position(|x| x == u)
            .map(|i| i as UserIx)
            .ok_or_else(|| format!("the store returned an unknown user id {u:?}"))
    }

    fn record(&self, r: &Rec) -> SessionRecord {
        SessionRecord {
            version: r.version,
            user_id: r.user.map(|u| self.user(u)),
            created_at: self.ts(r.created),
            last_seen_at: self.ts(r.seen),
            auth_time: r.auth.map(|t| self.ts(t)),
            idle_deadline: self.ts(r.idle),
            absolute_deadline: self.ts(r.abs),
            meta: r.meta.clone(),
            data: r.data.clone(),
        }
    }

    fn rec(&self, r: &SessionRecord) -> Result<Rec, String> {
        Ok(Rec {
            version: r.version,
            user: r.user_id.as_deref().map(|u| self.user_ix(u)).transpose()?,
            created: self.rel(r.created_at),
            seen: self.rel(r.last_seen_at),
            auth: r.auth_time.map(|t| self.rel(t)),
            idle: self.rel(r.idle_deadline),
            abs: self.rel(r.absolute_deadline),
            meta: r.meta.clone(),
            data: r.data.clone(),
        })
    }
}

fn fail_of<T: Debug>(res: session_store_core::Result<T>) -> Result<Result<T, Fail>, String> {
    match res {
        Ok(v) => Ok(Ok(v)),
        Err(Error::AlreadyExists) => Ok(Err(Fail::AlreadyExists)),
        Err(Error::Conflict) => Ok(Err(Fail::Conflict)),
        Err(e) => Err(format!("unexpected error {e:?}")),
    }
}

fn io<T>(res: session_store_core::Result<T>) -> Result<T, String> {
    res.map_err(|e| format!("unexpected error {e:?}"))
}

/// Runs one step against the store, in the model's terms. `model` is the
/// state *before* the step (it resolves the step's relative choices).
async fn run_step(
    backend: &dyn SessionBackend,
    w: &World,
    model: &Model,
    t: &Transition,
) -> Result<Outcome, String> {
    let now = w.ts(model.now);
    Ok(match *t {
        Transition::Create {
            key,
            user,
            version,
            idle_ms,
            abs_ms,
            tag,
        } => {
            let r = model.create_record(user, version, idle_ms, abs_ms, tag);
            Outcome::Created(fail_of(backend.create(&w.key(key), &w.record(&r)).await)?)
        }
        Transition::Load { key } => {
            Outcome::Loaded(match io(backend.load(&w.key(key), now).await)? {
                None => None,
                Some(Lookup::Session(r)) => Some(Entry::Session(w.rec(&r)?)),
                Some(Lookup::Forwarded(f)) => Some(Entry::Forward {
                    successor: w.key_ix(&f.successor)?,
                    sealed: f.sealed_token,
                    until: w.rel(f.until),
                }),
            })
        }
        Transition::Save {
            key,
            version,
            user,
            idle_ms,
            tag,
        } => {
            let r = model.save_record(key, version, user, idle_ms, tag);
            Outcome::Written(fail_of(
                backend.save(&w.key(key), &w.record(&r), now).await,
            )?)
        }
        Transition::Touch {
            key,
            idle_ms,
            seen_back_ms,
        } => Outcome::Flag(io(backend
            .touch(
                &w.key(key),
                w.ts(model.now + idle_ms),
                w.ts(model.now - seen_back_ms),
                now,
            )
            .await)?),
        Transition::Rotate {
            from,
            to,
            version,
            login,
            grace_ms,
            tag,
        } => {
            let r = model.rotate_record(from, version, login, tag);
            let rotation = Rotation {
                from: w.key(from),
                to: w.key(to),
                record: w.record(&r),
                grace: grace_ms.map(|g| Grace {
                    sealed_token: sealed_of(tag, to),
                    until: w.ts(model.now + g),
                }),
            };
            Outcome::Written(fail_of(backend.rotate(&rotation, now).await)?)
        }
        Transition::Delete { key } => Outcome::Flag(io(backend.delete(&w.key(key)).await)?),
        Transition::DeleteUser { user, except } => {
            let except = except.map(|k| w.key(k));
            Outcome::Count(io(backend
                .delete_user(&w.user(user), except.as_ref(), now)
                .await)?)
        }
        Transition::ListUser { user } => {
            let listed = io(backend.list_user(&w.user(user), now).await)?;
            let mut out = Vec::with_capacity(listed.len());
            for s in listed {
                out.push(Summary {
                    key: w.key_ix(&s.key)?,
                    user: w.user_ix(&s.user_id)?,
                    version: s.version,
                    created: w.rel(s.created_at),
                    seen: w.rel(s.last_seen_at),
                    auth: s.auth_time.map(|t| w.rel(t)),
                    idle: w.rel(s.idle_deadline),
                    abs: w.rel(s.absolute_deadline),
                    meta: s.meta,
                });
            }
            Outcome::Listed(out)
        }
        Transition::Cleanup { limit } => {
            let removed = io(backend.cleanup_expired(now, limit).await)?;
            let mut swept = 0;
            for k in model.expired_keys() {
                if io(backend.delete(&w.key(k)).await)? {
                    swept += 1;
                }
            }
            Outcome::Cleaned { removed, swept }
        }
        Transition::Advance { .. } => Outcome::Advanced,
    })
}

/// Keys whose expired entries a server-side TTL may already have dropped,
/// changing the answer of this step.
fn ttl_sensitive_keys(t: &Transition) -> Vec<KeyIx> {
    match *t {
        Transition::Create { key, .. } | Transition::Delete { key } => vec![key],
        Transition::Rotate { to, .. } => vec![to],
        _ => Vec::new(),
    }
}

/// Runs one generated case from an empty namespace and a fresh base time.
pub(super) async fn run_case(
    ctx: &Ctx,
    initial: Model,
    steps: &[Transition],
    seen: Option<&Arc<AtomicUsize>>,
) -> Result<(), TestCaseError> {
    ctx.backend
        .delete_all()
        .await
        .map_err(|e| TestCaseError::fail(format!("delete_all before the case: {e:?}")))?;
    let backend = &*ctx.backend;
    let w = World::new(backend);
    let counted = ctx.capabilities.counted_cleanup;
    let mut model = initial;
    for (i, step) in steps.iter().enumerate() {
        if let Some(seen) = seen {
            seen.fetch_add(1, Ordering::SeqCst);
        }
        let fail = |msg: String| {
            TestCaseError::fail(format!(
                "step {i} ({step:?}) at model time {}ms: {msg}",
                model.now
            ))
        };
        let observed = run_step(backend, &w, &model, step).await.map_err(fail)?;
        let mut expected_model = model.clone();
        let expected = expected_model.apply(step);
        let accepted = if observed == expected {
            Some(expected_model)
        } else if !counted {
            relaxed(&model, step, &expected, &observed)
        } else {
            None
        };
        match accepted {
            Some(next) => {
                // Whatever the step removed (delete, delete_user, rotation,
                // cleanup) or let expire (a clock jump past a deadline, the
                // absolute one included) no longer loads: a store that keeps
                // serving a revoked entry (a read cache in front of it) or
                // judges expiry by one deadline only fails here.
                let gone = model.entries.iter().filter(|(k, e)| {
                    e.live(model.now)
                        && next
                            .entries
                            .get(k)
                            .is_none_or(|after| !after.live(next.now))
                });
                for (k, _) in gone {
                    let found = backend
                        .load(&w.key(*k), w.ts(next.now))
                        .await
                        .map_err(|e| fail(format!("load after the step: {e:?}")))?;
                    if let Some(found) = found {
                        return Err(fail(format!(
                            "after the step key {k} holds nothing live, yet it still loads: {found:?}"
                        )));
                    }
                }
                model = next;
            }
            None => {
                return Err(fail(format!(
                    "the store answered {observed:?}, the model expected {expected:?}"
                )))
            }
        }
    }
    Ok(())
}

/// For stores whose server expires entries on its own (no counted cleanup):
/// accept the answer the model gives once expired entries under the step's
/// keys are forgotten, and cleanup counts up to the limit.
fn relaxed(
    model: &Model,
    step: &Transition,
    expected: &Outcome,
    observed: &Outcome,
) -> Option<Model> {
    if let (
        Transition::Cleanup { limit },
        Outcome::Cleaned { removed, .. },
        Outcome::Cleaned { .. },
    ) = (step, observed, expected)
    {
        if *removed <= *limit as u64 {
            let mut next = model.clone();
            next.apply(step);
            return Some(next);
        }
        return None;
    }
    let keys = ttl_sensitive_keys(step);
    if keys.is_empty() {
        return None;
    }
    let mut alt = model.clone();
    alt.forget_expired(&keys);
    (alt.apply(step) == *observed).then_some(alt)
}
