//! The routes and the request flow of the reference application.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::rejection::FormRejection;
use axum::extract::{ConnectInfo, Form, FromRequestParts, State};
use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE, LOCATION, SET_COOKIE, USER_AGENT};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use serde::{Deserialize, Serialize};
use serde_json::json;
use session_store_core::{
    CapPolicy, ClientMeta, Error, Policy, RotateReason, Session, SessionHandle, SessionManager,
    Timestamp,
};
use subtle::{Choice, ConstantTimeEq as _};

use crate::cookie::{expired_cookie, session_cookie, token_from_headers};
use crate::csrf;

/// Longest user agent kept in session metadata.
const MAX_USER_AGENT_BYTES: usize = 256;
/// Header carrying the CSRF token for non-form clients.
pub const CSRF_HEADER: &str = "x-csrf-token";
/// Form field carrying the CSRF token.
pub const CSRF_FIELD: &str = "csrf";

/// Application settings (the session policy lives in the [`SessionManager`]).
#[derive(Debug, Clone)]
pub struct AppOptions {
    /// A logged-in session gets a new token (a [`RotateReason::Renewal`])
    /// once this long has passed since login or the last renewal; the old
    /// token keeps working for [`Policy::renewal_grace`]. `None`: never.
    /// Default 15 minutes.
    pub renew_after: Option<Duration>,
    /// `Max-Age` of the session cookie. Default `None`: a browser-session
    /// cookie. When set, never longer than the session's remaining absolute
    /// lifetime.
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
pub fn router_with(manager: SessionManager, options: AppOptions) -> Router {
    let state = AppState {
        manager,
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
        .layer(axum::middleware::map_response(no_store))
        .with_state(state)
}

/// Session pages are personal: no cache may keep them, and in particular no
/// response that sets the session cookie.
async fn no_store(mut res: Response) -> Response {
    res.headers_mut()
        .insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    res
}

#[derive(Clone)]
struct AppState {
    manager: SessionManager,
    options: Arc<AppOptions>,
}

/// What the application keeps in a session.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct AppData {
    /// The per-session CSRF synchronizer token.
    csrf: String,
    /// When the token was last renewed (milliseconds), if ever.
    #[serde(default)]
    renewed_at: Option<i64>,
    /// A demo value that state-changing requests increment.
    #[serde(default)]
    counter: u64,
}

/// The request facts the session flow needs.
struct Client {
    token: Option<String>,
    meta: ClientMeta,
    csrf_header: Option<String>,
}

impl<S: Send + Sync> FromRequestParts<S> for Client {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        let ip = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|c| c.0.ip().to_string());
        let user_agent = parts
            .headers
            .get(USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .map(|ua| truncate(ua, MAX_USER_AGENT_BYTES));
        Ok(Client {
            token: token_from_headers(&parts.headers),
            meta: ClientMeta {
                ip,
                user_agent,
                label: None,
            },
            csrf_header: header_text(&parts.headers, CSRF_HEADER),
        })
    }
}

fn header_text(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}

fn truncate(s: &str, max: usize) -> String {
    let mut end = s.len().min(max);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s[..end].to_owned()
}

/// The session of this request.
struct Current {
    session: Session,
    data: AppData,
    /// The token differs from the client's cookie: send it.
    set_cookie: bool,
}

impl Current {
    fn user(&self) -> Option<String> {
        self.session.user_id().map(str::to_owned)
    }

    fn store_data(&mut self) -> Result<(), AppError> {
        let bytes = serde_json::to_vec(&self.data).map_err(|_| AppError::Internal)?;
        self.session.set_data(bytes);
        Ok(())
    }
}

