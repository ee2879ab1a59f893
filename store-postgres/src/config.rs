//! [`PostgresConfig`]: defaults, environment variables, `with_*` setters,
//! getters, validation and [`PostgresConfig::build`].

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use session_store_core::config::{redact_url, Vars};
use session_store_core::{Error, Result};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};

use crate::store::{map_sqlx, timed_out, PostgresStore, BACKEND};

/// Prefix of every environment variable read by [`PostgresConfig::from_env`].
pub const ENV_PREFIX: &str = "SESSION_STORE_POSTGRES_";

/// Default schema: `public`.
pub const DEFAULT_SCHEMA: &str = "public";
/// Default table: `sessions`.
pub const DEFAULT_TABLE: &str = "sessions";
/// Default operation deadline: 2 s, the same on every backend of this
/// workspace. See [`PostgresConfig::with_operation_timeout`].
pub const DEFAULT_OPERATION_TIMEOUT: Duration = Duration::from_secs(2);

/// How to reach PostgreSQL and where to keep sessions.
///
/// Start from [`PostgresConfig::new`] (a URL) or [`PostgresConfig::from_env`]
/// (`SESSION_STORE_POSTGRES_*` variables), adjust with the `with_*` setters
/// and call [`PostgresConfig::build`], which validates every value
/// ([`Error::Config`] for an invalid one) and connects.
///
/// ```no_run
/// # async fn demo() -> session_store_core::Result<()> {
/// use session_store_postgres::PostgresConfig;
///
/// let store = PostgresConfig::new("postgres://app:secret@127.0.0.1:5432/app")
///     .with_schema("auth")
///     .with_max_connections(20)
///     .build()
///     .await?;
/// store.migrate().await?;
/// # Ok(()) }
/// ```
///
/// Connections are never pinged: not before use (sqlx's
/// `test_before_acquire` is off) and not after use (the store keeps the
/// connections it used checked out and warm rather than handing them back to
/// sqlx, which would ping them on release). Either ping would add a round trip
/// per operation and roughly double the cost of a read. A connection that went
/// stale (server restart, network cut) fails the one operation that uses it
/// with a retryable [`Error::Backend`] and is closed; the next operation opens
/// a fresh one. The store never holds more than `max_connections`.
///
/// `Debug` never shows the password (the URL goes through
/// [`redact_url`]).
#[derive(Clone, PartialEq, Eq)]
pub struct PostgresConfig {
    url: String,
    schema: String,
    table: String,
    unlogged: bool,
    max_connections: u32,
    min_connections: u32,
    acquire_timeout: Duration,
    statement_timeout: Option<Duration>,
    operation_timeout: Duration,
    idle_timeout: Option<Duration>,
    max_lifetime: Option<Duration>,
    lazy_connect: bool,
}

impl PostgresConfig {
    /// A configuration with defaults for everything but the connection URL
    /// (`postgres://user:password@host:port/database?...`, as sqlx parses it).
    ///
    /// Defaults: schema `public`, table `sessions`, logged table, at most 10
    /// connections, none kept open when idle, operation deadline 2 s
    /// ([`DEFAULT_OPERATION_TIMEOUT`], client side, pool acquire included),
    /// acquire timeout 2 s (never more than the operation deadline),
    /// statement timeout 2 s (server side), idle connections closed after
    /// 10 min, connections recycled after 30 min, one connection opened by
    /// [`build`](PostgresConfig::build).
    pub fn new(url: impl Into<String>) -> Self {
        PostgresConfig {
            url: url.into(),
            schema: DEFAULT_SCHEMA.to_owned(),
            table: DEFAULT_TABLE.to_owned(),
            unlogged: false,
            max_connections: 10,
            min_connections: 0,
            acquire_timeout: DEFAULT_OPERATION_TIMEOUT,
            statement_timeout: Some(DEFAULT_OPERATION_TIMEOUT),
            operation_timeout: DEFAULT_OPERATION_TIMEOUT,
            idle_timeout: Some(Duration::from_secs(600)),
            max_lifetime: Some(Duration::from_secs(1800)),
            lazy_connect: false,
        }
    }

