//! Over HTTP on every backend (SQLite, encrypted SQLite, PostgreSQL, MariaDB,
//! Redis): the rate limit on creating anonymous sessions (rows counted with
//! the backend's `scan`), `Event::LookupMiss` carrying the client IP,
//! `Event::ContextChanged` from the layer, and the whole-state typed
//! `update_state` under concurrency. Time is a `ManualClock` shared by the
//! manager and the limiter.

mod common;

use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::Form;
use axum::routing::{get, post};
use axum::Router;
use common::{form_encode, get_raw, policy, reply, serve, Browser, Json, Probe, Reply};
use serde::{Deserialize, Serialize};
use serde_json::json;
use session_store_axum::{
    AnonymousLimit, ClientIpSource, ContextPolicy, Rate, Session, SessionConfig, SessionError,
    SessionLayer,
};
use session_store_core::{
    Event, EventSink, ManualClock, SessionBackend, SessionManager, SessionToken,
};
use session_store_test_support::{per_backend, TestBackend};

/// Records every event.
#[derive(Debug, Default)]
struct Recorder(Mutex<Vec<Event>>);

impl EventSink for Recorder {
    fn event(&self, event: &Event) {
        self.0.lock().unwrap().push(event.clone());
    }
}

impl Recorder {
    fn take(&self) -> Vec<Event> {
        std::mem::take(&mut *self.0.lock().unwrap())
    }
}

#[derive(Debug, Default, Serialize, Deserialize, PartialEq)]
struct Cart {
    #[serde(default)]
    n: u64,
    #[serde(default)]
    items: Vec<String>,
}

struct App {
    base: String,
    clock: Arc<ManualClock>,
    events: Arc<Recorder>,
    probe: Arc<Probe>,
}

async fn start(backend: Arc<dyn SessionBackend>, config: SessionConfig) -> App {
    let clock = Arc::new(ManualClock::starting_now());
    let events = Arc::new(Recorder::default());
    let probe = Probe::new(backend);
    let manager = SessionManager::builder(probe.clone())
        .clock(clock.clone())
        .policy(policy())
        .events(events.clone())
        .build()
        .unwrap();
    let config = config
        .with_client_ip(ClientIpSource::TrustedHeader(
            "x-forwarded-for".parse().unwrap(),
        ))
        .with_events(events.clone());
    let app = Router::new()
        .route(
            "/csrf",
            get(|s: Session| async move { s.csrf_token().await }),
        )
        .route(
            "/login",
            post(
                |s: Session, Form(f): Form<std::collections::HashMap<String, String>>| async move {
                    s.login(f.get("user").map(String::as_str).unwrap_or(""))
                        .await
                        .map(|()| "ok")
                },
            ),
        )
        .route(
            "/incr",
            post(|s: Session| async move {
                s.update("n", |n: &mut u64| {
                    *n += 1;
                    *n
                })
                .await
                .map(|n| n.to_string())
            }),
        )
        .route(
            "/state",
            post(|s: Session| async move {
                s.update_state(|c: &mut Cart| {
                    c.n += 1;
                    c.items.push(format!("item{}", c.n));
                    c.n
                })
                .await
                .map(|n| n.to_string())
            })
            .get(|s: Session| async move {
                let cart: Option<Cart> = s.get_state().await?;
                let n: Option<u64> = s.get("n").await?;
                Ok::<_, SessionError>(Json(json!({
                    "n": cart.as_ref().map(|c| c.n),
                    "items": cart.map(|c| c.items.len()),
                    "keyed_n": n,
                })))
            }),
        )
        .route(
            "/whoami",
            get(|s: Session| async move {
                Ok::<_, SessionError>(Json(json!({ "user": s.user_id().await? })))
            }),
        )
        .layer(SessionLayer::new(manager, config).expect("valid config"));
    App {
        base: serve(app).await,
        clock,
        events,
        probe,
    }
}

/// POST `path` from client `ip` (the proxy header) with the browser's
/// cookies and its CSRF token.
async fn post_from(b: &Browser, path: &str, ip: &str, fields: &[(&str, &str)]) -> Reply {
    let csrf = b.csrf().await;
    let mut pairs = fields.to_vec();
    pairs.push(("csrf", &csrf));
    reply(
        b.client
            .post(format!("{}{path}", b.base))
            .header("x-forwarded-for", ip)
            .header("content-type", "application/x-www-form-urlencoded")
            .body(form_encode(&pairs))
            .send()
            .await
            .unwrap(),
    )
    .await
}