/// Errors as HTTP answers. Backend failures fail closed (503), never as
/// "logged out" and never as success.
#[derive(Debug)]
enum AppError {
    BadRequest(&'static str),
    Unauthorized,
    Forbidden,
    NotFound,
    Conflict,
    TooLarge,
    TooManySessions,
    Unavailable,
    Internal,
}

impl From<Error> for AppError {
    fn from(e: Error) -> Self {
        match e {
            Error::Conflict => AppError::Conflict,
            Error::TooLarge { .. } => AppError::TooLarge,
            Error::TooManySessions { .. } => AppError::TooManySessions,
            Error::InvalidId => AppError::BadRequest("malformed identifier"),
            other => {
                // Error messages never contain tokens or data.
                tracing::error!(error = %other, "session store failure");
                AppError::Unavailable
            }
        }
    }
}

impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        let (status, text) = match self {
            AppError::BadRequest(what) => (StatusCode::BAD_REQUEST, what),
            AppError::Unauthorized => (StatusCode::UNAUTHORIZED, "sign in first"),
            AppError::Forbidden => (StatusCode::FORBIDDEN, "missing or wrong CSRF token"),
            AppError::NotFound => (StatusCode::NOT_FOUND, "no such session"),
            AppError::Conflict => (
                StatusCode::CONFLICT,
                "the session changed concurrently; reload and retry",
            ),
            AppError::TooLarge => (StatusCode::PAYLOAD_TOO_LARGE, "session data too large"),
            AppError::TooManySessions => (StatusCode::TOO_MANY_REQUESTS, "too many sessions"),
            AppError::Unavailable => (StatusCode::SERVICE_UNAVAILABLE, "session store unavailable"),
            AppError::Internal => (StatusCode::INTERNAL_SERVER_ERROR, "internal error"),
        };
        (status, text).into_response()
    }
}

impl AppState {
    /// The live session the cookie names, renewed if due. `None` for no
    /// cookie, a malformed token, or an unknown, revoked or expired session.
    async fn current(&self, client: &Client) -> Result<Option<Current>, AppError> {
        let Some(token) = &client.token else {
            return Ok(None);
        };
        let session = match self.manager.load(token).await {
            Ok(Some(s)) => s,
            Ok(None) | Err(Error::InvalidId) => return Ok(None),
            Err(e) => return Err(e.into()),
        };
        let data: AppData =
            serde_json::from_slice(session.data()).map_err(|_| AppError::Internal)?;
        let mut current = Current {
            // Inside a renewal grace window the old token reached the
            // successor: hand the client the new token.
            set_cookie: session.token_changed(),
            session,
            data,
        };
        self.renew_if_due(&mut current).await?;
        Ok(Some(current))
    }

