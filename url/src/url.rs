//! One URL names a backend and its namespace: the one place that turns a
//! location string into a store.
//!
//! | URL | backend | namespace parameter (default) |
//! | --- | --- | --- |
//! | `sqlite://PATH` (`sqlite:///abs/path`, `sqlite://rel/path`, `sqlite://:memory:`) | SQLite | `table` (`sessions`) |
//! | `sled://PATH` | sled | `prefix` (`sessions`) |
//! | `redis://[user:pass@]host[:port][/db]`, `rediss://…` | Redis | `prefix` (`session`); `tls_ca_file` |
//! | `redis+cluster://host1:port,host2:port` (`rediss+cluster://…`) | Redis Cluster | `prefix`; `tls_ca_file` |
//! | `postgres://…`, `postgresql://…` | PostgreSQL | `table`, `schema` |
//! | `mysql://…`, `mariadb://…` | MySQL / MariaDB | `table` |
//!
//! The namespace parameters are removed from the URL before it reaches the
//! driver; every other query parameter is passed through (`sslmode=…`).
//! `tls_ca_file=PATH` (Redis over TLS) trusts the CA certificates of that PEM
//! file instead of the platform's roots (also
//! `SESSION_STORE_REDIS_TLS_CA_FILE`); `rediss://` needs the `tls` feature.
//! Other settings (timeouts, pool sizes) come from the backend's
//! `SESSION_STORE_<BACKEND>_*` variables, read as the backend's `from_env`
//! reads them ([`BackendUrl::open`], or [`BackendUrl::open_with`] for any
//! variable source); the URL wins for the location and the namespace.
//! Passwords never appear in errors or `Debug` (see [`redact_url`]).

use std::collections::HashMap;
use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;

use session_store_core::config::{redact_url, Vars};
use session_store_core::{Error, Result, SessionBackend};
use session_store_mysql::{MySqlConfig, MySqlStore};
use session_store_postgres::{PostgresConfig, PostgresStore};
use session_store_redis::{RedisConfig, RedisStore};
use session_store_sled::{SledConfig, SledStore};
use session_store_sqlite::{SqliteConfig, SqliteStore};

/// The variable naming the store for [`BackendUrl::from_env`] (and the
/// `session-store` command's default `--url`).
pub const URL_VAR: &str = "SESSION_STORE_URL";

/// A parsed backend URL (see the module docs for the forms).
#[derive(Clone, PartialEq, Eq)]
pub enum BackendUrl {
    /// `sqlite://PATH?table=T`.
    Sqlite {
        /// The database file, or `:memory:`.
        path: PathBuf,
        /// The table, if given.
        table: Option<String>,
    },
    /// `sled://PATH?prefix=P`.
    Sled {
        /// The database directory.
        path: PathBuf,
        /// The tree prefix, if given.
        prefix: Option<String>,
    },
    /// `redis://…` or `rediss://…`.
    Redis {
        /// The URL for the client, namespace parameter removed.
        url: String,
        /// The key prefix, if given.
        prefix: Option<String>,
        /// The `tls_ca_file` parameter: a PEM file of CA certificates to
        /// trust instead of the platform's roots.
        tls_ca_file: Option<PathBuf>,
    },
    /// `redis+cluster://h1:p1,h2:p2`.
    RedisCluster {
        /// One `redis://host:port` (or `rediss://`) URL per seed node.
        nodes: Vec<String>,
        /// The key prefix, if given.
        prefix: Option<String>,
        /// The `tls_ca_file` parameter (see [`BackendUrl::Redis`]).
        tls_ca_file: Option<PathBuf>,
    },
    /// `postgres://…`.
    Postgres {
        /// The URL for the driver, namespace parameters removed.
        url: String,
        /// The table, if given.
        table: Option<String>,
        /// The schema, if given.
        schema: Option<String>,
    },
    /// `mysql://…`.
    MySql {
        /// The URL for the driver, namespace parameter removed.
        url: String,
        /// The table, if given.
        table: Option<String>,
    },
}

impl fmt::Debug for BackendUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.endpoint())
    }
}

