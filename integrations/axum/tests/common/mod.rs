//! The test application, a probing backend wrapper and an HTTP client with
//! a real cookie jar (cookie_store treats loopback as a secure context, so
//! `__Host-` cookies travel over http://127.0.0.1 as browsers do on localhost).
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::Form;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use reqwest::cookie::{CookieStore as _, Jar};
use serde_json::{json, Value};
use session_store_axum::{Session, SessionConfig, SessionError, SessionLayer};
use session_store_core::{
    async_trait, Capabilities, Error, Lookup, ManualClock, Policy, Result, Rotation,
    SessionBackend, SessionHandle, SessionManager, SessionRecord, SessionSummary, StorageKey,
    Timestamp,
};

/// A JSON response (axum's `json` feature stays off).
pub struct Json<T>(pub T);

impl<T: serde::Serialize> IntoResponse for Json<T> {
    fn into_response(self) -> Response {
        (
            [("content-type", "application/json")],
            serde_json::to_string(&self.0).unwrap(),
        )
            .into_response()
    }
}

pub const IDLE: Duration = Duration::from_secs(30 * 60);
pub const ABSOLUTE: Duration = Duration::from_secs(60 * 60);
pub const GRACE: Duration = Duration::from_secs(30);
pub const RENEW_AFTER: Duration = Duration::from_secs(15 * 60);

/// Counts backend calls (in all, and by operation) and fails every one
/// while `down` is set.
#[derive(Debug)]
pub struct Probe {
    inner: Arc<dyn SessionBackend>,
    pub calls: AtomicUsize,
    pub down: AtomicBool,
    ops: Mutex<BTreeMap<&'static str, usize>>,
}

impl Probe {
    pub fn new(inner: Arc<dyn SessionBackend>) -> Arc<Self> {
        Arc::new(Probe {
            inner,
            calls: AtomicUsize::new(0),
            down: AtomicBool::new(false),
            ops: Mutex::default(),
        })
    }
    fn record(&self, op: &'static str) {
        *self.ops.lock().unwrap().entry(op).or_default() += 1;
    }
    /// The calls since the last `take_ops`, by operation.
    pub fn take_ops(&self) -> BTreeMap<&'static str, usize> {
        std::mem::take(&mut *self.ops.lock().unwrap())
    }
    fn check(&self, op: &'static str) -> Result<()> {
        self.record(op);
        self.calls.fetch_add(1, Ordering::SeqCst);
        if self.down.load(Ordering::SeqCst) {
            return Err(Error::backend_retryable("probe: backend down").context("probe", "", None));
        }
        Ok(())
    }
    pub fn calls(&self) -> usize {
        self.calls.load(Ordering::SeqCst)
    }
    pub fn set_down(&self, down: bool) {
        self.down.store(down, Ordering::SeqCst);
    }
}

#[async_trait]
impl SessionBackend for Probe {
    fn rotation_affinity_bits(&self) -> u8 {
        self.inner.rotation_affinity_bits()
    }
    fn capabilities(&self) -> Capabilities {
        self.inner.capabilities()
    }
    async fn create(&self, key: &StorageKey, r: &SessionRecord) -> Result<()> {
        self.check("create")?;
        self.inner.create(key, r).await
    }
    async fn load(&self, key: &StorageKey, now: Timestamp) -> Result<Option<Lookup>> {
        self.check("load")?;
        self.inner.load(key, now).await
    }
    async fn save(&self, key: &StorageKey, r: &SessionRecord, now: Timestamp) -> Result<u64> {
        self.check("save")?;
        self.inner.save(key, r, now).await
    }
    async fn touch(
        &self,
        key: &StorageKey,
        idle: Timestamp,
        seen: Timestamp,
        now: Timestamp,
    ) -> Result<bool> {
        self.check("touch")?;
        self.inner.touch(key, idle, seen, now).await
    }
    async fn rotate(&self, rot: &Rotation, now: Timestamp) -> Result<u64> {
        self.check("rotate")?;
        self.inner.rotate(rot, now).await
    }
    async fn delete(&self, key: &StorageKey) -> Result<bool> {
        self.check("delete")?;
        self.inner.delete(key).await
    }
    async fn delete_user(
        &self,
        user: &str,
        except: Option<&StorageKey>,
        now: Timestamp,
    ) -> Result<u64> {
        self.check("delete_user")?;
        self.inner.delete_user(user, except, now).await
    }
    async fn list_user(&self, user: &str, now: Timestamp) -> Result<Vec<SessionSummary>> {
        self.check("list_user")?;
        self.inner.list_user(user, now).await
    }
    async fn delete_all(&self) -> Result<()> {
        self.record("delete_all");
        self.inner.delete_all().await
    }
    async fn cleanup_expired(&self, now: Timestamp, limit: usize) -> Result<u64> {
        self.check("cleanup_expired")?;
        self.inner.cleanup_expired(now, limit).await
    }
}

