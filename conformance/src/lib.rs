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
//! Add `session-store-conformance` as a dev-dependency (the suite brings its
//! own tokio runtime; `session-store-core` you already have), then write
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
//!   [`TestStore`]: `Setup::Skip(reason)` skips every check (for example
//!   when the user opted out of a server), never a silent pass. A skipped
//!   check still shows as `ok` in the test list (libtest has no run-time
//!   skip), so the runner writes a line straight to standard error, where
//!   `cargo test` does not capture it, right before the test's own line:
//!
//!   ```text
//!   SKIP: conformance check at_rest_no_token_or_plaintext (Plain): no dump hook (TestStore::with_dump)
//!   test conformance_plain::at_rest_no_token_or_plaintext ... ok
//!   ```
//!
//!   The same reason comes back as [`Outcome::Skipped`] from [`check_outcome`].
//! - **Wrappers.** A backend that encrypts at rest by itself (a third-party
//!   encryption wrapper) is declared with [`TestStore::encrypting_over`]
//!   and the raw store beneath it: the tamper, row-binding, nonce and at-rest
//!   checks then run against it in plain mode. A caching or metrics wrapper
//!   needs nothing: test it like any store.
//! - **Clusters.** Checks create every rotation successor with
//!   [`fixtures::successor_token`], which honours
//!   [`SessionBackend::rotation_affinity_bits`].
//! - **Environment.** `SESSION_STORE_CONFORMANCE_CASES` (default 256) sets the
//!   number of model-based sequences (a quarter of it, default 64, for the
//!   persistent-login model), `SESSION_STORE_CONFORMANCE_STEPS`
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
//! Each check below is one `#[test]` per mode, named `conformance_plain::<check>`
//! and `conformance_encrypted::<check>`. The line after a name says which
//! clause it proves and how; a failure message names the clause too.
//!
//! **create and load**
//!
//! - `create_collision` — `create` inserts only into an absent key: a second create is `AlreadyExists` and the first record stays.
//! - `create_collision_with_expired_entry` — an entry past its deadlines but not yet cleaned up still blocks `create` (`AlreadyExists`).
//! - `create_collision_with_forwarder` — a renewal forwarder blocks `create` under its key.
//! - `create_then_load_roundtrip` — `load` returns every field exactly as created: version, binary data and metadata included.
//! - `create_indexes_user` — a created session of a user is listed once, under its key, and only what `load` finds is listed.
//! - `load_missing_is_none` — `load` of nothing is `Ok(None)`, not an error.
//! - `load_expired_idle_is_none` — read-time expiry on the idle deadline: live strictly before it, `None` from it on, cleanup or not.
//! - `load_expired_absolute_is_none` — read-time expiry on the absolute deadline, even with the idle deadline further ahead.
//!
//! **save** (compare-and-swap)
//!
//! - `save_cas_bumps_version` — `save` writes every field, stores and returns `version + 1`; the next save must present it.
//! - `save_stale_version_conflict` — a stale or future version is `Conflict` and nothing is written.
//! - `save_after_delete_no_resurrection` — saving a deleted session's copy is `Conflict`; it does not come back, in the user index either.
//! - `save_after_rotate_conflict` — saving the old key's copy after a rotation is `Conflict`; the successor is untouched.
//! - `save_expired_conflict` — a session expired at `now` cannot be saved, even at the right version.
//! - `save_on_forwarder_conflict` — `save` on a renewal forwarder is `Conflict` and the forwarder stays.
//! - `save_moves_user_index` — the user index follows a changed `user_id` (anonymous → alice → bob → anonymous).
//!
//! **touch**
//!
//! - `touch_extends_idle_only` — `touch` moves `idle_deadline` and `last_seen_at` and nothing else.
//! - `touch_capped_by_absolute` — `touch` never moves the idle deadline past the absolute one.
//! - `touch_never_moves_backwards` — an earlier idle deadline or last-seen time never moves the stored ones back.
//! - `touch_keeps_version_and_data` — `touch` keeps version and data, so a save based on the pre-touch copy still succeeds.
//! - `touch_missing_false` — `touch` of a missing, expired or forwarded key is `false` and writes nothing.
//!
//! **rotate**
//!
//! - `rotate_moves_record` — the successor holds the rotated record at `version + 1` (metadata set; empty and non-empty data), the old key loads nothing, the index follows.
//! - `rotate_stale_conflict` — a stale version or a missing, expired or forwarded source is `Conflict`; the successor is not created.
//! - `rotate_forwarder_conflict` — a forwarder cannot be rotated again (`Conflict`).
//! - `rotate_into_existing_already_exists` — an occupied successor is `AlreadyExists` and nothing changes; a stale source is reported first.
//! - `rotate_with_grace_leaves_forwarder` — with grace the old key is a forwarder (successor, sealed token, `until`) live strictly before `until`; the successor is listed with its metadata.
//!
//! **delete, users, namespace, cleanup** (each revocation loads afterwards, so a store or wrapper that keeps serving a revoked session fails)
//!
//! - `delete_idempotent` — `delete` removes at once (live, expired or forwarder) and reports whether something was there; again is `false`.
//! - `delete_user_all` — `delete_user` removes every session of the user and only theirs (`alice2` is another user).
//! - `delete_user_except_one` — `delete_user` with `except` keeps exactly that session; `except` naming another user's session protects nothing.
//! - `delete_user_counts_live_only` — `delete_user` removes expired sessions too but counts only those live at `now`.
//! - `list_user_metadata` — every summary field exact, ordered by `created_at` then key over fixed keys inserted in both orders, empty and non-empty data.
//! - `list_user_excludes_expired` — expired sessions and renewal forwarders are not listed.
//! - `delete_all_empties_namespace` — after `delete_all` nothing loads, every list is empty and every key is free.
//! - `user_ids_compare_exactly` — user ids compare byte for byte: ids differing only in case, by a prefix, by surrounding spaces, by Unicode normalisation or as `LIKE` patterns never share sessions.
//! - `cleanup_removes_only_expired_in_batches` — `cleanup_expired` removes only entries not live at `now`, at most `limit` per call, and counts them (only the safety half without `counted_cleanup`).
//!
//! **scan** (skipped when the store reports no
//! [`Capabilities::scan`](session_store_core::Capabilities::scan))
//!
//! - `scan_pages_cover_every_entry` — walking page by page returns every entry of the namespace exactly as `load` returns it.
//! - `scan_limit_and_cursor_resume` — `limit` bounds every page, a cursor resumes the walk, `limit == 0` and a foreign cursor are `InvalidInput`.
//! - `scan_during_concurrent_writes_keeps_stable_entries` — under concurrent writes every entry that exists for the whole scan is returned at least once.
//!
//! **concurrency** (forced interleavings: barriers release all tasks at once, several rounds; the reasoning is on each check)
//!
//! - `concurrent_saves_all_land` — lockstep rounds where 16 tasks save one loaded version (exactly one wins), then 16 × 20 free-running increments, none lost.
//! - `concurrent_rotations_one_winner` — 16 rotations of one session released together, 8 rounds: exactly one wins, one successor exists.
//! - `concurrent_creates_one_winner` — 16 creates of one key released together, 8 rounds: exactly one wins, its record intact.
//! - `concurrent_touch_never_loses_writes` — 48 rounds of a save and a touch released together: the save succeeds and is never overwritten.
//! - `concurrent_save_and_delete_no_resurrection` — savers racing a delete never bring the session back.
//!
//! **manager policy** (the [`SessionManager`](session_store_core::SessionManager) over the store, with a manual clock)
//!
//! - `manager_idle_timeout` — a session unused for `idle_timeout` is gone; each use past the touch interval moves the deadline.
//! - `manager_absolute_timeout_not_extended_by_activity` — loads and saves never extend the absolute timeout.
//! - `manager_touch_throttled` — a load within `touch_interval` writes nothing; the first one after it touches.
//! - `manager_expiry_on_read_event` — loading a session the store still holds past its idle or absolute deadline raises `Event::Expired` (deadline, client IP); an unknown token `Event::LookupMiss`.
//! - `manager_login_rotation_resets_timers_and_binds_user` — login: new token, old token dead at once, user bound, `auth_time` now, deadlines reset, data kept.
//! - `manager_privilege_rotation_keeps_absolute` — privilege change: new token, old dead at once, absolute deadline kept.
//! - `manager_renewal_grace_window` — renewal: within the grace window the old token reaches the successor, after it nothing.
//! - `manager_concurrent_renewals_same_successor` — concurrent renewals of one token in the grace window end on one successor.
//! - `manager_login_never_has_grace` — login and privilege rotations never leave a forwarder.
//! - `manager_logout` — logout: loaded right before, gone right after, idempotent, a stale copy cannot be saved back.
//! - `manager_logout_everywhere` — every session of the user (loaded right before) is gone, no one else's.
//! - `manager_logout_other_devices` — every session of the user but the current one is gone (each loaded right before).
//! - `manager_list_devices_metadata` — devices show IP, user agent, label, times and the current flag, oldest first, own live sessions only.
//! - `manager_revoke_by_handle` — revoking by handle removes only the user's own session (loaded right before); a handle is never a token.
//! - `manager_stored_hash_is_not_a_token` — a storage key spelled as a token is not accepted as that session's token.
//! - `manager_limits_too_large_writes_nothing` — data, user id and metadata over the limit are `TooLarge` and write nothing.
//! - `manager_per_user_cap_evict_oldest` — a login over the per-user cap evicts that user's oldest sessions.
//! - `manager_per_user_cap_refuse` — a login over the cap is `TooManySessions` and changes nothing.
//! - `manager_unknown_token_never_creates` — an unknown well-formed token finds nothing and creates nothing.
//! - `manager_save_is_compare_and_swap` — of two copies of one session the second save is `Conflict`; the first one's data stays.
//! - `manager_cleanup_expired` — manager cleanup loops over batches until every expired entry is gone; live ones survive.
//! - `manager_events_never_carry_tokens` — every lifecycle event carries short key hashes, never a token's text.
//!
//! **persistent logins** (remember me, refresh tokens: [`session_store_core::persistent`])
//!
//! - `persistent_rotation_on_use` — a live token yields a logged-in session (original `auth_time`, marked remembered, linked) and a successor in the same family; the successor works next.
//! - `persistent_single_use_under_concurrency` — 16 uses of one token released together, 8 rounds: exactly one rotates; with a grace all get the same successor, without one the racers count as reuse.
//! - `persistent_reuse_revokes_family` — a rotated token presented after the grace revokes the family, its successor and (by default) the sessions it minted, with `Event::PersistentReuse`.
//! - `persistent_grace_joins_same_successor` — inside the grace the rotated token gets the same successor; after it, reuse.
//! - `persistent_idle_and_absolute_expiry` — 14 days unused or 30 days after the login, the family is gone; use never moves the absolute deadline.
//! - `persistent_logout_and_logout_everywhere` — logout ends the device's family, log out everywhere every family of the user and no one else's.
//! - `persistent_listed_and_revocable_by_handle` — families are listed as persistent logins with metadata and the current flag, not counted by the per-user cap, revoked by handle by their owner only.
//! - `persistent_malformed_tokens_invalid_id_before_io` — malformed persistent tokens, session tokens and handles are `InvalidId`, oversized metadata `TooLarge`, before any backend call.
//! - `persistent_hashed_at_rest` — no persistent token in any spelling (nor its family id or secret bytes) at rest; under encryption no family metadata either (needs the dump hook).
//!
//! **bad input**
//!
//! - `manager_malformed_tokens_invalid_id` — empty, too long, wrong alphabet, NUL, non-UTF-8, glob, SQL, `%`, 1 MiB and handle text are `InvalidId`; the store is unchanged.
//! - `manager_invalid_id_before_io` — malformed tokens and oversized creates are rejected without a single backend call.
//!
//! **model-based**
//!
//! - `model_based_sequences` — random sequences of every operation, compared answer by answer with an independent reference model (below).
//! - `model_persistent_sequences` — random sequences of persistent-login operations through the manager (logins with and without remember me, remember on current and stale copies, resume with current, just-rotated, old, forged and unknown tokens, concurrent resumes, password logins, logout, logout everywhere, revoke by handle by the owner and by others, device listings, clock steps inside the grace and across the 14-day and 30-day deadlines), compared answer by answer with an independent model of token families (below).
//!
//! **corrupted or foreign data** (through the manager: no access, an
//! `Event::Corrupted` with the key's short hash, the entry removed; devices
//! list, logins under a cap and log out everywhere keep working)
//!
//! - `corrupt_undecodable_record_is_contained` — a record the store's own decoder rejects is contained (needs [`TestStore::with_raw_damage`]; skipped without it).
//! - `corrupt_foreign_value_is_contained` — foreign bytes or a value of another type under a session's key are contained (needs the raw-damage hook).
//! - `corrupt_undecodable_metadata_is_contained` — client metadata that no longer parses (or opens) is contained.
//! - `corrupt_undecryptable_ciphertext_is_contained` — ciphertext under a key the reader's keyring lacks is contained.
//!
//! **at rest** (the first four only for a backend that encrypts: [`Mode::Encrypted`], or a store declared with [`TestStore::encrypting_over`]; they write raw records through [`Ctx::inner`])
//!
//! - `tampered_ciphertext_fails_closed` — a flipped bit, truncation or extension of stored ciphertext is `Error::Decrypt` (a damaged row in listings), never partial data.
//! - `ciphertext_bound_to_row` — a blob copied to another row, swapped with metadata, or under an edited user id or absolute deadline fails with `Error::Decrypt`.
//! - `manager_tampered_session_is_an_error` — through the manager a tampered session is an error, never "no session" and never partial data.
//! - `encryption_never_reuses_a_nonce` — two seals of one record differ (two rows, or twice in one row) and no two seals share a keystream.
//! - `at_rest_no_token_or_plaintext` — no token in any spelling, and under encryption no session data or client metadata, in any stored byte string (needs [`TestStore::with_dump`]; skipped without it).
//!
//! ### The model-based check
//!
//! The reference model is a `BTreeMap` from a pool of four keys to entries,
//! in model time (milliseconds from the case's base instant). The user pool
//! holds ids that only look alike (`u`, `U`, `u `, `u_`, and `café` in NFC and
//! NFD), so a store that does not compare user ids byte for byte mixes their
//! sessions up. Records have every shape the contract allows, including an idle
//! deadline past the absolute one (the session then ends at the absolute one).
//! After every step whatever the step removed (delete, delete_user, rotation,
//! cleanup) or let expire (a clock jump past either deadline) is loaded again
//! and must be gone. Creates and listings favour users who already have
//! sessions and their lookalikes, so listings of several sessions and
//! near-miss user ids come up in every run.
//!
//! A failure prints the first step whose answer differed (`step N (...) at
//! model time Tms: the store answered X, the model expected Y`) and the
//! shrunk sequence. The answers are:
//!
//! - `Created(Ok | Err(AlreadyExists))`, `Loaded(entry)`, `Written(Ok(version) | Err(Conflict))`, `Flag(bool)` (touch, delete), `Count(n)` (delete_user: live sessions removed), `Listed(summaries)` (list_user, keys and users as pool indices), `Advanced` (the clock moved).
//! - `Cleaned { removed, swept }`: `removed` is what `cleanup_expired` returned; `swept` is how many entries the model still knew to be expired that the suite then found and deleted itself, one `delete` per key, after the cleanup call. With counted cleanup, `removed` is `min(expired, limit)` and `swept` the rest; a store whose cleanup removed a live entry, or reported a wrong count, shows here.
//!
//! ### The persistent-login model
//!
//! `model_persistent_sequences` drives a [`SessionManager`](session_store_core::SessionManager)
//! with a manual clock over the store (sessions: 1 h idle, 1 day absolute,
//! touches after 60 s; families: 30 days absolute, 14 days idle) and keeps
//! an independent model of each family (user, original login time, current
//! token, the token rotated last and the end of its grace, idle and absolute
//! deadlines, revoked or not) and of each session (user, deadlines, version,
//! remembered or not, linked family). Each case draws its grace (5 s, or 0)
//! and whether reuse revokes the family's sessions. The users are `alice`,
//! `bob` and the lookalike `Alice`. Answers compared: whether a resume
//! returns a session, joined the grace or rotated, the successor (the same
//! token as the concurrent rotation's inside the grace, a fresh one
//! otherwise), the new session's user, `auth_time`, remembered flag and
//! family; reuse with the number of sessions the `PersistentReuse` event
//! says it revoked; for races (2 to 4 concurrent uses of one token) how
//! many rotated, joined or got nothing and whether all got one successor;
//! loads, login rotations and remembers (`Conflict` for a stale copy or an
//! ended session); the count of log out everywhere; revoke's answer; and the
//! devices list (sessions and persistent logins, current flags, deadlines).
//! After every step each session and family live before or after it is
//! loaded raw at the model's instant and must exist exactly when the model
//! says so, with the model's idle and absolute deadlines; keys retired by a
//! password login must stay dead.
//!
//! It runs a quarter of `SESSION_STORE_CONFORMANCE_CASES` sequences
//! (default 64: each step is several manager operations and a sweep of raw
//! loads) of up to `SESSION_STORE_CONFORMANCE_STEPS` steps (default 40).
//!
//! ## Writing extra checks
//!
//! A check is a `pub async fn name(ctx: Ctx)` that panics on failure, calls
//! [`Ctx::skip`] and returns when it does not apply, and works through
//! `ctx.backend` (and `ctx.inner` for raw records) only; [`fixtures`] has the
//! helpers the built-in checks use.
//!
//! ## Running checks from code
//!
//! [`check_outcome`] runs a registered check against a factory and returns an
//! [`Outcome`] (passed, skipped with a reason, failed with a message) instead
//! of panicking; [`run_check_in`] does the same with a [`Ctx`] you built
//! yourself (your own wrapper stack, your own raw store); [`run_check`] is
//! what the macro's tests call.
#![forbid(unsafe_code)]
#![deny(missing_docs)]
#![cfg_attr(docsrs, feature(doc_cfg))]

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use session_store_core::SessionBackend;

