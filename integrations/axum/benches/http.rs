//! HTTP benchmark on loopback: requests per second, p50 and p99 of a handler
//! that reads the session and of one that updates it, through
//! `session-store-axum`, through axum + tower-sessions with
//! `session-store-tower-sessions` over the same backend, and with no
//! session at all; SQLite and Redis; 1 and 64 concurrent clients, each on
//! its own session. Bounded: `BENCH_SECS` per point (default 2), after a
//! discarded warm-up of a quarter of that.
//!
//! `cargo bench -p session-store-axum --bench http`

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::routing::get;
use axum::Router;
use session_store_axum::{Session, SessionConfig, SessionError, SessionLayer};
use session_store_core::{SessionBackend, SessionManager};
use session_store_tower_sessions::TowerSessionStore;
use tower_sessions::SessionManagerLayer;

async fn serve(app: Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        axum::serve(
            listener,
            app.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .await
        .unwrap()
    });
    format!("http://{addr}")
}

fn ours(backend: Arc<dyn SessionBackend>) -> Router {
    async fn start(s: Session) -> Result<&'static str, SessionError> {
        s.insert("n", &0u64).await?;
        Ok("ok")
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
    let manager = SessionManager::new(backend);
    Router::new()
        .route("/start", get(start))
        .route("/read", get(read))
        .route("/update", get(update))
        .layer(SessionLayer::new(manager, SessionConfig::default()).unwrap())
}

fn tower(backend: Arc<dyn SessionBackend>) -> Router {
    async fn start(s: tower_sessions::Session) -> &'static str {
        s.insert("n", 0u64).await.unwrap();
        "ok"
    }
    async fn read(s: tower_sessions::Session) -> String {
        s.get::<u64>("n").await.unwrap().unwrap_or(0).to_string()
    }
    async fn update(s: tower_sessions::Session) -> String {
        let n: u64 = s.get("n").await.unwrap().unwrap_or(0);
        s.insert("n", n + 1).await.unwrap();
        (n + 1).to_string()
    }
    Router::new()
        .route("/start", get(start))
        .route("/read", get(read))
        .route("/update", get(update))
        .layer(SessionManagerLayer::new(TowerSessionStore::new(backend)).with_secure(false))
}

fn none() -> Router {
    Router::new().route("/read", get(|| async { "0" }))
}

struct Point {
    rps: f64,
    p50: Duration,
    p99: Duration,
    errors: usize,
}

async fn measure(base: &str, path: &str, clients: usize, secs: f64, start: bool) -> Point {
    let mut tasks = Vec::new();
    let deadline = Instant::now() + Duration::from_secs_f64(secs);
    let began = Instant::now();
    for _ in 0..clients {
        let base = base.to_owned();
        let path = path.to_owned();
        tasks.push(tokio::spawn(async move {
            let client = reqwest::Client::builder()
                .cookie_store(true)
                .build()
                .unwrap();
            if start {
                let r = client.get(format!("{base}/start")).send().await.unwrap();
                assert!(r.status().is_success());
            }
            let url = format!("{base}{path}");
            let (mut lat, mut errors) = (Vec::new(), 0usize);
            while Instant::now() < deadline {
                let t = Instant::now();
                let r = client.get(&url).send().await.unwrap();
                let ok = r.status().is_success();
                let _ = r.bytes().await;
                lat.push(t.elapsed());
                if !ok {
                    errors += 1;
                }
            }
            (lat, errors)
        }));
    }
    let (mut all, mut errors) = (Vec::new(), 0);
    for t in tasks {
        let (lat, e) = t.await.unwrap();
        all.extend(lat);
        errors += e;
    }
    let elapsed = began.elapsed().as_secs_f64();
    all.sort_unstable();
    let q = |p: f64| all[((all.len() as f64 * p) as usize).min(all.len() - 1)];
    Point {
        rps: all.len() as f64 / elapsed,
        p50: q(0.50),
        p99: q(0.99),
        errors,
    }
}

fn main() {
    let secs: f64 = std::env::var("BENCH_SECS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2.0);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        println!("| backend | path | handler | clients | req/s | p50 | p99 | errors |");
        println!("| --- | --- | --- | --- | ---: | ---: | ---: | ---: |");
        let mut backends = vec![("sqlite", session_store_test_support::sqlite().await.unwrap())];
        if let Some(r) = session_store_test_support::redis("axum-bench").await {
            backends.push(("redis", r));
        }
        for (name, b) in &backends {
            let setups = [
                ("session-store-axum", serve(ours(b.backend.clone())).await, true),
                ("tower-sessions + adapter", serve(tower(b.backend.clone())).await, true),
                ("no session", serve(none()).await, false),
            ];
            for clients in [1usize, 64] {
                for (setup, base, start) in &setups {
                    for handler in ["read", "update"] {
                        if !start && handler == "update" {
                            continue;
                        }
                        let path = format!("/{handler}");
                        // Warm-up (connections, caches), discarded.
                        measure(base, &path, clients, secs / 4.0, *start).await;
                        let p = measure(base, &path, clients, secs, *start).await;
                        println!(
                            "| {name} | {setup} | {handler} | {clients} | {:.0} | {:.2} ms | {:.2} ms | {} |",
                            p.rps,
                            p.p50.as_secs_f64() * 1e3,
                            p.p99.as_secs_f64() * 1e3,
                            p.errors
                        );
                    }
                }
            }
        }
        for (_, b) in backends {
            b.finish().await;
        }
    });
}
