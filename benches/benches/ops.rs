//! Per-operation latency of every backend through the `SessionManager`, plain
//! and encrypted, with 200 B and 4 KiB payloads, next to the raw baselines.
//!
//! One criterion group per operation and payload (`load-200B`, ...), so the
//! HTML report (target/criterion) plots the backends side by side. Each timed
//! operation is also recorded on its own; the last `samples` batches of each
//! benchmark (criterion's measurement phase) go to `ops.jsonl` as p50/p99.
//!
//! Environment: `BENCH_MODE` (ci, quick, full), `BENCH_TARGETS` (comma-separated
//! target ids to run; default all), `BENCH_OUT` (result directory).

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::measurement::WallTime;
use criterion::{BenchmarkGroup, Criterion};
use futures::stream::{self, StreamExt as _};
use session_store_benches::raw::{RawAes, RawMySql, RawPostgres, RawRedis, RawSled, RawSqlite};
use session_store_benches::stats::{self, Record, Summary};
use session_store_benches::{payload, populate, Fixture, Mode, Target, PAYLOADS};
use session_store_core::{
    ClientMeta, RotateReason, Session, SessionBackend, SessionManager, SessionToken, Timestamp,
};
use tokio::runtime::Runtime;

/// The measured operations, in report order.
const OPS: [&str; 10] = [
    "backend_load",
    "backend_save",
    "create",
    "load",
    "load_touch",
    "save",
    "rotate",
    "delete",
    "list_user",
    "delete_user",
];

/// Sessions per user for `list_user` and `delete_user`.
const USER_SESSIONS: usize = 10;

/// A timed routine: runs `iters` operations, pushes each latency (ns) and
/// returns the total elapsed time.
type Routine<'a> = Box<dyn FnMut(u64, &mut Vec<u64>) -> Duration + 'a>;

/// Builds a routine (its setup runs only if criterion selects the benchmark).
type MakeRoutine<'a> = Box<dyn FnOnce() -> Routine<'a> + 'a>;

/// `rt.block_on(fut)`, failing (as a panic, reported as a failed benchmark)
/// if `fut` hangs for a minute, so one stuck backend cannot stall the run.
fn block_on<F: std::future::Future>(rt: &Runtime, fut: F) -> F::Output {
    rt.block_on(async {
        tokio::time::timeout(Duration::from_secs(60), fut)
            .await
            .expect("a benchmark step hung for 60 s")
    })
}

