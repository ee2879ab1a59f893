//! The calling-thread fast path seen from the store (see the `worker`
//! module docs): a write lock held by another connection is never waited
//! for on the caller's thread but on the writer's, within the operation
//! deadline; a caller that drops its call leaves no lock or transaction
//! behind; `synchronous=FULL` and the fast path turned off give the same
//! answers.

use std::sync::Arc;
use std::time::{Duration, Instant};

use rusqlite::Connection;
use session_store_conformance::fixtures::{self, fresh_key};
use session_store_core::{Lookup, SessionBackend};
use session_store_sqlite::{SqliteConfig, Synchronous};

/// Upper bound that catches a wait on some longer timeout (scheduling on a
/// busy 2-core machine), not a speed target.
const SLACK: Duration = Duration::from_secs(2);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_waits_for_a_lock_held_elsewhere_on_the_writer_thread() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sessions.db");
    let deadline = Duration::from_secs(5);
    let store = SqliteConfig::new(&path)
        .with_operation_timeout(deadline)
        .build()
        .await
        .unwrap();
    store.migrate().await.unwrap();
    let now = fixtures::now();
    let key = fresh_key();
    let mut record = fixtures::user_record(now, "alice", b"one");
    store.create(&key, &record).await.unwrap();

    let holder = Connection::open(&path).unwrap();
    holder.execute_batch("BEGIN IMMEDIATE").unwrap();
    let started = Instant::now();
    record.data = b"two".to_vec();
    let save = tokio::spawn({
        let (store, record) = (store.clone(), record.clone());
        async move { store.save(&key, &record, now).await }
    });
    // Reads go on meanwhile (WAL), on the calling thread or a reader.
    let hold = Duration::from_millis(150);
    while started.elapsed() < hold {
        assert!(store.load(&key, now).await.unwrap().is_some());
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(!save.is_finished(), "the save did not wait for the lock");
    holder.execute_batch("COMMIT").unwrap();
    let version = save.await.unwrap().unwrap();
    let took = started.elapsed();
    assert!(took >= hold && took <= deadline + SLACK, "{took:?}");
    assert_eq!(version, record.version + 1);
    match store.load(&key, now).await.unwrap() {
        Some(Lookup::Session(found)) => assert_eq!(found.data, b"two"),
        other => panic!("{other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_call_leaves_no_lock_and_no_transaction() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sessions.db");
    let store = SqliteConfig::new(&path)
        .with_operation_timeout(Duration::from_secs(5))
        .build()
        .await
        .unwrap();
    store.migrate().await.unwrap();
    let now = fixtures::now();
    let key = fresh_key();
    let record = fixtures::user_record(now, "alice", b"one");
    store.create(&key, &record).await.unwrap();

    let holder = Connection::open(&path).unwrap();
    holder.busy_timeout(Duration::from_secs(5)).unwrap();
    holder.execute_batch("BEGIN IMMEDIATE").unwrap();
    // Each call gives up while the writer waits for the lock.
    for _ in 0..3 {
        let gave_up =
            tokio::time::timeout(Duration::from_millis(30), store.save(&key, &record, now)).await;
        assert!(gave_up.is_err(), "{gave_up:?}");
    }
    holder.execute_batch("ROLLBACK").unwrap();
    // The store writes again (the abandoned saves ran or conflicted; the
    // first of them may have applied, as with any remote database).
    let fresh = fresh_key();
    store.create(&fresh, &record).await.unwrap();
    assert!(store.delete(&fresh).await.unwrap());
    // And it holds no lock and no open transaction: another connection
    // takes the write lock at once.
    holder.busy_timeout(Duration::ZERO).unwrap();
    holder.execute_batch("BEGIN IMMEDIATE; COMMIT").unwrap();
    match store.load(&key, now).await.unwrap() {
        Some(Lookup::Session(found)) => {
            assert!(found.version == record.version || found.version == record.version + 1)
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_mode_answers_the_same() {
    let dir = tempfile::tempdir().unwrap();
    for (i, config) in [
        SqliteConfig::new(dir.path().join("a.db")),
        SqliteConfig::new(dir.path().join("b.db")).with_inline(false),
        SqliteConfig::new(dir.path().join("c.db")).with_synchronous(Synchronous::Full),
        SqliteConfig::new(dir.path().join("d.db")).with_readers(0),
        SqliteConfig::in_memory(),
    ]
    .into_iter()
    .enumerate()
    {
        let store = config.build().await.unwrap();
        store.migrate().await.unwrap();
        let now = fixtures::now();
        let key = fresh_key();
        let mut record = fixtures::user_record(now, "alice", b"x");
        store.create(&key, &record).await.unwrap();
        for n in 0..50u8 {
            record.data = vec![n; 1024];
            record.version = store.save(&key, &record, now).await.unwrap();
            match store.load(&key, now).await.unwrap() {
                Some(Lookup::Session(found)) => assert_eq!(found, record, "config {i}"),
                other => panic!("config {i}: {other:?}"),
            }
        }
        // A stale save is a conflict in every mode.
        let mut stale = record.clone();
        stale.version -= 1;
        assert!(matches!(
            store.save(&key, &stale, now).await,
            Err(session_store_core::Error::Conflict)
        ));
    }
}

/// A statement on the calling thread completes in its first poll, so a task
/// that loops over loads and saves must still give its runtime thread back
/// now and then (tokio's cooperative budget), as it would over a socket: on
/// a one-thread runtime, a task that yields once runs while a looping task
/// is still far from done. Without the budget the loop ran to its end in
/// one poll (and `tests/storage.rs`, whose reader tasks loop until writer
/// tasks stop them, hung on a two-worker runtime).
#[tokio::test(flavor = "current_thread")]
async fn a_task_looping_over_inline_statements_lets_other_tasks_run() {
    const LOOPS: usize = 2_000;
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteConfig::new(dir.path().join("sessions.db"))
        .build()
        .await
        .unwrap();
    store.migrate().await.unwrap();
    let key = fresh_key();
    let record = fixtures::user_record(fixtures::now(), "alice", b"one");
    store.create(&key, &record).await.unwrap();
    let seen =
        fixtures::calls_done_when_a_yielding_task_runs(Arc::new(store), key, record, LOOPS, true)
            .await;
    assert!(
        seen < LOOPS,
        "the other task ran only after all {LOOPS} statements"
    );
}
