//! The check registry and runner.

use std::future::Future;
use std::sync::Arc;

use session_store_core::{Capabilities, SessionBackend};

use crate::{BoxFuture, DumpFn, Mode, Setup};

mod at_rest;
mod bad_input;
mod cleanup;
mod concurrency;
mod corrupt;
mod manager;
pub mod model;
mod rotate;
mod save;
mod scan;
mod scenarios;
mod spy;
mod tamper;
mod touch;
mod users;

/// What every check receives.
#[derive(Clone)]
pub struct Ctx {
    /// The backend under test (wrapped when `mode` is `Encrypted`).
    pub backend: Arc<dyn SessionBackend>,
    /// The backend as the factory returned it, without the encryption
    /// wrapper: lets a check write raw (tampered) records underneath
    /// `backend`. The same as `backend` in [`Mode::Plain`].
    pub inner: Arc<dyn SessionBackend>,
    /// What the store reports of itself ([`SessionBackend::capabilities`]).
    pub capabilities: Capabilities,
    /// Plain or encrypted.
    pub mode: Mode,
    /// At-rest hook.
    pub dump: Option<DumpFn>,
    /// Raw-write hook, for the corruption checks.
    pub raw_damage: Option<crate::RawDamageFn>,
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
    // bad input
    bad_input::manager_malformed_tokens_invalid_id,
    bad_input::manager_invalid_id_before_io,
    // model-based
    model::model_based_sequences,
    // encryption at rest (Mode::Encrypted)
    // corrupted or foreign data
    corrupt::corrupt_undecodable_record_is_contained,
    corrupt::corrupt_foreign_value_is_contained,
    corrupt::corrupt_undecodable_metadata_is_contained,
    corrupt::corrupt_undecryptable_ciphertext_is_contained,
    tamper::tampered_ciphertext_fails_closed,
    tamper::ciphertext_bound_to_row,
    tamper::manager_tampered_session_is_an_error,
    at_rest::at_rest_no_token_or_plaintext,
}

pub(crate) fn run<F, Fut>(name: &str, mode: Mode, factory: F)
where
    F: FnOnce() -> Fut,
    Fut: Future,
    Fut::Output: Into<Setup>,
{
    let check = CHECKS
        .iter()
        .find(|c| c.0 == name)
        .unwrap_or_else(|| panic!("unknown conformance check {name}"))
        .1;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(4)
        .enable_all()
        .build()
        .expect("tokio runtime");
    rt.block_on(async move {
        let store = match factory().await.into() {
            Setup::Run(store) => store,
            Setup::Skip(reason) => {
                println!("SKIP: conformance check {name}: {reason}");
                return;
            }
        };
        let backend: Arc<dyn SessionBackend> = match mode {
            Mode::Plain => store.backend.clone(),
            Mode::Encrypted => Arc::new(session_store_core::Encrypted::new(
                store.backend.clone(),
                crate::test_keyring(),
            )),
        };
        let ctx = Ctx {
            backend: backend.clone(),
            inner: store.backend.clone(),
            capabilities: backend.capabilities(),
            mode,
            dump: store.dump.clone(),
            raw_damage: store.raw_damage.clone(),
        };
        let outcome = tokio::spawn(check(ctx)).await;
        // Clean up the namespace whatever happened, then report.
        let cleanup = store.backend.delete_all().await;
        if let Err(panic) = outcome {
            std::panic::resume_unwind(panic.into_panic());
        }
        cleanup.expect("delete_all after the check");
    });
}
