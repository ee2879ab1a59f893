//! The one error type of the workspace.

use std::error::Error as StdError;

/// A boxed error source, kept so callers can walk the chain.
pub type BoxError = Box<dyn StdError + Send + Sync + 'static>;

/// Shorthand for `Result<T, session_store_core::Error>`.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong in a session store.
///
/// Messages never contain a token, a key or session data. Backends map their
/// own errors into [`Error::Backend`] (keeping the source) or into one of the
/// more specific variants.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A token (or session handle) from untrusted input is malformed: wrong
    /// length or alphabet. Raised before any I/O; the input is not echoed.
    #[error("invalid session id")]
    InvalidId,

    /// `create` or `rotate` found an entry already stored under the new key.
    /// Never an overwrite.
    #[error("a session already exists under this key")]
    AlreadyExists,

    /// Optimistic concurrency failed: the stored version differs from the
    /// expected one, or the session is gone (deleted, rotated, expired).
    /// Nothing was written.
    #[error("session was modified or removed concurrently")]
    Conflict,

    /// A value exceeds its configured limit; nothing was written.
    #[error("{what} is too large: {actual} bytes, limit {limit}")]
    TooLarge {
        /// Which value: `"data"`, `"user id"`, `"metadata"`.
        what: &'static str,
        /// The configured limit in bytes.
        limit: usize,
        /// The size that was offered.
        actual: usize,
    },

    /// The per-user session cap is reached and the policy is to refuse.
    #[error("user already has the maximum of {limit} sessions")]
    TooManySessions {
        /// The configured cap.
        limit: usize,
    },

    /// Stored ciphertext failed to decrypt or authenticate (tampered, moved to
    /// another row, or encrypted under a key that is not in the keyring).
    #[error("stored session failed to decrypt (key id {key_id:?})")]
    Decrypt {
        /// The key id named by the stored blob, when it could be read.
        key_id: Option<u32>,
    },

    /// Stored bytes could not be decoded (corrupt frame, bad metadata encoding).
    #[error("stored session could not be decoded: {source}")]
    Codec {
        /// The underlying decode error.
        #[source]
        source: BoxError,
    },

    /// An argument from the caller is unacceptable (empty user id, ...).
    #[error("invalid input: {0}")]
    InvalidInput(&'static str),

    /// Invalid configuration or argument (bad table name, key prefix, empty user id, ...).
    #[error("invalid configuration: {0}")]
    Config(String),

    /// The stored schema is newer than this library understands; nothing was modified.
    #[error("schema version {found} is newer than the supported version {supported}")]
    SchemaTooNew {
        /// Version found in the database.
        found: i64,
        /// Highest version this library knows.
        supported: i64,
    },

    /// The backend failed or could not be reached. Never reported as "no session".
    #[error("session backend error: {source}")]
    Backend {
        /// The backend's own error.
        #[source]
        source: BoxError,
        /// Whether retrying the same operation later may succeed (connection
        /// loss, timeout) as opposed to a permanent failure.
        retryable: bool,
    },
}

impl Error {
    /// A [`Error::Backend`] that may succeed when retried (I/O, timeout, connection loss).
    pub fn backend_retryable(source: impl Into<BoxError>) -> Self {
        Error::Backend {
            source: source.into(),
            retryable: true,
        }
    }

    /// A [`Error::Backend`] that will not succeed when retried.
    pub fn backend_permanent(source: impl Into<BoxError>) -> Self {
        Error::Backend {
            source: source.into(),
            retryable: false,
        }
    }

    /// A [`Error::Codec`] from any decode error.
    pub fn codec(source: impl Into<BoxError>) -> Self {
        Error::Codec {
            source: source.into(),
        }
    }

    /// Whether retrying may help: true for retryable backend errors and for
    /// [`Error::Conflict`] (reload and try again).
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            Error::Conflict
                | Error::Backend {
                    retryable: true,
                    ..
                }
        )
    }
}
