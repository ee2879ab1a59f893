//! Redis-specific behaviour on the standalone server (127.0.0.1:6379) and
//! the cluster (127.0.0.1:7001-7003): native TTLs, user-index pruning after
//! records expired on their own, corrupt values, prefixes, hash slots.

mod common;

use std::time::Duration;

use redis::Value;
use session_store_conformance::fixtures::{self, at, fresh_key};
use session_store_core::{
    Error, Grace, Lookup, Rotation, SessionBackend, SessionRecord, SessionToken, StorageKey,
    Timestamp,
};
use session_store_redis::{RedisConfig, RedisStore, AFFINITY_BITS};

use common::{config, connect, skip};

/// A fixture record (of `user`, if any) with the given idle and absolute
/// lifetimes from `now`.
fn record(now: Timestamp, user: Option<&str>, idle: Duration, abs: Duration) -> SessionRecord {
    let base = match user {
        Some(user) => fixtures::user_record(now, user, b"data"),
        None => fixtures::record(now, b"data"),
    };
    SessionRecord {
        idle_deadline: at(now, idle),
        absolute_deadline: at(now, abs),
        meta: b"meta".to_vec(),
        ..base
    }
}

const MIN: Duration = Duration::from_secs(60);

/// A raw connection to whichever deployment `cluster` names.
enum Raw {
    Single(redis::aio::MultiplexedConnection),
    Cluster(redis::cluster_async::ClusterConnection),
}

impl Raw {
    async fn new(cluster: bool) -> Self {
        if cluster {
            Raw::Cluster(common::raw_cluster().await)
        } else {
            Raw::Single(common::raw_standalone().await)
        }
    }

    async fn q<T: redis::FromRedisValue>(&mut self, cmd: &redis::Cmd) -> T {
        match self {
            Raw::Single(c) => cmd.query_async(c).await,
            Raw::Cluster(c) => cmd.query_async(c).await,
        }
        .expect("raw command")
    }

    async fn pttl(&mut self, key: &str) -> i64 {
        self.q(redis::cmd("PTTL").arg(key)).await
    }

    async fn exists(&mut self, key: &str) -> bool {
        self.q::<i64>(redis::cmd("EXISTS").arg(key)).await == 1
    }

    async fn zcard(&mut self, key: &str) -> i64 {
        self.q(redis::cmd("ZCARD").arg(key)).await
    }
}

/// Asserts that a PTTL is within a minute below `expected` (it can only have
/// shrunk since the write).
fn assert_ttl(pttl: i64, expected: Duration, what: &str) {
    let expected = i64::try_from(expected.as_millis()).unwrap();
    assert!(
        pttl <= expected && pttl > expected - 60_000,
        "{what}: PTTL {pttl} ms, expected about {expected} ms"
    );
}

