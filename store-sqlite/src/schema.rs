//! The table layout, the statements, opening connections and migrations.
//!
//! One table holds both kinds of entry:
//!
//! | column | session (`kind = 0`) | forwarder (`kind = 1`) |
//! | --- | --- | --- |
//! | `key` BLOB PRIMARY KEY | storage key (32 bytes) | old storage key |
//! | `version` | CAS version | 0 |
//! | `user_id`, `created_at`, `last_seen_at`, `auth_time`, `idle_deadline`, `absolute_deadline`, `meta`, `data` | the record | NULL |
//! | `successor`, `sealed_token` | NULL | the [`Forward`](session_store_core::Forward) |
//! | `expires_at` | `min(idle_deadline, absolute_deadline)` | `until` |
//!
//! Timestamps are milliseconds since the Unix epoch; versions are stored as
//! the two's-complement `i64` of the `u64` (equality is all that is needed).
//! Indexes: `(user_id, created_at, key)` for sessions with a user (delete and
//! list by user, already in list order) and `(expires_at)` for cleanup.
//!
//! The table is `WITHOUT ROWID`: the row lives in the primary-key b-tree, so
//! a lookup by key is one b-tree search and an insert touches one fewer page
//! (every page touched is a frame written to the WAL) than a rowid table with
//! a separate key index.
//!
//! Schema versions live in the small table `session_store_schema`, one row
//! per session table, so several session tables can share a database.

use std::ffi::c_int;
use std::path::Path;
use std::time::Duration;

use rusqlite::{Connection, OpenFlags, OptionalExtension};
use session_store_core::{Error, Result};

use crate::checkpoint::{self, WalFrames, WalUpkeep};
use crate::config::{Location, SqliteConfig};
use crate::store::sqlite_error;
use crate::vacuum;
use crate::worker::Upkeep;

/// The schema version this library writes and understands.
pub const SCHEMA_VERSION: i64 = 1;

/// The table recording each session table's schema version.
pub const SCHEMA_TABLE: &str = "session_store_schema";

/// The columns of a scan page: those of `load`, then the key (column 13).
const SCAN_COLUMNS: &str = "SELECT kind, version, user_id, created_at, last_seen_at, auth_time, \
     idle_deadline, absolute_deadline, meta, data, successor, sealed_token, expires_at, key";

/// Prepared-statement cache size per connection (we use about a dozen).
const STATEMENT_CACHE: usize = 32;

/// Every statement, with the (validated, quoted) table name filled in once.
#[derive(Debug)]
pub(crate) struct Sql {
    pub table: String,
    pub insert_session: String,
    pub insert_forward: String,
    pub load: String,
    pub save: String,
    pub save_same_owner: String,
    pub touch: String,
    pub take_for_rotation: String,
    pub delete: String,
    pub delete_user: String,
    pub list_user: String,
    pub delete_all: String,
    pub cleanup: String,
    pub dump: String,
    /// One scan page: the `load` columns then the key, after `?1` in key
    /// order (the primary key), `?2` rows.
    pub scan_first: String,
    /// [`Sql::scan_first`] continuing after the key `?1`.
    pub scan_after: String,
}

