//! Raw baselines: the same client crates, connection setup and payloads as the
//! stores, doing the least possible work (one key, one value).
//!
//! Each baseline is what a backend's operation would cost if it were "just" a
//! primary-key read or write: the ratio of a store's operation to its baseline
//! is the store's overhead (encoding, compare-and-swap, indexes, expiry).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use aes_gcm::aead::{Aead, KeyInit};
use aes_gcm::{Aes256Gcm, Nonce};
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::cluster::ClusterClientBuilder;
use redis::cluster_async::ClusterConnection;
use sqlx::mysql::{MySqlConnection, MySqlPool};
use sqlx::postgres::{PgConnection, PgPool};
use sqlx::{AssertSqlSafe, Connection as _, Row as _};

/// A session-sized time to live for `SET PX` (30 minutes, the default idle timeout).
const TTL_MS: u64 = 30 * 60 * 1000;

/// A Redis connection as the store makes it.
#[derive(Clone)]
enum RedisConn {
    Single(ConnectionManager),
    Cluster(ClusterConnection),
}

/// Redis `GET` / `SET key value PX ttl` on a connection set up like the
/// store's (single server: `ConnectionManager` with the store's default
/// timeouts; cluster: the async cluster client).
#[derive(Clone)]
pub struct RawRedis {
    conn: RedisConn,
    prefix: String,
    keys: Arc<Mutex<std::collections::BTreeSet<u64>>>,
}

impl std::fmt::Debug for RawRedis {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RawRedis")
            .field("prefix", &self.prefix)
            .finish_non_exhaustive()
    }
}

impl RawRedis {
    /// Connects to the single server.
    ///
    /// # Errors
    /// When Redis cannot be reached.
    pub async fn single() -> Result<Self, String> {
        let client = redis::Client::open(crate::fixture::redis_url()).map_err(|e| e.to_string())?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(Duration::from_secs(1)))
            .set_response_timeout(Some(Duration::from_secs(1)))
            .set_number_of_retries(2)
            .set_max_delay(Duration::from_secs(1));
        let conn = ConnectionManager::new_with_config(client, config)
            .await
            .map_err(|e| format!("raw redis: {e}"))?;
        Ok(Self::new(RedisConn::Single(conn)))
    }

    /// Connects to the cluster.
    ///
    /// # Errors
    /// When the cluster cannot be reached.
    pub async fn cluster() -> Result<Self, String> {
        let client = ClusterClientBuilder::new(crate::fixture::cluster_nodes())
            .connection_timeout(Duration::from_secs(1))
            .response_timeout(Duration::from_secs(1))
            .build()
            .map_err(|e| e.to_string())?;
        let conn = client
            .get_async_connection()
            .await
            .map_err(|e| format!("raw redis cluster: {e}"))?;
        Ok(Self::new(RedisConn::Cluster(conn)))
    }

    fn new(conn: RedisConn) -> Self {
        let prefix = format!("bench:{}:raw", crate::random_tag());
        crate::register_namespace("redis", &format!("{prefix}:*"));
        RawRedis {
            conn,
            prefix,
            keys: Arc::default(),
        }
    }

    /// The key name of slot `i` (spread over the cluster's hash slots).
    pub fn key(&self, i: u64) -> String {
        self.keys.lock().expect("lock").insert(i);
        format!("{}:{i}", self.prefix)
    }

    /// `SET key value PX ttl`.
    ///
    /// # Panics
    /// On a Redis error (a broken baseline must fail the run).
    pub async fn set(&self, key: &str, value: &[u8]) {
        let mut cmd = redis::cmd("SET");
        cmd.arg(key).arg(value).arg("PX").arg(TTL_MS);
        let r: redis::RedisResult<()> = match self.conn.clone() {
            RedisConn::Single(mut c) => cmd.query_async(&mut c).await,
            RedisConn::Cluster(mut c) => cmd.query_async(&mut c).await,
        };
        r.expect("raw redis SET");
    }

    /// `GET key`; returns the value's length.
    ///
    /// # Panics
    /// On a Redis error or a missing key.
    pub async fn get(&self, key: &str) -> usize {
        let mut cmd = redis::cmd("GET");
        cmd.arg(key);
        let r: redis::RedisResult<Option<Vec<u8>>> = match self.conn.clone() {
            RedisConn::Single(mut c) => cmd.query_async(&mut c).await,
            RedisConn::Cluster(mut c) => cmd.query_async(&mut c).await,
        };
        r.expect("raw redis GET").expect("raw key present").len()
    }

    /// Deletes every key this baseline wrote.
    pub async fn cleanup(&self) {
        let used: Vec<u64> = self.keys.lock().expect("lock").iter().copied().collect();
        for i in used {
            let mut cmd = redis::cmd("DEL");
            cmd.arg(format!("{}:{i}", self.prefix));
            let _: redis::RedisResult<i64> = match self.conn.clone() {
                RedisConn::Single(mut c) => cmd.query_async(&mut c).await,
                RedisConn::Cluster(mut c) => cmd.query_async(&mut c).await,
            };
        }
    }
}