pub struct TestApp {
    pub base: String,
    pub clock: Arc<ManualClock>,
    pub manager: SessionManager,
    pub probe: Arc<Probe>,
}

pub fn policy() -> Policy {
    Policy {
        idle_timeout: IDLE,
        absolute_timeout: ABSOLUTE,
        touch_interval: Duration::from_secs(1),
        renewal_grace: GRACE,
        ..Policy::default()
    }
}

pub fn default_config() -> SessionConfig {
    SessionConfig::default().with_renew_after(Some(RENEW_AFTER))
}

async fn whoami(s: Session) -> Result<Json<Value>, SessionError> {
    Ok(Json(json!({
        "user": s.user_id().await?,
        "exists": s.exists().await?,
    })))
}

async fn csrf(s: Session) -> Result<String, SessionError> {
    s.csrf_token().await
}

async fn login(
    s: Session,
    Form(f): Form<std::collections::HashMap<String, String>>,
) -> Result<&'static str, SessionError> {
    s.login(f.get("user").map(String::as_str).unwrap_or(""))
        .await?;
    Ok("ok")
}

async fn incr(s: Session) -> Result<String, SessionError> {
    let n = s
        .update("n", |n: &mut u64| {
            *n += 1;
            *n
        })
        .await?;
    Ok(n.to_string())
}

async fn read_n(s: Session) -> Result<Json<Option<u64>>, SessionError> {
    Ok(Json(s.get::<u64>("n").await?))
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
                "ip": d.meta.ip,
                "user_agent": d.meta.user_agent,
            })
        })
        .collect();
    Ok(Json(Value::Array(list)))
}

async fn revoke(
    s: Session,
    Form(f): Form<std::collections::HashMap<String, String>>,
) -> Result<String, SessionError> {
    let handle = SessionHandle::parse(f.get("handle").map(String::as_str).unwrap_or(""))
        .map_err(|_| SessionError::InvalidInput("handle"))?;
    Ok(s.revoke(&handle).await?.to_string())
}

async fn context(s: Session) -> Result<Json<Value>, SessionError> {
    let c = s.context_change().await?;
    Ok(Json(json!({
        "user": s.user_id().await?,
        "ip_changed": c.as_ref().map(|c| c.ip_changed),
        "user_agent_changed": c.as_ref().map(|c| c.user_agent_changed),
    })))
}

async fn echo(Form(f): Form<std::collections::HashMap<String, String>>) -> String {
    f.get("text").cloned().unwrap_or_default()
}

pub fn router(manager: SessionManager, config: SessionConfig) -> Router {
    Router::new()
        .route("/none", get(|| async { "no session here" }))
        .route("/whoami", get(whoami))
        .route("/csrf", get(csrf))
        .route("/login", post(login))
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
        .route(
            "/elevate",
            post(|s: Session| async move { s.elevate().await.map(|()| "ok") }),
        )
        .route("/incr", post(incr))
        .route("/n", get(read_n))
        .route("/devices", get(devices))
        .route("/revoke", post(revoke))
        .route("/context", get(context))
        .route(
            "/flash",
            post(|s: Session| async move { s.flash("note", &"saved").await.map(|()| "ok") })
                .get(|s: Session| async move { s.take_flash::<String>("note").await.map(Json) }),
        )
        .route("/echo", post(echo))
        .route(
            "/api-token",
            get(|s: Session| async move { s.api_token().await.map(|t| t.unwrap_or_default()) }),
        )
        .layer(SessionLayer::new(manager, config).expect("valid config"))
}

pub async fn start(backend: Arc<dyn SessionBackend>, config: SessionConfig) -> TestApp {
    let clock = Arc::new(ManualClock::starting_now());
    let probe = Probe::new(backend);
    let manager = SessionManager::builder(probe.clone())
        .clock(clock.clone())
        .policy(policy())
        .build()
        .unwrap();
    let app = router(manager.clone(), config);
    let base = serve(app).await;
    TestApp {
        base,
        clock,
        manager,
        probe,
    }
}

pub async fn serve(app: Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        axum::serve(
            listener,
            app.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .await
        .unwrap()
    });
    format!("http://{addr}")
}

