//! The layer's configuration: cookie attributes, renewal, CSRF, body limit,
//! header mode, contextual signals. Validated when the layer is built.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use axum::http::HeaderName;
use axum::response::Response;
use session_store_core::{Error, EventSink, Result};

use crate::error::SessionErrorKind;
use crate::limit::AnonymousLimit;
use crate::signals::{ClientIpSource, ContextChange, ContextPolicy, IpGranularity};

/// The `SameSite` attribute of the session cookie.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SameSite {
    /// Sent on same-site requests only.
    Strict,
    /// Sent on same-site requests and top-level cross-site navigations (the default).
    Lax,
    /// Sent on every request; requires `Secure`.
    None,
}

impl SameSite {
    fn as_str(self) -> &'static str {
        match self {
            SameSite::Strict => "Strict",
            SameSite::Lax => "Lax",
            SameSite::None => "None",
        }
    }
}

/// Attributes of the session cookie.
///
/// Defaults: name `__Host-session`, `Secure`, `HttpOnly`, `SameSite=Lax`,
/// `Path=/`, no `Domain`, no `Max-Age` (a browser-session cookie).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CookieConfig {
    name: String,
    secure: bool,
    http_only: bool,
    same_site: SameSite,
    path: String,
    domain: Option<String>,
    max_age: Option<Duration>,
}

impl Default for CookieConfig {
    fn default() -> Self {
        CookieConfig {
            name: "__Host-session".into(),
            secure: true,
            http_only: true,
            same_site: SameSite::Lax,
            path: "/".into(),
            domain: None,
            max_age: None,
        }
    }
}

/// Longest cookie (name, `=` and value) read from a request; longer ones are
/// ignored (RFC 6265bis recommends browsers keep at least 4096 bytes).
pub const MAX_COOKIE_BYTES: usize = 4096;

impl CookieConfig {
    /// The cookie name (default `__Host-session`).
    pub fn with_name(mut self, name: impl Into<String>) -> Self {
        self.name = name.into();
        self
    }
    /// The `Secure` attribute (default on).
    pub fn with_secure(mut self, secure: bool) -> Self {
        self.secure = secure;
        self
    }
    /// The `HttpOnly` attribute (default on).
    pub fn with_http_only(mut self, http_only: bool) -> Self {
        self.http_only = http_only;
        self
    }
    /// The `SameSite` attribute (default `Lax`).
    pub fn with_same_site(mut self, same_site: SameSite) -> Self {
        self.same_site = same_site;
        self
    }
    /// The `Path` attribute (default `/`).
    pub fn with_path(mut self, path: impl Into<String>) -> Self {
        self.path = path.into();
        self
    }
    /// The `Domain` attribute (default none: host-only).
    pub fn with_domain(mut self, domain: Option<String>) -> Self {
        self.domain = domain;
        self
    }
    /// `Max-Age` (default none: the cookie ends with the browser session).
    /// When set, each `Set-Cookie` carries the smaller of this and the
    /// session's remaining absolute lifetime.
    pub fn with_max_age(mut self, max_age: Option<Duration>) -> Self {
        self.max_age = max_age;
        self
    }
    /// The cookie name.
    pub fn name(&self) -> &str {
        &self.name
    }
    /// Whether `Secure` is set.
    pub fn secure(&self) -> bool {
        self.secure
    }
    /// Whether `HttpOnly` is set.
    pub fn http_only(&self) -> bool {
        self.http_only
    }
    /// The `SameSite` attribute.
    pub fn same_site(&self) -> SameSite {
        self.same_site
    }
    /// The `Path` attribute.
    pub fn path(&self) -> &str {
        &self.path
    }
    /// The `Domain` attribute.
    pub fn domain(&self) -> Option<&str> {
        self.domain.as_deref()
    }
    /// The configured `Max-Age`.
    pub fn max_age(&self) -> Option<Duration> {
        self.max_age
    }

