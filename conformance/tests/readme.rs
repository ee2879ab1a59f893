// tests/conformance.rs
use std::sync::Arc;

use session_store_conformance::{conformance_tests, TestStore};
use session_store_core::MemoryStore; // your store here

/// A fresh, empty store in its own namespace (key prefix, table, temp dir).
async fn store() -> TestStore {
    let store = Arc::new(MemoryStore::new());
    let raw = store.clone();
    TestStore::new(store)
        // Optional: every raw byte string the store holds, for the at-rest
        // checks (see `DumpFn` for what that means for your store).
        .with_dump(move || {
            let values = raw.dump_raw();
            async move { Ok(values) }
        })
}

conformance_tests!(store);
