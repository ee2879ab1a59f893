//! # session-store-redis
//!
//! A [`SessionBackend`](session_store_core::SessionBackend) on Redis (one
//! server, through an auto-reconnecting `ConnectionManager`) or Redis Cluster
//! (through the async cluster client), with the `redis` crate. One type,
//! [`RedisStore`], covers both; [`RedisConfig`] builds it from a URL, a list of
//! cluster nodes or environment variables ([`RedisConfig::from_env`]).
//!
//! ```no_run
//! # async fn demo() -> session_store_core::Result<()> {
//! use session_store_redis::RedisConfig;
//!
//! let store = RedisConfig::new("redis://127.0.0.1:6379")
//!     .with_prefix("myapp:sess")
//!     .build()
//!     .await?;
//! let from_env = RedisConfig::from_env()?.build().await?;
//! # Ok(()) }
//! ```
//!
//! ## Capabilities
//! - Every operation of the contract, each atomic: multi-step operations are
//!   Lua scripts (loaded once, called by SHA, re-sent on `NOSCRIPT`). The
//!   two bulk deletions are the exception the trait allows: `delete_user`
//!   runs one script per session (the sessions of a user lie in different
//!   slots) and `delete_all` deletes what `SCAN` finds batch by batch, so on
//!   an error part of the sessions may be gone; calling again finishes the
//!   job, and only `Ok` means all are gone. Every key written carries a TTL
//!   (records `PXAT` their deadline plus slack, user indexes `PEXPIREAT`
//!   their highest score plus slack), so nothing outlives its sessions even
//!   if a bulk deletion never completes.
//! - Redis Cluster by design: a session, its rotation successor and its grace
//!   forwarder share a hash tag (the first 8 bits of the storage key,
//!   [`AFFINITY_BITS`], announced through `rotation_affinity_bits`), so a
//!   rotation is one script in one slot. A successor that does not share the
//!   bits is rejected with `Error::InvalidInput`. No command spans two slots (no
//!   `MGET`, `RENAME` or multi-key `DEL` across sessions); `KEYS` is never
//!   used and `SCAN` only by [`delete_all`](session_store_core::SessionBackend::delete_all)
//!   and [`RedisStore::dump_raw`] (per master node in cluster mode).
//! - Native expiry: every key gets a `PEXPIREAT` from its own deadlines
//!   (sessions: `expires_at`, forwarders: `until`, user indexes: the highest
//!   absolute deadline), plus a configurable slack, so nothing outlives its
//!   session when no cleanup runs. Expiry is also checked at read time with
//!   the caller's `now`, exactly as the contract says. `cleanup_expired`
//!   returns 0 (capability `counted_cleanup = false`, reported by
//!   [`capabilities`](session_store_core::SessionBackend::capabilities)).
//! - One round trip per `load` (a plain `GET` of one compact value, see
//!   the data layout below), `save`, `touch`, `delete` and anonymous
//!   `create` (`SET NX PXAT`); `create` and `rotate` of a logged-in session
//!   take two (user index, then the record), and so does a `save` that
//!   changes the owner or extends the absolute deadline. `touch` patches 40
//!   header bytes in place (`SETRANGE`), never the data. `list_user` and
//!   `delete_user` take one script on the index, one command per candidate
//!   (run concurrently, each in its own slot) and one pruning script.
//! - Bounded failure: one operation deadline
//!   ([`RedisConfig::with_operation_timeout`], default 2 s,
//!   `SESSION_STORE_REDIS_OPERATION_TIMEOUT_MS`, the same setting with the
//!   same meaning and default on every backend) caps each whole operation,
//!   reconnect waits and every command or script included; connection and
//!   response timeouts bound single attempts inside it. A down or stalled
//!   server gives a retryable `Error::Backend` within the deadline, never a
//!   hang and never "no session" (`tests/outage.rs` pauses a private server
//!   with `SIGSTOP`). The single-server connection reconnects by itself.
//! - Errors that say where: every `Error::Backend` names the backend
//!   (`"redis"`), the operation (`"load"`, `"save"`, ..., `"connect"` while
//!   building) and the endpoint ([`RedisStore::endpoint`]: the URL, or the
//!   cluster seed nodes joined by commas, passwords redacted), and keeps the
//!   client's error as its source.
//! - TLS (`rediss://`, feature `tls`, rustls with the platform's roots, or
//!   the CA of [`RedisConfig::with_tls_ca_file`] /
//!   `SESSION_STORE_REDIS_TLS_CA_FILE`; tested against a TLS-only
//!   redis-server by session-store-cli's `tests/tls.rs`) and authentication (`redis://user:password@host`) pass through from the URL.
//! - A validated key prefix (`[A-Za-z0-9_.:-]{1,64}`) per store;
//!   `delete_all` deletes exactly that prefix's keys.
//! - Requires Redis 6.2 or later (`ZADD GT`).
//!
//! ## Data layout
//! One Redis string per session or forwarder, under
//! `{<prefix>:<first key byte in hex>}:s:<key hex>`: a fixed-width text
//! header (kind, version, idle and absolute deadlines, last seen, user id
//! length) that the scripts read with `GETRANGE` and compare exactly as
//! fixed-width text (no number conversions on the hot paths), then the user id and a binary body (created, auth time,
//! metadata, data) that only Rust reads. A value that does not decode gives
//! `Error::Codec`, never a panic. One value per entry keeps `load` one `GET`,
//! as cheap as a raw read, while `touch` and the compare-and-swap scripts
//! never move the data.
//!
//! ## The user index
//! Sessions of a user are found through a per-user sorted set
//! `{<prefix>:u:<sha256(user)>}` (its own slot) whose members are storage
//! keys, scored by the session's **absolute** deadline: an upper bound of its
//! expiry that `touch` never moves, so the index needs no update on activity.
//! A companion hash records when each member was added (server time).
//!
//! The index is a superset hint, kept correct across slots without
//! cross-slot atomicity and without keyspace notifications:
//! - it is written **before** the record (`create`, `rotate`, and `save` when
//!   the owner changes or the absolute deadline grows), so every session of a
//!   user is in the user's index;
//! - `list_user` and `delete_user` verify each candidate against its record
//!   (exists, is a session of that user, is live at `now`); the record decides;
//! - pruning only removes entries that can never again name a session of
//!   the user: entries whose record is a forwarder or was deleted by
//!   `delete_user`; entries whose record is missing **and** that were added
//!   longer than the index guard ago (default 60 s); and, by
//!   `ZREMRANGEBYSCORE`, entries whose score (absolute deadline) plus TTL
//!   slack plus guard lies before the **server's** clock, whose records Redis
//!   has therefore expired. The caller's `now` never prunes: a record that is
//!   expired at `now` but still stored is the user's until Redis drops it, so
//!   `delete_user` still removes it, as the contract asks. The guard closes
//!   the one race left, a record missing because its `create` is still in
//!   flight: `create` and `rotate` refuse to write a record more than half the
//!   guard after its index entry (they write the entry again and retry), so
//!   an entry older than the guard whose record is missing is dead for good;
//! - entries of sessions that moved to another user (`save` with a new
//!   `user_id`) stay until their score passes; they are filtered out when
//!   read. Keyspace notifications are not used.
//!
//! So the cost of `list_user`/`delete_user` is proportional to the user's
//! live sessions plus those that ended within about the last TTL slack plus
//! guard period, also when records expired on their own through their TTL.
//!
//! ## Persistence
//! What survives a Redis restart is Redis's configuration, not this crate's:
//! with `--save "" --appendonly no` (the test servers) every session is gone
//! after a restart, and users are logged out; with `--appendonly yes
//! --appendfsync always` every acknowledged write survives a crash, at a cost
//! in write latency (`everysec` may lose the last second). The store itself
//! reconnects and goes on either way.
//!
//! ## Testing
//! The tests run against real servers: a standalone Redis on
//! `127.0.0.1:6379` and a three-master Redis Cluster on
//! `127.0.0.1:7001-7003`. `store-redis/scripts/redis-services.sh start`
//! provides both (it reuses what answers, starts `redis-server`, installs it
//! with `apt-get` as root when missing; `stop` removes the cluster). Each test
//! uses a random key prefix, so runs can share the servers.
//! `SESSION_STORE_SKIP_REDIS=1` / `SESSION_STORE_SKIP_REDIS_CLUSTER=1` skip
//! them visibly; otherwise an unreachable server fails the tests with a
//! message naming the script. The tests build their stores with
//! [`RedisConfig::from_env`]; the workspace's `.cargo/config.toml` sets
//! `SESSION_STORE_REDIS_URL` for them and
//! `SESSION_STORE_TEST_REDIS_CLUSTER_NODES`, which the cluster tests read as
//! `SESSION_STORE_REDIS_CLUSTER_NODES`; set either in the environment to
//! point the tests elsewhere.
//!
//! ## Modules
//! `config` (the configuration and `build`), `core` (the connection and the
//! operation timeout), `error` (client errors into `Error`), `reply` (the
//! scripts' reply codes and other reply shapes), `index` (user indexes and
//! `SCAN`), `scripts` (the Lua scripts), `schema` (key names and the stored
//! encoding), `store` (the `SessionBackend` impl).
//!
//! ```text
//! cargo test -p session-store-redis                 # everything
//! cargo test -p session-store-redis --test conformance --test cluster_conformance
//! cargo run -p session-store-redis --release --example redis_latency
//! ```
#![forbid(unsafe_code)]
#![deny(missing_docs)]
#![cfg_attr(docsrs, feature(doc_cfg))]

mod config;
mod core;
mod error;
#[doc(hidden)]
pub mod fuzzing;
mod index;
mod reply;
mod scan;
mod schema;
mod scripts;
mod store;

pub use config::{RedisConfig, DEFAULT_OPERATION_TIMEOUT, DEFAULT_PREFIX};
pub use schema::AFFINITY_BITS;
pub use store::RedisStore;

/// Whether this build can reach `rediss://` servers (the `tls` feature).
/// Without it, [`RedisConfig::validate`] refuses `rediss://` URLs with an
/// [`Error::Config`](session_store_core::Error::Config) naming the feature.
pub const TLS_SUPPORTED: bool = cfg!(feature = "tls");