impl Sql {
    pub(crate) fn new(table: &str) -> Self {
        let t = format!("\"{table}\"");
        Sql {
            table: table.to_owned(),
            insert_session: format!(
                "INSERT INTO {t} (key, kind, version, user_id, created_at, last_seen_at, auth_time, \
                 idle_deadline, absolute_deadline, meta, data, expires_at) \
                 VALUES (?1, 0, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)"
            ),
            insert_forward: format!(
                "INSERT INTO {t} (key, kind, version, successor, sealed_token, expires_at) \
                 VALUES (?1, 1, 0, ?2, ?3, ?4)"
            ),
            load: format!(
                "SELECT kind, version, user_id, created_at, last_seen_at, auth_time, idle_deadline, \
                 absolute_deadline, meta, data, successor, sealed_token, expires_at \
                 FROM {t} WHERE key = ?1 AND expires_at > ?2"
            ),
            save: format!(
                "UPDATE {t} SET version = ?3, user_id = ?4, created_at = ?5, last_seen_at = ?6, \
                 auth_time = ?7, idle_deadline = ?8, absolute_deadline = ?9, meta = ?10, data = ?11, \
                 expires_at = ?12 \
                 WHERE key = ?1 AND kind = 0 AND version = ?2 AND expires_at > ?13"
            ),
            // The common save: same user and creation time. Leaving those
            // columns out of SET spares the user index a rewrite (one WAL
            // frame less); `save` handles the rest.
            save_same_owner: format!(
                "UPDATE {t} SET version = ?3, last_seen_at = ?6, auth_time = ?7, \
                 idle_deadline = ?8, absolute_deadline = ?9, meta = ?10, data = ?11, \
                 expires_at = ?12 \
                 WHERE key = ?1 AND kind = 0 AND version = ?2 AND expires_at > ?13 \
                 AND user_id IS ?4 AND created_at = ?5"
            ),
            // SET expressions all see the old row, so the new idle deadline is
            // spelled out twice.
            touch: format!(
                "UPDATE {t} SET \
                 idle_deadline = max(idle_deadline, min(?2, absolute_deadline)), \
                 last_seen_at = max(last_seen_at, ?3), \
                 expires_at = min(max(idle_deadline, min(?2, absolute_deadline)), absolute_deadline) \
                 WHERE key = ?1 AND kind = 0 AND expires_at > ?4"
            ),
            take_for_rotation: format!(
                "DELETE FROM {t} WHERE key = ?1 AND kind = 0 AND version = ?2 AND expires_at > ?3"
            ),
            delete: format!("DELETE FROM {t} WHERE key = ?1"),
            delete_user: format!(
                "DELETE FROM {t} WHERE user_id = ?1 AND key IS NOT ?2 RETURNING expires_at"
            ),
            list_user: format!(
                "SELECT key, version, created_at, last_seen_at, auth_time, idle_deadline, \
                 absolute_deadline, meta \
                 FROM {t} WHERE user_id = ?1 AND expires_at > ?2 ORDER BY created_at, key"
            ),
            delete_all: format!("DELETE FROM {t}"),
            cleanup: format!(
                "DELETE FROM {t} WHERE key IN \
                 (SELECT key FROM {t} WHERE expires_at <= ?1 ORDER BY expires_at LIMIT ?2)"
            ),
            dump: format!(
                "SELECT key, user_id, meta, data, successor, sealed_token FROM {t}"
            ),
            scan_first: format!("{SCAN_COLUMNS} FROM {t} ORDER BY key LIMIT ?1"),
            scan_after: format!("{SCAN_COLUMNS} FROM {t} WHERE key > ?1 ORDER BY key LIMIT ?2"),
        }
    }
}

fn create_statements(table: &str) -> String {
    format!(
        "CREATE TABLE IF NOT EXISTS \"{table}\" (
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
        CREATE INDEX IF NOT EXISTS \"{table}_user\" ON \"{table}\" (user_id, created_at, key)
            WHERE user_id IS NOT NULL;
        CREATE INDEX IF NOT EXISTS \"{table}_expires\" ON \"{table}\" (expires_at);"
    )
}

/// Opens the writer connection and validates the file **without writing
/// anything** to it; only then switches the file to WAL mode and hands WAL
/// checkpoints to the checkpointer (`nudge`). Runs on the writer thread.
pub(crate) fn open_writer(
    config: &SqliteConfig,
    nudge: Option<std::sync::mpsc::SyncSender<()>>,
    frames: WalFrames,
) -> Result<(Connection, Option<Box<dyn Upkeep>>)> {
    let mut conn = match &config.location {
        Location::Memory => Connection::open_in_memory().map_err(sqlite_error)?,
        Location::File(path) => {
            check_path(path)?;
            Connection::open_with_flags(path, file_flags()).map_err(|e| open_error(path, e))?
        }
    };
    set_connection_pragmas(&conn, config)?;
    // The first read: fails with "not a database" for a foreign file, before
    // any write could touch it.
    check_schema_version(&conn, &config.table)?;
    if config.auto_vacuum {
        // Only a database with no page yet; it must precede the switch to
        // WAL, which writes the first page.
        vacuum::enable_on_new(&conn)?;
    }
    if matches!(config.location, Location::File(_)) {
        let mode: String = conn
            .query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))
            .map_err(sqlite_error)?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(Error::backend_permanent(format!(
                "could not switch the database to WAL mode (journal_mode is {mode})"
            )));
        }
        set_wal_size_limit(&conn, config)?;
        let page_size: i64 = conn
            .query_row("PRAGMA page_size", [], |r| r.get(0))
            .map_err(sqlite_error)?;
        let threshold =
            (config.wal_checkpoint / page_size.max(512) as u64).clamp(1, i32::MAX as u64) as c_int;
        checkpoint::install_hook(&mut conn, frames.clone(), nudge, (threshold / 2).max(1))?;
        let idle = (!config.idle_checkpoint.is_zero()).then_some(config.idle_checkpoint);
        let upkeep = WalUpkeep::new(frames, threshold, idle, config.busy_timeout);
        return Ok((conn, Some(Box::new(upkeep))));
    }
    Ok((conn, None))
}

