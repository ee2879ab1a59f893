//! The adapter under tower-sessions' real middleware: an axum `Router` with
//! `SessionManagerLayer`, served on 127.0.0.1, driven by reqwest with a
//! cookie jar. Every scenario runs on every backend and on the typed
//! in-memory path (`TowerSessionStore::in_memory`).

use std::sync::Arc;
use std::time::Duration;

use axum::extract::Path;
use axum::routing::{get, post};
use axum::Router;
use session_store_core::{AdapterConfig, Clock as _, ManualClock, Timestamp};
use session_store_test_support::Browser;
use session_store_tower_sessions::{is_conflict, storage_key_for, TowerSessionStore};
use tower_sessions::session::{self, Id};
use tower_sessions::{Expiry, Session, SessionManagerLayer};

mod support;
use support::{on_both_paths, Target};

const IDLE_MINUTES: i64 = 10;

struct App {
    base: String,
    clock: Arc<ManualClock>,
    store: TowerSessionStore,
}

async fn set(session: Session, Path(v): Path<String>) -> &'static str {
    session.insert("v", v).await.expect("insert");
    "ok"
}

async fn read(session: Session) -> String {
    session
        .get::<String>("v")
        .await
        .expect("get")
        .unwrap_or_else(|| "none".into())
}

async fn login(session: Session, Path(user): Path<String>) -> &'static str {
    session.cycle_id().await.expect("cycle");
    session.insert("user", user).await.expect("insert");
    "ok"
}

async fn cycle(session: Session) -> &'static str {
    session.cycle_id().await.expect("cycle");
    "ok"
}

async fn logout(session: Session) -> &'static str {
    session.flush().await.expect("flush");
    "ok"
}

/// Adds one to the counter; the middleware saves (and answers 500 when the
/// save loses a race).
async fn incr(session: Session) -> &'static str {
    let n: u64 = session.get("n").await.expect("get").unwrap_or(0);
    session.insert("n", n + 1).await.expect("insert");
    "ok"
}

