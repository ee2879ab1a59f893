//! Remember me and refresh tokens over HTTP (issue 12): an axum router on
//! 127.0.0.1 driven by reqwest with real cookie jars, on SQLite, encrypted
//! SQLite, PostgreSQL, MariaDB and Redis. Time is a `ManualClock` shared
//! with the manager; every backend sits behind the probe of `common`, which
//! counts calls and simulates outages.

mod common;

use std::sync::Arc;
use std::time::Duration;

use axum::extract::Form;
use axum::routing::{get, post};
use axum::Router;
use common::*;
use serde_json::{json, Value};
use session_store_axum::{
    CookieConfig, HeaderMode, Session, SessionConfig, SessionError, SessionLayer,
};
use session_store_core::{
    DeviceKind, Error, ManualClock, PersistentPolicy, SessionBackend, SessionHandle, SessionManager,
};
use session_store_test_support::{per_backend, TestBackend};

const REMEMBER: &str = "__Host-remember";
const LIFETIME: Duration = Duration::from_secs(30 * 24 * 3600);
const GRACE: Duration = Duration::from_secs(5);

type Fields = Form<std::collections::HashMap<String, String>>;

async fn whoami(s: Session) -> Result<Json<Value>, SessionError> {
    Ok(Json(json!({
        "user": s.user_id().await?,
        "remembered": s.remembered().await?,
        "auth_time": s.auth_time().await?.map(|t| t.as_millis()),
    })))
}

async fn login(s: Session, Form(f): Fields) -> Result<&'static str, SessionError> {
    let user = f.get("user").map(String::as_str).unwrap_or("");
    if f.get("remember").is_some_and(|v| v == "on") {
        s.login_remembered(user).await?;
    } else {
        s.login(user).await?;
    }
    Ok("ok")
}

async fn api_login(s: Session, Form(f): Fields) -> Result<Json<Value>, SessionError> {
    s.login(f.get("user").map(String::as_str).unwrap_or(""))
        .await?;
    let grant = s.refresh_token().await?;
    Ok(Json(json!({
        "session_token": s.api_token().await?,
        "refresh_token": grant.expose_secret(),
    })))
}

async fn devices(s: Session) -> Result<Json<Value>, SessionError> {
    let list: Vec<Value> = s
        .devices()
        .await?
        .into_iter()
        .map(|d| {
            json!({
                "handle": d.handle.to_string(),
                "current": d.current,
                "kind": match d.kind {
                    DeviceKind::Session => "session",
                    DeviceKind::PersistentLogin => "persistent",
                    _ => "other",
                },
            })
        })
        .collect();
    Ok(Json(Value::Array(list)))
}

async fn revoke(s: Session, Form(f): Fields) -> Result<String, SessionError> {
    let handle = SessionHandle::parse(f.get("handle").map(String::as_str).unwrap_or(""))
        .map_err(|_| SessionError::InvalidInput("handle"))?;
    Ok(s.revoke(&handle).await?.to_string())
}

fn app_router(manager: SessionManager, config: SessionConfig) -> Router {
    let layer = SessionLayer::new(manager, config).expect("valid config");
    Router::new()
        .route("/none", get(|| async { "no session here" }))
        .route("/whoami", get(whoami))
        .route(
            "/csrf",
            get(|s: Session| async move { s.csrf_token().await }),
        )
        .route("/login", post(login))
        .route("/api/login", post(api_login))
        .route(
            "/logout",
            post(|s: Session| async move { s.logout().await.map(|()| "ok") }),
        )
        .route(
            "/logout-everywhere",
            post(|s: Session| async move { s.logout_everywhere().await.map(|n| n.to_string()) }),
        )
        .route(
            "/logout-others",
            post(|s: Session| async move { s.logout_other_devices().await.map(|n| n.to_string()) }),
        )
        .route("/devices", get(devices))
        .route("/revoke", post(revoke))
        .layer(layer.clone())
        .route("/api/refresh", layer.refresh_route())
}

