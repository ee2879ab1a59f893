//! The SQLite request path in several runtime shapes, with statements run
//! on the calling thread (`inline`, the default) and handed to the SQLite
//! threads (`queued`, the design before; `SqliteConfig::with_inline(false)`),
//! next to rusqlite on the calling thread.
//!
//! `cargo run --release -p session-store-sqlite --example request_shapes [ROUNDS]`
//!
//! Shapes (each in its own tokio multi-thread runtime of 2 workers):
//! - `criterion`: one `block_on` per operation from the main thread, as
//!   `benches/benches/ops.rs` runs under criterion;
//! - `one-task`: one spawned client task looping;
//! - `busy`: the same with 2 CPU-bound tasks that yield every ~50 µs;
//! - `tasks-8`, `tasks-64`: that many client tasks each looping load → save
//!   on its own session.
//!
//! Operations through `SessionManager` (~1 KiB data): load, save, create,
//! rotate, and load → save. The variants alternate within each round, and
//! every round repeats every shape, so the figures of one round were taken
//! under the same load. The baseline is rusqlite on the calling thread: the
//! store's `load` SELECT and its `save` UPDATE on a session of the same table
//! (the target for load → save is 1.5 × their sum).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rusqlite::{params, Connection};
use session_store_core::{ClientMeta, RotateReason, SessionManager, SessionToken, Timestamp};
use session_store_sqlite::{SqliteConfig, SqliteStore};
use tokio::runtime::Runtime;

const OPS: usize = 600;
const DATA: usize = 1024;

fn runtime() -> Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime")
}

fn ns(t: Instant) -> u64 {
    t.elapsed().as_nanos() as u64
}

fn stats(v: &mut [u64]) -> (f64, f64) {
    v.sort_unstable();
    let at = |q: f64| v[((v.len() - 1) as f64 * q) as usize] as f64 / 1000.0;
    (at(0.5), at(0.99))
}

/// One operation through the manager; returns its latency in ns.
async fn op(m: &SessionManager, name: &str, token: &mut String, data: &[u8]) -> u64 {
    match name {
        "load" => {
            let t = Instant::now();
            let s = m.load(token).await.expect("load").expect("present");
            let d = ns(t);
            std::hint::black_box(s);
            d
        }
        "save" => {
            let mut s = m.load(token).await.expect("load").expect("present");
            let mut d = data.to_vec();
            d[0] = d[0].wrapping_add(1);
            s.set_data(d);
            let t = Instant::now();
            m.save(&mut s).await.expect("save");
            ns(t)
        }
        "create" => {
            let t = Instant::now();
            let s = m
                .create(data.to_vec(), ClientMeta::default())
                .await
                .expect("create");
            let d = ns(t);
            std::hint::black_box(s);
            d
        }
        "rotate" => {
            let mut s = m.load(token).await.expect("load").expect("present");
            let t = Instant::now();
            m.rotate(&mut s, RotateReason::PrivilegeChange)
                .await
                .expect("rotate");
            let d = ns(t);
            *token = s.token().expose_secret().to_owned();
            d
        }
        "load_save" => {
            let t = Instant::now();
            let mut s = m.load(token).await.expect("load").expect("present");
            let mut d = data.to_vec();
            d[0] = d[0].wrapping_add(1);
            s.set_data(d);
            m.save(&mut s).await.expect("save");
            ns(t)
        }
        other => unreachable!("{other}"),
    }
}

async fn new_token(m: &SessionManager, data: &[u8]) -> String {
    let s = m
        .create(data.to_vec(), ClientMeta::default())
        .await
        .expect("create");
    s.token().expose_secret().to_owned()
}

