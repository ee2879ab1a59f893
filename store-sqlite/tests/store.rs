//! Behaviour of the SQLite store beyond the shared conformance suite: opening
//! bad files, migrations, isolation by table, bad stored data, the cleanup
//! task, durability settings and concurrency.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use rusqlite::Connection;
use session_store_conformance::fixtures::{self, fresh_key};
use session_store_core::{
    Error, Grace, Lookup, ManualClock, Rotation, SessionBackend, SessionRecord, Timestamp,
};
use session_store_sqlite::{SqliteConfig, SqliteStore, Synchronous, SCHEMA_VERSION};

const T0: Timestamp = Timestamp::from_millis(1_700_000_000_000);
const MIN: Duration = Duration::from_secs(60);

/// A fixture record of `user` (anonymous for `None`) created at `T0`, whose
/// idle deadline is `idle` after `T0`, with non-empty metadata.
fn record(user: Option<&str>, idle: Duration) -> SessionRecord {
    let base = match user {
        Some(user) => fixtures::user_record(T0, user, b"data"),
        None => fixtures::record(T0, b"data"),
    };
    SessionRecord {
        idle_deadline: fixtures::at(T0, idle),
        meta: b"meta".to_vec(),
        ..base
    }
}

async fn open(path: &Path) -> SqliteStore {
    let store = SqliteConfig::new(path).build().await.unwrap();
    store.migrate().await.unwrap();
    store
}

/// Every file in `dir` with its bytes, to prove nothing was touched.
fn snapshot(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut out: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| {
            let p = e.unwrap().path();
            let bytes = if p.is_file() {
                std::fs::read(&p).unwrap()
            } else {
                Vec::new()
            };
            (p, bytes)
        })
        .collect();
    out.sort();
    out
}

#[tokio::test]
async fn open_rejects_a_directory() {
    let dir = tempfile::tempdir().unwrap();
    let sub = dir.path().join("db");
    std::fs::create_dir(&sub).unwrap();
    std::fs::write(sub.join("keep"), b"x").unwrap();
    let before = snapshot(&sub);
    let err = SqliteConfig::new(&sub).build().await.unwrap_err();
    assert!(matches!(err, Error::Config(_)), "{err:?}");
    assert_eq!(snapshot(&sub), before);
    assert_eq!(snapshot(dir.path()).len(), 1);
}

#[tokio::test]
async fn open_rejects_a_missing_directory() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("missing").join("s.db");
    let err = SqliteConfig::new(&path).build().await.unwrap_err();
    assert!(matches!(err, Error::Config(_)), "{err:?}");
    assert!(snapshot(dir.path()).is_empty());
}

#[tokio::test]
async fn open_rejects_a_file_that_is_not_a_database() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("notes.txt");
    let text = "These are somebody's notes, not a database.\n".repeat(200);
    std::fs::write(&path, &text).unwrap();
    let before = snapshot(dir.path());
    let err = SqliteConfig::new(&path).build().await.unwrap_err();
    assert!(
        matches!(
            err,
            Error::Backend {
                retryable: false,
                ..
            }
        ),
        "{err:?}"
    );
    assert!(err.to_string().contains("not a"), "{err}");
    assert!(
        matches!(&err, Error::Backend { backend: "sqlite", operation: "open", endpoint: Some(e), .. }
            if *e == path.display().to_string()),
        "{err:?}"
    );
    assert_eq!(snapshot(dir.path()), before, "no file created or modified");
}

