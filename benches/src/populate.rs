//! Bulk loading of live sessions for the scale runs.
//!
//! Going through `create` one session at a time would make 10^6 sessions take
//! far longer than the measurement itself (sled and SQLite serialise writes,
//! PostgreSQL and Redis pay a round trip each). So one *template* session is
//! created through the store, and copies of its stored form are written under
//! new keys with each engine's bulk path: a SQLite transaction of
//! `INSERT ... SELECT`, one PostgreSQL `INSERT ... SELECT` over
//! `generate_series` per batch, one MySQL `INSERT ... SELECT` over a recursive
//! row generator per batch, pipelined Redis `RESTORE` of the template's
//! `DUMP`, sled batches over the record and expiry trees. The copies are
//! byte-for-byte what the store writes, so they load like any other session;
//! [`populate`] checks a few of them through the store.

use std::time::Duration;

use session_store_core::{Lookup, SessionBackend, SessionRecord, StorageKey, Timestamp};
use sha2::{Digest, Sha256};

use crate::fixture::{Fixture, Target};

/// The storage key of bulk session `i` of run `tag`: SHA-256 of `tag ‖ i` (the
/// same function is computed in SQL for PostgreSQL and MySQL).
pub fn key_of(tag: &str, i: usize) -> StorageKey {
    let digest: [u8; 32] = Sha256::digest(format!("{tag}{i}").as_bytes()).into();
    StorageKey::try_from_slice(&digest).expect("32 bytes")
}

/// An anonymous session record created `now`, idle for 2 h, absolute 12 h,
/// with `data`.
pub fn record(now: Timestamp, data: Vec<u8>, user_id: Option<String>) -> SessionRecord {
    SessionRecord {
        version: 0,
        user_id,
        created_at: now,
        last_seen_at: now,
        auth_time: None,
        idle_deadline: now.saturating_add(Duration::from_secs(2 * 3600)),
        absolute_deadline: now.saturating_add(Duration::from_secs(12 * 3600)),
        meta: Vec::new(),
        data,
    }
}

#[allow(dead_code)]
const BATCH: usize = 20_000;

fn template_key(tag: &str) -> StorageKey {
    let digest: [u8; 32] = Sha256::digest(format!("{tag}template").as_bytes()).into();
    StorageKey::try_from_slice(&digest).expect("32 bytes")
}

/// Writes sessions `from..to` of run `tag` (keys [`key_of`]) as copies of
/// `template` into the fixture's plain store, with the fastest correct path
/// of each engine; then loads a few through the store to check them.
///
/// # Errors
/// A description of the failure (including a copy that does not load).
pub async fn populate(
    fixture: &Fixture,
    tag: &str,
    from: usize,
    to: usize,
    template: &SessionRecord,
) -> Result<(), String> {
    if from >= to {
        return Ok(());
    }
    let backend = fixture.backend(false);
    let tkey = template_key(tag);
    match backend.create(&tkey, template).await {
        Ok(()) | Err(session_store_core::Error::AlreadyExists) => {}
        Err(e) => return Err(format!("template: {e}")),
    }
    match fixture.target {
        Target::Memory => {
            for i in from..to {
                backend
                    .create(&key_of(tag, i), template)
                    .await
                    .map_err(|e| e.to_string())?;
            }
        }
        #[cfg(feature = "store-sled")]
        Target::Sled | Target::SledPeriodic => {
            let store = fixture.sled().expect("sled fixture");
            let db = store.db().sled().clone();
            let prefix = store.prefix().to_owned();
            let tag = tag.to_owned();
            tokio::task::spawn_blocking(move || sled_copy(&db, &prefix, &tag, &tkey, from, to))
                .await
                .map_err(|e| e.to_string())??;
        }
        #[cfg(feature = "store-sqlite")]
        Target::Sqlite => {
            let (path, table) = fixture.sqlite().expect("sqlite fixture");
            let (path, table, tag) = (path.to_owned(), table.to_owned(), tag.to_owned());
            tokio::task::spawn_blocking(move || sqlite_copy(&path, &table, &tag, &tkey, from, to))
                .await
                .map_err(|e| e.to_string())??;
        }
        #[cfg(feature = "store-postgres")]
        Target::Postgres => {
            let (_, schema) = fixture.postgres().expect("postgres fixture");
            postgres_copy(schema, tag, &tkey, from, to).await?;
        }
        #[cfg(feature = "store-mysql")]
        Target::Mysql => {
            let (_, table) = fixture.mysql().expect("mysql fixture");
            mysql_copy(table, tag, &tkey, from, to).await?;
        }
        #[cfg(feature = "store-redis")]
        Target::Redis | Target::RedisCluster => {
            let store = fixture.redis().expect("redis fixture");
            if store.is_cluster() {
                for i in from..to {
                    backend
                        .create(&key_of(tag, i), template)
                        .await
                        .map_err(|e| e.to_string())?;
                }
            } else {
                redis_copy(store, tag, &tkey, from, to).await?;
            }
        }
        #[allow(unreachable_patterns)]
        _ => return Err(format!("{}: backend not compiled in", fixture.target.id())),
    }
    // The copies must be real sessions to the store.
    let now = Timestamp::now_utc();
    for i in [from, (from + to) / 2, to - 1] {
        match backend.load(&key_of(tag, i), now).await {
            Ok(Some(Lookup::Session(r))) if r.data == template.data => {}
            other => {
                return Err(format!(
                    "bulk copy {i} of {} does not load as the template: {other:?}",
                    fixture.target.id()
                ))
            }
        }
    }
    Ok(())
}

