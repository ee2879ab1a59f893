//! # session-store-sqlite
//!
//! A [`SessionBackend`](session_store_core::SessionBackend) on SQLite
//! (bundled through `rusqlite`): one file, no server.
//!
//! ```no_run
//! # async fn demo() -> session_store_core::Result<()> {
//! use session_store_sqlite::{SqliteConfig, Synchronous};
//!
//! let store = SqliteConfig::new("/var/lib/app/sessions.db")
//!     .with_table("sessions")
//!     .with_synchronous(Synchronous::Normal)
//!     .with_readers(2)
//!     .build()
//!     .await?;
//! store.migrate().await?; // explicit and idempotent
//! # Ok(()) }
//! ```
//!
//! [`SqliteConfig::from_env`] reads the same settings from
//! `SESSION_STORE_SQLITE_*` variables (the path is required).
//!
//! ## Errors
//! Every [`Error::Backend`](session_store_core::Error::Backend) names the
//! backend `"sqlite"`, the operation (the method name, `"open"` while
//! building, `"migrate"`) and the database path (or `:memory:`).
//!
//! ## Capabilities
//! - The whole contract, [`Capabilities::full`](session_store_core::Capabilities::full):
//!   counted, bounded cleanup.
//! - The request path costs what its statement costs: when a connection is
//!   free and nothing is queued, load, create, save, touch, rotate and
//!   delete run their statement on the calling thread (no hand-off, no
//!   spinning; [`SqliteConfig::with_inline`], on by default). What could
//!   block the async runtime stays off it: a lock held by another process is
//!   never waited for there, writes that `fsync` (`synchronous=FULL`) and
//!   WAL checkpoints run on the SQLite threads, and an inline statement
//!   slower than 1 ms (a cold page cache) sends the next 20 ms of work to
//!   the threads (the measured cold-read figures are in the `worker` module
//!   source docs). A load borrows the writer's connection when it is free:
//!   its page cache is current after its own writes, where a reader's is
//!   dropped after every write of another connection (WAL), so a load that
//!   follows a save costs close to what it costs on one rusqlite
//!   connection (figures in the `worker` module source docs).
//! - Otherwise, a dedicated writer thread owns the only write connection
//!   and a small pool of reader threads own read connections; calls cross
//!   over a queue and come back through a tokio oneshot (no
//!   `spawn_blocking`). Both sides busy-wait briefly (bounded by
//!   [`SqliteConfig::with_spin_wait`], 50 µs by default) before parking,
//!   because waking a parked thread costs several times a primary-key
//!   statement. Statements are prepared once per connection and cached.
//! - WAL mode: reads (`load`, `list_user`) run concurrently with writes.
//!   WAL checkpoints (the part of a write that `fsync`s) run on their own
//!   thread, nudged by the writer's WAL hook, instead of inside whichever
//!   commit crosses SQLite's auto-checkpoint threshold.
//! - Disk use follows the live sessions: once the log passes
//!   [`SqliteConfig::with_wal_checkpoint`] (8 MiB) the writer finishes the
//!   checkpoint between two jobs so that the log restarts, the log file is
//!   cut back to [`SqliteConfig::with_wal_size_limit`] (8 MiB) when it
//!   does, and an idle writer truncates it
//!   ([`SqliteConfig::with_idle_checkpoint`]). New files use incremental
//!   auto-vacuum and cleanup returns freed pages
//!   ([`SqliteConfig::with_auto_vacuum`]; older files:
//!   [`SqliteStore::vacuum`]). `tests/storage.rs` holds the bounds: 50 000
//!   sessions created and cleaned up leave the files within 2 MiB of
//!   the live sessions' database.
//! - Cleanup yields to live traffic: `cleanup_expired` deletes in chunks of
//!   [`SqliteConfig::with_cleanup_chunk`] rows, each a paced writer job
//!   that takes at most a third of the writer while requests wait
//!   (`examples/cleanup_under_load.rs` measures it).
//! - Threads: one writer, [`SqliteConfig::readers`] readers (default 2) and
//!   one checkpointer per store; all stop when the last clone of the store
//!   is dropped. A call whose future is dropped after it was sent still runs
//!   to completion on its thread (as a query sent to a server would).
//! - Durability is a setting ([`Synchronous`]); the default `NORMAL` and its
//!   trade-off are explained there.
//! - Atomicity from single statements (`create` is an `INSERT` that fails on
//!   conflict, `save` is `UPDATE ... WHERE version = ? AND expires_at > ?`,
//!   `delete_user` is one `DELETE ... RETURNING`) and one immediate
//!   transaction for `rotate`.
//! - Indexed: by key (primary key), by user (`delete_user`, `list_user`,
//!   already in list order) and by expiry (`cleanup_expired`); none of them
//!   scans the table.
//! - An explicit, idempotent [`SqliteStore::migrate`] with a recorded schema
//!   version; a database written by a newer version is refused with
//!   [`Error::SchemaTooNew`](session_store_core::Error::SchemaTooNew).
//! - Safe opening: a directory, a file that is not a database or a too-new
//!   schema is a typed error and the file is left untouched.
//! - A periodic cleanup task ([`SqliteStore::spawn_cleanup`]) that stops when
//!   its handle is dropped.
//! - In-memory databases for tests ([`SqliteConfig::in_memory`]).
//!
//! ## Not provided
//! - Server-side expiry: expired rows stay until cleanup removes them (reads
//!   never return them).
//! - Secure deletion: a deleted row's bytes may remain in free pages and in
//!   the WAL until overwritten. Session data is opaque here; use the
//!   `Encrypted` wrapper of `session-store-core` to keep it unreadable at rest.
#![forbid(unsafe_code)]
#![deny(missing_docs)]
#![cfg_attr(docsrs, feature(doc_cfg))]

mod checkpoint;
mod cleanup;
mod config;
mod schema;
mod store;
mod vacuum;
mod worker;

pub use cleanup::{spawn_cleanup, CleanupHandle, CleanupStats, MAX_BATCHES_PER_ROUND};
pub use config::DEFAULT_OPERATION_TIMEOUT;
pub use config::{
    Location, SqliteConfig, Synchronous, DEFAULT_BUSY_TIMEOUT, DEFAULT_CACHE_KIB,
    DEFAULT_CLEANUP_CHUNK, DEFAULT_IDLE_CHECKPOINT, DEFAULT_READERS, DEFAULT_SPIN_WAIT,
    DEFAULT_TABLE, DEFAULT_WAL_CHECKPOINT, DEFAULT_WAL_SIZE_LIMIT, MAX_CACHE_KIB,
    MAX_CLEANUP_CHUNK, MAX_READERS, MAX_SPIN_WAIT, MAX_WAL_BYTES, MIN_WAL_CHECKPOINT,
};
pub use schema::{SCHEMA_TABLE, SCHEMA_VERSION};
pub use store::SqliteStore;
