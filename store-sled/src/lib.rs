//! # session-store-sled
//!
//! A [`SessionBackend`](session_store_core::SessionBackend) on the embedded
//! [sled](https://docs.rs/sled/0.34) database (0.34, the stable line).
//!
//! ```no_run
//! # async fn demo() -> session_store_core::Result<()> {
//! use std::sync::Arc;
//! use std::time::Duration;
//! use session_store_core::SystemClock;
//! use session_store_sled::SledConfig;
//!
//! let store = SledConfig::new("/var/lib/myapp/sessions").build().await?;
//! // Remove expired sessions every minute, 1000 per batch; stops on drop.
//! let _cleanup = store.spawn_cleanup(Duration::from_secs(60), 1000, Arc::new(SystemClock))?;
//! # Ok(()) }
//! ```
//!
//! [`SledConfig::from_env`] reads the same settings from
//! `SESSION_STORE_SLED_*` variables (table on that function).
//!
//! ## Capabilities
//! - The whole contract, checked by the conformance suite plain and
//!   encrypted ([`Capabilities::full`](session_store_core::Capabilities::full)),
//!   including counted, bounded cleanup.
//! - **Atomic** create, save (version compare-and-swap), touch, rotate (with
//!   or without a grace forwarder), delete, delete-user and cleanup: each is
//!   one sled transaction over the record tree and both indexes.
//! - **User index**: listing or revoking a user's sessions is a prefix scan
//!   over that user's entries only.
//! - **Expiry index**: cleanup reads expired entries in time order from the
//!   start of the index up to `now`, in bounded batches;
//!   [`SledStore::spawn_cleanup`] runs it periodically and stops when its
//!   [`CleanupHandle`] is dropped.
//! - **Durability** is a setting ([`Durability`]): flushed and `fdatasync`ed
//!   before every acknowledgement (default; an activity `touch` is the
//!   exception: it is not synced on its own and reaches the disk with the
//!   next durable write, so a crash may lose it and only shorten an idle
//!   timer), or periodically by sled, with
//!   back-pressure that avoids a sled 0.34.7 deadlock (see
//!   [`Durability::Periodic`]). A crash test kills a writer with `SIGKILL`
//!   and checks every acknowledged write.
//! - **Namespaces**: several stores share one database under different tree
//!   prefixes (`store.db().store("other")`, see [`SledStore::db`] and
//!   [`SledDb::store`]); `delete_all` clears only its own trees, in
//!   batches and not in one transaction: on an error part of the namespace
//!   may be gone, and calling it again finishes the job (the trait's
//!   contract for bulk deletions). Every other operation is one sled
//!   transaction.
//! - **Safe open**: a path that is a file, a foreign non-empty directory, or
//!   a namespace written by a newer schema version are typed errors, and
//!   nothing on disk is modified.
//! - **Compact, versioned, bounds-checked encoding** ([`schema`]): corrupt
//!   bytes are [`Error::Codec`](session_store_core::Error::Codec), never a panic.
//! - **No operation deadline setting**: the other backends have
//!   `with_operation_timeout` (default 2 s, the bound on waiting for a
//!   connection or a lock plus the statement). sled has nothing of the
//!   kind to wait for: no server, no connection pool, and its transactions
//!   retry optimistically on conflict instead of blocking on a lock held by
//!   someone else (the directory lock is taken once, by
//!   [`SledConfig::build`], which fails at once when another process holds
//!   it). What an operation can wait on is the disk (the `fdatasync` of
//!   [`Durability`]), which no timeout interrupts; so there is no setting
//!   that would only pretend to bound it.
//! - **Errors that say where**: every
//!   [`Error::Backend`](session_store_core::Error::Backend) names the backend
//!   (`sled`), the operation (`open`, `save`, `flush`, ...) and the database
//!   directory (or `temporary`).
//!
//! ## Threads
//! Reads (`load`, `list_user`) run inline. With [`Durability::Periodic`]
//! the small writes (create, save, touch, rotate, delete) also run their
//! transaction inline, which only changes memory, and the back-pressure
//! flush runs on tokio's blocking pool; every other write, every write with
//! [`Durability::EveryWrite`] and [`SledConfig::build`] run on the blocking
//! pool, because sled 0.34 transactions share a process-wide lock with disk
//! flushes (what can block, for how long and why: "Where the work runs" on
//! [`SledStore`]). Without a tokio runtime every call runs inline.
//!
//! ## Modules
//! `config` (the [`SledConfig`] builder), `db` (the open database
//! [`SledDb`]: safe open, namespaces, the [`Durability`] policy with group
//! commit and back-pressure), `store` (the
//! [`SessionBackend`](session_store_core::SessionBackend) implementation, one
//! sled transaction per operation), `cleanup` (the periodic task),
//! [`schema`] (tree names and record encoding).
//!
//! ## Not provided
//! - Server-side TTL: expired entries stay on disk until cleanup, but never
//!   load (expiry is checked on every read against the caller's `now`).
//! - Multi-process access: sled locks the database for one process.
#![forbid(unsafe_code)]
#![deny(missing_docs)]
#![cfg_attr(docsrs, feature(doc_cfg))]

mod cleanup;
mod config;
mod db;
pub mod schema;
mod store;

pub use cleanup::{CleanupHandle, CleanupStats};
pub use config::{Durability, SledConfig, DEFAULT_CACHE_CAPACITY, DEFAULT_TREE_PREFIX};
pub use db::SledDb;
pub use store::SledStore;
