//! Behaviour of the sled store beyond the shared conformance suite: index
//! consistency, corrupt data, namespaces, safe open, cleanup and its task.

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use session_store_conformance::fixtures::{self, fresh_key as key};
use session_store_core::{
    Clock, Error, Grace, Lookup, ManualClock, Rotation, SessionBackend, SessionRecord, StorageKey,
    Timestamp,
};
use session_store_sled::schema::SCHEMA_VERSION;
use session_store_sled::{Durability, SledConfig, SledStore};

const T0: i64 = 1_700_000_000_000;

fn t(ms: i64) -> Timestamp {
    Timestamp::from_millis(T0 + ms)
}

fn record(user: Option<&str>, idle_ms: i64) -> SessionRecord {
    SessionRecord {
        version: 1,
        user_id: user.map(str::to_owned),
        created_at: t(0),
        last_seen_at: t(0),
        auth_time: None,
        idle_deadline: t(idle_ms),
        absolute_deadline: t(1_000_000),
        meta: b"meta".to_vec(),
        data: b"data".to_vec(),
    }
}

async fn temp_store() -> SledStore {
    SledConfig::temporary().build().await.unwrap()
}

/// Polls `f` once: without a tokio runtime every call of this crate
/// (`build` included) runs inline, so its future is ready at once.
fn ready<T>(f: impl std::future::Future<Output = T>) -> T {
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    match std::pin::pin!(f).poll(&mut cx) {
        std::task::Poll::Ready(v) => v,
        std::task::Poll::Pending => panic!("future was not ready without a runtime"),
    }
}

fn tree(store: &SledStore, name: &str) -> sled::Tree {
    store
        .db()
        .sled()
        .open_tree(format!("{}.{name}", store.prefix()))
        .unwrap()
}

fn keys_of(tree: &sled::Tree) -> BTreeSet<Vec<u8>> {
    tree.iter().keys().map(|k| k.unwrap().to_vec()).collect()
}

/// The indexes hold exactly one entry per record, derived from the record.
fn assert_indexes_consistent(store: &SledStore) {
    let records = tree(store, "records");
    let mut users = BTreeSet::new();
    let mut expiry = BTreeSet::new();
    for kv in records.iter() {
        let (k, v) = kv.unwrap();
        let key = StorageKey::try_from_slice(&k).unwrap();
        let entry = session_store_sled::schema::decode_entry(&v).unwrap();
        let at = match &entry {
            Lookup::Session(r) => {
                if let Some(u) = &r.user_id {
                    let mut uk = (u.len() as u32).to_be_bytes().to_vec();
                    uk.extend_from_slice(u.as_bytes());
                    uk.extend_from_slice(key.as_bytes());
                    users.insert(uk);
                }
                r.expires_at()
            }
            Lookup::Forwarded(f) => f.until,
        };
        let mut ek = ((at.as_millis() as u64) ^ (1 << 63)).to_be_bytes().to_vec();
        ek.extend_from_slice(key.as_bytes());
        expiry.insert(ek);
    }
    assert_eq!(keys_of(&tree(store, "users")), users, "user index");
    assert_eq!(keys_of(&tree(store, "expiry")), expiry, "expiry index");
}

