//! The per-request session state and the [`Session`] extractor.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::FromRequestParts;
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use axum::http::HeaderValue;
use rand::Rng as _;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use session_store_core::{
    ClientMeta, Device, Error, Event, RotateReason, Session as CoreSession, SessionHandle,
    SessionManager, SessionToken, Timestamp,
};
use tokio::sync::{Mutex, MutexGuard};
use tracing::{debug, error, warn};

use crate::config::{HeaderMode, SessionConfig};
use crate::cookie;
use crate::csrf;
use crate::error::SessionError;
use crate::limit::Limiter;
use crate::signals::{self, ContextChange, ContextPolicy};

pub(crate) mod remember;

/// What the layer keeps in a session's data bytes (JSON).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub(crate) struct Payload {
    /// Application values by key.
    #[serde(default, rename = "v", skip_serializing_if = "BTreeMap::is_empty")]
    values: BTreeMap<String, Value>,
    /// Flash values (removed when read).
    #[serde(default, rename = "f", skip_serializing_if = "BTreeMap::is_empty")]
    flash: BTreeMap<String, Value>,
    /// The CSRF synchronizer token.
    #[serde(default, rename = "c", skip_serializing_if = "Option::is_none")]
    csrf: Option<String>,
    /// When the token was last renewed (milliseconds), if since login.
    #[serde(default, rename = "r", skip_serializing_if = "Option::is_none")]
    renewed_at: Option<i64>,
}

impl Payload {
    fn fresh() -> Self {
        Payload {
            csrf: Some(csrf::random_token()),
            ..Payload::default()
        }
    }
    fn decode(bytes: &[u8]) -> Result<Self, SessionError> {
        if bytes.is_empty() {
            return Ok(Payload::default());
        }
        serde_json::from_slice(bytes).map_err(SessionError::Serde)
    }
    fn encode(&self) -> Result<Vec<u8>, SessionError> {
        serde_json::to_vec(self).map_err(SessionError::Serde)
    }
}

/// The manager and configuration, shared by every request of a layer.
pub(crate) struct Shared {
    pub(crate) manager: SessionManager,
    pub(crate) config: SessionConfig,
    pub(crate) csrf_key: [u8; 32],
    pub(crate) limiter: Option<Limiter>,
}

struct Presented {
    token: SessionToken,
    via_header: bool,
}

struct Current {
    session: CoreSession,
    payload: Payload,
}

#[derive(Default)]
pub(crate) struct Inner {
    loaded: bool,
    current: Option<Current>,
    /// The client must receive the current token (new session, rotation,
    /// forwarded in a grace window).
    issued: bool,
    /// The session ended: clear the cookie.
    cleared: bool,
    change: Option<ContextChange>,
    new_anon_csrf: Option<String>,
    clear_anon_csrf: bool,
    /// What the response does with the remember cookie.
    remember: Option<remember::Change>,
}

/// What the response must carry, decided once the handler is done.
pub(crate) struct Outcome {
    pub(crate) set_token: Option<(String, Option<Duration>)>,
    pub(crate) clear: bool,
    pub(crate) via_header: bool,
    pub(crate) new_anon_csrf: Option<String>,
    pub(crate) clear_anon_csrf: bool,
    /// The remember cookie's `Set-Cookie`, if any.
    pub(crate) remember_cookie: Option<String>,
}

/// New data set on a session for a save: restores the old data when
/// dropped, unless [`Unsaved::keep`] says the save succeeded.
struct Unsaved<'a> {
    session: &'a mut CoreSession,
    old: Option<Vec<u8>>,
}

impl<'a> Unsaved<'a> {
    fn new(session: &'a mut CoreSession, data: Vec<u8>) -> Self {
        let old = session.data().to_vec();
        session.set_data(data);
        Unsaved {
            session,
            old: Some(old),
        }
    }

    fn keep(&mut self) {
        self.old = None;
    }
}

impl Drop for Unsaved<'_> {
    fn drop(&mut self) {
        if let Some(old) = self.old.take() {
            self.session.set_data(old);
        }
    }
}

/// One request's session state.
pub(crate) struct RequestState {
    shared: Arc<Shared>,
    presented: Option<Presented>,
    ip: Option<IpAddr>,
    /// The `User-Agent` header, turned into [`ClientMeta`] only when a
    /// login, a resume or a creation records it ([`RequestState::meta`]).
    user_agent: Option<HeaderValue>,
    anon_csrf: Option<String>,
    remember: remember::Presented,
    inner: Mutex<Inner>,
}

