//! Shared helpers: the test server (through `MySqlConfig::from_env`), a
//! fresh table per test (dropped afterwards), and the skip switch.
#![allow(dead_code)]

use std::net::{TcpStream, ToSocketAddrs};
use std::str::FromStr;
use std::sync::OnceLock;
use std::time::Duration;

use session_store_mysql::{MySqlConfig, MySqlStore, META_TABLE};
use sqlx::mysql::MySqlConnectOptions;
use sqlx::{AssertSqlSafe, Connection};

/// Whether the user asked to skip MySQL tests.
pub fn skip_requested() -> bool {
    std::env::var("SESSION_STORE_SKIP_MYSQL").as_deref() == Ok("1")
}

/// Prints the SKIP line for `test` and returns true when skipping.
pub fn skip(test: &str) -> bool {
    if skip_requested() {
        println!("SKIP: {test} (SESSION_STORE_SKIP_MYSQL=1)");
        return true;
    }
    false
}

/// The configuration from the environment (`.cargo/config.toml` sets
/// `SESSION_STORE_MYSQL_URL`).
pub fn env_config() -> MySqlConfig {
    MySqlConfig::from_env().unwrap_or_else(|e| {
        panic!("{e}: run the tests through cargo (.cargo/config.toml sets it) or export it")
    })
}

/// The server's URL, from the environment.
pub fn url() -> String {
    env_config().url().to_owned()
}

/// A random table name no other test uses.
pub fn random_table() -> String {
    format!("ss_test_{:016x}", rand::random::<u64>())
}

/// Drops its table (and its row in the meta table) when dropped, from a
/// separate thread with its own runtime and connection, so it works from any
/// context.
#[derive(Debug)]
pub struct TableGuard {
    pub url: String,
    pub table: String,
}

impl Drop for TableGuard {
    fn drop(&mut self) {
        let url = self.url.clone();
        let table = self.table.clone();
        let handle = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime for dropping a test table");
            rt.block_on(async move {
                let mut conn = sqlx::MySqlConnection::connect(&url).await?;
                sqlx::query(AssertSqlSafe(format!("DROP TABLE IF EXISTS `{table}`")))
                    .execute(&mut conn)
                    .await?;
                sqlx::query(AssertSqlSafe(format!(
                    "DELETE FROM {META_TABLE} WHERE table_name = ?"
                )))
                .bind(&table)
                .execute(&mut conn)
                .await?;
                conn.close().await
            })
        });
        if let Ok(Err(e)) = handle.join() {
            eprintln!("could not drop test table {}: {e}", self.table);
        }
    }
}

/// One raw connection for SQL in tests (the store keeps its own
/// connections checked out).
pub async fn raw_conn() -> sqlx::MySqlConnection {
    sqlx::MySqlConnection::connect(&url())
        .await
        .unwrap_or_else(|e| unreachable_server(&e.to_string()))
}

/// The configuration of a test store: the server from the environment, a
/// fresh random table, a small pool and generous timeouts.
pub fn test_config(max_connections: u32) -> MySqlConfig {
    env_config()
        .with_table(random_table())
        .with_max_connections(max_connections)
        .with_acquire_timeout(Duration::from_secs(10))
        .with_operation_timeout(Duration::from_secs(30))
        .with_lock_wait_timeout(Some(Duration::from_secs(20)))
}

/// Builds a store for `config` without migrating; panics with what to start
/// when the server cannot be reached.
pub async fn build(config: MySqlConfig) -> MySqlStore {
    if let Err(e) = probe() {
        unreachable_server(&e);
    }
    match config.build().await {
        Ok(store) => store,
        Err(e) => unreachable_server(&e.to_string()),
    }
}

fn unreachable_server(why: &str) -> ! {
    panic!(
        "MySQL/MariaDB is not reachable at {} ({why}). Start it with \
         store-mysql/scripts/mysql-service.sh, point SESSION_STORE_MYSQL_URL at a \
         server, or set SESSION_STORE_SKIP_MYSQL=1 to skip these tests.",
        env_config().endpoint()
    )
}

/// One quick TCP probe per test process, so that a missing server fails
/// every test at once instead of after each pool's acquire timeout.
fn probe() -> Result<(), String> {
    static PROBE: OnceLock<Result<(), String>> = OnceLock::new();
    PROBE
        .get_or_init(|| {
            let options = MySqlConnectOptions::from_str(&url()).map_err(|e| e.to_string())?;
            if options.get_socket().is_some() {
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

/// Builds and migrates a store for `config` (see [`build`]); the guard drops
/// the table.
pub async fn build_migrated(config: MySqlConfig) -> (MySqlStore, TableGuard) {
    let guard = TableGuard {
        url: config.url().to_owned(),
        table: config.table().to_owned(),
    };
    let store = build(config).await;
    store.migrate().await.expect("migrate a fresh table");
    (store, guard)
}

/// A fresh migrated store in its own table, or `None` (after a SKIP line
/// naming `test`) when skipping.
pub async fn fresh_store(test: &str, max_connections: u32) -> Option<(MySqlStore, TableGuard)> {
    if skip(test) {
        return None;
    }
    Some(build_migrated(test_config(max_connections)).await)
}
