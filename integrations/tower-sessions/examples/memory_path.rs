//! The in-memory request path of the adapter against tower-sessions' own
//! `MemoryStore`, one task on a current-thread runtime, in interleaved
//! rounds (ours, peer, encrypted, typed, ...): `create`, `load`, and `load` then
//! `save` of one changed field, with about 1 KiB of data (the request
//! benchmark's record). Prints p50 and p99 per operation and the ratio of
//! our p50 to the peer's.
//!
//! `cargo run --release -p session-store-tower-sessions --example memory_path`
//! (arguments: `[rounds] [iterations per round]`), or under callgrind with
//! `memory_path callgrind <ours|peer|encrypted|typed> <create|load|load_save> [n]`
//! ("typed" is `TowerSessionStore::in_memory`, "ours" the adapter over
//! `MemoryStore`)
//! to count the instructions of one path alone, or `memory_path parts` for
//! the pieces of a request alone (what a decoded-data cache would save).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use serde_json::Value;
use session_store_core::{Encrypted, EncryptionKey, Keyring, MemoryStore};
use session_store_tower_sessions::TowerSessionStore;
use tower_sessions::session::{Id, Record};
use tower_sessions::SessionStore;

fn record() -> Record {
    Record {
        id: Id::default(),
        data: HashMap::from([
            ("blob".to_owned(), Value::String("x".repeat(1024))),
            ("n".to_owned(), Value::from(0u64)),
        ]),
        expiry_date: time::OffsetDateTime::now_utc() + time::Duration::minutes(10),
    }
}

/// One operation of the sequence `op` on `store`, on the session `id`.
async fn step<S: SessionStore>(store: &S, op: &str, id: Id) {
    match op {
        "create" => {
            let mut r = record();
            store.create(&mut r).await.expect("create");
            store.delete(&r.id).await.expect("delete");
        }
        "load" => {
            store.load(&id).await.expect("load").expect("live");
        }
        _ => {
            let mut r = store.load(&id).await.expect("load").expect("live");
            let n = r.data["n"].as_u64().unwrap_or(0);
            r.data.insert("n".into(), Value::from(n + 1));
            store.save(&r).await.expect("save");
        }
    }
}

/// `n` timed steps; nanoseconds of each.
async fn round<S: SessionStore>(store: &S, op: &str, id: Id, n: usize) -> Vec<u64> {
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        let t = Instant::now();
        step(store, op, id).await;
        out.push(t.elapsed().as_nanos() as u64);
    }
    out
}

fn pct(v: &mut [u64], p: f64) -> f64 {
    v.sort_unstable();
    v[((v.len() - 1) as f64 * p) as usize] as f64 / 1e3
}

async fn seeded<S: SessionStore>(store: &S) -> Id {
    let mut r = record();
    store.create(&mut r).await.expect("create");
    r.id
}

fn ours() -> TowerSessionStore {
    TowerSessionStore::new(Arc::new(MemoryStore::new()))
}

fn encrypted() -> TowerSessionStore {
    TowerSessionStore::new(Arc::new(Encrypted::new(
        Arc::new(MemoryStore::new()),
        Keyring::new(1, EncryptionKey::generate()),
    )))
}

