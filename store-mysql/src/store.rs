//! [`MySqlStore`]: the [`SessionBackend`] implementation.

use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use session_store_core::{
    async_trait, Error, Forward, Lookup, Result, Rotation, SessionBackend, SessionRecord,
    SessionSummary, StorageKey, Timestamp,
};
use sqlx::mysql::{MySqlArguments, MySqlConnection, MySqlDatabaseError, MySqlPool, MySqlRow};
use sqlx::{AssertSqlSafe, Column, Connection, MySql, Row, Transaction, TypeInfo};

use crate::config::MySqlConfig;
use crate::schema::{self, Statements, CLEANUP_CHUNK};
use session_store_sqlx_pool::{Connections, Lease};

/// The backend's name in every [`Error::Backend`] of this crate.
pub(crate) const BACKEND: &str = "mysql";

/// How many times an operation chosen as a deadlock victim is run again.
const DEADLOCK_RETRIES: u32 = 3;

/// What one attempt of an operation yields: the operation's own answer
/// (`Ok(Err(Conflict))` is an answer), or the driver's error, which decides
/// whether the connection is reused and whether the attempt is repeated.
type Attempt<T> = std::result::Result<Result<T>, sqlx::Error>;

/// Runs one attempt of an operation (one statement or one transaction) on
/// a warm connection, runs it again while InnoDB picks it as a deadlock
/// victim (see the crate docs), bounds the whole by the operation timeout
/// and names the operation in any backend error:
/// `on_conn!(store, "operation", conn => attempt future using conn)`.
macro_rules! on_conn {
    ($store:expr, $operation:literal, $conn:ident => $attempt:expr) => {
        async {
            $store
                .bounded(async {
                    let mut retries = 0;
                    loop {
                        let mut lease = $store.conns.get().await.map_err(map_sqlx)?;
                        let result = {
                            let $conn = lease.conn();
                            $attempt.await
                        };
                        lease.finish(&result);
                        match result {
                            Ok(answer) => break answer,
                            Err(e) if is_deadlock(&e) && retries < DEADLOCK_RETRIES => {
                                retries += 1;
                                tokio::time::sleep(deadlock_backoff(retries)).await;
                            }
                            Err(e) => break Err(map_sqlx(e)),
                        }
                    }
                })
                .await
                .map_err(|e| $store.context(e, $operation))
        }
    };
}

/// A session store on MySQL or MariaDB.
///
/// Single-row operations are one statement each (create, load, save,
/// touch, delete; list_user and delete_all too); rotation, delete_user and
/// cleanup are short transactions. See the crate docs for the isolation
/// level and the locks each takes.
///
/// Expiry is judged against the caller's `now` via the `expires_at` column,
/// never the server's clock. Call [`MySqlStore::migrate`] once at startup.
///
/// Cheap to clone: clones share the pool, the warm connections and the
/// statements.
#[derive(Clone)]
pub struct MySqlStore {
    conns: Arc<Connections<MySql>>,
    sql: Arc<Statements>,
    table: Arc<str>,
    operation_timeout: Duration,
    /// The URL without its password, for errors and `Debug`.
    endpoint: Arc<str>,
}

impl fmt::Debug for MySqlStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MySqlStore")
            .field("endpoint", &self.endpoint)
            .field("table", &self.table)
            .field("pool_size", &self.conns.pool().size())
            .finish_non_exhaustive()
    }
}

impl MySqlStore {
    /// The store for `config` on `pool` (built by [`MySqlConfig::build`]).
    pub(crate) fn new(pool: MySqlPool, config: &MySqlConfig) -> Self {
        MySqlStore {
            sql: Arc::new(Statements::new(config.table())),
            table: config.table().into(),
            operation_timeout: config.operation_timeout(),
            endpoint: config.endpoint().into(),
            conns: Arc::new(Connections::new(
                pool,
                config.idle_timeout(),
                config.max_lifetime(),
            )),
        }
    }

    /// Creates the session table, its indexes and the `session_store_meta`
    /// table if missing, and records [`SCHEMA_VERSION`](crate::SCHEMA_VERSION).
    /// Idempotent and safe to run from several processes at once: the
    /// migration holds a named lock (`GET_LOCK`) per database, so a second
    /// process waits, then finds the version recorded and changes nothing.
    ///
    /// Bounded by the operation deadline like every operation (and, on the
    /// server, by the statement or lock wait timeout): a future migration
    /// that rewrites a large table needs a store configured with a longer
    /// deadline for the call.
    ///
    /// # Errors
    /// [`Error::SchemaTooNew`] if the database records a newer schema version
    /// for this table (nothing is modified); [`Error::Backend`] (operation
    /// `"migrate"`) on database failures (missing privileges, a server
    /// without a binary no-pad `utf8mb4` collation, the lock not obtained
    /// within the operation timeout).
    pub async fn migrate(&self) -> Result<()> {
        let lock_wait = self.operation_timeout.as_secs().max(1);
        self.bounded(async {
            let mut lease = self.conns.get().await.map_err(map_sqlx)?;
            let result = schema::migrate(lease.conn(), &self.table, lock_wait).await;
            keep_unless_backend_failed(lease, &result);
            result
        })
        .await
        .map_err(|e| self.context(e, "migrate"))
    }

