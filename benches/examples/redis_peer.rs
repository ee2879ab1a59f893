//! Where the Redis adapter's time goes next to tower-sessions-redis-store
//! (issue 17), in one process, interleaved: every round runs a batch of each
//! variant back to back (the order rotates each round), on the same server,
//! with the same session data as `benches/benches/requests.rs` (a 1 KiB
//! string and a counter through the tower-sessions trait).
//!
//! Loads: a raw `GET` on a plain redis-rs `MultiplexedConnection`, on a
//! `ConnectionManager` configured as the store configures its own (with and
//! without the store's operation-timeout wrapper), on the peer's fred client;
//! then `RedisStore::load`, the tower-sessions adapter's `load` and the
//! peer's `load`. Saves: raw `SET` (fred `SET XX EXAT`, redis-rs
//! `SET PXAT`), `EVALSHA` of `return 1` with our save's arguments, the
//! cheapest compare-and-swap script (`GETRANGE` of the version, `SET PXAT`),
//! `RedisStore::save`, the adapter's and the peer's `save` (the load before
//! each save untimed), and both `load` → `save` sequences.
//!
//! Each variant reports p50 and p99 latency and the client CPU per operation
//! (the process's threads' run time from `/proc/self/task/*/schedstat`,
//! summed over the variant's batches: the caller, the tokio workers and the
//! clients' driver tasks).
//!
//! ```text
//! cargo run --release -p session-store-benches --example redis_peer -- [rounds] [mt|ct] [only=<variant>]
//! ```
//!
//! `mt` (default): the benchmark harness's runtime (multi-thread, one worker
//! per core); `ct`: a current-thread runtime. `only=<variant>` runs just that
//! variant (for `valgrind --tool=callgrind`, instructions per operation).
//! Keys: a fresh prefix for ours (removed at the end), bare session ids for
//! the peer's (deleted at the end, expiring in 10 minutes otherwise), as in
//! the request benchmark.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use redis::aio::{ConnectionManager, ConnectionManagerConfig, MultiplexedConnection};
use serde_json::Value;
use session_store_core::{Lookup, SessionBackend, SessionRecord, StorageKey, Timestamp};
use session_store_redis::{RedisConfig, RedisStore};
use session_store_tower_sessions::{storage_key_for, TowerSessionStore};
use tower_sessions_redis_store::fred::clients::Client as FredClient;
use tower_sessions_redis_store::fred::interfaces::KeysInterface as _;
use tower_sessions_redis_store::fred::prelude::{ClientLike as _, Config};
use tower_sessions_redis_store::fred::types::{Builder, Expiration, SetOptions};

/// Operations per variant per round.
const BATCH: usize = 100;
/// Bytes of the session's string field (as in the request benchmark).
const DATA_BYTES: usize = 1024;

/// The cheapest compare-and-swap: the first 20 bytes are the version.
/// KEYS: key. ARGV: expected version (20 bytes), new value, PXAT.
const MIN_CAS: &str = r#"
if redis.call('GETRANGE', KEYS[1], 0, 19) ~= ARGV[1] then return 0 end
redis.call('SET', KEYS[1], ARGV[2], 'PXAT', ARGV[3])
return 1
"#;

const VARIANTS: &[&str] = &[
    "get/redis-rs-mux",
    "get/redis-rs-mgr",
    "get/redis-rs-mgr+timeout",
    "get/fred",
    "load/store",
    "load/adapter",
    "load/peer",
    "set/redis-rs-pxat",
    "set/fred-xx-exat",
    "eval/return-1",
    "eval/min-cas",
    "save/store",
    "save/adapter",
    "save/peer",
    "seq/adapter",
    "seq/peer",
];

type TowerId = tower_sessions::session::Id;
type PeerId = tower_sessions_core_014::session::Id;

struct Ctx {
    mux: MultiplexedConnection,
    mgr: ConnectionManager,
    fred: FredClient,
    store: RedisStore,
    adapter: TowerSessionStore,
    peer: tower_sessions_redis_store::RedisStore<FredClient>,
    /// Our session (created through the adapter) and its storage key.
    ours: TowerId,
    ours_key: StorageKey,
    ours_entry: String,
    /// The peer's session.
    theirs: PeerId,
    /// Our entry's stored bytes and the peer's, for the raw `SET`s.
    ours_bytes: Vec<u8>,
    theirs_bytes: Vec<u8>,
    /// The key of the compare-and-swap script that does not touch our entry.
    scratch: String,
    /// The key of the raw `SET` on our connection.
    scratch_set: String,
    /// Version of the scratch key / of our entry for `save/store`.
    scratch_version: u64,
    record: SessionRecord,
    return_1: redis::Script,
    min_cas: redis::Script,
}

