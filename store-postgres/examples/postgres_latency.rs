//! Rough sequential latency per operation against a local server, next to a
//! raw primary-key `SELECT` on one dedicated connection. A measuring aid, not
//! a benchmark: run with
//! `cargo run --release -p session-store-postgres --example postgres_latency`
//! (configuration from `PostgresConfig::from_env`: `SESSION_STORE_POSTGRES_URL`,
//! which the workspace's `.cargo/config.toml` points at the test server; add
//! `-- --unlogged` for an UNLOGGED table).

use std::time::{Duration, Instant};

use session_store_core::{Rotation, SessionBackend, SessionRecord, SessionToken, Timestamp};
use session_store_postgres::PostgresConfig;
use sqlx::{AssertSqlSafe, Connection};

const N: usize = 3000;

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
        data: vec![42; 512],
    }
}

fn report(name: &str, mut samples: Vec<Duration>) {
    samples.sort();
    let mean = samples.iter().sum::<Duration>() / samples.len() as u32;
    let p = |q: f64| samples[((samples.len() - 1) as f64 * q) as usize];
    println!(
        "{name:<28} mean {:>6.1} µs  p50 {:>6.1} µs  p99 {:>6.1} µs",
        mean.as_secs_f64() * 1e6,
        p(0.5).as_secs_f64() * 1e6,
        p(0.99).as_secs_f64() * 1e6
    );
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let schema = format!("ss_latency_{:08x}", rand::random::<u32>());
    let unlogged = std::env::args().any(|a| a == "--unlogged");
    let config = PostgresConfig::from_env()?
        .with_schema(&schema)
        .with_unlogged(unlogged);
    let url = config.url().to_owned();
    let store = config.build().await?;
    println!("table: {}", if unlogged { "UNLOGGED" } else { "logged" });
    store.migrate().await?;
    let now = Timestamp::now_utc();

    let keys: Vec<_> = (0..N)
        .map(|_| SessionToken::generate().storage_key())
        .collect();
    let mut samples = Vec::with_capacity(N);
    for k in &keys {
        let t = Instant::now();
        store.create(k, &record(now)).await?;
        samples.push(t.elapsed());
    }
    report("create", samples);

    // Raw baseline: the same primary-key SELECT, prepared, one connection.
    let mut conn = sqlx::PgConnection::connect(&url).await?;
    let raw = format!(
        "SELECT * FROM {} WHERE key = $1 AND expires_at > $2",
        store.qualified_table()
    );
    let mut samples = Vec::with_capacity(N);
    for k in &keys {
        let t = Instant::now();
        sqlx::query(AssertSqlSafe(raw.as_str()))
            .bind(k.as_bytes().as_slice())
            .bind(now.as_millis())
            .fetch_optional(&mut conn)
            .await?
            .expect("row");
        samples.push(t.elapsed());
    }
    report("raw PK SELECT (1 conn)", samples);

    // Interleaved, so that machine noise hits all three alike.
    let (mut raw_s, mut pool_s, mut load_s) = (Vec::new(), Vec::new(), Vec::new());
    for k in &keys {
        let t = Instant::now();
        sqlx::query(AssertSqlSafe(raw.as_str()))
            .bind(k.as_bytes().as_slice())
            .bind(now.as_millis())
            .fetch_optional(&mut conn)
            .await?
            .expect("row");
        raw_s.push(t.elapsed());
        let t = Instant::now();
        sqlx::query(AssertSqlSafe(raw.as_str()))
            .bind(k.as_bytes().as_slice())
            .bind(now.as_millis())
            .fetch_optional(store.pool())
            .await?
            .expect("row");
        pool_s.push(t.elapsed());
        let t = Instant::now();
        store.load(k, now).await?.expect("session");
        load_s.push(t.elapsed());
    }
    report("raw PK SELECT (interleaved)", raw_s);
    report("same SELECT via the pool", pool_s);
    report("load (interleaved)", load_s);
    // Alternating blocks of tight loops, so drifting machine noise hits the
    // raw SELECT and `load` alike.
    let (mut raw_s, mut load_s) = (Vec::new(), Vec::new());
    for block in keys.chunks(250) {
        for k in block {
            let t = Instant::now();
            sqlx::query(AssertSqlSafe(raw.as_str()))
                .bind(k.as_bytes().as_slice())
                .bind(now.as_millis())
                .fetch_optional(&mut conn)
                .await?
                .expect("row");
            raw_s.push(t.elapsed());
        }
        for k in block {
            let t = Instant::now();
            store.load(k, now).await?.expect("session");
            load_s.push(t.elapsed());
        }
    }
    report("raw PK SELECT (blocks)", raw_s);
    report("load (blocks)", load_s);
    println!("(pool size {})", store.pool().size());

    let mut samples = Vec::with_capacity(N);
    let later = now.saturating_add(Duration::from_secs(60));
    for k in &keys {
        let t = Instant::now();
        store
            .touch(
                k,
                later.saturating_add(Duration::from_secs(1800)),
                later,
                later,
            )
            .await?;
        samples.push(t.elapsed());
    }
    report("touch", samples);

    let mut samples = Vec::with_capacity(N);
    for k in &keys {
        let mut r = record(now);
        r.data = vec![43; 512];
        let t = Instant::now();
        store.save(k, &r, now).await?;
        samples.push(t.elapsed());
    }
    report("save (CAS)", samples);

    let mut samples = Vec::with_capacity(N);
    let mut rotated = Vec::with_capacity(N);
    for k in &keys {
        let mut r = record(now);
        r.version = 1;
        let to = SessionToken::generate().storage_key();
        let rotation = Rotation {
            from: *k,
            to,
            record: r,
            grace: None,
        };
        let t = Instant::now();
        store.rotate(&rotation, now).await?;
        samples.push(t.elapsed());
        rotated.push(to);
    }
    report("rotate", samples);

    let mut samples = Vec::with_capacity(N);
    for k in &rotated {
        let t = Instant::now();
        assert!(store.delete(k).await?);
        samples.push(t.elapsed());
    }
    report("delete", samples);

    // A user with 10 sessions among the others (a "your devices" page).
    let mut r = record(now);
    r.user_id = Some("user-list".into());
    for _ in 0..10 {
        store
            .create(&SessionToken::generate().storage_key(), &r)
            .await?;
    }
    let mut samples = Vec::with_capacity(N);
    for _ in 0..N {
        let t = Instant::now();
        let list = store.list_user("user-list", now).await?;
        samples.push(t.elapsed());
        assert_eq!(list.len(), 10);
    }
    report("list_user (10 sessions)", samples);

    sqlx::query(AssertSqlSafe(format!("DROP SCHEMA \"{schema}\" CASCADE")))
        .execute(&mut conn)
        .await?;
    Ok(())
}