/// Latencies of `n` runs of `name` in `shape` (single-client shapes).
fn single(shape: &str, m: &Arc<SessionManager>, name: &'static str, n: usize) -> Vec<u64> {
    let rt = runtime();
    let data = vec![b'd'; DATA];
    let mut token = rt.block_on(new_token(m, &data));
    match shape {
        "criterion" => (0..n)
            .map(|_| rt.block_on(op(m, name, &mut token, &data)))
            .collect(),
        "one-task" | "busy" => {
            let stop = Arc::new(AtomicBool::new(false));
            let mut spinners = Vec::new();
            if shape == "busy" {
                for _ in 0..2 {
                    let stop = stop.clone();
                    spinners.push(rt.spawn(async move {
                        while !stop.load(Ordering::Relaxed) {
                            let t = Instant::now();
                            while t.elapsed() < Duration::from_micros(50) {
                                std::hint::spin_loop();
                            }
                            tokio::task::yield_now().await;
                        }
                    }));
                }
            }
            let m = m.clone();
            let out = rt.block_on(async move {
                tokio::spawn(async move {
                    let mut lat = Vec::with_capacity(n);
                    for _ in 0..n {
                        lat.push(op(&m, name, &mut token, &data).await);
                    }
                    lat
                })
                .await
                .expect("client")
            });
            stop.store(true, Ordering::Relaxed);
            for s in spinners {
                rt.block_on(s).expect("spinner");
            }
            out
        }
        other => unreachable!("{other}"),
    }
}

/// Load → save latencies of `tasks` concurrent clients, `n` in all.
fn concurrent(m: &Arc<SessionManager>, tasks: usize, n: usize) -> Vec<u64> {
    let rt = runtime();
    rt.block_on(async {
        let per = n.div_ceil(tasks);
        let clients: Vec<_> = (0..tasks)
            .map(|_| {
                let m = m.clone();
                tokio::spawn(async move {
                    let data = vec![b'd'; DATA];
                    let mut token = new_token(&m, &data).await;
                    let mut lat = Vec::with_capacity(per);
                    for _ in 0..per {
                        lat.push(op(&m, "load_save", &mut token, &data).await);
                    }
                    lat
                })
            })
            .collect();
        let mut all = Vec::new();
        for c in clients {
            all.extend(c.await.expect("client"));
        }
        all
    })
}

/// rusqlite on this thread: the store's load SELECT and save UPDATE.
fn baseline(
    path: &std::path::Path,
    store_rt: &Runtime,
    m: &SessionManager,
    n: usize,
) -> [Vec<u64>; 3] {
    let conn = Connection::open(path).expect("open");
    conn.pragma_update(None, "synchronous", "NORMAL")
        .expect("sync");
    let data = vec![b'd'; DATA];
    let token = store_rt.block_on(new_token(m, &data));
    let key = SessionToken::parse(&token).expect("token").storage_key();
    let now = Timestamp::now_utc().as_millis();
    let (mut sel, mut upd, mut both) = (vec![], vec![], vec![]);
    let mut version: i64 = conn
        .query_row(
            "SELECT version FROM sessions WHERE key = ?1",
            [&key.as_bytes()[..]],
            |r| r.get(0),
        )
        .expect("version");
    #[allow(clippy::type_complexity)]
    let select = |conn: &Connection| -> (
        i64,
        Vec<u8>,
        (Option<String>, i64, Option<i64>, i64, i64, Vec<u8>),
    ) {
        conn.prepare_cached(
            "SELECT kind, version, user_id, created_at, last_seen_at, auth_time, idle_deadline, \
             absolute_deadline, meta, data, successor, sealed_token, expires_at \
             FROM sessions WHERE key = ?1 AND expires_at > ?2",
        )
        .expect("prepare")
        .query_row(params![&key.as_bytes()[..], now], |r| {
            Ok((
                r.get(1)?,
                r.get(9)?,
                (
                    r.get(2)?,
                    r.get(3)?,
                    r.get(5)?,
                    r.get(6)?,
                    r.get(7)?,
                    r.get(8)?,
                ),
            ))
        })
        .expect("row")
    };
    type Cols = (Option<String>, i64, Option<i64>, i64, i64, Vec<u8>);
    let (_, _, cols): (i64, Vec<u8>, Cols) = select(&conn);
    let update = |conn: &Connection, v: i64| {
        let changed = conn
            .prepare_cached(
                "UPDATE sessions SET version = ?3, last_seen_at = ?6, auth_time = ?7, \
                 idle_deadline = ?8, absolute_deadline = ?9, meta = ?10, data = ?11, \
                 expires_at = ?12 \
                 WHERE key = ?1 AND kind = 0 AND version = ?2 AND expires_at > ?13 \
                 AND user_id IS ?4 AND created_at = ?5",
            )
            .expect("prepare")
            .execute(params![
                &key.as_bytes()[..],
                v,
                v + 1,
                cols.0,
                cols.1,
                now,
                cols.2,
                cols.3,
                cols.4,
                cols.5,
                &data,
                cols.3.min(cols.4),
                now
            ])
            .expect("update");
        assert_eq!(changed, 1);
    };
    for _ in 0..n {
        let t = Instant::now();
        std::hint::black_box(select(&conn));
        sel.push(ns(t));
        let t = Instant::now();
        update(&conn, version);
        upd.push(ns(t));
        let t = Instant::now();
        let (v, d, _) = select(&conn);
        std::hint::black_box(d);
        update(&conn, v);
        version = v + 1;
        both.push(ns(t));
    }
    [sel, upd, both]
}

