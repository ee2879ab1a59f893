//! The store's threads (writer, readers, checkpointer) stop when the last
//! clone is dropped. Alone in its own test binary so that no other test's
//! threads are counted.

use std::time::Duration;

use session_store_conformance::fixtures::fresh_key;
use session_store_core::{SessionBackend, Timestamp};
use session_store_sqlite::SqliteConfig;

/// Threads of this process whose name starts with the store's prefix (the
/// kernel keeps the first 15 bytes of a thread name).
fn store_threads() -> usize {
    std::fs::read_dir("/proc/self/task")
        .map(|tasks| {
            tasks
                .filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("comm")).ok())
                .filter(|name| name.starts_with("session-sqlite"))
                .count()
        })
        .unwrap_or(0)
}

#[tokio::test]
async fn worker_threads_stop_when_the_store_is_dropped() {
    if !std::path::Path::new("/proc/self/task").exists() {
        println!("SKIP: no /proc/self/task on this platform");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteConfig::new(dir.path().join("s.db"))
        .with_readers(3)
        .build()
        .await
        .unwrap();
    store.migrate().await.unwrap();
    let clone = store.clone();
    assert!(clone
        .load(&fresh_key(), Timestamp::EPOCH)
        .await
        .unwrap()
        .is_none());
    assert_eq!(store_threads(), 1 + 3 + 1, "writer, readers, checkpointer");
    drop(store);
    assert_eq!(store_threads(), 5, "a clone keeps the threads");
    drop(clone);
    // The threads exit asynchronously; wait for it, bounded.
    for _ in 0..200 {
        if store_threads() == 0 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("{} store threads still running", store_threads());
}
