//! Session creation while a mass of expired sessions is cleaned up (issue 15,
//! "Cleanup under load"). A measurement, not a test:
//!
//! ```text
//! cargo run --release -p session-store-sqlite --example cleanup_under_load
//! ```
//!
//! Fills a database with `EXPIRED` (default 270000) expired sessions and
//! `LIVE` (default 10000) live ones, measures `CREATORS` (default 16)
//! concurrent tasks creating sessions for `BASE_SECS` (default 3) seconds
//! without cleanup, then again while a cleanup task removes the expired rows
//! (`store.spawn_cleanup_with_clock`, batches of `BATCH`, default 1000, every
//! 10 ms) until it has removed them all. Reports create throughput and
//! latency (p50, p99, max) in both phases, how long the cleanup took, and the
//! largest WAL and database file sizes seen. Settings come from the
//! environment variables named above and from `SESSION_STORE_SQLITE_*`
//! (through `SqliteConfig::from_vars`, with the path set here).
//!
//! Measured on the shared 2-core development machine (load average 4 to 6
//! from other builds, so only large differences mean anything), 16
//! creators, batch 1000:
//!
//! | | before (0e84b44) | after (chunks of 256, paced, 8 MiB WAL) |
//! | --- | --- | --- |
//! | fill: 280 000 creates from 8 tasks | 35 to 52 s | 46 to 76 s |
//! | creates, no cleanup | 5 400 to 5 900/s, p99 11 to 26 ms | 3 900 to 4 800/s, p99 37 to 40 ms |
//! | creates during cleanup | 1 700 to 3 000/s (31 to 52 % of the rate without), p50 4.6 to 7.8 ms | 2 900 to 4 200/s (60 to 106 %), p50 1.9 to 2.4 ms |
//! | creates during cleanup, p99 / max | 17 to 45 ms / 55 to 164 ms | 37 to 53 ms / 95 to 109 ms |
//! | cleanup of 270 000 rows | 1.5 to 2.7 s | 13 to 18 s (cleanup yields to creates) |
//! | largest WAL seen / at the end | 173 to 404 MiB / same | 16 MiB / 8 MiB |
//! | database file at the end | 136 to 137 MiB | 38 to 42 MiB |

use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use session_store_core::config::Vars;
use session_store_core::{ManualClock, SessionBackend, SessionRecord, SessionToken, Timestamp};
use session_store_sqlite::{SqliteConfig, SqliteStore};

const T0: Timestamp = Timestamp::from_millis(1_700_000_000_000);

fn record(idle: Duration) -> SessionRecord {
    SessionRecord {
        version: 0,
        user_id: None,
        created_at: T0,
        last_seen_at: T0,
        auth_time: None,
        idle_deadline: T0.saturating_add(idle),
        absolute_deadline: T0.saturating_add(Duration::from_secs(12 * 3600)),
        meta: b"{\"ip\":\"192.0.2.1\"}".to_vec(),
        data: vec![0x5A; 256],
    }
}

fn env_usize(vars: &Vars, name: &str, default: usize) -> usize {
    vars.number(name)
        .expect("a whole number")
        .unwrap_or(default)
}

async fn fill(store: &SqliteStore, n: usize, idle: Duration, tasks: usize) {
    let each = n / tasks;
    let handles: Vec<_> = (0..tasks)
        .map(|_| {
            let store = store.clone();
            tokio::spawn(async move {
                for _ in 0..each {
                    let key = SessionToken::generate().storage_key();
                    store.create(&key, &record(idle)).await.unwrap();
                }
            })
        })
        .collect();
    for h in handles {
        h.await.unwrap();
    }
}

fn file_len(path: &Path, suffix: &str) -> u64 {
    let mut name = path.as_os_str().to_owned();
    name.push(suffix);
    std::fs::metadata(name).map_or(0, |m| m.len())
}

struct Run {
    creates: usize,
    elapsed: Duration,
    latencies: Vec<Duration>,
}

impl Run {
    fn print(&mut self, label: &str) {
        self.latencies.sort_unstable();
        let n = self.latencies.len().max(1);
        let at = |q: f64| self.latencies[((n as f64 * q) as usize).min(n - 1)];
        println!(
            "{label:>16}: {:>7} creates in {:>6.2} s = {:>7.0}/s  p50 {:>8.3} ms  p99 {:>8.3} ms  max {:>8.3} ms",
            self.creates,
            self.elapsed.as_secs_f64(),
            self.creates as f64 / self.elapsed.as_secs_f64(),
            at(0.50).as_secs_f64() * 1e3,
            at(0.99).as_secs_f64() * 1e3,
            self.latencies.last().copied().unwrap_or_default().as_secs_f64() * 1e3,
        );
    }
}

