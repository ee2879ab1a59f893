//! MySQL-specific behaviour beyond the conformance suite: affected-row
//! semantics, exact user ids, migration (concurrent, idempotent, refusing a
//! newer schema), table name validation, deadlock retry, error context.
//! Each test uses its own random table, dropped afterwards.
//!
//! Needs a server (`store-mysql/scripts/mysql-service.sh`); set
//! `SESSION_STORE_SKIP_MYSQL=1` to skip visibly instead.

mod common;

use std::time::Duration;

use session_store_conformance::fixtures::{
    at, fresh_key, hex, listed_keys, load_session, mins, now, record, user_record,
};
use session_store_core::{Error, Lookup, Rotation, SessionBackend};
use session_store_mysql::{MySqlConfig, MySqlStore, META_TABLE, SCHEMA_VERSION};
use sqlx::{AssertSqlSafe, Row};

/// A compare-and-swap that rewrites identical bytes matches its row: MySQL
/// counts changed rows unless CLIENT_FOUND_ROWS is set, so this must not be
/// mistaken for a conflict. Likewise a touch that changes nothing (older
/// deadlines) still finds its live session.
#[tokio::test]
async fn unchanged_writes_are_not_conflicts() {
    let Some((store, _guard)) = common::fresh_store("unchanged_writes_are_not_conflicts", 2).await
    else {
        return;
    };
    let t = now();
    let key = fresh_key();
    store.create(&key, &record(t, b"same")).await.unwrap();
    let mut held = load_session(&store, &key, t).await;
    for expected in 1..=3 {
        // Identical record each time, only the expected version moves.
        held.version = store.save(&key, &held, t).await.unwrap();
        assert_eq!(held.version, expected);
    }
    let stored = load_session(&store, &key, t).await;
    assert_eq!(stored, held);
    // A touch with deadlines in the past changes no column.
    assert!(store.touch(&key, t, t, t).await.unwrap());
    assert!(store.touch(&key, t, t, t).await.unwrap());
    assert_eq!(load_session(&store, &key, t).await, held);
}

