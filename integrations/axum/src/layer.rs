//! The `tower::Layer` and its service: the request flow around a handler.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use axum::body::{Body, HttpBody};
use axum::http::header::{CACHE_CONTROL, CONTENT_LENGTH, CONTENT_TYPE, SET_COOKIE};
use axum::http::{HeaderName, HeaderValue, Method, Request};
use axum::response::{IntoResponse, Response};
use axum::routing::MethodRouter;
use http_body_util::{LengthLimitError, Limited};
use session_store_core::{Result, SessionManager};
use tower_layer::Layer;
use tower_service::Service;

use crate::config::{SameSite, SessionConfig, TOKEN_RESPONSE_HEADER};
use crate::csrf;
use crate::error::{ErrorMarker, SessionError};
use crate::limit::Limiter;
use crate::session::{RequestState, Session, Shared};

/// Adds sessions to every route it wraps: `Router::new().route(..).layer(layer)`.
///
/// Per request, in this order:
/// 1. a `Content-Length` over [`SessionConfig::with_body_limit`] is `413`
///    (and a body that grows past it fails with `413` when read);
/// 2. the token is taken from the session cookie (or, in header mode, the
///    header) and parsed, without I/O;
/// 3. a state-changing method (not `GET`, `HEAD`, `OPTIONS`, `TRACE`) is
///    checked for CSRF unless its token came from the header: the
///    `Origin` / `Sec-Fetch-Site` check, then exactly one token in the
///    header or the form field (a form that does not parse is `400`, two
///    tokens `403`), compared in constant time with the session's token or,
///    without a session, with the signed double-submit cookie (`403`);
/// 4. the handler runs with a [`Session`] in the request extensions (the
///    session is loaded only when the handler first uses it; without a live
///    session, a remember cookie starts one, see [`Session::login_remembered`]);
/// 5. the response gets the `Set-Cookie` the handler's calls require (a new
///    token after creation or rotation, a clearing cookie after logout, the
///    remember cookie when it was issued, rotated or refused) and
///    then `Cache-Control: no-store`; a response without session changes is
///    left untouched.
///
/// The layer's own refusals, and every [`SessionError`] a handler returns,
/// go through [`SessionConfig::with_error_handler`] when one is configured.
#[derive(Clone)]
pub struct SessionLayer {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for SessionLayer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionLayer")
            .field("manager", &self.shared.manager)
            .field("config", &self.shared.config)
            .finish_non_exhaustive()
    }
}

impl SessionLayer {
    /// A layer over `manager` (any backend, encrypted or not) with `config`.
    ///
    /// # Errors
    /// [`Error::Config`](session_store_core::Error::Config) from
    /// [`SessionConfig::validate`].
    pub fn new(manager: SessionManager, config: SessionConfig) -> Result<Self> {
        config.validate()?;
        let csrf_key = config.csrf.secret().unwrap_or_else(csrf::random_key);
        Ok(SessionLayer {
            shared: Arc::new(Shared {
                manager,
                limiter: config.anonymous_limit.clone().map(Limiter::new),
                config,
                csrf_key,
            }),
        })
    }

    /// The manager (for work outside a request: cleanup, admin revocation).
    pub fn manager(&self) -> &SessionManager {
        &self.shared.manager
    }