async fn start_with(backend: Arc<dyn SessionBackend>, config: SessionConfig) -> TestApp {
    let clock = Arc::new(ManualClock::starting_now());
    let probe = Probe::new(backend);
    let manager = SessionManager::builder(probe.clone())
        .clock(clock.clone())
        .policy(session_store_core::Policy {
            persistent: PersistentPolicy {
                grace: GRACE,
                ..PersistentPolicy::default()
            },
            ..policy()
        })
        .build()
        .unwrap();
    let base = serve(app_router(manager.clone(), config)).await;
    TestApp {
        base,
        clock,
        manager,
        probe,
    }
}

async fn start_app(b: &TestBackend) -> TestApp {
    start_with(b.backend.clone(), default_config()).await
}

/// A cookie's value in a browser's jar.
fn jar_cookie(browser: &Browser, name: &str) -> Option<String> {
    use reqwest::cookie::CookieStore as _;
    let url = browser.base.parse().unwrap();
    let header = browser.jar.cookies(&url)?;
    header
        .to_str()
        .unwrap()
        .split(';')
        .filter_map(|p| p.trim().split_once('='))
        .find(|(n, _)| *n == name)
        .map(|(_, v)| v.to_owned())
}

async fn login_remembered(browser: &Browser, user: &str) -> Reply {
    let r = browser
        .act("/login", &[("user", user), ("remember", "on")])
        .await;
    assert_eq!(r.status, 200, "login: {}", r.body);
    r
}

/// A browser that was closed and opened again: only the remember cookie
/// (persistent) survived, the session cookie (no `Max-Age`) did not.
fn restarted(base: &str, remember: &str) -> Browser {
    let b = Browser::new(base, "UA-1");
    b.plant(REMEMBER, remember);
    b
}

fn remember_header(token: &str) -> Vec<u8> {
    format!("{REMEMBER}={token}").into_bytes()
}

fn clear_remember() -> String {
    format!("{REMEMBER}=; Path=/; Secure; HttpOnly; SameSite=Lax; Max-Age=0")
}

async fn whoami_json(browser: &Browser) -> (Value, Reply) {
    let r = browser.get("/whoami").await;
    assert_eq!(r.status, 200, "whoami: {}", r.body);
    (r.json(), r)
}

/// Remember me survives a browser restart: a jar without the session cookie
/// still gets in (a new session and a rotated remember cookie), and again
/// after that session expired; `auth_time` stays the password login's.
async fn browser_restart_resumes(b: TestBackend) {
    let app = start_app(&b).await;
    let alice = Browser::new(&app.base, "UA-1");
    login_remembered(&alice, "alice").await;
    let (me, _) = whoami_json(&alice).await;
    assert_eq!(
        (me["user"].as_str(), me["remembered"].as_bool()),
        (Some("alice"), Some(false))
    );
    let auth_time = me["auth_time"].clone();
    let r1 = jar_cookie(&alice, REMEMBER).expect("remember cookie set");
    assert_eq!(r1.len(), 66);

    app.clock.advance(Duration::from_secs(3 * 24 * 3600));
    let again = restarted(&app.base, &r1);
    let (me, r) = whoami_json(&again).await;
    assert_eq!(me["user"], "alice", "the remember cookie gets in");
    assert_eq!(me["remembered"], true);
    assert_eq!(
        me["auth_time"], auth_time,
        "auth_time is the original login"
    );
    let session = r.cookie(SESSION_COOKIE).expect("a new session cookie");
    assert_eq!(session.len(), 43);
    let r2 = r.cookie(REMEMBER).expect("a rotated remember cookie");
    assert_ne!(r2, r1, "rotated on use");
    assert_eq!(r.cache_control.as_deref(), Some("no-store"));
    assert_eq!(jar_cookie(&again, REMEMBER).as_deref(), Some(r2.as_str()));

    // The new session carries on without touching the persistent login.
    let (me, r) = whoami_json(&again).await;
    assert_eq!(me["user"], "alice");
    assert!(r.set_cookies.is_empty(), "{:?}", r.set_cookies);

    // The session expires (idle); the persistent login starts another one.
    app.clock.advance(IDLE + Duration::from_secs(1));
    let (me, r) = whoami_json(&again).await;
    assert_eq!(me["user"], "alice");
    assert_eq!(me["remembered"], true);
    let r3 = r.cookie(REMEMBER).expect("rotated again");
    assert_ne!(r3, r2);
    assert_ne!(r.cookie(SESSION_COOKIE).unwrap(), session);
    b.finish().await;
}

