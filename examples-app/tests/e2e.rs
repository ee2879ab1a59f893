//! End-to-end: the reference app served on 127.0.0.1, driven over HTTP by
//! reqwest. Cookies are handled by hand (parsing `Set-Cookie`, sending
//! `Cookie`), because a real jar never sends a `Secure`/`__Host-` cookie
//! over plain http. Time is a `ManualClock` shared with the manager. Every
//! scenario runs on SQLite, encrypted SQLite and Redis.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;
use session_store_core::{
    Clock as _, Encrypted, EncryptionKey, Keyring, ManualClock, OnCorrupt, Policy, SessionBackend,
    SessionManager, SessionToken,
};
use session_store_example_app::{router_with, AppOptions, COOKIE_NAME};
use session_store_test_support::{per_backend, TestBackend};

const IDLE: Duration = Duration::from_secs(10 * 60);
const ABSOLUTE: Duration = Duration::from_secs(60 * 60);
const GRACE: Duration = Duration::from_secs(30);
const RENEW_AFTER: Duration = Duration::from_secs(20 * 60);

struct TestApp {
    base: String,
    clock: Arc<ManualClock>,
    manager: SessionManager,
}

async fn start_with(b: &TestBackend, options: AppOptions) -> TestApp {
    start_on(b.backend.clone(), options).await
}

async fn start_on(backend: Arc<dyn SessionBackend>, options: AppOptions) -> TestApp {
    start_on_with(backend, options, Policy::default().on_corrupt).await
}

async fn start_on_with(
    backend: Arc<dyn SessionBackend>,
    options: AppOptions,
    on_corrupt: OnCorrupt,
) -> TestApp {
    let clock = Arc::new(ManualClock::starting_now());
    let policy = Policy {
        idle_timeout: IDLE,
        absolute_timeout: ABSOLUTE,
        touch_interval: Duration::from_secs(1),
        renewal_grace: GRACE,
        on_corrupt,
        ..Policy::default()
    };
    let manager = SessionManager::builder(backend)
        .clock(clock.clone())
        .policy(policy)
        .build()
        .unwrap();
    let router = router_with(manager.clone(), options);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        axum::serve(
            listener,
            router.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .await
        .unwrap()
    });
    TestApp {
        base: format!("http://{addr}"),
        clock,
        manager,
    }
}

async fn start(b: &TestBackend) -> TestApp {
    start_with(
        b,
        AppOptions {
            renew_after: Some(RENEW_AFTER),
            ..AppOptions::default()
        },
    )
    .await
}

struct Reply {
    status: u16,
    set_cookies: Vec<String>,
    cache_control: Option<String>,
    body: String,
}

impl Reply {
    fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|_| panic!("not JSON: {}", self.body))
    }
}

/// A browser whose cookie is handled by hand.
struct Browser {
    client: reqwest::Client,
    base: String,
    cookie: Option<String>,
    /// Every other cookie the server set (the login form's `__Host-csrf`).
    others: std::collections::BTreeMap<String, String>,
    user_agent: String,
}

fn form_encode(pairs: &[(&str, &str)]) -> String {
    let enc = |s: &str| {
        s.bytes()
            .map(|b| match b {
                b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                    (b as char).to_string()
                }
                _ => format!("%{b:02X}"),
            })
            .collect::<String>()
    };
    pairs
        .iter()
        .map(|(k, v)| format!("{}={}", enc(k), enc(v)))
        .collect::<Vec<_>>()
        .join("&")
}

impl Browser {
    fn new(app: &TestApp, user_agent: &str) -> Self {
        Browser {
            client: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap(),
            base: app.base.clone(),
            cookie: None,
            others: Default::default(),
            user_agent: user_agent.into(),
        }
    }

