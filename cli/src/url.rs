//! One URL names a backend and its namespace: the one place that turns a
//! location string into a store.
//!
//! | URL | backend | namespace parameter (default) |
//! | --- | --- | --- |
//! | `sqlite://PATH` (`sqlite:///abs/path`, `sqlite://rel/path`, `sqlite://:memory:`) | SQLite | `table` (`sessions`) |
//! | `sled://PATH` | sled | `prefix` (`sessions`) |
//! | `redis://[user:pass@]host[:port][/db]`, `rediss://…` | Redis | `prefix` (`session`) |
//! | `redis+cluster://host1:port,host2:port` (`rediss+cluster://…`) | Redis Cluster | `prefix` |
//! | `postgres://…`, `postgresql://…` | PostgreSQL | `table`, `schema` |
//! | `mysql://…`, `mariadb://…` | MySQL / MariaDB | `table` |
//!
//! The namespace parameters are removed from the URL before it reaches the
//! driver; every other query parameter is passed through (`sslmode=…`).
//! Other settings (timeouts, pool sizes) come from the backend's
//! `SESSION_STORE_<BACKEND>_*` variables where the backend reads them, as in
//! `from_env`. Passwords never appear in errors or `Debug` (see
//! [`redact_url`]).

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;

use session_store_core::config::redact_url;
use session_store_core::{Error, Result, SessionBackend};
use session_store_mysql::{MySqlConfig, MySqlStore};
use session_store_postgres::{PostgresConfig, PostgresStore};
use session_store_redis::{RedisConfig, RedisStore};
use session_store_sled::{SledConfig, SledStore};
use session_store_sqlite::{SqliteConfig, SqliteStore};

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
    },
    /// `redis+cluster://h1:p1,h2:p2`.
    RedisCluster {
        /// One `redis://host:port` (or `rediss://`) URL per seed node.
        nodes: Vec<String>,
        /// The key prefix, if given.
        prefix: Option<String>,
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
                Ok(BackendUrl::Redis {
                    url: rebuild(&format!("{scheme}://{head}"), &params),
                    prefix,
                })
            }
            "redis+cluster" | "rediss+cluster" => {
                let prefix = take(&mut params, "prefix");
                no_rest(&params, scheme, "prefix")?;
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
                Ok(BackendUrl::RedisCluster { nodes, prefix })
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
            BackendUrl::Redis { url, prefix } => {
                format!("{}{}", redact_url(url), ns("prefix", prefix))
            }
            BackendUrl::RedisCluster { nodes, prefix } => format!(
                "redis+cluster://{}{}",
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

    /// Connects or opens the store (the backend's `build`).
    ///
    /// # Errors
    /// [`Error::Config`] for settings the backend refuses (a bad table name,
    /// `rediss://` without TLS support); a backend error when it cannot be
    /// reached or opened.
    pub async fn open(&self) -> Result<Store> {
        Ok(match self.clone() {
            BackendUrl::Sqlite { path, table } => {
                let mut c = SqliteConfig::new(path);
                if let Some(t) = table {
                    c = c.with_table(t);
                }
                Store::Sqlite(c.build().await?)
            }
            BackendUrl::Sled { path, prefix } => {
                let mut c = SledConfig::new(path);
                if let Some(p) = prefix {
                    c = c.with_tree_prefix(p);
                }
                Store::Sled(c.build().await?)
            }
            BackendUrl::Redis { url, prefix } => {
                let mut c = RedisConfig::new(url);
                if let Some(p) = prefix {
                    c = c.with_prefix(p);
                }
                Store::Redis(c.build().await?)
            }
            BackendUrl::RedisCluster { nodes, prefix } => {
                let mut c = RedisConfig::cluster(nodes);
                if let Some(p) = prefix {
                    c = c.with_prefix(p);
                }
                Store::Redis(c.build().await?)
            }
            BackendUrl::Postgres { url, table, schema } => {
                let mut c = PostgresConfig::new(url);
                if let Some(t) = table {
                    c = c.with_table(t);
                }
                if let Some(s) = schema {
                    c = c.with_schema(s);
                }
                Store::Postgres(c.build().await?)
            }
            BackendUrl::MySql { url, table } => {
                let mut c = MySqlConfig::new(url);
                if let Some(t) = table {
                    c = c.with_table(t);
                }
                Store::MySql(c.build().await?)
            }
        })
    }
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
                prefix: Some("p".into())
            }
        );
        assert_eq!(
            BackendUrl::parse("rediss://h:6380/2?prefix=p").unwrap(),
            BackendUrl::Redis {
                url: "rediss://h:6380/2".into(),
                prefix: Some("p".into())
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
