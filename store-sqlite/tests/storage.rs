//! Disk use stays proportional to the live sessions (issue 15, "Bounded
//! storage"): the write-ahead log and the database file are measured after a
//! steady state of saves, after a burst of creates and after the mass expiry
//! and cleanup of that burst, and each is held to a stated bound.
//!
//! Time is explicit (every operation takes `now`), so nothing here depends on
//! the wall clock or on how fast the machine is, except the last step, which
//! waits (bounded) for the writer's idle checkpoint to truncate the log.
//!
//! Run with `--nocapture` to see the figures. Measured on the shared 2-core
//! development machine (debug build), database file / WAL file:
//!
//! | phase | before (commit 0e84b44) | after |
//! | --- | --- | --- |
//! | steady, 32 sessions, 20 000 saves | 0.04 / 91.5 MiB | 0.04 / 8.0 MiB |
//! | burst, +50 000 sessions | 25.0 / 145.1 MiB | 25.0 / 8.0 MiB |
//! | after cleanup of the 50 000 | 25.0 MiB (100 % free pages) / 145.1 MiB | 2.4 / 8.0 MiB (76 pages in use or free) |
//! | after cleanup, writer idle | 25.0 / 145.1 MiB | 0.30 / 0 MiB |

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use session_store_conformance::fixtures::{self, fresh_key};
use session_store_core::{SessionBackend, SessionRecord, StorageKey, Timestamp};
use session_store_sqlite::{SqliteConfig, SqliteStore};

const T0: Timestamp = Timestamp::from_millis(1_700_000_000_000);
const MIB: u64 = 1024 * 1024;

/// Sessions that stay alive through the whole test (the 32).
const LIVE: usize = 32;
/// Saves spread over the live sessions in the steady phase.
const STEADY_SAVES: usize = 20_000;
/// Sessions created in the burst; all of them expire a minute after `T0`.
const BURST: usize = 50_000;
/// Concurrent tasks writing (and, in the steady phase, reading).
const TASKS: usize = 8;
/// Rows per `cleanup_expired` call, as a periodic cleanup task would use.
const CLEANUP_BATCH: usize = 1000;

fn record(idle: Duration) -> SessionRecord {
    SessionRecord {
        idle_deadline: fixtures::at(T0, idle),
        ..fixtures::record(T0, &[0x5A; 256])
    }
}

#[derive(Debug, Clone, Copy)]
struct Sizes {
    /// Bytes of the database file on disk.
    db: u64,
    /// Bytes of the write-ahead log on disk (0 when absent).
    wal: u64,
}

fn file_len(path: &Path) -> u64 {
    std::fs::metadata(path).map_or(0, |m| m.len())
}

fn wal_path(path: &Path) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push("-wal");
    PathBuf::from(name)
}

fn sizes(path: &Path) -> Sizes {
    Sizes {
        db: file_len(path),
        wal: file_len(&wal_path(path)),
    }
}

fn mib(bytes: u64) -> String {
    format!("{:.2} MiB", bytes as f64 / MIB as f64)
}

/// Free pages and total pages, read through a connection of our own (closed
/// at once, so that it pins nothing).
fn free_pages(path: &Path) -> (i64, i64) {
    free_pages_and_mode(path).0
}