/// User ids compare byte for byte: case, trailing spaces, Unicode
/// normalisation, NUL and look-alikes make different users, for listing
/// and for deleting.
#[tokio::test]
async fn user_ids_are_compared_exactly() {
    let Some((store, _guard)) = common::fresh_store("user_ids_are_compared_exactly", 2).await
    else {
        return;
    };
    let t = now();
    let users = [
        "bob",
        "Bob",
        "BOB",
        "bob ",
        " bob",
        "bob\0",
        "b\u{f6}b",    // ö, composed
        "bo\u{308}b",  // o + combining diaeresis
        "stra\u{df}e", // ß
        "strasse",
        "\u{212a}elvin", // Kelvin sign
        "Kelvin",
        "\u{1f600}", // outside the BMP (4-byte UTF-8)
    ];
    let mut keys = Vec::new();
    for user in users {
        let key = fresh_key();
        store
            .create(&key, &user_record(t, user, b"x"))
            .await
            .unwrap();
        keys.push(key);
    }
    for (user, key) in users.iter().zip(&keys) {
        assert_eq!(listed_keys(&store, user, t).await, vec![*key], "{user:?}");
        match store.load(key, t).await.unwrap() {
            Some(Lookup::Session(r)) => assert_eq!(r.user_id.as_deref(), Some(*user)),
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(store.delete_user("bob", None, t).await.unwrap(), 1);
    assert!(listed_keys(&store, "bob", t).await.is_empty());
    for user in &users[1..] {
        assert_eq!(listed_keys(&store, user, t).await.len(), 1, "{user:?}");
    }
    assert_eq!(store.delete_user("b\u{f6}b", None, t).await.unwrap(), 1);
    assert_eq!(listed_keys(&store, "bo\u{308}b", t).await.len(), 1);
}

/// A user id longer than the column (512 characters) is refused as the
/// caller's input, and nothing is written; 512 characters of 4 bytes fit.
#[tokio::test]
async fn oversized_user_id_is_invalid_input() {
    let Some((store, _guard)) = common::fresh_store("oversized_user_id_is_invalid_input", 2).await
    else {
        return;
    };
    let t = now();
    let longest = "\u{1f600}".repeat(512);
    let key = fresh_key();
    store
        .create(&key, &user_record(t, &longest, b"x"))
        .await
        .unwrap();
    assert_eq!(listed_keys(&store, &longest, t).await, vec![key]);
    let key = fresh_key();
    let too_long = "a".repeat(513);
    assert!(matches!(
        store.create(&key, &user_record(t, &too_long, b"x")).await,
        Err(Error::InvalidInput(_))
    ));
    assert!(store.load(&key, t).await.unwrap().is_none());
}

/// Several stores (separate pools, so separate connections) migrate one
/// fresh table at once: all succeed, one table and one version row result.
/// Then migrate is idempotent, and a newer recorded version is refused
/// without touching anything.
#[tokio::test]
async fn concurrent_migrations_are_safe() {
    if common::skip("concurrent_migrations_are_safe") {
        return;
    }
    let config = common::test_config(1);
    let _guard = common::TableGuard {
        url: config.url().to_owned(),
        table: config.table().to_owned(),
    };
    let mut stores = Vec::new();
    for _ in 0..6 {
        stores.push(common::build(config.clone()).await);
    }
    let results = futures::future::join_all(stores.iter().map(MySqlStore::migrate)).await;
    for r in &results {
        assert!(r.is_ok(), "{r:?}");
    }
    let store = &stores[0];
    assert_eq!(store.schema_version().await.unwrap(), Some(SCHEMA_VERSION));
    store.migrate().await.unwrap();
    let mut conn = common::raw_conn().await;
    let rows: i64 = sqlx::query_scalar(AssertSqlSafe(format!(
        "SELECT COUNT(*) FROM {META_TABLE} WHERE table_name = ?"
    )))
    .bind(config.table())
    .fetch_one(&mut conn)
    .await
    .unwrap();
    assert_eq!(rows, 1);

    // The store works, then a newer schema is refused and left as it is.
    let key = fresh_key();
    store.create(&key, &record(now(), b"kept")).await.unwrap();
    sqlx::query(AssertSqlSafe(format!(
        "UPDATE {META_TABLE} SET version = ? WHERE table_name = ?"
    )))
    .bind(SCHEMA_VERSION + 1)
    .bind(config.table())
    .execute(&mut conn)
    .await
    .unwrap();
    assert!(matches!(
        store.migrate().await,
        Err(Error::SchemaTooNew { found, supported })
            if found == SCHEMA_VERSION + 1 && supported == SCHEMA_VERSION
    ));
    assert_eq!(
        store.schema_version().await.unwrap(),
        Some(SCHEMA_VERSION + 1)
    );
    assert!(store.load(&key, now()).await.unwrap().is_some());
}

/// The migration creates the table in the documented layout: InnoDB, the
/// binary no-pad collation on user_id, both indexes.
#[tokio::test]
async fn migrate_creates_the_documented_layout() {
    let Some((store, _guard)) =
        common::fresh_store("migrate_creates_the_documented_layout", 1).await
    else {
        return;
    };
    let mut conn = common::raw_conn().await;
    let engine: String = sqlx::query_scalar(
        "SELECT ENGINE FROM information_schema.TABLES \
         WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = ?",
    )
    .bind(store.table())
    .fetch_one(&mut conn)
    .await
    .unwrap();
    assert_eq!(engine, "InnoDB");
    let columns = sqlx::query(
        "SELECT COLUMN_NAME, COLUMN_TYPE, COLLATION_NAME FROM information_schema.COLUMNS \
         WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = ? ORDER BY ORDINAL_POSITION",
    )
    .bind(store.table())
    .fetch_all(&mut conn)
    .await
    .unwrap();
    let text = |row: &sqlx::mysql::MySqlRow, i: usize| -> String {
        row.try_get::<Option<String>, _>(i)
            .ok()
            .flatten()
            .or_else(|| {
                row.try_get::<Option<Vec<u8>>, _>(i)
                    .ok()
                    .flatten()
                    .map(|b| String::from_utf8_lossy(&b).into_owned())
            })
            .unwrap_or_default()
    };
    let layout: Vec<(String, String, String)> = columns
        .iter()
        .map(|r| (text(r, 0), text(r, 1), text(r, 2)))
        .collect();
    let find = |name: &str| layout.iter().find(|c| c.0 == name).cloned().unwrap();
    assert_eq!(find("key").1, "binary(32)");
    assert_eq!(find("expires_at").1, "bigint(20)");
    let user = find("user_id");
    assert_eq!(user.1, "varchar(512)");
    assert!(
        user.2 == "utf8mb4_nopad_bin" || user.2 == "utf8mb4_0900_bin",
        "{user:?}"
    );
    let indexes: Vec<String> = sqlx::query_scalar(
        "SELECT DISTINCT INDEX_NAME FROM information_schema.STATISTICS \
         WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = ?",
    )
    .bind(store.table())
    .fetch_all(&mut conn)
    .await
    .unwrap();
    let mut indexes = indexes;
    indexes.sort();
    assert_eq!(indexes, ["PRIMARY", "expires_idx", "user_idx"]);
}

/// Invalid table names are refused by `build` before any I/O (the URL
/// points nowhere), and the name is not echoed.
#[tokio::test]
async fn invalid_table_names_are_refused_at_build() {
    for bad in [
        "",
        "Sessions",
        "1abc",
        "a-b",
        "a`b",
        "sessions; DROP TABLE x",
        "x.y",
        "é",
        &"a".repeat(54),
    ] {
        let config = MySqlConfig::new("mysql://root@127.0.0.1:1/test").with_table(bad);
        match config.build().await {
            Err(Error::Config(m)) => {
                assert!(m.starts_with("table"), "{m}");
                assert!(bad.len() < 3 || !m.contains(bad), "{m}");
            }
            other => panic!("{bad:?}: {other:?}"),
        }
    }
}

/// Backend errors name the backend, the operation and the endpoint without
/// its password; an unreachable server is a retryable error, never "no
/// session".
#[tokio::test]
async fn errors_name_backend_operation_and_endpoint() {
    let store = MySqlConfig::new("mysql://app:s3cret@127.0.0.1:1/test")
        .with_lazy_connect(true)
        .with_acquire_timeout(Duration::from_millis(300))
        .with_operation_timeout(Duration::from_secs(2))
        .build()
        .await
        .unwrap();
    let e = store.load(&fresh_key(), now()).await.unwrap_err();
    match &e {
        Error::Backend {
            backend,
            operation,
            endpoint,
            retryable,
            ..
        } => {
            assert_eq!(*backend, "mysql");
            assert_eq!(*operation, "load");
            assert_eq!(
                endpoint.as_deref(),
                Some("mysql://app:***@127.0.0.1:1/test")
            );
            assert!(*retryable);
        }
        other => panic!("{other:?}"),
    }
    assert!(!e.to_string().contains("s3cret"), "{e}");
    let e = MySqlConfig::new("mysql://app:s3cret@127.0.0.1:1/test")
        .with_acquire_timeout(Duration::from_millis(300))
        .build()
        .await
        .unwrap_err();
    assert!(
        matches!(
            e,
            Error::Backend {
                backend: "mysql",
                operation: "connect",
                retryable: true,
                ..
            }
        ),
        "{e:?}"
    );
    assert!(!format!("{e:?}").contains("s3cret"));
}

/// A rotation chosen as a deadlock victim is run again and succeeds.
///
/// A raw transaction, made heavier than the rotation by 50 inserted rows
/// (InnoDB rolls back the lighter one), holds a gap lock where the successor goes; the
/// rotation locks the old session and waits to insert the successor; the
/// raw transaction then asks for the old session: a cycle. InnoDB rolls
/// the rotation back (error 1213), the store retries it after the raw
/// transaction ends, and the caller sees only the success.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deadlock_victims_are_retried() {
    let Some((store, _guard)) = common::fresh_store("deadlock_victims_are_retried", 2).await else {
        return;
    };
    let t = now();
    let table = format!("`{}`", store.table());
    // Weight for the raw transaction: rows it inserts (an update by key
    // list could scan, and so lock, every row, `from` included).
    let ballast: Vec<String> = (0..50)
        .map(|_| {
            format!(
                "(X'{}', 0, 1, 1, 1, 1, '', 'ballast', 1)",
                hex(fresh_key().as_bytes())
            )
        })
        .collect();
    let from = fresh_key();
    let to = fresh_key();
    store
        .create(&from, &user_record(t, "alice", b"x"))
        .await
        .unwrap();
    let held = load_session(&store, &from, t).await;
    let deadlocks_before = deadlocks().await;

    let mut raw = common::raw_conn().await;
    for sql in [
        "SET SESSION TRANSACTION ISOLATION LEVEL REPEATABLE READ".to_owned(),
        "BEGIN".to_owned(),
        format!(
            "INSERT INTO {table} (`key`, version, created_at, last_seen_at, idle_deadline, \
             absolute_deadline, meta, data, expires_at) VALUES {}",
            ballast.join(", ")
        ),
    ] {
        sqlx::query(AssertSqlSafe(sql))
            .execute(&mut raw)
            .await
            .unwrap();
    }
    // A locking read of the absent successor key: a gap lock there.
    let absent = sqlx::query(AssertSqlSafe(format!(
        "SELECT 1 FROM {table} WHERE `key` = ? FOR UPDATE"
    )))
    .bind(to.as_bytes().as_slice())
    .fetch_optional(&mut raw)
    .await
    .unwrap();
    assert!(absent.is_none());

    let rotation = Rotation {
        from,
        to,
        record: held.clone(),
        grace: None,
    };
    let rotating = {
        let store = store.clone();
        tokio::spawn(async move { store.rotate(&rotation, t).await })
    };
    // Let the rotation lock `from` and block on the successor's gap.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let closed_cycle = sqlx::query(AssertSqlSafe(format!(
        "SELECT 1 FROM {table} WHERE `key` = ? FOR UPDATE"
    )))
    .bind(from.as_bytes().as_slice())
    .fetch_optional(&mut raw)
    .await;
    assert!(
        closed_cycle.is_ok(),
        "the heavier raw transaction must not be the victim: {closed_cycle:?}"
    );
    sqlx::query("ROLLBACK").execute(&mut raw).await.unwrap();

    let version = rotating
        .await
        .unwrap()
        .expect("the retried rotation succeeds");
    assert_eq!(version, held.version + 1);
    assert!(store.load(&from, t).await.unwrap().is_none());
    assert_eq!(load_session(&store, &to, t).await.data, b"x");
    assert!(
        deadlocks().await > deadlocks_before,
        "the server saw no deadlock: the test did not build the cycle"
    );
}