impl RequestState {
    pub(crate) fn new(shared: Arc<Shared>, parts: &Parts) -> Self {
        let config = &shared.config;
        let from_header = config
            .header_mode
            .as_ref()
            .and_then(|mode| header_token(parts, mode))
            .map(|token| Presented {
                token,
                via_header: true,
            });
        // One pass over the `Cookie` headers for the session, CSRF and
        // remember cookies. For each, the first usable value in header order
        // wins (browsers send the cookie with the longest path first):
        // the first well-formed session token (malformed ones are skipped),
        // the first validly signed anonymous CSRF token, the first
        // well-formed remember token (see [`remember::Presented::offer`]).
        let want_cookie_token = from_header.is_none();
        let mut from_cookie = None;
        let mut anon_csrf = None;
        let mut remember = remember::Presented::NONE;
        let (session_name, csrf_name, remember_name) = (
            config.cookie.name().as_bytes(),
            config.csrf.cookie_name().as_bytes(),
            config.remember_cookie.name().as_bytes(),
        );
        for pair in cookie::pairs(&parts.headers) {
            let name = pair.name();
            if name == session_name && want_cookie_token && from_cookie.is_none() {
                from_cookie = pair.value().and_then(|v| SessionToken::parse(v).ok());
            }
            if name == csrf_name && anon_csrf.is_none() {
                anon_csrf = pair
                    .value()
                    .filter(|v| csrf::verify_anonymous(&shared.csrf_key, v))
                    .map(str::to_owned);
            }
            if name == remember_name {
                remember.offer(pair);
            }
        }
        let presented = from_header.or(from_cookie.map(|token| Presented {
            token,
            via_header: false,
        }));
        let ip = signals::client_ip(parts, &config.client_ip);
        let user_agent = signals::user_agent_header(parts);
        let inner = Inner {
            // A malformed or oversized remember cookie is cleared, without I/O.
            remember: (remember.present && remember.token.is_none())
                .then_some(remember::Change::Clear),
            ..Inner::default()
        };
        RequestState {
            shared,
            presented,
            ip,
            user_agent,
            anon_csrf,
            remember,
            inner: Mutex::new(inner),
        }
    }

    /// This request's client metadata (IP and user agent), as a login,
    /// a resume or a creation records it.
    fn meta(&self) -> ClientMeta {
        signals::meta_of(self.ip, self.user_agent.as_ref())
    }

    pub(crate) fn token_via_header(&self) -> bool {
        self.presented.as_ref().is_some_and(|p| p.via_header)
    }

    fn manager(&self) -> &SessionManager {
        &self.shared.manager
    }