/// A stolen remember cookie replayed by an attacker first: the victim's
/// next use fails and revokes the family, the attacker's rotated cookie
/// and the session it started die with it, the victim logs in again.
async fn stolen_remember_cookie_revokes_family(b: TestBackend) {
    let app = start_app(&b).await;
    let victim = Browser::new(&app.base, "UA-1");
    login_remembered(&victim, "alice").await;
    let stolen = jar_cookie(&victim, REMEMBER).unwrap();

    let attacker = restarted(&app.base, &stolen);
    let (me, r) = whoami_json(&attacker).await;
    assert_eq!(me["user"], "alice", "the thief gets in first");
    let attacker_rotated = r.cookie(REMEMBER).unwrap();

    app.clock.advance(GRACE + Duration::from_secs(1));
    let victim = restarted(&app.base, &stolen);
    let (me, r) = whoami_json(&victim).await;
    assert_eq!(me["user"], Value::Null, "reuse detected: not logged in");
    assert_eq!(r.set_cookies, [clear_remember()]);
    assert_eq!(r.cache_control.as_deref(), Some("no-store"));
    assert_eq!(jar_cookie(&victim, REMEMBER), None);

    let (me, _) = whoami_json(&attacker).await;
    assert_eq!(
        me["user"],
        Value::Null,
        "the session the thief started is revoked"
    );
    let replay = restarted(&app.base, &attacker_rotated);
    let (me, r) = whoami_json(&replay).await;
    assert_eq!(
        me["user"],
        Value::Null,
        "the thief's rotated cookie is dead too"
    );
    assert_eq!(r.set_cookies, [clear_remember()]);

    login_remembered(&victim, "alice").await;
    let (me, _) = whoami_json(&victim).await;
    assert_eq!(me["user"], "alice", "the victim logs in again");
    assert_eq!(me["remembered"], false);
    b.finish().await;
}

/// Logout and logout everywhere end persistent logins and clear the cookie.
async fn logout_kills_persistent_logins(b: TestBackend) {
    let app = start_app(&b).await;
    let alice = Browser::new(&app.base, "UA-1");
    login_remembered(&alice, "alice").await;
    let saved = jar_cookie(&alice, REMEMBER).unwrap();
    let r = alice.act("/logout", &[]).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(
        r.set_cookies,
        [
            format!("{SESSION_COOKIE}=; Path=/; Secure; HttpOnly; SameSite=Lax; Max-Age=0"),
            clear_remember(),
        ]
    );
    assert_eq!(r.cache_control.as_deref(), Some("no-store"));
    assert_eq!(jar_cookie(&alice, REMEMBER), None);
    let again = restarted(&app.base, &saved);
    let (me, r) = whoami_json(&again).await;
    assert_eq!(
        me["user"],
        Value::Null,
        "logout revoked the persistent login"
    );
    assert_eq!(r.set_cookies, [clear_remember()]);

    // A session resumed from the remember cookie logs out the same way.
    login_remembered(&alice, "alice").await;
    let resumed = restarted(&app.base, &jar_cookie(&alice, REMEMBER).unwrap());
    assert_eq!(whoami_json(&resumed).await.0["remembered"], true);
    let saved = jar_cookie(&resumed, REMEMBER).unwrap();
    assert_eq!(resumed.act("/logout", &[]).await.status, 200);
    let (me, _) = whoami_json(&restarted(&app.base, &saved)).await;
    assert_eq!(me["user"], Value::Null);

    // Logout everywhere ends every device's persistent login.
    let (a, c) = (
        Browser::new(&app.base, "UA-1"),
        Browser::new(&app.base, "UA-1"),
    );
    login_remembered(&a, "alice").await;
    login_remembered(&c, "alice").await;
    let bob = Browser::new(&app.base, "UA-1");
    login_remembered(&bob, "bob").await;
    let (ra, rc, rb) = (
        jar_cookie(&a, REMEMBER).unwrap(),
        jar_cookie(&c, REMEMBER).unwrap(),
        jar_cookie(&bob, REMEMBER).unwrap(),
    );
    let r = a.act("/logout-everywhere", &[]).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(
        r.set_cookies.contains(&clear_remember()),
        "{:?}",
        r.set_cookies
    );
    for saved in [ra, rc] {
        let (me, _) = whoami_json(&restarted(&app.base, &saved)).await;
        assert_eq!(me["user"], Value::Null);
    }
    let (me, _) = whoami_json(&restarted(&app.base, &rb)).await;
    assert_eq!(me["user"], "bob", "another user's persistent login stays");
    b.finish().await;
}

