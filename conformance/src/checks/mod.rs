//! The check registry and runner.

use std::future::Future;
use std::sync::{Arc, Mutex};

use session_store_core::{Capabilities, SessionBackend};

use crate::{BoxFuture, DumpFn, Mode, Setup};

mod at_rest;
mod bad_input;
mod cleanup;
mod concurrency;
mod corrupt;
mod manager;
pub mod model;
mod model_persistent;
mod rotate;
mod save;
mod scan;
mod scenarios;
mod spy;
mod tamper;
mod touch;
mod users;

/// What every check receives: the store under test and what the suite
/// knows about it. Built by the runner from a [`TestStore`](crate::TestStore),
/// or by hand with [`Ctx::new`] for [`run_check_in`](crate::run_check_in).
#[derive(Clone)]
pub struct Ctx {
    /// The backend under test (under our [`Encrypted`](session_store_core::Encrypted)
    /// wrapper in [`Mode::Encrypted`]).
    pub backend: Arc<dyn SessionBackend>,
    /// The raw store beneath the encryption layer of `backend`, when there is
    /// one (see [`Ctx::encrypts`]): lets a check read and write raw (tampered)
    /// records underneath. The same as `backend` when nothing encrypts.
    pub inner: Arc<dyn SessionBackend>,
    /// Whether `backend` encrypts at rest on top of `inner`: our wrapper in
    /// [`Mode::Encrypted`], or a store declared with
    /// [`TestStore::encrypting_over`](crate::TestStore::encrypting_over). The
    /// tamper, row-binding and nonce checks run only then, and the at-rest
    /// check then also looks for session data and client metadata.
    pub encrypts: bool,
    /// What the store reports of itself ([`SessionBackend::capabilities`]).
    pub capabilities: Capabilities,
    /// Plain or encrypted.
    pub mode: Mode,
    /// At-rest hook.
    pub dump: Option<DumpFn>,
    /// Raw-write hook, for the corruption checks.
    pub raw_damage: Option<crate::RawDamageFn>,
    skipped: Arc<Mutex<Option<String>>>,
}

impl Ctx {
    /// A context for `backend` as given: plain mode, nothing encrypting, no
    /// dump hook, capabilities as the backend reports them.
    pub fn new(backend: Arc<dyn SessionBackend>) -> Self {
        Ctx {
            capabilities: backend.capabilities(),
            inner: backend.clone(),
            backend,
            encrypts: false,
            mode: Mode::Plain,
            dump: None,
            raw_damage: None,
            skipped: Arc::default(),
        }
    }

    /// Declares that the backend encrypts at rest on top of `raw` (sets
    /// [`Ctx::inner`] and [`Ctx::encrypts`]).
    pub fn encrypting_over(mut self, raw: Arc<dyn SessionBackend>) -> Self {
        self.inner = raw;
        self.encrypts = true;
        self
    }

    /// Sets the at-rest hook.
    pub fn with_dump(mut self, dump: Option<DumpFn>) -> Self {
        self.dump = dump;
        self
    }

    /// Sets the raw-write hook.
    pub fn with_raw_damage(mut self, damage: Option<crate::RawDamageFn>) -> Self {
        self.raw_damage = damage;
        self
    }

    /// Sets the mode the context reports (informational: the runner puts our
    /// wrapper on top itself).
    pub fn with_mode(mut self, mode: Mode) -> Self {
        self.mode = mode;
        self
    }

    /// Marks the running check as skipped, with a reason; the check should
    /// return right after. The runner reports [`Outcome::Skipped`].
    pub fn skip(&self, reason: impl Into<String>) {
        *self.skipped.lock().unwrap_or_else(|e| e.into_inner()) = Some(reason.into());
    }
}

impl std::fmt::Debug for Ctx {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ctx")
            .field("backend", &self.backend)
            .field("encrypts", &self.encrypts)
            .field("capabilities", &self.capabilities)
            .field("mode", &self.mode)
            .field("dump", &self.dump.is_some())
            .finish()
    }
}

/// An event sink that keeps every event, for checks that assert on them.
#[derive(Debug, Default)]
pub(crate) struct Recorder(Mutex<Vec<session_store_core::Event>>);

impl session_store_core::EventSink for Recorder {
    fn event(&self, event: &session_store_core::Event) {
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(event.clone());
    }
}

