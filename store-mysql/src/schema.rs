//! The table layout, its migration, and every SQL statement the store runs.
//!
//! Layout of `` `<table>` `` in the URL's database (schema version 1,
//! InnoDB, `utf8mb4`):
//!
//! | column | type | session row | forwarder row |
//! | --- | --- | --- | --- |
//! | `key` | `BINARY(32)` primary key | storage key | old storage key |
//! | `version` | `BIGINT` | stored version | `0` |
//! | `user_id` | `VARCHAR(512)`, binary no-pad collation, null | user id or null | null |
//! | `created_at`, `last_seen_at` | `BIGINT` null | ms since epoch | null |
//! | `auth_time` | `BIGINT` null | ms or null | null |
//! | `idle_deadline`, `absolute_deadline` | `BIGINT` null | ms | null |
//! | `meta`, `data` | `LONGBLOB` null | opaque bytes | null |
//! | `successor` | `BINARY(32)` null | null | successor key |
//! | `sealed_token` | `BLOB` null | null | opaque bytes |
//! | `expires_at` | `BIGINT` | `min(idle, absolute)` | `until` |
//!
//! Deadlines are integer milliseconds, not `DATETIME`/`TIMESTAMP`: no time
//! zone, no fractional-second precision to configure, no 2038 limit, and the
//! same numbers as every other backend.
//!
//! `user_id` compares byte for byte: its collation is `utf8mb4_nopad_bin`
//! (MariaDB) or `utf8mb4_0900_bin` (MySQL 8.0.17+), chosen by
//! [`migrate`](crate::MySqlStore::migrate). Binary, so ids that differ in
//! case, accents or Unicode normalisation are different users; *no-pad*,
//! because the older `utf8mb4_bin` ignores trailing spaces (`'bob' =
//! 'bob '` is true there). Up to 512 characters; a longer id is refused with
//! [`Error::InvalidInput`].
//!
//! Indexes: `user_idx (user_id, created_at)` for deleting and listing a
//! user's sessions (InnoDB appends the primary key, so the index order is
//! exactly `list_user`'s `created_at, key` order and no sort is needed);
//! `expires_idx (expires_at)` for cleanup. A `CHECK` constraint
//! (`<table>_kind_check`, enforced by MariaDB 10.2+ and MySQL 8.0.16+) keeps
//! every row either a complete session or a complete forwarder.
//!
//! `session_store_meta (table_name, version)` in the same database records
//! the schema version of each session table.

use std::sync::Arc;

use session_store_core::{Error, Result};
use sqlx::mysql::MySqlConnection;
use sqlx::{AssertSqlSafe, Row};

use crate::store::map_sqlx;

/// The schema version this library creates and understands.
pub const SCHEMA_VERSION: i64 = 1;

/// Name of the per-database table that records schema versions.
pub const META_TABLE: &str = "session_store_meta";

/// Longest user id the `user_id` column holds, in characters.
pub const MAX_USER_ID_CHARS: usize = 512;

/// Name of the user index (index names are per table in MySQL).
pub const USER_INDEX: &str = "user_idx";

/// Name of the expiry index.
pub const EXPIRES_INDEX: &str = "expires_idx";

/// How many keys one cleanup `DELETE` names (`key IN (?, ..., ?)`); a
/// shorter batch repeats its last key, so the statement text, and with it
/// the prepared statement, is always the same.
pub(crate) const CLEANUP_CHUNK: usize = 64;

/// The collations that compare `user_id` byte for byte without ignoring
/// trailing spaces, in order of preference.
const EXACT_COLLATIONS: [&str; 2] = ["utf8mb4_nopad_bin", "utf8mb4_0900_bin"];

/// Columns of a full entry, in the order [`Statements::load`] returns them.
pub(crate) const ENTRY_COLUMNS: &str = "version, user_id, created_at, last_seen_at, auth_time, \
     idle_deadline, absolute_deadline, meta, data, successor, sealed_token, expires_at";

/// The record columns written by create, in bind order.
const RECORD_COLUMNS: &str = "`key`, version, user_id, created_at, last_seen_at, auth_time, \
     idle_deadline, absolute_deadline, meta, data, expires_at";