#[cfg(feature = "store-sled")]
fn sled_copy(
    db: &sled::Db,
    prefix: &str,
    tag: &str,
    tkey: &StorageKey,
    from: usize,
    to: usize,
) -> Result<(), String> {
    let e = |e: sled::Error| e.to_string();
    let records = db.open_tree(format!("{prefix}.records")).map_err(e)?;
    let expiry = db.open_tree(format!("{prefix}.expiry")).map_err(e)?;
    let value = records
        .get(tkey.as_bytes())
        .map_err(e)?
        .ok_or("sled template record missing")?;
    // expiry key = order-preserving expiry instant (8 bytes) ‖ storage key.
    let mut time_prefix = None;
    for kv in expiry.iter() {
        let (k, _) = kv.map_err(e)?;
        if k.len() == 40 && &k[8..] == tkey.as_bytes() {
            time_prefix = Some(k[..8].to_vec());
            break;
        }
    }
    let time_prefix = time_prefix.ok_or("sled template expiry entry missing")?;
    let mut i = from;
    while i < to {
        let end = (i + BATCH).min(to);
        let mut rb = sled::Batch::default();
        let mut eb = sled::Batch::default();
        for j in i..end {
            let k = key_of(tag, j);
            rb.insert(&k.as_bytes()[..], value.clone());
            let mut ek = time_prefix.clone();
            ek.extend_from_slice(k.as_bytes());
            eb.insert(ek, &[][..]);
        }
        records.apply_batch(rb).map_err(e)?;
        expiry.apply_batch(eb).map_err(e)?;
        i = end;
    }
    db.flush().map_err(e)?;
    Ok(())
}

#[cfg(feature = "store-sqlite")]
fn sqlite_copy(
    path: &std::path::Path,
    table: &str,
    tag: &str,
    tkey: &StorageKey,
    from: usize,
    to: usize,
) -> Result<(), String> {
    let e = |e: rusqlite::Error| e.to_string();
    let mut conn = rusqlite::Connection::open(path).map_err(e)?;
    conn.busy_timeout(Duration::from_secs(30)).map_err(e)?;
    let cols: Vec<String> = {
        let mut stmt = conn
            .prepare(&format!("SELECT name FROM pragma_table_info('{table}')"))
            .map_err(e)?;
        let names = stmt
            .query_map([], |r| r.get::<_, String>(0))
            .map_err(e)?
            .collect::<Result<Vec<_>, _>>()
            .map_err(e)?;
        names
    };
    if !cols.iter().any(|c| c == "key") {
        return Err(format!("sqlite table {table} has no key column"));
    }
    let list = cols
        .iter()
        .map(|c| format!("\"{c}\""))
        .collect::<Vec<_>>()
        .join(", ");
    let select = cols
        .iter()
        .map(|c| {
            if c == "key" {
                "?1".to_owned()
            } else {
                format!("\"{c}\"")
            }
        })
        .collect::<Vec<_>>()
        .join(", ");
    let sql =
        format!("INSERT INTO \"{table}\" ({list}) SELECT {select} FROM \"{table}\" WHERE key = ?2");
    let mut i = from;
    while i < to {
        let end = (i + BATCH).min(to);
        let tx = conn.transaction().map_err(e)?;
        {
            let mut stmt = tx.prepare_cached(&sql).map_err(e)?;
            for j in i..end {
                let k = key_of(tag, j);
                stmt.execute(rusqlite::params![&k.as_bytes()[..], &tkey.as_bytes()[..]])
                    .map_err(e)?;
            }
        }
        tx.commit().map_err(e)?;
        i = end;
    }
    Ok(())
}