/// The server's deadlock counter.
async fn deadlocks() -> u64 {
    let mut conn = common::raw_conn().await;
    let row = sqlx::query("SHOW GLOBAL STATUS LIKE 'Innodb_deadlocks'")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    let value: String = row
        .try_get::<String, _>(1)
        .or_else(|_| {
            row.try_get::<Vec<u8>, _>(1)
                .map(|b| String::from_utf8_lossy(&b).into_owned())
        })
        .unwrap();
    value.parse().unwrap()
}

/// Concurrent cleaners take disjoint batches (SKIP LOCKED): every expired
/// session is removed exactly once and no live one is touched.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_cleaners_count_each_session_once() {
    let Some((store, _guard)) =
        common::fresh_store("concurrent_cleaners_count_each_session_once", 4).await
    else {
        return;
    };
    let t = now();
    for i in 0..300 {
        let mut r = record(t, b"x");
        if i % 3 != 0 {
            // Expired by `later`.
            r.idle_deadline = at(t, mins(1));
        }
        store.create(&fresh_key(), &r).await.unwrap();
    }
    let later = at(t, mins(5));
    let cleaners = (0..4).map(|_| {
        let store = store.clone();
        tokio::spawn(async move {
            let mut removed = 0;
            loop {
                let n = store.cleanup_expired(later, 7).await.unwrap();
                removed += n;
                if n == 0 {
                    break removed;
                }
            }
        })
    });
    let total: u64 = futures::future::join_all(cleaners)
        .await
        .into_iter()
        .map(Result::unwrap)
        .sum();
    assert_eq!(total, 200);
    assert_eq!(store.cleanup_expired(later, 1000).await.unwrap(), 0);
    let dumped_rows = store.dump_raw().await.unwrap();
    assert!(!dumped_rows.is_empty());
}
