//! HTTP benchmark on loopback (issue 11): requests per second, p50 and p99
//! of a handler that reads the session and of one that updates it, through
//! `session-store-axum` (`ours`), through axum + tower-sessions with
//! `session-store-tower-sessions` over the same backend (`tower`), and with
//! no session layer at all (`none`); SQLite and Redis; 1 and 64 concurrent
//! clients, each a `reqwest` client with its own cookie jar, keep-alive
//! connection and session. In the same run, one backend round trip
//! (`SessionBackend::load` called directly at the same concurrency,
//! `backend-load`) so the report can judge "the read path adds at most one
//! round trip over the no-session baseline".
//!
//! Bounded: every point runs for the mode's duration or until each client
//! sent its request cap, whichever comes first, after a discarded warm-up.
//! Every response is checked (status and body: the read handler must see
//! the value the client's session holds, the update handler must return
//! the previous value plus one), so a request that silently lost its
//! session counts as an error; in `ci` mode any error fails the run.
//!
//! Environment: `BENCH_MODE`, `BENCH_TARGETS` (`sqlite`, `redis`; others are
//! ignored), `BENCH_OUT`. Results: `http.jsonl`.

use std::future::Future;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::routing::get;
use axum::Router;
use session_store_axum::{Session, SessionConfig, SessionError, SessionLayer};
use session_store_benches::stats::{self, Record, Summary};
use session_store_benches::{payload, Fixture, Mode, Target};
use session_store_core::{ClientMeta, SessionBackend, SessionManager, Timestamp};
use session_store_tower_sessions::TowerSessionStore;
use tower_sessions::SessionManagerLayer;

/// The value every session starts with (so a request that lost its session,
/// and reads 0, is caught).
const START: u64 = 7;

/// The concurrency levels: the 1 and 64 clients, in every mode.
const CLIENTS: [usize; 2] = [1, 64];

/// How long one point runs, its discarded warm-up, and each client's request
/// cap (the point ends at whichever bound comes first).
fn bounds(mode: Mode) -> (Duration, Duration, usize) {
    match mode {
        Mode::Ci => (Duration::from_millis(100), Duration::from_millis(20), 40),
        Mode::Quick => (
            Duration::from_millis(1000),
            Duration::from_millis(250),
            5_000,
        ),
        Mode::Full => (
            Duration::from_millis(3000),
            Duration::from_millis(600),
            20_000,
        ),
    }
}

fn ns(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

async fn serve(app: Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind a loopback port");
    let addr = listener.local_addr().expect("local address");
    tokio::spawn(async move {
        axum::serve(
            listener,
            app.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .await
        .expect("serve")
    });
    format!("http://{addr}")
}

/// Our layer over `manager`.
fn ours(manager: SessionManager) -> Router {
    async fn start(s: Session) -> Result<String, SessionError> {
        s.insert("n", &START).await?;
        Ok(START.to_string())
    }
    async fn read(s: Session) -> Result<String, SessionError> {
        Ok(s.get::<u64>("n").await?.unwrap_or(0).to_string())
    }
    async fn update(s: Session) -> Result<String, SessionError> {
        let n = s.update("n", |n: &mut u64| {
            *n += 1;
            *n
        });
        Ok(n.await?.to_string())
    }
    Router::new()
        .route("/start", get(start))
        .route("/read", get(read))
        .route("/update", get(update))
        .layer(SessionLayer::new(manager, SessionConfig::default()).expect("default config"))
}

/// axum + tower-sessions over our adapter on the same backend.
fn tower(backend: Arc<dyn SessionBackend>) -> Router {
    async fn start(s: tower_sessions::Session) -> Result<String, &'static str> {
        s.insert("n", START).await.map_err(|_| "insert")?;
        Ok(START.to_string())
    }
    async fn read(s: tower_sessions::Session) -> Result<String, &'static str> {
        let n: Option<u64> = s.get("n").await.map_err(|_| "get")?;
        Ok(n.unwrap_or(0).to_string())
    }
    async fn update(s: tower_sessions::Session) -> Result<String, &'static str> {
        let n: u64 = s.get("n").await.map_err(|_| "get")?.unwrap_or(0);
        s.insert("n", n + 1).await.map_err(|_| "insert")?;
        Ok((n + 1).to_string())
    }
    Router::new()
        .route("/start", get(start))
        .route("/read", get(read))
        .route("/update", get(update))
        .layer(SessionManagerLayer::new(TowerSessionStore::new(backend)).with_secure(false))
}