#[cfg(feature = "store-postgres")]
async fn postgres_copy(
    schema: &str,
    tag: &str,
    tkey: &StorageKey,
    from: usize,
    to: usize,
) -> Result<(), String> {
    use sqlx::Connection as _;
    let e = |e: sqlx::Error| e.to_string();
    // A connection of its own: the store keeps its pool's connections warm.
    let mut conn = sqlx::PgConnection::connect(&crate::fixture::postgres_url())
        .await
        .map_err(e)?;
    let pool = &mut conn;
    let cols: Vec<String> = sqlx::query_scalar(
        "SELECT column_name::text FROM information_schema.columns \
         WHERE table_schema = $1 AND table_name = 'sessions' ORDER BY ordinal_position",
    )
    .bind(schema)
    .fetch_all(&mut *pool)
    .await
    .map_err(e)?;
    if !cols.iter().any(|c| c == "key") {
        return Err("postgres table has no key column".into());
    }
    let list = cols
        .iter()
        .map(|c| format!("\"{c}\""))
        .collect::<Vec<_>>()
        .join(", ");
    let select = cols
        .iter()
        .map(|c| {
            if c == "key" {
                "sha256(convert_to($1 || g::text, 'UTF8'))".to_owned()
            } else {
                format!("t.\"{c}\"")
            }
        })
        .collect::<Vec<_>>()
        .join(", ");
    let sql = format!(
        "INSERT INTO \"{schema}\".sessions ({list}) SELECT {select} \
         FROM \"{schema}\".sessions t, generate_series($2::bigint, $3::bigint) g WHERE t.key = $4"
    );
    let mut i = from;
    let batch = BATCH * 5;
    while i < to {
        let end = (i + batch).min(to);
        sqlx::query(sqlx::AssertSqlSafe(sql.clone()))
            .bind(tag)
            .bind(i as i64)
            .bind((end - 1) as i64)
            .bind(&tkey.as_bytes()[..])
            .execute(&mut *pool)
            .await
            .map_err(e)?;
        i = end;
    }
    // What autovacuum does to a table in steady state: without it, the first
    // read of each bulk-inserted row sets its hint bits and dirties the page,
    // and the scale measurement would time those writes instead of a lookup.
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "VACUUM (FREEZE, ANALYZE) \"{schema}\".sessions"
    )))
    .execute(pool)
    .await
    .map_err(e)?;
    conn.close().await.map_err(e)?;
    Ok(())
}

/// Rows per MySQL bulk statement: MySQL 8 stops a recursive CTE after
/// `cte_max_recursion_depth` (default 1000) rows.
#[cfg(feature = "store-mysql")]
const MYSQL_BATCH: usize = 1000;

