//! PostgreSQL-specific behaviour against a real server: migration and schema
//! versions, configuration errors, error mapping, corrupt rows, real
//! parallel connections and concurrent cleaners.

mod common;

use std::sync::Arc;
use std::time::Duration;

use session_store_core::{
    Error, Grace, Lookup, Rotation, SessionBackend, SessionRecord, SessionToken, StorageKey,
    Timestamp,
};
use session_store_postgres::{PostgresConfig, PostgresStore, SCHEMA_VERSION};
use sqlx::AssertSqlSafe;
use tokio::sync::Barrier;

const T0: i64 = 1_700_000_000_000;

fn key() -> StorageKey {
    SessionToken::generate().storage_key()
}

fn record(user: Option<&str>, now: i64) -> SessionRecord {
    SessionRecord {
        version: 0,
        user_id: user.map(str::to_owned),
        created_at: Timestamp::from_millis(now),
        last_seen_at: Timestamp::from_millis(now),
        auth_time: None,
        idle_deadline: Timestamp::from_millis(now + 60_000),
        absolute_deadline: Timestamp::from_millis(now + 3_600_000),
        meta: b"meta".to_vec(),
        data: b"data".to_vec(),
    }
}

fn now(ms: i64) -> Timestamp {
    Timestamp::from_millis(T0 + ms)
}