    /// The request's state, locked: at once when free (the usual case, one
    /// handler task; no waiter is queued then, so this takes nobody's
    /// turn), else in the mutex's fair queue.
    async fn lock(&self) -> MutexGuard<'_, Inner> {
        match self.inner.try_lock() {
            Ok(guard) => guard,
            Err(_) => self.inner.lock().await,
        }
    }

    fn config(&self) -> &SessionConfig {
        &self.shared.config
    }

    fn key_hash(&self, inner: &Inner) -> String {
        match (&inner.current, &self.presented) {
            (Some(c), _) => c.session.storage_key().short_hash(),
            (None, Some(p)) => p.token.storage_key().short_hash(),
            (None, None) => "-".into(),
        }
    }

    /// Logs a manager error and maps it.
    fn fail(&self, inner: &Inner, operation: &'static str, e: Error) -> SessionError {
        let mapped = SessionError::from_core(e);
        if let SessionError::Unavailable(e) = &mapped {
            error!(key = %self.key_hash(inner), operation, error = %e, "session store failure");
        }
        mapped
    }

    /// Loads the presented session once per request: touch (throttled by the
    /// manager), contextual signals, scheduled renewal. A failure leaves the
    /// request unloaded (a later call tries again), never anonymous.
    ///
    /// The rare paths (resuming from a remember cookie, ending a session on
    /// a context change, renewal) run in boxed futures of their own, entered
    /// only when needed: this future, which every [`Session`] call embeds
    /// and moves, holds only the load.
    async fn ensure_loaded(&self, inner: &mut Inner) -> Result<(), SessionError> {
        if inner.loaded {
            return Ok(());
        }
        let Some(presented) = &self.presented else {
            inner.loaded = true;
            return self.resume_if_remembered(inner).await;
        };
        // In a block of its own: the loaded session (moved into `inner`)
        // then takes no room in this future beside the boxed awaits below,
        // and this future, which every handler's embeds, stays that much
        // smaller (less to allocate and to move per request).
        {
            let loaded = self
                .manager()
                .load_token_from(presented.token.clone(), self.ip)
                .await
                .map_err(|e| self.fail(inner, "load", e))?;
            inner.loaded = true;
            let Some(session) = loaded else {
                debug!(key = %presented.token.storage_key().short_hash(), "no live session for the presented token");
                return self.resume_if_remembered(inner).await;
            };
            inner.issued |= session.token_changed();
            let payload = Payload::decode(session.data())?;
            inner.current = Some(Current { session, payload });
        }
        if let Some(change) = self.check_context(inner) {
            Box::pin(self.end_for_context(inner, change)).await?;
        }
        if self.renewal_due(inner) {
            Box::pin(self.renew(inner)).await?;
        }
        Ok(())
    }

    /// [`RequestState::resume_remembered`] when the request carries a
    /// remember token it may use (boxed: the resume is the rare path).
    async fn resume_if_remembered(&self, inner: &mut Inner) -> Result<(), SessionError> {
        if self.may_resume(inner) {
            Box::pin(self.resume_remembered(inner)).await
        } else {
            Ok(())
        }
    }

    /// Compares a logged-in session's client context at login with this
    /// request's, reports a change (log, hook, event) and applies the
    /// policy; returns the change when the policy ends the session (the
    /// caller then runs [`RequestState::end_for_context`]).
    fn check_context(&self, inner: &mut Inner) -> Option<ContextChange> {
        let cur = inner.current.as_ref()?;
        cur.session.user_id()?;
        let change = signals::compare(
            cur.session.client_meta(),
            self.ip,
            self.user_agent.as_ref(),
            self.config().ip_granularity,
            || cur.session.storage_key().short_hash(),
        )?;
        warn!(
            key = %change.key,
            ip_changed = change.ip_changed,
            user_agent_changed = change.user_agent_changed,
            policy = ?self.config().context_policy,
            "session used from a different client context than at login"
        );
        if let Some(hook) = &self.config().on_context_change {
            hook(&change);
        }
        if let Some(sink) = &self.config().events {
            sink.event(&Event::ContextChanged {
                key: change.key.clone(),
                ip_changed: change.ip_changed,
                user_agent_changed: change.user_agent_changed,
                action: self.config().context_policy.event_action(),
            });
        }
        match self.config().context_policy {
            ContextPolicy::Ignore => None,
            ContextPolicy::Flag => {
                inner.change = Some(change);
                None
            }
            ContextPolicy::RequireReauth => Some(change),
        }
    }

    /// Policy [`ContextPolicy::RequireReauth`] after a context change: logs
    /// the session out (its persistent login too) and clears the cookie.
    async fn end_for_context(
        &self,
        inner: &mut Inner,
        change: ContextChange,
    ) -> Result<(), SessionError> {
        if let Some(cur) = &inner.current {
            self.manager()
                .logout(&cur.session)
                .await
                .map_err(|e| self.fail(inner, "logout", e))?;
        }
        inner.current = None;
        inner.issued = false;
        inner.cleared = true;
        inner.change = Some(change);
        // The logout ended the session's persistent login too.
        self.forget(inner);
        Ok(())
    }

    /// Whether the loaded session is logged in and due for its scheduled
    /// renewal ([`SessionConfig::with_renew_after`]).
    fn renewal_due(&self, inner: &Inner) -> bool {
        let Some(after) = self.config().renew_after else {
            return false;
        };
        let Some(cur) = &inner.current else {
            return false;
        };
        let Some(auth) = cur.session.auth_time() else {
            return false;
        };
        let now = self.manager().now();
        // A session started from a persistent login counts from its start.
        let since = auth.max(cur.session.created_at());
        let last = cur.payload.renewed_at.unwrap_or(since.as_millis());
        now.saturating_duration_since(Timestamp::from_millis(last)) >= after
    }

    /// The scheduled renewal rotation (see [`RequestState::renewal_due`]).
    async fn renew(&self, inner: &mut Inner) -> Result<(), SessionError> {
        let Some(cur) = &inner.current else {
            return Ok(());
        };
        let now = self.manager().now();
        let mut payload = cur.payload.clone();
        payload.renewed_at = Some(now.as_millis());
        let mut session = cur.session.clone();
        session.set_data(payload.encode()?);
        match self
            .manager()
            .rotate(&mut session, RotateReason::Renewal)
            .await
        {
            Ok(()) => {
                // A concurrent renewal of the same token may have won: then
                // `session` is its successor, with that renewal's data.
                let payload = Payload::decode(session.data())?;
                inner.current = Some(Current { session, payload });
                inner.issued = true;
                Ok(())
            }
            // Changed under us and no successor to join: serve this request
            // with the session as loaded; a later request renews.
            Err(Error::Conflict) => Ok(()),
            Err(e) => Err(self.fail(inner, "renew", e)),
        }
    }

    /// Reloads after a lost compare-and-swap. `false`: the session is gone.
    async fn reload(&self, inner: &mut Inner) -> Result<bool, SessionError> {
        let token = match &inner.current {
            Some(c) => c.session.token().clone(),
            None => return Ok(false),
        };
        match self.manager().load_token_from(token, self.ip).await {
            Ok(Some(session)) => {
                inner.issued |= session.token_changed();
                let payload = Payload::decode(session.data())?;
                inner.current = Some(Current { session, payload });
                Ok(true)
            }
            Ok(None) => {
                inner.current = None;
                inner.issued = false;
                inner.cleared = true;
                Ok(false)
            }
            Err(e) => Err(self.fail(inner, "load", e)),
        }
    }

    async fn backoff(attempt: u32) {
        let cap_micros = (500u64 << attempt.min(5)).min(20_000);
        let wait = rand::rng().random_range(0..=cap_micros);
        tokio::time::sleep(Duration::from_micros(wait)).await;
    }

    /// Applies `f` to the payload and writes it with compare-and-swap,
    /// reloading and re-applying on conflict up to the configured bound.
    /// `f` returns its result and whether it changed the payload (no change:
    /// no write). Without a session, `create` decides whether one is made.
    async fn mutate<R>(
        &self,
        create: bool,
        mut f: impl FnMut(&mut Payload) -> Result<(R, bool), SessionError>,
    ) -> Result<R, SessionError> {
        let mut inner = self.inner.lock().await;
        self.ensure_loaded(&mut inner).await?;
        let bound = self.config().update_attempts;
        let mut attempt = 0;
        loop {
            attempt += 1;
            let Some(cur) = &inner.current else {
                let mut payload = Payload::fresh();
                let (r, changed) = f(&mut payload)?;
                if !changed || !create {
                    return Ok(r);
                }
                if !self.config().allow_anonymous {
                    return Err(SessionError::AnonymousDisabled);
                }
                Box::pin(self.create_anonymous(&mut inner, payload)).await?;
                return Ok(r);
            };
            let mut payload = cur.payload.clone();
            let (r, changed) = f(&mut payload)?;
            if !changed {
                return Ok(r);
            }
            let data = payload.encode()?;
            let Some(cur) = inner.current.as_mut() else {
                return Err(SessionError::Gone);
            };
            // Saved in place instead of on a copy of the session: `save`
            // changes it only when it succeeds, and the guard puts the old
            // data back on an error or if this future is dropped mid-save.
            let mut unsaved = Unsaved::new(&mut cur.session, data);
            let saved = self.manager().save(unsaved.session).await;
            match saved {
                Ok(()) => {
                    unsaved.keep();
                    cur.payload = payload;
                    return Ok(r);
                }
                Err(Error::Conflict) => {
                    drop(unsaved);
                    if attempt >= bound {
                        warn!(key = %self.key_hash(&inner), attempts = attempt, "session write gave up after repeated conflicts");
                        return Err(SessionError::Conflict { attempts: attempt });
                    }
                    // Boxed: the retry is the rare path of every write.
                    let reloaded = Box::pin(async {
                        Self::backoff(attempt).await;
                        self.reload(&mut inner).await
                    })
                    .await?;
                    if !reloaded {
                        warn!(key = %self.key_hash(&inner), "session removed during a write");
                        return Err(SessionError::Gone);
                    }
                }
                Err(e) => {
                    drop(unsaved);
                    return Err(self.fail(&inner, "save", e));
                }
            }
        }
    }

    /// Creates the anonymous session of a first write (rate limit first).
    async fn create_anonymous(
        &self,
        inner: &mut Inner,
        payload: Payload,
    ) -> Result<(), SessionError> {
        if let Some(limiter) = &self.shared.limiter {
            if !limiter.try_acquire(self.ip, self.manager().now().as_millis()) {
                debug!(ip = ?self.ip, "anonymous session refused by the rate limit");
                return Err(SessionError::AnonymousRateLimited);
            }
        }
        let session = self
            .manager()
            .create(payload.encode()?, self.meta())
            .await
            .map_err(|e| self.fail(inner, "create", e))?;
        inner.current = Some(Current { session, payload });
        inner.issued = true;
        inner.cleared = false;
        inner.clear_anon_csrf = true;
        Ok(())
    }

    /// Rotates with `reason` (reloading and retrying on conflict). `payload`
    /// adjusts the data first; `meta` replaces the client metadata.
    async fn rotate(
        &self,
        inner: &mut Inner,
        reason: RotateReason,
        adjust: impl Fn(&mut Payload),
        meta: Option<ClientMeta>,
    ) -> Result<(), SessionError> {
        let bound = self.config().update_attempts;
        let mut attempt = 0;
        loop {
            attempt += 1;
            let cur = inner.current.as_ref().ok_or(SessionError::Gone)?;
            let mut payload = cur.payload.clone();
            adjust(&mut payload);
            let mut session = cur.session.clone();
            session.set_data(payload.encode()?);
            if let Some(m) = &meta {
                session.set_client_meta(m.clone());
            }
            match self.manager().rotate(&mut session, reason.clone()).await {
                Ok(()) => {
                    inner.current = Some(Current { session, payload });
                    inner.issued = true;
                    inner.cleared = false;
                    return Ok(());
                }
                Err(Error::Conflict) => {
                    if attempt >= bound {
                        warn!(key = %self.key_hash(inner), attempts = attempt, reason = reason.label(), "rotation gave up after repeated conflicts");
                        return Err(SessionError::Conflict { attempts: attempt });
                    }
                    Self::backoff(attempt).await;
                    if !self.reload(inner).await? {
                        return Err(SessionError::Gone);
                    }
                }
                Err(e) => return Err(self.fail(inner, "rotate", e)),
            }
        }
    }

    /// What the response needs, once the handler is done.
    pub(crate) async fn outcome(&self) -> Outcome {
        if let Ok(inner) = self.inner.try_lock() {
            return self.outcome_of(&inner);
        }
        // Boxed: the lock is held past the handler only by a task it left
        // running with a clone of the session; every response's future
        // (see `layer::handle`) holds this one, and without the mutex's
        // acquire future inline it fits the allocator's small-size cache.
        Box::pin(async {
            let inner = self.inner.lock().await;
            self.outcome_of(&inner)
        })
        .await
    }

    fn outcome_of(&self, inner: &Inner) -> Outcome {
        let via_header = self.token_via_header();
        let set_token = match (&inner.current, inner.issued) {
            (Some(cur), true) => {
                let max_age = self.config().cookie.max_age().map(|age| {
                    age.min(
                        cur.session
                            .absolute_deadline()
                            .saturating_duration_since(self.manager().now()),
                    )
                });
                Some((cur.session.token().expose_secret().to_owned(), max_age))
            }
            _ => None,
        };
        Outcome {
            clear: set_token.is_none() && inner.cleared,
            set_token,
            via_header,
            new_anon_csrf: inner.new_anon_csrf.clone(),
            clear_anon_csrf: inner.clear_anon_csrf
                && self.anon_csrf.is_some()
                && inner.new_anon_csrf.is_none(),
            remember_cookie: self.remember_cookie(inner),
        }
    }

    /// The expected CSRF token check for a state-changing request.
    pub(crate) async fn check_csrf(&self, presented: &str) -> Result<(), SessionError> {
        let mut inner = self.inner.lock().await;
        self.ensure_loaded(&mut inner).await?;
        let ok = match &inner.current {
            Some(cur) => cur
                .payload
                .csrf
                .as_deref()
                .is_some_and(|expected| csrf::matches(expected, presented)),
            None => self
                .anon_csrf
                .as_deref()
                .is_some_and(|cookie| csrf::matches(cookie, presented)),
        };
        if ok {
            Ok(())
        } else {
            Err(self.csrf_reject(&inner, csrf::Reject::Mismatch))
        }
    }

    pub(crate) async fn reject_csrf(&self, reason: csrf::Reject) -> SessionError {
        let inner = self.inner.lock().await;
        self.csrf_reject(&inner, reason)
    }

    fn csrf_reject(&self, inner: &Inner, reason: csrf::Reject) -> SessionError {
        warn!(key = %self.key_hash(inner), reason = reason.label(), "CSRF check refused a request");
        SessionError::Csrf(reason.label())
    }
}

