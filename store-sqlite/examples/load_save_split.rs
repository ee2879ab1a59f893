//! The request benchmark's SQLite load → save, split: the loop of
//! `benches/benches/requests.rs` (one spawned task on a multi-thread
//! runtime, the fixture's configuration, 64 sessions, 1 KiB of data, one
//! byte changed per save) through the manager and on the backend alone,
//! with the default 2 readers and with none, next to the store's own load
//! `SELECT` and save `UPDATE` by rusqlite on one connection to the same
//! file. Each sequence's load and save are timed apart too.
//!
//! `cargo run --release -p session-store-sqlite --example load_save_split [ROUNDS] [MS] [VARIANTS]`
//!
//! VARIANTS: comma-separated `manager`, `manager0`, `backend`, `backend0`
//! (`0`: no reader threads), `raw`; default `manager,backend,raw`. The
//! variants alternate within each round.
use std::sync::Arc;
use std::time::{Duration, Instant};

use rusqlite::{params, Connection};
use session_store_core::{ClientMeta, SessionBackend, SessionManager, SessionToken, Timestamp};
use session_store_sqlite::{SqliteConfig, SqliteStore};
use tokio::sync::Mutex;

fn payload(len: usize) -> Vec<u8> {
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

fn pct(v: &mut [u64]) -> (f64, f64, usize) {
    v.sort_unstable();
    let at = |q: f64| v[((v.len() - 1) as f64 * q) as usize] as f64 / 1e3;
    (at(0.5), at(0.99), v.len())
}

type Lat = Arc<std::sync::Mutex<(Vec<u64>, Vec<u64>)>>;

async fn drive<F, Fut>(point: Duration, mut op: F) -> Vec<u64>
where
    F: FnMut() -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send,
{
    let deadline = Instant::now() + point;
    tokio::spawn(async move {
        let mut lat = Vec::with_capacity(4096);
        loop {
            let t = Instant::now();
            op().await;
            lat.push(t.elapsed().as_nanos() as u64);
            if Instant::now() >= deadline {
                break;
            }
        }
        lat
    })
    .await
    .unwrap()
}

const SELECT: &str = "SELECT kind, version, user_id, created_at, last_seen_at, auth_time, idle_deadline, \
    absolute_deadline, meta, data, successor, sealed_token, expires_at FROM sessions WHERE key = ?1 AND expires_at > ?2";
const UPDATE: &str = "UPDATE sessions SET version = ?3, last_seen_at = ?6, auth_time = ?7, \
    idle_deadline = ?8, absolute_deadline = ?9, meta = ?10, data = ?11, expires_at = ?12 \
    WHERE key = ?1 AND kind = 0 AND version = ?2 AND expires_at > ?13 AND user_id IS ?4 AND created_at = ?5";

/// The columns the raw save needs: version, user, created, auth time,
/// absolute deadline, meta, data.
type Row = (i64, Option<String>, i64, Option<i64>, i64, Vec<u8>, Vec<u8>);

fn raw_select_update(conn: &Connection, key: &[u8], lat: &Lat) {
    let now = Timestamp::now_utc().as_millis();
    let t = Instant::now();
    let (version, user, created, auth, absd, meta, mut data): Row = conn
        .prepare_cached(SELECT)
        .unwrap()
        .query_row(params![key, now], |r| {
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
        .unwrap();
    let t1 = t.elapsed();
    data[0] = data[0].wrapping_add(1);
    let idle = (now + 1_800_000).min(absd);
    let t = Instant::now();
    let n = conn
        .prepare_cached(UPDATE)
        .unwrap()
        .execute(params![
            key,
            version,
            version + 1,
            user,
            created,
            now,
            auth,
            idle,
            absd,
            meta,
            data,
            idle,
            now
        ])
        .unwrap();
    let t2 = t.elapsed();
    assert_eq!(n, 1);
    let mut l = lat.lock().unwrap();
    l.0.push(t1.as_nanos() as u64);
    l.1.push(t2.as_nanos() as u64);
}

struct Fx {
    store: SqliteStore,
    m: SessionManager,
    tokens: Vec<String>,
    path: std::path::PathBuf,
}

fn open(rt: &tokio::runtime::Runtime, dir: &std::path::Path, name: &str, readers: usize) -> Fx {
    let path = dir.join(format!("{name}.db"));
    let store: SqliteStore = rt.block_on(async {
        let s = SqliteConfig::new(&path)
            .with_table("sessions")
            .with_readers(readers)
            .build()
            .await
            .unwrap();
        s.migrate().await.unwrap();
        s
    });
    let m = SessionManager::builder(Arc::new(store.clone()) as Arc<dyn SessionBackend>)
        .build()
        .unwrap();
    let tokens: Vec<String> = rt.block_on(async {
        let mut v = Vec::new();
        for _ in 0..64 {
            v.push(
                m.create(payload(1024), ClientMeta::default())
                    .await
                    .unwrap()
                    .token()
                    .expose_secret()
                    .to_owned(),
            );
        }
        v
    });
    Fx {
        store,
        m,
        tokens,
        path,
    }
}

fn main() {
    let rounds: usize = std::env::args().nth(1).map_or(4, |s| s.parse().unwrap());
    let point = Duration::from_millis(std::env::args().nth(2).map_or(200, |s| s.parse().unwrap()));
    let variants: Vec<String> = std::env::args()
        .nth(3)
        .map_or("manager,backend,raw".into(), |s| s)
        .split(',')
        .map(str::to_owned)
        .collect();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let fx2 = open(&rt, dir.path(), "r2", 2);
    let fx0 = open(&rt, dir.path(), "r0", 0);
    let raw = Arc::new(std::sync::Mutex::new(Connection::open(&fx2.path).unwrap()));
    raw.lock()
        .unwrap()
        .execute_batch("PRAGMA synchronous = NORMAL")
        .unwrap();
    let mut res: std::collections::BTreeMap<String, Vec<u64>> = Default::default();
    for round in 0..rounds {
        eprintln!(
            "round {round} load {}",
            std::fs::read_to_string("/proc/loadavg").unwrap().trim()
        );
        for v in &variants {
            let parts: Lat = Default::default();
            let lat = match v.as_str() {
                "manager" | "manager0" => {
                    let fx = if v == "manager" { &fx2 } else { &fx0 };
                    let (m, tok) = (fx.m.clone(), Arc::new(Mutex::new(fx.tokens[0].clone())));
                    let parts = parts.clone();
                    rt.block_on(drive(point, move || {
                        let (m, tok, parts) = (m.clone(), tok.clone(), parts.clone());
                        async move {
                            let token = tok.lock().await;
                            let t = Instant::now();
                            let mut s = m.load(&token).await.unwrap().unwrap();
                            let t1 = t.elapsed();
                            let mut d = s.data().to_vec();
                            d[0] = d[0].wrapping_add(1);
                            s.set_data(d);
                            let t = Instant::now();
                            m.save(&mut s).await.unwrap();
                            let t2 = t.elapsed();
                            let mut l = parts.lock().unwrap();
                            l.0.push(t1.as_nanos() as u64);
                            l.1.push(t2.as_nanos() as u64);
                        }
                    }))
                }
                "backend" | "backend0" => {
                    let fx = if v == "backend" { &fx2 } else { &fx0 };
                    let key = SessionToken::parse(&fx.tokens[1]).unwrap().storage_key();
                    let st = fx.store.clone();
                    let parts = parts.clone();
                    rt.block_on(drive(point, move || {
                        let (st, parts) = (st.clone(), parts.clone());
                        async move {
                            let now = Timestamp::now_utc();
                            let t = Instant::now();
                            let Some(session_store_core::Lookup::Session(mut r)) =
                                st.load(&key, now).await.unwrap()
                            else {
                                panic!()
                            };
                            let t1 = t.elapsed();
                            r.data[0] = r.data[0].wrapping_add(1);
                            let t = Instant::now();
                            let v = st.save(&key, &r, now).await.unwrap();
                            let t2 = t.elapsed();
                            std::hint::black_box(v);
                            let mut l = parts.lock().unwrap();
                            l.0.push(t1.as_nanos() as u64);
                            l.1.push(t2.as_nanos() as u64);
                        }
                    }))
                }
                "raw" => {
                    let key = SessionToken::parse(&fx2.tokens[2]).unwrap().storage_key();
                    let raw = raw.clone();
                    let parts = parts.clone();
                    rt.block_on(drive(point, move || {
                        let (raw, parts) = (raw.clone(), parts.clone());
                        async move {
                            raw_select_update(&raw.lock().unwrap(), &key.as_bytes()[..], &parts);
                        }
                    }))
                }
                other => panic!("{other}"),
            };
            let (a, b) = std::mem::take(&mut *parts.lock().unwrap());
            res.entry(v.clone()).or_default().extend(lat);
            res.entry(format!("{v}.load")).or_default().extend(a);
            res.entry(format!("{v}.save")).or_default().extend(b);
        }
    }
    for (v, mut lat) in res {
        let (p50, p99, n) = pct(&mut lat);
        println!("{v:<16} n={n:>6} p50 {p50:>7.1} us  p99 {p99:>8.1} us");
    }
}
