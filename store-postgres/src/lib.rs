//! # session-store-postgres
//!
//! A [`SessionBackend`](session_store_core::SessionBackend) on PostgreSQL,
//! through an `sqlx` connection pool.
//!
//! ```no_run
//! # async fn demo() -> session_store_core::Result<()> {
//! use session_store_postgres::PostgresConfig;
//!
//! // or PostgresConfig::new("postgres://...").with_schema("auth")...
//! let store = PostgresConfig::from_env()?.build().await?;
//! store.migrate().await?; // explicit, idempotent
//! # Ok(()) }
//! ```
//!
//! ## Capabilities
//! - Full contract ([`Capabilities::full`](session_store_core::Capabilities::full)),
//!   checked by the public conformance suite against a real server, plain and
//!   under encryption.
//! - **One statement per operation**, each a cached prepared statement, one
//!   round trip: create is `INSERT ... ON CONFLICT DO NOTHING` (no overwrite,
//!   ever); load one primary-key `SELECT`; save a compare-and-swap `UPDATE`
//!   on the version of a live session; touch one `UPDATE`; rotation one
//!   statement with data-modifying CTEs (row lock on the old session, insert
//!   of the successor, delete or forwarder), so concurrent rotations of one
//!   session produce exactly one successor.
//! - **Read-time expiry** against the caller's `now` (an `expires_at` column
//!   in milliseconds), whether or not cleanup ran.
//! - **Cleanup in bounded batches** with `FOR UPDATE SKIP LOCKED`: any number
//!   of application servers can run it at once without deadlocks, waits or
//!   double counting.
//! - **User index** (`user_id` index) for listing and revoking a user's
//!   sessions; `expires_at` index for cleanup.
//! - **Explicit, idempotent [`PostgresStore::migrate`]** with a recorded
//!   schema version; a database with a newer version is refused with
//!   [`Error::SchemaTooNew`](session_store_core::Error::SchemaTooNew) and left
//!   untouched. Schema and table names are configurable and validated.
//! - Optional `UNLOGGED` table ([`PostgresConfig::with_unlogged`]): faster writes,
//!   but truncated after a crash and not replicated.
//! - **Errors say whether a retry can help**: pool timeouts, I/O, lost
//!   connections and server shutdowns are retryable
//!   [`Error::Backend`](session_store_core::Error::Backend)s; an unreachable
//!   server is an error, never "no session". Every backend error names the
//!   backend (`postgres`), the operation (`connect`, `migrate`, or the
//!   [`SessionBackend`](session_store_core::SessionBackend) method) and the
//!   URL without its password ([`PostgresStore::endpoint`]).
//! - **One operation deadline**
//!   ([`PostgresConfig::with_operation_timeout`], default 2 s,
//!   `SESSION_STORE_POSTGRES_OPERATION_TIMEOUT_MS`): pool acquire (connecting
//!   included) plus the statement. When a server is unreachable or stalled
//!   the operation fails with a retryable
//!   [`Error::Backend`](session_store_core::Error::Backend) within it, and the
//!   connection involved is closed. Every backend has this setting with the
//!   same meaning and default; `tests/outage.rs` checks it with a paused
//!   (`SIGSTOP`) private server, for warm connections and fresh connects.
//! - **No pings**: the store keeps the connections it used warm in a LIFO
//!   stack on top of the sqlx pool, so back-to-back operations reuse one warm
//!   server process and no operation pays for a health-check round trip
//!   (see [`PostgresConfig`]); a stale connection fails one operation
//!   (retryable) and is replaced. A primary-key load costs about what the
//!   raw `SELECT` on a dedicated connection costs.
//! - Only storage keys (hashes of tokens) reach the database; the URL's
//!   password never appears in `Debug` output or errors.
//!
//! ## Deployment notes
//! - Run [`cleanup_expired`](session_store_core::SessionBackend::cleanup_expired)
//!   periodically (for example every minute, in batches of a few thousand,
//!   looping while a batch comes back full) on one or more servers.
//! - Behind PgBouncer in transaction mode, sqlx's per-connection prepared
//!   statements need PgBouncer 1.21+ (`max_prepared_statements`), and the
//!   startup `statement_timeout` option needs `ignore_startup_parameters =
//!   options` or [`PostgresConfig::with_statement_timeout`]`(None)`.
//! - A write whose reply is lost (timeout, connection cut) may or may not have
//!   been applied, as the retryable error implies: retrying a create with the
//!   same key may report `AlreadyExists` because the first attempt landed,
//!   and retrying a save may report `Conflict`. Reload before retrying.
//!
//! ## Testing
//! The tests need a server: `store-postgres/scripts/postgres-service.sh`
//! makes sure one answers on `127.0.0.1:5432` with a database `test` for user
//! `postgres` (installing and starting PostgreSQL if needed). Tests build
//! their stores with [`PostgresConfig::from_env`] (the workspace's
//! `.cargo/config.toml` sets `SESSION_STORE_POSTGRES_URL` to that server
//! unless the environment already does), use a random schema each and drop
//! it afterwards; without a server they fail and say what to start, unless
//! `SESSION_STORE_SKIP_POSTGRES=1`. The outage tests run private PostgreSQL
//! instances of their own.
//!
//! Configuration: [`PostgresConfig::new`] or [`PostgresConfig::from_env`]
//! (`SESSION_STORE_POSTGRES_*` variables), `with_*` setters, then
//! [`PostgresConfig::build`].
//! The table layout is described in the [`schema`] module.
#![forbid(unsafe_code)]
#![deny(missing_docs)]
#![cfg_attr(docsrs, feature(doc_cfg))]

mod config;
pub mod schema;
mod store;

pub use config::{
    validate_identifier, PostgresConfig, DEFAULT_OPERATION_TIMEOUT, DEFAULT_SCHEMA, DEFAULT_TABLE,
    ENV_PREFIX,
};
pub use schema::{META_TABLE, SCHEMA_VERSION};
pub use store::PostgresStore;
