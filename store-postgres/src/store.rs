//! [`PostgresStore`]: the [`SessionBackend`] implementation.

use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use session_store_core::scan::{self, ScanCursor, ScanEntry, ScanPage};
use session_store_core::{
    async_trait, Error, Forward, Lookup, Result, Rotation, SessionBackend, SessionRecord,
    SessionSummary, StorageKey, Timestamp,
};
use sqlx::postgres::{PgPool, PgRow};
use sqlx::{AssertSqlSafe, Column, Row, TypeInfo};

use crate::config::PostgresConfig;
use crate::schema::{self, Statements};
use session_store_sqlx_pool::{Connections, Lease};
use sqlx::Postgres;

/// Runs one statement on a warm connection within the operation timeout and
/// names the operation in any backend error:
/// `on_conn!(store, "operation", error_mapper, conn => future using conn)`.
macro_rules! on_conn {
    ($store:expr, $operation:literal, $map:expr, $conn:ident => $statement:expr) => {
        async {
            $store
                .bounded(async {
                    let mut lease = $store.conns.get().await.map_err(map_sqlx)?;
                    let result = {
                        let $conn = lease.conn();
                        $statement.await
                    };
                    lease.finish(&result);
                    result.map_err($map)
                })
                .await
                .map_err(|e| $store.context(e, $operation))
        }
    };
}

/// The backend's name in every [`Error::Backend`] of this crate.
pub(crate) const BACKEND: &str = "postgres";

/// A session store on PostgreSQL.
///
/// Every operation is a single SQL statement run as a prepared statement on
/// one pooled connection (one round trip), so each is atomic on its own:
/// create is an `INSERT ... ON CONFLICT DO NOTHING`, save a compare-and-swap
/// `UPDATE ... WHERE version = $v`, rotation one statement with data-modifying
/// CTEs, cleanup a `DELETE` over a `FOR UPDATE SKIP LOCKED` batch.
///
/// Expiry is judged against the caller's `now` via the `expires_at` column,
/// never the server's clock. Built by [`PostgresConfig::build`]; call
/// [`PostgresStore::migrate`] once at startup.
///
/// Cheap to clone: clones share the pool, the warm connections and the
/// statements.
#[derive(Clone)]
pub struct PostgresStore {
    conns: Arc<Connections<Postgres>>,
    sql: Arc<Statements>,
    schema: Arc<str>,
    table: Arc<str>,
    unlogged: bool,
    operation_timeout: Duration,
    /// The URL without its password, for errors and `Debug`.
    endpoint: Arc<str>,
}

impl fmt::Debug for PostgresStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PostgresStore")
            .field("endpoint", &self.endpoint)
            .field("schema", &self.schema)
            .field("table", &self.table)
            .field("unlogged", &self.unlogged)
            .field("pool_size", &self.conns.pool().size())
            .finish_non_exhaustive()
    }
}

impl PostgresStore {
    /// The store for `config` on `pool` (built by [`PostgresConfig::build`]).
    pub(crate) fn new(pool: PgPool, config: &PostgresConfig) -> Self {
        PostgresStore {
            sql: Arc::new(Statements::new(config.schema(), config.table())),
            schema: config.schema().into(),
            table: config.table().into(),
            unlogged: config.unlogged(),
            operation_timeout: config.operation_timeout(),
            endpoint: config.endpoint().into(),
            conns: Arc::new(Connections::new(
                pool,
                config.idle_timeout(),
                config.max_lifetime(),
            )),
        }
    }

    /// Creates the schema, the session table, its indexes and the
    /// `session_store_meta` table if missing, and records
    /// [`SCHEMA_VERSION`](crate::SCHEMA_VERSION). Idempotent and safe to run
    /// from several processes at once (one transaction under an advisory
    /// lock per schema).
    ///
    /// Bounded by the operation deadline like every operation (and, on the
    /// server, by the statement or lock wait timeout): a future migration
    /// that rewrites a large table needs a store configured with a longer
    /// deadline for the call.
    ///
    /// # Errors
    /// [`Error::SchemaTooNew`] if the database records a newer schema version
    /// for this table (nothing is modified); [`Error::Backend`] on database
    /// failures (for example missing privileges).
    pub async fn migrate(&self) -> Result<()> {
        self.bounded(async {
            let mut lease = self.conns.get().await.map_err(map_sqlx)?;
            let result =
                schema::migrate(lease.conn(), &self.schema, &self.table, self.unlogged).await;
            keep_unless_backend_failed(lease, &result);
            result
        })
        .await
        .map_err(|e| self.context(e, "migrate"))
    }