    /// The schema version recorded for this table, `None` before the first
    /// [`MySqlStore::migrate`].
    ///
    /// # Errors
    /// [`Error::Backend`] on database failures.
    pub async fn schema_version(&self) -> Result<Option<i64>> {
        self.bounded(async {
            let mut lease = self.conns.get().await.map_err(map_sqlx)?;
            let result = schema::stored_version(lease.conn(), &self.table).await;
            keep_unless_backend_failed(lease, &result);
            result
        })
        .await
        .map_err(|e| self.context(e, "schema_version"))
    }

    /// Test support for the conformance suite's corruption checks: writes
    /// under `key` a value this store never writes, so that reading the row is
    /// [`Error::Codec`]: a negative version (with `foreign` the most negative
    /// one: MySQL's typed columns refuse foreign bytes). Returns whether an entry changed.
    ///
    /// # Errors
    /// [`Error::Backend`] on storage failures.
    #[doc(hidden)]
    pub async fn damage_raw(&self, key: &StorageKey, foreign: bool) -> Result<bool> {
        // The typed columns (and the user id's character set) refuse
        // foreign bytes, so the foreign case is an out-of-range version too.
        let set = if foreign {
            "version = -9223372036854775808"
        } else {
            "version = -1"
        };
        let sql = format!(
            "UPDATE {} SET {set} WHERE `key` = ?",
            schema::quoted(&self.table)
        );
        let changed = on_conn!(self, "damage_raw", conn => async {
            Ok(Ok(sqlx::query(AssertSqlSafe(sql.clone()))
                .bind(key.as_bytes().as_slice())
                .execute(conn)
                .await?
                .rows_affected()))
        })
        .await?;
        Ok(changed > 0)
    }

    /// Every column of every row of the session table as raw bytes (binary
    /// and text columns as stored, `BIGINT` as 8 big-endian bytes, NULL as
    /// nothing): what a dump of the table would show, for at-rest checks.
    /// Loads the whole table: for tests and audits, not for production
    /// traffic.
    ///
    /// # Errors
    /// [`Error::Backend`] on database failures; [`Error::Codec`] for a column
    /// of another type.
    pub async fn dump_raw(&self) -> Result<Vec<Vec<u8>>> {
        let sql = format!("SELECT * FROM {}", schema::quoted(&self.table));
        let rows = on_conn!(self, "dump_raw", conn => async {
            Ok(Ok(sqlx::query(AssertSqlSafe(sql.clone())).fetch_all(conn).await?))
        })
        .await?;
        let mut out = Vec::new();
        for row in &rows {
            for column in row.columns() {
                let i = column.ordinal();
                let bytes = match column.type_info().name() {
                    "BIGINT" => row
                        .try_get::<Option<i64>, _>(i)
                        .map(|v| v.map(|v| v.to_be_bytes().to_vec())),
                    "BINARY" | "VARBINARY" | "BLOB" | "TINYBLOB" | "MEDIUMBLOB" | "LONGBLOB"
                    | "VARCHAR" | "CHAR" | "TEXT" => row.try_get::<Option<Vec<u8>>, _>(i),
                    _ => return Err(Error::codec(CorruptRow("column of unexpected type"))),
                }
                .map_err(Error::codec)?;
                out.extend(bytes);
            }
        }
        Ok(out)
    }

    /// The underlying sqlx pool (for its statistics). The store keeps the
    /// connections it uses checked out and warm (see the crate docs), so they
    /// count against `max_connections`; run your own queries on a pool of
    /// your own rather than on this one.
    pub fn pool(&self) -> &MySqlPool {
        self.conns.pool()
    }

    /// The session table's name.
    pub fn table(&self) -> &str {
        &self.table
    }

    /// The URL this store connects to, without its password.
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// Closes every connection and waits for them to finish. Operations
    /// after this fail with a retryable [`Error::Backend`].
    pub async fn close(&self) {
        self.conns.close();
        self.conns.pool().close().await;
    }

    /// Runs `op` within the operation timeout.
    async fn bounded<T>(&self, op: impl Future<Output = Result<T>>) -> Result<T> {
        match tokio::time::timeout(self.operation_timeout, op).await {
            Ok(result) => result,
            Err(_) => Err(timed_out(self.operation_timeout)),
        }
    }

