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
    pub(crate) cache_kib: u64,
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
            .field("cache_kib", &self.cache_kib)
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
            cache_kib: DEFAULT_CACHE_KIB,
        }
    }

    /// A database file at `path` (created if missing), with the defaults:
    /// table [`DEFAULT_TABLE`], [`Synchronous::Normal`], [`DEFAULT_READERS`]
    /// readers, [`DEFAULT_BUSY_TIMEOUT`], [`DEFAULT_SPIN_WAIT`] and
    /// [`DEFAULT_CACHE_KIB`].
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
    /// writer thread. Ignored in memory.
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
    pub fn with_spin_wait(mut self, bound: Duration) -> Self {
        self.spin_wait = bound;
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

    /// The page cache of each connection, in KiB (see
    /// [`SqliteConfig::with_cache_kib`]).
    pub fn cache_kib(&self) -> u64 {
        self.cache_kib
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
    /// outside 1 KiB to [`MAX_CACHE_KIB`] KiB, or an empty path.
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
            .with_cache_kib(64);
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
            ("SESSION_STORE_SQLITE_CACHE_KIB", "1024"),
        ]))
        .unwrap();
        assert_eq!(c.path(), Some(Path::new("/var/lib/app/sessions.db")));
        assert_eq!(c.table(), "web_sessions");
        assert_eq!(c.synchronous(), Synchronous::Full);
        assert_eq!(c.readers(), 3);
        assert_eq!(c.busy_timeout(), Duration::from_millis(250));
        assert_eq!(c.spin_wait(), Duration::ZERO);
        assert_eq!(c.cache_kib(), 1024);

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
            ("SESSION_STORE_SQLITE_CACHE_KIB", "0"),
            ("SESSION_STORE_SQLITE_CACHE_KIB", "16777217"),
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
