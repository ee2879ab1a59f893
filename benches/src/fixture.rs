//! The backends under test, each in a fresh namespace that is removed afterwards.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use session_store_core::{
    Encrypted, EncryptionKey, Keyring, MemoryStore, Policy, SessionBackend, SessionManager,
};
#[cfg(feature = "store-mysql")]
use session_store_mysql::{MySqlConfig, MySqlStore};
#[cfg(feature = "store-postgres")]
use session_store_postgres::{PostgresConfig, PostgresStore};
#[cfg(feature = "store-redis")]
use session_store_redis::{RedisConfig, RedisStore};
#[cfg(feature = "store-sled")]
use session_store_sled::{Durability, SledConfig, SledStore};
#[cfg(feature = "store-sqlite")]
use session_store_sqlite::SqliteConfig;
#[cfg(any(feature = "store-postgres", feature = "store-mysql"))]
use sqlx::AssertSqlSafe;
use tempfile::TempDir;

/// sled's page cache in the benchmarks: 1 GiB holds the 10^6-session scale
/// level (the crate default, 64 MiB, would measure page-ins instead).
pub const SLED_CACHE_BYTES: u64 = 1 << 30;

/// The payload sizes: (label, bytes).
pub const PAYLOADS: [(&str, usize); 2] = [("200B", 200), ("4KiB", 4096)];

/// `len` bytes of incompressible-looking session data.
pub fn payload(len: usize) -> Vec<u8> {
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

/// A server location from the environment. Cargo sets the workspace's
/// loopback servers from `.cargo/config.toml` (an exported value wins), the
/// same variables every test factory reads through the backends' `from_env`.
fn required(name: &str) -> String {
    session_store_core::config::Vars::from_env()
        .required(name)
        .unwrap_or_else(|e| panic!("{e} (cargo sets it from .cargo/config.toml)"))
}

/// The Redis URL in use: `SESSION_STORE_REDIS_URL`.
pub fn redis_url() -> String {
    required("SESSION_STORE_REDIS_URL")
}

/// The Redis Cluster seeds in use: `SESSION_STORE_TEST_REDIS_CLUSTER_NODES`
/// (not `SESSION_STORE_REDIS_CLUSTER_NODES`, which would switch every Redis
/// configuration read from the environment to cluster mode).
pub(crate) fn cluster_nodes() -> Vec<String> {
    required("SESSION_STORE_TEST_REDIS_CLUSTER_NODES")
        .split(',')
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
        .collect()
}

/// The PostgreSQL URL in use: `SESSION_STORE_POSTGRES_URL`.
pub fn postgres_url() -> String {
    required("SESSION_STORE_POSTGRES_URL")
}

/// The MySQL/MariaDB server in use (`SESSION_STORE_MYSQL_URL`), connected to
/// as the store connects: `utf8mb4`, no TLS (the store is built without a
/// TLS stack).
///
/// # Panics
/// When the URL does not parse.
pub(crate) fn mysql_options() -> sqlx::mysql::MySqlConnectOptions {
    use std::str::FromStr as _;
    sqlx::mysql::MySqlConnectOptions::from_str(&required("SESSION_STORE_MYSQL_URL"))
        .unwrap_or_else(|e| panic!("SESSION_STORE_MYSQL_URL: {e}"))
        .charset("utf8mb4")
        .ssl_mode(sqlx::mysql::MySqlSslMode::Disabled)
}

/// A backend under test.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Target {
    /// `MemoryStore` (the reference implementation).
    Memory,
    /// sled with the default durability (flush + `fdatasync` before every
    /// acknowledged write).
    Sled,
    /// sled with periodic durability (500 ms), to show what the default costs.
    SledPeriodic,
    /// SQLite (WAL, `synchronous=NORMAL`, the defaults).
    Sqlite,
    /// PostgreSQL (default pool of 10 connections, logged table).
    Postgres,
    /// MySQL/MariaDB (default pool of 10 connections, InnoDB table).
    Mysql,
    /// Redis, one server, `ConnectionManager`.
    Redis,
    /// Redis Cluster, three masters.
    RedisCluster,
}

