//! Configuration: [`SqliteConfig`], its defaults, [`SqliteConfig::from_env`]
//! and [`SqliteConfig::build`].

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use session_store_core::config::Vars;
use session_store_core::{Error, Result};

use crate::store::{SqliteStore, BACKEND};

/// Default table name.
pub const DEFAULT_TABLE: &str = "sessions";
/// Default number of reader threads (each with its own connection).
pub const DEFAULT_READERS: usize = 2;
/// Highest accepted reader count.
pub const MAX_READERS: usize = 64;
/// Default operation deadline: 2 s, the same on every backend of this
/// workspace. See [`SqliteConfig::with_operation_timeout`].
pub const DEFAULT_OPERATION_TIMEOUT: Duration = Duration::from_secs(2);
/// The older name of [`DEFAULT_OPERATION_TIMEOUT`] (the deadline is SQLite's
/// busy timeout).
pub const DEFAULT_BUSY_TIMEOUT: Duration = DEFAULT_OPERATION_TIMEOUT;
/// Default bound of the busy-wait on both sides of the hand-off to the
/// SQLite threads (see [`SqliteConfig::with_spin_wait`]).
pub const DEFAULT_SPIN_WAIT: Duration = Duration::from_micros(50);
/// Highest accepted spin-wait bound.
pub const MAX_SPIN_WAIT: Duration = Duration::from_millis(1);
/// Default page cache of each connection, in KiB (SQLite's own default is
/// 2 MiB, which a store of a million sessions outgrows: every lookup then
/// reads B-tree pages back from the OS).
pub const DEFAULT_CACHE_KIB: u64 = 32 * 1024;
/// Highest accepted page cache per connection, in KiB (16 GiB).
pub const MAX_CACHE_KIB: u64 = 16 * 1024 * 1024;
/// Default size of the write-ahead log, in bytes, past which the writer
/// checkpoints between jobs (8 MiB: at 4 MiB a burst of creates ran about
/// 1.5 times slower, at 8 MiB about as fast as with an unbounded log; see
/// `examples/cleanup_under_load.rs`).
pub const DEFAULT_WAL_CHECKPOINT: u64 = 8 * 1024 * 1024;
/// Default size, in bytes, to which the write-ahead log file is truncated
/// when it restarts (SQLite's `journal_size_limit`).
pub const DEFAULT_WAL_SIZE_LIMIT: u64 = 8 * 1024 * 1024;
/// Highest accepted checkpoint threshold and WAL size limit (1 GiB).
pub const MAX_WAL_BYTES: u64 = 1024 * 1024 * 1024;
/// Lowest accepted checkpoint threshold (64 KiB).
pub const MIN_WAL_CHECKPOINT: u64 = 64 * 1024;
/// Default time the writer must have been idle before it truncates the log.
pub const DEFAULT_IDLE_CHECKPOINT: Duration = Duration::from_secs(1);
/// Default number of expired rows one writer job of
/// [`cleanup_expired`](session_store_core::SessionBackend::cleanup_expired)
/// deletes.
pub const DEFAULT_CLEANUP_CHUNK: usize = 256;
/// Highest accepted cleanup chunk.
pub const MAX_CLEANUP_CHUNK: usize = 100_000;

/// Where the database lives.
#[derive(Clone, PartialEq, Eq)]
pub enum Location {
    /// A database file (created if missing, put in WAL mode on open).
    File(PathBuf),
    /// A private in-memory database: gone when the store is dropped. Served
    /// by the writer thread alone (an in-memory database is one connection),
    /// so the reader count is ignored. For tests and throwaway processes.
    Memory,
}

impl fmt::Debug for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Location::File(p) => write!(f, "File({})", p.display()),
            Location::Memory => f.write_str("Memory"),
        }
    }
}

/// How hard SQLite works to make a commit survive a power loss
/// (`PRAGMA synchronous`).
///
/// Both settings are safe against a crash of the *process*: a committed
/// write is in the write-ahead log and survives. They differ on an operating
/// system crash or power loss.
///
/// The default is [`Synchronous::Normal`]. Reasons: with WAL it never
/// corrupts the database, it keeps a write at memory speed (no `fsync` per
/// commit, which would cost milliseconds on most disks and dominate every
/// `create`, `save`, `touch` and `rotate`), and what it can lose is small for
/// a session store: the last transactions before the power loss, so a user
/// may have to log in again. The one loss with a security meaning is a
/// revocation (`delete`, `delete_user`) committed just before the power loss,
/// which could come back. Choose [`Synchronous::Full`] when revocations must
/// survive a power loss and writes may cost an `fsync` each.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Synchronous {
    /// `synchronous=NORMAL`: the WAL is synced at checkpoints only. Durable
    /// across process crashes; a power loss may roll back the most recent
    /// commits (never corrupting the file). The default.
    #[default]
    Normal,
    /// `synchronous=FULL`: the WAL is synced at every commit. Every
    /// acknowledged create, save, rotate and delete survives a power loss,
    /// at the price of one `fsync` per write. An activity `touch` commits
    /// with `NORMAL` (no `fsync` of its own): losing one only shortens an
    /// idle timer.
    Full,
}

impl Synchronous {
    pub(crate) fn pragma_value(self) -> &'static str {
        match self {
            Synchronous::Normal => "NORMAL",
            Synchronous::Full => "FULL",
        }
    }

    fn parse(s: &str) -> Option<Self> {
        match s.trim().to_ascii_lowercase().as_str() {
            "normal" | "1" => Some(Synchronous::Normal),
            "full" | "2" => Some(Synchronous::Full),
            _ => None,
        }
    }
}

