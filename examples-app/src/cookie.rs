//! The session cookie: reading it from the `Cookie` header only, and the
//! exact `Set-Cookie` values.

use std::time::Duration;

use axum::http::header::{HeaderMap, COOKIE};

/// The session cookie's name. The `__Host-` prefix makes browsers require
/// `Secure`, `Path=/` and no `Domain`, so no subdomain can set or shadow it.
pub const COOKIE_NAME: &str = "__Host-session";
/// Longest cookie (name, `=` and value) accepted, per RFC 6265bis limits.
pub const MAX_COOKIE_BYTES: usize = 4096;

const ATTRIBUTES: &str = "Path=/; Secure; HttpOnly; SameSite=Lax";

/// The session token from the request's `Cookie` headers: the first cookie
/// named [`COOKIE_NAME`]. Never from a query string or another header.
pub fn token_from_headers(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == COOKIE_NAME)
        .map(|(_, value)| value.trim())
        .filter(|value| COOKIE_NAME.len() + 1 + value.len() <= MAX_COOKIE_BYTES)
        .map(str::to_owned)
}

/// `Set-Cookie` for a session token: `__Host-session=<token>; Path=/;
/// Secure; HttpOnly; SameSite=Lax`, plus `Max-Age` only when configured
/// (never beyond the session's remaining absolute lifetime).
pub fn session_cookie(token: &str, max_age: Option<Duration>) -> String {
    match max_age {
        None => format!("{COOKIE_NAME}={token}; {ATTRIBUTES}"),
        Some(age) => format!(
            "{COOKIE_NAME}={token}; {ATTRIBUTES}; Max-Age={}",
            age.as_secs()
        ),
    }
}

/// `Set-Cookie` that removes the session cookie: same name, path and
/// attributes, empty value, `Max-Age=0`.
pub fn expired_cookie() -> String {
    format!("{COOKIE_NAME}=; {ATTRIBUTES}; Max-Age=0")
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    #[test]
    fn reads_only_the_session_cookie() {
        let mut h = HeaderMap::new();
        assert_eq!(token_from_headers(&h), None);
        h.append(
            COOKIE,
            HeaderValue::from_static("a=1; __Host-session=tok; b=2"),
        );
        assert_eq!(token_from_headers(&h).as_deref(), Some("tok"));
        let mut h = HeaderMap::new();
        h.append(
            COOKIE,
            HeaderValue::from_static("session=tok; __Host-sessionx=y"),
        );
        assert_eq!(token_from_headers(&h), None);
        let mut h = HeaderMap::new();
        let long = format!("__Host-session={}", "a".repeat(5000));
        h.append(COOKIE, HeaderValue::from_str(&long).unwrap());
        assert_eq!(token_from_headers(&h), None);
    }

    #[test]
    fn cookie_strings() {
        assert_eq!(
            session_cookie("t", None),
            "__Host-session=t; Path=/; Secure; HttpOnly; SameSite=Lax"
        );
        assert_eq!(
            session_cookie("t", Some(Duration::from_secs(60))),
            "__Host-session=t; Path=/; Secure; HttpOnly; SameSite=Lax; Max-Age=60"
        );
        assert_eq!(
            expired_cookie(),
            "__Host-session=; Path=/; Secure; HttpOnly; SameSite=Lax; Max-Age=0"
        );
    }
}
