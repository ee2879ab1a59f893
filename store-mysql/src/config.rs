//! [`MySqlConfig`]: defaults, environment variables, `with_*` setters,
//! getters, validation and [`MySqlConfig::build`].

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use session_store_core::config::{redact_url, Vars};
use session_store_core::{Error, Result};
use sqlx::mysql::{MySqlConnectOptions, MySqlPoolOptions, MySqlSslMode};
use sqlx::{AssertSqlSafe, Executor};

use crate::store::{map_sqlx, timed_out, MySqlStore, BACKEND};

/// Prefix of every environment variable read by [`MySqlConfig::from_env`].
pub const ENV_PREFIX: &str = "SESSION_STORE_MYSQL_";

/// Default table: `sessions`.
pub const DEFAULT_TABLE: &str = "sessions";
/// Default operation deadline: 2 s, the same on every backend of this
/// workspace. See [`MySqlConfig::with_operation_timeout`].
pub const DEFAULT_OPERATION_TIMEOUT: Duration = Duration::from_secs(2);

/// Longest accepted table name: the `CHECK` constraint is named
/// `<table>_kind_check`, and MySQL identifiers end at 64 characters.
pub const MAX_TABLE_NAME: usize = 53;

/// How to reach MySQL or MariaDB and where to keep sessions.
///
/// Start from [`MySqlConfig::new`] (a URL) or [`MySqlConfig::from_env`]
/// (`SESSION_STORE_MYSQL_*` variables), adjust with the `with_*` setters and
/// call [`MySqlConfig::build`], which validates every value
/// ([`Error::Config`] for an invalid one) and connects.
///
/// ```no_run
/// # async fn demo() -> session_store_core::Result<()> {
/// use session_store_mysql::MySqlConfig;
///
/// let store = MySqlConfig::new("mysql://app:secret@127.0.0.1:3306/app")
///     .with_table("web_sessions")
///     .with_max_connections(20)
///     .build()
///     .await?;
/// store.migrate().await?;
/// # Ok(()) }
/// ```
///
/// Every connection the store opens is set up once, right after connecting:
/// `REPEATABLE READ` isolation (see the crate docs for why; set explicitly
/// so that a server configured otherwise does not change it), `innodb_lock_wait_timeout` from
/// [`with_lock_wait_timeout`](MySqlConfig::with_lock_wait_timeout), and
/// strict mode (`STRICT_ALL_TABLES`: a value that does not fit is an error,
/// never silently truncated). Connections are never pinged, as in the
/// PostgreSQL store: a connection that went stale fails the one operation
/// that uses it with a retryable [`Error::Backend`] and is closed.
///
/// `Debug` never shows the password (the URL goes through [`redact_url`]).
#[derive(Clone, PartialEq, Eq)]
pub struct MySqlConfig {
    url: String,
    table: String,
    max_connections: u32,
    min_connections: u32,
    acquire_timeout: Duration,
    lock_wait_timeout: Option<Duration>,
    operation_timeout: Duration,
    idle_timeout: Option<Duration>,
    max_lifetime: Option<Duration>,
    lazy_connect: bool,
}

impl MySqlConfig {
    /// A configuration with defaults for everything but the connection URL
    /// (`mysql://user:password@host:port/database?...`, as sqlx parses it;
    /// the database is required, it holds the tables).
    ///
    /// Defaults: table `sessions`, at most 10 connections, none kept open
    /// when idle, operation deadline 2 s ([`DEFAULT_OPERATION_TIMEOUT`],
    /// client side, pool acquire and deadlock retries included), acquire
    /// timeout 2 s (never more than the operation deadline), lock wait
    /// timeout 2 s (server side), idle connections closed after 10 min,
    /// connections recycled after 30 min, one connection opened by
    /// [`build`](MySqlConfig::build).
    pub fn new(url: impl Into<String>) -> Self {
        MySqlConfig {
            url: url.into(),
            table: DEFAULT_TABLE.to_owned(),
            max_connections: 10,
            min_connections: 0,
            acquire_timeout: DEFAULT_OPERATION_TIMEOUT,
            lock_wait_timeout: Some(DEFAULT_OPERATION_TIMEOUT),
            operation_timeout: DEFAULT_OPERATION_TIMEOUT,
            idle_timeout: Some(Duration::from_secs(600)),
            max_lifetime: Some(Duration::from_secs(1800)),
            lazy_connect: false,
        }
    }