fn tower_data() -> HashMap<String, Value> {
    HashMap::from([
        ("blob".to_owned(), Value::String("x".repeat(DATA_BYTES))),
        ("n".to_owned(), Value::from(0u64)),
    ])
}

fn expiry() -> time::OffsetDateTime {
    time::OffsetDateTime::now_utc() + time::Duration::minutes(10)
}

fn pxat() -> String {
    (Timestamp::now_utc().as_millis() + 600_000).to_string()
}

fn fixed(v: u64) -> String {
    format!("{v:020}")
}

/// Run time of every thread of this process so far (ns).
fn cpu_ns() -> u64 {
    let mut total = 0;
    if let Ok(dir) = std::fs::read_dir("/proc/self/task") {
        for t in dir.flatten() {
            if let Ok(s) = std::fs::read_to_string(t.path().join("schedstat")) {
                total += s
                    .split_whitespace()
                    .next()
                    .and_then(|v| v.parse::<u64>().ok())
                    .unwrap_or(0);
            }
        }
    }
    total
}

impl Ctx {
    async fn one(&mut self, variant: &str) -> Duration {
        match variant {
            "get/redis-rs-mux" => {
                let t = Instant::now();
                let v: Option<Vec<u8>> = redis::cmd("GET")
                    .arg(&self.ours_entry)
                    .query_async(&mut self.mux)
                    .await
                    .expect("get");
                let e = t.elapsed();
                assert!(v.is_some());
                e
            }
            "get/redis-rs-mgr" => {
                let t = Instant::now();
                let v: Option<Vec<u8>> = redis::cmd("GET")
                    .arg(&self.ours_entry)
                    .query_async(&mut self.mgr.clone())
                    .await
                    .expect("get");
                let e = t.elapsed();
                assert!(v.is_some());
                e
            }
            "get/redis-rs-mgr+timeout" => {
                let t = Instant::now();
                let v: Option<Vec<u8>> = tokio::time::timeout(
                    Duration::from_secs(2),
                    redis::cmd("GET")
                        .arg(&self.ours_entry)
                        .query_async(&mut self.mgr.clone()),
                )
                .await
                .expect("in time")
                .expect("get");
                let e = t.elapsed();
                assert!(v.is_some());
                e
            }
            "get/fred" => {
                let t = Instant::now();
                let v: Option<Vec<u8>> = self.fred.get(self.theirs.to_string()).await.expect("get");
                let e = t.elapsed();
                assert!(v.is_some());
                e
            }
            "load/store" => {
                let t = Instant::now();
                let v = self
                    .store
                    .load(&self.ours_key, Timestamp::now_utc())
                    .await
                    .expect("load");
                let e = t.elapsed();
                assert!(matches!(v, Some(Lookup::Session(_))));
                e
            }
            "load/adapter" => {
                use tower_sessions::SessionStore as _;
                let t = Instant::now();
                let v = self.adapter.load(&self.ours).await.expect("load");
                let e = t.elapsed();
                assert!(v.is_some());
                e
            }
            "load/peer" => {
                use tower_sessions_core_014::SessionStore as _;
                let t = Instant::now();
                let v = self.peer.load(&self.theirs).await.expect("load");
                let e = t.elapsed();
                assert!(v.is_some());
                e
            }
            "set/redis-rs-pxat" => {
                let at = pxat();
                let t = Instant::now();
                let () = redis::cmd("SET")
                    .arg(&self.scratch_set)
                    .arg(self.ours_bytes.as_slice())
                    .arg("PXAT")
                    .arg(&at)
                    .query_async(&mut self.mgr.clone())
                    .await
                    .expect("set");
                t.elapsed()
            }
            "set/fred-xx-exat" => {
                let at = time::OffsetDateTime::unix_timestamp(expiry());
                let t = Instant::now();
                let done: bool = self
                    .fred
                    .set(
                        self.theirs.to_string(),
                        self.theirs_bytes.as_slice(),
                        Some(Expiration::EXAT(at)),
                        Some(SetOptions::XX),
                        false,
                    )
                    .await
                    .expect("set");
                let e = t.elapsed();
                assert!(done);
                e
            }
            "eval/return-1" => {
                // Our save's arguments, a script that only returns.
                let at = pxat();
                let now = fixed(0);
                let t = Instant::now();
                let mut cmd = redis::cmd("EVALSHA");
                cmd.arg(self.return_1.get_hash())
                    .arg(1)
                    .arg(&self.ours_entry)
                    .arg(&now)
                    .arg(&now)
                    .arg("92")
                    .arg("")
                    .arg(&now)
                    .arg("0")
                    .arg(&at)
                    .arg(self.ours_bytes.as_slice());
                let v: i64 = cmd
                    .query_async(&mut self.mgr.clone())
                    .await
                    .expect("evalsha");
                let e = t.elapsed();
                assert_eq!(v, 1);
                e
            }
            "eval/min-cas" => {
                let at = pxat();
                let t = Instant::now();
                let expected = fixed(self.scratch_version);
                let mut value = Vec::with_capacity(20 + self.ours_bytes.len());
                value.extend_from_slice(fixed(self.scratch_version + 1).as_bytes());
                value.extend_from_slice(&self.ours_bytes);
                let mut cmd = redis::cmd("EVALSHA");
                cmd.arg(self.min_cas.get_hash())
                    .arg(1)
                    .arg(&self.scratch)
                    .arg(&expected)
                    .arg(value.as_slice())
                    .arg(&at);
                let v: i64 = cmd
                    .query_async(&mut self.mgr.clone())
                    .await
                    .expect("evalsha");
                let e = t.elapsed();
                assert_eq!(v, 1);
                self.scratch_version += 1;
                e
            }
            "save/store" => {
                let now = Timestamp::now_utc();
                let t = Instant::now();
                let v = self
                    .store
                    .save(&self.ours_key, &self.record, now)
                    .await
                    .expect("save");
                let e = t.elapsed();
                self.record.version = v;
                e
            }
            "save/adapter" | "seq/adapter" => {
                use tower_sessions::SessionStore as _;
                let t = Instant::now();
                let mut r = self.adapter.load(&self.ours).await.expect("load").unwrap();
                let t = if variant == "save/adapter" {
                    Instant::now()
                } else {
                    t
                };
                let n = r.data["n"].as_u64().unwrap_or(0);
                r.data.insert("n".into(), Value::from(n + 1));
                self.adapter.save(&r).await.expect("save");
                t.elapsed()
            }
            "save/peer" | "seq/peer" => {
                use tower_sessions_core_014::SessionStore as _;
                let t = Instant::now();
                let mut r = self.peer.load(&self.theirs).await.expect("load").unwrap();
                let t = if variant == "save/peer" {
                    Instant::now()
                } else {
                    t
                };
                let n = r.data["n"].as_u64().unwrap_or(0);
                r.data.insert("n".into(), Value::from(n + 1));
                self.peer.save(&r).await.expect("save");
                t.elapsed()
            }
            other => panic!("unknown variant {other}"),
        }
    }

