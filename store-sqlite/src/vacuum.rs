//! Free pages go back to the file system: incremental auto-vacuum.
//!
//! SQLite keeps the pages a delete frees inside the file, for reuse. After
//! a mass expiry that is most of the file (80 % free pages were measured),
//! and the file never shrinks. A database created by this library has
//! `auto_vacuum=INCREMENTAL`; [`step`] returns free pages in bounded steps
//! after cleanup chunks, once enough of the file is free that it is worth it
//! (steady churn reuses its free pages instead). A file created without
//! auto-vacuum is converted by `VACUUM`, which rewrites it:
//! [`convert_if_small`] does that from `migrate` only when it is cheap and
//! safe, [`vacuum`] on request.

use rusqlite::Connection;
use session_store_core::Result;

use crate::schema::SCHEMA_TABLE;
use crate::store::sqlite_error;

/// `PRAGMA auto_vacuum` value of an incremental database.
const INCREMENTAL: i64 = 2;
/// Pages returned by one step (2 MiB of 4 KiB pages): a step moves up to as
/// many pages from the end of the file into the holes, so it stays short.
pub(crate) const STEP_PAGES: i64 = 512;
/// Free space below which nothing is returned.
const MIN_FREE_BYTES: i64 = 1024 * 1024;
/// Nothing is returned while at most `1 / FREE_FRACTION` of the file is free.
const FREE_FRACTION: i64 = 8;
/// Largest file `migrate` rewrites to switch on auto-vacuum by itself.
pub(crate) const CONVERT_MAX_BYTES: i64 = 64 * 1024 * 1024;

fn pragma_i64(conn: &Connection, name: &str) -> Result<i64> {
    conn.query_row(&format!("PRAGMA {name}"), [], |r| r.get(0))
        .map_err(sqlite_error)
}

/// Switches auto-vacuum on for a database that has no page yet (a new file,
/// before it is switched to WAL; it takes effect when the first table is
/// created). No-op otherwise: nothing is written.
pub(crate) fn enable_on_new(conn: &Connection) -> Result<()> {
    if pragma_i64(conn, "page_count")? == 0 {
        conn.execute_batch("PRAGMA auto_vacuum = INCREMENTAL")
            .map_err(sqlite_error)?;
    }
    Ok(())
}

/// Converts a database without auto-vacuum by rewriting it, when it holds
/// nothing but this library's tables (`VACUUM` may renumber the rows of
/// other tables) and is at most [`CONVERT_MAX_BYTES`] (the rewrite blocks
/// writers for its duration). Otherwise logs a warning and leaves it.
pub(crate) fn convert_if_small(conn: &Connection) -> Result<()> {
    if pragma_i64(conn, "auto_vacuum")? != 0 {
        return Ok(());
    }
    let foreign: i64 = conn
        .query_row(
            &format!(
                "SELECT count(*) FROM sqlite_master WHERE type = 'table' \
                 AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\' AND name <> ?1 \
                 AND name NOT IN (SELECT name FROM \"{SCHEMA_TABLE}\")"
            ),
            [SCHEMA_TABLE],
            |r| r.get(0),
        )
        .map_err(sqlite_error)?;
    let bytes = pragma_i64(conn, "page_count")? * pragma_i64(conn, "page_size")?;
    if foreign > 0 || bytes > CONVERT_MAX_BYTES {
        tracing::warn!(
            bytes,
            other_tables = foreign,
            "sqlite: this database was created without auto-vacuum, so freed pages stay in \
             the file; SqliteStore::vacuum() converts it (rewrites the whole file)"
        );
        return Ok(());
    }
    vacuum(conn, true)
}

/// Rewrites the database (`VACUUM`), with incremental auto-vacuum when
/// `incremental`; then truncates the log the rewrite went through.
pub(crate) fn vacuum(conn: &Connection, incremental: bool) -> Result<()> {
    if incremental {
        conn.execute_batch("PRAGMA auto_vacuum = INCREMENTAL")
            .map_err(sqlite_error)?;
    }
    conn.execute_batch("VACUUM").map_err(sqlite_error)?;
    // In WAL mode the rewrite went through the log: a whole copy of the file.
    // (Without a log, in memory, this does nothing.)
    conn.wal_checkpoint_v2(None::<&str>, rusqlite::wal::CheckpointMode::TRUNCATE)
        .map_err(sqlite_error)?;
    Ok(())
}

/// Returns up to [`STEP_PAGES`] free pages to the file system when more than
/// an eighth of the file (and at least 1 MiB) is free, on an incremental
/// database. Returns how many pages it released.
pub(crate) fn step(conn: &Connection) -> Result<i64> {
    if pragma_i64(conn, "auto_vacuum")? != INCREMENTAL {
        return Ok(0);
    }
    let free = pragma_i64(conn, "freelist_count")?;
    let total = pragma_i64(conn, "page_count")?;
    let page = pragma_i64(conn, "page_size")?;
    if free * page < MIN_FREE_BYTES || free * FREE_FRACTION < total {
        return Ok(0);
    }
    let n = free.min(STEP_PAGES);
    // The statement frees one page per step: run it to the end.
    let mut stmt = conn
        .prepare(&format!("PRAGMA incremental_vacuum({n})"))
        .map_err(sqlite_error)?;
    let mut rows = stmt.query([]).map_err(sqlite_error)?;
    while rows.next().map_err(sqlite_error)?.is_some() {}
    Ok(n)
}
