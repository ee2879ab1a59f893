//! # session-store-example-app
//!
//! The reference web application: axum with the `session-store-axum` layer
//! over a [`SessionManager`](session_store_core::SessionManager), showing
//! every guarantee of the workspace end to end. The layer owns the request
//! flow (cookies, CSRF, loading, renewal, rotation); what is left here is
//! the application: pages, the password check and the devices page.
//! [`router`] builds the application over any manager; the binary
//! (`main.rs`) opens the store named by one URL ([`store_from_env`]:
//! `SESSION_STORE_URL`, parsed by `session-store-url` like the
//! `session-store` command's `--url`), listens on loopback only, and serves
//! [`admin_router`] (`/metrics`, `/healthz`, `/readyz`) on a second loopback
//! address.
//!
//! ```no_run
//! # async fn demo() -> session_store_core::Result<()> {
//! use std::net::SocketAddr;
//! use std::sync::Arc;
//! use session_store_core::SessionManager;
//! use session_store_metrics::MetricsEvents;
//!
//! let store = session_store_example_app::store_from_env().await?;
//! let manager = SessionManager::builder(store.backend.clone())
//!     .policy(session_store_example_app::default_policy())
//!     .events(Arc::new(MetricsEvents))
//!     .build()?;
//! let app = session_store_example_app::router(manager);
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:3000").await.expect("bind");
//! axum::serve(listener, app.into_make_service_with_connect_info::<SocketAddr>())
//!     .await
//!     .expect("serve");
//! # Ok(()) }
//! ```
//!
//! ## Configuration
//!
//! | variable | meaning | default |
//! | --- | --- | --- |
//! | `SESSION_STORE_URL` | the store: `sqlite://PATH`, `sled://PATH`, `redis://…`, `rediss://…` (feature `tls`), `redis+cluster://…`, `postgres://…`, `mysql://…`, namespace as `?table=`/`?prefix=` | [`DEFAULT_STORE_URL`] |
//! | `SESSION_STORE_<BACKEND>_*` | the backend's other settings (see [`store_from_vars`]) | the backend's |
//! | `SESSION_STORE_KEYS_FILE` / `SESSION_STORE_KEYS` | encryption keys, `ID=HEX` lines, primary first (the `session-store` command's format, so `session-store rekey` works on the app's store) | no encryption |
//! | `EXAMPLE_APP_BIND` | the application's address (loopback only) | [`DEFAULT_BIND`] |
//! | `EXAMPLE_APP_ADMIN_BIND` | the admin address (loopback only) | [`DEFAULT_ADMIN_BIND`] |
//! | `EXAMPLE_APP_READY_TIMEOUT_MS` | bound on `/readyz`'s round trip to the store | 1000 |
//!
//! `EXAMPLE_APP_BACKEND` and `EXAMPLE_APP_ENCRYPTION_KEY` of earlier
//! versions are refused with a message naming their replacement.
//!
//! ## Admin endpoints
//!
//! On `EXAMPLE_APP_ADMIN_BIND`, never through the session layer (no cookie,
//! no session I/O):
//! - `GET /metrics`: Prometheus text. The store is wrapped in
//!   [`Metered`](session_store_metrics::Metered) (`session_store_operation_seconds`
//!   histograms, errors by kind and retryability, lookups, conflicts,
//!   decryption failures; label `store` = the backend) and the manager
//!   reports its events to [`MetricsEvents`](session_store_metrics::MetricsEvents)
//!   (`session_store_events_total{event="rotated",reason="login"}`, …).
//! - `GET /healthz`: 200 while the process answers; no I/O.
//! - `GET /readyz`: 200 when the store answers one bounded round trip with
//!   the expected schema, 503 otherwise (take the instance out of the pool).
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
//! Application: `GET /`, `GET /login`, `POST /login` (`username`, `password`, `csrf`),
//! `POST /logout`, `POST /logout-everywhere`, `POST /logout-others`,
//! `GET /devices`, `GET /devices.json`, `POST /devices/revoke` (`handle`),
//! `GET /session.json`, `POST /counter`, `POST /privilege`. Admin (own
//! address): `GET /metrics`, `GET /healthz`, `GET /readyz`.
#![forbid(unsafe_code)]
#![deny(missing_docs)]
#![cfg_attr(docsrs, feature(doc_cfg))]

mod admin;
mod app;
mod config;

pub use admin::{admin_router, install_prometheus, OPERATION_BUCKETS};
pub use app::{
    default_policy, router, router_with, AppOptions, COOKIE_NAME, CSRF_FIELD, CSRF_HEADER,
};
pub use config::{
    admin_bind_from_env, bind_from_env, ready_timeout_from_env, store_from_env, store_from_vars,
    AppStore, DEFAULT_ADMIN_BIND, DEFAULT_BIND, DEFAULT_READY_TIMEOUT, DEFAULT_STORE_URL,
};