    /// The schema version recorded for this table, `None` before the first
    /// [`PostgresStore::migrate`].
    ///
    /// # Errors
    /// [`Error::Backend`] on database failures.
    pub async fn schema_version(&self) -> Result<Option<i64>> {
        self.bounded(async {
            let mut lease = self.conns.get().await.map_err(map_sqlx)?;
            let result = schema::stored_version(lease.conn(), &self.schema, &self.table).await;
            keep_unless_backend_failed(lease, &result);
            result
        })
        .await
        .map_err(|e| self.context(e, "schema_version"))
    }

    /// Test support for the conformance suite's corruption checks: writes
    /// into the row under `key` a value this store never writes, so that
    /// reading the row is [`Error::Codec`]: a negative version, or with
    /// `foreign` a user id that is not UTF-8. Returns whether a row changed.
    ///
    /// # Errors
    /// [`Error::Backend`] on database failures.
    #[doc(hidden)]
    pub async fn damage_raw(&self, key: &StorageKey, foreign: bool) -> Result<bool> {
        let set = if foreign {
            "user_id = '\\xfffe'::bytea"
        } else {
            "version = -1"
        };
        let sql = format!("UPDATE {} SET {set} WHERE key = $1", self.qualified_table());
        let q = sqlx::query(AssertSqlSafe(sql)).bind(key.as_bytes().as_slice());
        let done = on_conn!(self, "damage_raw", map_sqlx, conn => q.execute(conn)).await?;
        Ok(done.rows_affected() > 0)
    }

