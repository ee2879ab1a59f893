//! The reference app in a real browser: headless Chromium driven over the
//! W3C WebDriver protocol (chromedriver; the JSON commands are sent with
//! reqwest, so no WebDriver client crate is needed). Proves the cookie
//! attributes where browsers enforce them (`__Host-`, `Secure` on
//! `localhost`, `HttpOnly`, `SameSite`): the login form stores nothing, login,
//! a CSRF-protected form post, renewal, log out everywhere (a second device
//! ends with the first's click) and logout.
//!
//! Needs the Debian packages `chromium` and `chromium-driver`
//! (`scripts/test.sh` installs them when missing); set
//! `SESSION_STORE_SKIP_BROWSER=1` to skip with a visible `SKIP:` line.

use std::net::SocketAddr;
use std::os::unix::process::CommandExt as _;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};
use session_store_core::{ManualClock, Policy, SessionManager};
use session_store_example_app::{router_with, AppOptions};

const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
const CHROMIUM: &str = "/usr/bin/chromium";
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";
const RENEW_AFTER: Duration = Duration::from_secs(15 * 60);

/// chromedriver in its own process group, which is killed when dropped:
/// the browsers it started go too, even when the test failed mid-way.
struct DriverProcess(Child);

impl Drop for DriverProcess {
    fn drop(&mut self) {
        let group = format!("-{}", self.0.id());
        let _ = Command::new("kill").args(["-KILL", "--", &group]).status();
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

struct Browser {
    http: reqwest::Client,
    session: String,
    base: String,
}

impl Browser {
    async fn start(driver: &str) -> Self {
        let http = reqwest::Client::new();
        let caps = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": CHROMIUM,
                "args": ["--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu"],
            },
        }}});
        let res = send(http.post(format!("{driver}/session")), Some(caps)).await;
        let session = res["value"]["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no WebDriver session: {res}"))
            .to_owned();
        Browser {
            http,
            session: format!("{driver}/session/{session}"),
            base: String::new(),
        }
    }

    async fn try_cmd(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> Result<Value, Value> {
        let req = self.http.request(method, format!("{}{path}", self.session));
        let res = send(req, body).await;
        if res["value"].get("error").is_some() {
            return Err(res);
        }
        Ok(res["value"].clone())
    }

    async fn cmd(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
        self.try_cmd(method, path, body)
            .await
            .unwrap_or_else(|e| panic!("WebDriver {path}: {e}"))
    }

    /// The page text once it contains `needle` (a click's navigation may
    /// still be under way), within 5 seconds.
    async fn wait_for(&self, needle: &str) -> String {
        let mut last = String::new();
        for _ in 0..50 {
            if let Ok(text) = self.try_text().await {
                if text.contains(needle) {
                    return text;
                }
                last = text;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("page never showed {needle:?}; last text: {last}");
    }

    async fn try_text(&self) -> Result<String, Value> {
        let v = self
            .try_cmd(
                reqwest::Method::POST,
                "/element",
                Some(json!({"using": "css selector", "value": "body"})),
            )
            .await?;
        let e = v[ELEMENT].as_str().unwrap_or_default().to_owned();
        let t = self
            .try_cmd(reqwest::Method::GET, &format!("/element/{e}/text"), None)
            .await?;
        Ok(t.as_str().unwrap_or_default().to_owned())
    }

    async fn goto(&self, path: &str) {
        let url = format!("{}{path}", self.base);
        self.cmd(reqwest::Method::POST, "/url", Some(json!({ "url": url })))
            .await;
    }

    async fn find(&self, css: &str) -> String {
        let v = self
            .cmd(
                reqwest::Method::POST,
                "/element",
                Some(json!({"using": "css selector", "value": css})),
            )
            .await;
        v[ELEMENT]
            .as_str()
            .unwrap_or_else(|| panic!("no element {css}: {v}"))
            .to_owned()
    }

    async fn click(&self, css: &str) {
        let e = self.find(css).await;
        self.cmd(
            reqwest::Method::POST,
            &format!("/element/{e}/click"),
            Some(json!({})),
        )
        .await;
    }

    async fn type_into(&self, css: &str, text: &str) {
        let e = self.find(css).await;
        self.cmd(
            reqwest::Method::POST,
            &format!("/element/{e}/value"),
            Some(json!({ "text": text })),
        )
        .await;
    }

    async fn cookie(&self, name: &str) -> Option<Value> {
        let all = self.cmd(reqwest::Method::GET, "/cookie", None).await;
        all.as_array()
            .unwrap()
            .iter()
            .find(|c| c["name"] == name)
            .cloned()
    }

    async fn login(&self, user: &str, password: &str) {
        self.goto("/login").await;
        self.type_into("input[name=username]", user).await;
        self.type_into("input[name=password]", password).await;
        self.click("form[action='/login'] button").await;
    }

    async fn quit(self) {
        let _ = self.http.delete(&self.session).send().await;
    }
}

/// Sends a WebDriver command (JSON in, JSON out).
async fn send(req: reqwest::RequestBuilder, body: Option<Value>) -> Value {
    let req = match body {
        Some(b) => req
            .header("content-type", "application/json")
            .body(b.to_string()),
        None => req,
    };
    let text = req.send().await.unwrap().text().await.unwrap();
    serde_json::from_str(&text).unwrap_or_else(|_| panic!("not JSON: {text}"))
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

async fn start_driver() -> Option<(DriverProcess, String)> {
    if !std::path::Path::new(CHROMEDRIVER).exists() {
        if std::env::var("SESSION_STORE_SKIP_BROWSER").as_deref() == Ok("1") {
            println!("SKIP: browser test (SESSION_STORE_SKIP_BROWSER=1)");
            return None;
        }
        panic!(
            "{CHROMEDRIVER} is missing: install the Debian packages chromium and chromium-driver \
             (scripts/test.sh does), or set SESSION_STORE_SKIP_BROWSER=1 to skip the browser test"
        );
    }
    let port = free_port();
    let child = Command::new(CHROMEDRIVER)
        .arg(format!("--port={port}"))
        .process_group(0)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start chromedriver");
    let process = DriverProcess(child);
    let url = format!("http://127.0.0.1:{port}");
    for _ in 0..100 {
        if let Ok(r) = reqwest::get(format!("{url}/status")).await {
            if r.status().is_success() {
                return Some((process, url));
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("chromedriver did not answer on {url}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_reference_app_in_headless_chromium() {
    let Some((_driver, driver_url)) = start_driver().await else {
        return;
    };
    let backend = session_store_test_support::sqlite().await.unwrap();
    let clock = Arc::new(ManualClock::starting_now());
    let manager = SessionManager::builder(backend.backend.clone())
        .clock(clock.clone())
        .policy(Policy {
            renewal_grace: Duration::from_secs(30),
            ..Policy::default()
        })
        .build()
        .unwrap();
    let app = router_with(
        manager,
        AppOptions {
            renew_after: Some(RENEW_AFTER),
            ..AppOptions::default()
        },
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        axum::serve(
            listener,
            app.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .await
        .unwrap()
    });

    let mut browser = Browser::start(&driver_url).await;
    // localhost: a secure context, where browsers accept Secure cookies over http.
    browser.base = format!("http://localhost:{port}");

    // The login form stores nothing: only the signed CSRF cookie.
    browser.goto("/login").await;
    assert!(browser.cookie("__Host-session").await.is_none());
    let csrf = browser.cookie("__Host-csrf").await.expect("CSRF cookie");
    assert_eq!(
        (csrf["secure"].as_bool(), csrf["httpOnly"].as_bool()),
        (Some(true), Some(true))
    );
    assert_eq!(csrf["sameSite"], "Strict");

    // Login: the browser accepted the __Host- cookie with its attributes.
    browser.login("alice", "alice-password").await;
    browser.wait_for("Signed in as alice").await;
    let cookie = browser
        .cookie("__Host-session")
        .await
        .expect("session cookie");
    assert_eq!(cookie["secure"], true);
    assert_eq!(cookie["httpOnly"], true);
    assert_eq!(cookie["sameSite"], "Lax");
    assert_eq!(cookie["path"], "/");
    assert!(
        cookie.get("expiry").is_none(),
        "a browser-session cookie: {cookie}"
    );
    assert!(
        browser.cookie("__Host-csrf").await.is_none(),
        "cleared at login"
    );
    let first = cookie["value"].as_str().unwrap().to_owned();

    // A CSRF-protected form post (the token is a hidden field of the page).
    browser.click("form[action='/counter'] button").await;
    browser.wait_for("\"counter\":1").await;
    browser.goto("/").await;
    browser.wait_for("Counter: 1.").await;

    // Renewal: past renew_after the next page carries a new token.
    clock.advance(RENEW_AFTER + Duration::from_secs(1));
    browser.goto("/").await;
    browser.wait_for("Signed in as alice").await;
    let renewed = browser.cookie("__Host-session").await.unwrap();
    assert_ne!(renewed["value"].as_str().unwrap(), first, "renewed");

    // Log out everywhere: a second device (a plain HTTP client) ends too.
    let other = reqwest::Client::builder()
        .cookie_store(true)
        .build()
        .unwrap();
    let page = other
        .get(format!("http://127.0.0.1:{port}/login"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let token = page
        .split("name=\"csrf\" value=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .unwrap()
        .to_owned();
    let r = other
        .post(format!("http://127.0.0.1:{port}/login"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!(
            "username=alice&password=alice-password&csrf={}",
            token.replace('+', "%2B")
        ))
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success() || r.status().is_redirection());
    let signed_in = |body: String| body.contains("Signed in as alice");
    let home = || async {
        other
            .get(format!("http://127.0.0.1:{port}/"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    };
    assert!(signed_in(home().await), "second device signed in");
    browser
        .click("form[action='/logout-everywhere'] button")
        .await;
    browser.wait_for("Not signed in").await;
    assert!(
        browser.cookie("__Host-session").await.is_none(),
        "cookie cleared"
    );
    assert!(!signed_in(home().await), "second device logged out");

    // Logout.
    browser.login("alice", "alice-password").await;
    browser.wait_for("Signed in as alice").await;
    browser.click("form[action='/logout'] button").await;
    browser.wait_for("Not signed in").await;
    assert!(browser.cookie("__Host-session").await.is_none());

    browser.quit().await;
    backend.finish().await;
}
