//! Configuration: a validating builder and [`SqliteConfig::from_env`].

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use session_store_core::{Error, Result};

/// Default table name.
pub const DEFAULT_TABLE: &str = "sessions";
/// Default number of reader threads (each with its own connection).
pub const DEFAULT_READERS: usize = 2;
/// Highest accepted reader count.
pub const MAX_READERS: usize = 64;
/// Default time a statement waits for a lock held by another connection or process.
pub const DEFAULT_BUSY_TIMEOUT: Duration = Duration::from_secs(5);
/// Default bound of the busy-wait on both sides of the hand-off to the
/// SQLite threads (see [`SqliteConfigBuilder::spin_wait`]).
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
    /// acknowledged write survives a power loss, at the price of one `fsync`
    /// per write.
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

/// A validated configuration for [`SqliteStore`](crate::SqliteStore).
///
/// Build one with [`SqliteConfig::builder`] or [`SqliteConfig::from_env`].
#[derive(Clone, PartialEq, Eq)]
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

impl SqliteConfig {
    /// A builder for a database file at `path`.
    pub fn builder(path: impl Into<PathBuf>) -> SqliteConfigBuilder {
        SqliteConfigBuilder::new(Location::File(path.into()))
    }

    /// A builder for a private in-memory database (see [`Location::Memory`]).
    pub fn in_memory() -> SqliteConfigBuilder {
        SqliteConfigBuilder::new(Location::Memory)
    }

    /// Reads the configuration from the environment.
    ///
    /// | Variable | Meaning | Default |
    /// | --- | --- | --- |
    /// | `SESSION_STORE_SQLITE_PATH` | Database file path; `:memory:` for a private in-memory database. | required |
    /// | `SESSION_STORE_SQLITE_TABLE` | Table name, `^[A-Za-z_][A-Za-z0-9_]{0,62}$`. | `sessions` |
    /// | `SESSION_STORE_SQLITE_SYNCHRONOUS` | `normal` or `full` (see [`Synchronous`]). | `normal` |
    /// | `SESSION_STORE_SQLITE_READERS` | Reader threads, `0` to `64` (`0`: the writer serves reads too). | `2` |
    /// | `SESSION_STORE_SQLITE_BUSY_TIMEOUT_MS` | Milliseconds a statement waits for a lock held by another process. | `5000` |
    /// | `SESSION_STORE_SQLITE_CACHE_KIB` | Page cache of each connection in KiB, `1` to `16777216` (see [`SqliteConfigBuilder::cache_kib`]). | `32768` |
    /// | `SESSION_STORE_SQLITE_SPIN_WAIT_US` | Microseconds, `0` to `1000`, that callers and idle workers busy-wait before parking (see [`SqliteConfigBuilder::spin_wait`]); `0` turns it off. | `50` |
    ///
    /// # Errors
    /// [`Error::Config`] when the path is missing or a value is invalid (the
    /// message names the variable).
    pub fn from_env() -> Result<Self> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// [`SqliteConfig::from_env`] with an injectable lookup, for tests.
    pub(crate) fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self> {
        let path = lookup("SESSION_STORE_SQLITE_PATH")
            .filter(|p| !p.is_empty())
            .ok_or_else(|| Error::Config("SESSION_STORE_SQLITE_PATH is not set".into()))?;
        let mut builder = if path == ":memory:" {
            Self::in_memory()
        } else {
            Self::builder(path)
        };
        if let Some(table) = lookup("SESSION_STORE_SQLITE_TABLE") {
            builder = builder.table(table);
        }
        if let Some(s) = lookup("SESSION_STORE_SQLITE_SYNCHRONOUS") {
            let mode = Synchronous::parse(&s).ok_or_else(|| {
                Error::Config("SESSION_STORE_SQLITE_SYNCHRONOUS must be `normal` or `full`".into())
            })?;
            builder = builder.synchronous(mode);
        }
        // Each numeric variable: parsed if set, else the builder's default.
        let number = |name: &str, expected: &str| -> Result<Option<u64>> {
            lookup(name)
                .map(|s| {
                    s.trim()
                        .parse::<u64>()
                        .map_err(|_| Error::Config(format!("{name} must be {expected}")))
                })
                .transpose()
        };
        if let Some(n) = number("SESSION_STORE_SQLITE_READERS", "a number from 0 to 64")? {
            builder = builder.readers(usize::try_from(n).unwrap_or(usize::MAX));
        }
        if let Some(ms) = number("SESSION_STORE_SQLITE_BUSY_TIMEOUT_MS", "a number")? {
            builder = builder.busy_timeout(Duration::from_millis(ms));
        }
        if let Some(kib) = number("SESSION_STORE_SQLITE_CACHE_KIB", "a number of KiB")? {
            builder = builder.cache_kib(kib);
        }
        if let Some(us) = number(
            "SESSION_STORE_SQLITE_SPIN_WAIT_US",
            "a number from 0 to 1000",
        )? {
            builder = builder.spin_wait(Duration::from_micros(us));
        }
        builder.build()
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

    /// How long a statement waits for a lock held by another connection.
    pub fn busy_timeout(&self) -> Duration {
        self.busy_timeout
    }

    /// The bound of the busy-wait on both sides of the hand-off to the
    /// SQLite threads (see [`SqliteConfigBuilder::spin_wait`]).
    pub fn spin_wait(&self) -> Duration {
        self.spin_wait
    }

    /// The page cache of each connection, in KiB (see
    /// [`SqliteConfigBuilder::cache_kib`]).
    pub fn cache_kib(&self) -> u64 {
        self.cache_kib
    }
}

/// Builds a [`SqliteConfig`]; [`SqliteConfigBuilder::build`] validates.
#[derive(Debug, Clone)]
#[must_use]
pub struct SqliteConfigBuilder {
    config: SqliteConfig,
}

impl SqliteConfigBuilder {
    fn new(location: Location) -> Self {
        SqliteConfigBuilder {
            config: SqliteConfig {
                location,
                table: DEFAULT_TABLE.to_owned(),
                synchronous: Synchronous::default(),
                readers: DEFAULT_READERS,
                busy_timeout: DEFAULT_BUSY_TIMEOUT,
                spin_wait: DEFAULT_SPIN_WAIT,
                cache_kib: DEFAULT_CACHE_KIB,
            },
        }
    }

