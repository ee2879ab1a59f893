//! # session-store-conformance
//!
//! The public conformance suite for [`SessionBackend`] implementations: every
//! clause of the backend contract (see the `# Contract` sections of
//! [`SessionBackend`]) and of the [`SessionManager`](session_store_core::SessionManager)
//! policy, as named checks that any store — ours or a third party's — runs
//! with one macro call. Every check runs twice: on the store as given and
//! under the [`Encrypted`](session_store_core::Encrypted) wrapper.
//!
//! ## How to test your own backend
//!
//! Add `session-store-conformance` and `tokio` as dev-dependencies, then write
//! `tests/conformance.rs` with a factory that returns a fresh, empty store in
//! a namespace (key prefix, table, temporary directory) no other test uses:
//!
//! ```
//! use std::sync::Arc;
//!
//! use session_store_conformance::{conformance_tests, TestStore};
//! use session_store_core::MemoryStore; // your store here
//!
//! /// A fresh, empty store in its own namespace.
//! async fn store() -> TestStore {
//!     let store = Arc::new(MemoryStore::new());
//!     let raw = store.clone();
//!     TestStore::new(store)
//!         // Optional: every raw byte string the store holds, for the at-rest checks.
//!         .with_dump(move || {
//!             let values = raw.dump_raw();
//!             async move { Ok(values) }
//!         })
//! }
//!
//! conformance_tests!(store);
//! # fn main() {}
//! ```
//!
//! `cargo test --test conformance` then lists every check twice, as
//! `conformance_plain::<check>` and `conformance_encrypted::<check>`; filter by
//! name to run one. More knobs:
//!
//! - **Capabilities.** The suite asks the store
//!   ([`SessionBackend::capabilities`]). A store whose server expires keys on
//!   its own (Redis) reports `counted_cleanup: false`; the cleanup checks then
//!   accept a count of 0 and the model accepts that an expired entry may
//!   already be gone.
//! - **Skipping visibly.** A factory may return [`Setup`] instead of
//!   [`TestStore`]: `Setup::Skip(reason)` prints a `SKIP:` line (for example
//!   when the user opted out of a server), never a silent pass.
//! - **Clusters.** Checks create every rotation successor with
//!   [`fixtures::successor_token`], which honours
//!   [`SessionBackend::rotation_affinity_bits`].
//! - **Environment.** `SESSION_STORE_CONFORMANCE_CASES` (default 256) sets the
//!   number of model-based sequences, `SESSION_STORE_CONFORMANCE_STEPS`
//!   (default 40) their maximum length.
//!
//! What the suite assumes of the factory: each call returns an empty
//! namespace that nothing else touches (checks run in parallel and use fixed
//! key and user names inside it); the runner calls `delete_all` on it after
//! the check. Checks take the real current time as their base instant and
//! only move `now` forward from it, so stores that derive server-side TTLs
//! from deadlines keep every live entry. Errors are compared by meaning
//! (`matches!(e, Error::Conflict)`), never by message.
//!
//! ## The checks
//!
//! **create and load** — `create_collision`,
//! `create_collision_with_expired_entry`, `create_collision_with_forwarder`,
//! `create_then_load_roundtrip`, `create_indexes_user`, `load_missing_is_none`,
//! `load_expired_idle_is_none`, `load_expired_absolute_is_none`.
//!
//! **save** (compare-and-swap) — `save_cas_bumps_version`,
//! `save_stale_version_conflict`, `save_after_delete_no_resurrection`,
//! `save_after_rotate_conflict`, `save_expired_conflict`,
//! `save_on_forwarder_conflict`, `save_moves_user_index`.
//!
//! **touch** — `touch_extends_idle_only`, `touch_capped_by_absolute`,
//! `touch_never_moves_backwards`, `touch_keeps_version_and_data`,
//! `touch_missing_false`.
//!
//! **rotate** — `rotate_moves_record`, `rotate_stale_conflict`,
//! `rotate_forwarder_conflict`, `rotate_into_existing_already_exists`,
//! `rotate_with_grace_leaves_forwarder`.
//!
//! **delete, users, namespace, cleanup** — `delete_idempotent`,
//! `delete_user_all`, `delete_user_except_one`, `delete_user_counts_live_only`,
//! `list_user_metadata`, `list_user_excludes_expired`,
//! `delete_all_empties_namespace`, `cleanup_removes_only_expired_in_batches`.
//!
//! **scan** (skipped when the store reports no
//! [`Capabilities::scan`](session_store_core::Capabilities::scan)) —
//! `scan_pages_cover_every_entry`, `scan_limit_and_cursor_resume`,
//! `scan_during_concurrent_writes_keeps_stable_entries`.
//!
//! **concurrency** — `concurrent_saves_all_land` (16 tasks × 20 increments
//! with load-modify-save), `concurrent_rotations_one_winner`,
//! `concurrent_creates_one_winner`, `concurrent_touch_never_loses_writes`,
//! `concurrent_save_and_delete_no_resurrection`,
//! `manager_concurrent_renewals_same_successor`.
//!
//! **manager policy** (over the store, with a manual clock) —
//! `manager_idle_timeout`, `manager_absolute_timeout_not_extended_by_activity`,
//! `manager_touch_throttled`, `manager_login_rotation_resets_timers_and_binds_user`,
//! `manager_privilege_rotation_keeps_absolute`, `manager_renewal_grace_window`,
//! `manager_login_never_has_grace`, `manager_logout`, `manager_logout_everywhere`,
//! `manager_logout_other_devices`, `manager_list_devices_metadata`,
//! `manager_revoke_by_handle`, `manager_stored_hash_is_not_a_token`,
//! `manager_limits_too_large_writes_nothing`, `manager_per_user_cap_evict_oldest`,
//! `manager_per_user_cap_refuse`, `manager_unknown_token_never_creates`,
//! `manager_save_is_compare_and_swap`, `manager_cleanup_expired`,
//! `manager_events_never_carry_tokens`.
//!
//! **bad input** — `manager_malformed_tokens_invalid_id` (empty, too long,
//! wrong alphabet, NUL, non-UTF-8, glob, SQL, `%`, 1 MiB, handle text...),
//! `manager_invalid_id_before_io`.
//!
//! **model-based** — `model_based_sequences`: random sequences of every
//! operation (including clock jumps past deadlines) over a small pool of keys
//! and users, each answer compared with an independent reference model
//! (`proptest-state-machine`; failures shrink to a minimal sequence).
//!
//! **at rest** — `tampered_ciphertext_fails_closed`, `ciphertext_bound_to_row`,
//! `manager_tampered_session_is_an_error` (encrypted mode; they write raw
//! records through [`Ctx::inner`]) and
//! **corrupted or foreign data** (through the manager: no access, an
//! `Event::Corrupted` with the key's short hash, the entry removed; devices
//! list, logins under a cap and log out everywhere keep working) —
//! `corrupt_undecodable_record_is_contained` and
//! `corrupt_foreign_value_is_contained` (need the raw-write hook,
//! [`TestStore::with_raw_damage`]; `SKIP:` without one),
//! `corrupt_undecodable_metadata_is_contained`,
//! `corrupt_undecryptable_ciphertext_is_contained`.
//!
//! `at_rest_no_token_or_plaintext` (needs the dump hook; prints `SKIP:`
//! without one): no token in any spelling, and under encryption no session
//! data or client metadata, in any stored byte string.
//!
//! ## Writing extra checks
//!
//! A check is a `pub async fn name(ctx: Ctx)` that panics on failure and
//! works through `ctx.backend` only; [`fixtures`] has the helpers the
//! built-in checks use. [`run_check`] runs a registered check by name.
#![forbid(unsafe_code)]
#![deny(missing_docs)]
#![cfg_attr(docsrs, feature(doc_cfg))]

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use session_store_core::SessionBackend;

