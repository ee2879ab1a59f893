//! Choosing the backend and the listen address from the environment.

use std::net::SocketAddr;
use std::sync::Arc;

use session_store_core::config::Vars;
use session_store_core::{Encrypted, EncryptionKey, Error, Keyring, Result, SessionBackend};
use session_store_mysql::MySqlConfig;
use session_store_postgres::PostgresConfig;
use session_store_redis::RedisConfig;
use session_store_sqlite::SqliteConfig;

/// SQLite file used when `SESSION_STORE_SQLITE_PATH` is unset.
pub const DEFAULT_SQLITE_PATH: &str = "example-app-sessions.db";
/// Listen address when `EXAMPLE_APP_BIND` is unset.
pub const DEFAULT_BIND: &str = "127.0.0.1:3000";

/// Which backend the app runs on: `EXAMPLE_APP_BACKEND`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BackendKind {
    /// SQLite (`sqlite`, the default).
    Sqlite,
    /// Redis or Redis Cluster (`redis`).
    Redis,
    /// PostgreSQL (`postgres`).
    Postgres,
    /// MySQL or MariaDB (`mysql`).
    Mysql,
}

impl BackendKind {
    /// Reads `EXAMPLE_APP_BACKEND` from the environment (see [`backend_from_env`]).
    ///
    /// # Errors
    /// [`Error::Config`] naming the variable for an unknown backend.
    pub fn from_env() -> Result<Self> {
        Self::from_vars(&Vars::from_env())
    }

    /// [`BackendKind::from_env`] over any variable source.
    ///
    /// # Errors
    /// As [`BackendKind::from_env`].
    pub fn from_vars(vars: &Vars) -> Result<Self> {
        Ok(vars
            .parse_with(
                "EXAMPLE_APP_BACKEND",
                "sqlite, redis, postgres or mysql",
                |v| match v.to_ascii_lowercase().as_str() {
                    "sqlite" => Some(BackendKind::Sqlite),
                    "redis" => Some(BackendKind::Redis),
                    "postgres" | "postgresql" => Some(BackendKind::Postgres),
                    "mysql" | "mariadb" => Some(BackendKind::Mysql),
                    _ => None,
                },
            )?
            .unwrap_or(BackendKind::Sqlite))
    }
}

/// Opens the backend the environment selects, migrated and ready.
///
/// | Variable | Meaning | Default |
/// |---|---|---|
/// | `EXAMPLE_APP_BACKEND` | `sqlite`, `redis`, `postgres` or `mysql` | `sqlite` |
/// | `SESSION_STORE_SQLITE_*` | SQLite settings (see `session_store_sqlite::SqliteConfig::from_env`); `SESSION_STORE_SQLITE_PATH` defaults to [`DEFAULT_SQLITE_PATH`] here | |
/// | `SESSION_STORE_REDIS_*` | Redis settings, `SESSION_STORE_REDIS_URL` or `SESSION_STORE_REDIS_CLUSTER_NODES` required (see `session_store_redis::RedisConfig::from_env`) | |
/// | `SESSION_STORE_POSTGRES_*` | PostgreSQL settings, `SESSION_STORE_POSTGRES_URL` required (see `session_store_postgres::PostgresConfig::from_env`) | |
/// | `SESSION_STORE_MYSQL_*` | MySQL/MariaDB settings, `SESSION_STORE_MYSQL_URL` required (see `session_store_mysql::MySqlConfig::from_env`) | |
/// | `EXAMPLE_APP_ENCRYPTION_KEY` | 64 hex characters: encrypt session data and metadata at rest (AES-256-GCM, key id 1) | unset (no encryption) |
///
/// # Errors
/// [`Error::Config`] for invalid values; backend errors when the store
/// cannot be opened or migrated.
pub async fn backend_from_env() -> Result<Arc<dyn SessionBackend>> {
    backend_from_vars(&Vars::from_env()).await
}