    /// The refresh-token endpoint for API clients: a `POST` route that
    /// exchanges a refresh token (issued by [`Session::refresh_token`]) for
    /// a new session token and the rotated refresh token.
    ///
    /// Mount it *outside* the layer (after `.layer(..)`): the client
    /// presents no session, and the refresh token travels in the body or a
    /// header, never in a cookie, so no CSRF check applies. The token is
    /// read from the [`REFRESH_TOKEN_HEADER`](crate::REFRESH_TOKEN_HEADER)
    /// header or the JSON body `{"refresh_token": "p...."}` (at most 4 KiB).
    /// Answers (all JSON, `Cache-Control: no-store`):
    /// - `200` `{"token_type": "Bearer", "session_token", "expires_in",
    ///   "refresh_token", "refresh_expires_in"}` (seconds): send the session
    ///   token as `Authorization: Bearer` ([`HeaderMode`](crate::HeaderMode))
    ///   and keep the new refresh token; the one sent is spent.
    /// - `401` `{"error": "invalid_grant"}`: a malformed token (no store
    ///   I/O), or an unknown, expired or revoked one, or a reused one (which
    ///   revokes the whole persistent login and the sessions it started):
    ///   the client must log in again.
    /// - `400` `{"error": "invalid_request"}`: no token or a body that is
    ///   not JSON; `413` for a body over the limit.
    /// - the layer's usual store-failure answer (`503`), never `401`: the
    ///   refresh token stays valid.
    ///
    /// ```
    /// use std::sync::Arc;
    /// use axum::{routing::{get, post}, Router};
    /// use session_store_axum::{HeaderMode, Session, SessionConfig, SessionError, SessionLayer};
    /// use session_store_core::{MemoryStore, SessionManager};
    ///
    /// // Login for API clients: a session token and a refresh token.
    /// async fn api_login(session: Session) -> Result<String, SessionError> {
    ///     session.login("alice").await?; // after checking the credentials
    ///     let refresh = session.refresh_token().await?;
    ///     let token = session.api_token().await?.unwrap_or_default();
    ///     Ok(format!(
    ///         r#"{{"session_token":"{token}","refresh_token":"{}"}}"#,
    ///         refresh.expose_secret()
    ///     ))
    /// }
    ///
    /// # fn main() -> Result<(), session_store_core::Error> {
    /// let manager = SessionManager::new(Arc::new(MemoryStore::new()));
    /// let config = SessionConfig::default().with_header_mode(Some(HeaderMode::Bearer));
    /// let layer = SessionLayer::new(manager, config)?;
    /// let app: Router = Router::new()
    ///     .route("/api/login", post(api_login))
    ///     .route("/api/me", get(|s: Session| async move { s.user_id().await.map(|u| u.unwrap_or_default()) }))
    ///     .layer(layer.clone())
    ///     .route("/api/refresh", layer.refresh_route());
    /// # let _ = app;
    /// # Ok(()) }
    /// ```
    pub fn refresh_route<S>(&self) -> MethodRouter<S>
    where
        S: Clone + Send + Sync + 'static,
    {
        crate::session::remember::refresh_route(self.shared.clone())
    }
}

impl<S> Layer<S> for SessionLayer {
    type Service = SessionService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        SessionService {
            inner,
            shared: self.shared.clone(),
        }
    }
}

/// The service [`SessionLayer`] wraps around a handler or router.
#[derive(Clone)]
pub struct SessionService<S> {
    inner: S,
    shared: Arc<Shared>,
}

impl<S> std::fmt::Debug for SessionService<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionService").finish_non_exhaustive()
    }
}

impl<S> Service<Request<Body>> for SessionService<S>
where
    S: Service<Request<Body>, Response = Response, Error = Infallible> + Clone + Send + 'static,
    S::Future: Send + 'static,
{
    type Response = Response;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Response, Infallible>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<Body>) -> Self::Future {
        // The clone that was polled ready serves this request.
        let clone = self.inner.clone();
        let inner = std::mem::replace(&mut self.inner, clone);
        let shared = self.shared.clone();
        Box::pin(handle(shared, inner, req))
    }
}

fn is_safe(method: &Method) -> bool {
    matches!(
        *method,
        Method::GET | Method::HEAD | Method::OPTIONS | Method::TRACE
    )
}

async fn handle<S>(
    shared: Arc<Shared>,
    mut inner: S,
    req: Request<Body>,
) -> Result<Response, Infallible>
where
    S: Service<Request<Body>, Response = Response, Error = Infallible>,
{
    let (mut parts, body) = req.into_parts();
    let limit = shared.config.body_limit;
    let declared = parts
        .headers
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        return Ok(error_response(&shared, SessionError::BodyTooLarge));
    }
    let state = Arc::new(RequestState::new(shared.clone(), &parts));
    // An empty body (a `GET`) cannot pass the limit: it is passed on as is,
    // without the boxed wrapper every other body gets.
    let mut body = if HttpBody::is_end_stream(&body) {
        body
    } else {
        Body::new(Limited::new(body, limit))
    };

    if shared.config.csrf.enabled() && !is_safe(&parts.method) && !state.token_via_header() {
        // Boxed: a `GET` never holds the check's (body-reading) future.
        match Box::pin(check_csrf(&shared, &state, &parts, body)).await {
            Ok(b) => body = b,
            Err(e) => {
                let res = error_response(&shared, e);
                return Ok(finish(&shared, &state, res).await);
            }
        }
    }

    parts.extensions.insert(Session::new(state.clone()));
    let res = match inner.call(Request::from_parts(parts, body)).await {
        Ok(res) => res,
        Err(never) => match never {},
    };
    Ok(finish(&shared, &state, res).await)
}