/// Two tabs of a restarted browser race on one remember cookie: both stay
/// logged in (within the grace) and both end up with the same successor.
async fn two_tabs_race_on_one_cookie(b: TestBackend) {
    let app = start_app(&b).await;
    let alice = Browser::new(&app.base, "UA-1");
    login_remembered(&alice, "alice").await;
    let r0 = jar_cookie(&alice, REMEMBER).unwrap();
    let header = remember_header(&r0);
    let h: &[(&str, &[u8])] = &[("cookie", &header), ("user-agent", b"UA-1")];
    let (t1, t2) = tokio::join!(
        get_raw(&app.base, "/whoami", h),
        get_raw(&app.base, "/whoami", h)
    );
    for r in [&t1, &t2] {
        assert_eq!(r.status, 200, "{}", r.body);
        assert_eq!(r.json()["user"], "alice");
        assert_eq!(r.cache_control.as_deref(), Some("no-store"));
        assert!(r.cookie(SESSION_COOKIE).is_some());
    }
    let (n1, n2) = (t1.cookie(REMEMBER).unwrap(), t2.cookie(REMEMBER).unwrap());
    assert_eq!(n1, n2, "one successor for both tabs");
    assert_ne!(n1, r0);
    assert_ne!(t1.cookie(SESSION_COOKIE), t2.cookie(SESSION_COOKIE));

    // The successor is the family's live token.
    app.clock.advance(GRACE + Duration::from_secs(1));
    let next = restarted(&app.base, &n1);
    let (me, r) = whoami_json(&next).await;
    assert_eq!(me["user"], "alice");
    assert_ne!(r.cookie(REMEMBER).unwrap(), n1);
    b.finish().await;
}

