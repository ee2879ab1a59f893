//! The table layout, its migration, and every SQL statement the store runs.
//!
//! Layout of `"<schema>"."<table>"` (schema version 1):
//!
//! | column | type | session row | forwarder row |
//! | --- | --- | --- | --- |
//! | `key` | `bytea` primary key | storage key (32 bytes) | old storage key |
//! | `version` | `bigint` | stored version | `0` |
//! | `user_id` | `bytea` null | user id (UTF-8) or null | null |
//! | `created_at`, `last_seen_at` | `bigint` null | ms since epoch | null |
//! | `auth_time` | `bigint` null | ms or null | null |
//! | `idle_deadline`, `absolute_deadline` | `bigint` null | ms | null |
//! | `meta`, `data` | `bytea` null | opaque bytes | null |
//! | `successor` | `bytea` null | null | successor key |
//! | `sealed_token` | `bytea` null | null | opaque bytes |
//! | `expires_at` | `bigint` | `min(idle, absolute)` | `until` |
//!
//! `user_id` is `bytea`, not `text`, because a PostgreSQL `text` cannot hold
//! a NUL character and a backend must store whatever user id it is given.
//! Indexes: `user_id` (partial, sessions with a user) for user lookups and
//! `expires_at` for read-time expiry and cleanup.
//!
//! `"<schema>".session_store_meta (table_name text primary key, version bigint)`
//! records the schema version of each session table in that schema.

use std::sync::Arc;

use session_store_core::{Error, Result};
use sqlx::postgres::PgConnection;
use sqlx::{AssertSqlSafe, Connection, Row};

use crate::store::map_sqlx;

/// The schema version this library creates and understands.
pub const SCHEMA_VERSION: i64 = 1;

/// Name of the per-schema table that records schema versions.
pub const META_TABLE: &str = "session_store_meta";

/// Columns of a full entry, in the order [`Statements::load`] returns them.
pub(crate) const ENTRY_COLUMNS: &str = "version, user_id, created_at, last_seen_at, auth_time, \
     idle_deadline, absolute_deadline, meta, data, successor, sealed_token, expires_at";

/// Every statement of the store, rendered once for the configured names so
/// that each call reuses the same SQL text (and sqlx's per-connection
/// prepared statement).
#[derive(Debug)]
pub(crate) struct Statements {
    pub create: Arc<str>,
    pub load: Arc<str>,
    pub save: Arc<str>,
    pub touch: Arc<str>,
    pub rotate: Arc<str>,
    pub delete: Arc<str>,
    pub delete_user: Arc<str>,
    pub list_user: Arc<str>,
    pub delete_all: Arc<str>,
    pub cleanup: Arc<str>,
    /// A scan page from the start: the entry columns and the key, in key
    /// order (the primary-key index), `$1` rows.
    pub scan_first: Arc<str>,
    /// A scan page after the key `$1`, `$2` rows.
    pub scan_after: Arc<str>,
}

/// `"schema"."name"`; both were validated against `^[a-z_][a-z0-9_]{0,62}$`,
/// so quoting cannot be escaped.
pub(crate) fn qualified(schema: &str, name: &str) -> String {
    format!("\"{schema}\".\"{name}\"")
}

