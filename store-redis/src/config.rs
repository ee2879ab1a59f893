//! Configuration: where Redis is, the key prefix, timeouts.

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use session_store_core::config::{redact_url, Vars};
use session_store_core::{Error, Result};

use crate::core::Core;
use crate::error::BACKEND;
use crate::store::RedisStore;

/// The smallest index guard, in milliseconds.
const MIN_INDEX_GUARD_MS: u64 = 20;

/// Default key prefix.
pub const DEFAULT_PREFIX: &str = "session";
/// Default operation deadline: 2 s, the same on every backend of this
/// workspace. See [`RedisConfig::with_operation_timeout`].
pub const DEFAULT_OPERATION_TIMEOUT: Duration = Duration::from_secs(2);

/// Where the store connects: one server or a cluster.
#[derive(Clone, PartialEq, Eq)]
pub(crate) enum Target {
    /// One server (or a proxy), through an auto-reconnecting `ConnectionManager`.
    Single(String),
    /// Redis Cluster seed nodes, through the async cluster client.
    Cluster(Vec<String>),
}

/// How to reach Redis and how to name keys. Build it with
/// [`RedisConfig::new`], [`RedisConfig::cluster`] or [`RedisConfig::from_env`],
/// adjust it with the `with_*` methods, then [`build`](RedisConfig::build) it.
///
/// URLs follow the `redis` crate: `redis://[user:password@]host:port[/db]`,
/// `rediss://...` for TLS (needs the `tls` feature). Credentials in URLs pass
/// through to the client and are redacted from `Debug`.
///
/// ```
/// use std::time::Duration;
/// use session_store_redis::RedisConfig;
///
/// let config = RedisConfig::new("redis://127.0.0.1:6379")
///     .with_prefix("myapp:sess")
///     .with_response_timeout(Duration::from_millis(500));
/// assert!(config.validate().is_ok());
/// assert!(RedisConfig::new("redis://127.0.0.1").with_prefix("a{b}").validate().is_err());
/// ```
#[derive(Clone)]
pub struct RedisConfig {
    pub(crate) target: Target,
    prefix: String,
    connection_timeout: Duration,
    response_timeout: Duration,
    operation_timeout: Duration,
    reconnect_retries: usize,
    ttl_slack: Duration,
    index_guard: Duration,
    tls_ca_file: Option<PathBuf>,
}

impl RedisConfig {
    /// One Redis server at `url`, with the defaults: prefix `session`,
    /// connection timeout 1 s, response timeout 1 s, operation deadline 2 s,
    /// 2 reconnect retries, TTL slack 5 s, index guard 60 s.
    pub fn new(url: impl Into<String>) -> Self {
        Self::from_target(Target::Single(url.into()))
    }

    /// A Redis Cluster reached through the seed nodes `nodes` (one URL each).
    pub fn cluster<I, S>(nodes: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        Self::from_target(Target::Cluster(nodes.into_iter().map(Into::into).collect()))
    }

    fn from_target(target: Target) -> Self {
        RedisConfig {
            target,
            prefix: DEFAULT_PREFIX.to_owned(),
            connection_timeout: Duration::from_secs(1),
            response_timeout: Duration::from_secs(1),
            operation_timeout: DEFAULT_OPERATION_TIMEOUT,
            reconnect_retries: 2,
            ttl_slack: Duration::from_secs(5),
            index_guard: Duration::from_secs(60),
            tls_ca_file: None,
        }
    }

