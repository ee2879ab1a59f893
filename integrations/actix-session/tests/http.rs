//! The adapter under actix-session's real middleware: an actix-web `App`
//! with `SessionMiddleware`, served on 127.0.0.1 by `HttpServer` on its own
//! actix system thread, driven by reqwest with a cookie jar. Every scenario
//! runs on SQLite, encrypted SQLite and Redis.

use std::sync::Arc;
use std::time::Duration;

use actix_session::config::{BrowserSession, TtlExtensionPolicy};
use actix_session::{Session, SessionExt as _, SessionMiddleware};
use actix_web::cookie::Key;
use actix_web::dev::ServerHandle;
use actix_web::{web, HttpRequest, HttpResponse, HttpServer};
use session_store_actix::ActixSessionStore;
use session_store_core::{AdapterConfig, Clock as _, ManualClock, Timestamp};
use session_store_test_support::{per_backend, Browser, TestBackend};

const IDLE_MINUTES: i64 = 10;

struct App {
    base: String,
    clock: Arc<ManualClock>,
    store: ActixSessionStore,
    handle: ServerHandle,
}

impl App {
    /// Cleans up, then stops the server. In this order: pooled backend
    /// connections (PostgreSQL) opened by the server's worker live on the
    /// worker's runtime and die with it.
    async fn stop(self, b: TestBackend) {
        b.finish().await;
        self.handle.stop(false).await;
    }

    async fn keys_of(&self, user: &str) -> Vec<session_store_core::StorageKey> {
        self.store
            .list_user(user)
            .await
            .unwrap()
            .into_iter()
            .map(|s| s.key)
            .collect()
    }
}

async fn set(session: Session, v: web::Path<String>) -> HttpResponse {
    session.insert("v", v.into_inner()).unwrap();
    HttpResponse::Ok().body("ok")
}

async fn read(req: HttpRequest) -> HttpResponse {
    let v = req.get_session().get::<String>("v").unwrap();
    HttpResponse::Ok().body(v.unwrap_or_else(|| "none".into()))
}

async fn login(session: Session, user: web::Path<String>) -> HttpResponse {
    session.renew();
    session.insert("user", user.into_inner()).unwrap();
    HttpResponse::Ok().body("ok")
}

async fn renew(session: Session) -> HttpResponse {
    session.renew();
    HttpResponse::Ok().body("ok")
}

async fn logout(session: Session) -> HttpResponse {
    session.purge();
    HttpResponse::Ok().body("ok")
}

async fn incr(session: Session) -> HttpResponse {
    let n: u64 = session.get("n").unwrap().unwrap_or(0);
    session.insert("n", n + 1).unwrap();
    HttpResponse::Ok().body("ok")
}

async fn count(session: Session) -> HttpResponse {
    let n: u64 = session.get("n").unwrap().unwrap_or(0);
    HttpResponse::Ok().body(n.to_string())
}

fn start(b: &TestBackend, absolute: Duration) -> App {
    let clock = Arc::new(ManualClock::starting_now());
    let config = AdapterConfig::new()
        .with_absolute_timeout(absolute)
        .with_user_id_key("user");
    let store = ActixSessionStore::new(b.backend.clone())
        .with_config(config)
        .unwrap()
        .with_clock(clock.clone());
    let key = Key::generate();
    let served = store.clone();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        actix_web::rt::System::new().block_on(async move {
            let server = HttpServer::new(move || {
                let middleware = SessionMiddleware::builder(served.clone(), key.clone())
                    // Plain http on loopback: a jar only sends Secure cookies over https.
                    .cookie_secure(false)
                    .session_lifecycle(
                        BrowserSession::default()
                            .state_ttl(actix_web::cookie::time::Duration::minutes(IDLE_MINUTES))
                            .state_ttl_extension_policy(TtlExtensionPolicy::OnEveryRequest),
                    )
                    .build();
                actix_web::App::new()
                    .wrap(middleware)
                    .route("/set/{v}", web::post().to(set))
                    .route("/get", web::get().to(read))
                    .route("/login/{user}", web::post().to(login))
                    .route("/renew", web::post().to(renew))
                    .route("/logout", web::post().to(logout))
                    .route("/incr", web::post().to(incr))
                    .route("/count", web::get().to(count))
            })
            .workers(1)
            .disable_signals()
            .bind(("127.0.0.1", 0))
            .expect("bind 127.0.0.1");
            let addr = server.addrs()[0];
            let server = server.run();
            tx.send((server.handle(), addr)).expect("send handle");
            server.await.expect("server");
        })
    });
    let (handle, addr) = rx.recv().expect("server started");
    App {
        base: format!("http://{addr}"),
        clock,
        store,
        handle,
    }
}

async fn session_survives_requests(b: TestBackend) {
    let app = start(&b, Duration::from_secs(3600));
    let browser = Browser::new(&app.base);
    assert_eq!(browser.get("/get").await, "none");
    assert_eq!(
        browser.cookie_header(),
        None,
        "no cookie for an empty session"
    );
    browser.post("/login/alice").await;
    browser.post("/set/hello").await;
    for _ in 0..3 {
        assert_eq!(browser.get("/get").await, "hello", "{}", b.name);
    }
    assert_eq!(app.keys_of("alice").await.len(), 1, "one stored session");
    let other = Browser::new(&app.base);
    assert_eq!(other.get("/get").await, "none", "sessions never leak");
    app.stop(b).await;
}

