//! Backend round trips per request, counted per operation (issue 11's
//! benchmark target: "the read path adds at most one backend round trip over
//! the no-session baseline"). The router is called in-process (no socket),
//! over a `MemoryStore` wrapped in the tests' `Probe`, which counts every
//! `SessionBackend` call by kind; time is a `ManualClock`, so whether a touch
//! or a renewal is due is decided by the test, not by the machine's speed.

mod common;

use std::collections::BTreeMap;
use std::future::poll_fn;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::{Request, Response};
use axum::routing::{get, post};
use axum::Router;
use common::{Probe, RENEW_AFTER};
use session_store_axum::{Session, SessionConfig, SessionError, SessionLayer};
use session_store_core::{ManualClock, MemoryStore, Policy, SessionManager};
use tower_service::Service;

const TOUCH: Duration = Duration::from_secs(60);
const COOKIE: &str = "__Host-session";
const CSRF_COOKIE: &str = "__Host-csrf";

struct App {
    router: Router,
    backend: Arc<Probe>,
    clock: Arc<ManualClock>,
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

/// Several reads in one handler: still one load per request.
async fn read_many(s: Session) -> Result<String, SessionError> {
    let n = s.get::<u64>("n").await?.unwrap_or(0);
    let user = s.user_id().await?.unwrap_or_default();
    let exists = s.exists().await?;
    let _ = s.idle_deadline().await?;
    Ok(format!("{n} {user} {exists}"))
}

async fn login(s: Session) -> Result<&'static str, SessionError> {
    s.login("alice").await?;
    Ok("ok")
}

fn app(config: SessionConfig) -> App {
    let clock = Arc::new(ManualClock::starting_now());
    let backend = Probe::new(Arc::new(MemoryStore::new()));
    let manager = SessionManager::builder(backend.clone())
        .clock(clock.clone())
        .policy(Policy {
            touch_interval: TOUCH,
            ..Policy::default()
        })
        .build()
        .unwrap();
    let router = Router::new()
        .route("/none", get(|| async { "no session" }))
        .route("/read", get(read))
        .route("/read-many", get(read_many))
        .route("/update", get(update))
        .route(
            "/csrf",
            get(|s: Session| async move { s.csrf_token().await }),
        )
        .route("/login", post(login))
        .layer(SessionLayer::new(manager, config).unwrap());
    App {
        router,
        backend,
        clock,
    }
}

/// The value of the `Set-Cookie` for `name` in `res`, if any.
fn set_cookie(res: &Response<Body>, name: &str) -> Option<String> {
    res.headers().get_all("set-cookie").iter().find_map(|v| {
        let (n, rest) = v.to_str().ok()?.split_once('=')?;
        (n == name).then(|| rest.split(';').next().unwrap_or("").to_owned())
    })
}

async fn body(res: Response<Body>) -> String {
    let bytes = axum::body::to_bytes(res.into_body(), usize::MAX)
        .await
        .unwrap();
    String::from_utf8(bytes.to_vec()).unwrap()
}

impl App {
    async fn call(&mut self, req: Request<Body>) -> Response<Body> {
        poll_fn(|cx| Service::<Request<Body>>::poll_ready(&mut self.router, cx))
            .await
            .unwrap();
        self.router.call(req).await.unwrap()
    }

    async fn get(&mut self, path: &str, cookie: Option<&str>) -> Response<Body> {
        let mut req = Request::get(path);
        if let Some(c) = cookie {
            req = req.header("cookie", c);
        }
        self.call(req.body(Body::empty()).unwrap()).await
    }

    /// An anonymous session holding `n = 1`: its cookie header.
    async fn anonymous(&mut self) -> String {
        let res = self.get("/update", None).await;
        let token = set_cookie(&res, COOKIE).expect("the first write sets the cookie");
        assert_eq!(body(res).await, "1");
        assert_eq!(
            self.backend.take_ops(),
            BTreeMap::from([("create", 1)]),
            "an anonymous session is created by its first write, in one call"
        );
        format!("{COOKIE}={token}")
    }

