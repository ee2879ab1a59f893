//! Tail latency under concurrency (issue 17): N tasks, each loading or saving
//! its own session in a loop for a fixed time, on a tokio multi-thread
//! runtime, with several variants interleaved in rounds in one process so
//! that machine noise hits them alike. A measuring aid, not a benchmark:
//!
//! `cargo run --release -p session-store-postgres --example pg_tail -- \
//!     [--secs 2] [--rounds 2] [--tasks 1,8,32,64] [--pools 10,tasks] [--workers 2] [--ops load,save] [--variants store,lease,lease+dl,sqlx-fair,sqlx-unfair]`
//!
//! Variants (same statement, same 1 KiB row):
//! - `store`: `SessionBackend::load` / `save` of a `PostgresStore`;
//! - `lease`: the store's connection layer (`session_store_sqlx_pool`) used
//!   directly, timing the wait for a connection apart from the statement,
//!   and checking that waiters are served in arrival order (`lease+dl`:
//!   the same inside an operation deadline, as the store runs it);
//! - `sqlx-fair` / `sqlx-unfair`: a plain sqlx `PgPool` (fair, the default,
//!   or `__fair(false)`), the statement run on `&pool`.
//!
//! Besides p50/p99/p99.9/max per operation it prints the spread of
//! operations per task (a starved task shows as a low minimum) and the
//! run-queue delay (`/proc/<pid>/schedstat`: time runnable but not running)
//! of the PostgreSQL server processes and of this process per operation:
//! the time the kernel kept the work off a CPU.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use session_store_core::{SessionBackend, SessionRecord, SessionToken, StorageKey, Timestamp};
use session_store_postgres::{PostgresConfig, PostgresStore};
use session_store_sqlx_pool::Connections;
use sqlx::postgres::{PgPool, PgPoolOptions};
use sqlx::{AssertSqlSafe, Postgres};

const COLUMNS: &str = "version, user_id, created_at, last_seen_at, auth_time, \
     idle_deadline, absolute_deadline, meta, data, successor, sealed_token, expires_at";

fn record(now: Timestamp) -> SessionRecord {
    SessionRecord {
        version: 0,
        user_id: Some("user-1".into()),
        created_at: now,
        last_seen_at: now,
        auth_time: Some(now),
        idle_deadline: now.saturating_add(Duration::from_secs(1800)),
        absolute_deadline: now.saturating_add(Duration::from_secs(8 * 3600)),
        meta: vec![7; 64],
        data: vec![42; 1024],
    }
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Variant {
    Store,
    Lease,
    /// `Lease` inside an operation deadline (`tokio::time::timeout`), as
    /// the store runs every operation.
    LeaseDeadline,
    SqlxFair,
    SqlxUnfair,
}

impl Variant {
    fn name(self) -> &'static str {
        match self {
            Variant::Store => "store",
            Variant::Lease => "lease",
            Variant::LeaseDeadline => "lease+dl",
            Variant::SqlxFair => "sqlx-fair",
            Variant::SqlxUnfair => "sqlx-unfair",
        }
    }
}

#[derive(Default)]
struct TaskLog {
    total: Vec<Duration>,
    wait: Vec<Duration>,
    exec: Vec<Duration>,
    /// (arrival ticket, service ticket) of each lease acquisition.
    tickets: Vec<(u64, u64)>,
}

fn q(s: &mut [Duration], p: f64) -> Duration {
    if s.is_empty() {
        return Duration::ZERO;
    }
    s.sort_unstable();
    s[(((s.len() - 1) as f64) * p).round() as usize]
}

fn us(d: Duration) -> String {
    let v = d.as_secs_f64() * 1e6;
    if v >= 1000.0 {
        format!("{:.2}ms", v / 1000.0)
    } else {
        format!("{v:.0}µs")
    }
}

/// Inversions of service order against arrival order (pairs served out of
/// arrival order), by merge sort.
fn inversions(v: &mut [u64]) -> u64 {
    let n = v.len();
    if n < 2 {
        return 0;
    }
    let mid = n / 2;
    let mut count = inversions(&mut v[..mid]) + inversions(&mut v[mid..]);
    let mut merged = Vec::with_capacity(n);
    let (mut i, mut j) = (0, mid);
    while i < mid && j < n {
        if v[i] <= v[j] {
            merged.push(v[i]);
            i += 1;
        } else {
            merged.push(v[j]);
            count += (mid - i) as u64;
            j += 1;
        }
    }
    merged.extend_from_slice(&v[i..mid]);
    merged.extend_from_slice(&v[j..]);
    v.copy_from_slice(&merged);
    count
}