    /// Checks the attributes against RFC 6265bis and the cookie prefixes.
    ///
    /// # Errors
    /// [`Error::Config`] naming the attribute: a name that is not an HTTP
    /// token; `__Host-` without `Secure`, with a `Domain` or a `Path` other
    /// than `/`; `__Secure-` without `Secure`; `SameSite=None` without
    /// `Secure`; a path not starting with `/` or a path or domain holding
    /// `;`, a control character or whitespace; a zero `Max-Age`.
    pub fn validate(&self) -> Result<()> {
        validate_cookie_name(&self.name, "cookie name")?;
        let lower = self.name.to_ascii_lowercase();
        if lower.starts_with("__host-") {
            if !self.secure {
                return Err(cfg("cookie: a __Host- cookie requires Secure"));
            }
            if self.domain.is_some() {
                return Err(cfg("cookie: a __Host- cookie must not have a Domain"));
            }
            if self.path != "/" {
                return Err(cfg("cookie: a __Host- cookie requires Path=/"));
            }
        }
        if lower.starts_with("__secure-") && !self.secure {
            return Err(cfg("cookie: a __Secure- cookie requires Secure"));
        }
        if self.same_site == SameSite::None && !self.secure {
            return Err(cfg("cookie: SameSite=None requires Secure"));
        }
        if !self.path.starts_with('/') || !attribute_text(&self.path) {
            return Err(cfg(
                "cookie path: must start with '/' and hold no ';', whitespace or control characters",
            ));
        }
        if let Some(d) = &self.domain {
            if d.is_empty() || !attribute_text(d) {
                return Err(cfg(
                    "cookie domain: must be non-empty and hold no ';', whitespace or control characters",
                ));
            }
        }
        if self.max_age.is_some_and(|a| a.as_secs() == 0) {
            return Err(cfg("cookie max_age: must be at least one second"));
        }
        Ok(())
    }

    /// `Set-Cookie` for `value` with these attributes (`max_age` already capped).
    pub(crate) fn set_cookie(&self, value: &str, max_age: Option<Duration>) -> String {
        self.render(
            &self.name,
            value,
            self.same_site,
            max_age.map(|a| a.as_secs()),
        )
    }

    /// `Set-Cookie` that removes the cookie: same name, path and attributes,
    /// empty value, `Max-Age=0`.
    pub(crate) fn clear_cookie(&self) -> String {
        self.render(&self.name, "", self.same_site, Some(0))
    }

    /// A cookie of another name sharing path, domain and `Secure`.
    pub(crate) fn render(
        &self,
        name: &str,
        value: &str,
        same_site: SameSite,
        max_age: Option<u64>,
    ) -> String {
        let mut s = format!("{name}={value}; Path={}", self.path);
        if let Some(d) = &self.domain {
            s.push_str("; Domain=");
            s.push_str(d);
        }
        if self.secure {
            s.push_str("; Secure");
        }
        if self.http_only {
            s.push_str("; HttpOnly");
        }
        s.push_str("; SameSite=");
        s.push_str(same_site.as_str());
        if let Some(age) = max_age {
            s.push_str(&format!("; Max-Age={age}"));
        }
        s
    }
}

fn cfg(message: &str) -> Error {
    Error::Config(message.to_owned())
}

fn attribute_text(s: &str) -> bool {
    s.bytes()
        .all(|b| b.is_ascii_graphic() && b != b';' && b != b',')
}

fn validate_cookie_name(name: &str, what: &str) -> Result<()> {
    // RFC 9110 token characters.
    let token = !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b));
    if token {
        Ok(())
    } else {
        Err(Error::Config(format!(
            "{what}: expected an HTTP token (letters, digits, !#$%&'*+-.^_`|~), got {name:?}"
        )))
    }
}

/// Whether a request with a given `Origin` / `Sec-Fetch-Site` may change state.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum OriginCheck {
    /// No check beyond the token.
    Off,
    /// The default: refuse when `Sec-Fetch-Site` is present and not
    /// `same-origin` or `none`, or when `Origin` is present and its host
    /// differs from the `Host` header (`Origin: null` is refused). Requests
    /// without these headers (non-browser clients) pass to the token check.
    #[default]
    SameOrigin,
    /// Like `SameOrigin`, but a present `Origin` must be one of these exact
    /// values (`https://example.com`).
    Allow(Vec<String>),
}

/// Cross-site request forgery protection for state-changing methods (all
/// but `GET`, `HEAD`, `OPTIONS`, `TRACE`).
///
/// With a session: the session's synchronizer token, from the header
/// (default `x-csrf-token`) or the form field (default `csrf`), compared in
/// constant time. Without one (a login form): a signed double-submit cookie
/// (default name `__Host-csrf`, `SameSite=Strict`), so showing the form
/// stores nothing. Requests whose session token came from the header mode
/// are not checked (a browser never attaches that header by itself).
#[derive(Clone, PartialEq, Eq)]
pub struct CsrfConfig {
    enabled: bool,
    header: HeaderName,
    field: String,
    cookie_name: String,
    origin: OriginCheck,
    secret: Option<[u8; 32]>,
}

