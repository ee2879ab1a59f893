//! Where a sled write's time goes, per piece, in one process (issue 17).
//!
//! `cargo run --release -p session-store-sled --example sled_write_breakdown [rounds] [ops]`
//!
//! A tokio multi-thread runtime with two workers (a web server's shape), one
//! client task, a ~1 KiB session. Every round runs each variant for `ops`
//! operations, in an order that rotates from round to round (so no variant
//! always runs first or last), and records every operation's latency; the
//! table gives p50, p99 and the mean over all rounds. Variants:
//!
//! - `hop`: `spawn_blocking(|| ())`, the blocking-pool round trip alone.
//! - `decode+copy`: decoding the stored record and copying a 1 KiB value, the
//!   store's CPU work around the transaction besides the sled calls.
//! - `raw tx`: the transaction a save runs (get, insert the record, remove and
//!   insert the expiry entry, insert the user entry) on three raw trees of the
//!   same database, on the calling thread, without back-pressure.
//! - `raw tx+bp`: the same with the store's back-pressure (a `Db::flush`
//!   once 256 KiB were written); `flush` below times those flushes alone.
//! - `hop+raw tx+bp`: the same on the blocking pool.
//! - `create`, `save`, `load→save`: the periodic-mode store, transaction on
//!   the calling task (the default).
//! - `... (pool)`: the same with every write on the blocking pool (the path
//!   before inline writes, `SledDb::set_inline_writes(false)`).
//! - `durable save` (fewer operations): `Durability::EveryWrite`, for reference.
//!
//! The database is a real directory under the system temporary directory
//! (as in the benchmarks), with a 500 ms periodic flush.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use session_store_core::{
    Lookup, SessionBackend, SessionRecord, SessionToken, StorageKey, Timestamp,
};
use session_store_sled::{schema::decode_entry, Durability, SledConfig, SledStore};
use sled::transaction::ConflictableTransactionError;
use sled::{Transactional, Tree};

const SESSIONS: usize = 1000;
const BACKPRESSURE: u64 = 256 * 1024;

fn record(i: usize) -> SessionRecord {
    SessionRecord {
        version: 1,
        user_id: Some(format!("user-{}", i % 100)),
        created_at: Timestamp::from_millis(1_000),
        last_seen_at: Timestamp::from_millis(1_000),
        auth_time: None,
        idle_deadline: Timestamp::from_millis(10_000_000),
        absolute_deadline: Timestamp::from_millis(20_000_000),
        meta: vec![b'm'; 60],
        data: vec![b'd'; 1024],
    }
}

#[derive(Default)]
struct Stat {
    ns: Vec<u64>,
}

impl Stat {
    fn add(&mut self, d: Duration) {
        self.ns.push(d.as_nanos() as u64);
    }
    fn line(&mut self, label: &str) {
        if self.ns.is_empty() {
            return;
        }
        self.ns.sort_unstable();
        let q = |p: f64| self.ns[((self.ns.len() - 1) as f64 * p) as usize] as f64 / 1e3;
        let mean = self.ns.iter().sum::<u64>() as f64 / self.ns.len() as f64 / 1e3;
        println!(
            "{label:>16} {:>8} {:>9.2} {:>9.2} {:>9.2} {:>10.1}",
            self.ns.len(),
            q(0.5),
            q(0.99),
            mean,
            *self.ns.last().unwrap() as f64 / 1e3
        );
    }
}

/// Three raw trees in the store's database, shaped like a save.
struct Raw {
    db: sled::Db,
    records: Tree,
    users: Tree,
    expiry: Tree,
    keys: Vec<[u8; 32]>,
    value: Vec<u8>,
    unflushed: AtomicU64,
    flushes: std::sync::Mutex<Stat>,
}

impl Raw {
    fn new(db: &sled::Db, stored: Vec<u8>) -> Self {
        let open = |n: &str| db.open_tree(n).unwrap();
        let raw = Raw {
            db: db.clone(),
            records: open("raw.records"),
            users: open("raw.users"),
            expiry: open("raw.expiry"),
            keys: (0..SESSIONS)
                .map(|i| {
                    let mut k = [0u8; 32];
                    k[..8].copy_from_slice(&(i as u64).to_be_bytes());
                    k
                })
                .collect(),
            value: stored,
            unflushed: AtomicU64::new(0),
            flushes: Default::default(),
        };
        for k in &raw.keys {
            raw.records.insert(k, raw.value.clone()).unwrap();
        }
        raw.db.flush().unwrap();
        raw
    }

    fn tx(&self, i: usize) {
        let k = &self.keys[i % SESSIONS];
        let mut ukey = b"user-7\0".to_vec();
        ukey.extend_from_slice(k);
        let mut old_exp = [0u8; 40];
        old_exp[8..].copy_from_slice(k);
        let mut new_exp = old_exp;
        new_exp[..8].copy_from_slice(&(i as u64).to_be_bytes());
        let value = self.value.clone();
        (&self.records, &self.users, &self.expiry)
            .transaction(|(records, users, expiry)| {
                let old = records.get(k)?;
                std::hint::black_box(old);
                users.remove(ukey.as_slice())?;
                expiry.remove(&old_exp[..])?;
                records.insert(&k[..], value.as_slice())?;
                users.insert(ukey.as_slice(), &[][..])?;
                expiry.insert(&new_exp[..], &[][..])?;
                Ok::<_, ConflictableTransactionError<()>>(())
            })
            .unwrap();
    }

