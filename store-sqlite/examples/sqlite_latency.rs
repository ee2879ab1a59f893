//! A rough, throwaway latency run (not a benchmark: see the `benches` crate):
//! `cargo run --release -p session-store-sqlite --example sqlite_latency`.
//!
//! Compares the store's `load` and `save` with the same primary-key statement
//! run directly on the calling thread through rusqlite, in alternating blocks
//! (p50 of each), so the cost of the hand-off to the SQLite threads shows.
//! `SESSION_STORE_SQLITE_SPIN_WAIT_US=0` shows it without spinning.

use std::time::Instant;

use rusqlite::{params, Connection};
use session_store_core::config::Vars;
use session_store_core::{SessionBackend, SessionRecord, SessionToken, Timestamp};
use session_store_sqlite::SqliteConfig;

const BLOCK: usize = 2_000;
const BLOCKS: usize = 10;

fn record() -> SessionRecord {
    SessionRecord {
        version: 1,
        user_id: None,
        created_at: Timestamp::from_millis(1_000),
        last_seen_at: Timestamp::from_millis(1_000),
        auth_time: None,
        idle_deadline: Timestamp::from_millis(10_000_000_000_000),
        absolute_deadline: Timestamp::from_millis(20_000_000_000_000),
        meta: Vec::new(),
        data: vec![b'd'; 200],
    }
}

fn p50(mut v: Vec<u64>) -> f64 {
    v.sort_unstable();
    v[v.len() / 2] as f64 / 1000.0
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> session_store_core::Result<()> {
    let dir = tempfile::tempdir().map_err(session_store_core::Error::backend_permanent)?;
    let path = dir.path().join("latency.db");
    let vars = Vars::from_env();
    let mut config = SqliteConfig::new(&path);
    if let Some(bound) = vars.micros("SESSION_STORE_SQLITE_SPIN_WAIT_US")? {
        config = config.with_spin_wait(bound);
    }
    println!("spin wait: {:?}", config.spin_wait());
    let store = config.build().await?;
    store.migrate().await?;
    let key = SessionToken::generate().storage_key();
    let mut r = record();
    store.create(&key, &r).await?;
    let now = Timestamp::from_millis(2_000);

    let raw = Connection::open(&path).expect("open raw connection");
    raw.pragma_update(None, "journal_mode", "WAL").expect("WAL");
    raw.pragma_update(None, "synchronous", "NORMAL")
        .expect("synchronous");
    let other = SessionToken::generate().storage_key();
    let other_key = &other.as_bytes()[..];
    raw.execute(
        "CREATE TABLE raw (key BLOB PRIMARY KEY, version INTEGER, data BLOB) WITHOUT ROWID",
        [],
    )
    .expect("create raw table");

    // The store's own compare-and-swap statement (schema.rs, `save_same_owner`),
    // on a second session of the store's table, run on this thread.
    let twin = SessionToken::generate().storage_key();
    store.create(&twin, &r).await?;
    let mut twin_version = 1i64;
    let (mut raw_sel, mut load, mut raw_up, mut save) = (vec![], vec![], vec![], vec![]);
    let mut raw_cas = vec![];
    for _ in 0..BLOCKS {
        for _ in 0..BLOCK {
            let t = Instant::now();
            let mut stmt = raw
                .prepare_cached("SELECT * FROM sessions WHERE key = ?1 AND expires_at > ?2")
                .expect("prepare");
            let mut rows = stmt
                .query(params![&key.as_bytes()[..], now.as_millis()])
                .expect("query");
            let row = rows.next().expect("row").expect("present");
            std::hint::black_box(row.get::<_, Vec<u8>>("data").expect("data"));
            raw_sel.push(t.elapsed().as_nanos() as u64);
        }
        for _ in 0..BLOCK {
            let t = Instant::now();
            std::hint::black_box(store.load(&key, now).await?);
            load.push(t.elapsed().as_nanos() as u64);
        }
        for i in 0..BLOCK {
            let t = Instant::now();
            raw.prepare_cached(
                "INSERT INTO raw (key, version, data) VALUES (?1, ?2, ?3) \
                 ON CONFLICT (key) DO UPDATE SET version = excluded.version, data = excluded.data",
            )
            .expect("prepare")
            .execute(params![other_key, i as i64, &r.data])
            .expect("upsert");
            raw_up.push(t.elapsed().as_nanos() as u64);
        }
        for _ in 0..BLOCK {
            let t = Instant::now();
            let changed = raw
                .prepare_cached(
                    "UPDATE sessions SET version = ?3, last_seen_at = ?6, auth_time = ?7, \
                     idle_deadline = ?8, absolute_deadline = ?9, meta = ?10, data = ?11, \
                     expires_at = ?12 \
                     WHERE key = ?1 AND kind = 0 AND version = ?2 AND expires_at > ?13 \
                     AND user_id IS ?4 AND created_at = ?5",
                )
                .expect("prepare")
                .execute(params![
                    &twin.as_bytes()[..],
                    twin_version,
                    twin_version + 1,
                    r.user_id.as_deref(),
                    r.created_at.as_millis(),
                    r.last_seen_at.as_millis(),
                    r.auth_time.map(Timestamp::as_millis),
                    r.idle_deadline.as_millis(),
                    r.absolute_deadline.as_millis(),
                    &r.meta,
                    &r.data,
                    r.expires_at().as_millis(),
                    now.as_millis(),
                ])
                .expect("update");
            assert_eq!(changed, 1);
            twin_version += 1;
            raw_cas.push(t.elapsed().as_nanos() as u64);
        }
        for _ in 0..BLOCK {
            let t = Instant::now();
            r.version = store.save(&key, &r, now).await?;
            save.push(t.elapsed().as_nanos() as u64);
        }
    }
    let (a, b, c, d) = (p50(raw_sel), p50(load), p50(raw_up), p50(save));
    println!("raw select {a:.1} µs, load {b:.1} µs ({:.2}x)", b / a);
    let e = p50(raw_cas);
    println!("raw upsert {c:.1} µs, save {d:.1} µs ({:.2}x)", d / c);
    println!(
        "the store's UPDATE on this thread {e:.1} µs, save {d:.1} µs ({:.2}x)",
        d / e
    );
    Ok(())
}