fn values_object(values: &BTreeMap<String, Value>) -> Value {
    Value::Object(values.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
}

fn header_token(parts: &Parts, mode: &HeaderMode) -> Option<SessionToken> {
    let value = match mode {
        HeaderMode::Bearer => {
            let v = parts.headers.get(AUTHORIZATION)?.to_str().ok()?.trim();
            let (scheme, rest) = v.split_once(' ')?;
            if !scheme.eq_ignore_ascii_case("bearer") {
                return None;
            }
            rest.trim()
        }
        HeaderMode::Named(name) => parts.headers.get(name)?.to_str().ok()?.trim(),
    };
    SessionToken::parse(value).ok()
}

/// The session of the current request: an axum extractor, cheap to clone.
///
/// Nothing happens until a method is called: a handler that never calls one
/// causes no store I/O and no `Set-Cookie`. The first call loads the session
/// the request presented (once per request): the manager's throttled touch,
/// the contextual-signal check and, for a logged-in session past
/// [`SessionConfig::with_renew_after`], a renewal rotation.
///
/// Every write is a compare-and-swap on the session's version, made at
/// once: on [`Error::Conflict`] the session is reloaded and the change
/// re-applied, up to [`SessionConfig::with_update_attempts`] times (with a
/// short random back-off), then [`SessionError::Conflict`]. So concurrent
/// requests on one session never lose a write made through this API.
///
/// A store failure is [`SessionError::Unavailable`] (`503`); it never turns
/// the request anonymous, creates a session or logs anybody out.
///
/// Rejection: [`SessionError::MissingLayer`] when no
/// [`SessionLayer`](crate::SessionLayer) wraps the route.
#[derive(Clone)]
pub struct Session {
    state: Arc<RequestState>,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session").finish_non_exhaustive()
    }
}