/// PostgreSQL primary-key `SELECT` and single-statement upsert on a plain
/// `(key bytea primary key, data bytea)` table in the store's schema, through
/// the store's pool or on one dedicated connection.
#[derive(Debug)]
pub struct RawPostgres {
    pool: PgPool,
    own_schema: Option<String>,
    conn: PgConnection,
    select: String,
    upsert: String,
}

impl RawPostgres {
    /// Opens a pool configured like the store's default (10 connections, no
    /// ping before acquire) and one dedicated connection, and creates
    /// `"bench_raw_<tag>".raw_kv`; [`RawPostgres::close`] drops the schema.
    /// The pool is separate from the store's: the store keeps the connections
    /// it uses checked out (its warm stack), so sharing would starve one side.
    ///
    /// # Errors
    /// On database errors.
    pub async fn new() -> Result<Self, String> {
        let pool = sqlx::postgres::PgPoolOptions::new()
            .max_connections(10)
            .test_before_acquire(false)
            .connect(&crate::fixture::postgres_url())
            .await
            .map_err(|e| format!("raw postgres: {e}"))?;
        let schema = format!("bench_raw_{}", crate::random_tag());
        crate::register_namespace("postgres", &schema);
        sqlx::query(AssertSqlSafe(format!("CREATE SCHEMA \"{schema}\"")))
            .execute(&pool)
            .await
            .map_err(|e| e.to_string())?;
        let own_schema = Some(schema.clone());
        let t = format!("\"{schema}\".raw_kv");
        sqlx::query(AssertSqlSafe(format!(
            "CREATE TABLE IF NOT EXISTS {t} (key bytea PRIMARY KEY, data bytea NOT NULL)"
        )))
        .execute(&pool)
        .await
        .map_err(|e| e.to_string())?;
        let conn = PgConnection::connect(&crate::fixture::postgres_url())
            .await
            .map_err(|e| e.to_string())?;
        Ok(RawPostgres {
            pool,
            own_schema,
            conn,
            select: format!("SELECT data FROM {t} WHERE key = $1"),
            upsert: format!(
                "INSERT INTO {t} (key, data) VALUES ($1, $2) \
                 ON CONFLICT (key) DO UPDATE SET data = EXCLUDED.data"
            ),
        })
    }

    /// The baseline's pool.
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// Upsert through the pool.
    ///
    /// # Panics
    /// On database errors.
    pub async fn upsert_pool(pool: &PgPool, sql: &str, key: &[u8], data: &[u8]) {
        sqlx::query(AssertSqlSafe(sql.to_owned()))
            .bind(key)
            .bind(data)
            .execute(pool)
            .await
            .expect("raw upsert");
    }

    /// Primary-key select through the pool; returns the value's length.
    ///
    /// # Panics
    /// On database errors or a missing row.
    pub async fn select_pool(pool: &PgPool, sql: &str, key: &[u8]) -> usize {
        let row = sqlx::query(AssertSqlSafe(sql.to_owned()))
            .bind(key)
            .fetch_one(pool)
            .await
            .expect("raw select");
        row.get::<Vec<u8>, _>(0).len()
    }

    /// The upsert statement text.
    pub fn upsert_sql(&self) -> &str {
        &self.upsert
    }

    /// The select statement text.
    pub fn select_sql(&self) -> &str {
        &self.select
    }