/// `journal_size_limit`: the log file is cut back to this size when it
/// restarts.
fn set_wal_size_limit(conn: &Connection, config: &SqliteConfig) -> Result<()> {
    let limit = i64::try_from(config.wal_size_limit).unwrap_or(i64::MAX);
    let _: i64 = conn
        .query_row(&format!("PRAGMA journal_size_limit = {limit}"), [], |r| {
            r.get(0)
        })
        .map_err(sqlite_error)?;
    Ok(())
}

/// Opens a reader connection on a database the writer already opened.
pub(crate) fn open_reader(config: &SqliteConfig) -> Result<Connection> {
    let Location::File(path) = &config.location else {
        return Err(Error::Config(
            "an in-memory database has no reader connections".into(),
        ));
    };
    let conn = Connection::open_with_flags(path, file_flags()).map_err(|e| open_error(path, e))?;
    set_connection_pragmas(&conn, config)?;
    // Defence in depth: a reader never writes.
    conn.pragma_update(None, "query_only", true)
        .map_err(sqlite_error)?;
    Ok(conn)
}

/// Opens the checkpointer's connection on a database the writer already opened.
pub(crate) fn open_checkpointer(config: &SqliteConfig) -> Result<Connection> {
    let Location::File(path) = &config.location else {
        return Err(Error::Config(
            "an in-memory database has no checkpointer".into(),
        ));
    };
    let conn = Connection::open_with_flags(path, file_flags()).map_err(|e| open_error(path, e))?;
    // Checkpoints sync as `synchronous` says.
    set_connection_pragmas(&conn, config)?;
    set_wal_size_limit(&conn, config)?;
    Ok(conn)
}

fn file_flags() -> OpenFlags {
    // NO_MUTEX: each connection is used by one thread at a time (its worker
    // thread, or a caller holding its slot's lock: see `worker`).
    OpenFlags::SQLITE_OPEN_READ_WRITE
        | OpenFlags::SQLITE_OPEN_CREATE
        | OpenFlags::SQLITE_OPEN_NO_MUTEX
}

fn check_path(path: &Path) -> Result<()> {
    match std::fs::metadata(path) {
        Ok(m) if m.is_dir() => Err(Error::Config(format!(
            "database path {} is a directory",
            path.display()
        ))),
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let parent = path.parent().filter(|p| !p.as_os_str().is_empty());
            match parent {
                Some(dir) if !dir.is_dir() => Err(Error::Config(format!(
                    "directory {} of the database path does not exist",
                    dir.display()
                ))),
                _ => Ok(()),
            }
        }
        Err(e) => Err(Error::backend_permanent(e)),
    }
}

fn open_error(path: &Path, e: rusqlite::Error) -> Error {
    match e.sqlite_error_code() {
        Some(rusqlite::ErrorCode::CannotOpen) => {
            Error::Config(format!("cannot open database file {}: {e}", path.display()))
        }
        _ => sqlite_error(e),
    }
}

fn set_connection_pragmas(conn: &Connection, config: &SqliteConfig) -> Result<()> {
    conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
    conn.busy_timeout(config.busy_timeout.max(Duration::from_millis(1)))
        .map_err(sqlite_error)?;
    conn.pragma_update(None, "synchronous", config.synchronous.pragma_value())
        .map_err(sqlite_error)?;
    // Negative: a size in KiB rather than in pages.
    conn.pragma_update(None, "cache_size", -(config.cache_kib as i64))
        .map_err(sqlite_error)?;
    Ok(())
}