/// The configuration of a [`SqliteStore`]: where the database lives and how
/// its connections are set up.
///
/// ```no_run
/// # async fn demo() -> session_store_core::Result<()> {
/// use session_store_sqlite::{SqliteConfig, Synchronous};
///
/// let store = SqliteConfig::new("/var/lib/app/sessions.db")
///     .with_table("web_sessions")
///     .with_synchronous(Synchronous::Full)
///     .build()
///     .await?;
/// store.migrate().await?;
/// # Ok(()) }
/// ```
#[derive(Clone, PartialEq, Eq)]
#[must_use]
pub struct SqliteConfig {
    pub(crate) location: Location,
    pub(crate) table: String,
    pub(crate) synchronous: Synchronous,
    pub(crate) readers: usize,
    pub(crate) busy_timeout: Duration,
    pub(crate) spin_wait: Duration,
    pub(crate) inline: bool,
    pub(crate) cache_kib: u64,
    pub(crate) wal_checkpoint: u64,
    pub(crate) wal_size_limit: u64,
    pub(crate) idle_checkpoint: Duration,
    pub(crate) auto_vacuum: bool,
    pub(crate) cleanup_chunk: usize,
}

impl fmt::Debug for SqliteConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SqliteConfig")
            .field("location", &self.location)
            .field("table", &self.table)
            .field("synchronous", &self.synchronous)
            .field("readers", &self.readers)
            .field("busy_timeout", &self.busy_timeout)
            .field("spin_wait", &self.spin_wait)
            .field("inline", &self.inline)
            .field("cache_kib", &self.cache_kib)
            .field("wal_checkpoint", &self.wal_checkpoint)
            .field("wal_size_limit", &self.wal_size_limit)
            .field("idle_checkpoint", &self.idle_checkpoint)
            .field("auto_vacuum", &self.auto_vacuum)
            .field("cleanup_chunk", &self.cleanup_chunk)
            .finish()
    }
}

/// Names of the environment variables read by [`SqliteConfig::from_env`].
const PATH_VAR: &str = "SESSION_STORE_SQLITE_PATH";
const TABLE_VAR: &str = "SESSION_STORE_SQLITE_TABLE";
const SYNCHRONOUS_VAR: &str = "SESSION_STORE_SQLITE_SYNCHRONOUS";
const READERS_VAR: &str = "SESSION_STORE_SQLITE_READERS";
const BUSY_TIMEOUT_VAR: &str = "SESSION_STORE_SQLITE_BUSY_TIMEOUT_MS";
const OPERATION_TIMEOUT_VAR: &str = "SESSION_STORE_SQLITE_OPERATION_TIMEOUT_MS";
const CACHE_KIB_VAR: &str = "SESSION_STORE_SQLITE_CACHE_KIB";
const SPIN_WAIT_VAR: &str = "SESSION_STORE_SQLITE_SPIN_WAIT_US";
const INLINE_VAR: &str = "SESSION_STORE_SQLITE_INLINE";
const WAL_CHECKPOINT_VAR: &str = "SESSION_STORE_SQLITE_WAL_CHECKPOINT";
const WAL_SIZE_LIMIT_VAR: &str = "SESSION_STORE_SQLITE_WAL_SIZE_LIMIT";
const IDLE_CHECKPOINT_VAR: &str = "SESSION_STORE_SQLITE_IDLE_CHECKPOINT_MS";
const AUTO_VACUUM_VAR: &str = "SESSION_STORE_SQLITE_AUTO_VACUUM";
const CLEANUP_CHUNK_VAR: &str = "SESSION_STORE_SQLITE_CLEANUP_CHUNK";

/// The value of the path variable that selects [`Location::Memory`].
const MEMORY_PATH: &str = ":memory:";

impl SqliteConfig {
    fn with_location(location: Location) -> Self {
        SqliteConfig {
            location,
            table: DEFAULT_TABLE.to_owned(),
            synchronous: Synchronous::default(),
            readers: DEFAULT_READERS,
            busy_timeout: DEFAULT_BUSY_TIMEOUT,
            spin_wait: DEFAULT_SPIN_WAIT,
            inline: true,
            cache_kib: DEFAULT_CACHE_KIB,
            wal_checkpoint: DEFAULT_WAL_CHECKPOINT,
            wal_size_limit: DEFAULT_WAL_SIZE_LIMIT,
            idle_checkpoint: DEFAULT_IDLE_CHECKPOINT,
            auto_vacuum: true,
            cleanup_chunk: DEFAULT_CLEANUP_CHUNK,
        }
    }