#[tokio::test]
async fn every_operation_keeps_indexes_consistent() {
    let s = temp_store().await;
    let (a, b, c) = (key(), key(), key());
    s.create(&a, &record(Some("alice"), 100)).await.unwrap();
    s.create(&b, &record(Some("alice"), 200)).await.unwrap();
    s.create(&c, &record(None, 300)).await.unwrap();
    assert_indexes_consistent(&s);

    // save moves the session to another user and another deadline
    let mut r = record(Some("bob"), 150);
    r.version = 1;
    assert_eq!(s.save(&a, &r, t(1)).await.unwrap(), 2);
    assert_indexes_consistent(&s);
    assert_eq!(s.list_user("alice", t(1)).await.unwrap().len(), 1);
    assert_eq!(s.list_user("bob", t(1)).await.unwrap()[0].key, a);

    assert!(s.touch(&a, t(400), t(5), t(2)).await.unwrap());
    assert_indexes_consistent(&s);
    let Some(Lookup::Session(stored)) = s.load(&a, t(3)).await.unwrap() else {
        panic!("session expected")
    };
    assert_eq!(stored.version, 2, "touch keeps the version");
    assert_eq!(stored.idle_deadline, t(400));

    let to = key();
    let rot = Rotation {
        from: b,
        to,
        record: record(Some("alice"), 500),
        grace: Some(Grace {
            sealed_token: vec![7; 48],
            until: t(50),
        }),
    };
    assert_eq!(s.rotate(&rot, t(3)).await.unwrap(), 2);
    assert_indexes_consistent(&s);
    assert!(matches!(
        s.load(&b, t(4)).await.unwrap(),
        Some(Lookup::Forwarded(f)) if f.successor == to
    ));

    assert!(s.delete(&c).await.unwrap());
    assert!(!s.delete(&c).await.unwrap());
    assert_indexes_consistent(&s);

    assert_eq!(s.delete_user("alice", None, t(5)).await.unwrap(), 1);
    assert_indexes_consistent(&s);
    assert_eq!(s.cleanup_expired(t(60), 10).await.unwrap(), 1); // the forwarder
    assert_indexes_consistent(&s);
    s.delete_all().await.unwrap();
    assert_indexes_consistent(&s);
    assert!(s.load(&a, t(6)).await.unwrap().is_none());
}

#[tokio::test]
async fn failed_operations_change_nothing() {
    let s = temp_store().await;
    let (a, b) = (key(), key());
    s.create(&a, &record(Some("u"), 100)).await.unwrap();
    s.create(&b, &record(Some("u"), 100)).await.unwrap();
    let before = s.dump_raw().await.unwrap();

    assert!(matches!(
        s.create(&a, &record(None, 5)).await,
        Err(Error::AlreadyExists)
    ));
    let mut stale = record(None, 5);
    stale.version = 9;
    assert!(matches!(
        s.save(&a, &stale, t(1)).await,
        Err(Error::Conflict)
    ));
    assert!(matches!(
        s.save(&a, &record(None, 5), t(100)).await,
        Err(Error::Conflict)
    ));
    let rot = Rotation {
        from: a,
        to: b,
        record: record(None, 5),
        grace: None,
    };
    assert!(matches!(
        s.rotate(&rot, t(1)).await,
        Err(Error::AlreadyExists)
    ));
    assert!(!s.touch(&a, t(500), t(5), t(100)).await.unwrap());
    assert!(!s.touch(&key(), t(500), t(5), t(1)).await.unwrap());
    assert_eq!(s.dump_raw().await.unwrap(), before);
}

#[tokio::test]
async fn corrupt_records_are_codec_errors_never_panics() {
    let s = temp_store().await;
    let k = key();
    s.create(&k, &record(Some("mallory"), 100)).await.unwrap();
    let records = tree(&s, "records");
    for garbage in [
        &b""[..],
        b"\x01",
        b"\x09\x00",
        b"\x01\x00\xff\xff",
        b"\x01\x01",
    ] {
        records.insert(k.as_bytes(), garbage).unwrap();
        assert!(matches!(s.load(&k, t(1)).await, Err(Error::Codec { .. })));
        assert!(matches!(
            s.save(&k, &record(None, 5), t(1)).await,
            Err(Error::Codec { .. })
        ));
        assert!(matches!(
            s.touch(&k, t(5), t(5), t(1)).await,
            Err(Error::Codec { .. })
        ));
        // The listing reports the damaged entry instead of failing.
        let listed = s.list_user("mallory", t(1)).await.unwrap();
        assert_eq!(listed.len(), 1);
        assert_eq!(listed[0].key, k);
        assert_eq!(
            listed[0].damage,
            Some(session_store_core::Damage::Undecodable)
        );
        assert!(matches!(
            s.create(&k, &record(None, 5)).await,
            Err(Error::AlreadyExists)
        ));
        // Cleanup cannot judge it and leaves it alone.
        assert_eq!(s.cleanup_expired(t(10_000), 10).await.unwrap(), 0);
        assert!(records.get(k.as_bytes()).unwrap().is_some());
    }
    // Delete still removes it; the stale index entries are skipped and
    // cleaned up by the index readers.
    assert!(s.delete(&k).await.unwrap());
    assert!(s.load(&k, t(1)).await.unwrap().is_none());
    assert!(s.list_user("mallory", t(1)).await.unwrap().is_empty());
    assert_eq!(s.cleanup_expired(t(10_000), 10).await.unwrap(), 0);
    assert_eq!(s.delete_user("mallory", None, t(1)).await.unwrap(), 0);
    assert_indexes_consistent(&s);
}