    /// Names this backend, `operation` and the endpoint in a backend error.
    fn context(&self, e: Error, operation: &'static str) -> Error {
        e.context(BACKEND, operation, Some(&self.endpoint))
    }
}

/// Reuses the connection of a multi-statement call unless the backend failed
/// (then the connection's state is unknown and it is closed).
fn keep_unless_backend_failed<T>(lease: Lease<'_, MySql>, result: &Result<T>) {
    if !matches!(result, Err(Error::Backend { .. })) {
        lease.keep();
    }
}

/// The retryable error of an operation (or a connect) that outlived its
/// operation deadline `limit`: an I/O error of kind `TimedOut`, as on every
/// backend.
pub(crate) fn timed_out(limit: Duration) -> Error {
    Error::backend_retryable(std::io::Error::new(
        std::io::ErrorKind::TimedOut,
        format!("MySQL operation timed out after {limit:?}"),
    ))
}

/// A value read from the table is not what this library writes.
#[derive(Debug, thiserror::Error)]
#[error("corrupt session row: {0}")]
struct CorruptRow(&'static str);

/// The server's error number, for errors the server reported.
fn server_error_number(e: &sqlx::Error) -> Option<u16> {
    match e {
        sqlx::Error::Database(db) => db
            .try_downcast_ref::<MySqlDatabaseError>()
            .map(MySqlDatabaseError::number),
        _ => None,
    }
}

/// `ER_LOCK_DEADLOCK` (1213): InnoDB rolled back the whole transaction of
/// the victim, so nothing of the attempt was applied and running the
/// operation again is safe, whatever the operation.
fn is_deadlock(e: &sqlx::Error) -> bool {
    server_error_number(e) == Some(1213)
}

/// A few milliseconds, growing with each retry, so that the transaction
/// that won has time to commit.
fn deadlock_backoff(retry: u32) -> Duration {
    // Spread from the clock's sub-millisecond digits: two victims of one
    // deadlock rarely wake together.
    let jitter = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::from(d.subsec_micros() % 1000));
    Duration::from_micros(u64::from(retry) * 2_000 + jitter)
}

/// Maps a sqlx error into the workspace error, keeping it as the source.
///
/// Retryable: pool timeout or closure, I/O, TLS, protocol desynchronisation,
/// and server errors that mean "try again": SQLSTATE class `08` (connection
/// exceptions), `40001` (serialisation failure), and by number 1040 (too many
/// connections), 1053 (server shutdown), 1205 (lock wait timeout), 1213
/// (deadlock, once the retries are spent), 1317 (query interrupted), 1615
/// (statement needs to be re-prepared), 1927 (MariaDB: connection killed),
/// 1969 (MariaDB: `max_statement_time` exceeded), 3024 (MySQL:
/// `max_execution_time` exceeded). Everything else is permanent.
pub(crate) fn map_sqlx(e: sqlx::Error) -> Error {
    let retryable = match &e {
        sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::Protocol(_)
        | sqlx::Error::WorkerCrashed => true,
        sqlx::Error::Database(db) => {
            let number = server_error_number(&e);
            db.code()
                .is_some_and(|code| code.starts_with("08") || code == "40001")
                || number.is_some_and(|n| {
                    matches!(
                        n,
                        1040 | 1053 | 1205 | 1213 | 1317 | 1615 | 1927 | 1969 | 3024
                    )
                })
        }
        _ => false,
    };
    if retryable {
        Error::backend_retryable(e)
    } else {
        Error::backend_permanent(e)
    }
}

/// The answer a write gets from a server error that concerns the caller's
/// input: a duplicate key (1062) is [`Error::AlreadyExists`]; a value longer
/// than its column (1406, strict mode) is [`Error::InvalidInput`]. Other
/// errors stay driver errors.
fn write_answer<T>(result: std::result::Result<T, sqlx::Error>) -> Attempt<T> {
    match result {
        Ok(v) => Ok(Ok(v)),
        Err(e) => match server_error_number(&e) {
            Some(1062) => Ok(Err(Error::AlreadyExists)),
            Some(1406) => Ok(Err(Error::InvalidInput(
                "a value is longer than its column allows (user ids: 512 characters)",
            ))),
            _ => Err(e),
        },
    }
}

/// A record at version `u64::MAX` cannot be saved or rotated (its successor
/// version does not exist): refused before any I/O.
fn check_version(version: u64) -> Result<()> {
    if version == u64::MAX {
        return Err(Error::InvalidInput("session version overflow"));
    }
    Ok(())
}

/// A `u64` version as stored (`BIGINT`). `None` when it cannot be stored,
/// which also means no stored row can carry it.
fn db_version(v: u64) -> Option<i64> {
    i64::try_from(v).ok()
}

fn read_version(v: i64) -> Result<u64> {
    u64::try_from(v).map_err(|_| Error::codec(CorruptRow("negative version")))
}