/// The remember cookie's exact `Set-Cookie`, its `Max-Age` the family's
/// remaining lifetime, a configured name, and its validation.
async fn remember_cookie_attributes_are_exact(b: TestBackend) {
    let app = start_app(&b).await;
    let alice = Browser::new(&app.base, "UA-1");
    let r = login_remembered(&alice, "alice").await;
    let session = r.cookie(SESSION_COOKIE).unwrap();
    let token = r.cookie(REMEMBER).unwrap();
    assert_eq!(
        r.set_cookies,
        [
            format!("{SESSION_COOKIE}={session}; Path=/; Secure; HttpOnly; SameSite=Lax"),
            "__Host-csrf=; Path=/; Secure; HttpOnly; SameSite=Strict; Max-Age=0".to_owned(),
            format!(
                "{REMEMBER}={token}; Path=/; Secure; HttpOnly; SameSite=Lax; Max-Age={}",
                LIFETIME.as_secs()
            ),
        ]
    );
    assert_eq!(r.cache_control.as_deref(), Some("no-store"));

    let day = Duration::from_secs(24 * 3600);
    app.clock.advance(day);
    let r = restarted(&app.base, &token).get("/whoami").await;
    let new_session = r.cookie(SESSION_COOKIE).unwrap();
    let rotated = r.cookie(REMEMBER).unwrap();
    assert_eq!(
        r.set_cookies,
        [
            format!("{SESSION_COOKIE}={new_session}; Path=/; Secure; HttpOnly; SameSite=Lax"),
            format!(
                "{REMEMBER}={rotated}; Path=/; Secure; HttpOnly; SameSite=Lax; Max-Age={}",
                (LIFETIME - day).as_secs()
            ),
        ],
        "the family's remaining lifetime, not a fresh 30 days"
    );

    // A configured name; the same rules as the session cookie.
    let named =
        default_config().with_remember_cookie(CookieConfig::default().with_name("__Host-rm"));
    let app2 = start_with(b.backend.clone(), named).await;
    let bob = Browser::new(&app2.base, "UA-1");
    let r = login_remembered(&bob, "bob").await;
    let t = r.cookie("__Host-rm").expect("configured name");
    assert!(r.set_cookies.iter().any(|c| c.starts_with(&format!(
        "__Host-rm={t}; Path=/; Secure; HttpOnly; SameSite=Lax; Max-Age="
    ))));
    let invalid = |c: CookieConfig| match default_config().with_remember_cookie(c).validate() {
        Err(Error::Config(m)) => m,
        other => panic!("expected Error::Config, got {other:?}"),
    };
    assert!(invalid(
        CookieConfig::default()
            .with_name("__Host-x")
            .with_secure(false)
    )
    .contains("remember"));
    assert!(invalid(
        CookieConfig::default()
            .with_name("__Host-x")
            .with_path("/a")
    )
    .contains("Path=/"));
    assert!(
        invalid(CookieConfig::default()).contains("differ"),
        "the session cookie's name"
    );
    assert!(invalid(CookieConfig::default().with_name("__Host-csrf")).contains("differ"));
    assert!(invalid(CookieConfig::default().with_name("a b")).contains("HTTP token"));
    b.finish().await;
}

/// Malformed and oversized remember cookies are ignored and cleared without
/// store I/O; a well-formed unknown one is cleared after one lookup.
async fn malformed_remember_cookies_cleared_without_io(b: TestBackend) {
    let app = start_app(&b).await;
    let good_shape = format!("p.{}", "A".repeat(64));
    let cases: Vec<(String, &str)> = vec![
        ("garbage".into(), "garbage"),
        (String::new(), "empty"),
        (format!("p.{}", "A".repeat(63)), "one short"),
        (format!("p.{}", "A".repeat(65)), "one long"),
        (format!("p.{}!", "A".repeat(63)), "bad character"),
        (format!("s.{}", "A".repeat(64)), "wrong prefix"),
        ("A".repeat(43), "a session token's shape"),
        (format!("p.{}", "A".repeat(6000)), "oversized"),
    ];
    for (value, what) in &cases {
        let before = app.probe.calls();
        let header = remember_header(value);
        let r = get_raw(&app.base, "/whoami", &[("cookie", &header)]).await;
        assert_eq!(r.status, 200, "{what}: {}", r.body);
        assert_eq!(r.json()["user"], Value::Null, "{what}");
        assert_eq!(r.set_cookies, [clear_remember()], "{what}");
        assert_eq!(r.cache_control.as_deref(), Some("no-store"), "{what}");
        assert_eq!(app.probe.calls(), before, "{what}: no store I/O");
    }
    // Cleared even when the handler never touches the session.
    let header = remember_header("garbage");
    let r = get_raw(&app.base, "/none", &[("cookie", &header)]).await;
    assert_eq!(r.set_cookies, [clear_remember()]);

    let before = app.probe.calls();
    let header = remember_header(&good_shape);
    let r = get_raw(&app.base, "/whoami", &[("cookie", &header)]).await;
    assert_eq!(r.json()["user"], Value::Null);
    assert_eq!(r.set_cookies, [clear_remember()], "unknown family");
    assert_eq!(app.probe.calls(), before + 1, "one lookup");

    // All in one header, as the one pass over it meets them: a malformed
    // remember cookie, then a malformed session cookie before the valid one.
    // The valid session is used (one load), the remember cookie is cleared
    // without a lookup, and the session cookie is left alone.
    let alice = Browser::new(&app.base, "UA-1");
    alice.login("alice").await;
    let t = alice.session_cookie().expect("session cookie");
    let header =
        format!("{REMEMBER}=garbage; {SESSION_COOKIE}=garbage; {SESSION_COOKIE}={t}").into_bytes();
    let before = app.probe.calls();
    let r = get_raw(
        &app.base,
        "/whoami",
        &[("cookie", &header), ("user-agent", b"UA-1")],
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["user"], "alice");
    assert_eq!(r.set_cookies, [clear_remember()]);
    assert_eq!(app.probe.calls(), before + 1, "the session's load only");
    b.finish().await;
}

