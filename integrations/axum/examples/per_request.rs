//! Per-request CPU work of the read and update paths, for
//! `valgrind --tool=callgrind` (instruction counts repeat where wall time on
//! a shared machine does not): serves `N` requests in-process (the router
//! called as a `tower` service, no socket) over a `MemoryStore`, through this
//! layer (`ours`), through tower-sessions with the `session-store-tower-sessions`
//! adapter on the same store (`tower`), with no session (`none`), or with
//! no session layer and a handler that makes one `SessionBackend::load` of a
//! stored session (`none-load`: the cost of "one backend round trip" on
//! this store, as the HTTP benchmark's `none`/`load` handler makes it).
//!
//! ```text
//! cargo build --release -p session-store-axum --example per_request
//! valgrind --tool=callgrind target/release/examples/per_request ours read 1000
//! ```
//!
//! Instructions per request: the difference between two runs with different
//! `N`, divided by the difference of `N` (start-up cancels out).

use std::future::poll_fn;
use std::sync::Arc;

use axum::body::Body;
use axum::http::{Request, Response, StatusCode};
use axum::routing::get;
use axum::Router;
use session_store_axum::{Session, SessionConfig, SessionError, SessionLayer};
use session_store_core::{
    ClientMeta, MemoryStore, SessionBackend, SessionManager, StorageKey, Timestamp,
};
use session_store_tower_sessions::TowerSessionStore;
use tower_service::Service;
use tower_sessions::SessionManagerLayer;

async fn ours_start(s: Session) -> Result<String, SessionError> {
    s.insert("n", &7u64).await?;
    Ok("7".into())
}

async fn ours_read(s: Session) -> Result<String, SessionError> {
    Ok(s.get::<u64>("n").await?.unwrap_or(0).to_string())
}

async fn ours_update(s: Session) -> Result<String, SessionError> {
    let n = s.update("n", |n: &mut u64| {
        *n += 1;
        *n
    });
    Ok(n.await?.to_string())
}

async fn tower_start(s: tower_sessions::Session) -> Result<String, &'static str> {
    s.insert("n", 7u64).await.map_err(|_| "insert")?;
    Ok("7".into())
}

async fn tower_read(s: tower_sessions::Session) -> Result<String, &'static str> {
    let n: Option<u64> = s.get("n").await.map_err(|_| "get")?;
    Ok(n.unwrap_or(0).to_string())
}

async fn tower_update(s: tower_sessions::Session) -> Result<String, &'static str> {
    let n: u64 = s.get("n").await.map_err(|_| "get")?.unwrap_or(0);
    s.insert("n", n + 1).await.map_err(|_| "insert")?;
    Ok((n + 1).to_string())
}

/// The `none-load` handler's state: the store and the key it loads.
#[derive(Clone)]
struct RoundTrip {
    backend: Arc<dyn SessionBackend>,
    key: StorageKey,
}

async fn none_load(
    axum::extract::State(rt): axum::extract::State<RoundTrip>,
) -> Result<&'static str, StatusCode> {
    match rt.backend.load(&rt.key, Timestamp::now_utc()).await {
        Ok(Some(_)) => Ok("7"),
        _ => Err(StatusCode::INTERNAL_SERVER_ERROR),
    }
}

async fn router(kind: &str) -> Router {
    let backend: Arc<dyn SessionBackend> = Arc::new(MemoryStore::new());
    match kind {
        "ours" => Router::new()
            .route("/start", get(ours_start))
            .route("/read", get(ours_read))
            .route("/update", get(ours_update))
            .layer(
                SessionLayer::new(SessionManager::new(backend), SessionConfig::default())
                    .expect("default config"),
            ),
        "tower" => Router::new()
            .route("/start", get(tower_start))
            .route("/read", get(tower_read))
            .route("/update", get(tower_update))
            .layer(SessionManagerLayer::new(TowerSessionStore::new(backend)).with_secure(false)),
        "none" => Router::new()
            .route("/start", get(|| async { "7" }))
            .route("/read", get(|| async { "7" })),
        "none-load" => {
            let session = SessionManager::new(backend.clone())
                .create(br#"{"v":{"n":7}}"#.to_vec(), ClientMeta::default())
                .await
                .expect("create");
            let rt = RoundTrip {
                backend,
                key: session.storage_key(),
            };
            Router::new()
                .route("/start", get(|| async { "7" }))
                .route("/read", get(none_load))
                .with_state(rt)
        }
        other => panic!("unknown kind {other:?}: ours, tower, none or none-load"),
    }
}

async fn call(router: &mut Router, path: &str, cookie: Option<&str>) -> Response<Body> {
    let mut req = Request::get(path);
    if let Some(c) = cookie {
        req = req.header("cookie", c);
    }
    poll_fn(|cx| Service::<Request<Body>>::poll_ready(router, cx))
        .await
        .expect("ready");
    router
        .call(req.body(Body::empty()).expect("request"))
        .await
        .expect("infallible")
}

/// Serves `n` requests of `kind` (`ours`, `tower`, `none`, `none-load`) to `path`
/// (`read`, `update`) on one session; returns the last body.
#[inline(never)]
async fn serve(kind: &str, path: &str, n: usize) -> String {
    let mut router = router(kind).await;
    let start = call(&mut router, "/start", None).await;
    let cookie = start
        .headers()
        .get("set-cookie")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .map(str::to_owned);
    let url = format!("/{path}");
    let mut last = Vec::new();
    for _ in 0..n {
        let res = call(&mut router, &url, cookie.as_deref()).await;
        assert_eq!(res.status(), StatusCode::OK);
        last = axum::body::to_bytes(res.into_body(), usize::MAX)
            .await
            .expect("body")
            .to_vec();
    }
    String::from_utf8(last).expect("UTF-8 body")
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let kind = args.first().map_or("ours", String::as_str);
    let path = args.get(1).map_or("read", String::as_str);
    let n: usize = args.get(2).map_or(Ok(1000), |s| s.parse()).expect("N");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let last = rt.block_on(serve(kind, path, n));
    let expected = match path {
        "update" => (7 + n).to_string(),
        _ => "7".into(),
    };
    assert_eq!(
        last, expected,
        "{kind} {path}: every request saw its session"
    );
    println!("{kind} {path} {n}: {last}");
}