fn get<'r, T>(row: &'r MySqlRow, column: &str) -> Result<T>
where
    T: sqlx::Decode<'r, MySql> + sqlx::Type<MySql>,
{
    row.try_get(column).map_err(Error::codec)
}

fn required<T>(value: Option<T>, what: &'static str) -> Result<T> {
    value.ok_or_else(|| Error::codec(CorruptRow(what)))
}

fn user_from_bytes(bytes: Option<Vec<u8>>) -> Result<Option<String>> {
    bytes
        .map(|b| String::from_utf8(b).map_err(Error::codec))
        .transpose()
}

fn decode_entry(row: &MySqlRow) -> Result<Lookup> {
    let expires_at: i64 = get(row, "expires_at")?;
    if let Some(successor) = get::<Option<Vec<u8>>>(row, "successor")? {
        return Ok(Lookup::Forwarded(Forward {
            successor: StorageKey::try_from_slice(&successor)?,
            sealed_token: required(get(row, "sealed_token")?, "forwarder without sealed token")?,
            until: Timestamp::from_millis(expires_at),
        }));
    }
    let ts = |column: &'static str| -> Result<Timestamp> {
        Ok(Timestamp::from_millis(required(get(row, column)?, column)?))
    };
    Ok(Lookup::Session(SessionRecord {
        version: read_version(get(row, "version")?)?,
        user_id: user_from_bytes(get(row, "user_id")?)?,
        created_at: ts("created_at")?,
        last_seen_at: ts("last_seen_at")?,
        auth_time: get::<Option<i64>>(row, "auth_time")?.map(Timestamp::from_millis),
        idle_deadline: ts("idle_deadline")?,
        absolute_deadline: ts("absolute_deadline")?,
        meta: required(get(row, "meta")?, "session without meta")?,
        data: required(get(row, "data")?, "session without data")?,
    }))
}

fn decode_summary(row: &MySqlRow, user_id: &str) -> Result<SessionSummary> {
    let key: Vec<u8> = get(row, "key")?;
    let ts = |column: &str| get::<i64>(row, column).map(Timestamp::from_millis);
    Ok(SessionSummary {
        key: StorageKey::try_from_slice(&key)?,
        user_id: user_id.to_owned(),
        version: read_version(get(row, "version")?)?,
        created_at: ts("created_at")?,
        last_seen_at: ts("last_seen_at")?,
        auth_time: get::<Option<i64>>(row, "auth_time")?.map(Timestamp::from_millis),
        idle_deadline: ts("idle_deadline")?,
        absolute_deadline: ts("absolute_deadline")?,
        meta: get(row, "meta")?,
        damage: None,
    })
}

type Query<'q> = sqlx::query::Query<'q, MySql, MySqlArguments>;

/// Binds the record columns shared by create, save and rotate, in the order
/// user_id, created_at, last_seen_at, auth_time, idle_deadline,
/// absolute_deadline, meta, data, expires_at.
fn bind_record<'q>(q: Query<'q>, r: &'q SessionRecord) -> Query<'q> {
    q.bind(r.user_id.as_deref())
        .bind(r.created_at.as_millis())
        .bind(r.last_seen_at.as_millis())
        .bind(r.auth_time.map(Timestamp::as_millis))
        .bind(r.idle_deadline.as_millis())
        .bind(r.absolute_deadline.as_millis())
        .bind(r.meta.as_slice())
        .bind(r.data.as_slice())
        .bind(r.expires_at().as_millis())
}

fn query(sql: &Arc<str>) -> Query<'static> {
    sqlx::query(AssertSqlSafe(sql.clone()))
}

/// Commits a transaction whose steps answered `Ok`, rolls back otherwise.
/// After a driver error the rollback's own driver error (a broken
/// connection) wins, so the connection is not reused.
async fn settle<T>(tx: Transaction<'_, MySql>, steps: Attempt<T>) -> Attempt<T> {
    match steps {
        Ok(Ok(v)) => {
            tx.commit().await?;
            Ok(Ok(v))
        }
        Ok(Err(answer)) => {
            tx.rollback().await?;
            Ok(Err(answer))
        }
        Err(e) => match tx.rollback().await {
            Err(rollback) if !matches!(rollback, sqlx::Error::Database(_)) => Err(rollback),
            _ => Err(e),
        },
    }
}

/// Rotation, one attempt: one transaction.
async fn rotate_attempt(
    sql: &Statements,
    conn: &mut MySqlConnection,
    rotation: &Rotation,
    version: i64,
    now: Timestamp,
) -> Attempt<u64> {
    let mut tx = conn.begin().await?;
    let steps = rotate_steps(sql, &mut tx, rotation, version, now).await;
    settle(tx, steps).await
}

