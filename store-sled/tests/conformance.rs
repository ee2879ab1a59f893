//! The public conformance suite, plain and encrypted: every check gets a fresh
//! sled database in its own temporary directory. Run twice: with the default
//! durability on a temporary database, and with `Durability::Periodic` (its
//! periodic flushes and back-pressure path) in `periodic`.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use session_store_conformance::{conformance_tests, TestStore};
use session_store_core::{Error, Result};
use session_store_sled::{Durability, SledConfig, SledStore};

/// Every raw key and value of the store's trees, then the raw bytes of every
/// file in the database directory after a flush (what a stolen disk shows,
/// including old versions sled has not compacted yet).
async fn dump(store: &SledStore, dir: &Path) -> Result<Vec<Vec<u8>>> {
    let mut out = store.dump_raw().await?;
    store.flush().await?;
    let mut stack: Vec<PathBuf> = vec![dir.to_path_buf()];
    while let Some(p) = stack.pop() {
        if p.is_dir() {
            for entry in std::fs::read_dir(&p).map_err(Error::backend_permanent)? {
                stack.push(entry.map_err(Error::backend_permanent)?.path());
            }
        } else if let Ok(bytes) = std::fs::read(&p) {
            out.push(bytes); // a file sled removed meanwhile is skipped
        }
    }
    Ok(out)
}

async fn store_with(configure: fn(SledConfig) -> SledConfig) -> TestStore {
    let dir = Arc::new(tempfile::tempdir().expect("temporary directory"));
    let store = configure(SledConfig::new(dir.path().join("db")))
        .build()
        .await
        .expect("open sled store");
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
            let store = dump_store.clone();
            let dir = dir.clone(); // keeps the directory alive as long as the hook
            async move { dump(&store, &dir.path().join("db")).await }
        })
}

async fn store() -> TestStore {
    // Temporary: deleted on drop and never fsynced (the suite checks
    // semantics; durability has its own crash test).
    store_with(|c| c.with_temporary(true)).await
}

/// Periodic flushes and the back-pressure path instead of a flush per
/// write; the same semantics must hold.
async fn store_periodic() -> TestStore {
    store_with(|c| c.with_durability(Durability::Periodic(Duration::from_millis(20)))).await
}

conformance_tests!(store);

mod periodic {
    use super::*;

    conformance_tests!(super::store_periodic);
}
