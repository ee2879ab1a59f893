//! The shared conformance suite, plain and encrypted, with every statement
//! handed to the SQLite threads (`with_inline(false)`), against a fresh
//! temporary database file per check.

mod support;

use session_store_conformance::{conformance_tests, TestStore};

async fn store() -> TestStore {
    support::test_store(|config| config.with_inline(false)).await
}

conformance_tests!(store);