/// Live entries in the store, counted with the backend's scan (beneath the
/// probe: counting is not traffic of the app).
async fn live_rows(backend: &Arc<dyn SessionBackend>, clock: &ManualClock) -> usize {
    use session_store_core::Clock as _;
    let now = clock.now();
    let mut cursor = None;
    let mut n = 0;
    loop {
        let page = backend.scan(cursor.as_ref(), 100).await.expect("scan");
        n += page.entries.iter().filter(|e| e.is_live(now)).count();
        match page.next {
            Some(c) => cursor = Some(c),
            None => return n,
        }
    }
}

async fn anonymous_creation_is_rate_limited(b: TestBackend) {
    let limit = AnonymousLimit::default()
        .with_per_client(Some(Rate::new(3, Duration::from_secs(60))))
        .with_global(None);
    let app = start(
        b.backend.clone(),
        SessionConfig::default().with_anonymous_limit(Some(limit)),
    )
    .await;
    let (a, other) = ("192.0.2.1", "198.51.100.7");
    let visitors: Vec<Browser> = (0..5).map(|_| Browser::new(&app.base, "UA")).collect();
    for v in &visitors[..3] {
        let r = post_from(v, "/incr", a, &[]).await;
        assert_eq!((r.status, r.body.as_str()), (200, "1"));
        assert!(v.session_cookie().is_some());
    }
    assert_eq!(live_rows(&b.backend, &app.clock).await, 3);
    let calls = app.probe.calls();
    for v in &visitors[3..] {
        let r = post_from(v, "/incr", a, &[]).await;
        assert_eq!(r.status, 429, "{}", r.body);
        assert_eq!(r.cookie(common::SESSION_COOKIE), None);
        assert_eq!(v.session_cookie(), None);
    }
    assert_eq!(
        app.probe.calls(),
        calls,
        "a refused creation costs no store I/O"
    );
    assert_eq!(
        live_rows(&b.backend, &app.clock).await,
        3,
        "over the limit nothing is stored"
    );
    // Existing sessions keep writing while their client is limited.
    for _ in 0..5 {
        assert_eq!(post_from(&visitors[0], "/incr", a, &[]).await.status, 200);
    }
    assert_eq!(post_from(&visitors[0], "/incr", a, &[]).await.body, "7");
    // Another client has its own bucket.
    assert_eq!(
        post_from(&visitors[3], "/incr", other, &[]).await.status,
        200
    );
    assert_eq!(live_rows(&b.backend, &app.clock).await, 4);
    // Logging in is never limited (and a logged-in session writes freely).
    let r = post_from(&visitors[4], "/login", a, &[("user", "alice")]).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(post_from(&visitors[4], "/incr", a, &[]).await.body, "1");
    assert_eq!(live_rows(&b.backend, &app.clock).await, 5);
    // The bucket refills with the (manual) clock: one more after a minute.
    let late = [Browser::new(&app.base, "UA"), Browser::new(&app.base, "UA")];
    assert_eq!(post_from(&late[0], "/incr", a, &[]).await.status, 429);
    app.clock.advance(Duration::from_secs(60));
    assert_eq!(post_from(&late[0], "/incr", a, &[]).await.status, 200);
    assert_eq!(post_from(&late[1], "/incr", a, &[]).await.status, 429);
    assert_eq!(live_rows(&b.backend, &app.clock).await, 6);

    // A global rate holds across any number of clients.
    let global = start(
        b.backend.clone(),
        SessionConfig::default().with_anonymous_limit(Some(
            AnonymousLimit::default()
                .with_per_client(None)
                .with_global(Some(Rate::new(2, Duration::from_secs(60)))),
        )),
    )
    .await;
    let before = live_rows(&b.backend, &global.clock).await;
    let mut statuses = Vec::new();
    for i in 0..6 {
        let v = Browser::new(&global.base, "UA");
        statuses.push(
            post_from(&v, "/incr", &format!("203.0.113.{i}"), &[])
                .await
                .status,
        );
    }
    assert_eq!(statuses, [200, 200, 429, 429, 429, 429]);
    assert_eq!(live_rows(&b.backend, &global.clock).await, before + 2);
    b.finish().await;
}