    /// Reads the configuration from the process environment: the same as
    /// [`PostgresConfig::from_vars`]`(&Vars::from_env())`. Only the URL is
    /// required; every other variable falls back to the default of
    /// [`PostgresConfig::new`]. Values follow the grammar of
    /// [`session_store_core::config`] (booleans `true`/`false`, `1`/`0`,
    /// `yes`/`no`, `on`/`off`; `…_MS` in whole milliseconds).
    ///
    /// | variable | meaning | default |
    /// | --- | --- | --- |
    /// | `SESSION_STORE_POSTGRES_URL` | connection URL (required; may hold a password, never logged) | — |
    /// | `SESSION_STORE_POSTGRES_SCHEMA` | schema holding the tables (`^[a-z_][a-z0-9_]{0,62}$`) | `public` |
    /// | `SESSION_STORE_POSTGRES_TABLE` | session table name (same pattern) | `sessions` |
    /// | `SESSION_STORE_POSTGRES_UNLOGGED` | boolean: create the table `UNLOGGED`, see [`PostgresConfig::with_unlogged`] | `false` |
    /// | `SESSION_STORE_POSTGRES_MAX_CONNECTIONS` | pool size (1..=10000) | `10` |
    /// | `SESSION_STORE_POSTGRES_MIN_CONNECTIONS` | connections kept open when idle | `0` |
    /// | `SESSION_STORE_POSTGRES_OPERATION_TIMEOUT_MS` | the operation deadline: client-side bound on one whole operation, pool acquire (connecting included) plus the statement (> 0; see [`PostgresConfig::with_operation_timeout`]) | `2000` |
    /// | `SESSION_STORE_POSTGRES_ACQUIRE_TIMEOUT_MS` | max wait for a pooled connection, including connecting (> 0; capped by the operation deadline) | `2000` |
    /// | `SESSION_STORE_POSTGRES_STATEMENT_TIMEOUT_MS` | server-side `statement_timeout`; `0` = none | `2000` |
    /// | `SESSION_STORE_POSTGRES_IDLE_TIMEOUT_MS` | close pooled connections idle this long; `0` = never | `600000` |
    /// | `SESSION_STORE_POSTGRES_MAX_LIFETIME_MS` | recycle connections this old; `0` = never | `1800000` |
    ///
    /// # Errors
    /// [`Error::Config`] naming the variable when the URL is missing or a value
    /// does not parse. Other checks (identifiers, ranges) happen in
    /// [`PostgresConfig::validate`], which [`PostgresConfig::build`] runs.
    pub fn from_env() -> Result<Self> {
        Self::from_vars(&Vars::from_env())
    }