impl Recorder {
    /// The events so far, in order.
    pub(crate) fn events(&self) -> Vec<session_store_core::Event> {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// The events so far, forgotten here.
    pub(crate) fn take(&self) -> Vec<session_store_core::Event> {
        std::mem::take(&mut *self.0.lock().unwrap_or_else(|e| e.into_inner()))
    }
}

/// A check: takes the context, panics on failure.
pub type CheckFn = fn(Ctx) -> BoxFuture<'static, ()>;

macro_rules! registry {
    ($($module:ident :: $name:ident),* $(,)?) => {
        /// Every check, by name.
        pub static CHECKS: &[(&str, CheckFn)] = &[
            $((stringify!($name), |ctx| Box::pin($module::$name(ctx)))),*
        ];

        /// Calls `$callback!($factory, $mode; every, check, name)`.
        #[doc(hidden)]
        #[macro_export]
        macro_rules! __for_each_check {
            ($callback:path, $factory:path, $mode:expr) => {
                $callback!($factory, $mode; $($name),*);
            };
        }
    };
}

registry! {
    // create / load
    scenarios::create_collision,
    scenarios::create_collision_with_expired_entry,
    scenarios::create_collision_with_forwarder,
    scenarios::create_then_load_roundtrip,
    scenarios::create_indexes_user,
    scenarios::load_missing_is_none,
    scenarios::load_expired_idle_is_none,
    scenarios::load_expired_absolute_is_none,
    // save
    save::save_cas_bumps_version,
    save::save_stale_version_conflict,
    save::save_after_delete_no_resurrection,
    save::save_after_rotate_conflict,
    save::save_expired_conflict,
    save::save_on_forwarder_conflict,
    save::save_moves_user_index,
    // touch
    touch::touch_extends_idle_only,
    touch::touch_capped_by_absolute,
    touch::touch_never_moves_backwards,
    touch::touch_keeps_version_and_data,
    touch::touch_missing_false,
    // rotate
    rotate::rotate_moves_record,
    rotate::rotate_stale_conflict,
    rotate::rotate_forwarder_conflict,
    rotate::rotate_into_existing_already_exists,
    rotate::rotate_with_grace_leaves_forwarder,
    // delete, users, namespace
    users::delete_idempotent,
    users::delete_user_all,
    users::delete_user_except_one,
    users::delete_user_counts_live_only,
    users::list_user_metadata,
    users::list_user_excludes_expired,
    users::delete_all_empties_namespace,
    users::user_ids_compare_exactly,
    // cleanup
    cleanup::cleanup_removes_only_expired_in_batches,
    // scan
    scan::scan_pages_cover_every_entry,
    scan::scan_limit_and_cursor_resume,
    scan::scan_during_concurrent_writes_keeps_stable_entries,
    // concurrency
    concurrency::concurrent_saves_all_land,
    concurrency::concurrent_rotations_one_winner,
    concurrency::concurrent_creates_one_winner,
    concurrency::concurrent_touch_never_loses_writes,
    concurrency::concurrent_save_and_delete_no_resurrection,
    // manager
    manager::manager_idle_timeout,
    manager::manager_absolute_timeout_not_extended_by_activity,
    manager::manager_touch_throttled,
    manager::manager_expiry_on_read_event,
    manager::manager_login_rotation_resets_timers_and_binds_user,
    manager::manager_privilege_rotation_keeps_absolute,
    manager::manager_renewal_grace_window,
    manager::manager_concurrent_renewals_same_successor,
    manager::manager_login_never_has_grace,
    manager::manager_logout,
    manager::manager_logout_everywhere,
    manager::manager_logout_other_devices,
    manager::manager_list_devices_metadata,
    manager::manager_revoke_by_handle,
    manager::manager_stored_hash_is_not_a_token,
    manager::manager_limits_too_large_writes_nothing,
    manager::manager_per_user_cap_evict_oldest,
    manager::manager_per_user_cap_refuse,
    manager::manager_unknown_token_never_creates,
    manager::manager_save_is_compare_and_swap,
    manager::manager_cleanup_expired,
    manager::manager_events_never_carry_tokens,
    // persistent logins (remember me, refresh tokens)
    manager::persistent_rotation_on_use,
    manager::persistent_single_use_under_concurrency,
    manager::persistent_reuse_revokes_family,
    manager::persistent_grace_joins_same_successor,
    manager::persistent_idle_and_absolute_expiry,
    manager::persistent_logout_and_logout_everywhere,
    manager::persistent_listed_and_revocable_by_handle,
    manager::persistent_malformed_tokens_invalid_id_before_io,
    manager::persistent_hashed_at_rest,
    // bad input
    bad_input::manager_malformed_tokens_invalid_id,
    bad_input::manager_invalid_id_before_io,
    // model-based
    model::model_based_sequences,
    model_persistent::model_persistent_sequences,
    // encryption at rest (a backend that encrypts: Ctx::encrypts)
    // corrupted or foreign data
    corrupt::corrupt_undecodable_record_is_contained,
    corrupt::corrupt_foreign_value_is_contained,
    corrupt::corrupt_undecodable_metadata_is_contained,
    corrupt::corrupt_undecryptable_ciphertext_is_contained,
    tamper::tampered_ciphertext_fails_closed,
    tamper::ciphertext_bound_to_row,
    tamper::manager_tampered_session_is_an_error,
    tamper::encryption_never_reuses_a_nonce,
    at_rest::at_rest_no_token_or_plaintext,
}

/// The outcome of one check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Every assertion held.
    Passed,
    /// The check did not apply (the reason says why): a factory's
    /// [`Setup::Skip`], a missing dump hook, a store that does not encrypt.
    Skipped(String),
    /// An assertion failed (or the check panicked): the message names the
    /// clause and what the store did.
    Failed(String),
}

