//! The shared conformance suite, plain and encrypted, with every statement
//! handed to the SQLite threads (`with_inline(false)`), against a fresh
//! temporary database file per check.

use std::sync::Arc;

use session_store_conformance::{conformance_tests, TestStore};
use session_store_sqlite::SqliteConfig;

/// A fresh, migrated store in its own temporary directory. The at-rest hook
/// returns the raw bytes of the database file and its write-ahead log, so the
/// checks see everything SQLite keeps on disk, free pages included.
async fn store() -> TestStore {
    let dir = Arc::new(tempfile::tempdir().expect("temporary directory"));
    let store = SqliteConfig::new(dir.path().join("sessions.db"))
        .with_inline(false)
        .build()
        .await
        .expect("open");
    store.migrate().await.expect("migrate");
    let dump_store = store.clone();
    let damager = store.clone();
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
            // The closure owns the directory: it lives as long as the test store.
            let _dir = dir.clone();
            let store = dump_store.clone();
            async move { store.dump_files().await }
        })
}

conformance_tests!(store);
