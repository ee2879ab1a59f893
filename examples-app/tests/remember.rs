//! End-to-end "Remember me" in the reference app (issue 12): the app served
//! on 127.0.0.1, driven over HTTP by reqwest with cookies handled by hand
//! (as in `e2e.rs`: a real jar never sends a `Secure`/`__Host-` cookie over
//! plain http). A "browser restart" drops the session cookie (it has no
//! `Max-Age`) and keeps the remember cookie. Time is a `ManualClock` shared
//! with the manager. Every scenario runs on SQLite, encrypted SQLite,
//! PostgreSQL, MariaDB and Redis.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;
use session_store_core::{ManualClock, PersistentToken, Policy, SessionManager};
use session_store_example_app::{router_with, AppOptions, COOKIE_NAME};
use session_store_test_support::{per_backend, TestBackend};

const REMEMBER: &str = "__Host-remember";
const IDLE: Duration = Duration::from_secs(10 * 60);
const LIFETIME: Duration = Duration::from_secs(30 * 24 * 3600);
const GRACE: Duration = Duration::from_secs(5);

struct TestApp {
    base: String,
    clock: Arc<ManualClock>,
}

async fn start(b: &TestBackend) -> TestApp {
    let clock = Arc::new(ManualClock::starting_now());
    let policy = Policy {
        idle_timeout: IDLE,
        absolute_timeout: Duration::from_secs(3600),
        touch_interval: Duration::from_secs(1),
        ..Policy::default()
    };
    assert_eq!(policy.persistent.grace, GRACE, "the default grace");
    let manager = SessionManager::builder(b.backend.clone())
        .clock(clock.clone())
        .policy(policy)
        .build()
        .unwrap();
    let router = router_with(manager, AppOptions::default());
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
    }
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
    fn set_cookie(&self, name: &str) -> Option<&str> {
        self.set_cookies
            .iter()
            .find(|c| c.starts_with(&format!("{name}=")))
            .map(String::as_str)
    }
}

/// A browser with a hand-kept cookie jar.
struct Browser {
    client: reqwest::Client,
    base: String,
    cookies: BTreeMap<String, String>,
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
    fn new(app: &TestApp) -> Self {
        Browser {
            client: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap(),
            base: app.base.clone(),
            cookies: BTreeMap::new(),
        }
    }

    /// Closed and opened again: the browser-session cookies are gone.
    fn restart(&mut self) {
        self.cookies.remove(COOKIE_NAME);
        self.cookies.remove("__Host-csrf");
    }

    fn remember(&self) -> Option<String> {
        self.cookies.get(REMEMBER).cloned()
    }