mod checks;
pub mod fixtures;

pub use checks::{CheckFn, Ctx, Outcome, CHECKS};

/// A boxed future, as stored in the suite's hooks.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Dumps every raw byte string a backend holds in the test namespace, for
/// the at-rest checks, which look for a token, session data or client
/// metadata as a substring of any one of them.
///
/// "Every raw byte string" means what a thief of the storage would read:
/// for a store that serialises, each stored key and value as bytes (each
/// Redis key and value, each SQL column of each row, each sled key and
/// value); for a store that keeps Rust values (in memory), each field that
/// holds bytes or text, as its own string: storage keys, user ids, data,
/// metadata, forwarders' successor keys and sealed tokens. Numbers and time
/// stamps may be left out.
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
    /// The raw store beneath `backend`, when `backend` encrypts at rest
    /// (set by [`TestStore::encrypting_over`]).
    pub raw: Option<Arc<dyn SessionBackend>>,
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
            raw: None,
            raw_damage: None,
        }
    }

    /// Declares that the backend under test encrypts at rest on top of
    /// `raw` (a third-party encryption wrapper, say): the tamper, row-binding
    /// and nonce checks then run in [`Mode::Plain`] against the backend
    /// itself, writing raw records through `raw`, and the at-rest check looks
    /// for session data and client metadata too. The runner cleans up
    /// through `raw`.
    ///
    /// ```
    /// use std::sync::Arc;
    ///
    /// use session_store_conformance::TestStore;
    /// use session_store_core::{Encrypted, EncryptionKey, Keyring, MemoryStore};
    ///
    /// let raw = Arc::new(MemoryStore::new());
    /// let keyring = Keyring::new(1, EncryptionKey::generate());
    /// // Your wrapper here; ours stands in for it.
    /// let wrapper = Encrypted::new(raw.clone(), keyring);
    /// let store = TestStore::new(wrapper).encrypting_over(raw);
    /// # let _ = store;
    /// ```
    pub fn encrypting_over(mut self, raw: Arc<dyn SessionBackend>) -> Self {
        self.raw = Some(raw);
        self
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
    /// this test's namespace (see [`DumpFn`] for what that means for a store
    /// that does not serialise).
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
            .field("encrypting_over", &self.raw)
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
/// multi-threaded tokio runtime, and returns its [`Outcome`]; the namespace
/// is cleaned up (`delete_all`) afterwards whatever happened. Never panics.
///
/// ```
/// use session_store_conformance::{check_outcome, Mode, Outcome, TestStore};
/// use session_store_core::MemoryStore;
///
/// let outcome = check_outcome("at_rest_no_token_or_plaintext", Mode::Plain, || async {
///     TestStore::new(MemoryStore::new()) // no dump hook: the check skips
/// });
/// assert!(matches!(outcome, Outcome::Skipped(_)));
/// ```
pub fn check_outcome<F, Fut>(name: &str, mode: Mode, factory: F) -> Outcome
where
    F: FnOnce() -> Fut,
    Fut: Future,
    Fut::Output: Into<Setup>,
{
    checks::run(name, mode, factory)
}

/// Runs one named check with a context you built yourself ([`Ctx::new`],
/// [`Ctx::encrypting_over`], [`Ctx::with_dump`]), on the current tokio
/// runtime, and returns its [`Outcome`]. Nothing is cleaned up: the caller
/// owns the namespace. Never panics.
pub async fn run_check_in(name: &str, ctx: Ctx) -> Outcome {
    checks::run_in(name, ctx).await
}

/// Runs one named check as a test: like [`check_outcome`], and then
///
/// - **passed**: returns;
/// - **skipped**: writes `SKIP: <name>: <reason>` straight to the process's
///   standard error (not through `eprintln!`, which the test harness
///   captures), so the line shows in plain `cargo test` output, and returns;
/// - **failed**: panics with the check's message (that is how a test fails).
///
/// Used by [`conformance_tests!`].
///
/// # Panics
/// When the check fails or `name` is unknown.
pub fn run_check<F, Fut>(name: &str, mode: Mode, factory: F)
where
    F: FnOnce() -> Fut,
    Fut: Future,
    Fut::Output: Into<Setup>,
{
    match check_outcome(name, mode, factory) {
        Outcome::Passed => {}
        Outcome::Skipped(reason) => report_skip(name, mode, &reason),
        Outcome::Failed(msg) => panic!("conformance check {name} ({mode:?}) failed: {msg}"),
    }
}

/// Writes a `SKIP:` line to file descriptor 2 directly: libtest captures
/// only the `print!`/`eprint!` family, so this line stays visible.
fn report_skip(name: &str, mode: Mode, reason: &str) {
    use std::io::Write as _;
    let line = format!("SKIP: conformance check {name} ({mode:?}): {reason}\n");
    let _ = std::io::stderr().lock().write_all(line.as_bytes());
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
    /// The README's "Testing your own backend" snippet is `tests/readme.rs`
    /// word for word, so what readers copy is compiled and run.
    #[test]
    fn readme_snippet_is_the_compiled_test() {
        let readme = include_str!("../../README.md");
        let section = readme
            .split("## Testing your own backend")
            .nth(1)
            .expect("the README's 'Testing your own backend' section");
        let snippet = section
            .split("```rust\n")
            .nth(1)
            .and_then(|rest| rest.split("```").next())
            .expect("a rust code block in the section");
        assert_eq!(snippet, include_str!("../tests/readme.rs"));
    }

    /// The crate docs list every registered check once, as a bullet with a
    /// one-line description (`- `name` — what it proves`), and list nothing
    /// that is not registered.
    #[test]
    fn docs_list_every_check() {
        let docs = include_str!("lib.rs");
        let section = docs
            .split("//! ## The checks")
            .nth(1)
            .and_then(|rest| rest.split("//! ### ").next())
            .expect("a '## The checks' section");
        let mut listed = Vec::new();
        for line in section.lines() {
            let Some(item) = line.strip_prefix("//! - `") else {
                continue;
            };
            let (name, rest) = item.split_once('`').expect("a closing backtick");
            let description = rest.strip_prefix(" — ").unwrap_or("");
            assert!(
                description.len() > 20,
                "check {name}: its bullet needs a one-line description after ` — `"
            );
            listed.push(name);
        }
        let mut registered: Vec<&str> = super::CHECKS.iter().map(|c| c.0).collect();
        let mut sorted = listed.clone();
        sorted.sort_unstable();
        registered.sort_unstable();
        let dupes: Vec<&&str> = sorted
            .windows(2)
            .filter(|w| w[0] == w[1])
            .map(|w| &w[0])
            .collect();
        assert!(dupes.is_empty(), "listed twice in the docs: {dupes:?}");
        let missing: Vec<&&str> = registered.iter().filter(|n| !sorted.contains(n)).collect();
        let extra: Vec<&&str> = sorted.iter().filter(|n| !registered.contains(n)).collect();
        assert!(
            missing.is_empty() && extra.is_empty(),
            "registered but not documented: {missing:?}; documented but not registered: {extra:?}"
        );
    }
}