    /// Like [`PostgresConfig::from_env`], reading the variables from `vars`
    /// (a map in tests, a secrets manager in production).
    ///
    /// ```
    /// use session_store_core::config::Vars;
    /// use session_store_postgres::PostgresConfig;
    ///
    /// let vars = Vars::from_pairs([
    ///     ("SESSION_STORE_POSTGRES_URL", "postgres://app@127.0.0.1/app"),
    ///     ("SESSION_STORE_POSTGRES_SCHEMA", "auth"),
    /// ]);
    /// let config = PostgresConfig::from_vars(&vars)?;
    /// assert_eq!(config.schema(), "auth");
    /// # Ok::<(), session_store_core::Error>(())
    /// ```
    ///
    /// # Errors
    /// As [`PostgresConfig::from_env`].
    pub fn from_vars(vars: &Vars) -> Result<Self> {
        let name = |suffix: &str| format!("{ENV_PREFIX}{suffix}");
        let mut config = PostgresConfig::new(vars.required(&name("URL"))?);
        if let Some(v) = vars.string(&name("SCHEMA")) {
            config.schema = v;
        }
        if let Some(v) = vars.string(&name("TABLE")) {
            config.table = v;
        }
        if let Some(v) = vars.bool(&name("UNLOGGED"))? {
            config.unlogged = v;
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
        if let Some(v) = vars.millis(&name("STATEMENT_TIMEOUT_MS"))? {
            config.statement_timeout = nonzero(v);
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
        Ok(config)
    }

    /// The schema holding the session table and the `session_store_meta`
    /// table (must match `^[a-z_][a-z0-9_]{0,62}$`). Created by
    /// [`migrate`](crate::PostgresStore::migrate) if missing.
    pub fn with_schema(mut self, schema: impl Into<String>) -> Self {
        self.schema = schema.into();
        self
    }

    /// The session table's name (must match `^[a-z_][a-z0-9_]{0,62}$`).
    pub fn with_table(mut self, table: impl Into<String>) -> Self {
        self.table = table.into();
        self
    }

    /// Create the session table `UNLOGGED`.
    ///
    /// Trade-off: writes skip the write-ahead log, so creates, saves, touches
    /// and rotations are noticeably faster; but after a server crash (not a
    /// clean shutdown) PostgreSQL **truncates** the table, logging every user
    /// out, and the table is **not replicated** to streaming standbys, so a
    /// failover also loses every session. Fine when sessions are cheap to
    /// recreate; wrong when they carry state you cannot lose.
    ///
    /// Applies when [`migrate`](crate::PostgresStore::migrate) creates the
    /// table; an existing table keeps its kind (change it yourself with
    /// `ALTER TABLE ... SET LOGGED | UNLOGGED`, which rewrites the table).
    pub fn with_unlogged(mut self, unlogged: bool) -> Self {
        self.unlogged = unlogged;
        self
    }

    /// Maximum number of pooled connections (1 to 10000).
    ///
    /// Operations beyond `max_connections` wait in one first-come,
    /// first-served queue for the next free connection. Operations on more
    /// connections than the server has cores wait for a CPU on the server
    /// instead, where the kernel's scheduler is not first-come,
    /// first-served: measured on 2 cores (`examples/pg_tail.rs`), 64 tasks
    /// loading on 64 connections had a p99 2-3x that of the same tasks on 4
    /// or 10 connections, no more throughput, and some tasks completed a
    /// third as many loads as others. Writes wait for the WAL flush rather
    /// than a CPU, and concurrent commits share a flush, so a write-heavy
    /// load gains throughput from more connections (64 tasks saving there:
    /// 0.8k/s on 4 connections, 2.3k/s on 10, 4k/s on 64).
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
    /// ([`with_operation_timeout`](PostgresConfig::with_operation_timeout))
    /// caps it: the effective acquire timeout is the smaller of the two.
    pub fn with_acquire_timeout(mut self, timeout: Duration) -> Self {
        self.acquire_timeout = timeout;
        self
    }

    /// The server-side `statement_timeout` set on every connection (`None`:
    /// the server's default; default 2 s). Whole milliseconds are used. The
    /// client gives up at the operation deadline whatever this says; this
    /// makes the server stop working on a statement nobody waits for.
    pub fn with_statement_timeout(mut self, timeout: Option<Duration>) -> Self {
        self.statement_timeout = timeout;
        self
    }

    /// The operation deadline (default 2 s, [`DEFAULT_OPERATION_TIMEOUT`];
    /// must be positive): the client-side bound on one whole store operation,
    /// from the call to its answer: waiting for a pooled connection
    /// (connecting a new one included) plus the statement's round trips.
    /// Every backend of this workspace has this setting with this meaning
    /// and this default. [`build`](PostgresConfig::build) is bounded by it
    /// too (operation `"connect"`).
    ///
    /// When it passes, the operation fails with a retryable
    /// [`Error::Backend`] naming the operation, whose source is an
    /// [`std::io::Error`] of kind [`TimedOut`](std::io::ErrorKind::TimedOut);
    /// the connection it was using is closed, never reused in an unknown
    /// state. A write may or may not have been applied, as with any lost
    /// reply.
    ///
    /// Why 2 s: a healthy operation takes milliseconds (its p99 stays in the
    /// tens of milliseconds under load), so 2 s never cuts a working server
    /// short, while a web request that meets an unreachable or stalled
    /// server still gets its 503 quickly instead of holding a worker and a
    /// client for the 5-10 s a proxy or user would wait.
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

    /// Whether [`build`](PostgresConfig::build) skips opening a connection
    /// (`false` by default). With `true`, building does no I/O and the first
    /// operation connects, so a wrong URL or an unreachable server shows up
    /// as that operation's error.
    pub fn with_lazy_connect(mut self, lazy: bool) -> Self {
        self.lazy_connect = lazy;
        self
    }

    /// The connection URL as given, password included: do not log it (use
    /// [`PostgresConfig::endpoint`]).
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The connection URL with its password replaced by `***`: what
    /// `Debug` and every [`Error::Backend`] of the store show.
    pub fn endpoint(&self) -> String {
        redact_url(&self.url)
    }

    /// The schema name.
    pub fn schema(&self) -> &str {
        &self.schema
    }

    /// The session table's name.
    pub fn table(&self) -> &str {
        &self.table
    }

    /// Whether [`migrate`](crate::PostgresStore::migrate) creates the table
    /// `UNLOGGED`.
    pub fn unlogged(&self) -> bool {
        self.unlogged
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

    /// The server-side `statement_timeout` (`None`: the server's default).
    pub fn statement_timeout(&self) -> Option<Duration> {
        self.statement_timeout
    }

    /// The operation deadline: the client-side bound on one whole operation.
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

    /// Whether [`build`](PostgresConfig::build) skips opening a connection.
    pub fn lazy_connect(&self) -> bool {
        self.lazy_connect
    }

    /// Checks every value, without I/O.
    ///
    /// # Errors
    /// [`Error::Config`] naming the field for an invalid identifier, URL,
    /// pool size or timeout.
    pub fn validate(&self) -> Result<()> {
        validate_identifier("schema", &self.schema)?;
        validate_identifier("table", &self.table)?;
        if self.max_connections == 0 || self.max_connections > 10_000 {
            return Err(Error::Config(
                "max_connections must be between 1 and 10000".into(),
            ));
        }
        if self.min_connections > self.max_connections {
            return Err(Error::Config(
                "min_connections must not exceed max_connections".into(),
            ));
        }
        if self.acquire_timeout.is_zero() || self.operation_timeout.is_zero() {
            return Err(Error::Config(
                "acquire_timeout and operation_timeout must be positive".into(),
            ));
        }
        self.connect_options()?;
        Ok(())
    }

    /// Validates the configuration, creates the pool and opens one
    /// connection (so a wrong URL or an unreachable server shows up here,
    /// unless [`with_lazy_connect`](PostgresConfig::with_lazy_connect)).
    /// Does not touch the schema: call
    /// [`PostgresStore::migrate`](crate::PostgresStore::migrate).
    ///
    /// # Errors
    /// [`Error::Config`] for an invalid configuration; [`Error::Backend`]
    /// (operation `"connect"`, the redacted URL as endpoint; retryable when
    /// the server is unreachable) when the server cannot be reached in time
    /// or refuses the login.
    pub async fn build(self) -> Result<PostgresStore> {
        self.validate()?;
        let options = self.connect_options()?;
        let pool = if self.lazy_connect {
            self.pool_options().connect_lazy_with(options)
        } else {
            match tokio::time::timeout(
                self.operation_timeout,
                self.pool_options().connect_with(options),
            )
            .await
            {
                Ok(Ok(pool)) => pool,
                Ok(Err(e)) => return Err(self.connect_error(map_sqlx(e))),
                Err(_elapsed) => return Err(self.connect_error(timed_out(self.operation_timeout))),
            }
        };
        Ok(PostgresStore::new(pool, &self))
    }

    /// `e` named as this backend's `"connect"` on the redacted URL.
    fn connect_error(&self, e: Error) -> Error {
        e.context(BACKEND, "connect", Some(&self.endpoint()))
    }

    /// The sqlx connection options: the URL plus a server-side statement
    /// timeout and an application name.
    fn connect_options(&self) -> Result<PgConnectOptions> {
        // The parse error is not kept: it may quote the URL, password included.
        let mut options = PgConnectOptions::from_str(&self.url)
            .map_err(|_| Error::Config("the PostgreSQL connection URL does not parse".into()))?;
        if options.get_application_name().is_none() {
            options = options.application_name("session-store");
        }
        if let Some(t) = self.statement_timeout {
            options = options.options([("statement_timeout", t.as_millis().max(1))]);
        }
        Ok(options)
    }

    /// The pool options: sizes, timeouts, and no ping before each acquire.
    fn pool_options(&self) -> PgPoolOptions {
        PgPoolOptions::new()
            .max_connections(self.max_connections)
            .min_connections(self.min_connections)
            // The operation deadline bounds the acquire too.
            .acquire_timeout(self.acquire_timeout.min(self.operation_timeout))
            .idle_timeout(self.idle_timeout)
            .max_lifetime(self.max_lifetime)
            // A ping per acquire would double the cost of a read; a stale
            // connection fails one operation (retryable) and is dropped.
            .test_before_acquire(false)
    }
}

impl fmt::Debug for PostgresConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // A URL sqlx cannot parse may be anything (a password pasted in the
        // wrong place): shown only as unparsable.
        let url = match PgConnectOptions::from_str(&self.url) {
            Ok(_) => self.endpoint(),
            Err(_) => "<unparsable url>".to_owned(),
        };
        f.debug_struct("PostgresConfig")
            .field("url", &url)
            .field("schema", &self.schema)
            .field("table", &self.table)
            .field("unlogged", &self.unlogged)
            .field("max_connections", &self.max_connections)
            .field("min_connections", &self.min_connections)
            .field("acquire_timeout", &self.acquire_timeout)
            .field("statement_timeout", &self.statement_timeout)
            .field("operation_timeout", &self.operation_timeout)
            .field("idle_timeout", &self.idle_timeout)
            .field("max_lifetime", &self.max_lifetime)
            .field("lazy_connect", &self.lazy_connect)
            .finish()
    }
}

/// Checks a schema or table name against `^[a-z_][a-z0-9_]{0,62}$`.
///
/// Names are also double-quoted in SQL; the pattern keeps them portable and
/// within PostgreSQL's 63-byte identifier limit (longer names would be
/// silently truncated).
///
/// # Errors
/// [`Error::Config`] naming `what` (the value is not echoed).
pub fn validate_identifier(what: &str, name: &str) -> Result<()> {
    let bytes = name.as_bytes();
    let ok = !bytes.is_empty()
        && bytes.len() <= 63
        && matches!(bytes[0], b'a'..=b'z' | b'_')
        && bytes
            .iter()
            .all(|b| matches!(b, b'a'..=b'z' | b'0'..=b'9' | b'_'));
    if ok {
        Ok(())
    } else {
        Err(Error::Config(format!(
            "{what} name must match ^[a-z_][a-z0-9_]{{0,62}}$"
        )))
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

    fn config_error(result: Result<PostgresConfig>) -> String {
        match result {
            Err(Error::Config(m)) => m,
            other => panic!("expected a configuration error, got {other:?}"),
        }
    }

    #[test]
    fn identifiers_follow_the_pattern() {
        for good in ["a", "_", "sessions", "s_1", &"a".repeat(63)] {
            validate_identifier("table", good).unwrap();
        }
        for bad in [
            "",
            "1abc",
            "Sessions",
            "a-b",
            "a b",
            "a\"b",
            "a;drop table x",
            "é",
            "a\0",
            &"a".repeat(64),
        ] {
            assert!(
                matches!(validate_identifier("table", bad), Err(Error::Config(_))),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn from_vars_reads_every_variable() {
        let c = PostgresConfig::from_vars(&vars(&[
            ("URL", "postgres://u:pw@127.0.0.1:5433/db"),
            ("SCHEMA", "auth"),
            ("TABLE", "web_sessions"),
            ("UNLOGGED", "yes"),
            ("MAX_CONNECTIONS", "7"),
            ("MIN_CONNECTIONS", "2"),
            ("ACQUIRE_TIMEOUT_MS", "1500"),
            ("STATEMENT_TIMEOUT_MS", "0"),
            ("OPERATION_TIMEOUT_MS", "2500"),
            ("IDLE_TIMEOUT_MS", "0"),
            ("MAX_LIFETIME_MS", "60000"),
        ]))
        .unwrap();
        assert_eq!(c.url(), "postgres://u:pw@127.0.0.1:5433/db");
        assert_eq!(c.schema(), "auth");
        assert_eq!(c.table(), "web_sessions");
        assert!(c.unlogged());
        assert_eq!(c.max_connections(), 7);
        assert_eq!(c.min_connections(), 2);
        assert_eq!(c.acquire_timeout(), Duration::from_millis(1500));
        assert_eq!(c.statement_timeout(), None);
        assert_eq!(c.operation_timeout(), Duration::from_millis(2500));
        assert_eq!(c.idle_timeout(), None);
        assert_eq!(c.max_lifetime(), Some(Duration::from_secs(60)));
        assert!(!c.lazy_connect());
        c.validate().unwrap();
        // The same values through the setters.
        let built = PostgresConfig::new("postgres://u:pw@127.0.0.1:5433/db")
            .with_schema("auth")
            .with_table("web_sessions")
            .with_unlogged(true)
            .with_max_connections(7)
            .with_min_connections(2)
            .with_acquire_timeout(Duration::from_millis(1500))
            .with_statement_timeout(None)
            .with_operation_timeout(Duration::from_millis(2500))
            .with_idle_timeout(None)
            .with_max_lifetime(Some(Duration::from_secs(60)));
        assert_eq!(c, built);
        let c = PostgresConfig::from_vars(&vars(&[
            ("URL", "postgres://127.0.0.1/x"),
            ("STATEMENT_TIMEOUT_MS", "250"),
            ("IDLE_TIMEOUT_MS", "1000"),
        ]))
        .unwrap();
        assert_eq!(c.statement_timeout(), Some(Duration::from_millis(250)));
        assert_eq!(c.idle_timeout(), Some(Duration::from_secs(1)));
    }

    #[test]
    fn from_vars_defaults_and_required_url() {
        let c = PostgresConfig::from_vars(&vars(&[("URL", "postgres://127.0.0.1/x")])).unwrap();
        assert_eq!(c, PostgresConfig::new("postgres://127.0.0.1/x"));
        assert_eq!(c.schema(), DEFAULT_SCHEMA);
        assert_eq!(c.table(), DEFAULT_TABLE);
        for missing in [vars(&[]), vars(&[("URL", "  ")])] {
            assert_eq!(
                config_error(PostgresConfig::from_vars(&missing)),
                "SESSION_STORE_POSTGRES_URL is not set"
            );
        }
    }

    #[test]
    fn a_bad_value_names_its_variable() {
        for (var, value) in [
            ("UNLOGGED", "maybe"),
            ("MAX_CONNECTIONS", "-1"),
            ("MIN_CONNECTIONS", "many"),
            ("ACQUIRE_TIMEOUT_MS", "1.5"),
            ("STATEMENT_TIMEOUT_MS", "5s"),
            ("OPERATION_TIMEOUT_MS", "-10"),
            ("IDLE_TIMEOUT_MS", "ten"),
            ("MAX_LIFETIME_MS", "1e3"),
        ] {
            let message = config_error(PostgresConfig::from_vars(&vars(&[
                ("URL", "postgres://x"),
                (var, value),
            ])));
            assert!(
                message.starts_with(&format!("{ENV_PREFIX}{var}: expected ")),
                "{var}: {message}"
            );
            assert!(message.contains(&format!("{value:?}")), "{message}");
        }
        let bad_table =
            PostgresConfig::from_vars(&vars(&[("URL", "postgres://x"), ("TABLE", "x;y")])).unwrap();
        assert!(matches!(bad_table.validate(), Err(Error::Config(_))));
    }

    #[test]
    fn validate_rejects_bad_pool_settings() {
        let base = PostgresConfig::new("postgres://127.0.0.1/x");
        for bad in [
            base.clone().with_max_connections(0),
            base.clone().with_max_connections(10_001),
            base.clone().with_min_connections(11),
            base.clone().with_acquire_timeout(Duration::ZERO),
            base.clone().with_operation_timeout(Duration::ZERO),
            base.clone().with_schema("Public"),
            PostgresConfig::new("not a url"),
        ] {
            assert!(matches!(bad.validate(), Err(Error::Config(_))), "{bad:?}");
        }
    }

    #[test]
    fn debug_hides_the_password() {
        let c = PostgresConfig::new("postgres://alice:s3cr3t-pw@127.0.0.1:5432/db?sslmode=disable");
        let dbg = format!("{c:?}");
        assert!(!dbg.contains("s3cr3t-pw"), "{dbg}");
        assert!(dbg.contains("alice") && dbg.contains("127.0.0.1"), "{dbg}");
        assert!(
            dbg.contains(&redact_url(c.url())),
            "Debug shows the redacted URL: {dbg}"
        );
        let c = PostgresConfig::new("postgres://127.0.0.1/db?password=s3cr3t-pw");
        assert!(!format!("{c:?}").contains("s3cr3t-pw"));
        assert!(!c.endpoint().contains("s3cr3t-pw"));
        let c = PostgresConfig::new("::s3cr3t-pw::");
        assert!(!format!("{c:?}").contains("s3cr3t-pw"));
    }
}