/// Splits `rest` into the part before `?` and its `name=value` pairs.
fn split_query(rest: &str) -> (&str, Vec<(String, String)>) {
    match rest.split_once('?') {
        None => (rest, Vec::new()),
        Some((head, query)) => (
            head,
            query
                .split('&')
                .filter(|p| !p.is_empty())
                .map(|p| match p.split_once('=') {
                    Some((k, v)) => (k.to_owned(), v.to_owned()),
                    None => (p.to_owned(), String::new()),
                })
                .collect(),
        ),
    }
}

/// Takes the parameter `name` out of `params`.
fn take(params: &mut Vec<(String, String)>, name: &str) -> Option<String> {
    let at = params.iter().position(|(k, _)| k == name)?;
    Some(params.remove(at).1)
}

fn rebuild(head: &str, params: &[(String, String)]) -> String {
    if params.is_empty() {
        return head.to_owned();
    }
    let q: Vec<String> = params.iter().map(|(k, v)| format!("{k}={v}")).collect();
    format!("{head}?{}", q.join("&"))
}

fn no_rest(params: &[(String, String)], scheme: &str, allowed: &str) -> Result<()> {
    match params.first() {
        None => Ok(()),
        Some((k, _)) => Err(Error::Config(format!(
            "{scheme}:// URL: unknown parameter {k:?} (allowed: {allowed})"
        ))),
    }
}

impl BackendUrl {
    /// Parses a backend URL.
    ///
    /// # Errors
    /// [`Error::Config`] naming what is wrong (unknown scheme, missing path
    /// or host, unknown parameter), never echoing a password.
    pub fn parse(input: &str) -> Result<BackendUrl> {
        let input = input.trim();
        let Some((scheme, rest)) = input.split_once("://") else {
            // Not echoed: without a scheme a password cannot be told apart.
            return Err(Error::Config(
                "the backend URL has no scheme: expected sqlite://, sled://, redis://, rediss://, \
                 redis+cluster://, postgres:// or mysql://"
                    .into(),
            ));
        };
        let (head, mut params) = split_query(rest);
        match scheme {
            "sqlite" | "sled" => {
                if head.is_empty() {
                    return Err(Error::Config(format!("{scheme}:// URL without a path")));
                }
                let path = PathBuf::from(head);
                if scheme == "sqlite" {
                    let table = take(&mut params, "table");
                    no_rest(&params, scheme, "table")?;
                    Ok(BackendUrl::Sqlite { path, table })
                } else {
                    let prefix = take(&mut params, "prefix");
                    no_rest(&params, scheme, "prefix")?;
                    Ok(BackendUrl::Sled { path, prefix })
                }
            }
            "redis" | "rediss" => {
                if head.is_empty() {
                    return Err(Error::Config(format!("{scheme}:// URL without a host")));
                }
                let prefix = take(&mut params, "prefix");
                let tls_ca_file = take(&mut params, "tls_ca_file").map(PathBuf::from);
                Ok(BackendUrl::Redis {
                    url: rebuild(&format!("{scheme}://{head}"), &params),
                    prefix,
                    tls_ca_file,
                })
            }
            "redis+cluster" | "rediss+cluster" => {
                let prefix = take(&mut params, "prefix");
                let tls_ca_file = take(&mut params, "tls_ca_file").map(PathBuf::from);
                no_rest(&params, scheme, "prefix, tls_ca_file")?;
                let node_scheme = scheme.trim_end_matches("+cluster");
                let nodes: Vec<String> = head
                    .split(',')
                    .map(str::trim)
                    .filter(|n| !n.is_empty())
                    .map(|n| format!("{node_scheme}://{n}"))
                    .collect();
                if nodes.is_empty() {
                    return Err(Error::Config(format!(
                        "{scheme}:// URL without nodes: expected {scheme}://host:port,host:port"
                    )));
                }
                Ok(BackendUrl::RedisCluster {
                    nodes,
                    prefix,
                    tls_ca_file,
                })
            }
            "postgres" | "postgresql" => {
                let table = take(&mut params, "table");
                let schema = take(&mut params, "schema");
                Ok(BackendUrl::Postgres {
                    url: rebuild(&format!("{scheme}://{head}"), &params),
                    table,
                    schema,
                })
            }
            "mysql" | "mariadb" => {
                let table = take(&mut params, "table");
                Ok(BackendUrl::MySql {
                    url: rebuild(&format!("mysql://{head}"), &params),
                    table,
                })
            }
            other => Err(Error::Config(format!(
                "unknown backend scheme {other:?}: expected sqlite, sled, redis, rediss, \
                 redis+cluster, postgres or mysql"
            ))),
        }
    }