#[tokio::test]
async fn cleanup_walks_the_expiry_index_in_bounded_batches() {
    let s = temp_store().await;
    let mut expired = Vec::new();
    for i in 0..10 {
        let k = key();
        s.create(&k, &record(Some("u"), 10 + i)).await.unwrap();
        expired.push(k);
    }
    let live: Vec<StorageKey> = (0..5).map(|_| key()).collect();
    for k in &live {
        s.create(k, &record(Some("u"), 1_000)).await.unwrap();
    }
    let now = t(100);
    let mut counts = Vec::new();
    loop {
        let n = s.cleanup_expired(now, 3).await.unwrap();
        counts.push(n);
        if n < 3 {
            break;
        }
    }
    assert_eq!(counts, [3, 3, 3, 1]);
    for k in &live {
        assert!(s.load(k, now).await.unwrap().is_some());
    }
    assert_eq!(tree(&s, "records").len(), 5);
    assert_eq!(s.list_user("u", now).await.unwrap().len(), 5);
    assert_indexes_consistent(&s);
    // Exactly at the deadline an entry is expired (not live at now).
    assert_eq!(s.cleanup_expired(t(1_000), 100).await.unwrap(), 5);
    assert_eq!(s.cleanup_expired(t(1_000), 0).await.unwrap(), 0);
}

#[tokio::test]
async fn namespaces_share_a_database_without_touching_each_other() {
    let a = SledConfig::temporary()
        .with_tree_prefix("tenant_a")
        .build()
        .await
        .unwrap();
    let db = a.db().clone();
    let b = db.store("tenant_b").unwrap();
    let k = key();
    a.create(&k, &record(Some("u"), 100)).await.unwrap();
    b.create(&k, &record(Some("u"), 200)).await.unwrap();
    a.delete_all().await.unwrap();
    assert!(a.load(&k, t(1)).await.unwrap().is_none());
    let Some(Lookup::Session(r)) = b.load(&k, t(1)).await.unwrap() else {
        panic!("tenant_b lost its session")
    };
    assert_eq!(r.idle_deadline, t(200));
    assert_eq!(b.list_user("u", t(1)).await.unwrap().len(), 1);
    for bad in ["", "a.b", "../x", "__sled__default", &"x".repeat(49)] {
        assert!(matches!(db.store(bad), Err(Error::Config(_))), "{bad:?}");
    }
}

#[tokio::test]
async fn concurrent_rotations_and_saves_have_one_winner() {
    let s = temp_store().await;
    for _ in 0..20 {
        let from = key();
        s.create(&from, &record(Some("u"), 1_000)).await.unwrap();
        let mut tasks = Vec::new();
        for i in 0..8 {
            let s = s.clone();
            tasks.push(tokio::spawn(async move {
                if i % 2 == 0 {
                    let rot = Rotation {
                        from,
                        to: key(),
                        record: record(Some("u"), 1_000),
                        grace: None,
                    };
                    s.rotate(&rot, t(1)).await
                } else {
                    s.save(&from, &record(Some("u"), 1_000), t(1)).await
                }
            }));
        }
        let mut wins = 0;
        for task in tasks {
            match task.await.unwrap() {
                Ok(v) => {
                    assert_eq!(v, 2);
                    wins += 1;
                }
                Err(Error::Conflict) => {}
                Err(e) => panic!("unexpected {e}"),
            }
        }
        assert_eq!(wins, 1);
    }
    assert_indexes_consistent(&s);
}

#[tokio::test]
async fn data_survives_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db");
    let k = key();
    let r = record(Some("u"), 100);
    {
        let s = SledConfig::new(&path).build().await.unwrap();
        s.create(&k, &r).await.unwrap();
    }
    // sled releases its directory lock when its last background reference
    // is gone, which can be a moment after the store is dropped: reopening
    // retries the retryable "could not acquire lock" error for a bounded time.
    let config =
        SledConfig::new(&path).with_durability(Durability::Periodic(Duration::from_millis(50)));
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let s = loop {
        match config.clone().build().await {
            Ok(s) => break s,
            Err(e) if e.is_retryable() && std::time::Instant::now() < deadline => {
                tokio::task::yield_now().await;
                std::thread::sleep(Duration::from_millis(10));
            }
            Err(e) => panic!("reopen failed: {e}"),
        }
    };
    assert_eq!(
        s.load(&k, t(1)).await.unwrap(),
        Some(Lookup::Session(r.clone()))
    );
    assert_eq!(s.list_user("u", t(1)).await.unwrap().len(), 1);
    s.flush().await.unwrap();
}