    /// Reads the configuration from the process environment: the same as
    /// [`MySqlConfig::from_vars`]`(&Vars::from_env())`. Only the URL is
    /// required; every other variable falls back to the default of
    /// [`MySqlConfig::new`]. Values follow the grammar of
    /// [`session_store_core::config`] (booleans `true`/`false`, `1`/`0`,
    /// `yes`/`no`, `on`/`off`; `…_MS` in whole milliseconds).
    ///
    /// | variable | meaning | default |
    /// | --- | --- | --- |
    /// | `SESSION_STORE_MYSQL_URL` | connection URL with a database (required; may hold a password, never logged) | — |
    /// | `SESSION_STORE_MYSQL_TABLE` | session table name (`^[a-z_][a-z0-9_]{0,52}$`) | `sessions` |
    /// | `SESSION_STORE_MYSQL_MAX_CONNECTIONS` | pool size (1..=10000) | `10` |
    /// | `SESSION_STORE_MYSQL_MIN_CONNECTIONS` | connections kept open when idle | `0` |
    /// | `SESSION_STORE_MYSQL_OPERATION_TIMEOUT_MS` | the operation deadline: client-side bound on one whole operation, pool acquire (connecting included) plus the statements and deadlock retries (> 0; see [`MySqlConfig::with_operation_timeout`]) | `2000` |
    /// | `SESSION_STORE_MYSQL_ACQUIRE_TIMEOUT_MS` | max wait for a pooled connection, including connecting (> 0; capped by the operation deadline) | `2000` |
    /// | `SESSION_STORE_MYSQL_LOCK_WAIT_TIMEOUT_MS` | server-side `innodb_lock_wait_timeout`, rounded up to whole seconds; `0` = the server's default | `2000` |
    /// | `SESSION_STORE_MYSQL_IDLE_TIMEOUT_MS` | close pooled connections idle this long; `0` = never | `600000` |
    /// | `SESSION_STORE_MYSQL_MAX_LIFETIME_MS` | recycle connections this old; `0` = never | `1800000` |
    /// | `SESSION_STORE_MYSQL_LAZY_CONNECT` | boolean: [`build`](MySqlConfig::build) opens no connection | `false` |
    ///
    /// # Errors
    /// [`Error::Config`] naming the variable when the URL is missing or a value
    /// does not parse. Other checks (the table name, ranges) happen in
    /// [`MySqlConfig::validate`], which [`MySqlConfig::build`] runs.
    pub fn from_env() -> Result<Self> {
        Self::from_vars(&Vars::from_env())
    }