/// Every statement of the store, rendered once for the configured table so
/// that each call reuses the same SQL text (and sqlx's per-connection
/// prepared statement).
#[derive(Debug)]
pub(crate) struct Statements {
    /// A plain `INSERT`: a duplicate key is error 1062 (`AlreadyExists`).
    pub create: Arc<str>,
    pub load: Arc<str>,
    pub save: Arc<str>,
    pub touch: Arc<str>,
    /// Rotation, step 1: lock the old session if it matches.
    pub rotate_lock: Arc<str>,
    /// Rotation, step 3 with a grace window: the old row becomes a forwarder.
    pub rotate_forward: Arc<str>,
    pub delete: Arc<str>,
    pub delete_user_live: Arc<str>,
    pub delete_user_rest: Arc<str>,
    pub list_user: Arc<str>,
    pub delete_all: Arc<str>,
    pub cleanup_select: Arc<str>,
    pub cleanup_delete: Arc<str>,
}

/// A scan page (see `SessionBackend::scan`): the key and the entry columns
/// in key order (the primary key), after the key bound first when `after`,
/// then at most the bound number of rows.
pub(crate) fn scan_statement(table: &str, after: bool) -> Arc<str> {
    let t = quoted(table);
    let from = if after { "WHERE `key` > ? " } else { "" };
    Arc::from(format!(
        "SELECT `key`, {ENTRY_COLUMNS} FROM {t} {from}ORDER BY `key` LIMIT ?"
    ))
}

/// `` `name` ``; names were validated against `^[a-z_][a-z0-9_]{0,52}$`, so
/// quoting cannot be escaped.
pub(crate) fn quoted(name: &str) -> String {
    format!("`{name}`")
}

impl Statements {
    pub(crate) fn new(table: &str) -> Self {
        let t = quoted(table);
        let s: fn(String) -> Arc<str> = Arc::from;
        let placeholders = vec!["?"; CLEANUP_CHUNK].join(", ");
        Statements {
            // Neither `INSERT IGNORE` (it also turns a value that does not
            // fit into a warning and a truncated row) nor `ON DUPLICATE KEY
            // UPDATE` (its affected-row count for "already there" is 1 under
            // CLIENT_FOUND_ROWS, like an insert): a plain insert, whose
            // duplicate-key error is the answer.
            create: s(format!(
                "INSERT INTO {t} ({RECORD_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
            )),
            load: s(format!(
                "SELECT {ENTRY_COLUMNS} FROM {t} WHERE `key` = ? AND expires_at > ?"
            )),
            // Compare-and-swap on the version of a live session row. The
            // version always changes, so a matched row is a changed row and
            // the affected-row count is 1 even when every other value is
            // rewritten unchanged (and sqlx sets CLIENT_FOUND_ROWS anyway).
            // `version = version + 1` comes first: MySQL evaluates
            // single-table SET assignments left to right, and nothing later
            // reads `version`.
            save: s(format!(
                "UPDATE {t} SET version = version + 1, user_id = ?, created_at = ?, \
                 last_seen_at = ?, auth_time = ?, idle_deadline = ?, absolute_deadline = ?, \
                 meta = ?, data = ?, expires_at = ? \
                 WHERE `key` = ? AND version = ? AND successor IS NULL AND expires_at > ?"
            )),
            // The new idle deadline is spelled out again for expires_at. The
            // expression is idempotent, so it is right both where later SET
            // assignments see earlier ones (MySQL, MariaDB by default) and
            // where they see the old row (MariaDB's SIMULTANEOUS_ASSIGNMENT).
            // A touch that changes nothing still reports its row: sqlx's
            // MySQL driver connects with CLIENT_FOUND_ROWS, so the affected
            // count is the matched count.
            touch: s(format!(
                "UPDATE {t} SET \
                 idle_deadline = GREATEST(idle_deadline, LEAST(?, absolute_deadline)), \
                 last_seen_at = GREATEST(last_seen_at, ?), \
                 expires_at = LEAST(GREATEST(idle_deadline, LEAST(?, absolute_deadline)), \
                 absolute_deadline) \
                 WHERE `key` = ? AND successor IS NULL AND expires_at > ?"
            )),
            rotate_lock: s(format!(
                "SELECT 1 FROM {t} \
                 WHERE `key` = ? AND version = ? AND successor IS NULL AND expires_at > ? \
                 FOR UPDATE"
            )),
            rotate_forward: s(format!(
                "UPDATE {t} SET version = 0, user_id = NULL, created_at = NULL, \
                 last_seen_at = NULL, auth_time = NULL, idle_deadline = NULL, \
                 absolute_deadline = NULL, meta = NULL, data = NULL, \
                 successor = ?, sealed_token = ?, expires_at = ? \
                 WHERE `key` = ?"
            )),
            delete: s(format!("DELETE FROM {t} WHERE `key` = ?")),
            // `NOT (key <=> ?)`: null-safe, so no exception (NULL) excludes
            // nothing. `expires_at + 0`: never an index condition, so both
            // deletes stay on the user index; with many expired sessions
            // awaiting cleanup, a range on the expiry index would scan (and
            // briefly lock) other users' rows.
            delete_user_live: s(format!(
                "DELETE FROM {t} WHERE user_id = ? AND successor IS NULL \
                 AND NOT (`key` <=> ?) AND expires_at + 0 > ?"
            )),
            delete_user_rest: s(format!(
                "DELETE FROM {t} WHERE user_id = ? AND successor IS NULL \
                 AND NOT (`key` <=> ?)"
            )),
            // The user index yields `created_at, key` order by itself.
            list_user: s(format!(
                "SELECT `key`, version, created_at, last_seen_at, auth_time, idle_deadline, \
                 absolute_deadline, meta FROM {t} \
                 WHERE user_id = ? AND successor IS NULL AND expires_at + 0 > ? \
                 ORDER BY created_at, `key`"
            )),
            delete_all: s(format!("DELETE FROM {t}")),
            // SKIP LOCKED: concurrent cleaners take disjoint batches and
            // never wait on each other or on a session being rotated.
            cleanup_select: s(format!(
                "SELECT `key` FROM {t} WHERE expires_at <= ? \
                 ORDER BY expires_at LIMIT ? FOR UPDATE SKIP LOCKED"
            )),
            cleanup_delete: s(format!(
                "DELETE FROM {t} WHERE expires_at <= ? AND `key` IN ({placeholders})"
            )),
        }
    }
}

