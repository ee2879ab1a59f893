//! The shared conformance suite, plain and encrypted, against a fresh
//! temporary database file per check.

mod support;

use session_store_conformance::{conformance_tests, TestStore};

async fn store() -> TestStore {
    support::test_store(|config| config).await
}

conformance_tests!(store);
