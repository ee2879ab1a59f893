//! # session-store-axum
//!
//! Sessions for axum as a `tower::Layer` over a
//! [`SessionManager`](session_store_core::SessionManager): any backend of
//! this workspace, the [`Encrypted`](session_store_core::Encrypted) wrapper
//! included, with every guarantee of the manager kept end to end.
//!
//! ```
//! use std::sync::Arc;
//! use axum::{routing::get, Router};
//! use session_store_axum::{Session, SessionConfig, SessionError, SessionLayer};
//! use session_store_core::{MemoryStore, SessionManager};
//!
//! async fn count(session: Session) -> Result<String, SessionError> {
//!     let n = session.update("visits", |n: &mut u64| { *n += 1; *n }).await?;
//!     Ok(format!("visit {n}"))
//! }
//!
//! # fn main() -> Result<(), session_store_core::Error> {
//! let manager = SessionManager::new(Arc::new(MemoryStore::new())); // or SqliteStore, RedisStore, Encrypted<..>
//! let app: Router = Router::new()
//!     .route("/", get(count))
//!     .layer(SessionLayer::new(manager, SessionConfig::default())?);
//! // axum::serve(listener, app.into_make_service_with_connect_info::<std::net::SocketAddr>())
//! # let _ = app;
//! # Ok(()) }
//! ```
//!
//! ## What a request costs
//! A handler that never calls a [`Session`] method causes no store I/O and
//! no `Set-Cookie`. The first call loads the session once (with the
//! manager's throttled touch). An anonymous session is created only by a
//! first write; [`SessionConfig::with_anonymous_sessions`]`(false)` leaves
//! creating sessions to [`Session::login`], and
//! [`SessionConfig::with_anonymous_limit`] rate-limits their creation per
//! client network and in total ([`AnonymousLimit`]: over the limit nothing
//! is stored and the write fails with `429`). The login form's CSRF token
//! ([`Session::csrf_token`] without a session) is a signed double-submit
//! cookie, so showing a login form stores nothing.
//!
//! ## Guarantees
//! - **No lost updates**: every write ([`Session::insert`], [`Session::remove`],
//!   [`Session::update`], [`Session::update_state`], flash values) is a
//!   compare-and-swap; on a conflict
//!   the session is reloaded and the change re-applied (bounded, then
//!   [`SessionError::Conflict`]). 64 concurrent increments leave 64 on every
//!   backend (tested over HTTP on SQLite, encrypted SQLite, PostgreSQL,
//!   MariaDB and Redis).
//! - **Rotation at the right moments**: [`Session::login`] (the pre-login
//!   token dies at once, both timers restart, `auth_time`, client IP and
//!   user agent recorded, a new CSRF token), [`Session::elevate`]
//!   (privilege change, absolute deadline kept), periodic renewal after
//!   [`SessionConfig::with_renew_after`] with the manager's renewal grace
//!   window (concurrent requests carrying the old token all land on one
//!   successor and all get its cookie).
//! - **Logout** deletes server-side before the cookie is cleared with the
//!   same name, path and attributes; [`Session::logout_everywhere`],
//!   [`Session::logout_other_devices`], [`Session::devices`] and
//!   [`Session::revoke`] cover "your devices" pages.
//! - **Fail closed**: a store failure is `503` ([`SessionError::Unavailable`]),
//!   never an anonymous request, a new session or a logout. Failures,
//!   exhausted retries and CSRF refusals are logged through `tracing` with
//!   the key's short hash, never a token.
//! - **Cookies**: `__Host-session`, `Secure`, `HttpOnly`, `SameSite=Lax`,
//!   `Path=/`, no `Domain`, no `Max-Age` by default; configurable and
//!   validated ([`CookieConfig::validate`]). The `Cookie` header is read
//!   tolerantly (other cookies' bytes, quotes, empty pairs, several
//!   headers); of two session cookies the first well-formed one wins.
//!   Every response that sets or clears a cookie carries
//!   `Cache-Control: no-store`. The token is never read from a query string;
//!   [`HeaderMode`] (off by default) reads it from `Authorization: Bearer`
//!   or a named header for API clients.
//! - **Remember me** ([`Session::login_remembered`]): a persistent login
//!   (a token family of the manager, rotated on every use, reuse revoking
//!   the family) in a second cookie, `__Host-remember`
//!   ([`SessionConfig::with_remember_cookie`]), whose `Max-Age` is the
//!   family's remaining lifetime. A request without a live session but with
//!   that cookie gets a new logged-in session ([`Session::remembered`] is
//!   true: ask for the password before sensitive actions) and both cookies
//!   again; a refused, malformed or oversized remember cookie is cleared
//!   (malformed ones without store I/O); a store failure is `503` and keeps
//!   it. Logout, logout everywhere and revoking the persistent login's
//!   handle end it. API clients get a refresh token
//!   ([`Session::refresh_token`]) and exchange it at
//!   [`SessionLayer::refresh_route`] (tested over HTTP on the same backends).
//! - **CSRF** for state-changing methods, in the layer (see [`SessionLayer`]).
//! - **Contextual signals**: a logged-in session loaded from another IP
//!   network or user agent than at login is reported ([`ContextPolicy`]),
//!   and raised as [`Event::ContextChanged`](session_store_core::Event::ContextChanged)
//!   through [`SessionConfig::with_events`].
//! - **Monitoring**: every load passes the client IP to the manager
//!   ([`SessionManager::load_token_from`](session_store_core::SessionManager::load_token_from)),
//!   so [`Event::LookupMiss`](session_store_core::Event::LookupMiss) carries
//!   it for counting misses per client.
#![forbid(unsafe_code)]
#![deny(missing_docs)]
#![cfg_attr(docsrs, feature(doc_cfg))]

mod config;
mod cookie;
mod csrf;
mod error;
#[doc(hidden)]
pub mod fuzzing;
mod layer;
mod limit;
mod session;
mod signals;

pub use config::{
    ContextHook, CookieConfig, CsrfConfig, ErrorHandler, HeaderMode, OriginCheck, SameSite,
    SessionConfig, MAX_COOKIE_BYTES, TOKEN_RESPONSE_HEADER,
};
pub use error::{SessionError, SessionErrorKind};
pub use layer::{SessionLayer, SessionService};
pub use limit::{AnonymousLimit, Rate};
pub use session::remember::{RefreshGrant, REFRESH_TOKEN_HEADER};
pub use session::Session;
pub use signals::{
    ClientIpSource, ContextChange, ContextPolicy, IpGranularity, MAX_USER_AGENT_BYTES,
};