    /// Upsert on the dedicated connection.
    ///
    /// # Panics
    /// On database errors.
    pub async fn upsert_conn(&mut self, key: &[u8], data: &[u8]) {
        sqlx::query(AssertSqlSafe(self.upsert.clone()))
            .bind(key)
            .bind(data)
            .execute(&mut self.conn)
            .await
            .expect("raw upsert (connection)");
    }

    /// Primary-key select on the dedicated connection.
    ///
    /// # Panics
    /// On database errors or a missing row.
    pub async fn select_conn(&mut self, key: &[u8]) -> usize {
        let row = sqlx::query(AssertSqlSafe(self.select.clone()))
            .bind(key)
            .fetch_one(&mut self.conn)
            .await
            .expect("raw select (connection)");
        row.get::<Vec<u8>, _>(0).len()
    }

    /// Closes the dedicated connection (and drops the schema of its own, if any).
    pub async fn close(self) {
        let _ = self.conn.close().await;
        if let Some(schema) = self.own_schema {
            let sql = format!("DROP SCHEMA IF EXISTS \"{schema}\" CASCADE");
            if let Err(e) = sqlx::query(AssertSqlSafe(sql)).execute(&self.pool).await {
                eprintln!("warning: could not drop schema {schema}: {e}");
            }
        }
    }
}

/// Every MySQL baseline upsert writes new bytes: a counter stamped over the
/// payload's first 8 bytes. InnoDB leaves a row whose new values equal the
/// old ones untouched (no redo to flush at commit), so repeating one value
/// would time a commit that writes nothing; every session save changes the
/// row (its version at least).
static MYSQL_STAMP: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

fn mysql_stamped(data: &[u8]) -> Vec<u8> {
    let stamp = MYSQL_STAMP
        .fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        .to_le_bytes();
    let mut value = data.to_vec();
    let n = value.len().min(stamp.len());
    value[..n].copy_from_slice(&stamp[..n]);
    value
}

/// MySQL/MariaDB primary-key `SELECT` and single-statement upsert
/// (`INSERT ... ON DUPLICATE KEY UPDATE`) on a plain
/// `(k BINARY(32) PRIMARY KEY, data LONGBLOB)` InnoDB table of its own in the
/// configured database, through a pool or on one dedicated connection.
#[derive(Debug)]
pub struct RawMySql {
    pool: MySqlPool,
    table: String,
    conn: MySqlConnection,
    select: String,
    upsert: String,
}

impl RawMySql {
    /// Opens a pool configured like the store's default (10 connections, no
    /// ping before acquire) and one dedicated connection, both without TLS
    /// and in `utf8mb4` like the store's, and creates the table
    /// `bench_raw_<tag>`; [`RawMySql::close`] drops it. The pool is separate
    /// from the store's, which keeps the connections it uses checked out.
    ///
    /// # Errors
    /// On database errors.
    pub async fn new() -> Result<Self, String> {
        let options = crate::fixture::mysql_options();
        let pool = sqlx::mysql::MySqlPoolOptions::new()
            .max_connections(10)
            .test_before_acquire(false)
            .connect_with(options.clone())
            .await
            .map_err(|e| format!("raw mysql: {e}"))?;
        let table = format!("bench_raw_{}", crate::random_tag());
        crate::register_namespace("mysql", &table);
        sqlx::query(AssertSqlSafe(format!(
            "CREATE TABLE `{table}` (k BINARY(32) NOT NULL PRIMARY KEY, data LONGBLOB NOT NULL) \
             ENGINE=InnoDB"
        )))
        .execute(&pool)
        .await
        .map_err(|e| e.to_string())?;
        let conn = MySqlConnection::connect_with(&options)
            .await
            .map_err(|e| e.to_string())?;
        Ok(RawMySql {
            pool,
            select: format!("SELECT data FROM `{table}` WHERE k = ?"),
            // `VALUES(col)`: accepted by MariaDB and MySQL 8 (which also has
            // a row alias MariaDB lacks).
            upsert: format!(
                "INSERT INTO `{table}` (k, data) VALUES (?, ?) \
                 ON DUPLICATE KEY UPDATE data = VALUES(data)"
            ),
            table,
            conn,
        })
    }

    /// The baseline's pool.
    pub fn pool(&self) -> &MySqlPool {
        &self.pool
    }

    /// The upsert statement text.
    pub fn upsert_sql(&self) -> &str {
        &self.upsert
    }