#[tokio::test]
async fn open_rejects_a_newer_schema_and_leaves_the_file_alone() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("future.db");
    {
        let conn = Connection::open(&path).unwrap();
        conn.execute_batch(
            "CREATE TABLE session_store_schema (name TEXT PRIMARY KEY NOT NULL, version INTEGER NOT NULL);
             INSERT INTO session_store_schema VALUES ('sessions', 99);
             CREATE TABLE sessions (key BLOB PRIMARY KEY, future_column TEXT);",
        )
        .unwrap();
    }
    let before = snapshot(dir.path());
    let err = SqliteConfig::new(&path).build().await.unwrap_err();
    assert!(
        matches!(
            err,
            Error::SchemaTooNew {
                found: 99,
                supported: SCHEMA_VERSION
            }
        ),
        "{err:?}"
    );
    assert_eq!(snapshot(dir.path()), before);

    // Another table in the same file is unaffected by the newer one.
    let other = SqliteConfig::new(&path)
        .with_table("other_sessions")
        .build()
        .await
        .unwrap();
    other.migrate().await.unwrap();
    assert_eq!(other.schema_version().await.unwrap(), Some(SCHEMA_VERSION));
}

#[tokio::test]
async fn migrate_is_idempotent_and_data_survives_reopening() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.db");
    let k = fresh_key();
    {
        let store = SqliteConfig::new(&path).build().await.unwrap();
        assert_eq!(store.schema_version().await.unwrap(), None);
        // Before migrate: a typed backend error, never "no session".
        assert!(matches!(
            store.load(&k, T0).await,
            Err(Error::Backend { .. })
        ));
        store.migrate().await.unwrap();
        store.migrate().await.unwrap();
        assert_eq!(store.schema_version().await.unwrap(), Some(SCHEMA_VERSION));
        store.create(&k, &record(Some("u"), MIN)).await.unwrap();
    }
    let store = open(&path).await;
    assert_eq!(store.schema_version().await.unwrap(), Some(SCHEMA_VERSION));
    assert!(matches!(
        store.load(&k, T0).await.unwrap(),
        Some(Lookup::Session(r)) if r.data == b"data"
    ));
}

#[tokio::test]
async fn migrate_refuses_a_foreign_table_of_the_same_name() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.db");
    Connection::open(&path)
        .unwrap()
        .execute_batch("CREATE TABLE sessions (id INTEGER PRIMARY KEY, payload TEXT)")
        .unwrap();
    let store = SqliteConfig::new(&path).build().await.unwrap();
    assert!(matches!(store.migrate().await, Err(Error::Config(_))));
}

#[tokio::test]
async fn tables_in_one_file_are_isolated() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.db");
    let a = open(&path).await;
    let b = SqliteConfig::new(&path)
        .with_table("b_sessions")
        .build()
        .await
        .unwrap();
    b.migrate().await.unwrap();
    let k = fresh_key();
    a.create(&k, &record(Some("u"), MIN)).await.unwrap();
    assert!(b.load(&k, T0).await.unwrap().is_none());
    b.create(&k, &record(Some("u"), MIN)).await.unwrap();
    b.delete_all().await.unwrap();
    assert!(a.load(&k, T0).await.unwrap().is_some());
    assert_eq!(a.list_user("u", T0).await.unwrap().len(), 1);
}

#[tokio::test]
async fn invalid_table_names_are_config_errors() {
    for bad in ["x; DROP TABLE y", "a\"b", "", "9lives"] {
        assert!(matches!(
            SqliteConfig::new("/tmp/never.db")
                .with_table(bad)
                .validate(),
            Err(Error::Config(_))
        ));
        assert!(matches!(
            SqliteConfig::new("/tmp/never.db")
                .with_table(bad)
                .build()
                .await,
            Err(Error::Config(_))
        ));
    }
}

