//! The public conformance suite against a real PostgreSQL server, plain and
//! encrypted: every check gets a fresh random schema in database `test`,
//! dropped afterwards.
//!
//! Needs a server (`store-postgres/scripts/postgres-service.sh`); set
//! `SESSION_STORE_SKIP_POSTGRES=1` to skip visibly instead.

mod common;

use std::sync::Arc;

use session_store_conformance::{conformance_tests, Setup, TestStore};

async fn postgres() -> Setup {
    if common::skip_requested() {
        return Setup::Skip("SESSION_STORE_SKIP_POSTGRES=1".into());
    }
    let (store, guard) = common::connect_migrated(&common::test_config()).await;
    // The dump hook (every column of every row, raw) owns the guard, so the schema is dropped when the suite
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

conformance_tests!(postgres);