    /// Like [`MySqlConfig::from_env`], reading the variables from `vars`
    /// (a map in tests, a secrets manager in production).
    ///
    /// ```
    /// use session_store_core::config::Vars;
    /// use session_store_mysql::MySqlConfig;
    ///
    /// let vars = Vars::from_pairs([
    ///     ("SESSION_STORE_MYSQL_URL", "mysql://app@127.0.0.1/app"),
    ///     ("SESSION_STORE_MYSQL_TABLE", "web_sessions"),
    /// ]);
    /// let config = MySqlConfig::from_vars(&vars)?;
    /// assert_eq!(config.table(), "web_sessions");
    /// # Ok::<(), session_store_core::Error>(())
    /// ```
    ///
    /// # Errors
    /// As [`MySqlConfig::from_env`].
    pub fn from_vars(vars: &Vars) -> Result<Self> {
        let name = |suffix: &str| format!("{ENV_PREFIX}{suffix}");
        let mut config = MySqlConfig::new(vars.required(&name("URL"))?);
        if let Some(v) = vars.string(&name("TABLE")) {
            config.table = v;
        }
        if let Some(v) = vars.number(&name("MAX_CONNECTIONS"))? {
            config.max_connections = v;
        }
        if let Some(v) = vars.number(&name("MIN_CONNECTIONS"))? {
            config.min_connections = v;
        }
        if let Some(v) = vars.millis(&name("ACQUIRE_TIMEOUT_MS"))? {
            config.acquire_timeout = v;
        }
        if let Some(v) = vars.millis(&name("LOCK_WAIT_TIMEOUT_MS"))? {
            config.lock_wait_timeout = nonzero(v);
        }
        if let Some(v) = vars.millis(&name("OPERATION_TIMEOUT_MS"))? {
            config.operation_timeout = v;
        }
        if let Some(v) = vars.millis(&name("IDLE_TIMEOUT_MS"))? {
            config.idle_timeout = nonzero(v);
        }
        if let Some(v) = vars.millis(&name("MAX_LIFETIME_MS"))? {
            config.max_lifetime = nonzero(v);
        }
        if let Some(v) = vars.bool(&name("LAZY_CONNECT"))? {
            config.lazy_connect = v;
        }
        Ok(config)
    }

    /// The session table's name (must match `^[a-z_][a-z0-9_]{0,52}$`).
    /// It lives in the URL's database, next to the `session_store_meta`
    /// table that records schema versions.
    pub fn with_table(mut self, table: impl Into<String>) -> Self {
        self.table = table.into();
        self
    }

    /// Maximum number of pooled connections (1 to 10000).
    pub fn with_max_connections(mut self, n: u32) -> Self {
        self.max_connections = n;
        self
    }

    /// Connections kept open while idle (at most `max_connections`).
    pub fn with_min_connections(mut self, n: u32) -> Self {
        self.min_connections = n;
        self
    }

    /// How long an operation waits for a pooled connection, including
    /// opening a new one, before failing with a retryable [`Error::Backend`]
    /// (default 2 s). The operation deadline
    /// ([`with_operation_timeout`](MySqlConfig::with_operation_timeout))
    /// caps it: the effective acquire timeout is the smaller of the two.
    pub fn with_acquire_timeout(mut self, timeout: Duration) -> Self {
        self.acquire_timeout = timeout;
        self
    }

    /// The server-side `innodb_lock_wait_timeout` set on every connection
    /// (default 2 s; `None`: the server's default, 50 s out of the box), rounded up to
    /// whole seconds. A statement that waits longer for a row lock fails
    /// with a retryable [`Error::Backend`]. MySQL and MariaDB have no
    /// statement timeout both understand; the operation timeout bounds the
    /// rest.
    pub fn with_lock_wait_timeout(mut self, timeout: Option<Duration>) -> Self {
        self.lock_wait_timeout = timeout;
        self
    }

    /// The operation deadline (default 2 s, [`DEFAULT_OPERATION_TIMEOUT`];
    /// must be positive): the client-side bound on one whole store operation,
    /// from the call to its answer: waiting for a pooled connection
    /// (connecting a new one included), the statements or the transaction,
    /// and the reruns of a deadlock victim with their backoff. Every backend
    /// of this workspace has this setting with this meaning and this
    /// default. [`build`](MySqlConfig::build) is bounded by it too
    /// (operation `"connect"`).
    ///
    /// When it passes, the operation fails with a retryable
    /// [`Error::Backend`] naming the operation, whose source is an
    /// [`std::io::Error`] of kind [`TimedOut`](std::io::ErrorKind::TimedOut),
    /// and its connection is closed, never reused in an unknown state (the
    /// server then rolls back any open transaction); a single-statement
    /// write may or may not have been applied, as with any lost reply.
    ///
    /// Why 2 s: a healthy operation takes milliseconds, so 2 s never cuts a
    /// working server short, while a web request that meets an unreachable
    /// or stalled server still gets its 503 quickly instead of holding a
    /// worker and a client for the 5-10 s a proxy or user would wait.
    pub fn with_operation_timeout(mut self, timeout: Duration) -> Self {
        self.operation_timeout = timeout;
        self
    }