/// Sum of run-queue delay (ns) of every process named `postgres`, and of
/// this process's threads.
fn run_delays() -> (u64, u64) {
    fn delay(path: &std::path::Path) -> u64 {
        std::fs::read_to_string(path)
            .ok()
            .and_then(|s| s.split_whitespace().nth(1)?.parse().ok())
            .unwrap_or(0)
    }
    let mut server = 0;
    if let Ok(dir) = std::fs::read_dir("/proc") {
        for e in dir.flatten() {
            let p = e.path();
            let comm = std::fs::read_to_string(p.join("comm")).unwrap_or_default();
            if comm.trim() == "postgres" {
                server += delay(&p.join("schedstat"));
            }
        }
    }
    let mut client = 0;
    if let Ok(dir) = std::fs::read_dir("/proc/self/task") {
        for e in dir.flatten() {
            client += delay(&e.path().join("schedstat"));
        }
    }
    (server, client)
}

/// Only the variant under measurement holds connections (the server's
/// `max_connections` is shared with everyone).
struct Shared {
    store: Option<PostgresStore>,
    lease: Option<Connections<Postgres>>,
    pool: Option<PgPool>,
    load_sql: String,
    save_sql: String,
    arrival: AtomicU64,
    served: AtomicU64,
    stop: AtomicBool,
}

async fn one_op(
    sh: &Shared,
    variant: Variant,
    save: bool,
    key: &StorageKey,
    rec: &mut SessionRecord,
    now: Timestamp,
    log: &mut TaskLog,
) {
    let t0 = Instant::now();
    match variant {
        Variant::Store => {
            if save {
                let store = sh.store.as_ref().expect("store");
                rec.version = store.save(key, rec, now).await.expect("save");
            } else {
                let store = sh.store.as_ref().expect("store");
                store.load(key, now).await.expect("load").expect("row");
            }
        }
        Variant::LeaseDeadline => {
            tokio::time::timeout(
                Duration::from_secs(10),
                Box::pin(one_op(sh, Variant::Lease, save, key, rec, now, log)),
            )
            .await
            .expect("deadline");
            return;
        }
        Variant::Lease => {
            let a = sh.arrival.fetch_add(1, Ordering::SeqCst);
            let mut lease = sh
                .lease
                .as_ref()
                .expect("lease")
                .get()
                .await
                .expect("lease");
            let s = sh.served.fetch_add(1, Ordering::SeqCst);
            let t1 = Instant::now();
            let result = if save {
                sqlx::query(AssertSqlSafe(sh.save_sql.as_str()))
                    .bind(key.as_bytes().as_slice())
                    .bind(&rec.data)
                    .execute(lease.conn())
                    .await
                    .map(|_| ())
            } else {
                sqlx::query(AssertSqlSafe(sh.load_sql.as_str()))
                    .bind(key.as_bytes().as_slice())
                    .bind(now.as_millis())
                    .fetch_optional(lease.conn())
                    .await
                    .map(|r| assert!(r.is_some()))
            };
            let t2 = Instant::now();
            lease.finish(&result);
            result.expect("statement");
            log.wait.push(t1 - t0);
            log.exec.push(t2 - t1);
            log.tickets.push((a, s));
        }
        Variant::SqlxFair | Variant::SqlxUnfair => {
            let pool = sh.pool.as_ref().expect("pool");
            if save {
                sqlx::query(AssertSqlSafe(sh.save_sql.as_str()))
                    .bind(key.as_bytes().as_slice())
                    .bind(&rec.data)
                    .execute(pool)
                    .await
                    .expect("save");
            } else {
                sqlx::query(AssertSqlSafe(sh.load_sql.as_str()))
                    .bind(key.as_bytes().as_slice())
                    .bind(now.as_millis())
                    .fetch_optional(pool)
                    .await
                    .expect("load")
                    .expect("row");
            }
        }
    }
    log.total.push(t0.elapsed());
}