/// Free pages, total pages and the `auto_vacuum` mode.
fn free_pages_and_mode(path: &Path) -> ((i64, i64), i64) {
    let conn = rusqlite::Connection::open_with_flags(
        path,
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .unwrap();
    let free: i64 = conn
        .query_row("PRAGMA freelist_count", [], |r| r.get(0))
        .unwrap();
    let total: i64 = conn
        .query_row("PRAGMA page_count", [], |r| r.get(0))
        .unwrap();
    let mode: i64 = conn
        .query_row("PRAGMA auto_vacuum", [], |r| r.get(0))
        .unwrap();
    ((free, total), mode)
}

fn report(phase: &str, s: Sizes, path: &Path) {
    let ((free, total), mode) = free_pages_and_mode(path);
    println!(
        "storage {phase:>22}: db {:>10}  wal {:>10}  free pages {free}/{total} ({:.0}%), auto_vacuum={mode}",
        mib(s.db),
        mib(s.wal),
        if total > 0 {
            100.0 * free as f64 / total as f64
        } else {
            0.0
        }
    );
}

/// The bound on the log at any moment: the size limit, plus the pages one
/// checkpoint interval may add before the writer checkpoints (and some
/// slack for a restart that a reader delayed).
fn wal_bound(store: &SqliteStore) -> u64 {
    let c = store.config();
    c.wal_size_limit().max(c.wal_checkpoint_threshold()) * 2 + 2 * MIB
}

async fn steady(store: &SqliteStore) -> Vec<StorageKey> {
    let keys: Vec<StorageKey> = (0..LIVE).map(|_| fresh_key()).collect();
    for k in &keys {
        store
            .create(k, &record(Duration::from_secs(24 * 3600)))
            .await
            .unwrap();
    }
    let now = fixtures::at(T0, Duration::from_secs(1));
    let writers = keys.chunks(LIVE / TASKS).map(|owned| {
        let store = store.clone();
        let owned = owned.to_vec();
        tokio::spawn(async move {
            let mut versions = vec![0u64; owned.len()];
            for i in 0..STEADY_SAVES / TASKS {
                let j = i % owned.len();
                let mut r = record(Duration::from_secs(24 * 3600));
                r.version = versions[j];
                r.data[0] = i as u8;
                versions[j] = store.save(&owned[j], &r, now).await.unwrap();
            }
        })
    });
    let writers: Vec<_> = writers.collect();
    // Readers run throughout, as web traffic would: they must not starve
    // the checkpoints.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let readers: Vec<_> = (0..2)
        .map(|_| {
            let store = store.clone();
            let keys = keys.clone();
            let stop = stop.clone();
            tokio::spawn(async move {
                let mut n = 0usize;
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    assert!(store.load(&keys[n % LIVE], now).await.unwrap().is_some());
                    n += 1;
                }
            })
        })
        .collect();
    for w in writers {
        w.await.unwrap();
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for r in readers {
        r.await.unwrap();
    }
    keys
}

async fn burst(store: &SqliteStore) {
    let tasks: Vec<_> = (0..TASKS)
        .map(|_| {
            let store = store.clone();
            tokio::spawn(async move {
                for _ in 0..BURST / TASKS {
                    store
                        .create(&fresh_key(), &record(Duration::from_secs(60)))
                        .await
                        .unwrap();
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn disk_use_follows_the_live_sessions_through_steady_writes_a_burst_and_cleanup() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.db");
    let store = SqliteConfig::new(&path).build().await.unwrap();
    store.migrate().await.unwrap();
    let bound = wal_bound(&store);
    println!("storage bound: wal <= {} at every measurement", mib(bound));

    let started = Instant::now();
    let keys = steady(&store).await;
    let steady_elapsed = started.elapsed();
    let s = sizes(&path);
    report("steady (32 live)", s, &path);
    let steady_db = s.db;
    assert!(
        s.wal <= bound,
        "steady: WAL {} over {}",
        mib(s.wal),
        mib(bound)
    );
    assert!(
        s.db <= MIB,
        "steady: database {} for {LIVE} sessions",
        mib(s.db)
    );

    let started = Instant::now();
    burst(&store).await;
    let burst_elapsed = started.elapsed();
    let s = sizes(&path);
    report("burst (+50000)", s, &path);
    assert!(
        s.wal <= bound,
        "burst: WAL {} over {}",
        mib(s.wal),
        mib(bound)
    );
    // About 400 bytes of row and index entries per session.
    assert!(s.db <= 64 * MIB, "burst: database {}", mib(s.db));

    let cleanup_now = fixtures::at(T0, Duration::from_secs(120));
    let started = Instant::now();
    let mut removed = 0;
    loop {
        let n = store
            .cleanup_expired(cleanup_now, CLEANUP_BATCH)
            .await
            .unwrap();
        removed += n;
        if n < CLEANUP_BATCH as u64 {
            break;
        }
    }
    let cleanup_elapsed = started.elapsed();
    assert_eq!(removed, BURST as u64);
    let s = sizes(&path);
    report("after cleanup", s, &path);
    assert!(
        s.wal <= bound,
        "after cleanup: WAL {} over {}",
        mib(s.wal),
        mib(bound)
    );
    // The pages the cleanup freed go back to the file system: what the
    // database still holds (pages in use or free, checkpointed or not) is
    // within 2 MiB of the 32-session database (free pages are kept up to
    // 1 MiB or an eighth of the file), instead of the burst's size.
    let (free, total) = free_pages(&path);
    let page = 4096;
    assert!(
        (total as u64) * page <= steady_db + 2 * MIB,
        "after cleanup: {total} pages ({free} free) for {LIVE} sessions; steady state had {}",
        mib(steady_db)
    );

    // Once the writer is idle it checkpoints with TRUNCATE: the log goes
    // and the file shrinks to what the live sessions need.
    let deadline = Instant::now() + Duration::from_secs(20);
    let idle = loop {
        let s = sizes(&path);
        if (s.wal == 0 && s.db <= steady_db + 2 * MIB) || Instant::now() > deadline {
            break s;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    report("after cleanup, idle", idle, &path);
    assert_eq!(idle.wal, 0, "the idle writer never truncated the log");
    assert!(
        idle.db <= steady_db + 2 * MIB,
        "after cleanup, idle: database {} for {LIVE} sessions; steady state had {}",
        mib(idle.db),
        mib(steady_db)
    );
    println!(
        "storage timings: steady {STEADY_SAVES} saves {:?}, burst {BURST} creates {:?} ({:.0}/s), cleanup {:?}",
        steady_elapsed,
        burst_elapsed,
        BURST as f64 / burst_elapsed.as_secs_f64(),
        cleanup_elapsed
    );
    for k in &keys {
        assert!(store.load(k, cleanup_now).await.unwrap().is_some());
    }
}

fn auto_vacuum_mode(path: &Path) -> i64 {
    free_pages_and_mode(path).1
}

#[tokio::test]
async fn cleanup_in_chunks_removes_exactly_the_limit_and_never_live_entries() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteConfig::new(dir.path().join("s.db"))
        .with_cleanup_chunk(3)
        .build()
        .await
        .unwrap();
    store.migrate().await.unwrap();
    for i in 0..25u32 {
        let idle = Duration::from_secs(if i < 20 { 60 } else { 600 });
        store.create(&fresh_key(), &record(idle)).await.unwrap();
    }
    let at = fixtures::at(T0, Duration::from_secs(60));
    // 8 = two chunks of 3 and one of 2; the last call ends on a short chunk.
    assert_eq!(store.cleanup_expired(at, 8).await.unwrap(), 8);
    assert_eq!(store.cleanup_expired(at, 8).await.unwrap(), 8);
    assert_eq!(store.cleanup_expired(at, 8).await.unwrap(), 4);
    assert_eq!(store.cleanup_expired(at, 8).await.unwrap(), 0);
    assert_eq!(store.cleanup_expired(at, 0).await.unwrap(), 0);
    assert_eq!(store.dump_raw().await.unwrap().len(), 5 * 3);
}

#[tokio::test]
async fn migrate_converts_a_small_database_created_without_auto_vacuum() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.db");
    let old = SqliteConfig::new(&path)
        .with_auto_vacuum(false)
        .build()
        .await
        .unwrap();
    old.migrate().await.unwrap();
    let key = fresh_key();
    old.create(&key, &record(Duration::from_secs(600)))
        .await
        .unwrap();
    drop(old);
    assert_eq!(auto_vacuum_mode(&path), 0, "created without auto-vacuum");

    let store = SqliteConfig::new(&path).build().await.unwrap();
    store.migrate().await.unwrap();
    assert_eq!(auto_vacuum_mode(&path), 2, "migrate converted it");
    assert!(store.load(&key, T0).await.unwrap().is_some());
    // Idempotent.
    store.migrate().await.unwrap();
    assert_eq!(auto_vacuum_mode(&path), 2);
}

#[tokio::test]
async fn migrate_leaves_a_shared_file_alone_and_vacuum_converts_it() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.db");
    let old = SqliteConfig::new(&path)
        .with_auto_vacuum(false)
        .build()
        .await
        .unwrap();
    old.migrate().await.unwrap();
    let key = fresh_key();
    old.create(&key, &record(Duration::from_secs(600)))
        .await
        .unwrap();
    drop(old);
    {
        let app = rusqlite::Connection::open(&path).unwrap();
        app.execute_batch(
            "CREATE TABLE app_users (name TEXT); INSERT INTO app_users VALUES ('ada');",
        )
        .unwrap();
    }

    let store = SqliteConfig::new(&path).build().await.unwrap();
    store.migrate().await.unwrap();
    assert_eq!(
        auto_vacuum_mode(&path),
        0,
        "another application's table: migrate does not rewrite the file"
    );
    store.vacuum().await.unwrap();
    assert_eq!(auto_vacuum_mode(&path), 2, "vacuum() converted it");
    assert!(store.load(&key, T0).await.unwrap().is_some());
    let app = rusqlite::Connection::open(&path).unwrap();
    let name: String = app
        .query_row("SELECT name FROM app_users", [], |r| r.get(0))
        .unwrap();
    assert_eq!(name, "ada");
    assert_eq!(file_len(&wal_path(&path)), 0, "vacuum() truncates the log");
}

#[tokio::test]
async fn auto_vacuum_off_creates_files_without_it() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.db");
    let store = SqliteConfig::new(&path)
        .with_auto_vacuum(false)
        .build()
        .await
        .unwrap();
    store.migrate().await.unwrap();
    assert_eq!(auto_vacuum_mode(&path), 0);
    store.vacuum().await.unwrap();
    assert_eq!(auto_vacuum_mode(&path), 0, "vacuum() keeps the setting off");
}