    /// Where it points, without any password: for messages.
    pub fn endpoint(&self) -> String {
        match self {
            BackendUrl::Sqlite { path, table } => {
                format!("sqlite://{}{}", path.display(), ns("table", table))
            }
            BackendUrl::Sled { path, prefix } => {
                format!("sled://{}{}", path.display(), ns("prefix", prefix))
            }
            BackendUrl::Redis { url, prefix, .. } => {
                format!("{}{}", redact_url(url), ns("prefix", prefix))
            }
            BackendUrl::RedisCluster { nodes, prefix, .. } => format!(
                "{}+cluster://{}{}",
                if self.is_tls() { "rediss" } else { "redis" },
                nodes
                    .iter()
                    .map(|n| redact_url(n)
                        .split_once("://")
                        .map_or(String::new(), |(_, r)| r.trim_end_matches('/').to_owned()))
                    .collect::<Vec<_>>()
                    .join(","),
                ns("prefix", prefix)
            ),
            BackendUrl::Postgres { url, table, .. } => {
                format!("{}{}", redact_url(url), ns("table", table))
            }
            BackendUrl::MySql { url, table } => {
                format!("{}{}", redact_url(url), ns("table", table))
            }
        }
    }

    /// Whether the store is reached over TLS (`rediss://`).
    pub fn is_tls(&self) -> bool {
        match self {
            BackendUrl::Redis { url, .. } => url.starts_with("rediss://"),
            BackendUrl::RedisCluster { nodes, .. } => {
                nodes.iter().any(|n| n.starts_with("rediss://"))
            }
            _ => false,
        }
    }

    /// The store named by `SESSION_STORE_URL` ([`URL_VAR`]) in the process
    /// environment.
    ///
    /// # Errors
    /// As [`BackendUrl::from_vars`].
    pub fn from_env() -> Result<Option<BackendUrl>> {
        Self::from_vars(&Vars::from_env())
    }

    /// The store named by `SESSION_STORE_URL` in `vars`; `None` when it is
    /// unset (the caller chooses a default or refuses).
    ///
    /// # Errors
    /// [`Error::Config`] naming the variable when the URL does not parse.
    pub fn from_vars(vars: &Vars) -> Result<Option<BackendUrl>> {
        vars.string(URL_VAR)
            .map(|raw| {
                BackendUrl::parse(&raw).map_err(|e| match e {
                    Error::Config(m) => Error::Config(format!("{URL_VAR}: {m}")),
                    other => other,
                })
            })
            .transpose()
    }

    /// Connects or opens the store (the backend's `build`), with the
    /// backend's other settings read from the process environment
    /// ([`BackendUrl::open_with`] over [`Vars::from_env`]).
    ///
    /// # Errors
    /// As [`BackendUrl::open_with`].
    pub async fn open(&self) -> Result<Store> {
        self.open_with(Vars::from_env()).await
    }

