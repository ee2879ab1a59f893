//! Request-shaped sequences, the way a web handler uses a store: a load
//! followed by a save, a rotation or a touch, each task on its own session,
//! at 1, 8 and 64 concurrent tasks (p50 and p99 of the whole sequence).
//!
//! Paths: `SessionManager` (`<target>`), the tower-sessions adapter
//! (`<target>/tower`: `create` and `load` alone, `load` then `save`;
//! rotation is `cycle_id`, a delete and a create), the actix-session adapter
//! (`<target>/actix`: `load` then `update`, `update_ttl`, or a renewal's
//! delete and save), the adapter's typed in-memory path
//! (`memory-typed/tower`, `TowerSessionStore::in_memory`, with the in-memory
//! target, right before its peers), and the peer stores through the same tower-sessions
//! trait with the same data, right after our paths on the same server:
//! tower-sessions' `MemoryStore` (`peer-tower-memory`) and
//! tower-sessions-moka-store (`peer-tower-moka`) with the in-memory target,
//! tower-sessions-redis-store on one fred client (`peer-tower-redis`) with
//! the Redis target. The peers implement tower-sessions-core 0.14's trait
//! (the same shape as 0.15's). tower-sessions-sqlx-store cannot join this
//! dependency graph (even with only its `postgres` feature, cargo resolves
//! its optional `sqlx-sqlite`, whose libsqlite3-sys conflicts with
//! rusqlite's); it is measured out of tree, see `benches/notes.md`.
//!
//! Every series runs in each runtime [`Shape`]: `idle` (the harness's
//! runtime, nothing else running) and `busy` (2 workers shared with 2
//! CPU-bound tasks that spin 50 µs between yields).
//!
//! Cleanup: our stores live in the fixture's namespace; every session a
//! series creates (ours or a peer's) is deleted when the series ends, and
//! expires 10 minutes after it was written if a run is interrupted (the
//! Redis peer's keys are bare session ids, so no key pattern can name them).
//!
//! Environment: `BENCH_MODE`, `BENCH_TARGETS` (as for `ops`), `BENCH_OUT`.

use std::collections::HashMap;
use std::future::Future;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix_session::storage::{SessionKey, SessionStore as _};
use serde_json::Value;
use session_store_actix::ActixSessionStore;
use session_store_benches::stats::{self, Record, Summary};
use session_store_benches::{payload, Fixture, Mode, Shape, Target};
use session_store_core::{ClientMeta, RotateReason, SessionBackend};
use session_store_tower_sessions::TowerSessionStore;
use tokio::sync::Mutex;

/// Bytes of session data in every sequence (about 1 KiB, as in the peer
/// comparison of issue 17).
const DATA_BYTES: usize = 1024;

fn levels(mode: Mode) -> &'static [usize] {
    match mode {
        Mode::Ci => &[1, 8],
        Mode::Quick | Mode::Full => &[1, 8, 64],
    }
}

fn ns(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

/// What every series of one run shares.
struct Run<'a> {
    mode: Mode,
    shape: Shape,
    out: &'a Path,
}

impl Run<'_> {
    fn max_tasks(&self) -> usize {
        *levels(self.mode).iter().max().expect("levels")
    }
}