/// The schema version recorded for `table`, if any.
pub(crate) fn schema_version(conn: &Connection, table: &str) -> Result<Option<i64>> {
    let has_meta: bool = conn
        .query_row(
            "SELECT EXISTS (SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?1)",
            [SCHEMA_TABLE],
            |r| r.get(0),
        )
        .map_err(not_a_database)?;
    if !has_meta {
        return Ok(None);
    }
    conn.query_row(
        &format!("SELECT version FROM \"{SCHEMA_TABLE}\" WHERE name = ?1"),
        [table],
        |r| r.get(0),
    )
    .optional()
    .map_err(sqlite_error)
}

/// Fails with [`Error::SchemaTooNew`] if `table` was written by a newer library.
pub(crate) fn check_schema_version(conn: &Connection, table: &str) -> Result<()> {
    match schema_version(conn, table)? {
        Some(found) if found > SCHEMA_VERSION => Err(Error::SchemaTooNew {
            found,
            supported: SCHEMA_VERSION,
        }),
        _ => Ok(()),
    }
}

fn not_a_database(e: rusqlite::Error) -> Error {
    match e.sqlite_error_code() {
        Some(rusqlite::ErrorCode::NotADatabase) => {
            Error::backend_permanent(format!("the file is not a SQLite database: {e}"))
        }
        _ => sqlite_error(e),
    }
}

/// Creates or upgrades the schema of `table`; idempotent. Runs in one
/// immediate transaction on the writer connection. With `auto_vacuum`, a
/// database without auto-vacuum (new files get it when opened) is converted
/// when that is cheap (see [`vacuum::convert_if_small`]).
pub(crate) fn migrate(conn: &mut Connection, table: &str, auto_vacuum: bool) -> Result<()> {
    migrate_table(conn, table)?;
    if auto_vacuum {
        vacuum::convert_if_small(conn)?;
    }
    Ok(())
}