    /// Reads the configuration from environment variables:
    ///
    /// | variable | meaning | default |
    /// | --- | --- | --- |
    /// | `SESSION_STORE_REDIS_URL` | URL of a single server (`redis://` or `rediss://`, credentials allowed); this or `SESSION_STORE_REDIS_CLUSTER_NODES` is required | none |
    /// | `SESSION_STORE_REDIS_CLUSTER_NODES` | comma-separated seed node URLs; when set, cluster mode is used and `SESSION_STORE_REDIS_URL` is ignored | unset |
    /// | `SESSION_STORE_REDIS_PREFIX` | key prefix, `[A-Za-z0-9_.:-]{1,64}` | `session` |
    /// | `SESSION_STORE_REDIS_CONNECT_TIMEOUT_MS` | timeout of one connection attempt | `1000` |
    /// | `SESSION_STORE_REDIS_RESPONSE_TIMEOUT_MS` | timeout of one command's response | `1000` |
    /// | `SESSION_STORE_REDIS_OPERATION_TIMEOUT_MS` | the operation deadline: cap on one whole store operation, its commands and scripts, reconnect waits included (> 0; see [`RedisConfig::with_operation_timeout`]) | `2000` |
    /// | `SESSION_STORE_REDIS_RECONNECT_RETRIES` | reconnect attempts per outage before commands fail | `2` |
    /// | `SESSION_STORE_REDIS_TTL_SLACK_MS` | added to every server-side expiry (clock-skew tolerance) | `5000` |
    /// | `SESSION_STORE_REDIS_INDEX_GUARD_MS` | age before a user-index entry without a record may be pruned (at least 20) | `60000` |
    /// | `SESSION_STORE_REDIS_TLS_CA_FILE` | PEM file of the CA certificates to trust for `rediss://` instead of the platform's roots (see [`RedisConfig::with_tls_ca_file`]) | unset |
    ///
    /// Values follow the grammar of [`session_store_core::config`].
    ///
    /// # Errors
    /// [`Error::Config`] naming the variable when neither location variable
    /// is set, or for a value that does not parse or validate. Nothing
    /// connects yet.
    pub fn from_env() -> Result<Self> {
        Self::from_vars(&Vars::from_env())
    }

    /// [`RedisConfig::from_env`] over any variable source (a map in tests, a
    /// secrets manager).
    ///
    /// ```
    /// use session_store_core::config::Vars;
    /// use session_store_redis::RedisConfig;
    ///
    /// let config = RedisConfig::from_vars(&Vars::from_pairs([
    ///     ("SESSION_STORE_REDIS_URL", "redis://127.0.0.1:6379"),
    ///     ("SESSION_STORE_REDIS_PREFIX", "myapp:sess"),
    /// ]))?;
    /// assert_eq!(config.prefix(), "myapp:sess");
    /// assert!(RedisConfig::from_vars(&Vars::from_pairs([("SESSION_STORE_REDIS_PREFIX", "p")])).is_err());
    /// # Ok::<(), session_store_core::Error>(())
    /// ```
    ///
    /// # Errors
    /// As [`RedisConfig::from_env`].
    pub fn from_vars(vars: &Vars) -> Result<Self> {
        let nodes = vars.parse_with(
            "SESSION_STORE_REDIS_CLUSTER_NODES",
            "comma-separated Redis URLs",
            |v| {
                let nodes: Vec<String> = v
                    .split(',')
                    .map(str::trim)
                    .filter(|n| !n.is_empty())
                    .map(str::to_owned)
                    .collect();
                (!nodes.is_empty()).then_some(nodes)
            },
        )?;
        let mut config = match nodes {
            Some(nodes) => RedisConfig::cluster(nodes),
            None => match vars.string("SESSION_STORE_REDIS_URL") {
                Some(url) => RedisConfig::new(url),
                None => return Err(Error::Config(
                    "SESSION_STORE_REDIS_URL is not set (nor SESSION_STORE_REDIS_CLUSTER_NODES \
                         for a cluster)"
                        .into(),
                )),
            },
        };
        if let Some(prefix) = vars.parse_with(
            "SESSION_STORE_REDIS_PREFIX",
            "1 to 64 characters of [A-Za-z0-9_.:-]",
            |v| validate_prefix(v).is_ok().then(|| v.to_owned()),
        )? {
            config.prefix = prefix;
        }
        let positive_millis = |name: &str| {
            vars.parse_with(name, "a whole number of milliseconds above zero", |v| {
                v.parse::<u64>()
                    .ok()
                    .filter(|ms| *ms > 0)
                    .map(Duration::from_millis)
            })
        };
        if let Some(d) = positive_millis("SESSION_STORE_REDIS_CONNECT_TIMEOUT_MS")? {
            config.connection_timeout = d;
        }
        if let Some(d) = positive_millis("SESSION_STORE_REDIS_RESPONSE_TIMEOUT_MS")? {
            config.response_timeout = d;
        }
        if let Some(d) = positive_millis("SESSION_STORE_REDIS_OPERATION_TIMEOUT_MS")? {
            config.operation_timeout = d;
        }
        if let Some(d) = vars.millis("SESSION_STORE_REDIS_TTL_SLACK_MS")? {
            config.ttl_slack = d;
        }
        if let Some(d) = vars.parse_with(
            "SESSION_STORE_REDIS_INDEX_GUARD_MS",
            "a whole number of milliseconds, at least 20",
            |v| {
                v.parse::<u64>()
                    .ok()
                    .filter(|ms| *ms >= MIN_INDEX_GUARD_MS)
                    .map(Duration::from_millis)
            },
        )? {
            config.index_guard = d;
        }
        if let Some(n) = vars.number("SESSION_STORE_REDIS_RECONNECT_RETRIES")? {
            config.reconnect_retries = n;
        }
        if let Some(file) = vars.string("SESSION_STORE_REDIS_TLS_CA_FILE") {
            config.tls_ca_file = Some(file.into());
        }
        config.validate()?;
        Ok(config)
    }

