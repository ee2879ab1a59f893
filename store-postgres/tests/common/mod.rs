//! Shared helpers: the test server's configuration (`from_env`), a fresh
//! schema per test (dropped afterwards), and the skip switch.
#![allow(dead_code)]

use std::net::{TcpStream, ToSocketAddrs};
use std::str::FromStr;
use std::sync::OnceLock;
use std::time::Duration;

use session_store_core::config::redact_url;
use session_store_postgres::{PostgresConfig, PostgresStore};
use sqlx::postgres::PgConnectOptions;
use sqlx::{AssertSqlSafe, Connection};

/// The test server's configuration, from the `SESSION_STORE_POSTGRES_*`
/// variables (`.cargo/config.toml` sets the URL).
pub fn server_config() -> PostgresConfig {
    PostgresConfig::from_env().unwrap_or_else(|e| {
        panic!("{e}: set it, or SESSION_STORE_SKIP_POSTGRES=1 to skip these tests")
    })
}

/// The test server's URL (for raw connections of the tests).
pub fn url() -> String {
    server_config().url().to_owned()
}

/// Whether the user asked to skip PostgreSQL tests.
pub fn skip_requested() -> bool {
    std::env::var("SESSION_STORE_SKIP_POSTGRES").as_deref() == Ok("1")
}

/// A random schema name no other test uses.
pub fn random_schema() -> String {
    format!("ss_test_{:016x}", rand::random::<u64>())
}

/// Drops its schema (and everything in it) when dropped, from a separate
/// thread with its own runtime and connection, so it works from any context.
#[derive(Debug)]
pub struct SchemaGuard {
    pub url: String,
    pub schema: String,
}

impl Drop for SchemaGuard {
    fn drop(&mut self) {
        let url = self.url.clone();
        let sql = format!("DROP SCHEMA IF EXISTS \"{}\" CASCADE", self.schema);
        let handle = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime for dropping a test schema");
            rt.block_on(async move {
                let mut conn = sqlx::PgConnection::connect(&url).await?;
                sqlx::query(AssertSqlSafe(sql)).execute(&mut conn).await?;
                conn.close().await
            })
        });
        if let Ok(Err(e)) = handle.join() {
            eprintln!("could not drop test schema {}: {e}", self.schema);
        }
    }
}

/// A separate small pool for raw SQL in tests (the store keeps its own
/// connections checked out).
pub async fn raw_pool() -> sqlx::PgPool {
    sqlx::postgres::PgPoolOptions::new()
        .max_connections(2)
        .connect(&url())
        .await
        .unwrap_or_else(|e| unreachable_server(&e.to_string()))
}

/// The configuration of a test store: the test server, a fresh random
/// schema, table `sessions`.
pub fn test_config() -> PostgresConfig {
    server_config()
        .with_schema(random_schema())
        .with_table("sessions")
}

/// Builds a store for `config` without migrating; panics with what to
/// start when the server cannot be reached.
pub async fn connect(config: &PostgresConfig) -> PostgresStore {
    if let Err(e) = probe() {
        unreachable_server(&e);
    }
    match config.clone().build().await {
        Ok(store) => store,
        Err(e) => unreachable_server(&e.to_string()),
    }
}

fn unreachable_server(why: &str) -> ! {
    panic!(
        "PostgreSQL is not reachable at {} ({why}). Start it with \
         store-postgres/scripts/postgres-service.sh, point SESSION_STORE_POSTGRES_URL \
         at a server, or set SESSION_STORE_SKIP_POSTGRES=1 to skip these tests.",
        redact_url(&url())
    )
}

/// One quick TCP probe per test process, so that a missing server fails
/// every test at once instead of after each pool's acquire timeout.
fn probe() -> Result<(), String> {
    static PROBE: OnceLock<Result<(), String>> = OnceLock::new();
    PROBE
        .get_or_init(|| {
            let options = PgConnectOptions::from_str(&url()).map_err(|e| e.to_string())?;
            if options.get_host().starts_with('/') || options.get_socket().is_some() {
                return Ok(()); // Unix socket: let the pool find out.
            }
            let addrs = (options.get_host(), options.get_port())
                .to_socket_addrs()
                .map_err(|e| e.to_string())?;
            let mut last = "no address".to_owned();
            for addr in addrs {
                match TcpStream::connect_timeout(&addr, Duration::from_secs(3)) {
                    Ok(_) => return Ok(()),
                    Err(e) => last = e.to_string(),
                }
            }
            Err(last)
        })
        .clone()
}

/// Connects and migrates a store for `config` (see [`connect`]); the guard
/// drops the schema.
pub async fn connect_migrated(config: &PostgresConfig) -> (PostgresStore, SchemaGuard) {
    let store = connect(config).await;
    let guard = SchemaGuard {
        url: url(),
        schema: config.schema().to_owned(),
    };
    store.migrate().await.expect("migrate a fresh schema");
    (store, guard)
}

/// A fresh migrated store in its own schema with a pool of
/// `max_connections`, or `None` when skipping.
pub async fn fresh_store(max_connections: u32) -> Option<(PostgresStore, SchemaGuard)> {
    if skip_requested() {
        println!("SKIP: SESSION_STORE_SKIP_POSTGRES=1");
        return None;
    }
    Some(connect_migrated(&test_config().with_max_connections(max_connections)).await)
}
