//! CSRF tokens: per-session synchronizer tokens, signed double-submit tokens
//! for requests without a session, the `Origin` / `Sec-Fetch-Site` check and
//! the form reading the check needs.

use axum::http::header::{HOST, ORIGIN};
use axum::http::HeaderMap;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use hmac::{Hmac, KeyInit as _, Mac as _};
use rand::rngs::OsRng;
use rand::TryRngCore as _;
use sha2::Sha256;
use subtle::ConstantTimeEq as _;

use crate::config::OriginCheck;

/// 256 random bits, base64url (43 characters).
///
/// # Panics
/// Only if the operating system's random source fails.
pub(crate) fn random_token() -> String {
    let mut bytes = [0u8; 32];
    OsRng
        .try_fill_bytes(&mut bytes)
        .expect("the OS random number generator failed");
    URL_SAFE_NO_PAD.encode(bytes)
}

/// A random 32-byte key.
pub(crate) fn random_key() -> [u8; 32] {
    let mut key = [0u8; 32];
    OsRng
        .try_fill_bytes(&mut key)
        .expect("the OS random number generator failed");
    key
}

/// Whether `presented` equals `expected`, in constant time (the length is
/// not secret). An empty expected token never matches.
pub(crate) fn matches(expected: &str, presented: &str) -> bool {
    !expected.is_empty() && bool::from(expected.as_bytes().ct_eq(presented.as_bytes()))
}

const ANON_CONTEXT: &[u8] = b"session-store-axum anonymous csrf v1\0";

fn mac(key: &[u8; 32], nonce: &str) -> Hmac<Sha256> {
    let mut m = <Hmac<Sha256>>::new_from_slice(key).expect("HMAC takes any key length");
    m.update(ANON_CONTEXT);
    m.update(nonce.as_bytes());
    m
}

/// A signed double-submit token: `nonce.signature`.
pub(crate) fn sign_anonymous(key: &[u8; 32]) -> String {
    let nonce = random_token();
    let tag = URL_SAFE_NO_PAD.encode(mac(key, &nonce).finalize().into_bytes());
    format!("{nonce}.{tag}")
}

/// Whether `token` carries a valid signature under `key` (constant time).
pub(crate) fn verify_anonymous(key: &[u8; 32], token: &str) -> bool {
    let Some((nonce, tag)) = token.split_once('.') else {
        return false;
    };
    let Ok(tag) = URL_SAFE_NO_PAD.decode(tag) else {
        return false;
    };
    nonce.len() == 43 && mac(key, nonce).verify_slice(&tag).is_ok()
}

/// Why a state-changing request was refused (logged; never the token).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Reject {
    CrossOrigin,
    Missing,
    Duplicate,
    Mismatch,
}

impl Reject {
    pub(crate) fn label(self) -> &'static str {
        match self {
            Reject::CrossOrigin => "cross-origin request",
            Reject::Missing => "no CSRF token",
            Reject::Duplicate => "more than one CSRF token",
            Reject::Mismatch => "wrong CSRF token",
        }
    }
}

/// The `Origin` / `Sec-Fetch-Site` check.
pub(crate) fn origin_allowed(headers: &HeaderMap, check: &OriginCheck) -> bool {
    if *check == OriginCheck::Off {
        return true;
    }
    if let Some(site) = headers.get("sec-fetch-site") {
        if !matches!(site.as_bytes(), b"same-origin" | b"none") {
            return false;
        }
    }
    let Some(origin) = headers.get(ORIGIN) else {
        return true;
    };
    let Ok(origin) = origin.to_str() else {
        return false;
    };
    match check {
        OriginCheck::Allow(list) => list.iter().any(|o| o == origin),
        _ => {
            let host = origin.split_once("://").map(|(_, h)| h);
            let expected = headers.get(HOST).and_then(|h| h.to_str().ok());
            matches!((host, expected), (Some(h), Some(e)) if h.eq_ignore_ascii_case(e))
        }
    }
}