impl Target {
    /// Every target, in report order.
    pub const ALL: [Target; 8] = [
        Target::Memory,
        Target::Sled,
        Target::SledPeriodic,
        Target::Sqlite,
        Target::Postgres,
        Target::Mysql,
        Target::Redis,
        Target::RedisCluster,
    ];

    /// The targets a run measures: those named in `BENCH_TARGETS`
    /// (comma-separated ids), or every target when it is unset or empty.
    pub fn selected() -> Vec<Target> {
        match std::env::var("BENCH_TARGETS") {
            Ok(list) if !list.trim().is_empty() => Target::ALL
                .into_iter()
                .filter(|t| list.split(',').any(|x| x.trim() == t.id()))
                .collect(),
            _ => Target::ALL.to_vec(),
        }
    }

    /// Short id used in benchmark names and result files.
    pub fn id(self) -> &'static str {
        match self {
            Target::Memory => "memory",
            Target::Sled => "sled",
            Target::SledPeriodic => "sled-periodic",
            Target::Sqlite => "sqlite",
            Target::Postgres => "postgres",
            Target::Mysql => "mysql",
            Target::Redis => "redis",
            Target::RedisCluster => "redis-cluster",
        }
    }

    /// Whether the encrypted variant is measured too (the periodic sled
    /// variant only exists to isolate the cost of `fdatasync`).
    pub fn with_encryption(self) -> bool {
        self != Target::SledPeriodic
    }
}

/// What a fixture holds besides the trait object, for raw access and teardown.
#[derive(Debug)]
enum Concrete {
    Memory,
    #[cfg(feature = "store-sled")]
    Sled(SledStore),
    #[cfg(feature = "store-sqlite")]
    Sqlite {
        path: PathBuf,
        table: String,
    },
    #[cfg(feature = "store-postgres")]
    Postgres {
        store: PostgresStore,
        schema: String,
    },
    #[cfg(feature = "store-mysql")]
    Mysql {
        store: MySqlStore,
        table: String,
    },
    #[cfg(feature = "store-redis")]
    Redis(RedisStore),
}

/// One backend in a fresh namespace, plain and encrypted.
#[derive(Debug)]
pub struct Fixture {
    /// Which backend.
    pub target: Target,
    plain: Arc<dyn SessionBackend>,
    encrypted: Arc<dyn SessionBackend>,
    concrete: Concrete,
    dir: Option<TempDir>,
}