fn migrate_table(conn: &mut Connection, table: &str) -> Result<()> {
    let tx = conn
        .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
        .map_err(sqlite_error)?;
    match schema_version(&tx, table)? {
        Some(v) if v == SCHEMA_VERSION => return Ok(()),
        Some(found) if found > SCHEMA_VERSION => {
            return Err(Error::SchemaTooNew {
                found,
                supported: SCHEMA_VERSION,
            })
        }
        Some(_) => {} // older versions: none exist yet; upgrade steps go here
        None => {
            let exists: bool = tx
                .query_row(
                    "SELECT EXISTS (SELECT 1 FROM sqlite_master WHERE name = ?1)",
                    [table],
                    |r| r.get(0),
                )
                .map_err(sqlite_error)?;
            if exists {
                return Err(Error::Config(format!(
                    "table {table} exists but was not created by this library"
                )));
            }
        }
    }
    tx.execute_batch(&format!(
        "CREATE TABLE IF NOT EXISTS \"{SCHEMA_TABLE}\" (
            name TEXT PRIMARY KEY NOT NULL,
            version INTEGER NOT NULL
        );"
    ))
    .map_err(sqlite_error)?;
    tx.execute_batch(&create_statements(table))
        .map_err(sqlite_error)?;
    tx.execute(
        &format!("INSERT OR REPLACE INTO \"{SCHEMA_TABLE}\" (name, version) VALUES (?1, ?2)"),
        rusqlite::params![table, SCHEMA_VERSION],
    )
    .map_err(sqlite_error)?;
    tx.commit().map_err(sqlite_error)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Synchronous;

    fn plan(conn: &Connection, sql: &str) -> Vec<String> {
        let mut stmt = conn.prepare(&format!("EXPLAIN QUERY PLAN {sql}")).unwrap();
        let nulls = vec![rusqlite::types::Null; stmt.parameter_count()];
        let rows = stmt
            .query_map(rusqlite::params_from_iter(nulls), |r| r.get::<_, String>(3))
            .unwrap();
        rows.map(Result::unwrap).collect()
    }

    #[test]
    fn hot_statements_use_indexes_not_table_scans() {
        let mut conn = Connection::open_in_memory().unwrap();
        migrate(&mut conn, "web_sessions", true).unwrap();
        // Some rows and fresh statistics, so the planner's choice is the real one.
        for i in 0..200i64 {
            conn.execute(
                "INSERT INTO web_sessions (key, kind, version, user_id, created_at, expires_at) \
                 VALUES (randomblob(32), 0, 0, ?1, ?2, ?2)",
                rusqlite::params![format!("user{}", i % 20), i],
            )
            .unwrap();
        }
        conn.execute_batch("ANALYZE").unwrap();
        let sql = Sql::new("web_sessions");
        for (name, statement) in [
            ("load", &sql.load),
            ("save", &sql.save),
            ("save_same_owner", &sql.save_same_owner),
            ("touch", &sql.touch),
            ("take_for_rotation", &sql.take_for_rotation),
            ("delete", &sql.delete),
            ("delete_user", &sql.delete_user),
            ("list_user", &sql.list_user),
            ("cleanup", &sql.cleanup),
        ] {
            let steps = plan(&conn, statement);
            assert!(!steps.is_empty(), "{name}: no plan");
            for step in &steps {
                assert!(
                    !step.starts_with("SCAN"),
                    "{name} scans: {steps:?} ({statement})"
                );
                // Sorting would mean the index does not give list order.
                assert!(!step.contains("TEMP B-TREE"), "{name}: {steps:?}");
            }
            let index = match name {
                "delete_user" | "list_user" => "web_sessions_user",
                "cleanup" => "web_sessions_expires",
                _ => "PRIMARY KEY",
            };
            assert!(
                steps.iter().any(|s| s.contains(index)),
                "{name} does not use {index}: {steps:?}"
            );
        }
    }

    #[test]
    fn migrate_is_idempotent_and_records_the_version() {
        let mut conn = Connection::open_in_memory().unwrap();
        assert_eq!(schema_version(&conn, "s").unwrap(), None);
        migrate(&mut conn, "s", true).unwrap();
        migrate(&mut conn, "s", true).unwrap();
        assert_eq!(schema_version(&conn, "s").unwrap(), Some(SCHEMA_VERSION));
        conn.execute(
            "UPDATE session_store_schema SET version = ?1 WHERE name = 's'",
            [SCHEMA_VERSION + 1],
        )
        .unwrap();
        assert!(matches!(
            migrate(&mut conn, "s", true),
            Err(Error::SchemaTooNew { found, supported: SCHEMA_VERSION }) if found == SCHEMA_VERSION + 1
        ));
        assert!(matches!(
            check_schema_version(&conn, "s"),
            Err(Error::SchemaTooNew { .. })
        ));
    }

    #[test]
    fn writer_settings_are_applied() {
        let dir = tempfile::tempdir().unwrap();
        for (mode, level) in [(Synchronous::Normal, 1i64), (Synchronous::Full, 2)] {
            let config = SqliteConfig::new(dir.path().join("s.db"))
                .with_synchronous(mode)
                .with_busy_timeout(Duration::from_millis(1234))
                .with_cache_kib(4096);
            let (conn, upkeep) = open_writer(&config, None, WalFrames::default()).unwrap();
            assert!(upkeep.is_some(), "a file's writer checkpoints");
            let limit: i64 = conn
                .query_row("PRAGMA journal_size_limit", [], |r| r.get(0))
                .unwrap();
            assert_eq!(limit as u64, config.wal_size_limit());
            let sync: i64 = conn
                .query_row("PRAGMA synchronous", [], |r| r.get(0))
                .unwrap();
            assert_eq!(sync, level);
            let journal: String = conn
                .query_row("PRAGMA journal_mode", [], |r| r.get(0))
                .unwrap();
            assert_eq!(journal, "wal");
            let busy: i64 = conn
                .query_row("PRAGMA busy_timeout", [], |r| r.get(0))
                .unwrap();
            assert_eq!(busy, 1234);
            let reader = open_reader(&config).unwrap();
            for c in [&conn, &reader] {
                let cache: i64 = c.query_row("PRAGMA cache_size", [], |r| r.get(0)).unwrap();
                assert_eq!(cache, -4096);
            }
            assert!(reader
                .execute_batch("CREATE TABLE nope (x INTEGER)")
                .is_err());
        }
    }
}