fn ns(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

/// Creates `n` sessions through the manager, 32 at a time.
async fn sessions(m: &SessionManager, n: usize, data: &[u8]) -> Vec<Session> {
    stream::iter(0..n)
        .map(|_| m.create(data.to_vec(), ClientMeta::default()))
        .buffer_unordered(32)
        .map(|r| r.expect("create session"))
        .collect()
        .await
}

/// Creates `n` sessions of `user` directly in the backend, 32 at a time.
async fn user_sessions(backend: &Arc<dyn SessionBackend>, user: &str, n: usize, data: &[u8]) {
    let now = Timestamp::now_utc();
    stream::iter(0..n)
        .map(|_| {
            let key = SessionToken::generate().storage_key();
            let record = populate::record(now, data.to_vec(), Some(user.to_owned()));
            async move { backend.create(&key, &record).await }
        })
        .buffer_unordered(32)
        .for_each(|r| {
            r.expect("create user session");
            async {}
        })
        .await;
}

/// The routine for `op` on a fixture (setup is done here, once).
fn store_routine<'a>(
    rt: &'a Runtime,
    fx: &'a Fixture,
    enc: bool,
    op: &'static str,
    data: &'a [u8],
) -> Routine<'a> {
    let m = fx.manager(enc, op == "load_touch");
    let backend = fx.backend(enc);
    let tag = session_store_benches::random_tag();
    match op {
        "backend_load" | "backend_save" => {
            // The backend alone: no token parsing, hashing or policy.
            let key = SessionToken::generate().storage_key();
            let mut record = populate::record(Timestamp::now_utc(), data.to_vec(), None);
            block_on(rt, backend.create(&key, &record)).expect("create");
            let save = op == "backend_save";
            Box::new(move |iters, lat| {
                block_on(rt, async {
                    let start = Instant::now();
                    for _ in 0..iters {
                        let t = Instant::now();
                        if save {
                            record.version = backend
                                .save(&key, &record, Timestamp::now_utc())
                                .await
                                .expect("save");
                        } else {
                            let found = backend
                                .load(&key, Timestamp::now_utc())
                                .await
                                .expect("load");
                            assert!(found.is_some(), "session missing");
                            black_box(found);
                        }
                        lat.push(ns(t.elapsed()));
                    }
                    start.elapsed()
                })
            })
        }
        "create" => Box::new(move |iters, lat| {
            let d = block_on(rt, async {
                let start = Instant::now();
                for _ in 0..iters {
                    let t = Instant::now();
                    let s = m
                        .create(data.to_vec(), ClientMeta::default())
                        .await
                        .expect("create");
                    lat.push(ns(t.elapsed()));
                    black_box(s);
                }
                start.elapsed()
            });
            // Keep the store small between batches (untimed).
            block_on(rt, backend.delete_all()).expect("delete_all");
            d
        }),
        "load" | "load_touch" => {
            let s = rt
                .block_on(m.create(data.to_vec(), ClientMeta::default()))
                .expect("create");
            let token = s.token().expose_secret().to_owned();
            Box::new(move |iters, lat| {
                block_on(rt, async {
                    let start = Instant::now();
                    for _ in 0..iters {
                        let t = Instant::now();
                        let s = m.load(&token).await.expect("load").expect("live session");
                        lat.push(ns(t.elapsed()));
                        black_box(s);
                    }
                    start.elapsed()
                })
            })
        }
        "save" => {
            let mut s = rt
                .block_on(m.create(data.to_vec(), ClientMeta::default()))
                .expect("create");
            Box::new(move |iters, lat| {
                block_on(rt, async {
                    let start = Instant::now();
                    for _ in 0..iters {
                        let t = Instant::now();
                        m.save(&mut s).await.expect("save");
                        lat.push(ns(t.elapsed()));
                    }
                    start.elapsed()
                })
            })
        }
        "rotate" => {
            let mut s = rt
                .block_on(m.create(data.to_vec(), ClientMeta::default()))
                .expect("create");
            let user = format!("rot-{tag}");
            block_on(rt, m.rotate(&mut s, RotateReason::Login { user_id: user })).expect("login");
            Box::new(move |iters, lat| {
                block_on(rt, async {
                    let start = Instant::now();
                    for _ in 0..iters {
                        let t = Instant::now();
                        m.rotate(&mut s, RotateReason::PrivilegeChange)
                            .await
                            .expect("rotate");
                        lat.push(ns(t.elapsed()));
                    }
                    start.elapsed()
                })
            })
        }
        "delete" => Box::new(move |iters, lat| {
            let victims = block_on(rt, sessions(&m, iters as usize, data));
            block_on(rt, async {
                let start = Instant::now();
                for s in &victims {
                    let t = Instant::now();
                    m.logout(s).await.expect("logout");
                    lat.push(ns(t.elapsed()));
                }
                start.elapsed()
            })
        }),
        "list_user" => {
            let user = format!("list-{tag}");
            block_on(rt, user_sessions(&backend, &user, USER_SESSIONS, data));
            Box::new(move |iters, lat| {
                block_on(rt, async {
                    let start = Instant::now();
                    for _ in 0..iters {
                        let t = Instant::now();
                        let list = m.list_devices(&user, None).await.expect("list");
                        lat.push(ns(t.elapsed()));
                        assert_eq!(list.len(), USER_SESSIONS);
                    }
                    start.elapsed()
                })
            })
        }
        "delete_user" => {
            let mut round = 0u64;
            Box::new(move |iters, lat| {
                round += 1;
                let users: Vec<String> = (0..iters)
                    .map(|i| format!("du-{tag}-{round}-{i}"))
                    .collect();
                block_on(
                    rt,
                    stream::iter(&users).for_each_concurrent(4, |u| {
                        user_sessions(&backend, u, USER_SESSIONS, data)
                    }),
                );
                block_on(rt, async {
                    let start = Instant::now();
                    for u in &users {
                        let t = Instant::now();
                        let n = m.logout_everywhere(u).await.expect("delete_user");
                        lat.push(ns(t.elapsed()));
                        assert_eq!(n, USER_SESSIONS as u64);
                    }
                    start.elapsed()
                })
            })
        }
        other => unreachable!("unknown op {other}"),
    }
}

