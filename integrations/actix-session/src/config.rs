//! Configuration of the adapter: the absolute timeout actix-session lacks,
//! a data size limit, and the optional data field that names the user.

use std::time::Duration;

use session_store_core::{Error, Result};

/// Default absolute timeout: 12 hours, counted from the creation of the
/// session (a renewed key is a new session, see the crate docs).
pub const DEFAULT_ABSOLUTE_TIMEOUT: Duration = Duration::from_secs(12 * 3600);
/// Default maximum encoded size of one session's data: 64 KiB.
pub const DEFAULT_MAX_DATA_BYTES: usize = 64 * 1024;
/// Longest accepted user id, in bytes (the core policy's default).
pub const MAX_USER_ID_BYTES: usize = 256;
/// How many fresh keys `save` tries before giving up. A collision of
/// 256-bit random tokens is practically impossible; more than one means the
/// random source is broken, and failing is the safe answer.
pub const CREATE_ATTEMPTS: usize = 8;

/// Settings of a [`ActixSessionStore`](crate::ActixSessionStore).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ActixStoreConfig {
    pub(crate) absolute_timeout: Duration,
    pub(crate) max_data_bytes: usize,
    pub(crate) user_id_key: Option<String>,
}

impl Default for ActixStoreConfig {
    fn default() -> Self {
        ActixStoreConfig {
            absolute_timeout: DEFAULT_ABSOLUTE_TIMEOUT,
            max_data_bytes: DEFAULT_MAX_DATA_BYTES,
            user_id_key: None,
        }
    }
}

impl ActixStoreConfig {
    /// A builder starting from the defaults.
    pub fn builder() -> ActixStoreConfigBuilder {
        ActixStoreConfigBuilder {
            config: ActixStoreConfig::default(),
        }
    }

    /// Reads the configuration from environment variables; unset variables
    /// keep their defaults.
    ///
    /// | Variable | Meaning | Default |
    /// |---|---|---|
    /// | `SESSION_STORE_ACTIX_ABSOLUTE_TIMEOUT_SECS` | absolute timeout in seconds (> 0) | `43200` (12 h) |
    /// | `SESSION_STORE_ACTIX_MAX_DATA_BYTES` | maximum encoded session data in bytes (> 0) | `65536` |
    /// | `SESSION_STORE_ACTIX_USER_ID_KEY` | session data field holding the user id (a JSON string) | unset |
    ///
    /// # Errors
    /// [`Error::Config`] for a value that is not a positive whole number or
    /// an empty field name.
    pub fn from_env() -> Result<Self> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// [`ActixStoreConfig::from_env`] with an explicit lookup (for tests).
    ///
    /// # Errors
    /// As [`ActixStoreConfig::from_env`].
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self> {
        let positive = |name: &str| -> Result<Option<u64>> {
            match lookup(name) {
                None => Ok(None),
                Some(v) => match v.trim().parse::<u64>() {
                    Ok(n) if n > 0 => Ok(Some(n)),
                    _ => Err(Error::Config(format!(
                        "{name} must be a whole number greater than zero"
                    ))),
                },
            }
        };
        let mut b = Self::builder();
        if let Some(secs) = positive("SESSION_STORE_ACTIX_ABSOLUTE_TIMEOUT_SECS")? {
            b = b.absolute_timeout(Duration::from_secs(secs));
        }
        if let Some(n) = positive("SESSION_STORE_ACTIX_MAX_DATA_BYTES")? {
            b = b.max_data_bytes(usize::try_from(n).unwrap_or(usize::MAX));
        }
        if let Some(key) = lookup("SESSION_STORE_ACTIX_USER_ID_KEY") {
            b = b.user_id_key(key);
        }
        b.build()
    }

    /// The absolute timeout.
    pub fn absolute_timeout(&self) -> Duration {
        self.absolute_timeout
    }

    /// The data size limit in bytes.
    pub fn max_data_bytes(&self) -> usize {
        self.max_data_bytes
    }

    /// The data field naming the user, if any.
    pub fn user_id_key(&self) -> Option<&str> {
        self.user_id_key.as_deref()
    }
}

/// Builds a [`ActixStoreConfig`].
#[derive(Debug, Clone)]
pub struct ActixStoreConfigBuilder {
    config: ActixStoreConfig,
}

impl ActixStoreConfigBuilder {
    /// Sessions expire this long after creation, whatever the activity and
    /// whatever TTL actix-session asks for. Default 12 hours.
    pub fn absolute_timeout(mut self, timeout: Duration) -> Self {
        self.config.absolute_timeout = timeout;
        self
    }

    /// Largest JSON-encoded session data accepted by `create`/`save`.
    /// Default 64 KiB.
    pub fn max_data_bytes(mut self, bytes: usize) -> Self {
        self.config.max_data_bytes = bytes;
        self
    }

    /// A session data field (`session.insert(key, "alice")`) whose JSON string
    /// value is written as the backend record's user id, so that
    /// [`ActixSessionStore::logout_user`](crate::ActixSessionStore::logout_user)
    /// and [`ActixSessionStore::list_user`](crate::ActixSessionStore::list_user)
    /// find the user's sessions. Default: none (every session anonymous).
    pub fn user_id_key(mut self, key: impl Into<String>) -> Self {
        self.config.user_id_key = Some(key.into());
        self
    }

    /// Validates and builds.
    ///
    /// # Errors
    /// [`Error::Config`] for a zero timeout or size limit, or an empty user id key.
    pub fn build(self) -> Result<ActixStoreConfig> {
        if self.config.absolute_timeout.is_zero() {
            return Err(Error::Config(
                "absolute timeout must be greater than zero".into(),
            ));
        }
        if self.config.max_data_bytes == 0 {
            return Err(Error::Config(
                "max data bytes must be greater than zero".into(),
            ));
        }
        if self.config.user_id_key.as_deref() == Some("") {
            return Err(Error::Config("user id key must not be empty".into()));
        }
        Ok(self.config)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn from_lookup_reads_every_variable_and_rejects_bad_values() {
        let c = ActixStoreConfig::from_lookup(|n| match n {
            "SESSION_STORE_ACTIX_ABSOLUTE_TIMEOUT_SECS" => Some("60".into()),
            "SESSION_STORE_ACTIX_MAX_DATA_BYTES" => Some("100".into()),
            "SESSION_STORE_ACTIX_USER_ID_KEY" => Some("user".into()),
            _ => None,
        })
        .unwrap();
        assert_eq!(c.absolute_timeout(), Duration::from_secs(60));
        assert_eq!(c.max_data_bytes(), 100);
        assert_eq!(c.user_id_key(), Some("user"));
        assert_eq!(
            ActixStoreConfig::from_lookup(|_| None).unwrap(),
            ActixStoreConfig::default()
        );
        for (name, value) in [
            ("SESSION_STORE_ACTIX_ABSOLUTE_TIMEOUT_SECS", "0"),
            ("SESSION_STORE_ACTIX_ABSOLUTE_TIMEOUT_SECS", "soon"),
            ("SESSION_STORE_ACTIX_MAX_DATA_BYTES", "-1"),
            ("SESSION_STORE_ACTIX_USER_ID_KEY", ""),
        ] {
            let r = ActixStoreConfig::from_lookup(|n| (n == name).then(|| value.to_string()));
            assert!(matches!(r, Err(Error::Config(_))), "{name}={value}");
        }
    }
}
