//! The suite tests itself: deliberately broken stores (the reference store
//! with one contract clause violated) must fail the checks named after that
//! clause, and the model-based check must catch every one of them.

use std::collections::{BTreeSet, HashMap};
use std::sync::Mutex;

use session_store_conformance::{check_outcome, Mode, Outcome, TestStore, CHECKS};
use session_store_core::{
    async_trait, Error, Lookup, MemoryStore, Result, Rotation, SessionBackend, SessionRecord,
    SessionSummary, StorageKey, Timestamp,
};

#[path = "mutants/toy_cipher.rs"]
mod toy_cipher;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Bug {
    SaveIgnoresVersion,
    SaveResurrects,
    LoadIgnoresExpiry,
    TouchMovesBackwards,
    RotateKeepsOld,
    RotateOverwrites,
    CreateOverwrites,
    DeleteUserCountsExpired,
    ListUnsorted,
    ListIncludesExpired,
    CleanupIgnoresLimit,
    ForwarderNeverExpires,
    TouchBumpsVersion,
    DeleteUserIgnoresExcept,
    RotateDropsGrace,
    CleanupRemovesLive,
    /// Rotation in separate steps (read, check, write, delete), each a round trip.
    RotateNotAtomic,
    /// Create checks for the key, then writes, in separate steps.
    CreateNotAtomic,
    /// Touch reads the whole record and writes it back.
    TouchNotAtomic,
    /// Ties in a listing in insertion order instead of key order.
    ListTiesByInsertion,
    /// A session is live until its idle deadline, whatever the absolute one.
    IgnoresAbsoluteDeadline,
    /// User ids compared case-insensitively (a SQL default collation).
    UsersCaseInsensitive,
    /// Trailing spaces ignored (a `PAD SPACE` collation, a `CHAR` column).
    UsersIgnoreTrailingSpaces,
    /// User ids matched as a `LIKE` pattern.
    UsersMatchedWithLike,
    /// User ids matched by prefix.
    UsersMatchedByPrefix,
    /// User ids compared after Unicode normalisation (NFD `e` + U+0301 as `é`).
    UsersNormalised,
    /// A read cache in front of the store that deletes do not invalidate.
    StaleReadCache,
    /// Rotation drops the client metadata.
    RotateDropsMeta,
    /// Listings skip sessions whose data is empty.
    ListSkipsEmptyData,
    /// `delete_user` leaves (and does not count) persistent-login families
    /// (records whose metadata carries `"_pk":true`).
    DeleteUserSparesPersistent,
    /// Persistent-login families never expire on read.
    PersistentNeverExpires,
    /// Listings leave persistent-login families out.
    ListHidesPersistent,
}