/// The raw baselines that exist in this run.
struct Raw {
    redis: Option<RawRedis>,
    cluster: Option<RawRedis>,
    postgres: Option<tokio::sync::Mutex<RawPostgres>>,
    mysql: Option<tokio::sync::Mutex<RawMySql>>,
    sqlite: RawSqlite,
    sled: RawSled,
}

/// Read baselines (group `backend_load-*`) and write baselines (group `backend_save-*`).
fn raw_routines<'a>(
    rt: &'a Runtime,
    raw: &'a Raw,
    op: &str,
    data: &'a [u8],
) -> Vec<(&'static str, MakeRoutine<'a>)> {
    let mut out: Vec<(&'static str, MakeRoutine<'a>)> = Vec::new();
    let key: [u8; 32] = rand::random();
    let read = op == "backend_load";
    let timed = |f: &mut dyn FnMut(), iters: u64, lat: &mut Vec<u64>| {
        let start = Instant::now();
        for _ in 0..iters {
            let t = Instant::now();
            f();
            lat.push(ns(t.elapsed()));
        }
        start.elapsed()
    };
    for (id, r) in [
        (
            if read {
                "raw-redis-GET"
            } else {
                "raw-redis-SET-PX"
            },
            &raw.redis,
        ),
        (
            if read {
                "raw-redis-cluster-GET"
            } else {
                "raw-redis-cluster-SET-PX"
            },
            &raw.cluster,
        ),
    ] {
        let Some(r) = r else { continue };
        out.push((
            id,
            Box::new(move || {
                let k = r.key(data.len() as u64);
                block_on(rt, r.set(&k, data));
                Box::new(move |iters, lat| {
                    block_on(rt, async {
                        let start = Instant::now();
                        for _ in 0..iters {
                            let t = Instant::now();
                            if read {
                                black_box(r.get(&k).await);
                            } else {
                                r.set(&k, data).await;
                            }
                            lat.push(ns(t.elapsed()));
                        }
                        start.elapsed()
                    })
                })
            }),
        ));
    }
    if let Some(pg) = &raw.postgres {
        for dedicated in [false, true] {
            let id = match (read, dedicated) {
                (true, false) => "raw-pg-pool-SELECT",
                (true, true) => "raw-pg-conn-SELECT",
                (false, false) => "raw-pg-pool-upsert",
                (false, true) => "raw-pg-conn-upsert",
            };
            out.push((
                id,
                Box::new(move || {
                    block_on(rt, async {
                        let mut p = pg.lock().await;
                        p.upsert_conn(&key, data).await;
                    });
                    Box::new(move |iters, lat| {
                        block_on(rt, async {
                            let mut p = pg.lock().await;
                            let pool = p.pool().clone();
                            let (sel, ups) = (p.select_sql().to_owned(), p.upsert_sql().to_owned());
                            let start = Instant::now();
                            for _ in 0..iters {
                                let t = Instant::now();
                                match (read, dedicated) {
                                    (true, false) => {
                                        black_box(
                                            RawPostgres::select_pool(&pool, &sel, &key).await,
                                        );
                                    }
                                    (true, true) => {
                                        black_box(p.select_conn(&key).await);
                                    }
                                    (false, false) => {
                                        RawPostgres::upsert_pool(&pool, &ups, &key, data).await
                                    }
                                    (false, true) => p.upsert_conn(&key, data).await,
                                }
                                lat.push(ns(t.elapsed()));
                            }
                            start.elapsed()
                        })
                    })
                }),
            ));
        }
    }
    if let Some(my) = &raw.mysql {
        for dedicated in [false, true] {
            let id = match (read, dedicated) {
                (true, false) => "raw-mysql-pool-SELECT",
                (true, true) => "raw-mysql-conn-SELECT",
                (false, false) => "raw-mysql-pool-upsert",
                (false, true) => "raw-mysql-conn-upsert",
            };
            out.push((
                id,
                Box::new(move || {
                    block_on(rt, async {
                        let mut m = my.lock().await;
                        m.upsert_conn(&key, data).await;
                    });
                    Box::new(move |iters, lat| {
                        block_on(rt, async {
                            let mut m = my.lock().await;
                            let pool = m.pool().clone();
                            let (sel, ups) = (m.select_sql().to_owned(), m.upsert_sql().to_owned());
                            let start = Instant::now();
                            for _ in 0..iters {
                                let t = Instant::now();
                                match (read, dedicated) {
                                    (true, false) => {
                                        black_box(RawMySql::select_pool(&pool, &sel, &key).await);
                                    }
                                    (true, true) => {
                                        black_box(m.select_conn(&key).await);
                                    }
                                    (false, false) => {
                                        RawMySql::upsert_pool(&pool, &ups, &key, data).await
                                    }
                                    (false, true) => m.upsert_conn(&key, data).await,
                                }
                                lat.push(ns(t.elapsed()));
                            }
                            start.elapsed()
                        })
                    })
                }),
            ));
        }
    }
    out.push((
        if read {
            "raw-rusqlite-SELECT"
        } else {
            "raw-rusqlite-upsert"
        },
        Box::new(move || {
            raw.sqlite.upsert(0, &key, data);
            Box::new(move |iters, lat| {
                // On the calling thread, inside the runtime like the stores.
                block_on(rt, async {
                    timed(
                        &mut || {
                            if read {
                                black_box(raw.sqlite.select(0, &key));
                            } else {
                                raw.sqlite.upsert(0, &key, data);
                            }
                        },
                        iters,
                        lat,
                    )
                })
            })
        }),
    ));
    if !read {
        out.push((
            "raw-rusqlite-store-UPDATE",
            Box::new(move || {
                raw.sqlite.store_row(&key, data);
                Box::new(move |iters, lat| {
                    block_on(rt, async {
                        timed(&mut || raw.sqlite.store_update(&key, data), iters, lat)
                    })
                })
            }),
        ));
    }
    out.push((
        if read {
            "raw-sled-get"
        } else {
            "raw-sled-insert"
        },
        Box::new(move || {
            raw.sled.insert(&key, data);
            Box::new(move |iters, lat| {
                block_on(rt, async {
                    timed(
                        &mut || {
                            if read {
                                black_box(raw.sled.get(&key));
                            } else {
                                raw.sled.insert(&key, data);
                            }
                        },
                        iters,
                        lat,
                    )
                })
            })
        }),
    ));
    if read {
        out.push((
            "raw-aes-gcm-enc+dec",
            Box::new(move || {
                let mut aes = RawAes::default();
                Box::new(move |iters, lat| {
                    timed(
                        &mut || {
                            black_box(aes.round_trip(data));
                        },
                        iters,
                        lat,
                    )
                })
            }),
        ));
    }
    out
}