    /// Connects or opens the store, reading the backend's other settings
    /// (`SESSION_STORE_<BACKEND>_*`: timeouts, pool sizes, durability, the
    /// Redis CA file) from `vars` as the backend's `from_vars` does. The URL
    /// replaces the backend's location variables (`…_URL`, `…_PATH`,
    /// `…_CLUSTER_NODES`, `SESSION_STORE_SLED_TEMPORARY`), and its namespace
    /// parameters win over the namespace variables.
    ///
    /// # Errors
    /// [`Error::Config`] for settings the backend refuses (a bad table name,
    /// a malformed variable, `rediss://` in a build without the `tls`
    /// feature); a backend error when it cannot be reached or opened.
    pub async fn open_with(&self, vars: Vars) -> Result<Store> {
        if self.is_tls() && !session_store_redis::TLS_SUPPORTED {
            return Err(Error::Config(
                "rediss:// needs TLS support, which this build lacks: enable the `tls` \
                 feature (session-store-cli: `cargo install session-store-cli --features tls`; \
                 libraries: session-store-url/tls or session-store-redis/tls)"
                    .into(),
            ));
        }
        Ok(match self.clone() {
            BackendUrl::Sqlite { path, table } => {
                let vars = located(
                    vars,
                    &[("SESSION_STORE_SQLITE_PATH", Some(path_text(&path)))],
                );
                let mut c = SqliteConfig::from_vars(&vars)?;
                if let Some(t) = table {
                    c = c.with_table(t);
                }
                Store::Sqlite(c.build().await?)
            }
            BackendUrl::Sled { path, prefix } => {
                let vars = located(
                    vars,
                    &[
                        ("SESSION_STORE_SLED_PATH", Some(path_text(&path))),
                        ("SESSION_STORE_SLED_TEMPORARY", None),
                    ],
                );
                let mut c = SledConfig::from_vars(&vars)?;
                if let Some(p) = prefix {
                    c = c.with_tree_prefix(p);
                }
                Store::Sled(c.build().await?)
            }
            BackendUrl::Redis {
                url,
                prefix,
                tls_ca_file,
            } => {
                let vars = located(
                    vars,
                    &[
                        ("SESSION_STORE_REDIS_URL", Some(url)),
                        ("SESSION_STORE_REDIS_CLUSTER_NODES", None),
                    ],
                );
                Store::Redis(redis_config(&vars, prefix, tls_ca_file)?.build().await?)
            }
            BackendUrl::RedisCluster {
                nodes,
                prefix,
                tls_ca_file,
            } => {
                let vars = located(
                    vars,
                    &[
                        ("SESSION_STORE_REDIS_URL", None),
                        ("SESSION_STORE_REDIS_CLUSTER_NODES", Some(nodes.join(","))),
                    ],
                );
                Store::Redis(redis_config(&vars, prefix, tls_ca_file)?.build().await?)
            }
            BackendUrl::Postgres { url, table, schema } => {
                let vars = located(vars, &[("SESSION_STORE_POSTGRES_URL", Some(url))]);
                let mut c = PostgresConfig::from_vars(&vars)?;
                if let Some(t) = table {
                    c = c.with_table(t);
                }
                if let Some(s) = schema {
                    c = c.with_schema(s);
                }
                Store::Postgres(c.build().await?)
            }
            BackendUrl::MySql { url, table } => {
                let vars = located(vars, &[("SESSION_STORE_MYSQL_URL", Some(url))]);
                let mut c = MySqlConfig::from_vars(&vars)?;
                if let Some(t) = table {
                    c = c.with_table(t);
                }
                Store::MySql(c.build().await?)
            }
        })
    }
}