    async fn send(
        &mut self,
        method: reqwest::Method,
        path: &str,
        form: Option<&[(&str, &str)]>,
        header: Option<(&str, &str)>,
    ) -> Reply {
        let mut req = self
            .client
            .request(method, format!("{}{path}", self.base))
            .header("user-agent", &self.user_agent);
        let mut cookies: Vec<String> = self
            .others
            .iter()
            .map(|(name, value)| format!("{name}={value}"))
            .collect();
        if let Some(c) = &self.cookie {
            cookies.push(format!("{COOKIE_NAME}={c}"));
        }
        if !cookies.is_empty() {
            req = req.header("cookie", cookies.join("; "));
        }
        if let Some(form) = form {
            req = req
                .header("content-type", "application/x-www-form-urlencoded")
                .body(form_encode(form));
        }
        if let Some((name, value)) = header {
            req = req.header(name, value);
        }
        let res = req.send().await.unwrap();
        let set_cookies: Vec<String> = res
            .headers()
            .get_all("set-cookie")
            .iter()
            .map(|v| v.to_str().unwrap().to_owned())
            .collect();
        let cache_control = res
            .headers()
            .get("cache-control")
            .map(|v| v.to_str().unwrap().to_owned());
        let status = res.status().as_u16();
        let body = res.text().await.unwrap();
        for sc in &set_cookies {
            let first = sc.split(';').next().unwrap();
            let (name, value) = first.split_once('=').unwrap();
            if name == COOKIE_NAME {
                self.cookie = if value.is_empty() || sc.contains("Max-Age=0") {
                    None
                } else {
                    Some(value.to_owned())
                };
            } else if value.is_empty() || sc.contains("Max-Age=0") {
                self.others.remove(name);
            } else {
                self.others.insert(name.to_owned(), value.to_owned());
            }
        }
        Reply {
            status,
            set_cookies,
            cache_control,
            body,
        }
    }

    async fn get(&mut self, path: &str) -> Reply {
        self.send(reqwest::Method::GET, path, None, None).await
    }

    async fn post(&mut self, path: &str, form: &[(&str, &str)]) -> Reply {
        self.send(reqwest::Method::POST, path, Some(form), None)
            .await
    }

    /// `GET /session.json`.
    async fn session(&mut self) -> Value {
        let r = self.get("/session.json").await;
        assert_eq!(r.status, 200, "{}", r.body);
        r.json()
    }

    async fn user(&mut self) -> Value {
        self.session().await["user"].clone()
    }

    async fn csrf(&mut self) -> String {
        self.session().await["csrf"].as_str().unwrap().to_owned()
    }

    /// The login page, then the login form with the page's CSRF token.
    async fn login(&mut self, user: &str, password: &str) -> Reply {
        assert_eq!(self.get("/login").await.status, 200);
        let csrf = self.csrf().await;
        self.post(
            "/login",
            &[("username", user), ("password", password), ("csrf", &csrf)],
        )
        .await
    }

    async fn post_checked(&mut self, path: &str, extra: &[(&str, &str)]) -> Reply {
        let csrf = self.csrf().await;
        let mut form = vec![("csrf", csrf.as_str())];
        form.extend_from_slice(extra);
        self.post(path, &form).await
    }
}

fn assert_session_cookie(set_cookie: &str) -> String {
    let prefix = format!("{COOKIE_NAME}=");
    let suffix = "; Path=/; Secure; HttpOnly; SameSite=Lax";
    assert!(
        set_cookie.starts_with(&prefix) && set_cookie.ends_with(suffix),
        "unexpected Set-Cookie: {set_cookie}"
    );
    let token = &set_cookie[prefix.len()..set_cookie.len() - suffix.len()];
    assert!(SessionToken::parse(token).is_ok(), "token shape");
    assert!(!set_cookie.contains("Domain") && !set_cookie.contains("Max-Age"));
    token.to_owned()
}

const EXPIRED: &str = "__Host-session=; Path=/; Secure; HttpOnly; SameSite=Lax; Max-Age=0";