/// A store outage while resuming is `503`: the remember cookie is kept
/// (never a logout), and works once the store is back.
async fn store_outage_keeps_remember_cookie(b: TestBackend) {
    let app = start_app(&b).await;
    let alice = Browser::new(&app.base, "UA-1");
    login_remembered(&alice, "alice").await;
    let saved = jar_cookie(&alice, REMEMBER).unwrap();
    let again = restarted(&app.base, &saved);
    app.probe.set_down(true);
    let r = again.get("/whoami").await;
    assert_eq!(r.status, 503, "{}", r.body);
    assert!(r.set_cookies.is_empty(), "{:?}", r.set_cookies);
    app.probe.set_down(false);
    assert_eq!(
        jar_cookie(&again, REMEMBER).as_deref(),
        Some(saved.as_str())
    );
    let (me, _) = whoami_json(&again).await;
    assert_eq!(me["user"], "alice");
    b.finish().await;
}

async fn post_refresh(base: &str, body: Option<&str>, header: Option<&str>) -> Reply {
    let mut req = reqwest::Client::new()
        .post(format!("{base}/api/refresh"))
        .header("user-agent", "API-1");
    if let Some(b) = body {
        req = req
            .header("content-type", "application/json")
            .body(b.to_owned());
    }
    if let Some(h) = header {
        req = req.header("refresh-token", h);
    }
    reply(req.send().await.unwrap()).await
}