    /// Close connections idle for this long (`None`: never). The store checks
    /// its warm connections when it is next used.
    pub fn with_idle_timeout(mut self, timeout: Option<Duration>) -> Self {
        self.idle_timeout = timeout;
        self
    }

    /// Recycle connections older than this (`None`: never).
    pub fn with_max_lifetime(mut self, lifetime: Option<Duration>) -> Self {
        self.max_lifetime = lifetime;
        self
    }

    /// Whether [`build`](MySqlConfig::build) skips opening a connection
    /// (`false` by default). With `true`, building does no I/O and the first
    /// operation connects, so a wrong URL or an unreachable server shows up
    /// as that operation's error.
    pub fn with_lazy_connect(mut self, lazy: bool) -> Self {
        self.lazy_connect = lazy;
        self
    }

    /// The connection URL as given, password included: do not log it (use
    /// [`MySqlConfig::endpoint`]).
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The connection URL with its password replaced by `***`: what
    /// `Debug` and every [`Error::Backend`] of the store show.
    pub fn endpoint(&self) -> String {
        redact_url(&self.url)
    }

    /// The session table's name.
    pub fn table(&self) -> &str {
        &self.table
    }

    /// The maximum number of pooled connections.
    pub fn max_connections(&self) -> u32 {
        self.max_connections
    }

    /// The number of connections kept open while idle.
    pub fn min_connections(&self) -> u32 {
        self.min_connections
    }

    /// How long an operation waits for a pooled connection.
    pub fn acquire_timeout(&self) -> Duration {
        self.acquire_timeout
    }

    /// The server-side `innodb_lock_wait_timeout` (`None`: the server's
    /// default).
    pub fn lock_wait_timeout(&self) -> Option<Duration> {
        self.lock_wait_timeout
    }

    /// The client-side bound on one whole operation.
    pub fn operation_timeout(&self) -> Duration {
        self.operation_timeout
    }

    /// How long a connection may stay idle (`None`: forever).
    pub fn idle_timeout(&self) -> Option<Duration> {
        self.idle_timeout
    }

    /// How old a connection may get (`None`: no limit).
    pub fn max_lifetime(&self) -> Option<Duration> {
        self.max_lifetime
    }

    /// Whether [`build`](MySqlConfig::build) skips opening a connection.
    pub fn lazy_connect(&self) -> bool {
        self.lazy_connect
    }

    /// Checks every value, without I/O.
    ///
    /// # Errors
    /// [`Error::Config`] naming the field for an invalid table name, URL
    /// (unparsable or without a database), pool size or timeout.
    pub fn validate(&self) -> Result<()> {
        validate_table_name(&self.table)?;
        if self.max_connections == 0 || self.max_connections > 10_000 {
            return Err(Error::Config(
                "max_connections: must be between 1 and 10000".into(),
            ));
        }
        if self.min_connections > self.max_connections {
            return Err(Error::Config(
                "min_connections: must not exceed max_connections".into(),
            ));
        }
        if self.acquire_timeout.is_zero() {
            return Err(Error::Config("acquire_timeout: must be positive".into()));
        }
        if self.operation_timeout.is_zero() {
            return Err(Error::Config("operation_timeout: must be positive".into()));
        }
        let options = self.connect_options()?;
        if options.get_database().is_none_or(str::is_empty) {
            return Err(Error::Config(
                "url: must name a database (mysql://host/database)".into(),
            ));
        }
        Ok(())
    }

