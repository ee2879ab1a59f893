//! A rough, throwaway latency run per operation (not a benchmark: no
//! statistics, one machine). `cargo run --release -p session-store-sled --example sled_latency`.
//!
//! Uses a temporary database (nothing is synced) for the in-memory cost, then
//! a real directory with `Durability::EveryWrite` for the cost of a durable write.

use std::time::{Duration, Instant};

use session_store_core::{
    Rotation, SessionBackend, SessionRecord, SessionToken, StorageKey, Timestamp,
};
use session_store_sled::{Durability, SledConfig, SledStore};

const N: usize = 20_000;

fn record(i: usize) -> SessionRecord {
    SessionRecord {
        version: 1,
        user_id: Some(format!("user-{}", i % 1000)),
        created_at: Timestamp::from_millis(1_000),
        last_seen_at: Timestamp::from_millis(1_000),
        auth_time: None,
        idle_deadline: Timestamp::from_millis(10_000_000),
        absolute_deadline: Timestamp::from_millis(20_000_000),
        meta: vec![b'm'; 60],
        data: vec![b'd'; 200],
    }
}

fn per_op(label: &str, n: usize, elapsed: Duration) {
    println!(
        "{label:>18}: {:>8.2} µs/op",
        elapsed.as_secs_f64() * 1e6 / n as f64
    );
}

async fn run(label: &str, store: &SledStore, n: usize) {
    println!("{label}");
    let keys: Vec<StorageKey> = (0..n)
        .map(|_| SessionToken::generate().storage_key())
        .collect();
    let now = Timestamp::from_millis(2_000);

    let t = Instant::now();
    for (i, k) in keys.iter().enumerate() {
        store.create(k, &record(i)).await.unwrap();
    }
    per_op("create", n, t.elapsed());

    let records = store
        .db()
        .sled()
        .open_tree(format!("{}.records", store.prefix()))
        .unwrap();
    // Two passes each, alternating, so that neither profits from a warmer cache.
    for pass in 0..2 {
        let t = Instant::now();
        for k in &keys {
            std::hint::black_box(records.get(k.as_bytes()).unwrap());
        }
        per_op(&format!("raw sled get #{pass}"), n, t.elapsed());
        let t = Instant::now();
        for k in &keys {
            std::hint::black_box(store.load(k, now).await.unwrap());
        }
        per_op(&format!("load #{pass}"), n, t.elapsed());
    }

    let t = Instant::now();
    for (i, k) in keys.iter().enumerate() {
        let idle = Timestamp::from_millis(10_000_000 + i as i64 + 1);
        store.touch(k, idle, now, now).await.unwrap();
    }
    per_op("touch", n, t.elapsed());

    let t = Instant::now();
    for (i, k) in keys.iter().enumerate() {
        store.save(k, &record(i), now).await.unwrap();
    }
    per_op("save", n, t.elapsed());

    let mut rotated = Vec::with_capacity(n);
    let t = Instant::now();
    for (i, k) in keys.iter().enumerate() {
        let to = SessionToken::generate().storage_key();
        let mut r = record(i);
        r.version = 2;
        store
            .rotate(
                &Rotation {
                    from: *k,
                    to,
                    record: r,
                    grace: None,
                },
                now,
            )
            .await
            .unwrap();
        rotated.push(to);
    }
    per_op("rotate", n, t.elapsed());

    let t = Instant::now();
    for k in &rotated {
        store.delete(k).await.unwrap();
    }
    per_op("delete", n, t.elapsed());
}

fn main() {
    if std::env::var("PROBE").is_ok() {
        raw_tx_probe();
        return;
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let fast = SledConfig::temporary()
            .with_durability(Durability::Periodic(Duration::from_millis(500)))
            .build()
            .await
            .unwrap();
        run("temporary db (no sync)", &fast, N).await;
        let dir = tempfile::tempdir_in(".").unwrap();
        let durable = SledConfig::new(dir.path()).build().await.unwrap();
        run("real directory, Durability::EveryWrite", &durable, 500).await;

        // Concurrent durable writers share flushes (group commit).
        let writers = 8;
        let per = 200;
        let t = Instant::now();
        let tasks: Vec<_> = (0..writers)
            .map(|_| {
                let store = durable.clone();
                tokio::spawn(async move {
                    for i in 0..per {
                        let k = SessionToken::generate().storage_key();
                        store.create(&k, &record(i)).await.unwrap();
                    }
                })
            })
            .collect();
        for task in tasks {
            task.await.unwrap();
        }
        per_op(
            &format!("create x{writers} tasks"),
            writers * per,
            t.elapsed(),
        );
    });
}

fn raw_tx_probe() {
    use sled::Transactional;
    let db = sled::Config::new().temporary(true).open().unwrap();
    let (a, b, c) = (
        db.open_tree("a").unwrap(),
        db.open_tree("b").unwrap(),
        db.open_tree("c").unwrap(),
    );
    let n = 20_000;
    let t = Instant::now();
    for i in 0..n as u64 {
        let k = i.to_be_bytes();
        (&a, &b, &c)
            .transaction(|(a, b, c)| {
                a.get(k)?;
                a.insert(&k[..], &[0u8; 300][..])?;
                b.insert(&k[..], &[][..])?;
                c.insert(&k[..], &[][..])?;
                Ok::<_, sled::transaction::ConflictableTransactionError<()>>(())
            })
            .unwrap();
    }
    per_op("raw 3-tree tx", n, t.elapsed());
    let t = Instant::now();
    for i in 0..n as u64 {
        a.insert(&(i + 1_000_000).to_be_bytes()[..], &[0u8; 300][..])
            .unwrap();
    }
    per_op("raw insert", n, t.elapsed());
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let t = Instant::now();
    rt.block_on(async {
        for _ in 0..n {
            tokio::task::spawn_blocking(|| 1).await.unwrap();
        }
    });
    per_op("spawn_blocking", n, t.elapsed());
}
