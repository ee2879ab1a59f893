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

    /// An argument from the caller is unacceptable at run time: an empty user
    /// id, a zero cleanup batch, a record whose version is already `u64::MAX`
    /// (it cannot be incremented), a rotation successor that breaks the
    /// backend's [`rotation_affinity_bits`](crate::SessionBackend::rotation_affinity_bits).
    /// Nothing was written.
    #[error("invalid input: {0}")]
    InvalidInput(&'static str),

    /// Invalid configuration, found while setting up: building a store, a
    /// wrapper, a manager or a background task, or migrating a schema (bad
    /// table name or key prefix, a timeout of zero, an environment variable
    /// that does not parse, a table of that name not created by this library).
    /// Never raised by a [`SessionBackend`](crate::SessionBackend) operation.
    #[error("invalid configuration: {0}")]
    Config(String),

    /// The store does not implement this optional operation (named here,
    /// e.g. `"scan"`); see [`Capabilities`](crate::Capabilities). Nothing was
    /// read or written.
    #[error("{0} is not supported by this store")]
    Unsupported(&'static str),

    /// The stored schema is newer than this library understands; nothing was modified.
    #[error("schema version {found} is newer than the supported version {supported}")]
    SchemaTooNew {
        /// Version found in the database.
        found: i64,
        /// Highest version this library knows.
        supported: i64,
    },

    /// The backend failed or could not be reached. Never reported as "no session".
    ///
    /// Carries which backend failed (`"redis"`, `"postgres"`, ...), during which
    /// operation (`"save"`, `"connect"`, ...) and, where there is one, the
    /// endpoint it tried to reach with any password redacted.
    #[error("{}", BackendDisplay { backend, operation, endpoint: endpoint.as_deref(), source, retryable: *retryable })]
    Backend {
        /// The backend's name: `"redis"`, `"postgres"`, `"sqlite"`, `"sled"`,
        /// `"memory"`, `"encrypted"`; empty when the error has not yet been
        /// given its context (see [`Error::context`]).
        backend: &'static str,
        /// The operation that failed: a [`SessionBackend`](crate::SessionBackend)
        /// method name (`"load"`, `"save"`, ...), `"connect"`, `"migrate"` or
        /// `"open"`; empty when not yet known.
        operation: &'static str,
        /// What the backend tried to reach (a URL without its password, a
        /// file path), when it has one.
        endpoint: Option<String>,
        /// The backend's own error.
        #[source]
        source: BoxError,
        /// Whether retrying the same operation later may succeed (connection
        /// loss, timeout) as opposed to a permanent failure.
        retryable: bool,
    },
}

/// Renders [`Error::Backend`]: `redis save (redis://127.0.0.1:6379/): <source>`.
struct BackendDisplay<'a> {
    backend: &'a str,
    operation: &'a str,
    endpoint: Option<&'a str>,
    source: &'a BoxError,
    retryable: bool,
}

impl std::fmt::Display for BackendDisplay<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let backend = if self.backend.is_empty() {
            "session backend"
        } else {
            self.backend
        };
        f.write_str(backend)?;
        if !self.operation.is_empty() {
            write!(f, " {}", self.operation)?;
        }
        if let Some(endpoint) = self.endpoint {
            write!(f, " ({endpoint})")?;
        }
        let kind = if self.retryable {
            "temporary"
        } else {
            "permanent"
        };
        write!(f, " failed ({kind}): {}", self.source)
    }
}

impl Error {
    /// A [`Error::Backend`] that may succeed when retried (I/O, timeout, connection loss).
    ///
    /// The backend name and operation are filled in by [`Error::context`].
    pub fn backend_retryable(source: impl Into<BoxError>) -> Self {
        Error::Backend {
            backend: "",
            operation: "",
            endpoint: None,
            source: source.into(),
            retryable: true,
        }
    }

    /// A [`Error::Backend`] that will not succeed when retried.
    ///
    /// The backend name and operation are filled in by [`Error::context`].
    pub fn backend_permanent(source: impl Into<BoxError>) -> Self {
        Error::Backend {
            backend: "",
            operation: "",
            endpoint: None,
            source: source.into(),
            retryable: false,
        }
    }

    /// Names where a [`Error::Backend`] happened: the backend, the operation
    /// and, if given, the endpoint (already redacted). Fields that are already
    /// set are kept, so the innermost context wins (a wrapper adding its own
    /// context does not hide the backend beneath it). Other variants are
    /// returned unchanged.
    ///
    /// ```
    /// use session_store_core::Error;
    ///
    /// let e = Error::backend_retryable("connection refused")
    ///     .context("redis", "load", Some("redis://127.0.0.1:6379/"));
    /// assert_eq!(
    ///     e.to_string(),
    ///     "redis load (redis://127.0.0.1:6379/) failed (temporary): connection refused"
    /// );
    /// assert!(matches!(e, Error::Backend { backend: "redis", operation: "load", .. }));
    /// ```
    pub fn context(
        self,
        backend_name: &'static str,
        operation_name: &'static str,
        endpoint_name: Option<&str>,
    ) -> Self {
        match self {
            Error::Backend {
                backend,
                operation,
                endpoint,
                source,
                retryable,
            } => Error::Backend {
                backend: if backend.is_empty() {
                    backend_name
                } else {
                    backend
                },
                operation: if operation.is_empty() {
                    operation_name
                } else {
                    operation
                },
                endpoint: endpoint.or_else(|| endpoint_name.map(str::to_owned)),
                source,
                retryable,
            },
            other => other,
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