/// The values of `field` in an `application/x-www-form-urlencoded` body, or
/// `None` if the body is not a well-formed form (bad percent escape, not
/// UTF-8 after decoding).
pub(crate) fn form_values(body: &[u8], field: &str) -> Option<Vec<String>> {
    let mut out = Vec::new();
    for pair in body.split(|b| *b == b'&') {
        if pair.is_empty() {
            continue;
        }
        let (name, value) = match pair.iter().position(|b| *b == b'=') {
            Some(i) => (&pair[..i], &pair[i + 1..]),
            None => (pair, &b""[..]),
        };
        let name = decode(name)?;
        let value = decode(value)?;
        if name == field {
            out.push(value);
        }
    }
    Some(out)
}

fn decode(s: &[u8]) -> Option<String> {
    let mut out = Vec::with_capacity(s.len());
    let mut i = 0;
    while i < s.len() {
        match s[i] {
            b'+' => out.push(b' '),
            b'%' => {
                let hex = s.get(i + 1..i + 3)?;
                let hex = std::str::from_utf8(hex).ok()?;
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 2;
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    #[test]
    fn tokens_compare_exactly() {
        let a = random_token();
        assert_eq!(a.len(), 43);
        assert_ne!(a, random_token());
        assert!(matches(&a, &a));
        assert!(!matches(&a, &a[..42]));
        assert!(!matches("", ""));
    }

    #[test]
    fn anonymous_tokens_are_bound_to_the_key() {
        let key = random_key();
        let t = sign_anonymous(&key);
        assert!(verify_anonymous(&key, &t));
        assert!(!verify_anonymous(&random_key(), &t));
        let (nonce, _) = t.split_once('.').unwrap();
        assert!(!verify_anonymous(&key, &format!("{nonce}.AAAA")));
        assert!(!verify_anonymous(&key, nonce));
        assert!(!verify_anonymous(&key, ""));
    }

    #[test]
    fn origin_rules() {
        let h = |pairs: &[(&'static str, &'static str)]| {
            let mut m = HeaderMap::new();
            for (k, v) in pairs {
                m.insert(*k, HeaderValue::from_static(v));
            }
            m
        };
        let same = OriginCheck::SameOrigin;
        assert!(origin_allowed(&h(&[]), &same));
        assert!(origin_allowed(
            &h(&[("sec-fetch-site", "same-origin")]),
            &same
        ));
        assert!(!origin_allowed(
            &h(&[("sec-fetch-site", "cross-site")]),
            &same
        ));
        assert!(!origin_allowed(
            &h(&[("sec-fetch-site", "same-site")]),
            &same
        ));
        assert!(origin_allowed(
            &h(&[("origin", "https://a.test"), ("host", "a.test")]),
            &same
        ));
        assert!(!origin_allowed(
            &h(&[("origin", "https://evil.test"), ("host", "a.test")]),
            &same
        ));
        assert!(!origin_allowed(
            &h(&[("origin", "null"), ("host", "a.test")]),
            &same
        ));
        let allow = OriginCheck::Allow(vec!["https://a.test".into()]);
        assert!(origin_allowed(&h(&[("origin", "https://a.test")]), &allow));
        assert!(!origin_allowed(&h(&[("origin", "http://a.test")]), &allow));
        assert!(origin_allowed(
            &h(&[("sec-fetch-site", "cross-site")]),
            &OriginCheck::Off
        ));
    }

    #[test]
    fn forms() {
        assert_eq!(
            form_values(b"a=1&csrf=x%2By+z&&b", "csrf").unwrap(),
            ["x+y z"]
        );
        assert_eq!(form_values(b"csrf=1&csrf=2", "csrf").unwrap().len(), 2);
        assert!(form_values(b"csrf=%zz", "csrf").is_none());
        assert!(form_values(b"csrf=%ff", "csrf").is_none());
        assert!(form_values(b"csrf=%f", "csrf").is_none());
        assert!(form_values(b"", "csrf").unwrap().is_empty());
    }
}