    /// A logged-in session (login form, CSRF double-submit, login rotation):
    /// its cookie header.
    async fn logged_in(&mut self) -> String {
        let res = self.get("/csrf", None).await;
        let csrf = set_cookie(&res, CSRF_COOKIE).unwrap();
        let form_token = body(res).await;
        let req = Request::post("/login")
            .header("cookie", format!("{CSRF_COOKIE}={csrf}"))
            .header("x-csrf-token", form_token)
            .body(Body::empty())
            .unwrap();
        let res = self.call(req).await;
        assert_eq!(res.status(), 200);
        let token = set_cookie(&res, COOKIE).expect("login sets the cookie");
        self.backend.take_ops();
        format!("{COOKIE}={token}")
    }
}

fn config() -> SessionConfig {
    SessionConfig::default().with_renew_after(Some(RENEW_AFTER))
}

/// A read of an anonymous or logged-in session is exactly one backend
/// `load` (touch not due, renewal not due), however many reads the handler
/// makes; a request that never touches the session makes none.
#[tokio::test]
async fn a_read_is_one_load() {
    let mut app = app(config());
    for logged_in in [false, true] {
        let cookie = if logged_in {
            app.logged_in().await
        } else {
            app.anonymous().await
        };
        let expected = if logged_in { "0" } else { "1" };
        for _ in 0..3 {
            let res = app.get("/read", Some(&cookie)).await;
            assert_eq!(res.status(), 200);
            assert!(res.headers().get("set-cookie").is_none());
            assert_eq!(body(res).await, expected);
            assert_eq!(
                app.backend.take_ops(),
                BTreeMap::from([("load", 1)]),
                "read (logged in: {logged_in})"
            );
        }
        let res = app.get("/read-many", Some(&cookie)).await;
        let user = if logged_in { "alice" } else { "" };
        assert_eq!(body(res).await, format!("{expected} {user} true"));
        assert_eq!(
            app.backend.take_ops(),
            BTreeMap::from([("load", 1)]),
            "four reads in one handler (logged in: {logged_in})"
        );
        let res = app.get("/none", Some(&cookie)).await;
        assert!(res.headers().get("set-cookie").is_none());
        assert_eq!(body(res).await, "no session");
        assert!(
            app.backend.take_ops().is_empty(),
            "a request that never touches the session (logged in: {logged_in})"
        );
    }
}

/// An update is exactly one `load` and one `save`.
#[tokio::test]
async fn an_update_is_one_load_and_one_save() {
    let mut app = app(config());
    let cookie = app.anonymous().await;
    for n in 2..5 {
        let res = app.get("/update", Some(&cookie)).await;
        assert!(res.headers().get("set-cookie").is_none());
        assert_eq!(body(res).await, n.to_string());
        assert_eq!(
            app.backend.take_ops(),
            BTreeMap::from([("load", 1), ("save", 1)])
        );
    }
}

/// Without a cookie a read makes no call at all; with a cookie of an unknown
/// session, the one `load` (and the miss report's second look).
#[tokio::test]
async fn no_session_costs_no_round_trip() {
    let mut app = app(config());
    let res = app.get("/read", None).await;
    assert_eq!(body(res).await, "0");
    assert!(app.backend.take_ops().is_empty(), "no cookie, no I/O");
    let unknown = format!(
        "{COOKIE}={}",
        session_store_core::SessionToken::generate().expose_secret()
    );
    let res = app.get("/read", Some(&unknown)).await;
    assert_eq!(body(res).await, "0");
    let calls = app.backend.take_ops();
    assert_eq!(calls.keys().collect::<Vec<_>>(), [&"load"], "{calls:?}");
}

/// The throttled touch: one `touch` more once the touch interval passed,
/// then reads are a single `load` again.
#[tokio::test]
async fn a_due_touch_is_one_more_call() {
    let mut app = app(config());
    let cookie = app.anonymous().await;
    app.clock.advance(TOUCH);
    let res = app.get("/read", Some(&cookie)).await;
    assert_eq!(body(res).await, "1");
    assert_eq!(
        app.backend.take_ops(),
        BTreeMap::from([("load", 1), ("touch", 1)])
    );
    let res = app.get("/read", Some(&cookie)).await;
    assert_eq!(body(res).await, "1");
    assert_eq!(app.backend.take_ops(), BTreeMap::from([("load", 1)]));
}