#[tokio::test]
async fn bad_stored_data_is_a_codec_error_not_a_panic() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.db");
    let store = open(&path).await;
    let (k_kind, k_null, k_succ, k_type) = (fresh_key(), fresh_key(), fresh_key(), fresh_key());
    let far = T0.saturating_add(MIN).as_millis();
    {
        let conn = Connection::open(&path).unwrap();
        let ins = "INSERT INTO sessions (key, kind, version, user_id, created_at, last_seen_at, \
                   idle_deadline, absolute_deadline, meta, data, successor, sealed_token, expires_at) \
                   VALUES (?1, ?2, 0, ?3, ?4, 0, 0, 0, x'', x'', ?5, x'', ?6)";
        // kind is CHECKed; bypass it by relaxing checks on this connection.
        conn.execute_batch("PRAGMA ignore_check_constraints = ON")
            .unwrap();
        let no_text: Option<&str> = None;
        let no_blob: Option<&[u8]> = None;
        conn.execute(
            ins,
            rusqlite::params![&k_kind.as_bytes()[..], 7, no_text, 0, no_blob, far],
        )
        .unwrap();
        conn.execute(
            ins,
            rusqlite::params![&k_null.as_bytes()[..], 0, no_text, no_text, no_blob, far],
        )
        .unwrap();
        conn.execute(
            ins,
            rusqlite::params![&k_succ.as_bytes()[..], 1, no_text, 0, &[1u8, 2, 3][..], far],
        )
        .unwrap();
        conn.execute(
            ins,
            rusqlite::params![
                &k_type.as_bytes()[..],
                0,
                no_text,
                "not a time",
                no_blob,
                far
            ],
        )
        .unwrap();
    }
    for k in [k_kind, k_null, k_succ, k_type] {
        let got = store.load(&k, T0).await;
        assert!(matches!(got, Err(Error::Codec { .. })), "{got:?}");
    }
    // The store keeps working.
    let k = fresh_key();
    store.create(&k, &record(None, MIN)).await.unwrap();
    assert!(store.load(&k, T0).await.unwrap().is_some());
}

#[tokio::test]
async fn forwarders_expire_at_until_and_are_cleaned() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir.path().join("s.db")).await;
    let (from, to) = (fresh_key(), fresh_key());
    store.create(&from, &record(Some("u"), MIN)).await.unwrap();
    let until = T0.saturating_add(Duration::from_secs(30));
    let v = store
        .rotate(
            &Rotation {
                from,
                to,
                record: record(Some("u"), 2 * MIN),
                grace: Some(Grace {
                    sealed_token: b"sealed".to_vec(),
                    until,
                }),
            },
            T0,
        )
        .await
        .unwrap();
    assert_eq!(v, 1);
    match store.load(&from, T0).await.unwrap() {
        Some(Lookup::Forwarded(f)) => {
            assert_eq!(f.successor, to);
            assert_eq!(f.sealed_token, b"sealed");
            assert_eq!(f.until, until);
        }
        other => panic!("expected a forwarder, got {other:?}"),
    }
    assert!(store.load(&from, until).await.unwrap().is_none());
    // Not a session: save and touch do not see it.
    assert!(!store.touch(&from, until, T0, T0).await.unwrap());
    assert_eq!(store.cleanup_expired(until, 10).await.unwrap(), 1);
    assert!(!store.delete(&from).await.unwrap());
    assert!(store.load(&to, until).await.unwrap().is_some());
}

#[tokio::test]
async fn cleanup_is_bounded_and_never_removes_live_entries() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir.path().join("s.db")).await;
    for i in 0..25u32 {
        let idle = if i < 20 { MIN } else { 10 * MIN };
        store
            .create(&fresh_key(), &record(Some("u"), idle))
            .await
            .unwrap();
    }
    let at = T0.saturating_add(MIN);
    assert_eq!(store.cleanup_expired(at, 8).await.unwrap(), 8);
    assert_eq!(store.cleanup_expired(at, 8).await.unwrap(), 8);
    assert_eq!(store.cleanup_expired(at, 8).await.unwrap(), 4);
    assert_eq!(store.cleanup_expired(at, 8).await.unwrap(), 0);
    assert_eq!(store.cleanup_expired(at, 0).await.unwrap(), 0);
    assert_eq!(store.list_user("u", at).await.unwrap().len(), 5);
    assert_eq!(store.dump_raw().await.unwrap().len(), 5 * 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn periodic_cleanup_runs_and_stops_when_dropped() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir.path().join("s.db")).await;
    let live = fresh_key();
    store.create(&live, &record(None, 10 * MIN)).await.unwrap();
    for _ in 0..7 {
        store
            .create(&fresh_key(), &record(None, MIN))
            .await
            .unwrap();
    }
    let clock = Arc::new(ManualClock::new(T0.saturating_add(2 * MIN)));
    let handle = store
        .spawn_cleanup_with_clock(Duration::from_millis(5), 3, clock)
        .unwrap();
    let mut stats = handle.stats();
    // Wait (bounded) until the task reports the 7 expired entries removed.
    tokio::time::timeout(Duration::from_secs(20), stats.wait_for(|s| s.removed >= 7))
        .await
        .expect("cleanup ran")
        .unwrap();
    assert_eq!(stats.borrow().removed, 7);
    assert_eq!(stats.borrow().errors, 0);
    assert!(store.load(&live, T0).await.unwrap().is_some());
    assert_eq!(
        store
            .cleanup_expired(T0.saturating_add(2 * MIN), 100)
            .await
            .unwrap(),
        0
    );

    drop(handle);
    // The task ends: its stats sender goes away.
    tokio::time::timeout(Duration::from_secs(20), async {
        while stats.changed().await.is_ok() {}
    })
    .await
    .expect("the task stopped after its handle was dropped");
}