pub struct Reply {
    pub status: u16,
    pub set_cookies: Vec<String>,
    pub cache_control: Option<String>,
    pub headers: reqwest::header::HeaderMap,
    pub body: String,
}

impl Reply {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|_| panic!("not JSON: {}", self.body))
    }
    /// The value of the `Set-Cookie` for `name`, if any.
    pub fn cookie(&self, name: &str) -> Option<String> {
        self.set_cookies.iter().find_map(|c| {
            let (n, rest) = c.split_once('=')?;
            (n == name).then(|| rest.split(';').next().unwrap_or("").to_owned())
        })
    }
}

pub async fn reply(res: reqwest::Response) -> Reply {
    let headers = res.headers().clone();
    Reply {
        status: res.status().as_u16(),
        set_cookies: headers
            .get_all("set-cookie")
            .iter()
            .map(|v| v.to_str().unwrap().to_owned())
            .collect(),
        cache_control: headers
            .get("cache-control")
            .map(|v| v.to_str().unwrap().to_owned()),
        headers,
        body: res.text().await.unwrap(),
    }
}

/// A browser: a reqwest client with its own cookie jar and user agent.
pub struct Browser {
    pub client: reqwest::Client,
    pub jar: Arc<Jar>,
    pub base: String,
}

pub const SESSION_COOKIE: &str = "__Host-session";

impl Browser {
    pub fn new(base: &str, user_agent: &str) -> Self {
        let jar = Arc::new(Jar::default());
        Browser {
            client: reqwest::Client::builder()
                .cookie_provider(jar.clone())
                .redirect(reqwest::redirect::Policy::none())
                .user_agent(user_agent)
                .build()
                .unwrap(),
            jar,
            base: base.to_owned(),
        }
    }
    pub async fn get(&self, path: &str) -> Reply {
        reply(
            self.client
                .get(format!("{}{path}", self.base))
                .send()
                .await
                .unwrap(),
        )
        .await
    }
    /// POST a form; the CSRF token goes in the `csrf` field when given.
    pub async fn post(&self, path: &str, csrf: Option<&str>, fields: &[(&str, &str)]) -> Reply {
        let mut pairs: Vec<(&str, &str)> = fields.to_vec();
        if let Some(t) = csrf {
            pairs.push(("csrf", t));
        }
        reply(
            self.client
                .post(format!("{}{path}", self.base))
                .header("content-type", "application/x-www-form-urlencoded")
                .body(form_encode(&pairs))
                .send()
                .await
                .unwrap(),
        )
        .await
    }
    /// The current CSRF token (GET /csrf).
    pub async fn csrf(&self) -> String {
        let r = self.get("/csrf").await;
        assert_eq!(r.status, 200, "{}", r.body);
        r.body
    }
    /// POST with a fresh CSRF token.
    pub async fn act(&self, path: &str, fields: &[(&str, &str)]) -> Reply {
        let t = self.csrf().await;
        self.post(path, Some(&t), fields).await
    }
    pub async fn login(&self, user: &str) {
        let r = self.act("/login", &[("user", user)]).await;
        assert_eq!(r.status, 200, "login: {}", r.body);
    }
    pub async fn user(&self) -> Option<String> {
        let r = self.get("/whoami").await;
        assert_eq!(r.status, 200, "whoami: {}", r.body);
        r.json()["user"].as_str().map(str::to_owned)
    }
    /// The session cookie's value in the jar.
    pub fn session_cookie(&self) -> Option<String> {
        let url = self.base.parse().unwrap();
        let header = self.jar.cookies(&url)?;
        header
            .to_str()
            .unwrap()
            .split(';')
            .filter_map(|p| p.trim().split_once('='))
            .find(|(n, _)| *n == SESSION_COOKIE)
            .map(|(_, v)| v.to_owned())
    }
    /// Puts a cookie in the jar (a planted or copied cookie).
    pub fn plant(&self, name: &str, value: &str) {
        let url = self.base.parse().unwrap();
        self.jar.add_cookie_str(
            &format!("{name}={value}; Path=/; Secure; HttpOnly; SameSite=Lax"),
            &url,
        );
    }
}

/// A request with an explicit `Cookie` header and no jar.
pub async fn get_raw(base: &str, path: &str, headers: &[(&str, &[u8])]) -> Reply {
    let mut req = reqwest::Client::new().get(format!("{base}{path}"));
    for (k, v) in headers {
        req = req.header(*k, reqwest::header::HeaderValue::from_bytes(v).unwrap());
    }
    reply(req.send().await.unwrap()).await
}

pub fn form_encode(pairs: &[(&str, &str)]) -> String {
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