async fn rotate_steps(
    sql: &Statements,
    conn: &mut MySqlConnection,
    rotation: &Rotation,
    version: i64,
    now: Timestamp,
) -> Attempt<u64> {
    // 1. Lock the old session if it is live with the expected version. A
    //    concurrent rotation of the same key waits here, then re-reads the
    //    row (a locking read sees the latest committed version), finds it
    //    gone or a forwarder, and answers Conflict.
    let locked = query(&sql.rotate_lock)
        .bind(rotation.from.as_bytes().as_slice())
        .bind(version)
        .bind(now.as_millis())
        .fetch_optional(&mut *conn)
        .await?;
    if locked.is_none() {
        return Ok(Err(Error::Conflict));
    }
    let Some(new_version) = version.checked_add(1) else {
        return Ok(Err(Error::InvalidInput("session version overflow")));
    };
    // 2. Insert the successor; a taken key is AlreadyExists (nothing changed).
    let insert = query(&sql.create)
        .bind(rotation.to.as_bytes().as_slice())
        .bind(new_version);
    if let Err(answer) = write_answer(
        bind_record(insert, &rotation.record)
            .execute(&mut *conn)
            .await,
    )? {
        return Ok(Err(answer));
    }
    // 3. Delete the old row or turn it into a forwarder.
    let step = match &rotation.grace {
        Some(grace) => query(&sql.rotate_forward)
            .bind(rotation.to.as_bytes().as_slice())
            .bind(grace.sealed_token.as_slice())
            .bind(grace.until.as_millis())
            .bind(rotation.from.as_bytes().as_slice()),
        None => query(&sql.delete).bind(rotation.from.as_bytes().as_slice()),
    };
    if let Err(answer) = write_answer(step.execute(&mut *conn).await)? {
        return Ok(Err(answer));
    }
    Ok(read_version(new_version))
}

/// delete_user, one attempt: one transaction of two deletes.
async fn delete_user_attempt(
    sql: &Statements,
    conn: &mut MySqlConnection,
    user_id: &str,
    except: Option<&[u8]>,
    now: Timestamp,
) -> Attempt<u64> {
    let mut tx = conn.begin().await?;
    let steps = async {
        // Live sessions first: their count is the answer. The next-key
        // locks of this statement keep new sessions of the user out of the
        // range until the commit, so the second statement removes only
        // expired ones.
        let live = query(&sql.delete_user_live)
            .bind(user_id)
            .bind(except)
            .bind(now.as_millis())
            .execute(&mut *tx)
            .await?
            .rows_affected();
        query(&sql.delete_user_rest)
            .bind(user_id)
            .bind(except)
            .execute(&mut *tx)
            .await?;
        Ok(Ok(live))
    }
    .await;
    settle(tx, steps).await
}

/// cleanup_expired, one attempt: lock a batch with SKIP LOCKED, delete it.
async fn cleanup_attempt(
    sql: &Statements,
    conn: &mut MySqlConnection,
    now: Timestamp,
    limit: i64,
) -> Attempt<u64> {
    let mut tx = conn.begin().await?;
    let steps = async {
        let keys: Vec<Vec<u8>> = sqlx::query_scalar(AssertSqlSafe(sql.cleanup_select.clone()))
            .bind(now.as_millis())
            .bind(limit)
            .fetch_all(&mut *tx)
            .await?;
        let mut removed = 0;
        for chunk in keys.chunks(CLEANUP_CHUNK) {
            let mut q = query(&sql.cleanup_delete).bind(now.as_millis());
            // A short chunk repeats its last key: one statement text.
            for i in 0..CLEANUP_CHUNK {
                q = q.bind(chunk[i.min(chunk.len() - 1)].as_slice());
            }
            removed += q.execute(&mut *tx).await?.rows_affected();
        }
        Ok(Ok(removed))
    };
    let steps = steps.await;
    settle(tx, steps).await
}

#[async_trait]
impl SessionBackend for MySqlStore {
    async fn create(&self, key: &StorageKey, record: &SessionRecord) -> Result<()> {
        check_version(record.version)?;
        let version = db_version(record.version).ok_or(Error::InvalidInput(
            "session version exceeds what MySQL stores (i64::MAX)",
        ))?;
        on_conn!(self, "create", conn => async {
            let q = query(&self.sql.create)
                .bind(key.as_bytes().as_slice())
                .bind(version);
            write_answer(bind_record(q, record).execute(conn).await.map(drop))
        })
        .await
    }

    async fn load(&self, key: &StorageKey, now: Timestamp) -> Result<Option<Lookup>> {
        let row = on_conn!(self, "load", conn => async {
            Ok(Ok(query(&self.sql.load)
                .bind(key.as_bytes().as_slice())
                .bind(now.as_millis())
                .fetch_optional(conn)
                .await?))
        })
        .await?;
        row.as_ref()
            .map(decode_entry)
            .transpose()
            .map_err(|e| self.context(e, "load"))
    }