async fn cell(
    sh: &Arc<Shared>,
    keys: &[StorageKey],
    variant: Variant,
    save: bool,
    secs: f64,
    now: Timestamp,
    print: bool,
) {
    sh.stop.store(false, Ordering::SeqCst);
    let (s0, c0) = run_delays();
    let start = Instant::now();
    let handles: Vec<_> = keys
        .iter()
        .map(|k| {
            let sh = Arc::clone(sh);
            let k = *k;
            tokio::spawn(async move {
                let mut log = TaskLog::default();
                let mut rec = record(now);
                if save && variant == Variant::Store {
                    // Our own session's current version.
                    let store = sh.store.as_ref().expect("store");
                    rec.version = match store.load(&k, now).await.expect("load") {
                        Some(session_store_core::Lookup::Session(r)) => r.version,
                        _ => panic!("session"),
                    };
                }
                while !sh.stop.load(Ordering::Relaxed) {
                    one_op(&sh, variant, save, &k, &mut rec, now, &mut log).await;
                }
                log
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_secs_f64(secs)).await;
    sh.stop.store(true, Ordering::SeqCst);
    let mut logs = Vec::new();
    for h in handles {
        logs.push(h.await.expect("task"));
    }
    let wall = start.elapsed();
    let (s1, c1) = run_delays();
    if !print {
        return;
    }
    let per_task: Vec<usize> = logs.iter().map(|l| l.total.len()).collect();
    let ops: usize = per_task.iter().sum();
    let mut total: Vec<Duration> = logs.iter().flat_map(|l| l.total.clone()).collect();
    let p50 = q(&mut total, 0.5);
    let p99 = q(&mut total, 0.99);
    let p999 = q(&mut total, 0.999);
    let max = *total.last().unwrap_or(&Duration::ZERO);
    let over1 = total
        .iter()
        .filter(|d| **d > Duration::from_millis(1))
        .count();
    print!(
        "  {:<11} {:>6.1}k/s p50 {:>7} p99 {:>7} p99.9 {:>7} max {:>7} >1ms {:>5.2}% tasks min/max {}/{} runq/op srv {} cli {}",
        variant.name(),
        ops as f64 / wall.as_secs_f64() / 1e3,
        us(p50),
        us(p99),
        us(p999),
        us(max),
        100.0 * over1 as f64 / ops.max(1) as f64,
        per_task.iter().min().unwrap_or(&0),
        per_task.iter().max().unwrap_or(&0),
        us(Duration::from_nanos(s1.saturating_sub(s0) / ops.max(1) as u64)),
        us(Duration::from_nanos(c1.saturating_sub(c0) / ops.max(1) as u64)),
    );
    if matches!(variant, Variant::Lease | Variant::LeaseDeadline) {
        let mut wait: Vec<Duration> = logs.iter().flat_map(|l| l.wait.clone()).collect();
        let mut exec: Vec<Duration> = logs.iter().flat_map(|l| l.exec.clone()).collect();
        let waited1 = wait
            .iter()
            .filter(|d| **d > Duration::from_millis(1))
            .count();
        let exec1 = exec
            .iter()
            .filter(|d| **d > Duration::from_millis(1))
            .count();
        let mut t: Vec<(u64, u64)> = logs.iter().flat_map(|l| l.tickets.clone()).collect();
        t.sort_unstable();
        let mut served: Vec<u64> = t.iter().map(|x| x.1).collect();
        let inv = inversions(&mut served);
        print!(
            "\n  {:<11} wait p50 {} p99 {} max {} (>1ms {}) | stmt p50 {} p99 {} p99.9 {} max {} (>1ms {}) | out-of-order pairs {inv}",
            "",
            us(q(&mut wait, 0.5)),
            us(q(&mut wait, 0.99)),
            us(*wait.last().unwrap_or(&Duration::ZERO)),
            waited1,
            us(q(&mut exec, 0.5)),
            us(q(&mut exec, 0.99)),
            us(q(&mut exec, 0.999)),
            us(*exec.last().unwrap_or(&Duration::ZERO)),
            exec1,
        );
    }
    println!();
}

fn arg(name: &str) -> Option<String> {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1).cloned())
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let workers: usize = arg("--workers").map_or(Ok(2), |v| v.parse())?;
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(workers)
        .enable_all()
        .build()?
        .block_on(run(workers))
}

async fn run(workers: usize) -> Result<(), Box<dyn std::error::Error>> {
    let secs: f64 = arg("--secs").map_or(Ok(2.0), |v| v.parse())?;
    let rounds: usize = arg("--rounds").map_or(Ok(2), |v| v.parse())?;
    let tasks: Vec<usize> = arg("--tasks")
        .unwrap_or_else(|| "1,8,32,64".into())
        .split(',')
        .map(str::parse)
        .collect::<Result<_, _>>()?;
    let pools: Vec<String> = arg("--pools")
        .unwrap_or_else(|| "10,tasks".into())
        .split(',')
        .map(str::to_owned)
        .collect();
    let ops: Vec<bool> = arg("--ops")
        .unwrap_or_else(|| "load,save".into())
        .split(',')
        .map(|o| o == "save")
        .collect();
    let variants: Vec<Variant> = arg("--variants")
        .unwrap_or_else(|| "store,lease,sqlx-fair,sqlx-unfair".into())
        .split(',')
        .map(|v| match v {
            "store" => Variant::Store,
            "lease" => Variant::Lease,
            "lease+dl" => Variant::LeaseDeadline,
            "sqlx-fair" => Variant::SqlxFair,
            _ => Variant::SqlxUnfair,
        })
        .collect();

    let schema = format!("ss_tail_{:08x}", rand::random::<u32>());
    let base = PostgresConfig::from_env()?.with_schema(&schema);
    let url = base.url().to_owned();
    let setup = base.clone().with_max_connections(2).build().await?;
    setup.migrate().await?;
    let now = Timestamp::now_utc();
    let max_tasks = *tasks.iter().max().unwrap_or(&1);
    let keys: Vec<StorageKey> = (0..max_tasks)
        .map(|_| SessionToken::generate().storage_key())
        .collect();
    for k in &keys {
        setup.create(k, &record(now)).await?;
    }
    let t = setup.qualified_table();
    let load_sql = format!("SELECT {COLUMNS} FROM {t} WHERE key = $1 AND expires_at > $2");
    let save_sql = format!("UPDATE {t} SET data = $2, version = version + 1 WHERE key = $1");
    println!(
        "workers {workers}, {secs}s per cell, {rounds} rounds, loadavg {}",
        std::fs::read_to_string("/proc/loadavg")?.trim()
    );
    for &n in &tasks {
        for pool in &pools {
            let size: u32 = if pool == "tasks" {
                n as u32
            } else {
                pool.parse()?
            };
            let opts = |fair: bool| {
                PgPoolOptions::new()
                    .max_connections(size)
                    .acquire_timeout(Duration::from_secs(10))
                    .test_before_acquire(false)
                    .__fair(fair)
            };
            for &save in &ops {
                for round in 0..rounds {
                    println!(
                        "{} tasks, pool {size}, {}, round {round} (loadavg {})",
                        n,
                        if save { "save" } else { "load" },
                        std::fs::read_to_string("/proc/loadavg")?
                            .split(' ')
                            .next()
                            .unwrap_or("?")
                    );
                    for &v in &variants {
                        let mut sh = Shared {
                            store: None,
                            lease: None,
                            pool: None,
                            load_sql: load_sql.clone(),
                            save_sql: save_sql.clone(),
                            arrival: AtomicU64::new(0),
                            served: AtomicU64::new(0),
                            stop: AtomicBool::new(false),
                        };
                        match v {
                            Variant::Store => {
                                sh.store = Some(
                                    base.clone()
                                        .with_max_connections(size)
                                        .with_operation_timeout(Duration::from_secs(10))
                                        .with_acquire_timeout(Duration::from_secs(10))
                                        .build()
                                        .await?,
                                )
                            }
                            Variant::Lease | Variant::LeaseDeadline => {
                                sh.lease = Some(Connections::new(
                                    opts(true).connect(&url).await?,
                                    None,
                                    None,
                                ))
                            }
                            Variant::SqlxFair => sh.pool = Some(opts(true).connect(&url).await?),
                            Variant::SqlxUnfair => sh.pool = Some(opts(false).connect(&url).await?),
                        }
                        let sh = Arc::new(sh);
                        // Opens the connections, unmeasured.
                        cell(&sh, &keys[..n], v, save, 0.3, now, false).await;
                        cell(&sh, &keys[..n], v, save, secs, now, true).await;
                        if let Some(lease) = &sh.lease {
                            lease.close();
                            lease.pool().close().await;
                        }
                        if let Some(store) = &sh.store {
                            store.close().await;
                        }
                        if let Some(pool) = &sh.pool {
                            pool.close().await;
                        }
                    }
                }
            }
        }
    }
    let mut conn = setup.pool().acquire().await?;
    sqlx::query(AssertSqlSafe(format!("DROP SCHEMA \"{schema}\" CASCADE")))
        .execute(&mut *conn)
        .await?;
    Ok(())
}