async fn native_ttl_on_every_key(cluster: bool) {
    let slack = Duration::from_secs(5);
    let store = connect(config(cluster).with_ttl_slack(slack)).await;
    let mut raw = Raw::new(cluster).await;
    let now = Timestamp::now_utc();
    let from = fresh_key();
    let r = record(now, Some("alice"), 10 * MIN, 60 * MIN);
    store.create(&from, &r).await.unwrap();
    let entry = store.entry_key_name(&from);
    let (zset, times) = store.user_index_key_names("alice");
    assert_ttl(raw.pttl(&entry).await, 10 * MIN + slack, "session");
    assert_ttl(raw.pttl(&zset).await, 60 * MIN + slack, "user index");
    assert_ttl(raw.pttl(&times).await, 60 * MIN + slack, "user index times");

    // touch moves the idle deadline and the TTL with it, capped at absolute.
    assert!(store
        .touch(&from, now.saturating_add(20 * MIN), now, now)
        .await
        .unwrap());
    assert_ttl(raw.pttl(&entry).await, 20 * MIN + slack, "touched session");
    assert!(store
        .touch(&from, now.saturating_add(600 * MIN), now, now)
        .await
        .unwrap());
    assert_ttl(
        raw.pttl(&entry).await,
        60 * MIN + slack,
        "touch capped at absolute",
    );

    // save replaces the deadlines, and the TTL follows (down too).
    let Some(Lookup::Session(mut cur)) = store.load(&from, now).await.unwrap() else {
        panic!("session expected")
    };
    cur.idle_deadline = now.saturating_add(5 * MIN);
    cur.version = store.save(&from, &cur, now).await.unwrap();
    assert_ttl(raw.pttl(&entry).await, 5 * MIN + slack, "saved session");

    // rotate with grace: the successor by its record, the forwarder by `until`.
    let to = SessionToken::generate_with_affinity(&from, AFFINITY_BITS).storage_key();
    let rot = Rotation {
        from,
        to,
        record: cur.clone(),
        grace: Some(Grace {
            sealed_token: b"sealed".to_vec(),
            until: now.saturating_add(Duration::from_secs(30)),
        }),
    };
    store.rotate(&rot, now).await.unwrap();
    assert_ttl(
        raw.pttl(&entry).await,
        Duration::from_secs(30) + slack,
        "forwarder",
    );
    assert_ttl(
        raw.pttl(&store.entry_key_name(&to)).await,
        5 * MIN + slack,
        "successor",
    );

    // Far-future deadlines are clamped, never rejected, and still expire.
    let far = fresh_key();
    let mut forever = record(now, Some("alice"), MIN, MIN);
    forever.idle_deadline = Timestamp::MAX;
    forever.absolute_deadline = Timestamp::MAX;
    store.create(&far, &forever).await.unwrap();
    assert!(store.touch(&far, Timestamp::MAX, now, now).await.unwrap());
    assert!(raw.pttl(&store.entry_key_name(&far)).await > 0);
    assert!(matches!(
        store.load(&far, now).await.unwrap(),
        Some(Lookup::Session(r)) if r.absolute_deadline == Timestamp::MAX
    ));

    // Every key of the prefix has a TTL: nothing can outlive its session.
    let dump_keys: Vec<String> = {
        let (z, t) = store.user_index_key_names("alice");
        vec![
            store.entry_key_name(&from),
            store.entry_key_name(&to),
            store.entry_key_name(&far),
            z,
            t,
        ]
    };
    for k in &dump_keys {
        assert!(raw.pttl(k).await > 0, "{k} has no TTL");
    }
    store.delete_all().await.unwrap();
    for k in &dump_keys {
        assert!(!raw.exists(k).await, "{k} survived delete_all");
    }
}

#[tokio::test]
async fn native_ttl_on_every_key_standalone() {
    if skip(false).is_some() {
        return println!("SKIP: SESSION_STORE_SKIP_REDIS=1");
    }
    native_ttl_on_every_key(false).await;
}

#[tokio::test]
async fn native_ttl_on_every_key_cluster() {
    if skip(true).is_some() {
        return println!("SKIP: SESSION_STORE_SKIP_REDIS_CLUSTER=1");
    }
    native_ttl_on_every_key(true).await;
}