    async fn send(
        &mut self,
        method: reqwest::Method,
        path: &str,
        form: Option<&[(&str, &str)]>,
    ) -> Reply {
        let mut req = self
            .client
            .request(method, format!("{}{path}", self.base))
            .header("user-agent", "Browser/1.0");
        if !self.cookies.is_empty() {
            let header: Vec<String> = self
                .cookies
                .iter()
                .map(|(n, v)| format!("{n}={v}"))
                .collect();
            req = req.header("cookie", header.join("; "));
        }
        if let Some(form) = form {
            req = req
                .header("content-type", "application/x-www-form-urlencoded")
                .body(form_encode(form));
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
            let (name, value) = sc.split(';').next().unwrap().split_once('=').unwrap();
            if value.is_empty() || sc.contains("Max-Age=0") {
                self.cookies.remove(name);
            } else {
                self.cookies.insert(name.to_owned(), value.to_owned());
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
        self.send(reqwest::Method::GET, path, None).await
    }

    async fn session(&mut self) -> (Value, Reply) {
        let r = self.get("/session.json").await;
        assert_eq!(r.status, 200, "{}", r.body);
        (r.json(), r)
    }

    async fn user(&mut self) -> Value {
        self.session().await.0["user"].clone()
    }

    /// The login page, then the form (with "Remember me" when asked).
    async fn login(&mut self, user: &str, remember: bool) -> Reply {
        let page = self.get("/login").await;
        assert!(
            page.body.contains("name=\"remember\" type=\"checkbox\""),
            "{}",
            page.body
        );
        let csrf = self.session().await.0["csrf"].as_str().unwrap().to_owned();
        let password = format!("{user}-password");
        let mut form = vec![
            ("username", user),
            ("password", password.as_str()),
            ("csrf", csrf.as_str()),
        ];
        if remember {
            form.push(("remember", "on"));
        }
        let r = self
            .send(reqwest::Method::POST, "/login", Some(&form))
            .await;
        assert_eq!(r.status, 303, "login: {}", r.body);
        r
    }

    async fn post_checked(&mut self, path: &str, extra: &[(&str, &str)]) -> Reply {
        let csrf = self.session().await.0["csrf"].as_str().unwrap().to_owned();
        let mut form = vec![("csrf", csrf.as_str())];
        form.extend_from_slice(extra);
        self.send(reqwest::Method::POST, path, Some(&form)).await
    }
}

const CLEARED: &str = "__Host-remember=; Path=/; Secure; HttpOnly; SameSite=Lax; Max-Age=0";

/// The checkbox sets the remember cookie (exact attributes); a restarted
/// browser is signed in again from it and gets a rotated one; without the
/// checkbox there is none.
async fn remember_me_survives_a_restart(b: TestBackend) {
    let app = start(&b).await;
    let mut plain = Browser::new(&app);
    let r = plain.login("bob", false).await;
    assert!(r.set_cookie(REMEMBER).is_none(), "{:?}", r.set_cookies);
    plain.restart();
    assert_eq!(plain.user().await, Value::Null);

    let mut alice = Browser::new(&app);
    let r = alice.login("alice", true).await;
    let token = alice.remember().expect("remember cookie");
    assert!(PersistentToken::parse(&token).is_ok());
    assert_eq!(
        r.set_cookie(REMEMBER).unwrap(),
        format!(
            "{REMEMBER}={token}; Path=/; Secure; HttpOnly; SameSite=Lax; Max-Age={}",
            LIFETIME.as_secs()
        )
    );
    assert_eq!(r.cache_control.as_deref(), Some("no-store"));
    let (me, _) = alice.session().await;
    assert_eq!(
        (me["user"].as_str(), me["remembered"].as_bool()),
        (Some("alice"), Some(false))
    );

    app.clock.advance(Duration::from_secs(24 * 3600));
    alice.restart();
    let (me, r) = alice.session().await;
    assert_eq!(me["user"], "alice", "signed in from the remember cookie");
    assert_eq!(me["remembered"], true);
    assert!(r.set_cookie(COOKIE_NAME).is_some(), "a new session cookie");
    let rotated = alice.remember().unwrap();
    assert_ne!(rotated, token);
    assert!(r.set_cookie(REMEMBER).unwrap().ends_with(&format!(
        "Max-Age={}",
        (LIFETIME - Duration::from_secs(24 * 3600)).as_secs()
    )));

    // The session expires; the persistent login signs in once more.
    app.clock.advance(IDLE + Duration::from_secs(1));
    assert_eq!(alice.user().await, "alice");
    assert_ne!(alice.remember().unwrap(), rotated);
    b.finish().await;
}

/// A thief replays the cookie first; the victim's next use revokes the
/// family: both end up signed out, the victim signs in again.
async fn stolen_remember_cookie_signs_everybody_out(b: TestBackend) {
    let app = start(&b).await;
    let mut victim = Browser::new(&app);
    victim.login("alice", true).await;
    let mut thief = Browser::new(&app);
    thief
        .cookies
        .insert(REMEMBER.into(), victim.remember().unwrap());
    assert_eq!(thief.user().await, "alice");
    let thief_rotated = thief.remember().unwrap();

    app.clock.advance(GRACE + Duration::from_secs(1));
    victim.restart();
    let (me, r) = victim.session().await;
    assert_eq!(me["user"], Value::Null);
    assert!(
        r.set_cookies.iter().any(|c| c == CLEARED),
        "{:?}",
        r.set_cookies
    );
    assert_eq!(victim.remember(), None);
    assert_eq!(
        thief.user().await,
        Value::Null,
        "the thief's session is revoked"
    );
    thief.restart();
    thief.cookies.insert(REMEMBER.into(), thief_rotated);
    assert_eq!(
        thief.user().await,
        Value::Null,
        "and the rotated cookie is dead"
    );
    victim.login("alice", true).await;
    assert_eq!(victim.user().await, "alice");
    b.finish().await;
}

/// Logout and log out everywhere end persistent logins.
async fn logout_ends_persistent_logins(b: TestBackend) {
    let app = start(&b).await;
    let mut alice = Browser::new(&app);
    alice.login("alice", true).await;
    let saved = alice.remember().unwrap();
    let r = alice.post_checked("/logout", &[]).await;
    assert_eq!(r.status, 303);
    assert!(
        r.set_cookies.iter().any(|c| c == CLEARED),
        "{:?}",
        r.set_cookies
    );
    alice.cookies.insert(REMEMBER.into(), saved);
    assert_eq!(alice.user().await, Value::Null);

    let (mut phone, mut laptop) = (Browser::new(&app), Browser::new(&app));
    phone.login("alice", true).await;
    laptop.login("alice", true).await;
    let r = phone.post_checked("/logout-everywhere", &[]).await;
    assert_eq!(r.status, 303);
    laptop.restart();
    assert_eq!(laptop.user().await, Value::Null);
    assert_eq!(laptop.remember(), None, "cleared");
    b.finish().await;
}

/// The devices page lists persistent logins with their kind, and forgets
/// one by its handle.
async fn devices_page_lists_and_forgets_persistent_logins(b: TestBackend) {
    let app = start(&b).await;
    let (mut phone, mut laptop) = (Browser::new(&app), Browser::new(&app));
    phone.login("alice", true).await;
    laptop.login("alice", true).await;
    let r = phone.get("/devices.json").await;
    let devices = r.json()["devices"].as_array().unwrap().clone();
    let kind = |k: &str| devices.iter().filter(|d| d["kind"] == k).count();
    assert_eq!(
        (kind("session"), kind("persistent_login")),
        (2, 2),
        "{devices:?}"
    );
    let laptop_family = devices
        .iter()
        .find(|d| d["kind"] == "persistent_login" && d["current"] == false)
        .unwrap()["handle"]
        .as_str()
        .unwrap()
        .to_owned();
    let page = phone.get("/devices").await;
    assert!(page.body.contains("Remember me") && page.body.contains("Forget"));
    assert!(page.body.contains(&laptop_family));

    let r = phone
        .post_checked("/devices/revoke", &[("handle", &laptop_family)])
        .await;
    assert_eq!(r.status, 303, "{}", r.body);
    assert_eq!(laptop.user().await, "alice", "its session stays");
    laptop.restart();
    assert_eq!(
        laptop.user().await,
        Value::Null,
        "remember me is gone there"
    );
    b.finish().await;
}

per_backend!(
    "example-app-remember";
    remember_me_survives_a_restart,
    stolen_remember_cookie_signs_everybody_out,
    logout_ends_persistent_logins,
    devices_page_lists_and_forgets_persistent_logins,
);