/// Adds one to the counter and saves in the handler; on a conflict reloads
/// and tries again.
async fn incr_retrying(session: Session) -> (axum::http::StatusCode, String) {
    for attempt in 1..=1000u32 {
        let n: u64 = session.get("n").await.expect("get").unwrap_or(0);
        session.insert("n", n + 1).await.expect("insert");
        match session.save().await {
            Ok(()) => return (axum::http::StatusCode::OK, attempt.to_string()),
            Err(session::Error::Store(e)) if is_conflict(&e) => {
                session.load().await.expect("reload")
            }
            Err(e) => return (axum::http::StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
        }
    }
    (axum::http::StatusCode::CONFLICT, "gave up".into())
}

async fn count(session: Session) -> String {
    let n: u64 = session.get("n").await.expect("get").unwrap_or(0);
    n.to_string()
}

async fn start(b: &Target, absolute: Duration) -> App {
    let clock = Arc::new(ManualClock::starting_now());
    let config = AdapterConfig::new()
        .with_absolute_timeout(absolute)
        .with_user_id_key("user");
    let store = b
        .adapter()
        .with_config(config)
        .unwrap()
        .with_clock(clock.clone());
    let layer = SessionManagerLayer::new(store.clone())
        // Plain http on loopback: a real jar only sends Secure cookies over https.
        .with_secure(false)
        .with_expiry(Expiry::OnInactivity(time::Duration::minutes(IDLE_MINUTES)));
    let router = Router::new()
        .route("/set/{v}", post(set))
        .route("/get", get(read))
        .route("/login/{user}", post(login))
        .route("/cycle", post(cycle))
        .route("/logout", post(logout))
        .route("/incr", post(incr))
        .route("/incr-retrying", post(incr_retrying))
        .route("/count", get(count))
        .layer(layer);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    App {
        base: format!("http://{addr}"),
        clock,
        store,
    }
}

/// Whether a session is stored under the id (over a backend: under
/// SHA-256 of it, read from the backend itself).
async fn stored(app: &App, cookie: &str) -> bool {
    use tower_sessions::SessionStore as _;
    let id: Id = cookie.parse().unwrap();
    match app.store.backend() {
        Some(backend) => backend
            .load(&storage_key_for(&id), app.clock.now())
            .await
            .unwrap()
            .is_some(),
        None => app.store.load(&id).await.unwrap().is_some(),
    }
}

async fn session_survives_requests(b: Target) {
    let app = start(&b, Duration::from_secs(3600)).await;
    let browser = Browser::new(&app.base);
    assert_eq!(browser.get("/get").await, "none");
    assert_eq!(browser.cookie("id"), None, "no cookie for an empty session");
    browser.post("/set/hello").await;
    let cookie = browser.cookie("id").expect("session cookie");
    for _ in 0..3 {
        assert_eq!(browser.get("/get").await, "hello", "{}", b.name());
    }
    assert_eq!(browser.cookie("id").as_deref(), Some(cookie.as_str()));
    // At rest under SHA-256 of the id, never under the id itself.
    assert!(stored(&app, &cookie).await);
    let other = Browser::new(&app.base);
    assert_eq!(other.get("/get").await, "none", "sessions never leak");
    b.finish().await;
}

async fn cycle_gives_new_cookie_and_kills_old(b: Target) {
    let app = start(&b, Duration::from_secs(3600)).await;
    let browser = Browser::new(&app.base);
    browser.post("/set/kept").await;
    let old = browser.cookie("id").unwrap();
    browser.post("/cycle").await;
    let new = browser.cookie("id").unwrap();
    assert_ne!(old, new, "cycle_id must set a new cookie");
    assert_eq!(
        browser.get("/get").await,
        "kept",
        "data moves to the new id"
    );
    assert_eq!(
        browser.get_with_cookie("/get", &format!("id={old}")).await,
        "none"
    );
    assert!(!stored(&app, &old).await, "old id deleted server-side");
    assert!(stored(&app, &new).await);
    b.finish().await;
}

async fn logout_removes_server_side(b: Target) {
    let app = start(&b, Duration::from_secs(3600)).await;
    let browser = Browser::new(&app.base);
    browser.post("/set/secret").await;
    let cookie = browser.cookie("id").unwrap();
    browser.post("/logout").await;
    assert_eq!(browser.cookie("id"), None, "the cookie is removed");
    assert!(!stored(&app, &cookie).await);
    assert_eq!(
        browser
            .get_with_cookie("/get", &format!("id={cookie}"))
            .await,
        "none"
    );
    b.finish().await;
}

async fn idle_and_absolute_expiry(b: Target) {
    let app = start(&b, Duration::from_secs(30 * 60)).await;
    // Idle: no modification for longer than the inactivity expiry.
    let idle = Browser::new(&app.base);
    idle.post("/set/a").await;
    // Absolute: modified every 5 minutes, still gone after 30 minutes.
    let busy = Browser::new(&app.base);
    busy.post("/set/b").await;
    let started = app.clock.now();
    let first_cookie = busy.cookie("id");
    for step in 1..=7u64 {
        app.clock.advance(Duration::from_secs(4 * 60));
        match step {
            // Reads do not extend tower-sessions' inactivity expiry.
            1 => assert_eq!(idle.get("/get").await, "a"),
            3 => assert_eq!(idle.get("/get").await, "none", "idle expiry on read"),
            _ => {}
        }
        // A changed value: tower-sessions saves (and extends) only on change.
        busy.post(&format!("/set/b{step}")).await;
        assert_eq!(busy.get("/get").await, format!("b{step}"));
        assert_eq!(busy.cookie("id"), first_cookie, "one session all along");
    }
    app.clock.set(Timestamp::from_millis(
        started.as_millis() + 30 * 60 * 1000 + 1,
    ));
    assert_eq!(busy.get("/get").await, "none", "absolute expiry");
    b.finish().await;
}

async fn logout_user_revokes_every_session(b: Target) {
    let app = start(&b, Duration::from_secs(3600)).await;
    let phone = Browser::new(&app.base);
    let laptop = Browser::new(&app.base);
    let other = Browser::new(&app.base);
    phone.post("/login/alice").await;
    laptop.post("/login/alice").await;
    other.post("/login/bob").await;
    phone.post("/set/p").await;
    assert_eq!(app.store.list_user("alice").await.unwrap().len(), 2);
    assert_eq!(app.store.logout_user("alice").await.unwrap(), 2);
    assert_eq!(phone.get("/get").await, "none");
    assert_eq!(laptop.get("/get").await, "none");
    other.post("/set/o").await;
    assert_eq!(other.get("/get").await, "o", "another user's session stays");
    b.finish().await;
}

async fn concurrent_clients_never_see_each_other(b: Target) {
    let app = start(&b, Duration::from_secs(3600)).await;
    let browsers: Vec<_> = (0..16).map(|_| Arc::new(Browser::new(&app.base))).collect();
    let mut tasks = Vec::new();
    for (i, browser) in browsers.iter().enumerate() {
        let browser = browser.clone();
        tasks.push(tokio::spawn(async move {
            for round in 0..5 {
                let value = format!("c{i}r{round}");
                browser.post(&format!("/set/{value}")).await;
                assert_eq!(browser.get("/get").await, value);
            }
        }));
    }
    for t in tasks {
        t.await.expect("client task");
    }
    b.finish().await;
}

/// `CLIENTS` requests at once on one session, each adding one; the
/// statuses they got, and the counter afterwards.
async fn race_on_one_session(app: &App, path: &str) -> (Vec<u16>, u64) {
    const CLIENTS: usize = 64;
    let browser = Browser::new(&app.base);
    browser.post("/incr").await;
    let cookie = browser.cookie_header().expect("session cookie");
    let client = reqwest::Client::new();
    let start = Arc::new(tokio::sync::Barrier::new(CLIENTS));
    let tasks: Vec<_> = (0..CLIENTS)
        .map(|_| {
            let (client, cookie, start) = (client.clone(), cookie.clone(), start.clone());
            let url = format!("{}{path}", app.base);
            tokio::spawn(async move {
                start.wait().await;
                let res = client
                    .post(url)
                    .header("cookie", cookie)
                    .send()
                    .await
                    .unwrap();
                res.status().as_u16()
            })
        })
        .collect();
    let mut statuses = Vec::new();
    for t in tasks {
        statuses.push(t.await.unwrap());
    }
    let n = browser.get("/count").await.parse::<u64>().unwrap() - 1;
    (statuses, n)
}

/// 64 concurrent increments of one session through the middleware's own
/// save: every increment that answered 200 is in the counter, every other
/// one answered 500 (the stale save was refused); none vanishes silently.
async fn concurrent_increments_are_never_lost_silently(b: Target) {
    let app = start(&b, Duration::from_secs(3600)).await;
    let (statuses, n) = race_on_one_session(&app, "/incr").await;
    let ok = statuses.iter().filter(|s| **s == 200).count() as u64;
    let refused = statuses.iter().filter(|s| **s == 500).count() as u64;
    println!(
        "{}: {ok} of {} increments survived, {refused} answered 500 (conflict)",
        b.name(),
        statuses.len()
    );
    assert!(ok >= 1, "{statuses:?}");
    assert_eq!(ok + refused, statuses.len() as u64, "{statuses:?}");
    assert_eq!(n, ok, "every acknowledged increment is stored, no other");
    b.finish().await;
}

/// The same race with a handler that saves itself and retries on a
/// conflict: all 64 increments are stored.
async fn concurrent_increments_with_retry_all_survive(b: Target) {
    let app = start(&b, Duration::from_secs(3600)).await;
    let (statuses, n) = race_on_one_session(&app, "/incr-retrying").await;
    assert!(statuses.iter().all(|s| *s == 200), "{statuses:?}");
    assert_eq!(n, statuses.len() as u64, "{}", b.name());
    b.finish().await;
}

on_both_paths!(
    concurrent_increments_are_never_lost_silently,
    concurrent_increments_with_retry_all_survive,
    session_survives_requests,
    cycle_gives_new_cookie_and_kills_old,
    logout_removes_server_side,
    idle_and_absolute_expiry,
    logout_user_revokes_every_session,
    concurrent_clients_never_see_each_other,
);