    fn backpressure(&self) {
        let bytes = self.value.len() as u64 + 256;
        let pending = self.unflushed.fetch_add(bytes, Ordering::SeqCst) + bytes;
        if pending >= BACKPRESSURE {
            self.unflushed.store(0, Ordering::SeqCst);
            let t = Instant::now();
            self.db.flush().unwrap();
            self.flushes.lock().unwrap().add(t.elapsed());
        }
    }
}

const VARIANTS: [&str; 11] = [
    "hop",
    "decode+copy",
    "raw tx",
    "raw tx+bp",
    "hop+raw tx+bp",
    "create",
    "save",
    "load→save",
    "create (pool)",
    "save (pool)",
    "load→save (pool)",
];

struct Sessions {
    keys: Vec<StorageKey>,
    records: Vec<SessionRecord>,
}

async fn sessions(store: &SledStore) -> Sessions {
    let mut s = Sessions {
        keys: Vec::new(),
        records: Vec::new(),
    };
    for i in 0..SESSIONS {
        let k = SessionToken::generate().storage_key();
        let r = record(i);
        store.create(&k, &r).await.unwrap();
        s.keys.push(k);
        s.records.push(r);
    }
    store.flush().await.unwrap();
    s
}

async fn run(rounds: usize, ops: usize) {
    let dir = tempfile::tempdir().unwrap();
    let store = SledConfig::new(dir.path().join("periodic"))
        .with_durability(Durability::Periodic(Duration::from_millis(500)))
        .build()
        .await
        .unwrap();
    let durable = SledConfig::new(dir.path().join("durable"))
        .build()
        .await
        .unwrap();
    let now = Timestamp::from_millis(2_000);
    let mut live = sessions(&store).await;
    let mut dlive = sessions(&durable).await;
    let stored = {
        let t = store
            .db()
            .sled()
            .open_tree(format!("{}.records", store.prefix()))
            .unwrap();
        t.get(live.keys[0].as_bytes()).unwrap().unwrap().to_vec()
    };
    let raw = Arc::new(Raw::new(store.db().sled(), stored.clone()));
    let mut stats: Vec<Stat> = VARIANTS.iter().map(|_| Stat::default()).collect();
    let mut dstat = Stat::default();
    let mut n = 0usize;
    for round in 0..rounds {
        for v in 0..VARIANTS.len() {
            let v = (v + round) % VARIANTS.len();
            for _ in 0..ops {
                n += 1;
                let i = n % SESSIONS;
                store.db().set_inline_writes(v < 8);
                let t = Instant::now();
                // The pool variants (8..) repeat the store variants (5..8).
                match if v >= 8 { v - 3 } else { v } {
                    0 => tokio::task::spawn_blocking(|| ()).await.unwrap(),
                    1 => {
                        let e = decode_entry(std::hint::black_box(&stored)).unwrap();
                        std::hint::black_box((e, raw.value.clone()));
                    }
                    2 => raw.tx(n),
                    3 => {
                        raw.tx(n);
                        raw.backpressure();
                    }
                    4 => {
                        let raw = raw.clone();
                        tokio::task::spawn_blocking(move || {
                            raw.tx(n);
                            raw.backpressure();
                        })
                        .await
                        .unwrap()
                    }
                    5 => {
                        let k = SessionToken::generate().storage_key();
                        let r = &live.records[i];
                        let t = Instant::now();
                        store.create(&k, r).await.unwrap();
                        stats[v].add(t.elapsed());
                        store.delete(&k).await.unwrap();
                        continue;
                    }
                    6 => {
                        let r = &mut live.records[i];
                        r.version = store.save(&live.keys[i], r, now).await.unwrap();
                    }
                    _ => {
                        let Some(Lookup::Session(mut r)) =
                            store.load(&live.keys[i], now).await.unwrap()
                        else {
                            panic!("session lost")
                        };
                        r.data[0] = r.data[0].wrapping_add(1);
                        r.version = store.save(&live.keys[i], &r, now).await.unwrap();
                        live.records[i] = r;
                    }
                }
                stats[v].add(t.elapsed());
            }
        }
        for _ in 0..(ops / 20).max(10) {
            n += 1;
            let i = n % SESSIONS;
            let r = &mut dlive.records[i];
            let t = Instant::now();
            r.version = durable.save(&dlive.keys[i], r, now).await.unwrap();
            dstat.add(t.elapsed());
        }
    }
    println!(
        "{:>16} {:>8} {:>9} {:>9} {:>9} {:>10}",
        "µs", "n", "p50", "p99", "mean", "max"
    );
    for (v, s) in VARIANTS.iter().zip(&mut stats) {
        s.line(v);
    }
    raw.flushes.lock().unwrap().line("flush (in bp)");
    dstat.line("durable save");
}

fn main() {
    let mut args = std::env::args().skip(1);
    let rounds = args.next().map_or(6, |a| a.parse().unwrap());
    let ops = args.next().map_or(2000, |a| a.parse().unwrap());
    println!(
        "loadavg {}",
        std::fs::read_to_string("/proc/loadavg").unwrap().trim()
    );
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
        .block_on(run(rounds, ops));
    println!(
        "loadavg {}",
        std::fs::read_to_string("/proc/loadavg").unwrap().trim()
    );
}