/// Sessions whose records Redis expired by itself (short real deadlines) are
/// pruned from the user index by `list_user` and `delete_user`.
async fn index_pruned_after_records_expired(cluster: bool) {
    let guard = Duration::from_millis(100);
    let store = connect(
        config(cluster)
            .with_ttl_slack(Duration::ZERO)
            .with_index_guard(guard),
    )
    .await;
    let mut raw = Raw::new(cluster).await;
    let short = Duration::from_millis(200);
    for user in ["bob", "carol"] {
        let now = Timestamp::now_utc();
        let long = fresh_key();
        store
            .create(&long, &record(now, Some(user), 60 * MIN, 60 * MIN))
            .await
            .unwrap();
        let mut short_keys = Vec::new();
        // Idle-expired (absolute far away) and fully expired sessions.
        for abs in [60 * MIN, 60 * MIN, short] {
            let k = fresh_key();
            store
                .create(&k, &record(now, Some(user), short, abs))
                .await
                .unwrap();
            short_keys.push(store.entry_key_name(&k));
        }
        let (zset, times) = store.user_index_key_names(user);
        assert_eq!(raw.zcard(&zset).await, 4);
        // The server's own TTL is under test: wait (bounded) on its clock.
        let gone = common::eventually(Duration::from_secs(10), || {
            let keys = short_keys.clone();
            let raw = Raw::new(cluster);
            async move {
                let raw = &mut raw.await;
                for k in &keys {
                    if raw.exists(k).await {
                        return false;
                    }
                }
                true
            }
        })
        .await;
        assert!(gone, "Redis did not expire the short sessions");
        assert_eq!(raw.zcard(&zset).await, 4, "nothing pruned without a reader");
        // Past the guard, a reader prunes what can never come back.
        tokio::time::sleep(guard + Duration::from_millis(50)).await;
        let now = Timestamp::now_utc();
        if user == "bob" {
            let listed = store.list_user(user, now).await.unwrap();
            assert_eq!(listed.iter().map(|s| s.key).collect::<Vec<_>>(), vec![long]);
            assert_eq!(raw.zcard(&zset).await, 1, "list_user pruned the index");
            let t: i64 = raw.q(redis::cmd("HLEN").arg(&times)).await;
            assert_eq!(t, 1);
        } else {
            assert_eq!(store.delete_user(user, None, now).await.unwrap(), 1);
            assert_eq!(raw.zcard(&zset).await, 0, "delete_user emptied the index");
            assert!(!raw.exists(&times).await);
        }
    }
    store.delete_all().await.unwrap();
}

#[tokio::test]
async fn index_pruned_after_records_expired_standalone() {
    if skip(false).is_some() {
        return println!("SKIP: SESSION_STORE_SKIP_REDIS=1");
    }
    index_pruned_after_records_expired(false).await;
}

#[tokio::test]
async fn index_pruned_after_records_expired_cluster() {
    if skip(true).is_some() {
        return println!("SKIP: SESSION_STORE_SKIP_REDIS_CLUSTER=1");
    }
    index_pruned_after_records_expired(true).await;
}

/// An index entry whose record is missing but that is younger than the guard
/// (a create in flight) is kept; expired-but-stored records stay the user's.
#[tokio::test]
async fn young_index_entries_survive_and_stored_expired_sessions_are_deleted() {
    if skip(false).is_some() {
        return println!("SKIP: SESSION_STORE_SKIP_REDIS=1");
    }
    let store = connect(config(false)).await;
    let mut raw = Raw::new(false).await;
    let now = Timestamp::now_utc();
    let k = fresh_key();
    store
        .create(&k, &record(now, Some("dave"), MIN, MIN))
        .await
        .unwrap();
    let _: i64 = raw.q(redis::cmd("DEL").arg(store.entry_key_name(&k))).await;
    let (zset, _) = store.user_index_key_names("dave");
    assert!(store.list_user("dave", now).await.unwrap().is_empty());
    assert_eq!(raw.zcard(&zset).await, 1, "young entry kept");

    // Far past the deadlines by the caller's clock, but still stored: listing
    // shows nothing, delete_user still deletes it (counted as not live).
    let e = fresh_key();
    store
        .create(&e, &record(now, Some("dave"), MIN, MIN))
        .await
        .unwrap();
    let later = now.saturating_add(600 * MIN);
    assert!(store.list_user("dave", later).await.unwrap().is_empty());
    assert_eq!(store.delete_user("dave", None, later).await.unwrap(), 0);
    assert!(!raw.exists(&store.entry_key_name(&e)).await);
    store
        .create(&e, &record(now, None, MIN, MIN))
        .await
        .unwrap();
    store.delete_all().await.unwrap();
}