    /// Sets the key prefix (validated by [`RedisConfig::validate`]). Every key
    /// of this store starts with `{<prefix>:`, and
    /// [`delete_all`](session_store_core::SessionBackend::delete_all) removes
    /// exactly the keys of this prefix.
    pub fn with_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = prefix.into();
        self
    }

    /// Timeout of one connection attempt (default 1 s).
    pub fn with_connection_timeout(mut self, timeout: Duration) -> Self {
        self.connection_timeout = timeout;
        self
    }

    /// Timeout of one command's response (default 1 s).
    pub fn with_response_timeout(mut self, timeout: Duration) -> Self {
        self.response_timeout = timeout;
        self
    }

    /// The operation deadline (default 2 s, [`DEFAULT_OPERATION_TIMEOUT`];
    /// must be positive): the bound on one whole store operation, from the
    /// call to its answer: waiting for a (re)connect plus every command and
    /// script the operation sends (a `create` with a user index sends two,
    /// `list_user` one per candidate). Every backend of this workspace has
    /// this setting with this meaning and this default. Building the store
    /// is bounded by it too (operation `"connect"`). The exceptions are the
    /// whole-store walks, `delete_all` and `dump_raw`, which bound each step
    /// (one `SCAN` batch, one deletion) instead.
    ///
    /// When it passes, the operation fails with a retryable
    /// [`Error::Backend`] naming the operation, whose source is an
    /// [`std::io::Error`] of kind [`TimedOut`](std::io::ErrorKind::TimedOut);
    /// a script already sent may still run. The connection is multiplexed:
    /// the late reply of an abandoned command is matched to it and dropped,
    /// so the connection never answers the next operation with it.
    ///
    /// Why 2 s: a healthy operation takes well under a millisecond, so 2 s
    /// never cuts a working server short, while a web request that meets an
    /// unreachable or stalled server still gets its 503 quickly. The
    /// connection and response timeouts (1 s each) bound single attempts
    /// inside it.
    pub fn with_operation_timeout(mut self, timeout: Duration) -> Self {
        self.operation_timeout = timeout;
        self
    }

    /// Reconnect attempts per outage before queued commands fail (default 2;
    /// the next command after that starts a new round).
    pub fn with_reconnect_retries(mut self, retries: usize) -> Self {
        self.reconnect_retries = retries;
        self
    }

    /// Added to every key's server-side expiry (default 5 s). Expiry is
    /// enforced exactly at read time with the caller's clock; the slack only
    /// keeps a Redis clock that runs ahead of the application's from dropping
    /// sessions early. Zero makes keys vanish exactly at their deadline.
    pub fn with_ttl_slack(mut self, slack: Duration) -> Self {
        self.ttl_slack = slack;
        self
    }

    /// How old a user-index entry must be before it is pruned when its
    /// session record is missing (default 60 s). A session is created (or
    /// rotated in) at most half this time after its index entry was written,
    /// or the write is retried; so a record that is missing from an entry
    /// older than this can never appear any more. Keep it well above the
    /// clock skew between cluster nodes.
    pub fn with_index_guard(mut self, guard: Duration) -> Self {
        self.index_guard = guard;
        self
    }

    /// Trusts the CA certificates of this PEM file, instead of the
    /// platform's roots, for `rediss://` servers (a private CA). Read when
    /// the store is built. Needs the `tls` feature; refused for `redis://`
    /// URLs (a CA file there would be a silent no-op on a plain-text link).
    pub fn with_tls_ca_file(mut self, file: impl Into<PathBuf>) -> Self {
        self.tls_ca_file = Some(file.into());
        self
    }

    /// The CA file for `rediss://`, if set.
    pub fn tls_ca_file(&self) -> Option<&Path> {
        self.tls_ca_file.as_deref()
    }

    /// Whether the target is reached over TLS (`rediss://` URLs).
    pub fn is_tls(&self) -> bool {
        match &self.target {
            Target::Single(url) => url.trim_start().starts_with("rediss://"),
            Target::Cluster(nodes) => nodes
                .iter()
                .any(|n| n.trim_start().starts_with("rediss://")),
        }
    }

    /// The key prefix.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// Whether this configuration targets a Redis Cluster.
    pub fn is_cluster(&self) -> bool {
        matches!(self.target, Target::Cluster(_))
    }

    /// The server URL as given (password included), or `None` for a cluster.
    pub fn url(&self) -> Option<&str> {
        match &self.target {
            Target::Single(url) => Some(url),
            Target::Cluster(_) => None,
        }
    }

    /// The cluster seed node URLs as given (passwords included), or `None`
    /// for a single server.
    pub fn cluster_nodes(&self) -> Option<&[String]> {
        match &self.target {
            Target::Single(_) => None,
            Target::Cluster(nodes) => Some(nodes),
        }
    }

    /// Where the store connects, with any password redacted: the server URL,
    /// or the cluster seed nodes joined by commas. Errors of the store name
    /// it.
    pub fn endpoint(&self) -> String {
        match &self.target {
            Target::Single(url) => redact_url(url),
            Target::Cluster(nodes) => nodes
                .iter()
                .map(|n| redact_url(n))
                .collect::<Vec<_>>()
                .join(","),
        }
    }

    /// Timeout of one connection attempt.
    pub fn connection_timeout(&self) -> Duration {
        self.connection_timeout
    }

    /// Timeout of one command's response.
    pub fn response_timeout(&self) -> Duration {
        self.response_timeout
    }

    /// Upper bound on one store operation.
    pub fn operation_timeout(&self) -> Duration {
        self.operation_timeout
    }

    /// Reconnect attempts per outage.
    pub fn reconnect_retries(&self) -> usize {
        self.reconnect_retries
    }

    /// Added to every key's server-side expiry.
    pub fn ttl_slack(&self) -> Duration {
        self.ttl_slack
    }

    /// Age before a user-index entry without a record may be pruned.
    pub fn index_guard(&self) -> Duration {
        self.index_guard
    }

    /// Checks the prefix (`^[A-Za-z0-9_.:-]{1,64}$`: no hash-tag braces, no
    /// glob characters), the target (at least one URL; `rediss://` only with
    /// the `tls` feature; a CA file only with `rediss://`), the timeouts (not
    /// zero) and the index guard (at least 20 ms).
    ///
    /// # Errors
    /// [`Error::Config`] naming the offending setting (never echoing a URL,
    /// which may hold a password).
    pub fn validate(&self) -> Result<()> {
        validate_prefix(&self.prefix)?;
        match &self.target {
            Target::Single(url) if url.trim().is_empty() => {
                return Err(Error::Config("the Redis URL is empty".into()))
            }
            Target::Cluster(nodes) if nodes.is_empty() => {
                return Err(Error::Config("the Redis Cluster node list is empty".into()))
            }
            _ => {}
        }
        if self.is_tls() && !crate::TLS_SUPPORTED {
            return Err(Error::Config(
                "rediss:// needs the `tls` feature of session-store-redis".into(),
            ));
        }
        if self.tls_ca_file.is_some() && !self.is_tls() {
            return Err(Error::Config(
                "a TLS CA file is set (SESSION_STORE_REDIS_TLS_CA_FILE, tls_ca_file) but the \
                 Redis URL is not rediss://"
                    .into(),
            ));
        }
        if self.index_guard < Duration::from_millis(MIN_INDEX_GUARD_MS) {
            return Err(Error::Config(
                "the index guard must be at least 20 ms (it bounds the time between writing \
                 a user-index entry and its session)"
                    .into(),
            ));
        }
        for (name, d) in [
            ("connection timeout", self.connection_timeout),
            ("response timeout", self.response_timeout),
            ("operation timeout", self.operation_timeout),
        ] {
            if d.is_zero() {
                return Err(Error::Config(format!("the {name} must not be zero")));
            }
        }
        Ok(())
    }

    /// Validates, connects (single server: an auto-reconnecting
    /// `ConnectionManager`; cluster: the async cluster client), checks that
    /// the server answers and returns the store.
    ///
    /// # Errors
    /// [`Error::Config`] for an invalid configuration or URL (including
    /// `rediss://` without the `tls` feature); a retryable [`Error::Backend`]
    /// (operation `"connect"`, naming the endpoint) when Redis cannot be
    /// reached within the operation timeout.
    pub async fn build(self) -> Result<RedisStore> {
        self.validate()?;
        let core = Core::connect(&self)
            .await
            .map_err(|e| e.context(BACKEND, "connect", Some(&self.endpoint())))?;
        Ok(RedisStore::new(core, &self))
    }
}