impl Session {
    pub(crate) fn new(state: Arc<RequestState>) -> Self {
        Session { state }
    }

    async fn read<R>(&self, f: impl FnOnce(Option<&Current>) -> R) -> Result<R, SessionError> {
        let mut inner = self.state.lock().await;
        self.state.ensure_loaded(&mut inner).await?;
        Ok(f(inner.current.as_ref()))
    }

    /// Whether the request has a live session (anonymous or logged in).
    ///
    /// # Errors
    /// [`SessionError::Unavailable`] when the store fails.
    pub async fn exists(&self) -> Result<bool, SessionError> {
        self.read(|c| c.is_some()).await
    }

    /// The logged-in user, if any.
    ///
    /// # Errors
    /// [`SessionError::Unavailable`] when the store fails.
    pub async fn user_id(&self) -> Result<Option<String>, SessionError> {
        self.read(|c| c.and_then(|c| c.session.user_id().map(str::to_owned)))
            .await
    }

    /// When the user last logged in (for "re-enter your password after 5
    /// minutes" checks), if logged in.
    ///
    /// # Errors
    /// [`SessionError::Unavailable`] when the store fails.
    pub async fn auth_time(&self) -> Result<Option<Timestamp>, SessionError> {
        self.read(|c| c.and_then(|c| c.session.auth_time())).await
    }

    /// The idle deadline (moved by activity, never past the absolute one),
    /// if there is a session.
    ///
    /// # Errors
    /// [`SessionError::Unavailable`] when the store fails.
    pub async fn idle_deadline(&self) -> Result<Option<Timestamp>, SessionError> {
        self.read(|c| c.map(|c| c.session.idle_deadline())).await
    }

    /// The absolute deadline (set at creation, reset by login), if there is
    /// a session.
    ///
    /// # Errors
    /// [`SessionError::Unavailable`] when the store fails.
    pub async fn absolute_deadline(&self) -> Result<Option<Timestamp>, SessionError> {
        self.read(|c| c.map(|c| c.session.absolute_deadline()))
            .await
    }

    /// The session's opaque handle (as listed by [`Session::devices`]), if any.
    ///
    /// # Errors
    /// [`SessionError::Unavailable`] when the store fails.
    pub async fn handle(&self) -> Result<Option<SessionHandle>, SessionError> {
        self.read(|c| c.map(|c| c.session.handle())).await
    }

    /// The value stored under `key`, deserialized as `T`; `None` without a
    /// session or without that key.
    ///
    /// # Errors
    /// [`SessionError::Serde`] if the stored value is not a `T`;
    /// [`SessionError::Unavailable`] when the store fails.
    pub async fn get<T: DeserializeOwned>(&self, key: &str) -> Result<Option<T>, SessionError> {
        // Deserialized from the stored value in place, not from a copy.
        self.read(|c| {
            c.and_then(|c| c.payload.values.get(key))
                .map(|v| T::deserialize(v).map_err(SessionError::Serde))
                .transpose()
        })
        .await?
    }

    /// Stores `value` under `key`, at once, with compare-and-swap (a
    /// concurrent write to another key is kept; to this key, the later one
    /// wins). Without a session, creates an anonymous one (the first write
    /// is what creates it) and the response sets its cookie.
    ///
    /// # Errors
    /// [`SessionError::Serde`], [`SessionError::TooLarge`] (nothing written),
    /// [`SessionError::Conflict`] after the attempt bound,
    /// [`SessionError::Gone`], [`SessionError::AnonymousDisabled`],
    /// [`SessionError::AnonymousRateLimited`] (creating an anonymous session
    /// over [`SessionConfig::with_anonymous_limit`]),
    /// [`SessionError::Unavailable`].
    pub async fn insert<T: Serialize>(&self, key: &str, value: &T) -> Result<(), SessionError> {
        let value = serde_json::to_value(value).map_err(SessionError::Serde)?;
        self.state
            .mutate(true, |p| {
                let changed = p.values.get(key) != Some(&value);
                p.values.insert(key.to_owned(), value.clone());
                Ok(((), changed))
            })
            .await
    }

