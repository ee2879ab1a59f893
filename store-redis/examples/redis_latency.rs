//! Rough sequential latency per operation against a local Redis, next to raw
//! `GET` and `SET PX` on the same kind of connection. Not a benchmark with
//! statistics, a sanity check:
//!
//! ```text
//! cargo run -p session-store-redis --release --example redis_latency [redis://127.0.0.1:6379]
//! ```
//!
//! Without an argument the server is `SESSION_STORE_REDIS_URL` (set for
//! cargo runs by the workspace's `.cargo/config.toml`).
use std::time::{Duration, Instant};

use redis::aio::ConnectionManager;
use session_store_core::{
    Lookup, Rotation, SessionBackend, SessionRecord, SessionToken, StorageKey, Timestamp,
};
use session_store_redis::{RedisConfig, AFFINITY_BITS};

const N: usize = 3000;

fn report(name: &str, samples: &mut [Duration]) {
    samples.sort();
    let mean = samples.iter().sum::<Duration>() / samples.len() as u32;
    let p50 = samples[samples.len() / 2];
    let p99 = samples[samples.len() * 99 / 100];
    println!(
        "{name:<22} mean {:>6.1} µs   p50 {:>6.1} µs   p99 {:>6.1} µs",
        mean.as_secs_f64() * 1e6,
        p50.as_secs_f64() * 1e6,
        p99.as_secs_f64() * 1e6
    );
}

fn record(now: Timestamp, data: &[u8]) -> SessionRecord {
    SessionRecord {
        version: 0,
        user_id: Some("bench-user".into()),
        created_at: now,
        last_seen_at: now,
        auth_time: Some(now),
        idle_deadline: now.saturating_add(Duration::from_secs(1800)),
        absolute_deadline: now.saturating_add(Duration::from_secs(8 * 3600)),
        meta: b"{\"ip\":\"127.0.0.1\"}".to_vec(),
        data: data.to_vec(),
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    // The server: the first argument, else SESSION_STORE_REDIS_URL.
    let config = match std::env::args().nth(1) {
        Some(url) => RedisConfig::new(url),
        None => RedisConfig::from_env()?,
    };
    let url = config
        .url()
        .ok_or("a single server is needed (SESSION_STORE_REDIS_CLUSTER_NODES is set)")?
        .to_owned();
    let prefix = format!("latency:{:08x}", rand::random::<u32>());
    let store = config.with_prefix(prefix.clone()).build().await?;
    let mut raw = ConnectionManager::new(redis::Client::open(url.as_str())?).await?;
    // Clean up the prefix whatever happens.
    let outcome = run(&store, &mut raw, &prefix).await;
    store.delete_all().await?;
    outcome
}

async fn run(
    store: &session_store_redis::RedisStore,
    raw: &mut ConnectionManager,
    prefix: &str,
) -> Result<(), Box<dyn std::error::Error>> {
    let raw = &mut *raw;
    let data = vec![b'x'; 200];
    let now = Timestamp::now_utc();
    let r = record(now, &data);
    let raw_key = format!("{{{prefix}:raw}}");

    // Warm up (script loading, connection).
    for _ in 0..200 {
        let k = SessionToken::generate().storage_key();
        store.create(&k, &r).await?;
        store.load(&k, now).await?;
        let _: () = redis::cmd("SET")
            .arg(&raw_key)
            .arg(&data)
            .arg("PX")
            .arg(60_000)
            .query_async(raw)
            .await?;
    }

    let mut t = Vec::with_capacity(N);
    for _ in 0..N {
        let s = Instant::now();
        let _: () = redis::cmd("SET")
            .arg(&raw_key)
            .arg(&data)
            .arg("PX")
            .arg(60_000)
            .query_async(raw)
            .await?;
        t.push(s.elapsed());
    }
    report("raw SET PX", &mut t);
    t.clear();
    for _ in 0..N {
        let s = Instant::now();
        let _: Vec<u8> = redis::cmd("GET").arg(&raw_key).query_async(raw).await?;
        t.push(s.elapsed());
    }
    report("raw GET", &mut t);
    t.clear();
    let noop = redis::Script::new("return 1");
    for _ in 0..N {
        let s = Instant::now();
        let _: i64 = noop.key(&raw_key).invoke_async(raw).await?;
        t.push(s.elapsed());
    }
    report("raw EVALSHA return 1", &mut t);

    let keys: Vec<StorageKey> = (0..N)
        .map(|_| SessionToken::generate().storage_key())
        .collect();
    t.clear();
    for k in &keys {
        let s = Instant::now();
        store.create(k, &r).await?;
        t.push(s.elapsed());
    }
    report("create (with user)", &mut t);
    let anon = SessionRecord {
        user_id: None,
        ..r.clone()
    };
    t.clear();
    for _ in 0..N {
        let k = SessionToken::generate().storage_key();
        let s = Instant::now();
        store.create(&k, &anon).await?;
        t.push(s.elapsed());
    }
    report("create (anonymous)", &mut t);
    t.clear();
    for k in &keys {
        let s = Instant::now();
        let got = store.load(k, now).await?;
        t.push(s.elapsed());
        assert!(matches!(got, Some(Lookup::Session(_))));
    }
    report("load", &mut t);
    t.clear();
    for (i, k) in keys.iter().enumerate() {
        let idle = now.saturating_add(Duration::from_secs(1800 + i as u64));
        let s = Instant::now();
        store.touch(k, idle, now, now).await?;
        t.push(s.elapsed());
    }
    report("touch", &mut t);
    t.clear();
    for k in &keys {
        let s = Instant::now();
        store.save(k, &r, now).await?;
        t.push(s.elapsed());
    }
    report("save", &mut t);
    t.clear();
    let mut next = Vec::with_capacity(N);
    let saved = SessionRecord {
        version: 1,
        ..r.clone()
    };
    for k in &keys {
        let to = SessionToken::generate_with_affinity(k, AFFINITY_BITS).storage_key();
        let rot = Rotation {
            from: *k,
            to,
            record: saved.clone(),
            grace: None,
        };
        let s = Instant::now();
        store.rotate(&rot, now).await?;
        t.push(s.elapsed());
        next.push(to);
    }
    report("rotate (with user)", &mut t);
    t.clear();
    for k in &next {
        let s = Instant::now();
        store.delete(k).await?;
        t.push(s.elapsed());
    }
    report("delete", &mut t);

    let _: () = redis::cmd("DEL").arg(&raw_key).query_async(raw).await?;
    Ok(())
}
