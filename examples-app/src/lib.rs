//! # session-store-example-app
//!
//! The reference web application: axum with the `session-store-axum` layer
//! over a [`SessionManager`](session_store_core::SessionManager), showing
//! every guarantee of the workspace end to end. The layer owns the request
//! flow (cookies, CSRF, loading, renewal, rotation); what is left here is
//! the application: pages, the password check and the devices page.
//! [`router`] builds the application over any manager; the binary
//! (`main.rs`) picks the backend from the environment
//! ([`backend_from_env`]) and listens on loopback only.
//!
//! ```no_run
//! # async fn demo() -> session_store_core::Result<()> {
//! use std::net::SocketAddr;
//! use session_store_core::SessionManager;
//!
//! let backend = session_store_example_app::backend_from_env().await?;
//! let manager = SessionManager::builder(backend)
//!     .policy(session_store_example_app::default_policy())
//!     .build()?;
//! let app = session_store_example_app::router(manager);
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:3000").await.expect("bind");
//! axum::serve(listener, app.into_make_service_with_connect_info::<SocketAddr>())
//!     .await
//!     .expect("serve");
//! # Ok(()) }
//! ```
//!
//! ## What it shows
//! - **Login rotates the token** ([`RotateReason::Login`](session_store_core::RotateReason)):
//!   the pre-login token is deleted at once (a planted cookie is useless
//!   afterwards), the user is bound, and the authentication time, client IP
//!   and user agent are recorded; the CSRF token is regenerated.
//! - **Logout** deletes the session server-side and expires the cookie with
//!   the same name, path and attributes (`Max-Age=0`). **Log out
//!   everywhere** and **log out other devices**.
//! - **Your devices** (`/devices`, `/devices.json`): created, last seen, IP
//!   and user agent of each live session, revoked through the opaque
//!   [`SessionHandle`](session_store_core::SessionHandle), never a token.
//! - **CSRF**: a random per-session synchronizer token in the session data,
//!   required (form field `csrf` or header `x-csrf-token`) on every POST,
//!   compared in constant time; 403 otherwise. The login form needs no
//!   stored session: its token is a signed double-submit cookie
//!   (`__Host-csrf`), so showing it stores nothing.
//! - **Cookie**: `__Host-session=<token>; Path=/; Secure; HttpOnly;
//!   SameSite=Lax`, no `Domain`, no `Max-Age` unless configured
//!   ([`AppOptions::cookie_max_age`], capped by the absolute timeout); every
//!   response carries `Cache-Control: no-store`. The token is read from the
//!   `Cookie` header only, never from a query string. No session is created
//!   before something is written (a login, a counter increment).
//! - **Expiry**: idle and absolute timeouts from the manager's policy; a
//!   logged-in session is renewed after [`AppOptions::renew_after`] and the
//!   old token keeps reaching it during the policy's renewal grace window,
//!   each such response re-sending the current cookie.
//! - **Fail closed**: a failing store answers 503, never "logged out" and
//!   never success.
//!
//! ## Deployment notes
//! - The recorded IP is the TCP peer. Behind a reverse proxy that is the
//!   proxy: configure `session_store_axum::ClientIpSource::TrustedHeader`
//!   (only behind a proxy you trust).
//! - `__Host-` cookies are `Secure`: browsers only store them over https, so
//!   serve the app through a TLS-terminating proxy (it binds loopback only).
//! - The demo users are a fixed list ([`AppOptions::users`]); a real
//!   application checks a password hash and rate-limits login attempts.
//!
//! ## Routes
//! `GET /`, `GET /login`, `POST /login` (`username`, `password`, `csrf`),
//! `POST /logout`, `POST /logout-everywhere`, `POST /logout-others`,
//! `GET /devices`, `GET /devices.json`, `POST /devices/revoke` (`handle`),
//! `GET /session.json`, `POST /counter`, `POST /privilege`.
#![forbid(unsafe_code)]
#![deny(missing_docs)]
#![cfg_attr(docsrs, feature(doc_cfg))]

mod app;
mod config;

pub use app::{
    default_policy, router, router_with, AppOptions, COOKIE_NAME, CSRF_FIELD, CSRF_HEADER,
};
pub use config::{
    backend_from_env, backend_from_vars, bind_from_env, parse_key, BackendKind, DEFAULT_BIND,
    DEFAULT_SQLITE_PATH,
};