    /// Scheduled renewal of a logged-in session: a new token once
    /// [`AppOptions::renew_after`] has passed since login or the last renewal.
    async fn renew_if_due(&self, current: &mut Current) -> Result<(), AppError> {
        let (Some(after), Some(auth)) = (self.options.renew_after, current.session.auth_time())
        else {
            return Ok(());
        };
        let now = self.manager.now();
        let last = current.data.renewed_at.unwrap_or(auth.as_millis());
        if now.saturating_duration_since(Timestamp::from_millis(last)) < after {
            return Ok(());
        }
        let mut data = current.data.clone();
        data.renewed_at = Some(now.as_millis());
        let mut session = current.session.clone();
        session.set_data(serde_json::to_vec(&data).map_err(|_| AppError::Internal)?);
        match self
            .manager
            .rotate(&mut session, RotateReason::Renewal)
            .await
        {
            Ok(()) => {
                // A concurrent renewal of the same token may have won: then
                // `session` is its successor, with that renewal's data.
                current.data =
                    serde_json::from_slice(session.data()).map_err(|_| AppError::Internal)?;
                current.session = session;
                current.set_cookie = true;
                Ok(())
            }
            // Changed under us: serve this request with the session as
            // loaded (unchanged); a later request renews.
            Err(Error::Conflict) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    /// The current session, or a new anonymous one (with a CSRF token, for
    /// the login form).
    async fn current_or_new(&self, client: &Client) -> Result<Current, AppError> {
        if let Some(current) = self.current(client).await? {
            return Ok(current);
        }
        let data = AppData {
            csrf: csrf::new_token(),
            ..AppData::default()
        };
        let bytes = serde_json::to_vec(&data).map_err(|_| AppError::Internal)?;
        let session = self.manager.create(bytes, client.meta.clone()).await?;
        Ok(Current {
            session,
            data,
            set_cookie: true,
        })
    }

    /// The current session of a state-changing request, after checking its
    /// CSRF token (form field `csrf` or header `x-csrf-token`) in constant
    /// time. No session, no token or a wrong one: 403.
    async fn checked(
        &self,
        client: &Client,
        form: &HashMap<String, String>,
    ) -> Result<Current, AppError> {
        let current = self.current(client).await?.ok_or(AppError::Forbidden)?;
        let presented = form
            .get(CSRF_FIELD)
            .map(String::as_str)
            .or(client.csrf_header.as_deref());
        if !csrf::matches(&current.data.csrf, presented) {
            return Err(AppError::Forbidden);
        }
        Ok(current)
    }

    fn check_password(&self, user: &str, password: &str) -> bool {
        // Looks at every entry with constant-time comparisons.
        let mut ok = Choice::from(0);
        for (u, p) in &self.options.users {
            ok |= u.as_bytes().ct_eq(user.as_bytes()) & p.as_bytes().ct_eq(password.as_bytes());
        }
        ok.into()
    }

    /// `Set-Cookie` for the session's token.
    fn cookie(&self, session: &Session) -> String {
        let max_age = self.options.cookie_max_age.map(|age| {
            age.min(
                session
                    .absolute_deadline()
                    .saturating_duration_since(self.manager.now()),
            )
        });
        session_cookie(session.token().expose_secret(), max_age)
    }

    fn cookie_if_changed(&self, current: &Current) -> Option<String> {
        current.set_cookie.then(|| self.cookie(&current.session))
    }
}

fn form_or_empty(
    form: Result<Form<HashMap<String, String>>, FormRejection>,
) -> HashMap<String, String> {
    form.map(|Form(f)| f).unwrap_or_default()
}

fn with_cookie(mut res: Response, cookie: Option<String>) -> Response {
    if let Some(c) = cookie.and_then(|c| HeaderValue::from_str(&c).ok()) {
        res.headers_mut().append(SET_COOKIE, c);
    }
    res
}

fn redirect(to: &'static str, cookie: Option<String>) -> Response {
    let res = (StatusCode::SEE_OTHER, [(LOCATION, to)]).into_response();
    with_cookie(res, cookie)
}

fn html(body: String, cookie: Option<String>) -> Response {
    let page = format!(
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>Sessions demo</title></head><body>{body}</body></html>"
    );
    with_cookie(
        ([(CONTENT_TYPE, "text/html; charset=utf-8")], page).into_response(),
        cookie,
    )
}

fn json_response(value: serde_json::Value, cookie: Option<String>) -> Response {
    with_cookie(
        ([(CONTENT_TYPE, "application/json")], value.to_string()).into_response(),
        cookie,
    )
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

fn csrf_input(current: &Current) -> String {
    format!(
        "<input type=\"hidden\" name=\"{CSRF_FIELD}\" value=\"{}\">",
        escape(&current.data.csrf)
    )
}

async fn home(State(state): State<AppState>, client: Client) -> Result<Response, AppError> {
    let Some(current) = state.current(&client).await? else {
        return Ok(html(
            "<p>Not signed in. <a href=\"/login\">Sign in</a></p>".into(),
            None,
        ));
    };
    let csrf = csrf_input(&current);
    let body = match current.user() {
        Some(user) => format!(
            "<p>Signed in as {}. Counter: {}.</p>\
             <form method=\"post\" action=\"/counter\">{csrf}<button>Increment</button></form>\
             <p><a href=\"/devices\">Your devices</a></p>\
             <form method=\"post\" action=\"/logout\">{csrf}<button>Log out</button></form>\
             <form method=\"post\" action=\"/logout-others\">{csrf}<button>Log out other devices</button></form>\
             <form method=\"post\" action=\"/logout-everywhere\">{csrf}<button>Log out everywhere</button></form>",
            escape(&user),
            current.data.counter
        ),
        None => "<p>Not signed in. <a href=\"/login\">Sign in</a></p>".into(),
    };
    Ok(html(body, state.cookie_if_changed(&current)))
}

async fn login_page(State(state): State<AppState>, client: Client) -> Result<Response, AppError> {
    let current = state.current_or_new(&client).await?;
    let body = format!(
        "<form method=\"post\" action=\"/login\">{}\
         <label>User <input name=\"username\" autocomplete=\"username\"></label>\
         <label>Password <input name=\"password\" type=\"password\" autocomplete=\"current-password\"></label>\
         <button>Sign in</button></form>",
        csrf_input(&current)
    );
    Ok(html(body, state.cookie_if_changed(&current)))
}

/// Login: the pre-login token never survives. The session moves to a new
/// token (the old one is deleted at once), binds the user, records the
/// authentication time, IP and user agent, resets both timeouts, and gets
/// a new CSRF token.
async fn login(
    State(state): State<AppState>,
    client: Client,
    form: Result<Form<HashMap<String, String>>, FormRejection>,
) -> Result<Response, AppError> {
    let form = form_or_empty(form);
    let mut current = state.checked(&client, &form).await?;
    let user = form.get("username").map(String::as_str).unwrap_or("");
    let password = form.get("password").map(String::as_str).unwrap_or("");
    if user.is_empty() || !state.check_password(user, password) {
        return Err(AppError::Unauthorized);
    }
    current.data.csrf = csrf::new_token();
    current.data.renewed_at = None;
    current.store_data()?;
    current.session.set_client_meta(client.meta.clone());
    state
        .manager
        .rotate(
            &mut current.session,
            RotateReason::Login {
                user_id: user.to_owned(),
            },
        )
        .await?;
    Ok(redirect("/", Some(state.cookie(&current.session))))
}

/// Logout: deleted server-side, cookie expired with the same attributes.
async fn logout(
    State(state): State<AppState>,
    client: Client,
    form: Result<Form<HashMap<String, String>>, FormRejection>,
) -> Result<Response, AppError> {
    let current = state.checked(&client, &form_or_empty(form)).await?;
    state.manager.logout(&current.session).await?;
    Ok(redirect("/", Some(expired_cookie())))
}

async fn logout_everywhere(
    State(state): State<AppState>,
    client: Client,
    form: Result<Form<HashMap<String, String>>, FormRejection>,
) -> Result<Response, AppError> {
    let current = state.checked(&client, &form_or_empty(form)).await?;
    let user = current.user().ok_or(AppError::Unauthorized)?;
    state.manager.logout_everywhere(&user).await?;
    Ok(redirect("/", Some(expired_cookie())))
}

async fn logout_others(
    State(state): State<AppState>,
    client: Client,
    form: Result<Form<HashMap<String, String>>, FormRejection>,
) -> Result<Response, AppError> {
    let current = state.checked(&client, &form_or_empty(form)).await?;
    current.user().ok_or(AppError::Unauthorized)?;
    state.manager.logout_other_devices(&current.session).await?;
    Ok(redirect("/devices", state.cookie_if_changed(&current)))
}

async fn signed_in(state: &AppState, client: &Client) -> Result<(Current, String), AppError> {
    let current = state.current(client).await?.ok_or(AppError::Unauthorized)?;
    let user = current.user().ok_or(AppError::Unauthorized)?;
    Ok((current, user))
}

async fn devices_page(State(state): State<AppState>, client: Client) -> Result<Response, AppError> {
    let (current, user) = signed_in(&state, &client).await?;
    let devices = state
        .manager
        .list_devices(&user, Some(&current.session))
        .await?;
    let csrf = csrf_input(&current);
    let mut body = String::from(
        "<h1>Your devices</h1><table><tr><th>Created</th><th>Last seen</th><th>IP</th><th>Browser</th><th></th></tr>",
    );
    for d in &devices {
        let _ = write!(
            body,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            utc(d.created_at),
            utc(d.last_seen_at),
            escape(d.meta.ip.as_deref().unwrap_or("")),
            escape(d.meta.user_agent.as_deref().unwrap_or("")),
            if d.current {
                "this device".to_owned()
            } else {
                format!(
                    "<form method=\"post\" action=\"/devices/revoke\">{csrf}\
                     <input type=\"hidden\" name=\"handle\" value=\"{}\"><button>Revoke</button></form>",
                    d.handle
                )
            }
        );
    }
    body.push_str("</table>");
    let _ = write!(
        body,
        "<form method=\"post\" action=\"/logout-others\">{csrf}<button>Log out other devices</button></form>"
    );
    Ok(html(body, state.cookie_if_changed(&current)))
}

async fn devices_json(State(state): State<AppState>, client: Client) -> Result<Response, AppError> {
    let (current, user) = signed_in(&state, &client).await?;
    let devices = state
        .manager
        .list_devices(&user, Some(&current.session))
        .await?;
    let list: Vec<_> = devices
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
            })
        })
        .collect();
    Ok(json_response(
        json!({ "devices": list }),
        state.cookie_if_changed(&current),
    ))
}

