//! Backends for the tests of the framework adapters and the example app:
//! SQLite on a temp file (plain and encrypted), Redis on 127.0.0.1:6379
//! under a random key prefix, PostgreSQL on 127.0.0.1:5432 in a random
//! schema and MySQL/MariaDB on 127.0.0.1:3306 in a random table (both
//! dropped afterwards).
//!
//! Capabilities:
//! - [`sqlite`], [`encrypted_sqlite`], [`redis`], [`postgres`] and [`mysql`]
//!   each give a fresh, isolated [`TestBackend`]; [`TestBackend::finish`]
//!   removes what the test stored.
//! - Redis, PostgreSQL and MySQL can be skipped (with a visible `SKIP:` line)
//!   with `SESSION_STORE_SKIP_REDIS=1` / `SESSION_STORE_SKIP_POSTGRES=1` /
//!   `SESSION_STORE_SKIP_MYSQL=1`; an unreachable server otherwise fails the
//!   test.
//! - [`per_backend!`] turns scenario functions into one `#[tokio::test]` per
//!   scenario and backend.
//! - [`Browser`]: an HTTP client with a cookie jar, for the adapters' tests
//!   under their frameworks' real middleware.
//!
//! Not published: a dev-dependency of the workspace's own test suites.
#![forbid(unsafe_code)]
#![deny(missing_docs)]
#![cfg_attr(docsrs, feature(doc_cfg))]

use std::sync::Arc;

use reqwest::cookie::{CookieStore as _, Jar};
use session_store_core::{Encrypted, EncryptionKey, Keyring, SessionBackend, SessionToken};
use session_store_mysql::{MySqlConfig, META_TABLE};
use session_store_postgres::PostgresConfig;
use session_store_redis::RedisConfig;
use session_store_sqlite::SqliteConfig;

/// A backend and whatever must live as long as it.
pub struct TestBackend {
    /// The backend under test.
    pub backend: Arc<dyn SessionBackend>,
    /// Its name, for assertion messages.
    pub name: &'static str,
    _dir: Option<tempfile::TempDir>,
    /// PostgreSQL URL and schema to drop afterwards.
    postgres: Option<(String, String)>,
    /// MySQL URL and table to drop afterwards.
    mysql: Option<(String, String)>,
}

impl TestBackend {
    /// Removes what the test stored (Redis keys live on the shared server).
    ///
    /// # Panics
    /// When the backend or the PostgreSQL or MySQL server fails (a test helper).
    pub async fn finish(self) {
        self.backend.delete_all().await.expect("delete_all");
        if let Some((url, schema)) = self.postgres {
            use sqlx::Connection as _;
            let mut conn = sqlx::PgConnection::connect(&url)
                .await
                .expect("connect to drop the test schema");
            let sql = format!("DROP SCHEMA IF EXISTS \"{schema}\" CASCADE");
            sqlx::query(sqlx::AssertSqlSafe(sql))
                .execute(&mut conn)
                .await
                .expect("drop the test schema");
        }
        if let Some((url, table)) = self.mysql {
            use sqlx::Connection as _;
            let mut conn = sqlx::MySqlConnection::connect(&url)
                .await
                .expect("connect to drop the test table");
            sqlx::query(sqlx::AssertSqlSafe(format!(
                "DROP TABLE IF EXISTS `{table}`"
            )))
            .execute(&mut conn)
            .await
            .expect("drop the test table");
            sqlx::query(sqlx::AssertSqlSafe(format!(
                "DELETE FROM {META_TABLE} WHERE table_name = ?"
            )))
            .bind(&table)
            .execute(&mut conn)
            .await
            .expect("forget the test table's schema version");
        }
    }
}

/// SQLite on a file in a fresh temp dir (removed with the [`TestBackend`]).
/// Always `Some`; an `Option` like the others so [`per_backend!`] treats
/// every backend alike.
///
/// # Panics
/// When the store cannot be opened or migrated.
pub async fn sqlite() -> Option<TestBackend> {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = SqliteConfig::new(dir.path().join("sessions.db"))
        .build()
        .await
        .expect("open SQLite");
    store.migrate().await.expect("migrate");
    Some(TestBackend {
        backend: Arc::new(store),
        name: "sqlite",
        _dir: Some(dir),
        postgres: None,
        mysql: None,
    })
}

