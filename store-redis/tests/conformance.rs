//! The whole conformance suite on one Redis server (127.0.0.1:6379), each
//! check in its own random key prefix. `SESSION_STORE_SKIP_REDIS=1` skips.

mod common;

use session_store_conformance::{conformance_tests, Setup};

async fn store() -> Setup {
    common::factory(false).await
}

conformance_tests!(store);