#[tokio::test]
async fn corrupt_values_are_codec_errors() {
    if skip(false).is_some() {
        return println!("SKIP: SESSION_STORE_SKIP_REDIS=1");
    }
    let store = connect(config(false)).await;
    let mut raw = Raw::new(false).await;
    let now = Timestamp::now_utc();
    let k = fresh_key();
    let r = record(now, Some("erin"), MIN, MIN);
    store.create(&k, &r).await.unwrap();
    let entry = store.entry_key_name(&k);
    let codec = |res: Result<(), Error>, what: &str| {
        assert!(matches!(res, Err(Error::Codec { .. })), "{what}: {res:?}");
    };
    let mut header_digit =
        format!("S{:020}+{:019}+{:019}+{:019}a{:010}\n", 0, 1, 2, 3, 0).into_bytes();
    header_digit[30] = b'x';
    let bad_values: Vec<Vec<u8>> = vec![
        b"X".to_vec(),
        b"Sshort".to_vec(),
        header_digit,
        b"F+0000000000000000001\ntoo short for a key".to_vec(),
    ];
    for value in &bad_values {
        let _: Value = raw
            .q(redis::cmd("SET").arg(&entry).arg(value.as_slice()))
            .await;
        codec(
            store.load(&k, now).await.map(drop),
            "load of a corrupt value",
        );
    }
    // The scripts refuse a corrupt session header too.
    let mut bad = format!("S{:020}+{:019}+{:019}+{:019}a{:010}\n", 0, 1, 2, 3, 0).into_bytes();
    bad[50] = b'?';
    let _: Value = raw
        .q(redis::cmd("SET").arg(&entry).arg(bad.as_slice()))
        .await;
    codec(
        store.save(&k, &r, now).await.map(drop),
        "save on a corrupt header",
    );
    codec(
        store.touch(&k, now, now, now).await.map(drop),
        "touch on a corrupt header",
    );
    // A value of the wrong Redis type.
    let _: i64 = raw.q(redis::cmd("DEL").arg(&entry)).await;
    let _: i64 = raw
        .q(redis::cmd("HSET").arg(&entry).arg("f").arg("v"))
        .await;
    codec(store.load(&k, now).await.map(drop), "load");
    codec(store.save(&k, &r, now).await.map(drop), "save");
    codec(store.touch(&k, now, now, now).await.map(drop), "touch");
    let to = SessionToken::generate_with_affinity(&k, AFFINITY_BITS).storage_key();
    let rot = Rotation {
        from: k,
        to,
        record: r.clone(),
        grace: None,
    };
    codec(store.rotate(&rot, now).await.map(drop), "rotate");
    // Per-user operations report the damaged entry instead of failing: the
    // listing marks it, the revocation removes it.
    let listed = store.list_user("erin", now).await.unwrap();
    assert_eq!(listed.len(), 1, "{listed:?}");
    assert_eq!(listed[0].key, k);
    assert_eq!(
        listed[0].damage,
        Some(session_store_core::Damage::Undecodable)
    );
    assert_eq!(store.delete_user("erin", None, now).await.unwrap(), 0);
    assert!(!raw.exists(&entry).await, "the damaged key is revoked too");
    // Corrupt data never stops a delete.
    let _: i64 = raw
        .q(redis::cmd("HSET").arg(&entry).arg("f").arg("v"))
        .await;
    assert!(store.delete(&k).await.unwrap());
    assert!(store.load(&k, now).await.unwrap().is_none());
    store.delete_all().await.unwrap();
}

#[tokio::test]
async fn prefixes_are_validated_and_isolated() {
    if skip(false).is_some() {
        return println!("SKIP: SESSION_STORE_SKIP_REDIS=1");
    }
    for bad in ["", "a{b}", "a b", "x*", &"p".repeat(65)] {
        let err = common::env_config(false)
            .with_prefix(bad)
            .build()
            .await
            .expect_err("invalid prefix");
        assert!(matches!(err, Error::Config(_)), "{bad:?}: {err:?}");
    }
    // A prefix and a longer prefix that starts with it stay apart.
    let outer = connect(config(false)).await;
    let inner =
        connect(common::env_config(false).with_prefix(format!("{}:u", outer.prefix()))).await;
    let now = Timestamp::now_utc();
    let (a, b) = (fresh_key(), fresh_key());
    outer
        .create(&a, &record(now, Some("frank"), MIN, MIN))
        .await
        .unwrap();
    inner
        .create(&b, &record(now, Some("frank"), MIN, MIN))
        .await
        .unwrap();
    outer.delete_all().await.unwrap();
    assert!(outer.load(&a, now).await.unwrap().is_none());
    assert!(outer.list_user("frank", now).await.unwrap().is_empty());
    assert!(inner.load(&b, now).await.unwrap().is_some());
    assert_eq!(inner.list_user("frank", now).await.unwrap().len(), 1);
    assert!(outer.dump_raw().await.unwrap().is_empty());
    assert!(!inner.dump_raw().await.unwrap().is_empty());
    inner.delete_all().await.unwrap();
    assert!(inner.dump_raw().await.unwrap().is_empty());
}

