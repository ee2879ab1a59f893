//! The conformance fixture shared by `conformance.rs` (the default
//! configuration) and `conformance_queued.rs` (every statement handed to the
//! SQLite threads).

use std::sync::Arc;

use session_store_conformance::{RawDamage, TestStore};
use session_store_sqlite::SqliteConfig;

/// A fresh, migrated store built from `configure(config)` in its own
/// temporary directory. The at-rest hook returns the raw bytes of the
/// database file and its write-ahead log, so the checks see everything
/// SQLite keeps on disk, free pages included.
pub async fn test_store(configure: fn(SqliteConfig) -> SqliteConfig) -> TestStore {
    let dir = Arc::new(tempfile::tempdir().expect("temporary directory"));
    let store = configure(SqliteConfig::new(dir.path().join("sessions.db")))
        .build()
        .await
        .expect("open");
    store.migrate().await.expect("migrate");
    let dump_store = store.clone();
    let damager = store.clone();
    TestStore::new(store)
        .with_raw_damage(move |key, how| {
            let s = damager.clone();
            async move { s.damage_raw(&key, how == RawDamage::Foreign).await }
        })
        .with_dump(move || {
            // The closure owns the directory: it lives as long as the test store.
            let _dir = dir.clone();
            let store = dump_store.clone();
            async move { store.dump_files().await }
        })
}