    /// The select statement text.
    pub fn select_sql(&self) -> &str {
        &self.select
    }

    /// Upsert through the pool (new bytes each call).
    ///
    /// # Panics
    /// On database errors.
    pub async fn upsert_pool(pool: &MySqlPool, sql: &str, key: &[u8], data: &[u8]) {
        sqlx::query(AssertSqlSafe(sql.to_owned()))
            .bind(key)
            .bind(mysql_stamped(data))
            .execute(pool)
            .await
            .expect("raw mysql upsert");
    }

    /// Primary-key select through the pool; returns the value's length.
    ///
    /// # Panics
    /// On database errors or a missing row.
    pub async fn select_pool(pool: &MySqlPool, sql: &str, key: &[u8]) -> usize {
        let row = sqlx::query(AssertSqlSafe(sql.to_owned()))
            .bind(key)
            .fetch_one(pool)
            .await
            .expect("raw mysql select");
        row.get::<Vec<u8>, _>(0).len()
    }

    /// Upsert on the dedicated connection (new bytes each call).
    ///
    /// # Panics
    /// On database errors.
    pub async fn upsert_conn(&mut self, key: &[u8], data: &[u8]) {
        sqlx::query(AssertSqlSafe(self.upsert.clone()))
            .bind(key)
            .bind(mysql_stamped(data))
            .execute(&mut self.conn)
            .await
            .expect("raw mysql upsert (connection)");
    }

    /// Primary-key select on the dedicated connection.
    ///
    /// # Panics
    /// On database errors or a missing row.
    pub async fn select_conn(&mut self, key: &[u8]) -> usize {
        let row = sqlx::query(AssertSqlSafe(self.select.clone()))
            .bind(key)
            .fetch_one(&mut self.conn)
            .await
            .expect("raw mysql select (connection)");
        row.get::<Vec<u8>, _>(0).len()
    }

    /// Closes the dedicated connection and drops the table.
    pub async fn close(self) {
        let _ = self.conn.close().await;
        let sql = format!("DROP TABLE IF EXISTS `{}`", self.table);
        if let Err(e) = sqlx::query(AssertSqlSafe(sql)).execute(&self.pool).await {
            eprintln!("warning: could not drop table {}: {e}", self.table);
        }
        self.pool.close().await;
    }
}

/// rusqlite primary-key select and upsert on the calling thread, on a WAL
/// database with `synchronous=NORMAL` (the store's defaults), with cached
/// prepared statements. Several connections for concurrent use.
#[derive(Debug)]
pub struct RawSqlite {
    conns: Vec<Mutex<rusqlite::Connection>>,
    /// Version of the row `store_update` compares and bumps.
    version: std::sync::atomic::AtomicI64,
    /// Counter stamped into each upserted value.
    stamp: std::sync::atomic::AtomicU64,
    /// [`sqlite_store_save_sql`] on the baseline's session table.
    store_save: String,
    _dir: tempfile::TempDir,
}

/// The session table of `session-store-sqlite` (`store-sqlite/src/schema.rs`,
/// `create_statements`), for the baseline that runs the store's own save
/// statement on the calling thread.
const STORE_SCHEMA: &str = "CREATE TABLE IF NOT EXISTS raw_sessions (
        key BLOB PRIMARY KEY NOT NULL,
        kind INTEGER NOT NULL CHECK (kind IN (0, 1)),
        version INTEGER NOT NULL,
        user_id TEXT,
        created_at INTEGER,
        last_seen_at INTEGER,
        auth_time INTEGER,
        idle_deadline INTEGER,
        absolute_deadline INTEGER,
        meta BLOB,
        data BLOB,
        successor BLOB,
        sealed_token BLOB,
        expires_at INTEGER NOT NULL
    ) WITHOUT ROWID;
    CREATE INDEX IF NOT EXISTS raw_sessions_user ON raw_sessions (user_id, created_at, key)
        WHERE user_id IS NOT NULL;
    CREATE INDEX IF NOT EXISTS raw_sessions_expires ON raw_sessions (expires_at);";

