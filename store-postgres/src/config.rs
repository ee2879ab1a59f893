//! Configuration: a builder, environment variables and identifier validation.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use session_store_core::{Error, Result};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};

/// Prefix of every environment variable read by [`PostgresConfig::from_env`].
pub const ENV_PREFIX: &str = "SESSION_STORE_POSTGRES_";

/// How to reach PostgreSQL and where to keep sessions.
///
/// Build one with [`PostgresConfig::new`] and the setters, or from the
/// environment with [`PostgresConfig::from_env`]. Nothing is validated or
/// connected until [`PostgresStore::connect`](crate::PostgresStore::connect)
/// (or `connect_lazy`), which returns [`Error::Config`] for an invalid value.
///
/// Connections are never pinged: not before use (sqlx's
/// `test_before_acquire` is off) and not after use (the store keeps the
/// connections it used checked out and warm instead of handing them back to
/// sqlx, which would ping them on release). Either ping would add a round trip
/// per operation and roughly double the cost of a read. A connection that went
/// stale (server restart, network cut) fails the one operation that uses it
/// with a retryable [`Error::Backend`] and is closed; the next operation opens
/// a fresh one. The store never holds more than `max_connections`.
///
/// `Debug` never shows the password.
#[derive(Clone, PartialEq, Eq)]
pub struct PostgresConfig {
    pub(crate) url: String,
    pub(crate) schema: String,
    pub(crate) table: String,
    pub(crate) unlogged: bool,
    pub(crate) max_connections: u32,
    pub(crate) min_connections: u32,
    pub(crate) acquire_timeout: Duration,
    pub(crate) statement_timeout: Option<Duration>,
    pub(crate) operation_timeout: Duration,
    pub(crate) idle_timeout: Option<Duration>,
    pub(crate) max_lifetime: Option<Duration>,
}

/// Default schema: `public`.
pub const DEFAULT_SCHEMA: &str = "public";
/// Default table: `sessions`.
pub const DEFAULT_TABLE: &str = "sessions";

impl PostgresConfig {
    /// A configuration with defaults for everything but the connection URL
    /// (`postgres://user:password@host:port/database?...`, as sqlx parses it).
    ///
    /// Defaults: schema `public`, table `sessions`, logged table, at most 10
    /// connections, none kept open when idle, acquire timeout 5 s, statement
    /// timeout 5 s (server side), operation timeout 10 s (client side), idle
    /// connections closed after 10 min, connections recycled after 30 min.
    pub fn new(url: impl Into<String>) -> Self {
        PostgresConfig {
            url: url.into(),
            schema: DEFAULT_SCHEMA.to_owned(),
            table: DEFAULT_TABLE.to_owned(),
            unlogged: false,
            max_connections: 10,
            min_connections: 0,
            acquire_timeout: Duration::from_secs(5),
            statement_timeout: Some(Duration::from_secs(5)),
            operation_timeout: Duration::from_secs(10),
            idle_timeout: Some(Duration::from_secs(600)),
            max_lifetime: Some(Duration::from_secs(1800)),
        }
    }