impl Statements {
    pub(crate) fn new(schema: &str, table: &str) -> Self {
        let t = qualified(schema, table);
        let s: fn(String) -> Arc<str> = Arc::from;
        Statements {
            // Never an overwrite: an existing entry of any kind makes this a no-op.
            create: s(format!(
                "INSERT INTO {t} (key, version, user_id, created_at, last_seen_at, auth_time, \
                 idle_deadline, absolute_deadline, meta, data, expires_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) \
                 ON CONFLICT (key) DO NOTHING"
            )),
            load: s(format!(
                "SELECT {ENTRY_COLUMNS} FROM {t} WHERE key = $1 AND expires_at > $2"
            )),
            // Compare-and-swap on the version of a live session row.
            save: s(format!(
                "UPDATE {t} SET version = version + 1, user_id = $3, created_at = $4, \
                 last_seen_at = $5, auth_time = $6, idle_deadline = $7, absolute_deadline = $8, \
                 meta = $9, data = $10, expires_at = $11 \
                 WHERE key = $1 AND version = $2 AND successor IS NULL AND expires_at > $12 \
                 RETURNING version"
            )),
            // SET expressions see the old row, so the new idle deadline is
            // spelled out again for expires_at. The activity class of
            // durability: `set_config(.., true)` is `SET LOCAL` for the
            // statement's own transaction, so this commit does not wait for
            // the WAL flush (a crash may lose the touch, which only shortens
            // an idle timer); every other statement commits durably.
            touch: s(format!(
                "UPDATE {t} SET \
                 idle_deadline = GREATEST(idle_deadline, LEAST($2, absolute_deadline)), \
                 last_seen_at = GREATEST(last_seen_at, $3), \
                 expires_at = LEAST(GREATEST(idle_deadline, LEAST($2, absolute_deadline)), \
                 absolute_deadline) \
                 FROM (SELECT set_config('synchronous_commit', 'off', true)) AS activity \
                 WHERE key = $1 AND successor IS NULL AND expires_at > $4"
            )),
            // One statement: lock the old session if it is live with the
            // expected version (else Conflict), insert the successor unless
            // its key is taken (else AlreadyExists), and only if that insert
            // happened delete the old row or turn it into a forwarder ($14 =
            // grace). A concurrent rotation waits on the row lock, then
            // re-checks the old row, finds it gone or a forwarder, and
            // reports Conflict.
            rotate: s(format!(
                "WITH old AS ( \
                   SELECT key FROM {t} \
                   WHERE key = $1 AND version = $3 AND successor IS NULL AND expires_at > $13 \
                   FOR UPDATE \
                 ), ins AS ( \
                   INSERT INTO {t} (key, version, user_id, created_at, last_seen_at, auth_time, \
                     idle_deadline, absolute_deadline, meta, data, expires_at) \
                   SELECT $2, $3 + 1, $4, $5, $6, $7, $8, $9, $10, $11, $12 FROM old \
                   ON CONFLICT (key) DO NOTHING \
                   RETURNING version \
                 ), del AS ( \
                   DELETE FROM {t} WHERE key = $1 AND NOT $14 AND EXISTS (SELECT 1 FROM ins) \
                 ), fwd AS ( \
                   UPDATE {t} SET version = 0, user_id = NULL, created_at = NULL, \
                     last_seen_at = NULL, auth_time = NULL, idle_deadline = NULL, \
                     absolute_deadline = NULL, meta = NULL, data = NULL, \
                     successor = $2, sealed_token = $15, expires_at = $16 \
                   WHERE key = $1 AND $14 AND EXISTS (SELECT 1 FROM ins) \
                 ) \
                 SELECT EXISTS (SELECT 1 FROM old) AS matched, \
                   (SELECT version FROM ins) AS new_version"
            )),
            scan_first: s(format!(
                "SELECT key, {ENTRY_COLUMNS} FROM {t} ORDER BY key LIMIT $1"
            )),
            scan_after: s(format!(
                "SELECT key, {ENTRY_COLUMNS} FROM {t} WHERE key > $1 ORDER BY key LIMIT $2"
            )),
            delete: s(format!("DELETE FROM {t} WHERE key = $1")),
            delete_user: s(format!(
                "WITH gone AS ( \
                   DELETE FROM {t} \
                   WHERE user_id = $1 AND successor IS NULL AND key IS DISTINCT FROM $2 \
                   RETURNING expires_at \
                 ) \
                 SELECT count(*) FILTER (WHERE expires_at > $3) FROM gone"
            )),
            // `expires_at + 0`: never an index condition, so the plan stays on
            // the user index. Otherwise a generic plan, or statistics taken
            // after a mass delete, can pick the expiry index, which spans
            // every session of the table, live or dead: a listing then costs
            // time proportional to the table, not to the user's sessions
            // (see `list_user_stays_on_the_user_index`).
            list_user: s(format!(
                "SELECT key, version, created_at, last_seen_at, auth_time, idle_deadline, \
                 absolute_deadline, meta FROM {t} \
                 WHERE user_id = $1 AND successor IS NULL AND expires_at + 0 > $2 \
                 ORDER BY created_at, key"
            )),
            delete_all: s(format!("DELETE FROM {t}")),
            // SKIP LOCKED: concurrent cleaners take disjoint batches and never
            // wait on each other (no deadlocks, no double counting). The lock
            // re-checks expires_at against a concurrent touch. `= ANY(ARRAY(..))`
            // keeps the delete on the primary key: with `IN (subquery)` a
            // generic plan may hash-join against a scan of the whole table.
            cleanup: s(format!(
                "DELETE FROM {t} WHERE key = ANY (ARRAY ( \
                   SELECT key FROM {t} WHERE expires_at <= $1 \
                   ORDER BY expires_at LIMIT $2 FOR UPDATE SKIP LOCKED \
                 ))"
            )),
        }
    }
}

/// Index names that stay within 63 bytes and differ for any two tables.
pub(crate) fn index_name(table: &str, suffix: &str) -> String {
    let plain = format!("{table}_{suffix}");
    if plain.len() <= 63 {
        return plain;
    }
    // FNV-1a keeps long names distinct after shortening.
    let hash = table.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    });
    let keep = 63 - suffix.len() - 18;
    format!("{}_{hash:016x}_{suffix}", &table[..keep])
}