    async fn save(&self, key: &StorageKey, record: &SessionRecord, now: Timestamp) -> Result<u64> {
        check_version(record.version)?;
        // A version no row can hold cannot match: same as a stale version.
        let version = db_version(record.version).ok_or(Error::Conflict)?;
        let matched = on_conn!(self, "save", conn => async {
            let q = bind_record(query(&self.sql.save), record)
                .bind(key.as_bytes().as_slice())
                .bind(version)
                .bind(now.as_millis());
            write_answer(q.execute(conn).await.map(|done| done.rows_affected()))
        })
        .await?;
        if matched == 0 {
            return Err(Error::Conflict);
        }
        Ok(record.version + 1)
    }

    async fn touch(
        &self,
        key: &StorageKey,
        idle_deadline: Timestamp,
        last_seen_at: Timestamp,
        now: Timestamp,
    ) -> Result<bool> {
        let matched = on_conn!(self, "touch", conn => async {
            Ok(Ok(query(&self.sql.touch)
                .bind(idle_deadline.as_millis())
                .bind(last_seen_at.as_millis())
                .bind(idle_deadline.as_millis())
                .bind(key.as_bytes().as_slice())
                .bind(now.as_millis())
                .execute(conn)
                .await?
                .rows_affected()))
        })
        .await?;
        Ok(matched > 0)
    }

    async fn rotate(&self, rotation: &Rotation, now: Timestamp) -> Result<u64> {
        check_version(rotation.record.version)?;
        let version = db_version(rotation.record.version).ok_or(Error::Conflict)?;
        on_conn!(self, "rotate", conn => rotate_attempt(&self.sql, conn, rotation, version, now))
            .await
    }

    async fn delete(&self, key: &StorageKey) -> Result<bool> {
        let removed = on_conn!(self, "delete", conn => async {
            Ok(Ok(query(&self.sql.delete)
                .bind(key.as_bytes().as_slice())
                .execute(conn)
                .await?
                .rows_affected()))
        })
        .await?;
        Ok(removed > 0)
    }

    async fn delete_user(
        &self,
        user_id: &str,
        except: Option<&StorageKey>,
        now: Timestamp,
    ) -> Result<u64> {
        let except = except.map(|k| k.as_bytes().as_slice());
        on_conn!(self, "delete_user", conn =>
            delete_user_attempt(&self.sql, conn, user_id, except, now))
        .await
    }

    async fn list_user(&self, user_id: &str, now: Timestamp) -> Result<Vec<SessionSummary>> {
        let rows = on_conn!(self, "list_user", conn => async {
            Ok(Ok(query(&self.sql.list_user)
                .bind(user_id)
                .bind(now.as_millis())
                .fetch_all(conn)
                .await?))
        })
        .await?;
        // A row whose columns do not decode is reported as damaged, not
        // fatal for the listing; one whose key does not is left out.
        Ok(rows
            .iter()
            .filter_map(|r| {
                decode_summary(r, user_id).ok().or_else(|| {
                    let key: Vec<u8> = get(r, "key").ok()?;
                    Some(SessionSummary::damaged(
                        StorageKey::try_from_slice(&key).ok()?,
                        user_id.to_owned(),
                        session_store_core::Damage::Undecodable,
                    ))
                })
            })
            .collect())
    }

    async fn delete_all(&self) -> Result<()> {
        on_conn!(self, "delete_all", conn => async {
            query(&self.sql.delete_all).execute(conn).await?;
            Ok(Ok(()))
        })
        .await
    }

    async fn cleanup_expired(&self, now: Timestamp, limit: usize) -> Result<u64> {
        if limit == 0 {
            return Ok(0);
        }
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        on_conn!(self, "cleanup_expired", conn => cleanup_attempt(&self.sql, conn, now, limit))
            .await
    }

    async fn scan(
        &self,
        cursor: Option<&session_store_core::ScanCursor>,
        limit: usize,
    ) -> Result<session_store_core::ScanPage> {
        use session_store_core::scan;
        scan::check_limit(limit)?;
        let after = scan::key_cursor(cursor)?;
        let sql = schema::scan_statement(&self.table, after.is_some());
        let rows = i64::try_from(limit).unwrap_or(i64::MAX);
        let found = on_conn!(self, "scan", conn => async {
            let mut q = query(&sql);
            if let Some(k) = &after {
                q = q.bind(k.as_bytes().to_vec());
            }
            Ok(Ok(q.bind(rows).fetch_all(conn).await?))
        })
        .await?;
        let entries = found
            .iter()
            .map(|row| {
                let key: Vec<u8> = get(row, "key")?;
                Ok(session_store_core::ScanEntry {
                    key: StorageKey::try_from_slice(&key)?,
                    entry: decode_entry(row)?,
                })
            })
            .collect::<Result<Vec<_>>>()
            .map_err(|e| self.context(e, "scan"))?;
        Ok(scan::key_page(entries, limit))
    }
}