impl fmt::Debug for CsrfConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CsrfConfig")
            .field("enabled", &self.enabled)
            .field("header", &self.header)
            .field("field", &self.field)
            .field("cookie_name", &self.cookie_name)
            .field("origin", &self.origin)
            .field("secret", &self.secret.map(|_| "<set>"))
            .finish()
    }
}

impl Default for CsrfConfig {
    fn default() -> Self {
        CsrfConfig {
            enabled: true,
            header: HeaderName::from_static("x-csrf-token"),
            field: "csrf".into(),
            cookie_name: "__Host-csrf".into(),
            origin: OriginCheck::SameOrigin,
            secret: None,
        }
    }
}

impl CsrfConfig {
    /// Turns the check on (default) or off.
    pub fn with_enabled(mut self, enabled: bool) -> Self {
        self.enabled = enabled;
        self
    }
    /// The request header carrying the token (default `x-csrf-token`).
    pub fn with_header(mut self, header: HeaderName) -> Self {
        self.header = header;
        self
    }
    /// The form field carrying the token (default `csrf`).
    pub fn with_field(mut self, field: impl Into<String>) -> Self {
        self.field = field.into();
        self
    }
    /// The anonymous double-submit cookie's name (default `__Host-csrf`).
    pub fn with_cookie_name(mut self, name: impl Into<String>) -> Self {
        self.cookie_name = name.into();
        self
    }
    /// The `Origin` / `Sec-Fetch-Site` check (default [`OriginCheck::SameOrigin`]).
    pub fn with_origin_check(mut self, origin: OriginCheck) -> Self {
        self.origin = origin;
        self
    }
    /// The key signing anonymous double-submit tokens. Default: a random key
    /// per layer, so a login form shown before a restart, or by another
    /// instance, fails its check once; give every instance the same secret
    /// behind a load balancer.
    pub fn with_secret(mut self, secret: [u8; 32]) -> Self {
        self.secret = Some(secret);
        self
    }
    /// Whether the check is on.
    pub fn enabled(&self) -> bool {
        self.enabled
    }
    /// The request header carrying the token.
    pub fn header(&self) -> &HeaderName {
        &self.header
    }
    /// The form field carrying the token.
    pub fn field(&self) -> &str {
        &self.field
    }
    /// The anonymous double-submit cookie's name.
    pub fn cookie_name(&self) -> &str {
        &self.cookie_name
    }
    /// The `Origin` / `Sec-Fetch-Site` check.
    pub fn origin_check(&self) -> &OriginCheck {
        &self.origin
    }
    pub(crate) fn secret(&self) -> Option<[u8; 32]> {
        self.secret
    }
}

/// Where API clients put the session token instead of a cookie.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HeaderMode {
    /// `Authorization: Bearer <token>`.
    Bearer,
    /// A named header holding only the token.
    Named(HeaderName),
}

/// Response header carrying a new token to a client that presented its
/// token in a header ([`HeaderMode`]); such clients never get a cookie.
pub const TOKEN_RESPONSE_HEADER: &str = "session-token";

/// Builds the response for a session error (see [`SessionConfig::with_error_handler`]).
pub type ErrorHandler = Arc<dyn Fn(SessionErrorKind) -> Response + Send + Sync>;

/// Called on every contextual-signal change (see [`SessionConfig::with_on_context_change`]).
pub type ContextHook = Arc<dyn Fn(&ContextChange) + Send + Sync>;

/// Everything the layer does beyond the [`SessionManager`](session_store_core::SessionManager)'s
/// policy. Every field has a documented default; [`SessionConfig::validate`]
/// runs when the layer is built.
#[derive(Clone)]
pub struct SessionConfig {
    pub(crate) cookie: CookieConfig,
    pub(crate) remember_cookie: CookieConfig,
    pub(crate) renew_after: Option<Duration>,
    pub(crate) csrf: CsrfConfig,
    pub(crate) body_limit: usize,
    pub(crate) header_mode: Option<HeaderMode>,
    pub(crate) context_policy: ContextPolicy,
    pub(crate) ip_granularity: IpGranularity,
    pub(crate) client_ip: ClientIpSource,
    pub(crate) update_attempts: u32,
    pub(crate) allow_anonymous: bool,
    pub(crate) anonymous_limit: Option<AnonymousLimit>,
    pub(crate) events: Option<Arc<dyn EventSink>>,
    pub(crate) error_handler: Option<ErrorHandler>,
    pub(crate) on_context_change: Option<ContextHook>,
}