mod checks;
pub mod fixtures;

pub use checks::{CheckFn, Ctx, CHECKS};

/// A boxed future, as stored in the suite's hooks.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Dumps every raw byte string a backend holds in the test namespace (keys,
/// values, columns), for the at-rest checks.
pub type DumpFn =
    Arc<dyn Fn() -> BoxFuture<'static, session_store_core::Result<Vec<Vec<u8>>>> + Send + Sync>;

/// Damage a store's raw-write hook writes under a key, underneath its
/// encoding (see [`TestStore::with_raw_damage`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum RawDamage {
    /// The stored record made undecodable by the store's own decoder: a
    /// flipped kind byte, a column out of range or of the wrong type.
    Undecodable,
    /// Something the store never writes under a key: a value of another
    /// type (a Redis hash), bytes of another format, a user id that is not
    /// UTF-8.
    Foreign,
}

/// Writes [`RawDamage`] under a key; `Ok(false)` when nothing is stored there.
pub type RawDamageFn = Arc<
    dyn Fn(
            session_store_core::StorageKey,
            RawDamage,
        ) -> BoxFuture<'static, session_store_core::Result<bool>>
        + Send
        + Sync,
>;

/// A backend under test, as a factory returns it: a fresh, empty store in a
/// namespace (key prefix, table, temp dir) that no other test uses.
#[derive(Clone)]
pub struct TestStore {
    /// The backend, as frameworks hold it.
    pub backend: Arc<dyn SessionBackend>,
    /// Optional at-rest hook.
    pub dump: Option<DumpFn>,
    /// Optional raw-write hook, for the corruption checks.
    pub raw_damage: Option<RawDamageFn>,
}

impl TestStore {
    /// Wraps a backend, with no dump hook. Its capabilities are what
    /// [`SessionBackend::capabilities`] reports.
    pub fn new(backend: impl SessionBackend + 'static) -> Self {
        TestStore {
            backend: Arc::new(backend),
            dump: None,
            raw_damage: None,
        }
    }

