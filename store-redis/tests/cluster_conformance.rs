//! The whole conformance suite on a Redis Cluster (127.0.0.1:7001-7003), each
//! check in its own random key prefix. `SESSION_STORE_SKIP_REDIS_CLUSTER=1`
//! skips.

mod common;

use session_store_conformance::{conformance_tests, Setup};

async fn store() -> Setup {
    common::factory(true).await
}

conformance_tests!(store);