#[cfg(test)]
mod tests {
    use sqlx::Connection;

    use super::*;

    /// The test server's configuration, or `None` (after a SKIP line naming
    /// `test`) when the user opted out with `SESSION_STORE_SKIP_MYSQL=1`.
    fn server(test: &str) -> Option<MySqlConfig> {
        if std::env::var("SESSION_STORE_SKIP_MYSQL").as_deref() == Ok("1") {
            println!("SKIP: {test} (SESSION_STORE_SKIP_MYSQL=1)");
            return None;
        }
        Some(MySqlConfig::from_env().expect("SESSION_STORE_MYSQL_URL (.cargo/config.toml sets it)"))
    }

    async fn raw(config: &MySqlConfig) -> MySqlConnection {
        MySqlConnection::connect(config.url())
            .await
            .unwrap_or_else(|e| {
                panic!(
                    "MySQL unreachable at {} ({e}): run store-mysql/scripts/mysql-service.sh \
                     or set SESSION_STORE_SKIP_MYSQL=1",
                    config.endpoint()
                )
            })
    }

    fn retryable(e: &Error) -> Option<bool> {
        match e {
            Error::Backend { retryable, .. } => Some(*retryable),
            _ => None,
        }
    }

    #[test]
    fn client_side_errors_map_by_kind() {
        let io = std::io::Error::new(std::io::ErrorKind::ConnectionReset, "reset");
        assert_eq!(retryable(&map_sqlx(sqlx::Error::Io(io))), Some(true));
        assert_eq!(retryable(&map_sqlx(sqlx::Error::PoolTimedOut)), Some(true));
        assert_eq!(retryable(&map_sqlx(sqlx::Error::PoolClosed)), Some(true));
        assert_eq!(retryable(&map_sqlx(sqlx::Error::RowNotFound)), Some(false));
        assert_eq!(
            retryable(&map_sqlx(sqlx::Error::ColumnNotFound("x".into()))),
            Some(false)
        );
    }

    /// Server errors by number and SQLSTATE, raised on a real server with
    /// `SIGNAL`; the write answers for 1062 and 1406.
    #[tokio::test]
    async fn server_errors_map_by_number() {
        let Some(config) = server("server_errors_map_by_number") else {
            return;
        };
        let mut conn = raw(&config).await;
        let mut raise = async |state: &str, number: u16| {
            let sql = format!(
                "SIGNAL SQLSTATE '{state}' SET MYSQL_ERRNO = {number}, MESSAGE_TEXT = 'raised'"
            );
            sqlx::query(AssertSqlSafe(sql))
                .execute(&mut conn)
                .await
                .unwrap_err()
        };
        for (state, number, expected) in [
            ("40001", 1213, true),
            ("HY000", 1205, true),
            ("08S01", 1040, true),
            ("08S01", 1053, true),
            ("70100", 1317, true),
            ("70100", 1927, true),
            ("70100", 1969, true),
            ("HY000", 3024, true),
            ("42000", 1064, false),
            ("42S02", 1146, false),
            ("23000", 1062, false),
            ("22001", 1406, false),
        ] {
            let e = raise(state, number).await;
            assert_eq!(server_error_number(&e), Some(number));
            assert_eq!(is_deadlock(&e), number == 1213, "{number}");
            assert_eq!(retryable(&map_sqlx(e)), Some(expected), "{number}");
        }
        let e = raise("23000", 1062).await;
        assert!(matches!(
            write_answer::<()>(Err(e)),
            Ok(Err(Error::AlreadyExists))
        ));
        let e = raise("22001", 1406).await;
        assert!(matches!(
            write_answer::<()>(Err(e)),
            Ok(Err(Error::InvalidInput(_)))
        ));
        let e = raise("40001", 1213).await;
        assert!(
            write_answer::<()>(Err(e)).is_err(),
            "a deadlock stays a driver error"
        );
    }