/// Benchmarks one routine (built lazily, only if criterion's filter selects
/// it) and records its per-operation summary.
#[allow(clippy::too_many_arguments)]
fn run<'a>(
    group: &mut BenchmarkGroup<'_, WallTime>,
    mode: Mode,
    out: &std::path::Path,
    op: &str,
    payload: &str,
    id: &str,
    make: MakeRoutine<'a>,
) {
    let mut make = Some(make);
    let mut routine: Option<Routine<'a>> = None;
    let mut batches: Vec<(Vec<u64>, Duration)> = Vec::new();
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        group.bench_function(id, |b| {
            let r = routine.get_or_insert_with(|| (make.take().expect("built once"))());
            b.iter_custom(|iters| {
                let mut lat = Vec::with_capacity(usize::try_from(iters).unwrap_or(0).min(1 << 22));
                let d = r(iters, &mut lat);
                batches.push((lat, d));
                d
            });
        });
    }));
    drop(routine);
    if let Err(panic) = outcome {
        // Outside CI a failing benchmark is reported, not fatal to the run.
        if mode == Mode::Ci {
            std::panic::resume_unwind(panic);
        }
        let reason = panic
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| panic.downcast_ref::<&str>().map(|s| (*s).to_owned()))
            .unwrap_or_else(|| "panicked".into());
        eprintln!("benchmark {op}-{payload}/{id} failed: {reason}");
        stats::append(
            out,
            &Record::Missing {
                id: format!("{op}-{payload}/{id}"),
                reason: format!("the benchmark failed: {reason}"),
            },
        );
        return;
    }
    // criterion's measurement phase is the last `samples` calls.
    let keep = batches.len().min(mode.samples());
    let measured = &batches[batches.len() - keep..];
    let wall: Duration = measured.iter().map(|(_, d)| *d).sum();
    let samples: Vec<u64> = measured
        .iter()
        .flat_map(|(l, _)| l.iter().copied())
        .collect();
    if let Some(summary) = Summary::of(samples, wall) {
        stats::append(
            out,
            &Record::Op {
                op: op.to_owned(),
                payload: payload.to_owned(),
                id: id.to_owned(),
                summary,
            },
        );
    }
}