    /// Removes `key`; returns whether it was there. No session or no such
    /// key: no write.
    ///
    /// # Errors
    /// As [`Session::insert`].
    pub async fn remove(&self, key: &str) -> Result<bool, SessionError> {
        self.state
            .mutate(false, |p| {
                let had = p.values.remove(key).is_some();
                Ok((had, had))
            })
            .await
    }

    /// Read-modify-write of the value under `key` (`T::default()` when
    /// absent): `f` gets the current value, its changes are written with
    /// compare-and-swap, and on a conflict the session is reloaded and `f`
    /// applied again to the fresh value, up to the attempt bound. `f` may
    /// therefore run more than once: keep it free of side effects. Returns
    /// what the successful run of `f` returned. Without a session, creates
    /// an anonymous one.
    ///
    /// Concurrent `update`s of one session, from any number of requests,
    /// never lose an update: N increments of a counter leave it at N.
    ///
    /// # Errors
    /// [`SessionError::Conflict`] when every attempt of the bound conflicted
    /// (nothing of this update was stored); otherwise as [`Session::insert`].
    pub async fn update<T, R>(
        &self,
        key: &str,
        mut f: impl FnMut(&mut T) -> R,
    ) -> Result<R, SessionError>
    where
        T: Serialize + DeserializeOwned + Default,
    {
        self.state
            .mutate(true, |p| {
                let mut value: T = match p.values.get(key) {
                    Some(v) => T::deserialize(v).map_err(SessionError::Serde)?,
                    None => T::default(),
                };
                let r = f(&mut value);
                let value = serde_json::to_value(&value).map_err(SessionError::Serde)?;
                let changed = p.values.get(key) != Some(&value);
                p.values.insert(key.to_owned(), value);
                Ok((r, changed))
            })
            .await
    }

    /// All application values of the session as one typed state `T` (the
    /// values stored under each key become the fields of a JSON object, so
    /// `get::<u64>("n")` and a struct's field `n` are the same value);
    /// `None` without a session.
    ///
    /// # Errors
    /// [`SessionError::Serde`] if the values do not deserialize into `T`;
    /// [`SessionError::Unavailable`] when the store fails.
    pub async fn get_state<T: DeserializeOwned>(&self) -> Result<Option<T>, SessionError> {
        let values = self
            .read(|c| c.map(|c| values_object(&c.payload.values)))
            .await?;
        values
            .map(|v| serde_json::from_value(v).map_err(SessionError::Serde))
            .transpose()
    }

    /// Read-modify-write of the whole typed state ([`Session::get_state`];
    /// `T::default()` without a session): the same single compare-and-swap
    /// per attempt as [`Session::update`], reloading and re-applying `f` on
    /// a conflict up to the attempt bound, so concurrent updates are never
    /// lost. `f` may run more than once: keep it free of side effects.
    ///
    /// The session's values become exactly what `T` serializes to (it must
    /// serialize to a map or struct): keys `T` does not know are dropped
    /// (add a `#[serde(flatten)] rest: serde_json::Map<String, Value>`
    /// field to keep them), and a field skipped when serializing is removed.
    /// No change, no write. Without a session, creates an anonymous one.
    ///
    /// # Errors
    /// [`SessionError::Serde`] if the values are not a `T` or `T` does not
    /// serialize to a map (nothing written); otherwise as [`Session::update`].
    pub async fn update_state<T, R>(
        &self,
        mut f: impl FnMut(&mut T) -> R,
    ) -> Result<R, SessionError>
    where
        T: Serialize + DeserializeOwned + Default,
    {
        self.state
            .mutate(true, |p| {
                let mut state: T = if p.values.is_empty() {
                    T::default()
                } else {
                    serde_json::from_value(values_object(&p.values)).map_err(SessionError::Serde)?
                };
                let r = f(&mut state);
                let values = match serde_json::to_value(&state).map_err(SessionError::Serde)? {
                    Value::Object(map) => map.into_iter().collect::<BTreeMap<_, _>>(),
                    _ => {
                        return Err(SessionError::Serde(
                            <serde_json::Error as serde::ser::Error>::custom(
                                "update_state: the state must serialize to a map or struct",
                            ),
                        ))
                    }
                };
                let changed = values != p.values;
                p.values = values;
                Ok((r, changed))
            })
            .await
    }

    /// Stores a flash value: kept until [`Session::take_flash`] reads it
    /// (typically on the next page). Creates an anonymous session if needed.
    ///
    /// # Errors
    /// As [`Session::insert`].
    pub async fn flash<T: Serialize>(&self, key: &str, value: &T) -> Result<(), SessionError> {
        let value = serde_json::to_value(value).map_err(SessionError::Serde)?;
        self.state
            .mutate(true, |p| {
                p.flash.insert(key.to_owned(), value.clone());
                Ok(((), true))
            })
            .await
    }

    /// Reads and removes a flash value (written at once; of two concurrent
    /// readers exactly one gets it).
    ///
    /// # Errors
    /// As [`Session::insert`].
    pub async fn take_flash<T: DeserializeOwned>(
        &self,
        key: &str,
    ) -> Result<Option<T>, SessionError> {
        let value = self
            .state
            .mutate(false, |p| {
                let v = p.flash.remove(key);
                let changed = v.is_some();
                Ok((v, changed))
            })
            .await?;
        value
            .map(|v| serde_json::from_value(v).map_err(SessionError::Serde))
            .transpose()
    }

