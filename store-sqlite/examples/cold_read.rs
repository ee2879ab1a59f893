//! What a primary-key read costs on the calling thread when the page cache
//! is cold: the figure behind the choice in `src/worker.rs` (module docs)
//! to run uncontended statements on the calling thread.
//!
//! `cargo run --release -p session-store-sqlite --example cold_read [SESSIONS]`
//!
//! Builds a database of `SESSIONS` sessions (default 300 000, ~1 KiB data
//! each) in the store's schema, then reads random keys with rusqlite on
//! this thread, in three states:
//! - warm: file in the OS page cache, connection cache warm (measured before
//!   any eviction);
//! - leaf-cold: before each read the file is evicted from the OS page cache
//!   (`dd iflag=nocache count=0`, i.e. `posix_fadvise(DONTNEED)` on this
//!   file only) while the connection keeps its own page cache (the inner
//!   B-tree pages, as a long-lived connection has them);
//! - all-cold: evicted and read through a fresh connection (every page of
//!   the path comes from the disk).
//!
//! Prints p50, p99 and max of each.

use std::path::Path;
use std::process::Command;
use std::time::Instant;

use rusqlite::{params, Connection};
use session_store_core::{SessionToken, StorageKey};
use session_store_sqlite::SqliteConfig;

fn evict(path: &Path) {
    let status = Command::new("dd")
        .arg(format!("if={}", path.display()))
        .args(["iflag=nocache", "count=0", "status=none"])
        .status()
        .expect("run dd");
    assert!(status.success(), "dd could not evict the file");
}

fn summary(name: &str, mut v: Vec<u64>) {
    v.sort_unstable();
    let at = |q: f64| v[((v.len() - 1) as f64 * q) as usize] as f64 / 1000.0;
    println!(
        "{name:>10}: n={} p50 {:.1} µs, p99 {:.1} µs, max {:.1} µs",
        v.len(),
        at(0.5),
        at(0.99),
        at(1.0)
    );
}

fn read(conn: &Connection, key: &StorageKey) -> u64 {
    let t = Instant::now();
    let data: Vec<u8> = conn
        .prepare_cached("SELECT data FROM sessions WHERE key = ?1 AND expires_at > ?2")
        .expect("prepare")
        .query_row(params![&key.as_bytes()[..], 0i64], |r| r.get(0))
        .expect("row");
    std::hint::black_box(data);
    t.elapsed().as_nanos() as u64
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> session_store_core::Result<()> {
    let n: usize = std::env::args()
        .nth(1)
        .map_or(300_000, |s| s.parse().expect("SESSIONS is a number"));
    let dir = tempfile::tempdir_in(".").map_err(session_store_core::Error::backend_permanent)?;
    let path = dir.path().join("cold.db");
    let store = SqliteConfig::new(&path).build().await?;
    store.migrate().await?;
    drop(store);
    let mut conn = Connection::open(&path).expect("open");
    let keys: Vec<StorageKey> = (0..n)
        .map(|_| SessionToken::generate().storage_key())
        .collect();
    let data = vec![b'd'; 1024];
    let t = Instant::now();
    let tx = conn.transaction().expect("tx");
    for key in &keys {
        tx.prepare_cached(
            "INSERT INTO sessions (key, kind, version, created_at, last_seen_at, \
             idle_deadline, absolute_deadline, meta, data, expires_at) \
             VALUES (?1, 0, 1, 1, 1, ?2, ?2, x'', ?3, ?2)",
        )
        .expect("prepare")
        .execute(params![&key.as_bytes()[..], i64::MAX / 2, &data])
        .expect("insert");
    }
    tx.commit().expect("commit");
    conn.execute_batch("PRAGMA wal_checkpoint(TRUNCATE)")
        .expect("checkpoint");
    let size = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
    println!(
        "{n} sessions, file {} MiB, built in {:?}; load {}",
        size >> 20,
        t.elapsed(),
        std::fs::read_to_string("/proc/loadavg")
            .unwrap_or_default()
            .trim()
    );
    conn.pragma_update(None, "cache_size", -32 * 1024)
        .expect("cache");
    let mut rng = 0x9E37_79B9_7F4A_7C15u64;
    let mut pick = || {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        &keys[(rng % n as u64) as usize]
    };
    let rounds = 400;
    // Warm the connection's cache with the inner pages and a hot set of
    // 1000 sessions (the "warm" reads), which its 32 MiB cache keeps.
    for _ in 0..2000 {
        read(&conn, pick());
    }
    for key in &keys[..1000] {
        read(&conn, key);
    }
    let mut hot = keys[..1000].iter().cycle();
    // Warm: before any eviction. Interleaved with evictions, reads of the
    // hot set took about as long as cold ones (1.2 ms p50 in a first run;
    // why was not investigated), so they are measured apart.
    let warm: Vec<u64> = (0..rounds)
        .map(|_| read(&conn, hot.next().expect("cycle")))
        .collect();
    let (mut leaf, mut all) = (vec![], vec![]);
    for _ in 0..rounds {
        evict(&path);
        leaf.push(read(&conn, pick()));
        evict(&path);
        let fresh = Connection::open(&path).expect("open");
        all.push(read(&fresh, pick()));
    }
    summary("warm", warm);
    summary("leaf-cold", leaf);
    summary("all-cold", all);
    Ok(())
}