    /// Every column of every row of the session table as raw bytes (`bytea`
    /// as stored, `bigint` as 8 big-endian bytes, NULL as nothing): what a
    /// dump of the table would show, for at-rest checks. Loads the whole
    /// table: for tests and audits, not for production traffic.
    ///
    /// # Errors
    /// [`Error::Backend`] on database failures; [`Error::Codec`] for a column
    /// of another type.
    pub async fn dump_raw(&self) -> Result<Vec<Vec<u8>>> {
        let sql = format!("SELECT * FROM {}", self.qualified_table());
        let rows =
            on_conn!(self, "dump_raw", map_sqlx, conn => sqlx::query(AssertSqlSafe(sql)).fetch_all(conn))
                .await?;
        let mut out = Vec::new();
        for row in &rows {
            for column in row.columns() {
                let i = column.ordinal();
                let bytes = match column.type_info().name() {
                    "BYTEA" => row.try_get::<Option<Vec<u8>>, _>(i),
                    "INT8" => row
                        .try_get::<Option<i64>, _>(i)
                        .map(|v| v.map(|v| v.to_be_bytes().to_vec())),
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
    pub fn pool(&self) -> &PgPool {
        self.conns.pool()
    }

    /// The schema name.
    pub fn schema(&self) -> &str {
        &self.schema
    }

    /// The table name.
    pub fn table(&self) -> &str {
        &self.table
    }

    /// The server's URL with its password replaced by `***`: the endpoint
    /// every [`Error::Backend`] of this store names.
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// `"schema"."table"`, quoted, for your own queries (reporting, dumps).
    pub fn qualified_table(&self) -> String {
        schema::qualified(&self.schema, &self.table)
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

/// The retryable error of an operation (or a connect) that outlived its
/// operation deadline `limit`: an I/O error of kind `TimedOut`, as on every
/// backend.
pub(crate) fn timed_out(limit: Duration) -> Error {
    Error::backend_retryable(std::io::Error::new(
        std::io::ErrorKind::TimedOut,
        format!("PostgreSQL operation timed out after {limit:?}"),
    ))
}

/// Reuses the connection of a multi-statement call unless the backend failed
/// (then the connection's state is unknown and it is closed).
fn keep_unless_backend_failed<T>(lease: Lease<'_, Postgres>, result: &Result<T>) {
    if !matches!(result, Err(Error::Backend { .. })) {
        lease.keep();
    }
}

/// A value read from the table is not what this library writes.
#[derive(Debug, thiserror::Error)]
#[error("corrupt session row: {0}")]
struct CorruptRow(&'static str);

/// Maps a sqlx error into the workspace error, keeping it as the source.
///
/// Retryable: pool timeout or closure, I/O, TLS, protocol desynchronisation,
/// and server errors that mean "try again" (connection exceptions `08xxx`,
/// serialization failures and deadlocks `40001`/`40P01`, too many connections
/// `53300`, shutdown or crash `57P01`-`57P03`, `statement_timeout` `57014`,
/// lock timeouts `55P03`). Everything else is permanent. Callers that expect
/// a unique violation check for it before calling this.
pub(crate) fn map_sqlx(e: sqlx::Error) -> Error {
    let retryable = match &e {
        sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::Protocol(_)
        | sqlx::Error::WorkerCrashed => true,
        sqlx::Error::Database(db) => db.code().is_some_and(|code| {
            code.starts_with("08")
                || matches!(
                    code.as_ref(),
                    "40001" | "40P01" | "53300" | "57P01" | "57P02" | "57P03" | "57014" | "55P03"
                )
        }),
        _ => false,
    };
    if retryable {
        Error::backend_retryable(e)
    } else {
        Error::backend_permanent(e)
    }
}

/// Like [`map_sqlx`], but a unique violation (which `ON CONFLICT DO NOTHING`
/// normally absorbs) means the key is taken.
fn map_insert(e: sqlx::Error) -> Error {
    match &e {
        sqlx::Error::Database(db) if db.is_unique_violation() => Error::AlreadyExists,
        _ => map_sqlx(e),
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

/// A `u64` version as stored (`bigint`). `None` when it cannot be stored,
/// which also means no stored row can carry it.
fn db_version(v: u64) -> Option<i64> {
    i64::try_from(v).ok()
}

fn read_version(v: i64) -> Result<u64> {
    u64::try_from(v).map_err(|_| Error::codec(CorruptRow("negative version")))
}

fn get<'r, T>(row: &'r PgRow, column: &str) -> Result<T>
where
    T: sqlx::Decode<'r, sqlx::Postgres> + sqlx::Type<sqlx::Postgres>,
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

fn decode_entry(row: &PgRow) -> Result<Lookup> {
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

/// A listed row as a summary; a row whose columns do not decode is reported
/// as damaged (not fatal for the listing), one whose key does not is left out.
fn summary_or_damage(row: &PgRow, user_id: &str) -> Option<SessionSummary> {
    decode_summary(row, user_id).ok().or_else(|| {
        let key: Vec<u8> = get(row, "key").ok()?;
        let key = StorageKey::try_from_slice(&key).ok()?;
        Some(SessionSummary::damaged(
            key,
            user_id.to_owned(),
            session_store_core::Damage::Undecodable,
        ))
    })
}

fn decode_summary(row: &PgRow, user_id: &str) -> Result<SessionSummary> {
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

/// Binds the record columns shared by create, save and rotate, in the order
/// user_id, created_at, last_seen_at, auth_time, idle_deadline,
/// absolute_deadline, meta, data, expires_at.
fn bind_record<'q>(
    q: sqlx::query::Query<'q, sqlx::Postgres, sqlx::postgres::PgArguments>,
    r: &'q SessionRecord,
) -> sqlx::query::Query<'q, sqlx::Postgres, sqlx::postgres::PgArguments> {
    q.bind(r.user_id.as_deref().map(str::as_bytes))
        .bind(r.created_at.as_millis())
        .bind(r.last_seen_at.as_millis())
        .bind(r.auth_time.map(Timestamp::as_millis))
        .bind(r.idle_deadline.as_millis())
        .bind(r.absolute_deadline.as_millis())
        .bind(r.meta.as_slice())
        .bind(r.data.as_slice())
        .bind(r.expires_at().as_millis())
}

#[async_trait]
impl SessionBackend for PostgresStore {
    async fn create(&self, key: &StorageKey, record: &SessionRecord) -> Result<()> {
        check_version(record.version)?;
        let version = db_version(record.version).ok_or(Error::InvalidInput(
            "session version exceeds what PostgreSQL stores (i64::MAX)",
        ))?;
        let q = sqlx::query(AssertSqlSafe(self.sql.create.clone()))
            .bind(key.as_bytes().as_slice())
            .bind(version);
        let done =
            on_conn!(self, "create", map_insert, conn => bind_record(q, record).execute(conn))
                .await?;
        if done.rows_affected() == 0 {
            return Err(Error::AlreadyExists);
        }
        Ok(())
    }

    async fn load(&self, key: &StorageKey, now: Timestamp) -> Result<Option<Lookup>> {
        let q = sqlx::query(AssertSqlSafe(self.sql.load.clone()))
            .bind(key.as_bytes().as_slice())
            .bind(now.as_millis());
        let row = on_conn!(self, "load", map_sqlx, conn => q.fetch_optional(conn)).await?;
        row.as_ref().map(decode_entry).transpose()
    }

    async fn save(&self, key: &StorageKey, record: &SessionRecord, now: Timestamp) -> Result<u64> {
        check_version(record.version)?;
        // A version no row can hold cannot match: same as a stale version.
        let version = db_version(record.version).ok_or(Error::Conflict)?;
        let q = sqlx::query(AssertSqlSafe(self.sql.save.clone()))
            .bind(key.as_bytes().as_slice())
            .bind(version);
        let q = bind_record(q, record).bind(now.as_millis());
        match on_conn!(self, "save", map_sqlx, conn => q.fetch_optional(conn)).await? {
            Some(row) => read_version(get(&row, "version")?),
            None => Err(Error::Conflict),
        }
    }

    async fn touch(
        &self,
        key: &StorageKey,
        idle_deadline: Timestamp,
        last_seen_at: Timestamp,
        now: Timestamp,
    ) -> Result<bool> {
        let q = sqlx::query(AssertSqlSafe(self.sql.touch.clone()))
            .bind(key.as_bytes().as_slice())
            .bind(idle_deadline.as_millis())
            .bind(last_seen_at.as_millis())
            .bind(now.as_millis());
        let done = on_conn!(self, "touch", map_sqlx, conn => q.execute(conn)).await?;
        Ok(done.rows_affected() > 0)
    }

    async fn rotate(&self, rotation: &Rotation, now: Timestamp) -> Result<u64> {
        check_version(rotation.record.version)?;
        let version = db_version(rotation.record.version).ok_or(Error::Conflict)?;
        let grace = rotation.grace.as_ref();
        let q = sqlx::query(AssertSqlSafe(self.sql.rotate.clone()))
            .bind(rotation.from.as_bytes().as_slice())
            .bind(rotation.to.as_bytes().as_slice())
            .bind(version);
        let q = bind_record(q, &rotation.record)
            .bind(now.as_millis())
            .bind(grace.is_some())
            .bind(grace.map(|g| g.sealed_token.as_slice()))
            .bind(grace.map(|g| g.until.as_millis()));
        let row = on_conn!(self, "rotate", map_insert, conn => q.fetch_one(conn)).await?;
        if !get::<bool>(&row, "matched")? {
            return Err(Error::Conflict);
        }
        match get::<Option<i64>>(&row, "new_version")? {
            Some(v) => read_version(v),
            None => Err(Error::AlreadyExists),
        }
    }

    async fn delete(&self, key: &StorageKey) -> Result<bool> {
        let q = sqlx::query(AssertSqlSafe(self.sql.delete.clone())).bind(key.as_bytes().as_slice());
        let done = on_conn!(self, "delete", map_sqlx, conn => q.execute(conn)).await?;
        Ok(done.rows_affected() > 0)
    }

    async fn delete_user(
        &self,
        user_id: &str,
        except: Option<&StorageKey>,
        now: Timestamp,
    ) -> Result<u64> {
        let q = sqlx::query_scalar(AssertSqlSafe(self.sql.delete_user.clone()))
            .bind(user_id.as_bytes())
            .bind(except.map(|k| k.as_bytes().as_slice()))
            .bind(now.as_millis());
        let live: i64 = on_conn!(self, "delete_user", map_sqlx, conn => q.fetch_one(conn)).await?;
        u64::try_from(live).map_err(|_| Error::codec(CorruptRow("negative count")))
    }

    async fn list_user(&self, user_id: &str, now: Timestamp) -> Result<Vec<SessionSummary>> {
        let q = sqlx::query(AssertSqlSafe(self.sql.list_user.clone()))
            .bind(user_id.as_bytes())
            .bind(now.as_millis());
        let rows = on_conn!(self, "list_user", map_sqlx, conn => q.fetch_all(conn)).await?;
        Ok(rows
            .iter()
            .filter_map(|r| summary_or_damage(r, user_id))
            .collect())
    }

    async fn delete_all(&self) -> Result<()> {
        let q = sqlx::query(AssertSqlSafe(self.sql.delete_all.clone()));
        on_conn!(self, "delete_all", map_sqlx, conn => q.execute(conn)).await?;
        Ok(())
    }

    async fn cleanup_expired(&self, now: Timestamp, limit: usize) -> Result<u64> {
        if limit == 0 {
            return Ok(0);
        }
        let q = sqlx::query(AssertSqlSafe(self.sql.cleanup.clone()))
            .bind(now.as_millis())
            .bind(i64::try_from(limit).unwrap_or(i64::MAX));
        let done = on_conn!(self, "cleanup_expired", map_sqlx, conn => q.execute(conn)).await?;
        Ok(done.rows_affected())
    }

    async fn scan(&self, cursor: Option<&ScanCursor>, limit: usize) -> Result<ScanPage> {
        scan::check_limit(limit)?;
        let rows = i64::try_from(limit).unwrap_or(i64::MAX);
        let q = match scan::key_cursor(cursor)? {
            None => sqlx::query(AssertSqlSafe(self.sql.scan_first.clone())).bind(rows),
            Some(after) => sqlx::query(AssertSqlSafe(self.sql.scan_after.clone()))
                .bind(after.as_bytes().to_vec())
                .bind(rows),
        };
        let found = on_conn!(self, "scan", map_sqlx, conn => q.fetch_all(conn)).await?;
        let entries = found
            .iter()
            .map(|row| {
                let key: Vec<u8> = get(row, "key")?;
                Ok(ScanEntry {
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

    /// The test server's configuration (`PostgresConfig::from_env`), or
    /// `None` (after a SKIP line naming `test`) when the user opted out with
    /// `SESSION_STORE_SKIP_POSTGRES=1`.
    fn server_config(test: &str) -> Option<PostgresConfig> {
        if std::env::var("SESSION_STORE_SKIP_POSTGRES").as_deref() == Ok("1") {
            println!("SKIP: {test} (SESSION_STORE_SKIP_POSTGRES=1)");
            return None;
        }
        Some(
            PostgresConfig::from_env()
                .expect("SESSION_STORE_POSTGRES_URL (see .cargo/config.toml)"),
        )
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

    /// `list_user` uses the user index whatever the planner's statistics
    /// say. The trap: after a mass delete the expiry index is full of dead
    /// entries, and statistics taken then count only the live rows, so a
    /// plan on `expires_at > $2` scans every session of the table.
    #[tokio::test]
    async fn list_user_stays_on_the_user_index() {
        let Some(config) = server_config("list_user_stays_on_the_user_index") else {
            return;
        };
        let url = config.url().to_owned();
        let schema_name = format!("plan_{:08x}", rand::random::<u32>());
        let store = config
            .with_schema(&schema_name)
            .with_table("sessions")
            .build()
            .await
            .unwrap_or_else(|e| {
                panic!(
                    "PostgreSQL unreachable ({e}): run store-postgres/scripts/postgres-service.sh"
                )
            });
        store.migrate().await.unwrap();
        let mut conn = sqlx::PgConnection::connect(&url).await.unwrap();
        let t = schema::qualified(&schema_name, "sessions");
        let insert = |user: &str, prefix: &str, n: u32| {
            format!(
                "INSERT INTO {t} (key, version, user_id, created_at, last_seen_at, \
                 idle_deadline, absolute_deadline, meta, data, expires_at) \
                 SELECT sha256(('{prefix}' || g)::bytea), 1, '{user}'::bytea, g, g, \
                 9e15, 9e15, ''::bytea, '\\x00'::bytea, 9e15 FROM generate_series(1, {n}) g"
            )
        };
        for sql in [
            insert("a", "a", 30_000),
            format!("DELETE FROM {t}"),
            insert("b", "b", 10),
            format!("ANALYZE {t}"),
            format!("PREPARE list AS {}", store.sql.list_user),
        ] {
            sqlx::query(AssertSqlSafe(sql))
                .execute(&mut conn)
                .await
                .unwrap();
        }
        for mode in ["force_generic_plan", "force_custom_plan"] {
            sqlx::query(AssertSqlSafe(format!("SET plan_cache_mode = {mode}")))
                .execute(&mut conn)
                .await
                .unwrap();
            let plan: Vec<String> = sqlx::query_scalar("EXPLAIN EXECUTE list('\\x62', 0)")
                .fetch_all(&mut conn)
                .await
                .unwrap();
            let plan = plan.join("\n");
            let (user_idx, expires_idx) = (
                schema::index_name("sessions", "user_idx"),
                schema::index_name("sessions", "expires_idx"),
            );
            assert!(plan.contains(&user_idx), "{mode}:\n{plan}");
            assert!(!plan.contains(&expires_idx), "{mode}:\n{plan}");
        }
        let listed = store
            .list_user("b", Timestamp::from_millis(0))
            .await
            .unwrap();
        assert_eq!(listed.len(), 10);
        sqlx::query(AssertSqlSafe(format!(
            "DROP SCHEMA \"{schema_name}\" CASCADE"
        )))
        .execute(&mut conn)
        .await
        .unwrap();
    }

    /// Server errors by SQLSTATE, raised on a real server.
    #[tokio::test]
    async fn server_errors_map_by_sqlstate() {
        let Some(config) = server_config("server_errors_map_by_sqlstate") else {
            return;
        };
        let mut conn = sqlx::PgConnection::connect(config.url())
            .await
            .unwrap_or_else(|e| {
                panic!(
                    "PostgreSQL unreachable ({e}): run store-postgres/scripts/postgres-service.sh"
                )
            });
        for (code, expected) in [
            ("40001", Some(true)),
            ("40P01", Some(true)),
            ("08006", Some(true)),
            ("57014", Some(true)),
            ("53300", Some(true)),
            ("22012", Some(false)),
            ("42501", Some(false)),
            ("23505", Some(false)),
        ] {
            let sql =
                format!("DO $$ BEGIN RAISE EXCEPTION 'raised' USING ERRCODE = '{code}'; END $$");
            let err = sqlx::query(AssertSqlSafe(sql))
                .execute(&mut conn)
                .await
                .unwrap_err();
            assert_eq!(retryable(&map_sqlx(err)), expected, "{code}");
        }
        let err = sqlx::query("DO $$ BEGIN RAISE EXCEPTION 'dup' USING ERRCODE = '23505'; END $$")
            .execute(&mut conn)
            .await
            .unwrap_err();
        assert!(matches!(map_insert(err), Error::AlreadyExists));
        let err = sqlx::query("SELECT 1/0")
            .execute(&mut conn)
            .await
            .unwrap_err();
        assert!(matches!(
            map_insert(err),
            Error::Backend {
                retryable: false,
                ..
            }
        ));
    }
}