/// [`sqlite`] inside [`Encrypted`] under a freshly generated key.
///
/// # Panics
/// As [`sqlite`].
pub async fn encrypted_sqlite() -> Option<TestBackend> {
    let mut t = sqlite().await?;
    t.backend = Arc::new(Encrypted::new(
        t.backend,
        Keyring::new(7, EncryptionKey::generate()),
    ));
    t.name = "encrypted sqlite";
    Some(t)
}

/// Redis from [`RedisConfig::from_env`] (`SESSION_STORE_REDIS_URL`, set by
/// the workspace's `.cargo/config.toml`) under the key prefix
/// `{suite}-test:<random>`, or
/// `None` (with a visible `SKIP:` line naming the `suite`, e.g. `adapter`)
/// when `SESSION_STORE_SKIP_REDIS=1`.
///
/// # Panics
/// When the server is unreachable: a test that cannot run fails.
pub async fn redis(suite: &str) -> Option<TestBackend> {
    if std::env::var("SESSION_STORE_SKIP_REDIS").as_deref() == Ok("1") {
        println!("SKIP: Redis {suite} test (SESSION_STORE_SKIP_REDIS=1)");
        return None;
    }
    let prefix = format!(
        "{suite}-test:{}",
        SessionToken::generate().storage_key().short_hash()
    );
    let config = RedisConfig::from_env()
        .unwrap_or_else(|e| panic!("Redis test configuration: {e}"))
        .with_prefix(prefix);
    match config.build().await {
        Ok(store) => Some(TestBackend {
            backend: Arc::new(store),
            name: "redis",
            _dir: None,
            postgres: None,
            mysql: None,
        }),
        Err(e) => panic!(
            "Redis (SESSION_STORE_REDIS_URL) is unreachable ({e}): run `store-redis/scripts/redis-services.sh start`, \
             or set SESSION_STORE_SKIP_REDIS=1 to skip the Redis tests"
        ),
    }
}

/// PostgreSQL (`PostgresConfig::from_env`: `SESSION_STORE_POSTGRES_URL`,
/// set by the workspace's `.cargo/config.toml`) in a fresh schema
/// `{suite}_test_<random>` (`-` in `suite` becomes `_`; dropped by
/// [`TestBackend::finish`]), or `None` (with a visible `SKIP:` line naming
/// the `suite`) when `SESSION_STORE_SKIP_POSTGRES=1`.
///
/// # Panics
/// When the server is unreachable or the migration fails.
pub async fn postgres(suite: &str) -> Option<TestBackend> {
    if std::env::var("SESSION_STORE_SKIP_POSTGRES").as_deref() == Ok("1") {
        println!("SKIP: PostgreSQL {suite} test (SESSION_STORE_SKIP_POSTGRES=1)");
        return None;
    }
    let schema = format!(
        "{}_test_{}",
        suite.replace('-', "_"),
        SessionToken::generate().storage_key().short_hash()
    );
    let config = PostgresConfig::from_env()
        .unwrap_or_else(|e| panic!("{e} (see .cargo/config.toml)"))
        .with_schema(schema.clone());
    let url = config.url().to_owned();
    let store = match config.build().await {
        Ok(s) => s,
        Err(e) => panic!(
            "PostgreSQL is unreachable ({e}): run `store-postgres/scripts/postgres-service.sh`, \
             or set SESSION_STORE_SKIP_POSTGRES=1 to skip the PostgreSQL tests"
        ),
    };
    store.migrate().await.expect("migrate");
    Some(TestBackend {
        backend: Arc::new(store),
        name: "postgres",
        _dir: None,
        postgres: Some((url, schema)),
        mysql: None,
    })
}

/// MySQL or MariaDB (`MySqlConfig::from_env`: `SESSION_STORE_MYSQL_URL`,
/// set by the workspace's `.cargo/config.toml`) in a fresh table
/// `{suite}_test_<random>` of the configured database (`-` in `suite`
/// becomes `_`; dropped by [`TestBackend::finish`]), or `None` (with a
/// visible `SKIP:` line naming the `suite`) when `SESSION_STORE_SKIP_MYSQL=1`.
///
/// # Panics
/// When the server is unreachable or the migration fails.
pub async fn mysql(suite: &str) -> Option<TestBackend> {
    if std::env::var("SESSION_STORE_SKIP_MYSQL").as_deref() == Ok("1") {
        println!("SKIP: MySQL {suite} test (SESSION_STORE_SKIP_MYSQL=1)");
        return None;
    }
    let table = format!(
        "{}_test_{}",
        suite.replace('-', "_"),
        SessionToken::generate().storage_key().short_hash()
    );
    let config = MySqlConfig::from_env()
        .unwrap_or_else(|e| panic!("{e} (see .cargo/config.toml)"))
        .with_table(table.clone());
    let url = config.url().to_owned();
    let store = match config.build().await {
        Ok(s) => s,
        Err(e) => panic!(
            "MySQL/MariaDB is unreachable ({e}): run `store-mysql/scripts/mysql-service.sh`, \
             or set SESSION_STORE_SKIP_MYSQL=1 to skip the MySQL tests"
        ),
    };
    store.migrate().await.expect("migrate");
    Some(TestBackend {
        backend: Arc::new(store),
        name: "mysql",
        _dir: None,
        postgres: None,
        mysql: Some((url, table)),
    })
}