/// The SQLite store's load statement (`load` in
/// `store-sqlite/src/schema.rs`) on `table`: parameters key, now (ms).
pub fn sqlite_store_load_sql(table: &str) -> String {
    format!(
        "SELECT kind, version, user_id, created_at, last_seen_at, auth_time, idle_deadline, \
         absolute_deadline, meta, data, successor, sealed_token, expires_at \
         FROM \"{table}\" WHERE key = ?1 AND expires_at > ?2"
    )
}

/// The SQLite store's common save, a compare-and-swap (`save_same_owner` in
/// `store-sqlite/src/schema.rs`) on `table`: parameters key, expected
/// version, new version, user id, created at, last seen, auth time, idle
/// deadline, absolute deadline, meta, data, expires at, now (ms).
pub fn sqlite_store_save_sql(table: &str) -> String {
    format!(
        "UPDATE \"{table}\" SET version = ?3, last_seen_at = ?6, auth_time = ?7, \
         idle_deadline = ?8, absolute_deadline = ?9, meta = ?10, data = ?11, expires_at = ?12 \
         WHERE key = ?1 AND kind = 0 AND version = ?2 AND expires_at > ?13 \
         AND user_id IS ?4 AND created_at = ?5"
    )
}

impl RawSqlite {
    /// A fresh database with `connections` connections.
    ///
    /// # Errors
    /// On SQLite errors.
    pub fn new(connections: usize) -> Result<Self, String> {
        let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
        let path = dir.path().join("raw.db");
        let mut conns = Vec::new();
        for i in 0..connections.max(1) {
            let c = rusqlite::Connection::open(&path).map_err(|e| e.to_string())?;
            c.busy_timeout(Duration::from_secs(10))
                .map_err(|e| e.to_string())?;
            c.pragma_update(None, "journal_mode", "WAL")
                .map_err(|e| e.to_string())?;
            c.pragma_update(None, "synchronous", "NORMAL")
                .map_err(|e| e.to_string())?;
            if i == 0 {
                c.execute_batch(
                    "CREATE TABLE IF NOT EXISTS raw_kv (key BLOB PRIMARY KEY NOT NULL, data BLOB NOT NULL)",
                )
                .map_err(|e| e.to_string())?;
                c.execute_batch(STORE_SCHEMA).map_err(|e| e.to_string())?;
            }
            conns.push(Mutex::new(c));
        }
        Ok(RawSqlite {
            conns,
            version: std::sync::atomic::AtomicI64::new(1),
            stamp: std::sync::atomic::AtomicU64::new(0),
            store_save: sqlite_store_save_sql("raw_sessions"),
            _dir: dir,
        })
    }

    /// Inserts (or resets) the session row that [`RawSqlite::store_update`]
    /// rewrites, with the store's column layout (no user, far deadlines).
    ///
    /// # Panics
    /// On SQLite errors.
    pub fn store_row(&self, key: &[u8], data: &[u8]) {
        let c = self.conns[0].lock().expect("lock");
        c.execute(
            "INSERT OR REPLACE INTO raw_sessions (key, kind, version, user_id, created_at, \
             last_seen_at, auth_time, idle_deadline, absolute_deadline, meta, data, expires_at) \
             VALUES (?1, 0, 1, NULL, 1000, 1000, NULL, ?3, ?3, x'', ?2, ?3)",
            rusqlite::params![key, data, i64::MAX / 2],
        )
        .expect("raw sqlite store row");
        self.version.store(1, std::sync::atomic::Ordering::Relaxed);
    }

    /// The store's own compare-and-swap save statement on the row of
    /// [`RawSqlite::store_row`], on the calling thread: what `save` costs
    /// without the hand-off to the store's writer thread.
    ///
    /// # Panics
    /// On SQLite errors or when the compare-and-swap matches no row.
    pub fn store_update(&self, key: &[u8], data: &[u8]) {
        use std::sync::atomic::Ordering::Relaxed;
        let c = self.conns[0].lock().expect("lock");
        let v = self.version.load(Relaxed);
        let far = i64::MAX / 2;
        let changed = c
            .prepare_cached(&self.store_save)
            .and_then(|mut s| {
                s.execute(rusqlite::params![
                    key,
                    v,
                    v + 1,
                    Option::<&str>::None,
                    1000i64,
                    2000i64,
                    Option::<i64>::None,
                    far - v,
                    far,
                    &b""[..],
                    data,
                    far - v,
                    3000i64,
                ])
            })
            .expect("raw sqlite store update");
        assert_eq!(changed, 1, "raw store update matched no row");
        self.version.store(v + 1, Relaxed);
    }

