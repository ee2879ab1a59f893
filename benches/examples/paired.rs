//! Store operations and their raw baselines interleaved one by one, for the
//! SQL backends: `load`/`save` (backend level and through the manager)
//! against the primary-key `SELECT` and the upsert on a dedicated connection.
//!
//! The criterion groups measure a store and its baseline seconds apart. On a
//! shared machine the cost of a durable commit changes over such spans (the
//! flush waits for whatever else the disk is writing), so a write ratio from
//! separate blocks can compare a slow phase with a fast one. Here each round
//! runs one store operation and one baseline operation back to back
//! (alternating which goes first), so both see the same conditions; the
//! ratio of medians is printed per target, operation and payload.
//!
//! `cargo run --release -p session-store-benches --example paired [postgres] [mysql] [rounds]`
//! (servers from `.cargo/config.toml`, as for the benchmarks).

use std::time::{Duration, Instant};

use session_store_benches::raw::{RawMySql, RawPostgres};
use session_store_benches::{payload, populate, Fixture, Target, PAYLOADS};
use session_store_core::{ClientMeta, Lookup, SessionToken, Timestamp};

/// The dedicated-connection baseline of one SQL target.
enum Raw {
    Postgres(RawPostgres),
    Mysql(RawMySql),
}

impl Raw {
    async fn open(target: Target) -> Raw {
        match target {
            Target::Postgres => Raw::Postgres(RawPostgres::new().await.expect("raw postgres")),
            Target::Mysql => Raw::Mysql(RawMySql::new().await.expect("raw mysql")),
            other => panic!("no SQL baseline for {}", other.id()),
        }
    }

    async fn select(&mut self, key: &[u8]) -> usize {
        match self {
            Raw::Postgres(p) => p.select_conn(key).await,
            Raw::Mysql(m) => m.select_conn(key).await,
        }
    }

    async fn upsert(&mut self, key: &[u8], data: &[u8]) {
        match self {
            Raw::Postgres(p) => p.upsert_conn(key, data).await,
            Raw::Mysql(m) => m.upsert_conn(key, data).await,
        }
    }

    async fn close(self) {
        match self {
            Raw::Postgres(p) => p.close().await,
            Raw::Mysql(m) => m.close().await,
        }
    }
}

fn p50(mut v: Vec<Duration>) -> Duration {
    v.sort_unstable();
    v[v.len() / 2]
}

fn us(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

/// Times `store` and `raw` alternately for `rounds` rounds; p50 of each.
async fn paired<S, R, FS, FR>(rounds: usize, mut store: S, mut raw: R) -> (Duration, Duration)
where
    S: FnMut() -> FS,
    R: FnMut() -> FR,
    FS: std::future::Future<Output = ()>,
    FR: std::future::Future<Output = ()>,
{
    let (mut a, mut b) = (Vec::with_capacity(rounds), Vec::with_capacity(rounds));
    for i in 0..rounds {
        for first in [i % 2 == 0, i % 2 != 0] {
            let t = Instant::now();
            if first {
                store().await;
                a.push(t.elapsed());
            } else {
                raw().await;
                b.push(t.elapsed());
            }
        }
    }
    (p50(a), p50(b))
}

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let rounds = args
        .iter()
        .find_map(|a| a.parse::<usize>().ok())
        .unwrap_or(1000);
    let targets: Vec<Target> = [Target::Postgres, Target::Mysql]
        .into_iter()
        .filter(|t| args.is_empty() || args.iter().any(|a| a == t.id()))
        .collect();
    println!("| target | payload | operation | store p50 | raw p50 | ratio |");
    println!("| --- | --- | --- | --- | --- | --- |");
    for target in targets {
        let fx = Fixture::open(target).await.expect("fixture");
        // Locks only to share the baseline, the record and the session
        // between the two closures of a round (never contended).
        let raw = tokio::sync::Mutex::new(Raw::open(target).await);
        for (label, len) in PAYLOADS {
            let data = payload(len);
            let backend = fx.backend(false);
            let manager = fx.manager(false, false);
            let raw_key: [u8; 32] = rand::random();
            raw.lock().await.upsert(&raw_key, &data).await;
            let key = SessionToken::generate().storage_key();
            let record = populate::record(Timestamp::now_utc(), data.clone(), None);
            backend.create(&key, &record).await.expect("create");
            let session = manager
                .create(data.clone(), ClientMeta::default())
                .await
                .expect("create");
            let token = session.token().expose_secret().to_owned();
            let (record, session) = (
                tokio::sync::Mutex::new(record),
                tokio::sync::Mutex::new(session),
            );
            let rows = [
                (
                    "backend load",
                    paired(
                        rounds,
                        || async {
                            let found = backend.load(&key, Timestamp::now_utc()).await;
                            assert!(matches!(found, Ok(Some(Lookup::Session(_)))));
                        },
                        || async {
                            std::hint::black_box(raw.lock().await.select(&raw_key).await);
                        },
                    )
                    .await,
                ),
                (
                    "load",
                    paired(
                        rounds,
                        || async {
                            manager.load(&token).await.expect("load").expect("live");
                        },
                        || async {
                            std::hint::black_box(raw.lock().await.select(&raw_key).await);
                        },
                    )
                    .await,
                ),
            ];
            for (op, (s, r)) in rows {
                print_row(target, label, op, s, r);
            }
            let (s, r) = paired(
                rounds,
                || async {
                    let mut rec = record.lock().await;
                    rec.version = backend
                        .save(&key, &rec, Timestamp::now_utc())
                        .await
                        .expect("save");
                },
                || async { raw.lock().await.upsert(&raw_key, &data).await },
            )
            .await;
            print_row(target, label, "backend save", s, r);
            let (s, r) = paired(
                rounds,
                || async {
                    let mut s = session.lock().await;
                    manager.save(&mut s).await.expect("save");
                },
                || async { raw.lock().await.upsert(&raw_key, &data).await },
            )
            .await;
            print_row(target, label, "save", s, r);
        }
        raw.into_inner().close().await;
        fx.teardown().await;
    }
}

fn print_row(target: Target, payload: &str, op: &str, store: Duration, raw: Duration) {
    println!(
        "| {} | {payload} | {op} | {:.0} µs | {:.0} µs | {:.2}× |",
        target.id(),
        us(store),
        us(raw),
        store.as_secs_f64() / raw.as_secs_f64()
    );
}
