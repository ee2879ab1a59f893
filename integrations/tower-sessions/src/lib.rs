//! # session-store-tower-sessions
//!
//! A [`tower_sessions_core::SessionStore`] (tower-sessions 0.15) over any
//! [`SessionBackend`](session_store_core::SessionBackend) of this workspace:
//! SQLite, Redis, PostgreSQL, sled, the in-memory store, and any of them
//! inside the [`Encrypted`](session_store_core::Encrypted) wrapper.
//!
//! ```
//! use std::sync::Arc;
//! use session_store_core::MemoryStore; // or SqliteStore, RedisStore, Encrypted<...>
//! use session_store_tower_sessions::TowerSessionStore;
//! use tower_sessions::{cookie::SameSite, Expiry, SessionManagerLayer};
//!
//! let store = TowerSessionStore::new(Arc::new(MemoryStore::new()));
//! let layer = SessionManagerLayer::new(store)
//!     .with_name("__Host-session")
//!     .with_secure(true)
//!     .with_same_site(SameSite::Lax)
//!     .with_expiry(Expiry::OnInactivity(time::Duration::minutes(30)));
//! // axum::Router::new().route(...).layer(layer)
//! # let _ = layer;
//! ```
//!
//! ## The typed in-memory path
//! [`TowerSessionStore::in_memory`] keeps the sessions in this process as
//! the maps tower-sessions hands over, never encoded to JSON nor decoded,
//! with the guarantees below: hashed keys, create-if-absent,
//! compare-and-swap saves, expiry by the adapter's clock, absolute timeout,
//! size limit, per-user revocation.
//! The data is plaintext in process memory, nothing else can read the
//! sessions (no `SessionManager`, no CLI) and a restart loses them; for
//! encryption use the backend path over `Encrypted<MemoryStore>`.
//!
//! ## Configuration
//! One [`AdapterConfig`](session_store_core::AdapterConfig), from
//! `session-store-core` and shared with the actix-session adapter: the
//! absolute timeout, the data size limit and the data field naming the user.
//! [`TowerSessionStore::with_config`] takes it, built in code or from the
//! `SESSION_STORE_ADAPTER_*` variables listed in
//! [`AdapterConfig::from_env`](session_store_core::AdapterConfig::from_env):
//!
//! ```
//! # use std::sync::Arc;
//! # use session_store_core::MemoryStore;
//! use session_store_core::AdapterConfig;
//! use session_store_tower_sessions::TowerSessionStore;
//!
//! let store = TowerSessionStore::new(Arc::new(MemoryStore::new()))
//!     .with_config(AdapterConfig::from_env()?.with_user_id_key("user"))?;
//! # let _ = store;
//! # Ok::<(), session_store_core::Error>(())
//! ```
//!
//! With tower-sessions, the absolute timeout counts from the creation of the
//! record under its current id: `cycle_id` creates a new record, so it
//! restarts the count.
//!
//! ## Capabilities: what holds
//! - **Hashed keys at rest.** The tower-sessions [`Id`](tower_sessions_core::session::Id)
//!   is the secret (the cookie value). The backend only ever sees
//!   [`storage_key_for`]`(id)`: SHA-256 of the id's canonical text form. A
//!   tower-sessions id is never a valid `SessionToken` (22 characters, not
//!   43) and is never rotated with slot affinity, so the id's whole text is
//!   what is hashed. In process memory the adapter keeps, for up to 1024
//!   recently loaded or created sessions, the id next to its storage key
//!   and what the load carried, so that their next load and their save
//!   need not hash the id again (a slot answers only for the exact id it
//!   holds); none of it is logged or shown by `Debug`.
//! - **Create never overwrites.** `create` inserts with the backend's
//!   insert-if-absent `create`; on `AlreadyExists` it draws a fresh `Id`
//!   and tries again (at most [`CREATE_ATTEMPTS`] times, then an error).
//! - **Strict mode.** An unknown or expired id in a cookie never becomes a
//!   session: tower-sessions then creates a record under a fresh id of its own.
//! - **One round trip per save, and no lost update.** `load` leaves the
//!   stored version in the record (under [`LOADED_FIELD`], never written to
//!   the backend) and `save` is one compare-and-swap on it. A session that
//!   was saved by a concurrent request since this one loaded it, or deleted
//!   (logout, `flush`, `cycle_id`, [`TowerSessionStore::logout_user`]),
//!   revoked or expired, is not written: `save` fails with an error that
//!   [`is_conflict`] recognizes, and the middleware answers 500 without
//!   setting a cookie. A handler that calls `Session::save` itself sees the
//!   conflict and may reload (`Session::load`) and apply its change again.
//!   After `Session::clear` the record carries no version and `save` reads
//!   the stored one first (two round trips, and the last writer wins).
//! - **Expiry enforced on read**, by the adapter's clock, whether or not
//!   cleanup ran: the idle deadline is the expiry date tower-sessions asks
//!   for (`Expiry::OnInactivity` moves it on each save).
//! - **An absolute timeout**, which tower-sessions itself does not have
//!   ([`with_absolute_timeout`](session_store_core::AdapterConfig::with_absolute_timeout),
//!   default 12 h from creation): no expiry date is stored past it.
//! - **Cleanup**: [`ExpiredDeletion`](tower_sessions_core::ExpiredDeletion)
//!   is implemented with the backend's bounded `cleanup_expired`.
//! - **Errors fail closed**: an unreachable backend is an error, never "no
//!   session"; undecodable or undecryptable data is a decode error.
//! - **Per-user revocation** when a data field names the user
//!   ([`with_user_id_key`](session_store_core::AdapterConfig::with_user_id_key)):
//!   [`TowerSessionStore::logout_user`] and [`TowerSessionStore::list_user`].
//!
//! ## What does not hold (tower-sessions' own semantics)
//! - **Ids are generated by tower-sessions**, not by this workspace:
//!   `Id::default()` is 128 bits from `rand`'s thread-local CSPRNG (seeded
//!   from the OS), not the 256 bits of `SessionToken`. 128 bits meets OWASP
//!   ASVS 7.2.3.
//! - **`cycle_id` is delete-then-create, not an atomic rotation.** The old id
//!   is deleted first (so it is dead at once), then the data is stored under
//!   a new id at the end of the request. A failure in between leaves the user
//!   with no session (fail closed), never with two. The new record is a new
//!   session for the backend: its absolute deadline restarts, which is right
//!   after a login but also happens after a privilege change. There is no
//!   renewal grace window.
//! - **The carried version is in the session data**: `Session::get_value`
//!   of [`LOADED_FIELD`] returns it, and `Session::is_empty` is false for a
//!   loaded session whose application data is empty.
//! - No client metadata (IP, user agent) and no auth time are recorded; use
//!   `session_store_core::SessionManager` directly (see the example app) for
//!   "your devices" pages, CSRF tokens and login rotation with `auth_time`.
//! - Cookie attributes are tower-sessions' configuration: use
//!   `with_name("__Host-…")`, `with_secure(true)`, `with_same_site(Lax)`, no
//!   domain, and keep the default `HttpOnly`.
#![forbid(unsafe_code)]
#![deny(missing_docs)]
#![cfg_attr(docsrs, feature(doc_cfg))]

mod carried;
#[doc(hidden)]
pub mod fuzzing;
mod json;
mod store;
mod typed;

pub use session_store_core::LOADED_FIELD;
pub use store::{is_conflict, storage_key_for, TowerSessionStore, CREATE_ATTEMPTS};