    /// Adds the raw-write hook: `damage(key, how)` writes [`RawDamage`] under
    /// `key` in this test's namespace, underneath the store's encoding (and
    /// keeps any server-side TTL). The `corrupt_undecodable_record_is_contained`
    /// and `corrupt_foreign_value_is_contained` checks need it and print
    /// `SKIP:` without it.
    pub fn with_raw_damage<F, Fut>(mut self, damage: F) -> Self
    where
        F: Fn(session_store_core::StorageKey, RawDamage) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = session_store_core::Result<bool>> + Send + 'static,
    {
        self.raw_damage = Some(Arc::new(move |k, how| Box::pin(damage(k, how))));
        self
    }

    /// Adds the at-rest hook: `dump` returns every raw byte string stored in
    /// this test's namespace.
    pub fn with_dump<F, Fut>(mut self, dump: F) -> Self
    where
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: Future<Output = session_store_core::Result<Vec<Vec<u8>>>> + Send + 'static,
    {
        self.dump = Some(Arc::new(move || Box::pin(dump())));
        self
    }
}

impl std::fmt::Debug for TestStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestStore")
            .field("backend", &self.backend)
            .field("capabilities", &self.backend.capabilities())
            .field("dump", &self.dump.is_some())
            .field("raw_damage", &self.raw_damage.is_some())
            .finish()
    }
}

/// What a factory returns: a store to test, or a visible reason to skip
/// (for example a server the user explicitly opted out of).
#[derive(Debug)]
pub enum Setup {
    /// Run the check against this store.
    Run(TestStore),
    /// Skip the check; the reason is printed as a `SKIP:` line.
    Skip(String),
}

impl From<TestStore> for Setup {
    fn from(store: TestStore) -> Self {
        Setup::Run(store)
    }
}

/// Whether a check runs on the bare backend or through the encryption wrapper.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// The backend as given.
    Plain,
    /// The backend wrapped in [`Encrypted`](session_store_core::Encrypted) with a test keyring.
    Encrypted,
}

/// Runs one named check against a fresh store from `factory`, in its own
/// multi-threaded tokio runtime. Used by [`conformance_tests!`]; call it
/// directly to run a single check.
///
/// # Panics
/// When the check fails (that is how a test fails) or `name` is unknown.
pub fn run_check<F, Fut>(name: &str, mode: Mode, factory: F)
where
    F: FnOnce() -> Fut,
    Fut: Future,
    Fut::Output: Into<Setup>,
{
    checks::run(name, mode, factory)
}

/// Generates one `#[test]` per conformance check, in two modules:
/// `conformance_plain` and `conformance_encrypted`. The argument is the path
/// of an `async fn()` that returns a fresh, empty store: a [`TestStore`] or a
/// [`Setup`] (which can also skip, visibly).
#[macro_export]
macro_rules! conformance_tests {
    ($factory:path) => {
        mod conformance_plain {
            #[allow(unused_imports)]
            use super::*;
            $crate::__for_each_check!($crate::__emit_test, $factory, $crate::Mode::Plain);
        }
        mod conformance_encrypted {
            #[allow(unused_imports)]
            use super::*;
            $crate::__for_each_check!($crate::__emit_test, $factory, $crate::Mode::Encrypted);
        }
    };
}

#[doc(hidden)]
#[macro_export]
macro_rules! __emit_test {
    ($factory:path, $mode:expr; $($name:ident),* $(,)?) => {
        $(
            #[test]
            fn $name() {
                $crate::run_check(stringify!($name), $mode, $factory);
            }
        )*
        #[test]
        fn every_check_is_listed() {
            let listed: &[&str] = &[$(stringify!($name)),*];
            $crate::assert_all_listed(listed);
        }
    };
}

/// Asserts that the macro's list and the check registry agree (guards the suite itself).
#[doc(hidden)]
pub fn assert_all_listed(listed: &[&str]) {
    let mut a: Vec<&str> = listed.to_vec();
    let mut b: Vec<&str> = CHECKS.iter().map(|c| c.0).collect();
    a.sort_unstable();
    b.sort_unstable();
    assert_eq!(a, b, "conformance macro list and CHECKS registry differ");
}

/// The keyring the suite uses in [`Mode::Encrypted`]: a random primary key
/// (id 2) and a random decrypt-only key (id 1).
pub fn test_keyring() -> session_store_core::Keyring {
    use session_store_core::{EncryptionKey, Keyring};
    Keyring::new(2, EncryptionKey::generate()).with_decrypt_key(1, EncryptionKey::generate())
}

#[cfg(test)]
mod tests {
    /// The crate docs name every registered check (and nothing else is
    /// registered without being documented).
    #[test]
    fn docs_list_every_check() {
        let docs = include_str!("lib.rs");
        for (name, _) in super::CHECKS {
            assert!(
                docs.contains(&format!("`{name}`")),
                "check {name} is missing from the crate docs"
            );
        }
    }
}