#[tokio::test]
async fn rotation_needs_affinity() {
    if skip(false).is_some() {
        return println!("SKIP: SESSION_STORE_SKIP_REDIS=1");
    }
    let store = connect(config(false)).await;
    assert_eq!(store.rotation_affinity_bits(), AFFINITY_BITS);
    let now = Timestamp::now_utc();
    let from = fresh_key();
    let r = record(now, None, MIN, MIN);
    store.create(&from, &r).await.unwrap();
    // A successor in another slot (first byte differs).
    let mut bytes = *SessionToken::generate().storage_key().as_bytes();
    bytes[0] = from.as_bytes()[0] ^ 0x80;
    let to = StorageKey::from_bytes(bytes);
    let mut rot = Rotation {
        from,
        to,
        record: r.clone(),
        grace: None,
    };
    assert!(matches!(
        store.rotate(&rot, now).await,
        Err(Error::InvalidInput(_))
    ));
    // A rotation that conflicts anyway says Conflict first.
    rot.record.version = 9;
    assert!(matches!(
        store.rotate(&rot, now).await,
        Err(Error::Conflict)
    ));
    // Nothing changed.
    assert!(matches!(store.load(&from, now).await.unwrap(), Some(Lookup::Session(s)) if s == r));
    assert!(store.load(&to, now).await.unwrap().is_none());
    store.delete_all().await.unwrap();
}

#[tokio::test]
async fn unreachable_server_is_a_retryable_error() {
    // Port 1 on loopback: nothing listens there.
    let err = RedisConfig::new("redis://:hunter2-secret@127.0.0.1:1/0")
        .with_prefix("unreachable")
        .with_operation_timeout(Duration::from_secs(2))
        .with_connection_timeout(Duration::from_millis(200))
        .with_reconnect_retries(0)
        .build()
        .await
        .expect_err("nothing listens on port 1");
    assert!(
        matches!(
            err,
            Error::Backend {
                backend: "redis",
                operation: "connect",
                retryable: true,
                ..
            }
        ),
        "{err:?}"
    );
    // The message says where, and never the password.
    let shown = err.to_string();
    assert!(shown.starts_with("redis connect ("), "{shown}");
    assert!(shown.contains("127.0.0.1:1"), "{shown}");
    assert!(!shown.contains("hunter2"), "{shown}");
    assert!(!format!("{err:?}").contains("hunter2"), "{err:?}");
    // A cluster names its seed nodes (the client wants one password for all).
    let err = RedisConfig::cluster([
        "redis://:hunter2-secret@127.0.0.1:1",
        "redis://:hunter2-secret@127.0.0.1:2",
    ])
    .with_operation_timeout(Duration::from_secs(2))
    .with_connection_timeout(Duration::from_millis(200))
    .with_reconnect_retries(0)
    .build()
    .await
    .expect_err("nothing listens on ports 1 and 2");
    let shown = err.to_string();
    assert!(
        matches!(
            err,
            Error::Backend {
                backend: "redis",
                operation: "connect",
                ..
            }
        ),
        "{err:?}"
    );
    assert!(
        shown.contains("redis://:***@127.0.0.1:1,redis://:***@127.0.0.1:2"),
        "{shown}"
    );
    assert!(!shown.contains("hunter2"), "{shown}");
    #[cfg(not(feature = "tls"))]
    {
        let err = RedisConfig::new("rediss://127.0.0.1:1")
            .build()
            .await
            .expect_err("rediss without the tls feature");
        assert!(matches!(err, Error::Config(_)), "{err:?}");
    }
}