    /// Reads the configuration from environment variables. Only the URL is
    /// required; every other variable falls back to the default of
    /// [`PostgresConfig::new`].
    ///
    /// | variable | meaning | default |
    /// | --- | --- | --- |
    /// | `SESSION_STORE_POSTGRES_URL` | connection URL (required; may hold a password, never logged) | — |
    /// | `SESSION_STORE_POSTGRES_SCHEMA` | schema holding the tables (`^[a-z_][a-z0-9_]{0,62}$`) | `public` |
    /// | `SESSION_STORE_POSTGRES_TABLE` | session table name (same pattern) | `sessions` |
    /// | `SESSION_STORE_POSTGRES_UNLOGGED` | `true`/`false` (also `1`/`0`, `yes`/`no`): create the table `UNLOGGED`, see [`PostgresConfig::unlogged`] | `false` |
    /// | `SESSION_STORE_POSTGRES_MAX_CONNECTIONS` | pool size (1..=10000) | `10` |
    /// | `SESSION_STORE_POSTGRES_MIN_CONNECTIONS` | connections kept open when idle | `0` |
    /// | `SESSION_STORE_POSTGRES_ACQUIRE_TIMEOUT_MS` | max wait for a pooled connection, including connecting (> 0) | `5000` |
    /// | `SESSION_STORE_POSTGRES_STATEMENT_TIMEOUT_MS` | server-side `statement_timeout`; `0` = none | `5000` |
    /// | `SESSION_STORE_POSTGRES_OPERATION_TIMEOUT_MS` | client-side bound on one whole operation (> 0) | `10000` |
    /// | `SESSION_STORE_POSTGRES_IDLE_TIMEOUT_MS` | close pooled connections idle this long; `0` = never | `600000` |
    /// | `SESSION_STORE_POSTGRES_MAX_LIFETIME_MS` | recycle connections this old; `0` = never | `1800000` |
    ///
    /// # Errors
    /// [`Error::Config`] naming the variable when the URL is missing or a value
    /// does not parse. Identifiers are checked later, at connect time.
    pub fn from_env() -> Result<Self> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Like [`PostgresConfig::from_env`], reading variables through `lookup`
    /// (a map in tests, a secrets manager in production).
    ///
    /// # Errors
    /// As [`PostgresConfig::from_env`].
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self> {
        let var = |suffix: &str| {
            let name = format!("{ENV_PREFIX}{suffix}");
            let value = lookup(&name).filter(|v| !v.trim().is_empty());
            (name, value)
        };
        let (name, url) = var("URL");
        let url = url.ok_or_else(|| Error::Config(format!("{name} is not set")))?;
        let mut config = PostgresConfig::new(url);
        if let (_, Some(v)) = var("SCHEMA") {
            config.schema = v.trim().to_owned();
        }
        if let (_, Some(v)) = var("TABLE") {
            config.table = v.trim().to_owned();
        }
        if let (name, Some(v)) = var("UNLOGGED") {
            config.unlogged = parse_bool(&name, &v)?;
        }
        if let (name, Some(v)) = var("MAX_CONNECTIONS") {
            config.max_connections = parse_num(&name, &v)?;
        }
        if let (name, Some(v)) = var("MIN_CONNECTIONS") {
            config.min_connections = parse_num(&name, &v)?;
        }
        if let (name, Some(v)) = var("ACQUIRE_TIMEOUT_MS") {
            config.acquire_timeout = Duration::from_millis(parse_num(&name, &v)?);
        }
        if let (name, Some(v)) = var("STATEMENT_TIMEOUT_MS") {
            config.statement_timeout = optional_ms(parse_num(&name, &v)?);
        }
        if let (name, Some(v)) = var("OPERATION_TIMEOUT_MS") {
            config.operation_timeout = Duration::from_millis(parse_num(&name, &v)?);
        }
        if let (name, Some(v)) = var("IDLE_TIMEOUT_MS") {
            config.idle_timeout = optional_ms(parse_num(&name, &v)?);
        }
        if let (name, Some(v)) = var("MAX_LIFETIME_MS") {
            config.max_lifetime = optional_ms(parse_num(&name, &v)?);
        }
        Ok(config)
    }

    /// The schema holding the session table and the `session_store_meta`
    /// table (must match `^[a-z_][a-z0-9_]{0,62}$`). Created by
    /// [`migrate`](crate::PostgresStore::migrate) if missing.
    pub fn schema(mut self, schema: impl Into<String>) -> Self {
        self.schema = schema.into();
        self
    }

    /// The session table's name (must match `^[a-z_][a-z0-9_]{0,62}$`).
    pub fn table(mut self, table: impl Into<String>) -> Self {
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
    pub fn unlogged(mut self, unlogged: bool) -> Self {
        self.unlogged = unlogged;
        self
    }

    /// Maximum number of pooled connections (1 to 10000).
    pub fn max_connections(mut self, n: u32) -> Self {
        self.max_connections = n;
        self
    }

    /// Connections kept open while idle (at most `max_connections`).
    pub fn min_connections(mut self, n: u32) -> Self {
        self.min_connections = n;
        self
    }

    /// How long an operation waits for a pooled connection, including
    /// opening a new one, before failing with a retryable [`Error::Backend`].
    pub fn acquire_timeout(mut self, timeout: Duration) -> Self {
        self.acquire_timeout = timeout;
        self
    }

    /// The server-side `statement_timeout` set on every connection (`None`:
    /// the server's default). Whole milliseconds are used.
    pub fn statement_timeout(mut self, timeout: Option<Duration>) -> Self {
        self.statement_timeout = timeout;
        self
    }

    /// Client-side bound on one whole operation (acquire + round trips). When
    /// it passes the operation fails with a retryable [`Error::Backend`]; a
    /// write may or may not have been applied, as with any lost reply.
    pub fn operation_timeout(mut self, timeout: Duration) -> Self {
        self.operation_timeout = timeout;
        self
    }

    /// Close connections idle for this long (`None`: never). The store checks
    /// its warm connections when it is next used.
    pub fn idle_timeout(mut self, timeout: Option<Duration>) -> Self {
        self.idle_timeout = timeout;
        self
    }

    /// Recycle connections older than this (`None`: never).
    pub fn max_lifetime(mut self, lifetime: Option<Duration>) -> Self {
        self.max_lifetime = lifetime;
        self
    }

    /// The configured schema name.
    pub fn schema_name(&self) -> &str {
        &self.schema
    }

    /// The configured table name.
    pub fn table_name(&self) -> &str {
        &self.table
    }

    /// Checks every value, without I/O.
    ///
    /// # Errors
    /// [`Error::Config`] for an invalid identifier, URL, pool size or timeout.
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

    /// The sqlx connection options: the URL plus a server-side statement
    /// timeout and an application name.
    pub(crate) fn connect_options(&self) -> Result<PgConnectOptions> {
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
    pub(crate) fn pool_options(&self) -> PgPoolOptions {
        PgPoolOptions::new()
            .max_connections(self.max_connections)
            .min_connections(self.min_connections)
            .acquire_timeout(self.acquire_timeout)
            .idle_timeout(self.idle_timeout)
            .max_lifetime(self.max_lifetime)
            // A ping per acquire would double the cost of a read; a stale
            // connection instead fails one operation (retryable) and is dropped.
            .test_before_acquire(false)
    }
}

impl fmt::Debug for PostgresConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PostgresConfig")
            .field("url", &RedactedUrl(&self.url))
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
            .finish()
    }
}

