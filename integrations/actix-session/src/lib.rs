//! # session-store-actix
//!
//! An [`actix_session::storage::SessionStore`] (actix-session 0.11) over any
//! [`SessionBackend`](session_store_core::SessionBackend) of this workspace:
//! SQLite, Redis, PostgreSQL, sled, the in-memory store, and any of them
//! inside the [`Encrypted`](session_store_core::Encrypted) wrapper.
//!
//! ```
//! use std::sync::Arc;
//! use actix_session::SessionMiddleware;
//! use actix_web::cookie::{Key, SameSite};
//! use session_store_actix::ActixSessionStore;
//! use session_store_core::MemoryStore; // or SqliteStore, RedisStore, Encrypted<...>
//!
//! let store = ActixSessionStore::new(Arc::new(MemoryStore::new()));
//! let key = Key::generate(); // load a fixed key in production
//! let middleware = SessionMiddleware::builder(store, key)
//!     .cookie_name("__Host-session".into())
//!     .cookie_secure(true)
//!     .cookie_same_site(SameSite::Lax)
//!     .build();
//! // App::new().wrap(middleware) (clone the store into the HttpServer factory)
//! # let _ = middleware;
//! ```
//!
//! ## Configuration
//! One [`AdapterConfig`](session_store_core::AdapterConfig), from
//! `session-store-core` and shared with the tower-sessions adapter: the
//! absolute timeout, the data size limit and the data field naming the user.
//! [`ActixSessionStore::with_config`] takes it, built in code or from the
//! `SESSION_STORE_ADAPTER_*` variables listed in
//! [`AdapterConfig::from_env`](session_store_core::AdapterConfig::from_env):
//!
//! ```
//! # use std::sync::Arc;
//! # use session_store_core::MemoryStore;
//! use session_store_actix::ActixSessionStore;
//! use session_store_core::AdapterConfig;
//!
//! let store = ActixSessionStore::new(Arc::new(MemoryStore::new()))
//!     .with_config(AdapterConfig::from_env()?.with_user_id_key("user"))?;
//! # let _ = store;
//! # Ok::<(), session_store_core::Error>(())
//! ```
//!
//! With actix-session, the absolute timeout counts from the creation of the
//! record under its current key: `Session::renew` saves the state under a
//! new key, so it restarts the count.
//!
//! ## Capabilities: what holds
//! - **Keys are our tokens, hashed at rest.** actix-session lets the store
//!   generate session keys: `save` generates a 256-bit
//!   [`SessionToken`](session_store_core::SessionToken) from the OS CSPRNG
//!   and returns its text as the key. The backend only ever sees its
//!   [`storage_key`](session_store_core::SessionToken::storage_key) (a
//!   SHA-256 hash of the token).
//!   A cookie value that is not a well-formed token is "no session" before
//!   any I/O.
//! - **Create never overwrites.** `save` inserts with the backend's
//!   insert-if-absent `create` and draws a new token on `AlreadyExists`
//!   (at most [`CREATE_ATTEMPTS`] times, then an error).
//! - **Strict mode.** An unknown or expired key never becomes a session: the
//!   middleware then calls `save`, which generates a new key.
//! - **One round trip per update, and no lost update.** `load` leaves the
//!   stored version in the state (under [`LOADED_FIELD`], never written to
//!   the backend) and `update` is one compare-and-swap on it. A session
//!   saved by a concurrent request since this one loaded it, or deleted
//!   (purge, renew, [`ActixSessionStore::logout_user`]), revoked or expired,
//!   is not written, and is not re-created under a new key either
//!   (actix-session's own Redis store does that, which would carry a login
//!   into a revoked session): `update` fails with
//!   [`Error::Conflict`](session_store_core::Error::Conflict) as the error's
//!   source and the middleware answers 500. After `Session::clear` the state
//!   carries no version and `update` reads the stored one first (two round
//!   trips, and the last writer wins).
//! - **Expiry enforced on read** by the adapter's clock, whether or not
//!   cleanup ran: the idle deadline is now + the TTL actix-session passes;
//!   `update_ttl` (with `TtlExtensionPolicy::OnEveryRequest`) is the
//!   backend's `touch`, which never moves a deadline backwards.
//! - **An absolute timeout**, which actix-session itself does not have
//!   ([`with_absolute_timeout`](session_store_core::AdapterConfig::with_absolute_timeout),
//!   default 12 h from creation).
//! - **Cleanup**: [`ActixSessionStore::cleanup_expired`] (actix-session has
//!   no hook for it; run it periodically).
//! - **Errors fail closed**: backend, decryption and decode errors are
//!   `LoadError::Other` (500), never "no session" and never an empty
//!   session that a later update would write over the damaged one.
//! - **Per-user revocation** when a state field names the user
//!   ([`with_user_id_key`](session_store_core::AdapterConfig::with_user_id_key);
//!   actix-session stores each value JSON-encoded, so the field holds a JSON
//!   string).
//!
//! ## What does not hold (actix-session's own semantics)
//! - **`Session::renew` is delete-then-create, not an atomic rotation.** The
//!   middleware deletes the old key, then saves the state under a new key.
//!   A failure in between leaves the user with no session (fail closed),
//!   never with two. The new key is a new session for the backend: its
//!   absolute deadline restarts (right after a login, also after a privilege
//!   change). There is no renewal grace window.
//! - **The carried version is in the session state**: `Session::entries`
//!   lists [`LOADED_FIELD`]. actix-session has no way for a handler to save
//!   and retry, so a request that lost a race answers 500 and the client
//!   retries.
//! - The cookie normally carries the key encrypted or signed by
//!   actix-session (`CookieContentSecurity`); this adapter only sees the key.
//! - actix-web runs each worker on its own single-threaded runtime. A
//!   backend that opens connections lazily (the PostgreSQL pool, the Redis
//!   connection manager) ties each connection to the runtime that opened it;
//!   that is fine while the server runs, but after the server stopped those
//!   connections fail (retryable backend errors): run any final clean-up
//!   through the backend before stopping the server.
//! - No client metadata (IP, user agent) or auth time is recorded; use
//!   `session_store_core::SessionManager` directly (see the example app) for
//!   "your devices" pages, CSRF tokens and login rotation with `auth_time`.
#![forbid(unsafe_code)]
#![deny(missing_docs)]
#![cfg_attr(docsrs, feature(doc_cfg))]

mod store;

pub use session_store_core::LOADED_FIELD;
pub use store::{storage_key_for, ActixSessionStore, CREATE_ATTEMPTS};