async fn bearer_whoami(base: &str, token: &str) -> Value {
    let r = get_raw(
        base,
        "/whoami",
        &[("authorization", format!("Bearer {token}").as_bytes())],
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    r.json()
}

/// The refresh-token endpoint for API clients (header mode): exchange,
/// rotation, reuse revoking the family, bad requests, an outage.
async fn refresh_endpoint(b: TestBackend) {
    let config = default_config().with_header_mode(Some(HeaderMode::Bearer));
    let app = start_with(b.backend.clone(), config).await;
    let client = Browser::new(&app.base, "API-1");
    let r = client.act("/api/login", &[("user", "alice")]).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let login = r.json();
    let r0 = login["refresh_token"].as_str().unwrap().to_owned();
    assert_eq!(r0.len(), 66);
    assert!(
        r.cookie(REMEMBER).is_none(),
        "a refresh token is never a cookie"
    );

    app.clock.advance(ABSOLUTE + Duration::from_secs(1));
    let s0 = login["session_token"].as_str().unwrap();
    assert_eq!(
        bearer_whoami(&app.base, s0).await["user"],
        Value::Null,
        "expired"
    );

    let r = post_refresh(
        &app.base,
        Some(&json!({ "refresh_token": r0 }).to_string()),
        None,
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.cache_control.as_deref(), Some("no-store"));
    assert!(r.set_cookies.is_empty());
    let grant = r.json();
    assert_eq!(grant["token_type"], "Bearer");
    let r1 = grant["refresh_token"].as_str().unwrap().to_owned();
    assert_ne!(r1, r0, "rotated");
    assert_eq!(
        grant["refresh_expires_in"].as_u64(),
        Some((LIFETIME - ABSOLUTE - Duration::from_secs(1)).as_secs())
    );
    assert_eq!(grant["expires_in"].as_u64(), Some(IDLE.as_secs()));
    let me = bearer_whoami(&app.base, grant["session_token"].as_str().unwrap()).await;
    assert_eq!(
        (me["user"].as_str(), me["remembered"].as_bool()),
        (Some("alice"), Some(true))
    );

    // The header works too.
    let r = post_refresh(&app.base, None, Some(&r1)).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let r2 = r.json()["refresh_token"].as_str().unwrap().to_owned();
    let s2 = r.json()["session_token"].as_str().unwrap().to_owned();

    // A store outage is 503, and the token stays valid.
    app.probe.set_down(true);
    let r = post_refresh(&app.base, None, Some(&r2)).await;
    assert_eq!(r.status, 503, "{}", r.body);
    app.probe.set_down(false);

    // Replaying a spent token (outside the grace) revokes the family: the
    // live token and the sessions it started stop working.
    app.clock.advance(GRACE + Duration::from_secs(1));
    let r = post_refresh(&app.base, None, Some(&r0)).await;
    assert_eq!(
        (r.status, r.json()),
        (401, json!({ "error": "invalid_grant" }))
    );
    assert_eq!(r.cache_control.as_deref(), Some("no-store"));
    let r = post_refresh(&app.base, None, Some(&r2)).await;
    assert_eq!(r.status, 401, "the live token died with its family");
    assert_eq!(bearer_whoami(&app.base, &s2).await["user"], Value::Null);

    // Bad requests: malformed (no I/O), missing, not JSON.
    let before = app.probe.calls();
    for bad in ["x", "", &"p.".repeat(40)] {
        let r = post_refresh(
            &app.base,
            Some(&json!({ "refresh_token": bad }).to_string()),
            None,
        )
        .await;
        assert_eq!(r.status, 401, "{bad:?}: {}", r.body);
    }
    let r = post_refresh(&app.base, Some("{}"), None).await;
    assert_eq!(
        (r.status, r.json()),
        (400, json!({ "error": "invalid_request" }))
    );
    let r = post_refresh(&app.base, Some("not json"), None).await;
    assert_eq!(r.status, 400);
    let r = post_refresh(&app.base, Some(&"x".repeat(10_000)), None).await;
    assert_eq!(r.status, 413);
    assert_eq!(app.probe.calls(), before, "bad requests cost no store I/O");
    b.finish().await;
}

/// The devices list shows persistent logins; revoking one by its handle
/// ends "remember me" there (and clears the cookie on that device).
async fn devices_list_and_revoke_persistent_logins(b: TestBackend) {
    let app = start_app(&b).await;
    let (a, c) = (
        Browser::new(&app.base, "UA-1"),
        Browser::new(&app.base, "UA-1"),
    );
    login_remembered(&a, "alice").await;
    login_remembered(&c, "alice").await;
    let list = a.get("/devices").await.json();
    let list = list.as_array().unwrap();
    let kinds = |kind: &str| list.iter().filter(|d| d["kind"] == kind).count();
    assert_eq!((kinds("session"), kinds("persistent")), (2, 2), "{list:?}");
    let other = list
        .iter()
        .find(|d| d["kind"] == "persistent" && d["current"] == false)
        .unwrap()["handle"]
        .as_str()
        .unwrap()
        .to_owned();
    let mine = list
        .iter()
        .find(|d| d["kind"] == "persistent" && d["current"] == true)
        .unwrap()["handle"]
        .as_str()
        .unwrap()
        .to_owned();
    let c_saved = jar_cookie(&c, REMEMBER).unwrap();
    let r = a.act("/revoke", &[("handle", &other)]).await;
    assert_eq!(r.body, "true");
    assert!(
        r.set_cookies.iter().all(|s| !s.starts_with(REMEMBER)),
        "not this device's"
    );
    let (me, _) = whoami_json(&restarted(&app.base, &c_saved)).await;
    assert_eq!(me["user"], Value::Null, "revoked persistent login");
    assert_eq!(
        whoami_json(&c).await.0["user"],
        "alice",
        "its session stays"
    );

    let a_saved = jar_cookie(&a, REMEMBER).unwrap();
    let r = a.act("/revoke", &[("handle", &mine)]).await;
    assert_eq!(r.body, "true");
    assert!(
        r.set_cookies.contains(&clear_remember()),
        "{:?}",
        r.set_cookies
    );
    assert_eq!(whoami_json(&a).await.0["user"], "alice", "still logged in");
    let (me, _) = whoami_json(&restarted(&app.base, &a_saved)).await;
    assert_eq!(me["user"], Value::Null);
    b.finish().await;
}

/// "Log out other devices" (after a password change) ends every other
/// session and every persistent login of the user, this device's included:
/// this device stays logged in, and its response clears the remember cookie
/// it no longer backs (no dead cookie left in the browser).
async fn logout_other_devices_ends_persistent_logins_and_clears_this_cookie(b: TestBackend) {
    let app = start_app(&b).await;
    let (a, c) = (
        Browser::new(&app.base, "UA-1"),
        Browser::new(&app.base, "UA-1"),
    );
    login_remembered(&a, "alice").await;
    login_remembered(&c, "alice").await;
    let (a_saved, c_saved) = (
        jar_cookie(&a, REMEMBER).unwrap(),
        jar_cookie(&c, REMEMBER).unwrap(),
    );
    let r = a.act("/logout-others", &[]).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body, "3", "c's session and both persistent logins");
    assert_eq!(r.set_cookies, [clear_remember()]);
    assert_eq!(r.cache_control.as_deref(), Some("no-store"));
    assert_eq!(jar_cookie(&a, REMEMBER), None);
    assert_eq!(whoami_json(&a).await.0["user"], "alice", "this one stays");
    assert_eq!(whoami_json(&c).await.0["user"], Value::Null, "c is out");
    for saved in [a_saved, c_saved] {
        let (me, r) = whoami_json(&restarted(&app.base, &saved)).await;
        assert_eq!(me["user"], Value::Null, "no persistent login resumes");
        assert_eq!(r.set_cookies, [clear_remember()]);
    }
    b.finish().await;
}