async fn renew_gives_new_cookie_and_kills_old(b: TestBackend) {
    let app = start(&b, Duration::from_secs(3600));
    let browser = Browser::new(&app.base);
    browser.post("/login/alice").await;
    browser.post("/set/kept").await;
    let old_cookie = browser.cookie_header().unwrap();
    let old_keys = app.keys_of("alice").await;
    browser.post("/renew").await;
    let new_cookie = browser.cookie_header().unwrap();
    assert_ne!(old_cookie, new_cookie, "renew must set a new cookie");
    let new_keys = app.keys_of("alice").await;
    assert_eq!(new_keys.len(), 1, "the old key is deleted server-side");
    assert_ne!(old_keys, new_keys, "a new key");
    assert_eq!(
        browser.get("/get").await,
        "kept",
        "state moves to the new key"
    );
    assert_eq!(browser.get_with_cookie("/get", &old_cookie).await, "none");
    app.stop(b).await;
}

async fn purge_removes_server_side(b: TestBackend) {
    let app = start(&b, Duration::from_secs(3600));
    let browser = Browser::new(&app.base);
    browser.post("/login/alice").await;
    browser.post("/set/secret").await;
    let cookie = browser.cookie_header().unwrap();
    browser.post("/logout").await;
    assert_eq!(browser.cookie_header(), None, "the cookie is removed");
    assert!(app.keys_of("alice").await.is_empty());
    assert_eq!(browser.get_with_cookie("/get", &cookie).await, "none");
    app.stop(b).await;
}

async fn idle_and_absolute_expiry(b: TestBackend) {
    let app = start(&b, Duration::from_secs(30 * 60));
    let idle = Browser::new(&app.base);
    idle.post("/set/a").await;
    let busy = Browser::new(&app.base);
    busy.post("/login/bob").await;
    let started = app.clock.now();
    let first_cookie = busy.cookie_header();
    for step in 1..=7u64 {
        app.clock.advance(Duration::from_secs(4 * 60));
        if step == 3 {
            // 12 minutes without a request: past the 10-minute TTL.
            assert_eq!(idle.get("/get").await, "none", "idle expiry on read");
        }
        // A read is activity here (TtlExtensionPolicy::OnEveryRequest).
        assert_eq!(busy.get("/get").await, "none");
        assert_eq!(busy.cookie_header(), first_cookie, "one session all along");
        assert_eq!(app.keys_of("bob").await.len(), 1, "minute {}", step * 4);
    }
    app.clock.set(Timestamp::from_millis(
        started.as_millis() + 30 * 60 * 1000 + 1,
    ));
    assert!(app.keys_of("bob").await.is_empty(), "absolute expiry");
    busy.post("/set/after").await;
    assert_eq!(busy.get("/get").await, "after");
    assert!(
        app.keys_of("bob").await.is_empty(),
        "a fresh anonymous session, never the expired one"
    );
    app.stop(b).await;
}

async fn logout_user_revokes_every_session(b: TestBackend) {
    let app = start(&b, Duration::from_secs(3600));
    let phone = Browser::new(&app.base);
    let laptop = Browser::new(&app.base);
    let other = Browser::new(&app.base);
    phone.post("/login/alice").await;
    laptop.post("/login/alice").await;
    other.post("/login/bob").await;
    phone.post("/set/p").await;
    laptop.post("/set/l").await;
    other.post("/set/o").await;
    assert_eq!(app.store.logout_user("alice").await.unwrap(), 2);
    assert_eq!(phone.get("/get").await, "none");
    assert_eq!(laptop.get("/get").await, "none");
    assert_eq!(other.get("/get").await, "o", "another user's session stays");
    app.stop(b).await;
}

async fn concurrent_clients_never_see_each_other(b: TestBackend) {
    let app = start(&b, Duration::from_secs(3600));
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
    app.stop(b).await;
}

/// 64 concurrent increments of one session: every increment that answered
/// 200 is in the counter, every other one answered 500 (the stale update was
/// refused); none vanishes silently.
async fn concurrent_increments_are_never_lost_silently(b: TestBackend) {
    const CLIENTS: usize = 64;
    let app = start(&b, Duration::from_secs(3600));
    let browser = Browser::new(&app.base);
    browser.post("/incr").await;
    let cookie = browser.cookie_header().expect("session cookie");
    let client = reqwest::Client::new();
    let start = Arc::new(tokio::sync::Barrier::new(CLIENTS));
    let tasks: Vec<_> = (0..CLIENTS)
        .map(|_| {
            let (client, cookie, start) = (client.clone(), cookie.clone(), start.clone());
            let url = format!("{}/incr", app.base);
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
    let ok = statuses.iter().filter(|s| **s == 200).count() as u64;
    let refused = statuses.iter().filter(|s| **s == 500).count() as u64;
    println!(
        "{}: {ok} of {CLIENTS} increments survived, {refused} answered 500 (conflict)",
        b.name
    );
    assert!(ok >= 1, "{statuses:?}");
    assert_eq!(ok + refused, CLIENTS as u64, "{statuses:?}");
    assert_eq!(n, ok, "every acknowledged increment is stored, no other");
    app.stop(b).await;
}

per_backend!(
    "adapter";
    concurrent_increments_are_never_lost_silently,
    session_survives_requests,
    renew_gives_new_cookie_and_kills_old,
    purge_removes_server_side,
    idle_and_absolute_expiry,
    logout_user_revokes_every_session,
    concurrent_clients_never_see_each_other,
);