impl fmt::Debug for SessionConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SessionConfig")
            .field("cookie", &self.cookie)
            .field("remember_cookie", &self.remember_cookie)
            .field("renew_after", &self.renew_after)
            .field("csrf", &self.csrf)
            .field("body_limit", &self.body_limit)
            .field("header_mode", &self.header_mode)
            .field("context_policy", &self.context_policy)
            .field("ip_granularity", &self.ip_granularity)
            .field("client_ip", &self.client_ip)
            .field("update_attempts", &self.update_attempts)
            .field("allow_anonymous", &self.allow_anonymous)
            .field("anonymous_limit", &self.anonymous_limit)
            .field("events", &self.events)
            .field(
                "error_handler",
                &self.error_handler.as_ref().map(|_| "<fn>"),
            )
            .field(
                "on_context_change",
                &self.on_context_change.as_ref().map(|_| "<fn>"),
            )
            .finish()
    }
}

impl Default for SessionConfig {
    fn default() -> Self {
        SessionConfig {
            cookie: CookieConfig::default(),
            remember_cookie: CookieConfig::default()
                .with_name(crate::session::remember::DEFAULT_REMEMBER_COOKIE),
            renew_after: Some(Duration::from_secs(15 * 60)),
            csrf: CsrfConfig::default(),
            body_limit: 1024 * 1024,
            header_mode: None,
            context_policy: ContextPolicy::Flag,
            ip_granularity: IpGranularity::default(),
            client_ip: ClientIpSource::Connection,
            update_attempts: 64,
            allow_anonymous: true,
            anonymous_limit: None,
            events: None,
            error_handler: None,
            on_context_change: None,
        }
    }
}