async fn exact_cookie_attributes(b: TestBackend) {
    let app = start(&b).await;
    let mut browser = Browser::new(&app, "test");
    let r = browser.get("/").await;
    assert!(r.set_cookies.is_empty(), "no session without need");
    assert_eq!(r.cache_control.as_deref(), Some("no-store"));

    // The login form stores nothing: its CSRF token is a signed
    // double-submit cookie, not a session.
    let r = browser.get("/login").await;
    assert_eq!(r.set_cookies.len(), 1, "{:?}", r.set_cookies);
    let csrf_cookie = &r.set_cookies[0];
    assert!(
        csrf_cookie.starts_with("__Host-csrf=")
            && csrf_cookie.ends_with("; Path=/; Secure; HttpOnly; SameSite=Strict"),
        "{csrf_cookie}"
    );
    assert_eq!(r.cache_control.as_deref(), Some("no-store"));
    assert_eq!(browser.cookie, None);

    let r = browser.login("alice", "alice-password").await;
    assert_eq!(r.status, 303);
    assert_eq!(r.set_cookies.len(), 2, "{:?}", r.set_cookies);
    assert_session_cookie(&r.set_cookies[0]);
    assert_eq!(
        r.set_cookies[1],
        "__Host-csrf=; Path=/; Secure; HttpOnly; SameSite=Strict; Max-Age=0"
    );
    assert_eq!(r.cache_control.as_deref(), Some("no-store"));

    let r = browser.post_checked("/logout", &[]).await;
    assert_eq!(r.status, 303);
    assert_eq!(r.set_cookies, vec![EXPIRED.to_owned()]);
    assert_eq!(r.cache_control.as_deref(), Some("no-store"));
    b.finish().await;
}

async fn cookie_max_age_never_exceeds_absolute_timeout(b: TestBackend) {
    let app = start_with(
        &b,
        AppOptions {
            cookie_max_age: Some(Duration::from_secs(24 * 3600)),
            ..AppOptions::default()
        },
    )
    .await;
    let mut browser = Browser::new(&app, "test");
    let r = browser.login("alice", "alice-password").await;
    assert!(
        r.set_cookies[0].ends_with("; Max-Age=3600"),
        "{}",
        r.set_cookies[0]
    );
    b.finish().await;
}

async fn session_fixation_planted_cookie_is_useless(b: TestBackend) {
    let app = start(&b).await;
    let mut attacker = Browser::new(&app, "attacker");
    // A first write creates the attacker's anonymous session.
    attacker.get("/login").await;
    assert_eq!(attacker.post_checked("/counter", &[]).await.status, 200);
    let planted = attacker.cookie.clone().unwrap();
    let mut victim = Browser::new(&app, "victim");
    victim.cookie = Some(planted.clone());
    let csrf_before = victim.csrf().await;
    let r = victim.login("alice", "alice-password").await;
    assert_eq!(r.status, 303, "{}", r.body);
    assert_ne!(victim.cookie.as_deref(), Some(planted.as_str()));
    assert_ne!(victim.csrf().await, csrf_before, "CSRF token regenerated");
    assert_eq!(victim.user().await, "alice");
    // The planted token is dead server-side at once (no grace for logins).
    assert!(app.manager.load(&planted).await.unwrap().is_none());
    assert_eq!(attacker.user().await, Value::Null);
    assert_ne!(attacker.cookie, victim.cookie, "a fresh anonymous session");
    b.finish().await;
}

async fn stolen_cookie_after_logout_is_rejected(b: TestBackend) {
    let app = start(&b).await;
    let mut victim = Browser::new(&app, "victim");
    victim.login("alice", "alice-password").await;
    let csrf = victim.csrf().await;
    let mut thief = Browser::new(&app, "thief");
    thief.cookie = victim.cookie.clone();
    let stolen = thief.cookie.clone().unwrap();
    assert_eq!(victim.post_checked("/logout", &[]).await.status, 303);
    assert_eq!(victim.cookie, None);
    assert!(app.manager.load(&stolen).await.unwrap().is_none());
    let r = thief.post("/counter", &[("csrf", &csrf)]).await;
    assert_eq!(r.status, 403, "a dead session changes nothing");
    thief.cookie = Some(stolen);
    assert_eq!(thief.user().await, Value::Null);
    b.finish().await;
}