/// Whether a record's (plain) metadata marks a persistent-login family.
fn persistent(meta: &[u8]) -> bool {
    meta.windows(10).any(|w| w == br#""_pk":true"#)
}

#[derive(Debug)]
struct Mutant {
    inner: MemoryStore,
    bug: Bug,
    /// Insertion order, for `ListTiesByInsertion`.
    seq: Mutex<HashMap<StorageKey, u64>>,
    /// Every user id ever written, for the user-matching bugs.
    users: Mutex<BTreeSet<String>>,
    /// The read cache of `StaleReadCache`.
    cache: Mutex<HashMap<StorageKey, Lookup>>,
}

impl Mutant {
    fn new(bug: Bug) -> Self {
        Mutant {
            inner: MemoryStore::new(),
            bug,
            seq: Mutex::default(),
            users: Mutex::default(),
            cache: Mutex::default(),
        }
    }

    fn remember(&self, key: &StorageKey, r: &SessionRecord) {
        let mut seq = self.seq.lock().unwrap();
        let next = seq.len() as u64;
        seq.entry(*key).or_insert(next);
        if let Some(u) = &r.user_id {
            self.users.lock().unwrap().insert(u.clone());
        }
    }

    /// The stored user ids a query for `user` reaches under this bug.
    fn matching_users(&self, user: &str) -> Vec<String> {
        let nfc = |s: &str| s.replace("e\u{301}", "\u{e9}");
        let users = self.users.lock().unwrap().clone();
        users
            .into_iter()
            .filter(|stored| match self.bug {
                Bug::UsersCaseInsensitive => stored.to_lowercase() == user.to_lowercase(),
                Bug::UsersIgnoreTrailingSpaces => stored.trim_end() == user.trim_end(),
                Bug::UsersMatchedWithLike => like(stored.as_bytes(), user.as_bytes()),
                Bug::UsersMatchedByPrefix => stored.starts_with(user),
                Bug::UsersNormalised => nfc(stored) == nfc(user),
                _ => stored == user,
            })
            .collect()
    }

    fn user_bug(&self) -> bool {
        matches!(
            self.bug,
            Bug::UsersCaseInsensitive
                | Bug::UsersIgnoreTrailingSpaces
                | Bug::UsersMatchedWithLike
                | Bug::UsersMatchedByPrefix
                | Bug::UsersNormalised
        )
    }
}

/// SQL `LIKE` without escapes: `_` is one byte, `%` any run.
fn like(s: &[u8], pattern: &[u8]) -> bool {
    match pattern.split_first() {
        None => s.is_empty(),
        Some((b'%', rest)) => (0..=s.len()).any(|i| like(&s[i..], rest)),
        Some((&p, rest)) => match s.split_first() {
            Some((&c, tail)) => (p == b'_' || p == c) && like(tail, rest),
            None => false,
        },
    }
}

const LONG_AGO: Timestamp = Timestamp::EPOCH;

#[async_trait]
impl SessionBackend for Mutant {
    async fn create(&self, key: &StorageKey, r: &SessionRecord) -> Result<()> {
        if self.bug == Bug::CreateOverwrites {
            self.inner.delete(key).await?;
        }
        if self.bug == Bug::CreateNotAtomic {
            if self.inner.load(key, LONG_AGO).await?.is_some() {
                return Err(Error::AlreadyExists);
            }
            tokio::task::yield_now().await;
            self.inner.delete(key).await?;
        }
        self.inner.create(key, r).await?;
        self.remember(key, r);
        if self.bug == Bug::StaleReadCache {
            self.cache
                .lock()
                .unwrap()
                .insert(*key, Lookup::Session(r.clone()));
        }
        Ok(())
    }

    async fn load(&self, key: &StorageKey, now: Timestamp) -> Result<Option<Lookup>> {
        match self.bug {
            Bug::StaleReadCache => {
                let cached = self.cache.lock().unwrap().get(key).cloned();
                let live = |l: &Lookup| match l {
                    Lookup::Session(r) => r.is_live(now),
                    Lookup::Forwarded(f) => now < f.until,
                };
                match cached {
                    Some(found) if live(&found) => Ok(Some(found)),
                    _ => {
                        let found = self.inner.load(key, now).await?;
                        if let Some(f) = &found {
                            self.cache.lock().unwrap().insert(*key, f.clone());
                        }
                        Ok(found)
                    }
                }
            }
            Bug::IgnoresAbsoluteDeadline => match self.inner.load(key, now).await? {
                None => match self.inner.load(key, LONG_AGO).await? {
                    Some(Lookup::Session(r)) if now < r.idle_deadline => {
                        Ok(Some(Lookup::Session(r)))
                    }
                    _ => Ok(None),
                },
                found => Ok(found),
            },
            Bug::LoadIgnoresExpiry => self.inner.load(key, LONG_AGO).await,
            Bug::PersistentNeverExpires => match self.inner.load(key, now).await? {
                None => match self.inner.load(key, LONG_AGO).await? {
                    Some(Lookup::Session(r)) if persistent(&r.meta) => Ok(Some(Lookup::Session(r))),
                    _ => Ok(None),
                },
                found => Ok(found),
            },
            Bug::ForwarderNeverExpires => match self.inner.load(key, now).await? {
                None => match self.inner.load(key, LONG_AGO).await? {
                    Some(f @ Lookup::Forwarded(_)) => Ok(Some(f)),
                    _ => Ok(None),
                },
                found => Ok(found),
            },
            _ => self.inner.load(key, now).await,
        }
    }

    async fn save(&self, key: &StorageKey, r: &SessionRecord, now: Timestamp) -> Result<u64> {
        self.cache.lock().unwrap().remove(key);
        self.remember(key, r);
        match self.bug {
            Bug::SaveIgnoresVersion => {
                if let Some(Lookup::Session(stored)) = self.inner.load(key, now).await? {
                    let mut r = r.clone();
                    r.version = stored.version;
                    return self.inner.save(key, &r, now).await;
                }
                self.inner.save(key, r, now).await
            }
            Bug::SaveResurrects => {
                if self.inner.load(key, now).await?.is_none() {
                    let mut next = r.clone();
                    next.version += 1;
                    self.inner.create(key, &next).await?;
                    return Ok(next.version);
                }
                self.inner.save(key, r, now).await
            }
            _ => self.inner.save(key, r, now).await,
        }
    }

    async fn touch(
        &self,
        key: &StorageKey,
        idle: Timestamp,
        seen: Timestamp,
        now: Timestamp,
    ) -> Result<bool> {
        self.cache.lock().unwrap().remove(key);
        if self.bug == Bug::TouchNotAtomic {
            let Some(Lookup::Session(mut r)) = self.inner.load(key, now).await? else {
                return Ok(false);
            };
            tokio::task::yield_now().await;
            r.idle_deadline = r.idle_deadline.max(idle.min(r.absolute_deadline));
            r.last_seen_at = r.last_seen_at.max(seen);
            self.inner.delete(key).await?;
            self.inner.create(key, &r).await?;
            return Ok(true);
        }
        if self.bug == Bug::TouchBumpsVersion {
            let Some(Lookup::Session(mut r)) = self.inner.load(key, now).await? else {
                return Ok(false);
            };
            r.idle_deadline = r.idle_deadline.max(idle.min(r.absolute_deadline));
            r.last_seen_at = r.last_seen_at.max(seen);
            self.inner.save(key, &r, now).await?;
            return Ok(true);
        }
        if self.bug == Bug::TouchMovesBackwards {
            let Some(Lookup::Session(mut r)) = self.inner.load(key, now).await? else {
                return Ok(false);
            };
            r.idle_deadline = idle.min(r.absolute_deadline);
            r.last_seen_at = seen;
            self.inner.delete(key).await?;
            self.inner.create(key, &r).await?;
            return Ok(true);
        }
        self.inner.touch(key, idle, seen, now).await
    }

    async fn rotate(&self, rotation: &Rotation, now: Timestamp) -> Result<u64> {
        self.cache.lock().unwrap().remove(&rotation.from);
        self.cache.lock().unwrap().remove(&rotation.to);
        self.remember(&rotation.to, &rotation.record);
        match self.bug {
            Bug::RotateNotAtomic if rotation.grace.is_none() => {
                let Some(Lookup::Session(current)) = self.inner.load(&rotation.from, now).await?
                else {
                    return Err(Error::Conflict);
                };
                tokio::task::yield_now().await;
                if current.version != rotation.record.version {
                    return Err(Error::Conflict);
                }
                if self.inner.load(&rotation.to, LONG_AGO).await?.is_some() {
                    return Err(Error::AlreadyExists);
                }
                tokio::task::yield_now().await;
                let mut next = rotation.record.clone();
                next.version += 1;
                self.inner.create(&rotation.to, &next).await?;
                tokio::task::yield_now().await;
                self.inner.delete(&rotation.from).await?;
                Ok(next.version)
            }
            Bug::RotateDropsMeta => {
                let mut rotation = rotation.clone();
                rotation.record.meta.clear();
                self.inner.rotate(&rotation, now).await
            }
            Bug::RotateKeepsOld => {
                let old = self.inner.load(&rotation.from, now).await?;
                let v = self.inner.rotate(rotation, now).await?;
                if let (Some(Lookup::Session(r)), None) = (old, &rotation.grace) {
                    self.inner.create(&rotation.from, &r).await?;
                }
                Ok(v)
            }
            Bug::RotateOverwrites => {
                if let Some(Lookup::Session(r)) = self.inner.load(&rotation.from, now).await? {
                    if r.version == rotation.record.version && rotation.from != rotation.to {
                        self.inner.delete(&rotation.to).await?;
                    }
                }
                self.inner.rotate(rotation, now).await
            }
            Bug::RotateDropsGrace => {
                let mut rotation = rotation.clone();
                rotation.grace = None;
                self.inner.rotate(&rotation, now).await
            }
            _ => self.inner.rotate(rotation, now).await,
        }
    }

    async fn delete(&self, key: &StorageKey) -> Result<bool> {
        self.inner.delete(key).await
    }

    async fn delete_user(
        &self,
        user: &str,
        except: Option<&StorageKey>,
        now: Timestamp,
    ) -> Result<u64> {
        let now = if self.bug == Bug::DeleteUserCountsExpired {
            LONG_AGO
        } else {
            now
        };
        let except = if self.bug == Bug::DeleteUserIgnoresExcept {
            None
        } else {
            except
        };
        if self.bug == Bug::DeleteUserSparesPersistent {
            let mut spared = Vec::new();
            for s in self.inner.list_user(user, LONG_AGO).await? {
                if let Some(Lookup::Session(r)) = self.inner.load(&s.key, LONG_AGO).await? {
                    if persistent(&r.meta) && Some(&s.key) != except {
                        spared.push((s.key, r));
                    }
                }
            }
            let mut n = self.inner.delete_user(user, except, now).await?;
            for (key, r) in spared {
                if r.is_live(now) {
                    n -= 1;
                }
                self.inner.create(&key, &r).await?;
            }
            return Ok(n);
        }
        if self.user_bug() {
            let mut n = 0;
            for u in self.matching_users(user) {
                n += self.inner.delete_user(&u, except, now).await?;
            }
            return Ok(n);
        }
        self.inner.delete_user(user, except, now).await
    }

    async fn list_user(&self, user: &str, now: Timestamp) -> Result<Vec<SessionSummary>> {
        match self.bug {
            Bug::ListUnsorted => {
                let mut list = self.inner.list_user(user, now).await?;
                list.reverse();
                Ok(list)
            }
            Bug::ListIncludesExpired => self.inner.list_user(user, LONG_AGO).await,
            Bug::ListHidesPersistent => {
                let mut list = self.inner.list_user(user, now).await?;
                list.retain(|s| !persistent(&s.meta));
                Ok(list)
            }
            Bug::ListTiesByInsertion => {
                let mut list = self.inner.list_user(user, now).await?;
                let seq = self.seq.lock().unwrap().clone();
                list.sort_by_key(|s| (s.created_at, seq.get(&s.key).copied()));
                Ok(list)
            }
            Bug::ListSkipsEmptyData => {
                let mut out = Vec::new();
                for s in self.inner.list_user(user, now).await? {
                    match self.inner.load(&s.key, now).await? {
                        Some(Lookup::Session(r)) if r.data.is_empty() => {}
                        _ => out.push(s),
                    }
                }
                Ok(out)
            }
            _ if self.user_bug() => {
                let mut out = Vec::new();
                for u in self.matching_users(user) {
                    out.extend(self.inner.list_user(&u, now).await?);
                }
                out.sort_by_key(|s| (s.created_at, s.key));
                Ok(out)
            }
            _ => self.inner.list_user(user, now).await,
        }
    }

    async fn delete_all(&self) -> Result<()> {
        self.inner.delete_all().await
    }

    async fn cleanup_expired(&self, now: Timestamp, limit: usize) -> Result<u64> {
        let limit = if self.bug == Bug::CleanupIgnoresLimit {
            usize::MAX
        } else {
            limit
        };
        let now = if self.bug == Bug::CleanupRemovesLive {
            Timestamp::MAX
        } else {
            now
        };
        self.inner.cleanup_expired(now, limit).await
    }
}

/// The outcome of `check` against a store with `bug`.
fn outcome(check: &str, bug: Bug) -> Outcome {
    check_outcome(check, Mode::Plain, move || async move {
        TestStore::new(Mutant::new(bug))
    })
}

/// Every named check, and the model-based check, fail against `bug`.
fn assert_caught(bug: Bug, checks: &[&str]) {
    assert_caught_by(bug, &[checks, &["model_based_sequences"]].concat());
}

/// Every named check fails against `bug` (for bugs a sequential model cannot
/// see: races, lookalike user ids the model's pool lacks).
fn assert_caught_by(bug: Bug, checks: &[&str]) {
    for check in checks {
        assert!(
            CHECKS.iter().any(|c| c.0 == *check),
            "no check named {check}"
        );
        let got = outcome(check, bug);
        assert!(got.is_failed(), "{check} did not catch {bug:?}: {got:?}");
    }
}

#[test]
fn catches_save_without_cas() {
    assert_caught(
        Bug::SaveIgnoresVersion,
        &[
            "save_stale_version_conflict",
            "concurrent_saves_all_land",
            "model_persistent_sequences",
        ],
    );
}

#[test]
fn catches_resurrection() {
    assert_caught(
        Bug::SaveResurrects,
        &[
            "save_after_delete_no_resurrection",
            "save_after_rotate_conflict",
        ],
    );
}

#[test]
fn catches_missing_read_time_expiry() {
    assert_caught(
        Bug::LoadIgnoresExpiry,
        &["load_expired_idle_is_none", "load_expired_absolute_is_none"],
    );
}

#[test]
fn catches_touch_moving_backwards() {
    assert_caught(Bug::TouchMovesBackwards, &["touch_never_moves_backwards"]);
}

#[test]
fn catches_rotation_leaving_the_old_key() {
    assert_caught(
        Bug::RotateKeepsOld,
        &["rotate_moves_record", "manager_login_never_has_grace"],
    );
}

#[test]
fn catches_rotation_overwriting() {
    assert_caught(
        Bug::RotateOverwrites,
        &["rotate_into_existing_already_exists"],
    );
}

#[test]
fn catches_create_overwriting() {
    assert_caught(
        Bug::CreateOverwrites,
        &["create_collision", "concurrent_creates_one_winner"],
    );
}

#[test]
fn catches_delete_user_counting_expired() {
    assert_caught(
        Bug::DeleteUserCountsExpired,
        &["delete_user_counts_live_only"],
    );
}

#[test]
fn catches_unsorted_listing() {
    assert_caught(
        Bug::ListUnsorted,
        &["list_user_metadata", "manager_list_devices_metadata"],
    );
}

#[test]
fn catches_listing_expired() {
    assert_caught(Bug::ListIncludesExpired, &["list_user_excludes_expired"]);
}

#[test]
fn catches_cleanup_ignoring_limit() {
    assert_caught(
        Bug::CleanupIgnoresLimit,
        &["cleanup_removes_only_expired_in_batches"],
    );
}

#[test]
fn catches_immortal_forwarders() {
    assert_caught(
        Bug::ForwarderNeverExpires,
        &[
            "rotate_with_grace_leaves_forwarder",
            "manager_renewal_grace_window",
        ],
    );
}

#[test]
fn catches_touch_bumping_the_version() {
    assert_caught(
        Bug::TouchBumpsVersion,
        &["touch_keeps_version_and_data", "manager_touch_throttled"],
    );
}

#[test]
fn catches_delete_user_ignoring_except() {
    assert_caught(
        Bug::DeleteUserIgnoresExcept,
        &["delete_user_except_one", "manager_logout_other_devices"],
    );
}

#[test]
fn catches_rotation_without_grace() {
    assert_caught(
        Bug::RotateDropsGrace,
        &[
            "rotate_with_grace_leaves_forwarder",
            "manager_renewal_grace_window",
            "manager_concurrent_renewals_same_successor",
        ],
    );
}

#[test]
fn catches_cleanup_of_live_entries() {
    assert_caught(
        Bug::CleanupRemovesLive,
        &[
            "cleanup_removes_only_expired_in_batches",
            "manager_cleanup_expired",
        ],
    );
}

#[test]
fn catches_non_atomic_rotation() {
    assert_caught_by(Bug::RotateNotAtomic, &["concurrent_rotations_one_winner"]);
}

#[test]
fn catches_non_atomic_create() {
    assert_caught_by(Bug::CreateNotAtomic, &["concurrent_creates_one_winner"]);
}

#[test]
fn catches_touch_writing_the_record_back() {
    assert_caught_by(
        Bug::TouchNotAtomic,
        &["concurrent_touch_never_loses_writes"],
    );
}

#[test]
fn catches_listing_ties_in_insertion_order() {
    assert_caught_by(Bug::ListTiesByInsertion, &["list_user_metadata"]);
}

#[test]
fn catches_ignoring_the_absolute_deadline() {
    assert_caught(
        Bug::IgnoresAbsoluteDeadline,
        &["load_expired_absolute_is_none"],
    );
}

#[test]
fn catches_case_insensitive_user_ids() {
    assert_caught(Bug::UsersCaseInsensitive, &["user_ids_compare_exactly"]);
}

#[test]
fn catches_user_ids_ignoring_trailing_spaces() {
    assert_caught(
        Bug::UsersIgnoreTrailingSpaces,
        &["user_ids_compare_exactly"],
    );
}

#[test]
fn catches_user_ids_matched_with_like() {
    assert_caught(Bug::UsersMatchedWithLike, &["user_ids_compare_exactly"]);
}

#[test]
fn catches_user_ids_matched_by_prefix() {
    assert_caught(Bug::UsersMatchedByPrefix, &["user_ids_compare_exactly"]);
}

#[test]
fn catches_normalised_user_ids() {
    assert_caught(Bug::UsersNormalised, &["user_ids_compare_exactly"]);
}

#[test]
fn catches_a_read_cache_serving_revoked_sessions() {
    assert_caught(
        Bug::StaleReadCache,
        &[
            "delete_idempotent",
            "delete_user_all",
            "delete_user_except_one",
            "delete_user_counts_live_only",
            "delete_all_empties_namespace",
            "manager_logout",
            "manager_logout_everywhere",
            "manager_logout_other_devices",
            "manager_revoke_by_handle",
        ],
    );
}

#[test]
fn catches_rotation_dropping_metadata() {
    assert_caught(
        Bug::RotateDropsMeta,
        &["rotate_moves_record", "rotate_with_grace_leaves_forwarder"],
    );
}

#[test]
fn catches_listing_skipping_empty_sessions() {
    assert_caught(Bug::ListSkipsEmptyData, &["list_user_metadata"]);
}

#[test]
fn catches_logout_everywhere_sparing_persistent_logins() {
    assert_caught_by(
        Bug::DeleteUserSparesPersistent,
        &[
            "persistent_logout_and_logout_everywhere",
            "model_persistent_sequences",
        ],
    );
}

#[test]
fn catches_immortal_persistent_logins() {
    assert_caught_by(
        Bug::PersistentNeverExpires,
        &[
            "persistent_idle_and_absolute_expiry",
            "model_persistent_sequences",
        ],
    );
}

#[test]
fn catches_listings_hiding_persistent_logins() {
    assert_caught_by(
        Bug::ListHidesPersistent,
        &[
            "persistent_listed_and_revocable_by_handle",
            "model_persistent_sequences",
        ],
    );
}

/// The checks that need a backend that encrypts at rest.
const AT_REST_CHECKS: &[&str] = &[
    "tampered_ciphertext_fails_closed",
    "ciphertext_bound_to_row",
    "manager_tampered_session_is_an_error",
    "at_rest_no_token_or_plaintext",
    "encryption_never_reuses_a_nonce",
];

/// The toy wrapper with `flaw`, declared as encrypting over a raw memory
/// store (with the raw store's dump hook), run in plain mode.
fn toy_outcome(check: &str, flaw: toy_cipher::Flaw) -> Outcome {
    check_outcome(check, Mode::Plain, move || async move {
        let raw = std::sync::Arc::new(MemoryStore::new());
        let dump = raw.clone();
        TestStore::new(toy_cipher::ToyCipher::new(raw.clone(), flaw))
            .encrypting_over(raw)
            .with_dump(move || {
                let values = dump.dump_raw();
                async move { Ok(values) }
            })
    })
}

#[test]
fn a_declared_wrapper_runs_the_at_rest_checks() {
    for check in AT_REST_CHECKS
        .iter()
        .chain(&["create_then_load_roundtrip", "rotate_moves_record"])
    {
        let got = toy_outcome(check, toy_cipher::Flaw::None);
        assert_eq!(got, Outcome::Passed, "{check} on a sound toy wrapper");
    }
}

#[test]
fn an_undeclared_wrapper_skips_them_visibly() {
    for check in AT_REST_CHECKS {
        let got = check_outcome(check, Mode::Plain, || async {
            TestStore::new(MemoryStore::new())
        });
        assert!(
            matches!(got, Outcome::Skipped(_)),
            "{check} on a plain store: {got:?}"
        );
    }
}

#[test]
fn catches_a_wrapper_without_associated_data() {
    let got = toy_outcome(
        "ciphertext_bound_to_row",
        toy_cipher::Flaw::NoAssociatedData,
    );
    assert!(got.is_failed(), "{got:?}");
}

#[test]
fn catches_a_wrapper_with_a_constant_nonce() {
    let got = toy_outcome(
        "encryption_never_reuses_a_nonce",
        toy_cipher::Flaw::ConstantNonce,
    );
    assert!(got.is_failed(), "{got:?}");
}