/// Checks a key prefix: 1 to 64 characters of `[A-Za-z0-9_.:-]`.
pub(crate) fn validate_prefix(prefix: &str) -> Result<()> {
    let ok = (1..=64).contains(&prefix.len())
        && prefix
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b':' | b'-'));
    if ok {
        Ok(())
    } else {
        Err(Error::Config(
            "the Redis key prefix must be 1 to 64 characters of [A-Za-z0-9_.:-]".into(),
        ))
    }
}

impl fmt::Debug for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Target::Single(url) => f.debug_tuple("Single").field(&redact_url(url)).finish(),
            Target::Cluster(nodes) => f
                .debug_tuple("Cluster")
                .field(&nodes.iter().map(|n| redact_url(n)).collect::<Vec<_>>())
                .finish(),
        }
    }
}

impl fmt::Debug for RedisConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisConfig")
            .field("target", &self.target)
            .field("prefix", &self.prefix)
            .field("connection_timeout", &self.connection_timeout)
            .field("response_timeout", &self.response_timeout)
            .field("operation_timeout", &self.operation_timeout)
            .field("reconnect_retries", &self.reconnect_retries)
            .field("ttl_slack", &self.ttl_slack)
            .field("index_guard", &self.index_guard)
            .field("tls_ca_file", &self.tls_ca_file)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes_are_validated() {
        for good in ["a", "session", "app:sess", "A-b_c.d:1", &"x".repeat(64)] {
            assert!(validate_prefix(good).is_ok(), "{good:?}");
        }
        for bad in [
            "",
            "a{b",
            "a}b",
            "{a}",
            "a b",
            "a*",
            "a?",
            "a[b]",
            "é",
            "a\0",
            &"x".repeat(65),
        ] {
            assert!(
                matches!(validate_prefix(bad), Err(Error::Config(_))),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn tls_settings_are_checked_before_connecting() {
        let e = RedisConfig::new("redis://127.0.0.1")
            .with_tls_ca_file("/etc/ca.pem")
            .validate()
            .unwrap_err();
        assert!(
            matches!(&e, Error::Config(m) if m.contains("not rediss://")),
            "{e}"
        );
        let c = RedisConfig::from_vars(&Vars::from_pairs([
            ("SESSION_STORE_REDIS_URL", "rediss://127.0.0.1"),
            ("SESSION_STORE_REDIS_TLS_CA_FILE", "/etc/ca.pem"),
        ]));
        let tls = RedisConfig::new("rediss://127.0.0.1").validate();
        if crate::TLS_SUPPORTED {
            assert!(tls.is_ok());
            assert_eq!(
                c.unwrap().tls_ca_file(),
                Some(std::path::Path::new("/etc/ca.pem"))
            );
        } else {
            assert!(matches!(&tls, Err(Error::Config(m)) if m.contains("`tls` feature")));
            assert!(matches!(&c, Err(Error::Config(m)) if m.contains("`tls` feature")));
        }
    }

    #[test]
    fn passwords_are_redacted() {
        let c = RedisConfig::cluster(["redis://:pw1@a:1", "redis://b:2"]);
        assert!(!format!("{c:?}").contains("pw1"));
        assert_eq!(c.endpoint(), "redis://:***@a:1,redis://b:2");
        let c = RedisConfig::new("rediss://u:secret@h:1/0");
        assert!(!format!("{c:?}").contains("secret"));
        assert_eq!(c.endpoint(), "rediss://u:***@h:1/0");
    }

    const ALL: [(&str, &str); 9] = [
        ("SESSION_STORE_REDIS_URL", "redis://ignored"),
        (
            "SESSION_STORE_REDIS_CLUSTER_NODES",
            "redis://a:1, redis://b:2,",
        ),
        ("SESSION_STORE_REDIS_PREFIX", "p:x"),
        ("SESSION_STORE_REDIS_CONNECT_TIMEOUT_MS", "111"),
        ("SESSION_STORE_REDIS_RESPONSE_TIMEOUT_MS", "250"),
        ("SESSION_STORE_REDIS_OPERATION_TIMEOUT_MS", "4000"),
        ("SESSION_STORE_REDIS_RECONNECT_RETRIES", "5"),
        ("SESSION_STORE_REDIS_TTL_SLACK_MS", "0"),
        ("SESSION_STORE_REDIS_INDEX_GUARD_MS", "30000"),
    ];

    #[test]
    fn from_vars_reads_every_variable() {
        let c = RedisConfig::from_vars(&Vars::from_pairs(ALL)).unwrap();
        assert_eq!(
            c.target,
            Target::Cluster(vec!["redis://a:1".into(), "redis://b:2".into()])
        );
        assert_eq!(c.prefix(), "p:x");
        assert_eq!(c.connection_timeout(), Duration::from_millis(111));
        assert_eq!(c.response_timeout(), Duration::from_millis(250));
        assert_eq!(c.operation_timeout(), Duration::from_millis(4000));
        assert_eq!(c.reconnect_retries(), 5);
        assert_eq!(c.ttl_slack(), Duration::ZERO);
        assert_eq!(c.index_guard(), Duration::from_secs(30));

        // Without cluster nodes: the single server, and the defaults.
        let c = RedisConfig::from_vars(&Vars::from_pairs([(
            "SESSION_STORE_REDIS_URL",
            " redis://127.0.0.1:6379 ",
        )]))
        .unwrap();
        assert_eq!(c.url(), Some("redis://127.0.0.1:6379"));
        assert_eq!(c.cluster_nodes(), None);
        assert_eq!(c.prefix(), DEFAULT_PREFIX);
        assert_eq!(c.operation_timeout(), DEFAULT_OPERATION_TIMEOUT);
        assert_eq!(DEFAULT_OPERATION_TIMEOUT, Duration::from_secs(2));
        assert_eq!(c.index_guard(), Duration::from_secs(60));
    }

    #[test]
    fn the_location_variable_is_required() {
        let err = RedisConfig::from_vars(&Vars::from_pairs([("SESSION_STORE_REDIS_PREFIX", "p")]))
            .unwrap_err();
        let msg = err.to_string();
        assert!(matches!(err, Error::Config(_)), "{err:?}");
        assert!(
            msg.contains("SESSION_STORE_REDIS_URL")
                && msg.contains("SESSION_STORE_REDIS_CLUSTER_NODES"),
            "{msg}"
        );
        // Blank is unset.
        assert!(
            RedisConfig::from_vars(&Vars::from_pairs([("SESSION_STORE_REDIS_URL", "  ")])).is_err()
        );
    }

    #[test]
    fn bad_values_name_their_variable() {
        for (name, bad) in [
            ("SESSION_STORE_REDIS_CLUSTER_NODES", ", ,"),
            ("SESSION_STORE_REDIS_PREFIX", "a{b}"),
            ("SESSION_STORE_REDIS_CONNECT_TIMEOUT_MS", "0"),
            ("SESSION_STORE_REDIS_RESPONSE_TIMEOUT_MS", "1s"),
            ("SESSION_STORE_REDIS_OPERATION_TIMEOUT_MS", "soon"),
            ("SESSION_STORE_REDIS_RECONNECT_RETRIES", "-1"),
            ("SESSION_STORE_REDIS_TTL_SLACK_MS", "5.5"),
            ("SESSION_STORE_REDIS_INDEX_GUARD_MS", "19"),
        ] {
            let vars = Vars::from_pairs([("SESSION_STORE_REDIS_URL", "redis://h"), (name, bad)]);
            match RedisConfig::from_vars(&vars) {
                Err(Error::Config(msg)) => {
                    assert!(msg.starts_with(name), "{name}: {msg}");
                    assert!(msg.contains(bad), "{name}: {msg}");
                }
                other => panic!("{name}={bad:?}: {other:?}"),
            }
        }
    }

    #[test]
    fn settings_are_validated() {
        let base = || RedisConfig::new("redis://h");
        assert!(base().validate().is_ok());
        for bad in [
            RedisConfig::new(" "),
            RedisConfig::cluster(Vec::<String>::new()),
            base().with_connection_timeout(Duration::ZERO),
            base().with_response_timeout(Duration::ZERO),
            base().with_operation_timeout(Duration::ZERO),
            base().with_index_guard(Duration::from_millis(19)),
            base().with_prefix("a b"),
        ] {
            assert!(matches!(bad.validate(), Err(Error::Config(_))), "{bad:?}");
        }
    }
}