/// No session layer: the same body a read returns.
fn none() -> Router {
    Router::new().route("/read", get(|| async { START.to_string() }))
}

/// One measured point: latencies and errors of every client.
struct Point {
    summary: Summary,
    errors: usize,
}

/// Runs `clients` tasks, each repeating `op` (which returns whether the
/// request was right) until `dur` passed or it made `cap` calls.
async fn drive<F, Fut>(
    clients: usize,
    dur: Duration,
    cap: usize,
    make: impl Fn(usize) -> F,
) -> Point
where
    F: FnMut() -> Fut + Send + 'static,
    Fut: Future<Output = bool> + Send,
{
    let start = Instant::now();
    let deadline = start + dur;
    let handles: Vec<_> = (0..clients)
        .map(|i| {
            let mut op = make(i);
            tokio::spawn(async move {
                let (mut lat, mut errors) = (Vec::with_capacity(1024), 0usize);
                while lat.len() < cap {
                    let t = Instant::now();
                    let ok = op().await;
                    lat.push(ns(t.elapsed()));
                    errors += usize::from(!ok);
                    if Instant::now() >= deadline {
                        break;
                    }
                }
                (lat, errors)
            })
        })
        .collect();
    let (mut all, mut errors) = (Vec::new(), 0);
    for h in handles {
        let (lat, e) = h.await.expect("client task");
        all.extend(lat);
        errors += e;
    }
    Point {
        summary: Summary::of(all, start.elapsed()).expect("at least one request"),
        errors,
    }
}

/// One simulated browser: a cookie jar, a keep-alive connection, and the
/// value its session should hold.
struct Client {
    http: reqwest::Client,
    expected: u64,
}

impl Client {
    async fn new(base: &str, start: bool) -> Self {
        let http = reqwest::Client::builder()
            .cookie_store(true)
            .build()
            .expect("reqwest client");
        if start {
            let r = http
                .get(format!("{base}/start"))
                .send()
                .await
                .expect("start request");
            assert!(r.status().is_success(), "start: {}", r.status());
        }
        Client {
            http,
            expected: START,
        }
    }

    /// Sends one request; whether the status and body are what this
    /// client's session implies.
    async fn request(&mut self, url: &str, update: bool) -> bool {
        let Ok(r) = self.http.get(url).send().await else {
            return false;
        };
        let ok = r.status().is_success();
        let body = r.text().await.unwrap_or_default();
        if update {
            self.expected += 1;
        }
        ok && body == self.expected.to_string()
    }
}

fn record(
    out: &Path,
    mode: Mode,
    backend: Target,
    path: &str,
    handler: &str,
    clients: usize,
    p: &Point,
) {
    let s = &p.summary;
    println!(
        "http {:<6} {path:<12} {handler:<6} {clients:>2} clients: {:>7.0} req/s  p50 {:>8.1} us  p99 {:>8.1} us  errors {}",
        backend.id(),
        s.ops_per_sec,
        s.p50_ns / 1e3,
        s.p99_ns / 1e3,
        p.errors
    );
    assert!(
        mode != Mode::Ci || p.errors == 0,
        "http {} {path} {handler} at {clients} clients: {} requests failed",
        backend.id(),
        p.errors
    );
    stats::append(
        out,
        &Record::Http {
            backend: backend.id().to_owned(),
            path: path.to_owned(),
            handler: handler.to_owned(),
            clients,
            errors: p.errors,
            summary: *s,
        },
    );
}