async fn logout_everywhere_and_other_devices(b: TestBackend) {
    let app = start(&b).await;
    let mut phone = Browser::new(&app, "phone");
    let mut laptop = Browser::new(&app, "laptop");
    let mut tablet = Browser::new(&app, "tablet");
    let mut bob = Browser::new(&app, "bob");
    phone.login("alice", "alice-password").await;
    laptop.login("alice", "alice-password").await;
    tablet.login("alice", "alice-password").await;
    bob.login("bob", "bob-password").await;

    assert_eq!(phone.post_checked("/logout-others", &[]).await.status, 303);
    assert_eq!(phone.user().await, "alice", "the current session stays");
    assert_eq!(laptop.user().await, Value::Null);
    assert_eq!(tablet.user().await, Value::Null);

    laptop.login("alice", "alice-password").await;
    let r = laptop.post_checked("/logout-everywhere", &[]).await;
    assert_eq!(r.status, 303);
    assert_eq!(r.set_cookies, vec![EXPIRED.to_owned()]);
    assert_eq!(phone.user().await, Value::Null, "second client logged out");
    assert_eq!(bob.user().await, "bob", "other users untouched");
    b.finish().await;
}

async fn devices_list_and_revoke_by_handle(b: TestBackend) {
    let app = start(&b).await;
    let mut phone = Browser::new(&app, "Phone/1.0");
    let mut laptop = Browser::new(&app, "<script>alert(1)</script>");
    let mut bob = Browser::new(&app, "bob");
    phone.login("alice", "alice-password").await;
    laptop.login("alice", "alice-password").await;
    bob.login("bob", "bob-password").await;

    let r = phone.get("/devices.json").await;
    assert_eq!(r.status, 200);
    let devices = r.json()["devices"].as_array().unwrap().clone();
    assert_eq!(devices.len(), 2);
    for d in &devices {
        assert_eq!(d["ip"], "127.0.0.1");
        assert!(d["auth_time"].is_i64() && d["created_at"].is_i64());
        assert!(d["last_seen_at"].is_i64());
    }
    let current: Vec<_> = devices.iter().filter(|d| d["current"] == true).collect();
    assert_eq!(current.len(), 1);
    assert_eq!(current[0]["user_agent"], "Phone/1.0");
    let other = devices.iter().find(|d| d["current"] == false).unwrap();
    assert_eq!(other["user_agent"], "<script>alert(1)</script>");
    let handle = other["handle"].as_str().unwrap().to_owned();

    let page = phone.get("/devices").await;
    assert!(page.body.contains("&lt;script&gt;") && !page.body.contains("<script>"));
    assert!(page.body.contains(&handle));

    // A handle is never a token.
    let mut forger = Browser::new(&app, "forger");
    forger.cookie = Some(handle.clone());
    assert_eq!(forger.user().await, Value::Null);
    // Another user's handle revokes nothing; garbage is a bad request.
    assert_eq!(
        bob.post_checked("/devices/revoke", &[("handle", &handle)])
            .await
            .status,
        404
    );
    assert_eq!(laptop.user().await, "alice");
    assert_eq!(
        phone
            .post_checked("/devices/revoke", &[("handle", "not-a-handle")])
            .await
            .status,
        400
    );
    let r = phone
        .post_checked("/devices/revoke", &[("handle", &handle)])
        .await;
    assert_eq!(r.status, 303);
    assert_eq!(laptop.user().await, Value::Null, "revoked");
    assert_eq!(phone.user().await, "alice");
    b.finish().await;
}

