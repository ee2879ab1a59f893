//! Mapping client errors into [`session_store_core::Error`].
//!
//! Whether a retry can help is decided here, once: I/O failures, timeouts,
//! dropped or refused connections, cluster redirections and failover or
//! loading states are retryable; authentication, permissions and client
//! configuration are permanent. A value of the wrong Redis type under one of
//! the store's keys is corrupt storage ([`Error::Codec`]).

use std::time::Duration;

use redis::{ErrorKind, RedisError, RetryMethod, ServerErrorKind};
use session_store_core::Error;

/// The backend's name in every [`Error::Backend`] it returns.
pub(crate) const BACKEND: &str = "redis";

/// Maps a client error, keeping it as the source.
pub(crate) fn map_err(e: RedisError) -> Error {
    if e.code() == Some("WRONGTYPE") {
        return Error::codec(e);
    }
    if is_retryable(&e) {
        Error::backend_retryable(e)
    } else {
        Error::backend_permanent(e)
    }
}

/// Whether retrying the same command later may succeed.
fn is_retryable(e: &RedisError) -> bool {
    let permanent = matches!(
        e.kind(),
        ErrorKind::AuthenticationFailed
            | ErrorKind::InvalidClientConfig
            | ErrorKind::Server(ServerErrorKind::NoPerm)
    );
    !permanent
        && (e.is_io_error()
            || e.is_timeout()
            || e.is_connection_dropped()
            || e.is_connection_refusal()
            || e.is_cluster_error()
            || !matches!(e.retry_method(), RetryMethod::NoRetry))
}

/// The retryable error of an operation that outlived its operation timeout.
pub(crate) fn timed_out(limit: Duration) -> Error {
    Error::backend_retryable(std::io::Error::new(
        std::io::ErrorKind::TimedOut,
        format!("Redis operation timed out after {limit:?}"),
    ))
}

/// The [`Error::Config`] of a URL or client setting the client refuses. The
/// client's message is not repeated: it may quote the URL, password included.
pub(crate) fn bad_client_config(e: &RedisError) -> Error {
    Error::Config(format!(
        "invalid Redis URL or client configuration ({}{})",
        e.category(),
        if cfg!(feature = "tls") {
            ""
        } else {
            "; rediss:// needs the `tls` feature"
        }
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(kind: ErrorKind, detail: &'static str) -> RedisError {
        RedisError::from((kind, "test", detail.to_owned()))
    }

    #[test]
    fn connection_failures_are_retryable() {
        let io = RedisError::from(std::io::Error::new(
            std::io::ErrorKind::ConnectionRefused,
            "refused",
        ));
        assert!(matches!(
            map_err(io),
            Error::Backend {
                retryable: true,
                ..
            }
        ));
        assert!(timed_out(Duration::from_secs(1)).is_retryable());
    }

    #[test]
    fn authentication_is_permanent() {
        assert!(matches!(
            map_err(err(ErrorKind::AuthenticationFailed, "bad password")),
            Error::Backend {
                retryable: false,
                ..
            }
        ));
        assert!(matches!(
            map_err(err(ErrorKind::InvalidClientConfig, "bad")),
            Error::Backend {
                retryable: false,
                ..
            }
        ));
    }
}