/// In cluster mode a session, its successor and its forwarder share one
/// slot, and a user's index keys share another.
#[tokio::test]
async fn cluster_keys_share_slots() {
    if skip(true).is_some() {
        return println!("SKIP: SESSION_STORE_SKIP_REDIS_CLUSTER=1");
    }
    let store = connect(config(true)).await;
    assert!(store.is_cluster());
    let mut raw = Raw::new(true).await;
    let mut slots = std::collections::BTreeSet::new();
    for _ in 0..20 {
        let from = fresh_key();
        let to = SessionToken::generate_with_affinity(&from, AFFINITY_BITS).storage_key();
        let a: i64 = raw
            .q(redis::cmd("CLUSTER")
                .arg("KEYSLOT")
                .arg(store.entry_key_name(&from)))
            .await;
        let b: i64 = raw
            .q(redis::cmd("CLUSTER")
                .arg("KEYSLOT")
                .arg(store.entry_key_name(&to)))
            .await;
        assert_eq!(a, b, "session and successor in one slot");
        slots.insert(a);
    }
    assert!(slots.len() > 1, "sessions spread over slots");
    let (z, t) = store.user_index_key_names("grace");
    let zs: i64 = raw.q(redis::cmd("CLUSTER").arg("KEYSLOT").arg(&z)).await;
    let ts: i64 = raw.q(redis::cmd("CLUSTER").arg("KEYSLOT").arg(&t)).await;
    assert_eq!(zs, ts);

    // delete_all scans every master.
    let now = Timestamp::now_utc();
    for _ in 0..40 {
        store
            .create(&fresh_key(), &record(now, Some("grace"), MIN, MIN))
            .await
            .unwrap();
    }
    assert_eq!(store.list_user("grace", now).await.unwrap().len(), 40);
    store.delete_all().await.unwrap();
    assert!(store.dump_raw().await.unwrap().is_empty());
    assert!(store.list_user("grace", now).await.unwrap().is_empty());
}

#[tokio::test]
async fn store_from_env_connects() {
    if skip(false).is_some() {
        return println!("SKIP: SESSION_STORE_SKIP_REDIS=1");
    }
    // Only the defaults: the variables may be set by the environment.
    let store: RedisStore = connect(
        RedisConfig::from_env()
            .unwrap()
            .with_prefix(common::random_prefix()),
    )
    .await;
    store.ping().await.unwrap();
    assert_eq!(
        store.endpoint(),
        session_store_core::config::redact_url(RedisConfig::from_env().unwrap().url().unwrap())
    );
}

/// A record at version `u64::MAX` cannot be saved or rotated: the caller's
/// argument is refused before anything is written.
#[tokio::test]
async fn version_overflow_is_invalid_input() {
    if skip(false).is_some() {
        return println!("SKIP: SESSION_STORE_SKIP_REDIS=1");
    }
    let store = connect(config(false)).await;
    let now = Timestamp::now_utc();
    let k = fresh_key();
    let mut r = record(now, Some("oscar"), MIN, MIN);
    r.version = u64::MAX;
    store.create(&k, &r).await.unwrap();
    let err = store.save(&k, &r, now).await.unwrap_err();
    assert!(
        matches!(err, Error::InvalidInput("session version overflow")),
        "{err:?}"
    );
    let rot = Rotation {
        from: k,
        to: fixtures::successor_key(&store, &k),
        record: r.clone(),
        grace: None,
    };
    let err = store.rotate(&rot, now).await.unwrap_err();
    assert!(
        matches!(err, Error::InvalidInput("session version overflow")),
        "{err:?}"
    );
    assert!(matches!(
        store.load(&k, now).await.unwrap(),
        Some(Lookup::Session(s)) if s.version == u64::MAX
    ));
    store.delete_all().await.unwrap();
}

#[test]
fn from_env_requires_a_location() {
    let err = RedisConfig::from_vars(&session_store_core::config::Vars::from_pairs([(
        "SESSION_STORE_REDIS_PREFIX",
        "p",
    )]))
    .unwrap_err();
    assert!(matches!(err, Error::Config(_)), "{err:?}");
    assert!(err.to_string().contains("SESSION_STORE_REDIS_URL"), "{err}");
}

