//! The operation deadline on SQLite: what an operation can wait for is a
//! lock held by another connection or process, so the deadline is SQLite's
//! busy timeout. A second connection holds the write lock (`BEGIN
//! IMMEDIATE`, as another process or an `sqlite3` shell would): every write
//! fails with a retryable backend error within the deadline, reads go on
//! (WAL), and the same store writes again once the lock is released.

use std::time::{Duration, Instant};

use rusqlite::Connection;
use session_store_conformance::fixtures::{self, fresh_key};
use session_store_core::config::Vars;
use session_store_core::{Error, Lookup, Rotation, SessionBackend, StorageKey};
use session_store_sqlite::{SqliteConfig, SqliteStore, DEFAULT_OPERATION_TIMEOUT};

/// The operation deadline of these tests.
const DEADLINE: Duration = Duration::from_millis(300);
/// What "within the deadline" allows on top of it (scheduling on a busy
/// 2-core machine): an upper bound that catches a wait on some longer
/// timeout, not a speed target.
const SLACK: Duration = Duration::from_secs(2);

/// `result` is a retryable backend error of `operation` ("database is
/// locked"), and came after at least the deadline (SQLite waited for the
/// lock) and within the deadline plus slack.
fn assert_deadline<T: std::fmt::Debug>(
    operation: &str,
    started: Instant,
    result: Result<T, Error>,
) {
    let elapsed = started.elapsed();
    match &result {
        Err(Error::Backend {
            backend,
            operation: op,
            retryable: true,
            source,
            ..
        }) => {
            assert_eq!(*backend, "sqlite", "{operation}: {result:?}");
            assert_eq!(*op, operation, "{result:?}");
            assert!(
                source.to_string().contains("locked"),
                "{operation}: the source says the database is locked: {source}"
            );
        }
        other => panic!(
            "{operation} with the write lock held elsewhere: expected a retryable backend \
             error, got {other:?}"
        ),
    }
    println!("write lock held elsewhere: {operation} failed after {elapsed:?}");
    assert!(
        elapsed <= DEADLINE + SLACK,
        "{operation} took {elapsed:?} (deadline {DEADLINE:?})"
    );
}

/// Every writing operation, each on its own clock, with the write lock
/// held by `holder`.
async fn every_write_fails(store: &SqliteStore, victim: StorageKey) {
    let now = fixtures::now();
    let fresh = fresh_key();
    let rec = fixtures::user_record(now, "victim", b"x");
    let rotation = Rotation {
        from: victim,
        to: fresh,
        record: rec.clone(),
        grace: None,
    };
    macro_rules! check {
        ($op:literal, $call:expr) => {{
            let started = Instant::now();
            let result = tokio::time::timeout(Duration::from_secs(30), $call)
                .await
                .expect(concat!($op, " hung with the write lock held elsewhere"));
            assert_deadline($op, started, result);
        }};
    }
    check!("create", store.create(&fresh, &rec));
    check!("save", store.save(&victim, &rec, now));
    check!("touch", store.touch(&victim, now, now, now));
    check!("rotate", store.rotate(&rotation, now));
    check!("delete", store.delete(&victim));
    check!("delete_user", store.delete_user("victim", None, now));
    check!(
        "cleanup_expired",
        store.cleanup_expired(fixtures::at(now, Duration::from_secs(365 * 86_400)), 10)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_held_write_lock_fails_writes_within_the_deadline_and_they_recover() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sessions.db");
    let store = SqliteConfig::new(&path)
        .with_operation_timeout(DEADLINE)
        .build()
        .await
        .unwrap();
    store.migrate().await.unwrap();
    let now = fixtures::now();
    let kept = fresh_key();
    let kept_record = fixtures::user_record(now, "alice", b"kept");
    store.create(&kept, &kept_record).await.unwrap();
    let victim = fresh_key();
    store
        .create(&victim, &fixtures::user_record(now, "victim", b"v"))
        .await
        .unwrap();

    let holder = Connection::open(&path).unwrap();
    holder.execute_batch("BEGIN IMMEDIATE").unwrap();
    for _ in 0..2 {
        every_write_fails(&store, victim).await;
    }
    // Reads do not wait for the writer (WAL).
    let started = Instant::now();
    match store.load(&kept, now).await.unwrap() {
        Some(Lookup::Session(found)) => assert_eq!(found, kept_record),
        other => panic!("load with the write lock held elsewhere: {other:?}"),
    }
    assert_eq!(store.list_user("alice", now).await.unwrap().len(), 1);
    assert!(!store.scan(None, 10).await.unwrap().entries.is_empty());
    assert!(
        started.elapsed() <= DEADLINE + SLACK,
        "reads waited for the writer"
    );
    holder.execute_batch("ROLLBACK").unwrap();

    // The same store writes again, and nothing the failed writes touched
    // changed.
    let key = fresh_key();
    store
        .create(&key, &fixtures::user_record(now, "alice", b"after"))
        .await
        .unwrap();
    assert_eq!(store.list_user("alice", now).await.unwrap().len(), 2);
    assert!(store.load(&victim, now).await.unwrap().is_some());
    assert!(store.delete(&victim).await.unwrap());
    drop(holder);
}

#[test]
fn the_deadline_has_the_shared_default_and_is_configurable() {
    let base = SqliteConfig::new("/tmp/x.db");
    assert_eq!(base.operation_timeout(), DEFAULT_OPERATION_TIMEOUT);
    assert_eq!(DEFAULT_OPERATION_TIMEOUT, Duration::from_secs(2));
    let vars = |pairs: &[(&str, &str)]| {
        let mut all = vec![("SESSION_STORE_SQLITE_PATH", "/tmp/x.db")];
        all.extend_from_slice(pairs);
        SqliteConfig::from_vars(&Vars::from_pairs(all))
    };
    let c = vars(&[("SESSION_STORE_SQLITE_OPERATION_TIMEOUT_MS", "750")]).unwrap();
    assert_eq!(c.operation_timeout(), Duration::from_millis(750));
    // The older name still works; the new one wins when both are set.
    let c = vars(&[("SESSION_STORE_SQLITE_BUSY_TIMEOUT_MS", "400")]).unwrap();
    assert_eq!(c.operation_timeout(), Duration::from_millis(400));
    let c = vars(&[
        ("SESSION_STORE_SQLITE_BUSY_TIMEOUT_MS", "400"),
        ("SESSION_STORE_SQLITE_OPERATION_TIMEOUT_MS", "900"),
    ])
    .unwrap();
    assert_eq!(c.operation_timeout(), Duration::from_millis(900));
    // Zero is a configuration error, from a setter or a variable.
    assert!(matches!(
        base.with_operation_timeout(Duration::ZERO).validate(),
        Err(Error::Config(_))
    ));
    for bad in ["0", "soon", "-1"] {
        match vars(&[("SESSION_STORE_SQLITE_OPERATION_TIMEOUT_MS", bad)]) {
            Err(Error::Config(m)) => assert!(
                m.contains("OPERATION_TIMEOUT") || m.contains("operation_timeout"),
                "{bad}: {m}"
            ),
            other => panic!("{bad}: expected a configuration error, got {other:?}"),
        }
    }
}