/// Revokes one of the user's sessions by its opaque handle (never a token).
async fn revoke(
    State(state): State<AppState>,
    client: Client,
    form: Result<Form<HashMap<String, String>>, FormRejection>,
) -> Result<Response, AppError> {
    let form = form_or_empty(form);
    let current = state.checked(&client, &form).await?;
    let user = current.user().ok_or(AppError::Unauthorized)?;
    let handle = SessionHandle::parse(form.get("handle").map(String::as_str).unwrap_or(""))
        .map_err(|_| AppError::BadRequest("malformed session handle"))?;
    if !state.manager.revoke(&user, &handle).await? {
        return Err(AppError::NotFound);
    }
    if handle == current.session.handle() {
        return Ok(redirect("/", Some(expired_cookie())));
    }
    Ok(redirect("/devices", state.cookie_if_changed(&current)))
}

async fn session_json(State(state): State<AppState>, client: Client) -> Result<Response, AppError> {
    let current = state.current_or_new(&client).await?;
    let s = &current.session;
    Ok(json_response(
        json!({
            "user": s.user_id(),
            "csrf": current.data.csrf,
            "counter": current.data.counter,
            "auth_time": s.auth_time().map(Timestamp::as_millis),
            "idle_deadline": s.idle_deadline().as_millis(),
            "absolute_deadline": s.absolute_deadline().as_millis(),
        }),
        state.cookie_if_changed(&current),
    ))
}