    /// The CSRF token to put in forms (field [`CsrfConfig::field`](crate::CsrfConfig::field))
    /// or the request header.
    ///
    /// With a session: its synchronizer token (created and stored if the
    /// session has none). Without one: a signed double-submit token, also
    /// set as the CSRF cookie on the response, so a login form is shown
    /// without storing anything.
    ///
    /// # Errors
    /// [`SessionError::Unavailable`] when the store fails; as
    /// [`Session::insert`] when a token must be stored.
    pub async fn csrf_token(&self) -> Result<String, SessionError> {
        {
            let mut inner = self.state.inner.lock().await;
            self.state.ensure_loaded(&mut inner).await?;
            match &inner.current {
                Some(cur) => {
                    if let Some(t) = &cur.payload.csrf {
                        return Ok(t.clone());
                    }
                }
                None => {
                    if let Some(t) = inner
                        .new_anon_csrf
                        .as_ref()
                        .or(self.state.anon_csrf.as_ref())
                    {
                        return Ok(t.clone());
                    }
                    let t = csrf::sign_anonymous(&self.state.shared.csrf_key);
                    inner.new_anon_csrf = Some(t.clone());
                    return Ok(t);
                }
            }
        }
        self.state
            .mutate(false, |p| match &p.csrf {
                Some(t) => Ok((t.clone(), false)),
                None => {
                    let t = csrf::random_token();
                    p.csrf = Some(t.clone());
                    Ok((t, true))
                }
            })
            .await
    }

    /// The contextual-signal change seen when this request loaded a
    /// logged-in session (policy [`ContextPolicy::Flag`] or
    /// [`ContextPolicy::RequireReauth`]), if any.
    ///
    /// # Errors
    /// [`SessionError::Unavailable`] when the store fails.
    pub async fn context_change(&self) -> Result<Option<ContextChange>, SessionError> {
        let mut inner = self.state.inner.lock().await;
        self.state.ensure_loaded(&mut inner).await?;
        Ok(inner.change.clone())
    }

    /// The current session token, for an API client's login response (header
    /// mode). A secret: never log it. `None` without a session.
    ///
    /// # Errors
    /// [`SessionError::Unavailable`] when the store fails.
    pub async fn api_token(&self) -> Result<Option<String>, SessionError> {
        self.read(|c| c.map(|c| c.session.token().expose_secret().to_owned()))
            .await
    }

    /// Logs `user_id` in with a login rotation: the session (a new one if
    /// there is none) moves to a fresh token and the pre-login token is dead
    /// at once, both timeouts restart, `auth_time` is now, this request's
    /// client IP and user agent are recorded, a new CSRF token is issued and
    /// the response sets the new cookie. Data values are kept (a cart
    /// survives login). Works with anonymous sessions disabled.
    ///
    /// # Errors
    /// [`SessionError::InvalidInput`] for an empty user id,
    /// [`SessionError::TooLarge`], [`SessionError::TooManySessions`] (cap
    /// with `Refuse`), [`SessionError::Conflict`], [`SessionError::Unavailable`].
    pub async fn login(&self, user_id: &str) -> Result<(), SessionError> {
        if user_id.is_empty() {
            return Err(SessionError::InvalidInput("user id must not be empty"));
        }
        let mut inner = self.state.inner.lock().await;
        self.state.ensure_loaded(&mut inner).await?;
        self.state.before_login(&mut inner, user_id).await?;
        if inner.current.is_none() {
            let payload = Payload::fresh();
            let session = self
                .state
                .manager()
                .create(payload.encode()?, self.state.meta())
                .await
                .map_err(|e| self.state.fail(&inner, "create", e))?;
            inner.current = Some(Current { session, payload });
        }
        let reason = RotateReason::Login {
            user_id: user_id.to_owned(),
        };
        self.state
            .rotate(
                &mut inner,
                reason,
                |p| {
                    p.csrf = Some(csrf::random_token());
                    p.renewed_at = None;
                },
                Some(self.state.meta()),
            )
            .await?;
        inner.change = None;
        inner.clear_anon_csrf = true;
        Ok(())
    }

    /// A privilege rotation (step-up, role change, password change): a new
    /// token, the old one dead at once, the absolute deadline kept; the
    /// response sets the new cookie.
    ///
    /// # Errors
    /// [`SessionError::NotLoggedIn`] without a logged-in session;
    /// [`SessionError::Conflict`], [`SessionError::Gone`], [`SessionError::Unavailable`].
    pub async fn elevate(&self) -> Result<(), SessionError> {
        let mut inner = self.state.inner.lock().await;
        self.state.ensure_loaded(&mut inner).await?;
        if inner
            .current
            .as_ref()
            .and_then(|c| c.session.user_id())
            .is_none()
        {
            return Err(SessionError::NotLoggedIn);
        }
        self.state
            .rotate(&mut inner, RotateReason::PrivilegeChange, |_| {}, None)
            .await
    }