/// Every file under `dir` with its bytes, for "nothing was modified".
fn snapshot(dir: &Path) -> Vec<(std::path::PathBuf, Vec<u8>)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(p) = stack.pop() {
        if p.is_dir() {
            for e in std::fs::read_dir(&p).unwrap() {
                stack.push(e.unwrap().path());
            }
        } else {
            out.push((p.clone(), std::fs::read(&p).unwrap()));
        }
    }
    out.sort();
    out
}

#[tokio::test]
async fn opening_a_regular_file_is_a_config_error_and_leaves_it_alone() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("sessions");
    std::fs::write(&file, b"not a database").unwrap();
    let before = snapshot(dir.path());
    let err = SledConfig::new(&file).build().await.unwrap_err();
    assert!(
        matches!(err, Error::Config(ref m) if m.contains("not a directory")),
        "{err}"
    );
    assert_eq!(snapshot(dir.path()), before);
}

#[tokio::test]
async fn opening_a_foreign_directory_is_a_config_error_and_leaves_it_alone() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("notes.txt"), b"hello").unwrap();
    std::fs::create_dir(dir.path().join("sub")).unwrap();
    std::fs::write(dir.path().join("sub").join("db"), b"x").unwrap();
    let before = snapshot(dir.path());
    let err = SledConfig::new(dir.path()).build().await.unwrap_err();
    assert!(
        matches!(err, Error::Config(ref m) if m.contains("not a sled database")),
        "{err}"
    );
    assert_eq!(snapshot(dir.path()), before);
    // An empty directory is fine: a new database.
    let empty = tempfile::tempdir().unwrap();
    SledConfig::new(empty.path()).build().await.unwrap();
}