async fn csrf_is_required_on_state_changes(b: TestBackend) {
    let app = start(&b).await;
    let mut browser = Browser::new(&app, "test");
    // Login itself needs the pre-login session's token.
    browser.get("/login").await;
    let r = browser
        .post(
            "/login",
            &[("username", "alice"), ("password", "alice-password")],
        )
        .await;
    assert_eq!(r.status, 403);
    let mut stranger = Browser::new(&app, "no session");
    let r = stranger
        .post(
            "/login",
            &[
                ("username", "alice"),
                ("password", "alice-password"),
                ("csrf", "x"),
            ],
        )
        .await;
    assert_eq!(r.status, 403);
    assert_eq!(
        browser.login("alice", "wrong").await.status,
        401,
        "bad password"
    );
    browser.login("alice", "alice-password").await;
    let csrf = browser.csrf().await;

    assert_eq!(browser.post("/counter", &[]).await.status, 403);
    let wrong = format!("{}x", &csrf[..csrf.len() - 1]);
    assert_eq!(
        browser.post("/counter", &[("csrf", &wrong)]).await.status,
        403
    );
    assert_eq!(browser.post("/counter", &[("csrf", "")]).await.status, 403);
    assert_eq!(browser.post("/logout", &[]).await.status, 403);
    assert_eq!(
        browser.user().await,
        "alice",
        "refused requests change nothing"
    );
    assert_eq!(browser.session().await["counter"], 0);

    let r = browser.post("/counter", &[("csrf", &csrf)]).await;
    assert_eq!((r.status, r.json()["counter"].clone()), (200, 1.into()));
    let r = browser
        .send(
            reqwest::Method::POST,
            "/counter",
            None,
            Some(("x-csrf-token", &csrf)),
        )
        .await;
    assert_eq!((r.status, r.json()["counter"].clone()), (200, 2.into()));
    b.finish().await;
}

async fn token_is_read_only_from_the_cookie(b: TestBackend) {
    let app = start(&b).await;
    let mut owner = Browser::new(&app, "owner");
    owner.login("alice", "alice-password").await;
    let token = owner.cookie.clone().unwrap();
    let mut other = Browser::new(&app, "other");
    let r = other
        .get(&format!(
            "/session.json?{COOKIE_NAME}={token}&session={token}"
        ))
        .await;
    assert_eq!(r.json()["user"], Value::Null);
    let r = other
        .send(
            reqwest::Method::GET,
            "/session.json",
            None,
            Some(("authorization", &format!("Bearer {token}"))),
        )
        .await;
    assert_eq!(r.json()["user"], Value::Null);
    b.finish().await;
}

async fn idle_and_absolute_expiry(b: TestBackend) {
    let app = start_with(
        &b,
        AppOptions {
            renew_after: None,
            ..AppOptions::default()
        },
    )
    .await;
    let minute = Duration::from_secs(60);
    // Idle: activity keeps it, 10 minutes of silence end it.
    let mut idle = Browser::new(&app, "idle");
    idle.login("alice", "alice-password").await;
    app.clock.advance(9 * minute);
    assert_eq!(idle.user().await, "alice");
    app.clock.advance(9 * minute);
    assert_eq!(
        idle.user().await,
        "alice",
        "activity moved the idle deadline"
    );
    app.clock.advance(10 * minute);
    assert_eq!(idle.user().await, Value::Null, "idle timeout");

    // Absolute: activity every 9 minutes, still over after 60 minutes.
    let mut busy = Browser::new(&app, "busy");
    busy.login("bob", "bob-password").await;
    let absolute = busy.session().await["absolute_deadline"].as_i64().unwrap();
    assert_eq!(
        absolute,
        app.clock.now().as_millis() + ABSOLUTE.as_millis() as i64
    );
    while app.clock.now().as_millis() + 9 * 60_000 < absolute {
        app.clock.advance(9 * minute);
        assert_eq!(busy.user().await, "bob");
    }
    app.clock
        .set(session_store_core::Timestamp::from_millis(absolute));
    assert_eq!(busy.user().await, Value::Null, "absolute timeout");
    b.finish().await;
}

