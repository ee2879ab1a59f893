//! The routes of the reference application. The request flow (cookies,
//! CSRF, loading, renewal, rotation, logout) is `session-store-axum`'s
//! [`SessionLayer`]; what remains here is the application: pages, the
//! password check and the devices page.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Form, State};
use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE, LOCATION};
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use serde_json::json;
use session_store_axum::{CookieConfig, Session, SessionConfig, SessionError, SessionLayer};
use session_store_core::{CapPolicy, DeviceKind, Policy, SessionHandle, SessionManager, Timestamp};
use subtle::{Choice, ConstantTimeEq as _};

/// The session cookie's name (the layer's default).
pub const COOKIE_NAME: &str = "__Host-session";
/// Header carrying the CSRF token for non-form clients (the layer's default).
pub const CSRF_HEADER: &str = "x-csrf-token";
/// Form field carrying the CSRF token (the layer's default).
pub const CSRF_FIELD: &str = "csrf";

/// Application settings (the session policy lives in the [`SessionManager`]).
#[derive(Debug, Clone)]
pub struct AppOptions {
    /// A logged-in session gets a new token (a renewal rotation) once this
    /// long has passed since login or the last renewal; the old token keeps
    /// working for [`Policy::renewal_grace`]. `None`: never. Default 15
    /// minutes.
    pub renew_after: Option<Duration>,
    /// `Max-Age` of the session cookie (at least one second). Default
    /// `None`: a browser-session cookie. When set, never longer than the
    /// session's remaining absolute lifetime.
    pub cookie_max_age: Option<Duration>,
    /// Accepted `(username, password)` pairs. A demo: a real application
    /// checks a password hash (argon2) from its user database.
    pub users: Vec<(String, String)>,
}

impl Default for AppOptions {
    fn default() -> Self {
        AppOptions {
            renew_after: Some(Duration::from_secs(15 * 60)),
            cookie_max_age: None,
            users: vec![
                ("alice".into(), "alice-password".into()),
                ("bob".into(), "bob-password".into()),
            ],
        }
    }
}

/// The session policy the binary uses: 30 minutes idle, 8 hours absolute,
/// 30 seconds of renewal grace, at most 20 sessions per user (the oldest is
/// evicted).
pub fn default_policy() -> Policy {
    Policy {
        idle_timeout: Duration::from_secs(30 * 60),
        absolute_timeout: Duration::from_secs(8 * 3600),
        renewal_grace: Duration::from_secs(30),
        max_sessions_per_user: Some((20, CapPolicy::EvictOldest)),
        ..Policy::default()
    }
}

/// The application's router over `manager`, with [`AppOptions::default`].
///
/// Serve it with `into_make_service_with_connect_info::<SocketAddr>()` so
/// that sessions record the client IP.
pub fn router(manager: SessionManager) -> Router {
    router_with(manager, AppOptions::default())
}

/// The application's router with explicit options.
///
/// # Panics
/// When `options.cookie_max_age` is under one second (an invalid cookie).
pub fn router_with(manager: SessionManager, options: AppOptions) -> Router {
    let config = SessionConfig::default()
        .with_renew_after(options.renew_after)
        .with_cookie(CookieConfig::default().with_max_age(options.cookie_max_age));
    let layer = SessionLayer::new(manager, config).expect("a valid session configuration");
    let state = AppState {
        options: Arc::new(options),
    };
    Router::new()
        .route("/", get(home))
        .route("/login", get(login_page).post(login))
        .route("/logout", post(logout))
        .route("/logout-everywhere", post(logout_everywhere))
        .route("/logout-others", post(logout_others))
        .route("/devices", get(devices_page))
        .route("/devices.json", get(devices_json))
        .route("/devices/revoke", post(revoke))
        .route("/session.json", get(session_json))
        .route("/counter", post(counter))
        .route("/privilege", post(privilege))
        .layer(layer)
        .layer(axum::middleware::map_response(no_store))
        .with_state(state)
}

/// Session pages are personal: no cache may keep any of them.
async fn no_store(mut res: Response) -> Response {
    res.headers_mut()
        .insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    res
}

#[derive(Clone)]
struct AppState {
    options: Arc<AppOptions>,
}

impl AppState {
    fn check_password(&self, user: &str, password: &str) -> bool {
        // Looks at every entry with constant-time comparisons.
        let mut ok = Choice::from(0);
        for (u, p) in &self.options.users {
            ok |= u.as_bytes().ct_eq(user.as_bytes()) & p.as_bytes().ct_eq(password.as_bytes());
        }
        ok.into()
    }
}