/// `vars` with the location variables replaced: `Some` sets one, `None`
/// hides it (the URL is the location, whatever the environment says).
fn located(vars: Vars, set: &[(&'static str, Option<String>)]) -> Vars {
    let set: HashMap<&'static str, Option<String>> = set.iter().cloned().collect();
    Vars::from_fn(move |name| match set.get(name) {
        Some(v) => v.clone(),
        None => vars.string(name),
    })
}

fn path_text(path: &std::path::Path) -> String {
    // Parsed from a `&str`, so always valid UTF-8.
    path.to_string_lossy().into_owned()
}

fn redis_config(
    vars: &Vars,
    prefix: Option<String>,
    tls_ca_file: Option<PathBuf>,
) -> Result<RedisConfig> {
    let mut c = RedisConfig::from_vars(vars)?;
    if let Some(p) = prefix {
        c = c.with_prefix(p);
    }
    if let Some(f) = tls_ca_file {
        c = c.with_tls_ca_file(f);
    }
    c.validate()?;
    Ok(c)
}

fn ns(name: &str, value: &Option<String>) -> String {
    value
        .as_ref()
        .map_or(String::new(), |v| format!("?{name}={v}"))
}

/// An opened store of any backend.
#[derive(Debug, Clone)]
pub enum Store {
    /// SQLite.
    Sqlite(SqliteStore),
    /// sled.
    Sled(SledStore),
    /// Redis or Redis Cluster.
    Redis(RedisStore),
    /// PostgreSQL.
    Postgres(PostgresStore),
    /// MySQL or MariaDB.
    MySql(MySqlStore),
}

impl Store {
    /// The backend's name (`sqlite`, `sled`, `redis`, `postgres`, `mysql`):
    /// for labels and messages.
    pub fn kind(&self) -> &'static str {
        match self {
            Store::Sqlite(_) => "sqlite",
            Store::Sled(_) => "sled",
            Store::Redis(_) => "redis",
            Store::Postgres(_) => "postgres",
            Store::MySql(_) => "mysql",
        }
    }

    /// The store as a backend (raw: no encryption on top).
    pub fn backend(&self) -> Arc<dyn SessionBackend> {
        match self {
            Store::Sqlite(s) => Arc::new(s.clone()),
            Store::Sled(s) => Arc::new(s.clone()),
            Store::Redis(s) => Arc::new(s.clone()),
            Store::Postgres(s) => Arc::new(s.clone()),
            Store::MySql(s) => Arc::new(s.clone()),
        }
    }

    /// Creates or upgrades the schema (SQL backends; nothing to do on sled
    /// and Redis). Idempotent.
    ///
    /// # Errors
    /// Backend errors; [`Error::SchemaTooNew`] for a newer schema.
    pub async fn migrate(&self) -> Result<()> {
        match self {
            Store::Sqlite(s) => s.migrate().await,
            Store::Postgres(s) => s.migrate().await,
            Store::MySql(s) => s.migrate().await,
            Store::Sled(_) | Store::Redis(_) => Ok(()),
        }
    }

    /// A cheap readiness check, for a load balancer's health probe: reaches
    /// the server (one round trip: a `PING`, or reading the schema version)
    /// and checks that the schema is the one this build writes.
    ///
    /// # Errors
    /// A backend error when the server cannot be reached.
    pub async fn ready(&self) -> Result<Readiness> {
        let (found, expected) = match self {
            Store::Sqlite(s) => (
                s.schema_version().await?,
                session_store_sqlite::SCHEMA_VERSION,
            ),
            Store::Postgres(s) => (
                s.schema_version().await?,
                session_store_postgres::SCHEMA_VERSION,
            ),
            Store::MySql(s) => (
                s.schema_version().await?,
                session_store_mysql::SCHEMA_VERSION,
            ),
            Store::Redis(s) => {
                s.ping().await?;
                return Ok(Readiness::Ready);
            }
            // Opening the database checked its layout version.
            Store::Sled(_) => return Ok(Readiness::Ready),
        };
        Ok(if found == Some(expected) {
            Readiness::Ready
        } else {
            Readiness::SchemaMismatch { found, expected }
        })
    }

    /// Whether scans of this backend may return a key on more than one page
    /// (Redis `SCAN`), so that counting callers must remove duplicates.
    pub fn scan_may_repeat(&self) -> bool {
        matches!(self, Store::Redis(_))
    }
}

/// What [`Store::ready`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Readiness {
    /// Reachable, with the expected schema.
    Ready,
    /// Reachable, but the schema is missing (`found: None`: run `migrate`),
    /// older or newer than this build's.
    SchemaMismatch {
        /// The version recorded in the database, if any.
        found: Option<i64>,
        /// The version this build writes.
        expected: i64,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_form_parses_and_namespace_parameters_are_taken_out() {
        assert_eq!(
            BackendUrl::parse("sqlite:///var/lib/s.db?table=t").unwrap(),
            BackendUrl::Sqlite {
                path: "/var/lib/s.db".into(),
                table: Some("t".into())
            }
        );
        assert_eq!(
            BackendUrl::parse("sled://data/db").unwrap(),
            BackendUrl::Sled {
                path: "data/db".into(),
                prefix: None
            }
        );
        assert_eq!(
            BackendUrl::parse("redis+cluster://127.0.0.1:7001,127.0.0.1:7002?prefix=p").unwrap(),
            BackendUrl::RedisCluster {
                nodes: vec![
                    "redis://127.0.0.1:7001".into(),
                    "redis://127.0.0.1:7002".into()
                ],
                prefix: Some("p".into()),
                tls_ca_file: None
            }
        );
        assert_eq!(
            BackendUrl::parse("rediss://h:6380/2?prefix=p&tls_ca_file=/etc/ca.pem").unwrap(),
            BackendUrl::Redis {
                url: "rediss://h:6380/2".into(),
                prefix: Some("p".into()),
                tls_ca_file: Some("/etc/ca.pem".into())
            }
        );
        assert_eq!(
            BackendUrl::parse("postgres://u@h/db?sslmode=disable&table=t&schema=s").unwrap(),
            BackendUrl::Postgres {
                url: "postgres://u@h/db?sslmode=disable".into(),
                table: Some("t".into()),
                schema: Some("s".into())
            }
        );
        assert_eq!(
            BackendUrl::parse("mariadb://root@127.0.0.1/test?table=t").unwrap(),
            BackendUrl::MySql {
                url: "mysql://root@127.0.0.1/test".into(),
                table: Some("t".into())
            }
        );
    }

    #[test]
    fn the_url_replaces_the_location_variables_and_the_rest_pass_through() {
        let base = Vars::from_pairs([
            (
                "SESSION_STORE_REDIS_CLUSTER_NODES",
                "redis://a:1,redis://b:2",
            ),
            ("SESSION_STORE_REDIS_OPERATION_TIMEOUT_MS", "1234"),
            ("SESSION_STORE_SLED_TEMPORARY", "true"),
        ]);
        let vars = located(
            base,
            &[
                ("SESSION_STORE_REDIS_URL", Some("redis://h:6379".into())),
                ("SESSION_STORE_REDIS_CLUSTER_NODES", None),
                ("SESSION_STORE_SLED_TEMPORARY", None),
            ],
        );
        assert_eq!(
            vars.string("SESSION_STORE_REDIS_URL").as_deref(),
            Some("redis://h:6379")
        );
        assert_eq!(vars.string("SESSION_STORE_REDIS_CLUSTER_NODES"), None);
        assert_eq!(vars.string("SESSION_STORE_SLED_TEMPORARY"), None);
        let c = redis_config(&vars, Some("p".into()), None).unwrap();
        assert!(!c.is_cluster());
        assert_eq!(c.prefix(), "p");
        assert_eq!(c.operation_timeout().as_millis(), 1234);
    }

    #[tokio::test]
    async fn opening_reads_the_backend_settings_but_never_its_location() {
        let dir = std::env::temp_dir().join(format!("url-open-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let url = BackendUrl::parse(&format!("sqlite://{}", dir.join("s.db").display())).unwrap();
        // A malformed setting is reported, naming its variable.
        let e = url
            .open_with(Vars::from_pairs([("SESSION_STORE_SQLITE_READERS", "many")]))
            .await
            .unwrap_err();
        assert!(
            matches!(&e, Error::Config(m) if m.starts_with("SESSION_STORE_SQLITE_READERS")),
            "{e}"
        );
        // The URL is the location, whatever the variable says.
        let store = url
            .open_with(Vars::from_pairs([(
                "SESSION_STORE_SQLITE_PATH",
                "/nonexistent/elsewhere.db",
            )]))
            .await
            .unwrap();
        store.migrate().await.unwrap();
        assert_eq!(store.kind(), "sqlite");
        assert_eq!(store.ready().await.unwrap(), Readiness::Ready);
        drop(store);
        assert!(dir.join("s.db").exists());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn errors_and_debug_never_show_a_password() {
        let u = BackendUrl::parse("postgres://admin:s3cret@h/db?table=t").unwrap();
        assert!(!format!("{u:?}").contains("s3cret"));
        assert!(!u.endpoint().contains("s3cret"));
        let e = BackendUrl::parse("foo//admin:s3cret@h")
            .unwrap_err()
            .to_string();
        assert!(!e.contains("s3cret"), "{e}");
        for bad in [
            "sqlite://",
            "sled://x?table=t",
            "redis+cluster://",
            "ftp://x",
        ] {
            assert!(
                matches!(BackendUrl::parse(bad), Err(Error::Config(_))),
                "{bad}"
            );
        }
    }
}