/// Median nanoseconds per call of each piece, batches of 1000 calls in
/// interleaved rounds: decoding the stored JSON, what a cache hit costs
/// instead (compare the stored bytes, clone the map), encoding (serde_json
/// and ours), the save's fingerprint, the carried version's text.
fn parts() {
    use std::hash::BuildHasher;
    let data = record().data;
    let bytes = serde_json::to_vec(&data).expect("json");
    let cached = bytes.clone();
    let state = std::collections::hash_map::RandomState::new();
    let loaded = session_store_core::LoadedRecord {
        version: 12,
        load: 123_456,
        created_at: session_store_core::Timestamp::now_utc(),
        last_seen_at: session_store_core::Timestamp::now_utc(),
        absolute_deadline: session_store_core::Timestamp::now_utc(),
        auth_time: None,
    };
    type Part<'a> = (&'a str, Box<dyn Fn() -> usize + 'a>);
    let parts: Vec<Part> = vec![
        (
            "decode (serde_json::from_slice)",
            Box::new(|| {
                serde_json::from_slice::<HashMap<String, Value>>(&bytes)
                    .expect("decode")
                    .len()
            }),
        ),
        (
            "cache hit (compare bytes, clone map)",
            Box::new(|| {
                assert!(std::hint::black_box(&cached) == &bytes);
                data.clone().len()
            }),
        ),
        (
            "encode (serde_json::to_vec)",
            Box::new(|| serde_json::to_vec(&data).expect("json").len()),
        ),
        (
            "fingerprint (SipHash of the bytes)",
            Box::new(|| state.hash_one((&bytes, &None::<String>)) as usize),
        ),
        (
            "carried version text (LoadedRecord::encode)",
            Box::new(|| loaded.encode().len()),
        ),
    ];
    let mut samples = vec![Vec::new(); parts.len()];
    for _ in 0..200 {
        for (i, (_, f)) in parts.iter().enumerate() {
            let t = Instant::now();
            for _ in 0..1000 {
                std::hint::black_box(f());
            }
            samples[i].push(t.elapsed().as_nanos() as u64);
        }
    }
    for ((name, _), s) in parts.iter().zip(&mut samples) {
        println!("{name:<45} p50 {:>7.0} ns", pct(s, 0.5));
    }
}

async fn main_async() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("parts") {
        parts();
        return;
    }
    if args.first().map(String::as_str) == Some("callgrind") {
        let op = args.get(2).map_or("load_save", String::as_str);
        let n: usize = args.get(3).and_then(|s| s.parse().ok()).unwrap_or(10_000);
        match args.get(1).map_or("ours", String::as_str) {
            "peer" => {
                let s = tower_sessions::MemoryStore::default();
                let id = seeded(&s).await;
                round(&s, op, id, n).await;
            }
            "typed" => {
                let s = TowerSessionStore::in_memory();
                let id = seeded(&s).await;
                round(&s, op, id, n).await;
            }
            "encrypted" => {
                let s = encrypted();
                let id = seeded(&s).await;
                round(&s, op, id, n).await;
            }
            _ => {
                let s = ours();
                let id = seeded(&s).await;
                round(&s, op, id, n).await;
            }
        }
        return;
    }
    let rounds: usize = args.first().and_then(|s| s.parse().ok()).unwrap_or(10);
    let n: usize = args.get(1).and_then(|s| s.parse().ok()).unwrap_or(20_000);
    let (a, b, c) = (ours(), tower_sessions::MemoryStore::default(), encrypted());
    let d = TowerSessionStore::in_memory();
    let (ida, idb, idc) = (seeded(&a).await, seeded(&b).await, seeded(&c).await);
    let idd = seeded(&d).await;
    println!("op         path       p50 us   p99 us   ours/peer p50");
    for op in ["create", "load", "load_save"] {
        let (mut sa, mut sb, mut sc) = (Vec::new(), Vec::new(), Vec::new());
        let mut sd = Vec::new();
        for _ in 0..rounds {
            sa.extend(round(&a, op, ida, n).await);
            sb.extend(round(&b, op, idb, n).await);
            sc.extend(round(&c, op, idc, n).await);
            sd.extend(round(&d, op, idd, n).await);
        }
        let (pa, pb, pc) = (pct(&mut sa, 0.5), pct(&mut sb, 0.5), pct(&mut sc, 0.5));
        let pd = pct(&mut sd, 0.5);
        println!(
            "{op:<10} ours      {pa:>7.2}  {:>7.2}   {:.2}x",
            pct(&mut sa, 0.99),
            pa / pb
        );
        println!("{op:<10} peer      {pb:>7.2}  {:>7.2}", pct(&mut sb, 0.99));
        println!(
            "{op:<10} encrypted {pc:>7.2}  {:>7.2}   {:.2}x",
            pct(&mut sc, 0.99),
            pc / pb
        );
        println!(
            "{op:<10} typed     {pd:>7.2}  {:>7.2}   {:.2}x",
            pct(&mut sd, 0.99),
            pd / pb
        );
    }
}

fn main() {
    tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime")
        .block_on(main_async());
}
