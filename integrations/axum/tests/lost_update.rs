//! The lost-update comparison: 64 concurrent requests on one session, each
//! adding one to a counter, through this layer (`Session::update`) and
//! through axum + tower-sessions (a handler written as its docs show:
//! `get`, then `insert`, saved by the middleware) over tower-sessions'
//! `MemoryStore` and over this workspace's tower-sessions adapter on SQLite
//! and Redis. Prints how many of the 64 increments survive in each setup;
//! asserts 64 for ours. (The per-backend check of ours, on SQLite,
//! encrypted SQLite, PostgreSQL and Redis, is `no_lost_updates` in `http.rs`.)

mod common;

use std::sync::Arc;

use axum::routing::{get, post};
use axum::Router;
use common::{reply, serve, Browser};
use session_store_axum::{Session, SessionConfig, SessionError, SessionLayer};
use session_store_core::{MemoryStore, SessionManager};
use session_store_tower_sessions::TowerSessionStore;
use tower_sessions::{SessionManagerLayer, SessionStore};

const REQUESTS: usize = 64;

struct Figure {
    final_value: u64,
    failed_requests: usize,
}

/// Sends `REQUESTS` concurrent POST /incr with one session's cookie (and
/// `csrf` header when given), then reads GET /n.
async fn race(base: &str, browser: &Browser, csrf: Option<&str>) -> Figure {
    let requests = (0..REQUESTS).map(|_| {
        let mut r = browser.client.post(format!("{base}/incr"));
        if let Some(t) = csrf {
            r = r.header("x-csrf-token", t);
        }
        r.send()
    });
    let mut failed_requests = 0;
    for r in futures::future::join_all(requests).await {
        if reply(r.unwrap()).await.status != 200 {
            failed_requests += 1;
        }
    }
    let final_value = browser.get("/n").await.body.trim().parse().unwrap();
    Figure {
        final_value,
        failed_requests,
    }
}

async fn ours() -> Figure {
    async fn incr(s: Session) -> Result<String, SessionError> {
        let n = s.update("n", |n: &mut u64| {
            *n += 1;
            *n
        });
        Ok(n.await?.to_string())
    }
    async fn read(s: Session) -> Result<String, SessionError> {
        Ok(s.get::<u64>("n").await?.unwrap_or(0).to_string())
    }
    async fn start(s: Session) -> Result<String, SessionError> {
        s.login("alice").await?;
        s.csrf_token().await
    }
    let manager = SessionManager::new(Arc::new(MemoryStore::new()));
    let app = Router::new()
        .route("/incr", post(incr))
        .route("/n", get(read))
        .route("/start", post(start))
        .route(
            "/csrf",
            get(|s: Session| async move { s.csrf_token().await }),
        )
        .layer(SessionLayer::new(manager, SessionConfig::default()).unwrap());
    let base = serve(app).await;
    let b = Browser::new(&base, "UA");
    let t = b.csrf().await;
    let csrf = b.post("/start", Some(&t), &[]).await.body;
    race(&base, &b, Some(&csrf)).await
}

async fn tower_sessions_over<S>(store: S) -> Figure
where
    S: SessionStore + Clone,
{
    async fn incr(session: tower_sessions::Session) -> String {
        let n: u64 = session.get("n").await.expect("get").unwrap_or(0);
        session.insert("n", n + 1).await.expect("insert");
        (n + 1).to_string()
    }
    async fn read(session: tower_sessions::Session) -> String {
        let n: u64 = session.get("n").await.expect("get").unwrap_or(0);
        n.to_string()
    }
    let app = Router::new()
        .route("/incr", post(incr))
        .route("/n", get(read))
        .route(
            "/start",
            post(|s: tower_sessions::Session| async move {
                s.insert("n", 0u64).await.expect("insert");
                "ok"
            }),
        )
        .layer(SessionManagerLayer::new(store).with_secure(false));
    let base = serve(app).await;
    let b = Browser::new(&base, "UA");
    assert_eq!(b.post("/start", None, &[]).await.status, 200);
    race(&base, &b, None).await
}

/// Rounds per setup (each a fresh server and session).
const ROUNDS: usize = 5;

fn report(setup: &str, rounds: &[Figure]) {
    let kept: Vec<u64> = rounds.iter().map(|f| f.final_value).collect();
    let failed: Vec<usize> = rounds.iter().map(|f| f.failed_requests).collect();
    println!(
        "lost-update check: {setup}: {}..={} of {REQUESTS} increments survive (rounds {kept:?}; failed requests {failed:?})",
        kept.iter().min().unwrap(),
        kept.iter().max().unwrap(),
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lost_updates_compared() {
    let mut mine = Vec::new();
    for _ in 0..ROUNDS {
        mine.push(ours().await);
    }
    report(
        "session-store-axum (Session::update) over MemoryStore",
        &mine,
    );

    let mut memory = Vec::new();
    for _ in 0..ROUNDS {
        memory.push(tower_sessions_over(tower_sessions::MemoryStore::default()).await);
    }
    report(
        "axum + tower-sessions over tower-sessions' MemoryStore",
        &memory,
    );

    let sqlite = session_store_test_support::sqlite().await.unwrap();
    let mut adapter = Vec::new();
    for _ in 0..ROUNDS {
        adapter.push(tower_sessions_over(TowerSessionStore::new(sqlite.backend.clone())).await);
    }
    report(
        "axum + tower-sessions over session-store-tower-sessions (SQLite)",
        &adapter,
    );
    sqlite.finish().await;

    if let Some(redis) = session_store_test_support::redis("axum-lost-update").await {
        let mut adapter = Vec::new();
        for _ in 0..ROUNDS {
            adapter.push(tower_sessions_over(TowerSessionStore::new(redis.backend.clone())).await);
        }
        report(
            "axum + tower-sessions over session-store-tower-sessions (Redis)",
            &adapter,
        );
        redis.finish().await;
    }

    for f in &mine {
        assert_eq!(f.final_value, REQUESTS as u64, "ours keeps every update");
        assert_eq!(f.failed_requests, 0);
    }
}