/// The PostgreSQL baseline (absent if the server is unreachable, outside CI).
fn postgres_raw(rt: &Runtime, mode: Mode) -> Option<tokio::sync::Mutex<RawPostgres>> {
    if !Target::selected().contains(&Target::Postgres) {
        return None;
    }
    match block_on(rt, RawPostgres::new()) {
        Ok(p) => Some(tokio::sync::Mutex::new(p)),
        Err(e) if mode != Mode::Ci => {
            eprintln!("skipping the PostgreSQL baselines: {e}");
            None
        }
        Err(e) => panic!("raw postgres: {e}"),
    }
}

/// The MySQL baseline (absent if the server is unreachable, outside CI).
fn mysql_raw(rt: &Runtime, mode: Mode) -> Option<tokio::sync::Mutex<RawMySql>> {
    if !Target::selected().contains(&Target::Mysql) {
        return None;
    }
    match block_on(rt, RawMySql::new()) {
        Ok(m) => Some(tokio::sync::Mutex::new(m)),
        Err(e) if mode != Mode::Ci => {
            eprintln!("skipping the MySQL baselines: {e}");
            None
        }
        Err(e) => panic!("raw mysql: {e}"),
    }
}

fn main() {
    let mode = Mode::from_env();
    let out = mode.out_dir().join("ops.jsonl");
    let _ = std::fs::remove_file(&out);
    let rt = session_store_benches::runtime();
    let mut c = Criterion::default()
        .warm_up_time(mode.warm_up())
        .measurement_time(mode.measurement())
        .sample_size(mode.samples())
        // criterion's plots estimate a density over every bootstrap resample:
        // 100k (the default) costs ~4 s of plotting per benchmark; 5k keeps
        // the confidence intervals and the HTML report at a tenth of that.
        .nresamples(5_000)
        .configure_from_args();

    let mut fixtures = Vec::new();
    for target in Target::selected() {
        match block_on(&rt, Fixture::open(target)) {
            Ok(f) => fixtures.push(f),
            Err(reason) => {
                if mode == Mode::Ci {
                    panic!("{} is not available in CI: {reason}", target.id());
                }
                eprintln!("skipping {}: {reason}", target.id());
                stats::append(
                    &out,
                    &Record::Missing {
                        id: target.id().to_owned(),
                        reason,
                    },
                );
            }
        }
    }
    let raw = Raw {
        redis: Target::selected()
            .contains(&Target::Redis)
            .then(|| block_on(&rt, RawRedis::single()).ok())
            .flatten(),
        cluster: Target::selected()
            .contains(&Target::RedisCluster)
            .then(|| block_on(&rt, RawRedis::cluster()).ok())
            .flatten(),
        postgres: postgres_raw(&rt, mode),
        mysql: mysql_raw(&rt, mode),
        sqlite: RawSqlite::new(1).expect("raw sqlite"),
        sled: RawSled::new().expect("raw sled"),
    };

    for (plabel, plen) in PAYLOADS {
        let data = payload(plen);
        for op in OPS {
            let mut group = c.benchmark_group(format!("{op}-{plabel}"));
            for fx in &fixtures {
                for enc in [false, true] {
                    if enc && !fx.target.with_encryption() {
                        continue;
                    }
                    let id = if enc {
                        format!("{}+enc", fx.target.id())
                    } else {
                        fx.target.id().to_owned()
                    };
                    let (rt, data) = (&rt, data.as_slice());
                    run(
                        &mut group,
                        mode,
                        &out,
                        op,
                        plabel,
                        &id,
                        Box::new(move || store_routine(rt, fx, enc, op, data)),
                    );
                }
            }
            if op == "backend_load" || op == "backend_save" {
                for (id, make) in raw_routines(&rt, &raw, op, &data) {
                    run(&mut group, mode, &out, op, plabel, id, make);
                }
            }
            group.finish();
        }
    }

    block_on(&rt, async {
        if let Some(r) = &raw.redis {
            r.cleanup().await;
        }
        if let Some(r) = &raw.cluster {
            r.cleanup().await;
        }
        if let Some(p) = raw.postgres {
            p.into_inner().close().await;
        }
        if let Some(m) = raw.mysql {
            m.into_inner().close().await;
        }
        for f in fixtures {
            f.teardown().await;
        }
    });
    c.final_summary();
}