/// Ownership checks compare whole user ids, whatever their lengths, and the
/// index follows owner changes.
#[tokio::test]
async fn owner_changes_between_user_ids_of_different_lengths() {
    if skip(false).is_some() {
        return println!("SKIP: SESSION_STORE_SKIP_REDIS=1");
    }
    let store = connect(config(false)).await;
    let now = Timestamp::now_utc();
    let k = fresh_key();
    let long = "bobby-with-a-much-longer-user-id";
    let mut r = record(now, Some("bob"), MIN, MIN);
    store.create(&k, &r).await.unwrap();
    r.user_id = Some(long.into());
    r.version = store.save(&k, &r, now).await.unwrap();
    // bob's index still names the session, but it is not bob's any more.
    assert!(store.list_user("bob", now).await.unwrap().is_empty());
    assert_eq!(store.delete_user("bob", None, now).await.unwrap(), 0);
    assert_eq!(store.list_user(long, now).await.unwrap().len(), 1);
    assert!(store.list_user("bobby", now).await.unwrap().is_empty());
    // And back to the short id.
    r.user_id = Some("bob".into());
    r.version = store.save(&k, &r, now).await.unwrap();
    assert!(store.list_user(long, now).await.unwrap().is_empty());
    assert_eq!(store.list_user("bob", now).await.unwrap().len(), 1);
    assert_eq!(store.delete_user(long, None, now).await.unwrap(), 0);
    assert_eq!(store.delete_user("bob", None, now).await.unwrap(), 1);
    assert!(store.load(&k, now).await.unwrap().is_none());
    store.delete_all().await.unwrap();
}

/// Every key the store writes carries a TTL, whatever the flow: anonymous
/// and logged-in sessions, saves, touches, renewals with a grace forwarder,
/// evictions under a cap, the user index and its companion hash. A key
/// without one would outlive its sessions for ever (a damaged one included).
#[tokio::test]
async fn every_key_written_carries_a_ttl() {
    use session_store_core::{CapPolicy, ClientMeta, Policy, RotateReason, SessionManager};
    if skip(false).is_some() {
        return println!("SKIP: SESSION_STORE_SKIP_REDIS=1");
    }
    let store = connect(config(false)).await;
    let prefix = store.prefix().to_owned();
    let manager = SessionManager::builder(std::sync::Arc::new(store.clone()))
        .policy(Policy {
            renewal_grace: Duration::from_secs(30),
            touch_interval: Duration::ZERO,
            max_sessions_per_user: Some((2, CapPolicy::EvictOldest)),
            ..Policy::default()
        })
        .build()
        .unwrap();
    let meta = ClientMeta {
        label: Some("laptop".into()),
        ..ClientMeta::default()
    };
    let _anonymous = manager.create(b"a".to_vec(), meta.clone()).await.unwrap();
    for _ in 0..3 {
        let mut s = manager.create(b"b".to_vec(), meta.clone()).await.unwrap();
        manager
            .rotate(
                &mut s,
                RotateReason::Login {
                    user_id: "ttl-user".into(),
                },
            )
            .await
            .unwrap();
        s.set_data(b"c".to_vec());
        manager.save(&mut s).await.unwrap();
        manager
            .load(s.token().expose_secret())
            .await
            .unwrap()
            .unwrap();
        manager.rotate(&mut s, RotateReason::Renewal).await.unwrap();
    }
    manager.list_devices("ttl-user", None).await.unwrap();
    let mut raw = Raw::new(false).await;
    let mut cursor = 0u64;
    let mut keys: Vec<String> = Vec::new();
    loop {
        let (next, batch): (u64, Vec<String>) = raw
            .q(redis::cmd("SCAN")
                .arg(cursor)
                .arg("MATCH")
                .arg(format!("*{prefix}*"))
                .arg("COUNT")
                .arg(1000))
            .await;
        keys.extend(batch);
        cursor = next;
        if cursor == 0 {
            break;
        }
    }
    assert!(
        keys.len() >= 6,
        "sessions, forwarders and the user index: {keys:?}"
    );
    for k in &keys {
        let ttl = raw.pttl(k).await;
        assert!(ttl > 0, "{k} has no TTL ({ttl})");
    }
    store.delete_all().await.unwrap();
}