/// A browser: a reqwest client with its own cookie jar, talking to one
/// server.
pub struct Browser {
    client: reqwest::Client,
    jar: Arc<Jar>,
    base: String,
}

impl Browser {
    /// A browser with an empty jar for the server at `base`
    /// (`http://127.0.0.1:port`).
    ///
    /// # Panics
    /// When the client cannot be built.
    pub fn new(base: &str) -> Self {
        let jar = Arc::new(Jar::default());
        Browser {
            client: reqwest::Client::builder()
                .cookie_provider(jar.clone())
                .build()
                .unwrap(),
            jar,
            base: base.to_owned(),
        }
    }

    /// POST `path` with the jar; the body.
    ///
    /// # Panics
    /// On a transport error or a status other than 200.
    pub async fn post(&self, path: &str) -> String {
        let res = self
            .client
            .post(format!("{}{path}", self.base))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200, "POST {path}");
        res.text().await.unwrap()
    }

    /// GET `path` with the jar; the body.
    ///
    /// # Panics
    /// On a transport error or a status other than 200.
    pub async fn get(&self, path: &str) -> String {
        let res = self
            .client
            .get(format!("{}{path}", self.base))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200, "GET {path}");
        res.text().await.unwrap()
    }

    /// The raw `Cookie` header the jar would send.
    ///
    /// # Panics
    /// When the header is not valid text.
    pub fn cookie_header(&self) -> Option<String> {
        let url = self.base.parse().unwrap();
        self.jar
            .cookies(&url)
            .map(|h| h.to_str().unwrap().to_owned())
    }

    /// The value of the cookie `name` in the jar.
    ///
    /// # Panics
    /// As [`Browser::cookie_header`].
    pub fn cookie(&self, name: &str) -> Option<String> {
        self.cookie_header()?
            .split(';')
            .filter_map(|p| p.trim().split_once('='))
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.to_owned())
    }

    /// GET `path` with an explicit `Cookie` header and no jar (a stolen or
    /// replayed cookie); the body, whatever the status.
    ///
    /// # Panics
    /// On a transport error.
    pub async fn get_with_cookie(&self, path: &str, cookie_header: &str) -> String {
        reqwest::Client::new()
            .get(format!("{}{path}", self.base))
            .header("cookie", cookie_header)
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }
}

/// One `#[tokio::test]` per scenario and backend: `per_backend!("adapter";
/// a, b)` expects `async fn a(b: TestBackend)` (and `b`) next to it and
/// generates `sqlite_backend::a`, `encrypted_sqlite_backend::a`,
/// `postgres_backend::a`, `mysql_backend::a`, `redis_backend::a`, and the
/// same for `b`. The string names the suite in `SKIP:` lines, Redis key
/// prefixes, PostgreSQL schemas and MySQL tables. The calling crate needs `tokio` with `macros` and
/// `rt-multi-thread`.
#[macro_export]
macro_rules! per_backend {
    ($suite:literal; $($scenario:ident),* $(,)?) => {
        mod sqlite_backend {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $scenario() {
                    if let Some(b) = $crate::sqlite().await {
                        super::$scenario(b).await;
                    }
                }
            )*
        }
        mod encrypted_sqlite_backend {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $scenario() {
                    if let Some(b) = $crate::encrypted_sqlite().await {
                        super::$scenario(b).await;
                    }
                }
            )*
        }
        mod postgres_backend {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $scenario() {
                    if let Some(b) = $crate::postgres($suite).await {
                        super::$scenario(b).await;
                    }
                }
            )*
        }
        mod mysql_backend {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $scenario() {
                    if let Some(b) = $crate::mysql($suite).await {
                        super::$scenario(b).await;
                    }
                }
            )*
        }
        mod redis_backend {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $scenario() {
                    if let Some(b) = $crate::redis($suite).await {
                        super::$scenario(b).await;
                    }
                }
            )*
        }
    };
}