#[cfg(feature = "store-mysql")]
async fn mysql_copy(
    table: &str,
    tag: &str,
    tkey: &StorageKey,
    from: usize,
    to: usize,
) -> Result<(), String> {
    use sqlx::Connection as _;
    let e = |e: sqlx::Error| e.to_string();
    // A connection of its own: the store keeps its pool's connections warm.
    let mut conn = sqlx::MySqlConnection::connect_with(&crate::fixture::mysql_options())
        .await
        .map_err(e)?;
    let cols: Vec<String> = sqlx::query_scalar(
        "SELECT CAST(column_name AS CHAR) FROM information_schema.columns \
         WHERE table_schema = DATABASE() AND table_name = ? ORDER BY ordinal_position",
    )
    .bind(table)
    .fetch_all(&mut conn)
    .await
    .map_err(e)?;
    if !cols.iter().any(|c| c == "key") {
        return Err(format!("mysql table {table} has no key column"));
    }
    let list = cols
        .iter()
        .map(|c| format!("`{c}`"))
        .collect::<Vec<_>>()
        .join(", ");
    let select = cols
        .iter()
        .map(|c| {
            if c == "key" {
                "UNHEX(SHA2(CONCAT(?, g.n), 256))".to_owned()
            } else {
                format!("t.`{c}`")
            }
        })
        .collect::<Vec<_>>()
        .join(", ");
    let sql = format!(
        "INSERT INTO `{table}` ({list}) SELECT {select} FROM `{table}` t, \
         (WITH RECURSIVE s (n) AS (SELECT CAST(? AS SIGNED) UNION ALL \
          SELECT n + 1 FROM s WHERE n < ?) SELECT n FROM s) g \
         WHERE t.`key` = ?"
    );
    let mut i = from;
    while i < to {
        let end = (i + MYSQL_BATCH).min(to);
        sqlx::query(sqlx::AssertSqlSafe(sql.clone()))
            .bind(tag)
            .bind(i as i64)
            .bind((end - 1) as i64)
            .bind(&tkey.as_bytes()[..])
            .execute(&mut conn)
            .await
            .map_err(e)?;
        i = end;
    }
    conn.close().await.map_err(e)?;
    Ok(())
}

#[cfg(feature = "store-redis")]
async fn redis_copy(
    store: &session_store_redis::RedisStore,
    tag: &str,
    tkey: &StorageKey,
    from: usize,
    to: usize,
) -> Result<(), String> {
    let e = |e: redis::RedisError| e.to_string();
    let client = redis::Client::open(crate::fixture::redis_url()).map_err(e)?;
    let mut conn = client.get_multiplexed_async_connection().await.map_err(e)?;
    let tname = store.entry_key_name(tkey);
    let dump: Vec<u8> = redis::cmd("DUMP")
        .arg(&tname)
        .query_async(&mut conn)
        .await
        .map_err(e)?;
    let pttl: i64 = redis::cmd("PTTL")
        .arg(&tname)
        .query_async(&mut conn)
        .await
        .map_err(e)?;
    if pttl <= 0 {
        return Err(format!("redis template has no TTL ({pttl})"));
    }
    let mut i = from;
    while i < to {
        let end = (i + BATCH / 4).min(to);
        let mut pipe = redis::pipe();
        for j in i..end {
            pipe.cmd("RESTORE")
                .arg(store.entry_key_name(&key_of(tag, j)))
                .arg(pttl)
                .arg(dump.as_slice())
                .ignore();
        }
        pipe.query_async::<()>(&mut conn).await.map_err(e)?;
        i = end;
    }
    Ok(())
}

/// Removes bulk sessions `0..to` of run `tag` from a Redis store quickly
/// (pipelined `UNLINK`), before the store's own `delete_all`.
///
/// # Errors
/// On Redis errors.
#[cfg(feature = "store-redis")]
pub async fn redis_unlink(
    store: &session_store_redis::RedisStore,
    tag: &str,
    to: usize,
) -> Result<(), String> {
    if store.is_cluster() {
        return Ok(());
    }
    let e = |e: redis::RedisError| e.to_string();
    let client = redis::Client::open(crate::fixture::redis_url()).map_err(e)?;
    let mut conn = client.get_multiplexed_async_connection().await.map_err(e)?;
    let mut i = 0;
    while i < to {
        let end = (i + BATCH / 4).min(to);
        let mut pipe = redis::pipe();
        for j in i..end {
            pipe.cmd("UNLINK")
                .arg(store.entry_key_name(&key_of(tag, j)))
                .ignore();
        }
        pipe.query_async::<()>(&mut conn).await.map_err(e)?;
        i = end;
    }
    Ok(())
}