fn ddl(table: &str, collation: &str) -> Vec<String> {
    let t = quoted(table);
    let check = quoted(&format!("{table}_kind_check"));
    vec![
        format!(
            "CREATE TABLE IF NOT EXISTS {META_TABLE} ( \
               table_name VARCHAR(64) CHARACTER SET ascii COLLATE ascii_bin NOT NULL, \
               version BIGINT NOT NULL, \
               PRIMARY KEY (table_name) \
             ) ENGINE=InnoDB"
        ),
        format!(
            "CREATE TABLE IF NOT EXISTS {t} ( \
               `key` BINARY(32) NOT NULL, \
               version BIGINT NOT NULL, \
               user_id VARCHAR({MAX_USER_ID_CHARS}) CHARACTER SET utf8mb4 COLLATE {collation} NULL, \
               created_at BIGINT NULL, \
               last_seen_at BIGINT NULL, \
               auth_time BIGINT NULL, \
               idle_deadline BIGINT NULL, \
               absolute_deadline BIGINT NULL, \
               meta LONGBLOB NULL, \
               data LONGBLOB NULL, \
               successor BINARY(32) NULL, \
               sealed_token BLOB NULL, \
               expires_at BIGINT NOT NULL, \
               PRIMARY KEY (`key`), \
               KEY {USER_INDEX} (user_id, created_at), \
               KEY {EXPIRES_INDEX} (expires_at), \
               CONSTRAINT {check} CHECK ( \
                 (successor IS NULL AND created_at IS NOT NULL AND last_seen_at IS NOT NULL \
                   AND idle_deadline IS NOT NULL AND absolute_deadline IS NOT NULL \
                   AND meta IS NOT NULL AND data IS NOT NULL AND sealed_token IS NULL) \
                 OR (successor IS NOT NULL AND sealed_token IS NOT NULL AND user_id IS NULL) \
               ) \
             ) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE={collation} ROW_FORMAT=DYNAMIC"
        ),
    ]
}

/// The name of the `GET_LOCK` lock that serialises migrations of one
/// database (at most 64 characters, as MySQL requires).
fn migration_lock(database: &str) -> String {
    // FNV-1a: database names may be up to 64 characters themselves.
    let hash = database.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    });
    format!("session_store_migrate:{hash:016x}")
}

