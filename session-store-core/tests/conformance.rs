//! The in-memory reference store runs the whole conformance suite, plain and
//! under the encryption wrapper.

use session_store_conformance::{conformance_tests, TestStore};
use session_store_core::MemoryStore;

async fn store() -> TestStore {
    let store = std::sync::Arc::new(MemoryStore::new());
    let dump = store.clone();
    TestStore::new(store).with_dump(move || {
        let raw = dump.dump_raw();
        async move { Ok(raw) }
    })
}

conformance_tests!(store);