impl SessionConfig {
    /// The cookie attributes (default [`CookieConfig::default`]).
    pub fn with_cookie(mut self, cookie: CookieConfig) -> Self {
        self.cookie = cookie;
        self
    }
    /// The "remember me" cookie's attributes (default: name
    /// `__Host-remember`, `Secure`, `HttpOnly`, `SameSite=Lax`, `Path=/`,
    /// no `Domain`). Validated like the session cookie, and its name must
    /// differ from the session and CSRF cookies'. Its `Max-Age` is always
    /// the persistent login's remaining lifetime (capped by a configured
    /// `max_age`). See [`Session::login_remembered`](crate::Session::login_remembered).
    pub fn with_remember_cookie(mut self, cookie: CookieConfig) -> Self {
        self.remember_cookie = cookie;
        self
    }
    /// A logged-in session gets a new token (a renewal rotation, the old token
    /// reaching the new session for the manager's `renewal_grace`) on its
    /// first load once this long has passed since login or the last renewal.
    /// Default 15 minutes; `None` never renews.
    pub fn with_renew_after(mut self, after: Option<Duration>) -> Self {
        self.renew_after = after;
        self
    }
    /// CSRF protection (default [`CsrfConfig::default`]: on).
    pub fn with_csrf(mut self, csrf: CsrfConfig) -> Self {
        self.csrf = csrf;
        self
    }
    /// Largest request body in bytes (default 1 MiB). A larger
    /// `Content-Length` is answered `413` before any CSRF or form logic; a
    /// body that grows past it while read fails with `413` too.
    pub fn with_body_limit(mut self, bytes: usize) -> Self {
        self.body_limit = bytes;
        self
    }
    /// Also accept the token from a header, for API clients (default off:
    /// the cookie only, never a query string).
    pub fn with_header_mode(mut self, mode: Option<HeaderMode>) -> Self {
        self.header_mode = mode;
        self
    }
    /// What a changed client IP or user agent does to a logged-in session
    /// (default [`ContextPolicy::Flag`]).
    pub fn with_context_policy(mut self, policy: ContextPolicy) -> Self {
        self.context_policy = policy;
        self
    }
    /// How much of an IP address must match (default /24 for IPv4, /64 for IPv6).
    pub fn with_ip_granularity(mut self, granularity: IpGranularity) -> Self {
        self.ip_granularity = granularity;
        self
    }
    /// Where the client IP comes from (default the connection).
    pub fn with_client_ip(mut self, source: ClientIpSource) -> Self {
        self.client_ip = source;
        self
    }
    /// Most compare-and-swap attempts of one write before
    /// [`SessionError::Conflict`](crate::SessionError::Conflict) (default 64).
    pub fn with_update_attempts(mut self, attempts: u32) -> Self {
        self.update_attempts = attempts;
        self
    }
    /// Whether a write without a session creates an anonymous one (default
    /// true). When false, only [`Session::login`](crate::Session::login)
    /// creates sessions and anonymous writes fail with
    /// [`SessionError::AnonymousDisabled`](crate::SessionError::AnonymousDisabled):
    /// anonymous visitors cannot put anything in the store.
    pub fn with_anonymous_sessions(mut self, allow: bool) -> Self {
        self.allow_anonymous = allow;
        self
    }
    /// Rate-limits the creation of anonymous sessions (per client network
    /// and in total, see [`AnonymousLimit`]); `None` (the default) does not
    /// limit them. A creation over the limit stores nothing and fails with
    /// [`SessionError::AnonymousRateLimited`](crate::SessionError::AnonymousRateLimited)
    /// (`429`). Logged-in sessions and writes to an existing session are
    /// never limited. `Some(AnonymousLimit::default())` is a reasonable
    /// start for a public site.
    pub fn with_anonymous_limit(mut self, limit: Option<AnonymousLimit>) -> Self {
        self.anonymous_limit = limit;
        self
    }
    /// Where the layer reports its own lifecycle events
    /// ([`Event::ContextChanged`](session_store_core::Event::ContextChanged)).
    /// Default none. The manager does not expose its sink, so pass the one
    /// given to [`SessionManagerBuilder::events`](session_store_core::SessionManagerBuilder::events)
    /// to get every event in one place.
    pub fn with_events(mut self, sink: Arc<dyn EventSink>) -> Self {
        self.events = Some(sink);
        self
    }
    /// Builds the response for every session error, whether the layer
    /// produced it (CSRF, body limit) or a handler returned it. Default: a
    /// short plain-text body with the status of
    /// [`SessionErrorKind::status`].
    pub fn with_error_handler(
        mut self,
        handler: impl Fn(SessionErrorKind) -> Response + Send + Sync + 'static,
    ) -> Self {
        self.error_handler = Some(Arc::new(handler));
        self
    }
    /// Called whenever a logged-in session is loaded from a client whose IP
    /// network or user agent differs from the login's (whatever the policy).
    pub fn with_on_context_change(
        mut self,
        hook: impl Fn(&ContextChange) + Send + Sync + 'static,
    ) -> Self {
        self.on_context_change = Some(Arc::new(hook));
        self
    }
    /// The cookie attributes.
    pub fn cookie(&self) -> &CookieConfig {
        &self.cookie
    }
    /// The "remember me" cookie's attributes.
    pub fn remember_cookie(&self) -> &CookieConfig {
        &self.remember_cookie
    }
    /// The renewal interval.
    pub fn renew_after(&self) -> Option<Duration> {
        self.renew_after
    }
    /// The CSRF configuration.
    pub fn csrf(&self) -> &CsrfConfig {
        &self.csrf
    }
    /// The body limit.
    pub fn body_limit(&self) -> usize {
        self.body_limit
    }
    /// The header mode.
    pub fn header_mode(&self) -> Option<&HeaderMode> {
        self.header_mode.as_ref()
    }
    /// The contextual-signal policy.
    pub fn context_policy(&self) -> ContextPolicy {
        self.context_policy
    }
    /// The IP comparison granularity.
    pub fn ip_granularity(&self) -> IpGranularity {
        self.ip_granularity
    }
    /// The client IP source.
    pub fn client_ip(&self) -> &ClientIpSource {
        &self.client_ip
    }
    /// The compare-and-swap attempt bound.
    pub fn update_attempts(&self) -> u32 {
        self.update_attempts
    }
    /// Whether anonymous sessions are created.
    pub fn anonymous_sessions(&self) -> bool {
        self.allow_anonymous
    }
    /// The limit on creating anonymous sessions.
    pub fn anonymous_limit(&self) -> Option<&AnonymousLimit> {
        self.anonymous_limit.as_ref()
    }