impl Outcome {
    /// Whether the check failed.
    pub fn is_failed(&self) -> bool {
        matches!(self, Outcome::Failed(_))
    }
}

fn find(name: &str) -> Option<CheckFn> {
    CHECKS.iter().find(|c| c.0 == name).map(|c| c.1)
}

fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "the check panicked with a non-string payload".to_owned()
    }
}

/// Runs `name` with `ctx` on the current tokio runtime; never panics.
pub(crate) async fn run_in(name: &str, ctx: Ctx) -> Outcome {
    let Some(check) = find(name) else {
        return Outcome::Failed(format!("unknown conformance check {name}"));
    };
    let slot = ctx.skipped.clone();
    let joined = tokio::spawn(check(ctx)).await;
    let skipped = slot.lock().unwrap_or_else(|e| e.into_inner()).clone();
    match joined {
        Err(e) if e.is_panic() => Outcome::Failed(panic_message(&*e.into_panic())),
        Err(e) => Outcome::Failed(format!("the check's task ended: {e}")),
        Ok(()) => match skipped {
            Some(reason) => Outcome::Skipped(reason),
            None => Outcome::Passed,
        },
    }
}

/// Runs `name` against a fresh store from `factory` in its own runtime,
/// cleans the namespace up, and reports; never panics.
pub(crate) fn run<F, Fut>(name: &str, mode: Mode, factory: F) -> Outcome
where
    F: FnOnce() -> Fut,
    Fut: Future,
    Fut::Output: Into<Setup>,
{
    if find(name).is_none() {
        return Outcome::Failed(format!("unknown conformance check {name}"));
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(4)
        .enable_all()
        .build()
        .expect("tokio runtime");
    rt.block_on(async move {
        let store = match factory().await.into() {
            Setup::Run(store) => store,
            Setup::Skip(reason) => return Outcome::Skipped(reason),
        };
        let ctx = match (mode, &store.raw) {
            (Mode::Plain, None) => Ctx::new(store.backend.clone()),
            (Mode::Plain, Some(raw)) => {
                Ctx::new(store.backend.clone()).encrypting_over(raw.clone())
            }
            (Mode::Encrypted, _) => Ctx::new(Arc::new(session_store_core::Encrypted::new(
                store.backend.clone(),
                crate::test_keyring(),
            )))
            .encrypting_over(store.backend.clone()),
        }
        .with_mode(mode)
        .with_dump(store.dump.clone())
        .with_raw_damage(store.raw_damage.clone());
        let outcome = run_in(name, ctx).await;
        // Clean up the namespace whatever happened, then report.
        let cleanup = match &store.raw {
            Some(raw) => raw.delete_all().await,
            None => store.backend.delete_all().await,
        };
        match (outcome, cleanup) {
            (Outcome::Failed(msg), _) => Outcome::Failed(msg),
            (_, Err(e)) => Outcome::Failed(format!("delete_all after the check: {e:?}")),
            (outcome, Ok(())) => outcome,
        }
    })
}