/// Shows where a URL points (user, host, port, database), never its password
/// or query parameters.
struct RedactedUrl<'a>(&'a str);

impl fmt::Debug for RedactedUrl<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match PgConnectOptions::from_str(self.0) {
            Ok(o) => write!(
                f,
                "\"postgres://{}:<redacted>@{}:{}/{}\"",
                o.get_username(),
                o.get_host(),
                o.get_port(),
                o.get_database().unwrap_or("")
            ),
            Err(_) => f.write_str("\"<unparsable url>\""),
        }
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

fn parse_bool(name: &str, value: &str) -> Result<bool> {
    match value.trim().to_ascii_lowercase().as_str() {
        "1" | "true" | "yes" | "on" => Ok(true),
        "0" | "false" | "no" | "off" => Ok(false),
        _ => Err(Error::Config(format!("{name} must be true or false"))),
    }
}

fn parse_num<T: FromStr>(name: &str, value: &str) -> Result<T> {
    value
        .trim()
        .parse()
        .map_err(|_| Error::Config(format!("{name} must be a non-negative integer")))
}

fn optional_ms(ms: u64) -> Option<Duration> {
    (ms > 0).then(|| Duration::from_millis(ms))
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn lookup(vars: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (format!("{ENV_PREFIX}{k}"), (*v).to_owned()))
            .collect();
        move |name| map.get(name).cloned()
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
    fn from_lookup_reads_every_variable() {
        let c = PostgresConfig::from_lookup(lookup(&[
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
        assert_eq!(c.schema, "auth");
        assert_eq!(c.table, "web_sessions");
        assert!(c.unlogged);
        assert_eq!(c.max_connections, 7);
        assert_eq!(c.min_connections, 2);
        assert_eq!(c.acquire_timeout, Duration::from_millis(1500));
        assert_eq!(c.statement_timeout, None);
        assert_eq!(c.operation_timeout, Duration::from_millis(2500));
        assert_eq!(c.idle_timeout, None);
        assert_eq!(c.max_lifetime, Some(Duration::from_secs(60)));
        c.validate().unwrap();
    }

    #[test]
    fn from_lookup_defaults_and_errors() {
        let c = PostgresConfig::from_lookup(lookup(&[("URL", "postgres://127.0.0.1/x")])).unwrap();
        assert_eq!(c, PostgresConfig::new("postgres://127.0.0.1/x"));
        assert!(matches!(
            PostgresConfig::from_lookup(lookup(&[])),
            Err(Error::Config(m)) if m.contains("SESSION_STORE_POSTGRES_URL")
        ));
        assert!(matches!(
            PostgresConfig::from_lookup(lookup(&[("URL", "postgres://x"), ("UNLOGGED", "maybe")])),
            Err(Error::Config(m)) if m.contains("UNLOGGED")
        ));
        assert!(matches!(
            PostgresConfig::from_lookup(lookup(&[("URL", "postgres://x"), ("MAX_CONNECTIONS", "-1")])),
            Err(Error::Config(m)) if m.contains("MAX_CONNECTIONS")
        ));
        let bad_table =
            PostgresConfig::from_lookup(lookup(&[("URL", "postgres://x"), ("TABLE", "x;y")]))
                .unwrap();
        assert!(matches!(bad_table.validate(), Err(Error::Config(_))));
    }

    #[test]
    fn validate_rejects_bad_pool_settings() {
        let base = PostgresConfig::new("postgres://127.0.0.1/x");
        for bad in [
            base.clone().max_connections(0),
            base.clone().min_connections(11),
            base.clone().acquire_timeout(Duration::ZERO),
            base.clone().operation_timeout(Duration::ZERO),
            base.clone().schema("Public"),
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
        let c = PostgresConfig::new("postgres://127.0.0.1/db?password=s3cr3t-pw");
        assert!(!format!("{c:?}").contains("s3cr3t-pw"));
        let c = PostgresConfig::new("::s3cr3t-pw::");
        assert!(!format!("{c:?}").contains("s3cr3t-pw"));
    }
}