/// Creates or upgrades the schema; see [`MySqlStore::migrate`](crate::MySqlStore::migrate).
///
/// DDL is not transactional in MySQL (each statement commits), so instead of
/// a transaction the whole migration runs under a named lock (`GET_LOCK`),
/// held by this connection: a second process waits for the first, then
/// finds the version recorded and does nothing. The lock is released at
/// the end, or by the server when the connection dies.
pub(crate) async fn migrate(
    conn: &mut MySqlConnection,
    table: &str,
    lock_wait_seconds: u64,
) -> Result<()> {
    let database: Option<String> = sqlx::query_scalar("SELECT DATABASE()")
        .fetch_one(&mut *conn)
        .await
        .map_err(map_sqlx)?;
    let database = database.ok_or_else(|| {
        Error::backend_permanent(UnsupportedServer("the connection has no current database"))
    })?;
    let lock = migration_lock(&database);
    let got: Option<i64> = sqlx::query_scalar("SELECT GET_LOCK(?, ?)")
        .bind(&lock)
        .bind(lock_wait_seconds)
        .fetch_one(&mut *conn)
        .await
        .map_err(map_sqlx)?;
    if got != Some(1) {
        return Err(Error::backend_retryable(MigrationLockBusy));
    }
    let result = migrate_locked(conn, table).await;
    let released = sqlx::query("SELECT RELEASE_LOCK(?)")
        .bind(&lock)
        .execute(&mut *conn)
        .await
        .map_err(map_sqlx);
    result.and(released.map(drop))
}

async fn migrate_locked(conn: &mut MySqlConnection, table: &str) -> Result<()> {
    match stored_version(conn, table).await? {
        // Checked before any DDL: a newer schema is left exactly as it is.
        Some(found) if found > SCHEMA_VERSION => {
            return Err(Error::SchemaTooNew {
                found,
                supported: SCHEMA_VERSION,
            })
        }
        Some(found) if found == SCHEMA_VERSION => return Ok(()),
        _ => {}
    }
    let collation = exact_collation(conn).await?;
    for statement in ddl(table, &collation) {
        sqlx::query(AssertSqlSafe(statement))
            .execute(&mut *conn)
            .await
            .map_err(map_sqlx)?;
    }
    sqlx::query(AssertSqlSafe(format!(
        "INSERT INTO {META_TABLE} (table_name, version) VALUES (?, ?) \
         ON DUPLICATE KEY UPDATE version = ?"
    )))
    .bind(table)
    .bind(SCHEMA_VERSION)
    .bind(SCHEMA_VERSION)
    .execute(&mut *conn)
    .await
    .map_err(map_sqlx)?;
    Ok(())
}

/// The first of [`EXACT_COLLATIONS`] the server has.
async fn exact_collation(conn: &mut MySqlConnection) -> Result<String> {
    let found: Vec<String> = sqlx::query_scalar(
        "SELECT COLLATION_NAME FROM information_schema.COLLATIONS \
         WHERE COLLATION_NAME IN (?, ?)",
    )
    .bind(EXACT_COLLATIONS[0])
    .bind(EXACT_COLLATIONS[1])
    .fetch_all(&mut *conn)
    .await
    .map_err(map_sqlx)?;
    EXACT_COLLATIONS
        .iter()
        .find(|c| found.iter().any(|f| f == *c))
        .map(|c| (*c).to_owned())
        .ok_or_else(|| {
            Error::backend_permanent(UnsupportedServer(
                "no binary no-pad utf8mb4 collation (needs MariaDB 10.2+ or MySQL 8.0.17+)",
            ))
        })
}

/// The recorded schema version of `table`, if the meta table and its row exist.
pub(crate) async fn stored_version(conn: &mut MySqlConnection, table: &str) -> Result<Option<i64>> {
    let meta_exists: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM information_schema.TABLES \
         WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = ?",
    )
    .bind(META_TABLE)
    .fetch_one(&mut *conn)
    .await
    .map_err(map_sqlx)?;
    if meta_exists == 0 {
        return Ok(None);
    }
    let row = sqlx::query(AssertSqlSafe(format!(
        "SELECT version FROM {META_TABLE} WHERE table_name = ?"
    )))
    .bind(table)
    .fetch_optional(&mut *conn)
    .await
    .map_err(map_sqlx)?;
    row.map(|r| r.try_get::<i64, _>(0).map_err(Error::codec))
        .transpose()
}

/// The server lacks something the store needs.
#[derive(Debug, thiserror::Error)]
#[error("unsupported server: {0}")]
struct UnsupportedServer(&'static str);

/// Another process held the migration lock for longer than the wait.
#[derive(Debug, thiserror::Error)]
#[error("timed out waiting for the migration lock (another process is migrating)")]
struct MigrationLockBusy;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lock_names_fit_and_stay_distinct() {
        let a = migration_lock(&"x".repeat(64));
        let b = migration_lock(&format!("{}y", "x".repeat(63)));
        assert!(a.len() <= 64 && b.len() <= 64);
        assert_ne!(a, b);
    }

    #[test]
    fn cleanup_delete_names_one_chunk_of_keys() {
        let sql = Statements::new("sessions");
        assert_eq!(sql.cleanup_delete.matches('?').count(), CLEANUP_CHUNK + 1);
    }
}
