//! Waiters for a connection are served in arrival order (issue 17: the
//! 32-task p99 was suspected to be pool unfairness). Deterministic: no
//! timing, the futures are polled by hand in a known order.

mod common;

use std::sync::{Arc, Mutex};

use futures::future::join_all;
use session_store_conformance::fixtures::{fresh_key, record};
use session_store_core::{SessionBackend, Timestamp};
use sqlx::AssertSqlSafe;

const K: usize = 8;

#[tokio::test(flavor = "current_thread")]
async fn waiters_for_the_only_connection_are_served_in_arrival_order() {
    let Some((store, _guard)) = common::fresh_store(1).await else {
        return;
    };
    let now = Timestamp::from_millis(1_700_000_000_000);
    let held = fresh_key();
    store.create(&held, &record(now, b"held")).await.unwrap();
    let keys: Vec<_> = (0..K).map(|_| fresh_key()).collect();
    for k in &keys {
        store.create(k, &record(now, b"waiter")).await.unwrap();
    }

    // Another client locks the row, so that a save of it holds the store's
    // only connection (blocked on the server) until that client commits.
    let raw = common::raw_pool().await;
    let mut lock = raw.begin().await.unwrap();
    sqlx::query(AssertSqlSafe(format!(
        "SELECT 1 FROM {} WHERE key = $1 FOR UPDATE",
        store.qualified_table()
    )))
    .bind(held.as_bytes().as_slice())
    .execute(&mut *lock)
    .await
    .unwrap();

    let saved = record(now, b"saved");
    let mut holder = Box::pin(store.save(&held, &saved, now));
    assert!(
        futures::poll!(holder.as_mut()).is_pending(),
        "the save waits for the row lock"
    );

    // K loads arrive one after another while the connection is held.
    let served = Arc::new(Mutex::new(Vec::new()));
    let mut waiters: Vec<_> = keys
        .iter()
        .enumerate()
        .map(|(i, k)| {
            let served = Arc::clone(&served);
            let store = &store;
            Box::pin(async move {
                let found = store.load(k, now).await.unwrap();
                assert!(found.is_some());
                served.lock().unwrap().push(i);
            })
        })
        .collect();
    for w in &mut waiters {
        assert!(
            futures::poll!(w.as_mut()).is_pending(),
            "a load waits for the only connection"
        );
    }
    assert!(served.lock().unwrap().is_empty());

    lock.commit().await.unwrap();
    // Driven latest arrival first: an order that followed polling (first to
    // look finds the free connection) would serve them backwards.
    waiters.reverse();
    let (saved, ()) = tokio::join!(holder, async {
        join_all(waiters).await;
    });
    assert_eq!(saved.unwrap(), 1);
    assert_eq!(
        *served.lock().unwrap(),
        (0..K).collect::<Vec<_>>(),
        "served in arrival order"
    );
}