impl Fixture {
    /// Opens `target` in a new namespace (temporary directory, random Redis
    /// prefix, random PostgreSQL schema, random MySQL table).
    ///
    /// # Errors
    /// A description of what could not be reached or opened.
    pub async fn open(target: Target) -> Result<Self, String> {
        let tag = crate::random_tag();
        let err = |e: session_store_core::Error| format!("{}: {e}", target.id());
        let (plain, concrete, dir): (Arc<dyn SessionBackend>, Concrete, Option<TempDir>) =
            match target {
                Target::Memory => (Arc::new(MemoryStore::default()), Concrete::Memory, None),
                #[cfg(feature = "store-sled")]
                Target::Sled | Target::SledPeriodic => {
                    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
                    let mut config = SledConfig::new(dir.path().join("db"))
                        .with_tree_prefix("bench")
                        .with_cache_capacity(SLED_CACHE_BYTES);
                    if target == Target::SledPeriodic {
                        config = config
                            .with_durability(Durability::Periodic(Duration::from_millis(500)));
                    }
                    let store = config.build().await.map_err(err)?;
                    (Arc::new(store.clone()), Concrete::Sled(store), Some(dir))
                }
                #[cfg(feature = "store-sqlite")]
                Target::Sqlite => {
                    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
                    let path = dir.path().join("sessions.db");
                    let table = "sessions".to_owned();
                    let store = SqliteConfig::new(&path)
                        .with_table(&table)
                        .build()
                        .await
                        .map_err(err)?;
                    store.migrate().await.map_err(err)?;
                    (Arc::new(store), Concrete::Sqlite { path, table }, Some(dir))
                }
                #[cfg(feature = "store-postgres")]
                Target::Postgres => {
                    let schema = format!("bench_{tag}");
                    crate::register_namespace("postgres", &schema);
                    let store = PostgresConfig::from_env()
                        .map_err(err)?
                        .with_schema(&schema)
                        .with_table("sessions")
                        .with_operation_timeout(Duration::from_secs(120))
                        .with_statement_timeout(Some(Duration::from_secs(120)))
                        .build()
                        .await
                        .map_err(err)?;
                    store.migrate().await.map_err(err)?;
                    (
                        Arc::new(store.clone()),
                        Concrete::Postgres { store, schema },
                        None,
                    )
                }
                #[cfg(feature = "store-mysql")]
                Target::Mysql => {
                    // A table of its own in the configured database (MySQL
                    // has no schemas inside a database).
                    let table = format!("bench_{tag}");
                    crate::register_namespace("mysql", &table);
                    let store = MySqlConfig::from_env()
                        .map_err(err)?
                        .with_table(&table)
                        .with_operation_timeout(Duration::from_secs(120))
                        .build()
                        .await
                        .map_err(err)?;
                    store.migrate().await.map_err(err)?;
                    (
                        Arc::new(store.clone()),
                        Concrete::Mysql { store, table },
                        None,
                    )
                }
                #[cfg(feature = "store-redis")]
                Target::Redis | Target::RedisCluster => {
                    let config = if target == Target::Redis {
                        RedisConfig::from_env().map_err(err)?
                    } else {
                        RedisConfig::cluster(cluster_nodes())
                    }
                    .with_prefix(format!("bench:{tag}"));
                    // Store keys are `{<prefix>:..}:...` (hash tags).
                    crate::register_namespace("redis", &format!("{{bench:{tag}:*"));
                    let store = config.build().await.map_err(err)?;
                    (Arc::new(store.clone()), Concrete::Redis(store), None)
                }
                #[allow(unreachable_patterns)]
                _ => {
                    return Err(format!(
                        "{}: its backend crate is not compiled in (feature disabled)",
                        target.id()
                    ))
                }
            };
        let encrypted: Arc<dyn SessionBackend> = Arc::new(Encrypted::new(
            plain.clone(),
            Keyring::new(1, EncryptionKey::generate()),
        ));
        Ok(Fixture {
            target,
            plain,
            encrypted,
            concrete,
            dir,
        })
    }

    /// The backend, plain or under the encryption wrapper.
    pub fn backend(&self, encrypted: bool) -> Arc<dyn SessionBackend> {
        if encrypted {
            self.encrypted.clone()
        } else {
            self.plain.clone()
        }
    }

    /// A manager over the backend with the default policy; with `touch_every_load`
    /// every load writes a touch (touch interval zero), otherwise the default
    /// 60 s interval applies and steady loads do not write.
    ///
    /// # Panics
    /// Never for these policies.
    pub fn manager(&self, encrypted: bool, touch_every_load: bool) -> SessionManager {
        let policy = Policy {
            touch_interval: if touch_every_load {
                Duration::ZERO
            } else {
                Policy::default().touch_interval
            },
            ..Policy::default()
        };
        SessionManager::builder(self.backend(encrypted))
            .policy(policy)
            .build()
            .expect("valid policy")
    }

    /// The sled store, for sled targets.
    #[cfg(feature = "store-sled")]
    pub fn sled(&self) -> Option<&SledStore> {
        match &self.concrete {
            Concrete::Sled(s) => Some(s),
            _ => None,
        }
    }

