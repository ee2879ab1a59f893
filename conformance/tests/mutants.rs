//! The suite tests itself: deliberately broken stores (the reference store
//! with one contract clause violated) must fail the checks named after that
//! clause, and the model-based check must catch every one of them.

use std::panic::{catch_unwind, AssertUnwindSafe};

use session_store_conformance::{run_check, Mode, TestStore, CHECKS};
use session_store_core::{
    async_trait, Lookup, MemoryStore, Result, Rotation, SessionBackend, SessionRecord,
    SessionSummary, StorageKey, Timestamp,
};

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
}

#[derive(Debug)]
struct Mutant {
    inner: MemoryStore,
    bug: Bug,
}

const LONG_AGO: Timestamp = Timestamp::EPOCH;

#[async_trait]
impl SessionBackend for Mutant {
    async fn create(&self, key: &StorageKey, r: &SessionRecord) -> Result<()> {
        if self.bug == Bug::CreateOverwrites {
            self.inner.delete(key).await?;
        }
        self.inner.create(key, r).await
    }

    async fn load(&self, key: &StorageKey, now: Timestamp) -> Result<Option<Lookup>> {
        match self.bug {
            Bug::LoadIgnoresExpiry => self.inner.load(key, LONG_AGO).await,
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
        match self.bug {
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

/// Whether `check` fails against a store with `bug`.
fn fails(check: &str, bug: Bug) -> bool {
    catch_unwind(AssertUnwindSafe(|| {
        run_check(check, Mode::Plain, move || async move {
            TestStore::new(Mutant {
                inner: MemoryStore::new(),
                bug,
            })
        })
    }))
    .is_err()
}

fn assert_caught(bug: Bug, checks: &[&str]) {
    for check in checks.iter().chain(&["model_based_sequences"]) {
        assert!(
            CHECKS.iter().any(|c| c.0 == *check),
            "no check named {check}"
        );
        assert!(fails(check, bug), "{check} did not catch {bug:?}");
    }
}

#[test]
fn catches_save_without_cas() {
    // (concurrent_saves_all_land catches it only when the tasks interleave,
    // which an in-process store makes a matter of luck: not asserted.)
    assert_caught(Bug::SaveIgnoresVersion, &["save_stale_version_conflict"]);
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