    /// The server's own `EXPLAIN` of each user and cleanup statement, with
    /// the store's SQL and real parameters, on a table big enough that a
    /// scan would be an option: delete-by-user and list-by-user stay on the
    /// user index (list without a sort), the cleanup batch on the expiry
    /// index, even with many expired sessions waiting for cleanup.
    #[tokio::test]
    async fn plans_use_the_indexes() {
        let Some(config) = server("plans_use_the_indexes") else {
            return;
        };
        let table = format!("plan_{:016x}", rand_u64());
        let store = config
            .clone()
            .with_table(&table)
            .with_max_connections(2)
            .build()
            .await
            .unwrap_or_else(|e| panic!("{e}: run store-mysql/scripts/mysql-service.sh"));
        store.migrate().await.unwrap();
        let mut conn = raw(&config).await;
        let t = schema::quoted(&table);
        // 400 users with 10 sessions each, live until 9e15; 600 expired
        // sessions of other users waiting for cleanup.
        let mut values = Vec::new();
        for n in 0..4600u32 {
            let (user, expires) = if n < 4000 {
                (format!("user{}", n / 10), 9_000_000_000_000_000_i64)
            } else {
                (format!("gone{}", n % 60), 1_000 + i64::from(n))
            };
            values.push(format!(
                "(UNHEX(SHA2('k{n}', 256)), 1, '{user}', {n}, {n}, {expires}, {expires}, '', \
                 'x', {expires})"
            ));
        }
        for chunk in values.chunks(500) {
            let sql = format!(
                "INSERT INTO {t} (`key`, version, user_id, created_at, last_seen_at, \
                 idle_deadline, absolute_deadline, meta, data, expires_at) VALUES {}",
                chunk.join(", ")
            );
            sqlx::query(AssertSqlSafe(sql))
                .execute(&mut conn)
                .await
                .unwrap();
        }
        sqlx::query(AssertSqlSafe(format!("ANALYZE TABLE {t}")))
            .execute(&mut conn)
            .await
            .unwrap();
        let now = 2_000_000_i64;
        let except: Option<&[u8]> = None;
        let sql = &store.sql;
        let plans = [
            (
                "list_user",
                sqlx::query(AssertSqlSafe(format!("EXPLAIN {}", sql.list_user)))
                    .bind("user7")
                    .bind(now),
                schema::USER_INDEX,
            ),
            (
                "delete_user_live",
                sqlx::query(AssertSqlSafe(format!("EXPLAIN {}", sql.delete_user_live)))
                    .bind("gone7")
                    .bind(except)
                    .bind(now),
                schema::USER_INDEX,
            ),
            (
                "delete_user_rest",
                sqlx::query(AssertSqlSafe(format!("EXPLAIN {}", sql.delete_user_rest)))
                    .bind("gone7")
                    .bind(except),
                schema::USER_INDEX,
            ),
            (
                "cleanup_select",
                sqlx::query(AssertSqlSafe(format!("EXPLAIN {}", sql.cleanup_select)))
                    .bind(now)
                    .bind(1000_i64),
                schema::EXPIRES_INDEX,
            ),
        ];
        for (name, explain, index) in plans {
            let rows = explain.fetch_all(&mut conn).await.unwrap();
            assert_eq!(rows.len(), 1, "{name}: one table, one plan row");
            let text = |column: &str| -> String { row_text(&rows[0], column).unwrap_or_default() };
            let plan = format!(
                "type={} key={} rows={} extra={}",
                text("type"),
                text("key"),
                text("rows"),
                text("Extra")
            );
            assert_eq!(text("key"), index, "{name}: {plan}");
            assert_ne!(text("type"), "ALL", "{name}: {plan}");
            if name == "list_user" {
                assert!(!text("Extra").contains("filesort"), "{name}: {plan}");
            }
            println!("{name}: {plan}");
        }
        // The statements themselves, on that data.
        let listed = store
            .list_user("user7", Timestamp::from_millis(now))
            .await
            .unwrap();
        assert_eq!(listed.len(), 10);
        assert!(listed
            .windows(2)
            .all(|w| w[0].created_at <= w[1].created_at));
        assert_eq!(
            store
                .cleanup_expired(Timestamp::from_millis(now), 1000)
                .await
                .unwrap(),
            600
        );
        for sql in [
            format!("DROP TABLE {t}"),
            format!(
                "DELETE FROM {} WHERE table_name = '{table}'",
                schema::META_TABLE
            ),
        ] {
            sqlx::query(AssertSqlSafe(sql))
                .execute(&mut conn)
                .await
                .unwrap();
        }
    }

    /// A column of an `EXPLAIN` row as text, whatever type the server sent.
    fn row_text(row: &MySqlRow, column: &str) -> Option<String> {
        if let Ok(v) = row.try_get::<Option<String>, _>(column) {
            return v;
        }
        if let Ok(v) = row.try_get::<Option<Vec<u8>>, _>(column) {
            return v.map(|b| String::from_utf8_lossy(&b).into_owned());
        }
        if let Ok(v) = row.try_get::<Option<i64>, _>(column) {
            return v.map(|n| n.to_string());
        }
        row.try_get::<Option<u64>, _>(column)
            .ok()
            .flatten()
            .map(|n| n.to_string())
    }

    fn rand_u64() -> u64 {
        use std::hash::{BuildHasher, RandomState};
        RandomState::new().hash_one(std::time::SystemTime::now())
    }
}