/// [`backend_from_env`] over any variable source.
///
/// # Errors
/// As [`backend_from_env`].
pub async fn backend_from_vars(vars: &Vars) -> Result<Arc<dyn SessionBackend>> {
    let backend: Arc<dyn SessionBackend> = match BackendKind::from_vars(vars)? {
        BackendKind::Redis => Arc::new(RedisConfig::from_vars(vars)?.build().await?),
        BackendKind::Postgres => {
            let store = PostgresConfig::from_vars(vars)?.build().await?;
            store.migrate().await?;
            Arc::new(store)
        }
        BackendKind::Mysql => {
            let store = MySqlConfig::from_vars(vars)?.build().await?;
            store.migrate().await?;
            Arc::new(store)
        }
        BackendKind::Sqlite => {
            let config = match vars.string("SESSION_STORE_SQLITE_PATH") {
                Some(_) => SqliteConfig::from_vars(vars)?,
                None => SqliteConfig::new(DEFAULT_SQLITE_PATH),
            };
            let store = config.build().await?;
            store.migrate().await?;
            Arc::new(store)
        }
    };
    match vars.string("EXAMPLE_APP_ENCRYPTION_KEY") {
        Some(hex) => Ok(Arc::new(Encrypted::new(
            backend,
            Keyring::new(1, parse_key(&hex)?),
        ))),
        None => Ok(backend),
    }
}

/// Parses a 256-bit key written as 64 hex characters.
///
/// # Errors
/// [`Error::Config`] for any other input (the input is not echoed).
pub fn parse_key(hex: &str) -> Result<EncryptionKey> {
    let hex = hex.trim().as_bytes();
    let bad = || Error::Config("EXAMPLE_APP_ENCRYPTION_KEY must be 64 hex characters".into());
    if hex.len() != 64 {
        return Err(bad());
    }
    let nibble = |c: u8| match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    };
    let mut key = [0u8; 32];
    for (i, pair) in hex.chunks_exact(2).enumerate() {
        key[i] = (nibble(pair[0]).ok_or_else(bad)? << 4) | nibble(pair[1]).ok_or_else(bad)?;
    }
    Ok(EncryptionKey::from_bytes(key))
}

/// The listen address: `EXAMPLE_APP_BIND` (default `127.0.0.1:3000`).
/// Only loopback addresses are accepted: put a TLS-terminating reverse proxy
/// in front (the cookie is `Secure` and `__Host-`).
///
/// # Errors
/// [`Error::Config`] for an unparsable or non-loopback address.
pub fn bind_from_env() -> Result<SocketAddr> {
    let text = std::env::var("EXAMPLE_APP_BIND").unwrap_or_else(|_| DEFAULT_BIND.into());
    let addr: SocketAddr = text
        .parse()
        .map_err(|_| Error::Config(format!("EXAMPLE_APP_BIND {text:?} is not an address")))?;
    if !addr.ip().is_loopback() {
        return Err(Error::Config(
            "EXAMPLE_APP_BIND must be a loopback address (127.0.0.1 or ::1)".into(),
        ));
    }
    Ok(addr)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backend_choice_is_explicit() {
        let kind = |pairs: &[(&str, &str)]| {
            BackendKind::from_vars(&Vars::from_pairs(pairs.iter().copied()))
        };
        // URLs alone choose nothing: every URL may be set at once.
        assert_eq!(
            kind(&[
                ("SESSION_STORE_REDIS_URL", "redis://127.0.0.1"),
                ("SESSION_STORE_POSTGRES_URL", "postgres://x"),
                ("SESSION_STORE_MYSQL_URL", "mysql://x/db"),
            ])
            .unwrap(),
            BackendKind::Sqlite
        );
        assert_eq!(
            kind(&[("EXAMPLE_APP_BACKEND", "Redis")]).unwrap(),
            BackendKind::Redis
        );
        assert_eq!(
            kind(&[("EXAMPLE_APP_BACKEND", "postgres")]).unwrap(),
            BackendKind::Postgres
        );
        assert_eq!(
            kind(&[("EXAMPLE_APP_BACKEND", "sqlite")]).unwrap(),
            BackendKind::Sqlite
        );
        assert_eq!(
            kind(&[("EXAMPLE_APP_BACKEND", "mysql")]).unwrap(),
            BackendKind::Mysql
        );
        assert_eq!(
            kind(&[("EXAMPLE_APP_BACKEND", "MariaDB")]).unwrap(),
            BackendKind::Mysql
        );
        let err = kind(&[("EXAMPLE_APP_BACKEND", "oracle")]).unwrap_err();
        assert!(
            matches!(&err, Error::Config(m) if m.starts_with("EXAMPLE_APP_BACKEND: expected")),
            "{err}"
        );
    }

    #[test]
    fn keys_are_64_hex_characters() {
        assert!(parse_key(&"ab".repeat(32)).is_ok());
        assert!(parse_key(&"AB".repeat(32)).is_ok());
        for bad in ["", "ab", &"zz".repeat(32), &"ab".repeat(33)] {
            assert!(matches!(parse_key(bad), Err(Error::Config(_))));
        }
    }
}