    /// A database file at `path` (created if missing), with the defaults:
    /// table [`DEFAULT_TABLE`], [`Synchronous::Normal`], [`DEFAULT_READERS`]
    /// readers, [`DEFAULT_BUSY_TIMEOUT`], [`DEFAULT_SPIN_WAIT`],
    /// [`DEFAULT_CACHE_KIB`], [`DEFAULT_WAL_CHECKPOINT`],
    /// [`DEFAULT_WAL_SIZE_LIMIT`], [`DEFAULT_IDLE_CHECKPOINT`], incremental
    /// auto-vacuum on and [`DEFAULT_CLEANUP_CHUNK`].
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Self::with_location(Location::File(path.into()))
    }

    /// A private in-memory database (see [`Location::Memory`]), with the
    /// defaults of [`SqliteConfig::new`].
    pub fn in_memory() -> Self {
        Self::with_location(Location::Memory)
    }

    /// Reads the configuration from the process environment:
    /// [`SqliteConfig::from_vars`] over [`Vars::from_env`].
    ///
    /// | Variable | Meaning | Default |
    /// | --- | --- | --- |
    /// | `SESSION_STORE_SQLITE_PATH` | Database file path; `:memory:` for a private in-memory database. | required |
    /// | `SESSION_STORE_SQLITE_TABLE` | Table name, `^[A-Za-z_][A-Za-z0-9_]{0,62}$`, not starting with `sqlite_`. | `sessions` |
    /// | `SESSION_STORE_SQLITE_SYNCHRONOUS` | `normal` or `full` (see [`Synchronous`]). | `normal` |
    /// | `SESSION_STORE_SQLITE_READERS` | Reader threads, `0` to `64` (`0`: the writer serves reads too). | `2` |
    /// | `SESSION_STORE_SQLITE_OPERATION_TIMEOUT_MS` | The operation deadline in milliseconds (> 0): how long a statement waits for a lock held by another connection or process (see [`SqliteConfig::with_operation_timeout`]). | `2000` |
    /// | `SESSION_STORE_SQLITE_BUSY_TIMEOUT_MS` | The older name of `SESSION_STORE_SQLITE_OPERATION_TIMEOUT_MS` (which wins when both are set). | `2000` |
    /// | `SESSION_STORE_SQLITE_CACHE_KIB` | Page cache of each connection in KiB, `1` to `16777216` (see [`SqliteConfig::with_cache_kib`]). | `32768` |
    /// | `SESSION_STORE_SQLITE_SPIN_WAIT_US` | Microseconds, `0` to `1000`, that callers and idle workers busy-wait before parking (see [`SqliteConfig::with_spin_wait`]); `0` turns it off. | `50` |
    /// | `SESSION_STORE_SQLITE_INLINE` | `true` or `false` (also `1`/`0`, `on`/`off`): whether uncontended statements run on the calling thread (see [`SqliteConfig::with_inline`]). | `true` |
    /// | `SESSION_STORE_SQLITE_WAL_CHECKPOINT` | Size of the write-ahead log past which the writer checkpoints between jobs, `64KiB` to `1GiB` (see [`SqliteConfig::with_wal_checkpoint`]). | `8MiB` |
    /// | `SESSION_STORE_SQLITE_WAL_SIZE_LIMIT` | Size the write-ahead log file is truncated to when it restarts, `0` to `1GiB` (see [`SqliteConfig::with_wal_size_limit`]). | `8MiB` |
    /// | `SESSION_STORE_SQLITE_IDLE_CHECKPOINT_MS` | Milliseconds the writer must be idle before it truncates the log (see [`SqliteConfig::with_idle_checkpoint`]); `0` turns it off. | `1000` |
    /// | `SESSION_STORE_SQLITE_AUTO_VACUUM` | Whether free pages go back to the file system (see [`SqliteConfig::with_auto_vacuum`]). | `true` |
    /// | `SESSION_STORE_SQLITE_CLEANUP_CHUNK` | Expired rows one writer job of `cleanup_expired` deletes, `1` to `100000` (see [`SqliteConfig::with_cleanup_chunk`]). | `256` |
    ///
    /// Values follow the grammar of [`session_store_core::config`].
    ///
    /// # Errors
    /// [`Error::Config`] naming the variable when the path is not set or a
    /// value is invalid.
    pub fn from_env() -> Result<Self> {
        Self::from_vars(&Vars::from_env())
    }

    /// Reads the configuration from `vars` (the variables of
    /// [`SqliteConfig::from_env`]) and validates it.
    ///
    /// ```
    /// use session_store_core::config::Vars;
    /// use session_store_sqlite::SqliteConfig;
    ///
    /// let vars = Vars::from_pairs([
    ///     ("SESSION_STORE_SQLITE_PATH", "/var/lib/app/sessions.db"),
    ///     ("SESSION_STORE_SQLITE_READERS", "4"),
    /// ]);
    /// let config = SqliteConfig::from_vars(&vars)?;
    /// assert_eq!(config.readers(), 4);
    /// # Ok::<(), session_store_core::Error>(())
    /// ```
    ///
    /// # Errors
    /// [`Error::Config`] naming the variable when the path is not set or a
    /// value is invalid.
    pub fn from_vars(vars: &Vars) -> Result<Self> {
        let path = vars.required(PATH_VAR)?;
        let mut config = if path == MEMORY_PATH {
            Self::in_memory()
        } else {
            Self::new(path)
        };
        if let Some(table) = vars.string(TABLE_VAR) {
            validate_table_name(&table)
                .map_err(|e| Error::Config(format!("{TABLE_VAR}: {}", config_message(e))))?;
            config = config.with_table(table);
        }
        if let Some(mode) =
            vars.parse_with(SYNCHRONOUS_VAR, "`normal` or `full`", Synchronous::parse)?
        {
            config = config.with_synchronous(mode);
        }
        if let Some(n) = vars.parse_with(
            READERS_VAR,
            &format!("a whole number from 0 to {MAX_READERS}"),
            |v| v.parse::<usize>().ok().filter(|n| *n <= MAX_READERS),
        )? {
            config = config.with_readers(n);
        }
        if let Some(timeout) = vars.millis(BUSY_TIMEOUT_VAR)? {
            config = config.with_busy_timeout(timeout);
        }
        if let Some(timeout) = vars.millis(OPERATION_TIMEOUT_VAR)? {
            config = config.with_operation_timeout(timeout);
        }
        if let Some(kib) = vars.parse_with(
            CACHE_KIB_VAR,
            &format!("a whole number of KiB from 1 to {MAX_CACHE_KIB}"),
            |v| {
                v.parse::<u64>()
                    .ok()
                    .filter(|n| (1..=MAX_CACHE_KIB).contains(n))
            },
        )? {
            config = config.with_cache_kib(kib);
        }
        let max_spin_us = MAX_SPIN_WAIT.as_micros();
        if let Some(bound) = vars.parse_with(
            SPIN_WAIT_VAR,
            &format!("a whole number of microseconds from 0 to {max_spin_us}"),
            |v| {
                v.parse::<u64>()
                    .ok()
                    .filter(|n| u128::from(*n) <= max_spin_us)
                    .map(Duration::from_micros)
            },
        )? {
            config = config.with_spin_wait(bound);
        }
        if let Some(on) = vars.parse_with(INLINE_VAR, "true or false", |v| {
            match v.to_ascii_lowercase().as_str() {
                "true" | "1" | "on" => Some(true),
                "false" | "0" | "off" => Some(false),
                _ => None,
            }
        })? {
            config = config.with_inline(on);
        }
        if let Some(bytes) =
            vars.parse_with(WAL_CHECKPOINT_VAR, "a size from 64KiB to 1GiB", |v| {
                session_store_core::config::parse_size(v)
                    .filter(|n| (MIN_WAL_CHECKPOINT..=MAX_WAL_BYTES).contains(n))
            })?
        {
            config = config.with_wal_checkpoint(bytes);
        }
        if let Some(bytes) = vars.parse_with(WAL_SIZE_LIMIT_VAR, "a size from 0 to 1GiB", |v| {
            session_store_core::config::parse_size(v).filter(|n| *n <= MAX_WAL_BYTES)
        })? {
            config = config.with_wal_size_limit(bytes);
        }
        if let Some(after) = vars.millis(IDLE_CHECKPOINT_VAR)? {
            config = config.with_idle_checkpoint(after);
        }
        if let Some(on) = vars.bool(AUTO_VACUUM_VAR)? {
            config = config.with_auto_vacuum(on);
        }
        if let Some(rows) = vars.parse_with(
            CLEANUP_CHUNK_VAR,
            &format!("a whole number from 1 to {MAX_CLEANUP_CHUNK}"),
            |v| {
                v.parse::<usize>()
                    .ok()
                    .filter(|n| (1..=MAX_CLEANUP_CHUNK).contains(n))
            },
        )? {
            config = config.with_cleanup_chunk(rows);
        }
        config.validate()?;
        Ok(config)
    }

    /// The table name (default [`DEFAULT_TABLE`]); must match
    /// `^[A-Za-z_][A-Za-z0-9_]{0,62}$` and not start with `sqlite_`.
    pub fn with_table(mut self, table: impl Into<String>) -> Self {
        self.table = table.into();
        self
    }

    /// The durability setting (default [`Synchronous::Normal`]).
    pub fn with_synchronous(mut self, mode: Synchronous) -> Self {
        self.synchronous = mode;
        self
    }

    /// Reader threads, each with its own connection (default
    /// [`DEFAULT_READERS`], at most [`MAX_READERS`]). `0` sends reads to the
    /// writer thread. Ignored in memory. With [`SqliteConfig::with_inline`]
    /// on, a load runs on the calling thread with the writer's connection
    /// when that is free (its page cache is current after its own writes),
    /// and with a free reader's otherwise; the reader threads serve the
    /// rest.
    pub fn with_readers(mut self, n: usize) -> Self {
        self.readers = n;
        self
    }

    /// The operation deadline (default 2 s, [`DEFAULT_OPERATION_TIMEOUT`];
    /// must be positive). Every backend of this workspace has this setting
    /// with this default; on a remote server it bounds the wait for a
    /// connection plus the statement. SQLite has no connection to wait for
    /// and no network: what an operation can wait on is a lock held by
    /// another connection or process (a second store on the same file, a
    /// backup, an `sqlite3` shell in a transaction). So the deadline is
    /// SQLite's busy timeout on every connection of the store: a statement
    /// that cannot get its lock within it fails with a retryable
    /// [`Error::Backend`] naming the operation, whose source is SQLite's
    /// `SQLITE_BUSY` ("database is locked"); its transaction is rolled back
    /// and the connection stays usable. In WAL mode readers never wait for
    /// a writer, so in practice the writes (create, save, touch, rotate,
    /// delete, delete_user, cleanup) are the operations it bounds.
    ///
    /// Not bounded by it: a call queued behind the store's own writer
    /// thread waits for the jobs ahead of it (each bounded by the deadline),
    /// and disk I/O (an `fsync` on a stalled disk) is not interrupted.
    pub fn with_operation_timeout(mut self, timeout: Duration) -> Self {
        self.busy_timeout = timeout;
        self
    }

    /// The older name of [`with_operation_timeout`](SqliteConfig::with_operation_timeout):
    /// the same setting.
    pub fn with_busy_timeout(mut self, timeout: Duration) -> Self {
        self.busy_timeout = timeout;
        self
    }

    /// How long (default 50 µs, at most 1 ms) a caller busy-waits for the
    /// reply of a job that started at once, and an idle SQLite thread
    /// busy-waits for its next job, before parking. Waking a parked thread
    /// costs more than a primary-key statement, so this keeps the hand-off
    /// cheap for a busy store; a runtime worker is held at most this long per
    /// call, and at most `cores - 1` SQLite threads spin at once in the
    /// process (none on a single core, where neither side spins).
    /// `Duration::ZERO` turns spinning off (plain park/unpark).
    ///
    /// With [`SqliteConfig::with_inline`] on (the default) the hand-off is
    /// taken only when a statement cannot run on the calling thread (its
    /// connection is busy, a lock is held elsewhere, or the writes sync), so
    /// this bound matters only under contention.
    pub fn with_spin_wait(mut self, bound: Duration) -> Self {
        self.spin_wait = bound;
        self
    }

    /// Whether the request path (load, create, save, touch, rotate, delete)
    /// runs its statement on the calling thread when a connection is free
    /// and nothing is queued for it (default on). It then costs what the
    /// statement costs, with no hand-off to another thread; a busy
    /// connection, a lock held by another process (never waited for on the
    /// calling thread) and writes under [`Synchronous::Full`] (which sync
    /// the disk) go to the SQLite threads as when this is off. WAL
    /// checkpoints always run on the SQLite threads. A caller's thread is
    /// held for one statement: with the page cache cold, a read takes one
    /// disk read per B-tree page not cached (see the `worker` module docs
    /// for the measured figures). Off: every statement is handed to the
    /// SQLite threads.
    ///
    /// `SESSION_STORE_SQLITE_INLINE` (`true`/`false`) sets it from the
    /// environment.
    pub fn with_inline(mut self, on: bool) -> Self {
        self.inline = on;
        self
    }

    /// The page cache of each connection (the writer and every reader), in
    /// KiB (default 32 MiB, at most 16 GiB; SQLite's `PRAGMA cache_size`).
    /// Size it to the hot part of the table: a lookup whose B-tree pages are
    /// not cached reads them back from the OS, several microseconds each.
    /// Memory is taken as pages are read, not up front.
    pub fn with_cache_kib(mut self, kib: u64) -> Self {
        self.cache_kib = kib;
        self
    }

    /// The size of the write-ahead log, in bytes (default 8 MiB, from 64 KiB
    /// to 1 GiB), past which the writer checkpoints between two jobs, so
    /// that the next commit restarts the log from its beginning. The
    /// checkpointer thread is nudged at half this size and does most of the
    /// copying off the write path. Smaller keeps the log smaller and costs
    /// more checkpoints (each syncs both files unless the disk is
    /// `synchronous=OFF`).
    pub fn with_wal_checkpoint(mut self, bytes: u64) -> Self {
        self.wal_checkpoint = bytes;
        self
    }

    /// The size, in bytes, the write-ahead log file is cut back to when it
    /// restarts (SQLite's `PRAGMA journal_size_limit`; default 8 MiB, at
    /// most 1 GiB). Without it the file keeps the largest size it ever
    /// reached, for example during a mass cleanup.
    pub fn with_wal_size_limit(mut self, bytes: u64) -> Self {
        self.wal_size_limit = bytes;
        self
    }

    /// How long the writer must have been idle (no job queued) before it
    /// checkpoints with `TRUNCATE`: the log file goes to zero bytes and the
    /// database file to the pages in use (default 1 s). Readers get at most
    /// 10 ms to move on; if they do not, the writer tries again after
    /// doubling idle periods. `Duration::ZERO` turns it off.
    pub fn with_idle_checkpoint(mut self, after: Duration) -> Self {
        self.idle_checkpoint = after;
        self
    }

    /// Whether pages freed by deletes go back to the file system (default
    /// on). A new database file is created with `auto_vacuum=INCREMENTAL`,
    /// and every `cleanup_expired` returns free pages with
    /// `incremental_vacuum` in bounded steps once more than an eighth of the
    /// file (and at least 1 MiB) is free, so that after a mass expiry the
    /// file shrinks back towards the live sessions instead of keeping its
    /// largest size.
    ///
    /// A database created without auto-vacuum (by an earlier version) can
    /// only be switched by rewriting it (`VACUUM`): [`SqliteStore::migrate`]
    /// does that itself when the file holds nothing but this library's
    /// tables and is at most 64 MiB; otherwise it logs a warning and leaves
    /// the file alone, and [`SqliteStore::vacuum`] does it on request.
    /// Off, nothing is vacuumed (free pages are reused by later writes).
    ///
    /// [`SqliteStore::vacuum`]: crate::SqliteStore::vacuum
    pub fn with_auto_vacuum(mut self, on: bool) -> Self {
        self.auto_vacuum = on;
        self
    }

    /// Expired rows one writer job of
    /// [`cleanup_expired`](session_store_core::SessionBackend::cleanup_expired)
    /// deletes (default 256, at most 100 000). A call with a larger limit
    /// runs several such jobs, each queued behind the requests that arrived
    /// meanwhile, and waits between them while other work is queued (see
    /// [`SqliteStore`](crate::SqliteStore)), so that live traffic waits for
    /// at most one chunk.
    pub fn with_cleanup_chunk(mut self, rows: usize) -> Self {
        self.cleanup_chunk = rows;
        self
    }

    /// Where the database lives.
    pub fn location(&self) -> &Location {
        &self.location
    }

    /// The database file, or `None` in memory.
    pub fn path(&self) -> Option<&Path> {
        match &self.location {
            Location::File(p) => Some(p),
            Location::Memory => None,
        }
    }

    /// The table name.
    pub fn table(&self) -> &str {
        &self.table
    }

    /// The durability setting.
    pub fn synchronous(&self) -> Synchronous {
        self.synchronous
    }

    /// Reader threads actually used (always 0 in memory).
    pub fn readers(&self) -> usize {
        match self.location {
            Location::File(_) => self.readers,
            Location::Memory => 0,
        }
    }

    /// The operation deadline: how long a statement waits for a lock held
    /// by another connection or process.
    pub fn operation_timeout(&self) -> Duration {
        self.busy_timeout
    }

    /// The older name of [`operation_timeout`](SqliteConfig::operation_timeout).
    pub fn busy_timeout(&self) -> Duration {
        self.busy_timeout
    }

    /// The bound of the busy-wait on both sides of the hand-off to the
    /// SQLite threads (see [`SqliteConfig::with_spin_wait`]).
    pub fn spin_wait(&self) -> Duration {
        self.spin_wait
    }

    /// Whether statements of the request path may run on the calling thread
    /// (see [`SqliteConfig::with_inline`]).
    pub fn inline(&self) -> bool {
        self.inline
    }

    /// The page cache of each connection, in KiB (see
    /// [`SqliteConfig::with_cache_kib`]).
    pub fn cache_kib(&self) -> u64 {
        self.cache_kib
    }

    /// The log size past which the writer checkpoints (see
    /// [`SqliteConfig::with_wal_checkpoint`]).
    pub fn wal_checkpoint_threshold(&self) -> u64 {
        self.wal_checkpoint
    }

    /// The size the log file is cut back to when it restarts (see
    /// [`SqliteConfig::with_wal_size_limit`]).
    pub fn wal_size_limit(&self) -> u64 {
        self.wal_size_limit
    }

    /// The idle time before the writer truncates the log (see
    /// [`SqliteConfig::with_idle_checkpoint`]); zero when off.
    pub fn idle_checkpoint(&self) -> Duration {
        self.idle_checkpoint
    }

    /// Whether free pages go back to the file system (see
    /// [`SqliteConfig::with_auto_vacuum`]).
    pub fn auto_vacuum(&self) -> bool {
        self.auto_vacuum
    }

    /// Expired rows per cleanup job (see [`SqliteConfig::with_cleanup_chunk`]).
    pub fn cleanup_chunk(&self) -> usize {
        self.cleanup_chunk
    }

    /// What errors name as the endpoint: the file path, or `:memory:`.
    pub(crate) fn endpoint(&self) -> String {
        match &self.location {
            Location::File(p) => p.display().to_string(),
            Location::Memory => MEMORY_PATH.to_owned(),
        }
    }

    /// Checks every setting.
    ///
    /// # Errors
    /// [`Error::Config`] naming the field: an invalid table name, more than
    /// [`MAX_READERS`] readers, a spin wait over [`MAX_SPIN_WAIT`], a cache
    /// outside 1 KiB to [`MAX_CACHE_KIB`] KiB, a WAL checkpoint threshold
    /// outside [`MIN_WAL_CHECKPOINT`] to [`MAX_WAL_BYTES`], a WAL size limit
    /// over [`MAX_WAL_BYTES`], a cleanup chunk outside 1 to
    /// [`MAX_CLEANUP_CHUNK`], or an empty path.
    pub fn validate(&self) -> Result<()> {
        validate_table_name(&self.table)?;
        if self.busy_timeout.is_zero() {
            return Err(Error::Config("operation_timeout: must be positive".into()));
        }
        if self.readers > MAX_READERS {
            return Err(Error::Config(format!(
                "reader count {} exceeds the maximum of {MAX_READERS}",
                self.readers
            )));
        }
        if self.cache_kib == 0 || self.cache_kib > MAX_CACHE_KIB {
            return Err(Error::Config(format!(
                "cache of {} KiB is outside 1 to {MAX_CACHE_KIB} KiB",
                self.cache_kib
            )));
        }
        if self.spin_wait > MAX_SPIN_WAIT {
            return Err(Error::Config(format!(
                "spin wait {:?} exceeds the maximum of {MAX_SPIN_WAIT:?}",
                self.spin_wait
            )));
        }
        if !(MIN_WAL_CHECKPOINT..=MAX_WAL_BYTES).contains(&self.wal_checkpoint) {
            return Err(Error::Config(format!(
                "WAL checkpoint threshold of {} bytes is outside {MIN_WAL_CHECKPOINT} to {MAX_WAL_BYTES}",
                self.wal_checkpoint
            )));
        }
        if self.wal_size_limit > MAX_WAL_BYTES {
            return Err(Error::Config(format!(
                "WAL size limit of {} bytes exceeds the maximum of {MAX_WAL_BYTES}",
                self.wal_size_limit
            )));
        }
        if !(1..=MAX_CLEANUP_CHUNK).contains(&self.cleanup_chunk) {
            return Err(Error::Config(format!(
                "cleanup chunk of {} rows is outside 1 to {MAX_CLEANUP_CHUNK}",
                self.cleanup_chunk
            )));
        }
        if let Location::File(p) = &self.location {
            if p.as_os_str().is_empty() {
                return Err(Error::Config("empty database path".into()));
            }
        }
        Ok(())
    }

    /// Validates, opens (creating if missing) the database and starts the
    /// writer, reader and checkpointer threads. Does not create the table:
    /// call [`SqliteStore::migrate`].
    ///
    /// Nothing is written to an existing file until it has been checked; a
    /// rejected file is left byte for byte as it was.
    ///
    /// # Errors
    /// - [`Error::Config`]: an invalid setting (see
    ///   [`SqliteConfig::validate`]), the path is a directory, or its
    ///   directory does not exist.
    /// - [`Error::SchemaTooNew`]: the table was written by a newer version of
    ///   this library.
    /// - [`Error::Backend`] (operation `"open"`, endpoint the path): the file
    ///   is not a SQLite database, or cannot be opened.
    pub async fn build(self) -> Result<SqliteStore> {
        self.validate()?;
        let endpoint = self.endpoint();
        SqliteStore::open(self)
            .await
            .map_err(|e| e.context(BACKEND, "open", Some(&endpoint)))
    }
}