    /// The table name (default `sessions`); must match
    /// `^[A-Za-z_][A-Za-z0-9_]{0,62}$` and not start with `sqlite_`.
    pub fn table(mut self, table: impl Into<String>) -> Self {
        self.config.table = table.into();
        self
    }

    /// The durability setting (default [`Synchronous::Normal`]).
    pub fn synchronous(mut self, mode: Synchronous) -> Self {
        self.config.synchronous = mode;
        self
    }

    /// Reader threads, each with its own connection (default 2, at most 64).
    /// `0` sends reads to the writer thread.
    pub fn readers(mut self, n: usize) -> Self {
        self.config.readers = n;
        self
    }

    /// How long a statement waits for a lock held by another connection or
    /// process before failing with a retryable error (default 5 s).
    pub fn busy_timeout(mut self, timeout: Duration) -> Self {
        self.config.busy_timeout = timeout;
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
    pub fn spin_wait(mut self, bound: Duration) -> Self {
        self.config.spin_wait = bound;
        self
    }

    /// The page cache of each connection (the writer and every reader), in
    /// KiB (default 32 MiB, at most 16 GiB; SQLite's `PRAGMA cache_size`).
    /// Size it to the hot part of the table: a lookup whose B-tree pages are
    /// not cached reads them back from the OS, several microseconds each.
    /// Memory is taken as pages are read, not up front.
    pub fn cache_kib(mut self, kib: u64) -> Self {
        self.config.cache_kib = kib;
        self
    }

    /// Validates and returns the configuration.
    ///
    /// # Errors
    /// [`Error::Config`] for an invalid table name, more than 64 readers, a
    /// spin wait over 1 ms, a cache outside 1 KiB to 16 GiB, or
    /// an empty path.
    pub fn build(self) -> Result<SqliteConfig> {
        validate_table_name(&self.config.table)?;
        if self.config.readers > MAX_READERS {
            return Err(Error::Config(format!(
                "reader count {} exceeds the maximum of {MAX_READERS}",
                self.config.readers
            )));
        }
        if self.config.cache_kib == 0 || self.config.cache_kib > MAX_CACHE_KIB {
            return Err(Error::Config(format!(
                "cache of {} KiB is outside 1 to {MAX_CACHE_KIB} KiB",
                self.config.cache_kib
            )));
        }
        if self.config.spin_wait > MAX_SPIN_WAIT {
            return Err(Error::Config(format!(
                "spin wait {:?} exceeds the maximum of {MAX_SPIN_WAIT:?}",
                self.config.spin_wait
            )));
        }
        if let Location::File(p) = &self.config.location {
            if p.as_os_str().is_empty() {
                return Err(Error::Config("empty database path".into()));
            }
        }
        Ok(self.config)
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
    use std::collections::HashMap;

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
                SqliteConfig::in_memory().table(bad).build(),
                Err(Error::Config(_))
            ));
        }
    }

    #[test]
    fn builder_defaults_and_limits() {
        let c = SqliteConfig::builder("/tmp/x.db").build().unwrap();
        assert_eq!(c.table(), DEFAULT_TABLE);
        assert_eq!(c.synchronous(), Synchronous::Normal);
        assert_eq!(c.readers(), DEFAULT_READERS);
        assert_eq!(c.busy_timeout(), DEFAULT_BUSY_TIMEOUT);
        assert_eq!(c.spin_wait(), DEFAULT_SPIN_WAIT);
        assert_eq!(c.cache_kib(), DEFAULT_CACHE_KIB);
        assert!(matches!(
            SqliteConfig::builder("/tmp/x.db").readers(65).build(),
            Err(Error::Config(_))
        ));
        assert!(matches!(
            SqliteConfig::builder("").build(),
            Err(Error::Config(_))
        ));
        assert_eq!(
            SqliteConfig::in_memory()
                .readers(4)
                .build()
                .unwrap()
                .readers(),
            0
        );
    }

    fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |k| map.get(k).cloned()
    }

    #[test]
    fn from_env_reads_every_variable() {
        let c = SqliteConfig::from_lookup(env(&[
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

        let m =
            SqliteConfig::from_lookup(env(&[("SESSION_STORE_SQLITE_PATH", ":memory:")])).unwrap();
        assert_eq!(m.location(), &Location::Memory);
    }

    #[test]
    fn from_env_rejects_bad_values() {
        let cases: &[&[(&str, &str)]] = &[
            &[],
            &[("SESSION_STORE_SQLITE_PATH", "")],
            &[
                ("SESSION_STORE_SQLITE_PATH", "x.db"),
                ("SESSION_STORE_SQLITE_TABLE", "bad name"),
            ],
            &[
                ("SESSION_STORE_SQLITE_PATH", "x.db"),
                ("SESSION_STORE_SQLITE_SYNCHRONOUS", "off"),
            ],
            &[
                ("SESSION_STORE_SQLITE_PATH", "x.db"),
                ("SESSION_STORE_SQLITE_READERS", "-1"),
            ],
            &[
                ("SESSION_STORE_SQLITE_PATH", "x.db"),
                ("SESSION_STORE_SQLITE_BUSY_TIMEOUT_MS", "soon"),
            ],
            &[
                ("SESSION_STORE_SQLITE_PATH", "x.db"),
                ("SESSION_STORE_SQLITE_SPIN_WAIT_US", "1001"),
            ],
            &[
                ("SESSION_STORE_SQLITE_PATH", "x.db"),
                ("SESSION_STORE_SQLITE_CACHE_KIB", "0"),
            ],
        ];
        for case in cases {
            assert!(
                matches!(SqliteConfig::from_lookup(env(case)), Err(Error::Config(_))),
                "{case:?}"
            );
        }
    }
}
