//! The adapter under tower-sessions' real middleware: an axum `Router` with
//! `SessionManagerLayer`, served on 127.0.0.1, driven by reqwest with a
//! cookie jar. Every scenario runs on SQLite, encrypted SQLite and Redis.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::Path;
use axum::routing::{get, post};
use axum::Router;
use session_store_core::{AdapterConfig, Clock as _, ManualClock, Timestamp};
use session_store_test_support::{per_backend, Browser, TestBackend};
use session_store_tower_sessions::{storage_key_for, TowerSessionStore};
use tower_sessions::session::Id;
use tower_sessions::{Expiry, Session, SessionManagerLayer};

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

async fn start(b: &TestBackend, absolute: Duration) -> App {
    let clock = Arc::new(ManualClock::starting_now());
    let config = AdapterConfig::new()
        .with_absolute_timeout(absolute)
        .with_user_id_key("user");
    let store = TowerSessionStore::new(b.backend.clone())
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

async fn stored(app: &App, cookie: &str) -> bool {
    let id: Id = cookie.parse().unwrap();
    app.store
        .backend()
        .load(&storage_key_for(&id), app.clock.now())
        .await
        .unwrap()
        .is_some()
}

async fn session_survives_requests(b: TestBackend) {
    let app = start(&b, Duration::from_secs(3600)).await;
    let browser = Browser::new(&app.base);
    assert_eq!(browser.get("/get").await, "none");
    assert_eq!(browser.cookie("id"), None, "no cookie for an empty session");
    browser.post("/set/hello").await;
    let cookie = browser.cookie("id").expect("session cookie");
    for _ in 0..3 {
        assert_eq!(browser.get("/get").await, "hello", "{}", b.name);
    }
    assert_eq!(browser.cookie("id").as_deref(), Some(cookie.as_str()));
    // At rest under SHA-256 of the id, never under the id itself.
    assert!(stored(&app, &cookie).await);
    let other = Browser::new(&app.base);
    assert_eq!(other.get("/get").await, "none", "sessions never leak");
    b.finish().await;
}

async fn cycle_gives_new_cookie_and_kills_old(b: TestBackend) {
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

async fn logout_removes_server_side(b: TestBackend) {
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

async fn idle_and_absolute_expiry(b: TestBackend) {
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

async fn logout_user_revokes_every_session(b: TestBackend) {
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

async fn concurrent_clients_never_see_each_other(b: TestBackend) {
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

per_backend!(
    "adapter";
    session_survives_requests,
    cycle_gives_new_cookie_and_kills_old,
    logout_removes_server_side,
    idle_and_absolute_expiry,
    logout_user_revokes_every_session,
    concurrent_clients_never_see_each_other,
);