    /// Validates the configuration, creates the pool and opens one
    /// connection (so a wrong URL or an unreachable server shows up here,
    /// unless [`with_lazy_connect`](MySqlConfig::with_lazy_connect)).
    /// Does not touch the schema: call
    /// [`MySqlStore::migrate`](crate::MySqlStore::migrate).
    ///
    /// # Errors
    /// [`Error::Config`] for an invalid configuration; [`Error::Backend`]
    /// (backend `"mysql"`, operation `"connect"`, the redacted URL as
    /// endpoint; retryable when the server is unreachable) when the server
    /// cannot be reached in time or refuses the login.
    pub async fn build(self) -> Result<MySqlStore> {
        self.validate()?;
        let options = self.connect_options()?;
        let pool = if self.lazy_connect {
            self.pool_options().connect_lazy_with(options)
        } else {
            let connect = self.pool_options().connect_with(options);
            match tokio::time::timeout(self.operation_timeout, connect).await {
                Ok(Ok(pool)) => pool,
                Ok(Err(e)) => {
                    return Err(map_sqlx(e).context(BACKEND, "connect", Some(&self.endpoint())))
                }
                Err(_) => {
                    return Err(timed_out(self.operation_timeout).context(
                        BACKEND,
                        "connect",
                        Some(&self.endpoint()),
                    ))
                }
            }
        };
        Ok(MySqlStore::new(pool, &self))
    }

    /// The sqlx connection options: the URL, utf8mb4, and no TLS attempt
    /// (this crate is built without a TLS stack).
    fn connect_options(&self) -> Result<MySqlConnectOptions> {
        // The parse error is not kept: it may quote the URL, password included.
        let options = MySqlConnectOptions::from_str(&self.url)
            .map_err(|_| Error::Config("url: the MySQL connection URL does not parse".into()))?;
        Ok(options.charset("utf8mb4").ssl_mode(MySqlSslMode::Disabled))
    }

    /// The session setup every new connection runs once.
    fn session_setup(&self) -> Vec<String> {
        let mut setup = vec![
            // Set explicitly, not inherited from the server's default: see
            // the crate docs, "Transactions and locks", for why not READ
            // COMMITTED.
            "SET SESSION TRANSACTION ISOLATION LEVEL REPEATABLE READ".to_owned(),
            // A value that does not fit is an error, never a silent truncation.
            "SET SESSION sql_mode = CONCAT(@@sql_mode, ',STRICT_ALL_TABLES')".to_owned(),
        ];
        if let Some(wait) = self.lock_wait_timeout {
            let seconds = wait.as_millis().div_ceil(1000).clamp(1, 1_073_741_824);
            setup.push(format!("SET SESSION innodb_lock_wait_timeout = {seconds}"));
        }
        setup
    }

    /// The pool options: sizes, timeouts, the session setup, and no ping
    /// before each acquire.
    fn pool_options(&self) -> MySqlPoolOptions {
        let setup = self.session_setup();
        MySqlPoolOptions::new()
            .max_connections(self.max_connections)
            .min_connections(self.min_connections)
            // The operation deadline bounds the acquire too.
            .acquire_timeout(self.acquire_timeout.min(self.operation_timeout))
            .idle_timeout(self.idle_timeout)
            .max_lifetime(self.max_lifetime)
            // A ping per acquire would double the cost of a read; a stale
            // connection fails one operation (retryable) and is dropped.
            .test_before_acquire(false)
            .after_connect(move |conn, _meta| {
                let setup = setup.clone();
                Box::pin(async move {
                    for statement in setup {
                        conn.execute(AssertSqlSafe(statement)).await?;
                    }
                    Ok(())
                })
            })
    }
}

impl fmt::Debug for MySqlConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // A URL sqlx cannot parse may be anything (a password pasted in the
        // wrong place): shown only as unparsable.
        let url = match MySqlConnectOptions::from_str(&self.url) {
            Ok(_) => self.endpoint(),
            Err(_) => "<unparsable url>".to_owned(),
        };
        f.debug_struct("MySqlConfig")
            .field("url", &url)
            .field("table", &self.table)
            .field("max_connections", &self.max_connections)
            .field("min_connections", &self.min_connections)
            .field("acquire_timeout", &self.acquire_timeout)
            .field("lock_wait_timeout", &self.lock_wait_timeout)
            .field("operation_timeout", &self.operation_timeout)
            .field("idle_timeout", &self.idle_timeout)
            .field("max_lifetime", &self.max_lifetime)
            .field("lazy_connect", &self.lazy_connect)
            .finish()
    }
}