    /// Upsert on connection `i % connections`. Each call writes new bytes
    /// (a counter stamped over the payload's first 8 bytes), as every session
    /// save does (its version changes): SQLite does not dirty a page whose
    /// cell is rewritten with identical content, so repeating the same value
    /// would time a commit that writes nothing (about 7 µs against 15 µs here).
    ///
    /// # Panics
    /// On SQLite errors.
    pub fn upsert(&self, i: usize, key: &[u8], data: &[u8]) {
        use std::sync::atomic::Ordering::Relaxed;
        let c = self.conns[i % self.conns.len()].lock().expect("lock");
        let stamp = self.stamp.fetch_add(1, Relaxed).to_le_bytes();
        let mut value = data.to_vec();
        let n = value.len().min(stamp.len());
        value[..n].copy_from_slice(&stamp[..n]);
        c.prepare_cached(
            "INSERT INTO raw_kv (key, data) VALUES (?1, ?2) \
             ON CONFLICT (key) DO UPDATE SET data = excluded.data",
        )
        .and_then(|mut s| s.execute(rusqlite::params![key, value]))
        .expect("raw sqlite upsert");
    }

    /// Primary-key select on connection `i % connections`; returns the length.
    ///
    /// # Panics
    /// On SQLite errors or a missing row.
    pub fn select(&self, i: usize, key: &[u8]) -> usize {
        let c = self.conns[i % self.conns.len()].lock().expect("lock");
        c.prepare_cached("SELECT data FROM raw_kv WHERE key = ?1")
            .and_then(|mut s| s.query_row([key], |r| r.get::<_, Vec<u8>>(0)))
            .expect("raw sqlite select")
            .len()
    }
}

/// sled `get` / `insert` on one tree of a fresh on-disk database (no flush:
/// sled's own default).
#[derive(Debug)]
pub struct RawSled {
    tree: sled::Tree,
    _db: sled::Db,
    _dir: tempfile::TempDir,
}

impl RawSled {
    /// A fresh database.
    ///
    /// # Errors
    /// On sled errors.
    pub fn new() -> Result<Self, String> {
        let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
        let db = sled::Config::new()
            .path(dir.path().join("db"))
            .open()
            .map_err(|e| e.to_string())?;
        let tree = db.open_tree("raw").map_err(|e| e.to_string())?;
        Ok(RawSled {
            tree,
            _db: db,
            _dir: dir,
        })
    }

    /// `insert`.
    ///
    /// # Panics
    /// On sled errors.
    pub fn insert(&self, key: &[u8], data: &[u8]) {
        self.tree.insert(key, data).expect("raw sled insert");
    }

    /// `get`; returns the length.
    ///
    /// # Panics
    /// On sled errors or a missing key.
    pub fn get(&self, key: &[u8]) -> usize {
        self.tree
            .get(key)
            .expect("raw sled get")
            .expect("raw key present")
            .len()
    }
}

/// AES-256-GCM (aes-gcm 0.11) encrypt then decrypt of one payload, key
/// schedule done once, counter nonces: the cryptographic floor of the
/// encryption wrapper.
pub struct RawAes {
    cipher: Aes256Gcm,
    counter: u64,
}

impl std::fmt::Debug for RawAes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RawAes")
    }
}

impl Default for RawAes {
    fn default() -> Self {
        let key: [u8; 32] = rand::random();
        RawAes {
            cipher: Aes256Gcm::new_from_slice(&key).expect("32-byte key"),
            counter: 0,
        }
    }
}

impl RawAes {
    /// Encrypts `plain` then decrypts it; returns the plaintext length.
    ///
    /// # Panics
    /// Never for valid input (a failure would be a bug in the AEAD).
    pub fn round_trip(&mut self, plain: &[u8]) -> usize {
        self.counter += 1;
        let mut n = [0u8; 12];
        n[4..].copy_from_slice(&self.counter.to_be_bytes());
        let nonce = Nonce::from(n);
        let ct = self.cipher.encrypt(&nonce, plain).expect("encrypt");
        self.cipher
            .decrypt(&nonce, ct.as_slice())
            .expect("decrypt")
            .len()
    }
}