/// Errors as HTTP answers; session errors keep the layer's answers (a store
/// failure is 503, never "logged out").
#[derive(Debug)]
enum AppError {
    Session(SessionError),
    BadRequest(&'static str),
    Unauthorized,
    NotFound,
}

impl From<SessionError> for AppError {
    fn from(e: SessionError) -> Self {
        match e {
            SessionError::NotLoggedIn => AppError::Unauthorized,
            other => AppError::Session(other),
        }
    }
}

impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        let (status, text) = match self {
            AppError::Session(e) => return e.into_response(),
            AppError::BadRequest(what) => (StatusCode::BAD_REQUEST, what),
            AppError::Unauthorized => (StatusCode::UNAUTHORIZED, "sign in first"),
            AppError::NotFound => (StatusCode::NOT_FOUND, "no such session"),
        };
        (status, text).into_response()
    }
}

fn redirect(to: &'static str) -> Response {
    (StatusCode::SEE_OTHER, [(LOCATION, to)]).into_response()
}

fn html(body: String) -> Response {
    let page = format!(
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>Sessions demo</title></head><body>{body}</body></html>"
    );
    ([(CONTENT_TYPE, "text/html; charset=utf-8")], page).into_response()
}

fn json_response(value: serde_json::Value) -> Response {
    ([(CONTENT_TYPE, "application/json")], value.to_string()).into_response()
}

fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// `YYYY-MM-DD HH:MM:SS UTC` (proleptic Gregorian, Howard Hinnant's
/// days-to-civil algorithm).
fn utc(t: Timestamp) -> String {
    let secs = t.as_millis().div_euclid(1000);
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02} UTC",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

async fn csrf_input(session: &Session) -> Result<String, AppError> {
    Ok(format!(
        "<input type=\"hidden\" name=\"{CSRF_FIELD}\" value=\"{}\">",
        escape(&session.csrf_token().await?)
    ))
}

async fn signed_in(session: &Session) -> Result<String, AppError> {
    session.user_id().await?.ok_or(AppError::Unauthorized)
}

async fn home(session: Session) -> Result<Response, AppError> {
    let Some(user) = session.user_id().await? else {
        return Ok(html(
            "<p>Not signed in. <a href=\"/login\">Sign in</a></p>".into(),
        ));
    };
    let csrf = csrf_input(&session).await?;
    let counter = session.get::<u64>("counter").await?.unwrap_or(0);
    Ok(html(format!(
        "<p>Signed in as {}. Counter: {counter}.</p>\
         <form method=\"post\" action=\"/counter\">{csrf}<button>Increment</button></form>\
         <p><a href=\"/devices\">Your devices</a></p>\
         <form method=\"post\" action=\"/logout\">{csrf}<button>Log out</button></form>\
         <form method=\"post\" action=\"/logout-others\">{csrf}<button>Log out other devices</button></form>\
         <form method=\"post\" action=\"/logout-everywhere\">{csrf}<button>Log out everywhere</button></form>",
        escape(&user),
    )))
}

/// The login form. Without a session its CSRF token is a signed
/// double-submit cookie: showing the form stores nothing.
async fn login_page(session: Session) -> Result<Response, AppError> {
    Ok(html(format!(
        "<form method=\"post\" action=\"/login\">{}\
         <label>User <input name=\"username\" autocomplete=\"username\"></label>\
         <label>Password <input name=\"password\" type=\"password\" autocomplete=\"current-password\"></label>\
         <label><input name=\"remember\" type=\"checkbox\" value=\"on\"> Remember me</label>\
         <button>Sign in</button></form>",
        csrf_input(&session).await?
    )))
}

/// Login (the layer checked the CSRF token): the pre-login token never
/// survives; the session moves to a new token, binds the user, records the
/// authentication time, IP and user agent, resets both timeouts and gets a
/// new CSRF token. With "Remember me" checked, a persistent login is issued
/// too (the `__Host-remember` cookie, rotated on every use): a later visit
/// without a live session signs in again from it.
async fn login(
    State(state): State<AppState>,
    session: Session,
    Form(form): Form<HashMap<String, String>>,
) -> Result<Response, AppError> {
    let user = form.get("username").map(String::as_str).unwrap_or("");
    let password = form.get("password").map(String::as_str).unwrap_or("");
    if user.is_empty() || !state.check_password(user, password) {
        return Err(AppError::Unauthorized);
    }
    if form.get("remember").is_some_and(|v| v == "on") {
        session.login_remembered(user).await?;
    } else {
        session.login(user).await?;
    }
    Ok(redirect("/"))
}

/// Logout: deleted server-side, cookie expired with the same attributes.
async fn logout(session: Session) -> Result<Response, AppError> {
    session.logout().await?;
    Ok(redirect("/"))
}

async fn logout_everywhere(session: Session) -> Result<Response, AppError> {
    session.logout_everywhere().await?;
    Ok(redirect("/"))
}

async fn logout_others(session: Session) -> Result<Response, AppError> {
    session.logout_other_devices().await?;
    Ok(redirect("/devices"))
}

