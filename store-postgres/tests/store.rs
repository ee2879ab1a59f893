//! PostgreSQL-specific behaviour against a real server: migration and schema
//! versions, configuration errors, error mapping, corrupt rows, real
//! parallel connections and concurrent cleaners.

mod common;

use std::sync::Arc;
use std::time::Duration;

use session_store_conformance::fixtures::{fresh_key, record, user_record};
use session_store_core::config::Vars;
use session_store_core::{Error, Grace, Lookup, Rotation, SessionBackend, StorageKey, Timestamp};
use session_store_postgres::{PostgresConfig, SCHEMA_VERSION};
use sqlx::AssertSqlSafe;
use tokio::sync::Barrier;

const T0: i64 = 1_700_000_000_000;

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
    let config = common::test_config().with_max_connections(2);
    let _guard = common::SchemaGuard {
        url: common::url(),
        schema: config.schema().to_owned(),
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
    let k = fresh_key();
    store
        .create(&k, &user_record(now(0), "u", b"data"))
        .await
        .unwrap();
    store.migrate().await.unwrap();
    assert!(
        store.load(&k, now(0)).await.unwrap().is_some(),
        "migrate kept data"
    );
    // A second table in the same schema gets its own version row.
    let other = config
        .clone()
        .with_table("other_sessions")
        .build()
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
    let k = fresh_key();
    store.create(&k, &record(now(0), b"data")).await.unwrap();
    let schema = store.schema().to_owned();
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
    let other_process = common::test_config()
        .with_schema(schema.clone())
        .with_max_connections(1)
        .with_operation_timeout(Duration::from_secs(5))
        .build()
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
    let future = common::test_config()
        .with_schema(schema.clone())
        .with_table("future")
        .with_max_connections(1)
        .build()
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
        base.clone().with_table("Sessions"),
        base.clone().with_table("s;drop table x"),
        base.clone().with_table(""),
        base.clone().with_table("a".repeat(64)),
        base.clone().with_schema("1schema"),
        base.clone().with_schema("sch\"ema"),
    ] {
        assert!(matches!(bad.clone().build().await, Err(Error::Config(_))));
        assert!(matches!(
            bad.with_lazy_connect(true).build().await,
            Err(Error::Config(_))
        ));
    }
    let lazy = base
        .with_table("a".repeat(63))
        .with_lazy_connect(true)
        .build()
        .await
        .unwrap();
    assert_eq!(lazy.table().len(), 63);
}