#[tokio::test]
async fn a_newer_schema_is_refused_and_left_alone() {
    let dir = tempfile::tempdir().unwrap();
    let k = key();
    {
        let s = SledConfig::new(dir.path()).build().await.unwrap();
        s.create(&k, &record(Some("u"), 100)).await.unwrap();
        tree(&s, "meta")
            .insert("schema_version", &(SCHEMA_VERSION + 1).to_be_bytes())
            .unwrap();
        s.flush().await.unwrap();
    }
    // sled itself rewrites its files on every open (it preallocates the log
    // segment and writes a snapshot), so "left alone" is checked at the level
    // of trees, keys and values below, not bytes.
    let err = SledConfig::new(dir.path()).build().await.unwrap_err();
    assert!(
        matches!(err, Error::SchemaTooNew { found, supported }
            if found == i64::from(SCHEMA_VERSION + 1) && supported == i64::from(SCHEMA_VERSION)),
        "{err}"
    );
    {
        // Another namespace in the same database still works, and opening
        // the newer one from it creates nothing.
        let other = SledConfig::new(dir.path())
            .with_tree_prefix("other")
            .build()
            .await
            .unwrap();
        let db = other.db();
        let before_trees = db.sled().tree_names();
        let err = db.store("session_store").unwrap_err();
        assert!(matches!(err, Error::SchemaTooNew { .. }), "{err}");
        assert_eq!(db.sled().tree_names(), before_trees, "no tree created");
    }
    // The data and the version are untouched.
    let db = sled::open(dir.path()).unwrap();
    let meta = db.open_tree("session_store.meta").unwrap();
    assert_eq!(
        meta.get("schema_version").unwrap().unwrap().as_ref(),
        (SCHEMA_VERSION + 1).to_be_bytes()
    );
    let records = db.open_tree("session_store.records").unwrap();
    assert!(records.get(k.as_bytes()).unwrap().is_some());
    assert_eq!(records.len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cleanup_task_removes_expired_entries_and_stops_when_dropped() {
    let s = temp_store().await;
    let clock = Arc::new(ManualClock::new(t(0)));
    for i in 0..25 {
        s.create(&key(), &record(None, 10 + i)).await.unwrap();
    }
    let live = key();
    s.create(&live, &record(None, 10_000)).await.unwrap();
    clock.set(t(100));

    let handle = s
        .spawn_cleanup(Duration::from_millis(5), 4, clock.clone())
        .unwrap();
    let mut rx = handle.subscribe();
    // Wait (bounded) for the rounds to report all 25 removed.
    tokio::time::timeout(Duration::from_secs(30), async {
        while rx.borrow_and_update().removed < 25 {
            rx.changed().await.unwrap();
        }
    })
    .await
    .expect("cleanup task made no progress");
    assert_eq!(handle.stats().errors, 0);
    assert!(s.load(&live, clock.now()).await.unwrap().is_some());
    assert_eq!(tree(&s, "records").len(), 1);

    drop(handle);
    // The task ends: its sender is dropped, so `changed` reports an error.
    tokio::time::timeout(Duration::from_secs(30), async {
        while rx.changed().await.is_ok() {}
    })
    .await
    .expect("cleanup task did not stop after its handle was dropped");

    // stop() waits for the end; the store is still usable afterwards.
    let handle = s
        .spawn_cleanup(Duration::from_millis(5), 4, clock.clone())
        .unwrap();
    let mut rx = handle.subscribe();
    handle.stop().await;
    assert!(rx.changed().await.is_err());
    assert!(s.load(&live, clock.now()).await.unwrap().is_some());

    assert!(matches!(
        s.spawn_cleanup(Duration::ZERO, 4, clock.clone()),
        Err(Error::Config(_))
    ));
}

#[test]
fn spawn_cleanup_outside_a_runtime_is_an_error() {
    let s = ready(SledConfig::temporary().build()).unwrap();
    let clock = Arc::new(ManualClock::new(t(0)));
    assert!(matches!(
        s.spawn_cleanup(Duration::from_secs(1), 10, clock),
        Err(Error::Config(_))
    ));
}

#[tokio::test]
async fn a_database_locked_by_another_handle_is_a_backend_error() {
    let dir = tempfile::tempdir().unwrap();
    let _first = SledConfig::new(dir.path()).build().await.unwrap();
    let err = SledConfig::new(dir.path()).build().await.unwrap_err();
    assert!(
        matches!(err, Error::Backend { backend: "sled", operation: "open", endpoint: Some(ref e), .. }
            if *e == dir.path().display().to_string()),
        "{err:?}"
    );
    let shown = err.to_string();
    assert!(
        shown.starts_with(&format!("sled open ({})", dir.path().display())),
        "{shown}"
    );
}

/// A disk failure during an operation (here: `blobs`, which every durable
/// write syncs, replaced by a regular file) names the backend, the operation
/// and the database directory, and stays retryable.
#[tokio::test]
async fn an_operation_error_names_backend_operation_and_directory() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db");
    let s = SledConfig::new(&path).build().await.unwrap();
    let k = key();
    s.create(&k, &record(Some("u"), 100)).await.unwrap();
    std::fs::remove_dir_all(path.join("blobs")).unwrap();
    std::fs::write(path.join("blobs"), b"not a directory").unwrap();

    let endpoint = path.display().to_string();
    let mut r = record(Some("u"), 100);
    r.version = 1;
    let err = s.save(&k, &r, t(1)).await.unwrap_err();
    assert!(
        matches!(&err, Error::Backend { backend: "sled", operation: "save", endpoint: Some(e), retryable: true, .. }
            if *e == endpoint),
        "{err:?}"
    );
    assert!(
        err.to_string()
            .starts_with(&format!("sled save ({endpoint}) failed (temporary)")),
        "{err}"
    );
    assert!(
        std::error::Error::source(&err).is_some(),
        "the source is kept"
    );
    let err = s.delete(&k).await.unwrap_err();
    assert!(
        matches!(
            &err,
            Error::Backend {
                operation: "delete",
                ..
            }
        ),
        "{err:?}"
    );
    let err = s.flush().await.unwrap_err();
    assert!(
        matches!(
            &err,
            Error::Backend {
                backend: "sled",
                operation: "flush",
                ..
            }
        ),
        "{err:?}"
    );

    std::fs::remove_file(path.join("blobs")).unwrap();
    std::fs::create_dir(path.join("blobs")).unwrap();
    s.flush().await.unwrap();
}

/// A record at version `u64::MAX` cannot be saved or rotated: the caller's
/// argument is refused before anything is written.
#[tokio::test]
async fn version_overflow_is_invalid_input() {
    let s = temp_store().await;
    let k = key();
    s.create(&k, &record(Some("u"), 100)).await.unwrap();
    let before = s.dump_raw().await.unwrap();
    let mut r = record(Some("u"), 100);
    r.version = u64::MAX;
    assert!(matches!(
        s.save(&k, &r, t(1)).await,
        Err(Error::InvalidInput("session version overflow"))
    ));
    let rot = Rotation {
        from: k,
        to: key(),
        record: r,
        grace: None,
    };
    assert!(matches!(
        s.rotate(&rot, t(1)).await,
        Err(Error::InvalidInput("session version overflow"))
    ));
    assert_eq!(s.dump_raw().await.unwrap(), before);
}

/// Without a tokio runtime every call runs inline, so each future is ready on
/// its first poll.
#[test]
fn works_without_a_tokio_runtime() {
    let s = ready(SledConfig::temporary().build()).unwrap();
    let k = key();
    let r = record(Some("u"), 100);
    ready(s.create(&k, &r)).unwrap();
    assert_eq!(ready(s.load(&k, t(1))).unwrap(), Some(Lookup::Session(r)));
    assert_eq!(ready(s.list_user("u", t(1))).unwrap().len(), 1);
    assert!(ready(s.delete(&k)).unwrap());
    ready(s.flush()).unwrap();
}

#[tokio::test]
async fn an_existing_database_is_never_opened_as_temporary() {
    let dir = tempfile::tempdir().unwrap();
    let k = key();
    {
        let s = SledConfig::new(dir.path()).build().await.unwrap();
        s.create(&k, &record(None, 100)).await.unwrap();
    }
    let err = SledConfig::new(dir.path())
        .with_temporary(true)
        .build()
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Config(_)), "{err}");
    let s = SledConfig::new(dir.path()).build().await.unwrap();
    assert!(s.load(&k, t(1)).await.unwrap().is_some());
}