    /// Our session's stored record (after saves through the adapter).
    async fn reload_record(&mut self) {
        match self
            .store
            .load(&self.ours_key, Timestamp::now_utc())
            .await
            .expect("load")
        {
            Some(Lookup::Session(r)) => self.record = r,
            _ => panic!("our session is gone"),
        }
    }
}

fn pct(sorted: &[u64], p: usize) -> f64 {
    sorted[(sorted.len() * p / 100).min(sorted.len() - 1)] as f64 / 1e3
}

async fn run(rounds: usize, only: Option<String>) {
    let config = RedisConfig::from_env().expect("SESSION_STORE_REDIS_URL");
    let url = config.url().expect("one server").to_owned();
    let prefix = format!("peercmp:{:08x}", rand::random::<u32>());
    let store = config
        .clone()
        .with_prefix(prefix.clone())
        .build()
        .await
        .expect("store");
    let client = redis::Client::open(url.as_str()).expect("client");
    let mux = client
        .get_multiplexed_async_connection()
        .await
        .expect("mux");
    let mgr = ConnectionManager::new_with_config(
        client,
        ConnectionManagerConfig::new()
            .set_connection_timeout(Some(config.connection_timeout()))
            .set_response_timeout(Some(config.response_timeout()))
            .set_number_of_retries(config.reconnect_retries())
            .set_max_delay(config.connection_timeout()),
    )
    .await
    .expect("manager");
    let fred = Builder::from_config(Config::from_url(&url).expect("fred config"))
        .build()
        .expect("fred client");
    fred.init().await.expect("fred init");
    let backend: Arc<dyn SessionBackend> = Arc::new(store.clone());
    let adapter = TowerSessionStore::new(backend);
    let peer = tower_sessions_redis_store::RedisStore::new(fred.clone());

    let ours = {
        use tower_sessions::SessionStore as _;
        let mut r = tower_sessions::session::Record {
            id: TowerId::default(),
            data: tower_data(),
            expiry_date: expiry(),
        };
        adapter.create(&mut r).await.expect("create");
        r.id
    };
    let theirs = {
        use tower_sessions_core_014::SessionStore as _;
        let mut r = tower_sessions_core_014::session::Record {
            id: PeerId::default(),
            data: tower_data(),
            expiry_date: expiry(),
        };
        peer.create(&mut r).await.expect("create");
        r.id
    };
    let ours_key = storage_key_for(&ours);
    let ours_entry = store.entry_key_name(&ours_key);
    let mut raw = mux.clone();
    let ours_bytes: Vec<u8> = redis::cmd("GET")
        .arg(&ours_entry)
        .query_async(&mut raw)
        .await
        .expect("get");
    let theirs_bytes: Option<Vec<u8>> = fred.get(theirs.to_string()).await.expect("get");
    let theirs_bytes = theirs_bytes.expect("peer bytes");
    // A key of our prefix's first slot tag, removed by delete_all.
    let scratch = format!("{{{prefix}:00}}:s:{}", "0".repeat(64));
    let scratch_set = format!("{{{prefix}:00}}:s:{}1", "0".repeat(63));
    let return_1 = redis::Script::new("return 1");
    let min_cas = redis::Script::new(MIN_CAS);
    for s in [&return_1, &min_cas] {
        s.prepare_invoke()
            .load_async(&mut raw)
            .await
            .expect("script load");
    }
    let mut v = fixed(0).into_bytes();
    v.extend_from_slice(&ours_bytes);
    let () = redis::cmd("SET")
        .arg(&scratch)
        .arg(v)
        .arg("PXAT")
        .arg(pxat())
        .query_async(&mut raw)
        .await
        .expect("scratch");
    println!(
        "stored bytes: ours {} (entry), peer {} (MessagePack)",
        ours_bytes.len(),
        theirs_bytes.len()
    );

    let record = match store
        .load(&ours_key, Timestamp::now_utc())
        .await
        .expect("load")
    {
        Some(Lookup::Session(r)) => r,
        _ => panic!("no session"),
    };
    let mut ctx = Ctx {
        mux,
        mgr,
        fred: fred.clone(),
        store: store.clone(),
        adapter,
        peer,
        ours,
        ours_key,
        ours_entry,
        theirs,
        ours_bytes,
        theirs_bytes,
        scratch,
        scratch_set,
        scratch_version: 0,
        record,
        return_1,
        min_cas,
    };

    let variants: Vec<&str> = match &only {
        Some(v) => vec![VARIANTS
            .iter()
            .copied()
            .find(|x| x == v)
            .expect("known variant")],
        None => VARIANTS.to_vec(),
    };
    // Warm-up: every variant, untimed.
    for v in &variants {
        if v.starts_with("save/store") {
            ctx.reload_record().await;
        }
        for _ in 0..BATCH {
            ctx.one(v).await;
        }
    }
    let mut lat: Vec<Vec<u64>> = vec![Vec::new(); variants.len()];
    let mut cpu = vec![0u64; variants.len()];
    let mut wall = vec![0u64; variants.len()];
    for round in 0..rounds {
        for j in 0..variants.len() {
            let i = (j + round) % variants.len();
            let v = variants[i];
            if v == "save/store" {
                ctx.reload_record().await;
            }
            let (c0, w0) = (cpu_ns(), Instant::now());
            for _ in 0..BATCH {
                let d = ctx.one(v).await;
                lat[i].push(u64::try_from(d.as_nanos()).unwrap_or(u64::MAX));
            }
            wall[i] += u64::try_from(w0.elapsed().as_nanos()).unwrap_or(u64::MAX);
            cpu[i] += cpu_ns().saturating_sub(c0);
        }
    }
    println!(
        "{:<26} {:>9} {:>9} {:>14} {:>12}",
        "variant", "p50 µs", "p99 µs", "cpu µs/op", "wall µs/op"
    );
    for (i, v) in variants.iter().enumerate() {
        let l = &mut lat[i];
        l.sort_unstable();
        let n = l.len() as f64;
        println!(
            "{v:<26} {:>9.1} {:>9.1} {:>14.1} {:>12.1}",
            pct(l, 50),
            pct(l, 99),
            cpu[i] as f64 / n / 1e3,
            wall[i] as f64 / n / 1e3,
        );
    }

    // Cleanup: our prefix, the peer's session.
    store.delete_all().await.expect("delete_all");
    let _: i64 = fred.del(theirs.to_string()).await.expect("del");
    fred.quit().await.expect("quit");
}

fn main() {
    let mut rounds = 30;
    let mut current_thread = false;
    let mut only = None;
    for a in std::env::args().skip(1) {
        match a.as_str() {
            "mt" => current_thread = false,
            "ct" => current_thread = true,
            _ => {
                if let Some(v) = a.strip_prefix("only=") {
                    only = Some(v.to_owned());
                } else {
                    rounds = a.parse().expect("rounds, mt|ct or only=<variant>");
                }
            }
        }
    }
    let rt = if current_thread {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime")
    } else {
        session_store_benches::runtime()
    };
    println!(
        "runtime: {}, {rounds} rounds of {BATCH} per variant",
        if current_thread {
            "current-thread"
        } else {
            "multi-thread"
        }
    );
    // On a worker, as the request benchmark's tasks (not on the thread that
    // blocks on the runtime).
    rt.block_on(async { tokio::spawn(run(rounds, only)).await })
        .expect("measurement task");
}