    /// Deletes the session server-side and clears the cookie (same name,
    /// path and attributes, `Max-Age=0`). Without a session only the cookie
    /// is cleared. The token is dead once this returns.
    ///
    /// # Errors
    /// [`SessionError::Unavailable`] (nothing deleted, cookie kept).
    pub async fn logout(&self) -> Result<(), SessionError> {
        let mut inner = self.state.inner.lock().await;
        self.state.ensure_loaded(&mut inner).await?;
        if let Some(cur) = &inner.current {
            self.state
                .manager()
                .logout(&cur.session)
                .await
                .map_err(|e| self.state.fail(&inner, "logout", e))?;
        }
        inner.current = None;
        inner.issued = false;
        inner.cleared = true;
        self.state.forget(&mut inner);
        Ok(())
    }

    /// Deletes every session of the logged-in user, this one included, and
    /// clears the cookie; returns how many were removed.
    ///
    /// # Errors
    /// [`SessionError::NotLoggedIn`]; [`SessionError::Unavailable`].
    pub async fn logout_everywhere(&self) -> Result<u64, SessionError> {
        let mut inner = self.state.inner.lock().await;
        self.state.ensure_loaded(&mut inner).await?;
        let user = inner
            .current
            .as_ref()
            .and_then(|c| c.session.user_id().map(str::to_owned))
            .ok_or(SessionError::NotLoggedIn)?;
        let n = self
            .state
            .manager()
            .logout_everywhere(&user)
            .await
            .map_err(|e| self.state.fail(&inner, "logout_everywhere", e))?;
        inner.current = None;
        inner.issued = false;
        inner.cleared = true;
        self.state.forget(&mut inner);
        Ok(n)
    }

    /// Deletes every other session of the logged-in user (after a password
    /// change); this one stays. Every persistent login of the user ends too,
    /// this device's included (as [`SessionManager::logout_other_devices`]
    /// says), so this response clears the remember cookie if the request
    /// carried one; issue a new one with [`Session::remember`] if wanted.
    /// Returns how many entries were removed.
    ///
    /// # Errors
    /// [`SessionError::NotLoggedIn`]; [`SessionError::Unavailable`] (nothing
    /// known to be removed, cookies kept).
    ///
    /// [`SessionManager::logout_other_devices`]: session_store_core::SessionManager::logout_other_devices
    pub async fn logout_other_devices(&self) -> Result<u64, SessionError> {
        let mut inner = self.state.inner.lock().await;
        self.state.ensure_loaded(&mut inner).await?;
        let cur = inner
            .current
            .as_ref()
            .filter(|c| c.session.user_id().is_some())
            .ok_or(SessionError::NotLoggedIn)?;
        let n = self
            .state
            .manager()
            .logout_other_devices(&cur.session)
            .await
            .map_err(|e| self.state.fail(&inner, "logout_other_devices", e))?;
        self.state.forget(&mut inner);
        Ok(n)
    }

    /// The logged-in user's live sessions, oldest first: creation, last
    /// activity, IP and user agent at login, and which one is this request's
    /// (`current`). Handles, never tokens.
    ///
    /// # Errors
    /// [`SessionError::NotLoggedIn`]; [`SessionError::Unavailable`].
    pub async fn devices(&self) -> Result<Vec<Device>, SessionError> {
        let mut inner = self.state.inner.lock().await;
        self.state.ensure_loaded(&mut inner).await?;
        let cur = inner
            .current
            .as_ref()
            .filter(|c| c.session.user_id().is_some())
            .ok_or(SessionError::NotLoggedIn)?;
        let user = cur.session.user_id().expect("filtered").to_owned();
        self.state
            .manager()
            .list_devices(&user, Some(&cur.session))
            .await
            .map_err(|e| self.state.fail(&inner, "list_devices", e))
    }

    /// Ends one of the logged-in user's sessions by its handle; `false` if
    /// the user has no live session with that handle (another user's handle
    /// revokes nothing). Revoking this request's own session clears the cookie.
    ///
    /// # Errors
    /// [`SessionError::NotLoggedIn`]; [`SessionError::Unavailable`].
    pub async fn revoke(&self, handle: &SessionHandle) -> Result<bool, SessionError> {
        let mut inner = self.state.inner.lock().await;
        self.state.ensure_loaded(&mut inner).await?;
        let cur = inner
            .current
            .as_ref()
            .filter(|c| c.session.user_id().is_some())
            .ok_or(SessionError::NotLoggedIn)?;
        let user = cur.session.user_id().expect("filtered").to_owned();
        let own = cur.session.handle() == *handle;
        let own_family = cur.session.persistent_handle().as_ref() == Some(handle);
        let removed = self
            .state
            .manager()
            .revoke(&user, handle)
            .await
            .map_err(|e| self.state.fail(&inner, "revoke", e))?;
        if removed && own {
            inner.current = None;
            inner.issued = false;
            inner.cleared = true;
        }
        if removed && own_family {
            self.state.forget(&mut inner);
        }
        Ok(removed)
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Session {
    type Rejection = SessionError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        parts
            .extensions
            .get::<Session>()
            .cloned()
            .ok_or(SessionError::MissingLayer)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A float a handler stored reads back as the same `f64` in a later
    /// request (serde_json's `float_roundtrip`, set in the workspace; its
    /// default parsing reads these one bit off).
    #[test]
    fn floats_read_back_exactly() {
        let floats = [9.223372036549999e19, -9.223372036855e21, 0.1 + 0.2, 5e-324];
        let mut p = Payload::fresh();
        for (i, f) in floats.iter().enumerate() {
            p.values.insert(i.to_string(), serde_json::json!(f));
        }
        let back = Payload::decode(&p.encode().unwrap()).unwrap();
        for (i, f) in floats.iter().enumerate() {
            assert_eq!(back.values[&i.to_string()].as_f64(), Some(*f), "{f:e}");
        }
    }
}