async fn renewal_grace_window(b: TestBackend) {
    let app = start(&b).await;
    let mut browser = Browser::new(&app, "browser");
    browser.login("alice", "alice-password").await;
    let old = browser.cookie.clone().unwrap();
    // Activity within the idle timeout; no renewal before RENEW_AFTER.
    let step = RENEW_AFTER / 4;
    for _ in 0..3 {
        app.clock.advance(step);
        assert_eq!(browser.user().await, "alice");
        assert_eq!(browser.cookie.as_deref(), Some(old.as_str()));
    }
    app.clock.advance(step);
    let r = browser.get("/session.json").await;
    assert_eq!(r.json()["user"], "alice");
    assert_eq!(r.set_cookies.len(), 1, "renewal sends the new token");
    let new = assert_session_cookie(&r.set_cookies[0]);
    assert_ne!(new, old);

    // A request still carrying the old token inside the grace window reaches
    // the session and is handed the new token again.
    let mut late = Browser::new(&app, "browser");
    late.cookie = Some(old.clone());
    app.clock.advance(GRACE / 2);
    let r = late.get("/session.json").await;
    assert_eq!(r.json()["user"], "alice");
    assert_eq!(r.set_cookies.len(), 1);
    assert_eq!(assert_session_cookie(&r.set_cookies[0]), new);

    app.clock.advance(GRACE);
    late.cookie = Some(old);
    assert_eq!(late.user().await, Value::Null, "grace window over");
    assert_eq!(browser.user().await, "alice");
    b.finish().await;
}

per_backend!(
    "example-app";
    exact_cookie_attributes,
    cookie_max_age_never_exceeds_absolute_timeout,
    session_fixation_planted_cookie_is_useless,
    stolen_cookie_after_logout_is_rejected,
    logout_everywhere_and_other_devices,
    devices_list_and_revoke_by_handle,
    csrf_is_required_on_state_changes,
    token_is_read_only_from_the_cookie,
    idle_and_absolute_expiry,
    renewal_grace_window,
);

/// A store failure (here: data encrypted under a key this server does not
/// have, with `OnCorrupt::Fail`, the policy of a server that must not delete
/// what another server can read) answers 503: never "logged out", never a
/// replaced cookie, and the session stays intact for a server that can read it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn store_failure_fails_closed() {
    let b = session_store_test_support::sqlite().await.unwrap();
    let encrypted = |backend: Arc<dyn SessionBackend>| -> Arc<dyn SessionBackend> {
        Arc::new(Encrypted::new(
            backend,
            Keyring::new(1, EncryptionKey::generate()),
        ))
    };
    let good = start_on(encrypted(b.backend.clone()), AppOptions::default()).await;
    let other_key = start_on_with(
        encrypted(b.backend.clone()),
        AppOptions::default(),
        OnCorrupt::Fail,
    )
    .await;
    let mut browser = Browser::new(&good, "browser");
    let r = browser.login("alice", "alice-password").await;
    assert_eq!(r.status, 303, "{}", r.body);
    let cookie = browser.cookie.clone();
    assert!(cookie.is_some());
    browser.base = other_key.base.clone();
    let r = browser.get("/session.json").await;
    assert_eq!(r.status, 503, "{}", r.body);
    assert!(r.set_cookies.is_empty());
    assert_eq!(browser.cookie, cookie);
    let r = browser.post("/logout", &[("csrf", "x")]).await;
    assert_eq!(r.status, 503);
    browser.base = good.base.clone();
    assert_eq!(browser.user().await, "alice", "the session is intact");
    b.finish().await;
}
