//! Scenario checks, one per clause of the backend contract.

use session_store_core::{Error, SessionToken};

use super::Ctx;
use crate::fixtures::{now, record};

/// create: insert only if the key is absent; a collision is `AlreadyExists`
/// and never an overwrite.
pub async fn create_collision(ctx: Ctx) {
    let key = SessionToken::generate().storage_key();
    let t = now();
    let first = record(t, b"first");
    ctx.backend.create(&key, &first).await.expect("create");
    let err = ctx
        .backend
        .create(&key, &record(t, b"second"))
        .await
        .expect_err("second create must fail");
    assert!(matches!(err, Error::AlreadyExists), "got {err:?}");
    let loaded = crate::fixtures::load_session(&*ctx.backend, &key, t).await;
    assert_eq!(loaded.data, b"first", "create must never overwrite");
}