/// A state-changing request: CSRF-checked, saved with compare-and-swap.
async fn counter(
    State(state): State<AppState>,
    client: Client,
    form: Result<Form<HashMap<String, String>>, FormRejection>,
) -> Result<Response, AppError> {
    let mut current = state.checked(&client, &form_or_empty(form)).await?;
    current.data.counter += 1;
    current.store_data()?;
    state.manager.save(&mut current.session).await?;
    Ok(json_response(
        json!({ "counter": current.data.counter }),
        state.cookie_if_changed(&current),
    ))
}

/// A privilege change (step-up, role change): a new token, the old one dead
/// at once, the absolute deadline kept.
async fn privilege(
    State(state): State<AppState>,
    client: Client,
    form: Result<Form<HashMap<String, String>>, FormRejection>,
) -> Result<Response, AppError> {
    let mut current = state.checked(&client, &form_or_empty(form)).await?;
    current.user().ok_or(AppError::Unauthorized)?;
    state
        .manager
        .rotate(&mut current.session, RotateReason::PrivilegeChange)
        .await?;
    Ok(json_response(
        json!({ "ok": true }),
        Some(state.cookie(&current.session)),
    ))
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
    fn escape_and_truncate() {
        assert_eq!(
            escape("<a href='x'>&\"</a>"),
            "&lt;a href=&#39;x&#39;&gt;&amp;&quot;&lt;/a&gt;"
        );
        assert_eq!(truncate("héllo", 2), "h");
        assert_eq!(truncate("abc", 10), "abc");
    }
}
