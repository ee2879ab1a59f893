//! # session-store-mysql
//!
//! A [`SessionBackend`](session_store_core::SessionBackend) on MySQL or
//! MariaDB (InnoDB), through an `sqlx` connection pool.
//!
//! ```no_run
//! # async fn demo() -> session_store_core::Result<()> {
//! use session_store_mysql::MySqlConfig;
//!
//! let store = MySqlConfig::from_env()? // or MySqlConfig::new("mysql://...")
//!     .build()
//!     .await?;
//! store.migrate().await?; // explicit, idempotent
//! # Ok(()) }
//! ```
//!
//! ## Capabilities
//! - Full contract ([`Capabilities::full`](session_store_core::Capabilities::full)),
//!   checked by the public conformance suite against a real server, plain and
//!   under encryption.
//! - **Read-time expiry** against the caller's `now`: deadlines are stored as
//!   integer milliseconds (`BIGINT`), never as `DATETIME`, so there is no
//!   time zone or fractional-second precision to get wrong.
//! - **Exact user ids**: `user_id` has a binary *no-pad* collation, so ids
//!   that differ in case, trailing spaces or Unicode normalisation are
//!   different users (see [`schema`]).
//! - **Indexes** for deleting and listing a user's sessions and for cleanup;
//!   a test reads the server's `EXPLAIN` to check each statement uses them.
//! - **Cleanup in bounded batches** with `FOR UPDATE SKIP LOCKED`: any number
//!   of application servers can run it at once without waiting on each
//!   other or double counting.
//! - **Explicit, idempotent [`MySqlStore::migrate`]** with a recorded schema
//!   version, safe when several processes migrate at once (`GET_LOCK`); a
//!   database with a newer version is refused with
//!   [`Error::SchemaTooNew`](session_store_core::Error::SchemaTooNew) and
//!   left untouched. The table name is configurable and validated.
//! - **Errors say whether a retry can help** and name backend `"mysql"`,
//!   the operation and the URL without its password; an unreachable server
//!   is an error, never "no session".
//! - **One operation deadline** ([`MySqlConfig::with_operation_timeout`],
//!   default 2 s, `SESSION_STORE_MYSQL_OPERATION_TIMEOUT_MS`): pool acquire
//!   (connecting included) plus the statements, deadlock retries included.
//!   When a server is unreachable or stalled the operation fails with a
//!   retryable [`Error::Backend`](session_store_core::Error::Backend) within
//!   it, and the connection involved is closed. Every backend has this
//!   setting with the same meaning and default; `tests/outage.rs` checks it
//!   with a paused (`SIGSTOP`) private server, for warm connections and
//!   fresh connects.
//! - **No pings**: like the PostgreSQL store, the store keeps the
//!   connections it used warm in a LIFO stack on top of the sqlx pool, so
//!   no operation pays for a health-check round trip.
//!
//! ## Statements
//! Each operation is one prepared statement, one round trip, atomic on its
//! own, wherever MySQL allows it:
//!
//! | operation | SQL |
//! | --- | --- |
//! | create | `INSERT`; a duplicate key (error 1062) is `AlreadyExists`, never an overwrite |
//! | load | primary-key `SELECT ... AND expires_at > now` |
//! | save | `UPDATE ... SET version = version + 1, ... WHERE key AND version AND live` |
//! | touch | `UPDATE` with `GREATEST`/`LEAST`, so deadlines never move backwards |
//! | delete | primary-key `DELETE` |
//! | list_user | `SELECT` on the user index, already in `created_at, key` order |
//! | delete_all | `DELETE FROM table` |
//! | rotate, delete_user, cleanup_expired | a short transaction (below) |
//!
//! Create-if-absent is a plain `INSERT`, not `INSERT IGNORE` (which also
//! turns a value that does not fit into a warning and a truncated row) and
//! not `ON DUPLICATE KEY UPDATE` (whose affected-row count for "already
//! there" equals an insert's under `CLIENT_FOUND_ROWS`).
//!
//! **Affected rows.** MySQL counts *changed* rows by default, *matched* rows
//! with the `CLIENT_FOUND_ROWS` flag, which sqlx's MySQL driver always sets.
//! The store does not depend on it where it matters most: a save always
//! changes the row (the version goes up), so a compare-and-swap that
//! rewrites identical bytes is a success, never mistaken for a conflict. A
//! touch that changes nothing (an older deadline) relies on the matched
//! count to answer `true`; both cases have a test.
//!
//! ## Transactions and locks
//! Every connection runs at **`REPEATABLE READ`** (InnoDB's default, set
//! explicitly on each new connection). Each decision inside a transaction
//! is taken on a *locking* read or by a `DELETE`/`UPDATE` itself, and those
//! read the latest committed row and lock it, so no decision rests on a
//! stale snapshot.
//!
//! Why not `READ COMMITTED`, which takes no gap locks: its *semi-consistent
//! read* lets an `UPDATE` that meets a row locked by another transaction
//! judge the row on its last committed version and skip it rather than
//! wait. On MariaDB 10.11 that made a touch racing with a save of the same
//! session report "no live session" (`touch` returned `false`; the
//! conformance check `concurrent_touch_never_loses_writes` failed in two of
//! five runs, and passes every run under `REPEATABLE READ`). The price of
//! `REPEATABLE READ` is its gap and next-key locks on the ranges the
//! per-user and cleanup statements scan; they are held for one short
//! transaction, and the deadlocks they can cause are retried (below).
//!
//! - **rotate**: `SELECT 1 ... WHERE key = from AND version = v AND live
//!   FOR UPDATE` (an exclusive lock on the old row, or `Conflict`); `INSERT`
//!   of the successor (a taken key is `AlreadyExists`; the transaction is
//!   rolled back, nothing changes); `DELETE` of the old row or its
//!   `UPDATE` into a forwarder; `COMMIT`. A concurrent rotation of the same
//!   session waits on the row lock, then re-reads the row, finds it gone or
//!   a forwarder and answers `Conflict`: exactly one successor.
//! - **delete_user**: `DELETE` of the user's live sessions (their count is
//!   the answer), then `DELETE` of the rest (expired ones), in one
//!   transaction, both on the user index. The first statement's next-key
//!   locks cover the user's whole index range, so a concurrent create for
//!   the same user waits for the commit and lands after the call: the
//!   count and the removal describe the same set of sessions.
//! - **cleanup_expired**: `SELECT key ... WHERE expires_at <= now ORDER BY
//!   expires_at LIMIT n FOR UPDATE SKIP LOCKED`, then `DELETE ... WHERE
//!   expires_at <= now AND key IN (...)`. Rows another cleaner (or a
//!   rotation) holds are skipped, never waited for; the re-checked
//!   `expires_at` keeps a live row safe.
//!
//! **Deadlocks** (error 1213) are retried, up to three times after a short
//! growing pause, for every operation: InnoDB resolves a deadlock by rolling
//! back the *whole* transaction of the victim, so the attempt left no trace
//! and running the operation again cannot apply anything twice. A lock wait
//! timeout (1205, see [`MySqlConfig::with_lock_wait_timeout`]) is not
//! retried (waiting again would likely time out again): it is a retryable
//! [`Error::Backend`](session_store_core::Error::Backend) for the caller.
//! An operation cut off by the operation timeout closes its connection; the
//! server rolls back any open transaction.
//!
//! ## MySQL and MariaDB
//! The SQL is written for both: no `RETURNING` (MariaDB only), no
//! `DELETE ... LIMIT` (cleanup locks its batch with a `SELECT` first),
//! `NOT (a <=> b)` for null-safe inequality, `GREATEST`/`LEAST`, `?`
//! parameters, `GET_LOCK`. Requirements: InnoDB, `SKIP LOCKED` (MariaDB 10.6+, MySQL
//! 8.0+), enforced `CHECK` constraints (MariaDB 10.2+, MySQL 8.0.16+), a
//! binary no-pad `utf8mb4` collation (`utf8mb4_nopad_bin` on MariaDB,
//! `utf8mb4_0900_bin` on MySQL 8.0.17+; [`MySqlStore::migrate`] picks the
//! one the server has).
//!
//! **Tested only on MariaDB** (10.11, the Debian package; MySQL 8 is not
//! installable on the machines the tests run on): everything in this crate's
//! test suite, including the conformance suite, the `EXPLAIN` plan test,
//! the deadlock test and the outage test (which runs a private `mariadbd`).
//! The MySQL 8 specific parts, untested so far: the choice of
//! `utf8mb4_0900_bin`, MySQL's optimizer and `EXPLAIN` output, MySQL's
//! deadlock victim choice, and the error numbers only MySQL raises (3024).
//!
//! ## Deployment notes
//! - Run [`cleanup_expired`](session_store_core::SessionBackend::cleanup_expired)
//!   periodically (for example every minute, in batches of a few thousand,
//!   looping while a batch comes back full) on one or more servers.
//! - A write whose reply is lost (timeout, connection cut) may or may not
//!   have been applied, as the retryable error implies: retrying a create
//!   with the same key may report `AlreadyExists` because the first attempt
//!   landed, and retrying a save may report `Conflict`. Reload before
//!   retrying.
//! - The crate is built without TLS; connect over loopback, a private
//!   network or a local TLS-terminating proxy.
//!
//! ## Testing
//! The tests need a server: `store-mysql/scripts/mysql-service.sh` makes
//! sure MariaDB answers on `127.0.0.1:3306` with a database `test` for
//! `root` without a password (installing and starting it if needed). Tests
//! build their stores with [`MySqlConfig::from_env`]
//! (`SESSION_STORE_MYSQL_URL`, set for cargo in `.cargo/config.toml`), use a
//! random table each and drop it afterwards; without a server they fail and
//! say what to start, unless `SESSION_STORE_SKIP_MYSQL=1`. The outage test
//! starts a private `mariadbd` of its own.
//!
//! Configuration: [`MySqlConfig`] (builder) or [`MySqlConfig::from_env`]
//! (`SESSION_STORE_MYSQL_*` variables). The table layout is described in
//! the [`schema`] module.
#![forbid(unsafe_code)]
#![deny(missing_docs)]
#![cfg_attr(docsrs, feature(doc_cfg))]

mod config;
pub mod schema;
mod store;

pub use config::{
    validate_table_name, MySqlConfig, DEFAULT_OPERATION_TIMEOUT, DEFAULT_TABLE, ENV_PREFIX,
    MAX_TABLE_NAME,
};
pub use schema::{META_TABLE, SCHEMA_VERSION};
pub use store::MySqlStore;
