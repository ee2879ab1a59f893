//! Choosing the backend and the listen address from the environment.

use std::net::SocketAddr;
use std::sync::Arc;

use session_store_core::{Encrypted, EncryptionKey, Error, Keyring, Result, SessionBackend};
use session_store_postgres::PostgresConfig;
use session_store_redis::RedisConfig;
use session_store_sqlite::SqliteConfig;

/// SQLite file used when no backend variable is set.
pub const DEFAULT_SQLITE_PATH: &str = "example-app-sessions.db";
/// Listen address when `EXAMPLE_APP_BIND` is unset.
pub const DEFAULT_BIND: &str = "127.0.0.1:3000";

/// Which backend the environment selects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BackendKind {
    /// SQLite (the default).
    Sqlite,
    /// Redis (`SESSION_STORE_REDIS_URL` or `SESSION_STORE_REDIS_CLUSTER_NODES` is set).
    Redis,
    /// PostgreSQL (`SESSION_STORE_POSTGRES_URL` is set).
    Postgres,
}

impl BackendKind {
    /// Reads the choice from the environment (see [`backend_from_env`]).
    ///
    /// # Errors
    /// [`Error::Config`] when both a Redis and a PostgreSQL URL are set.
    pub fn from_env() -> Result<Self> {
        Self::from_lookup(|n| std::env::var(n).ok().filter(|v| !v.is_empty()))
    }

    /// [`BackendKind::from_env`] with an explicit lookup (for tests).
    ///
    /// # Errors
    /// As [`BackendKind::from_env`].
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self> {
        let redis = lookup("SESSION_STORE_REDIS_URL").is_some()
            || lookup("SESSION_STORE_REDIS_CLUSTER_NODES").is_some();
        let postgres = lookup("SESSION_STORE_POSTGRES_URL").is_some();
        match (redis, postgres) {
            (true, true) => Err(Error::Config(
                "set either a Redis or a PostgreSQL URL, not both".into(),
            )),
            (true, false) => Ok(BackendKind::Redis),
            (false, true) => Ok(BackendKind::Postgres),
            (false, false) => Ok(BackendKind::Sqlite),
        }
    }
}

/// Opens the backend the environment selects, migrated and ready.
///
/// | Variable | Meaning | Default |
/// |---|---|---|
/// | `SESSION_STORE_REDIS_URL` / `SESSION_STORE_REDIS_CLUSTER_NODES` | use Redis; every `SESSION_STORE_REDIS_*` variable applies (see `session_store_redis::RedisConfig::from_env`) | unset |
/// | `SESSION_STORE_POSTGRES_URL` | use PostgreSQL; every `SESSION_STORE_POSTGRES_*` variable applies (see `session_store_postgres::PostgresConfig::from_env`) | unset |
/// | `SESSION_STORE_SQLITE_PATH` | SQLite file when neither URL is set; every `SESSION_STORE_SQLITE_*` variable applies | `example-app-sessions.db` |
/// | `EXAMPLE_APP_ENCRYPTION_KEY` | 64 hex characters: encrypt session data and metadata at rest (AES-256-GCM, key id 1) | unset (no encryption) |
///
/// # Errors
/// [`Error::Config`] for invalid values; backend errors when the store
/// cannot be opened or migrated.
pub async fn backend_from_env() -> Result<Arc<dyn SessionBackend>> {
    let backend: Arc<dyn SessionBackend> = match BackendKind::from_env()? {
        BackendKind::Redis => Arc::new(RedisConfig::from_env()?.build().await?),
        BackendKind::Postgres => {
            let store = PostgresConfig::from_env()?.build().await?;
            store.migrate().await?;
            Arc::new(store)
        }
        BackendKind::Sqlite => {
            let config = match std::env::var("SESSION_STORE_SQLITE_PATH") {
                Ok(_) => SqliteConfig::from_env()?,
                Err(_) => SqliteConfig::new(DEFAULT_SQLITE_PATH),
            };
            let store = config.build().await?;
            store.migrate().await?;
            Arc::new(store)
        }
    };
    match std::env::var("EXAMPLE_APP_ENCRYPTION_KEY") {
        Ok(hex) => Ok(Arc::new(Encrypted::new(
            backend,
            Keyring::new(1, parse_key(&hex)?),
        ))),
        Err(_) => Ok(backend),
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
    fn backend_choice_follows_the_urls() {
        let env = |pairs: &'static [(&'static str, &'static str)]| {
            move |n: &str| {
                pairs
                    .iter()
                    .find(|(k, _)| *k == n)
                    .map(|(_, v)| v.to_string())
            }
        };
        assert_eq!(
            BackendKind::from_lookup(env(&[])).unwrap(),
            BackendKind::Sqlite
        );
        assert_eq!(
            BackendKind::from_lookup(env(&[("SESSION_STORE_REDIS_URL", "redis://127.0.0.1")]))
                .unwrap(),
            BackendKind::Redis
        );
        assert_eq!(
            BackendKind::from_lookup(env(&[("SESSION_STORE_POSTGRES_URL", "postgres://x")]))
                .unwrap(),
            BackendKind::Postgres
        );
        assert!(matches!(
            BackendKind::from_lookup(env(&[
                ("SESSION_STORE_POSTGRES_URL", "postgres://x"),
                ("SESSION_STORE_REDIS_URL", "redis://x"),
            ])),
            Err(Error::Config(_))
        ));
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
