//! Request-shaped sequences, the way a web handler uses a store: a load
//! followed by a save, a rotation or a touch, each task on its own session,
//! at 1, 8 and 64 concurrent tasks (p50 and p99 of the whole sequence).
//!
//! Paths: `SessionManager` (`<target>`), the tower-sessions adapter
//! (`<target>/tower`: `load` then `save`; rotation is `cycle_id`, a delete
//! and a create), the actix-session adapter (`<target>/actix`: `load` then
//! `update`, `update_ttl`, or a renewal's delete and save), and
//! tower-sessions' own `MemoryStore` as the peer (`peer-tower-memory`),
//! through the same trait with the same payload.
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
use session_store_benches::{payload, Fixture, Mode, Target};
use session_store_core::{ClientMeta, RotateReason, SessionBackend};
use session_store_tower_sessions::TowerSessionStore;
use tokio::sync::Mutex;
use tower_sessions::session::{Id, Record as TowerRecord};

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

/// Runs `tasks` tasks for `dur`, each repeating the sequence `make(i)`
/// returns; every sequence's latency is recorded.
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
    Summary::of(all, start.elapsed()).expect("at least one sequence")
}

fn record(out: &Path, sequence: &str, id: &str, tasks: usize, summary: Summary) {
    println!(
        "request {sequence:<11} {id:<22} {tasks:>3} tasks: {:>9.0} seq/s  p50 {:>8.1} us  p99 {:>8.1} us",
        summary.ops_per_sec,
        summary.p50_ns / 1e3,
        summary.p99_ns / 1e3
    );
    stats::append(
        out,
        &Record::Request {
            sequence: sequence.to_owned(),
            id: id.to_owned(),
            tasks,
            summary,
        },
    );
}

/// Through `SessionManager`: each task holds its session's token.
async fn manager(fx: &Fixture, mode: Mode, out: &Path) {
    let max = *levels(mode).iter().max().expect("levels");
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
        for &tasks in levels(mode) {
            let s = drive(tasks, mode.point_duration(), |i| {
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
            record(out, sequence, fx.target.id(), tasks, s);
        }
    }
}

fn tower_record() -> TowerRecord {
    TowerRecord {
        id: Id::default(),
        data: HashMap::from([
            ("blob".to_owned(), Value::String("x".repeat(DATA_BYTES))),
            ("n".to_owned(), Value::from(0u64)),
        ]),
        expiry_date: time::OffsetDateTime::now_utc() + time::Duration::minutes(30),
    }
}

/// Through a tower-sessions store (ours over `fx`, or the peer): load then
/// save (one changed field), or load then `cycle_id` (delete and create).
async fn tower<S>(store: S, id: &str, mode: Mode, out: &Path)
where
    S: tower_sessions::SessionStore + Clone,
{
    let max = *levels(mode).iter().max().expect("levels");
    for sequence in ["load_save", "load_rotate"] {
        let mut ids = Vec::new();
        for _ in 0..max {
            let mut r = tower_record();
            store.create(&mut r).await.expect("create");
            ids.push(Arc::new(Mutex::new(r.id)));
        }
        for &tasks in levels(mode) {
            let s = drive(tasks, mode.point_duration(), |i| {
                let (store, id) = (store.clone(), ids[i].clone());
                move || {
                    let (store, id) = (store.clone(), id.clone());
                    async move {
                        let mut id = id.lock().await;
                        let mut r = store.load(&id).await.expect("load").expect("live");
                        if sequence == "load_save" {
                            let n = r.data["n"].as_u64().unwrap_or(0);
                            r.data.insert("n".into(), Value::from(n + 1));
                            store.save(&r).await.expect("save");
                        } else {
                            store.delete(&id).await.expect("delete");
                            r.id = Id::default();
                            store.create(&mut r).await.expect("create");
                            *id = r.id;
                        }
                    }
                }
            })
            .await;
            record(out, sequence, id, tasks, s);
        }
    }
}

/// Through the actix-session adapter: load then update, load then
/// `update_ttl`, or load then a renewal (delete and save).
async fn actix(backend: Arc<dyn SessionBackend>, id: &str, mode: Mode, out: &Path) {
    let store = ActixSessionStore::new(backend);
    let ttl = actix_web::cookie::time::Duration::minutes(30);
    let max = *levels(mode).iter().max().expect("levels");
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
        for &tasks in levels(mode) {
            let s = drive(tasks, mode.point_duration(), |i| {
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
            record(out, sequence, id, tasks, s);
        }
    }
}

async fn run_target(fx: &Fixture, mode: Mode, out: &Path) {
    let t = fx.target.id();
    manager(fx, mode, out).await;
    tower(
        TowerSessionStore::new(fx.backend(false)),
        &format!("{t}/tower"),
        mode,
        out,
    )
    .await;
    actix(fx.backend(false), &format!("{t}/actix"), mode, out).await;
}

fn main() {
    let mode = Mode::from_env();
    let out = mode.out_dir().join("requests.jsonl");
    let _ = std::fs::remove_file(&out);
    let rt = session_store_benches::runtime();
    let targets = Target::selected();
    rt.block_on(async {
        let fail = |id: &str, reason: String| {
            if mode == Mode::Ci {
                panic!("requests {id}: {reason}");
            }
            eprintln!("requests {id} failed: {reason}");
            stats::append(
                &out,
                &Record::Missing {
                    id: format!("requests:{id}"),
                    reason,
                },
            );
        };
        if targets.contains(&Target::Memory) {
            let peer = tower_sessions::MemoryStore::default();
            if let Err(reason) =
                session_store_benches::guarded(tower(peer, "peer-tower-memory", mode, &out)).await
            {
                fail("peer-tower-memory", reason);
            }
        }
        for &target in &targets {
            let fx = match Fixture::open(target).await {
                Ok(fx) => fx,
                Err(reason) => {
                    fail(target.id(), reason);
                    continue;
                }
            };
            if let Err(reason) = session_store_benches::guarded(run_target(&fx, mode, &out)).await {
                fail(target.id(), reason);
            }
            fx.teardown().await;
        }
    });
}
