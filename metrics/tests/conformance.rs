//! The wrapper changes nothing: the whole conformance suite over
//! `Metered<MemoryStore>`, plain and encrypted.

use session_store_conformance::{conformance_tests, TestStore};
use session_store_core::MemoryStore;
use session_store_metrics::Metered;

async fn store() -> TestStore {
    let store = std::sync::Arc::new(MemoryStore::new());
    let dump = store.clone();
    TestStore::new(Metered::new(store).with_store_label("memory")).with_dump(move || {
        let raw = dump.dump_raw();
        async move { Ok(raw) }
    })
}

conformance_tests!(store);
