//! The public conformance suite against a real PostgreSQL server, plain and
//! encrypted: every check gets a fresh random schema in database `test`,
//! dropped afterwards.
//!
//! Needs a server (`store-postgres/scripts/postgres-service.sh`); set
//! `SESSION_STORE_SKIP_POSTGRES=1` to skip visibly instead.

mod common;

use std::sync::Arc;

use session_store_conformance::{conformance_tests, Setup, TestStore};
use session_store_core::{Error, Result};
use session_store_postgres::PostgresStore;
use sqlx::{AssertSqlSafe, Column, Row, TypeInfo};

/// Every column of every row of the store's table, as raw bytes (`bytea` as
/// is, `bigint` as 8 big-endian bytes, NULL as nothing), for the at-rest checks.
async fn dump(store: &PostgresStore) -> Result<Vec<Vec<u8>>> {
    let rows = sqlx::query(AssertSqlSafe(format!(
        "SELECT * FROM {}",
        store.qualified_table()
    )))
    .fetch_all(store.pool())
    .await
    .map_err(Error::backend_permanent)?;
    let mut out = Vec::new();
    for row in &rows {
        for column in row.columns() {
            let i = column.ordinal();
            let bytes = match column.type_info().name() {
                "BYTEA" => row.try_get::<Option<Vec<u8>>, _>(i),
                "INT8" => row
                    .try_get::<Option<i64>, _>(i)
                    .map(|v| v.map(|v| v.to_be_bytes().to_vec())),
                other => {
                    return Err(Error::codec(format!(
                        "dump: column {} has unexpected type {other}",
                        column.name()
                    )))
                }
            }
            .map_err(Error::codec)?;
            out.extend(bytes);
        }
    }
    Ok(out)
}

async fn postgres() -> Setup {
    if common::skip_requested() {
        return Setup::Skip("SESSION_STORE_SKIP_POSTGRES=1".into());
    }
    // Small pools: many checks run in parallel against one server.
    let (store, guard) = common::connect_migrated(&common::test_config(4)).await;
    // The dump hook owns the guard, so the schema is dropped when the suite
    // drops the test store.
    let guard = Arc::new(guard);
    let dump_store = store.clone();
    Setup::Run(TestStore::new(store).with_dump(move || {
        let store = dump_store.clone();
        let _keep = guard.clone();
        async move { dump(&store).await }
    }))
}

conformance_tests!(postgres);