/// Another user signing in on a browser that resumed someone's persistent
/// login ends that persistent login there (a shared computer), and a
/// password login of the same user is no longer "remembered".
async fn another_user_login_ends_the_persistent_login(b: TestBackend) {
    let app = start_app(&b).await;
    let alice = Browser::new(&app.base, "UA-1");
    login_remembered(&alice, "alice").await;
    let shared = restarted(&app.base, &jar_cookie(&alice, REMEMBER).unwrap());
    assert_eq!(whoami_json(&shared).await.0["remembered"], true);
    let live = jar_cookie(&shared, REMEMBER).unwrap();
    shared.login("alice").await;
    let (me, _) = whoami_json(&shared).await;
    assert_eq!(
        (me["user"].as_str(), me["remembered"].as_bool()),
        (Some("alice"), Some(false))
    );
    assert_eq!(
        jar_cookie(&shared, REMEMBER).as_deref(),
        Some(live.as_str()),
        "kept for the same user"
    );

    let r = shared.act("/login", &[("user", "bob")]).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(
        r.set_cookies.contains(&clear_remember()),
        "{:?}",
        r.set_cookies
    );
    let (me, _) = whoami_json(&shared).await;
    assert_eq!(
        (me["user"].as_str(), me["remembered"].as_bool()),
        (Some("bob"), Some(false))
    );
    let (me, _) = whoami_json(&restarted(&app.base, &live)).await;
    assert_eq!(
        me["user"],
        Value::Null,
        "alice's persistent login on that browser is gone"
    );
    b.finish().await;
}

per_backend!("axum_remember";
    another_user_login_ends_the_persistent_login,
    browser_restart_resumes,
    stolen_remember_cookie_revokes_family,
    logout_kills_persistent_logins,
    two_tabs_race_on_one_cookie,
    remember_cookie_attributes_are_exact,
    malformed_remember_cookies_cleared_without_io,
    store_outage_keeps_remember_cookie,
    refresh_endpoint,
    devices_list_and_revoke_persistent_logins,
    logout_other_devices_ends_persistent_logins_and_clears_this_cookie,
);