fn ddl(schema: &str, table: &str, unlogged: bool) -> Vec<String> {
    let t = qualified(schema, table);
    let meta = qualified(schema, META_TABLE);
    let unlogged = if unlogged { "UNLOGGED " } else { "" };
    let user_idx = index_name(table, "user_idx");
    let expires_idx = index_name(table, "expires_idx");
    vec![
        format!(
            "CREATE TABLE IF NOT EXISTS {meta} ( \
               table_name text PRIMARY KEY, \
               version bigint NOT NULL \
             )"
        ),
        format!(
            "CREATE {unlogged}TABLE IF NOT EXISTS {t} ( \
               key bytea PRIMARY KEY, \
               version bigint NOT NULL, \
               user_id bytea, \
               created_at bigint, \
               last_seen_at bigint, \
               auth_time bigint, \
               idle_deadline bigint, \
               absolute_deadline bigint, \
               meta bytea, \
               data bytea, \
               successor bytea, \
               sealed_token bytea, \
               expires_at bigint NOT NULL, \
               CONSTRAINT \"{}\" CHECK ( \
                 (successor IS NULL AND created_at IS NOT NULL AND last_seen_at IS NOT NULL \
                   AND idle_deadline IS NOT NULL AND absolute_deadline IS NOT NULL \
                   AND meta IS NOT NULL AND data IS NOT NULL AND sealed_token IS NULL) \
                 OR (successor IS NOT NULL AND sealed_token IS NOT NULL AND user_id IS NULL) \
               ) \
             )",
            index_name(table, "kind_check")
        ),
        format!(
            "CREATE INDEX IF NOT EXISTS \"{user_idx}\" ON {t} (user_id) \
             WHERE user_id IS NOT NULL"
        ),
        format!("CREATE INDEX IF NOT EXISTS \"{expires_idx}\" ON {t} (expires_at)"),
    ]
}

/// Creates or upgrades the schema; see [`PostgresStore::migrate`](crate::PostgresStore::migrate).
pub(crate) async fn migrate(
    conn: &mut PgConnection,
    schema: &str,
    table: &str,
    unlogged: bool,
) -> Result<()> {
    let mut tx = conn.begin().await.map_err(map_sqlx)?;
    match migrate_in(&mut tx, schema, table, unlogged).await {
        Ok(()) => tx.commit().await.map_err(map_sqlx),
        Err(e) => {
            // Roll back now rather than on the connection's next use: the
            // transaction holds the advisory lock other migrations wait for.
            // If that fails, report the backend error so the connection is closed.
            tx.rollback().await.map_err(map_sqlx)?;
            Err(e)
        }
    }
}

async fn migrate_in(
    tx: &mut PgConnection,
    schema: &str,
    table: &str,
    unlogged: bool,
) -> Result<()> {
    // Serialise migrations of one schema across processes; released at
    // commit or rollback.
    sqlx::query("SELECT pg_advisory_xact_lock(hashtext($1))")
        .bind(format!("session_store_migrate:{schema}"))
        .execute(&mut *tx)
        .await
        .map_err(map_sqlx)?;
    match stored_version(tx, schema, table).await? {
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
    let schema_exists: bool =
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = $1)")
            .bind(schema)
            .fetch_one(&mut *tx)
            .await
            .map_err(map_sqlx)?;
    if !schema_exists {
        sqlx::query(AssertSqlSafe(format!("CREATE SCHEMA \"{schema}\"")))
            .execute(&mut *tx)
            .await
            .map_err(map_sqlx)?;
    }
    for statement in ddl(schema, table, unlogged) {
        sqlx::query(AssertSqlSafe(statement))
            .execute(&mut *tx)
            .await
            .map_err(map_sqlx)?;
    }
    sqlx::query(AssertSqlSafe(format!(
        "INSERT INTO {} (table_name, version) VALUES ($1, $2) \
         ON CONFLICT (table_name) DO UPDATE SET version = EXCLUDED.version",
        qualified(schema, META_TABLE)
    )))
    .bind(table)
    .bind(SCHEMA_VERSION)
    .execute(&mut *tx)
    .await
    .map_err(map_sqlx)?;
    Ok(())
}

/// The recorded schema version of `table`, if the meta table and its row exist.
pub(crate) async fn stored_version(
    conn: &mut PgConnection,
    schema: &str,
    table: &str,
) -> Result<Option<i64>> {
    let meta_exists: bool = sqlx::query_scalar("SELECT to_regclass($1) IS NOT NULL")
        .bind(qualified(schema, META_TABLE))
        .fetch_one(&mut *conn)
        .await
        .map_err(map_sqlx)?;
    if !meta_exists {
        return Ok(None);
    }
    let row = sqlx::query(AssertSqlSafe(format!(
        "SELECT version FROM {} WHERE table_name = $1",
        qualified(schema, META_TABLE)
    )))
    .bind(table)
    .fetch_optional(&mut *conn)
    .await
    .map_err(map_sqlx)?;
    row.map(|r| r.try_get::<i64, _>(0).map_err(Error::codec))
        .transpose()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn index_names_fit_and_stay_distinct() {
        assert_eq!(index_name("sessions", "user_idx"), "sessions_user_idx");
        let a = format!("{}a", "x".repeat(62));
        let b = format!("{}b", "x".repeat(62));
        for suffix in ["user_idx", "expires_idx", "kind_check"] {
            let (na, nb) = (index_name(&a, suffix), index_name(&b, suffix));
            assert!(na.len() <= 63 && nb.len() <= 63, "{na} {nb}");
            assert_ne!(na, nb);
            assert!(na.ends_with(suffix));
        }
    }
}
