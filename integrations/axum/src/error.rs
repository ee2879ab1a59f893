//! What can go wrong in a request's session work, and the HTTP answer for it.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

/// A session operation failed. Returned by every [`Session`](crate::Session)
/// method; as an axum response it becomes the status of
/// [`SessionErrorKind::status`] (or whatever
/// [`SessionConfig::with_error_handler`](crate::SessionConfig::with_error_handler)
/// builds). Messages never contain a token or session data.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SessionError {
    /// The store failed or could not be reached, or stored data could not be
    /// decrypted or decoded. The request is not treated as anonymous and
    /// nothing was created or deleted. `503`.
    #[error("session store unavailable: {0}")]
    Unavailable(#[source] session_store_core::Error),
    /// A write lost its compare-and-swap on every attempt of the configured
    /// bound. Nothing of this write was stored. `409`.
    #[error("the session kept changing concurrently ({attempts} attempts)")]
    Conflict {
        /// Attempts made.
        attempts: u32,
    },
    /// The session was removed (logout elsewhere, revocation, expiry) while
    /// this request was using it. The cookie is cleared. `401`.
    #[error("the session ended during the request")]
    Gone,
    /// The operation needs a logged-in session. `401`.
    #[error("not logged in")]
    NotLoggedIn,
    /// Session data, metadata or the user id exceeds the manager's limit;
    /// nothing was written. `413`.
    #[error("session value too large: {0}")]
    TooLarge(#[source] session_store_core::Error),
    /// The user already has the maximum number of sessions. `429`.
    #[error("too many sessions (limit {limit})")]
    TooManySessions {
        /// The configured cap.
        limit: usize,
    },
    /// An argument was refused (an empty user id). `400`.
    #[error("invalid input: {0}")]
    InvalidInput(&'static str),
    /// A value did not serialize, or a stored value did not deserialize into
    /// the requested type. `500`.
    #[error("session value (de)serialization failed: {0}")]
    Serde(#[source] serde_json::Error),
    /// A state-changing request without a valid CSRF token, or refused by
    /// the `Origin` / `Sec-Fetch-Site` check. `403`.
    #[error("CSRF check failed: {0}")]
    Csrf(&'static str),
    /// The request body exceeds the configured limit. `413`.
    #[error("request body too large")]
    BodyTooLarge,
    /// A form body that does not parse. `400`.
    #[error("malformed form body")]
    BadForm,
    /// Anonymous sessions are disabled and there is no session to write to. `403`.
    #[error("anonymous sessions are disabled")]
    AnonymousDisabled,
    /// The handler asked for a `Session` but no `SessionLayer` is installed. `500`.
    #[error("no SessionLayer on this route")]
    MissingLayer,
    /// Creating an anonymous session would exceed
    /// [`SessionConfig::with_anonymous_limit`](crate::SessionConfig::with_anonymous_limit)
    /// (this client's or the global rate); nothing was stored. `429`.
    #[error("too many new anonymous sessions; retry later")]
    AnonymousRateLimited,
}

/// The kind of a [`SessionError`], for a custom error response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum SessionErrorKind {
    /// [`SessionError::Unavailable`].
    Unavailable,
    /// [`SessionError::Conflict`].
    Conflict,
    /// [`SessionError::Gone`].
    Gone,
    /// [`SessionError::NotLoggedIn`].
    NotLoggedIn,
    /// [`SessionError::TooLarge`].
    TooLarge,
    /// [`SessionError::TooManySessions`].
    TooManySessions,
    /// [`SessionError::InvalidInput`].
    InvalidInput,
    /// [`SessionError::Serde`].
    Serde,
    /// [`SessionError::Csrf`].
    Csrf,
    /// [`SessionError::BodyTooLarge`].
    BodyTooLarge,
    /// [`SessionError::BadForm`].
    BadForm,
    /// [`SessionError::AnonymousDisabled`].
    AnonymousDisabled,
    /// [`SessionError::MissingLayer`].
    MissingLayer,
    /// [`SessionError::AnonymousRateLimited`].
    AnonymousRateLimited,
}

impl SessionErrorKind {
    /// The default HTTP status.
    pub fn status(self) -> StatusCode {
        match self {
            SessionErrorKind::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
            SessionErrorKind::Conflict => StatusCode::CONFLICT,
            SessionErrorKind::Gone | SessionErrorKind::NotLoggedIn => StatusCode::UNAUTHORIZED,
            SessionErrorKind::TooLarge | SessionErrorKind::BodyTooLarge => {
                StatusCode::PAYLOAD_TOO_LARGE
            }
            SessionErrorKind::TooManySessions | SessionErrorKind::AnonymousRateLimited => {
                StatusCode::TOO_MANY_REQUESTS
            }
            SessionErrorKind::InvalidInput | SessionErrorKind::BadForm => StatusCode::BAD_REQUEST,
            SessionErrorKind::Csrf | SessionErrorKind::AnonymousDisabled => StatusCode::FORBIDDEN,
            SessionErrorKind::Serde | SessionErrorKind::MissingLayer => {
                StatusCode::INTERNAL_SERVER_ERROR
            }
        }
    }

    /// The default response body.
    pub fn message(self) -> &'static str {
        match self {
            SessionErrorKind::Unavailable => "session store unavailable",
            SessionErrorKind::Conflict => "the session changed concurrently; retry",
            SessionErrorKind::Gone => "the session ended",
            SessionErrorKind::NotLoggedIn => "sign in first",
            SessionErrorKind::TooLarge => "session data too large",
            SessionErrorKind::TooManySessions => "too many sessions",
            SessionErrorKind::InvalidInput => "invalid input",
            SessionErrorKind::Serde | SessionErrorKind::MissingLayer => "internal error",
            SessionErrorKind::Csrf => "missing or wrong CSRF token",
            SessionErrorKind::BodyTooLarge => "request body too large",
            SessionErrorKind::BadForm => "malformed form",
            SessionErrorKind::AnonymousDisabled => "no session",
            SessionErrorKind::AnonymousRateLimited => "too many new sessions; retry later",
        }
    }
}

impl SessionError {
    /// Its kind.
    pub fn kind(&self) -> SessionErrorKind {
        match self {
            SessionError::Unavailable(_) => SessionErrorKind::Unavailable,
            SessionError::Conflict { .. } => SessionErrorKind::Conflict,
            SessionError::Gone => SessionErrorKind::Gone,
            SessionError::NotLoggedIn => SessionErrorKind::NotLoggedIn,
            SessionError::TooLarge(_) => SessionErrorKind::TooLarge,
            SessionError::TooManySessions { .. } => SessionErrorKind::TooManySessions,
            SessionError::InvalidInput(_) => SessionErrorKind::InvalidInput,
            SessionError::Serde(_) => SessionErrorKind::Serde,
            SessionError::Csrf(_) => SessionErrorKind::Csrf,
            SessionError::BodyTooLarge => SessionErrorKind::BodyTooLarge,
            SessionError::BadForm => SessionErrorKind::BadForm,
            SessionError::AnonymousDisabled => SessionErrorKind::AnonymousDisabled,
            SessionError::MissingLayer => SessionErrorKind::MissingLayer,
            SessionError::AnonymousRateLimited => SessionErrorKind::AnonymousRateLimited,
        }
    }

    /// Maps a manager error. Conflicts are handled by the callers (retry).
    pub(crate) fn from_core(e: session_store_core::Error) -> Self {
        use session_store_core::Error as E;
        match e {
            E::TooLarge { .. } => SessionError::TooLarge(e),
            E::TooManySessions { limit } => SessionError::TooManySessions { limit },
            E::InvalidInput(what) => SessionError::InvalidInput(what),
            E::Conflict => SessionError::Conflict { attempts: 1 },
            other => SessionError::Unavailable(other),
        }
    }
}

/// Marks a response as a session error so the layer can apply the
/// configured error handler.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ErrorMarker(pub(crate) SessionErrorKind);

pub(crate) fn default_response(kind: SessionErrorKind) -> Response {
    (kind.status(), kind.message()).into_response()
}

impl IntoResponse for SessionError {
    fn into_response(self) -> Response {
        let kind = self.kind();
        let mut res = default_response(kind);
        res.extensions_mut().insert(ErrorMarker(kind));
        res
    }
}