async fn check_csrf(
    shared: &Shared,
    state: &RequestState,
    parts: &axum::http::request::Parts,
    body: Body,
) -> Result<Body, SessionError> {
    let csrf = &shared.config.csrf;
    if !csrf::origin_allowed(&parts.headers, csrf.origin_check()) {
        return Err(state.reject_csrf(csrf::Reject::CrossOrigin).await);
    }
    let in_header: Vec<&HeaderValue> = parts.headers.get_all(csrf.header()).iter().collect();
    let (presented, body) = match in_header.as_slice() {
        [one] => (one.to_str().ok().map(str::to_owned), body),
        [] if is_form(parts) => {
            let bytes = match axum::body::to_bytes(body, usize::MAX).await {
                Ok(b) => b,
                Err(e) if is_length_limit(&e) => return Err(SessionError::BodyTooLarge),
                Err(_) => return Err(SessionError::BadForm),
            };
            let values = csrf::form_values(&bytes, csrf.field()).ok_or(SessionError::BadForm)?;
            if values.len() > 1 {
                return Err(state.reject_csrf(csrf::Reject::Duplicate).await);
            }
            (values.into_iter().next(), Body::from(bytes))
        }
        [] => (None, body),
        _ => return Err(state.reject_csrf(csrf::Reject::Duplicate).await),
    };
    let Some(presented) = presented else {
        return Err(state.reject_csrf(csrf::Reject::Missing).await);
    };
    state.check_csrf(&presented).await?;
    Ok(body)
}

fn is_form(parts: &axum::http::request::Parts) -> bool {
    parts
        .headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|v| {
            v.trim()
                .eq_ignore_ascii_case("application/x-www-form-urlencoded")
        })
}

fn is_length_limit(e: &axum::Error) -> bool {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(s) = source {
        if s.is::<LengthLimitError>() {
            return true;
        }
        source = s.source();
    }
    false
}

pub(crate) fn error_response(shared: &Shared, e: SessionError) -> Response {
    let res = e.into_response();
    apply_error_handler(shared, res)
}

fn apply_error_handler(shared: &Shared, res: Response) -> Response {
    match (
        res.extensions().get::<ErrorMarker>(),
        &shared.config.error_handler,
    ) {
        (Some(ErrorMarker(kind)), Some(handler)) => handler(*kind),
        _ => res,
    }
}

async fn finish(shared: &Shared, state: &RequestState, res: Response) -> Response {
    let mut res = apply_error_handler(shared, res);
    let out = state.outcome().await;
    let cookie = &shared.config.cookie;
    let mut values: Vec<String> = Vec::new();
    let mut token_header = None;
    if let Some((token, max_age)) = &out.set_token {
        if out.via_header {
            token_header = Some(token.clone());
        } else {
            values.push(cookie.set_cookie(token, *max_age));
        }
    } else if out.clear && !out.via_header {
        values.push(cookie.clear_cookie());
    }
    let csrf_name = shared.config.csrf.cookie_name();
    if let Some(t) = &out.new_anon_csrf {
        values.push(cookie.render(csrf_name, t, SameSite::Strict, None));
    } else if out.clear_anon_csrf {
        values.push(cookie.render(csrf_name, "", SameSite::Strict, Some(0)));
    }
    values.extend(out.remember_cookie);
    let touched = !values.is_empty() || token_header.is_some();
    let headers = res.headers_mut();
    for v in values {
        if let Ok(v) = HeaderValue::from_str(&v) {
            headers.append(SET_COOKIE, v);
        }
    }
    if let Some(t) = token_header.and_then(|t| HeaderValue::from_str(&t).ok()) {
        headers.insert(HeaderName::from_static(TOKEN_RESPONSE_HEADER), t);
    }
    if touched {
        headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    res
}