/// Runs `tasks` tasks for the mode's request point, each repeating the
/// sequence `make(i)` returns, next to the shape's background load; every
/// sequence's latency is recorded.
async fn drive<F, Fut>(run: &Run<'_>, tasks: usize, make: impl Fn(usize) -> F) -> Summary
where
    F: FnMut() -> Fut + Send + 'static,
    Fut: Future<Output = ()> + Send,
{
    let load = run.shape.start_load();
    let start = Instant::now();
    let deadline = start + run.mode.request_point();
    let handles: Vec<_> = (0..tasks)
        .map(|i| {
            let mut op = make(i);
            tokio::spawn(async move {
                let mut lat = Vec::with_capacity(4096);
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
    let wall = start.elapsed();
    load.stop().await;
    Summary::of(all, wall).expect("at least one sequence")
}

fn record(run: &Run<'_>, sequence: &str, id: &str, tasks: usize, summary: Summary) {
    let shape = run.shape.id();
    println!(
        "request {shape:<4} {sequence:<11} {id:<22} {tasks:>3} tasks: {:>9.0} seq/s  p50 {:>8.1} us  p99 {:>8.1} us",
        summary.ops_per_sec,
        summary.p50_ns / 1e3,
        summary.p99_ns / 1e3
    );
    stats::append(
        run.out,
        &Record::Request {
            shape: shape.to_owned(),
            sequence: sequence.to_owned(),
            id: id.to_owned(),
            tasks,
            summary,
        },
    );
}

/// Through `SessionManager`: each task holds its session's token.
async fn manager(fx: &Fixture, run: &Run<'_>) {
    let max = run.max_tasks();
    for (sequence, touch) in [
        ("load_save", false),
        ("load_rotate", false),
        ("load_touch", true),
    ] {
        let m = fx.manager(false, touch);
        let mut tokens = Vec::new();
        for _ in 0..max {
            let s = m
                .create(payload(DATA_BYTES), ClientMeta::default())
                .await
                .expect("create");
            tokens.push(Arc::new(Mutex::new(s.token().expose_secret().to_owned())));
        }
        for &tasks in levels(run.mode) {
            let s = drive(run, tasks, |i| {
                let (m, token) = (m.clone(), tokens[i].clone());
                move || {
                    let (m, token) = (m.clone(), token.clone());
                    async move {
                        let mut token = token.lock().await;
                        let mut s = m.load(&token).await.expect("load").expect("live");
                        match sequence {
                            "load_save" => {
                                let mut data = s.data().to_vec();
                                data[0] = data[0].wrapping_add(1);
                                s.set_data(data);
                                m.save(&mut s).await.expect("save");
                            }
                            "load_rotate" => {
                                m.rotate(&mut s, RotateReason::PrivilegeChange)
                                    .await
                                    .expect("rotate");
                                *token = s.token().expose_secret().to_owned();
                            }
                            _ => {}
                        }
                    }
                }
            })
            .await;
            record(run, sequence, fx.target.id(), tasks, s);
            // Its baseline right after it, on the same database.
            #[cfg(feature = "store-sqlite")]
            if sequence == "load_save" && tasks == 1 {
                if let Err(reason) = raw_sqlite(fx, run).await {
                    fail(run, "raw-rusqlite", reason);
                }
            }
        }
    }
}

/// `raw-rusqlite`: the baseline of the SQLite store's load → save. The
/// store's own `load` SELECT and common `save` UPDATE (`load` and
/// `save_same_owner` in `store-sqlite/src/schema.rs`), run by rusqlite on
/// the calling thread on one connection to the fixture's database file and
/// table, on a session the store created (1 KiB of data, the same change of
/// one byte per save as the manager series), 1 task. The connection is set
/// up as the store's: WAL (a property of the file), `synchronous=NORMAL`,
/// no automatic checkpoint inside a commit (the store checkpoints on its own
/// threads; the log is checkpointed after the series, outside the timing).
#[cfg(feature = "store-sqlite")]
async fn raw_sqlite(fx: &Fixture, run: &Run<'_>) -> Result<(), String> {
    use rusqlite::params;
    use session_store_core::Timestamp;
    let Some((path, table)) = fx.sqlite() else {
        return Ok(());
    };
    let err = |e: rusqlite::Error| format!("raw-rusqlite: {e}");
    let m = fx.manager(false, false);
    let s = m
        .create(payload(DATA_BYTES), ClientMeta::default())
        .await
        .map_err(|e| e.to_string())?;
    let key = s.storage_key().as_bytes().to_vec();
    let conn = rusqlite::Connection::open(path).map_err(err)?;
    conn.busy_timeout(Duration::from_secs(10)).map_err(err)?;
    conn.execute_batch("PRAGMA synchronous = NORMAL; PRAGMA wal_autocheckpoint = 0")
        .map_err(err)?;
    let select = session_store_benches::raw::sqlite_store_load_sql(table);
    let update = session_store_benches::raw::sqlite_store_save_sql(table);
    let conn = Arc::new(std::sync::Mutex::new(conn));
    let idle = session_store_core::Policy::default().idle_timeout;
    let idle_ms = i64::try_from(idle.as_millis()).unwrap_or(i64::MAX);
    let summary = drive(run, 1, |_| {
        let (conn, key, select, update) =
            (conn.clone(), key.clone(), select.clone(), update.clone());
        move || {
            let (conn, key, select, update) =
                (conn.clone(), key.clone(), select.clone(), update.clone());
            async move {
                let conn = conn.lock().expect("raw connection");
                let now = Timestamp::now_utc().as_millis();
                type Row = (i64, Option<String>, i64, Option<i64>, i64, Vec<u8>, Vec<u8>);
                let (version, user, created, auth, absolute, meta, mut data): Row = conn
                    .prepare_cached(&select)
                    .and_then(|mut st| {
                        st.query_row(params![&key, now], |r| {
                            Ok((
                                r.get(1)?,
                                r.get(2)?,
                                r.get(3)?,
                                r.get(5)?,
                                r.get(7)?,
                                r.get(8)?,
                                r.get(9)?,
                            ))
                        })
                    })
                    .expect("raw select");
                data[0] = data[0].wrapping_add(1);
                let idle_deadline = now.saturating_add(idle_ms).min(absolute);
                let changed = conn
                    .prepare_cached(&update)
                    .and_then(|mut st| {
                        st.execute(params![
                            &key,
                            version,
                            version + 1,
                            user,
                            created,
                            now,
                            auth,
                            idle_deadline,
                            absolute,
                            meta,
                            data,
                            idle_deadline,
                            now
                        ])
                    })
                    .expect("raw update");
                assert_eq!(changed, 1, "raw update matched no row");
            }
        }
    })
    .await;
    record(run, "load_save", "raw-rusqlite", 1, summary);
    let conn = conn.lock().map_err(|e| e.to_string())?;
    conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))
        .map_err(err)
}

/// The data of every tower-sessions record: about 1 KiB and a counter.
fn tower_data() -> HashMap<String, Value> {
    HashMap::from([
        ("blob".to_owned(), Value::String("x".repeat(DATA_BYTES))),
        ("n".to_owned(), Value::from(0u64)),
    ])
}

/// When a record written by the benchmark expires: long after a series,
/// soon after an interrupted run.
fn tower_expiry() -> time::OffsetDateTime {
    time::OffsetDateTime::now_utc() + time::Duration::minutes(10)
}

/// Through a tower-sessions store, for each version of the trait (ours over
/// `fx` and tower-sessions' `MemoryStore` implement 0.15's, the other peers
/// 0.14's; the record and the calls are the same): `create` alone, `load`
/// alone, load then save (one changed field), or load then `cycle_id`
/// (delete and create). Every session a series created is deleted after it.
macro_rules! tower_path {
    ($name:ident, $tower:ident) => {
        async fn $name<S>(store: S, id: &str, run: &Run<'_>)
        where
            S: $tower::SessionStore + Clone,
        {
            use $tower::session::{Id, Record};
            let record = || Record {
                id: Id::default(),
                data: tower_data(),
                expiry_date: tower_expiry(),
            };
            let max = run.max_tasks();
            for sequence in ["create", "load", "load_save", "load_rotate"] {
                let mut ids = Vec::new();
                let mut made = Vec::new();
                for _ in 0..max {
                    let mut r = record();
                    store.create(&mut r).await.expect("create");
                    ids.push(Arc::new(Mutex::new(r.id)));
                    made.push(Arc::new(Mutex::new(Vec::<Id>::new())));
                }
                for &tasks in levels(run.mode) {
                    let s = drive(run, tasks, |i| {
                        let (store, id, made) = (store.clone(), ids[i].clone(), made[i].clone());
                        move || {
                            let (store, id, made) = (store.clone(), id.clone(), made.clone());
                            async move {
                                if sequence == "create" {
                                    let mut r = record();
                                    store.create(&mut r).await.expect("create");
                                    made.lock().await.push(r.id);
                                    return;
                                }
                                let mut id = id.lock().await;
                                let mut r = store.load(&id).await.expect("load").expect("live");
                                match sequence {
                                    "load_save" => {
                                        let n = r.data["n"].as_u64().unwrap_or(0);
                                        r.data.insert("n".into(), Value::from(n + 1));
                                        store.save(&r).await.expect("save");
                                    }
                                    "load_rotate" => {
                                        store.delete(&id).await.expect("delete");
                                        r.id = Id::default();
                                        store.create(&mut r).await.expect("create");
                                        *id = r.id;
                                    }
                                    _ => {}
                                }
                            }
                        }
                    })
                    .await;
                    record_point(run, sequence, id, tasks, s);
                    for m in &made {
                        for made in std::mem::take(&mut *m.lock().await) {
                            store.delete(&made).await.expect("delete");
                        }
                    }
                }
                for id in &ids {
                    let id = *id.lock().await;
                    store.delete(&id).await.expect("delete");
                }
            }
        }
    };
}

tower_path!(tower, tower_sessions);
tower_path!(tower_014, tower_sessions_core_014);

/// [`record`] under another name, for the macro (whose `record` is the
/// record maker).
fn record_point(run: &Run<'_>, sequence: &str, id: &str, tasks: usize, summary: Summary) {
    record(run, sequence, id, tasks, summary);
}

/// Through the actix-session adapter: load then update, load then
/// `update_ttl`, or load then a renewal (delete and save).
async fn actix(backend: Arc<dyn SessionBackend>, id: &str, run: &Run<'_>) {
    let store = ActixSessionStore::new(backend);
    let ttl = actix_web::cookie::time::Duration::minutes(30);
    let max = run.max_tasks();
    let state = || {
        HashMap::from([
            ("blob".to_owned(), format!("{:?}", "x".repeat(DATA_BYTES))),
            ("n".to_owned(), "0".to_owned()),
        ])
    };
    for sequence in ["load_save", "load_rotate", "load_touch"] {
        let mut keys = Vec::new();
        for _ in 0..max {
            let k = store.save(state(), &ttl).await.expect("save");
            keys.push(Arc::new(Mutex::new(k.as_ref().to_owned())));
        }
        for &tasks in levels(run.mode) {
            let s = drive(run, tasks, |i| {
                let (store, key) = (store.clone(), keys[i].clone());
                move || {
                    let (store, key) = (store.clone(), key.clone());
                    async move {
                        let mut key = key.lock().await;
                        let k = || SessionKey::try_from(key.clone()).expect("key");
                        let mut st = store.load(&k()).await.expect("load").expect("live");
                        match sequence {
                            "load_save" => {
                                let n: u64 = st["n"].parse().unwrap_or(0);
                                st.insert("n".into(), (n + 1).to_string());
                                store.update(k(), st, &ttl).await.expect("update");
                            }
                            "load_rotate" => {
                                store.delete(&k()).await.expect("delete");
                                let new = store.save(st, &ttl).await.expect("save");
                                *key = new.as_ref().to_owned();
                            }
                            _ => store.update_ttl(&k(), &ttl).await.expect("update_ttl"),
                        }
                    }
                }
            })
            .await;
            record(run, sequence, id, tasks, s);
        }
        for key in &keys {
            let key = SessionKey::try_from(key.lock().await.clone()).expect("key");
            store.delete(&key).await.expect("delete");
        }
    }
}

/// tower-sessions-redis-store on one fred client (ours uses one multiplexed
/// connection too), on the Redis server of the `redis` target.
async fn redis_peer(run: &Run<'_>) -> Result<(), String> {
    use tower_sessions_redis_store::fred::prelude::{ClientLike as _, Config};
    use tower_sessions_redis_store::fred::types::Builder;
    let config =
        Config::from_url(&session_store_benches::redis_url()).map_err(|e| e.to_string())?;
    let client = Builder::from_config(config)
        .build()
        .map_err(|e| e.to_string())?;
    client.init().await.map_err(|e| e.to_string())?;
    tower_014(
        tower_sessions_redis_store::RedisStore::new(client.clone()),
        "peer-tower-redis",
        run,
    )
    .await;
    client.quit().await.map_err(|e| e.to_string())
}

/// Runs a peer, recording it as missing (failing in CI) when it fails.
async fn peer(run: &Run<'_>, id: &str, fut: impl Future<Output = Result<(), String>>) {
    let result = session_store_benches::guarded(fut).await.and_then(|r| r);
    if let Err(reason) = result {
        fail(run, id, reason);
    }
}

/// A part that could not run: fatal in CI, a `missing` record otherwise.
fn fail(run: &Run<'_>, id: &str, reason: String) {
    if run.mode == Mode::Ci {
        panic!("requests {id}: {reason}");
    }
    eprintln!("requests {id} failed: {reason}");
    stats::append(
        run.out,
        &Record::Missing {
            id: format!("requests:{id}:{}", run.shape.id()),
            reason,
        },
    );
}

async fn run_target(fx: &Fixture, run: &Run<'_>) {
    let t = fx.target.id();
    manager(fx, run).await;
    tower(
        TowerSessionStore::new(fx.backend(false)),
        &format!("{t}/tower"),
        run,
    )
    .await;
    actix(fx.backend(false), &format!("{t}/actix"), run).await;
}

/// The peers compared with `target`, run right after it.
async fn run_peers(target: Target, run: &Run<'_>) {
    match target {
        Target::Memory => {
            // Our typed in-memory path, next to the peers it is compared with.
            tower(TowerSessionStore::in_memory(), "memory-typed/tower", run).await;
            peer(run, "peer-tower-memory", async {
                tower(
                    tower_sessions::MemoryStore::default(),
                    "peer-tower-memory",
                    run,
                )
                .await;
                Ok(())
            })
            .await;
            peer(run, "peer-tower-moka", async {
                let store = tower_sessions_moka_store::MokaStore::new(Some(100_000));
                tower_014(store, "peer-tower-moka", run).await;
                Ok(())
            })
            .await;
        }
        Target::Redis => peer(run, "peer-tower-redis", redis_peer(run)).await,
        _ => {}
    }
}

fn main() {
    let mode = Mode::from_env();
    let out = mode.out_dir().join("requests.jsonl");
    let _ = std::fs::remove_file(&out);
    let targets = Target::selected();
    for shape in Shape::ALL {
        let run = Run {
            mode,
            shape,
            out: &out,
        };
        let rt = shape.runtime();
        rt.block_on(async {
            for &target in &targets {
                let fx = match Fixture::open(target).await {
                    Ok(fx) => fx,
                    Err(reason) => {
                        fail(&run, target.id(), reason);
                        continue;
                    }
                };
                if let Err(reason) = session_store_benches::guarded(run_target(&fx, &run)).await {
                    fail(&run, target.id(), reason);
                }
                fx.teardown().await;
                run_peers(target, &run).await;
            }
        });
    }
}