    /// Checks the whole configuration.
    ///
    /// # Errors
    /// [`Error::Config`] naming the field: any [`CookieConfig::validate`]
    /// error (also for the CSRF cookie, which shares path, domain and
    /// `Secure`); a CSRF cookie named like the session cookie; the same for
    /// the remember cookie, which must differ from both; an empty CSRF
    /// field name; a zero renewal interval, body limit or attempt bound; an
    /// IP granularity longer than the address; any
    /// [`AnonymousLimit::validate`] error.
    pub fn validate(&self) -> Result<()> {
        if let Some(limit) = &self.anonymous_limit {
            limit.validate()?;
        }
        self.cookie.validate()?;
        let csrf_cookie = self.cookie.clone().with_name(self.csrf.cookie_name.clone());
        csrf_cookie
            .validate()
            .map_err(|e| Error::Config(format!("csrf {e}")))?;
        if self
            .csrf
            .cookie_name
            .eq_ignore_ascii_case(&self.cookie.name)
        {
            return Err(cfg(
                "csrf cookie_name: must differ from the session cookie name",
            ));
        }
        crate::session::remember::validate_cookie(self)?;
        if self.csrf.field.is_empty() {
            return Err(cfg("csrf field: must not be empty"));
        }
        if self.renew_after.is_some_and(|d| d.is_zero()) {
            return Err(cfg("renew_after: must be greater than zero (None: never)"));
        }
        if self.body_limit == 0 {
            return Err(cfg("body_limit: must be at least one byte"));
        }
        if self.update_attempts == 0 {
            return Err(cfg("update_attempts: must be at least 1"));
        }
        if self.ip_granularity.v4_prefix > 32 || self.ip_granularity.v6_prefix > 128 {
            return Err(cfg(
                "ip_granularity: at most /32 for IPv4 and /128 for IPv6",
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(c: CookieConfig) -> String {
        match SessionConfig::default().with_cookie(c).validate() {
            Err(Error::Config(m)) => m,
            other => panic!("expected Error::Config, got {other:?}"),
        }
    }

    #[test]
    fn defaults_are_valid_and_hardened() {
        SessionConfig::default().validate().unwrap();
        let c = CookieConfig::default();
        assert_eq!(
            c.set_cookie("t", None),
            "__Host-session=t; Path=/; Secure; HttpOnly; SameSite=Lax"
        );
        assert_eq!(
            c.clear_cookie(),
            "__Host-session=; Path=/; Secure; HttpOnly; SameSite=Lax; Max-Age=0"
        );
    }

    #[test]
    fn host_prefix_rules_are_enforced() {
        let m = message(CookieConfig::default().with_domain(Some("example.com".into())));
        assert!(m.contains("must not have a Domain"), "{m}");
        let m = message(CookieConfig::default().with_secure(false));
        assert!(m.contains("requires Secure"), "{m}");
        let m = message(CookieConfig::default().with_path("/app"));
        assert!(m.contains("requires Path=/"), "{m}");
        let m = message(
            CookieConfig::default()
                .with_name("__Secure-s")
                .with_secure(false),
        );
        assert!(m.contains("__Secure-"), "{m}");
    }

    #[test]
    fn other_attributes_are_validated() {
        let plain = || CookieConfig::default().with_name("sid");
        plain().validate().unwrap();
        assert!(message(plain().with_name("a b")).contains("HTTP token"));
        assert!(message(plain().with_name("")).contains("HTTP token"));
        assert!(message(plain().with_path("x")).contains("path"));
        assert!(message(plain().with_path("/a;b")).contains("path"));
        assert!(message(plain().with_domain(Some("a;b".into()))).contains("domain"));
        assert!(
            message(plain().with_secure(false).with_same_site(SameSite::None))
                .contains("SameSite=None")
        );
        assert!(message(plain().with_max_age(Some(Duration::ZERO))).contains("max_age"));
        let with_domain = plain().with_domain(Some("example.com".into()));
        assert_eq!(
            with_domain.set_cookie("t", Some(Duration::from_secs(60))),
            "sid=t; Path=/; Domain=example.com; Secure; HttpOnly; SameSite=Lax; Max-Age=60"
        );
    }

    #[test]
    fn layer_fields_are_validated() {
        let m = |c: SessionConfig| match c.validate() {
            Err(Error::Config(m)) => m,
            other => panic!("{other:?}"),
        };
        assert!(m(SessionConfig::default().with_body_limit(0)).contains("body_limit"));
        assert!(m(SessionConfig::default().with_update_attempts(0)).contains("update_attempts"));
        assert!(
            m(SessionConfig::default().with_renew_after(Some(Duration::ZERO)))
                .contains("renew_after")
        );
        assert!(m(SessionConfig::default()
            .with_csrf(CsrfConfig::default().with_cookie_name("__Host-session")))
        .contains("differ"));
        assert!(
            m(SessionConfig::default().with_ip_granularity(IpGranularity {
                v4_prefix: 33,
                v6_prefix: 64
            }))
            .contains("ip_granularity")
        );
    }
}