async fn devices_page(session: Session) -> Result<Response, AppError> {
    signed_in(&session).await?;
    let devices = session.devices().await?;
    let csrf = csrf_input(&session).await?;
    let mut body = String::from(
        "<h1>Your devices</h1><table><tr><th>Kind</th><th>Created</th><th>Last seen</th><th>IP</th><th>Browser</th><th></th></tr>",
    );
    for d in &devices {
        let persistent = d.kind == DeviceKind::PersistentLogin;
        // A persistent login can be revoked from its own device too ("forget
        // this device"); the current session is ended with "Log out".
        let action = if d.current && !persistent {
            "this device".to_owned()
        } else {
            format!(
                "{}<form method=\"post\" action=\"/devices/revoke\">{csrf}\
                 <input type=\"hidden\" name=\"handle\" value=\"{}\"><button>{}</button></form>",
                if d.current { "this device " } else { "" },
                d.handle,
                if persistent { "Forget" } else { "Revoke" },
            )
        };
        let _ = write!(
            body,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{action}</td></tr>",
            if persistent { "Remember me" } else { "Session" },
            utc(d.created_at),
            utc(d.last_seen_at),
            escape(d.meta.ip.as_deref().unwrap_or("")),
            escape(d.meta.user_agent.as_deref().unwrap_or("")),
        );
    }
    body.push_str("</table>");
    let _ = write!(
        body,
        "<form method=\"post\" action=\"/logout-others\">{csrf}<button>Log out other devices</button></form>"
    );
    Ok(html(body))
}

async fn devices_json(session: Session) -> Result<Response, AppError> {
    signed_in(&session).await?;
    let list: Vec<_> = session
        .devices()
        .await?
        .iter()
        .map(|d| {
            json!({
                "handle": d.handle.to_string(),
                "created_at": d.created_at.as_millis(),
                "last_seen_at": d.last_seen_at.as_millis(),
                "auth_time": d.auth_time.map(Timestamp::as_millis),
                "ip": d.meta.ip,
                "user_agent": d.meta.user_agent,
                "current": d.current,
                "kind": if d.kind == DeviceKind::PersistentLogin { "persistent_login" } else { "session" },
            })
        })
        .collect();
    Ok(json_response(json!({ "devices": list })))
}

/// Revokes one of the user's sessions by its opaque handle (never a token).
async fn revoke(
    session: Session,
    Form(form): Form<HashMap<String, String>>,
) -> Result<Response, AppError> {
    signed_in(&session).await?;
    let handle = SessionHandle::parse(form.get("handle").map(String::as_str).unwrap_or(""))
        .map_err(|_| AppError::BadRequest("malformed session handle"))?;
    let own = session.handle().await? == Some(handle);
    if !session.revoke(&handle).await? {
        return Err(AppError::NotFound);
    }
    Ok(redirect(if own { "/" } else { "/devices" }))
}

async fn session_json(session: Session) -> Result<Response, AppError> {
    Ok(json_response(json!({
        "user": session.user_id().await?,
        "remembered": session.remembered().await?,
        "csrf": session.csrf_token().await?,
        "counter": session.get::<u64>("counter").await?.unwrap_or(0),
        "auth_time": session.auth_time().await?.map(Timestamp::as_millis),
        "idle_deadline": session.idle_deadline().await?.map(Timestamp::as_millis),
        "absolute_deadline": session.absolute_deadline().await?.map(Timestamp::as_millis),
    })))
}

/// A state-changing request (the layer checked the CSRF token): a
/// compare-and-swap update, retried on conflict, so no increment is lost.
async fn counter(session: Session) -> Result<Response, AppError> {
    let n = session
        .update("counter", |n: &mut u64| {
            *n += 1;
            *n
        })
        .await?;
    Ok(json_response(json!({ "counter": n })))
}

/// A privilege change (step-up, role change): a new token, the old one dead
/// at once, the absolute deadline kept.
async fn privilege(session: Session) -> Result<Response, AppError> {
    session.elevate().await?;
    Ok(json_response(json!({ "ok": true })))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utc_formats_known_instants() {
        assert_eq!(utc(Timestamp::from_millis(0)), "1970-01-01 00:00:00 UTC");
        assert_eq!(
            utc(Timestamp::from_millis(951_782_400_000)),
            "2000-02-29 00:00:00 UTC"
        );
        assert_eq!(
            utc(Timestamp::from_millis(1_700_000_000_999)),
            "2023-11-14 22:13:20 UTC"
        );
    }

    #[test]
    fn escape_html() {
        assert_eq!(
            escape("<a href='x'>&\"</a>"),
            "&lt;a href=&#39;x&#39;&gt;&amp;&quot;&lt;/a&gt;"
        );
    }
}