async fn lookup_miss_carries_the_client_ip(b: TestBackend) {
    let app = start(b.backend.clone(), SessionConfig::default()).await;
    let unknown = SessionToken::generate();
    let cookie = format!("{}={}", common::SESSION_COOKIE, unknown.expose_secret());
    app.events.take();
    let r = get_raw(
        &app.base,
        "/whoami",
        &[
            ("cookie", cookie.as_bytes()),
            ("x-forwarded-for", b"203.0.113.5"),
        ],
    )
    .await;
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["user"], serde_json::Value::Null);
    let ip: IpAddr = "203.0.113.5".parse().unwrap();
    assert_eq!(
        app.events.take(),
        [Event::LookupMiss {
            key: unknown.storage_key().short_hash(),
            ip: Some(ip),
        }]
    );
    // Without the proxy header: the connection's address.
    get_raw(&app.base, "/whoami", &[("cookie", cookie.as_bytes())]).await;
    let loopback: IpAddr = "127.0.0.1".parse().unwrap();
    assert!(
        matches!(&app.events.take()[..], [Event::LookupMiss { ip: Some(ip), .. }] if *ip == loopback)
    );
    b.finish().await;
}

async fn context_change_raises_an_event(b: TestBackend) {
    for (policy, action, user_after) in [
        (ContextPolicy::Flag, "flag", Some("alice")),
        (ContextPolicy::Ignore, "ignore", Some("alice")),
        (ContextPolicy::RequireReauth, "end", None),
    ] {
        let app = start(
            b.backend.clone(),
            SessionConfig::default().with_context_policy(policy),
        )
        .await;
        let alice = Browser::new(&app.base, "UA-1");
        let r = post_from(&alice, "/login", "192.0.2.1", &[("user", "alice")]).await;
        assert_eq!(r.status, 200, "{}", r.body);
        let token = alice.session_cookie().unwrap();
        let key = SessionToken::parse(&token)
            .unwrap()
            .storage_key()
            .short_hash();
        let cookie = format!("{}={token}", common::SESSION_COOKIE);
        // Same network and agent: no event.
        app.events.take();
        get_raw(
            &app.base,
            "/whoami",
            &[
                ("cookie", cookie.as_bytes()),
                ("x-forwarded-for", b"192.0.2.200"),
                ("user-agent", b"UA-1"),
            ],
        )
        .await;
        assert!(
            !app.events
                .take()
                .iter()
                .any(|e| matches!(e, Event::ContextChanged { .. })),
            "{policy:?}: same /24, same agent"
        );
        let r = get_raw(
            &app.base,
            "/whoami",
            &[
                ("cookie", cookie.as_bytes()),
                ("x-forwarded-for", b"198.51.100.9"),
                ("user-agent", b"UA-1"),
            ],
        )
        .await;
        assert_eq!(r.json()["user"].as_str(), user_after, "{policy:?}");
        let events = app.events.take();
        let changed: Vec<&Event> = events
            .iter()
            .filter(|e| matches!(e, Event::ContextChanged { .. }))
            .collect();
        assert_eq!(
            changed,
            [&Event::ContextChanged {
                key: key.clone(),
                ip_changed: true,
                user_agent_changed: false,
                action,
            }],
            "{policy:?}"
        );
        let text = format!("{events:?}");
        assert!(
            !text.contains("198.51.100") && !text.contains("192.0.2") && !text.contains(&token),
            "no address or token in the event: {text}"
        );
        if policy == ContextPolicy::RequireReauth {
            assert!(
                events
                    .iter()
                    .any(|e| matches!(e, Event::Deleted { key: k } if *k == key)),
                "{events:?}"
            );
        }
    }
    b.finish().await;
}

async fn update_state_loses_no_update(b: TestBackend) {
    let app = start(b.backend.clone(), SessionConfig::default()).await;
    let v = Browser::new(&app.base, "UA");
    let r = post_from(&v, "/state", "192.0.2.1", &[]).await;
    assert_eq!((r.status, r.body.as_str()), (200, "1"));
    let csrf = v.csrf().await;
    let requests = (0..32).map(|_| {
        v.client
            .post(format!("{}/state", app.base))
            .header("x-csrf-token", &csrf)
            .send()
    });
    for r in futures::future::join_all(requests).await {
        let r = reply(r.unwrap()).await;
        assert_eq!(r.status, 200, "{}", r.body);
    }
    let state = v.get("/state").await.json();
    assert_eq!(
        state,
        json!({ "n": 33, "items": 33, "keyed_n": 33 }),
        "every update survives, and the typed state is the keyed values"
    );
    // The keyed form and the whole state are one set of values.
    assert_eq!(v.act("/incr", &[]).await.body, "34");
    assert_eq!(v.get("/state").await.json()["n"], 34);
    b.finish().await;
}

per_backend!("axum_limits";
    anonymous_creation_is_rate_limited,
    lookup_miss_carries_the_client_ip,
    context_change_raises_an_event,
    update_state_loses_no_update,
);