/// Random operations from several tasks at once (bounded), then the indexes
/// must still describe the records exactly: the transactions keep the three
/// trees consistent under concurrency.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn indexes_stay_consistent_under_concurrent_random_operations() {
    use rand::rngs::StdRng;
    use rand::{Rng, SeedableRng};
    use std::sync::atomic::{AtomicU64, Ordering};
    let s = temp_store().await;
    let keys: Arc<Vec<StorageKey>> = Arc::new((0..24).map(|_| key()).collect());
    let succeeded = Arc::new(AtomicU64::new(0));
    let tasks: Vec<_> = (0..6)
        .map(|_| {
            let (s, keys, succeeded) = (s.clone(), keys.clone(), succeeded.clone());
            tokio::spawn(async move {
                let mut rng = StdRng::from_rng(&mut rand::rng());
                for _ in 0..300 {
                    let k = keys[rng.random_range(0..keys.len())];
                    let k2 = keys[rng.random_range(0..keys.len())];
                    let now = t(rng.random_range(0..400));
                    let user = ["a", "b", "c"][rng.random_range(0..3)];
                    let mut r = record(Some(user), rng.random_range(1..500));
                    let version = match s.load(&k, now).await.unwrap() {
                        Some(Lookup::Session(stored)) => stored.version,
                        _ => 1,
                    };
                    r.version = version;
                    let outcome = match rng.random_range(0..8) {
                        0 => s.create(&k, &r).await.map(|_| ()),
                        1 => s.save(&k, &r, now).await.map(|_| ()),
                        2 => s.touch(&k, t(600), now, now).await.map(|_| ()),
                        3 => {
                            let grace = rng.random_bool(0.5).then(|| Grace {
                                sealed_token: vec![1; 8],
                                until: t(450),
                            });
                            s.rotate(
                                &Rotation {
                                    from: k,
                                    to: k2,
                                    record: r,
                                    grace,
                                },
                                now,
                            )
                            .await
                            .map(|_| ())
                        }
                        4 => s.delete(&k).await.map(|_| ()),
                        5 => s.delete_user(user, Some(&k), now).await.map(|_| ()),
                        6 => s.cleanup_expired(now, 3).await.map(|_| ()),
                        _ => s.list_user(user, now).await.map(|_| ()),
                    };
                    match outcome {
                        Ok(()) => {
                            succeeded.fetch_add(1, Ordering::Relaxed);
                        }
                        Err(Error::Conflict | Error::AlreadyExists) => {}
                        Err(e) => panic!("unexpected error {e}"),
                    }
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
    let ok = succeeded.load(Ordering::Relaxed);
    assert!(
        ok > 300,
        "only {ok} operations succeeded: too little was exercised"
    );
    assert_indexes_consistent(&s);
}

/// sled 0.34.7 can deadlock when its I/O thread pool fills with queued log
/// writes (see `Durability::Periodic`); periodic mode must apply
/// back-pressure. Sustained 4 KiB rewrites of a few sessions (which free and
/// truncate log segments) and large `delete_all`s, under a watchdog: a hang
/// fails the test instead of stalling the run.
///
/// Periodic-mode writes run their transaction on the calling task, so a hung
/// transaction blocks the thread that polls the test body: the watchdog is a
/// separate thread (a timer inside the runtime could not fire), and the body
/// runs on its own thread, which is left behind if it hangs.
#[test]
fn periodic_mode_sustained_rewrites_and_clears_do_not_hang() {
    let (done_tx, done_rx) = std::sync::mpsc::channel();
    let worker = std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_time()
            .build()
            .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let s = rt
            .block_on(
                SledConfig::new(dir.path().join("db"))
                    .with_durability(Durability::Periodic(Duration::from_millis(500)))
                    .build(),
            )
            .unwrap();
        rt.block_on(async {
            for round in 0..4u8 {
                let keys: Vec<StorageKey> = (0..8).map(|_| key()).collect();
                let mut versions = Vec::new();
                for k in &keys {
                    let mut r = record(Some("u"), 100);
                    r.data = vec![round; 4096];
                    s.create(k, &r).await.unwrap();
                    versions.push(r);
                }
                for i in 0..6_000 {
                    let r = &mut versions[i % keys.len()];
                    r.version = s.save(&keys[i % keys.len()], r, t(1)).await.unwrap();
                }
                for (k, r) in keys.iter().zip(&versions) {
                    let Some(Lookup::Session(got)) = s.load(k, t(1)).await.unwrap() else {
                        panic!("session lost");
                    };
                    assert_eq!((got.version, &got.data), (r.version, &r.data));
                }
                let created: Vec<StorageKey> = (0..3_000).map(|_| key()).collect();
                for k in &created {
                    let mut r = record(None, 100);
                    r.data = vec![1; 4096];
                    s.create(k, &r).await.unwrap();
                }
                s.delete_all().await.unwrap();
                for k in created.iter().chain(&keys) {
                    assert_eq!(s.load(k, t(1)).await.unwrap(), None);
                }
            }
        });
        // Only reached when nothing hung (a failed assertion panics instead,
        // which disconnects the channel).
        let _ = done_tx.send(());
    });
    match done_rx.recv_timeout(Duration::from_secs(240)) {
        Ok(()) => worker.join().unwrap(),
        Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => {
            // The body panicked: report its panic.
            std::panic::resume_unwind(worker.join().unwrap_err())
        }
        Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {
            panic!("periodic-mode writes hung for 240 s (sled deadlock)")
        }
    }
}

/// A load completes in its first poll, so a task looping over loads must
/// still give its runtime thread back now and then (tokio's cooperative
/// budget), as it would over a socket: on a one-thread runtime, a task that
/// yields once runs while a looping task is still far from done. Without
/// the budget the whole loop ran in one poll. (Inline writes already wait
/// on tokio primitives that spend the budget.)
#[tokio::test(flavor = "current_thread")]
async fn a_task_looping_over_loads_lets_other_tasks_run() {
    const LOOPS: usize = 2_000;
    let store = SledConfig::temporary()
        .with_durability(Durability::Periodic(Duration::from_millis(500)))
        .build()
        .await
        .unwrap();
    let (k, r) = (key(), fixtures::record(fixtures::now(), b"data"));
    store.create(&k, &r).await.unwrap();
    let seen =
        fixtures::calls_done_when_a_yielding_task_runs(Arc::new(store), k, r, LOOPS, false).await;
    assert!(
        seen < LOOPS,
        "the other task ran only after all {LOOPS} loads"
    );
}