    /// The SQLite database file and table, for the SQLite target.
    #[cfg(feature = "store-sqlite")]
    pub fn sqlite(&self) -> Option<(&std::path::Path, &str)> {
        match &self.concrete {
            Concrete::Sqlite { path, table } => Some((path, table)),
            _ => None,
        }
    }

    /// The PostgreSQL store and its schema, for the PostgreSQL target.
    #[cfg(feature = "store-postgres")]
    pub fn postgres(&self) -> Option<(&PostgresStore, &str)> {
        match &self.concrete {
            Concrete::Postgres { store, schema } => Some((store, schema)),
            _ => None,
        }
    }

    /// The MySQL store and its table, for the MySQL target.
    #[cfg(feature = "store-mysql")]
    pub fn mysql(&self) -> Option<(&MySqlStore, &str)> {
        match &self.concrete {
            Concrete::Mysql { store, table } => Some((store, table)),
            _ => None,
        }
    }

    /// The Redis store, for Redis targets.
    #[cfg(feature = "store-redis")]
    pub fn redis(&self) -> Option<&RedisStore> {
        match &self.concrete {
            Concrete::Redis(s) => Some(s),
            _ => None,
        }
    }

    /// The fixture's temporary directory, if any (for raw baselines' files).
    pub fn dir(&self) -> Option<&std::path::Path> {
        self.dir.as_ref().map(TempDir::path)
    }

    /// Removes the namespace: Redis keys of the prefix, the PostgreSQL schema,
    /// the MySQL table (and its schema-version row), the temporary directory.
    pub async fn teardown(self) {
        match &self.concrete {
            #[cfg(feature = "store-redis")]
            Concrete::Redis(store) => {
                if let Err(e) = store.delete_all().await {
                    eprintln!(
                        "warning: could not clean Redis prefix {}: {e}",
                        store.prefix()
                    );
                }
            }
            #[cfg(feature = "store-postgres")]
            Concrete::Postgres { store, schema } => {
                // On a connection of its own: the store keeps its pool's
                // connections checked out (warm) until it is dropped.
                use sqlx::Connection as _;
                let sql = format!("DROP SCHEMA IF EXISTS \"{schema}\" CASCADE");
                let dropped = async {
                    let mut conn = sqlx::PgConnection::connect(&postgres_url()).await?;
                    sqlx::query(AssertSqlSafe(sql)).execute(&mut conn).await?;
                    conn.close().await
                };
                if let Err(e) = dropped.await {
                    eprintln!("warning: could not drop schema {schema}: {e}");
                }
                let _ = tokio::time::timeout(Duration::from_secs(5), store.close()).await;
            }
            #[cfg(feature = "store-mysql")]
            Concrete::Mysql { store, table } => {
                // The store's own connections go first: a DROP TABLE waits
                // for the metadata lock of any connection that used it.
                let _ = tokio::time::timeout(Duration::from_secs(5), store.close()).await;
                if let Err(e) = drop_mysql_table(table).await {
                    eprintln!("warning: could not drop table {table}: {e}");
                }
            }
            _ => {}
        }
        drop(self.encrypted);
        drop(self.plain);
        drop(self.concrete);
        drop(self.dir);
    }
}

/// Drops a MySQL table of this run and its row in the store's schema-version
/// table, on a connection of its own.
#[cfg(feature = "store-mysql")]
async fn drop_mysql_table(table: &str) -> Result<(), sqlx::Error> {
    use sqlx::Connection as _;
    let mut conn = sqlx::MySqlConnection::connect_with(&mysql_options()).await?;
    sqlx::query(AssertSqlSafe(format!("DROP TABLE IF EXISTS `{table}`")))
        .execute(&mut conn)
        .await?;
    sqlx::query(AssertSqlSafe(format!(
        "DELETE FROM {} WHERE table_name = ?",
        session_store_mysql::META_TABLE
    )))
    .bind(table)
    .execute(&mut conn)
    .await?;
    conn.close().await
}
