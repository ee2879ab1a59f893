//! Latency samples, percentiles and the JSON-lines result files.

use std::fs::OpenOptions;
use std::io::Write as _;
use std::path::Path;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Latency distribution of one measured series.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    /// Operations measured.
    pub n: u64,
    /// Median latency, nanoseconds.
    pub p50_ns: f64,
    /// 99th percentile latency, nanoseconds.
    pub p99_ns: f64,
    /// Mean latency, nanoseconds.
    pub mean_ns: f64,
    /// Throughput: operations per second of wall time.
    pub ops_per_sec: f64,
}

/// The `q`-quantile (0..=1) of sorted samples (nearest rank).
fn quantile(sorted: &[u64], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1] as f64
}

impl Summary {
    /// Summarises per-operation latencies (nanoseconds) measured over `wall`
    /// time in total. `None` without samples.
    pub fn of(mut samples: Vec<u64>, wall: Duration) -> Option<Self> {
        if samples.is_empty() {
            return None;
        }
        samples.sort_unstable();
        let n = samples.len() as u64;
        let mean = samples.iter().map(|&s| s as f64).sum::<f64>() / n as f64;
        let secs = wall.as_secs_f64();
        Some(Summary {
            n,
            p50_ns: quantile(&samples, 0.50),
            p99_ns: quantile(&samples, 0.99),
            mean_ns: mean,
            ops_per_sec: if secs > 0.0 { n as f64 / secs } else { 0.0 },
        })
    }
}

/// What one HTTP request cost beyond its latency, averaged over a point.
/// Each is `None` where it was not measured (results written before these
/// counts existed, or a kernel without `/proc/self/task/*/schedstat`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct HttpCost {
    /// CPU time of the whole benchmark process (clients, server, store
    /// client and store threads) per request, nanoseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu_ns: Option<f64>,
    /// Times a thread of the process was switched onto a CPU, per request.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub switches: Option<f64>,
    /// `SessionBackend` calls (backend round trips) per request.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backend_calls: Option<f64>,
}

/// One round of an HTTP point: the point's series are measured in rounds,
/// every series once per round, so rounds of two series are paired in time.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct HttpRound {
    /// Median latency of the round's requests, nanoseconds.
    pub p50_ns: f64,
    /// Requests per second over the round.
    pub ops_per_sec: f64,
}

/// One line of a result file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Record {
    /// A single-task operation (criterion group `op`-`payload`).
    Op {
        /// Operation (`create`, `load`, ..., or `read`/`write` for baselines).
        op: String,
        /// Payload label (`200B`, `4KiB`).
        payload: String,
        /// Backend or baseline id (`redis`, `redis+enc`, `raw-redis-GET`...).
        id: String,
        /// The measurement.
        summary: Summary,
    },
    /// One concurrency point.
    Concurrency {
        /// `load` or `save`.
        op: String,
        /// Backend or baseline id.
        id: String,
        /// Concurrent tasks.
        tasks: usize,
        /// The measurement (throughput over the point's duration).
        summary: Summary,
    },
    /// One point of a request-shaped sequence (`benches/requests.rs`).
    Request {
        /// The runtime shape ([`crate::Shape::id`]); `idle` in results
        /// written before shapes existed.
        #[serde(default = "idle_shape")]
        shape: String,
        /// `create`, `load`, `load_save`, `load_rotate` or `load_touch`.
        sequence: String,
        /// The path: `<target>` (manager), `<target>/tower`,
        /// `<target>/actix`, or a peer store (`peer-tower-memory`,
        /// `peer-tower-moka`, `peer-tower-redis`).
        id: String,
        /// Concurrent tasks, each on its own session.
        tasks: usize,
        /// Latency of the whole sequence; throughput in sequences per second.
        summary: Summary,
    },
    /// One point of the HTTP benchmark (`benches/http.rs`): loopback
    /// requests through a web stack, or one backend round trip for scale.
    Http {
        /// The store behind the stack (`sqlite`, `redis`).
        backend: String,
        /// `ours` (session-store-axum), `tower` (axum + tower-sessions over
        /// session-store-tower-sessions), `none` (no session layer), or
        /// `backend-load` (`SessionBackend::load` called directly, no HTTP).
        path: String,
        /// `read` or `update` (`load` for `backend-load`).
        handler: String,
        /// Concurrent clients (tasks for `backend-load`), each on its own session.
        clients: usize,
        /// Requests that failed: a non-2xx status or an unexpected body.
        errors: usize,
        /// Latency per request; throughput in requests per second.
        summary: Summary,
        /// Per-request costs beyond latency (absent in older results).
        #[serde(default, flatten)]
        cost: HttpCost,
        /// The point's rounds, in order (absent in older results).
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        rounds: Vec<HttpRound>,
    },
    /// Latency with `live` sessions in the store.
    Scale {
        /// `load` or `save`.
        op: String,
        /// Backend id.
        id: String,
        /// Live sessions in the store.
        live: usize,
        /// The measurement.
        summary: Summary,
    },
    /// A one-off timed task (population, cleanup, delete-by-user).
    Task {
        /// What was timed (`cleanup`, `delete_user_100`, `populate`).
        what: String,
        /// Backend id.
        id: String,
        /// Items involved (sessions removed, sessions in the store...).
        items: usize,
        /// Median seconds over the repetitions.
        seconds: f64,
        /// Free-form detail.
        note: String,
    },
    /// A backend that could not be measured, and why.
    Missing {
        /// Backend or baseline id.
        id: String,
        /// The reason.
        reason: String,
    },
    /// Facts about the machine and the servers.
    Machine {
        /// Name → value.
        facts: Vec<(String, String)>,
    },
}

/// The shape of request results that name none.
fn idle_shape() -> String {
    crate::Shape::Idle.id().to_owned()
}

/// Appends `record` as one JSON line to `path`.
///
/// # Panics
/// If the file cannot be written (a benchmark run without results is useless).
pub fn append(path: &Path, record: &Record) {
    let mut f = OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .unwrap_or_else(|e| panic!("open {}: {e}", path.display()));
    let line = serde_json::to_string(record).expect("records serialize");
    writeln!(f, "{line}").unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
}

/// Reads every record of a JSON-lines file (missing file: none).
///
/// # Panics
/// On a line that is not a record.
pub fn read_all(path: &Path) -> Vec<Record> {
    let Ok(text) = std::fs::read_to_string(path) else {
        return Vec::new();
    };
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            serde_json::from_str(l)
                .unwrap_or_else(|e| panic!("bad record in {}: {e}: {l}", path.display()))
        })
        .collect()
}
