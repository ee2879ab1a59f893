//! Persistent logins in the layer: the "remember me" cookie, resuming a
//! session from it, and the refresh-token endpoint for API clients (see
//! [`session_store_core::persistent`] for the token families' contract).

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE};
use axum::http::{HeaderValue, Request, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::MethodRouter;
use serde_json::{json, Value};
use session_store_core::{Error, PersistentToken, Result, Timestamp};
use tracing::{debug, warn};

use super::{Current, Inner, Payload, RequestState, Session, Shared};
use crate::config::{SessionConfig, MAX_COOKIE_BYTES};
use crate::cookie::Pair;
use crate::error::SessionError;
use crate::signals;

/// Default name of the "remember me" cookie.
pub(crate) const DEFAULT_REMEMBER_COOKIE: &str = "__Host-remember";

/// Request header an API client may carry its refresh token in (instead of
/// the JSON body) when calling [`SessionLayer::refresh_route`](crate::SessionLayer::refresh_route).
pub const REFRESH_TOKEN_HEADER: &str = "refresh-token";

/// Largest request body the refresh endpoint reads.
const MAX_REFRESH_BODY: usize = 4096;

/// Validates the remember cookie of `config` (called by [`SessionConfig::validate`]).
pub(crate) fn validate_cookie(config: &SessionConfig) -> Result<()> {
    let remember = &config.remember_cookie;
    remember
        .validate()
        .map_err(|e| Error::Config(format!("remember {e}")))?;
    let name = remember.name();
    if name.eq_ignore_ascii_case(config.cookie.name())
        || name.eq_ignore_ascii_case(config.csrf.cookie_name())
    {
        return Err(Error::Config(
            "remember cookie name: must differ from the session and CSRF cookie names".into(),
        ));
    }
    Ok(())
}

/// The remember cookie a request presented: the first well-formed token,
/// and whether any cookie of that name was there at all (malformed or
/// oversized ones included: those are cleared, without I/O).
pub(crate) struct Presented {
    pub(crate) token: Option<PersistentToken>,
    pub(crate) present: bool,
}

impl Presented {
    /// Nothing presented yet.
    pub(crate) const NONE: Presented = Presented {
        token: None,
        present: false,
    };

    /// Takes one `Cookie` pair named like the remember cookie (the caller
    /// matched the name), in header order: the first well-formed token
    /// wins; an oversized pair counts as present but is never parsed.
    pub(crate) fn offer(&mut self, pair: Pair<'_>) {
        self.present = true;
        if self.token.is_some() || pair.len() > MAX_COOKIE_BYTES {
            return;
        }
        let mut value = pair.raw_value().trim_ascii();
        if value.len() >= 2 && value[0] == b'"' && value[value.len() - 1] == b'"' {
            value = &value[1..value.len() - 1];
        }
        self.token = std::str::from_utf8(value)
            .ok()
            .and_then(|v| PersistentToken::parse(v).ok());
    }
}

/// What the response does with the remember cookie.
#[derive(Clone)]
pub(crate) enum Change {
    /// Set this token, with `Max-Age` up to the family's absolute deadline.
    Set {
        token: PersistentToken,
        expires_at: Timestamp,
    },
    /// Remove it (same name, path and attributes, `Max-Age=0`).
    Clear,
}

/// A persistent login issued for an API client: the refresh token and its
/// family's absolute deadline. `Debug` is redacted.
#[derive(Debug, Clone)]
pub struct RefreshGrant {
    token: PersistentToken,
    expires_at: Timestamp,
}

impl RefreshGrant {
    /// The refresh token to hand to the client. A secret: never log it.
    pub fn expose_secret(&self) -> &str {
        self.token.expose_secret()
    }
    /// When the persistent login ends at the latest (rotation does not move it).
    pub fn expires_at(&self) -> Timestamp {
        self.expires_at
    }
}

impl RequestState {
    /// No live session was presented: starts one from the remember cookie.
    /// Called only when [`RequestState::may_resume`] holds (its one caller,
    /// `resume_if_remembered`, checks). A store failure leaves the request
    /// unloaded and keeps the cookie (`503`, never a logout).
    pub(super) async fn resume_remembered(&self, inner: &mut Inner) -> Result<(), SessionError> {
        let Some(token) = &self.remember.token else {
            return Ok(());
        };
        let resumed = self
            .manager()
            .resume_from(token.expose_secret(), self.meta(), self.ip)
            .await;
        match resumed {
            Ok(Some(r)) => {
                debug!(key = %r.session.storage_key().short_hash(), joined = r.joined,
                    "session resumed from a persistent login");
                let payload = Payload::decode(r.session.data())?;
                inner.current = Some(Current {
                    session: r.session,
                    payload,
                });
                inner.issued = true;
                inner.cleared = false;
                inner.remember = Some(Change::Set {
                    token: r.token,
                    expires_at: r.expires_at,
                });
                Ok(())
            }
            Ok(None) | Err(Error::InvalidId) => {
                debug!(family = %token.family_key().short_hash(),
                    "remember cookie refused (unknown, expired, revoked or reused)");
                inner.remember = Some(Change::Clear);
                Ok(())
            }
            Err(e) => {
                inner.loaded = false;
                Err(self.fail(inner, "resume", e))
            }
        }
    }

    /// Whether [`RequestState::resume_remembered`] has anything to do: no
    /// session, not in header mode, a well-formed remember token that this
    /// request has not already refused.
    pub(super) fn may_resume(&self, inner: &Inner) -> bool {
        !self.token_via_header()
            && inner.current.is_none()
            && self.remember.token.is_some()
            && !matches!(inner.remember, Some(Change::Clear))
    }

    /// Issues a persistent login for the logged-in session (retrying on a
    /// concurrent change of the session, as writes do).
    async fn issue(&self, inner: &mut Inner) -> Result<RefreshGrant, SessionError> {
        let bound = self.config().update_attempts;
        let mut attempt = 0;
        loop {
            attempt += 1;
            let mut session = inner
                .current
                .as_ref()
                .filter(|c| c.session.user_id().is_some())
                .ok_or(SessionError::NotLoggedIn)?
                .session
                .clone();
            match self.manager().remember(&mut session).await {
                Ok(login) => {
                    if let Some(cur) = inner.current.as_mut() {
                        cur.session = session;
                    }
                    return Ok(RefreshGrant {
                        token: login.token,
                        expires_at: login.expires_at,
                    });
                }
                Err(Error::Conflict) if attempt < bound => {
                    Self::backoff(attempt).await;
                    if !self.reload(inner).await? {
                        return Err(SessionError::Gone);
                    }
                }
                Err(Error::Conflict) => {
                    warn!(key = %self.key_hash(inner), attempts = attempt,
                        "remember gave up after repeated conflicts");
                    return Err(SessionError::Conflict { attempts: attempt });
                }
                Err(e) => return Err(self.fail(inner, "remember", e)),
            }
        }
    }

    /// Before a login: a session resumed for another user is logged out
    /// first (its persistent login too), so the new user never inherits it.
    pub(super) async fn before_login(
        &self,
        inner: &mut Inner,
        user_id: &str,
    ) -> Result<(), SessionError> {
        let Some(cur) = &inner.current else {
            return Ok(());
        };
        let other_user = cur.session.user_id().is_some_and(|u| u != user_id);
        if !other_user || cur.session.persistent_handle().is_none() {
            return Ok(());
        }
        self.manager()
            .logout(&cur.session)
            .await
            .map_err(|e| self.fail(inner, "logout", e))?;
        inner.current = None;
        inner.issued = false;
        inner.remember = Some(Change::Clear);
        Ok(())
    }

    /// After a logout (of this device or everywhere): the remember cookie,
    /// if the request carried one or this request set one, is cleared.
    pub(super) fn forget(&self, inner: &mut Inner) {
        if self.remember.present || inner.remember.is_some() {
            inner.remember = Some(Change::Clear);
        }
    }

    /// The remember cookie's `Set-Cookie`, if the response needs one.
    pub(super) fn remember_cookie(&self, inner: &Inner) -> Option<String> {
        if self.token_via_header() {
            return None;
        }
        let cookie = &self.config().remember_cookie;
        match &inner.remember {
            Some(Change::Set { token, expires_at }) => {
                let remaining = expires_at.saturating_duration_since(self.manager().now());
                let age = cookie
                    .max_age()
                    .map_or(remaining, |a| a.min(remaining))
                    .max(Duration::from_secs(1));
                Some(cookie.set_cookie(token.expose_secret(), Some(age)))
            }
            Some(Change::Clear) => Some(cookie.clear_cookie()),
            None => None,
        }
    }
}

impl Session {
    /// Whether this request's session was started from a persistent login
    /// (a "remember me" cookie or a refresh token) rather than a password
    /// login since: demand the password again before sensitive actions.
    /// `false` without a session.
    ///
    /// # Errors
    /// [`SessionError::Unavailable`] when the store fails.
    pub async fn remembered(&self) -> Result<bool, SessionError> {
        self.read(|c| c.is_some_and(|c| c.session.remembered()))
            .await
    }

    /// [`Session::login`] with "remember me": after the login rotation a
    /// persistent login is issued for this device and the response sets the
    /// remember cookie ([`SessionConfig::with_remember_cookie`], default
    /// `__Host-remember`; `Secure`, `HttpOnly`, `SameSite=Lax`, `Path=/`,
    /// `Max-Age` = the persistent login's remaining lifetime).
    ///
    /// When a later request has no live session (the browser was closed,
    /// the session expired) but carries the remember cookie, the layer
    /// starts a new logged-in session from it (on the first use of the
    /// [`Session`]) and the response carries both a new session cookie and
    /// the rotated remember cookie. An unknown, expired, revoked or reused
    /// remember cookie is cleared and the request stays anonymous; reuse of
    /// a rotated token revokes the whole persistent login (and the sessions
    /// it started). [`Session::logout`] and [`Session::logout_everywhere`]
    /// end it and clear the cookie.
    ///
    /// # Errors
    /// As [`Session::login`]; [`SessionError::Unavailable`] when the
    /// persistent login could not be stored (the user is logged in anyway).
    pub async fn login_remembered(&self, user_id: &str) -> Result<(), SessionError> {
        self.login(user_id).await?;
        self.remember().await
    }

    /// Issues a persistent login for the logged-in session ("remember this
    /// device") and sets the remember cookie; see [`Session::login_remembered`].
    /// A persistent login the session had before is revoked.
    ///
    /// # Errors
    /// [`SessionError::NotLoggedIn`]; [`SessionError::Conflict`];
    /// [`SessionError::Unavailable`].
    pub async fn remember(&self) -> Result<(), SessionError> {
        let mut inner = self.state.inner.lock().await;
        self.state.ensure_loaded(&mut inner).await?;
        let grant = self.state.issue(&mut inner).await?;
        inner.remember = Some(Change::Set {
            token: grant.token,
            expires_at: grant.expires_at,
        });
        Ok(())
    }

    /// Issues a persistent login for the logged-in session and returns its
    /// token for an API client (a refresh token, typically in the login
    /// response's JSON next to [`Session::api_token`]); no cookie is set.
    /// The client exchanges it at [`SessionLayer::refresh_route`](crate::SessionLayer::refresh_route).
    ///
    /// # Errors
    /// As [`Session::remember`].
    pub async fn refresh_token(&self) -> Result<RefreshGrant, SessionError> {
        let mut inner = self.state.inner.lock().await;
        self.state.ensure_loaded(&mut inner).await?;
        self.state.issue(&mut inner).await
    }
}

/// The refresh endpoint's route (see [`SessionLayer::refresh_route`](crate::SessionLayer::refresh_route)).
pub(crate) fn refresh_route<S>(shared: Arc<Shared>) -> MethodRouter<S>
where
    S: Clone + Send + Sync + 'static,
{
    axum::routing::post(move |req: Request<Body>| {
        let shared = shared.clone();
        async move { refresh(&shared, req).await }
    })
}

fn json_reply(status: StatusCode, body: Value) -> Response {
    let mut res = (status, body.to_string()).into_response();
    let headers = res.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    res
}

fn oauth_error(status: StatusCode, error: &str) -> Response {
    json_reply(status, json!({ "error": error }))
}

/// Reads the refresh token from the header or the JSON body.
async fn token_of(
    parts: &axum::http::request::Parts,
    body: Body,
    limit: usize,
) -> std::result::Result<String, Response> {
    if let Some(v) = parts.headers.get(REFRESH_TOKEN_HEADER) {
        return v
            .to_str()
            .map(|v| v.trim().to_owned())
            .map_err(|_| oauth_error(StatusCode::UNAUTHORIZED, "invalid_grant"));
    }
    let bytes = axum::body::to_bytes(body, limit.min(MAX_REFRESH_BODY))
        .await
        .map_err(|_| oauth_error(StatusCode::PAYLOAD_TOO_LARGE, "invalid_request"))?;
    let value: Value = serde_json::from_slice(&bytes)
        .map_err(|_| oauth_error(StatusCode::BAD_REQUEST, "invalid_request"))?;
    value
        .get("refresh_token")
        .and_then(Value::as_str)
        .map(str::to_owned)
        .ok_or_else(|| oauth_error(StatusCode::BAD_REQUEST, "invalid_request"))
}

async fn refresh(shared: &Shared, req: Request<Body>) -> Response {
    let (parts, body) = req.into_parts();
    let token = match token_of(&parts, body, shared.config.body_limit).await {
        Ok(t) => t,
        Err(res) => return res,
    };
    if PersistentToken::parse(&token).is_err() {
        return oauth_error(StatusCode::UNAUTHORIZED, "invalid_grant");
    }
    let ip = signals::client_ip(&parts, &shared.config.client_ip);
    let meta = signals::client_meta(&parts, ip);
    match shared.manager.resume_from(&token, meta, ip).await {
        Ok(Some(r)) => {
            let now = shared.manager.now();
            json_reply(
                StatusCode::OK,
                json!({
                    "token_type": "Bearer",
                    "session_token": r.session.token().expose_secret(),
                    "expires_in": r.session.expires_at().saturating_duration_since(now).as_secs(),
                    "refresh_token": r.token.expose_secret(),
                    "refresh_expires_in": r.expires_at.saturating_duration_since(now).as_secs(),
                }),
            )
        }
        Ok(None) | Err(Error::InvalidId) => oauth_error(StatusCode::UNAUTHORIZED, "invalid_grant"),
        Err(e) => {
            let e = SessionError::from_core(e);
            if let SessionError::Unavailable(inner) = &e {
                tracing::error!(operation = "refresh", error = %inner, "session store failure");
            }
            let mut res = crate::layer::error_response(shared, e);
            res.headers_mut()
                .insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
            res
        }
    }
}