/// The message of an [`Error::Config`].
fn config_message(e: Error) -> String {
    match e {
        Error::Config(m) => m,
        other => other.to_string(),
    }
}

/// Checks `^[A-Za-z_][A-Za-z0-9_]{0,62}$`, and refuses SQLite's reserved
/// `sqlite_` prefix. The name is still quoted in every statement.
pub(crate) fn validate_table_name(name: &str) -> Result<()> {
    let bytes = name.as_bytes();
    let ok = !bytes.is_empty()
        && bytes.len() <= 63
        && (bytes[0].is_ascii_alphabetic() || bytes[0] == b'_')
        && bytes
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || *b == b'_')
        && !name.to_ascii_lowercase().starts_with("sqlite_");
    if ok {
        Ok(())
    } else {
        // The name is configuration, not a secret, but it may be arbitrary
        // bytes: report it escaped and truncated.
        let shown: String = name.chars().take(70).collect();
        Err(Error::Config(format!(
            "invalid table name {shown:?}: must match ^[A-Za-z_][A-Za-z0-9_]{{0,62}}$ and not start with sqlite_"
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_names_are_validated() {
        for good in ["sessions", "_s", "S_1", &"a".repeat(63)] {
            assert!(validate_table_name(good).is_ok(), "{good}");
        }
        for bad in [
            "",
            "1abc",
            "a-b",
            "a b",
            "a\"b",
            "x;DROP TABLE y",
            "sessions\0",
            "sqlite_master",
            "SQLITE_x",
            "é",
            &"a".repeat(64),
        ] {
            assert!(
                matches!(validate_table_name(bad), Err(Error::Config(_))),
                "{bad:?}"
            );
            assert!(matches!(
                SqliteConfig::in_memory().with_table(bad).validate(),
                Err(Error::Config(m)) if m.contains("table name")
            ));
        }
    }

    #[test]
    fn defaults_and_limits() {
        let c = SqliteConfig::new("/tmp/x.db");
        c.validate().unwrap();
        assert_eq!(c.table(), DEFAULT_TABLE);
        assert_eq!(c.synchronous(), Synchronous::Normal);
        assert_eq!(c.readers(), DEFAULT_READERS);
        assert_eq!(c.busy_timeout(), DEFAULT_BUSY_TIMEOUT);
        assert_eq!(c.spin_wait(), DEFAULT_SPIN_WAIT);
        assert_eq!(c.cache_kib(), DEFAULT_CACHE_KIB);
        assert_eq!(c.wal_checkpoint_threshold(), DEFAULT_WAL_CHECKPOINT);
        assert_eq!(c.wal_size_limit(), DEFAULT_WAL_SIZE_LIMIT);
        assert_eq!(c.idle_checkpoint(), DEFAULT_IDLE_CHECKPOINT);
        assert!(c.auto_vacuum());
        assert_eq!(c.cleanup_chunk(), DEFAULT_CLEANUP_CHUNK);
        assert_eq!(c.endpoint(), "/tmp/x.db");
        assert_eq!(SqliteConfig::in_memory().endpoint(), ":memory:");
        let invalid = [
            (SqliteConfig::new("/tmp/x.db").with_readers(65), "reader"),
            (SqliteConfig::new(""), "path"),
            (SqliteConfig::new("/tmp/x.db").with_cache_kib(0), "cache"),
            (
                SqliteConfig::new("/tmp/x.db").with_cache_kib(MAX_CACHE_KIB + 1),
                "cache",
            ),
            (
                SqliteConfig::new("/tmp/x.db")
                    .with_spin_wait(MAX_SPIN_WAIT + Duration::from_micros(1)),
                "spin wait",
            ),
            (
                SqliteConfig::new("/tmp/x.db").with_wal_checkpoint(MIN_WAL_CHECKPOINT - 1),
                "WAL checkpoint",
            ),
            (
                SqliteConfig::new("/tmp/x.db").with_wal_checkpoint(MAX_WAL_BYTES + 1),
                "WAL checkpoint",
            ),
            (
                SqliteConfig::new("/tmp/x.db").with_wal_size_limit(MAX_WAL_BYTES + 1),
                "WAL size limit",
            ),
            (
                SqliteConfig::new("/tmp/x.db").with_cleanup_chunk(0),
                "cleanup chunk",
            ),
            (
                SqliteConfig::new("/tmp/x.db").with_cleanup_chunk(MAX_CLEANUP_CHUNK + 1),
                "cleanup chunk",
            ),
        ];
        for (config, field) in invalid {
            match config.validate() {
                Err(Error::Config(m)) => assert!(m.contains(field), "{m} names {field}"),
                other => panic!("{config:?}: {other:?}"),
            }
        }
        let m = SqliteConfig::in_memory().with_readers(4);
        m.validate().unwrap();
        assert_eq!(m.readers(), 0);
    }

    #[test]
    fn setters_set_every_field() {
        let c = SqliteConfig::new("/tmp/x.db")
            .with_table("t")
            .with_synchronous(Synchronous::Full)
            .with_readers(5)
            .with_busy_timeout(Duration::from_millis(7))
            .with_spin_wait(Duration::ZERO)
            .with_cache_kib(64)
            .with_wal_checkpoint(1 << 20)
            .with_wal_size_limit(0)
            .with_idle_checkpoint(Duration::ZERO)
            .with_auto_vacuum(false)
            .with_cleanup_chunk(10);
        assert_eq!(
            (
                c.wal_checkpoint_threshold(),
                c.wal_size_limit(),
                c.idle_checkpoint(),
                c.auto_vacuum(),
                c.cleanup_chunk()
            ),
            (1 << 20, 0, Duration::ZERO, false, 10)
        );
        assert_eq!(
            (
                c.table(),
                c.synchronous(),
                c.readers(),
                c.busy_timeout(),
                c.spin_wait(),
                c.cache_kib()
            ),
            (
                "t",
                Synchronous::Full,
                5,
                Duration::from_millis(7),
                Duration::ZERO,
                64
            )
        );
    }

    #[tokio::test]
    async fn build_validates_before_opening() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("never.db");
        let err = SqliteConfig::new(&path)
            .with_table("bad name")
            .build()
            .await
            .unwrap_err();
        assert!(
            matches!(&err, Error::Config(m) if m.contains("table name")),
            "{err:?}"
        );
        assert!(!path.exists(), "nothing created");
    }

    #[test]
    fn from_vars_reads_every_variable() {
        let c = SqliteConfig::from_vars(&Vars::from_pairs([
            ("SESSION_STORE_SQLITE_PATH", "/var/lib/app/sessions.db"),
            ("SESSION_STORE_SQLITE_TABLE", "web_sessions"),
            ("SESSION_STORE_SQLITE_SYNCHRONOUS", "FULL"),
            ("SESSION_STORE_SQLITE_READERS", "3"),
            ("SESSION_STORE_SQLITE_BUSY_TIMEOUT_MS", "250"),
            ("SESSION_STORE_SQLITE_SPIN_WAIT_US", "0"),
            ("SESSION_STORE_SQLITE_INLINE", "off"),
            ("SESSION_STORE_SQLITE_CACHE_KIB", "1024"),
            ("SESSION_STORE_SQLITE_WAL_CHECKPOINT", "2MiB"),
            ("SESSION_STORE_SQLITE_WAL_SIZE_LIMIT", "512 KiB"),
            ("SESSION_STORE_SQLITE_IDLE_CHECKPOINT_MS", "0"),
            ("SESSION_STORE_SQLITE_AUTO_VACUUM", "off"),
            ("SESSION_STORE_SQLITE_CLEANUP_CHUNK", "1000"),
        ]))
        .unwrap();
        assert_eq!(c.path(), Some(Path::new("/var/lib/app/sessions.db")));
        assert_eq!(c.table(), "web_sessions");
        assert_eq!(c.synchronous(), Synchronous::Full);
        assert_eq!(c.readers(), 3);
        assert_eq!(c.busy_timeout(), Duration::from_millis(250));
        assert_eq!(c.spin_wait(), Duration::ZERO);
        assert!(!c.inline());
        assert_eq!(c.cache_kib(), 1024);
        assert_eq!(c.wal_checkpoint_threshold(), 2 * 1024 * 1024);
        assert_eq!(c.wal_size_limit(), 512 * 1024);
        assert_eq!(c.idle_checkpoint(), Duration::ZERO);
        assert!(!c.auto_vacuum());
        assert_eq!(c.cleanup_chunk(), 1000);

        let m = SqliteConfig::from_vars(&Vars::from_pairs([(
            "SESSION_STORE_SQLITE_PATH",
            ":memory:",
        )]))
        .unwrap();
        assert_eq!(m.location(), &Location::Memory);
        assert_eq!(
            m,
            SqliteConfig::in_memory(),
            "unset variables keep the defaults"
        );
    }

    #[test]
    fn from_vars_requires_the_path() {
        for vars in [
            Vars::from_pairs(Vec::<(String, String)>::new()),
            Vars::from_pairs([("SESSION_STORE_SQLITE_PATH", "")]),
            Vars::from_pairs([("SESSION_STORE_SQLITE_TABLE", "t")]),
        ] {
            match SqliteConfig::from_vars(&vars) {
                Err(Error::Config(m)) => {
                    assert!(m.contains("SESSION_STORE_SQLITE_PATH"), "{m}")
                }
                other => panic!("{other:?}"),
            }
        }
    }

    #[test]
    fn from_vars_errors_name_the_variable() {
        let cases = [
            ("SESSION_STORE_SQLITE_TABLE", "bad name"),
            ("SESSION_STORE_SQLITE_SYNCHRONOUS", "off"),
            ("SESSION_STORE_SQLITE_READERS", "-1"),
            ("SESSION_STORE_SQLITE_READERS", "65"),
            ("SESSION_STORE_SQLITE_BUSY_TIMEOUT_MS", "soon"),
            ("SESSION_STORE_SQLITE_SPIN_WAIT_US", "1001"),
            ("SESSION_STORE_SQLITE_INLINE", "sometimes"),
            ("SESSION_STORE_SQLITE_CACHE_KIB", "0"),
            ("SESSION_STORE_SQLITE_CACHE_KIB", "16777217"),
            ("SESSION_STORE_SQLITE_WAL_CHECKPOINT", "1KiB"),
            ("SESSION_STORE_SQLITE_WAL_CHECKPOINT", "2GiB"),
            ("SESSION_STORE_SQLITE_WAL_SIZE_LIMIT", "lots"),
            ("SESSION_STORE_SQLITE_IDLE_CHECKPOINT_MS", "1.5"),
            ("SESSION_STORE_SQLITE_AUTO_VACUUM", "maybe"),
            ("SESSION_STORE_SQLITE_CLEANUP_CHUNK", "0"),
        ];
        for (name, value) in cases {
            let vars = Vars::from_pairs([("SESSION_STORE_SQLITE_PATH", "x.db"), (name, value)]);
            match SqliteConfig::from_vars(&vars) {
                Err(Error::Config(m)) => assert!(m.starts_with(name), "{name}={value}: {m}"),
                other => panic!("{name}={value}: {other:?}"),
            }
        }
    }
}