/// Every HTTP point of one stack at one concurrency level: fresh clients
/// (and sessions) per handler, a discarded warm-up, then the measurement.
async fn http_points(
    base: &str,
    handlers: &[&'static str],
    session: bool,
    clients: usize,
    mode: Mode,
) -> Vec<(&'static str, Point)> {
    let (dur, warm, cap) = bounds(mode);
    let mut points = Vec::new();
    for &handler in handlers {
        let mut pool = Vec::with_capacity(clients);
        for _ in 0..clients {
            pool.push(Arc::new(tokio::sync::Mutex::new(
                Client::new(base, session).await,
            )));
        }
        let url = Arc::new(format!("{base}/{handler}"));
        let update = handler == "update";
        let run = |d: Duration, cap: usize| {
            drive(clients, d, cap, |i| {
                let (client, url) = (pool[i].clone(), url.clone());
                move || {
                    let (client, url) = (client.clone(), url.clone());
                    async move { client.lock().await.request(&url, update).await }
                }
            })
        };
        run(warm, cap / 4 + 1).await;
        points.push((handler, run(dur, cap).await));
    }
    points
}

/// One backend round trip: `SessionBackend::load` of the task's own session.
async fn backend_load(fx: &Fixture, clients: usize, mode: Mode) -> Point {
    let (dur, warm, cap) = bounds(mode);
    let backend = fx.backend(false);
    let manager = fx.manager(false, false);
    let mut keys = Vec::with_capacity(clients);
    for _ in 0..clients {
        let s = manager
            .create(payload(64), ClientMeta::default())
            .await
            .expect("create");
        keys.push(s.storage_key());
    }
    let run = |d: Duration, cap: usize| {
        drive(clients, d, cap, |i| {
            let (backend, key) = (backend.clone(), keys[i]);
            move || {
                let backend = backend.clone();
                async move { matches!(backend.load(&key, Timestamp::now_utc()).await, Ok(Some(_))) }
            }
        })
    };
    run(warm, cap / 4 + 1).await;
    run(dur, cap).await
}

async fn run_target(fx: &Fixture, mode: Mode, out: &Path) {
    let t = fx.target;
    let ours = serve(ours(fx.manager(false, false))).await;
    let tower = serve(tower(fx.backend(false))).await;
    let none = serve(none()).await;
    for clients in CLIENTS {
        let p = backend_load(fx, clients, mode).await;
        record(out, mode, t, "backend-load", "load", clients, &p);
        for (handler, p) in http_points(&none, &["read"], false, clients, mode).await {
            record(out, mode, t, "none", handler, clients, &p);
        }
        for (handler, p) in http_points(&ours, &["read", "update"], true, clients, mode).await {
            record(out, mode, t, "ours", handler, clients, &p);
        }
        for (handler, p) in http_points(&tower, &["read", "update"], true, clients, mode).await {
            record(out, mode, t, "tower", handler, clients, &p);
        }
    }
}

fn selected_targets() -> Vec<Target> {
    let wanted = [Target::Sqlite, Target::Redis];
    match std::env::var("BENCH_TARGETS") {
        Ok(list) if !list.trim().is_empty() => wanted
            .into_iter()
            .filter(|t| list.split(',').any(|x| x.trim() == t.id()))
            .collect(),
        _ => wanted.to_vec(),
    }
}

async fn guarded<T>(fut: impl Future<Output = T>) -> Result<T, String> {
    use futures::FutureExt as _;
    let bounded = async {
        tokio::time::timeout(Duration::from_secs(600), fut)
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

fn main() {
    let mode = Mode::from_env();
    let out = mode.out_dir().join("http.jsonl");
    let _ = std::fs::remove_file(&out);
    let rt = session_store_benches::runtime();
    rt.block_on(async {
        for target in selected_targets() {
            let result = match Fixture::open(target).await {
                Ok(fx) => {
                    let r = guarded(run_target(&fx, mode, &out)).await;
                    fx.teardown().await;
                    r
                }
                Err(reason) => Err(reason),
            };
            if let Err(reason) = result {
                if mode == Mode::Ci {
                    panic!("http {}: {reason}", target.id());
                }
                eprintln!("http {} failed: {reason}", target.id());
                stats::append(
                    &out,
                    &Record::Missing {
                        id: format!("http:{}", target.id()),
                        reason,
                    },
                );
            }
        }
    });
}
