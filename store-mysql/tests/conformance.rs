//! The public conformance suite against a real MySQL/MariaDB server, plain
//! and encrypted: every check gets a fresh random table in database `test`,
//! dropped afterwards. The at-rest dump is every column of every row of
//! that table.
//!
//! Needs a server (`store-mysql/scripts/mysql-service.sh`); set
//! `SESSION_STORE_SKIP_MYSQL=1` to skip visibly instead.

mod common;

use std::sync::Arc;

use session_store_conformance::{conformance_tests, Setup, TestStore};

async fn mysql() -> Setup {
    if common::skip_requested() {
        return Setup::Skip("SESSION_STORE_SKIP_MYSQL=1".into());
    }
    // Small pools: many checks run in parallel against one server.
    let (store, guard) = common::build_migrated(common::test_config(4)).await;
    // The dump hook owns the guard, so the table is dropped when the suite
    // drops the test store.
    let guard = Arc::new(guard);
    let dump_store = store.clone();
    let damager = store.clone();
    Setup::Run(
        TestStore::new(store)
            .with_raw_damage({
                let s = damager.clone();
                move |key, how| {
                    let s = s.clone();
                    async move {
                        s.damage_raw(&key, how == session_store_conformance::RawDamage::Foreign)
                            .await
                    }
                }
            })
            .with_dump(move || {
                let store = dump_store.clone();
                let _keep = guard.clone();
                async move { store.dump_raw().await }
            }),
    )
}

conformance_tests!(mysql);
