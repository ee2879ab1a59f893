//! Entry points for the fuzz targets (`fuzz/` at the workspace root) and for
//! the tests that replay their corpus on stable Rust: the layer's decoders
//! of untrusted request bytes. Each takes arbitrary bytes, must never panic,
//! and asserts what holds for any input. Not an API for applications.

use axum::http::header::COOKIE;
use axum::http::{HeaderMap, HeaderValue};
use session_store_core::SessionToken;

use crate::config::MAX_COOKIE_BYTES;
use crate::cookie::cookie_values;
use crate::csrf;

/// A well-formed session token (43 base64url characters).
const TOKEN: &str = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";

/// `Cookie` header parsing. The input is split at `\n` into several
/// `Cookie` headers (those that are not valid header values are dropped, as
/// the HTTP server would refuse them). For the cookie names `s` and
/// `__Host-session`: every value found is trimmed, holds no `;` and is at
/// most [`MAX_COOKIE_BYTES`] long; a session token parsed from a value
/// prints back to it. And foreign bytes never cost a user the session: the
/// same headers with one more header `<name>=<token>`, or with
/// `; <name>=<token>` appended to the last one, still yield the token.
pub fn cookie_header(data: &[u8]) {
    let headers: Vec<HeaderValue> = data
        .split(|b| *b == b'\n')
        .filter_map(|h| HeaderValue::from_bytes(h).ok())
        .collect();
    for name in ["s", "__Host-session"] {
        let mut map = HeaderMap::new();
        for h in &headers {
            map.append(COOKIE, h.clone());
        }
        for v in cookie_values(&map, name) {
            assert!(!v.contains(';'), "a value never spans pairs");
            assert_eq!(v, v.trim_ascii(), "values are trimmed");
            assert!(v.len() <= MAX_COOKIE_BYTES);
            if let Ok(t) = SessionToken::parse(v) {
                assert_eq!(t.expose_secret(), v);
            }
        }

        // One more header carrying the session.
        let mut extra = map.clone();
        extra.append(
            COOKIE,
            HeaderValue::from_str(&format!("{name}={TOKEN}")).expect("valid header"),
        );
        assert!(
            cookie_values(&extra, name).any(|v| v == TOKEN),
            "another Cookie header cannot hide the session"
        );

        // The session appended to the last header.
        if let Some(last) = headers.last() {
            let mut bytes = last.as_bytes().to_vec();
            bytes.extend_from_slice(format!("; {name}={TOKEN}").as_bytes());
            if let Ok(v) = HeaderValue::from_bytes(&bytes) {
                let mut joined = HeaderMap::new();
                for h in &headers[..headers.len() - 1] {
                    joined.append(COOKIE, h.clone());
                }
                joined.append(COOKIE, v);
                assert!(
                    cookie_values(&joined, name).any(|v| v == TOKEN),
                    "other cookies' bytes cannot hide the session"
                );
            }
        }
    }
}

/// Form decoding (`application/x-www-form-urlencoded`, the CSRF field) and
/// the anonymous double-submit token. A body that decodes gives, for the
/// field, the same values as the body re-encoded from them; the first
/// value of the field and the input as text never match an empty expected
/// token, and when one passes as a signed anonymous token under the fixed
/// key, the same token with another first nonce character does not.
pub fn csrf_form(data: &[u8]) {
    let key = [7u8; 32];
    if let Some(values) = csrf::form_values(data, "csrf") {
        let encoded = values
            .iter()
            .map(|v| format!("csrf={}", encode(v)))
            .collect::<Vec<_>>()
            .join("&");
        assert_eq!(
            csrf::form_values(encoded.as_bytes(), "csrf").as_ref(),
            Some(&values),
            "re-encoded values decode to themselves"
        );
        for v in &values {
            check_token(&key, v);
        }
    }
    if let Ok(text) = std::str::from_utf8(data) {
        check_token(&key, text);
    }
}

fn check_token(key: &[u8; 32], presented: &str) {
    assert!(
        !csrf::matches("", presented),
        "an empty expectation never matches"
    );
    if csrf::verify_anonymous(key, presented) {
        // Only a signature over this very nonce passes: change one
        // character of the nonce and it fails.
        let first = if presented.starts_with('A') { "B" } else { "A" };
        let forged = format!("{first}{}", &presented[1..]);
        assert!(
            !csrf::verify_anonymous(key, &forged),
            "a signature covers the whole nonce"
        );
    }
}

fn encode(v: &str) -> String {
    let mut out = String::with_capacity(v.len() * 3);
    for b in v.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}