#[tokio::test]
async fn periodic_cleanup_stop_waits_for_the_task() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir.path().join("s.db")).await;
    let handle = store.spawn_cleanup(Duration::from_secs(3600), 10).unwrap();
    let stats = handle.stats();
    handle.stop().await;
    assert!(stats.has_changed().is_err(), "task ended");
    assert!(matches!(
        store.spawn_cleanup(Duration::ZERO, 10),
        Err(Error::Config(_))
    ));
    assert!(matches!(
        store.spawn_cleanup(Duration::from_secs(1), 0),
        Err(Error::Config(_))
    ));
}

#[test]
fn spawn_cleanup_outside_a_runtime_is_an_error() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let store = rt.block_on(SqliteConfig::in_memory().build()).unwrap();
    assert!(matches!(
        store.spawn_cleanup(Duration::from_secs(1), 10),
        Err(Error::Config(_))
    ));
}

#[tokio::test]
async fn in_memory_and_full_sync_and_no_readers_work() {
    let dir = tempfile::tempdir().unwrap();
    let configs = [
        SqliteConfig::in_memory(),
        SqliteConfig::new(dir.path().join("full.db")).with_synchronous(Synchronous::Full),
        SqliteConfig::new(dir.path().join("solo.db")).with_readers(0),
    ];
    for config in configs {
        let store = config.build().await.unwrap();
        store.migrate().await.unwrap();
        let k = fresh_key();
        store.create(&k, &record(Some("u"), MIN)).await.unwrap();
        assert_eq!(
            store.save(&k, &record(Some("u"), MIN), T0).await.unwrap(),
            1
        );
        assert!(matches!(
            store.load(&k, T0).await.unwrap(),
            Some(Lookup::Session(r)) if r.version == 1
        ));
        assert_eq!(store.list_user("u", T0).await.unwrap().len(), 1);
        assert!(store
            .dump_files()
            .await
            .unwrap()
            .iter()
            .any(|b| !b.is_empty()));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_acknowledged_write_is_visible_to_readers() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteConfig::new(dir.path().join("s.db"))
        .with_readers(3)
        .build()
        .await
        .unwrap();
    store.migrate().await.unwrap();
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            for _ in 0..50 {
                let k = fresh_key();
                store.create(&k, &record(None, MIN)).await.unwrap();
                assert!(store.load(&k, T0).await.unwrap().is_some());
                store.delete(&k).await.unwrap();
                assert!(store.load(&k, T0).await.unwrap().is_none());
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_saves_and_rotations_have_one_winner() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir.path().join("s.db")).await;
    let k = fresh_key();
    store.create(&k, &record(Some("u"), MIN)).await.unwrap();
    let saves = futures_join(
        (0..16)
            .map(|_| {
                let store = store.clone();
                tokio::spawn(async move { store.save(&k, &record(Some("u"), MIN), T0).await })
            })
            .collect(),
    )
    .await;
    assert_eq!(saves.iter().filter(|r| r.is_ok()).count(), 1);
    assert!(saves
        .iter()
        .all(|r| matches!(r, Ok(1) | Err(Error::Conflict))));

    let rotations = futures_join(
        (0..16)
            .map(|_| {
                let store = store.clone();
                tokio::spawn(async move {
                    let mut r = record(Some("u"), MIN);
                    r.version = 1;
                    store
                        .rotate(
                            &Rotation {
                                from: k,
                                to: fresh_key(),
                                record: r,
                                grace: None,
                            },
                            T0,
                        )
                        .await
                })
            })
            .collect(),
    )
    .await;
    assert_eq!(rotations.iter().filter(|r| r.is_ok()).count(), 1);
    assert_eq!(store.list_user("u", T0).await.unwrap().len(), 1);
}

async fn futures_join<T>(handles: Vec<tokio::task::JoinHandle<T>>) -> Vec<T> {
    let mut out = Vec::new();
    for h in handles {
        out.push(h.await.unwrap());
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_stores_on_one_file_share_it_like_two_processes() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.db");
    let a = open(&path).await;
    let b = open(&path).await;
    let mut tasks = Vec::new();
    for store in [a.clone(), b.clone()] {
        tasks.push(tokio::spawn(async move {
            for _ in 0..100 {
                store
                    .create(&fresh_key(), &record(Some("shared"), MIN))
                    .await
                    .unwrap();
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    assert_eq!(a.list_user("shared", T0).await.unwrap().len(), 200);
    assert_eq!(b.delete_user("shared", None, T0).await.unwrap(), 200);
    assert!(a.list_user("shared", T0).await.unwrap().is_empty());
}

#[tokio::test]
async fn rotation_onto_itself_is_already_exists_and_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir.path().join("s.db")).await;
    let k = fresh_key();
    store.create(&k, &record(Some("u"), MIN)).await.unwrap();
    let err = store
        .rotate(
            &Rotation {
                from: k,
                to: k,
                record: record(Some("u"), MIN),
                grace: None,
            },
            T0,
        )
        .await
        .unwrap_err();
    assert!(matches!(err, Error::AlreadyExists));
    assert!(matches!(
        store.load(&k, T0).await.unwrap(),
        Some(Lookup::Session(r)) if r.version == 0
    ));
}

#[tokio::test]
async fn dump_files_show_stored_bytes_in_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir.path().join("s.db")).await;
    let k = fresh_key();
    let mut r = record(Some("needle-user"), MIN);
    r.data = b"needle-data-0123456789".to_vec();
    store.create(&k, &r).await.unwrap();
    let files = store.dump_files().await.unwrap();
    let contains = |needle: &[u8]| {
        files
            .iter()
            .any(|f| f.windows(needle.len()).any(|w| w == needle))
    };
    assert!(contains(b"needle-data-0123456789"));
    assert!(contains(b"needle-user"));
    assert!(contains(k.as_bytes()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_checkpointer_moves_the_log_into_the_database_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.db");
    let store = open(&path).await;
    let initial = std::fs::metadata(&path).unwrap().len();
    // About 3 MiB of rows: well past the 1000-page nudge threshold.
    for _ in 0..1500 {
        let mut r = record(Some("u"), MIN);
        r.data = vec![0xAB; 2048];
        store.create(&fresh_key(), &r).await.unwrap();
    }
    // The checkpoint runs on its own thread; wait (bounded) for its effect.
    let mut grown = false;
    for _ in 0..400 {
        if std::fs::metadata(&path).unwrap().len() > initial + 2 * 1024 * 1024 {
            grown = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        grown,
        "the WAL was never checkpointed into the database file"
    );
    assert_eq!(store.list_user("u", T0).await.unwrap().len(), 1500);
}

#[tokio::test]
async fn save_takes_the_fast_path_or_moves_the_user_index() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir.path().join("s.db")).await;
    let k = fresh_key();
    store.create(&k, &record(None, MIN)).await.unwrap();
    // Same owner (anonymous): fast path.
    assert_eq!(store.save(&k, &record(None, MIN), T0).await.unwrap(), 1);
    // Login: the owner changes, the full statement runs.
    let mut r = record(Some("alice"), MIN);
    r.version = 1;
    assert_eq!(store.save(&k, &r, T0).await.unwrap(), 2);
    assert_eq!(store.list_user("alice", T0).await.unwrap().len(), 1);
    // Another user, then a changed creation time.
    r.version = 2;
    r.user_id = Some("bob".into());
    assert_eq!(store.save(&k, &r, T0).await.unwrap(), 3);
    r.version = 3;
    r.created_at = T0.saturating_add(Duration::from_secs(1));
    assert_eq!(store.save(&k, &r, T0).await.unwrap(), 4);
    assert!(store.list_user("alice", T0).await.unwrap().is_empty());
    let bob = store.list_user("bob", T0).await.unwrap();
    assert_eq!(
        (bob.len(), bob[0].version, bob[0].created_at),
        (1, 4, r.created_at)
    );
    // Stale versions conflict on both paths and write nothing.
    for user in [Some("bob"), Some("carol"), None] {
        let mut stale = record(user, MIN);
        stale.version = 3;
        stale.created_at = r.created_at;
        assert!(matches!(
            store.save(&k, &stale, T0).await,
            Err(Error::Conflict)
        ));
    }
    assert_eq!(store.list_user("bob", T0).await.unwrap()[0].version, 4);
}

#[tokio::test]
async fn operation_errors_name_the_backend_operation_and_path() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.db");
    let shown = path.display().to_string();
    // Not migrated: every statement fails on the missing table.
    let store = SqliteConfig::new(&path).build().await.unwrap();
    let k = fresh_key();
    let errors = [
        ("load", store.load(&k, T0).await.map(|_| ())),
        ("create", store.create(&k, &record(None, MIN)).await),
        (
            "save",
            store.save(&k, &record(None, MIN), T0).await.map(|_| ()),
        ),
        ("touch", store.touch(&k, T0, T0, T0).await.map(|_| ())),
        ("delete", store.delete(&k).await.map(|_| ())),
        (
            "delete_user",
            store.delete_user("u", None, T0).await.map(|_| ()),
        ),
        ("list_user", store.list_user("u", T0).await.map(|_| ())),
        ("delete_all", store.delete_all().await),
        (
            "cleanup_expired",
            store.cleanup_expired(T0, 10).await.map(|_| ()),
        ),
    ];
    for (operation, result) in errors {
        let err = result.unwrap_err();
        match &err {
            Error::Backend {
                backend,
                operation: op,
                endpoint,
                ..
            } => {
                assert_eq!(*backend, "sqlite");
                assert_eq!(*op, operation);
                assert_eq!(endpoint.as_deref(), Some(shown.as_str()));
            }
            other => panic!("{operation}: {other:?}"),
        }
        let text = err.to_string();
        assert!(
            text.starts_with(&format!("sqlite {operation} ({shown})")),
            "{text}"
        );
    }

    // In memory the endpoint is `:memory:`.
    let memory = SqliteConfig::in_memory().build().await.unwrap();
    let err = memory.load(&k, T0).await.unwrap_err();
    assert!(
        err.to_string().starts_with("sqlite load (:memory:)"),
        "{err}"
    );
}

#[tokio::test]
async fn version_overflow_is_invalid_input_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir.path().join("s.db")).await;
    let k = fresh_key();
    let mut r = record(Some("u"), MIN);
    r.version = u64::MAX;
    store.create(&k, &r).await.unwrap();
    assert!(matches!(
        store.save(&k, &r, T0).await,
        Err(Error::InvalidInput("session version overflow"))
    ));
    let to = fresh_key();
    let rotation = Rotation {
        from: k,
        to,
        record: r.clone(),
        grace: None,
    };
    assert!(matches!(
        store.rotate(&rotation, T0).await,
        Err(Error::InvalidInput("session version overflow"))
    ));
    assert!(matches!(
        store.load(&k, T0).await.unwrap(),
        Some(Lookup::Session(stored)) if stored.version == u64::MAX
    ));
    assert!(store.load(&to, T0).await.unwrap().is_none());
}