async fn scalar_i64(raw: &sqlx::PgPool, sql: String) -> i64 {
    sqlx::query_scalar(AssertSqlSafe(sql))
        .fetch_one(raw)
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn migrate_is_idempotent_and_concurrent_safe() {
    if common::skip_requested() {
        return;
    }
    let config = common::test_config(2);
    let _guard = common::SchemaGuard {
        url: common::url(),
        schema: config.schema_name().to_owned(),
    };
    let mut stores = Vec::new();
    for _ in 0..4 {
        stores.push(common::connect(&config).await);
    }
    // Four processes migrating one fresh schema at once.
    let results = futures::future::join_all(stores.iter().map(|s| s.migrate())).await;
    for r in results {
        r.unwrap();
    }
    let store = &stores[0];
    store.migrate().await.unwrap();
    assert_eq!(store.schema_version().await.unwrap(), Some(SCHEMA_VERSION));
    let k = key();
    store.create(&k, &record(Some("u"), T0)).await.unwrap();
    store.migrate().await.unwrap();
    assert!(
        store.load(&k, now(0)).await.unwrap().is_some(),
        "migrate kept data"
    );
    // A second table in the same schema gets its own version row.
    let other = PostgresStore::connect(&config.clone().table("other_sessions"))
        .await
        .unwrap();
    assert_eq!(other.schema_version().await.unwrap(), None);
    other.migrate().await.unwrap();
    assert_eq!(other.schema_version().await.unwrap(), Some(SCHEMA_VERSION));
    assert!(other.load(&k, now(0)).await.unwrap().is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn newer_schema_is_refused_and_left_untouched() {
    let Some((store, _guard)) = common::fresh_store(2).await else {
        return;
    };
    let raw = common::raw_pool().await;
    let k = key();
    store.create(&k, &record(None, T0)).await.unwrap();
    let schema = store.schema_name().to_owned();
    // Simulate a newer library's schema: a changed layout and a newer version.
    sqlx::query(AssertSqlSafe(format!(
        "DROP INDEX \"{schema}\".sessions_expires_idx"
    )))
    .execute(&raw)
    .await
    .unwrap();
    sqlx::query(AssertSqlSafe(format!(
        "UPDATE \"{schema}\".session_store_meta SET version = $1"
    )))
    .bind(SCHEMA_VERSION + 1)
    .execute(&raw)
    .await
    .unwrap();

    match store.migrate().await {
        Err(Error::SchemaTooNew { found, supported }) => {
            assert_eq!(found, SCHEMA_VERSION + 1);
            assert_eq!(supported, SCHEMA_VERSION);
        }
        other => panic!("expected SchemaTooNew, got {other:?}"),
    }
    // The refused migration released its advisory lock at once (it did not
    // leave a transaction open on the store's idle connection): another
    // process's migration of this schema is answered, not blocked.
    let other_process = PostgresStore::connect(
        &common::test_config(1)
            .schema(schema.clone())
            .operation_timeout(Duration::from_secs(5)),
    )
    .await
    .unwrap();
    assert!(matches!(
        other_process.migrate().await,
        Err(Error::SchemaTooNew { .. })
    ));
    let index_count = scalar_i64(
        &raw,
        format!(
            "SELECT count(*) FROM pg_indexes WHERE schemaname = '{schema}' \
             AND indexname = 'sessions_expires_idx'"
        ),
    )
    .await;
    assert_eq!(index_count, 0, "migrate must not recreate anything");
    assert_eq!(
        store.schema_version().await.unwrap(),
        Some(SCHEMA_VERSION + 1)
    );
    assert!(store.load(&k, now(0)).await.unwrap().is_some());

    // A newer version recorded for a table that does not exist here yet:
    // refused before anything is created.
    sqlx::query(AssertSqlSafe(format!(
        "INSERT INTO \"{schema}\".session_store_meta VALUES ('future', 99)"
    )))
    .execute(&raw)
    .await
    .unwrap();
    let future = PostgresStore::connect(
        &common::test_config(1)
            .schema(schema.clone())
            .table("future"),
    )
    .await
    .unwrap();
    assert!(matches!(
        future.migrate().await,
        Err(Error::SchemaTooNew { found: 99, .. })
    ));
    let tables = scalar_i64(
        &raw,
        format!(
            "SELECT count(*) FROM pg_tables WHERE schemaname = '{schema}' AND tablename = 'future'"
        ),
    )
    .await;
    assert_eq!(tables, 0);
}

#[tokio::test]
async fn invalid_names_are_config_errors_without_io() {
    // Nothing listens on port 1; a Config error must come before any I/O.
    let base = PostgresConfig::new("postgres://postgres@127.0.0.1:1/test");
    for bad in [
        base.clone().table("Sessions"),
        base.clone().table("s;drop table x"),
        base.clone().table(""),
        base.clone().table("a".repeat(64)),
        base.clone().schema("1schema"),
        base.clone().schema("sch\"ema"),
    ] {
        assert!(matches!(
            PostgresStore::connect(&bad).await,
            Err(Error::Config(_))
        ));
        assert!(matches!(
            PostgresStore::connect_lazy(&bad),
            Err(Error::Config(_))
        ));
    }
    let lazy = PostgresStore::connect_lazy(&base.clone().table("a".repeat(63))).unwrap();
    assert_eq!(lazy.table_name().len(), 63);
}

#[tokio::test]
async fn unreachable_server_is_a_retryable_backend_error() {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let config = PostgresConfig::new(format!("postgres://postgres@127.0.0.1:{port}/test"))
        .acquire_timeout(Duration::from_millis(300))
        .operation_timeout(Duration::from_secs(2));
    match PostgresStore::connect(&config).await {
        Err(Error::Backend {
            retryable: true, ..
        }) => {}
        other => panic!("expected a retryable backend error, got {other:?}"),
    }
    let lazy = PostgresStore::connect_lazy(&config).unwrap();
    for result in [
        lazy.load(&key(), now(0)).await.map(|_| ()),
        lazy.create(&key(), &record(None, T0)).await,
        lazy.cleanup_expired(now(0), 10).await.map(|_| ()),
    ] {
        assert!(
            matches!(
                result,
                Err(Error::Backend {
                    retryable: true,
                    ..
                })
            ),
            "{result:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unlogged_option_creates_an_unlogged_table() {
    if common::skip_requested() {
        return;
    }
    for (unlogged, expected) in [(true, "u"), (false, "p")] {
        let config = common::test_config(1).unlogged(unlogged);
        let (store, _guard) = common::connect_migrated(&config).await;
        let raw = common::raw_pool().await;
        let persistence: String = sqlx::query_scalar(
            "SELECT relpersistence::text FROM pg_class c \
             JOIN pg_namespace n ON n.oid = c.relnamespace \
             WHERE n.nspname = $1 AND c.relname = 'sessions'",
        )
        .bind(store.schema_name())
        .fetch_one(&raw)
        .await
        .unwrap();
        assert_eq!(persistence, expected);
        let k = key();
        store.create(&k, &record(None, T0)).await.unwrap();
        assert!(store.load(&k, now(0)).await.unwrap().is_some());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn corrupt_rows_are_codec_errors_not_panics() {
    let Some((store, _guard)) = common::fresh_store(2).await else {
        return;
    };
    let raw = common::raw_pool().await;
    let table = store.qualified_table();
    let bad_user = key();
    let bad_successor = key();
    let negative_version = key();
    for (k, sql) in [
        (
            bad_user,
            format!(
                "INSERT INTO {table} (key, version, user_id, created_at, last_seen_at, \
                 idle_deadline, absolute_deadline, meta, data, expires_at) \
                 VALUES ($1, 0, '\\xff00'::bytea, 0, 0, $2, $2, '', '', $2)"
            ),
        ),
        (
            bad_successor,
            format!(
                "INSERT INTO {table} (key, version, successor, sealed_token, expires_at) \
                 VALUES ($1, 0, '\\x0102'::bytea, '', $2)"
            ),
        ),
        (
            negative_version,
            format!(
                "INSERT INTO {table} (key, version, created_at, last_seen_at, \
                 idle_deadline, absolute_deadline, meta, data, expires_at) \
                 VALUES ($1, -5, 0, 0, $2, $2, '', '', $2)"
            ),
        ),
    ] {
        sqlx::query(AssertSqlSafe(sql))
            .bind(k.as_bytes().as_slice())
            .bind(T0 + 1_000_000)
            .execute(&raw)
            .await
            .unwrap();
        let got = store.load(&k, now(0)).await;
        assert!(matches!(got, Err(Error::Codec { .. })), "{got:?}");
    }
    // A user id that is not UTF-8 also fails the listing of... nobody: the
    // listing is by the caller's user id, so it cannot match a foreign one.
    assert!(store.list_user("u", now(0)).await.unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unusual_values_round_trip() {
    let Some((store, _guard)) = common::fresh_store(2).await else {
        return;
    };
    // NUL and non-ASCII in the user id (text columns could not hold NUL),
    // empty and binary data, negative and extreme timestamps.
    let user = "a\0b'; DROP TABLE x; --é";
    let k = key();
    let mut r = record(Some(user), -5);
    r.data = (0..=255u8).collect();
    r.meta = Vec::new();
    r.auth_time = Some(Timestamp::from_millis(i64::MIN));
    r.absolute_deadline = Timestamp::MAX;
    r.idle_deadline = Timestamp::MAX;
    store.create(&k, &r).await.unwrap();
    assert_eq!(
        store.load(&k, now(0)).await.unwrap(),
        Some(Lookup::Session(r.clone()))
    );
    let listed = store.list_user(user, now(0)).await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].key, k);
    assert!(store.list_user("a", now(0)).await.unwrap().is_empty());
    assert_eq!(store.delete_user(user, None, now(0)).await.unwrap(), 1);
    // Versions beyond what a bigint holds can never match a stored row.
    let mut huge = record(None, T0);
    huge.version = u64::MAX;
    assert!(matches!(
        store.create(&key(), &huge).await,
        Err(Error::Config(_))
    ));
    let k2 = key();
    store.create(&k2, &record(None, T0)).await.unwrap();
    assert!(matches!(
        store.save(&k2, &huge, now(0)).await,
        Err(Error::Conflict)
    ));
}

/// Many tasks, each on its own pooled connection, released together by a
/// barrier: creates of one key, saves of one version, rotations of one
/// session. Exactly one of each wins; the others get the contract's error.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn parallel_connections_race_exactly_as_the_contract_says() {
    const TASKS: usize = 12;
    const ROUNDS: usize = 15;
    let Some((store, _guard)) = common::fresh_store(TASKS as u32).await else {
        return;
    };
    let store = Arc::new(store);
    // The first round also opens the connections (the store keeps them
    // warm); later rounds race on already-open connections.

    for round in 0..ROUNDS {
        // Creates of one key.
        let k = key();
        let barrier = Arc::new(Barrier::new(TASKS));
        let results = futures::future::join_all((0..TASKS).map(|i| {
            let (store, barrier) = (store.clone(), barrier.clone());
            tokio::spawn(async move {
                let mut r = record(Some("racer"), T0);
                r.data = format!("creator {i}").into_bytes();
                barrier.wait().await;
                store.create(&k, &r).await.map(|()| i)
            })
        }))
        .await;
        let winners: Vec<usize> = results
            .into_iter()
            .filter_map(|r| match r.unwrap() {
                Ok(i) => Some(i),
                Err(Error::AlreadyExists) => None,
                Err(e) => panic!("round {round}: unexpected create error {e:?}"),
            })
            .collect();
        assert_eq!(winners.len(), 1, "round {round}: one create wins");
        let Some(Lookup::Session(stored)) = store.load(&k, now(0)).await.unwrap() else {
            panic!("created session missing");
        };
        assert_eq!(stored.data, format!("creator {}", winners[0]).into_bytes());

        // Saves of the same version.
        let barrier = Arc::new(Barrier::new(TASKS));
        let results = futures::future::join_all((0..TASKS).map(|i| {
            let (store, barrier, mut r) = (store.clone(), barrier.clone(), stored.clone());
            tokio::spawn(async move {
                r.data = format!("saver {i}").into_bytes();
                barrier.wait().await;
                store.save(&k, &r, now(1)).await.map(|v| (i, v))
            })
        }))
        .await;
        let winners: Vec<(usize, u64)> = results
            .into_iter()
            .filter_map(|r| match r.unwrap() {
                Ok(w) => Some(w),
                Err(Error::Conflict) => None,
                Err(e) => panic!("round {round}: unexpected save error {e:?}"),
            })
            .collect();
        assert_eq!(winners.len(), 1, "round {round}: one save wins");
        assert_eq!(winners[0].1, stored.version + 1);
        let Some(Lookup::Session(saved)) = store.load(&k, now(1)).await.unwrap() else {
            panic!("saved session missing");
        };
        assert_eq!(saved.version, stored.version + 1);
        assert_eq!(saved.data, format!("saver {}", winners[0].0).into_bytes());

        // Rotations of one session to distinct successors (half with grace),
        // raced against touches and saves of the same session.
        let barrier = Arc::new(Barrier::new(TASKS));
        let successors: Vec<StorageKey> = (0..TASKS).map(|_| key()).collect();
        let results = futures::future::join_all((0..TASKS).map(|i| {
            let (store, barrier, r) = (store.clone(), barrier.clone(), saved.clone());
            let to = successors[i];
            tokio::spawn(async move {
                barrier.wait().await;
                if i % 4 == 3 {
                    // Touch never fails and never blocks a rotation's outcome.
                    store
                        .touch(&k, now(30_000), now(2), now(2))
                        .await
                        .map(|_| None)
                } else {
                    let rotation = Rotation {
                        from: k,
                        to,
                        record: r,
                        grace: (i % 2 == 0).then(|| Grace {
                            sealed_token: b"sealed".to_vec(),
                            until: now(10_000),
                        }),
                    };
                    match store.rotate(&rotation, now(2)).await {
                        Ok(v) => Ok(Some((i, v))),
                        Err(Error::Conflict) => Ok(None),
                        Err(e) => Err(e),
                    }
                }
            })
        }))
        .await;
        let winners: Vec<(usize, u64)> = results
            .into_iter()
            .filter_map(|r| {
                r.unwrap()
                    .unwrap_or_else(|e| panic!("round {round}: {e:?}"))
            })
            .collect();
        assert_eq!(winners.len(), 1, "round {round}: one rotation wins");
        let (winner, version) = winners[0];
        assert_eq!(version, saved.version + 1);
        for (i, to) in successors.iter().enumerate() {
            let got = store.load(to, now(2)).await.unwrap();
            if i == winner {
                assert!(matches!(got, Some(Lookup::Session(ref s)) if s.version == version));
            } else {
                assert_eq!(
                    got, None,
                    "round {round}: losing successor {i} must not exist"
                );
            }
        }
        match store.load(&k, now(2)).await.unwrap() {
            Some(Lookup::Forwarded(f)) => {
                assert_eq!(winner % 2, 0);
                assert_eq!(f.successor, successors[winner]);
            }
            None => assert_eq!(winner % 2, 1),
            Some(Lookup::Session(_)) => panic!("old key still loads a session"),
        }
        // The user index holds exactly the successor (no forwarder).
        let listed = store.list_user("racer", now(2)).await.unwrap();
        assert_eq!(listed.len(), 1);
        assert_eq!(listed[0].key, successors[winner]);
        store.delete_all().await.unwrap();
    }
}

/// Several cleaners over many expired rows at once: every expired row is
/// removed exactly once (the counts add up), no live row is touched, no
/// deadlock or other error.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_cleaners_share_the_work_exactly() {
    const EXPIRED: i64 = 20_000;
    const LIVE: usize = 300;
    const CLEANERS: usize = 4;
    const BATCH: usize = 250;
    let Some((store, _guard)) = common::fresh_store(CLEANERS as u32 + 1).await else {
        return;
    };
    let raw = common::raw_pool().await;
    let table = store.qualified_table();
    // Expired sessions (half with a user) written in bulk, with expiry
    // instants spread over the past so batches interleave.
    sqlx::query(AssertSqlSafe(format!(
        "INSERT INTO {table} (key, version, user_id, created_at, last_seen_at, \
         idle_deadline, absolute_deadline, meta, data, expires_at) \
         SELECT sha256(int8send(i)), 0, CASE WHEN i % 2 = 0 THEN 'u'::bytea END, \
           $1, $1, $1 + i % 997, $1 + 1000000, '', 'x', $1 + i % 997 \
         FROM generate_series(1, $2::bigint) AS i"
    )))
    .bind(T0)
    .bind(EXPIRED)
    .execute(&raw)
    .await
    .unwrap();
    let clean_at = now(1_000);
    // Live sessions and live forwarders, through the store itself.
    let mut live = Vec::new();
    for i in 0..LIVE {
        let k = key();
        let mut r = record(Some("u"), T0);
        r.idle_deadline = Timestamp::from_millis(clean_at.as_millis() + 1 + i as i64);
        store.create(&k, &r).await.unwrap();
        live.push(k);
    }
    let mut forwarded = Vec::new();
    for _ in 0..20 {
        let (from, to) = (key(), key());
        store.create(&from, &record(None, T0)).await.unwrap();
        let rotation = Rotation {
            from,
            to,
            record: record(None, T0),
            grace: Some(Grace {
                sealed_token: b"s".to_vec(),
                until: clean_at.saturating_add(Duration::from_millis(1)),
            }),
        };
        store.rotate(&rotation, now(0)).await.unwrap();
        forwarded.push(from);
        live.push(to);
    }

    let cleaners = (0..CLEANERS).map(|_| {
        let store = store.clone();
        tokio::spawn(async move {
            let mut removed = 0u64;
            // Bounded: far more rounds than the work needs.
            for _ in 0..10_000 {
                let n = store.cleanup_expired(clean_at, BATCH).await.unwrap();
                assert!(n <= BATCH as u64);
                removed += n;
                if n == 0 {
                    break;
                }
            }
            removed
        })
    });
    let counts: Vec<u64> = futures::future::join_all(cleaners)
        .await
        .into_iter()
        .map(Result::unwrap)
        .collect();
    println!("rows removed per cleaner: {counts:?}");
    assert_eq!(
        counts.iter().sum::<u64>(),
        EXPIRED as u64,
        "per-cleaner counts {counts:?} must add up to the expired rows"
    );
    assert_eq!(store.cleanup_expired(clean_at, BATCH).await.unwrap(), 0);
    let remaining = scalar_i64(&raw, format!("SELECT count(*) FROM {table}")).await;
    assert_eq!(remaining as usize, live.len() + forwarded.len());
    for k in &live {
        assert!(matches!(
            store.load(k, clean_at).await.unwrap(),
            Some(Lookup::Session(_))
        ));
    }
    for k in &forwarded {
        assert!(matches!(
            store.load(k, clean_at).await.unwrap(),
            Some(Lookup::Forwarded(_))
        ));
    }
    // One millisecond later the forwarders are expired and go too.
    let later = clean_at.saturating_add(Duration::from_millis(1));
    assert_eq!(store.cleanup_expired(later, 1_000).await.unwrap(), 20 + 1);
}

/// With a single connection, many concurrent operations all complete: a
/// waiting operation gets the connection the previous one pushed back.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn one_connection_serves_many_concurrent_operations() {
    let Some((store, _guard)) = common::fresh_store(1).await else {
        return;
    };
    let store = Arc::new(store);
    let tasks = (0..40).map(|i| {
        let store = store.clone();
        tokio::spawn(async move {
            let k = key();
            store.create(&k, &record(Some("many"), T0)).await?;
            let found = store.load(&k, now(0)).await?;
            assert!(found.is_some(), "task {i}");
            store.touch(&k, now(90_000), now(1), now(1)).await
        })
    });
    for r in futures::future::join_all(tasks).await {
        assert!(r.unwrap().unwrap());
    }
    assert_eq!(store.list_user("many", now(2)).await.unwrap().len(), 40);
    assert!(store.pool().size() <= 1);
    // Closing refuses further work with a retryable error.
    store.close().await;
    assert!(matches!(
        store.load(&key(), now(0)).await,
        Err(Error::Backend {
            retryable: true,
            ..
        })
    ));
}

/// Warm connections past the idle timeout or the maximum lifetime are closed
/// and replaced on the next use; operations keep working.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expired_warm_connections_are_replaced() {
    if common::skip_requested() {
        return;
    }
    for config in [
        common::test_config(2).idle_timeout(Some(Duration::ZERO)),
        common::test_config(2).max_lifetime(Some(Duration::ZERO)),
    ] {
        let (store, _guard) = common::connect_migrated(&config).await;
        for i in 0..20 {
            let k = key();
            store.create(&k, &record(None, T0)).await.unwrap();
            assert!(store.load(&k, now(i)).await.unwrap().is_some());
        }
        assert!(store.pool().size() <= 2);
    }
}

/// Closing while operations are in flight finishes (no connection is pushed
/// back afterwards for the pool to wait on); each operation either completes
/// or fails with a retryable error.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn close_with_operations_in_flight_finishes() {
    let Some((store, _guard)) = common::fresh_store(3).await else {
        return;
    };
    let store = Arc::new(store);
    let k = key();
    store.create(&k, &record(None, T0)).await.unwrap();
    let ops: Vec<_> = (0..30)
        .map(|_| {
            let store = store.clone();
            tokio::spawn(async move { store.load(&k, now(0)).await })
        })
        .collect();
    tokio::time::timeout(Duration::from_secs(20), store.close())
        .await
        .expect("close hung");
    for op in ops {
        match op.await.unwrap() {
            Ok(found) => assert!(found.is_some()),
            Err(Error::Backend {
                retryable: true, ..
            }) => {}
            Err(e) => panic!("unexpected error {e:?}"),
        }
    }
}