/// Creates from `creators` tasks until `stop` is set; latencies of each create.
async fn create_until(store: &SqliteStore, creators: usize, stop: Arc<AtomicBool>) -> Run {
    let started = Instant::now();
    let handles: Vec<_> = (0..creators)
        .map(|_| {
            let store = store.clone();
            let stop = stop.clone();
            tokio::spawn(async move {
                let mut lat = Vec::new();
                while !stop.load(Ordering::Relaxed) {
                    let key = SessionToken::generate().storage_key();
                    let t = Instant::now();
                    store
                        .create(&key, &record(Duration::from_secs(3600)))
                        .await
                        .unwrap();
                    lat.push(t.elapsed());
                }
                lat
            })
        })
        .collect();
    let mut latencies = Vec::new();
    for h in handles {
        latencies.extend(h.await.unwrap());
    }
    Run {
        creates: latencies.len(),
        elapsed: started.elapsed(),
        latencies,
    }
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> session_store_core::Result<()> {
    let vars = Vars::from_env();
    let expired = env_usize(&vars, "EXPIRED", 270_000);
    let live = env_usize(&vars, "LIVE", 10_000);
    let creators = env_usize(&vars, "CREATORS", 16);
    let batch = env_usize(&vars, "BATCH", 1000);
    let base_secs = env_usize(&vars, "BASE_SECS", 3) as u64;

    let dir = tempfile::tempdir().map_err(session_store_core::Error::backend_permanent)?;
    let path = dir.path().join("cleanup.db");
    let path_text = path.display().to_string();
    let config_vars = Vars::from_fn(move |name| {
        if name == "SESSION_STORE_SQLITE_PATH" {
            Some(path_text.clone())
        } else {
            std::env::var(name).ok()
        }
    });
    let config = SqliteConfig::from_vars(&config_vars)?;
    println!("{config:?}");
    let store = config.build().await?;
    store.migrate().await?;

    let t = Instant::now();
    fill(&store, expired, Duration::from_secs(60), 8).await;
    fill(&store, live, Duration::from_secs(24 * 3600), 8).await;
    println!(
        "filled {expired} expired + {live} live sessions in {:.1} s; db {:.1} MiB, wal {:.1} MiB",
        t.elapsed().as_secs_f64(),
        file_len(&path, "") as f64 / 1048576.0,
        file_len(&path, "-wal") as f64 / 1048576.0
    );

    // Sizes, sampled every 10 ms while the phases run.
    let max_wal = Arc::new(AtomicU64::new(0));
    let max_db = Arc::new(AtomicU64::new(0));
    let sampling = Arc::new(AtomicBool::new(false));
    let sampler = {
        let (max_wal, max_db, sampling, path) = (
            max_wal.clone(),
            max_db.clone(),
            sampling.clone(),
            path.clone(),
        );
        tokio::spawn(async move {
            while !sampling.load(Ordering::Relaxed) {
                max_wal.fetch_max(file_len(&path, "-wal"), Ordering::Relaxed);
                max_db.fetch_max(file_len(&path, ""), Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        })
    };

    // Phase 1: creates alone.
    let stop = Arc::new(AtomicBool::new(false));
    let run = tokio::spawn({
        let (store, stop) = (store.clone(), stop.clone());
        async move { create_until(&store, creators, stop).await }
    });
    tokio::time::sleep(Duration::from_secs(base_secs)).await;
    stop.store(true, Ordering::Relaxed);
    let mut base = run.await.unwrap();

    // Phase 2: creates while the cleanup task removes every expired row.
    let clock = Arc::new(ManualClock::new(
        T0.saturating_add(Duration::from_secs(120)),
    ));
    let stop = Arc::new(AtomicBool::new(false));
    let run = tokio::spawn({
        let (store, stop) = (store.clone(), stop.clone());
        async move { create_until(&store, creators, stop).await }
    });
    let started = Instant::now();
    let cleanup = store.spawn_cleanup_with_clock(Duration::from_millis(10), batch, clock)?;
    let mut stats = cleanup.stats();
    while stats.borrow().removed < expired as u64 {
        stats.changed().await.expect("cleanup task ended");
    }
    let cleanup_elapsed = started.elapsed();
    stop.store(true, Ordering::Relaxed);
    let mut during = run.await.unwrap();
    cleanup.stop().await;
    sampling.store(true, Ordering::Relaxed);
    sampler.await.unwrap();

    println!("creators {creators}, cleanup batch {batch}");
    base.print("no cleanup");
    during.print("during cleanup");
    println!(
        "cleanup of {expired} rows took {:.2} s ({:.0} rows/s)",
        cleanup_elapsed.as_secs_f64(),
        expired as f64 / cleanup_elapsed.as_secs_f64()
    );
    println!(
        "largest seen: wal {:.1} MiB, db {:.1} MiB; at the end: wal {:.1} MiB, db {:.1} MiB",
        max_wal.load(Ordering::Relaxed) as f64 / 1048576.0,
        max_db.load(Ordering::Relaxed) as f64 / 1048576.0,
        file_len(&path, "-wal") as f64 / 1048576.0,
        file_len(&path, "") as f64 / 1048576.0
    );
    Ok(())
}