/// Checks a table name against `^[a-z_][a-z0-9_]{0,52}$`.
///
/// Names are also backquoted in SQL; the pattern keeps them portable (lower
/// case, because whether MySQL table names are case-sensitive depends on
/// the server's `lower_case_table_names` and file system) and leaves room
/// for the `_kind_check` suffix of the table's `CHECK` constraint within
/// MySQL's 64-character identifier limit.
///
/// # Errors
/// [`Error::Config`] naming the field (the value is not echoed).
pub fn validate_table_name(name: &str) -> Result<()> {
    let bytes = name.as_bytes();
    let ok = !bytes.is_empty()
        && bytes.len() <= MAX_TABLE_NAME
        && matches!(bytes[0], b'a'..=b'z' | b'_')
        && bytes
            .iter()
            .all(|b| matches!(b, b'a'..=b'z' | b'0'..=b'9' | b'_'));
    if ok {
        Ok(())
    } else {
        Err(Error::Config(
            "table: name must match ^[a-z_][a-z0-9_]{0,52}$".into(),
        ))
    }
}

/// `0` means "none" for the optional durations.
fn nonzero(d: Duration) -> Option<Duration> {
    (!d.is_zero()).then_some(d)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(pairs: &[(&str, &str)]) -> Vars {
        Vars::from_pairs(
            pairs
                .iter()
                .map(|(k, v)| (format!("{ENV_PREFIX}{k}"), (*v).to_owned())),
        )
    }

    fn config_error(result: Result<MySqlConfig>) -> String {
        match result {
            Err(Error::Config(m)) => m,
            other => panic!("expected a configuration error, got {other:?}"),
        }
    }

    #[test]
    fn table_names_follow_the_pattern() {
        for good in ["a", "_", "sessions", "s_1", &"a".repeat(MAX_TABLE_NAME)] {
            validate_table_name(good).unwrap();
        }
        for bad in [
            "",
            "1abc",
            "Sessions",
            "a-b",
            "a b",
            "a`b",
            "a\"b",
            "a;drop table x",
            "é",
            "a\0",
            "a.b",
            &"a".repeat(MAX_TABLE_NAME + 1),
        ] {
            assert!(
                matches!(validate_table_name(bad), Err(Error::Config(_))),
                "{bad:?}"
            );
            let config = MySqlConfig::new("mysql://127.0.0.1/x").with_table(bad);
            assert!(matches!(config.validate(), Err(Error::Config(m)) if m.starts_with("table")));
        }
    }

    #[test]
    fn from_vars_reads_every_variable() {
        let c = MySqlConfig::from_vars(&vars(&[
            ("URL", "mysql://u:pw@127.0.0.1:3307/db"),
            ("TABLE", "web_sessions"),
            ("MAX_CONNECTIONS", "7"),
            ("MIN_CONNECTIONS", "2"),
            ("ACQUIRE_TIMEOUT_MS", "1500"),
            ("LOCK_WAIT_TIMEOUT_MS", "0"),
            ("OPERATION_TIMEOUT_MS", "2500"),
            ("IDLE_TIMEOUT_MS", "0"),
            ("MAX_LIFETIME_MS", "60000"),
            ("LAZY_CONNECT", "yes"),
        ]))
        .unwrap();
        assert_eq!(c.url(), "mysql://u:pw@127.0.0.1:3307/db");
        assert_eq!(c.table(), "web_sessions");
        assert_eq!(c.max_connections(), 7);
        assert_eq!(c.min_connections(), 2);
        assert_eq!(c.acquire_timeout(), Duration::from_millis(1500));
        assert_eq!(c.lock_wait_timeout(), None);
        assert_eq!(c.operation_timeout(), Duration::from_millis(2500));
        assert_eq!(c.idle_timeout(), None);
        assert_eq!(c.max_lifetime(), Some(Duration::from_secs(60)));
        assert!(c.lazy_connect());
        c.validate().unwrap();
        let built = MySqlConfig::new("mysql://u:pw@127.0.0.1:3307/db")
            .with_table("web_sessions")
            .with_max_connections(7)
            .with_min_connections(2)
            .with_acquire_timeout(Duration::from_millis(1500))
            .with_lock_wait_timeout(None)
            .with_operation_timeout(Duration::from_millis(2500))
            .with_idle_timeout(None)
            .with_max_lifetime(Some(Duration::from_secs(60)))
            .with_lazy_connect(true);
        assert_eq!(c, built);
        let c = MySqlConfig::from_vars(&vars(&[
            ("URL", "mysql://127.0.0.1/x"),
            ("LOCK_WAIT_TIMEOUT_MS", "1500"),
        ]))
        .unwrap();
        assert_eq!(c.lock_wait_timeout(), Some(Duration::from_millis(1500)));
        assert!(c
            .session_setup()
            .contains(&"SET SESSION innodb_lock_wait_timeout = 2".to_owned()));
    }

    #[test]
    fn from_vars_defaults_and_required_url() {
        let c = MySqlConfig::from_vars(&vars(&[("URL", "mysql://127.0.0.1/x")])).unwrap();
        assert_eq!(c, MySqlConfig::new("mysql://127.0.0.1/x"));
        assert_eq!(c.table(), DEFAULT_TABLE);
        for missing in [vars(&[]), vars(&[("URL", "  ")])] {
            assert_eq!(
                config_error(MySqlConfig::from_vars(&missing)),
                "SESSION_STORE_MYSQL_URL is not set"
            );
        }
    }

    #[test]
    fn a_bad_value_names_its_variable() {
        for (var, value) in [
            ("MAX_CONNECTIONS", "-1"),
            ("MIN_CONNECTIONS", "many"),
            ("ACQUIRE_TIMEOUT_MS", "1.5"),
            ("LOCK_WAIT_TIMEOUT_MS", "5s"),
            ("OPERATION_TIMEOUT_MS", "-10"),
            ("IDLE_TIMEOUT_MS", "ten"),
            ("MAX_LIFETIME_MS", "1e3"),
            ("LAZY_CONNECT", "maybe"),
        ] {
            let message = config_error(MySqlConfig::from_vars(&vars(&[
                ("URL", "mysql://x/db"),
                (var, value),
            ])));
            assert!(
                message.starts_with(&format!("{ENV_PREFIX}{var}: expected ")),
                "{var}: {message}"
            );
            assert!(message.contains(&format!("{value:?}")), "{message}");
        }
    }

    #[test]
    fn validate_rejects_bad_settings() {
        let base = MySqlConfig::new("mysql://127.0.0.1/x");
        for (bad, field) in [
            (base.clone().with_max_connections(0), "max_connections"),
            (base.clone().with_max_connections(10_001), "max_connections"),
            (base.clone().with_min_connections(11), "min_connections"),
            (
                base.clone().with_acquire_timeout(Duration::ZERO),
                "acquire_timeout",
            ),
            (
                base.clone().with_operation_timeout(Duration::ZERO),
                "operation_timeout",
            ),
            (base.clone().with_table("Sessions"), "table"),
            (MySqlConfig::new("not a url"), "url"),
            (MySqlConfig::new("mysql://127.0.0.1"), "url"),
            (MySqlConfig::new("mysql://127.0.0.1/"), "url"),
        ] {
            assert!(
                matches!(bad.validate(), Err(Error::Config(ref m)) if m.starts_with(field)),
                "{bad:?}: {:?}",
                bad.validate()
            );
        }
    }

    #[test]
    fn debug_hides_the_password() {
        let c = MySqlConfig::new("mysql://alice:s3cr3t-pw@127.0.0.1:3306/db");
        let dbg = format!("{c:?}");
        assert!(!dbg.contains("s3cr3t-pw"), "{dbg}");
        assert!(dbg.contains("alice") && dbg.contains("127.0.0.1"), "{dbg}");
        assert!(!c.endpoint().contains("s3cr3t-pw"));
        let c = MySqlConfig::new("::s3cr3t-pw::");
        assert!(!format!("{c:?}").contains("s3cr3t-pw"));
    }
}
