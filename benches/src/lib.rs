//! # session-store-benches
//!
//! The benchmark harness of the workspace (not published). It measures every
//! backend through the [`SessionManager`](session_store_core::SessionManager),
//! plain and under [`Encrypted`](session_store_core::Encrypted), next to raw
//! baselines that use the same client crates, the same connection setup and
//! the same payloads, and renders `docs/benchmarks.md`.
//!
//! Run it with `scripts/bench.sh quick|full|ci` (see that script). Pieces:
//! - `benches/ops.rs`: criterion, one group per operation and payload, the
//!   backends and the raw baselines side by side. Every timed operation is also
//!   recorded individually, so the report has p50 and p99 per operation.
//! - `benches/load.rs`: throughput and latency at 1 to 256 concurrent tasks,
//!   and latency with 10^3 to 10^6 live sessions (bounded duration per point).
//! - `benches/requests.rs`: request-shaped store sequences (load then save,
//!   rotate or touch) through the manager, the adapters and a peer store.
//! - `benches/http.rs`: real HTTP on loopback (issue 11): a reading and an
//!   updating handler through `session-store-axum`, through axum +
//!   tower-sessions with the adapter, and with no session; SQLite and Redis;
//!   1 and 64 clients; plus one direct backend load at the same concurrency.
//! - `src/bin/bench-report.rs`: reads the JSON results and writes the report.
//!
//! Capabilities:
//! - [`Mode`]: `ci` (smoke run, tiny samples), `quick` (minutes), `full`.
//! - [`Target`] / [`Fixture`]: each backend in a fresh random namespace
//!   (temporary directory, Redis key prefix, PostgreSQL schema or MySQL
//!   table), removed
//!   afterwards.
//! - [`raw`]: the baselines (Redis `GET`/`SET PX`, PostgreSQL primary-key
//!   `SELECT`/upsert through the store's pool and on a dedicated connection,
//!   the same for MySQL/MariaDB,
//!   rusqlite on the calling thread, sled `get`/`insert`, AES-256-GCM).
//! - [`populate`]: bulk loading for the scale runs.
//! - [`Shape`]: the runtime shapes of the request benchmark.
//! - [`stats`]: percentiles and the JSON-lines result files.
//! - [`report`]: the Markdown report and its SVG charts.
#![forbid(unsafe_code)]
#![deny(missing_docs)]
#![cfg_attr(docsrs, feature(doc_cfg))]

mod fixture;
mod mode;
pub mod populate;
pub mod raw;
pub mod report;
mod shape;
pub mod stats;

pub use fixture::{payload, postgres_url, redis_url, Fixture, Target, PAYLOADS};
pub use mode::Mode;
pub use shape::{Load, Shape, BUSY_SPIN, BUSY_TASKS, BUSY_WORKERS};

/// A random lowercase hex tag for namespaces (key prefixes, schema names).
pub fn random_tag() -> String {
    format!("{:012x}", rand::random::<u64>() & 0xffff_ffff_ffff)
}

/// Records a namespace this run creates (`redis <key pattern>`,
/// `postgres <schema>` or `mysql <table>`) in `$BENCH_OUT/namespaces.txt`, so that
/// `scripts/bench.sh` removes it even when the run is interrupted, and removes
/// nothing else: other runs on the same servers are left alone.
pub fn register_namespace(kind: &str, name: &str) {
    use std::io::Write as _;
    let Some(dir) = std::env::var_os("BENCH_OUT") else {
        return;
    };
    let path = std::path::Path::new(&dir).join("namespaces.txt");
    if let Ok(mut f) = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
    {
        let _ = writeln!(f, "{kind} {name}");
    }
}

/// A multi-threaded tokio runtime with one worker per core (the machine this
/// runs on is what a session store would share with its application).
///
/// # Panics
/// If the runtime cannot be built.
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime")
}

/// Runs one part of a benchmark, bounded to 10 minutes: its panic (or the
/// timeout) becomes the `Err` message, so the run goes on with the next part
/// and the report lists this one as missing.
pub async fn guarded<T>(fut: impl std::future::Future<Output = T>) -> Result<T, String> {
    use futures::FutureExt as _;
    let bounded = async {
        tokio::time::timeout(std::time::Duration::from_secs(600), fut)
            .await
            .expect("a benchmark part hung for 10 minutes")
    };
    std::panic::AssertUnwindSafe(bounded)
        .catch_unwind()
        .await
        .map_err(|panic| {
            panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| (*s).to_owned()))
                .unwrap_or_else(|| "panicked".into())
        })
}
