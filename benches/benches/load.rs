//! Concurrency (throughput, p50/p99 at 1 to 256 tasks) and scale (latency with
//! 10^3 to 10^6 live sessions, cleanup of expired sessions, delete-by-user
//! among many sessions). Custom timed loops, bounded in time per point.
//!
//! Environment: `BENCH_MODE`, `BENCH_TARGETS` (as for `ops`), `BENCH_PARTS`
//! (comma-separated subset of `concurrency,scale,cleanup`; default all),
//! `BENCH_OUT`.

use std::future::Future;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::stream::{self, StreamExt as _};
use session_store_benches::populate::{self, key_of};
use session_store_benches::raw::{RawMySql, RawPostgres, RawRedis, RawSled, RawSqlite};
use session_store_benches::stats::{self, Record, Summary};
use session_store_benches::{payload, Fixture, Mode, Target};
use session_store_core::{ClientMeta, Lookup, SessionBackend, SessionToken, StorageKey, Timestamp};
use tokio::runtime::Runtime;

fn ns(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

/// Runs `tasks` tasks for `dur`, each repeating the operation `make(i)` returns;
/// every latency is recorded; throughput is over the wall time until the last
/// task finished its last operation.
async fn drive<F, Fut>(tasks: usize, dur: Duration, make: impl Fn(usize) -> F) -> Summary
where
    F: FnMut() -> Fut + Send + 'static,
    Fut: Future<Output = ()> + Send,
{
    let start = Instant::now();
    let deadline = start + dur;
    let handles: Vec<_> = (0..tasks)
        .map(|i| {
            let mut op = make(i);
            tokio::spawn(async move {
                let mut lat = Vec::with_capacity(4096);
                // At least one operation per task, however late it starts.
                loop {
                    let t = Instant::now();
                    op().await;
                    lat.push(ns(t.elapsed()));
                    if Instant::now() >= deadline {
                        break;
                    }
                }
                lat
            })
        })
        .collect();
    let mut all = Vec::new();
    for h in handles {
        all.extend(h.await.expect("task"));
    }
    Summary::of(all, start.elapsed()).expect("at least one operation")
}

fn record_conc(out: &Path, op: &str, id: &str, tasks: usize, summary: Summary) {
    println!(
        "concurrency {op:<5} {id:<24} {tasks:>3} tasks: {:>9.0} ops/s  p50 {:>8.1} us  p99 {:>8.1} us",
        summary.ops_per_sec,
        summary.p50_ns / 1e3,
        summary.p99_ns / 1e3
    );
    stats::append(
        out,
        &Record::Concurrency {
            op: op.to_owned(),
            id: id.to_owned(),
            tasks,
            summary,
        },
    );
}

/// Load and save through the manager at each concurrency level; each task
/// has its own session.
async fn concurrency(fx: &Fixture, mode: Mode, out: &Path) {
    let m = fx.manager(false, false);
    let data = payload(200);
    let max = *mode.concurrency().iter().max().expect("levels");
    let sessions: Vec<_> = stream::iter(0..max)
        .map(|_| m.create(data.clone(), ClientMeta::default()))
        .buffer_unordered(32)
        .map(|r| r.expect("create"))
        .collect()
        .await;
    let tokens: Arc<Vec<String>> = Arc::new(
        sessions
            .iter()
            .map(|s| s.token().expose_secret().to_owned())
            .collect(),
    );
    let keys: Arc<Vec<StorageKey>> = Arc::new(sessions.iter().map(|s| s.storage_key()).collect());
    // Saves advance each session's version: keep one copy per task across levels.
    let shared: Vec<_> = sessions
        .into_iter()
        .map(|s| Arc::new(tokio::sync::Mutex::new(s)))
        .collect();
    for &tasks in mode.concurrency() {
        let s = drive(tasks, mode.point_duration(), |i| {
            let (m, tokens) = (m.clone(), tokens.clone());
            move || {
                let (m, tokens) = (m.clone(), tokens.clone());
                async move {
                    m.load(&tokens[i])
                        .await
                        .expect("load")
                        .expect("live session");
                }
            }
        })
        .await;
        record_conc(out, "load", fx.target.id(), tasks, s);
        let s = drive(tasks, mode.point_duration(), |i| {
            let m = m.clone();
            let session = shared[i].clone();
            move || {
                let (m, session) = (m.clone(), session.clone());
                async move {
                    let mut s = session.lock().await;
                    m.save(&mut s).await.expect("save");
                }
            }
        })
        .await;
        record_conc(out, "save", fx.target.id(), tasks, s);
    }
    // The backend alone (no token parsing, hashing or policy), after the
    // manager runs (its saves would otherwise conflict with these).
    let backend = fx.backend(false);
    let id = format!("{}/backend", fx.target.id());
    for &tasks in mode.concurrency() {
        let s = drive(tasks, mode.point_duration(), |i| {
            let (b, keys) = (backend.clone(), keys.clone());
            move || {
                let (b, keys) = (b.clone(), keys.clone());
                async move {
                    let found = b.load(&keys[i], Timestamp::now_utc()).await.expect("load");
                    assert!(found.is_some(), "session missing");
                }
            }
        })
        .await;
        record_conc(out, "load", &id, tasks, s);
        let mut records = Vec::new();
        for k in keys.iter().take(tasks) {
            let Some(Lookup::Session(r)) =
                backend.load(k, Timestamp::now_utc()).await.expect("load")
            else {
                panic!("session missing");
            };
            records.push(Arc::new(tokio::sync::Mutex::new(r)));
        }
        let s = drive(tasks, mode.point_duration(), |i| {
            let (b, keys, rec) = (backend.clone(), keys.clone(), records[i].clone());
            move || {
                let (b, keys, rec) = (b.clone(), keys.clone(), rec.clone());
                async move {
                    let mut r = rec.lock().await;
                    r.version = b
                        .save(&keys[i], &r, Timestamp::now_utc())
                        .await
                        .expect("save");
                }
            }
        })
        .await;
        record_conc(out, "save", &id, tasks, s);
    }
}

/// The raw baselines at each concurrency level (same payload; a key per task).
async fn raw_concurrency(mode: Mode, out: &Path, targets: &[Target]) {
    let data: Arc<Vec<u8>> = Arc::new(payload(200));
    let max = *mode.concurrency().iter().max().expect("levels");
    let mut redis = Vec::new();
    if targets.contains(&Target::Redis) {
        match RawRedis::single().await {
            Ok(r) => redis.push(("raw-redis", r)),
            Err(e) => eprintln!("skipping raw redis: {e}"),
        }
    }
    if targets.contains(&Target::RedisCluster) {
        match RawRedis::cluster().await {
            Ok(r) => redis.push(("raw-redis-cluster", r)),
            Err(e) => eprintln!("skipping raw redis cluster: {e}"),
        }
    }
    for (id, r) in &redis {
        for i in 0..max {
            r.set(&r.key(i as u64), &data).await;
        }
        for &tasks in mode.concurrency() {
            let s = drive(tasks, mode.point_duration(), |i| {
                let (r, k) = (r.clone(), r.key(i as u64));
                move || {
                    let (r, k) = (r.clone(), k.clone());
                    async move {
                        std::hint::black_box(r.get(&k).await);
                    }
                }
            })
            .await;
            record_conc(out, "load", &format!("{id}-GET"), tasks, s);
            let s = drive(tasks, mode.point_duration(), |i| {
                let (r, k, d) = (r.clone(), r.key(i as u64), data.clone());
                move || {
                    let (r, k, d) = (r.clone(), k.clone(), d.clone());
                    async move { r.set(&k, &d).await }
                }
            })
            .await;
            record_conc(out, "save", &format!("{id}-SET-PX"), tasks, s);
        }
        r.cleanup().await;
    }
    if targets.contains(&Target::Sqlite) {
        // One connection per core, used on the calling (worker) thread.
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        let sq = Arc::new(RawSqlite::new(cores).expect("raw sqlite"));
        let keys: Arc<Vec<[u8; 32]>> = Arc::new((0..max).map(|_| rand::random()).collect());
        for k in keys.iter() {
            sq.upsert(0, k, &data);
        }
        for &tasks in mode.concurrency() {
            let s = drive(tasks, mode.point_duration(), |i| {
                let (sq, keys) = (sq.clone(), keys.clone());
                move || {
                    std::hint::black_box(sq.select(i, &keys[i]));
                    async {}
                }
            })
            .await;
            record_conc(out, "load", "raw-rusqlite-SELECT", tasks, s);
            let s = drive(tasks, mode.point_duration(), |i| {
                let (sq, keys, d) = (sq.clone(), keys.clone(), data.clone());
                move || {
                    sq.upsert(i, &keys[i], &d);
                    async {}
                }
            })
            .await;
            record_conc(out, "save", "raw-rusqlite-upsert", tasks, s);
        }
    }
    if targets.contains(&Target::Sled) || targets.contains(&Target::SledPeriodic) {
        let sl = Arc::new(RawSled::new().expect("raw sled"));
        let keys: Arc<Vec<[u8; 32]>> = Arc::new((0..max).map(|_| rand::random()).collect());
        for k in keys.iter() {
            sl.insert(k, &data);
        }
        for &tasks in mode.concurrency() {
            let s = drive(tasks, mode.point_duration(), |i| {
                let (sl, keys) = (sl.clone(), keys.clone());
                move || {
                    std::hint::black_box(sl.get(&keys[i]));
                    async {}
                }
            })
            .await;
            record_conc(out, "load", "raw-sled-get", tasks, s);
            let s = drive(tasks, mode.point_duration(), |i| {
                let (sl, keys, d) = (sl.clone(), keys.clone(), data.clone());
                move || {
                    sl.insert(&keys[i], &d);
                    async {}
                }
            })
            .await;
            record_conc(out, "save", "raw-sled-insert", tasks, s);
        }
    }
}

/// The PostgreSQL primary-key baselines through a pool like the store's
/// (10 connections) at each concurrency level.
async fn pg_concurrency(mode: Mode, out: &Path) {
    let p = match RawPostgres::new().await {
        Ok(p) => p,
        Err(e) if mode != Mode::Ci => {
            eprintln!("skipping the PostgreSQL baseline: {e}");
            return;
        }
        Err(e) => panic!("raw postgres: {e}"),
    };
    let pg = RawPg {
        pool: p.pool().clone(),
        select: p.select_sql().into(),
        upsert: p.upsert_sql().into(),
    };
    let data: Arc<Vec<u8>> = Arc::new(payload(200));
    let max = *mode.concurrency().iter().max().expect("levels");
    let keys: Arc<Vec<[u8; 32]>> = Arc::new((0..max).map(|_| rand::random()).collect());
    for k in keys.iter() {
        RawPostgres::upsert_pool(&pg.pool, &pg.upsert, k, &data).await;
    }
    for &tasks in mode.concurrency() {
        let s = drive(tasks, mode.point_duration(), |i| {
            let (pg, keys) = (pg.clone(), keys.clone());
            move || {
                let (pg, keys) = (pg.clone(), keys.clone());
                async move {
                    std::hint::black_box(
                        RawPostgres::select_pool(&pg.pool, &pg.select, &keys[i]).await,
                    );
                }
            }
        })
        .await;
        record_conc(out, "load", "raw-pg-pool-SELECT", tasks, s);
        let s = drive(tasks, mode.point_duration(), |i| {
            let (pg, keys, d) = (pg.clone(), keys.clone(), data.clone());
            move || {
                let (pg, keys, d) = (pg.clone(), keys.clone(), d.clone());
                async move { RawPostgres::upsert_pool(&pg.pool, &pg.upsert, &keys[i], &d).await }
            }
        })
        .await;
        record_conc(out, "save", "raw-pg-pool-upsert", tasks, s);
    }
    p.close().await;
}

/// The pool-side PostgreSQL baseline, shareable between tasks.
#[derive(Clone)]
struct RawPg {
    pool: sqlx::PgPool,
    select: Arc<str>,
    upsert: Arc<str>,
}

/// The MySQL primary-key baselines through a pool like the store's
/// (10 connections) at each concurrency level.
async fn mysql_concurrency(mode: Mode, out: &Path) {
    let m = match RawMySql::new().await {
        Ok(m) => m,
        Err(e) if mode != Mode::Ci => {
            eprintln!("skipping the MySQL baseline: {e}");
            return;
        }
        Err(e) => panic!("raw mysql: {e}"),
    };
    let pool = m.pool().clone();
    let select: Arc<str> = m.select_sql().into();
    let upsert: Arc<str> = m.upsert_sql().into();
    let data: Arc<Vec<u8>> = Arc::new(payload(200));
    let max = *mode.concurrency().iter().max().expect("levels");
    let keys: Arc<Vec<[u8; 32]>> = Arc::new((0..max).map(|_| rand::random()).collect());
    for k in keys.iter() {
        RawMySql::upsert_pool(&pool, &upsert, k, &data).await;
    }
    for &tasks in mode.concurrency() {
        let s = drive(tasks, mode.point_duration(), |i| {
            let (pool, sql, keys) = (pool.clone(), select.clone(), keys.clone());
            move || {
                let (pool, sql, keys) = (pool.clone(), sql.clone(), keys.clone());
                async move {
                    std::hint::black_box(RawMySql::select_pool(&pool, &sql, &keys[i]).await);
                }
            }
        })
        .await;
        record_conc(out, "load", "raw-mysql-pool-SELECT", tasks, s);
        let s = drive(tasks, mode.point_duration(), |i| {
            let (pool, sql, keys, d) = (pool.clone(), upsert.clone(), keys.clone(), data.clone());
            move || {
                let (pool, sql, keys, d) = (pool.clone(), sql.clone(), keys.clone(), d.clone());
                async move { RawMySql::upsert_pool(&pool, &sql, &keys[i], &d).await }
            }
        })
        .await;
        record_conc(out, "save", "raw-mysql-pool-upsert", tasks, s);
    }
    m.close().await;
}

/// Times `f` over random bulk sessions until `ops` operations or 1.5 s.
async fn scale_point<F, Fut>(mode: Mode, live: usize, mut f: F) -> Summary
where
    F: FnMut(usize) -> Fut,
    Fut: Future<Output = Duration>,
{
    let start = Instant::now();
    let mut lat = Vec::new();
    while lat.len() < mode.scale_ops() && start.elapsed() < Duration::from_millis(1500) {
        let i = rand::random_range(0..live);
        lat.push(ns(f(i).await));
    }
    let busy: Duration = lat.iter().map(|&n| Duration::from_nanos(n)).sum();
    Summary::of(lat, busy).expect("samples")
}

/// Creates `n` sessions of `user` directly in the backend.
async fn user_sessions(backend: &Arc<dyn SessionBackend>, user: &str, n: usize) {
    let now = Timestamp::now_utc();
    stream::iter(0..n)
        .map(|_| {
            let key = SessionToken::generate().storage_key();
            let record = populate::record(now, payload(200), Some(user.to_owned()));
            async move { backend.create(&key, &record).await }
        })
        .buffer_unordered(32)
        .for_each(|r| {
            r.expect("create user session");
            async {}
        })
        .await;
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// Load and save latency at each scale level (bulk-populated), and
/// delete-by-user of 100 sessions at the level closest to 10^5.
async fn scale(fx: &Fixture, mode: Mode, out: &Path) -> Result<(), String> {
    let backend = fx.backend(false);
    let tag = session_store_benches::random_tag();
    let template = populate::record(Timestamp::now_utc(), payload(200), None);
    let levels = mode.scale_levels();
    let du_level = levels
        .iter()
        .copied()
        .min_by_key(|&l| l.abs_diff(100_000))
        .expect("levels");
    let mut have = 0;
    for &live in levels {
        let t = Instant::now();
        populate::populate(fx, &tag, have, live, &template).await?;
        have = live;
        let secs = t.elapsed().as_secs_f64();
        println!(
            "scale {:<14} populated {live:>8} sessions in {secs:.1} s",
            fx.target.id()
        );
        stats::append(
            out,
            &Record::Task {
                what: "populate".into(),
                id: fx.target.id().into(),
                items: live,
                seconds: secs,
                note: "cumulative level reached with the bulk path".into(),
            },
        );
        let load = scale_point(mode, live, |i| {
            let backend = backend.clone();
            let key = key_of(&tag, i);
            async move {
                let t = Instant::now();
                let found = backend
                    .load(&key, Timestamp::now_utc())
                    .await
                    .expect("load");
                let d = t.elapsed();
                assert!(
                    matches!(found, Some(Lookup::Session(_))),
                    "bulk session {i} missing"
                );
                d
            }
        })
        .await;
        let save = scale_point(mode, live, |i| {
            let backend = backend.clone();
            let key = key_of(&tag, i);
            async move {
                let now = Timestamp::now_utc();
                let Some(Lookup::Session(r)) = backend.load(&key, now).await.expect("load") else {
                    panic!("bulk session {i} missing");
                };
                let t = Instant::now();
                backend.save(&key, &r, now).await.expect("save");
                t.elapsed()
            }
        })
        .await;
        for (op, s) in [("load", load), ("save", save)] {
            println!(
                "scale {:<14} {op:<4} at {live:>8}: p50 {:>8.1} us  p99 {:>8.1} us",
                fx.target.id(),
                s.p50_ns / 1e3,
                s.p99_ns / 1e3
            );
            stats::append(
                out,
                &Record::Scale {
                    op: op.into(),
                    id: fx.target.id().into(),
                    live,
                    summary: s,
                },
            );
        }
        if live == du_level {
            let mut times = Vec::new();
            for rep in 0..5 {
                let user = format!("du-{tag}-{rep}");
                user_sessions(&backend, &user, 100).await;
                let t = Instant::now();
                let n = backend
                    .delete_user(&user, None, Timestamp::now_utc())
                    .await
                    .map_err(|e| e.to_string())?;
                times.push(t.elapsed().as_secs_f64());
                assert_eq!(n, 100, "delete_user removed {n} sessions");
            }
            let secs = median(times);
            println!(
                "scale {:<14} delete_user(100 sessions) among {live}: {:.2} ms",
                fx.target.id(),
                secs * 1e3
            );
            stats::append(
                out,
                &Record::Task {
                    what: "delete_user_100".into(),
                    id: fx.target.id().into(),
                    items: live,
                    seconds: secs,
                    note: "median of 5".into(),
                },
            );
        }
    }
    #[cfg(feature = "store-redis")]
    if let Some(store) = fx.redis() {
        populate::redis_unlink(store, &tag, have).await?;
    }
    Ok(())
}

/// Time to remove `cleanup_size` expired sessions with `cleanup_expired`
/// batches of 1000 (as `SessionManager::cleanup_expired` does).
async fn cleanup(fx: &Fixture, mode: Mode, out: &Path) -> Result<(), String> {
    let backend = fx.backend(false);
    let tag = session_store_benches::random_tag();
    let now = Timestamp::now_utc();
    let template = populate::record(now, payload(200), None);
    let n = mode.cleanup_size();
    populate::populate(fx, &tag, 0, n, &template).await?;
    // Every session is expired a year from now: the caller's clock decides.
    let later = now.saturating_add(Duration::from_secs(365 * 24 * 3600));
    let t = Instant::now();
    let mut removed = 0;
    loop {
        let k = backend
            .cleanup_expired(later, 1000)
            .await
            .map_err(|e| e.to_string())?;
        removed += k;
        if k < 1000 {
            break;
        }
    }
    let secs = t.elapsed().as_secs_f64();
    println!(
        "cleanup {:<14} removed {removed} expired sessions in {secs:.2} s",
        fx.target.id()
    );
    assert!(
        removed as usize > n,
        "cleanup removed only {removed} of {n}"
    );
    stats::append(
        out,
        &Record::Task {
            what: "cleanup".into(),
            id: fx.target.id().into(),
            items: removed as usize,
            seconds: secs,
            note: "batches of 1000".into(),
        },
    );
    Ok(())
}

fn part(name: &str) -> bool {
    match std::env::var("BENCH_PARTS") {
        Ok(list) if !list.trim().is_empty() => list.split(',').any(|x| x.trim() == name),
        _ => true,
    }
}

async fn open(target: Target, mode: Mode, out: &Path) -> Option<Fixture> {
    match Fixture::open(target).await {
        Ok(f) => Some(f),
        Err(reason) => {
            if mode == Mode::Ci {
                panic!("{} is not available in CI: {reason}", target.id());
            }
            eprintln!("skipping {}: {reason}", target.id());
            stats::append(
                out,
                &Record::Missing {
                    id: target.id().to_owned(),
                    reason,
                },
            );
            None
        }
    }
}

fn main() {
    let mode = Mode::from_env();
    let out = mode.out_dir().join("load.jsonl");
    let _ = std::fs::remove_file(&out);
    let rt: Runtime = session_store_benches::runtime();
    let targets = Target::selected();
    let fail = |what: &str, id: &str, e: String| {
        if mode == Mode::Ci {
            panic!("{what} {id}: {e}");
        }
        eprintln!("{what} {id} failed: {e}");
        stats::append(
            &out,
            &Record::Missing {
                id: format!("{what}:{id}"),
                reason: e,
            },
        );
    };
    rt.block_on(async {
        if part("concurrency") {
            for &target in &targets {
                let Some(fx) = open(target, mode, &out).await else {
                    continue;
                };
                if let Err(reason) =
                    session_store_benches::guarded(concurrency(&fx, mode, &out)).await
                {
                    fail("concurrency", target.id(), reason);
                }
                fx.teardown().await;
            }
            if targets.contains(&Target::Postgres) {
                pg_concurrency(mode, &out).await;
            }
            if targets.contains(&Target::Mysql) {
                mysql_concurrency(mode, &out).await;
            }
            if let Err(reason) =
                session_store_benches::guarded(raw_concurrency(mode, &out, &targets)).await
            {
                fail("concurrency", "raw", reason);
            }
        }
        if part("scale") {
            for &target in &targets {
                if matches!(target, Target::RedisCluster | Target::SledPeriodic) {
                    continue;
                }
                let Some(fx) = open(target, mode, &out).await else {
                    continue;
                };
                match session_store_benches::guarded(scale(&fx, mode, &out)).await {
                    Ok(Ok(())) => {}
                    Ok(Err(e)) | Err(e) => fail("scale", target.id(), e),
                }
                fx.teardown().await;
            }
        }
        if part("cleanup") {
            for &target in &targets {
                if matches!(
                    target,
                    Target::Redis | Target::RedisCluster | Target::SledPeriodic
                ) {
                    continue;
                }
                let Some(fx) = open(target, mode, &out).await else {
                    continue;
                };
                match session_store_benches::guarded(cleanup(&fx, mode, &out)).await {
                    Ok(Ok(())) => {}
                    Ok(Err(e)) | Err(e) => fail("cleanup", target.id(), e),
                }
                fx.teardown().await;
            }
        }
    });
}