fn main() -> session_store_core::Result<()> {
    let rounds: usize = std::env::args()
        .nth(1)
        .map_or(3, |s| s.parse().expect("ROUNDS is a number"));
    let dir = tempfile::tempdir().map_err(session_store_core::Error::backend_permanent)?;
    let setup = runtime();
    let mut variants: Vec<(&str, std::path::PathBuf, Arc<SessionManager>, SqliteStore)> =
        Vec::new();
    for (name, inline) in [("inline", true), ("queued", false)] {
        let path = dir.path().join(format!("{name}.db"));
        let store = setup.block_on(async {
            let store = SqliteConfig::new(&path).with_inline(inline).build().await?;
            store.migrate().await?;
            Ok::<_, session_store_core::Error>(store)
        })?;
        let m = Arc::new(SessionManager::new(Arc::new(store.clone())));
        variants.push((name, path, m, store));
    }
    let shapes = ["criterion", "one-task", "busy"];
    let ops = ["load", "save", "create", "rotate", "load_save"];
    // (variant, shape, op) -> latencies over all rounds.
    let mut results: std::collections::BTreeMap<(String, String, String), Vec<u64>> =
        Default::default();
    for round in 0..rounds {
        let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
        eprintln!("round {round}: load {}", load.trim());
        for shape in shapes {
            for op_name in ops {
                for (name, _, m, _) in &variants {
                    let lat = single(shape, m, op_name, OPS);
                    results
                        .entry((name.to_string(), shape.to_string(), op_name.to_string()))
                        .or_default()
                        .extend(lat);
                }
            }
        }
        for tasks in [8, 64] {
            for (name, _, m, _) in &variants {
                let lat = concurrent(m, tasks, OPS * 4);
                results
                    .entry((
                        name.to_string(),
                        format!("tasks-{tasks}"),
                        "load_save".into(),
                    ))
                    .or_default()
                    .extend(lat);
            }
        }
        let (_, path, m, _) = &variants[0];
        let [sel, upd, both] = baseline(path, &setup, m, OPS);
        for (op_name, lat) in [("select", sel), ("update", upd), ("select+update", both)] {
            results
                .entry(("rusqlite".into(), "calling-thread".into(), op_name.into()))
                .or_default()
                .extend(lat);
        }
    }
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    println!("load average at the end: {}", load.trim());
    println!("| variant | shape | op | n | p50 µs | p99 µs |");
    println!("|---|---|---|---|---|---|");
    for ((variant, shape, op_name), mut lat) in results {
        let (p50, p99) = stats(&mut lat);
        println!(
            "| {variant} | {shape} | {op_name} | {} | {p50:.1} | {p99:.1} |",
            lat.len()
        );
    }
    Ok(())
}