#[tokio::test]
async fn unreachable_server_is_a_retryable_backend_error() {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let config = PostgresConfig::new(format!("postgres://postgres@127.0.0.1:{port}/test"))
        .with_acquire_timeout(Duration::from_millis(300))
        .with_operation_timeout(Duration::from_secs(2));
    match config.clone().build().await {
        Err(Error::Backend {
            retryable: true, ..
        }) => {}
        other => panic!("expected a retryable backend error, got {other:?}"),
    }
    let lazy = config.with_lazy_connect(true).build().await.unwrap();
    for result in [
        lazy.load(&fresh_key(), now(0)).await.map(|_| ()),
        lazy.create(&fresh_key(), &record(now(0), b"data")).await,
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

/// A refused connection names the backend, the operation and the address,
/// never the password: on connect, on every operation of a lazily built
/// store, and on `migrate`.
#[tokio::test]
async fn errors_name_backend_operation_and_endpoint_without_the_password() {
    let config = PostgresConfig::new("postgres://app:hunter2-secret@127.0.0.1:1/test")
        .with_acquire_timeout(Duration::from_millis(200))
        .with_operation_timeout(Duration::from_secs(1));
    let expect = |err: Error, operation: &str| {
        let shown = err.to_string();
        assert!(
            matches!(
                &err,
                Error::Backend { backend: "postgres", operation: op, endpoint: Some(e), .. }
                    if *op == operation && e.contains("127.0.0.1:1")
            ),
            "{err:?}"
        );
        assert!(
            shown.starts_with(&format!("postgres {operation} (")),
            "{shown}"
        );
        assert!(shown.contains("127.0.0.1:1"), "{shown}");
        assert!(!shown.contains("hunter2-secret"), "{shown}");
        assert!(!format!("{err:?}").contains("hunter2-secret"), "{err:?}");
    };
    expect(config.clone().build().await.unwrap_err(), "connect");

    let store = config.with_lazy_connect(true).build().await.unwrap();
    assert_eq!(store.endpoint(), "postgres://app:***@127.0.0.1:1/test");
    assert!(!format!("{store:?}").contains("hunter2-secret"));
    let (k, r, t) = (fresh_key(), record(now(0), b"data"), now(0));
    let rotation = Rotation {
        from: k,
        to: fresh_key(),
        record: r.clone(),
        grace: None,
    };
    expect(store.migrate().await.unwrap_err(), "migrate");
    expect(store.create(&k, &r).await.unwrap_err(), "create");
    expect(store.load(&k, t).await.unwrap_err(), "load");
    expect(store.save(&k, &r, t).await.unwrap_err(), "save");
    expect(store.touch(&k, t, t, t).await.unwrap_err(), "touch");
    expect(store.rotate(&rotation, t).await.unwrap_err(), "rotate");
    expect(store.delete(&k).await.unwrap_err(), "delete");
    expect(
        store.delete_user("u", None, t).await.unwrap_err(),
        "delete_user",
    );
    expect(store.list_user("u", t).await.unwrap_err(), "list_user");
    expect(store.delete_all().await.unwrap_err(), "delete_all");
    expect(
        store.cleanup_expired(t, 10).await.unwrap_err(),
        "cleanup_expired",
    );
}

/// A record at version `u64::MAX` cannot be created, saved or rotated:
/// `InvalidInput`, before any I/O (the store points at a closed port).
#[tokio::test]
async fn version_overflow_is_invalid_input() {
    let store = PostgresConfig::new("postgres://postgres@127.0.0.1:1/test")
        .with_lazy_connect(true)
        .build()
        .await
        .unwrap();
    let mut huge = record(now(0), b"data");
    huge.version = u64::MAX;
    let k = fresh_key();
    let rotation = Rotation {
        from: k,
        to: fresh_key(),
        record: huge.clone(),
        grace: None,
    };
    for result in [
        store.create(&k, &huge).await,
        store.save(&k, &huge, now(0)).await.map(|_| ()),
        store.rotate(&rotation, now(0)).await.map(|_| ()),
    ] {
        assert!(
            matches!(result, Err(Error::InvalidInput("session version overflow"))),
            "{result:?}"
        );
    }
}

#[test]
fn from_env_requires_the_url() {
    let err =
        PostgresConfig::from_vars(&Vars::from_pairs([("SESSION_STORE_POSTGRES_SCHEMA", "x")]))
            .unwrap_err();
    assert_eq!(
        err.to_string(),
        "invalid configuration: SESSION_STORE_POSTGRES_URL is not set"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unlogged_option_creates_an_unlogged_table() {
    if common::skip_requested() {
        return;
    }
    for (unlogged, expected) in [(true, "u"), (false, "p")] {
        let config = common::test_config()
            .with_max_connections(1)
            .with_unlogged(unlogged);
        let (store, _guard) = common::connect_migrated(&config).await;
        let raw = common::raw_pool().await;
        let persistence: String = sqlx::query_scalar(
            "SELECT relpersistence::text FROM pg_class c \
             JOIN pg_namespace n ON n.oid = c.relnamespace \
             WHERE n.nspname = $1 AND c.relname = 'sessions'",
        )
        .bind(store.schema())
        .fetch_one(&raw)
        .await
        .unwrap();
        assert_eq!(persistence, expected);
        let k = fresh_key();
        store.create(&k, &record(now(0), b"data")).await.unwrap();
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
    let bad_user = fresh_key();
    let bad_successor = fresh_key();
    let negative_version = fresh_key();
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
    let k = fresh_key();
    let mut r = user_record(Timestamp::from_millis(-5), user, b"data");
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
    // Versions beyond what a bigint holds cannot be created and can never
    // match a stored row; `u64::MAX` has no successor version at all.
    let mut huge = record(now(0), b"data");
    huge.version = u64::MAX - 1;
    assert!(matches!(
        store.create(&fresh_key(), &huge).await,
        Err(Error::InvalidInput(_))
    ));
    let k2 = fresh_key();
    store.create(&k2, &record(now(0), b"data")).await.unwrap();
    assert!(matches!(
        store.save(&k2, &huge, now(0)).await,
        Err(Error::Conflict)
    ));
    huge.version = u64::MAX;
    assert!(matches!(
        store.save(&k2, &huge, now(0)).await,
        Err(Error::InvalidInput("session version overflow"))
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
        let k = fresh_key();
        let barrier = Arc::new(Barrier::new(TASKS));
        let results = futures::future::join_all((0..TASKS).map(|i| {
            let (store, barrier) = (store.clone(), barrier.clone());
            tokio::spawn(async move {
                let mut r = user_record(now(0), "racer", b"data");
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
        let successors: Vec<StorageKey> = (0..TASKS).map(|_| fresh_key()).collect();
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
        let k = fresh_key();
        let mut r = user_record(now(0), "u", b"data");
        r.idle_deadline = Timestamp::from_millis(clean_at.as_millis() + 1 + i as i64);
        store.create(&k, &r).await.unwrap();
        live.push(k);
    }
    let mut forwarded = Vec::new();
    for _ in 0..20 {
        let (from, to) = (fresh_key(), fresh_key());
        store.create(&from, &record(now(0), b"data")).await.unwrap();
        let rotation = Rotation {
            from,
            to,
            record: record(now(0), b"data"),
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
            let k = fresh_key();
            store
                .create(&k, &user_record(now(0), "many", b"data"))
                .await?;
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
        store.load(&fresh_key(), now(0)).await,
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
        common::test_config()
            .with_max_connections(2)
            .with_idle_timeout(Some(Duration::ZERO)),
        common::test_config()
            .with_max_connections(2)
            .with_max_lifetime(Some(Duration::ZERO)),
    ] {
        let (store, _guard) = common::connect_migrated(&config).await;
        for i in 0..20 {
            let k = fresh_key();
            store.create(&k, &record(now(0), b"data")).await.unwrap();
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
    let k = fresh_key();
    store.create(&k, &record(now(0), b"data")).await.unwrap();
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
